"""Jacobians on a process pool (issue 6, part 3): serial against 2 spawn workers, both modes.

    python benchmarks/bench_parallel.py [--json out.json] [--quick] [--workers 2] [--repeat 2]

Two costly R^2000 -> R^2000 functions (module level: the spawn workers import this script,
so only ``x`` and the chunk bounds travel per task; the weights are rebuilt from a seed):

* ``network``: three layers ``x -> tanh(W_i x)``, ``W_i`` 2000 x 2000 (dense, BLAS-bound);
* ``elementwise``: 12 rounds of ``sin(y) * exp(cos(y[::-1])) + tanh(y) / 2`` (transcendental-
  bound, no BLAS).

Their 2000 x 2000 Jacobians by ``dualad.jacobian`` (forward: tangent chunks; the serial default
is one chunk of 2000) and ``reversead.jacobian`` (reverse: cotangent row batches; serial
default one batch), serially and on ``ProcessPoolExecutor(2, mp_context=spawn)`` with
``chunk=None`` (2 tasks per worker). BLAS is pinned to one thread in the parent and
(inherited) in the workers, so the speedup measures the pool, not BLAS threads. Reported:

* pool start (spawn, imports, first tasks): paid once per pool, excluded from the timings;
* serial and parallel times, speedup = serial / parallel, and the serial time with the
  parallel run's chunking (splitting alone changes the cost: smaller arrays, repeated primals);
* overhead per chunk: the parallel run repeated with 2 .. 32 chunks, ``T(N) = a + b N`` fitted
  by least squares; ``b x workers`` is the worker time each extra chunk costs (task round
  trip, the (k, 2000) result pickled back, the primal / tape recomputed per chunk, tail
  imbalance). A near-free map (``x * 1``) with the same result sizes isolates the executor's
  own cost per task.
"""
from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before numpy: workers inherit it
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import multiprocessing  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ProcessPoolExecutor  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import dualad  # noqa: E402
import reversead  # noqa: E402
from common import best_of as best  # noqa: E402

N = int(os.environ.get("BENCH_PARALLEL_N", "2000"))  # the workers read the size from the environment
LAYERS, ROUNDS = 3, 12
_rng = np.random.default_rng(6)
WEIGHTS = [_rng.standard_normal((N, N)) / np.sqrt(N) for _ in range(LAYERS)]
del _rng


def network(x):
    """R^N -> R^N: LAYERS dense tanh layers."""
    for w in WEIGHTS:
        x = np.tanh(w @ x)
    return x


def elementwise(x):
    """R^N -> R^N: ROUNDS of transcendental elementwise work, coupled through a reversal."""
    for _ in range(ROUNDS):
        x = np.sin(x) * np.exp(np.cos(x[::-1])) + 0.5 * np.tanh(x)
    return x


def cheap(x):
    """A near-free map with the same output size: isolates the executor's cost per task."""
    return x * 1.0


def fit(counts, times):
    slope, intercept = np.polyfit(np.asarray(counts, float), np.asarray(times, float), 1)
    return float(intercept), float(slope)


