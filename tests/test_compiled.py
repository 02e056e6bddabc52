"""Compiled dual numbers (issue 5): njit scalar-loop code against the pure-Python Dual path
and central finite differences.

Every test compiles Numba code (a few seconds each on a loaded 2-core machine, less from the
on-disk cache), so the functions are shared at module level and compiled once.
"""
from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

numba = pytest.importorskip("numba")
from numba import njit  # noqa: E402

import dualad  # noqa: E402
from dualad.compiled import entry  # noqa: E402
from dualad.compiled.types import OPERATORS  # noqa: E402
from dualad.errors import PerturbationError, ShapeError  # noqa: E402
from dualad.problems import lorenz_scalar  # noqa: E402
from dualad.rules import UFUNC_RULES, Elementwise  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


lorenz_final = njit(lorenz_scalar)


@njit
def rosenbrock(x):
    total = 0.0  # a float that becomes a dual in the loop (unification)
    for i in range(len(x) - 1):
        total += 100.0 * (x[i + 1] - x[i] ** 2) ** 2 + (1.0 - x[i]) ** 2
    return total


@njit
def recurrence(x, c):
    """A map with a branch on the primal value."""
    y = x
    for _ in range(30):
        if y > 1.0:
            y = 0.5 * y + np.sin(y) - c
        else:
            y = y * y + 0.3 * x + c
    return y


@njit
def add(x, y):
    return x + y


@njit
def mul(x, y):
    return x * y


@njit
def smooth(x, y):
    return np.exp(x) * np.sin(y) + x ** 3 * y - 2.0 / (1.0 + x * x)


def central(f, x, eps=1e-6):
    """Central differences of f: R^n -> R^m (x a 1-D array); returns (m, n)."""
    x = np.asarray(x, dtype=np.float64)
    cols = []
    for i in range(x.size):
        e = np.zeros_like(x)
        e[i] = eps
        cols.append((np.atleast_1d(f(x + e)) - np.atleast_1d(f(x - e))) / (2 * eps))
    return np.stack(cols, axis=-1)


