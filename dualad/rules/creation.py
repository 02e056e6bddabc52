"""Array creation from a traced value: zeros_like, ones_like, full_like, empty_like, copy.

``zeros_like``, ``ones_like``, ``empty_like`` and ``full_like`` with a plain fill value are
*constants*: only the argument's shape and dtype are read, so they have no derivative. In
forward mode the result is a plain ndarray (as ``jnp.zeros_like`` under ``jax.jvp``); in
reverse mode a Tensor that does not require grad (as ``torch.zeros_like``), so that the
usual ways of filling it (``out[i] = ...``, ``out += x``) are recorded on the tape instead
of dropping the gradient into a plain array. ``full_like`` with a traced fill value carries
the fill value's derivative. ``copy`` is the identity, a differentiable copy.
"""
from __future__ import annotations

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
