"""The legacy polynomial API (``np.poly*``, coefficients highest power first) and ``np.vander``.

Every function is NumPy's own code written with the table's rules, so values are NumPy's
and both modes differentiate it:

* ``polyadd``, ``polysub``, ``polymul`` (a convolution), ``polyder``, ``polyint`` (traced
  integration constants ``k`` too), ``polydiv`` (NumPy's long division step by step, quotient
  and remainder; the remainder's leading entries that NumPy trims as ``allclose(.., 0)`` are
  dropped with their derivatives, as the values are), ``vander``, ``poly`` (from a 1-D array of
  real zeros; a square matrix raises ``MissingRuleError``: NumPy takes its eigenvalues, which
  are complex in general).
* ``polyfit``: NumPy's scaled Vandermonde least squares through the table's ``lstsq`` (so
  differentiable in ``x``, ``y``; ``w`` is a constant, a traced ``w`` is differentiated as
  well); ``full=True`` returns NumPy's five values; ``cov=True`` raises ``MissingRuleError``.
* ``roots``: dualad/reversead are real-only, so a traced ``p`` is supported only where every
  root is real and simple (else ``UndefinedDerivativeError``: complex or repeated roots).
  The value is NumPy's (eigenvalues of the companion matrix); the derivative is that of the
  implicit root ``p(r) = 0``, ``dr = -dp(r) / p'(r)``, from two Newton steps on traced
  coefficients (correct to third order), carried at NumPy's value.

``polymul`` and ``roots`` read their inputs as NumPy's ``poly1d`` does, dropping leading
zero coefficients; a traced leading zero raises ``DerivativeDropError`` (the coefficient it
drops would carry a derivative). A ``poly1d`` operand is read as its coefficients and the
result is an array (a poly1d cannot hold traced coefficients).
"""
from __future__ import annotations

import numpy as np

from ..errors import DerivativeDropError, MissingRuleError, UndefinedDerivativeError
from .core import register_function
from .decompositions import _with_value
from .dispatch import strip
from .shape import _ex, astype_rule, concatenate


def _traced(x) -> bool:
    return getattr(x, "_ad_level", None) is not None


def _coeffs(p):
    """A coefficient vector: a traced value as it is, a poly1d its coefficients, else an array;
    at least 1-D (NumPy's atleast_1d)."""
    if isinstance(p, np.poly1d):
        p = p.coeffs
    if not _traced(p):
        p = np.asanyarray(p)
    return np.reshape(p, (1,)) if np.ndim(strip(p)) == 0 else p


def _zeros(n, like):
    return np.zeros(n, dtype=np.asarray(strip(like)).dtype)


def _trimmed(p, name):
    """poly1d's reading of ``p``: leading zeros dropped (``[0.]`` if all are zero)."""
    pv = np.asarray(strip(p))
    nz = np.flatnonzero(pv)
    start = int(nz[0]) if nz.size else pv.shape[0]
    if start == 0:
        return p
    if _traced(p):
        raise DerivativeDropError(
            f"np.{name}: a traced coefficient array with a leading zero; NumPy (poly1d) drops it, "
            "and the derivative it carries would be lost. Trim the zeros first.")
    return p[start:] if start < pv.shape[0] else np.array([0.0])


# -- add, sub, mul -------------------------------------------------------------------------------
def _padded_op(op, a1, a2):
    a1, a2 = _coeffs(a1), _coeffs(a2)
    diff = np.shape(strip(a2))[0] - np.shape(strip(a1))[0]
    if diff > 0:
        a1 = concatenate([_zeros(diff, a1), a1])
    elif diff < 0:
        a2 = concatenate([_zeros(-diff, a2), a2])
    return op(a1, a2)


@register_function(np.polyadd, examples=[_ex((3,), (3,)), _ex((2,), (4,)), _ex((5,), (1,))])
def polyadd(a1, a2):
    """NumPy's polyadd: the shorter operand padded with leading zeros."""
    return _padded_op(np.add, a1, a2)


@register_function(np.polysub, examples=[_ex((3,), (3,)), _ex((2,), (4,)), _ex((4,), (2,))])
def polysub(a1, a2):
    """NumPy's polysub: the shorter operand padded with leading zeros."""
    return _padded_op(np.subtract, a1, a2)


