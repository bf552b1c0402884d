"""The closed loop of `rxwatch cohort` (cohort/run.py, cohort/scale.py) on a tiny cohort: the
real engine (Machine.start/feed/advance) and the real patient model (cohort/patient.py) with a
test model in which every patient has a severe drug episode.

What is checked: a hold or stop reaches the patient (its later results fall below those of the
same patient left on the drug: the same noise, by common random numbers); the labs measured on
a visit are those of the orders open then; a patient who never attends has no test; the same
patients give the same table however the work is split (one process, two, a Dask LocalCluster).
"""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest

from rxwatch.cohort.model import load_model
from rxwatch.cohort.run import Arm, run_patient
from rxwatch.cohort.scale import Cohort, run_cohort
from rxwatch.compiler import compile_file

ROOT = Path(__file__).resolve().parents[1]
ANAKINRA = ROOT / "protocols" / "anakinra_hepatotoxicity.rxw"
SIXMONTHLY = ROOT / "protocols" / "variants" / "anakinra_6monthly.rxw"
START = datetime.date(2025, 1, 6)

MODEL = """model: test-liver
title: "A small model for rxwatch's cohort tests: every patient has a drug episode"
sources:
  lazo-2008: {title: "Lazo et al., Ann Intern Med 2008;148:348"}
  test: {title: "rxwatch test assumption"}
labs:
  ALT:
    unit: U/L
    uln: 40
    decimals: 0
    set_point: {dist: uniform, low: 0.392, high: 0.728, source: "lazo-2008, Table 2", marker: assumed, note: "test"}
    within_cv: {value: 0.2, source: "lazo-2008, Table 2", marker: read}
  AST:
    unit: U/L
    uln: 40
    decimals: 0
    set_point: {dist: uniform, low: 0.455, high: 0.845, source: "test, -", marker: assumed, note: "test"}
    within_cv: {value: 0.14, source: "test, -", marker: assumed, note: "test"}
  TBIL:
    unit: mg/dL
    uln: 1.2
    decimals: 2
    set_point: {dist: uniform, low: 0.35, high: 0.65, source: "test, -", marker: assumed, note: "test"}
    within_cv: {value: 0.23, source: "test, -", marker: assumed, note: "test"}
  ALP:
    unit: U/L
    uln: 120
    decimals: 0
    set_point: {dist: uniform, low: 0.42, high: 0.78, source: "test, -", marker: assumed, note: "test"}
    within_cv: {value: 0.1, source: "test, -", marker: assumed, note: "test"}
  INR:
    decimals: 2
    set_point: {value: 1.0, source: "test, -", marker: assumed, note: "test"}
    within_cv: {value: 0.032, source: "test, -", marker: assumed, note: "test"}
  ANC:
    unit: 10*9/L
    decimals: 1
    set_point: {dist: uniform, low: 2.45, high: 4.55, source: "test, -", marker: assumed, note: "test"}
    within_cv: {value: 0.1, source: "test, -", marker: assumed, note: "test"}
injury:
  reference_lab: ALT
  shares:
    AST: {value: 0.4, source: "test, -", marker: assumed, note: "test"}
  onset_excess: {value: 0.05, source: "test, -", marker: assumed, note: "test"}
  doubling_days: {dist: uniform, low: 3, high: 7, source: "test, -", marker: assumed, note: "test"}
  decay_half_life_days: {dist: uniform, low: 2.52, high: 4.68, source: "test, -", marker: assumed, note: "test"}
  plateau_days: {dist: uniform, low: 20, high: 40, source: "test, -", marker: assumed, note: "test"}
  chronic_level: {dist: uniform, low: 1.5, high: 2.5, source: "test, -", marker: assumed, note: "test"}
background:
  rate_per_year: {value: 0.0078, source: "test, -", marker: assumed, note: "test"}
  tiers:
    - weight: {value: 1.0, source: "test, -", marker: assumed, note: "test"}
      peak: {dist: uniform, low: 3.5, high: 5, source: "test, -", marker: assumed, note: "test"}
drug:
  name: anakinra
  episodes:
    - grade: severe
      probability: {value: 1.0, source: "test, -", marker: assumed, note: "every patient, for the tests"}
      peak: {dist: uniform, low: 8, high: 12, source: "test, -", marker: assumed, note: "test"}
      adapt: {value: 0.0, source: "test, -", marker: assumed, note: "test"}
  latency_days: {dist: uniform, low: 60, high: 200, source: "test, -", marker: assumed, note: "test"}
  chronic: {value: 0.0, source: "test, -", marker: assumed, note: "test"}
  dose_effect: {value: 1.0, source: "test, -", marker: assumed, note: "test"}
adherence:
  on_time: {value: 0.85, source: "test, -", marker: assumed, note: "test"}
  never: {value: 0.0, source: "test, -", marker: assumed, note: "test"}
  lateness: {dist: uniform, low: 0, high: 1, source: "test, -", marker: assumed, note: "test"}
"""


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("cohort")


