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
``d = det(A)``        ``d · tr(A⁻¹ Ȧ)``                              ``d̄ · d · A⁻ᵀ``
``slogdet(A)``        sign: none; ``tr(A⁻¹ Ȧ)``                      ``l̄ · A⁻ᵀ``
``X = solve(A, B)``   ``A⁻¹ (Ḃ - Ȧ X)``                              ``B̄ = A⁻ᵀ X̄``, ``Ā = -B̄ Xᵀ``
``‖x‖₂``, ``‖A‖_F``   ``<x, ẋ> / ‖x‖`` (0 at x = 0)                  ``ȳ x / ‖x‖`` (0 at x = 0)
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

det, slogdet and the rules that use ``A⁻¹`` need A invertible (NumPy raises
``LinAlgError`` otherwise). Matrix norms ord=2, -2, 'nuc' need singular values
and raise ``MissingRuleError`` until an SVD rule exists.
"""
from __future__ import annotations

import numpy as np

from ..errors import MissingRuleError
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


# -- det and slogdet: d log|det A| = tr(A⁻¹ dA) = <A⁻ᵀ, dA> ------------------------
def _trace_inv_times(a, t):
    """``tr(A⁻¹ Ȧ)`` for batched ``Ȧ``: one inverse, then an elementwise product."""
    return np.sum(T(np.linalg.inv(a)) * t, axis=(-2, -1))


def _det_jvp(primals, tangents, out, nb):
    return out * _trace_inv_times(primals[0], tangents[0])


def _det_vjp(argnum, out_bar, primals, out, nb):
    return (out_bar * out)[..., None, None] * T(np.linalg.inv(primals[0]))


det_rule = Rule("det", np.linalg.det, jvp=_det_jvp, vjp=_det_vjp)


def _logabsdet_jvp(primals, tangents, out, nb):
    return _trace_inv_times(primals[0], tangents[0])


def _logabsdet_vjp(argnum, out_bar, primals, out, nb):
    return out_bar[..., None, None] * T(np.linalg.inv(primals[0]))


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


def _norm2_primal(x, axis, keepdims):
    return np.linalg.norm(x, axis=axis, keepdims=keepdims)


def _norm2_jvp(primals, tangents, out, nb, axis, keepdims):
    (x,), (t,) = primals, tangents
    axes = _reduced_axes(axis, np.ndim(x))
    return np.sum(x * t, axis=tuple(a + nb for a in axes), keepdims=keepdims) / _nonzero(out)


def _norm2_vjp(argnum, out_bar, primals, out, nb, axis, keepdims):
    (x,) = primals
    g = out_bar / _nonzero(out)
    if not keepdims:
        shape = list(g.shape)
        for a in _reduced_axes(axis, np.ndim(x)):
            shape.insert(a + nb, 1)
        g = np.reshape(g, tuple(shape))
    return g * x


norm2_rule = Rule("norm", _norm2_primal, jvp=_norm2_jvp, vjp=_norm2_vjp)


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
    return np.sum(np.abs(x) ** ord, axis=axis, keepdims=keepdims) ** (1.0 / ord)


def _matrix_norm(x, ord, axes, keepdims):
    row, col = axes
    shape = shape_of(x)
    if ord in (None, "fro", "f"):
        return norm2_rule(x, axis=axes, keepdims=keepdims)
    if ord in (2, -2, "nuc"):
        raise MissingRuleError(
            f"np.linalg.norm(..., ord={ord!r}) of a matrix is not differentiable by dualad yet: it "
            "needs singular values (no SVD rule in dualad/rules/linalg.py); matrix orders "
            "None, 'fro', 1, -1, inf, -inf are supported")
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


# -- the np.linalg functions ------------------------------------------------------
@register_function(np.linalg.inv, examples=[_ex_matrices(_wc(3, 3)), _ex_matrices(_wc(2, 3, 3)),
                                            _ex_matrices(_wc(1, 1))])
def inv(a):
    return inv_rule(a)


@register_function(np.linalg.det, examples=[_ex_matrices(_wc(3, 3)), _ex_matrices(_wc(2, 3, 3)),
                                            _ex_matrices(_wc(3, 3, sign=-1.0))])
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
    _ex_matrices(_normal(5), ord=0.5), _ex_matrices(_normal(3, 4), axis=1),
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
