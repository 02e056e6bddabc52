"""The ``Dual`` scalar and the ``DualArray``: arithmetic, vector mode, structure ops, reductions."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import dualad
from dualad import DerivativeDropError, Dual, DualArray
from dualad.testing import check_grads, numerical_jacobian

finite = st.floats(min_value=-10.0, max_value=10.0, allow_nan=False, allow_infinity=False)
nonzero = finite.filter(lambda v: abs(v) > 0.1)
positive = st.floats(min_value=0.1, max_value=10.0)


def approx(value, rel=1e-9, abs=1e-12):  # noqa: A002  (pytest.approx's own names)
    return pytest.approx(value, rel=rel, abs=abs)


# -- Dual: arithmetic with floats and duals, reflected operators ---------------
@pytest.mark.parametrize("op, primal, tangent", [
    (lambda d: d + 2.0, 5.0, 1.0), (lambda d: 2.0 + d, 5.0, 1.0),
    (lambda d: d - 2.0, 1.0, 1.0), (lambda d: 2.0 - d, -1.0, -1.0),
    (lambda d: d * 2.0, 6.0, 2.0), (lambda d: 2.0 * d, 6.0, 2.0),
    (lambda d: d / 2.0, 1.5, 0.5), (lambda d: 2.0 / d, 2.0 / 3.0, -2.0 / 9.0),
    (lambda d: d ** 2.0, 9.0, 6.0), (lambda d: 2.0 ** d, 8.0, 8.0 * math.log(2.0)),
    (lambda d: d ** 2, 9.0, 6.0), (lambda d: -d, -3.0, -1.0), (lambda d: +d, 3.0, 1.0),
    (lambda d: abs(-d), 3.0, 1.0), (lambda d: d * d, 9.0, 6.0), (lambda d: d / d, 1.0, 0.0),
    (lambda d: d - d, 0.0, 0.0), (lambda d: d ** d, 27.0, 27.0 * (1.0 + math.log(3.0))),
])
def test_dual_operators_at_three(op, primal, tangent):
    d = op(Dual(3.0, 1.0))
    assert isinstance(d, Dual)
    assert d.primal == approx(primal)
    assert d.tangent == approx(tangent)


def test_dual_with_numpy_scalars_and_ints():
    d = Dual(2.0, 1.0)
    for other in (np.float64(3.0), 3, np.int64(3)):
        assert (d * other).tangent == 3.0
        assert (other * d).tangent == 3.0
        assert (other - d).tangent == -1.0


def test_dual_of_two_duals():
    x, y = Dual(2.0, 1.0), Dual(5.0, 0.0)  # d/dx
    assert (x * y).tangent == 5.0
    assert (x / y).tangent == approx(1.0 / 5.0)
    assert (y / x).tangent == approx(-5.0 / 4.0)
    assert (x ** y).tangent == approx(5.0 * 2.0 ** 4)          # dual base, constant exponent
    assert (y ** x).tangent == approx(25.0 * math.log(5.0))     # constant base, dual exponent


def test_power_with_dual_base_and_exponent_together():
    t = Dual(2.0, 1.0)
    assert (t ** t).tangent == approx(4.0 * (1.0 + math.log(2.0)))
    assert dualad.derivative(lambda t: t ** t, 2.0) == approx(4.0 * (1.0 + math.log(2.0)))


@pytest.mark.parametrize("name, df", [
    ("sin", math.cos), ("cos", lambda x: -math.sin(x)), ("exp", math.exp),
    ("log", lambda x: 1.0 / x), ("sqrt", lambda x: 0.5 / math.sqrt(x)), ("tanh", lambda x: 1.0 - math.tanh(x) ** 2),
    ("arctan", lambda x: 1.0 / (1.0 + x * x)), ("log1p", lambda x: 1.0 / (1.0 + x)),
])
def test_elementary_functions_np_and_dualad_namespace(name, df):
    x = 0.7
    via_numpy = getattr(np, name)(Dual(x, 1.0))
    via_dualad = getattr(dualad, name)(Dual(x, 1.0))
    assert isinstance(via_numpy, Dual) and isinstance(via_dualad, Dual)
    assert via_numpy.primal == approx(getattr(math, {"arctan": "atan"}.get(name, name))(x))
    assert via_numpy.tangent == approx(df(x))
    assert via_dualad.tangent == via_numpy.tangent


def test_abs_and_unary_ops():
    assert abs(Dual(-2.0, 1.0)).tangent == -1.0
    assert abs(Dual(2.0, 1.0)).tangent == 1.0
    assert (-Dual(2.0, 3.0)).tangent == -3.0
    assert np.abs(Dual(-2.0, 1.0)).tangent == -1.0


def test_comparisons_act_on_the_primal():
    a, b = Dual(1.0, 100.0), Dual(2.0, -100.0)
    assert a < b and a <= b and b > a and b >= a and a != b
    assert a == Dual(1.0, 5.0)  # equal primals, different tangents
    assert a == 1.0 and 1.0 == a and a < 1.5 and 0.5 < a
    for result in (a < b, a == 1.0, a > 0):
        assert isinstance(result, (bool, np.bool_))
    assert bool(Dual(0.0, 1.0)) is False and bool(Dual(2.0, 0.0)) is True


def test_branches_follow_the_primal():
    def f(x):
        return x ** 2 if x > 0 else -3.0 * x
    assert dualad.derivative(f, 2.0) == 4.0
    assert dualad.derivative(f, -1.0) == -3.0
    # the branch does not depend on the chunk size either
    g = lambda v: np.sum(v ** 2) if np.sum(v) > 0 else np.sum(-v)  # noqa: E731
    for chunk in (1, 2, 3):
        np.testing.assert_array_equal(dualad.gradient(g, np.array([1.0, -2.0, 3.0]), chunk=chunk),
                                      [2.0, -4.0, 6.0])


def test_float_of_dual_raises_and_points_to_primal():
    d = Dual(1.5, 1.0)
    with pytest.raises(DerivativeDropError, match=r"\.primal"):
        float(d)
    with pytest.raises(DerivativeDropError, match="drop"):
        int(d)
    assert d.primal == 1.5  # the documented way out


def test_dual_is_unhashable_but_has_repr():
    with pytest.raises(TypeError):
        hash(Dual(1.0, 1.0))
    assert "Dual(" in repr(Dual(1.0, 2.0))


def test_dual_attributes_and_float32():
    d = Dual(np.float32(1.5), 1.0)
    assert d.primal.dtype == np.float32
    e = d * 2.5 + np.sin(d)
    assert e.primal.dtype == np.float32 and np.asarray(e.tangent).dtype == np.float32
    assert Dual(2, 1).primal == 2.0 and isinstance(Dual(2, 1).primal, np.floating)  # ints promote


# -- vector mode: k directions in one pass -------------------------------------
def test_dual_vector_mode_tangents():
    x = Dual(0.5, np.array([1.0, 2.0, 3.0]))
    y = np.sin(x) * x
    np.testing.assert_allclose(y.tangent, (math.cos(0.5) * 0.5 + math.sin(0.5)) * np.array([1.0, 2.0, 3.0]))
    # two inputs seeded with the standard basis: the gradient in one pass
    a, b = Dual(2.0, np.array([1.0, 0.0])), Dual(3.0, np.array([0.0, 1.0]))
    np.testing.assert_allclose((a * a * b).tangent, [12.0, 4.0])


def test_dualarray_vector_mode_gives_jacobian_columns():
    primal = np.array([0.0, 1.0, 2.0])
    x = DualArray(primal, np.eye(3))  # k = 3
    y = np.exp(x) * np.sum(x)
    assert y.tangent.shape == (3, 3) and y.k == 3
    np.testing.assert_allclose(y.tangent.T, dualad.jacobian(lambda v: np.exp(v) * np.sum(v), primal))


# -- duals inside Python containers (the seed: "dual numbers are just data") ----
def test_duals_kept_in_lists_and_dicts():
    def f(x):
        store = {"square": x * x, "parts": [x, 2.0 * x]}
        cache = [store, 3.0]
        later = cache[0]["parts"][1] * cache[0]["square"]  # taken out again: differentiation continues
        return {"y": later, "items": [store["square"], cache[1]]}
    out = dualad.derivative(f, 2.0)
    assert out["y"] == approx(6.0 * 4.0)         # d(2x^3) = 6x^2
    assert out["items"][0] == approx(4.0)
    assert out["items"][1] == 0.0                 # a constant: zero derivative


# -- hypothesis: product, quotient and chain rules ------------------------------
@settings(max_examples=60, deadline=None)
@given(a=finite, b=finite, da=finite, db=finite)
def test_product_rule(a, b, da, db):
    assert (Dual(a, da) * Dual(b, db)).tangent == approx(da * b + a * db, rel=1e-12, abs=1e-9)


@settings(max_examples=60, deadline=None)
@given(a=finite, b=nonzero, da=finite, db=finite)
def test_quotient_rule(a, b, da, db):
    assert (Dual(a, da) / Dual(b, db)).tangent == approx((da * b - a * db) / (b * b), rel=1e-9, abs=1e-9)


@settings(max_examples=60, deadline=None)
@given(x=st.floats(min_value=-3.0, max_value=3.0))
def test_chain_rule(x):
    # d/dx sin(exp(x) * x) = cos(exp(x) x) (exp(x) x + exp(x))
    expected = math.cos(math.exp(x) * x) * (math.exp(x) * x + math.exp(x))
    assert dualad.derivative(lambda t: np.sin(np.exp(t) * t), x) == approx(expected, rel=1e-9, abs=1e-9)


@settings(max_examples=40, deadline=None)
@given(x=positive, k=st.integers(min_value=1, max_value=4))
def test_chain_rule_vector_mode_scales_every_direction(x, k):
    directions = np.arange(1.0, k + 1.0)
    y = np.log(np.sqrt(Dual(x, directions)) + 1.0)
    slope = 0.5 / math.sqrt(x) / (math.sqrt(x) + 1.0)
    np.testing.assert_allclose(y.tangent, slope * directions, rtol=1e-12)


@settings(max_examples=40, deadline=None)
@given(a=positive, b=finite)
def test_power_rules(a, b):
    dx = (Dual(a, 1.0) ** b).tangent
    dy = (a ** Dual(b, 1.0)).tangent
    assert dx == approx(b * a ** (b - 1.0), rel=1e-9, abs=1e-9)
    assert dy == approx(a ** b * math.log(a), rel=1e-9, abs=1e-9)


# -- DualArray: structure ops ---------------------------------------------------
RNG = np.random.default_rng(7)
M34 = RNG.standard_normal((3, 4))
V5 = RNG.standard_normal(5)
T234 = RNG.standard_normal((2, 3, 4))
SQ = RNG.standard_normal((3, 3))

STRUCTURE = {
    "reshape": (lambda x: x.reshape(4, 3) * np.arange(12.0, dtype=x.dtype).reshape(4, 3), M34),
    "reshape-fn": (lambda x: np.reshape(x, (2, -1)), M34),
    "ravel": (lambda x: np.ravel(x) + x.ravel(), M34),
    "flatten": (lambda x: x.flatten(), M34),
    "transpose": (lambda x: np.transpose(x) @ np.ones(3, x.dtype), M34),
    "T": (lambda x: x.T, M34),
    "transpose-axes": (lambda x: x.transpose(2, 0, 1), T234),
    "swapaxes": (lambda x: np.swapaxes(x, 0, 2), T234),
    "moveaxis": (lambda x: np.moveaxis(x, 0, -1), T234),
    "squeeze": (lambda x: np.squeeze(x[:, None, :], axis=1), M34),
    "expand_dims": (lambda x: np.expand_dims(x, (0, 2)), M34),
    "broadcast_to": (lambda x: np.broadcast_to(x, (2, 3, 4)), M34),
    "broadcast-op": (lambda x: x[:, :1] * x[:1, :], M34),
    "concatenate": (lambda x: np.concatenate([x, 2.0 * x, np.ones((1, 4), x.dtype)], axis=0), M34),
    "concatenate-none": (lambda x: np.concatenate([x, x[:1]], axis=None), M34),
    "stack": (lambda x: np.stack([x, np.sin(x)], axis=1), M34),
    "hstack": (lambda x: np.hstack([x, x ** 2]), M34),
    "vstack": (lambda x: np.vstack([x[0], x[1] * 3.0]), M34),
    "split": (lambda x: np.split(x, 2, axis=1)[1] * np.split(x, [1, 3])[1][0, :2], M34),
    "where": (lambda x: np.where(x > 0, x, -2.0 * x), M34),
    "where-both": (lambda x: np.where(x > 0.2, np.sin(x), np.cos(x)), M34),
    "clip": (lambda x: np.clip(x, -0.5, 0.5), M34),
    "clip-method": (lambda x: x.clip(-0.5, None), M34),
    "flip": (lambda x: np.flip(x, axis=0) + np.flip(x), M34),
    "roll": (lambda x: np.roll(x, 2) + np.roll(x, -1, axis=1), M34),
    "tile": (lambda x: np.tile(x, (2, 1)), M34),
    "repeat": (lambda x: np.repeat(x, 2, axis=0), M34),
    "diag-vector": (lambda x: np.diag(x, 1), V5),
    "diag-matrix": (lambda x: np.diag(x), SQ),
    "diagonal": (lambda x: np.diagonal(x, 0, 1, 2), T234[:, :3, :3]),
    "tril": (lambda x: np.tril(x), SQ),
    "triu": (lambda x: np.triu(x, 1), SQ),
    "pad": (lambda x: np.pad(x, ((1, 0), (2, 1))), M34),
    "pad-constant": (lambda x: np.pad(x, 1, constant_values=2.5), V5),
    "pad-reflect": (lambda x: np.pad(x, 2, mode="reflect"), V5),
    "index-basic": (lambda x: x[1:, ::2] + x[0, 1], M34),
    "index-ellipsis": (lambda x: x[..., 1, None], T234),
    "index-negative": (lambda x: x[-1], M34),
    "index-fancy": (lambda x: x[[0, 2, 2], [1, 1, 3]], M34),
    "index-fancy-repeated": (lambda x: x[[0, 0, 1]], V5),
    "index-fancy-mixed": (lambda x: x[:, [3, 0]], M34),
    "index-boolean": (lambda x: x[M34 > 0], M34),
    "index-boolean-row": (lambda x: x[np.array([True, False, True])], M34),
    "iterate": (lambda x: np.stack([row * i for i, row in enumerate(x)]), M34),
}


@pytest.mark.parametrize("name", list(STRUCTURE))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_structure_ops(name, dtype):
    f, x = STRUCTURE[name]
    x = x.astype(dtype)
    J = dualad.jacobian(f, x)
    J_fd = numerical_jacobian(f, x)
    rtol, atol = (1e-6, 1e-8) if dtype == np.float64 else (1e-3, 1e-4)
    if isinstance(J, list):
        pytest.fail("jacobian returned a list")
    np.testing.assert_allclose(J, J_fd, rtol=rtol, atol=atol)
    y = f(DualArray(x, np.ones((1,) + x.shape, dtype)))
    assert y.dtype == dtype and y.tangent.dtype == dtype, "float32 must stay float32"
    np.testing.assert_allclose(y.primal, f(x), rtol=1e-6)


# -- __setitem__ with duals --------------------------------------------------------
def test_setitem_with_duals():
    def f(x):
        out = np.zeros((3, 4)) + 0.0 * x[0, 0]  # a DualArray
        out[0] = x[1] * 2.0                       # a row of duals
        out[1, ::2] = np.sin(x[2, :2])            # basic slice
        out[2, [0, 3]] = x[0, [1, 2]] ** 2        # fancy
        out[out < 0] = 0.0                        # boolean mask (comparisons give plain arrays)
        return out
    check_grads(f, M34, order=2, modes=("fwd",))
    J = dualad.jacobian(f, M34)
    np.testing.assert_allclose(J, numerical_jacobian(f, M34), rtol=1e-6, atol=1e-8)


def test_setitem_dual_into_constant_lifted_array():
    def f(x):
        buffer = DualArray(np.zeros(3))  # lower tag (0) than x
        buffer[1] = x * x
        return buffer
    np.testing.assert_allclose(dualad.derivative(f, 3.0), [0.0, 6.0, 0.0])


def test_setitem_higher_tag_dual_into_lower_tag_array():
    """An inner differentiation writes its dual into the outer one's array."""
    def outer(x):  # x: DualArray of the outer tag
        def inner(y):  # y: Dual of a newer tag
            buffer = x * 1.0
            buffer[0] = y * x[1]   # the newer tag lands in an array of the older tag
            return np.sum(buffer * x)
        return dualad.derivative(inner, 2.0)  # = x[1] * x[0]
    x = np.array([3.0, 5.0, 7.0])
    np.testing.assert_allclose(dualad.gradient(outer, x), [5.0, 3.0, 0.0])
    np.testing.assert_allclose(dualad.gradient(outer, x, chunk=1), [5.0, 3.0, 0.0])


