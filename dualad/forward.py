"""Forward mode: apply a rule to dual values of one perturbation tag.

Every differentiation call owns a *tag* (an increasing integer). An operation
looks at the highest tag among its arguments: values of that tag contribute
``(primal, tangent)``; everything else, including duals of lower tags, is a
constant whose own arithmetic recurses. That is what keeps nested derivatives
free of perturbation confusion (Siskind & Pearlmutter 2005).
"""
from __future__ import annotations

import itertools

import numpy as np

from . import kernels
from .errors import PerturbationError
from .rules.core import Elementwise, match_dtype, scale

_tags = itertools.count(1)
# bound by dualad.array / dualad.dual once those classes exist (they import this module)
DualArray = Dual = None


def new_tag() -> int:
    """A fresh perturbation tag, higher than every tag in use."""
    return next(_tags)


def _forward(x) -> bool:
    return getattr(x, "_ad_forward", False)


def apply(rule, xs, static):
    """Apply ``rule`` to ``xs`` where the outermost traced value is a Dual/DualArray."""
    tag = -1
    for x in xs:
        if type(x) is DualArray or type(x) is Dual or _forward(x):
            tag = x.tag if x.tag > tag else tag
    # the scalar fast path applies the partials itself: only for rules that keep Elementwise's JVP
    scalar_mode = isinstance(rule, Elementwise) and type(rule).jvp is Elementwise.jvp
    primals, tangents, k = [], [], None
    for x in xs:
        kind = type(x)
        if (kind is DualArray or kind is Dual or _forward(x)) and x.tag == tag:
            primals.append(x.primal)
            if kind is DualArray:
                t = x._t
                scalar_mode = False
            else:
                t = x.tangent
                scalar_mode = scalar_mode and kind is Dual
            tangents.append(t)
        else:
            primals.append(x)
            tangents.append(None)
            scalar_mode = scalar_mode and (np.ndim(x) == 0 and kind is not DualArray)
    if scalar_mode:
        return _apply_scalar(rule, primals, tangents, tag)
    for i, (x, t) in enumerate(zip(xs, tangents)):
        if t is not None:
            if type(x) is not DualArray:
                t = tangents[i] = _batched(t, x)
            if k is None:
                k = t.shape[0]
            elif t.shape[0] != k:
                _check_k(rule, tangents)
    if isinstance(rule, Elementwise) and rule.kernel:
        fused = kernels.elementwise_jvp(rule, primals, tangents)
        if fused is not None:
            return DualArray._make(fused[0], fused[1], tag)
    out = rule.primal(*primals, **static)
    out_t = rule.jvp(primals, tangents, out, 1, static)
    if out_t is None:
        return out
    # a tangent has its primal's float dtype: float32 tangents joined to a float64 constant
    # (concatenate, stack) become float64 with the primal; float64 partials of float32 values
    # do not make float32 tangents float64
    out_t = match_dtype(out_t, out)
    # new buffers that are none of the inputs' (most ops): no view to link
    if type(out) is np.ndarray and out.base is None and type(out_t) is np.ndarray and out_t.base is None:
        for p in primals:
            if p is out:
                break
        else:
            for t in tangents:
                if t is out_t:
                    break
            else:
                return DualArray._make(out, out_t, tag)
    return _linked(rule, xs, static, tangents, out, out_t, tag)


def _linked(rule, xs, static, tangents, out, out_t, tag):
    """The result of ``rule`` where it may share memory with an input: a view of an input
    (basic indexing, reshape, transpose ...) becomes a view in both primal and tangent, so
    that in-place writes through either reach both; a tangent shared without its primal
    (``x + 0``, ``x[2]``) is copied."""
    base = detached = None
    for x, t in zip(xs, tangents):
        if t is not None and type(x) is DualArray and _aliases(out, x.primal):
            owner = x if x._base is None else x._base
            if owner._views is None and owner._start_views():
                return apply(rule, xs, static)  # x's buffers were replaced: view the new ones
            base = owner
            detached = not _aliases(out_t, t) or (x is not owner and owner._views.is_detached(x))
            break
    if base is None or detached:  # a tangent is shared only along with its primal
        for t in tangents:
            if t is not None and _aliases(out_t, t):
                out_t = out_t.copy()
                break
    result = DualArray._make(out, out_t, tag)
    if base is not None:
        result._base = base
        # detached, e.g. np.flip: a primal view with a gathered tangent; writes refused while alive
        base._views.add(result, rule.name if detached else None)
    return result


def _aliases(a, b) -> bool:
    """Whether ``a`` is ``b`` or a view of its memory (for duals: of the same buffers)."""
    if a is b:
        return True
    kind = type(a)
    if kind is np.ndarray:
        if a.base is None or type(b) is not np.ndarray:
            return False
        # NumPy points a view's base at the array owning the memory: compare owners first
        owner_a, owner_b = a.base, (b if b.base is None else b.base)
        if owner_a is owner_b:
            return True
        if type(owner_a) is np.ndarray and owner_a.base is None and type(owner_b) is np.ndarray \
                and owner_b.base is None:
            return False  # two separate allocations
        return np.may_share_memory(a, b)
    if kind is DualArray and type(b) is DualArray:
        return (a if a._base is None else a._base) is (b if b._base is None else b._base)
    return False


def _batched(t, x):
    """A Dual's tangent as a (k,) batch; a DualArray's is already (k, *S)."""
    if getattr(x, "_ad_scalar", False):
        return np.reshape(t, (-1,)) if np.ndim(t) else np.reshape(np.asarray(t, dtype=_float(x)), (1,))
    return t


def _float(x):
    dtype = getattr(x.primal, "dtype", None)
    return dtype if dtype is not None and np.dtype(dtype).kind == "f" else np.float64


def _check_k(rule, tangents):
    ks = {t.shape[0] for t in tangents if t is not None}
    if len(ks) > 1:
        raise PerturbationError(
            f"{rule.name}: operands carry different numbers of tangent directions {sorted(ks)}; "
            "all duals of one differentiation must share the chunk size k")


def _apply_scalar(rule, primals, tangents, tag):
    out = rule.primal(*primals)
    if isinstance(out, np.ndarray) and out.ndim == 0:
        out = out[()]
    ks = {np.shape(t) for t in tangents if t is not None}
    if len(ks) > 1 and () not in ks:  # checked before the arithmetic, which would fail less clearly
        raise PerturbationError(f"{rule.name}: Dual operands carry tangents of shapes {sorted(ks)}; "
                                "all duals of one differentiation must share the chunk size k")
    out_t = None
    for i, t in enumerate(tangents):
        if t is None or rule.partials[i] is None:
            continue
        term = scale(rule.partial(i, primals, out), t)
        out_t = term if out_t is None else out_t + term
    if out_t is None:
        return out
    if isinstance(out_t, np.ndarray) and out_t.ndim == 0:
        out_t = out_t[()]
    if getattr(out, "dtype", None) == np.float32 and getattr(out_t, "dtype", None) == np.float64:
        out_t = out_t.astype(np.float32)  # float32 stays float32 (a partial like (x > y) is float64)
    return Dual._make(out, out_t, tag)
