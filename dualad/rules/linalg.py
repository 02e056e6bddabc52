"""Linear algebra primitives: np.linalg.inv, det, slogdet, solve, norm, cholesky.

Custom rules (a JVP and a VJP each), written with NumPy functions only so they
serve plain arrays, nested duals (Hessians) and Tensors alike. Every rule works
on stacks of matrices ``(..., n, n)`` as NumPy does. ``T(x)`` swaps the last two
axes. Tangents carry ``nb`` leading batch axes; matmul and solve broadcast them
against the primal's stack because the tangent keeps every data axis.

====================  =============================================  ==============================================
function              JVP                                            VJP
====================  =============================================  ==============================================
``X = inv(A)``        ``-X Ȧ X``                                     ``-Xᵀ X̄ Xᵀ``
``d = det(A)``        ``tr(adj(A) Ȧ)`` (= ``d · tr(A⁻¹ Ȧ)``)         ``d̄ · adj(A)ᵀ`` (= ``d̄ · d · A⁻ᵀ``)
``slogdet(A)``        sign: none; ``tr(A⁻¹ Ȧ)``                      ``l̄ · A⁻ᵀ``
``X = solve(A, B)``   ``A⁻¹ (Ḃ - Ȧ X)``                              ``B̄ = A⁻ᵀ X̄``, ``Ā = -B̄ Xᵀ``
``‖x‖₂``, ``‖A‖_F``   ``<x, ẋ> / ‖x‖`` (0 at x = 0)                  ``ȳ x / ‖x‖`` (0 at x = 0)
``y = ‖x‖_p``         ``Σ sign(xᵢ) (|xᵢ|/y)^(p-1) ẋᵢ``               ``ȳ sign(x) (|x|/y)^(p-1)``
``L = cholesky(A)``   ``L Φ(L⁻¹ S L⁻ᵀ)``                             ``tril(Q) + tril(Qᵀ, -1)``
====================  =============================================  ==============================================

Cholesky (Murray 2016, "Differentiation of the Cholesky decomposition"):
``Φ(M)`` is the lower triangle of ``M`` with its diagonal halved, ``S`` the
symmetric matrix built from the lower triangle of ``Ȧ`` and ``Q = L⁻ᵀ Φ(Lᵀ L̄) L⁻¹``.
Convention: NumPy's cholesky reads only the lower triangle of A (the upper one
for ``upper=True``), so the derivative is that of the function NumPy computes:
the other triangle has zero derivative. Along symmetric directions this equals
the usual symmetric-input derivative; the VJP ``Ā`` is lower triangular (its
symmetrisation ``(Ā + Āᵀ)/2`` is the gradient for a symmetric parametrisation).

det's derivative is the adjugate, which exists for every A: ``det · A⁻¹`` where A is
well-conditioned (the fast path), else an SVD (plain arrays) or cofactors, the minors'
determinants through this rule again (traced arrays: Hessians), so derivatives of every order
are exact at singular A too. slogdet, inv, solve and cholesky need A invertible (NumPy raises
``LinAlgError``; slogdet's derivative at a singular A, where logabsdet = -inf, raises
``SingularMatrixError``, a ``LinAlgError``). Norms at 0 have the zero subgradient, and its
derivatives are 0 too (the masked partials are constants there): the 2-norm and Frobenius norm
where ``‖x‖ = 0``, p-norms where ``‖x‖_p = 0`` or in components ``xᵢ = 0`` (for p < 1 the
partial there has no value, one-sided ±inf, and is 0 as for ``abs``; for 1 < p < 2 the second
partial there is +inf and is 0). Matrix norms ord=2, -2, 'nuc' are the largest, smallest and sum
of the singular values (the svdvals rule of ``decompositions``): kinks where the two largest
(smallest) singular values tie, and for 'nuc' where one is 0, like ``max`` and ``abs``.
"""
from __future__ import annotations

import numpy as np

from ..errors import SingularMatrixError
from .core import Rule, expand_to, normalize_axis, register_function, shape_of, unbroadcast

_SlogdetResult = type(np.linalg.slogdet(np.eye(1)))
_NUMPY2 = int(np.__version__.split(".")[0]) >= 2


def T(x):
    """Transpose of the last two axes (of every matrix in a stack)."""
    return np.swapaxes(x, -1, -2)


