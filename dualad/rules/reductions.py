"""Reductions and scans: sum, mean, prod, max, min, var, std, cumsum, cumprod, trace.

``sum`` and ``cumsum`` are linear. ``prod``, ``max`` and ``min`` are *weighted*
reductions: ``d reduce(x) = sum(w * dx)`` with weights ``w`` of x's shape (exclusive
products for prod; tie-split indicator for max/min). The rest are composites.

Keywords as NumPy's: ``dtype=`` (a float dtype) casts before reducing; ``where=`` masks
entries out (a masked sum is its own linear primitive, since NumPy sums a masked row in runs
and so rounds differently from a sum of zero-filled entries; prod, max and min reduce
``where(mask, x, identity)``, which gives NumPy's values); ``initial=`` starts the reduction
(prod, max and min reduce ``[initial, entries...]`` in NumPy's order).
"""
from __future__ import annotations

import warnings

import numpy as np

from .. import kernels
from .core import Linear, Rule, broadcast_view, normalize_axis, register_function, shift_axis
from .elementwise import where_rule
from .shape import _ex, astype_rule, concatenate, reshape, transpose

_NOVALUE = np._NoValue


def _axes(axis, ndim):
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, (tuple, list)):
        return tuple(sorted(normalize_axis(a, ndim) for a in axis))
    return (normalize_axis(axis, ndim),)


def _keep(g, axes, nb, keepdims):
    """Re-insert reduced axes (size 1) into batched ``g`` so it broadcasts against x."""
    if keepdims or not axes:
        return g
    shape = list(g.shape)
    for a in axes:
        shape.insert(a + nb, 1)
    return g.reshape(shape)


def _check_no_extras(name, **extras):
    for key, value in extras.items():
        if value is not None and value is not _NOVALUE:
            raise TypeError(f"np.{name}(..., {key}=) is not supported for traced arrays")


def _given(value) -> bool:
    return value is not _NOVALUE and value is not None


def _cast(a, dtype, name):
    """``a`` in a float ``dtype`` (NumPy casts the entries as it reduces them)."""
    if dtype is None:
        return a
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise TypeError(f"np.{name}(..., dtype={dtype}): only float dtypes (float16, float32, "
                        "float64) are differentiable; reduce first, then cast the result")
    return a if _strip(a).dtype == dtype else astype_rule(a, dtype=dtype)


def _mask(where):
    """``where=`` as a plain boolean array, or None where it selects every entry."""
    if where is _NOVALUE or where is True:
        return None
    return np.asarray(_strip(where))


def _plain_initial(name, initial):
    if getattr(initial, "_ad_level", None) is not None:
        raise TypeError(f"np.{name}(..., initial=) must be a plain number for traced arrays "
                        "(add a traced start to the result instead)")
    return initial


def _count_items(shape, axis, keepdims, mask):
    """How many entries each result reduces: NumPy's ``_count_reduce_items``."""
    if mask is None:
        return np.intp(np.prod([shape[i] for i in _axes(axis, len(shape))], dtype=np.intp))
    return np.add.reduce(np.broadcast_to(mask, shape), axis=_axis_arg(axis), dtype=np.intp,
                         keepdims=keepdims)


def _divide_by_count(v, count):
    """``v / count`` as NumPy's mean and var divide: in float64, rounded to ``v``'s dtype.

    Where ``count`` is exact in v's dtype the division is done there (one operation fewer):
    float64 has more than twice the digits of float32 and float16 plus two, so rounding the
    float64 quotient again gives the correctly rounded quotient, the same bits.
    """
    dtype = _strip(v).dtype
    c = np.asarray(count, dtype=np.float64)
    if dtype != np.float64 and not np.array_equal(c.astype(dtype), c):
        return astype_rule(v / c, dtype=dtype)
    return v / (float(c) if c.ndim == 0 else c.astype(dtype))


