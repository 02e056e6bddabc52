"""Benchmarks of ``reversead`` (issue 3, "Speed and memory"): ratios measured side by side.

Run ``python benchmarks/bench_reverse.py [--json out.json] [--quick]``. Every time is the
minimum over repeats, and every ratio compares two costs measured in this one process.

1. MLP 784-256-256-10, tanh, batch 128, softmax cross-entropy written in plain NumPy
   (``logits - logsumexp`` via np.max/np.exp/np.log/np.sum; and again with the
   ``logsumexp`` primitive, as PyTorch users call ``F.cross_entropy``), float64 and float32:
   ``cost(loss and gradient by reversead) / cost(loss)`` against the same ratio of a
   hand-written NumPy backprop (target: <= 1.1x), in 20 interleaved rounds. The reversead
   step is a training step's differentiation (parameters kept as Tensors, ``.grad`` reset,
   forward, ``backward()``);
   ``rd.gradient(loss, params)`` is timed beside it, and so is a floor: the same step on
   ``minimal_tape.py``, the leanest closure tape in Python (no version counters, hooks or
   checks), which shows what any Python tape pays per op on this machine. Memory
   (tracemalloc): what the tape holds after the forward pass against the bytes of the activations the hand-written
   backprop keeps for its backward pass (h1, h2 and the softmax probabilities; target:
   <= 1.5x), and the peak of a whole step against the hand-written backprop's peak.
2. Scalar tape overhead: a chain of 10,000 scalar ops (*, +, sin), record and backward
   in microseconds per op (target: <= 5 us in total; PyTorch 4.0 + 6.5 us).
3. A 100,000-op chain: record + backward in seconds (target: <= 1 s).
4. ``jacobian`` of an R^100 -> R^100 network ``tanh(W2 tanh(W1 x + b1) + b2)``: one batched
   backward against 100 separate ``vjp`` calls (target: >= 3x faster).
5. Unbroadcast sums (issue 3, "Kernels"): a linear-regression step ``mean((X @ W + b - Y)**2)``
   with X of 4096 x 16 and 2 outputs, whose bias gradient sums (4096, 2) -> (2,), with the
   Numba backend against the NumPy backend (no target; the loops' reason to exist).
"""
from __future__ import annotations

import argparse
import gc
import json
import os
# one BLAS thread unless told otherwise: on shared 2-core machines multi-threaded
# OpenBLAS made small products up to 40x slower and the figures unrepeatable
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
import sys
import time
import tracemalloc

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import minimal_tape  # noqa: E402
import reversead as rd  # noqa: E402
from common import best_of as best  # noqa: E402
from dualad import logsumexp  # noqa: E402


# -- 1. MLP ---------------------------------------------------------------------------
def mlp_problem(dtype, batch=128, sizes=(784, 256, 256, 10), seed=0):
    rng = np.random.default_rng(seed)
    params = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        params.append((rng.standard_normal((n_in, n_out)) / np.sqrt(n_in)).astype(dtype))
        params.append(np.zeros(n_out, dtype=dtype))
    x = rng.standard_normal((batch, sizes[0])).astype(dtype)
    labels = rng.integers(0, sizes[-1], batch)
    y = np.zeros((batch, sizes[-1]), dtype=dtype)
    y[np.arange(batch), labels] = 1
    return tuple(params), x, y


def make_loss(x, y, fused=False):
    """The loss as a user writes it in plain NumPy (works on arrays and on Tensors).

    ``fused``: the log-softmax through the library's ``logsumexp`` primitive (what a
    PyTorch user gets from ``F.cross_entropy``/``torch.logsumexp``) instead of
    max/subtract/exp/sum/log written out.
    """
    batch = x.shape[0]

    def loss(W1, b1, W2, b2, W3, b3):
        h1 = np.tanh(x @ W1 + b1)
        h2 = np.tanh(h1 @ W2 + b2)
        logits = h2 @ W3 + b3
        if fused:
            logp = logits - logsumexp(logits, axis=1, keepdims=True)
        else:
            z = logits - np.max(logits, axis=1, keepdims=True)
            logp = z - np.log(np.sum(np.exp(z), axis=1, keepdims=True))
        return -np.sum(logp * y) / batch
    return loss


