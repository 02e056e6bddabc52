"""Differential fuzzing: forward and reverse mode check each other (and finite differences).

A `hypothesis <https://hypothesis.readthedocs.io>`_ strategy, :func:`programs`, draws random
*programs* from the primitive table (``dualad.rules``): DAGs of 1-30 primitives on 1-3
inputs of random, broadcasting shapes, with shared subexpressions (any earlier value may be
reused), basic and fancy indexing, reductions with axes, matmul and einsum, structural ops,
and every NumPy function of the table. A program is *plain NumPy source*; it is compiled
from that source, so what fails is exactly what is printed. :func:`check_program` then
checks, at the program's point ``x``:

1. ``dualad.jacobian == reversead.jacobian`` to rounding;
2. both equal central finite differences to their truncation error (tolerance below);
3. on the scalar reduction ``s(x) = Σ_k sum(W_k * f(x)[k])`` (random fixed weights ``W_k``):
   ``dualad.hessian == reversead.hessian`` to rounding, and both equal the central
   differences of the reverse-mode gradient.

:func:`check_float32` runs the same program at ``x`` rounded to float32: both modes'
Jacobians and Hessians must agree with each other to ``F32_RTOL`` and with the float64
ones at that point to ``F32_VS_F64_RTOL`` (float32's rounding through 30 ops), and be
float32 where plain NumPy keeps the program float32 (where a float64 constant promotes an
output: forward rows in the outputs' dtypes, reverse blocks in the inputs').

A failure raises :class:`FuzzFailure` whose message is a self-contained script (``def f(x0,
...)``, the point, the two calls) a user can paste; hypothesis shrinks the program first.

Which primitives are drawn -- all of them, from the registries
---------------------------------------------------------------
* every differentiable ufunc of ``UFUNC_RULES`` (``ufunc:<name>``), its arguments mapped into
  the rule's ``domain`` when they are not already inside it (see *Domains*);
* every ufunc of ``NONDIFF_UFUNCS`` (``nondiff:<name>``): the (boolean or piecewise-constant)
  result selects (``np.where``) or scales another value;
* every function of ``FUNCTION_IMPLS`` that has ``EXAMPLES`` (``func:<np path>``): an example
  ``rng -> (args, kwargs)`` is drawn and each float array argument is *replaced by a program
  value of the same shape* (an existing value reused, reshaped, broadcast or gathered with a
  fancy index); the other arguments (axes, orders, subscripts, boolean conditions) are kept;
* templates that draw random shapes and axes for the common structures: ``index:basic``,
  ``index:fancy``, ``index:mask``, ``reduce`` (sum, mean, max, min, prod, var, std, cumsum,
  cumprod of the table over random axes), ``matmul``, ``einsum``, ``reshape``, ``transpose``,
  ``concatenate``, ``stack``.

A primitive registered later (a new ``ufunc_rule`` with its ``domain``, or a
``register_function`` with ``examples=``) is picked up with no change here. Explicit
exceptions (:data:`EXCLUDED`, :data:`SPECIAL_INPUTS`):

* functions without ``EXAMPLES`` are the index/query functions (argmax, nonzero, shape ...):
  integer or boolean results, nothing to differentiate;
* ``np.linalg`` functions other than the norms and multi_dot get a well-conditioned first
  argument built in the program from a value ``B`` (so they are differentiated through ``B``):
  cholesky (which reads one triangle) the symmetric positive definite ``A = B Bᵀ / n + I``;
  eigh and eigvalsh ``diag(d) + 0.3 tanh(B) / n`` (eigenvalues 0.4 apart, whichever triangle
  is read); svd, svdvals, qr, pinv and lstsq ``eye(m, n) * [1..n] + 0.3 tanh(B) / max(m, n)``
  (full rank, singular values 0.4 apart); inv, det, slogdet, solve and matrix_power either
  ``B Bᵀ / n + I`` or the general ``A = P (I + 0.3 tanh(B) / n)``, whose
  ``‖0.3 tanh(B) / n‖ < 0.3`` keeps the condition number under 2 and whose optional row
  reversal ``P`` makes half of the determinants negative;
* functions that NumPy cannot name as ``np.<name>`` / ``np.linalg.<name>`` are excluded
  (a reproducer must be plain NumPy).

Domains and kinks
-----------------
An argument outside its rule's open ``domain`` interval ``(lo, hi)`` is mapped into it by a
node of the program itself: either the affine map ``t0 + a * (v - vmin)`` (constants chosen
from the current values, leaving 10 % of the interval free on each side) or the squashing
``lo + (hi - lo) * (0.05 + 0.9 * (0.5 + 0.5 * tanh(v)))``, both built from table primitives.
Near a kink finite differences are wrong, so a kinked primitive (abs, maximum ... remainder,
clip, max/min reductions, see :data:`KINK_MARGINS`) is only emitted when its inputs are at
least :data:`KINK_MARGIN` away from the kink; a piecewise-constant ufunc only where its result
is locally constant (``u(v ± KINK_MARGIN) == u(v)``, checked numerically, so any new one is
covered). Kinks the generator does not know about cannot make the finite-difference check fail
spuriously either: they inflate the Richardson error estimate below (the check gets weaker,
never wrong); the mode-versus-mode checks stay exact.

Tolerances
----------
Central differences with ``h_j = eps^(1/3) * max(1, |x_j|)`` (``eps`` of float64), as
``dualad.testing.numerical_jacobian``, and again with ``2 h_j``: ``D(h) = f' + h² f'''/6 +
O(h⁴)``, so ``|D(h) - D(2h)| / 3`` estimates the truncation error ``h² |f'''| / 6`` of ``D(h)``
without knowing ``f'''``. Entry ``(i, j)`` passes when::

    |J_ij - D(h)_ij| <= C * (|D(h)_ij - D(2h)_ij| / 3 + eps * S / h_j + |D(h)_ij - D(1.1h)_ij|)
                        + rtol * |J_ij| + atol

with ``C = 10``, ``S = 1 + max |value|`` over every value of the program (the rounding of
``f(x ± h)`` is at most a few ``eps * S``), ``rtol = 1e-6``, ``atol = 1e-8``. The last term
is the rounding noise as observed: a cancellation inside the program (``73 * (v - 5.00588)``)
amplifies rounding beyond ``eps * S``, and the steps h and 2h can agree by chance. The modes must
agree to rounding: ``|J_fwd - J_rev| <= 1e-9 * (|J| + max|J| + 1)``. Hessians: the same
with the gradient in the place of ``f``.

Running it
----------
``pytest tests/test_fuzz.py`` runs a bounded number of programs (``DUALAD_FUZZ_EXAMPLES``,
default 60) plus a few per primitive. Long run::

    DUALAD_FUZZ_RANDOM=1 DUALAD_FUZZ_EXAMPLES=5000 pytest tests/test_fuzz.py
    python -m dualad.fuzz --examples 5000 [--max-nodes 30] [--seed 1] [--only ufunc:sin] [--float32]
    python -m dualad.fuzz --list          # the fuzzed primitives and the exclusions

To fuzz your own primitive: register it (``dualad.rules``), import its module, then run
``python -m dualad.fuzz --import mymodule --only func:np.myfunc`` or, in a test,
``@given(programs(focus="func:np.myfunc")) def test(p): check_program(p)``.
"""
from __future__ import annotations

import argparse
import math
import re
import sys
import time
import traceback
from dataclasses import dataclass, field, replace
from typing import Any, Callable

import numpy as np

try:
    from hypothesis import strategies as st
except ImportError as _err:  # pragma: no cover - hypothesis is a test extra
    raise ImportError("dualad.fuzz needs hypothesis: pip install 'dualad[test]'") from _err

from .rules import core as _core
from .rules import scatter as _scatter

__all__ = ["Program", "FuzzFailure", "programs", "check_program", "check_float32",
           "fuzzable_primitives", "EXCLUDED", "SPECIAL_INPUTS", "KINK_MARGIN", "KINK_MARGINS", "main"]

#: smallest distance from a kink (abs at 0, ties of max, integers of floor ...) at emission
KINK_MARGIN = 1e-2
#: values larger than this are rejected (the op is skipped): keeps rounding noise bounded
MAX_ABS = 1e3
#: largest array a node may hold, and largest total input size
MAX_SIZE = 48
MAX_INPUT_SIZE = 24

