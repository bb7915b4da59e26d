"""The out-of-core road: ``hostats.summarise`` on parquet/CSV files equals the in-memory road.

Truth: ``hostats.read_cohort`` (the full cleaning, in memory) on the same file, then the row-level
estimators on its episodes; the summary's counts, its ledger steps and every estimate must agree (counts
exactly, estimates to 1e-10). The three engines (DuckDB SQL, pandas batches, Dask partitions) implement
the rules twice (SQL and pandas) and must give identical counts and ledgers, also on messy CSV text.
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import hostats
import synthetic
from hostats.errors import DataError
from hostats.scale import summarise

TODAY = "2026-12-01"
BY = ["prophylaxis", "sex", "prior_ho", "age_years"]
BINS = {"age_years": 10}
TOL = 1e-10


def _faulty_episodes(n: int = 3000, seed: int = 5) -> pd.DataFrame:
    ep = synthetic.generate("tha_prophylaxis", n=n, seed=seed, fault_rate=0).episodes.copy()
    ep["ho"] = ep["ho"].astype(object)
    ep["prior_ho"] = ep["prior_ho"].astype(object)
    day = pd.Timedelta(days=1)
    ho_rows = ep.index[ep["ho"] == True]  # noqa: E712
    plain = ep.index[(ep["ho"] == False) & ep["death_date"].isna()]  # noqa: E712
    ep.loc[plain[0], "patient_id"] = None                                  # required: excluded
    ep.loc[plain[1], "index_event"] = "hip replacement"                    # code list -> excluded
    ep.loc[plain[2], "index_date"] = pd.Timestamp("2030-01-01")            # future -> excluded
    ep.loc[plain[3], "age_years"] = 150.0                                  # plausible range
    ep.loc[ho_rows[0], "ho_date"] = ep.loc[ho_rows[0], "index_date"] - 3 * day   # before index
    r = ho_rows[1]                                                          # HO after death
    ep.loc[r, "death_date"] = ep.loc[r, "ho_date"] - 5 * day
    r = plain[4]                                                            # last contact after death
    ep.loc[r, "death_date"] = ep.loc[r, "index_date"] + 40 * day
    r = ho_rows[2]                                                          # HO after last contact
    ep.loc[r, "last_followup_date"] = ep.loc[r, "ho_date"] - 2 * day
    ep.loc[ho_rows[3], "ho"] = None                                         # ho from ho_date
    r = plain[5]                                                            # ho_date without ho
    ep.loc[r, "ho_date"] = ep.loc[r, "index_date"] + 30 * day
    ep.loc[plain[6], "sex"] = "unknown"                                     # missing-value token
    ep.loc[plain[7], "sex"] = "x"                                           # code list -> missing
    ep.loc[plain[8], "ho"] = None                                           # outcome unknown
    ep.loc[plain[9], "prior_ho"] = None
    ep.loc[plain[10], "last_followup_date"] = pd.NaT                        # time unknown
    return ep


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("scale")
    ep = _faulty_episodes()
    one = folder / "episodes.parquet"
    ep.to_parquet(one, index=False)
    parts = folder / "parts"
    parts.mkdir()
    ep.iloc[:1700].to_parquet(parts / "part-0.parquet", index=False)
    ep.iloc[1700:].to_parquet(parts / "part-1.parquet", index=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cohort = hostats.read_cohort(one, today=TODAY)
    return {"one": one, "parts": parts, "cohort": cohort, "raw": ep}


@pytest.fixture(scope="module")
def summary(files):
    return summarise(files["one"], by=BY, bins=BINS, engine="duckdb", today=TODAY)


def _episodes(cohort) -> pd.DataFrame:
    ep = cohort.episodes.copy()
    ep["age_years"] = np.floor(ep["age_years"] / 10) * 10
    return ep


def test_every_row_accounted_for_and_ledger_as_read_cohort(files, summary):
    cohort = files["cohort"]
    assert summary.rows_read == len(files["raw"]) == summary.rows_kept + summary.rows_excluded
    assert summary.rows_kept == len(cohort.episodes) and summary.rows_excluded == 3
    flow = cohort.flow().set_index("step")
    mine = summary.ledger.set_index("step")
    checked = 0
    for step, row in mine.iterrows():
        if step == "read" or step not in flow.index:
            continue
        assert (row["rows_excluded"], row["rows_changed"]) == \
            (flow.loc[step, "rows_excluded"], flow.loc[step, "rows_changed"]), step
        checked += row["rows_excluded"] + row["rows_changed"]
    assert checked >= 12  # the faults planted above were each seen by the same step


def test_counts_equal_the_cleaned_rows(files, summary):
    ep = _episodes(files["cohort"])
    ref = ep.groupby(BY + ["time_days", "status"], dropna=False, observed=True).size().rename("n").reset_index()
    got = summary.counts
    assert int(got["n"].sum()) == len(ep)
    key = BY + ["time_days", "status"]
    a = ref.astype({k: object for k in key}).sort_values("n", kind="stable")
    merged = got.astype({k: object for k in key}).merge(ref.astype({k: object for k in key}), on=key, how="outer",
                                                        suffixes=("_got", "_ref"))
    assert len(a) == len(got) == len(merged)
    np.testing.assert_array_equal(merged["n_got"], merged["n_ref"])


def test_estimators_from_the_summary_equal_the_row_level_ones(files, summary):
    ep = _episodes(files["cohort"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ev = ep.assign(event=lambda d: (d["status"] == 1).astype(float).where(d["status"].notna()))
        km_ref = hostats.kaplan_meier(ev, "time_days", "event", group="prophylaxis")
        km = summary.kaplan_meier(group="prophylaxis")
        ci_ref = hostats.cumulative_incidence(ep, "time_days", "status", group="prophylaxis")
        ci = summary.cumulative_incidence(group="prophylaxis")
        formula = "ho ~ age_years + C(sex) + prior_ho + C(prophylaxis, Treatment('none'))"
        lr_ref = hostats.logistic(ep.assign(ho=ep["status"].eq(1).astype(float).where(ep["status"].notna())),
                                  formula)
        lr = summary.logistic(formula)
    for a, b in ((km.curve, km_ref.curve), (ci.curve, ci_ref.curve)):
        np.testing.assert_allclose(a[["time", "estimate", "ci_lower", "ci_upper"]],
                                   b[["time", "estimate", "ci_lower", "ci_upper"]], rtol=TOL, atol=TOL)
        np.testing.assert_array_equal(a["n_at_risk"], b["n_at_risk"])
    assert (km.n, km.n_missing) == (km_ref.n, km_ref.n_missing)
    assert abs(km.logrank.statistic - km_ref.logrank.statistic) < 1e-8
    assert abs(ci.gray_test.statistic - ci_ref.gray_test.statistic) < 1e-8
    np.testing.assert_allclose(ci.at([90, 365])["estimate"], ci_ref.at([90, 365])["estimate"], rtol=TOL)
    np.testing.assert_allclose(lr.coef, lr_ref.coef, rtol=1e-9)
    np.testing.assert_allclose(lr.table()["std_error"], lr_ref.table()["std_error"], rtol=1e-9)
    assert (lr.n, lr.events, lr.n_missing) == (lr_ref.n, lr_ref.events, lr_ref.n_missing)
    rate = summary.rate(group="prophylaxis", per=100).table().query("measure == 'rate'")
    known = ep.dropna(subset=["time_days", "status", "prophylaxis"])
    by_arm = known.groupby("prophylaxis", observed=True).agg(e=("status", lambda s: int((s == 1).sum())),
                                                             py=("time_days", "sum"))
    np.testing.assert_allclose(rate["estimate"], (by_arm["e"] / (by_arm["py"] / 365.25) * 100).to_numpy(), rtol=TOL)
    ratios = summary.rate(group="prophylaxis", reference="none").table().query("measure == 'rate_ratio'")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pois = summary.poisson("events ~ C(prophylaxis, Treatment('none'))").table().iloc[1:]
    np.testing.assert_allclose(pois["estimate"], ratios["estimate"], rtol=1e-8)  # closed form: crude ratios


def test_dask_distributed_cluster_gives_the_same_numbers(files, summary):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        other = summarise(files["parts"], by=BY, bins=BINS, engine="dask", today=TODAY, client=client)
    pd.testing.assert_frame_equal(other.counts, summary.counts)
    pd.testing.assert_frame_equal(other.ledger.drop(columns="reason"), summary.ledger.drop(columns="reason"))


@pytest.mark.parametrize("engine", ["pandas", "dask"])
def test_engines_identical_on_parquet_parts(files, summary, engine):
    other = summarise(files["parts"], by=BY, bins=BINS, engine=engine, today=TODAY, batch_rows=500)
    pd.testing.assert_frame_equal(other.counts, summary.counts)
    pd.testing.assert_frame_equal(other.ledger.drop(columns="reason"), summary.ledger.drop(columns="reason"))
    assert len(other.files) == 2


def test_engines_identical_on_messy_csv(tmp_path):
    rng = np.random.default_rng(1)
    n = 400
    frame = pd.DataFrame({
        "patient_id": [f"p{i}" for i in range(n)], "site": rng.choice(["A", " B ", "NA", ""], n),
        "index_event": rng.choice(["tha", "THA ", "hip", ""], n, p=[0.7, 0.1, 0.1, 0.1]),
        "index_date": rng.choice(["2020-01-01", "2020-02-30", "2021-06-15 10:30:00", "01/02/2020", "2099-01-01"],
                                 n, p=[0.6, 0.1, 0.1, 0.1, 0.1]),
        "age_years": rng.choice(["55", "61.5", "abc", "-3", "unknown", "inf"], n),
        "sex": rng.choice(["female", "Male", "m", "unknown", ""], n),
        "prior_ho": rng.choice(["yes", "no", "1", "0", "maybe", ""], n),
        "prophylaxis": rng.choice(["none", "NSAID", "radiotherapy", "rt"], n),
        "ho": rng.choice(["true", "false", "", "1", "?"], n),
        "ho_date": rng.choice(["2020-03-01", "", "2019-01-01", "garbage"], n),
        "death_date": rng.choice(["", "", "", "2020-02-15"], n),
        "last_followup_date": rng.choice(["2020-12-31", "2021-12-31", "", "2020-01-20"], n),
    })
    path = tmp_path / "messy.csv"
    frame.to_csv(path, index=False)
    by = ["site", "sex", "prior_ho", "prophylaxis", "age_years"]
    results = [summarise(path, by=by, bins=BINS, engine=e, today=TODAY, batch_rows=150)
               for e in ("duckdb", "pandas", "dask")]
    for other in results[1:]:
        pd.testing.assert_frame_equal(other.counts, results[0].counts)
        pd.testing.assert_frame_equal(other.ledger.drop(columns="reason"), results[0].ledger.drop(columns="reason"))
    led = results[0].ledger.set_index("step")
    for step in ("missing-value tokens", "unreadable values", "code lists", "future dates", "plausible ranges"):
        assert led.loc[step, "rows_changed"] > 0, step
    assert 0 < results[0].rows_excluded < n
    assert results[0].rows_kept + results[0].rows_excluded == n


def test_bad_requests_are_clear_errors(files, tmp_path):
    with pytest.raises(DataError, match="continuous"):
        summarise(files["one"], by=["age_years"])
    with pytest.raises(DataError, match="identifies patients"):
        summarise(files["one"], by=["patient_id"])
    with pytest.raises(DataError, match="not a canonical"):
        summarise(files["one"], by=["favourite_colour"])
    with pytest.raises(DataError, match="engine"):
        summarise(files["one"], engine="spark")
    with pytest.raises(DataError, match="no such file"):
        summarise(tmp_path / "nothing.parquet")
    (tmp_path / "x.parquet").write_text("this is not parquet")
    with pytest.raises(DataError, match="not a readable parquet"):
        summarise(tmp_path / "x.parquet")
    pd.DataFrame({"a": [1]}).to_csv(tmp_path / "y.csv", index=False)
    with pytest.raises(DataError, match="required column"):
        summarise(tmp_path / "y.csv")
    broken = tmp_path / "broken.csv"
    broken.write_text('patient_id,index_event,index_date\np1,tha,2020-01-01\np2,tha,2020-01-02,x,y\n"p3,tha\n')
    for engine in ("duckdb", "pandas", "dask"):
        with pytest.raises(DataError, match="broken.csv"):
            summarise(broken, engine=engine, today=TODAY)
    summary = summarise(files["one"], by=["sex"], today=TODAY)
    with pytest.raises(DataError, match="was not summarised"):
        summary.kaplan_meier(group="prophylaxis")


def test_a_mapping_renames_recodes_and_adds_tokens(files, summary, tmp_path):
    """A site's export with its own names, codes, yes/no words and missing code reads as the canonical one."""
    ep = files["raw"].rename(columns={"patient_id": "PatID", "sex": "Geschlecht", "ho": "HO_ja_nein",
                                      "age_years": "Alter", "prophylaxis": "Prophylaxe"})
    ep["Geschlecht"] = ep["Geschlecht"].map({"male": "M", "female": "W", "unknown": "9", "x": "x"})
    ep["HO_ja_nein"] = ep["HO_ja_nein"].map({True: "ja", False: "nein"})
    unknown_age = ep.index[ep["Alter"].notna()][20:23]
    ep.loc[unknown_age, "Alter"] = -99.0                      # the site's missing code
    ep["Prophylaxe"] = ep["Prophylaxe"].replace({"none": "keine"})
    mapping = {"source": {"missing": ["-99"]},
               "columns": {"patient_id": "PatID", "sex": "Geschlecht", "ho": "HO_ja_nein", "age_years": "Alter",
                           "prophylaxis": "Prophylaxe"},
               "values": {"sex": {"M": "male", "W": "female", "9": ""}, "prophylaxis": {"keine": "none"}},
               "booleans": {"true": ["ja"], "false": ["nein"]}}
    path = tmp_path / "site.parquet"
    ep.to_parquet(path, index=False)
    csv = tmp_path / "site.csv"
    ep.assign(Alter=ep["Alter"].map(lambda v: "-99" if v == -99 else repr(v))).to_csv(csv, index=False)
    canonical = tmp_path / "canonical.parquet"
    files["raw"].assign(age_years=files["raw"]["age_years"].mask(ep.index.isin(unknown_age))).to_parquet(canonical)
    expected = summarise(canonical, by=BY, bins=BINS, today=TODAY)
    assert not expected.counts.equals(summary.counts)
    for source, engine in ((path, "duckdb"), (path, "pandas"), (csv, "duckdb"), (csv, "pandas")):
        got = summarise(source, by=BY, bins=BINS, engine=engine, today=TODAY, mapping=mapping)
        pd.testing.assert_frame_equal(got.counts, expected.counts)
        led, ref = got.ledger.set_index("step"), expected.ledger.set_index("step")
        assert led.loc["missing-value tokens", "rows_changed"] == 3  # the three -99 ages ('9' is a code)
        same = [s for s in ref.index if s != "missing-value tokens"]  # '9' is a code here, not a token
        pd.testing.assert_frame_equal(led.loc[same].drop(columns="reason"), ref.loc[same].drop(columns="reason"))
    with pytest.raises(DataError, match="date format"):
        summarise(path, mapping={**mapping, "dates": {"format": "dayfirst"}}, today=TODAY)


