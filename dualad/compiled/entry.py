"""Compiled dual versions of ``@numba.njit`` functions and the transforms that use them.

For each ``(f, argument kinds, k, outer k, float type)`` a small module is generated with one
``@njit(cache=True)`` function ``run(p, s, so)``: it builds the duals inside Numba from the
flat primal vector ``p`` (n,), the seed matrix ``s`` (k, n) and the outer tangents ``so``
(ko, n; only when the inputs are themselves duals of an enclosing dualad transform), calls
``f`` and returns ``(buf, code)``: every output scalar flattened to a row of ``buf``
(primal, then tangents), ``code`` telling scalar / tuple / array. No dual is ever boxed.

Inputs: floats (or 0-d arrays) and 1-D float arrays; ``f`` sees a 1-D array as a *tuple*
of duals (indexing, ``len``, iteration and unpacking work; item assignment, ``.shape`` and
NumPy array functions do not). Outputs: a float, a tuple of floats, or a 1-D float array
(an array output carries zero tangents: duals cannot be stored in NumPy arrays).

Caching. In-process: ``DualFunction._runs`` per signature, and one ``DualFunction`` per
``f`` (``dualad.jit(f) is dualad.jit(f)``). Across processes: the generated module is
written to the kernel cache directory (``dualad.kernels._cache_location``) under a name
that hashes the generated source, ``f``'s bytecode (and that of the jitted functions it
calls directly), this package's source and the rule table; Numba's ``cache=True`` then
stores the machine code next to it. As with Numba's own cache, a change in a function
that ``f`` reaches only indirectly is not seen: clear the cache directory.

Compile-time cost: the first call of a new signature compiles ``f`` on duals (about 1-3 s
for the Lorenz RK4 benchmark on an unloaded core, most of it Numba's typing of the
generated operators); a second process loads it from the cache in tens of milliseconds.
"""
from __future__ import annotations

import hashlib
import inspect
import math
import os
import sys
import threading
import weakref

import numpy as np

from .. import kernels
from ..errors import ADError, NonNumericError, PerturbationError, ShapeError
from ..rules.core import CONFIG

_lock = threading.RLock()
_functions: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_library_digest = None
#: default number of tangents per pass for gradient / jacobian (one compiled version per k)
DEFAULT_CHUNK = 8


class CompileError(ADError, TypeError):
    """Numba cannot compile ``f`` on dual numbers (an unsupported operation inside)."""


def is_dispatcher(f) -> bool:
    return "numba" in sys.modules and type(f).__module__.startswith("numba") and hasattr(f, "py_func")


def jit(f):
    """The compiled dual version of the ``@numba.njit`` function ``f`` (cached per ``f``).

    Call it as ``f_dual(*args, seeds=S)``: ``args`` are floats and 1-D float arrays, ``S``
    is a ``(k, n)`` seed matrix over the ``n`` input scalars (flattened in order). Returns
    ``(y, y_dot)``: ``f``'s output and its k directional derivatives ``J_f · S[j]``, each
    output leaf's tangent with a leading axis of length k.

    Examples
    --------
    >>> import numba, numpy as np, dualad
    >>> @numba.njit
    ... def f(x, y):
    ...     return x * y + np.sin(x)
    >>> y, y_dot = dualad.jit(f)(0.0, 2.0, seeds=np.eye(2))
    >>> y_dot
    array([3., 0.])
    """
    dual = _functions.get(f) if hasattr(f, "py_func") else None
    if dual is not None:
        return dual
    if isinstance(f, DualFunction):
        return f
    if not is_dispatcher(f):
        raise TypeError(f"dualad.jit needs a function decorated with @numba.njit, got {f!r}")
    with _lock:
        dual = _functions.get(f)
        if dual is None:
            dual = _functions[f] = DualFunction(f)
    return dual


