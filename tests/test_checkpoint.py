"""Gradient checkpointing: same gradients as without it, clear errors, bounded memory."""
from __future__ import annotations

import gc

import numpy as np
import pytest

import reversead as rd
from dualad.compare import _peak as tracemalloc_peak
from reversead.checkpoint import CheckpointError


def _params(n, d, seed=0):
    rng = np.random.default_rng(seed)
    Ws = [rd.tensor(rng.normal(0, 0.3, (d, d)), requires_grad=True) for _ in range(n)]
    bs = [rd.tensor(rng.normal(0, 0.1, d), requires_grad=True) for _ in range(n)]
    return Ws, bs


def _grads(ts):
    out = [None if t.grad is None else np.array(t.grad) for t in ts]
    for t in ts:
        t.grad = None
    return out


def _assert_same(a, b, rtol=1e-12, atol=1e-14):
    assert len(a) == len(b)
    for ga, gb in zip(a, b):
        if ga is None or gb is None:
            assert ga is None and gb is None
        else:
            np.testing.assert_allclose(ga, gb, rtol=rtol, atol=atol)


# -- identical gradients -----------------------------------------------------------------------
def test_mlp_block_same_gradients():
    Ws, bs = _params(2, 5)

    def mlp(h):
        h = np.tanh(h @ Ws[0] + bs[0])
        return np.sin(h @ Ws[1] + bs[1])

    x = rd.tensor(np.random.default_rng(1).normal(size=(4, 5)), requires_grad=True)
    leaves = [x, *Ws, *bs]
    (mlp(x) ** 2).sum().backward()
    plain = _grads(leaves)
    y = rd.checkpoint(mlp, x)
    assert type(y.grad_fn).__name__ == "CheckpointBackward"
    (y ** 2).sum().backward()
    _assert_same(plain, _grads(leaves))


@pytest.mark.parametrize("segments", [1, 3, 4, 12, None])
def test_residual_chain_checkpoint_sequential(segments):
    Ws, bs = _params(12, 6)
    blocks = [lambda h, W=W, b=b: h + np.tanh(h @ W + b) for W, b in zip(Ws, bs)]
    x = rd.tensor(np.random.default_rng(2).normal(size=(3, 6)))   # data: no grad wanted
    leaves = [*Ws, *bs]

    def plain(h):
        for f in blocks:
            h = f(h)
        return h

    plain(x).mean().backward()
    expected = _grads(leaves)
    out = rd.checkpoint_sequential(blocks, segments, x)
    np.testing.assert_allclose(out.data, plain(x).data)
    out.mean().backward()
    _assert_same(expected, _grads(leaves))


def test_grad_api_wrt_closure_parameters_and_inputs():
    Ws, bs = _params(6, 4)
    blocks = [lambda h, W=W, b=b: h + np.tanh(h @ W + b) for W, b in zip(Ws, bs)]
    x = rd.tensor(np.ones((2, 4)), requires_grad=True)
    wanted = [x, Ws[0], bs[3], Ws[5]]

    def run(h):
        for f in blocks:
            h = f(h)
        return (h ** 2).sum()

    expected = rd.grad(run(x), wanted)
    got = rd.grad((rd.checkpoint_sequential(blocks, 3, x) ** 2).sum(), wanted)
    _assert_same(expected, got)
    assert all(t.grad is None for t in wanted)            # grad() leaves .grad alone


