"""reversead: leaf hooks, in-place changes seen through earlier views, grad-mode decorators.

Each case was found by comparing with PyTorch; the expected values are PyTorch's (and the
hand-derived derivatives written next to them).
"""
import numpy as np
import pytest

import reversead as rd
from reversead.errors import BackwardError, InplaceError


def leaf(*values):
    return rd.tensor(np.array(values, dtype=float), requires_grad=True)


# -- hooks on leaves run once, on the summed gradient --------------------------------------------
def test_leaf_hook_runs_once_on_the_total_of_every_path():
    x = leaf(1.0, 2.0)
    calls = []
    x.register_hook(lambda g: calls.append(g.copy()) or g * 0 + 7)
    (x * x).sum().backward()          # two paths into x, each x
    assert len(calls) == 1
    np.testing.assert_array_equal(calls[0], [2.0, 4.0])
    np.testing.assert_array_equal(x.grad, [7.0, 7.0])


def test_clipping_hook_clips_the_sum_not_each_part():
    x = leaf(1.0, 2.0)
    x.register_hook(lambda g: np.clip(g, -1, 1))
    (x ** 3 + x).sum().backward()     # 3x^2 + 1 = [4, 13], clipped to [1, 1]
    np.testing.assert_array_equal(x.grad, [1.0, 1.0])


def test_grad_applies_hooks_of_leaf_inputs():
    x = leaf(1.0, 2.0)
    x.register_hook(lambda g: g * 0 + 7)
    (g,) = rd.grad((x * x).sum(), [x])
    np.testing.assert_array_equal(g, [7.0, 7.0])
    assert x.grad is None


def test_hook_on_a_leaf_that_is_its_own_root():
    x = leaf(1.0, 2.0)
    x.register_hook(lambda g: 3 * g)
    x.backward(np.ones(2))
    np.testing.assert_array_equal(x.grad, [3.0, 3.0])


def test_hook_handles_remove_their_hook():
    x = leaf(1.0, 2.0)
    keep = x.register_hook(lambda g: g + 1)
    drop = x.register_hook(lambda g: 10 * g)
    drop.remove()
    (2 * x).sum().backward()
    np.testing.assert_array_equal(x.grad, [3.0, 3.0])
    keep.remove()
    x.grad = None
    (2 * x).sum().backward()
    np.testing.assert_array_equal(x.grad, [2.0, 2.0])
    h = x * 1.0
    handle = h.register_hook(lambda g: 0 * g)
    handle.remove()
    x.grad = None
    (5 * h).sum().backward()
    np.testing.assert_array_equal(x.grad, [5.0, 5.0])


# -- views taken before an in-place change of their base -------------------------------------
def test_slice_taken_before_base_update_sees_the_new_graph():
    x = leaf(1.0, 2.0)
    h = x * 1
    v = h[0:1]
    h += x                            # v is now 2 x[0]
    (3 * v).sum().backward()
    np.testing.assert_array_equal(x.grad, [6.0, 0.0])


def test_reshape_view_follows_multiplication_in_place():
    x = leaf(1.0, 2.0)
    h = x * 1
    v = h.reshape(2, 1)
    h *= x                            # v = x^2
    v.sum().backward()
    np.testing.assert_array_equal(x.grad, [2.0, 4.0])


def test_transpose_view_follows_setitem():
    x = leaf(1.0, 2.0)
    h = x * 1
    v = h.T
    h[0] = x[1] * 5                   # v = [5 x1, x1]
    v.sum().backward()
    np.testing.assert_array_equal(x.grad, [0.0, 6.0])


def test_view_of_a_view_follows_too():
    x = leaf(1.0, 2.0, 3.0)
    h = x * 1
    v2 = h[1:][0:1]
    h *= x                            # v2 = x1^2
    (2 * v2).sum().backward()
    np.testing.assert_array_equal(x.grad, [0.0, 8.0, 0.0])


def test_view_of_a_constant_buffer_that_starts_to_require_grad():
    w = leaf(1.0, 2.0)
    buf = rd.tensor(np.zeros(2))
    v = buf[0:1]
    assert not v.requires_grad
    buf += w * w
    assert v.requires_grad
    v.sum().backward()
    np.testing.assert_array_equal(w.grad, [2.0, 0.0])


