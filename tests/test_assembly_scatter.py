"""In-place writes (np.add.at, np.subtract.at, put, put_along_axis, place, putmask,
fill_diagonal, copyto), bincount with weights, and the assembly functions (block,
broadcast_arrays, atleast_3d, rollaxis, matrix_transpose, unstack, resize, delete, insert,
choose, compress, extract, partition, apply_along_axis, apply_over_axes, piecewise).

Each case is plain NumPy code; in-place ones write into a copy of their input and return it.
Values are compared with NumPy's bit for bit in both modes, Jacobians of the two modes with
each other and with central differences (float32 stays float32), and second derivatives with
``check_grads``. Then the in-place semantics: views, repeated indices, plain destinations,
leaves, ``no_grad`` updates, version counters, nesting, and NumPy's errors.
"""
from __future__ import annotations

import numpy as np
import pytest

import dualad
import reversead as rd
from dualad import DerivativeDropError, Dual, DualArray, MissingRuleError
from dualad.errors import InplaceError
from dualad.testing import check_grads, numerical_jacobian
from reversead.errors import BackwardError
from _cases import _call, _leaves, _values

DTYPES = [np.float64, np.float32]
REPEATED = np.array([0, 2, 2, 1, 2])


def _written(write):
    """``f(a, *vs)``: ``write`` applied to a copy of ``a``, which is returned."""
    def f(a, *vs):
        a = a.copy()
        write(a, *vs)
        return a
    return f


def _piecewise_overlap(x):
    # overlapping conditions: the later wins; a constant piece; the otherwise function
    return np.piecewise(x, [x < 0.3, x > -0.2], [np.sin, lambda v: v * v, 0.25])


def _apply_rows(x):
    return np.apply_along_axis(lambda r: np.outer(r, r[:2]), 1, x)


def _apply_over(x):
    return np.apply_over_axes(lambda a, axis: np.cumsum(np.tanh(a), axis=axis), x, [0, 2])


