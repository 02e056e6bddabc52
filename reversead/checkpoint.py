"""Gradient checkpointing: reverse mode in bounded memory by recomputing forward passes.

Backpropagation normally keeps every intermediate value that a VJP reads until the
backward pass reaches it, so the memory of ``loss.backward()`` grows with the depth
of the program. ``checkpoint(fn, *args)`` trades compute for memory: the values
inside ``fn`` are dropped as soon as ``fn`` returns, and ``fn`` is run a second time,
with recording on, when the backward pass reaches it. ``checkpoint_sequential``
applies that to a chain of blocks in segments of about √n blocks (Chen et al. 2016,
"Training Deep Nets with Sublinear Memory Cost"): the peak memory of a chain of n
blocks falls from O(n) to O(√n) for one extra forward pass.

Design (how it plugs into the tape)
-----------------------------------
* **Forward.** ``fn`` runs once with recording on, as any code would; the nodes it
  records are walked once (only the nodes created inside ``fn``, found by their
  sequence numbers) to learn every tensor the region depends on: the Tensor
  arguments *and* anything ``fn`` reads from its closure or keyword arguments
  (parameters, outer intermediates). Then that inner graph is dropped: the outputs
  are re-wrapped on one ``CheckpointBackward`` node whose edges are those external
  dependencies, and which keeps only ``fn``, its arguments and the metadata of the
  outputs. Everything ``fn`` computed inside is freed when it returns. (Running the
  forward under ``no_grad``, like PyTorch's reentrant variant, would save the cost of
  recording, but could not see closure parameters: ``grad()`` w.r.t. them and
  blocks whose input does not require grad would silently get no gradient. The
  recording costs a few microseconds per op, see ``benchmarks/bench_checkpoint.py``.)
* **Backward.** When the engine reaches the node, ``fn`` is re-run with recording on
  (NumPy's global RNG state restored, see below); each edge of the fresh graph that
  leaves the region is rewired to a small ``CheckpointInputBackward`` node that, for
  this inner pass, captures the gradient and stops; the engine backpropagates the
  incoming cotangents through the fresh graph (freeing it as it goes) and the
  captured gradients are handed to the outer engine as this node's input gradients.
  So the outer pass never sees more than one recomputed region at a time and
  ``backward()``, ``grad()``, ``backward(inputs=...)``, batched cotangents
  (``jacobian``), hooks and nesting (a checkpoint inside a checkpoint) all work.
* **create_graph.** Supported: the inner pass records too, and the capture nodes
  turn into identities afterwards, so the recorded derivative graph is connected to
  the tensors outside the region and can be differentiated again.
* **retain_graph.** Without it the node releases ``fn``'s arguments after its
  backward (a second backward raises the usual freed-graph error); with it each
  backward recomputes again.
* **Errors, not wrong answers.** The recomputation must do what the first run did.
  Its outputs are compared with the first run's (structure, shapes, dtypes, which
  ones require grad) and so are the tensors it depends on; a Tensor argument or a
  closure leaf modified in place between forward and backward is caught by its
  version counter. Each raises :class:`CheckpointError` (a ``BackwardError``) that
  names both runs. ``check_values=True`` also compares the recomputed values.

Random numbers
--------------
With ``preserve_rng_state=True`` (the default) NumPy's *global* RNG state
(``np.random.get_state()``, which ``np.random.rand``/``randn``/... use) is saved
before the first run and restored for the recomputation (and the caller's state is
put back afterwards), so dropout-like code draws the same numbers twice. A
``np.random.Generator`` object that ``fn`` draws from is not tracked: draw its
numbers outside ``fn`` and pass them in, or re-seed it inside ``fn``.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import numpy as np

from .errors import BackwardError
from .grad_mode import enable_grad, is_grad_enabled
from .graph import Node, _sequence, run_backward
from .tensor import RuleNode, Tensor

__all__ = ["checkpoint", "checkpoint_sequential", "CheckpointError"]


class CheckpointError(BackwardError):
    """A checkpointed function did something different when it was recomputed."""


def _describe(meta) -> str:
    kind, items = meta
    parts = []
    for m in items:
        if m is None:
            parts.append("non-Tensor")
        else:
            shape, dtype, req = m
            parts.append(f"Tensor(shape={shape}, dtype={dtype}{', requires_grad' if req else ''})")
    return parts[0] if kind == "single" else f"{kind} of {len(items)}: (" + ", ".join(parts) + ")"


def _flatten(out, fn_name):
    """``(kind, items)``: the outputs as a list, with how to rebuild them."""
    if isinstance(out, Tensor):
        return "single", [out]
    if isinstance(out, (tuple, list)):
        if not any(isinstance(o, Tensor) for o in out):
            raise TypeError(f"checkpoint: {fn_name} returned a {type(out).__name__} without any Tensor; "
                            "a checkpointed function must return a Tensor or a tuple/list of Tensors")
        return type(out).__name__, list(out)
    raise TypeError(f"checkpoint: {fn_name} returned a {type(out).__name__}; a checkpointed function "
                    "must return a Tensor or a tuple/list of Tensors")


def _meta_of(items):
    return [(tuple(o.shape), str(o.dtype), bool(o.requires_grad)) if isinstance(o, Tensor) else None
            for o in items]


def _fn_name(fn) -> str:
    return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)


def _region(outputs, start):
    """Walk the nodes created after ``start`` from ``outputs``.

    Returns ``(inner, externals)``: the inner nodes, and the external dependencies
    (outer nodes and leaf Tensors) in a stable order, keyed by identity.
    """
    inner, externals, seen = [], {}, set()
    stack = []
    for o in outputs:
        if isinstance(o, Tensor) and o.requires_grad:
            fn = o._fn
            if fn is None or fn.seq < start:
                externals.setdefault(id(fn if fn is not None else o), fn if fn is not None else o)
            elif id(fn) not in seen:
                seen.add(id(fn))
                stack.append(fn)
    while stack:
        node = stack.pop()
        inner.append(node)
        for edge in node.edges:
            if edge is None:
                continue
            if isinstance(edge, Node):
                if edge.seq > start:
                    if id(edge) not in seen:
                        seen.add(id(edge))
                        stack.append(edge)
                    continue
            externals.setdefault(id(edge), edge)
    return inner, externals


class _Cotangents:
    """Gradients of several outputs of one checkpoint, summed by the engine with ``+``."""

    __slots__ = ("grads",)

    def __init__(self, grads):
        self.grads = grads

    def __add__(self, other):
        merged = dict(self.grads)
        for i, g in other.grads.items():
            merged[i] = g if i not in merged else merged[i] + g
        return _Cotangents(merged)

    __radd__ = __add__


class CheckpointOutputBackward(Node):
    """Output ``index`` of a checkpointed function returning several tensors."""

    __slots__ = ("index",)

    def apply(self, g, needed, nb, create_graph):
        if self.freed:
            self._freed_error()
        return [_Cotangents({self.index: g})]


class CheckpointInputBackward(Node):
    """Where the recomputed graph leaves the region: captures the gradient during the
    inner backward pass, an identity afterwards (for graphs built by ``create_graph``)."""

    __slots__ = ("sink", "index")

    def apply(self, g, needed, nb, create_graph):
        if self.freed:
            self._freed_error()
        sink = self.sink
        if sink is not None:
            i = self.index
            sink[i] = g if sink[i] is None else sink[i] + g
            return [None]
        return [g]


class CheckpointBackward(Node):
    """The node of a checkpointed region: recomputes it and backpropagates through it."""

    __slots__ = ("fn", "args", "kwargs", "rng_state", "meta", "targets", "index", "out_targets",
                 "versions", "check_values", "values")

    def release(self):
        self.args = self.kwargs = self.rng_state = self.values = None
        self.freed = True

    def _check_versions(self):
        for what, counter, version in self.versions:
            if counter[0] != version:
                raise CheckpointError(
                    "one of the variables needed for gradient computation has been modified by an "
                    f"inplace operation: {what} of the checkpointed function {_fn_name(self.fn)} is at "
                    f"version {counter[0]}; expected version {version} instead. The function is "
                    "recomputed during backward from its inputs, so they must not change in between.")

    def _recompute(self):
        fn, name = self.fn, _fn_name(self.fn)
        current = None
        if self.rng_state is not None:
            current = np.random.get_state()
            np.random.set_state(self.rng_state)
        try:
            with enable_grad():
                # reserve one sequence number per external dependency for the capture nodes,
                # so they sort between the outer graph and the recomputed nodes
                base = [next(_sequence) for _ in range(len(self.targets) + 1)]
                out = fn(*self.args, **self.kwargs)
        finally:
            if current is not None:
                np.random.set_state(current)
        kind, items = _flatten(out, name)
        meta = (kind, _meta_of(items))
        if meta != self.meta:
            raise CheckpointError(
                f"the checkpointed function {name} returned different outputs when it was recomputed "
                f"during backward: forward pass: {_describe(self.meta)}; recomputation: {_describe(meta)}. "
                "A checkpointed function must be deterministic and free of side effects that change "
                "its result (random numbers other than NumPy's global RNG, global state, mutated "
                "arguments); otherwise call it without checkpoint.")
        if self.values is not None:
            for i, (a, o) in enumerate(zip(self.values, items)):
                if a is not None and not np.allclose(np.asarray(_primal(o)), a, rtol=1e-9, atol=1e-12,
                                                     equal_nan=True):
                    raise CheckpointError(
                        f"the checkpointed function {name} returned different values for output {i} "
                        "when it was recomputed during backward (max abs difference "
                        f"{np.max(np.abs(np.asarray(_primal(o)) - a)):.3g}); it must be deterministic")
        return base, items

    def apply(self, g, needed, nb, create_graph):
        if self.freed or self.args is None:
            self._freed_error()
        self._check_versions()
        base, items = self._recompute()
        name = _fn_name(self.fn)
        grads_out = g.grads if isinstance(g, _Cotangents) else {0: g}
        results = [None] * len(self.targets)
        index = self.index

        inner, externals = _region(items, base[0])
        if any(k not in index for k in externals):
            raise CheckpointError(
                f"the checkpointed function {name} depends on different tensors when it is recomputed "
                f"during backward ({len(externals)} external tensors/nodes, {len(self.targets)} in the "
                "forward pass, not the same ones): it must not read state that changes in between "
                "(or create leaf tensors with requires_grad=True inside the function)")
        # rewire the edges that leave the region to capture nodes
        captures = {}
        prune = not create_graph
        for node in inner:
            edges, changed = list(node.edges), False
            for j, edge in enumerate(edges):
                if edge is None or (isinstance(edge, Node) and edge.seq > base[0]):
                    continue
                k = index[id(edge)]
                if prune and not needed[k]:
                    edges[j], changed = None, True
                    continue
                cap = captures.get(k)
                if cap is None:
                    cap = captures[k] = CheckpointInputBackward((edge,))
                    cap.seq, cap.sink, cap.index = base[1 + k], results, k
                edges[j], changed = cap, True
            if changed:
                node.edges = tuple(edges)
                if prune and isinstance(node, RuleNode):
                    node.needed = tuple(w and e is not None for w, e in zip(node.needed, edges))

        roots, root_grads = [], []
        for i, gi in grads_out.items():
            if gi is None:
                continue
            o = items[i]
            fn_i = o._fn
            if fn_i is not None and fn_i.seq > base[0]:
                roots.append(o)
                root_grads.append(gi)
            else:  # the output is an external tensor itself
                k = self.out_targets[i]
                results[k] = gi if results[k] is None else results[k] + gi
        del items
        if roots:
            run_backward(roots, root_grads, retain_graph=create_graph, create_graph=create_graph, nb=nb)
        for cap in captures.values():
            cap.sink = None  # identities from now on (graphs recorded by create_graph)
        return [r if want else None for r, want in zip(results, needed)]


def _primal(t):
    from dualad.rules import strip
    return strip(t.data)


def checkpoint(fn: Callable, *args, preserve_rng_state: bool = True, check_values: bool = False,
               **kwargs) -> Any:
    """Call ``fn(*args, **kwargs)`` without keeping its intermediate values for backward.

    The values ``fn`` computes inside are freed when it returns; during backward
    ``fn`` is run again, with recording on, and the gradient is backpropagated through
    that recomputation. Gradients are identical to those without checkpointing, for
    the cost of one more forward pass of ``fn``.

    ``args``/``kwargs`` may mix Tensors (requiring grad or not) and any other values;
    ``fn`` may also read tensors from its closure (parameters): they get their
    gradients too. ``fn`` must return a Tensor or a tuple/list of Tensors (non-Tensor
    entries are passed through). Outside grad mode (``no_grad``) this is just
    ``fn(*args, **kwargs)``.

    ``fn`` must compute the same thing when recomputed: a different output structure,
    shape or dtype, different tensor dependencies, or a Tensor argument/closure leaf
    modified in place in between raise :class:`CheckpointError` at backward.
    ``preserve_rng_state`` restores NumPy's global RNG state for the recomputation (see
    the module docstring); ``check_values=True`` also compares the recomputed output
    values (keeping the outputs' arrays alive until backward).

    Examples
    --------
    >>> import numpy as np, reversead as rd
    >>> W = rd.tensor(np.full((3, 3), 0.1), requires_grad=True)
    >>> def block(h):
    ...     return h + np.tanh(h @ W)
    >>> x = rd.tensor(np.ones((2, 3)), requires_grad=True)
    >>> y = rd.checkpoint(block, x)           # block's intermediates are not kept
    >>> y.grad_fn
    <CheckpointBackward>
    >>> y.sum().backward()                    # block runs again here
    >>> gx, gW = x.grad, W.grad
    >>> x.grad = W.grad = None
    >>> block(x).sum().backward()             # the same gradients without checkpointing
    >>> bool(np.allclose(gx, x.grad) and np.allclose(gW, W.grad))
    True
    """
    if not callable(fn):
        raise TypeError(f"checkpoint: fn must be callable, got {type(fn).__name__}")
    if not is_grad_enabled():
        return fn(*args, **kwargs)
    rng_state = np.random.get_state() if preserve_rng_state else None
    start = next(_sequence)
    out = fn(*args, **kwargs)
    name = _fn_name(fn)
    kind, items = _flatten(out, name)
    if not any(isinstance(o, Tensor) and o.requires_grad for o in items):
        return out  # nothing recorded: nothing to free or recompute
    inner, externals = _region(items, start)
    targets = list(externals.values())

    node = CheckpointBackward(tuple(targets))
    node.fn, node.args, node.kwargs, node.rng_state = fn, args, kwargs, rng_state
    node.meta = (kind, _meta_of(items))
    node.targets = targets
    node.index = {id(t): k for k, t in enumerate(targets)}
    node.out_targets = {}
    for i, o in enumerate(items):
        if isinstance(o, Tensor) and o.requires_grad and (o._fn is None or o._fn.seq < start):
            node.out_targets[i] = node.index[id(o._fn if o._fn is not None else o)]
    node.check_values = check_values
    node.values = [None if not isinstance(o, Tensor) else np.array(_primal(o)) for o in items] \
        if check_values else None
    # version counters of everything the recomputation reads that can be written in place:
    # Tensor arguments and closure leaves
    versions, seen = [], set()
    for what, t in ([(f"argument {i}", a) for i, a in enumerate(args)]
                    + [(f"keyword argument {k!r}", a) for k, a in kwargs.items()]
                    + [("a leaf tensor it reads", t) for t in targets]):
        if isinstance(t, Tensor) and id(t) not in seen:
            seen.add(id(t))
            counter = t._version
            versions.append((f"{what} (shape {t.shape})", counter, counter[0]))
    node.versions = versions
    del inner, externals

    wrapped = []
    single = kind == "single"
    for i, o in enumerate(items):
        if not (isinstance(o, Tensor) and o.requires_grad):
            wrapped.append(o)
            continue
        if single:
            grad_fn = node
        else:
            grad_fn = CheckpointOutputBackward((node,))
            grad_fn.index = i
        t = Tensor._make(o._data, True, grad_fn)
        t._version = o._version
        # a view keeps its base for the in-place check: a detached one, so that the base's
        # graph (the recorded inside of fn) is not kept alive
        t._base = None if o._base is None else o._base.detach()
        wrapped.append(t)
    if single:
        return wrapped[0]
    return tuple(wrapped) if kind == "tuple" else wrapped


def checkpoint_sequential(functions: Sequence[Callable], segments: int | None = None, input=None, *,
                          preserve_rng_state: bool = True) -> Any:
    """Run a chain of blocks ``functions[-1](... functions[0](input))`` in checkpointed segments.

    The chain is cut into ``segments`` runs of consecutive blocks (default
    ``round(sqrt(n))``, Chen et al. 2016); every segment but the last is run under
    :func:`checkpoint`, so backward keeps only the segments' inputs plus the values
    of one segment at a time: peak memory O(n/segments + segments) blocks, O(√n) at
    the default, instead of O(n), for one more forward pass of the first n-1
    segments. (The last segment is run normally, as in PyTorch: its values would be
    recomputed right away.) ``functions`` may be any sequence of one-argument
    callables; a block may return a tuple, which is passed as one argument to the
    next block.

    Examples
    --------
    >>> import numpy as np, reversead as rd
    >>> rng = np.random.default_rng(0)
    >>> Ws = [rd.tensor(rng.normal(0, 0.1, (8, 8)), requires_grad=True) for _ in range(16)]
    >>> blocks = [lambda h, W=W: h + np.tanh(h @ W) for W in Ws]
    >>> x = rd.tensor(rng.normal(size=(4, 8)))
    >>> y = rd.checkpoint_sequential(blocks, 4, x)     # 4 segments of 4 blocks
    >>> y.sum().backward()
    >>> Ws[0].grad.shape
    (8, 8)
    """
    functions = list(functions)
    n = len(functions)
    if n == 0:
        raise ValueError("checkpoint_sequential: no functions")
    if segments is None:
        segments = max(1, round(math.sqrt(n)))
    if not isinstance(segments, int) or segments < 1:
        raise ValueError(f"checkpoint_sequential: segments must be a positive int, got {segments!r}")
    segments = min(segments, n)
    size = math.ceil(n / segments)

    def run(lo, hi):
        def segment(h):
            for f in functions[lo:hi]:
                h = f(h)
            return h
        segment.__qualname__ = f"checkpoint_sequential.segment[{lo}:{hi}]"
        return segment

    h = input
    lo = 0
    while lo < n:
        hi = min(lo + size, n)
        seg = run(lo, hi)
        if hi < n and is_grad_enabled():
            h = checkpoint(seg, h, preserve_rng_state=preserve_rng_state)
        else:
            h = seg(h)
        lo = hi
    return h
