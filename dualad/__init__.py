"""dualad: forward-mode automatic differentiation of plain NumPy code with dual numbers.

>>> import numpy as np, dualad
>>> dualad.derivative(np.sin, 0.0)
np.float64(1.0)
"""
from .array import DualArray
from .compiled import jit  # lazy: Numba is imported on the first call
from .dual import Dual
from .errors import (ADError, DerivativeDropError, MissingRuleError, NonNumericError,
                     PerturbationError, ShapeError, SingularMatrixError, InplaceError,
                     UndefinedDerivativeError)
from .options import nan_safe
from .rules.reductions import logsumexp
from .transforms import derivative, gradient, hessian, jacobian, jvp
from .functions import *  # noqa: F401,F403  (dualad.sin, dualad.exp, ...)
from .functions import __all__ as _function_names

__version__ = "0.1.0"

__all__ = ["Dual", "DualArray", "jit", "jvp", "derivative", "gradient", "jacobian", "hessian", "nan_safe", "logsumexp",
           "ADError", "DerivativeDropError", "MissingRuleError", "NonNumericError",
           "PerturbationError", "ShapeError", "SingularMatrixError", "InplaceError",
           "UndefinedDerivativeError",
           *_function_names]
