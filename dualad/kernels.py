"""Hot loops shared by both modes, with a pure-NumPy path giving the same results.

Backend: ``DUALAD_BACKEND=numpy`` selects the NumPy path; the default ``numba``
compiles lazily on first use (importing dualad imports no Numba).
"""
from __future__ import annotations

import os

import numpy as np

BACKEND = os.environ.get("DUALAD_BACKEND", "numba").lower()


def gather(flat, index):
    """``flat[..., index]`` along the last axis (``flat`` is (B, N), ``index`` ints)."""
    return np.take(flat, index, axis=-1)


def scatter_add(values, index, size: int):
    """Transpose of ``gather``: a (B, size) array with ``values[..., j]`` added at ``index[j]``."""
    batch = values.shape[:-1]
    out = np.zeros(batch + (size,), dtype=values.dtype)
    if index.size == 0:
        return out
    flat_values = values.reshape(-1, values.shape[-1])
    flat_out = out.reshape(-1, size)
    for row in range(flat_values.shape[0]):
        flat_out[row] = np.bincount(index, weights=flat_values[row], minlength=size)
    return out


def elementwise_jvp(rule, primals, tangents):
    """Fused primal + k tangents of an elementwise rule, or None where the fast path does not apply."""
    return None
