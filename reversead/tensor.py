"""``Tensor``: an ndarray that records the operations on it (the tape), PyTorch-style.

Every operation is a rule of the shared primitive table (``dualad.rules``): the
forward value is the rule's primal, and the node stores only what the rule's VJP
reads (``rule.saved_for``). Version counters catch in-place changes to saved
values at backward time.
"""
from __future__ import annotations

import functools
import operator
import sys
import weakref

import numpy as np
from numpy.lib.mixins import NDArrayOperatorsMixin

from dualad.kernels import elementwise_vjp as _fused_vjp
from dualad.kernels import fuses_vjp as _fuses_vjp
from dualad.rules import RULES, strip
from dualad.rules.core import CONFIG as _CONFIG
from dualad.rules.core import UFUNC_RULES, NONDIFF_UFUNCS, Elementwise, match_dtype, unbroadcast
from dualad.rules.dispatch import array_function, array_ufunc
from dualad.rules.methods import ArrayMethods
from dualad.rules.reductions import SIMPLE_REDUCTIONS
from dualad.rules.shape import check_index

from .errors import BackwardError, InplaceError
from .grad_mode import _disabled as _grad_off
from .grad_mode import _state as _grad_state
from .grad_mode import is_grad_enabled
from . import graph as _graph
from .graph import Node, _sequence

_PACKAGE_DIRS = tuple(p for p in (__file__.rsplit("reversead", 1)[0] + "reversead",
                                  __file__.rsplit("reversead", 1)[0] + "dualad",
                                  np.__file__.rsplit("__init__", 1)[0]))
_TORCH_NAMES = {"add": "Add", "subtract": "Sub", "multiply": "Mul", "divide": "Div", "matmul": "Matmul",
                "power": "Pow", "negative": "Neg", "getitem": "Index", "absolute": "Abs"}

# 0-d results are kept as NumPy scalars inside the tape (scalar arithmetic is ~10x cheaper
# than on 0-d arrays); ``Tensor.data`` still hands users an ndarray.
_GENERICS = frozenset({np.float64, np.float32})
#: values that are 0-d, immutable and cheap: saved as they are, arithmetic by Python operators
_SCALARS = frozenset({np.float64, np.float32, float, int})
_NO_STATIC: dict = {}


class _Meta:
    """Shape and dtype of a value the tape did not save (its VJP reads no more)."""

    __slots__ = ("shape", "dtype", "ndim")

    def __init__(self, value):
        self.shape = tuple(np.shape(value))
        dtype = getattr(value, "dtype", None)
        self.dtype = dtype if dtype is not None else np.result_type(value)
        self.ndim = len(self.shape)


#: (shape, dtype) -> its ``_Meta`` (immutable, so nodes share them: no object per saved input)
_META_CACHE: dict = {}


def _meta(value):
    if type(value) is np.ndarray:
        dtype = value.dtype
        # keyed by the dtype's identity (hashing a dtype costs ~1 us); the cached _Meta
        # holds the dtype, so its id cannot be reused while the entry exists
        key = (value.shape, id(dtype))
        meta = _META_CACHE.get(key)
        if meta is None:
            meta = _Meta.__new__(_Meta)
            meta.shape, meta.dtype, meta.ndim = value.shape, dtype, value.ndim
            if len(_META_CACHE) < 1024:
                _META_CACHE[key] = meta
        return meta
    return _Meta(value)


