"""Errors, not wrong answers: every misuse raises an exception whose message names the problem."""
from __future__ import annotations

import numpy as np
import pytest

import dualad
from dualad import (ADError, DerivativeDropError, Dual, DualArray, MissingRuleError, NonNumericError,
                    PerturbationError, ShapeError)


# -- jvp: tangents that do not fit --------------------------------------------------------
def test_jvp_tangent_of_wrong_shape():
    with pytest.raises(ShapeError, match=r"tangent v has shape \(4,\).*input has shape \(3,\)"):
        dualad.jvp(np.sin, np.ones(3), np.ones(4))
    with pytest.raises(ShapeError, match=r"\(2, 3\)"):
        dualad.jvp(np.sin, np.ones((2, 3)), np.ones((3, 2)))
    with pytest.raises(ShapeError, match=r"tangent v\[1\] has shape"):
        dualad.jvp(lambda a, b: a * b, (np.ones(2), np.ones(3)), (np.ones(2), np.ones(2)))


def test_jvp_tangent_of_wrong_structure():
    with pytest.raises(ShapeError, match="tuple/list of 2 tangents"):
        dualad.jvp(lambda a, b: a * b, (np.ones(3), np.ones(3)), np.ones(3))
    with pytest.raises(ShapeError, match="of length 1"):
        dualad.jvp(lambda a, b: a * b, (1.0, 2.0), (1.0,))
    with pytest.raises(ShapeError):
        dualad.jvp(np.sin, 1.0, np.ones(2))


def test_jvp_non_numeric_tangent():
    with pytest.raises(TypeError, match="tangent"):
        dualad.jvp(np.sin, np.ones(2), np.array(["a", "b"]))


# -- gradient / derivative of the wrong kind of function -----------------------------------
def test_gradient_of_non_scalar_function_suggests_jacobian():
    with pytest.raises(ShapeError, match=r"shape \(3,\).*jacobian"):
        dualad.gradient(np.sin, np.ones(3))
    with pytest.raises(ShapeError, match="tuple.*jacobian"):
        dualad.gradient(lambda x: (x[0], x[1]), np.ones(2))
    with pytest.raises(ShapeError, match="jacobian"):
        dualad.hessian(lambda x: x * 2.0, np.ones(2))


def test_derivative_of_non_scalar_input():
    with pytest.raises(ShapeError, match=r"scalar input.*\(2,\).*gradient"):
        dualad.derivative(np.sin, np.ones(2))
    with pytest.raises(ShapeError, match="scalar"):
        dualad.derivative(np.sin, (1.0, 2.0))


# -- f returning something that is not a number -----------------------------------------------
@pytest.mark.parametrize("transform", ["jacobian", "gradient", "jvp", "derivative"])
@pytest.mark.parametrize("result, words", [
    ("a string", "got str"), (None, "got NoneType"), (object(), "got object"),
    (np.array(["a", "b"]), "dtype <U1"), (np.array([1, "a"], dtype=object), "object array"),
])
def test_f_returning_non_numeric(transform, result, words):
    x = 1.5 if transform == "derivative" else np.ones(2)
    call = {"jacobian": lambda f: dualad.jacobian(f, x), "gradient": lambda f: dualad.gradient(f, x),
            "jvp": lambda f: dualad.jvp(f, x, np.ones(2)), "derivative": lambda f: dualad.derivative(f, x)}
    if transform == "gradient" and isinstance(result, np.ndarray):
        words = "shape"  # a non-scalar is refused first
    with pytest.raises((NonNumericError, ShapeError), match=words):
        call[transform](lambda x: result)


def test_f_returning_non_numeric_inside_a_structure_names_the_path():
    with pytest.raises(NonNumericError, match=r"f\(x\)\[1\]\['b'\]"):
        dualad.jacobian(lambda x: (x, {"a": x, "b": "oops"}), np.ones(2))


def test_object_array_of_duals_is_refused():
    with pytest.raises(ADError, match=r"DualArray|\.primal|np\.stack"):
        dualad.derivative(lambda x: np.array([x, 2 * x], dtype=object), 1.0)


