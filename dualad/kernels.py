"""Hot loops shared by both modes: Numba kernels generated from the rule table, with a NumPy path.

Backend
    ``DUALAD_BACKEND=numpy`` (read at import; tests flip the module variable ``BACKEND``)
    selects the pure-NumPy path: :func:`elementwise_jvp` / :func:`elementwise_vjp` return
    None, so the caller runs the rule's generic NumPy JVP/VJP, and :func:`scatter_add`
    uses ``np.bincount``. The default ``numba`` compiles lazily on first use: importing
    dualad imports no Numba.

Elementwise kernels (issue 2, section 6)
    For an :class:`~dualad.rules.core.Elementwise` rule the kernel is *generated* from its
    table entry: each partial (a lambda written with ``np.*`` functions of ``(*xs, ans)``)
    is compiled by Numba on scalars, and a generated loop evaluates every partial once per
    element and applies it to all k tangent rows in the same pass:
    ``out_dot[j] = sum_i partial_i * x_dot_i[j]``. No derivative is written here by hand.

    The primal is computed in the same loop only where a partial evaluates a NumPy
    function of the inputs (sin's cos: LLVM merges them into one ``sincos``, 21 ms against
    13 + 19 ms for NumPy's sin plus a cos pass on 10**6 float64); elsewhere it comes from
    the NumPy ufunc (``ans = rule.primal(*xs)``, bitwise NumPy's value) and the kernel
    reads ``x``, ``ans`` and the tangents once. Measured on the 2-core AVX2 test machines:
    NumPy's SIMD tanh takes 14 ms, Numba's scalar libm tanh 26 ms; float32 sin/cos/exp/log
    /tanh are 2-7x faster in NumPy, so float32 never fuses (see ``_fuse_primal``).
    Scalar operands in ``_LITERALS`` (``x**2``) are compiled in as constants.

    Reverse mode's ``out_bar * partial`` has its own one-pass loop per operand
    (:func:`elementwise_vjp`), used where the partial is arithmetic worth fusing.

    Tangents stay in DualArray's ``(k, *S)`` layout. The loop runs over blocks of
    ``BLOCK`` elements: partials of a block go to a small scratch buffer (L1), then each
    tangent row of the block is a contiguous, vectorised multiply-add. Measured against
    an element-outer loop (k streams at stride n) and against an ``(*S, k)`` layout, on
    10**6 elements: k = 1: 1.7 / 2.4 / 1.7 ms; k = 8: 8.7 / 12.4 / 12.3 ms;
    k = 32: 37 / 64-140 / 25-48 ms (noisy VM) — blocking keeps ``(k, *S)`` competitive.

Reverse-mode loops
    Hand-written loops with no derivative content, for what NumPy does badly: scatter-add
    (the transpose of fancy indexing), the VJP of max/min over short rows, and the sums
    that undo broadcasting (:func:`sum_kept`) where NumPy would run its inner loop once per
    short row; the same sums serve ``np.sum(x, axis=...)`` in both modes (:func:`add_reduce`:
    its primal, and forward mode's tangents). The last two give bitwise the numbers of
    their NumPy paths. A Numba call costs 10-15 us more than a NumPy call when the caches
    are cold (as between a network's large products), so the thresholds that decide are
    set from cold measurements.

Caching
    Numba cannot cache closures or dispatchers passed as arguments across processes, so
    for each (rule, dtype) a small Python module is written to the cache directory and
    imported; it holds the jitted partials as module globals and the kernels with
    ``cache=True``. The file name carries a hash of the generated source, of the
    partials' code (bytecode, constants, helpers) and of the dualad version, so a changed
    rule never loads a stale kernel. Cache directory: ``$NUMBA_CACHE_DIR`` if set, else
    ``~/.cache/dualad``, else a temporary directory; without a writable one the same
    source is exec'd with ``cache=False``.
"""
from __future__ import annotations

import dis
import hashlib
import importlib.util
import os
import sys
import tempfile
import threading
import types

import numpy as np

BACKEND = os.environ.get("DUALAD_BACKEND", "numba").lower()
#: elements per block of the elementwise kernels (partials of a block stay in L1)
BLOCK = 256
#: scalar operands compiled in as constants (``x**2``: LLVM folds ``pow(x, 1.0)`` to ``x``,
#: where a runtime exponent costs a libm ``pow`` per element, 14 ms on 10**6)
_LITERALS = (-1.0, -0.5, 0.5, 2.0, 3.0)
_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

_lock = threading.RLock()
_modules: dict = {}        # (rule name, dtype name) -> generated module
_failed: dict = {}         # (rule name, dtype name) -> exception that stopped compilation
_out_dtype_ok: dict = {}   # (rule, dtype char) -> ufunc keeps the dtype
_dispatch: dict = {}       # (rule, dtype char, variant) -> (dispatcher or None, fused)
_cache_dir = None          # resolved lazily; False = no writable location
_numba = None              # the numba module once imported


# -- gather / scatter-add (fancy-index JVP and its transpose) ------------------------
def gather(flat, index):
    """``flat[..., index]`` along the last axis (``flat`` is (B, N), ``index`` ints).

    ``np.take`` is already one tight C loop with nothing to fuse, so both backends use it
    (no Numba gather was written; scatter-add is where NumPy is slow).
    """
    return np.take(flat, index, axis=-1)