class DualFunction:
    """``f`` compiled on dual numbers; see :func:`jit`."""

    def __init__(self, f):
        self.f = f
        self.__name__ = getattr(f, "__name__", "f")
        self.__doc__ = getattr(f, "__doc__", None)
        self._runs: dict = {}
        self._fast: dict = {}  # (n, k) -> run, for n float arguments
        self._templates: dict = {}  # argument kinds -> _Inputs to reuse
        self._fingerprint = None

    def __repr__(self):
        return f"<dualad.jit of {self.__name__}>"

    # -- the explicit entry point -------------------------------------------------------
    def __call__(self, *args, seeds, argnums=None):
        if argnums is None and type(seeds) is np.ndarray and seeds.dtype == np.float64 \
                and seeds.ndim == 2:
            fast = self._fast.get((len(args), seeds.shape[0]))
            if fast is not None and _all_floats(args) and seeds.shape[1] == len(args) \
                    and seeds.flags.c_contiguous and not CONFIG.nan_safe:
                buf, code = fast(np.array(args), seeds)
                if code == 0:  # the common case, kept short (per-call overhead)
                    return buf[0, 0], buf[0, 1:]
        inputs = self._inputs(args, argnums)
        buf, code = self._run(inputs, seeds if type(seeds) is np.ndarray else np.asarray(seeds))
        if inputs.ko == 0 and code != 2:  # plain floats out: no re-wrapping
            if code == 0:
                return buf[0, 0], buf[0, 1:]
            return tuple(buf[:, 0]), tuple(buf[:, 1:])
        k = np.shape(seeds)[0]
        out = _split_outputs(buf, code, k, inputs)
        primal = _structure(code, [leaf[0] for leaf in out])
        tangent = _structure(code, [leaf[1] for leaf in out])
        return primal, tangent

    def _inputs(self, args, argnums):
        """``_Inputs`` of ``args``; for float64 floats and 1-D arrays only ``p`` is rebuilt."""
        kinds = tuple(-1 if type(a) is float else a.shape[0]
                      if type(a) is np.ndarray and a.ndim == 1 and a.dtype == np.float64 else None
                      for a in args)
        key = (kinds, argnums if argnums is None or type(argnums) is tuple else tuple(argnums))
        template = self._templates.get(key) if None not in kinds else None
        if template is None:
            inputs = _Inputs(args, argnums)
            if None not in kinds and inputs.ko == 0:
                self._templates[key] = inputs
            return inputs
        inputs = object.__new__(_Inputs)
        for name in _Inputs.__slots__:
            setattr(inputs, name, getattr(template, name))
        inputs.p = np.concatenate([(a,) if kind < 0 else a for a, kind in zip(args, kinds)]) \
            if len(args) > 1 else np.array(args, dtype=np.float64).reshape(-1)
        return inputs

    def _run(self, inputs, seeds):
        n = inputs.n_active
        if seeds.ndim != 2 or seeds.shape[1] != n or seeds.shape[0] < 1:
            raise ShapeError(f"dualad.jit({self.__name__}): seeds must have shape (k, {n}) "
                             f"(k directions over the {n} differentiated input scalars), "
                             f"got {seeds.shape}")
        if CONFIG.nan_safe:
            raise ADError("dualad.jit does not implement nan_safe(); run the pure-Python path "
                          "(call f.py_func) inside nan_safe")
        if seeds.dtype != inputs.dtype or not seeds.flags.c_contiguous:
            seeds = np.ascontiguousarray(seeds, dtype=inputs.dtype)
        key = (inputs.spec, seeds.shape[0], inputs.ko, inputs.dtype.char)
        run = self._runs.get(key)
        if run is None:
            run = self._compile(key)
        return run(inputs.p, seeds, inputs.so) if inputs.ko else run(inputs.p, seeds)

    def _compile(self, key):
        with _lock:
            run = self._runs.get(key)
            if run is not None:
                return run
            from numba.core.errors import NumbaError
            spec, k, ko, char = key
            module = _load_module(self, spec, k, ko, np.dtype(char))
            run = module.run
            vec = _numba_array(char, 1)
            mat = _numba_array(char, 2)
            try:
                run.compile((vec, mat, mat) if ko else (vec, mat))
            except NumbaError as err:
                raise _compile_error(self.__name__, err) from err
            self._runs[key] = run
            if all(kind == (True, -1) for kind in spec) and ko == 0 and char == "d":
                self._fast[(len(spec), k)] = run
            return run

    def fingerprint(self) -> bytes:
        if self._fingerprint is None:
            self._fingerprint = _function_fingerprint(self.f)
        return self._fingerprint