def test_non_numeric_input():
    for bad in ("abc", None, {"a": 1.0}):
        with pytest.raises((NonNumericError, TypeError), match="x"):
            dualad.jacobian(np.sin, bad)
    with pytest.raises(TypeError, match="dtype"):
        dualad.gradient(np.sum, np.array(["1", "2"]))
    with pytest.raises(ValueError, match="empty"):
        dualad.jacobian(lambda *a: 0.0, ())


# -- complex numbers -----------------------------------------------------------------------
@pytest.mark.parametrize("call", [
    lambda: dualad.jacobian(np.sin, np.ones(3) + 1j),
    lambda: dualad.gradient(np.sum, np.array([1.0 + 2.0j])),
    lambda: dualad.derivative(np.sin, 1.0 + 1.0j),
    lambda: dualad.hessian(np.sum, np.array([1j])),
    lambda: dualad.jvp(np.sin, np.ones(2), np.ones(2) + 1j),
    lambda: Dual(1.0 + 2.0j, 1.0),
    lambda: DualArray(np.ones(2) * 1j),
], ids=["jacobian", "gradient", "derivative", "hessian", "jvp-tangent", "Dual", "DualArray"])
def test_complex_input_is_refused(call):
    with pytest.raises(TypeError, match=r"complex.*not supported"):
        call()


# -- conversions that would drop the derivative -------------------------------------------------
@pytest.mark.parametrize("convert", [float, int, np.asarray, np.array, complex],
                         ids=["float", "int", "asarray", "array", "complex"])
@pytest.mark.parametrize("value", [Dual(1.5, 1.0), DualArray(np.array([1.5]), np.ones((1, 1)))],
                         ids=["Dual", "DualArray"])
def test_conversions_drop_the_derivative(convert, value):
    if convert is complex and isinstance(value, Dual):
        pytest.skip("complex(Dual) falls back to float()")  # same error via __float__
    with pytest.raises(DerivativeDropError, match=r"drop.*\.primal|\.primal"):
        convert(value)


def test_conversion_inside_differentiated_function():
    with pytest.raises(DerivativeDropError, match=r"float\(\).*\.primal"):
        dualad.derivative(lambda x: float(x) ** 2, 1.0)
    with pytest.raises(DerivativeDropError, match=r"\.primal"):
        dualad.gradient(lambda x: np.sum(np.asarray(x)), np.ones(2))
    with pytest.raises(DerivativeDropError):
        dualad.gradient(lambda x: x.item(), np.ones(1))
    with pytest.raises(DerivativeDropError):
        dualad.gradient(lambda x: np.sum(x.tolist()), np.ones(2))


def test_writing_a_dual_into_a_plain_array_is_refused():
    def f(x):
        out = np.zeros(2)
        out[0] = x  # NumPy would need float(x): the derivative would be lost
        return out
    with pytest.raises(DerivativeDropError, match=r"\.primal"):
        dualad.derivative(f, 1.0)


# -- NumPy functions and ufuncs without a rule -----------------------------------------------------
UNSUPPORTED = [
    ("np.fft.fft", lambda x: np.fft.fft(x)),
    ("np.histogram", lambda x: np.histogram(x)),
    ("np.fft.rfft2", lambda x: np.fft.rfft2(np.reshape(x, (2, 2)))),
    ("np.unique", lambda x: np.unique(x)),
    ("np.trim_zeros", lambda x: np.trim_zeros(x)),
    ("np.gcd", lambda x: np.gcd(x, x)),
    ("np.cumsum.*|np.add.reduceat", lambda x: np.add.reduceat(x, [0, 2])),
    ("np.multiply.outer", lambda x: np.multiply.outer(x, x)),
]


@pytest.mark.parametrize("name, f", UNSUPPORTED, ids=[n for n, _ in UNSUPPORTED])
@pytest.mark.parametrize("transform", ["jacobian", "Dual", "DualArray"])
def test_unsupported_numpy_function_names_it(name, f, transform):
    with pytest.raises(TypeError) as info:
        if transform == "jacobian":
            dualad.jacobian(f, np.arange(1.0, 5.0))
        elif transform == "DualArray":
            f(DualArray(np.arange(1.0, 5.0), np.ones((2, 4))))
        else:
            f(Dual(1.5, 1.0)) if "rfft2" not in name and "reduceat" not in name else f(
                DualArray(np.arange(1.0, 5.0)))
    message = str(info.value)
    assert isinstance(info.value, MissingRuleError)
    assert "not differentiable by dualad yet" in message
    expected = name.split("|")[-1] if "|" in name else name
    assert expected in message, f"message does not name {expected}: {message}"
    assert "no implementation found" not in message.lower()


