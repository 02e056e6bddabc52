"""NumPy functions added to the table: creation (zeros_like ... copy), selection and joining
(take, take_along_axis, sort, rot90, column_stack, dstack, array_split, append, diagflat ...),
differences, rounding, and statistics (average, ptp, median, cross).

Values are compared with NumPy's bit for bit in both modes, derivatives with central
differences (``check_grads``, both modes, second order in float64) and the two modes'
Jacobians with each other. ``tests/test_rules.py`` and ``tests/test_fuzz.py`` also run every
``examples=`` entry of these functions.
"""
from __future__ import annotations

import numpy as np
import pytest

import dualad
import reversead as rd
from dualad import DerivativeDropError, DualArray
from dualad.testing import check_grads
from _cases import _call, _leaves, assert_values_equal_numpy

DTYPES = [np.float64, np.float32]


def _weights(shape):
    return np.linspace(0.5, 1.5, int(np.prod(shape))).reshape(shape)


# name -> (f of float arrays, shapes of its arguments); every f is plain NumPy code
CASES = {
    "copy": (lambda x: np.copy(x), [(3, 4)]),
    "take-flat-repeated": (lambda x: np.take(x, [0, 5, 5, -1, 5]), [(3, 4)]),
    "take-axis": (lambda x: np.take(x, np.array([[2, 0], [2, 2]]), axis=1), [(3, 4)]),
    "take-scalar-index": (lambda x: np.take(x, 2, axis=0), [(3, 4)]),
    "take-wrap": (lambda x: np.take(x, [-4, 7], axis=1, mode="wrap"), [(3, 4)]),
    "take-clip": (lambda x: np.take(x, [-4, 7, 1], mode="clip"), [(5,)]),
    "take_along_axis": (lambda x: np.take_along_axis(x, np.array([[3, 3], [0, 1], [2, 3]]), axis=1),
                        [(3, 4)]),
    "take_along_axis-none": (lambda x: np.take_along_axis(x, np.array([5, 0, 5]), axis=None), [(2, 3)]),
    "diff": (lambda x: np.diff(x), [(5,)]),
    "diff-n2-axis0": (lambda x: np.diff(x, n=2, axis=0), [(4, 3)]),
    "diff-prepend-append": (lambda x, p, a: np.diff(x, axis=0, prepend=p, append=a),
                            [(3, 2), (1, 2), (2, 2)]),
    "diff-scalar-prepend": (lambda x: np.diff(x, prepend=0.5, append=-1.0), [(2, 3)]),
    "sort": (lambda x: np.sort(x), [(3, 4)]),
    "sort-axis0": (lambda x: np.sort(x, axis=0), [(3, 4)]),
    "sort-none": (lambda x: np.sort(x, axis=None, kind="mergesort"), [(3, 4)]),
    "fliplr": (lambda x: np.fliplr(x), [(3, 4)]),
    "flipud": (lambda x: np.flipud(x), [(3, 4)]),
    "rot90": (lambda x: np.rot90(x), [(3, 4)]),
    "rot90-k-axes": (lambda x: np.rot90(x, -3, axes=(2, 0)), [(2, 3, 4)]),
    "column_stack": (lambda a, b: np.column_stack([a, b, np.ones(3)]), [(3,), (3, 2)]),
    "dstack": (lambda a, b: np.dstack((a, b)), [(2, 3), (2, 3, 2)]),
    "dstack-1d": (lambda a, b: np.dstack([a, b]), [(3,), (3,)]),
    "array_split": (lambda x: np.array_split(x, 3), [(5, 2)]),
    "array_split-indices": (lambda x: np.array_split(x, [1, -2, 4], axis=1), [(2, 5)]),
    "hsplit": (lambda x: np.hsplit(x, [1, 3]), [(2, 4)]),
    "vsplit": (lambda x: np.vsplit(x, 2), [(4, 3)]),
    "append": (lambda a, b: np.append(a, b), [(2, 3), (4,)]),
    "append-axis": (lambda a, b: np.append(a, b, axis=1), [(2, 3), (2, 2)]),
    "diagflat": (lambda x: np.diagflat(x, -1), [(2, 2)]),
    "full_like-traced": (lambda a, v: np.full_like(a, v), [(2, 3), (3,)]),
    "average": (lambda x: np.average(x, axis=0), [(3, 4)]),
    "average-weights": (lambda x, w: np.average(x, axis=1, weights=0.5 + w * w), [(3, 4), (4,)]),
    "average-weights-returned": (lambda x, w: np.average(x, weights=1.0 + w * w, returned=True),
                                 [(2, 3), (2, 3)]),
    "average-axes-keepdims": (lambda x, w: np.average(x, axis=(2, 0), weights=2.0 + w, keepdims=True),
                              [(2, 3, 4), (4, 2)]),
    "ptp": (lambda x: np.ptp(x, axis=1), [(3, 4)]),
    "ptp-all": (lambda x: np.ptp(x, keepdims=True), [(3, 4)]),
    "median-odd": (lambda x: np.median(x), [(5,)]),
    "median-even-axis": (lambda x: np.median(x, axis=1), [(3, 4)]),
    "median-axes": (lambda x: np.median(x, axis=(0, 2), keepdims=True), [(2, 3, 3)]),
    "cross": (lambda a, b: np.cross(a, b), [(4, 3), (3,)]),
    "cross-axes": (lambda a, b: np.cross(a, b, axisa=0, axisb=1, axisc=0), [(3, 2), (2, 3)]),
}


