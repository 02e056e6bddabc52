"""Matrix decompositions and what is built on them: np.linalg.eigh, eigvalsh, svd, svdvals, qr,
pinv, lstsq, matrix_power, multi_dot, matrix_norm, vector_norm.

Custom rules (a JVP and a VJP each), written with NumPy functions only so they serve plain
arrays, nested duals (Hessians) and Tensors alike, on stacks ``(..., m, n)`` as NumPy does.
``T(x)`` swaps the last two axes, ``∘`` is the elementwise product, ``S = diag(s)``. A rule with
several results (w and V, or U, s and Vᵀ, or Q and R) returns them packed into one array (the
flattened matrices side by side on the last axis); the registered function unpacks them by
slicing, so one LAPACK call serves every result and each mode sees one primitive.

=====================  ===================================================  ===============================
function               JVP                                                  VJP
=====================  ===================================================  ===============================
``w, V = eigh(A)``     ``K = Vᵀ Ȧ V``: ``ẇ = diag(K)``, ``V̇ = V (F ∘ K)``  ``V (diag(w̄) + F ∘ Vᵀ V̄) Vᵀ``
``w = eigvalsh(A)``    ``diag(Vᵀ Ȧ V)``                                     ``V diag(w̄) Vᵀ``
``U, s, Vᵀ = svd(A)``  ``P = Uᵀ Ȧ V``: ``ṡ = diag(P)``, U̇ and V̇ below     below (Townsend 2016)
``s = svdvals(A)``     ``diag(Uᵀ Ȧ V)``                                     ``U diag(s̄) Vᵀ``
``Q, R = qr(A)``       ``C = Qᵀ Ȧ R⁻¹``: ``Ṙ = B R``, ``Q̇ = Ȧ R⁻¹ - Q B``  ``(Q̄ + Q copyltu(M)) R⁻ᵀ``
``X = pinv(A)``        ``-X Ȧ X + X Xᵀ Ȧᵀ (I - A X) + (I - X A) Ȧᵀ Xᵀ X``   the transpose of the JVP
=====================  ===================================================  ===============================

eigh (symmetric A = V diag(w) Vᵀ): ``F_ij = 1 / (w_j - w_i)`` off the diagonal, 0 on it.
svd (thin, k = min(m, n); ``G_ij = 1 / (s_j² - s_i²)``, 0 on the diagonal)::

    U̇ = U (G ∘ (P S + S Pᵀ)) + (I - U Uᵀ) Ȧ V S⁻¹        (the last term only where m > k)
    V̇ = V (G ∘ (S P + Pᵀ S)) + (I - V Vᵀ) Ȧᵀ U S⁻¹       (the last term only where n > k)
    Ā = U (diag(s̄) + (G ∘ (J - Jᵀ)) S + S (G ∘ (L - Lᵀ))) Vᵀ
        + (I - U Uᵀ) Ū S⁻¹ Vᵀ + U S⁻¹ V̄ᵀ (I - V Vᵀ),     J = Uᵀ Ū, L = Vᵀ V̄

qr (m >= n, reduced): ``B = triu(C) + tril(C, -1)ᵀ`` (the upper triangular part of C that is
not the antisymmetric ``Qᵀ Q̇``), ``M = R̄ Rᵀ - Qᵀ Q̄`` and ``copyltu(M) = triu(M) + triu(M, 1)ᵀ``.
For m < n, ``A = [X | Y]`` with ``X = Q U`` square and ``R = [U | Qᵀ Y]``: the square rule gives
Q and U from X, and ``Qᵀ Y`` is differentiated as the product it is. pinv: Golub & Pereyra
(1973); it is exact where the rank (after the ``rcond`` cut-off) is locally constant.

Conventions
-----------
* Triangle: like NumPy (and ``cholesky`` here), eigh and eigvalsh read only the ``UPLO``
  triangle of A (lower by default), so the derivative is that of the function NumPy computes:
  the other triangle has zero derivative, and ``Ā`` is triangular (the VJP of building the
  symmetric matrix from that triangle). Along symmetric directions this is the usual
  symmetric-input derivative; for a symmetric parametrisation the gradient is ``(Ā + Āᵀ)/2``.
  ``pinv(..., hermitian=True)`` and ``svd(..., hermitian=True)`` go through eigh (as NumPy's
  do), so they read the lower triangle too.
* Gauge: eigenvectors and singular vectors are those LAPACK returns (each fixed up to sign,
  which NumPy does not normalise); derivatives are those of that choice, which is locally
  continuous where the values are distinct. Functions that do not depend on the signs (``V
  diag(f(w)) Vᵀ``, ``U S Vᵀ``, projections ``U Uᵀ``) have the same derivative in any gauge.
  LAPACK skips a Householder reflection where a column is already zero below the diagonal (a
  diagonal or triangular A): there the signs differ from those at every nearby matrix (a removable
  jump of eigh's, svd's and qr's factors), and derivatives are those of the signs at that point.
* Repeated values: eigenvalues (eigvalsh, and ``eigh(A)[0]`` in reverse mode) and singular values
  (svdvals) keep the finite derivative above at repeated values (for the basis LAPACK returns:
  sorted values have kinks where they cross, as ``abs`` at 0, while symmetric functions such as
  ``Σ f(w)`` are differentiable there and get their true derivative). Eigen- and singular-vector derivatives
  are not defined where two values are equal (closer than ``16 n eps max|w|``: an exactly repeated
  value comes out of LAPACK split by up to ~3 n eps max|w|, measured): there they raise
  ``UndefinedDerivativeError`` instead of returning inf/NaN. Forward mode raises as soon as the
  tangent couples two equal values (it cannot know which results will be used: take eigvalsh or
  svdvals for the values alone); reverse mode raises only if the vectors' cotangent is nonzero.
  Second derivatives of eigvalsh/svdvals (and of norm ord=2, -2, 'nuc') go through the vectors
  and raise there as well, and, for non-square matrices, where a singular value is 0.
* ``svd(..., full_matrices=True)`` (NumPy's default) of a non-square matrix returns extra columns
  of U (or rows of Vᵀ) that are not unique: forward mode raises ``UndefinedDerivativeError``
  naming ``full_matrices=False``; reverse mode raises only if those extra columns receive a
  cotangent. ``qr(..., mode='complete')`` with m > n likewise. Square matrices: both settings are
  the same factorisation and are differentiated.
* Rank: the U/V terms with ``S⁻¹`` (non-square svd) and every qr derivative (``R⁻¹``) need full
  rank; a zero singular value or R diagonal raises ``SingularMatrixError``. qr ``mode='raw'``
  (Householder reflectors) and the deprecated ``'economic'`` raise ``MissingRuleError``.

Composites (no rule of their own): lstsq differentiates ``x = pinv(a, rcond) @ b`` (the
minimum-norm solution, exact while the rank is locally constant), residuals ``Σ (a x - b)²``
where NumPy reports them and the singular values through svdvals, at NumPy's own values (its
LAPACK driver rounds differently); the rank is NumPy's integer. matrix_power is NumPy's sequence
of matmuls (and inv for n < 0), multi_dot ``np.dot`` in NumPy's cheapest order, so their values
are NumPy's; matrix_norm and vector_norm route to ``np.linalg.norm``'s implementation
(``linalg.norm``), whose matrix orders 2, -2 and 'nuc' take the singular values from svdvals.
"""
from __future__ import annotations

