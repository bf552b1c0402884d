"""No input, however malformed, makes the timeline readers raise anything but TimelineError.

Random text, random JSON/YAML structures shaped more or less like timelines and bundles, and
valid files cut or spliced at random: each either loads or raises TimelineError whose messages
are all located `Message`s. (A missing file is the only other outcome, an OSError, not tried.)
"""

from __future__ import annotations

import datetime
import json
import tempfile
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from rxwatch.simulator import units
from rxwatch.inputs.model import LabResult, Message, Timeline, TimelineError
from rxwatch.inputs.registry import load_timeline

DATA = Path(__file__).parent / "data" / "timelines"
PROTOCOL = json.loads((DATA / "protocol.json").read_text())
SAMPLES = {name: (DATA / name).read_text() for name in ("case-07.yaml", "case-07.json", "labs.csv")}
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def folder():
    with tempfile.TemporaryDirectory() as name:
        yield Path(name)


def check(folder: Path, text: str, name: str, **options) -> None:
    path = folder / name
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        timeline = load_timeline(path, PROTOCOL, **options)
    except TimelineError as exc:
        assert exc.messages, "a TimelineError without messages"
        event(f"error {exc.messages[0].code}")
        for m in exc.messages:
            assert isinstance(m, Message) and m.severity == "error"
            assert isinstance(m.line, int) and m.line >= 0 and m.text
            assert located(str(m), m.path, m.line)
        return
    assert isinstance(timeline, Timeline)
    event("loaded" if timeline.events else "loaded, no events")
    dates = [e.date for e in timeline.events]
    assert dates == sorted(dates)
    for e in timeline.events:
        if isinstance(e, LabResult):  # exact, finite and in range, whatever the input
            for x in (e.value, e.uln, e.lln):
                assert x is None or type(x) in (int, Fraction) and 0 <= x <= 10**15
    assert timeline.until is not None and timeline.start <= timeline.until or not timeline.events


# ---------------------------------------------------------------------------- text

texts = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=300)
yaml_ish = st.text(alphabet=list("{}[]:,-'\"&*!|>#%@ \n\tabdefilnprstuv0123456789.?<"), max_size=200)


@SETTINGS
@given(text=st.one_of(texts, yaml_ish))
def test_random_text_as_yaml(folder, text):
    check(folder, text, "random.yaml")


@SETTINGS
@given(text=st.one_of(texts, st.text(alphabet=list('date,lab,value,unit,uln,patient"\n#;0123456789-.ALTUL/ '), max_size=200)))
def test_random_text_as_csv(folder, text):
    check(folder, text, "random.csv")


@SETTINGS
@given(name=st.sampled_from(sorted(SAMPLES)), data=st.data())
def test_valid_files_cut_and_spliced(folder, name, data):
    text = SAMPLES[name]
    a = data.draw(st.integers(0, len(text)))
    b = data.draw(st.integers(a, len(text)))
    insert = data.draw(st.one_of(st.just(""), yaml_ish))
    check(folder, text[:a] + insert + text[b:], name)


# ---------------------------------------------------------------------------- structures

names = st.sampled_from(["ALT", "AST", "TBIL", "INR", "ALTT", "1742-6", "jaundice", "liver_disease",
                         "indication", "crcl", "stills_disease", "reduce_dose", "nope", ""])
dates = st.one_of(st.dates().map(str), st.datetimes().map(lambda d: d.isoformat()),
                  st.sampled_from(["2025-01-06", "2025-02-30", "2025-1-6", "today", "20250106"]))
unit_texts = st.one_of(st.sampled_from(["U/L", "IU/L", "umol/L", "mg/dL", "g/L", "%", "{INR}", "10*9/L",
                                        "mg//dL", "[iU]", "kat", "m2.s-1", "/L", "1", ""]),
                       st.text(alphabet=list("umolgdLUI[]{}/.*^%0123456789-+ "), max_size=12))
scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**20, 10**20),
                    st.floats(allow_nan=True, allow_infinity=True), names, dates, unit_texts, st.text(max_size=10))
anything = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.one_of(names, st.text(max_size=6)), inner, max_size=4)), max_leaves=12)

def mostly(good, bad):
    """`good` three times in four, `bad` otherwise: deep enough to reach the later checks."""
    return st.one_of(good, good, good, bad)


days = st.dates(datetime.date(2025, 1, 1), datetime.date(2025, 12, 31)).map(str)
good_units = st.sampled_from(["U/L", "IU/L", "[iU]/L", "umol/L", "mg/dL", "g/L", "{INR}", "1"])
numbers = st.floats(0, 1e6)
lab_entries = st.fixed_dictionaries(
    {"date": mostly(days, dates), "lab": mostly(st.sampled_from(["ALT", "AST", "TBIL", "ALP", "INR", "1742-6"]), names),
     "value": mostly(numbers, scalars)},
    optional={"unit": mostly(good_units, unit_texts), "uln": mostly(st.floats(0.1, 1e3), scalars)})
