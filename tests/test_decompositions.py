"""Matrix decompositions (dualad/rules/decompositions.py): eigh, eigvalsh, svd, svdvals, qr, pinv,
lstsq, matrix_power, multi_dot, matrix_norm, vector_norm, and norm's orders 2, -2, 'nuc'.

Values are compared with NumPy's bit for bit in both modes; derivatives with central differences
(``check_grads``, both modes, second order in float64), the two modes' Jacobians and Hessians with
each other, and the rules' VJPs (``nb = 0`` and ``nb = 1``) with forward-mode Jacobians. Test
matrices have well-separated spectra (random orthogonal factors around a chosen diagonal) so that
finite differences are stable. Eigen- and singular vectors are LAPACK's (signs arbitrary but
locally continuous): the cases differentiate them raw and through gauge-invariant functions
(``V diag(f(w)) Vᵀ``, ``U S Vᵀ``, projections ``U Uᵀ``, ``|V|``). The error paths (repeated
values, non-unique columns, rank deficiency, unsupported modes) are checked with their messages.
"""
from __future__ import annotations

import numpy as np
import pytest

import dualad
import reversead as rd
from dualad import DualArray, MissingRuleError, SingularMatrixError, UndefinedDerivativeError
from dualad.errors import ADError
from dualad.rules import decompositions
from dualad.testing import check_grads
from _cases import _call, _leaves, _values, _traced_call, assert_values_equal_numpy

DTYPES = [np.float64, np.float32]
MODES = {"fwd": dualad, "rev": rd}


# -- test matrices --------------------------------------------------------------------------------
def orthonormal(rng, *shape):
    """Matrices with orthonormal columns, ``shape`` (..., m, k), m >= k."""
    q, r = np.linalg.qr(rng.standard_normal(shape))
    return q * np.sign(np.diagonal(r, axis1=-2, axis2=-1))[..., None, :]


def symmetric(rng, *shape, spectrum=(-1.6, -0.3, 1.1, 2.4)):
    """``Q diag(d) Qᵀ`` with eigenvalues near ``spectrum`` (1.3 apart)."""
    n = shape[-1]
    d = np.asarray(spectrum[:n]) + rng.uniform(0.0, 0.1, shape[:-1])
    q = orthonormal(rng, *shape)
    return np.matmul(q * d[..., None, :], np.swapaxes(q, -1, -2))


def rectangular(rng, *shape, values=(3.1, 2.2, 1.4, 0.7), noise=0.05):
    """``U diag(s) Vᵀ`` with singular values near ``values`` (0.7 apart, none below 0.7)."""
    m, n = shape[-2:]
    k = min(m, n)
    s = np.asarray(values[:k]) + rng.uniform(0.0, noise, shape[:-2] + (k,))
    u, v = orthonormal(rng, *shape[:-2], m, k), orthonormal(rng, *shape[:-2], n, k)
    return np.matmul(u * s[..., None, :], np.swapaxes(v, -1, -2))


def moderate(rng, *shape):
    return np.eye(shape[-1]) + 0.3 * rng.standard_normal(shape) / shape[-1]


def weights(shape):
    """Fixed weights (so that a scalar reduction mixes every entry differently)."""
    return np.resize(np.linspace(-1.0, 1.5, 37), shape)


def wsum(x):
    """A weighted sum in x's own dtype (float32 stays float32)."""
    return np.sum(weights(np.shape(x)).astype(_values(x)[0].dtype) * x)


def _mT(x):
    return np.swapaxes(x, -1, -2)


def S(*shape, junk=None, **kwargs):
    """Maker of a symmetric stack; ``junk``: noise in the triangle that eigh does not read."""
    def make(rng):
        return decompositions.unread_noise(rng, symmetric(rng, *shape, **kwargs), junk)
    return make


def R(*shape, **kwargs):
    return lambda rng: rectangular(rng, *shape, **kwargs)


def N(*shape):
    return lambda rng: rng.standard_normal(shape)


def M(*shape):
    return lambda rng: moderate(rng, *shape)


def matrix_function(a):
    w, v = np.linalg.eigh(a)
    return (v * np.sin(w)[..., None, :]) @ _mT(v)


