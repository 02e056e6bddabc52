"""Array creation from a traced value: zeros_like, ones_like, full_like, empty_like, copy;
grids from traced values: linspace (traced start/stop) and meshgrid.

``zeros_like``, ``ones_like``, ``empty_like`` and ``full_like`` with a plain fill value are
*constants*: only the argument's shape and dtype are read, so they have no derivative. In
forward mode the result is a plain ndarray (as ``jnp.zeros_like`` under ``jax.jvp``); in
reverse mode a Tensor that does not require grad (as ``torch.zeros_like``), so that the
usual ways of filling it (``out[i] = ...``, ``out += x``) are recorded on the tape instead
of dropping the gradient into a plain array. ``full_like`` with a traced fill value carries
the fill value's derivative. ``copy`` is the identity, a differentiable copy.
"""
from __future__ import annotations

import operator

import numpy as np

from .core import register_function, top_traced
from .dispatch import strip
from .shape import _ex, astype_rule


def _constant_like(result, like):
    """``result`` (a plain array made from ``like``'s shape) as the mode of ``like`` wants it."""
    top = top_traced([like])
    if top is None or getattr(top, "_ad_forward", False):
        return result  # dualad (or nothing traced): a plain array
    return top._ad_lift(result)  # reversead: a Tensor that does not require grad


def _like_kwargs(dtype, order, subok, shape, device):
    kwargs = {"dtype": dtype, "order": order, "subok": subok, "shape": shape}
    if device is not None:
        kwargs["device"] = device  # (NumPy accepts only "cpu")
    return kwargs


@register_function(np.zeros_like, examples=[_ex((3, 4)), _ex((2, 3), shape=[3])])
def zeros_like(a, dtype=None, order="K", subok=True, shape=None, *, device=None):
    return _constant_like(np.zeros_like(strip(a), **_like_kwargs(dtype, order, subok, shape, device)), a)


@register_function(np.ones_like, examples=[_ex((3, 4)), _ex((2, 3), shape=[3, 1])])
def ones_like(a, dtype=None, order="K", subok=True, shape=None, *, device=None):
    return _constant_like(np.ones_like(strip(a), **_like_kwargs(dtype, order, subok, shape, device)), a)


@register_function(np.empty_like)  # no examples: its values are unspecified (tests/test_rules.py)
def empty_like(prototype, dtype=None, order="K", subok=True, shape=None, *, device=None):
    return _constant_like(np.empty_like(strip(prototype), **_like_kwargs(dtype, order, subok, shape, device)),
                          prototype)


# The fuzzer substitutes program values for float-array arguments, and a program value may be
# a constant (another zeros_like): np.full_like(constant, traced) cannot dispatch (below), so
# the examples keep the fill value a number; tests/test_more_functions.py differentiates it.
@register_function(np.full_like, examples=[_ex((3, 4), 1.5), _ex((2, 3), -2.0, shape=[2, 1, 3])])
def full_like(a, fill_value, dtype=None, order="K", subok=True, shape=None, *, device=None):
    kwargs = _like_kwargs(dtype, order, subok, shape, device)
    if top_traced([fill_value]) is None:
        return _constant_like(np.full_like(strip(a), fill_value, **kwargs), a)
    # a traced fill value: its derivative is broadcast. (NumPy dispatches np.full_like on ``a``
    # alone: with a plain ``a`` it writes the fill value into a plain array through np.copyto,
    # which refuses a traced value with MissingRuleError.)
    template = np.empty_like(strip(a), **kwargs)
    try:
        fits = np.broadcast_shapes(np.shape(fill_value), template.shape) == template.shape
    except ValueError:
        fits = False
    if not fits:
        raise ValueError(f"np.full_like: could not broadcast fill_value from shape "
                         f"{np.shape(fill_value)} into shape {template.shape}")
    filled = fill_value * np.ones(template.shape, dtype=np.result_type(strip(fill_value)))
    if filled.dtype != template.dtype:
        filled = filled.astype(template.dtype)  # NumPy casts the fill value to the result's dtype
    return filled


@register_function(np.copy, examples=[_ex((3, 4)), _ex(())])
def copy(a, order="K", subok=False):
    if order not in ("K", "A", "C", "F"):
        raise ValueError(f"np.copy: order must be one of 'K', 'A', 'C' or 'F', got {order!r}")
    if top_traced([a]) is None:
        return np.copy(a, order=order, subok=subok)
    if not hasattr(a, "astype"):  # a Dual (an immutable scalar): a new one
        return +a
    # a cast to the same dtype copies (primal and derivatives) and is the identity in both modes
    return astype_rule(a, dtype=strip(a).dtype)


