"""PyTorch semantics of ``reversead``: hooks, grad(), grad mode, threads, Function, in-place ops."""
from __future__ import annotations

import gc
import threading

import numpy as np
import pytest

import dualad
import reversead as rd
from dualad.testing import numerical_jacobian
from reversead.graph import AccumulateGrad


# -- retain_grad and hooks --------------------------------------------------------------------------
def test_retain_grad_non_leaf():
    x = rd.tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = x * 3
    y.retain_grad()
    z = (y * y).sum()
    z.retain_grad()
    z.backward()
    np.testing.assert_array_equal(y.grad, 2 * y.data)   # dz/dy = 2y
    assert float(z.grad) == 1.0
    np.testing.assert_array_equal(x.grad, 18 * x.data)  # dz/dx = 2·3x·3


def test_retain_grad_on_leaf_is_harmless():
    x = rd.tensor(np.array([1.0, 2.0]), requires_grad=True)
    x.retain_grad()
    (x * x).sum().backward()
    np.testing.assert_array_equal(x.grad, [2.0, 4.0])


def test_retain_grad_accumulates_over_backwards():
    x = rd.tensor(1.5, requires_grad=True)
    y = x * 2
    y.retain_grad()
    z = y * y
    z.backward(retain_graph=True)
    z.backward()
    assert float(y.grad) == 2 * (2 * 3.0)


def test_hook_on_non_leaf_replaces_gradient():
    x = rd.tensor(np.array([1.0, -2.0]), requires_grad=True)
    y = x * 2
    seen = []
    y.register_hook(lambda g: seen.append(np.array(g)))       # None: gradient unchanged
    y.register_hook(lambda g: g * 10)                           # replaces it
    (y * y).sum().backward()
    np.testing.assert_array_equal(seen[0], 2 * y.data)
    np.testing.assert_array_equal(x.grad, 10 * 2 * y.data * 2)


def test_hook_on_leaf_replaces_gradient():
    x = rd.tensor(np.array([1.0, 3.0]), requires_grad=True)
    x.register_hook(lambda g: -g)
    (x * x).sum().backward()
    np.testing.assert_array_equal(x.grad, -2 * x.data)


def test_hook_sees_incoming_gradient_once_fanout_summed():
    x = rd.tensor(2.0, requires_grad=True)
    y = x * 1.0
    calls = []
    y.register_hook(lambda g: calls.append(float(g)))
    (y * y + 3 * y).backward()   # y used three times: the hook sees the summed gradient, once
    assert calls == [2 * 2.0 + 3]


# -- grad() ---------------------------------------------------------------------------------
def test_grad_does_not_touch_dot_grad():
    x = rd.tensor(np.array([1.0, 2.0]), requires_grad=True)
    (g,) = rd.grad((x ** 2).sum(), [x])
    np.testing.assert_array_equal(g, [2.0, 4.0])
    assert x.grad is None


def test_grad_allow_unused_gives_none():
    x = rd.tensor(1.0, requires_grad=True)
    u = rd.tensor(1.0, requires_grad=True)
    gx, gu = rd.grad(x * 3, [x, u], allow_unused=True)
    assert float(gx) == 3.0 and gu is None


def test_grad_single_tensor_input():
    x = rd.tensor(2.0, requires_grad=True)
    res = rd.grad(x * x, x)
    assert isinstance(res, tuple) and len(res) == 1 and float(res[0]) == 4.0


def test_grad_wrt_non_leaf():
    x = rd.tensor(np.array([1.0, 2.0]), requires_grad=True)
    h = np.sin(x)
    out = (h * h).sum()
    gh, gx = rd.grad(out, [h, x])
    np.testing.assert_allclose(gh, 2 * np.sin(x.data), rtol=1e-15)
    np.testing.assert_allclose(gx, 2 * np.sin(x.data) * np.cos(x.data), rtol=1e-15)


def test_grad_outputs_is_vjp():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((3, 4))
    x = rd.tensor(rng.standard_normal(4), requires_grad=True)
    u = rng.standard_normal(3)
    y = np.tanh(A @ x)
    (g,) = rd.grad(y, [x], grad_outputs=[u])
    expected = A.T @ (u * (1 - np.tanh(A @ x.data) ** 2))
    np.testing.assert_allclose(g, expected, rtol=1e-13)
    # also as a Tensor cotangent, and a single (non-list) grad_outputs
    x2 = rd.tensor(x.data, requires_grad=True)
    (g2,) = rd.grad(np.tanh(A @ x2), x2, grad_outputs=rd.tensor(u))
    np.testing.assert_allclose(g2, expected, rtol=1e-13)


def test_grad_several_outputs_sum():
    x = rd.tensor(3.0, requires_grad=True)
    (g,) = rd.grad([x * x, 5 * x], [x])
    assert float(g) == 2 * 3.0 + 5


