"""The patient model (cohort/model.py, cohort/patient.py; docs/cohort.md "The patient model"):
the schema and its located errors, the shipped models, determinism and common random numbers,
the injury kinetics under the drug, and the calibration checks of issue 16 item 7."""

from __future__ import annotations

import datetime
import math
import random
import re
import textwrap
from fractions import Fraction

import pytest

from rxwatch.cohort import calibration
from rxwatch.cohort.model import MARKERS, ModelError, load_model, parse_model, shipped_models
from rxwatch.compiler import compile_file
from rxwatch.compiler.diagnostics import CODES, format_text

from conftest import PROTOCOLS_DIR

DAY0 = datetime.date(2025, 1, 6)
MODELS = ("anakinra", "leflunomide", "tocilizumab")
PROTOCOL_OF = {"anakinra": "anakinra_hepatotoxicity", "leflunomide": "leflunomide_hepatotoxicity",
               "tocilizumab": "tocilizumab_monitoring"}


@pytest.fixture(scope="module")
def models():
    return {name: load_model(name) for name in MODELS}


# ---------------------------------------------------------------- the shipped models

def test_the_shipped_models_are_the_three_drugs():
    assert tuple(shipped_models()) == MODELS


@pytest.mark.parametrize("name", MODELS)
def test_every_parameter_cites_a_declared_source_and_says_how_it_was_got(models, name):
    m = models[name]
    assert len(m.params) > 30
    for p in m.params:
        assert p.marker in MARKERS, p.name
        assert p.cites and all(sid in m.sources and loc for sid, loc in p.cites), p.name
        if p.marker != "read":
            assert p.note, p.name
    cited = {sid for p in m.params for sid, _ in p.cites}
    assert cited == set(m.sources), "a source declared but never cited"
    table = m.table()
    assert table.count("\n") == len(m.params) + 1 and "| `labs.ALT.within_cv` | 0.204 | read | lazo-2008" in table


@pytest.mark.parametrize("name", MODELS)
def test_the_model_labs_are_the_protocols_labs_in_their_units(models, name):
    """A model's results feed its drug's protocol: the same names, units and ULNs (the
    protocol's labs the model leaves out, DBIL and ALP, are never measured: missing is unknown)."""
    graph = compile_file(str(PROTOCOLS_DIR / f"{PROTOCOL_OF[name]}.rxw")).graph
    declared = graph.graph["labs"]
    for lab in models[name].labs.values():
        assert lab.name in declared, lab.name
        assert lab.unit == declared[lab.name]["unit"], lab.name
        uln = declared[lab.name]["uln"]
        assert (lab.uln is None) == (uln is None) and (uln is None or Fraction(str(uln)) == Fraction(lab.uln)), lab.name


def test_a_shipped_model_loads_by_name_or_path(repo_root):
    assert load_model(repo_root / "cohort" / "models" / "anakinra.yaml").name == "anakinra"
    with pytest.raises(FileNotFoundError):
        load_model("no-such-model")


# ---------------------------------------------------------------- located errors

SMALL = textwrap.dedent("""\
    model: small
    sources:
      s1: {title: "A source"}
    labs:
      ALT:
        unit: U/L
        uln: 40
        decimals: 0
        set_point: {dist: lognormal, median: 0.56, sigma_log: 0.28, source: "s1, Table 2", marker: read}
        within_cv: {value: 0.2, source: "s1, Table 2", marker: read}
    injury:
      reference_lab: ALT
      onset_excess: {value: 0.1, source: "s1, p. 3", marker: assumed, note: "small"}
      doubling_days: {dist: uniform, low: 3, high: 7, source: "s1, p. 3", marker: read}
      decay_half_life_days: {value: 3.6, source: "s1, p. 3", marker: read}
      plateau_days: {value: 21, source: "s1, p. 3", marker: read}
      chronic_level: {value: 2, source: "s1, p. 3", marker: read}
    background:
      rate_per_year: {value: 0.0078, source: "s1, Table 4", marker: read}
      tiers:
        - weight: {value: 1, source: "s1, Table 4", marker: read}
          peak: {dist: uniform, low: 3.01, high: 5, source: "s1, Table 4", marker: read}
    adherence:
      on_time: {value: 0.85, source: "s1, p. 9", marker: read}
      never: {value: 0, source: "s1, p. 9", marker: read}
      lateness: {dist: uniform, low: 0, high: 1, source: "s1, p. 9", marker: read}
    """)


