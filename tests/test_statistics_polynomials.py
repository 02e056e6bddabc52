"""Quantiles, cov/corrcoef, the NaN scans, the small numerics helpers and the np.poly* API:
NumPy's values (exactly), finite differences, forward against reverse mode, float32, batched
inputs, second derivatives, and the documented conventions and errors."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import dualad
import reversead
from dualad import DerivativeDropError, MissingRuleError, UndefinedDerivativeError
from dualad.testing import numerical_jacobian

METHODS = ["linear", "lower", "higher", "nearest", "midpoint", "inverted_cdf",
           "averaged_inverted_cdf", "closest_observation", "interpolated_inverted_cdf", "hazen",
           "weibull", "median_unbiased", "normal_unbiased"]


def _both(f, x):
    """Forward and reverse Jacobians, checked against each other; returns the forward one."""
    jf, jr = dualad.jacobian(f, x), reversead.jacobian(f, x)
    for a, b in zip(jf if isinstance(jf, tuple) else (jf,), jr if isinstance(jr, tuple) else (jr,)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    return jf


def _check(f, x, rtol=1e-6, atol=1e-8):
    """Values as NumPy's (bit for bit), both modes, against central differences."""
    value = dualad.DualArray(x, np.zeros((1,) + np.shape(x)))
    np.testing.assert_array_equal(np.asarray(f(value).primal), f(x))
    J = _both(f, x)
    np.testing.assert_allclose(J, numerical_jacobian(f, x), rtol=rtol, atol=atol)
    return J


# -- quantiles -------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", METHODS)
def test_quantile_every_method(method, rng):
    x = rng.standard_normal((3, 7))
    for q in (0.37, [0.0, 0.2, 0.5, 0.93, 1.0]):
        _check(lambda a: np.quantile(a, q, axis=1, method=method), x)
        _check(lambda a: np.percentile(a, np.multiply(q, 100), axis=0, method=method, keepdims=True), x)


def test_quantile_axes_keepdims_and_values(rng):
    x = rng.standard_normal((2, 3, 4))
    for axis in (None, 0, -1, (0, 2), (2, 1)):
        for keepdims in (False, True):
            _check(lambda a: np.quantile(a, [0.3, 0.75], axis=axis, keepdims=keepdims), x)
    # a Dual scalar and a 0-d input
    d = dualad.Dual(1.5, 1.0)
    assert np.quantile(d, 0.3).tangent.ravel()[0] == 1.0  # (a 0-d DualArray, as np.median gives)


def test_quantile_weights_are_the_order_statistics(rng):
    # sorted x = [1, 2, 4, 8]; q=0.5 linear: vi = 1.5 -> 0.5 * (x=2) + 0.5 * (x=4)
    x = np.array([8.0, 2.0, 1.0, 4.0])
    np.testing.assert_array_equal(dualad.gradient(lambda a: np.quantile(a, 0.5), x), [0, 0.5, 0, 0.5])
    np.testing.assert_array_equal(reversead.gradient(lambda a: np.percentile(a, 50, method="lower"), x),
                                  [0, 1, 0, 0])


def test_quantile_ties_split_equally():
    x = np.array([1.0, 3.0, 3.0, 5.0])  # q=0.5: (s[1] + s[2]) / 2, both tied at 3
    g = dualad.gradient(lambda a: np.quantile(a, 0.5), x)
    np.testing.assert_array_equal(g, [0, 0.5, 0.5, 0])
    g = reversead.gradient(lambda a: np.quantile(a, 0.4, method="lower"), x)  # s[1] = 3, tied
    np.testing.assert_array_equal(g, [0, 0.5, 0.5, 0])
    # agrees with np.median's convention
    y = np.array([2.0, 2.0, 1.0, 7.0, 2.0])
    np.testing.assert_array_equal(dualad.gradient(lambda a: np.quantile(a, 0.5), y),
                                  dualad.gradient(np.median, y))


def test_quantile_float32_batched_hessian(rng):
    x = rng.standard_normal((4, 5)).astype(np.float32)
    f = lambda a: np.quantile(a, 0.3, axis=1)  # noqa: E731
    jf, jr = dualad.jacobian(f, x), reversead.jacobian(f, x)
    assert jf.dtype == np.float32 and jr.dtype == np.float32
    np.testing.assert_array_equal(jf, jr)
    np.testing.assert_allclose(jf, numerical_jacobian(f, x.astype(np.float64)), atol=1e-5)
    # piecewise linear: zero Hessian, in both modes
    h = lambda a: np.sum(np.quantile(a, [0.2, 0.9], axis=0) ** 2)  # noqa: E731
    x64 = x.astype(np.float64)
    H, Hr = dualad.hessian(h, x64), reversead.hessian(h, x64)
    np.testing.assert_allclose(H, Hr, atol=1e-12)
    np.testing.assert_allclose(H, numerical_jacobian(lambda a: dualad.gradient(h, a), x64), atol=1e-6)


