"""Elementwise primitives: one partial derivative per argument, one line each.

Each partial is a function of the inputs and the output ``ans`` written with NumPy
functions, so it works on arrays, on nested duals, on Tensors, and (compiled by
Numba) on the scalars inside the fused kernels of ``dualad.kernels``.
Constants are Python floats so float32 stays float32 (NEP 50 weak scalars).

Conventions at non-differentiable points (tested in tests/test_conventions.py):
abs'(±0) = 0; sign' = 0 (also floor, rint, np.round ...); maximum/minimum ties split
0.5/0.5; sqrt'(0) = +inf; d(x**0)/dx = 0 (also at x = 0); d(0**y)/dy = 0; hypot'(0, 0) = 0.
Tested in tests/test_numpy_coverage.py: copysign(x, y): d/dx = ±1 as the signs of x and y
agree (0 at x = ±0, as abs), d/dy = 0; heaviside(x1, x2): d/dx1 = 0, d/dx2 = 1 where x1 == 0
(the value is x2 there, as jnp.heaviside); nextafter(x, y) moves x by one ulp: d/dx = 1,
d/dy = 0 (what central differences give); spacing is piecewise constant (a plain result, as
floor); conjugate is the identity (a traced value is never complex).

Ufuncs with several outputs or an integer operand are implementations of their own
(``FUNCTION_IMPLS``, reached from ``__array_ufunc__``): modf (the fraction has derivative 1,
the integral part is plain), frexp (the mantissa is ``ldexp(x, -e)``, the exponent plain),
divmod (the quotient is plain, the remainder np.remainder's rule) and ldexp (linear in x).
"""
from __future__ import annotations

import math

import numpy as np

from .core import (NONDIFF_UFUNCS, UFUNC_RULES, Elementwise, Linear, expand_to, full_batch,
                   match_dtype, register_function, shape_of, unbroadcast)

LN2, LN10 = math.log(2.0), math.log(10.0)
WIDE = (-2.0, 2.0)
POSITIVE = (0.2, 3.0)
UNIT = (-0.9, 0.9)


def ufunc_rule(ufunc, partials, domain=None, kernel=True):
    rule = Elementwise(ufunc.__name__, ufunc, partials, domain=domain, kernel=kernel)
    UFUNC_RULES[ufunc] = rule
    return rule


def _safe_base(x, y):
    # x**(y-1) with the base replaced where x == y == 0, so 0**0 has derivative 0 (not 0 * inf).
    # Only there: replacing it wherever y == 0 made d/dy (d/dx x**y) = 1 instead of 1/x at
    # y == 0, a wrong (and asymmetric) Hessian of x**y (found by dualad.fuzz).
    return np.where((y == 0) & (x == 0), 1.0, x)


def _safe_log(x):
    # log(x) with log(0) read as 0, so d(0**y)/dy = 0 instead of 0 * -inf
    return np.log(np.where(x == 0, 1.0, x))


def _nonzero(a):
    return np.where(a == 0, 1.0, a)


# -- arithmetic ---------------------------------------------------------------
add = ufunc_rule(np.add, (1.0, 1.0))
subtract = ufunc_rule(np.subtract, (1.0, -1.0))
multiply = ufunc_rule(np.multiply, (lambda x, y, ans: y, lambda x, y, ans: x))
divide = ufunc_rule(np.divide, (lambda x, y, ans: 1.0 / y, lambda x, y, ans: -ans / y),
                    domain=(WIDE, POSITIVE))
negative = ufunc_rule(np.negative, -1.0)
positive = ufunc_rule(np.positive, 1.0)
power = ufunc_rule(np.power, (lambda x, y, ans: y * _safe_base(x, y) ** (y - 1.0),
                              lambda x, y, ans: ans * _safe_log(x)),
                   domain=(POSITIVE, WIDE))