def _with_initial(a, axis, initial, keepdims):
    """``(b, shape)``: ``a`` with the reduced axes flattened into the last one and ``initial``
    put first there (NumPy starts a reduction from ``initial`` and goes through the entries
    in order), and the shape the reduction of ``b`` along its last axis must be given."""
    shape = _shape(a)
    axes = _axes(axis, len(shape))
    rest = [d for d in range(len(shape)) if d not in axes]
    lead = tuple(shape[d] for d in rest)
    flat = reshape(transpose(a, tuple(rest) + axes), lead + (-1,))
    first = np.full(lead + (1,), initial, dtype=_strip(a).dtype)
    out_shape = tuple(1 if d in axes else n for d, n in enumerate(shape)) if keepdims else lead
    return concatenate([first, flat], axis=-1), out_shape


# -- sum ----------------------------------------------------------------------
def _sum_of(t, axis, keepdims):
    """``np.sum(t, axis=axis, keepdims=keepdims)`` of a batch of tangents: an array takes the
    kernels' loops where NumPy would pay per short row (the same numbers); a traced value
    dispatches through ``np.sum``."""
    if type(t) is np.ndarray:
        return kernels.add_reduce(t, axis, keepdims)
    return np.sum(t, axis=axis, keepdims=keepdims)


def _sum_batched(tangents, primals, nb, axis, keepdims):
    (t,) = tangents
    return _sum_of(t, shift_axis(axis, nb, np.ndim(primals[0])), keepdims)


def _shape(x):
    shape = getattr(x, "shape", None)
    return shape if type(shape) is tuple else np.shape(x)


def _sum_transpose(argnum, out_bar, primals, nb, axis, keepdims):
    x_shape = _shape(primals[0])
    if nb == 0 and (keepdims or axis is None and type(out_bar) in _FLOAT_SCALARS):
        return broadcast_view(out_bar, x_shape)  # a loss's scalar, or kept axes: nothing to insert
    g = _keep(out_bar, _axes(axis, len(x_shape)), nb, keepdims)
    return broadcast_view(g, out_bar.shape[:nb] + x_shape)


_FLOAT_SCALARS = (np.float64, np.float32)


# primals call the ufunc's reduce directly: what np.sum/np.max run, less ~2.5 us of wrapper
# (sum's through the kernels' loops where those apply: the same numbers)
sum_rule = Linear("sum", kernels.add_reduce, _sum_batched, _sum_transpose)


def _axis_arg(axis):
    return tuple(axis) if isinstance(axis, list) else axis


def _masked_sum_batched(tangents, primals, nb, where, axis, keepdims, initial):
    (t,) = tangents
    ndim = np.ndim(primals[0])
    if where is not None:
        where = np.broadcast_to(where, np.shape(primals[0]))
    return np.sum(t, axis=shift_axis(axis, nb, ndim), keepdims=keepdims,
                  **({} if where is None else {"where": where}))


def _masked_sum_transpose(argnum, out_bar, primals, nb, where, axis, keepdims, initial):
    g = _sum_transpose(argnum, out_bar, primals, nb, axis, keepdims)
    return g if where is None else np.where(np.broadcast_to(where, np.shape(primals[0])), g, 0.0)


def _masked_sum_primal(x, where, axis, keepdims, initial):
    return np.sum(x, axis=axis, keepdims=keepdims, initial=initial,
                  **({} if where is None else {"where": where}))


#: ``np.sum(x, where=mask, initial=c)``: NumPy's masked sum for the value (it sums each run of
#: selected entries, so it rounds unlike a sum of zero-filled entries), linear in x
masked_sum_rule = Linear("masked_sum", _masked_sum_primal, _masked_sum_batched, _masked_sum_transpose)


def _keepdims(keepdims) -> bool:
    return False if keepdims is _NOVALUE else bool(keepdims)


@register_function(np.sum, examples=[_ex((3, 4)), _ex((3, 4), axis=0), _ex((2, 3, 4), axis=(0, 2), keepdims=True),
                                     _ex((3, 4), axis=1, where=np.array([True, False, True, True])),
                                     _ex((2, 3), initial=1.5, dtype="float64",
                                         where=np.array([[True], [False]]))])
