"""Check derivatives against central finite differences: ``check_grads`` and ``numerical_jacobian``.

The oracle is numerical, never a rule's own formula. ``check_grads`` projects the
Jacobian on random directions (``uᵀ J v``) and compares it with the central
difference ``uᵀ (f(x + h v) - f(x - h v)) / 2h``, in forward mode (``dualad``) and
in reverse mode (``reversead``); ``order=2`` does the same one level up, for the
second directional derivatives.

Input convention (as ``dualad.jacobian``): a tuple/list ``x`` means ``f(*x)``;
anything else means ``f(x)``. Outputs may be numbers, arrays, or tuples/lists/dicts
of them.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import numpy as np

__all__ = ["check_grads", "numerical_jacobian", "example_case"]

_MODES = ("fwd", "rev")


# -- flattening of inputs and outputs -----------------------------------------
def _input_leaves(x) -> tuple[list[np.ndarray], bool]:
    """The inputs as float arrays (integers promote to float64) and whether f takes them unpacked."""
    unpack = isinstance(x, (tuple, list))
    leaves = []
    for i, v in enumerate(x if unpack else [x]):
        arr = np.asarray(v)
        if arr.dtype.kind in "biu":
            arr = arr.astype(np.float64)
        if arr.dtype.kind != "f":
            where = f"x[{i}]" if unpack else "x"
            raise TypeError(f"check_grads: {where} must be a real number or array, got dtype {arr.dtype}")
        leaves.append(arr)
    if not leaves:
        raise ValueError("check_grads: no inputs to differentiate with respect to")
    return leaves, unpack


def _output_leaves(tree) -> list:
    """Leaves of an output tree in the order dualad's transforms traverse it."""
    if isinstance(tree, (tuple, list)):
        return [leaf for t in tree for leaf in _output_leaves(t)]
    if isinstance(tree, dict):
        return [leaf for t in tree.values() for leaf in _output_leaves(t)]
    return [tree]


def _as_args(leaves, unpack, like=None):
    """Rebuild f's arguments from leaves; Python-float inputs stay Python floats."""
    args = []
    for i, leaf in enumerate(leaves):
        original = None if like is None else like[i]
        if original is not None and np.ndim(original) == 0 and not isinstance(original, np.ndarray):
            leaf = leaf[()] if isinstance(leaf, np.ndarray) else leaf
        args.append(leaf)
    return tuple(args) if unpack else args[0]


class _Flat:
    """f as a map between flat float64 vectors (the view finite differences need)."""

    def __init__(self, f: Callable, x: Any):
        self.f = f
        self.original = list(x) if isinstance(x, (tuple, list)) else [x]
        self.leaves, self.unpack = _input_leaves(x)
        self.shapes = [leaf.shape for leaf in self.leaves]
        self.sizes = [leaf.size for leaf in self.leaves]
        self.n = sum(self.sizes)
        self.z0 = self.pack(self.leaves)
        self.tree = self.call(self.leaves)
        y0 = self._plain_leaves(self.tree)
        self.out_shapes = [np.shape(y) for y in y0]
        self.out_dtypes = [np.asarray(y).dtype for y in y0]
        self.y0 = np.concatenate([np.ravel(np.asarray(y, dtype=np.float64)) for y in y0]) if y0 else np.zeros(0)
        self.m = self.y0.size

    def pack(self, leaves) -> np.ndarray:
        return np.concatenate([np.ravel(np.asarray(v, dtype=np.float64)) for v in leaves])

    def unpack_z(self, z: np.ndarray, dtype=None) -> list[np.ndarray]:
        out, offset = [], 0
        for leaf, size in zip(self.leaves, self.sizes):
            block = z[offset:offset + size].reshape(leaf.shape)
            out.append(block.astype(dtype or leaf.dtype))
            offset += size
        return out

    def call(self, leaves):
        return self.f(*_as_args(leaves, True, self.original)) if self.unpack else \
            self.f(_as_args(leaves, False, self.original))

    def outputs(self, leaves) -> list:
        return self._plain_leaves(self.call(leaves))

    @staticmethod
    def _plain_leaves(tree) -> list:
        leaves_out = _output_leaves(tree)
        for y in leaves_out:
            if getattr(y, "_ad_level", None) is not None:
                raise TypeError("check_grads: f returned a traced value when called on plain arrays")
        return leaves_out

    def flat_outputs(self, tree) -> np.ndarray:
        parts = [np.ravel(np.asarray(y, dtype=np.float64)) for y in _output_leaves(tree)]
        return np.concatenate(parts) if parts else np.zeros(0)

    def __call__(self, z: np.ndarray, dtype=None) -> np.ndarray:
        return self.flat_outputs(self.call(self.unpack_z(z, dtype)))

    def matrix(self, jac_tree) -> np.ndarray:
        """A dualad/reversead-style Jacobian tree as an (m, n) float64 matrix."""
        blocks = _matching_leaves(self.tree, jac_tree)
        if len(blocks) != len(self.out_shapes):
            raise AssertionError(f"Jacobian has {len(blocks)} output blocks, f has {len(self.out_shapes)} outputs")
        rows = []
        for per_input, out_shape in zip(blocks, self.out_shapes):
            per_input = per_input if self.unpack else (per_input,)
            size_out = math.prod(out_shape)
            cols = []
            for block, shape in zip(per_input, self.shapes):
                block = np.asarray(block, dtype=np.float64)
                expected = tuple(out_shape) + tuple(shape)
                if block.shape != expected:
                    raise AssertionError(f"Jacobian block has shape {block.shape}, expected {expected} "
                                         f"(f(x).shape {tuple(out_shape)} + x.shape {tuple(shape)})")
                cols.append(block.reshape(size_out, math.prod(shape)))  # (-1 fails for empty outputs)
            rows.append(np.concatenate(cols, axis=1))
        return np.concatenate(rows, axis=0) if rows else np.zeros((0, self.n))