def test_quantile_traced_q(rng):
    x = rng.standard_normal(6)
    q = np.array([0.13, 0.5, 0.77])
    s = np.sort(x)
    J = _both(lambda qq: np.quantile(x, qq), q)
    j = np.floor(5 * q).astype(int)
    np.testing.assert_allclose(np.diag(J), 5 * (s[j + 1] - s[j]), rtol=1e-12)
    Jx, Jq = _both(lambda a, qq: np.percentile(a, qq, axis=0), (x, 100 * q))
    Jq_fd = numerical_jacobian(lambda qq: np.percentile(x, qq, axis=0), 100 * q)
    np.testing.assert_allclose(Jq, Jq_fd, rtol=1e-6)
    # at q = 1 the last segment's slope
    g = dualad.derivative(lambda qq: np.quantile(x, qq), 1.0)
    assert np.isclose(g, 5 * (s[-1] - s[-2]))
    # mixed second derivative d2/dq da (through the order statistics) against differences
    f = lambda a, qq: np.quantile(a, qq) * a[0]  # noqa: E731
    H = dualad.hessian(lambda v: f(v[:6], v[6]), np.append(x, 0.43))
    Hr = reversead.hessian(lambda v: f(v[:6], v[6]), np.append(x, 0.43))
    np.testing.assert_allclose(H, Hr, atol=1e-12)
    H_fd = numerical_jacobian(lambda v: dualad.gradient(lambda w: f(w[:6], w[6]), v), np.append(x, 0.43))
    np.testing.assert_allclose(H, H_fd, atol=1e-6)
    with pytest.raises(MissingRuleError, match="traced q"):
        dualad.gradient(lambda qq: np.quantile(x, qq, method="hazen"), 0.3)


def test_quantile_with_weights(rng):
    x = rng.standard_normal((2, 6))
    w = rng.uniform(0.5, 2.0, 6)
    f = lambda a: np.quantile(a, [0.3, 0.8], axis=1, method="inverted_cdf", weights=w)  # noqa: E731
    J = _check(f, x)
    assert set(np.unique(J)) <= {0.0, 1.0}
    # traced weights: piecewise constant, zero derivative
    g = dualad.gradient(lambda ww: np.sum(np.quantile(x[0], 0.3, method="inverted_cdf", weights=ww)), w)
    np.testing.assert_array_equal(g, 0)
    with pytest.raises(ValueError, match="Only method 'inverted_cdf' supports weights"):
        dualad.gradient(lambda a: np.quantile(a, 0.5, weights=w), x[0])


def test_quantile_nan_conventions(rng):
    x = rng.standard_normal((3, 5))
    x[0, 1] = x[2, 4] = np.nan
    x[1] = np.nan
    with pytest.warns(RuntimeWarning, match="All-NaN"):
        want = np.nanquantile(x, [0.25, 0.5], axis=1)
    with pytest.warns(RuntimeWarning, match="All-NaN"):
        J = dualad.jacobian(lambda a: np.nanquantile(a, [0.25, 0.5], axis=1), x)
        Jr = reversead.jacobian(lambda a: np.nanquantile(a, [0.25, 0.5], axis=1), x)
        got = np.nanquantile(dualad.DualArray(x, np.zeros((1, 3, 5))), [0.25, 0.5], axis=1).primal
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(J, Jr)
    assert np.all(J[:, 1] == 0) and np.all(J[..., 1, :] == 0)  # the all-NaN row: zero
    assert np.all(J[:, :, 0, 1] == 0) and np.all(J[:, :, 2, 4] == 0)  # NaN entries: zero
    # the non-NaN rows: differences over the finite entries
    finite = lambda v: np.nanquantile(np.concatenate([v[:1], [np.nan], v[1:]]), 0.5)  # noqa: E731
    v = x[0, [0, 2, 3, 4]]
    g = dualad.gradient(finite, v)
    np.testing.assert_allclose(g, numerical_jacobian(finite, v), atol=1e-8)
    # plain quantile of a slice with a NaN: NumPy's NaN, a NaN derivative
    J = dualad.jacobian(lambda a: np.quantile(a, 0.5, axis=1), x[[0, 2]])
    assert np.all(np.isnan(J[0])) and np.all(np.isnan(J[1]))
    J = dualad.jacobian(lambda a: np.nanpercentile(a, 40.0), x[0])
    assert np.all(np.isfinite(J)) and J[1] == 0