# name -> (f of float arrays, shapes of its arguments); plain NumPy code
CASES = {
    # ufunc.at: repeated indices accumulate
    "add.at-repeated": (_written(lambda a, b: np.add.at(a, REPEATED, b)), [(4,), (5,)]),
    "add.at-2d-broadcast": (_written(lambda a, b: np.add.at(a, (np.array([0, 2, 0]), slice(None)), b)),
                            [(3, 4), (4,)]),
    "add.at-scalar-b": (_written(lambda a, b: np.add.at(a, [1, 1, 1], b)), [(3,), ()]),
    "add.at-mask": (_written(lambda a, b: np.add.at(a, a > 0, b)), [(3, 4), ()]),
    "add.at-through-view": (_written(lambda a, b: np.add.at(a[1:, ::2], ([0, 0, 1], [1, 1, 0]), b)),
                            [(3, 4), (3,)]),
    "subtract.at": (_written(lambda a, b: np.subtract.at(a, ([0, 0, 1], [2, 2, 3]), b)), [(2, 4), (3,)]),
    "add.at-plain-b": (_written(lambda a: np.add.at(a, [0, 0], np.array([0.5, 1.5]))), [(3,)]),
    # writes
    "put": (_written(lambda a, v: np.put(a, [0, -1, 3, 3, 7], v)), [(3, 4), (3,)]),
    "put-wrap": (_written(lambda a, v: np.put(a, [0, -13, 25], v, mode="wrap")), [(3, 4), (2,)]),
    "put-clip": (_written(lambda a, v: np.put(a, [-5, 2, 40], v, mode="clip")), [(6,), (3,)]),
    "put_along_axis": (_written(lambda a, v: np.put_along_axis(a, np.array([[1], [0], [3]]), v, axis=1)),
                       [(3, 4), (3, 1)]),
    "put_along_axis-none": (_written(lambda a, v: np.put_along_axis(a, np.array([5, 0]), v, axis=None)),
                            [(2, 3), (2,)]),
    "place": (_written(lambda a, v: np.place(a, a > 0, v)), [(3, 4), (2,)]),
    "putmask": (_written(lambda a, v: np.putmask(a, a > 0, v)), [(3, 4), (5,)]),
    "putmask-0d": (_written(lambda a, v: np.putmask(a, a < 10, v)), [(), ()]),
    "fill_diagonal": (_written(lambda a, v: np.fill_diagonal(a, v)), [(3, 4), ()]),
    "fill_diagonal-wrap": (_written(lambda a, v: np.fill_diagonal(a, v, wrap=True)), [(7, 3), (2,)]),
    "fill_diagonal-3d": (_written(lambda a, v: np.fill_diagonal(a, v)), [(3, 3, 3), (2,)]),
    "copyto": (_written(lambda a, v: np.copyto(a, v)), [(3, 4), (4,)]),
    "copyto-where": (_written(lambda a, v: np.copyto(a, v, where=np.array([True, False, True, True]))),
                     [(3, 4), (3, 1)]),
    "copyto-plain-src": (_written(lambda a: np.copyto(a, np.ones(4), where=a > 0)), [(2, 4)]),
    "bincount": (lambda w: np.bincount(np.array([3, 0, 3, 1, 3]), weights=w, minlength=6), [(5,)]),
    # assembly
    "block": (lambda a, b, c: np.block([[a, np.ones((2, 1))], [b, c]]), [(2, 2), (1, 2), (1, 1)]),
    "block-3d": (lambda a, b: np.block([[[a], [b]]]), [(2,), (2,)]),
    "broadcast_arrays": (lambda a, b: np.broadcast_arrays(a, b, np.ones((2, 1, 1))), [(3, 1), (4,)]),
    "atleast_3d": (lambda a, b, c: np.atleast_3d(a, b, c), [(), (3,), (2, 3)]),
    "rollaxis": (lambda x: np.rollaxis(x, 2, 1), [(2, 3, 4)]),
    "matrix_transpose": (lambda x: np.matrix_transpose(x), [(2, 3, 4)]),
    "unstack": (lambda x: np.unstack(x, axis=1), [(2, 3)]),
    "resize": (lambda x: np.resize(x, (3, 5)), [(2, 3)]),
    "delete": (lambda x: np.delete(x, [0, 2], axis=1), [(3, 4)]),
    "delete-flat": (lambda x: np.delete(x, slice(1, None, 3)), [(3, 4)]),
    "insert": (lambda x, v: np.insert(x, [1, 1, 3], v, axis=0), [(4, 2), (3, 2)]),
    "insert-scalar-obj": (lambda x, v: np.insert(x, 1, v, axis=1), [(3, 4), (3,)]),
    "insert-into-plain": (lambda v: np.insert(np.arange(4.0), 2, v), [(2,)]),
    "choose": (lambda a, b: np.choose(np.array([[0, 1, 1], [1, 0, 2]]), [a, b, 0.5]), [(2, 3), (3,)]),
    "choose-wrap": (lambda a, b: np.choose(np.array([3, -1, 0]), [a, b], mode="wrap"), [(3,), (3,)]),
    "choose-clip": (lambda a, b: np.choose(np.array([3, -1, 0]), [a, b], mode="clip"), [(3,), (3,)]),
    "compress": (lambda x: np.compress([False, True, True], x, axis=0), [(3, 4)]),
    "compress-flat": (lambda x: np.compress([1, 0, 1, 1], x), [(3, 4)]),
    "extract": (lambda x: np.extract(x > 0, x), [(3, 4)]),
    "partition": (lambda x: np.partition(x, [1, 3], axis=1), [(3, 5)]),
    "partition-none": (lambda x: np.partition(x, 2, axis=None), [(2, 3)]),
    "apply_along_axis": (_apply_rows, [(3, 4)]),
    "apply_along_axis-scalar": (lambda x, w: np.apply_along_axis(lambda r, w: r @ w, 0, x, w), [(3, 4), (3,)]),
    "apply_over_axes": (_apply_over, [(2, 3, 4)]),
    "piecewise": (_piecewise_overlap, [(7,)]),
    "piecewise-0d": (lambda x: np.piecewise(x, [x > 0], [np.exp, np.cos]), [()]),
}


