"""Assembling and selecting arrays: block, broadcast_arrays, atleast_3d, rollaxis,
matrix_transpose, unstack, resize, delete, insert, choose, compress, extract, partition,
apply_along_axis, apply_over_axes, piecewise.

Each is NumPy's own algorithm written with the table's rules, so the values are NumPy's bit
for bit and the derivatives follow:

* views stay views: ``rollaxis``/``matrix_transpose`` are transposes, ``unstack`` and
  ``broadcast_arrays`` basic indexing and ``broadcast_to``, ``atleast_3d`` a reshape;
* ops that only move or copy elements (``resize``, ``delete``, ``insert``, ``choose``,
  ``compress``) are ``Structural`` rules: NumPy's function is the primal, and applied to
  element numbers it gives the index map (JVP a gather, VJP a scatter-add);
* ``block`` is NumPy's recursive concatenation, ``extract`` a ``take`` of the raveled array,
  ``partition`` a ``take_along_axis`` of the permutation that NumPy's partition applied (the
  derivative follows the entries, as ``np.sort``'s; a tie is a kink), and ``apply_along_axis``, ``apply_over_axes`` and
  ``piecewise`` call the user's functions on traced slices and stack or write the results.

NumPy's errors are NumPy's own: the NumPy function is first run on stand-ins of the same
shapes (zero-stride placeholders, element numbers), which also reports bad arguments.
"""
from __future__ import annotations

import collections.abc

import numpy as np

from ..errors import DerivativeDropError
from .core import normalize_axis, register_function
from .dispatch import strip
from .shape import (Structural, _asarray_unless_traced, _atleast_3d, _ex, _structural, _traced,
                    astype_rule, broadcast_to, concatenate, moveaxis, reshape, setitem_rule, stack,
                    swapaxes, take, take_along_axis, transpose)


def _placeholder(x):
    """A read-only stand-in with ``x``'s shape and dtype (no memory): for NumPy's checks."""
    if _traced(x):
        plain = np.asarray(strip(x))
        return np.broadcast_to(np.zeros((), plain.dtype), plain.shape)
    return x


def _dtype(x):
    return np.asarray(strip(x)).dtype


def _exn(*arg_makers, **kwargs):
    """An example whose shape tuples may sit inside lists (``[[(2, 2), (2, 3)], [(1, 5)]]``):
    each becomes a random normal array."""
    def fill(rng, a):
        if isinstance(a, tuple):
            return rng.standard_normal(a)
        if isinstance(a, list):
            return [fill(rng, b) for b in a]
        return a

    def make(rng):
        return tuple(fill(rng, a) for a in arg_makers), dict(kwargs)
    return make


# -- views ---------------------------------------------------------------------------------------
@register_function(np.atleast_3d, examples=[_ex((3,)), _ex((2, 3)), _ex(())])
def atleast_3d(*arys):
    """Shapes ``(1, 1, 1)``, ``(1, N, 1)``, ``(M, N, 1)`` for 0-, 1- and 2-d inputs (a reshape)."""
    res = tuple(_atleast_3d(_asarray_unless_traced(a)) for a in arys)
    return res[0] if len(res) == 1 else res


@register_function(np.rollaxis, examples=[_ex((2, 3, 4), 2), _ex((2, 3, 4), 0, 3), _ex((2, 3, 4), -1, 1)])
def rollaxis(a, axis, start=0):
    """NumPy's axis order, as a transpose (a view)."""
    np.rollaxis(_placeholder(a), axis, start)  # NumPy's AxisError messages
    n = np.ndim(a)
    axis = normalize_axis(axis, n)
    start = start + n if start < 0 else start
    if axis < start:
        start -= 1
    axes = list(range(n))
    axes.remove(axis)
    axes.insert(start, axis)
    return transpose(a, axes)


@register_function(np.matrix_transpose, examples=[_ex((3, 4)), _ex((2, 3, 4))])
def matrix_transpose(x, /):
    """The last two axes swapped (a view)."""
    np.matrix_transpose(_placeholder(x))  # "Input array must be at least 2-dimensional ..."
    return swapaxes(x, -1, -2)


@register_function(np.unstack, examples=[_ex((3, 4)), _ex((2, 3, 4), axis=1)])
def unstack(x, /, *, axis=0):
    """The slices along ``axis``, a tuple of views."""
    np.unstack(_placeholder(x), axis=axis)  # NumPy's errors (0-d, a bad axis)
    moved = moveaxis(x, axis, 0)
    return tuple(moved[i] for i in range(np.shape(moved)[0]))


