"""Linear algebra and contractions: einsum, dot, inner, outer, tensordot, kron, vdot and
np.linalg inv, det, slogdet, solve, norm, cholesky.

The oracle is central finite differences (a local helper, float64). Forward mode is
checked on every registered example (stacked matrices included), in float32 too; the
reverse rules (``Rule.vjp``) are called directly with ``nb = 0`` and ``nb = 1`` on the
exact primals each example feeds them, and compared with ``uᵀ J`` from forward mode.
"""
from __future__ import annotations

import numpy as np
import pytest

import dualad
import reversead
from dualad.array import DualArray
from dualad.rules import EXAMPLES, contractions, linalg, strip

FUNCTIONS = [np.einsum, np.dot, np.inner, np.outer, np.tensordot, np.kron, np.vdot,
             np.linalg.inv, np.linalg.det, np.linalg.slogdet, np.linalg.solve, np.linalg.norm,
             np.linalg.cholesky]
OUR_RULES = {contractions.einsum_rule, linalg.inv_rule, linalg.det_rule, linalg.logabsdet_rule,
             linalg.solve_rule, linalg.norm2_rule, linalg.pnorm_rule, linalg.cholesky_rule}
CASES = [pytest.param(func, i, id=f"{func.__name__}-{i}")
         for func in FUNCTIONS for i in range(len(EXAMPLES[func]))]


# -- helpers ---------------------------------------------------------------------
def fd_jacobian(f, x, eps=1e-6):
    """Central differences in float64: shape ``f(x).shape + x.shape``."""
    x = np.asarray(x, dtype=np.float64)
    y0 = np.asarray(f(x), dtype=np.float64)
    J = np.zeros(y0.shape + x.shape)
    for i in np.ndindex(x.shape):
        step = np.zeros_like(x)
        step[i] = eps
        J[(Ellipsis,) + i] = (np.asarray(f(x + step)) - np.asarray(f(x - step))) / (2 * eps)
    return J


def value_of(func, result):
    """The differentiable output: logabsdet for slogdet, the result otherwise."""
    return result[1] if func is np.linalg.slogdet else result


def float_slots(args):
    return [i for i, a in enumerate(args) if isinstance(a, np.ndarray) and a.dtype.kind == "f"]


def as_function_of(func, args, kwargs, slot):
    def f(x):
        filled = list(args)
        filled[slot] = x
        return value_of(func, func(*filled, **kwargs))
    return f


def example(func, index, seed=0):
    return EXAMPLES[func][index](np.random.default_rng(seed))


def assert_close(a, b, rtol=1e-6, atol=1e-7):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    scale = max(1.0, float(np.max(np.abs(b), initial=0.0)))
    np.testing.assert_allclose(a, b, rtol=rtol, atol=atol * scale)


