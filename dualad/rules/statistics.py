"""Statistics: percentile, quantile, nanpercentile, nanquantile, cov and corrcoef.

**Quantiles** (``np.quantile``, ``np.percentile`` and their NaN-ignoring forms) are one
primitive of the table, an *order-statistics* reduction: NumPy computes the value (so it is
NumPy's, bit for bit, for every ``method``, ``axis``, ``keepdims`` and ``weights=``), and the
derivative is that of the order statistics it interpolates. NumPy's own helpers give, per
quantile and slice, the two neighbouring order statistics ``s[j]``, ``s[j + 1]`` of the
sorted slice and the weight ``g`` (``_get_indexes`` / ``_get_gamma``, so every method is the
same code: 'linear', 'lower', 'higher', 'nearest', 'midpoint', 'inverted_cdf',
'averaged_inverted_cdf', 'closest_observation', 'interpolated_inverted_cdf', 'hazen',
'weibull', 'median_unbiased', 'normal_unbiased'), and::

    d quantile = (1 - g) d s[j] + g d s[j + 1]

where ``d s[j]`` is split equally among the entries equal to ``s[j]`` (ties split, as
``np.median`` and ``np.max`` do; at a tie the derivative does not exist, this is the
symmetric choice, and what central differences give for two tied entries). With
``weights=`` (NumPy's weighted 'inverted_cdf') the value is one order statistic, which
gets the whole derivative (split among ties); the weights themselves are piecewise constant,
so a traced ``weights`` gets a zero derivative. A slice holding a NaN gives NumPy's NaN and a
NaN derivative (as ``max``); the NaN forms give NaN entries a zero derivative and an all-NaN
slice NumPy's NaN (and warning) with a zero derivative.

A traced ``q`` is differentiated for ``method='linear'`` (the value is linear in ``q``
between the points where ``(n - 1) q`` is an integer): ``d/dq = (n - 1) (s[j + 1] - s[j])``,
the slope of the segment to the right (of the last segment at ``q = 1``; ``/ 100`` for
percentiles). Other methods with a traced ``q`` raise ``MissingRuleError`` (their values are
piecewise constant in ``q`` or would need their own slope). ``out=`` raises (as elsewhere for
traced arrays); ``overwrite_input`` is accepted and has no effect (a traced input is never
overwritten).

**cov / corrcoef** are NumPy's code written with the table's rules (NumPy's values; ``y``,
``rowvar``, ``bias``, ``ddof``, ``fweights``, ``aweights``, ``dtype`` as NumPy's); the weights
are constants (a traced ``fweights``/``aweights`` raises). corrcoef clips to ``[-1, 1]`` as
NumPy does, so its diagonal (exactly 1) has a zero derivative.
"""
from __future__ import annotations

import warnings

import numpy as np
from numpy.lib import _function_base_impl as _fb

from ..errors import MissingRuleError
from .core import Rule, match_dtype, register_function
from .dispatch import strip
from .elementwise import where_rule
from .shape import _ex, astype_rule, reshape, transpose

_QUANTILE_FUNCS = {"quantile": np.quantile, "percentile": np.percentile,
                   "nanquantile": np.nanquantile, "nanpercentile": np.nanpercentile}


def _traced(x) -> bool:
    return getattr(x, "_ad_level", None) is not None


# -- the order statistics of a quantile ----------------------------------------------------
def _layout(ndim, axes):
    """``(perm, rest)``: the kept axes first, then the reduced ones; the kept axes."""
    axes = tuple(range(ndim)) if axes is None else axes
    rest = tuple(d for d in range(ndim) if d not in axes)
    return rest + tuple(axes), rest


def _order_indexes(n, q, method):
    """``(j, k, g)`` of q's shape: NumPy's neighbouring indexes into a sorted slice of ``n``
    entries and the interpolation weight (``_quantile``'s own steps)."""
    props = _fb._QuantileMethods[method]
    vi = np.asanyarray(props["get_virtual_index"](n, q))
    if props["fix_gamma"] is None or (method == "linear" and np.issubdtype(vi.dtype, np.integer)):
        j = vi.astype(np.intp) % n
        return j, j, np.zeros(vi.shape)
    j, k = _fb._get_indexes(np.empty(0), vi, n)
    g = _fb._get_gamma(vi, j, props)
    return j % n, k % n, np.asarray(g, dtype=np.float64)


