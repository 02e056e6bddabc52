"""Checkpointing: peak memory O(n) -> O(sqrt n) for a deep residual MLP, and the time it costs.

For n = 25, 50, 100, 200 residual blocks ``h = h + tanh(h @ W + b)`` (width 128,
batch 512, float64; ``--activation relu`` for ReLU blocks) this measures
the tracemalloc peak (above what was allocated before) of one forward + backward
pass, without checkpointing and with ``reversead.checkpoint_sequential`` at
round(sqrt(n)) segments, and the time of both (best of interleaved repeats). The
"act" columns subtract the parameters' gradients (n (d^2 + d) floats, O(n) for any
method) and count the rest in activations (batch x width floats).

Usage: ``python benchmarks/bench_checkpoint.py [--json out.json] [--quick]``
"""
from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import gc  # noqa: E402
import math  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import reversead as rd  # noqa: E402
from dualad.compare import _peak as tracemalloc_peak  # noqa: E402
from common import machine, write_json  # noqa: E402


ACTIVATIONS = {"tanh": np.tanh, "relu": lambda z: np.maximum(z, 0.0)}


def make_model(n, d, batch, seed=0, activation="tanh"):
    rng = np.random.default_rng(seed)
    Ws = [rd.tensor(rng.normal(0, 1 / math.sqrt(d), (d, d)), requires_grad=True) for _ in range(n)]
    bs = [rd.tensor(rng.normal(0, 0.1, d), requires_grad=True) for _ in range(n)]
    act = ACTIVATIONS[activation]
    blocks = [lambda h, W=W, b=b: h + act(h @ W + b) for W, b in zip(Ws, bs)]
    x = rd.tensor(rng.normal(size=(batch, d)))
    return blocks, x, Ws + bs


def plain_step(blocks, x):
    h = x
    for f in blocks:
        h = f(h)
    (h ** 2).mean().backward()


def ckpt_step(blocks, x, segments):
    (rd.checkpoint_sequential(blocks, segments, x) ** 2).mean().backward()


def interleaved_best(a, b, repeats, budget):
    """Best times of ``a`` and ``b``, run alternately (so a burst of load on a shared
    machine hits both), at least ``repeats`` times each or for about ``budget`` seconds."""
    ta = tb = float("inf")
    a(), b()
    start = time.perf_counter()
    k = 0
    while k < repeats or (time.perf_counter() - start < budget and k < 50):
        t0 = time.perf_counter()
        a()
        t1 = time.perf_counter()
        b()
        t2 = time.perf_counter()
        ta, tb = min(ta, t1 - t0), min(tb, t2 - t1)
        k += 1
    return ta, tb