class RuleNode(Node):
    """A node applying one rule's VJP.

    Nodes are recorded as plain ``RuleNode`` objects, so that the interpreter's attribute
    caches see one type on the hot paths (per-op subclasses made every attribute access
    there a cache miss: ~0.5 us per recorded op). A node takes its op's class
    (``MulBackward``, a subclass made per rule) when user code first sees it
    (``Tensor.grad_fn``, ``next_functions``). ``versions`` is None or a flat tuple
    ``(index, counter, version, ...)`` of the saved values' version counters (index
    ``len(saved)`` is the output). ``scalar``: every input was a 0-d float. ``frees``: the
    node saved a value for its VJP (an input, a constant or its output), which a backward
    without ``retain_graph`` releases; a node that saved none (add, sum, reshape) can run
    again, as in PyTorch.
    """

    __slots__ = ("info", "static", "saved", "out", "versions", "site_file", "site_line", "needed",
                 "scalar", "frees")

    @property
    def rule(self):
        """The rule of the shared primitive table whose VJP this node applies."""
        return self.info.rule

    def name(self) -> str:
        return _node_class(self.info.rule).__name__

    def _public(self):
        if type(self) is RuleNode:
            self.__class__ = _node_class(self.info.rule)
        return self

    def apply(self, g, needed, nb, create_graph):
        saved = self.saved
        if saved is None:
            self._freed_error()
        versions = self.versions
        if versions is not None and (len(versions) != 3 or versions[1][0] != versions[2]):
            self._check_versions()  # (one saved value at its recorded version needs no call)
        info, out = self.info, self.out
        scalar = self.scalar
        if scalar and not create_graph and not nb and not _CONFIG.nan_safe:
            if needed is not self.needed:  # grad(inputs=...) wants fewer inputs than recorded
                scalar = _scalar_vjp(info.rule, tuple(needed))
            return scalar(*saved, out, g)  # 0-d floats: the plan's straight-line VJP
        if create_graph or nb or not info.elementwise or _CONFIG.nan_safe:
            if create_graph:
                return self._general(g, needed, nb, create_graph)
            static, vjp = self.static, info.rule.vjp  # (looked up per call: tests patch it)
            if len(needed) == 1:  # (most rules: no comprehension's frame)
                return (vjp(0, g, saved, out, nb, static) if needed[0] else None,)
            return [vjp(i, g, saved, out, nb, static) if want else None
                    for i, want in enumerate(needed)]
        # elementwise: unbroadcast(partial_i * g), without the general machinery
        partials = info.partials
        grads = []
        gshape = g.shape
        for i, want in enumerate(needed):
            if not want:
                grads.append(None)
                continue
            p = partials[i]
            x = saved[i]
            shape = x.shape
            if type(p) is float or type(p) is int:
                # a constant partial: sum over broadcast axes first, then scale the smaller array
                xb = g if gshape == shape else unbroadcast(g, shape, 0)
                if p != 1:
                    xb = -xb if p == -1 else p * xb
            else:
                # one compiled pass where the partial is arithmetic worth fusing (tanh's)
                xb = _fused_vjp(info.rule, i, g, saved, out) if info.fuses[i] else None
                if xb is None:
                    xb = p(*saved, out)
                    # a partial that is a temporary nobody else holds (its reference count, as
                    # measured at import) takes the product in place: one array less per node
                    if (_getrefcount(xb) == _TEMPORARY_REFS and type(xb) is np.ndarray and xb.base is None
                            and type(g) is np.ndarray and xb.dtype is g.dtype and xb.shape == gshape):
                        xb = _multiply(xb, g, xb)
                    else:
                        xb = xb * g
                if xb.shape != shape:
                    xb = unbroadcast(xb, shape, 0)
            if xb.dtype is not x.dtype:
                xb = match_dtype(xb, x)  # (a partial such as (x > lo) * 1.0 is float64)
            grads.append(xb)
        return grads

    def _general(self, g, needed, nb, create_graph):
        """The rule's own VJP (any rule, batched cotangents, recorded backward)."""
        primals, out = self.saved, self.out
        if create_graph:
            primals = [e if isinstance(e, Tensor) and e._fn is None else
                       Tensor._make(p, True, e) if isinstance(e, Node) and not isinstance(p, _Meta) else p
                       for p, e in zip(primals, self.edges)]
            out = Tensor._make(out, True, self) if out is not None else None
            g = g if isinstance(g, Tensor) else Tensor._make(g, False, None)
        rule, static = self.info.rule, self.static
        return [rule.vjp(i, g, primals, out, nb, static) if want else None
                for i, want in enumerate(needed)]

    @property
    def created(self) -> str:
        """``file:line`` of the user's code that recorded this node.

        Known for the nodes that saved a tensor (the ones an in-place write can break, whose
        error names this place); ``"<unknown>"`` for the others, which skip the lookup.
        """
        code = self.site_file  # the code object and the bytecode offset (line found here, lazily)
        if code is None:
            return "<unknown>"
        return f"{code.co_filename}:{_line_of(code, self.site_line)}"

    def _check_versions(self):
        versions = self.versions
        for k in range(1, len(versions), 3):
            if versions[k][0] != versions[k + 1]:
                self._version_error(*versions[k - 1:k + 2])

    def _version_error(self, i, counter, version):
        saved = self.saved
        what = (f"input {i} of {self.name()} (shape {tuple(np.shape(saved[i]))})" if i < len(saved)
                else f"the output of {self.name()} (shape {tuple(np.shape(self.out))})")
        raise BackwardError(
            "one of the variables needed for gradient computation has been modified by an "
            f"inplace operation: {what} is at version {counter[0]}; expected version {version} "
            f"instead. The op was created at {self.created}. Hint: replace the in-place "
            "operation (+=, x[i] = ..., out=) with an out-of-place one.")

    def release(self):
        if self.frees:
            self.saved = self.out = None  # (``apply`` knows a freed node by ``saved is None``)


_graph._RULE_NODE = RuleNode
_getrefcount = sys.getrefcount
_multiply = np.multiply


def _temporary_refcount():
    """What ``sys.getrefcount`` says of a fresh temporary bound to a local, as ``apply`` binds a
    partial's result (2 on CPython 3.11). None where a value held elsewhere could read the same
    (interpreters that borrow references on the stack): then no partial is reused in place."""
    held = [np.ones(1)]

    def probe(make):
        xb = make()
        return _getrefcount(xb)
    fresh, shared = probe(lambda: np.ones(1)), probe(lambda: held[0])
    return fresh if shared > fresh else None


_TEMPORARY_REFS = _temporary_refcount()


def _record_site(node, frame):
    """Keep where user code made ``node``: the first frame outside the packages, from ``frame``.

    (The code object and the bytecode offset: the line is found only if an error names it.)
    """
    while frame is not None:
        code = frame.f_code
        skip = _SKIP_FILES.get(code.co_filename)
        if skip is None:
            skip = _SKIP_FILES[code.co_filename] = code.co_filename.startswith(_PACKAGE_DIRS)
        if not skip:
            node.site_file = code
            node.site_line = frame.f_lasti
            return
        frame = frame.f_back
    node.site_file = None


def _line_of(code, lasti):
    """The source line of bytecode offset ``lasti`` in ``code`` (as ``frame.f_lineno``)."""
    line = None
    for start, end, lineno in code.co_lines():
        if start <= lasti < end:
            line = lineno
            break
    return line if line is not None else code.co_firstlineno


_NODE_CLASSES: dict = {}


def _node_class(rule):
    cls = _NODE_CLASSES.get(rule)
    if cls is None:
        stem = _TORCH_NAMES.get(rule.name) or "".join(p.capitalize() for p in rule.name.split("_"))
        cls = type(f"{stem}Backward", (RuleNode,), {"__slots__": ()})
        _NODE_CLASSES[rule] = cls
    return cls


#: file name -> whether it belongs to reversead, dualad or NumPy (skipped for creation sites)
_SKIP_FILES: dict = {}


