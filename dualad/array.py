"""``DualArray``: an ndarray of dual numbers carrying k tangent directions at once.

``primal`` has shape S, ``tangent`` has shape ``(k, *S)``. NumPy code runs
unchanged on it through ``__array_ufunc__`` and ``__array_function__``; each
call looks up the primitive table (``dualad.rules``) and nothing else.

Views and in-place writes follow NumPy. Where NumPy returns a view (basic
indexing, reshape, transpose ...), the result's primal and tangent are views of
its base's primal and tangent (``dualad.forward.apply`` links the two arrays), and
``x[i] = v``, ``x += v`` and ``out=`` write into the existing buffers, so a write
through a view reaches its base in both. A write that cannot keep primal and
tangent in step raises :class:`InplaceError` instead.
"""
from __future__ import annotations

import weakref
from typing import Any

import numpy as np
from numpy.lib.mixins import NDArrayOperatorsMixin

from . import forward
from .errors import DerivativeDropError, InplaceError, PerturbationError, ShapeError
from .rules import RULES
from .rules.core import expand_to
from .rules.dispatch import array_function, array_ufunc
from .rules.methods import ArrayMethods
from .rules.shape import _check_unique, _is_basic, _prefixed, check_index, getitem_rule, setitem_rule


def as_float_array(x: Any, what: str = "input") -> np.ndarray:
    """``x`` as a float array: integers and booleans promote to float64, float32 stays."""
    arr = np.asarray(x)
    if arr.dtype.kind in "biu":
        return arr.astype(np.float64)
    if arr.dtype.kind == "c":
        raise TypeError(f"complex {what} (dtype {arr.dtype}) is not supported: dualad differentiates "
                        "real functions; split real and imaginary parts")
    if arr.dtype.kind != "f":
        raise TypeError(f"{what} must be a real number or array, got dtype {arr.dtype}")
    return arr