def test_setitem_repeated_fancy_index_is_refused():
    def f(x):
        out = x * 1.0
        out[[0, 0]] = x[1:3]
        return out
    with pytest.raises(IndexError, match="repeated"):
        dualad.jacobian(f, V5)


# -- reductions --------------------------------------------------------------------
REDUCTIONS = {
    "sum": lambda x: np.sum(x), "sum-axis": lambda x: np.sum(x, axis=1),
    "sum-keepdims": lambda x: np.sum(x, axis=(0, 2), keepdims=True), "sum-method": lambda x: x.sum(0),
    "add.reduce": lambda x: np.add.reduce(x, axis=0),
    "mean": lambda x: np.mean(x, axis=-1), "mean-keepdims": lambda x: x.mean(axis=0, keepdims=True),
    "prod": lambda x: np.prod(x, axis=1), "prod-all": lambda x: np.prod(x),
    "prod-keepdims": lambda x: np.prod(x, axis=(1, 2), keepdims=True),
    "max": lambda x: np.max(x, axis=0), "max-method": lambda x: x.max(),
    "min": lambda x: np.min(x, axis=2, keepdims=True), "amin": lambda x: np.amin(x, axis=1),
    "var": lambda x: np.var(x), "var-axis-ddof": lambda x: np.var(x, axis=1, ddof=1),
    "var-keepdims": lambda x: np.var(x, axis=0, keepdims=True),
    "std": lambda x: np.std(x, axis=2), "std-ddof": lambda x: x.std(ddof=1),
    "cumsum": lambda x: np.cumsum(x, axis=1), "cumsum-flat": lambda x: np.cumsum(x),
    "cumprod": lambda x: np.cumprod(x, axis=2), "cumprod-flat": lambda x: x.cumprod(),
    "trace": lambda x: np.trace(x, axis1=1, axis2=2), "trace-offset": lambda x: np.trace(x[0], 1),
}