class _RuleInfo:
    """What ``apply`` needs to know about a rule, computed once per rule."""

    __slots__ = ("elementwise", "op", "nondiff", "plans", "rule", "fast", "primal", "partials",
                 "fuses")

    def __init__(self, rule):
        # the rule's primal and partials (fixed once the table is built) read from here (one
        # type, slots) rather than from rule objects of many classes (an instance dict each)
        self.rule = rule
        self.primal = rule.primal
        self.partials = getattr(rule, "partials", None)
        self.elementwise = type(rule) is Elementwise
        self.op = _OPERATORS.get(rule.name) if self.elementwise else None
        self.nondiff = rule.nondiff_argnums
        self.plans = {}
        # 0-d float inputs take ``_apply_scalar`` (no argument left out of differentiation)
        self.fast = self.elementwise and not self.nondiff
        # per input: whether its VJP may take a fused kernel (decided from the partial's code)
        self.fuses = (tuple(_fuses_vjp(rule, i) for i in range(rule.nin)) if self.elementwise
                      else None)

    def plan(self, rule, mask, n, key):
        """``(unkept, keep_out, needed, kept, scalar_vjp)`` for the inputs in ``mask`` (a bit per input)."""
        plan = self.plans.get(key)
        if plan is None:
            keep, keep_out = set(), False
            for i in range(n):
                if mask >> i & 1:
                    used, uses_out = rule.saved_for(i)
                    keep.update(range(n) if used is None else used)
                    keep_out = keep_out or uses_out
            needed = tuple(bool(mask >> i & 1) for i in range(n))
            plan = self.plans[key] = (tuple(i for i in range(n) if i not in keep), keep_out, needed,
                                      tuple(sorted(i for i in keep if i < n)),
                                      _scalar_vjp(rule, needed) if self.elementwise else None)
        return plan


@functools.lru_cache(maxsize=None)
def _scalar_vjp(rule, needed):
    """The VJP of an elementwise rule on 0-d floats for one set of wanted inputs, as one
    straight-line function ``(*saved, out, g) -> grads`` (the partials bound as constants).

    A scalar tape spends most of its backward time deciding, per node, which partials to
    apply and how; deciding once per (rule, wanted inputs) leaves only the arithmetic.
    """
    n = len(needed)
    args = ", ".join(f"x{i}" for i in range(n))
    lines, names, env = [], [], {"GENERICS": _GENERICS}
    for i, (p, want) in enumerate(zip(rule.partials, needed)):
        if not want:
            names.append("None")
            continue
        if type(p) in (int, float):
            expr = "g" if p == 1 else "-g" if p == -1 else f"{float(p)!r} * g"
        else:
            env[f"p{i}"] = p
            expr = f"p{i}({args}, out) * g"
        lines += [f"    b{i} = {expr}",
                  f"    if type(b{i}) is not type(x{i}) and type(x{i}) in GENERICS:",
                  f"        b{i} = type(x{i})(b{i})  # in the input's float type (float32 stays)"]
        names.append(f"b{i}")
    source = f"def vjp({args}, out, g):\n" + "\n".join(lines) + f"\n    return ({', '.join(names)},)\n"
    exec(compile(source, f"<scalar vjp of {rule.name}>", "exec"), env)
    return env["vjp"]


#: rule -> its ``_RuleInfo``. Hot paths read it inline (``_INFOS.get(rule)``) and call
#: ``_rule_info`` only on a miss
_INFOS: dict = {}
#: ufunc -> its rule's ``_RuleInfo`` (one lookup per call on the ufunc fast path)
_UFUNC_INFOS: dict = {}


def _rule_info(rule):
    """The ``_RuleInfo`` of ``rule``, made and kept in ``_INFOS`` the first time."""
    info = _INFOS.get(rule)
    if info is None:
        info = _INFOS[rule] = _RuleInfo(rule)
    return info


def _ufunc_info(ufunc):
    """The ``_RuleInfo`` of ``ufunc``'s rule (kept in ``_UFUNC_INFOS``), None without one."""
    rule = UFUNC_RULES.get(ufunc)
    if rule is None or ufunc in NONDIFF_UFUNCS:
        return None  # (not kept: the generic path looks the table up again)
    info = _UFUNC_INFOS[ufunc] = _rule_info(rule)
    return info


_OPERATORS = {"add": operator.add, "subtract": operator.sub, "multiply": operator.mul,
              "divide": operator.truediv}


def apply(rule, xs, static):
    """Reverse-mode application of ``rule``: compute the primal, record a node if needed."""
    info = _INFOS.get(rule) or _rule_info(rule)
    if info.fast and not static:
        return _apply_scalar(info, xs, 2)
    return _apply_general(info, rule, xs, static)


