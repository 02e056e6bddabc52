"""The forward-mode transforms: jvp, derivative, gradient, jacobian, hessian.

Inputs ``x`` are a float, an array of any shape, or a tuple/list of those, nested
to any depth (then ``f`` is called as ``f(*x)``, each argument keeping its
structure, and results follow that structure, as JAX's pytrees). Integers
promote to float64; float32 stays float32. Each call seeds its inputs with a
fresh perturbation tag, so transforms nest without perturbation confusion, and
a result still carrying the tag of a transform that has returned raises (a dual
escaped it). ``f`` may write into its inputs in place; the caller's arrays are
never modified.

Dtypes of the derivatives: ``gradient`` and ``hessian`` have each input's float
dtype (as reverse mode's, and JAX's ``grad``). ``jvp``, ``derivative`` and
``jacobian`` give each output's tangents the output's dtype (a tangent has its
primal's dtype; JAX's ``jacfwd``), so an output that ``f`` promotes to float64
from float32 inputs has float64 rows where ``reversead.jacobian`` (JAX's
``jacrev``) keeps the inputs' float32; an output that does not depend on ``x``
(a constant) takes NumPy's promotion of it with the inputs (``1.0`` with
float32 inputs: float32, as ``reversead`` gives).
"""
from __future__ import annotations

import math
import sys
from typing import Any, Callable

import numpy as np

from .array import DualArray, as_float_array
from .dual import Dual
from .errors import DerivativeDropError, NonNumericError, PerturbationError, ShapeError
from .forward import new_tag

#: ``chunk=None`` picks k so that the seeded inputs' tangents fit in this many bytes.
TANGENT_BUDGET = 32 * 2**20


# -- inputs -------------------------------------------------------------------
class _Inputs:
    """The structure of the inputs ``x``: a leaf, or a tuple/list of structures (any depth).

    ``f`` is called as ``f(*x)`` for a tuple/list ``x``; ``unflatten`` puts one value per
    leaf (a derivative, a seed) back into that structure. Truthy exactly when ``f`` takes
    its inputs unpacked, so it reads as a flag "does f take its inputs unpacked".
    """

    __slots__ = ("tree",)

    def __init__(self, tree):
        self.tree = tree  # None (a leaf) or (type, [subtrees])

    def __bool__(self):
        return self.tree is not None

    def unflatten(self, values):
        return _build(self.tree, iter(values))

    def call(self, f, leaves):
        x = self.unflatten(leaves)
        return f(*x) if self else f(x)


def _build(tree, values):
    if tree is None:
        return next(values)
    kind, items = tree
    parts = [_build(t, values) for t in items]
    return kind(*parts) if hasattr(kind, "_fields") else kind(parts)  # a namedtuple, or tuple/list


def _flatten(x, leaf=None, name="x", leaves=None):
    """``(leaves, _Inputs)``: the converted input leaves in order (depth first) and their structure.

    ``leaf(v, name)`` checks and converts one input (this module's ``_leaf`` by default;
    reverse mode passes its own)."""
    leaf = _leaf if leaf is None else leaf
    top = leaves is None
    if top and not isinstance(x, (tuple, list)):
        return [leaf(x, name)], _ONE_LEAF
    leaves = [] if top else leaves
    if isinstance(x, (tuple, list)):
        if not x:
            raise ValueError(f"no inputs to differentiate with respect to ({name} is an empty tuple/list)")
        # the arguments of f: results per argument come back as a tuple (as before, and as
        # reversead's); inside an argument, tuples and lists keep their type
        kind = tuple if top else type(x)
        tree = (kind, [_flatten(v, leaf, f"{name}[{i}]", leaves)[1].tree for i, v in enumerate(x)])
    else:
        leaves.append(leaf(x, name))
        tree = None
    return leaves, _Inputs(tree)


_ONE_LEAF = _Inputs(None)


def _same_structure(v, inputs: _Inputs, what="v", paths=None):
    """Flatten ``v`` (jvp's tangents) as the inputs are, or raise ShapeError; ``paths`` gets
    each leaf's name (``v[1][0]``)."""
    if inputs.tree is None:
        if paths is not None:
            paths.append(what)
        return [v]
    flat = []
    _flatten_like(v, inputs.tree, what, flat, paths)
    return flat


