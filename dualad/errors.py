"""Exceptions raised by dualad and reversead.

Every error names the operation, the mode and what to do about it; user-facing
checks raise these (never ``assert``, which vanishes under ``python -O``).
"""
from __future__ import annotations

import numpy as np


class ADError(Exception):
    """Base class of every error raised by dualad / reversead."""


class MissingRuleError(ADError, TypeError):
    """A NumPy function or ufunc has no derivative rule in the primitive table."""


class ShapeError(ADError, ValueError):
    """A tangent, cotangent or input has a shape that does not fit."""


class PerturbationError(ADError, ValueError):
    """Tangents of one differentiation level disagree (chunk sizes, leaked tags)."""


class DerivativeDropError(ADError, TypeError):
    """A conversion would silently discard a derivative (``float(dual)``)."""


class NonNumericError(ADError, TypeError):
    """A function returned, or was given, something that is not a real number or array."""


class SingularMatrixError(ADError, np.linalg.LinAlgError):
    """A derivative that does not exist at a singular matrix (``log|det A|`` at ``det A = 0``).

    A ``numpy.linalg.LinAlgError`` too, so code that catches NumPy's error catches this.
    """


class UndefinedDerivativeError(ADError, np.linalg.LinAlgError):
    """A derivative that is not defined at this input because the result is not unique there.

    Eigenvectors (singular vectors) where two eigenvalues (singular values) are equal, the extra
    columns of ``svd(..., full_matrices=True)`` or ``qr(..., mode='complete')`` of a non-square
    matrix. A ``numpy.linalg.LinAlgError`` (so a ``ValueError``) too.
    """


class InplaceError(ADError, RuntimeError, ValueError):
    """An in-place write that would make a derivative wrong, refused instead.

    dualad: a write it cannot apply to a DualArray's primal and tangent alike. reversead:
    in-place on a leaf that requires grad, or on a view it cannot write through (a
    RuntimeError there, as PyTorch raises).
    """
