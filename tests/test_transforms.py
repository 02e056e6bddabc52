"""The forward-mode transforms: jvp, derivative, gradient, jacobian, hessian, and nesting."""
from __future__ import annotations

import math

import numpy as np
import pytest

import dualad
from dualad.testing import check_grads, numerical_jacobian


RNG = np.random.default_rng(3)
W1, B1, W2 = RNG.standard_normal((5, 4)), RNG.standard_normal(5), RNG.standard_normal((3, 5))


def network(x):
    """The issue's example: plain NumPy, written once."""
    return np.tanh(W2 @ np.sin(W1 @ x + B1)) * np.exp(-x[:3].sum())


def rosenbrock(x):
    return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def rosenbrock_gradient(x):
    """The exact reference, by hand."""
    g = np.zeros_like(x)
    g[:-1] += -400.0 * x[:-1] * (x[1:] - x[:-1] ** 2) - 2.0 * (1.0 - x[:-1])
    g[1:] += 200.0 * (x[1:] - x[:-1] ** 2)
    return g


# -- the issue's must-haves --------------------------------------------------------
def test_perturbation_confusion():
    assert dualad.derivative(lambda x: x * dualad.derivative(lambda y: x + y, 1.0), 1.0) == 1.0
    assert dualad.derivative(lambda x: x * dualad.derivative(lambda y: x * y, 1.0), 4.0) == 8.0


def test_perturbation_confusion_with_arrays_and_gradients():
    # d/dx [x * d/dy (x*y)] = 2x, with the inner call over arrays and another transform
    def f(x):
        return x * np.sum(dualad.gradient(lambda y: np.sum(x * y), np.ones(3)))
    assert dualad.derivative(f, 4.0) == pytest.approx(3 * 2 * 4.0)
    # the inner derivative closes over the outer variable at three levels
    g = lambda x: dualad.derivative(lambda y: dualad.derivative(lambda z: x * y * z * z, 1.0), 1.0)  # noqa: E731
    assert dualad.derivative(g, 5.0) == pytest.approx(2.0)


@pytest.mark.parametrize("chunk", [1, 3, 4, 5, 12, None])
def test_rosenbrock_gradient_exact_for_every_chunk(chunk):
    x = np.arange(12.0)
    g = dualad.gradient(rosenbrock, x, chunk=chunk)
    np.testing.assert_array_equal(g, rosenbrock_gradient(x))


def test_rosenbrock_hessian_at_minimum():
    H = dualad.hessian(lambda v: (1.0 - v[0]) ** 2 + 100.0 * (v[1] - v[0] ** 2) ** 2, np.array([1.0, 1.0]))
    np.testing.assert_array_equal(H, [[802.0, -400.0], [-400.0, 200.0]])
    H2 = dualad.hessian(rosenbrock, np.ones(2))
    np.testing.assert_array_equal(H2, [[802.0, -400.0], [-400.0, 200.0]])


@pytest.mark.parametrize("chunk", [1, 2, 5, None])
def test_rosenbrock_hessian_chunks(chunk):
    x = np.linspace(-1.0, 2.0, 5)
    H = dualad.hessian(rosenbrock, x, chunk=chunk)
    np.testing.assert_allclose(H, numerical_jacobian(rosenbrock_gradient, x), rtol=1e-7, atol=1e-6)
    np.testing.assert_array_equal(H, H.T)


def test_issue_example():
    x, v = RNG.standard_normal(4), RNG.standard_normal(4)
    y, jv = dualad.jvp(network, x, v)
    J = dualad.jacobian(network, x)
    np.testing.assert_allclose(y, network(x))
    np.testing.assert_allclose(jv, J @ v, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(J, numerical_jacobian(network, x), rtol=1e-6, atol=1e-9)
    g = dualad.gradient(lambda x: np.sum(network(x) ** 2), x)
    np.testing.assert_allclose(g, 2.0 * J.T @ network(x), rtol=1e-12)
    assert dualad.derivative(lambda t: t ** t, 2.0) == pytest.approx(4.0 * (1.0 + math.log(2.0)))
    d = dualad.Dual(3.0, 1.0)
    assert (d * d + np.sin(d)).tangent == pytest.approx(6.0 + math.cos(3.0))
    check_grads(network, x, order=2, modes=("fwd",))


# -- jacobian: shapes, chunks, structures ------------------------------------------------
@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 100, None])
def test_jacobian_same_for_every_chunk(chunk):
    x = RNG.standard_normal((2, 3))
    f = lambda x: np.sin(x) @ x.T  # noqa: E731  (2, 2) output
    J = dualad.jacobian(f, x, chunk=chunk)
    assert J.shape == (2, 2, 2, 3)
    np.testing.assert_allclose(J, dualad.jacobian(f, x, chunk=1), rtol=1e-15, atol=0)
    np.testing.assert_allclose(J, numerical_jacobian(f, x), rtol=1e-6, atol=1e-9)


