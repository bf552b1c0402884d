"""Scenario files (suite/expectations.py, suite/cases.py, suite/check.py) and coverage (suite/coverage.py).

The expectation language is tested on its own (parse, then check against hand-built traces),
then case files end to end on a small protocol written here, so that these tests do not move
when the shipped protocols do.
"""

from __future__ import annotations

import datetime
import textwrap

import pytest

from rxwatch.compiler import compile_source
from rxwatch.suite.cases import Case, case_files, load_case, parse_case, run_case, run_suite
from rxwatch.suite.check import check
from rxwatch.suite.coverage import coverage
from rxwatch.suite.expectations import CaseError, Names, parse_expectation

D = datetime.date.fromisoformat

DEMO = textwrap.dedent("""\
    protocol demo
      version "0.1"

    source s "A source" kind label

    lab ALT "alanine aminotransferase" unit "U/L" uln 40
    event stop "treatment ended"
    action check "order ALT" orders ALT
    action treat "treat"
    action pause "pause"
    let x "ALT in multiples of ULN" = xuln(ALT)

    initial state watch "watching" {
      on entry { do check due 1..2 weeks cite s }
      on panel {
        when x > 2 -> high cite s
        otherwise stay cite s { do check due 1..2 weeks cite s }
      }
      on event stop { otherwise -> done cite s }
    }

    state high "raised" {
      on entry {
        do one of treat, pause cite s
        do check due 1..2 weeks cite s
      }
      on panel {
        when x <= 1 -> watch cite s
        otherwise stay cite s
      }
      on event stop { otherwise -> done cite s }
    }

    terminal state done "ended"
""")

LOOP = textwrap.dedent("""\
    protocol loop
      version "0.1"
    source s "A source" kind label
    fact f "a fact" bool default false
    initial state a "a" {
      on fact { otherwise -> b cite s }
    }
    state b "b" {
      on fact { otherwise -> a cite s }
    }
""")


def _graph(text: str, path: str, *, verify: bool = True):
    result = compile_source(text, path, verify=verify)
    assert result.ok, result.diagnostics
    return result.graph


@pytest.fixture(scope="module")
def demo():
    return _graph(DEMO, "demo.rxw")


NAMES = Names(
    states=("watch", "high", "done"),
    actions=("check", "treat", "pause", "order_lfts", "hold_anakinra"),
    rules=("watch/0/0", "watch/0/1", "high/0/0"),
    labs=("ALT", "AST", "TBIL"),
)


def parse(text: str):
    return parse_expectation(text, NAMES, path="case.yaml", line=7, column=5)


# ---------------------------------------------------------------------------- parsing

