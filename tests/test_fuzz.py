"""Differential fuzzing: random programs from the primitive table, forward vs reverse vs FD.

Bounded in CI (``DUALAD_FUZZ_EXAMPLES`` random programs, default 60, and
``DUALAD_FUZZ_PER_OP`` programs per primitive, default 2). Long run::

    DUALAD_FUZZ_RANDOM=1 DUALAD_FUZZ_EXAMPLES=5000 DUALAD_FUZZ_PER_OP=20 pytest tests/test_fuzz.py
    python -m dualad.fuzz --examples 5000

A failure prints (hypothesis ``note``) a shrunk, self-contained NumPy reproducer.
"""
from __future__ import annotations

import os

import numpy as np
import pytest

pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, note, settings  # noqa: E402

from dualad import fuzz  # noqa: E402
from dualad.fuzz import (FuzzFailure, Program, check_float32, check_program,  # noqa: E402
                         fuzzable_primitives, programs)
from dualad.rules import core  # noqa: E402

EXAMPLES = int(os.environ.get("DUALAD_FUZZ_EXAMPLES", "60"))
PER_OP = int(os.environ.get("DUALAD_FUZZ_PER_OP", "2"))
#: CI draws the same programs every run; DUALAD_FUZZ_RANDOM=1 explores new ones each run
RANDOM = bool(os.environ.get("DUALAD_FUZZ_RANDOM"))
_SETTINGS = dict(deadline=None, database=None, print_blob=True, derandomize=not RANDOM,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                        HealthCheck.filter_too_much])


@settings(max_examples=EXAMPLES, **_SETTINGS)
@given(programs(max_nodes=30))
def test_random_programs_forward_reverse_fd(program):
    note(program.reproducer())
    check_program(program)


@pytest.mark.parametrize("op", fuzzable_primitives())
def test_every_primitive(op):
    """Each primitive of the table (read from the registries) in a few small programs, in
    float64 and again in float32."""
    @settings(max_examples=PER_OP, **_SETTINGS)
    @given(programs(max_nodes=3, focus=op))
    def run(program):
        note(program.reproducer())
        assert any(o == op or o.startswith(op + ":") for o in program.ops)
        check_program(program)
        check_float32(program)
    run()


def test_registries_are_covered():
    """Every registered primitive is fuzzed, or excluded with a reason."""
    ids = set(fuzzable_primitives())
    for ufunc in core.UFUNC_RULES:
        if ufunc is not np.matmul:
            assert f"ufunc:{ufunc.__name__}" in ids | set(fuzz.EXCLUDED)
    for ufunc in core.NONDIFF_UFUNCS:
        assert f"nondiff:{ufunc.__name__}" in ids
    for func in core.FUNCTION_IMPLS:
        key = f"func:{fuzz._numpy_path(func) or func.__name__}"
        assert key in ids or key in fuzz.EXCLUDED, key
        if key in fuzz.EXCLUDED:
            assert not core.EXAMPLES.get(func), f"{key} has examples but is excluded"
    assert "func:np.linalg.solve" in fuzz.SPECIAL_INPUTS


def test_new_primitive_is_fuzzed_automatically(monkeypatch):
    """A function registered with examples is drawn with no change to the fuzzer."""
    def fliplr(m):
        return np.flip(m, axis=1)
    monkeypatch.setitem(core.FUNCTION_IMPLS, np.fliplr, fliplr)
    monkeypatch.setitem(core.EXAMPLES, np.fliplr, [lambda rng: ((rng.standard_normal((3, 2)),), {})])
    assert "func:np.fliplr" in fuzzable_primitives()

    @settings(max_examples=3, **_SETTINGS)
    @given(programs(max_nodes=2, focus="func:np.fliplr"))
    def run(program):
        assert "np.fliplr(" in program.source()
        check_program(program)
    run()


def _program(lines, inputs, outputs=("v0",)):
    weights = [np.ones(1)] * len(outputs)
    return Program(inputs=[np.asarray(x, dtype=np.float64) for x in inputs], lines=list(lines),
                   outputs=list(outputs), weights=weights, scale=3.0)