def scatter_add(values, index, size: int):
    """Transpose of ``gather``: a (B, size) array with ``values[..., j]`` added at ``index[j]``.

    ``index`` holds valid positions ``0 <= index[j] < size`` (callers drop the -1 padding)
    and may repeat; repeated positions accumulate.
    """
    batch = values.shape[:-1]
    index = np.asarray(index)
    if BACKEND == "numba" and values.dtype in _FLOAT_DTYPES and index.size:
        flat_values = np.ascontiguousarray(values).reshape(-1, values.shape[-1])
        out = np.zeros((flat_values.shape[0], size), dtype=values.dtype)
        _utility("scatter_add")(flat_values, np.ascontiguousarray(index, dtype=np.intp), out)
        return out.reshape(batch + (size,))
    out = np.zeros(batch + (size,), dtype=values.dtype)
    if index.size == 0:
        return out
    flat_values = values.reshape(-1, values.shape[-1])
    flat_out = out.reshape(-1, size)
    for row in range(flat_values.shape[0]):
        flat_out[row] = np.bincount(index, weights=flat_values[row], minlength=size)
    return out


# -- the VJP of max/min over short trailing axes ------------------------------------------
#: rows of at most this many elements take the loops below; longer ones NumPy's SIMD reduce
SHORT_ROW = 256


