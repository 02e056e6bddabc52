"""Errors of the reverse mode; PyTorch's key phrases are kept so people can search them."""
from __future__ import annotations

from dualad.errors import ADError, InplaceError, ShapeError


class BackwardError(ADError, RuntimeError):
    """Backward cannot run: freed graph, modified saved value, nothing requires grad ..."""


__all__ = ["ADError", "BackwardError", "InplaceError", "ShapeError"]
