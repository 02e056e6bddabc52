"""The dual number as a Numba type: plain stack values, operators generated from the table.

``DualType(inner, k)`` is ``primal + Σ_j ε_j·tangent[j]`` with ``k`` tangents; ``inner`` is
a Numba float (float32 or float64) or another ``DualType``. Its data model is a struct
``{primal: inner, tangent: UniTuple(inner, k)}``, so a dual lives in registers like a tuple
of floats: no heap, no boxing.

Nesting (issue 5, perturbation confusion). The *level* of a dual is the depth of its
``inner`` chain (a dual over floats is level 1; a dual whose primal is a level-1 dual is
level 2). An operation differentiates with respect to the highest level among its
operands; an operand of a lower level (or a float) is a constant of that operation, whose
own arithmetic recurses on its level. The level is part of the type, so the choice is made
at compile time and costs nothing at run time. Two duals of the same level are the same
perturbation (the entry points in ``entry.py`` create exactly one perturbation per level).

Rules. Every operator, ``math.*`` and ``np.*`` scalar function maps to an entry of
``dualad.rules.UFUNC_RULES``: the primal is the entry's ufunc and each partial is the
entry's own lambda, compiled by Numba (``kernels._scalar_copy`` keeps float32 constants
float32). Nothing here writes a derivative by hand; ``_impl_source`` only generates
``out_dot[j] = Σ_i partial_i · x_dot_i[j]`` unrolled over the k tangents.
Piecewise-constant functions (floor, sign, isnan, comparisons ...) act on the primal.
"""
from __future__ import annotations

import math
import operator

import numpy as np
from numba import njit, types
from numba.core import cgutils
from numba.core.typeconv import Conversion
from numba.extending import (intrinsic, lower_cast, make_attribute_wrapper, models, overload,
                             register_model)

from .. import kernels
from ..rules import NONDIFF_UFUNCS, UFUNC_RULES, Elementwise


class DualType(types.Type):
    """Numba type of a dual with ``k`` tangents over ``inner`` (a float type or a DualType)."""

    def __init__(self, inner, k: int):
        self.inner = inner
        self.k = int(k)
        self.level = 1 + (inner.level if isinstance(inner, DualType) else 0)
        self.base = inner.base if isinstance(inner, DualType) else inner
        super().__init__(name=f"Dual[{inner}, k={self.k}]")

    @property
    def width(self) -> int:
        """Floats in one value: ``(1 + k) * inner width``."""
        return (1 + self.k) * (self.inner.width if isinstance(self.inner, DualType) else 1)

    def can_convert_from(self, typingctx, other):
        # a float (or a lower-level dual) is a dual with zero tangents: lets ``s = 0.0`` then
        # ``s = s + x`` in a loop unify to the dual type
        if isinstance(other, (types.Float, types.Integer, types.Boolean)):
            return Conversion.safe
        if isinstance(other, DualType) and other.level < self.level and other.base == self.base:
            return Conversion.safe
        return None

    def unify(self, typingctx, other):
        if isinstance(other, (types.Float, types.Integer, types.Boolean)):
            return self
        if isinstance(other, DualType) and other.base == self.base and other.level < self.level:
            return self
        return None


def level_of(ty) -> int:
    return ty.level if isinstance(ty, DualType) else 0


def is_scalar(ty) -> bool:
    return isinstance(ty, (DualType, types.Float, types.Integer, types.Boolean))


@register_model(DualType)
class DualModel(models.StructModel):
    def __init__(self, dmm, fe_type):
        members = [("primal", fe_type.inner), ("tangent", types.UniTuple(fe_type.inner, fe_type.k))]
        super().__init__(dmm, fe_type, members)


make_attribute_wrapper(DualType, "primal", "primal")
make_attribute_wrapper(DualType, "tangent", "tangent")


def _cast_to(context, builder, value, fromty, toty):
    return context.cast(builder, value, fromty, toty)


