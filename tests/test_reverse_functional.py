"""Every primitive in both modes, and the functional API of ``reversead``.

For every entry of the primitive table (``dualad.rules``): ``reversead.jacobian``
equals ``dualad.jacobian`` to rounding and both equal central finite differences.
Kept fast: one or two cases per entry (``tests/test_rules.py`` sweeps dtypes and shapes).
"""
from __future__ import annotations

import zlib

import numpy as np
import pytest

import dualad
import reversead as rd
from dualad.rules import EXAMPLES, FUNCTION_IMPLS, UFUNC_RULES, Elementwise
from dualad.testing import example_case, numerical_jacobian

RTOL_MODES = 1e-10     # reverse vs forward: the same rule, only rounding differs
RTOL_FD, ATOL_FD = 1e-6, 1e-8


def _leaves(tree):
    if isinstance(tree, (tuple, list)):
        return [leaf for t in tree for leaf in _leaves(t)]
    return [tree]


def _assert_modes_agree(f, x, fd=True):
    J_rev = rd.jacobian(f, x)
    J_fwd = dualad.jacobian(f, x)
    got, ref = _leaves(J_rev), _leaves(J_fwd)
    assert len(got) == len(ref)
    for a, b in zip(got, ref):
        assert np.shape(a) == np.shape(b)
        scale = max(1.0, float(np.max(np.abs(b), initial=0.0)))
        np.testing.assert_allclose(a, b, rtol=RTOL_MODES, atol=1e-12 * scale)
    if fd:
        for a, c in zip(got, _leaves(numerical_jacobian(f, x))):
            scale = max(1.0, float(np.max(np.abs(c), initial=0.0)))
            np.testing.assert_allclose(a, c, rtol=RTOL_FD, atol=ATOL_FD * scale)
    return J_rev


# -- every ufunc ------------------------------------------------------------------------------------
UNARY = {"matrix": (2, 3), "0d": ()}
BINARY = {"same": ((4,), (4,)), "broadcast": ((3, 1), (4,))}


def _ufunc_cases():
    cases = []
    for ufunc, rule in UFUNC_RULES.items():
        if not isinstance(rule, Elementwise):
            continue
        for label in (UNARY if rule.nin == 1 else BINARY):
            cases.append(pytest.param(ufunc, label, id=f"{ufunc.__name__}-{label}"))
    return cases


def _sample(rng, interval, shape, dtype=np.float64):
    return rng.uniform(*interval, size=shape).astype(dtype)


@pytest.mark.parametrize("ufunc, label", _ufunc_cases())
def test_ufunc_reverse_equals_forward_and_fd(ufunc, label):
    # (a stable seed: Python's str hash changes per process, and near a kink of maximum or
    # remainder an unlucky draw made finite differences fail about once in 300 runs)
    rng = np.random.default_rng(zlib.crc32(f"{ufunc.__name__}-{label}".encode()))
    rule = UFUNC_RULES[ufunc]
    if rule.nin == 1:
        x = _sample(rng, rule.domain[0], UNARY[label])
        J = _assert_modes_agree(ufunc, x)
        assert J.shape == x.shape + x.shape
    else:
        sa, sb = BINARY[label]
        x = (_sample(rng, rule.domain[0], sa), _sample(rng, rule.domain[1], sb))
        Ja, Jb = _assert_modes_agree(ufunc, x)
        out_shape = np.broadcast_shapes(sa, sb)
        assert Ja.shape == out_shape + sa and Jb.shape == out_shape + sb


@pytest.mark.parametrize("ufunc", [u for u, r in UFUNC_RULES.items()
                                   if isinstance(r, Elementwise) and r.nin == 2],
                         ids=lambda u: u.__name__)
def test_binary_ufunc_gradient_keeps_broadcast_shapes(ufunc):
    """Tensor level: the gradient of each operand has that operand's shape (unbroadcast)."""
    rng = np.random.default_rng(1)
    rule = UFUNC_RULES[ufunc]
    a0, b0 = _sample(rng, rule.domain[0], (2, 1, 3)), _sample(rng, rule.domain[1], (4, 1))
    a, b = rd.tensor(a0, requires_grad=True), rd.tensor(b0, requires_grad=True)
    np.sum(ufunc(a, b) * np.arange(24.0).reshape(2, 4, 3)).backward()
    ga, gb = dualad.gradient(lambda a, b: np.sum(ufunc(a, b) * np.arange(24.0).reshape(2, 4, 3)), (a0, b0))
    assert a.grad.shape == a0.shape and b.grad.shape == b0.shape
    np.testing.assert_allclose(a.grad, ga, rtol=RTOL_MODES, atol=1e-12)
    np.testing.assert_allclose(b.grad, gb, rtol=RTOL_MODES, atol=1e-12)