def test_quantile_errors(rng):
    x = dualad.DualArray(rng.standard_normal(4), np.eye(4))
    with pytest.raises(ValueError, match="Quantiles must be in the range"):
        np.quantile(x, 1.5)
    with pytest.raises(ValueError, match="Percentiles must be in the range"):
        np.percentile(x, -1)
    with pytest.raises(ValueError, match="is not a valid method"):
        np.quantile(x, 0.5, method="spline")
    with pytest.raises(TypeError, match="out="):
        np.quantile(x, 0.5, out=np.zeros(()))
    with pytest.raises(np.exceptions.AxisError):
        np.quantile(x, 0.5, axis=2)
    assert np.quantile(x, 0.5, overwrite_input=True).primal == np.quantile(x.primal, 0.5)


# -- nancumsum, nancumprod ----------------------------------------------------------------------
@pytest.mark.parametrize("func", [np.nancumsum, np.nancumprod])
def test_nan_scans(func, rng):
    x = rng.standard_normal((3, 4))
    x[1, 2] = x[0, 0] = np.nan
    for axis in (None, 0, 1):
        f = lambda a: func(a, axis=axis)  # noqa: E731
        np.testing.assert_array_equal(f(dualad.DualArray(x, np.zeros((1, 3, 4)))).primal, f(x))
        J = _both(f, x)
        assert np.all(np.isfinite(J))
        flat_nan = np.isnan(x).reshape(-1)
        assert np.all(J.reshape(J.shape[:J.ndim - 2] + (-1,))[..., flat_nan] == 0)
        # the finite entries against differences (NaN entries held)
        place = np.eye(12)[:, ~np.isnan(x).reshape(-1)]  # the finite entries into x's places

        def g(v, axis=axis, place=place):
            a = np.where(np.isnan(x), np.nan, np.reshape(place @ v, (3, 4)))
            return func(a, axis=axis)
        v = x[~np.isnan(x)]
        np.testing.assert_allclose(dualad.jacobian(g, v), numerical_jacobian(g, v), atol=1e-7)
    with pytest.raises(TypeError, match="out="):
        func(dualad.DualArray(x, np.zeros((1, 3, 4))), out=np.zeros(12))


# -- cov, corrcoef -----------------------------------------------------------------------------------
def test_cov_corrcoef(rng):
    m = rng.standard_normal((3, 6))
    y = rng.standard_normal((6,))
    fw, aw = np.array([1, 2, 1, 3, 1, 2]), rng.uniform(0.5, 2.0, 6)
    cases = [dict(), dict(bias=True), dict(ddof=2), dict(fweights=fw), dict(aweights=aw),
             dict(fweights=fw, aweights=aw), dict(aweights=aw, ddof=0)]
    for kw in cases:
        _check(lambda a: np.cov(a, **kw), m)
    _check(lambda a: np.cov(a, y[:, None], rowvar=False), m.T)
    _check(lambda a: np.corrcoef(a), m)
    _check(lambda a: np.corrcoef(a, y, rowvar=True), m)
    J = _both(lambda a: np.corrcoef(a), m)
    np.testing.assert_allclose(J[[0, 1, 2], [0, 1, 2]], 0, atol=1e-12)  # the diagonal, 1
    # float32 in: NumPy's float64 out; dtype=float32 keeps float32
    m32 = m.astype(np.float32)
    f = lambda a: np.cov(a, dtype=np.float32)  # noqa: E731
    np.testing.assert_array_equal(f(dualad.DualArray(m32, np.zeros((1, 3, 6), np.float32))).primal, f(m32))
    assert dualad.jacobian(f, m32).dtype == np.float32
    H = dualad.hessian(lambda a: np.sum(np.cov(a) ** 2), m)
    np.testing.assert_allclose(H, reversead.hessian(lambda a: np.sum(np.cov(a) ** 2), m), atol=1e-10)
    with pytest.raises(MissingRuleError, match="traced weights"):
        dualad.gradient(lambda w: np.sum(np.cov(m, aweights=w)), aw)
    with pytest.raises(TypeError, match="fweights must be integer"):
        np.cov(dualad.DualArray(m, np.zeros((1, 3, 6))), fweights=aw)


