"""Generic simulation-study engine: bias, coverage and their Monte-Carlo standard errors.

A study (ADEMP: Aims, Data-generating mechanisms, Estimands, Methods, Performance measures; Morris,
White & Crowther 2019, Stat Med 38:2074-2102) is a data-generating callable ``generate(rng) -> data``,
a set of method callables ``method(data) -> Estimate`` (or ``{estimand: Estimate}``) and the true value
of each estimand. ``run_study`` draws ``reps`` replicates; replicate ``i`` gets its own numpy Generator
seeded by ``SeedSequence(seed, spawn_key=(i,))`` (the i-th child of ``SeedSequence(seed).spawn``), and
runs single-threaded BLAS, so its numbers do not depend on the number of workers or on the backend
(joblib's loky processes locally, or a dask.distributed cluster through joblib's Dask backend).

Each finished replicate is appended as one JSON line to ``<out>/replicates.jsonl``: an interrupted study
resumes where it stopped, computing only the missing replicates. A method that raises (or returns a
non-finite estimate) is recorded with its error message and counted as ``n_failed``; performance measures
use the replicates where it succeeded, and the table says how many those were.

This module imports neither ``synthetic`` nor any estimator: the study definitions live in
``analyses/simulation_study/study.py``.
"""
from __future__ import annotations

import importlib.util
import json
import math
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

RESULT_COLUMNS = ("rep", "method", "estimand", "estimate", "std_error", "ci_lower", "ci_upper", "truth",
                  "error", "warning")
REPLICATES_FILE = "replicates.jsonl"
# most replicates one study may ask for: every replicate's rows are held in memory for the performance
# measures, and 100,000 replicates already give a 95% coverage an MCSE of 0.07 percentage points (Morris et al.)
MAX_REPS = 100_000
STUDY_FILE = "study.json"
REFERENCE = ("Morris TP, White IR, Crowther MJ. Using simulation studies to evaluate statistical methods. "
             "Stat Med 2019;38:2074-2102 (performance measures and Monte-Carlo SEs: Table 6)")


class Estimate(NamedTuple):
    """One method's answer for one estimand in one replicate (all on the scale of the truth)."""

    estimate: float
    std_error: float
    ci_lower: float
    ci_upper: float


@dataclass
class Replicate:
    """What ``generate`` may return instead of bare data: the data plus truth that varies by replicate
    (e.g. the rate of a new site drawn with the replicate, for prediction-interval coverage)."""

    data: Any
    truth: Mapping[str, float] = field(default_factory=dict)


@dataclass
class Study:
    """A simulation study (ADEMP).

    generate : ``rng -> data`` (or ``Replicate``); the only source of randomness is ``rng``.
    methods : name -> ``data -> Estimate | {estimand: Estimate}`` (or a 4-tuple estimate, SE, lower, upper).
    truth : estimand -> true value (``None``: supplied by each replicate via ``Replicate.truth``).
    targets : method -> the estimands it estimates (default: every estimand of ``truth``).
    null : estimand -> value of H0 for the rejection rate (power, or type-I error when truth == null);
        a number applies to every estimand; ``None`` for an estimand: no rejection rate.
    level : nominal CI level (documentation; coverage is counted from the limits the methods return).
    config : what defines the study beyond the callables (scenario, n, overrides ...): recorded in the
        output folder and checked on resume, so replicates of different studies are never mixed.
    """

    name: str
    generate: Callable[[np.random.Generator], Any]
    methods: Mapping[str, Callable[[Any], Any]]
    truth: Mapping[str, float | None]
    targets: Mapping[str, Sequence[str]] | None = None
    null: Mapping[str, float | None] | float | None = 0.0
    level: float = 0.95
    config: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""
    estimand_labels: Mapping[str, str] = field(default_factory=dict)
    method_labels: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.methods:
            raise ValueError(f"study {self.name!r}: no methods")
        if not self.truth:
            raise ValueError(f"study {self.name!r}: no estimands in truth")
        for m, est in self.method_targets().items():
            unknown = [e for e in est if e not in self.truth]
            if unknown:
                raise ValueError(f"study {self.name!r}: method {m!r} targets {unknown} not in truth "
                                 f"(known: {', '.join(self.truth)})")
            if not est:
                raise ValueError(f"study {self.name!r}: method {m!r} targets no estimand")
        if self.targets is not None:
            extra = set(self.targets) - set(self.methods)
            if extra:
                raise ValueError(f"study {self.name!r}: targets name unknown methods {sorted(extra)}")

    def method_targets(self) -> dict[str, tuple[str, ...]]:
        targets = self.targets or {}
        return {m: tuple(targets.get(m, tuple(self.truth))) for m in self.methods}

    def null_of(self, estimand: str) -> float | None:
        if self.null is None or isinstance(self.null, (int, float)):
            return None if self.null is None else float(self.null)
        v = self.null.get(estimand)
        return None if v is None else float(v)

    def fingerprint(self) -> dict[str, Any]:
        """JSON-able description that must match for a resumed study."""
        return _jsonable({"name": self.name, "methods": self.method_targets(),
                          "truth": {k: _json_float(v) for k, v in self.truth.items()},
                          "null": {e: _json_float(self.null_of(e)) for e in self.truth}, "level": self.level,
                          "config": self.config})