float_power = ufunc_rule(np.float_power, (lambda x, y, ans: y * _safe_base(x, y) ** (y - 1.0),
                                          lambda x, y, ans: ans * _safe_log(x)),
                         domain=(POSITIVE, WIDE))
square = ufunc_rule(np.square, lambda x, ans: 2.0 * x)
sqrt = ufunc_rule(np.sqrt, lambda x, ans: 0.5 / ans, domain=(POSITIVE,))  # +inf at x == 0
cbrt = ufunc_rule(np.cbrt, lambda x, ans: 1.0 / (3.0 * ans * ans), domain=(POSITIVE,))
reciprocal = ufunc_rule(np.reciprocal, lambda x, ans: -ans * ans, domain=(POSITIVE,))
remainder = ufunc_rule(np.remainder, (1.0, lambda x, y, ans: -np.floor(x / y)),
                       domain=(POSITIVE, POSITIVE))
fmod = ufunc_rule(np.fmod, (1.0, lambda x, y, ans: -np.trunc(x / y)), domain=(POSITIVE, POSITIVE))

# -- exponentials and logarithms ----------------------------------------------
exp = ufunc_rule(np.exp, lambda x, ans: ans)
exp2 = ufunc_rule(np.exp2, lambda x, ans: ans * LN2)
expm1 = ufunc_rule(np.expm1, lambda x, ans: ans + 1.0)
log = ufunc_rule(np.log, lambda x, ans: 1.0 / x, domain=(POSITIVE,))
log2 = ufunc_rule(np.log2, lambda x, ans: 1.0 / (x * LN2), domain=(POSITIVE,))
log10 = ufunc_rule(np.log10, lambda x, ans: 1.0 / (x * LN10), domain=(POSITIVE,))
log1p = ufunc_rule(np.log1p, lambda x, ans: 1.0 / (1.0 + x), domain=((-0.8, 2.0),))
logaddexp = ufunc_rule(np.logaddexp, (lambda x, y, ans: np.exp(x - ans),
                                      lambda x, y, ans: np.exp(y - ans)))
logaddexp2 = ufunc_rule(np.logaddexp2, (lambda x, y, ans: np.exp2(x - ans),
                                        lambda x, y, ans: np.exp2(y - ans)))

# -- trigonometric and hyperbolic ---------------------------------------------
sin = ufunc_rule(np.sin, lambda x, ans: np.cos(x))
cos = ufunc_rule(np.cos, lambda x, ans: -np.sin(x))
tan = ufunc_rule(np.tan, lambda x, ans: 1.0 + ans * ans, domain=((-1.2, 1.2),))
arcsin = ufunc_rule(np.arcsin, lambda x, ans: 1.0 / np.sqrt(1.0 - x * x), domain=(UNIT,))
arccos = ufunc_rule(np.arccos, lambda x, ans: -1.0 / np.sqrt(1.0 - x * x), domain=(UNIT,))
arctan = ufunc_rule(np.arctan, lambda x, ans: 1.0 / (1.0 + x * x))
arctan2 = ufunc_rule(np.arctan2, (lambda y, x, ans: x / (x * x + y * y),
                                  lambda y, x, ans: -y / (x * x + y * y)),
                     domain=(WIDE, POSITIVE))
hypot = ufunc_rule(np.hypot, (lambda x, y, ans: x / _nonzero(ans),  # 0 at (0, 0)
                              lambda x, y, ans: y / _nonzero(ans)))
deg2rad = ufunc_rule(np.deg2rad, math.pi / 180.0)
rad2deg = ufunc_rule(np.rad2deg, 180.0 / math.pi)
sinh = ufunc_rule(np.sinh, lambda x, ans: np.cosh(x))
cosh = ufunc_rule(np.cosh, lambda x, ans: np.sinh(x))
tanh = ufunc_rule(np.tanh, lambda x, ans: 1.0 - ans * ans)
arcsinh = ufunc_rule(np.arcsinh, lambda x, ans: 1.0 / np.sqrt(x * x + 1.0))
arccosh = ufunc_rule(np.arccosh, lambda x, ans: 1.0 / np.sqrt(x * x - 1.0), domain=((1.2, 3.0),))
arctanh = ufunc_rule(np.arctanh, lambda x, ans: 1.0 / (1.0 - x * x), domain=(UNIT,))

