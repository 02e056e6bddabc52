"""The tape: nodes (``grad_fn``) and the iterative backward engine.

A node holds, per input, an *edge*: ``None`` (no gradient wanted), a leaf Tensor
(gradient accumulates into ``.grad``) or the input's own node. Every node gets a
sequence number when it is created, after the nodes of its inputs, so decreasing
sequence numbers are a topological order of any graph (as PyTorch's engine uses).
Backward keeps the nodes that have received a gradient in a heap and always runs
the newest: by then every consumer of that node that the roots reach has run and
its gradient is complete. No recursion and no separate pass over the graph to count
dependencies, so graphs of any depth work and a chain costs one heap push per node.
"""
from __future__ import annotations

import itertools
import weakref
from heapq import heappop, heappush

import numpy as np

from dualad.rules.core import match_dtype

from .errors import BackwardError

#: creation order of nodes (a node's inputs always have smaller numbers)
_sequence = itertools.count()

#: ``reversead.tensor.RuleNode`` (set there): the engine releases such nodes inline
_RULE_NODE = None


class Node:
    """Base of every ``grad_fn``; the class name says the op (``MulBackward``)."""

    __slots__ = ("edges", "hooks", "retained", "freed", "seq", "__weakref__")

    def __init__(self, edges):
        self.edges = edges
        self.hooks = None
        self.retained = None
        self.freed = False
        self.seq = next(_sequence)

    def name(self) -> str:
        return type(self).__name__

    def _public(self):
        """This node as user code sees it (a recorded node takes its op's class here)."""
        return self

    def __repr__(self) -> str:
        return f"<{self.name()}>"

    @property
    def next_functions(self):
        """The nodes this node sends gradients to, as in PyTorch: ``(node, 0)`` per input,
        ``AccumulateGrad`` for a leaf (its ``.variable`` is the leaf), None where no
        gradient flows."""
        return tuple((edge._public() if isinstance(edge, Node) else
                      None if edge is None else AccumulateGrad._of(edge), 0) for edge in self.edges)

    @property
    def needed(self) -> list:
        """Which inputs want a gradient when every reachable leaf does (``backward()``)."""
        return [edge is not None for edge in self.edges]

    def apply(self, g, needed, nb, create_graph):  # pragma: no cover - abstract
        raise NotImplementedError

    def release(self):
        self.freed = True

    def _freed_error(self):
        raise BackwardError(
            f"Trying to backward through the graph a second time (or directly access saved tensors "
            f"after they have already been freed): {self.name()} released its saved values after the "
            "first backward. Specify retain_graph=True if you need to backward through the graph a "
            "second time or if you need to access saved tensors after calling backward.")


class AccumulateGrad:
    """Where a leaf's gradient ends (PyTorch's ``AccumulateGrad``), as ``next_functions`` shows it.

    The engine accumulates into leaves directly; this object exists for inspection: one per
    leaf while anybody holds it (so ``is`` compares as in PyTorch), ``variable`` is the leaf.

    >>> import reversead as rd
    >>> x = rd.tensor([1.0, 2.0], requires_grad=True)
    >>> acc = (x * x).grad_fn.next_functions[0][0]
    >>> acc, acc.variable is x, acc.next_functions
    (<AccumulateGrad>, True, ())
    """

    __slots__ = ("variable", "__weakref__")
    #: id(leaf) -> its AccumulateGrad (an entry holds the leaf, so the id cannot be reused)
    _live: "weakref.WeakValueDictionary" = weakref.WeakValueDictionary()

    def __init__(self, variable):
        self.variable = variable

    @classmethod
    def _of(cls, leaf):
        acc = cls._live.get(id(leaf))
        if acc is None:
            acc = cls._live[id(leaf)] = cls(leaf)
        return acc

    def name(self) -> str:
        return "AccumulateGrad"

    @property
    def next_functions(self) -> tuple:
        return ()

    def __repr__(self) -> str:
        return "<AccumulateGrad>"


