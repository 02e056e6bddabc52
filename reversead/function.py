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
        self._non_differentiable = ()
        self.materialize_grads = True

    def mark_non_differentiable(self, *outputs):
        """Outputs of ``forward`` (the objects it returns) that get no gradient: they do not
        require grad, and ``backward`` receives zeros for them (as PyTorch: an argsort's
        indices, a mask)."""
        self._non_differentiable += outputs

    def set_materialize_grads(self, value: bool):
        """With False, ``backward`` receives None (not zeros) for an output whose gradient
        nothing computed: an unused output of several, or a non-differentiable one."""
        self.materialize_grads = bool(value)

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


class _OutputGrads:
    """The gradients of a several-output Function's outputs, a slot each (None: none yet).

    Each output's :class:`OutputNode` sends one filled slot to the Function's node, and the
    engine adds what arrives (``+`` merges the slots), as it adds any node's gradients.
    """

    __slots__ = ("slots",)

    def __init__(self, slots):
        self.slots = slots

    def __add__(self, other):
        return _OutputGrads(tuple(a if b is None else b if a is None else a + b
                                  for a, b in zip(self.slots, other.slots)))

    def __getitem__(self, row):  # one row of a batch of cotangents
        return _OutputGrads(tuple(None if s is None else s[row] for s in self.slots))

    def batch(self) -> int:
        return next(np.shape(s)[0] for s in self.slots if s is not None)


class OutputNode(Node):
    """Output ``index`` of a Function with several outputs: its gradient goes into that
    output's slot of the Function's node (the one edge). User code sees the Function's
    node as ``grad_fn`` of every output, as in PyTorch."""

    __slots__ = ("index", "count")

    def _public(self):
        return self.edges[0]._public()

    def apply(self, g, needed, nb, create_graph):
        slots = [None] * self.count
        slots[self.index] = g
        return (_OutputGrads(tuple(slots)),)


class FunctionNode(Node):
    __slots__ = ("function", "ctx", "shapes", "outputs")

    def apply(self, g, needed, nb, create_graph):
        if self.freed:
            self._freed_error()
        if nb:  # a batch of cotangents: one user backward per row
            batch = g.batch() if type(g) is _OutputGrads else np.shape(g)[0]
            rows = [self.apply(g[b], needed, 0, create_graph) for b in range(batch)]
            return [None if rows[0][i] is None else np.stack([r[i] for r in rows])
                    for i in range(len(needed))]
        g_out = self._grad_outputs(g)
        if create_graph:
            grads = self.function.backward(self.ctx, *g_out)
        else:
            with no_grad():
                grads = self.function.backward(self.ctx, *g_out)
        grads = grads if isinstance(grads, tuple) else (grads,)
        if len(grads) > len(self.edges) and all(gi is None for gi in grads[len(self.edges):]):
            grads = grads[:len(self.edges)]  # extra Nones (for defaulted arguments) are fine, as in PyTorch
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

    def _grad_outputs(self, g):
        """What ``backward`` receives: one gradient per output of ``forward`` (several
        outputs send theirs through their ``OutputNode``s, as ``_OutputGrads``)."""
        if self.outputs is None:  # one output
            return (g if isinstance(g, Tensor) else Tensor._make(g, False, None),)
        grads = []
        for gi, like in zip(g.slots, self.outputs):
            if gi is None and like is not None and self.ctx.materialize_grads:
                gi = np.zeros(*like)
            grads.append(gi if gi is None or isinstance(gi, Tensor) else Tensor._make(gi, False, None))
        return tuple(grads)

    def release(self):
        # as in PyTorch: what ``save_for_backward`` kept is dropped (reading ``saved_tensors``
        # later raises), and a Function that saved nothing can backward again
        ctx = self.ctx
        if ctx._saved:
            ctx._freed = True
            ctx._saved = ()


class Function:
    """Base class of custom operations with hand-written derivatives.

    Write ``forward(ctx, *args)`` (arrays in: Tensor arguments arrive as Tensors
    with recording off) and ``backward(ctx, *grad_outputs)`` returning one gradient
    per ``forward`` argument (None for non-differentiable ones); call ``Op.apply``.

    ``forward`` may return a tuple (or list) of outputs: ``apply`` returns as many
    Tensors, and ``backward`` receives a gradient per output, zeros for an output that
    nothing used (``ctx.set_materialize_grads(False)``: None). Outputs of an integer or
    bool dtype, and those passed to ``ctx.mark_non_differentiable``, do not require grad;
    other objects (not numbers or arrays) are returned as they are, with None for them
    in ``backward``.

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
        several = isinstance(out, (tuple, list))
        outs = tuple(out) if several else (out,)
        if not outs:
            raise TypeError(f"{cls.__name__}.forward returned no outputs (an empty {type(out).__name__})")
        datas = [_output_data(cls, o) for o in outs]
        if not several and datas[0] is None:
            raise TypeError(f"{cls.__name__}.forward must return an array, a number or a Tensor (or a "
                            f"tuple of outputs), got {type(out).__name__}")
        marked = {id(o) for o in ctx._non_differentiable}
        differentiable = [d is not None and d.dtype.kind == "f" and id(o) not in marked
                          for o, d in zip(outs, datas)]
        if not (any(needs) and is_grad_enabled() and any(differentiable)):
            results = [o if d is None else Tensor._make(d, False, None) for o, d in zip(outs, datas)]
            return _as_returned(out, results) if several else results[0]
        node_cls = Function._node_classes.get(cls)
        if node_cls is None:
            node_cls = type(f"{cls.__name__}Backward", (FunctionNode,), {"__slots__": ()})
            Function._node_classes[cls] = node_cls
        edges = tuple((a._fn if a._fn is not None else a) if need else None
                      for a, need in zip(args, needs))
        node = node_cls(edges)
        node.function, node.ctx = cls, ctx
        node.shapes = tuple(tuple(np.shape(a.data if isinstance(a, Tensor) else a)) for a in args)
        if not several:
            node.outputs = None
            return Tensor._make(datas[0], True, node)
        # (shape and dtype of each output, for the zeros of an unused one)
        node.outputs = tuple(None if d is None else (d.shape, d.dtype) for d in datas)
        results = []
        for i, (o, d, diff) in enumerate(zip(outs, datas, differentiable)):
            if d is None:
                results.append(o)
            elif not diff:
                results.append(Tensor._make(d, False, None))
            else:
                selector = OutputNode((node,))
                selector.index, selector.count = i, len(outs)
                results.append(Tensor._make(d, True, selector))
        return _as_returned(out, results)


def _as_returned(out, results):
    return list(results) if isinstance(out, list) else tuple(results)  # (a namedtuple: a tuple)


def _output_data(cls, out):
    """An output of ``forward`` as an ndarray; None for an object that is not a number,
    an array or a Tensor (returned as it is)."""
    if isinstance(out, Tensor):
        return out.data
    if getattr(out, "_ad_level", None) is not None:
        return out  # a DualArray: forward over reverse (hessian) runs forward on duals
    if isinstance(out, (np.ndarray, np.generic, int, float, bool)):
        data = np.asarray(out)
        if data.dtype.kind not in "biuf":
            raise TypeError(f"{cls.__name__}.forward returned an array of dtype {data.dtype}; outputs "
                            "must be numeric")
        return data
    return None
