"""In-place writes: ``np.add.at``/``np.subtract.at``, ``np.put``, ``np.put_along_axis``,
``np.place``, ``np.putmask``, ``np.fill_diagonal``, ``np.copyto``; and ``np.bincount`` with
weights (a scatter-add into zeros).

The destination must be a traced array (``DualArray``, ``Tensor``): the write goes through its
``__setitem__``, so views, version counters (reversead) and a leaf's refusal of in-place ops
outside ``no_grad`` are those of ``x[i] = v``. Both the entries left untouched and the values
written carry derivatives. A plain ndarray destination cannot hold the derivative of a traced
value: dualad raises :class:`~dualad.DerivativeDropError`; reversead raises
:class:`~dualad.errors.InplaceError` (a RuntimeError, as ``Tensor.__array__`` does) for a Tensor
that requires grad and writes the data of one that does not.

``ufunc.at`` accumulates: ``np.add.at(a, i, b)`` is one linear primitive, ``add_at``, whose
primal is NumPy's own ``np.add.at`` (so repeated indices accumulate in NumPy's order, bit for
bit); its JVP is ``add_at`` of the tangents and its VJP a gather. ``np.subtract.at`` adds
``-b`` (``x - y`` is ``x + (-y)`` in IEEE arithmetic). Other ufuncs' ``.at`` raise
``MissingRuleError``.

The other writes find out where NumPy puts each value by running the NumPy function itself on
element numbers (a destination of -1s and the values' numbers ``0..m-1``), then gather the
values and assign them with one ``x[mask] = v``: NumPy's rules for cycling values, ``mode=``,
``wrap=``, broadcasting and errors hold unchanged, and where a position is written twice
(``np.put`` with a repeated index) the derivative follows the value NumPy keeps (the last).
"""
from __future__ import annotations

import numpy as np

from ..errors import DerivativeDropError, InplaceError
from .core import Linear, match_dtype, register_function
from .dispatch import AT_IMPLS, strip
from .shape import _ex, _flat_index, astype_rule, broadcast_to, check_index, gather_rule, reshape


def _traced(x) -> bool:
    return getattr(x, "_ad_level", None) is not None


def _operand(x):
    return x if _traced(x) else np.asarray(x)


# -- the accumulating primitive --------------------------------------------------------------
def _add_at_primal(a, values, index):
    """``a`` (..., n) with ``values`` (..., m) added at positions ``index`` (m,) of the last
    axis, in order (NumPy's ``np.add.at`` on a copy)."""
    if _traced(values) and not _traced(a):
        a = values._ad_lift(a)  # a constant receiving a traced value becomes traced
    out = a.copy()
    np.add.at(out, (Ellipsis, index), values)
    return out


def _add_at_batched(tangents, primals, nb, index):
    ta, tv = tangents
    a, values = primals
    if tv is None:
        return ta.copy()
    if ta is None:
        ta = np.zeros(tv.shape[:nb] + np.shape(a), dtype=getattr(a, "dtype", tv.dtype))
    return add_at_rule(ta, tv, index=index)


def _add_at_transpose(argnum, out_bar, primals, nb, index):
    if argnum == 0:
        return out_bar
    return match_dtype(gather_rule(out_bar, index=index), primals[1])


add_at_rule = Linear("add_at", _add_at_primal, _add_at_batched, _add_at_transpose)


# -- writing into plain arrays ----------------------------------------------------------------
def _plain_destination(name, values, write):
    """A plain destination receiving ``values``: refuse a derivative that would be dropped, else
    ``write(values one traced layer down)``."""
    for v in values:
        if not _traced(v):
            continue
        if getattr(v, "_ad_forward", False):
            raise DerivativeDropError(
                f"{name}: writing a {type(v).__name__} into a plain ndarray would drop its derivative "
                "(the array cannot hold it); write into a DualArray (e.g. the function's own traced "
                "array, or a copy of one), build the result out of place, or write value.primal")
        if getattr(v, "requires_grad", False):
            raise InplaceError(
                f"{name}: can't write a Tensor that requires grad into a plain ndarray: the gradient "
                "would be lost. Write into a Tensor (reversead.tensor(a)), build the result out of "
                "place, or write tensor.detach()")
    return write(*[v._ad_primal() if _traced(v) else v for v in values])


def _needs_array(name, a):
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name}: argument 1 must be numpy.ndarray (or a DualArray or Tensor), "
                        f"not {type(a).__name__}")


# -- ufunc.at ----------------------------------------------------------------------------------
_MISSING = object()


def _ufunc_at(ufunc, sign):
    name = f"np.{ufunc.__name__}.at"

    def at(a, indices, b=_MISSING, **kwargs):
        if kwargs:
            raise TypeError("ufunc.at() takes no keyword arguments")
        if b is _MISSING:
            raise ValueError("second operand needed for ufunc")
        index = check_index(indices)
        if not _traced(a):
            if not isinstance(a, np.ndarray):
                raise TypeError("first operand must be array")
            return _plain_destination(name, [b], lambda v: ufunc.at(a, index, v))
        if getattr(a, "_ad_scalar", False):
            raise TypeError(f"{name}: first operand must be array (a DualArray or Tensor), not a Dual")
        positions = _flat_index(a.shape, index)  # NumPy's IndexError for a bad index
        b = _operand(b)  # (a Python float adds in float64 into a float32 a: np.add.at's loop too)
        try:
            values = broadcast_to(b, positions.shape)
        except ValueError:
            raise ValueError("array is not broadcastable to correct shape") from None
        if sign < 0:
            values = -values
        flat = add_at_rule(reshape(a, -1), reshape(values, -1), index=positions.ravel())
        a[...] = reshape(flat, a.shape)
    at.__name__ = at.__qualname__ = f"{ufunc.__name__}_at"
    at.__doc__ = (f"``{name}(a, indices, b)`` on a traced ``a``: unbuffered, repeated indices "
                  "accumulate; ``a``'s derivative and ``b``'s both carry through.")
    return at


