"""Jacobians on executors (issue 6, part 3): same results as serial, clear errors, nothing partial."""
from __future__ import annotations

import functools
import multiprocessing
import sys
import types
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import numpy as np
import pytest

import _parallel_funcs as funcs
import dualad
import reversead
from dualad.errors import ShapeError
from dualad.parallel import ChunkError, NotPicklableError

X = np.linspace(0.1, 1.0, 10)


@pytest.fixture(scope="module")
def pool():
    """One spawn pool for the module: starting spawn workers costs about a second."""
    with ProcessPoolExecutor(max_workers=2, mp_context=multiprocessing.get_context("spawn")) as ex:
        yield ex


class CountingPool(ThreadPoolExecutor):
    """A thread pool that counts the tasks it is given."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.submitted = 0

    def submit(self, *args, **kwargs):
        self.submitted += 1
        return super().submit(*args, **kwargs)


def assert_same(a, b):
    """Equal trees of arrays: same structure, dtype, shape and bits."""
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            assert_same(a[key], b[key])
    elif isinstance(a, (tuple, list)):
        assert type(a) is type(b) and len(a) == len(b)
        for u, v in zip(a, b):
            assert_same(u, v)
    else:
        a, b = np.asarray(a), np.asarray(b)
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)


# -- identical to serial ------------------------------------------------------
@pytest.mark.parametrize("chunk", [1, 3, 10])
def test_forward_jacobian_identical(pool, chunk):
    assert_same(dualad.jacobian(funcs.layer, X, chunk, executor=pool), dualad.jacobian(funcs.layer, X, chunk))


@pytest.mark.parametrize("chunk", [1, 3, 10])
def test_reverse_jacobian_identical(pool, chunk):
    assert_same(reversead.jacobian(funcs.layer, X, chunk, executor=pool), reversead.jacobian(funcs.layer, X, chunk))


def test_structured_inputs_and_outputs(pool):
    a, b = np.arange(6.0).reshape(2, 3) / 7, 0.5
    for mode in (dualad, reversead):
        assert_same(mode.jacobian(funcs.structured, (a, b), 2, executor=pool),
                    mode.jacobian(funcs.structured, (a, b), 2))


def test_float32_stays_float32(pool):
    x = X.astype(np.float32)
    for mode in (dualad, reversead):
        J = mode.jacobian(funcs.elementwise, x, 4, executor=pool)
        assert J.dtype == np.float32
        assert_same(J, mode.jacobian(funcs.elementwise, x, 4))


def test_gradient_and_hessians(pool):
    assert_same(dualad.gradient(funcs.loss, X, 3, executor=pool), dualad.gradient(funcs.loss, X, 3))
    assert_same(dualad.hessian(funcs.loss, X, 3, executor=pool), dualad.hessian(funcs.loss, X, 3))
    H = reversead.hessian(funcs.loss, X, executor=pool)
    np.testing.assert_allclose(H, reversead.hessian(funcs.loss, X), rtol=1e-15, atol=1e-15)
    np.testing.assert_allclose(H, dualad.hessian(funcs.loss, X), rtol=1e-12, atol=1e-12)


def test_partial_is_picklable(pool):
    f = functools.partial(funcs.scaled_loss, 2.0)
    assert_same(dualad.gradient(f, X, 4, executor=pool), dualad.gradient(f, X, 4))


def test_default_chunk_feeds_every_worker():
    """chunk=None: at least TASKS_PER_WORKER tasks per worker, results equal to rounding."""
    with CountingPool(max_workers=2) as ex:
        J = dualad.jacobian(funcs.layer, X, executor=ex)
        assert ex.submitted == 4  # ceil(10 / (2 * 2)) = 3 directions per task
        np.testing.assert_allclose(J, dualad.jacobian(funcs.layer, X), rtol=1e-15, atol=0)
    with CountingPool(max_workers=2) as ex:
        J = reversead.jacobian(funcs.layer, X, executor=ex)
        assert ex.submitted == 4  # 7 rows: 2 per task
        np.testing.assert_allclose(J, reversead.jacobian(funcs.layer, X), rtol=1e-15, atol=0)


def test_thread_pool_takes_lambdas():
    with ThreadPoolExecutor(2) as ex:
        assert_same(dualad.jacobian(lambda x: x ** 2, X, 3, executor=ex), np.diag(2 * X))


# -- errors, not wrong answers -------------------------------------------------
@pytest.mark.parametrize("make", [lambda: (lambda x: x ** 2),
                                  lambda: (lambda k: (lambda x: k * x))(2.0)])
def test_unpicklable_function_is_refused(pool, make):
    f = make()
    calls = [("dualad.jacobian", lambda: dualad.jacobian(f, X, executor=pool)),
             ("dualad.gradient", lambda: dualad.gradient(f, X, executor=pool)),
             ("dualad.hessian", lambda: dualad.hessian(f, X, executor=pool)),
             ("reversead.jacobian", lambda: reversead.jacobian(f, X, executor=pool)),
             ("reversead.hessian", lambda: reversead.hessian(f, X, executor=pool))]
    for name, call in calls:
        with pytest.raises(TypeError, match="must be picklable.*module-level") as info:
            call()
        assert isinstance(info.value, NotPicklableError) and name in str(info.value)
        assert info.value.__cause__ is not None


def test_interactive_main_function_is_refused(pool, monkeypatch):
    """A function of a notebook / REPL session pickles by name, but spawned workers cannot import it."""
    fake_main = types.ModuleType("__main__")  # no __file__, like Jupyter's or the REPL's __main__

    def f(x):
        return x
    f.__module__, f.__qualname__ = "__main__", "f"
    fake_main.f = f
    monkeypatch.setitem(sys.modules, "__main__", fake_main)
    with pytest.raises(NotPicklableError, match="interactive session"):
        dualad.jacobian(f, X, executor=pool)


def test_not_an_executor():
    with pytest.raises(TypeError, match="concurrent.futures.Executor"):
        dualad.jacobian(funcs.layer, X, executor=object())
    with pytest.raises(TypeError, match="concurrent.futures.Executor"):
        reversead.jacobian(funcs.layer, X, executor="processes")


def test_worker_exception_names_the_chunk(pool):
    with pytest.raises(ChunkError, match=r"forward-mode chunk 3 of 4.*start=6, size=3.*boom at direction 7") as info:
        dualad.jacobian(funcs.fail_on_direction_7, X, 3, executor=pool)
    err = info.value
    assert (err.mode, err.index, err.start, err.size) == ("forward", 2, 6, 3)
    assert isinstance(err.__cause__, ValueError) and "boom at direction 7" in str(err.__cause__)


def test_reverse_worker_exception(pool):
    with pytest.raises(ChunkError, match=r"reversead.jacobian: reverse-mode chunk .*of output 0.*"
                                         r"FloatingPointError: worker-side failure") as info:
        reversead.jacobian(funcs.fail_in_worker, X, 2, executor=pool)
    assert isinstance(info.value.__cause__, FloatingPointError)
    assert info.value.mode == "reverse" and info.value.output == 0 and info.value.size == 2


def test_shape_errors_come_back_chained(pool):
    with pytest.raises(ChunkError) as info:
        dualad.gradient(funcs.layer, X, 5, executor=pool)
    assert isinstance(info.value.__cause__, ShapeError)


def test_nondeterministic_output_shape(pool):
    with pytest.raises(ChunkError, match="must be deterministic"):
        reversead.jacobian(funcs.changes_shape, X, 4, executor=pool)


def test_failure_cancels_the_rest():
    """One worker, ten slow chunks, the first fails: the rest are cancelled, not run."""
    funcs.CALLS.clear()
    with ThreadPoolExecutor(max_workers=1) as ex:
        with pytest.raises(ChunkError, match=r"chunk 1 of 10.*KeyError.*cancelled"):
            dualad.jacobian(funcs.fail_first_chunk, X, 1, executor=ex)
    assert len(funcs.CALLS) <= 2


def test_dead_worker_is_reported():
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as ex:
        with pytest.raises(ChunkError, match="worker process died") as info:
            dualad.jacobian(funcs.die_in_worker, X, 5, executor=ex)
    assert isinstance(info.value.__cause__, BrokenProcessPool)


def test_traced_inputs_are_refused(pool):
    with pytest.raises(ValueError, match="outer differentiation"):
        dualad.jacobian(lambda y: dualad.jacobian(funcs.layer, y, executor=pool), X)


# -- Dask ----------------------------------------------------------------------
def test_dask_local_cluster():
    """Dask's Client.get_executor() is an Executor; skipped unless the extra is installed."""
    distributed = pytest.importorskip("dask.distributed")
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        ex = client.get_executor()
        assert_same(dualad.jacobian(funcs.layer, X, 3, executor=ex), dualad.jacobian(funcs.layer, X, 3))
        assert_same(reversead.jacobian(funcs.layer, X, 3, executor=ex), reversead.jacobian(funcs.layer, X, 3))
        with pytest.raises(ChunkError, match="boom at direction 7") as info:
            dualad.jacobian(funcs.fail_on_direction_7, X, 3, executor=ex)
        assert isinstance(info.value.__cause__, ValueError)
        with pytest.raises(TypeError, match="client.get_executor"):
            dualad.jacobian(funcs.layer, X, executor=client)