def test_view_of_a_constant_shares_its_version_counter():
    # the saved view changes with its base: backward must refuse, not use the new value
    w = leaf(1.0, 2.0)
    buf = rd.tensor(np.ones(2))
    v = buf[0:1]
    y = (v * w).sum()
    buf += 1
    with pytest.raises(BackwardError, match="modified by an inplace operation"):
        y.backward()


def test_writing_through_an_index_view_reaches_the_base_graph():
    w = leaf(1.0, 2.0)
    buf = rd.tensor(np.zeros((2, 2)))
    row = buf[0]
    row[:] = w * w                    # buf = [[w0^2, w1^2], [0, 0]]
    assert buf.requires_grad and row.requires_grad
    (buf * np.array([[1.0, 10.0], [100.0, 1000.0]])).sum().backward()
    np.testing.assert_array_equal(w.grad, [2.0, 40.0])


def test_augmented_assignment_on_a_slice_of_a_non_leaf():
    # Python runs h[1:3] += y as: v = h[1:3]; v += y; h[1:3] = v
    x = leaf(1.0, 2.0, 3.0)
    h = x * 2
    h[1:3] += x[0:2] * x[0:2]          # h = [2x0, 2x1 + x0^2, 2x2 + x1^2]
    (h * h).sum().backward()
    h0, h1, h2 = 2.0, 4.0 + 1.0, 6.0 + 4.0
    np.testing.assert_allclose(x.grad, [2 * h0 * 2 + 2 * h1 * 2 * 1.0, 2 * h1 * 2 + 2 * h2 * 2 * 2.0,
                                        2 * h2 * 2])


def test_in_place_op_on_an_index_view_keeps_the_ops_original_value():
    x = leaf(1.0, 2.0, 3.0)
    h = x * 2
    v = h[0:2]
    v *= x[1:3]                       # h = [2 x0 x1, 2 x1 x2, 2 x2]
    (h * h).sum().backward()
    np.testing.assert_allclose(x.grad, [32.0, 160.0, 120.0])   # PyTorch's numbers


# programs that write through views other than indexing; each also runs on plain arrays
# (NumPy writes through the same views), which the finite differences use
VIEW_WRITES = {
    "transpose": lambda h, x: h.T.__imul__(x.T),
    "reshape": lambda h, x: h.reshape(3, 2).__iadd__(x.reshape(3, 2) ** 2),
    "index of a transpose": lambda h, x: h.T[0].__imul__(x[:, 1]),
    "diagonal": lambda h, x: np.diagonal(h).__imul__(x[:, 2]),  # (read-only in NumPy; see below)
    "flip": lambda h, x: np.flip(h).__iadd__(x),
    "slice of a ravel": lambda h, x: np.ravel(h)[1:4].__imul__(np.ravel(x)[0:3]),
    "swapaxes then expand_dims": lambda h, x: np.expand_dims(np.swapaxes(h, 0, 1), 0).__isub__(np.sin(x.T)),
}


@pytest.mark.parametrize("name", list(VIEW_WRITES))
def test_in_place_op_on_any_view_writes_through_to_its_base(name):
    """Gradients of writes through reshape/transpose/diagonal/flip views (PyTorch's CopySlices)
    against central differences; the first four also match PyTorch 2.13's gradients exactly."""
    from dualad.testing import numerical_jacobian
    prog = VIEW_WRITES[name]
    x0 = np.arange(1.0, 7.0).reshape(2, 3) / 3
    w = np.linspace(0.5, 2.0, 6).reshape(2, 3)

    def f(x):
        h = x * 1.0
        if name == "diagonal" and type(x) is np.ndarray:  # NumPy's diagonal is a read-only view
            h[[0, 1], [0, 1]] *= x[:, 2]
        else:
            prog(h, x)
        return h, (h * h * w).sum()

    x = rd.tensor(x0, requires_grad=True)
    h, out = f(x)
    np.testing.assert_array_equal(h.data, f(x0.copy())[0])  # NumPy's values
    out.backward()
    expected = numerical_jacobian(lambda v: f(v)[1], x0).reshape(x0.shape)
    np.testing.assert_allclose(x.grad, expected, rtol=1e-7, atol=1e-8)


def test_view_writes_that_cannot_be_written_through_are_refused():
    h = leaf(1.0, 2.0) * 1
    v = np.broadcast_to(h, (3, 2))  # three view elements share each base element
    with pytest.raises(InplaceError, match="more than one element .* broadcast_to"):
        v += 1
    with rd.no_grad():
        u = h.reshape(2, 1)  # made without grad mode: nothing records the base's write
    with pytest.raises(InplaceError, match="made without grad mode"):
        u += leaf(1.0)