@register_function(np.polymul, examples=[_ex((3,), (2,)), _ex((1,), (4,)), _ex((4,), (4,))])
def polymul(a1, a2):
    """NumPy's polymul: the convolution of the coefficients (leading zeros dropped, as poly1d)."""
    a1 = _trimmed(_coeffs(a1), "polymul")
    a2 = _trimmed(_coeffs(a2), "polymul")
    return np.convolve(a1, a2)


# -- der, int ------------------------------------------------------------------------------------
@register_function(np.polyder, examples=[_ex((4,)), _ex((5,), 2), _ex((3,), m=0)])
def polyder(p, m=1):
    """NumPy's polyder: ``p[:-1] * [n, ..., 1]``, ``m`` times."""
    m = int(m)
    if m < 0:
        raise ValueError("Order of derivative must be positive (see polyint)")
    p = _coeffs(p) if not isinstance(p, np.poly1d) else _coeffs(p.coeffs)
    for _ in range(m):
        n = np.shape(strip(p))[0] - 1
        p = p[:-1] * np.arange(n, 0, -1)
    return p


@register_function(np.polyint, examples=[_ex((3,)), _ex((4,), 2), _ex((3,), 2, k=(2,)),
                                         _ex((2,), 3, k=1.5), _ex((3,), m=0)])
def polyint(p, m=1, k=None):
    """NumPy's polyint: ``p / [n, ..., 1]`` followed by the constant, ``m`` times; a traced
    ``k`` (the integration constants) is differentiated too."""
    m = int(m)
    if m < 0:
        raise ValueError("Order of integral must be positive (see polyder)")
    if k is None:
        k = np.zeros(m, float)
    k = k if _traced(k) else np.asarray(k)
    if np.ndim(strip(k)) == 0:
        k = np.reshape(k, (1,))
    if np.shape(strip(k))[0] == 1 and m > 1:
        k = k[0] * np.ones(m, float)
    if np.shape(strip(k))[0] < m:
        raise ValueError("k must be a scalar or a rank-1 array of length 1 or >m.")
    p = _coeffs(p.coeffs if isinstance(p, np.poly1d) else p)
    for i in range(m):
        y = p / np.arange(np.shape(strip(p))[0], 0, -1)
        ki = k[i:i + 1]
        dtype = np.result_type(np.asarray(strip(y)).dtype, np.asarray(strip(ki)).dtype)
        y, ki = (v if np.asarray(strip(v)).dtype == dtype else
                 (astype_rule(v, dtype=dtype) if _traced(v) else np.asarray(v, dtype=dtype)) for v in (y, ki))
        p = concatenate([y, ki])
    return p


# -- div -----------------------------------------------------------------------------------------
# (a traced divisor only where no division step runs: its float32 reciprocal, as NumPy's, makes
# the trimming of the remainder's leading ~0 entries, allclose(.., 0), depend on rounding; a
# constant divisor gives float64, where that is stable; tests/test_statistics_polynomials.py
# checks traced divisors in float64)
@register_function(np.polydiv, examples=[_ex((5,), [1.5, -0.5, 2.0]), _ex((2,), [1.0, 0.5, -2.0]),
                                         _ex((4,), [2.0]), _ex([1.0, 2.0], (3,))])
def polydiv(u, v):
    """NumPy's polydiv (long division, its steps): ``(quotient, remainder)``."""
    u, v = _coeffs(u), _coeffs(v)
    u = u + 0.0
    v = v + 0.0
    dtype = np.result_type(np.asarray(strip(u)).dtype, np.asarray(strip(v)).dtype)
    m = np.shape(strip(u))[0] - 1
    n = np.shape(strip(v))[0] - 1
    scale = 1.0 / v[0]
    r = [u[i] for i in range(m + 1)]
    q = []
    for k in range(m - n + 1):
        d = scale * r[k]
        q.append(d)
        for i in range(n + 1):
            r[k + i] = r[k + i] - d * v[i]
    quotient = np.stack(q) if q else np.zeros((1,), dtype)
    rv = np.array([float(strip(x)) for x in r], dtype=dtype)
    start = 0
    while np.allclose(rv[start], 0, rtol=1e-14) and (m + 1 - start > 1):
        start += 1
    remainder = np.stack(r[start:])
    return _as(quotient, dtype), _as(remainder, dtype)