def measure(jac, f, x, pool, args):
    row = {}
    reference = jac(f, x)
    row["serial_s"] = best(lambda: jac(f, x), args.repeat)
    row["max_abs_diff_vs_serial"] = float(np.max(np.abs(jac(f, x, executor=pool) - reference)))
    row["parallel_s"] = best(lambda: jac(f, x, executor=pool), args.repeat)
    k = -(-N // (2 * args.workers))  # what chunk=None picks: TASKS_PER_WORKER x workers tasks
    row["parallel_chunk"], row["parallel_tasks"] = k, -(-N // k)
    row["serial_same_chunks_s"] = best(lambda: jac(f, x, k), args.repeat)
    row["speedup"] = row["serial_s"] / row["parallel_s"]
    row["speedup_same_chunks"] = row["serial_same_chunks_s"] / row["parallel_s"]
    counts, times, cheap_times = [], [], []
    for chunks in args.chunk_counts:
        k = -(-N // chunks)
        counts.append(-(-N // k))
        times.append(best(lambda: jac(f, x, k, executor=pool), args.repeat))
        cheap_times.append(best(lambda: jac(cheap, x, k, executor=pool), args.repeat))
    _, slope = fit(counts, times)
    _, cheap_slope = fit(counts, cheap_times)
    row["sweep"] = {"chunks": counts, "parallel_s": times, "cheap_parallel_s": cheap_times}
    row["overhead_per_chunk_s"] = slope * args.workers
    row["executor_overhead_per_task_s"] = cheap_slope * args.workers
    return row


def run(args):
    x = np.linspace(-1.0, 1.0, N)
    modes = {"forward": dualad.jacobian, "reverse": reversead.jacobian}
    functions = {"network": network, "elementwise": elementwise}
    results = {"n": N, "layers": LAYERS, "rounds": ROUNDS, "workers": args.workers, "start_method": "spawn",
               "cpus": os.cpu_count(), "blas_threads": os.environ["OPENBLAS_NUM_THREADS"], "results": {}}
    start = time.perf_counter()
    with ProcessPoolExecutor(args.workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        # the first tasks start the workers: spawn, import numpy, dualad and this module (W rebuilt)
        dualad.jacobian(cheap, x[:2 * args.workers], 1, executor=pool)
        results["pool_start_s"] = time.perf_counter() - start
        for jac in modes.values():  # warm-up: Numba kernels (tanh, sin, ...) loaded in every worker
            jac(elementwise, x[:64], 8, executor=pool)
            jac(elementwise, x[:64])
        for fname, f in functions.items():
            for mode, jac in modes.items():
                results["results"][f"{fname}/{mode}"] = measure(jac, f, x, pool, args)
                report_row(f"{fname}/{mode}", results["results"][f"{fname}/{mode}"])
    return results


def report_row(name, row):
    print(f"[{name}]")
    print(f"  serial (chunk=None, 1 pass)             {row['serial_s']:8.3f} s")
    print(f"  serial, {row['parallel_tasks']} chunks of {row['parallel_chunk']:<5}           "
          f"{row['serial_same_chunks_s']:8.3f} s")
    print(f"  parallel ({row['parallel_tasks']} tasks)                     {row['parallel_s']:8.3f} s")
    print(f"  speedup vs serial                       {row['speedup']:8.2f} x")
    print(f"  speedup vs serial with same chunks      {row['speedup_same_chunks']:8.2f} x")
    print(f"  max |parallel - serial|                 {row['max_abs_diff_vs_serial']:8.1e}")
    sweep = row["sweep"]
    for c, t, ct in zip(sweep["chunks"], sweep["parallel_s"], sweep["cheap_parallel_s"]):
        print(f"    {c:3d} chunks: {t:7.3f} s   (cheap map {ct * 1e3:7.1f} ms)")
    print(f"  overhead per chunk (fit x workers)      {row['overhead_per_chunk_s'] * 1e3:8.1f} ms")
    print(f"  executor cost per task (cheap map)      {row['executor_overhead_per_task_s'] * 1e3:8.1f} ms", flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="write the figures to this file")
    parser.add_argument("--quick", action="store_true", help="N = 500 and fewer repeats")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args(argv)
    if args.quick and "BENCH_PARALLEL_N" not in os.environ:
        # the workers import this module afresh: pass the size through the environment, then re-run
        os.environ["BENCH_PARALLEL_N"] = "500"
        os.execv(sys.executable, [sys.executable, os.path.abspath(__file__), *sys.argv[1:]])
    if args.quick:
        args.repeat = min(args.repeat, 2)
    args.chunk_counts = [2, 8, 32]
    print(f"{N} x {N} Jacobians; {args.workers} spawn workers on {os.cpu_count()} CPUs, "
          f"BLAS threads {os.environ['OPENBLAS_NUM_THREADS']}", flush=True)
    results = run(args)
    print(f"pool start (spawn + imports + first tasks): {results['pool_start_s']:.2f} s")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=2)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
