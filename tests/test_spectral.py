"""The rest of np.linalg (dualad/rules/spectral.py): eig, eigvals, cond, matrix_rank, tensorinv,
tensorsolve and NumPy 2's Array-API functions (matmul, outer, tensordot, trace, diagonal, cross,
vecdot, matrix_transpose).

Values are NumPy's bit for bit in both modes (float64 and float32); derivatives against central
differences (``check_grads``, second order in float64), forward against reverse Jacobians and
Hessians, eig's VJP against its JVP, eig's gradients against PyTorch's ``torch.linalg.eig``; the
unit-norm gauge of the eigenvectors; the error paths (complex or repeated eigenvalues, singular
matrices for cond, NumPy's own errors for bad shapes and arguments).
"""
from __future__ import annotations

import numpy as np
import pytest

import dualad
import reversead as rd
from dualad import DualArray, NonNumericError, SingularMatrixError, UndefinedDerivativeError
from dualad.rules import spectral
from dualad.testing import check_grads
from _cases import _call, _leaves, _traced_call, _values, assert_values_equal_numpy

DTYPES = [np.float64, np.float32]
MODES = {"fwd": dualad, "rev": rd}


# -- test matrices --------------------------------------------------------------------------------
def real_spectrum(rng, *shape, spectrum=(-1.9, -0.6, 0.8, 2.1)):
    """``P diag(d) P⁻¹`` (non-symmetric) with real eigenvalues near ``spectrum`` (1.2 apart)."""
    n = shape[-1]
    d = np.asarray(spectrum[:n]) + rng.uniform(0.0, 0.1, shape[:-1])
    p = np.eye(n) + 0.4 * rng.standard_normal(shape) / np.sqrt(n)
    return np.matmul(p * d[..., None, :], np.linalg.inv(p))


def E(*shape):
    return lambda rng: real_spectrum(rng, *shape)


def N(*shape):
    return lambda rng: rng.standard_normal(shape)


def W(*shape):
    """Well-conditioned square stacks: N + n I."""
    return lambda rng: rng.standard_normal(shape) + shape[-1] * np.eye(shape[-1])


def Tn(*shape):
    """A tensor whose C-order (N, N) reshape is well-conditioned."""
    n = int(round(np.sqrt(np.prod(shape))))
    return lambda rng: np.reshape(rng.standard_normal((n, n)) + n * np.eye(n), shape)


def wsum(x):
    weights = np.resize(np.linspace(-1.0, 1.5, 37), np.shape(x)).astype(_values(x)[0].dtype)
    return np.sum(weights * x)


def gauge_free(a):
    """``V diag(sin w) V⁻¹``: a matrix function, the same whatever the eigenvectors' scale/sign."""
    w, v = np.linalg.eig(a)
    return np.linalg.solve(np.swapaxes(v, -1, -2), np.swapaxes(v * np.sin(w)[..., None, :], -1, -2))