def test_jacobian_shapes():
    assert dualad.jacobian(np.sin, np.ones((2, 3))).shape == (2, 3, 2, 3)
    assert dualad.jacobian(np.sum, np.ones((2, 3))).shape == (2, 3)
    assert dualad.jacobian(lambda x: x * np.ones(4), 2.0).shape == (4,)
    assert np.shape(dualad.jacobian(lambda x: x * x, 2.0)) == ()
    assert dualad.jacobian(np.sin, np.ones(0)).shape == (0, 0)
    assert dualad.gradient(np.sum, np.ones((2, 3))).shape == (2, 3)
    assert dualad.hessian(lambda x: np.sum(x ** 3), np.ones((2, 2))).shape == (2, 2, 2, 2)


def test_tuple_and_list_inputs():
    a, b = np.array([1.0, 2.0]), 3.0
    Ja, Jb = dualad.jacobian(lambda a, b: a * b, (a, b))
    np.testing.assert_array_equal(Ja, 3.0 * np.eye(2))
    np.testing.assert_array_equal(Jb, a)
    ga, gb = dualad.gradient(lambda a, b: np.sum(a) * b, [a, b], chunk=1)
    np.testing.assert_array_equal(ga, [3.0, 3.0])
    assert gb == 3.0
    H = dualad.hessian(lambda a, b: a * a * b, (2.0, 3.0))
    np.testing.assert_array_equal(np.array(H, dtype=float), [[6.0, 4.0], [4.0, 0.0]])
    y, t = dualad.jvp(lambda a, b: a * b, (2.0, 3.0), (1.0, 0.0))
    assert (y, t) == (6.0, 3.0)


def test_structured_outputs():
    out = dualad.jacobian(lambda x: {"a": x ** 2, "b": (x, 3.0 * x)}, np.ones(2))
    np.testing.assert_array_equal(out["a"], 2.0 * np.eye(2))
    np.testing.assert_array_equal(out["b"][1], 3.0 * np.eye(2))
    y, t = dualad.jvp(lambda x: [x, {"s": np.sum(x)}], np.ones(3), np.arange(3.0))
    np.testing.assert_array_equal(t[0], np.arange(3.0))
    assert t[1]["s"] == 3.0
    np.testing.assert_array_equal(dualad.jacobian(lambda x: 3.0, np.ones(2)), [0.0, 0.0])  # constant f


def test_integer_inputs_promote_to_float64():
    g = dualad.gradient(lambda x: np.sum(x ** 2), np.arange(3))
    assert g.dtype == np.float64
    np.testing.assert_array_equal(g, [0.0, 2.0, 4.0])
    assert dualad.derivative(lambda x: x ** 2, 3) == 6.0
    assert dualad.jacobian(lambda x: x / 2, np.array([True, False])).dtype == np.float64


def test_float32_transforms():
    x = np.array([0.5, -1.0, 2.0], dtype=np.float32)
    f = lambda x: np.sum(np.sin(x) * 2.5 + x ** 3)  # noqa: E731
    assert dualad.gradient(f, x).dtype == np.float32
    assert dualad.hessian(f, x).dtype == np.float32
    assert dualad.jacobian(np.exp, x).dtype == np.float32
    y, t = dualad.jvp(np.exp, x, np.ones(3, np.float32))
    assert y.dtype == np.float32 and t.dtype == np.float32
    assert np.asarray(dualad.derivative(lambda s: s * s, np.float32(2.0))).dtype == np.float32


def test_jvp_and_derivative_on_python_floats():
    y, t = dualad.jvp(np.sin, 0.5, 2.0)
    assert y == pytest.approx(math.sin(0.5)) and t == pytest.approx(2.0 * math.cos(0.5))
    assert dualad.derivative(lambda x: [x, x ** 2], 3.0) == [1.0, 6.0]