#: explicit exclusions: op id -> reason (filled by ``fuzzable_primitives``)
EXCLUDED: dict[str, str] = {}
#: primitives that need constructed inputs: op id -> how they get them
SPECIAL_INPUTS: dict[str, str] = {}

_NAME = re.compile(r"\b[xv]\d+\b")


class FuzzFailure(AssertionError):
    """A program on which the modes disagree (with each other or with finite differences)."""


# -- literals: constants printed as plain NumPy source ---------------------------------
def _lit(obj) -> str:
    if isinstance(obj, np.ndarray):
        dtype = "" if obj.dtype == np.float64 else f", dtype=np.{obj.dtype.name}"
        return f"np.array({_lit(obj.tolist())}{dtype})"
    if isinstance(obj, (bool, np.bool_)):
        return repr(bool(obj))
    if isinstance(obj, (int, np.integer)):
        return repr(int(obj))
    if isinstance(obj, (float, np.floating)):
        x = float(obj)
        if math.isnan(x):
            return "np.nan"
        if math.isinf(x):
            return "np.inf" if x > 0 else "-np.inf"
        return repr(x)
    if isinstance(obj, list):
        return "[" + ", ".join(_lit(o) for o in obj) + "]"
    if isinstance(obj, tuple):
        return "(" + ", ".join(_lit(o) for o in obj) + ("," if len(obj) == 1 else "") + ")"
    if callable(obj) and getattr(np, getattr(obj, "__name__", ""), None) is obj:
        return f"np.{obj.__name__}"  # a NumPy function passed as an argument (apply_along_axis)
    if obj is None or isinstance(obj, str):
        return repr(obj)
    raise TypeError(f"cannot print {type(obj).__name__} as a literal")


def _short(x: float) -> str:
    return repr(float(f"{float(x):.6g}"))


def _numpy_path(func) -> str | None:
    name = getattr(func, "__name__", None)
    if name is None:
        return None
    if getattr(np, name, None) is func:
        return f"np.{name}"
    if getattr(np.linalg, name, None) is func:
        return f"np.linalg.{name}"
    return None


# -- the registries, as op ids ----------------------------------------------------------
_REDUCTION_NAMES = ("sum", "mean", "max", "amax", "min", "amin", "prod", "var", "std",
                    "cumsum", "cumprod")
_TEMPLATES = ("reduce", "matmul", "index:basic", "einsum", "reshape", "index:fancy", "transpose",
              "concatenate", "index:mask", "stack")


def fuzzable_primitives() -> list[str]:
    """Every op id the generator draws from, read from the registries now (plus templates).

    Fills :data:`EXCLUDED` and :data:`SPECIAL_INPUTS` as a side effect.
    """
    ids = []
    for ufunc, rule in _core.UFUNC_RULES.items():
        if ufunc is np.matmul:
            continue  # a contraction: the ``matmul`` template and its EXAMPLES
        if getattr(np, ufunc.__name__, None) is not ufunc:
            EXCLUDED[f"ufunc:{ufunc.__name__}"] = "not reachable as np.<name>"
            continue
        if not hasattr(rule, "domain"):
            EXCLUDED[f"ufunc:{ufunc.__name__}"] = "not an Elementwise rule (no domain)"
            continue
        ids.append(f"ufunc:{ufunc.__name__}")
    for ufunc in sorted(_core.NONDIFF_UFUNCS, key=lambda u: u.__name__):
        if getattr(np, ufunc.__name__, None) is ufunc:
            ids.append(f"nondiff:{ufunc.__name__}")
    for func in list(_core.FUNCTION_IMPLS) + [np.matmul]:
        path = _numpy_path(func)
        key = f"func:{path or getattr(func, '__name__', repr(func))}"
        if not _core.EXAMPLES.get(func):
            EXCLUDED[key] = ("no EXAMPLES: its values are unspecified" if func is np.empty_like else
                             "no EXAMPLES: writes in place and returns None (tests/test_assembly_scatter.py)"
                             if func in _scatter.IN_PLACE_FUNCTIONS else
                             "no EXAMPLES: an index/query function with integer or boolean results")
            continue
        if path is None:
            EXCLUDED[key] = "not reachable as np.<name> or np.linalg.<name>"
            continue
        if path.startswith("np.linalg.") and path not in _GENERIC_LINALG:
            SPECIAL_INPUTS[key] = "first argument " + _matrix_input(path)[1]
        ids.append(key)
    return ids + list(_TEMPLATES)


#: np.linalg functions whose arguments are drawn like any other function's (norms have no
#: matrix condition, multi_dot's first argument is a list)
_GENERIC_LINALG = ("np.linalg.norm", "np.linalg.matrix_norm", "np.linalg.vector_norm", "np.linalg.multi_dot",
                   # the Array-API contractions and selections: no matrix condition either
                   "np.linalg.matmul", "np.linalg.outer", "np.linalg.tensordot", "np.linalg.trace",
                   "np.linalg.diagonal", "np.linalg.cross", "np.linalg.vecdot", "np.linalg.matrix_transpose")
_SEPARATED_SYMMETRIC = ("separated_symmetric", "diag(d) + 0.3 tanh(B) / n, d = 1..n shifted (the "
                        "symmetric matrix read from either triangle has eigenvalues 0.4 apart or more)")
_FULL_RANK = ("full_rank", "eye(m, n) * [1..n] + 0.3 tanh(B) / max(m, n) (singular values within 0.3 of "
              "k..1: 0.4 apart or more, none below 0.7; for m < n the leading m x m block as well)")
#: np.linalg function -> (the _Builder method that makes its first argument, the description)
_MATRIX_INPUTS = {
    "np.linalg.cholesky": ("spd", "A = B Bᵀ / n + I (symmetric positive definite)"),
    "np.linalg.eigh": _SEPARATED_SYMMETRIC, "np.linalg.eigvalsh": _SEPARATED_SYMMETRIC,
    "np.linalg.svd": _FULL_RANK, "np.linalg.svdvals": _FULL_RANK, "np.linalg.qr": _FULL_RANK,
    "np.linalg.pinv": _FULL_RANK, "np.linalg.lstsq": _FULL_RANK, "np.linalg.cond": _FULL_RANK,
    # (Bauer-Fike: each eigenvalue of the non-symmetric matrix within 0.3 of its d_i, so real)
    "np.linalg.eig": ("separated_symmetric", "diag(d) + 0.3 tanh(B) / n (real eigenvalues 0.4 apart)"),
    "np.linalg.eigvals": ("separated_symmetric", "diag(d) + 0.3 tanh(B) / n (real eigenvalues 0.4 apart)"),
    "np.linalg.tensorinv": ("invertible_tensor", "an invertible N x N matrix (as for inv) reshaped"),
    "np.linalg.tensorsolve": ("invertible_tensor", "an invertible N x N matrix (as for inv) reshaped"),
}


def _matrix_input(path: str) -> tuple[str, str]:
    return _MATRIX_INPUTS.get(path, ("invertible", "B Bᵀ / n + I or P (I + 0.3 tanh(B) / n), P a row "
                                     "reversal or I (general, condition number < 2)"))


def _func_of(op: str):
    path = op.split(":", 1)[1]
    obj: Any = np
    for part in path.split(".")[1:]:
        obj = getattr(obj, part)
    return obj