CASES = {
    # Array-API functions
    "matmul": (lambda a, b: np.linalg.matmul(a, b), [N(2, 3, 4), N(4, 2)]),
    "outer": (lambda a, b: np.linalg.outer(a, b), [N(3), N(4)]),
    "tensordot": (lambda a, b: np.linalg.tensordot(a, b, axes=([1, 0], [0, 2])), [N(2, 3, 4), N(3, 5, 2)]),
    "tensordot-default": (lambda a, b: np.linalg.tensordot(a, b), [N(2, 3, 4), N(3, 4)]),
    "trace": (lambda a: np.linalg.trace(a), [N(2, 3, 3)]),
    "trace-offset": (lambda a: np.linalg.trace(a, offset=-1), [N(2, 4, 3)]),
    "diagonal": (lambda a: np.linalg.diagonal(a, offset=1), [N(2, 3, 4)]),
    "cross": (lambda a, b: np.linalg.cross(a, b), [N(4, 3), N(3)]),
    "cross-axis": (lambda a, b: np.linalg.cross(a, b, axis=0), [N(3, 2), N(3, 2)]),
    "vecdot": (lambda a, b: np.linalg.vecdot(a, b), [N(2, 3), N(3)]),
    "vecdot-axis": (lambda a, b: np.linalg.vecdot(a, b, axis=0), [N(3, 2), N(3, 1)]),
    "matrix_transpose": (lambda a: np.sin(np.linalg.matrix_transpose(a)), [N(2, 3, 4)]),
    # tensorinv, tensorsolve
    "tensorinv": (lambda a: np.linalg.tensorinv(a), [Tn(2, 2, 4)]),
    "tensorinv-ind1": (lambda a: np.linalg.tensorinv(a, ind=1), [Tn(4, 2, 2)]),
    "tensorsolve": (lambda a, b: np.linalg.tensorsolve(a, b), [Tn(2, 2, 2, 2), N(2, 2)]),
    "tensorsolve-axes": (lambda a, b: np.linalg.tensorsolve(a, b, axes=(0,)), [Tn(6, 2, 3), N(2, 3)]),
    # cond, every p, stacks, non-square for the singular-value orders
    "cond": (lambda a: np.linalg.cond(a), [W(3, 3)]),
    "cond-wide": (lambda a: np.linalg.cond(a), [N(3, 5)]),
    "cond-2-stack": (lambda a: np.linalg.cond(a, 2), [W(2, 3, 3)]),
    "cond-minus2-tall": (lambda a: np.linalg.cond(a, -2), [N(4, 3)]),
    "cond-fro": (lambda a: np.linalg.cond(a, "fro"), [W(3, 3)]),
    "cond-nuc-stack": (lambda a: np.linalg.cond(a, "nuc"), [W(2, 3, 3)]),
    "cond-1": (lambda a: np.linalg.cond(a, 1), [W(3, 3)]),
    "cond-minus1-stack": (lambda a: np.linalg.cond(a, -1), [W(2, 3, 3)]),
    "cond-inf": (lambda a: np.linalg.cond(a, np.inf), [W(3, 3)]),
    "cond-minus-inf": (lambda a: np.linalg.cond(a, -np.inf), [W(2, 2, 2)]),
    # eig and eigvals: raw (LAPACK's sign), stacks, gauge-free functions
    "eig": (lambda a: np.linalg.eig(a), [E(3, 3)]),
    "eig-stack": (lambda a: np.linalg.eig(a), [E(2, 4, 4)]),
    "eig-1x1": (lambda a: np.linalg.eig(a), [E(2, 1, 1)]),
    "eig-matrix-function": (gauge_free, [E(3, 3)]),
    "eigvals": (lambda a: np.linalg.eigvals(a), [E(4, 4)]),
    "eigvals-stack": (lambda a: np.linalg.eigvals(a) ** 2, [E(3, 2, 2)]),
}


def _point(makers, dtype, rng):
    x = tuple(make(rng).astype(dtype) for make in makers)
    return x[0] if len(x) == 1 else x


def _scalar(f):
    def s(*xs):
        return sum(wsum(y) for y in _leaves(f(*xs)))
    return s


# -- values ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("name", list(CASES))
def test_values_equal_numpy_bitwise(name, mode, dtype, rng):
    f, makers = CASES[name]
    x = _point(makers, dtype, rng)
    assert_values_equal_numpy(f, x, mode)


@pytest.mark.parametrize("mode", list(MODES))
def test_eig_result_type_is_numpys(mode):
    a = real_spectrum(np.random.default_rng(1), 3, 3)
    got, want = _traced_call(np.linalg.eig, a, mode), np.linalg.eig(a)
    assert type(got) is type(want)
    np.testing.assert_array_equal(_values(got.eigenvalues)[0], want.eigenvalues)
    np.testing.assert_array_equal(_values(got.eigenvectors)[0], want.eigenvectors)


# -- derivatives ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(CASES))
def test_derivatives_against_finite_differences(name, rng):
    f, makers = CASES[name]
    check_grads(f, _point(makers, np.float64, rng), order=2, modes=("fwd", "rev"))


@pytest.mark.parametrize("name", list(CASES))
def test_float32_and_modes_agree(name, rng):
    f, makers = CASES[name]
    x = _point(makers, np.float32, rng)
    check_grads(f, x, order=1, modes=("fwd", "rev"))  # (float32 stays float32, checked there)
    for a, b in zip(_leaves(dualad.jacobian(f, x)), _leaves(rd.jacobian(f, x))):
        assert np.asarray(a).dtype == np.asarray(b).dtype == np.float32
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-4)


