"""reversead's functional transforms compose, as jax.grad(jax.grad(f)) and torch.func do.

Inside another transform's f, a transform records its backward pass and returns Tensors on
the outer graph; at the outermost level results stay plain arrays. Expected values are
hand-derived; dualad (forward over reverse) gives the same numbers where it applies.
"""
import numpy as np
import pytest

import dualad as da
import reversead as rd


def test_gradient_of_gradient_at_the_outer_point():
    # d/dy (x y^2) = 2xy; at y = x: 2x^2, whose derivative is 4x
    assert rd.gradient(lambda x: rd.gradient(lambda y: x * y ** 2, x), 2.0) == pytest.approx(8.0)


def test_gradient_of_gradient_at_a_constant_point():
    # d/dy (x y^2) at y = 1 is 2x: derivative 2 (the closure over x is differentiated)
    assert rd.gradient(lambda x: rd.gradient(lambda y: x * y ** 2, 1.0), 2.0) == pytest.approx(2.0)


def test_no_perturbation_confusion():
    # the API's example, in reverse mode: d/dx [x * d/dy (x + y)] = 1 ... and with x*y inside: 2x
    assert rd.gradient(lambda x: x * rd.gradient(lambda y: x + y, 1.0), 1.0) == pytest.approx(1.0)
    assert rd.gradient(lambda x: x * rd.gradient(lambda y: x * y, 1.0), 1.0) == pytest.approx(2.0)


def test_jacobian_of_gradient_is_the_hessian():
    x = np.array([1.0, 2.0])
    H = rd.jacobian(lambda z: rd.gradient(lambda y: np.sum(y ** 3), z), x)
    np.testing.assert_allclose(H, np.diag(6 * x))
    np.testing.assert_allclose(H, rd.hessian(lambda y: np.sum(y ** 3), x))


def test_gradient_through_an_inner_gradient_and_closure():
    x = np.array([1.0, 2.0])
    # inner gradient 3 y^2 x at y = x: 3 x^3 summed; outer: 9 x^2
    g = rd.gradient(lambda z: np.sum(rd.gradient(lambda y: np.sum(y ** 3 * z), z)), x)
    np.testing.assert_allclose(g, 9 * x ** 2)


def test_third_order_by_three_nested_gradients():
    f = lambda x: rd.gradient(lambda y: rd.gradient(lambda z: z ** 4, y), x)
    assert rd.gradient(f, 1.5) == pytest.approx(24 * 1.5)
    assert da.derivative(f, 1.5) == pytest.approx(24 * 1.5)


def test_inner_vjp_jacobian_hessian_and_hvp():
    x = np.array([1.0, 2.0])
    # vjp / jacobian of y -> y^2 x at y = x, summed: 2 sum(x^2); gradient 4x
    np.testing.assert_allclose(
        rd.gradient(lambda z: np.sum(rd.vjp(lambda y: y ** 2 * z, z, np.ones(2))[1]), x), 4 * x)
    np.testing.assert_allclose(rd.gradient(lambda z: np.sum(rd.jacobian(lambda y: y ** 2 * z, z)), x), 4 * x)
    # hessian of sum(y^3) z0 is diag(6 y z0); at y = z summed: 6 z0 (z0 + z1)
    expected = [6 * (2 * x[0] + x[1]), 6 * x[0]]
    np.testing.assert_allclose(
        rd.gradient(lambda z: np.sum(rd.hessian(lambda y: np.sum(y ** 3) * z[0], z)), x), expected)
    np.testing.assert_allclose(
        rd.gradient(lambda z: np.sum(rd.hvp(lambda y: np.sum(y ** 3) * z[0], z, np.ones(2))), x), expected)


def test_hessian_of_a_function_that_takes_a_gradient():
    x = np.array([1.0, 2.0])
    # sum(3 y^2 x) at y = x is 3 sum(x^3): Hessian diag(18 x)
    H = rd.hessian(lambda z: np.sum(rd.gradient(lambda y: np.sum(y ** 3 * z), z)), x)
    np.testing.assert_allclose(H, np.diag(18 * x))


def test_nested_tuple_inputs_and_float32():
    x32 = np.array([1.0, 2.0], dtype=np.float32)
    # inner d/da sum(a b z) = b z with b = 2: summed 2 sum(z), gradient 2
    g = rd.gradient(lambda z: np.sum(rd.gradient(lambda a, b: np.sum(a * b * z), (z, 2.0))[0]), x32)
    np.testing.assert_allclose(g, [2.0, 2.0])
    assert g.dtype == np.float32


def test_outermost_results_stay_plain_arrays():
    g = rd.gradient(lambda x: np.sum(x ** 2), np.array([1.0, 2.0]))
    assert type(g) is np.ndarray

    def f(x):
        g = rd.gradient(lambda y: np.sum(y ** 2), np.ones(2))   # depends on nothing outer
        return np.sum(x * g)
    np.testing.assert_allclose(rd.gradient(f, np.array([1.0, 2.0])), [2.0, 2.0])


def test_user_tape_code_gets_plain_arrays_at_the_top_level():
    # outside any transform, a Tensor argument is read as its value (torch.autograd.functional)
    w = rd.tensor(np.array([1.0, 2.0]), requires_grad=True)
    g = rd.gradient(lambda v: np.sum(v * w), np.ones(2))
    assert type(g) is np.ndarray
    np.testing.assert_allclose(g, [1.0, 2.0])


def test_nested_tuple_inputs_keep_their_structure_as_in_dualad():
    f = lambda a, b: a * b[0] + np.sum(b[1] ** 2)
    x = (2.0, (3.0, np.array([1.0, 2.0])))
    g = rd.gradient(f, x)
    assert isinstance(g, tuple) and isinstance(g[1], tuple)
    np.testing.assert_allclose(g[0], 3.0)
    np.testing.assert_allclose(g[1][0], 2.0)
    np.testing.assert_allclose(g[1][1], [2.0, 4.0])
    for name in ("gradient", "jacobian", "hessian"):
        r, d = getattr(rd, name)(f, x), getattr(da, name)(f, x)
        for a, b in zip(_leaves(r), _leaves(d)):
            np.testing.assert_allclose(a, b)
    np.testing.assert_allclose(rd.vjp(f, x, 1.0)[1][1][1], [2.0, 4.0])
    np.testing.assert_allclose(rd.hvp(f, x, (1.0, (0.0, np.zeros(2))))[1][0], 1.0)


def _leaves(tree):
    if isinstance(tree, (tuple, list)):
        return [leaf for item in tree for leaf in _leaves(item)]
    return [tree]


@pytest.mark.parametrize("call", [
    lambda: rd.gradient(lambda x: x * da.derivative(lambda y: x + y, 1.0), 1.0),
    lambda: rd.jacobian(lambda x: da.gradient(lambda y: np.sum(x * y ** 2), x), np.array([1.0, 2.0])),
    lambda: rd.gradient(lambda x: da.jvp(lambda y: x * y, 1.0, 1.0)[1], 2.0),
], ids=["derivative-closure", "gradient-of-tensor", "jvp-closure"])
def test_reverse_over_forward_is_refused_clearly(call):
    # (the tape may hold duals, never the reverse): a clear error, not an AttributeError inside
    with pytest.raises(da.DerivativeDropError, match="reverse over forward"):
        call()