def _hits(rows, values):
    """``rows == values`` (values: q.shape + (m,), rows: (m, n)), each normalised to sum 1."""
    h = (rows == values[..., None]).astype(np.float64)
    return h / np.maximum(np.add.reduce(h, axis=-1, keepdims=True), 1.0)


def _quantile_weights(x, out, q, axes, keepdims, method, func, weights):
    """``W`` of shape ``q.shape + rest + (n,)``: ``d out = sum(W * dx)`` with x's kept axes
    first and its reduced axes flattened last."""
    x = np.asarray(strip(x))
    perm, rest = _layout(x.ndim, axes)
    flat = np.transpose(x, perm).reshape(tuple(x.shape[d] for d in rest) + (-1,))
    lead, n = flat.shape[:-1], flat.shape[-1]
    qa = np.asarray(q, dtype=np.float64)
    if func.startswith("percentile") or func.startswith("nanpercentile"):
        qa = np.true_divide(qa, 100)
    nan = func.startswith("nan")
    W = np.zeros(qa.shape + flat.shape)
    if n == 0:
        return W.astype(x.dtype)
    rows = flat.reshape(-1, n)
    Wr = W.reshape(qa.shape + (-1, n))
    with np.errstate(invalid="ignore"):
        if weights is not None:
            # one order statistic per quantile and slice: NumPy's value itself
            picked = np.asarray(strip(out), dtype=np.float64)
            if keepdims:
                picked = picked.reshape(qa.shape + lead)
            Wr[...] = _hits(rows, picked.reshape(qa.shape + (-1,)))
        else:
            s = np.sort(rows, axis=-1)  # NaNs sort last
            counts = (np.sum(~np.isnan(rows), axis=-1) if nan
                      else np.full(rows.shape[0], n, dtype=np.intp))
            for c in np.unique(counts):
                if c == 0:
                    continue  # an all-NaN slice: zero derivative
                sel = counts == c
                j, k, g = _order_indexes(int(c), qa, method)
                sv, rv = s[sel], rows[sel]
                low = np.moveaxis(sv[:, j], 0, -1)  # q.shape + (m,)
                high = np.moveaxis(sv[:, k], 0, -1)
                Wr[..., sel, :] = ((1 - g)[..., None, None] * _hits(rv, low)
                                   + g[..., None, None] * _hits(rv, high))
        if not nan:
            Wr[..., np.isnan(rows).any(axis=-1), :] = np.nan  # NumPy's NaN: a NaN derivative
    return W.astype(x.dtype)


class _Quantile(Rule):
    """``np.quantile`` and friends as an order-statistics reduction (see the module docstring).

    Static: ``q`` (plain), ``axis`` (a sorted tuple), ``keepdims``, ``method``, ``func`` (the
    NumPy function's name) and ``weights`` (plain or None)."""

    kind = "reduction"

    def saved_for(self, argnum):
        return frozenset({0}), True

    def _setup(self, x, out, static):
        axes = static["axis"]
        W = _quantile_weights(x, out, static["q"], axes, static["keepdims"], static["method"],
                              static["func"], static["weights"])
        shape = np.shape(x)
        perm, rest = _layout(len(shape), axes)
        return W, shape, perm, rest, np.ndim(static["q"])

    def jvp(self, primals, tangents, out, nb, static):
        (x,), (t,) = primals, tangents
        W, shape, perm, rest, qnd = self._setup(x, out, static)
        batch = tuple(t.shape[:nb])
        t = np.transpose(t, tuple(range(nb)) + tuple(p + nb for p in perm))
        t = np.reshape(t, batch + (1,) * qnd + W.shape[qnd:])
        out_t = np.sum(W * t, axis=-1)
        return np.reshape(out_t, batch + np.shape(out))

    def vjp(self, argnum, out_bar, primals, out, nb, static):
        (x,) = primals
        W, shape, perm, rest, qnd = self._setup(x, out, static)
        batch = tuple(out_bar.shape[:nb])
        g = np.reshape(out_bar, batch + W.shape[:-1] + (1,))
        xb = np.sum(g * W, axis=tuple(range(nb, nb + qnd))) if qnd else g * W
        xb = np.reshape(xb, batch + tuple(shape[p] for p in perm))
        inverse = tuple(int(i) for i in np.argsort(perm))
        xb = np.transpose(xb, tuple(range(nb)) + tuple(i + nb for i in inverse))
        return match_dtype(xb, x)