def _matching_leaves(out_tree, jac_tree) -> list:
    """The Jacobian blocks of ``jac_tree`` in the order of ``out_tree``'s leaves."""
    if isinstance(out_tree, (tuple, list)):
        if not isinstance(jac_tree, (tuple, list)) or len(jac_tree) != len(out_tree):
            raise AssertionError(f"Jacobian tree does not follow f's output structure ({type(out_tree).__name__} "
                                 f"of {len(out_tree)})")
        return [b for o, j in zip(out_tree, jac_tree) for b in _matching_leaves(o, j)]
    if isinstance(out_tree, dict):
        if not isinstance(jac_tree, dict) or list(jac_tree) != list(out_tree):
            raise AssertionError(f"Jacobian tree does not follow f's output dict keys {list(out_tree)}")
        return [b for key in out_tree for b in _matching_leaves(out_tree[key], jac_tree[key])]
    return [jac_tree]


# -- finite differences --------------------------------------------------------
def _step(dtype) -> float:
    """Central-difference step: eps**(1/3) balances truncation (h²) and rounding (eps/h)."""
    return float(np.finfo(dtype).eps) ** (1.0 / 3.0)


def _fd_dtype(flat: _Flat):
    """Finite differences run in float64 unless f itself computes in float32 on float64 input."""
    y = flat.outputs(flat.unpack_z(flat.z0, np.float64))
    low = any(np.asarray(v).dtype == np.float32 for v in y)
    return np.float32 if low else np.float64


def numerical_jacobian(f: Callable, x: Any, eps: float | None = None):
    """Jacobian of ``f`` at ``x`` by central differences, shaped like ``dualad.jacobian``'s.

    Column ``j`` is ``(f(x + h e_j) - f(x - h e_j)) / 2h`` with ``h = eps * max(1, |x_j|)``
    (default ``eps = eps_machine ** (1/3)`` of float64). The differences run in
    float64 whatever the input dtype, so the result is an accurate oracle for float32
    derivatives too.

    Examples
    --------
    >>> import numpy as np
    >>> J = numerical_jacobian(np.sin, np.array([0.0, 1.0]))
    >>> np.allclose(J, np.diag(np.cos([0.0, 1.0])))
    True
    """
    flat = _Flat(f, x)
    dtype = _fd_dtype(flat)
    eps = _step(dtype) if eps is None else float(eps)
    columns = np.empty((flat.m, flat.n))
    for j in range(flat.n):
        h = eps * max(1.0, abs(flat.z0[j]))
        zp, zm = flat.z0.copy(), flat.z0.copy()
        zp[j] += h
        zm[j] -= h
        hp, hm = zp[j] - flat.z0[j], flat.z0[j] - zm[j]  # the steps actually taken
        columns[:, j] = (flat(zp, np.float64) - flat(zm, np.float64)) / (hp + hm)
    blocks, row = [], 0
    for out_shape in flat.out_shapes:
        size_out = math.prod(out_shape)
        rows = columns[row:row + size_out]
        row += size_out
        per_input, col = [], 0
        for shape, size in zip(flat.shapes, flat.sizes):
            per_input.append(rows[:, col:col + size].reshape(tuple(out_shape) + tuple(shape)))
            col += size
        blocks.append(tuple(per_input) if flat.unpack else per_input[0])
    return blocks[0] if len(blocks) == 1 else tuple(blocks)