@pytest.mark.parametrize("text, fields", [
    ("on 2025-02-03 action treat", dict(subject="action", name="treat", first=D("2025-02-03"), last=D("2025-02-03"))),
    ("action treat on 2025-02-03", dict(subject="action", name="treat", first=D("2025-02-03"), last=D("2025-02-03"))),
    ("by 2025-03-01 state high", dict(subject="state", name="high", first=datetime.date.min, last=D("2025-03-01"))),
    ("before 2025-03-01 enter high", dict(subject="enter", name="high", last=D("2025-02-28"))),
    ("after 2025-02-28 action pause", dict(subject="action", first=D("2025-03-01"), last=datetime.date.max)),
    ("between 2025-01-01 and 2025-01-31 action check", dict(first=D("2025-01-01"), last=D("2025-01-31"))),
    ("from 2025-01-01 to 2025-01-31 action check", dict(first=D("2025-01-01"), last=D("2025-01-31"))),
    ("never action treat", dict(subject="action", name="treat", low=0, high=0)),
    ("no deviation", dict(subject="deviation", name=None, kind=None, low=0, high=0)),
    ("once action check", dict(low=1, high=1)),
    ("action check twice", dict(low=2, high=2)),
    ("action check 3 times", dict(low=3, high=3)),
    ("at least 2 times action check", dict(low=2, high=None)),
    ("action check at most 1 times", dict(low=0, high=1)),
    ("final state done", dict(subject="final_state", name="done")),
    ("final order check window 2025-01-08..2025-01-15", dict(subject="final_order", name="check",
                                                            window=(D("2025-01-08"), D("2025-01-15")))),
    ("final no order", dict(subject="final_order", name=None, low=0, high=0)),
    ("final no order check", dict(subject="final_order", name="check", low=0, high=0)),
    ("deviation overdue for order_lfts on 2025-04-02", dict(subject="deviation", kind="overdue", name="order_lfts",
                                                            first=D("2025-04-02"))),
    ("deviation for check window 2025-01-08..2025-01-15", dict(kind=None, name="check",
                                                               window=(D("2025-01-08"), D("2025-01-15")))),
    ("order_lfts window 2025-04-06..2025-05-06", dict(subject="action", name="order_lfts",
                                                     window=(D("2025-04-06"), D("2025-05-06")))),
    ("action check window 2025-04-06 .. 2025-05-06", dict(window=(D("2025-04-06"), D("2025-05-06")))),
    ("transition watch -> high", dict(subject="transition", name="watch", target="high")),
    ("watch->high on 2025-01-06", dict(subject="transition", name="watch", target="high")),
    ("stay high", dict(subject="stay", name="high")),
    ("rule watch/0/0", dict(subject="rule", name="watch/0/0")),
    ("deviation still_overdue for check on 2025-02-21", dict(subject="deviation", kind="still_overdue", name="check",
                                                             first=D("2025-02-21"))),
    ("deviation incomplete for check", dict(subject="deviation", kind="incomplete", name="check")),
    ("3 times deviation still_overdue", dict(subject="deviation", kind="still_overdue", low=3, high=3)),
    ("unassessable on 2025-02-03", dict(subject="unassessable", labs=(), first=D("2025-02-03"))),
    ("unassessable missing ALT, AST on 2025-02-03", dict(subject="unassessable", labs=("ALT", "AST"))),
    ("on 2025-02-03 unassessable missing ALT,AST", dict(subject="unassessable", labs=("ALT", "AST"))),
    ("unassessable missing ALT twice", dict(subject="unassessable", labs=("ALT",), low=2, high=2)),
    ("never unassessable", dict(subject="unassessable", labs=(), low=0, high=0)),
    ("replaced ALT on 2025-02-03", dict(subject="replaced", name="ALT", first=D("2025-02-03"))),
    ("  on   2025-02-03   action   treat  ", dict(subject="action", name="treat")),
])
def test_parse(text, fields):
    e = parse(text)
    assert (e.path, e.line, e.column) == ("case.yaml", 7, 5)
    assert e.text == text.strip()
    got = {
        "subject": e.subject, "name": e.name, "target": e.target, "kind": e.kind, "window": e.window,
        "first": e.when.first if e.when else None, "last": e.when.last if e.when else None,
        "low": e.count.low, "high": e.count.high, "labs": e.labs,
    }
    for key, value in fields.items():
        assert got[key] == value, (key, got)


@pytest.mark.parametrize("text, message", [
    ("", "an expectation is empty"),
    ("action hold_anakinr", "unknown action 'hold_anakinr'; did you mean 'hold_anakinra'?"),
    ("action treet", "unknown action 'treet'; did you mean 'treat'?"),
    ("state hihg", "unknown state 'hihg'; did you mean 'high'?"),
    ("final state zzz", "unknown state 'zzz' (the protocol declares watch, high, done)"),
    ("transition watch -> hgh", "unknown state 'hgh'; did you mean 'high'?"),
    ("on 2025-13-01 action treat", "'2025-13-01' is not an ISO 8601 date (YYYY-MM-DD)"),
    ("on 20250201 action treat", "'20250201' is not an ISO 8601 date"),
    ("on monday action treat", "'on' takes a date (YYYY-MM-DD), not 'monday'"),
    ("action treat after the first panel", "'after' takes a date (YYYY-MM-DD), not 'the'"),
    ("action treat by", "'by' takes a date (YYYY-MM-DD)"),
    ("on action treat", "'on' takes a date (YYYY-MM-DD), not 'action'"),
    ("between 2025-02-01 and 2025-01-01 action treat", "ends before it starts"),
    ("between 2025-02-01 2025-03-01 action treat", "write 'between 2025-02-01 and YYYY-MM-DD'"),
    ("action check window 2025-02-01..2025-01-01", "window 2025-02-01..2025-01-01 ends before it starts"),
    ("action check window 2025-02-01", "write 'window YYYY-MM-DD..YYYY-MM-DD'"),
    ("action treat on 2025-01-01 on 2025-01-02", "two dates to meet"),
    ("never action treat twice", "two counts"),
    ("action treat x times", "'x times': the count is a whole number"),
    ("final state done on 2025-01-01", "'final' is the end of the replay; it takes no 'on 2025-01-01'"),
    ("twice final state done", "'twice' does not apply to 'final state'"),
    ("final", "'final' needs 'state STATE' or 'order ACTION'"),
    ("final countdown", "'final' is followed by 'state STATE', 'states STATE, ...' or 'order ACTION', not 'countdown'"),
    ("actoin treat", "cannot read 'actoin'; did you mean 'action'?"),
    ("treat", "to expect the action write 'action treat'"),
    ("high", "to expect the state write 'state high'"),
    ("qqq", "cannot read 'qqq'; write one of action ACTION"),
    ("action treat extra words", "unexpected 'extra words' after 'action treat'"),
    ("deviation late", "unknown deviation kind 'late'"),
    ("deviation still_ovredue", "unknown deviation kind 'still_ovredue'; did you mean 'still_overdue'?"),
    ("unassessable missing", "'missing' needs lab names, such as 'missing ALT, AST'"),
    ("unassessable missing ALT, ATS", "unknown lab 'ATS'; did you mean 'AST'?"),
    ("unassessable ALT", "unexpected 'ALT' after 'unassessable'"),
    ("replaced", "'replaced' needs a lab"),
    ("replaced ALTT", "unknown lab 'ALTT'; did you mean 'ALT'?"),
    ("replaced ALT AST", "unexpected 'AST' after 'replaced ALT'"),
    ("rule watch/9/9", "unknown rule 'watch/9/9'"),
    ("rule watch/0/2", "unknown rule 'watch/0/2'; did you mean 'watch/0/1'?"),
    ("transition watch high", "write 'transition watch -> STATE'"),
    ("action", "'action' needs an action"),
    ("never", "nothing to expect"),
])
def test_parse_errors(text, message):
    with pytest.raises(CaseError) as info:
        parse(text)
    (m,) = info.value.messages
    assert (m.path, m.line, m.column, m.severity) == ("case.yaml", 7, 5, "error")
    assert m.code.startswith("E80")
    assert message in m.text, m.text
    assert str(m).startswith("case.yaml:7:5: error[E80") and m.text.startswith("expectation ")