def make_backprop(x, y):
    """Hand-written NumPy backprop: loss and gradients; keeps h1, h2 and p for backward."""
    batch = x.shape[0]

    def loss_and_grad(W1, b1, W2, b2, W3, b3):
        h1 = np.tanh(x @ W1 + b1)
        h2 = np.tanh(h1 @ W2 + b2)
        logits = h2 @ W3 + b3
        z = logits - np.max(logits, axis=1, keepdims=True)
        e = np.exp(z)
        p = e / np.sum(e, axis=1, keepdims=True)
        loss = -np.sum(np.log(p[y.astype(bool)])) / batch
        d3 = (p - y) / batch
        gW3, gb3 = h2.T @ d3, d3.sum(0)
        d2 = (d3 @ W3.T) * (1 - h2 * h2)
        gW2, gb2 = h1.T @ d2, d2.sum(0)
        d1 = (d2 @ W2.T) * (1 - h1 * h1)
        gW1, gb1 = x.T @ d1, d1.sum(0)
        return loss, (gW1, gb1, gW2, gb2, gW3, gb3)
    return loss_and_grad


def make_reverse_step(loss, params):
    """One training step's differentiation, as a user writes it: parameters live as Tensors."""
    tensors = [rd.Tensor(p, requires_grad=True) for p in params]

    def step():
        for t in tensors:
            t.grad = None
        out = loss(*tensors)
        out.backward()
        return out.data, tuple(t.grad for t in tensors)
    return step