def _directional_fd(g: Callable[[np.ndarray], np.ndarray], z0, v, h):
    return (g(z0 + h * v) - g(z0 - h * v)) / (2.0 * h)


# -- tolerances ---------------------------------------------------------------
def _default_tolerances(dtype, order: int):
    if np.dtype(dtype) == np.float32:
        return (2e-3, 1e-4) if order == 1 else (1e-2, 1e-3)
    return (1e-6, 1e-8) if order == 1 else (1e-5, 1e-6)


def _assert_close(name, ad, fd, scale, rtol, atol, fd_noise):
    err = abs(ad - fd)
    bound = atol + rtol * scale + fd_noise
    if not err <= bound:  # also fails on NaN
        raise AssertionError(f"check_grads: {name} = {float(ad)!r} but central differences give {float(fd)!r} "
                             f"(|difference| {err:.3g} > tolerance {bound:.3g})")


# -- the check ------------------------------------------------------------------
def _reversead():
    try:
        import reversead
    except ImportError as err:
        raise ImportError("check_grads(..., modes=('rev',)) needs the reversead package; "
                          "pass modes=('fwd',) to check forward mode only") from err
    if not hasattr(reversead, "jacobian"):
        raise ImportError("reversead has no jacobian yet; pass modes=('fwd',) to check forward mode only")
    return reversead


def _jacobian_matrix(mode, flat: _Flat, x_leaves):
    import dualad
    x = _as_args(x_leaves, flat.unpack, flat.original)
    if mode == "fwd":
        tree = dualad.jacobian(flat.f, x)
    else:
        tree = _reversead().jacobian(flat.f, x)
    return flat.matrix(tree), tree


def _check_dtypes(mode, flat: _Flat, tree):
    """float32 inputs (and only float32 inputs) give float32 derivatives."""
    if all(leaf.dtype == np.float32 for leaf in flat.leaves) and \
            all(d == np.float32 for d in flat.out_dtypes):
        for block in _output_leaves(tree):
            dtype = np.asarray(block).dtype
            if dtype != np.float32:
                raise AssertionError(f"check_grads: {mode} Jacobian has dtype {dtype} for float32 "
                                     "inputs and outputs (float32 must stay float32)")


