"""Forward vs reverse, side by side: time both modes on one function and pick the cheaper.

``compare(f, x)`` measures ``f`` itself, ``dualad.jacobian`` (forward: chunked
tangents) and ``reversead.jacobian`` (reverse: batched cotangents) in one process
and returns a :class:`Report`. ``jacobian(f, x, mode="auto")`` picks a mode
from the input size n and output size m with a small cost model:

    cost_forward ≈ n                                         (one pass carrying n tangents)
    cost_reverse ≈ REV_PER_COTANGENT · m + TAPE_OVERHEAD     (one batched backward of m rows)

in units of "one tangent direction through the function"; forward wins ties (it builds no
tape). Fitted to the P2 sweep of ``benchmarks/bench_compare.py`` (tanh nets, n, m in
{1, 10, 100, 1000}, 2-core machine, one BLAS thread): a cotangent row costs about 0.75 of a
tangent direction, and recording plus walking the tape about 150 directions, which makes
forward mode win every small problem. With these constants the model picks the faster mode
in 16 of the 16 cells. Adjust them for functions of very different shape.
"""
from __future__ import annotations

import math
import statistics
import time
import tracemalloc
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import numpy as np

from . import transforms

MODES = ("forward", "reverse")
#: cost model constants, in tangent-direction equivalents; see the module docstring
REV_PER_COTANGENT = 0.75
TAPE_OVERHEAD = 150


@dataclass
class ModeResult:
    """Timings (seconds) and peak traced memory (bytes) of one mode."""

    best: float
    median: float
    peak_bytes: int
    cost_ratio: float  # best / cost(f)


@dataclass
class Report:
    """What ``compare`` measured for one function and point."""

    name: str
    n: int
    m: int
    f_seconds: float
    forward: ModeResult
    reverse: ModeResult
    max_abs_diff: float
    predicted: str
    repeats: int
    extra: dict = field(default_factory=dict)

    @property
    def faster(self) -> str:
        """The mode that measured faster."""
        return "forward" if self.forward.best <= self.reverse.best else "reverse"

    @property
    def ratio(self) -> float:
        """cost(forward) / cost(reverse): above 1 means reverse is cheaper."""
        return self.forward.best / self.reverse.best if self.reverse.best > 0 else math.inf

    def to_dict(self) -> dict:
        d = asdict(self)
        d.update(faster=self.faster, ratio=self.ratio)
        return d

    def row(self) -> str:
        return (f"{self.name:<22} {self.n:>6} {self.m:>6}  {_fmt_time(self.forward.best):>10} "
                f"{_fmt_time(self.reverse.best):>10} {self.ratio:>8.2f}  {self.predicted:<8} "
                f"{self.max_abs_diff:>8.1e}")

    def __str__(self) -> str:
        return "\n".join([HEADER, self.row()])


HEADER = (f"{'problem':<22} {'n':>6} {'m':>6}  {'forward':>10} {'reverse':>10} {'fwd/rev':>8}  "
          f"{'picked':<8} {'agree':>8}")


def _fmt_time(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} us"
    if seconds < 1:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.2f} s"


def format_table(reports) -> str:
    """The reports as one aligned text table."""
    return "\n".join([HEADER] + [r.row() for r in reports])


def sizes(f: Callable, x: Any) -> tuple[int, int]:
    """``(n, m)``: number of inputs and of outputs of ``f`` at ``x`` (one plain evaluation)."""
    leaves, inputs = transforms._flatten(x)
    n = sum(int(np.size(v)) for v in leaves)
    out = transforms._call(f, leaves, inputs)
    outs = out if isinstance(out, (tuple, list)) else [out]
    return n, sum(int(np.size(o)) for o in outs)


def choose_mode(n: int, m: int) -> str:
    """The mode the cost model predicts to be cheaper for a Jacobian of shape (m, n).

    Examples
    --------
    >>> choose_mode(1000, 1), choose_mode(1, 1000)
    ('reverse', 'forward')
    """
    return "forward" if n <= REV_PER_COTANGENT * m + TAPE_OVERHEAD else "reverse"


def jacobian(f: Callable, x: Any, mode: str = "auto", chunk: int | None = None):
    """The Jacobian of ``f`` at ``x`` in forward, reverse, or the cheaper (``"auto"``) mode.

    Examples
    --------
    >>> import numpy as np
    >>> jacobian(lambda x: np.sum(x ** 2), np.array([1.0, 2.0]), mode="auto")
    array([2., 4.])
    """
    if mode not in ("auto",) + MODES:
        raise ValueError(f"mode must be 'auto', 'forward' or 'reverse', got {mode!r}")
    if mode == "auto":
        mode = choose_mode(*sizes(f, x))
    if mode == "forward":
        return transforms.jacobian(f, x, chunk=chunk)
    import reversead
    return reversead.jacobian(f, x, chunk=chunk)


def _time(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times)


def _peak(fn) -> int:
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        fn()
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


def _max_diff(a, b) -> float:
    if isinstance(a, (tuple, list)):
        return max((_max_diff(x, y) for x, y in zip(a, b)), default=0.0)
    if isinstance(a, dict):
        return max((_max_diff(a[k], b[k]) for k in a), default=0.0)
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.max(np.abs(a - b))) if a.size else 0.0


def compare(f: Callable, x: Any, *, name: str = "f", repeats: int = 5, memory: bool = True,
            chunk: int | None = None) -> Report:
    """Time ``f``, its forward-mode and its reverse-mode Jacobian at ``x``, side by side.

    Each figure is the best (and median) of ``repeats`` runs after one warm-up run;
    ``cost_ratio`` divides by the best time of ``f`` itself, measured in the same
    process. ``max_abs_diff`` is the largest difference between the two Jacobians.

    Examples
    --------
    >>> import numpy as np
    >>> report = compare(lambda x: np.sum(np.sin(x)), np.ones(50), repeats=2, memory=False)
    >>> report.n, report.m, report.max_abs_diff < 1e-12
    (50, 1, True)
    """
    import reversead

    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    leaves, inputs = transforms._flatten(x)
    n, m = sizes(f, x)
    call = lambda: transforms._call(f, leaves, inputs)  # noqa: E731
    runs = {"forward": lambda: transforms.jacobian(f, x, chunk=chunk),
            "reverse": lambda: reversead.jacobian(f, x, chunk=chunk)}
    results = {mode: run() for mode, run in runs.items()}  # warm-up (compiles kernels) and values
    call()
    f_best, _ = _time(call, max(repeats, 3))
    modes = {}
    for mode, run in runs.items():
        best, median = _time(run, repeats)
        peak = _peak(run) if memory else 0
        modes[mode] = ModeResult(best, median, peak, best / f_best if f_best > 0 else math.inf)
    return Report(name=name, n=n, m=m, f_seconds=f_best, forward=modes["forward"],
                  reverse=modes["reverse"], max_abs_diff=_max_diff(results["forward"], results["reverse"]),
                  predicted=choose_mode(n, m), repeats=repeats)