@pytest.mark.parametrize("ufunc", [u for u, r in UFUNC_RULES.items() if isinstance(r, Elementwise)],
                         ids=lambda u: u.__name__)
def test_ufunc_float32_stays_float32(ufunc):
    rng = np.random.default_rng(2)
    rule = UFUNC_RULES[ufunc]
    xs = tuple(_sample(rng, d, (3,), np.float32) for d in rule.domain)
    x = xs[0] if rule.nin == 1 else xs
    if ufunc is np.float_power:  # float_power computes in float64 by definition
        return
    for J, J64 in zip(_leaves(rd.jacobian(ufunc, x)),
                      _leaves(dualad.jacobian(ufunc, tuple(v.astype(np.float64) for v in xs)
                                              if rule.nin == 2 else xs[0].astype(np.float64)))):
        assert J.dtype == np.float32
        np.testing.assert_allclose(J, J64, rtol=2e-5, atol=2e-5)


# -- every NumPy function with examples ------------------------------------------------------------
def _example_cases():
    cases = []
    for func, examples in EXAMPLES.items():
        if func not in FUNCTION_IMPLS and func not in UFUNC_RULES:
            continue
        for i in range(min(2, len(examples))):
            name = getattr(func, "__name__", repr(func))
            cases.append(pytest.param(func, i, id=f"{name}-{i}"))
    return cases


@pytest.mark.parametrize("func, index", _example_cases())
def test_function_reverse_equals_forward_and_fd(func, index):
    rng = np.random.default_rng(1000 + index)
    f, x = example_case(func, EXAMPLES[func][index], rng)
    _assert_modes_agree(f, x)


def test_every_registered_function_is_covered_here():
    covered = {func for func, examples in EXAMPLES.items() if examples}
    index_only = {np.argmax, np.argmin, np.argsort, np.argwhere, np.nonzero, np.flatnonzero,
                  np.count_nonzero, np.shape, np.ndim, np.size, np.isclose, np.allclose,
                  np.array_equal, np.argpartition, np.searchsorted, np.any, np.all,
                  np.nanargmax, np.nanargmin, np.result_type, np.can_cast,  # (test_numpy_coverage.py)
                  np.empty_like,  # (its values are unspecified: tests/test_more_functions.py)
                  np.linalg.matrix_rank,  # (an integer: tests/test_spectral.py)
                  # in-place writes into their first argument (tests/test_assembly_scatter.py)
                  np.put, np.put_along_axis, np.place, np.putmask, np.fill_diagonal, np.copyto}
    missing = [getattr(f, "__name__", repr(f)) for f in FUNCTION_IMPLS
               if f not in covered and f not in index_only]
    assert not missing, f"registered without examples (not tested in reverse mode): {missing}"


def test_index_functions_on_tensors_give_plain_results():
    x = rd.tensor(np.array([[3.0, 1.0, 2.0], [0.0, 5.0, 4.0]]), requires_grad=True)
    for result, expected in [(np.argmax(x, axis=1), [0, 1]), (np.argsort(x[0]), [1, 2, 0]),
                             (np.count_nonzero(x), 5), (np.shape(x), (2, 3))]:
        assert not isinstance(result, rd.Tensor)
        np.testing.assert_array_equal(result, expected)


# -- composite functions: fan-out, indexing, reductions, linear algebra together --------------------
def _net(x):
    W = np.linspace(-1.0, 1.0, 12).reshape(3, 4)
    h = np.tanh(W @ x)
    return np.concatenate([h * h[::-1], np.cumsum(np.exp(-h))[:2], np.stack([np.linalg.norm(x), np.max(x)])])


@pytest.mark.parametrize("chunk", [None, 1, 2, 3, 7, 100])
def test_jacobian_chunks_agree(chunk):
    x0 = np.array([0.3, -0.7, 1.1, 0.2])
    J = rd.jacobian(_net, x0, chunk=chunk)
    assert J.shape == (7, 4)
    np.testing.assert_allclose(J, dualad.jacobian(_net, x0), rtol=RTOL_MODES, atol=1e-13)
    np.testing.assert_allclose(J, numerical_jacobian(_net, x0), rtol=RTOL_FD, atol=ATOL_FD)


