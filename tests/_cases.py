"""Helpers shared by the table-driven function tests (test_more_functions, test_decompositions,
test_spectral, test_numpy_coverage): calling a case on its point and reading plain values out
of results."""
import numpy as np

import reversead as rd
from dualad import DualArray


def _call(f, x):
    return f(*x) if isinstance(x, tuple) else f(x)


def _leaves(tree):
    if isinstance(tree, (tuple, list)):
        return [leaf for t in tree for leaf in _leaves(t)]
    return [tree]


def _values(y):
    """The plain values of a result (DualArray, Tensor, or arrays), leaf by leaf."""
    out = []
    for leaf in _leaves(y):
        while getattr(leaf, "_ad_level", None) is not None:
            leaf = leaf._ad_primal()
        out.append(np.asarray(leaf))
    return out


def _traced_call(f, x, mode):
    xs = x if isinstance(x, tuple) else (x,)
    if mode == "fwd":
        args = [DualArray(v, np.ones((1,) + v.shape, v.dtype)) for v in xs]
    else:
        args = [rd.tensor(v, requires_grad=True) for v in xs]
    return f(*args)


def assert_values_equal_numpy(f, x, mode):
    """``f`` on traced copies of ``x`` (``mode`` "fwd" or "rev") gives NumPy's values on ``x``,
    bit for bit, with NumPy's dtypes and shapes, leaf by leaf."""
    want = _values(_call(f, x))
    got = _values(_traced_call(f, x, mode))
    assert len(got) == len(want)
    for a, b in zip(got, want):
        assert a.dtype == b.dtype and a.shape == b.shape, (a.dtype, b.dtype, a.shape, b.shape)
        np.testing.assert_array_equal(a, b)
