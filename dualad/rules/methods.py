"""ndarray-like methods shared by every traced array type (DualArray, reversead.Tensor).

Each method forwards to the NumPy function, which dispatches to the primitive table.
"""
from __future__ import annotations

import numpy as np

from .dispatch import strip
from .shape import astype_rule

_NOVALUE = np._NoValue  # (the default NumPy's reductions take as "not given")


def _given(**kwargs) -> dict:
    return {key: value for key, value in kwargs.items() if value is not None and value is not _NOVALUE}


class ArrayMethods:
    """Mixin: ``x.sum()``, ``x.reshape(...)``, ``x.T`` ... as on an ndarray."""

    __slots__ = ()

    @property
    def T(self):
        return np.transpose(self)

    def reshape(self, *shape, order="C"):
        return np.reshape(self, shape[0] if len(shape) == 1 else shape, order=order)

    def transpose(self, *axes):
        return np.transpose(self, axes[0] if len(axes) == 1 else (axes or None))

    def ravel(self, order="C"):
        return np.ravel(self, order)

    def flatten(self, order="C"):
        return np.ravel(self, order)

    def squeeze(self, axis=None):
        return np.squeeze(self, axis)

    def swapaxes(self, axis1, axis2):
        return np.swapaxes(self, axis1, axis2)

    # only the keywords given are passed on: np.sum(x, axis=..., keepdims=...) alone takes the
    # traced types' shortcut to the rule
    def sum(self, axis=None, dtype=None, out=None, keepdims=False, initial=_NOVALUE, where=_NOVALUE):
        return np.sum(self, axis=axis, keepdims=keepdims,
                      **_given(dtype=dtype, out=out, initial=initial, where=where))

    def mean(self, axis=None, dtype=None, out=None, keepdims=False, *, where=_NOVALUE):
        return np.mean(self, axis=axis, keepdims=keepdims, **_given(dtype=dtype, out=out, where=where))

    def prod(self, axis=None, dtype=None, out=None, keepdims=False, initial=_NOVALUE, where=_NOVALUE):
        return np.prod(self, axis=axis, keepdims=keepdims,
                       **_given(dtype=dtype, out=out, initial=initial, where=where))

    def max(self, axis=None, out=None, keepdims=False, initial=_NOVALUE, where=_NOVALUE):
        return np.max(self, axis=axis, keepdims=keepdims, **_given(out=out, initial=initial, where=where))

    def min(self, axis=None, out=None, keepdims=False, initial=_NOVALUE, where=_NOVALUE):
        return np.min(self, axis=axis, keepdims=keepdims, **_given(out=out, initial=initial, where=where))

    def var(self, axis=None, dtype=None, out=None, ddof=0, keepdims=False, *, where=_NOVALUE,
            mean=_NOVALUE, correction=_NOVALUE):
        return np.var(self, axis=axis, ddof=ddof, keepdims=keepdims,
                      **_given(dtype=dtype, out=out, where=where, mean=mean, correction=correction))

    def std(self, axis=None, dtype=None, out=None, ddof=0, keepdims=False, *, where=_NOVALUE,
            mean=_NOVALUE, correction=_NOVALUE):
        return np.std(self, axis=axis, ddof=ddof, keepdims=keepdims,
                      **_given(dtype=dtype, out=out, where=where, mean=mean, correction=correction))

    def cumsum(self, axis=None, dtype=None, out=None):
        return np.cumsum(self, axis=axis, **_given(dtype=dtype, out=out))

    def cumprod(self, axis=None, dtype=None, out=None):
        return np.cumprod(self, axis=axis, **_given(dtype=dtype, out=out))

    def trace(self, offset=0, axis1=0, axis2=1):
        return np.trace(self, offset, axis1, axis2)

    def diagonal(self, offset=0, axis1=0, axis2=1):
        return np.diagonal(self, offset, axis1, axis2)

    def clip(self, a_min=None, a_max=None):
        return np.clip(self, a_min, a_max)

    def dot(self, other):
        return np.dot(self, other)

    def astype(self, dtype, copy=True):
        """A cast. To a float dtype it is differentiable (the derivative is cast back to the
        input's dtype); to any other it has no derivative (see ``_ad_integer_cast``)."""
        dtype = np.dtype(dtype)
        if dtype.kind != "f":
            return self._ad_integer_cast(dtype)
        return astype_rule(self, dtype=dtype)

    def argmax(self, axis=None):
        return np.argmax(strip(self), axis=axis)

    def argmin(self, axis=None):
        return np.argmin(strip(self), axis=axis)