@pytest.fixture(scope="module")
def model(folder):
    path = folder / "test-model.yaml"
    path.write_text(MODEL, encoding="utf-8")
    return load_model(path)


@pytest.fixture(scope="module")
def never_model(folder):
    path = folder / "never.yaml"
    path.write_text(MODEL.replace("on_time: {value: 0.85", "on_time: {value: 0.0").replace("never: {value: 0.0", "never: {value: 1.0"),
                    encoding="utf-8")
    return load_model(path)


@pytest.fixture(scope="module")
def arms():
    return [Arm.of(compile_file(str(p)).graph.graph["name"], compile_file(str(p)).graph) for p in (ANAKINRA, SIXMONTHLY)]


def _alt(pic) -> dict:
    return {datetime.date.fromisoformat(d): m for d, lab, m in pic["results"] if lab == "ALT"}


def test_a_stop_changes_the_patients_later_values(model, arms):
    acted = 0
    for index in range(4):
        row, picture = run_patient(arms[0], model, seed=11, index=index, start=START, days=730, detail=True)
        pic = picture()
        steps = [(datetime.date.fromisoformat(d), kind) for d, kind, _, _ in pic["drug"]]
        assert steps[0][1] == "start"
        withdrawn = [d for d, kind in steps if kind in ("hold", "stop", "reduce")]
        if not withdrawn:
            continue
        acted += 1
        first = withdrawn[0]
        # the same patient kept on the full dose all along: same set points, same noise per day
        twin = model.patient(seed=11, index=index, start=START, days=730)
        twin.drug(steps[0][0], "on", 1.0)
        later = {d: m for d, m in _alt(pic).items() if d >= first + datetime.timedelta(days=10)}
        assert later, "the protocol orders liver tests after it acts"
        for day, m in later.items():
            on_drug = twin.measure(day, ["ALT"])[0]
            assert m < float(on_drug.value) / 40, (index, day)
        assert row["interventions"] >= 1 and row["episodes_3x"] == 1
    assert acted >= 3  # every patient of the test model has a severe episode


class _Spy:
    """The engine's Patient with its open orders noted before every feed."""

    def __init__(self, p, log):
        self.p, self.log = p, log

    def feed(self, day, events):
        events = list(events)
        self.log.append((day, self.p.open_orders(), {e.lab for e in events}))
        self.p.feed(day, events)

    def __getattr__(self, name):
        return getattr(self.p, name)


def test_a_visit_measures_the_labs_of_the_orders_open_then(model, arms):
    arm = arms[0]
    arm.ready()
    log: list = []
    machine = arm.machine

    class Machine:
        def start(self, **kw):
            return _Spy(machine.start(**kw), log)

    spied = Arm(arm.label, arm.graph, arm.drug, arm.doses, arm.dose_kind, machine=Machine(), ulns=arm.ulns)
    for index in range(3):
        log.clear()
        run_patient(spied, model, seed=5, index=index, start=START, days=365)
        assert log[0][0] >= START and log[0][2] == {"ALT", "AST", "TBIL", "ALP", "INR", "ANC"}  # the baseline
        anc_only = 0
        for day, orders, labs in log:
            due = set().union(*(o["labs"] for o in orders if o["opens"] <= day)) if orders else set()
            assert labs == due, (index, day)
            anc_only += labs == {"ANC"}
        assert anc_only >= 1  # monthly counts between liver panels: a count alone


def test_a_patient_who_never_attends_has_no_test(never_model, arms):
    row, picture = run_patient(arms[0], never_model, seed=5, index=0, start=START, days=365, detail=True)
    assert row["draws"] == 0 and row["results"] == 0
    assert row["orders_never_done"] == 2  # the baseline's liver panel and count
    assert row["overdue"] == 2  # each went overdue once (its reminders are not counted)
    assert row["starts"] == 0 and row["drug_status"] == "not_started"
    assert picture()["results"] == []


