"""Shared fixtures and markers for the test-suite."""
from __future__ import annotations


import numpy as np
import pytest


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: a test that takes more than a few seconds "
                                       "(deselect with -m 'not slow')")


@pytest.fixture
def rng():
    return np.random.default_rng(20240611)
