"""Every entry of the primitive table against central finite differences, in both modes.

The cases are generated from the table itself (``dualad.rules``):

* every ufunc in ``UFUNC_RULES``: an ``Elementwise`` rule is sampled from its
  ``domain`` (same shapes, broadcasting ``(3, 1) x (4,)``, 0-d and Python-float
  operands, constant operands), any other ufunc rule (matmul) from ``EXAMPLES``;
* every function in ``FUNCTION_IMPLS`` with ``EXAMPLES``, differentiated with
  respect to every float-array argument (also inside lists, as for concatenate);
* each in float64 and float32 (the Jacobian must stay float32).

A primitive registered without examples or domain fails ``test_every_entry_has_examples``,
except the functions of ``INDEX_FUNCTIONS`` below, which have integer/boolean results
(or unspecified values: empty_like) and no derivative: those are checked to return plain
(untraced) results instead.
"""
from __future__ import annotations

import importlib

import numpy as np
import pytest

import dualad
from dualad.rules import EXAMPLES, FUNCTION_IMPLS, NONDIFF_UFUNCS, UFUNC_RULES, Elementwise
from dualad.rules.scatter import IN_PLACE_FUNCTIONS  # return None: tests/test_assembly_scatter.py
from dualad.testing import check_grads, example_case, numerical_jacobian

MODES = ["fwd", "rev"]
DTYPES = [np.float64, np.float32]

# The documented allow-list: registered without examples because they have no derivative
# (integer or boolean results); each entry says how to call it on a traced array `x` (shape (3, 4)).
INDEX_FUNCTIONS = {
    np.argmax: lambda x: np.argmax(x, axis=1),
    np.argmin: lambda x: np.argmin(x),
    np.argsort: lambda x: np.argsort(x, axis=0),
    np.argwhere: lambda x: np.argwhere(x),
    np.nonzero: lambda x: np.nonzero(x),
    np.flatnonzero: lambda x: np.flatnonzero(x),
    np.count_nonzero: lambda x: np.count_nonzero(x),
    np.shape: lambda x: np.shape(x),
    np.ndim: lambda x: np.ndim(x),
    np.size: lambda x: np.size(x),
    np.isclose: lambda x: np.isclose(x, x),
    np.allclose: lambda x: np.allclose(x, x),
    np.array_equal: lambda x: np.array_equal(x, x),
    np.argpartition: lambda x: np.argpartition(x, 1, axis=1),
    np.searchsorted: lambda x: np.searchsorted(np.sort(x.primal[0]), x[1]),
    np.any: lambda x: np.any(x, axis=0),
    np.all: lambda x: np.all(x),
    np.nanargmax: lambda x: np.nanargmax(x, axis=1),
    np.nanargmin: lambda x: np.nanargmin(x),
    np.result_type: lambda x: np.result_type(x, np.float32),
    np.can_cast: lambda x: np.can_cast(x, np.float32),
    # values unspecified (uninitialised memory), so only the shape is compared
    np.empty_like: lambda x: np.empty_like(x).shape,
    np.linalg.matrix_rank: lambda x: np.linalg.matrix_rank(x),
}


# -- the oracle ------------------------------------------------------------------
def _rev_jacobian(f, x):
    reversead = importlib.import_module("reversead")
    return reversead.jacobian(f, x)


def _leaves(tree):
    if isinstance(tree, (tuple, list)):
        return [leaf for t in tree for leaf in _leaves(t)]
    return [tree]


def _tolerances(dtype):
    return (2e-3, 2e-4) if dtype == np.float32 else (1e-6, 1e-8)


def check_against_fd(f, x, mode, dtype, order=1):
    """The mode's full Jacobian vs the central-difference Jacobian, then check_grads' projections."""
    J = dualad.jacobian(f, x) if mode == "fwd" else _rev_jacobian(f, x)
    J_fd = numerical_jacobian(f, x)
    rtol, atol = _tolerances(dtype)
    got, want = _leaves(J), _leaves(J_fd)
    assert len(got) == len(want)
    # float32 stays float32: where f's value is float32, so is its Jacobian (np.float_power is float64)
    out_dtypes = [np.result_type(y) for y in _leaves(f(*x) if isinstance(x, tuple) else f(x))]
    if isinstance(x, tuple) and len(out_dtypes) == 1:
        out_dtypes = out_dtypes * len(x)
    for a, b, out_dtype in zip(got, want, out_dtypes):
        assert np.shape(a) == np.shape(b)
        if dtype == np.float32 and out_dtype == np.float32:
            assert np.asarray(a).dtype == np.float32, f"float32 input gave a {np.asarray(a).dtype} Jacobian"
        scale = max(1.0, float(np.max(np.abs(b), initial=0.0)))
        np.testing.assert_allclose(np.asarray(a, dtype=np.float64), b, rtol=rtol, atol=atol * scale)
    check_grads(f, x, order=order, modes=(mode,))


