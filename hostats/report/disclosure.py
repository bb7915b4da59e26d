"""The disclosure policy of reports: which published numbers protect people, and how.

Protected are counts of people in a category and counts of events (Table 1 cells, ``n`` and ``events`` of
the estimates, numbers at risk, the flow diagram). Statistics (risks, ratios, means) are not counts; they
are withheld only where they rest on a count that is protected.

One :class:`DisclosurePolicy` (``[report] small_cell_threshold`` and ``[report] rounding``) serves every
part of a report, so that the same count is shown the same way everywhere:

- ``rounding = 5`` (the default; any base from 2): every count of people or events is rounded to the
  nearest multiple of 5, as OpenSAFELY releases its outputs, and percentages are computed from the
  rounded counts. Counts from 1 to threshold - 1 are shown as ``"<5"``. A difference of rounded counts is
  uncertain by about the base, so no other cell has to be hidden; a final exact check (an integer
  program over every line of a table, see :func:`pinned`) hides a further cell ("s") in the rare case
  where the rounding errors line up so that a small count is determined all the same.
- ``rounding = "midpoint6"``: OpenSAFELY's midpoint-6 rounding (0 stays 0, 1-6 shows 3, 7-12 shows 9,
  ...); no count is shown as ``"<5"``, since no value below 7 can be told apart.
- ``rounding = 0``: exact counts. A count from 1 to threshold - 1 is shown as ``"<5"``; the other counts
  of a table holding it (a Table 1 block, a section of the estimates at one time) are rounded to the
  threshold instead of hidden, so that a few patients with a *missing* value do not hide the hundreds with
  a known one; where that would still leave the small count determined, a further cell is suppressed
  ("s", the classic secondary suppression). The numbers at risk at time 0 and the flow diagram keep
  exact counts and are protected by suppression alone.

In the estimates the sums that tie the rows of a section together are written down and checked: a
contrast row "A vs B" counts both arms, a pooled row its sites, shares add up to their n, and the groups
add up to the section's total (assumed known from elsewhere). A plain proportion (estimate = events / n)
next to a small count is recomputed from the published counts (estimate and Wilson CI), since with its n
it would give its events back. :func:`pinned` decides whether a small count is still determined; the
independent attack in ``tests/report/test_disclosure_attack.py`` checks whole reports.

Hundepool et al., *Statistical Disclosure Control*, Wiley 2012, ch. 4 (cell suppression, rounding);
OpenSAFELY, "Disclosure control" (rounding of counts, midpoint-6 rounding).
"""
from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass

import numpy as np
import pandas as pd

SHOWN, PRIMARY, SECONDARY, HIDDEN = 0, 1, 2, 3
MIDPOINT6 = "midpoint6"
PRIMARY_TEXT = "<{t}"
SECONDARY_TEXT = "s"
DEFAULT_ROUNDING = 5
# estimates rows whose groups are totals of the other groups of their section (a pooled row over sites)
TOTAL_GROUPS = ("pooled", "new site", "overall", "all", "total")
_BIG = 1e7