def _apply_scalar(info, xs, depth):
    """``apply`` for an elementwise rule on 0-d floats (falls back to the general path).

    The same result and node as the general path, with less work per op: no lists, one
    tuple of floats as the saved values (which the cyclic collector stops tracking).
    ``depth``: frames between the caller's code and this function.
    """
    n = len(xs)
    if n == 2:
        a, b = xs
        ta = type(a)
        if ta is Tensor:
            da = a._data
            if type(da) not in _GENERICS:
                if type(da) is np.ndarray and da.ndim == 0 and da.dtype.type in _GENERICS:
                    da = da[()]
                else:
                    return _apply_general(info, info.rule, xs, _NO_STATIC)
            if a.requires_grad:
                ea = a._fn
                if ea is None:
                    ea = a
                mask = 1
            else:
                ea, mask = None, 0
        elif ta in _SCALARS:
            da, ea, mask = a, None, 0
        else:
            return _apply_general(info, info.rule, xs, _NO_STATIC)
        tb = type(b)
        if tb is Tensor:
            db = b._data
            if type(db) not in _GENERICS:
                if type(db) is np.ndarray and db.ndim == 0 and db.dtype.type in _GENERICS:
                    db = db[()]
                else:
                    return _apply_general(info, info.rule, xs, _NO_STATIC)
            if b.requires_grad:
                eb = b._fn
                if eb is None:
                    eb = b
                mask |= 2
            else:
                eb = None
        elif tb in _SCALARS:
            db, eb = b, None
        else:
            return _apply_general(info, info.rule, xs, _NO_STATIC)
        op = info.op
        out = op(da, db) if op is not None else info.primal(da, db)
        saved, edges, key = (da, db), (ea, eb), mask | 4
    elif n == 1:
        a = xs[0]
        if type(a) is not Tensor:
            return _apply_general(info, info.rule, xs, _NO_STATIC)
        da = a._data
        if type(da) not in _GENERICS:
            if type(da) is np.ndarray and da.ndim == 0 and da.dtype.type in _GENERICS:
                da = da[()]
            else:
                return _apply_general(info, info.rule, xs, _NO_STATIC)
        if a.requires_grad:
            ea = a._fn
            if ea is None:
                ea = a
            mask = 1
        else:
            ea, mask = None, 0
        out = info.primal(da)
        saved, edges, key = (da,), (ea,), mask | 2
    else:
        return _apply_general(info, info.rule, xs, _NO_STATIC)

    result = _new_tensor(Tensor)
    if type(out) not in _GENERICS and type(out) is not np.ndarray and getattr(out, "_ad_level", None) is None:
        out = np.asarray(out)
    result._data = out
    result.grad = None
    result._hooks = None
    result._base = None
    result._ver = None
    if not mask or _grad_off[0] and not _grad_state.enabled:
        result.requires_grad = False
        result._fn = None
        return result
    plan = info.plans.get(key)
    if plan is None:
        plan = info.plan(info.rule, mask, n, key)
    # From here on the same recording as the end of ``_apply_general``, written out again on
    # purpose: as a shared function it costs ~17 opcodes (~4 %) per scalar op, the path the
    # scalar-tape benchmark times. Change both together.
    unkept, keep_out, needed, kept, vjp = plan
    versions = None
    for i in kept:
        x = xs[i]
        if type(x) is Tensor:
            counter = x._ver
            if counter is None:
                counter = x._ver = [0]
            versions = (i, counter, counter[0]) if versions is None else versions + (i, counter, counter[0])
    node = _new_node(RuleNode)
    node.seq = _next_seq()
    node.edges = edges
    node.hooks = None
    node.retained = None
    node.info = info
    node.static = _NO_STATIC
    node.saved = saved
    node.needed = needed
    node.scalar = vjp
    node.frees = kept or keep_out
    result.requires_grad = True
    result._fn = node
    if keep_out:
        node.out = out
        counter = result._ver = [0]
        versions = (n, counter, 0) if versions is None else versions + (n, counter, 0)
    else:
        node.out = None
    node.versions = versions
    if versions is None:
        node.site_file = None  # (only a node that saved a tensor reports where it was made)
    else:
        _record_site(node, sys._getframe(depth))
    return result


_BACKWARD = None  # reversead.autograd.backward, bound on first use


def _apply_general(info, rule, xs, static):
    scalar = elementwise = info.elementwise
    datas, edges, mask, bit = [], [], 0, 1
    for x in xs:
        if type(x) is Tensor or isinstance(x, Tensor):
            d = x._data
            if x.requires_grad:
                fn = x._fn
                edges.append(x if fn is None else fn)
                mask |= bit
            else:
                edges.append(None)
        else:
            d = x
            edges.append(None)
        if not elementwise:
            if type(d) in _GENERICS:
                d = np.asarray(d)  # general rules see arrays, as NumPy would give them
        elif scalar and type(d) not in _SCALARS:
            if type(d) is np.ndarray and d.ndim == 0 and d.dtype.type in _GENERICS:
                d = d[()]  # a 0-d value: its scalar (a snapshot; versions still guard it)
            else:
                scalar = False
        datas.append(d)
        bit <<= 1
    if scalar and info.op is not None and not static:
        out = info.op(*datas)
    else:
        out = info.primal(*datas, **static) if static else info.primal(*datas)

    result = _new_tensor(Tensor)
    if type(out) is not np.ndarray and type(out) not in _GENERICS and getattr(out, "_ad_level", None) is None:
        out = np.asarray(out)
    result._data = out
    result.grad = None
    result._hooks = None
    result._base = None
    result._ver = None
    if not mask or _grad_off[0] and not _grad_state.enabled:
        result.requires_grad = False
        result._fn = None
        if type(out) is np.ndarray and out.base is not None:
            _share_version_with_base(result, xs, out, info, rule, static)
        return result

    if info.nondiff:
        for i in info.nondiff:
            if i < len(edges):
                edges[i] = None
                mask &= ~(1 << i)
    plan = info.plans.get(mask | bit)
    if plan is None:
        plan = info.plan(rule, mask, len(xs), mask | bit)
    unkept, keep_out, needed, kept, vjp = plan
    if scalar:
        scalar = vjp
        saved = tuple(datas)  # floats only: the collector stops tracking such a tuple
    else:
        saved = datas  # the values the VJPs read; of the others only shape and dtype
        for i in unkept:
            d = datas[i]
            if type(d) is np.ndarray:
                datas[i] = _meta(d)
            elif type(d) not in _SCALARS:
                datas[i] = _Meta(d)
    # (recording: the same steps as the end of ``_apply_scalar``; change both together)
    versions = None
    for i in kept:
        x = xs[i]
        if isinstance(x, Tensor):
            counter = x._ver
            if counter is None:
                counter = x._ver = [0]
            versions = (i, counter, counter[0]) if versions is None else versions + (i, counter, counter[0])
    node = _new_node(RuleNode)
    node.seq = _next_seq()
    node.edges = tuple(edges)
    node.hooks = None
    node.retained = None
    node.info = info
    node.static = static
    node.saved = saved
    node.needed = needed
    node.scalar = scalar
    node.frees = kept or keep_out
    result.requires_grad = True
    result._fn = node
    if keep_out:
        node.out = out
        counter = result._ver = [0]
        versions = (len(xs), counter, 0) if versions is None else versions + (len(xs), counter, 0)
    else:
        node.out = None
    node.versions = versions
    if versions is None:
        node.site_file = None  # (only a node that saved a tensor reports where it was made)
    else:  # (frame 1, the caller, is always ours: apply, __array_ufunc__, an operator ...)
        _record_site(node, sys._getframe(2))
    if type(out) is np.ndarray and out.base is not None:
        _share_version_with_base(result, xs, out, info, rule, static)
    return result


