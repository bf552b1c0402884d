"""No case file, however malformed, makes `rxwatch test` raise: only located messages come out.

Random expectation lines (from the language's own words, near-misses and junk), random
case-file structures, and the shipped scenario files cut and spliced at random: each either
loads (and then runs: simulated and checked without an exception) or raises CaseError whose
messages are all `FILE:LINE: message`. Expectations written in the documented forms always parse.
"""

from __future__ import annotations

import datetime
import json
import re
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from conftest import ANAKINRA, REPO_ROOT
from rxwatch.compiler import compile_file
from rxwatch.suite.cases import parse_case, run_case
from rxwatch.suite.check import Outcome, check
from rxwatch.suite.expectations import CaseError, Expectation, Names, parse_expectation
from rxwatch.inputs.model import Message

GRAPH = compile_file(str(ANAKINRA)).graph
NAMES = Names.of(GRAPH)
SAMPLES = {p.name: p.read_text(encoding="utf-8") for p in sorted((REPO_ROOT / "tests" / "scenarios" / "anakinra").glob("*.yaml"))[:6]}
TRACE = run_case(REPO_ROOT / "tests" / "scenarios" / "anakinra" / "11-moderate-reduce-then-persistent.yaml", GRAPH).trace
SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

WORDS = ["on", "by", "before", "after", "between", "and", "from", "to", "never", "no", "once", "twice",
         "times", "at", "least", "most", "final", "action", "state", "enter", "transition", "stay", "rule",
         "deviation", "overdue", "still_overdue", "incomplete", "for", "window", "order", "->", "..", "3", "0", "x",
         "unassessable", "missing", "replaced", "ALT,", ",", "AST"]
DATES = ["2025-01-06", "2025-02-03", "2025-13-01", "2025-02-30", "20250203", "2025-2-3", "0001-01-01",
         "9999-12-31", "1999-01-01", "2030-01-01"]
NAMES_ALL = [*NAMES.states, *NAMES.actions, *NAMES.rules, *NAMES.labs, "stoped", "order_lft", "ALTT", "maintenance/9/9"]
tokens = st.one_of(st.sampled_from(WORDS), st.sampled_from(DATES), st.sampled_from(NAMES_ALL),
                   st.text(alphabet="abc-_./>0123456789 ", max_size=8))


def assert_located(messages, path: str) -> None:
    assert messages, "a CaseError without messages"
    for m in messages:
        assert isinstance(m, Message) and m.severity == "error" and m.text
        assert isinstance(m.line, int) and m.line >= 0
        assert located(str(m), path, m.line)


@SETTINGS
@given(words=st.lists(tokens, max_size=9), joiner=st.sampled_from([" ", "  ", "\t"]))
def test_random_expectation_lines(words, joiner):
    text = joiner.join(words)
    try:
        e = parse_expectation(text, NAMES, path="case.yaml", line=3, column=5)
    except CaseError as exc:
        assert len(exc.messages) == 1
        assert_located(exc.messages, "case.yaml")
        event(f"error {exc.messages[0].code}")
        return
    event(f"parsed {e.subject}")
    assert isinstance(e, Expectation) and e.line == 3
    outcome = check(e, TRACE)
    assert isinstance(outcome, Outcome) and isinstance(outcome.ok, bool)
    assert outcome.ok or outcome.shows


states = st.sampled_from(NAMES.states)
actions = st.sampled_from(NAMES.actions)
labs = st.lists(st.sampled_from(NAMES.labs), min_size=1, max_size=3)
kinds = st.sampled_from(["overdue", "still_overdue", "incomplete"])
days = st.dates(min_value=datetime.date(2025, 1, 6), max_value=datetime.date(2025, 12, 31))


@st.composite
def documented_forms(draw) -> str:
    d1, d2 = sorted([draw(days), draw(days)])
    window = f"window {d1}..{d2}"
    subject = draw(st.sampled_from([
        f"action {draw(actions)}", f"action {draw(actions)} {window}", f"{draw(actions)} {window}",
        f"state {draw(states)}", f"enter {draw(states)}", f"stay {draw(states)}",
        f"transition {draw(states)} -> {draw(states)}", f"{draw(states)} -> {draw(states)}",
        f"rule {draw(st.sampled_from(NAMES.rules))}", "deviation", f"deviation {draw(kinds)}",
        f"deviation {draw(kinds)} for {draw(actions)}", f"deviation for {draw(actions)} {window}",
        "unassessable", f"unassessable missing {', '.join(draw(labs))}", f"replaced {draw(labs)[0]}",
    ]))
    when = draw(st.sampled_from(["", f"on {d1}", f"by {d1}", f"before {d1}", f"after {d1}",
                                 f"between {d1} and {d2}", f"from {d1} to {d2}"]))
    count = draw(st.sampled_from(["", "never", "no", "once", "twice", "3 times", "at least 2 times", "at most 1 times"]))
    # a count leads, or follows the subject; never/no always lead
    parts = [count, subject, when] if count in ("never", "no") or draw(st.booleans()) else [subject, count, when]
    if draw(st.booleans()) and when:
        parts = [when, *[p for p in parts if p != when]]
    return " ".join(p for p in parts if p)


@SETTINGS
@given(text=st.one_of(documented_forms(), st.builds(lambda s: f"final state {s}", states),
                      st.builds(lambda a: f"final order {a}", actions), st.just("final no order")))
def test_documented_forms_always_parse(text):
    e = parse_expectation(text, NAMES, path="case.yaml", line=1)
    assert e.text == text
    assert isinstance(check(e, TRACE).ok, bool)