def bench_mlp(dtype, repeat):
    params, x, y = mlp_problem(dtype)
    loss = make_loss(x, y)
    backprop = make_backprop(x, y)
    # correctness first: the same gradients
    ref_loss, ref_grads = backprop(*params)
    reverse_step = make_reverse_step(loss, params)
    val, grads = reverse_step()
    tol = 1e-4 if dtype == np.float32 else 1e-10
    err = max(float(np.max(np.abs(a - b))) for a, b in zip(grads, ref_grads))
    assert err < tol, f"reversead and hand-written backprop disagree by {err}"
    assert all(g.dtype == dtype for g in grads), "float32 must stay float32"
    assert abs(float(val) - float(ref_loss)) < tol * 10

    # the same loss with the log-softmax through the logsumexp primitive (one node, not six)
    fused_loss = make_loss(x, y, fused=True)
    fused_step = make_reverse_step(fused_loss, params)
    _, fused_grads = fused_step()
    err_fused = max(float(np.max(np.abs(a - b))) for a, b in zip(fused_grads, ref_grads))
    assert err_fused < tol, f"fused loss and hand-written backprop disagree by {err_fused}"

    # the floor: the leanest Python tape (closures, none of a real tape's guarantees)
    minimal_step = minimal_tape.make_step(loss, params)
    err_min = max(float(np.max(np.abs(a - b))) for a, b in zip(minimal_step()[1], ref_grads))
    assert err_min < tol, f"minimal tape and hand-written backprop disagree by {err_min}"

    t_loss, t_hand, t_rev, t_fun, t_lossf, t_revf, t_min = [], [], [], [], [], [], []
    for _ in range(repeat):  # interleaved, so drifts in machine speed hit all of them alike
        t_loss.append(best(lambda: loss(*params), repeat=3, number=5))
        t_hand.append(best(lambda: backprop(*params), repeat=3, number=5))
        t_rev.append(best(reverse_step, repeat=3, number=5))
        t_fun.append(best(lambda: rd.gradient(loss, params), repeat=3, number=5))
        t_lossf.append(best(lambda: fused_loss(*params), repeat=3, number=5))
        t_revf.append(best(fused_step, repeat=3, number=5))
        t_min.append(best(minimal_step, repeat=3, number=5))
    # the target compares t_rev/t_loss with t_hand/t_loss, i.e. t_rev with t_hand: besides the
    # ratio of the minima, the median of the ratios of each round's back-to-back timings
    # (robust to this VM's speed changing between rounds)
    paired = float(np.median(np.array(t_rev) / np.array(t_hand)))
    paired_fused = float(np.median(np.array(t_revf) / np.array(t_hand)))
    paired_min = float(np.median(np.array(t_min) / np.array(t_hand)))
    t_loss, t_hand, t_rev, t_fun = min(t_loss), min(t_hand), min(t_rev), min(t_fun)
    t_lossf, t_revf, t_min = min(t_lossf), min(t_revf), min(t_min)
    hand_ratio, rev_ratio = t_hand / t_loss, t_rev / t_loss

    # memory: what the tape holds after the forward pass vs. the hand-written backprop's activations
    batch, widths = x.shape[0], (256, 256, 10)
    saved = sum(batch * w for w in widths) * np.dtype(dtype).itemsize  # h1, h2, p
    tensors = [rd.Tensor(p, requires_grad=True) for p in params]
    gc.collect()
    tracemalloc.start()
    loss(*params)  # warm caches
    base = tracemalloc.get_traced_memory()[0]
    out = loss(*tensors)
    held = tracemalloc.get_traced_memory()[0] - base  # what the tape keeps for backward
    out.backward()
    del out
    for t in tensors:
        t.grad = None
    gc.collect()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    reverse_step()
    rev_peak = tracemalloc.get_traced_memory()[1] - base
    gc.collect()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    backprop(*params)
    hand_peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    return {
        "dtype": np.dtype(dtype).name,
        "loss_ms": t_loss * 1e3, "handwritten_ms": t_hand * 1e3, "reversead_ms": t_rev * 1e3,
        "handwritten_ratio": hand_ratio, "reversead_ratio": rev_ratio,
        "ratio_vs_handwritten": rev_ratio / hand_ratio,
        "target_time_met": rev_ratio <= 1.1 * hand_ratio,
        "functional_gradient_ms": t_fun * 1e3, "functional_gradient_ratio": t_fun / t_loss,
        "paired_median_vs_handwritten": paired, "fused_paired_median_vs_handwritten": paired_fused,
        "fused_loss_ms": t_lossf * 1e3, "fused_reversead_ms": t_revf * 1e3,
        "fused_reversead_ratio": t_revf / t_lossf,
        "fused_ratio_vs_handwritten": t_revf / t_lossf / hand_ratio,
        "fused_target_time_met": t_revf / t_lossf <= 1.1 * hand_ratio,
        "minimal_tape_ms": t_min * 1e3, "minimal_tape_vs_handwritten": t_min / t_hand,
        "minimal_tape_paired_median_vs_handwritten": paired_min,
        "saved_activation_bytes": saved, "tape_held_bytes": held,
        "tape_held_over_saved": held / saved,
        "target_memory_met": held <= 1.5 * saved,
        "step_peak_bytes": rev_peak, "handwritten_peak_bytes": hand_peak,
        "step_peak_over_handwritten": rev_peak / hand_peak,
        "max_grad_error": err,
    }


# -- 2./3. scalar chains --------------------------------------------------------------
def chain(n):
    """``n`` scalar ops cycling through *, +, sin on a 0-d tensor; returns record and backward times."""
    x = rd.tensor(0.5, requires_grad=True)
    c0 = time.process_time()
    t0 = time.perf_counter()
    y = x
    for i in range(n):
        k = i % 3
        if k == 0:
            y = y * 1.0000001
        elif k == 1:
            y = y + 0.0
        else:
            y = np.sin(y)
    t1, c1 = time.perf_counter(), time.process_time()
    y.backward()
    t2, c2 = time.perf_counter(), time.process_time()
    # check against the exact derivative of the same chain in plain floats
    v, d = 0.5, 1.0
    for i in range(n):
        k = i % 3
        if k == 0:
            v, d = v * 1.0000001, d * 1.0000001
        elif k == 2:
            v, d = np.sin(v), d * np.cos(v)
    assert abs(float(x.grad) - d) <= 1e-9 * abs(d) + 1e-300, (float(x.grad), d)
    return t1 - t0, t2 - t1, c1 - c0, c2 - c1