def test_derivative_of_zero_dimensional_array():
    assert dualad.derivative(lambda x: x ** 2, np.array(3.0)) == 6.0
    y, t = dualad.jvp(lambda x: x * 2.0, np.array(3.0), np.array(1.0))
    assert y == 6.0 and t == 2.0


# -- hessians by forward over forward, vs finite differences of the gradient -----------------
@pytest.mark.parametrize("f", [
    lambda x: np.sum(np.exp(x) * np.sin(x[::-1])),
    lambda x: np.prod(x) + np.max(x ** 2),
    lambda x: np.log(np.sum(np.exp(x))),
    lambda x: np.sqrt(x @ x) * np.tanh(x[0]),
    lambda x: np.linalg.norm(np.outer(x, x) - np.eye(3)),
], ids=["exp-sin", "prod-max", "logsumexp", "norm-tanh", "linalg-norm"])
def test_hessian_against_fd_of_gradient(f):
    x = np.array([0.3, -0.8, 1.1])
    H = dualad.hessian(f, x)
    np.testing.assert_allclose(H, numerical_jacobian(lambda x: dualad.gradient(f, x), x), rtol=1e-6, atol=1e-7)
    check_grads(f, x, order=2, modes=("fwd",))


# -- check_grads itself --------------------------------------------------------------
def _inner_part(x):
    """``x`` minus its primal: zero value, ``x``'s tangent (its own perturbation only)."""
    return x - x.primal


def test_check_grads_catches_a_wrong_derivative():
    def f(x):  # right value, tangent 1% too large in forward mode
        y = np.tanh(x)
        return y + 0.01 * _inner_part(x) if isinstance(x, dualad.DualArray) else y
    with pytest.raises(AssertionError, match="central differences"):
        check_grads(f, np.array([0.3, 1.2]), order=1, modes=("fwd",))
    check_grads(np.tanh, np.array([0.3, 1.2]), order=2, modes=("fwd",))


def test_check_grads_catches_a_wrong_second_derivative():
    def f(x):  # right value and first derivative; a wrong mixed term only under nesting
        y = x ** 3
        if isinstance(x, dualad.DualArray) and isinstance(x.primal, dualad.DualArray):
            y = y + 0.1 * _inner_part(x.primal) * _inner_part(x)
        return y
    check_grads(f, np.array([0.5, 2.0]), order=1, modes=("fwd",))
    with pytest.raises(AssertionError, match="second derivative"):
        check_grads(f, np.array([0.5, 2.0]), order=2, modes=("fwd",))


def test_numerical_jacobian_shapes_follow_dualad():
    f = lambda a, b: (a * b, np.sum(a))  # noqa: E731
    a, b = np.ones((2, 2)), 3.0
    J_fd, J = numerical_jacobian(f, (a, b)), dualad.jacobian(f, (a, b))
    for got, want in zip(J_fd, J):
        for g, w in zip(got, want):
            assert np.shape(g) == np.shape(w)
            np.testing.assert_allclose(g, w, rtol=1e-7, atol=1e-9)


def test_both_modes_agree_on_the_network():
    import reversead
    x = RNG.standard_normal(4)
    np.testing.assert_allclose(dualad.jacobian(network, x), reversead.jacobian(network, x), rtol=1e-12, atol=1e-14)
    check_grads(network, x, order=2, modes=("fwd", "rev"))


def test_hessian_outer_chunk_keeps_nested_tangents_in_budget(monkeypatch):
    from dualad import transforms
    inner, outer = transforms._hessian_chunks(None, [np.ones(1000)])
    assert inner == 1000 and outer * inner * 1000 * 8 <= transforms.TANGENT_BUDGET
    monkeypatch.setattr(transforms, "TANGENT_BUDGET", 8 * 6 * 6 * 2)  # forces 3 outer passes
    assert transforms._hessian_chunks(None, [np.ones(6)]) == (6, 2)
    rosen = lambda v: np.sum(100.0 * (v[1:] - v[:-1] ** 2) ** 2 + (1.0 - v[:-1]) ** 2)
    x = np.linspace(-1.0, 1.5, 6)
    np.testing.assert_allclose(dualad.hessian(rosen, x), dualad.hessian(rosen, x, chunk=6), rtol=1e-13)
