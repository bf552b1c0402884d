"""FHIR R4 Bundles as timelines: three real Synthea bundles and small hand-made ones."""

from __future__ import annotations

import copy
import datetime
import json
from fractions import Fraction
from pathlib import Path

import pytest

from rxwatch.inputs.model import COMMAND_LINE, LabResult, TimelineError, latest_results
from rxwatch.inputs.registry import load_timeline

HERE = Path(__file__).parent / "data"
FHIR = HERE / "fhir-r4"
PROTOCOL = json.loads((HERE / "timelines" / "protocol.json").read_text())
THANH = FHIR / "Thanh_Mosciski_6b7b47bf-5bfb-475e-b5f6-955fde83a44f.json"
WENDELL = FHIR / "Wendell_Lesch_853767e6-14a5-400e-8b95-636f87701943.json"
JORDAN = FHIR / "Jordan_Cruickshank_5de38439-d320-46d3-854d-3c098e88de4c.json"
D = datetime.date


# ---------------------------------------------------------------------------- the real bundles

@pytest.mark.parametrize("path,panels,patient,first,last", [
    (THANH, 16, "7217c081-64cf-4e6c-b023-05c2e2dcf50c", D(2012, 2, 27), D(2021, 2, 24)),
    (WENDELL, 16, "cccb981f-2a12-44d0-b1dd-5404ece3f535", D(2008, 5, 19), D(2017, 5, 17)),
    (JORDAN, 1, "3afaeb2a-9f18-40b5-8fe7-dfd882de2f2b", D(2017, 6, 24), D(2017, 6, 24)),
])
def test_real_bundles(path, panels, patient, first, last):
    tl = load_timeline(path, PROTOCOL)
    assert len({e.date for e in tl.events}) == panels
    assert tl.patient == patient
    assert (tl.start, tl.until) == (first, last)
    assert all(isinstance(e, LabResult) for e in tl.events)
    assert {e.lab for e in tl.events} == {"ALT", "AST", "TBIL", "ALP"}
    assert len(tl.events) == 4 * panels  # one result per lab and panel
    assert tl.warnings == ()
    assert tl.facts == {"liver_disease": False, "hepatotoxic_comedication": False, "indication": "other", "crcl": 90.0}
    # each result cites the line of its entry in the pretty-printed JSON
    lines = path.read_text().splitlines()
    for result in tl.events[:8]:
        assert lines[result.loc.line - 1].strip() == '"resource": {', result.loc
        assert '"Observation"' in lines[result.loc.line]


def test_iu_per_litre_reads_as_u_per_litre():
    tl = load_timeline(JORDAN, PROTOCOL)
    by_lab = {e.lab: e for e in tl.events}
    assert by_lab["ALT"].unit == "IU/L" and by_lab["ALT"].value == pytest.approx(142.27, abs=0.01)
    assert by_lab["AST"].unit == "IU/L" and by_lab["AST"].value == pytest.approx(163, abs=1)
    assert by_lab["TBIL"].unit == "mg/dL"  # LOINC 42719-5, bilirubin in blood
    assert all(e.uln is None for e in tl.events)  # no referenceRange in Synthea data


def test_command_line_start_until_and_facts():
    tl = load_timeline(THANH, PROTOCOL, start="2015-01-01", until="2017-12-31", facts={"liver_disease": "true"})
    assert (tl.start, tl.until) == (D(2015, 1, 1), D(2017, 12, 31))
    assert len({e.date for e in tl.events}) == 3
    assert tl.facts["liver_disease"] is True
    [warning] = tl.warnings
    assert warning.path == COMMAND_LINE and warning.code == "W702" and "52 entries" in warning.text


# ---------------------------------------------------------------------------- small bundles

def observation(ident, loinc, value, unit="U/L", date="2025-01-06T08:30:00+01:00", **extra):
    resource = {
        "resourceType": "Observation", "id": ident, "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": loinc}]},
        "subject": {"reference": "Patient/p-1"},
        "effectiveDateTime": date,
    }
    if value is not None:
        resource["valueQuantity"] = {"value": value, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit}
    resource.update(extra)
    return resource


def bundle(*resources, patient=True):
    entries = [{"resource": {"resourceType": "Patient", "id": "p-1"}}] if patient else []
    entries += [{"fullUrl": f"urn:uuid:{i}", "resource": r} for i, r in enumerate(resources)]
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}


def write(tmp_path, data, name="b.json") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data, indent=2), encoding="utf-8")
    return path


