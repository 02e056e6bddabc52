"""The primitive table: one entry per primitive, serving both modes.

Topics: ``elementwise`` (ufuncs), ``reductions``, ``shape`` (structural),
``contractions`` (matmul, einsum, dot ...), ``linalg`` (inv, det, solve, norm, cholesky),
``decompositions`` (eigh, svd, qr, pinv, lstsq ...), ``creation`` (zeros_like, copy ...),
``nanfunctions`` (nansum ...), ``numerics`` (interp, convolve, polyval ...), ``statistics``
(percentile, quantile, cov ...), ``polynomials`` (polyfit, polymul ...), ``assembly`` (block,
insert, delete ...), ``scatter`` (put, putmask, ufunc.at ...), ``spectral`` (eig, cond, the
np.linalg namespace). Importing this package fills the registries
in ``core``.
"""
from . import (contractions, creation, decompositions, elementwise, linalg,  # noqa: F401  (fill the table)
               nanfunctions, numerics, reductions, shape)
from . import assembly, polynomials, scatter, spectral, statistics  # noqa: F401,E402  (after the rules they use)
from .core import (EXAMPLES, FUNCTION_IMPLS, NONDIFF_UFUNCS, RULES, UFUNC_RULES, Elementwise,
                   Linear, Rule, register_function)
from .dispatch import array_function, array_ufunc, strip


__all__ = ["EXAMPLES", "FUNCTION_IMPLS", "NONDIFF_UFUNCS", "RULES", "UFUNC_RULES", "Elementwise",
           "Linear", "Rule", "array_function", "array_ufunc", "register_function", "strip"]