def test_multiple_inputs_outputs_and_non_tensor_args():
    rng = np.random.default_rng(3)
    a = rd.tensor(rng.normal(size=(3, 2)), requires_grad=True)
    b = rd.tensor(rng.normal(size=(2,)), requires_grad=True)
    c = rd.tensor(rng.normal(size=(3, 2)))                         # does not require grad
    w = rd.tensor(rng.normal(size=(2,)), requires_grad=True)       # keyword Tensor

    def f(a, b, c, power, mode, *, w):
        u = np.exp(a * b) + c ** power
        v = np.sum(u * w, axis=1) if mode == "sum" else np.max(u, axis=1)
        return u, v, mode

    def loss(u, v):
        return (u * 2).sum() + (v ** 3).sum()

    u, v, _ = f(a, b, c, 2, "sum", w=w)
    loss(u, v).backward()
    expected = _grads([a, b, w])
    u2, v2, m = rd.checkpoint(f, a, b, c, 2, "sum", w=w)
    assert m == "sum" and c.grad is None
    assert type(u2.grad_fn).__name__ == "CheckpointOutputBackward"
    np.testing.assert_allclose(v2.data, v.data)
    loss(u2, v2).backward()
    _assert_same(expected, _grads([a, b, w]))
    # only one of the outputs used
    (f(a, b, c, 2, "sum", w=w)[1] ** 2).sum().backward()
    expected = _grads([a, b, w])
    _, v3, _ = rd.checkpoint(f, a, b, c, 2, "sum", w=w)
    (v3 ** 2).sum().backward()
    _assert_same(expected, _grads([a, b, w]))


def test_used_twice_in_a_graph_and_nested_in_a_larger_graph():
    Ws, bs = _params(1, 3)

    def f(h):
        return np.tanh(h @ Ws[0] + bs[0])

    x = rd.tensor(np.linspace(-1, 1, 6).reshape(2, 3), requires_grad=True)
    leaves = [x, *Ws, *bs]

    def model(x, ck):
        h0 = x * 1.5 - 0.2                      # outer graph before
        h1 = ck(f, h0)
        h2 = ck(f, h1) + ck(f, h0)              # same fn twice, one output consumed twice
        return (h2 * h1).sum() + np.sin(h1).mean()

    model(x, lambda g, *a: g(*a)).backward()
    expected = _grads(leaves)
    model(x, rd.checkpoint).backward()
    _assert_same(expected, _grads(leaves))


def test_output_that_is_an_input_and_nested_checkpoints():
    x = rd.tensor(np.array([0.3, -0.7, 1.1]), requires_grad=True)

    def ident_and_sq(t):
        return t, t ** 2

    def outer(t):
        a, b = rd.checkpoint(ident_and_sq, t)
        return rd.checkpoint(np.sin, a * b) + a

    (outer(x) ** 2).sum().backward()
    expected = _grads([x])
    (rd.checkpoint(outer, x) ** 2).sum().backward()
    _assert_same(expected, _grads([x]))


def test_jacobian_batched_cotangents_and_float32():
    W = rd.tensor(np.arange(9.0).reshape(3, 3) / 10, requires_grad=True)

    def f(x):
        return np.tanh(x @ W) * x

    x0 = np.array([0.2, -0.4, 0.9])
    np.testing.assert_allclose(rd.jacobian(lambda x: rd.checkpoint(f, x), x0), rd.jacobian(f, x0),
                               rtol=1e-12)
    x32 = rd.tensor(x0.astype(np.float32), requires_grad=True)
    y = rd.checkpoint(f, x32 * np.float32(1.0))
    y.sum().backward()
    assert x32.grad.dtype == np.float32


def test_create_graph_second_derivatives():
    def f(x, k):
        return np.sin(x) * x ** k

    x = rd.tensor(np.array([0.5, 1.5, -0.25]), requires_grad=True)
    (g1,) = rd.grad(f(x, 3).sum(), [x], create_graph=True)
    (h1,) = rd.grad((g1 ** 2).sum(), [x])
    (g2,) = rd.grad(rd.checkpoint(f, x, 3).sum(), [x], create_graph=True)
    assert isinstance(g2, rd.Tensor) and g2.requires_grad
    (h2,) = rd.grad((g2 ** 2).sum(), [x])
    np.testing.assert_allclose(g2.data, g1.data, rtol=1e-12)
    np.testing.assert_allclose(h2, h1, rtol=1e-12)
    # backward(create_graph=True) through checkpoint_sequential, then the Hessian-vector product
    W = rd.tensor(np.array([[0.3, -0.2], [0.1, 0.4]]), requires_grad=True)
    blocks = [lambda h: h + np.tanh(h @ W)] * 4
    xs = rd.tensor(np.array([[1.0, -1.0]]), requires_grad=True)
    results = []
    for run in (lambda: blocks[3](blocks[2](blocks[1](blocks[0](xs)))),
                lambda: rd.checkpoint_sequential(blocks, 2, xs)):
        (gw,) = rd.grad(run().sum(), [W], create_graph=True)
        hv = rd.grad((gw * gw).sum(), [xs, W])
        results.append([gw.data, *hv])
    _assert_same(results[0], results[1], rtol=1e-11)


