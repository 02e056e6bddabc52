"""NaN-aware reductions: nansum, nanprod, nanmean, nanvar, nanstd, nanmax, nanmin, nanmedian,
the scans nancumsum and nancumprod, and the index functions nanargmax and nanargmin.
(nanquantile and nanpercentile are in ``statistics``.)

Each is NumPy's own algorithm written with the table's rules, so the values are NumPy's
(bit for bit) and the derivatives follow from the rules: a NaN entry is *selected away*
(``where(isnan(a), identity, a)``, a select, not a product), so it gets a zero derivative
even where its tangent or cotangent is itself NaN or infinite.

All-NaN slices (and slices with no degrees of freedom left for nanvar/nanstd) give NumPy's
value and warning (NaN and "All-NaN slice encountered", "Mean of empty slice", "Degrees of
freedom <= 0 for slice."; nansum 0 and nanprod 1 without a warning) and a zero derivative,
in both modes: the result there is a select of the constant NaN, and the counts divided by
are made safe first, so no ``0 * inf`` reaches the other entries. (JAX gives the same zero
from ``grad``; its ``jvp`` of nanmean gives NaN there, from ``0 / 0``.)

nanmedian is a reduction of its own (NumPy's value, weights 1/2 on the middle non-NaN
entries, ties split equally as for median). nanargmax and nanargmin return plain integers,
as argmax does, and raise NumPy's ValueError on an all-NaN slice.
"""
from __future__ import annotations

import warnings

import numpy as np

from .core import register_function
from .elementwise import where_rule
from .reductions import (_NOVALUE, Weighted, _axis_arg, _divide_by_count, _index_result, _keepdims,
                         _mask, _reduce_primal, _strip)
from .shape import _ex, astype_rule


def _nan_mask(a):
    """The NaN entries of ``a`` (plain booleans; NumPy's ``_replace_nan``)."""
    return np.isnan(np.asarray(_strip(a)))


def _replace_nan(a, value):
    """``(where(isnan(a), value, a), mask)``: the NaN entries selected away (zero derivative)."""
    mask = _nan_mask(a)
    return (where_rule(mask, value, a) if mask.any() else a), mask


def _check_inexact(dtype):
    if dtype is not None and not issubclass(np.dtype(dtype).type, np.inexact):
        raise TypeError("If a is inexact, then dtype must be inexact")


def _no_out(name, out):
    if out is not None:
        raise TypeError(f"np.{name}(..., out=) is not supported for traced arrays: drop out=")


def _nan_fill(result, bad):
    """``result`` with NaN where ``bad`` (a select: zero derivative there, none lost elsewhere)."""
    return where_rule(bad, np.nan, result) if np.any(bad) else result


@register_function(np.nansum, examples=[_ex((3, 4)), _ex((3, 4), axis=0),
                                        _ex((2, 3, 4), axis=(0, 2), keepdims=True),
                                        _ex((3, 4), axis=1, where=np.array([True, False, True, True]))])
def nansum(a, axis=None, dtype=None, out=None, keepdims=_NOVALUE, initial=_NOVALUE, where=_NOVALUE):
    """NumPy's nansum: the sum of ``a`` with its NaN entries replaced by 0."""
    _no_out("nansum", out)
    arr, _ = _replace_nan(a, 0.0)
    return np.sum(arr, axis=axis, dtype=dtype, keepdims=keepdims, initial=initial, where=where)


@register_function(np.nanprod, examples=[_ex((3, 4)), _ex((3, 4), axis=1),
                                         _ex((2, 3, 2), axis=(0, 2), keepdims=True)])
def nanprod(a, axis=None, dtype=None, out=None, keepdims=_NOVALUE, initial=_NOVALUE, where=_NOVALUE):
    """NumPy's nanprod: the product of ``a`` with its NaN entries replaced by 1."""
    _no_out("nanprod", out)
    arr, _ = _replace_nan(a, 1.0)
    return np.prod(arr, axis=axis, dtype=dtype, keepdims=keepdims, initial=initial, where=where)


def _counts(mask, axis, keepdims, where):
    """Non-NaN entries per result (intp), as NumPy's nanmean and nanvar count them."""
    selected = _mask(where)
    return np.sum(~mask, axis=_axis_arg(axis), dtype=np.intp, keepdims=keepdims,
                  where=True if selected is None else selected)


