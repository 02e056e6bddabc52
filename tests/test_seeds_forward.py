"""The worked examples of the course seeds (../shared/seeds/), done with forward mode.

002 (dual numbers): ε² = 0 arithmetic, f(x + εx') = f(x) + εf'(x)x', the chain rule,
3x³ - 5x² at 1.5, directional derivatives, the Jacobian column by column, duals in
data structures, d = a(a + b), the autograd examples; the matrix-calculus identities
and Lagrange multipliers. 000/003/004 (backprop): the layer formulas of an MLP, the
Jacobian of a composition as a product, paths in a DAG.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

import dualad
from dualad import Dual
from dualad.testing import numerical_jacobian

RNG = np.random.default_rng(2)


# -- 002: dual numbers ------------------------------------------------------------
def test_epsilon_squared_is_zero():
    eps = Dual(0.0, 1.0)          # ε itself
    sq = eps * eps
    assert sq.primal == 0.0 and sq.tangent == 0.0


def test_sum_and_product_of_duals():
    x, xp, y, yp = 1.5, 2.0, -0.5, 3.0
    s = Dual(x, xp) + Dual(y, yp)
    p = Dual(x, xp) * Dual(y, yp)
    assert (s.primal, s.tangent) == (x + y, xp + yp)            # (x+y) + ε(x'+y')
    assert (p.primal, p.tangent) == (x * y, xp * y + x * yp)    # xy + ε(x'y + xy')


def test_any_number_is_a_dual_with_zero_tangent():
    d = Dual(2.0, 1.0)
    assert (d + 3.0).tangent == (d + Dual(3.0, 0.0)).tangent == 1.0
    assert (d * 3.0).tangent == (d * Dual(3.0, 0.0)).tangent == 3.0


@pytest.mark.parametrize("f, df", [(np.sin, np.cos), (np.exp, np.exp), (np.log, lambda x: 1.0 / x),
                                   (np.tanh, lambda x: 1.0 - np.tanh(x) ** 2)])
def test_function_of_dual_is_value_plus_epsilon_derivative(f, df):
    x, xp = 0.8, 2.5
    y = f(Dual(x, xp))                      # f(x + εx') = f(x) + ε f'(x) x'
    assert y.primal == pytest.approx(f(x))
    assert y.tangent == pytest.approx(df(x) * xp)


def test_chain_rule_starts_from_the_inside():
    g, dg = (lambda x: x ** 2 + 1.0), (lambda x: 2.0 * x)
    x, xp = 0.7, 1.0
    y = np.sin(g(Dual(x, xp)))              # f(g(x + εx')) = f(g(x)) + ε f'(g(x)) g'(x) x'
    assert y.tangent == pytest.approx(math.cos(g(x)) * dg(x) * xp)


def test_cubic_example_at_one_and_a_half():
    def func(x):
        return 3 * x ** 3 - 5 * x ** 2
    assert dualad.derivative(func, 1.5) == pytest.approx(5.25, abs=1e-12)   # exact
    assert func(Dual(1.5, 1.0)).tangent == pytest.approx(5.25, abs=1e-12)
    # numerical differentiation only approximates it; the central difference does better
    h = 1e-3
    forward = (func(1.5 + h) - func(1.5)) / h
    central = (func(1.5 + h) - func(1.5 - h)) / (2 * h)
    assert abs(central - 5.25) < abs(forward - 5.25)
    assert abs(forward - 5.25) > 1e-4


def test_directional_derivative_of_vector_function():
    A = RNG.standard_normal((3, 4))

    def f(x):
        return np.tanh(A @ x) * np.sum(x ** 2)
    x, v = RNG.standard_normal(4), RNG.standard_normal(4)
    _, jv = dualad.jvp(f, x, v)
    np.testing.assert_allclose(jv, numerical_jacobian(f, x) @ v, rtol=1e-6, atol=1e-9)


def test_jacobian_column_by_column():
    """One forward pass per input gives one Jacobian column; vector mode gives them all at once."""
    def f(x):
        return np.array([1.0, 0.0]) * x[0] * x[1] + np.sin(x[2]) * np.array([0.0, 1.0])
    x = np.array([1.0, 2.0, 0.5])
    columns = [dualad.jvp(f, x, e)[1] for e in np.eye(3)]
    J_columns = np.stack(columns, axis=1)
    np.testing.assert_allclose(J_columns, [[2.0, 1.0, 0.0], [0.0, 0.0, math.cos(0.5)]])
    for chunk in (1, 2, 3):
        np.testing.assert_array_equal(dualad.jacobian(f, x, chunk=chunk), J_columns)


def test_forward_cost_one_pass_per_input_column():
    """Adding an output costs nothing extra; each input needs its own direction."""
    calls = []

    def f(x):
        calls.append(1)
        return np.stack([x[0] * x[1], x[0] + x[1], x[0] ** 2])  # 3 outputs, 2 inputs
    dualad.jacobian(f, np.array([1.0, 2.0]), chunk=1)
    assert len(calls) == 2


def test_duals_in_data_structures_continue_differentiating():
    def f(x):
        table = {"x": x, "list": [x * 2.0, 7.0]}
        untouched = list(table["list"])        # no arithmetic: stays a dual
        return untouched[0] * table["x"]       # taken out and used again: 2x²
    assert dualad.derivative(f, 3.0) == 12.0


def test_reverse_mode_example_d_equals_a_times_a_plus_b():
    a, b = 2.0, 3.0
    da, db = dualad.gradient(lambda a, b: a * (a + b), (a, b))
    assert (da, db) == (2 * a + b, a)


def test_autograd_example_mean_of_three_x_plus_two_squared():
    g = dualad.gradient(lambda x: np.mean(3.0 * (x + 2.0) ** 2), np.ones((2, 2)))
    np.testing.assert_array_equal(g, np.full((2, 2), 4.5))


def test_autograd_example_doubling_loop_vector_jacobian_product():
    x = np.array([-1639.2830, -348.2585, 651.4445]) / 1024.0

    def f(x):
        y = x * 2
        while np.linalg.norm(y) < 1000:   # a data-dependent loop: branches on the primal
            y = y * 2
        return y
    J = dualad.jacobian(f, x)
    v = np.array([0.1, 1.0, 0.0001])
    np.testing.assert_allclose(v @ J, [102.4, 1024.0, 0.1024])


# -- 002: matrix calculus -----------------------------------------------------------
A = RNG.standard_normal((4, 4))
B = RNG.standard_normal((4, 4))
a_vec = RNG.standard_normal(4)
x_vec = RNG.standard_normal(4)


def test_gradient_of_inner_product_is_a():
    np.testing.assert_allclose(dualad.gradient(lambda x: x @ a_vec, x_vec), a_vec)
    np.testing.assert_allclose(dualad.gradient(lambda x: a_vec @ x, x_vec), a_vec)


def test_jacobian_of_linear_map_is_the_matrix():
    np.testing.assert_allclose(dualad.jacobian(lambda x: A @ x, x_vec), A)  # ∇ₓ(Ax) = Aᵀ in the seed's layout


def test_gradient_of_quadratic_form():
    np.testing.assert_allclose(dualad.gradient(lambda x: x @ A @ x, x_vec), (A + A.T) @ x_vec, rtol=1e-12)


def test_gradients_of_weighted_least_squares():
    W = A @ A.T + np.eye(4)                 # symmetric
    M = RNG.standard_normal((4, 3))
    s = RNG.standard_normal(3)

    def q(x, s):
        r = x - M @ s
        return r @ W @ r
    gx, gs = dualad.gradient(q, (x_vec, s))
    r = x_vec - M @ s
    np.testing.assert_allclose(gs, -2.0 * M.T @ W @ r, rtol=1e-10)
    np.testing.assert_allclose(gx, 2.0 * W @ r, rtol=1e-10)


def test_gradient_of_log_abs_det_is_inverse_transpose():
    M = A + 4.0 * np.eye(4)
    g = dualad.gradient(lambda M: np.linalg.slogdet(M)[1], M)
    np.testing.assert_allclose(g, np.linalg.inv(M).T, rtol=1e-10, atol=1e-12)
    g_det = dualad.gradient(lambda M: np.log(np.abs(np.linalg.det(M))), M)
    np.testing.assert_allclose(g_det, np.linalg.inv(M).T, rtol=1e-10, atol=1e-12)


def test_gradient_of_trace_of_product_is_b_transpose():
    np.testing.assert_allclose(dualad.gradient(lambda M: np.trace(M @ B), A), B.T, rtol=1e-12)


def test_chain_rule_for_scalar_composition():
    g = lambda x: np.sum(x ** 2)  # noqa: E731
    h, dh = np.sin, np.cos
    grad = dualad.gradient(lambda x: h(g(x)), x_vec)
    np.testing.assert_allclose(grad, dh(g(x_vec)) * dualad.gradient(g, x_vec))


def test_lagrange_multiplier_condition():
    """max x + y s.t. x² + y² = 1: at (1/√2, 1/√2), ∇f = λ∇g with λ = 1/√2 and ∇L = 0."""
    def lagrangian(z):
        x, y, lam = z[0], z[1], z[2]
        return (x + y) - lam * (x ** 2 + y ** 2 - 1.0)
    r = 1.0 / math.sqrt(2.0)
    np.testing.assert_allclose(dualad.gradient(lagrangian, np.array([r, r, r])), 0.0, atol=1e-15)
    grad_f = dualad.gradient(lambda p: p[0] + p[1], np.array([r, r]))
    grad_g = dualad.gradient(lambda p: p[0] ** 2 + p[1] ** 2, np.array([r, r]))
    np.testing.assert_allclose(grad_f, r * grad_g)


# -- 000 / 003 / 004: backprop formulas, checked in forward mode ------------------------
def sigma(s):
    return 1.0 / (1.0 + np.exp(-s))


def test_mlp_layer_gradients_match_the_backprop_formulas():
    W = RNG.standard_normal((3, 4))
    b = RNG.standard_normal(3)
    x_prev = RNG.standard_normal(4)
    target = RNG.standard_normal(3)

    def loss(W, b, x_prev):
        return 0.5 * np.sum((sigma(W @ x_prev + b) - target) ** 2)
    gW, gb, gx = dualad.gradient(loss, (W, b, x_prev))
    s = W @ x_prev + b
    dl_dx = sigma(s) - target                       # ∂ℓ/∂x^(l)
    dl_ds = dl_dx * sigma(s) * (1.0 - sigma(s))      # ∂ℓ/∂s = ∂ℓ/∂x σ'(s)
    np.testing.assert_allclose(gW, np.outer(dl_ds, x_prev), rtol=1e-12)  # (1) ∂ℓ/∂W_ij = ∂ℓ/∂s_i x_j
    np.testing.assert_allclose(gb, dl_ds, rtol=1e-12)                    # (2) ∂ℓ/∂b_i = ∂ℓ/∂s_i
    np.testing.assert_allclose(gx, W.T @ dl_ds, rtol=1e-12)              # Σ_i ∂ℓ/∂s_i W_ij


def test_jacobian_of_composition_is_product_of_jacobians():
    A1, A2 = RNG.standard_normal((5, 4)), RNG.standard_normal((3, 5))
    f1 = lambda x: np.tanh(A1 @ x)   # noqa: E731
    f2 = lambda y: np.sin(A2 @ y)    # noqa: E731
    f3 = lambda z: z ** 2            # noqa: E731
    x = RNG.standard_normal(4)
    J = dualad.jacobian(lambda x: f3(f2(f1(x))), x)
    product = dualad.jacobian(f3, f2(f1(x))) @ dualad.jacobian(f2, f1(x)) @ dualad.jacobian(f1, x)
    np.testing.assert_allclose(J, product, rtol=1e-12, atol=1e-14)


def test_dag_with_shared_weight():
    """x1 = φ1(x0; w1), x2 = φ2(x0, x1; w2), f = φ3(x1, x2; w1): w1 is used twice, paths add."""
    def f(x0, w1, w2):
        x1 = np.tanh(w1 * x0)
        x2 = np.sin(w2 * x0 + x1)
        return x1 * x2 + w1 * x2
    point = (0.4, 1.3, -0.7)
    grads = dualad.gradient(f, point)
    numeric = numerical_jacobian(f, point)
    np.testing.assert_allclose(np.array(grads, dtype=float), np.array(numeric, dtype=float), rtol=1e-7)


def test_paths_through_a_graph_add_up():
    """004: b = w1 a, c = w2 a, d = w3 b + w4 c, L = 10 - d; ∂L/∂a sums the two paths."""
    def loss(a, w1, w2, w3, w4):
        b, c = w1 * a, w2 * a
        d = w3 * b + w4 * c
        return 10.0 - d
    a, w1, w2, w3, w4 = 2.0, 0.5, -1.5, 3.0, 0.25
    g = dualad.gradient(loss, (a, w1, w2, w3, w4))
    assert g[0] == pytest.approx(-(w3 * w1 + w4 * w2))   # path via b plus path via c
    assert g[4] == pytest.approx(-w2 * a)                 # ∂L/∂w4 = ∂L/∂d ∂d/∂w4