# -- the program -------------------------------------------------------------------------
@dataclass
class Program:
    """A random NumPy program ``f(x0, x1, ...)`` and the point to differentiate it at."""

    inputs: list                      # the point: one float64 array per argument
    lines: list                       # (name, expression) in order
    outputs: list                     # names returned (a tuple when more than one)
    weights: list                     # one array per output: s(x) = Σ sum(W_k * out_k)
    ops: list = field(default_factory=list)  # op ids used (for coverage statistics)
    scale: float = 1.0                # largest |value| of the program (rounding noise)

    @property
    def args(self) -> str:
        return ", ".join(f"x{i}" for i in range(len(self.inputs)))

    def source(self) -> str:
        body = [f"    {name} = {expr}" for name, expr in self.lines]
        ret = self.outputs[0] if len(self.outputs) == 1 else ", ".join(self.outputs)
        return "\n".join([f"def f({self.args}):", *body, f"    return {ret}"])

    def scalar_source(self) -> str:
        outs = ("out",) if len(self.outputs) == 1 else tuple(f"out[{k}]" for k in range(len(self.outputs)))
        terms = " + ".join(f"np.sum({_lit(w)} * {o})" for w, o in zip(self.weights, outs))
        return f"def s({self.args}):\n    out = f({self.args})\n    return {terms}"

    def point_source(self) -> str:
        return "x = (" + "".join(f"{_lit(np.asarray(v))}, " for v in self.inputs) + ")"

    def reproducer(self) -> str:
        return "\n".join([
            "import numpy as np", "import dualad, reversead", "from dualad.testing import numerical_jacobian",
            "", self.source(), "", self.scalar_source(), "", self.point_source(),
            "J_fwd, J_rev = dualad.jacobian(f, x), reversead.jacobian(f, x)",
            "J_fd = numerical_jacobian(f, x)",
            "H_fwd, H_rev = dualad.hessian(s, x), reversead.hessian(s, x)"])

    def __repr__(self) -> str:
        return f"Program(\n{self.source()}\n{self.point_source()}\n)"

    def _compile(self, name: str, src: str, env: dict | None = None) -> Callable:
        namespace: dict = {"np": np} if env is None else env
        exec(compile(src, f"<fuzz program {name}>", "exec"), namespace)
        return namespace[name]

    def function(self) -> Callable:
        return self._compile("f", self.source())

    def scalar_function(self) -> Callable:
        env: dict = {"np": np}
        self._compile("f", self.source(), env)
        return self._compile("s", self.scalar_source(), env)

    @property
    def point(self) -> tuple:
        return tuple(np.array(v) for v in self.inputs)


# -- the generator -----------------------------------------------------------------------
class _Reject(Exception):
    """This op does not fit here (kink, size, magnitude): skip it."""


def _broadcastable(*shapes) -> tuple | None:
    try:
        return tuple(np.broadcast_shapes(*shapes))
    except ValueError:
        return None


