"""``DualArray``: an ndarray of dual numbers carrying k tangent directions at once.

``primal`` has shape S, ``tangent`` has shape ``(k, *S)``. NumPy code runs
unchanged on it through ``__array_ufunc__`` and ``__array_function__``; each
call looks up the primitive table (``dualad.rules``) and nothing else.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from numpy.lib.mixins import NDArrayOperatorsMixin

from . import forward
from .errors import DerivativeDropError, ShapeError
from .rules import RULES
from .rules.dispatch import array_function, array_ufunc
from .rules.methods import ArrayMethods
from .rules.shape import check_index, getitem_rule, setitem_rule



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

    Examples
    --------
    >>> import numpy as np
    >>> x = DualArray(np.array([0.0, 1.0]), np.array([[1.0, 0.0], [0.0, 1.0]]))
    >>> np.sin(x).tangent          # k = 2 directions: the Jacobian's columns
    array([[1.        , 0.        ],
           [0.        , 0.54030231]])
    """

    __slots__ = ("primal", "_t", "tag")
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
            if tuple(np.shape(tangent)) == shape and shape[:1] != (1,):
                tangent = tangent.reshape((1,) + shape)
            if tuple(np.shape(tangent)[1:]) != shape or np.ndim(tangent) != len(shape) + 1:
                raise ShapeError(f"DualArray tangent must have shape (k, *{shape}) for a primal of "
                                 f"shape {shape}; got {tuple(np.shape(tangent))}")
            if isinstance(tangent, np.ndarray) and isinstance(primal, np.ndarray):
                tangent = tangent.astype(primal.dtype, copy=False)
        self.primal = primal
        self._t = tangent
        self.tag = tag

    @classmethod
    def _make(cls, primal, tangent, tag):
        self = object.__new__(cls)
        if not isinstance(primal, np.ndarray) and not getattr(primal, "_ad_forward", False):
            primal = np.asarray(primal)
        self.primal = primal
        self._t = tangent
        self.tag = tag
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
        self._drop("float()")

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
        result = setitem_rule(self, value, index=check_index(index))
        if not getattr(result, "_ad_forward", False):  # a lower-tag value was written
            result = DualArray._make(result, np.zeros((self.k,) + self.shape, self.dtype), self.tag)
        if result.tag != self.tag:  # written value was of a newer tag: self becomes one too
            self.primal, self._t, self.tag = result.primal, result._t, result.tag
        else:
            self.primal, self._t = result.primal, result._t

    def copy(self):
        return DualArray._make(_copy(self.primal), _copy(self._t), self.tag)

    def _ad_lift(self, x):
        """A constant ``x`` as a DualArray of this tag (zero tangent)."""
        zeros = np.zeros((self.k,) + tuple(np.shape(x)), dtype=self._t.dtype)
        return DualArray._make(x, zeros, self.tag)

    def _ad_integer_cast(self, dtype):
        self._drop(f".astype({dtype})")  # (ArrayMethods.astype: a cast to a non-float dtype)


def _copy(x):
    return x.copy()




_ADD, _SUB, _MUL, _DIV, _NEG = (RULES[n] for n in ("add", "subtract", "multiply", "divide", "negative"))
forward.DualArray = DualArray
