"""A floor for the MLP benchmark: the leanest reverse-mode tape we could write in Python.

Not part of the library, and not a design to copy: it exists to measure what *any* tape
written in Python costs on the benchmark's MLP, beside the hand-written backprop and
``reversead``. It supports exactly the operations that loss uses (``@``, ``+``, ``-``,
``*``, ``/``, negation, tanh, exp, log, and ``np.sum``/``np.max`` with ``axis`` and
``keepdims``), and nothing a user of a real tape needs: no version counters (an in-place
write silently corrupts its gradients), no hooks, no ``retain_graph`` (the graph is
consumed), no ``no_grad``, no creation sites, no error messages, no higher order, no
dtype checks. Each op records a closure; backward walks a heap by creation order.

If this tape cannot reach a time target, no Python tape with PyTorch's semantics on top
of it will: what is left is interpreter work per op, not design.

>>> import numpy as np
>>> w = Var(np.array([1.0, 2.0]))
>>> out = np.sum(np.tanh(w) * 2.0)
>>> out.backward()
>>> bool(np.allclose(w.grad, 2 * (1 - np.tanh([1.0, 2.0]) ** 2)))
True
"""
from __future__ import annotations

import heapq
import itertools

import numpy as np

_order = itertools.count()


class Var:
    """A value with the closure that sends its cotangent to its parents."""

    __slots__ = ("data", "grad", "parents", "vjp", "seq")

    def __init__(self, data, parents=(), vjp=None):
        self.data, self.grad, self.parents, self.vjp = data, None, parents, vjp
        self.seq = next(_order)

    # -- NumPy dispatch: the few functions the benchmark's loss calls --
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        if ufunc is np.matmul:
            a, b = inputs
            return a.__matmul__(b) if isinstance(a, Var) else b.__rmatmul__(a)
        (x,) = inputs
        d = x.data
        if ufunc is np.tanh:
            y = np.tanh(d)
            return Var(y, (x,), lambda g: (g * (1 - y * y),))
        if ufunc is np.exp:
            y = np.exp(d)
            return Var(y, (x,), lambda g: (g * y,))
        if ufunc is np.log:
            return Var(np.log(d), (x,), lambda g: (g / d,))
        return NotImplemented

    def __array_function__(self, func, types, args, kwargs):
        x = args[0]
        d, axis, keepdims = x.data, kwargs.get("axis"), kwargs.get("keepdims", False)
        if func is np.sum:
            def vjp(g):
                if axis is not None and not keepdims:
                    g = np.expand_dims(g, axis)
                return (np.broadcast_to(g, d.shape),)
            return Var(np.sum(d, axis=axis, keepdims=keepdims), (x,), vjp)
        if func is np.max:
            m = np.max(d, axis=axis, keepdims=True)

            def vjp(g):  # split between ties, as reversead does
                if axis is not None and not keepdims:
                    g = np.expand_dims(g, axis)
                hit = d == m
                return (hit * (g / hit.sum(axis, keepdims=True, dtype=d.dtype)),)
            return Var(m if keepdims or axis is None else np.squeeze(m, axis), (x,), vjp)
        return NotImplemented

    # -- operators --
    def __matmul__(self, other):
        a = self.data
        if isinstance(other, Var):
            b = other.data
            return Var(a @ b, (self, other), lambda g: (g @ b.T, a.T @ g))
        return Var(a @ other, (self,), lambda g: (g @ other.T,))

    def __rmatmul__(self, other):
        b = self.data
        return Var(other @ b, (self,), lambda g: (other.T @ g,))

    def _binary(self, other, op, da, db):
        a = self.data
        if isinstance(other, Var):
            b = other.data
            sa, sb = np.shape(a), np.shape(b)
            return Var(op(a, b), (self, other),
                       lambda g: (_unbroadcast(da(g, a, b), sa), _unbroadcast(db(g, a, b), sb)))
        sa = np.shape(a)
        return Var(op(a, other), (self,), lambda g: (_unbroadcast(da(g, a, other), sa),))

    def __add__(self, other):
        return self._binary(other, np.add, lambda g, a, b: g, lambda g, a, b: g)

    def __sub__(self, other):
        return self._binary(other, np.subtract, lambda g, a, b: g, lambda g, a, b: -g)

    def __mul__(self, other):
        return self._binary(other, np.multiply, lambda g, a, b: g * b, lambda g, a, b: g * a)

    def __truediv__(self, other):
        return self._binary(other, np.divide, lambda g, a, b: g / b, lambda g, a, b: -g * a / (b * b))

    def __neg__(self):
        return Var(-self.data, (self,), lambda g: (-g,))

    def backward(self):
        """Send d(self)/d(self) = 1 back to every leaf's ``.grad`` (consumes the graph)."""
        grads = {id(self): np.ones_like(self.data)}
        heap = [(-self.seq, id(self), self)]
        while heap:
            _, _, v = heapq.heappop(heap)
            g = grads.pop(id(v))
            if v.vjp is None:  # a leaf
                v.grad = g if v.grad is None else v.grad + g
                continue
            for parent, gp in zip(v.parents, v.vjp(g)):
                key = id(parent)
                if key in grads:
                    grads[key] = grads[key] + gp
                else:
                    grads[key] = gp
                    heapq.heappush(heap, (-parent.seq, key, parent))
            v.parents, v.vjp = (), None  # free what the closure kept


def _unbroadcast(g, shape):
    if g.shape == shape:
        return g
    lead = g.ndim - len(shape)
    if lead:
        g = g.sum(tuple(range(lead)))
    axes = tuple(i for i, s in enumerate(shape) if s == 1 and g.shape[i] != 1)
    return g.sum(axes, keepdims=True) if axes else g


def make_step(loss, params):
    """One differentiation of ``loss`` with this tape: fresh leaves, forward, backward."""
    def step():
        leaves = [Var(p) for p in params]
        out = loss(*leaves)
        out.backward()
        return out.data, tuple(v.grad for v in leaves)
    return step