import math
import operator
import warnings

import numpy as np

from ..errors import MissingRuleError, SingularMatrixError, UndefinedDerivativeError
from . import linalg as _linalg
from .core import Rule, normalize_axis, register_function, shape_of
from .linalg import T, _dtype, _ex_matrices, _normal, _strip

_EighResult = type(np.linalg.eigh(np.eye(1)))
_SVDResult = type(np.linalg.svd(np.eye(1)))
_QRResult = type(np.linalg.qr(np.eye(1)))

#: values closer than this many n·eps·max|value| count as equal (see the module docstring)
_TIE_ULPS = 16.0
_FORWARD, _BACKWARD = "dualad (forward mode)", "reversead (backward)"


# -- packing several results into one array (one primitive, one LAPACK call) ------------------
def _pack(*parts):
    """``(array, number of data axes)`` pairs -> one array: the data axes flattened, side by side
    on the last axis (the leading axes, batch and stack, are shared)."""
    flat = []
    for x, ndata in parts:
        shape = shape_of(x)
        lead, data = shape[:len(shape) - ndata], shape[len(shape) - ndata:]
        flat.append(np.reshape(x, lead + (math.prod(data),)))
    return np.concatenate(flat, axis=-1)


def _unpack(packed, shapes):
    """The inverse of ``_pack``: slices of the last axis reshaped to ``lead + shape``."""
    lead = shape_of(packed)[:-1]
    parts, start = [], 0
    for shape in shapes:
        size = math.prod(shape)
        parts.append(np.reshape(packed[..., start:start + size], lead + tuple(shape)))
        start += size
    return parts


# -- shared helpers -------------------------------------------------------------------------
def _eye(n, like):
    return np.eye(n, dtype=_dtype(_strip(like)))


def _diag_embed(d, n):
    """``diag(d)`` for a stack of vectors ``(..., n)``."""
    return d[..., None, :] * _eye(n, d)


def _diagonal(m):
    return np.diagonal(m, axis1=-2, axis2=-1)


def _symmetric_from(t, uplo):
    """The symmetric matrix eigh builds from the ``uplo`` triangle of ``t`` (a linear map)."""
    if uplo == "L":
        return np.tril(t) + T(np.tril(t, -1))
    return np.triu(t) + T(np.triu(t, 1))


def _symmetric_from_transpose(g, uplo):
    """The transpose of ``_symmetric_from``: a cotangent on the triangle that is read."""
    if uplo == "L":
        return np.tril(g) + np.tril(T(g), -1)
    return np.triu(g) + np.triu(T(g), 1)


def _ties(values):
    """Boolean ``(..., n, n)``: pairs ``i ≠ j`` of (numerically) equal values in each stack."""
    v = _strip(values)
    n = v.shape[-1]
    eps = np.finfo(_dtype(v)).eps
    scale = np.max(np.abs(v), axis=-1, initial=0.0)[..., None, None]
    close = np.abs(v[..., :, None] - v[..., None, :]) <= _TIE_ULPS * n * eps * scale
    return close & ~np.eye(n, dtype=bool)


def _near_zero(values):
    """Boolean ``(..., n)``: values that are 0 to the same tolerance as ``_ties``."""
    v = _strip(values)
    eps = np.finfo(_dtype(v)).eps
    scale = np.max(np.abs(v), axis=-1, initial=0.0, keepdims=True)
    return np.abs(v) <= _TIE_ULPS * v.shape[-1] * eps * scale


def _reciprocal_differences(diff, skip):
    """``1 / diff`` off the diagonal and where ``skip`` is False; 0 elsewhere (constants there, so
    their derivatives are 0 too). ``diff`` may be traced; ``skip`` is a plain boolean mask."""
    zero = skip | np.eye(skip.shape[-1], dtype=bool)
    return np.where(zero, 0, 1 / np.where(zero, 1, diff))


def _coupled(mask, *couplings):
    """Whether any coupling matrix (batched, maybe traced) is nonzero where ``mask`` is True."""
    return any(np.any(np.where(mask, _strip(c), 0) != 0) for c in couplings)


def _receives(bar, nb, ndata):
    """Per matrix of the stack (plain boolean): whether the cotangent ``bar`` is nonzero there."""
    plain = _strip(bar) != 0
    axes = tuple(range(nb)) + tuple(range(plain.ndim - ndata, plain.ndim))
    return np.any(plain, axis=axes)