def _strip(x):
    while getattr(x, "_ad_level", None) is not None:
        x = x._ad_primal()
    return x


def _dtype(x):
    dtype = getattr(x, "dtype", None)
    return dtype if dtype is not None and np.dtype(dtype).kind == "f" else np.float64


# -- inv ----------------------------------------------------------------------
def _inv_jvp(primals, tangents, out, nb):
    (t,) = tangents
    return -np.matmul(out, np.matmul(t, out))


def _inv_vjp(argnum, out_bar, primals, out, nb):
    out_t = T(out)
    return -np.matmul(out_t, np.matmul(out_bar, out_t))


inv_rule = Rule("inv", np.linalg.inv, jvp=_inv_jvp, vjp=_inv_vjp)


# -- det and slogdet: d det A = tr(adj(A) Ȧ) = <adj(A)ᵀ, Ȧ>; d log|det A| = tr(A⁻¹ Ȧ) --------
# adj(A) = det(A) A⁻¹ where A is invertible (the fast path: one inverse). det is a polynomial,
# so its derivative exists everywhere: where the inverse fails, adj(A) comes from an SVD (plain
# arrays); traced arrays (Hessians) that are ill-conditioned take cofactors. Both are exact.
#: the condition number of A past which traced arrays take cofactors instead of det · A⁻¹
_COND_LIMIT = {np.dtype(t): np.finfo(t).eps ** -0.5 for t in (np.float16, np.float32, np.float64)}


def _stable_inverse(a):
    """``inv(a)`` (traced if ``a`` is) where ``det · inv`` serves as adj(A), else None.

    Plain arrays: whenever the inverse exists and is finite. det · A⁻¹ from one LU stays accurate
    as A nears singularity (measured: errors ~1e-15 ‖A‖^(n-1) on matrices of rank n-1, cond 1e16),
    and the check costs one pass over A⁻¹. Traced arrays (second order): only where A is
    well-conditioned, since the derivative of det · A⁻¹ subtracts terms of size cond(A) |adj(A)|
    (measured: Hessians off by 1e-6 at cond 1e10, by 100 % at rank n-1). The estimate
    ``n max|A| max|A⁻¹|`` (within a factor n of ``‖A‖₁ ‖A⁻¹‖₁``) must stay below eps^-1/2."""
    try:
        inv = np.linalg.inv(a)
    except np.linalg.LinAlgError:
        return None
    plain, plain_inv = _strip(a), _strip(inv)
    if plain_inv is inv:
        if np.isfinite(inv).all() or np.isnan(plain).any():  # NaN in, NaN out
            return inv
        return None
    if plain.size == 0:
        return inv
    limit = _COND_LIMIT.get(plain.dtype, _COND_LIMIT[np.dtype(np.float64)]) / plain.shape[-1]
    if plain.ndim == 2:
        if abs(plain).max() * abs(plain_inv).max() < limit:
            return inv
    elif (abs(plain).max(axis=(-2, -1)) * abs(plain_inv).max(axis=(-2, -1)) < limit).all():
        return inv
    if np.isnan(plain).any():
        return inv
    return None


def _adjugate_svd(a):
    """adj(A) = det(U) det(V) V diag(prod_{j≠i} s_j) Uᵀ for A = U S Vᵀ: exact for every rank."""
    u, s, vt = np.linalg.svd(a)
    ones = np.ones_like(s[..., :1])
    before = np.cumprod(np.concatenate([ones, s[..., :-1]], axis=-1), axis=-1)
    after = np.cumprod(np.concatenate([ones, s[..., :0:-1]], axis=-1), axis=-1)[..., ::-1]
    sign = np.linalg.det(u) * np.linalg.det(vt)  # ±1
    return sign[..., None, None] * np.matmul(T(vt) * (before * after)[..., None, :], T(u))


def _adjugate_cofactors(a):
    """adj(A)ᵀ[i, j] = (-1)^(i+j) det(A without row i and column j), with traced operations only:
    the minors' determinants go through ``det_rule`` again, so every order is exact. O(n⁵)."""
    n = shape_of(a)[-1]
    keep = np.array([[k for k in range(n) if k != i] for i in range(n)], dtype=np.intp)
    minors = a[..., keep[:, None, :, None], keep[None, :, None, :]]  # (..., n, n, n-1, n-1)
    signs = (1.0 - 2.0 * (np.add.outer(np.arange(n), np.arange(n)) % 2)).astype(_dtype(_strip(a)))
    return T(np.linalg.det(minors) * signs)