# ---------------------------------------------------------------------------- the grammar (suite/expect.lark)

@pytest.mark.parametrize("text, fields", [
    # a date between the subject word and `missing` (the form the module docstring shows)
    ("unassessable on 2025-05-12 missing ALT, AST", dict(subject="unassessable", labs=("ALT", "AST"),
                                                       first=D("2025-05-12"))),
    ("unassessable missing ALT AST", dict(labs=("ALT", "AST"))),  # commas may be left out
    ("actions treat twice", dict(subject="action", name="treat", low=2, high=2)),  # plural subject words
    ("deviations overdue", dict(subject="deviation", kind="overdue")),
    ("final orders check", dict(subject="final_order", name="check")),
    ("final never order", dict(subject="final_order", low=0, high=0)),
    ("at most 2 times action treat after 2025-01-01", dict(low=0, high=2, first=D("2025-01-02"))),
    ("once transition watch->high in track liver", dict(subject="transition", name="watch", target="high")),
])
def test_grammar_forms(text, fields):
    e = parse(text) if "track" not in text else parse_expectation(
        text, Names(NAMES.states, NAMES.actions, NAMES.rules, NAMES.labs, tracks=("liver",)))
    got = {"subject": e.subject, "name": e.name, "target": e.target, "kind": e.kind, "labs": e.labs,
           "first": e.when.first if e.when else None, "low": e.count.low, "high": e.count.high}
    for key, value in fields.items():
        assert got[key] == value, (key, got)


def test_keywords_are_names_where_the_grammar_expects_a_name():
    """The contextual lexer: `on`, `never`, `window` are keywords only where one can stand."""
    names = Names(states=("on", "never", "window"), actions=("by", "final"), rules=(), labs=("missing",))
    assert parse_expectation("state on", names).name == "on"
    assert parse_expectation("never state never", names).count.high == 0
    e = parse_expectation("on 2025-01-02 enter window", names)
    assert (e.subject, e.name, e.when.first) == ("enter", "window", D("2025-01-02"))
    assert parse_expectation("action final on 2025-01-02", names).name == "final"
    assert parse_expectation("transition on -> never", names).target == "never"
    assert parse_expectation("replaced missing", names).name == "missing"


def test_the_grammar_ships_with_the_package_and_builds_one_lalr_parser():
    from rxwatch.suite import expectations

    text = expectations.grammar_text()
    assert text.startswith("// The scenario expectation language") and "start: quals? subject quals?" in text
    parser = expectations._lark()
    assert parser.options.parser == "lalr" and parser.options.lexer == "contextual"
    assert expectations._lark() is parser  # built once per process