@pytest.mark.parametrize("name", [n for n in CASES if n.startswith(("eig", "cond", "tensor"))])
def test_modes_agree_in_float64_jacobians_and_hessians(name, rng):
    f, makers = CASES[name]
    x = _point(makers, np.float64, rng)
    for a, b in zip(_leaves(dualad.jacobian(f, x)), _leaves(rd.jacobian(f, x))):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-11)
    s = _scalar(f)
    for a, b in zip(_leaves(dualad.hessian(s, x)), _leaves(rd.hessian(s, x))):
        np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-9)


def test_eig_rule_vjp_is_the_transpose_of_its_jvp():
    """eig's VJP with one cotangent (nb = 0) and a batch of three (nb = 1) against uᵀ J."""
    rng = np.random.default_rng(3)
    for a in (real_spectrum(rng, 3, 3), real_spectrum(rng, 2, 3, 3)):
        for rule in (spectral.eig_rule, spectral.eigvals_rule):
            out = rule.primal(a)
            J = dualad.jacobian(lambda x: rule(x), a)
            u = rng.standard_normal(out.shape)
            np.testing.assert_allclose(rule.vjp(0, u, [a], out, 0, {}), np.tensordot(u, J, axes=out.ndim),
                                       rtol=1e-10, atol=1e-12)
            us = rng.standard_normal((3,) + out.shape)
            rows = rule.vjp(0, us, [a], out, 1, {})
            for k in range(3):
                np.testing.assert_allclose(rows[k], np.tensordot(us[k], J, axes=out.ndim),
                                           rtol=1e-10, atol=1e-12)