def abs_vectors(a):
    w, v = np.linalg.eigh(a)
    return wsum(np.abs(v)) + wsum(w ** 2)


def projector(a):
    v = np.linalg.eigh(a)[1][..., :, :2]
    return v @ _mT(v)


def svd_reassembled(a):
    u, s, vh = np.linalg.svd(a, False)
    return (u * np.tanh(s)[..., None, :]) @ vh


def svd_projections(a):
    u, _, vh = np.linalg.svd(a, False)
    return u @ _mT(u), _mT(vh) @ vh


# name -> (f of float arrays, makers ``rng -> array`` of its arguments); every f is plain NumPy
CASES = {
    # eigh: raw (LAPACK's gauge), gauge-invariant, triangles, stacks
    "eigh-raw": (lambda a: np.linalg.eigh(a), [S(3, 3)]),
    "eigh-matrix-function": (matrix_function, [S(4, 4)]),
    "eigh-abs-vectors": (abs_vectors, [S(3, 3)]),
    "eigh-upper-junk": (lambda a: np.linalg.eigh(a), [S(3, 3, junk="upper")]),
    "eigh-UPLO-U": (lambda a: np.linalg.eigh(a, UPLO="U"), [S(3, 3, junk="lower")]),
    "eigh-stack": (lambda a: np.linalg.eigh(a), [S(2, 3, 3)]),
    "eigh-projector": (projector, [S(2, 4, 4)]),
    "eigvalsh": (lambda a: np.linalg.eigvalsh(a), [S(4, 4)]),
    "eigvalsh-stack-U": (lambda a: np.linalg.eigvalsh(a, "U") ** 2, [S(3, 2, 2, junk="lower")]),
    # svd: thin (both shapes), square full, values only, hermitian, gauge-invariant products
    "svd-square": (lambda a: np.linalg.svd(a), [R(3, 3)]),
    "svd-tall-thin": (lambda a: np.linalg.svd(a, full_matrices=False), [R(4, 2)]),
    "svd-wide-thin": (lambda a: np.linalg.svd(a, full_matrices=False), [R(2, 4)]),
    "svd-stack": (lambda a: np.linalg.svd(a, full_matrices=False), [R(2, 4, 3)]),
    "svd-reassembled": (svd_reassembled, [R(3, 5)]),
    "svd-projections": (svd_projections, [R(4, 3)]),
    "svd-values": (lambda a: np.linalg.svd(a, compute_uv=False), [R(3, 4)]),
    "svd-hermitian": (lambda a: np.linalg.svd(a, hermitian=True), [S(3, 3, spectrum=(-2.3, 0.6, 1.5))]),
    "svd-hermitian-values": (lambda a: np.linalg.svd(a, compute_uv=False, hermitian=True),
                             [S(3, 3, spectrum=(-2.3, 0.6, 1.5))]),
    "svdvals": (lambda a: np.linalg.svdvals(a) ** 2, [R(2, 3, 4)]),
    # qr: tall, square, wide, stacks, modes
    "qr-tall": (lambda a: np.linalg.qr(a), [R(4, 3)]),
    "qr-square": (lambda a: np.linalg.qr(a), [R(3, 3)]),
    "qr-wide": (lambda a: np.linalg.qr(a), [R(2, 4)]),
    "qr-stack": (lambda a: np.linalg.qr(a), [R(2, 3, 2)]),
    "qr-r": (lambda a: np.linalg.qr(a, mode="r"), [R(4, 3)]),
    "qr-complete-square": (lambda a: np.linalg.qr(a, mode="complete"), [R(3, 3)]),
    "qr-complete-wide": (lambda a: np.linalg.qr(a, mode="complete"), [R(2, 3)]),
    "qr-reassembled": (lambda a: np.sin(np.matmul(*np.linalg.qr(a))), [R(4, 2)]),
    # pinv, lstsq
    "pinv-tall": (lambda a: np.linalg.pinv(a), [R(4, 3)]),
    "pinv-wide-stack": (lambda a: np.linalg.pinv(a), [R(2, 2, 3)]),
    "pinv-hermitian": (lambda a: np.linalg.pinv(a, hermitian=True), [S(3, 3, junk="upper")]),
    "pinv-rtol": (lambda a: np.linalg.pinv(a, rtol=None), [R(3, 2)]),
    "lstsq-over": (lambda a, b: np.linalg.lstsq(a, b), [R(5, 3), N(5)]),
    "lstsq-matrix-b": (lambda a, b: np.linalg.lstsq(a, b, rcond=None), [R(4, 2), N(4, 3)]),
    "lstsq-under": (lambda a, b: np.linalg.lstsq(a, b), [R(2, 4), N(2)]),
    # composites
    "matrix_power-5": (lambda a: np.linalg.matrix_power(a, 5), [M(3, 3)]),
    "matrix_power-neg-stack": (lambda a: np.linalg.matrix_power(a, -3), [M(2, 3, 3)]),
    "matrix_power-0": (lambda a: np.linalg.matrix_power(a, 0) + a, [M(2, 2)]),
    "multi_dot-4": (lambda a, b: np.linalg.multi_dot([b, a, a.T, b[::-1]]), [N(3, 4), N(3)]),
    "multi_dot-3": (lambda a, b: np.linalg.multi_dot([a, b, a]), [N(2, 5), N(5, 2)]),
    # norms through singular values
    "norm-2": (lambda a: np.linalg.norm(a, 2), [R(3, 4)]),
    "norm-minus-2-axes": (lambda a: np.linalg.norm(a, -2, axis=(2, 0), keepdims=True),
                          [lambda r: np.moveaxis(rectangular(r, 2, 3, 4), 0, 1)]),
    "norm-nuc": (lambda a: np.linalg.norm(a, "nuc"), [R(4, 3)]),
    "matrix_norm-2-stack": (lambda a: np.linalg.matrix_norm(a, ord=2), [R(2, 3, 3)]),
    "matrix_norm-nuc-keepdims": (lambda a: np.linalg.matrix_norm(a, ord="nuc", keepdims=True), [R(2, 2, 3)]),
    "matrix_norm-fro": (lambda a: np.linalg.matrix_norm(a), [N(2, 3)]),
    "vector_norm-all": (lambda a: np.linalg.vector_norm(a), [N(2, 3)]),
    "vector_norm-axes": (lambda a: np.linalg.vector_norm(a, axis=(0, 2), ord=3, keepdims=True), [N(2, 3, 2)]),
    "vector_norm-inf": (lambda a: np.linalg.vector_norm(a, axis=-1, ord=np.inf), [N(3, 4)]),
}


