"""Timelines in YAML/JSON and CSV, and lab units (docs/timelines.md, contracts/timeline.md)."""

from __future__ import annotations

import copy
import datetime
import json
import textwrap
from fractions import Fraction
from pathlib import Path

import pytest

from rxwatch.simulator import units
from rxwatch.inputs import yamlsrc
from rxwatch.inputs.model import (
    COMMAND_LINE, Choice, ClinicalEvent, FactChange, LabResult, Loc, Message, Timeline, TimelineError,
    latest_results, recency,
)
from rxwatch.inputs.registry import load_timeline
from rxwatch.inputs.yamljson import parse_timeline

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
    assert alt == LabResult(D(2025, 2, 3), "ALT", 1362, 33, alt.loc, None)
    assert type(alt.value) is int and type(alt.uln) is int and alt.lln is None and alt.time is None
    tbil = tl.events[4]
    # 60 umol/L at 584.66 g/mol, exactly: 60e-6 mol/L * 584.66 g/mol = 0.0350796 g/L = 3.50796 mg/dL
    assert tbil.lab == "TBIL" and tbil.unit == "umol/L" and tbil.value == Fraction("3.50796")
    assert tl.events[2].value == Fraction(11, 10)  # INR 1.1, written last: the decimal, not the float
    assert tl.events[5] == Choice(D(2025, 2, 3), "reduce_dose", tl.events[5].loc)
    assert tl.events[6] == ClinicalEvent(D(2025, 2, 10), "jaundice", tl.events[6].loc)
    assert tl.events[7] == FactChange(D(2025, 3, 1), "hepatotoxic_comedication", True, tl.events[7].loc)
    assert tl.events[7].loc.path == str(DATA / "case-07.yaml") and tl.events[7].loc.line == 16


def test_json_timeline_with_a_date_time_and_until_defaulting_to_the_last_event():
    tl = load_timeline(DATA / "case-07.json", PROTOCOL)
    # the date-time gives the date and the time as written, zone kept
    assert tl.events[-1] == ClinicalEvent(D(2025, 2, 10), "jaundice", tl.events[-1].loc, "09:30:00+01:00")
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
    assert tl.facts["crcl"] == 25 and type(tl.facts["crcl"]) is int
    tl = load_timeline(DATA / "case-07.yaml", PROTOCOL, facts={"crcl": "25.1"})
    assert tl.facts["crcl"] == Fraction(251, 10)  # exact from the text
    tl = load_timeline(DATA / "case-07.yaml", PROTOCOL, facts=["liver_disease=true"])
    assert tl.facts["liver_disease"] is True


