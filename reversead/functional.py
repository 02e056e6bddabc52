"""Functional reverse mode on plain NumPy functions: vjp, gradient, jacobian, hessian, hvp.

Same input conventions as ``dualad``: ``x`` is a float, an array, or a tuple/list
of those (then ``f(*x)``); results follow ``x``'s structure.
"""
from __future__ import annotations

import math
import threading
from typing import Any, Callable

import numpy as np

from dualad.array import DualArray, as_float_array
from dualad.errors import NonNumericError, ShapeError
from dualad.rules import strip
from dualad.transforms import _call
from dualad.transforms import _flatten

from .grad_mode import is_grad_enabled
from .graph import run_backward
from .tensor import Tensor

#: ``jacobian`` batches at most this many bytes of cotangents per backward pass.
COTANGENT_BUDGET = 32 * 2**20


class _Nesting(threading.local):
    depth = 0  # how many of this module's transforms are calling their f right now


_nesting = _Nesting()


def _nested() -> bool:
    """Called from inside another transform's f (with grad mode on): this one must compose.

    Then the inputs may be that transform's Tensors and f may close over them, so the
    backward pass is recorded (``create_graph``) and the results stay Tensors on the outer
    graph, as ``jax.grad(jax.grad(f))`` or ``torch.func`` compose. At the outermost level
    the results are plain arrays (``torch.autograd.functional``'s default).
    """
    return _nesting.depth > 0 and is_grad_enabled()


def _call_f(f, tensors, inputs):
    _nesting.depth += 1
    try:
        return _call(f, tensors, inputs)
    finally:
        _nesting.depth -= 1


def _leaves(x, nested=False):
    """The input convention of both modes: the leaves of ``x`` (a float, an array, or tuples and
    lists of them, nested) and its structure (``dualad.transforms._Inputs``).

    ``nested``: a Tensor that requires grad stays a Tensor (see :func:`_track`).
    """
    return _flatten(x, _leaf_nested if nested else _leaf)


def _leaf(v, name):
    if isinstance(v, DualArray) or getattr(v, "_ad_forward", False):
        return v if isinstance(v, DualArray) else DualArray._make(np.asarray(v.primal), np.reshape(v.tangent, (-1,)), v.tag)
    if isinstance(v, Tensor):
        v = v.data
    if isinstance(v, (dict, set, str, bytes)) or v is None:
        raise NonNumericError(f"{name} must be a float or a real array, got {type(v).__name__}")
    return as_float_array(v, name)


def _leaf_nested(v, name):
    return v if isinstance(v, Tensor) and v.requires_grad else _leaf(v, name)


def _track(leaves):
    """The variables f is called with: fresh leaves, or for an outer transform's Tensor a new
    node equal to it (its own variable, so that f's other uses of the outer Tensor, through
    a closure, do not count as uses of this one)."""
    return [v * 1.0 if isinstance(v, Tensor) else Tensor._make(v, True, None) for v in leaves]


def _kept(grads):
    """Nested results: a Tensor on the outer graph where one is needed, otherwise its array."""
    return [g.data if isinstance(g, Tensor) and not g.requires_grad else g for g in grads]


def _outputs(out):
    """Flatten f's output into a list of leaves plus a function rebuilding the structure."""
    if isinstance(out, (tuple, list)):
        items = [_outputs(o) for o in out]
        flat = [leaf for leaves, _ in items for leaf in leaves]

        def rebuild(values, items=items, kind=tuple if isinstance(out, tuple) else list):
            res, i = [], 0
            for leaves, build in items:
                res.append(build(values[i:i + len(leaves)]))
                i += len(leaves)
            return kind(*res) if hasattr(kind, "_fields") else kind(res)
        return flat, rebuild
    if isinstance(out, dict):
        keys = list(out)
        flat_items = [_outputs(out[k]) for k in keys]
        flat = [leaf for leaves, _ in flat_items for leaf in leaves]

        def rebuild_dict(values):
            res, i = {}, 0
            for key, (leaves, build) in zip(keys, flat_items):
                res[key] = build(values[i:i + len(leaves)])
                i += len(leaves)
            return res
        return flat, rebuild_dict
    if not isinstance(out, Tensor):
        if isinstance(out, (str, bytes)) or out is None or (isinstance(out, np.ndarray) and out.dtype == object):
            raise NonNumericError(f"f must return numbers, arrays or Tensors (or tuples/lists/dicts of "
                                  f"them); got {type(out).__name__}")
        out = Tensor._make(out if getattr(out, "_ad_level", None) is not None else as_float_array(out, "output"),
                           False, None)
    return [out], lambda values: values[0]


