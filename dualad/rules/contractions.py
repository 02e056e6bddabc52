"""Bilinear and multilinear primitives: matmul and einsum, and the products built on them.

matmul (BLAS, k tangents batched into one GEMM where possible): JVP
``a_dot @ b + a @ b_dot``; VJP ``g @ b^T`` and ``a^T @ g`` (1-D operands promoted
to row/column matrices, stacked dimensions unbroadcast).

einsum: JVP = the same einsum with a batch label on the tangent operand and the
output; VJP = an einsum of ``out_bar`` with the other operands back to one
operand's labels. dot, inner, outer, tensordot, kron and vdot are composites of
matmul, reshape, transpose and multiply.
"""
from __future__ import annotations

import numpy as np

from .core import (EXAMPLES, UFUNC_RULES, Rule, expand_to, normalize_axis, register_function,
                   shape_of, unbroadcast)
from .shape import _ex


def _plain(*xs):
    return all(isinstance(x, np.ndarray) for x in xs)


def _left(ta, b, nb):
    """Tangent contribution ``a_dot @ b``."""
    n = ta.shape[-1]
    if np.ndim(b) <= 2 and _plain(ta, b):
        flat = ta.reshape(-1, n) @ b  # one GEMM for all k tangents
        return flat.reshape(ta.shape[:-1] + np.shape(b)[1:])
    if ta.ndim - nb == 1:  # 1-D a: row vector, batched against b's stack
        row = ta.reshape(ta.shape[:nb] + (1,) * (np.ndim(b) - 1) + (n,))
        return np.matmul(row, b)[..., 0, :] if np.ndim(b) >= 2 else np.matmul(ta, b)
    # pad a_dot's stack to b's so the k batch axes never broadcast against b's stack axes
    return np.matmul(expand_to(ta, nb, np.ndim(b)), b)


def _right(a, tb, nb, out_ndim):
    """Tangent contribution ``a @ b_dot``."""
    b_ndim = tb.ndim - nb
    if b_ndim == 1:
        if np.ndim(a) <= 2:
            return np.matmul(tb, np.swapaxes(a, -1, -2) if np.ndim(a) == 2 else a)  # one GEMM
        col = tb.reshape(tb.shape[:nb] + (1,) * (np.ndim(a) - 2) + (tb.shape[-1], 1))
        return np.matmul(a, col)[..., 0]
    if np.ndim(a) == 1:
        return np.matmul(a, tb)
    return np.matmul(a, expand_to(tb, nb, max(np.ndim(a), b_ndim)))


def _matmul_jvp(primals, tangents, out, nb):
    a, b = primals
    ta, tb = tangents
    result = None
    if ta is not None:
        result = _left(ta, b, nb)
    if tb is not None:
        right = _right(a, tb, nb, np.ndim(out))
        result = right if result is None else result + right
    return result


def _matmul_vjp(argnum, g, primals, out, nb):
    a, b = primals
    if nb == 0 and type(g) is np.ndarray and g.ndim == 2:
        # matrix @ matrix on plain arrays, the layer of a network: one GEMM, no helpers
        if argnum == 0 and type(b) is np.ndarray and b.ndim == 2:
            return np.matmul(g, b.T)
        if argnum == 1 and type(a) is np.ndarray and a.ndim == 2:
            return np.matmul(a.T, g)
    a_vec, b_vec = np.ndim(a) == 1, np.ndim(b) == 1
    # matrix times vector: the vector's cotangent for all batch rows is one GEMM
    # (g @ a), not one matrix-vector product per row
    if argnum == 1 and b_vec and np.ndim(a) == 2:
        return np.matmul(g, a)
    if argnum == 0 and a_vec and np.ndim(b) == 2:
        return np.matmul(g, np.swapaxes(b, -1, -2))
    if b_vec:
        g = g[..., None]
    if a_vec:
        g = g[..., None, :]
    if argnum == 0:
        b2 = b[:, None] if b_vec else b
        a_bar = np.matmul(g, np.swapaxes(b2, -1, -2))
        if a_vec:
            a_bar = a_bar[..., 0, :]
        return unbroadcast(a_bar, np.shape(a), nb)
    a2 = a[None, :] if a_vec else a
    b_bar = np.matmul(np.swapaxes(a2, -1, -2), g)
    if b_vec:
        b_bar = b_bar[..., 0]
    return unbroadcast(b_bar, np.shape(b), nb)