def test_command_line_start_and_until_leave_out_what_is_outside_with_a_warning():
    tl = load_timeline(DATA / "case-07.yaml", PROTOCOL, start="2025-02-01", until=D(2025, 2, 28))
    assert tl.start == D(2025, 2, 1) and tl.until == D(2025, 2, 28)
    assert {e.date for e in tl.events} == {D(2025, 2, 3), D(2025, 2, 10)}
    [warning] = tl.warnings
    assert warning.code == "W702" and warning.path == COMMAND_LINE and "4 entries" in warning.text
    assert str(warning).startswith("<command line>: warning[W702]: ")


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
    assert str(Message("t.yaml", 3, "unknown lab 'X'", code="E707")) == "t.yaml:3: error[E707]: unknown lab 'X'"
    assert str(Message("t.yaml", 3, "odd", "warning", "W701")) == "t.yaml:3: warning[W701]: odd"
    assert str(Message("t.yaml", 0, "odd", "warning", "W701")) == "t.yaml: warning[W701]: odd"


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
    ("value nan", HEAD + "  - {date: 2025-01-06, lab: ALT, value: .nan}\n", 4, "E708", "value must be a finite number, not .nan"),
    ("value inf", HEAD + "  - {date: 2025-01-06, lab: ALT, value: -.inf}\n", 4, "E708", "value must be a finite number, not -.inf"),
    ("value 1e400", HEAD + "  - {date: 2025-01-06, lab: ALT, value: 1e400}\n", 4, "E708", "value 1e400, out of range (a lab value is at most 10^15"),
    ("value exponent", HEAD + "  - {date: 2025-01-06, lab: ALT, value: 1e999999999}\n", 4, "E708", "value 1e999999999 is out of range (a decimal exponent beyond 400)"),
    ("value too long", HEAD + "  - {date: 2025-01-06, lab: ALT, value: 1." + "1" * 70 + "}\n", 4, "E708", "is written with 72 characters (at most 64)"),
    ("value 400 digits", HEAD + "  - {date: 2025-01-06, lab: ALT, value: " + "9" * 400 + "}\n", 4, "E708", "out of range (a lab value is at most 10^15"),
    ("inf after conversion", HEAD + "  - {date: 2025-01-06, lab: ALT, value: 1e308, unit: kU/L}\n", 4, "E708",
     "value 1e308 kU/L is about 10^311 U/L, out of range (a lab value is at most 10^15 in the lab's unit)"),
    ("uln inf", HEAD + "  - {date: 2025-01-06, lab: ALT, value: 3, uln: .inf}\n", 4, "E708", "uln must be a finite number, not .inf"),
    ("uln negative", HEAD + "  - {date: 2025-01-06, lab: ALT, value: 3, uln: -40}\n", 4, "E708", "uln must be a number above 0, not -40"),
    ("uln tiny after conversion", HEAD + "  - {date: 2025-01-06, lab: ALT, value: 3, unit: pU/L, uln: 1e-5}\n", 4, "E708",
     "uln 1e-5 pU/L is 1e-17 U/L, out of range (a limit lies between 10^-15 and 10^15"),
    ("uln huge after conversion", HEAD + "  - {date: 2025-01-06, lab: ALT, value: 3, unit: kU/L, uln: 1e13}\n", 4, "E708",
     "uln 1e13 kU/L is 1e+16 U/L, out of range (a limit lies between 10^-15 and 10^15 in the lab's unit)"),
    ("lln zero", HEAD + "  - {date: 2025-01-06, lab: ALT, value: 3, lln: 0}\n", 4, "E708", "lln must be a number above 0, not 0"),
    ("lln nan", HEAD + "  - {date: 2025-01-06, lab: ALT, value: 3, lln: .nan}\n", 4, "E708", "lln must be a finite number, not .nan"),
    ("lln a text", HEAD + "  - {date: 2025-01-06, lab: ALT, value: 3, lln: low}\n", 4, "E708", "lln must be a number above 0, not the text 'low'"),
    ("lln not below uln", HEAD + "  - {date: 2025-01-06, lab: ALT, value: 3, lln: 40, uln: 40}\n", 4, "E708", "lln 40 is not below uln 40"),
    ("bad date-time", HEAD + "  - {date: 2025-01-06T25:00, lab: ALT, value: 3}\n", 4, "E705", "'2025-01-06T25:00' is not an ISO 8601 date (YYYY-MM-DD) or date-time"),
    ("bad time", HEAD + "  - {date: 2025-01-06, time: '8h30', lab: ALT, value: 3}\n", 4, "E705", "time: the text '8h30' is not an ISO 8601 time of day"),
    ("time a number", HEAD + "  - {date: 2025-01-06, time: 830, lab: ALT, value: 3}\n", 4, "E705", 'write it in quotes: time: "08:30"'),
    ("time twice", HEAD + "  - {date: 2025-01-06T08:00, time: '08:30', event: jaundice}\n", 4, "E702", "the time is given twice: in date (08:00) and in time"),
    ("long unit", HEAD + "  - {date: 2025-01-06, lab: ALT, value: 3, unit: '" + "U" * 65 + "'}\n", 4, "E709", "a unit of 65 characters is too long (at most 64)"),
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
]