def _accumulate(a, b):
    return b if a is None else a + b


def run_backward(roots, root_grads, *, retain_graph, create_graph, inputs=None, nb=0):
    """Backpropagate ``root_grads`` from ``roots`` (Tensors).

    Without ``inputs``: accumulate into the ``.grad`` of reachable leaves. With
    ``inputs`` (Tensors): return their gradients (None where unreached) and leave
    every ``.grad`` untouched.
    """
    capture_leaf, capture_node, results = {}, {}, None
    if inputs is not None:
        results = [None] * len(inputs)
        for i, t in enumerate(inputs):
            (capture_node if t._fn is not None else capture_leaf).setdefault(
                t._fn if t._fn is not None else id(t), []).append(i)

    # ids of gradient arrays that someone else also holds (the caller's root gradients, an
    # array already handed to a leaf or passed to two inputs): copied before a leaf keeps them
    shared = {id(g) for g in root_grads}
    grads, heap = {}, []
    # leaves with hooks: their gradients summed first, so each hook runs once on the total
    # (PyTorch's AccumulateGrad), not once per path that reaches the leaf
    hooked = {}
    for t, g in zip(roots, root_grads):
        node = t._fn
        if node is None:  # a leaf as its own root
            if t._hooks:
                _hold(hooked, t, g)
            else:
                _deliver_leaf(t, g, capture_leaf, results, create_graph, nb, shared)
        elif node in grads:
            grads[node] = grads[node] + g
        else:
            grads[node] = g
            heappush(heap, (-node.seq, node))
    useful = None if inputs is None else _useful([n for _, n in heap], capture_node, capture_leaf)

    grads_pop, grads_get = grads.pop, grads.get
    # ``following``: the one pending node while the heap is empty (a chain skips the heap),
    # with its gradient ``following_g`` (kept out of ``grads`` until the heap is used)
    following = following_g = None
    top_level = nb == 0
    while True:
        if following is not None:
            node, g, following = following, following_g, None
        elif heap:
            node = heappop(heap)[1]
            g = grads_pop(node)
        else:
            break
        if top_level and (node.hooks is not None or node.retained is not None):
            g = _node_hooks(node, g, create_graph, shared)
        if capture_node and node in capture_node:
            for i in capture_node[node]:
                results[i] = _fresh(g, shared)
        if useful is None:  # (each node's apply raises if its saved values were freed)
            in_grads = node.apply(g, node.needed, nb, create_graph)
        elif useful[node]:
            needed = [_wanted(edge, useful, capture_leaf, inputs) for edge in node.edges]
            in_grads = node.apply(g, needed, nb, create_graph)
        else:
            in_grads = ()
        if not retain_graph:
            if type(node) is _RULE_NODE:
                if node.frees:  # ``RuleNode.release``, without the call
                    node.saved = node.out = None
            else:
                node.release()
        # (one array sent to two inputs, as a + b does, needs no marking here: the first
        # leaf that keeps it records it in ``shared``, so a second one gets a copy)
        for edge, gi in zip(node.edges, in_grads):
            if gi is None:
                continue
            if isinstance(edge, Node):
                if edge is following:
                    following_g = following_g + gi
                    continue
                prev = grads_get(edge)
                if prev is None:
                    if following is None and not heap:
                        following, following_g = edge, gi
                    else:
                        grads[edge] = gi
                        if following is not None:
                            grads[following] = following_g
                            heappush(heap, (-following.seq, following))
                            following = None
                        heappush(heap, (-edge.seq, edge))
                else:
                    grads[edge] = prev + gi
            elif edge is not None:
                if edge._hooks is not None:
                    _hold(hooked, edge, gi)
                elif (results is None and type(gi) is np.ndarray and edge.grad is None
                        and gi.dtype is getattr(edge._data, "dtype", None)):
                    edge.grad = _fresh(gi, shared)  # the common leaf (``_deliver_leaf``'s fast case)
                else:
                    _deliver_leaf(edge, gi, capture_leaf, results, create_graph, nb, shared)
    for leaf, g in hooked.values():
        if top_level and (results is None or id(leaf) in capture_leaf):  # (as node hooks)
            for hook in leaf._hooks:
                replaced = hook(match_dtype(g, leaf._data))
                g = replaced if replaced is not None else g
        _deliver_leaf(leaf, g, capture_leaf, results, create_graph, nb, shared)
    return results