@register_function(np.broadcast_arrays, examples=[_ex((3, 1), (4,)), _ex((2, 3), (2, 3)),
                                                  _ex((2, 1, 3), ())])
def broadcast_arrays(*args, subok=False):
    """Each argument broadcast to the common shape (views; arguments already of that shape are
    returned as they are, as NumPy does)."""
    args = [_asarray_unless_traced(a) for a in args]
    shape = np.broadcast_shapes(*[np.shape(a) for a in args])
    if all(np.shape(a) == shape for a in args):
        return tuple(args)
    return tuple(broadcast_to(a, shape) if _traced(a) else np.broadcast_to(a, shape, subok=subok)
                 for a in args)


# -- np.block: NumPy's recursive concatenation ---------------------------------------------------
def _map_leaves(arrays, fn):
    if type(arrays) is list:
        return [_map_leaves(a, fn) for a in arrays]
    if type(arrays) is tuple:
        return tuple(_map_leaves(a, fn) for a in arrays)  # (NumPy refuses tuples: its error)
    return fn(arrays)


def _leaves(arrays):
    if type(arrays) is list:
        return [leaf for a in arrays for leaf in _leaves(a)]
    return [arrays]


def _block(arrays, list_ndim, result_ndim, depth=0):
    if depth < list_ndim:
        parts = [_block(a, list_ndim, result_ndim, depth + 1) for a in arrays]
        return concatenate(parts, axis=-(list_ndim - depth))
    if not _traced(arrays):
        return np.array(arrays, ndmin=result_ndim, copy=None, subok=True)
    shape = np.shape(arrays)
    return reshape(arrays, (1,) * (result_ndim - len(shape)) + shape) if len(shape) < result_ndim else arrays


@register_function(np.block, examples=[_exn([(2,), (3,)]), _exn([[(2, 2), (2, 3)], [(1, 5)]]),
                                       _exn([[(2, 2), np.ones((2, 1))], [(1, 2), (1, 1)]]),
                                       _exn([[[(2,)], [(2,)]]]), _ex((2, 3))])
def block(arrays):
    """NumPy's algorithm: the innermost lists are concatenated along the last axis, the next
    along the second last, and so on, after each block is given the result's dimensions."""
    np.block(_map_leaves(arrays, _placeholder))  # NumPy's errors: depths, tuples, shapes
    list_ndim, first = 0, arrays
    while type(first) is list:
        list_ndim, first = list_ndim + 1, first[0]
    result_ndim = max([list_ndim] + [np.ndim(leaf) for leaf in _leaves(arrays)])
    result = _block(arrays, list_ndim, result_ndim)
    if list_ndim == 0:  # a lone array: a copy (as NumPy's)
        result = result.copy()
    return result


# -- element moves: NumPy's function is the primal, its index map the derivative ----------------
resize_rule = _structural(np.resize, examples=[_ex((3,), [2, 4]), _ex((2, 3), 4), _ex((2, 3), [2, 2])])
delete_rule = _structural(np.delete, examples=[_ex((5,), 2), _ex((3, 4), [0, 2], axis=1),
                                               _ex((3, 4), np.array([True, False, True]), axis=0)])

insert_rule = Structural("insert", lambda arr, values, obj, axis: np.insert(arr, obj, values, axis=axis))


@register_function(np.insert, examples=[_ex((5,), 2, (1,)), _ex((3, 4), [1, 3], (3, 2), axis=1),
                                        _ex((3, 4), 1, (4,), axis=0), _ex((4,), [0, 0, 4], ())])
def insert(arr, obj, values, axis=None):
    """``values`` (cast to ``arr``'s dtype, broadcast as NumPy does) inserted before ``obj``."""
    arr, values = _asarray_unless_traced(arr), _asarray_unless_traced(values)
    np.insert(_placeholder(arr), strip(obj), _placeholder(values), axis=axis)  # NumPy's errors
    dtype = _dtype(arr)
    if _traced(values) and dtype != _dtype(values):
        if dtype.kind != "f":
            raise DerivativeDropError(f"np.insert: traced values inserted into an array of dtype {dtype} "
                                      "would be cast to it, dropping their derivative; make arr a float array")
        values = astype_rule(values, dtype=dtype)
    return insert_rule(arr, values, obj=strip(obj), axis=axis)


choose_rule = Structural("choose", lambda *choices, a, mode: np.choose(a, choices, mode=mode))