def test_one_expectation_read_twice_is_read_once_and_located_where_each_is():
    names = Names(NAMES.states, NAMES.actions, NAMES.rules, NAMES.labs)
    a = parse_expectation("on 2025-02-03 action treat", names, path="a.yaml", line=3, column=5)
    b = parse_expectation("on 2025-02-03 action treat", names, path="b.yaml", line=9, column=7)
    assert (a.path, a.line, a.column, b.path, b.line, b.column) == ("a.yaml", 3, 5, "b.yaml", 9, 7)
    assert a.when == b.when and a.name == b.name == "treat"
    assert str(b.span) .startswith("b.yaml:9:7")
    with pytest.raises(CaseError):  # a mistake is never remembered as an expectation
        parse_expectation("action treet", names)
    with pytest.raises(CaseError):
        parse_expectation("action treet", names)


def test_names_are_computed_once_per_graph(demo):
    assert Names.of(demo) is Names.of(demo)
    assert Names.of(demo).states == ("watch", "high", "done")


# ---------------------------------------------------------------------------- checking a trace

TRACE = {
    "protocol": {"name": "demo", "version": "0.1"},
    "patient": "p",
    "start": "2025-01-06",
    "until": "2025-03-31",
    "steps": [
        {"date": "2025-01-06", "type": "enter", "state": "watch"},
        {"date": "2025-01-06", "type": "action", "action": "check", "state": "watch",
         "window": ["2025-01-13", "2025-01-20"], "sources": ["s"]},
        {"date": "2025-01-10", "type": "transition", "from": "watch", "to": "watch", "trigger": "panel",
         "because": "", "sources": ["s"], "rule": "watch/0/1", "line": 17, "stay": True},
        {"date": "2025-01-10", "type": "action", "action": "check", "state": "watch",
         "window": ["2025-01-17", "2025-01-24"], "sources": ["s"]},
        {"date": "2025-01-25", "type": "deviation", "kind": "overdue", "action": "check",
         "window": ["2025-01-17", "2025-01-24"]},
        {"date": "2025-02-03", "type": "transition", "from": "watch", "to": "high", "trigger": "panel",
         "because": "x > 2", "sources": ["s"], "rule": "watch/0/0", "line": 16},
        {"date": "2025-02-03", "type": "enter", "state": "high"},
        {"date": "2025-02-03", "type": "action", "action": "treat", "state": "high",
         "options": ["treat", "pause"], "sources": ["s"]},
        {"date": "2025-02-03", "type": "action", "action": "check", "state": "high",
         "window": ["2025-02-10", "2025-02-17"], "sources": ["s"]},
        {"date": "2025-02-12", "type": "transition", "from": "high", "to": "watch", "trigger": "panel",
         "because": "x <= 1", "sources": ["s"], "rule": "high/0/0", "line": 27},
        {"date": "2025-02-12", "type": "enter", "state": "watch"},
        {"date": "2025-02-12", "type": "action", "action": "check", "state": "watch",
         "window": ["2025-02-19", "2025-02-26"], "sources": ["s"]},
    ],
    "final_state": "watch",
    "open_orders": [{"action": "check", "window": ["2025-02-19", "2025-02-26"]}],
}


def outcome(text: str, trace=TRACE):
    return check(parse(text), trace)


@pytest.mark.parametrize("text", [
    "on 2025-02-03 action treat",
    "action treat",
    "once action treat",
    "never action pause",
    "3 times action check before 2025-02-12",
    "at least 4 times action check",
    "at most 4 times action check",
    "action check window 2025-02-10..2025-02-17",
    "check window 2025-02-10..2025-02-17",
    "on 2025-02-03 check window 2025-02-10..2025-02-17",
    "never action check window 2025-03-01..2025-03-02",
    "on 2025-01-06 enter watch",
    "twice enter watch",
    "on 2025-01-10 stay watch",
    "never stay high",
    "transition watch -> high",
    "on 2025-02-12 transition high -> watch",
    "on 2025-01-10 transition watch -> watch",  # a stay is a transition from watch to watch too
    "rule watch/0/1",
    "on 2025-02-03 rule watch/0/0",
    "deviation overdue for check on 2025-01-25",
    "deviation window 2025-01-17..2025-01-24",
    "once deviation",
    "never deviation after 2025-01-25",
    "on 2025-01-06 state watch",
    "on 2025-02-03 state watch",  # left on that day: it was current on it
    "on 2025-02-03 state high",
    "by 2025-02-03 state high",
    "never state high before 2025-02-03",
    "never state done",
    "between 2025-02-04 and 2025-02-11 state high",
    "twice state watch",
    "on 2025-03-31 state watch",
    "final state watch",
    "final order check window 2025-02-19..2025-02-26",
    "final order check",
    "once final order check",
])
def test_check_holds(text):
    o = outcome(text)
    assert o.ok, o.shows
    assert str(o) == f"case.yaml:7: ok: {text.strip()}"


