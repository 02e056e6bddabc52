"""``backward`` and ``grad``: the user-facing entry points to the engine."""
from __future__ import annotations

import numpy as np

from dualad.rules import strip

from .errors import BackwardError, ShapeError
from .graph import accumulate_grad, run_backward
from .tensor import Tensor


def _as_list(x):
    return list(x) if isinstance(x, (tuple, list)) else [x]


def _root_grads(outputs, grad_outputs, name):
    grads = []
    for i, (out, g) in enumerate(zip(outputs, grad_outputs)):
        if not isinstance(out, Tensor):
            raise TypeError(f"{name}: outputs[{i}] is a {type(out).__name__}, not a reversead.Tensor")
        if not out.requires_grad:
            raise BackwardError(f"element {i} of tensors does not require grad and does not have a "
                                f"grad_fn ({name} on a tensor of shape {out.shape} that no tensor with "
                                "requires_grad=True flowed into)")
        if g is None:
            data = out._data
            if type(data) is np.float64 or type(data) is np.float32:  # a scalar loss: the common case
                grads.append(type(data)(1.0))
                continue
            if out.size != 1:
                raise BackwardError(f"grad can be implicitly created only for scalar outputs; this "
                                    f"output has shape {out.shape}: pass gradient= (backward) or "
                                    "grad_outputs= (grad) of that shape")
            g = np.ones(out.shape, dtype=strip(out.data).dtype)
        else:
            if isinstance(g, Tensor) and not g.requires_grad:
                g = g.data
            if tuple(np.shape(g if not isinstance(g, Tensor) else g.data)) != out.shape:
                raise ShapeError(f"Mismatch in shape: grad_output[{i}] has a shape of "
                                 f"{tuple(np.shape(strip(g)))} and output[{i}] has a shape of {out.shape}")
            if not isinstance(g, Tensor) and getattr(g, "_ad_level", None) is None:
                # a copy: the engine may hand this array on as a leaf's .grad, which the
                # user may then zero in place; it must not be the caller's array
                g = np.array(g, dtype=strip(out.data).dtype, copy=True)
        grads.append(g)
    return grads


def backward(tensors, grad_tensors=None, retain_graph=None, create_graph=False, inputs=None):
    """Accumulate gradients of ``tensors`` into the leaves' ``.grad`` (as ``torch.autograd.backward``)."""
    tensors = _as_list(tensors)
    grad_tensors = [None] * len(tensors) if grad_tensors is None else _as_list(grad_tensors)
    if len(grad_tensors) != len(tensors):
        raise ValueError(f"got {len(grad_tensors)} gradients for {len(tensors)} tensors")
    if retain_graph is None:
        retain_graph = create_graph
    roots = _root_grads(tensors, grad_tensors, "backward")
    if inputs is not None:
        inputs = _as_list(inputs)
        grads = run_backward(tensors, roots, retain_graph=retain_graph, create_graph=create_graph,
                             inputs=inputs)
        for t, g in zip(inputs, grads):
            if g is not None:
                t.grad = g if t.grad is None else accumulate_grad(t.grad, g, create_graph)
        return
    run_backward(tensors, roots, retain_graph=retain_graph, create_graph=create_graph)


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False,
         allow_unused=None, materialize_grads=False):
    """Gradients of ``outputs`` w.r.t. ``inputs`` as a tuple, without touching ``.grad``.

    ``materialize_grads``: zeros (not None) for inputs the outputs do not reach; implies
    ``allow_unused``, as in PyTorch.

    Examples
    --------
    >>> import reversead as rd
    >>> x = rd.tensor(2.0, requires_grad=True)
    >>> (gx,) = rd.grad(x ** 3, [x], create_graph=True)   # 3x² = 12
    >>> (ggx,) = rd.grad(gx, [x])                           # 6x = 12
    >>> float(gx.data), float(ggx)
    (12.0, 12.0)
    """
    if materialize_grads and allow_unused is False:
        raise ValueError("Expected allow_unused to be True or not passed when materialize_grads=True, "
                         "but got: allow_unused=False.")
    allow_unused = materialize_grads or bool(allow_unused)
    outputs = _as_list(outputs)
    single = isinstance(inputs, Tensor)
    inputs = _as_list(inputs)
    for i, t in enumerate(inputs):
        if not isinstance(t, Tensor) or not t.requires_grad:
            raise BackwardError(f"grad: inputs[{i}] must be a Tensor with requires_grad=True "
                                "(One of the differentiated Tensors does not require grad)")
    grad_outputs = [None] * len(outputs) if grad_outputs is None else _as_list(grad_outputs)
    if retain_graph is None:
        retain_graph = create_graph
    roots = _root_grads(outputs, grad_outputs, "grad")
    results = run_backward(outputs, roots, retain_graph=retain_graph, create_graph=create_graph,
                           inputs=inputs)
    final, seen = [], []
    for i, (t, g) in enumerate(zip(inputs, results)):
        if g is None and not allow_unused:
            raise BackwardError(f"One of the differentiated Tensors appears to not have been used in "
                                f"the graph (inputs[{i}], shape {t.shape}). Set allow_unused=True if "
                                "this is the desired behavior.")
        if g is None and materialize_grads:
            g = np.zeros(t.shape, dtype=strip(t.data).dtype)
        if g is not None and not isinstance(g, Tensor):
            g = np.array(g) if isinstance(g, np.ndarray) and (g.base is not None or not g.flags.writeable) else g
        if isinstance(g, Tensor) and not create_graph:
            g = g.data
        if isinstance(g, np.ndarray):  # one cotangent reaching two inputs (a + b): own copies
            if any(np.may_share_memory(g, h) for h in seen):
                g = np.array(g)
            seen.append(g)
        final.append(g)
    del single
    return tuple(final)