@register_function(np.choose, examples=[_exn(np.array([0, 2, 1, 0]), [(4,), (4,), (3, 4)]),
                                        _exn(np.array([[0, 3], [-1, 1]]), [(2, 2), (2,)], mode="wrap"),
                                        _exn(np.array([5, -2, 1]), [(3,), (3,)], mode="clip"),
                                        _ex(np.array([1, 0, 1]), (2, 3))])
def choose(a, choices, out=None, mode="raise"):
    """``choices[a[I]][I]`` (broadcast together; modes raise/wrap/clip); ``a`` has no derivative."""
    if out is not None:
        raise TypeError("np.choose(..., out=) is not supported for traced arrays: drop out=")
    a = np.asarray(strip(a))
    if _traced(choices):  # an array whose first axis lists the choices
        choices = [choices[i] for i in range(np.shape(choices)[0])]
    # (Python numbers stay numbers: NumPy's weak scalars keep float32 choices float32)
    choices = [c if _traced(c) or isinstance(c, (int, float)) else np.asarray(c) for c in choices]
    np.choose(a, [_placeholder(c) for c in choices], mode=mode)  # NumPy's errors
    return choose_rule(*choices, a=a, mode=mode)


compress_rule = Structural("compress", lambda a, condition, axis: np.compress(condition, a, axis=axis))


@register_function(np.compress, examples=[_ex(np.array([True, False, True]), (3, 4), axis=0),
                                          _ex(np.array([0, 1, 1, 0, 1]), (5,)),
                                          _ex(np.array([True, False]), (3, 4))])
def compress(condition, a, axis=None, out=None):
    """The slices along ``axis`` (the flattened array for None) where ``condition`` holds."""
    if out is not None:
        raise TypeError("np.compress(..., out=) is not supported for traced arrays: drop out=")
    condition = np.asarray(strip(condition))
    return compress_rule(_asarray_unless_traced(a), condition=condition, axis=axis)


@register_function(np.extract, examples=[_ex(np.array([[True, False, True, False], [False, True, True, True],
                                                       [False, False, False, True]]), (3, 4)),
                                         _ex(np.array([1, 0, 2]), (3,))])
def extract(condition, arr):
    """NumPy's ``take(ravel(arr), nonzero(ravel(condition))[0])``."""
    index = np.nonzero(np.ravel(strip(condition)))[0]
    return take(reshape(_asarray_unless_traced(arr), -1), index)


@register_function(np.partition, examples=[_ex((7,), 3), _ex((3, 5), [1, 3]), _ex((4, 3), 0, axis=0),
                                           _ex((2, 3), 4, axis=None)])
def partition(a, kth, axis=-1, kind="introselect", order=None):
    """NumPy's partition of the values; the derivative follows the entries NumPy puts at each
    place, as np.sort's does (ties are kinks)."""
    if order is not None:
        raise ValueError("np.partition(..., order=) needs a structured array; traced arrays have no fields")
    a = _asarray_unless_traced(a)
    if axis is None:
        a, axis = reshape(a, -1), -1
    plain = np.asarray(strip(a))
    values = np.partition(plain, strip(kth), axis=axis, kind=kind)  # NumPy's arrangement and errors
    # the entry of ``a`` at each place: the j-th smallest output is the j-th smallest input
    # (argpartition may arrange the entries differently: its permutation would not give NumPy's
    # values; ties are matched in order, as np.sort's stable argsort does)
    perm = np.empty(plain.shape, dtype=np.intp)
    np.put_along_axis(perm, np.argsort(values, axis=axis, kind="stable"),
                      np.argsort(plain, axis=axis, kind="stable"), axis=axis)
    return take_along_axis(a, perm, axis=axis)


# -- user functions on traced slices -------------------------------------------------------------
@register_function(np.apply_along_axis, examples=[_ex(np.cumsum, 1, (3, 4)), _ex(np.sum, 0, (3, 4)),
                                                  _ex(np.outer, -1, (2, 3), (3,))])
def apply_along_axis(func1d, axis, arr, *args, **kwargs):
    """NumPy's algorithm: ``func1d`` is called on each 1-d slice (a traced view) and the results
    are stacked in the slices' place."""
    arr = _asarray_unless_traced(arr)
    nd = np.ndim(arr)
    axis = normalize_axis(axis, nd)
    in_dims = list(range(nd))
    view = transpose(arr, in_dims[:axis] + in_dims[axis + 1:] + [axis])
    outer = np.shape(view)[:-1]
    inds = [ind + (Ellipsis,) for ind in np.ndindex(*outer)]
    if not inds:
        raise ValueError("Cannot apply_along_axis when any iteration dimensions are 0")
    results = [_asarray_unless_traced(func1d(view[ind], *args, **kwargs)) for ind in inds]
    res_shape = np.shape(results[0])
    dtype = _dtype(results[0])  # NumPy's buffer: the first result's shape and dtype
    results = [_fit(r, res_shape, dtype) for r in results]
    buff = reshape(stack(results), outer + res_shape)
    buff_dims = list(range(len(outer) + len(res_shape)))
    n_res = len(res_shape)
    perm = buff_dims[:axis] + buff_dims[len(buff_dims) - n_res:] + buff_dims[axis:len(buff_dims) - n_res]
    return transpose(buff, perm)