matmul_rule = Rule("matmul", np.matmul, jvp=_matmul_jvp, vjp=_matmul_vjp)
matmul_rule.saved_for = lambda argnum: (frozenset({1 - argnum}), False)  # a_bar needs b, b_bar needs a


def _examples_matmul():
    shapes = [((3, 4), (4, 2)), ((4,), (4, 2)), ((3, 4), (4,)), ((4,), (4,)), ((2, 3, 4), (4, 5)),
              ((3, 4), (2, 4, 5))]
    return [(lambda rng, sa=sa, sb=sb: ((rng.standard_normal(sa), rng.standard_normal(sb)), {}))
            for sa, sb in shapes]


UFUNC_RULES[np.matmul] = matmul_rule
EXAMPLES[np.matmul] = _examples_matmul()


# -- einsum: a multilinear primitive ------------------------------------------
# The rule works on *canonical* subscripts: explicit output, one letter per axis,
# no ellipsis, no size-1 broadcasting. ``np.einsum``'s implementation below turns
# every form NumPy accepts (implicit output, '...', interleaved sublists) into that.
_LABELS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"  # NumPy's order


def _split_subscripts(subscripts):
    lhs, out = subscripts.split("->")
    return lhs.split(","), out


def _fresh(subscripts):
    """Letters not used in ``subscripts`` (for batch axes, diagonals)."""
    return iter([c for c in _LABELS if c not in subscripts])


def _einsum_primal(*operands, subscripts, optimize):
    return np.einsum(subscripts, *operands, optimize=optimize)


def _einsum_jvp(primals, tangents, out, nb, subscripts, optimize):
    terms, out_sub = _split_subscripts(subscripts)
    free = _fresh(subscripts)
    batch = "".join(next(free) for _ in range(nb))
    result = None
    for i, t in enumerate(tangents):
        if t is None:
            continue
        subs = [batch + term if j == i else term for j, term in enumerate(terms)]
        ops = [t if j == i else p for j, p in enumerate(primals)]
        term = np.einsum(",".join(subs) + "->" + batch + out_sub, *ops, optimize=optimize)
        result = term if result is None else result + term
    return result


def _einsum_vjp(argnum, out_bar, primals, out, nb, subscripts, optimize):
    """Contract ``out_bar`` with the other operands down to operand ``argnum``'s axes.

    A label only operand ``argnum`` has (summed in the primal) is broadcast back with
    a ones vector; a repeated label (a diagonal, e.g. ``'ii->'``) is renamed and tied
    to its first occurrence with an identity matrix, which scatters onto the diagonal.
    """
    terms, out_sub = _split_subscripts(subscripts)
    free = _fresh(subscripts)
    batch = "".join(next(free) for _ in range(nb))
    shape = np.shape(primals[argnum])
    dtype = getattr(out_bar, "dtype", np.float64)
    ops, subs = [out_bar], [batch + out_sub]
    for j, (term, p) in enumerate(zip(terms, primals)):
        if j != argnum:
            ops.append(p)
            subs.append(term)
    present = set("".join(subs))
    renamed = []
    for pos, label in enumerate(terms[argnum]):
        if label in renamed:  # repeated label: a diagonal of this operand
            new = next(free)
            ops.append(np.eye(shape[pos], dtype=dtype))
            subs.append(label + new)
            renamed.append(new)
            continue
        if label not in present:  # summed only over this operand: broadcast back
            ops.append(np.ones(shape[pos], dtype=dtype))
            subs.append(label)
            present.add(label)
        renamed.append(label)
    return np.einsum(",".join(subs) + "->" + batch + "".join(renamed), *ops, optimize=optimize)


einsum_rule = Rule("einsum", _einsum_primal, jvp=_einsum_jvp, vjp=_einsum_vjp)


def _sublist_to_letters(sublist):
    letters = []
    for item in sublist:
        if item is Ellipsis:
            letters.append("...")
        elif isinstance(item, (int, np.integer)) and 0 <= item < len(_LABELS):
            letters.append(_LABELS[int(item)])
        else:
            raise ValueError(f"np.einsum: subscript {item!r} in a sublist must be an integer in "
                             f"[0, {len(_LABELS)}) or Ellipsis")
    return "".join(letters)


