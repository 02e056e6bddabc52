"""Generated Numba kernels against the generic NumPy path of the same rule (issue 2, section 6)."""
from __future__ import annotations

import importlib
import os
import subprocess
import sys
import textwrap
import zlib

import numpy as np
import pytest

import dualad
from dualad import kernels
from dualad.rules import UFUNC_RULES
from dualad.rules.core import CONFIG

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KERNEL_RULES = sorted({r for r in UFUNC_RULES.values() if kernels.has_kernel(r)}, key=lambda r: r.name)
TOL = {np.float64: 1e-13, np.float32: 2e-6}


@pytest.fixture
def numba_backend(monkeypatch):
    monkeypatch.setattr(kernels, "BACKEND", "numba")
    monkeypatch.setattr(kernels, "MIN_WORK", 0)  # small test arrays must take the kernel too


def _sample(rule, i, shape, dtype, rng):
    lo, hi = rule.domain[i]
    return rng.uniform(lo, hi, size=shape).astype(dtype)


def _generic(rule, primals, tangents):
    out = rule.primal(*primals)
    return out, rule.jvp(primals, tangents, out, 1, {})


def _close(a, b, dtype):
    np.testing.assert_allclose(a, b, rtol=TOL[dtype], atol=TOL[dtype], equal_nan=True)


def _arrays(rule, dtype, k, rng, shape=(3, 5)):
    primals = [_sample(rule, i, shape, dtype, rng) for i in range(rule.nin)]
    tangents = [rng.standard_normal((k,) + shape).astype(dtype) for _ in range(rule.nin)]
    return primals, tangents


def _scalar_cases(rule, dtype, k, rng):
    """Each operand in turn a scalar: traced, constant, or the only constant."""
    arrays, tangents = _arrays(rule, dtype, k, rng)
    for s in range(2):
        primals = list(arrays)
        primals[s] = float(_sample(rule, s, (), np.float64, rng))
        traced = list(tangents)
        traced[s] = rng.standard_normal(k).astype(dtype)
        constant = list(tangents)
        constant[s] = None
        only = [None, None]
        only[1 - s] = tangents[1 - s]
        yield from ((primals, traced), (primals, constant), (primals, only))