def _json_float(v: Any) -> Any:
    return None if v is None else float(v)


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=lambda o: o.item() if hasattr(o, "item") else str(o)))


# --- one replicate ------------------------------------------------------------------------------------

_THREADS = None


def _single_threaded():
    """Limit BLAS/OpenMP to one thread: results then do not depend on how many workers share the machine."""
    global _THREADS
    if _THREADS is None:
        from threadpoolctl import ThreadpoolController

        _THREADS = ThreadpoolController()
    return _THREADS.limit(limits=1)


def replicate_rng(seed: int, rep: int) -> np.random.Generator:
    """The Generator of replicate ``rep``: child ``rep`` of ``SeedSequence(seed).spawn``."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(rep,)))


def _as_estimate(value: Any) -> Estimate:
    if isinstance(value, Estimate):
        return value
    if isinstance(value, Mapping):
        return Estimate(*(float(value[k]) for k in Estimate._fields))
    vals = tuple(value)
    if len(vals) != 4:
        raise TypeError(f"expected (estimate, std_error, ci_lower, ci_upper), got {len(vals)} values")
    return Estimate(*(float(v) for v in vals))


def _error_text(exc: BaseException) -> str:
    msg = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {msg[0] if msg else ''}"[:500]


def _method_rows(name: str, func: Callable, data: Any, targets: tuple[str, ...]) -> list[list[Any]]:
    """Rows ``[method, estimand, estimate, se, lower, upper, error, warning]`` for every target of one method.

    Python warnings the method issues are recorded (first message and how many), not printed per replicate."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            out = func(data)
            if len(targets) == 1 and not isinstance(out, Mapping):
                out = {targets[0]: out}
            elif not isinstance(out, Mapping):
                raise TypeError(f"method {name!r} targets {len(targets)} estimands and must return a mapping")
        except Exception as exc:  # noqa: BLE001 - a failing method is a result of the study, recorded below
            out, failure = None, _error_text(exc)
    warn = None
    if caught:
        first = str(caught[0].message).strip().splitlines()
        warn = f"{caught[0].category.__name__}: {first[0] if first else ''}"[:300]
        if len(caught) > 1:
            warn += f" (+{len(caught) - 1} more)"
    if out is None:
        return [[name, t, None, None, None, None, failure, warn] for t in targets]
    rows = []
    for t in targets:
        if t not in out:
            rows.append([name, t, None, None, None, None, f"no estimate for {t!r}", warn])
            continue
        try:
            e = _as_estimate(out[t])
        except (TypeError, ValueError, KeyError) as exc:
            rows.append([name, t, None, None, None, None, _error_text(exc), warn])
            continue
        err = None if math.isfinite(e.estimate) else "non-finite estimate"
        rows.append([name, t, e.estimate, e.std_error, e.ci_lower, e.ci_upper, err, warn])
    return rows


def run_replicate(study: Study, seed: int, rep: int) -> dict[str, Any]:
    """Draw replicate ``rep`` and apply every method; the JSON-able record stored in replicates.jsonl."""
    with _single_threaded():
        rng = replicate_rng(seed, rep)
        drawn = study.generate(rng)
        data, rtruth = (drawn.data, dict(drawn.truth)) if isinstance(drawn, Replicate) else (drawn, {})
        truth = {k: (rtruth[k] if k in rtruth else v) for k, v in study.truth.items()}
        missing = [k for k, v in truth.items() if v is None or not math.isfinite(float(v))]
        if missing:
            raise ValueError(f"study {study.name!r}, replicate {rep}: no finite truth for {missing} "
                             "(give it in Study.truth or Replicate.truth)")
        rows = []
        for name, targets in study.method_targets().items():
            for r in _method_rows(name, study.methods[name], data, targets):
                r.insert(6, float(truth[r[1]]))
                rows.append(r)
    return {"rep": int(rep), "rows": rows}