def bench_chain(n, repeat):
    chain(min(n, 1000))  # warm-up
    rec, bwd, tot, cpu_rec, cpu_bwd = [], [], [], [], []
    for _ in range(repeat):
        gc.collect()
        r, b, cr, cb = chain(n)
        rec.append(r)
        bwd.append(b)
        tot.append(r + b)
        cpu_rec.append(cr)
        cpu_bwd.append(cb)
    return {"ops": n, "record_s": min(rec), "backward_s": min(bwd), "total_s": min(tot),
            "record_us_per_op": min(rec) / n * 1e6, "backward_us_per_op": min(bwd) / n * 1e6,
            "total_us_per_op": min(tot) / n * 1e6,
            # CPU time of this process: the same cost without the time other processes take
            "cpu_record_us_per_op": min(cpu_rec) / n * 1e6, "cpu_backward_us_per_op": min(cpu_bwd) / n * 1e6}


# -- 4. jacobian ----------------------------------------------------------------------
def bench_jacobian(repeat, n=100, hidden=100, m=100):
    rng = np.random.default_rng(1)
    W1 = rng.standard_normal((hidden, n)) / np.sqrt(n)
    b1 = rng.standard_normal(hidden)
    W2 = rng.standard_normal((m, hidden)) / np.sqrt(hidden)
    b2 = rng.standard_normal(m)
    x = rng.standard_normal(n)

    def f(v):
        return np.tanh(W2 @ np.tanh(W1 @ v + b1) + b2)

    eye = np.eye(m)

    def rows():
        return np.stack([rd.vjp(f, x, eye[i])[1] for i in range(m)])

    J = rd.jacobian(f, x)
    assert np.allclose(J, rows(), atol=1e-12)
    t_batched = best(lambda: rd.jacobian(f, x), repeat=repeat * 3)
    t_rows = best(rows, repeat=repeat)
    return {"n": n, "m": m, "hidden": hidden, "batched_ms": t_batched * 1e3, "rows_ms": t_rows * 1e3,
            "speedup": t_rows / t_batched, "target_met": t_rows / t_batched >= 3}