@lower_cast(types.Float, DualType)
@lower_cast(types.Integer, DualType)
@lower_cast(types.Boolean, DualType)
@lower_cast(DualType, DualType)
def _constant_to_dual(context, builder, fromty, toty, value):
    if fromty == toty:
        return value
    if isinstance(fromty, DualType) and fromty.level >= toty.level:
        raise TypeError(f"cannot convert {fromty} to {toty}")
    dual = cgutils.create_struct_proxy(toty)(context, builder)
    dual.primal = context.cast(builder, value, fromty, toty.inner)
    zero = context.cast(builder, context.get_constant(types.float64, 0.0), types.float64, toty.inner)
    dual.tangent = context.make_tuple(builder, types.UniTuple(toty.inner, toty.k), [zero] * toty.k)
    return dual._getvalue()


@intrinsic
def pack(typingctx, like, primal, tangent):
    """A dual of ``like``'s type as primal, from ``primal`` and a tuple of k tangents (cast)."""
    if not isinstance(tangent, types.BaseTuple):
        return None
    result = DualType(like, len(tangent))
    sig = result(like, primal, tangent)

    def codegen(context, builder, signature, args):
        _, value, tangent_value = args
        dual = cgutils.create_struct_proxy(result)(context, builder)
        dual.primal = context.cast(builder, value, primal, like)
        items = [context.cast(builder, builder.extract_value(tangent_value, j), tangent[j], like)
                 for j in range(len(tangent))]
        dual.tangent = context.make_tuple(builder, types.UniTuple(like, len(tangent)), items)
        return dual._getvalue()
    return sig, codegen


@intrinsic
def cast_like(typingctx, value, like):
    """``value`` converted to the type of ``like`` (a float constant to float32, ...)."""
    def codegen(context, builder, signature, args):
        return context.cast(builder, args[0], value, like)
    return like(value, like), codegen


@intrinsic
def cast_base(typingctx, value, like):
    """``value`` converted to the float type under ``like`` (its base type if a dual)."""
    base = like.base if isinstance(like, DualType) else like

    def codegen(context, builder, signature, args):
        return context.cast(builder, args[0], value, base)
    return base(value, like), codegen


# -- primal of any depth ------------------------------------------------------------------
def strip(x):
    """The plain float under any number of dual levels (what comparisons and branches see)."""
    return x


@overload(strip)
def _strip_overload(x):
    if isinstance(x, DualType):
        return lambda x: strip(x.primal)
    if isinstance(x, (types.Number, types.Boolean)):
        return lambda x: x
    return None


# -- rules from the table -----------------------------------------------------------------
_partials: dict = {}     # (rule name, argument, base dtype name) -> jitted partial
_impls: dict = {}        # generated implementation cache


def _partial(rule, i, base, level):
    # one dispatcher per level: a level-2 partial calls the level-1 operators, which call the
    # level-1 partial; compiling a dispatcher from inside its own compilation leaves
    # unresolved symbols in Numba
    key = (rule.name, i, str(base), level)
    fn = _partials.get(key)
    if fn is None:
        dtype = np.dtype(str(base))
        copy = kernels._scalar_copy(rule.partials[i], dtype, __file__, f"d_{rule.name}_{i}_{level}")
        fn = _partials[key] = njit(error_model="numpy")(copy)
    return fn


def _impl_source(rule, kinds, k):
    """Source of ``impl(a, b)``: kinds[i] is 'D' (a dual of the top level), 'N' (a plain
    number: takes the dual's float type, as NEP 50 weak scalars do) or 'L' (a dual of a lower
    level: a constant here, its own operators recurse)."""
    names = "ab"[:rule.nin]
    top = names[kinds.index("D")]
    lines = [f"def impl({', '.join(names)}):"]
    for name, kind in zip(names, kinds):
        if kind == "D":
            lines.append(f"    x_{name} = {name}.primal")
        elif kind == "N":
            lines.append(f"    x_{name} = cast_base({name}, {top}.primal)")
        else:
            lines.append(f"    x_{name} = {name}")
    args = ", ".join(f"x_{n}" for n in names)
    lines.append(f"    ans = _prim({args})")
    terms = [[] for _ in range(k)]
    for i, (name, kind) in enumerate(zip(names, kinds)):
        p = rule.partials[i]
        if kind != "D" or p is None:
            continue
        lines.append(f"    t_{name} = {name}.tangent")
        if callable(p) and _passthrough(p) is not None:  # ``lambda x, y, ans: y``: no call
            factor = f"{(['x_' + n for n in names] + ['ans'])[_passthrough(p)]} * "
        elif callable(p):
            lines.append(f"    d_{name} = _d{i}({args}, ans)")
            factor = f"d_{name} * "
        elif p == 1:
            factor = ""
        elif p == -1:
            factor = "-"
        else:
            lines.append(f"    d_{name} = cast_like({float(p)!r}, x_{top})")
            factor = f"d_{name} * "
        for j in range(k):
            terms[j].append(f"{factor}t_{name}[{j}]")
    tangent = ", ".join(" + ".join(t) if t else "cast_like(0.0, x_" + top + ")" for t in terms)
    lines.append(f"    return pack(x_{top}, ans, ({tangent},))")
    return "\n".join(lines) + "\n"