_new_tensor = object.__new__
_new_node = object.__new__
_next_seq = _sequence.__next__


def _keep_original(node, tensor):
    """The op recorded for ``tensor op= other`` keeps ``tensor``'s value from before the write.

    (PyTorch's ``original_self``): the write goes into ``tensor``'s buffer, so a saved
    reference to that buffer is swapped for a copy, which no later write can reach.
    """
    data, saved = tensor._data, node.saved
    if saved is None or node.versions is None:
        return
    hit = [i for i, value in enumerate(saved) if value is data]
    if hit:
        saved = node.saved = list(saved)
        for i in hit:
            saved[i] = data.copy()
        versions = node.versions
        node.versions = sum((versions[k:k + 3] for k in range(0, len(versions), 3)
                             if versions[k] not in hit), ()) or None


#: per base Tensor, its live views made while grad mode was on: ``{id(weakref to the view):
#: (that weakref, info, rule, inputs with the base's place None, static, that place)}``, so that an in-place
#: change of the base can remake each view's node on the base's new graph (PyTorch
#: regenerates a view's grad_fn the same way). Weak keys, and no strong reference back to
#: the base in the values, so the table keeps nothing alive. Keyed by ``id`` (a
#: WeakKeyDictionary would compare Tensors with ``==``, which is elementwise); an entry goes
#: when its base does.
_VIEWS: dict = {}


def _share_version_with_base(result, xs, out, info, rule, static):
    """A view shares its base's version counter, so writes through either are caught."""
    for i, x in enumerate(xs):
        if isinstance(x, Tensor) and isinstance(x.data, np.ndarray) and np.may_share_memory(out, x.data):
            result._version = x._version
            result._base = x
            if _grad_state.enabled:
                recipe = list(xs)
                recipe[i] = None
                key = id(x)
                entries = _VIEWS.get(key)
                if entries is None:
                    entries = _VIEWS[key] = {}
                    weakref.finalize(x, _VIEWS.pop, key, None)
                ref = weakref.ref(result, functools.partial(_forget_view, entries))
                entries[id(ref)] = (ref, info, rule, recipe, static, i)
            return


def _forget_view(entries, ref):
    entries.pop(id(ref), None)


def _remake_views(base):
    """After an in-place change gave ``base`` a new node: its views (and theirs) follow it.

    Each live view's op is applied again to ``base`` as it is now: a new view of the same
    memory whose node hangs on the base's new graph, and the view takes that node over.
    """
    stack = [base]
    while stack:
        b = stack.pop()
        entries = _VIEWS.get(id(b))
        if not entries:
            continue
        for entry in list(entries.values()):  # (the fresh views below come and go meanwhile)
            view = entry[0]()
            if view is None:
                continue
            _, info, rule, recipe, static, i = entry
            args = list(recipe)
            args[i] = b
            fresh = _apply_general(info, rule, args, static)
            view._fn, view.requires_grad = fresh._fn, fresh.requires_grad
            stack.append(view)


def _as_data(data, requires_grad):
    if isinstance(data, Tensor):
        data = data.data
    if getattr(data, "_ad_level", None) is not None:
        return data  # DualArray data: forward-over-reverse
    arr = np.array(data)
    if arr.dtype.kind == "c":
        raise TypeError(f"complex tensors are not supported (dtype {arr.dtype}); reversead "
                        "differentiates real functions")
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"Tensor data must be numeric, got dtype {arr.dtype}")
    if requires_grad and arr.dtype.kind in "biu":
        arr = arr.astype(np.float64)  # integer data asked to require grad: promoted to float64
    return arr