def _numba_array(char, ndim):
    from numba import types
    return types.Array(types.float32 if char == "f" else types.float64, ndim, "C")


# -- inputs --------------------------------------------------------------------------------
class _Inputs:
    """Flattened primal inputs, their kinds, float type and (for nesting) outer tangents."""

    __slots__ = ("p", "so", "spec", "dtype", "n", "n_active", "ko", "tag", "shapes")

    def __init__(self, args, argnums=None):
        if not args:
            raise ValueError("no inputs to differentiate with respect to")
        if argnums is not None:
            argnums = {int(a) % len(args) for a in ((argnums,) if np.ndim(argnums) == 0 else argnums)}
        spec, values, outer, shapes = [], [], [], []
        dtype32 = True
        tag = None
        for i, a in enumerate(args):
            level = getattr(a, "_ad_level", None)
            if level is not None:
                if not getattr(a, "_ad_forward", False):
                    raise TypeError(f"dualad.jit: argument {i} is a {type(a).__name__} (reverse "
                                    "mode); compiled duals take floats, 1-D arrays or forward duals")
                if tag is not None and a.tag != tag:
                    raise PerturbationError(
                        "dualad.jit: inputs carry duals of two different outer differentiations; "
                        "compiled functions support one enclosing dualad transform")
                tag = a.tag
                primal = a.primal
                if getattr(primal, "_ad_level", None) is not None:
                    raise PerturbationError(
                        "dualad.jit: nesting deeper than one enclosing transform is not supported "
                        "for compiled functions (the input is a dual of a dual)")
                tangent = np.asarray(a.tangent)
                a = primal
            else:
                tangent = None
            arr = np.asarray(a)
            if arr.dtype.kind not in "biuf":
                raise NonNumericError(f"dualad.jit: argument {i} must be a float or a 1-D float "
                                      f"array, got {type(a).__name__}")
            if arr.ndim > 1:
                raise TypeError(f"dualad.jit: argument {i} has shape {arr.shape}; compiled duals "
                                "take floats and 1-D arrays (pass rows separately or flatten)")
            dtype32 = dtype32 and arr.dtype == np.float32
            size = -1 if arr.ndim == 0 else arr.shape[0]
            spec.append([argnums is None or i in argnums, size])
            shapes.append(arr.shape if arr.ndim else (None if not isinstance(a, np.ndarray) else ()))
            values.append(arr.reshape(-1))
            outer.append((tangent, arr.size))
        self.dtype = np.dtype(np.float32 if dtype32 else np.float64)
        self.p = np.concatenate(values).astype(self.dtype, copy=False) if len(values) > 1 \
            else values[0].astype(self.dtype)
        self.n = self.p.shape[0]
        if tag is not None:  # nested: every argument carries the outer perturbation
            for entry in spec:
                entry[0] = True
        self.spec = tuple(tuple(entry) for entry in spec)
        self.n_active = sum(max(size, 1) for active, size in self.spec if active)
        self.shapes = shapes
        self.tag = tag
        if tag is None:
            self.ko = 0
            self.so = np.zeros((0, self.n), self.dtype)
        else:
            ks = {np.size(t) // size if t is not None and t.ndim else 1
                  for t, size in outer if t is not None}
            ko = max(ks)
            blocks = []
            for t, size in outer:
                if t is None:
                    blocks.append(np.zeros((ko, size), self.dtype))
                else:
                    blocks.append(np.broadcast_to(np.asarray(t, self.dtype).reshape(-1, size), (ko, size)))
            self.ko = ko
            self.so = np.ascontiguousarray(np.concatenate(blocks, axis=1))