def line_of(path: Path, needle: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


def test_reference_range_high_becomes_the_uln_in_the_labs_unit(tmp_path):
    tbil = observation("o-tbil", "14631-6", 60, "umol/L", referenceRange=[
        {"low": {"value": 3.4, "unit": "umol/L"}, "high": {"value": 20.5, "unit": "umol/L", "system": "http://unitsofmeasure.org", "code": "umol/L"}}])
    alt = observation("o-alt", "1742-6", 99, "IU/L", referenceRange=[{"high": {"value": 33}}])
    tl = load_timeline(write(tmp_path, bundle(tbil, alt)), PROTOCOL)
    by_lab = {e.lab: e for e in tl.events}
    mm = Fraction("584.66") / 10_000  # umol/L -> mg/dL, exactly
    assert by_lab["TBIL"].value == 60 * mm
    assert by_lab["TBIL"].uln == Fraction("20.5") * mm and by_lab["TBIL"].lln == Fraction("3.4") * mm
    assert by_lab["TBIL"].unit == "umol/L"
    assert (by_lab["ALT"].value, by_lab["ALT"].uln) == (99, 33)  # high without unit: the value's unit
    assert tl.patient == "p-1" and tl.start == tl.until == D(2025, 1, 6)


def test_unit_prefers_the_ucum_code(tmp_path):
    alt = observation("o-alt", "1742-6", 50)
    alt["valueQuantity"] = {"value": 50, "unit": "international units per litre", "system": "http://unitsofmeasure.org", "code": "[iU]/L"}
    ast = observation("o-ast", "1920-8", 40)
    ast["valueQuantity"] = {"value": 40, "unit": "IU/L", "system": "http://example.org/units", "code": "whatever"}
    tl = load_timeline(write(tmp_path, bundle(alt, ast)), PROTOCOL)
    assert [(e.lab, e.unit, e.value) for e in tl.events] == [("ALT", "[iU]/L", 50.0), ("AST", "IU/L", 40.0)]


def test_unusable_observations_are_warnings_naming_their_id(tmp_path):
    no_value = observation("o-novalue", "1742-6", None, valueString="see report")
    bad_unit = observation("o-badunit", "1920-8", 3, "mg/dL")
    censored = observation("o-censored", "6768-6", 5)
    censored["valueQuantity"]["comparator"] = "<"
    partial = observation("o-partial", "6301-6", 1.1, "{INR}", date="2025-01")
    wrong = observation("o-error", "1975-2", 1.0, "mg/dL", status="entered-in-error")
    huge = observation("o-huge", "1742-6", 1e308, "kU/L")
    zero_uln = observation("o-zero-uln", "1742-6", 3, referenceRange=[{"high": {"value": 0}}])
    inverted = observation("o-inverted", "1742-6", 3, referenceRange=[{"low": {"value": 50}, "high": {"value": 40}}])
    first = observation("o-first", "1742-6", 8)
    other = observation("o-other", "2345-7", 5.5, "mmol/L")  # glucose: not mapped, ignored
    path = write(tmp_path, bundle(first, no_value, bad_unit, censored, partial, wrong, huge, zero_uln, inverted, other))
    tl = load_timeline(path, PROTOCOL)
    assert [(e.lab, e.value) for e in tl.events] == [("ALT", 8)]
    texts = {w.text.split(" ")[1]: w for w in tl.warnings}
    assert set(texts) == {"o-novalue", "o-badunit", "o-censored", "o-partial", "o-error", "o-huge",
                          "o-zero-uln", "o-inverted"}
    assert all(w.code == "W701" and w.severity == "warning" and w.text.endswith("left out") for w in tl.warnings)
    assert "no valueQuantity value (it has valueString)" in texts["o-novalue"].text
    assert "'mg/dL' does not convert to 'U/L'" in texts["o-badunit"].text
    assert "censored (<5)" in texts["o-censored"].text
    assert "no full effective date (2025-01)" in texts["o-partial"].text
    assert "status is entered-in-error" in texts["o-error"].text
    assert "value 1e+308 kU/L is about 10^311 U/L, out of range" in texts["o-huge"].text
    assert "uln must be a number above 0, not 0; left out" in texts["o-zero-uln"].text
    assert "lln 50 is not below uln 40" in texts["o-inverted"].text
    assert texts["o-novalue"].line == line_of(path, '"o-novalue"') - 2  # the line of the entry's "resource": {
    assert str(texts["o-badunit"]).startswith(f"{path}:{texts['o-badunit'].line}: warning[W701]: Observation o-badunit (AST)")


def test_truncated_json(tmp_path):
    text = json.dumps(bundle(observation("o-1", "1742-6", 8)), indent=2)
    path = write(tmp_path, text[: len(text) // 2])
    with pytest.raises(TimelineError) as info:
        load_timeline(path, PROTOCOL)
    [message] = info.value.messages
    assert message.code == "E701" and message.text.startswith("invalid JSON")
    assert message.line == len(path.read_text().splitlines())


def test_broken_json_mid_file(tmp_path):
    text = json.dumps(bundle(observation("o-1", "1742-6", 8)), indent=2).replace('"final",', '"final"', 1)
    path = write(tmp_path, text)
    with pytest.raises(TimelineError) as info:
        load_timeline(path, PROTOCOL)
    [message] = info.value.messages
    assert message.code == "E701" and message.line == line_of(path, '"code": {')


def test_a_resource_that_is_not_a_bundle(tmp_path):
    path = write(tmp_path, {"id": "p-1", "resourceType": "Patient"})
    with pytest.raises(TimelineError) as info:
        load_timeline(path, PROTOCOL)
    [message] = info.value.messages
    assert (message.code, message.line) == ("E712", 3)
    assert "a FHIR timeline is a Bundle of Observations; this file holds a 'Patient' resource" in message.text


def test_entries_that_fail_validation(tmp_path):
    bad_status = observation("o-bad", "1742-6", 8, status=42)
    no_code = observation("o-nocode", "1920-8", 8)
    del no_code["code"]
    unknown = {"resourceType": "Observaton", "id": "typo"}
    path = write(tmp_path, bundle(bad_status, no_code, unknown, observation("o-ok", "1742-6", 9, date="2025-02-01")))
    with pytest.raises(TimelineError) as info:
        load_timeline(path, PROTOCOL)
    by_text = {m.text.split(":")[0]: m for m in info.value.messages}
    assert all(m.code == "E712" for m in info.value.messages)
    status = by_text["Observation o-bad is not valid FHIR R4"]
    assert status.line == line_of(path, '"status": 42') and "status" in status.text
    nocode = by_text["Observation o-nocode is not valid FHIR R4"]
    assert "code" in nocode.text
    typo = next(m for m in info.value.messages if "unknown resourceType" in m.text)
    assert "'Observaton'; did you mean 'Observation'?" in typo.text
    assert typo.line == line_of(path, '"Observaton"')


def test_a_bundle_without_patient_or_without_mapped_results(tmp_path):
    with pytest.raises(TimelineError) as info:
        load_timeline(write(tmp_path, bundle(observation("o-1", "1742-6", 8), patient=False)), PROTOCOL)
    assert [m.text for m in info.value.messages] == ["the Bundle has no Patient resource: whose timeline is it?"]
    path = write(tmp_path, bundle(observation("o-1", "2345-7", 5.5, "mmol/L")))
    with pytest.raises(TimelineError) as info:
        load_timeline(path, PROTOCOL)
    [message] = info.value.messages
    assert message.code == "E704"
    assert "none has a code the protocol maps (ALT 1742-6/1744-2/76625-3, AST 1920-8/30239-8" in message.text
    unusable = write(tmp_path, bundle(observation("o-1", "1742-6", None, valueString="see report")), "u.json")
    with pytest.raises(TimelineError) as info:
        load_timeline(unusable, PROTOCOL)
    [message] = info.value.messages
    assert "the 1 with one are left out (see the warnings)" in message.text
    assert [w.code for w in info.value.warnings] == ["W701"]
    tl = load_timeline(path, PROTOCOL, start="2025-01-01")
    assert tl.events == () and tl.start == tl.until == D(2025, 1, 1)


def test_two_patients(tmp_path):
    data = bundle(observation("o-1", "1742-6", 8))
    data["entry"].append({"resource": {"resourceType": "Patient", "id": "p-2"}})
    with pytest.raises(TimelineError) as info:
        load_timeline(write(tmp_path, data), PROTOCOL)
    [message] = info.value.messages
    assert "2 Patient resources" in message.text


def test_a_fact_without_default_is_asked_for_on_the_command_line(tmp_path):
    protocol = copy.deepcopy(PROTOCOL)
    protocol["facts"]["weight"] = {"type": "number", "unit": "kg", "members": None, "has_default": False, "default": None}
    path = write(tmp_path, bundle(observation("o-1", "1742-6", 8)))
    with pytest.raises(TimelineError) as info:
        load_timeline(path, protocol)
    [message] = info.value.messages
    assert (message.path, message.line, message.code) == (COMMAND_LINE, 0, "E710")
    assert "--fact weight=VALUE" in message.text
    assert load_timeline(path, protocol, facts={"weight": "71.5"}).facts["weight"] == 71.5


# ---------------------------------------------------------------------------- v2: times, duplicates, exact values

def test_two_results_of_a_lab_on_a_day_are_kept_with_their_times(tmp_path):
    late = observation("o-late", "1742-6", 30, date="2025-01-06T20:00:00Z")
    early = observation("o-early", "1744-2", 300, date="2025-01-06T08:30:00+01:00")
    ast = observation("o-ast", "1920-8", 40, date="2025-01-06")
    tl = load_timeline(write(tmp_path, bundle(late, early, ast)), PROTOCOL)
    assert tl.warnings == ()
    # by time; the AST without a time follows what is above it in the file (docs/timelines.md)
    assert [(e.lab, e.value, e.time) for e in tl.events] == [
        ("ALT", 300, "08:30:00+01:00"), ("ALT", 30, "20:00:00Z"), ("AST", 40, None)]
    kept, replaced = latest_results(tl.events)
    assert kept["ALT"].value == 30 and [r.value for r in replaced] == [300]


def test_values_are_read_from_the_json_text(tmp_path):
    text = json.dumps(bundle(observation("o-1", "14631-6", 123.0, "mg/L"), observation("o-2", "6301-6", 1.1, "{INR}")), indent=2)
    text = text.replace("123.0", "24.0000000000000001")  # more digits than a float keeps
    tl = load_timeline(write(tmp_path, text), PROTOCOL)
    tbil, inr = tl.events
    assert tbil.value == Fraction("2.40000000000000001") and inr.value == Fraction(11, 10)


def test_a_low_of_zero_is_no_lower_limit(tmp_path):
    alt = observation("o-1", "1742-6", 50, referenceRange=[{"low": {"value": 0}, "high": {"value": 40}}])
    ast = observation("o-2", "1920-8", 50, referenceRange=[{"low": {"value": 7.5, "unit": "U/L"}}])
    tl = load_timeline(write(tmp_path, bundle(alt, ast)), PROTOCOL)
    assert [(e.lln, e.uln) for e in tl.events] == [(None, 40), (Fraction(15, 2), None)]
    assert tl.warnings == ()


def test_24_mg_per_litre_from_fhir_is_2_4_mg_per_decilitre(tmp_path):
    tl = load_timeline(write(tmp_path, bundle(observation("o-1", "1975-2", 24, "mg/L"))), PROTOCOL)
    assert tl.events[0].value == Fraction(12, 5)


def test_a_value_that_is_not_finite_is_a_located_error(tmp_path):
    """JSON has no NaN, but Python writes one: the R4 model refuses it, at the line of the field."""
    path = write(tmp_path, bundle(observation("o-nan", "1742-6", float("nan")), observation("o-inf", "1920-8", float("inf"))))
    with pytest.raises(TimelineError) as info:
        load_timeline(path, PROTOCOL)
    messages = info.value.messages
    assert [m.code for m in messages] == ["E712", "E712"]
    assert "Observation o-nan is not valid FHIR R4: valueQuantity.value" in messages[0].text
    assert messages[0].line == line_of(path, "NaN") - 1  # the line of "valueQuantity"


@pytest.mark.parametrize("digits,code", [(400, "W701"), (5000, "E712")])
def test_a_number_of_hundreds_of_digits_is_located_not_a_crash(tmp_path, digits, code):
    """Issue 10 item 11: a 400-digit value was an OverflowError; 5,000 digits pass int()'s limit."""
    text = json.dumps(bundle(observation("o-1", "1742-6", 12345), observation("o-2", "1920-8", 30)), indent=2)
    tl_or_error = None
    path = write(tmp_path, text.replace("12345", "9" * digits))
    try:
        tl_or_error = load_timeline(path, PROTOCOL)
        found = list(tl_or_error.warnings)
        assert [e.lab for e in tl_or_error.events] == ["AST"]
    except TimelineError as exc:
        found = exc.messages
    [message] = [m for m in found if m.code == code]
    assert message.line == line_of(path, '"o-1"') - 2 or "valueQuantity" in message.text
    assert len(message.text) < 300
