"""The examples in the public docstrings run and print what they claim."""
from __future__ import annotations

import doctest
import importlib

import numpy as np
import pytest

MODULES = ["dualad", "dualad.array", "dualad.dual", "dualad.transforms", "dualad.options",
           "dualad.compare", "dualad.testing", "dualad.parallel", "reversead", "reversead.tensor",
           "reversead.autograd", "reversead.function", "reversead.functional", "reversead.grad_mode",
           "reversead.checkpoint", "dualad.rules.reductions"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    with np.printoptions(legacy=False):
        result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"