def _passthrough(partial):
    """The parameter position a partial returns unchanged (multiply's ``y``, exp's ``ans``), or None.

    Such partials are read directly in the generated code: one Numba compilation less per
    rule and level (compile time is the cost that matters here, issue 5)."""
    import dis
    ops = [ins for ins in dis.get_instructions(partial) if ins.opname not in ("RESUME", "NOP")]
    if len(ops) == 2 and ops[0].opname == "LOAD_FAST" and ops[1].opname == "RETURN_VALUE":
        params = partial.__code__.co_varnames[:partial.__code__.co_argcount]
        return params.index(ops[0].argval)
    return None


def _rule_impl(rule, arg_types):
    top = max(level_of(t) for t in arg_types)
    if top == 0 or not all(is_scalar(t) for t in arg_types):
        return None
    duals = [t for t in arg_types if level_of(t) == top]
    if any(t != duals[0] for t in duals):
        # same level = same perturbation, so the same k and float type
        raise TypeError(f"dualad: {rule.name} mixes duals of one level with different types {duals}")
    if any(isinstance(t, DualType) and t.base != duals[0].base for t in arg_types):
        raise TypeError(f"dualad: {rule.name} mixes float32 and float64 duals {list(arg_types)}")
    kinds = "".join("D" if level_of(t) == top else "L" if isinstance(t, DualType) else "N"
                    for t in arg_types)
    k = duals[0].k
    base = duals[0].base
    key = (rule.name, kinds, k, str(base), top)
    impl = _impls.get(key)
    if impl is None:
        namespace = {"_prim": rule.primal, "pack": pack, "cast_like": cast_like, "cast_base": cast_base}
        for i, p in enumerate(rule.partials):
            if callable(p) and kinds[i] == "D" and _passthrough(p) is None:
                namespace[f"_d{i}"] = _partial(rule, i, base, top)
        exec(compile(_impl_source(rule, kinds, k), f"<dualad.compiled {rule.name} {kinds} k={k}>",
                     "exec"), namespace)
        impl = _impls[key] = namespace["impl"]
    return impl


def _register(function, rule):
    if rule.nin == 1:
        @overload(function)
        def unary(a):
            return _rule_impl(rule, (a,))
    else:
        @overload(function)
        def binary(a, b):
            return _rule_impl(rule, (a, b))


def _register_nondiff(function, nin):
    """A piecewise-constant function: applied to the primals (derivative 0 almost everywhere)."""
    if nin == 1:
        @overload(function)
        def unary(a):
            if isinstance(a, DualType):
                return lambda a: function(strip(a))
    else:
        @overload(function)
        def binary(a, b):
            if (isinstance(a, DualType) or isinstance(b, DualType)) and is_scalar(a) and is_scalar(b):
                return lambda a, b: function(strip(a), strip(b))


_ELEMENTWISE = {u: r for u, r in UFUNC_RULES.items() if isinstance(r, Elementwise)}
_BY_NAME = {rule.name: rule for rule in _ELEMENTWISE.values()}