# --- storage and resume -------------------------------------------------------------------------------

def _read_replicates(path: Path) -> list[dict[str, Any]]:
    """Complete records of ``replicates.jsonl``; a torn last line (interrupted write) is dropped."""
    if not path.exists():
        return []
    records, good_bytes = [], 0
    raw = path.read_bytes()
    for line in raw.splitlines(keepends=True):
        if not line.endswith(b"\n"):
            break
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            break
        good_bytes += len(line)
    if good_bytes != len(raw):  # cut the torn tail so appends start on a fresh line
        with path.open("r+b") as fh:
            fh.truncate(good_bytes)
    return records


def _check_study_file(out: Path, study: Study, seed: int) -> None:
    meta = {"seed": int(seed), **study.fingerprint()}
    path = out / STUDY_FILE
    if path.exists():
        old = json.loads(path.read_text(encoding="utf-8"))
        if old != meta:
            diff = sorted(k for k in set(old) | set(meta) if old.get(k) != meta.get(k))
            raise ValueError(f"{out} holds replicates of a different study (differs in: {', '.join(diff)}); "
                             "use another --out folder or delete it")
    else:
        path.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")


def records_frame(records: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Long table, one row per (rep, method, estimand), sorted: the content of results.parquet."""
    rows = [[rec["rep"], *r] for rec in records for r in rec["rows"]]
    frame = pd.DataFrame(rows, columns=list(RESULT_COLUMNS))
    for c in ("estimate", "std_error", "ci_lower", "ci_upper", "truth"):
        frame[c] = pd.to_numeric(frame[c], errors="coerce").astype(float)
    frame["rep"] = frame["rep"].astype(np.int64)
    for c in ("error", "warning"):
        frame[c] = frame[c].astype(object).where(frame[c].notna(), None)
    return frame.sort_values(["rep", "method", "estimand"], kind="stable").reset_index(drop=True)


# --- running ------------------------------------------------------------------------------------------

@dataclass
class SimulationResult:
    """Replicates (long table) and the performance measures of a finished study."""

    study: Study
    seed: int
    replicates: pd.DataFrame
    computed: int            # replicates computed in this call (the rest were resumed from disk)
    seconds: float
    out_dir: Path | None = None

    def performance(self) -> pd.DataFrame:
        """``performance()`` of the replicates, rows in the study's order of estimands and methods."""
        perf = performance(self.replicates, null={e: self.study.null_of(e) for e in self.study.truth})
        e_order = {e: i for i, e in enumerate(self.study.truth)}
        m_order = {m: i for i, m in enumerate(self.study.methods)}
        key = perf["estimand"].map(e_order) * 1000 + perf["method"].map(m_order)
        return perf.iloc[np.argsort(key.to_numpy(), kind="stable")].reset_index(drop=True)

    @property
    def failures(self) -> pd.DataFrame:
        return self.replicates[self.replicates["error"].notna()].reset_index(drop=True)


def _progress_bar(quiet: bool, total: int, done: int, label: str):
    if quiet:
        return None
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    p = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                 TimeRemainingColumn(), console=Console(stderr=True), transient=False)
    p.start()
    p.add_task(label, total=total, completed=done)
    return p