@pytest.mark.parametrize("text, shows", [
    ("on 2025-02-04 action treat", "action treat on 2025-02-03; nothing on 2025-02-04 (state high)"),
    ("on 2025-01-10 action treat", "action treat on 2025-02-03; on 2025-01-10: stay watch, action check window 2025-01-17..2025-01-24"),
    ("never action treat", "action treat once: on 2025-02-03"),
    ("twice action check", "action check 4 times: on 2025-01-06, 2025-01-10, 2025-02-03, 2025-02-12"),
    ("action pause", "no action pause"),
    ("check window 2025-02-11..2025-02-17",
     "action check window 2025-01-13..2025-01-20 on 2025-01-06; action check window 2025-01-17..2025-01-24 on 2025-01-10; "
     "action check window 2025-02-10..2025-02-17 on 2025-02-03; action check window 2025-02-19..2025-02-26 on 2025-02-12"),
    ("on 2025-02-03 check window 2025-02-11..2025-02-17", "action check window 2025-02-10..2025-02-17 on 2025-02-03"),
    ("on 2025-02-04 check window 2025-02-11..2025-02-17",
     "action check window 2025-01-13..2025-01-20 on 2025-01-06; action check window 2025-01-17..2025-01-24 on 2025-01-10; "
     "action check window 2025-02-10..2025-02-17 on 2025-02-03; action check window 2025-02-19..2025-02-26 on 2025-02-12; "
     "nothing on 2025-02-04 (state high)"),
    ("action treat window 2025-02-11..2025-02-17", "action treat on 2025-02-03"),
    ("action pause window 2025-02-11..2025-02-17", "no action pause"),
    ("transition high -> done", "no transition high -> done"),
    ("stay high", "no stay high"),
    ("deviation for treat", "deviations: deviation overdue for check window 2025-01-17..2025-01-24 on 2025-01-25"),
    ("no deviation", "deviation once: on 2025-01-25"),
    ("on 2025-01-20 state high", "states on 2025-01-20: watch (2025-01-06..2025-02-03); high on 2025-02-03..2025-02-12"),
    ("state done", "states: watch (2025-01-06..2025-02-03), high (2025-02-03..2025-02-12), watch (2025-02-12..2025-03-31); never done"),
    ("never state high", "state high once: 2025-02-03..2025-02-12"),
    ("final state high", "final state watch"),
    ("final no order", "open orders at the end: check window 2025-02-19..2025-02-26"),
    ("final order check window 2025-02-20..2025-02-26", "open orders at the end: check window 2025-02-19..2025-02-26"),
])
def test_check_fails_and_says_what_the_trace_shows(text, shows):
    o = outcome(text)
    assert not o.ok
    assert o.shows == shows
    assert str(o) == f"case.yaml:7: expected {text}; the trace shows {shows}"


# A v2 trace: panels, replaced results, an unassessable panel, incomplete and repeated overdue orders.
TRACE_V2 = {
    "protocol": {"name": "demo", "version": "0.2"},
    "patient": "p",
    "start": "2025-01-06",
    "until": "2025-03-31",
    "steps": [
        {"date": "2025-01-06", "type": "enter", "state": "watch"},
        {"date": "2025-01-06", "type": "action", "action": "check", "state": "watch",
         "window": ["2025-01-13", "2025-01-20"], "sources": ["s"]},
        {"date": "2025-01-15", "type": "panel", "results": [{"lab": "TBIL", "value": 0.8}], "replaced": []},
        {"date": "2025-01-15", "type": "deviation", "kind": "incomplete", "action": "check",
         "window": ["2025-01-13", "2025-01-20"]},
        {"date": "2025-01-15", "type": "unassessable", "trigger": "panel", "missing": ["ALT", "AST"], "state": "watch"},
        {"date": "2025-01-21", "type": "deviation", "kind": "overdue", "action": "check",
         "window": ["2025-01-13", "2025-01-20"]},
        {"date": "2025-02-18", "type": "deviation", "kind": "still_overdue", "action": "check",
         "window": ["2025-01-13", "2025-01-20"]},
        {"date": "2025-03-03", "type": "panel",
         "results": [{"lab": "ALT", "value": 30, "time": "14:00"}],
         "replaced": [{"lab": "ALT", "value": 130, "time": "08:30"}]},
        {"date": "2025-03-03", "type": "transition", "from": "watch", "to": "watch", "trigger": "panel",
         "because": "", "sources": ["s"], "rule": "watch/0/1", "line": 17, "stay": True},
        {"date": "2025-03-03", "type": "action", "action": "check", "state": "watch",
         "window": ["2025-03-10", "2025-03-17"], "sources": ["s"]},
    ],
    "final_state": "watch",
    "open_orders": [{"action": "check", "window": ["2025-03-10", "2025-03-17"]}],
}