def check_grads(f: Callable, args: Any, order: int = 2, modes: Sequence[str] = _MODES,
                eps: float | None = None, rtol: float | None = None, atol: float | None = None,
                *, directions: int = 2, seed: int = 0) -> None:
    """Check the derivatives of ``f`` at ``args`` against central finite differences.

    For random unit directions ``u`` (outputs) and ``v``, ``w`` (inputs), in each mode:

    * order 1: ``uᵀ J v`` from the mode's Jacobian (``dualad.jacobian`` /
      ``reversead.jacobian``) and, in forward mode, from ``dualad.jvp`` too, against
      ``uᵀ (f(x + h v) - f(x - h v)) / 2h``;
    * order 2: the second directional derivative ``uᵀ D²f(x)[v, w]`` (forward mode:
      ``jvp`` of ``jvp``; for scalar ``f`` also ``dualad.hessian``; reverse mode:
      ``reversead.hessian`` for scalar ``f`` where it exists) against the central
      difference of the mode's first derivative ``uᵀ J(x ± h w) v``.

    Parameters
    ----------
    f : callable
        Plain NumPy code. A tuple/list ``args`` is passed as ``f(*args)``, anything else
        as ``f(args)`` (the convention of ``dualad.jacobian``).
    args : float, array or tuple/list of them
        The point. Integers promote to float64; float32 derivatives must stay float32.
    order : 1 or 2
    modes : subset of ``("fwd", "rev")``
        ``"rev"`` imports ``reversead`` (and fails if it is missing).
    eps : float, optional
        Relative step of the differences (default ``eps_machine ** (1/3)``).
    rtol, atol : float, optional
        Tolerances (default from the inputs' dtype and the order); the rounding noise
        of the differences is added to ``atol`` automatically.
    directions : int
        Number of random ``(u, v)`` (and ``w``) draws.
    seed : int
        Seed of the random directions.

    Raises
    ------
    AssertionError
        Naming the mode, the order and the two numbers that disagree.

    Examples
    --------
    >>> import numpy as np
    >>> from dualad.testing import check_grads
    >>> def f(x, y):
    ...     return np.sin(x) * np.exp(-y ** 2) + x @ y
    >>> check_grads(f, (np.array([0.3, -1.2]), np.array([0.5, 2.0])), order=2, modes=("fwd",))
    """
    if order not in (1, 2):
        raise ValueError(f"check_grads: order must be 1 or 2, got {order!r}")
    modes = (modes,) if isinstance(modes, str) else tuple(modes)
    for mode in modes:
        if mode not in _MODES:
            raise ValueError(f"check_grads: unknown mode {mode!r}; use 'fwd' and/or 'rev'")
    flat = _Flat(f, args)
    in_dtype = np.result_type(*[leaf.dtype for leaf in flat.leaves])
    fd_dtype = _fd_dtype(flat)
    h = float(eps) if eps is not None else _step(fd_dtype)
    h_scale = h * max(1.0, float(np.max(np.abs(flat.z0), initial=0.0)))
    rng = np.random.default_rng(seed)
    machine = float(np.finfo(fd_dtype).eps)

    def unit(size):
        d = rng.standard_normal(size)
        norm = np.linalg.norm(d)
        return d / norm if norm else d

    def noise(values):
        # rounding of f(x ± h v) divided by 2h, for a projection with a unit u
        return 30.0 * machine * (np.linalg.norm(values) + 1.0) / h_scale

    for mode in modes:
        rtol1, atol1 = _default_tolerances(in_dtype, 1)
        rtol1, atol1 = rtol if rtol is not None else rtol1, atol if atol is not None else atol1
        J, tree = _jacobian_matrix(mode, flat, flat.leaves)
        if J.shape != (flat.m, flat.n):
            raise AssertionError(f"check_grads: {mode} Jacobian is {J.shape}, expected {(flat.m, flat.n)}")
        _check_dtypes(mode, flat, tree)
        for _ in range(directions):
            u, v = unit(flat.m), unit(flat.n)
            fd = u @ _directional_fd(lambda z: flat(z, fd_dtype), flat.z0, v, h_scale)
            scale = float(np.abs(u) @ np.abs(J) @ np.abs(v))
            _assert_close(f"{mode} uᵀJv", float(u @ J @ v), fd, scale, rtol1, atol1, noise(flat.y0))
            if mode == "fwd":
                _check_jvp(flat, v, u, fd, scale, rtol1, atol1, noise(flat.y0))
        if order == 2:
            rtol2, atol2 = _default_tolerances(in_dtype, 2)
            rtol2, atol2 = rtol if rtol is not None else rtol2, atol if atol is not None else atol2
            _check_second(mode, flat, J, unit, h_scale, fd_dtype, rtol2, atol2, machine, directions)


def _check_jvp(flat: _Flat, v, u, fd, scale, rtol, atol, fd_noise):
    import dualad
    tangents = _as_args(flat.unpack_z(v), flat.unpack, flat.original)
    x = _as_args(flat.leaves, flat.unpack, flat.original)
    y, jv = dualad.jvp(flat.f, x, tangents)
    _assert_close("fwd uᵀ·jvp", float(u @ flat.flat_outputs(jv)), fd, scale, rtol, atol, fd_noise)
    y_plain = flat.flat_outputs(y)
    # to rounding: a dual pass may sum in another order (BLAS) than the plain one
    tol = 1000.0 * float(np.finfo(np.result_type(*flat.out_dtypes, np.float32)).eps)
    size = float(np.max(np.abs(flat.y0), initial=1.0))
    if not np.allclose(y_plain, flat.y0, rtol=tol, atol=tol * size, equal_nan=True):
        raise AssertionError("check_grads: the primal output of dualad.jvp differs from f(x): "
                             f"max |difference| {float(np.max(np.abs(y_plain - flat.y0))):.3g}")


def _first_projection(mode, flat: _Flat, u, v):
    """``z -> uᵀ J(z) v`` with the mode's first derivative."""
    import dualad

    def g(z, dtype=None):
        leaves = flat.unpack_z(z, dtype)
        if mode == "fwd":
            x = _as_args(leaves, flat.unpack, flat.original)
            _, jv = dualad.jvp(flat.f, x, _as_args(flat.unpack_z(v, dtype), flat.unpack, flat.original))
            return np.array([u @ flat.flat_outputs(jv)])
        J, _ = _jacobian_matrix(mode, flat, leaves)
        return np.array([u @ J @ v])
    return g