def run_study(study: Study, reps: int, seed: int, *, n_jobs: int = 1, dask: str | Any | None = None,
              out: Path | str | None = None, quiet: bool = True) -> SimulationResult:
    """Run replicates ``0 .. reps-1`` of ``study`` (resuming those already in ``out``).

    n_jobs : local worker processes (joblib/loky; 1 runs in this process).
    dask : a dask.distributed scheduler address (or a ``Client``): run through joblib's Dask backend.
    out : folder for ``study.json`` and ``replicates.jsonl`` (appended after every replicate); with it, a
        rerun computes only the replicates missing from the file. Without it nothing is written.
    Replicate i's numbers are the same for any ``n_jobs``, with or without Dask, and whether or not the
    study was interrupted and resumed.
    """
    if not isinstance(reps, (int, np.integer)) or isinstance(reps, bool) or not 1 <= reps <= MAX_REPS:
        raise ValueError(f"reps must be an integer from 1 to {MAX_REPS:,}, got {reps!r}")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if not isinstance(n_jobs, (int, np.integer)) or n_jobs == 0:
        raise ValueError(f"n_jobs must be a non-zero integer, got {n_jobs!r}")
    t0 = time.perf_counter()
    records: dict[int, dict] = {}
    sink = None
    out_dir = Path(out) if out is not None else None
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        _check_study_file(out_dir, study, seed)
        for rec in _read_replicates(out_dir / REPLICATES_FILE):
            records.setdefault(int(rec["rep"]), rec)
        sink = (out_dir / REPLICATES_FILE).open("a", encoding="utf-8")
    todo = [i for i in range(int(reps)) if i not in records]
    progress = _progress_bar(quiet, int(reps), int(reps) - len(todo), study.name)
    try:
        for rec in _execute(study, int(seed), todo, n_jobs=int(n_jobs), dask=dask):
            records[rec["rep"]] = rec
            if sink is not None:
                sink.write(json.dumps(rec, allow_nan=True) + "\n")
                sink.flush()
            if progress is not None:
                progress.advance(progress.task_ids[0])
    finally:
        if sink is not None:
            sink.close()
        if progress is not None:
            progress.stop()
    frame = records_frame(records[i] for i in range(int(reps)))
    return SimulationResult(study, int(seed), frame, computed=len(todo), seconds=time.perf_counter() - t0,
                            out_dir=out_dir)


def _execute(study: Study, seed: int, todo: list[int], *, n_jobs: int, dask: Any) -> Iterable[dict]:
    if not todo:
        return
    if dask is None and n_jobs == 1:
        for i in todo:
            yield run_replicate(study, seed, i)
        return
    from joblib import Parallel, delayed, parallel_config

    tasks = (delayed(run_replicate)(study, seed, i) for i in todo)
    if dask is None:
        yield from Parallel(n_jobs=n_jobs, return_as="generator_unordered")(tasks)
        return
    try:
        from distributed import Client
    except ImportError as exc:  # pragma: no cover - dask is an optional extra
        raise ImportError("--dask needs dask.distributed (pip install 'dask[distributed]')") from exc
    client = dask if isinstance(dask, Client) else Client(dask)
    try:
        with parallel_config(backend="dask", wait_for_workers_timeout=60):
            yield from Parallel(return_as="generator_unordered")(tasks)
    finally:
        if client is not dask:
            client.close()


# --- performance measures -----------------------------------------------------------------------------