def test_the_small_model_is_valid():
    m = parse_model(SMALL, "m.yaml")
    assert m.name == "small" and m.drug is None and list(m.labs) == ["ALT"]
    pt = m.patient(seed=1, index=0, start=DAY0, days=365)
    (r,) = pt.measure(DAY0 + datetime.timedelta(days=3), ["ALT", "AST"])  # AST: not in the model, left out
    assert r.lab == "ALT" and r.unit == "U/L" and r.uln == 40 and isinstance(r.value, int)


def _edit(old: str, new: str) -> str:
    assert old in SMALL, old
    return SMALL.replace(old, new, 1)


BAD = [  # (code, text, line, column, what the message says)
    ("E930", _edit("model: small", "model: [small"), 2, 8, "not YAML"),
    ("E931", "- 1\n", 1, 1, "must be a mapping"),
    ("E931", _edit("  s1: {title", "  s1: {title: x}\n  s1: {title"), 4, 3, "given twice"),
    ("E932", _edit("    uln: 40\n", "    uln: 40\n    ulm: 41\n"), 8, 5, "did you mean 'uln'?"),
    ("E932", _edit('marker: read}\n    within', 'marker: read, sourse: x}\n    within'), 9, 102, "unknown key 'sourse'"),
    ("E933", _edit('within_cv: {value: 0.2, source: "s1, Table 2", ', "within_cv: {value: 0.2, "), 10, 16, "needs a 'source'"),
    ("E933", _edit('within_cv: {value: 0.2, source: "s1, Table 2"', 'within_cv: {value: 0.2, source: "s1"'), 10, 37, "needs a locator"),
    ("E933", _edit('marker: assumed, note: "small"}', "marker: assumed}"), 13, 17, "needs a 'note'"),
    ("E933", _edit("  reference_lab: ALT\n", ""), 12, 3, "needs 'reference_lab'"),
    ("E934", _edit("{dist: uniform, low: 3, high: 7", "{dist: uniforn, low: 3, high: 7"), 14, 25, "did you mean 'uniform'?"),
    ("E934", _edit("{dist: uniform, low: 3, high: 7", "{dist: uniform, low: 7, high: 3"), 14, 39, "above its high end"),
    ("E934", _edit("median: 0.56, sigma_log: 0.28", "median: 0.56"), 9, 23, "one of 'sigma_log' and 'cv'"),
    ("E934", _edit("decay_half_life_days: {value: 3.6", "decay_half_life_days: {value: 3.6, dist: lognormal"), 15, 38, "both"),
    ("E934", _edit("rate_per_year: {value: 0.0078", "rate_per_year: {dist: exponential, mean: 0.0078"), 19, 25, "one number"),
    ("E935", _edit("on_time: {value: 0.85", "on_time: {value: 1.85"), 24, 20, "from 0 to 1"),
    ("E935", _edit("- weight: {value: 1,", "- weight: {value: 0.5,"), 21, 5, "add up to 0.5"),
    ("E935", _edit("marker: read}\n    within_cv", "marker: probable}\n    within_cv"), 9, 96, "one of read, computed, assumed"),
    ("E935", _edit("low: 3.01, high: 5", "low: 1, high: 5"), 22, 20, "outside above 3"),
    ("E930", _edit('  s1: {title: "A source"}', '  s1: &a {title: "A source"}\n  s2: *a'), 3, 7, "YAML alias"),
    ("E933", _edit("    uln: 40\n", ""), 11, 18, "needs a 'uln'"),
    ("E936", _edit('rate_per_year: {value: 0.0078, source: "s1, Table 4"', 'rate_per_year: {value: 0.0078, source: "s2, Table 4"'), 19, 42, "'s2' is not a source"),
    ("E936", _edit("reference_lab: ALT", "reference_lab: ALTT"), 12, 18, "did you mean 'ALT'?"),
]