# -- kinks: absolute value, extrema -------------------------------------------
absolute = ufunc_rule(np.absolute, lambda x, ans: np.sign(x))  # 0 at ±0
fabs = ufunc_rule(np.fabs, lambda x, ans: np.sign(x))  # 0 at ±0
# ties split equally between the two arguments
maximum = ufunc_rule(np.maximum, (lambda x, y, ans: (x > y) + 0.5 * (x == y),
                                  lambda x, y, ans: (y > x) + 0.5 * (x == y)))
minimum = ufunc_rule(np.minimum, (lambda x, y, ans: (x < y) + 0.5 * (x == y),
                                  lambda x, y, ans: (y < x) + 0.5 * (x == y)))
# fmax/fmin ignore a NaN argument, so the derivative goes to the other one
fmax = ufunc_rule(np.fmax, (lambda x, y, ans: (x > y) + 0.5 * (x == y) + np.isnan(y),
                            lambda x, y, ans: (y > x) + 0.5 * (x == y) + np.isnan(x)))
fmin = ufunc_rule(np.fmin, (lambda x, y, ans: (x < y) + 0.5 * (x == y) + np.isnan(y),
                            lambda x, y, ans: (y < x) + 0.5 * (x == y) + np.isnan(x)))

# -- signs and steps ----------------------------------------------------------
copysign = ufunc_rule(np.copysign, (lambda x, y, ans: np.sign(x) * np.sign(ans), 0.0))
heaviside = ufunc_rule(np.heaviside, (0.0, lambda x1, x2, ans: (x1 == 0) * 1.0), kernel=False)
nextafter = ufunc_rule(np.nextafter, (1.0, 0.0))

# -- other names of the rules above (distinct ufunc objects, the same functions) --
UFUNC_RULES[np.degrees] = rad2deg
UFUNC_RULES[np.radians] = deg2rad
UFUNC_RULES[np.conjugate] = positive  # (np.conj is np.conjugate; a traced value is never complex)

# -- piecewise constant and boolean ufuncs: results are plain arrays ----------
NONDIFF_UFUNCS.update({
    np.floor, np.ceil, np.rint, np.trunc, np.sign, np.signbit, np.floor_divide,
    np.greater, np.greater_equal, np.less, np.less_equal, np.equal, np.not_equal,
    np.logical_and, np.logical_or, np.logical_xor, np.logical_not,
    np.isnan, np.isinf, np.isfinite, np.spacing,
})


# -- ufuncs with several outputs or an integer operand: implementations of their own --------
def _integer_operand(name, i):
    plain = np.asarray(_plain(i))
    if plain.dtype.kind not in "biu":
        raise TypeError(f"np.{name}: the exponent must be an integer array, got dtype {plain.dtype}")
    return plain


def _ldexp_batched(tangents, primals, nb):
    (t, _), (x, i) = tangents, primals
    return np.ldexp(expand_to(t, nb, max(np.ndim(x), np.ndim(i))), i)


def _ldexp_transpose(argnum, out_bar, primals, nb):
    x, i = primals
    return unbroadcast(np.ldexp(out_bar, i), np.shape(x), nb)


#: ``x * 2**i``, linear in x (the tangent is scaled exactly as the value); i has no derivative
ldexp_rule = Linear("ldexp", np.ldexp, _ldexp_batched, _ldexp_transpose, nondiff_argnums=(1,))
ldexp_rule.saved_for = lambda argnum: (frozenset({1}), False)  # the transpose scales by 2**i too