def _quantile_primal(x, q, axis, keepdims, method, func, weights):
    kw = {} if weights is None else {"weights": weights}
    return _QUANTILE_FUNCS[func](x, q, axis=axis, method=method, keepdims=keepdims, **kw)


quantile_rule = _Quantile("quantile", _quantile_primal)


def _q_slope(a, q01, axes, keepdims, nan, out_shape):
    """``d quantile / d q`` for method='linear', traced in ``a``: ``(c - 1) (s[j + 1] - s[j])``
    with ``j = floor((c - 1) q)`` (the last segment at q = 1), ``c`` the slice's count."""
    av = np.asarray(strip(a))
    perm, rest = _layout(av.ndim, axes)
    lead = tuple(av.shape[d] for d in rest)
    flat = reshape(transpose(a, perm), lead + (-1,))
    n = np.shape(flat)[-1]
    plain = np.transpose(av, perm).reshape(lead + (n,))
    counts = np.sum(~np.isnan(plain), axis=-1) if nan else np.full(lead, n)
    qf = np.ravel(q01)
    vi = (counts[..., None] - 1) * qf  # lead + (Q,)
    j = np.clip(np.floor(vi), 0, np.maximum(counts[..., None] - 2, 0)).astype(np.intp)
    k = np.minimum(j + 1, np.maximum(counts[..., None] - 1, 0))
    s = np.sort(flat, axis=-1)
    diff = np.take_along_axis(s, k, axis=-1) - np.take_along_axis(s, j, axis=-1)
    short = np.broadcast_to((counts <= 1)[..., None], np.shape(diff))
    if np.any(short):
        diff = where_rule(short, 0.0, diff)
    slope = diff * (counts[..., None] - 1).astype(np.asarray(strip(diff)).dtype)
    slope = np.moveaxis(slope, -1, 0)
    return reshape(slope, out_shape)


def _quantile_impl(func):
    percent = "percentile" in func
    nan = func.startswith("nan")
    numpy_func = _QUANTILE_FUNCS[func]

    def impl(a, q, axis=None, out=None, overwrite_input=False, method="linear", keepdims=False,
             *, weights=None):
        if out is not None:
            raise TypeError(f"np.{func}(..., out=) is not supported for traced arrays: drop out=")
        if keepdims is np._NoValue:
            keepdims = False
        a = a if _traced(a) else np.asanyarray(a)
        if np.iscomplexobj(strip(a)):
            raise TypeError("a must be an array of real numbers")
        q_traced = _traced(q)
        q0 = strip(q)
        if q_traced and type(q0) not in (int, float):
            q0 = np.asarray(q0)  # (as NumPy reads a q array)
        w = None if weights is None else np.asanyarray(strip(weights))
        ndim = np.ndim(strip(a))
        axes = (tuple(range(ndim)) if axis is None
                else tuple(sorted(np.lib.array_utils.normalize_axis_tuple(axis, ndim, "axis"))))
        if (not _traced(a)) and not q_traced:  # (a traced weights only): NumPy's value, no derivative
            return numpy_func(a, q0, axis=axis, overwrite_input=overwrite_input, method=method,
                              keepdims=keepdims, **({} if w is None else {"weights": w}))
        if not _traced(a):
            value = numpy_func(a, q0, axis=axis, method=method, keepdims=bool(keepdims),
                               **({} if w is None else {"weights": w}))
        else:
            value = quantile_rule(a, q=q0, axis=None if axis is None else axes,
                                  keepdims=bool(keepdims), method=method, func=func, weights=w)
        if not q_traced:
            return value
        if method != "linear" or w is not None:
            raise MissingRuleError(
                f"np.{func} with a traced q is differentiated only for method='linear' without "
                f"weights (got method={method!r}{'' if w is None else ', weights='}); pass q as "
                "a constant (strip it) to differentiate with respect to a only")
        q01 = np.true_divide(q0, 100) if percent else np.asarray(q0)
        qq = q / 100 if percent else q
        step = qq - (np.true_divide(q0, 100) if percent else q0)
        slope = _q_slope(a, q01, axes, bool(keepdims), nan, np.shape(strip(value)))
        if np.ndim(strip(value)) > np.ndim(strip(step)):  # q's axes come first in the result
            step = reshape(step, np.shape(strip(step)) + (1,) * (np.ndim(strip(value))
                                                                - np.ndim(strip(step))))
        result = value + step * slope
        dtype = np.asarray(strip(value)).dtype
        if np.asarray(strip(result)).dtype != dtype:
            result = astype_rule(result, dtype=dtype)
        return result
    impl.__name__ = func
    impl.__doc__ = (f"NumPy's {func} (its value for every method); the derivative takes the "
                    "interpolated order statistics, ties split equally (see the module docstring).")
    return impl