# -- ufunc cases -------------------------------------------------------------------
def _sample(rng, interval, shape, dtype):
    lo, hi = interval
    return rng.uniform(lo, hi, size=shape).astype(dtype)


def _python_scalar(rng, interval, dtype):
    value = rng.uniform(*interval)
    return float(value) if dtype == np.float64 else np.float32(value)


UNARY_SHAPES = {"vector": (5,), "matrix": (2, 3), "0d": (), "scalar": None}
BINARY_SHAPES = {"same": ((4,), (4,)), "broadcast": ((3, 1), (4,)), "0d-left": ((), (3,)),
                 "0d-right": ((3,), ()), "scalars": (None, None),
                 "const-right": ((2, 3), "const"), "const-left": ("const", (2, 3))}


def _ufunc_cases():
    cases = []
    for ufunc, rule in UFUNC_RULES.items():
        if not isinstance(rule, Elementwise):
            continue
        shapes = UNARY_SHAPES if rule.nin == 1 else BINARY_SHAPES
        for label in shapes:
            for dtype in DTYPES:
                cases.append(pytest.param(ufunc, label, dtype,
                                          id=f"{ufunc.__name__}-{label}-{np.dtype(dtype).name}"))
    return cases


def _make_ufunc_case(ufunc, label, dtype, rng):
    """(f, x) for one case: x holds only the differentiated operands."""
    rule = UFUNC_RULES[ufunc]
    shapes = UNARY_SHAPES[label] if rule.nin == 1 else BINARY_SHAPES[label]
    shapes = (shapes,) if rule.nin == 1 else shapes
    operands, slots = [], []
    for i, shape in enumerate(shapes):
        if shape == "const":
            operands.append(_python_scalar(rng, rule.domain[i], np.float64))  # weak Python float
        elif shape is None:
            operands.append(_python_scalar(rng, rule.domain[i], dtype))
            slots.append(i)
        else:
            operands.append(_sample(rng, rule.domain[i], shape, dtype))
            slots.append(i)

    def f(*xs):
        args = list(operands)
        for i, value in zip(slots, xs):
            args[i] = value
        return ufunc(*args)
    x = tuple(operands[i] for i in slots)
    return f, (x[0] if len(x) == 1 else x)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("ufunc, label, dtype", _ufunc_cases())
def test_ufunc_rule(ufunc, label, dtype, mode, rng):
    f, x = _make_ufunc_case(ufunc, label, dtype, rng)
    check_against_fd(f, x, mode, dtype, order=2 if dtype == np.float64 else 1)


# -- function (and non-elementwise ufunc) cases from EXAMPLES ----------------------
def _example_cases():
    cases = []
    for func, examples in EXAMPLES.items():
        if func not in FUNCTION_IMPLS and func not in UFUNC_RULES:
            continue
        for i in range(len(examples)):
            for dtype in DTYPES:
                cases.append(pytest.param(func, i, dtype,
                                          id=f"{func.__name__}-{i}-{np.dtype(dtype).name}"))
    return cases


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("func, index, dtype", _example_cases())
def test_function_rule(func, index, dtype, mode, rng):
    f, x = example_case(func, EXAMPLES[func][index], rng, dtype)
    check_against_fd(f, x, mode, dtype, order=2 if dtype == np.float64 else 1)


# -- the table is complete -----------------------------------------------------------
def test_every_entry_has_examples():
    missing = []
    for ufunc, rule in UFUNC_RULES.items():
        if not isinstance(rule, Elementwise) and not EXAMPLES.get(ufunc):
            missing.append(f"ufunc np.{ufunc.__name__} (rule {rule.name!r}): no EXAMPLES entry")
        if isinstance(rule, Elementwise) and len(rule.domain) != rule.nin:
            missing.append(f"ufunc np.{ufunc.__name__}: domain has {len(rule.domain)} intervals "
                           f"for {rule.nin} arguments")
    for func in FUNCTION_IMPLS:
        if not EXAMPLES.get(func) and func not in INDEX_FUNCTIONS and func not in IN_PLACE_FUNCTIONS:
            missing.append(f"np.{func.__name__}: registered with no examples (give register_function "
                           "examples=..., or add it to INDEX_FUNCTIONS in tests/test_rules.py if it "
                           "has no derivative)")
    assert not missing, "primitives without test examples:\n" + "\n".join(missing)


