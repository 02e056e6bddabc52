"""The forward-mode transforms: jvp, derivative, gradient, jacobian, hessian.

Inputs ``x`` are a float, an array of any shape, or a tuple/list of those (then
``f`` is called as ``f(*x)`` and results follow that structure). Integers
promote to float64; float32 stays float32. Each call seeds its inputs with a
fresh perturbation tag, so transforms nest without perturbation confusion.
"""
from __future__ import annotations

import math
import sys
from typing import Any, Callable

import numpy as np

from .array import DualArray, as_float_array
from .dual import Dual
from .errors import NonNumericError, PerturbationError, ShapeError
from .forward import new_tag

#: ``chunk=None`` picks k so that the seeded inputs' tangents fit in this many bytes.
TANGENT_BUDGET = 32 * 2**20


# -- inputs -------------------------------------------------------------------
def _leaves(x, leaf=None) -> tuple[list, bool]:
    """The input leaves and whether ``f`` takes them unpacked (tuple/list input).

    ``leaf(v, name)`` checks and converts one input (this module's ``_leaf`` by default;
    reverse mode passes its own).
    """
    leaf = _leaf if leaf is None else leaf
    if isinstance(x, (tuple, list)):
        if not x:
            raise ValueError("no inputs to differentiate with respect to (empty tuple/list)")
        return [leaf(v, f"x[{i}]") for i, v in enumerate(x)], True
    return [leaf(x, "x")], False


def _leaf(v, name):
    if getattr(v, "_ad_level", None) is not None:
        return v  # already traced: an outer differentiation is running (nesting)
    if isinstance(v, (dict, set, str, bytes)) or v is None:
        raise NonNumericError(f"{name} must be a float or a real array, got {type(v).__name__}")
    arr = as_float_array(v, name)
    return arr[()] if arr.ndim == 0 and not isinstance(v, np.ndarray) else arr


def _is_numba_dispatcher(f) -> bool:
    """An ``@numba.njit`` function (checked without importing Numba): runs on compiled duals."""
    return "numba" in sys.modules and type(f).__module__.startswith("numba") and hasattr(f, "py_func")


def _call(f, leaves, unpack):
    return f(*leaves) if unpack else f(leaves[0])


def _float_dtype(v):
    dtype = getattr(v, "dtype", None)
    if dtype is None:
        return np.float64
    return dtype if np.dtype(dtype).kind == "f" else np.float64


def _seed(v, tangent, tag):
    """Attach ``tangent`` (shape (k, *shape) or, for a float tangent, scalar) to input ``v``."""
    if np.ndim(v) == 0 and not isinstance(v, (np.ndarray, DualArray)):
        return Dual._make(v, tangent if np.ndim(tangent) != 2 else tangent[:, 0], tag)
    return DualArray._make(v, tangent, tag)


# -- outputs ------------------------------------------------------------------
def _tree_map(fn, tree, path="f(x)"):
    if isinstance(tree, tuple):
        return tuple(_tree_map(fn, t, f"{path}[{i}]") for i, t in enumerate(tree))
    if isinstance(tree, list):
        return [_tree_map(fn, t, f"{path}[{i}]") for i, t in enumerate(tree)]
    if isinstance(tree, dict):
        return {key: _tree_map(fn, t, f"{path}[{key!r}]") for key, t in tree.items()}
    return fn(tree, path)


def _check_output(y, path):
    if getattr(y, "_ad_level", None) is not None:
        return
    if isinstance(y, (bool, int, float, np.number, np.bool_)):
        return
    if isinstance(y, np.ndarray) and y.dtype.kind in "biuf":
        return
    if isinstance(y, np.ndarray) and y.dtype == object:
        raise NonNumericError(f"{path} is an object array (dtype=object), e.g. a np.array of Duals; "
                              "build arrays from duals with np.stack or a DualArray instead")
    dtype = f" of dtype {y.dtype}" if isinstance(y, np.ndarray) else ""
    raise NonNumericError(f"{path} must be a number, an array, or a tuple/list/dict of them; "
                          f"got {type(y).__name__}{dtype}")


