"""Machinery of the primitive table: rule kinds, registries and batching helpers.

A *rule* is one differentiable primitive. It knows its primal (a NumPy function),
its JVP (tangents in, tangent out) and its VJP (cotangent in, one input's
cotangent out). Both modes use the same rule object:

* ``dualad`` calls ``rule.jvp`` with tangents that carry ``nb = 1`` leading
  batch axis (the k directions of vector mode);
* ``reversead`` calls ``rule.vjp`` with cotangents that carry ``nb = 0`` (plain
  backward) or ``nb = 1`` (a batch of cotangents: Jacobian rows) leading axes.

Rules are written with NumPy functions only, so the same rule differentiates
nested duals (forward-over-forward) and Tensors (``create_graph=True``).

Calling a rule (``rule(x, y, axis=0)``) *binds* it: if an argument is a traced
value (a ``Dual``, ``DualArray`` or ``Tensor``), the outermost one's mode applies
the rule; otherwise the plain primal runs.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import numpy as np

from .. import kernels
from ..errors import ShapeError

# -- registries ----------------------------------------------------------------
RULES: dict[str, "Rule"] = {}
#: ufunc -> elementwise rule (used by ``__array_ufunc__`` of every traced type)
UFUNC_RULES: dict[np.ufunc, "Rule"] = {}
#: NumPy function -> implementation with NumPy's own signature (used by ``__array_function__``)
FUNCTION_IMPLS: dict[Callable, Callable] = {}
#: NumPy function -> test examples ``rng -> (args, kwargs)``; see ``dualad.testing``
EXAMPLES: dict[Any, list[Callable]] = {}
#: ufuncs whose results are plain arrays (comparisons, floor, sign ...)
NONDIFF_UFUNCS: set = set()


def _add_rule(rule: "Rule") -> "Rule":
    if rule.name in RULES:
        raise ValueError(f"rule {rule.name!r} is registered twice")
    RULES[rule.name] = rule
    return rule


# -- batching helpers (nb = number of leading batch axes) -----------------------
def expand_to(t, nb: int, ndim: int):
    """View batched ``t`` (nb batch axes + data axes) with data axes padded to ``ndim``."""
    missing = ndim - (t.ndim - nb)
    if missing <= 0:
        return t
    return t.reshape(t.shape[:nb] + (1,) * missing + t.shape[nb:])


def shift_axis(axis, nb: int, ndim: int):
    """Map a data ``axis`` (int, tuple or None) to the batched array's axis numbers."""
    if axis is None:
        return tuple(range(nb, nb + ndim))
    if isinstance(axis, (tuple, list)):
        return tuple(normalize_axis(a, ndim) + nb for a in axis)
    return normalize_axis(axis, ndim) + nb


def normalize_axis(axis: int, ndim: int) -> int:
    axis = int(axis)
    if not -ndim <= axis < max(ndim, 1):
        raise np.exceptions.AxisError(axis, ndim)
    return axis % max(ndim, 1)


def unbroadcast(g, shape: tuple, nb: int):
    """Sum batched ``g`` down to ``batch + shape``: the transpose of broadcasting."""
    gshape = g.shape
    if nb == 0 and gshape == shape:
        return g  # nothing to sum (the common case)
    if type(shape) is not tuple:
        shape = tuple(shape)
    # the axes depend only on the shapes: worked out once per (g's shape, shape, nb)
    plan = _UNBROADCAST_PLANS.get((gshape, shape, nb))
    if plan is None:
        plan = _unbroadcast_plan(gshape, shape, nb)
    axes, keepdims, final, layout, summed_shape = plan
    if axes:
        if type(g) is np.ndarray:
            # one loop where NumPy pays per row (same numbers); else what np.sum runs, without
            # its wrapper. Summing only leading axes (a bias) gives x's shape at once, and no
            # view (which a leaf's .grad would copy)
            summed = None if layout is None else kernels.sum_kept(g, layout, summed_shape)
            if summed is not None:
                return summed
            g = np.add.reduce(g, axis=axes, keepdims=keepdims)
        else:
            g = np.sum(g, axis=axes, keepdims=keepdims)
    return g if final is None else g.reshape(final)


#: (g's shape, target shape, nb) -> (axes to sum, keepdims, shape to reshape to or None,
#: ``kernels.sum_layout`` of the sum or None, the shape returned)
_UNBROADCAST_PLANS: dict = {}


def _unbroadcast_plan(gshape, shape, nb):
    lead = len(gshape) - nb - len(shape)
    axes = list(range(nb, nb + lead))
    for i, n in enumerate(shape):
        if n == 1 and gshape[nb + lead + i] != 1:
            axes.append(nb + lead + i)
    axes = tuple(axes)
    layout = kernels.sum_layout(gshape, axes) if axes else None
    if nb == 0 and len(axes) == lead:
        plan = (axes, False, None, layout, shape)  # only leading axes: the sum has x's shape
    else:
        kept = list(gshape)
        for a in axes:
            kept[a] = 1
        target = gshape[:nb] + shape
        plan = (axes, True, None if tuple(kept) == target else target, layout, target)
    if len(_UNBROADCAST_PLANS) < 4096:
        _UNBROADCAST_PLANS[(gshape, shape, nb)] = plan
    return plan