def _adjugate(a):
    """adj(A) of a (nearly) singular stack: SVD for plain arrays, cofactors for traced ones."""
    plain = _strip(a)
    n = shape_of(plain)[-1]
    if n == 1:
        return np.ones(shape_of(plain), dtype=_dtype(plain))  # adj of a 1 x 1 matrix: [[1]]
    if plain is not a:
        return _adjugate_cofactors(a)
    return _adjugate_svd(a)


def _det_jvp(primals, tangents, out, nb):
    (a,), (t,) = primals, tangents
    inv = _stable_inverse(a)
    if inv is not None:
        return out * np.sum(T(inv) * t, axis=(-2, -1))
    return np.sum(T(_adjugate(a)) * t, axis=(-2, -1))


def _det_vjp(argnum, out_bar, primals, out, nb):
    inv = _stable_inverse(primals[0])
    if inv is not None:
        return (out_bar * out)[..., None, None] * T(inv)
    return out_bar[..., None, None] * T(_adjugate(primals[0]))


det_rule = Rule("det", np.linalg.det, jvp=_det_jvp, vjp=_det_vjp)




def _inverse_for_logdet(a, logabsdet, mode):
    if np.any(np.isneginf(_strip(logabsdet))):
        raise SingularMatrixError(
            f"np.linalg.slogdet in {mode}: the matrix is singular (sign 0, logabsdet -inf), where "
            "log|det A| has no derivative; differentiate np.linalg.det instead (its derivative, "
            "the adjugate, exists everywhere) or keep A away from singular matrices")
    try:
        return np.linalg.inv(a)
    except np.linalg.LinAlgError as err:
        raise SingularMatrixError(
            f"np.linalg.slogdet in {mode}: the matrix is singular, where log|det A| has no "
            "derivative; differentiate np.linalg.det instead") from err


def _logabsdet_jvp(primals, tangents, out, nb):
    inv = _inverse_for_logdet(primals[0], out, "dualad (forward mode)")
    return np.sum(T(inv) * tangents[0], axis=(-2, -1))


def _logabsdet_vjp(argnum, out_bar, primals, out, nb):
    inv = _inverse_for_logdet(primals[0], out, "reversead (backward)")
    return out_bar[..., None, None] * T(inv)


logabsdet_rule = Rule("slogdet", lambda a: np.linalg.slogdet(a)[1],
                      jvp=_logabsdet_jvp, vjp=_logabsdet_vjp)


# -- solve: the rule always sees B as a stack of matrices (..., n, m) ----------------
def _solve_matrices(a, b):
    if not _NUMPY2 and np.ndim(b) == np.ndim(a) - 1:
        b = b[None]  # NumPy 1.x would read this B as a stack of vectors
    return np.linalg.solve(a, b)


def _solve_jvp(primals, tangents, out, nb):
    a, _ = primals
    ta, tb = tangents
    ndim = np.ndim(out)
    rhs = None if tb is None else expand_to(tb, nb, ndim)
    if ta is not None:
        a_term = np.matmul(expand_to(ta, nb, ndim), out)
        rhs = -a_term if rhs is None else rhs - a_term
    return _solve_matrices(a, rhs)


def _solve_vjp(argnum, out_bar, primals, out, nb):
    a, b = primals
    b_bar = _solve_matrices(T(a), out_bar)
    if argnum == 1:
        return unbroadcast(b_bar, shape_of(b), nb)
    return unbroadcast(-np.matmul(b_bar, T(out)), shape_of(a), nb)


solve_rule = Rule("solve", _solve_matrices, jvp=_solve_jvp, vjp=_solve_vjp)


def _vector_rhs(a, b):
    """Whether np.linalg.solve reads ``b`` as (a stack of) vectors, as the installed NumPy does."""
    return np.ndim(b) == 1 if _NUMPY2 else np.ndim(b) == np.ndim(a) - 1


# -- 2-norm and Frobenius norm: zero subgradient at 0 ----------------------------
def _reduced_axes(axis, ndim):
    return tuple(range(ndim)) if axis is None else tuple(normalize_axis(a, ndim) for a in axis)