@pytest.mark.parametrize("code,text,line,col,says", BAD, ids=[f"{b[0]}-{i}" for i, b in enumerate(BAD)])
def test_a_bad_model_is_a_located_coded_error(code, text, line, col, says):
    with pytest.raises(ModelError) as e:
        parse_model(text, "m.yaml")
    err = e.value
    assert (err.path, err.code, err.line, err.col) == ("m.yaml", code, line, col), str(err)
    assert says in err.message, err.message
    assert code in CODES
    head = format_text(err.diagnostics[0], text).splitlines()[0]
    assert re.fullmatch(rf"m\.yaml:{line}:{col}: error\[{code}\]: .+", head), head


def test_every_mistake_of_a_file_is_reported_at_once():
    text = _edit("on_time: {value: 0.85", "on_time: {value: 1.85")
    text = text.replace("    ulx: 1\n", "").replace("    uln: 40\n", "    uln: 40\n    ulx: 1\n")
    with pytest.raises(ModelError) as e:
        parse_model(text, "m.yaml")
    assert [d.code for d in e.value.diagnostics] == ["E932", "E935"]


def test_every_model_code_is_registered_and_documented(repo_root):
    doc = (repo_root / "docs" / "diagnostics.md").read_text(encoding="utf-8")
    codes = {code for *_, code in ((b[0],) for b in BAD)}
    assert codes == {f"E93{i}" for i in range(7)}
    for code in codes:
        assert f"## {code}: {CODES[code]}" in doc, code


def test_a_file_that_is_not_utf8_is_e930():
    with pytest.raises(ModelError) as e:
        parse_model(SMALL.encode() + b"\xff\n", "m.yaml")
    assert e.value.code == "E930"


# ---------------------------------------------------------------- determinism, common random numbers

def _values(results):
    return [(r.date, r.lab, r.value) for r in results]


@pytest.mark.parametrize("name", MODELS)
def test_the_same_seed_and_index_give_the_same_values_in_any_order(models, name):
    m = models[name]
    labs = list(m.labs)
    days = [DAY0 + datetime.timedelta(days=d) for d in (0, 3, 14, 40, 41, 90, 200, 365, 700)]
    forward = m.patient(seed=5, index=42, start=DAY0, days=730)
    forward.drug(DAY0, "on", 1.0)
    a = {d: _values(forward.measure(d, labs)) for d in days}
    shuffled = list(days)
    random.Random(3).shuffle(shuffled)
    again = m.patient(seed=5, index=42, start=DAY0, days=730)
    again.drug(DAY0, "on", 1.0)
    b = {d: _values(again.measure(d, labs)) for d in shuffled}
    assert a == b
    other = m.patient(seed=5, index=43, start=DAY0, days=730)
    assert _values(other.measure(days[3], labs)) != a[days[3]]


def test_two_protocols_see_the_same_value_on_a_shared_day(models):
    """Different sampling days (another protocol's), a different horizon: the same result on
    the day both measure, and the same episodes in the days both cover."""
    m = models["tocilizumab"]
    shared = DAY0 + datetime.timedelta(days=56)
    for index in range(200):
        monthly = m.patient(seed=9, index=index, start=DAY0, days=730)
        quarterly = m.patient(seed=9, index=index, start=DAY0, days=365)
        for pt in (monthly, quarterly):
            pt.drug(DAY0, "on", 1.0)
        for d in (0, 28):
            monthly.measure(DAY0 + datetime.timedelta(days=d), ["ALT", "AST"])
        a = _values(monthly.measure(shared, ["ALT", "AST", "ANC", "PLT"]))
        b = _values(quarterly.measure(shared, ["PLT", "ANC", "AST", "ALT"]))
        assert sorted(a) == sorted(b)
        early = [e for e in monthly.episodes if e.onset < DAY0 + datetime.timedelta(days=300)]
        assert [(e.kind, e.onset) for e in early] == [(e.kind, e.onset) for e in quarterly.episodes
                                                       if e.onset < DAY0 + datetime.timedelta(days=300)]