class DualArray(ArrayMethods, NDArrayOperatorsMixin):
    """An array of dual numbers ``primal + ε·tangent`` with k directions.

    Parameters
    ----------
    primal : array_like, shape S
    tangent : array_like, shape (k, *S) or S (one direction); default zeros, k = 1

    Both are wrapped without a copy (as ``np.asarray`` does): an in-place write to the
    DualArray writes into them.

    Examples
    --------
    >>> import numpy as np
    >>> x = DualArray(np.array([0.0, 1.0]), np.array([[1.0, 0.0], [0.0, 1.0]]))
    >>> np.sin(x).tangent          # k = 2 directions: the Jacobian's columns
    array([[1.        , 0.        ],
           [0.        , 0.54030231]])
    """

    # _base: the array whose buffers this one views (None: it owns them); _views: None until
    # something views this array, then its _Views. forward.apply links views to their base
    __slots__ = ("primal", "_t", "tag", "_base", "_views", "__weakref__")
    __array_priority__ = 100.0
    _ad_forward = True
    _ad_scalar = False

    def __init__(self, primal, tangent=None, tag: int = 0):
        if not getattr(primal, "_ad_forward", False):
            primal = as_float_array(primal, "DualArray primal")
        shape = tuple(np.shape(primal))
        if tangent is None:
            tangent = np.zeros((1,) + shape, dtype=primal.dtype)
        else:
            tangent = tangent if getattr(tangent, "_ad_forward", False) else np.asarray(tangent)
            t_shape = tuple(np.shape(tangent))
            # S itself is one direction (k = 1); otherwise (k, *S). A tangent of shape S = (1, 3)
            # is that one direction, never k = 1 directions of shape (3,)
            if t_shape == shape:
                tangent = tangent.reshape((1,) + shape)
            elif len(t_shape) != len(shape) + 1 or t_shape[1:] != shape:
                raise ShapeError(f"DualArray tangent must have shape (k, *{shape}) or {shape} for a "
                                 f"primal of shape {shape}; got {t_shape}")
            if isinstance(tangent, np.ndarray) and isinstance(primal, np.ndarray):
                tangent = tangent.astype(primal.dtype, copy=False)
        self.primal = primal
        self._t = tangent
        self.tag = tag
        self._base = self._views = None

    @classmethod
    def _make(cls, primal, tangent, tag):
        self = object.__new__(cls)
        if not isinstance(primal, np.ndarray) and not getattr(primal, "_ad_forward", False):
            primal = np.asarray(primal)
        self.primal = primal
        self._t = tangent
        self.tag = tag
        self._base = self._views = None
        return self

    # -- the tracing protocol shared with Dual and reversead.Tensor --
    @property
    def _ad_level(self):
        return self.tag

    def _ad_primal(self):
        return self.primal

    _ad_apply = staticmethod(forward.apply)

    # -- public attributes --
    @property
    def tangent(self):
        """The tangents, shape ``(k, *shape)``."""
        return self._t

    @property
    def shape(self) -> tuple:
        return tuple(np.shape(self.primal))

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def dtype(self):
        return self.primal.dtype

    @property
    def k(self) -> int:
        """Number of tangent directions carried."""
        return self._t.shape[0]

    def __len__(self) -> int:
        if not self.shape:
            raise TypeError("len() of unsized object (0-d DualArray)")
        return self.shape[0]

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    def __repr__(self) -> str:
        return f"DualArray(primal={self.primal!r}, tangent={self._t!r}, tag={self.tag})"

    # -- conversions that would drop the derivative --
    def _drop(self, what):
        raise DerivativeDropError(
            f"{what} of a DualArray would drop its derivative; use .primal for the value "
            "(inside a differentiated function, keep computing with the DualArray)")

    def __float__(self):
        # also reached by o[i] = x for a plain ndarray o (NumPy reports it as "setting an array
        # element with a sequence", with this error as the cause; the transforms re-raise it)
        self._drop("float() (or writing it into an element of a plain ndarray, o[i] = x)")

    def __int__(self):
        self._drop("int()")

    def __complex__(self):
        self._drop("complex()")

    def item(self, *args):
        self._drop(".item()")

    def tolist(self):
        self._drop(".tolist()")

    def __array__(self, dtype=None, copy=None):
        self._drop("np.asarray()/np.array()")

    def __bool__(self):
        return bool(self.primal)  # branches act on the primal

    def __hash__(self):
        raise TypeError("unhashable type: 'DualArray'")

    def __format__(self, spec):
        """``f"{x:.3f}"`` formats the primal, as NumPy formats the array (display only: the
        string carries no derivative; ``float(x)`` still refuses)."""
        return format(self.primal, spec) if spec else str(self)

    # -- NumPy dispatch --
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        return array_ufunc(ufunc, method, inputs, kwargs, "dualad")

    def __array_function__(self, func, types, args, kwargs):
        return array_function(func, args, kwargs, "dualad")

    # -- the common operators bind their rule directly (skipping NumPy's dispatch);
    # binding still defers to an outer traced type such as reversead.Tensor --
    def __add__(self, other):
        return _ADD(self, other)

    def __radd__(self, other):
        return _ADD(other, self)

    def __sub__(self, other):
        return _SUB(self, other)

    def __rsub__(self, other):
        return _SUB(other, self)

    def __mul__(self, other):
        return _MUL(self, other)

    def __rmul__(self, other):
        return _MUL(other, self)

    def __truediv__(self, other):
        return _DIV(self, other)

    def __rtruediv__(self, other):
        return _DIV(other, self)

    def __neg__(self):
        return _NEG(self)

    # -- indexing --
    def __getitem__(self, index):
        return getitem_rule(self, index=check_index(index))

    def __setitem__(self, index, value):
        """``x[index] = value``, written into x's primal and tangent buffers (NumPy's semantics,
        so a write through a view reaches its base)."""
        index = check_index(index)
        owner = self if self._base is None else self._base
        if owner._views is not None and owner._views.detached:
            owner._views.refuse_write()
        level = getattr(value, "_ad_level", None)
        if level is None or level < self.tag:  # a constant at this level
            v_primal, v_tangent = value, None
        elif level == self.tag and getattr(value, "_ad_forward", False):
            v_primal = value.primal
            v_tangent = value._t if type(value) is DualArray else forward._batched(value.tangent, value)
        else:  # a newer perturbation, or a reversead Tensor: x becomes a value of that level
            return self._assign_new_level(index, value)
        if _traced(v_primal) and not _traced(self.primal):
            return self._assign_new_level(index, value)  # a lower level's derivatives, plain buffers
        if v_tangent is not None and _traced(v_tangent) and not _traced(self._t):
            # nested (hessian): the tangent must carry the outer perturbation too; rebuilt if
            # nothing views x, else given it in place, or the write is refused
            if self is owner and (owner._views is None or not owner._views.alive()):
                return self._assign_new_level(index, value)
            if not owner._lift_tangent(v_tangent):
                return self._assign_new_level(index, value)  # (refuses, naming the problem)
        self._write(index, v_primal, v_tangent)

    def _write(self, index, v_primal, v_tangent):
        if _read_only(self.primal) or _read_only(self._t):
            if self._base is None and (self._views is None or not self._views.alive()):
                self._own_buffers()  # e.g. an input seeded by a transform: never the caller's array
                self._views = None
            elif _read_only(self._t) and not _read_only(self.primal):
                raise InplaceError("in-place write to a DualArray view whose tangent is read-only "
                                   "(a broadcast); write into a copy (x = x.copy())")
            # (a read-only primal view, e.g. of np.broadcast_to: NumPy's own error below)
        primal, tangent = self.primal, self._t
        k = tangent.shape[0]
        if v_tangent is not None and v_tangent.shape[0] != k:
            raise PerturbationError(f"setitem: the value carries {v_tangent.shape[0]} tangent directions, "
                                    f"the array {k}; all duals of one differentiation share the chunk size k")
        basic = _is_basic(index)
        if not basic:
            _check_unique(self.shape, index)
        primal[index] = v_primal  # first: NumPy checks shapes and writability before anything changes
        if basic:
            t_index = _prefixed(index, 1)
            ndim = np.broadcast_to(np.empty((), np.int8), self.shape)[index].ndim
        elif self.ndim == 0:  # a 0-d boolean mask: the one element or none (a 1-element view)
            tangent = tangent.reshape(k, 1)
            t_index = (slice(None), np.zeros(np.empty((), np.int8)[index].shape, np.intp))
            ndim = 1
        else:  # every advanced index as coordinates, adjacent after the k axis: (k, *selection)
            coords = np.unravel_index(np.arange(self.size).reshape(self.shape)[index], self.shape)
            t_index, ndim = (slice(None),) + coords, coords[0].ndim
        tangent[t_index] = 0 if v_tangent is None else _fit(v_tangent, ndim)

    def _assign_new_level(self, index, value):
        """``x[index] = value`` for a value whose derivatives x's buffers cannot hold (a newer
        differentiation's, or, in a nested one such as hessian, the outer one's in a plain
        tangent): x is rebuilt out of place and takes new buffers. Not while views of x are
        alive, or for a view: those would keep the old buffers."""
        if self._base is not None or (self._views is not None and self._views.alive()):
            raise InplaceError(
                f"in-place write of a {type(value).__name__} carrying derivatives of another "
                "differentiation level (a nested transform such as hessian, or a newer one) into a "
                "DualArray that shares memory with a view (x[i] = v, x += v, out=; through a view, "
                "or while one is alive): its buffers cannot hold them, and the view would not see "
                "new ones. Write into a copy (x = x.copy()), take the view after writing, or build "
                "the result out of place (np.where, np.concatenate)")
        self._views = None
        result = setitem_rule(self, value, index=index)
        if not getattr(result, "_ad_forward", False):  # a lower-tag value was written
            result = DualArray._make(result, np.zeros((self.k,) + self.shape, self.dtype), self.tag)
        if result.tag != self.tag:  # written value was of a newer tag: self becomes one too
            self.primal, self._t, self.tag = result.primal, result._t, result.tag
        else:
            self.primal, self._t = result.primal, result._t

    def __iadd__(self, other):
        self[...] = _ADD(self, other)
        return self

    def __isub__(self, other):
        self[...] = _SUB(self, other)
        return self

    def __imul__(self, other):
        self[...] = _MUL(self, other)
        return self

    def __itruediv__(self, other):
        self[...] = _DIV(self, other)
        return self

    # -- buffers shared with views (see forward.apply) --
    def _own_buffers(self) -> bool:
        """Copy read-only buffers (a caller's input, a broadcast) so that they can be written.
        Only for an array nothing views yet (a view would keep the old buffers)."""
        replaced = False
        if _read_only(self.primal):
            self.primal, replaced = np.array(self.primal, order="K"), True
        if _read_only(self._t):
            self._t, replaced = np.array(self._t, order="K"), True
        return replaced

    def _start_views(self) -> bool:
        """Before the first view of this array: writable buffers of its own, and the tangent
        laid out like the primal, so that a view of the primal is one of the tangent as well.
        Returns whether a buffer was replaced (the view must then be taken again)."""
        replaced = self._own_buffers()
        primal, tangent = self.primal, self._t
        if type(primal) is np.ndarray and type(tangent) is np.ndarray and not _same_layout(primal, tangent):
            self._t, replaced = _laid_out_like(tangent, primal), True
        self._views = _Views()
        return replaced

    def _lift_tangent(self, like) -> bool:
        """In a nested transform (hessian): give this array's plain tangent, and its live views',
        ``like``'s outer perturbation with zero derivatives, in place (the views keep seeing the
        same buffers), so that values carrying it can be written. False where it cannot: a
        tangent that is not one C-contiguous buffer, or a view that is not a view of it."""
        tangent = self._t
        if type(like) is not DualArray or type(tangent) is not np.ndarray or not tangent.flags.c_contiguous:
            return False
        views = [view for view in (ref() for ref in self._views.all) if view is not None]
        if any(type(view._t) is not np.ndarray or not np.may_share_memory(view._t, tangent)
               for view in views):
            return False
        k = like._t.shape[0]
        zeros = np.zeros((k,) + tangent.shape, tangent.dtype)  # each direction laid out as tangent
        lifted = self._t = DualArray._make(tangent, zeros, like.tag)
        lifted._views = _Views()
        start = tangent.__array_interface__["data"][0]
        for view in views:
            t = view._t
            offset = t.__array_interface__["data"][0] - start  # the same place in each direction
            z = np.ndarray((k,) + t.shape, zeros.dtype, buffer=zeros, offset=offset,
                           strides=zeros.strides[:1] + t.strides)
            view._t = DualArray._make(t, z, like.tag)
            view._t._base = lifted
            lifted._views.add(view._t)
        return True

    def copy(self):
        return DualArray._make(_copy(self.primal), _copy(self._t), self.tag)

    # ravel and flatten as ndarray's: np.ravel is a reshape in the table, which may return a
    # strided view where NumPy's ravel copies; writes through the result must not reach x
    def ravel(self, order="C"):
        """A view where NumPy's ``ravel`` gives one (a C-contiguous x), else a copy."""
        flat = np.ravel(self, order)
        return flat.copy() if flat._base is not None and not _c_contiguous(flat) else flat

    def flatten(self, order="C"):
        """A copy, always (as ``ndarray.flatten``)."""
        flat = np.ravel(self, order)
        return flat.copy() if flat._base is not None else flat

    def _ad_lift(self, x):
        """A constant ``x`` as a DualArray of this tag (zero tangent)."""
        zeros = np.zeros((self.k,) + tuple(np.shape(x)), dtype=self._t.dtype)
        return DualArray._make(x, zeros, self.tag)

    def _ad_integer_cast(self, dtype):
        self._drop(f".astype({dtype})")  # (ArrayMethods.astype: a cast to a non-float dtype)