def _nonzero(norm):
    return np.where(norm == 0, 1.0, norm)  # at x = 0 the numerator is 0: zero subgradient


def _zero_where_norm_is_zero(result, out):
    """0 where ‖x‖ = 0, as a constant: so the derivative of the masked derivative is 0 there too
    (``x / 1`` alone would differentiate to the identity: a Hessian I at x = 0)."""
    at_zero = _strip(out) == 0
    return np.where(at_zero, 0, result) if np.any(at_zero) else result


def _norm2_primal(x, axis, keepdims):
    return np.linalg.norm(x, axis=axis, keepdims=keepdims)


def _norm2_jvp(primals, tangents, out, nb, axis, keepdims):
    (x,), (t,) = primals, tangents
    axes = _reduced_axes(axis, np.ndim(x))
    out_dot = np.sum(x * t, axis=tuple(a + nb for a in axes), keepdims=keepdims) / _nonzero(out)
    return _zero_where_norm_is_zero(out_dot, out)


def _norm2_vjp(argnum, out_bar, primals, out, nb, axis, keepdims):
    (x,) = primals
    g = _zero_where_norm_is_zero(out_bar / _nonzero(out), out)
    if not keepdims:
        shape = list(g.shape)
        for a in _reduced_axes(axis, np.ndim(x)):
            shape.insert(a + nb, 1)
        g = np.reshape(g, tuple(shape))
    return g * x


norm2_rule = Rule("norm", _norm2_primal, jvp=_norm2_jvp, vjp=_norm2_vjp)


# -- p-norms (p not 0, 1, 2, ±inf): ∂‖x‖_p/∂xᵢ = sign(xᵢ) (|xᵢ| / ‖x‖_p)^(p-1) ----------------
def _pnorm_partials(x, out, ord, axis, keepdims):
    """∂‖x‖_p/∂x with x's shape, 0 where xᵢ = 0 or ‖x‖_p = 0 (constants there: all their
    derivatives are 0 too). At xᵢ = 0 the partial is 0 for p > 1 and has no value for p < 1
    (one-sided ±inf): 0 there, as for ``abs``. For p < 0, ‖x‖_p = 0 wherever some xᵢ = 0 and
    the partials of the other components are 0 as well. The ratio |xᵢ| / ‖x‖_p keeps the power
    in range where |x|^p would overflow."""
    norm = out if keepdims else np.expand_dims(out, axis)
    x_zero = _strip(x) == 0
    mask = x_zero | (_strip(norm) == 0)
    if not np.any(mask):
        return np.sign(_strip(x)) * (np.abs(x) / norm) ** (ord - 1)
    ratio = np.where(x_zero, 1, np.abs(x)) / np.where(_strip(norm) == 0, 1, norm)
    return np.where(mask, 0, np.sign(_strip(x)) * ratio ** (ord - 1))


def _pnorm_jvp(primals, tangents, out, nb, ord, axis, keepdims):
    (x,), (t,) = primals, tangents
    return np.sum(_pnorm_partials(x, out, ord, axis, keepdims) * t, axis=axis + nb, keepdims=keepdims)


def _pnorm_vjp(argnum, out_bar, primals, out, nb, ord, axis, keepdims):
    (x,) = primals
    g = out_bar if keepdims else np.expand_dims(out_bar, axis + nb)
    return g * _pnorm_partials(x, out, ord, axis, keepdims)


def _pnorm_primal(x, ord, axis, keepdims):
    return np.linalg.norm(x, ord, axis, keepdims)


pnorm_rule = Rule("norm_p", _pnorm_primal, jvp=_pnorm_jvp, vjp=_pnorm_vjp)


def _keep_matrix_axes(result, shape, axes, keepdims):
    if not keepdims:
        return result
    kept = list(shape)
    for a in axes:
        kept[a] = 1
    return np.reshape(result, tuple(kept))