def test_jacobian_chunk_with_tuple_inputs_and_matrix_output():
    rng = np.random.default_rng(3)
    A0, v0 = rng.standard_normal((3, 2)), rng.standard_normal(2)

    def f(A, v):
        return np.outer(np.sin(A @ v), v)        # (3, 2)
    for chunk in (None, 1, 4):
        JA, Jv = rd.jacobian(f, (A0, v0), chunk=chunk)
        assert JA.shape == (3, 2, 3, 2) and Jv.shape == (3, 2, 2)
        fA, fv = dualad.jacobian(f, (A0, v0))
        np.testing.assert_allclose(JA, fA, rtol=RTOL_MODES, atol=1e-13)
        np.testing.assert_allclose(Jv, fv, rtol=RTOL_MODES, atol=1e-13)


def test_jacobian_budget_splits_rows(monkeypatch):
    import reversead.functional as F
    monkeypatch.setattr(F, "COTANGENT_BUDGET", 8 * 4 * 2)    # two rows of 4 float64 per pass
    x0 = np.array([0.3, -0.7, 1.1, 0.2])
    np.testing.assert_allclose(rd.jacobian(_net, x0), dualad.jacobian(_net, x0), rtol=RTOL_MODES, atol=1e-13)


def test_jacobian_tuple_outputs():
    def f(a, b):
        return a * b, np.sum(a ** 2) + b[0], [np.exp(a)]

    a0, b0 = np.array([1.0, 2.0]), np.array([0.5, -1.0])
    J = rd.jacobian(f, (a0, b0))
    ref = dualad.jacobian(f, (a0, b0))
    assert isinstance(J, tuple) and len(J) == 3 and isinstance(J[2], list)
    for got, want in zip(_leaves(J), _leaves(ref)):
        np.testing.assert_allclose(got, want, rtol=RTOL_MODES, atol=1e-14)
    np.testing.assert_array_equal(J[0][0], np.diag(b0))
    np.testing.assert_array_equal(J[1][0], 2 * a0)


def test_jacobian_output_independent_of_input():
    J = rd.jacobian(lambda x: np.ones(3) * 2.0, np.ones(2))
    np.testing.assert_array_equal(J, np.zeros((3, 2)))
    Jp = rd.jacobian(lambda a, b: a * 2.0, (np.ones(2), np.ones(3)))
    np.testing.assert_array_equal(Jp[1], np.zeros((2, 3)))


def test_jacobian_scalar_input_and_output():
    assert float(rd.jacobian(lambda x: x ** 3, 2.0)) == 12.0
    assert np.shape(rd.jacobian(lambda x: x ** 3, 2.0)) == ()


# -- vjp / gradient / hessian / hvp --------------------------------------------------------------
def _rosen(x):
    return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)


def test_vjp_against_forward_jacobian():
    rng = np.random.default_rng(4)
    x0, u = rng.standard_normal(4), rng.standard_normal(7)
    y, g = rd.vjp(_net, x0, u)
    np.testing.assert_allclose(y, _net(x0), rtol=1e-15)
    np.testing.assert_allclose(g, u @ dualad.jacobian(_net, x0), rtol=1e-12, atol=1e-14)
    assert isinstance(y, np.ndarray) and not isinstance(g, rd.Tensor)


def test_vjp_tuple_inputs_and_outputs():
    def f(a, b):
        return np.sin(a) * b, np.sum(a * a)

    a0, b0 = np.array([0.1, 0.2, 0.3]), np.array([2.0, -1.0, 0.5])
    u = (np.array([1.0, 2.0, 3.0]), 0.5)
    (y1, y2), (ga, gb) = rd.vjp(f, (a0, b0), u)
    np.testing.assert_allclose(y1, np.sin(a0) * b0)
    assert float(y2) == pytest.approx(np.sum(a0 * a0))
    np.testing.assert_allclose(ga, u[0] * np.cos(a0) * b0 + 0.5 * 2 * a0, rtol=1e-14)
    np.testing.assert_allclose(gb, u[0] * np.sin(a0), rtol=1e-14)