def _point(makers, dtype, rng):
    x = tuple(make(rng).astype(dtype) for make in makers)
    return x[0] if len(x) == 1 else x


def _scalar(f):
    """A scalar function of f's float outputs with fixed weights (for Hessians)."""
    def s(*xs):
        return sum(wsum(y) for y in _leaves(f(*xs)) if _values(y)[0].dtype.kind == "f")
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
def test_result_types_are_numpys(mode):
    rng = np.random.default_rng(1)
    a = symmetric(rng, 3, 3)
    for f, fields in ((np.linalg.eigh, ("eigenvalues", "eigenvectors")), (np.linalg.svd, ("U", "S", "Vh")),
                      (np.linalg.qr, ("Q", "R"))):
        got, want = _traced_call(f, a, mode), f(a)
        assert type(got) is type(want)
        for field in fields:
            np.testing.assert_array_equal(_values(getattr(got, field))[0], getattr(want, field))
    w, v = _traced_call(np.linalg.eigh, a, mode)  # tuple-unpackable
    np.testing.assert_array_equal(_values(w)[0], np.linalg.eigh(a)[0])


# -- derivatives ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(CASES))
def test_derivatives_against_finite_differences(name, rng):
    f, makers = CASES[name]
    check_grads(f, _point(makers, np.float64, rng), order=2, modes=("fwd", "rev"))


@pytest.mark.parametrize("name", list(CASES))
def test_float32_and_modes_agree(name, rng):
    f, makers = CASES[name]
    x = _point(makers, np.float32, rng)
    check_grads(f, x, order=1, modes=("fwd", "rev"))  # (also: float32 stays float32)
    for y, forward, reverse in _per_output(f, x):
        if y.dtype.kind != "f":
            continue  # lstsq's rank: an integer, no derivative
        for a, b in zip(forward, reverse):
            assert np.asarray(a).dtype == np.asarray(b).dtype == np.float32
            np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-5)