def _split(y, tag, k):
    """``(primal, tangent)`` of an output for perturbation ``tag``; tangent is (k, *shape)."""
    level = getattr(y, "_ad_level", None)
    if level is not None and getattr(y, "_ad_forward", False) and level > tag:
        raise PerturbationError("f returned a dual of a newer perturbation than this differentiation "
                                "(a tangent escaped an inner dualad call)")
    if level is not None and getattr(y, "_ad_forward", False) and level == tag:
        t = y.tangent
        if isinstance(y, Dual):
            t = np.reshape(t, (-1,))
        return y.primal, t
    shape = np.shape(y) if level is None else y.shape
    dtype = _float_dtype(y if level is None else y.primal)
    return y, np.zeros((k,) + tuple(shape), dtype=dtype)


def _numeric(y):
    return y if getattr(y, "_ad_level", None) is not None else as_float_array(y, "output")


class _Pair(tuple):
    """(primal, tangent) of one output leaf."""


# -- transforms ---------------------------------------------------------------
def jvp(f: Callable, x: Any, v: Any):
    """Jacobian-vector product in one forward pass: returns ``(f(x), J_f(x) · v)``.

    ``v`` has the structure and shapes of ``x``.

    Examples
    --------
    >>> import numpy as np
    >>> y, t = jvp(np.sin, np.array([0.0, 1.0]), np.array([1.0, 1.0]))
    >>> t
    array([1.        , 0.54030231])
    """
    if _is_numba_dispatcher(f):  # issue 5: njit code runs compiled on duals
        from . import compiled
        return compiled.jvp(f, x, v)
    leaves, unpack = _leaves(x)
    if unpack:
        if not isinstance(v, (tuple, list)) or len(v) != len(leaves):
            raise ShapeError(f"jvp: v must be a tuple/list of {len(leaves)} tangents matching x, "
                             f"got {type(v).__name__}{'' if not hasattr(v, '__len__') else f' of length {len(v)}'}")
        vs = list(v)
    else:
        vs = [v]
    tag = new_tag()
    seeded = []
    for i, (leaf, t) in enumerate(zip(leaves, vs)):
        t = as_float_array(t, "tangent")
        if tuple(t.shape) != tuple(np.shape(leaf)):
            where = f"v[{i}]" if unpack else "v"
            raise ShapeError(f"jvp: tangent {where} has shape {t.shape} but the input has shape "
                             f"{tuple(np.shape(leaf))}")
        t = t.astype(_float_dtype(leaf), copy=False)
        scalar = np.ndim(leaf) == 0 and not isinstance(leaf, (np.ndarray, DualArray))
        seeded.append(_seed(leaf, t[()] if scalar else t[None], tag))  # a 0-d array stays a DualArray
    out = _call(f, seeded, unpack)

    def split(y, path):
        _check_output(y, path)
        primal, t = _split(y, tag, 1)
        return _Pair((primal, t[0]))
    pairs = _tree_map(split, out)
    return _unzip(pairs, 0), _unzip(pairs, 1)


def _unzip(tree, i):
    if isinstance(tree, _Pair):
        return tree[i]
    if isinstance(tree, tuple):
        return tuple(_unzip(t, i) for t in tree)
    if isinstance(tree, list):
        return [_unzip(t, i) for t in tree]
    return {key: _unzip(t, i) for key, t in tree.items()}


def derivative(f: Callable, x: Any):
    """Derivative of ``f: R -> anything`` at a scalar ``x``, with the output's structure.

    Examples
    --------
    >>> import math
    >>> bool(round(derivative(lambda t: t ** t, 2.0), 6) == round(4 * (1 + math.log(2)), 6))
    True
    """
    if _is_numba_dispatcher(f):  # issue 5: njit code runs compiled on duals
        from . import compiled
        return compiled.derivative(f, x)
    if isinstance(x, (tuple, list)) or np.ndim(x) != 0:
        raise ShapeError(f"derivative needs a scalar input, got shape {np.shape(x)}; "
                         "use gradient (scalar output) or jacobian")
    (leaf,), _ = _leaves(x)
    tag = new_tag()
    seed = Dual._make(leaf, np.ones((), dtype=_float_dtype(leaf))[()], tag) \
        if not isinstance(leaf, DualArray) else DualArray._make(leaf, np.ones((1,), leaf.dtype), tag)
    out = f(seed)

    def tangent(y, path):
        _check_output(y, path)
        if isinstance(y, Dual) and y.tag == tag:
            return y.tangent
        _, t = _split(y, tag, 1)
        t = t[0]
        return t[()] if isinstance(t, np.ndarray) and t.ndim == 0 else t
    return _tree_map(tangent, out)