def _hold(hooked, leaf, g):
    """Add ``g`` to what ``leaf`` has received so far (its hooks run on the sum, after the pass)."""
    held = hooked.get(id(leaf))
    hooked[id(leaf)] = (leaf, g if held is None else held[1] + g)


def _useful(root_nodes, capture_node, capture_leaf):
    """Per node: does a gradient flowing through it reach one of the requested inputs?"""
    useful, post, seen = {}, [], set()
    stack = [(n, False) for n in root_nodes]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            post.append(node)
            continue
        if node in seen:
            continue
        seen.add(node)
        stack.append((node, True))
        for edge in node.edges:
            if isinstance(edge, Node) and edge not in seen:
                stack.append((edge, False))
    for node in post:
        ok = node in capture_node
        for edge in node.edges:
            if isinstance(edge, Node):
                ok = ok or useful[edge]
            elif edge is not None:
                ok = ok or id(edge) in capture_leaf
        useful[node] = ok
    return useful


def _wanted(edge, useful, capture_leaf, inputs):
    if edge is None:
        return False
    if isinstance(edge, Node):
        return useful[edge]
    return inputs is None or id(edge) in capture_leaf


def _node_hooks(node, g, create_graph, shared):
    if node.hooks:
        for hook in node.hooks:
            replaced = hook(g)
            g = replaced if replaced is not None else g
    if node.retained is not None:
        tensor = node.retained()
        if tensor is not None and tensor._fn is node:
            tensor.grad = _fresh(g, shared) if tensor.grad is None else _owned(tensor.grad + g)
    return g


def _owned(g):
    """A gradient array that the user may keep and modify (not a view into the tape)."""
    if isinstance(g, np.ndarray) and (g.base is not None or not g.flags.writeable):
        return np.array(g)
    if type(g) is np.float64 or type(g) is np.float32:
        return np.asarray(g)
    return g


def _fresh(g, shared):
    """``g`` as an array that nothing else holds (copied if it is shared or a view); now shared."""
    if type(g) is np.ndarray:
        if g.base is not None or not g.flags.writeable or id(g) in shared:
            g = np.array(g)
        shared.add(id(g))
        return g
    if type(g) is np.float64 or type(g) is np.float32:
        return np.asarray(g)
    return g


def _deliver_leaf(leaf, g, capture_leaf, results, create_graph, nb, shared):
    # in the leaf's float dtype, as PyTorch's engine casts (float64 constants met on the way
    # do not make a float32 input's gradient float64)
    g = match_dtype(g, leaf._data)
    if results is not None:
        for i in capture_leaf.get(id(leaf), ()):
            results[i] = _fresh(g, shared) if results[i] is None else results[i] + g
        return
    if not create_graph and type(g) is not np.ndarray and hasattr(g, "detach"):
        g = g.detach()
    leaf.grad = _fresh(g, shared) if leaf.grad is None else accumulate_grad(leaf.grad, g, create_graph)


def accumulate_grad(old, g, create_graph=False):
    """``old + g`` as the new ``.grad``: in ``old``'s own buffer where that can hold it, as
    PyTorch's AccumulateGrad does (so a reference to ``.grad`` sees every backward)."""
    if (not create_graph and type(old) is np.ndarray and type(g) is np.ndarray and old.shape == g.shape
            and old.dtype == g.dtype and old.flags.writeable):
        return np.add(old, g, out=old)
    return _owned(old + g)
