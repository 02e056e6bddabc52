"""``dualad.sin(d)`` etc.: the elementwise primitives as functions (same as ``np.sin(d)``)."""
from __future__ import annotations

from .rules.core import UFUNC_RULES

__all__ = []
for _ufunc, _rule in UFUNC_RULES.items():
    globals()[_ufunc.__name__] = _ufunc
    __all__.append(_ufunc.__name__)
del _ufunc, _rule