class _Views:
    """The views of a DualArray (weak references: a view that is gone no longer counts)."""

    __slots__ = ("all", "detached")

    def __init__(self):
        self.all = []       # every view (a rebuilt array would leave them on its old buffers)
        self.detached = []  # (weakref, op): views of the primal whose tangent had to be a copy

    def add(self, view, detached_op=None):
        """Record ``view``; ``detached_op``: the op whose view of the primal has a copied tangent
        (e.g. np.flip, a gather), or that made it from such a view."""
        if len(self.all) >= 64:  # (drop dead entries now and then: a loop may make many views)
            self.all = [ref for ref in self.all if ref() is not None]
        ref = weakref.ref(view)
        self.all.append(ref)
        if detached_op is not None:
            self.detached.append((ref, detached_op))

    def alive(self) -> bool:
        self.all = [ref for ref in self.all if ref() is not None]
        return bool(self.all)

    def is_detached(self, view) -> bool:
        return any(ref() is view for ref, _ in self.detached)

    def refuse_write(self):
        """Raise while a detached view is alive: a write would change its primal, not its tangent."""
        self.detached = [(ref, op) for ref, op in self.detached if ref() is not None]
        if self.detached:
            raise InplaceError(
                f"in-place write to a DualArray that shares memory with the result of {self.detached[0][1]} "
                "while that result is alive: it views the primal, but its tangent is a copy, so the two "
                "would disagree. Copy that result (e.g. np.flip(x).copy()), or write first")