other_entries = st.one_of(
    st.fixed_dictionaries({"date": mostly(days, dates), "event": mostly(st.sampled_from(["jaundice", "encephalopathy"]), names)}),
    st.fixed_dictionaries({"date": mostly(days, dates), "choice": mostly(st.sampled_from(["reduce_dose", "hold_anakinra"]), names)}),
    st.fixed_dictionaries({"date": mostly(days, dates), "fact": st.sampled_from(["liver_disease", "crcl", "indication", "x"]),
                           "value": st.one_of(st.booleans(), numbers, st.sampled_from(["covid19", "other", "stills"]))}),
)
entry_keys = st.sampled_from(["date", "lab", "value", "unit", "uln", "event", "fact", "choice", "vlaue"])
entries = mostly(st.one_of(lab_entries, other_entries), st.one_of(st.dictionaries(entry_keys, scalars, max_size=5), anything))
fact_values = st.fixed_dictionaries({}, optional={
    "liver_disease": mostly(st.booleans(), scalars), "indication": mostly(st.sampled_from(["covid19", "other"]), scalars),
    "crcl": mostly(numbers, scalars)})
timelines = st.fixed_dictionaries(
    {"patient": mostly(st.fixed_dictionaries({"id": mostly(st.text(min_size=1, max_size=5), scalars)},
                                             optional={"facts": mostly(fact_values, anything)}), anything),
     "start": mostly(st.just("2025-01-01"), st.one_of(dates, anything))},
    optional={
        "until": mostly(st.just("2025-12-31"), st.one_of(dates, anything)),
        "events": mostly(st.lists(entries, max_size=8), anything),
        "extra": anything,
    })


@SETTINGS
@given(doc=st.one_of(timelines, anything))
def test_random_structures_as_json(folder, doc):
    check(folder, json.dumps(doc), "doc.json")


@SETTINGS
@given(doc=timelines, start=st.one_of(st.none(), dates), facts=st.dictionaries(names, st.text(max_size=6), max_size=2))
def test_random_structures_as_yaml_with_options(folder, doc, start, facts):
    from io import StringIO

    from ruamel.yaml import YAML

    out = StringIO()
    YAML(typ="safe", pure=True).dump(doc, out)
    check(folder, out.getvalue(), "doc.yaml", start=start, facts=facts)


UNITS_OF = {"ALT": ["U/L", "IU/L", "[iU]/L", "U/l", None], "AST": ["iu/L", None], "ALP": ["U/L"],
            "TBIL": ["mg/dL", "umol/L", "g/L", "mg/L", None], "INR": ["{INR}", "1", "ratio", None]}


clock_times = st.times().map(lambda t: t.isoformat(timespec="minutes"))


@st.composite
def well_formed_lab(draw):
    lab = draw(st.sampled_from(sorted(UNITS_OF)))
    entry = {"date": draw(days), "lab": lab, "value": draw(numbers)}
    if draw(st.booleans()):
        entry["time"] = draw(clock_times)
    unit = draw(st.sampled_from(UNITS_OF[lab]))
    if unit is not None:
        entry["unit"] = unit
    if draw(st.booleans()):
        entry["uln"] = draw(st.floats(0.1, 1e3))
    return entry


good_others = st.one_of(
    st.fixed_dictionaries({"date": days, "event": st.sampled_from(["jaundice", "encephalopathy"])}),
    st.fixed_dictionaries({"date": days, "choice": st.sampled_from(["reduce_dose", "hold_anakinra"])}),
    st.fixed_dictionaries({"date": days, "fact": st.just("crcl"), "value": numbers}),
    st.fixed_dictionaries({"date": days, "fact": st.just("indication"), "value": st.sampled_from(["covid19", "other"])}),
)
well_formed = st.fixed_dictionaries({
    "patient": st.fixed_dictionaries({"id": st.text(alphabet="abc-07 ", min_size=1, max_size=5).filter(str.strip)}, optional={"facts": st.fixed_dictionaries(
        {}, optional={"liver_disease": st.booleans(), "crcl": numbers, "indication": st.sampled_from(["hlh_mas", "other"])})}),
    "start": st.just("2025-01-01"),
    "events": st.lists(st.one_of(well_formed_lab(), good_others), max_size=12),  # duplicates allowed (v2)
})


