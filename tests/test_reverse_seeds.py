"""The seed examples (backprop lectures, DAGs, PyTorch autograd notes) in ``reversead``.

Values are checked against hand-derived formulas, ``dualad`` (forward mode) and
central finite differences.
"""
from __future__ import annotations

import numpy as np
import pytest

import dualad
import reversead as rd
from dualad.testing import numerical_jacobian


# -- d = a·(a + b) ----------------------------------------------------------------------
@pytest.mark.parametrize("a, b", [(3.0, 2.0), (-1.5, 0.25), (0.0, 7.0)])
def test_d_equals_a_times_a_plus_b(a, b):
    ta = rd.tensor(a, requires_grad=True)
    tb = rd.tensor(b, requires_grad=True)
    c = ta + tb
    d = ta * c
    assert d.item() == a * (a + b)
    d.backward()
    assert float(ta.grad) == 2 * a + b  # ∂d/∂a = 2a + b
    assert float(tb.grad) == a          # ∂d/∂b = a
    assert type(d.grad_fn).__name__ == "MulBackward"
    assert type(c.grad_fn).__name__ == "AddBackward"
    # the same through the functional API and forward mode
    f = lambda a, b: a * (a + b)  # noqa: E731
    ga, gb = rd.gradient(f, (a, b))
    fa, fb = dualad.gradient(f, (a, b))
    assert (float(ga), float(gb)) == (2 * a + b, a) == (float(fa), float(fb))


def test_d_elementwise_arrays():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(5), rng.standard_normal(5)
    ta, tb = rd.tensor(a, requires_grad=True), rd.tensor(b, requires_grad=True)
    (ta * (ta + tb)).sum().backward()
    np.testing.assert_allclose(ta.grad, 2 * a + b, rtol=1e-15)
    np.testing.assert_allclose(tb.grad, a, rtol=1e-15)


# -- mean(3 (x + 2)^2) -> 4.5 ------------------------------------------------------------
def test_pytorch_tutorial_mean_example():
    x = rd.tensor(np.ones((2, 2)), requires_grad=True)
    y = x + 2
    z = y * y * 3
    out = z.mean()
    assert out.item() == 27.0
    assert x.grad_fn is None and x.is_leaf
    assert type(y.grad_fn).__name__ == "AddBackward"
    assert type(z.grad_fn).__name__ == "MulBackward"
    assert type(out.grad_fn).__name__ == "MeanBackward"
    assert not y.is_leaf and not z.is_leaf and not out.is_leaf
    assert y.requires_grad and z.requires_grad and out.requires_grad
    out.backward()
    assert x.grad.shape == (2, 2)
    np.testing.assert_array_equal(x.grad, np.full((2, 2), 4.5))
    # d out / dx = 6 (x + 2) / 4, same in forward mode and by finite differences
    f = lambda x: np.mean(3 * (x + 2) ** 2)  # noqa: E731
    np.testing.assert_allclose(dualad.gradient(f, np.ones((2, 2))), 4.5, rtol=1e-14)
    np.testing.assert_allclose(numerical_jacobian(f, np.ones((2, 2))), 4.5, rtol=1e-8)
    # non-leaf tensors do not keep .grad (unless retain_grad)
    assert y.grad is None and z.grad is None


# -- the doubling loop with y.backward(v) ------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_doubling_loop_backward_with_vector(seed):
    rng = np.random.default_rng(seed)
    x0 = rng.standard_normal(3)
    x = rd.tensor(x0, requires_grad=True)
    y = x * 2
    k = 1
    while np.linalg.norm(y.detach().numpy()) < 1000:  # data-dependent loop: the tape is built dynamically
        y = y * 2
        k += 1
    assert 2 ** k * np.linalg.norm(x0) >= 1000 > 2 ** (k - 1) * np.linalg.norm(x0)
    v = np.array([0.1, 1.0, 0.0001])
    y.backward(v)
    np.testing.assert_array_equal(x.grad, 2.0 ** k * v)  # J = 2^k I, so vᵀJ = 2^k v