def sum(a, axis=None, dtype=None, out=None, keepdims=False, initial=_NOVALUE, where=_NOVALUE):
    """NumPy's sum; ``where=``/``initial=`` take the masked sum (NumPy's value), ``dtype=`` casts first."""
    _check_no_extras("sum", out=out)
    a = _cast(a, dtype, "sum")
    mask = _mask(where)
    if mask is None and initial is _NOVALUE:
        return sum_rule(a, axis=_axis_arg(axis), keepdims=_keepdims(keepdims))
    return masked_sum_rule(a, where=mask, axis=_axis_arg(axis), keepdims=_keepdims(keepdims),
                           initial=_plain_initial("sum", initial))


def _count(shape, axis):
    return float(np.prod([shape[i] for i in _axes(axis, len(shape))], dtype=np.int64))


def _mean_batched(tangents, primals, nb, axis, keepdims):
    return _sum_batched(tangents, primals, nb, axis, keepdims) / _count(np.shape(primals[0]), axis)


def _mean_transpose(argnum, out_bar, primals, nb, axis, keepdims):
    return _sum_transpose(argnum, out_bar, primals, nb, axis, keepdims) / _count(np.shape(primals[0]), axis)


mean_rule = Linear("mean", lambda x, axis, keepdims: np.mean(x, axis=axis, keepdims=keepdims),
                   _mean_batched, _mean_transpose)


@register_function(np.mean, examples=[_ex((3, 4)), _ex((3, 4), axis=1, keepdims=True),
                                      _ex((3, 4), axis=0, where=np.array([[True], [False], [True]])),
                                      _ex((2, 3), dtype="float64", keepdims=True)])
def mean(a, axis=None, dtype=None, out=None, keepdims=False, *, where=_NOVALUE):
    """NumPy's mean; with ``dtype=`` or ``where=`` its ``_mean`` step by step (the same rounding)."""
    _check_no_extras("mean", out=out)
    mask, keepdims = _mask(where), _keepdims(keepdims)
    if dtype is None and mask is None:
        return mean_rule(a, axis=_axis_arg(axis), keepdims=keepdims)
    # NumPy's _mean: a sum (in dtype; float16 in float32) divided by the count
    count = _count_items(_shape(a), axis, keepdims, mask)
    if np.any(count == 0):
        warnings.warn("Mean of empty slice", RuntimeWarning, stacklevel=4)
    half = dtype is None and _strip(a).dtype == np.float16
    total = sum(a, axis=axis, dtype=np.float32 if half else dtype, keepdims=keepdims, where=where)
    result = _divide_by_count(total, count)
    return astype_rule(result, dtype=np.float16) if half else result


# -- weighted reductions: prod, max, min ---------------------------------------
class Weighted(Rule):
    """``out = reduce(x, axis)`` with ``d out = sum(w * dx, axis)``, ``w = weights(x, out_kept, axes)``."""

    kind = "reduction"

    def __init__(self, name, primal, weights, cotangent=None):
        self.weights = weights
        #: optional ``(x, out_kept, out_bar_kept, axes) -> x_bar``, cheaper than ``out_bar * w``
        self.cotangent = cotangent
        super().__init__(name, primal)

    def saved_for(self, argnum):
        return frozenset({0}), True

    def _w(self, primals, out, axis, keepdims):
        x = primals[0]
        axes = _axes(axis, np.ndim(x))
        return self.weights(x, _keep(out, axes, 0, keepdims), axes), axes

    def jvp(self, primals, tangents, out, nb, static):
        w, axes = self._w(primals, out, **static)
        (t,) = tangents
        return _sum_of(w * t, tuple(a + nb for a in axes), static["keepdims"])

    def vjp(self, argnum, out_bar, primals, out, nb, static):
        if self.cotangent is not None:
            x, keepdims = primals[0], static["keepdims"]
            axes = _axes(static["axis"], x.ndim if type(x) is np.ndarray else np.ndim(x))
            return self.cotangent(x, _keep(out, axes, 0, keepdims), _keep(out_bar, axes, nb, keepdims), axes)
        w, axes = self._w(primals, out, **static)
        return _keep(out_bar, axes, nb, static["keepdims"]) * w


def _extremum_weights(x, out_kept, axes):
    # ties share the derivative equally; computed in x's float dtype (no float64 detour)
    hit = np.asarray(x == out_kept).astype(_strip(x).dtype)
    return hit / np.add.reduce(hit, axis=axes, keepdims=True)