def _measures(est: np.ndarray, se: np.ndarray, lo: np.ndarray, hi: np.ndarray, truth: np.ndarray,
              null: float | None) -> list[tuple[str, float, float]]:
    """Performance measures and Monte-Carlo SEs (Morris, White & Crowther 2019, Table 6).

    With n replicates, estimates t_i, mean t_bar, truth th_i (constant in most studies), SEs s_i:
    bias = mean(t_i - th_i), MCSE = sqrt(sum (t_i - t_bar)^2 / (n (n - 1)));
    relative bias = bias / th (th constant and non-zero), MCSE = MCSE(bias) / |th|;
    empirical SE = sqrt(sum (t_i - t_bar)^2 / (n - 1)), MCSE = EmpSE / sqrt(2 (n - 1));
    MSE = mean((t_i - th_i)^2), MCSE = sqrt(sum ((t_i - th_i)^2 - MSE)^2 / (n (n - 1)));
    model SE = sqrt(mean(s_i^2)), MCSE = sqrt(var(s_i^2) / (4 n ModSE^2));
    relative error in model SE = 100 (ModSE / EmpSE - 1) %, MCSE = 100 (ModSE / EmpSE)
        sqrt(var(s_i^2) / (4 n ModSE^4) + 1 / (2 (n - 1)));
    coverage = mean(lo_i <= th_i <= hi_i) over the n_ci replicates with both limits not NaN, bias-eliminated coverage = mean(lo_i <= th_i + bias <= hi_i)
        (= th replaced by t_bar when th is constant), rejection = mean(null outside [lo_i, hi_i]),
        each with MCSE sqrt(p (1 - p) / n).
    """
    n = est.size
    out: list[tuple[str, float, float]] = [("n", float(n), math.nan)]
    if n == 0:
        return out
    nan = math.nan
    tbar = est.mean()
    err = est - truth
    bias = err.mean()
    ss = float(((est - tbar) ** 2).sum())
    emp = math.sqrt(ss / (n - 1)) if n > 1 else nan
    bias_mc = math.sqrt(ss / (n * (n - 1))) if n > 1 else nan
    out.append(("bias", bias, bias_mc))
    th = truth[0]
    if np.all(truth == th) and th != 0:
        out.append(("relative_bias", bias / th, bias_mc / abs(th)))
    else:
        out.append(("relative_bias", nan, nan))
    out.append(("empirical_se", emp, emp / math.sqrt(2 * (n - 1)) if n > 1 else nan))
    mse = float((err ** 2).mean())
    out.append(("mse", mse, math.sqrt(float(((err ** 2 - mse) ** 2).sum()) / (n * (n - 1))) if n > 1 else nan))
    ok = np.isfinite(se)
    v = se[ok] ** 2
    if v.size > 1:
        mod = math.sqrt(v.mean())
        var_v = float(v.var(ddof=1))
        out.append(("model_se", mod, math.sqrt(var_v / (4 * v.size * mod ** 2)) if mod > 0 else nan))
        if emp > 0 and mod > 0:
            ratio = mod / emp
            out.append(("relative_error_model_se", 100 * (ratio - 1),
                        100 * ratio * math.sqrt(var_v / (4 * v.size * mod ** 4) + 1 / (2 * (n - 1)))))
        else:
            out.append(("relative_error_model_se", nan, nan))
    else:
        out += [("model_se", nan, nan), ("relative_error_model_se", nan, nan)]

    has_ci = ~(np.isnan(lo) | np.isnan(hi))  # a method may give no interval (by design or in a replicate)
    k = int(has_ci.sum())
    out.append(("n_ci", float(k), nan))

    def prop(name: str, hit: np.ndarray) -> None:
        if k == 0:
            out.append((name, nan, nan))
            return
        p = float(hit[has_ci].mean())
        out.append((name, p, math.sqrt(p * (1 - p) / k)))

    prop("coverage", (lo <= truth) & (truth <= hi))
    prop("bias_eliminated_coverage", (lo <= truth + bias) & (truth + bias <= hi))
    if null is not None:
        prop("rejection", (null < lo) | (null > hi))
    return out


def performance(replicates: pd.DataFrame, null: Mapping[str, float | None] | float | None = 0.0) -> pd.DataFrame:
    """Tidy performance table: one row per (method, estimand, measure) with ``value`` and ``mcse``.

    Measures: n (successful replicates), bias, relative_bias, empirical_se, mse, model_se,
    relative_error_model_se (%), coverage, bias_eliminated_coverage, rejection (of H0: estimand = null,
    counted as the null lying outside the CI; ``type_i_error`` in column ``kind`` when the truth equals the
    null, else ``power``), and n_failed (replicates where the method failed, i.e. raised or returned a
    non-finite estimate; their messages are in ``replicates.error``). Coverage and rejection are counted
    over the ``n_ci`` replicates whose interval has no NaN limit (infinite limits are kept: an interval open
    on one side); a method without intervals has n_ci = 0 and NaN coverage. Formulas: ``_measures``.
    """
    rows = []
    for (method, estimand), g in replicates.groupby(["method", "estimand"], sort=False):
        good = g[g["error"].isna()]
        nv = null if (null is None or isinstance(null, (int, float))) else null.get(estimand)
        truth = good["truth"].to_numpy(float)
        for measure, value, mcse in _measures(good["estimate"].to_numpy(float), good["std_error"].to_numpy(float),
                                              good["ci_lower"].to_numpy(float), good["ci_upper"].to_numpy(float),
                                              truth, None if nv is None else float(nv)):
            kind = ""
            if measure == "rejection":
                kind = "type_i_error" if truth.size and np.allclose(truth, nv, rtol=0, atol=1e-12) else "power"
            rows.append((method, estimand, measure, kind, value, mcse))
        rows.append((method, estimand, "n_failed", "", float(len(g) - len(good)), math.nan))
    return pd.DataFrame(rows, columns=["method", "estimand", "measure", "kind", "value", "mcse"])


