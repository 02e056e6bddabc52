"""Structural primitives: reshape, transpose, indexing, joining, selecting.

These are linear maps. The hot ones (reshape, transpose, basic indexing,
broadcast_to) have hand-written batched forms and transposes. Every other op that
only moves, copies or zeroes elements is a ``Structural`` rule: its derivative is
derived from an *index map* (the op applied to element numbers), so the JVP is a
gather and the VJP a scatter-add, and nothing is written twice. The rest are
composites of these.
"""
from __future__ import annotations

import inspect
from typing import Callable

import numpy as np

from .. import kernels
from .core import Linear, expand_to, match_dtype, normalize_axis, register_function, unbroadcast
from .dispatch import strip


def _zeros_like_batched(x_shape, nb_shape, like):
    return np.zeros(tuple(nb_shape) + tuple(x_shape), dtype=getattr(like, "dtype", float))


# -- gather / scatter-add along the last axis (each the other's transpose) ----
def _traced(x) -> bool:
    return getattr(x, "_ad_level", None) is not None


gather_rule = Linear(
    "gather", lambda flat, index: kernels.gather(flat, index),
    lambda tangents, primals, nb, index: gather_rule(tangents[0], index=index),
    lambda argnum, out_bar, primals, nb, index: scatter_rule(out_bar, index=index,
                                                             size=np.shape(primals[0])[-1]))
scatter_rule = Linear(
    "scatter_add", lambda values, index, size: kernels.scatter_add(values, index, size),
    lambda tangents, primals, nb, index, size: scatter_rule(tangents[0], index=index, size=size),
    lambda argnum, out_bar, primals, nb, index, size: gather_rule(out_bar, index=index))


# -- reshape / transpose / broadcast_to ---------------------------------------
def _reshape_batched(tangents, primals, nb, shape):
    (t,) = tangents
    return t.reshape(t.shape[:nb] + _as_shape(shape, primals[0]))


def _reshape_transpose(argnum, out_bar, primals, nb, shape):
    return out_bar.reshape(out_bar.shape[:nb] + np.shape(primals[0]))