def check_case_text(text: str, path: str = "case.yaml") -> None:
    try:
        case = parse_case(text, path, GRAPH)
    except CaseError as exc:
        assert_located(exc.messages, path)
        event(f"error {exc.messages[0].code}")
        return
    event("loaded")
    for e in case.expectations:
        assert isinstance(check(e, TRACE).ok, bool)


texts = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=200)
yaml_ish = st.text(alphabet=list("{}[]:,-'\"&*!|>#%@ \n\tabdefilnprstuvx0123456789.?<"), max_size=160)


@SETTINGS
@given(text=st.one_of(texts, yaml_ish))
def test_random_text(text):
    check_case_text(text)


scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 500), st.floats(allow_nan=True),
                    st.sampled_from(DATES), st.sampled_from(NAMES_ALL), st.text(max_size=10))
expect_items = st.one_of(st.builds(" ".join, st.lists(tokens, max_size=6)), scalars,
                         st.dictionaries(st.sampled_from(["final state", "on 2025-01-06 action"]), scalars, max_size=1))


def mostly(good, bad):
    """`good` seven times in eight."""
    return st.sampled_from(range(8)).flatmap(lambda i: bad if i == 7 else good)


@st.composite
def case_documents(draw) -> dict:
    doc = {}
    if draw(st.integers(0, 9)):
        doc["patient"] = draw(mostly(st.sampled_from([{"id": "p"}, {"id": "p", "facts": {"indication": "stills_disease"}}]),
                                     st.one_of(st.fixed_dictionaries({"id": scalars}), scalars)))
    doc["start"] = draw(mostly(st.just("2025-01-06"), scalars))
    if draw(st.booleans()):
        doc["until"] = draw(mostly(st.just("2025-06-30"), scalars))
    lab = st.fixed_dictionaries({"date": mostly(st.just("2025-02-03"), scalars),
                                 "lab": mostly(st.sampled_from(["ALT", "TBIL"]), st.just("XYZ")),
                                 "value": mostly(st.integers(0, 500), scalars)})
    clinical = st.fixed_dictionaries({"date": st.just("2025-02-10"),
                                      "event": mostly(st.sampled_from(["jaundice", "anakinra_stopped"]), st.just("flu"))})
    doc["events"] = draw(mostly(st.lists(mostly(st.one_of(lab, clinical), scalars), max_size=4), scalars))
    doc["expect"] = draw(mostly(st.lists(mostly(documented_forms(), expect_items), min_size=1, max_size=5), scalars))
    for key in draw(st.lists(st.sampled_from(["description", "protocol", "expected", "notes"]), max_size=2, unique=True)):
        doc[key] = draw(st.one_of(scalars, st.just("anakinra_hepatotoxicity")))
    return doc


@SETTINGS
@given(doc=case_documents(), as_json=st.booleans())
def test_random_case_structures(doc, as_json):
    text = json.dumps(doc, indent=1) if as_json else _yaml(doc)
    check_case_text(text)


def _yaml(doc: dict) -> str:
    """Block-style YAML: list items that read as plain scalars stay plain, as authors write
    expectations; everything else in JSON form (JSON is YAML)."""
    lines = []
    for key, value in doc.items():
        if isinstance(value, list):
            lines.append(f"{key}:")
            lines.extend(f"  - {_plain(v)}" for v in value)
        else:
            lines.append(f"{key}: {json.dumps(value)}")
    return "\n".join(lines) + "\n"


def _plain(value) -> str:
    if isinstance(value, str) and re.fullmatch(r"[A-Za-z0-9][\w ./>-]*[\w.>]", value):
        return value
    return json.dumps(value)


@SETTINGS
@given(name=st.sampled_from(sorted(SAMPLES)), data=st.data())
def test_scenario_files_cut_and_spliced(name, data):
    text = SAMPLES[name]
    a = data.draw(st.integers(0, len(text)))
    b = data.draw(st.integers(a, min(len(text), a + 80)))
    insert = data.draw(st.one_of(st.just(""), yaml_ish, st.builds(" ".join, st.lists(tokens, max_size=4))))
    check_case_text(text[:a] + insert + text[b:], name)


@pytest.fixture(scope="module")
def folder():
    with tempfile.TemporaryDirectory() as name:
        yield Path(name)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(sorted(SAMPLES)), data=st.data())
def test_run_case_never_raises(folder, name, data):
    """The whole `rxwatch test` path for one file: load, simulate, check."""
    text = SAMPLES[name]
    a = data.draw(st.integers(0, len(text)))
    b = data.draw(st.integers(a, min(len(text), a + 40)))
    path = folder / "case.yaml"
    path.write_text(text[:a] + data.draw(st.one_of(st.just(""), yaml_ish)) + text[b:], encoding="utf-8")
    result = run_case(path, GRAPH)
    event(result.status)
    assert result.status in ("pass", "fail", "invalid", "error")
    if result.status == "invalid":
        assert_located(result.errors, str(path))
        assert result.trace is None and not result.outcomes
    else:
        assert result.trace is not None and len(result.outcomes) >= 1


def located(text: str, path, line: int) -> bool:
    """`text` is the one diagnostic shape: PATH[:LINE[:COL]]: SEVERITY[CODE]: (no line when unknown)."""
    import re as _re
    where = _re.escape(str(path)) + (rf":{line}(?::\d+)?" if line else "")
    return _re.match(where + r": (?:error|warning)\[[EW]\d{3}\]: ", text) is not None