def _per_output(f, x):
    """(output value, its forward Jacobian blocks, its reverse Jacobian blocks) per output."""
    outputs = _call(f, x)
    forward, reverse = dualad.jacobian(f, x), rd.jacobian(f, x)
    if not isinstance(outputs, tuple):
        outputs, forward, reverse = (outputs,), (forward,), (reverse,)
    assert len(forward) == len(reverse) == len(outputs)
    return [(np.asarray(y), _leaves(a), _leaves(b)) for y, a, b in zip(outputs, forward, reverse)]


@pytest.mark.parametrize("name", list(CASES))
def test_modes_agree_in_float64_jacobians_and_hessians(name, rng):
    f, makers = CASES[name]
    x = _point(makers, np.float64, rng)
    for _, forward, reverse in _per_output(f, x):
        for a, b in zip(forward, reverse):
            np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-12)
    s = _scalar(f)
    for a, b in zip(_leaves(dualad.hessian(s, x)), _leaves(rd.hessian(s, x))):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-10)


def test_reverse_over_reverse_matches_forward_over_reverse():
    """create_graph=True: the VJPs are differentiated again by the tape (rules on Tensors)."""
    rng = np.random.default_rng(2)
    cases = [(lambda a: np.sum(np.sin(np.linalg.eigh(a)[1]) * np.linalg.eigh(a)[0]), symmetric(rng, 3, 3)),
             (lambda a: wsum(np.linalg.svd(a, full_matrices=False)[0] ** 3), rectangular(rng, 4, 3)),
             (lambda a: wsum(np.linalg.qr(a)[1] ** 2) + wsum(np.linalg.pinv(a) ** 2), rectangular(rng, 4, 3)),
             (lambda a: np.sum(np.linalg.eigvalsh(a) ** 3) + np.linalg.norm(a, "nuc"), symmetric(rng, 3, 3))]
    for f, a in cases:
        x = rd.tensor(a, requires_grad=True)
        (g,) = rd.grad(f(x), x, create_graph=True)
        v = rng.standard_normal(a.shape)
        (hv,) = rd.grad(np.sum(g * v), x)
        H = rd.hessian(f, a)
        np.testing.assert_allclose(hv, np.tensordot(H, v, axes=2), rtol=1e-9, atol=1e-10)


VJP_CASES = [
    (decompositions.eigh_rule, lambda r: symmetric(r, 2, 3, 3), {"UPLO": "L"}),
    (decompositions.eigh_rule, S(3, 3, junk="lower"), {"UPLO": "U"}),
    (decompositions.eigvalsh_rule, lambda r: symmetric(r, 4, 4), {"UPLO": "L"}),
    (decompositions.svd_rule, lambda r: rectangular(r, 4, 3), {"full_matrices": False}),
    (decompositions.svd_rule, lambda r: rectangular(r, 2, 2, 3), {"full_matrices": False}),
    (decompositions.svd_rule, lambda r: rectangular(r, 3, 3), {"full_matrices": True}),
    (decompositions.svdvals_rule, lambda r: rectangular(r, 3, 4), {}),
    (decompositions.qr_rule, lambda r: rectangular(r, 4, 3), {"complete": False}),
    (decompositions.qr_rule, lambda r: rectangular(r, 2, 2, 4), {"complete": False}),
    (decompositions.pinv_rule, lambda r: rectangular(r, 3, 4), {"rcond": 1e-15, "hermitian": False}),
    (decompositions.pinv_rule, S(3, 3, junk="upper"), {"rcond": 1e-15, "hermitian": True}),
]


