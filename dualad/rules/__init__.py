"""The primitive table: one entry per primitive, serving both modes.

Topics: ``elementwise`` (ufuncs), ``reductions``, ``shape`` (structural),
``contractions`` (matmul, einsum, dot ...), ``linalg``. Importing this package
fills the registries in ``core``.
"""
from . import contractions, elementwise, linalg, reductions, shape  # noqa: F401  (fill the table)
from .core import (EXAMPLES, FUNCTION_IMPLS, NONDIFF_UFUNCS, RULES, UFUNC_RULES, Elementwise,
                   Linear, Rule, register_function)


def strip(x):
    """The plain value under any number of traced layers (no derivative)."""
    while getattr(x, "_ad_level", None) is not None:
        x = x._ad_primal()
    return x


__all__ = ["EXAMPLES", "FUNCTION_IMPLS", "NONDIFF_UFUNCS", "RULES", "UFUNC_RULES", "Elementwise",
           "Linear", "Rule", "register_function", "strip"]