@pytest.mark.parametrize("name", list(REDUCTIONS))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_reductions(name, dtype):
    f = REDUCTIONS[name]
    x = T234.astype(dtype)
    J = dualad.jacobian(f, x)
    rtol, atol = (1e-6, 1e-8) if dtype == np.float64 else (2e-3, 2e-4)
    np.testing.assert_allclose(J, numerical_jacobian(f, x), rtol=rtol, atol=atol)
    assert np.asarray(J).dtype == dtype
    if dtype == np.float64:
        check_grads(f, x, order=2, modes=("fwd",))


@pytest.mark.parametrize("x", [np.array([2.0, 0.0, 3.0, -1.5]), np.array([0.0, 0.0, 3.0]),
                               np.array([[1.0, 0.0], [2.0, 5.0], [0.0, 0.0]])])
@pytest.mark.parametrize("name", ["prod", "cumprod"])
def test_prod_and_cumprod_with_zeros(x, name):
    f = {"prod": lambda v: np.prod(v, axis=0), "cumprod": lambda v: np.cumprod(v, axis=0)}[name]
    J = dualad.jacobian(f, x)
    assert np.all(np.isfinite(J))
    np.testing.assert_allclose(J, numerical_jacobian(f, x), rtol=1e-7, atol=1e-9)