def _as_shape(shape, x):
    shape = (shape,) if np.ndim(shape) == 0 else tuple(shape)
    size = int(np.prod(np.shape(x), dtype=np.int64))
    if -1 in shape:
        known = int(np.prod([n for n in shape if n != -1], dtype=np.int64))
        shape = tuple(size // max(known, 1) if n == -1 else n for n in shape)
    return tuple(int(n) for n in shape)


reshape_rule = Linear("reshape", lambda x, shape: np.reshape(x, shape),
                      _reshape_batched, _reshape_transpose)


def _perm(axes, ndim):
    return tuple(range(ndim))[::-1] if axes is None else tuple(normalize_axis(a, ndim) for a in axes)


def _transpose_batched(tangents, primals, nb, axes):
    (t,) = tangents
    perm = _perm(axes, np.ndim(primals[0]))
    return np.transpose(t, tuple(range(nb)) + tuple(a + nb for a in perm))


def _transpose_transpose(argnum, out_bar, primals, nb, axes):
    perm = _perm(axes, np.ndim(primals[0]))
    inverse = tuple(np.argsort(perm))
    return np.transpose(out_bar, tuple(range(nb)) + tuple(int(a) + nb for a in inverse))


transpose_rule = Linear("transpose", lambda x, axes: np.transpose(x, axes),
                        _transpose_batched, _transpose_transpose)


def _broadcast_batched(tangents, primals, nb, shape):
    (t,) = tangents
    t = expand_to(t, nb, len(shape))
    return np.broadcast_to(t, t.shape[:nb] + tuple(shape))


broadcast_to_rule = Linear(
    "broadcast_to", lambda x, shape: np.broadcast_to(x, shape), _broadcast_batched,
    lambda argnum, out_bar, primals, nb, shape: unbroadcast(out_bar, np.shape(primals[0]), nb))


# -- casts between float dtypes ------------------------------------------------
def _cast(x, dtype):
    return x.astype(dtype) if hasattr(x, "astype") else np.asarray(x, dtype)


#: ``x.astype(dtype)`` to a float dtype: linear, the JVP casts the tangents, the VJP casts the
#: cotangent back to the input's dtype (``.astype`` of a DualArray and of a Tensor)
astype_rule = Linear("astype", _cast,
                     lambda tangents, primals, nb, dtype: _cast(tangents[0], dtype),
                     lambda argnum, out_bar, primals, nb, dtype: match_dtype(out_bar, primals[0]))


# -- indexing -----------------------------------------------------------------
def _is_basic(index) -> bool:
    items = index if isinstance(index, tuple) else (index,)
    return all(i is None or i is Ellipsis or isinstance(i, (slice, int, np.integer)) for i in items)


def _prefixed(index, nb):
    items = index if isinstance(index, tuple) else (index,)
    return (slice(None),) * nb + items


def _getitem_batched(tangents, primals, nb, index):
    (t,) = tangents
    if _is_basic(index):
        return t[_prefixed(index, nb)]
    flat_index = _flat_index(np.shape(primals[0]), index)
    return gather_rule(t.reshape(t.shape[:nb] + (-1,)), index=flat_index.ravel()).reshape(
        t.shape[:nb] + flat_index.shape)


def _getitem_transpose(argnum, out_bar, primals, nb, index):
    x_shape = np.shape(primals[0])
    batch = out_bar.shape[:nb]
    if _is_basic(index):
        x_bar = _zeros_like_batched(x_shape, batch, out_bar)
        if _traced(out_bar):
            return setitem_rule(x_bar, out_bar, index=_prefixed(index, nb))
        x_bar[_prefixed(index, nb)] = out_bar
        return x_bar
    flat_index = _flat_index(x_shape, index).ravel()
    flat = scatter_rule(out_bar.reshape(batch + (-1,)), index=flat_index,
                        size=int(np.prod(x_shape, dtype=np.int64)))
    return flat.reshape(batch + x_shape)


def _flat_index(shape, index):
    return np.arange(int(np.prod(shape, dtype=np.int64))).reshape(shape)[index]


getitem_rule = Linear("getitem", lambda x, index: x[index], _getitem_batched, _getitem_transpose)


def check_index(index):
    """Indices must be plain integers/booleans/slices: a traced index has no derivative."""
    items = index if isinstance(index, tuple) else (index,)
    clean = []
    for item in items:
        while getattr(item, "_ad_level", None) is not None:
            item = item._ad_primal()
        if isinstance(item, np.ndarray) and item.dtype.kind == "f":
            raise IndexError("arrays used as indices must be of integer (or boolean) type, "
                             f"got {item.dtype}")
        clean.append(item)
    return tuple(clean) if isinstance(index, tuple) else clean[0]


# -- structural ops derived from an index map ---------------------------------
class Structural(Linear):
    """An op that only moves, copies or zeroes elements of its inputs.

    The op applied to element numbers ``1..N`` (0 where it inserts zeros) gives
    the index map; JVP = gather, VJP = scatter-add. ``index_static`` rewrites
    static arguments for the index computation (e.g. pad's constant to 0).
    """

    kind = "structural"

    def __init__(self, name: str, primal: Callable, index_static: Callable | None = None):
        self.index_static = index_static or (lambda static: static)
        super().__init__(name, primal, self._batched, self._transpose)

    def index_map(self, primals, static):
        numbers, offset = [], 1
        for x in primals:
            shape = np.shape(x)
            size = int(np.prod(shape, dtype=np.int64))
            numbers.append(np.arange(offset, offset + size, dtype=np.intp).reshape(shape))
            offset += size
        idx = np.asarray(self.primal(*numbers, **self.index_static(static))) - 1
        return idx, offset - 1

    def _batched(self, tangents, primals, nb, **static):
        idx, total = self.index_map(primals, static)
        ref = next(t for t in tangents if t is not None)
        batch = ref.shape[:nb]
        parts = [(t if t is not None else _zeros_like_batched(np.shape(x), batch, ref)).reshape(batch + (-1,))
                 for x, t in zip(primals, tangents)]
        parts.append(np.zeros(batch + (1,), dtype=ref.dtype))  # index -1 reads this zero
        flat = np.concatenate(parts, axis=-1) if len(parts) > 1 else parts[0]
        return gather_rule(flat, index=idx.ravel()).reshape(batch + idx.shape)

    def _transpose(self, argnum, out_bar, primals, nb, **static):
        idx, total = self.index_map(primals, static)
        batch = out_bar.shape[:nb]
        start = sum(int(np.prod(np.shape(x), dtype=np.int64)) for x in primals[:argnum])
        shape = np.shape(primals[argnum])
        size = int(np.prod(shape, dtype=np.int64))
        flat_idx = idx.ravel()
        keep = flat_idx >= 0
        flat_idx = np.where(keep, flat_idx - start, -1)
        keep &= (flat_idx >= 0) & (flat_idx < size)
        values = out_bar.reshape(batch + (-1,))
        if not keep.all():
            values = values[..., keep]
            flat_idx = flat_idx[keep]
        return scatter_rule(values, index=flat_idx, size=size).reshape(batch + shape)


def _structural(numpy_func, name=None, examples=(), index_static=None, primal=None):
    rule = Structural(name or numpy_func.__name__, primal or numpy_func, index_static)
    signature = inspect.signature(numpy_func)

    def impl(*args, **kwargs):
        # only the array is an input; shift/reps/k/axis... are static, even when positional
        bound = signature.bind(*args, **kwargs)
        array, *rest = bound.arguments.values()
        return rule(array, **dict(zip(list(bound.arguments)[1:], rest)))
    impl.__name__ = rule.name
    register_function(numpy_func, examples=examples)(impl)
    return rule


def _normal(*shape):
    return lambda rng: rng.standard_normal(shape)


def _ex(*arg_makers, **kwargs):
    """An example: each positional maker is a shape tuple (random normal) or a literal.

    Write static tuples (shapes, axes, reps, pad widths) as lists: a tuple means an array.
    """
    def make(rng):
        args = tuple(rng.standard_normal(a) if isinstance(a, tuple) else a for a in arg_makers)
        return args, dict(kwargs)
    return make


flip_rule = _structural(np.flip, examples=[_ex((3, 4)), _ex((3, 4), axis=1)])
roll_rule = _structural(np.roll, examples=[_ex((3, 4), 2), _ex((3, 4), -1, axis=0)])
tile_rule = _structural(np.tile, examples=[_ex((3,), 2), _ex((2, 3), [2, 1])])
repeat_rule = _structural(np.repeat, examples=[_ex((3,), 2), _ex((2, 3), [1, 2, 3], axis=1)])
diag_rule = _structural(np.diag, examples=[_ex((3,)), _ex((3, 3)), _ex((3,), 1)])
diagonal_rule = _structural(np.diagonal, examples=[_ex((3, 3)), _ex((2, 3, 3), 0, 1, 2)])
tril_rule = _structural(np.tril, examples=[_ex((3, 3)), _ex((3, 4), -1)])
triu_rule = _structural(np.triu, examples=[_ex((3, 3)), _ex((3, 4), 1)])


def _pad_index_static(static):
    static = dict(static)
    if static.get("mode", "constant") == "constant":
        static.pop("constant_values", None)  # inserted constants carry no derivative
    return static


pad_rule = Structural("pad", np.pad, _pad_index_static)


@register_function(np.pad, examples=[_ex((3,), 2), _ex((2, 3), [[1, 0], [2, 1]], constant_values=1.5),
                                     _ex((4,), 2, mode="reflect")])
def pad(array, pad_width, mode="constant", **kwargs):
    return pad_rule(array, pad_width=pad_width, mode=mode, **kwargs)


concatenate_rule = Structural("concatenate", lambda *xs, axis=0: np.concatenate(xs, axis=axis))


@register_function(np.concatenate, examples=[_ex([np.ones(2), np.arange(3.0)]),
                                             lambda rng: (([rng.standard_normal((2, 3)),
                                                            rng.standard_normal((2, 1))],),
                                                          {"axis": 1})])
def concatenate(arrays, axis=0, out=None, dtype=None, casting="same_kind"):
    if out is not None or dtype is not None:
        raise TypeError("np.concatenate(..., out=/dtype=) is not supported for traced arrays")
    if axis is None:
        return concatenate_rule(*[np.ravel(a) for a in arrays], axis=0)
    return concatenate_rule(*arrays, axis=axis)


# -- composites: written with the primitives above -----------------------------
def _fortran_layout(a) -> bool:
    """Whether ``a``'s values (its primal) are Fortran- but not C-contiguous: order 'A' is F."""
    flags = getattr(np.asarray(strip(a)), "flags", None)
    return flags is not None and flags.f_contiguous and not flags.c_contiguous


@register_function(np.reshape, examples=[_ex((3, 4), [4, 3]), _ex((3, 4), -1),
                                         _ex((2, 3, 2), [3, 4], order="F"), _ex((3, 4), [2, -1], order="A")])
def reshape(a, shape=None, order="C", *, newshape=None, copy=None):
    """Orders 'F' (and 'A' for Fortran-contiguous values) read and write in Fortran order: a
    C-order reshape between reversed axes, ``reshape(a.T, shape[::-1]).T``."""
    shape = shape if shape is not None else newshape
    if order == "A":
        order = "F" if _fortran_layout(a) else "C"
    if order == "C":
        return reshape_rule(a, shape=_as_shape(shape, a))
    if order == "F":
        flipped = reshape_rule(transpose(a), shape=_as_shape(shape, a)[::-1])
        return transpose(flipped)
    if order == "K":
        raise ValueError("order 'K' is not permitted for reshaping")
    raise ValueError(f"order must be one of 'C', 'F', 'A', or 'K' (got {order!r})")


@register_function(np.transpose, examples=[_ex((3, 4)), _ex((2, 3, 4), [1, 2, 0])])
def transpose(a, axes=None):
    return transpose_rule(a, axes=None if axes is None else tuple(axes))


@register_function(np.broadcast_to, examples=[_ex((3, 1), [2, 3, 4])])
def broadcast_to(array, shape, subok=False):
    shape = (shape,) if np.ndim(shape) == 0 else tuple(shape)
    return broadcast_to_rule(array, shape=shape)


def _memory_order(shape, strides):
    """The axes, outermost first, in which NumPy's iterator reads an array for order 'K'
    (``npyiter_find_best_axis_ordering``): an insertion sort by decreasing stride magnitude
    in which a zero stride (a broadcast or size-1 axis) orders nothing; negative strides are
    read as they run (ravel does not flip them)."""
    strides = [0 if n == 1 else st for n, st in zip(shape, strides)]
    perm = list(range(len(shape)))[::-1]  # fastest first
    for i in range(1, len(perm)):
        axis, place = perm[i], i
        for j in range(i - 1, -1, -1):
            if strides[axis] != 0 and strides[perm[j]] != 0:
                if abs(strides[perm[j]]) <= abs(strides[axis]):
                    break
                place = j
        perm.insert(place, perm.pop(i))
    return perm[::-1]


@register_function(np.ravel, examples=[_ex((3, 4)), _ex((2, 3, 2), order="F"), _ex((3, 2), order="K")])
def ravel(a, order="C"):
    """Order 'K' reads the values in the order they lie in memory, as NumPy's ravel does (the
    layout of the traced values, which is NumPy's for the same operations); 'A' as 'F' for
    Fortran-contiguous values, else as 'C'."""
    if order == "K":
        values = np.asarray(strip(a))
        axes = _memory_order(values.shape, values.strides)
        return reshape(transpose(a, axes), -1) if axes != sorted(axes) else reshape(a, -1)
    return reshape(a, -1, order=order)


@register_function(np.swapaxes, examples=[_ex((2, 3, 4), 0, 2)])
def swapaxes(a, axis1, axis2):
    perm = list(range(np.ndim(a)))
    i, j = normalize_axis(axis1, len(perm)), normalize_axis(axis2, len(perm))
    perm[i], perm[j] = perm[j], perm[i]
    return transpose(a, perm)


@register_function(np.moveaxis, examples=[_ex((2, 3, 4), 0, -1)])
def moveaxis(a, source, destination):
    ndim = np.ndim(a)
    src = [normalize_axis(s, ndim) for s in np.atleast_1d(source)]
    dst = [normalize_axis(d, ndim) for d in np.atleast_1d(destination)]
    if len(src) != len(dst):
        raise ValueError("`source` and `destination` arguments must have the same number of elements")
    perm = [n for n in range(ndim) if n not in src]
    for d, s in sorted(zip(dst, src)):
        perm.insert(d, s)
    return transpose(a, perm)


@register_function(np.squeeze, examples=[_ex((3, 1, 4)), _ex((1, 3, 1), axis=0)])
def squeeze(a, axis=None):
    return reshape(a, np.squeeze(np.empty(np.shape(a), dtype=np.int8), axis=axis).shape)


@register_function(np.expand_dims, examples=[_ex((3, 4), 1), _ex((3,), [0, 2])])
def expand_dims(a, axis):
    return reshape(a, np.expand_dims(np.empty(np.shape(a), dtype=np.int8), axis).shape)


@register_function(np.stack, examples=[_ex([np.ones(3), np.arange(3.0)]),
                                       lambda rng: (([rng.standard_normal((2, 3))] * 2,), {"axis": 2})])
def stack(arrays, axis=0, out=None, dtype=None, casting="same_kind"):
    arrays = list(arrays)
    if not arrays:
        raise ValueError("need at least one array to stack")
    shapes = {np.shape(a) for a in arrays}
    if len(shapes) != 1:
        raise ValueError(f"all input arrays must have the same shape, got {sorted(shapes)}")
    axis = normalize_axis(axis, np.ndim(arrays[0]) + 1)
    return concatenate([expand_dims(a, axis) for a in arrays], axis=axis, out=out, dtype=dtype)


@register_function(np.hstack, examples=[_ex([np.ones(2), np.arange(3.0)])])
def hstack(tup, *, dtype=None, casting="same_kind"):
    arrays = [atleast_1d(a) for a in tup]
    return concatenate(arrays, axis=0 if np.ndim(arrays[0]) == 1 else 1, dtype=dtype)


@register_function(np.vstack, examples=[_ex([np.ones(3), np.arange(3.0)])])
def vstack(tup, *, dtype=None, casting="same_kind"):
    return concatenate([atleast_2d(a) for a in tup], axis=0, dtype=dtype)


@register_function(np.atleast_1d, examples=[_ex(())])
def atleast_1d(*arys):
    res = [a if np.ndim(a) >= 1 else reshape(a, (1,)) for a in arys]
    return res[0] if len(res) == 1 else res


@register_function(np.atleast_2d, examples=[_ex((3,))])
def atleast_2d(*arys):
    res = [a if np.ndim(a) >= 2 else reshape(a, (1,) * (2 - np.ndim(a)) + np.shape(a)) for a in arys]
    return res[0] if len(res) == 1 else res


@register_function(np.split, examples=[_ex((6, 2), 3), _ex((5,), [1, 3])])
def split(ary, indices_or_sections, axis=0):
    return _split(np.split, ary, indices_or_sections, axis)


def _split(numpy_split, ary, indices_or_sections, axis):
    axis = normalize_axis(axis, np.ndim(ary))
    n = np.shape(ary)[axis]
    pieces = numpy_split(np.arange(n), indices_or_sections)  # NumPy's division points and errors
    out = []
    for piece in pieces:
        start = int(piece[0]) if len(piece) else n
        index = (slice(None),) * axis + (slice(start, start + len(piece)),)
        out.append(ary[index])
    return out


@register_function(np.array_split, examples=[_ex((5, 2), 3), _ex((7,), [2, 5]), _ex((2, 5), 2, axis=1)])
def array_split(ary, indices_or_sections, axis=0):
    return _split(np.array_split, ary, indices_or_sections, axis)


@register_function(np.hsplit, examples=[_ex((2, 4), 2), _ex((5,), [1, 3])])
def hsplit(ary, indices_or_sections):
    if np.ndim(ary) == 0:
        raise ValueError("hsplit only works on arrays of 1 or more dimensions")
    return split(ary, indices_or_sections, axis=1 if np.ndim(ary) > 1 else 0)


@register_function(np.vsplit, examples=[_ex((4, 2), 2), _ex((5, 2, 2), [1, 3])])
def vsplit(ary, indices_or_sections):
    if np.ndim(ary) < 2:
        raise ValueError("vsplit only works on arrays of 2 or more dimensions")
    return split(ary, indices_or_sections, axis=0)


def _asarray_unless_traced(a):
    return a if _traced(a) else np.asanyarray(a)


@register_function(np.column_stack, examples=[_ex([np.ones(3), np.arange(3.0)]),
                                              _ex([np.ones((3, 2)), np.arange(3.0)])])
def column_stack(tup):
    arrays = [_asarray_unless_traced(a) for a in tup]
    return concatenate([a if np.ndim(a) >= 2 else reshape(a, (-1, 1)) for a in arrays], axis=1)


def _atleast_3d(a):
    shape = np.shape(a)
    if len(shape) >= 3:
        return a
    return reshape(a, {0: (1, 1, 1), 1: (1,) + shape + (1,), 2: shape + (1,)}[len(shape)])


@register_function(np.dstack, examples=[_ex([np.ones(3), np.arange(3.0)]),
                                        _ex([np.ones((2, 3)), np.ones((2, 3, 2))])])
def dstack(tup):
    return concatenate([_atleast_3d(_asarray_unless_traced(a)) for a in tup], axis=2)


@register_function(np.append, examples=[_ex((2, 3), (4,)), _ex((2, 3), (1, 3), axis=0)])
def append(arr, values, axis=None):
    arr, values = _asarray_unless_traced(arr), _asarray_unless_traced(values)
    if axis is None:
        if np.ndim(arr) != 1:
            arr = ravel(arr)
        values = ravel(values)
        axis = np.ndim(arr) - 1
    return concatenate([arr, values], axis=axis)


# -- gathers written as indexing (whose transpose, a scatter-add, accumulates repeated indices) --
def _integer_indices(name, indices):
    plain = np.asarray(strip(indices))
    try:
        return plain.astype(np.intp, casting="same_kind")  # NumPy's rule (booleans are 0 and 1)
    except TypeError as err:
        raise TypeError(f"np.{name}: indices must be integers, got dtype {plain.dtype}") from err


@register_function(np.take, examples=[_ex((3, 4), np.array([0, 5, 5, 11])),
                                      _ex((3, 4), np.array([[2, 0], [2, 2]]), axis=1),
                                      _ex((5,), 3), _ex((3, 4), np.array([-1, 4]), axis=0, mode="wrap")])
def take(a, indices, axis=None, out=None, mode="raise"):
    if out is not None:
        raise TypeError("np.take(..., out=) is not supported for traced arrays")
    if not _traced(a):  # a plain array with traced indices: indices have no derivative
        return np.take(a, strip(indices), axis=axis, mode=mode)
    idx = _integer_indices("take", indices)
    if axis is None:
        a, axis = reshape(a, -1), 0
    axis = normalize_axis(axis, np.ndim(a))
    n = np.shape(a)[axis]
    if mode in ("wrap", "clip") and n == 0:
        raise IndexError("cannot do a non-empty take from an empty axes.")
    if mode == "wrap":
        idx = np.mod(idx, n)
    elif mode == "clip":
        idx = np.clip(idx, 0, n - 1)
    elif mode != "raise":
        raise ValueError(f"np.take: mode must be 'raise', 'wrap' or 'clip', got {mode!r}")
    return a[(slice(None),) * axis + (int(idx) if idx.ndim == 0 else idx,)]


@register_function(np.take_along_axis, examples=[_ex((3, 4), np.array([[3], [0], [3]]), axis=1),
                                                 _ex((3, 4), np.array([[2, 2, 0, 1]]), axis=0),
                                                 _ex((6,), np.array([5, 0, 5]), axis=None)])
def take_along_axis(arr, indices, axis=-1):
    if not _traced(arr):
        return np.take_along_axis(arr, strip(indices), axis=axis)
    indices = np.asarray(strip(indices))
    if indices.dtype.kind not in "iu":
        raise IndexError("`indices` must be an integer array")
    if axis is None:
        if indices.ndim != 1:
            raise ValueError("when axis=None, `indices` must have a single dimension.")
        arr, axis = reshape(arr, -1), 0
    axis = normalize_axis(axis, np.ndim(arr))
    if np.ndim(arr) != indices.ndim:
        raise ValueError("`indices` and `arr` must have the same number of dimensions")
    return arr[_along_axis_index(np.shape(arr), indices, axis)]


def _along_axis_index(shape, indices, axis):
    """NumPy's fancy index for take_along_axis: ``indices`` on ``axis``, open ranges elsewhere."""
    ones = (1,) * indices.ndim
    return tuple(indices if d == axis else np.arange(n).reshape(ones[:d] + (-1,) + ones[d + 1:])
                 for d, n in enumerate(shape))


@register_function(np.sort, examples=[_ex((3, 4)), _ex((3, 4), axis=0), _ex((2, 3), axis=None)])
def sort(a, axis=-1, kind=None, order=None, *, stable=None):
    """The derivative follows the permutation (a stable argsort of the values; a tie is a kink)."""
    if order is not None:
        raise ValueError("np.sort(..., order=) needs a structured array; traced arrays have no fields")
    np.sort(np.zeros(1), kind=kind, stable=stable)  # NumPy's errors for a wrong kind/stable
    if axis is None:
        a, axis = reshape(a, -1), -1
    perm = np.argsort(strip(a), axis=axis, kind="stable")
    return take_along_axis(a, perm, axis=axis)


# -- structural one-liners: their derivatives come from the index map ------------
fliplr_rule = _structural(np.fliplr, examples=[_ex((3, 4)), _ex((2, 3, 2))])
flipud_rule = _structural(np.flipud, examples=[_ex((3,)), _ex((3, 4))])
rot90_rule = _structural(np.rot90, examples=[_ex((3, 4)), _ex((3, 4), 3), _ex((2, 3, 4), -2, [2, 0])])
diagflat_rule = _structural(np.diagflat, examples=[_ex((3,)), _ex((2, 2), -1)])


# -- assignment: x[index] = v as a pure function of (x, v) ---------------------
def _setitem_primal(x, v, index):
    if getattr(v, "_ad_level", None) is not None and getattr(x, "_ad_level", None) is None:
        x = v._ad_lift(x)  # a constant x receiving a traced v becomes traced (zero derivative)
    out = x.copy()
    out[index] = v
    return out


def _check_unique(shape, index):
    if not _is_basic(index):
        positions = _flat_index(shape, index).ravel()
        if np.unique(positions).size != positions.size:
            raise IndexError("assignment x[index] = v with repeated indices keeps only the last value; "
                             "its derivative is ambiguous, so dualad/reversead refuse it (use "
                             "np.add.at-style accumulation or unique indices)")


def _setitem_batched(tangents, primals, nb, index):
    tx, tv = tangents
    x, v = primals
    _check_unique(np.shape(x), index)
    ref = tx if tx is not None else tv
    if tx is None:
        out_t = np.zeros(ref.shape[:nb] + np.shape(x), dtype=getattr(x, "dtype", ref.dtype))
    else:
        out_t = tx.copy()
    if getattr(tv, "_ad_level", None) is not None and getattr(out_t, "_ad_level", None) is None:
        out_t = tv._ad_lift(out_t)  # v's tangent is traced by an outer level (nesting): so is the result
    selected_ndim = np.ndim(np.empty(np.shape(x), dtype=np.int8)[index])
    out_t[_prefixed(index, nb)] = 0 if tv is None else expand_to(tv, nb, selected_ndim)
    return out_t


def _setitem_transpose(argnum, out_bar, primals, nb, index):
    x, v = primals
    if argnum == 0:
        g = out_bar.copy()
        g[_prefixed(index, nb)] = 0
        return g
    _check_unique(np.shape(x), index)
    return unbroadcast(out_bar[_prefixed(index, nb)], np.shape(v), nb)


setitem_rule = Linear("setitem", _setitem_primal, _setitem_batched, _setitem_transpose)
