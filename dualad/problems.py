"""The built-in problem suite shared by ``python -m dualad compare`` and ``benchmarks/``.

Every problem is plain NumPy code, differentiated unchanged by both modes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np


@dataclass
class Problem:
    name: str
    f: Callable
    x: Any


def tanh_net(n: int, m: int, hidden: int = 100, seed: int = 0, dtype=np.float64) -> Problem:
    """P2: ``f(x) = tanh(W2 tanh(W1 x + b1))`` from R^n to R^m."""
    rng = np.random.default_rng(seed)
    W1 = (rng.standard_normal((hidden, n)) / np.sqrt(n)).astype(dtype)
    b1 = rng.standard_normal(hidden).astype(dtype)
    W2 = (rng.standard_normal((m, hidden)) / np.sqrt(hidden)).astype(dtype)

    def f(x):
        return np.tanh(W2 @ np.tanh(W1 @ x + b1))
    return Problem(f"tanh net {n}->{m}", f, rng.standard_normal(n).astype(dtype))


def rosenbrock(x):
    """The n-dimensional Rosenbrock function."""
    return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def lorenz_rk4(steps: int = 1000, dt: float = 0.01, sigma=10.0, rho=28.0, beta=8.0 / 3.0):
    """P5: the Lorenz-63 state after ``steps`` RK4 steps, as a function of the initial state."""
    def rhs(s):
        x, y, z = s[0], s[1], s[2]
        return np.stack([sigma * (y - x), x * (rho - z) - y, x * y - beta * z])

    def f(s):
        for _ in range(steps):
            k1 = rhs(s)
            k2 = rhs(s + 0.5 * dt * k1)
            k3 = rhs(s + 0.5 * dt * k2)
            k4 = rhs(s + dt * k3)
            s = s + (dt / 6.0) * (k1 + 2.0 * k2 + 2.0 * k3 + k4)
        return s
    return f


LORENZ_STEPS = 1000


def lorenz_scalar(s0, sigma, rho, beta):
    """P5 written as scalar code, for ``@numba.njit`` and compiled duals: the Lorenz-63 state
    after LORENZ_STEPS classic RK4 steps of 0.01 (``s0`` a 3-vector or 3-tuple)."""
    x, y, z = s0
    h = 0.01
    for _ in range(LORENZ_STEPS):
        k1x, k1y, k1z = sigma * (y - x), x * (rho - z) - y, x * y - beta * z
        x2, y2, z2 = x + 0.5 * h * k1x, y + 0.5 * h * k1y, z + 0.5 * h * k1z
        k2x, k2y, k2z = sigma * (y2 - x2), x2 * (rho - z2) - y2, x2 * y2 - beta * z2
        x3, y3, z3 = x + 0.5 * h * k2x, y + 0.5 * h * k2y, z + 0.5 * h * k2z
        k3x, k3y, k3z = sigma * (y3 - x3), x3 * (rho - z3) - y3, x3 * y3 - beta * z3
        x4, y4, z4 = x + h * k3x, y + h * k3y, z + h * k3z
        k4x, k4y, k4z = sigma * (y4 - x4), x4 * (rho - z4) - y4, x4 * y4 - beta * z4
        x = x + h / 6.0 * (k1x + 2.0 * k2x + 2.0 * k3x + k4x)
        y = y + h / 6.0 * (k1y + 2.0 * k2y + 2.0 * k3y + k4y)
        z = z + h / 6.0 * (k1z + 2.0 * k2z + 2.0 * k3z + k4z)
    return x, y, z


def elementwise(x):
    """P3's function: ``sin(x)·exp(-x²) + tanh(x)``."""
    return np.sin(x) * np.exp(-x ** 2) + np.tanh(x)


def suite(quick: bool = False) -> list[Problem]:
    """The problems ``python -m dualad compare`` runs (``quick``: a small subset)."""
    sizes = (1, 10, 100) if quick else (1, 10, 100, 1000)
    problems = [tanh_net(n, m) for n in sizes for m in sizes]
    rng = np.random.default_rng(1)
    problems += [
        Problem("rosenbrock", rosenbrock, rng.standard_normal(1000)),
        Problem("elementwise", elementwise, rng.standard_normal(100 if quick else 1000)),
        Problem("lorenz rk4", lorenz_rk4(20 if quick else 200), np.array([1.0, 1.0, 1.0])),
    ]
    return problems