def _which(mask):
    """' (matrix (1, 2) of the stack)' for the first True entry of a stack mask; '' for one matrix."""
    if np.ndim(mask) == 0:
        return ""
    return f" (matrix {tuple(int(i) for i in np.argwhere(mask)[0])} of the stack)"


def _first_tie(values, where):
    """``"values i and j are equal (a and b) (matrix k of the stack)"`` for the first tied pair
    of ``where`` (a plain ``(..., n, n)`` mask over ``values``)."""
    v = _strip(values)
    index = tuple(int(k) for k in np.argwhere(where)[0])
    i, j = index[-2:]
    vals = v[index[:-2]]
    return (f"values {i} and {j} are equal ({float(vals[i])!r} and {float(vals[j])!r})"
            f"{_which(np.any(where, axis=(-2, -1)))}")


def _tie_error(func, kind, mode, values, where, fix):
    """``kind``: 'eigen' or 'singular '; ``where``: the tied pairs (a plain stack mask)."""
    return UndefinedDerivativeError(
        f"{func} in {mode}: {kind}{_first_tie(values, where)}, where the derivative of the "
        f"{kind}vectors is not defined (any rotation within their space is as valid); {fix}")


def _rank_error(func, mode, stack, what):
    return SingularMatrixError(
        f"{func} in {mode}: the matrix is rank-deficient ({what} is 0){_which(stack)}, where "
        "the derivative is not defined; keep A away from rank-deficient matrices")


# -- eigh and eigvalsh --------------------------------------------------------------------------
_EIGH_FIX = ("differentiate np.linalg.eigvalsh for the eigenvalues alone, or perturb A so that its "
             "eigenvalues separate")


def _eigh_packed(a, UPLO):
    w, v = np.linalg.eigh(a, UPLO=UPLO)
    return _pack((w, 1), (v, 2))


def _eigh_jvp(primals, tangents, out, nb, UPLO):
    (t,) = tangents
    n = shape_of(primals[0])[-1]
    w, v = _unpack(out, ((n,), (n, n)))
    k = np.matmul(T(v), np.matmul(_symmetric_from(t, UPLO), v))
    ties = _ties(w)
    if ties.any() and _coupled(ties, k):
        raise _tie_error("np.linalg.eigh", "eigen", _FORWARD, w, ties, _EIGH_FIX)
    f = _reciprocal_differences(w[..., None, :] - w[..., :, None], ties)
    return _pack((_diagonal(k), 1), (np.matmul(v, f * k), 2))


def _eigh_vjp(argnum, out_bar, primals, out, nb, UPLO):
    n = shape_of(primals[0])[-1]
    w, v = _unpack(out, ((n,), (n, n)))
    w_bar, v_bar = _unpack(out_bar, ((n,), (n, n)))
    inner = _diag_embed(w_bar, n)
    receives = _receives(v_bar, nb, 2)
    if np.any(receives):
        ties = _ties(w)
        hit = ties & np.asarray(receives)[..., None, None]
        if hit.any():
            raise _tie_error("np.linalg.eigh", "eigen", _BACKWARD, w, hit,
                             "use only the eigenvalues there (or np.linalg.eigvalsh), or a function "
                             "of A that does not depend on the choice of eigenvectors")
        f = _reciprocal_differences(w[..., None, :] - w[..., :, None], ties)
        inner = inner + f * np.matmul(T(v), v_bar)
    return _symmetric_from_transpose(np.matmul(v, np.matmul(inner, T(v))), UPLO)


eigh_rule = Rule("eigh", _eigh_packed, jvp=_eigh_jvp, vjp=_eigh_vjp)


def _second_order_error(func, err):
    """``err`` (from the vectors' rule) restated for the values' second derivatives."""
    return type(err)(
        f"{func}: its second derivatives go through the vectors, whose derivative is not defined "
        f"here (first derivatives are; second derivatives are not defined where two values are "
        f"equal): {err}")


def _eigenvectors(a, uplo):
    """V of ``a``: NumPy's for a plain array, traced (through ``eigh_rule``) for a traced one, so
    that second derivatives of the eigenvalues include V's dependence on A."""
    try:
        return np.linalg.eigh(a, UPLO=uplo)[1]
    except (UndefinedDerivativeError, SingularMatrixError) as err:
        raise _second_order_error("np.linalg.eigvalsh", err) from None


def _eigvalsh_jvp(primals, tangents, out, nb, UPLO):
    v = _eigenvectors(primals[0], UPLO)
    return _diagonal(np.matmul(T(v), np.matmul(_symmetric_from(tangents[0], UPLO), v)))


def _eigvalsh_vjp(argnum, out_bar, primals, out, nb, UPLO):
    v = _eigenvectors(primals[0], UPLO)
    return _symmetric_from_transpose(np.matmul(v * out_bar[..., None, :], T(v)), UPLO)


eigvalsh_rule = Rule("eigvalsh", lambda a, UPLO: np.linalg.eigvalsh(a, UPLO=UPLO),
                     jvp=_eigvalsh_jvp, vjp=_eigvalsh_vjp)


def _uplo(UPLO):
    uplo = str(UPLO).upper()
    if uplo not in ("L", "U"):
        raise ValueError("UPLO argument must be 'L' or 'U'")
    return uplo


# -- svd and svdvals -----------------------------------------------------------------------------
_SVD_FIX = ("differentiate np.linalg.svdvals (or svd(..., compute_uv=False)) for the singular values "
            "alone, or perturb A so that its singular values separate")


def _svd_layout(shape, full):
    m, n = shape[-2:]
    k = min(m, n)
    return (m, m if full else k), (k,), (n if full else k, n)


def _svd_packed(a, full_matrices):
    u, s, vh = np.linalg.svd(a, full_matrices=full_matrices)
    return _pack((u, 2), (s, 1), (vh, 2))


