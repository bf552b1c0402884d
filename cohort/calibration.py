"""Calibration checks of a patient model against the published figures it was built from
(docs/cohort.md, "Calibration"). Each check simulates patients through the model alone (no
protocol) and returns what it measured; tests/test_cohort_model.py compares the figures with
their targets, and `python -m rxwatch.cohort.calibration` prints them for the shipped models.

- `retest`: among single ALT results above the ULN, the share at or below it on a retest
  17 or 18 days later (Lazo 2008: 31 %; AST 36 %, bilirubin 38 %), and the share of normal
  results still normal (>95 %).
- `background`: episodes crossing 3 x ULN per 1,000 patient-years without a drug (Weil 2008:
  7.8), found by the episodes' crossing days, each (of a patient with one episode) checked
  against the noise-free curve.
- `grade_split`: the drug taken at the full dose from day 0, ALT every 4 weeks for 24 weeks
  (6 tests) in patients whose baseline ALT is at most the ULN; the share whose highest result
  is above the ULN to 3 x, above 3 to 5 x, above 5 x (tocilizumab with a DMARD, US label
  Table 1: 48 %, 5 %, 1.5 %).
"""

from __future__ import annotations

import datetime
import math
import sys
from dataclasses import dataclass

__all__ = ["Retest", "Rate", "Split", "retest", "background", "grade_split", "interval99", "main"]

DAY0 = datetime.date(2025, 1, 6)
Z99 = 2.5758293035489  # the standard normal's 99.5th percentile


def interval99(p: float, n: int) -> float:
    """Half the width of the 99 % binomial (normal approximation) interval of a share p among n."""
    return Z99 * math.sqrt(p * (1 - p) / n)


@dataclass(frozen=True)
class Retest:
    patients: int
    high: int  # first results above the ULN
    normal_on_retest: float  # share of those at or below the ULN on the retest
    normal_stays_normal: float  # share of first results at or below the ULN still so


def retest(model, patients: int, seed: int, lab: str = "ALT", day: int = 100) -> Retest:
    """A result on `day` and a retest 17 or 18 days later (17.5 on average), no drug."""
    high = back = low = stay = 0
    uln = model.labs[lab].uln
    for i in range(patients):
        pt = model.patient(seed, i, DAY0, day + 30)
        first = pt.measure(day, (lab,))[0].value
        second = pt.measure(day + 17 + i % 2, (lab,))[0].value
        if first > uln:
            high += 1
            back += second <= uln
        else:
            low += 1
            stay += second <= uln
    return Retest(patients, high, back / high if high else math.nan, stay / low if low else math.nan)


@dataclass(frozen=True)
class Rate:
    patients: int
    patient_years: float
    events: int  # episodes crossing the level within the patients' days
    per_1000_py: float
    alone: int  # crossings of patients with one episode (whose curve is the episode's own)
    checked: int  # of those, crossings confirmed on the noise-free curve (above on the day, not the day before)


def background(model, patients: int, seed: int, years: float = 2.0, level: float = 3.0) -> Rate:
    """Background episodes crossing `level` x ULN (no drug), per 1,000 patient-years."""
    days = round(years * 365.25)
    lab = model.injury.reference_lab
    events = alone = checked = 0
    for i in range(patients):
        pt = model.patient(seed, i, DAY0, days)
        episodes = pt.episodes
        for ep in episodes:
            crossed = ep.day_3x if level == 3.0 else None
            if level != 3.0:
                raise ValueError("the episodes give their crossing days of 3 x and 5 x ULN")
            if crossed is None:
                continue
            events += 1
            if len(episodes) > 1:
                continue
            alone += 1
            before = crossed - datetime.timedelta(days=1)
            if pt.true_multiple(lab, crossed) > level and (before < DAY0 or pt.true_multiple(lab, before) <= level):
                checked += 1
    py = patients * days / 365.25
    return Rate(patients, py, events, 1000 * events / py, alone, checked)


@dataclass(frozen=True)
class Split:
    patients: int
    eligible: int  # baseline ALT at most the ULN
    bands: tuple[float, float, float]  # >ULN-3x, >3-5x, >5x: shares of the eligible


def grade_split(model, patients: int, seed: int, weeks: int = 24, every: int = 4) -> Split:
    """Highest ALT on the drug (full dose from day 0), tested every `every` weeks for `weeks`,
    by band, among patients with a baseline ALT (day 0) at most the ULN."""
    lab = model.injury.reference_lab
    uln = model.labs[lab].uln
    days = weeks * 7
    eligible = 0
    counts = [0, 0, 0]
    for i in range(patients):
        pt = model.patient(seed, i, DAY0, days + 1)
        if pt.measure(0, (lab,))[0].value > uln:
            continue
        eligible += 1
        pt.drug(0, "on", 1.0)
        top = max(pt.measure(d, (lab,))[0].value for d in range(every * 7, days + 1, every * 7)) / uln
        if top > 5:
            counts[2] += 1
        elif top > 3:
            counts[1] += 1
        elif top > 1:
            counts[0] += 1
    return Split(patients, eligible, tuple(c / eligible for c in counts))


def main(argv: list[str] | None = None) -> int:
    """Print the calibration figures of the shipped models (or of the model files given)."""
    import argparse

    from .model import load_model, shipped_models

    ap = argparse.ArgumentParser(prog="python -m rxwatch.cohort.calibration", description=main.__doc__)
    ap.add_argument("models", nargs="*", help="model files or shipped model names (default: all shipped)")
    ap.add_argument("--patients", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args(argv)
    for name in a.models or shipped_models():
        m = load_model(name)
        b = background(m, a.patients, a.seed)
        print(f"{m.name}: {a.patients:,} patients, seed {a.seed}")
        for lab, target in (("ALT", "31 %"), ("AST", "36 %"), ("TBIL", "38 %, not calibrated")):
            if lab not in m.labs:
                continue
            r = retest(m, a.patients, a.seed, lab=lab)
            print(f"  {lab} above the ULN, normal on retest 17-18 days later: {r.normal_on_retest:.1%} of {r.high:,} "
                  f"(target {target}); normal results still normal: {r.normal_stays_normal:.1%} (target > 95 %)")
        print(f"  background episodes above 3 x ULN: {b.per_1000_py:.2f} per 1,000 patient-years "
              f"({b.events} in {b.patient_years:,.0f}; target 7.8), {b.checked} of {b.alone} alone confirmed on the noise-free curve")
        if m.drug is not None:
            s = grade_split(m, a.patients, a.seed)
            print(f"  on {m.drug.name}, highest ALT in 24 weeks (6 tests, {s.eligible:,} with a normal baseline): "
                  + ", ".join(f"{label} {x:.2%}" for label, x in zip((">ULN-3x", ">3-5x", ">5x"), s.bands)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
