"""(being written: see the module docstring once filled)."""
from __future__ import annotations