@register_function(np.nanmean, examples=[_ex((3, 4)), _ex((3, 4), axis=0),
                                         _ex((2, 3, 4), axis=(2, 0), keepdims=True)])
def nanmean(a, axis=None, dtype=None, out=None, keepdims=_NOVALUE, *, where=_NOVALUE):
    """NumPy's nanmean: the nansum over the count of non-NaN entries (NaN where that is 0)."""
    _no_out("nanmean", out)
    _check_inexact(dtype)
    arr, mask = _replace_nan(a, 0.0)
    keep = _keepdims(keepdims)
    count = _counts(mask, axis, keep, where)
    total = np.sum(arr, axis=axis, dtype=dtype, keepdims=keep, where=where)
    bad = count == 0
    result = _nan_fill(_divide_by_count(total, np.where(bad, 1, count)), bad)
    if np.any(bad):
        warnings.warn("Mean of empty slice", RuntimeWarning, stacklevel=4)
    return result


def _nanvar(a, axis, dtype, ddof, keepdims, where, mean, correction):
    """NumPy's nanvar up to the final NaN fill: ``(variance, bad)``, where the entries of
    ``bad`` (no degrees of freedom) hold a harmless 1 so that a square root stays finite."""
    _check_inexact(dtype)
    if correction is not _NOVALUE:
        if ddof != 0:
            raise ValueError("ddof and correction can't be provided simultaneously.")
        ddof = correction
    arr, mask = _replace_nan(a, 0.0)
    count = _counts(mask, axis, True, where)
    if mean is not _NOVALUE:
        centre = mean
    else:
        centre = np.sum(arr, axis=axis, dtype=dtype, keepdims=True, where=where)
        centre = _divide_by_count(centre, np.where(count == 0, 1, count))
    # NumPy subtracts into arr itself: the deviation keeps arr's dtype
    deviation = arr - centre
    if _strip(deviation).dtype != _strip(arr).dtype:
        deviation = astype_rule(deviation, dtype=_strip(arr).dtype)
    if mask.any():
        deviation = where_rule(mask, 0.0, deviation)
    total = np.sum(deviation * deviation, axis=axis, dtype=dtype, keepdims=keepdims, where=where)
    if not keepdims:
        count = count.reshape(np.shape(_strip(total)))
    dof = count - ddof
    bad = dof <= 0
    if np.any(bad):
        warnings.warn("Degrees of freedom <= 0 for slice.", RuntimeWarning, stacklevel=5)
        total = where_rule(bad, 1.0, total)
    return _divide_by_count(total, np.where(bad, 1, dof)), bad


@register_function(np.nanvar, examples=[_ex((3, 4)), _ex((3, 4), axis=0, ddof=1),
                                        _ex((2, 3, 4), axis=(0, 2), keepdims=True)])
def nanvar(a, axis=None, dtype=None, out=None, ddof=0, keepdims=_NOVALUE, *, where=_NOVALUE,
           mean=_NOVALUE, correction=_NOVALUE):
    """NumPy's nanvar: the variance of the non-NaN entries (NaN where ``count - ddof <= 0``)."""
    _no_out("nanvar", out)
    variance, bad = _nanvar(a, axis, dtype, ddof, _keepdims(keepdims), where, mean, correction)
    return _nan_fill(variance, bad)


@register_function(np.nanstd, examples=[_ex((3, 4)), _ex((3, 4), axis=1, ddof=1),
                                        _ex((2, 3, 4), axis=(0, 2), keepdims=True)])
def nanstd(a, axis=None, dtype=None, out=None, ddof=0, keepdims=_NOVALUE, *, where=_NOVALUE,
           mean=_NOVALUE, correction=_NOVALUE):
    """NumPy's nanstd: the square root of nanvar."""
    _no_out("nanstd", out)
    variance, bad = _nanvar(a, axis, dtype, ddof, _keepdims(keepdims), where, mean, correction)
    return _nan_fill(np.sqrt(variance), bad)


def _nan_extremum(name, reduce, fill):
    def impl(a, axis=None, out=None, keepdims=_NOVALUE, initial=_NOVALUE, where=_NOVALUE):
        _no_out(name, out)
        arr, mask = _replace_nan(a, fill)
        result = reduce(arr, axis=axis, keepdims=keepdims, initial=initial, where=where)
        if initial is not _NOVALUE:
            return result  # (NumPy's fmax.reduce: an all-NaN slice gives the initial value)
        bad = np.all(mask, axis=_axis_arg(axis), keepdims=_keepdims(keepdims))
        if np.any(bad):
            warnings.warn("All-NaN slice encountered", RuntimeWarning, stacklevel=4)
        return _nan_fill(result, bad)
    impl.__name__ = name
    impl.__doc__ = (f"NumPy's {name}: the {name[3:]} of the non-NaN entries, NaN for an all-NaN "
                    "slice; ties split the derivative equally, as for max.")
    return impl


