"""The cohort's metrics on hand-made summary rows (cohort/metrics.py): the point values are the
definitions of docs/cohort.md computed by hand, the intervals are paired bootstraps over
patients."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rxwatch.cohort.metrics import Collector, _weighted_median
from rxwatch.cohort.run import ROW_FIELDS, THRESHOLDS


def row(protocol, patient, **kw):
    r = {f: 0 for f in ROW_FIELDS}
    r.update(protocol=protocol, patient=patient, status="ok", problem="", years=2.0, final_state="", drug_status="on")
    for x in THRESHOLDS:
        r[f"delays_{x}x"] = []
        r[f"peaks_{x}x"] = []
    r.update(kw)
    return r


def rows():
    # four patients, two protocols; patient 1 has an episode crossing 3x (and 5x), patient 2 one
    # crossing 3x only; patient 3 a false alarm under A
    a = [
        row("A", 0, draws=10),
        row("A", 1, draws=12, holds=1, stops=1, true_alarms=1, episodes_3x=1, detected_3x=1, delays_3x=[7],
            lasting_3x=1, within_30_3x=1,
            peaks_3x=[4.5], episodes_5x=1, detected_5x=1, delays_5x=[0], peaks_5x=[4.5]),
        row("A", 2, draws=10, reductions=1, true_alarms=1, episodes_3x=1, detected_3x=1, delays_3x=[21], peaks_3x=[3.8],
            within_30_3x=1),
        row("A", 3, draws=8, holds=1, referrals=1, false_alarms=1),
    ]
    b = [
        row("B", 0, draws=5),
        row("B", 1, draws=6, stops=1, true_alarms=1, episodes_3x=1, detected_3x=1, delays_3x=[40], peaks_3x=[9.0],
            lasting_3x=1,
            episodes_5x=1, detected_5x=1, delays_5x=[30], peaks_5x=[9.0]),
        row("B", 2, draws=5, episodes_3x=1, missed_3x=1),
        row("B", 3, draws=4),
    ]
    return a + b


def test_point_values_are_the_definitions():
    c = Collector(["A", "B"], patients=4)
    c.add(list(reversed(rows())))  # any order
    m = c.metrics(resamples=200, seed=1)
    assert m.value("A", "tests_per_py").value == pytest.approx(40 / 8)
    assert m.value("B", "tests_per_py").value == pytest.approx(20 / 8)
    assert m.value("A", "holds_per_kpy").value == pytest.approx(1000 * 2 / 8)
    assert m.value("A", "stops_per_kpy").value == pytest.approx(1000 * 1 / 8)
    assert m.value("A", "reductions_per_kpy").value == pytest.approx(1000 * 1 / 8)
    assert m.value("A", "referrals_per_kpy").value == pytest.approx(1000 * 1 / 8)
    assert m.value("A", "false_alarms_per_true").value == pytest.approx(1 / 2)
    assert m.value("B", "false_alarms_per_true").value == 0
    assert m.value("A", "missed_share_3x").value == 0
    assert m.value("B", "missed_share_3x").value == pytest.approx(1 / 2)
    assert m.value("A", "within_30_share_3x").value == 1
    assert m.value("B", "within_30_share_3x").value == 0  # 40 days, and a miss
    assert m.value("B", "lasting_missed_share_3x").value == 0  # the missed one resolves by itself
    assert m.value("A", "median_delay_3x").value == 7  # the lower median of 7 and 21
    assert m.value("B", "median_delay_3x").value == 40
    assert m.value("A", "median_peak_5x").value == 4.5
    assert m.difference("B", "tests_per_py").value == pytest.approx(20 / 8 - 40 / 8)
    assert m.difference("B", "median_delay_5x").value == 30
    assert m.totals["B"]["missed_3x"] == 1 and m.totals["A"]["detected_3x"] == 2


def test_intervals_hold_the_estimate_and_pairing_narrows_a_difference():
    # 300 patients: B draws exactly 1 fewer than A for every patient, A varies a lot between
    # patients; the paired difference has no spread at all, each protocol's rate has
    rng = np.random.default_rng(5)
    draws = rng.integers(2, 30, 300)
    c = Collector(["A", "B"], patients=300)
    for i, d in enumerate(draws):
        c.add_row(row("A", i, draws=int(d)))
        c.add_row(row("B", i, draws=int(d) - 1))
    m = c.metrics(resamples=300, seed=2)
    a = m.value("A", "tests_per_py")
    assert a.low < a.value < a.high
    assert a.high - a.low > 0.5
    d = m.difference("B", "tests_per_py")
    assert d.value == pytest.approx(-0.5)
    assert d.low == pytest.approx(-0.5) and d.high == pytest.approx(-0.5)


def test_the_same_seed_gives_the_same_intervals_and_no_episode_gives_none():
    c = Collector(["A", "B"], patients=4)
    c.add(rows())
    one = c.metrics(resamples=100, seed=3).to_dict()
    two = c.metrics(resamples=100, seed=3).to_dict()
    assert one == two
    empty = Collector(["A"], patients=3)
    for i in range(3):
        empty.add_row(row("A", i, draws=4))
    m = empty.metrics(resamples=50, seed=1)
    assert math.isnan(m.value("A", "median_delay_3x").value)
    assert m.value("A", "median_delay_3x").text() == "n/a"
    assert m.value("A", "tests_per_py").value == 2


def test_a_failed_patient_counts_nowhere():
    c = Collector(["A"], patients=2)
    c.add_row(row("A", 0, draws=10))
    c.add_row(dict(row("A", 1, draws=99, years=2.0), status="failed", problem="x"))
    m = c.metrics(resamples=0)
    assert m.value("A", "tests_per_py").value == 5
    assert math.isnan(m.value("A", "tests_per_py").low)  # no resamples, no interval


def test_weighted_median():
    v = np.array([5.0, 1.0, 3.0])
    w = np.array([[1, 1, 1], [0, 1, 0], [3, 1, 0], [0, 0, 0]], dtype=float)
    out = _weighted_median(v, w)
    assert out[:3].tolist() == [3.0, 1.0, 5.0] and math.isnan(out[3])