def test_reproducer_is_plain_numpy():
    p = _program([("v0", "np.sin(x0) * x1"), ("v1", "np.sum(v0[np.array([0, 0, 1])], axis=0)")],
                 [[0.5, -1.0], [2.0]], outputs=("v1",))
    source = p.reproducer()
    assert "def f(x0, x1):" in source and "return v1" in source
    namespace: dict = {}
    exec(compile(source, "<reproducer>", "exec"), namespace)  # runs both modes and FD
    np.testing.assert_allclose(namespace["J_fwd"][0], namespace["J_rev"][0])
    check_program(p)


def test_wrong_derivative_is_caught(monkeypatch):
    """A wrong partial in the shared table: both modes agree, finite differences do not."""
    rule = core.UFUNC_RULES[np.sin]
    monkeypatch.setattr(rule, "partials", (lambda x, ans: 1.01 * np.cos(x),))
    p = _program([("v0", "np.sin(x0)")], [[0.3, -0.4]])
    with pytest.raises(FuzzFailure, match=r"(?s)finite differences.*def f\(x0\):"):
        check_program(p, hessian=False)


def test_mode_disagreement_is_caught(monkeypatch):
    """A wrong VJP only: the reverse Jacobian disagrees with the forward one."""
    rule = core.UFUNC_RULES[np.tanh]
    original = type(rule).vjp

    def bad_vjp(self, argnum, out_bar, primals, out, nb, static):
        return 1.5 * original(self, argnum, out_bar, primals, out, nb, static)
    monkeypatch.setattr(rule, "vjp", bad_vjp.__get__(rule))
    p = _program([("v0", "np.tanh(x0)")], [[0.3, -0.4]])
    with pytest.raises(FuzzFailure, match="forward .* != reverse"):
        check_program(p, hessian=False)


def test_command_line(capsys):
    assert fuzz.main(["--list"]) == 0
    out = capsys.readouterr().out
    assert "ufunc:sin" in out and "excluded func:np.argmax" in out
    assert fuzz.main(["--examples", "3", "--seed", "1", "--max-nodes", "5"]) == 0
    assert "3 programs checked" in capsys.readouterr().out


