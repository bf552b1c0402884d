"""Timelines in YAML/JSON and CSV, and lab units (docs/timelines.md, contracts/timeline.md)."""

from __future__ import annotations

import copy
import datetime
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from rxwatch.simulator import units, yamlsrc
from rxwatch.simulator.timeline import (
    COMMAND_LINE, Choice, ClinicalEvent, FactChange, LabResult, Message, Timeline, TimelineError,
    load_timeline, parse_timeline,
)

DATA = Path(__file__).parent / "data" / "timelines"
PROTOCOL = json.loads((DATA / "protocol.json").read_text())
D = datetime.date


def write(tmp_path: Path, text: str, name: str = "t.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def errors(path: Path, protocol: dict = PROTOCOL, **options) -> list[Message]:
    with pytest.raises(TimelineError) as info:
        load_timeline(path, protocol, **options)
    messages = info.value.messages
    assert messages and all(m.severity == "error" for m in messages)
    return messages


def only_error(path: Path, **options) -> Message:
    messages = errors(path, **options)
    assert len(messages) == 1, [str(m) for m in messages]
    return messages[0]


# ---------------------------------------------------------------------------- the happy path

def test_the_contract_example_loads():
    tl = load_timeline(DATA / "case-07.yaml", PROTOCOL)
    assert isinstance(tl, Timeline)
    assert tl.patient == "case-07"
    assert tl.start == D(2025, 1, 6) and tl.until == D(2025, 9, 30)
    assert tl.facts == {"liver_disease": False, "hepatotoxic_comedication": False,
                        "indication": "stills_disease", "crcl": 90.0}
    assert tl.warnings == ()
    dates = [e.date for e in tl.events]
    assert dates == sorted(dates)
    # sorted stably: within 2025-01-06 the file order ALT, AST, then INR (written last) is kept
    assert [(e.lab, e.loc.line) for e in tl.events[:3]] == [("ALT", 10), ("AST", 11), ("INR", 17)]
    alt = tl.events[3]
    assert alt == LabResult(D(2025, 2, 3), "ALT", 1362.0, 33.0, alt.loc, None)
    tbil = tl.events[4]
    assert tbil.lab == "TBIL" and tbil.unit == "umol/L" and tbil.value == pytest.approx(60 / 17.1, rel=1e-3)
    assert tl.events[5] == Choice(D(2025, 2, 3), "reduce_dose", tl.events[5].loc)
    assert tl.events[6] == ClinicalEvent(D(2025, 2, 10), "jaundice", tl.events[6].loc)
    assert tl.events[7] == FactChange(D(2025, 3, 1), "hepatotoxic_comedication", True, tl.events[7].loc)
    assert tl.events[7].loc.path == str(DATA / "case-07.yaml") and tl.events[7].loc.line == 16


def test_json_timeline_with_a_date_time_and_until_defaulting_to_the_last_event():
    tl = load_timeline(DATA / "case-07.json", PROTOCOL)
    assert tl.events[-1] == ClinicalEvent(D(2025, 2, 10), "jaundice", tl.events[-1].loc)
    assert tl.events[-1].loc.line == 7
    assert tl.until == D(2025, 2, 10)
    assert tl.facts["indication"] == "stills_disease"


def test_without_events_until_is_start(tmp_path):
    tl = load_timeline(write(tmp_path, "patient: {id: p}\nstart: 2025-01-06\n"), PROTOCOL)
    assert tl.events == () and tl.until == tl.start == D(2025, 1, 6)


def test_command_line_facts_override_the_file():
    tl = load_timeline(DATA / "case-07.yaml", PROTOCOL,
                       facts={"indication": "covid19", "liver_disease": "yes", "crcl": "25"})
    assert tl.facts["indication"] == "covid19" and tl.facts["liver_disease"] is True
    assert tl.facts["crcl"] == 25.0
    tl = load_timeline(DATA / "case-07.yaml", PROTOCOL, facts=["liver_disease=true"])
    assert tl.facts["liver_disease"] is True


def test_command_line_start_and_until_leave_out_what_is_outside_with_a_warning():
    tl = load_timeline(DATA / "case-07.yaml", PROTOCOL, start="2025-02-01", until=D(2025, 2, 28))
    assert tl.start == D(2025, 2, 1) and tl.until == D(2025, 2, 28)
    assert {e.date for e in tl.events} == {D(2025, 2, 3), D(2025, 2, 10)}
    [warning] = tl.warnings
    assert warning.code == "W702" and warning.path == COMMAND_LINE and "4 entries" in warning.text
    assert str(warning).startswith("<command line>:0: warning: ")


def test_anchors_and_merge_keys(tmp_path):
    path = write(tmp_path, """
        patient: {id: p}
        start: 2025-01-06
        events:
          - &alt {date: 2025-01-06, lab: ALT, value: 32, unit: IU/L}
          - {<<: *alt, lab: AST}
        """)
    tl = load_timeline(path, PROTOCOL)
    assert [(e.lab, e.value, e.unit, e.loc.line) for e in tl.events] == [("ALT", 32, "IU/L", 4), ("AST", 32, "IU/L", 5)]


def test_a_scenario_file_can_keep_its_own_keys(tmp_path):
    path = write(tmp_path, "patient: {id: p}\nstart: 2025-01-06\nexpect: {final_state: x}\n")
    doc = yamlsrc.load(path.read_text(), str(path))
    tl = parse_timeline(doc, str(path), PROTOCOL, extra_keys={"expect"})
    assert tl.patient == "p"
    with pytest.raises(TimelineError) as info:
        parse_timeline(doc, str(path), PROTOCOL)
    assert [m.code for m in info.value.messages] == ["E703"]


def test_a_lab_may_be_named_by_a_loinc_code(tmp_path):
    path = write(tmp_path, "patient: {id: p}\nstart: 2025-01-06\nevents:\n  - {date: 2025-01-06, lab: '1742-6', value: 3}\n")
    assert load_timeline(path, PROTOCOL).events[0].lab == "ALT"


def test_message_format():
    assert str(Message("t.yaml", 3, "unknown lab 'X'")) == "t.yaml:3: unknown lab 'X'"
    assert str(Message("t.yaml", 3, "odd", "warning")) == "t.yaml:3: warning: odd"


def test_a_missing_file_is_an_oserror(tmp_path):
    with pytest.raises(OSError):
        load_timeline(tmp_path / "nope.yaml", PROTOCOL)


# ---------------------------------------------------------------------------- one test per mistake

HEAD = "patient: {id: p}\nstart: 2025-01-06\nevents:\n"  # events start at line 4

CASES = [
    # (id, text, line, code, words in the message)
    ("yaml syntax", "patient: {id: p\nstart: 2025-01-06\n", 2, "E701", "invalid YAML"),
    ("duplicate key", "patient: {id: p}\nstart: 2025-01-06\nstart: 2025-01-07\n", 3, "E701", "duplicate key 'start' (first at line 2)"),
    ("yaml tag", "patient: {id: p}\nstart: !!binary aGVsbG8=\n", 2, "E701", "unsupported YAML tag"),
    ("top level a list", "- patient\n- start\n", 1, "E702", "a timeline is a mapping"),
    ("top level a text", "\n\njust words\n", 1, "E702", "this file holds the text 'just words'"),
    ("empty file", "# nothing\n", 1, "E702", "this file is empty"),
    ("unknown top-level key", "patient: {id: p}\nstart: 2025-01-06\nevnts: []\n", 3, "E703", "unknown key 'evnts'; did you mean 'events'?"),
    ("missing patient", "start: 2025-01-06\n", 1, "E704", "missing 'patient'"),
    ("patient not a mapping", "patient: p\nstart: 2025-01-06\n", 1, "E702", "'patient' must be a mapping"),
    ("missing patient id", "patient:\n  facts: {}\nstart: 2025-01-06\n", 1, "E704", "missing patient 'id'"),
    ("patient id a number", "patient:\n  id: 7\nstart: 2025-01-06\n", 2, "E708", 'write it in quotes: id: "7"'),
    ("unknown patient key", "patient:\n  id: p\n  fact: {}\nstart: 2025-01-06\n", 3, "E703", "did you mean 'facts'?"),
    ("missing start", "patient: {id: p}\n", 1, "E704", "missing 'start'"),
    ("bad start", "patient: {id: p}\nstart: 2025-02-30\n", 2, "E705", "'2025-02-30' is not an ISO 8601 date"),
    ("start not a date", "patient: {id: p}\nstart: 20250106\n", 2, "E705", "20250106 is not an ISO 8601 date"),
    ("until before start", "patient: {id: p}\nstart: 2025-01-06\nuntil: 2025-01-05\n", 3, "E706", "until 2025-01-05 is before start 2025-01-06"),
    ("event after until", "patient: {id: p}\nstart: 2025-01-06\nuntil: 2025-02-01\nevents:\n  - {date: 2025-02-02, event: jaundice}\n", 5, "E706", "after until (2025-02-01)"),
    ("event before start", HEAD + "  - {date: 2025-01-05, event: jaundice}\n", 4, "E706", "before start"),
    ("bad event date", HEAD + "  - {date: 2025-1-5, event: jaundice}\n", 4, "E705", "'2025-1-5' is not an ISO 8601 date"),
    ("events not a list", "patient: {id: p}\nstart: 2025-01-06\nevents: {lab: ALT}\n", 3, "E702", "'events' must be a list"),
    ("entry not a mapping", HEAD + "  - jaundice\n", 4, "E702", "an event is a mapping"),
    ("entry of two kinds", HEAD + "  - {date: 2025-01-06, lab: ALT, value: 3, event: jaundice}\n", 4, "E702", "this one has lab and event"),
    ("entry of no kind", HEAD + "  - {date: 2025-01-06, evnt: jaundice}\n", 4, "E702", "needs one of lab, event, fact or choice; did you mean 'event'?"),
    ("unknown entry key", HEAD + "  - {date: 2025-01-06, lab: ALT, value: 3,\n     vlaue: 4}\n", 5, "E703", "unknown key 'vlaue' in a lab entry; did you mean 'value'?"),
    ("missing date", HEAD + "  - {event: jaundice}\n", 4, "E704", "missing 'date'"),
    ("missing value", HEAD + "  - {date: 2025-01-06, lab: ALT}\n", 4, "E704", "missing 'value' for lab ALT"),
    ("value not a number", HEAD + "  - {date: 2025-01-06, lab: ALT, value: '32'}\n", 4, "E708", "value must be a number, not the text '32'"),
    ("value a bool", HEAD + "  - {date: 2025-01-06, lab: ALT, value: true}\n", 4, "E708", "value must be a number, not true"),
    ("value not finite", HEAD + "  - {date: 2025-01-06, lab: ALT, value: .nan}\n", 4, "E708", "value must be a number"),
    ("negative value", HEAD + "  - {date: 2025-01-06, lab: ALT, value: -3}\n", 4, "E708", "value -3 is negative"),
    ("bad uln", HEAD + "  - {date: 2025-01-06, lab: ALT, value: 3, uln: 0}\n", 4, "E708", "uln must be a number above 0"),
    ("unknown lab", HEAD + "  - {date: 2025-01-06, lab: ALTT, value: 32}\n", 4, "E707", "unknown lab 'ALTT'; did you mean 'ALT'?"),
    ("unknown lab, other case", HEAD + "  - {date: 2025-01-06, lab: tbil, value: 1}\n", 4, "E707", "did you mean 'TBIL'?"),
    ("unknown event", HEAD + "  - {date: 2025-01-06, event: jaundise}\n", 4, "E707", "unknown event 'jaundise'; did you mean 'jaundice'?"),
    ("unknown fact", HEAD + "  - {date: 2025-01-06, fact: liver_diseas, value: true}\n", 4, "E707", "unknown fact 'liver_diseas'; did you mean 'liver_disease'?"),
    ("unknown action", HEAD + "  - {date: 2025-01-06, choice: reduce_dos}\n", 4, "E707", "unknown action 'reduce_dos'; did you mean 'reduce_dose'?"),
    ("unknown fact under patient", "patient:\n  id: p\n  facts:\n    liver_disase: true\nstart: 2025-01-06\n", 4, "E707", "did you mean 'liver_disease'?"),
    ("fact of the wrong type", "patient:\n  id: p\n  facts:\n    liver_disease: yes\nstart: 2025-01-06\n", 4, "E708", "fact 'liver_disease' is true or false, not the text 'yes'"),
    ("number fact given text", HEAD + "  - {date: 2025-01-06, fact: crcl, value: low}\n", 4, "E708", "fact 'crcl' is a number (in mL/min)"),
    ("unknown enum member", "patient:\n  id: p\n  facts: {indication: stills}\nstart: 2025-01-06\n", 3, "E708", "'stills' is not a member of fact 'indication'; did you mean 'stills_disease'?"),
    ("fact change without value", HEAD + "  - {date: 2025-01-06, fact: liver_disease}\n", 4, "E704", "missing 'value' for fact 'liver_disease'"),
    ("unit that does not convert", HEAD + "  - {date: 2025-01-06, lab: ALT, value: 3, unit: mg/dL}\n", 4, "E709", "ALT: 'mg/dL' does not convert to 'U/L'"),
    ("unit that cannot be read", HEAD + "  - {date: 2025-01-06, lab: ALT, value: 3, unit: 'U//L'}\n", 4, "E709", "cannot read the unit 'U//L'"),
    ("unknown unit", HEAD + "  - {date: 2025-01-06, lab: ALT, value: 3, unit: bogus/L}\n", 4, "E709", "ALT: unknown unit 'bogus' in 'bogus/L'"),
    ("a unit for a lab without unit", HEAD + "  - {date: 2025-01-06, lab: INR, value: 1.1, unit: '%'}\n", 4, "E709", "INR is declared without unit"),
    ("molar unit without molar mass", HEAD + "  - {date: 2025-01-06, lab: ALT, value: 3, unit: umol/L}\n", 4, "E709", "does not convert"),
    ("two results for a lab on a day", HEAD + "  - {date: 2025-01-06, lab: ALT, value: 3}\n  - {date: 2025-01-06, lab: ALT, value: 4}\n", 5, "E711", "a second ALT result on 2025-01-06 (the first is at line 4)"),
]


@pytest.mark.parametrize("text,line,code,words", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_each_mistake_is_located(tmp_path, text, line, code, words):
    path = write(tmp_path, text)
    message = only_error(path)
    assert (message.path, message.line, message.code) == (str(path), line, code), str(message)
    assert words in message.text
    assert str(message).startswith(f"{path}:{line}: ")


def test_a_fact_with_no_default_and_no_value(tmp_path):
    protocol = copy.deepcopy(PROTOCOL)
    protocol["facts"]["weight"] = {"description": None, "type": "number", "unit": "kg", "members": None,
                                   "has_default": False, "default": None}
    path = write(tmp_path, "patient:\n  id: p\n  facts: {}\nstart: 2025-01-06\n")
    [message] = errors(path, protocol)
    assert (message.line, message.code) == (3, "E710")
    assert "fact 'weight' has no default and no value" in message.text
    assert load_timeline(path, protocol, facts={"weight": "70"}).facts["weight"] == 70.0


def test_every_mistake_of_a_file_is_reported(tmp_path):
    path = write(tmp_path, """
        patient:
          id: p
          facts: {indication: stills}
        strat: 2025-01-06
        events:
          - {date: 2025-01-06, lab: ALTT, value: 32}
          - {date: 2025-01-06, lab: AST, value: -3}
          - {date: 2025-02-03, event: jaundise}
          - {date: 2025-02-03, lab: TBIL, value: 1, unit: U/L}
        """)
    messages = errors(path)
    assert [(m.line, m.code) for m in messages] == [
        (1, "E704"), (3, "E708"), (4, "E703"), (6, "E707"), (7, "E708"), (8, "E707"), (9, "E709")]


def test_command_line_mistakes(tmp_path):
    path = DATA / "case-07.yaml"
    messages = errors(path, start="2025-1-1", facts=["crcl=abc", "nope=1", "liver_disease", "indication=stills"])
    assert all(m.path == COMMAND_LINE and m.line == 0 for m in messages)
    assert [m.code for m in messages] == ["E705", "E708", "E707", "E702", "E708"]
    assert "did you mean 'stills_disease'?" in messages[-1].text
    [message] = errors(path, start="2025-03-01", until="2025-02-01")
    assert message.code == "E706" and str(message) == "<command line>:0: --until 2025-02-01 is before --start 2025-03-01"
    [message] = errors(path, until="2024-12-31")
    assert message.code == "E706" and message.text == "--until 2024-12-31 is before the timeline's start 2025-01-06"


def test_a_file_that_is_not_utf8(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_bytes(b"patient: {id: p}\nstart: 2025-01-06\n# caf\xe9\n")
    message = only_error(path)
    assert (message.line, message.code) == (3, "E701")


# ---------------------------------------------------------------------------- units

@pytest.mark.parametrize("spelling", ["U/L", "IU/L", "[iU]/L", "U/l", "iu/L", "[IU]/L", "IU/l"])
def test_enzyme_activity_spellings_are_the_same_unit(spelling):
    assert units.same_unit(spelling, "U/L")
    assert units.convert(42, spelling, "U/L") == 42.0


@pytest.mark.parametrize("spelling", [None, "", "1", "{ratio}", "{INR}", "ratio", "INR"])
def test_no_unit_spellings(spelling):
    assert units.convert(1.4, spelling, None) == 1.4


def test_conversions():
    assert units.convert(60, "umol/L", "mg/dL", molar_mass=584.66) == pytest.approx(3.508, abs=1e-3)
    assert units.convert(1, "mg/dL", "umol/L", molar_mass=584.66) == pytest.approx(17.1, abs=0.01)
    assert units.convert(1, "mg/dL", "g/L") == pytest.approx(0.01)
    assert units.convert(10, "mg/L", "mg/dL") == pytest.approx(1.0)
    assert units.convert(1, "ukat/L", "U/L") == pytest.approx(60, rel=1e-3)
    assert units.convert(5, "10*9/L", "10*3/uL") == pytest.approx(5)


@pytest.mark.parametrize("source,target,molar_mass", [
    ("umol/L", "mg/dL", None), ("U/L", "mg/dL", 584.66), ("%", None, None), ("U/L", None, None),
    ("mg//dL", "mg/dL", None), ("[foo]/L", "U/L", None), ("xyz/L", "U/L", None), ("10*99/L", "U/L", None),
])
def test_what_does_not_convert(source, target, molar_mass):
    with pytest.raises(units.UnitError):
        units.convert(1, source, target, molar_mass)


def test_pint_is_imported_only_when_a_unit_differs():
    code = textwrap.dedent(f"""
        import json, sys
        from rxwatch.simulator.timeline import load_timeline
        protocol = json.load(open({str(DATA / 'protocol.json')!r}))
        from rxwatch.simulator import yamlsrc
        from rxwatch.simulator.timeline import parse_timeline
        load_timeline({str(DATA / 'case-07.json')!r}, protocol)
        text = "patient: {{id: p}}\\nstart: 2025-01-06\\nevents: [{{date: 2025-01-06, lab: ALT, value: 3, unit: IU/L}}]"
        assert parse_timeline(yamlsrc.load(text), "t", protocol).events[0].value == 3
        assert 'pint' not in sys.modules, 'pint imported for same units'
        load_timeline({str(DATA / 'case-07.yaml')!r}, protocol)  # TBIL in umol/L
        assert 'pint' in sys.modules
    """)
    subprocess.run([sys.executable, "-c", code], check=True)


# ---------------------------------------------------------------------------- CSV

def test_csv_happy_path():
    tl = load_timeline(DATA / "labs.csv", PROTOCOL)
    assert tl.patient == "labs" and tl.start == D(2025, 1, 6) and tl.until == D(2025, 2, 3)
    assert [(e.lab, e.loc.line) for e in tl.events] == [("ALT", 3), ("AST", 4), ("TBIL", 5), ("ALT", 7), ("INR", 8)]
    tbil = tl.events[2]
    assert tbil.value == pytest.approx(1.0, abs=1e-3) and tbil.uln == pytest.approx(1.2, abs=1e-2)
    assert tl.events[1].unit == "IU/L" and tl.events[3].uln == 33.0 and tl.events[4].unit is None
    assert tl.facts["indication"] == "other"


def test_csv_patient_column_and_column_order(tmp_path):
    path = write(tmp_path, "patient,value,lab,date\nc-1,32,ALT,2025-01-06\nc-1,1.1,INR,2025-01-08\n", "x.csv")
    tl = load_timeline(path, PROTOCOL)
    assert tl.patient == "c-1" and [e.value for e in tl.events] == [32.0, 1.1]


CSV_CASES = [
    ("empty", "", 1, "E701", "the file is empty"),
    ("no header", "2025-01-06,ALT,32,U/L\n", 1, "E704", "no header row"),
    ("semicolons", "date;lab;value\n2025-01-06;ALT;32\n", 1, "E701", "not semicolons"),
    ("missing column", "date,lab,unit\n", 1, "E704", "lacks the column value"),
    ("unknown column", "date,lab,vaule,value\n", 1, "E703", "unknown column 'vaule'; did you mean 'value'?"),
    ("bad date", "date,lab,value\n2025-01-06,ALT,32\n06/01/2025,ALT,32\n", 3, "E705", "'06/01/2025' is not an ISO 8601 date"),
    ("unknown lab", "date,lab,value\n2025-01-06,ALTT,32\n", 2, "E707", "did you mean 'ALT'?"),
    ("missing value", "date,lab,value\n2025-01-06,ALT,\n", 2, "E704", "missing value"),
    ("value not a number", "date,lab,value\n2025-01-06,ALT,high\n", 2, "E708", "value must be a number, not 'high'"),
    ("value nan", "date,lab,value\n2025-01-06,ALT,nan\n", 2, "E708", "value must be a number"),
    ("negative value", "date,lab,value\n2025-01-06,ALT,-1\n", 2, "E708", "negative"),
    ("bad uln", "date,lab,value,uln\n2025-01-06,ALT,1,x\n", 2, "E708", "uln must be a number above 0"),
    ("bad unit", "date,lab,value,unit\n2025-01-06,ALT,1,mg/dL\n", 2, "E709", "does not convert to 'U/L'"),
    ("too many cells", "date,lab,value\n2025-01-06,ALT,1,U/L\n", 2, "E702", "4 cells"),
    ("duplicate", "date,lab,value\n2025-01-06,ALT,1\n2025-01-06,1742-6,2\n", 3, "E711", "the first is at line 2"),
    ("two patients", "patient,date,lab,value\na,2025-01-06,ALT,1\nb,2025-01-07,ALT,1\n", 3, "E711", "a second patient 'b'"),
    ("unterminated quote", 'date,lab,value\n2025-01-06,ALT,1\n2025-01-07,"ALT,1\n', 3, "E701", "invalid CSV"),
    ("header only", "date,lab,value\n", 1, "E704", "no lab results"),
]


@pytest.mark.parametrize("text,line,code,words", [c[1:] for c in CSV_CASES], ids=[c[0] for c in CSV_CASES])
def test_each_csv_mistake_is_located(tmp_path, text, line, code, words):
    path = tmp_path / "labs.csv"
    path.write_text(text, encoding="utf-8")
    message = only_error(path)
    assert (message.line, message.code) == (line, code), str(message)
    assert words in message.text


def test_csv_reports_every_bad_row(tmp_path):
    path = write(tmp_path, "date,lab,value\n2025-13-01,ALT,1\n\n# skipped\n2025-01-02,ALTT,1\n2025-01-03,AST,x\n", "l.csv")
    assert [(m.line, m.code) for m in errors(path)] == [(2, "E705"), (5, "E707"), (6, "E708")]


def test_csv_with_a_start_given_and_no_rows(tmp_path):
    path = write(tmp_path, "date,lab,value\n", "l.csv")
    tl = load_timeline(path, PROTOCOL, start="2025-01-01")
    assert tl.events == () and tl.until == tl.start == D(2025, 1, 1)
