"""The metrics of a cohort run, per protocol, with 95% intervals, and the paired differences
between protocols (docs/cohort.md#the-metrics).

Every interval is a percentile bootstrap over patients (`B` resamples of the N patient indices
with replacement, seeded): the same resample for every protocol, since every protocol saw the
same patients (common random numbers), so a difference between two protocols is bootstrapped
as a difference of the same resampled cohort, pairs kept together. Rates are ratios of totals
(events over patient-years, misses over episodes); the delay and peak figures are medians over
the episodes of the resampled patients (each episode weighted by how often its patient was
drawn).

    c = Collector(["anakinra", "6-monthly"], patients=1000)
    c.add(table)                      # rows of run.ROW_FIELDS, any order, any chunks
    m = c.metrics(resamples=1000, seed=7)
    m.value("anakinra", "tests_per_py")  -> Estimate(value, low, high)
    m.difference("6-monthly", "median_delay_3x")  -> Estimate (6-monthly minus anakinra)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

import numpy as np

THRESHOLDS = (3, 5)

# (name, numerator column, denominator column, scale): a ratio of totals
RATIOS = [
    ("tests_per_py", "draws", "years", 1.0),
    ("liver_tests_per_py", "liver_draws", "years", 1.0),
    ("holds_per_kpy", "holds", "years", 1000.0),
    ("reductions_per_kpy", "reductions", "years", 1000.0),
    ("stops_per_kpy", "stops", "years", 1000.0),
    ("referrals_per_kpy", "referrals", "years", 1000.0),
    ("false_alarms_per_true", "false_alarms", "true_alarms", 1.0),
] + [(f"missed_share_{x}x", f"missed_{x}x", f"episodes_{x}x", 1.0) for x in THRESHOLDS] \
  + [(f"lasting_missed_share_{x}x", f"lasting_missed_{x}x", f"lasting_{x}x", 1.0) for x in THRESHOLDS] \
  + [(f"within_30_share_{x}x", f"within_30_{x}x", f"episodes_{x}x", 1.0) for x in THRESHOLDS]

# totals shown as counts (no interval: they describe the run)
TOTALS = ["years", "draws", "liver_draws", "holds", "reductions", "stops", "referrals", "true_alarms", "false_alarms"] + \
    [f"{k}_{x}x" for x in THRESHOLDS for k in ("episodes", "detected", "missed", "lasting", "lasting_missed", "within_30")]

MEDIANS = [(f"median_delay_{x}x", f"delays_{x}x") for x in THRESHOLDS] + \
    [(f"median_peak_{x}x", f"peaks_{x}x") for x in THRESHOLDS]

LABELS = {
    "tests_per_py": "blood draws per patient-year",
    "liver_tests_per_py": "liver panels (ALT drawn) per patient-year",
    "holds_per_kpy": "holds per 1,000 patient-years",
    "reductions_per_kpy": "dose reductions per 1,000 patient-years",
    "stops_per_kpy": "stops per 1,000 patient-years",
    "referrals_per_kpy": "referrals per 1,000 patient-years",
    "false_alarms_per_true": "false alarms per true detection",
    "missed_share_3x": "share of >3x ULN episodes missed",
    "missed_share_5x": "share of >5x ULN episodes missed",
    "lasting_missed_share_3x": "share of lasting >3x ULN episodes missed",
    "lasting_missed_share_5x": "share of lasting >5x ULN episodes missed",
    "within_30_share_3x": "share of >3x ULN episodes acted on within 30 days",
    "within_30_share_5x": "share of >5x ULN episodes acted on within 30 days",
    "median_delay_3x": "median days from crossing 3x ULN to an intervention",
    "median_delay_5x": "median days from crossing 5x ULN to an intervention",
    "median_peak_3x": "median ALT multiple reached by the intervention (>3x episodes)",
    "median_peak_5x": "median ALT multiple reached by the intervention (>5x episodes)",
}
METRICS = [r[0] for r in RATIOS] + [m[0] for m in MEDIANS]


@dataclass(frozen=True)
class Estimate:
    value: float  # nan when undefined (no episode, no true detection)
    low: float
    high: float

    def text(self, digits: int = 2) -> str:
        if np.isnan(self.value):
            return "n/a"
        if np.isnan(self.low):
            return f"{self.value:.{digits}f}"
        return f"{self.value:.{digits}f} ({self.low:.{digits}f} to {self.high:.{digits}f})"


@dataclass
class Metrics:
    protocols: list
    patients: int
    resamples: int
    values: dict = field(default_factory=dict)  # protocol -> metric -> Estimate
    differences: dict = field(default_factory=dict)  # protocol (not the first) -> metric -> Estimate
    totals: dict = field(default_factory=dict)  # protocol -> column -> total
    delays: dict = field(default_factory=dict)  # protocol -> threshold -> np.array of delays (days)
    peaks: dict = field(default_factory=dict)

    def value(self, protocol: str, metric: str) -> Estimate:
        return self.values[protocol][metric]

    def difference(self, protocol: str, metric: str) -> Estimate:
        return self.differences[protocol][metric]

    def to_dict(self) -> dict:
        def est(e: Estimate) -> dict:
            return {"value": _num(e.value), "low": _num(e.low), "high": _num(e.high)}

        return {
            "patients": self.patients, "resamples": self.resamples, "reference": self.protocols[0],
            "protocols": {p: {"metrics": {m: est(e) for m, e in self.values[p].items()},
                              "totals": self.totals[p]} for p in self.protocols},
            "differences": {p: {m: est(e) for m, e in d.items()} for p, d in self.differences.items()},
        }


def _num(x: float):
    return None if np.isnan(x) else float(x)


class Collector:
    """Per-patient columns of every protocol, gathered from the summary rows as they come
    (only the numbers the metrics need: a few dozen bytes a patient and protocol)."""

    def __init__(self, protocols: Iterable[str], patients: int) -> None:
        self.protocols = list(protocols)
        self.n = patients
        cols = sorted({r[1] for r in RATIOS} | {r[2] for r in RATIOS} | set(TOTALS))
        self.columns = cols
        self.data = {p: {c: np.zeros(patients) for c in cols} for p in self.protocols}
        self.episodes = {p: {col: ([], []) for _, col in MEDIANS} for p in self.protocols}  # (patients, values)

    def add(self, table) -> None:
        """Add summary rows: a pyarrow Table (read by column) or a list of dicts of run.ROW_FIELDS."""
        if not hasattr(table, "column"):
            for r in table:
                self.add_row(r)
            return
        if table.num_rows == 0:
            return
        ok = np.asarray(table.column("status").to_pylist(), dtype=object) == "ok"
        patients = table.column("patient").to_numpy()
        protocols = np.asarray(table.column("protocol").to_pylist(), dtype=object)
        for p in self.protocols:
            mine = ok & (protocols == p)
            if not mine.any():
                continue
            idx = patients[mine]
            d = self.data[p]
            for c in self.columns:
                d[c][idx] = table.column(c).to_numpy(zero_copy_only=False)[mine]
            for _, col in MEDIANS:
                lists = table.column(col).to_pylist()
                pats, vals = self.episodes[p][col]
                for i in np.flatnonzero(mine):
                    values = lists[i]
                    if values:
                        pats.extend([int(patients[i])] * len(values))
                        vals.extend(values)

    def add_row(self, r: dict) -> None:
        p = r["protocol"]
        i = r["patient"]
        if r.get("status", "ok") != "ok":
            return  # a patient the loop could not run counts nowhere (listed in the report)
        d = self.data[p]
        for c in self.columns:
            d[c][i] = r[c] or 0
        for _, col in MEDIANS:
            values = r[col] or ()
            pats, vals = self.episodes[p][col]
            pats.extend([i] * len(values))
            vals.extend(values)

    def metrics(self, *, resamples: int = 1000, seed: int = 0, block: int = 50) -> Metrics:
        ref = self.protocols[0]
        self._matrix = {}
        out = Metrics(self.protocols, self.n, resamples)
        eps = {p: {col: (np.asarray(pats, dtype=np.int64), np.asarray(vals, dtype=float))
                   for col, (pats, vals) in self.episodes[p].items()} for p in self.protocols}
        point = {p: self._point(p, np.ones(self.n)[None, :], eps[p]) for p in self.protocols}
        reps = {p: [] for p in self.protocols}
        rng = np.random.default_rng([seed, 0xB0075])
        done = 0
        while done < resamples:
            k = min(block, resamples - done)
            if self.n:  # k resamples of n patients with replacement: how often each patient is drawn
                draws = rng.integers(0, self.n, (k, self.n)) + (np.arange(k) * self.n)[:, None]
                w = np.bincount(draws.ravel(), minlength=k * self.n).reshape(k, self.n).astype(np.float64)
            else:
                w = np.zeros((k, 0))
            for p in self.protocols:
                reps[p].append(self._point(p, w, eps[p]))
            done += k
        reps = {p: {m: np.concatenate([r[m] for r in reps[p]]) if reps[p] else np.zeros(0) for m in METRICS}
                for p in self.protocols}
        for p in self.protocols:
            out.values[p] = {m: _estimate(point[p][m][0], reps[p][m]) for m in METRICS}
            out.totals[p] = {c: float(self.data[p][c].sum()) for c in TOTALS}
            out.delays[p] = {x: eps[p][f"delays_{x}x"][1] for x in THRESHOLDS}
            out.peaks[p] = {x: eps[p][f"peaks_{x}x"][1] for x in THRESHOLDS}
            if p != ref:
                out.differences[p] = {m: _estimate(point[p][m][0] - point[ref][m][0], reps[p][m] - reps[ref][m])
                                      for m in METRICS}
        return out

    def _point(self, p: str, w: np.ndarray, eps: dict) -> dict:
        """Each metric for each row of weights `w` (resamples x patients)."""
        x = self._matrix.get(p)
        if x is None:
            x = self._matrix[p] = np.column_stack([self.data[p][c] for c in self.columns]) if self.columns else None
        totals = w @ x  # resamples x columns: every total of every resample in one product
        sums = {c: totals[:, j] for j, c in enumerate(self.columns)}
        out = {}
        with np.errstate(divide="ignore", invalid="ignore"):
            for name, num, den, scale in RATIOS:
                out[name] = np.where(sums[den] > 0, scale * sums[num] / np.where(sums[den] > 0, sums[den], 1), np.nan)
        for name, col in MEDIANS:
            pats, vals = eps[col]
            out[name] = _weighted_median(vals, w[:, pats] if len(pats) else np.zeros((w.shape[0], 0)))
        return out


def _weighted_median(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The lower weighted median of `values` for each row of `weights`; nan for a row of no
    weight."""
    if values.size == 0:
        return np.full(weights.shape[0], np.nan)
    order = np.argsort(values, kind="stable")
    v = values[order]
    cw = np.cumsum(weights[:, order], axis=1)
    total = cw[:, -1]
    idx = np.argmax(cw >= (total / 2)[:, None], axis=1)
    return np.where(total > 0, v[idx], np.nan)


def _estimate(value: float, replicates: np.ndarray) -> Estimate:
    value = float(value)
    if np.isnan(value):
        return Estimate(np.nan, np.nan, np.nan)
    r = replicates[~np.isnan(replicates)]
    if replicates.size == 0 or r.size < max(10, replicates.size // 2):  # too few resamples where it is defined
        return Estimate(value, np.nan, np.nan)
    low, high = np.percentile(r, [2.5, 97.5])
    return Estimate(value, float(low), float(high))