def _vector_norm(x, ord, axis, keepdims):
    if ord is None or ord == 2:
        return norm2_rule(x, axis=(axis,), keepdims=keepdims)
    if isinstance(ord, str):
        raise ValueError(f"Invalid norm order '{ord}' for vectors")
    if ord == np.inf:
        return np.max(np.abs(x), axis=axis, keepdims=keepdims)
    if ord == -np.inf:
        return np.min(np.abs(x), axis=axis, keepdims=keepdims)
    if ord == 0:  # a count: piecewise constant, no derivative
        plain = _strip(x)
        return np.sum(plain != 0, axis=axis, keepdims=keepdims).astype(_dtype(plain))
    if ord == 1:
        return np.sum(np.abs(x), axis=axis, keepdims=keepdims)
    return pnorm_rule(x, ord=float(ord), axis=axis, keepdims=keepdims)


def _matrix_norm(x, ord, axes, keepdims):
    row, col = axes
    shape = shape_of(x)
    if ord in (None, "fro", "f"):
        return norm2_rule(x, axis=axes, keepdims=keepdims)
    if ord in (2, -2, "nuc"):  # NumPy's _multi_svd_norm, through the svdvals rule (decompositions)
        s = np.linalg.svd(np.moveaxis(x, axes, (-2, -1)), compute_uv=False)
        reduce = np.max if ord == 2 else np.min if ord == -2 else np.sum
        return _keep_matrix_axes(reduce(s, axis=-1), shape, axes, keepdims)
    if ord in (1, -1):
        reduce = np.max if ord == 1 else np.min
        result = reduce(np.sum(np.abs(x), axis=row), axis=col - 1 if col > row else col)
    elif ord in (np.inf, -np.inf):
        reduce = np.max if ord == np.inf else np.min
        result = reduce(np.sum(np.abs(x), axis=col), axis=row - 1 if row > col else row)
    else:
        raise ValueError("Invalid norm order for matrices.")
    return _keep_matrix_axes(result, shape, axes, keepdims)


def _spd(rng, *shape):
    m = rng.standard_normal(shape)
    return m @ T(m) + shape[-1] * np.eye(shape[-1])


def _well_conditioned(rng, *shape, sign=1.0):
    return rng.standard_normal(shape) + sign * shape[-1] * np.eye(shape[-1])


def _ex_matrices(*makers, **kwargs):
    """An example: each positional maker is ``rng -> array`` or a literal (an ``ord``)."""
    return lambda rng: (tuple(make(rng) if callable(make) else make for make in makers), dict(kwargs))


def _wc(*shape, sign=1.0):
    return lambda rng: _well_conditioned(rng, *shape, sign=sign)


def _normal(*shape):
    return lambda rng: rng.standard_normal(shape)


def _rank_deficient(*shape):
    """Matrices of rank n - 1: det = 0, adj(A) ≠ 0 (det's derivative off the fast path)."""
    n = shape[-1]
    return lambda rng: np.matmul(rng.standard_normal(shape[:-1] + (n - 1,)),
                                 rng.standard_normal(shape[:-2] + (n - 1, n)))


# -- the np.linalg functions ------------------------------------------------------
@register_function(np.linalg.inv, examples=[_ex_matrices(_wc(3, 3)), _ex_matrices(_wc(2, 3, 3)),
                                            _ex_matrices(_wc(1, 1))])
def inv(a):
    return inv_rule(a)


@register_function(np.linalg.det, examples=[_ex_matrices(_wc(3, 3)), _ex_matrices(_wc(2, 3, 3)),
                                            _ex_matrices(_wc(3, 3, sign=-1.0)),
                                            _ex_matrices(_rank_deficient(3, 3)),
                                            _ex_matrices(_rank_deficient(2, 2, 2))])
def det(a):
    return det_rule(a)


@register_function(np.linalg.slogdet, examples=[_ex_matrices(_wc(3, 3)),
                                                _ex_matrices(_wc(2, 3, 3, sign=-1.0))])
def slogdet(a):
    """``(sign, logabsdet)`` like NumPy; ``sign`` is piecewise constant (no derivative)."""
    sign = np.linalg.slogdet(_strip(a)).sign
    return _SlogdetResult(sign, logabsdet_rule(a))


@register_function(np.linalg.solve, examples=[
    _ex_matrices(_wc(3, 3), _normal(3)), _ex_matrices(_wc(3, 3), _normal(3, 2)),
    _ex_matrices(_wc(2, 3, 3), _normal(2, 3, 2)), _ex_matrices(_wc(2, 3, 3), _normal(3)),
    _ex_matrices(_wc(3, 3), _normal(2, 3, 1))])