def _q_example(shape, q, **kwargs):
    def make(rng):
        return (rng.standard_normal(shape), q), dict(kwargs)
    return make


def _traced_q_example(shape, nq, scale=1.0, **kwargs):
    def make(rng):
        return (rng.standard_normal(shape), scale * rng.uniform(0.1, 0.9, nq)), dict(kwargs)
    return make


def _weights_example(shape, wshape, q, **kwargs):
    def make(rng):
        kw = dict(kwargs)
        kw["weights"] = [float(v) for v in rng.uniform(0.5, 2.0, wshape).ravel()] if len(wshape) == 1 \
            else rng.uniform(0.5, 2.0, wshape).tolist()
        return (rng.standard_normal(shape), q), kw
    return make


_QUANTILE_EXAMPLES = {
    "quantile": [_q_example((3, 4), 0.3), _q_example((3, 4), [0.1, 0.5, 0.8], axis=1),
                 _q_example((2, 3, 4), [0.25, 0.7], axis=(0, 2), keepdims=True),
                 _q_example((7,), 0.4, method="lower"), _q_example((3, 5), 0.55, axis=0, method="nearest"),
                 _q_example((2, 5), [0.2, 0.9], axis=1, method="hazen"),
                 _q_example((6,), 0.35, method="averaged_inverted_cdf"),
                 _weights_example((2, 5), (5,), [0.3, 0.6], axis=1, method="inverted_cdf"),
                 _traced_q_example((2, 5), (2,), axis=1)],
    "percentile": [_q_example((3, 4), 30.0), _q_example((3, 4), [10.0, 50.0, 85.0], axis=0),
                   _q_example((5,), 40.0, method="midpoint"),
                   _q_example((2, 3, 4), 60.0, axis=(1, 2), method="median_unbiased"),
                   _traced_q_example((6,), (), 100.0)],
    "nanquantile": [_q_example((3, 4), 0.3), _q_example((3, 5), [0.2, 0.6], axis=1),
                    _q_example((4, 3), 0.5, axis=0, keepdims=True, method="weibull"),
                    _q_example((2, 6), 0.7, axis=1, method="higher")],
    "nanpercentile": [_q_example((3, 4), 30.0, axis=1), _q_example((3, 5), [20.0, 75.0]),
                      _q_example((2, 3, 4), 40.0, axis=(0, 2), method="normal_unbiased")],
}

for _name, _examples in _QUANTILE_EXAMPLES.items():
    register_function(_QUANTILE_FUNCS[_name], examples=_examples)(_quantile_impl(_name))


# -- cov and corrcoef: NumPy's code with the table's rules -------------------------------------
def _ndmin2(x, dtype):
    x = x if _traced(x) else np.asarray(x)
    if np.iscomplexobj(strip(x)):
        raise TypeError("np.cov: complex operands are not supported for traced arrays "
                        "(dualad/reversead differentiate real functions)")
    if np.asarray(strip(x)).dtype != dtype:
        x = astype_rule(x, dtype=dtype) if _traced(x) else x.astype(dtype)
    return reshape(x, (1,) * (2 - np.ndim(strip(x))) + np.shape(strip(x))) if np.ndim(strip(x)) < 2 else x


def _constant_weights(name, w):
    if _traced(w):
        raise MissingRuleError(f"np.cov(..., {name}=) with traced weights is not supported: "
                               "the weights must be constants (strip them)")
    return w


@register_function(np.cov, examples=[_ex((3, 5)), _ex((5, 3), rowvar=False), _ex((4,), (4,)),
                                     _ex((2, 5), bias=True), _ex((2, 6), ddof=2),
                                     _ex((2, 4), fweights=[1, 2, 1, 3], aweights=[0.5, 1.0, 2.0, 1.5]),
                                     _ex((2, 4), aweights=[0.5, 1.0, 2.0, 1.5], ddof=1),
                                     _ex((3, 2), (3,), rowvar=False)])
