"""Forward-mode speed, as ratios measured side by side in one process (issue 2, "Speed").

    python benchmarks/bench_forward.py [--json out.json] [--repeat 7]

Every figure is the minimum over ``--repeat`` runs. The script reruns itself once with
glibc told to keep large freed blocks (``MALLOC_MMAP_THRESHOLD_``/``MALLOC_TRIM_THRESHOLD_``),
which removes the page faults of fresh 8 MB buffers, and reports both settings.
"""
from __future__ import annotations

import argparse
import json
import os
# one BLAS thread unless told otherwise: on shared 2-core machines multi-threaded
# OpenBLAS made small products up to 40x slower and the figures unrepeatable
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

from common import best_of  # noqa: E402

MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "1000000000", "MALLOC_TRIM_THRESHOLD_": "1000000000"}
TARGETS = {"jvp_over_f": 1.6, "jvp_over_f_malloc": 1.3, "extra_tangent_over_f": 0.5,
           "jacobian_100_over_f": 30.0, "import_s": 0.5, "compile_s": 5.0, "cache_load_s": 1.0}


def best(fn, repeat):
    return best_of(fn, repeat, warmup=True)


def f(x):
    return np.sin(x) * np.exp(-x ** 2) + np.tanh(x)


def in_process(repeat: int) -> dict:
    import dualad
    from dualad import DualArray, kernels

    rng = np.random.default_rng(0)
    n = 10 ** 6
    x = rng.standard_normal(n)
    res = {}
    cost_f = best(lambda: f(x), repeat)
    res["f_ms"] = cost_f * 1e3
    for backend in ("numba", "numpy"):
        kernels.BACKEND = backend
        v = rng.standard_normal(n)
        res[f"jvp_over_f[{backend}]"] = best(lambda: dualad.jvp(f, x, v), repeat) / cost_f
        per_k = {}
        for k in (1, 8, 32):
            d = DualArray(x, rng.standard_normal((k, n)))
            per_k[k] = best(lambda: f(d), max(3, repeat // 2))
            res[f"dual_k{k}_over_f[{backend}]"] = per_k[k] / cost_f
        res[f"extra_tangent_over_f[{backend}]"] = max(
            (per_k[8] - per_k[1]) / 7, (per_k[32] - per_k[8]) / 24) / cost_f
        d = DualArray(x, rng.standard_normal((1, n)))
        res[f"sin_dual_over_sin[{backend}]"] = best(lambda: np.sin(d), repeat) / best(
            lambda: np.sin(x), repeat)
    kernels.BACKEND = "numba"

    # Jacobian of a small MLP (BLAS does the work): n = m = 100, then n = 1000, m = 1
    def mlp(n_in, n_out, hidden=100):
        w1 = rng.standard_normal((hidden, n_in)) / np.sqrt(n_in)
        b1 = rng.standard_normal(hidden)
        w2 = rng.standard_normal((n_out, hidden)) / np.sqrt(hidden)
        return lambda x: np.tanh(w2 @ np.tanh(w1 @ x + b1))

    g = mlp(100, 100)
    x100 = rng.standard_normal(100)
    cost_g = best(lambda: g(x100), repeat * 20)
    res["jacobian_100_over_f"] = best(lambda: dualad.jacobian(g, x100), repeat) / cost_g
    h = mlp(1000, 1)
    x1000 = rng.standard_normal(1000)
    cost_h = best(lambda: h(x1000), repeat * 20)
    res["jacobian_1000x1_over_n_f"] = best(lambda: dualad.jacobian(h, x1000), repeat) / (1000 * cost_h)

    # gather / scatter-add (fancy indexing and its transpose), 8 rows of 10**5
    values = rng.standard_normal((8, 10 ** 5))
    index = rng.integers(0, 10 ** 5, 10 ** 5)
    for backend in ("numba", "numpy"):
        kernels.BACKEND = backend
        res[f"scatter_add_ms[{backend}]"] = best(
            lambda: kernels.scatter_add(values, index, 10 ** 5), repeat) * 1e3
    kernels.BACKEND = "numba"

    # an axis sum over a long batch, where NumPy pays per row of 8: the sum alone on a
    # DualArray with 8 tangents (8, 4096, 8), and the Jacobian of per-feature sums (w of 8
    # entries: the same 8 tangents). Both backends give the same numbers.
    batch = rng.standard_normal((4096, 8))
    d = DualArray(batch, rng.standard_normal((8,) + batch.shape))
    per_feature = lambda w: np.sum(np.tanh(batch * w), axis=0)  # noqa: E731
    w8 = rng.standard_normal(8)
    for backend in ("numba", "numpy"):
        kernels.BACKEND = backend
        res[f"axis_sum_dual_k8_us[{backend}]"] = best(lambda: np.sum(d, axis=0), repeat) * 1e6
        res[f"axis_sum_jacobian_ms[{backend}]"] = best(
            lambda: dualad.jacobian(per_feature, w8), repeat) * 1e3
    kernels.BACKEND = "numba"
    res["np_add_at_ms"] = best(lambda: np.add.at(np.zeros((8, 10 ** 5)), (slice(None), index), values),
                               3) * 1e3
    return res


def startup() -> dict:
    """Import time and kernel compile/cache-load times, each in a fresh process."""
    def run(code, env=None):
        full_env = dict(os.environ, PYTHONPATH=ROOT, **(env or {}))
        out = subprocess.run([sys.executable, "-c", code], env=full_env, capture_output=True,
                             text=True, check=True)
        return float(out.stdout.strip().splitlines()[-1])

    res = {}
    base = min(run("import time; t = time.perf_counter(); import numpy; "
                   "print(time.perf_counter() - t)") for _ in range(3))
    full = min(run("import time; t = time.perf_counter(); import numpy, dualad; "
                   "print(time.perf_counter() - t)") for _ in range(3))
    res["import_s"] = full - base
    first_use = ("import time, numpy as np, dualad\n"
                 "x = dualad.DualArray(np.linspace(-1, 1, 1000), np.ones((1, 1000)))\n"
                 "t = time.perf_counter()\n"
                 "import numba\n"
                 "t_numba = time.perf_counter()\n"
                 "y = np.sin(x) * np.exp(-x ** 2) + np.tanh(x)\n"
                 "print(time.perf_counter() - t_numba)\n"
                 "print(time.perf_counter() - t)\n")
    with tempfile.TemporaryDirectory() as cache:
        env = {"NUMBA_CACHE_DIR": cache}
        res["compile_s"] = run(first_use, env)
        res["cache_load_s"] = run(first_use, env)
        res["cache_load_after_numba_import_s"] = run(
            first_use.replace("print(time.perf_counter() - t)\n", ""), env)
        res["numba_import_and_init_s"] = run(
            "import time; t = time.perf_counter(); import numba\n"
            "numba.njit(lambda v: v + 1)(1.0); print(time.perf_counter() - t)")
    return res


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="write the figures to this file")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(in_process(args.repeat)))
        return
    results = {"default_allocator": in_process(args.repeat)}
    child = subprocess.run([sys.executable, __file__, "--child", "--repeat", str(args.repeat)],
                           env=dict(os.environ, **MALLOC_ENV), capture_output=True, text=True,
                           check=True)
    results["malloc_env"] = json.loads(child.stdout.strip().splitlines()[-1])
    results["startup"] = startup()
    results["load_average"] = os.getloadavg()
    default, steady, start = results["default_allocator"], results["malloc_env"], results["startup"]
    checks = {
        "jvp_over_f": default["jvp_over_f[numba]"],
        "jvp_over_f_malloc": steady["jvp_over_f[numba]"],
        "extra_tangent_over_f": default["extra_tangent_over_f[numba]"],
        "jacobian_100_over_f": default["jacobian_100_over_f"],
        "import_s": start["import_s"],
        "compile_s": start["compile_s"],
        "cache_load_s": start["cache_load_s"],
    }
    results["targets"] = {name: {"value": round(value, 3), "target": TARGETS[name],
                                 "met": value <= TARGETS[name]} for name, value in checks.items()}
    for section in ("default_allocator", "malloc_env", "startup"):
        print(f"[{section}]")
        for key, value in results[section].items():
            print(f"  {key:36s} {value:8.3f}")
    print("[targets]")
    for name, row in results["targets"].items():
        print(f"  {name:36s} {row['value']:8.3f}  <= {row['target']:<5}  {'met' if row['met'] else 'MISSED'}")
    print(f"load average {results['load_average']}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=2)


if __name__ == "__main__":
    main()
