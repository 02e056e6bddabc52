"""Forward mode against NumPy's semantics: views and in-place writes, the tangent shapes of
``DualArray``, dtypes of derivatives, nested inputs, escaped duals, conversions and formatting.

Each test states what NumPy (or a finite difference, or reverse mode) gives and checks that
dualad gives the same, primal and tangent alike.
"""
from __future__ import annotations

import numpy as np
import pytest

import dualad
import reversead
from dualad import DerivativeDropError, Dual, DualArray, PerturbationError, ShapeError
from dualad.errors import InplaceError
from dualad.testing import numerical_jacobian


def on_a_copy(f):
    """``f`` for the finite-difference oracle: a plain input is copied first (f writes into it)."""
    return lambda x: f(np.array(x) if type(x) is np.ndarray else x)


def check_jvp_against_numpy(f, x, v):
    """jvp's primal equals f on a plain copy, its tangent the central difference along v."""
    x_before, v_before = x.copy(), v.copy()
    y, t = dualad.jvp(f, x, v)
    np.testing.assert_array_equal(x, x_before)  # the caller's arrays are never written
    np.testing.assert_array_equal(v, v_before)
    np.testing.assert_allclose(y, on_a_copy(f)(x), rtol=1e-12)
    h = 1e-6
    fd = (on_a_copy(f)(x + h * v) - on_a_copy(f)(x - h * v)) / (2 * h)
    np.testing.assert_allclose(t, fd, rtol=1e-6, atol=1e-8)
    J = dualad.jacobian(f, x)
    np.testing.assert_array_equal(x, x_before)
    np.testing.assert_allclose(J, numerical_jacobian(on_a_copy(f), x), rtol=1e-6, atol=1e-8)
    return y, t


# -- 1. views are views, in-place writes write into them ------------------------------
def times_ten_through_a_slice(x):
    v = x[1:]
    v *= 10.0
    return x


def plus_one_through_reshape(x):
    r = x.reshape(3)
    r += 1.0
    return x * x


def set_through_new_axis(x):
    x[:, None][0, 0] = 100.0
    return x


def zero_through_transpose(x):
    x.T[0] = 0.0
    return np.sin(x)


@pytest.mark.parametrize("f, x", [
    (times_ten_through_a_slice, np.array([1.0, 2.0, 3.0])),
    (plus_one_through_reshape, np.array([[1.0, 2.0, 3.0]])),
    (set_through_new_axis, np.array([1.0, 2.0, 3.0])),
    (zero_through_transpose, np.array([[1.0, 2.0], [3.0, 4.0]])),
])
def test_in_place_write_through_a_view_reaches_the_base(f, x):
    check_jvp_against_numpy(f, x, np.ones_like(x))


def test_the_issue_example_exactly():
    y, t = dualad.jvp(times_ten_through_a_slice, np.array([1.0, 2.0, 3.0]), np.ones(3))
    np.testing.assert_array_equal(y, [1.0, 20.0, 30.0])
    np.testing.assert_array_equal(t, [1.0, 10.0, 10.0])


def test_a_view_sees_later_writes_to_its_base():
    def f(x):
        tail = x[1:]
        x[1] = 5.0 * x[0] ** 2  # written after the view was taken: NumPy's view sees it
        x[2:] += x[:1]
        return tail * 1.0
    check_jvp_against_numpy(f, np.array([1.5, 2.0, 3.0, 4.0]), np.array([1.0, -2.0, 0.5, 3.0]))


def test_views_of_views_and_out_arguments():
    def f(x):
        y = x * 1.0
        block = y.reshape(2, 3)[:, 1:]   # a view of a view
        np.multiply(block, x[:2, None], out=block)
        np.sin(y[:2], out=y[4:])         # out= a view
        return y
    check_jvp_against_numpy(f, np.linspace(0.3, 1.5, 6), np.linspace(1.0, -1.0, 6))


def test_fancy_and_boolean_writes_through_a_view():
    def f(x):
        y = x.reshape(2, 2, 3)[:, :, 1:]
        y[[0, 1], :, [1, 0]] = x[:2] ** 2       # advanced indices apart: NumPy moves their axis first
        inner = x[1:]
        inner[inner > 1.0] *= 3.0               # a boolean mask on a view
        return x
    check_jvp_against_numpy(f, np.linspace(0.25, 2.45, 12), np.linspace(1.0, 2.0, 12))