def _point(shapes, dtype, rng):
    x = tuple(rng.standard_normal(s).astype(dtype) for s in shapes)
    return x[0] if len(x) == 1 else x


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("mode", ["fwd", "rev"])
@pytest.mark.parametrize("name", list(CASES))
def test_values_equal_numpy_bitwise(name, mode, dtype, rng):
    f, shapes = CASES[name]
    x = _point(shapes, dtype, rng)
    assert_values_equal_numpy(f, x, mode)


@pytest.mark.parametrize("name", list(CASES))
def test_derivatives_against_finite_differences(name, rng):
    f, shapes = CASES[name]
    check_grads(f, _point(shapes, np.float64, rng), order=2, modes=("fwd", "rev"))


@pytest.mark.parametrize("name", list(CASES))
def test_float32_and_modes_agree(name, rng):
    f, shapes = CASES[name]
    x = _point(shapes, np.float32, rng)
    check_grads(f, x, order=1, modes=("fwd", "rev"))  # (also: float32 stays float32)
    forward, reverse = _leaves(dualad.jacobian(f, x)), _leaves(rd.jacobian(f, x))
    assert len(forward) == len(reverse)
    # a float64 constant (column_stack's np.ones, diff's prepend=0.5) promotes the output: forward
    # rows then follow the output's dtype, reverse blocks the input's (see dualad.fuzz.check_float32)
    promoted = any(np.asarray(y).dtype != np.float32 for y in _leaves(_call(f, x)))
    for a, b in zip(forward, reverse):
        assert np.asarray(b).dtype == np.float32
        assert np.asarray(a).dtype == (np.float64 if promoted else np.float32)
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


# -- take: repeated indices accumulate ----------------------------------------------------
@pytest.mark.parametrize("axis", [None, 0])
def test_take_with_repeated_indices_accumulates(axis):
    x = np.arange(1.0, 7.0).reshape(3, 2)
    indices = np.array([2, 0, 2, 2])
    # how often each element is taken: element 2 (axis=None) or row 2 (axis=0) three times
    counts = np.zeros(6 if axis is None else 3)
    np.add.at(counts, indices, 1.0)
    counts = counts.reshape(3, 2) if axis is None else np.repeat(counts[:, None], 2, axis=1)

    def f(x):
        return np.sum(np.take(x, indices, axis=axis) ** 2)
    np.testing.assert_array_equal(dualad.gradient(f, x), 2.0 * x * counts)
    np.testing.assert_array_equal(rd.gradient(f, x), 2.0 * x * counts)
    t = rd.tensor(x, requires_grad=True)
    taken = np.take(t, indices, axis=axis)
    taken.backward(np.ones(taken.shape))
    np.testing.assert_array_equal(t.grad, counts)


def test_sort_derivative_follows_the_permutation():
    x = np.array([3.0, -1.0, 2.0])
    J = np.eye(3)[np.argsort(x)]
    np.testing.assert_array_equal(dualad.jacobian(np.sort, x), J)
    np.testing.assert_array_equal(rd.jacobian(np.sort, x), J)


@pytest.mark.parametrize("x, want", [([1.0, 2.0, 2.0], [0.0, 0.5, 0.5]),
                                     ([4.0, 1.0, 3.0, 2.0], [0.0, 0.0, 0.5, 0.5]),
                                     ([2.0, 2.0, 2.0, 2.0], [0.25, 0.25, 0.25, 0.25]),
                                     ([5.0, 2.0, 2.0, 1.0], [0.0, 0.5, 0.5, 0.0])])