def _point(shapes, dtype, seed=0):
    rng = np.random.default_rng(seed)
    xs = tuple(rng.uniform(-1.0, 1.0, s).astype(dtype) for s in shapes)
    return xs if len(xs) > 1 else xs[0]


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
@pytest.mark.parametrize("name", list(CASES))
def test_values_and_jacobians(name, dtype):
    f, shapes = CASES[name]
    x = _point(shapes, dtype)
    xs = x if isinstance(x, tuple) else (x,)
    want = _leaves(_call(f, x))
    for mode in ("fwd", "rev"):
        args = [DualArray(v, np.ones((2,) + v.shape, v.dtype)) if mode == "fwd" else rd.tensor(v, requires_grad=True)
                for v in xs]
        got = _values(f(*args))
        assert len(got) == len(want)
        for g, w in zip(got, want):
            assert g.dtype == np.asarray(w).dtype and g.shape == np.shape(w)
            np.testing.assert_array_equal(g, w)  # NumPy's values, bit for bit
    J_fwd, J_rev = dualad.jacobian(f, x), rd.jacobian(f, x)
    J_fd = numerical_jacobian(f, x)
    flat = (lambda J: [J] if not isinstance(J, (tuple, list)) else _leaves(J))
    tol = 2e-3 if dtype == np.float32 else 1e-6
    for a, b, c in zip(flat(J_fwd), flat(J_rev), flat(J_fd)):
        if dtype == np.float32 and all(np.asarray(w).dtype == np.float32 for w in want):
            assert np.asarray(a).dtype == np.float32 and np.asarray(b).dtype == np.float32
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(a, c, rtol=tol, atol=tol)


SECOND_ORDER = ["add.at-repeated", "subtract.at", "put", "putmask", "fill_diagonal-wrap", "copyto-where",
                "bincount", "block", "insert", "choose", "partition", "apply_along_axis", "piecewise"]


@pytest.mark.parametrize("name", SECOND_ORDER)
def test_second_derivatives(name):
    f, shapes = CASES[name]
    check_grads(lambda *xs: np.sum(np.sin(_leaves(f(*xs))[0])), _point(shapes, np.float64, seed=1), order=2)


# -- ufunc.at ------------------------------------------------------------------------------------
def test_add_at_accumulates_in_numpys_order_bit_for_bit():
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal(4) * 1e8, rng.standard_normal(200)
    index = rng.integers(0, 4, 200)
    want = a.copy()
    np.add.at(want, index, b)
    for traced in (DualArray(a.copy()), rd.tensor(a.copy())):
        np.add.at(traced, index, b)
        np.testing.assert_array_equal(_values(traced)[0], want)


@pytest.mark.parametrize("b", [0.1, np.float32(0.1), np.linspace(-1, 1, 200, dtype=np.float32),
                               np.linspace(-1, 1, 200)], ids=["float", "f32-scalar", "f32", "f64"])
def test_add_at_into_float32_keeps_numpys_loop(b):
    a = np.random.default_rng(4).standard_normal(7).astype(np.float32)
    index = np.arange(200) % 7
    want = a.copy()
    np.add.at(want, index, b)
    traced_b = DualArray(np.asarray(b), np.ones((1,) + np.shape(b), np.asarray(b).dtype))
    for dest, value in [(DualArray(a.copy()), b), (rd.tensor(a.copy()), b), (DualArray(a.copy()), traced_b),
                        (rd.tensor(a.copy()), rd.tensor(b, requires_grad=True))]:
        np.add.at(dest, index, value)
        assert _values(dest)[0].dtype == np.float32
        np.testing.assert_array_equal(_values(dest)[0], want)


def test_add_at_gradient_counts_repeats():
    x = rd.tensor(np.zeros(3), requires_grad=True)
    b = rd.tensor(np.ones(4), requires_grad=True)
    a = x * 1.0
    np.add.at(a, [2, 2, 0, 2], b)
    (a * np.array([1.0, 10.0, 100.0])).sum().backward()
    np.testing.assert_array_equal(b.grad, [100.0, 100.0, 1.0, 100.0])
    np.testing.assert_array_equal(x.grad, [1.0, 10.0, 100.0])
    assert type(a.grad_fn).__name__ == "SetitemBackward"


