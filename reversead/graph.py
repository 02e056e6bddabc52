"""The tape: nodes (``grad_fn``) and the iterative backward engine.

A node holds, per input, an *edge*: ``None`` (no gradient wanted), a leaf Tensor
(gradient accumulates into ``.grad``) or the input's own node. Backward counts
each node's consumers, then runs the nodes in topological order from the roots
(Kahn's algorithm): no recursion, so graphs of any depth work.
"""
from __future__ import annotations

import numpy as np

from .errors import BackwardError


class Node:
    """Base of every ``grad_fn``; the class name says the op (``MulBackward``)."""

    __slots__ = ("edges", "hooks", "retained", "freed", "__weakref__")

    def __init__(self, edges):
        self.edges = edges
        self.hooks = None
        self.retained = None
        self.freed = False

    def name(self) -> str:
        return type(self).__name__

    def __repr__(self) -> str:
        return f"<{self.name()}>"

    @property
    def next_functions(self):
        """The nodes (or leaf tensors) this node sends gradients to, as in PyTorch."""
        return tuple((edge, 0) for edge in self.edges)

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


def _accumulate(a, b):
    return b if a is None else a + b


def run_backward(roots, root_grads, *, retain_graph, create_graph, inputs=None, nb=0):
    """Backpropagate ``root_grads`` from ``roots`` (Tensors).

    Without ``inputs``: accumulate into the ``.grad`` of reachable leaves. With
    ``inputs`` (Tensors): return their gradients (None where unreached) and leave
    every ``.grad`` untouched.
    """
    from .tensor import Tensor

    capture_leaf, capture_node, results = {}, {}, None
    if inputs is not None:
        results = [None] * len(inputs)
        for i, t in enumerate(inputs):
            (capture_node if t.grad_fn is not None else capture_leaf).setdefault(
                t.grad_fn if t.grad_fn is not None else id(t), []).append(i)

    grads, root_nodes = {}, []
    for t, g in zip(roots, root_grads):
        if t.grad_fn is None:  # a leaf as its own root
            _deliver_leaf(t, g, capture_leaf, results, create_graph, nb)
            continue
        grads[t.grad_fn] = _accumulate(grads.get(t.grad_fn), g)
        root_nodes.append(t.grad_fn)

    # post-order over the reachable graph: consumer counts and usefulness
    deps, useful, post, seen = {}, {}, [], set()
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
        ok = inputs is None or node in capture_node
        for edge in node.edges:
            if isinstance(edge, Node):
                deps[edge] = deps.get(edge, 0) + 1
                ok = ok or useful[edge]
            elif edge is not None:
                ok = ok or id(edge) in capture_leaf
        useful[node] = ok

    ready = [n for n in dict.fromkeys(root_nodes) if deps.get(n, 0) == 0]
    while ready:
        node = ready.pop()
        g = grads.pop(node, None)
        if g is not None and nb == 0:
            g = _node_hooks(node, g, create_graph)
        if node in capture_node and g is not None:
            for i in capture_node[node]:
                results[i] = g
        if g is not None and useful[node]:
            if node.freed:
                node._freed_error()
            needed = [_wanted(edge, useful, capture_leaf, inputs) for edge in node.edges]
            in_grads = node.apply(g, needed, nb, create_graph)
        else:
            in_grads = [None] * len(node.edges)
        for edge, gi in zip(node.edges, in_grads):
            if isinstance(edge, Node):
                if gi is not None:
                    grads[edge] = _accumulate(grads.get(edge), gi)
                deps[edge] -= 1
                if deps[edge] == 0:
                    ready.append(edge)
            elif edge is not None and gi is not None:
                _deliver_leaf(edge, gi, capture_leaf, results, create_graph, nb)
        if not retain_graph:
            node.release()
    return results


def _wanted(edge, useful, capture_leaf, inputs):
    if edge is None:
        return False
    if isinstance(edge, Node):
        return useful[edge]
    return inputs is None or id(edge) in capture_leaf


def _node_hooks(node, g, create_graph):
    if node.hooks:
        for hook in node.hooks:
            replaced = hook(g)
            g = replaced if replaced is not None else g
    if node.retained is not None:
        tensor = node.retained()
        if tensor is not None and tensor.grad_fn is node:
            tensor.grad = _owned(_accumulate(tensor.grad, g))
    return g


def _owned(g):
    """A gradient array that the user may keep and modify (not a view into the tape)."""
    if isinstance(g, np.ndarray) and (g.base is not None or not g.flags.writeable):
        return np.array(g)
    return g


def _deliver_leaf(leaf, g, capture_leaf, results, create_graph, nb):
    if results is not None:
        for i in capture_leaf.get(id(leaf), ()):
            results[i] = _accumulate(results[i], g)
        return
    for hook in leaf._hooks or ():
        replaced = hook(g)
        g = replaced if replaced is not None else g
    if not create_graph and hasattr(g, "detach"):
        g = g.detach()
    leaf.grad = _owned(_accumulate(leaf.grad, g))