def _extremum_cotangent(x, out_kept, g_kept, axes):
    # the same numbers as ``g * weights``, with the division done on the reduced shape
    fast = kernels.extremum_cotangent(x, out_kept, g_kept, axes)  # short rows: one loop
    if fast is not None:
        return fast
    hit = np.asarray(x == out_kept)
    dtype = x.dtype if type(x) is np.ndarray else _strip(x).dtype  # (an array needs no unwrapping)
    count = np.add.reduce(hit, axes, dtype, None, True)
    return hit * (g_kept / count)


def _prod_weights(x, out_kept, axes):
    # w_j = product of all the other elements: exclusive products from both sides,
    # exact when x has zeros (no division by x)
    moved = np.moveaxis(x, axes, tuple(range(-len(axes), 0)))
    lead = moved.shape[:moved.ndim - len(axes)]
    flat = reshape(moved, lead + (-1,))
    ones = np.ones(lead + (1,), dtype=getattr(flat, "dtype", float))
    left = np.concatenate([ones, np.cumprod(flat[..., :-1], axis=-1)], axis=-1)
    right = np.flip(np.concatenate([ones, np.cumprod(np.flip(flat, axis=-1)[..., :-1], axis=-1)],
                                   axis=-1), axis=-1)
    w = reshape(left * right, moved.shape)
    return np.moveaxis(w, tuple(range(-len(axes), 0)), axes)


def _reduce_primal(func):
    return lambda x, axis, keepdims: func(x, axis=axis, keepdims=keepdims)


max_rule = Weighted("max", _reduce_primal(np.maximum.reduce), _extremum_weights, _extremum_cotangent)
min_rule = Weighted("min", _reduce_primal(np.minimum.reduce), _extremum_weights, _extremum_cotangent)
prod_rule = Weighted("prod", _reduce_primal(np.prod), _prod_weights)


#: the value a masked-out entry takes: the reduction's identity
_IDENTITY = {"prod": 1.0, "max": -np.inf, "min": np.inf}


def _weighted_impl(rule, name):
    def impl(a, axis=None, out=None, keepdims=False, initial=_NOVALUE, where=_NOVALUE, dtype=None):
        _check_no_extras(name, out=out)
        a, mask, keepdims = _cast(a, dtype, name), _mask(where), _keepdims(keepdims)
        if mask is not None:
            if initial is _NOVALUE and rule is not prod_rule:
                raise ValueError(f"reduction operation '{'maximum' if rule is max_rule else 'minimum'}' "
                                 "does not have an identity, so to use a where mask one has to "
                                 "specify 'initial'")
            a = where_rule(np.broadcast_to(mask, _shape(a)), a, _IDENTITY[rule.name])
        if initial is _NOVALUE:
            return rule(a, axis=_axis_arg(axis), keepdims=keepdims)
        b, out_shape = _with_initial(a, axis, _plain_initial(name, initial), keepdims)
        return reshape(rule(b, axis=-1, keepdims=False), out_shape)
    impl.__name__ = name
    return impl


#: NumPy reductions whose call ``f(a, axis=..., keepdims=...)`` binds a rule as it is: the
#: traced types may call the rule straight from ``__array_function__`` for such calls
SIMPLE_REDUCTIONS = {np.sum: sum_rule, np.mean: mean_rule, np.max: max_rule, np.amax: max_rule,
                     np.min: min_rule, np.amin: min_rule}

_REDUCE_EXAMPLES = [_ex((3, 4)), _ex((3, 4), axis=0), _ex((2, 3, 4), axis=(0, 2), keepdims=True),
                    _ex((3, 4), axis=1, initial=0.5, where=np.array([True, False, True, True])),
                    _ex((2, 3, 2), axis=(2, 0), initial=-0.25, keepdims=True)]
for _func, _rule in ((np.max, max_rule), (np.amax, max_rule), (np.min, min_rule),
                     (np.amin, min_rule), (np.prod, prod_rule)):
    _examples = _REDUCE_EXAMPLES + ([_ex((2, 3), dtype="float64")] if _rule is prod_rule else [])
    register_function(_func, examples=_examples)(_weighted_impl(_rule, _func.__name__))


def _strip(x):
    while getattr(x, "_ad_level", None) is not None:
        x = x._ad_primal()
    return x