def test_doubling_loop_with_norm_on_tensor():
    x = rd.tensor(np.array([0.3, -0.2, 0.1]), requires_grad=True)
    y = x * 2
    while np.linalg.norm(y) < 1000:  # as in the PyTorch tutorial: y.norm() on the recorded tensor
        y = y * 2
    v = np.array([1.0, 2.0, 3.0])
    y.backward(v)
    k = int(round(np.log2(y.data[0] / 0.3)))
    np.testing.assert_allclose(x.grad, 2.0 ** k * v, rtol=1e-15)


# -- no_grad, detach, contagion, leaves ----------------------------------------------------
def test_no_grad_results_do_not_require_grad():
    x = rd.tensor(np.ones(3), requires_grad=True)
    assert (x ** 2).requires_grad
    with rd.no_grad():
        y = x ** 2
        z = np.sin(x) @ x
    assert not y.requires_grad and y.grad_fn is None and y.is_leaf
    assert not z.requires_grad and z.grad_fn is None
    assert rd.is_grad_enabled()
    assert (x ** 2).requires_grad  # recording is back on after the block


def test_detach():
    x = rd.tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = x * 3
    d = y.detach()
    assert not d.requires_grad and d.grad_fn is None and d.is_leaf
    np.testing.assert_array_equal(d.data, y.data)
    assert np.shares_memory(d.data, y.data)  # same data, cut from the graph
    # a detached value is a constant: the gradient does not flow through it
    out = (y * d).sum()
    out.backward()
    np.testing.assert_array_equal(x.grad, 3 * d.data)  # not 2 * 9x


def test_requires_grad_is_contagious():
    a = rd.tensor(np.ones(2))
    b = rd.tensor(np.ones(2))
    w = rd.tensor(np.ones(2), requires_grad=True)
    assert not (a + b).requires_grad
    assert (a + w).requires_grad
    assert (np.exp(a) * b + w).requires_grad
    assert (2.0 * w).requires_grad
    assert (np.ones(2) @ w).requires_grad
    c = a * b
    assert c.grad_fn is None and not c.requires_grad
    # requires_grad_ turns a leaf on afterwards
    a.requires_grad_()
    assert a.requires_grad and (a + b).requires_grad


def test_leaves_have_no_grad_fn():
    w = rd.tensor(np.ones(2), requires_grad=True)
    c = rd.tensor(np.ones(2))
    assert w.grad_fn is None and w.is_leaf
    assert c.grad_fn is None and c.is_leaf
    y = w * c
    assert y.grad_fn is not None and not y.is_leaf
    assert type(y.grad_fn).__name__.endswith("Backward")


# -- accumulation and zeroing --------------------------------------------------------------
def test_backward_accumulates_and_zeroing():
    x = rd.tensor(np.array([1.0, 2.0]), requires_grad=True)
    (x * x).sum().backward()
    np.testing.assert_array_equal(x.grad, [2.0, 4.0])
    (x * x).sum().backward()
    np.testing.assert_array_equal(x.grad, [4.0, 8.0])  # accumulated, not replaced
    x.grad = None
    (3 * x).sum().backward()
    np.testing.assert_array_equal(x.grad, [3.0, 3.0])
    x.grad[...] = 0  # zero in place
    (3 * x).sum().backward()
    np.testing.assert_array_equal(x.grad, [3.0, 3.0])


def test_accumulation_over_retained_graph():
    x = rd.tensor(2.0, requires_grad=True)
    y = x ** 3
    y.backward(retain_graph=True)
    y.backward()
    assert float(x.grad) == 2 * 3 * 4.0


# -- retain_graph and create_graph -------------------------------------------------------------
def test_second_backward_needs_retain_graph():
    x = rd.tensor(np.array([0.5, 1.5]), requires_grad=True)
    y = np.sum(np.exp(x) * x)
    y.backward()
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        y.backward()
    x.grad = None
    y = np.sum(np.exp(x) * x)
    y.backward(retain_graph=True)
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad, 3 * (np.exp(x.data) * (1 + x.data)), rtol=1e-15)