def _table(arms, model, **kw):
    import pyarrow as pa

    parts = []
    seen = []
    result = run_cohort(Cohort(arms, model, patients=6, years=1, seed=9), on_rows=parts.append, resamples=50,
                        progress=lambda done, total: seen.append((done, total)), **kw)
    assert seen[-1] == (6, 6) and [d for d, _ in seen] == sorted(d for d, _ in seen)  # the progress bar's counts
    return pa.concat_tables(parts), result


def test_the_same_patients_whatever_the_split(model, arms):
    one, r1 = _table(arms, model, jobs=1, chunk=6)
    many, r2 = _table(arms, model, jobs=2, chunk=2)
    assert r2.chunks == 3
    assert one.num_rows == 12 and one.equals(many)
    assert one.column("patient").to_pylist() == [i for i in range(6) for _ in range(2)]
    assert r1.metrics.to_dict() == r2.metrics.to_dict()
    assert sorted(r1.examples) == sorted(r2.examples) and r1.examples == r2.examples


def test_a_dask_local_cluster_gives_the_same_table(model, arms):
    distributed = pytest.importorskip("distributed")
    local, _ = _table(arms, model, jobs=1, chunk=6)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        remote, _ = _table(arms, model, scheduler=cluster.scheduler_address, chunk=3)
    assert remote.equals(local)


def test_common_random_numbers_the_protocols_see_the_same_patients(model, arms):
    table, result = _table(arms, model, jobs=1)
    rows = table.to_pylist()
    by = {}
    for r in rows:
        by.setdefault(r["patient"], {})[r["protocol"]] = r
    for patient, two in by.items():
        a, b = two.values()
        assert a["episodes"] == b["episodes"] >= 1  # the same latent episode under both
        # the two protocols agree until the first maintenance panel: the same baseline and first check
        assert a["starts"] == b["starts"] == 1


def test_a_preferred_option_changes_what_the_clinic_does_and_only_that():
    """Patient 132 of seed 7 (the shipped anakinra model) has a moderate elevation: the
    protocol's `do one of hold_anakinra, reduce_dose` holds by default; a clinic that prefers
    reduce_dose reduces instead, in run_patient and in a worker's chunk alike."""
    import pickle

    import pyarrow as pa

    from rxwatch.cohort.scale import run_chunk

    arm = Arm.of("anakinra", compile_file(str(ANAKINRA)).graph)
    shipped = load_model("anakinra")
    default, _ = run_patient(arm, shipped, seed=7, index=132, start=START, days=730)
    reduced, _ = run_patient(arm, shipped, seed=7, index=132, start=START, days=730, prefer=("reduce_dose",))
    assert (default["holds"], default["reductions"]) == (1, 0)
    assert (reduced["holds"], reduced["reductions"]) == (0, 1)
    assert reduced["draws"] >= 1 and reduced["starts"] == default["starts"] == 1
    # an action this protocol does not offer (another protocol's) changes nothing
    other, _ = run_patient(arm, shipped, seed=7, index=132, start=START, days=730, prefer=("increase_to_8mgkg",))
    assert other == default
    # the arm's own policy (Arm.prefer), what a worker's chunk replays each arm under: one
    # protocol under two policies is two arms, the same patient through both
    policy = Arm.of("anakinra (prefer reduce_dose)", arm.graph, prefer=("reduce_dose",))
    assert run_patient(policy, shipped, seed=7, index=132, start=START, days=730)[0] == dict(reduced, protocol=policy.label)
    job = {"arms": pickle.dumps([("anakinra", arm.graph, {}, ()), (policy.label, arm.graph, {}, policy.prefer)]),
           "model": pickle.dumps(shipped), "seed": 7, "start": START.isoformat(), "days": 730, "examples": 0,
           "index": 0, "lo": 132, "hi": 133}
    first, preferred = pa.ipc.open_file(pa.BufferReader(run_chunk(job)["table"])).read_all().to_pylist()
    assert (first["protocol"], first["holds"], first["reductions"]) == ("anakinra", 1, 0)
    assert (preferred["protocol"], preferred["holds"], preferred["reductions"]) == (policy.label, 0, 1)