def test_eigenvalue_derivative_is_the_textbook_one():
    """dλ_i = (V⁻¹ Ȧ V)_ii = u_iᵀ Ȧ v_i / u_iᵀ v_i with u_i the left eigenvectors."""
    rng = np.random.default_rng(5)
    a, t = real_spectrum(rng, 4, 4), rng.standard_normal((4, 4))
    w, v = np.linalg.eig(a)
    u = np.linalg.inv(v).T  # columns: left eigenvectors, scaled so that u_iᵀ v_i = 1
    want = np.einsum("ji,jk,ki->i", u, t, v)
    for f in (lambda x: np.linalg.eig(x)[0], np.linalg.eigvals):
        np.testing.assert_allclose(dualad.jvp(f, (a,), (t,))[1], want, rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(rd.jacobian(f, a).reshape(4, 16) @ t.ravel(), want, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("mode", list(MODES))
def test_eigenvector_gauge_keeps_unit_norm_and_lapacks_sign(mode):
    rng = np.random.default_rng(6)
    a = real_spectrum(rng, 2, 3, 3)
    J = MODES[mode].jacobian(lambda x: np.sum(np.linalg.eig(x)[1] ** 2, axis=-2), a)
    np.testing.assert_allclose(J, 0.0, atol=1e-13)
    # the columns follow LAPACK's (continuous) choice: a nearby matrix's V is V + J·dA to O(h²)
    h, t = 1e-6, rng.standard_normal(a.shape)
    v0, v1 = np.linalg.eig(a)[1], np.linalg.eig(a + h * t)[1]
    vdot = np.tensordot(MODES[mode].jacobian(lambda x: np.linalg.eig(x)[1], a), t, axes=3)
    np.testing.assert_allclose(v1, v0 + h * vdot, atol=1e-10)


def test_eig_gradients_match_pytorch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(7)
    a = real_spectrum(rng, 4, 4)
    cw, cv = rng.standard_normal(4), rng.standard_normal((4, 4))
    w_np, v_np = np.linalg.eig(a)
    at = torch.tensor(a, requires_grad=True)
    wt, vt = torch.linalg.eig(at)
    # match torch's eigenpairs to NumPy's (order and sign of each column)
    order = [int(np.argmin(np.abs(wt.detach().numpy().real - w))) for w in w_np]
    wt, vt = wt.real[order], vt.real[:, order]
    sign = torch.tensor(np.sign(np.sum(vt.detach().numpy() * v_np, axis=0)))
    loss = torch.sum(torch.tensor(cw) * wt) + torch.sum(torch.tensor(cv) * vt * sign)
    (g_torch,) = torch.autograd.grad(loss, at)

    def f(x):
        w, v = np.linalg.eig(x)
        return np.sum(cw * w) + np.sum(cv * v)
    for module in MODES.values():
        np.testing.assert_allclose(module.gradient(f, a), g_torch.numpy(), rtol=1e-9, atol=1e-11)
    eigvals_t = torch.linalg.eigvals(at).real[order]
    (g_vals,) = torch.autograd.grad(torch.sum(torch.tensor(cw) * eigvals_t), at)
    for module in MODES.values():
        np.testing.assert_allclose(module.gradient(lambda x: np.sum(cw * np.linalg.eigvals(x)), a),
                                   g_vals.numpy(), rtol=1e-9, atol=1e-11)


def test_cond_gradients_match_pytorch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(8)
    a = rng.standard_normal((2, 3, 3)) + 3 * np.eye(3)
    for p in (None, 2, -2, "fro", "nuc", 1, -1, np.inf, -np.inf):
        at = torch.tensor(a, requires_grad=True)
        if p in (None, 2, -2):
            c = torch.linalg.cond(at, p)
        else:  # (torch.linalg.cond's backward fails for these p: its own definition instead)
            c = torch.linalg.matrix_norm(at, p) * torch.linalg.matrix_norm(torch.linalg.inv(at), p)
        (g_torch,) = torch.autograd.grad(torch.sum(c), at)
        for module in MODES.values():
            np.testing.assert_allclose(module.gradient(lambda x: np.sum(np.linalg.cond(x, p)), a),
                                       g_torch.numpy(), rtol=1e-9, atol=1e-11)


def test_eigvals_takes_eig_vectors_in_its_own_order():
    """eigvals' derivatives take V from eig; should LAPACK order the two differently, the
    columns are matched to eigvals' values."""
    a = real_spectrum(np.random.default_rng(9), 3, 3)
    w, v = np.linalg.eig(a)
    perm = np.array([2, 0, 1])
    np.testing.assert_array_equal(spectral._eigenvectors_matching(a, w[perm]), v[:, perm])
    assert spectral._eigenvectors_matching(a, w) is not None


# -- integers: matrix_rank -------------------------------------------------------------------------
@pytest.mark.parametrize("mode", list(MODES))
def test_matrix_rank_is_numpys_plain_integer(mode):
    rng = np.random.default_rng(10)
    a = np.stack([rng.standard_normal((3, 4)), np.outer(rng.standard_normal(3), rng.standard_normal(4))])
    for kwargs in ({}, {"tol": 0.5}, {"rtol": 0.1}):
        got = _traced_call(lambda x: np.linalg.matrix_rank(x, **kwargs), a, mode)
        assert getattr(got, "_ad_level", None) is None
        np.testing.assert_array_equal(got, np.linalg.matrix_rank(a, **kwargs))
    assert _traced_call(np.linalg.matrix_rank, np.zeros(3), mode) == 0
    f = lambda x: x * np.linalg.matrix_rank(x)  # noqa: E731  (a constant factor)
    np.testing.assert_allclose(MODES[mode].jacobian(f, a[0]), 3 * np.eye(12).reshape(3, 4, 3, 4))


# -- error paths ------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", list(MODES))
def test_complex_eigenvalues_raise(mode):
    rotation = np.array([[0.0, -1.0], [1.0, 0.0]])
    stack = np.stack([np.diag([1.0, 2.0]), rotation])
    for f in (np.linalg.eig, np.linalg.eigvals):
        with pytest.raises(NonNumericError, match=r"complex eigenvalues.*\(matrix \(1,\) of the stack\)"):
            MODES[mode].jacobian(f, stack)
        with pytest.raises(NonNumericError, match="complex eigenvalues"):
            _traced_call(f, rotation, mode)


@pytest.mark.parametrize("mode", list(MODES))
def test_repeated_eigenvalues_raise(mode):
    a = np.array([[2.0, 1.0, 0.3], [0.0, 2.0, 0.5], [0.0, 0.0, -1.0]])  # a Jordan block at 2
    b = np.diag([1.0, 1.0, 3.0])  # diagonalizable, repeated
    for x in (a, b, np.stack([real_spectrum(np.random.default_rng(0), 3, 3), b])):
        for f in (lambda x: np.linalg.eig(x)[0], lambda x: np.linalg.eig(x)[1], np.linalg.eigvals):
            with pytest.raises(UndefinedDerivativeError, match="eigenvalues 0 and 1 are equal"):
                MODES[mode].jacobian(f, x)


def test_repeated_eigenvalues_raise_only_where_differentiated():
    """A stack's matrix with repeated eigenvalues is fine when no tangent or cotangent reaches it."""
    good = real_spectrum(np.random.default_rng(0), 3, 3)
    stack = np.stack([good, np.diag([1.0, 1.0, 3.0])])
    t = np.zeros((1,) + stack.shape)
    t[0, 0] = 1.0
    w = np.linalg.eig(DualArray(stack, t))[0]
    np.testing.assert_array_equal(w.primal, np.linalg.eig(stack)[0])
    x = rd.tensor(stack, requires_grad=True)
    np.sum(np.linalg.eigvals(x)[0]).backward()
    np.testing.assert_allclose(x.grad[0], rd.gradient(lambda y: np.sum(np.linalg.eigvals(y)), good))
    np.testing.assert_array_equal(x.grad[1], 0.0)


@pytest.mark.parametrize("mode", list(MODES))
def test_cond_of_singular_matrices_raises(mode):
    singular = np.array([[1.0, 2.0], [0.0, 0.0]])  # (a zero singular value, exactly)
    stack = np.stack([np.eye(2), singular])
    for p in (None, 2, 1, "fro", -np.inf):
        assert np.isinf(np.linalg.cond(stack, p)[1])  # NumPy's value
        with pytest.raises(SingularMatrixError, match=r"singular.*\(matrix \(1,\) of the stack\)"):
            MODES[mode].jacobian(lambda x: np.linalg.cond(x, p), stack)
    with pytest.raises(SingularMatrixError, match="largest singular value is 0"):
        MODES[mode].jacobian(lambda x: np.linalg.cond(x, -2), np.zeros((2, 2)))
    # p=-2 of a singular, nonzero matrix is 0 (a kink): NumPy's value, a one-sided derivative
    assert _values(_traced_call(lambda x: np.linalg.cond(x, -2), singular, mode))[0] == 0.0


def _both_raise(f, x, mode, error, match):
    """NumPy's error on the plain call, and the same on the traced one."""
    with pytest.raises(error, match=match):
        _call(f, x)
    with pytest.raises(error, match=match):
        _traced_call(f, x, mode)


@pytest.mark.parametrize("mode", list(MODES))
def test_numpys_errors(mode):
    la = np.linalg
    cases = [
        (lambda a, b: la.outer(a, b), (np.ones((2, 2)), np.ones(3)), ValueError, r"one-dimensional.*x1.ndim=2"),
        (lambda a, b: la.cross(a, b), (np.ones(2), np.ones(3)), ValueError, "3-dimensional vectors"),
        (lambda a, b: la.cross(a, b, axis=2), (np.ones(3), np.ones(3)), IndexError, "out of range"),
        (lambda a: la.matrix_transpose(a), np.ones(3), ValueError, "at least 2-dimensional, but it is 1"),
        (lambda a: la.trace(a), np.ones(3), ValueError, "at least two dimensions"),
        (lambda a: la.tensorinv(a, ind=0), np.ones((2, 2)), ValueError, "Invalid ind argument"),
        (lambda a: la.tensorinv(a, ind=1), np.ones((2, 3)), la.LinAlgError, "must be square"),
        (lambda a, b: la.tensorsolve(a, b), (np.ones((2, 3, 2)), np.ones(2)), la.LinAlgError,
         "prod"),
        (lambda a, b: la.tensorsolve(a, b, axes=(5,)), (np.ones((2, 2)), np.ones(2)), ValueError, "not in list"),
        (lambda a: la.cond(a), np.ones((0, 0)), la.LinAlgError, "empty arrays"),
        (lambda a: la.cond(a, 1), np.ones((2, 3)), la.LinAlgError, "must be square"),
        (lambda a: la.cond(a, 1), np.ones(3), la.LinAlgError, "at least two-dimensional"),
        (lambda a: la.cond(a, 3), np.eye(2), ValueError, "Invalid norm order"),
        (lambda a: la.eig(a), np.ones((2, 3)), la.LinAlgError, "must be square"),
        (lambda a: la.eigvals(a), np.ones(3), la.LinAlgError, "at least two-dimensional"),
    ]
    for f, x, error, match in cases:
        _both_raise(f, x, mode, error, match)