@settings(max_examples=max(10, EXAMPLES // 2), **_SETTINGS)
@given(programs(max_nodes=30))
def test_random_programs_in_float32(program):
    """float32 stays float32 in both modes, with float32-accurate derivatives."""
    note(program.reproducer())
    check_float32(program)


def test_float32_check_finds_a_promoted_derivative_and_follows_numpys_promotions(monkeypatch):
    program = Program(inputs=[np.array([0.5, 1.5])], lines=[("v1", "np.sin(x0) * x0")],
                      outputs=["v1"], weights=[np.ones(2, np.float32)])
    assert check_float32(program) == {"float32": True, "hessian": True, "values": True}
    import reversead

    real = reversead.jacobian
    monkeypatch.setattr(reversead, "jacobian", lambda f, x: tuple(j.astype(np.float64) for j in real(f, x)))
    with pytest.raises(FuzzFailure, match="reversead.jacobian of a float32 program: the derivatives "
                                          "of output 0 .* have dtypes \\['float64'\\], expected float32"):
        check_float32(program)
    monkeypatch.setattr(reversead, "jacobian", lambda f, x: tuple(j * np.float32(1.5) for j in real(f, x)))
    with pytest.raises(FuzzFailure, match="reversead.jacobian in float32 vs float64"):
        check_float32(program)
    monkeypatch.setattr(reversead, "jacobian", lambda f, x: tuple(j * np.float32(1.005) for j in real(f, x)))
    with pytest.raises(FuzzFailure, match="jacobian in float32: forward .* != reverse"):
        check_float32(program)
    monkeypatch.setattr(reversead, "jacobian", real)
    # a float64 constant: NumPy promotes the second output; forward mode's row follows it,
    # reverse mode's gradients keep the input's float32
    promoted = Program(inputs=[np.array([0.5, 1.5])],
                       lines=[("v1", "np.sin(x0)"), ("v2", "np.array([[1.0, 2.0], [3.0, 4.0]]) @ x0")],
                       outputs=["v1", "v2"], weights=[np.ones(2), np.ones(2)])
    assert check_float32(promoted) == {"float32": False, "hessian": False, "values": True}
    x = (np.array([0.5, 1.5], np.float32),)
    f = promoted.function()
    assert [J[0].dtype for J in reversead.jacobian(f, x)] == [np.float32, np.float32]
    import dualad
    assert [J[0].dtype for J in dualad.jacobian(f, x)] == [np.float32, np.float64]


def test_float32_check_compares_values_only_where_float32_is_accurate():
    """prod(v) - 106.983 cancels: float32 gets the program's own values 10 % off, and its
    Hessian 0.3 % off (found by a random run). Such programs get their dtypes checked only."""
    program = Program(
        inputs=[np.float64(-1.021)],
        lines=[("v0", "1.29 + 1.62 * (0.5 + 0.5 * np.tanh(x0))"),
               ("v2", "np.reshape(np.ravel(v0)[np.zeros(12, dtype=np.int64)], (3, 4))"),
               ("v3", "np.prod(v2)"), ("v4", "v3 + -106.983"), ("v5", "np.sinh(v4)")],
        outputs=["v5"], weights=[np.float64(0.21)])
    x32 = (np.array(-1.021, np.float32),)
    assert fuzz._float32_deviation(program, x32, (x32[0].astype(np.float64),)) > fuzz.F32_ACCURATE
    assert check_float32(program) == {"float32": True, "hessian": True, "values": False}


def test_float32_check_allows_for_saturated_tanh_in_hessians():
    """Found by a random run: tanh saturates (1 - tanh² is 0 or one float32 ulp), and the
    Hessian multiplies that by the square of a large inner derivative: both float32 modes
    read 0.00659 where float64 reads 0.00046. The modes agree with each other to 1e-3; the
    comparison with float64 checks for gross errors only (0.1 of the scale)."""
    lines = [("v0", "np.reshape(x2, (1, 1, 1))"), ("v1", "-1.6 + 1.61616 * (x0 - -1.995)"),
             ("v2", "-v1"), ("v3", "np.amax(v2, keepdims=True)"),
             ("v4", "np.reshape(np.ravel(v3)[np.array([0, 0, 0])], (3,))"), ("v5", "np.diag(v4)"),
             ("v6", "np.reshape(np.ravel(v5)[np.array([0])], (1,))"), ("v7", "v6 @ v0"),
             ("v13", "np.amax(v7)"), ("v14", "np.reshape(v13, (1,))"), ("v15", "v14 @ v7"),
             ("v16", "np.reshape(v15[np.array([0, 0, 0])], (3,))"), ("v17", "np.tile(v16, 2)"),
             ("v18", "np.reshape(v17[np.array([0] * 11 + [1])], (3, 4))"), ("v19", "np.flip(v18)"),
             ("v20", "np.cumsum(v19)"), ("v21", "-1.8 + 3.6 * (0.5 + 0.5 * np.tanh(v20))"),
             ("v23", "-(v21 + -1.6)"), ("v24", "np.cumsum(v21)"), ("v25", "np.amax(v24)"),
             ("v27", "np.reshape(v25, (1,))"), ("v28", "np.matmul(v27, v27)")]
    weights = [np.array([-0.36, -0.03, -0.86, -0.13, -0.42, -0.95, -0.45, -0.79, -1.0, -0.23, -0.24,
                         0.23]), np.float64(-0.52), np.float64(-0.89)]
    program = Program(inputs=[np.array([[-1.995, -0.078, -0.389], [-0.147, -0.015, -1.315]]),
                              np.float64(0.971), np.float64(-1.976)],
                      lines=lines, outputs=["v23", "v25", "v28"], weights=weights)
    assert check_float32(program) == {"float32": True, "hessian": True, "values": True}


def test_finite_differences_allow_for_noise_a_cancellation_amplifies():
    """Found by a random run (seed 1010): ``73.2545 * (v15 - 5.00588)`` amplifies rounding
    beyond ``eps * S / h``, and D(h) and D(2h) agreed by chance, 7.8e-8 away from AD (both
    modes agree; D(1e-4) is 5e-9 from AD). The observed spread |D(h) - D(1.1 h)| covers it."""
    lines = [
        ('v0', 'x0[np.array([0, -1, 2])]'),
        ('v1', 'np.reshape(np.ravel(x0)[np.array([1, 4, 1, 1, 0, 3])], (2, 3))'),
        ('v2', 'np.tile(v1, [2, 1])'),
        ('v3', 'np.reshape(np.ravel(v2)[np.array([0, 11, 0, 7, 0, 0, 0, 0, 0, 5, 1, 0, 0, 0, 11, 7, 0, 4])],'
               ' (2, 3, 3))'),
        ('v4', 'np.matmul(v3, np.swapaxes(v3, -1, -2)) / 3.0 + np.eye(3)'),
        ('v5', 'np.linalg.det(v4)'),
        ('v6', 'np.where(np.equal(v5, 0.0), -1.6, -1.6)'),
        ('v7', 'np.reshape(v5[np.array([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0])], (2, 3, 3))'),
        ('v8', 'np.concatenate([v7, v4], axis=-1)'),
        ('v9', 'np.reshape(np.ravel(v8)[np.array([16, 15, 16, 0, 17, 0, 14, 0, 14])], (3, 3))'),
        ('v10', 'np.diagonal(v9)'),
        ('v11', 'np.reshape(np.ravel(v9)[np.array([0, 0, 0])], (3,))'),
        ('v12', 'np.stack([v11, np.array([0.0, 1.0, 2.0])])'),
        ('v13', 'v12[np.array([-2])]'),
        ('v14', '-1.8 + 3.6 * (0.5 + 0.5 * np.tanh(v7))'),
        ('v15', 'np.expm1(v14)'),
        ('v16', 'np.reshape(np.ravel(v0)[np.array([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2])], (3, 4))'),
        ('v17', 'np.flip(v16)'),
        ('v18', 'np.multiply(-1.6, np.ceil(v17))'),
        ('v19', '-0.96 + 1.2 * (v18 - 0.0)'),
        ('v20', 'np.tan(v19)'),
        ('v21', 'np.reshape(np.ravel(v12)[np.array([5, 1])], (2,))'),
        ('v22', 'np.hstack([v21, np.array([0.0, 1.0, 2.0])])'),
        ('v23', 'np.reshape(np.ravel(v1)[np.array([4, 4, 2, 4, 4, 1, 3, 4, 5, 3, 5, 0])], (3, 4))'),
        ('v24', 'np.stack([v19, v23], axis=-2)'),
        ('v25', 'np.reshape(np.ravel(v20)[np.array([7, 1, 9, 5, 3, 1, 0, 7, 1, 2, 4, 10, 8, 2, 7, 3,'
                ' 3, 11, 6, 5, 7, 2, 11, 9])], (2, 3, 4))'),
        ('v26', 'np.prod(v25, axis=(0, 2), keepdims=True)'),
        ('v27', 'v5[np.array([False, True], dtype=np.bool)]'),
        ('v28', 'v26[:, :, np.array([[-1], [0]])]'),
        ('v29', 'np.where(np.less(v21, 0.46), -1.448, -1.6)'),
        ('v30', '-1.6 + 1.51854 * (v12 - -0.107287)'),
        ('v31', '-1.8 + 3.6 * (0.5 + 0.5 * np.tanh(v27))'),
        ('v32', 'np.logaddexp(v30, v31)'),
        ('v33', '-1.6 + 73.2545 * (v15 - 5.00588)'),
        ('v34', 'np.expm1(v33)'),
        ('v35', 'np.reshape(v30, (6,))'),
        ('v36', 'np.mean(v33)'),
        ('v37', '-1.8 + 3.6 * (0.5 + 0.5 * np.tanh(v22))'),
        ('v38', 'np.expm1(v37)'),
        ('v39', 'np.reshape(v37, (1, 5))'),
        ('v40', 'np.reshape(np.ravel(v39)[np.array([2, 1, 0, 0, 2, 0, 1, 0, 1, 0, 0, 0])], (3, 4))'),
        ('v41', 'np.roll(v40, 2)'),
        ('v42', 'np.reshape(np.ravel(v30)[np.array([4, 5, 3])], (3,))'),
        ('v43', 'v42 @ v34'),
        ('v44', 'np.reshape(np.ravel(v40)[np.array([0, 3, 3])], (3,))'),
        ('v45', 'np.diag(v44)'),
    ]
    program = Program(inputs=[np.array([[[-0.112, 0.308]], [[0.143, -1.108]], [[-1.661, -0.53]]])],
                      lines=lines, outputs=['v41', 'v43', 'v45'],
                      weights=[np.ones((3, 4)), np.ones((2, 3)), np.ones((3, 3))], scale=17.32588127394519)
    check_program(program, hessian=False)