def _flatten_like(value, tree, path, flat, paths):
    if tree is None:
        flat.append(value)
        if paths is not None:
            paths.append(path)
        return
    items = tree[1]
    if not isinstance(value, (tuple, list)) or len(value) != len(items):
        got = f"{type(value).__name__} of length {len(value)}" if isinstance(value, (tuple, list)) \
            else type(value).__name__
        raise ShapeError(f"jvp: {path} must be a tuple/list of {len(items)} tangents matching x, got {got}")
    for i, (val, sub) in enumerate(zip(value, items)):
        _flatten_like(val, sub, f"{path}[{i}]", flat, paths)


_REVERSE_OVER_FORWARD = (
    "dualad's dual numbers can flow through reversead's tape (forward over reverse: the dualad "
    "transform outside, e.g. dualad.jacobian(lambda x: reversead.gradient(f, x))), but a tape "
    "cannot flow through a dualad transform (reverse over forward). Inside a reversead transform "
    "differentiate with reversead (a nested reversead.gradient, reversead.hessian), or pass "
    "tensor.detach() where no derivative is wanted")


def _leaf(v, name):
    if getattr(v, "_ad_level", None) is not None:
        if not getattr(v, "_ad_forward", False):
            raise DerivativeDropError(f"dualad: {name} is a reversead Tensor. {_REVERSE_OVER_FORWARD}")
        return v  # already traced: an outer differentiation is running (nesting)
    if isinstance(v, (dict, set, str, bytes)) or v is None:
        raise NonNumericError(f"{name} must be a float or a real array, got {type(v).__name__}")
    arr = as_float_array(v, name)
    return arr[()] if arr.ndim == 0 and not isinstance(v, np.ndarray) else arr


def _is_numba_dispatcher(f) -> bool:
    """An ``@numba.njit`` function (checked without importing Numba): runs on compiled duals."""
    return "numba" in sys.modules and type(f).__module__.startswith("numba") and hasattr(f, "py_func")


def _call(f, leaves, unpack):
    """``f`` on the leaves: ``unpack`` is an ``_Inputs`` structure (or a plain flag)."""
    if isinstance(unpack, _Inputs):
        return unpack.call(f, leaves)
    return f(*leaves) if unpack else f(leaves[0])


_PLAIN = (np.ndarray, np.generic, float, int)

#: tags of the transforms running now; a result carrying any other (nonzero) tag escaped the
#: transform that made it (JAX's UnexpectedTracerError). Tag 0 is a hand-made Dual/DualArray's.
_running: set = set()


def _run(f, seeded, unpack, tag):
    """``f`` on seeded inputs while ``tag`` is running."""
    _running.add(tag)
    try:
        return _call(f, seeded, unpack)
    except ValueError as err:
        if isinstance(err.__cause__, DerivativeDropError) and "sequence" in str(err):
            # NumPy's report of o[i] = dual_array for a plain ndarray o; the cause says it better
            raise DerivativeDropError(
                "f wrote a DualArray into an element of a plain NumPy array (o[i] = x), which would "
                "drop its derivative; make o from the duals instead (o = x * 0.0 or x.copy() gives a "
                "DualArray to write into; or np.stack / np.concatenate the pieces)") from err
        raise
    finally:
        _running.discard(tag)


def _check_escaped(value, path):
    """Raise if ``value`` carries the perturbation of a transform that is no longer running."""
    while not isinstance(value, _PLAIN) and getattr(value, "_ad_level", None) is not None:
        if not getattr(value, "_ad_forward", False):
            raise DerivativeDropError(f"dualad: {path} is a reversead Tensor (f used one, made "
                                      f"or closed over). {_REVERSE_OVER_FORWARD}")
        tag = value.tag
        if tag and tag not in _running:
            raise PerturbationError(
                f"dualad: {path} carries the perturbation of a transform that has already returned "
                "(a dual escaped it: it was stored in a list, a global or a closure, and used after "
                "that call ended). Pass such values to f as arguments instead")
        value = value._ad_primal()


def _float_dtype(v):
    """The float dtype of ``v`` (a value or a dtype): its own if float, else float64."""
    dtype = v if isinstance(v, np.dtype) else getattr(v, "dtype", None)
    if dtype is None:
        return np.float64
    return dtype if np.dtype(dtype).kind == "f" else np.float64


def _borrow(v):
    """``v`` for ``f`` to use as its input: a read-only alias, copied on the first write or view
    (``DualArray._own_buffers``), so that ``f`` writing into its input never changes the caller's."""
    if type(v) is np.ndarray:
        alias = v.view()
        alias.setflags(write=False)
        return alias
    if type(v) is DualArray:  # an outer transform's value, passed to a nested one
        return DualArray._make(_borrow(v.primal), _borrow(v._t), v.tag)
    return v


