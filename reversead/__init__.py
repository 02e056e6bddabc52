"""reversead: reverse-mode automatic differentiation on a tape, with PyTorch's semantics.

Every operation comes from the same primitive table as ``dualad`` (forward mode),
so both modes differentiate the same plain NumPy functions.

>>> import reversead as rd
>>> a = rd.tensor(3.0, requires_grad=True); b = rd.tensor(2.0, requires_grad=True)
>>> d = a * (a + b); d.backward()
>>> float(a.grad), float(b.grad)          # 2a + b, a
(8.0, 3.0)
"""
from dualad.rules.reductions import logsumexp

from .autograd import backward, grad
from .checkpoint import checkpoint, checkpoint_sequential
from .errors import BackwardError, InplaceError
from .function import Function
from .functional import gradient, hessian, hvp, jacobian, vjp
from .grad_mode import enable_grad, is_grad_enabled, no_grad
from .tensor import Tensor, tensor

__version__ = "0.1.0"

__all__ = ["Tensor", "tensor", "no_grad", "enable_grad", "is_grad_enabled", "grad", "backward",
           "Function", "vjp", "gradient", "jacobian", "hessian", "hvp", "BackwardError", "InplaceError",
           "checkpoint", "checkpoint_sequential", "logsumexp"]