# -- sinc, fix, nan_to_num, real, imag, angle, ediff1d, unwrap --------------------------------------
def test_sinc(rng):
    x = np.array([-1.3, -0.004, 0.0, 1e-9, 0.2, 2.5])
    _check(np.sinc, x)
    # second derivatives, also at and near 0 (sinc''(0) = -pi^2 / 3)
    h = lambda v: np.sum(np.sinc(v))  # noqa: E731
    H = dualad.hessian(h, x)
    np.testing.assert_allclose(H, reversead.hessian(h, x), atol=1e-12)
    assert np.isclose(H[2, 2], -np.pi ** 2 / 3, rtol=1e-12)
    np.testing.assert_allclose(np.diag(H), np.diag(numerical_jacobian(lambda v: dualad.gradient(h, v), x)),
                               rtol=1e-6, atol=1e-6)
    assert dualad.jacobian(np.sinc, x.astype(np.float32)).dtype == np.float32


def test_piecewise_constant_and_selects(rng):
    x = np.array([-2.5, -0.3, 0.0, 0.7, 3.2])
    for f in (np.fix, np.imag, np.angle, lambda a: np.angle(a, deg=True)):
        np.testing.assert_array_equal(f(dualad.DualArray(x, np.ones((1, 5)))), f(x))
        np.testing.assert_array_equal(_both(lambda a, f=f: f(a) * a, x), np.diag(f(x)))
    np.testing.assert_array_equal(_both(np.real, x), np.eye(5))
    y = np.array([1.0, np.nan, np.inf, -np.inf, -2.0])
    for kw in (dict(), dict(nan=1.5, posinf=9.0, neginf=-9.0)):
        got = np.nan_to_num(dualad.DualArray(y, np.ones((1, 5))), **kw)
        np.testing.assert_array_equal(got.primal, np.nan_to_num(y, **kw))
        np.testing.assert_array_equal(got.tangent[0], [1, 0, 0, 0, 1])
    J = reversead.jacobian(lambda a: np.nan_to_num(a), y)
    np.testing.assert_array_equal(np.diag(J), [1, 0, 0, 0, 1])
    # a traced replacement value gets the derivative where it is used
    f = lambda v: np.sum(np.nan_to_num(y + v[1], nan=v[0], posinf=1.0, neginf=0.0))  # noqa: E731
    np.testing.assert_array_equal(dualad.gradient(f, np.array([0.5, 2.0])), [1.0, 2.0])
    np.testing.assert_array_equal(reversead.gradient(f, np.array([0.5, 2.0])), [1.0, 2.0])


def test_ediff1d_unwrap(rng):
    x = rng.standard_normal((2, 3))
    _check(np.ediff1d, x)
    _check(lambda a: np.ediff1d(a, to_begin=[1.0, 2.0], to_end=-3.0), x)
    J = _both(lambda b: np.ediff1d(x, to_begin=b), np.array([0.5, 1.5]))
    np.testing.assert_array_equal(J[:2], np.eye(2))
    with pytest.raises(TypeError, match="same_kind"):
        np.ediff1d(dualad.DualArray(x, np.zeros((1, 2, 3))), to_end=np.array([1 + 2j]))
    p = np.cumsum(rng.uniform(-3, 3, (3, 8)), axis=1)
    for kw in (dict(), dict(axis=0), dict(period=4.0), dict(discont=4.0)):
        J = _check(lambda a: np.unwrap(a, **kw), p)
        np.testing.assert_array_equal(J.reshape(24, 24), np.eye(24))
    with pytest.raises(MissingRuleError, match="period"):
        dualad.gradient(lambda v: np.unwrap(v[:-1], period=v[-1])[3], np.append(p[0], 4.0))


# -- polynomials --------------------------------------------------------------------------------------
def test_poly_arithmetic(rng):
    a, b = rng.standard_normal(4), rng.standard_normal(2)
    for f in (np.polyadd, np.polysub, np.polymul):
        _check(lambda u: f(u, b), a)
        _check(lambda v: f(a, v), b)
    for m in (0, 1, 3):
        _check(lambda u: np.polyder(u, m), a)
    _check(lambda u: np.polyint(u), a)
    _check(lambda u: np.polyint(u, 3, k=[1.0, 2.0, 3.0]), a)
    J = _both(lambda v: np.polyint(v[:4], 2, k=v[4:]), np.append(a, [0.5, -1.0]))
    np.testing.assert_array_equal(J[-2:, -2:], np.eye(2))
    H = dualad.hessian(lambda u: np.sum(np.polymul(u, u) ** 2), a)
    np.testing.assert_allclose(H, reversead.hessian(lambda u: np.sum(np.polymul(u, u) ** 2), a), atol=1e-10)
    with pytest.raises(DerivativeDropError, match="leading zero"):
        dualad.jacobian(lambda u: np.polymul(u, b), np.array([0.0, 1.0, 2.0]))
    with pytest.raises(ValueError, match="Order of derivative"):
        np.polyder(dualad.DualArray(a, np.zeros((1, 4))), -1)