def _seed(v, tangent, tag, caller_tangent=False):
    """Attach ``tangent`` (shape (k, *shape) or, for a float tangent, scalar) to input ``v``.

    ``caller_tangent``: the tangent is the caller's array (jvp's ``v``), protected as ``v`` is.
    """
    if np.ndim(v) == 0 and not isinstance(v, (np.ndarray, DualArray)):
        return Dual._make(v, tangent if np.ndim(tangent) != 2 else tangent[:, 0], tag)
    return DualArray._make(_borrow(v), _borrow(tangent) if caller_tangent else tangent, tag)


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


def _split(y, tag, k, leaves=(), path="f(x)"):
    """``(primal, tangent)`` of an output for perturbation ``tag``; tangent is (k, *shape).

    An output that does not depend on this perturbation (a constant) gets zeros in NumPy's
    promotion of it with the inputs ``leaves`` (a Python float with float32 inputs: float32).
    """
    level = getattr(y, "_ad_level", None)
    if level is not None and getattr(y, "_ad_forward", False) and level > tag:
        raise PerturbationError("f returned a dual of a newer perturbation than this differentiation "
                                "(a tangent escaped an inner dualad call)")
    if level is not None and getattr(y, "_ad_forward", False) and level == tag:
        primal, t = y.primal, y.tangent
        if isinstance(y, Dual):
            t = np.reshape(t, (-1,))
        _check_escaped(primal, path)
        _check_escaped(t, f"the derivative of {path}")
        return primal, t
    _check_escaped(y, path)
    shape = np.shape(y) if level is None else y.shape
    plain = y if level is None else _strip(y)
    if leaves:  # a Python float is weak: float32 inputs keep it float32 (NEP 50)
        plain = np.result_type(plain, *(_float_dtype(_strip(v)) for v in leaves))
    return y, np.zeros((k,) + tuple(shape), dtype=_float_dtype(plain))


def _numeric(y):
    return y if getattr(y, "_ad_level", None) is not None else as_float_array(y, "output")


class _Pair(tuple):
    """(primal, tangent) of one output leaf."""


