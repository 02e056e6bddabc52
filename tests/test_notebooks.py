"""The notebooks in ``notebooks/`` execute top to bottom without an error.

Each notebook runs in a fresh ``python3`` kernel on a temporary copy, so the committed
``.ipynb`` files (with their outputs) are never rewritten by the test suite. The kernel
runs with the repository root as its working directory and on ``PYTHONPATH``, so it
imports this checkout's ``dualad`` and ``reversead`` whether or not they are installed.

To refresh the committed outputs after editing a notebook, execute it in place, e.g.
``jupyter nbconvert --to notebook --execute --inplace notebooks/NAME.ipynb``.
"""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = [
    "01_dual_numbers.ipynb",
    "02_backprop_mlp.ipynb",
    "03_forward_vs_reverse.ipynb",
    "04_constrained_optimization.ipynb",
]
CELL_TIMEOUT = 300  # seconds per cell


@pytest.fixture
def kernel_env(monkeypatch):
    """Make the kernel import this checkout (not some other installed copy)."""
    old = os.environ.get("PYTHONPATH")
    monkeypatch.setenv("PYTHONPATH", str(ROOT) + (os.pathsep + old if old else ""))


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_executes(name, tmp_path, kernel_env):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    pytest.importorskip("matplotlib")

    source = NOTEBOOK_DIR / name
    assert source.is_file(), f"missing notebook {source}"
    copy = tmp_path / name
    shutil.copyfile(source, copy)

    nb = nbformat.read(copy, as_version=4)
    client = nbclient.NotebookClient(
        nb,
        timeout=CELL_TIMEOUT,
        kernel_name="python3",
        resources={"metadata": {"path": str(ROOT)}},  # the kernel's working directory
    )
    start = time.perf_counter()
    try:
        client.execute()
    except nbclient.exceptions.CellExecutionError as exc:  # show the failing cell, not a kernel trace
        pytest.fail(f"{name} failed:\n{exc}", pytrace=False)
    elapsed = time.perf_counter() - start
    nbformat.write(nb, copy)  # the executed copy, handy when debugging; the original is untouched

    errors = [o for c in nb.cells if c.cell_type == "code"
              for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, f"{name}: error outputs {[(e['ename'], e['evalue']) for e in errors]}"
    print(f"{name}: executed in {elapsed:.1f} s")


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_committed_with_outputs(name):
    """The committed notebooks hold their outputs and plots, and stay small."""
    nbformat = pytest.importorskip("nbformat")
    path = NOTEBOOK_DIR / name
    assert path.stat().st_size < 300_000, f"{name} is {path.stat().st_size} bytes"
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(c.get("execution_count") for c in code), f"{name} has unexecuted cells"
    outputs = [o for c in code for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs), f"{name} has no plot"