def _second_fwd(flat: _Flat, u, v, w):
    """``uᵀ D²f(x)[v, w]`` by forward over forward (jvp of jvp)."""
    import dualad
    v_args = _as_args(flat.unpack_z(v), flat.unpack, flat.original)

    def first(*xs):
        x = tuple(xs) if flat.unpack else xs[0]
        return dualad.jvp(flat.f, x, v_args)[1]
    x = _as_args(flat.leaves, flat.unpack, flat.original)
    _, second = dualad.jvp(first, x if flat.unpack else (x,), _as_args(flat.unpack_z(w), True, flat.original))
    return float(u @ flat.flat_outputs(second))


def _check_second(mode, flat: _Flat, J, unit, h_scale, fd_dtype, rtol, atol, machine, directions):
    import dualad
    scalar = flat.m == 1 and flat.out_shapes == [()]
    hess = None
    if scalar:
        x = _as_args(flat.leaves, flat.unpack, flat.original)
        if mode == "fwd":
            hess = _hessian_matrix(flat, dualad.hessian(flat.f, x))
        else:
            rev = _reversead()
            if hasattr(rev, "hessian"):
                hess = _hessian_matrix(flat, rev.hessian(flat.f, x))
    for _ in range(directions):
        u, v, w = unit(flat.m), unit(flat.n), unit(flat.n)
        g = _first_projection(mode, flat, u, v)
        fd = float(_directional_fd(lambda z: g(z, fd_dtype), flat.z0, w, h_scale)[0])
        noise = 30.0 * machine * (abs(float(u @ J @ v)) + np.abs(u) @ np.abs(J) @ np.abs(v) + 1.0) / h_scale
        ad = _second_fwd(flat, u, v, w)
        _assert_close(f"{mode} second derivative uᵀD²f[v, w] (jvp of jvp)", ad, fd, abs(ad) + abs(fd),
                      rtol, atol, noise)
        if hess is not None:
            ad_h = float(u[0]) * float(w @ hess @ v)
            name = "dualad.hessian" if mode == "fwd" else "reversead.hessian"
            _assert_close(f"{mode} {name} wᵀHv", ad_h, fd, float(np.abs(w) @ np.abs(hess) @ np.abs(v)),
                          rtol, atol, noise)


def _hessian_matrix(flat: _Flat, tree) -> np.ndarray:
    """A Hessian (x.shape + x.shape, or nested tuples for tuple x) as an (n, n) matrix."""
    if not flat.unpack:
        return np.asarray(tree, dtype=np.float64).reshape(flat.n, flat.n)
    rows = []
    for i, row_blocks in enumerate(tree):
        cols = [np.asarray(b, dtype=np.float64).reshape(flat.sizes[i], flat.sizes[j])
                for j, b in enumerate(row_blocks)]
        rows.append(np.concatenate(cols, axis=1))
    return np.concatenate(rows, axis=0)


# -- the primitive table's examples as functions ------------------------------------------------
def _float_slots(tree, path=()):
    """Paths of the float ndarrays inside nested tuples/lists of arguments."""
    if isinstance(tree, (tuple, list)):
        return [p for i, t in enumerate(tree) for p in _float_slots(t, path + (i,))]
    if isinstance(tree, np.ndarray) and tree.dtype.kind == "f":
        return [path]
    return []


def _get(tree, path):
    for i in path:
        tree = tree[i]
    return tree


def _replace(tree, path, value):
    if not path:
        return value
    items = list(tree)
    items[path[0]] = _replace(items[path[0]], path[1:], value)
    return type(tree)(items) if isinstance(tree, tuple) else items


def example_case(func: Callable, example: Callable, rng, dtype=None):
    """``(f, x)``: ``func(*args, **kwargs)`` of an ``EXAMPLES`` entry as a function of its
    float-array arguments (also those inside lists, as for concatenate), and their values.

    ``example(rng)`` returns ``(args, kwargs)``; ``dtype`` casts the differentiated arrays.

    Examples
    --------
    >>> import numpy as np
    >>> f, x = example_case(np.sum, lambda rng: ((np.ones((2, 3)),), {"axis": 0}),
    ...                     np.random.default_rng(0))
    >>> f(x)
    array([2., 2., 2.])
    """
    args, kwargs = example(rng)
    args = tuple(args)
    slots = _float_slots(args)
    assert slots, f"example of {func.__name__} has no float-array argument to differentiate"
    x = tuple(_get(args, p) if dtype is None else _get(args, p).astype(dtype) for p in slots)

    def f(*xs):
        filled = args
        for path, value in zip(slots, xs):
            filled = _replace(filled, path, value)
        return func(*filled, **kwargs)
    return f, (x[0] if len(x) == 1 else x)