def _copy(x):
    return x.copy()


def _traced(x) -> bool:
    return getattr(x, "_ad_level", None) is not None


def _c_contiguous(x) -> bool:
    return x.flags.c_contiguous if type(x) is np.ndarray else _c_contiguous(x.primal)


def _read_only(x) -> bool:
    return type(x) is np.ndarray and not x.flags.writeable


def _fit(v_tangent, ndim):
    """A value's tangent (k, *v.shape) ready to assign to a selection of ``ndim`` axes."""
    extra = v_tangent.ndim - 1 - ndim
    if extra < 0:
        return expand_to(v_tangent, 1, ndim)
    if extra > 0:  # NumPy drops a value's leading axes of length 1
        return v_tangent.reshape(v_tangent.shape[:1] + v_tangent.shape[1 + extra:])
    return v_tangent


def _same_layout(primal, tangent) -> bool:
    """Each direction ``tangent[j]`` has ``primal``'s strides (in elements)."""
    return all(n == 1 or ps * tangent.itemsize == ts * primal.itemsize
               for n, ps, ts in zip(primal.shape, primal.strides, tangent.strides[1:]))


def _laid_out_like(tangent, primal):
    """A copy of ``tangent`` whose directions are laid out in memory as ``primal`` is: axes in
    the order of its strides, reversed where its strides are negative (k outermost)."""
    flips = (slice(None),) + tuple(slice(None, None, -1) if s < 0 else slice(None) for s in primal.strides)
    order = sorted(range(primal.ndim), key=lambda a: -abs(primal.strides[a]))
    perm = (0,) + tuple(1 + a for a in order)
    packed = np.ascontiguousarray(np.transpose(tangent[flips], perm))
    return np.transpose(packed, tuple(np.argsort(perm)))[flips]




_ADD, _SUB, _MUL, _DIV, _NEG = (RULES[n] for n in ("add", "subtract", "multiply", "divide", "negative"))
forward.DualArray = DualArray