def _index_result(func):
    """argmax and friends: integer results, no derivative; run on the primal values."""
    def impl(*args, **kwargs):
        # every argument, not just the first: np.isclose(x, dual) must not dispatch again
        return func(*[_strip(a) for a in args], **{k: _strip(v) for k, v in kwargs.items()})
    return impl


for _func in (np.argmax, np.argmin, np.argsort, np.argwhere, np.nonzero, np.flatnonzero,
              np.count_nonzero, np.shape, np.ndim, np.size, np.isclose, np.allclose,
              np.array_equal, np.argpartition, np.searchsorted, np.any, np.all,
              np.result_type, np.can_cast):
    register_function(_func)(_index_result(_func))


# -- log-sum-exp: one primitive for what softmax and cross-entropy losses compute --
def _logsumexp_primal(x, axis, keepdims):
    if getattr(x, "_ad_level", None) is not None:  # dual values inside a Tensor (a Hessian)
        return logsumexp_rule(x, axis=axis, keepdims=keepdims)
    x = np.asarray(x)
    m = np.maximum.reduce(x, axis=axis, keepdims=True)
    if m.ndim and not np.all(np.isfinite(m)):
        m = np.where(np.isfinite(m), m, 0)  # all -inf (or an inf) along the axis: no shift
    elif not m.ndim and not np.isfinite(m):
        m = np.zeros_like(m)
    with np.errstate(divide="ignore"):  # log(0) = -inf for an all -inf slice, as NumPy says
        out = np.log(np.add.reduce(np.exp(x - m), axis=axis, keepdims=True)) + m
    if not keepdims:
        out = out.reshape(np.add.reduce(m, axis=axis).shape) if out.ndim else out
    return out[()] if out.ndim == 0 else out


def _softmax(x, out, axes, keepdims):
    return np.exp(x - _keep(out, axes, 0, keepdims))


class _LogSumExp(Rule):
    """``log(sum(exp(x), axis))``: JVP ``sum(softmax(x) * t)``, VJP ``g * softmax(x)``."""

    kind = "reduction"

    def saved_for(self, argnum):
        return frozenset({0}), True

    def jvp(self, primals, tangents, out, nb, static):
        axis, keepdims = static["axis"], static["keepdims"]
        x, (t,) = primals[0], tangents
        axes = _axes(axis, np.ndim(x))
        return _sum_of(_softmax(x, out, axes, keepdims) * t, tuple(a + nb for a in axes), keepdims)

    def vjp(self, argnum, out_bar, primals, out, nb, static):
        axis, keepdims = static["axis"], static["keepdims"]
        x = primals[0]
        axes = _axes(axis, np.ndim(x))
        return _keep(out_bar, axes, nb, keepdims) * _softmax(x, out, axes, keepdims)


logsumexp_rule = _LogSumExp("logsumexp", _logsumexp_primal)


def logsumexp(a, axis: int | tuple[int, ...] | None = None, keepdims: bool = False):
    """``log(sum(exp(a), axis))`` without overflow, as one primitive of the table.

    A user-written log-sum-exp (max, subtract, exp, sum, log) records six operations and
    differentiates through the max; this is one, with ``softmax(a)`` as its derivative.
    Works on plain arrays (NumPy values), dual numbers and Tensors alike, as
    ``scipy.special.logsumexp`` / ``jax.nn.logsumexp`` / ``torch.logsumexp`` do.

    Examples
    --------
    >>> import numpy as np, dualad
    >>> float(dualad.logsumexp(np.array([1000.0, 1000.0])))   # no overflow
    1000.6931471805599
    >>> dualad.gradient(lambda x: dualad.logsumexp(x), np.zeros(2))   # softmax
    array([0.5, 0.5])
    """
    return logsumexp_rule(a, axis=_axis_arg(axis), keepdims=bool(keepdims))


# -- variance and standard deviation ------------------------------------------
@register_function(np.var, examples=[_ex((3, 4)), _ex((3, 4), axis=0, ddof=1),
                                     _ex((3, 4), axis=1, where=np.array([True, True, False, True])),
                                     _ex((2, 3), dtype="float64", correction=1, keepdims=True)])