def _fit(r, shape, dtype):
    """A result as NumPy's ``buff[ind] = r`` stores it: broadcast to ``shape``, cast to ``dtype``."""
    if np.shape(r) != shape:
        try:
            np.broadcast_to(np.empty(np.shape(r), np.int8), shape)
        except ValueError:
            raise ValueError(f"could not broadcast input array from shape {np.shape(r)} into "
                             f"shape {shape}") from None
        r = broadcast_to(r, shape) if _traced(r) else np.broadcast_to(r, shape)
    if _dtype(r) != dtype:
        r = astype_rule(r, dtype=dtype) if _traced(r) else r.astype(dtype)
    return r


@register_function(np.apply_over_axes, examples=[_ex(np.sum, (2, 3, 4), [0, 2]), _ex(np.cumsum, (3, 4), 1),
                                                 _ex(np.mean, (2, 3), [1])])
def apply_over_axes(func, a, axes):
    """NumPy's algorithm: ``func(a, axis)`` for each axis in turn, a dropped axis put back."""
    val = _asarray_unless_traced(a)
    n = np.ndim(val)
    if np.array(axes).ndim == 0:
        axes = (axes,)
    for axis in axes:
        if axis < 0:
            axis = n + axis
        res = func(val, axis)
        if np.ndim(res) != np.ndim(val):
            res = np.expand_dims(res, axis)
            if np.ndim(res) != np.ndim(val):
                raise ValueError("function is not returning an array of the correct shape")
        val = res
    return val


@register_function(np.piecewise, examples=[
    _ex((6,), [np.array([True, True, False, False, False, True]),
               np.array([False, False, True, True, False, False])], [np.sin, np.exp, 0.5]),
    _ex((2, 3), [np.array([[True, False, True], [False, False, True]])], [np.tanh, np.negative]),
    _ex((), [np.array(True)], [np.cos, 0.0])])
def piecewise(x, condlist, funclist, *args, **kw):
    """NumPy's algorithm: ``y = zeros_like(x)``; for each condition, ``y[cond] = f(x[cond])``
    (a callable on the traced sub-array) or ``= f`` (a constant); a last function without a
    condition covers the rest. Overlapping conditions: the later wins, as in NumPy."""
    x = _asarray_unless_traced(x)
    if getattr(x, "_ad_scalar", False):
        x = reshape(x, ())  # a Dual: a 0-d DualArray (NumPy's result for a scalar is 0-d too)
    n2 = len(funclist)
    condlist = [strip(c) for c in condlist] if isinstance(condlist, list) else strip(condlist)
    if np.isscalar(condlist) or (not isinstance(condlist[0], (list, np.ndarray)) and np.ndim(x) != 0):
        condlist = [condlist]
    condlist = np.asarray(condlist, dtype=bool)
    n = len(condlist)
    if n == n2 - 1:  # the otherwise function
        condelse = ~np.any(condlist, axis=0, keepdims=True)
        condlist = np.concatenate([condlist, condelse], axis=0)
        n += 1
    elif n != n2:
        raise ValueError(f"with {n} condition(s), either {n} or {n + 1} functions are expected")
    y = np.zeros(np.shape(x), dtype=_dtype(x))
    if _traced(x):
        y = x._ad_lift(y)  # traced (zero derivative) wherever no function writes
    for cond, func in zip(condlist, funclist):
        if not isinstance(func, collections.abc.Callable):
            y = _write(y, _asarray_unless_traced(func), cond)
        else:
            vals = x[cond]
            if np.size(strip(vals)) > 0:
                y = _write(y, _asarray_unless_traced(func(vals, *args, **kw)), cond)
    return y


def _write(y, value, cond):
    """``y[cond] = value`` out of place; a 0-d ``y`` takes a basic index (its one entry)."""
    if np.ndim(y) == 0:
        if not cond:
            return y
        cond = ()
        if np.ndim(value) and np.size(strip(value)) == 1:
            value = reshape(value, ())
    return setitem_rule(y, value, index=cond)
