"""Depth and memory: deep graphs without recursion, graphs freed, no growth over a training loop."""
from __future__ import annotations

import gc
import tracemalloc
import weakref

import numpy as np
import pytest

import reversead as rd
from reversead.graph import Node

N_CHAIN = 100_000


def _is_reversead_object(obj) -> bool:
    return isinstance(obj, (Node, rd.Tensor)) or type(obj).__module__.startswith("reversead")


# -- a 100,000-op chain ------------------------------------------------------------------------
def test_100k_chain_backward_exact_and_freed():
    x = rd.tensor(0.5, requires_grad=True)
    y = x
    for i in range(N_CHAIN // 4):           # four ops per round; d/dx of each round is exactly +1
        y = -y
        y = y * 1.0
        y = -y
        y = y + 0.25
    assert y.item() == 0.5 + 0.25 * (N_CHAIN // 4)
    mid = y
    for _ in range(N_CHAIN // 2):
        mid = mid.grad_fn.edges[0] if isinstance(mid, rd.Tensor) else mid.edges[0]
    mid_ref, last_ref = weakref.ref(mid), weakref.ref(y.grad_fn)
    del mid
    y.backward()                            # iterative engine: no RecursionError
    assert x.grad == 1.0                    # exact
    assert mid_ref() is not None            # y still holds its graph
    del y
    assert last_ref() is None and mid_ref() is None  # freed by refcounting (no cycles), no crash


def test_deep_array_chain_grad_and_retain_graph():
    x = rd.tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = x
    for _ in range(10_000):
        y = y * 1.0
        y = y - 1.0
    out = y.sum()
    (g,) = rd.grad(out, [x], retain_graph=True)
    np.testing.assert_array_equal(g, [1.0, 1.0])
    (g2,) = rd.grad(out, [x])
    np.testing.assert_array_equal(g2, [1.0, 1.0])


def test_deleting_100k_deep_graph_without_backward():
    x = rd.tensor(1.0, requires_grad=True)
    y = x
    for _ in range(N_CHAIN):
        y = y * 1.0
    ref = weakref.ref(y.grad_fn)
    del y                                   # a 100k-deep chain of nodes: must not overflow the C stack
    assert ref() is None
    assert x.grad is None


# -- a graph is freed after backward -----------------------------------------------------------
def test_graph_nodes_die_when_output_is_deleted():
    x = rd.tensor(np.ones(3), requires_grad=True)
    h = np.tanh(x * 2.0)
    out = np.sum(h * h)
    refs = [weakref.ref(out.grad_fn), weakref.ref(h.grad_fn)]
    out.backward()
    del h, out
    assert all(r() is None for r in refs)


def test_backward_releases_saved_values():
    rng = np.random.default_rng(0)
    x = rd.tensor(rng.standard_normal((400, 400)), requires_grad=True)
    nbytes = x.data.nbytes
    tracemalloc.start()
    try:
        loss = np.sum(np.sin(x) * np.cos(x))   # the tape saves sin(x) and cos(x): 2 arrays
        recorded = tracemalloc.get_traced_memory()[0]
        loss.backward()                         # frees them (retain_graph=False); x.grad is 1 array
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert loss.grad_fn is not None            # the output is still alive ...
    assert after - recorded < 0.5 * nbytes, (recorded, after, nbytes)  # ... but its saved values are gone


def test_retain_graph_keeps_then_last_backward_frees():
    x = rd.tensor(np.ones(3), requires_grad=True)
    out = np.sum(np.exp(x))
    out.backward(retain_graph=True)
    out.backward()
    np.testing.assert_allclose(x.grad, 2 * np.e)
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        out.backward()


# -- training loop: no growth, no cycles ---------------------------------------------------------
def _make_problem(seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((16, 4))
    Y = np.sin(X @ np.array([1.0, -1.0, 0.5, 0.25]))[:, None]
    params = [rd.tensor(rng.standard_normal((8, 4)) * 0.5, requires_grad=True),
              rd.tensor(np.zeros(8), requires_grad=True),
              rd.tensor(rng.standard_normal((1, 8)) * 0.5, requires_grad=True),
              rd.tensor(np.zeros(1), requires_grad=True)]
    return X, Y, params


def _step(X, Y, params, lr=0.05, refs=None):
    W1, b1, W2, b2 = params
    h = np.tanh(X @ W1.T + b1)
    pred = h @ W2.T + b2
    loss = np.mean((pred - Y) ** 2)
    if refs is not None:
        refs.extend(weakref.ref(t.grad_fn) for t in (h, pred, loss))
    for p in params:
        p.grad = None
    loss.backward()
    with rd.no_grad():
        for p in params:
            p -= lr * p.grad
    return loss.item()


def test_training_loop_1000_steps_memory_stable():
    X, Y, params = _make_problem()
    losses = [_step(X, Y, params) for _ in range(50)]          # warm up caches, kernels
    tracemalloc.start()
    try:
        for _ in range(100):
            losses.append(_step(X, Y, params))
        gc.collect()   # (a full collection also empties the interpreter's free lists)
        base_current, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        for _ in range(850):
            losses.append(_step(X, Y, params))
        _, peak = tracemalloc.get_traced_memory()
        gc.collect()
        current, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(losses) == 1000
    assert losses[-1] < 0.5 * losses[0]                        # it trains
    # a leaked tape (or saved activations) would be several KiB per step, i.e. MiBs here
    assert current - base_current < 64 * 1024, (base_current, current)   # no growth
    assert peak - base_current < 1024 * 1024, (base_current, peak)       # one step's tape at most
    for p in params:
        assert p.is_leaf and p.grad_fn is None and p.requires_grad


def test_training_step_graph_freed_by_refcounting_alone():
    X, Y, params = _make_problem(1)
    was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        for _ in range(20):
            refs = []
            _step(X, Y, params, refs=refs)
            assert refs and all(r() is None for r in refs)       # died at once: no cycles
        refs = []
        x = rd.tensor(np.ones(3), requires_grad=True)
        y = x * 2.0
        y.retain_grad()                                          # retain_grad must not create a cycle
        y.register_hook(lambda g: g)
        out = (y * y).sum()
        refs.append(weakref.ref(y.grad_fn))
        out.backward(create_graph=True)                          # nor create_graph (x.grad is a Tensor)
        refs.append(weakref.ref(x.grad.grad_fn))
        del y, out
        x.grad = None
        assert all(r() is None for r in refs)
    finally:
        if was_enabled:
            gc.enable()


def test_gc_finds_no_reversead_objects_in_cycles():
    X, Y, params = _make_problem(2)

    def work():
        for _ in range(30):
            _step(X, Y, params)
        x = rd.tensor(2.0, requires_grad=True)
        (g,) = rd.grad(x ** 3, [x], create_graph=True)
        rd.grad(g, [x])
        # (not backward(create_graph=True): as in PyTorch, x.grad's graph then references x, a
        # cycle until x.grad is reset; test_training_step_graph_freed_by_refcounting_alone does that)
        rd.jacobian(lambda v: np.tanh(v) * v[::-1], np.ones(3))
        rd.hessian(lambda v: np.sum(v ** 3), np.ones(2))
        rd.hvp(lambda v: np.sum(np.sin(v)), np.ones(2), np.ones(2))

    work()                      # warm up: compile kernels, fill caches (those may create cycles)
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        work()
        gc.collect()
        garbage = list(gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    cyclic = [o for o in garbage if _is_reversead_object(o)]
    assert not cyclic, f"{len(cyclic)} reversead objects were only freed by the cycle collector: {cyclic[:5]}"
    assert not garbage, f"{len(garbage)} objects in reference cycles, e.g. {[type(o) for o in garbage[:10]]}"