@pytest.mark.parametrize("text", [
    "on 2025-01-15 deviation incomplete for check",
    "deviation incomplete for check window 2025-01-13..2025-01-20",
    "once deviation overdue",
    "on 2025-02-18 deviation still_overdue for check window 2025-01-13..2025-01-20",
    "never deviation still_overdue after 2025-02-18",
    "3 times deviation for check",
    "on 2025-01-15 unassessable",
    "unassessable missing ALT, AST",
    "unassessable missing AST",
    "once unassessable",
    "never unassessable after 2025-01-15",
    "never unassessable missing TBIL",
    "on 2025-03-03 replaced ALT",
    "never replaced TBIL",
    "once replaced ALT",
])
def test_check_v2_steps_hold(text):
    o = outcome(text, TRACE_V2)
    assert o.ok, o.shows


@pytest.mark.parametrize("text, shows", [
    ("on 2025-01-16 unassessable", "unassessable on 2025-01-15; nothing on 2025-01-16 (state watch)"),
    ("unassessable missing TBIL", "unassessable steps: unassessable panel in watch (missing ALT, AST) on 2025-01-15"),
    ("never unassessable", "unassessable once: on 2025-01-15"),
    ("on 2025-01-15 deviation overdue", "deviation overdue on 2025-01-21; on 2025-01-15: panel TBIL, "
     "deviation incomplete for check window 2025-01-13..2025-01-20, unassessable panel in watch (missing ALT, AST)"),
    ("twice deviation still_overdue", "deviation still_overdue once: on 2025-02-18"),
    ("on 2025-03-03 replaced TBIL", "no replaced TBIL; on 2025-03-03: panel ALT (replaced ALT), stay watch, "
     "action check window 2025-03-10..2025-03-17"),
])
def test_check_v2_steps_fail_and_say_what_the_trace_shows(text, shows):
    o = outcome(text, TRACE_V2)
    assert not o.ok
    assert o.shows == shows


def test_check_on_an_empty_trace():
    empty = {"steps": [], "final_state": None, "open_orders": [], "until": "2025-01-06"}
    assert not outcome("state watch", empty).ok
    assert outcome("never state watch", empty).ok
    assert outcome("final no order", empty).ok
    assert outcome("no deviation", empty).ok


# ---------------------------------------------------------------------------- case files

CASE = """\
description: >
  Raised, treated,
  back to watching.
protocol: demo
patient: {id: p1}
start: 2025-01-06
until: 2025-03-31
events:
  - {date: 2025-01-10, lab: ALT, value: 30}
  - {date: 2025-02-03, lab: ALT, value: 100}
  - {date: 2025-02-03, choice: pause}
  - {date: 2025-02-12, lab: ALT, value: 40}
expect:
  - on 2025-01-06 action check window 2025-01-13..2025-01-20
  - on 2025-01-10 stay watch
  - on 2025-02-03 transition watch -> high
  - on 2025-02-03 action pause        # the recorded choice
  - never action treat
  - on 2025-02-12 transition high -> watch
  - final state watch
"""


def write(tmp_path, text: str, name: str = "case.yaml"):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_load_case(tmp_path, demo):
    p = write(tmp_path, CASE)
    case = load_case(p, demo)
    assert isinstance(case, Case)
    assert case.description == "Raised, treated, back to watching."
    assert case.timeline.patient == "p1"
    assert [e.line for e in case.expectations] == list(range(14, 21))
    assert case.expectations[3].text == "on 2025-02-03 action pause"
    assert all(e.path == str(p) for e in case.expectations)


def test_run_case_passes(tmp_path, demo):
    result = run_case(write(tmp_path, CASE), demo)
    assert result.status == "pass", [str(o) for o in result.failures]
    assert len(result.outcomes) == 7 and not result.errors
    assert result.trace["final_state"] == "watch"
    d = result.to_dict()
    assert d["status"] == "pass" and d["patient"] == "p1"
    assert [x["line"] for x in d["expectations"]] == list(range(14, 21))


def test_run_case_fails_with_located_messages(tmp_path, demo):
    text = CASE.replace("never action treat", "action treat").replace("final state watch", "final state high")
    p = write(tmp_path, text)
    result = run_case(p, demo)
    assert result.status == "fail"
    assert [str(o) for o in result.failures] == [
        f"{p}:18: expected action treat; the trace shows no action treat",
        f"{p}:20: expected final state high; the trace shows final state watch",
    ]
    assert result.to_dict()["expectations"][4] == {
        "line": 18, "text": "action treat", "ok": False, "shows": "no action treat"}


