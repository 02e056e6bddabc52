"""Run every benchmark with one command and collect the results as JSON.

    python benchmarks/run.py [--quick] [--out benchmarks/results] [--blas-threads 1]

Each script runs in its own process (so import and compile times are honest) with BLAS pinned
to ``--blas-threads`` threads: on a shared 2-core machine multi-threaded OpenBLAS made small
matrix products up to 40x slower and the figures unrepeatable. Results: one JSON file per
script plus ``all.json``; every figure inside is also given as a ratio to the NumPy primal
measured in the same process.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = ["bench_forward.py", "bench_reverse.py", "bench_compare.py", "bench_compiled.py",
           "bench_checkpoint.py", "bench_parallel.py"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller sizes, where a script supports it")
    parser.add_argument("--out", default=str(HERE / "results"))
    parser.add_argument("--blas-threads", default="1")
    parser.add_argument("--only", nargs="*", default=None, help="script names to run")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, OPENBLAS_NUM_THREADS=args.blas_threads, OMP_NUM_THREADS=args.blas_threads,
               MKL_NUM_THREADS=args.blas_threads)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE.parent), env.get("PYTHONPATH", "")])
    merged, failed = {}, []
    for script in SCRIPTS:
        if args.only and script not in args.only and script.removesuffix(".py") not in args.only:
            continue
        if not (HERE / script).exists():
            continue
        target = out / script.replace(".py", ".json")
        cmd = [sys.executable, str(HERE / script), "--json", str(target)]
        if args.quick and '"--quick"' in (HERE / script).read_text():  # only scripts that take it
            cmd.append("--quick")
        print(f"== {script}", flush=True)
        start = time.perf_counter()
        proc = subprocess.run(cmd, env=env)
        print(f"== {script}: exit {proc.returncode}, {time.perf_counter() - start:.1f} s", flush=True)
        if proc.returncode != 0 or not target.exists():
            failed.append(script)
            continue
        merged[script.removesuffix(".py")] = json.loads(target.read_text())
    (out / "all.json").write_text(json.dumps(merged, indent=1))
    print(f"wrote {out / 'all.json'}" + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