def _einsum_operands(operands):
    """``(subscripts, arrays)`` from either calling form of np.einsum."""
    if not operands:
        raise ValueError("np.einsum: no operands given")
    if isinstance(operands[0], str):
        return operands[0], list(operands[1:])
    arrays, sublists = list(operands[0::2]), list(operands[1::2])
    out = None
    if len(operands) % 2 == 1 and len(operands) > 1:
        out = _sublist_to_letters(arrays.pop())  # odd count: the last item is the output sublist
    subscripts = ",".join(_sublist_to_letters(s) for s in sublists)
    return subscripts + ("" if out is None else "->" + out), arrays


def _canonical_einsum(subscripts, shapes):
    """Canonical terms, output and squeezes: ``(terms, out, squeeze_axes_per_operand)``."""
    subscripts = subscripts.replace(" ", "")
    for c in subscripts:
        if c not in _LABELS and c not in ".,->":
            raise ValueError(f"np.einsum: invalid subscript {c!r} in {subscripts!r}; use letters a-z, A-Z")
    explicit = "->" in subscripts
    lhs, out = subscripts.split("->") if explicit else (subscripts, None)
    inputs = lhs.split(",")
    if len(inputs) != len(shapes):
        raise ValueError(f"np.einsum: {subscripts!r} names {len(inputs)} operands but "
                         f"{len(shapes)} were given")
    ell_counts = []
    for term, shape in zip(inputs, shapes):
        named = len(term.replace("...", ""))
        if "..." in term:
            if term.count("...") > 1 or named > len(shape):
                raise ValueError(f"np.einsum: subscripts {term!r} do not fit an operand of shape {shape}")
            ell_counts.append(len(shape) - named)
        else:
            if "." in term or named != len(shape):
                raise ValueError(f"np.einsum: subscripts {term!r} name {named} axes but the operand "
                                 f"has shape {shape} (use '...' for the remaining axes)")
            ell_counts.append(0)
    n_ell = max(ell_counts, default=0)
    free = _fresh(subscripts)
    ell = "".join(next(free) for _ in range(n_ell))
    terms = [term.replace("...", ell[n_ell - n:]) for term, n in zip(inputs, ell_counts)]
    if out is None:
        named = "".join(term.replace("...", "") for term in inputs)
        out = ell + "".join(sorted(c for c in set(named) if named.count(c) == 1))
    elif "..." in out:
        out = out.replace("...", ell)
    elif n_ell and any(ell_counts):
        raise ValueError("np.einsum: output has more dimensions than subscripts given in einstein "
                         "sum, but no '...' ellipsis provided to broadcast the extra dimensions")
    # size-1 axes broadcast against a larger size of the same label: squeeze them out
    sizes = {}
    for term, shape in zip(terms, shapes):
        for c, n in zip(term, shape):
            sizes[c] = max(sizes.get(c, 1), n)
    squeezes, canonical = [], []
    for term, shape in zip(terms, shapes):
        for c in set(term):
            if len({n for d, n in zip(term, shape) if d == c}) > 1:
                raise ValueError(f"np.einsum: axes of one operand labelled {c!r} differ in size "
                                 f"(shape {shape}, subscripts {term!r})")
        drop = [pos for pos, (c, n) in enumerate(zip(term, shape)) if n == 1 and sizes[c] != 1]
        squeezes.append(drop)
        canonical.append("".join(c for pos, c in enumerate(term) if pos not in drop))
    return canonical, out, squeezes


@register_function(np.einsum, examples=[
    _ex("ij,jk->ik", (3, 4), (4, 2)), _ex("ij,jk", (3, 4), (4, 2)), _ex("ii->", (3, 3)),
    _ex("ii->i", (3, 3)), _ex("ij->", (2, 3)), _ex("i,j->ij", (3,), (2,)),
    _ex("...ij,...jk->...ik", (2, 3, 4), (4, 5)), _ex("bij,bj->bi", (2, 3, 4), (2, 4)),
    _ex("ij,ij,ij->i", (2, 3), (2, 3), (2, 3), optimize=True), _ex("ijk->kj", (2, 3, 4)),
    _ex("ij,kj->", (3, 1), (2, 4))])