def _full_matrices_error(mode, m, n):
    extra = "columns of U" if m > n else "rows of Vh"
    return UndefinedDerivativeError(
        f"np.linalg.svd(a, full_matrices=True) in {mode}: a is {m} x {n}, and the {abs(m - n)} extra "
        f"{extra} that full_matrices=True adds are not unique (any orthonormal basis of the "
        "complement is as valid), so they have no derivative; pass full_matrices=False (the thin "
        "SVD, differentiable), or compute_uv=False for the singular values alone")


def _svd_jvp(primals, tangents, out, nb, full_matrices):
    (t,) = tangents
    m, n = shape_of(primals[0])[-2:]
    k = min(m, n)
    if full_matrices and m != n:
        raise _full_matrices_error(_FORWARD, m, n)
    u, s, vh = _unpack(out, _svd_layout((m, n), full_matrices))
    v = T(vh)
    tv = np.matmul(t, v)
    p = np.matmul(T(u), tv)
    x, y = p * s[..., None, :], s[..., :, None] * p  # P S and S P
    ju, jv = x + T(x), y + T(y)
    if m != n:  # the extra terms divide by s (checked first: zero singular values also tie)
        zero = _near_zero(s)
        if zero.any():
            raise _rank_error("np.linalg.svd", _FORWARD, np.any(zero, axis=-1), "a singular value")
    ties = _ties(s)
    if ties.any() and _coupled(ties, ju, jv):
        raise _tie_error("np.linalg.svd", "singular ", _FORWARD, s, ties, _SVD_FIX)
    s2 = s * s
    g = _reciprocal_differences(s2[..., None, :] - s2[..., :, None], ties)
    u_dot, v_dot = np.matmul(u, g * ju), np.matmul(v, g * jv)
    if m != n:
        if m > k:
            u_dot = u_dot + (tv - np.matmul(u, p)) / s[..., None, :]
        else:
            v_dot = v_dot + (np.matmul(T(t), u) - np.matmul(v, T(p))) / s[..., None, :]
    return _pack((u_dot, 2), (_diagonal(p), 1), (T(v_dot), 2))


def _svd_vjp(argnum, out_bar, primals, out, nb, full_matrices):
    m, n = shape_of(primals[0])[-2:]
    k = min(m, n)
    layout = _svd_layout((m, n), full_matrices)
    u, s, vh = _unpack(out, layout)
    u_bar, s_bar, vh_bar = _unpack(out_bar, layout)
    if full_matrices and m != n:
        extra = u_bar[..., :, k:] if m > n else vh_bar[..., k:, :]
        if np.any(_strip(extra)):
            raise _full_matrices_error(_BACKWARD, m, n)
        u, vh, u_bar, vh_bar = u[..., :, :k], vh[..., :k, :], u_bar[..., :, :k], vh_bar[..., :k, :]
    inner = _diag_embed(s_bar, k)
    needs_u, needs_v = _receives(u_bar, nb, 2), _receives(vh_bar, nb, 2)
    needs = np.asarray(needs_u | needs_v)
    extra_u, extra_v = m > k and np.any(needs_u), n > k and np.any(needs_v)
    if extra_u or extra_v:  # the extra terms divide by s (checked first: zero singular values also tie)
        hit = np.any(_near_zero(s), axis=-1) & np.asarray(needs_u if extra_u else needs_v)
        if np.any(hit):
            raise _rank_error("np.linalg.svd", _BACKWARD, hit, "a singular value")
    if np.any(needs):
        ties = _ties(s)
        hit = ties & needs[..., None, None]
        if hit.any():
            raise _tie_error("np.linalg.svd", "singular ", _BACKWARD, s, hit,
                             "use only the singular values there (or np.linalg.svdvals), or a "
                             "function of A that does not depend on the choice of singular vectors")
        s2 = s * s
        g = _reciprocal_differences(s2[..., None, :] - s2[..., :, None], ties)
        if np.any(needs_u):
            j = np.matmul(T(u), u_bar)
            inner = inner + (g * (j - T(j))) * s[..., None, :]
        if np.any(needs_v):
            lv = np.matmul(vh, T(vh_bar))
            inner = inner + s[..., :, None] * (g * (lv - T(lv)))
    a_bar = np.matmul(u, np.matmul(inner, vh))
    if extra_u:
        a_bar = a_bar + np.matmul((u_bar - np.matmul(u, np.matmul(T(u), u_bar))) / s[..., None, :], vh)
    if extra_v:
        a_bar = a_bar + np.matmul(u / s[..., None, :], vh_bar - np.matmul(np.matmul(vh_bar, T(vh)), vh))
    return a_bar


svd_rule = Rule("svd", _svd_packed, jvp=_svd_jvp, vjp=_svd_vjp)


def _singular_vectors(a):
    """Thin U and Vᵀ of ``a``: NumPy's for a plain array, traced (through ``svd_rule``) for a
    traced one, so that second derivatives of the singular values include their dependence on A."""
    try:
        u, _, vh = np.linalg.svd(a, full_matrices=False)
    except (UndefinedDerivativeError, SingularMatrixError) as err:
        raise _second_order_error("np.linalg.svdvals", err) from None
    return u, vh


def _svdvals_jvp(primals, tangents, out, nb):
    u, vh = _singular_vectors(primals[0])
    return np.sum(u * np.matmul(tangents[0], T(vh)), axis=-2)


def _svdvals_vjp(argnum, out_bar, primals, out, nb):
    u, vh = _singular_vectors(primals[0])
    return np.matmul(u * out_bar[..., None, :], vh)


svdvals_rule = Rule("svdvals", lambda a: np.linalg.svd(a, compute_uv=False),
                    jvp=_svdvals_jvp, vjp=_svdvals_vjp)