def _ldexp_examples():
    return [lambda rng: ((rng.standard_normal((3, 4)), rng.integers(-3, 4, (3, 4))), {}),
            lambda rng: ((rng.standard_normal((2, 3)), rng.integers(-2, 3, (3,))), {}),
            lambda rng: ((rng.standard_normal((4,)), 3), {})]


@register_function(np.ldexp, examples=_ldexp_examples())
def ldexp(x1, x2, /, **kwargs):
    """``x1 * 2**x2``: the derivative in x1 is ``2**x2`` (exact), x2 is an integer."""
    _no_ufunc_keywords("ldexp", kwargs)
    return ldexp_rule(x1, _integer_operand("ldexp", x2))


#: the fractional part of np.modf (NumPy's value, with the sign of x): derivative 1
modf_fraction = Elementwise("modf_fraction", lambda x: np.modf(x)[0], 1.0, kernel=False)


@register_function(np.modf, examples=[lambda rng: ((rng.uniform(-3.0, 3.0, (3, 4)),), {})])
def modf(x, /, **kwargs):
    """``(fraction, integral part)``: the fraction follows x (derivative 1), the integral part is
    piecewise constant (a plain array, as np.trunc)."""
    _no_ufunc_keywords("modf", kwargs)
    return modf_fraction(x), np.modf(np.asarray(_plain(x)))[1]


@register_function(np.frexp, examples=[lambda rng: ((rng.uniform(-3.0, 3.0, (3, 4)),), {})])
def frexp(x, /, **kwargs):
    """``(mantissa, exponent)``: the mantissa is ``ldexp(x, -exponent)`` (derivative ``2**-e``),
    the exponent a plain integer array."""
    _no_ufunc_keywords("frexp", kwargs)
    exponent = np.frexp(np.asarray(_plain(x)))[1]
    return ldexp_rule(x, -exponent), exponent


@register_function(np.divmod, examples=[lambda rng: ((rng.uniform(0.2, 3.0, (3, 4)),
                                                      rng.uniform(0.2, 3.0, (4,))), {})])
def divmod_(x1, x2, /, **kwargs):
    """``(floor_divide, remainder)``: the quotient is piecewise constant (plain, as
    np.floor_divide), the remainder np.remainder's rule (NumPy computes both the same way)."""
    _no_ufunc_keywords("divmod", kwargs)
    return np.floor_divide(_plain(x1), _plain(x2)), remainder(x1, x2)


def _no_ufunc_keywords(name, kwargs):
    if kwargs:
        raise TypeError(f"np.{name}: unsupported keyword arguments {sorted(kwargs)} for traced arrays")


# -- functions that are elementwise but not ufuncs ----------------------------
def _round(a, decimals=0, out=None):
    # piecewise constant, as np.rint: the result is a plain array (zero derivative)
    if out is not None:
        raise TypeError("np.round(..., out=) is not supported for traced arrays (the result is a "
                        "plain array without derivative; drop out=)")
    return np.round(_plain(a), decimals)


_ROUND_EXAMPLES = [lambda rng: ((rng.standard_normal((3, 4)),), {}),
                   lambda rng: ((rng.standard_normal((4,)),), {"decimals": 1})]
register_function(np.round, examples=_ROUND_EXAMPLES)(_round)
register_function(np.around, examples=_ROUND_EXAMPLES)(_round)


class _Select(Elementwise):
    """``where(c, x, y)``: the JVP *selects* tangents, ``where(c, x_dot, y_dot)``.

    Multiplying by the 0/1 partials would turn the branch not taken into
    ``0 * inf = nan`` (e.g. ``where(x > 0, sqrt(x), 0)`` at 0, or nan_safe's own
    ``where`` under nesting); a select keeps it exactly 0, as JAX's select does.
    """

    def jvp(self, primals, tangents, out, nb, static):
        _, tx, ty = tangents
        if tx is None and ty is None:
            return None
        ref = tx if tx is not None else ty
        ndim = np.ndim(out)
        zero = np.zeros((), dtype=getattr(ref, "dtype", np.float64))
        out_t = np.where(np.asarray(primals[0]) != 0,
                         zero if tx is None else expand_to(tx, nb, ndim),
                         zero if ty is None else expand_to(ty, nb, ndim))
        return match_dtype(full_batch(out_t, tuple(ref.shape[:nb]), shape_of(out)), out)