def test_median_ties_are_split_like_max(x, want):
    x = np.array(x)
    np.testing.assert_array_equal(dualad.gradient(np.median, x), want)
    np.testing.assert_array_equal(rd.gradient(np.median, x), want)
    np.testing.assert_array_equal(rd.hessian(np.median, x), np.zeros((x.size, x.size)))


def test_ptp_ties_split_like_max():
    x = np.array([3.0, 3.0, -1.0])
    np.testing.assert_allclose(dualad.gradient(np.ptp, x), [0.5, 0.5, -1.0])
    np.testing.assert_allclose(rd.gradient(np.ptp, x), [0.5, 0.5, -1.0])


# -- constants: zeros_like, ones_like, full_like, empty_like --------------------------------
LIKE = {
    "zeros_like": lambda a: np.zeros_like(a),
    "ones_like": lambda a: np.ones_like(a, shape=(2, 1)),
    "full_like": lambda a: np.full_like(a, 2.5, dtype=np.float32),
    "empty_like": lambda a: np.empty_like(a),
}


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name", list(LIKE))
def test_constants_are_plain_in_dualad_and_grad_free_tensors_in_reversead(name, dtype, rng):
    x = rng.standard_normal((3, 4)).astype(dtype)
    want = LIKE[name](x)
    forward = LIKE[name](DualArray(x))
    assert type(forward) is np.ndarray
    reverse = LIKE[name](rd.tensor(x, requires_grad=True))
    assert isinstance(reverse, rd.Tensor) and not reverse.requires_grad and reverse.grad_fn is None
    for got in (forward, reverse.data):
        assert got.shape == want.shape and got.dtype == want.dtype
        if name != "empty_like":
            np.testing.assert_array_equal(got, want)
    assert type(LIKE[name](dualad.Dual(1.5, 1.0))) is np.ndarray


def test_constants_have_zero_derivative():
    x = np.array([1.0, -2.0])
    for f in (np.zeros_like, np.ones_like, lambda a: np.full_like(a, 3.0)):
        np.testing.assert_array_equal(dualad.jacobian(f, x), np.zeros((2, 2)))
        np.testing.assert_array_equal(rd.jacobian(f, x), np.zeros((2, 2)))
        np.testing.assert_array_equal(rd.hessian(lambda a: np.sum(f(a) * a), x), np.zeros((2, 2)))