def test_max_ties_split_equally():
    g = dualad.gradient(np.max, np.array([1.0, 3.0, 3.0, 3.0]))
    np.testing.assert_allclose(g, [0.0, 1 / 3, 1 / 3, 1 / 3])


# -- float32 end to end ------------------------------------------------------------
def test_float32_end_to_end():
    W = np.random.default_rng(1).standard_normal((3, 4)).astype(np.float32)

    def f(x):
        h = np.tanh(W @ x) * 2.5 + np.exp(-x[:3].sum())
        return h / np.sqrt(np.sum(h * h) + 1.0)
    x = np.linspace(-1, 1, 4, dtype=np.float32)
    y, t = dualad.jvp(f, x, np.ones(4, np.float32))
    assert y.dtype == np.float32 and t.dtype == np.float32
    J = dualad.jacobian(f, x, chunk=3)
    assert J.dtype == np.float32
    np.testing.assert_allclose(J, numerical_jacobian(f, x), rtol=2e-3, atol=2e-4)
    g = dualad.gradient(lambda x: np.sum(f(x)), x)
    H = dualad.hessian(lambda x: np.sum(f(x)), x)
    assert g.dtype == np.float32 and H.dtype == np.float32
    check_grads(lambda x: np.sum(f(x)), x, order=2, modes=("fwd",))


