"""Jacobians beyond one process: the chunks of ``jacobian``/``hessian`` on any executor (issue 6).

Forward mode computes a Jacobian in chunks of k tangent directions (columns), reverse mode in
batches of b cotangent rows; each chunk is a full, independent pass. With ``executor=`` —
any :class:`concurrent.futures.Executor` — every chunk becomes one task that recomputes its
pass from ``(f, x)`` in a worker, and the caller concatenates the results in order:

=====================================  ============================================
``dualad.jacobian / gradient``         :func:`_forward_chunk`: one tangent chunk
``dualad.hessian``                     the outer Jacobian of a picklable gradient-of-f
``reversead.jacobian``                 :func:`_reverse_chunk`: forward + one batched backward
``reversead.hessian``                  forward chunks over reverse-mode gradients
=====================================  ============================================

A chunk's arithmetic does not depend on where it runs, so for the same ``chunk`` the result
is bitwise the serial one. ``chunk=None`` with an executor takes
``min(serial chunk, ceil(n / (TASKS_PER_WORKER * workers)))`` so that every worker gets work;
chunks of another size may round differently in BLAS (agreement to ~1e-16 relative).

Executors
---------
``ProcessPoolExecutor`` on one machine — always with the ``spawn`` start method::

    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        J = dualad.jacobian(mymodule.f, x, executor=pool)

``fork`` copies a parent whose Numba OpenMP/TBB threading layer (used by dualad's kernels)
may already be running: the forked child dies or hangs inside it. ``spawn`` starts clean
interpreters that import dualad and ``f``'s module afresh (so a script must guard its entry
point with ``if __name__ == "__main__":``).

Dask on a cluster (the optional extra ``pip install dualad[distributed]``)::

    from dask.distributed import Client
    client = Client("scheduler:8786")
    J = reversead.jacobian(mymodule.f, x, executor=client.get_executor())

A ``ThreadPoolExecutor`` works too (nothing is pickled, no copy), but only BLAS-bound
functions gain from threads under the GIL.

Requirements and errors
-----------------------
* ``f`` travels to the workers by pickle: a module-level function, a ``functools.partial``
  of one or an instance of a module-level class. Lambdas, closures and nested functions are
  refused up front with :class:`NotPicklableError` (a ``TypeError``). Whatever ``f``
  references by value (a partial's arrays) is sent with every task; module globals are
  not (each worker imports them once).
* A task that raises fails the whole call with :class:`ChunkError`, naming the chunk (mode,
  output, start, size) and chained (``raise ... from``) to the worker's exception; the
  remaining tasks are cancelled and nothing partial is returned.
* Inputs already traced by an outer differentiation are refused: perturbation tags are
  per-process counters and cannot be compared across processes.
"""
from __future__ import annotations

import concurrent.futures as cf
import math
import os
import pickle
import sys

import numpy as np

from .errors import ADError

#: with ``chunk=None``, aim for this many tasks per worker (load balance vs per-task overhead)
TASKS_PER_WORKER = 2


class NotPicklableError(ADError, TypeError):
    """``f`` cannot be sent to the executor's workers (not picklable / not importable there)."""


class ChunkError(ADError, RuntimeError):
    """A chunk failed on the executor. ``__cause__`` is the worker's exception.

    Attributes: ``mode`` ("forward" or "reverse"), ``index`` (task number), ``start`` and
    ``size`` (first direction / row and how many), ``output`` (reverse mode: which output).
    """

    def __init__(self, message, *, mode, index, start, size, output=None):
        super().__init__(message)
        self.mode, self.index, self.start, self.size, self.output = mode, index, start, size, output


# -- checks -------------------------------------------------------------------
def check_executor(executor, where):
    """``executor`` must be a ``concurrent.futures.Executor`` (a Dask Client is not one)."""
    if isinstance(executor, cf.Executor):
        return
    hint = ""
    if type(executor).__module__.startswith("distributed") and hasattr(executor, "get_executor"):
        hint = "; for Dask pass client.get_executor(), not the Client itself"
    raise TypeError(f"{where}: executor must be a concurrent.futures.Executor (e.g. ProcessPoolExecutor "
                    f"with mp_context=multiprocessing.get_context('spawn')), got {type(executor).__name__}{hint}")


def check_picklable(f, executor, where):
    """Refuse up front an ``f`` the workers could not receive, with what to do instead."""
    if isinstance(executor, cf.ThreadPoolExecutor):
        return  # threads share the interpreter: nothing is pickled
    try:
        pickle.dumps(f)
    except Exception as err:
        raise NotPicklableError(
            f"{where}(..., executor=...) sends f to worker processes, so f must be picklable: a "
            f"module-level function (def at the top level of an importable module), a functools.partial "
            f"of one, or an instance of a module-level class. {f!r} is not "
            f"({type(err).__name__}: {err}); lambdas, closures and nested functions never are. "
            f"Move f to module level, or drop executor= to run serially.") from err
    if isinstance(executor, cf.ProcessPoolExecutor) and getattr(f, "__module__", None) == "__main__" \
            and not getattr(sys.modules.get("__main__"), "__file__", None) and _start_method(executor) != "fork":
        raise NotPicklableError(
            f"{where}(..., executor=...): f ({getattr(f, '__qualname__', f)!r}) is defined in an interactive "
            "session (__main__ has no file), which spawned worker processes cannot import; put f in a .py "
            "module and import it from there")


