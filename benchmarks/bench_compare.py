"""Forward vs reverse on the same problems (issue 4): P2 Jacobian sweep, P4 Rosenbrock, P5 Lorenz.

Every figure is also given as a ratio to the plain NumPy primal measured in the same process.
Peers (torch.func, HIPS autograd, JAX) run in the same process when importable.

    python benchmarks/bench_compare.py [--json out.json] [--quick]
"""
from __future__ import annotations

import argparse
import importlib.util
import os
# one BLAS thread unless told otherwise: on shared 2-core machines multi-threaded
# OpenBLAS made small products up to 40x slower and the figures unrepeatable
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import dualad  # noqa: E402
import reversead  # noqa: E402
from common import best_time, machine, write_json  # noqa: E402
from dualad.compare import choose_mode  # noqa: E402
from dualad.problems import lorenz_rk4, rosenbrock, tanh_net  # noqa: E402


def peers_p2(n, m, problem):
    """Best time of each installed peer's Jacobian of the same tanh net (None if absent)."""
    out = {}
    rng = np.random.default_rng(0)
    hidden = 100
    W1 = rng.standard_normal((hidden, n)) / np.sqrt(n)
    b1 = rng.standard_normal(hidden)
    W2 = rng.standard_normal((m, hidden)) / np.sqrt(hidden)
    if importlib.util.find_spec("torch"):
        import torch
        from torch.func import jacfwd, jacrev
        tW1, tb1, tW2 = (torch.tensor(a) for a in (W1, b1, W2))
        tf = lambda x: torch.tanh(tW2 @ torch.tanh(tW1 @ x + tb1))  # noqa: E731
        tx = torch.tensor(problem.x)
        out["torch.func"] = min(best_time(lambda: jacfwd(tf)(tx), 3), best_time(lambda: jacrev(tf)(tx), 3))
    if importlib.util.find_spec("autograd"):
        import autograd
        import autograd.numpy as anp
        af = lambda x: anp.tanh(W2 @ anp.tanh(W1 @ x + b1))  # noqa: E731
        out["autograd"] = best_time(lambda: autograd.jacobian(af)(problem.x), 3)
    if importlib.util.find_spec("jax"):
        import jax
        import jax.numpy as jnp
        jax.config.update("jax_enable_x64", True)
        jf = lambda x: jnp.tanh(W2 @ jnp.tanh(W1 @ x + b1))  # noqa: E731
        jac = jax.jit(jax.jacfwd(jf) if n <= m else jax.jacrev(jf))
        jx = jnp.asarray(problem.x)
        out["jax jit"] = best_time(lambda: jac(jx).block_until_ready(), 3)
    return out


def p2(sizes):
    rows = []
    for n in sizes:
        for m in sizes:
            problem = tanh_net(n, m)
            t_f = best_time(lambda: problem.f(problem.x))
            t_fwd = best_time(lambda: dualad.jacobian(problem.f, problem.x), 3)
            t_rev = best_time(lambda: reversead.jacobian(problem.f, problem.x), 3)
            faster = "forward" if t_fwd <= t_rev else "reverse"
            picked = choose_mode(n, m)
            row = {"n": n, "m": m, "f": t_f, "forward": t_fwd, "reverse": t_rev,
                   "forward_ratio": t_fwd / t_f, "reverse_ratio": t_rev / t_f,
                   "faster": faster, "picked": picked, "picked_right": picked == faster,
                   "peers": peers_p2(n, m, problem)}
            best_ours = min(t_fwd, t_rev)
            row["beats_peers"] = all(best_ours < t for t in row["peers"].values())
            rows.append(row)
            print(f"P2 n={n:<5} m={m:<5} f {t_f * 1e6:8.1f} us  fwd {t_fwd * 1e3:8.3f} ms "
                  f"({t_fwd / t_f:7.1f}x)  rev {t_rev * 1e3:8.3f} ms ({t_rev / t_f:7.1f}x)  "
                  f"faster {faster:<7} picked {picked:<7} peers "
                  + " ".join(f"{k} {v * 1e3:.3f} ms" for k, v in row["peers"].items()), flush=True)
    right = sum(r["picked_right"] for r in rows)
    print(f"P2: mode='auto' picks the faster mode in {right} of {len(rows)} cells")
    return {"cells": rows, "picked_right": right}


def p4(sizes):
    rows = []
    for n in sizes:
        x = np.random.default_rng(2).standard_normal(n)
        t_f = best_time(lambda: rosenbrock(x))
        row = {"n": n, "f": t_f}
        cases = [("forward gradient", lambda: dualad.gradient(rosenbrock, x)),
                 ("reverse gradient", lambda: reversead.gradient(rosenbrock, x)),
                 ("reverse hessian", lambda: reversead.hessian(rosenbrock, x))]
        if n <= 100:  # forward-over-forward carries n x n nested tangents: O(n^3) work
            cases.insert(2, ("forward hessian", lambda: dualad.hessian(rosenbrock, x)))
        for name, fn in cases:
            t = best_time(fn, 3)
            row[name] = t
            row[name + " ratio"] = t / t_f
            print(f"P4 rosenbrock n={n:<5} {name:<17} {t * 1e3:9.3f} ms  ({t / t_f:8.1f}x f)", flush=True)
        rows.append(row)
    return rows


def p5(steps):
    f = lorenz_rk4(steps)
    s0 = np.array([1.0, 1.0, 1.0])
    t_f = best_time(lambda: f(s0), 3, 0.2)
    t_fwd = best_time(lambda: dualad.jacobian(f, s0), 3, 0.2)
    t_rev = best_time(lambda: reversead.jacobian(f, s0), 3, 0.2)
    print(f"P5 lorenz rk4 {steps} steps: f {t_f * 1e3:.2f} ms, forward {t_fwd * 1e3:.2f} ms "
          f"({t_fwd / t_f:.1f}x), reverse {t_rev * 1e3:.2f} ms ({t_rev / t_f:.1f}x)", flush=True)
    return {"steps": steps, "f": t_f, "forward": t_fwd, "reverse": t_rev,
            "forward_ratio": t_fwd / t_f, "reverse_ratio": t_rev / t_f}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", default=None)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    sizes = (1, 10, 100) if args.quick else (1, 10, 100, 1000)
    result = {"machine": machine(), "P2": p2(sizes), "P4": p4((100,) if args.quick else (100, 1000)),
              "P5": p5(100 if args.quick else 1000)}
    write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
