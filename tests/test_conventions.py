"""Derivatives at non-differentiable points: the conventions of dualad/rules/elementwise.py.

abs'(±0) = 0; sign' = 0; maximum/minimum (and max/min reductions) split ties equally;
sqrt'(0) = +inf; d(x**0)/dx = 0 even at x = 0; d(0**y)/dy = 0; hypot'(0, 0) = 0;
norm'(0) = 0 (zero subgradient). ``dualad.nan_safe()``: a zero tangent times an
infinite partial gives 0, per tangent slot.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

import dualad
from dualad import Dual, DualArray

pytestmark = pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning",
                                        "ignore:invalid value:RuntimeWarning")


@pytest.mark.parametrize("zero", [0.0, -0.0])
@pytest.mark.parametrize("func", [np.abs, np.fabs, abs])
def test_abs_at_signed_zero(func, zero):
    assert dualad.derivative(func, zero) == 0.0
    np.testing.assert_array_equal(dualad.jacobian(lambda x: np.abs(x), np.array([zero, 1.0, -1.0])),
                                  np.diag([0.0, 1.0, -1.0]))


@pytest.mark.parametrize("x", [0.0, -0.0, 2.0, -3.0])
def test_sign_has_zero_derivative(x):
    assert dualad.derivative(np.sign, x) == 0.0
    assert getattr(np.sign(Dual(x, 1.0)), "_ad_level", None) is None  # a plain value


@pytest.mark.parametrize("func", [np.maximum, np.minimum, np.fmax, np.fmin])
def test_binary_extrema_split_ties(func):
    assert dualad.jacobian(func, (1.5, 1.5)) == (0.5, 0.5)
    J = dualad.jacobian(lambda v: func(v[:2], v[2:]), np.array([1.0, 2.0, 1.0, 3.0]))
    expected_tie = [0.5, 0.0, 0.5, 0.0]
    np.testing.assert_array_equal(J[0], expected_tie)


def test_binary_extrema_away_from_ties():
    assert dualad.jacobian(np.maximum, (2.0, 1.0)) == (1.0, 0.0)
    assert dualad.jacobian(np.minimum, (2.0, 1.0)) == (0.0, 1.0)


def test_fmax_fmin_ignore_nan():
    assert dualad.jacobian(np.fmax, (np.nan, 1.0))[1] == 1.0
    assert dualad.jacobian(np.fmin, (2.0, np.nan))[0] == 1.0


@pytest.mark.parametrize("func", [np.max, np.min, np.amax])
def test_reduction_extrema_split_ties(func):
    x = np.array([1.0, 1.0, 1.0, 1.0]) if func is not np.max else np.array([0.0, 2.0, 2.0, -1.0])
    g = dualad.gradient(func, x)
    hits = x == func(x)
    np.testing.assert_allclose(g, hits / hits.sum())
    assert g.sum() == pytest.approx(1.0)


def test_sqrt_at_zero_is_plus_infinity():
    assert dualad.derivative(np.sqrt, 0.0) == math.inf
    J = dualad.jacobian(np.sqrt, np.array([0.0, 4.0]))
    assert J[0, 0] == math.inf and J[1, 1] == 0.25


@pytest.mark.parametrize("exponent", [0.0, 0])
@pytest.mark.parametrize("x", [0.0, 2.0, -1.5])
def test_x_to_the_zero_has_zero_derivative(x, exponent):
    assert dualad.derivative(lambda t: t ** exponent, x) == 0.0
    assert dualad.derivative(lambda t: np.power(t, exponent), x) == 0.0
    np.testing.assert_array_equal(dualad.jacobian(lambda t: t ** exponent, np.array([x, 1.0])), np.zeros((2, 2)))


def test_x_to_the_zero_with_dual_exponent_at_zero_base():
    dx, dy = dualad.jacobian(np.power, (0.0, 0.0))
    assert dx == 0.0 and dy == 0.0


@pytest.mark.parametrize("y", [2.0, 0.5, 3.0])
def test_zero_to_the_y_has_zero_derivative_in_y(y):
    assert dualad.derivative(lambda t: 0.0 ** t, y) == 0.0
    g = dualad.gradient(lambda t: np.sum(np.power(0.0, t)), np.array([y, y + 1.0]))
    np.testing.assert_array_equal(g, [0.0, 0.0])


def test_zero_to_the_y_in_x_is_the_usual_derivative():
    assert dualad.derivative(lambda x: x ** 2.0, 0.0) == 0.0
    assert dualad.derivative(lambda x: x ** 1.0, 0.0) == 1.0


def test_hypot_at_origin():
    assert dualad.jacobian(np.hypot, (0.0, 0.0)) == (0.0, 0.0)
    np.testing.assert_array_equal(dualad.gradient(lambda v: np.hypot(v[0], v[1]), np.zeros(2)), [0.0, 0.0])
    assert dualad.jacobian(np.hypot, (3.0, 4.0)) == pytest.approx((0.6, 0.8))


def test_norm_at_zero_is_zero_subgradient():
    np.testing.assert_array_equal(dualad.gradient(np.linalg.norm, np.zeros(3)), np.zeros(3))


# -- NaN-safe mode ------------------------------------------------------------------------
def test_without_nan_safe_zero_times_inf_is_nan():
    J = dualad.jacobian(np.sqrt, np.array([0.0, 4.0]))
    assert math.isnan(J[0, 1])  # IEEE: the direction of x[1] meets sqrt'(x[0]) = inf


def test_nan_safe_zero_tangent_times_infinite_partial_is_zero():
    with dualad.nan_safe():
        J = dualad.jacobian(np.sqrt, np.array([0.0, 4.0]))
    np.testing.assert_array_equal(J, [[math.inf, 0.0], [0.0, 0.25]])
    # the option is scoped
    assert math.isnan(dualad.jacobian(np.sqrt, np.array([0.0, 4.0]))[0, 1])


@pytest.mark.parametrize("chunk", [1, 2])
def test_nan_safe_per_tangent_slot(chunk):
    with dualad.nan_safe():
        J = dualad.jacobian(lambda x: np.sqrt(x) * 2.0, np.array([0.0, 0.0, 9.0]), chunk=chunk)
    np.testing.assert_array_equal(J, [[math.inf, 0.0, 0.0], [0.0, math.inf, 0.0], [0.0, 0.0, 1.0 / 3.0]])


def test_nan_safe_dual_vector_mode():
    with dualad.nan_safe():
        t = np.sqrt(Dual(0.0, np.array([0.0, 1.0]))).tangent
        a = np.sqrt(DualArray(np.array([0.0, 1.0]), np.array([[0.0, 1.0], [1.0, 0.0]]))).tangent
    np.testing.assert_array_equal(t, [0.0, math.inf])
    np.testing.assert_array_equal(a, [[0.0, 0.5], [math.inf, 0.0]])


def test_nan_safe_log_at_zero():
    with dualad.nan_safe():
        J = dualad.jacobian(np.log, np.array([0.0, 1.0]))
    assert J[0, 1] == 0.0 and J[1, 0] == 0.0 and J[1, 1] == 1.0


def test_nan_safe_in_nested_hessian():
    f = lambda x: np.sum(np.sqrt(x) * x)  # noqa: E731  f'' at 0 is +inf; other slots stay 0
    with dualad.nan_safe():
        H = dualad.hessian(f, np.array([0.0, 4.0]))
    assert H[0, 1] == 0.0 and H[1, 0] == 0.0
    assert H[1, 1] == pytest.approx(0.75 / 2.0)