@pytest.mark.parametrize("x0", [2.0, -0.5])
def test_create_graph_third_derivative_with_grad(x0):
    x = rd.tensor(x0, requires_grad=True)
    y = x ** 3
    (g1,) = rd.grad(y, [x], create_graph=True)
    assert isinstance(g1, rd.Tensor) and g1.requires_grad
    assert g1.item() == pytest.approx(3 * x0 ** 2, rel=1e-15)
    (g2,) = rd.grad(g1, [x], create_graph=True)
    assert g2.item() == pytest.approx(6 * x0, rel=1e-15)
    (g3,) = rd.grad(g2, [x])
    assert float(g3) == pytest.approx(6.0, rel=1e-15)
    assert x.grad is None  # grad() does not touch .grad


def test_create_graph_via_backward_grad_is_tensor():
    x = rd.tensor(2.0, requires_grad=True)
    y = x ** 3
    y.backward(create_graph=True)
    g = x.grad
    assert isinstance(g, rd.Tensor) and g.requires_grad
    assert g.item() == 12.0
    x.grad = None
    g.backward(create_graph=True)    # d(3x²)/dx = 6x
    g2 = x.grad
    assert isinstance(g2, rd.Tensor)
    assert g2.item() == 12.0
    x.grad = None
    g2.backward()                     # d(6x)/dx = 6
    assert float(x.grad) == 6.0


# -- the MLP backprop formulas ---------------------------------------------------------------------
def _numpy_mlp_backprop(x, target, W1, b1, W2, b2):
    """Hand-written backprop of the lectures: s = W x + b, x' = σ(s), ℓ = ½‖x⁽²⁾ - y‖²."""
    s1 = W1 @ x + b1
    x1 = np.tanh(s1)
    s2 = W2 @ x1 + b2
    x2 = np.tanh(s2)
    loss = 0.5 * np.sum((x2 - target) ** 2)
    dl_dx2 = x2 - target
    dl_ds2 = dl_dx2 * (1 - np.tanh(s2) ** 2)      # ∂ℓ/∂s = ∂ℓ/∂x σ'(s)
    dl_dW2 = np.outer(dl_ds2, x1)                  # ∂ℓ/∂W = ∂ℓ/∂s x⁽ˡ⁻¹⁾ᵀ
    dl_db2 = dl_ds2                                # ∂ℓ/∂b = ∂ℓ/∂s
    dl_dx1 = W2.T @ dl_ds2                         # ∂ℓ/∂x⁽ˡ⁻¹⁾ = Wᵀ ∂ℓ/∂s
    dl_ds1 = dl_dx1 * (1 - np.tanh(s1) ** 2)
    dl_dW1 = np.outer(dl_ds1, x)
    dl_db1 = dl_ds1
    return loss, (dl_dW1, dl_db1, dl_dW2, dl_db2)


def _mlp_params(rng, n_in=4, n_hidden=5, n_out=3):
    return (rng.standard_normal((n_hidden, n_in)) * 0.5, rng.standard_normal(n_hidden) * 0.1,
            rng.standard_normal((n_out, n_hidden)) * 0.5, rng.standard_normal(n_out) * 0.1)


def _mlp_loss(x, target, W1, b1, W2, b2):
    x1 = np.tanh(W1 @ x + b1)
    x2 = np.tanh(W2 @ x1 + b2)
    return 0.5 * np.sum((x2 - target) ** 2)


