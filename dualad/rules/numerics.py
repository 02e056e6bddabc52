"""Numerical routines: interp, polyval, convolve, correlate, trapezoid, cumulative_sum and
cumulative_prod.

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
"""
from __future__ import annotations

import numpy as np

from .core import Rule, expand_to, match_dtype, normalize_axis, register_function, unbroadcast
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