def _svd_hermitian(a, compute_uv):
    """NumPy's ``svd(..., hermitian=True)``, step for step, through eigh: |w| sorted descending,
    the signs moved into Vᵀ (piecewise constant, so no derivative)."""
    if not compute_uv:
        return np.sort(np.abs(np.linalg.eigvalsh(a)))[..., ::-1]
    s, u = eigh(a)
    sign = np.copysign(1.0, _strip(s))
    s = np.abs(s)
    order = np.argsort(_strip(s))[..., ::-1]
    sign = np.take_along_axis(sign, order, axis=-1)
    s = np.take_along_axis(s, order, axis=-1)
    u = np.take_along_axis(u, order[..., None, :], axis=-1)
    return _SVDResult(u, s, T(u * sign[..., None, :]))


# -- qr ------------------------------------------------------------------------------------------
def _qr_layout(shape, complete):
    m, n = shape[-2:]
    if complete and m > n:
        return (m, m), (m, n)
    k = min(m, n)
    return (m, k), (k, n)


def _qr_packed(a, complete):
    q, r = np.linalg.qr(a, mode="complete" if complete else "reduced")
    return _pack((q, 2), (r, 2))


def _r_inverse(r, mode):
    """R⁻¹ of the square upper triangular R, after checking that its diagonal has no zero."""
    diag = np.abs(_diagonal(_strip(r)))
    eps = np.finfo(_dtype(diag)).eps
    scale = np.max(np.abs(_strip(r)), axis=(-2, -1), initial=0.0)
    zero = np.any(diag <= _TIE_ULPS * diag.shape[-1] * eps * scale[..., None], axis=-1)
    if np.any(zero):
        raise _rank_error("np.linalg.qr", mode, zero, "a diagonal entry of R")
    return np.linalg.inv(r)


def _qr_square_jvp(q, r, t, mode):
    """(Q̇, Ṙ) of A = Q R with R square (m >= n)."""
    r_inv = _r_inverse(r, mode)
    c = np.matmul(T(q), np.matmul(t, r_inv))
    b = np.triu(c) + T(np.tril(c, -1))  # C minus the antisymmetric Qᵀ Q̇
    return np.matmul(t, r_inv) - np.matmul(q, b), np.matmul(b, r)


def _qr_square_vjp(q, r, q_bar, r_bar, mode):
    r_inv = _r_inverse(r, mode)
    m = np.matmul(r_bar, T(r)) - np.matmul(T(q), q_bar)
    return np.matmul(q_bar + np.matmul(q, np.triu(m) + T(np.triu(m, 1))), T(r_inv))


def _complete_error(mode, m, n):
    return UndefinedDerivativeError(
        f"np.linalg.qr(a, mode='complete') in {mode}: a is {m} x {n}, and the {m - n} extra columns "
        "of Q that mode='complete' adds are not unique, so they have no derivative; use "
        "mode='reduced' (the default, differentiable) or mode='r'")


def _qr_jvp(primals, tangents, out, nb, complete):
    (a,), (t,) = primals, tangents
    m, n = shape_of(a)[-2:]
    if complete and m > n:
        raise _complete_error(_FORWARD, m, n)
    q, r = _unpack(out, _qr_layout((m, n), complete))
    if m >= n:
        q_dot, r_dot = _qr_square_jvp(q, r, t, _FORWARD)
    else:  # A = [X | Y]: X = Q U, R = [U | Qᵀ Y]
        q_dot, u_dot = _qr_square_jvp(q, r[..., :, :m], t[..., :, :m], _FORWARD)
        w_dot = np.matmul(T(q_dot), a[..., :, m:]) + np.matmul(T(q), t[..., :, m:])
        r_dot = np.concatenate([u_dot, w_dot], axis=-1)
    return _pack((q_dot, 2), (r_dot, 2))


def _qr_vjp(argnum, out_bar, primals, out, nb, complete):
    (a,) = primals
    m, n = shape_of(a)[-2:]
    layout = _qr_layout((m, n), complete)
    q, r = _unpack(out, layout)
    q_bar, r_bar = _unpack(out_bar, layout)
    if complete and m > n:
        if np.any(_strip(q_bar[..., :, n:])):
            raise _complete_error(_BACKWARD, m, n)
        # R's rows below n are zeros whatever A is: their cotangent contributes nothing
        q, r, q_bar, r_bar = q[..., :, :n], r[..., :n, :], q_bar[..., :, :n], r_bar[..., :n, :]
    if m >= n:
        return _qr_square_vjp(q, r, q_bar, r_bar, _BACKWARD)
    w_bar = r_bar[..., :, m:]
    x_bar = _qr_square_vjp(q, r[..., :, :m], q_bar + np.matmul(a[..., :, m:], T(w_bar)),
                           r_bar[..., :, :m], _BACKWARD)
    return np.concatenate([x_bar, np.matmul(q, w_bar)], axis=-1)


qr_rule = Rule("qr", _qr_packed, jvp=_qr_jvp, vjp=_qr_vjp)


# -- pinv: Golub & Pereyra (1973), exact while the rank is locally constant ----------------------
def _pinv_primal(a, rcond, hermitian):
    return np.linalg.pinv(a, rcond=rcond, hermitian=hermitian)


def _projectors(a, x, hermitian):
    """``(I - A X, I - X A)`` with A as NumPy's pinv sees it (``hermitian=True`` goes through
    eigh, which reads the lower triangle)."""
    if hermitian:
        a = _symmetric_from(a, "L")
    m, n = shape_of(a)[-2:]
    return _eye(m, x) - np.matmul(a, x), _eye(n, x) - np.matmul(x, a)


def _pinv_jvp(primals, tangents, out, nb, rcond, hermitian):
    left, right = _projectors(primals[0], out, hermitian)
    t = _symmetric_from(tangents[0], "L") if hermitian else tangents[0]
    x, tt = out, T(t)
    return (-np.matmul(x, np.matmul(t, x)) + np.matmul(np.matmul(x, T(x)), np.matmul(tt, left))
            + np.matmul(right, np.matmul(tt, np.matmul(T(x), x))))


