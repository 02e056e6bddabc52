"""Benchmark P5: compiled dual numbers on Numba scalar-loop code (issue 5).

Run ``python benchmarks/bench_compiled.py [--json out.json]``. Times are the best of repeats;
every ratio compares two costs measured in this one process (compile times: in fresh child
processes, wall and CPU time, since a loaded machine stretches wall time).

1. Lorenz-63, 1000 classic RK4 steps, 3x3 Jacobian of the final state w.r.t. the initial
   state, 3 tangents in one pass (``dualad.jit(f)(s0, sigma, rho, beta, seeds=I3,
   argnums=(0,))``): against the ``@njit`` primal on floats (target <= 3x) and against the
   pure-Python ``Dual`` path, ``dualad.jacobian`` of the same Python function with float
   tuples (target >= 500x faster; timed once, it is slow). ``dualad.jacobian(f, (s0, sigma,
   rho, beta))`` (6 tangents, the full 3x6 Jacobian) is timed beside it.
2. Per-call overhead with dual arguments: ``dualad.jit(identity)(1.0, seeds=[[1.0]])``
   (target <= 5 us), beside the njit float call and ``dualad.derivative(identity, 1.0)``.
3. Compile time of the dual version in a fresh process, Numba already warmed by compiling
   the primal (target <= 3 s), and the same in a second process that loads it from the disk
   cache (target <= 0.5 s).
"""
from __future__ import annotations

import argparse
import os
# one BLAS thread unless told otherwise: on shared 2-core machines multi-threaded
# OpenBLAS made small products up to 40x slower and the figures unrepeatable
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
import subprocess
import sys
import tempfile
import time

import numpy as np
from numba import njit

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

import dualad  # noqa: E402
from common import best_time, machine, write_json  # noqa: E402
from dualad.problems import LORENZ_STEPS as STEPS, lorenz_scalar  # noqa: E402

S0 = np.array([1.0, 1.0, 1.0])
PARAMS = (10.0, 28.0, 8.0 / 3.0)


lorenz_final = njit(lorenz_scalar)


@njit
def identity(x):
    return x


def child(mode):
    """In a fresh process: warm Numba on the primal, then time the dual version's first call."""
    lorenz_final(S0, *PARAMS)
    wall, cpu = time.perf_counter(), time.process_time()
    dualad.jit(lorenz_final)(S0, *PARAMS, seeds=np.eye(3), argnums=(0,))
    print(time.perf_counter() - wall, time.process_time() - cpu)


def compile_times():
    cache = tempfile.mkdtemp(prefix="dualad-bench-cache-")
    env = {**os.environ, "NUMBA_CACHE_DIR": cache}
    results = {}
    for name in ("cold", "cached"):
        start = time.perf_counter()
        out = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", name],
                             check=True, capture_output=True, text=True, env=env).stdout.split()
        results[name] = {"wall_s": float(out[-2]), "cpu_s": float(out[-1]),
                         "process_wall_s": time.perf_counter() - start}
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="write the results to this file")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child)
        return

    f_dual = dualad.jit(lorenz_final)
    seeds = np.eye(3)
    y, y_dot = f_dual(S0, *PARAMS, seeds=seeds, argnums=(0,))
    J = np.stack(y_dot)
    primal = best_time(lambda: lorenz_final(S0, *PARAMS), repeats=15)
    compiled = best_time(lambda: f_dual(S0, *PARAMS, seeds=seeds, argnums=(0,)), repeats=15)
    full = best_time(lambda: dualad.jacobian(lorenz_final, (S0, *PARAMS)), repeats=7)

    def python_path():
        return dualad.jacobian(lambda a, b, c: lorenz_final.py_func((a, b, c), *PARAMS),
                               (1.0, 1.0, 1.0))
    start = time.perf_counter()
    J_python = python_path()
    python = time.perf_counter() - start
    agree = float(np.max(np.abs(np.array(J_python, dtype=float) - J)))

    float_call = best_time(lambda: identity(1.0), repeats=15)
    one = np.ones((1, 1))
    id_dual = dualad.jit(identity)
    dual_call = best_time(lambda: id_dual(1.0, seeds=one), repeats=15)
    derivative_call = best_time(lambda: dualad.derivative(identity, 1.0), repeats=15)

    compile_ = compile_times()
    results = {
        "machine": machine(),
        "lorenz_rk4_1000_jacobian_3x3": {
            "primal_njit_us": primal * 1e6, "compiled_dual_us": compiled * 1e6,
            "ratio_to_primal": compiled / primal, "target_ratio_to_primal": 3.0,
            "full_3x6_dualad_jacobian_us": full * 1e6,
            "python_dual_path_s": python, "speedup_over_python": python / compiled,
            "target_speedup_over_python": 500.0, "max_abs_difference_to_python": agree,
        },
        "per_call_overhead": {
            "njit_float_call_us": float_call * 1e6, "dual_call_us": dual_call * 1e6,
            "dualad_derivative_us": derivative_call * 1e6, "target_dual_call_us": 5.0,
        },
        "compile": {**compile_, "target_cold_s": 3.0, "target_cached_s": 0.5},
    }
    lo = results["lorenz_rk4_1000_jacobian_3x3"]
    print(f"Lorenz RK4 x{STEPS}, 3x3 Jacobian, 3 tangents in one pass")
    print(f"  @njit primal on floats   {primal * 1e6:9.1f} us")
    print(f"  compiled duals           {compiled * 1e6:9.1f} us   {lo['ratio_to_primal']:.2f}x primal "
          f"(target <= 3x)")
    print(f"  dualad.jacobian 3x6      {full * 1e6:9.1f} us   (all four arguments, 6 tangents)")
    print(f"  pure-Python Dual path    {python * 1e6:9.0f} us   compiled is "
          f"{lo['speedup_over_python']:.0f}x faster (target >= 500x); max |diff| {agree:.1e}")
    print("Per-call overhead (identity)")
    print(f"  njit on a float          {float_call * 1e6:9.2f} us")
    print(f"  dualad.jit, dual args    {dual_call * 1e6:9.2f} us   (target <= 5 us)")
    print(f"  dualad.derivative        {derivative_call * 1e6:9.2f} us")
    print("Compile time of the dual version (fresh processes, Numba warmed on the primal)")
    for name, target in (("cold", 3.0), ("cached", 0.5)):
        c = compile_[name]
        print(f"  {name:7s} wall {c['wall_s']:6.2f} s   cpu {c['cpu_s']:6.2f} s   (target <= {target} s; "
              f"whole process {c['process_wall_s']:.2f} s)")
    write_json(args.json, results)


if __name__ == "__main__":
    main()