def _all_floats(args) -> bool:
    for a in args:
        if type(a) is not float:
            return False
    return True


# -- outputs -------------------------------------------------------------------------------
def _split_outputs(buf, code, k, inputs):
    """Per output scalar ``(primal, tangent (k,))``, re-wrapped as outer duals when nested."""
    m = buf.shape[0]
    ko = inputs.ko
    grid = buf.reshape(m, 1 + k, 1 + ko)
    if code == 2:  # one array output: arrays, not m scalars
        return [(_outer(grid[:, 0, :], inputs), _outer(np.moveaxis(grid[:, 1:, :], 0, 1), inputs))]
    return [(_outer(grid[i, 0, :], inputs, scalar=True), _outer(grid[i, 1:, :], inputs))
            for i in range(m)]


def _outer(values, inputs, scalar=False):
    """``values[..., 0]`` as a plain result, or a dual of the enclosing transform's tag."""
    if inputs.ko == 0:
        out = values[..., 0]
        return out[()] if scalar else out
    from ..array import DualArray
    from ..dual import Dual
    primal = values[..., 0]
    tangent = np.moveaxis(values[..., 1:], -1, 0)
    if scalar:
        return Dual._make(primal[()], tangent, inputs.tag)
    return DualArray._make(np.ascontiguousarray(primal), np.ascontiguousarray(tangent), inputs.tag)


def _structure(code, leaves):
    if code == 0 or code == 2:
        return leaves[0]
    return tuple(leaves)


# -- transforms ----------------------------------------------------------------------------
def _args(x):
    return (tuple(x), True) if isinstance(x, (tuple, list)) else ((x,), False)


def jvp(f, x, v):
    """``(f(x), J_f(x) · v)`` for an njit ``f``, compiled on duals with one tangent."""
    args, unpack = _args(x)
    inputs = _Inputs(args)
    vs = tuple(v) if unpack else (v,)
    if len(vs) != len(args):
        raise ShapeError(f"jvp: v must be a tuple/list of {len(args)} tangents matching x")
    blocks = []
    for i, (t, shape) in enumerate(zip(vs, inputs.shapes)):
        t = np.asarray(t, dtype=inputs.dtype)
        if t.shape != (shape or ()):
            raise ShapeError(f"jvp: tangent v[{i}] has shape {t.shape} but the input has shape "
                             f"{shape or ()}")
        blocks.append(t.reshape(-1))
    seeds = np.concatenate(blocks)[None]
    dual = jit(f)
    buf, code = dual._run(inputs, seeds)
    out = _split_outputs(buf, code, 1, inputs)
    primal = _structure(code, [o[0] for o in out])
    tangent = _structure(code, [_first(o[1]) for o in out])
    return primal, tangent


def _first(t):
    return t[0] if not hasattr(t, "_ad_level") else t[0]


def derivative(f, x):
    """``df/dx`` for an njit ``f`` of one scalar, with the output's structure."""
    dual = jit(f)
    if type(x) is float:  # the fast path
        value, tangent = dual(x, seeds=_ONE["d"])
        return tuple(t[0] for t in tangent) if type(tangent) is tuple else tangent[0]
    if isinstance(x, (tuple, list)) or np.ndim(getattr(x, "primal", x)) != 0:
        raise ShapeError(f"derivative needs a scalar input, got shape {np.shape(x)}; "
                         "use gradient (scalar output) or jacobian")
    inputs = _Inputs((x,))
    buf, code = dual._run(inputs, _ONE[inputs.dtype.char])
    out = _split_outputs(buf, code, 1, inputs)
    return _structure(code, [_first(o[1]) for o in out])


_ONE = {"d": np.ones((1, 1)), "f": np.ones((1, 1), np.float32)}