def cov(m, y=None, rowvar=True, bias=False, ddof=None, fweights=None, aweights=None, *, dtype=None):
    """NumPy's cov (its steps, so its values); differentiable in ``m`` and ``y``; the weights
    are constants."""
    if ddof is not None and ddof != int(ddof):
        raise ValueError("ddof must be integer")
    if np.ndim(strip(m)) > 2:
        raise ValueError("m has more than 2 dimensions")
    if y is not None and np.ndim(strip(y)) > 2:
        raise ValueError("y has more than 2 dimensions")
    if dtype is None:
        dtype = (np.result_type(np.asarray(strip(m)), np.float64) if y is None
                 else np.result_type(np.asarray(strip(m)), np.asarray(strip(y)), np.float64))
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise TypeError(f"np.cov(..., dtype={dtype}): only float dtypes are differentiable")
    X = _ndmin2(m, dtype)
    if not rowvar and np.ndim(strip(m)) != 1:
        X = transpose(X, None)
    if np.shape(strip(X))[0] == 0:
        return np.array([]).reshape(0, 0)
    if y is not None:
        y2 = _ndmin2(y, dtype)
        if not rowvar and np.shape(strip(y2))[0] != 1:
            y2 = transpose(y2, None)
        X = np.concatenate((X, y2), axis=0)
    if ddof is None:
        ddof = 1 if bias == 0 else 0
    fweights = _constant_weights("fweights", fweights)
    aweights = _constant_weights("aweights", aweights)
    n_obs = np.shape(strip(X))[1]
    # NumPy's checks of the weights and their product, on plain arrays
    w = None
    if fweights is not None:
        fweights = np.asarray(fweights, dtype=float)
        if not np.all(fweights == np.around(fweights)):
            raise TypeError("fweights must be integer")
        if fweights.ndim > 1:
            raise RuntimeError("cannot handle multidimensional fweights")
        if fweights.shape[0] != n_obs:
            raise RuntimeError("incompatible numbers of samples and fweights")
        if any(fweights < 0):
            raise ValueError("fweights cannot be negative")
        w = fweights
    if aweights is not None:
        aweights = np.asarray(aweights, dtype=float)
        if aweights.ndim > 1:
            raise RuntimeError("cannot handle multidimensional aweights")
        if aweights.shape[0] != n_obs:
            raise RuntimeError("incompatible numbers of samples and aweights")
        if any(aweights < 0):
            raise ValueError("aweights cannot be negative")
        w = aweights if w is None else w * aweights
    avg, w_sum = np.average(X, axis=1, weights=w, returned=True)
    w_sum = strip(w_sum)[0]
    if w is None:
        fact = n_obs - ddof
    elif ddof == 0:
        fact = w_sum
    elif aweights is None:
        fact = w_sum - ddof
    else:
        fact = w_sum - ddof * sum(w * aweights) / w_sum
    if fact <= 0:
        warnings.warn("Degrees of freedom <= 0 for slice", RuntimeWarning, stacklevel=4)
        fact = 0.0
    X = X - avg[:, None]
    X_T = transpose(X, None) if w is None else transpose(X * w, None)
    with np.errstate(divide="ignore"):
        scale = np.true_divide(1, fact)
    c = np.dot(X, X_T) * scale
    if np.asarray(strip(c)).dtype != dtype:  # NumPy's in-place ``c *= scale`` keeps the dtype
        c = astype_rule(c, dtype=dtype)
    return np.squeeze(c)


@register_function(np.corrcoef, examples=[_ex((3, 5)), _ex((5, 3), rowvar=False), _ex((4,), (4,)),
                                          _ex((2, 4), (1, 4))])
def corrcoef(x, y=None, rowvar=True, *, dtype=None):
    """NumPy's corrcoef: cov over the outer product of the standard deviations, clipped to
    [-1, 1] (the diagonal, 1, has a zero derivative)."""
    c = cov(x, y, rowvar, dtype=dtype)
    if np.ndim(strip(c)) == 0:
        return c / c  # NumPy's: 1 (or NaN): zero derivative
    d = np.diag(c)
    stddev = np.sqrt(d)
    c = c / stddev[:, None]
    c = c / stddev[None, :]
    return np.clip(c, -1, 1)
