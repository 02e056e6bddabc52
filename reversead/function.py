"""Custom differentiable operations: subclass ``Function`` (PyTorch's interface)."""
from __future__ import annotations

import numpy as np

from .errors import BackwardError
from .grad_mode import is_grad_enabled, no_grad
from .graph import Node
from .tensor import Tensor


class FunctionCtx:
    """The ``ctx`` passed to ``forward`` and ``backward``: saves values between them."""

    def __init__(self, needs_input_grad):
        self.needs_input_grad = needs_input_grad
        self._saved = ()
        self._versions = ()
        self._freed = False

    def save_for_backward(self, *tensors):
        """Keep tensors (or arrays) for ``backward``; in-place changes to them are detected."""
        self._saved = tensors
        self._versions = tuple((t._version, t._version[0]) if isinstance(t, Tensor) else None
                               for t in tensors)

    @property
    def saved_tensors(self) -> tuple:
        if self._freed:
            raise BackwardError("Trying to backward through the graph a second time (or directly access "
                                "saved tensors after they have already been freed). Specify "
                                "retain_graph=True if you need to backward a second time.")
        for i, v in enumerate(self._versions):
            if v is not None and v[0][0] != v[1]:
                raise BackwardError(f"one of the variables needed for gradient computation has been "
                                    f"modified by an inplace operation: saved tensor {i} is at version "
                                    f"{v[0][0]}; expected version {v[1]} instead")
        return self._saved


class FunctionNode(Node):
    __slots__ = ("function", "ctx", "shapes")

    def apply(self, g, needed, nb, create_graph):
        if self.freed:
            self._freed_error()
        if nb:  # a batch of cotangents: one user backward per row
            rows = [self.apply(g[b], needed, 0, create_graph) for b in range(np.shape(g)[0])]
            return [None if rows[0][i] is None else np.stack([r[i] for r in rows])
                    for i in range(len(needed))]
        g_in = g if isinstance(g, Tensor) else Tensor._make(g, False, None)
        if create_graph:
            grads = self.function.backward(self.ctx, g_in)
        else:
            with no_grad():
                grads = self.function.backward(self.ctx, g_in)
        grads = grads if isinstance(grads, tuple) else (grads,)
        if len(grads) != len(self.edges):
            raise BackwardError(f"function {self.name()} returned an incorrect number of gradients "
                                f"(expected {len(self.edges)}, got {len(grads)})")
        out = []
        for i, (gi, want, shape) in enumerate(zip(grads, needed, self.shapes)):
            if not want or gi is None:
                out.append(None)
                continue
            if isinstance(gi, Tensor) and not create_graph:
                gi = gi.data
            if tuple(np.shape(gi if not isinstance(gi, Tensor) else gi.data)) != shape:
                raise BackwardError(f"function {self.name()} returned an invalid gradient at index {i} "
                                    f"- got shape {tuple(np.shape(gi))} but expected shape {shape}")
            out.append(gi)
        return out

    def release(self):
        self.ctx._freed = True
        self.freed = True


class Function:
    """Base class of custom operations with hand-written derivatives.

    Write ``forward(ctx, *args)`` (arrays in: Tensor arguments arrive as Tensors
    with recording off) and ``backward(ctx, grad_output)`` returning one gradient
    per ``forward`` argument (None for non-differentiable ones); call ``Op.apply``.

    Examples
    --------
    >>> import numpy as np, reversead as rd
    >>> class Cube(rd.Function):
    ...     @staticmethod
    ...     def forward(ctx, x):
    ...         ctx.save_for_backward(x)
    ...         return x ** 3
    ...     @staticmethod
    ...     def backward(ctx, g):
    ...         (x,) = ctx.saved_tensors
    ...         return 3 * x ** 2 * g
    >>> x = rd.tensor(2.0, requires_grad=True)
    >>> Cube.apply(x).backward(); float(x.grad)
    12.0
    """

    _node_classes: dict = {}

    @staticmethod
    def forward(ctx, *args, **kwargs):
        raise NotImplementedError("subclasses of reversead.Function must implement forward(ctx, *args)")

    @staticmethod
    def backward(ctx, *grad_outputs):
        raise NotImplementedError("subclasses of reversead.Function must implement backward(ctx, grad)")

    @classmethod
    def apply(cls, *args, **kwargs):
        needs = tuple(isinstance(a, Tensor) and a.requires_grad for a in args)
        ctx = FunctionCtx(needs)
        with no_grad():
            out = cls.forward(ctx, *args, **kwargs)
        if isinstance(out, (tuple, list)):
            raise TypeError(f"{cls.__name__}.forward returned {len(out)} values; custom Functions with "
                            "several outputs are not supported by reversead (return one array/Tensor)")
        data = out.data if isinstance(out, Tensor) else np.asarray(out)
        if not (any(needs) and is_grad_enabled()):
            return Tensor._make(data, False, None)
        node_cls = Function._node_classes.get(cls)
        if node_cls is None:
            node_cls = type(f"{cls.__name__}Backward", (FunctionNode,), {"__slots__": ()})
            Function._node_classes[cls] = node_cls
        edges = tuple((a._fn if a._fn is not None else a) if need else None
                      for a, need in zip(args, needs))
        node = node_cls(edges)
        node.function, node.ctx = cls, ctx
        node.shapes = tuple(tuple(np.shape(a.data if isinstance(a, Tensor) else a)) for a in args)
        return Tensor._make(data, True, node)