where_rule = _Select("where", np.where, (None, lambda c, x, y, ans: (c != 0) * 1.0,
                                        lambda c, x, y, ans: (c == 0) * 1.0), kernel=False)
clip_rule = Elementwise("clip", np.clip, (lambda x, lo, hi, ans: (x >= lo) * (x <= hi) * 1.0,
                                          lambda x, lo, hi, ans: (x < lo) * 1.0,
                                          lambda x, lo, hi, ans: (x > hi) * (x >= lo) * 1.0),
                        domain=(WIDE, (-1.5, -0.5), (0.5, 1.5)), kernel=False)


def _examples_where(rng):
    x = rng.standard_normal((3, 4))
    return (x > 0, x, rng.standard_normal((4,))), {}


@register_function(np.where, examples=[_examples_where])
def where(condition, x=None, y=None):
    if x is None and y is None:
        return np.nonzero(np.asarray(condition))  # one-argument form: indices, no derivative
    return where_rule(_plain(condition), x, y)


def _examples_clip(rng):
    return (rng.standard_normal((3, 4)), -0.5, 0.7), {}


@register_function(np.clip, examples=[_examples_clip])
def clip(a, a_min=None, a_max=None, out=None, **kwargs):
    if out is not None:
        raise TypeError("np.clip(..., out=) is not supported for traced arrays")
    lo = -math.inf if a_min is None else a_min
    hi = math.inf if a_max is None else a_max
    return clip_rule(a, lo, hi)


def _plain(x):
    """The primal values of a (possibly traced) non-differentiable argument."""
    while getattr(x, "_ad_level", None) is not None:
        x = x._ad_primal()
    return x


# NumPy dispatches np.select on condlist and choicelist only: with every choice a constant (a
# program value of the fuzzer may be one), a traced default reaches NumPy's own code, which
# refuses it (DerivativeDropError). So the examples keep the default a number;
# tests/test_numpy_coverage.py differentiates a traced default beside a traced choice.
def _examples_select(rng):
    x = rng.standard_normal((3, 4))
    return ([x < -0.5, x > 0.5], [x, rng.standard_normal((4,))]), {"default": -0.75}


@register_function(np.select, examples=[_examples_select,
                                        lambda rng: (([np.array([True, False, True])],
                                                      [rng.standard_normal((2, 3))]), {"default": 0.5})])
def select(condlist, choicelist, default=0):
    """NumPy's select as a chain of selects (the first true condition wins): each entry's
    derivative is that of the choice (or default) it comes from."""
    if len(condlist) != len(choicelist):
        raise ValueError("list of cases must be same length as list of conditions")
    if len(condlist) == 0:
        raise ValueError("select with an empty condition list is not possible")
    # NumPy keeps Python scalars weak when it works out the result's dtype (NEP 50)
    choices = [c if type(c) in (int, float) or getattr(c, "_ad_level", None) is not None
               else np.asarray(c) for c in list(choicelist) + [default]]
    dtype = np.result_type(*[_plain(c) for c in choices])
    conditions = [np.asarray(_plain(c)) for c in condlist]
    for i, cond in enumerate(conditions):
        if cond.dtype.type is not np.bool_:
            raise TypeError(f"invalid entry {i} in condlist: should be boolean ndarray")
    shape = np.broadcast_shapes(*[c.shape for c in conditions], *[np.shape(c) for c in choices])
    result = choices[-1]
    for cond, choice in zip(conditions[::-1], choices[-2::-1]):
        result = where_rule(cond, choice, result)
    if np.shape(result) != shape:
        result = np.broadcast_to(result, shape)
    return result if _plain(result).dtype == dtype else result.astype(dtype)