def test_unsupported_ufunc_keyword():
    with pytest.raises(TypeError, match="where="):
        np.sin(DualArray(np.ones(2)), where=np.array([True, False]))
    with pytest.raises(TypeError, match="dtype="):
        np.sin(DualArray(np.ones(2)), dtype=np.float32)
    with pytest.raises(TypeError, match="out="):
        np.sin(DualArray(np.ones(2)), out=np.empty(2))


def test_unsupported_keyword_of_a_registered_function():
    with pytest.raises(TypeError, match=r"np\.sum\(\.\.\., out=\)"):
        dualad.gradient(lambda x: np.sum(x, out=np.zeros(())), np.ones(2))
    with pytest.raises(TypeError, match=r"np\.sum\(\.\.\., dtype=int64\): only float dtypes"):
        dualad.gradient(lambda x: np.sum(x, dtype=np.int64), np.ones(2))


# -- chunk values --------------------------------------------------------------------------------
@pytest.mark.parametrize("chunk", [0, -1, 1.5, "2", True, np.float64(2.0)])
@pytest.mark.parametrize("transform", [dualad.jacobian, dualad.gradient])
def test_bad_chunk_values(transform, chunk):
    with pytest.raises(ValueError, match=r"chunk must be a positive integer or None, got"):
        transform(np.sum, np.ones(3), chunk=chunk)


def test_good_chunk_values():
    for chunk in (1, np.int64(2), 3, 1000, None):
        np.testing.assert_array_equal(dualad.gradient(np.sum, np.ones(3), chunk=chunk), np.ones(3))


# -- mismatched numbers of tangent directions ---------------------------------------------------------
def test_mismatched_k_between_duals():
    with pytest.raises(PerturbationError, match=r"\(2,\).*\(3,\).*chunk size"):
        Dual(1.0, [1.0, 0.0]) * Dual(2.0, [1.0, 0.0, 0.0])
    with pytest.raises(PerturbationError, match=r"\[2, 3\]"):
        DualArray(np.ones(2), np.ones((2, 2))) + DualArray(np.ones(2), np.ones((3, 2)))
    with pytest.raises(PerturbationError, match="chunk size"):
        DualArray(np.ones(2), np.ones((2, 2))) * Dual(1.0, [1.0, 0.0, 0.0])
    with pytest.raises(PerturbationError):
        np.matmul(DualArray(np.ones((2, 2)), np.ones((2, 2, 2))), DualArray(np.ones(2), np.ones((3, 2))))


def test_bad_dual_constructions():
    with pytest.raises(TypeError, match="DualArray"):
        Dual(np.ones(2), 1.0)
    with pytest.raises(TypeError, match="1-D"):
        Dual(1.0, np.ones((2, 2)))
    with pytest.raises(ShapeError, match=r"\(k, \*\(3,\)\)"):
        DualArray(np.ones(3), np.ones((2, 4)))


def test_escaped_inner_tangent_is_detected():
    """A dual of an inner differentiation returned from the outer one (it escaped its call)."""
    def outer(x):
        leaked = []
        dualad.derivative(lambda y: leaked.append(y) or y * x, 1.0)
        return x * leaked[0]
    with pytest.raises(PerturbationError, match="newer perturbation"):
        dualad.derivative(outer, 2.0)


def test_float_index_is_refused():
    with pytest.raises(IndexError, match="integer"):
        dualad.gradient(lambda x: np.sum(x[np.array([0.0, 1.0])]), np.ones(3))


def test_errors_form_a_hierarchy():
    for error in (MissingRuleError, ShapeError, PerturbationError, DerivativeDropError, NonNumericError):
        assert issubclass(error, ADError)
    assert issubclass(MissingRuleError, TypeError) and issubclass(DerivativeDropError, TypeError)
    assert issubclass(ShapeError, ValueError)