def _passes(f, x, chunk):
    """Run ceil(n / k) passes; returns (inputs, unpack, code, per-output tangents (n, ...))."""
    args, unpack = _args(x)
    inputs = _Inputs(args)
    n = inputs.n
    if chunk is None:
        k = min(n, DEFAULT_CHUNK)
    elif isinstance(chunk, bool) or not isinstance(chunk, (int, np.integer)) or chunk < 1:
        raise ValueError(f"chunk must be a positive integer or None, got {chunk!r}")
    else:
        k = min(int(chunk), n)
    dual = jit(f)
    columns, code = [], None
    for start in range(0, n, k):
        seeds = np.zeros((k, n), inputs.dtype)  # the last pass is padded: one compiled k
        rows = np.arange(start, min(start + k, n))
        seeds[rows - start, rows] = 1
        buf, code = dual._run(inputs, seeds)
        out = _split_outputs(buf, code, k, inputs)
        columns.append([o[1][:len(rows)] for o in out])
    per_output = [_concat([c[i] for c in columns]) for i in range(len(columns[0]))]
    return inputs, unpack, code, per_output


def _concat(parts):
    if len(parts) == 1:
        return parts[0]
    return np.concatenate(parts, axis=0)


def _blocks(t, inputs, unpack):
    """Tangent columns (n, *S_out) -> blocks S_out + x_i.shape per input."""
    moved = np.moveaxis(t, 0, -1) if np.ndim(t) > 1 else t
    out_shape = tuple(np.shape(t))[1:]
    blocks, offset = [], 0
    for shape in inputs.shapes:
        size = math.prod(shape or ())
        block = moved[..., offset:offset + size]
        blocks.append(np.reshape(block, out_shape + tuple(shape or ())))
        offset += size
    return tuple(blocks) if unpack else blocks[0]


def jacobian(f, x, chunk=None):
    """Jacobian of an njit ``f``: shape ``f(x).shape + x.shape`` (tuples follow x and f(x))."""
    inputs, unpack, code, per_output = _passes(f, x, chunk)
    return _structure(code, [_blocks(t, inputs, unpack) for t in per_output])


def gradient(f, x, chunk=None):
    """Gradient of a scalar njit ``f`` with ``x``'s shape."""
    inputs, unpack, code, per_output = _passes(f, x, chunk)
    if code != 0:
        raise ShapeError("gradient needs f to return a scalar, but f returned a "
                         f"{'tuple' if code == 1 else 'array'}; use jacobian for vector-valued functions")
    return _blocks(per_output[0], inputs, unpack)


# -- errors --------------------------------------------------------------------------------
def _compile_error(name, err):
    import re
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(err))  # Numba's terminal colours
    found = re.findall(r"No implementation of function (.*?) found for signature:\s*\n\s*>>> ([^\n]*)",
                       text)
    unknown = re.findall(r"Unknown attribute '(\w+)' of type ([^\n]*)", text)
    if found:
        function, signature = found[-1]
        match = re.search(r"<(?:built-in function|ufunc|function) '?(\w+)'?", function)
        op = match.group(1) if match else function
        what = f"unsupported operation {op!r} (called as {signature.strip()})"
    elif unknown:
        what = f"unsupported attribute {unknown[-1][0]!r} of {unknown[-1][1].strip()}"
    else:
        what = "an operation Numba cannot type on dual numbers"
    return CompileError(f"dualad.jit: Numba cannot compile {name!r} on dual numbers: {what}. "
                        "Duals support arithmetic, comparisons, math.* and np.* scalar functions "
                        "of the rule table (dualad/rules/elementwise.py); 1-D array inputs arrive "
                        f"as tuples of duals. Numba's reason:\n{text}")