def _trailing_rows(x, axes):
    """``(rows, n)`` where ``x`` (C-contiguous, float) reduces over its last axes by short
    rows of ``n`` elements, else None (the case NumPy's reduce handles badly: it pays its
    per-row overhead ``rows`` times, 5 us for 128 rows of 10 against 1 us for a loop)."""
    ndim = x.ndim
    if (BACKEND != "numba" or x.size < MIN_WORK or not 0 < len(axes) < ndim
            or x.dtype not in _FLOAT_DTYPES or axes != tuple(range(ndim - len(axes), ndim))
            or not x.flags.c_contiguous):
        return None
    n = _size(x.shape[ndim - len(axes):])
    return (x.size // n, n) if 0 < n <= SHORT_ROW else None


def extremum_cotangent(x, out_kept, g_kept, axes: tuple):
    """The cotangent of max/min's ``x``: ``g`` split equally between the ties of each row,
    as ``hit * (g / count)`` computes it with NumPy (bitwise the same), in one loop. For a
    C-contiguous float ``x`` reduced over its last axes (not all) in rows of at most
    ``SHORT_ROW``, with ``out_kept`` and ``g_kept`` contiguous arrays of x's dtype and the
    reduced shape (no batch axes); None otherwise. (The primal stays NumPy's: which zero a
    max of -0.0 and 0.0 returns depends on NumPy's SIMD lanes, and a loop would not match.)"""
    shape = _trailing_rows(x, axes) if type(x) is np.ndarray else None
    if shape is None:
        return None
    for value in (out_kept, g_kept):
        if (type(value) is not np.ndarray or value.dtype != x.dtype or value.size != shape[0]
                or value.ndim != x.ndim or not value.flags.c_contiguous):
            return None
    x_bar = np.empty(shape, x.dtype)
    _utility("extremum_vjp")(x.reshape(shape), out_kept.reshape(-1), g_kept.reshape(-1), x_bar,
                             _ZERO_ONE[x.dtype.char])
    return x_bar.reshape(x.shape)


# 0 and 1 in x's dtype, as an array: Numba types a NumPy scalar argument slowly (~2 us)
_ZERO_ONE = {"f": np.array([0, 1], np.float32), "d": np.array([0, 1], np.float64)}


# -- unbroadcast sums (reverse mode's transpose of broadcasting) ---------------------------
#: NumPy sums a contiguous row of up to this many elements with 8 running sums (its
#: pairwise summation's block); longer rows it splits recursively, and sums them fast
PAIRWISE_BLOCK = 128
#: the loops below take a sum only where NumPy would run its inner loop at least this many
#: times. NumPy pays ~20 ns per run; a Numba call pays ~10-15 us more than a NumPy call when
#: caches are cold, as they are between a network's large products (measured: 128 rows of
#: 10 float32, 1.9 against 4.5 us hot but 19-36 against 11-20 us cold; (4096, 2) -> (2,),
#: 17 against 74 us hot and 40-58 against 82-92 us cold)
SUM_MIN_RUNS = 1024


def sum_layout(gshape: tuple, axes: tuple):
    """How a C-contiguous array of shape ``gshape`` summed over ``axes`` maps onto the
    loops of :func:`sum_kept`: ``("rows", rows, n)`` (rows of ``n`` <= PAIRWISE_BLOCK
    contiguous elements), ``("columns", blocks, m, n)`` (``m`` rows of ``n`` added in order,
    per block), or None (another pattern, or too few runs of NumPy's inner loop for a
    kernel to pay: NumPy sums it). Depends on the shapes only.

    Axes of length 1 drop out and neighbouring axes of one kind merge, as NumPy's
    iterator does; both loops then add in NumPy's order, so the sums are bitwise NumPy's.

    >>> sum_layout((4096, 2), (0,)), sum_layout((128, 10), (1,))
    (('columns', 1, 4096, 2), None)
    """
    kinds, extents = [], []
    for axis, extent in enumerate(gshape):
        if extent == 1:
            continue
        kind = axis in axes
        if kinds and kinds[-1] == kind:
            extents[-1] *= extent
        else:
            kinds.append(kind)
            extents.append(extent)
    if kinds == [False, True] and extents[1] <= PAIRWISE_BLOCK:
        layout, runs = ("rows", extents[0], extents[1]), extents[0]
    elif kinds == [True, False]:
        layout, runs = ("columns", 1, extents[0], extents[1]), extents[0]
    elif kinds == [False, True, False]:
        layout, runs = ("columns", *extents), extents[0] * extents[1]
    else:
        return None
    return layout if runs >= SUM_MIN_RUNS else None


def sum_kept(g, layout, shape):
    """``np.add.reduce(g, axes, keepdims=True)`` for a :func:`sum_layout` of g's shape, in
    one loop and with the same numbers, as a new array of ``shape`` (the kept shape or any
    reshaping of it); None where it does not apply (NumPy backend, not a C-contiguous
    float32/float64 array).

    Where NumPy runs its inner loop once per short row: (4096, 2) -> (2,) takes 17 us
    against NumPy's 74, a batch of cotangents (100, 128, 10) -> (100, 1, 10) 52 against 259.
    """
    if BACKEND != "numba" or g.dtype not in _FLOAT_DTYPES or not g.flags.c_contiguous:
        return None
    out = np.empty(shape, g.dtype)  # (its own buffer: a leaf may keep it as .grad uncopied)
    zero = _ZERO_ONE[g.dtype.char]
    if layout[0] == "rows":
        _utility("row_sums")(g.reshape(layout[1:]), out.reshape(layout[1]), zero)
    else:
        _utility("column_sums")(g.reshape(layout[1:]), out.reshape(layout[1], layout[3]), zero)
    return out


def add_reduce(x, axis=None, keepdims: bool = False):
    """``np.add.reduce(x, axis=axis, keepdims=keepdims)`` (what ``np.sum`` runs), through
    :func:`sum_kept`'s loops where NumPy would run its inner loop once per short row: the
    same numbers, 4-5x faster there. The ``sum`` rule's primal and its JVP (a batch of
    tangents ``(k, *S)`` summed over data axes) both call it.

    >>> x = np.arange(8192.0).reshape(4096, 2)
    >>> bool((add_reduce(x, 0) == np.add.reduce(x, 0)).all())
    True
    """
    # (a layout needs SUM_MIN_RUNS runs of at least 2 elements: smaller arrays skip the lookup)
    if type(x) is np.ndarray and BACKEND == "numba" and x.size >= 2 * SUM_MIN_RUNS:
        key = (x.shape, axis, keepdims)
        plan = _REDUCE_PLANS.get(key)
        if plan is None:
            plan = _reduce_plan(*key)
        if plan:
            out = sum_kept(x, *plan)
            if out is not None:
                return out
    return np.add.reduce(x, axis=axis, keepdims=keepdims)


#: (shape, axis, keepdims) -> (``sum_layout``, the result's shape), or False for NumPy
_REDUCE_PLANS: dict = {}


def _reduce_plan(shape, axis, keepdims):
    ndim = len(shape)
    if axis is None:
        axes = tuple(range(ndim))
    else:
        axes = axis if type(axis) is tuple else (axis,)
        if not all(type(a) is int and -ndim <= a < ndim for a in axes):
            axes = None  # NumPy says what is wrong with the axis
        else:
            axes = tuple(sorted(a % ndim for a in axes))
            if len(set(axes)) != len(axes):
                axes = None
    layout = None if axes is None else sum_layout(shape, axes)
    plan = False
    if layout is not None:
        plan = (layout, tuple(1 if i in axes else n for i, n in enumerate(shape)) if keepdims
                else tuple(n for i, n in enumerate(shape) if i not in axes))
    if len(_REDUCE_PLANS) < 4096:
        _REDUCE_PLANS[(shape, axis, keepdims)] = plan
    return plan


# -- elementwise rules -----------------------------------------------------------------
def elementwise_jvp(rule, primals, tangents):
    """Primal and k tangents of an elementwise rule through a generated kernel.

    ``tangents[i]`` is None (constant) or an array ``(k, *S_i)`` (a scalar operand's
    tangent is ``(k,)``). Returns ``(out, out_dot)`` with ``out_dot`` of shape ``(k, *S)``,
    or None where the fast path does not apply (NumPy backend, non-float or mixed dtypes,
    broadcasting other than scalar operands, nested duals, a rule that does not compile);
    the caller then runs ``rule.primal`` and ``rule.jvp``, which give the same results.
    """
    if BACKEND != "numba" or _work(primals, tangents) < MIN_WORK or not has_kernel(rule):
        return None
    plan = _plan(rule, primals, tangents, None)
    if plan is None:
        return None
    dtype, shape, k, variant, args = plan
    kernel, fused = _dispatch.get((rule, dtype.char, variant)) or _kernel(rule, dtype, variant)
    if kernel is None:
        return None
    n = _size(shape)
    if fused:
        out = np.empty(shape, dtype=dtype)
    else:
        out = rule.primal(*primals)
        if type(out) is not np.ndarray or out.dtype != dtype or out.shape != shape:
            return None
    out_dot = np.empty((k, n), dtype=dtype)
    kernel(_nan_safe(), True, *args, np.ascontiguousarray(out).reshape(n), out_dot)
    return out, out_dot.reshape((k,) + shape)


def elementwise_vjp(rule, argnum, out_bar, primals, out):
    """``out_bar * partial_argnum`` in one pass: the cotangent of ``primals[argnum]``.

    Applies where ``out_bar`` and every operand the partial reads (``primals``, ``out``) are
    C-contiguous arrays of one float dtype and of ``out_bar``'s shape (no batch axes, no
    broadcasting), and :func:`fuses_vjp` says the kernel beats NumPy. Operands the partial
    does not read may be anything (the tape keeps only their shapes). Returns None where it
    does not apply (also below ``MIN_WORK`` elements), and the caller computes
    ``partial * out_bar`` with NumPy (the same numbers). Like that product it is not
    NaN-safe (a zero cotangent times an infinite partial gives NaN): the tape takes this
    path only outside ``dualad.nan_safe()``.
    """
    if BACKEND != "numba" or type(out_bar) is not np.ndarray or out_bar.size < MIN_WORK:
        return None  # (small arrays: NumPy, and no Numba import or compilation for them)
    dtype = out_bar.dtype
    kernel = vjp_kernel(rule, argnum, dtype, out_bar.ndim)
    if kernel is None or not out_bar.flags.c_contiguous:
        return None
    used, uses_out = rule.saved_for(argnum)
    shape = out_bar.shape
    args = []
    for j, x in enumerate((*primals, out)):
        if (j not in used if j < len(primals) else not uses_out):
            x = out_bar  # not read: any array of the right type stands in
        elif (type(x) is not np.ndarray or x.shape != shape or x.dtype != dtype
              or not x.flags.c_contiguous):
            return None
        args.append(x)
    x_bar = np.empty(shape, dtype)
    kernel(*args, out_bar, x_bar)
    return x_bar


def fuses_vjp(rule, argnum: int) -> bool:
    """Whether ``out_bar * partial_argnum`` is worth a kernel (see :func:`vjp_kernel`): a
    partial that computes something (tanh's ``1 - ans*ans``, divide's ``1/y``). Measured on
    128x256 float32: tanh 5.9 against NumPy's 14.2 us, divide 7.5 against 12.9. A partial
    that is one operand (exp's ``ans``, multiply's ``y``) is one NumPy multiply already
    (kernel 6.3 against 5.8 us), and one that calls ``np.cos``/``np.exp`` is faster on
    NumPy's SIMD loops in float32 than on Numba's scalar libm."""
    key = (rule, argnum)
    known = _fuses_vjp.get(key)
    if known is None:
        partial = rule.partials[argnum]
        known = _fuses_vjp[key] = (has_kernel(rule) and callable(partial)
                                   and not _numpy_calls(partial) - {"where"}
                                   and not _returns_an_argument(partial))
    return known


_fuses_vjp: dict = {}


def _returns_an_argument(func) -> bool:
    ops = [ins.opname for ins in dis.get_instructions(func) if ins.opname not in ("RESUME", "NOP")]
    return ops == ["LOAD_FAST", "RETURN_VALUE"]


#: below this many tangent elements (size x k) the kernel's call overhead exceeds what it
#: saves and the generic NumPy path is faster (measured on 2 cores: crossover near 10^3)
MIN_WORK = 1024


def _work(primals, tangents) -> int:
    size = 0
    for p in primals:
        if type(p) is np.ndarray and p.size > size:
            size = p.size
    for t in tangents:
        if type(t) is np.ndarray and t.ndim:
            return size * t.shape[0]
    return size


def _size(shape) -> int:
    size = 1
    for extent in shape:
        size *= extent
    return size


def has_kernel(rule) -> bool:
    """Whether ``rule`` gets a generated kernel on the Numba backend.

    Rules whose partials are all constants (add, subtract, negative, deg2rad ...) are
    linear: NumPy already forms their tangent in one pass (``t0 + t1``, ``-t``) with
    nothing to evaluate per element, so they keep the NumPy path and cost no compile time.
    """
    known = _HAS_KERNEL.get(rule)
    if known is None:
        known = _HAS_KERNEL[rule] = (bool(getattr(rule, "kernel", False))
                                     and any(callable(p) for p in rule.partials))
    return known


_HAS_KERNEL: dict = {}  # per rule: decided once (the table does not change at run time)


def _nan_safe() -> bool:
    global _config
    if _config is None:
        from .rules.core import CONFIG
        _config = CONFIG
    return bool(_config.nan_safe)


_config = None


def _plan(rule, primals, tangents, flat_n):
    """Check that the kernel applies; returns ``(dtype, shape, k, variant, args)`` or None.

    ``variant`` has one two-letter code per argument: ``a``/``s`` for an array/scalar
    primal, then ``A`` (tangent ``(k, n)``), ``S`` (scalar's tangent ``(k,)``) or ``N``.
    """
    dtype = shape = None
    k = None
    for p, t in zip(primals, tangents):  # pass 1: the array operands fix dtype and shape
        if type(p) is np.ndarray and p.ndim:
            if p.dtype not in _FLOAT_DTYPES:
                return None
            if dtype is None:
                dtype, shape = p.dtype, p.shape
            elif p.dtype != dtype or p.shape != shape:
                return None
        if t is not None:
            if type(t) is not np.ndarray or t.ndim == 0:
                return None
            if k is None:
                k = t.shape[0]
            elif t.shape[0] != k:
                return None
    if dtype is None or k is None:
        return None
    n = _size(shape) if flat_n is None else flat_n
    if not _keeps_dtype(rule, dtype):
        return None
    codes, args = [], []
    for i, (p, t) in enumerate(zip(primals, tangents)):
        differentiable = rule.partials[i] is not None
        if type(p) is np.ndarray and p.ndim:
            code = "a"
            args.append(np.ascontiguousarray(p).reshape(n))
            if t is not None and differentiable:
                if t.dtype != dtype or t.shape[1:] != (shape if flat_n is None else (n,)):
                    return None
                code += "A"
                args.append(np.ascontiguousarray(t).reshape(k, n))
            else:
                code += "N"
        else:
            value = _scalar(p, dtype)
            if value is None:
                return None
            code = "s"
            args.append(value)
            if t is not None and differentiable:
                if t.shape != (k,):
                    return None
                code += "S"
                args.append(np.ascontiguousarray(t, dtype=dtype))
            else:
                code += "N"
        if t is not None and not differentiable:
            return None
        codes.append(code)
    if all(c[1] == "N" for c in codes):
        return None
    variant = "_".join(codes)
    for i, code in enumerate(codes):
        if code[0] == "s" and float(_operand(args, codes, i)) in _LITERALS:
            variant += f"__{i}_{_literal_tag(float(_operand(args, codes, i)))}"
    return dtype, shape, k, variant, args


def _operand(args, codes, i):
    """The primal argument of operand ``i`` in the kernel's argument list."""
    position = sum(2 if code[1] != "N" else 1 for code in codes[:i])
    return args[position]


def _literal_tag(value: float) -> str:
    return repr(value).replace("-", "m").replace(".", "p")


def _scalar(p, dtype):
    """A scalar operand as ``dtype`` if NumPy would keep ``dtype`` (NEP 50), else None."""
    if type(p) in (float, int):  # weak Python scalars (bool is excluded: type(True) is bool)
        return dtype.type(p)
    if isinstance(p, (np.floating, np.ndarray)) and np.ndim(p) == 0:
        if p.dtype.kind != "f" or p.dtype.itemsize > dtype.itemsize:
            return None
        return dtype.type(p)
    return None


def _keeps_dtype(rule, dtype) -> bool:
    """Whether the primal maps float arrays of ``dtype`` to ``dtype`` (float_power does not)."""
    key = (rule, dtype.char)
    ok = _out_dtype_ok.get(key)
    if ok is None:
        try:
            with np.errstate(all="ignore"):
                sample = rule.primal(*[np.full(1, 0.5, dtype=dtype)] * rule.nin)
            ok = getattr(sample, "dtype", None) == dtype
        except Exception:  # noqa: BLE001  (any failure: use the generic path)
            ok = False
        _out_dtype_ok[key] = ok
    return ok


# -- kernel generation -------------------------------------------------------------------
def _kernel(rule, dtype, variant):
    """``(dispatcher, fused)`` for ``rule`` at ``dtype`` and ``variant``, compiled on demand;
    ``(None, False)`` where it does not compile (remembered, so it is tried once)."""
    kernel = _compiled_kernel(rule, dtype, variant)
    result = (kernel, bool(kernel is not None and _modules[(rule.name, dtype.name)].FUSED))
    _dispatch[(rule, dtype.char, variant)] = result
    return result


def _compiled_kernel(rule, dtype, variant):
    module = _module_or_none(rule, dtype)
    if module is None:
        return None
    kernel = getattr(module, "jvp_" + variant, None)
    if kernel is None:
        return None
    if variant not in module.COMPILED:
        # force compilation now so that a failure falls back instead of raising mid-call
        try:
            _compile(module, variant, rule.nin)
        except Exception as err:  # noqa: BLE001
            _failed[key] = err
            del _modules[key]
            return None
    return kernel


def vjp_kernel(rule, argnum: int, dtype, ndim: int):
    """A compiled ``(*xs, ans, g, out)`` loop writing ``out = g * partial_argnum`` elementwise,
    for C-contiguous ``dtype`` operands that all have one shape of ``ndim`` axes; None where
    none applies (NumPy backend, a partial :func:`fuses_vjp` leaves to NumPy, a dtype the
    primal does not keep)."""
    key = (rule, argnum, dtype.char, ndim)
    kernel = _vjp_kernels.get(key, False)
    if kernel is not False:
        return kernel
    kernel = None
    if (BACKEND == "numba" and fuses_vjp(rule, argnum) and dtype in _FLOAT_DTYPES
            and _keeps_dtype(rule, dtype)):
        module = _module_or_none(rule, dtype)
        if module is not None:
            numba = _import_numba()
            arr = numba.types.Array(numba.from_dtype(module._D), ndim, "C")
            kernel = getattr(module, f"vjp_{argnum}")
            try:
                kernel.compile((arr,) * (rule.nin + 3))
            except Exception:  # noqa: BLE001  (remembered: the NumPy path serves instead)
                kernel = None
    _vjp_kernels[key] = kernel
    return kernel


_vjp_kernels: dict = {}  # (rule, argnum, dtype char, ndim) -> dispatcher or None


def _module_or_none(rule, dtype):
    """The kernel module of ``rule`` at ``dtype``; None where it failed (remembered: tests
    compile every rule, and a failure is tried once)."""
    key = (rule.name, dtype.name)
    module = _modules.get(key)
    if module is None and key not in _failed:
        try:
            module = _load_module(rule, dtype)
        except Exception as err:  # noqa: BLE001
            _failed[key] = err
    return module


def _compile(module, variant, nin):
    numba = _import_numba()
    kernel = getattr(module, "jvp_" + variant)
    dtype = numba.from_dtype(module._D)
    vec = numba.types.Array(dtype, 1, "C")
    mat = numba.types.Array(dtype, 2, "C")
    sig = [numba.types.boolean, numba.types.boolean]
    for code in variant.partition("__")[0].split("_"):
        sig.append(vec if code[0] == "a" else dtype)
        if code[1] == "A":
            sig.append(mat)
        elif code[1] == "S":
            sig.append(vec)
    sig += [vec, mat]
    kernel.compile(tuple(sig))
    module.COMPILED.add(variant)


def compile_rule(rule, dtype=np.float64, variants=None):
    """Compile kernels of ``rule`` at ``dtype``, raising on failure (tests call this).

    By default the variant where every operand is a traced array: it evaluates every
    partial, so it compiles exactly when the rule's partials compile.
    """
    dtype = np.dtype(dtype)
    module = _load_module(rule, dtype)
    for variant in variants or ["_".join(["aA"] * rule.nin)]:
        _compile(module, variant, rule.nin)
    return module


def _variants(nin):
    """Kernel names: one code per operand, then optionally ``__{operand}_{literal}``."""
    per_arg = ["aA", "aN", "sS", "sN"]
    if nin == 1:
        return ["aA"]
    result = []
    for a in per_arg:
        for b in per_arg:
            if "a" in (a[0], b[0]) and not (a[1] == "N" and b[1] == "N"):
                result.append(a + "_" + b)
                scalar = 0 if a[0] == "s" else 1 if b[0] == "s" else None
                if scalar is not None:
                    result += [f"{a}_{b}__{scalar}_{_literal_tag(v)}" for v in _LITERALS]
    return result


def _number(p):
    return isinstance(p, (int, float)) and not isinstance(p, bool)


def _kernel_source(rule, dtype, cache: bool) -> str:
    lines = [
        f"# dualad kernels generated from the rule {rule.name!r} at {dtype.name}; do not edit.",
        "import numpy as np",
        "from numba import njit",
        "from dualad import kernels as _kernels",
        f"_D = np.{dtype.name}",
        "_ZERO = _D(0.0)",
        f"BLOCK = {BLOCK}",
        "COMPILED = set()",
        f"VARIANTS = {_variants(rule.nin)!r}",
        f"_jit = njit(cache={cache}, error_model='numpy', nogil=True)",
        "_inline = njit(inline='always', error_model='numpy')",
        f"FUSED = {_fuse_primal(rule, dtype)}",
        f"_p = _kernels._rule_primal({rule.name!r})",
    ]
    for i, p in enumerate(rule.partials):
        if callable(p):
            lines.append(f"_d{i} = _inline(_kernels._scalar_partial({rule.name!r}, {i}, "
                         f"{dtype.name!r}, __file__))")
        elif _number(p):
            lines.append(f"_c{i} = _D({float(p)!r})")
    for variant in _variants(rule.nin):
        lines += _variant_source(rule, variant, dtype)
    for i, p in enumerate(rule.partials):
        if callable(p):
            lines += _vjp_source(rule, i)
    return "\n".join(lines) + "\n"


def _vjp_source(rule, argnum):
    """``out = g * partial_argnum(*xs, ans)`` over operands of one shape: one pass, nothing saved."""
    xs = [f"x{i}" for i in range(rule.nin)]
    flat = [f"    f{i} = x{i}.reshape(n)" for i in range(rule.nin)]
    values = ", ".join([f"f{i}[j]" for i in range(rule.nin)] + ["fa[j]"])
    return ["", "@_jit", f"def vjp_{argnum}({', '.join(xs)}, ans, g, out):",
            "    n = ans.size", *flat,
            "    fa = ans.reshape(n)", "    fg = g.reshape(n)", "    fo = out.reshape(n)",
            "    for j in range(n):",
            f"        fo[j] = fg[j] * _D(_d{argnum}({values}))"]


def _rule_primal(rule_name):
    from .rules.core import RULES
    return RULES[rule_name].primal


def _fuse_primal(rule, dtype) -> bool:
    """Compute the primal inside the kernel, or take NumPy's (see the module docstring)?

    Fused where a partial evaluates a NumPy function of the inputs (sin's cos, sinh's
    cosh, logaddexp's exp ...): one pass then shares the argument reduction (LLVM turns
    sin and cos into one ``sincos``: 21 ms against 13 + 19 ms for NumPy's sin and a cos
    kernel on 10**6 float64). Where the partial is arithmetic on ``ans`` (tanh, exp,
    sqrt, log ...) NumPy's SIMD primal plus a light tangent pass is faster. float32
    never fuses: NumPy's float32 SIMD loops are 2-7x faster than Numba's scalar libm.
    """
    if dtype != np.float64 or not isinstance(rule.primal, np.ufunc):
        return False
    names = set()
    for p in rule.partials:
        if callable(p):
            names |= _numpy_calls(p)
    return bool(names - {"where"})


def _numpy_calls(func, seen=None) -> set:
    """Names of the NumPy functions that ``func`` (and helpers it calls) uses."""
    seen = set() if seen is None else seen
    names, previous = set(), None
    for ins in dis.get_instructions(func.__code__):
        if ins.opname in ("LOAD_ATTR", "LOAD_METHOD") and previous is np:
            names.add(ins.argval)
        previous = None
        if ins.opname == "LOAD_GLOBAL":
            previous = func.__globals__.get(ins.argval)
            if isinstance(previous, types.FunctionType) and previous not in seen:
                seen.add(previous)
                names |= _numpy_calls(previous, seen)
    return names


def _variant_source(rule, name, dtype):
    variant, _, literal = name.partition("__")
    codes = variant.split("_")
    constants = {}
    if literal:
        position, tag = literal.split("_")
        constants[int(position)] = float(tag.replace("m", "-").replace("p", "."))
    params, xs = ["nan_safe", "fuse"], []
    for i, code in enumerate(codes):
        params.append(f"x{i}")
        if i in constants:
            xs.append(f"_D({constants[i]!r})")
        else:
            xs.append(f"b{i}[i]" if code[0] == "a" else f"x{i}")
        if code[1] != "N":
            params.append(f"t{i}")
    params += ["ans", "out_dot"]
    active = [i for i, c in enumerate(codes) if c[1] != "N"]
    computed = [i for i in active if callable(rule.partials[i])]
    body = [
        "",
        "@_jit",
        f"def jvp_{name}({', '.join(params)}):",
        "    n = ans.shape[0]",
        "    k = out_dot.shape[0]",
        f"    d = np.empty(({max(len(computed), 1)}, BLOCK), _D)",
        "    for i0 in range(0, n, BLOCK):",
        "        m = min(BLOCK, n - i0)",
    ]
    fused = _fuse_primal(rule, dtype)
    if computed or fused:
        # the block's elements through views indexed from 0: ``x[i0 + i]`` made Numba check
        # each index for wraparound (it cannot prove i0 + i >= 0), and the loop ran scalar,
        # 3-5x slower (tanh's partial and product on 32k float32: 28 us, now 8.9 us)
        for i, code in enumerate(codes):
            if code[0] == "a" and i not in constants:
                body.append(f"        b{i} = x{i}[i0:i0 + m]")
        body.append("        ab = ans[i0:i0 + m]")
        body.append("        for i in range(m):")
        for i in range(len(codes)):
            body.append(f"            v{i} = {xs[i]}")
        values = ", ".join(f"v{i}" for i in range(len(codes)))
        if fused:  # ``fuse`` is False for VJPs: the saved primal is read, never rewritten
            body.append("            if fuse:")
            body.append(f"                a = _D(_p({values}))")
            body.append("                ab[i] = a")
            body.append("            else:")
            body.append("                a = ab[i]")
        else:
            body.append("            a = ab[i]")
        args = ", ".join([f"v{i}" for i in range(len(codes))] + ["a"])
        for row, i in enumerate(computed):
            body.append(f"            d[{row}, i] = _D(_d{i}({args}))")
    body.append("        for j in range(k):")
    body.append("            o = out_dot[j, i0:i0 + m]")
    for i in active:
        body.append(f"            s{i} = t{i}[j, i0:i0 + m]" if codes[i][1] == "A"
                    else f"            s{i} = t{i}[j]")
    # two copies of the loop, so each vectorises; NaN-safe: a zero tangent slot times an
    # infinite partial gives 0
    for safe in (True, False):
        terms = []
        for i in active:
            s = f"s{i}[i]" if codes[i][1] == "A" else f"s{i}"
            p = rule.partials[i]
            if callable(p):
                factor = f"d[{computed.index(i)}, i]"
            elif p == 1:
                terms.append(s)
                continue
            elif p == -1:
                terms.append(f"(-{s})")
                continue
            else:
                factor = f"_c{i}"
            terms.append(f"({factor} * {s} if {s} != 0 else _ZERO)" if safe else f"{factor} * {s}")
        body.append("            if nan_safe:" if safe else "            else:")
        body.append("                for i in range(m):")
        body.append(f"                    o[i] = {' + '.join(terms)}")
    return body


def _scalar_partial(rule_name, i, dtype_name, filename):
    """Partial ``i`` of a rule as a Numba-compilable function of scalars.

    A copy of the table's function with: float constants (and float globals) as
    ``dtype`` scalars, so float32 stays float32 as under NumPy's weak-scalar rules;
    helper functions it calls jitted the same way; its code attributed to the
    generated file (Numba keys its cache on the file, which carries the rule's hash).
    """
    from .rules.core import RULES
    return _scalar_copy(RULES[rule_name].partials[i], np.dtype(dtype_name), filename, f"d{i}")


def _scalar_copy(func, dtype, filename, name):
    numba = _import_numba()
    code = func.__code__
    consts = code.co_consts
    if dtype == np.float32:
        consts = tuple(np.float32(c) if type(c) is float else c for c in consts)
    replace = dict(co_consts=consts, co_filename=filename, co_name=name)
    if sys.version_info >= (3, 11):
        replace["co_qualname"] = name
    code = code.replace(**replace)
    namespace = dict(func.__globals__)
    for global_name in _global_names(func.__code__):
        value = namespace.get(global_name)
        if isinstance(value, types.FunctionType):
            helper = _scalar_copy(value, dtype, filename, f"{name}_{global_name}")
            namespace[global_name] = numba.njit(inline="always", error_model="numpy")(helper)
        elif value is np:
            namespace[global_name] = _scalar_numpy()
        elif type(value) is float and dtype == np.float32:
            namespace[global_name] = np.float32(value)
    copy = types.FunctionType(code, namespace, name, func.__defaults__, func.__closure__)
    copy.__qualname__ = name
    return copy


_scalar_numpy_module = None


def _scalar_numpy():
    """``numpy`` as seen by partials compiled on scalars: Numba's ``np.where`` allocates
    0-d arrays on scalar arguments (150 ns per element), so ``where`` is a plain select."""
    global _scalar_numpy_module
    if _scalar_numpy_module is None:
        numba = _import_numba()
        module = types.ModuleType("dualad_scalar_numpy")
        module.__dict__.update({k: v for k, v in np.__dict__.items() if not k.startswith("__")})

        def where(condition, x, y):
            return x if condition else y
        module.where = numba.njit(inline="always")(where)
        _scalar_numpy_module = module
    return _scalar_numpy_module


def _global_names(code):
    return {ins.argval for ins in dis.get_instructions(code)
            if ins.opname in ("LOAD_GLOBAL", "LOAD_NAME")}


def _fingerprint(func, seen=None) -> bytes:
    """Bytes that change whenever the partial (or a helper or float global it uses) changes."""
    if not callable(func):
        return repr(func).encode()
    seen = set() if seen is None else seen
    code = func.__code__
    parts = [code.co_code, repr(code.co_consts).encode(), repr(code.co_names).encode()]
    for global_name in sorted(_global_names(code)):
        value = func.__globals__.get(global_name)
        if isinstance(value, types.FunctionType) and value not in seen:
            seen.add(value)
            parts.append(_fingerprint(value, seen))
        elif isinstance(value, (int, float)):
            parts.append(f"{global_name}={value!r}".encode())
        elif isinstance(value, types.ModuleType):
            parts.append(f"{global_name}={value.__name__}".encode())
    return b"|".join(parts)


def _load_module(rule, dtype):
    """Generate, write and import the kernel module of ``rule`` at ``dtype`` (thread-safe)."""
    key = (rule.name, dtype.name)
    with _lock:
        if key in _modules:
            return _modules[key]
        _import_numba()
        directory = _cache_location()
        source = _kernel_source(rule, dtype, cache=bool(directory))
        version = getattr(sys.modules.get("dualad"), "__version__", "0")
        digest = hashlib.sha256(b"\0".join(
            [source.encode(), version.encode()] + [_fingerprint(p) for p in rule.partials])
        ).hexdigest()[:16]
        module_name = f"dualad_kernel_{rule.name}_{dtype.name}_{digest}"
        module = import_generated(module_name, source, directory)
        _modules[key] = module
        return module


def import_generated(module_name, source, directory, preset=None):
    """Import generated ``source`` as ``module_name``: from ``directory/module_name.py``
    (written once, atomically) so Numba's ``cache=True`` works across processes, or in
    memory when there is no writable ``directory``. ``preset`` names globals the source
    expects before it runs."""
    if directory:
        path = os.path.join(directory, module_name + ".py")
        if not os.path.exists(path):
            partial_path = f"{path}.{os.getpid()}.tmp"
            with open(partial_path, "w") as handle:
                handle.write(source)
            os.replace(partial_path, path)
        spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(spec)
        module.__dict__.update(preset or {})
        sys.modules[module_name] = module  # Numba's cache re-imports it by name
        spec.loader.exec_module(module)
    else:  # no writable location: same source, compiled in memory
        module = types.ModuleType(module_name)
        module.__file__ = f"<{module_name}>"
        module.__dict__.update(preset or {})
        sys.modules[module_name] = module
        exec(compile(source, module.__file__, "exec"), module.__dict__)
    return module


def _cache_location():
    """``$NUMBA_CACHE_DIR``, else ``~/.cache/dualad``, else a temp dir; False if none is writable."""
    global _cache_dir
    if _cache_dir is None:
        candidates = []
        if os.environ.get("NUMBA_CACHE_DIR"):
            candidates.append(os.path.join(os.environ["NUMBA_CACHE_DIR"], "dualad"))
        candidates.append(os.path.join(os.path.expanduser("~"), ".cache", "dualad"))
        candidates.append(os.path.join(tempfile.gettempdir(), f"dualad-{os.getuid()}"
                                       if hasattr(os, "getuid") else "dualad"))
        _cache_dir = False
        for directory in candidates:
            try:
                os.makedirs(directory, exist_ok=True)
                probe = os.path.join(directory, f".probe-{os.getpid()}")
                with open(probe, "w"):
                    pass
                os.remove(probe)
            except OSError:
                continue
            _cache_dir = directory
            break
    return _cache_dir


def _import_numba():
    global _numba
    if _numba is None:
        import numba
        _numba = numba
    return _numba


# -- small utility kernels (hand-written loops with no derivative content) -----------------
_utilities: dict = {}
# NumPy's float semantics (x / 0 is inf or nan, no ZeroDivisionError), no GIL held
_UTILITY_OPTIONS = {"nogil": True, "error_model": "numpy"}


def _utility(name):
    kernel = _utilities.get(name)
    if kernel is None:
        with _lock:
            numba = _import_numba()
            try:  # Numba refuses cache=True where it finds no writable cache location
                kernel = numba.njit(cache=True, **_UTILITY_OPTIONS)(_UTILITY_SOURCES[name])
            except RuntimeError:
                kernel = numba.njit(**_UTILITY_OPTIONS)(_UTILITY_SOURCES[name])
            _utilities[name] = kernel
    return kernel


def _scatter_add_loop(values, index, out):
    rows, count = values.shape
    for row in range(rows):
        for j in range(count):
            out[row, index[j]] += values[row, j]


def _extremum_vjp_loop(x, m, g, out, zero_one):
    zero, one = zero_one[0], zero_one[1]
    for r in range(x.shape[0]):
        count = zero  # in x's dtype, as NumPy sums the hits
        for j in range(x.shape[1]):
            if x[r, j] == m[r]:
                count += one
        share = g[r] / count
        for j in range(x.shape[1]):
            out[r, j] = (one if x[r, j] == m[r] else zero) * share


def _row_sums_loop(g, out, zero_one):
    # NumPy's pairwise sum of a row of n <= PAIRWISE_BLOCK: below 8 elements one running
    # sum from 0, else 8 running sums from the first 8 elements, combined as a tree, then
    # the tail; the reduce adds that to its identity 0 (so -0.0 sums to +0.0, as there)
    zero = zero_one[0]
    n = g.shape[1]
    stop = n - n % 8
    for r in range(g.shape[0]):
        row = g[r]
        if n < 8:
            res = zero
            for i in range(n):
                res += row[i]
        else:
            s0, s1, s2, s3 = row[0], row[1], row[2], row[3]
            s4, s5, s6, s7 = row[4], row[5], row[6], row[7]
            for i in range(8, stop, 8):
                s0 += row[i]
                s1 += row[i + 1]
                s2 += row[i + 2]
                s3 += row[i + 3]
                s4 += row[i + 4]
                s5 += row[i + 5]
                s6 += row[i + 6]
                s7 += row[i + 7]
            res = ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))
            for i in range(stop, n):
                res += row[i]
        out[r] = zero + res


def _column_sums_loop(g, out, zero_one):
    # per block: the m rows added in order, from NumPy's identity 0
    zero = zero_one[0]
    for b in range(g.shape[0]):
        acc = out[b]
        first = g[b, 0]
        for j in range(g.shape[2]):
            acc[j] = zero + first[j]
        for m in range(1, g.shape[1]):
            row = g[b, m]
            for j in range(g.shape[2]):
                acc[j] += row[j]


_UTILITY_SOURCES = {"scatter_add": _scatter_add_loop, "extremum_vjp": _extremum_vjp_loop,
                    "row_sums": _row_sums_loop, "column_sums": _column_sums_loop}
