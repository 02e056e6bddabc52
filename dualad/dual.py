"""``Dual``: a scalar dual number ``primal + ε·tangent`` with ``ε² = 0``.

A plain Python object with ``__slots__``; every operation is the primitive
table's elementwise rule (``dualad.rules.elementwise``) applied by
``dualad.forward`` on scalars. The tangent is a float or a 1-D array of k
directions (vector mode). Comparisons act on the primal only, so branches never
depend on the derivative or on the chunk size.
"""
from __future__ import annotations

import numpy as np

from . import forward
from .array import as_float_array
from .rules.dispatch import array_function, array_ufunc
from .errors import DerivativeDropError
from .rules import strip
from .rules import elementwise as ew


class Dual:
    """A dual number ``primal + ε·tangent``.

    Examples
    --------
    >>> import numpy as np
    >>> d = Dual(3.0, 1.0)
    >>> e = d * d + np.sin(d)          # d/dx (x² + sin x) at 3 = 6 + cos 3
    >>> round(float(e.tangent), 6)
    5.010008
    """

    __slots__ = ("primal", "tangent", "tag")
    _ad_forward = True
    _ad_scalar = True

    def __init__(self, primal, tangent=0.0, tag: int = 0):
        if not getattr(primal, "_ad_forward", False):
            value = as_float_array(primal, "Dual primal")
            if value.ndim:
                raise TypeError(f"Dual holds a scalar primal, got shape {value.shape}; use DualArray")
            primal = value[()]
        if not getattr(tangent, "_ad_forward", False):
            t = as_float_array(tangent, "Dual tangent")
            if t.ndim > 1:
                raise TypeError(f"Dual tangent must be a float or a 1-D array of k directions, got shape {t.shape}")
            dtype = getattr(primal, "dtype", None)
            if dtype is not None and not getattr(primal, "_ad_forward", False):
                t = t.astype(dtype, copy=False)  # the primal's float dtype (float32 stays float32)
            tangent = t[()] if t.ndim == 0 else t
        self.primal = primal
        self.tangent = tangent
        self.tag = tag

    @classmethod
    def _make(cls, primal, tangent, tag):
        self = object.__new__(cls)
        self.primal = primal
        self.tangent = tangent
        self.tag = tag
        return self

    @property
    def _ad_level(self):
        return self.tag

    def _ad_primal(self):
        return self.primal

    _ad_apply = staticmethod(forward.apply)

    def __repr__(self) -> str:
        return f"Dual({self.primal!r}, {self.tangent!r})"

    def __format__(self, spec):
        """``f"{d:.3f}"`` formats the primal: printing a value being differentiated is display
        only (the string carries no derivative; ``float(d)`` still refuses)."""
        return format(self.primal, spec) if spec else str(self)

    # -- arithmetic: each operator is its ufunc's rule --
    def __add__(self, other):
        return ew.add(self, other)

    def __radd__(self, other):
        return ew.add(other, self)

    def __sub__(self, other):
        return ew.subtract(self, other)

    def __rsub__(self, other):
        return ew.subtract(other, self)

    def __mul__(self, other):
        return ew.multiply(self, other)

    def __rmul__(self, other):
        return ew.multiply(other, self)

    def __truediv__(self, other):
        return ew.divide(self, other)

    def __rtruediv__(self, other):
        return ew.divide(other, self)

    def __pow__(self, other):
        return ew.power(self, other)

    def __rpow__(self, other):
        return ew.power(other, self)

    def __mod__(self, other):
        return ew.remainder(self, other)

    def __rmod__(self, other):
        return ew.remainder(other, self)

    def __floordiv__(self, other):
        # piecewise constant: a plain number (derivative 0), as np.floor_divide gives
        return np.floor_divide(strip(self), strip(other))

    def __rfloordiv__(self, other):
        return np.floor_divide(strip(other), strip(self))

    def __divmod__(self, other):
        """``divmod(d, y)``: the plain quotient and the remainder with its derivative.

        >>> q, r = divmod(Dual(7.5, 1.0), 2.0)
        >>> float(q), float(r.primal), float(r.tangent)
        (3.0, 1.5, 1.0)
        """
        return self // other, self % other

    def __rdivmod__(self, other):
        return other // self, other % self

    def __neg__(self):
        return ew.negative(self)

    def __pos__(self):
        return self

    def __abs__(self):
        return ew.absolute(self)

    # -- comparisons on the primal --
    def __lt__(self, other):
        return strip(self) < strip(other)

    def __le__(self, other):
        return strip(self) <= strip(other)

    def __gt__(self, other):
        return strip(self) > strip(other)

    def __ge__(self, other):
        return strip(self) >= strip(other)

    def __eq__(self, other):
        return strip(self) == strip(other)

    def __ne__(self, other):
        return strip(self) != strip(other)

    __hash__ = None

    def __bool__(self):
        return bool(strip(self))

    # -- conversions that would drop the derivative --
    def __float__(self):
        raise DerivativeDropError("float() of a Dual would drop its derivative; use .primal for the "
                                  "value (inside a differentiated function, keep computing with the Dual)")

    def __int__(self):
        raise DerivativeDropError("int() of a Dual would drop its derivative; use .primal for the value")

    def __array__(self, dtype=None, copy=None):
        raise DerivativeDropError("np.asarray() of a Dual would drop its derivative; use .primal, "
                                  "or build a dualad.DualArray")

    # -- NumPy dispatch: np.sin(d) etc. --
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        return array_ufunc(ufunc, method, inputs, kwargs, "dualad")

    def __array_function__(self, func, types, args, kwargs):
        return array_function(func, args, kwargs, "dualad")

    @property
    def shape(self) -> tuple:
        return ()

    @property
    def ndim(self) -> int:
        return 0

    @property
    def dtype(self):
        return np.result_type(strip(self))

    def _ad_lift(self, x):
        from .array import DualArray
        k = np.shape(self.tangent)[:1] or (1,)
        return DualArray._make(x, np.zeros(k + np.shape(x), dtype=np.result_type(x, np.float32)), self.tag)


forward.Dual = Dual
