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
from dualad.array import DualArray
from dualad.errors import MissingRuleError
from dualad.rules import EXAMPLES, contractions, linalg, strip

FUNCTIONS = [np.einsum, np.dot, np.inner, np.outer, np.tensordot, np.kron, np.vdot,
             np.linalg.inv, np.linalg.det, np.linalg.slogdet, np.linalg.solve, np.linalg.norm,
             np.linalg.cholesky]
OUR_RULES = {contractions.einsum_rule, linalg.inv_rule, linalg.det_rule, linalg.logabsdet_rule,
             linalg.solve_rule, linalg.norm2_rule, linalg.cholesky_rule}
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
    if func is not np.linalg.norm or (isinstance(ord, str) or ord in (None, 2)):
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
    for ord in (2, -2, "nuc"):
        with pytest.raises(MissingRuleError, match="singular values"):
            np.linalg.norm(m, ord)
    with pytest.raises(TypeError):  # MissingRuleError is a TypeError
        np.linalg.norm(m, "nuc")
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