def test_grad_retain_graph_none_defaults_to_create_graph():
    x = rd.tensor(np.array([0.5, 1.0]), requires_grad=True)
    y = np.sum(np.exp(x))
    (g1,) = rd.grad(y, [x], create_graph=True)
    (g2,) = rd.grad(y, [x])  # graph retained by create_graph
    np.testing.assert_allclose(g2, np.exp(x.data), rtol=1e-15)
    np.testing.assert_allclose(g1.data, np.exp(x.data), rtol=1e-15)


def test_hessian_via_double_grad_matches_dualad():
    rng = np.random.default_rng(1)
    x0 = rng.standard_normal(4)

    def f(x):
        return np.sum(np.sin(x) * x[::-1]) + np.prod(x) ** 2

    x = rd.tensor(x0, requires_grad=True)
    (g,) = rd.grad(f(x), [x], create_graph=True)
    rows = [rd.grad(g[i], [x], retain_graph=True)[0] for i in range(4)]
    np.testing.assert_allclose(np.stack(rows), dualad.hessian(f, x0), rtol=1e-10, atol=1e-12)


# -- backward(inputs=), multiple roots, fan-out ----------------------------------------------
def test_backward_with_inputs_accumulates_only_those():
    a = rd.tensor(2.0, requires_grad=True)
    b = rd.tensor(3.0, requires_grad=True)
    (a * b).backward(inputs=[a])
    assert float(a.grad) == 3.0 and b.grad is None


def test_backward_multiple_roots():
    x = rd.tensor(np.array([1.0, 2.0]), requires_grad=True)
    y1 = (x * x).sum()
    y2 = x * 3
    rd.backward([y1, y2], [None, np.array([1.0, -1.0])])
    np.testing.assert_array_equal(x.grad, 2 * x.data + np.array([3.0, -3.0]))


def test_fan_out_value_used_many_times():
    x = rd.tensor(np.array([0.5, -1.0]), requires_grad=True)
    y = x * x * x + x            # x used four times
    s = y
    for _ in range(50):          # and y used 51 times
        s = s + y
    s.sum().backward()
    np.testing.assert_allclose(x.grad, 51 * (3 * x.data ** 2 + 1), rtol=1e-14)


def test_indexing_with_repeated_indices():
    x = rd.tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    y = x[[0, 0, 1]]
    (y * np.array([1.0, 2.0, 3.0])).sum().backward()
    np.testing.assert_array_equal(x.grad, [3.0, 3.0, 0.0])  # repeated index: contributions add


