"""ndarray-like methods shared by every traced array type (DualArray, reversead.Tensor).

Each method forwards to the NumPy function, which dispatches to the primitive table.
"""
from __future__ import annotations

import numpy as np

from .dispatch import strip
from .shape import astype_rule


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

    def sum(self, axis=None, dtype=None, out=None, keepdims=False):
        return np.sum(self, axis=axis, dtype=dtype, out=out, keepdims=keepdims)

    def mean(self, axis=None, dtype=None, out=None, keepdims=False):
        return np.mean(self, axis=axis, dtype=dtype, out=out, keepdims=keepdims)

    def prod(self, axis=None, keepdims=False):
        return np.prod(self, axis=axis, keepdims=keepdims)

    def max(self, axis=None, keepdims=False):
        return np.max(self, axis=axis, keepdims=keepdims)

    def min(self, axis=None, keepdims=False):
        return np.min(self, axis=axis, keepdims=keepdims)

    def var(self, axis=None, ddof=0, keepdims=False):
        return np.var(self, axis=axis, ddof=ddof, keepdims=keepdims)

    def std(self, axis=None, ddof=0, keepdims=False):
        return np.std(self, axis=axis, ddof=ddof, keepdims=keepdims)

    def cumsum(self, axis=None):
        return np.cumsum(self, axis=axis)

    def cumprod(self, axis=None):
        return np.cumprod(self, axis=axis)

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