def einsum(*operands, out=None, optimize=False, **kwargs):
    if out is not None:
        raise TypeError("np.einsum(..., out=) is not supported for traced arrays: drop out=")
    for key, value in kwargs.items():
        if key == "dtype" and value is None or key == "order" and value in ("K", None) or \
                key == "casting" and value == "safe":
            continue
        raise TypeError(f"np.einsum(..., {key}={value!r}) is not supported for traced arrays")
    subscripts, arrays = _einsum_operands(operands)
    arrays = [a if getattr(a, "_ad_level", None) is not None else np.asarray(a) for a in arrays]
    terms, out_sub, squeezes = _canonical_einsum(subscripts, [shape_of(a) for a in arrays])
    for i, drop in enumerate(squeezes):
        if drop:
            kept = tuple(n for pos, n in enumerate(shape_of(arrays[i])) if pos not in drop)
            arrays[i] = np.reshape(arrays[i], kept)
    return einsum_rule(*arrays, subscripts=",".join(terms) + "->" + out_sub, optimize=optimize)


# -- composites: dot, inner, outer, tensordot, kron, vdot ------------------------
def _no_out(name, out):
    if out is not None:
        raise TypeError(f"np.{name}(..., out=) is not supported for traced arrays: drop out=")


@register_function(np.tensordot, examples=[
    _ex((3, 4), (4, 2), 1), _ex((2, 3, 4), (3, 4, 5)), _ex((2, 3, 4), (4, 3, 5), axes=([1, 2], [1, 0])),
    _ex((3,), (2,), 0), _ex((2, 3), (3, 2), axes=([0, 1], [1, 0])), _ex((2, 3), (3, 4), axes=(1, 0)),
    _ex((3, 4), (3, 4), 2)])
def tensordot(a, b, axes=2):
    a_shape, b_shape = shape_of(a), shape_of(b)
    try:
        iter(axes)
    except TypeError:
        axes_a, axes_b = list(range(-int(axes), 0)), list(range(0, int(axes)))
    else:
        axes_a, axes_b = axes
    axes_a = list(axes_a) if np.ndim(axes_a) else [axes_a]
    axes_b = list(axes_b) if np.ndim(axes_b) else [axes_b]
    if len(axes_a) != len(axes_b):
        raise ValueError(f"shape-mismatch for sum: np.tensordot axes {axes_a} and {axes_b} differ in length")
    axes_a = [normalize_axis(ax, len(a_shape)) for ax in axes_a]
    axes_b = [normalize_axis(ax, len(b_shape)) for ax in axes_b]
    if any(a_shape[i] != b_shape[j] for i, j in zip(axes_a, axes_b)):
        raise ValueError(f"shape-mismatch for sum: np.tensordot of shapes {a_shape} and {b_shape} "
                         f"over axes {axes_a} and {axes_b}")
    free_a = [i for i in range(len(a_shape)) if i not in axes_a]
    free_b = [j for j in range(len(b_shape)) if j not in axes_b]
    size = int(np.prod([a_shape[i] for i in axes_a], dtype=np.int64))
    a2 = np.reshape(np.transpose(a, free_a + axes_a), (-1, size)) if a_shape else np.reshape(a, (1, 1))
    b2 = np.reshape(np.transpose(b, axes_b + free_b), (size, -1)) if b_shape else np.reshape(b, (1, 1))
    out_shape = tuple(a_shape[i] for i in free_a) + tuple(b_shape[j] for j in free_b)
    return np.reshape(np.matmul(a2, b2), out_shape)


@register_function(np.dot, examples=[
    _ex((4,), (4,)), _ex((3, 4), (4,)), _ex((4,), (4, 2)), _ex((3, 4), (4, 2)), _ex((), (3,)),
    _ex((2, 3, 4), (4,)), _ex((4,), (2, 4, 3)), _ex((2, 3, 4), (5, 4, 2)), _ex((2, 3), (3, 2))])
def dot(a, b, out=None):
    _no_out("dot", out)
    if np.ndim(a) == 0 or np.ndim(b) == 0:
        return np.multiply(a, b)
    if np.ndim(b) <= 2 or np.ndim(a) == 1:
        return np.matmul(a, b)
    return tensordot(a, b, axes=([-1], [-2]))


@register_function(np.inner, examples=[_ex((4,), (4,)), _ex((3, 4), (4,)), _ex((2, 3, 4), (5, 4)),
                                       _ex((), (2, 3)), _ex((4,), (2, 4))])
def inner(a, b):
    if np.ndim(a) == 0 or np.ndim(b) == 0:
        return np.multiply(a, b)
    if np.ndim(b) == 1:
        return np.matmul(a, b)
    return tensordot(a, b, axes=([-1], [-1]))