@pytest.mark.parametrize("rule, make, static", VJP_CASES, ids=lambda v: getattr(v, "name", None))
def test_rule_vjps_are_the_transposes_of_the_jvps(rule, make, static):
    """Each rule's VJP with one cotangent (nb = 0) and a batch of three (nb = 1) against uᵀ J from
    forward mode's Jacobian of the same rule."""
    rng = np.random.default_rng(3)
    a = make(rng)
    out = rule.primal(a, **static)
    J = dualad.jacobian(lambda x: rule(x, **static), a)
    u = rng.standard_normal(out.shape)
    np.testing.assert_allclose(rule.vjp(0, u, [a], out, 0, static), np.tensordot(u, J, axes=out.ndim),
                               rtol=1e-10, atol=1e-12)
    us = rng.standard_normal((3,) + out.shape)
    rows = rule.vjp(0, us, [a], out, 1, static)
    assert rows.shape == (3,) + a.shape
    for k in range(3):
        np.testing.assert_allclose(rows[k], np.tensordot(us[k], J, axes=out.ndim), rtol=1e-10, atol=1e-12)


# -- conventions --------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", list(MODES))
def test_eigh_reads_one_triangle_only(mode):
    a = symmetric(np.random.default_rng(4), 3, 3)
    upper = np.triu(np.ones((3, 3), bool), 1)
    for f, unread in ((lambda a: np.linalg.eigh(a)[1], upper), (lambda a: np.linalg.eigvalsh(a), upper),
                      (lambda a: np.linalg.eigh(a, UPLO="U")[0], upper.T),
                      (lambda a: np.linalg.pinv(a, hermitian=True), upper)):
        J = MODES[mode].jacobian(f, a)
        assert np.all(J[..., unread] == 0)
        assert np.any(J[..., ~unread] != 0)


