"""The iptw section holds one fit at a time (issue 16: at 1M episodes each fit holds hundreds of MB of
per-episode arrays): hostats.ate's result is gone when the weighting fit starts, and the weighting fit is
gone when the crude and complete-case fits start; its section frame copies no columns it does not use.
What the section reports, and which error it raises, do not depend on that order."""
from __future__ import annotations

import gc
import re
import types
import warnings
import weakref

import numpy as np
import pandas as pd
import pytest

from hostats.analysis.context import SectionOutput
from hostats.analysis.sections._common import _complete
from hostats.errors import EstimationError
from tests.paths import ROOT


def _run_prophylaxis(tmp_path, n: int = 1500):
    """``hostats run`` of the prophylaxis analysis on n synthetic episodes (its exit code and output)."""
    from typer.testing import CliRunner

    from hostats.cli import app

    src = (ROOT / "analyses" / "prophylaxis" / "analysis.toml").read_text(encoding="utf-8")
    spec = tmp_path / "p"
    spec.mkdir()
    (spec / "analysis.toml").write_text(re.sub(r"\bn = \d+", f"n = {n}", src), encoding="utf-8")
    return CliRunner().invoke(app, ["run", str(spec), "--out", str(tmp_path / "out"), "--quiet"])


@pytest.mark.filterwarnings("ignore")
def test_each_fit_is_freed_before_the_next_starts(tmp_path, monkeypatch):
    import hostats.stats.causal.absolute_risk as absolute_risk
    import hostats.stats.causal.weighting as weighting

    made: list[tuple[str, weakref.ref]] = []
    alive_at_start: list[tuple[str, list[str]]] = []

    def recording(name, fit):
        def wrapper(*args, **kwargs):
            alive_at_start.append((name, [m for m, ref in made if ref() is not None]))
            res = fit(*args, **kwargs)
            made.append((name, weakref.ref(res)))
            return res
        return wrapper

    monkeypatch.setattr(weighting, "iptw", recording("iptw", weighting.iptw))
    monkeypatch.setattr(absolute_risk, "ate", recording("ate", absolute_risk.ate))
    gc.disable()   # only what is no longer referenced is freed: a reference cycle holding a fit would show
    try:
        r = _run_prophylaxis(tmp_path)
    finally:
        gc.enable()
    assert r.exit_code == 0, r.output
    # the effect section: ate, the weighting fit, the crude fit, the complete-case fit; then the safety
    # section (a yes/no outcome): the weighting fit and the crude fit
    assert [name for name, _ in alive_at_start] == ["ate", "iptw", "iptw", "iptw", "iptw", "iptw"]
    assert all(alive == [] for _, alive in alive_at_start), alive_at_start


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("fails, raised", [(("iptw", "ate"), "weighting fit failed"), (("ate",), "ate failed")])
def test_the_weighting_fit_error_comes_first(tmp_path, monkeypatch, fails, raised):
    """ate runs first, but when both fail the weighting fit's error is the section's, as when it ran first."""
    import hostats.stats.causal.absolute_risk as absolute_risk
    import hostats.stats.causal.weighting as weighting

    def failing(message):
        def fit(*args, **kwargs):
            raise EstimationError(message)
        return fit

    if "iptw" in fails:
        monkeypatch.setattr(weighting, "iptw", failing("weighting fit failed"))
    monkeypatch.setattr(absolute_risk, "ate", failing("ate failed"))
    r = _run_prophylaxis(tmp_path, 400)
    output = " ".join(r.output.split())
    assert r.exit_code == 1 and raised in output and "Effect of prophylaxis" in output, r.output
    assert "ate failed" not in output or raised == "ate failed"


def _frame(n: int = 1000) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    return pd.DataFrame({"arm": pd.Categorical(rng.choice(["a", "b"], n), categories=["a", "b", "c"]),
                         "age": rng.normal(60, 10, n), "other": rng.normal(size=n), "time": rng.random(n)})


def test_complete_without_missing_values_copies_nothing_and_is_the_sections_own():
    ep = _frame()
    ctx, sec, out = types.SimpleNamespace(threshold=5), {"id": "s"}, SectionOutput()
    d = _complete(ctx, ep, ["arm", "age"], sec, out, keep=["arm", "age", "time"])
    assert list(d.columns) == ["arm", "age", "time"] and out.warnings == []
    assert np.shares_memory(d["age"].to_numpy(), ep["age"].to_numpy())   # no copy of the episodes
    d["arm"] = d["arm"].cat.remove_unused_categories()
    d["age"] = 0.0
    assert list(ep["arm"].cat.categories) == ["a", "b", "c"] and ep["age"].ne(0).all()   # episodes untouched
    assert list(_complete(ctx, ep, ["arm"], sec, out).columns) == list(ep.columns)       # keep: every column


def test_complete_with_missing_values_copies_the_kept_columns_of_the_complete_rows():
    ep = _frame()
    ep.loc[[3, 7], "age"] = np.nan
    ctx, sec, out = types.SimpleNamespace(threshold=5, spec=types.SimpleNamespace(report={})), {"id": "s"}, \
        SectionOutput()
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # the section's own frame: no warning about setting a copy of a slice
        d = _complete(ctx, ep, ["arm", "age"], sec, out, keep=["arm", "age"])
        d["arm"] = d["arm"].cat.remove_unused_categories()
    assert list(d.columns) == ["arm", "age"] and len(d) == len(ep) - 2 and 3 not in d.index
    assert not np.shares_memory(d["age"].to_numpy(), ep["age"].to_numpy())
    assert len(out.warnings) == 1 and "episode(s) with missing values left out" in out.warnings[0]


def test_complete_names_the_columns_it_counts_by_their_labels():
    """The warning names each column as the tables do (the spec's [report] labels, else one made from its
    name), not by its column name ("missing by column: age_years: 30, sex: 10, time_days: 40")."""
    ep = _frame().rename(columns={"age": "age_years", "time": "time_days"}).assign(sex="female")
    ep.loc[[3, 7], "age_years"] = np.nan
    ep.loc[range(20, 32), "time_days"] = np.nan
    ep.loc[range(40, 46), "sex"] = None
    spec = types.SimpleNamespace(report={"labels": {"sex": "Sex at birth"}})
    ctx, sec, out = types.SimpleNamespace(threshold=5, spec=spec), {"id": "s", "title": "Effect"}, SectionOutput()
    _complete(ctx, ep, ["arm", "age_years", "sex", "time_days"], sec, out)
    assert out.warnings == ["Effect: 20 episode(s) with missing values left out (complete-case analysis; missing "
                            "by column: Age (years): <5, Sex at birth: 5, Follow-up time (days): 10)."]