@register_function(np.outer, examples=[_ex((3,), (2,)), _ex((2, 2), (3,)), _ex((), (2,))])
def outer(a, b, out=None):
    _no_out("outer", out)
    return np.multiply(np.reshape(a, (-1, 1)), np.reshape(b, (1, -1)))


@register_function(np.kron, examples=[_ex((2, 2), (3, 2)), _ex((3,), (2,)), _ex((2,), (3, 2)),
                                      _ex((2, 1, 2), (2, 3)), _ex((), (2, 2))])
def kron(a, b):
    a_shape, b_shape = shape_of(a), shape_of(b)
    nd = max(len(a_shape), len(b_shape))
    if nd == 0:
        return np.multiply(a, b)
    a_shape = (1,) * (nd - len(a_shape)) + a_shape
    b_shape = (1,) * (nd - len(b_shape)) + b_shape
    a_exp = np.reshape(a, tuple(n for m in a_shape for n in (m, 1)))  # (a0, 1, a1, 1, ...)
    b_exp = np.reshape(b, tuple(n for m in b_shape for n in (1, m)))  # (1, b0, 1, b1, ...)
    return np.reshape(np.multiply(a_exp, b_exp), tuple(m * n for m, n in zip(a_shape, b_shape)))


@register_function(np.vdot, examples=[_ex((4,), (4,)), _ex((2, 3), (3, 2)), _ex((2, 2), (4,))])
def vdot(a, b):
    a_flat, b_flat = np.reshape(a, (-1,)), np.reshape(b, (-1,))
    if shape_of(a_flat) != shape_of(b_flat):
        raise ValueError(f"np.vdot: cannot take the dot product of {shape_of(a)} and {shape_of(b)} "
                         "arrays: vectors have different lengths")
    return np.matmul(a_flat, b_flat)


@register_function(np.cross, examples=[_ex((3,), (3,)), _ex((4, 3), (3,)), _ex((2, 3, 2), (2, 1, 3), axisa=1),
                                       _ex((3, 2), (2, 3), axisa=0, axisc=0)])
def cross(a, b, axisa=-1, axisb=-1, axisc=-1, axis=None):
    """NumPy's formulas on the components (bilinear: products and differences of the table)."""
    if axis is not None:
        axisa = axisb = axisc = axis
    a, b = (x if getattr(x, "_ad_level", None) is not None else np.asarray(x) for x in (a, b))
    if np.ndim(a) < 1 or np.ndim(b) < 1:
        raise ValueError("At least one array has zero dimension")
    a = np.moveaxis(a, normalize_axis(axisa, np.ndim(a)), -1)
    b = np.moveaxis(b, normalize_axis(axisb, np.ndim(b)), -1)
    na, nb = np.shape(a)[-1], np.shape(b)[-1]
    if na != 3 or nb != 3:
        # NumPy 2 deprecates 2-vectors (with a DeprecationWarning); only 3-vectors are supported
        raise ValueError("np.cross of traced arrays supports 3-dimensional vectors only "
                         f"(got {na} and {nb} components; 2-vectors are deprecated by NumPy)")
    dtype = np.promote_types(_dtype(a), _dtype(b))
    a, b = (x if _dtype(x) == dtype else x.astype(dtype) for x in (a, b))
    a0, a1, a2 = (a[..., i] for i in range(3))
    b0, b1, b2 = (b[..., i] for i in range(3))
    cp = np.stack([a1 * b2 - a2 * b1, a2 * b0 - a0 * b2, a0 * b1 - a1 * b0], axis=-1)
    return np.moveaxis(cp, -1, normalize_axis(axisc, np.ndim(cp)))


def _dtype(x):
    while getattr(x, "_ad_level", None) is not None:
        x = x._ad_primal()
    return np.asarray(x).dtype


# -- vecdot, matvec, vecmat (NumPy 2.2 gufuncs): matmul of one-row / one-column matrices --------
def _gufunc_operand(x):
    return x if getattr(x, "_ad_level", None) is not None else np.asarray(x)


def _core_last(x, axes, name, which, signature, needs):
    """Operand ``x`` with its core axes (``axes``, default the last ``needs``) moved to the end,
    with NumPy's errors for too few dimensions."""
    if np.ndim(x) < needs:
        raise ValueError(f"{name}: Input operand {which} does not have enough dimensions (has "
                         f"{np.ndim(x)}, gufunc core with signature {signature} requires {needs})")
    if axes is None:
        return x
    axes = [normalize_axis(a, np.ndim(x)) for a in axes]
    return np.moveaxis(x, axes, list(range(-needs, 0)))


