"""The random view programs of ``test_forward_views_random`` on reversead's tape.

Each program takes views of ``z = x * 1.0`` (slices, ``.T``, a reshape) and of its views, and
writes in place through any of them (``*=``, ``+=``, ``a[...] = ...``, ``out=``), so every
write goes through a view to its base (PyTorch's CopySlices). The output must be NumPy's on
plain arrays and ``x.grad`` the central difference of ``<w, program(x)>``; ``rd.vjp`` and
dualad's ``jvp`` must agree with it.
"""
import zlib

import numpy as np
import pytest

import dualad
import reversead as rd
from test_forward_views_random import make_program


@pytest.mark.parametrize("seed", range(150))
def test_random_views_and_writes_backpropagate(seed):
    program = make_program(zlib.crc32(f"views{seed}".encode()))
    rng = np.random.default_rng(seed)
    x0 = rng.uniform(0.5, 1.5, (4, 3))
    w = rng.standard_normal((4, 3))
    expected = program(x0.copy())

    x = rd.tensor(x0, requires_grad=True)
    y = program(x)
    np.testing.assert_allclose(y.data, expected, rtol=1e-12, atol=1e-12)
    (y * w).sum().backward()

    def scalar(v):
        return float(np.sum(program(v) * w))
    h = 1e-6
    fd = np.array([(scalar(x0 + h * e) - scalar(x0 - h * e)) / (2 * h)
                   for e in np.eye(x0.size).reshape(x0.size, *x0.shape)]).reshape(x0.shape)
    np.testing.assert_allclose(x.grad, fd, rtol=1e-5, atol=1e-6)

    _, vjp = rd.vjp(program, x0, w)
    np.testing.assert_allclose(vjp, x.grad, rtol=1e-12, atol=1e-12)
    v = rng.standard_normal((4, 3))
    _, t = dualad.jvp(program, x0, v)
    np.testing.assert_allclose(np.sum(t * w), np.sum(x.grad * v), rtol=1e-10, atol=1e-10)