def peak_bytes(run):
    gc.collect()  # (garbage of earlier runs would count against this one)
    return tracemalloc_peak(run)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", help="write the results to this file")
    ap.add_argument("--quick", action="store_true", help="smaller sizes, fewer repeats")
    ap.add_argument("--activation", choices=sorted(ACTIVATIONS), default="tanh",
                    help="block nonlinearity (tanh: NumPy's tanh makes the forward pass cost more than "
                         "the backward, the unfavourable case for recomputation; relu: matmul-bound)")
    args = ap.parse_args(argv)
    d, batch = (64, 256) if args.quick else (128, 512)
    sizes = (25, 50, 100) if args.quick else (25, 50, 100, 200)
    repeats, budget = (3, 0.5) if args.quick else (5, 4.0)
    act_mb = batch * d * 8 / 2**20
    print(f"residual MLP blocks h + {args.activation}(h @ W + b), width {d}, batch {batch} "
          f"(one activation = {act_mb:.3f} MiB), float64, OPENBLAS_NUM_THREADS="
          f"{os.environ.get('OPENBLAS_NUM_THREADS')}")
    print("peak = tracemalloc peak of forward+backward; act = the same minus the parameters' gradients "
          "(n (d^2+d) float64, stored by any method), in activations")
    print(f"{'n':>5} {'segs':>5} {'plain MiB':>10} {'ckpt MiB':>10} {'mem ratio':>9} {'plain act':>9} "
          f"{'ckpt act':>9} {'plain ms':>9} {'ckpt ms':>9} {'time x':>7} {'ok':>3}")
    rows = []
    for n in sizes:
        blocks, x, params = make_model(n, d, batch, activation=args.activation)
        segments = max(1, round(math.sqrt(n)))

        def plain():
            plain_step(blocks, x)
            for p in params:
                p.grad = None

        def ckpt():
            ckpt_step(blocks, x, segments)
            for p in params:
                p.grad = None

        # same gradients
        plain_step(blocks, x)
        ref = [p.grad.copy() for p in params]
        for p in params:
            p.grad = None
        ckpt_step(blocks, x, segments)
        ok = all(np.allclose(p.grad, r, rtol=1e-10, atol=1e-14) for p, r in zip(params, ref))
        for p in params:
            p.grad = None
        mem_plain, mem_ckpt = peak_bytes(plain), peak_bytes(ckpt)
        act, grads = batch * d * 8, n * (d * d + d) * 8
        act_plain, act_ckpt = (mem_plain - grads) / act, (mem_ckpt - grads) / act
        t_plain, t_ckpt = interleaved_best(plain, ckpt, repeats, budget)
        row = {"n": n, "segments": segments, "width": d, "batch": batch,
               "peak_plain_bytes": mem_plain, "peak_ckpt_bytes": mem_ckpt,
               "param_grad_bytes": grads, "activation_bytes": act,
               "peak_plain_activations": act_plain, "peak_ckpt_activations": act_ckpt,
               "mem_ratio": mem_ckpt / mem_plain, "time_plain_s": t_plain, "time_ckpt_s": t_ckpt,
               "time_ratio": t_ckpt / t_plain, "same_gradients": ok}
        rows.append(row)
        print(f"{n:>5} {segments:>5} {mem_plain / 2**20:>10.1f} {mem_ckpt / 2**20:>10.1f} "
              f"{mem_ckpt / mem_plain:>9.3f} {act_plain:>9.1f} {act_ckpt:>9.1f} {t_plain * 1e3:>9.1f} {t_ckpt * 1e3:>9.1f} "
              f"{t_ckpt / t_plain:>7.2f} {'yes' if ok else 'NO':>3}")
    # growth: plain ~ n, checkpointed ~ sqrt(n): fit the log-log slope
    ns = np.log([r["n"] for r in rows])
    slope_plain = float(np.polyfit(ns, np.log([r["peak_plain_bytes"] for r in rows]), 1)[0])
    slope_ckpt = float(np.polyfit(ns, np.log([r["peak_ckpt_bytes"] for r in rows]), 1)[0])
    slope_act_plain = float(np.polyfit(ns, np.log([r["peak_plain_activations"] for r in rows]), 1)[0])
    slope_act_ckpt = float(np.polyfit(ns, np.log([r["peak_ckpt_activations"] for r in rows]), 1)[0])
    worst = max(r["time_ratio"] for r in rows)
    print(f"log-log slope of peak vs n: plain {slope_plain:.2f}, checkpointed {slope_ckpt:.2f} "
          f"(includes the O(n) parameter gradients)")
    print(f"log-log slope of activation memory vs n: plain {slope_act_plain:.2f} (O(n) = 1), "
          f"checkpointed {slope_act_ckpt:.2f} (O(sqrt n) = 0.5)")
    print(f"time ratio checkpointed/plain: worst {worst:.2f} (target <= 1.5: "
          f"{'met' if worst <= 1.5 else 'missed'})")
    write_json(args.json, {"benchmark": "checkpoint", "machine": machine(), "rows": rows,
                           "activation": args.activation,
                           "slope_plain": slope_plain, "slope_ckpt": slope_ckpt,
                           "slope_activations_plain": slope_act_plain,
                           "slope_activations_ckpt": slope_act_ckpt,
                           "worst_time_ratio": worst})
    return rows


if __name__ == "__main__":
    main()