def _start_method(executor):
    ctx = getattr(executor, "_mp_context", None)
    return ctx.get_start_method() if ctx is not None else None


def check_untraced(leaves, where):
    if any(getattr(v, "_ad_level", None) is not None for v in leaves):
        raise ValueError(f"{where}: executor= cannot be used on inputs traced by an outer differentiation "
                         "(perturbation tags do not cross processes); pass executor= to the outermost "
                         "jacobian/hessian instead")


def executor_workers(executor) -> int:
    """How many tasks the executor runs at once (best guess): pools' max_workers, Dask's threads."""
    n = getattr(executor, "_max_workers", None)
    if isinstance(n, int) and n > 0:
        return n
    client = getattr(executor, "_client", None)  # distributed.cfexecutor.ClientExecutor
    if client is not None:
        try:
            return max(1, sum(client.nthreads().values()))
        except Exception:  # an unreachable scheduler shows up when the tasks run
            pass
    return os.cpu_count() or 1


def parallel_chunk(serial_chunk, chunk, total, executor) -> int:
    """The chunk an executor run uses: ``chunk`` if given, else small enough to feed every worker."""
    if chunk is not None or total <= 1:
        return serial_chunk
    target = TASKS_PER_WORKER * executor_workers(executor)
    return max(1, min(serial_chunk, math.ceil(total / target)))


# -- running tasks ------------------------------------------------------------
def run_chunks(executor, fn, tasks, where):
    """Submit ``fn(*args)`` for each ``(args, info)`` in ``tasks``; results in order, or ChunkError.

    ``info`` is a dict with ``mode``, ``start``, ``size`` (and ``output``) naming the chunk. On
    the first failure every unfinished task is cancelled and nothing is returned.
    """
    futures = []
    try:
        for args, _ in tasks:
            futures.append(executor.submit(fn, *args))
        done, pending = cf.wait(futures, return_when=cf.FIRST_EXCEPTION)
    except BaseException:  # submission failed (executor shut down) or KeyboardInterrupt
        for fut in futures:
            fut.cancel()
        raise
    failed = [i for i, fut in enumerate(futures) if fut in done and (fut.cancelled() or fut.exception() is not None)]
    if not failed and not pending:
        return [fut.result() for fut in futures]
    for fut in pending:
        fut.cancel()
    if not failed:  # cannot happen with FIRST_EXCEPTION; guard against odd executors
        raise RuntimeError(f"{where}: the executor returned before all chunks finished")
    i = failed[0]
    info = tasks[i][1]
    err = cf.CancelledError("the task was cancelled") if futures[i].cancelled() else futures[i].exception()
    what = (f"rows {info['start']}..{info['start'] + info['size'] - 1} of output {info['output']}"
            if info["mode"] == "reverse" else
            f"input directions {info['start']}..{info['start'] + info['size'] - 1}")
    hint = ""
    if type(err).__name__ == "BrokenProcessPool":
        hint = (" A worker process died (crash, out of memory, or a forked child killed by Numba's "
                "threading layer: create the pool with mp_context=multiprocessing.get_context('spawn')).")
    raise ChunkError(
        f"{where}: {info['mode']}-mode chunk {i + 1} of {len(tasks)} failed on the executor "
        f"({what}; start={info['start']}, size={info['size']}): {type(err).__name__}: {err}. "
        f"No result was returned; the {len(pending)} unfinished chunks were cancelled (any already running "
        f"are abandoned).{hint}",
        mode=info["mode"], index=i, start=info["start"], size=info["size"], output=info.get("output")) from err


# -- workers (module level: picklable by reference) ----------------------------
def _forward_chunk(f, leaves, unpack, start, k, scalar_output=None):
    """Worker: tangent tree (k, *S_out) of directions ``start .. start+k`` (one forward pass)."""
    from .transforms import _forward_pass
    return _forward_pass(f, leaves, unpack, start, k, scalar_output)[1]


def _reverse_chunk(f, leaves, unpack, output, start, b, shape):
    """Worker: rows ``start .. start+b`` of output ``output``: per input an array (b, *x.shape)."""
    from reversead import functional as R
    tensors = R._track(leaves)
    outs, _ = R._outputs(R._call(f, tensors, unpack))
    if output >= len(outs) or outs[output].shape != shape:
        got = f"shape {outs[output].shape}" if output < len(outs) else f"{len(outs)} outputs"
        raise RuntimeError(f"f returned {got} in the worker where the caller saw output {output} of shape "
                           f"{shape}: f must be deterministic")
    return R._backward_rows(outs[output], tensors, start, b, retain_graph=False)