def test_indexing_repeated_2d_and_slices_against_dualad():
    rng = np.random.default_rng(2)
    x0 = rng.standard_normal((4, 3))
    idx = np.array([2, 0, 2, 2, 3])

    def f(x):
        return np.sum(np.sin(x[idx]) * np.arange(15.0).reshape(5, 3)) + np.sum(x[1:, ::2] ** 2) + x[3, 1]

    g = rd.gradient(f, x0)
    np.testing.assert_allclose(g, dualad.gradient(f, x0), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(g, numerical_jacobian(f, x0), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("sa, sb", [((3, 1), (4,)), ((), (2, 3)), ((2, 3), (1,)), ((1, 3), (2, 1)),
                                    ((2, 1, 3), (4, 1))])
def test_broadcasting_gradients_keep_input_shape(sa, sb):
    rng = np.random.default_rng(3)
    a0, b0 = rng.standard_normal(sa), rng.standard_normal(sb)
    a, b = rd.tensor(a0, requires_grad=True), rd.tensor(b0, requires_grad=True)
    out = np.sum(a * b + np.sin(a) / (2 + np.cos(b)))
    out.backward()
    assert a.grad.shape == sa and b.grad.shape == sb

    def f(a, b):
        return np.sum(a * b + np.sin(a) / (2 + np.cos(b)))
    ga, gb = dualad.gradient(f, (a0, b0))
    np.testing.assert_allclose(a.grad, ga, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(b.grad, gb, rtol=1e-12, atol=1e-14)


def test_python_float_leaf_broadcast():
    w = rd.tensor(2.0, requires_grad=True)
    x = np.arange(6.0).reshape(2, 3)
    (w * x).sum().backward()
    assert np.shape(w.grad) == () and float(w.grad) == x.sum()


# -- dtypes ---------------------------------------------------------------------------------
def test_float32_end_to_end():
    rng = np.random.default_rng(4)
    W = rd.tensor(rng.standard_normal((3, 4)).astype(np.float32), requires_grad=True)
    b = rd.tensor(np.zeros(3, np.float32), requires_grad=True)
    x = rng.standard_normal(4).astype(np.float32)
    out = np.sum(np.tanh(W @ x + b) ** 2) * 0.5 + 1.0   # python floats are weak: stays float32
    assert out.dtype == np.float32
    out.backward()
    assert W.grad.dtype == np.float32 and b.grad.dtype == np.float32
    f = lambda W, b: np.sum(np.tanh(W @ x + b) ** 2) * 0.5  # noqa: E731
    gW, gb = dualad.gradient(f, (W.data.astype(np.float64), b.data.astype(np.float64)))
    np.testing.assert_allclose(W.grad, gW, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(b.grad, gb, rtol=1e-5, atol=1e-6)
    # the functional API keeps float32 as well
    assert rd.gradient(f, (W.data, b.data))[0].dtype == np.float32
    assert rd.jacobian(np.sin, np.ones(3, np.float32)).dtype == np.float32


def test_integer_data_requiring_grad_is_promoted_to_float64():
    # documented on Tensor: integer data with requires_grad=True is promoted to float64
    x = rd.tensor(np.arange(3), requires_grad=True)
    assert x.dtype == np.float64
    (x * x).sum().backward()
    assert x.grad.dtype == np.float64
    np.testing.assert_array_equal(x.grad, [0.0, 2.0, 4.0])
    y = rd.tensor(3, requires_grad=True)
    assert y.dtype == np.float64
    # integer data without requires_grad stays integer, and requires_grad_() promotes it
    z = rd.tensor(np.arange(3))
    assert z.dtype.kind == "i"
    z.requires_grad_()
    assert z.dtype == np.float64 and z.requires_grad


def test_integer_gradient_argument_is_cast():
    x = rd.tensor(np.array([1.0, 2.0]), requires_grad=True)
    (x * 2).backward(np.array([1, 3]))
    assert x.grad.dtype == np.float64
    np.testing.assert_array_equal(x.grad, [2.0, 6.0])


# -- grad mode -----------------------------------------------------------------------------
def test_no_grad_and_enable_grad_nesting():
    x = rd.tensor(1.0, requires_grad=True)
    with rd.no_grad():
        assert not rd.is_grad_enabled()
        with rd.enable_grad():
            assert rd.is_grad_enabled()
            assert (x * 2).requires_grad
            with rd.no_grad():
                assert not (x * 2).requires_grad
            assert (x * 2).requires_grad
        assert not (x * 2).requires_grad
    assert rd.is_grad_enabled()


def test_grad_mode_restored_after_exception():
    with pytest.raises(ZeroDivisionError):
        with rd.no_grad():
            1 / 0
    assert rd.is_grad_enabled()


def test_no_grad_and_enable_grad_as_decorators():
    x = rd.tensor(2.0, requires_grad=True)

    @rd.no_grad()
    def frozen(t):
        assert not rd.is_grad_enabled()
        return t * 3

    @rd.enable_grad()
    def live(t):
        return t * 3

    y = frozen(x)
    assert not y.requires_grad and frozen.__name__ == "frozen"
    assert rd.is_grad_enabled()
    with rd.no_grad():
        z = live(x)
        assert not rd.is_grad_enabled()
    assert z.requires_grad
    z.backward()
    assert float(x.grad) == 3.0


def test_same_no_grad_instance_reused_and_nested():
    ng = rd.no_grad()
    with ng:
        with ng:
            assert not rd.is_grad_enabled()
        assert not rd.is_grad_enabled()
    assert rd.is_grad_enabled()


def test_threads_in_no_grad_are_counted_while_inside_and_only_then():
    """Recording skips the thread-local lookup while no thread is in no_grad: the count
    behind that must be exact through nesting, enable_grad, exceptions and threads."""
    from reversead import grad_mode
    x = rd.tensor(np.array([1.0, 2.0]), requires_grad=True)
    assert grad_mode._disabled[0] == 0
    with rd.no_grad():
        assert grad_mode._disabled[0] == 1 and not (x * 2).requires_grad
        with rd.no_grad():
            assert grad_mode._disabled[0] == 1
            with rd.enable_grad():
                assert grad_mode._disabled[0] == 0 and (x * 2).requires_grad
            assert grad_mode._disabled[0] == 1 and not (x * 2).requires_grad
    assert grad_mode._disabled[0] == 0
    with pytest.raises(ValueError):
        with rd.no_grad():
            raise ValueError
    assert grad_mode._disabled[0] == 0 and (x * 2).requires_grad
    inside, leave = threading.Event(), threading.Event()

    def worker():
        with rd.no_grad():
            inside.set()
            leave.wait(20)
    t = threading.Thread(target=worker)
    t.start()
    assert inside.wait(20)
    assert grad_mode._disabled[0] == 1
    assert (x * 2).requires_grad and np.sum(x * x).requires_grad  # this thread still records
    leave.set()
    t.join(20)
    assert grad_mode._disabled[0] == 0


def test_two_threads_one_in_no_grad_do_not_disturb_each_other():
    x = rd.tensor(np.array([1.0, 2.0]), requires_grad=True)
    barrier = threading.Barrier(2, timeout=20)
    results, errors = {}, []

    def in_no_grad():
        try:
            with rd.no_grad():
                barrier.wait()                 # both threads now inside their blocks
                ys = [x * 2 for _ in range(200)]
                barrier.wait()
                results["no_grad"] = (rd.is_grad_enabled(), [y.requires_grad for y in ys])
                barrier.wait()
            results["no_grad_after"] = rd.is_grad_enabled()
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)
            barrier.abort()

    def recording():
        try:
            barrier.wait()
            ys = [x * 2 for _ in range(200)]
            barrier.wait()
            local = rd.tensor(np.array([3.0, 4.0]), requires_grad=True)
            out = np.sum(local ** 2)
            results["recording"] = (rd.is_grad_enabled(), [y.requires_grad for y in ys])
            barrier.wait()
            out.backward()
            results["grad"] = np.array(local.grad)
        except Exception as e:  # pragma: no cover
            errors.append(e)
            barrier.abort()

    threads = [threading.Thread(target=in_no_grad), threading.Thread(target=recording)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors
    enabled, flags = results["no_grad"]
    assert not enabled and not any(flags)
    enabled, flags = results["recording"]
    assert enabled and all(flags)
    assert results["no_grad_after"] is True
    np.testing.assert_array_equal(results["grad"], [6.0, 8.0])
    assert rd.is_grad_enabled()  # the main thread was never affected


def test_thread_starts_with_grad_enabled_even_if_parent_in_no_grad():
    seen = []
    with rd.no_grad():
        t = threading.Thread(target=lambda: seen.append(rd.is_grad_enabled()))
        t.start()
        t.join()
    assert seen == [True]


def test_backward_in_two_threads_concurrently():
    barrier = threading.Barrier(2, timeout=20)
    out, errors = {}, []

    def work(k):
        try:
            x = rd.tensor(np.full(4, float(k)), requires_grad=True)
            barrier.wait()
            for _ in range(50):
                x.grad = None
                np.sum(np.sin(x) * x).backward()
            out[k] = np.array(x.grad)
        except Exception as e:  # pragma: no cover
            errors.append(e)
            barrier.abort()

    threads = [threading.Thread(target=work, args=(k,)) for k in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors
    for k in (1, 2):
        np.testing.assert_allclose(out[k], np.cos(k) * k + np.sin(k), rtol=1e-15)


# -- custom Function -------------------------------------------------------------------------
class Cube(rd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x ** 3

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return 3 * x ** 2 * g


class ScaledMul(rd.Function):
    """f(x, y, k) = k·x·y with k a plain number; records needs_input_grad."""

    seen_needs = None

    @staticmethod
    def forward(ctx, x, y, k):
        ctx.save_for_backward(x, y)
        ctx.k = k
        ScaledMul.seen_needs = ctx.needs_input_grad
        return k * x * y

    @staticmethod
    def backward(ctx, g):
        x, y = ctx.saved_tensors
        gx = ctx.k * y * g if ctx.needs_input_grad[0] else None
        gy = ctx.k * x * g if ctx.needs_input_grad[1] else None
        return gx, gy, None


def test_custom_function_forward_backward():
    x = rd.tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = Cube.apply(x)
    assert type(y.grad_fn).__name__ == "CubeBackward"
    np.testing.assert_array_equal(y.data, [1.0, 8.0])
    np.sin(y).sum().backward()
    np.testing.assert_allclose(x.grad, np.cos(x.data ** 3) * 3 * x.data ** 2, rtol=1e-15)


def test_custom_function_needs_input_grad_and_none_gradients():
    x = rd.tensor(np.array([1.0, 2.0]), requires_grad=True)
    c = rd.tensor(np.array([5.0, 7.0]))
    y = ScaledMul.apply(x, c, 2.0)
    assert ScaledMul.seen_needs == (True, False, False)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, 2.0 * c.data)


def test_custom_function_no_grad_inputs_give_constant():
    y = Cube.apply(rd.tensor(np.array([2.0])))
    assert not y.requires_grad and y.grad_fn is None
    x = rd.tensor(2.0, requires_grad=True)
    with rd.no_grad():
        assert not Cube.apply(x).requires_grad


def test_custom_function_with_create_graph():
    x = rd.tensor(np.array([2.0, -1.0]), requires_grad=True)
    (g,) = rd.grad(Cube.apply(x).sum(), [x], create_graph=True)
    np.testing.assert_array_equal(g.data, 3 * x.data ** 2)
    (gg,) = rd.grad(g.sum(), [x])
    np.testing.assert_array_equal(gg, 6 * x.data)


def test_custom_function_in_jacobian_rows():
    x0 = np.array([1.0, 2.0, 3.0])
    J = rd.jacobian(lambda x: Cube.apply(x) * np.array([1.0, 2.0, 3.0]), x0)
    np.testing.assert_array_equal(J, np.diag(3 * x0 ** 2 * np.array([1.0, 2.0, 3.0])))


def test_custom_function_saved_tensor_modified_in_place_raises():
    x = rd.tensor(np.array([1.0, 2.0]), requires_grad=True)
    h = x * 1.0
    y = Cube.apply(h)
    h += 1.0
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.sum().backward()


def test_custom_function_wrong_number_of_gradients_raises():
    class Bad(rd.Function):
        @staticmethod
        def forward(ctx, x, y):
            return x * y

        @staticmethod
        def backward(ctx, g):
            return g

    a = rd.tensor(1.0, requires_grad=True)
    with pytest.raises(RuntimeError, match="incorrect number of gradients"):
        Bad.apply(a, a).backward()


def test_custom_function_wrong_gradient_shape_raises():
    class BadShape(rd.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, g):
            return np.ones(5)

    a = rd.tensor(np.ones(3), requires_grad=True)
    with pytest.raises(RuntimeError, match=r"\(5,\).*\(3,\)"):
        BadShape.apply(a).sum().backward()


class SinCos(rd.Function):
    """Two outputs; records what backward received."""

    received = None

    @staticmethod
    def forward(ctx, x, materialize=True):
        ctx.save_for_backward(x)
        ctx.set_materialize_grads(materialize)
        return np.sin(x), np.cos(x)

    @staticmethod
    def backward(ctx, g_sin, g_cos):
        SinCos.received = (g_sin, g_cos)
        (x,) = ctx.saved_tensors
        total = 0.0
        if g_sin is not None:
            total = total + g_sin * np.cos(x)
        if g_cos is not None:
            total = total - g_cos * np.sin(x)
        return total, None


def test_custom_function_with_two_outputs():
    x0 = np.array([0.3, -1.2, 2.0])
    x = rd.tensor(x0, requires_grad=True)
    s, c = SinCos.apply(x)
    assert s.grad_fn is c.grad_fn and type(s.grad_fn).__name__ == "SinCosBackward"
    ((acc, index),) = s.grad_fn.next_functions
    assert acc.variable is x and index == 0 and repr(acc) == "<AccumulateGrad>"
    np.testing.assert_array_equal(s.data, np.sin(x0))
    (s * c + 2 * c).sum().backward()  # d/dx = cos(2x) - 2 sin(x)
    np.testing.assert_allclose(x.grad, np.cos(2 * x0) - 2 * np.sin(x0), rtol=1e-14)


def test_custom_function_unused_output_gets_zeros_or_none():
    x = rd.tensor(np.array([0.5, 1.0]), requires_grad=True)
    s, _ = SinCos.apply(x)
    s.sum().backward()
    g_sin, g_cos = SinCos.received
    assert isinstance(g_cos, rd.Tensor) and g_cos.shape == (2,)
    np.testing.assert_array_equal(g_cos.data, 0.0)
    np.testing.assert_array_equal(x.grad, np.cos(x.data))
    x.grad = None
    _, c = SinCos.apply(x, False)  # ctx.set_materialize_grads(False)
    c.sum().backward()
    assert SinCos.received[0] is None
    np.testing.assert_array_equal(x.grad, -np.sin(x.data))


def test_custom_function_outputs_in_jacobian_grad_of_grad_and_hessian():
    x0 = np.array([0.3, -1.2, 2.0])

    def f(x):
        s, c = SinCos.apply(x)
        return s * c + c

    J = rd.jacobian(f, x0)  # rows batched: one backward per row inside the node
    np.testing.assert_allclose(J, np.diag(np.cos(2 * x0) - np.sin(x0)), rtol=1e-14)
    x = rd.tensor(x0, requires_grad=True)
    (g,) = rd.grad(f(x).sum(), [x], create_graph=True)
    (gg,) = rd.grad(g.sum(), [x])
    np.testing.assert_allclose(gg, -2 * np.sin(2 * x0) - np.cos(x0), rtol=1e-14)
    H = rd.hessian(lambda v: f(v).sum(), x0)
    np.testing.assert_allclose(H, np.diag(-2 * np.sin(2 * x0) - np.cos(x0)), rtol=1e-14)


class SortWithIndex(rd.Function):
    """Sorted values (differentiable), the permutation (integers) and a marked float mask."""

    @staticmethod
    def forward(ctx, x):
        data = x.data
        order = np.argsort(data, kind="stable")
        positive = (data[order] > 0).astype(float)
        ctx.save_for_backward(order)
        ctx.mark_non_differentiable(positive)
        return x.data[order], order, positive, "sorted"

    @staticmethod
    def backward(ctx, g_values, g_order, g_positive, g_label):
        (order,) = ctx.saved_tensors
        assert g_label is None
        np.testing.assert_array_equal(g_positive.data, 0.0)  # zeros for a marked output
        out = np.zeros_like(g_values.data)
        out[order] = g_values.data
        return out


def test_custom_function_non_differentiable_outputs_and_other_objects():
    x = rd.tensor(np.array([3.0, -1.0, 2.0]), requires_grad=True)
    values, order, positive, label = SortWithIndex.apply(x)
    assert label == "sorted"
    assert values.requires_grad and not order.requires_grad and not positive.requires_grad
    assert order.grad_fn is None and order.dtype.kind == "i"
    (values * np.array([1.0, 10.0, 100.0])).sum().backward()
    np.testing.assert_array_equal(x.grad, [100.0, 1.0, 10.0])


def test_custom_function_output_hooks_and_retain_grad():
    x = rd.tensor(np.array([0.5, 1.0]), requires_grad=True)
    s, c = SinCos.apply(x)
    seen = []
    c.register_hook(lambda g: seen.append(np.array(g)))
    s.retain_grad()
    (3 * s + 5 * c).sum().backward()
    np.testing.assert_array_equal(seen[0], [5.0, 5.0])
    np.testing.assert_array_equal(s.grad, [3.0, 3.0])
    np.testing.assert_allclose(x.grad, 3 * np.cos(x.data) - 5 * np.sin(x.data), rtol=1e-15)


def test_custom_function_several_outputs_second_backward_and_errors():
    x = rd.tensor(np.array([0.5, 1.0]), requires_grad=True)
    s, c = SinCos.apply(x)
    (s + c).sum().backward()
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        s.sum().backward()

    class Empty(rd.Function):
        @staticmethod
        def forward(ctx, x):
            return ()

    with pytest.raises(TypeError, match="Empty.forward returned no outputs"):
        Empty.apply(x)

    class Text(rd.Function):
        @staticmethod
        def forward(ctx, x):
            return "not an array"

    with pytest.raises(TypeError, match="Text.forward must return an array"):
        Text.apply(x)

    class TooFew(rd.Function):
        @staticmethod
        def forward(ctx, x):
            return x.data * 2, x.data * 3

        @staticmethod
        def backward(ctx, a, b):
            return a, b  # one input, two gradients

    a, _ = TooFew.apply(x)
    with pytest.raises(RuntimeError, match=r"incorrect number of gradients \(expected 1, got 2\)"):
        a.sum().backward()


def test_custom_function_outputs_without_grad():
    s, c = SinCos.apply(rd.tensor(np.array([0.5])))
    assert not s.requires_grad and not c.requires_grad and s.grad_fn is None
    x = rd.tensor(np.array([0.5]), requires_grad=True)
    with rd.no_grad():
        s, c = SinCos.apply(x)
    assert not s.requires_grad and not c.requires_grad


# -- in-place operations -------------------------------------------------------------------
def test_inplace_on_saved_non_leaf_raises_naming_op_and_versions():
    x = rd.tensor(np.array([1.0, 2.0]), requires_grad=True)
    h = x * 2
    y = h * h            # MulBackward saves h
    h += 1               # version 0 -> 1
    with pytest.raises(RuntimeError) as info:
        y.sum().backward()
    msg = str(info.value)
    assert "modified by an inplace operation" in msg
    assert "MulBackward" in msg
    assert "version 1" in msg and "version 0" in msg


def test_inplace_on_value_not_saved_is_fine():
    x = rd.tensor(np.array([1.0, 2.0]), requires_grad=True)
    h = x * 2
    y = np.exp(h)        # exp saves its output, not h
    z = h + 1            # add saves nothing
    h += 1
    (y.sum() + z.sum()).backward()
    np.testing.assert_allclose(x.grad, 2 * np.exp(2 * x.data) + 2, rtol=1e-15)


def test_inplace_on_non_leaf_is_recorded():
    x = rd.tensor(np.array([1.0, 2.0]), requires_grad=True)
    h = x * 2
    h += x               # h = 3x: the in-place op joins the graph
    h *= 3.0             # h = 9x (the multiply by a constant saves nothing of h)
    h -= np.sin(x)
    h /= 2.0
    assert not h.is_leaf and h.requires_grad
    h.sum().backward()
    np.testing.assert_allclose(x.grad, (9 - np.cos(x.data)) / 2, rtol=1e-15)


def test_inplace_multiply_by_tracked_value_is_right_or_refused():
    # h *= x needs the old h for d/dx; overwriting it must never give a wrong gradient
    x = rd.tensor(np.array([1.0, 2.0]), requires_grad=True)
    h = x * 2
    h *= x               # h = 2x²
    try:
        h.sum().backward()
    except RuntimeError as err:
        assert "modified by an inplace operation" in str(err)
    else:
        np.testing.assert_array_equal(x.grad, 4 * x.data)


def test_inplace_on_leaf_requiring_grad_raises_unless_no_grad():
    w = rd.tensor(np.array([1.0, 2.0]), requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        w += 1
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        w[0] = 5.0
    np.testing.assert_array_equal(w.data, [1.0, 2.0])
    with rd.no_grad():
        w += 1
        w[0] = 5.0
    np.testing.assert_array_equal(w.data, [5.0, 3.0])
    assert w.is_leaf and w.requires_grad


def test_sgd_step_in_no_grad_trains():
    rng = np.random.default_rng(6)
    X = rng.standard_normal((32, 3))
    y = X @ np.array([1.0, -2.0, 0.5]) + 0.3
    w = rd.tensor(np.zeros(3), requires_grad=True)
    b = rd.tensor(0.0, requires_grad=True)
    lr, losses = 0.1, []
    for _ in range(100):
        loss = np.mean((X @ w + b - y) ** 2)
        losses.append(loss.item())
        w.grad = b.grad = None
        loss.backward()
        with rd.no_grad():
            w -= lr * w.grad
            b -= lr * b.grad
        assert w.is_leaf and w.requires_grad and w.grad_fn is None
    assert losses[-1] < 1e-3 * losses[0]
    assert all(b2 <= b1 + 1e-12 for b1, b2 in zip(losses, losses[1:]))
    np.testing.assert_allclose(w.data, [1.0, -2.0, 0.5], atol=1e-2)


def test_setitem_on_non_leaf_with_tracked_value():
    a = rd.tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    w = rd.tensor(5.0, requires_grad=True)
    b = a * 2
    b[1] = w * w
    (b * np.array([1.0, 2.0, 3.0])).sum().backward()
    np.testing.assert_array_equal(a.grad, [2.0, 0.0, 6.0])   # the overwritten entry gets nothing
    assert float(w.grad) == 2 * 5.0 * 2.0


def test_setitem_on_non_leaf_against_dualad():
    rng = np.random.default_rng(7)
    a0, v0 = rng.standard_normal((3, 4)), rng.standard_normal(4)

    def f(a, v):
        b = np.sin(a) * 1.0
        b[1] = v * a[0]
        b[:, 2] = np.exp(b[:, 2])
        return np.sum(b ** 2)

    got = rd.gradient(f, (a0, v0))
    ref = dualad.gradient(f, (a0, v0))
    fd = numerical_jacobian(f, (a0, v0))
    for g, r, d in zip(got, ref, fd):
        np.testing.assert_allclose(g, r, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(g, d, rtol=1e-6, atol=1e-8)


def test_setitem_on_constant_tensor_with_tracked_value():
    w = rd.tensor(np.array([2.0, 3.0]), requires_grad=True)
    buf = rd.tensor(np.zeros(4))
    buf[1:3] = w * w
    assert buf.requires_grad and not buf.is_leaf
    (buf * np.arange(4.0)).sum().backward()
    np.testing.assert_array_equal(w.grad, 2 * w.data * np.array([1.0, 2.0]))


def test_out_ufunc_into_tensor():
    x = rd.tensor(np.array([1.0, 2.0]), requires_grad=True)
    h = x * 2
    out = rd.tensor(np.zeros(2))
    r = np.multiply(h, 3.0, out=out)
    assert r is out and out.requires_grad
    np.testing.assert_array_equal(out.data, 6 * x.data)
    np.sum(np.sin(out)).backward()
    np.testing.assert_allclose(x.grad, 6 * np.cos(6 * x.data), rtol=1e-15)


def test_out_ufunc_overwriting_saved_value_raises():
    x = rd.tensor(np.array([1.0, 2.0]), requires_grad=True)
    h = x * 2
    y = h * h
    np.add(h, 1.0, out=h)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.sum().backward()


def test_view_shares_version_counter():
    x = rd.tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    h = x * 1.0
    v = h[:2]                  # a view of h
    y = np.sum(h * h)          # saves h
    with rd.no_grad():
        v.data[0] = 10.0       # writes through .data are not tracked (as in PyTorch)
    with pytest.raises(RuntimeError):
        with rd.no_grad():
            v += 1             # a tracked in-place op through the view bumps h's version
        y.backward()


# -- gradients are owned: no two results share memory ----------------------------------------
def test_leaf_grads_do_not_alias_each_other():
    a = rd.tensor(np.ones(3), requires_grad=True)
    b = rd.tensor(np.ones(3), requires_grad=True)
    (a + b).backward(np.full(3, 2.0))     # one cotangent reaches both leaves through add
    assert not np.shares_memory(a.grad, b.grad)
    a.grad[...] = 0
    np.testing.assert_array_equal(b.grad, [2.0, 2.0, 2.0])


def test_leaf_grad_does_not_alias_user_gradient():
    v = np.ones(3)
    x = rd.tensor(np.zeros(3), requires_grad=True)
    (x + 2).backward(v)
    assert not np.shares_memory(x.grad, v)
    x.grad[...] = 0
    np.testing.assert_array_equal(v, [1.0, 1.0, 1.0])
    y = rd.tensor(np.zeros(3), requires_grad=True)
    y.backward(v)                # a leaf as its own root
    assert not np.shares_memory(y.grad, v)


def test_grad_results_do_not_alias():
    p = rd.tensor(np.ones(3), requires_grad=True)
    q = rd.tensor(np.ones(3), requires_grad=True)
    gp, gq = rd.grad(((p + q) * 2.0).sum(), [p, q])
    assert not np.shares_memory(gp, gq)
    u = np.ones(3)
    (gu,) = rd.grad(p + 1.0, [p], grad_outputs=[u])
    assert not np.shares_memory(gu, u)
    ga, gb = rd.gradient(lambda a, b: np.sum((a + b) * 2.0), (np.ones(2), np.ones(2)))
    assert not np.shares_memory(ga, gb)


# -- a few more PyTorch behaviours ------------------------------------------------------------------
def test_backward_inputs_non_leaf_accumulates_into_it():
    x = rd.tensor(np.array([1.0, 2.0]), requires_grad=True)
    h = x * 3
    (h * h).sum().backward(inputs=[h])
    np.testing.assert_array_equal(h.grad, 2 * h.data)
    assert x.grad is None


def test_boolean_and_2d_repeated_advanced_indexing():
    x = rd.tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    (x[[0, 0, 1], [1, 1, 2]] * np.array([1.0, 2.0, 4.0])).sum().backward()
    np.testing.assert_array_equal(x.grad, [[0.0, 3.0, 0.0], [0.0, 0.0, 4.0]])
    y = rd.tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    (y[np.array([True, False, True])] ** 2).sum().backward()
    np.testing.assert_array_equal(y.grad, [2.0, 0.0, 6.0])


def test_detach_shares_version_counter():
    x = rd.tensor(np.array([1.0, 2.0]), requires_grad=True)
    h = x * 2
    y = h * h
    d = h.detach()
    d += 1                       # modifies h's data too: the saved value is stale
    np.testing.assert_array_equal(h.data, [3.0, 5.0])
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.sum().backward()


def test_hooks_apply_in_grad_too():
    x = rd.tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = x * 2
    y.register_hook(lambda g: 0 * g)
    (g,) = rd.grad(y.sum(), [x])
    np.testing.assert_array_equal(g, [0.0, 0.0])


def test_requires_grad_on_no_grad_result_makes_a_new_leaf():
    x = rd.tensor(np.array([1.0, 2.0]), requires_grad=True)
    with rd.no_grad():
        y = x * 2
    y.requires_grad_()
    (y * y).sum().backward()
    np.testing.assert_array_equal(y.grad, [4.0, 8.0])
    assert x.grad is None


def test_leaves_show_as_accumulate_grad_nodes_as_in_pytorch():
    x = rd.tensor(np.array([1.0, 2.0]), requires_grad=True)
    c = rd.tensor(np.array([3.0, 4.0]))  # needs no gradient: no edge
    y = x * x + c
    mul = y.grad_fn.next_functions[0][0]
    (acc_a, _), (acc_b, _) = mul.next_functions
    assert acc_a is acc_b and acc_a.variable is x  # one per leaf while it is held
    assert acc_a.name() == "AccumulateGrad" and acc_a.next_functions == ()
    assert y.grad_fn.next_functions[1] == (None, 0)
    z = np.exp(x)
    assert z.grad_fn.next_functions[0][0] is acc_a
    # the accumulator holds its leaf; once dropped, the next one is a new object for the same leaf
    del acc_a, acc_b, mul
    gc.collect()
    assert id(x) not in AccumulateGrad._live
    assert z.grad_fn.next_functions[0][0].variable is x


def test_nodes_show_their_op_class_wherever_user_code_meets_them():
    """Nodes are recorded as one type and take their op's class when seen; names never differ."""
    x = rd.tensor(np.array([1.0, 2.0]), requires_grad=True)
    a = x + 1.0
    b = np.sin(a)
    out = (b * 2.0).sum()
    # reached only through next_functions (b.grad_fn never read): still the op's class
    mul = out.grad_fn.next_functions[0][0]
    sin = mul.next_functions[0][0]
    assert [type(n).__name__ for n in (out.grad_fn, mul, sin)] == ["SumBackward", "MulBackward",
                                                                   "SinBackward"]
    assert sin is b.grad_fn and type(a.grad_fn).__name__ == "AddBackward"
    assert repr(sin) == "<SinBackward>" and sin.next_functions[0][0] is a.grad_fn
    # a node never shown to user code still names its op (error messages use name())
    y = np.exp(x * 3.0)
    assert y._fn.name() == "ExpBackward" and y.grad_fn.name() == "ExpBackward"
    out.backward()
    np.testing.assert_allclose(x.grad, 2.0 * np.cos(x.data + 1.0))


def test_backward_never_writes_into_saved_values():
    """Elementwise VJPs multiply in place only into partials that are their own temporaries:
    a partial that *is* a saved value (d(a*b)/da = b) or the saved output must stay intact."""
    from importlib import import_module
    assert import_module("reversead.tensor")._TEMPORARY_REFS in (None, 1, 2, 3)
    a = rd.tensor(np.array([1.0, -2.0, 3.0]), requires_grad=True)
    b = rd.tensor(np.array([0.5, 4.0, -1.0]), requires_grad=True)
    a0, b0 = a.data.copy(), b.data.copy()
    y = a * b
    t = np.tanh(a)
    t0 = t.data.copy()
    g = np.array([1.0, 2.0, 3.0])
    for k in (1, 2):
        y.backward(g, retain_graph=True)
        t.backward(g, retain_graph=True)
        np.testing.assert_array_equal(a.data, a0)
        np.testing.assert_array_equal(b.data, b0)
        np.testing.assert_array_equal(t.data, t0)
        np.testing.assert_allclose(b.grad, k * g * a0)
        np.testing.assert_allclose(a.grad, k * (g * b0 + g * (1 - t0 ** 2)))