def solve(a, b):
    if getattr(b, "_ad_level", None) is None:
        b = np.asarray(b)
    if _vector_rhs(a, b):
        return solve_rule(a, b[..., None])[..., 0]
    return solve_rule(a, b)


@register_function(np.linalg.norm, examples=[
    _ex_matrices(_normal(5)), _ex_matrices(_normal(5), ord=1), _ex_matrices(_normal(5), ord=np.inf),
    _ex_matrices(_normal(5), ord=-np.inf), _ex_matrices(_normal(5), ord=3),
    _ex_matrices(_normal(5), ord=0.5), _ex_matrices(_normal(5), ord=-1.5),
    _ex_matrices(_normal(3, 4), 1.5, axis=0, keepdims=True), _ex_matrices(_normal(3, 4), axis=1),
    _ex_matrices(_normal(3, 4), axis=0, keepdims=True), _ex_matrices(_normal(2, 3, 4)),
    _ex_matrices(_normal(3, 4), "fro"), _ex_matrices(_normal(3, 4), 1),
    _ex_matrices(_normal(3, 4), np.inf), _ex_matrices(_normal(3, 4), -1),
    _ex_matrices(_normal(3, 4), -np.inf), _ex_matrices(_normal(2, 3, 4), 1, axis=(2, 0)),
    _ex_matrices(_normal(2, 3, 4), "fro", axis=(0, 2), keepdims=True),
    _ex_matrices(_normal(2, 3, 4), np.inf, axis=(-1, -2), keepdims=True)])
def norm(x, ord=None, axis=None, keepdims=False):
    """np.linalg.norm; 2-norm and Frobenius norm have a zero subgradient at x = 0."""
    ndim = np.ndim(x)
    if axis is None:
        if ord is None:
            return norm2_rule(x, axis=None, keepdims=bool(keepdims))
        if ndim not in (1, 2):
            raise ValueError("Improper number of dimensions to norm.")
        axis = tuple(range(ndim))
    elif not isinstance(axis, tuple):
        try:
            axis = (int(axis),)
        except TypeError as err:
            raise TypeError("'axis' must be None, an integer or a tuple of integers") from err
    axis = tuple(normalize_axis(a, ndim) for a in axis)
    if len(axis) == 1:
        return _vector_norm(x, ord, axis[0], bool(keepdims))
    if len(axis) == 2:
        if axis[0] == axis[1]:
            raise ValueError("Duplicate axes given.")
        return _matrix_norm(x, ord, axis, bool(keepdims))
    raise ValueError("Improper number of dimensions to norm.")


# -- cholesky ---------------------------------------------------------------------
def _phi(m):
    """Lower triangle with the diagonal halved (self-adjoint: a fixed mask)."""
    n = shape_of(m)[-1]
    return np.tril(m) - 0.5 * (m * np.eye(n, dtype=_dtype(m)))


def _cholesky_jvp(primals, tangents, out, nb):
    (t,) = tangents
    sym = np.tril(t) + T(np.tril(t, -1))  # NumPy reads the lower triangle only
    l_inv = np.linalg.inv(out)
    return np.matmul(out, _phi(np.matmul(l_inv, np.matmul(sym, T(l_inv)))))


def _cholesky_vjp(argnum, out_bar, primals, out, nb):
    l_inv = np.linalg.inv(out)
    q = np.matmul(T(l_inv), np.matmul(_phi(np.matmul(T(out), out_bar)), l_inv))
    return np.tril(q) + np.tril(T(q), -1)  # transpose of building S from the lower triangle


cholesky_rule = Rule("cholesky", np.linalg.cholesky, jvp=_cholesky_jvp, vjp=_cholesky_vjp)


@register_function(np.linalg.cholesky, examples=[
    lambda rng: ((_spd(rng, 3, 3),), {}), lambda rng: ((_spd(rng, 2, 4, 4),), {}),
    lambda rng: ((_spd(rng, 3, 3),), {"upper": True}), lambda rng: ((_spd(rng, 1, 1),), {})])
def cholesky(a, /, *, upper=False):
    """Lower factor L with A = L Lᵀ (``upper=True``: Lᵀ, read from A's upper triangle)."""
    if upper:
        return T(cholesky_rule(T(a)))
    return cholesky_rule(a)