# -- generated modules ---------------------------------------------------------------------
def _source(spec, k, ko, dtype, cache):
    lines = [
        "# dualad.compiled: dual version of a user function; generated, do not edit.",
        "from numba import njit",
        "from dualad.compiled.types import pack, cast_like, emit",
        "# _f (the user's njit function) is set by dualad before this module runs",
        "",
        "@njit",
        f"def _seed(v, s, {'so, ' if ko else ''}i, c):",
    ]
    if ko:
        outer = ", ".join(f"so[{j}, i]" for j in range(ko))
        inner = ", ".join(f"cast_like(s[{j}, c], o)" for j in range(k))
        lines += [f"    o = pack(v, v, ({outer},))", f"    return pack(o, o, ({inner},))"]
    else:
        inner = ", ".join(f"s[{j}, c]" for j in range(k))
        lines.append(f"    return pack(v, v, ({inner},))")
    lines += ["", f"@njit(cache={cache})", f"def run(p, s{', so' if ko else ''}):"]
    so = "so, " if ko else ""
    offset, column, names, like = 0, 0, [], None
    for i, (active, size) in enumerate(spec):
        if not active:  # a constant argument: plain float / float array
            lines.append(f"    a{i} = p[{offset}]" if size < 0 else f"    a{i} = p[{offset}:{offset + size}]")
        elif size < 0:
            lines.append(f"    a{i} = _seed(p[{offset}], s, {so}{offset}, {column})")
            like = like or f"a{i}"
        else:
            items = "".join(f"_seed(p[{offset + j}], s, {so}{offset + j}, {column + j}), "
                            for j in range(size))
            lines.append(f"    a{i} = ({items})")
            like = like or f"a{i}[0]"
        offset += max(size, 1)
        column += max(size, 1) if active else 0
        names.append(f"a{i}")
    lines.append(f"    return emit(_f({', '.join(names)}), {like})")
    return "\n".join(lines) + "\n"


def _load_module(dual, spec, k, ko, dtype):
    if any(size == 0 for _, size in spec):
        raise ShapeError("dualad.jit: empty array inputs are not supported")
    if not any(active for active, _ in spec):
        raise ValueError("dualad.jit: argnums selects no argument to differentiate")
    directory = kernels._cache_location()
    source = _source(spec, k, ko, dtype, cache=bool(directory))
    digest = hashlib.sha256(b"\0".join([source.encode(), dual.fingerprint(), _library()])).hexdigest()[:16]
    safe = "".join(c if c.isalnum() else "_" for c in dual.__name__)[:40]
    module_name = f"dualad_compiled_{safe}_{dtype.name}_k{k}_{digest}"
    module = sys.modules.get(module_name)
    if module is not None and getattr(module, "_f", None) is dual.f:
        return module
    module = kernels.import_generated(module_name, source, directory, preset={"_f": dual.f})
    return module


def _function_fingerprint(f, seen=None) -> bytes:
    """Bytes that change when ``f`` or an njit function it calls directly changes."""
    seen = set() if seen is None else seen
    func = f.py_func
    parts = [f"{func.__module__}.{func.__qualname__}".encode(), kernels._fingerprint(func),
             repr(sorted((str(key), repr(value)) for key, value in f.targetoptions.items())).encode()]
    try:
        parts.append(inspect.getsource(func).encode())
    except (OSError, TypeError):
        pass
    for name in sorted(kernels._global_names(func.__code__)):
        value = func.__globals__.get(name)
        if is_dispatcher(value) and id(value) not in seen:
            seen.add(id(value))
            parts.append(_function_fingerprint(value, seen))
    return hashlib.sha256(b"|".join(parts)).digest()


def _library() -> bytes:
    """Digest of this package's source, dualad's version and the rule table's partials."""
    global _library_digest
    if _library_digest is None:
        from ..rules import UFUNC_RULES
        here = os.path.dirname(__file__)
        parts = [getattr(sys.modules.get("dualad"), "__version__", "0").encode()]
        for name in sorted(os.listdir(here)):
            if name.endswith(".py"):
                with open(os.path.join(here, name), "rb") as handle:
                    parts.append(handle.read())
        for rule in UFUNC_RULES.values():
            for p in getattr(rule, "partials", ()):
                parts.append(kernels._fingerprint(p))
        _library_digest = hashlib.sha256(b"|".join(parts)).digest()
    return _library_digest