#: Python operators and ``math`` functions -> name of their rule in the table
OPERATORS = {
    operator.add: "add", operator.iadd: "add", operator.sub: "subtract", operator.isub: "subtract",
    operator.mul: "multiply", operator.imul: "multiply", operator.truediv: "divide",
    operator.itruediv: "divide", operator.pow: "power", operator.ipow: "power",
    operator.mod: "remainder", operator.imod: "remainder",
    operator.neg: "negative", operator.pos: "positive", abs: "absolute",
    math.sin: "sin", math.cos: "cos", math.tan: "tan", math.asin: "arcsin", math.acos: "arccos",
    math.atan: "arctan", math.atan2: "arctan2", math.sinh: "sinh", math.cosh: "cosh",
    math.tanh: "tanh", math.asinh: "arcsinh", math.acosh: "arccosh", math.atanh: "arctanh",
    math.exp: "exp", math.expm1: "expm1", math.log: "log", math.log2: "log2",
    math.log10: "log10", math.log1p: "log1p", math.sqrt: "sqrt", math.fabs: "fabs",
    math.pow: "power", math.hypot: "hypot", math.fmod: "fmod", math.degrees: "rad2deg",
    math.radians: "deg2rad",
}
NONDIFF = {operator.floordiv: 2, operator.ifloordiv: 2, math.floor: 1, math.ceil: 1,
           math.trunc: 1, math.isnan: 1, math.isinf: 1, math.isfinite: 1,
           operator.lt: 2, operator.le: 2, operator.gt: 2, operator.ge: 2, operator.eq: 2,
           operator.ne: 2}

for _function, _name in OPERATORS.items():
    _register(_function, _BY_NAME[_name])
for _ufunc, _rule in _ELEMENTWISE.items():
    if _rule.nin in (1, 2):
        _register(_ufunc, _rule)
for _function, _nin in NONDIFF.items():
    _register_nondiff(_function, _nin)
for _ufunc in NONDIFF_UFUNCS:
    if _ufunc.nin in (1, 2):
        _register_nondiff(_ufunc, _ufunc.nin)


# -- outputs: a value of f flattened into a float buffer ------------------------------------
def store(y, like, buf, i, col):
    """Write ``y`` into ``buf[i, col:col + like.width]`` in the layout of ``like``'s type."""


@overload(store)
def _store_overload(y, like, buf, i, col):
    if isinstance(like, DualType):
        inner_width = like.inner.width if isinstance(like.inner, DualType) else 1
        if isinstance(y, DualType) and y.level == like.level:
            k = like.k

            def impl(y, like, buf, i, col):
                store(y.primal, like.primal, buf, i, col)
                t = y.tangent
                for j in range(k):
                    store(t[j], like.primal, buf, i, col + (1 + j) * inner_width)
            return impl
        if is_scalar(y) and level_of(y) < like.level:
            # a value of a lower level is constant for this perturbation: zero tangents
            return lambda y, like, buf, i, col: store(y, like.primal, buf, i, col)
        return None
    if isinstance(y, (types.Number, types.Boolean)):
        def impl(y, like, buf, i, col):
            buf[i, col] = y
        return impl
    return None


def emit(y, like):
    """``(buf, code)``: f's output flattened to ``buf[m, like.width]``; code 0 scalar, 1 tuple, 2 array."""


@overload(emit)
def _emit_overload(y, like):
    from numba.core.errors import TypingError
    width = like.width
    dtype = np.dtype(str(like.base))
    if is_scalar(y):
        def scalar(y, like):
            buf = np.zeros((1, width), dtype)
            store(y, like, buf, 0, 0)
            return buf, 0
        return scalar
    if isinstance(y, types.BaseTuple) and all(is_scalar(e) for e in y):
        body = "".join(f"    store(y[{i}], like, buf, {i}, 0)\n" for i in range(len(y)))
        namespace = {"np": np, "store": store, "dtype": dtype}
        exec(f"def tuple_(y, like):\n    buf = np.zeros(({len(y)}, {width}), dtype)\n{body}"
             "    return buf, 1\n", namespace)
        return namespace["tuple_"]
    if isinstance(y, types.Array) and y.ndim == 1 and isinstance(y.dtype, (types.Float, types.Integer)):
        def array(y, like):
            buf = np.zeros((y.shape[0], width), dtype)
            for i in range(y.shape[0]):
                buf[i, 0] = y[i]
            return buf, 2
        return array
    raise TypingError(f"dualad.jit: f must return a float, a tuple of floats/duals or a 1-D float "
                      f"array; it returned {y}")