@pytest.mark.parametrize("text,line,code,words", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_each_mistake_is_located(tmp_path, text, line, code, words):
    path = write(tmp_path, text)
    message = only_error(path)
    assert (message.path, message.line, message.code) == (str(path), line, code), str(message)
    assert words in message.text
    assert located(str(message), path, line)


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
    assert message.code == "E706" and str(message) == "<command line>: error[E706]: --until 2025-02-01 is before --start 2025-03-01"
    [message] = errors(path, until="2024-12-31")
    assert message.code == "E706" and message.text == "--until 2024-12-31 is before the timeline's start 2025-01-06"


def test_a_file_that_is_not_utf8(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_bytes(b"patient: {id: p}\nstart: 2025-01-06\n# caf\xe9\n")
    message = only_error(path)
    assert (message.line, message.code) == (3, "E701")


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
    assert tl.patient == "c-1" and [e.value for e in tl.events] == [32, Fraction(11, 10)]


CSV_CASES = [
    ("empty", "", 1, "E701", "the file is empty"),
    ("no header", "2025-01-06,ALT,32,U/L\n", 1, "E704", "no header row"),
    ("semicolons", "date;lab;value\n2025-01-06;ALT;32\n", 1, "E701", "not semicolons"),
    ("missing column", "date,lab,unit\n", 1, "E704", "lacks the column value"),
    ("unknown column", "date,lab,vaule,value\n", 1, "E703", "unknown column 'vaule'; did you mean 'value'?"),
    ("bad date", "date,lab,value\n2025-01-06,ALT,32\n06/01/2025,ALT,32\n", 3, "E705", "'06/01/2025' is not an ISO 8601 date"),
    ("unknown lab", "date,lab,value\n2025-01-06,ALTT,32\n", 2, "E707", "did you mean 'ALT'?"),
    ("missing value", "date,lab,value\n2025-01-06,ALT,\n", 2, "E704", "missing value"),
    ("value not a number", "date,lab,value\n2025-01-06,ALT,high\n", 2, "E708", "value must be a number, not the text 'high'"),
    ("value nan", "date,lab,value\n2025-01-06,ALT,nan\n", 2, "E708", "value must be a finite number, not nan"),
    ("value inf", "date,lab,value\n2025-01-06,ALT,-Infinity\n", 2, "E708", "value must be a finite number, not -Infinity"),
    ("inf after conversion", "date,lab,value,unit\n2025-01-06,ALT,1e308,kU/L\n", 2, "E708", "value 1e308 kU/L is about 10^311 U/L, out of range"),
    ("lln nan", "date,lab,value,lln\n2025-01-06,ALT,1,NaN\n", 2, "E708", "lln must be a finite number, not NaN"),
    ("lln not below uln", "date,lab,value,uln,lln\n2025-01-06,ALT,1,40,41\n", 2, "E708", "lln 41 is not below uln 40"),
    ("uln after conversion", "date,lab,value,uln,unit\n2025-01-06,ALT,1,1e13,kU/L\n", 2, "E708", "uln 1e13 kU/L is 1e+16 U/L, out of range"),
    ("bad time", "date,lab,value,time\n2025-01-06,ALT,1,8.30\n", 2, "E705", "time: '8.30' is not an ISO 8601 time of day"),
    ("time twice", "date,lab,value,time\n2025-01-06T08:00,ALT,1,08:30\n", 2, "E702", "the time is given twice"),
    ("bad date-time", "date,lab,value\n2025-01-06T8:00,ALT,1\n", 2, "E705", "not an ISO 8601 date (YYYY-MM-DD) or date-time"),
    ("negative value", "date,lab,value\n2025-01-06,ALT,-1\n", 2, "E708", "negative"),
    ("bad uln", "date,lab,value,uln\n2025-01-06,ALT,1,x\n", 2, "E708", "uln must be a number above 0"),
    ("bad unit", "date,lab,value,unit\n2025-01-06,ALT,1,mg/dL\n", 2, "E709", "does not convert to 'U/L'"),
    ("too many cells", "date,lab,value\n2025-01-06,ALT,1,U/L\n", 2, "E702", "4 cells"),
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


# ---------------------------------------------------------------------------- exact values (v2)

def test_24_mg_per_litre_is_exactly_2_4_mg_per_decilitre(tmp_path):
    """Issue 9: bilirubin 24 mg/L is exactly 2.0x the ULN of 1.2 mg/dL, like 2.4 mg/dL."""
    path = write(tmp_path, HEAD + "  - {date: 2025-01-06, lab: TBIL, value: 24, unit: mg/L}\n"
                 "  - {date: 2025-01-07, lab: TBIL, value: 2.4}\n"
                 "  - {date: 2025-01-08, lab: TBIL, value: 2.4, unit: mg/dL}\n")
    a, b, c = load_timeline(path, PROTOCOL).events
    assert a.value == b.value == c.value == Fraction(12, 5)
    assert a.value / units.exact(PROTOCOL["labs"]["TBIL"]["uln"]) == 2  # exactly 2.0x the default ULN, 1.2
    assert all(type(e.value) is Fraction for e in (a, b, c))
    csv = write(tmp_path, "date,lab,value,unit\n2025-01-06,TBIL,24,mg/L\n2025-01-07,TBIL,2.4,mg/dL\n", "l.csv")
    assert [e.value for e in load_timeline(csv, PROTOCOL).events] == [Fraction(12, 5)] * 2


def test_values_and_limits_are_read_from_their_text(tmp_path):
    path = write(tmp_path, HEAD + "  - {date: 2025-01-06, lab: ALT, value: 0.30000000000000001, uln: 33.0, lln: 7.5}\n"
                 "  - {date: 2025-01-06, lab: TBIL, value: 41.04, unit: umol/L, uln: 20.5, lln: 3.4}\n"
                 "  - {date: 2025-01-06, lab: INR, value: 1.1}\n")
    alt, tbil, inr = load_timeline(path, PROTOCOL).events
    # the decimal written, not the nearest float (which is 0.3 = 0.299999999999999988898...)
    assert alt.value == Fraction(30000000000000001, 10**17)
    assert alt.uln == 33 and type(alt.uln) is int and alt.lln == Fraction(15, 2)
    mm = Fraction("584.66")
    assert tbil.value == Fraction("41.04") * mm / 10_000  # umol/L -> mg/dL: x 1e-6 mol/L x M g/mol / (1e-2 g/dL)
    assert tbil.uln == Fraction("20.5") * mm / 10_000 and tbil.lln == Fraction("3.4") * mm / 10_000
    assert inr.value == Fraction(11, 10) and inr.value != 1.1  # not the binary float


def test_json_numbers_are_exact_too():
    tl = load_timeline(DATA / "case-07.json", PROTOCOL)
    assert [type(e.value) for e in tl.events[:2]] == [int, int] and tl.events[1].uln == 33


def test_number_facts_are_exact(tmp_path):
    path = write(tmp_path, "patient:\n  id: p\n  facts: {crcl: 29.9}\nstart: 2025-01-06\nevents:\n"
                 "  - {date: 2025-01-07, fact: crcl, value: 30.1}\n")
    tl = load_timeline(path, PROTOCOL)
    assert tl.facts["crcl"] == Fraction(299, 10) and tl.events[0].value == Fraction(301, 10)
    bad = write(tmp_path, "patient:\n  id: p\n  facts: {crcl: .nan}\nstart: 2025-01-06\n", "bad.yaml")
    [message] = errors(bad)
    assert message.code == "E708" and "fact 'crcl' is a finite number (in mL/min), not .nan" in message.text
    protocol = copy.deepcopy(PROTOCOL)
    protocol["facts"]["crcl"]["default"] = 90.1  # a JSON number in the graph: the decimal it shows
    assert load_timeline(DATA / "labs.csv", protocol).facts["crcl"] == Fraction(901, 10)


def test_csv_values_are_exact():
    tl = load_timeline(DATA / "labs.csv", PROTOCOL)
    tbil = tl.events[2]
    assert tbil.value == Fraction("17.1") * Fraction("584.66") / 10_000 and tbil.uln == Fraction("20.5") * Fraction("584.66") / 10_000
    assert tl.events[4].value == Fraction(8, 5)


# ---------------------------------------------------------------------------- times (v2)

def test_a_date_time_gives_the_date_and_the_time_as_written(tmp_path):
    path = write(tmp_path, HEAD + "  - {date: 2025-01-06T08:30, lab: ALT, value: 1}\n"
                 "  - {date: '2025-01-06T09:00:00+01:00', lab: AST, value: 2}\n"
                 "  - {date: 2025-01-06 10:15:30Z, lab: ALP, value: 3}\n"
                 "  - {date: 2025-01-06, time: '11:00', event: jaundice}\n"
                 "  - {date: 2025-01-06, time: '12:00-05:00', fact: liver_disease, value: true}\n"
                 "  - {date: 2025-01-06, time: '13:00', choice: reduce_dose}\n"
                 "  - {date: 2025-01-07, lab: INR, value: 1}\n")
    events = load_timeline(path, PROTOCOL).events
    assert [e.time for e in events] == ["08:30", "09:00:00+01:00", "10:15:30Z", "11:00", "12:00-05:00", "13:00", None]
    assert [e.date for e in events] == [D(2025, 1, 6)] * 6 + [D(2025, 1, 7)]


def test_within_a_day_events_go_by_time_then_file_order(tmp_path):
    path = write(tmp_path, HEAD.replace("2025-01-06", "2025-01-05") +
                 "  - {date: 2025-01-06, time: '18:00', lab: ALT, value: 1}\n"      # line 4
                 "  - {date: 2025-01-06, time: '07:00', lab: AST, value: 2}\n"      # line 5
                 "  - {date: 2025-01-06T09:00+01:00, event: jaundice}\n"          # line 6: 09:00 as written
                 "  - {date: 2025-01-05T23:00, lab: ALP, value: 3}\n"              # line 7, the day before
                 "  - {date: 2025-01-06, time: '07:00', lab: INR, value: 1}\n")     # line 8: ties go by file order
    tl = load_timeline(path, PROTOCOL)
    assert [e.loc.line for e in tl.events] == [7, 5, 8, 6, 4]


def test_an_event_without_time_follows_everything_written_above_it(tmp_path):
    path = write(tmp_path, HEAD +
                 "  - {date: 2025-01-06, lab: ALT, value: 1}\n"                  # 4: none above: 00:00
                 "  - {date: 2025-01-06, time: '08:00', lab: AST, value: 2}\n"   # 5
                 "  - {date: 2025-01-06, lab: ALP, value: 3}\n"                  # 6: after 08:00 (line 5)
                 "  - {date: 2025-01-06, time: '07:00', lab: TBIL, value: 1}\n"  # 7
                 "  - {date: 2025-01-06, event: jaundice}\n"                     # 8: after 08:00, and after line 6
                 "  - {date: 2025-01-06, time: '08:00', lab: INR, value: 1}\n")  # 9: 08:00, after lines 5, 6, 8
    tl = load_timeline(path, PROTOCOL)
    assert [e.loc.line for e in tl.events] == [4, 7, 5, 6, 8, 9]
    assert [e.order[0] for e in tl.events] == [datetime.time(0), datetime.time(7), *[datetime.time(8)] * 4]


def test_sorting_keeps_file_order_when_nothing_has_a_time():
    tl = load_timeline(DATA / "case-07.yaml", PROTOCOL)
    assert [e.loc.line for e in tl.events if e.date == D(2025, 2, 3)] == [12, 13, 14]


# ---------------------------------------------------------------------------- duplicates (v2)

def test_two_results_of_a_lab_on_a_day_are_both_kept_in_order(tmp_path):
    path = write(tmp_path, HEAD +
                 "  - {date: 2025-01-06, lab: ALT, value: 300}\n"
                 "  - {date: 2025-01-06, lab: AST, value: 30}\n"
                 "  - {date: 2025-01-06, lab: '1742-6', value: 30, unit: IU/L}\n")
    tl = load_timeline(path, PROTOCOL)
    assert [(e.lab, e.value, e.loc.line) for e in tl.events] == [("ALT", 300, 4), ("AST", 30, 5), ("ALT", 30, 6)]
    kept, replaced = latest_results(tl.events)
    assert kept["ALT"].loc.line == 6 and kept["AST"].loc.line == 5
    assert [r.loc.line for r in replaced] == [4]


def test_the_later_by_time_counts_whatever_the_file_order(tmp_path):
    path = write(tmp_path, HEAD +
                 "  - {date: 2025-01-06T20:00, lab: ALT, value: 30}\n"
                 "  - {date: 2025-01-06T08:00, lab: ALT, value: 300}\n"
                 "  - {date: 2025-01-06, time: '08:00', lab: ALT, value: 3000}\n")
    tl = load_timeline(path, PROTOCOL)
    assert [e.value for e in tl.events] == [300, 3000, 30]
    kept, replaced = latest_results(tl.events)
    assert kept["ALT"].value == 30 and kept["ALT"].time == "20:00"
    assert [r.value for r in replaced] == [300, 3000]


def test_latest_results_across_days_uses_recency():
    loc = Loc("t", 1)
    monday = LabResult(D(2025, 1, 6), "ALT", 1, None, loc, order=(datetime.time(9), 9))
    tuesday = LabResult(D(2025, 1, 7), "ALT", 2, None, loc, order=(datetime.time(8), 1))
    tbil = LabResult(D(2025, 1, 6), "TBIL", 1, None, loc)
    kept, replaced = latest_results([tuesday, tbil, monday])  # any order given
    assert kept == {"ALT": tuesday, "TBIL": tbil} and replaced == [monday]
    assert recency(tuesday) > recency(monday) > recency(tbil)


def test_csv_and_fhir_readers_keep_duplicates_and_times(tmp_path):
    path = write(tmp_path, "date,time,lab,value,lln\n2025-01-06,18:00,ALT,50,7\n2025-01-06T08:00,,ALT,500,\n"
                 "2025-01-06,,AST,30,\n", "l.csv")
    tl = load_timeline(path, PROTOCOL)
    assert [(e.lab, e.value, e.time, e.lln) for e in tl.events] == [
        ("ALT", 500, "08:00", None), ("ALT", 50, "18:00", 7), ("AST", 30, None, None)]
    assert latest_results(tl.events)[0]["ALT"].value == 50


def test_labresult_keeps_its_positional_construction():
    loc = Loc("t", 1)
    result = LabResult(D(2025, 1, 6), "ALT", 30, 40, loc, "U/L")
    assert (result.lln, result.time, result.order) == (None, None, ())
    assert result == LabResult(D(2025, 1, 6), "ALT", 30, 40, loc, "U/L", order=(datetime.time(8), 3))  # order not compared


def test_a_number_fact_out_of_range(tmp_path):
    [message] = errors(DATA / "case-07.yaml", facts={"crcl": "1e20"})
    assert message.code == "E708" and "fact 'crcl' is a number (in mL/min) of at most 10^15, not 1e+20" in message.text


# ---------------------------------------------------------------------------- counts (v2: ANC)

def with_anc() -> dict:
    protocol = copy.deepcopy(PROTOCOL)
    protocol["labs"]["ANC"] = {"description": "absolute neutrophil count", "unit": "10*9/L", "uln": None,
                               "loinc": ["751-8"], "molar_mass": None}
    return protocol


@pytest.mark.parametrize("unit,value,expected", [
    ("10*9/L", "1.5", Fraction(3, 2)), ("10*3/uL", "1.5", Fraction(3, 2)), ("K/uL", "1.5", Fraction(3, 2)),
    ("10*3/mm3", "0.499", Fraction(499, 1000)), ("/mm3", "1500", Fraction(3, 2)), ("cells/uL", "999", Fraction(999, 1000)),
    ("{cells}/uL", "500", Fraction(1, 2)), ("10^9/L", "1", 1),
])
def test_neutrophil_counts_convert_exactly(tmp_path, unit, value, expected):
    path = write(tmp_path, HEAD + f"  - {{date: 2025-01-06, lab: ANC, value: {value}, unit: '{unit}', lln: {value}}}\n")
    [result] = load_timeline(path, with_anc()).events
    assert result.value == expected and result.lln == expected and result.unit == unit
    csv = write(tmp_path, f"date,lab,value,unit\n2025-01-06,751-8,{value},{unit}\n", "anc.csv")
    assert load_timeline(csv, with_anc()).events[0].value == expected


def test_a_count_unit_that_is_not_a_count(tmp_path):
    path = write(tmp_path, HEAD + "  - {date: 2025-01-06, lab: ANC, value: 1, unit: 'mg/dL'}\n")
    [message] = errors(path, with_anc())
    assert message.code == "E709" and "ANC: 'mg/dL' does not convert to '10*9/L'" in message.text


def test_the_mixed_day_of_the_docs(tmp_path):
    """docs/timelines.md, order within a day: `12:00 AST`, `ALT`, `09:00 ALT`."""
    path = write(tmp_path, HEAD + "  - {date: 2025-01-06, time: '12:00', lab: AST, value: 1}\n"
                 "  - {date: 2025-01-06, lab: ALT, value: 2}\n"
                 "  - {date: 2025-01-06, time: '09:00', lab: ALT, value: 3}\n")
    events = load_timeline(path, PROTOCOL).events
    assert [(e.lab, e.time) for e in events] == [("ALT", "09:00"), ("AST", "12:00"), ("ALT", None)]
    assert latest_results(events)[0]["ALT"].value == 2


def test_a_5000_digit_number_is_a_short_located_error(tmp_path):
    path = write(tmp_path, HEAD + "  - {date: 2025-01-06, lab: ALT, value: " + "9" * 5000 + "}\n")
    message = only_error(path)
    assert (message.line, message.code) == (4, "E701") and "(5000 characters)" in message.text
    assert len(message.text) < 300
    csv = write(tmp_path, "date,lab,value\n2025-01-06,ALT," + "9" * 5000 + "\n", "l.csv")
    message = only_error(csv)
    assert (message.line, message.code) == (2, "E708") and "is written with 5000 characters (at most 64)" in message.text


def located(text: str, path, line: int) -> bool:
    """`text` is the one diagnostic shape: PATH[:LINE[:COL]]: SEVERITY[CODE]: (no line when unknown)."""
    import re as _re
    where = _re.escape(str(path)) + (rf":{line}(?::\d+)?" if line else "")
    return _re.match(where + r": (?:error|warning)\[[EW]\d{3}\]: ", text) is not None