def test_a_repeat_on_the_same_day_shares_the_biological_variation(models):
    m = models["anakinra"]
    same = differ = 0
    for index in range(300):
        pt = m.patient(seed=2, index=index, start=DAY0, days=100)
        first, repeat = pt.measure(50, ["ALT"])[0].value, pt.measure(50, ["ALT"], draw=1)[0].value
        assert pt.measure(50, ["ALT"])[0].value == first
        differ += first != repeat
        same += abs(first - repeat) <= max(2, 0.12 * first)  # analytical CV 2.7 %: within 4.4 sigma
    assert same == 300 and differ > 0


def test_results_are_exact_at_the_labs_precision(models):
    pt = models["anakinra"].patient(seed=1, index=7, start=DAY0, days=100)
    results = {r.lab: r for r in pt.measure(10, ["ALT", "TBIL", "INR", "ANC", "ALP"])}
    assert set(results) == {"ALT", "TBIL", "INR", "ANC"}
    assert isinstance(results["ALT"].value, int) and results["ALT"].unit == "U/L"
    for lab, scale in (("TBIL", 10), ("INR", 10), ("ANC", 100)):
        v = Fraction(results[lab].value)
        assert (v * scale).denominator == 1 and v > 0, lab
    assert results["TBIL"].uln == Fraction(6, 5) and results["INR"].uln is None
    assert results["ALT"].date == DAY0 + datetime.timedelta(days=10)


def test_attendance_is_keyed_by_the_window(models):
    m = models["anakinra"]
    on_time = late = 0
    for index in range(4000):
        pt = m.patient(seed=4, index=index, start=DAY0, days=730)
        opens, last = DAY0 + datetime.timedelta(days=30), DAY0 + datetime.timedelta(days=60)
        when = pt.attends(opens, last)
        assert when == pt.attends(opens, last)  # the same window, the same answer
        assert when is not None  # adherence.never is 0 in the shipped models
        if when <= last:
            assert when >= opens
            on_time += 1
        else:
            assert when <= last + datetime.timedelta(days=31)  # at most one window (31 days) late
            late += 1
    share = on_time / 4000
    assert abs(share - 0.85) <= calibration.interval99(0.85, 4000)


# ---------------------------------------------------------------- the injury under the drug

def _find(model, grade: str, seed: int = 1):
    for index in range(100_000):
        pt = model.patient(seed=seed, index=index, start=DAY0, days=730)
        k = pt._drug_kernel
        if k is not None and k.grade == grade:
            return index
    raise AssertionError(grade)


def test_an_injury_falls_after_withdrawal_and_returns_on_rechallenge(models):
    m = models["anakinra"]
    index = _find(m, "severe")
    pt = m.patient(seed=1, index=index, start=DAY0, days=730)
    pt.drug(DAY0, "on", 1.0)
    (ep,) = [e for e in pt.episodes if e.kind == "drug"]
    assert ep.day_3x is not None and ep.day_5x is not None and not ep.self_resolving
    stop = ep.day_5x
    pt.drug(stop, "stopped")
    at_stop = pt.true_multiple("ALT", stop)
    later = [pt.true_multiple("ALT", stop + datetime.timedelta(days=d)) for d in (7, 14, 28, 56)]
    assert at_stop > later[0] > later[1] > later[2] > later[3]
    (ep,) = [e for e in pt.episodes if e.kind == "drug"]
    assert ep.peak_day <= stop + datetime.timedelta(days=1)
    if not ep.chronic:
        assert ep.normal_day is not None and ep.normal_day > stop
    # a rechallenge two months later brings it back
    pt.drug(stop + datetime.timedelta(days=60), "on", 1.0)
    assert pt.true_multiple("ALT", stop + datetime.timedelta(days=120)) > 3