def performance_wide(perf: pd.DataFrame) -> pd.DataFrame:
    """One row per (method, estimand): each measure and its MCSE side by side (``<measure>_mcse``)."""
    keys = ["estimand", "method"]
    pairs = perf[keys].drop_duplicates()
    val = perf.set_index([*keys, "measure"])["value"].unstack("measure")
    mc = perf.set_index([*keys, "measure"])["mcse"].unstack("measure")
    mc = mc.drop(columns=[c for c in ("n", "n_failed", "n_ci") if c in mc.columns]).add_suffix("_mcse")
    wide = val.join(mc).reindex(pd.MultiIndex.from_frame(pairs))
    order = [c for m in ("n", "n_failed", "n_ci", "bias", "relative_bias", "empirical_se", "mse", "model_se",
                         "relative_error_model_se", "coverage", "bias_eliminated_coverage", "rejection")
             for c in (m, f"{m}_mcse") if c in wide.columns]
    return wide[order].reset_index()


# --- loading a study module ---------------------------------------------------------------------------

def load_module(path: Path | str, name: str | None = None):
    """Import a Python file (e.g. analyses/simulation_study/study.py) as a module.

    It is registered with cloudpickle to be pickled by value, so worker processes (loky or Dask) that cannot
    import it from their path still receive its functions.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(2, "study module not found", str(path))
    name = name or f"hostats_study_{path.parent.name}_{path.stem}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    import cloudpickle

    cloudpickle.register_pickle_by_value(module)
    return module


# --- report -------------------------------------------------------------------------------------------

_MEASURE_LABELS = (("bias", "bias"), ("relative_bias", "relative bias"), ("empirical_se", "empirical SE"),
                   ("model_se", "model SE"), ("relative_error_model_se", "rel. error model SE (%)"),
                   ("coverage", "coverage"), ("bias_eliminated_coverage", "bias-eliminated coverage"),
                   ("rejection", "rejection"))


def _fmt(value: float, mcse: float, digits: int = 3) -> str:
    if value is None or not np.isfinite(value):
        return ""
    text = f"{value:.{digits}f}"
    return f"{text} ({mcse:.{digits}f})" if mcse is not None and np.isfinite(mcse) else text


def performance_display(study: Study, perf: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Per estimand, a table of methods x measures shown as "value (MCSE)"."""
    wide = performance_wide(perf)
    kinds = perf[perf["measure"] == "rejection"].set_index(["estimand", "method"])["kind"]
    order = {m: i for i, m in enumerate(study.methods)}
    out = {}
    for estimand, g in wide.groupby("estimand", sort=False):
        g = g.sort_values("method", key=lambda s: s.map(order), kind="stable")
        rows = []
        for r in g.itertuples(index=False):
            d = r._asdict()
            n_ci = d.get("n_ci", d["n"])  # NaN when the method failed in every replicate (no measures)
            row = {"method": study.method_labels.get(r.method, r.method), "n": int(d["n"]),
                   "failed": int(d["n_failed"]), "with CI": int(n_ci) if np.isfinite(n_ci) else 0}
            for key, label in _MEASURE_LABELS:
                if key in d:
                    row[label] = _fmt(d[key], d.get(f"{key}_mcse"))
            if "rejection" in d and (estimand, r.method) in kinds.index and row.get("rejection"):
                row["rejection"] += " [type I error]" if kinds[(estimand, r.method)] == "type_i_error" else " [power]"
            rows.append(row)
        frame = pd.DataFrame(rows)
        out[estimand] = frame.loc[:, [c for c in frame.columns if (frame[c] != "").any()]]
    return out