def var(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, *, where=_NOVALUE,
        mean=_NOVALUE, correction=_NOVALUE):
    """NumPy's ``_var`` step by step (so the same rounding): the mean (a sum in ``dtype`` over
    the count), the squared deviations of ``a`` from it, their sum in ``dtype`` over the count
    less ``ddof``. A traced ``mean=`` is differentiated too."""
    _check_no_extras("var", out=out)
    if correction is not _NOVALUE:
        if ddof != 0:
            raise ValueError("ddof and correction can't be provided simultaneously.")
        ddof = correction
    mask, keepdims = _mask(where), _keepdims(keepdims)
    count = _count_items(_shape(a), axis, keepdims, mask)
    if np.any(ddof >= count):
        warnings.warn("Degrees of freedom <= 0 for slice", RuntimeWarning, stacklevel=4)
    if mean is not _NOVALUE:
        centre = mean
    else:
        centre = sum(a, axis=axis, dtype=dtype, keepdims=True, where=where)
        centre = _divide_by_count(centre, count if np.ndim(count) == 0 else
                                  np.reshape(count, _shape(centre)))
    deviation = a - centre
    total = sum(np.square(deviation), axis=axis, dtype=dtype, keepdims=keepdims, where=where)
    return _divide_by_count(total, np.maximum(count - ddof, 0))


@register_function(np.std, examples=[_ex((3, 4)), _ex((3, 4), axis=1, ddof=1),
                                     _ex((3, 4), axis=0, where=np.array([[True], [True], [False]]))])
def std(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, *, where=_NOVALUE,
        mean=_NOVALUE, correction=_NOVALUE):
    """The square root of ``var`` (NumPy's std)."""
    return np.sqrt(var(a, axis=axis, dtype=dtype, out=out, ddof=ddof, keepdims=keepdims,
                       where=where, mean=mean, correction=correction))


@register_function(np.trace, examples=[_ex((3, 3)), _ex((3, 4), 1), _ex((2, 3, 3), 0, 1, 2)])
def trace(a, offset=0, axis1=0, axis2=1, dtype=None, out=None):
    _check_no_extras("trace", dtype=dtype, out=out)
    return sum(np.diagonal(a, offset, axis1, axis2), axis=-1)


# -- scans --------------------------------------------------------------------
def _cumsum_batched(tangents, primals, nb, axis):
    (t,) = tangents
    return np.cumsum(t, axis=axis + nb)


def _cumsum_transpose(argnum, out_bar, primals, nb, axis):
    return np.flip(np.cumsum(np.flip(out_bar, axis + nb), axis=axis + nb), axis + nb)


cumsum_rule = Linear("cumsum", lambda x, axis: np.cumsum(x, axis=axis), _cumsum_batched,
                     _cumsum_transpose)


def _scan_args(a, axis, name, dtype, out):
    _check_no_extras(name, out=out)
    a = _cast(a, dtype, name)
    if axis is None:
        return reshape(a, (-1,)), 0
    return a, normalize_axis(axis, np.ndim(a))


@register_function(np.cumsum, examples=[_ex((5,)), _ex((3, 4), axis=1)])
def cumsum(a, axis=None, dtype=None, out=None):
    a, axis = _scan_args(a, axis, "cumsum", dtype, out)
    return cumsum_rule(a, axis=axis)


def _cumprod_jvp(primals, tangents, out, nb, axis):
    (x,), (t,) = primals, tangents
    ax = axis + nb
    if _divisible(x):
        return out * np.cumsum(t / x, axis=ax)
    # exact recurrence when x has zeros: y'_i = y'_{i-1} x_i + y_{i-1} x'_i
    n = np.shape(x)[axis]
    steps, carry = [], None
    for i in range(n):
        xi, ti = _take(x, i, axis), _take(t, i, ax)
        carry = ti if carry is None else carry * xi + _take(out, i - 1, axis) * ti
        steps.append(carry)
    return np.stack(steps, axis=ax)