def test_views_do_not_keep_memory_alive():
    import gc
    import importlib
    tmod = importlib.import_module("reversead.tensor")  # (the package exports a function ``tensor``)
    x = leaf(*range(6))
    before = len(tmod._VIEWS)
    for i in range(50):
        (x.T * 2).sum()
    gc.collect()
    assert sum(len(e) for e in tmod._VIEWS.values()) <= before + 1
    del x
    gc.collect()
    assert len(tmod._VIEWS) <= before


# -- zero_, shape-changing in-place ops, relu -----------------------------------------------------
def test_zero_on_a_non_leaf_cuts_the_gradient():
    x = leaf(1.0, 2.0)
    h = x * 3
    h.zero_()
    h.sum().backward()
    np.testing.assert_array_equal(x.grad, [0.0, 0.0])
    np.testing.assert_array_equal(h.data, [0.0, 0.0])


def test_zero_on_a_leaf_that_requires_grad_is_refused_outside_no_grad():
    x = leaf(1.0, 2.0)
    with pytest.raises(InplaceError, match="leaf Variable"):
        x.zero_()
    with rd.no_grad():
        x.zero_()
    np.testing.assert_array_equal(x.data, [0.0, 0.0])


def test_in_place_op_may_not_change_the_shape():
    h = leaf(1.0, 2.0) * 1
    with pytest.raises(ValueError, match="non-broadcastable output operand with shape \\(2,\\)"):
        h += np.ones((3, 2))
    assert h.shape == (2,)


def test_relu_derivative_at_zero_is_zero_as_in_pytorch():
    x = leaf(-1.0, 0.0, 2.0)
    x.relu().sum().backward()
    np.testing.assert_array_equal(x.grad, [0.0, 0.0, 1.0])


# -- grad mode as a bare decorator, and on generators --------------------------------------------
def test_no_grad_and_enable_grad_without_parentheses():
    @rd.no_grad
    def double(t):
        return 2 * t

    @rd.enable_grad
    def triple(t):
        return 3 * t

    x = leaf(1.0)
    assert not double(x).requires_grad and double.__name__ == "double"
    with rd.no_grad():
        assert triple(x).requires_grad


def test_no_grad_generator_runs_its_body_without_grad_and_the_caller_with_it():
    seen = []

    @rd.no_grad()
    def gen(t):
        got = yield 2 * t
        seen.append(rd.is_grad_enabled())
        yield got * t
        return "done"

    x = leaf(1.0)
    g = gen(x)
    first = next(g)
    assert not first.requires_grad and rd.is_grad_enabled()
    assert not g.send(3.0).requires_grad
    assert seen == [False]
    with pytest.raises(StopIteration) as stop:
        next(g)
    assert stop.value.value == "done"
    assert rd.is_grad_enabled()


# -- .grad accumulates in place; grad(materialize_grads); int() and format() ------------------
def test_grad_accumulates_into_the_same_array():
    x = leaf(1.0, 2.0)
    (x * x).sum().backward()
    first = x.grad
    (x * x).sum().backward()
    assert x.grad is first
    np.testing.assert_array_equal(first, [4.0, 8.0])


def test_grad_accumulation_into_a_read_only_grad_makes_a_new_array():
    x = leaf(1.0, 2.0)
    x.grad = np.broadcast_to(np.array(1.0), (2,))
    (x * x).sum().backward()
    np.testing.assert_array_equal(x.grad, [3.0, 5.0])


def test_materialize_grads_gives_zeros_for_unused_inputs():
    x, y = leaf(1.0, 2.0), leaf(3.0)
    gx, gy = rd.grad((x * x).sum(), [x, y], materialize_grads=True)
    np.testing.assert_array_equal(gx, [2.0, 4.0])
    np.testing.assert_array_equal(gy, [0.0])
    with pytest.raises(ValueError, match="allow_unused"):
        rd.grad((x * x).sum(), [x, y], allow_unused=False, materialize_grads=True)
    with pytest.raises(BackwardError, match="allow_unused=True"):
        rd.grad((x * x).sum(), [x, y])


def test_one_element_tensors_convert_and_format_as_numbers():
    t = rd.tensor(3.75, requires_grad=True)
    assert int(t) == 3 and f"{t:.1f}" == "3.8"
    assert f"{leaf(1.0, 2.0)}".startswith("tensor(")