# -- DualArray conversions and attributes --------------------------------------------
def test_dualarray_attributes():
    x = DualArray(M34, np.ones((2, 3, 4)))
    assert x.shape == (3, 4) and x.ndim == 2 and x.size == 12 and x.dtype == np.float64 and x.k == 2
    assert len(x) == 3 and [row.shape for row in x] == [(4,)] * 3
    assert x.tangent.shape == (2, 3, 4)
    one = DualArray(V5, V5)  # a tangent of the primal's shape means k = 1
    assert one.tangent.shape == (1, 5)
    assert DualArray(np.arange(3)).dtype == np.float64  # integers promote
    with pytest.raises(DerivativeDropError, match=r"\.primal"):
        float(DualArray(np.ones(1)))
    with pytest.raises(DerivativeDropError):
        x.astype(np.int64)
    assert x.astype(np.float32).tangent.dtype == np.float32


@pytest.mark.parametrize("join", [
    lambda d, c: np.concatenate([d, c]), lambda d, c: np.stack([d, c]),
    lambda d, c: np.hstack([c, d]), lambda d, c: np.vstack([d, c]),
    lambda d, c: np.where(np.array([True, False]), d, c), lambda d, c: d + c,
], ids=["concatenate", "stack", "hstack", "vstack", "where", "add"])
def test_tangent_has_its_primals_dtype_when_a_float64_constant_promotes(join):
    """float32 duals joined with a float64 constant: NumPy promotes the primal to float64,
    and the tangent follows it (it stayed float32 for concatenate and stack)."""
    d = DualArray(np.array([0.5, 1.5], np.float32), np.ones((3, 2), np.float32))
    out = join(d, np.array([2.0, 3.0]))
    assert out.primal.dtype == np.float64 and out.tangent.dtype == np.float64
    out = join(d, np.array([2.0, 3.0], np.float32))
    assert out.primal.dtype == np.float32 and out.tangent.dtype == np.float32