def test_vector_mode_writes_every_direction():
    x = np.array([1.0, 2.0, 3.0, 4.0])
    for chunk in (1, 3, 4):
        J = dualad.jacobian(times_ten_through_a_slice, x, chunk=chunk)
        np.testing.assert_array_equal(J, np.diag([1.0, 10.0, 10.0, 10.0]))


def test_an_integer_index_is_a_copy_as_in_numpy():
    def swap(x):
        first = x[0]          # NumPy: a scalar, not a view
        x[0] = x[1]
        x[1] = first
        return x * 1.0
    check_jvp_against_numpy(swap, np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 3.0]))


def test_a_result_that_shares_no_memory_is_not_written():
    def f(x):
        y = x + 0.0           # (x + 0's tangent is x's own array unless copied)
        y[0] = 7.0
        z = x.copy()
        z[1:] = 0.0
        return x, y, z
    x, v = np.array([1.0, 2.0, 3.0]), np.array([1.0, 1.0, 1.0])
    (px, py, pz), (tx, ty, tz) = dualad.jvp(f, x, v)
    np.testing.assert_array_equal(px, x)
    np.testing.assert_array_equal(tx, v)
    np.testing.assert_array_equal(ty, [0.0, 1.0, 1.0])
    np.testing.assert_array_equal(tz, [1.0, 0.0, 0.0])


def writes_into_its_input(x):
    x *= 2.0  # f writes into its input (and through views: the tests above)
    x[1:] = x[1:] + x[:-1] ** 2
    return np.sum(x ** 2)


TRANSFORMS = {
    "jvp": lambda f, x: dualad.jvp(f, x, np.linspace(1.0, -1.0, x.size).reshape(x.shape)),
    "jacobian": dualad.jacobian, "gradient": dualad.gradient, "hessian": dualad.hessian,
}