# -- grids ----------------------------------------------------------------------------------
def _operand(x, weak=False):
    """A traced value as it is; a Python number as it is where ``weak`` (NumPy keeps it weak
    beside an array); anything else as an array."""
    if getattr(x, "_ad_level", None) is not None or weak and type(x) in (int, float):
        return x
    return np.asanyarray(x)


def _dtype(x):
    return np.asarray(strip(x)).dtype


def _in_dtype(x, dtype):
    if type(x) in (int, float):
        return np.asarray(x, dtype=dtype)
    return x if _dtype(x) == dtype else astype_rule(x, dtype=dtype)


@register_function(np.linspace, examples=[_ex((), (), 5), _ex((), (), 4, endpoint=False),
                                          _ex((2,), (3, 2), 3, axis=1), _ex(0.5, (), 1),
                                          _ex((), 1.5, 4, retstep=True), _ex((2,), (), 3, dtype="float64")])
def linspace(start, stop, num=50, endpoint=True, retstep=False, dtype=None, axis=0, *, device=None):
    """NumPy's linspace step by step (``arange(num) * step + start``, the last sample set to
    ``stop``), so its values; differentiable in ``start`` and ``stop``. An integer ``dtype``
    gives a plain (floored) array, as any cast to integers."""
    num = operator.index(num)
    if num < 0:
        raise ValueError(f"Number of samples, {num}, must be non-negative.")
    if device not in (None, "cpu"):
        raise ValueError(f'Device not understood. Only "cpu" is allowed, but received: {device}')
    div = (num - 1) if endpoint else num
    # NumPy converts Python numbers to arrays only where both are Python numbers
    weak = not (type(start) in (int, float) and type(stop) in (int, float))
    start, stop = _operand(start, weak), _operand(stop, weak)
    dt = np.result_type(strip(start), strip(stop), 1.0)  # (1.0: at least a float dtype)
    delta = _in_dtype(stop, dt) - _in_dtype(start, dt)
    y = np.arange(0, num, dtype=dt).reshape((-1,) + (1,) * np.ndim(delta))
    if div > 0:
        step = delta / div
        if np.any(np.asarray(strip(step)) == 0):
            y = y / div * delta  # (NumPy's order where the step underflows to 0)
        else:
            y = y * step
    else:
        step = np.nan
        y = y * delta
    y = y + start
    if _dtype(y) != dt:
        y = astype_rule(y, dtype=dt)  # (NumPy adds start into y in place)
    if endpoint and num > 1:
        last = np.broadcast_to(_in_dtype(stop, dt), np.shape(y)[1:])
        y = np.concatenate([y[:-1], np.reshape(last, (1,) + np.shape(last))], axis=0)
    if axis != 0:
        y = np.moveaxis(y, 0, axis)
    if dtype is not None and np.issubdtype(dtype, np.integer):
        y = np.floor(y).astype(dtype)  # (np.floor gives a plain array: no derivative)
    elif dtype is not None and _dtype(y) != np.dtype(dtype):
        y = astype_rule(y, dtype=np.dtype(dtype))
    return (y, step) if retstep else y


@register_function(np.meshgrid, examples=[_ex((3,), (2,)), _ex((2,), (3,), (2,), indexing="ij"),
                                          _ex((3,), (2,), sparse=True), _ex((4,))])
def meshgrid(*xi, copy=True, sparse=False, indexing="xy"):
    """NumPy's meshgrid: reshapes and broadcasts of the inputs (copies unless ``copy=False``)."""
    if indexing not in ("xy", "ij"):
        raise ValueError("Valid values for `indexing` are 'xy' and 'ij'.")
    ndim = len(xi)
    ones = (1,) * ndim
    output = [np.reshape(_operand(x), ones[:i] + (-1,) + ones[i + 1:]) for i, x in enumerate(xi)]
    if indexing == "xy" and ndim > 1:
        output[0] = np.reshape(output[0], (1, -1) + ones[2:])
        output[1] = np.reshape(output[1], (-1, 1) + ones[2:])
    if not sparse:
        shape = np.broadcast_shapes(*[np.shape(x) for x in output])
        output = tuple(x if np.shape(x) == shape else np.broadcast_to(x, shape) for x in output)
    if copy:
        output = tuple(np.copy(x) for x in output)
    return output
