"""Numerical options shared by both modes."""
from __future__ import annotations

import contextlib

from .rules.core import CONFIG


@contextlib.contextmanager
def nan_safe(enabled: bool = True):
    """Within the block, a zero tangent times an infinite partial gives 0, per tangent slot.

    Without it ``sqrt`` at 0 with a zero tangent gives ``inf * 0 = nan`` (IEEE);
    with it the zero direction stays 0, as ForwardDiff.jl's NaN-safe mode does.

    Examples
    --------
    >>> import numpy as np, dualad
    >>> with dualad.nan_safe():
    ...     dualad.jacobian(np.sqrt, np.array([0.0, 4.0]))[1]
    array([0.  , 0.25])
    """
    previous = CONFIG.nan_safe
    CONFIG.nan_safe = enabled
    try:
        yield
    finally:
        CONFIG.nan_safe = previous