def _cumprod_vjp(argnum, out_bar, primals, out, nb, axis):
    (x,) = primals
    ax = axis + nb
    if _divisible(x):
        return np.flip(np.cumsum(np.flip(out_bar * out, ax), axis=ax), ax) / x
    # transpose of the recurrence, run backwards
    n = np.shape(x)[axis]
    grads, carry = [None] * n, None
    for i in range(n - 1, -1, -1):
        g = _take(out_bar, i, ax)
        carry = g if carry is None else g + carry * _take(x, i + 1, axis)
        grads[i] = carry if i == 0 else carry * _take(out, i - 1, axis)
    return np.stack(grads, axis=ax)


def _take(a, i, axis):
    return a[(slice(None),) * axis + (i,)]


def _divisible(x):
    """Whether the derivatives may divide by ``x``: a plain array without zeros. A traced
    ``x`` (a Hessian differentiates this derivative again) takes the recurrence: the
    derivative of ``out * (t / x)`` cancels two terms of size ``t x' / x``, which near a
    zero of x left an error of order 1 (forward Hessian 16 instead of 12, found by fuzzing)."""
    return getattr(x, "_ad_level", None) is None and bool(np.all(np.asarray(x) != 0))


cumprod_rule = Rule("cumprod", lambda x, axis: np.cumprod(x, axis=axis),
                    jvp=_cumprod_jvp, vjp=_cumprod_vjp)


@register_function(np.cumprod, examples=[_ex((5,)), _ex((3, 4), axis=1),
                                         lambda rng: ((np.array([2.0, 0.0, 3.0, -1.5]),), {})])
def cumprod(a, axis=None, dtype=None, out=None):
    a, axis = _scan_args(a, axis, "cumprod", dtype, out)
    return cumprod_rule(a, axis=axis)



# -- differences: slices and a subtraction (the transpose of cumsum, up to the ends) --
@register_function(np.diff, examples=[_ex((5,)), _ex((3, 4), 2, axis=0), _ex((2, 3), prepend=0.5),
                                      _ex((2, 3), 1, 0, (1, 3), (2, 3))])
def diff(a, n=1, axis=-1, prepend=_NOVALUE, append=_NOVALUE):
    if n == 0:
        return a
    if n < 0:
        raise ValueError("order must be non-negative but got " + repr(n))
    if np.ndim(a) == 0:
        raise ValueError("diff requires input that is at least one dimensional")
    axis = normalize_axis(axis, np.ndim(a))
    parts = [_diff_end(prepend, a, axis), a, _diff_end(append, a, axis)]
    parts = [p for p in parts if p is not None]
    if len(parts) > 1:
        a = np.concatenate(parts, axis=axis)
    lower = (slice(None),) * axis + (slice(None, -1),)
    upper = (slice(None),) * axis + (slice(1, None),)
    op = np.not_equal if getattr(_strip(a), "dtype", None) == np.bool_ else np.subtract
    for _ in range(int(n)):
        a = op(a[upper], a[lower])
    return a


def _diff_end(value, a, axis):
    if value is _NOVALUE:
        return None
    if getattr(value, "_ad_level", None) is None:
        value = np.asanyarray(value)
    if np.ndim(value) == 0:  # a scalar is broadcast to one slice along the axis, as NumPy does
        shape = list(np.shape(a))
        shape[axis] = 1
        value = np.broadcast_to(value, tuple(shape))
    return value


# -- statistics written with the primitives above ---------------------------------
@register_function(np.ptp, examples=[_ex((3, 4)), _ex((3, 4), axis=0),
                                     _ex((2, 3, 4), axis=(0, 2), keepdims=True)])
def ptp(a, axis=None, out=None, keepdims=_NOVALUE):
    _check_no_extras("ptp", out=out)
    keepdims = False if keepdims is _NOVALUE else bool(keepdims)
    axis = _axis_arg(axis)
    return max_rule(a, axis=axis, keepdims=keepdims) - min_rule(a, axis=axis, keepdims=keepdims)


def _example_average(shape, axis, weights_shape, **kwargs):
    def make(rng):  # positive weights: a weight sum near zero would make a poor test point
        return ((rng.standard_normal(shape), axis, rng.uniform(0.5, 1.5, weights_shape)), kwargs)
    return make


@register_function(np.average, examples=[_ex((3, 4)), _ex((3, 4), 0, keepdims=True),
                                         _example_average((3, 4), 1, (4,)),
                                         _example_average((2, 3), None, (2, 3), returned=True),
                                         _example_average((2, 3, 4), [2, 0], (4, 2), keepdims=True)])