def _pinv_vjp(argnum, out_bar, primals, out, nb, rcond, hermitian):
    left, right = _projectors(primals[0], out, hermitian)
    x, xt, bar_t = out, T(out), T(out_bar)
    g = (-np.matmul(xt, np.matmul(out_bar, xt)) + np.matmul(left, np.matmul(bar_t, np.matmul(x, xt)))
         + np.matmul(np.matmul(xt, x), np.matmul(bar_t, right)))
    return _symmetric_from_transpose(g, "L") if hermitian else g


pinv_rule = Rule("pinv", _pinv_primal, jvp=_pinv_jvp, vjp=_pinv_vjp)


# -- examples: well-separated spectra, so that finite differences are stable ---------------------
def _orthonormal(rng, shape):
    """A stack of matrices with orthonormal columns, of ``shape`` (..., m, k), m >= k."""
    q, r = np.linalg.qr(rng.standard_normal(shape))
    return q * np.sign(_diagonal(r))[..., None, :]


def _symmetric(*shape, spectrum=(-1.7, -0.4, 0.9, 2.2, 3.5), junk=None):
    """``rng -> Q diag(d) Qᵀ`` with eigenvalues near ``spectrum`` (gaps >= 1); ``junk='upper'``
    ('lower') adds noise to the triangle that eigh does not read."""
    def make(rng):
        n = shape[-1]
        d = np.asarray(spectrum[:n]) + rng.uniform(0.0, 0.2, shape[:-1])
        q = _orthonormal(rng, shape)
        return unread_noise(rng, np.matmul(q * d[..., None, :], T(q)), junk)
    return make


def unread_noise(rng, a, junk):
    """``a`` plus noise in its strict ``junk`` triangle ('upper', 'lower'; None: none), the one
    that eigh/eigvalsh/cholesky with the other ``UPLO`` do not read (examples and tests)."""
    if junk == "upper":
        return a + np.triu(rng.standard_normal(a.shape), 1)
    if junk == "lower":
        return a + np.tril(rng.standard_normal(a.shape), -1)
    return a


def _rectangular(*shape, values=(3.2, 2.1, 1.3, 0.6)):
    """``rng -> U diag(s) Vᵀ`` with singular values near ``values`` (gaps >= 0.5, min >= 0.6)."""
    def make(rng):
        m, n = shape[-2:]
        k = min(m, n)
        s = np.asarray(values[:k]) + rng.uniform(0.0, 0.1, shape[:-2] + (k,))
        u = _orthonormal(rng, shape[:-2] + (m, k))
        v = _orthonormal(rng, shape[:-2] + (n, k))
        return np.matmul(u * s[..., None, :], T(v))
    return make


def _moderate(*shape):
    """``rng -> I + 0.3 N / n``: invertible, powers of moderate size."""
    return lambda rng: np.eye(shape[-1]) + 0.3 * rng.standard_normal(shape) / shape[-1]


# -- the np.linalg functions ----------------------------------------------------------------------
@register_function(np.linalg.eigh, examples=[
    _ex_matrices(_symmetric(3, 3)), _ex_matrices(_symmetric(3, 3, junk="upper")),
    _ex_matrices(_symmetric(3, 3, junk="lower"), "U"), _ex_matrices(_symmetric(2, 4, 4)),
    _ex_matrices(_symmetric(1, 1))])
def eigh(a, UPLO="L"):
    """Eigenvalues (ascending) and eigenvectors of a symmetric A read from its ``UPLO`` triangle,
    as NumPy's ``EighResult``; eigenvector derivatives need distinct eigenvalues."""
    uplo = _uplo(UPLO)
    packed = eigh_rule(a, UPLO=uplo)
    n = shape_of(a)[-1]
    w, v = _unpack(packed, ((n,), (n, n)))
    return _EighResult(w, v)


@register_function(np.linalg.eigvalsh, examples=[
    _ex_matrices(_symmetric(3, 3)), _ex_matrices(_symmetric(2, 4, 4, junk="lower"), UPLO="U"),
    _ex_matrices(_symmetric(3, 3, junk="upper"))])
def eigvalsh(a, UPLO="L"):
    """Eigenvalues (ascending) of a symmetric A read from its ``UPLO`` triangle."""
    return eigvalsh_rule(a, UPLO=_uplo(UPLO))


@register_function(np.linalg.svd, examples=[
    _ex_matrices(_rectangular(3, 3)), _ex_matrices(_rectangular(4, 3), full_matrices=False),
    _ex_matrices(_rectangular(3, 4), False), _ex_matrices(_rectangular(2, 4, 3), full_matrices=False),
    _ex_matrices(_rectangular(3, 4), compute_uv=False),
    _ex_matrices(_symmetric(3, 3, spectrum=(-2.6, 0.7, 1.6)), hermitian=True),
    _ex_matrices(_symmetric(3, 3, spectrum=(-2.6, 0.7, 1.6)), compute_uv=False, hermitian=True)])
def svd(a, full_matrices=True, compute_uv=True, hermitian=False):
    """NumPy's ``SVDResult(U, S, Vh)`` (or S alone for ``compute_uv=False``). Non-square A needs
    ``full_matrices=False`` for derivatives of U and Vh (the extra columns are not unique)."""
    if hermitian:
        return _svd_hermitian(a, compute_uv)
    if not compute_uv:
        return svdvals_rule(a)
    full = bool(full_matrices)
    packed = svd_rule(a, full_matrices=full)
    return _SVDResult(*_unpack(packed, _svd_layout(shape_of(a), full)))


@register_function(np.linalg.svdvals, examples=[_ex_matrices(_rectangular(3, 4)),
                                                _ex_matrices(_rectangular(2, 3, 3))])
def svdvals(x, /):
    """Singular values, descending (as ``svd(x, compute_uv=False)``)."""
    return svdvals_rule(x)


