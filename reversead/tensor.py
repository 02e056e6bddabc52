"""``Tensor``: an ndarray that records the operations on it (the tape), PyTorch-style.

Every operation is a rule of the shared primitive table (``dualad.rules``): the
forward value is the rule's primal, and the node stores only what the rule's VJP
reads (``rule.saved_for``). Version counters catch in-place changes to saved
values at backward time.
"""
from __future__ import annotations

import sys
import weakref

import numpy as np
from numpy.lib.mixins import NDArrayOperatorsMixin

from dualad.rules import RULES, strip
from dualad.rules.dispatch import array_function, array_ufunc
from dualad.rules.shape import check_index

from .errors import BackwardError, InplaceError
from .grad_mode import is_grad_enabled
from .graph import Node, run_backward

_PACKAGE_DIRS = tuple(p for p in (__file__.rsplit("reversead", 1)[0] + "reversead",
                                  __file__.rsplit("reversead", 1)[0] + "dualad",
                                  np.__file__.rsplit("__init__", 1)[0]))
_TORCH_NAMES = {"add": "Add", "subtract": "Sub", "multiply": "Mul", "divide": "Div", "matmul": "Matmul",
                "power": "Pow", "negative": "Neg", "getitem": "Index", "absolute": "Abs"}


class _Meta:
    """Shape and dtype of a value the tape did not save (its VJP reads no more)."""

    __slots__ = ("shape", "dtype", "ndim")

    def __init__(self, value):
        self.shape = tuple(np.shape(value))
        dtype = getattr(value, "dtype", None)
        self.dtype = dtype if dtype is not None else np.result_type(value)
        self.ndim = len(self.shape)


class RuleNode(Node):
    """A node applying one rule's VJP; subclassed per rule for a readable class name."""

    __slots__ = ("rule", "static", "saved", "out", "versions", "created")

    def apply(self, g, needed, nb, create_graph):
        saved = self.saved
        if saved is None:
            self._freed_error()
        for i, (counter, version) in self.versions:
            if counter[0] != version:
                raise BackwardError(
                    "one of the variables needed for gradient computation has been modified by an "
                    f"inplace operation: input {i} of {self.name()} (shape {saved[i].shape}) is at "
                    f"version {counter[0]}; expected version {version} instead. The op was created at "
                    f"{self.created}. Hint: replace the in-place operation (+=, x[i] = ..., out=) "
                    "with an out-of-place one.")
        primals, out = saved, self.out
        if create_graph:
            primals = [e if isinstance(e, Tensor) and e.grad_fn is None else
                       Tensor._make(p, True, e) if isinstance(e, Node) and not isinstance(p, _Meta) else p
                       for p, e in zip(saved, self.edges)]
            out = Tensor._make(out, True, self) if out is not None else None
            g = g if isinstance(g, Tensor) else Tensor._make(g, False, None)
        rule, static = self.rule, self.static
        return [rule.vjp(i, g, primals, out, nb, static) if want else None
                for i, want in enumerate(needed)]

    def release(self):
        self.saved = self.out = None
        self.freed = True


_NODE_CLASSES: dict = {}


def _node_class(rule):
    cls = _NODE_CLASSES.get(rule.name)
    if cls is None:
        stem = _TORCH_NAMES.get(rule.name) or "".join(p.capitalize() for p in rule.name.split("_"))
        cls = type(f"{stem}Backward", (RuleNode,), {"__slots__": ()})
        _NODE_CLASSES[rule.name] = cls
    return cls


def _creation_site() -> str:
    """``file:line`` of the first frame outside reversead, dualad and NumPy."""
    frame = sys._getframe(2)
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIRS):
        frame = frame.f_back
    return "<unknown>" if frame is None else f"{frame.f_code.co_filename}:{frame.f_lineno}"