def broadcast_view(g, shape: tuple):
    """``np.broadcast_to(g, shape)`` (a read-only array) without its Python-level cost.

    Reverse mode broadcasts the cotangent of every reduction; ``np.broadcast_to`` builds an
    iterator for that and costs ~7 us a call, ten times the op it serves on small arrays.
    A small ``g`` is copied into an immutable buffer that the result views.
    """
    if type(g) is not np.ndarray:
        if type(g) is not np.float64 and type(g) is not np.float32:
            return np.broadcast_to(g, shape)
        g = np.asarray(g)
    gshape = g.shape
    lead = len(shape) - len(gshape)
    if lead < 0 or g.size > 4096 or not g.flags.c_contiguous:
        return np.broadcast_to(g, shape)
    strides = [0] * lead
    for n, m, st in zip(gshape, shape[lead:], g.strides):
        if n == m:
            strides.append(st)
        elif n == 1:
            strides.append(0)
        else:
            return np.broadcast_to(g, shape)  # incompatible shapes: NumPy's error
    return np.ndarray(shape, g.dtype, g.tobytes(), 0, tuple(strides))


def full_batch(t, batch: tuple, shape: tuple):
    """Materialise ``t`` at exactly ``batch + shape`` (broadcast constants, keep dtype)."""
    target = tuple(batch) + tuple(shape)
    if t.shape == target:
        return t
    return np.broadcast_to(t, target).copy() if isinstance(t, np.ndarray) else np.broadcast_to(t, target)


def match_dtype(t, like):
    """Cast a float array, NumPy scalar (what 0-d arithmetic returns) or DualArray (forward
    over reverse) to ``like``'s float dtype: float32 stays float32, also where a partial such
    as ``(x > lo) * 1.0`` is float64."""
    dtype = getattr(like, "dtype", None)
    if (dtype is not None and (isinstance(t, (np.ndarray, np.floating)) or _castable_trace(t))
            and t.dtype != dtype and np.dtype(dtype).kind == "f"):
        return t.astype(dtype)
    return t


def _castable_trace(t) -> bool:
    return getattr(t, "_ad_level", None) is not None and hasattr(t, "astype")


def shape_of(x) -> tuple:
    return np.shape(x) if not hasattr(x, "shape") else tuple(x.shape)


# -- nan-safe multiplication (a zero tangent times an infinite partial gives 0) --
class _Config:
    nan_safe = False


CONFIG = _Config()


def scale(partial, t):
    """``partial * t`` (with the NaN-safe convention when it is switched on)."""
    if isinstance(partial, (int, float)):
        if partial == 1:
            return t
        if partial == -1:
            return -t
    if CONFIG.nan_safe:
        with np.errstate(invalid="ignore"):  # inf * 0 is replaced just below
            product = partial * t
        return np.where(t == 0, 0, product)
    return partial * t


# -- binding --------------------------------------------------------------------
def top_traced(xs: Sequence) -> Any:
    """The outermost traced value among ``xs`` (highest ``_ad_level``), or None."""
    top, level = None, -math.inf
    for x in xs:
        lv = getattr(x, "_ad_level", None)
        if lv is not None and lv > level:
            top, level = x, lv
    return top


class Rule:
    """A differentiable primitive: primal, JVP and VJP.

    Subclasses fill in ``jvp`` and ``vjp``. ``nondiff_argnums`` lists positions whose
    values are never differentiated (conditions, integer counts).
    """

    kind = "custom"

    def __init__(self, name: str, primal: Callable, *, jvp: Callable | None = None,
                 vjp: Callable | None = None, nondiff_argnums: Sequence[int] = ()):
        self.name = name
        self.primal = primal
        self.nondiff_argnums = frozenset(nondiff_argnums)
        if jvp is not None:
            self._jvp = jvp
        if vjp is not None:
            self._vjp = vjp
        _add_rule(self)

    def __repr__(self) -> str:
        return f"<{self.kind} rule {self.name!r}>"

    def __call__(self, *xs, **static):
        top = top_traced(xs)
        if top is None:
            return self.primal(*xs, **static)
        return type(top)._ad_apply(self, xs, static)

    def saved_for(self, argnum: int) -> tuple[frozenset | None, bool]:
        """Which primal inputs (indices; None = all) and whether the output the VJP for ``argnum`` reads.

        The reverse mode saves only these, so the tape holds no value it never uses.
        """
        return None, True

    # forward: tangents[i] is None for constants; batched with nb leading axes
    def jvp(self, primals, tangents, out, nb: int, static: dict):
        return self._jvp(primals, tangents, out, nb, **static)

    # reverse: cotangent of primals[argnum]
    def vjp(self, argnum: int, out_bar, primals, out, nb: int, static: dict):
        return self._vjp(argnum, out_bar, primals, out, nb, **static)