def test_setitem_advice_to_use_add_at_works():
    def assign(x):
        a = np.zeros(3) * x[0]
        a[[0, 0]] = x[1:]
        return a

    def accumulate(x):
        a = np.zeros(3) * x[0]
        np.add.at(a, [0, 0], x[1:])
        return a
    x = np.array([1.0, 2.0, 3.0])
    for mode in (dualad, rd):
        with pytest.raises(IndexError, match="np.add.at"):
            mode.jacobian(assign, x)
        np.testing.assert_array_equal(mode.jacobian(accumulate, x), [[0, 1, 1], [0, 0, 0], [0, 0, 0]])


def test_traced_value_into_plain_array_is_refused():
    def f(x):
        out = np.zeros(3)
        np.add.at(out, [0, 0], x)
        return out
    with pytest.raises(DerivativeDropError, match="np.add.at: writing a DualArray into a plain ndarray"):
        dualad.jacobian(f, np.ones(2))
    with pytest.raises(InplaceError, match="np.add.at: can't write a Tensor that requires grad") as info:
        rd.jacobian(f, np.ones(2))
    assert isinstance(info.value, RuntimeError)
    for write in (lambda o, v: np.put(o, [0], v), lambda o, v: np.copyto(o, v[0]),
                  lambda o, v: np.subtract.at(o, 1, v[0]), lambda o, v: np.place(o, o == 0, v),
                  lambda o, v: np.putmask(o, o == 0, v), lambda o, v: np.fill_diagonal(o.reshape(1, 3), v[0]),
                  lambda o, v: np.put_along_axis(o, np.array([1]), v[:1], axis=0)):
        with pytest.raises(DerivativeDropError):
            write(np.zeros(3), DualArray(np.ones(2)))
        with pytest.raises(RuntimeError, match="requires grad"):  # (np.fill_diagonal dispatches on
            write(np.zeros(3), rd.tensor(np.ones(2), requires_grad=True))  # `a` only: Tensor.__array__)
    # a Tensor that does not require grad has no derivative to lose: its data are written
    out = np.zeros(3)
    np.add.at(out, [0, 0], rd.tensor(np.array([1.0, 2.0])))
    np.testing.assert_array_equal(out, [3.0, 0.0, 0.0])


def test_other_ufuncs_at_and_bad_calls():
    d = DualArray(np.arange(3.0))
    with pytest.raises(MissingRuleError, match=r"np\.multiply\.at is not differentiable by dualad"):
        np.multiply.at(d, [0], 2.0)
    with pytest.raises(MissingRuleError, match=r"np\.maximum\.at is not differentiable by reversead"):
        np.maximum.at(rd.tensor(np.arange(3.0)), [0], 2.0)
    with pytest.raises(ValueError, match="second operand needed for ufunc"):
        np.add.at(d, [0])
    with pytest.raises(TypeError, match="takes no keyword arguments"):
        np.add.at(d, [0], 1.0, out=None)
    with pytest.raises(IndexError, match="index 5 is out of bounds for axis 0 with size 3"):
        np.add.at(d, [5], 1.0)
    with pytest.raises(ValueError, match="array is not broadcastable to correct shape"):
        np.add.at(d, [0, 1], np.ones(3))
    with pytest.raises(IndexError, match="arrays used as indices must be of integer"):
        np.add.at(d, np.array([0.0]), 1.0)
    with pytest.raises(TypeError, match="first operand must be array"):
        np.add.at(Dual(1.0, 1.0), (), 1.0)
    np.testing.assert_array_equal(d.primal, [0.0, 1.0, 2.0])  # nothing written by a failed call