AT_IMPLS[np.add] = _ufunc_at(np.add, +1)
AT_IMPLS[np.subtract] = _ufunc_at(np.subtract, -1)


# -- writes located by running NumPy on element numbers ------------------------------------------
def _assign(a, sources, values):
    """``a[written] = ravel(values)[sources[written]]`` in place; ``sources`` (a's shape) holds
    the number of the value NumPy wrote at each position, -1 where it wrote nothing."""
    written = sources >= 0
    if not written.any():
        return
    picked = reshape(_operand(values), -1)[sources[written]]
    if np.ndim(a) == 0:
        a[...] = reshape(picked, ())
    else:
        a[written] = picked


def _numbers(values):
    return np.arange(np.size(strip(values)), dtype=np.intp).reshape(np.shape(strip(values)))


def _sources(shape):
    return np.full(shape, -1, dtype=np.intp)


def _in_place(name, a, values, numpy_write):
    """The common path: ``numpy_write(dst, vals)`` is the NumPy call (writing ``vals`` into
    ``dst``); run on numbers to locate the values, then written into traced ``a``."""
    if not _traced(a):
        _needs_array(name, a)
        return _plain_destination(name, [values], lambda v: numpy_write(a, v))
    if getattr(a, "_ad_scalar", False):
        raise TypeError(f"{name}: argument 1 must be an array (a DualArray or Tensor), not a Dual")
    sources = _sources(a.shape)
    numpy_write(sources, _numbers(values))
    _assign(a, sources, values)


@register_function(np.put)
def put(a, ind, v, mode="raise"):
    """``a.flat[ind] = v`` (v cycled; modes raise/wrap/clip); a repeated index keeps NumPy's
    last value, and so does the derivative."""
    ind = np.asarray(strip(ind))
    _in_place("np.put", a, v, lambda dst, vals: np.put(dst, ind, vals, mode=mode))


@register_function(np.put_along_axis)
def put_along_axis(arr, indices, values, axis):
    """``arr[index along axis] = values`` (values broadcast to ``indices``)."""
    indices = np.asarray(strip(indices))
    _in_place("np.put_along_axis", arr, values,
              lambda dst, vals: np.put_along_axis(dst, indices, vals, axis))


@register_function(np.place)
def place(arr, mask, vals):
    """``arr[mask] = vals`` with ``vals`` cycled over the True entries (C order)."""
    mask = np.asarray(strip(mask))
    _in_place("np.place", arr, vals, lambda dst, v: np.place(dst, mask, v))


@register_function(np.putmask)
def putmask(a, mask, values):
    """``a.flat[n] = values.flat[n % values.size]`` where ``mask.flat[n]``."""
    mask = np.asarray(strip(mask))
    _in_place("np.putmask", a, values, lambda dst, v: np.putmask(dst, mask, v))


@register_function(np.fill_diagonal)
def fill_diagonal(a, val, wrap=False):
    """The main diagonal of ``a`` (every axis of equal length, or 2-D) set to ``val`` (cycled)."""
    _in_place("np.fill_diagonal", a, val, lambda dst, v: np.fill_diagonal(dst, v, wrap=wrap))


@register_function(np.copyto)
def copyto(dst, src, casting="same_kind", where=True):
    """``dst[...] = src`` (broadcast) where ``where`` holds; NumPy's casting rule is checked."""
    where = np.asarray(strip(where))
    src = _operand(src)
    if _traced(dst):  # NumPy's errors (casting, shapes) before anything is written
        src_plain = np.asarray(strip(src))
        np.copyto(np.empty(np.shape(dst), strip(dst).dtype), src_plain, casting=casting, where=where)
    _in_place("np.copyto", dst, src,
              lambda d, v: np.copyto(d, v, casting=casting, where=where))


# -- bincount ------------------------------------------------------------------------------------
@register_function(np.bincount, examples=[_ex(np.array([0, 3, 1, 3, 3]), (5,)),
                                          _ex(np.array([2, 0, 2]), (3,), minlength=5)])
def bincount(x, /, weights=None, minlength=0):
    """With traced ``weights``: a scatter-add into float64 zeros (NumPy's order and dtype); ``x``
    (integers) has no derivative. Without weights, the counts (a plain array)."""
    x = np.asarray(strip(x))
    if weights is None or not _traced(weights):
        return np.bincount(x, weights=weights, minlength=minlength)
    counts = np.bincount(x, weights=np.zeros(np.shape(weights)), minlength=minlength)  # NumPy's errors
    w = weights if weights.dtype == np.float64 else astype_rule(weights, dtype=np.float64)
    return add_at_rule(np.zeros(counts.shape), reshape(w, -1), index=x.astype(np.intp).ravel())


#: the in-place functions above: they return None, so they have no ``examples=`` (which
#: differentiate a result); tests/test_assembly_scatter.py differentiates the written arrays
IN_PLACE_FUNCTIONS = (np.put, np.put_along_axis, np.place, np.putmask, np.fill_diagonal, np.copyto)
