"""Module-level functions for tests/test_parallel.py: worker processes import them by name.

The tests directory is on ``sys.path`` of the pytest process (rootdir-relative "prepend"
import mode) and ``spawn`` children start with their parent's ``sys.path``, so this module
is importable in the workers as ``_parallel_funcs``.
"""
from __future__ import annotations

import multiprocessing
import os
import threading
import time

import numpy as np

A = np.random.default_rng(6).standard_normal((7, 10))
CALLS = []  # appended to by ``fail_first_chunk`` (threads share it)


def in_worker() -> bool:
    """True inside a worker process or a pool thread."""
    return multiprocessing.parent_process() is not None or threading.current_thread() is not threading.main_thread()


def layer(x):
    """R^10 -> R^7: tanh(A sin x) * x[:7]."""
    return np.tanh(A @ np.sin(x)) * x[:7]


def elementwise(x):
    """R^n -> R^n without float64 constants (float32 stays float32)."""
    return np.sin(x) * x[::-1] + x ** 2


def loss(x):
    """R^10 -> R."""
    return np.sum(np.tanh(A @ np.sin(x)) ** 2) + np.prod(x[:3])


def scaled_loss(scale, x):
    """For functools.partial(scaled_loss, 2.0)."""
    return scale * loss(x)


def structured(a, b):
    """Two inputs (a (2, 3) matrix and a scalar), a dict of outputs with a constant inside."""
    return {"u": np.sin(a) * b, "v": (np.sum(a ** 2, axis=0), 3.0)}


def fail_on_direction_7(x):
    """Raises in the forward chunk whose tangents seed direction 7 only."""
    if np.any(np.asarray(x.tangent)[:, 7]):
        raise ValueError("boom at direction 7")
    return layer(x)


def fail_in_worker(x):
    """Fine in the caller (reverse mode's shape pass), raises in every task."""
    if in_worker():
        raise FloatingPointError("worker-side failure")
    return layer(x)


def fail_first_chunk(x):
    """Slow passes; the one seeding direction 0 raises. Records every call in CALLS."""
    CALLS.append(1)
    if np.any(np.asarray(x.tangent)[:, 0]):
        raise KeyError("first chunk")
    time.sleep(0.05)
    return layer(x)


def die_in_worker(x):
    """Kills the worker process (as a crash would)."""
    if multiprocessing.parent_process() is not None:
        os._exit(3)
    return layer(x)


def changes_shape(x):
    """Nondeterministic: a different output shape in the workers than in the caller."""
    return layer(x)[:5] if in_worker() else layer(x)