def average(a, axis=None, weights=None, returned=False, *, keepdims=_NOVALUE):
    """NumPy's ``average``; traced ``weights`` are differentiated too (the normaliser included)."""
    a = _as_operand(a)
    if axis is not None:
        axis = tuple(normalize_axis(ax, np.ndim(a)) for ax in np.atleast_1d(axis))
    keep = {} if keepdims is _NOVALUE else {"keepdims": keepdims}
    if weights is None:
        avg = mean(a, axis=axis, **keep)
        scl = _strip(avg).dtype.type(np.size(_strip(a)) / np.size(_strip(avg)))
    else:
        w = _average_weights(_as_operand(weights), a, axis)
        a_dtype, w_dtype = _strip(a).dtype, _strip(w).dtype
        result_dtype = (np.result_type(a_dtype, w_dtype, "f8") if a_dtype.kind in "biu"
                        else np.result_type(a_dtype, w_dtype))
        a, w = _cast_to(a, result_dtype), _cast_to(w, result_dtype)  # NumPy's dtype=result_dtype
        scl = sum(w, axis=axis, **keep)
        if np.any(_strip(scl) == 0.0):
            raise ZeroDivisionError("Weights sum to zero, can't be normalized")
        avg = sum(a * w, axis=axis, **keep) / scl
    if not returned:
        return avg
    if np.shape(scl) != np.shape(avg):
        scl = np.broadcast_to(scl, np.shape(avg)) * 1  # (a new array, as NumPy's copy)
    return avg, scl


def _as_operand(x):
    return x if getattr(x, "_ad_level", None) is not None else np.asanyarray(x)


def _cast_to(x, dtype):
    return x if _strip(x).dtype == dtype else x.astype(dtype)


def _average_weights(w, a, axis):
    """NumPy's checks of ``weights``, and ``weights`` set up to broadcast against ``a``."""
    if np.shape(a) == np.shape(w):
        return w
    if axis is None:
        raise TypeError("Axis must be specified when shapes of a and weights differ.")
    if np.shape(w) != tuple(np.shape(a)[ax] for ax in axis):
        raise ValueError("Shape of weights must be consistent with shape of a along specified axis.")
    w = transpose(w, tuple(int(i) for i in np.argsort(axis)))
    return reshape(w, tuple(n if ax in axis else 1 for ax, n in enumerate(np.shape(a))))


def _median_weights(x, out_kept, axes):
    """Weights of ``d median = sum(w * dx)``: each middle order statistic's share goes to the
    elements equal to it, split equally among ties (as for max)."""
    x = np.asarray(_strip(x))
    moved = np.moveaxis(x, axes, tuple(range(-len(axes), 0)))
    flat = moved.reshape(moved.shape[:moved.ndim - len(axes)] + (-1,))
    n = flat.shape[-1]
    middle = np.sort(flat, axis=-1)[..., [(n - 1) // 2, n // 2]]
    w = np.zeros(flat.shape, dtype=x.dtype)
    with np.errstate(invalid="ignore", divide="ignore"):  # a NaN slice: NaN weights (as max's)
        for j in range(2):
            hit = (flat == middle[..., j:j + 1]).astype(x.dtype)
            w += 0.5 * hit / np.add.reduce(hit, axis=-1, keepdims=True)
    return np.moveaxis(w.reshape(moved.shape), tuple(range(-len(axes), 0)), axes)


median_rule = Weighted("median", _reduce_primal(np.median), _median_weights)


@register_function(np.median, examples=[_ex((3, 4)), _ex((3, 4), axis=0), _ex((5,)),
                                        _ex((2, 3, 4), axis=(0, 2), keepdims=True)])
def median(a, axis=None, out=None, overwrite_input=False, keepdims=False):
    """The derivative takes the middle element(s), ties split equally (as for max)."""
    _check_no_extras("median", out=out)
    if np.size(_strip(a)) == 0:
        raise ValueError("np.median of an empty traced array has no derivative")
    return median_rule(a, axis=_axis_arg(axis), keepdims=bool(keepdims))