def apply(rule, xs, static):
    """Reverse-mode application of ``rule``: compute the primal, record a node if needed."""
    datas, record = [], False
    for x in xs:
        if isinstance(x, Tensor):
            datas.append(x.data)
            record = record or x.requires_grad
        else:
            datas.append(x)
    out = rule.primal(*datas, **static)
    if not (record and is_grad_enabled()):
        return Tensor._make(out, False, None)
    nondiff = rule.nondiff_argnums
    edges = tuple((x.grad_fn if x.grad_fn is not None else x)
                  if isinstance(x, Tensor) and x.requires_grad and i not in nondiff else None
                  for i, x in enumerate(xs))
    keep, keep_out = set(), False
    for i, edge in enumerate(edges):
        if edge is not None:
            used, uses_out = rule.saved_for(i)
            keep.update(range(len(xs)) if used is None else used)
            keep_out = keep_out or uses_out
    node = _node_class(rule)(edges)
    node.rule, node.static = rule, static
    node.saved = [d if i in keep else _Meta(d) for i, d in enumerate(datas)]
    node.versions = [(i, (x._version, x._version[0])) for i, x in enumerate(xs)
                     if i in keep and isinstance(x, Tensor)]
    node.created = _creation_site()
    result = Tensor._make(out, True, node)
    if keep_out:
        node.out = out
        node.versions.append((len(xs), (result._version, 0)))
    else:
        node.out = None
    if isinstance(out, np.ndarray) and out.base is not None:
        _share_version_with_base(result, xs, out)
    return result


def _share_version_with_base(result, xs, out):
    """A view shares its base's version counter, so writes through either are caught."""
    for x in xs:
        if isinstance(x, Tensor) and isinstance(x.data, np.ndarray) and np.may_share_memory(out, x.data):
            result._version = x._version
            result._base = x
            return


def _as_data(data, requires_grad):
    if isinstance(data, Tensor):
        data = data.data
    if getattr(data, "_ad_level", None) is not None:
        return data  # DualArray data: forward-over-reverse
    arr = np.array(data)
    if arr.dtype.kind == "c":
        raise TypeError(f"complex tensors are not supported (dtype {arr.dtype}); reversead "
                        "differentiates real functions")
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"Tensor data must be numeric, got dtype {arr.dtype}")
    if requires_grad and arr.dtype.kind in "biu":
        arr = arr.astype(np.float64)  # integer data asked to require grad: promoted to float64
    return arr


