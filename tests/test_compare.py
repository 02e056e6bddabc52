"""The comparison front end: dualad.compare and the compare/jacobian commands."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dualad import compare as cmp
from dualad.problems import lorenz_rk4, rosenbrock, suite, tanh_net

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args, cwd=ROOT):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, "-m", "dualad", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300, env=env)


def test_compare_report_fields_and_agreement():
    p = tanh_net(5, 3)
    report = cmp.compare(p.f, p.x, name=p.name, repeats=2)
    assert (report.n, report.m) == (5, 3)
    assert report.max_abs_diff < 1e-12
    for mode in (report.forward, report.reverse):
        assert mode.best > 0 and mode.median >= mode.best and mode.peak_bytes > 0
        assert mode.cost_ratio == pytest.approx(mode.best / report.f_seconds)
    assert report.faster in cmp.MODES and report.predicted in cmp.MODES
    d = report.to_dict()
    json.dumps(d)  # plain data only
    assert d["forward"]["best"] == report.forward.best and d["ratio"] == report.ratio
    text = str(report)
    assert "forward" in text and p.name in text


@pytest.mark.parametrize("n,m,expected", [(1000, 1, "reverse"), (1, 1000, "forward"),
                                          (2, 2, "forward"), (500, 3, "reverse"),
                                          (100, 1, "forward"), (1000, 100, "reverse"),
                                          (1000, 1000, "reverse")])
def test_choose_mode_tall_forward_wide_reverse(n, m, expected):
    assert cmp.choose_mode(n, m) == expected


def test_auto_jacobian_equals_both_modes():
    p = tanh_net(4, 6)
    J_auto = cmp.jacobian(p.f, p.x, mode="auto")
    np.testing.assert_allclose(J_auto, cmp.jacobian(p.f, p.x, mode="forward"), atol=1e-14)
    np.testing.assert_allclose(J_auto, cmp.jacobian(p.f, p.x, mode="reverse"), atol=1e-14)
    g = cmp.jacobian(rosenbrock, np.arange(5.0), mode="auto")
    assert g.shape == (5,)
    with pytest.raises(ValueError, match="mode must be"):
        cmp.jacobian(p.f, p.x, mode="sideways")


def test_suite_problems_pick_forward_for_tall_reverse_for_wide():
    problems = {p.name: p for p in suite(quick=True)}
    assert cmp.choose_mode(*cmp.sizes(problems["tanh net 1->100"].f, problems["tanh net 1->100"].x)) == "forward"
    assert cmp.choose_mode(*cmp.sizes(problems["rosenbrock"].f, problems["rosenbrock"].x)) == "reverse"
    s0 = np.array([1.0, 1.0, 1.0])
    J = cmp.jacobian(lorenz_rk4(10), s0, mode="forward")
    np.testing.assert_allclose(J, cmp.jacobian(lorenz_rk4(10), s0, mode="reverse"), rtol=1e-12)


def test_cli_compare_quick_writes_json(tmp_path):
    out = tmp_path / "res.json"
    proc = run_cli("compare", "--quick", "--only", "tanh net 1->", "--repeats", "1", "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "fwd/rev" in proc.stdout and "tanh net 1->10" in proc.stdout
    data = json.loads(out.read_text())
    assert len(data) == 3 and all(r["max_abs_diff"] < 1e-12 for r in data)
    assert "[1/3]" in proc.stderr  # progress display


def test_cli_compare_plot(tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "cmp.png"
    proc = run_cli("compare", "--quick", "--only", "tanh net 10->1", "--repeats", "1", "--plot", str(out))
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_compare_errors():
    proc = run_cli("compare", "--only", "no such problem")
    assert proc.returncode == 2 and "no problem name contains" in proc.stderr
    assert "Traceback" not in proc.stderr


USER_MODULE = """
import numpy as np
W = np.arange(6.0).reshape(2, 3)
def residuals(x):
    return np.sin(W @ x)
def broken(x):
    raise ValueError("boom")
def text(x):
    return "not numbers"
NOT_CALLABLE = 3
"""


@pytest.fixture
def user_dir(tmp_path):
    (tmp_path / "mymodel.py").write_text(USER_MODULE)
    np.save(tmp_path / "x0.npy", np.array([0.1, 0.2, 0.3]))
    (tmp_path / "x0.csv").write_text("0.1,0.2,0.3\n")
    (tmp_path / "bad.npy").write_text("not an npy file")
    return tmp_path


@pytest.mark.parametrize("mode", ["auto", "forward", "reverse"])
def test_cli_jacobian_good(user_dir, mode):
    W = np.arange(6.0).reshape(2, 3)
    x = np.array([0.1, 0.2, 0.3])
    expected = np.cos(W @ x)[:, None] * W
    proc = run_cli("jacobian", "mymodel:residuals", "--x", "x0.npy", "--out", "J.npy", "--mode", mode,
                   cwd=user_dir)
    assert proc.returncode == 0, proc.stderr
    np.testing.assert_allclose(np.load(user_dir / "J.npy"), expected, rtol=1e-12)
    proc = run_cli("jacobian", "mymodel.py:residuals", "--x", "x0.csv", "--out", "J.csv", cwd=user_dir)
    assert proc.returncode == 0, proc.stderr
    np.testing.assert_allclose(np.loadtxt(user_dir / "J.csv", delimiter=","), expected, rtol=1e-12)
    proc = run_cli("jacobian", "mymodel:residuals", "--x", "[0.1, 0.2, 0.3]", cwd=user_dir)
    assert proc.returncode == 0 and "[[" in proc.stdout


@pytest.mark.parametrize("args,code,message", [
    (["nosuchmodule:f", "--x", "1.0"], 2, "cannot import module"),
    (["mymodel:nothere", "--x", "1.0"], 2, "has no attribute"),
    (["mymodel:NOT_CALLABLE", "--x", "1.0"], 2, "not a function"),
    (["mymodel", "--x", "1.0"], 2, "MODULE:FUNCTION"),
    (["mymodel:residuals", "--x", "missing.npy"], 2, "no such point file"),
    (["mymodel:residuals", "--x", "bad.npy"], 2, "cannot read the point"),
    (["mymodel:residuals", "--x", "[1, 2"], 2, "literal"),
    (["mymodel:residuals", "--x", "[1.0, 2.0]"], 1, "raised ValueError"),
    (["mymodel:broken", "--x", "[1.0, 2.0, 3.0]"], 1, "boom"),
    (["mymodel:text", "--x", "[1.0, 2.0, 3.0]"], 1, "text"),
    (["mymodel:residuals", "--x", "x0.npy", "--out", "J.txt"], 2, ".npy or .csv"),
])
def test_cli_jacobian_errors(user_dir, args, code, message):
    proc = run_cli("jacobian", *args, cwd=user_dir)
    assert proc.returncode == code, (proc.stdout, proc.stderr)
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
