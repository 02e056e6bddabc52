"""The command line end to end, in a subprocess: ``python -m dualad [example]``."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README_TEST_COMMAND = 'pip install ".[test]" && pytest'


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dualad", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, stdin=subprocess.DEVNULL,
                          env={**os.environ, "PYTHONIOENCODING": "utf-8"})


def reported(name: str, stdout: str) -> float:
    """The number printed after ``name ...| =`` in the example's summary."""
    match = re.search(re.escape(name) + r"[^\n]*\| = ([0-9.e+-]+)", stdout)
    assert match, f"no {name!r} line in the output:\n{stdout}"
    return float(match.group(1))


@pytest.mark.parametrize("args", [(), ("example",), ("example", "--chunk", "2")],
                         ids=["default", "example", "chunk-2"])
def test_example_prints_both_jacobians_and_they_agree(args):
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Traceback" not in result.stderr
    assert "column by column" in out and "chunked" in out
    for j in range(5):  # one jvp per basis vector, printed as it goes
        assert f"J[:, {j}] = [" in out
    # the chunked Jacobian: 4 rows of 5 numbers
    matrix = re.search(r"\[\[.*?\]\]", out, re.S)
    assert matrix, out
    assert len(re.findall(r"-?\d+\.\d+", matrix.group(0))) == 20
    assert reported("max |column by column - chunked", out) < 1e-12
    assert reported("max |chunked - central differences", out) < 1e-6
    assert out.rstrip().endswith("OK")


def test_chunk_reports_the_number_of_passes():
    out = run_cli("example", "--chunk", "2").stdout
    assert "2 tangents per pass, 3 passes" in out


@pytest.mark.parametrize("args, message", [
    (("bogus",), "invalid choice: 'bogus'"),
    (("example", "--chunk", "0"), "expected a positive integer"),
    (("example", "--chunk", "two"), "expected a positive integer"),
    (("example", "--no-such-option"), "unrecognized arguments"),
])
def test_bad_usage_is_a_message_not_a_traceback(args, message):
    result = run_cli(*args)
    assert result.returncode != 0
    assert message in result.stderr
    assert "usage: dualad" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_version():
    import dualad

    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"dualad {dualad.__version__}"


def test_main_is_callable_in_process(capsys):
    from dualad.__main__ import main

    assert main(["example", "--seed", "3"]) == 0
    assert "default_rng(3)" in capsys.readouterr().out


def test_ci_runs_exactly_the_readme_test_command():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    quick_start = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    assert README_TEST_COMMAND in quick_start
    assert "pip install . && python -m dualad" in quick_start
    commands = [line.split("#")[0].strip() for line in ci.splitlines()
                if line.strip().startswith("pip install")]
    assert commands == [README_TEST_COMMAND + " || status=$?"]