def _check(rule, primals, tangents, dtype, k):
    fused = kernels.elementwise_jvp(rule, primals, tangents)
    assert fused is not None, (rule.name, [np.shape(p) for p in primals])
    out, out_dot = _generic(rule, primals, tangents)
    assert fused[0].dtype == out.dtype == dtype and fused[1].dtype == dtype
    assert fused[1].shape == (k,) + out.shape
    _close(fused[0], out, dtype)
    _close(fused[1], out_dot, dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("rule", KERNEL_RULES, ids=lambda r: r.name)
def test_every_kernel_rule_compiles(rule, dtype):
    module = kernels.compile_rule(rule, dtype)  # raises if a partial does not compile
    assert "_".join(["aA"] * rule.nin) in module.COMPILED


@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("rule", KERNEL_RULES, ids=lambda r: r.name)
def test_fused_equals_generic(rule, dtype, k, numba_backend):
    rng = np.random.default_rng(zlib.crc32(rule.name.encode()))  # (str hash: per process)
    if rule.primal(np.full(1, 0.5, dtype), *[0.5] * (rule.nin - 1)).dtype != dtype:
        x = np.ones(3, dtype)  # float_power promotes float32: the kernel leaves it to NumPy
        assert kernels.elementwise_jvp(rule, [x] * rule.nin, [x[None]] * rule.nin) is None
        return
    _check(rule, *_arrays(rule, dtype, k, rng), dtype, k)


# Scalar operands compile further variants (about a second each when the cache is cold);
# the generator treats every rule alike, so a few rules cover those code paths.
SCALAR_RULES = [UFUNC_RULES[u] for u in (np.multiply, np.power, np.arctan2, np.maximum, np.remainder)]


@pytest.mark.parametrize("rule", SCALAR_RULES, ids=lambda r: r.name)
def test_scalar_operands_broadcast(rule, numba_backend):
    rng = np.random.default_rng(5)
    for primals, tangents in _scalar_cases(rule, np.float64, 3, rng):
        _check(rule, primals, tangents, np.float64, 3)
    x, t = _arrays(rule, np.float32, 2, rng)
    _check(rule, [x[0], 2.0], [t[0], rng.standard_normal(2).astype(np.float32)], np.float32, 2)


def test_literal_exponent_kernel(numba_backend):
    rule = UFUNC_RULES[np.power]
    x = np.linspace(0.5, 2.0, 7)
    t = np.ones((1, 7))
    for exponent in (2, 2.0, 0.5, 3.0, -1.0, 2.5):
        _check(rule, [x, exponent], [t, None], np.float64, 1)
    assert any("__1_2p0" in v for v in kernels.compile_rule(rule).COMPILED)


FUSED_VJPS = [(r, i) for r in KERNEL_RULES for i in range(r.nin) if kernels.fuses_vjp(r, i)]


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("rule,argnum", FUSED_VJPS, ids=lambda v: getattr(v, "name", str(v)))
def test_fused_vjp_equals_generic(rule, argnum, dtype, numba_backend):
    rng = np.random.default_rng(1)
    primals = [_sample(rule, i, (4, 3), dtype, rng) for i in range(rule.nin)]
    out = rule.primal(*primals)
    if out.dtype != dtype:  # float_power promotes float32: no kernel
        assert kernels.elementwise_vjp(rule, argnum, out, primals, out) is None
        return
    out_bar = rng.standard_normal((4, 3)).astype(dtype)
    saved = out.copy()
    fused = kernels.elementwise_vjp(rule, argnum, out_bar, primals, out)
    assert fused is not None and fused.dtype == dtype and fused.shape == out.shape
    np.testing.assert_array_equal(out, saved)  # the saved primal is never rewritten
    _close(fused, rule.vjp(argnum, out_bar, primals, out, 0, {}), dtype)


def test_fused_vjps_are_the_arithmetic_partials():
    fuses = {(r.name, i) for r, i in FUSED_VJPS}
    assert {("tanh", 0), ("divide", 0), ("divide", 1), ("sqrt", 0)} <= fuses
    # one operand (exp's ans, multiply's y) is one NumPy multiply already; cos/exp partials
    # run on NumPy's SIMD loops; constant partials (add) need no pass at all
    assert not fuses & {("exp", 0), ("multiply", 0), ("multiply", 1), ("sin", 0), ("add", 0)}


def test_fused_vjp_reads_only_what_the_partial_uses(numba_backend):
    rule = UFUNC_RULES[np.tanh]  # 1 - ans*ans: x is not read, so the tape need not keep it
    out = np.tanh(np.linspace(-2, 2, 12).reshape(3, 4))
    g = np.ones((3, 4))
    fused = kernels.elementwise_vjp(rule, 0, g, [None], out)
    np.testing.assert_allclose(fused, 1 - out * out, rtol=1e-15)


def test_vjp_declines_what_it_does_not_cover(numba_backend, monkeypatch):
    div = UFUNC_RULES[np.divide]
    x, y = np.ones((3, 4)), np.full((3, 4), 2.0)
    g = np.ones((3, 4))
    assert kernels.elementwise_vjp(div, 0, g, [x, y], x / y) is not None
    assert kernels.elementwise_vjp(div, 0, g, [x, np.full(4, 2.0)], x / y) is None  # broadcast
    assert kernels.elementwise_vjp(div, 0, np.ones((2, 3, 4)), [x, y], x / y) is None  # batch axes
    assert kernels.elementwise_vjp(div, 0, np.ones((4, 3)).T, [x, y], x / y) is None  # not contiguous
    assert kernels.elementwise_vjp(div, 0, g, [x, y.astype(np.float32)], x / y) is None  # mixed
    assert kernels.elementwise_vjp(div, 0, g.astype(int), [x, y], x / y) is None  # integers
    assert kernels.elementwise_vjp(UFUNC_RULES[np.multiply], 0, g, [x, y], x * y) is None
    monkeypatch.setattr(kernels, "BACKEND", "numpy")
    assert kernels.elementwise_vjp(div, 0, g, [x, y], x / y) is None


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("nan_safe", [False, True])
def test_nan_safe_flag_reaches_the_kernel(nan_safe, numba_backend, monkeypatch):
    monkeypatch.setattr(CONFIG, "nan_safe", nan_safe)
    rule = UFUNC_RULES[np.sqrt]
    x = np.array([0.0, 4.0])
    t = np.array([[0.0, 1.0], [1.0, 0.0]])  # slot 0: zero tangent at the infinite partial
    out, out_dot = kernels.elementwise_jvp(rule, [x], [t])
    generic = _generic(rule, [x], [t])[1]
    np.testing.assert_array_equal(out_dot, generic)
    assert (out_dot[0, 0] == 0.0) if nan_safe else np.isnan(out_dot[0, 0])
    assert np.isinf(out_dot[1, 0])


def test_declines_what_it_does_not_cover(numba_backend):
    mul = UFUNC_RULES[np.multiply]
    t = np.ones((1, 3, 4))
    x = np.ones((3, 4))
    assert kernels.elementwise_jvp(mul, [x, np.ones(4)], [t, None]) is None          # broadcasting
    assert kernels.elementwise_jvp(mul, [x, x.astype(np.float32)], [t, None]) is None  # mixed dtypes
    assert kernels.elementwise_jvp(mul, [x.astype(int), x], [t, None]) is None  # integer primal
    assert kernels.elementwise_jvp(mul, [x.astype(np.float32), np.float64(2.0)],
                                   [t.astype(np.float32), None]) is None  # strong f64 scalar
    assert kernels.elementwise_jvp(UFUNC_RULES[np.float_power], [x.astype(np.float32), 2.0],
                                   [t.astype(np.float32), None]) is None  # promotes to f64
    assert kernels.elementwise_jvp(UFUNC_RULES[np.add], [x, x], [t, t]) is None  # linear: NumPy


def test_numpy_backend_gives_the_same_results(monkeypatch):
    rng = np.random.default_rng(3)
    x = rng.uniform(0.2, 2.0, (50,))
    v = rng.standard_normal((4, 50))

    def f(x):
        return np.sin(x) * np.exp(-x ** 2) + np.tanh(x) / np.sqrt(x) + np.arctan2(x, 2.0) ** 3

    results = {}
    for backend in ("numba", "numpy"):
        monkeypatch.setattr(kernels, "BACKEND", backend)
        monkeypatch.setattr(kernels, "MIN_WORK", 0)
        y = f(dualad.DualArray(x, v))
        results[backend] = (y.primal, y.tangent)
    assert kernels.elementwise_jvp(UFUNC_RULES[np.sin], [x], [v]) is None  # numpy backend: off
    np.testing.assert_allclose(results["numba"][0], results["numpy"][0], rtol=1e-14)
    np.testing.assert_allclose(results["numba"][1], results["numpy"][1], rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_gather_and_scatter_add(backend, monkeypatch):
    monkeypatch.setattr(kernels, "BACKEND", backend)
    rng = np.random.default_rng(4)
    for dtype in (np.float64, np.float32):
        flat = rng.standard_normal((3, 7)).astype(dtype)
        index = np.array([0, 6, 6, 2, 0, 0, 5])
        np.testing.assert_array_equal(kernels.gather(flat, index), flat[:, index])
        values = rng.standard_normal((3, index.size)).astype(dtype)
        expected = np.zeros((3, 7), dtype)
        np.add.at(expected, (slice(None), index), values)
        got = kernels.scatter_add(values, index, 7)
        assert got.dtype == dtype and got.shape == (3, 7)
        np.testing.assert_allclose(got, expected, rtol=1e-6)
        got = kernels.scatter_add(values.reshape(3, 1, -1), index, 7)
        np.testing.assert_allclose(got.reshape(3, 7), expected, rtol=1e-6)
    empty = kernels.scatter_add(np.zeros((2, 0)), np.zeros(0, dtype=np.intp), 4)
    np.testing.assert_array_equal(empty, np.zeros((2, 4)))


def _run(code, env):
    full_env = dict(os.environ, PYTHONPATH=ROOT, **env)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=full_env,
                          capture_output=True, text=True, timeout=300, check=True).stdout


def test_import_does_not_import_numba():
    _run("import dualad, sys; assert 'numba' not in sys.modules", {})


def test_second_process_loads_kernels_from_cache(tmp_path):
    code = """
        import numpy as np, dualad
        from dualad import kernels
        x = dualad.DualArray(np.linspace(0.1, 1.0, 8), np.ones((2, 8)))
        y = np.sin(x) * np.exp(-x ** 2) + np.tanh(x)
        kernel = kernels._kernel(dualad.rules.RULES['sin'], np.dtype('float64'), 'aA')[0]
        print(sum(kernel.stats.cache_hits.values()), sum(kernel.stats.cache_misses.values()))
        print(repr(y.tangent.tolist()))
    """
    env = {"NUMBA_CACHE_DIR": str(tmp_path), "DUALAD_BACKEND": "numba"}
    first = _run(code, env).splitlines()
    second = _run(code, env).splitlines()
    assert first[0] == "0 1"          # compiled and written to the cache
    assert second[0] == "1 0"         # loaded, not compiled
    assert first[1] == second[1]
    assert any(name.endswith(".py") for name in os.listdir(tmp_path / "dualad"))


def test_small_arrays_take_the_numpy_path(monkeypatch):
    """Below MIN_WORK tangent elements the kernel declines (its call overhead would dominate)."""
    monkeypatch.setattr(kernels, "BACKEND", "numba")
    rule = UFUNC_RULES[np.sin]
    small = np.linspace(0.1, 1.0, 8)
    assert kernels.elementwise_jvp(rule, [small], [np.ones((1, 8))]) is None
    big = np.linspace(0.1, 1.0, kernels.MIN_WORK)
    fused = kernels.elementwise_jvp(rule, [big], [np.ones((1, big.size))])
    assert fused is not None
    np.testing.assert_allclose(fused[1][0], np.cos(big), rtol=1e-14)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
def test_the_tape_takes_fused_vjps_with_numpys_numbers(dtype, monkeypatch):
    import reversead as rd
    tape = importlib.import_module("reversead.tensor")  # (rd.tensor is the function)

    calls = []

    def spy(rule, argnum, g, saved, out):
        result = kernels.elementwise_vjp(rule, argnum, g, saved, out)
        calls.append((rule.name, result is not None))
        return result
    monkeypatch.setattr(tape, "_fused_vjp", spy)
    monkeypatch.setattr(kernels, "MIN_WORK", 0)
    rng = np.random.default_rng(4)
    x0, w0 = rng.standard_normal((6, 5)).astype(dtype), rng.uniform(1, 2, (6, 5)).astype(dtype)

    def grads(backend):
        monkeypatch.setattr(kernels, "BACKEND", backend)
        x, w = rd.tensor(x0, requires_grad=True), rd.tensor(w0, requires_grad=True)
        np.sum(np.tanh(x) / w * x0).backward()  # (x0: a contiguous cotangent for divide)
        return x.grad, w.grad
    fused = grads("numba")
    assert ("tanh", True) in calls and ("divide", True) in calls
    generic = grads("numpy")
    for a, b in zip(fused, generic):
        assert a.dtype == dtype
        _close(a, b, dtype)


def _extremum_cases(rng):
    for dtype in (np.float64, np.float32):
        for shape, axis in [((7, 5), 1), ((7, 5), -1), ((2, 3, 4), (1, 2)), ((2, 3, 4), 2),
                            ((4, 1), 1), ((3, 300), 1)]:
            x = rng.integers(-3, 3, shape).astype(dtype)  # small integers: many ties
            yield x, axis
            x = x.copy()
            x.flat[::7] = np.nan  # NaN rows propagate
            x.flat[1::5] = -0.0
            yield x, axis


@pytest.mark.parametrize("ufunc", [np.maximum, np.minimum], ids=["max", "min"])
def test_extremum_vjp_loop_gives_numpys_numbers(ufunc, numba_backend, monkeypatch):
    from dualad.rules.reductions import _extremum_cotangent

    rng = np.random.default_rng(2)
    for x, axis in _extremum_cases(rng):
        axes = tuple(sorted(a % x.ndim for a in np.atleast_1d(axis)))
        out = ufunc.reduce(x, axis=axis, keepdims=True)
        g = rng.standard_normal(out.shape).astype(x.dtype)
        with np.errstate(all="ignore"):
            fused = kernels.extremum_cotangent(x, out, g, axes)
            monkeypatch.setattr(kernels, "BACKEND", "numpy")
            generic = _extremum_cotangent(x, out, g, axes)  # the NumPy path
            monkeypatch.setattr(kernels, "BACKEND", "numba")
        assert (fused is not None) == (x.shape[-1] <= kernels.SHORT_ROW)
        if fused is not None:
            assert fused.dtype == x.dtype
            np.testing.assert_array_equal(fused, generic)  # bitwise, ties and NaN rows included


def test_extremum_vjp_loop_declines_what_it_does_not_cover(numba_backend, monkeypatch):
    x, out, g = np.ones((4, 6)), np.ones((4, 1)), np.ones((4, 1))
    assert kernels.extremum_cotangent(x, out, g, (1,)) is not None
    assert kernels.extremum_cotangent(x, np.ones((1, 6)), np.ones((1, 6)), (0,)) is None  # leading
    assert kernels.extremum_cotangent(x, np.ones((1, 1)), np.ones((1, 1)), (0, 1)) is None  # all
    assert kernels.extremum_cotangent(np.ones((6, 4)).T, out, g, (1,)) is None  # not contiguous
    assert kernels.extremum_cotangent(x.astype(int), out, g, (1,)) is None
    assert kernels.extremum_cotangent(x, out, np.ones((3, 4, 1)), (1,)) is None  # batch axes
    assert kernels.extremum_cotangent(x, out, g.astype(np.float32), (1,)) is None
    long = np.ones((2, kernels.SHORT_ROW + 1))
    assert kernels.extremum_cotangent(long, np.ones((2, 1)), np.ones((2, 1)), (1,)) is None
    monkeypatch.setattr(kernels, "BACKEND", "numpy")
    assert kernels.extremum_cotangent(x, out, g, (1,)) is None


def _sum_cases():
    """(shape, axes) of every pattern the loops take, with row lengths around NumPy's
    8-element unrolling and its pairwise block, and patterns they leave to NumPy."""
    for n in (2, 3, 7, 8, 9, 15, 16, 17, 63, 64, 65, 127, 128, 129, 300):
        yield (37, n), (1,)                # rows
        yield (2, 1, 3, n), (2, 3)         # rows after length-1 axes drop and axes merge
        yield (n, 19), (0,)                # columns (a bias)
        yield (n, 3, 5), (0, 1)            # columns of merged leading axes
        yield (4, n, 6), (1,)              # blocks of columns (batched cotangents)
        yield (n, 1), (0,)                 # a sum of everything: NumPy's
        yield (3, n, 4, 2), (1, 3)         # kept, summed, kept, summed: NumPy's


def _sum_values(shape, dtype, rng):
    # magnitudes from 1e-4 to 1e4, so the order of the additions shows in the last bits
    return (rng.standard_normal(shape) * 10.0 ** rng.integers(-4, 5, shape)).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
def test_sum_loops_give_numpys_numbers(dtype, numba_backend, monkeypatch):
    monkeypatch.setattr(kernels, "SUM_MIN_RUNS", 1)  # every size takes the loops here
    rng = np.random.default_rng(5)
    taken = set()
    for shape, axes in _sum_cases():
        layout = kernels.sum_layout(shape, axes)
        g = _sum_values(shape, dtype, rng)
        if layout is None:
            continue
        taken.add(layout[0])
        expected = np.add.reduce(g, axis=axes, keepdims=True)
        summed = kernels.sum_kept(g, layout, expected.shape)
        assert summed.dtype == dtype and summed.base is None
        np.testing.assert_array_equal(summed, expected)
    assert taken == {"rows", "columns"}


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
def test_sum_loops_keep_numpys_special_values(dtype, numba_backend, monkeypatch):
    monkeypatch.setattr(kernels, "SUM_MIN_RUNS", 1)
    for shape, axes in [((40, 10), (1,)), ((40, 5), (1,)), ((300, 4), (0,)), ((3, 50, 4), (1,))]:
        g = np.full(shape, -0.0, dtype)  # sums of -0.0 are +0.0 in NumPy (its identity is 0)
        expected = np.add.reduce(g, axis=axes)
        summed = kernels.sum_kept(g, kernels.sum_layout(shape, axes), expected.shape)
        np.testing.assert_array_equal(np.signbit(summed), np.signbit(expected))
        g.flat[::7], g.flat[::11], g.flat[::13] = np.inf, -np.inf, np.nan
        g.flat[::17] = np.finfo(dtype).max  # overflow to inf on the way
        expected = np.add.reduce(g, axis=axes)
        summed = kernels.sum_kept(g, kernels.sum_layout(shape, axes), expected.shape)
        np.testing.assert_array_equal(summed, expected)


def test_sum_loops_decline_what_they_do_not_cover(numba_backend, monkeypatch):
    runs = kernels.SUM_MIN_RUNS
    assert kernels.sum_layout((runs, 2), (0,)) == ("columns", 1, runs, 2)
    assert kernels.sum_layout((runs - 1, 2), (0,)) is None  # too few runs of NumPy's loop to pay
    assert kernels.sum_layout((4096, kernels.PAIRWISE_BLOCK + 1), (1,)) is None  # long rows
    assert kernels.sum_layout((64, 64, 2, 2), (1, 3)) is None  # summed axes apart
    assert kernels.sum_layout((4096,), (0,)) is None  # everything: NumPy's SIMD pairwise sum
    layout = kernels.sum_layout((4096, 3), (0,))
    g = np.ones((4096, 3))
    assert kernels.sum_kept(g, layout, (3,)) is not None
    assert kernels.sum_kept(np.ones((3, 4096)).T, layout, (3,)) is None  # not contiguous
    assert kernels.sum_kept(g.astype(int), layout, (3,)) is None
    assert kernels.sum_kept(g.astype(np.float16), layout, (3,)) is None
    monkeypatch.setattr(kernels, "BACKEND", "numpy")
    assert kernels.sum_kept(g, layout, (3,)) is None


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
def test_the_tape_unbroadcasts_with_the_loops_and_numpys_numbers(dtype, monkeypatch):
    """A narrow bias over a long batch (NumPy's slow case) and a batch of cotangents."""
    import reversead as rd

    calls = []

    def spy(g, layout, shape):
        result = real(g, layout, shape)
        calls.append(result is not None)
        return result
    real = kernels.sum_kept
    monkeypatch.setattr(kernels, "sum_kept", spy)
    rng = np.random.default_rng(6)
    x0, b0 = _sum_values((2048, 3), dtype, rng), _sum_values((3,), dtype, rng)
    w0 = _sum_values((2048, 3), dtype, rng)

    def run(backend):
        monkeypatch.setattr(kernels, "BACKEND", backend)
        b = rd.tensor(b0, requires_grad=True)
        np.sum((x0 + b) * w0).backward()
        jac = rd.jacobian(lambda v: (x0[:100] + v) * w0[:100], b0)  # 300 cotangents (100, 3)
        return b.grad, jac
    fast = run("numba")
    assert calls == [True, True]  # the bias's sum, then the batch's (300, 100, 3) -> (300, 3)
    generic = run("numpy")
    for a, b in zip(fast, generic):
        assert a.dtype == dtype
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(fast[0], np.add.reduce(w0, axis=0))
    assert fast[0].base is None  # the leaf kept the loop's own array


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
def test_add_reduce_is_np_add_reduce(dtype, numba_backend, monkeypatch):
    monkeypatch.setattr(kernels, "SUM_MIN_RUNS", 1)
    rng = np.random.default_rng(7)
    looped = 0
    for shape, axes in _sum_cases():
        x = _sum_values(shape, dtype, rng)
        spellings = [axes, tuple(a - len(shape) for a in reversed(axes)), None]
        if len(axes) == 1:
            spellings.append(axes[0])
        for axis in spellings:
            for keepdims in (False, True):
                expected = np.add.reduce(x, axis=axis, keepdims=keepdims)
                got = kernels.add_reduce(x, axis, keepdims)
                assert got.dtype == dtype and got.shape == expected.shape
                np.testing.assert_array_equal(got, expected)
                looped += kernels._REDUCE_PLANS[(shape, axis, keepdims)] is not False
    assert looped > 100
    x = np.ones((64, 64))
    with pytest.raises(np.exceptions.AxisError):  # bad axes: NumPy's own errors
        kernels.add_reduce(x, 2)
    with pytest.raises(ValueError, match="duplicate"):
        kernels.add_reduce(x, (0, -2))
    assert kernels._REDUCE_PLANS[((64, 64), 2, False)] is False


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
def test_sum_rule_takes_the_loops_in_both_modes_with_numpys_numbers(dtype, monkeypatch):
    """``np.sum(x, axis=0)`` over a long batch: the primal (both modes) and the batch of
    tangents (k, 2048, 3) summed over the data axis."""
    import dualad as ad
    import reversead as rd

    calls = []
    real = kernels.sum_kept

    def spy(g, layout, shape):
        result = real(g, layout, shape)
        calls.append((g.shape, result is not None))
        return result
    monkeypatch.setattr(kernels, "sum_kept", spy)
    x0 = _sum_values((2048, 3), dtype, np.random.default_rng(8))

    def f(x):
        return np.sum(x * x, axis=0) + np.max(x, axis=0)

    def run(backend):
        monkeypatch.setattr(kernels, "BACKEND", backend)
        t = rd.tensor(x0, requires_grad=True)
        y = np.sum(t, axis=0)
        v = np.stack([np.ones_like(x0), x0[::-1].copy()])  # two tangent directions at once
        _, dy = ad.jvp(f, x0, v[0])
        dual = ad.DualArray(x0, v)
        return y.data, dy, f(dual).tangent
    fast = run("numba")
    assert ((2048, 3), True) in calls and ((2, 2048, 3), True) in calls
    generic = run("numpy")
    for a, b in zip(fast, generic):
        assert a.dtype == dtype
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(fast[0], np.sum(x0, axis=0))