@register_function(np.linalg.qr, examples=[
    _ex_matrices(_rectangular(4, 3)), _ex_matrices(_rectangular(3, 3)), _ex_matrices(_rectangular(2, 4, 3)),
    _ex_matrices(_rectangular(3, 5)), _ex_matrices(_rectangular(4, 3), mode="r"),
    _ex_matrices(_rectangular(3, 3), mode="complete"), _ex_matrices(_rectangular(2, 4), "complete")])
def qr(a, mode="reduced"):
    """NumPy's ``QRResult(Q, R)`` (R alone for ``mode='r'``). Derivatives need the leading
    min(m, n) columns independent; ``mode='complete'`` with m > n adds columns that have none."""
    if mode in ("f", "full"):
        warnings.warn("The 'full' option is deprecated in favor of 'reduced'.\nFor backward "
                      "compatibility let mode default.", DeprecationWarning, stacklevel=3)
        mode = "reduced"
    if mode in ("raw", "e", "economic"):
        raise MissingRuleError(
            f"np.linalg.qr(a, mode={mode!r}) returns LAPACK's Householder reflectors, which dualad "
            "does not differentiate; use mode='reduced' (Q and R), 'complete' or 'r'")
    if mode not in ("reduced", "complete", "r"):
        raise ValueError(f"Unrecognized mode '{mode}'")
    shape = shape_of(a)
    if len(shape) < 2:
        return np.linalg.qr(_strip(a), mode=mode)  # NumPy's LinAlgError
    complete = mode == "complete" and shape[-2] > shape[-1]
    q, r = _unpack(qr_rule(a, complete=complete), _qr_layout(shape, complete))
    return r if mode == "r" else _QRResult(q, r)


_NO_VALUE = object()


@register_function(np.linalg.pinv, examples=[
    _ex_matrices(_rectangular(4, 3)), _ex_matrices(_rectangular(3, 4)), _ex_matrices(_rectangular(2, 3, 3)),
    _ex_matrices(_symmetric(3, 3, spectrum=(-2.1, 0.8, 1.9), junk="upper"), hermitian=True),
    _ex_matrices(_rectangular(3, 2), rcond=1e-10)])
def pinv(a, rcond=None, hermitian=False, *, rtol=_NO_VALUE):
    """Moore-Penrose pseudo-inverse; its derivative assumes the rank (after the cut-off) is
    locally constant, which holds wherever no singular value is at the cut-off."""
    if rcond is None:
        if rtol is _NO_VALUE:
            rcond = 1e-15
        elif rtol is None:
            rcond = max(shape_of(a)[-2:]) * np.finfo(_dtype(_strip(a))).eps
        else:
            rcond = rtol
    elif rtol is not _NO_VALUE:
        raise ValueError("`rtol` and `rcond` can't be both set.")
    return pinv_rule(a, rcond=rcond, hermitian=bool(hermitian))


@register_function(np.linalg.lstsq, examples=[
    _ex_matrices(_rectangular(5, 3), _normal(5)), _ex_matrices(_rectangular(5, 3), _normal(5, 2)),
    _ex_matrices(_rectangular(3, 5), _normal(3)), _ex_matrices(_rectangular(4, 4), _normal(4), rcond=1e-8)])
def lstsq(a, b, rcond=None):
    """``(x, residuals, rank, s)`` like NumPy: x = pinv(a, rcond) @ b (the minimum-norm least
    squares solution), residuals where NumPy reports them, rank an integer, s through svdvals."""
    a, b = (x if getattr(x, "_ad_level", None) is not None else np.asarray(x) for x in (a, b))
    plain_a, plain_b = _strip(a), _strip(b)
    plain_x, plain_res, rank, plain_s = np.linalg.lstsq(plain_a, plain_b, rcond=rcond)
    m, n = plain_a.shape
    if rcond is None:
        rcond = np.finfo(np.float64).eps * max(m, n)  # NumPy's default (it computes in float64)
    elif rcond < 0:
        rcond = np.finfo(np.float64).eps  # LAPACK's gelsd: machine precision
    x = np.matmul(pinv(a, rcond=rcond), b)
    residuals = plain_res  # empty where NumPy reports none: nothing to differentiate
    if rank == n and m > n:
        x2, b2 = (x, b) if np.ndim(b) == 2 else (x[:, None], b[:, None])
        r = np.matmul(a, x2) - b2
        residuals = _with_value(np.sum(r * r, axis=0), plain_res)
    return _with_value(x, plain_x), residuals, rank, _with_value(svdvals_rule(a), plain_s)


def _with_value(traced, value):
    """``traced``'s derivatives (of every order) at NumPy's ``value``, which equals traced's value to
    rounding: LAPACK's least-squares driver rounds differently from ``pinv(a) @ b``, and the value
    of a traced call should be the value of the plain one."""
    if getattr(traced, "_ad_level", None) is None:
        return value
    return value + (traced - _strip(traced))


@register_function(np.linalg.matrix_power, examples=[
    _ex_matrices(_moderate(3, 3), 3), _ex_matrices(_moderate(3, 3), 5), _ex_matrices(_moderate(3, 3), -2),
    _ex_matrices(_moderate(2, 3, 3), 2), _ex_matrices(_moderate(3, 3), 1), _ex_matrices(_moderate(2, 2), 0)])
def matrix_power(a, n):
    """``a`` to the integer power ``n`` (negative: of ``inv(a)``), with NumPy's sequence of
    products; ``n = 0`` gives the identity, a constant."""
    try:
        n = operator.index(n)
    except TypeError as err:
        raise TypeError("exponent must be an integer") from err
    shape = shape_of(a)
    if len(shape) < 2:
        raise np.linalg.LinAlgError(f"{len(shape)}-dimensional array given. Array must be at least "
                                    "two-dimensional")
    if shape[-1] != shape[-2]:
        raise np.linalg.LinAlgError("Last 2 dimensions of the array must be square")
    if n == 0:
        return np.linalg.matrix_power(_strip(a), 0)  # the identity: a constant
    if n < 0:
        a = np.linalg.inv(a)
        n = -n
    if n == 1:
        return a
    if n == 2:
        return np.matmul(a, a)
    if n == 3:
        return np.matmul(np.matmul(a, a), a)
    z = result = None
    while n > 0:
        z = a if z is None else np.matmul(z, z)
        n, bit = divmod(n, 2)
        if bit:
            result = z if result is None else np.matmul(result, z)
    return result