def test_polydiv_vander_poly(rng):
    u, v = rng.standard_normal(6), rng.standard_normal(3)
    for f in (lambda a: np.polydiv(a, v)[0], lambda a: np.polydiv(a, v)[1]):
        _check(f, u)
    for f in (lambda b: np.polydiv(u, b)[0], lambda b: np.polydiv(u, b)[1]):
        _check(f, v, rtol=1e-5)
    _check(lambda a: np.vander(a), v)
    _check(lambda a: np.vander(a, 5, increasing=True), np.array([0.0, 1.5, -2.0]))
    z = np.array([-1.0, 0.5, 2.0])
    _check(np.poly, z)
    with pytest.raises(MissingRuleError, match="square matrix"):
        np.poly(dualad.DualArray(np.eye(2), np.zeros((1, 2, 2))))


def test_roots(rng):
    z = np.array([-1.5, 0.25, 2.0])
    p = 1.7 * np.poly(z)
    r = np.roots(p)
    J = _both(np.roots, p)
    # implicit derivative: dr_i/dp_j = -r_i^(n-j) / p'(r_i)
    n = len(p) - 1
    want = -r[:, None] ** np.arange(n, -1, -1) / np.polyval(np.polyder(p), r)[:, None]
    np.testing.assert_allclose(J, want, rtol=1e-10)
    np.testing.assert_allclose(J, numerical_jacobian(np.roots, p), rtol=1e-6)
    np.testing.assert_array_equal(np.roots(dualad.DualArray(p, np.zeros((1, 4)))).primal, r)
    # second derivatives against differences of the gradient
    h = lambda c: np.sum(np.roots(c) ** 3)  # noqa: E731
    H = dualad.hessian(h, p)
    np.testing.assert_allclose(H, reversead.hessian(h, p), rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(H, numerical_jacobian(lambda c: dualad.gradient(h, c), p), rtol=1e-5, atol=1e-6)
    with pytest.raises(UndefinedDerivativeError, match="complex"):
        dualad.jacobian(np.roots, np.array([1.0, 0.0, 1.0]))
    with pytest.raises(UndefinedDerivativeError, match="repeated"):
        dualad.jacobian(np.roots, np.poly([1.0, 1.0, 3.0]))  # (rounding splits it: a complex pair)
    with pytest.raises(UndefinedDerivativeError, match="repeated"):
        dualad.jacobian(np.roots, np.array([1.0, -2.0, 1.0 - 1e-20, 0.0]))


def test_polyfit(rng):
    x = np.linspace(-1, 1, 7) + rng.uniform(-0.05, 0.05, 7)
    y = rng.standard_normal(7)
    w = rng.uniform(0.5, 2.0, 7)
    for kw in (dict(), dict(w=w)):
        _check(lambda b: np.polyfit(x, b, 2, **kw), y)
        _check(lambda a: np.polyfit(a, y, 3, **kw), x, rtol=1e-5)
    # the fit is linear in y: the Jacobian is the pseudo-inverse of the Vandermonde matrix
    np.testing.assert_allclose(_both(lambda b: np.polyfit(x, b, 2), y), np.linalg.pinv(np.vander(x, 3)),
                               rtol=1e-10, atol=1e-12)
    full = np.polyfit(dualad.DualArray(x, np.zeros((1, 7))), y, 2, full=True)
    for got, want in zip(full, np.polyfit(x, y, 2, full=True)):
        np.testing.assert_allclose(getattr(got, "primal", got), want, rtol=1e-15)
    with pytest.raises(MissingRuleError, match="cov=True"):
        np.polyfit(dualad.DualArray(x, np.zeros((1, 7))), y, 2, cov=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(TypeError, match="expected x and y to have same length"):
            np.polyfit(dualad.DualArray(x, np.zeros((1, 7))), y[:5], 2)


# -- i0, logspace, geomspace, gradient --------------------------------------------------------------
def test_i0(rng):
    x = np.array([-30.0, -8.0, -1.2, 0.0, 0.3, 7.99, 8.01, 24.9, 25.1, 40.0])
    J = _check(np.i0, x, rtol=1e-7)
    assert J[3, 3] == 0.0
    # i0'' = i0 - i1 / x (and 1/2 at 0), against differences of the gradient
    y = x[[2, 3, 6, 8]]
    h = lambda v: np.sum(np.i0(v))  # noqa: E731
    H = dualad.hessian(h, y)
    np.testing.assert_allclose(H, reversead.hessian(h, y), rtol=1e-12)
    assert np.isclose(H[1, 1], 0.5, rtol=1e-14)
    np.testing.assert_allclose(np.diag(H), np.diag(numerical_jacobian(lambda v: dualad.gradient(h, v), y)),
                               rtol=1e-6)
    assert dualad.jacobian(np.i0, x.astype(np.float32)).dtype == np.float32
    # i1 by its integral i1(x) = (1/pi) int_0^pi exp(x cos t) cos t dt
    t = np.linspace(0, np.pi, 20001)
    i1 = [np.trapezoid(np.exp(v * np.cos(t)) * np.cos(t), t) / np.pi for v in (-1.2, 0.3, 8.01, 25.1)]
    np.testing.assert_allclose(np.diag(J)[[2, 4, 6, 8]], i1, rtol=1e-8)


def test_logspace_geomspace(rng):
    _check(lambda v: np.logspace(v[0], v[1], 6), np.array([0.2, 1.7]))
    _check(lambda v: np.logspace(v[:2], v[2:], 4, base=2.0, axis=1), np.array([0.2, 1.7, -1.0, 0.5]))
    _check(lambda b: np.logspace(0.5, [1.0, 2.0], 3, base=b), np.array([2.0, 3.5]))
    for start, stop in ((0.5, 8.0), (-3.0, -0.1)):
        _check(lambda v: np.geomspace(v[0], v[1], 5), np.array([start, stop]))
        J = _both(lambda v: np.geomspace(v[0], v[1], 5), np.array([start, stop]))
        np.testing.assert_array_equal(J[0], [1, 0])  # the ends are start and stop themselves
        np.testing.assert_array_equal(J[-1], [0, 1])
    _check(lambda v: np.geomspace(v[:2], v[2:], 4, endpoint=False, axis=1), np.array([0.5, 1.0, 3.0, 9.0]))
    with pytest.raises(ValueError, match="cannot include zero"):
        np.geomspace(dualad.DualArray(np.array(0.0), np.ones(1)), 1.0)


def test_gradient(rng):
    f = rng.standard_normal((5, 4))
    x = np.cumsum(rng.uniform(0.5, 1.5, 5))
    for args, kw in (((), {}), ((0.5,), {}), ((0.5, 2.0), {"edge_order": 2}), ((x,), {"axis": 0}),
                     ((x,), {"axis": 0, "edge_order": 2}), ((x, 1.5), {})):
        out = np.gradient(f, *args, **kw)
        got = np.gradient(dualad.DualArray(f, np.zeros((1, 5, 4))), *args, **kw)
        for a, b in zip(got if isinstance(got, tuple) else (got,), out if isinstance(out, tuple) else (out,)):
            np.testing.assert_array_equal(a.primal, b)
        g = lambda a, args=args, kw=kw: np.stack(np.gradient(a, *args, **kw)) if not kw.get("axis") == 0 \
            else np.gradient(a, *args, **kw)  # noqa: E731
        np.testing.assert_allclose(_both(g, f), numerical_jacobian(g, f), atol=1e-7)
    # differentiable in the coordinates (non-uniform spacing)
    g = lambda c: np.gradient(f[:, 0], c, edge_order=2)  # noqa: E731
    np.testing.assert_allclose(_both(g, x), numerical_jacobian(g, x), rtol=1e-6, atol=1e-7)
    with pytest.raises(ValueError, match="too small"):
        np.gradient(dualad.DualArray(np.ones(2), np.ones((1, 2))), edge_order=2)
    with pytest.raises(TypeError, match="invalid number of arguments"):
        np.gradient(dualad.DualArray(f, np.zeros((1, 5, 4))), 1.0, 2.0, 3.0)
    # a linear function's gradient is exact, at second order ends too
    lin = 3.0 * x - 1.0
    np.testing.assert_allclose(np.gradient(dualad.DualArray(lin, np.ones((1, 5))), x, edge_order=2).primal,
                               3.0, rtol=1e-12)