def test_index_allow_list_is_registered():
    stale = [f.__name__ for f in INDEX_FUNCTIONS if f not in FUNCTION_IMPLS]
    assert not stale, f"INDEX_FUNCTIONS lists functions that are not registered: {stale}"


def _assert_plain(result, what):
    for leaf in _leaves(result):
        assert getattr(leaf, "_ad_level", None) is None, f"{what} returned a traced value {leaf!r}"


@pytest.mark.parametrize("func", list(INDEX_FUNCTIONS), ids=lambda f: f.__name__)
def test_index_function_result_is_plain(func, rng):
    primal = rng.standard_normal((3, 4))
    primal[0, 0] = 0.0
    x = dualad.DualArray(primal, rng.standard_normal((2, 3, 4)))
    result = INDEX_FUNCTIONS[func](x)
    _assert_plain(result, f"np.{func.__name__}")
    expected = INDEX_FUNCTIONS[func](_PrimalView(primal))
    for a, b in zip(_leaves(result), _leaves(expected)):
        np.testing.assert_array_equal(a, b)


class _PrimalView(np.ndarray):
    """A plain array with ``.primal`` (itself), so INDEX_FUNCTIONS callers run on NumPy too."""

    def __new__(cls, a):
        return np.asarray(a).view(cls)

    @property
    def primal(self):
        return np.asarray(self)


@pytest.mark.parametrize("ufunc", sorted(NONDIFF_UFUNCS, key=lambda u: u.__name__),
                         ids=lambda u: u.__name__)
@pytest.mark.parametrize("traced", ["DualArray", "Dual"])
def test_nondifferentiable_ufunc_gives_plain_result(ufunc, traced, rng):
    primal = [rng.uniform(0.5, 2.0, (3,)) for _ in range(ufunc.nin)]
    if traced == "DualArray":
        args = [dualad.DualArray(p, np.ones((2, 3))) for p in primal]
        expected = ufunc(*primal)
    else:
        args = [dualad.Dual(float(p[0]), 1.0) for p in primal]
        expected = ufunc(*[p[0] for p in primal])
    result = ufunc(*args)
    _assert_plain(result, f"np.{ufunc.__name__}")
    np.testing.assert_array_equal(result, expected)
    # mixed with a plain operand as well
    if ufunc.nin == 2:
        mixed = ufunc(args[0], primal[1] if traced == "DualArray" else float(primal[1][0]))
        _assert_plain(mixed, f"np.{ufunc.__name__}")


# -- nested forward-over-forward: Hessians of every elementwise rule ---------------
def _hessian_cases():
    return [pytest.param(u, id=u.__name__) for u, r in UFUNC_RULES.items() if isinstance(r, Elementwise)]


@pytest.mark.parametrize("ufunc", _hessian_cases())
def test_elementwise_hessian_nested(ufunc, rng):
    rule = UFUNC_RULES[ufunc]
    if rule.nin == 1:
        x = _sample(rng, rule.domain[0], (4,), np.float64)

        def f(x):
            return np.sum(ufunc(x) * np.arange(1.0, 5.0))
    else:
        x = (_sample(rng, rule.domain[0], (3,), np.float64), _sample(rng, rule.domain[1], (3,), np.float64))

        def f(a, b):
            return np.sum(ufunc(a, b) * np.arange(1.0, 4.0))
    H = dualad.hessian(f, x)
    if rule.nin == 1:
        H_fd = numerical_jacobian(lambda x: dualad.gradient(f, x), x)
    else:
        H_fd = numerical_jacobian(lambda a, b: dualad.gradient(f, (a, b)), x)
    for a, b in zip(_leaves(H), _leaves(H_fd)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    for a in _leaves(H):  # forward-over-forward Hessians of smooth f are symmetric
        assert np.all(np.isfinite(a))
    if rule.nin == 1:
        np.testing.assert_allclose(H, H.T, rtol=1e-12, atol=1e-12)