class Tensor(NDArrayOperatorsMixin):
    """An array that records operations for reverse-mode differentiation.

    Integer data with ``requires_grad=True`` is promoted to float64 (only
    floating-point tensors can have gradients); float32 stays float32.

    Examples
    --------
    >>> import numpy as np, reversead as rd
    >>> x = rd.tensor(np.ones((2, 2)), requires_grad=True)
    >>> out = (3 * (x + 2) ** 2).mean()
    >>> out.backward()
    >>> x.grad
    array([[4.5, 4.5],
           [4.5, 4.5]])
    """

    __slots__ = ("data", "grad", "requires_grad", "grad_fn", "_version", "_hooks", "_base", "__weakref__")
    __array_priority__ = 200.0
    _ad_level = 1 << 60  # outermost: a Tensor may hold DualArray data, never the reverse

    def __init__(self, data, requires_grad: bool = False):
        self.data = _as_data(data, requires_grad)
        self.grad = None
        self.grad_fn = None
        self._version = [0]
        self._hooks = None
        self._base = None
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    @classmethod
    def _make(cls, data, requires_grad, grad_fn):
        self = object.__new__(cls)
        if not isinstance(data, np.ndarray) and getattr(data, "_ad_level", None) is None:
            data = np.asarray(data)
        self.data = data
        self.grad = None
        self.requires_grad = requires_grad
        self.grad_fn = grad_fn
        self._version = [0]
        self._hooks = None
        self._base = None
        return self

    # -- tracing protocol --
    def _ad_primal(self):
        return self.data

    _ad_apply = staticmethod(apply)

    def _ad_lift(self, x):
        return Tensor._make(x, False, None)

    # -- attributes --
    @property
    def is_leaf(self) -> bool:
        return self.grad_fn is None

    @property
    def shape(self) -> tuple:
        return tuple(np.shape(self.data))

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    def numel(self) -> int:
        return self.size

    @property
    def T(self):
        return np.transpose(self)

    @property
    def _version_number(self) -> int:
        return self._version[0]

    def __len__(self) -> int:
        return len(self.data)

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    def __repr__(self) -> str:
        extra = f", grad_fn=<{self.grad_fn.name()}>" if self.grad_fn is not None else (
            ", requires_grad=True" if self.requires_grad else "")
        body = np.array2string(strip(self.data), prefix="tensor(") if isinstance(strip(self.data), np.ndarray) else repr(self.data)
        return f"tensor({body}{extra})"

    # -- autograd API --
    def requires_grad_(self, requires_grad: bool = True):
        """Set ``requires_grad`` in place (leaves only); returns self."""
        if not requires_grad and self.grad_fn is not None:
            raise RuntimeError("you can only change requires_grad flags of leaf variables; use "
                               ".detach() to get a non-requiring-grad tensor from a non-leaf")
        if requires_grad and isinstance(self.data, np.ndarray) and self.data.dtype.kind != "f":
            if self.data.dtype.kind in "biu":
                self.data = self.data.astype(np.float64)  # promoted, as documented on Tensor
            else:
                raise TypeError("only floating point tensors can require gradients")
        self.requires_grad = bool(requires_grad)
        return self

    def detach(self):
        """A new leaf sharing this tensor's data, cut from the graph."""
        out = Tensor._make(self.data, False, None)
        out._version = self._version
        return out

    def retain_grad(self):
        """Keep ``.grad`` for this non-leaf tensor after backward."""
        if not self.requires_grad:
            raise RuntimeError("can't retain_grad on Tensor that has requires_grad=False")
        if self.grad_fn is not None:
            self.grad_fn.retained = weakref.ref(self)

    def register_hook(self, hook):
        """Call ``hook(grad)`` when this tensor's gradient is computed; a non-None return replaces it."""
        if not self.requires_grad:
            raise RuntimeError("cannot register a hook on a tensor that doesn't require gradient")
        if self.grad_fn is None:
            self._hooks = (self._hooks or []) + [hook]
        else:
            self.grad_fn.hooks = (self.grad_fn.hooks or []) + [hook]
        return hook

    def backward(self, gradient=None, retain_graph=None, create_graph=False, inputs=None):
        """Accumulate d(self)/d(leaf) into every reachable leaf's ``.grad``.

        ``gradient`` is required unless self is a scalar; ``retain_graph`` keeps the
        saved values for another backward; ``create_graph`` records the backward
        pass so the gradients can be differentiated again.
        """
        from .autograd import backward
        backward([self], None if gradient is None else [gradient], retain_graph, create_graph, inputs)

    def numpy(self):
        """The data as an ndarray (refuses when it requires grad, as PyTorch does)."""
        if self.requires_grad:
            raise RuntimeError("Can't call numpy() on Tensor that requires grad. Use tensor.detach().numpy() instead.")
        return self.data

    def item(self):
        """The value of a one-element tensor as a Python number."""
        data = strip(self.data)
        if np.size(data) != 1:
            raise ValueError(f"a Tensor with {np.size(data)} elements cannot be converted to a Python scalar")
        return data.item()

    def __float__(self):
        return float(self.item())

    def __array__(self, dtype=None, copy=None):
        if self.requires_grad:
            raise RuntimeError("Can't convert a Tensor that requires grad to an ndarray (the gradient "
                               "would be lost). Use tensor.detach().numpy() instead.")
        return np.asarray(self.data, dtype=dtype)

    def __bool__(self):
        return bool(strip(self.data))

    __hash__ = object.__hash__

    # -- NumPy dispatch --
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        return array_ufunc(ufunc, method, inputs, kwargs, "reversead")

    def __array_function__(self, func, types, args, kwargs):
        return array_function(func, args, kwargs, "reversead")

    # -- fast paths for the common operators (skip NumPy's dispatch) --
    def __add__(self, other):
        return apply(_ADD, (self, other), {})

    def __radd__(self, other):
        return apply(_ADD, (other, self), {})

    def __sub__(self, other):
        return apply(_SUB, (self, other), {})

    def __rsub__(self, other):
        return apply(_SUB, (other, self), {})

    def __mul__(self, other):
        return apply(_MUL, (self, other), {})

    def __rmul__(self, other):
        return apply(_MUL, (other, self), {})

    def __truediv__(self, other):
        return apply(_DIV, (self, other), {})

    def __rtruediv__(self, other):
        return apply(_DIV, (other, self), {})

    def __neg__(self):
        return apply(_NEG, (self,), {})

    # -- in-place operations --
    def _inplace(self, result):
        if is_grad_enabled():
            if self.grad_fn is None and self.requires_grad:
                raise InplaceError("a leaf Variable that requires grad is being used in an in-place "
                                   "operation. Wrap it in `with reversead.no_grad():` (e.g. for an SGD "
                                   "step) or use an out-of-place op.")
            if self._base is not None and (self.requires_grad or getattr(result, "requires_grad", False)):
                raise InplaceError("in-place modification of a view of another tensor is not supported "
                                   "while recording (the base's graph would not see it); use an "
                                   "out-of-place op")
        if isinstance(result, Tensor):
            new_data, requires, grad_fn = result.data, result.requires_grad, result.grad_fn
        else:
            new_data, requires, grad_fn = result, False, None
        if isinstance(self.data, np.ndarray) and isinstance(new_data, np.ndarray) \
                and self.data.shape == np.shape(new_data) and self.data.flags.writeable:
            np.copyto(self.data, new_data, casting="same_kind")
        else:
            self.data = new_data if not isinstance(new_data, np.ndarray) else new_data.astype(
                self.data.dtype, copy=False) if isinstance(self.data, np.ndarray) else new_data
        self._version[0] += 1
        if is_grad_enabled() and requires:
            self.grad_fn, self.requires_grad = grad_fn, True
        return self

    def __iadd__(self, other):
        return self._inplace(apply(_ADD, (self, other), {}))

    def __isub__(self, other):
        return self._inplace(apply(_SUB, (self, other), {}))

    def __imul__(self, other):
        return self._inplace(apply(_MUL, (self, other), {}))

    def __itruediv__(self, other):
        return self._inplace(apply(_DIV, (self, other), {}))

    def __ipow__(self, other):
        return self._inplace(np.power(self, other))

    def __getitem__(self, index):
        return RULES["getitem"](self, index=check_index(index))

    def __setitem__(self, index, value):
        self._inplace(RULES["setitem"](self, value, index=check_index(index)))

    # -- ndarray-like methods --
    def sum(self, axis=None, keepdims=False):
        return np.sum(self, axis=axis, keepdims=keepdims)

    def mean(self, axis=None, keepdims=False):
        return np.mean(self, axis=axis, keepdims=keepdims)

    def prod(self, axis=None, keepdims=False):
        return np.prod(self, axis=axis, keepdims=keepdims)

    def max(self, axis=None, keepdims=False):
        return np.max(self, axis=axis, keepdims=keepdims)

    def min(self, axis=None, keepdims=False):
        return np.min(self, axis=axis, keepdims=keepdims)

    def var(self, axis=None, ddof=0, keepdims=False):
        return np.var(self, axis=axis, ddof=ddof, keepdims=keepdims)

    def std(self, axis=None, ddof=0, keepdims=False):
        return np.std(self, axis=axis, ddof=ddof, keepdims=keepdims)

    def reshape(self, *shape):
        return np.reshape(self, shape[0] if len(shape) == 1 else shape)

    def view(self, *shape):
        return self.reshape(*shape)

    def transpose(self, *axes):
        return np.transpose(self, axes[0] if len(axes) == 1 else (axes or None))

    def ravel(self):
        return np.ravel(self)

    def flatten(self):
        return np.ravel(self)

    def squeeze(self, axis=None):
        return np.squeeze(self, axis)

    def cumsum(self, axis=None):
        return np.cumsum(self, axis=axis)

    def dot(self, other):
        return np.dot(self, other)

    def clip(self, a_min=None, a_max=None):
        return np.clip(self, a_min, a_max)

    def exp(self):
        return np.exp(self)

    def log(self):
        return np.log(self)

    def tanh(self):
        return np.tanh(self)

    def sigmoid(self):
        return 1.0 / (1.0 + np.exp(-self))

    def relu(self):
        return np.maximum(self, 0.0)

    def abs(self):
        return np.absolute(self)

    def sqrt(self):
        return np.sqrt(self)

    def argmax(self, axis=None):
        return np.argmax(strip(self.data), axis=axis)

    def copy(self):
        return self * 1.0 if self.requires_grad else Tensor._make(np.copy(strip(self.data)) if isinstance(self.data, np.ndarray) else self.data, False, None)

    def zero_(self):
        with_grad = is_grad_enabled()
        if with_grad and self.requires_grad and self.grad_fn is None:
            raise InplaceError("a leaf Variable that requires grad is being used in an in-place operation (zero_)")
        self.data[...] = 0
        self._version[0] += 1
        return self


_ADD, _SUB, _MUL, _DIV, _NEG = (RULES[n] for n in ("add", "subtract", "multiply", "divide", "negative"))


def tensor(data, requires_grad: bool = False) -> Tensor:
    """Construct a Tensor (copies ``data``), as ``torch.tensor``.

    Examples
    --------
    >>> import reversead as rd
    >>> rd.tensor([1.0, 2.0], requires_grad=True).requires_grad
    True
    """
    return Tensor(data, requires_grad=requires_grad)