@pytest.mark.parametrize("transform", list(TRANSFORMS))
def test_the_callers_inputs_are_never_modified(transform):
    x, v = np.array([1.0, 2.0, 3.0]), np.array([1.0, 0.0, -1.0])
    result = TRANSFORMS[transform](writes_into_its_input, x)
    np.testing.assert_array_equal(x, [1.0, 2.0, 3.0])
    dualad.jvp(writes_into_its_input, x, v)
    np.testing.assert_array_equal(x, [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(v, [1.0, 0.0, -1.0])
    read_only = np.array([0.5, 1.0, 1.5])
    read_only.flags.writeable = False
    TRANSFORMS[transform](writes_into_its_input, read_only)  # works: f writes into its own copy
    if transform == "gradient":  # and f's in-place steps are differentiated
        reference = numerical_jacobian(on_a_copy(writes_into_its_input), x)
        np.testing.assert_allclose(result, reference, rtol=1e-6)


def test_outputs_are_not_aliases_of_the_inputs():
    x, v = np.array([1.0, 2.0]), np.array([3.0, 4.0])
    y, t = dualad.jvp(lambda a: a, x, v)
    y[0] = t[0] = 0.0  # writable, and the caller's arrays stay as they were
    np.testing.assert_array_equal(x, [1.0, 2.0])
    np.testing.assert_array_equal(v, [3.0, 4.0])
    J = dualad.jacobian(lambda a: a, x)
    J[0, 0] = 5.0


def test_in_place_writes_in_nested_transforms():
    def in_place(x):
        y = x * 1.0
        head = np.sum(y[:2])     # a view, gone before the writes below
        y[1:] = y[1:] * x[:-1]   # into y itself: also in a nested transform (hessian)
        y[::2] += np.sin(x[::2])
        return np.sum(y ** 2) + head

    def out_of_place(x):
        y = np.concatenate([x[:1], x[1:] * x[:-1]])
        y = y + np.where(np.arange(x.size) % 2 == 0, np.sin(x), 0.0)
        return np.sum(y ** 2) + x[0] + x[1]
    x = np.linspace(0.2, 1.2, 5)
    np.testing.assert_allclose(dualad.hessian(in_place, x), reversead.hessian(out_of_place, x), rtol=1e-12)
    np.testing.assert_allclose(dualad.gradient(in_place, x), reversead.gradient(out_of_place, x), rtol=1e-12)

    def through_views(x):
        y = x * 1.0
        head = y[:2]             # alive across the writes below
        tail = y[1:]
        tail *= x[:-1]           # nested: y's tangent and its views' take the outer perturbation
        y[::2] += np.sin(x[::2])
        return np.sum(y ** 2) + np.sum(head) - np.sum(head)
    reference = lambda v: out_of_place(v) - v[0] - v[1]  # noqa: E731
    np.testing.assert_allclose(dualad.hessian(through_views, x), reversead.hessian(reference, x), rtol=1e-12)
    np.testing.assert_allclose(dualad.gradient(through_views, x), reversead.gradient(reference, x),
                               rtol=1e-12)

    def through_flip(x):
        y = x * 1.0
        flipped = np.flip(y)
        flipped[0] = x[0] ** 2  # a view whose tangent is a copy: refused, as in one transform
        return np.sum(y)
    with pytest.raises(InplaceError, match="flip"):
        dualad.hessian(through_flip, x)


def test_a_view_whose_tangent_is_a_copy_refuses_writes_while_alive():
    def write_while_flipped(x):
        flipped = np.flip(x)   # NumPy: a view; its tangent here is a gathered copy
        flipped[0] = 5.0
        return x

    def write_after(x):
        total = np.sum(np.flip(x))  # the flipped view is gone before the write
        x[0] = total
        return x
    with pytest.raises(InplaceError, match="flip"):
        dualad.jvp(write_while_flipped, np.ones(3), np.ones(3))
    check_jvp_against_numpy(write_after, np.array([1.0, 2.0, 3.0]), np.array([1.0, 0.5, 2.0]))
    check_jvp_against_numpy(lambda x: (np.flip(x).copy().__setitem__(0, 5.0), x * 2.0)[1],
                            np.array([1.0, 2.0]), np.array([1.0, 1.0]))


def test_writing_into_a_read_only_view_is_numpys_error():
    def f(x):
        b = np.broadcast_to(x, (2, 3))
        b[0, 0] = 1.0
        return b
    with pytest.raises(ValueError, match="read-only"):
        dualad.jvp(f, np.ones(3), np.ones(3))


def test_a_newer_derivative_written_into_a_viewed_array_raises():
    def outer(x):
        buf = x * 1.0
        tail = buf[1:]

        def inner(b):
            buf[0] = b * 2.0  # a value of the inner differentiation, into the outer's buffer
            return b
        dualad.derivative(inner, 1.0)
        return tail
    with pytest.raises(InplaceError, match="shares memory with a view"):
        dualad.jacobian(outer, np.ones(3))


def test_in_place_on_a_hand_made_dual_array():
    p, t = np.array([1.0, 2.0, 3.0]), np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    d = DualArray(p, t)
    d[1:] *= DualArray(np.array([2.0, 2.0]), np.ones((2, 2)))
    np.testing.assert_array_equal(d.primal, [1.0, 4.0, 6.0])
    np.testing.assert_array_equal(d.tangent, [[1.0, 2.0, 3.0], [0.0, 4.0, 3.0]])
    assert d.primal is p  # wrapped without a copy, written in place
    with pytest.raises(PerturbationError):
        d[0] = DualArray(np.array(1.0), np.ones((3,)))  # k = 3 into k = 2


# -- 2. DualArray's tangent: S (one direction) or (k, *S) ----------------------------
@pytest.mark.parametrize("shape", [(1, 3), (1,), (3,), (2, 1), ()])
def test_a_tangent_of_the_primals_shape_is_one_direction(shape):
    d = DualArray(np.ones(shape), np.full(shape, 5.0))
    assert d.k == 1 and d.tangent.shape == (1,) + shape
    np.testing.assert_array_equal(d.tangent[0], np.full(shape, 5.0))
    e = DualArray(np.ones(shape), np.ones((4,) + shape))
    assert e.k == 4
    with pytest.raises(ShapeError):
        DualArray(np.ones(shape), np.ones((2, 7) + shape))


# -- 3. dtypes of derivatives ---------------------------------------------------------
X32 = np.ones(3, np.float32)


@pytest.mark.parametrize("f", [lambda x: 1.0, lambda x: np.sum(x) * np.float64(2), lambda x: np.sum(x ** 2)],
                         ids=["constant", "promoted", "float32"])
def test_gradient_and_hessian_have_the_inputs_dtype(f):
    for module in (dualad, reversead):
        assert module.gradient(f, X32).dtype == np.float32
        assert module.hessian(f, X32).dtype == np.float32
    ga, gb = dualad.gradient(lambda a, b: np.sum(a) * np.sum(b), (X32, np.ones(2)))
    assert (ga.dtype, gb.dtype) == (np.float32, np.float64)
    np.testing.assert_allclose(dualad.gradient(f, X32), reversead.gradient(f, X32), rtol=1e-6)


def test_jacobian_rows_have_the_outputs_dtype_and_constants_follow_numpy_promotion():
    # a constant output: NumPy's promotion of it with x (a Python float is weak): as reversead
    assert dualad.derivative(lambda t: 5.0, np.float32(3)).dtype == np.float32
    assert dualad.jacobian(lambda x: 1.0, X32).dtype == np.float32
    assert dualad.jacobian(lambda x: 1.0, X32).dtype == reversead.jacobian(lambda x: 1.0, X32).dtype
    assert dualad.jvp(lambda x: 1.0, X32, X32)[1].dtype == np.float32
    # an output f promotes to float64: forward rows in the output's dtype (JAX's jacfwd),
    # reverse blocks in the input's (jacrev); the values agree
    promoted = lambda x: x * np.float64(2)  # noqa: E731
    assert dualad.jacobian(promoted, X32).dtype == np.float64
    assert reversead.jacobian(promoted, X32).dtype == np.float32
    np.testing.assert_allclose(dualad.jacobian(promoted, X32), reversead.jacobian(promoted, X32))
    assert dualad.derivative(lambda t: t * np.float64(2), np.float32(3)).dtype == np.float64
    assert dualad.jacobian(lambda x: x * 2.0, X32).dtype == np.float32


# -- 4. Dual's tangent has its primal's dtype ----------------------------------------
def test_dual_tangent_takes_the_primal_dtype():
    assert Dual(np.float32(1.0), 1.0).tangent.dtype == np.float32
    assert Dual(np.float32(1.0), np.array([1.0, 2.0])).tangent.dtype == np.float32
    assert Dual(1.0, np.float32(1.0)).tangent.dtype == np.float64
    assert (Dual(np.float32(2.0), 1.0) * Dual(np.float32(3.0), 1.0)).tangent.dtype == np.float32


# -- 5. jvp: a tangent of its primal's type -------------------------------------------
def test_jvp_of_a_0d_array_gives_0d_arrays():
    y, t = dualad.jvp(lambda x: 2 * x, np.array(1.0), 1.0)
    assert type(y) is np.ndarray and type(t) is np.ndarray and y.shape == t.shape == ()
    assert (y, t) == (2.0, 2.0)
    y, t = dualad.jvp(np.sum, np.ones(3), np.ones(3))
    assert type(t) is type(y)
    y, t = dualad.jvp(lambda x: 2 * x, 1.0, 1.0)
    assert np.ndim(y) == np.ndim(t) == 0 and not isinstance(t, np.ndarray) and not isinstance(y, np.ndarray)


# -- 6. nested tuple/list inputs keep their structure ------------------------------------
def test_nested_inputs_round_trip():
    seen = []

    def f(a, b):
        seen.append(type(b))
        return a * b[0] + a * b[1][0] ** 2

    x = (2.0, (3.0, [np.array([1.0, 2.0])]))
    g = dualad.gradient(lambda a, b: np.sum(f(a, b)), x)
    assert all(t is tuple for t in seen)
    ga, (gb0, (gb1,)) = g
    assert isinstance(g[1], tuple) and isinstance(g[1][1], list)
    assert ga == pytest.approx(3.0 * 2 + 5.0)  # sum(b0 + b1²)
    assert gb0 == pytest.approx(4.0)           # 2 elements times a
    np.testing.assert_allclose(gb1, 2 * 2.0 * np.array([1.0, 2.0]))
    ga, (gb,) = dualad.gradient(lambda a, b: a * b[0], (2.0, (3.0,)))
    assert (ga, gb) == (3.0, 2.0)

    J = dualad.jacobian(f, x)
    assert J[0].shape == (2,) and J[1][0].shape == (2,) and J[1][1][0].shape == (2, 2)
    np.testing.assert_allclose(J[1][1][0], np.diag(2 * 2.0 * np.array([1.0, 2.0])))
    y, t = dualad.jvp(f, x, (1.0, (0.0, [np.zeros(2)])))
    np.testing.assert_allclose(t, [3.0 + 1.0, 3.0 + 4.0])
    with pytest.raises(ShapeError, match=r"v\[1\]"):
        dualad.jvp(f, x, (1.0, 0.0))
    H = dualad.hessian(lambda a, b: a * a * b[0], (2.0, (3.0,)))
    assert np.asarray(H[0][0]) == pytest.approx(6.0) and np.asarray(H[1][0][0]) == pytest.approx(4.0)


# -- 7. a DualArray written into a plain ndarray --------------------------------------
def test_writing_a_dual_array_into_a_plain_array_is_a_derivative_drop():
    def f(x):
        out = np.zeros(2)
        out[0] = x[0]
        return out
    with pytest.raises(DerivativeDropError, match="plain NumPy array"):
        dualad.jacobian(f, np.ones(2))
    with pytest.raises(DerivativeDropError):  # the same error as for a Dual
        dualad.derivative(lambda t: np.zeros(1).__setitem__(0, t) or t, 1.0)
    with pytest.raises(ValueError) as info:  # outside a transform: NumPy's error, caused by ours
        np.zeros(2)[0] = DualArray(np.array([1.0]), np.ones((1, 1)))[0]
    assert isinstance(info.value.__cause__, DerivativeDropError)


# -- 8. a dual that escaped its transform ---------------------------------------------
def test_an_escaped_dual_raises_in_the_transform_that_receives_it():
    stash = []
    dualad.derivative(lambda y: stash.append(y) or y, 1.0)
    with pytest.raises(PerturbationError, match="already returned"):
        dualad.derivative(lambda x: x * stash[0], 2.0)
    arrays = []
    dualad.jacobian(lambda y: arrays.append(y) or y, np.ones(2))
    with pytest.raises(PerturbationError, match="already returned"):
        dualad.jvp(lambda x: x + arrays[0], np.ones(2), np.ones(2))
    # nesting and hand-made duals (tag 0) are not escapes
    assert dualad.derivative(lambda x: x * dualad.derivative(lambda y: x * y, 1.0), 4.0) == 8.0
    d = Dual(3.0, 1.0)
    assert isinstance(dualad.derivative(lambda x: x * d, 2.0), Dual)


# -- 9. formatting ---------------------------------------------------------------------
def test_format_shows_the_primal():
    d = Dual(3.14159, 1.0)
    assert f"{d:.2f}" == "3.14" and f"{d}" == repr(d)
    assert f"{Dual(Dual(1.5, 1.0), 2.0):.1f}" == "1.5"
    assert f"{DualArray(np.array(2.5), np.ones(1)):.1f}" == "2.5"
    with pytest.raises(TypeError):  # as for a plain ndarray of more than one element
        f"{DualArray(np.ones(2), np.ones((1, 2))):.1f}"
    with pytest.raises(DerivativeDropError):
        float(d)
    printed = []
    dualad.gradient(lambda x: printed.append(f"{x[0]:.3f}") or np.sum(x ** 2), np.array([0.5, 1.0]))
    assert printed == ["0.500"]


def test_boolean_mask_write_into_a_0d_dualarray():
    """``x[mask] = v`` with a 0-d boolean mask on a 0-d DualArray (np.piecewise and np.putmask
    write so) failed in NumPy's unravel_index; it writes the one element or none."""
    d = DualArray(np.array(2.0), np.array([1.0, 1.0]))
    d[np.array(False)] = 5.0
    assert d.primal == 2.0 and list(d.tangent) == [1.0, 1.0]
    d[np.array(True)] = DualArray(np.array([7.0]), np.array([[3.0], [4.0]]))
    assert d.primal == 7.0 and list(d.tangent) == [3.0, 4.0]
    d[np.array(True)] = 5.0
    assert d.primal == 5.0 and list(d.tangent) == [0.0, 0.0]
    plain = np.array(2.0)
    plain[np.array(True)] = 5.0  # (NumPy's own behaviour, which the DualArray follows)
    assert plain == 5.0