def test_a_reduced_dose_lowers_a_persistent_injury_to_its_fraction(models):
    m = models["tocilizumab"]
    for index in range(100_000):
        pt = m.patient(seed=1, index=index, start=DAY0, days=730)
        k = pt._drug_kernel
        if k is not None and not k.adapt and k.grade in ("moderate", "severe"):
            break
    pt.drug(DAY0, "on", 1.0)
    (ep,) = [e for e in pt.episodes if e.kind == "drug"]
    plateau = pt.true_multiple("ALT", ep.peak_day) - pt.set_points["ALT"]
    half = ep.peak_day + datetime.timedelta(days=1)
    pt.drug(half, "on", 0.5)  # dose_effect 1: the plateau halves
    after = pt.true_multiple("ALT", half + datetime.timedelta(days=90)) - pt.set_points["ALT"]
    assert after == pytest.approx(plateau / 2, rel=1e-3)


def test_an_adapting_episode_resolves_while_the_drug_continues(models):
    m = models["tocilizumab"]
    for index in range(100_000):
        pt = m.patient(seed=1, index=index, start=DAY0, days=730)
        k = pt._drug_kernel
        if k is not None and k.adapt and k.grade == "moderate" and k.start < 300:
            break
    pt.drug(DAY0, "on", 1.0)
    (ep,) = [e for e in pt.episodes if e.kind == "drug"]
    assert ep.self_resolving and ep.day_3x is not None and ep.normal_day is not None
    assert pt.true_multiple("ALT", ep.normal_day) <= 1 < pt.true_multiple("ALT", ep.normal_day - datetime.timedelta(days=1))


def test_no_drug_no_drug_episode(models):
    m = models["anakinra"]
    index = _find(m, "severe")
    pt = m.patient(seed=1, index=index, start=DAY0, days=730)
    assert [e for e in pt.episodes if e.kind == "drug"] == []
    assert pt.true_multiple("ALT", 400) == pytest.approx(pt.set_points["ALT"])


# ---------------------------------------------------------------- calibration (issue 16 item 7)
# Each check runs the model, no protocol; the tolerance is the 99 % interval of the simulated
# figure around the published one (binomial for a share, Poisson for a rate), so a model that
# reproduces the figure passes with probability 0.99 on any seed, and the seed is fixed.

def test_about_31_percent_of_single_high_alt_results_are_normal_on_retest(models):
    r = calibration.retest(models["anakinra"], 12_000, seed=1)
    assert r.high > 1000
    assert abs(r.normal_on_retest - 0.31) <= calibration.interval99(0.31, r.high), r
    assert r.normal_stays_normal > 0.95, r  # Lazo: more than 95 % of normal results stay normal


def test_about_36_percent_of_single_high_ast_results_are_normal_on_retest(models):
    r = calibration.retest(models["anakinra"], 12_000, seed=1, lab="AST")
    assert r.high > 800
    assert abs(r.normal_on_retest - 0.36) <= calibration.interval99(0.36, r.high), r
    assert r.normal_stays_normal > 0.95, r


def test_background_elevations_above_3x_at_about_7_8_per_1000_patient_years(models):
    r = calibration.background(models["anakinra"], 20_000, seed=1)
    expected = 7.8 * r.patient_years / 1000
    assert abs(r.events - expected) <= calibration.Z99 * math.sqrt(expected), r
    # each crossing day is the first day above 3 x ULN on the curve (of a patient with one episode)
    assert r.checked == r.alone >= 0.95 * r.events


def test_the_tocilizumab_model_reproduces_the_labels_6_month_grade_split(models):
    s = calibration.grade_split(models["tocilizumab"], 15_000, seed=2)
    for share, target in zip(s.bands, (0.48, 0.05, 0.015)):
        assert abs(share - target) <= calibration.interval99(target, s.eligible), (s, target)


# ---------------------------------------------------------------- no file crashes the reader