# -- transforms ---------------------------------------------------------------
def jvp(f: Callable, x: Any, v: Any):
    """Jacobian-vector product in one forward pass: returns ``(f(x), J_f(x) · v)``.

    ``v`` has the structure and shapes of ``x``. Each tangent is of its output's type:
    an array for an array output (0-d for a 0-d array), a scalar for a scalar.

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
    leaves, inputs = _flatten(x)
    paths = []
    vs = _same_structure(v, inputs, "v", paths)
    tag = new_tag()
    seeded = []
    for leaf, t, where in zip(leaves, vs, paths):
        t = as_float_array(t, "tangent")
        if tuple(t.shape) != tuple(np.shape(leaf)):
            raise ShapeError(f"jvp: tangent {where} has shape {t.shape} but the input has shape "
                             f"{tuple(np.shape(leaf))}")
        t = t.astype(_float_dtype(leaf), copy=False)
        scalar = np.ndim(leaf) == 0 and not isinstance(leaf, (np.ndarray, DualArray))
        seeded.append(_seed(leaf, t[()] if scalar else t[None], tag, caller_tangent=True))  # 0-d: a DualArray
    out = _run(f, seeded, inputs, tag)

    def split(y, path):
        _check_output(y, path)
        primal, t = _split(y, tag, 1, leaves, path)
        t = t[0]
        if isinstance(primal, np.ndarray) and not isinstance(t, np.ndarray):
            t = np.asarray(t)  # a 0-d array output: its tangent too (t[0] of shape (1,) is a scalar)
        return _Pair((_owned(primal), _owned(t)))
    pairs = _tree_map(split, out)
    return _unzip(pairs, 0), _unzip(pairs, 1)


def _owned(a):
    """``a``, or a copy of it if read-only (f returned its input: the caller gets no alias of it)."""
    return np.array(a) if type(a) is np.ndarray and a.base is not None and not a.flags.writeable else a


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

    Each output's derivative has that output's dtype (see the module docstring).

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
    leaves, inputs = _flatten(x)
    leaf = leaves[0]
    tag = new_tag()
    seed = Dual._make(leaf, np.ones((), dtype=_float_dtype(leaf))[()], tag) \
        if not isinstance(leaf, DualArray) else DualArray._make(_borrow(leaf), np.ones((1,), leaf.dtype), tag)
    out = _run(f, [seed], inputs, tag)

    def tangent(y, path):
        _check_output(y, path)
        if isinstance(y, Dual) and y.tag == tag:
            _check_escaped(y.primal, path)
            _check_escaped(y.tangent, f"the derivative of {path}")
            return y.tangent
        _, t = _split(y, tag, 1, leaves, path)
        t = t[0]
        return _owned(t[()] if isinstance(t, np.ndarray) and t.ndim == 0 else t)
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
    """Run the chunked forward passes; returns (leaves, inputs, output primal tree, tangent tree (n, *S))."""
    leaves, inputs = _flatten(x)
    n = sum(math.prod(np.shape(v)) for v in leaves)
    k = _pick_chunk(chunk, n, leaves)
    parts, primal_out = [], None
    for start in range(0, max(n, 1), k):
        kc = min(k, n - start) if n else 0
        primal_out, tangent = _forward_pass(f, leaves, inputs, start, kc, scalar_output)
        parts.append(tangent)
    tangents = _tree_zip_concat(parts)
    return leaves, inputs, primal_out, tangents


def _forward_pass(f, leaves, unpack, start, kc, scalar_output=None):
    """One chunk: seed directions ``start .. start+kc``, run ``f``; (primal tree, tangent tree (kc, *S)).

    ``unpack``: an ``_Inputs`` structure (or a plain flag). A scalar output's tangents
    (``scalar_output``: gradient) have the inputs' float dtype.
    """
    tag = new_tag()
    seeded = [_seed(v, t, tag) for v, t in zip(leaves, _basis(leaves, start, kc))]
    out = _run(f, seeded, unpack, tag)
    if scalar_output is not None:
        _check_scalar(out, scalar_output)

    def split(y, path):
        _check_output(y, path)
        primal, t = _split(y, tag, kc, leaves, path)
        if scalar_output is not None:
            t = _as_dtype(t, _inputs_dtype(leaves))
        return _Pair((primal, t))
    pairs = _tree_map(split, out)
    return _unzip(pairs, 0), _unzip(pairs, 1)


def _inputs_dtype(leaves):
    """The float dtype NumPy promotes the inputs to (the common case, one dtype, without a call)."""
    dtypes = {_float_dtype(_strip(v)) for v in leaves}
    return dtypes.pop() if len(dtypes) == 1 else np.result_type(*dtypes)


def _as_dtype(a, dtype):
    """``a`` (an array or a traced one) cast to float ``dtype`` where it differs."""
    return a if _float_dtype(_strip(a)) == dtype else a.astype(dtype)


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
    """(n, *S_out) tangents -> J of shape S_out + x.shape (per input in x's structure for tuple x).

    ``unpack``: an ``_Inputs`` structure (nested tuples/lists) or a plain flag.
    """
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
            blocks.append(_owned(np.reshape(block, out_shape + shape)))
            offset += size
        if isinstance(unpack, _Inputs):
            return unpack.unflatten(blocks)
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
    leaves, inputs, _, tangents = _jacobian_passes(f, x, chunk)
    return _columns_to_jacobian(tangents, leaves, inputs)


def gradient(f: Callable, x: Any, chunk: int | None = None, executor=None):
    """Gradient of a scalar ``f: R^n -> R`` with ``x``'s shape, in ``ceil(n / chunk)`` passes.

    Each input's gradient has that input's float dtype, whatever the output's (as JAX's
    ``grad`` and reverse mode).

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
    leaves, inputs, _, tangents = _jacobian_passes(f, x, chunk, scalar_output="gradient")
    grads = _columns_to_jacobian(tangents, leaves, inputs)
    if not inputs:
        return _as_dtype(grads, _float_dtype(_strip(leaves[0])))
    flat = _same_structure(grads, inputs, "gradient")
    return inputs.unflatten(_as_dtype(g, _float_dtype(_strip(v))) for g, v in zip(flat, leaves))


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
    leaves, inputs = _flatten(x)
    inner, outer = _hessian_chunks(chunk, leaves)

    def grad_f(*args):
        return gradient(f, tuple(args) if inputs else args[0], inner)
    return jacobian(grad_f, inputs.unflatten(leaves), outer)


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