def test_eigh_derivative_along_symmetric_directions_is_the_textbook_one():
    rng = np.random.default_rng(5)
    a = symmetric(rng, 4, 4)
    e = rng.standard_normal((4, 4))
    e = e + e.T
    w, v = np.linalg.eigh(a)
    (w_dot, v_dot) = dualad.jvp(np.linalg.eigh, a, e)[1]
    k = v.T @ e @ v
    np.testing.assert_allclose(w_dot, np.diag(k), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(v.T @ v_dot + (v.T @ v_dot).T, 0, atol=1e-12)  # stays orthonormal
    f = 1 / (w[None, :] - w[:, None] + np.eye(4)) - np.eye(4)
    np.testing.assert_allclose(v_dot, v @ (f * k), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("mode", list(MODES))
def test_matrix_norm_gradients_are_singular_vector_products(mode):
    rng = np.random.default_rng(6)
    a = rectangular(rng, 4, 3)
    u, s, vh = np.linalg.svd(a, full_matrices=False)
    grad = MODES[mode].gradient
    np.testing.assert_allclose(grad(lambda a: np.linalg.norm(a, 2), a), np.outer(u[:, 0], vh[0]),
                               atol=1e-12)
    np.testing.assert_allclose(grad(lambda a: np.linalg.norm(a, -2), a), np.outer(u[:, -1], vh[-1]),
                               atol=1e-12)
    np.testing.assert_allclose(grad(lambda a: np.linalg.norm(a, "nuc"), a), u @ vh, atol=1e-12)
    np.testing.assert_allclose(grad(lambda a: np.linalg.matrix_norm(a, ord="nuc"), a), u @ vh, atol=1e-12)


@pytest.mark.parametrize("mode", list(MODES))
def test_pinv_and_lstsq_gradients_match_the_normal_equations(mode):
    """Full column rank: pinv(A) = (AᵀA)⁻¹Aᵀ and x = (AᵀA)⁻¹Aᵀb, two other formulas."""
    rng = np.random.default_rng(7)
    a, b = rectangular(rng, 5, 3), rng.standard_normal(5)
    module = MODES[mode]
    normal = lambda a: np.linalg.solve(a.T @ a, a.T)  # noqa: E731
    np.testing.assert_allclose(module.jacobian(np.linalg.pinv, a), module.jacobian(normal, a), atol=1e-11)
    np.testing.assert_allclose(module.jacobian(lambda a: np.linalg.lstsq(a, b)[0], a),
                               module.jacobian(lambda a: normal(a) @ b, a), atol=1e-11)
    np.testing.assert_allclose(module.jacobian(lambda b: np.linalg.lstsq(a, b)[0], b), normal(a), atol=1e-12)
    res = lambda a: np.sum((a @ normal(a) @ b - b) ** 2)  # noqa: E731
    np.testing.assert_allclose(module.gradient(lambda a: np.linalg.lstsq(a, b)[1][0], a),
                               module.gradient(res, a), atol=1e-11)


def test_lstsq_returns_numpys_structure():
    rng = np.random.default_rng(8)
    for a, b in ((rectangular(rng, 5, 3), rng.standard_normal((5, 2))),
                 (rectangular(rng, 5, 3), rng.standard_normal(5)),
                 (rectangular(rng, 2, 4), rng.standard_normal(2))):
        for mode in MODES:
            got = _traced_call(np.linalg.lstsq, (a, b), mode)
            want = np.linalg.lstsq(a, b)
            assert isinstance(got[2], type(want[2])) and got[2] == want[2]  # rank: NumPy's integer
            for g, w in zip(_values(got[:2] + got[3:]), [want[0], want[1], want[3]]):
                assert g.shape == w.shape
                np.testing.assert_array_equal(g, w)


def test_matrix_power_zero_is_a_constant_identity():
    a = moderate(np.random.default_rng(9), 2, 3, 3)
    for mode in MODES:
        y = _traced_call(lambda a: np.linalg.matrix_power(a, 0), a, mode)
        assert getattr(y, "_ad_level", None) is None
        np.testing.assert_array_equal(y, np.broadcast_to(np.eye(3), (2, 3, 3)))
        np.testing.assert_array_equal(MODES[mode].jacobian(lambda a: np.linalg.matrix_power(a, 0), a), 0)


@pytest.mark.parametrize("f, a", [
    (matrix_function, np.diag([-1.0, 0.5, 2.0])),
    (svd_reassembled, np.diag([3.0, 2.0, 1.0])),
    (lambda a: np.linalg.qr(a).Q ** 2 + np.linalg.qr(a).R ** 2, np.triu(np.arange(1.0, 10.0).reshape(3, 3))),
], ids=["eigh-diagonal", "svd-diagonal", "qr-triangular"])
def test_gauge_invariant_functions_at_inputs_where_lapack_skips_reflections(f, a):
    """At a diagonal (triangular) A LAPACK's signs jump (removably: every nearby matrix gets the
    other signs); functions that do not depend on the signs still have their true derivative."""
    check_grads(f, a, order=2, modes=("fwd", "rev"))


# -- repeated values: the eigen-/singular values stay differentiable, the vectors raise ------------------
def degenerate(rng, spectrum=(1.0, 1.0, 2.5)):
    """``Q diag(spectrum) Qᵀ`` with exactly repeated eigenvalues (equal to rounding once computed)."""
    q = orthonormal(rng, 3, 3)
    return (q * np.asarray(spectrum)) @ q.T


@pytest.mark.parametrize("mode", list(MODES))
def test_eigenvalues_stay_differentiable_at_repeated_eigenvalues(mode):
    a = degenerate(np.random.default_rng(10))
    module = MODES[mode]
    sq = module.gradient(lambda a: np.sum(np.linalg.eigvalsh(a) ** 2), a)  # Σ w² = ‖A‖_F²
    np.testing.assert_allclose(sq, 2 * np.tril(a) + 2 * np.tril(a, -1), atol=1e-12)  # 2A, lower triangle
    trace = module.gradient(lambda a: np.sum(np.linalg.eigvalsh(a)), a)
    np.testing.assert_allclose(trace, np.eye(3), atol=1e-12)
    check_grads(lambda a: np.sum(np.exp(np.linalg.eigvalsh(a))), a, order=1, modes=(mode,))
    s = rectangular(np.random.default_rng(10), 3, 3, values=(2.0, 2.0, 1.0), noise=0.0)
    u, _, vh = np.linalg.svd(s)  # U Vᵀ (the polar factor) is unique at repeated singular values too
    np.testing.assert_allclose(module.gradient(lambda a: np.sum(np.linalg.svdvals(a)), s), u @ vh, atol=1e-12)


def test_reverse_eigh_with_only_the_eigenvalues_used_at_repeated_eigenvalues():
    a = degenerate(np.random.default_rng(11))
    f = lambda a: np.sum(np.sin(np.linalg.eigh(a).eigenvalues))  # noqa: E731
    g = lambda a: np.sum(np.sin(np.linalg.eigvalsh(a)))  # noqa: E731
    np.testing.assert_allclose(rd.gradient(f, a), rd.gradient(g, a), atol=1e-12)
    np.testing.assert_allclose(rd.gradient(g, a), dualad.gradient(g, a), atol=1e-12)


def test_forward_eigh_at_repeated_eigenvalues_along_directions_that_keep_them_apart():
    """A tangent that does not couple the equal eigenvalues has a defined V̇ (here 0)."""
    a = np.diag([1.0, 1.0, 2.0])
    (w_dot, v_dot) = dualad.jvp(np.linalg.eigh, a, np.diag([1.0, 0.0, -1.0]))[1]
    np.testing.assert_allclose(np.sort(w_dot), [-1.0, 0.0, 1.0])
    np.testing.assert_array_equal(v_dot, 0)


@pytest.mark.parametrize("mode", list(MODES))
def test_eigenvectors_at_repeated_eigenvalues_raise(mode):
    a = degenerate(np.random.default_rng(12))
    module = MODES[mode]
    with pytest.raises(UndefinedDerivativeError,
                       match=r"eigenvalues 0 and 1 are equal .* eigenvectors is not defined"):
        module.jacobian(lambda a: np.linalg.eigh(a)[1], a)
    with pytest.raises(UndefinedDerivativeError, match="eigvalsh"):
        module.gradient(lambda a: np.sum(np.linalg.eigh(a).eigenvectors ** 3), a)
    with pytest.raises(UndefinedDerivativeError, match="second derivatives go through the vectors"):
        module.hessian(lambda a: np.sum(np.linalg.eigvalsh(a) ** 3), a)
    with pytest.raises(UndefinedDerivativeError, match=r"\(matrix \(1,\) of the stack\)"):
        stack = np.stack([symmetric(np.random.default_rng(1), 3, 3), a])
        module.jacobian(lambda a: np.linalg.eigh(a)[1], stack)


@pytest.mark.parametrize("mode", list(MODES))
def test_singular_vectors_at_repeated_singular_values_raise(mode):
    s = rectangular(np.random.default_rng(13), 4, 3, values=(2.0, 2.0, 1.0), noise=0.0)
    module = MODES[mode]
    with pytest.raises(UndefinedDerivativeError, match="singular values 0 and 1 are equal"):
        module.jacobian(lambda a: np.linalg.svd(a, full_matrices=False)[0], s)
    with pytest.raises(UndefinedDerivativeError, match="svdvals: its second derivatives"):
        module.hessian(lambda a: np.sum(np.linalg.svdvals(a) ** 3), s)


@pytest.mark.parametrize("mode", list(MODES))
def test_rank_deficiency_raises_where_the_derivative_needs_full_rank(mode):
    rank2 = rectangular(np.random.default_rng(14), 4, 3, values=(2.0, 1.0, 0.0), noise=0.0)
    module = MODES[mode]
    with pytest.raises(SingularMatrixError, match=r"svd .* rank-deficient \(a singular value is 0\)"):
        module.jacobian(lambda a: np.linalg.svd(a, full_matrices=False)[0], rank2)
    with pytest.raises(SingularMatrixError, match=r"np.linalg.qr .* rank-deficient \(a diagonal entry of R"):
        module.jacobian(lambda a: np.linalg.qr(a)[1], rank2)
    # the singular values themselves are fine at any rank
    module.jacobian(np.linalg.svdvals, rank2)


# -- full_matrices / complete: extra columns that are not unique -----------------------------------------
def test_svd_full_matrices_of_non_square_matrices():
    rng = np.random.default_rng(15)
    for a in (rectangular(rng, 4, 3), rectangular(rng, 2, 4)):
        with pytest.raises(UndefinedDerivativeError,
                           match=r"full_matrices=True\) in dualad \(forward mode\).*full_matrices=False"):
            dualad.jacobian(lambda a: np.linalg.svd(a)[1], a)
        with pytest.raises(UndefinedDerivativeError, match=r"reversead \(backward\).*full_matrices=False"):
            rd.gradient(lambda a: np.sum(np.linalg.svd(a)[0] ** 3) + np.sum(np.linalg.svd(a)[2] ** 3), a)
        # reverse mode: no cotangent on the extra columns, no error (the thin factors are unique)
        k = min(a.shape)
        def full(a):
            u, s, _ = np.linalg.svd(a)
            return wsum(u[:, :k] ** 3) + wsum(s)

        def thin(a):
            u, s, _ = np.linalg.svd(a, full_matrices=False)
            return wsum(u ** 3) + wsum(s)
        np.testing.assert_allclose(rd.gradient(full, a), rd.gradient(thin, a), atol=1e-12)
        # (without the extra columns, as a Tensor that needs no gradient, the call itself works)
        np.testing.assert_array_equal(_values(np.linalg.svd(rd.tensor(a)))[0], np.linalg.svd(a)[0])


def test_qr_complete_of_tall_matrices():
    a = rectangular(np.random.default_rng(16), 4, 2)
    with pytest.raises(UndefinedDerivativeError, match=r"mode='complete'\) in dualad \(forward mode\).*"
                                                       r"use mode='reduced'"):
        dualad.jacobian(lambda a: np.linalg.qr(a, mode="complete")[1], a)
    with pytest.raises(UndefinedDerivativeError, match=r"2 extra columns of Q"):
        rd.gradient(lambda a: np.sum(np.linalg.qr(a, mode="complete")[0] ** 3), a)
    def complete(a):
        q, r = np.linalg.qr(a, "complete")
        return wsum(q[:, :2] ** 3) + wsum(r)

    def reduced(a):
        q, r = np.linalg.qr(a)
        return wsum(q ** 3) + wsum(r)
    np.testing.assert_allclose(rd.gradient(complete, a), rd.gradient(reduced, a), atol=1e-12)


# -- unsupported arguments and NumPy's own errors ----------------------------------------------------
def test_unsupported_modes_and_bad_arguments_raise_clear_errors():
    rng = np.random.default_rng(17)
    m = DualArray(rectangular(rng, 4, 3), np.ones((1, 4, 3)))
    sq = DualArray(moderate(rng, 3, 3), np.ones((1, 3, 3)))
    for mode in ("raw", "economic"):
        with pytest.raises(MissingRuleError, match=f"mode='{mode}'.*use mode='reduced'"):
            np.linalg.qr(m, mode=mode)
    with pytest.raises(ValueError, match="Unrecognized mode 'thin'"):
        np.linalg.qr(m, mode="thin")
    with pytest.warns(DeprecationWarning, match="'full' option is deprecated"):
        q, r = np.linalg.qr(m, mode="full")
    np.testing.assert_array_equal(q.primal, np.linalg.qr(m.primal)[0])
    with pytest.raises(ValueError, match="UPLO argument must be 'L' or 'U'"):
        np.linalg.eigh(sq, UPLO="X")
    with pytest.raises(ValueError, match="`rtol` and `rcond` can't be both set"):
        np.linalg.pinv(m, rcond=1e-10, rtol=1e-10)
    with pytest.raises(TypeError, match="exponent must be an integer"):
        np.linalg.matrix_power(sq, 1.5)
    with pytest.raises(np.linalg.LinAlgError, match="must be square"):
        np.linalg.matrix_power(m, 2)
    with pytest.raises(np.linalg.LinAlgError):
        np.linalg.eigh(m)
    with pytest.raises(np.linalg.LinAlgError):
        np.linalg.lstsq(m, np.ones(3))
    with pytest.raises(ValueError, match="Expecting at least two arrays"):
        np.linalg.multi_dot([sq])
    with pytest.raises(np.linalg.LinAlgError, match="3-dimensional array given"):
        np.linalg.multi_dot([sq, sq[None], sq])
    with pytest.raises(TypeError, match="out="):
        np.linalg.multi_dot([sq, sq, sq], out=np.empty((3, 3)))
    with pytest.raises(ValueError, match="repeated axis"):
        np.linalg.vector_norm(m, axis=(0, -2))


def test_error_classes():
    assert issubclass(UndefinedDerivativeError, ADError)
    assert issubclass(UndefinedDerivativeError, np.linalg.LinAlgError)
    assert issubclass(UndefinedDerivativeError, ValueError)
    assert dualad.UndefinedDerivativeError is UndefinedDerivativeError