def _pick_chunk(chunk, n, leaves):
    if chunk is None:
        itemsize = max(np.dtype(_float_dtype(_strip(v))).itemsize for v in leaves)
        return max(1, min(n, TANGENT_BUDGET // max(1, itemsize * n)))
    if isinstance(chunk, bool) or not isinstance(chunk, (int, np.integer)) or chunk < 1:
        raise ValueError(f"chunk must be a positive integer or None, got {chunk!r}")
    return min(int(chunk), max(n, 1))


def _strip(v):
    while getattr(v, "_ad_level", None) is not None:
        v = v._ad_primal()
    return v


def _basis(leaves, start, k):
    """Tangents for directions ``start .. start+k`` of the flattened inputs, per leaf."""
    seeds, offset = [], 0
    for leaf in leaves:
        shape = tuple(np.shape(leaf))
        size = math.prod(shape)
        dtype = _float_dtype(_strip(leaf))
        lo, hi = max(start, offset), min(start + k, offset + size)
        if lo == start and k == size and offset == start:
            t = np.eye(size, dtype=dtype)  # the whole leaf in one pass
        else:
            t = np.zeros((k, size), dtype=dtype)
            if lo < hi:
                rows = np.arange(lo, hi)
                t[rows - start, rows - offset] = 1
        seeds.append(t.reshape((k,) + shape))
        offset += size
    return seeds


def _jacobian_passes(f, x, chunk, scalar_output=None):
    """Run the chunked forward passes; returns (leaves, unpack, output primal tree, tangent tree (n, *S))."""
    leaves, unpack = _leaves(x)
    n = sum(math.prod(np.shape(v)) for v in leaves)
    k = _pick_chunk(chunk, n, leaves)
    parts, primal_out = [], None
    for start in range(0, max(n, 1), k):
        kc = min(k, n - start) if n else 0
        primal_out, tangent = _forward_pass(f, leaves, unpack, start, kc, scalar_output)
        parts.append(tangent)
    tangents = _tree_zip_concat(parts)
    return leaves, unpack, primal_out, tangents


def _forward_pass(f, leaves, unpack, start, kc, scalar_output=None):
    """One chunk: seed directions ``start .. start+kc``, run ``f``; (primal tree, tangent tree (kc, *S))."""
    tag = new_tag()
    seeded = [_seed(v, t, tag) for v, t in zip(leaves, _basis(leaves, start, kc))]
    out = _call(f, seeded, unpack)
    if scalar_output is not None:
        _check_scalar(out, scalar_output)

    def split(y, path):
        _check_output(y, path)
        return _Pair(_split(y, tag, kc))
    pairs = _tree_map(split, out)
    return _unzip(pairs, 0), _unzip(pairs, 1)


def _check_scalar(out, name):
    if isinstance(out, (tuple, list, dict)) or np.ndim(out) != 0 and getattr(out, "shape", ()) != ():
        shape = "a " + type(out).__name__ if isinstance(out, (tuple, list, dict)) else f"shape {np.shape(out) if getattr(out, '_ad_level', None) is None else out.shape}"
        raise ShapeError(f"{name} needs f to return a scalar, but f returned {shape}; "
                         "use jacobian for vector-valued functions")


def _tree_zip_concat(parts):
    first = parts[0]
    if isinstance(first, (tuple, list)):
        return type(first)(_tree_zip_concat([p[i] for p in parts]) for i in range(len(first)))
    if isinstance(first, dict):
        return {key: _tree_zip_concat([p[key] for p in parts]) for key in first}
    return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=0)


def _columns_to_jacobian(tangents, leaves, unpack):
    """(n, *S_out) tangents -> J of shape S_out + x.shape (a tuple over inputs for tuple x)."""
    def per_output(t, path):
        if type(t) is np.ndarray:  # plain: a direct transpose (np.moveaxis costs more here)
            moved = t.transpose(tuple(range(1, t.ndim)) + (0,)) if t.ndim > 1 else t
        else:
            moved = np.moveaxis(t, 0, -1) if np.ndim(t) > 1 else t
        out_shape = tuple(np.shape(t))[1:]
        blocks, offset = [], 0
        for leaf in leaves:
            shape = tuple(np.shape(leaf))
            size = math.prod(shape)
            block = moved if len(leaves) == 1 else moved[..., offset:offset + size]
            blocks.append(np.reshape(block, out_shape + shape))
            offset += size
        return tuple(blocks) if unpack else blocks[0]
    return _tree_map(per_output, tangents)


def jacobian(f: Callable, x: Any, chunk: int | None = None, executor=None):
    """Jacobian of ``f`` at ``x`` by chunked vector-mode forward passes.

    Returns an array of shape ``f(x).shape + x.shape`` (per input for tuple ``x``,
    per output for tuple outputs), computed in ``ceil(n / chunk)`` passes each
    carrying ``chunk`` tangents. ``chunk=None`` takes as many directions per pass
    as fit in ``TANGENT_BUDGET`` bytes of input tangents.

    ``executor``: any ``concurrent.futures.Executor`` (a ``ProcessPoolExecutor``
    with the ``spawn`` start method, Dask's ``Client.get_executor()``); the chunks
    run as independent tasks on it and ``f`` must be picklable. See
    :mod:`dualad.parallel`.

    Examples
    --------
    >>> import numpy as np
    >>> A = np.array([[1.0, 2.0], [3.0, 4.0]])
    >>> jacobian(lambda x: A @ x, np.ones(2))
    array([[1., 2.],
           [3., 4.]])
    """
    if executor is not None:  # issue 6: chunks split across processes / machines
        from . import parallel
        return parallel.forward_jacobian(f, x, chunk, executor)
    if _is_numba_dispatcher(f):  # issue 5: njit code runs compiled on duals
        from . import compiled
        return compiled.jacobian(f, x, chunk)
    leaves, unpack, _, tangents = _jacobian_passes(f, x, chunk)
    return _columns_to_jacobian(tangents, leaves, unpack)


def gradient(f: Callable, x: Any, chunk: int | None = None, executor=None):
    """Gradient of a scalar ``f: R^n -> R`` with ``x``'s shape, in ``ceil(n / chunk)`` passes.

    ``executor``: run the passes on a ``concurrent.futures.Executor`` (see ``jacobian``).

    Examples
    --------
    >>> import numpy as np
    >>> gradient(lambda x: np.sum(x ** 2), np.array([1.0, 2.0, 3.0]))
    array([2., 4., 6.])
    """
    if executor is not None:  # issue 6: chunks split across processes / machines
        from . import parallel
        return parallel.forward_jacobian(f, x, chunk, executor, scalar_output="gradient")
    if _is_numba_dispatcher(f):  # issue 5: njit code runs compiled on duals
        from . import compiled
        return compiled.gradient(f, x, chunk)
    leaves, unpack, _, tangents = _jacobian_passes(f, x, chunk, scalar_output="gradient")
    return _columns_to_jacobian(tangents, leaves, unpack)


def hessian(f: Callable, x: Any, chunk: int | None = None, executor=None):
    """Hessian of a scalar ``f`` by forward-over-forward: shape ``x.shape + x.shape``.

    ``executor``: the outer Jacobian's chunks run on it (each task computes its
    columns of the Hessian, the inner gradient serially); see ``jacobian``.

    Examples
    --------
    >>> import numpy as np
    >>> rosen = lambda v: (1 - v[0]) ** 2 + 100 * (v[1] - v[0] ** 2) ** 2
    >>> hessian(rosen, np.array([1.0, 1.0]))
    array([[ 802., -400.],
           [-400.,  200.]])
    """
    if executor is not None:  # issue 6: picklable gradient-of-f, outer chunks on the executor
        from . import parallel
        return parallel.forward_hessian(f, x, chunk, executor)
    leaves, unpack = _leaves(x)
    inner, outer = _hessian_chunks(chunk, leaves)

    def grad_f(*args):
        return gradient(f, tuple(args) if unpack else args[0], inner)
    return jacobian(grad_f, tuple(leaves) if unpack else leaves[0], outer)


def _hessian_chunks(chunk, leaves):
    """(inner, outer) chunk sizes: nested tangents hold outer x inner x n numbers.

    With ``chunk=None`` the inner gradient takes its usual chunk and the outer pass only as
    many directions as keep the nested tangents within ``TANGENT_BUDGET`` bytes.
    """
    if chunk is not None:
        return chunk, chunk
    n = sum(math.prod(np.shape(v)) for v in leaves)
    inner = _pick_chunk(None, n, leaves)
    itemsize = max(np.dtype(_float_dtype(_strip(v))).itemsize for v in leaves)
    return inner, max(1, min(n, TANGENT_BUDGET // max(1, itemsize * n * inner)))