def _as(x, dtype):
    if np.asarray(strip(x)).dtype == dtype:
        return x
    return astype_rule(x, dtype=dtype) if _traced(x) else np.asarray(x, dtype=dtype)


# -- vander, poly ---------------------------------------------------------------------------------
@register_function(np.vander, examples=[_ex((4,)), _ex((3,), 5), _ex((4,), 3, increasing=True), _ex((3,), 1)])
def vander(x, N=None, increasing=False):
    """NumPy's vander: ones, then the running products of ``x`` (``multiply.accumulate``)."""
    x = x if _traced(x) else np.asarray(x)
    if np.ndim(strip(x)) != 1:
        raise ValueError("x must be a one-dimensional array or sequence.")
    n = np.shape(strip(x))[0]
    N = n if N is None else int(N)
    dtype = np.promote_types(np.asarray(strip(x)).dtype, int)
    x = _as(x, dtype)
    cols = []
    if N > 0:
        cols.append(np.ones((n, 1), dtype=dtype))
    if N > 1:
        cols.append(np.cumprod(np.broadcast_to(np.reshape(x, (n, 1)), (n, N - 1)), axis=1))
    if not cols:
        return np.empty((n, 0), dtype=dtype)
    v = concatenate(cols, axis=1) if len(cols) > 1 else cols[0]
    return v if increasing else v[:, ::-1]


@register_function(np.poly, examples=[_ex((3,)), _ex((1,)), _ex((4,))])
def poly(seq_of_zeros):
    """NumPy's poly from a 1-D array of (real) zeros: ``convolve(a, [1, -zero])`` per zero."""
    z = _coeffs(seq_of_zeros)
    shape = np.shape(strip(z))
    if len(shape) == 2 and shape[0] == shape[1] and shape[0] != 0:
        raise MissingRuleError("np.poly of a traced square matrix (its characteristic polynomial "
                               "through eigvals, complex in general) is not supported")
    if len(shape) != 1:
        raise ValueError("input must be 1d or non-empty square 2d array.")
    dt = np.asarray(strip(z)).dtype
    if dt.kind != "f":
        raise TypeError("np.poly: only real float zeros are supported for traced arrays")
    if shape[0] == 0:
        return 1.0
    a = np.ones((1,), dtype=dt)
    for i in range(shape[0]):
        a = np.convolve(a, concatenate([np.ones((1,), dtype=dt), -z[i:i + 1]]), mode="full")
    return a


# -- roots ----------------------------------------------------------------------------------------
def _polyval_plain_x(p, x):
    """Horner's scheme at plain points ``x`` (one per root) with traced coefficients ``p``."""
    y = None
    for i in range(np.shape(strip(p))[0]):
        y = p[i] if y is None else y * x + p[i]
    return y


@register_function(np.roots, examples=[lambda rng: ((np.poly(np.sort(rng.uniform(-2, 2, 3)) + [0.0, 0.5, 1.0]) *
                                                     rng.uniform(0.5, 2.0),), {}),
                                       lambda rng: ((np.array([2.0, -1.0]),), {}),
                                       lambda rng: ((np.concatenate([np.poly([-1.0, 0.5]), [0.0]]),), {})])
