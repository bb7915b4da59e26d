"""The index page shows every headline the spec asks for (the safety risk ratio, requested after two
entries of many rows each, used to be cut off at eight rows)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from hostats.analysis import load_spec
from hostats.analysis.writer import _headline
from tests.paths import ROOT


def test_index_headline_keeps_every_requested_entry():
    spec = load_spec(ROOT / "analyses" / "prophylaxis")
    assert spec.report["headline"] == ["effect/risk_ratio", "effect/risk_difference", "safety/risk_ratio"]
    rows = [{"section": "effect", "measure": m, "group": f"{arm} vs none", "term": "", "estimate": 0.5,
             "ci_lower": 0.4, "ci_upper": 0.6, "truth": np.nan, "time_days": np.nan}
            for arm in ("radiotherapy", "nsaid", "bisphosphonate", "radiotherapy_nsaid")
            for m in ("risk_ratio", "risk_difference", "odds_ratio")]
    rows.append({"section": "safety", "measure": "risk_ratio", "group": "radiotherapy vs none", "term": "",
                 "estimate": 1.1, "ci_lower": 0.8, "ci_upper": 1.5, "truth": 1.0, "time_days": np.nan})
    head = _headline(spec, pd.DataFrame(rows))
    labels = [h["label"] for h in head]
    assert len(head) == 9  # 4 risk ratios, 4 risk differences, the safety ratio
    assert labels[-1] == "Risk ratio, radiotherapy vs none"  # the safety entry, last
    assert head[-1]["value"].startswith("1.1") and " to 1.5" in head[-1]["value"] and head[-1]["truth"]
    assert "Risk difference, radiotherapy + NSAID vs none" in labels
