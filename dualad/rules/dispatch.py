"""NEP 13/18 dispatch shared by every traced type (DualArray, Dual, reversead.Tensor).

A ufunc call or NumPy function call on a traced value is looked up in the
primitive table and bound; anything without a rule raises a clear error instead
of NumPy's generic message or a silently dropped derivative.
"""
from __future__ import annotations

import numpy as np

from ..errors import MissingRuleError
from .core import FUNCTION_IMPLS, NONDIFF_UFUNCS, UFUNC_RULES


def strip(x):
    """The plain value under any number of traced layers (no derivative)."""
    while getattr(x, "_ad_level", None) is not None:
        x = x._ad_primal()
    return x


#: ufunc -> implementation of ``ufunc.at(a, indices[, b])`` for traced operands (filled by
#: ``dualad.rules.scatter``: np.add.at, np.subtract.at)
AT_IMPLS: dict = {}

_REDUCE = {np.add: np.sum, np.multiply: np.prod, np.maximum: np.max, np.minimum: np.min}
_ACCUMULATE = {np.add: np.cumsum, np.multiply: np.cumprod}


def _strip_out(kwargs, name):
    out = kwargs.pop("out", None)
    if out is not None:
        out = out if isinstance(out, tuple) else (out,)
        if len(out) != 1 or not getattr(out[0], "_ad_forward", False) and not hasattr(out[0], "_ad_level"):
            raise TypeError(f"{name}(..., out=) needs a traced output array (DualArray/Tensor) to "
                            "hold the derivative; drop out= or pass one")
        out = out[0]
    for key in ("where", "dtype", "casting", "order", "subok", "signature"):
        value = kwargs.pop(key, None)
        if key == "where" and value is not None and value is not True:
            raise TypeError(f"{name}(..., where=) is not supported for traced arrays")
        if key == "dtype" and value is not None:
            raise TypeError(f"{name}(..., dtype=) is not supported for traced arrays")
    return out


def array_ufunc(ufunc, method, inputs, kwargs, mode="dualad"):
    """``__array_ufunc__`` for every traced type: look up the ufunc's rule and bind it.

    A ufunc without a rule of its own may have an implementation in ``FUNCTION_IMPLS`` written
    with rules (several outputs as ``np.modf``, an integer operand as ``np.ldexp``, core
    dimensions as ``np.vecdot``): its remaining keywords (``axes``, ``axis``) go to that.
    """
    name = f"np.{ufunc.__name__}"
    if method == "__call__":
        impl = None if ufunc in UFUNC_RULES else FUNCTION_IMPLS.get(ufunc)
        if impl is not None and ufunc.nout > 1 and kwargs.get("out") is not None:
            raise TypeError(f"{name}(..., out=) is not supported for traced arrays ({ufunc.nout} "
                            "outputs): drop out=")
        out = _strip_out(kwargs, name) if kwargs else None
        if impl is not None:
            result = impl(*inputs, **kwargs)
        elif kwargs:
            raise TypeError(f"{name}: unsupported keyword arguments {sorted(kwargs)} for traced arrays")
        elif ufunc in NONDIFF_UFUNCS:
            result = ufunc(*[strip(x) for x in inputs])
        else:
            rule = UFUNC_RULES.get(ufunc)
            if rule is None:
                raise MissingRuleError(f"{name} is not differentiable by {mode} yet: no rule in "
                                       "dualad/rules (add one there, or call it on .primal/.data)")
            result = rule(*inputs)
        if out is not None:
            out[...] = result
            return out
        return result
    if method == "at":
        impl = AT_IMPLS.get(ufunc)
        if impl is None:
            raise MissingRuleError(f"{name}.at is not differentiable by {mode} yet "
                                   "(supported: np.add.at, np.subtract.at)")
        return impl(*inputs, **kwargs)
    if method in ("reduce", "accumulate") and kwargs.get("out") is not None:
        raise TypeError(f"{name}.{method}(..., out=) is not supported for traced arrays: drop out=")
    kwargs.pop("out", None)
    # ufunc.reduce and .accumulate default to axis 0 (np.sum, np.cumsum to all axes)
    if method == "reduce" and ufunc in _REDUCE:
        return _REDUCE[ufunc](inputs[0], **{"axis": 0, **kwargs})
    if method == "accumulate" and ufunc in _ACCUMULATE:
        return _ACCUMULATE[ufunc](inputs[0], **{"axis": 0, **kwargs})
    raise MissingRuleError(f"{name}.{method} is not differentiable by {mode} yet "
                           "(supported: calls, add/multiply/maximum/minimum.reduce, add/multiply.accumulate)")


def array_function(func, args, kwargs, mode="dualad"):
    """``__array_function__`` for every traced type: the table's implementation or a clear error."""
    impl = FUNCTION_IMPLS.get(func)
    if impl is None:
        module = getattr(func, "__module__", "numpy") or "numpy"
        prefix = "np." + ("linalg." if "linalg" in module else "fft." if "fft" in module else "")
        raise MissingRuleError(f"{prefix}{func.__name__} is not differentiable by {mode} yet: no rule "
                               "in dualad/rules (add one there, or call it on .primal/.data)")
    return impl(*args, **kwargs)