def test_retain_graph_and_freed_graph_error():
    x = rd.tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = rd.checkpoint(lambda t: np.exp(t) * t, x).sum()
    y.backward(retain_graph=True)
    first = x.grad.copy()
    y.backward()                                   # recomputes again
    np.testing.assert_allclose(x.grad, 2 * first)
    with pytest.raises(rd.BackwardError, match="second time"):
        y.backward()


# -- errors, not wrong answers -----------------------------------------------------------------
def test_side_effect_changing_shape_is_detected():
    calls = []

    def leaky(x):
        calls.append(1)
        return np.tanh(x[: len(calls)])            # a different shape on each call

    x = rd.tensor(np.ones(4), requires_grad=True)
    y = rd.checkpoint(leaky, x)
    with pytest.raises(CheckpointError) as err:
        y.sum().backward()
    msg = str(err.value)
    assert "leaky" in msg and "shape=(1,)" in msg and "shape=(2,)" in msg
    assert isinstance(err.value, rd.BackwardError)


def test_side_effect_changing_dtype_or_structure_is_detected():
    state = {"n": 0}

    def flips(x):
        state["n"] += 1
        return x * np.float32(2.0) if state["n"] == 1 else x * np.full(3, 2.0)   # float32, then 64

    def grows(x):
        state["n"] += 1
        return (x * 1.0,) if state["n"] % 2 else (x * 1.0, x * 2.0)

    x = rd.tensor(np.ones(3, dtype=np.float32), requires_grad=True)
    with pytest.raises(CheckpointError, match="float32.*float64"):
        rd.checkpoint(flips, x).sum().backward()
    state["n"] = 0
    with pytest.raises(CheckpointError, match="tuple of 1.*tuple of 2"):
        rd.checkpoint(grows, x)[0].sum().backward()


def test_changed_dependencies_are_detected():
    W1 = rd.tensor(np.ones((2, 2)), requires_grad=True)
    W2 = rd.tensor(np.ones((2, 2)), requires_grad=True)
    which = [W1]

    def f(x):
        return x @ which[0]

    y = rd.checkpoint(f, rd.tensor(np.ones(2)))
    which[0] = W2
    with pytest.raises(CheckpointError, match="depends on different tensors"):
        y.sum().backward()


def test_inplace_modified_input_is_detected():
    x = rd.tensor(np.array([1.0, 2.0]), requires_grad=True)
    h = x * 1.0
    y = rd.checkpoint(lambda t: t * t, h).sum()
    h += 1.0
    with pytest.raises(CheckpointError, match="modified by an inplace operation"):
        y.backward()


def test_check_values_catches_changed_values():
    state = {"k": 1.0}

    def f(x):
        return x * state["k"]

    x = rd.tensor(np.ones(2), requires_grad=True)
    y = rd.checkpoint(f, x, check_values=True)
    state["k"] = 2.0
    with pytest.raises(CheckpointError, match="different values"):
        y.sum().backward()


def test_bad_outputs():
    x = rd.tensor(1.0, requires_grad=True)
    with pytest.raises(TypeError, match="must return a Tensor"):
        rd.checkpoint(lambda t: 3.0, x)
    with pytest.raises(ValueError, match="segments"):
        rd.checkpoint_sequential([np.sin], 0, x)