def test_leaf_requires_grad_refuses_in_place_but_no_grad_sgd_step_works():
    w = rd.tensor(np.ones(3), requires_grad=True)
    with pytest.raises(InplaceError, match="leaf Variable that requires grad"):
        np.add.at(w, [0], 1.0)
    loss = (w * np.array([1.0, 2.0, 3.0])).sum()
    loss.backward()
    with rd.no_grad():  # an SGD step on the rows that were used (with repeats)
        np.subtract.at(w, [0, 2, 2], 0.5 * w.grad[[0, 2, 2]])
    np.testing.assert_array_equal(w.data, [0.5, 1.0, -2.0])
    assert w.is_leaf and w.requires_grad and w.grad_fn is None
    w.grad = None
    (w * w).sum().backward()  # still a working leaf
    np.testing.assert_array_equal(w.grad, 2 * w.data)


def test_version_counter_catches_a_modified_saved_value():
    x = rd.tensor(np.ones(3), requires_grad=True)
    a = x * 1.0
    y = a * a  # saves a
    version = a._version_number
    np.add.at(a, [1], 2.0)
    assert a._version_number == version + 1
    with pytest.raises(BackwardError, match="modified by an inplace operation"):
        y.sum().backward()


def test_write_through_views_reaches_the_base():
    x0 = np.arange(12.0).reshape(3, 4)
    want = x0.copy()
    np.add.at(want[:, 1:3].T, [0, 0], np.array([1.0, 2.0, 3.0]))
    d = DualArray(x0.copy(), np.ones((1, 3, 4)))
    view = d[:, 1:3].T
    np.add.at(view, [0, 0], DualArray(np.array([1.0, 2.0, 3.0]), np.full((1, 3), 5.0)))
    np.testing.assert_array_equal(d.primal, want)
    np.testing.assert_array_equal(d.tangent[0, :, 1], [11.0, 11.0, 11.0])  # 1 + 2 * 5
    np.testing.assert_array_equal(view.primal, want[:, 1:3].T)

    x = rd.tensor(x0.copy(), requires_grad=True)
    base = x * 1.0
    np.put(base[1], [0, 3], np.array([7.0, 8.0]))
    base.sum().backward()
    np.testing.assert_array_equal(x.grad, np.where(np.isin(np.arange(12), [4, 7]), 0.0, 1.0).reshape(3, 4))


