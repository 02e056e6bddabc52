"""Random programs of views and in-place writes on a DualArray, against NumPy and finite differences.

Each program makes ``z = x * 1.0`` (4 x 3), takes views of it and of its views (basic slices,
``.T``, a reshape of ``z`` itself: views in NumPy too) and writes in place through any of them
(``*=``, ``+=``, ``x[i] = ...``, ``out=``), mixing in traced scalars of ``x``, and makes new
arrays ``a + c`` (whose tangent an op may share with ``a``'s). Every array's final state counts. The primal must be
NumPy's result on plain arrays and the tangent the central difference of that result (the
programs are low-degree polynomials of ``x``, so the difference is accurate).
"""
import zlib

import numpy as np
import pytest

import dualad

SLICES = [(slice(1, 3),), (slice(None), 1), (slice(None, None, 2),), (0,), (slice(1, None), slice(0, 2)),
          (slice(None, None, -1),)]


def make_program(seed, steps=6):
    rng = np.random.default_rng(seed)
    plan = []
    n_arrays = 1                       # arrays[0] is z; every view appends one
    for _ in range(steps):
        kind = rng.integers(0, 5)
        src = int(rng.integers(0, n_arrays))
        if kind == 0:
            plan.append(("slice", src, SLICES[rng.integers(0, len(SLICES))]))
            n_arrays += 1
        elif kind == 1:
            plan.append(("T", src, None) if rng.integers(0, 2) or src else ("reshape", 0, None))
            n_arrays += 1
        elif kind == 2:
            plan.append(("iop", src, (int(rng.integers(0, 3)), float(rng.uniform(-2, 2)),
                                      (int(rng.integers(0, 4)), int(rng.integers(0, 3))))))
        elif kind == 3:
            plan.append(("out", src, float(rng.uniform(0.5, 1.5))))
        else:  # a new array whose tangent an op may hand over from its input (a + c)
            plan.append(("plus", src, float(rng.uniform(-1, 1))))
            n_arrays += 1

    def program(x):
        arrays = [x * 1.0]
        for op, src, arg in plan:
            a = arrays[src]
            if op == "slice":
                v = a[arg] if np.ndim(a) >= len([s for s in arg if s is not None]) else a[...]
                arrays.append(v)
            elif op == "T":
                arrays.append(a.T)
            elif op == "reshape":
                arrays.append(a.reshape(3, 4))
            elif op == "plus":
                arrays.append(a + arg)
            elif op == "iop":
                how, c, (i, j) = arg
                traced = x[i, j]
                if np.ndim(a) == 0:
                    continue           # (an integer index gives a copy in NumPy: nothing to write)
                if how == 0:
                    a *= c * traced
                elif how == 1:
                    a += c + traced * traced
                else:
                    a[...] = a * c - traced
            else:
                if np.ndim(a) == 0:
                    continue
                np.multiply(a, arg, out=a)
        return arrays[0] + sum(np.sum(a) for a in arrays[1:])  # (every array's final state)
    return program


@pytest.mark.parametrize("seed", range(300))
def test_random_views_and_writes_match_numpy(seed):
    program = make_program(zlib.crc32(f"views{seed}".encode()))
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.5, 1.5, (4, 3))
    v = rng.standard_normal((4, 3))
    x0 = x.copy()
    expected = program(x.copy())
    y, t = dualad.jvp(program, x, v)
    np.testing.assert_array_equal(x, x0)   # the caller's input is never written
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)
    h = 1e-6
    fd = (program(x + h * v) - program(x - h * v)) / (2 * h)
    np.testing.assert_allclose(t, fd, rtol=1e-5, atol=1e-6)