def _grads_or_zeros(tensors, grads, batch=(), internal_root=False):
    """Gradients as arrays the caller owns: zeros for unreached inputs, copies where shared.

    With ``internal_root`` the backward started from a cotangent made here, so views of it
    are private and need no copy (only read-only or mutually aliased results do).
    """
    res = []
    for t, g in zip(tensors, grads):
        if g is None:
            res.append(np.zeros(tuple(batch) + t.shape, dtype=strip(t.data).dtype))
        elif isinstance(g, np.ndarray) and ((g.base is not None and not internal_root)
                                            or not g.flags.writeable
                                            or any(isinstance(h, np.ndarray) and np.may_share_memory(g, h) for h in res)):
            res.append(np.array(g))
        else:
            res.append(g)
    return res


def vjp(f: Callable, x: Any, u: Any):
    """Vector-Jacobian product in one forward and one backward pass: ``(f(x), uᵀ J_f(x))``.

    ``u`` has the structure and shapes of ``f(x)``.

    Examples
    --------
    >>> import numpy as np
    >>> y, g = vjp(lambda x: x ** 2, np.array([1.0, 2.0]), np.array([1.0, 1.0]))
    >>> g
    array([2., 4.])
    """
    nested = _nested()
    leaves, inputs = _leaves(x, nested)
    tensors = _track(leaves)
    outs, rebuild = _outputs(_call_f(f, tensors, inputs))
    us, _ = _outputs(u) if isinstance(u, (tuple, list, dict)) else ([u], None)
    if len(us) != len(outs):
        raise ShapeError(f"vjp: u has {len(us)} parts but f returned {len(outs)} outputs")
    roots, root_grads = [], []
    for i, (o, ui) in enumerate(zip(outs, us)):
        ui = ui.data if isinstance(ui, Tensor) else ui
        if tuple(np.shape(ui)) != o.shape:
            raise ShapeError(f"vjp: cotangent u{'' if len(us) == 1 else f'[{i}]'} has shape "
                             f"{tuple(np.shape(ui))} but f(x){'' if len(us) == 1 else f'[{i}]'} has shape {o.shape}")
        if o.requires_grad:
            roots.append(o)
            root_grads.append(ui if getattr(ui, "_ad_level", None) is not None
                              else np.asarray(ui, dtype=strip(o.data).dtype))
    grads = run_backward(roots, root_grads, retain_graph=nested, create_graph=nested,
                         inputs=tensors) if roots else [None] * len(tensors)
    grads = _grads_or_zeros(tensors, grads)
    if nested:
        grads = _kept(grads)
        return rebuild(_kept(outs)), inputs.unflatten(grads)
    return rebuild([o.data for o in outs]), inputs.unflatten(grads)


def gradient(f: Callable, x: Any):
    """Gradient of a scalar ``f: R^n -> R`` with ``x``'s shape, in one backward pass.

    Examples
    --------
    >>> import numpy as np
    >>> gradient(lambda x: np.sum(x ** 2), np.array([1.0, 2.0, 3.0]))
    array([2., 4., 6.])
    """
    nested = _nested()
    leaves, inputs = _leaves(x, nested)
    tensors = _track(leaves)
    out = _call_f(f, tensors, inputs)
    if isinstance(out, (tuple, list, dict)) or np.ndim(strip(out.data if isinstance(out, Tensor) else out)) != 0:
        shape = type(out).__name__ if isinstance(out, (tuple, list, dict)) else \
            f"shape {tuple(np.shape(strip(out.data if isinstance(out, Tensor) else out)))}"
        raise ShapeError(f"gradient needs f to return a scalar, but f returned {shape}; "
                         "use jacobian for vector-valued functions")
    (out,), _ = _outputs(out)
    grads = [None] * len(tensors)
    if out.requires_grad:
        grads = run_backward([out], [np.ones((), dtype=strip(out.data).dtype)], retain_graph=nested,
                             create_graph=nested, inputs=tensors)
    grads = _grads_or_zeros(tensors, grads, internal_root=True)
    if nested:
        grads = _kept(grads)
    return inputs.unflatten(grads)