class _Builder:
    def __init__(self, draw, inputs):
        self.draw = draw
        self.inputs = inputs
        self.names = [f"x{i}" for i in range(len(inputs))]
        self.env: dict = {"np": np}
        self.env.update({n: v for n, v in zip(self.names, inputs)})
        self.lines: list = []
        self.ops: list = []
        self.count = 0
        self.scale = max((float(np.max(np.abs(v), initial=0.0)) for v in inputs), default=1.0)

    # drawing helpers ---------------------------------------------------------------
    def integer(self, lo, hi):
        return self.draw(st.integers(lo, hi))

    def choice(self, options):
        options = list(options)
        return options[self.draw(st.integers(0, len(options) - 1))]

    def boolean(self):
        return self.draw(st.booleans())

    def value(self, name):
        return self.env[name]

    def pick(self, pred=None) -> str:
        """An existing value (most recent first, so shrinking prefers the latest one)."""
        cands = [n for n in reversed(self.names) if pred is None or pred(np.asarray(self.env[n]))]
        if not cands:
            raise _Reject("no value fits")
        return self.choice(cands)

    # emission -----------------------------------------------------------------------
    def evaluate(self, expr):
        with np.errstate(all="ignore"):
            try:
                return eval(expr, self.env)  # noqa: S307 - our own generated source
            except (ValueError, IndexError, TypeError, ZeroDivisionError,  # (average's weights)
                    np.linalg.LinAlgError) as err:
                raise _Reject(f"{expr}: {err}") from err

    def emit(self, expr: str, op: str | None = None) -> str:
        val = self.evaluate(expr)
        if isinstance(val, (tuple, list)):
            k = self.integer(0, len(val) - 1)
            expr, val = f"{expr}[{k}]", val[k]
        arr = np.asarray(val)
        if arr.dtype.kind != "f" or arr.size == 0 or arr.size > MAX_SIZE or arr.ndim > 4:
            raise _Reject(f"{expr}: dtype {arr.dtype}, shape {arr.shape}")
        if not np.all(np.isfinite(arr)) or np.max(np.abs(arr), initial=0.0) > MAX_ABS:
            raise _Reject(f"{expr}: values too large")
        name = f"v{self.count}"
        self.count += 1
        self.env[name] = val
        self.lines.append((name, expr))
        self.names.append(name)
        if op is not None:
            self.ops.append(op)
        self.scale = max(self.scale, float(np.max(np.abs(arr), initial=0.0)))
        return name

    def transaction(self, step, *args):
        """Run a step; on rejection roll back the lines it emitted."""
        saved = (len(self.lines), len(self.names), len(self.ops), self.count, self.scale)
        try:
            step(*args)
            return True
        except _Reject:
            n_lines, n_names, n_ops, self.count, self.scale = saved
            for name, _ in self.lines[n_lines:]:
                self.env.pop(name, None)
            del self.lines[n_lines:], self.names[n_names:], self.ops[n_ops:]
            return False

    # domains and adapters -------------------------------------------------------------
    def into(self, name: str, domain) -> str:
        """``name`` if its values lie inside the open ``domain``, else a node mapping it there."""
        lo, hi = (float(d) for d in domain)
        v = np.asarray(self.env[name])
        width = hi - lo
        if np.all(v > lo + 0.01 * width) and np.all(v < hi - 0.01 * width):
            return name
        if self.boolean():
            t0, t1 = lo + 0.1 * width, hi - 0.1 * width
            vmin, vmax = float(np.min(v)), float(np.max(v))
            if vmax - vmin > 1e-3:
                a = (t1 - t0) / (vmax - vmin)
                expr = f"{_short(t0)} + {_short(a)} * ({name} - {_short(vmin)})"
            else:
                expr = f"{name} + {_short(0.5 * (lo + hi) - vmin)}"
            new = self.emit(expr)
            w = np.asarray(self.env[new])
            if np.all(w > lo + 0.05 * width) and np.all(w < hi - 0.05 * width):
                return new
            self.drop_last()
        return self.emit(f"{_short(lo + 0.05 * width)} + {_short(0.9 * width)} * "
                         f"(0.5 + 0.5 * np.tanh({name}))")

    def drop_last(self):
        name, _ = self.lines.pop()
        self.names.remove(name)
        self.env.pop(name)

    def adapt(self, name: str, shape: tuple) -> str:
        """A value of exactly ``shape`` made from ``name`` (reshape, broadcast or fancy gather)."""
        shape = tuple(int(n) for n in shape)
        v = np.asarray(self.env[name])
        size = math.prod(shape)
        if v.shape == shape:
            return name
        how = self.integer(0, 2)
        if how == 0 and v.size == size:
            return self.emit(f"np.reshape({name}, {_lit(shape)})")
        if how == 1 and _broadcastable(v.shape, shape) == shape:
            return self.emit(f"np.broadcast_to({name}, {_lit(shape)})")
        idx = np.array([self.integer(0, v.size - 1) for _ in range(size)], dtype=np.int64)
        flat = f"np.ravel({name})" if v.ndim != 1 else name
        if shape == ():
            return self.emit(f"{flat}[{int(idx[0])}]")
        return self.emit(f"np.reshape({flat}[{_lit(idx)}], {_lit(shape)})")

    def operand(self, shape: tuple) -> str:
        return self.adapt(self.pick(), shape)

    def spd(self, shape: tuple) -> str:
        """A symmetric positive definite stack ``B Bᵀ / n + I`` of ``shape`` (..., n, n)."""
        b = self.operand(shape)
        n = shape[-1]
        return self.emit(f"np.matmul({b}, np.swapaxes({b}, -1, -2)) / {float(n)!r} + np.eye({n})")

    def invertible(self, shape: tuple) -> str:
        """A well-conditioned stack of ``shape`` (..., n, n): SPD, or general with either sign of det."""
        kind = self.integer(0, 2)
        if kind == 0:
            return self.spd(shape)
        b = self.operand(shape)
        n = shape[-1]
        a = f"np.eye({n}) + 0.3 * np.tanh({b}) / {float(n)!r}"
        if kind == 1 or n == 1:
            return self.emit(a)
        return self.emit(f"np.matmul(np.eye({n})[::-1], {a})")

    def invertible_tensor(self, shape: tuple) -> str:
        """An ``invertible`` N x N matrix reshaped to ``shape`` (N² elements): tensorinv's and
        tensorsolve's square reshape of it is that matrix."""
        n = math.isqrt(math.prod(shape))
        return self.emit(f"np.reshape({self.invertible((n, n))}, {_lit(shape)})")

    def separated_symmetric(self, shape: tuple) -> str:
        """A stack of ``shape`` (..., n, n) whose symmetric matrix read from either triangle has
        eigenvalues 0.4 apart or more: ``diag(d) + 0.3 tanh(B) / n``, d = 1..n, maybe shifted to
        straddle 0 (the triangle's symmetric matrix has norm <= 0.3, so by Weyl each eigenvalue
        stays within 0.3 of its d_i)."""
        b = self.operand(shape)
        n = shape[-1]
        shift = self.choice([0.0, (n + 1) / 2])
        d = [float(i + 1) - shift for i in range(n)]
        # (in b's dtype: a float64 constant would make every float32 program float64)
        return self.emit(f"np.diag(np.array({_lit(d)}, dtype={b}.dtype)) + {0.3 / n!r} * np.tanh({b})")

    def full_rank(self, shape: tuple) -> str:
        """A stack of ``shape`` (..., m, n) with singular values 0.4 apart or more and none below
        0.7 (also its leading m x m block where m < n): ``eye(m, n) * [1..n] + 0.3 tanh(B) / max(m, n)``,
        whose perturbation has norm <= 0.3 (Weyl's bound for singular values)."""
        b = self.operand(shape)
        m, n = shape[-2:]
        d = [float(i + 1) for i in range(n)]
        return self.emit(f"np.eye({m}, {n}, dtype={b}.dtype) * np.array({_lit(d)}, dtype={b}.dtype) + "
                         f"{0.3 / max(m, n)!r} * np.tanh({b})")

    def partner(self, shape: tuple, domain=None) -> str:
        """A second operand broadcasting against ``shape``: a value or a scalar constant."""
        if self.integer(0, 3) == 0:
            lo, hi = domain if domain is not None else (-2.0, 2.0)
            w = hi - lo
            return repr(round(lo + 0.1 * w + 0.8 * w * self.draw(st.floats(0, 1)), 3))
        fits = lambda v: (b := _broadcastable(v.shape, shape)) is not None and math.prod(b) <= MAX_SIZE
        name = self.pick(fits)
        return self.into(name, domain) if domain is not None else name

    # steps ----------------------------------------------------------------------------
    def step(self, op: str):
        kind = op.split(":", 1)[0]
        if kind == "ufunc":
            self.ufunc_step(op)
        elif kind == "nondiff":
            self.nondiff_step(op)
        elif kind == "func":
            self.func_step(op)
        else:
            getattr(self, "t_" + op.replace(":", "_"))(op)

    def ufunc_step(self, op):
        ufunc = getattr(np, op.split(":", 1)[1])
        rule = _core.UFUNC_RULES[ufunc]
        domain = tuple(rule.domain)
        args = [self.into(self.pick(), domain[0])]
        for i in range(1, rule.nin):
            args.append(self.partner(np.shape(self.env[args[0]]), domain[i]))
        values = [self.evaluate(a) for a in args]
        margin = KINK_MARGINS.get(op)
        if margin is not None and margin(*values) < KINK_MARGIN:
            raise _Reject(f"{op} too close to its kink")
        binop = _OPERATORS.get(ufunc.__name__)
        if binop is not None and self.integer(0, 2) == 0:
            expr = binop.format(*args)
        else:
            expr = f"np.{ufunc.__name__}({', '.join(args)})"
        self.emit(expr, op)

    def nondiff_step(self, op):
        ufunc = getattr(np, op.split(":", 1)[1])
        w = self.pick()
        wv = np.asarray(self.env[w])
        const = None
        if ufunc.nin == 2:
            const = round(self.draw(st.floats(-1.5, 1.5)), 2)
            if ufunc is np.floor_divide and abs(const) < 0.3:
                const = 0.7
        call = (lambda x: ufunc(x)) if const is None else (lambda x: ufunc(x, const))
        with np.errstate(all="ignore"):
            try:
                mid, up, down = call(wv), call(wv + KINK_MARGIN), call(wv - KINK_MARGIN)
            except TypeError as err:
                raise _Reject(str(err)) from err
        if not (np.array_equal(mid, up, equal_nan=True) and np.array_equal(mid, down, equal_nan=True)):
            raise _Reject(f"{op} not locally constant")
        inner = f"np.{ufunc.__name__}({w})" if const is None else f"np.{ufunc.__name__}({w}, {const!r})"
        other = self.partner(wv.shape)
        if np.asarray(mid).dtype == bool:
            third = self.partner(wv.shape)
            self.emit(f"np.where({inner}, {other}, {third})", op)
        else:
            self.emit(f"np.multiply({other}, {inner})", op)

    def func_step(self, op):
        func = _func_of(op)
        example = self.choice(_core.EXAMPLES[func])
        rng = np.random.default_rng(self.integer(0, 2**16))
        args, kwargs = example(rng)
        special = getattr(self, _matrix_input(op.split(":", 1)[1])[0]) if op in SPECIAL_INPUTS else None

        def subst(obj, first=False):
            if isinstance(obj, np.ndarray) and obj.dtype.kind == "f":
                if first and special is not None:
                    return special(obj.shape)
                return self.operand(obj.shape)
            if isinstance(obj, list) and obj and all(isinstance(o, np.ndarray) for o in obj):
                # after the first, an element may stay the example's own array: a join with a
                # (float64) constant, which promotes a float32 program (see check_float32)
                return "[" + ", ".join(subst(o) if i == 0 or self.integer(0, 3) else _lit(o)
                                       for i, o in enumerate(obj)) + "]"
            return _lit(obj)

        pos = [subst(a, first=(i == 0)) for i, a in enumerate(args)]
        srcs = pos + [f"{k}={_lit(v)}" for k, v in kwargs.items()]
        expr = f"{op.split(':', 1)[1]}({', '.join(srcs)})"
        margin = KINK_MARGINS.get(op)
        if margin is not None and margin([self.evaluate(a) for a in pos], kwargs) < KINK_MARGIN:
            raise _Reject(f"{op} too close to its kink")
        self.emit(expr, op)

    # templates --------------------------------------------------------------------
    def t_index_basic(self, op):
        a = self.pick(lambda v: v.ndim >= 1)
        shape = np.shape(self.env[a])
        items, axis = [], 0
        ellipsis = False
        while axis < len(shape) and self.integer(0, 3) > 0:
            kind = self.integer(0, 4)
            n = shape[axis]
            if kind == 0:
                items.append(str(self.integer(-n, n - 1)))
                axis += 1
            elif kind in (1, 2):
                step = self.choice([None, 1, 2, -1, -2])
                start = self.choice([None, self.integer(-n, n - 1)])
                stop = self.choice([None, self.integer(-n - 1, n)])
                items.append(":".join("" if s is None else str(s) for s in (start, stop, step)))
                axis += 1
            elif kind == 3:
                items.append("None")
            elif not ellipsis:
                ellipsis = True
                items.append("...")
                axis = len(shape)  # the rest is taken by the ellipsis
        if not items:
            items.append(str(self.integer(-shape[0], shape[0] - 1)))
        self.emit(f"{a}[{', '.join(items)}]", op)

    def t_index_fancy(self, op):
        a = self.pick(lambda v: v.ndim >= 1)
        shape = np.shape(self.env[a])
        axis = self.integer(0, len(shape) - 1)
        n = shape[axis]
        idx = np.array([self.integer(-n, n - 1) for _ in range(self.integer(1, 5))], dtype=np.int64)
        if self.boolean() and len(idx) >= 2:
            idx = idx.reshape(2, -1) if len(idx) % 2 == 0 else idx
        items = [":"] * axis + [_lit(idx)]
        if axis + 1 < len(shape) and self.boolean():  # a second index array (broadcast together)
            m = shape[axis + 1]
            items.append(_lit(np.array([self.integer(-m, m - 1)], dtype=np.int64)))
        self.emit(f"{a}[{', '.join(items)}]", op)

    def t_index_mask(self, op):
        a = self.pick(lambda v: v.ndim >= 1)
        v = np.asarray(self.env[a])
        lead = self.integer(1, v.ndim)
        mask = np.array([self.boolean() for _ in range(math.prod(v.shape[:lead]))]).reshape(v.shape[:lead])
        if not mask.any():
            mask.flat[self.integer(0, mask.size - 1)] = True
        self.emit(f"{a}[{_lit(mask)}]", op)

    def t_reduce(self, op):
        funcs = [f for f in _core.FUNCTION_IMPLS if getattr(f, "__name__", "") in _REDUCTION_NAMES
                 and getattr(np, f.__name__, None) is f]
        func = self.choice(sorted(funcs, key=lambda f: f.__name__))
        name = func.__name__
        a = self.pick()
        v = np.asarray(self.env[a])
        kw = []
        axes = None
        if v.ndim and self.integer(0, 3) > 0:
            if name.startswith("cum") or v.ndim == 1 or self.boolean():
                axes = self.integer(-v.ndim, v.ndim - 1)
            else:
                axes = tuple(sorted(set(self.integer(0, v.ndim - 1) for _ in range(2))))
            kw.append(f"axis={_lit(axes)}")
        if not name.startswith("cum") and self.boolean():
            kw.append("keepdims=True")
        if name in ("var", "std") and self.boolean():
            kw.append("ddof=1")
        if name in ("max", "amax", "min", "amin"):
            if _extremum_gap(v, axes) < KINK_MARGIN:
                raise _Reject("tie in max/min")
        if name == "std" and _min_spread(v, axes) < 0.05:
            raise _Reject("std near zero (kink of sqrt)")
        self.emit(f"np.{name}({', '.join([a] + kw)})", f"{op}:{name}")

    def t_matmul(self, op):
        a = self.pick(lambda v: v.ndim >= 1)
        sa = np.shape(self.env[a])
        k = self.integer(1, 4)
        if self.boolean() or len(sa) == 1:  # a @ b
            n = sa[-1]
            shape = self.choice([(n,), (n, k)] + ([sa[:-2] + (n, k)] if len(sa) > 2 else [(2, n, k)]))
            b = self.operand(shape)
            left, right = a, b
        else:  # b @ a
            n = sa[-2]
            shape = self.choice([(n,), (k, n)])
            left, right = self.operand(shape), a
        expr = f"{left} @ {right}" if self.integer(0, 2) == 0 else f"np.matmul({left}, {right})"
        self.emit(expr, op)

    def t_einsum(self, op):
        a = self.pick(lambda v: 1 <= v.ndim <= 3)
        sa = np.shape(self.env[a])
        letters = "ijk"[:len(sa)]
        sizes = dict(zip(letters, sa))
        if self.boolean():  # two operands: share some letters, add new ones
            shared = [c for c in letters if self.boolean()] or [letters[-1]]
            new = "pq"[:self.integer(0, 2)]
            for c in new:
                sizes[c] = self.integer(1, 3)
            b_letters = "".join(self.draw(st.permutations(shared + list(new))))
            b = self.operand(tuple(sizes[c] for c in b_letters))
            terms = f"{letters},{b_letters}"
            operands = f"{a}, {b}"
        else:
            terms, operands = letters, a
        pool = sorted(set(terms.replace(",", "")))
        out = "".join(c for c in self.draw(st.permutations(pool)) if self.boolean())
        self.emit(f"np.einsum({terms + '->' + out!r}, {operands})", op)

    def t_reshape(self, op):
        a = self.pick()
        size = int(np.size(self.env[a]))
        divisors = [d for d in range(1, size + 1) if size % d == 0]
        d = self.choice(divisors)
        shape = self.choice([(size,), (d, size // d), (d, -1), (1, size, 1), (size // d, 1, d)])
        self.emit(f"np.reshape({a}, {_lit(shape)})", op)

    def t_transpose(self, op):
        a = self.pick(lambda v: v.ndim >= 2)
        perm = list(self.draw(st.permutations(list(range(np.ndim(self.env[a]))))))
        expr = f"np.transpose({a}, {_lit(perm)})" if self.boolean() else f"{a}.T"
        self.emit(expr, op)

    def t_concatenate(self, op):
        a = self.pick(lambda v: v.ndim >= 1)
        sa = np.shape(self.env[a])
        axis = self.integer(-len(sa), len(sa) - 1)
        shape = list(sa)
        shape[axis] = self.integer(1, 3)
        b = self.operand(tuple(shape))
        order = [a, b] if self.boolean() else [b, a]
        self.emit(f"np.concatenate([{', '.join(order)}], axis={axis})", op)

    def t_stack(self, op):
        a = self.pick()
        sa = np.shape(self.env[a])
        b = self.operand(sa)
        axis = self.integer(-len(sa) - 1, len(sa))
        self.emit(f"np.stack([{a}, {b}], axis={axis})", op)


_OPERATORS = {"add": "{0} + {1}", "subtract": "{0} - {1}", "multiply": "{0} * {1}",
              "divide": "{0} / {1}", "power": "{0} ** {1}", "negative": "-{0}",
              "absolute": "abs({0})"}


def _extremum_gap(v, axis) -> float:
    """Smallest gap between the largest two (and smallest two) entries of each reduced slice."""
    v = np.asarray(v, dtype=np.float64)
    if v.ndim == 0:
        return math.inf
    axes = tuple(range(v.ndim)) if axis is None else (axis if isinstance(axis, tuple) else (axis,))
    axes = tuple(a % v.ndim for a in axes)
    rest = [a for a in range(v.ndim) if a not in axes]
    m = np.transpose(v, rest + list(axes)).reshape(math.prod(v.shape[a] for a in rest), -1)
    if m.shape[1] < 2:
        return math.inf
    s = np.sort(m, axis=1)
    return float(min(np.min(s[:, -1] - s[:, -2]), np.min(s[:, 1] - s[:, 0])))


def _min_spread(v, axis, where=True) -> float:
    v = np.asarray(v, dtype=np.float64)
    return float(np.min(np.std(v, axis=axis, where=where))) if v.ndim else 0.0


def _pairwise_gap(x, y) -> float:
    return float(np.min(np.abs(np.asarray(x) - np.asarray(y)), initial=math.inf))


def _remainder_gap(x, y) -> float:
    q = np.asarray(x) / np.asarray(y)
    return float(np.min(np.abs(q - np.round(q)) * np.abs(y), initial=math.inf))


def _clip_gap(values, kwargs) -> float:
    x = values[0]
    return min([_pairwise_gap(x, b) for b in values[1:3] if b is not None], default=math.inf)


def _func_extremum_gap(values, kwargs) -> float:
    v, axis = np.asarray(values[0], dtype=np.float64), kwargs.get("axis")
    if "initial" not in kwargs:
        return _extremum_gap(v, axis)
    # `initial` takes part as one more entry; entries that where= masks out do not
    axes = tuple(range(v.ndim)) if axis is None else tuple(np.atleast_1d(axis) % max(v.ndim, 1))
    rest = [d for d in range(v.ndim) if d not in axes]

    def rows(a):
        return np.transpose(a, rest + list(axes)).reshape(math.prod(v.shape[d] for d in rest), -1)
    m, keep = rows(v), rows(np.broadcast_to(kwargs.get("where", True), v.shape))
    init = np.full((m.shape[0], 1), float(kwargs["initial"]))
    top = np.sort(np.concatenate([np.where(keep, m, -np.inf), init], axis=1), axis=1)
    bottom = np.sort(np.concatenate([np.where(keep, m, np.inf), init], axis=1), axis=1)
    return float(min(np.min(top[:, -1] - top[:, -2]), np.min(bottom[:, 1] - bottom[:, 0])))


def _interp_gap(values, kwargs) -> float:
    """Distance of x from the knots of np.interp (measured around the circle with period=)."""
    x, xp = np.asarray(values[0], dtype=np.float64).reshape(-1, 1), np.asarray(values[1], dtype=np.float64)
    d = np.abs(x - xp)
    period = kwargs.get("period")
    if period is not None:
        d = np.mod(d, abs(period))
        d = np.minimum(d, abs(period) - d)
    return float(np.min(d, initial=math.inf))


def _binade_gap(values, kwargs) -> float:
    """Distance from the powers of two (and 0), where np.frexp's mantissa jumps."""
    x = np.abs(np.asarray(values[0], dtype=np.float64))
    below = np.exp2(np.floor(np.log2(np.where(x > 0, x, 1.0))))
    return float(np.min(np.where(x > 0, np.minimum(x - below, 2 * below - x), 0.0), initial=math.inf))


def _order_gap(default_axis):
    """Smallest gap between neighbours in sorted order along the axes (sort and median have a
    kink where two entries swap places)."""
    def gap(values, kwargs) -> float:
        v = np.asarray(values[0], dtype=np.float64)
        axis = kwargs.get("axis", default_axis)
        if v.ndim == 0:
            return math.inf
        axes = tuple(range(v.ndim)) if axis is None else tuple(np.atleast_1d(axis) % v.ndim)
        v = np.moveaxis(v, axes, tuple(range(-len(axes), 0)))
        v = np.sort(v.reshape(v.shape[:v.ndim - len(axes)] + (-1,)), axis=-1)
        return float(np.min(np.diff(v, axis=-1), initial=math.inf))
    return gap


def _round_gap(values, kwargs) -> float:
    """Distance from the points where np.round jumps (halfway between multiples of 10^-decimals)."""
    scale = 10.0 ** kwargs.get("decimals", values[1] if len(values) > 1 else 0)
    q = np.asarray(values[0], dtype=np.float64) * scale
    return float(np.min(np.abs(np.abs(q - np.floor(q)) - 0.5), initial=math.inf)) / scale


def _norm_gap(x, ord, axis) -> float:
    """Distance from a kink of a norm: zero entries; for matrix orders 2, -2 and 'nuc' (singular
    values) the smallest gap between two singular values and the smallest one (the ties of max/min
    and abs' kink at 0 are among them; second derivatives go through the singular vectors, which
    need every pair apart and, for non-square matrices, none at 0)."""
    x = np.asarray(x, dtype=np.float64)
    matrix = (isinstance(axis, tuple) and len(axis) == 2) or (axis is None and x.ndim == 2)
    if not (matrix and isinstance(ord, (int, float, str)) and ord in (2, -2, "nuc")):
        return float(np.min(np.abs(x), initial=math.inf))
    s = np.linalg.svd(np.moveaxis(x, (-2, -1) if axis is None else axis, (-2, -1)), compute_uv=False)
    gaps = -np.diff(s, axis=-1)
    return float(min(np.min(gaps, initial=math.inf), np.min(s, initial=math.inf)))


def _reflector_gap(triangle):
    """Distance from the inputs where LAPACK's signs jump, for a factorisation: a Householder
    reflection is skipped (tau = 0) where the part of a column (row) it would zero is exactly 0
    already (a diagonal or triangular A), which leaves the signs of columns of Q, U, V or of
    eigenvectors opposite to those at every nearby matrix. ``triangle``: 'both' for svd and qr
    (norms of each column below and each row beyond the diagonal), 'uplo' for eigh (the triangle
    it reads). Values only (compute_uv=False) have no signs."""
    def gap(values, kwargs) -> float:
        if kwargs.get("compute_uv", values[2] if len(values) > 2 else True) is False and triangle == "both":
            return math.inf
        a = np.asarray(values[0], dtype=np.float64)
        m, n = a.shape[-2:]
        lower, upper = triangle == "both", triangle == "both"
        if triangle == "uplo":
            uplo = str(kwargs.get("UPLO", values[1] if len(values) > 1 else "L")).upper()
            lower, upper = uplo == "L", uplo == "U"
        norms = [np.linalg.norm(a[..., j + 1:, j], axis=-1) for j in range(min(m - 1, n)) if lower]
        norms += [np.linalg.norm(a[..., j, j + 1:], axis=-1) for j in range(min(m, n - 1)) if upper]
        return float(min((np.min(v) for v in norms), default=math.inf))
    return gap


def _eig_gap(values, kwargs) -> float:
    """Distance from the inputs where LAPACK's eig (dgeev) jumps: balancing isolates a row or
    column whose off-diagonal entries are exactly 0 (reordering the eigenvalues), and the
    Hessenberg reduction skips a reflector where a column is 0 below its subdiagonal (flipping
    eigenvector signs), as ``_reflector_gap``."""
    a = np.asarray(values[0], dtype=np.float64)
    n = a.shape[-1]
    if n < 2:
        return math.inf
    off = a * (1.0 - np.eye(n))
    norms = [np.linalg.norm(off, axis=-1), np.linalg.norm(off, axis=-2)]
    norms += [np.linalg.norm(a[..., j + 2:, j], axis=-1) for j in range(n - 2)]
    return float(min(np.min(v) for v in norms))


#: op id -> distance of the arguments from the op's kink (must exceed KINK_MARGIN)
KINK_MARGINS: dict[str, Callable] = {
    "ufunc:absolute": lambda x: float(np.min(np.abs(x))),
    "ufunc:fabs": lambda x: float(np.min(np.abs(x))),
    "ufunc:maximum": _pairwise_gap, "ufunc:minimum": _pairwise_gap,
    "ufunc:fmax": _pairwise_gap, "ufunc:fmin": _pairwise_gap,
    "ufunc:remainder": _remainder_gap, "ufunc:fmod": _remainder_gap,
    "ufunc:hypot": lambda x, y: float(np.min(np.abs(x) + np.abs(y))),
    "ufunc:copysign": lambda x, y: float(min(np.min(np.abs(x)), np.min(np.abs(y)))),
    "ufunc:heaviside": lambda x1, x2: float(np.min(np.abs(x1))),
    "func:np.clip": _clip_gap,
    "func:np.std": lambda values, kwargs: _min_spread(values[0], kwargs.get("axis"),
                                                      kwargs.get("where", True)),
    "func:np.nanstd": lambda values, kwargs: _min_spread(values[0], kwargs.get("axis")),
    "func:np.nanmax": _func_extremum_gap, "func:np.nanmin": _func_extremum_gap,
    "func:np.nanmedian": _order_gap(None),
    "func:np.interp": _interp_gap,
    "func:np.modf": lambda values, kwargs: float(np.min(np.abs(values[0] - np.round(values[0])))),
    "func:np.frexp": _binade_gap,
    "func:np.divmod": lambda values, kwargs: _remainder_gap(values[0], values[1]),
    "func:np.linalg.norm": lambda values, kwargs: _norm_gap(
        values[0], kwargs.get("ord", values[1] if len(values) > 1 else None),
        kwargs.get("axis", values[2] if len(values) > 2 else None)),
    "func:np.linalg.matrix_norm": lambda values, kwargs: _norm_gap(values[0], kwargs.get("ord", "fro"),
                                                                   (-2, -1)),
    "func:np.linalg.vector_norm": lambda values, kwargs: float(np.min(np.abs(values[0]))),
    "func:np.linalg.eigh": _reflector_gap("uplo"), "func:np.linalg.svd": _reflector_gap("both"),
    "func:np.linalg.qr": _reflector_gap("both"),
    "func:np.linalg.eig": _eig_gap, "func:np.linalg.eigvals": _eig_gap,
    "func:np.max": _func_extremum_gap, "func:np.amax": _func_extremum_gap,
    "func:np.min": _func_extremum_gap, "func:np.amin": _func_extremum_gap,
    "func:np.ptp": _func_extremum_gap,
    "func:np.sort": _order_gap(-1), "func:np.median": _order_gap(None),
    "func:np.partition": _order_gap(-1),
    "func:np.quantile": _order_gap(None), "func:np.percentile": _order_gap(None),
    "func:np.nanquantile": _order_gap(None), "func:np.nanpercentile": _order_gap(None),
    # polyfit: repeated x make the Vandermonde matrix rank-deficient (lstsq's second derivatives raise)
    "func:np.polyfit": _order_gap(None),
    "func:np.round": _round_gap, "func:np.around": _round_gap,
}


#: relative frequency of each kind of op (templates: indexing, reduce, matmul, einsum, reshape ...)
_KIND_WEIGHTS = {"template": 4, "func": 3, "ufunc": 3, "nondiff": 1}


def _fallback(b: _Builder):
    b.emit(f"np.tanh({b.names[-1]})", "ufunc:tanh")


@st.composite
def programs(draw, max_nodes: int = 30, min_nodes: int = 1, focus: str | None = None,
             ops: list[str] | None = None):
    """Strategy: a random :class:`Program` of ``min_nodes..max_nodes`` primitives.

    ``ops``: the op ids to draw from (default :func:`fuzzable_primitives`); ``focus``: an op
    id that must occur at least once (the program is rejected if it cannot be placed).
    """
    pool = list(ops) if ops is not None else fuzzable_primitives()
    # draw a kind first (so the 46 ufuncs do not crowd out indexing, matmul, reductions ...)
    kinds: dict = {}
    for op in pool:
        kinds.setdefault(op.split(":", 1)[0] if op.split(":", 1)[0] in ("ufunc", "nondiff", "func")
                         else "template", []).append(op)
    groups = [kinds[k] for k, weight in _KIND_WEIGHTS.items() if k in kinds for _ in range(weight)]
    # inputs: shapes that broadcast against a common base shape
    base = list(draw(st.lists(st.integers(1, 4), min_size=0, max_size=3)))
    while math.prod(base) > MAX_INPUT_SIZE // 2:
        base[base.index(max(base))] -= 1
    base = tuple(base)
    n_in = draw(st.integers(1, 3))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    inputs = []
    for _ in range(n_in):
        k = draw(st.integers(0, len(base)))
        shape = tuple(n if draw(st.integers(0, 3)) else 1 for n in base[len(base) - k:])
        inputs.append(np.round(rng.uniform(-2.0, 2.0, shape), 3))
    while len(inputs) > 1 and sum(v.size for v in inputs) > MAX_INPUT_SIZE:
        inputs.pop()
    b = _Builder(draw, inputs)
    n_ops = draw(st.integers(min_nodes, max_nodes))
    focus_at = draw(st.integers(0, n_ops - 1)) if focus is not None else -1
    for i in range(n_ops):
        if i == focus_at:
            for _ in range(6):
                if b.transaction(b.step, focus):
                    break
            else:
                from hypothesis import assume
                assume(False)
            continue
        group = draw(st.sampled_from(groups))
        op = draw(st.sampled_from(group))
        b.transaction(b.step, op)
    if not b.lines:
        _fallback(b)
    used = set()
    for _, expr in b.lines:
        used.update(_NAME.findall(expr))
    outputs = [n for n, _ in b.lines if n not in used]
    if len(outputs) > 3:
        outputs = outputs[-3:]
    weights = [np.round(rng.uniform(-1.0, 1.0, np.shape(b.env[n])), 2) for n in outputs]
    return Program(inputs=inputs, lines=b.lines, outputs=outputs, weights=weights,
                   ops=b.ops, scale=b.scale)


# -- the checks --------------------------------------------------------------------------
EPS = float(np.finfo(np.float64).eps)
C_TRUNC = 10.0
RTOL, ATOL = 1e-6, 1e-8
MODE_RTOL = 1e-9
#: float32 derivatives: forward against reverse (bound as ``MODE_RTOL``'s), and either
#: against the float64 ones at the same point: only a check for gross float32-only errors,
#: since a saturated tanh's 1 - tanh² is 0 or one float32 ulp and a Hessian may multiply that
#: by the square of a large inner derivative (random runs: 0.0066 against 0.00046, and 2.17
#: against 2.23 on a scale of 5). Formulas are checked in float64, against differences.
F32_RTOL = 1e-3
F32_VS_F64_RTOL = 0.1
#: ... compared only where every value of the program is that close in float32 and float64
#: (about 800 float32 roundings; further off, a cancellation amplifies rounding)
F32_ACCURATE = 1e-4


def _flat(f, x):
    from .testing import _Flat
    return _Flat(f, x)


def _fd_two_steps(g: Callable[[np.ndarray], np.ndarray], z0: np.ndarray):
    """Central differences of ``g`` (flat -> flat) with steps ``h`` and ``2h``; ``h``; and
    ``|D(h) - D(1.1 h)|``, the rounding noise as observed (the truncation errors of two so
    close steps nearly cancel, the rounding errors do not)."""
    base = EPS ** (1.0 / 3.0)
    h = base * np.maximum(1.0, np.abs(z0))
    cols_h, cols_2h, cols_near = [], [], []
    for j in range(z0.size):
        for step, cols in ((h[j], cols_h), (2.0 * h[j], cols_2h), (1.1 * h[j], cols_near)):
            zp, zm = z0.copy(), z0.copy()
            zp[j] += step
            zm[j] -= step
            cols.append((g(zp) - g(zm)) / (zp[j] - zm[j]))
    d1 = np.stack(cols_h, axis=1)
    return d1, np.stack(cols_2h, axis=1), h, np.abs(d1 - np.stack(cols_near, axis=1))


def _compare_modes(what, a, b, program, rtol=MODE_RTOL, names=("forward", "reverse")):
    bound = rtol * (np.abs(a) + np.max(np.abs(a), initial=0.0) + 1.0)
    bad = ~(np.abs(a - b) <= bound)
    if bad.any():
        i = np.unravel_index(np.argmax(np.where(bad, np.abs(a - b), -1)), a.shape)
        raise FuzzFailure(f"{what}: {names[0]} {a[i]!r} != {names[1]} {b[i]!r} at flat entry "
                          f"{tuple(map(int, i))} (|difference| {abs(a[i] - b[i]):.3g} > {bound[i]:.3g}; "
                          f"max |difference| {np.nanmax(np.abs(a - b)):.3g})" + _tail(program))


def _compare_fd(what, ad, d1, d2, h, spread, noise_scale, program):
    trunc = np.abs(d1 - d2) / 3.0
    rounding = EPS * noise_scale / h[None, :]
    bound = C_TRUNC * (trunc + rounding + spread) + RTOL * np.abs(ad) + ATOL
    bad = ~(np.abs(ad - d1) <= bound)
    if bad.any():
        i = np.unravel_index(np.argmax(np.where(bad, np.abs(ad - d1) / bound, -1)), ad.shape)
        raise FuzzFailure(f"{what}: AD {ad[i]!r} but central differences {d1[i]!r} (2h: {d2[i]!r}) at "
                          f"flat entry {tuple(map(int, i))} (|difference| {abs(ad[i] - d1[i]):.3g} > "
                          f"tolerance {bound[i]:.3g})" + _tail(program))


def _tail(program):
    return "" if program is None else "\n\nReproducer (plain NumPy):\n\n" + program.reproducer()


def _run(what, fn, program):
    try:
        return fn()
    except FuzzFailure:
        raise
    except Exception as err:  # an AD mode fails where plain NumPy works: a disagreement too
        raise FuzzFailure(f"{what} raised {type(err).__name__}: {err}\n"
                          f"{''.join(traceback.format_exception(err)[-3:])}" + _tail(program)) from err


def check_program(program: Program, hessian: bool = True) -> dict:
    """Check one program (see the module docstring); raise :class:`FuzzFailure` on a disagreement.

    Returns a few statistics (sizes, largest errors) for reporting.
    """
    import reversead
    import dualad

    f = program.function()
    x = program.point
    flat = _flat(f, x)
    if not np.all(np.isfinite(flat.y0)):
        raise ValueError("the program is not finite at its point (a generator bug)")
    jf = flat.matrix(_run("dualad.jacobian", lambda: dualad.jacobian(f, x), program))
    jr = flat.matrix(_run("reversead.jacobian", lambda: reversead.jacobian(f, x), program))
    _compare_modes("jacobian", jf, jr, program)
    d1, d2, h, spread = _fd_two_steps(lambda z: flat(z, np.float64), flat.z0)
    noise = 1.0 + max(program.scale, float(np.max(np.abs(flat.y0), initial=0.0)))
    _compare_fd("dualad.jacobian vs finite differences", jf, d1, d2, h, spread, noise, program)
    _compare_fd("reversead.jacobian vs finite differences", jr, d1, d2, h, spread, noise, program)
    stats = {"n_in": flat.n, "n_out": flat.m, "jac_err": float(np.max(np.abs(jf - d1), initial=0.0))}
    if not hessian:
        return stats
    from .testing import _hessian_matrix
    s = program.scalar_function()
    sflat = _flat(s, x)
    hf = _hessian_matrix(sflat, _run("dualad.hessian", lambda: dualad.hessian(s, x), program))
    hr = _hessian_matrix(sflat, _run("reversead.hessian", lambda: reversead.hessian(s, x), program))
    _compare_modes("hessian", hf, hr, program)

    def grad(z):
        g = reversead.gradient(s, tuple(sflat.unpack_z(z, np.float64)))
        return np.concatenate([np.ravel(np.asarray(gi, dtype=np.float64)) for gi in g])
    g0 = grad(sflat.z0)
    d1, d2, h, spread = _fd_two_steps(grad, sflat.z0)
    noise = 1.0 + max(program.scale, float(np.max(np.abs(g0), initial=0.0)))
    _compare_fd("dualad.hessian vs finite differences of the gradient", hf, d1, d2, h, spread, noise,
                program)
    _compare_fd("reversead.hessian vs finite differences of the gradient", hr, d1, d2, h, spread, noise,
                program)
    stats["hess_err"] = float(np.max(np.abs(hf - d1), initial=0.0))
    return stats


def _dtypes(tree) -> set:
    if isinstance(tree, (tuple, list)):
        return set().union(*(_dtypes(t) for t in tree)) if tree else set()
    return {np.asarray(tree).dtype}


def check_float32(program: Program, hessian: bool = True) -> dict:
    """Check ``program`` at its point rounded to float32; raise :class:`FuzzFailure` on a
    disagreement.

    Both modes' float32 Jacobians must agree with each other to ``F32_RTOL`` and with the
    float64 Jacobian at the same point to ``F32_VS_F64_RTOL``, with these dtypes: where
    plain NumPy keeps every output float32, float32 throughout (the API's "float32 stays float32 end to end"); where a float64 constant
    made NumPy promote an output, forward mode's rows follow the outputs' dtypes (a
    tangent has its primal's dtype) and reverse mode's blocks the inputs' float32 (a
    gradient has its input's dtype, as in PyTorch), as jacfwd's and jacrev's do in JAX.
    The Hessians of the scalar reduction are checked the same way when it is float32.
    The values are compared only where float32 evaluates every value of the program to
    ``F32_ACCURATE`` of its float64 one (a cancellation such as ``prod(v) - 106.983``
    amplifies float32's rounding in values and derivatives alike); the dtypes always.
    Returns ``{"float32": whether NumPy kept the program float32, "hessian": checked,
    "values": compared}``.
    """
    import reversead
    import dualad

    # the reduction's weights in float32 too (printed as float64 arrays they would promote
    # it); failures print this program
    program = replace(program, weights=[np.asarray(w, np.float32) if np.ndim(w) else w
                                        for w in program.weights])
    f = program.function()
    x32 = tuple(v.astype(np.float32) for v in program.point)
    x64 = tuple(v.astype(np.float64) for v in x32)
    with np.errstate(all="ignore"):
        y = f(*x32)
    outputs = [np.asarray(v).dtype for v in (y if isinstance(y, tuple) else (y,))]
    # values are compared only where float32 computes the program itself accurately: a
    # cancellation (``prod(v) - 106.983``) amplifies float32's rounding in the derivatives
    # just as in the values, and is no disagreement of the modes
    compare = _float32_deviation(program, x32, x64) <= F32_ACCURATE
    checks = [("jacobian", f, dualad.jacobian, reversead.jacobian, outputs)]
    if hessian:
        s = program.scalar_function()
        scalar = np.asarray(s(*x32)).dtype
        if scalar == np.float32:
            checks.append(("hessian", s, dualad.hessian, reversead.hessian, [scalar]))
    try:
        _check_float32(program, checks, x32, x64, compare)
    except FuzzFailure as err:  # the reproducer above differentiates at the float64 point
        raise FuzzFailure(f"{err}\n# this check ran in float32, at:\n"
                          "x = tuple(np.asarray(v, dtype=np.float32) for v in x)") from None
    return {"float32": set(outputs) == {np.dtype(np.float32)}, "hessian": len(checks) == 2,
            "values": compare}


def _check_float32(program, checks, x32, x64, compare):
    for what, fn, forward, reverse, out_dtypes in checks:
        flat = _flat(fn, x64)
        if what == "jacobian":
            matrix = flat.matrix
        else:
            from .testing import _hessian_matrix
            matrix = lambda h: _hessian_matrix(flat, h)  # noqa: E731
        reference = matrix(forward(fn, x64))
        results = []
        for name, mode in (("dualad", forward), ("reversead", reverse)):
            result = _run(f"{name}.{what} in float32", lambda: mode(fn, x32), program)
            rows = result if len(out_dtypes) > 1 else (result,)
            for k, (row, out_dtype) in enumerate(zip(rows, out_dtypes)):
                want = out_dtype if name == "dualad" else np.dtype(np.float32)
                if _dtypes(row) != {want}:
                    raise FuzzFailure(
                        f"{name}.{what} of a float32 program: the derivatives of output {k} (plain "
                        f"NumPy's dtype {out_dtype}) have dtypes {sorted(d.name for d in _dtypes(row))}, "
                        f"expected {want}" + _tail(program))
            results.append(matrix(result))
            if compare:
                _compare_modes(f"{name}.{what} in float32 vs float64", results[-1], reference,
                               program, rtol=F32_VS_F64_RTOL, names=("float32", "float64"))
        if compare:
            _compare_modes(f"{what} in float32", *results, program, rtol=F32_RTOL)


def _float32_deviation(program: Program, x32: tuple, x64: tuple) -> float:
    """The largest relative difference, over every value of the program, between its float32
    and float64 evaluations at the same point."""
    env32 = {"np": np, **{f"x{i}": v for i, v in enumerate(x32)}}
    env64 = {"np": np, **{f"x{i}": v for i, v in enumerate(x64)}}
    worst = 0.0
    with np.errstate(all="ignore"):
        for name, expr in program.lines:
            env32[name] = eval(expr, env32)  # noqa: S307 - the program's own generated source
            env64[name] = eval(expr, env64)  # noqa: S307
            a = np.asarray(env32[name], dtype=np.float64)
            b = np.asarray(env64[name], dtype=np.float64)
            scale = float(np.max(np.abs(b), initial=0.0))
            if scale > 0:
                worst = max(worst, float(np.max(np.abs(a - b), initial=0.0)) / scale)
            elif np.any(a != 0):
                return np.inf
    return worst


# -- long-run mode ----------------------------------------------------------------------
def run(examples: int = 1000, max_nodes: int = 30, seed: int | None = None, only: str | None = None,
        hessian: bool = True, verbose: bool = True, float32: bool = False) -> dict:
    """Fuzz ``examples`` programs with hypothesis (shrinking failures); return statistics.

    ``float32``: also :func:`check_float32` each program."""
    from hypothesis import HealthCheck, given, note, settings
    from hypothesis import seed as hyp_seed

    counts: dict = {"programs": 0, "ops": {}}
    strategy = programs(max_nodes=max_nodes, focus=only) if only else programs(max_nodes=max_nodes)

    @settings(max_examples=examples, deadline=None, database=None, print_blob=True,
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def fuzz(program):
        note(program.reproducer())
        check_program(program, hessian=hessian)
        if float32:
            counts["float32"] = counts.get("float32", 0) + check_float32(program, hessian)["float32"]
        counts["programs"] += 1
        for op in program.ops:
            counts["ops"][op] = counts["ops"].get(op, 0) + 1

    if seed is not None:
        fuzz = hyp_seed(seed)(fuzz)
    start = time.perf_counter()
    try:
        fuzz()
    except BaseException:
        if verbose:
            print(f"FAILED: {counts['programs']} programs passed (while searching and shrinking) in "
                  f"{time.perf_counter() - start:.1f} s; the shrunk reproducer is above", file=sys.stderr)
        raise
    counts["seconds"] = time.perf_counter() - start
    if verbose:
        print(f"{counts['programs']} programs checked in {counts['seconds']:.1f} s, "
              f"{len(counts['ops'])} distinct ops, no disagreement")
    return counts


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dualad.fuzz", description=__doc__.split("\n")[0])
    parser.add_argument("--examples", type=int, default=1000, help="programs to try (default 1000)")
    parser.add_argument("--max-nodes", type=int, default=30, help="primitives per program (default 30)")
    parser.add_argument("--seed", type=int, default=None, help="hypothesis seed (default random)")
    parser.add_argument("--only", default=None, help="an op id every program must use (see --list)")
    parser.add_argument("--no-hessian", action="store_true", help="skip the second-order checks")
    parser.add_argument("--float32", action="store_true",
                        help="also check each program in float32 (dtypes kept, values as float64's)")
    parser.add_argument("--import", dest="modules", action="append", default=[],
                        help="import a module first (one that registers your primitives)")
    parser.add_argument("--list", action="store_true", help="list fuzzed ops and exclusions, then exit")
    args = parser.parse_args(argv)
    import importlib
    for module in args.modules:
        importlib.import_module(module)
    if args.list:
        for op in fuzzable_primitives():
            note = f"  ({SPECIAL_INPUTS[op]})" if op in SPECIAL_INPUTS else ""
            print(op + note)
        for op, why in sorted(EXCLUDED.items()):
            print(f"excluded {op}: {why}")
        return 0
    counts = run(args.examples, args.max_nodes, args.seed, args.only, not args.no_hessian,
                 float32=args.float32)
    if args.float32:
        print(f"{counts.get('float32', 0)} of them float32 in plain NumPy, checked in float32 too")
    for op, n in sorted(counts["ops"].items()):
        print(f"  {op:32s} {n}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
