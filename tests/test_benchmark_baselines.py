"""The benchmark's baselines compute the same gradients as reversead (else the ratios mean nothing)."""
from __future__ import annotations

import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))

import bench_reverse  # noqa: E402
import minimal_tape  # noqa: E402
import reversead as rd  # noqa: E402


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_minimal_tape_and_hand_written_backprop_agree_with_reversead(dtype):
    params, x, y = bench_reverse.mlp_problem(dtype, batch=8, sizes=(12, 7, 6, 4), seed=3)
    loss = bench_reverse.make_loss(x, y)
    value, grads = bench_reverse.make_reverse_step(loss, params)()
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for name, (v, gs) in {"minimal tape": minimal_tape.make_step(loss, params)(),
                          "hand-written": bench_reverse.make_backprop(x, y)(*params)}.items():
        assert abs(float(v) - float(value)) < tol, name
        for g, ref in zip(gs, grads):
            assert g.shape == ref.shape and g.dtype == ref.dtype, name
            np.testing.assert_allclose(g, ref, atol=tol, err_msg=name)
    assert np.all(np.isfinite(grads[0])) and np.max(np.abs(grads[0])) > 0


def test_minimal_tape_against_finite_differences():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((3, 4)), rng.standard_normal((4, 1))

    def f(u, v):
        z = np.tanh(u) @ v - np.max(u, axis=1, keepdims=True)
        return np.sum(np.log(np.exp(z) + 1.0) / 2.0) * -1.0

    def f_var(u, v):  # the tape's ops only: + with a constant is written as u - (-c)
        z = np.tanh(u) @ v - np.max(u, axis=1, keepdims=True)
        return -(np.sum(np.log(np.exp(z) - (-1.0)) / 2.0))
    ua, vb = minimal_tape.Var(a), minimal_tape.Var(b)
    f_var(ua, vb).backward()
    eps = 1e-6
    for var, arr, other in ((ua, a, lambda p: f(p, b)), (vb, b, lambda p: f(a, p))):
        fd = np.zeros_like(arr)
        for i in np.ndindex(arr.shape):
            d = np.zeros_like(arr)
            d[i] = eps
            fd[i] = (other(arr + d) - other(arr - d)) / (2 * eps)
        np.testing.assert_allclose(var.grad, fd, atol=1e-6)
