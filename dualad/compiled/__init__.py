"""Compiled dual numbers: differentiate ``@numba.njit`` scalar-loop code at native speed (issue 5).

``dualad.jit(f)`` is the dual version of an njit ``f``; ``dualad.jvp / derivative /
gradient / jacobian`` given an njit ``f`` run it through the same compiled path. The dual
type and its operators live in :mod:`dualad.compiled.types` (generated from the rule
table), the entry points and caches in :mod:`dualad.compiled.entry`. Importing this package
does not import Numba: the first call does.

Supported inside ``f``: ``+ - * / ** %``, unary ``-``/``+``, ``abs``, comparisons (on the
primal, so branches work), ``math.*`` and ``np.*`` scalar functions of the table, floats
and duals mixed both ways, float32. Inputs are floats and 1-D float arrays (seen by ``f``
as tuples of duals); outputs a float, a tuple of floats or a 1-D array.

Nesting: the dual type carries its level, and an enclosing dualad transform's duals may be
passed in (``dualad.derivative(lambda x: dualad.derivative(f, x), 1.0)``, ``hessian``):
they become level-1 duals under the level-2 perturbation of the inner call, so the two are
never confused. Deeper nesting raises :class:`~dualad.errors.PerturbationError`.
"""
from __future__ import annotations


def jit(f):
    """The compiled dual version of ``f`` (an ``@numba.njit`` function); see :func:`dualad.compiled.entry.jit`."""
    from . import entry as _jit
    return _jit.jit(f)


def jvp(f, x, v):
    from . import entry as _jit
    return _jit.jvp(f, x, v)


def derivative(f, x):
    from . import entry as _jit
    return _jit.derivative(f, x)


def gradient(f, x, chunk=None):
    from . import entry as _jit
    return _jit.gradient(f, x, chunk)


def jacobian(f, x, chunk=None):
    from . import entry as _jit
    return _jit.jacobian(f, x, chunk)


__all__ = ["jit", "jvp", "derivative", "gradient", "jacobian"]