def errors_of(tmp_path, demo, text: str) -> list[str]:
    p = write(tmp_path, text)
    with pytest.raises(CaseError) as info:
        load_case(p, demo)
    out = []
    for m in info.value.messages:
        assert str(m).startswith(f"{p}:{m.line}") and m.path == str(p)
        out.append(f"{m.line}: {m.text}")
    # run_case reports the same and simulates nothing
    result = run_case(p, demo)
    assert result.status == "invalid" and result.trace is None and not result.outcomes
    assert [f"{m.line}: {m.text}" for m in result.errors] == out
    return out


def test_every_mistake_is_reported_in_order(tmp_path, demo):
    text = CASE.replace("lab: ALT, value: 100", "lab: ATL, value: 100")
    text = text.replace("stay watch", "stay wacth").replace("never action treat", "never action traet")
    text = text.replace("final state watch", "final state: watch")
    assert errors_of(tmp_path, demo, text) == [
        "10: unknown lab 'ATL'; did you mean 'ALT'?",
        "15: expectation 'on 2025-01-10 stay wacth': unknown state 'wacth'; did you mean 'watch'?",
        "18: expectation 'never action traet': unknown action 'traet'; did you mean 'treat'?",
        "20: an expectation is a line of text such as '- on 2025-02-03 action order_lfts', not a mapping; "
        "write it without the colon: '- final state watch'",
    ]


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.split("expect:")[0], "1: missing 'expect': a case needs a list of expectations"),
    (lambda t: t.split("expect:")[0] + "expect:\n", "13: 'expect' is empty"),
    (lambda t: t.split("expect:")[0] + "expect: final state watch\n", "13: 'expect' is not a list ('final state watch')"),
    (lambda t: t.split("expect:")[0] + "expect:\n  - 42\n", "14: an expectation is a line of text such as"),
    (lambda t: t.replace("protocol: demo", "protocol: other"), "4: this case is written for protocol 'other', not 'demo'"),
    (lambda t: t.replace("protocol: demo", "protocol: [demo]"), "4: 'protocol' must be the protocol's name"),
    (lambda t: t.replace("description: >\n  Raised, treated,\n  back to watching.", "description: [1]\n\n"),
     "1: 'description' must be text"),
    (lambda t: t.replace("final state watch", "on 2025-04-01 state watch"),
     "20: expectation 'on 2025-04-01 state watch': 2025-04-01 is after until (2025-03-31); the replay never reaches it"),
    (lambda t: t.replace("final state watch", "by 2025-01-01 state watch"),
     "20: expectation 'by 2025-01-01 state watch': 2025-01-01 is before start (2025-01-06)"),
    (lambda t: t.replace("until: 2025-03-31\n", "").replace("final state watch", "on 2025-02-13 state watch"),
     "expectation 'on 2025-02-13 state watch': 2025-02-13 is after until (2025-02-12)"),
    (lambda t: t.replace("start: 2025-01-06", "start: 2025-01-32"), "6: start: the text '2025-01-32' is not an ISO 8601 date"),
    (lambda t: t.replace("patient: {id: p1}", "patient: {id: p1, facts: {risk: true}}"), "unknown fact 'risk'"),
    (lambda t: t.replace("expect:", "expected:"), "unknown key 'expected'"),
    (lambda t: t.replace("  - never action treat", "  - never action treat\n - bad"), "invalid YAML"),
    (lambda t: "- just\n- a list\n", "1: a timeline is a mapping with patient, start and events"),
    (lambda t: "", "a timeline is a mapping with patient, start and events; this file is empty"),
])
def test_case_file_mistakes(tmp_path, demo, edit, message):
    errors = errors_of(tmp_path, demo, edit(CASE))
    assert any(message in e for e in errors), errors


def test_not_utf8(tmp_path, demo):
    p = tmp_path / "bad.yaml"
    p.write_bytes(b"patient: {id: p}\nstart: 2025-01-06\n# \xff\n")
    with pytest.raises(CaseError) as info:
        load_case(p, demo)
    assert str(info.value.messages[0]) == f"{p}:3: error[E701]: the file is not UTF-8 text (byte 38)"


def test_missing_file_is_an_oserror(tmp_path, demo):
    with pytest.raises(OSError):
        run_case(tmp_path / "nope.yaml", demo)


def test_simulation_error_is_a_case_error_status(tmp_path):
    # the verifier rejects this zero-time loop (E620); the simulator must stop on it all the same
    graph = _graph(LOOP, "loop.rxw", verify=False)
    p = write(tmp_path, "patient: {id: p}\nstart: 2025-01-06\nexpect:\n  - final state a\n")
    result = run_case(p, graph)
    assert result.status == "error"
    (m,) = result.errors
    assert m.code == "E806" and "the simulation stopped" in m.text
    assert result.trace is None