def test_no_edit_of_a_model_crashes_the_reader():
    """Random edits of the small model (a line dropped or doubled, a character changed, a
    number replaced by odd YAML) give a model or a ModelError, never another exception."""
    rng = random.Random(16)
    lines = SMALL.splitlines(keepends=True)
    odd = ["0x10", "1_000", "1:30", ".inf", "-.nan", "1e400", "~", "yes", "!!binary aGk=", "[1, 2]", "{a: 1}",
           "'0.5'", "-1", "2.5e-3", "&x 1", "*x", "\t", '"', "\\xff"]
    for _ in range(400):
        edited = list(lines)
        i = rng.randrange(len(edited))
        kind = rng.randrange(4)
        if kind == 0:
            del edited[i]
        elif kind == 1:
            edited.insert(i, edited[i])
        elif kind == 2:
            line = edited[i]
            j = rng.randrange(len(line))
            edited[i] = line[:j] + rng.choice(" :{}[],'\"#-x0.") + line[j + 1:]
        else:
            edited[i] = re.sub(r"\d+(\.\d+)?", lambda _: rng.choice(odd), edited[i], count=1)
        try:
            parse_model("".join(edited), "m.yaml")
        except ModelError as e:
            assert e.diagnostics and all(d.code in CODES for d in e.diagnostics)


# ---------------------------------------------------------------- the truth against the curve

def test_the_episodes_crossing_days_are_those_of_the_noise_free_curve(models):
    """Under random drug histories (holds, reductions, stops, resumes), each episode's
    day_3x, day_5x, peak and normal_day are those a day-by-day scan of true_multiple finds
    (patients with one episode, whose curve is the episode's own)."""
    rng = random.Random(7)
    checked = 0
    for name in ("tocilizumab", "anakinra"):
        m = models[name]
        for index in range(3000):
            pt = m.patient(seed=3, index=index, start=DAY0, days=400)
            if pt._drug_kernel is None:
                continue
            day = 0
            pt.drug(day, "on", 1.0)
            while day < 400:
                day += rng.randrange(5, 90)
                pt.drug(day, rng.choice(["on", "held", "stopped"]), rng.choice([1.0, 0.5]))
            episodes = pt.episodes
            if len(episodes) != 1:
                continue
            (ep,) = episodes
            curve = [pt.true_multiple("ALT", d) for d in range(400)]
            start = (ep.onset - DAY0).days
            first = lambda level: next((DAY0 + datetime.timedelta(days=d) for d in range(start, 400) if curve[d] > level), None)
            assert ep.day_3x == first(3) and ep.day_5x == first(5), (name, index)
            top = max(curve[start:])
            assert ep.peak == pytest.approx(top) and curve[(ep.peak_day - DAY0).days] == pytest.approx(top)
            peak = (ep.peak_day - DAY0).days
            normal = next((DAY0 + datetime.timedelta(days=d) for d in range(peak, 400) if curve[d] <= 1), None)
            if top > 1:
                assert ep.normal_day == normal, (name, index)
            checked += 1
    assert checked > 300


def test_a_hold_before_the_onset_postpones_the_episode(models):
    """The latency counts days on the drug: a 30-day hold before the onset moves it 30 days."""
    m = models["tocilizumab"]
    for index in range(100_000):
        pt = m.patient(seed=1, index=index, start=DAY0, days=730)
        k = pt._drug_kernel
        if k is not None and 60 < k.start < 200:
            break
    pt.drug(0, "on", 1.0)
    (onset,) = [e.onset for e in pt.episodes if e.kind == "drug"]
    pt.drug(20, "held")
    pt.drug(50, "on", 1.0)
    (ep,) = [e for e in pt.episodes if e.kind == "drug"]
    assert (ep.onset - onset).days in (29, 30, 31)  # a whole day either way: onsets are floored days


