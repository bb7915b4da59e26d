"""Shared test configuration. Reference data live in tests/data with their citations (tests/data/README.md)."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.paths import DATA


@pytest.fixture
def data_dir() -> Path:
    return DATA
