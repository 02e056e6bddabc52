"""Every error path of ``reversead``: a clear error with PyTorch's key phrase, never a wrong answer."""
from __future__ import annotations

import numpy as np
import pytest

import reversead as rd


def _leaf(shape=(3,), value=1.0):
    return rd.tensor(np.full(shape, value), requires_grad=True)


# -- backward on a non-scalar / wrong gradient shape ---------------------------------------
def test_non_scalar_backward_without_gradient():
    x = _leaf()
    with pytest.raises(RuntimeError, match="grad can be implicitly created only for scalar outputs") as info:
        (x * 2).backward()
    assert "(3,)" in str(info.value)  # says the shape
    assert x.grad is None


def test_non_scalar_grad_without_grad_outputs():
    x = _leaf((2, 2))
    with pytest.raises(RuntimeError, match="grad can be implicitly created only for scalar outputs"):
        rd.grad(x * 2, [x])


def test_one_element_non_0d_output_is_accepted():
    x = _leaf((1, 1), 3.0)
    (x * x).backward()  # one element: the implicit gradient is 1, as in PyTorch
    assert float(x.grad[0, 0]) == 6.0


@pytest.mark.parametrize("shape", [(4,), (3, 1), ()])
def test_gradient_of_wrong_shape_names_both_shapes(shape):
    x = _leaf()
    with pytest.raises((RuntimeError, ValueError)) as info:
        (x * 2).backward(np.ones(shape))
    msg = str(info.value)
    assert "shape" in msg and str(shape) in msg and "(3,)" in msg
    assert x.grad is None


def test_grad_outputs_of_wrong_shape():
    x = _leaf((2, 3))
    with pytest.raises((RuntimeError, ValueError)) as info:
        rd.grad(x * 2, [x], grad_outputs=[np.ones((3, 2))])
    assert "(3, 2)" in str(info.value) and "(2, 3)" in str(info.value)


def test_vjp_cotangent_of_wrong_shape():
    with pytest.raises(ValueError) as info:
        rd.vjp(np.sin, np.ones(3), np.ones(4))
    assert "(4,)" in str(info.value) and "(3,)" in str(info.value)


def test_gradient_of_vector_function_refused():
    with pytest.raises(ValueError, match="scalar"):
        rd.gradient(np.sin, np.ones(3))


# -- freed graph -------------------------------------------------------------------------------
@pytest.mark.parametrize("op", [np.exp, np.sin, lambda t: t * t, lambda t: t @ t, np.tanh])
def test_second_backward_through_freed_graph(op):
    x = _leaf((3,), 0.5)
    y = np.sum(op(x))
    y.backward()
    with pytest.raises(RuntimeError, match="retain_graph=True") as info:
        y.backward()
    assert "second time" in str(info.value)


def test_second_grad_through_freed_graph():
    x = _leaf((3,), 0.5)
    y = np.sum(np.exp(x))
    rd.grad(y, [x])
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        rd.grad(y, [x])


def test_freed_graph_shared_subgraph():
    x = _leaf((3,), 0.5)
    h = np.exp(x)
    np.sum(h * h).backward()
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        np.sum(h).backward()  # h's node was freed by the first backward