def roots(p):
    """NumPy's roots where every root is real and simple (else ``UndefinedDerivativeError``);
    derivative of the implicit roots (see the module docstring)."""
    p = _coeffs(p)
    if np.ndim(strip(p)) != 1:
        raise ValueError("Input must be a rank-1 array.")
    pv = np.asarray(strip(p))
    value = np.roots(pv)
    if not _traced(p):
        return value
    if np.iscomplexobj(value):
        raise UndefinedDerivativeError(
            "np.roots: the polynomial has complex roots (or a repeated root, which rounding splits "
            "into a complex pair); dualad/reversead are real-only and a repeated root has no "
            "derivative")
    nz = np.flatnonzero(pv)
    if nz.size == 0:
        return value
    if nz[0] > 0:
        _trimmed(p, "roots")  # raises
    if value.size == 0:
        return value
    trailing = pv.shape[0] - int(nz[-1]) - 1
    if trailing and _traced(p):
        pass  # the zero roots of trailing zero coefficients: handled like any other root below
    sorted_roots = np.sort(value)
    scale = max(1.0, float(np.max(np.abs(value))))
    if value.size > 1 and np.min(np.diff(sorted_roots)) <= 1e-7 * scale:
        raise UndefinedDerivativeError("np.roots: a repeated root has no derivative (the roots "
                                       "are not differentiable functions of p there)")
    dp = np.polyder(pv)
    if np.any(np.polyval(dp, value) == 0):
        raise UndefinedDerivativeError("np.roots: a repeated root has no derivative")
    # two Newton steps on the traced coefficients, from NumPy's roots (constants)
    n = pv.shape[0] - 1
    slope = p[:-1] * np.arange(n, 0, -1).astype(pv.dtype)  # (polyder in p's dtype)
    r = value
    for _ in range(2):
        r = r - _polyval_plain_x(p, r) / _polyval_plain_x(slope, r)
    return _with_value(r, value)


# -- fit -----------------------------------------------------------------------------------------
def _ex_fit(n, deg, ycols=None, **kwargs):
    def make(rng):
        x = np.linspace(-1, 1, n) + rng.uniform(-0.05, 0.05, n)
        y = rng.standard_normal((n,) if ycols is None else (n, ycols))
        return (x, y, deg), dict(kwargs)
    return make


@register_function(np.polyfit, examples=[_ex_fit(6, 2), _ex_fit(5, 1, 2), _ex_fit(7, 3, w=[1.0, 2.0, 0.5, 1.0, 1.5, 1.0, 0.7]),
                                         _ex_fit(5, 2, full=True, rcond=1e-6)])
def polyfit(x, y, deg, rcond=None, full=False, w=None, cov=False):
    """NumPy's polyfit (scaled Vandermonde, least squares through ``np.linalg.lstsq``)."""
    if cov:
        raise MissingRuleError("np.polyfit(..., cov=True) is not supported for traced arrays: "
                               "compute the covariance from the fit")
    order = int(deg) + 1
    x = (x if _traced(x) else np.asarray(x)) + 0.0
    y = (y if _traced(y) else np.asarray(y)) + 0.0
    if deg < 0:
        raise ValueError("expected deg >= 0")
    if np.ndim(strip(x)) != 1:
        raise TypeError("expected 1D vector for x")
    if np.size(strip(x)) == 0:
        raise TypeError("expected non-empty vector for x")
    if np.ndim(strip(y)) < 1 or np.ndim(strip(y)) > 2:
        raise TypeError("expected 1D or 2D array for y")
    if np.shape(strip(x))[0] != np.shape(strip(y))[0]:
        raise TypeError("expected x and y to have same length")
    if rcond is None:
        rcond = np.shape(strip(x))[0] * np.finfo(np.asarray(strip(x)).dtype).eps
    lhs = vander(x, order)
    rhs = y
    if w is not None:
        w = (w if _traced(w) else np.asarray(w)) + 0.0
        if np.ndim(strip(w)) != 1:
            raise TypeError("expected a 1-d array for weights")
        if np.shape(strip(w))[0] != np.shape(strip(y))[0]:
            raise TypeError("expected w and y to have the same length")
        lhs = lhs * w[:, None]
        # NumPy scales rhs in place: the product in rhs's dtype
        rhs = _as(rhs * w[:, None] if np.ndim(strip(rhs)) == 2 else rhs * w, np.asarray(strip(rhs)).dtype)
    scale = np.sqrt(np.sum(lhs * lhs, axis=0))
    lhs = lhs / scale
    c, resids, rank, s = np.linalg.lstsq(lhs, rhs, rcond)
    c = (c.T / scale).T
    if rank != order and not full:
        import warnings
        warnings.warn("Polyfit may be poorly conditioned", np.exceptions.RankWarning, stacklevel=4)
    if full:
        return c, resids, rank, s, rcond
    return c
