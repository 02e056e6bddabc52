"""Timing helpers shared by the benchmark scripts: best of repeats, in one process."""
from __future__ import annotations

import json
import platform
import time

import numpy as np


def best_time(fn, repeats: int = 5, min_time: float = 0.05) -> float:
    """Best per-call time of ``fn`` (seconds): each repeat runs ``fn`` enough times to last ``min_time``."""
    fn()
    start = time.perf_counter()
    fn()
    once = max(time.perf_counter() - start, 1e-7)
    number = max(1, int(min_time / once))
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - start) / number)
    return best


def best_of(fn, repeat: int = 7, number: int = 1, warmup: bool = False) -> float:
    """Minimum over ``repeat`` rounds of the mean time of ``number`` calls of ``fn`` (seconds)."""
    if warmup:
        fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        times.append((time.perf_counter() - start) / number)
    return min(times)


def machine() -> dict:
    import os
    return {"python": platform.python_version(), "numpy": np.__version__, "machine": platform.machine(),
            "processor": platform.processor(), "cpus": os.cpu_count()}


def write_json(path, payload) -> None:
    if path:
        with open(path, "w") as fh:
            json.dump(payload, fh, indent=1, default=float)
        print(f"wrote {path}")
