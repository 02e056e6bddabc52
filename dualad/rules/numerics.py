"""Numerical routines: interp, polyval, convolve, correlate, trapezoid, cumulative_sum,
cumulative_prod, gradient, ediff1d, unwrap, sinc, i0, fix, nan_to_num, real, imag, angle,
logspace and geomspace.

All but correlate are NumPy's own code written with the table's rules (the same operations
in the same order, so NumPy's values bit for bit), and their derivatives follow from those
rules. ``correlate`` is one bilinear primitive: NumPy computes it (BLAS dot products, whose
rounding no composite reproduces) and its derivatives are correlations again (JVP: the
correlations of the tangents; VJP: a correlation of the padded cotangent with the reversed
other operand), so they differentiate to any order. ``convolve`` is NumPy's correlate of
the reversed kernel.

``interp`` (float64, as NumPy's) is NumPy's formula ``slope * (x - xp[j]) + fp[j]`` on the
segment its search picks, ``xp[j] <= x < xp[j + 1]``, and is differentiable in ``x``, ``fp``,
``xp``, ``left``, ``right`` and ``period`` (as ``jnp.interp``, a composite too). At a knot the
derivative in ``x`` is one-sided: the slope of the segment to the right (of the last segment
at ``x == xp[-1]``); outside ``[xp[0], xp[-1]]`` it is 0 (the constant ``left``/``right``).
A segment of zero width (repeated knots) has slope 0.

``gradient``, ``ediff1d``, ``logspace`` and ``geomspace`` are NumPy's code with the table's
rules (differentiable in the data, the spacings/coordinates, the ends and ``base``; geomspace's
ends are ``start`` and ``stop`` themselves, as NumPy sets them). ``unwrap`` adds NumPy's
piecewise-constant corrections to ``p`` (derivative 1; a traced ``period`` raises).
``nan_to_num`` is a select: derivative 1 where ``x`` is finite, 0 where NaN/inf is replaced (a
traced replacement value gets it there). ``sinc`` and ``i0`` are elementwise rules with NumPy's
values: sinc' = (cos(pi x) - sinc x) / x, i0' = i1 (a power series for |x| <= 25, Hankel's
expansion beyond), each written so that it differentiates again, also at 0 (sinc''(0) =
-pi^2/3, i0''(0) = 1/2). ``fix``, and ``imag`` and ``angle`` of (real) traced arrays, are
piecewise constant: plain results, zero derivative (angle: NumPy's 0 or pi); ``real`` is the
array itself. Complex operands raise (dualad/reversead are real-only).
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import MissingRuleError
from .core import Elementwise, Rule, expand_to, match_dtype, normalize_axis, register_function, unbroadcast
from .elementwise import where_rule
from .reductions import _strip
from .shape import _ex, astype_rule, concatenate


def _operand(x):
    """A traced value as it is, anything else as an array (NumPy's ``asanyarray``)."""
    return x if getattr(x, "_ad_level", None) is not None else np.asanyarray(x)


def _no_complex(name, *xs):
    for x in xs:
        if x is not None and np.iscomplexobj(_strip(x)):
            raise TypeError(f"np.{name}: complex operands are not supported for traced arrays "
                            "(dualad/reversead differentiate real functions; split real and "
                            "imaginary parts)")


# -- correlate and convolve ---------------------------------------------------------------
def _span(n1, n2, mode):
    """``(start, stop)`` of the ``mode`` correlation within the full one (length n1 + n2 - 1)."""
    if mode == "full":
        return 0, n1 + n2 - 1
    if mode == "valid":
        return min(n1, n2) - 1, max(n1, n2)
    start = (n2 - 1) // 2 if n1 >= n2 else n1 // 2  # 'same' (NumPy swaps a shorter a and v)
    return start, start + max(n1, n2)


def _correlate_primal(a, v, mode):
    if np.ndim(a) == 1 and np.ndim(v) == 1:
        return np.correlate(a, v, mode)
    # leading axes (the k tangents of a JVP, a batch of cotangents): one row at a time
    lead = np.broadcast_shapes(np.shape(a)[:-1], np.shape(v)[:-1])
    a = np.broadcast_to(a, lead + np.shape(a)[-1:])
    v = np.broadcast_to(v, lead + np.shape(v)[-1:])
    rows = [np.correlate(a[i], v[i], mode) for i in np.ndindex(*lead)]
    return np.reshape(np.stack(rows), lead + (-1,))


def _correlate_jvp(primals, tangents, out, nb, mode):
    # the operands may have leading axes of their own (nested: an outer level's tangents):
    # the batch axes of a tangent go before all of them
    (a, v), (ta, tv) = primals, tangents
    ndim = max(np.ndim(a), np.ndim(v))
    result = None if ta is None else correlate_rule(expand_to(ta, nb, ndim), v, mode=mode)
    if tv is not None:
        term = correlate_rule(a, expand_to(tv, nb, ndim), mode=mode)
        result = term if result is None else result + term
    return result


def _pad_last(x, before, after):
    return np.pad(x, [(0, 0)] * (np.ndim(x) - 1) + [(before, after)])


def _correlate_vjp(argnum, g, primals, out, nb, mode):
    a, v = primals
    n1, n2 = np.shape(a)[-1], np.shape(v)[-1]
    start, stop = _span(n1, n2, mode)
    if argnum == 0:
        # a_bar[i] = sum_k g[k] v[i + n2 - 1 - start - k]: g placed in the full correlation's
        # frame, correlated with the reversed v
        grad = correlate_rule(_pad_last(g, start, n1 + n2 - 1 - stop), v[..., ::-1], mode="valid")
    else:
        # v_bar[n] = sum_k g[k] a_full[start + k + n], a_full = a padded with n2 - 1 zeros
        window = _pad_last(a, n2 - 1, n2 - 1)[..., start:start + (stop - start) + n2 - 1]
        grad = correlate_rule(window, g, mode="valid")
    return match_dtype(unbroadcast(grad, np.shape(primals[argnum]), nb), primals[argnum])


correlate_rule = Rule("correlate", _correlate_primal, jvp=_correlate_jvp, vjp=_correlate_vjp)
correlate_rule.saved_for = lambda argnum: (frozenset({1 - argnum}), False)  # bilinear


def _mode(mode):
    """NumPy's check of ``mode`` (any spelling it accepts), as 'valid', 'same' or 'full'."""
    size = np.correlate(np.zeros(3), np.zeros(2), mode).size
    return {2: "valid", 3: "same", 4: "full"}[size]


def _vector(x, which):
    """A 1-D operand of correlate, with NumPy's errors for others."""
    if np.ndim(x) > 1:
        raise ValueError("object too deep for desired array")
    if np.ndim(x) == 0:
        raise ValueError("object of too small depth for desired array")
    if np.shape(x)[0] == 0:
        raise ValueError(f"{which} array argument cannot be empty")
    return x


@register_function(np.correlate, examples=[_ex((5,), (3,)), _ex((4,), (4,), "same"), _ex((3,), (5,), "full"),
                                           _ex((2,), (5,), "same"), _ex((6,), (2,), mode="full")])
def correlate(a, v, mode="valid"):
    """NumPy's correlate (its values); differentiable in both operands."""
    a, v = _operand(a), _operand(v)
    _no_complex("correlate", a, v)
    mode = _mode(mode)
    return correlate_rule(_vector(a, "first"), _vector(v, "second"), mode=mode)


@register_function(np.convolve, examples=[_ex((5,), (3,)), _ex((3,), (5,), "same"), _ex((4,), (4,), "valid"),
                                          _ex((), (3,))])
def convolve(a, v, mode="full"):
    """NumPy's convolve: the correlate of the longer operand with the shorter one reversed."""
    a, v = (np.reshape(x, (1,)) if np.ndim(x) == 0 else x for x in (_operand(a), _operand(v)))
    _no_complex("convolve", a, v)
    if np.ndim(a) > 1 or np.ndim(v) > 1:
        raise ValueError("object too deep for desired array")
    if np.shape(a)[0] == 0:
        raise ValueError("a cannot be empty")
    if np.shape(v)[0] == 0:
        raise ValueError("v cannot be empty")
    if np.shape(v)[0] > np.shape(a)[0]:
        a, v = v, a
    return correlate_rule(a, v[::-1], mode=_mode(mode))


# -- polynomials, quadrature, cumulative sums -------------------------------------------------
@register_function(np.polyval, examples=[_ex((4,), (5,)), _ex((3,), (2, 3)), _ex((1,), (3,)),
                                         _ex((3, 2), (2,))])
def polyval(p, x):
    """NumPy's Horner scheme ``y = y * x + p[i]``: differentiable in ``p`` and ``x``."""
    p = _operand(p)
    if np.ndim(p) == 0:
        raise TypeError("iteration over a 0-d array")
    if isinstance(x, np.poly1d):
        y = 0
    else:
        x = _operand(x)
        y = np.zeros_like(x)
    for i in range(np.shape(p)[0]):
        y = y * x + p[i]
    return y


@register_function(np.trapezoid, examples=[_ex((5,)), _ex((3, 4), (4,)), _ex((3, 4), dx=0.5, axis=0),
                                           _ex((2, 3), (2, 3), axis=0)])
def trapezoid(y, x=None, dx=1.0, axis=-1):
    """NumPy's trapezoid rule: ``sum(d * (y[1:] + y[:-1]) / 2)`` along ``axis``; differentiable in
    ``y``, ``x`` and ``dx``."""
    y = _operand(y)
    if x is None:
        d = dx
    else:
        x = _operand(x)
        if np.ndim(x) == 1:
            d = np.diff(x)
            shape = [1] * np.ndim(y)
            shape[axis] = np.shape(d)[0]
            d = np.reshape(d, shape)
        else:
            d = np.diff(x, axis=axis)
    nd = np.ndim(y)
    upper = [slice(None)] * nd
    lower = [slice(None)] * nd
    upper[axis] = slice(1, None)
    lower[axis] = slice(None, -1)
    return np.sum(d * (y[tuple(upper)] + y[tuple(lower)]) / 2.0, axis=axis)


def _cumulative(name, scan, identity):
    def impl(x, /, *, axis=None, dtype=None, out=None, include_initial=False):
        if out is not None:
            raise TypeError(f"np.{name}(..., out=) is not supported for traced arrays: drop out=")
        x = _operand(x)
        if np.ndim(x) == 0:
            x = np.reshape(x, (1,))
        if axis is None:
            if np.ndim(x) > 1:
                raise ValueError("For arrays which have more than one dimension ``axis`` "
                                 "argument is required.")
            axis = 0
        axis = normalize_axis(axis, np.ndim(x))
        result = scan(x, axis=axis, dtype=dtype)
        if not include_initial:
            return result
        shape = list(np.shape(result))
        shape[axis] = 1
        first = np.full(shape, identity, dtype=_strip(result).dtype)
        return concatenate([first, result], axis=axis)
    impl.__name__ = name
    impl.__doc__ = (f"NumPy's {name}: np.{scan.__name__} along ``axis``, after ``{identity!r}`` "
                    "when ``include_initial``.")
    return impl


_CUMULATIVE_EXAMPLES = [_ex((5,)), _ex((3, 4), axis=1), _ex((3, 4), axis=0, include_initial=True),
                        _ex((4,), dtype="float64", include_initial=True)]
if hasattr(np, "cumulative_sum"):  # NumPy >= 2.1
    register_function(np.cumulative_sum, examples=_CUMULATIVE_EXAMPLES)(
        _cumulative("cumulative_sum", np.cumsum, 0.0))
    register_function(np.cumulative_prod, examples=_CUMULATIVE_EXAMPLES)(
        _cumulative("cumulative_prod", np.cumprod, 1.0))


# -- interp -----------------------------------------------------------------------------------
def _float64(x):
    return x if _strip(x).dtype == np.float64 else astype_rule(x, dtype=np.float64)


def _sample_points(xp, fp):
    """NumPy's checks of ``xp`` and ``fp``, in its order."""
    for arr in (fp, xp):
        if np.ndim(arr) > 1:
            raise ValueError("object too deep for desired array")
        if np.ndim(arr) == 0:
            raise ValueError("object of too small depth for desired array")
    if np.shape(xp)[0] == 0:
        raise ValueError("array of sample points is empty")
    if np.shape(fp)[0] != np.shape(xp)[0]:
        raise ValueError("fp and xp are not of the same length.")


def _fill_value(value):
    """``left=``/``right=`` as NumPy reads them: a number (a traced one stays traced)."""
    if getattr(value, "_ad_level", None) is not None:
        if np.ndim(value) != 0:
            raise TypeError("only 0-dimensional arrays can be converted to Python scalars")
        return _float64(value)
    return float(value)


def _interp(x, xp, fp, left, right):
    """NumPy's ``arr_interp`` on float64 operands, written with the table's rules."""
    xv, xpv = np.asarray(_strip(x)), np.asarray(_strip(xp))
    n = xpv.shape[0]
    lval = fp[0] if left is None else _fill_value(left)
    rval = fp[-1] if right is None else _fill_value(right)
    if n == 1:
        result = where_rule(xv > xpv[0], rval, np.broadcast_to(fp[0], xv.shape))
        return where_rule(xv < xpv[0], lval, result)
    j = np.searchsorted(xpv, xv, side="right") - 1  # NumPy's search on an increasing xp
    seg = np.clip(j, 0, n - 2)
    anchor = np.where(j >= n - 1, seg + 1, seg)  # x == xp[-1]: the last knot (the last segment's slope)
    x0, x1, f0, f1 = xp[seg], xp[seg + 1], fp[seg], fp[seg + 1]
    width = x1 - x0
    flat = np.asarray(_strip(width)) == 0  # repeated knots (only at the last knot): slope 0
    slope = (f1 - f0) / (where_rule(flat, 1.0, width) if np.any(flat) else width)
    if np.any(flat):
        slope = where_rule(flat, 0.0, slope)
    result = slope * (x - xp[anchor]) + fp[anchor]
    # NumPy's own cases: at a knot its value is fp[j] (the formula gives it unless a value is
    # infinite); between knots a NaN (from an infinite value) is retried from the other end
    rv = np.asarray(_strip(result))
    hits = xv == xpv[np.clip(j, 0, n - 1)]
    knot = (j >= 0) & ((j == n - 1) | hits) & ~np.isnan(xv)
    missed = knot & ~(rv == np.asarray(_strip(fp))[anchor])
    if np.any(missed):
        result = where_rule(missed, fp[anchor], result)
    retry = (j >= 0) & (j <= n - 2) & ~hits & np.isnan(rv) & ~np.isnan(xv)
    if np.any(retry):
        other = slope * (x - x1) + f1
        result = where_rule(retry, other, result)
        fv = np.asarray(_strip(fp))
        same = retry & np.isnan(np.asarray(_strip(other))) & (fv[seg] == fv[seg + 1])
        if np.any(same):
            result = where_rule(same, f0, result)
    result = where_rule(xv < xpv[0], lval, result)
    return where_rule(xv > xpv[-1], rval, result)


@register_function(np.interp, examples=[_ex((5,), [-1.0, -0.2, 0.5, 1.5], (4,)),
                                        _ex((2, 3), [-0.5, 0.5], (2,), left=-2.0, right=3.0),
                                        _ex((), [0.0, 1.0, 2.0], (3,)),
                                        _ex((6,), [0.25, 1.0, 2.5], (3,), period=3.0),
                                        _ex((4,), [0.0], (1,))])
def interp(x, xp, fp, left=None, right=None, period=None):
    """NumPy's interp (float64 values, its conventions); see the module docstring for the
    derivatives at the knots."""
    x, xp, fp = _operand(x), _operand(xp), _operand(fp)
    _no_complex("interp", x, xp, fp, left, right)
    if period is not None:
        if np.asarray(_strip(period)) == 0:
            raise ValueError("period must be a non-zero value")
        period = np.abs(period)
        left = right = None
        if np.ndim(xp) != 1 or np.ndim(fp) != 1:
            raise ValueError("Data points must be 1-D sequences")
        if np.shape(xp)[0] != np.shape(fp)[0]:
            raise ValueError("fp and xp are not of the same length")
        x, xp, fp = _float64(x), _float64(xp), _float64(fp)
        x = x % period
        xp = xp % period
        order = np.argsort(np.asarray(_strip(xp)))
        xp, fp = xp[order], fp[order]
        xp = concatenate([xp[-1:] - period, xp, xp[0:1] + period])
        fp = concatenate([fp[-1:], fp, fp[0:1]])
    _sample_points(xp, fp)
    return _interp(_float64(x), _float64(xp), _float64(fp), left, right)


# -- small elementwise helpers: sinc, fix, nan_to_num, real, imag, angle -----------------------
#: Taylor coefficients of d sinc(x) / dx = pi^2 x * sum_k c_k z^k, z = (pi x)^2 (|x| < 1e-2)
_SINC_SLOPE = [(-1) ** (k + 1) * 2 * (k + 1) / float(np.prod(np.arange(1.0, 2 * k + 4)))
               for k in range(6)]


def _sinc_partial(x, ans):
    """``(cos(pi x) - sinc(x)) / x``; near 0 its Taylor series (0 at 0, and derivatives of
    every order right there: the quotient form would give sinc''(0) = 0)."""
    xv = np.asarray(_strip(x))
    small = np.abs(xv) < 1e-2
    if not np.any(small):
        return (np.cos(np.pi * x) - ans) / x
    z = (np.pi * x) ** 2
    series = _SINC_SLOPE[-1]
    for c in _SINC_SLOPE[-2::-1]:
        series = series * z + c
    series = (np.pi * np.pi) * x * series
    if np.all(small):
        return series
    safe = where_rule(small, 1.0, x)
    return where_rule(small, series, (np.cos(np.pi * safe) - np.sinc(safe)) / safe)


sinc_rule = Elementwise("sinc", np.sinc, _sinc_partial, kernel=False)


@register_function(np.sinc, examples=[_ex((5,)), _ex((2, 3)), lambda rng: ((np.array([0.0, 1e-3, -0.5, 2.0]),), {})])
def sinc(x):
    """NumPy's sinc (its value); the derivative ``(cos(pi x) - sinc x) / x`` (0 at 0, with
    correct higher derivatives there)."""
    _no_complex("sinc", x)
    return sinc_rule(_operand(x))


@register_function(np.fix, examples=[lambda rng: ((np.round(rng.uniform(-3, 3, (5,))) + 0.37,), {})])
def fix(x, out=None):
    """NumPy's fix (round towards zero): piecewise constant, so a plain result (zero derivative)."""
    if out is not None:
        raise TypeError("np.fix(..., out=) is not supported for traced arrays: drop out=")
    return np.fix(np.asarray(_strip(x)) if np.ndim(_strip(x)) else _strip(x))


@register_function(np.nan_to_num, examples=[_ex((5,)), _ex((2, 3), nan=1.5, posinf=2.0)])
def nan_to_num(x, copy=True, nan=0.0, posinf=None, neginf=None):
    """NumPy's nan_to_num as selects: derivative 1 where ``x`` is finite, 0 where replaced (a
    traced ``nan``/``posinf``/``neginf`` value gets the derivative there)."""
    _no_complex("nan_to_num", x)
    x = _operand(x)
    xv = np.asarray(_strip(x))
    if xv.dtype.kind != "f":
        return np.nan_to_num(xv, copy=copy, nan=_strip(nan), posinf=_strip(posinf), neginf=_strip(neginf))
    info = np.finfo(xv.dtype)
    big = info.max if posinf is None else posinf
    small = info.min if neginf is None else neginf
    for mask, value in ((np.isnan(xv), nan), (np.isposinf(xv), big), (np.isneginf(xv), small)):
        if np.any(mask):
            value = value if getattr(value, "_ad_level", None) is not None else np.asarray(value).astype(xv.dtype)
            x = where_rule(mask, value, x)
    return x


@register_function(np.real, examples=[_ex((5,)), _ex((2, 3))])
def real(val):
    """The real part of a real (traced) array: the array itself."""
    _no_complex("real", val)
    return val


@register_function(np.imag, examples=[_ex((5,)), _ex((2, 3))])
def imag(val):
    """The imaginary part of a real array: zeros, a plain result (zero derivative)."""
    return np.imag(_strip(val))


@register_function(np.angle, examples=[lambda rng: ((rng.uniform(0.2, 1, (5,)) * np.sign(rng.standard_normal(5)),), {})])
def angle(z, deg=False):
    """The angle of a real array: NumPy's 0 or pi (180), a plain result (zero derivative)."""
    _no_complex("angle", z)
    return np.angle(_strip(z), deg=deg)


# -- ediff1d, unwrap ---------------------------------------------------------------------------
@register_function(np.ediff1d, examples=[_ex((5,)), _ex((2, 3), to_begin=(2,)), _ex((4,), to_end=1.5, to_begin=-2.0)])
def ediff1d(ary, to_end=None, to_begin=None):
    """NumPy's ediff1d: ``ary.ravel()``'s differences between ``to_begin`` and ``to_end``
    (differentiable in all three)."""
    ary = np.ravel(_operand(ary))
    dtype = _strip(ary).dtype
    parts = []
    for name, end in (("to_begin", to_begin), ("to_end", to_end)):
        if end is None:
            parts.append(None)
            continue
        ev = np.asanyarray(_strip(end))
        if not np.can_cast(ev, dtype, casting="same_kind"):
            raise TypeError(f"dtype of `{name}` must be compatible with input `ary` under the "
                            "`same_kind` rule.")
        end = np.ravel(_operand(end))
        if _strip(end).dtype != dtype:
            end = astype_rule(end, dtype=dtype)
        parts.append(end)
    d = ary[1:] - ary[:-1]
    pieces = [p for p in (parts[0], d, parts[1]) if p is not None]
    return concatenate(pieces) if len(pieces) > 1 else d


@register_function(np.unwrap, examples=[lambda rng: ((np.cumsum(rng.uniform(-3, 3, (6,))),), {}),
                                        lambda rng: ((np.cumsum(rng.uniform(-3, 3, (2, 5)), axis=0),), {"axis": 0}),
                                        lambda rng: ((np.cumsum(rng.uniform(-3, 3, (5,))),), {"period": 4.0, "discont": 2.5})])
def unwrap(p, discont=None, axis=-1, *, period=2 * np.pi):
    """NumPy's unwrap: ``p`` plus the piecewise-constant corrections (multiples of ``period``),
    so the derivative is 1 (the jumps are kinks). A traced ``period`` raises; ``discont`` only
    chooses where the corrections are (a constant)."""
    if getattr(period, "_ad_level", None) is not None:
        raise MissingRuleError("np.unwrap with a traced period is not supported: pass a constant")
    p = _operand(p)
    pv = np.asarray(_strip(p))
    if pv.dtype.kind != "f":
        return np.unwrap(pv, discont=_strip(discont), axis=axis, period=period)
    nd = pv.ndim
    axis = normalize_axis(axis, nd)
    dd = np.diff(pv, axis=axis)
    discont = period / 2 if discont is None else _strip(discont)
    dtype = np.result_type(dd, period)
    interval_high = period / 2
    interval_low = -interval_high
    ddmod = np.mod(dd - interval_low, period) + interval_low
    np.copyto(ddmod, interval_high, where=(ddmod == interval_low) & (dd > 0))
    ph_correct = ddmod - dd
    np.copyto(ph_correct, 0, where=abs(dd) < discont)
    first = (slice(None),) * axis + (slice(0, 1),)
    rest = (slice(None),) * axis + (slice(1, None),)
    if dtype != pv.dtype:
        p = astype_rule(p, dtype=dtype)
    return concatenate([p[first], p[rest] + ph_correct.cumsum(axis)], axis=axis)


# -- i0 ------------------------------------------------------------------------------------------
#: 1 / (k! (k + 1)!): the power series of i1(x) = (x/2) sum_k z^k / (k! (k+1)!), z = x^2 / 4
_I1_SERIES = [1.0 / (math.factorial(k) * math.factorial(k + 1)) for k in range(80)]


def _i1_asymptotic_coefficients(terms=50):
    """``a_k`` of ``i1(x) ~ e^x / sqrt(2 pi x) * sum_k (-1)^k a_k / x^k`` (Hankel's expansion)."""
    a, out = 1.0, [1.0]
    for k in range(1, terms):
        a *= (4.0 - (2 * k - 1) ** 2) / (8.0 * k)
        out.append(a)
    return [(-1) ** k * c for k, c in enumerate(out)]


_I1_ASYMPTOTIC = _i1_asymptotic_coefficients()


def _i1(x):
    """The modified Bessel function i1 (the derivative of i0), written with the table's rules so
    that it differentiates again: its power series for |x| <= 25, Hankel's expansion beyond
    (both to about one rounding there). Computed in float64 (the expansion's coefficients
    exceed float32's range); the rule rounds the derivative to x's dtype."""
    if np.asarray(_strip(x)).dtype != np.float64:
        x = astype_rule(x, dtype=np.float64)
    xv = np.asarray(_strip(x))
    big = np.abs(xv) > 25.0
    result = None
    if not np.all(big):
        s = x if not np.any(big) else where_rule(big, 0.0, x)
        z = s * s / 4.0
        acc = _I1_SERIES[-1]
        for c in _I1_SERIES[-2::-1]:
            acc = acc * z + c
        result = (s / 2.0) * acc
    if np.any(big):
        u = np.abs(x if np.all(big) else where_rule(big, x, 30.0))
        t = 1.0 / u
        acc = _I1_ASYMPTOTIC[-1]
        for c in _I1_ASYMPTOTIC[-2::-1]:
            acc = acc * t + c
        tail = np.sign(xv) * (np.exp(u) / np.sqrt(2.0 * np.pi * u)) * acc
        result = tail if result is None else where_rule(big, tail, result)
    return result


i0_rule = Elementwise("i0", np.i0, lambda x, ans: _i1(x), kernel=False)


@register_function(np.i0, examples=[_ex((5,)), lambda rng: ((rng.uniform(-30, 30, (6,)),), {}),
                                    lambda rng: ((np.array([0.0, 7.9, 8.1, -24.0, 26.0]),), {})])
def i0(x):
    """NumPy's i0 (its Chebyshev values); the derivative i1 (series / asymptotic expansion),
    differentiable again (i0''(0) = 1/2)."""
    x = _operand(x)
    _no_complex("i0", x)
    if np.iscomplexobj(_strip(x)):
        raise TypeError("i0 not supported for complex values")
    if np.asarray(_strip(x)).dtype.kind != "f":
        return np.i0(_strip(x))
    return i0_rule(x)


# -- logspace, geomspace ---------------------------------------------------------------------------
def _base_example(rng):
    return (rng.standard_normal(()), rng.standard_normal((2,)), 4, True, rng.uniform(1.5, 3.0, (2,))), {}


@register_function(np.logspace, examples=[_ex((), (), 5), _ex((2,), (2,), 4, base=2.0),
                                          _ex((), (3,), 3, endpoint=False, axis=1), _base_example])
def logspace(start, stop, num=50, endpoint=True, base=10.0, dtype=None, axis=0):
    """NumPy's logspace: ``base ** linspace(start, stop)``; differentiable in start, stop and base."""
    if not isinstance(base, (float, int)) and np.ndim(_strip(base)):
        start, stop, base = (_operand(v) for v in (start, stop, base))
        ndmax = np.broadcast(*(np.asarray(_strip(v)) for v in (start, stop, base))).ndim
        start, stop, base = (v if np.ndim(_strip(v)) >= ndmax else
                             np.reshape(v, (1,) * (ndmax - np.ndim(_strip(v))) + np.shape(_strip(v)))
                             for v in (start, stop, base))
        base = np.expand_dims(base, axis=axis)
    y = np.linspace(start, stop, num=num, endpoint=endpoint, axis=axis)
    result = np.power(base, y)
    return result if dtype is None else _astype(result, dtype)


def _astype(x, dtype):
    dtype = np.dtype(dtype)
    if _strip(x).dtype == dtype:
        return x
    if dtype.kind != "f":
        raise TypeError(f"dtype={dtype}: only float dtypes are differentiable")
    return astype_rule(x, dtype=dtype)


def _positive_examples(*shapes, **kwargs):
    def make(rng):
        return tuple(np.asarray(rng.uniform(0.5, 2.0, s)) if isinstance(s, tuple) else s
                     for s in shapes), dict(kwargs)
    return make


@register_function(np.geomspace, examples=[_positive_examples((), (), 5), _positive_examples((2,), (2,), 4, axis=1),
                                           _positive_examples((), (3,), 3, endpoint=False),
                                           lambda rng: ((np.asarray(-rng.uniform(0.5, 2.0, ())), np.asarray(-rng.uniform(3, 4, ())), 4), {})])
def geomspace(start, stop, num=50, endpoint=True, dtype=None, axis=0):
    """NumPy's geomspace (its steps: logspace of the log10s, the ends set to start and stop);
    differentiable in start and stop (real, nonzero, of one sign)."""
    start, stop = _operand(start), _operand(stop)
    sv, tv = np.asarray(_strip(start)), np.asarray(_strip(stop))
    _no_complex("geomspace", start, stop)
    if np.any(sv == 0) or np.any(tv == 0):
        raise ValueError('Geometric sequence cannot include zero')
    dt = np.result_type(sv, tv, float(num), np.zeros((), dtype))
    dtype = dt if dtype is None else np.dtype(dtype)
    start, stop = _astype(start, dt), _astype(stop, dt)
    out_sign = np.sign(np.asarray(_strip(start)))
    start = start / out_sign
    stop = stop / out_sign
    result = logspace(np.log10(start), np.log10(stop), num=num, endpoint=endpoint, base=10.0, dtype=dt)
    if num > 0:
        shape = np.shape(_strip(result))[1:]
        first = np.reshape(np.broadcast_to(start, shape), (1,) + shape)
        parts = [first, result[1:]]
        if num > 1 and endpoint:
            parts = [first, result[1:-1], np.reshape(np.broadcast_to(stop, shape), (1,) + shape)]
        result = concatenate(parts, axis=0)
    result = result * out_sign
    if axis != 0:
        result = np.moveaxis(result, 0, axis)
    return _astype(result, dtype)


# -- gradient ------------------------------------------------------------------------------------
def _spacing(distances, n, name="distances"):
    """NumPy's reading of one spacing argument: a scalar, or the differences of coordinates
    (reduced to their first entry where all are equal)."""
    distances = _operand(distances)
    dv = np.asarray(_strip(distances))
    if dv.ndim == 0:
        return distances
    if dv.ndim != 1:
        raise ValueError("distances must be either scalars or 1d")
    if dv.shape[0] != n:
        raise ValueError("when 1d, distances must match the length of the corresponding dimension")
    if np.issubdtype(dv.dtype, np.integer):
        distances = dv.astype(np.float64)
    diffx = np.diff(distances)
    dxv = np.asarray(_strip(diffx))
    if (dxv == dxv[0]).all():
        return diffx[0]
    return diffx


def _gradient_axis(f, axis, ax_dx, edge_order, otype):
    """NumPy's gradient along one axis: interior central differences and one-sided ends."""
    N = np.ndim(_strip(f))

    def at(s):
        index = [slice(None)] * N
        index[axis] = s
        return f[tuple(index)]

    def piece(v, single):
        v = v if _strip(v).dtype == otype else astype_rule(v, dtype=otype)  # NumPy's out's dtype
        if single:
            shape = list(np.shape(_strip(v)))
            shape.insert(axis, 1)
            v = np.reshape(v, tuple(shape))
        return v

    uniform = np.ndim(_strip(ax_dx)) == 0
    if uniform:
        inner = (at(slice(2, None)) - at(slice(None, -2))) / (2. * ax_dx)
    else:
        dx1, dx2 = ax_dx[0:-1], ax_dx[1:]
        a = -(dx2) / (dx1 * (dx1 + dx2))
        b = (dx2 - dx1) / (dx1 * dx2)
        c = dx1 / (dx2 * (dx1 + dx2))
        shape = [1] * N
        shape[axis] = -1
        a, b, c = (np.reshape(v, tuple(shape)) for v in (a, b, c))
        inner = a * at(slice(None, -2)) + b * at(slice(1, -1)) + c * at(slice(2, None))
    if edge_order == 1:
        first = (at(1) - at(0)) / (ax_dx if uniform else ax_dx[0])
        last = (at(-1) - at(-2)) / (ax_dx if uniform else ax_dx[-1])
    else:
        if uniform:
            a, b, c = -1.5 / ax_dx, 2. / ax_dx, -0.5 / ax_dx
        else:
            dx1, dx2 = ax_dx[0], ax_dx[1]
            a = -(2. * dx1 + dx2) / (dx1 * (dx1 + dx2))
            b = (dx1 + dx2) / (dx1 * dx2)
            c = - dx1 / (dx2 * (dx1 + dx2))
        first = a * at(0) + b * at(1) + c * at(2)
        if uniform:
            a, b, c = 0.5 / ax_dx, -2. / ax_dx, 1.5 / ax_dx
        else:
            dx1, dx2 = ax_dx[-2], ax_dx[-1]
            a = (dx2) / (dx1 * (dx1 + dx2))
            b = - (dx2 + dx1) / (dx1 * dx2)
            c = (2. * dx2 + dx1) / (dx2 * (dx1 + dx2))
        last = a * at(-3) + b * at(-2) + c * at(-1)
    parts = [piece(first, True), piece(inner, False), piece(last, True)]
    if np.shape(_strip(f))[axis] == 2:  # no interior; NumPy writes the ends only
        parts = [parts[0], parts[2]]
    return concatenate(parts, axis=axis)


@register_function(np.gradient, examples=[_ex((5,)), _ex((3, 4), 0.5), _ex((4, 3), axis=0, edge_order=2),
                                          _ex((3, 4), 2.0, [0.0, 0.5, 1.5, 1.75]),
                                          lambda rng: ((rng.standard_normal((4, 3)),
                                                        np.cumsum(rng.uniform(0.5, 1.5, 4))),
                                                       {"axis": 0, "edge_order": 2}),
                                          lambda rng: ((rng.standard_normal(5), np.asarray(rng.uniform(0.5, 1.5, ()))), {})])
def gradient(f, *varargs, axis=None, edge_order=1):
    """NumPy's gradient (its formulas: central differences inside, one-sided ends of order
    ``edge_order``); differentiable in ``f`` and in the spacings (scalars or coordinates)."""
    f = _operand(f)
    fv = np.asarray(_strip(f))
    N = fv.ndim
    axes = tuple(range(N)) if axis is None else np.lib.array_utils.normalize_axis_tuple(axis, N)
    n = len(varargs)
    if n == 0:
        dx = [1.0] * len(axes)
    elif n == 1 and np.ndim(_strip(varargs[0])) == 0:
        dx = list(varargs) * len(axes)
    elif n == len(axes):
        dx = [_spacing(d, fv.shape[axes[i]]) for i, d in enumerate(varargs)]
    else:
        raise TypeError("invalid number of arguments")
    if edge_order > 2:
        raise ValueError("'edge_order' greater than 2 not supported")
    otype = fv.dtype
    if not np.issubdtype(otype, np.inexact):
        if np.issubdtype(otype, np.integer):
            f = fv.astype(np.float64)
        otype = np.dtype(np.float64)
    outvals = []
    for ax, ax_dx in zip(axes, dx):
        if fv.shape[ax] < edge_order + 1:
            raise ValueError("Shape of array too small to calculate a numerical gradient, "
                             "at least (edge_order + 1) elements are required.")
        outvals.append(_gradient_axis(f, ax, ax_dx, edge_order, otype))
    if len(axes) == 1:
        return outvals[0]
    return tuple(outvals)