def jacobian(f: Callable, x: Any, chunk: int | None = None, executor=None):
    """Jacobian by reverse mode: rows in batches, each batch one backward pass.

    All m rows go through the tape together as a leading batch axis on the
    cotangents (the mirror of dualad's k tangents), in chunks of ``chunk`` rows
    (None: as many as fit ``COTANGENT_BUDGET`` bytes). Shape ``f(x).shape + x.shape``.

    ``executor``: any ``concurrent.futures.Executor`` (a ``ProcessPoolExecutor``
    with the ``spawn`` start method, Dask's ``Client.get_executor()``); each row
    batch is one task (a forward and a batched backward pass) and ``f`` must be
    picklable. See :mod:`dualad.parallel`.

    Examples
    --------
    >>> import numpy as np
    >>> A = np.array([[1.0, 2.0], [3.0, 4.0]])
    >>> jacobian(lambda x: A @ x, np.ones(2))
    array([[1., 2.],
           [3., 4.]])
    """
    if executor is not None:  # issue 6: row batches split across processes / machines
        from dualad import parallel
        return parallel.reverse_jacobian(f, x, chunk, executor)
    nested = _nested()
    leaves, inputs = _leaves(x, nested)
    tensors = _track(leaves)
    outs, rebuild = _outputs(_call_f(f, tensors, inputs))
    n = sum(t.size for t in tensors)
    itemsize = max(np.dtype(strip(t.data).dtype).itemsize for t in tensors)
    results = []
    for oi, out in enumerate(outs):
        m = out.size
        rows = _pick_rows(chunk, n, itemsize)
        parts = []
        for start in range(0, max(m, 1), rows):
            b = min(rows, m - start)
            last = oi == len(outs) - 1 and start + b >= m
            parts.append(_backward_rows(out, tensors, start, b, retain_graph=nested or not last,
                                        create_graph=nested))
        results.append(_jacobian_blocks(parts, out, tensors, inputs))
    return rebuild(results)


def _jacobian_blocks(parts, out, tensors, inputs):
    """One output's Jacobian from its row batches (``parts[j][i]``: rows of input i)."""
    blocks = []
    for i, t in enumerate(tensors):
        stacked = parts[0][i] if len(parts) == 1 else np.concatenate([p[i] for p in parts], axis=0)
        blocks.append(np.reshape(stacked, out.shape + t.shape))
    return inputs.unflatten(blocks)


def _pick_rows(chunk, n, itemsize):
    """Rows per backward pass: ``chunk``, or as many as fit ``COTANGENT_BUDGET`` bytes."""
    rows = chunk if chunk is not None else max(1, COTANGENT_BUDGET // max(1, itemsize * max(n, 1)))
    if isinstance(rows, bool) or not isinstance(rows, (int, np.integer)) or rows < 1:
        raise ValueError(f"chunk must be a positive integer or None, got {chunk!r}")
    return rows


def _backward_rows(out, tensors, start, b, retain_graph, create_graph=False):
    """Rows ``start .. start+b`` of d out / d tensors in one batched backward pass: per input (b, *shape)."""
    if not out.requires_grad or b <= 0:
        return _grads_or_zeros(tensors, [None] * len(tensors), (max(b, 0),))
    cot = np.zeros((b, out.size), dtype=strip(out.data).dtype)
    cot[np.arange(b), start + np.arange(b)] = 1
    grads = run_backward([out], [cot.reshape((b,) + out.shape)], retain_graph=retain_graph,
                         create_graph=create_graph, inputs=tensors, nb=1)
    grads = _grads_or_zeros(tensors, grads, (b,), internal_root=True)
    return _kept(grads) if create_graph else grads


def hessian(f: Callable, x: Any, executor=None):
    """Hessian of a scalar ``f`` by forward-over-reverse: dualad's duals flow through the tape.

    ``executor``: the forward-mode chunks over the gradient run on it (each task
    one forward-over-reverse pass for its Hessian columns); see ``jacobian``.

    Examples
    --------
    >>> import numpy as np
    >>> rosen = lambda v: (1 - v[0]) ** 2 + 100 * (v[1] - v[0] ** 2) ** 2
    >>> hessian(rosen, np.array([1.0, 1.0]))
    array([[ 802., -400.],
           [-400.,  200.]])
    """
    if executor is not None:  # issue 6: a picklable gradient-of-f, its chunks on the executor
        from dualad import parallel
        return parallel.reverse_hessian(f, x, executor)
    if _nested():  # (inside another transform: reverse over reverse, which composes)
        return jacobian(_gradient_of(f, x), x)
    import dualad
    leaves, inputs = _leaves(x)
    return dualad.jacobian(_gradient_of(f, x), inputs.unflatten(leaves))


def hvp(f: Callable, x: Any, v: Any):
    """Hessian-vector product ``H(x) · v`` (forward-over-reverse), one pass, no Hessian formed.

    Examples
    --------
    >>> import numpy as np
    >>> hvp(lambda x: np.sum(x ** 3), np.array([1.0, 2.0]), np.array([1.0, 0.0]))
    array([6., 0.])
    """
    if _nested():  # (inside another transform: vᵀH = (Hv)ᵀ by reverse over reverse)
        return vjp(_gradient_of(f, x), x, v)[1]
    import dualad
    leaves, inputs = _leaves(x)
    return dualad.jvp(_gradient_of(f, x), inputs.unflatten(leaves), v)[1]


def _gradient_of(f, x):
    """``f``'s gradient as a function called the way the transforms call ``f`` at ``x``."""
    unpack = isinstance(x, (tuple, list))
    return lambda *a: gradient(f, a if unpack else a[0])


del math