def _estimates_figure(study: Study, rep: pd.DataFrame):
    from hostats.report.figures import PALETTE, _style, plt, sns

    _style()
    ests = [e for e in study.truth if e in set(rep["estimand"])]
    ncol = 2 if len(ests) > 1 else 1
    nrow = math.ceil(len(ests) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(6.2 * ncol, 2.4 + 0.45 * len(study.methods) * nrow),
                             squeeze=False)
    order = list(study.methods)
    for ax, est in zip(axes.flat, ests, strict=False):
        g = rep[(rep["estimand"] == est) & rep["error"].isna()]
        meth = [m for m in order if m in set(g["method"])]
        sns.stripplot(data=g, x="estimate", y="method", order=meth, ax=ax, size=2.5, alpha=0.45, jitter=0.25,
                      palette=PALETTE, hue="method", hue_order=meth, legend=False)
        means = g.groupby("method")["estimate"].mean().reindex(meth)
        ax.scatter(means.to_numpy(), np.arange(len(meth)), marker="|", s=400, color="black", zorder=4,
                   label="mean estimate")
        truth = g["truth"].to_numpy(float)
        if truth.size and np.allclose(truth, truth[0]):
            ax.axvline(truth[0], color="#c0392b", lw=1.5, label="truth")
        ax.set_title(study.estimand_labels.get(est, est), loc="left", fontsize=10)
        ax.set_xlabel("estimate per replicate" + ("" if truth.size and np.allclose(truth, truth[0])
                                                  else " (truth varies by replicate)"))
        ax.set_ylabel("")
        ax.legend(frameon=True, framealpha=0.85, fontsize=8, loc="best")
    for ax in list(axes.flat)[len(ests):]:
        ax.set_visible(False)
    fig.tight_layout()
    return fig


def _coverage_figure(study: Study, perf: pd.DataFrame):
    from hostats.report.figures import PALETTE, _style, plt, sns

    _style()
    cov = perf[(perf["measure"] == "coverage") & perf["value"].notna()]
    ests = [e for e in study.truth if e in set(cov["estimand"])]
    meth = [m for m in study.methods if m in set(cov["method"])]
    sizes = [int((cov["estimand"] == e).sum()) for e in ests]
    fig, axes = plt.subplots(len(ests), 1, sharex=True, squeeze=False,
                             figsize=(7.5, 0.9 * len(ests) + 0.32 * sum(sizes)),
                             gridspec_kw={"height_ratios": [max(k, 1) + 1.2 for k in sizes]})
    pal = sns.color_palette(PALETTE)
    for ax, est in zip(axes[:, 0], ests, strict=True):
        rows = cov[cov["estimand"] == est].set_index("method").reindex([m for m in meth
                                                                         if m in set(cov.loc[cov["estimand"] == est,
                                                                                             "method"])])
        for y, (m, r) in enumerate(rows.iterrows()):
            v, mc = float(r["value"]), float(r["mcse"])
            ax.errorbar(v, y, xerr=[[v - max(v - 1.96 * mc, 0)], [min(v + 1.96 * mc, 1) - v]], fmt="o",
                        color=pal[meth.index(m) % len(pal)], capsize=3)
        ax.axvline(study.level, color="#c0392b", lw=1.2)
        ax.axvspan(study.level - 0.02, study.level + 0.02, color="#c0392b", alpha=0.08)
        ax.set_yticks(range(len(rows)))
        ax.set_yticklabels([study.method_labels.get(m, m) for m in rows.index], fontsize=9)
        ax.set_ylim(len(rows) - 0.5, -0.5)
        ax.set_title(study.estimand_labels.get(est, est), loc="left", fontsize=10)
    axes[-1, 0].set_xlabel(f"coverage of the {study.level:.0%} interval (bars: +-1.96 Monte-Carlo SE; "
                           f"red: nominal, band {study.level - 0.02:.2f}-{study.level + 0.02:.2f})")
    fig.tight_layout()
    return fig