def _check_core(name, signature, operand, n_expected, n_got):
    if n_expected != n_got:
        raise ValueError(f"{name}: Input operand {operand} has a mismatch in its core dimension 0, "
                         f"with gufunc signature {signature} (size {n_got} is different from "
                         f"{n_expected})")


def _gufunc_axes(name, ncore, axes, axis):
    """Per-operand core axes from ``axes=`` / ``axis=`` (None: the last ones)."""
    if axes is not None and axis is not None:
        raise TypeError("cannot specify both 'axis' and 'axes'")
    if axis is not None:
        if ncore != (1, 1, 0):
            raise TypeError(f"{name}: 'axis' can only be used with a single shared core dimension; use 'axes'")
        return [(axis,), (axis,), None]
    if axes is None:
        return [None, None, None]
    axes = list(axes)
    if len(axes) == 2 and ncore[2] == 0:
        axes.append(())
    if len(axes) != 3:
        raise ValueError(f"{name}: axes should be a list with an entry for all 3 inputs and outputs")
    return [None if n == 0 else tuple(np.atleast_1d(a)) for a, n in zip(axes, ncore)]


@register_function(np.vecdot, examples=[_ex((4,), (4,)), _ex((2, 3), (3,)), _ex((3, 1, 4), (2, 4)),
                                        _ex((3, 2), (3, 2), axis=0)])
def vecdot(x1, x2, /, *, axes=None, axis=None):
    """``sum(x1 * x2, axis=-1)`` over broadcast stacks, as a matmul of a row by a column (NumPy's
    values; the operands are real, so x1 needs no conjugate)."""
    sig = "(n),(n)->()"
    a_axes, b_axes, _ = _gufunc_axes("vecdot", (1, 1, 0), axes, axis)
    a = _core_last(_gufunc_operand(x1), a_axes, "vecdot", 0, sig, 1)
    b = _core_last(_gufunc_operand(x2), b_axes, "vecdot", 1, sig, 1)
    _check_core("vecdot", sig, 1, np.shape(a)[-1], np.shape(b)[-1])
    return np.matmul(a[..., None, :], b[..., :, None])[..., 0, 0]


@register_function(np.matvec, examples=[_ex((3, 4), (4,)), _ex((2, 3, 4), (4,)), _ex((3, 4), (2, 4)),
                                        _ex((4, 3), (4,), axes=[(1, 0), (0,), (0,)])])
def matvec(x1, x2, /, *, axes=None):
    """``x1 @ x2[..., None]`` for stacks of matrices and vectors (NumPy's values)."""
    sig = "(m,n),(n)->(m)"
    a_axes, b_axes, out_axes = _gufunc_axes("matvec", (2, 1, 1), axes, None)
    a = _core_last(_gufunc_operand(x1), a_axes, "matvec", 0, sig, 2)
    b = _core_last(_gufunc_operand(x2), b_axes, "matvec", 1, sig, 1)
    _check_core("matvec", sig, 1, np.shape(a)[-1], np.shape(b)[-1])
    out = np.matmul(a, b[..., :, None])[..., 0]
    return out if out_axes is None else np.moveaxis(out, -1, out_axes[0])


@register_function(np.vecmat, examples=[_ex((3,), (3, 4)), _ex((2, 3), (3, 4)), _ex((3,), (2, 3, 4)),
                                        _ex((3,), (4, 3), axes=[(0,), (1, 0), (0,)])])
def vecmat(x1, x2, /, *, axes=None):
    """``x1[..., None, :] @ x2`` for stacks of vectors and matrices (NumPy's values; the operands
    are real, so x1 needs no conjugate)."""
    sig = "(n),(n,m)->(m)"
    a_axes, b_axes, out_axes = _gufunc_axes("vecmat", (1, 2, 1), axes, None)
    a = _core_last(_gufunc_operand(x1), a_axes, "vecmat", 0, sig, 1)
    b = _core_last(_gufunc_operand(x2), b_axes, "vecmat", 1, sig, 2)
    _check_core("vecmat", sig, 1, np.shape(a)[-1], np.shape(b)[-2])
    out = np.matmul(a[..., None, :], b)[..., 0, :]
    return out if out_axes is None else np.moveaxis(out, -1, out_axes[0])
