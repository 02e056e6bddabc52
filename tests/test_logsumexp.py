"""``logsumexp``: one primitive of the table, the same function in both modes."""
from __future__ import annotations

import numpy as np
import pytest

import dualad
import reversead as rd
from dualad.testing import numerical_jacobian


def naive(x, axis=None, keepdims=False):
    return np.log(np.sum(np.exp(x), axis=axis, keepdims=keepdims))


CASES = [((5,), None, False), ((3, 4), 1, True), ((3, 4), 0, False), ((2, 3, 4), (0, 2), False),
         ((2, 3, 4), -1, True), ((3, 4), None, True)]


@pytest.mark.parametrize("shape, axis, keepdims", CASES)
def test_values_match_the_naive_formula(shape, axis, keepdims, rng):
    x = rng.standard_normal(shape)
    got = dualad.logsumexp(x, axis=axis, keepdims=keepdims)
    want = naive(x, axis, keepdims)
    assert np.shape(got) == np.shape(want)
    np.testing.assert_allclose(got, want, rtol=1e-13)


def test_no_overflow_and_infinities():
    assert float(dualad.logsumexp(np.array([1000.0, 1000.0]))) == pytest.approx(1000.0 + np.log(2.0))
    assert dualad.logsumexp(np.array([-np.inf, -np.inf])) == -np.inf
    np.testing.assert_array_equal(dualad.logsumexp(np.array([[-np.inf, 0.0], [-np.inf, -np.inf]]), axis=1),
                                  [0.0, -np.inf])
    assert dualad.logsumexp(np.array([np.inf, 1.0])) == np.inf


@pytest.mark.parametrize("mode", ["fwd", "rev"])
@pytest.mark.parametrize("shape, axis, keepdims", CASES)
def test_jacobian_is_softmax_and_matches_fd(mode, shape, axis, keepdims, rng):
    x = rng.standard_normal(shape)
    f = lambda v: dualad.logsumexp(v, axis=axis, keepdims=keepdims)  # noqa: E731
    J = (dualad.jacobian if mode == "fwd" else rd.jacobian)(f, x)
    np.testing.assert_allclose(J, numerical_jacobian(f, x), rtol=1e-6, atol=1e-8)
    if axis is None:
        np.testing.assert_allclose(np.reshape(J, x.shape), np.exp(x - naive(x)), rtol=1e-12)


def test_both_modes_agree_with_the_user_written_version(rng):
    x = rng.standard_normal((4, 6))

    def fused(v):
        return np.sum(np.sin(v) * dualad.logsumexp(v, axis=1, keepdims=True))

    def by_hand(v):
        m = np.max(v, axis=1, keepdims=True)
        return np.sum(np.sin(v) * (np.log(np.sum(np.exp(v - m), axis=1, keepdims=True)) + m))

    for grad in (dualad.gradient, rd.gradient):
        np.testing.assert_allclose(grad(fused, x), grad(by_hand, x), rtol=1e-12)
    for hess in (dualad.hessian, rd.hessian):  # forward-over-forward, forward-over-reverse
        np.testing.assert_allclose(hess(fused, x), hess(by_hand, x), rtol=1e-10, atol=1e-12)


def test_float32_stays_float32(rng):
    x = rng.standard_normal((3, 5)).astype(np.float32)
    assert dualad.logsumexp(x, axis=1).dtype == np.float32
    g = rd.gradient(lambda v: np.sum(dualad.logsumexp(v, axis=1)), x)
    assert g.dtype == np.float32
    np.testing.assert_allclose(g, np.exp(x - naive(x, 1, True)), rtol=1e-5)


def test_tape_records_one_node_and_backward_gives_softmax(rng):
    x = rd.tensor(rng.standard_normal((2, 3)), requires_grad=True)
    out = rd.logsumexp(x, axis=1)
    assert type(out.grad_fn).__name__ == "LogsumexpBackward"
    assert out.grad_fn.next_functions[0][0].variable is x
    out.sum().backward()
    np.testing.assert_allclose(x.grad, np.exp(x.data - naive(x.data, 1, True)), rtol=1e-12)


def test_second_order_through_the_tape(rng):
    x = rd.tensor(rng.standard_normal(4), requires_grad=True)
    (g,) = rd.grad(rd.logsumexp(x), [x], create_graph=True)
    (h0,) = rd.grad(g[0], [x])
    p = np.exp(x.data - naive(x.data))
    np.testing.assert_allclose(h0, np.eye(4)[0] * p[0] - p[0] * p, rtol=1e-12, atol=1e-15)


def test_bad_axis_raises(rng):
    with pytest.raises(np.exceptions.AxisError):
        dualad.logsumexp(rng.standard_normal((2, 3)), axis=2)
    with pytest.raises(np.exceptions.AxisError):
        rd.logsumexp(rd.tensor(rng.standard_normal((2, 3)), requires_grad=True), axis=-3)