def test_modulo_floor_division_and_divmod_of_duals():
    """Python's % and // on Dual follow np.remainder/np.floor_divide: the remainder carries
    d/dx = 1, d/dy = -floor(x / y); the quotient is a plain number (derivative 0)."""
    x, y = 7.5, 2.0
    q, r = divmod(Dual(x, 1.0), y)
    assert type(q) is not Dual and q == 3.0
    assert (r.primal, r.tangent) == (1.5, 1.0)
    q, r = divmod(x, Dual(y, 1.0))
    assert q == 3.0 and (r.primal, r.tangent) == (1.5, -3.0)
    r = Dual(-x, 1.0) % y  # the sign of the divisor, as Python's and NumPy's
    assert r.primal == (-x) % y == 0.5 and r.tangent == 1.0
    assert 7.5 // Dual(2.0, 1.0) == 3.0 and Dual(7.5, 1.0) // 2.0 == 3.0
    np.testing.assert_allclose(dualad.gradient(lambda v: v[0] % v[1] + v[0] // v[1], np.array([x, y])),
                               [1.0, -3.0])
    for h in (1e-6,):  # central differences away from the jumps
        fd = ((x + h) % y - (x - h) % y) / (2 * h), (x % (y + h) - x % (y - h)) / (2 * h)
        np.testing.assert_allclose(dualad.gradient(lambda v: v[0] % v[1], np.array([x, y])), fd, rtol=1e-6)
