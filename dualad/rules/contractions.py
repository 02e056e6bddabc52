"""Bilinear primitives: matmul (BLAS, k tangents batched into one GEMM where possible).

JVP: ``a_dot @ b + a @ b_dot``; VJP: ``g @ b^T`` and ``a^T @ g`` (1-D operands
promoted to row/column matrices, stacked dimensions unbroadcast).
"""
from __future__ import annotations

import numpy as np

from .core import EXAMPLES, UFUNC_RULES, Rule, expand_to, unbroadcast


def _plain(*xs):
    return all(isinstance(x, np.ndarray) for x in xs)


def _left(ta, b, nb):
    """Tangent contribution ``a_dot @ b``."""
    n = ta.shape[-1]
    if np.ndim(b) <= 2 and _plain(ta, b):
        flat = ta.reshape(-1, n) @ b  # one GEMM for all k tangents
        return flat.reshape(ta.shape[:-1] + np.shape(b)[1:])
    if ta.ndim - nb == 1:  # 1-D a: row vector, batched against b's stack
        row = ta.reshape(ta.shape[:nb] + (1,) * (np.ndim(b) - 1) + (n,))
        return np.matmul(row, b)[..., 0, :] if np.ndim(b) >= 2 else np.matmul(ta, b)
    return np.matmul(ta, b)


def _right(a, tb, nb, out_ndim):
    """Tangent contribution ``a @ b_dot``."""
    b_ndim = tb.ndim - nb
    if b_ndim == 1:
        if np.ndim(a) <= 2:
            return np.matmul(tb, np.swapaxes(a, -1, -2) if np.ndim(a) == 2 else a)  # one GEMM
        col = tb.reshape(tb.shape[:nb] + (1,) * (np.ndim(a) - 2) + (tb.shape[-1], 1))
        return np.matmul(a, col)[..., 0]
    if np.ndim(a) == 1:
        return np.matmul(a, tb)
    return np.matmul(a, expand_to(tb, nb, max(np.ndim(a), b_ndim)))


def _matmul_jvp(primals, tangents, out, nb):
    a, b = primals
    ta, tb = tangents
    result = None
    if ta is not None:
        result = _left(ta, b, nb)
    if tb is not None:
        right = _right(a, tb, nb, np.ndim(out))
        result = right if result is None else result + right
    return result


def _matmul_vjp(argnum, g, primals, out, nb):
    a, b = primals
    a_vec, b_vec = np.ndim(a) == 1, np.ndim(b) == 1
    if b_vec:
        g = g[..., None]
    if a_vec:
        g = g[..., None, :]
    if argnum == 0:
        b2 = b[:, None] if b_vec else b
        a_bar = np.matmul(g, np.swapaxes(b2, -1, -2))
        if a_vec:
            a_bar = a_bar[..., 0, :]
        return unbroadcast(a_bar, np.shape(a), nb)
    a2 = a[None, :] if a_vec else a
    b_bar = np.matmul(np.swapaxes(a2, -1, -2), g)
    if b_vec:
        b_bar = b_bar[..., 0]
    return unbroadcast(b_bar, np.shape(b), nb)


matmul_rule = Rule("matmul", np.matmul, jvp=_matmul_jvp, vjp=_matmul_vjp)


def _examples_matmul():
    shapes = [((3, 4), (4, 2)), ((4,), (4, 2)), ((3, 4), (4,)), ((4,), (4,)), ((2, 3, 4), (4, 5)),
              ((3, 4), (2, 4, 5))]
    return [(lambda rng, sa=sa, sb=sb: ((rng.standard_normal(sa), rng.standard_normal(sb)), {}))
            for sa, sb in shapes]


UFUNC_RULES[np.matmul] = matmul_rule
EXAMPLES[np.matmul] = _examples_matmul()