def test_nested_second_derivatives_through_add_at():
    def f(x):
        a = x[:3] * x[3]
        np.add.at(a, [0, 0, 2], x[1:4] ** 2)
        np.subtract.at(a, 1, x[0] * x[2])
        return np.sum(a * a)
    x = np.array([0.3, -1.2, 0.7, 1.1])
    H = numerical_jacobian(lambda v: rd.gradient(f, v), x)
    np.testing.assert_allclose(dualad.hessian(f, x), H, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(rd.hessian(f, x), H, rtol=1e-6, atol=1e-6)


def test_non_leaf_without_grad_becomes_part_of_the_graph():
    a = rd.tensor(np.zeros(3))  # requires_grad False
    b = rd.tensor(np.array([1.0, 2.0]), requires_grad=True)
    np.add.at(a, [1, 1], b)
    assert a.requires_grad and not a.is_leaf
    (a * a).sum().backward()
    np.testing.assert_array_equal(b.grad, [6.0, 6.0])


# -- the other writes: NumPy's errors ------------------------------------------------------------
WRITE_ERRORS = [
    (lambda a: np.put(a, [7], 1.0), IndexError, "index 7 is out of bounds"),
    (lambda a: np.put(a, [0], 1.0, mode="bad"), ValueError, "clipmode must be one of"),
    (lambda a: np.place(a, a > -1, []), ValueError, "Cannot insert from an empty array"),
    (lambda a: np.putmask(a, np.array([True, False]), 1.0), ValueError, "mask and data must be the same size"),
    (lambda a: np.fill_diagonal(a[0], 1.0), ValueError, "array must be at least 2-d"),
    (lambda a: np.fill_diagonal(np.ones((2, 2, 3)) * a[0, 0], 1.0), ValueError, "All dimensions of input"),
    (lambda a: np.copyto(a, np.ones(4)), ValueError, "could not broadcast"),
    (lambda a: np.copyto(a.astype(np.float32), a, casting="safe"), TypeError, "according to the rule 'safe'"),
    (lambda a: np.put_along_axis(a, np.array([[5]]), 1.0, axis=0), IndexError, "out of bounds"),
    (lambda a: np.put(Dual(1.0, 1.0), [0], 1.0), TypeError, "must be an array"),
]


@pytest.mark.parametrize("call, error, message", WRITE_ERRORS, ids=range(len(WRITE_ERRORS)))
@pytest.mark.parametrize("mode", ["fwd", "rev"])
def test_write_errors_are_numpys(call, error, message, mode):
    x0 = np.arange(6.0).reshape(2, 3)
    a = DualArray(x0.copy(), np.ones((1, 2, 3))) if mode == "fwd" else rd.tensor(x0.copy()) * 1.0
    with pytest.raises(error, match=message):
        call(a)
    np.testing.assert_array_equal(_values(a)[0], x0)  # nothing written


def test_put_with_a_repeated_index_follows_numpys_last_value():
    def f(v):
        a = np.zeros(4) * v[0]
        np.put(a, [1, 1, 1], v)
        return a
    v = np.array([1.0, 2.0, 3.0])
    np.testing.assert_array_equal(_values(f(DualArray(v)))[0], [0.0, 3.0, 0.0, 0.0])
    for mode in (dualad, rd):
        np.testing.assert_array_equal(mode.jacobian(f, v)[1], [0.0, 0.0, 1.0])


def test_bincount_float32_weights_give_float64_as_numpy():
    w = np.array([0.1, 0.2, 0.3], dtype=np.float32)
    want = np.bincount([2, 0, 2], weights=w)
    for traced in (DualArray(w), rd.tensor(w, requires_grad=True)):
        got = np.bincount([2, 0, 2], weights=traced)
        np.testing.assert_array_equal(_values(got)[0], want)
        assert _values(got)[0].dtype == np.float64
    with pytest.raises(ValueError, match="don't have the same length"):
        np.bincount([1, 0], weights=DualArray(w))
    assert np.bincount(np.array([1, 1, 3])).tolist() == [0, 2, 0, 1]  # no weights: plain counts


# -- assembly: views and errors -------------------------------------------------------------------
def test_view_results_see_later_writes():
    d = DualArray(np.arange(24.0).reshape(2, 3, 4), np.zeros((1, 2, 3, 4)))
    views = [np.rollaxis(d, 2), np.matrix_transpose(d), np.unstack(d, axis=2)[1]]
    d[1, 2, 1] = DualArray(np.array(-1.0), np.ones(1))
    assert views[0].primal[1, 1, 2] == -1.0 and views[0].tangent[0, 1, 1, 2] == 1.0
    assert views[1].primal[1, 1, 2] == -1.0 and views[1].tangent[0, 1, 1, 2] == 1.0
    assert views[2].primal[1, 2] == -1.0 and views[2].tangent[0, 1, 2] == 1.0
    a, b = np.broadcast_arrays(d, np.ones(4))
    assert a._base is d and b.shape == (2, 3, 4)
    a, b = np.broadcast_arrays(d, np.ones((2, 3, 4)))
    assert a is d  # every argument already of the broadcast shape: returned as is (NumPy's)


ASSEMBLY_ERRORS = [
    (lambda x: np.matrix_transpose(x[0, 0]), ValueError, "at least 2-dimensional"),
    (lambda x: np.unstack(x[0, 0, 0]), ValueError, "at least 1-d"),
    (lambda x: np.rollaxis(x, 0, 5), np.exceptions.AxisError, "'start' arg requires"),
    (lambda x: np.block((x, x)), TypeError, "arrays is a tuple"),
    (lambda x: np.block([x, [x]]), ValueError, "List depths are mismatched"),
    (lambda x: np.block([[x[0]], [x[0, :, :2]]]), ValueError, "must match exactly"),
    (lambda x: np.block([]), ValueError, "cannot be empty"),
    (lambda x: np.insert(np.arange(3), 1, x[0, 0, 0]), DerivativeDropError, "dtype int64"),
    (lambda x: np.insert(x, 9, 1.0, axis=0), IndexError, "out of bounds"),
    (lambda x: np.choose(np.array([0, 3]), [x[0, 0, :2], x[1, 0, :2]]), ValueError, "invalid entry"),
    (lambda x: np.choose(np.array([0, 1]), [x[0, 0, :2], x[1, 0, :2]], out=np.zeros(2)), TypeError, "out="),
    (lambda x: np.partition(x, 1, order="x"), ValueError, "structured array"),
    (lambda x: np.partition(x, 5), ValueError, "out of bounds"),
    (lambda x: np.compress([True] * 4, x, axis=0), IndexError, "out of bounds"),
    (lambda x: np.resize(x, (-1, 2)), ValueError, "non-negative"),
    (lambda x: np.delete(x, 5, axis=0), IndexError, "out of bounds"),
    (lambda x: np.apply_along_axis(np.sum, 0, x[:, :0]), ValueError, "iteration dimensions are 0"),
    (lambda x: np.apply_along_axis(lambda r: r[: int(_values(r[0])[0]) // 4 + 1], 1, x[0]), ValueError,
     "could not broadcast"),
    (lambda x: np.apply_over_axes(lambda a, axis: a[0, 0], x, 1), ValueError, "not returning an array"),
    (lambda x: np.piecewise(x, [x > 1], [np.sin, np.cos, 1.0]), ValueError, "either 1 or 2 functions"),
]


@pytest.mark.parametrize("call, error, message", ASSEMBLY_ERRORS, ids=range(len(ASSEMBLY_ERRORS)))
@pytest.mark.parametrize("mode", ["fwd", "rev"])
def test_assembly_errors_are_numpys(call, error, message, mode):
    x0 = np.arange(24.0).reshape(2, 3, 4)
    x = DualArray(x0, np.ones((1, 2, 3, 4))) if mode == "fwd" else rd.tensor(x0, requires_grad=True)
    with pytest.raises(error, match=message):
        call(x)


def test_partition_values_are_numpys_with_ties():
    rng = np.random.default_rng(5)
    unsorted = False
    for trial in range(40):
        n = 7 if trial < 10 else 300  # (NumPy sorts short rows; long ones are left unsorted)
        x = rng.integers(0, 4, size=(3, n)).astype(float) if trial % 2 else rng.standard_normal((3, n))
        kth = int(rng.integers(0, n))
        want = np.partition(x, kth)
        np.testing.assert_array_equal(np.partition(DualArray(x), kth).primal, want)
        np.testing.assert_array_equal(np.partition(rd.tensor(x), kth).data, want)
        unsorted = unsorted or not np.array_equal(want, np.sort(x))
    assert unsorted  # (the test can tell partition from sort)


def test_piecewise_of_a_dual_and_constant_pieces():
    y = np.piecewise(Dual(0.5, 1.0), [True], [np.sin])  # NumPy gives a 0-d array: so do we
    assert y.shape == () and y.primal == np.sin(0.5) and y.tangent[0] == np.cos(0.5)
    z = np.piecewise(DualArray(np.array([-1.0, 2.0]), np.ones((1, 2))), [np.array([True, False])], [3.0, 4.0])
    np.testing.assert_array_equal(z.primal, [3.0, 4.0])
    np.testing.assert_array_equal(z.tangent, [[0.0, 0.0]])  # constants: zero derivative


def test_apply_along_axis_broadcasts_later_results_as_numpy():
    def f(x):  # the first row's result fixes the shape; a later scalar result is broadcast
        return np.apply_along_axis(lambda r: r[:2] * r[2] if _values(r)[0][0] > 0 else r[0], 1, x)
    x = np.array([[1.0, 2.0, 3.0], [-1.0, 4.0, 5.0]])
    np.testing.assert_array_equal(_values(f(DualArray(x)))[0], [[3.0, 6.0], [-1.0, -1.0]])
    J = [[3, 0, 1, 0, 0, 0], [0, 3, 2, 0, 0, 0], [0, 0, 0, 1, 0, 0], [0, 0, 0, 1, 0, 0]]
    for mode in (dualad, rd):
        np.testing.assert_array_equal(mode.jacobian(f, x).reshape(4, 6), J)