# -- grad modes, RNG ---------------------------------------------------------------------------
def test_no_grad_usage():
    x = rd.tensor(np.ones(3), requires_grad=True)
    with rd.no_grad():
        y = rd.checkpoint(np.sin, x)
        z = rd.checkpoint_sequential([np.sin, np.cos], 2, x)
    assert not y.requires_grad and y.grad_fn is None and not z.requires_grad
    # nothing requires grad: the plain result, no node
    y = rd.checkpoint(np.sin, rd.tensor(np.ones(3)))
    assert y.grad_fn is None


def test_rng_state_preserved_for_dropout():
    def dropout_block(h):
        mask = np.random.rand(*h.shape) > 0.5
        return np.tanh(h) * mask

    x = rd.tensor(np.linspace(-1, 1, 50), requires_grad=True)
    np.random.seed(7)
    dropout_block(x).sum().backward()
    after_plain = np.random.rand()
    expected = _grads([x])
    np.random.seed(7)
    y = rd.checkpoint(dropout_block, x)
    y.sum().backward()
    assert np.random.rand() == after_plain          # the caller's RNG stream is untouched
    _assert_same(expected, _grads([x]))
    np.random.seed(7)
    y = rd.checkpoint(dropout_block, x, preserve_rng_state=False)
    with pytest.raises(AssertionError):             # a different mask when recomputed
        y.sum().backward()
        _assert_same(expected, _grads([x]))


# -- memory ------------------------------------------------------------------------------------
def _peak(run):
    gc.collect()  # (garbage of earlier runs would count against this one)
    return tracemalloc_peak(run)


def test_memory_bounded_100_block_residual_mlp():
    n, d, batch = 100, 32, 256
    Ws, bs = _params(n, d)
    blocks = [lambda h, W=W, b=b: h + np.tanh(h @ W + b) for W, b in zip(Ws, bs)]
    x = rd.tensor(np.random.default_rng(4).normal(size=(batch, d)))

    def plain():
        h = x
        for f in blocks:
            h = f(h)
        (h ** 2).mean().backward()

    def checkpointed():
        (rd.checkpoint_sequential(blocks, 10, x) ** 2).mean().backward()

    plain()
    expected = _grads(Ws)
    checkpointed()
    _assert_same(expected, _grads(Ws), rtol=1e-10)
    _grads(bs)
    p_plain = _peak(plain)
    p_ckpt = _peak(checkpointed)
    act = batch * d * 8                       # one activation; a weight's gradient is act / 8
    # without checkpointing: 2 saved arrays per block (~200 act + 12 of weight gradients);
    # with 10 segments: 10 segment inputs + one segment recomputed (~20) + the same gradients
    assert p_plain > 150 * act, (p_plain / act)
    assert p_ckpt < 0.35 * p_plain, (p_ckpt / act, p_plain / act)


def test_hessian_forward_over_reverse_and_backward_inputs():
    M = np.array([[0.3, -0.2], [0.1, 0.4]])

    def f(x):
        return np.sum(np.tanh(x @ M) ** 2)

    x0 = np.array([0.5, -1.0])
    np.testing.assert_allclose(rd.hessian(lambda x: rd.checkpoint(f, x), x0), rd.hessian(f, x0),
                               rtol=1e-12)
    W = rd.tensor(M, requires_grad=True)
    x = rd.tensor(x0, requires_grad=True)
    np.sin(x @ W).sum().backward(inputs=[W])
    expected = _grads([W, x])
    y = rd.checkpoint(lambda t: np.sin(t @ W), x)
    y.register_hook(lambda g: g * 2)                  # hooks on the output see its gradient
    y.sum().backward(inputs=[W])
    got = _grads([W, x])
    np.testing.assert_allclose(got[0], 2 * expected[0])
    assert got[1] is None and expected[1] is None
