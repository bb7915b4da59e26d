"""Where the test suite's fixed files live, wherever a test module sits in the tree."""
from __future__ import annotations

from pathlib import Path

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
DATA = TESTS / "data"  # public reference data sets with their citations (data/README.md)
REFERENCE = TESTS / "reference"  # R reference values, each with the R script that printed it