@dataclass(frozen=True)
class DisclosurePolicy:
    """How counts of people and events are published.

    ``threshold``: counts from 1 to ``threshold - 1`` are small (shown as ``"<threshold"``).
    ``rounding``: 0 (exact counts; secondary protection by local rounding, else suppression), a base
    of 2 or more (every count rounded to the nearest multiple of it), or ``"midpoint6"``.
    """

    threshold: int = 5
    rounding: int | str = DEFAULT_ROUNDING

    def __post_init__(self) -> None:
        if isinstance(self.threshold, bool) or not isinstance(self.threshold, (int, np.integer)) or self.threshold < 1:
            raise ValueError(f"small_cell_threshold must be a positive integer, got {self.threshold!r}")
        r = self.rounding
        if isinstance(r, str):
            if r != MIDPOINT6:
                raise ValueError(f"rounding must be 0, a base of 2 or more, or {MIDPOINT6!r}; got {r!r}")
        elif isinstance(r, bool) or not isinstance(r, (int, np.integer)) or r < 0:
            raise ValueError(f"rounding must be 0, a base of 2 or more, or {MIDPOINT6!r}; got {r!r}")

    @classmethod
    def from_report(cls, report: Mapping) -> DisclosurePolicy:
        """The policy of a spec's ``[report]`` table (``small_cell_threshold``, ``rounding``)."""
        return cls(int(report.get("small_cell_threshold", 5)), report.get("rounding", DEFAULT_ROUNDING))

    # ----------------------------------------------------------------------------------------------
    # one count
    # ----------------------------------------------------------------------------------------------
    @property
    def midpoint(self) -> bool:
        return self.rounding == MIDPOINT6

    @property
    def base(self) -> int:
        """The rounding base of every shown count (1: exact)."""
        if self.midpoint:
            return 6
        return int(self.rounding) if int(self.rounding) >= 2 else 1

    @property
    def local_base(self) -> int:
        """The base of the protective rounding of exact tables (``rounding = 0``)."""
        return max(self.threshold, 2)

    def is_small(self, values) -> np.ndarray:
        """True where a count lies in 1..threshold-1 (zero is not disclosive; missing is not small)."""
        v = _floats(values)
        with np.errstate(invalid="ignore"):
            return (v >= 1) & (v < self.threshold)

    def shows_small(self) -> bool:
        """Whether small counts are shown as ``"<threshold"`` (not under midpoint-6 rounding)."""
        return not self.midpoint

    def round(self, value, base: int | None = None) -> int:
        """A count as published: rounded to the nearest multiple of ``base`` (halves up) or midpoint-6."""
        v = int(round(float(value)))
        b = self.base if base is None else base
        if self.midpoint and base is None:
            return 0 if v == 0 else math.ceil(v / 6) * 6 - 3
        if b <= 1:
            return v
        return int(math.floor(v / b + 0.5) * b)

    def interval(self, shown: int, base: int | None = None) -> tuple[int, int]:
        """The true counts a reader knows to be consistent with a shown (rounded) value."""
        b = self.base if base is None else base
        if self.midpoint and base is None:
            return (0, 0) if shown == 0 else (shown - 2, shown + 3)
        if b <= 1 or shown == 0:
            return shown, shown
        lo, hi = math.ceil(shown - b / 2), math.ceil(shown + b / 2) - 1
        return (max(lo, self.threshold if self.shows_small() else 1), hi)

    def count_value(self, value, base: int | None = None):
        """A count for a machine-readable export: the rounded integer, ``"<5"``, or None when missing."""
        if value is None or (isinstance(value, str) and not value):
            return None
        if isinstance(value, str):
            return value
        if pd.isna(value) or not np.isfinite(float(value)):
            return None
        if self.shows_small() and 1 <= float(value) < self.threshold:
            return PRIMARY_TEXT.format(t=self.threshold)
        return self.round(value, base)

    def format_count(self, value, base: int | None = None) -> str:
        """A count as text: ``"<5"`` when small, ``""`` when missing, else the rounded integer."""
        v = self.count_value(value, base)
        return "" if v is None else str(v)

    def format_counts(self, values: Iterable) -> list[str]:
        return [self.format_count(v) for v in values]

    def render(self, value, state: int, base: int | None = None) -> str:
        """Text of one count cell given its state (SHOWN, PRIMARY, SECONDARY, HIDDEN)."""
        if state == PRIMARY:
            return PRIMARY_TEXT.format(t=self.threshold)
        if state == SECONDARY:
            return SECONDARY_TEXT
        if state == HIDDEN:
            return ""
        return self.format_count(value, base)

    def percent(self, num, den, num_base: int | None = None, den_base: int | None = None) -> str:
        """A percentage from the published (rounded) counts, one decimal; ``""`` without a denominator."""
        n, d = self.round(num, num_base), self.round(den, den_base)
        return f"{100.0 * n / d:.1f}%" if d > 0 else ""

    def describe(self) -> str:
        """The policy in words, for the methods section and the data section of a report (made from the
        settings: the threshold, the rounding)."""
        t = self.threshold
        if self.midpoint:
            counts = ("counts of people and events are shown after midpoint-6 rounding (0 stays 0, 1-6 shows as 3, "
                      "7-12 as 9, ...) and percentages are computed from the rounded counts")
        elif self.base > 1:
            counts = (f"counts of people and events are rounded to the nearest {self.base}; counts from 1 to {t - 1} "
                      f"are shown as \"<{t}\"; percentages are computed from the rounded counts")
        else:
            counts = (f"counts of people and events are shown exactly, except that counts from 1 to {t - 1} are "
                      f"shown as \"<{t}\" and, in a table holding such a count, the other counts of its rows and "
                      f"columns are rounded to the nearest {self.local_base}")
        return (f"Disclosure control: {counts}; estimates resting on fewer than {t} people or events are withheld, "
                "and so is a difference or ratio that would give such an estimate back with the "
                "other arm's; a further count is withheld (\"s\") where the totals would still reveal a small one.")

    # ----------------------------------------------------------------------------------------------
    # a table with margins
    # ----------------------------------------------------------------------------------------------
    def protect_table(self, counts, hidden=None, *, row_totals_shown: bool = True,
                      col_totals_shown: bool = True, exact_col_totals: bool = False,
                      exact_row_totals: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """States and rounding bases of an r x c count table with its margins.

        Returns ``(state, base)``, both ``(r+1) x (c+1)`` (row totals as the last column, column totals and
        the grand total as the last row): state SHOWN, PRIMARY (``"<5"``), SECONDARY (``"s"``) or HIDDEN
        (never displayed: the "no" level of a yes/no variable, a total the table does not show); base the
        rounding base of a shown cell. ``exact_col_totals`` / ``exact_row_totals``: with exact counts, the
        column (row) totals are published elsewhere exactly (the "n=" of Table 1's header, the number
        analysed) and are not rounded locally.
        """
        m = _table(counts)
        r, c = m.shape
        ext = _with_margins(m)
        hid = _hidden_cells(ext, hidden, row_totals_shown, col_totals_shown)
        sensitive = self.is_small(ext)
        state = np.where(hid, HIDDEN, SHOWN)
        if self.shows_small():
            state[sensitive & ~hid] = PRIMARY
        base = np.full(ext.shape, self.base, dtype=int)
        if self.base == 1 and sensitive.any():
            # exact counts: the table holding a small count is rounded instead of having cells hidden
            base[:, :] = self.local_base
            if exact_col_totals:
                base[r, :] = 1
            if exact_row_totals:
                base[:, c] = 1
        if not sensitive.any():
            return state, base
        eqs = _margin_equations(r, c)
        values = ext.ravel()
        while True:
            lo, hi = self._bounds(values, state.ravel(), base.ravel())
            targets = np.flatnonzero(sensitive.ravel())
            pins = pinned(eqs, lo, hi, targets)
            if not pins:
                return state, base
            k = pins[0]
            i, j = divmod(k, c + 1)
            cands = [(i, q) for q in range(c + 1)] + [(q, j) for q in range(r + 1)]
            cands = [p for p in cands if state[p] == SHOWN] or [tuple(p) for p in np.argwhere(state == SHOWN)]
            if not cands:
                return state, base
            cands.sort(key=lambda p: (p[0] == r or p[1] == c, ext[p] == 0, ext[p]))
            state[cands[0]] = SECONDARY

    def _bounds(self, values: np.ndarray, state: np.ndarray, base: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """What a reader knows of each cell: [lo, hi] from its shown text."""
        lo = np.zeros(len(values))
        hi = np.full(len(values), _BIG)
        for k, (v, st, b) in enumerate(zip(values, state, base, strict=True)):
            if st == SHOWN:
                shown = self.round(v, b if not self.midpoint else None)
                lo[k], hi[k] = self.interval(shown, b if not self.midpoint else None)
            elif st == PRIMARY:
                lo[k], hi[k] = 1, self.threshold - 1
        return lo, hi

    # ----------------------------------------------------------------------------------------------
    # the estimates
    # ----------------------------------------------------------------------------------------------
    def protect_estimates(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Disclosure control of a tidy estimates frame (for every export: HTML, CSV, JSON).

        Counts (``n``, ``events``) become their published form (rounded integers, ``"<5"``, ``"s"``);
        the estimate, CI and p-value of a row resting on a small count are withheld, with the reason in
        ``note``, and so are those of a row whose events had to be withheld ("s"). Returns a copy.
        """
        out = frame.copy()
        if out.empty:
            return out
        cols = [c for c in ("n", "events") if c in out.columns]
        nums = {c: pd.to_numeric(frame[c], errors="coerce").to_numpy(float) for c in cols}
        small = np.zeros(len(out), dtype=bool)
        for c in cols:
            small |= self.is_small(nums[c])
        states = {c: np.where(self.is_small(nums[c]) & self.shows_small(), PRIMARY, SHOWN) for c in cols}
        bases = {c: np.full(len(out), self.base, dtype=int) for c in cols}
        if "group" in out.columns and "section" in out.columns:
            for c in cols:
                self._secondary_estimates(out, nums[c], states[c], bases[c], c, nums.get("n"))
        for c in cols:
            raw = frame[c].to_numpy(dtype=object)
            vals = [(r if isinstance(r, str) and r else None) if not np.isfinite(v)  # already published text
                    else (self.render(v, st) if st != SHOWN else self.count_value(v, None if self.midpoint else b))
                    for r, v, st, b in zip(raw, nums[c], states[c], bases[c], strict=True)]
            out[c] = pd.Series(vals, index=out.index, dtype=object)
        if {"n", "events", "estimate"} <= set(out.columns):
            self._proportions_from_published(frame, out, nums["n"], nums["events"], small, bases)
        withheld = small.copy()
        if "events" in states and "group" in out.columns:
            # an arm's risk with its n gives its events back; a contrast's estimate does not
            g = out["group"].astype(str).to_numpy()
            m = out["measure"].astype(str).to_numpy() if "measure" in out.columns else np.array([""] * len(out))
            contrast = np.array([cell_key(a, b)[0] == "contrast" for a, b in zip(g, m, strict=True)])
            withheld |= (states["events"] == SECONDARY) & ~contrast
        revealing = revealing_contrasts(out, withheld) & ~withheld
        withheld |= revealing
        if withheld.any():
            for col in ("estimate", "ci_lower", "ci_upper", "p_value"):
                if col in out.columns:
                    out[col] = out[col].astype(object)
                    out.loc[withheld, col] = None
            note = np.where(small, f"withheld: based on fewer than {self.threshold} people or events",
                            np.where(revealing, "withheld: with the other arm's estimate it would reveal an estimate "
                                                "withheld for small numbers",
                                     "withheld: would reveal a small count elsewhere in the table"))
            if "note" in out.columns:
                out["note"] = out["note"].astype(object)
                out.loc[withheld, "note"] = note[withheld]
            else:
                out["note"] = np.where(withheld, note, "")
        return out

    def _secondary_estimates(self, out: pd.DataFrame, values: np.ndarray, state: np.ndarray, base: np.ndarray,
                             col: str, n_values: np.ndarray | None) -> None:
        """Secondary protection of one count column of the estimates, section by section (and time).

        With exact counts the other counts of a block holding a small one are rounded to the threshold
        (``base``); then, while an exact check finds a small count determined, a complementary cell is
        withheld (``state`` SECONDARY): the one that frees it, preferring contrasts, then small arms.
        """
        keys = [k for k in ("section", "time_days") if k in out.columns]
        groups = out["group"].astype(object).where(out["group"].notna(), "").astype(str).to_numpy()
        measures = out["measure"].astype(str).to_numpy() if "measure" in out.columns else np.array([""] * len(out))
        for _, idx in out.groupby(keys, dropna=False, sort=False).indices.items():
            idx = np.asarray(idx)
            if not self.is_small(values[idx]).any():
                continue
            block = _Block.build(idx, groups, measures, values, n_values if col == "events" else None)
            if block is None:
                continue
            cell_state = np.array([SHOWN] * len(block.cells))
            for k, rows in enumerate(block.rows):
                if (state[rows] == PRIMARY).any():
                    cell_state[k] = PRIMARY
            cell_base = np.full(len(block.cells), self.base)
            if self.base == 1:
                cell_base[:] = self.local_base
                base[idx] = self.local_base
            found = self._block_pins(block, cell_state, cell_base)
            while found:
                cands = block.candidates(found[0], cell_state)
                if not cands:
                    break
                for q in cands:  # the first complement that frees the pinned count, else the first
                    trial = cell_state.copy()
                    trial[q] = SECONDARY
                    if found[0] not in self._block_pins(block, trial, cell_base):
                        break
                else:
                    q = cands[0]
                cell_state[q] = SECONDARY
                found = self._block_pins(block, cell_state, cell_base)
            for k, rows in enumerate(block.rows):
                if cell_state[k] == SECONDARY:
                    state[rows] = SECONDARY

    def _proportions_from_published(self, frame: pd.DataFrame, out: pd.DataFrame, n: np.ndarray, events: np.ndarray,
                                    small: np.ndarray, bases: dict[str, np.ndarray]) -> None:
        """A plain proportion (estimate = events / n) next to a small count: its estimate and Wilson CI are
        recomputed from the published (rounded) counts, since with its n it would give its events back,
        and they the small count by subtraction (OpenSAFELY: percentages from rounded counts)."""
        from hostats.stats.incidence import binomial_ci

        keys = [k for k in ("section", "time_days") if k in frame.columns]
        if not keys or not small.any():
            return
        near = pd.Series(small, index=frame.index).groupby([frame[k] for k in keys], dropna=False,
                                                           sort=False).transform("any").to_numpy(bool)
        est = pd.to_numeric(frame["estimate"], errors="coerce").to_numpy(float)
        with np.errstate(invalid="ignore", divide="ignore"):
            plain = np.isfinite(est) & (n > 0) & (np.abs(est - events / n) < 1e-9)
        rows = np.flatnonzero(near & plain & ~small)
        if not len(rows):
            return
        mid = self.midpoint
        pub_n = np.array([self.round(v, None if mid else b) for v, b in zip(n[rows], bases["n"][rows], strict=True)],
                         dtype=float)
        pub_e = np.array([self.round(v, None if mid else b)
                          for v, b in zip(events[rows], bases["events"][rows], strict=True)], dtype=float)
        pub_e = np.minimum(pub_e, pub_n)
        level = (pd.to_numeric(frame["ci_level"], errors="coerce").fillna(0.95).to_numpy(float)[rows]
                 if "ci_level" in frame.columns else np.full(len(rows), 0.95))
        ok = pub_n > 0
        for col in ("estimate", "ci_lower", "ci_upper"):
            if col in out.columns:
                out[col] = out[col].astype(object)
        for j, r in enumerate(rows):
            lab = out.index[r]
            if not ok[j]:
                continue
            lo, hi = binomial_ci(np.array([pub_e[j]]), np.array([pub_n[j]]), float(level[j]))
            out.at[lab, "estimate"] = pub_e[j] / pub_n[j]
            if "ci_lower" in out.columns:
                out.at[lab, "ci_lower"], out.at[lab, "ci_upper"] = float(lo[0]), float(hi[0])
        note = "estimate and Wilson CI from the published (rounded) counts: with its n it would reveal a small count"
        if "note" not in out.columns:
            out["note"] = ""
        out["note"] = out["note"].astype(object)
        out.loc[out.index[rows[ok]], "note"] = note

    def _block_pins(self, block: _Block, cell_state: np.ndarray, cell_base: np.ndarray) -> list[int]:
        """Small cells of a block that the published cells and the block's sums determine."""
        lo, hi = self._bounds(block.values, cell_state, cell_base)
        t = block.known_total
        if not block.total_published:  # known from elsewhere (the worst case): as it would be published there
            lo[t], hi[t] = (self.interval(self.round(block.total_value)) if self.base > 1
                            else (block.total_value, block.total_value))
        return pinned(block.equations, lo, hi, np.flatnonzero(self.is_small(block.values)))

    # ----------------------------------------------------------------------------------------------
    # the flow diagram
    # ----------------------------------------------------------------------------------------------
    def protect_flow(self, rows_read: float, excluded) -> dict[str, object]:
        """Counts of a flow diagram: rows read, then one exclusion per step (``excluded[0]`` is the read
        step and ignored), each followed by the rows remaining; the last remaining is the number analysed.

        Returns ``{"read": text, "excluded": [text per step], "remaining": [text per step] or None when the
        intermediate "remaining" boxes must not be shown, "analysed": text}``. A small exclusion shows as
        "<5"; when the chain read - exclusions = remaining would still determine it, the remaining boxes
        are left out, then the smallest other exclusion and finally the rows read are withheld ("s").
        """
        exc = _floats(excluded).copy()
        exc[0] = 0.0
        k = len(exc)
        read = float(rows_read)
        rem = read - np.cumsum(exc)
        # cells: read, exc[1..k-1], rem[1..k-1]
        values = np.concatenate([[read], exc[1:], rem[1:]])
        n_exc = k - 1
        eqs = []
        for i in range(1, k):  # rem_i - read + sum_{j<=i} exc_j = 0
            v = np.zeros(len(values))
            v[0] = -1.0
            v[1:1 + i] = 1.0
            v[n_exc + i] = 1.0
            eqs.append(v)
        state = np.full(len(values), SHOWN)
        sensitive = self.is_small(values)
        if self.shows_small():
            state[sensitive] = PRIMARY
        base = np.full(len(values), self.base)
        fixed = len(values) - 1  # the number analysed: published everywhere, never withheld
        if self.base == 1:
            base[fixed] = 1
        hide_remaining = False
        while sensitive.any():
            lo, hi = self._bounds(values, state, base)
            if hide_remaining:
                lo[1 + n_exc:fixed], hi[1 + n_exc:fixed] = 0, _BIG
            pins = pinned(np.array(eqs), lo, hi, np.flatnonzero(sensitive))
            if not pins:
                break
            if not hide_remaining and n_exc > 1:
                hide_remaining = True
                continue
            cand = [j for j in range(1, 1 + n_exc) if state[j] == SHOWN and values[j] > 0]
            if cand:
                state[min(cand, key=lambda j: values[j])] = SECONDARY
            elif state[0] == SHOWN:
                state[0] = SECONDARY
            else:
                break

        def text(j: int) -> str:
            return self.render(values[j], state[j], int(base[j]) if not self.midpoint else None)

        return {"read": text(0), "excluded": [""] + [text(j) for j in range(1, 1 + n_exc)],
                "remaining": None if hide_remaining else [""] + [text(j) for j in range(1 + n_exc, len(values))],
                "analysed": text(fixed) if k > 1 else text(0)}

def cell_key(group: str, measure: str) -> tuple:
    """What an estimates row counts: ``("arm", name)``, ``("contrast", a, b)`` (a row of "a vs b" that is
    not one arm's risk: a difference, a ratio) or ``("total",)`` (a pooled row)."""
    g, m = str(group), str(measure)
    if " vs " in g:
        a, b = (x.strip() for x in g.split(" vs ", 1))
        if "treated" in m:
            return ("arm", a)
        if "control" in m:
            return ("arm", b)
        return ("contrast", a, b)
    if g.lower() in TOTAL_GROUPS:
        return ("total",)
    return ("arm", g)


def revealing_contrasts(frame: pd.DataFrame, withheld: np.ndarray) -> np.ndarray:
    """Contrast rows (differences, ratios of "a vs b") of a section, at one time, one of whose arms has an
    estimate withheld: with the other arm's shown estimate the contrast would give the withheld one back
    (a risk of 27.6% and a difference of -11.4 points reveal a withheld 16.2%), so it is withheld too."""
    out = np.zeros(len(frame), dtype=bool)
    withheld = np.asarray(withheld, dtype=bool)
    if "group" not in frame.columns or not withheld.any():
        return out
    groups = frame["group"].astype(object).where(frame["group"].notna(), "").astype(str).to_numpy()
    measures = (frame["measure"].astype(str).to_numpy() if "measure" in frame.columns
                else np.array([""] * len(frame)))
    keys = [k for k in ("section", "time_days") if k in frame.columns]
    blocks = (frame.groupby(keys, dropna=False, sort=False).indices.values() if keys
              else [np.arange(len(frame))])
    for idx in blocks:
        cells = [(int(i), cell_key(groups[i], measures[i])) for i in idx]
        hidden = {c[1] for i, c in cells if c[0] == "arm" and withheld[i]}
        for i, c in cells:
            out[i] = c[0] == "contrast" and bool(hidden & set(c[1:]))
    return out


@dataclass
class _Block:
    """The count cells of one section (at one time) and the sums that tie them together."""

    cells: list[tuple]           # ("arm", name) | ("contrast", a, b) | ("total",)
    rows: list[np.ndarray]       # rows of the frame showing each cell
    values: np.ndarray
    equations: np.ndarray        # each row: coefficients with sum = 0
    known_total: int             # index of the total cell
    total_value: float
    total_published: bool

    @classmethod
    def build(cls, idx: np.ndarray, groups: np.ndarray, measures: np.ndarray, values: np.ndarray,
              n_values: np.ndarray | None) -> _Block | None:
        cells: dict[tuple, list[int]] = {}
        vals: dict[tuple, float] = {}
        for i in idx:
            v = values[i]
            if not np.isfinite(v):
                continue
            key = cell_key(groups[i], measures[i])
            cells.setdefault(key, []).append(int(i))
            vals.setdefault(key, v)
        if not cells:
            return None
        published = ("total",) in cells
        if not published:
            arms = [k for k in cells if k[0] == "arm"]
            total = float(sum(vals[k] for k in arms))
            # shares of one n (a category's distribution): the events add up to that n, which is shown
            if n_values is not None:
                ns = {n_values[i] for k in arms for i in cells[k] if np.isfinite(n_values[i])}
                if len(ns) == 1 and abs(next(iter(ns)) - total) < 0.5:
                    published = True
            cells[("total",)] = []
            vals[("total",)] = total
        order = list(cells)
        pos = {k: j for j, k in enumerate(order)}
        eqs = []
        arms = [k for k in order if k[0] == "arm"]
        if len(arms) >= 1:
            v = np.zeros(len(order))
            for k in arms:
                v[pos[k]] = 1.0
            v[pos[("total",)]] = -1.0
            eqs.append(v)
        for k in order:
            if k[0] == "contrast" and ("arm", k[1]) in pos and ("arm", k[2]) in pos:
                v = np.zeros(len(order))
                v[pos[k]], v[pos[("arm", k[1])]], v[pos[("arm", k[2])]] = 1.0, -1.0, -1.0
                eqs.append(v)
        return cls(order, [np.asarray(cells[k], dtype=int) for k in order],
                   np.array([vals[k] for k in order], dtype=float), np.array(eqs) if eqs else np.zeros((0, len(order))),
                   pos[("total",)], vals[("total",)], published)

    def candidates(self, target: int, cell_state: np.ndarray) -> list[int]:
        """Cells that may be withheld next, in order: contrasts holding the target, arms from the smallest,
        then the rest (a published total last)."""
        t = self.cells[target]
        shown = [k for k in range(len(self.cells)) if cell_state[k] == SHOWN
                 and (k != self.known_total or self.total_published)]
        contrasts = [k for k in shown if self.cells[k][0] == "contrast" and t[0] == "arm" and t[1] in self.cells[k][1:]]
        arms = sorted((k for k in shown if self.cells[k][0] == "arm"), key=lambda k: (self.values[k] == 0, self.values[k]))
        rest = [k for k in shown if k not in contrasts and k not in arms and k != self.known_total]
        total = [k for k in shown if k == self.known_total]
        return contrasts + arms + rest + total


# --------------------------------------------------------------------------------------------------
# the exact check: can a reader pin a protected count down to one value?
# --------------------------------------------------------------------------------------------------

def pinned(equations: np.ndarray, lo: np.ndarray, hi: np.ndarray, targets: Iterable[int]) -> list[int]:
    """Targets whose value is determined by ``equations @ x = 0`` and ``lo <= x <= hi`` over the integers.

    For each target cell the smallest and largest integer value consistent with everything published are
    found by two mixed-integer programs (scipy's HiGHS); a target is pinned when they coincide.
    """
    from scipy.optimize import Bounds, LinearConstraint, milp

    targets = list(targets)
    if not targets:
        return []
    a = np.asarray(equations, dtype=float)
    k = len(lo)
    cons = [LinearConstraint(a, 0, 0)] if a.size else []
    bounds = Bounds(np.asarray(lo, float), np.asarray(hi, float))
    out = []
    for t in targets:
        ends = []
        for sign in (1.0, -1.0):
            c = np.zeros(k)
            c[t] = sign
            res = milp(c, constraints=cons, integrality=np.ones(k), bounds=bounds)
            if res.status != 0 or res.x is None:
                ends = None
                break
            ends.append(round(float(res.x[t])))
        if ends is not None and ends[0] == ends[1]:
            out.append(int(t))
    return out


def _floats(values) -> np.ndarray:
    a = np.asarray(values, dtype=object) if not isinstance(values, np.ndarray) else values
    if a.dtype.kind in "biuf":
        return a.astype(float)
    flat = pd.to_numeric(pd.Series(a.ravel(), dtype="object"), errors="coerce").to_numpy(float)
    return flat.reshape(a.shape)


def _table(counts) -> np.ndarray:
    m = np.asarray(counts, dtype=float)
    if m.ndim != 2:
        raise ValueError("counts must be a two-dimensional table")
    if np.any(m < 0) or np.any(~np.isfinite(m)):
        raise ValueError("counts must be finite and non-negative")
    return m


def _with_margins(m: np.ndarray) -> np.ndarray:
    r, c = m.shape
    ext = np.zeros((r + 1, c + 1))
    ext[:r, :c] = m
    ext[:r, c] = m.sum(axis=1)
    ext[r, :c] = m.sum(axis=0)
    ext[r, c] = m.sum()
    return ext


def _hidden_cells(ext: np.ndarray, hidden, row_totals_shown: bool, col_totals_shown: bool) -> np.ndarray:
    """Cells of a table with margins (``_with_margins``) that are not published: those the caller hides
    and the row/column totals that are not shown."""
    r, c = ext.shape[0] - 1, ext.shape[1] - 1
    hid = np.zeros(ext.shape, dtype=bool)
    if hidden is not None:
        hid[:r, :c] = np.asarray(hidden, dtype=bool)
    hid[:, c] |= not row_totals_shown
    hid[r, :] |= not col_totals_shown
    return hid


def _margin_equations(r: int, c: int) -> np.ndarray:
    """Row and column sums of an (r+1) x (c+1) table with margins, flattened row-major: each = 0."""
    eqs = []
    for i in range(r + 1):
        v = np.zeros((r + 1, c + 1))
        v[i, :c] = 1.0
        v[i, c] = -1.0
        eqs.append(v.ravel())
    for j in range(c + 1):
        v = np.zeros((r + 1, c + 1))
        v[:r, j] = 1.0
        v[r, j] = -1.0
        eqs.append(v.ravel())
    return np.array(eqs)


def suppress_table(counts, threshold: int = 5, *, hidden=None, row_totals_shown: bool = True,
                   col_totals_shown: bool = True) -> np.ndarray:
    """Classic cell suppression of a count table with margins (exact counts, no rounding).

    Returns an ``(r+1) x (c+1)`` state array (SHOWN, PRIMARY, SECONDARY, HIDDEN). A line (a row or a
    column with its total) whose entries are all known except one reveals that one by subtraction; when it
    is sensitive, the smallest other shown cell of the line is suppressed too; when it is merely hidden, it
    becomes derivable and may in turn reveal others. A final exact check (linear algebra over all line
    equations together) adds suppressions until no sensitive cell can be recovered.
    """
    m = _table(counts)
    r, c = m.shape
    ext = _with_margins(m)
    state = np.zeros(ext.shape, dtype=int)
    hid = _hidden_cells(ext, hidden, row_totals_shown, col_totals_shown)
    sensitive = (ext >= 1) & (ext < threshold)
    state[sensitive] = PRIMARY
    state[hid & ~sensitive] = HIDDEN
    unknown = state > 0
    lines = [("row", i) for i in range(r + 1)] + [("col", j) for j in range(c + 1)]
    changed = True
    while changed:
        changed = False
        for kind, k in lines:  # a loop over the lines of a small table, not over patients
            idx = [(k, j) for j in range(c + 1)] if kind == "row" else [(i, k) for i in range(r + 1)]
            unk = [p for p in idx if unknown[p]]
            if len(unk) != 1:
                continue
            p = unk[0]
            if state[p] == HIDDEN and not sensitive[p]:
                unknown[p] = False  # derivable, and harmless to know
                changed = True
                continue
            cands = [q for q in idx if not unknown[q] and state[q] == SHOWN]
            if not cands:
                continue
            total_pos = idx[-1]
            cands.sort(key=lambda q: (q == total_pos, ext[q] == 0, ext[q]))
            state[cands[0]] = SECONDARY
            unknown[cands[0]] = True
            changed = True
    while True:
        det = [p for p in _recoverable(state > 0) if sensitive[p]]
        if not det:
            return state
        i, j = det[0]
        line = [(i, k) for k in range(c + 1)] + [(k, j) for k in range(r + 1)]
        pool = [q for q in line if state[q] == SHOWN] or [tuple(q) for q in np.argwhere(state == SHOWN)]
        if not pool:
            return state
        pool.sort(key=lambda q: (q[0] == r or q[1] == c, ext[q] == 0, ext[q]))
        state[pool[0]] = SECONDARY


def _recoverable(unknown: np.ndarray) -> list[tuple[int, int]]:
    """Unknown cells of an (r+1) x (c+1) table with margins that the line equations determine."""
    cells = [tuple(p) for p in np.argwhere(unknown)]
    if not cells:
        return []
    rows_, cols_ = unknown.shape
    a = _margin_equations(rows_ - 1, cols_ - 1)[:, [i * cols_ + j for i, j in cells]]
    _, sv, vt = np.linalg.svd(a)
    rank = int(np.sum(sv > 1e-9 * max(1.0, sv.max() if sv.size else 1.0)))
    null = vt[rank:]
    if null.shape[0] == 0:
        return cells
    return [p for k, p in enumerate(cells) if np.all(np.abs(null[:, k]) < 1e-9)]


# --------------------------------------------------------------------------------------------------
# the policy of the report being written
# --------------------------------------------------------------------------------------------------

_ACTIVE: ContextVar[DisclosurePolicy | None] = ContextVar("hostats_disclosure_policy", default=None)


def policy_for(threshold: int | None = None, policy: DisclosurePolicy | None = None) -> DisclosurePolicy:
    """The policy to apply: ``policy`` if given, else the one of the report being written (see
    :func:`use_policy`) when its threshold matches, else the default policy with ``threshold``."""
    if policy is not None:
        return policy
    active = _ACTIVE.get()
    if active is not None and (threshold is None or active.threshold == threshold):
        return active
    return DisclosurePolicy(5 if threshold is None else int(threshold))


@contextlib.contextmanager
def use_policy(policy: DisclosurePolicy) -> Iterator[DisclosurePolicy]:
    """Within the block, report functions called with only a threshold use ``policy`` (the analysis
    runner sets the spec's policy while its sections draw figures and tables)."""
    token = _ACTIVE.set(policy)
    try:
        yield policy
    finally:
        _ACTIVE.reset(token)
