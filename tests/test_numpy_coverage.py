"""NumPy functions added to the table: NaN-aware reductions, interp, polyval, convolve and
correlate, trapezoid, linspace, meshgrid, select, cumulative_sum/prod, the remaining float
ufuncs (copysign, heaviside, nextafter, ldexp, modf, frexp, divmod, degrees, radians,
conjugate, spacing, vecdot, matvec, vecmat), and keywords of existing functions (``where=``,
``dtype=``, ``initial=`` of the reductions, ``order=`` of reshape and ravel).

Values are compared with NumPy's bit for bit in both modes, derivatives with central
differences (``check_grads``, both modes, second order in float64; NaN entries included:
the differences of a NaN-aware function do not move when a NaN entry moves) and the two
modes' Jacobians with each other. ``tests/test_rules.py`` and ``tests/test_fuzz.py`` also run
every ``examples=`` entry of these functions.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import dualad
import reversead as rd
from dualad import DualArray
from dualad.rules import FUNCTION_IMPLS, NONDIFF_UFUNCS, UFUNC_RULES
from dualad.testing import check_grads
from _cases import _call, _leaves

DTYPES = [np.float64, np.float32]
MASK = np.array([[True, False, True, True], [False, True, True, True], [True, True, False, True]])
GRID = np.array([-1.3, -0.4, 0.2, 0.9, 1.7])  # a plain operand beside traced ones
XP = np.array([-1.0, -0.2, 0.5, 1.5])
# NaN entries of the first argument of the NaN cases: never a whole slice along any axis
NANS = {(3, 4): [(0, 1), (2, 2)], (2, 3, 4): [(0, 1, 2), (1, 0, 3), (1, 2, 0)]}

# name -> (f of float arrays, shapes of its arguments[, True: NaNs in the first]); plain NumPy code
CASES = {
    # NaN-aware reductions
    "nansum": (lambda x: np.nansum(x, axis=1), [(3, 4)], True),
    "nansum-all": (lambda x: np.nansum(x), [(3, 4)], True),
    "nansum-where-initial": (lambda x: np.nansum(x, axis=0, where=MASK, initial=0.5), [(3, 4)], True),
    "nanprod": (lambda x: np.nanprod(x, axis=0), [(3, 4)], True),
    "nanprod-axes": (lambda x: np.nanprod(x, axis=(0, 2), keepdims=True), [(2, 3, 4)], True),
    "nanmean": (lambda x: np.nanmean(x, axis=1), [(3, 4)], True),
    "nanmean-all": (lambda x: np.nanmean(x), [(3, 4)], True),
    "nanmean-axes": (lambda x: np.nanmean(x, axis=(2, 0), keepdims=True), [(2, 3, 4)], True),
    "nanmean-where": (lambda x: np.nanmean(x, axis=1, where=MASK), [(3, 4)], True),
    "nanvar": (lambda x: np.nanvar(x, axis=0, ddof=1), [(3, 4)], True),
    "nanvar-all": (lambda x: np.nanvar(x), [(3, 4)], True),
    "nanvar-dtype": (lambda x: np.nanvar(x, axis=1, dtype=np.float64), [(3, 4)], True),
    "nanstd": (lambda x: np.nanstd(x, axis=1), [(3, 4)], True),
    "nanstd-axes": (lambda x: np.nanstd(x, axis=(0, 2), keepdims=True, correction=1), [(2, 3, 4)], True),
    "nanmax": (lambda x: np.nanmax(x, axis=1), [(3, 4)], True),
    "nanmax-all": (lambda x: np.nanmax(x), [(2, 3, 4)], True),
    "nanmin": (lambda x: np.nanmin(x, axis=0, keepdims=True), [(3, 4)], True),
    "nanmin-initial": (lambda x: np.nanmin(x, axis=1, initial=0.25), [(3, 4)], True),
    "nanmedian": (lambda x: np.nanmedian(x, axis=1), [(3, 4)], True),
    "nanmedian-all": (lambda x: np.nanmedian(x), [(3, 4)], True),
    "nanmedian-axes": (lambda x: np.nanmedian(x, axis=(0, 2), keepdims=True), [(2, 3, 4)], True),
    # interp
    "interp": (lambda x, fp: np.interp(1.5 * x, XP, fp), [(7,), (4,)]),
    "interp-traced-xp": (lambda x, xp, fp: np.interp(x, np.sort(xp), fp), [(2, 4), (5,), (5,)]),
    "interp-left-right": (lambda x, fp, lr: np.interp(2.0 * x, XP, fp, left=lr[0], right=lr[1]),
                          [(6,), (4,), (2,)]),
    "interp-period": (lambda x, fp: np.interp(3.0 * x, XP, fp, period=2.5), [(7,), (4,)]),
    "interp-scalar-x": (lambda fp: np.interp(0.3, XP, fp), [(4,)]),
    "interp-one-point": (lambda x, fp: np.interp(x, [0.1], fp, right=-1.5), [(5,), (1,)]),
    "interp-plain-x": (lambda fp: np.interp(GRID, XP, fp), [(4,)]),
    # polynomials, signals, quadrature
    "polyval": (lambda p, x: np.polyval(p, x), [(4,), (2, 3)]),
    "polyval-2d-coefficients": (lambda p, x: np.polyval(p, x), [(3, 2), (2,)]),
    "polyval-plain-x": (lambda p: np.polyval(p, GRID), [(3,)]),
    "polyval-plain-p": (lambda x: np.polyval(GRID, x), [(2, 2)]),
    "convolve": (lambda a, v: np.convolve(a, v), [(6,), (3,)]),
    "convolve-same-swapped": (lambda a, v: np.convolve(a, v, "same"), [(3,), (4,)]),
    "convolve-valid": (lambda a, v: np.convolve(a, v, mode="valid"), [(3,), (5,)]),
    "correlate": (lambda a, v: np.correlate(a, v), [(6,), (3,)]),
    "correlate-same-short": (lambda a, v: np.correlate(a, v, "same"), [(2,), (5,)]),
    "correlate-full": (lambda a, v: np.correlate(a, v, "full"), [(4,), (6,)]),
    "correlate-plain-kernel": (lambda a: np.correlate(a, GRID[:3], "same"), [(6,)]),
    "convolve-plain-signal": (lambda v: np.convolve(GRID, v), [(2,)]),
    "trapezoid": (lambda y: np.trapezoid(y), [(5,)]),
    "trapezoid-x": (lambda y, x: np.trapezoid(y, x), [(3, 5), (5,)]),
    "trapezoid-x2d-axis0": (lambda y, x: np.trapezoid(y, x, axis=0), [(3, 5), (3, 5)]),
    "trapezoid-dx": (lambda y, dx: np.trapezoid(y, dx=dx, axis=0), [(4, 2), ()]),
    "trapezoid-plain-y": (lambda x: np.trapezoid(GRID, np.sort(x)), [(5,)]),
    "cumulative_sum": (lambda x: np.cumulative_sum(x, axis=1), [(3, 4)]),
    "cumulative_sum-initial": (lambda x: np.cumulative_sum(x, include_initial=True), [(5,)]),
    "cumulative_prod-initial": (lambda x: np.cumulative_prod(x, axis=0, include_initial=True), [(3, 2)]),
    # grids and selection
    "linspace": (lambda a, b: np.linspace(a, b, 7), [(), ()]),
    "linspace-no-endpoint": (lambda a, b: np.linspace(a, b, 4, endpoint=False), [(), ()]),
    "linspace-arrays-axis": (lambda a, b: np.linspace(a, b, 3, axis=-1), [(2,), (3, 2)]),
    "linspace-python-start": (lambda b: np.linspace(0.1, b, 6), [(2,)]),
    "linspace-retstep": (lambda a, b: np.linspace(a, b, 5, retstep=True), [(), ()]),
    "linspace-one": (lambda a, b: np.linspace(a, b, 1), [(), ()]),
    "meshgrid": (lambda a, b: np.meshgrid(a, b), [(3,), (2,)]),
    "meshgrid-ij": (lambda a, b, c: np.meshgrid(a, b, c, indexing="ij"), [(3,), (2,), (2,)]),
    "meshgrid-sparse": (lambda a, b: np.meshgrid(a, b, sparse=True), [(3,), (2,)]),
    "select": (lambda x, y: np.select([x < -0.5, x > 0.5], [x, y], default=0.25), [(3, 4), (4,)]),
    "select-traced-default": (lambda x, y: np.select([x < 0], [2.0 * x], default=y), [(3, 4), (3, 1)]),
    # ufuncs
    "degrees": (lambda x: np.degrees(x), [(3, 4)]),
    "radians": (lambda x: np.radians(x), [(3, 4)]),
    "conj": (lambda x: np.conj(x) * np.conjugate(x), [(3, 4)]),
    "copysign": (lambda x, y: np.copysign(x, y), [(3, 4), (4,)]),
    "heaviside": (lambda x, y: np.heaviside(x, y) * y, [(3, 4), (4,)]),
    "nextafter": (lambda x, y: np.nextafter(x, y) * y, [(3, 4), (4,)]),
    "spacing": (lambda x: np.spacing(x) * x, [(3, 4)]),
    "ldexp": (lambda x: np.ldexp(x, np.array([1, -2, 3, 0])), [(3, 4)]),
    "ldexp-broadcast": (lambda x: np.ldexp(x, np.array([[1], [-2], [3]])), [(4,)]),
    "modf": (lambda x: np.modf(3.0 * x), [(3, 4)]),
    "frexp": (lambda x: np.frexp(3.0 * x), [(3, 4)]),
    "divmod": (lambda x, y: np.divmod(3.0 * x, 0.5 + y * y), [(3, 4), (4,)]),
    "divmod-builtin": (lambda x, y: divmod(3.0 * x, 0.5 + y * y), [(3, 4), (4,)]),
    "vecdot": (lambda a, b: np.vecdot(a, b), [(3, 1, 5), (2, 5)]),
    "vecdot-axis": (lambda a, b: np.vecdot(a, b, axis=0), [(3, 2), (3, 2)]),
    "matvec": (lambda a, b: np.matvec(a, b), [(2, 3, 4), (5, 1, 4)]),
    "matvec-axes": (lambda a, b: np.matvec(a, b, axes=[(1, 0), (0,), (0,)]), [(4, 3), (4, 2)]),
    "vecmat": (lambda a, b: np.vecmat(a, b), [(2, 3), (3, 4)]),
    # keywords of existing reductions and reshapes
    "sum-where": (lambda x: np.sum(x, axis=1, where=MASK), [(3, 4)]),
    "sum-where-initial-keepdims": (lambda x: np.sum(x, where=MASK, initial=1.5, keepdims=True), [(3, 4)]),
    "sum-dtype": (lambda x: np.sum(x, axis=0, dtype=np.float64), [(3, 4)]),
    "mean-where": (lambda x: np.mean(x, axis=0, where=MASK), [(3, 4)]),
    "mean-dtype": (lambda x: np.mean(x, dtype=np.float64, keepdims=True), [(3, 4)]),
    "prod-where": (lambda x: np.prod(x, axis=1, where=MASK), [(3, 4)]),
    "prod-initial": (lambda x: np.prod(x, axis=(0, 2), initial=1.37, keepdims=True), [(2, 3, 4)]),
    "max-where-initial": (lambda x: np.max(x, axis=1, where=MASK, initial=-10.0), [(3, 4)]),
    "min-initial": (lambda x: np.min(x, axis=0, initial=5.0), [(3, 4)]),
    "var-where": (lambda x: np.var(x, axis=1, where=MASK), [(3, 4)]),
    "var-dtype-correction": (lambda x: np.var(x, axis=0, dtype=np.float64, correction=1), [(3, 4)]),
    "var-mean": (lambda x, m: np.var(x, axis=1, mean=m, keepdims=True), [(3, 4), (3, 1)]),
    "std-where": (lambda x: np.std(x, axis=0, where=MASK, keepdims=True), [(3, 4)]),
    "cumsum-dtype": (lambda x: np.cumsum(x, axis=1, dtype=np.float64), [(3, 4)]),
    "add-reduce": (lambda x: np.add.reduce(x), [(3, 4)]),
    "multiply-accumulate": (lambda x: np.multiply.accumulate(x), [(3, 4)]),
    "reshape-F": (lambda x: np.reshape(x, (4, 6), order="F"), [(2, 3, 4)]),
    "reshape-A-of-transpose": (lambda x: np.reshape(x.T, (2, 12), order="A"), [(2, 3, 4)]),
    "ravel-F": (lambda x: np.ravel(x, order="F"), [(3, 4)]),
    "ravel-K-of-view": (lambda x: np.ravel(np.swapaxes(x, 0, 2)[::-1], order="K"), [(2, 3, 4)]),
    "method-reshape-F": (lambda x: x.reshape(6, 2, order="F"), [(3, 4)]),
    "method-flatten-F": (lambda x: x.T.flatten(order="F"), [(3, 4)]),
    "method-reductions": (lambda x: (x.sum(axis=0, where=MASK), x.prod(where=MASK), x.max(initial=0.0),
                                     x.mean(dtype=np.float64), x.std(axis=1, where=MASK)), [(3, 4)]),
}


def _point(name, dtype, rng):
    entry = CASES[name]
    shapes, nans = entry[1], len(entry) > 2
    x = [rng.standard_normal(s).astype(dtype) for s in shapes]
    if nans:
        for index in NANS[shapes[0]]:
            x[0][index] = np.nan
    return x[0] if len(x) == 1 else tuple(x)


def _plain(y):
    while getattr(y, "_ad_level", None) is not None:
        y = y._ad_primal()
    return np.asarray(y)


def _traced(v, mode):
    v = np.asarray(v)
    if mode == "fwd":
        return DualArray(v, np.ones((1,) + v.shape, v.dtype))
    return rd.tensor(v, requires_grad=True)


def _traced_call(f, x, mode):
    xs = x if isinstance(x, tuple) else (x,)
    return f(*[_traced(v, mode) for v in xs])


def _assert_same_values(got, want):
    got, want = [_plain(y) for y in _leaves(got)], [np.asarray(y) for y in _leaves(want)]
    assert len(got) == len(want)
    for a, b in zip(got, want):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)  # (NaN equals NaN here)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("mode", ["fwd", "rev"])
@pytest.mark.parametrize("name", list(CASES))
def test_values_equal_numpy_bitwise(name, mode, dtype, rng):
    f = CASES[name][0]
    x = _point(name, dtype, rng)
    _assert_same_values(_traced_call(f, x, mode), _call(f, x))


@pytest.mark.parametrize("name", list(CASES))
def test_derivatives_against_finite_differences(name, rng):
    check_grads(CASES[name][0], _point(name, np.float64, rng), order=2, modes=("fwd", "rev"))


@pytest.mark.parametrize("name", list(CASES))
def test_float32_and_modes_agree(name, rng):
    f = CASES[name][0]
    x = _point(name, np.float32, rng)
    check_grads(f, x, order=1, modes=("fwd", "rev"))
    outputs = _leaves(_call(f, x))
    forward, reverse = _leaves(dualad.jacobian(f, x)), _leaves(rd.jacobian(f, x))
    n_in = len(x) if isinstance(x, tuple) else 1
    assert len(forward) == len(reverse) == len(outputs) * n_in
    for i, (a, b) in enumerate(zip(forward, reverse)):
        out_dtype = np.asarray(outputs[i // n_in]).dtype
        assert np.asarray(b).dtype == np.float32  # reverse blocks: the input's dtype
        if out_dtype.kind == "f":  # forward rows: the output's (interp computes in float64)
            assert np.asarray(a).dtype == out_dtype
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", list(CASES))
def test_hessians_of_the_two_modes_agree(name, rng):
    # forward over forward against forward over reverse, all directions at once (batched
    # tangents meet the operands' own leading axes here, which single directions do not show)
    f = CASES[name][0]
    x = _point(name, np.float64, rng)
    weights = [rng.standard_normal(np.shape(y)) for y in _leaves(_call(f, x))]

    def s(*xs):
        return sum(np.sum(w * y) for w, y in zip(weights, _leaves(f(*xs))))
    xs = x if isinstance(x, tuple) else (x,)
    H_fwd, H_rev = dualad.hessian(s, xs), rd.hessian(s, xs)
    for a, b in zip(_leaves(H_fwd), _leaves(H_rev)):
        assert np.all(np.isfinite(a))
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name", [n for n, case in CASES.items() if len(case) > 2])
def test_nan_entries_have_zero_derivative(name, rng):
    f = CASES[name][0]
    x = _point(name, np.float64, rng)
    at_nan = np.isnan(x).ravel()
    for mode in (dualad, rd):
        J = np.asarray(mode.jacobian(f, x))
        J = J.reshape(-1, x.size)
        assert np.all(np.isfinite(J))
        assert np.array_equal(J[:, at_nan], np.zeros((J.shape[0], int(at_nan.sum()))))
        assert np.any(J[:, ~at_nan] != 0)


# -- NaN-aware reductions: tangents at NaN entries, all-NaN slices, index functions -------------
NAN_REDUCTIONS = [np.nansum, np.nanprod, np.nanmean, np.nanvar, np.nanstd, np.nanmax, np.nanmin,
                  np.nanmedian]


@pytest.mark.parametrize("func", NAN_REDUCTIONS, ids=lambda f: f.__name__)
def test_nan_entries_drop_even_infinite_tangents(func):
    x = np.array([[1.0, np.nan, 3.0], [np.nan, -2.0, 0.5]])
    tangent = np.ones((1, 2, 3))
    tangent[0][np.isnan(x)] = np.inf  # e.g. the tangent of log(0) or of a NaN made upstream
    y = func(DualArray(x, tangent), axis=1)
    assert np.all(np.isfinite(y.tangent))
    finite = np.where(np.isnan(x), 0.0, 1.0)[None]
    np.testing.assert_array_equal(y.tangent, func(DualArray(x, finite), axis=1).tangent)


ALL_NAN = {
    np.nanmean: "Mean of empty slice",
    np.nanvar: "Degrees of freedom <= 0 for slice",
    np.nanstd: "Degrees of freedom <= 0 for slice",
    np.nanmax: "All-NaN slice encountered",
    np.nanmin: "All-NaN slice encountered",
    np.nanmedian: "All-NaN slice encountered",
}


@pytest.mark.parametrize("func", list(ALL_NAN), ids=lambda f: f.__name__)
def test_all_nan_slice_gives_nan_numpys_warning_and_zero_derivative(func):
    x = np.array([[np.nan, np.nan, np.nan], [1.0, np.nan, 3.0], [0.5, -2.0, 4.0]])
    with pytest.warns(RuntimeWarning, match=ALL_NAN[func]):
        want = func(x, axis=1)
    for mode in ("fwd", "rev"):
        with pytest.warns(RuntimeWarning, match=ALL_NAN[func]):
            got = func(_traced(x, mode), axis=1)
        _assert_same_values(got, want)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        J_fwd = dualad.jacobian(lambda a: func(a, axis=1), x)
        J_rev = rd.jacobian(lambda a: func(a, axis=1), x)
    np.testing.assert_array_equal(J_fwd[0], np.zeros((3, 3)))
    np.testing.assert_array_equal(J_rev[0], np.zeros((3, 3)))
    np.testing.assert_allclose(J_rev, J_fwd, rtol=1e-12, atol=1e-15)
    assert np.all(np.isfinite(J_fwd[1:])) and np.any(J_fwd[2] != 0)


def test_nanvar_without_degrees_of_freedom_is_nan_with_zero_derivative():
    x = np.array([[1.0, np.nan, np.nan], [1.0, 2.0, 4.0]])
    with pytest.warns(RuntimeWarning, match="Degrees of freedom"):
        want = np.nanvar(x, axis=1, ddof=1)
    for mode in ("fwd", "rev"):
        with pytest.warns(RuntimeWarning, match="Degrees of freedom"):
            _assert_same_values(np.nanvar(_traced(x, mode), axis=1, ddof=1), want)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            J = (dualad if mode == "fwd" else rd).jacobian(lambda a: np.nanstd(a, axis=1, ddof=1), x)
        np.testing.assert_array_equal(J[0], np.zeros((2, 3)))
        assert np.all(np.isfinite(J))


@pytest.mark.parametrize("func, value", [(np.nansum, 0.0), (np.nanprod, 1.0)])
def test_all_nan_nansum_nanprod_are_the_identity_without_warning(func, value):
    x = np.array([[np.nan, np.nan], [2.0, np.nan]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for mode in ("fwd", "rev"):
            _assert_same_values(func(_traced(x, mode), axis=1), func(x, axis=1))
        J = dualad.jacobian(lambda a: func(a, axis=1), x)
    assert func(x, axis=1)[0] == value
    np.testing.assert_array_equal(J, [[[0.0, 0.0], [0.0, 0.0]], [[0.0, 0.0], [1.0, 0.0]]])


def test_nanmedian_splits_ties_and_skips_nans():
    x = np.array([4.0, np.nan, 1.0, 3.0, np.nan, 2.0])  # median of 1, 2, 3, 4: (2 + 3) / 2
    for mode in (dualad, rd):
        np.testing.assert_array_equal(mode.gradient(np.nanmedian, x), [0.0, 0.0, 0.0, 0.5, 0.0, 0.5])
    y = np.array([2.0, np.nan, 2.0, 5.0])  # the middle value 2 twice: shared
    for mode in (dualad, rd):
        np.testing.assert_array_equal(mode.gradient(np.nanmedian, y), [0.5, 0.0, 0.5, 0.0])


@pytest.mark.parametrize("func", [np.nanargmax, np.nanargmin])
def test_nanargmax_nanargmin_are_plain_integers(func):
    x = np.array([[1.0, np.nan, 3.0], [np.nan, -2.0, 0.5]])
    for traced in (DualArray(x, np.ones((2, 2, 3))), rd.tensor(x, requires_grad=True)):
        got = func(traced, axis=1)
        assert type(got) is np.ndarray and got.dtype.kind == "i"
        np.testing.assert_array_equal(got, func(x, axis=1))
        with pytest.raises(ValueError, match="All-NaN slice encountered"):
            func(traced * np.nan, axis=1)


# -- interp ---------------------------------------------------------------------------------
def test_interp_derivative_at_the_knots_is_one_sided_as_numpy_picks_the_segment():
    xp, fp = np.array([0.0, 1.0, 3.0]), np.array([0.0, 2.0, 3.0])
    x = np.array([0.0, 1.0, 3.0, -1.0, 4.0, 2.0])
    # knots 0 and 1: the segment to the right; the last knot: the last segment; outside: 0
    want = [2.0, 0.5, 0.5, 0.0, 0.0, 0.5]
    for mode in (dualad, rd):
        np.testing.assert_array_equal(mode.jacobian(lambda x: np.interp(x, xp, fp), x).diagonal(), want)
        J_fp = mode.jacobian(lambda f: np.interp(x, xp, f), fp)
        np.testing.assert_array_equal(J_fp, [[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 0, 0], [0, 0, 1],
                                             [0, 0.5, 0.5]])


def test_interp_values_in_numpys_special_cases():
    x = np.array([-2.0, -1.0, -0.2, 0.0, 0.5, 1.0, 1.5, 2.0, np.nan, 0.4999])
    sets = [(np.array([-1.0, -0.2, 0.5, 0.5, 1.5, 1.5]), np.array([1.0, 2.0, -1.0, 3.0, 0.5, 4.0])),
            (np.array([-1.0, -0.2, 0.5, 0.5, 1.5, 1.5]), np.array([1.0, np.inf, 2.0, 3.0, -np.inf, 4.0])),
            (np.array([-1.0, 0.0, np.inf]), np.array([0.0, 1.0, 2.0])),
            (np.array([0.5]), np.array([3.0]))]
    for xp, fp in sets:
        with np.errstate(all="ignore"):
            want = np.interp(x, xp, fp, left=-7.0)
            for mode in ("fwd", "rev"):
                _assert_same_values(np.interp(_traced(x, mode), xp, fp, left=-7.0), want)
                _assert_same_values(np.interp(x, _traced(xp, mode), fp, left=-7.0), want)
                _assert_same_values(np.interp(x, xp, _traced(fp, mode), left=-7.0), want)


def test_interp_repeated_last_knot_has_zero_slope():
    xp, fp = np.array([0.0, 1.0, 1.0]), np.array([0.0, 2.0, 5.0])
    for mode in (dualad, rd):
        g = mode.gradient(lambda x: np.interp(x, xp, fp), 1.0)
        assert g == 0.0 and np.interp(1.0, xp, fp) == 5.0


# -- ufuncs ---------------------------------------------------------------------------------
INTEGER_ONLY_UFUNCS = {"bitwise_and", "bitwise_count", "bitwise_invert", "bitwise_left_shift",
                       "bitwise_not", "bitwise_or", "bitwise_right_shift", "bitwise_xor", "gcd",
                       "invert", "isnat", "lcm", "left_shift", "right_shift"}


def test_every_float_ufunc_of_numpy_is_served():
    missing = [name for name in dir(np) if isinstance(getattr(np, name), np.ufunc)
               and getattr(np, name) not in UFUNC_RULES and getattr(np, name) not in NONDIFF_UFUNCS
               and getattr(np, name) not in FUNCTION_IMPLS and name not in INTEGER_ONLY_UFUNCS]
    assert not missing


def test_copysign_heaviside_nextafter_conventions():
    x = np.array([2.0, -2.0, 0.0, -0.0, 1.5])
    y = np.array([-1.0, -3.0, 4.0, -0.0, 0.0])
    for mode in (dualad, rd):
        J_x, J_y = mode.jacobian(np.copysign, (x, y))
        np.testing.assert_array_equal(J_x.diagonal(), [-1.0, 1.0, 0.0, 0.0, 1.0])
        np.testing.assert_array_equal(J_y, np.zeros((5, 5)))
        # heaviside(x1, x2) is x2 where x1 == 0
        J_1, J_2 = mode.jacobian(np.heaviside, (x, y))
        np.testing.assert_array_equal(J_1, np.zeros((5, 5)))
        np.testing.assert_array_equal(J_2.diagonal(), [0.0, 0.0, 1.0, 1.0, 0.0])
        J_a, J_b = mode.jacobian(np.nextafter, (x, y))
        np.testing.assert_array_equal(J_a, np.eye(5))
        np.testing.assert_array_equal(J_b, np.zeros((5, 5)))


def test_spacing_and_piecewise_constant_outputs_are_plain():
    x = np.array([0.3, -2.5, 7.25])
    for traced in (DualArray(x, np.ones((1, 3))), rd.tensor(x, requires_grad=True)):
        assert type(np.spacing(traced)) is np.ndarray
        fraction, whole = np.modf(traced)
        assert type(whole) is np.ndarray and getattr(fraction, "_ad_level", None) is not None
        mantissa, exponent = np.frexp(traced)
        assert type(exponent) is np.ndarray and exponent.dtype.kind == "i"
        quotient, rest = np.divmod(traced, 2.0)
        assert type(quotient) is np.ndarray and getattr(rest, "_ad_level", None) is not None
    np.testing.assert_array_equal(dualad.jacobian(lambda x: np.frexp(x)[0], x), np.diag([2.0, 0.25, 0.125]))


def test_modf_keeps_numpys_signed_zeros_and_infinities():
    x = np.array([-2.0, 2.0, np.inf, -np.inf, -0.5])
    for mode in ("fwd", "rev"):
        fraction = _plain(np.modf(_traced(x, mode))[0])
        np.testing.assert_array_equal(np.signbit(fraction), np.signbit(np.modf(x)[0]))
        _assert_same_values(fraction, np.modf(x)[0])


def test_degrees_radians_conjugate_reuse_rules():
    assert UFUNC_RULES[np.degrees] is UFUNC_RULES[np.rad2deg]
    assert UFUNC_RULES[np.radians] is UFUNC_RULES[np.deg2rad]
    assert UFUNC_RULES[np.conjugate] is UFUNC_RULES[np.positive]


# -- keywords of the reductions -------------------------------------------------------------
@pytest.mark.parametrize("func", [np.sum, np.mean, np.prod, np.var, np.std, np.cumsum])
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("in_dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
def test_dtype_keyword_casts_as_numpy(func, dtype, in_dtype, rng):
    x = rng.uniform(0.5, 1.5, (3, 4)).astype(in_dtype)
    want = func(x, axis=1, dtype=dtype)
    for mode in ("fwd", "rev"):
        _assert_same_values(func(_traced(x, mode), axis=1, dtype=dtype), want)
    J_rev = rd.jacobian(lambda a: func(a, axis=1, dtype=dtype), x)
    J_fwd = dualad.jacobian(lambda a: func(a, axis=1, dtype=dtype), x)
    assert J_rev.dtype == in_dtype and J_fwd.dtype == np.dtype(dtype)
    tol = 100 * max(np.finfo(dtype).eps, np.finfo(in_dtype).eps)  # (reverse rounds to the input's dtype)
    np.testing.assert_allclose(J_fwd.astype(np.float64), J_rev, rtol=tol, atol=tol)


def test_float16_mean_accumulates_in_float32_as_numpy():
    x = np.linspace(0.1, 60.0, 3000).astype(np.float16)  # a float16 sum would overflow
    for mode in ("fwd", "rev"):
        _assert_same_values(np.mean(_traced(x, mode), where=x > 1.0), np.mean(x, where=x > 1.0))
        _assert_same_values(np.var(_traced(x[:300], mode)), np.var(x[:300]))  # (var sums in float16)


def test_masked_sum_keeps_numpys_rounding():
    # NumPy sums each run of selected entries pairwise: not the sum of the zero-filled array
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 1000))
    mask = rng.random((4, 1000)) > 0.3
    assert not np.array_equal(np.sum(x, axis=1, where=mask), np.sum(np.where(mask, x, 0.0), axis=1))
    for mode in ("fwd", "rev"):
        _assert_same_values(np.sum(_traced(x, mode), axis=1, where=mask), np.sum(x, axis=1, where=mask))
        _assert_same_values(np.mean(_traced(x, mode), axis=1, where=mask), np.mean(x, axis=1, where=mask))


def test_where_masks_the_derivative():
    x = np.arange(1.0, 13.0).reshape(3, 4)
    for mode in (dualad, rd):
        np.testing.assert_array_equal(mode.gradient(lambda a: np.sum(a, where=MASK), x), MASK * 1.0)
        np.testing.assert_array_equal(mode.gradient(lambda a: np.max(a, where=x < 12, initial=0.0), x),
                                      np.eye(12)[10].reshape(3, 4))  # 12 is masked out: 11 wins
        np.testing.assert_array_equal(mode.gradient(lambda a: np.max(a, where=x < 0, initial=0.0), x),
                                      np.zeros((3, 4)))  # nothing selected: the initial value


def test_ufunc_reduce_and_accumulate_default_to_axis_0():
    x = np.arange(6.0).reshape(2, 3)
    for traced in (DualArray(x, np.ones((1, 2, 3))), rd.tensor(x, requires_grad=True)):
        _assert_same_values(np.add.reduce(traced), np.add.reduce(x))
        _assert_same_values(np.maximum.reduce(traced), np.maximum.reduce(x))
        _assert_same_values(np.add.accumulate(traced), np.add.accumulate(x))
        _assert_same_values(np.add.reduce(traced, axis=None, where=x > 1), np.add.reduce(x, axis=None, where=x > 1))


@pytest.mark.parametrize("order", ["C", "F", "A", "K"])
def test_ravel_follows_the_layout_of_views(order):
    base = np.arange(24.0).reshape(2, 3, 4)
    views = [lambda z: z, lambda z: z.T, lambda z: np.swapaxes(z, 0, 1), lambda z: z[::-1],
             lambda z: z.T[:, ::-1], lambda z: z[:, ::2], lambda z: np.transpose(z[::-1, :, ::2], (2, 0, 1)),
             lambda z: np.broadcast_to(z[:, :1], (2, 3, 4)).T,  # zero strides order nothing
             lambda z: np.broadcast_to(z[:1, :, 1:3].T, (3, 2, 3, 1))]  # (size-1 axes neither)
    for view in views:
        want = np.ravel(view(base), order=order)
        for traced in (DualArray(base, np.ones((1, 2, 3, 4))), rd.tensor(base)):
            _assert_same_values(np.ravel(view(traced), order=order), want)
            if order != "K":
                shape = (np.shape(want)[0] // 2, -1)
                _assert_same_values(np.reshape(view(traced), shape, order=order),
                                    np.reshape(view(base), shape, order=order))


def test_result_type_and_can_cast_see_the_values_dtype():
    x = np.ones(3, dtype=np.float32)
    for traced in (DualArray(x), rd.tensor(x, requires_grad=True)):
        assert np.result_type(traced, np.float16) == np.float32
        assert np.result_type(traced, 1.0) == np.float32
        assert np.can_cast(traced, np.float64) and not np.can_cast(traced, np.float16)


# -- errors: NumPy's, or a clear one naming the function --------------------------------------
ERRORS = [
    (lambda x: np.sum(x, dtype=np.int64), TypeError, r"np.sum\(\.\.\., dtype=int64\): only float dtypes"),
    (lambda x: np.mean(x, dtype=np.int32), TypeError, "only float dtypes"),
    (lambda x: np.max(x, where=x > 1), ValueError, "to use a where mask one has to specify 'initial'"),
    (lambda x: np.sum(x, initial=x[0, 0]), TypeError, r"np.sum\(\.\.\., initial=\) must be a plain number"),
    (lambda x: np.var(x, ddof=1, correction=1), ValueError, "ddof and correction can't be provided"),
    (lambda x: np.reshape(x, 6, order="K"), ValueError, "order 'K' is not permitted for reshaping"),
    (lambda x: np.reshape(x, 6, order="Q"), ValueError, "order must be one of"),
    (lambda x: np.add.reduce(x, out=np.zeros(3)), TypeError, r"np.add.reduce\(\.\.\., out=\)"),
    (lambda x: np.nansum(x, out=np.zeros(1)), TypeError, r"np.nansum\(\.\.\., out=\)"),
    (lambda x: np.nanmean(x, dtype=np.int64), TypeError, "dtype must be inexact"),
    (lambda x: np.nanvar(x, ddof=1, correction=1), ValueError, "ddof and correction"),
    (lambda x: np.nanmedian(x[:, :0]), ValueError, "np.nanmedian of an empty traced array"),
    (lambda x: np.interp(x, [0.0, 1.0], [0.0, 1.0, 2.0]), ValueError, "fp and xp are not of the same length"),
    (lambda x: np.interp(x, [], []), ValueError, "array of sample points is empty"),
    (lambda x: np.interp(x[0], x, x), ValueError, "object too deep for desired array"),
    (lambda x: np.interp(x, [0.0, 1.0], [0.0, 1.0], period=0.0), ValueError, "period must be a non-zero value"),
    (lambda x: np.interp(x, [0.0, 1.0], [0.0, 1.0], left=x[0]), TypeError, "only 0-dimensional arrays"),
    (lambda x: np.interp(x, [0.0, 1.0], [0.0, 1.0j]), TypeError, "np.interp: complex operands"),
    (lambda x: np.correlate(x, x[0]), ValueError, "object too deep for desired array"),
    (lambda x: np.correlate(x[0], x[0, :0]), ValueError, "second array argument cannot be empty"),
    (lambda x: np.correlate(x[0], x[0], mode="bogus"), ValueError, "mode must be one of"),
    (lambda x: np.convolve(x[0, :0], x[0]), ValueError, "a cannot be empty"),
    (lambda x: np.polyval(x[0, 0], x), TypeError, "iteration over a 0-d array"),
    (lambda x: np.cumulative_sum(x), ValueError, "``axis`` argument is required"),
    (lambda x: np.cumulative_sum(x, axis=0, out=np.zeros((2, 3))), TypeError, "out="),
    (lambda x: np.linspace(x[0, 0], x[1, 0], -1), ValueError, "Number of samples, -1, must be non-negative"),
    (lambda x: np.meshgrid(x[0], indexing="zz"), ValueError, "Valid values for `indexing`"),
    (lambda x: np.select([x > 0], [x, x]), ValueError, "list of cases must be same length"),
    (lambda x: np.select([x], [x]), TypeError, "invalid entry 0 in condlist"),
    (lambda x: np.ldexp(x, 1.5), TypeError, "np.ldexp: the exponent must be an integer"),
    (lambda x: np.modf(x, out=(np.zeros((2, 3)), np.zeros((2, 3)))), TypeError, r"np.modf\(\.\.\., out=\)"),
    (lambda x: np.vecdot(x, x[:, :2]), ValueError, "vecdot: Input operand 1 has a mismatch in its core dimension 0"),
    (lambda x: np.vecdot(x[0, 0], x[0]), ValueError, "vecdot: Input operand 0 does not have enough dimensions"),
    (lambda x: np.matvec(x, x[0, :2]), ValueError, r"matvec: Input operand 1 has a mismatch"),
    (lambda x: np.vecdot(x, x, axis=0, axes=[(0,), (0,)]), TypeError, "cannot specify both 'axis' and 'axes'"),
]


@pytest.mark.parametrize("mode", ["fwd", "rev"])
@pytest.mark.parametrize("index", range(len(ERRORS)))
def test_error_paths(index, mode):
    call, error, match = ERRORS[index]
    x = np.arange(6.0).reshape(2, 3)
    with pytest.raises(error, match=match):
        call(_traced(x, mode))


def test_arguments_numpy_does_not_dispatch_on_are_refused_not_dropped():
    # np.select dispatches on condlist and choicelist, np.interp on x, xp and fp: a traced
    # default (or left=) beside constants reaches NumPy's own code, which must not drop it
    x = np.array([0.5, 1.5, 2.5])
    fill = DualArray(np.array(2.0), np.ones(1))
    with pytest.raises(dualad.DerivativeDropError):
        np.select([x > 1.0], [x], default=fill)
    with pytest.raises(dualad.DerivativeDropError):
        np.interp(x, [0.0, 1.0], [0.0, 1.0], left=fill)
    # beside one traced choice (or x) they are differentiated
    def chosen(d):
        return np.sum(np.select([x > 1.0], [0.0 * d + x], default=d))

    def left(d):
        return np.interp(-1.0 + 0.0 * d, [0.0, 1.0], [0.0, 1.0], left=d)
    for mode in (dualad, rd):
        assert mode.gradient(chosen, 2.0) == 1.0 and mode.gradient(left, 2.0) == 1.0