def test_filter_is_a_ledger_step_as_cohort_filter(files):
    s = summarise(files["one"], by=["index_event", "prophylaxis"], today=TODAY)
    only = s.filter("no prophylaxis or NSAID", prophylaxis=["none", "nsaid"])
    ref = files["cohort"].filter("no prophylaxis or NSAID", "prophylaxis in ['none', 'nsaid']")
    assert only.rows_kept == len(ref.episodes)
    assert only.rows_read == only.rows_kept + only.rows_excluded == s.rows_read
    last = only.flow().iloc[-1]
    assert (last["step"], last["rows_in"], last["rows_out"]) == ("no prophylaxis or NSAID", s.rows_kept,
                                                                len(ref.episodes))
    with pytest.raises(DataError, match="was not summarised"):
        s.filter("women", sex="female")


def test_engines_agree_on_edge_text(tmp_path):
    """Texts where DuckDB's and pandas' own parsers differ ('1_000', '20200105', '2020', year 9999, Feb 29)
    are read by the same rule (NUMBER_TEXT, DATE_TEXT) in both engines."""
    numbers = ["1e2", "0x10", "1,5", "+3", ".5", "5.", "1_000", "Infinity", "1.5e400", "1 000", "-0", "00012",
               "12abc", "55", "61.5"]
    dates = ["2020-02-29", "2019-02-29", "2020-1-5", "2020-01-05T10:00:00", "2020-01-05 10:00", "20200105",
             "2020/01/05", "2020-01-05 25:00:00", "2020-01-05T10:00:00+02:00", "0001-01-01", "9999-12-31",
             "2020-01", "2020", "1899-12-31", "1900-01-01", "2020-01-01"]
    rng = np.random.default_rng(0)
    n = 600
    frame = pd.DataFrame({"patient_id": [f"p{i}" for i in range(n)], "index_event": "tha",
                          "index_date": rng.choice(dates, n), "age_years": rng.choice(numbers, n),
                          "ho": rng.choice(["true", "false", "TRUE", " f "], n),
                          "last_followup_date": rng.choice(dates, n)})
    path = tmp_path / "edge.csv"
    frame.to_csv(path, index=False)
    duck, pand = (summarise(path, by=["age_years"], bins={"age_years": 1}, engine=e, today=TODAY)
                  for e in ("duckdb", "pandas"))
    pd.testing.assert_frame_equal(duck.counts, pand.counts)
    pd.testing.assert_frame_equal(duck.ledger, pand.ledger)
    kept_days = set(frame.loc[frame["index_date"].isin(["2020-02-29", "2020-01-05T10:00:00", "2020-01-05 10:00",
                                                        "1900-01-01", "2020-01-01"]), "patient_id"])
    assert duck.rows_kept == len(kept_days)