class Elementwise(Rule):
    """An elementwise primitive given by one partial derivative per argument.

    ``partials`` is a callable ``(x, ans) -> df/dx`` for one argument, or a tuple
    with one entry per argument: a callable ``(*xs, ans) -> df/dx_i``, a number
    (constant partial such as 1 or -1), or None (not differentiable in that arg).
    JVP: ``out_dot = sum_i partial_i * x_dot_i``; VJP: ``unbroadcast(out_bar * partial_i)``.
    ``domain`` gives, per argument, the open interval tests sample from.
    """

    kind = "elementwise"

    def __init__(self, name, primal, partials, *, domain=None, kernel=True):
        if not isinstance(partials, tuple):
            partials = (partials,)
        self.partials = partials
        self.nin = len(partials)
        self._saved_cache: dict = {}
        self.domain = domain if domain is not None else ((-2.0, 2.0),) * self.nin
        self.kernel = kernel
        super().__init__(name, primal,
                         nondiff_argnums=[i for i, p in enumerate(partials) if p is None])

    def saved_for(self, argnum):
        cached = self._saved_cache.get(argnum)
        if cached is None:
            p = self.partials[argnum]
            if isinstance(p, (int, float)):
                cached = frozenset(), False
            else:
                used = _loaded_arguments(p)
                cached = frozenset(i for i in used if i < self.nin), self.nin in used
            self._saved_cache[argnum] = cached
        return cached

    def partial(self, i, primals, out):
        p = self.partials[i]
        return p if isinstance(p, (int, float)) else p(*primals, out)

    def jvp(self, primals, tangents, out, nb, static):
        out_t = None
        ndim = np.ndim(out)
        for i, t in enumerate(tangents):
            if t is None or self.partials[i] is None:
                continue
            term = scale(self.partial(i, primals, out), expand_to(t, nb, ndim))
            out_t = term if out_t is None else out_t + term
        if out_t is None:
            return None
        batch = tuple(next(t for t in tangents if t is not None).shape[:nb])
        return match_dtype(full_batch(out_t, batch, shape_of(out)), out)

    def vjp(self, argnum, out_bar, primals, out, nb, static):
        g = scale(self.partial(argnum, primals, out), out_bar)
        return match_dtype(unbroadcast(g, shape_of(primals[argnum]), nb), primals[argnum])


def _loaded_arguments(fn) -> set:
    """Positions of ``fn``'s parameters that its bytecode reads (all of them if unsure)."""
    import dis

    code = fn.__code__
    params = code.co_varnames[:code.co_argcount]
    if code.co_cellvars:
        return set(range(len(params)))
    names = set()
    for ins in dis.get_instructions(fn):
        if ins.opname.startswith("LOAD_FAST"):
            names.update(ins.argval if isinstance(ins.argval, tuple) else (ins.argval,))
    return {i for i, name in enumerate(params) if name in names}


class Linear(Rule):
    """A primitive linear in its inputs: the JVP applies the op to the tangents.

    ``batched(tangents, primals, nb, **static)`` applies the op to batched tangents
    (None entries are zero); ``transpose(argnum, out_bar, primals, nb, **static)`` is the VJP.
    """

    kind = "linear"

    def __init__(self, name, primal, batched, transpose, nondiff_argnums=()):
        self.batched = batched
        self.transpose = transpose
        super().__init__(name, primal, nondiff_argnums=nondiff_argnums)

    def saved_for(self, argnum):
        return frozenset(), False  # a linear map's transpose needs only shapes

    def jvp(self, primals, tangents, out, nb, static):
        return self.batched(tangents, primals, nb, **static)

    def vjp(self, argnum, out_bar, primals, out, nb, static):
        return self.transpose(argnum, out_bar, primals, nb, **static)


def register_function(numpy_func: Callable, *, examples: Sequence[Callable] = ()):
    """Decorator: ``impl`` (NumPy's signature) serves ``numpy_func`` for every traced type."""
    def deco(impl: Callable) -> Callable:
        if numpy_func in FUNCTION_IMPLS:
            raise ValueError(f"{numpy_func!r} is registered twice")
        FUNCTION_IMPLS[numpy_func] = impl
        EXAMPLES[numpy_func] = list(examples)
        return impl
    return deco


def check_tangent_shape(name: str, t, expected: tuple) -> None:
    if tuple(t.shape) != tuple(expected):
        raise ShapeError(f"{name}: tangent has shape {tuple(t.shape)}, expected {tuple(expected)}")