# -- the examples ------------------------------------------------------------------
def test_lorenz_jacobian_matches_python_dual_and_finite_differences():
    s0 = np.array([1.0, 1.0, 1.0])
    params = (10.0, 28.0, 8.0 / 3.0)
    J = dualad.jacobian(lorenz_final, (s0, *params))  # per output, per input
    J_state = np.stack([J[i][0] for i in range(3)])
    assert J_state.shape == (3, 3)
    # explicit entry point: 3 tangents in one pass, parameters constant
    y, y_dot = dualad.jit(lorenz_final)(s0, *params, seeds=np.eye(3), argnums=(0,))
    np.testing.assert_allclose(np.stack(y_dot), J_state, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(y, lorenz_final(s0, *params), rtol=1e-15)
    fd = central(lambda s: np.array(lorenz_final(s, *params)), s0)
    np.testing.assert_allclose(J_state, fd, rtol=1e-5, atol=1e-6)
    J_python = dualad.jacobian(lorenz_final.py_func, (s0, *params))  # the pure-Python path
    for i in range(3):
        for j in range(4):
            np.testing.assert_allclose(J[i][j], J_python[i][j], rtol=1e-11, atol=1e-11)


def test_rosenbrock_gradient_by_loop():
    x = np.array([0.5, -0.3, 1.2, 0.8, -1.1, 0.4])
    g = dualad.gradient(rosenbrock, x)
    np.testing.assert_allclose(g, dualad.gradient(rosenbrock.py_func, x), rtol=1e-14)
    np.testing.assert_allclose(g, central(rosenbrock.py_func, x)[0], rtol=1e-6, atol=1e-6)
    # chunked: several passes of 4 tangents give the same gradient (last pass padded)
    np.testing.assert_allclose(dualad.gradient(rosenbrock, x, chunk=4), g, rtol=1e-15)


@pytest.mark.parametrize("x0", [0.2, 0.9, 1.3])
def test_recurrence_with_branches(x0):
    c = 0.05
    J = dualad.jacobian(recurrence, (x0, c))
    J_python = dualad.jacobian(recurrence.py_func, (x0, c))
    fd = central(lambda v: recurrence.py_func(v[0], v[1]), np.array([x0, c]))[0]
    for j in range(2):
        np.testing.assert_allclose(J[j], J_python[j], rtol=1e-12)
        np.testing.assert_allclose(J[j], fd[j], rtol=1e-5, atol=1e-7)


def test_jvp_and_derivative():
    y, t = dualad.jvp(smooth, (0.3, 0.7), (1.0, -2.0))
    y_ref, t_ref = dualad.jvp(smooth.py_func, (0.3, 0.7), (1.0, -2.0))
    assert y == pytest.approx(float(y_ref), rel=1e-15)
    assert t == pytest.approx(float(t_ref), rel=1e-14)
    assert dualad.derivative(njit(lambda x: (x * x, 3.0 - x)), 2.0) == (4.0, -1.0)


# -- nesting: perturbation confusion ---------------------------------------------------------
def test_perturbation_confusion_is_avoided():
    # d/dx [x * d/dy (x + y)] at x = 1 is 1 (a confused implementation gives 2)
    def outer(x):
        return x * dualad.jvp(add, (x, 1.0), (0.0, 1.0))[1]
    assert dualad.derivative(outer, 1.0) == 1.0

    # d/dx [x * d/dy (x * y)] = d/dx x**2 = 2x
    def outer_mul(x):
        return x * dualad.jvp(mul, (x, 3.0), (0.0, 1.0))[1]
    assert dualad.derivative(outer_mul, 1.5) == pytest.approx(3.0, rel=1e-15)


def test_nested_derivatives_and_hessian():
    cube = njit(lambda x: x ** 3 + np.sin(x))
    d2 = dualad.derivative(lambda x: dualad.derivative(cube, x), 0.7)
    assert d2 == pytest.approx(6 * 0.7 - math.sin(0.7), rel=1e-14)
    H = dualad.hessian(smooth, (0.3, 0.7))
    H_python = dualad.hessian(smooth.py_func, (0.3, 0.7))
    np.testing.assert_allclose(np.array(H, dtype=float), np.array(H_python, dtype=float), rtol=1e-12)


def test_nested_levels_inside_numba():
    # a level-1 dual under a level-2 perturbation is a constant of the inner operations
    from dualad.compiled.types import pack

    @njit
    def run(x0, y0):
        x = pack(x0, x0, (1.0,))            # level 1: d/dx
        y = pack(x, x, (pack(x0, 1.0, (0.0,)),))  # level 2 over it: d/dy with y = x (primal)
        z = x * y                            # mixed levels: x is a constant of level 2
        return z.tangent[0].primal, z.primal.tangent[0], z.tangent[0].tangent[0]

    dz_dy, dz_dx, d2 = run(2.0, 5.0)
    assert (dz_dy, dz_dx, d2) == (2.0, 4.0, 1.0)  # z = x*y: dz/dy = x, d(x*x)/dx = 2x, d2z/dxdy = 1


def test_deeper_nesting_raises():
    # a third derivative would hand the compiled function a dual of a dual: a clear error
    square = njit(lambda w: w * w)
    with pytest.raises(PerturbationError, match="deeper"):
        dualad.derivative(lambda x: dualad.derivative(lambda u: dualad.derivative(square, u), x), 1.0)


# -- float32 -------------------------------------------------------------------------------
def test_float32_stays_float32():
    x = np.array([0.5, -0.3, 1.2, 0.8], dtype=np.float32)
    g = dualad.gradient(rosenbrock, x)
    assert g.dtype == np.float32
    np.testing.assert_allclose(g, dualad.gradient(rosenbrock, x.astype(np.float64)), rtol=2e-6)
    y, y_dot = dualad.jit(smooth)(np.float32(0.3), np.float32(0.7), seeds=np.eye(2))
    assert y.dtype == np.float32 and y_dot.dtype == np.float32


# -- the rule table: every operator and function against the Python Dual path --------------
_ELEMENTWISE = {u: r for u, r in UFUNC_RULES.items() if isinstance(r, Elementwise)}
_NUMBA_SKIPS = {"float_power", "cbrt"}  # Numba has no scalar implementation of these ufuncs


def _table_function(names, nin):
    """``f(x0, x1, ...)`` returning ``(np.name_0(x0[, x1]), np.name_1(x2[, x3]), ...)``."""
    params = [f"x{i}" for i in range(nin * len(names))]
    items = ", ".join(f"np.{name}({', '.join(params[nin * r:nin * r + nin])})"
                      for r, name in enumerate(names))
    namespace = {"np": np}
    exec(f"def table({', '.join(params)}):\n    return ({items},)\n", namespace)
    return njit(namespace["table"])


@pytest.mark.slow  # compiles all ~45 rules on duals: ~20 s per arity on a cold cache
@pytest.mark.parametrize("nin", [1, 2])
def test_every_numpy_rule(nin):
    rules = [r for r in _ELEMENTWISE.values() if r.nin == nin and r.name not in _NUMBA_SKIPS]
    rng = np.random.default_rng(5)
    point = tuple(float(rng.uniform(*r.domain[i])) for r in rules for i in range(nin))
    f = _table_function([r.name for r in rules], nin)
    J = dualad.jacobian(f, point, chunk=nin)  # one pass per rule's arguments
    J_python = dualad.jacobian(f.py_func, point)
    for r, rule in enumerate(rules):
        for i in range(nin * r, nin * r + nin):
            np.testing.assert_allclose(J[r][i], J_python[r][i], rtol=1e-13, atol=1e-15,
                                       err_msg=rule.name)


def test_operators_and_math_functions_mixed_with_floats():
    @njit
    def f(x, y):
        return (x + 2.0, 2.0 + x, x - 3, 3 - x, x * 2.0, 2.0 * x, x / 3.0, 3.0 / x, x ** 2.5,
                2.5 ** x, x ** y, -x, +x, abs(x - 1.0), x % 0.3, math.sin(x), math.cos(x),
                math.tan(x), math.asin(x - 0.5), math.acos(x - 0.5), math.atan(x), math.atan2(x, y),
                math.sinh(x), math.cosh(x), math.tanh(x), math.asinh(x), math.acosh(x + 1.0),
                math.atanh(x - 0.5), math.exp(x), math.expm1(x), math.log(x), math.log2(x),
                math.log10(x), math.log1p(x), math.sqrt(x), math.fabs(x), math.pow(x, y),
                math.hypot(x, y), math.degrees(x), math.radians(x))
    point = np.array([0.7, 1.3])
    J = dualad.jacobian(f, (0.7, 1.3))
    fd = central(lambda v: np.array(f.py_func(v[0], v[1])), point)
    got = np.array([[J[i][0], J[i][1]] for i in range(len(J))], dtype=float)
    np.testing.assert_allclose(got, fd, rtol=1e-6, atol=1e-7)
    assert len(J) == 40 and OPERATORS  # every mapped operator is exercised above or in the table


def test_comparisons_and_piecewise_constant_functions_use_the_primal():
    @njit
    def f(x):
        s = 0.0
        if x > 0.5 and x >= 0.5 and not x < 0.5 and x != 0.0 and not x == 1.0:
            s = x * math.floor(x * 10.0) + np.sign(x) * x + x // 0.25
        return s
    assert dualad.derivative(f, 0.73) == pytest.approx(7.0 + 1.0)


# -- errors, caching, laziness -------------------------------------------------------------
def test_unsupported_operation_raises_with_its_name():
    bad = njit(lambda x: math.gamma(x) + x)
    with pytest.raises(entry.CompileError, match=r"unsupported operation 'gamma'.*Numba's reason"):
        dualad.derivative(bad, 1.5)
    with pytest.raises(TypeError, match="shape"):
        dualad.gradient(rosenbrock, np.ones((2, 2)))
    with pytest.raises(ShapeError):
        dualad.gradient(lorenz_final, (np.ones(3), 10.0, 28.0, 2.0))


def test_in_process_cache_per_function_and_tangent_count():
    f_dual = dualad.jit(smooth)
    assert dualad.jit(smooth) is f_dual
    f_dual(0.3, 0.7, seeds=np.eye(2))
    count = len(f_dual._runs)
    f_dual(0.5, 0.1, seeds=np.ones((2, 2)))
    assert len(f_dual._runs) == count
    f_dual(0.5, 0.1, seeds=np.ones((3, 2)))  # another k: one more compiled version
    assert len(f_dual._runs) == count + 1


def test_importing_dualad_does_not_import_numba():
    code = "import sys, dualad; assert 'numba' not in sys.modules; print(dualad.jit)"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT,
                   env={**os.environ, "PYTHONPATH": ROOT})


def test_second_process_loads_from_the_disk_cache(tmp_path):
    script = textwrap.dedent(f"""
        import time, numpy as np, numba, dualad
        @numba.njit
        def f(x, y):
            return np.sin(x) * y, x / y
        t = time.perf_counter()
        J = dualad.jacobian(f, (0.5, 2.0))
        print(time.perf_counter() - t, J[0][0])
    """)
    path = tmp_path / "cached_user_function.py"
    path.write_text(script)
    env = {**os.environ, "PYTHONPATH": ROOT, "NUMBA_CACHE_DIR": str(tmp_path / "cache")}
    first = subprocess.run([sys.executable, str(path)], check=True, capture_output=True, text=True,
                           env=env).stdout.split()
    second = subprocess.run([sys.executable, str(path)], check=True, capture_output=True, text=True,
                            env=env).stdout.split()
    assert float(first[1]) == float(second[1]) == pytest.approx(2 * math.cos(0.5))
    assert float(second[0]) < float(first[0])