def _chain_order(shapes):
    """The split points of the cheapest parenthesisation (NumPy's dynamic programme, Cormen 15.2)."""
    n = len(shapes)
    p = [s[0] for s in shapes] + [shapes[-1][1]]
    cost = np.zeros((n, n))
    split = np.empty((n, n), dtype=np.intp)
    for length in range(1, n):
        for i in range(n - length):
            j = i + length
            cost[i, j] = np.inf
            for k in range(i, j):
                q = cost[i, k] + cost[k + 1, j] + p[i] * p[k + 1] * p[j + 1]
                if q < cost[i, j]:
                    cost[i, j] = q
                    split[i, j] = k
    return split


def _chain(arrays, split, i, j):
    if i == j:
        return arrays[i]
    return np.dot(_chain(arrays, split, i, split[i, j]), _chain(arrays, split, split[i, j] + 1, j))


def _ex_chain(*shapes):
    """An example of multi_dot: a list of normal arrays of ``shapes``."""
    return lambda rng: (([rng.standard_normal(shape) for shape in shapes],), {})


@register_function(np.linalg.multi_dot, examples=[
    _ex_chain((2, 3), (3, 4), (4, 2)), _ex_chain((3,), (3, 4), (4, 2), (2,)),
    _ex_chain((4, 2), (2, 3), (3, 3), (3,)), _ex_chain((2, 3), (3,))])
def multi_dot(arrays, *, out=None):
    """``np.dot`` of a chain in NumPy's cheapest order (so the values are NumPy's)."""
    if out is not None:
        raise TypeError("np.linalg.multi_dot(..., out=) is not supported for traced arrays: drop out=")
    arrays = [a if getattr(a, "_ad_level", None) is not None else np.asanyarray(a) for a in arrays]
    n = len(arrays)
    if n < 2:
        raise ValueError("Expecting at least two arrays.")
    if n == 2:
        return np.dot(arrays[0], arrays[1])
    first, last = np.ndim(arrays[0]), np.ndim(arrays[-1])
    if first == 1:
        arrays[0] = np.atleast_2d(arrays[0])
    if last == 1:
        arrays[-1] = T(np.atleast_2d(arrays[-1]))
    for a in arrays:
        if np.ndim(a) != 2:
            raise np.linalg.LinAlgError(f"{np.ndim(a)}-dimensional array given. Array must be "
                                        "two-dimensional")
    if n == 3:
        (a0, a1b0), (b1c0, c1) = shape_of(arrays[0]), shape_of(arrays[2])
        if a0 * b1c0 * (a1b0 + c1) < a1b0 * c1 * (a0 + b1c0):
            result = np.dot(np.dot(arrays[0], arrays[1]), arrays[2])
        else:
            result = np.dot(arrays[0], np.dot(arrays[1], arrays[2]))
    else:
        result = _chain(arrays, _chain_order([shape_of(a) for a in arrays]), 0, n - 1)
    if first == 1 and last == 1:
        return result[0, 0]
    if first == 1 or last == 1:
        return np.ravel(result)
    return result


@register_function(np.linalg.matrix_norm, examples=[
    _ex_matrices(_normal(3, 4)), _ex_matrices(_rectangular(3, 4), ord=2),
    _ex_matrices(_rectangular(2, 4, 3), ord="nuc", keepdims=True), _ex_matrices(_rectangular(3, 3), ord=-2),
    _ex_matrices(_normal(2, 3, 4), ord=1)])
def matrix_norm(x, /, *, keepdims=False, ord="fro"):
    """``np.linalg.norm(x, ord, axis=(-2, -1), keepdims)``, as NumPy defines it."""
    return _linalg.norm(x, axis=(-2, -1), keepdims=keepdims, ord=ord)


def _axis_tuple(axis, ndim):
    axes = tuple(normalize_axis(a, ndim) for a in axis)
    if len(set(axes)) != len(axes):
        raise ValueError("repeated axis")
    return axes


@register_function(np.linalg.vector_norm, examples=[
    _ex_matrices(_normal(5)), _ex_matrices(_normal(3, 4)), _ex_matrices(_normal(5), ord=3),
    _ex_matrices(_normal(2, 3, 4), axis=(0, 2), keepdims=True), _ex_matrices(_normal(3, 4), axis=-1, ord=1),
    _ex_matrices(_normal(3, 4), ord=np.inf, keepdims=True)])
def vector_norm(x, /, *, axis=None, keepdims=False, ord=2):
    """The vector norm of ``x`` over ``axis`` (every axis, or several, flattened into one), as NumPy
    computes it: through ``np.linalg.norm`` on the flattened axes."""
    shape = shape_of(x)
    if axis is None:
        flat, along = np.ravel(x), 0
    elif isinstance(axis, tuple):
        axes = _axis_tuple(axis, len(shape))
        rest = tuple(i for i in range(len(shape)) if i not in axes)
        flat = np.reshape(np.transpose(x, axes + rest),
                          (math.prod(shape[i] for i in axes),) + tuple(shape[i] for i in rest))
        along = 0
    else:
        flat, along = x, axis
    result = _linalg.norm(flat, axis=along, ord=ord)
    if keepdims:
        kept = list(shape)
        for i in (range(len(shape)) if axis is None else
                  _axis_tuple(axis if isinstance(axis, tuple) else (axis,), len(shape))):
            kept[i] = 1
        result = np.reshape(result, tuple(kept))
    return result