_EXTREMUM_EXAMPLES = [_ex((3, 4)), _ex((3, 4), axis=1), _ex((2, 3, 4), axis=(0, 2), keepdims=True)]
register_function(np.nanmax, examples=_EXTREMUM_EXAMPLES)(_nan_extremum("nanmax", np.max, -np.inf))
register_function(np.nanmin, examples=_EXTREMUM_EXAMPLES)(_nan_extremum("nanmin", np.min, np.inf))


def _nanmedian_weights(x, out_kept, axes):
    """Weights of ``d nanmedian = sum(w * dx)``: 1/2 on each of the middle order statistics of
    the non-NaN entries (the same one twice for an odd count), split equally among the entries
    equal to it; 0 on NaN entries and on all-NaN slices."""
    x = np.asarray(_strip(x))
    moved = np.moveaxis(x, axes, tuple(range(-len(axes), 0)))
    flat = moved.reshape(moved.shape[:moved.ndim - len(axes)] + (-1,))
    n = np.sum(~np.isnan(flat), axis=-1, keepdims=True)
    middle_at = np.concatenate([np.maximum(n - 1, 0) // 2, n // 2], axis=-1)
    middle_at = np.minimum(middle_at, max(flat.shape[-1] - 1, 0))
    middle = np.take_along_axis(np.sort(flat, axis=-1), middle_at, axis=-1)  # (NaNs sort last)
    w = np.zeros(flat.shape, dtype=x.dtype)
    for j in range(2):
        hit = (flat == middle[..., j:j + 1]).astype(x.dtype)  # (NaN equals nothing)
        w += 0.5 * hit / np.maximum(np.add.reduce(hit, axis=-1, keepdims=True), 1)
    return np.moveaxis(w.reshape(moved.shape), tuple(range(-len(axes), 0)), axes)


nanmedian_rule = Weighted("nanmedian", _reduce_primal(np.nanmedian), _nanmedian_weights)


@register_function(np.nanmedian, examples=[_ex((3, 4)), _ex((3, 4), axis=0), _ex((5,)),
                                           _ex((2, 3, 4), axis=(0, 2), keepdims=True)])
def nanmedian(a, axis=None, out=None, overwrite_input=False, keepdims=_NOVALUE):
    """NumPy's nanmedian (its value and warning); the derivative takes the middle non-NaN
    entries, ties split equally (as for median)."""
    _no_out("nanmedian", out)
    if np.size(_strip(a)) == 0:
        raise ValueError("np.nanmedian of an empty traced array has no derivative")
    mask = _nan_mask(a)
    # NaN entries stay NaN (the value is NumPy's) but lose whatever tangent they carried
    arr = where_rule(mask, np.nan, a) if np.any(mask) else a
    return nanmedian_rule(arr, axis=_axis_arg(axis), keepdims=_keepdims(keepdims))


@register_function(np.nancumsum, examples=[_ex((5,)), _ex((3, 4), axis=1), _ex((2, 3), axis=0, dtype="float64")])
def nancumsum(a, axis=None, dtype=None, out=None):
    """NumPy's nancumsum: the cumsum of ``a`` with its NaN entries replaced by 0 (a select)."""
    _no_out("nancumsum", out)
    arr, _ = _replace_nan(a, 0.0)
    return np.cumsum(arr, axis=axis, dtype=dtype)


@register_function(np.nancumprod, examples=[_ex((5,)), _ex((3, 4), axis=1), _ex((2, 3), axis=0, dtype="float64")])
def nancumprod(a, axis=None, dtype=None, out=None):
    """NumPy's nancumprod: the cumprod of ``a`` with its NaN entries replaced by 1 (a select)."""
    _no_out("nancumprod", out)
    arr, _ = _replace_nan(a, 1.0)
    return np.cumprod(arr, axis=axis, dtype=dtype)


for _func in (np.nanargmax, np.nanargmin):
    register_function(_func)(_index_result(_func))