def write_outputs(result: SimulationResult, out_dir: Path | str, *, study_file: Path | str | None = None,
                  backend: str = "", title: str | None = None) -> Path:
    """Write results.parquet (one row per replicate x method x estimand), estimates.csv/.json (the tidy
    performance table with MCSEs), report.html (+ figures/) and manifest.json into ``out_dir``."""
    from hostats.provenance import build_manifest, hash_inputs, write_manifest
    from hostats.report.figures import save_figure
    from hostats.report.html import FigureBlock, ReportContent, TableBlock, render_report
    from hostats.report.tables import write_csv

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    study, rep = result.study, result.replicates
    t0 = time.perf_counter()
    rep.to_parquet(out / "results.parquet", index=False)
    perf = result.performance()
    write_csv(perf, out / "estimates.csv")  # tidy: method, estimand, measure, kind, value, mcse
    (out / "estimates.json").write_text(perf.to_json(orient="records", indent=1) + "\n", encoding="utf-8")
    reps = int(rep["rep"].nunique())
    tables = [TableBlock(f"{study.estimand_labels.get(e, e)} (truth {_truth_text(rep, e)})", frame,
                         note="value (Monte-Carlo SE); " + ("rejection: of H0 estimand = "
                                                            f"{study.null_of(e):g}" if study.null_of(e) is not None
                                                            else "no null hypothesis"))
              for e, frame in performance_display(study, perf).items()]
    figures = []
    for name, fig, caption in (
            ("estimates", _estimates_figure(study, rep),
             "Estimate of every replicate by method (dots), their mean (black bar) and the true value (red line)."),
            ("coverage", _coverage_figure(study, perf),
             "Coverage of each method's 95% interval with +-1.96 Monte-Carlo SE; the band marks 0.93-0.97.")):
        saved = save_figure(fig, out / "figures", name)
        figures.append(FigureBlock(name, name.capitalize(), caption, saved["base64"], saved["png"], saved["svg"]))
    failures = result.failures
    diagnostics = []
    if len(failures):
        f = failures.groupby(["method", "estimand", "error"]).size().rename("replicates").reset_index()
        diagnostics.append(TableBlock("Method failures (counted in n_failed, never dropped)", f))
    warned = rep[rep["warning"].notna()].drop_duplicates(["rep", "method"])
    notes = [f"{m}: Python warnings in {k} of {reps} replicates (table below)"
             for m, k in warned.groupby("method", sort=False).size().items()]
    notes += [f"{m}: failed in {k} replicate(s) (table below; counted in n_failed)"
              for m, k in failures.drop_duplicates(["rep", "method"]).groupby("method", sort=False).size().items()]
    if len(warned):
        w = warned.assign(message=warned["warning"].str.replace(r"\d+(\.\d+)?", "#", regex=True).str[:160])
        w = w.groupby(["method", "message"]).size().rename("replicates").reset_index()
        diagnostics.append(TableBlock("Warnings issued by the methods (replicates; numbers shown as #)",
                                      w.sort_values("replicates", ascending=False).head(30)))
    content = ReportContent(
        name=f"simulation_study/{study.name}", title=title or f"Simulation study: {study.name}",
        question=study.description.split(" Data:")[0],
        data_source=[f"{reps} replicates, seed {result.seed}; replicate i drawn with numpy "
                     f"SeedSequence({result.seed}).spawn child i", f"study configuration: "
                     f"{json.dumps(_jsonable(study.config))}"],
        synthetic=False, extra_tables=tables, figures=figures, diagnostics=diagnostics, warnings=notes,
        section_titles={}, methods=[study.description,
                                    "Performance measures (bias, relative bias, empirical SE, model SE as the root "
                                    "mean of the squared model SEs, relative error in model SE, coverage, "
                                    "bias-eliminated coverage, rejection rate) and their Monte-Carlo SEs as in "
                                    "Morris, White & Crowther (2019), Table 6. Rejection counts the null outside "
                                    "the 95% interval (type-I error when the truth is the null, else power)."],
        references=[REFERENCE],
        provenance={"replicates": reps, "computed in this run": result.computed, "seed": result.seed,
                    "backend": backend or "serial", "seconds": f"{result.seconds:.1f}"},
        files=["estimates.csv", "estimates.json", "results.parquet", "figures/", "manifest.json"])
    render_report(content, out / "report.html")
    inputs = hash_inputs([study_file]) if study_file else []
    manifest = build_manifest(analysis=f"simulation_study/{study.name}", spec=study.fingerprint(),
                              spec_path=study_file, inputs=inputs, seed=result.seed,
                              timings={"replicates": round(result.seconds, 2),
                                       "report": round(time.perf_counter() - t0, 2)},
                              outputs=["report.html", "estimates.csv", "estimates.json", "results.parquet",
                                       "figures/"],
                              extra={"reps": reps, "computed": result.computed, "backend": backend or "serial",
                                     "failures": int(len(failures))})
    write_manifest(manifest, out / "manifest.json")
    return out / "report.html"


def _truth_text(rep: pd.DataFrame, estimand: str) -> str:
    t = rep.loc[rep["estimand"] == estimand, "truth"].to_numpy(float)
    if t.size and np.allclose(t, t[0]):
        return f"{t[0]:.4g}"
    return "drawn with each replicate"