# -- forward mode vs finite differences, every example ---------------------------
@pytest.mark.parametrize("func, index", CASES)
def test_forward_matches_finite_differences(func, index):
    args, kwargs = example(func, index)
    for slot in float_slots(args):
        f = as_function_of(func, args, kwargs, slot)
        J = dualad.jacobian(f, args[slot])
        assert_close(J, fd_jacobian(f, args[slot]), rtol=1e-5, atol=1e-6)
        v = np.random.default_rng(1).standard_normal(args[slot].shape)
        y, jv = dualad.jvp(f, args[slot], v)
        assert_close(y, f(args[slot]), rtol=1e-12, atol=1e-12)  # the primal is NumPy's value
        assert_close(jv, np.tensordot(J, v, axes=v.ndim), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("func, index", CASES)
def test_float32_stays_float32(func, index):
    args, kwargs = example(func, index)
    args = tuple(a.astype(np.float32) if isinstance(a, np.ndarray) else a for a in args)
    for slot in float_slots(args):
        f = as_function_of(func, args, kwargs, slot)
        J = dualad.jacobian(f, args[slot])
        y = f(args[slot])
        assert J.dtype == np.float32, f"float32 input gave a {J.dtype} Jacobian"
        if isinstance(y, np.ndarray):
            assert y.dtype == np.float32
        f64 = as_function_of(func, tuple(a.astype(np.float64) if isinstance(a, np.ndarray) else a
                                         for a in args), kwargs, slot)
        assert_close(J, dualad.jacobian(f64, args[slot].astype(np.float64)), rtol=2e-3, atol=2e-4)


# -- reverse rules, called directly --------------------------------------------------
def record_applications(func, args, kwargs, slot, monkeypatch):
    """(rule, primals, traced argnums, static) of each of our rules applied in one forward pass."""
    seen = []
    original = DualArray._ad_apply

    def recorder(rule, xs, static):
        if rule in OUR_RULES:
            traced = [i for i, x in enumerate(xs) if isinstance(x, DualArray)]
            seen.append((rule, [strip(x) for x in xs], traced, dict(static)))
        return original(rule, xs, static)
    monkeypatch.setattr(DualArray, "_ad_apply", staticmethod(recorder))
    dualad.jvp(as_function_of(func, args, kwargs, slot), args[slot], np.ones_like(args[slot]))
    monkeypatch.setattr(DualArray, "_ad_apply", staticmethod(original))
    return seen


def check_vjp(rule, primals, argnum, static, rng):
    out = rule.primal(*primals, **static)

    def f(x):
        xs = list(primals)
        xs[argnum] = x
        return rule(*xs, **static)
    J = dualad.jacobian(f, primals[argnum])
    out_ndim, x_shape = np.ndim(out), np.shape(primals[argnum])
    u = rng.standard_normal(np.shape(out))
    x_bar = rule.vjp(argnum, u, primals, out, 0, static)
    assert np.shape(x_bar) == x_shape
    assert_close(x_bar, np.tensordot(u, J, axes=out_ndim), rtol=1e-10, atol=1e-12)
    us = rng.standard_normal((3,) + np.shape(out))
    x_bars = rule.vjp(argnum, us, primals, out, 1, static)
    assert np.shape(x_bars) == (3,) + x_shape
    for row in range(3):
        assert_close(x_bars[row], np.tensordot(us[row], J, axes=out_ndim), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("func, index", [c for c in CASES if c.values[0] in
                                          (np.einsum, np.linalg.inv, np.linalg.det, np.linalg.slogdet,
                                           np.linalg.solve, np.linalg.norm, np.linalg.cholesky)])
def test_vjp_matches_forward_jacobian(func, index, monkeypatch):
    args, kwargs = example(func, index)
    rng = np.random.default_rng(2)
    checked = 0
    for slot in float_slots(args):
        for rule, primals, traced, static in record_applications(func, args, kwargs, slot, monkeypatch):
            for argnum in traced:
                check_vjp(rule, primals, argnum, static, rng)
                checked += 1
    ord = kwargs.get("ord", args[1] if len(args) > 1 else None)
    if func is not np.linalg.norm or isinstance(ord, str) or ord not in (1, -1, np.inf, -np.inf):
        assert checked, "no rule of ours was applied"


def test_vjp_of_diagonal_einsums_scatters_onto_the_diagonal():
    x = np.arange(9.0).reshape(3, 3)
    rule = contractions.einsum_rule
    static = {"subscripts": "ii->", "optimize": False}
    np.testing.assert_allclose(rule.vjp(0, np.array(2.0), [x], rule.primal(x, **static), 0, static),
                               2.0 * np.eye(3))
    static = {"subscripts": "ii->i", "optimize": False}
    g = np.array([1.0, 2.0, 3.0])
    np.testing.assert_allclose(rule.vjp(0, g, [x], rule.primal(x, **static), 0, static), np.diag(g))
    cube = np.random.default_rng(0).standard_normal((2, 2, 2, 3))
    check_vjp(rule, [cube], 0, {"subscripts": "iiij->j", "optimize": False}, np.random.default_rng(3))
    check_vjp(rule, [x, cube[0, 0]], 0, {"subscripts": "ij,kl->i", "optimize": True},
              np.random.default_rng(4))


# -- Hessians (forward over forward) vs finite differences of gradients --------------
def _wc(rng, *shape, sign=1.0):
    return rng.standard_normal(shape) + sign * shape[-1] * np.eye(shape[-1])


HESSIAN_CASES = {
    "det": (lambda a: np.linalg.det(a), lambda rng: _wc(rng, 3, 3)),
    "det-negative": (lambda a: np.linalg.det(a), lambda rng: _wc(rng, 3, 3, sign=-1.0)),
    "det-stacked": (lambda a: np.sum(np.linalg.det(a) ** 2), lambda rng: _wc(rng, 2, 3, 3)),
    "logdet": (lambda a: np.linalg.slogdet(a)[1], lambda rng: _wc(rng, 3, 3)),
    "norm": (lambda x: np.linalg.norm(x), lambda rng: rng.standard_normal(4)),
    "norm-fro": (lambda x: np.linalg.norm(x, "fro"), lambda rng: rng.standard_normal((2, 3))),
    "norm-axis": (lambda x: np.sum(np.linalg.norm(x, axis=1) ** 3), lambda rng: rng.standard_normal((3, 2))),
    "norm-p3": (lambda x: np.linalg.norm(x, 3), lambda rng: rng.standard_normal(4)),
    "inv": (lambda a: np.sum(np.sin(np.linalg.inv(a))), lambda rng: _wc(rng, 3, 3)),
    "solve": (lambda a: np.sum(np.linalg.solve(a, np.arange(1.0, 4.0)) ** 2), lambda rng: _wc(rng, 3, 3)),
    "cholesky": (lambda a: np.sum(np.linalg.cholesky(a @ a.T + 3 * np.eye(3)) ** 3),
                 lambda rng: rng.standard_normal((3, 3))),
    "einsum": (lambda a: np.einsum("ij,jk,ki->", a, a, a), lambda rng: rng.standard_normal((3, 3))),
    "tensordot-kron": (lambda a: np.tensordot(np.kron(a, a), np.outer(a, a)), lambda rng: rng.standard_normal((2, 2))),
}


@pytest.mark.parametrize("name", list(HESSIAN_CASES))
def test_hessian_matches_finite_differences_of_gradient(name):
    f, make = HESSIAN_CASES[name]
    x = make(np.random.default_rng(5))
    H = dualad.hessian(f, x)
    H_fd = fd_jacobian(lambda z: dualad.gradient(f, z), x)
    assert H.shape == x.shape + x.shape
    assert_close(H, H_fd, rtol=1e-5, atol=1e-6)
    flat = H.reshape(x.size, x.size)
    assert_close(flat, flat.T, rtol=1e-9, atol=1e-10)


# -- matrix-calculus identities (course seeds) -------------------------------------
def test_gradient_of_linear_form_is_a():
    rng = np.random.default_rng(6)
    a, x = rng.standard_normal(4), rng.standard_normal(4)
    for f in (lambda x: a @ x, lambda x: np.dot(a, x), lambda x: np.inner(x, a), lambda x: np.vdot(a, x),
              lambda x: np.einsum("i,i", a, x)):
        np.testing.assert_allclose(dualad.gradient(f, x), a)


def test_jacobian_of_linear_map_is_the_matrix():
    rng = np.random.default_rng(7)
    A, x = rng.standard_normal((3, 4)), rng.standard_normal(4)
    for f in (lambda x: A @ x, lambda x: np.dot(A, x), lambda x: np.einsum("ij,j->i", A, x),
              lambda x: np.tensordot(A, x, axes=1)):
        np.testing.assert_allclose(dualad.jacobian(f, x), A)


def test_gradient_of_quadratic_form():
    rng = np.random.default_rng(8)
    A, x = rng.standard_normal((4, 4)), rng.standard_normal(4)
    np.testing.assert_allclose(dualad.gradient(lambda x: x @ A @ x, x), (A + A.T) @ x)
    np.testing.assert_allclose(dualad.gradient(lambda x: np.einsum("i,ij,j", x, A, x), x), (A + A.T) @ x)
    np.testing.assert_allclose(dualad.hessian(lambda x: x @ A @ x, x), A + A.T, atol=1e-12)


def test_gradient_of_log_abs_det_is_inverse_transpose():
    rng = np.random.default_rng(9)
    for sign in (1.0, -1.0):
        A = _wc(rng, 4, 4, sign=sign)
        expected = np.linalg.inv(A).T
        np.testing.assert_allclose(dualad.gradient(lambda A: np.linalg.slogdet(A)[1], A), expected)
        np.testing.assert_allclose(dualad.gradient(lambda A: np.log(np.abs(np.linalg.det(A))), A), expected)
        np.testing.assert_allclose(dualad.gradient(np.linalg.det, A), np.linalg.det(A) * expected)


def test_gradient_of_trace_of_product_is_b_transpose():
    rng = np.random.default_rng(10)
    A, B = rng.standard_normal((3, 4)), rng.standard_normal((4, 3))
    np.testing.assert_allclose(dualad.gradient(lambda A: np.trace(A @ B), A), B.T)
    np.testing.assert_allclose(dualad.gradient(lambda A: np.einsum("ij,ji->", A, B), A), B.T)


# -- specific behaviour ---------------------------------------------------------------
def test_slogdet_returns_numpys_result_type():
    A = _wc(np.random.default_rng(11), 2, 3, 3, sign=-1.0)
    x = DualArray(A, np.ones((1,) + A.shape))
    result = np.linalg.slogdet(x)
    expected = np.linalg.slogdet(A)
    assert type(result) is type(expected)
    np.testing.assert_array_equal(result.sign, expected.sign)
    assert not isinstance(result.sign, DualArray)  # sign is piecewise constant
    np.testing.assert_allclose(result.logabsdet.primal, expected.logabsdet)


def test_norm_at_zero_has_zero_subgradient():
    assert np.all(dualad.jacobian(np.linalg.norm, np.zeros(3)) == 0)
    assert np.all(dualad.jacobian(lambda x: np.linalg.norm(x, "fro"), np.zeros((2, 2))) == 0)
    assert np.all(dualad.jacobian(lambda x: np.linalg.norm(x, 2), np.zeros(3)) == 0)
    x = np.array([[0.0, 0.0], [3.0, 4.0]])
    J = dualad.jacobian(lambda x: np.linalg.norm(x, axis=1), x)
    np.testing.assert_allclose(J[0], 0.0)
    np.testing.assert_allclose(J[1], [[0, 0], [0.6, 0.8]])
    rule = linalg.norm2_rule
    static = {"axis": None, "keepdims": False}
    zero = np.zeros(3)
    np.testing.assert_array_equal(rule.vjp(0, np.array(1.0), [zero], rule.primal(zero, **static), 0, static), 0)


def test_norm_matches_numpy_for_every_order():
    rng = np.random.default_rng(12)
    v, m = rng.standard_normal(5), rng.standard_normal((3, 4))
    for x, ords in ((v, [None, 1, 2, np.inf, -np.inf, 0, 3, 0.5, -1.5]),
                    (m, [None, "fro", 1, -1, np.inf, -np.inf])):
        for ord in ords:
            y = np.linalg.norm(DualArray(x, np.ones((1,) + x.shape)), ord)
            np.testing.assert_allclose(strip(y), np.linalg.norm(x, ord), err_msg=f"ord={ord}")


def test_solve_vector_and_matrix_right_hand_sides():
    rng = np.random.default_rng(13)
    A = _wc(rng, 2, 3, 3)
    for b in (rng.standard_normal(3), rng.standard_normal((3, 2)), rng.standard_normal((2, 3, 4))):
        y, _ = dualad.jvp(lambda a: np.linalg.solve(a, b), A, np.ones_like(A))
        np.testing.assert_allclose(y, np.linalg.solve(A, b))


def test_cholesky_reads_the_lower_triangle_only():
    A = _wc(np.random.default_rng(14), 3, 3) @ _wc(np.random.default_rng(14), 3, 3).T
    J = dualad.jacobian(np.linalg.cholesky, A)
    upper = np.triu(np.ones((3, 3)), 1).astype(bool)
    assert np.all(J[..., upper] == 0)  # NumPy ignores the strict upper triangle
    Ju = dualad.jacobian(lambda a: np.linalg.cholesky(a, upper=True), A)
    assert np.all(Ju[..., upper.T] == 0)


def test_einsum_calling_forms():
    rng = np.random.default_rng(15)
    a, b = rng.standard_normal((2, 3)), rng.standard_normal((3, 4))
    forms = [
        (lambda a: np.einsum(a, [0, 1], b, [1, 2], [0, 2]), lambda a: a @ b),
        (lambda a: np.einsum(a, [0, 1], b, [1, 2]), lambda a: a @ b),
        (lambda a: np.einsum("bA", a), lambda a: a.T),  # implicit output: sorted, 'A' < 'b'
        (lambda a: np.einsum(" i j , j k -> k i ", a, b), lambda a: (a @ b).T),
        (lambda a: np.einsum("...j,jk->...k", a[None], b), lambda a: (a @ b)[None]),
        (lambda a: np.einsum("ij,ij->ij", a[:, :1], a), lambda a: a[:, :1] * a),  # size-1 broadcast
        (lambda a: np.einsum("ij,jk", a, b, optimize="greedy"), lambda a: a @ b),
    ]
    for f, reference in forms:
        J = dualad.jacobian(f, a)
        np.testing.assert_allclose(J, fd_jacobian(reference, a), rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(dualad.jvp(f, a, a)[0], reference(a), rtol=1e-12)


def test_dot_family_matches_numpy_for_all_dimensionalities():
    rng = np.random.default_rng(16)
    shapes = [(), (3,), (2, 3), (4, 2, 3)]
    for sa in shapes:
        for sb in [(), (3,), (3, 2), (4, 3, 2), (5, 2, 3)]:
            a, b = rng.standard_normal(sa), rng.standard_normal(sb)
            da = DualArray(a, np.ones((1,) + a.shape))
            for func in (np.dot, np.inner, np.outer, np.kron):
                try:
                    expected = func(a, b)
                except ValueError:
                    with pytest.raises(ValueError):
                        func(da, b)
                    continue
                np.testing.assert_allclose(strip(func(da, b)), expected, rtol=1e-12,
                                           err_msg=f"{func.__name__} {sa} {sb}")


# -- errors ---------------------------------------------------------------------------
def test_unsupported_forms_raise_clear_errors():
    rng = np.random.default_rng(17)
    m = DualArray(rng.standard_normal((3, 3)), np.ones((1, 3, 3)))
    for ord in (2, -2, "nuc"):  # no error since the SVD rules (tests/test_decompositions.py)
        np.testing.assert_allclose(strip(np.linalg.norm(m, ord)), np.linalg.norm(m.primal, ord))
    with pytest.raises(ValueError, match="Invalid norm order 'fro' for vectors"):
        np.linalg.norm(m[0], "fro")
    with pytest.raises(ValueError, match="Invalid norm order for matrices"):
        np.linalg.norm(m, 3)
    with pytest.raises(ValueError, match="Improper number of dimensions"):
        np.linalg.norm(m[None], 1)
    with pytest.raises(TypeError, match="out="):
        np.einsum("ij->ji", m, out=np.empty((3, 3)))
    with pytest.raises(TypeError, match="dtype"):
        np.einsum("ij->ji", m, dtype=np.float32)
    with pytest.raises(ValueError, match="ellipsis"):
        np.einsum("...i->i", m)
    with pytest.raises(ValueError, match="operands"):
        np.einsum("ij,jk->ik", m)
    with pytest.raises(ValueError, match="invalid subscript"):
        np.einsum("i1->i", m)
    with pytest.raises(ValueError, match="name 1 axes"):
        np.einsum("i->i", m)
    with pytest.raises(TypeError, match="out="):
        np.dot(m, m, out=np.empty((3, 3)))
    with pytest.raises(ValueError, match="shape-mismatch"):
        np.tensordot(m, np.ones((2, 2)), axes=1)
    with pytest.raises(ValueError, match="different lengths"):
        np.vdot(m, np.ones(4))
    with pytest.raises(np.linalg.LinAlgError):
        np.linalg.inv(DualArray(np.zeros((2, 2)), np.ones((1, 2, 2))))
    with pytest.raises(np.linalg.LinAlgError):
        np.linalg.cholesky(DualArray(-np.eye(2), np.ones((1, 2, 2))))


# -- norms at 0 and at partly-zero inputs: the zero-subgradient convention, both modes ----------
MODES = {"fwd": dualad, "rev": reversead}  # reverse mode: the same rules through the tape


def norm_of(ord=None, axis=None, keepdims=False):
    return lambda x: np.sum(np.linalg.norm(x, ord, axis, keepdims))


def p_norm_gradient(x, p):
    """Hand-derived: sign(xᵢ) (|xᵢ| / ‖x‖_p)^(p-1), 0 where xᵢ = 0 or ‖x‖_p = 0 (the convention)."""
    y = np.linalg.norm(x, p)
    g = np.zeros_like(x)
    if y != 0:
        nz = x != 0
        g[nz] = np.sign(x[nz]) * (np.abs(x[nz]) / y) ** (p - 1)
    return g


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("f, x", [
    (norm_of(), np.zeros(2)), (norm_of(2), np.zeros(3)), (norm_of("fro"), np.zeros((2, 3))),
    (norm_of(None, 1), np.zeros((2, 3))), (norm_of(None, (0, 2), True), np.zeros((2, 3, 2))),
], ids=["2", "ord2", "fro", "axis", "axes-keepdims"])
def test_norm_hessian_at_zero_is_zero(mode, f, x):
    """The zero subgradient's derivative is 0 too (it was I: d(x/1)/dx)."""
    H = MODES[mode].hessian(f, x)
    assert H.shape == x.shape + x.shape
    assert np.all(H == 0)
    assert np.all(MODES[mode].gradient(f, x) == 0)


def test_norm_hessian_next_to_a_zero_row_is_exact():
    """Rows with ‖x‖ = 0 get a zero block; the others keep (I - x̂ x̂ᵀ) / ‖x‖."""
    x = np.array([[0.0, 0.0], [3.0, 4.0]])
    u = x[1] / 5
    expected = np.zeros((2, 2, 2, 2))
    expected[1, :, 1, :] = (np.eye(2) - np.outer(u, u)) / 5
    for module in MODES.values():
        assert_close(module.hessian(norm_of(None, 1), x), expected, rtol=1e-12, atol=1e-14)


P_ORDS = [3, 4.5, 1.5, 0.5, -1, -1.5]
#: NumPy's own norm warns computing 0 ** -1.5 for negative orders (its value, 0, is right)
numpy_warns_at_zero = pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")
PARTLY_ZERO = [np.zeros(3), np.array([0.0, 1.0, 0.0]), np.array([0.0, -2.0, 3.0]),
               np.array([1.0, -2.0, 0.5])]


@numpy_warns_at_zero
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("p", P_ORDS)
@pytest.mark.parametrize("x", PARTLY_ZERO, ids=["zero", "one-nonzero", "one-zero", "no-zero"])
def test_p_norm_gradient_at_zero_and_partly_zero(mode, p, x):
    f = norm_of(p)
    g = MODES[mode].gradient(f, x)
    assert np.all(np.isfinite(g)), g
    assert_close(g, p_norm_gradient(x, p), rtol=1e-12, atol=1e-14)
    # central differences where the norm is differentiable: components with xᵢ ≠ 0 while
    # ‖x‖_p > 0, and any component for p > 1 (|t|^p is differentiable at 0, with slope 0)
    if np.linalg.norm(x, p) > 0:
        fd = fd_jacobian(f, x)
        check = (x != 0) | (p > 1)
        assert_close(g[check], fd[check], rtol=1e-6, atol=1e-8)


@numpy_warns_at_zero
@pytest.mark.parametrize("p", P_ORDS)
def test_p_norm_modes_agree_at_second_order_on_partly_zero_inputs(p):
    x = np.array([[0.0, -2.0, 3.0], [0.0, 0.0, 0.0], [1.0, 0.5, -1.5]])
    f = lambda x: np.sum(np.linalg.norm(x, p, axis=1) ** 2)  # noqa: E731
    H_fwd, H_rev = dualad.hessian(f, x), reversead.hessian(f, x)
    assert np.all(np.isfinite(H_fwd))
    assert_close(H_fwd, H_rev, rtol=1e-10, atol=1e-12)
    assert np.all(H_fwd[1, :, :, :] == 0) and np.all(H_fwd[:, :, 1, :] == 0)  # the zero row
    if p > 2:  # twice differentiable at xᵢ = 0 too: the Hessian is the true one
        H_fd = fd_jacobian(lambda z: dualad.gradient(f, z), x)
        keep = np.ones(x.shape, bool)
        keep[1] = False  # ‖x‖_p² is not twice differentiable at x = 0 (the zero row)
        assert_close(H_fwd[keep][:, keep], H_fd[keep][:, keep], rtol=1e-5, atol=1e-4)


def test_p_norm_hessian_matches_finite_differences_at_generic_points():
    rng = np.random.default_rng(20)
    for p in P_ORDS:
        for x, axis, keepdims in ((rng.standard_normal(4), None, False),
                                  (rng.standard_normal((3, 4)), 0, True), (rng.standard_normal((2, 3)), -1, False)):
            f = lambda z: np.sum(np.sin(np.linalg.norm(z, p, axis, keepdims)))  # noqa: E731
            H_fd = fd_jacobian(lambda z: reversead.gradient(f, z), x)
            for module in MODES.values():
                assert_close(module.hessian(f, x), H_fd, rtol=1e-5, atol=1e-6)


@numpy_warns_at_zero
@pytest.mark.parametrize("mode", MODES)
def test_vector_norms_with_kinks_at_zero_components(mode):
    """ord 1, inf, -inf, 0 at zero and partly-zero inputs: abs' convention (0 at 0), no NaN."""
    grad = MODES[mode].gradient
    x = np.array([0.0, -2.0, 3.0])
    np.testing.assert_array_equal(grad(norm_of(1), x), [0, -1, 1])
    np.testing.assert_array_equal(grad(norm_of(np.inf), x), [0, 0, 1])
    np.testing.assert_array_equal(grad(norm_of(-np.inf), x), [0, 0, 0])  # min |x| is at the kink
    np.testing.assert_array_equal(grad(norm_of(0), x), [0, 0, 0])  # a count
    for ord in (1, np.inf, -np.inf, 0, 2, 3, 0.5, -1.5):
        np.testing.assert_array_equal(grad(norm_of(ord), np.zeros(3)), 0)


MATRIX = np.array([[0.0, 1.0, 0.0], [2.0, 0.0, -3.0]])  # column sums 2, 1, 3; row sums 1, 5


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("ord, expected", [
    ("fro", MATRIX / np.sqrt(14.0)),
    (1, [[0, 0, 0], [0, 0, -1]]),          # column 2 has the largest sum
    (-1, [[0, 1, 0], [0, 0, 0]]),          # column 1 the smallest; abs' is 0 at 0
    (np.inf, [[0, 0, 0], [1, 0, -1]]),     # row 1 the largest
    (-np.inf, [[0, 1, 0], [0, 0, 0]]),     # row 0 the smallest
])
def test_matrix_norms_at_partly_zero_inputs(mode, ord, expected):
    module = MODES[mode]
    assert_close(module.gradient(norm_of(ord), MATRIX), np.asarray(expected, float), rtol=1e-12)
    assert np.all(module.gradient(norm_of(ord), np.zeros((2, 3))) == 0)
    assert np.all(module.hessian(norm_of(ord), np.zeros((2, 3))) == 0)
    # the same matrix in a stack, reduced over axes (2, 0) / (0, 2) with keepdims
    stack = np.stack([np.zeros((2, 3)), MATRIX], axis=1)  # (2, 2, 3): matrices stack[:, i, :]
    for axis, matrix_grad in (((0, 2), expected), ((2, 0), module.gradient(norm_of(ord), MATRIX.T).T)):
        g = module.gradient(norm_of(ord, axis, True), stack)
        assert np.all(g[:, 0, :] == 0)
        assert_close(g[:, 1, :], np.asarray(matrix_grad, float), rtol=1e-12)


@pytest.mark.parametrize("mode", MODES)
def test_norms_at_zero_keep_float32(mode):
    module = MODES[mode]
    for ord, x in ((None, np.zeros(3)), (3, np.array([0.0, 1.0, 2.0])), (0.5, np.array([0.0, 1.0, 2.0])),
                   (-1.5, np.array([1.0, 2.0, 3.0])), ("fro", np.zeros((2, 2)))):
        x32 = x.astype(np.float32)
        g, H = module.gradient(norm_of(ord), x32), module.hessian(norm_of(ord), x32)
        assert g.dtype == np.float32 and H.dtype == np.float32, (ord, g.dtype, H.dtype)
        assert_close(g, module.gradient(norm_of(ord), x), rtol=1e-5, atol=1e-6)
        assert np.all(np.isfinite(H))


# -- det at singular matrices: the adjugate (cofactor matrix) ----------------------------------
def cofactors(A):
    """Hand-computed cofactor matrix C = adj(A)ᵀ: (-1)^(i+j) det(A without row i, column j),
    the minors' determinants by NumPy; for one matrix or a stack."""
    n = A.shape[-1]
    if n == 1:
        return np.ones_like(A)
    C = np.empty_like(A)
    for i in range(n):
        for j in range(n):
            minor = np.delete(np.delete(A, i, axis=-2), j, axis=-1)
            C[..., i, j] = (-1) ** (i + j) * np.linalg.det(minor)
    return C


def _rank(rng, n, r, *batch):
    return rng.standard_normal(batch + (n, r)) @ rng.standard_normal(batch + (r, n))


SINGULAR = {
    "2x2 rank 1": np.array([[1.0, 2.0], [2.0, 4.0]]),
    "2x2 zero": np.zeros((2, 2)),
    "3x3 zero": np.zeros((3, 3)),
    "1x1 zero": np.zeros((1, 1)),
    "3x3 rank 2": _rank(np.random.default_rng(21), 3, 2),
    "3x3 integer rank 2": np.arange(1.0, 10.0).reshape(3, 3),
    "3x3 rank 1": _rank(np.random.default_rng(22), 3, 1),
    "4x4 rank 3": _rank(np.random.default_rng(23), 4, 3),
    "5x5 rank 4": _rank(np.random.default_rng(24), 5, 4),
    "stack": np.stack([_rank(np.random.default_rng(25), 3, 2), _wc(np.random.default_rng(26), 3, 3),
                       np.zeros((3, 3))]),
}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", list(SINGULAR))
def test_det_gradient_at_singular_matrices_is_the_cofactor_matrix(mode, name):
    A = SINGULAR[name]
    f = lambda a: np.sum(np.linalg.det(a))  # noqa: E731
    g = MODES[mode].gradient(f, A)
    assert_close(g, cofactors(A), rtol=1e-9, atol=1e-12)
    assert_close(g, fd_jacobian(f, A), rtol=1e-6, atol=1e-8)
    if name == "2x2 rank 1":
        np.testing.assert_allclose(g, [[4.0, -2.0], [-2.0, 1.0]], rtol=1e-14)
    if name == "3x3 rank 2":
        assert np.max(np.abs(g)) > 0.1  # rank n-1: a nonzero adjugate


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", list(SINGULAR))
def test_det_hessian_at_singular_matrices(mode, name):
    """Second order: the derivative of the cofactor matrix (a polynomial), hand-computed, and
    central differences of it; for 2x2 ``ad - bc`` the Hessian is constant."""
    A = SINGULAR[name]
    f = lambda a: np.sum(np.linalg.det(a))  # noqa: E731
    H = MODES[mode].hessian(f, A)
    assert_close(H, fd_jacobian(cofactors, A), rtol=1e-6, atol=1e-7)
    flat = H.reshape(A.size, A.size)
    assert_close(flat, flat.T, rtol=1e-12, atol=1e-13)
    if A.shape == (2, 2):
        expected = np.zeros((2, 2, 2, 2))
        expected[0, 0, 1, 1] = expected[1, 1, 0, 0] = 1.0
        expected[0, 1, 1, 0] = expected[1, 0, 0, 1] = -1.0
        np.testing.assert_allclose(H, expected, atol=1e-14)


def test_det_third_order_at_a_singular_matrix():
    """det of 3x3 is cubic: ∂³det/∂a_ij ∂a_kl ∂a_mn = ε_ikm ε_jln, at any A (here rank 2)."""
    eps = np.zeros((3, 3, 3))
    eps[0, 1, 2] = eps[1, 2, 0] = eps[2, 0, 1] = 1.0
    eps[0, 2, 1] = eps[2, 1, 0] = eps[1, 0, 2] = -1.0
    third = dualad.jacobian(lambda a: dualad.hessian(np.linalg.det, a), SINGULAR["3x3 integer rank 2"])
    np.testing.assert_allclose(third, np.einsum("ikm,jln->ijklmn", eps, eps), atol=1e-12)


def test_det_create_graph_at_a_singular_matrix():
    A = SINGULAR["3x3 integer rank 2"]
    x = reversead.tensor(A, requires_grad=True)
    (g,) = reversead.grad(np.linalg.det(x), x, create_graph=True)
    assert_close(g.detach().numpy(), cofactors(A), rtol=1e-9, atol=1e-12)
    v = np.random.default_rng(27).standard_normal((3, 3))
    (hv,) = reversead.grad(np.sum(g * v), x)
    H = fd_jacobian(cofactors, A)
    assert_close(hv, np.tensordot(v, H, axes=2), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("delta", [1e-6, 1e-10, 1e-14])
def test_det_near_singular_matrices_first_and_second_order(mode, delta):
    """cond up to ~1e15: the gradient and the Hessian stay exact to rounding. (The derivative of
    det · A⁻¹ would not: at cond 1e10 its Hessian was off by 1e-6, at rank n-1 by 100 %.)"""
    rng = np.random.default_rng(28)
    A = _rank(rng, 4, 3) + delta * rng.standard_normal((4, 4))
    scale = np.linalg.norm(A, 2)
    module = MODES[mode]
    assert_close(module.gradient(np.linalg.det, A), cofactors(A), rtol=1e-12, atol=1e-14 * scale ** 3)
    H_fd = fd_jacobian(cofactors, A)
    assert_close(module.hessian(np.linalg.det, A), H_fd, rtol=1e-6, atol=1e-7 * scale ** 2)


@pytest.mark.parametrize("mode", MODES)
def test_det_at_singular_matrices_keeps_float32(mode):
    module = MODES[mode]
    for name in ("2x2 rank 1", "3x3 integer rank 2", "stack"):
        A = SINGULAR[name].astype(np.float32)
        f = lambda a: np.sum(np.linalg.det(a))  # noqa: E731
        g, H = module.gradient(f, A), module.hessian(f, A)
        assert g.dtype == np.float32 and H.dtype == np.float32
        assert_close(g, cofactors(A.astype(np.float64)), rtol=2e-4, atol=2e-4)
        assert_close(H, fd_jacobian(cofactors, A.astype(np.float64)), rtol=2e-4, atol=2e-4)


def test_det_of_well_conditioned_matrices_takes_the_inverse(monkeypatch):
    """The fast path: det · A⁻¹, no SVD and no cofactors, in both modes and at second order."""
    def refuse(a):
        raise AssertionError("the adjugate was built for a well-conditioned matrix")
    monkeypatch.setattr(linalg, "_adjugate", refuse)
    A = _wc(np.random.default_rng(29), 2, 3, 3)
    f = lambda a: np.sum(np.linalg.det(a))  # noqa: E731
    for module in MODES.values():
        assert_close(module.gradient(f, A), cofactors(A), rtol=1e-10, atol=1e-12)
        module.hessian(f, A)


@pytest.mark.parametrize("mode", MODES)
def test_slogdet_at_a_singular_matrix_raises_a_clear_error(mode):
    A = SINGULAR["2x2 rank 1"]
    sign, logabsdet = np.linalg.slogdet(A)
    assert sign == 0 and logabsdet == -np.inf
    f = lambda a: np.linalg.slogdet(a)[1]  # noqa: E731
    with pytest.raises(linalg.SingularMatrixError, match="slogdet.*singular.*np.linalg.det"):
        MODES[mode].gradient(f, A)
    with pytest.raises(np.linalg.LinAlgError):  # it is a LinAlgError too
        MODES[mode].gradient(lambda a: np.sum(f(a)), np.stack([np.eye(3), np.zeros((3, 3))]))
    assert issubclass(linalg.SingularMatrixError, dualad.errors.ADError)
    assert dualad.SingularMatrixError is linalg.SingularMatrixError
    assert issubclass(dualad.SingularMatrixError, np.linalg.LinAlgError)