def test_typical_code_with_zeros_like():
    x = np.array([1.0, 2.0, 3.0])

    def add(x):
        out = np.zeros_like(x)
        out = out + x * x
        return out
    for mode in (dualad, rd):
        np.testing.assert_array_equal(mode.jacobian(add, x), np.diag(2 * x))

    def fill(x):  # in reverse mode the grad-free Tensor records the writes, as in PyTorch
        out = np.zeros_like(x)
        out[0] = 2.0 * x[1]
        out += x
        return out
    np.testing.assert_array_equal(rd.jacobian(fill, x), [[1.0, 2.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])


def test_full_like_with_a_traced_fill_value():
    a = np.zeros((2, 3), dtype=np.float32)

    def f(v):
        return np.full_like(a + 0 * v[0], v)  # `a` traced, the fill value too
    v = np.array([1.0, 2.0, 3.0])
    want = np.tile(np.eye(3), (2, 1)).reshape(2, 3, 3)
    for mode in (dualad, rd):
        y = mode.jacobian(f, v)
        np.testing.assert_array_equal(y, want)
    y = np.full_like(DualArray(a), DualArray(np.array(2.0), np.ones((1,))))
    assert y.dtype == np.float32 and np.array_equal(y.primal, np.full((2, 3), 2.0, np.float32))


def test_full_like_refuses_a_traced_fill_into_a_plain_array():
    # NumPy dispatches np.full_like on its first argument only: the fill value reaches np.copyto
    for mode, error in ((dualad, DerivativeDropError), (rd, RuntimeError)):
        with pytest.raises(error, match="np.copyto"):
            mode.jacobian(lambda v: np.full_like(np.zeros(3), v[0]), np.array([1.0, 2.0]))
    with pytest.raises(ValueError, match="np.full_like: could not broadcast"):
        np.full_like(DualArray(np.zeros(2)), DualArray(np.ones(3)))


# -- copy, round ------------------------------------------------------------------------
def test_copy_shares_no_memory():
    d = DualArray(np.ones((2, 2)), np.ones((3, 2, 2)))
    c = np.copy(d)
    assert not np.shares_memory(c.primal, d.primal) and not np.shares_memory(c.tangent, d.tangent)
    t = rd.tensor(np.ones(3), requires_grad=True)
    ct = np.copy(t)
    assert ct.requires_grad and ct.grad_fn is not None and not np.shares_memory(ct.data, t.data)
    ct_free = np.copy(rd.tensor(np.ones(3)))
    assert not ct_free.requires_grad


@pytest.mark.parametrize("func", [np.round, np.around])
def test_round_is_piecewise_constant_with_plain_results(func):
    x = np.array([0.26, -1.73, 2.5])
    for traced in (DualArray(x, np.ones((1, 3))), rd.tensor(x, requires_grad=True)):
        result = func(traced, 1)
        assert type(result) is np.ndarray
        np.testing.assert_array_equal(result, func(x, 1))
    assert type(func(dualad.Dual(0.26, 1.0), 1)) is np.float64
    for mode in (dualad, rd):
        np.testing.assert_array_equal(mode.jacobian(lambda x: func(x) * x, x), np.diag(func(x)))


# -- errors: name the function and the argument ---------------------------------------------
ERRORS = [
    (lambda x: np.take(x, [0], out=np.zeros(1)), TypeError, r"np.take\(\.\.\., out=\)"),
    (lambda x: np.take(x, np.array([0.5])), TypeError, "np.take: indices must be integers"),
    (lambda x: np.take(x, [0], mode="bogus"), ValueError, "np.take: mode"),
    (lambda x: np.take(x, [9]), IndexError, "out of bounds"),
    (lambda x: np.take_along_axis(x, np.array([[0.0]]), axis=1), IndexError, "integer array"),
    (lambda x: np.take_along_axis(x, np.array([0]), axis=1), ValueError, "same number of dimensions"),
    (lambda x: np.take_along_axis(x, np.array([[0]]), axis=None), ValueError, "single dimension"),
    (lambda x: np.sort(x, order="f"), ValueError, r"np.sort\(\.\.\., order=\)"),
    (lambda x: np.sort(x, kind="bogus"), ValueError, "kind"),
    (lambda x: np.round(x, out=np.zeros((2, 3))), TypeError, r"np.round\(\.\.\., out=\)"),
    (lambda x: np.diff(x, n=-1), ValueError, "order must be non-negative"),
    (lambda x: np.diff(x[0, 0]), ValueError, "at least one dimensional"),
    (lambda x: np.fliplr(x[0]), ValueError, "Input must be >= 2-d"),
    (lambda x: np.rot90(x, axes=(0, 0)), ValueError, "Axes must be different"),
    (lambda x: np.hsplit(x[0, 0], 2), ValueError, "hsplit only works"),
    (lambda x: np.vsplit(x[0], 2), ValueError, "vsplit only works"),
    (lambda x: np.array_split(x, 0), ValueError, "number sections must be larger than 0"),
    (lambda x: np.copy(x, order="Q"), ValueError, "np.copy: order"),
    (lambda x: np.average(x, weights=np.ones(3)), TypeError, "Axis must be specified"),
    (lambda x: np.average(x, axis=1, weights=np.ones(2)), ValueError, "Shape of weights"),
    (lambda x: np.average(x, axis=1, weights=np.array([1.0, -1.0, 0.0])), ZeroDivisionError, "sum to zero"),
    (lambda x: np.median(x, out=np.zeros(3)), TypeError, r"np.median\(\.\.\., out=\)"),
    (lambda x: np.ptp(x, out=np.zeros(3)), TypeError, r"np.ptp\(\.\.\., out=\)"),
    (lambda x: np.cross(x[:, :2], x[:, :2]), ValueError, "np.cross of traced arrays supports 3-dimensional"),
    (lambda x: np.cross(x[0, 0], x[0]), ValueError, "zero dimension"),
]


@pytest.mark.parametrize("mode", ["fwd", "rev"])
@pytest.mark.parametrize("index", range(len(ERRORS)))
def test_error_paths(index, mode):
    call, error, match = ERRORS[index]
    x = np.arange(6.0).reshape(2, 3)
    traced = DualArray(x) if mode == "fwd" else rd.tensor(x, requires_grad=True)
    with pytest.raises(error, match=match):
        call(traced)


def test_check_grads_handles_empty_outputs():
    # (a size-0 output block used to crash the Jacobian's reshape in dualad.testing)
    check_grads(lambda x: x[:0] * 2, (np.ones(3),))
    check_grads(lambda x: (np.diff(x[:1]), x * 3), (np.ones(3),))