@pytest.mark.parametrize("seed", [0, 1])
def test_two_layer_mlp_backprop_formulas(seed):
    rng = np.random.default_rng(seed)
    x, target = rng.standard_normal(4), rng.standard_normal(3)
    params = _mlp_params(rng)
    loss_np, grads_np = _numpy_mlp_backprop(x, target, *params)

    tensors = [rd.tensor(p, requires_grad=True) for p in params]
    loss = _mlp_loss(x, target, *tensors)
    assert loss.item() == pytest.approx(loss_np, rel=1e-15)
    loss.backward()
    for t, g in zip(tensors, grads_np):
        assert t.grad.shape == t.shape
        np.testing.assert_allclose(t.grad, g, rtol=1e-12, atol=1e-15)

    # the functional API, forward mode and central differences agree
    f = lambda *p: _mlp_loss(x, target, *p)  # noqa: E731
    for got, fwd, fd, g in zip(rd.gradient(f, params), dualad.gradient(f, params),
                               numerical_jacobian(f, params), grads_np):
        np.testing.assert_allclose(got, g, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(fwd, g, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(fd, g, rtol=1e-6, atol=1e-9)


def test_mlp_backprop_batch_sum_of_per_sample_gradients():
    """ℒ = Σₙ ℓₙ: the batch gradient is the sum of per-sample gradients (lectures' GD on an MLP)."""
    rng = np.random.default_rng(3)
    params = _mlp_params(rng)
    X, Y = rng.standard_normal((6, 4)), rng.standard_normal((6, 3))
    tensors = [rd.tensor(p, requires_grad=True) for p in params]
    W1, b1, W2, b2 = tensors
    X1 = np.tanh(X @ W1.T + b1)          # batch form: broadcasting the biases
    X2 = np.tanh(X1 @ W2.T + b2)
    (0.5 * np.sum((X2 - Y) ** 2)).backward()
    expected = [np.zeros_like(p) for p in params]
    for x, y in zip(X, Y):
        for e, g in zip(expected, _numpy_mlp_backprop(x, y, *params)[1]):
            e += g
    for t, e in zip(tensors, expected):
        np.testing.assert_allclose(t.grad, e, rtol=1e-12, atol=1e-14)


# -- the DAG with a weight used by two nodes: paths add -------------------------------------------
def test_dag_weight_used_twice_paths_add():
    # a -> b = w1 a, c = w2 a; d = w3 b + w4 c; L = 10 - d (the lecture's graph)
    vals = dict(a=2.0, w1=1.5, w2=-0.5, w3=0.75, w4=2.0)
    t = {k: rd.tensor(v, requires_grad=True) for k, v in vals.items()}
    b = t["w1"] * t["a"]
    c = t["w2"] * t["a"]
    d = t["w3"] * b + t["w4"] * c
    L = 10 - d
    L.backward()
    a, w1, w2, w3, w4 = (vals[k] for k in ("a", "w1", "w2", "w3", "w4"))
    # ∂L/∂a = ∂L/∂d ∂d/∂b ∂b/∂a + ∂L/∂d ∂d/∂c ∂c/∂a : the two paths add
    assert float(t["a"].grad) == -(w3 * w1 + w4 * w2)
    assert float(t["w4"].grad) == -(w2 * a)
    assert float(t["w3"].grad) == -(w1 * a)
    assert float(t["w1"].grad) == -(w3 * a)
    assert float(t["w2"].grad) == -(w4 * a)


def test_dag_shared_weight_two_consumers():
    rng = np.random.default_rng(5)
    x = rng.standard_normal(3)
    W0 = rng.standard_normal((3, 3))

    def f(W):
        h1 = np.tanh(W @ x)        # W used by two nodes
        h2 = np.sin(W @ h1)
        return np.sum(h2 * h1)

    W = rd.tensor(W0, requires_grad=True)
    f(W).backward()
    np.testing.assert_allclose(W.grad, dualad.gradient(f, W0), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(W.grad, numerical_jacobian(f, W0), rtol=1e-6, atol=1e-8)
    # each path alone, then added, gives the total
    h1_const = np.tanh(W0 @ x)
    path_outer = rd.gradient(lambda W: np.sum(np.sin(W @ h1_const) * h1_const), W0)
    path_inner = rd.gradient(lambda W: np.sum(np.sin(W0 @ np.tanh(W @ x)) * np.tanh(W @ x)), W0)
    np.testing.assert_allclose(W.grad, path_outer + path_inner, rtol=1e-12, atol=1e-14)