class Tensor(ArrayMethods, NDArrayOperatorsMixin):
    """An array that records operations for reverse-mode differentiation.

    Integer data with ``requires_grad=True`` is promoted to float64 (only
    floating-point tensors can have gradients); float32 stays float32.

    Examples
    --------
    >>> import numpy as np, reversead as rd
    >>> x = rd.tensor(np.ones((2, 2)), requires_grad=True)
    >>> out = (3 * (x + 2) ** 2).mean()
    >>> out.backward()
    >>> x.grad
    array([[4.5, 4.5],
           [4.5, 4.5]])
    """

    # ``_fn`` holds the node; ``grad_fn`` (a property) shows it under its op's class name
    __slots__ = ("_data", "grad", "requires_grad", "_fn", "_ver", "_hooks", "_base", "__weakref__")
    __array_priority__ = 200.0
    _ad_level = 1 << 60  # outermost: a Tensor may hold DualArray data, never the reverse

    def __init__(self, data, requires_grad: bool = False):
        self.data = _as_data(data, requires_grad)
        self.grad = None
        self._fn = None
        self._ver = None
        self._hooks = None
        self._base = None
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    @classmethod
    def _make(cls, data, requires_grad, grad_fn):
        self = object.__new__(cls)
        if type(data) is not np.ndarray and type(data) not in _GENERICS \
                and getattr(data, "_ad_level", None) is None:
            data = np.asarray(data)
        self._data = data
        self.grad = None
        self.requires_grad = requires_grad
        self._fn = grad_fn
        self._ver = None
        self._hooks = None
        self._base = None
        return self

    @property
    def data(self):
        """The values, an ndarray (or the traced value under forward-over-reverse)."""
        data = self._data
        if type(data) in _GENERICS:  # 0-d results live as NumPy scalars on the tape
            data = self._data = np.asarray(data)
        return data

    @data.setter
    def data(self, value):
        self._data = value

    # -- tracing protocol --
    def _ad_primal(self):
        return self.data

    _ad_apply = staticmethod(apply)

    def _ad_lift(self, x):
        return Tensor._make(x, False, None)

    # -- attributes --
    @property
    def grad_fn(self):
        """The node that created this tensor (None for leaves), e.g. ``MulBackward``."""
        fn = self._fn
        return None if fn is None else fn._public()

    @grad_fn.setter
    def grad_fn(self, node):
        self._fn = node

    @property
    def is_leaf(self) -> bool:
        return self._fn is None

    @property
    def shape(self) -> tuple:
        data = self._data
        return data.shape if type(data) is np.ndarray else tuple(np.shape(data))

    @property
    def dtype(self):
        return self._data.dtype

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    def numel(self) -> int:
        return self.size

    @property
    def _version(self) -> list:
        """The version counter ``[n]`` (shared by views), created when first needed."""
        counter = self._ver
        if counter is None:
            counter = self._ver = [0]
        return counter

    @_version.setter
    def _version(self, counter):
        self._ver = counter

    @property
    def _version_number(self) -> int:
        return self._version[0]

    def __len__(self) -> int:
        return len(self.data)

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    def __repr__(self) -> str:
        extra = f", grad_fn=<{self._fn.name()}>" if self._fn is not None else (
            ", requires_grad=True" if self.requires_grad else "")
        body = np.array2string(strip(self.data), prefix="tensor(") if isinstance(strip(self.data), np.ndarray) else repr(self.data)
        return f"tensor({body}{extra})"

    # -- autograd API --
    def requires_grad_(self, requires_grad: bool = True):
        """Set ``requires_grad`` in place (leaves only); returns self."""
        if not requires_grad and self._fn is not None:
            raise RuntimeError("you can only change requires_grad flags of leaf variables; use "
                               ".detach() to get a non-requiring-grad tensor from a non-leaf")
        if requires_grad and isinstance(self.data, np.ndarray) and self.data.dtype.kind != "f":
            if self.data.dtype.kind in "biu":
                self.data = self.data.astype(np.float64)  # promoted, as documented on Tensor
            else:
                raise TypeError("only floating point tensors can require gradients")
        self.requires_grad = bool(requires_grad)
        return self

    def detach(self):
        """A new leaf sharing this tensor's data, cut from the graph."""
        out = Tensor._make(self.data, False, None)
        out._version = self._version
        return out

    def retain_grad(self):
        """Keep ``.grad`` for this non-leaf tensor after backward."""
        if not self.requires_grad:
            raise RuntimeError("can't retain_grad on Tensor that has requires_grad=False")
        if self._fn is not None:
            self._fn.retained = weakref.ref(self)

    def register_hook(self, hook):
        """Call ``hook(grad)`` when this tensor's gradient is computed; a non-None return replaces it.

        A leaf's hooks run once, on the gradient summed over every path that reaches it.
        Returns a handle whose ``remove()`` unregisters the hook (as PyTorch's).

        >>> import reversead as rd
        >>> x = rd.tensor([1.0, 2.0], requires_grad=True)
        >>> handle = x.register_hook(lambda g: 2 * g)
        >>> (x * x).sum().backward(); x.grad
        array([4., 8.])
        >>> handle.remove()
        """
        if not self.requires_grad:
            raise RuntimeError("cannot register a hook on a tensor that doesn't require gradient")
        owner, attr = (self, "_hooks") if self._fn is None else (self._fn, "hooks")
        setattr(owner, attr, (getattr(owner, attr) or []) + [hook])
        return RemovableHandle(owner, attr, hook)

    def backward(self, gradient=None, retain_graph=None, create_graph=False, inputs=None):
        """Accumulate d(self)/d(leaf) into every reachable leaf's ``.grad``.

        ``gradient`` is required unless self is a scalar; ``retain_graph`` keeps the
        saved values for another backward; ``create_graph`` records the backward
        pass so the gradients can be differentiated again.
        """
        global _BACKWARD
        if _BACKWARD is None:
            from .autograd import backward as _BACKWARD  # (autograd imports this module)
        _BACKWARD([self], None if gradient is None else [gradient], retain_graph, create_graph, inputs)

    def _ad_integer_cast(self, dtype):
        # (ArrayMethods.astype to a non-float dtype): a Tensor that does not require grad,
        # as PyTorch's ``.long()``; the derivative of such a cast is zero where it exists
        return Tensor._make(np.asarray(strip(self.data)).astype(dtype), False, None)

    def numpy(self):
        """The data as an ndarray (refuses when it requires grad, as PyTorch does)."""
        if self.requires_grad:
            raise RuntimeError("Can't call numpy() on Tensor that requires grad. Use tensor.detach().numpy() instead.")
        return self.data

    def item(self):
        """The value of a one-element tensor as a Python number."""
        data = strip(self.data)
        if np.size(data) != 1:
            raise ValueError(f"a Tensor with {np.size(data)} elements cannot be converted to a Python scalar")
        return data.item()

    def __float__(self):
        if self.requires_grad:
            self._numpy_conversion("float")
        return float(self.item())

    def __int__(self):
        if self.requires_grad:
            self._numpy_conversion("int")
        return int(self.item())

    def __complex__(self):
        if self.requires_grad:
            self._numpy_conversion("complex")
        return complex(self.item())

    def _numpy_conversion(self, kind):
        """Refuse ``float(t)`` made by NumPy's own code on an argument it does not dispatch on.

        ``float(loss)`` in user code drops the gradient on purpose (as in PyTorch). NumPy's
        ``np.interp(x, xp, fp, left=t)`` with plain x, xp, fp never reaches ``__array_function__``
        (NumPy dispatches on x, xp and fp only) and turns ``t`` into a float itself: the
        gradient would be lost without a word. The caller's frame tells the two apart.
        """
        frame = sys._getframe(1).f_back  # (1: __float__; C frames are not listed)
        module = "" if frame is None else frame.f_globals.get("__name__") or ""
        if (module == "numpy" or module.startswith("numpy.")) and is_grad_enabled():
            raise RuntimeError(
                f"np.{frame.f_code.co_name} converted a Tensor that requires grad to a Python "
                f"{kind}: NumPy does not dispatch on that argument, so reversead never sees the "
                "call and the gradient would be lost. Make an argument NumPy dispatches on a "
                "Tensor too (for np.interp: x, xp or fp, e.g. rd.tensor(fp)), or pass "
                "tensor.item() to drop the gradient deliberately.")

    def __format__(self, spec):
        # a one-element tensor formats as its number (f"{loss:.3f}"), as in PyTorch
        if spec and np.size(strip(self.data)) == 1:
            return format(self.item(), spec)
        return format(str(self), spec)

    def __array__(self, dtype=None, copy=None):
        if self.requires_grad:
            raise RuntimeError("Can't convert a Tensor that requires grad to an ndarray (the gradient "
                               "would be lost). Use tensor.detach().numpy() instead.")
        return np.asarray(self.data, dtype=dtype)

    def __bool__(self):
        return bool(strip(self.data))

    __hash__ = object.__hash__

    # -- NumPy dispatch --
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        if method == "__call__" and not kwargs:  # fast path: a Tensor is always the outermost trace
            info = _UFUNC_INFOS.get(ufunc)
            if info is None:
                info = _ufunc_info(ufunc)
            if info is not None:
                if info.fast:  # (0-d values take the scalar path; arrays go straight on)
                    x = inputs[0]
                    if type(x._data if type(x) is Tensor else x) is not np.ndarray:
                        return _apply_scalar(info, inputs, 2)
                return _apply_general(info, info.rule, inputs, _NO_STATIC)
        return array_ufunc(ufunc, method, inputs, kwargs, "reversead")

    def __array_function__(self, func, types, args, kwargs):
        rule = SIMPLE_REDUCTIONS.get(func)
        if rule is not None and len(args) == 1:  # np.sum(t, axis=1, keepdims=True): no detour
            axis, keepdims = kwargs.get("axis"), kwargs.get("keepdims", False)
            if (len(kwargs) == ("axis" in kwargs) + ("keepdims" in kwargs) and type(keepdims) is bool
                    and (axis is None or type(axis) is int or type(axis) is tuple)):
                info = _INFOS.get(rule) or _rule_info(rule)
                return _apply_general(info, rule, args, {"axis": axis, "keepdims": keepdims})
        return array_function(func, args, kwargs, "reversead")

    # -- fast paths for the common operators (skip NumPy's dispatch) --
    def __add__(self, other):
        return _apply_scalar(_ADD_INFO, (self, other), 2)

    def __radd__(self, other):
        return _apply_scalar(_ADD_INFO, (other, self), 2)

    def __sub__(self, other):
        return _apply_scalar(_SUB_INFO, (self, other), 2)

    def __rsub__(self, other):
        return _apply_scalar(_SUB_INFO, (other, self), 2)

    def __mul__(self, other):
        return _apply_scalar(_MUL_INFO, (self, other), 2)

    def __rmul__(self, other):
        return _apply_scalar(_MUL_INFO, (other, self), 2)

    def __truediv__(self, other):
        return _apply_scalar(_DIV_INFO, (self, other), 2)

    def __rtruediv__(self, other):
        return _apply_scalar(_DIV_INFO, (other, self), 2)

    def __neg__(self):
        return _apply_scalar(_NEG_INFO, (self,), 2)

    def __matmul__(self, other):
        if type(other) is Tensor or type(other) is np.ndarray:  # (others: NumPy's dispatch)
            return _apply_general(_MATMUL_INFO, _MATMUL_INFO.rule, (self, other), _NO_STATIC)
        return NDArrayOperatorsMixin.__matmul__(self, other)

    # -- in-place operations --
    def _inplace(self, result):
        if is_grad_enabled():
            if self._fn is None and self.requires_grad:
                raise InplaceError("a leaf Variable that requires grad is being used in an in-place "
                                   "operation. Wrap it in `with reversead.no_grad():` (e.g. for an SGD "
                                   "step) or use an out-of-place op.")
            if self._base is not None and (self.requires_grad or getattr(result, "requires_grad", False)):
                return self._inplace_through_view(result)
        if isinstance(result, Tensor):
            new_data, requires, grad_fn = result.data, result.requires_grad, result._fn
        else:
            new_data, requires, grad_fn = result, False, None
        if np.shape(new_data) != self.shape:  # (NumPy's message: an in-place op keeps the shape)
            raise ValueError(f"non-broadcastable output operand with shape {self.shape} doesn't match "
                             f"the broadcast shape {np.shape(new_data)}")
        if isinstance(self.data, np.ndarray) and isinstance(new_data, np.ndarray) \
                and self.data.flags.writeable:  # (same shape: checked above)
            if isinstance(grad_fn, RuleNode):
                _keep_original(grad_fn, self)
            np.copyto(self.data, new_data, casting="same_kind")
        else:
            self.data = new_data if not isinstance(new_data, np.ndarray) else new_data.astype(
                self.data.dtype, copy=False) if isinstance(self.data, np.ndarray) else new_data
        self._version[0] += 1
        if is_grad_enabled() and requires:
            self._fn, self.requires_grad = grad_fn, True
            if id(self) in _VIEWS:
                _remake_views(self)
        return self

    def _inplace_through_view(self, result):
        """``view op= y`` while recording: written into the base, which records the write.

        A view made by indexing writes ``base[index] = result``. Any other view (transpose,
        reshape, diagonal, flip ...) writes ``base[where] = result``, ``where`` being the
        base positions of the view's elements: the view's op applied to the base's
        positions (``arange``). The base then remakes its views, this one included, on its
        new graph (PyTorch's CopySlices). A view whose elements share memory
        (``broadcast_to``) cannot be written through and refuses, as in PyTorch.
        """
        base = self._base
        entries = _VIEWS.get(id(base)) or {}
        recipe = next((e for e in entries.values() if e[0]() is self), None)
        if recipe is None:
            raise InplaceError("in-place modification of this view of another tensor is not supported "
                               "while recording: it was made without grad mode, so its base cannot "
                               "record the write; make the view with grad mode on or use an "
                               "out-of-place op")
        _, info, rule, args, static, place = recipe
        if rule is _GETITEM:
            where = static["index"]
        else:
            positions = np.arange(base.size).reshape(base.shape)
            args = [a._data if isinstance(a, Tensor) else a for a in args]
            args[place] = positions
            flat = np.asarray(info.primal(*args, **static))
            if np.unique(flat).size != flat.size:
                raise InplaceError(
                    f"unsupported operation: more than one element of the written-to tensor refers "
                    f"to a single memory location (a view made by {rule.name}); clone the view "
                    "(np.copy) before the in-place operation")
            where = np.unravel_index(flat, base.shape)
        grad_fn = getattr(result, "_fn", None)
        if isinstance(grad_fn, RuleNode):
            _keep_original(grad_fn, self)  # (the op's saved view is about to change)
        base[where] = result
        return self

    def __iadd__(self, other):
        return self._inplace(apply(_ADD, (self, other), _NO_STATIC))

    def __isub__(self, other):
        return self._inplace(apply(_SUB, (self, other), _NO_STATIC))

    def __imul__(self, other):
        return self._inplace(apply(_MUL, (self, other), _NO_STATIC))

    def __itruediv__(self, other):
        return self._inplace(apply(_DIV, (self, other), _NO_STATIC))

    def __ipow__(self, other):
        return self._inplace(np.power(self, other))

    def __getitem__(self, index):
        return RULES["getitem"](self, index=check_index(index))

    def __setitem__(self, index, value):
        self._inplace(RULES["setitem"](self, value, index=check_index(index)))

    # -- ndarray-like methods: the shared ones come from ArrayMethods --
    def view(self, *shape):
        return self.reshape(*shape)

    def exp(self):
        return np.exp(self)

    def log(self):
        return np.log(self)

    def tanh(self):
        return np.tanh(self)

    def sigmoid(self):
        return 1.0 / (1.0 + np.exp(-self))

    def relu(self):
        # (not np.maximum(self, 0): that splits the derivative at 0, PyTorch's relu gives 0 there)
        return np.where(self > 0, self, 0.0)

    def abs(self):
        return np.absolute(self)

    def sqrt(self):
        return np.sqrt(self)


    def copy(self):
        return self * 1.0 if self.requires_grad else Tensor._make(np.copy(strip(self.data)) if isinstance(self.data, np.ndarray) else self.data, False, None)

    def zero_(self):
        """Fill with zeros in place; recorded like ``self[...] = 0`` (no gradient reaches the old values)."""
        if is_grad_enabled() and self.requires_grad:
            self[...] = 0.0  # (the in-place checks, a leaf's refusal included, and the graph)
            return self
        self.data[...] = 0
        self._version[0] += 1
        return self