def test_custom_function_saved_tensors_after_free():
    class Sq(rd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x * x

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return 2 * x * g

    x = _leaf()
    y = Sq.apply(x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        y.backward()


# -- in-place ------------------------------------------------------------------------------------
def test_modified_saved_value_names_op_and_versions():
    x = _leaf((3,), 2.0)
    h = x * 1.0
    y = np.sin(h)        # SinBackward saves h
    h += 1.0
    with pytest.raises(RuntimeError) as info:
        y.sum().backward()
    msg = str(info.value)
    assert "modified by an inplace operation" in msg
    assert "SinBackward" in msg
    assert "version 1" in msg and "expected version 0" in msg
    assert "test_reverse_errors.py" in msg  # where the op was created
    assert x.grad is None                   # no partial (wrong) gradient was accumulated


def test_modified_saved_value_via_setitem():
    x = _leaf((3,), 2.0)
    h = x * 1.0
    y = h * h
    h[0] = 5.0
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.sum().backward()


def test_modified_saved_value_twice_reports_version_2():
    x = _leaf((3,), 2.0)
    h = x * 1.0
    y = h ** 3
    h += 1.0
    h *= 2.0
    with pytest.raises(RuntimeError, match="version 2"):
        y.sum().backward()


def test_modified_saved_output():
    x = _leaf((3,), 0.5)
    y = np.exp(x)        # ExpBackward saves its output y
    z = y.sum()
    y += 1.0
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        z.backward()


def test_modified_constant_saved_by_op():
    c = rd.tensor(np.array([1.0, 2.0, 3.0]))   # no grad, but the product saves it for x's gradient
    x = _leaf()
    y = (x * c).sum()
    c += 1.0
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.backward()


def test_inplace_on_leaf_requiring_grad():
    x = _leaf()
    for op in (lambda t: t.__iadd__(1.0), lambda t: t.__imul__(2.0), lambda t: t.__isub__(1.0),
               lambda t: t.__itruediv__(2.0), lambda t: t.__setitem__(0, 3.0), lambda t: t.zero_(),
               lambda t: np.add(t, 1.0, out=t)):
        with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
            op(x)
    np.testing.assert_array_equal(x.data, np.ones(3))  # nothing was modified
    assert x.is_leaf and x.grad_fn is None


def test_inplace_on_leaf_allowed_in_no_grad():
    x = _leaf()
    with rd.no_grad():
        x += 1.0
        x[0] = 7.0
        x.zero_()
    assert x.is_leaf and x.requires_grad
    np.testing.assert_array_equal(x.data, np.zeros(3))


# -- nothing requires grad ---------------------------------------------------------------------
def test_backward_on_tensor_not_requiring_grad():
    x = rd.tensor(np.ones(3))
    with pytest.raises(RuntimeError, match="does not require grad"):
        x.sum().backward()


def test_backward_on_no_grad_result():
    x = _leaf()
    with rd.no_grad():
        y = x.sum()
    with pytest.raises(RuntimeError, match="does not require grad"):
        y.backward()


def test_grad_input_not_requiring_grad():
    x = _leaf()
    c = rd.tensor(np.ones(3))
    with pytest.raises(RuntimeError, match="does not require grad"):
        rd.grad((x * c).sum(), [c])


def test_unused_input_without_allow_unused():
    x = _leaf()
    u = _leaf()
    with pytest.raises(RuntimeError, match="allow_unused=True") as info:
        rd.grad((x * 2).sum(), [x, u])
    assert "inputs[1]" in str(info.value)


def test_requires_grad_false_on_non_leaf():
    x = _leaf()
    with pytest.raises(RuntimeError, match="leaf"):
        (x * 2).requires_grad_(False)


def test_retain_grad_and_hook_on_tensor_not_requiring_grad():
    c = rd.tensor(np.ones(3))
    with pytest.raises(RuntimeError, match="requires_grad=False"):
        c.retain_grad()
    with pytest.raises(RuntimeError, match="doesn't require gradient"):
        c.register_hook(lambda g: g)


# -- custom Function -------------------------------------------------------------------------
def test_custom_function_incorrect_number_of_gradients():
    class TooMany(rd.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, g):
            return 2 * g, g

    x = _leaf()
    with pytest.raises(RuntimeError, match="incorrect number of gradients") as info:
        TooMany.apply(x).sum().backward()
    assert "expected 1, got 2" in str(info.value)
    assert "TooManyBackward" in str(info.value)


def test_custom_function_gradient_of_wrong_shape():
    class WrongShape(rd.Function):
        @staticmethod
        def forward(ctx, x):
            return x.sum()

        @staticmethod
        def backward(ctx, g):
            return np.ones((2, 2)) * g

    x = _leaf((3,))
    with pytest.raises(RuntimeError) as info:
        WrongShape.apply(x).backward()
    assert "(2, 2)" in str(info.value) and "(3,)" in str(info.value)


# -- unsupported NumPy and conversions ----------------------------------------------------------
@pytest.mark.parametrize("call", [lambda t: np.histogram(t), lambda t: np.fft.fft(t)])
def test_unsupported_numpy_function_on_tensor(call):
    x = _leaf((4,))
    with pytest.raises(TypeError, match="not differentiable by reversead yet"):
        call(x)


def test_asarray_and_numpy_of_tensor_requiring_grad():
    x = _leaf()
    with pytest.raises(RuntimeError, match=r"detach\(\)"):
        np.asarray(x)
    with pytest.raises(RuntimeError, match=r"requires grad.*detach\(\)\.numpy\(\)"):
        x.numpy()
    with pytest.raises(RuntimeError):
        np.asarray(x * 2)
    # detached or not requiring grad: fine
    np.testing.assert_array_equal(x.detach().numpy(), np.ones(3))
    np.testing.assert_array_equal(np.asarray(rd.tensor(np.ones(3))), np.ones(3))
    with rd.no_grad():
        np.testing.assert_array_equal(np.asarray(x * 2), 2 * np.ones(3))


def test_item_of_many_elements():
    with pytest.raises(ValueError, match="3 elements"):
        _leaf().item()


def test_complex_and_non_numeric_data_refused():
    with pytest.raises(TypeError, match="complex"):
        rd.tensor(np.ones(2, dtype=complex))
    with pytest.raises(TypeError, match="numeric"):
        rd.tensor(np.array(["a", "b"]))


def test_backward_gradients_count_mismatch():
    x = _leaf()
    with pytest.raises(ValueError, match="2 gradients for 1 tensors"):
        rd.backward([x.sum()], [None, None])


def test_jacobian_bad_chunk():
    for chunk in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="chunk"):
            rd.jacobian(np.sin, np.ones(3), chunk=chunk)


def test_functional_non_numeric_input():
    with pytest.raises(TypeError):
        rd.gradient(lambda x: x, "abc")
    with pytest.raises(ValueError, match="empty"):
        rd.gradient(lambda *x: 0.0, ())


def test_errors_are_ad_errors():
    from dualad.errors import ADError
    x = _leaf()
    with pytest.raises(ADError):
        (x * 2).backward()
    with pytest.raises(rd.BackwardError):
        rd.tensor(1.0).backward()
    with pytest.raises(rd.InplaceError):
        x += 1


def test_numpy_converting_a_traced_argument_it_does_not_dispatch_on_is_refused():
    """np.interp dispatches on x, xp and fp only: a Tensor passed as ``left=`` beside plain
    arrays is turned into a float by NumPy's own code, which used to drop its gradient."""
    x, xp, fp = np.array([-1.0, 0.5, 3.0]), np.array([0.0, 1.0, 2.0]), np.array([1.0, 2.0, 0.0])
    left = rd.tensor(5.0, requires_grad=True)
    with pytest.raises(RuntimeError, match=r"np.interp converted a Tensor that requires grad .*"
                                           r"gradient would be lost"):
        np.interp(x, xp, fp, left=left)
    with pytest.raises(RuntimeError, match="np.interp converted"):
        np.interp(x, xp, fp, right=left * 2.0)
    # with a dispatched argument traced, reversead computes the call and keeps the gradient
    y = np.interp(x, xp, rd.tensor(fp), left=left, right=left * 2.0)
    y.sum().backward()
    assert left.grad == 1.0 + 2.0
    # the user's own conversions still drop the gradient deliberately, as in PyTorch
    assert float(left) == 5.0 and int(left) == 5 and complex(left) == 5.0
    with rd.no_grad():  # no graph is being built: nothing to lose
        np.testing.assert_array_equal(np.interp(x, xp, fp, left=left), [5.0, 1.5, 0.0])
    plain = rd.tensor(5.0)  # does not require grad
    np.testing.assert_array_equal(np.interp(x, xp, fp, left=plain), [5.0, 1.5, 0.0])


# which graphs a second backward (without retain_graph) may go through: those whose nodes saved
# no value, as in PyTorch 2.x (checked there: add, neg, sub, reshape/T, slicing, mean, cat,
# expand run again; a product or quotient with a number saves that number, exp saves its output)
@pytest.mark.parametrize("op, again", [
    (lambda t: t + 2.0, True), (lambda t: -t, True), (lambda t: 2.0 - t, True),
    (lambda t: t + t, True), (lambda t: np.mean(t), True),
    (lambda t: t * 3.0, False), (lambda t: t / 2.0, False), (lambda t: t * np.array(2.0), False),
    (np.exp, False), (lambda t: np.sin(t) + 1.0, False)])
@pytest.mark.parametrize("shape", [(), (3,)])
def test_second_backward_through_a_graph_that_saved_nothing(op, again, shape):
    x = _leaf(shape, 0.5)
    y = np.sum(op(x))
    y.backward()
    first = np.array(x.grad)
    if again:
        y.backward()
        np.testing.assert_allclose(x.grad, 2 * first)
    else:
        with pytest.raises(RuntimeError, match="second time"):
            y.backward()


@pytest.mark.parametrize("op", [lambda t: t.reshape(3, 1).T, lambda t: t[1:], lambda t: t[[0, 0, 2]],
                                lambda t: np.concatenate([t, t]), lambda t: np.broadcast_to(t, (2, 3))])
def test_second_backward_through_views_and_joins(op):
    x = _leaf((3,), 0.5)
    y = np.sum(op(x) * np.ones(1))  # (the product saved a constant: freed)
    y.backward()
    with pytest.raises(RuntimeError, match="second time"):
        y.backward()
    x.grad = None
    y = np.sum(op(x))  # structural ops save no values
    y.backward()
    first = np.array(x.grad)
    y.backward()
    np.testing.assert_allclose(x.grad, 2 * first)


def test_custom_function_that_saved_nothing_runs_again():
    class Double(rd.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2.0

        @staticmethod
        def backward(ctx, g):
            return g * 2.0

    x = _leaf((3,), 0.5)
    y = np.sum(Double.apply(x))
    y.backward()
    y.backward()
    np.testing.assert_allclose(x.grad, np.full(3, 4.0))