@SETTINGS
@given(doc=well_formed)
def test_well_formed_timelines_load(folder, doc):
    path = folder / "good.json"
    path.write_text(json.dumps(doc, indent=1), encoding="utf-8")
    timeline = load_timeline(path, PROTOCOL)
    assert len(timeline.events) == len(doc["events"]) and timeline.warnings == ()
    assert timeline.until == max([timeline.start] + [e.date for e in timeline.events])
    for day in {e.date for e in timeline.events}:  # within a date (docs/timelines.md#order-within-a-day):
        todays = [e for e in timeline.events if e.date == day]
        timed = [e.time for e in todays if e.time is not None]
        assert timed == sorted(timed)  # timed events by time (zero-padded HH:MM texts sort as times)
        for i, e in enumerate(todays):
            if e.time is None:  # an event without time follows everything written above it
                assert all(x.loc.line > e.loc.line for x in todays[i + 1:])
        for a, b in zip(todays, todays[1:]):  # equal times, or none: file order
            if a.time == b.time:
                assert a.loc.line < b.loc.line
    # every entry is kept: in file order, the events are the entries written (duplicates too)
    for result, written in zip(sorted(timeline.events, key=lambda e: e.loc.line), doc["events"]):
        assert result.date == datetime.date.fromisoformat(written["date"]) and result.time == written.get("time")
        if isinstance(result, LabResult):
            assert result.unit == written.get("unit") and result.lab == written["lab"]
            assert type(result.value) in (int, Fraction)
            if units.same_unit(result.unit, PROTOCOL["labs"][result.lab]["unit"]):
                assert result.value == units.exact(written["value"])  # the decimal the JSON shows


quantities = mostly(
    st.fixed_dictionaries({"value": mostly(numbers, scalars)},
                          optional={"unit": mostly(good_units, unit_texts), "code": mostly(good_units, unit_texts),
                                    "comparator": st.sampled_from(["<", ">", "x"]),
                                    "system": st.sampled_from(["http://unitsofmeasure.org", "x"])}),
    anything)
codings = st.lists(st.fixed_dictionaries({
    "system": mostly(st.just("http://loinc.org"), st.just("http://snomed.info/sct")),
    "code": st.sampled_from(["1742-6", "1920-8", "14631-6", "1975-2", "6301-6", "2345-7"])}), min_size=1, max_size=2)
observations = st.fixed_dictionaries(
    {"resourceType": mostly(st.just("Observation"), st.sampled_from(["Observaton", "Claim", "Address"])),
     "status": mostly(st.just("final"), st.sampled_from(["entered-in-error", "bogus"])),
     "code": mostly(st.fixed_dictionaries({"coding": codings}), anything)},
    optional={
        "id": mostly(st.text(alphabet="abc-1", min_size=1, max_size=6), anything),
        "effectiveDateTime": mostly(days, st.one_of(dates, st.sampled_from(["2017", "2017-06"]), anything)),
        "valueQuantity": quantities,
        "valueString": st.text(max_size=3),
        "referenceRange": mostly(st.lists(st.fixed_dictionaries({"high": quantities}), max_size=2), anything),
    })
patient = {"resource": {"resourceType": "Patient", "id": "p-1"}}
bundles = st.fixed_dictionaries(
    {"resourceType": mostly(st.just("Bundle"), st.sampled_from(["Patient", 3])),
     "entry": mostly(st.lists(mostly(st.fixed_dictionaries({"resource": observations}), anything), max_size=6)
                     .map(lambda items: [patient] + items), anything)},
    optional={"type": st.sampled_from(["collection", "transaction", "x"])})


@SETTINGS
@given(doc=bundles, start=st.one_of(st.none(), dates), cut=st.one_of(st.none(), st.floats(0, 1)))
def test_random_bundles(folder, doc, start, cut):
    text = json.dumps(doc, indent=1)
    if cut is not None:
        text = text[: int(len(text) * cut)]
    check(folder, text, "bundle.json", start=start)


@SETTINGS
@given(source=unit_texts, target=unit_texts, value=st.floats(0, 1e12), molar_mass=st.one_of(st.none(), st.floats(-1, 1e4)))
def test_units_raise_only_unit_error(source, target, value, molar_mass):
    try:
        result = units.convert(value, source, target, molar_mass)
    except units.UnitError:
        return
    assert type(result) in (int, Fraction)
    # exact both ways: converting back gives the value written, to the last digit
    assert units.convert(result, target, source, molar_mass) == units.exact(value)


count_units = st.sampled_from(["10*9/L", "10^9/L", "10*3/uL", "K/uL", "10*3/mm3", "/mm3", "cells/uL", "{cells}/uL", "/uL"])


@SETTINGS
@given(a=count_units, b=count_units, c=count_units, value=st.fractions(0, 10**6))
def test_count_conversions_are_exact_and_compose(a, b, c, value):
    """Converting a count through any chain of spellings is the direct conversion, exactly."""
    assert units.convert(units.convert(value, a, b), b, c) == units.convert(value, a, c)


def located(text: str, path, line: int) -> bool:
    """`text` is the one diagnostic shape: PATH[:LINE[:COL]]: SEVERITY[CODE]: (no line when unknown)."""
    import re as _re
    where = _re.escape(str(path)) + (rf":{line}(?::\d+)?" if line else "")
    return _re.match(where + r": (?:error|warning)\[[EW]\d{3}\]: ", text) is not None