# -- 5. unbroadcast sums -------------------------------------------------------------
def bench_unbroadcast(repeat, batch=4096, n_in=16, n_out=2):
    from dualad import kernels

    rng = np.random.default_rng(2)
    X, Y = rng.standard_normal((batch, n_in)), rng.standard_normal((batch, n_out))
    W = rd.tensor(rng.standard_normal((n_in, n_out)), requires_grad=True)
    b = rd.tensor(np.zeros(n_out), requires_grad=True)

    def step():
        W.grad = b.grad = None
        r = X @ W + b - Y
        np.mean(r * r).backward()
        return b.grad

    def with_backend(name):
        def run():
            kernels.BACKEND = name
            return step()
        return run
    previous = kernels.BACKEND
    try:
        numba_step, numpy_step = with_backend("numba"), with_backend("numpy")
        assert np.array_equal(numba_step(), numpy_step()), "the loops must give NumPy's sums"
        t_numba, t_numpy = [], []
        for _ in range(repeat):  # interleaved
            t_numba.append(best(numba_step, repeat=3, number=20))
            t_numpy.append(best(numpy_step, repeat=3, number=20))
    finally:
        kernels.BACKEND = previous
    return {"batch": batch, "n_in": n_in, "n_out": n_out, "numba_us": min(t_numba) * 1e6,
            "numpy_us": min(t_numpy) * 1e6, "speedup": min(t_numpy) / min(t_numba)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="write the results to this file")
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--only", choices=["mlp", "chain", "chain100k", "jacobian", "unbroadcast"],
                        action="append")
    args = parser.parse_args(argv)
    repeat = 2 if args.quick else 5
    only = set(args.only or ["mlp", "chain", "chain100k", "jacobian", "unbroadcast"])
    results = {}
    if "mlp" in only:
        for dtype in (np.float64, np.float32):
            # 4x the rounds of the other sections: one round's figures move by 5-15 % on
            # these VMs, as much as the gap the target is about
            r = bench_mlp(dtype, 4 * repeat)
            results[f"mlp_{r['dtype']}"] = r
            print(f"MLP {r['dtype']}: loss {r['loss_ms']:.3f} ms | hand-written backprop "
                  f"{r['handwritten_ms']:.3f} ms ({r['handwritten_ratio']:.2f}x) | reversead "
                  f"{r['reversead_ms']:.3f} ms ({r['reversead_ratio']:.2f}x) -> "
                  f"{r['ratio_vs_handwritten']:.3f} of hand-written (target <= 1.1: "
                  f"{'met' if r['target_time_met'] else 'NOT met'}); median of paired rounds "
                  f"{r['paired_median_vs_handwritten']:.3f}")
            print(f"    with logsumexp (one primitive): loss {r['fused_loss_ms']:.3f} ms | reversead "
                  f"{r['fused_reversead_ms']:.3f} ms ({r['fused_reversead_ratio']:.2f}x) -> "
                  f"{r['fused_ratio_vs_handwritten']:.3f} of hand-written (target <= 1.1: "
                  f"{'met' if r['fused_target_time_met'] else 'NOT met'}); median of paired rounds "
                  f"{r['fused_paired_median_vs_handwritten']:.3f}")
            print(f"    floor, the minimal closure tape (benchmarks/minimal_tape.py): "
                  f"{r['minimal_tape_ms']:.3f} ms -> {r['minimal_tape_vs_handwritten']:.3f} of "
                  f"hand-written; median of paired rounds "
                  f"{r['minimal_tape_paired_median_vs_handwritten']:.3f}")
            print(f"    rd.gradient(loss, params) {r['functional_gradient_ms']:.3f} ms "
                  f"({r['functional_gradient_ratio']:.2f}x)")
            print(f"    tape holds {r['tape_held_bytes'] / 1e3:.0f} kB = {r['tape_held_over_saved']:.2f}x the "
                  f"saved activations ({r['saved_activation_bytes'] / 1e3:.0f} kB) (target <= 1.5: "
                  f"{'met' if r['target_memory_met'] else 'NOT met'}); peak of a step "
                  f"{r['step_peak_bytes'] / 1e3:.0f} kB = {r['step_peak_over_handwritten']:.2f}x the "
                  "hand-written backprop's")
    if "chain" in only:
        r = results["chain_10k"] = bench_chain(10_000, repeat)
        print(f"scalar chain 10,000 ops: record {r['record_us_per_op']:.2f} us/op + backward "
              f"{r['backward_us_per_op']:.2f} us/op = {r['total_us_per_op']:.2f} us/op (target <= 5: "
              f"{'met' if r['total_us_per_op'] <= 5 else 'NOT met'}); CPU time "
              f"{r['cpu_record_us_per_op']:.2f} + {r['cpu_backward_us_per_op']:.2f} us/op")
    if "chain100k" in only:
        r = results["chain_100k"] = bench_chain(100_000, max(1, repeat // 2))
        print(f"chain 100,000 ops: record {r['record_s']:.3f} s + backward {r['backward_s']:.3f} s = "
              f"{r['total_s']:.3f} s (target <= 1 s: {'met' if r['total_s'] <= 1 else 'NOT met'}); CPU "
              f"time {(r['cpu_record_us_per_op'] + r['cpu_backward_us_per_op']) * r['ops'] / 1e6:.3f} s")
    if "jacobian" in only:
        r = results["jacobian"] = bench_jacobian(repeat)
        print(f"jacobian R^{r['n']} -> R^{r['m']}: batched {r['batched_ms']:.2f} ms, {r['m']} vjp rows "
              f"{r['rows_ms']:.2f} ms -> {r['speedup']:.1f}x (target >= 3: "
              f"{'met' if r['target_met'] else 'NOT met'})")
    if "unbroadcast" in only:
        r = results["unbroadcast"] = bench_unbroadcast(repeat)
        print(f"regression step {r['batch']}x{r['n_in']} -> {r['n_out']} (bias sum ({r['batch']}, "
              f"{r['n_out']}) -> ({r['n_out']},)): Numba backend {r['numba_us']:.0f} us, NumPy backend "
              f"{r['numpy_us']:.0f} us -> {r['speedup']:.2f}x")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2, default=float)
    return results


if __name__ == "__main__":
    main()