@pytest.mark.parametrize("x0", [np.array([-1.2, 1.0]), np.array([0.5, 0.3, -0.8, 1.4])])
def test_gradient_and_hessian_against_dualad(x0):
    g = rd.gradient(_rosen, x0)
    np.testing.assert_allclose(g, dualad.gradient(_rosen, x0), rtol=1e-12)
    np.testing.assert_allclose(g, numerical_jacobian(_rosen, x0), rtol=1e-6, atol=1e-6)
    H = rd.hessian(_rosen, x0)
    assert H.shape == (x0.size, x0.size)
    np.testing.assert_allclose(H, dualad.hessian(_rosen, x0), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(H, H.T, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(H, numerical_jacobian(lambda z: dualad.gradient(_rosen, z), x0),
                               rtol=1e-5, atol=1e-5)


def test_hessian_of_matrix_input_and_tuple_inputs():
    rng = np.random.default_rng(5)
    A0, b0 = rng.standard_normal((2, 2)), rng.standard_normal(2)

    def f(A, b):
        return np.sum(np.tanh(A @ b) ** 2) + np.linalg.det(A) * b[0]

    H = rd.hessian(f, (A0, b0))
    Hf = dualad.hessian(f, (A0, b0))
    for got, want in zip(_leaves(H), _leaves(Hf)):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    Hm = rd.hessian(lambda A: f(A, b0), A0)
    assert Hm.shape == (2, 2, 2, 2)
    np.testing.assert_allclose(Hm, dualad.hessian(lambda A: f(A, b0), A0), rtol=1e-10, atol=1e-12)


def test_hvp_against_hessian():
    rng = np.random.default_rng(6)
    x0, v = rng.standard_normal(5), rng.standard_normal(5)
    Hv = rd.hvp(_rosen, x0, v)
    np.testing.assert_allclose(Hv, dualad.hessian(_rosen, x0) @ v, rtol=1e-12, atol=1e-10)


def test_gradient_tuple_inputs_and_scalars():
    ga, gb = rd.gradient(lambda a, b: a * a * b, (3.0, 2.0))
    assert float(ga) == 12.0 and float(gb) == 9.0
    assert float(rd.gradient(lambda x: np.sin(x), 0.0)) == 1.0
    g_list = rd.gradient(lambda a, b: np.sum(a * b), [np.ones(2), np.arange(2.0)])
    assert isinstance(g_list, tuple) and len(g_list) == 2


def test_gradient_integer_input_promoted():
    g = rd.gradient(lambda x: np.sum(x ** 2), np.array([1, 2, 3]))
    assert g.dtype == np.float64
    np.testing.assert_array_equal(g, [2.0, 4.0, 6.0])


def test_gradient_of_constant_function_is_zero():
    g = rd.gradient(lambda x: 3.0, np.ones(3))
    np.testing.assert_array_equal(g, np.zeros(3))


def test_gradient_through_python_control_flow():
    def f(x):
        s = 0.0
        for i in range(len(x)):
            s = s + (x[i] ** 2 if x[i] > 0 else np.sin(x[i]))
        return s

    x0 = np.array([0.5, -0.3, 1.2])
    np.testing.assert_allclose(rd.gradient(f, x0), dualad.gradient(f, x0), rtol=1e-14)


def test_functional_on_tensor_api_mixture():
    """f may use Tensor methods (.sum(), .T, .reshape) as well as NumPy functions."""
    def f(x):
        M = x.reshape(2, 2)
        return (M @ M.T).sum() + x.mean() * x.max()

    x0 = np.array([0.5, -1.0, 2.0, 0.25])
    np.testing.assert_allclose(rd.gradient(f, x0), numerical_jacobian(f, x0), rtol=1e-6, atol=1e-8)


def test_hessian_of_function_linear_in_one_input():
    """Found by dualad.fuzz: one input's gradient plain, the other's a DualArray."""
    import reversead
    H = reversead.hessian(lambda a, b: np.sum(a * a) + np.sum(b), (np.ones(2), np.ones(2)))
    np.testing.assert_array_equal(H[0][0], 2 * np.eye(2))
    for block in (H[0][1], H[1][0], H[1][1]):
        np.testing.assert_array_equal(block, np.zeros((2, 2)))


@pytest.mark.parametrize("shape", [(), (3,)], ids=["0-d", "1-d"])
@pytest.mark.parametrize("f", [
    lambda x: np.sum(np.where(x > 0, -1.6, x * x)),   # where's partials: (c != 0) * 1.0
    lambda x: np.sum(np.clip(x, 0.5, 2.0) * x),       # clip's: (x >= lo) * (x <= hi) * 1.0
    lambda x: np.sum(np.maximum(x, 0.3) * x),
], ids=["where", "clip", "maximum"])
def test_float32_stays_float32_through_boolean_partials(f, shape):
    """Found by dualad.fuzz's float32 check: partials built from comparisons are float64,
    and on 0-d inputs (NumPy scalars) and through dual numbers (forward over reverse) the
    cotangent kept that dtype: float64 gradients and Hessians of float32 inputs."""
    x = np.linspace(0.25, 1.5, 3).astype(np.float32).reshape(-1)[:max(1, int(np.prod(shape)))]
    x = x.reshape(shape)
    for result in (rd.gradient(f, x), rd.hessian(f, x), dualad.gradient(f, x), dualad.hessian(f, x)):
        assert result.dtype == np.float32
    np.testing.assert_allclose(rd.hessian(f, x), dualad.hessian(f, x.astype(np.float64)), rtol=1e-6)


def test_gradients_keep_the_inputs_float_dtype_past_float64_constants():
    """As PyTorch's engine: a float64 constant met on the way (NumPy promotes the values)
    does not make a float32 input's gradient float64, in backward, grad and jacobian."""
    A = np.array([[1.0, 2.0], [3.0, 4.0]])
    x0 = np.array([0.5, 1.5], np.float32)
    x = rd.tensor(x0, requires_grad=True)
    y = np.concatenate([A @ x, np.ones(1)])
    assert y.dtype == np.float64
    np.sum(y * y).backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_allclose(x.grad, 2 * A.T @ (A @ x0.astype(float)), rtol=1e-6)
    (g,) = rd.grad(np.sum(A @ x), [x])
    assert g.dtype == np.float32
    J = rd.jacobian(lambda v: A @ v, x0)
    assert J.dtype == np.float32 and dualad.jacobian(lambda v: A @ v, x0).dtype == np.float64
    np.testing.assert_array_equal(J, A.astype(np.float32))


def test_astype_between_float_dtypes_in_both_modes():
    """``x.astype(float32)`` is one rule of the table for DualArray and Tensor: the
    derivative is cast back to the input's dtype."""
    x0 = np.array([0.5, 1.5, -2.0])

    def f(x):
        return np.sin(x.astype(np.float32)) * x.astype(np.float32)

    J_rev, J_fwd = rd.jacobian(f, x0), dualad.jacobian(f, x0)
    assert J_rev.dtype == np.float64 and J_fwd.dtype == np.float32  # inputs' / outputs' dtype
    x32 = x0.astype(np.float32)
    expected = np.diag(np.cos(x32) * x32 + np.sin(x32))
    np.testing.assert_allclose(J_rev, expected, rtol=1e-6)
    np.testing.assert_allclose(J_fwd, expected, rtol=1e-6)
    t = rd.tensor(x0, requires_grad=True)
    y = t.astype(np.float32)
    assert y.dtype == np.float32 and type(y.grad_fn).__name__ == "AstypeBackward"
    (g,) = rd.grad(np.sum(y ** 3), [t], create_graph=True)
    assert g.dtype == np.float64
    (gg,) = rd.grad(np.sum(g), [t])
    np.testing.assert_allclose(gg, 6 * x32, rtol=1e-6)
    d = dualad.DualArray(x32, np.ones((2, 3), np.float32))
    assert d.astype(np.float64).tangent.dtype == np.float64


def test_astype_to_integers_has_no_derivative():
    x0 = np.array([0.5, 1.5, 2.5])
    t = rd.tensor(x0, requires_grad=True)
    i = t.astype(np.int64)
    assert not i.requires_grad and i.dtype == np.int64 and i.data.tolist() == [0, 1, 2]
    # the usual use: an index computed from the value; the gradient flows through the rest
    x1 = np.array([0.5, 0.25, 1.5])  # floor: 0, 0, 1, so f = x0·x0 + x0·x1 + x1·x2
    g = rd.gradient(lambda x: np.sum(x[x.astype(np.int64)] * x), x1)
    np.testing.assert_array_equal(g, [2 * 0.5 + 0.25, 0.5 + 1.5, 0.25])
    with pytest.raises(dualad.DerivativeDropError, match="astype"):  # forward mode refuses
        dualad.gradient(lambda x: np.sum(x.astype(np.int64) * x), x0)


def test_cumprod_hessians_near_a_zero_of_the_input():
    """Found by dualad.fuzz: where an element of x is tiny but not 0 (here 2e-15), the
    derivative out * cumsum(t / x), differentiated again, cancelled two terms of size
    |t x' / x| ~ 1e15: forward Hessians off by O(1), reverse ones not even symmetric.
    Both modes now match the same function written without cumprod."""
    x = (np.array(-0.71), np.array(-0.967))
    c = float(-0.71 * -0.967) - 2e-15

    def with_cumprod(a, b):
        v = a * b - c
        return np.sum(np.cumprod(np.stack([v, a, b]))) + np.sum(np.cumprod(v * np.ones(2)))

    def without(a, b):
        v = a * b - c
        return v + v * a + v * a * b + v + v * v

    expected = dualad.hessian(without, x)
    for H in (dualad.hessian(with_cumprod, x), rd.hessian(with_cumprod, x)):
        for row, row_expected in zip(H, expected):
            np.testing.assert_allclose(row, row_expected, rtol=1e-12, atol=1e-12)