def test_the_parameter_tables_of_docs_cohort_md_are_the_models_own(models, repo_root):
    """docs/cohort.md quotes `PatientModel.table()`: the anakinra model whole, the drug and
    count rows of the others. A changed parameter must be changed there too."""
    doc = (repo_root / "docs" / "cohort.md").read_text(encoding="utf-8")
    for name in MODELS:
        rows = models[name].table().splitlines()[2:]
        if name != "anakinra":
            rows = [r for r in rows if r.startswith(("| `drug.", "| `labs.ANC", "| `labs.PLT"))]
        missing = [r for r in rows if r not in doc]
        assert not missing, (name, missing[:3])
        counts = [sum(p.marker == m for p in models[name].params) for m in MARKERS]
        assert f"{counts[0]} {'parameters ' if name == 'anakinra' else ''}read, {counts[1]} computed, {counts[2]} assumed" in doc, name


def test_the_python_example_of_docs_cohort_md_prints_what_it_shows(repo_root, capsys):
    doc = (repo_root / "docs" / "cohort.md").read_text(encoding="utf-8")
    section = doc.split("### In Python", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    shown = section.split("prints", 1)[1].split("```\n", 1)[1].split("```", 1)[0]
    exec(compile(code, "docs/cohort.md", "exec"), {})
    assert capsys.readouterr().out == shown


@pytest.mark.parametrize("old,new", [("    uln: 40\n", "    uln: 1" + "0" * 400 + "\n"),
                                     ("on_time: {value: 0.85", "on_time: {value: 1" + "0" * 400),
                                     ("on_time: {value: 0.85", "on_time: {value: -1" + "0" * 400)])
def test_a_whole_number_too_large_for_a_float_is_e935_not_a_crash(old, new):
    with pytest.raises(ModelError) as e:
        parse_model(_edit(old, new), "m.yaml")
    assert e.value.code == "E935" and "1000000" in e.value.message, e.value.message


def test_a_number_in_e_notation_without_a_point_says_how_to_write_it():
    """YAML 1.1 (PyYAML) reads `2e-1` as text: the message says so rather than only 'must be a number'."""
    with pytest.raises(ModelError) as e:
        parse_model(_edit("on_time: {value: 0.85", "on_time: {value: 85e-2"), "m.yaml")
    assert e.value.code == "E931" and "85e-2" in e.value.message and "85.0e-2" in e.value.message, e.value.message


@pytest.mark.parametrize("old,new,says", [
    ("median: 0.56, sigma_log: 0.28", "median: 0.56, sigma_log: 1000", "1000 on the log scale: it must be at most 5"),
    ("median: 0.56, sigma_log: 0.28", "median: 0.56, cv: 1.0e+12", "on the log scale: it must be at most 5"),
    ("median: 0.56, sigma_log: 0.28", "median: 1.0e+300, sigma_log: 0.28", "at most 1e+15"),
    ("plateau_days: {value: 21", "plateau_days: {value: 1.0e+16", "from 0 to 1e+15"),
])
def test_a_number_whose_draws_would_not_be_finite_is_e935(old, new, says):
    """A spread of 1000 on the log scale made exp() overflow when the first patient was drawn
    (an internal error of `rxwatch cohort`); every number is at most 10^15, as a lab value is."""
    with pytest.raises(ModelError) as e:
        parse_model(_edit(old, new), "m.yaml")
    assert e.value.code == "E935" and says in e.value.message, e.value.message


def test_a_lateness_past_the_last_date_is_never_not_a_crash():
    """A lateness of up to 10^15 intervals (accepted) puts the test after 9999-12-31: never done."""
    text = _edit("on_time: {value: 0.85", "on_time: {value: 0")
    text = text.replace("lateness: {dist: uniform, low: 0, high: 1,", "lateness: {dist: uniform, low: 1.0e+14, high: 1.0e+15,")
    assert "1.0e+15" in text
    pt = parse_model(text, "m.yaml").patient(seed=1, index=0, start=DAY0, days=365)
    day = DAY0 + datetime.timedelta(days=30)
    assert pt.attends(day, day + datetime.timedelta(days=14)) is None
