"""The rest of np.linalg: eig, eigvals, cond, matrix_rank, tensorinv, tensorsolve, and NumPy 2's
Array-API functions np.linalg.matmul, outer, tensordot, trace, diagonal, cross, vecdot,
matrix_transpose.

Composites (no rule of their own, so both modes get them and values are NumPy's bit for bit):

* the Array-API functions are NumPy's own definitions on the registered ``np.*`` versions:
  ``linalg.trace``/``diagonal`` work on the last two axes (``offset=``), ``linalg.outer`` needs
  1-D inputs, ``linalg.cross`` 3-vectors (``axis=``), ``linalg.vecdot`` contracts ``axis=``,
  ``linalg.tensordot`` takes ``axes=`` by keyword, ``matrix_transpose`` swaps the last two axes;
* ``tensorinv`` / ``tensorsolve`` reshape to the square matrix NumPy builds, then ``inv`` /
  ``solve`` (their rules in ``linalg``);
* ``cond(x, p)``: ``p`` None, 2, -2 the ratio of the largest and smallest singular values
  (svdvals rule), any other ``p`` ``norm(x, p) * norm(inv(x), p)`` (norm and inv rules; as NumPy,
  the inverse of a float32 matrix is taken in float64 and the result cast back to float32).
  Where NumPy returns inf (a singular matrix: a zero singular value or a failed inverse) the
  derivative does not exist and ``SingularMatrixError`` (a ``LinAlgError``) is raised; p=-2 at
  a singular but nonzero matrix is 0 with the one-sided derivative of the smallest singular value
  (a kink, like ``abs``), as ``norm(x, -2)``;
* ``matrix_rank`` is NumPy's integer (no derivative: a plain result).

Rules (one LAPACK call each for the values; ``K = V⁻¹ Ȧ V``, ``F_ij = 1 / (w_j - w_i)`` off the
diagonal, 0 on it, ``∘`` the elementwise product, ``Δ(M)`` the diagonal of M as a diagonal matrix)::

    w, V = eig(A)    ẇ = diag(K),  V̇ = V (F ∘ K) - V Δ(Vᵀ V (F ∘ K))
                     Ā = V⁻ᵀ (diag(w̄) + F ∘ (Vᵀ V̄ - Vᵀ V Δ(Vᵀ V̄))) Vᵀ
    w = eigvals(A)   ẇ = diag(V⁻¹ Ȧ V),  Ā = V⁻ᵀ diag(w̄) Vᵀ    (V from eig, traced for Hessians)

Conventions of eig/eigvals (dualad/reversead are real-only):

* Real spectra only: where NumPy returns complex eigenvalues (any matrix of a stack with a
  complex pair), both raise ``NonNumericError`` naming the matrix; NumPy's real result is
  returned otherwise (values and eigenvectors exactly NumPy's, float32 stays float32).
* Gauge: LAPACK's eigenvectors have unit 2-norm columns with an arbitrary sign. The derivative is
  that of the unit-norm choice with LAPACK's sign kept (locally continuous): ``V̇`` is the
  Rayleigh-type derivative ``V (F ∘ K)`` with its component along each ``v_i`` removed, so
  ``v_iᵀ v̇_i = 0`` (PyTorch's ``torch.linalg.eig`` uses the same normalisation). Functions
  that do not depend on the gauge (``V f(diag w) V⁻¹``) have the same derivative in any gauge.
* Order: eigenvalues come in LAPACK's order (not sorted), locally constant, and each is
  differentiated along its own branch. As for eigh, LAPACK jumps at special matrices: where
  balancing isolates a row or column whose off-diagonal entries are exactly 0, or the
  Hessenberg reduction skips a reflector (a column exactly 0 below its subdiagonal) -- a
  diagonal or triangular A -- the order and signs can differ from those at every nearby matrix;
  derivatives there are those of the branches at that point.
* eigvals takes V from a second (eig) LAPACK call for its
  derivatives, its columns paired with eigvals' values in case LAPACK orders them differently.
* Repeated eigenvalues (closer than ``16 n eps max|w|``, decompositions' tolerance): a
  non-symmetric matrix's eigenvalues are in general not differentiable there (they split like
  a square root at a Jordan block), so eig and eigvals raise ``UndefinedDerivativeError``
  (forward mode as soon as the tangent is nonzero on that matrix, reverse mode where a
  cotangent reaches it). Use eigh/eigvalsh for symmetric matrices. Nearly defective matrices
  (nearly parallel eigenvectors) have large derivatives: they are correct, but ill-conditioned.
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import NonNumericError, SingularMatrixError, UndefinedDerivativeError
from .core import Rule, register_function, shape_of
from .decompositions import (_BACKWARD, _FORWARD, _diag_embed, _diagonal, _pack, _receives,
                             _first_tie, _reciprocal_differences, _ties, _unpack, _which)
from .linalg import T, _dtype, _ex_matrices, _normal, _strip, _wc

_EigResult = type(np.linalg.eig(np.eye(1)))


def _operand(x):
    return x if getattr(x, "_ad_level", None) is not None else np.asanyarray(x)


# -- examples ---------------------------------------------------------------------------------------
def _real_spectrum(*shape, spectrum=(-1.9, -0.6, 0.8, 2.1, 3.3)):
    """``rng -> P diag(d) P⁻¹``: a non-symmetric stack with real eigenvalues near ``spectrum``
    (gaps >= 1.1), P = I + 0.4 N / n well-conditioned (eigenvectors far from parallel)."""
    def make(rng):
        n = shape[-1]
        d = np.asarray(spectrum[:n]) + rng.uniform(0.0, 0.1, shape[:-1])
        p = np.eye(n) + 0.4 * rng.standard_normal(shape) / math.sqrt(n)
        return np.matmul(p * d[..., None, :], np.linalg.inv(p))
    return make


def _tensor(*shape):
    """``rng -> array of shape`` whose C-order reshape to ``(N, N)`` (N² = its size) is
    invertible and well-conditioned (the matrix tensorinv and tensorsolve invert)."""
    n = math.isqrt(math.prod(shape))
    return lambda rng: np.reshape(_wc(n, n)(rng), shape)


# -- the Array-API functions of np.linalg (NumPy 2) ---------------------------------------------------
@register_function(np.linalg.matmul, examples=[
    _ex_matrices(_normal(3, 4), _normal(4, 2)), _ex_matrices(_normal(2, 3, 4), _normal(4)),
    _ex_matrices(_normal(4), _normal(2, 4, 3)), _ex_matrices(_normal(2, 1, 3, 2), _normal(3, 2, 2))])
def matmul(x1, x2, /):
    """``np.matmul`` (the Array-API name)."""
    return np.matmul(x1, x2)


@register_function(np.linalg.outer, examples=[_ex_matrices(_normal(3), _normal(2)),
                                              _ex_matrices(_normal(1), _normal(4))])
def outer(x1, x2, /):
    """``np.outer`` of two 1-D arrays (NumPy's ValueError for any other dimension)."""
    x1, x2 = _operand(x1), _operand(x2)
    if np.ndim(x1) != 1 or np.ndim(x2) != 1:
        raise ValueError("Input arrays must be one-dimensional, but they are "
                         f"x1.ndim={np.ndim(x1)} and x2.ndim={np.ndim(x2)}.")
    return np.outer(x1, x2)


@register_function(np.linalg.tensordot, examples=[
    _ex_matrices(_normal(2, 3, 4), _normal(3, 4, 2)), _ex_matrices(_normal(3, 4), _normal(4, 2), axes=1),
    _ex_matrices(_normal(2, 3), _normal(3, 2), axes=([0, 1], [1, 0])),
    _ex_matrices(_normal(3), _normal(2), axes=0)])
def tensordot(x1, x2, /, *, axes=2):
    """``np.tensordot`` with ``axes`` by keyword."""
    return np.tensordot(x1, x2, axes=axes)


@register_function(np.linalg.trace, examples=[
    _ex_matrices(_normal(3, 3)), _ex_matrices(_normal(2, 3, 4), offset=1),
    _ex_matrices(_normal(2, 4, 3), offset=-2)])
def trace(x, /, *, offset=0, dtype=None):
    """The sum of the ``offset`` diagonal of the last two axes (``np.trace(x, offset, -2, -1)``)."""
    return np.trace(x, offset, -2, -1, dtype=dtype)


@register_function(np.linalg.diagonal, examples=[
    _ex_matrices(_normal(3, 3)), _ex_matrices(_normal(2, 3, 4), offset=1),
    _ex_matrices(_normal(2, 4, 3), offset=-1)])
def diagonal(x, /, *, offset=0):
    """The ``offset`` diagonal of the last two axes (``np.diagonal(x, offset, -2, -1)``)."""
    return np.diagonal(x, offset, -2, -1)


@register_function(np.linalg.cross, examples=[
    _ex_matrices(_normal(3), _normal(3)), _ex_matrices(_normal(4, 3), _normal(3)),
    _ex_matrices(_normal(3, 2), _normal(3, 1), axis=0)])
def cross(x1, x2, /, *, axis=-1):
    """``np.cross`` of (stacks of) 3-vectors along ``axis`` (2-vectors: NumPy's ValueError)."""
    x1, x2 = _operand(x1), _operand(x2)
    n1, n2 = shape_of(x1)[axis], shape_of(x2)[axis]  # (IndexError for a bad axis, as NumPy)
    if n1 != 3 or n2 != 3:
        raise ValueError("Both input arrays must be (arrays of) 3-dimensional vectors, "
                         f"but they are {n1} and {n2} dimensional instead.")
    return np.cross(x1, x2, axis=axis)


@register_function(np.linalg.vecdot, examples=[
    _ex_matrices(_normal(4), _normal(4)), _ex_matrices(_normal(2, 3), _normal(3)),
    _ex_matrices(_normal(3, 2), _normal(3, 2), axis=0)])
def vecdot(x1, x2, /, *, axis=-1):
    """``np.vecdot(x1, x2, axis=axis)`` (real arrays: no conjugate)."""
    return np.vecdot(x1, x2, axis=axis)


@register_function(np.linalg.matrix_transpose, examples=[_ex_matrices(_normal(3, 4)),
                                                         _ex_matrices(_normal(2, 3, 4))])
def matrix_transpose(x, /):
    """The last two axes swapped (NumPy's ValueError below two dimensions)."""
    if np.ndim(x) < 2:
        raise ValueError(f"Input array must be at least 2-dimensional, but it is {np.ndim(x)}")
    return np.swapaxes(x, -1, -2)


# -- tensorinv, tensorsolve: NumPy's reshapes around inv and solve -------------------------------------
@register_function(np.linalg.tensorinv, examples=[
    _ex_matrices(_tensor(2, 2, 4)), _ex_matrices(_tensor(4, 2, 2), ind=1),
    _ex_matrices(_tensor(2, 2, 2, 2), 2), _ex_matrices(_tensor(3, 3), ind=1)])
def tensorinv(a, ind=2):
    """The inverse of ``a`` for ``tensordot(·, ·, ind)``: ``inv`` of NumPy's square reshape."""
    a = _operand(a)
    shape = shape_of(a)
    if not ind > 0:
        raise ValueError("Invalid ind argument.")
    prod = math.prod(shape[ind:])
    inv_shape = shape[ind:] + shape[:ind]
    return np.reshape(np.linalg.inv(np.reshape(a, (prod, -1))), inv_shape)


@register_function(np.linalg.tensorsolve, examples=[
    _ex_matrices(_tensor(2, 2, 4), _normal(2, 2)), _ex_matrices(_tensor(2, 2, 2, 2), _normal(2, 2)),
    _ex_matrices(_tensor(4, 2, 2), _normal(4))])
def tensorsolve(a, b, axes=None):
    """``x`` with ``tensordot(a, x, x.ndim) = b``: NumPy's reshape to a square solve."""
    a, b = _operand(a), _operand(b)
    an = np.ndim(a)
    if axes is not None:
        all_axes = list(range(an))
        for k in axes:
            all_axes.remove(k)
            all_axes.insert(an, k)
        a = np.transpose(a, all_axes)
    old_shape = shape_of(a)[-(an - np.ndim(b)):]
    prod = math.prod(old_shape)
    if math.prod(shape_of(a)) != prod ** 2:
        raise np.linalg.LinAlgError(
            "Input arrays must satisfy the requirement             "
            "prod(a.shape[b.ndim:]) == prod(a.shape[:b.ndim])")
    x = np.linalg.solve(np.reshape(a, (prod, prod)), np.ravel(b))
    return np.reshape(x, old_shape)


# -- cond and matrix_rank --------------------------------------------------------------------------------
def _singular_cond(p, stack, why):
    return SingularMatrixError(
        f"np.linalg.cond(x, p={p!r}) of traced arrays: the matrix is singular ({why}){_which(stack)}, "
        "where NumPy returns inf and the condition number has no derivative; keep x away from "
        "singular matrices")


@register_function(np.linalg.cond, examples=[
    _ex_matrices(_wc(3, 3)), _ex_matrices(_normal(3, 4)), _ex_matrices(_wc(2, 3, 3), 2),
    _ex_matrices(_wc(3, 3), -2), _ex_matrices(_normal(4, 3), p=-2), _ex_matrices(_wc(3, 3), "fro"),
    _ex_matrices(_wc(2, 3, 3), "nuc"), _ex_matrices(_wc(3, 3), 1), _ex_matrices(_wc(3, 3), -1),
    _ex_matrices(_wc(2, 3, 3), np.inf), _ex_matrices(_wc(3, 3), p=-np.inf)])
def cond(x, p=None):
    """The condition number of (each matrix of) ``x`` in NumPy's norm ``p``; a singular matrix
    (NumPy: inf) raises ``SingularMatrixError``."""
    x = _operand(x)
    shape = shape_of(x)
    plain = _strip(x)
    if plain.size == 0 and math.prod(shape[-2:]) == 0:
        raise np.linalg.LinAlgError("cond is not defined on empty arrays")
    if p is None or (not isinstance(p, str) and p in (2, -2)):
        s = np.linalg.svd(x, compute_uv=False)
        s_plain = _strip(s)
        bottom = s_plain[..., 0] if p == -2 else s_plain[..., -1]
        if np.any(bottom == 0):
            raise _singular_cond(p, bottom == 0, "its largest singular value is 0" if p == -2
                                 else "its smallest singular value is 0")
        return s[..., -1] / s[..., 0] if p == -2 else s[..., 0] / s[..., -1]
    if len(shape) < 2:
        raise np.linalg.LinAlgError(f"{len(shape)}-dimensional array given. Array must be at least "
                                    "two-dimensional")
    if shape[-1] != shape[-2]:
        raise np.linalg.LinAlgError("Last 2 dimensions of the array must be square")
    result_dtype = np.float32 if _dtype(plain) == np.float32 else np.float64
    try:  # NumPy inverts in float64 whatever the input's precision
        inverse = np.linalg.inv(x if _dtype(plain) == np.float64 else x.astype(np.float64))
    except np.linalg.LinAlgError as err:
        if isinstance(err, SingularMatrixError):
            raise
        raise _singular_cond(p, _failed_inverses(plain), "its inverse does not exist") from None
    r = np.linalg.norm(x, p, axis=(-2, -1)) * np.linalg.norm(inverse, p, axis=(-2, -1))
    return r if _dtype(_strip(r)) == result_dtype else r.astype(result_dtype)


def _failed_inverses(plain):
    """Per matrix of the stack: whether NumPy's inverse fails (NaN with errors ignored)."""
    with np.errstate(all="ignore"):
        inverse = np.linalg._umath_linalg.inv(plain, signature="d->d")
    return ~np.all(np.isfinite(inverse), axis=(-2, -1))


@register_function(np.linalg.matrix_rank)
def matrix_rank(A, tol=None, hermitian=False, *, rtol=None):
    """NumPy's rank: an integer (piecewise constant: no derivative), computed on the values."""
    return np.linalg.matrix_rank(_strip(A), tol=_strip(tol), hermitian=hermitian, rtol=_strip(rtol))


# -- eig and eigvals ------------------------------------------------------------------------------------
def _real_or_raise(func, w):
    """``w`` if NumPy returned real eigenvalues, else NonNumericError naming the matrix."""
    plain = _strip(w)
    if np.iscomplexobj(plain):
        w = plain
        stack = np.any(w.imag != 0, axis=-1)
        index = tuple(int(k) for k in np.argwhere(stack)[0]) if np.ndim(stack) else ()
        pair = [complex(z) for z in w[index] if z.imag != 0][:2]
        raise NonNumericError(
            f"{func} of traced arrays: the matrix has complex eigenvalues ({pair[0]!r} and "
            f"{pair[1]!r}){_which(stack)}; dualad and reversead differentiate real functions "
            "only: eig/eigvals are supported where every eigenvalue is real (symmetric matrices: "
            "np.linalg.eigh)")
    return w


def _check_ties(func, mode, w, receives):
    """UndefinedDerivativeError where two eigenvalues of a matrix that ``receives`` a (co)tangent are
    equal (to ``decompositions``' tolerance)."""
    ties = _ties(w)
    if not ties.any():
        return ties
    hit = ties & np.asarray(receives)[..., None, None]
    if hit.any():
        raise UndefinedDerivativeError(
            f"{func} in {mode}: eigen{_first_tie(w, hit)}; the eigenvalues and "
            "eigenvectors of a non-symmetric matrix are not differentiable at a repeated eigenvalue "
            "(they split like a square root); perturb A so that its eigenvalues separate, or use "
            "np.linalg.eigh / eigvalsh for a symmetric matrix")
    return ties


def _eig_packed(a):
    w, v = np.linalg.eig(a)
    _real_or_raise("np.linalg.eig", w)
    return _pack((w, 1), (v, 2))


def _eig_jvp(primals, tangents, out, nb):
    (t,) = tangents
    n = shape_of(primals[0])[-1]
    w, v = _unpack(out, ((n,), (n, n)))
    ties = _check_ties("np.linalg.eig", _FORWARD, w, _receives(t, nb, 2))
    k = np.linalg.solve(v, np.matmul(t, v))  # V⁻¹ Ȧ V
    vc = np.matmul(v, _reciprocal_differences(w[..., None, :] - w[..., :, None], ties) * k)
    v_dot = vc - v * np.sum(v * vc, axis=-2, keepdims=True)  # unit norm kept: v_iᵀ v̇_i = 0
    return _pack((_diagonal(k), 1), (v_dot, 2))


def _eig_vjp(argnum, out_bar, primals, out, nb):
    n = shape_of(primals[0])[-1]
    w, v = _unpack(out, ((n,), (n, n)))
    w_bar, v_bar = _unpack(out_bar, ((n,), (n, n)))
    needs_v = _receives(v_bar, nb, 2)
    ties = _check_ties("np.linalg.eig", _BACKWARD, w, _receives(w_bar, nb, 1) | needs_v)
    inner = _diag_embed(w_bar, n)
    if np.any(needs_v):
        g = np.matmul(T(v), v_bar)
        g = g - np.matmul(T(v), v) * _diagonal(g)[..., None, :]  # Vᵀ (V̄ - V Δ(Vᵀ V̄))
        inner = inner + _reciprocal_differences(w[..., None, :] - w[..., :, None], ties) * g
    return np.linalg.solve(T(v), np.matmul(inner, T(v)))


eig_rule = Rule("eig", _eig_packed, jvp=_eig_jvp, vjp=_eig_vjp)


def _eigenvectors_matching(a, w):
    """V of ``a`` with its columns in the order of ``w`` (eigvals' values): NumPy's for a plain
    array, traced (through ``eig_rule``) for a traced one, so that second derivatives of the
    eigenvalues include V's dependence on A."""
    try:
        w2, v = np.linalg.eig(a)
    except UndefinedDerivativeError as err:
        raise type(err)(f"np.linalg.eigvals: its second derivatives go through the eigenvectors: "
                        f"{err}") from None
    plain, plain2 = _strip(w), _strip(w2)
    if np.array_equal(plain, plain2):
        return v  # (LAPACK orders them alike with and without vectors: the usual case)
    # the k-th smallest of w is the k-th smallest of w2 (a one-to-one pairing, also at ties)
    order = np.empty(plain.shape, dtype=np.intp)
    np.put_along_axis(order, np.argsort(plain, axis=-1), np.argsort(plain2, axis=-1), axis=-1)
    return np.take_along_axis(v, order[..., None, :], axis=-1)


def _eigvals_primal(a):
    return _real_or_raise("np.linalg.eigvals", np.linalg.eigvals(a))


def _eigvals_jvp(primals, tangents, out, nb):
    (a,), (t,) = primals, tangents
    _check_ties("np.linalg.eigvals", _FORWARD, out, _receives(t, nb, 2))
    v = _eigenvectors_matching(a, out)
    return _diagonal(np.linalg.solve(v, np.matmul(t, v)))


def _eigvals_vjp(argnum, out_bar, primals, out, nb):
    _check_ties("np.linalg.eigvals", _BACKWARD, out, _receives(out_bar, nb, 1))
    v = _eigenvectors_matching(primals[0], out)
    return np.linalg.solve(T(v), out_bar[..., :, None] * T(v))


eigvals_rule = Rule("eigvals", _eigvals_primal, jvp=_eigvals_jvp, vjp=_eigvals_vjp)


@register_function(np.linalg.eig, examples=[
    _ex_matrices(_real_spectrum(3, 3)), _ex_matrices(_real_spectrum(2, 4, 4)),
    _ex_matrices(_real_spectrum(1, 1)), _ex_matrices(_real_spectrum(2, 2))])
def eig(a):
    """NumPy's ``EigResult(eigenvalues, eigenvectors)`` of a real matrix with real, distinct
    eigenvalues (unit-norm eigenvectors, LAPACK's sign); complex spectra raise."""
    a = _operand(a)
    packed = eig_rule(a)
    n = shape_of(a)[-1]
    w, v = _unpack(packed, ((n,), (n, n)))
    return _EigResult(w, v)


@register_function(np.linalg.eigvals, examples=[
    _ex_matrices(_real_spectrum(3, 3)), _ex_matrices(_real_spectrum(2, 4, 4))])
def eigvals(a):
    """NumPy's eigenvalues (LAPACK's order) of a real matrix whose eigenvalues are real and
    distinct; complex spectra raise."""
    return eigvals_rule(_operand(a))