class RemovableHandle:
    """What ``register_hook`` returns: ``remove()`` takes the hook off again."""

    __slots__ = ("_owner", "_attr", "_hook")

    def __init__(self, owner, attr, hook):
        self._owner, self._attr, self._hook = weakref.ref(owner), attr, hook

    def remove(self) -> None:
        owner = self._owner()
        if owner is not None:
            hooks = [h for h in getattr(owner, self._attr) or () if h is not self._hook]
            setattr(owner, self._attr, hooks or None)


_GETITEM = RULES["getitem"]
_ADD, _SUB, _MUL, _DIV, _NEG = (RULES[n] for n in ("add", "subtract", "multiply", "divide", "negative"))
_ADD_INFO, _SUB_INFO, _MUL_INFO, _DIV_INFO, _NEG_INFO = map(_rule_info, (_ADD, _SUB, _MUL, _DIV, _NEG))
assert all(i.fast for i in (_ADD_INFO, _SUB_INFO, _MUL_INFO, _DIV_INFO, _NEG_INFO))
_MATMUL_INFO = _rule_info(UFUNC_RULES[np.matmul])


def tensor(data, requires_grad: bool = False) -> Tensor:
    """Construct a Tensor (copies ``data``), as ``torch.tensor``.

    Examples
    --------
    >>> import reversead as rd
    >>> rd.tensor([1.0, 2.0], requires_grad=True).requires_grad
    True
    """
    return Tensor(data, requires_grad=requires_grad)