def test_parse_case_from_text(demo):
    case = parse_case(CASE, "inline.yaml", demo)
    assert case.path == "inline.yaml" and len(case.expectations) == 7


# ---------------------------------------------------------------------------- case_files and run_suite

def test_case_files(tmp_path):
    (tmp_path / "b.yaml").write_text("x")
    (tmp_path / "a.yml").write_text("x")
    (tmp_path / "c.yaml").write_text("x")
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "sub.yaml").mkdir()
    names = [p.rsplit("/", 1)[1] for p in case_files([tmp_path, tmp_path / "c.yaml"])]
    assert names == ["a.yml", "b.yaml", "c.yaml"]
    with pytest.raises(FileNotFoundError, match="no such case file"):
        case_files([tmp_path / "missing.yaml"])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="no case files"):
        case_files([empty])


def test_run_suite(tmp_path, demo):
    write(tmp_path, CASE, "1-pass.yaml")
    write(tmp_path, CASE.replace("final state watch", "final state high"), "2-fail.yaml")
    write(tmp_path, CASE.replace("final state watch", "final state hihg"), "3-invalid.yaml")
    suite = run_suite(demo, [tmp_path])
    assert [c.status for c in suite.cases] == ["pass", "fail", "invalid"]
    assert suite.summary() == {"cases": 3, "pass": 1, "fail": 1, "invalid": 1, "error": 0}
    assert not suite.ok and len(suite.traces) == 2


# ---------------------------------------------------------------------------- coverage

def test_coverage_counts_states_and_rules(demo):
    report = coverage(demo, [TRACE])
    assert report.protocol == "demo" and report.traces == 1
    assert [s.name for s in report.missing_states] == ["done"]
    assert [e.key for e in report.missing_edges] == ["watch/1/0", "high/0/1", "high/1/0"]
    # 2 of 3 states, 3 of 6 rules
    assert (report.state_percent, report.edge_percent, report.percent) == (66.7, 50.0, 55.6)
    assert not report.complete
    text = report.format_text()
    assert text.splitlines()[0] == "coverage of demo: 55.6% (states 2/3, transitions 3/6; 1 trace)"
    assert "demo.rxw:34: state done never entered" in text
    assert "demo.rxw:19: rule watch/1/0 never fired: watch -> done on event stop" in text
    assert "demo.rxw:29: rule high/0/1 never fired: stay high on panel" in text
    d = report.to_dict()
    assert d["percent"] == 55.6
    assert d["states"] == {"total": 3, "covered": 2, "percent": 66.7,
                           "missing": [{"state": "done", "path": "demo.rxw", "line": 34}]}
    assert d["transitions"]["missing"][0] == {
        "rule": "watch/1/0", "from": "watch", "to": "done", "trigger": "event", "because": "",
        "stay": False, "path": "demo.rxw", "line": 19}


def test_coverage_of_nothing_and_of_everything(demo):
    none = coverage(demo, [])
    assert none.percent == 0.0 and len(none.missing_edges) == 6 and none.traces == 0
    everything = {"steps": [{"type": "enter", "state": s} for s in demo.nodes]
                  + [{"type": "transition", "rule": k} for _, _, k in demo.edges(keys=True)]}
    full = coverage(demo, [everything])
    assert full.complete and full.percent == 100.0
    assert full.format_text() == "coverage of demo: 100% (states 3/3, transitions 6/6; 1 trace)"


def test_coverage_without_rule_ids_matches_by_shape(demo):
    step = {"type": "transition", "from": "high", "to": "watch", "trigger": "panel", "because": "x <= 1"}
    report = coverage(demo, [{"steps": [step]}])
    assert report.covered_edges == {"high/0/0"}


def test_coverage_tallies_unassessable_steps_apart(demo):
    """An unassessable step fires no rule and enters no state: it changes no percentage, and
    is counted per state and trigger so that the missing-result paths show in the report."""
    report = coverage(demo, [TRACE_V2, TRACE_V2])
    assert report.covered_states == {"watch"} and report.covered_edges == {"watch/0/1"}
    assert report.unassessable == {("watch", "panel"): 2}
    assert report.to_dict()["unassessable"] == [{"state": "watch", "trigger": "panel", "steps": 2}]
    lines = report.format_text().splitlines()
    assert lines[0] == "coverage of demo: 22.2% (states 1/3, transitions 1/6; 2 traces)"
    assert lines[1] == "  unassessable (results missing): 2 steps: panel in watch 2"
    assert coverage(demo, [TRACE]).unassessable == {} and "unassessable" not in coverage(demo, [TRACE]).format_text()