class _ForwardGradient:
    """``x -> dualad.gradient(f, x, chunk)``: the picklable inner function of ``hessian``."""

    def __init__(self, f, unpack, chunk):
        self.f, self.unpack, self.chunk = f, unpack, chunk

    def __call__(self, *args):
        from .transforms import gradient
        return gradient(self.f, tuple(args) if self.unpack else args[0], self.chunk)


class _ReverseGradient:
    """``x -> reversead.gradient(f, x)``: the picklable inner function of ``reversead.hessian``."""

    def __init__(self, f, unpack):
        self.f, self.unpack = f, unpack

    def __call__(self, *args):
        from reversead.functional import gradient
        return gradient(self.f, tuple(args) if self.unpack else args[0])


# -- the transforms -----------------------------------------------------------
def forward_jacobian(f, x, chunk, executor, scalar_output=None, where=None):
    """``dualad.jacobian`` / ``gradient`` with its tangent chunks run on ``executor``."""
    from . import transforms as T
    where = where or ("dualad.gradient" if scalar_output else "dualad.jacobian")
    check_executor(executor, where)
    if T._is_numba_dispatcher(f):
        raise NotImplementedError(f"{where}: executor= is not supported for @njit functions (their chunks "
                                  "run inside compiled code); pass the plain Python function or drop executor=")
    leaves, unpack = T._flatten(x)
    check_untraced(leaves, where)
    check_picklable(f, executor, where)
    n = sum(math.prod(np.shape(v)) for v in leaves)
    k = parallel_chunk(T._pick_chunk(chunk, n, leaves), chunk, n, executor)
    tasks = []
    for start in range(0, max(n, 1), k):
        kc = min(k, n - start) if n else 0
        tasks.append(((f, leaves, unpack, start, kc, scalar_output), {"mode": "forward", "start": start, "size": kc}))
    tangents = T._tree_zip_concat(run_chunks(executor, _forward_chunk, tasks, where))
    return T._columns_to_jacobian(tangents, leaves, unpack)


def forward_hessian(f, x, chunk, executor):
    """``dualad.hessian`` with the outer Jacobian's chunks on ``executor``."""
    from . import transforms as T
    check_executor(executor, "dualad.hessian")
    check_picklable(f, executor, "dualad.hessian")
    leaves, unpack = T._flatten(x)
    return forward_jacobian(_ForwardGradient(f, unpack, chunk), unpack.unflatten(leaves), chunk,
                            executor, where="dualad.hessian")


def reverse_hessian(f, x, executor):
    """``reversead.hessian`` (forward-over-reverse) with the forward chunks on ``executor``."""
    from reversead import functional as R
    check_executor(executor, "reversead.hessian")
    check_picklable(f, executor, "reversead.hessian")
    leaves, unpack = R._leaves(x)
    return forward_jacobian(_ReverseGradient(f, unpack), unpack.unflatten(leaves), None,
                            executor, where="reversead.hessian")


def reverse_jacobian(f, x, chunk, executor):
    """``reversead.jacobian`` with its cotangent row batches on ``executor``.

    The caller runs ``f`` once without a tape (for the outputs' shapes); each task reruns the
    forward pass with a tape and backpropagates its batch of rows.
    """
    from reversead import functional as R
    from reversead.grad_mode import no_grad
    from .rules import strip
    where = "reversead.jacobian"
    check_executor(executor, where)
    leaves, unpack = R._leaves(x)
    check_untraced(leaves, where)
    check_picklable(f, executor, where)
    tensors = R._track(leaves)
    with no_grad():
        outs, rebuild = R._outputs(R._call(f, tensors, unpack))
    n = sum(t.size for t in tensors)
    itemsize = max(np.dtype(strip(t.data).dtype).itemsize for t in tensors)
    rows = parallel_chunk(R._pick_rows(chunk, n, itemsize), chunk, sum(o.size for o in outs), executor)
    tasks, slots = [], []  # slots[oi] = list of (task index or local zeros)
    for oi, out in enumerate(outs):
        slots.append([])
        for start in range(0, max(out.size, 1), rows):
            b = min(rows, out.size - start)
            if b <= 0:  # an empty output: no pass needed
                slots[oi].append(R._grads_or_zeros(tensors, [None] * len(tensors), (0,)))
                continue
            slots[oi].append(len(tasks))
            tasks.append(((f, leaves, unpack, oi, start, b, out.shape),
                          {"mode": "reverse", "output": oi, "start": start, "size": b}))
    done = run_chunks(executor, _reverse_chunk, tasks, where)
    results = []
    for out, parts in zip(outs, slots):
        parts = [done[p] if isinstance(p, int) else p for p in parts]
        results.append(R._jacobian_blocks(parts, out, tensors, unpack))
    return rebuild(results)
