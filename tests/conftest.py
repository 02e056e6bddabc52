"""Shared fixtures and markers for the test-suite."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: a test that takes more than a few seconds "
                                       "(deselect with -m 'not slow')")


def reversead_missing() -> bool:
    """True while the reverse-mode package (or its ``jacobian``) does not exist yet."""
    if importlib.util.find_spec("reversead") is None:
        return True
    try:
        import reversead
    except ModuleNotFoundError as err:  # a submodule of the package is still being written
        if (err.name or "").startswith("reversead"):
            return True
        raise
    return not hasattr(reversead, "jacobian")


@pytest.fixture
def rng():
    return np.random.default_rng(20240611)
