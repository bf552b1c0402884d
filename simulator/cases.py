"""Scenario files: a timeline plus expectations that the protocol's trace must meet.

A case file is a timeline (shared/contracts/timeline.md, the same YAML) with one more key,
`expect`: a list of expectations, each one line of a small language (docs/simulation.md,
"Scenario files: rxwatch test"):

    expect:
      - on 2025-02-03 action hold_anakinra
      - by 2025-03-01 state stopped
      - never action refer_hepatology
      - deviation overdue for order_lfts on 2025-04-02
      - deviation still_overdue for order_lfts on 2025-04-30
      - unassessable on 2025-05-12 missing ALT, AST
      - replaced ALT on 2025-05-19
      - order_lfts window 2025-04-06..2025-05-06
      - final state maintenance

`load_case(path, graph)` reads and checks a case file against a compiled protocol and returns
a `Case`, or raises `CaseError` with every mistake of the file as a located `Message` (the
timeline's, and the expectations': unknown names with the nearest declared one, bad dates,
dates the replay never reaches). `check(expectation, trace)` tells whether a trace
(shared/contracts/trace.md) meets one expectation and, when it does not, what the trace shows
instead. `run_case` and `run_suite` put the two together with the simulator.

Nothing here knows about any particular protocol: names come from the compiled graph.
"""

from __future__ import annotations

import datetime
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rxwatch.compiler.diagnostics import did_you_mean

from . import yamlsrc
from .timeline import Message, Timeline, TimelineError, parse_date, parse_timeline
from .yamlsrc import Map, Seq

__all__ = [
    "CASE_KEYS", "Expectation", "When", "Count", "Case", "CaseError", "Outcome", "CaseResult",
    "SuiteResult", "parse_expectation", "load_case", "parse_case", "check", "run_case", "run_suite",
    "case_files",
]

CASE_KEYS = ("expect", "description", "protocol")
"""Top-level keys a case file has beyond a timeline's."""

DEVIATION_KINDS = ("overdue", "still_overdue", "incomplete")

# Codes of scenario-file mistakes (timeline mistakes keep their E7xx codes).
E_STRUCTURE = "E801"  # `expect` missing, not a list, an item that is not text; a bad description/protocol
E_SYNTAX = "E802"  # an expectation that does not read
E_NAME = "E803"  # a state, action, rule or deviation kind the protocol does not declare
E_DATE = "E804"  # a bad date, a window that ends before it starts, a date the replay never reaches
E_PROTOCOL = "E805"  # the case names another protocol

_FOREVER_AGO = datetime.date.min
_FOREVER = datetime.date.max
_ONE_DAY = datetime.timedelta(days=1)


# ---------------------------------------------------------------------------- the model

@dataclass(frozen=True, slots=True)
class When:
    """A date qualifier: steps dated from `first` to `last` inclusive; `words` as written."""

    first: datetime.date
    last: datetime.date
    words: str
    dates: tuple[datetime.date, ...] = ()  # the dates as written

    def holds(self, day: datetime.date) -> bool:
        return self.first <= day <= self.last


@dataclass(frozen=True, slots=True)
class Count:
    """How many matching steps: at least `low`, at most `high` (None: no upper bound)."""

    low: int = 1
    high: int | None = None
    words: str = ""

    def holds(self, n: int) -> bool:
        return n >= self.low and (self.high is None or n <= self.high)


@dataclass(frozen=True, slots=True)
class Expectation:
    """One line of `expect`.

    `subject` is one of: action, enter, state, transition, stay, rule, deviation,
    unassessable, replaced, final_state, final_order. `name` is the action, state, rule id,
    (for a deviation) the action it concerns or (for `replaced`) the lab; `target` the
    destination of a transition; `kind` a deviation's kind; `labs` the labs an `unassessable`
    step must name as missing.
    """

    text: str
    path: str
    line: int
    column: int
    subject: str
    name: str | None = None
    target: str | None = None
    kind: str | None = None
    window: tuple[datetime.date, datetime.date] | None = None
    labs: tuple[str, ...] = ()
    when: When | None = None
    count: Count = Count()

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"


@dataclass(frozen=True, slots=True)
class Case:
    path: str
    timeline: Timeline
    expectations: tuple[Expectation, ...]
    description: str = ""
    warnings: tuple[Message, ...] = ()


class CaseError(Exception):
    """The case file is wrong; `messages` holds every error found in it (timeline included)."""

    def __init__(self, messages: list[Message]) -> None:
        super().__init__("\n".join(str(m) for m in messages))
        self.messages = messages


@dataclass(frozen=True, slots=True)
class Outcome:
    expectation: Expectation
    ok: bool
    shows: str = ""  # what the trace shows instead, when not ok

    def __str__(self) -> str:
        e = self.expectation
        if self.ok:
            return f"{e.where}: ok: {e.text}"
        return f"{e.where}: expected {e.text}; the trace shows {self.shows}"


@dataclass
class CaseResult:
    """One case file's result. `status`: pass, fail, invalid (nothing simulated) or error
    (the simulation stopped, e.g. a zero-time loop)."""

    path: str
    status: str
    patient: str = ""
    description: str = ""
    outcomes: list[Outcome] = field(default_factory=list)
    errors: list[Message] = field(default_factory=list)
    warnings: list[Message] = field(default_factory=list)
    trace: dict | None = None

    @property
    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.ok]

    def to_dict(self) -> dict:
        return {
            "path": self.path,
            "status": self.status,
            "patient": self.patient,
            "description": self.description,
            "expectations": [
                {"line": o.expectation.line, "text": o.expectation.text, "ok": o.ok,
                 **({} if o.ok else {"shows": o.shows})}
                for o in self.outcomes
            ],
            "errors": [_message_dict(m) for m in self.errors],
            "warnings": [_message_dict(m) for m in self.warnings],
        }


@dataclass
class SuiteResult:
    protocol: str
    cases: list[CaseResult]

    def count(self, status: str) -> int:
        return sum(c.status == status for c in self.cases)

    @property
    def ok(self) -> bool:
        return all(c.status == "pass" for c in self.cases)

    @property
    def traces(self) -> list[dict]:
        return [c.trace for c in self.cases if c.trace is not None]

    def summary(self) -> dict:
        return {"cases": len(self.cases), **{s: self.count(s) for s in ("pass", "fail", "invalid", "error")}}


def _message_dict(m: Message) -> dict:
    return m.to_dict()  # the one JSON shape of a diagnostic, as `rxwatch check --format json` writes it


# ---------------------------------------------------------------------------- the expectation language

_TOKEN = re.compile(r"->|\.\.|(?:[^\s.\-]|-(?!>)|\.(?!\.))+")
_WHEN_ONE = ("on", "by", "before", "after")
_WHEN_TWO = {"between": "and", "from": "to"}
_SUBJECT_WORDS = ("action", "state", "enter", "transition", "stay", "rule", "deviation", "unassessable",
                  "replaced", "final")
_NUMBERS = {"once": 1, "twice": 2}

_GRAMMAR = ("action ACTION, ACTION window FROM..TO, state STATE, enter STATE, transition STATE -> STATE, "
            "stay STATE, rule RULE-ID, deviation [KIND] [for ACTION], unassessable [missing LAB, ...], "
            "replaced LAB, final state STATE or final order ACTION")


class _Bad(Exception):
    def __init__(self, code: str, text: str) -> None:
        super().__init__(text)
        self.code = code
        self.text = text


@dataclass(frozen=True)
class Names:
    """What an expectation may name: the compiled protocol's states, actions, rule ids and labs."""

    states: tuple[str, ...]
    actions: tuple[str, ...]
    rules: tuple[str, ...]
    labs: tuple[str, ...] = ()

    @classmethod
    def of(cls, graph: Any) -> "Names":
        actions = tuple((graph.graph.get("actions") or {}).keys())
        rules = tuple(k for _, _, k in graph.edges(keys=True))
        labs = tuple((graph.graph.get("labs") or {}).keys())
        return cls(tuple(graph.nodes), actions, rules, labs)


def _date(word: str) -> datetime.date:
    day = parse_date(word) if re.fullmatch(r"\d{4}-\d\d-\d\d", word) else None
    if day is None:
        raise _Bad(E_DATE, f"'{word}' is not an ISO 8601 date (YYYY-MM-DD)")
    return day


def _looks_like_date(word: str | None) -> bool:
    return word is not None and bool(re.fullmatch(r"\d[\d-]*\d", word))


def parse_expectation(text: str, names: Names, *, path: str = "<string>", line: int = 0,
                      column: int = 0) -> Expectation:
    """Read one expectation; raises CaseError with one located message if it does not read."""
    try:
        return _parse(text, names, path, line, column)
    except _Bad as bad:
        raise CaseError([Message(path, line, f"expectation '{text}': {bad.text}", "error", bad.code, column)]) from None


def _parse(text: str, names: Names, path: str, line: int, column: int) -> Expectation:
    toks = _TOKEN.findall(text)
    if not toks:
        raise _Bad(E_SYNTAX, f"an expectation is empty; write one of {_GRAMMAR}")
    when, toks = _take_when(toks, names)
    count, toks = _take_count(toks)
    if not toks:
        raise _Bad(E_SYNTAX, f"nothing to expect; write one of {_GRAMMAR}")
    fields = _subject(toks, names)
    subject = fields["subject"]
    if subject in ("final_state", "final_order") and when is not None:
        raise _Bad(E_SYNTAX, f"'final' is the end of the replay; it takes no '{when.words}'")
    if subject == "final_state" and count is not None:
        raise _Bad(E_SYNTAX, f"'{count.words}' does not apply to 'final state' (there is one final state)")
    return Expectation(text.strip(), path, line, column, when=when, count=count or Count(), **fields)


def _take_when(toks: list[str], names: Names) -> tuple[When | None, list[str]]:
    """Find one date qualifier anywhere: on/by/before/after DATE, between D and D, from D to D."""
    found: When | None = None
    out: list[str] = []
    i = 0
    while i < len(toks):
        word = toks[i]
        nxt = toks[i + 1] if i + 1 < len(toks) else None
        if word in _WHEN_ONE and _looks_like_date(nxt):
            day = _date(nxt)
            if word == "on":
                first, last = day, day
            elif word == "by":
                first, last = _FOREVER_AGO, day
            elif word == "before":  # an empty range for the first day there is
                first, last = (_FOREVER_AGO, day - _ONE_DAY) if day > _FOREVER_AGO else (_FOREVER, _FOREVER_AGO)
            else:
                first, last = (day + _ONE_DAY, _FOREVER) if day < _FOREVER else (_FOREVER, _FOREVER_AGO)
            dates = (day,)
            span = (i, i + 2)
            words = f"{word} {nxt}"
        elif word in _WHEN_TWO and _looks_like_date(nxt):
            joiner = _WHEN_TWO[word]
            if i + 3 >= len(toks) or toks[i + 2] != joiner or not _looks_like_date(toks[i + 3]):
                raise _Bad(E_SYNTAX, f"write '{word} {nxt} {joiner} YYYY-MM-DD'")
            first, last = _date(nxt), _date(toks[i + 3])
            dates = (first, last)
            if last < first:
                raise _Bad(E_DATE, f"'{word} {nxt} {joiner} {toks[i + 3]}' ends before it starts")
            span = (i, i + 4)
            words = " ".join(toks[i:i + 4])
        elif word in (*_WHEN_ONE, *_WHEN_TWO) and word not in names.states and word not in names.actions:
            after = f", not '{nxt}'" if nxt is not None else ""
            raise _Bad(E_DATE, f"'{word}' takes a date (YYYY-MM-DD){after}")
        else:
            out.append(word)
            i += 1
            continue
        if found is not None:
            raise _Bad(E_SYNTAX, f"two dates to meet ('{found.words}' and '{words}'); write one")
        found = When(first, last, words, dates)
        i = span[1]
    return found, out


def _take_count(toks: list[str]) -> tuple[Count | None, list[str]]:
    """never/no (zero), once, twice, N times, at least/at most N times: at the start or the end."""
    count: Count | None = None

    def set_count(c: Count) -> None:
        nonlocal count
        if count is not None:
            raise _Bad(E_SYNTAX, f"two counts ('{count.words}' and '{c.words}'); write one")
        count = c

    if toks and toks[0] in ("never", "no"):
        set_count(Count(0, 0, toks[0]))
        toks = toks[1:]
    elif len(toks) > 1 and toks[0] == "final" and toks[1] in ("never", "no"):  # final no order
        set_count(Count(0, 0, toks[1]))
        toks = toks[:1] + toks[2:]
    for at_start in (True, False):
        while True:
            c, n = _count_at(toks, at_start)
            if c is None:
                break
            set_count(c)
            toks = toks[n:] if at_start else toks[:len(toks) - n]
    return count, toks


def _count_at(toks: list[str], at_start: bool) -> tuple[Count | None, int]:
    def number(word: str) -> int:
        if not word.isdigit():
            raise _Bad(E_SYNTAX, f"'{word} times': the count is a whole number")
        return int(word)

    seq = toks if at_start else toks[::-1]
    if not seq:
        return None, 0
    if seq[0] in _NUMBERS:
        n = _NUMBERS[seq[0]]
        return Count(n, n, seq[0]), 1
    # forms: [at least|at most] N times (read forwards)
    window = toks[:4] if at_start else toks[-4:]
    for size in (4, 2):
        part = window[:size] if at_start else window[-size:]
        if len(part) != size or part[-1] != "times":
            continue
        if size == 4 and part[0] == "at" and part[1] in ("least", "most"):
            n = number(part[2])
            c = Count(n, None, " ".join(part)) if part[1] == "least" else Count(0, n, " ".join(part))
            return c, 4
        if size == 2:
            n = number(part[0])
            return Count(n, n, " ".join(part)), 2
    return None, 0


def _need(toks: list[str], i: int, what: str, after: str) -> str:
    if i >= len(toks):
        raise _Bad(E_SYNTAX, f"'{after}' needs {what}")
    return toks[i]


def _name(word: str, declared: Sequence[str], kind: str) -> str:
    if word in declared:
        return word
    hint = did_you_mean(word, declared)
    listing = "" if hint or len(declared) > 12 else f" (the protocol declares {', '.join(declared)})"
    raise _Bad(E_NAME, f"unknown {kind} '{word}'{hint}{listing}")


def _window(toks: list[str], i: int) -> tuple[tuple[datetime.date, datetime.date], int]:
    """`window FROM..TO` starting at toks[i] == 'window'; returns (window, next index)."""
    if i + 3 >= len(toks):
        raise _Bad(E_SYNTAX, "write 'window YYYY-MM-DD..YYYY-MM-DD'")
    first, dots, last = toks[i + 1], toks[i + 2], toks[i + 3]
    if dots != "..":
        raise _Bad(E_SYNTAX, "write 'window YYYY-MM-DD..YYYY-MM-DD'")
    a, b = _date(first), _date(last)
    if b < a:
        raise _Bad(E_DATE, f"window {first}..{last} ends before it starts")
    return (a, b), i + 4


def _labs(toks: list[str], i: int, names: Names) -> tuple[tuple[str, ...], int]:
    """`LAB, LAB, ...`: the rest of the expectation from toks[i] (dates and counts are already
    taken out); returns (labs, the index after them)."""
    words = [w for w in re.split(r"[\s,]+", " ".join(toks[i:])) if w]
    if not words:
        raise _Bad(E_SYNTAX, "'missing' needs lab names, such as 'missing ALT, AST'")
    return tuple(_name(w, names.labs, "lab") for w in words), len(toks)


def _subject(toks: list[str], names: Names) -> dict:
    head = toks[0]
    i = 1
    out: dict[str, Any] = {}
    if head == "final":
        what = _need(toks, 1, "'state STATE' or 'order ACTION'", "final")
        if what == "state":
            out = {"subject": "final_state", "name": _name(_need(toks, 2, "a state", "final state"), names.states, "state")}
            i = 3
        elif what in ("order", "orders"):
            out = {"subject": "final_order"}
            i = 2
            if i < len(toks) and toks[i] != "window":
                out["name"] = _name(toks[i], names.actions, "action")
                i += 1
            if i < len(toks) and toks[i] == "window":
                out["window"], i = _window(toks, i)
        else:
            raise _Bad(E_SYNTAX, f"'final' is followed by 'state STATE' or 'order ACTION', not '{what}'")
    elif head in ("action", "actions"):
        out = {"subject": "action", "name": _name(_need(toks, 1, "an action", head), names.actions, "action")}
        i = 2
        if i < len(toks) and toks[i] == "window":
            out["window"], i = _window(toks, i)
    elif head in ("state", "enter", "stay"):
        out = {"subject": head, "name": _name(_need(toks, 1, "a state", head), names.states, "state")}
        i = 2
    elif head == "transition" or (len(toks) > 1 and toks[1] == "->"):
        j = 1 if head == "transition" else 0
        src = _need(toks, j, "'STATE -> STATE'", "transition")
        if _need(toks, j + 1, "'-> STATE'", f"transition {src}") != "->":
            raise _Bad(E_SYNTAX, f"write 'transition {src} -> STATE'")
        dst = _need(toks, j + 2, "a state after '->'", f"transition {src} ->")
        out = {"subject": "transition", "name": _name(src, names.states, "state"),
               "target": _name(dst, names.states, "state")}
        i = j + 3
    elif head == "rule":
        out = {"subject": "rule", "name": _name(_need(toks, 1, "a rule id such as STATE/0/1", "rule"), names.rules, "rule")}
        i = 2
    elif head in ("deviation", "deviations"):
        out = {"subject": "deviation"}
        if i < len(toks) and toks[i] not in ("for", "window"):
            out["kind"] = _name(toks[i], DEVIATION_KINDS, "deviation kind")
            i += 1
        if i < len(toks) and toks[i] == "for":
            out["name"] = _name(_need(toks, i + 1, "an action", "deviation for"), names.actions, "action")
            i += 2
        if i < len(toks) and toks[i] == "window":
            out["window"], i = _window(toks, i)
    elif head == "unassessable":
        out = {"subject": "unassessable"}
        if i < len(toks) and toks[i] == "missing":
            out["labs"], i = _labs(toks, i + 1, names)
    elif head == "replaced":
        out = {"subject": "replaced", "name": _name(_need(toks, 1, "a lab", head).rstrip(","), names.labs, "lab")}
        i = 2
    elif len(toks) > 1 and toks[1] == "window":
        out = {"subject": "action", "name": _name(head, names.actions, "action")}
        out["window"], i = _window(toks, 1)
    else:
        if head in names.actions:
            hint = f"; to expect the action write 'action {head}'"
        elif head in names.states:
            hint = f"; to expect the state write 'state {head}'"
        else:
            hint = did_you_mean(head, [*_SUBJECT_WORDS, "never", "once", "twice", *_WHEN_ONE, "between", "from"])
        if hint:
            raise _Bad(E_SYNTAX, f"cannot read '{head}'{hint}")
        raise _Bad(E_SYNTAX, f"cannot read '{head}'; write one of {_GRAMMAR}, with an optional date "
                   "(on/by/before/after DATE, between DATE and DATE) and count (never, once, twice, N times)")
    if i < len(toks):
        rest = " ".join(toks[i:])
        raise _Bad(E_SYNTAX, f"unexpected '{rest}' after '{' '.join(toks[:i])}'")
    return out


# ---------------------------------------------------------------------------- reading a case file

def load_case(path: str | os.PathLike, graph: Any) -> Case:
    """Read a case file against a compiled protocol graph. Raises OSError or CaseError."""
    path = os.fspath(path)
    with open(path, "rb") as f:
        data = f.read()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise CaseError([Message(path, line, f"the file is not UTF-8 text (byte {exc.start + 1})", "error", "E701")]) from None
    return parse_case(text, path, graph)


def parse_case(text: str, path: str, graph: Any) -> Case:
    """Read a case file's text; raises CaseError with every mistake, sorted by position."""
    try:
        doc = yamlsrc.load(text, path)
    except yamlsrc.YamlError as exc:
        raise CaseError([Message(path, exc.line, exc.message, "error", "E701", exc.column)]) from None
    errors: list[Message] = []
    timeline: Timeline | None = None
    try:
        timeline = parse_timeline(doc, path, graph.graph, extra_keys=CASE_KEYS)
    except TimelineError as exc:
        errors.extend(exc.messages)
    description = ""
    expectations: list[Expectation] = []
    if isinstance(doc, Map):
        description = _description(doc, path, errors)
        _protocol(doc, path, graph, errors)
        expectations = _expectations(doc, path, Names.of(graph), errors)
        if timeline is not None:
            _check_dates(expectations, timeline, errors)
    if errors:
        raise CaseError(sorted(_unique(errors), key=lambda m: (m.path, m.line, m.column)))
    assert timeline is not None
    return Case(path, timeline, tuple(expectations), description, timeline.warnings)


def _unique(messages: Iterable[Message]) -> list[Message]:
    seen: set = set()
    out = []
    for m in messages:
        if m not in seen:
            seen.add(m)
            out.append(m)
    return out


def _at(path: str, pos: yamlsrc.Pos, code: str, text: str) -> Message:
    return Message(path, pos[0], text, "error", code, pos[1])


def _description(doc: Map, path: str, errors: list[Message]) -> str:
    if "description" not in doc:
        return ""
    value = doc["description"]
    if not isinstance(value, str):
        errors.append(_at(path, doc.value_pos("description"), E_STRUCTURE, "'description' must be text"))
        return ""
    return " ".join(value.split())


def _protocol(doc: Map, path: str, graph: Any, errors: list[Message]) -> None:
    if "protocol" not in doc:
        return
    value = doc["protocol"]
    name = graph.graph.get("name")
    if not isinstance(value, str):
        errors.append(_at(path, doc.value_pos("protocol"), E_STRUCTURE, "'protocol' must be the protocol's name"))
    elif value != name:
        errors.append(_at(path, doc.value_pos("protocol"), E_PROTOCOL,
                          f"this case is written for protocol '{value}', not '{name}'"))


def _expectations(doc: Map, path: str, names: Names, errors: list[Message]) -> list[Expectation]:
    example = "such as '- on 2025-02-03 action order_lfts'"
    if "expect" not in doc:
        errors.append(Message(path, 1, f"missing 'expect': a case needs a list of expectations, {example}",
                              "error", E_STRUCTURE, 1))
        return []
    items = doc["expect"]
    if not isinstance(items, Seq) or not items:
        what = "empty" if items is None or items == [] else f"not a list ({_kind_of(items)})"
        errors.append(_at(path, doc.key_pos("expect") if items is None else doc.value_pos("expect"), E_STRUCTURE,
                          f"'expect' is {what}: a case needs a list of expectations, one per line, {example}"))
        return []
    out = []
    for index, item in enumerate(items):
        pos = items.item_pos(index)
        if not isinstance(item, str):
            hint = ""
            if isinstance(item, Map) and len(item) == 1:
                (k, v), = item.items()
                hint = f"; write it without the colon: '- {k} {v}'"
            errors.append(_at(path, pos, E_STRUCTURE,
                              f"an expectation is a line of text {example}, not {_kind_of(item)}{hint}"))
            continue
        try:
            out.append(parse_expectation(item, names, path=path, line=pos[0], column=pos[1]))
        except CaseError as exc:
            errors.extend(exc.messages)
    return out


def _kind_of(value: Any) -> str:
    if isinstance(value, Map):
        return "a mapping"
    if isinstance(value, Seq):
        return "a list"
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


def _check_dates(expectations: list[Expectation], timeline: Timeline, errors: list[Message]) -> None:
    """A date outside start..until is one the replay never reaches: an author's slip."""
    start, until = timeline.start, timeline.until or timeline.start
    for e in expectations:
        for day in e.when.dates if e.when is not None else ():
            if day < start or day > until:
                side = f"before start ({start})" if day < start else f"after until ({until})"
                errors.append(Message(e.path, e.line, f"expectation '{e.text}': {day} is {side}; the replay "
                                      "never reaches it", "error", E_DATE, e.column))
                break


# ---------------------------------------------------------------------------- checking a trace

def _day(text: str) -> datetime.date:
    return datetime.date.fromisoformat(text)


def _win(value: Any) -> tuple[datetime.date, datetime.date] | None:
    if not value:
        return None
    return _day(value[0]), _day(value[1])


def _fmt_window(w: Sequence) -> str:
    return f"{w[0]}..{w[1]}"


def _step_matches(e: Expectation, step: Mapping) -> bool:
    """Does `step` match the subject of `e` (dates aside)?"""
    t = step.get("type")
    s = e.subject
    if s == "action":
        return t == "action" and step.get("action") == e.name and (e.window is None or _win(step.get("window")) == e.window)
    if s == "enter":
        return t == "enter" and step.get("state") == e.name
    if s == "transition":
        return t == "transition" and step.get("from") == e.name and step.get("to") == e.target
    if s == "stay":
        return t == "transition" and step.get("from") == e.name and step.get("to") == e.name and bool(step.get("stay"))
    if s == "rule":
        return t == "transition" and step.get("rule") == e.name
    if s == "deviation":
        return (t == "deviation" and (e.kind is None or step.get("kind") == e.kind)
                and (e.name is None or step.get("action") == e.name)
                and (e.window is None or _win(step.get("window")) == e.window))
    if s == "unassessable":
        return t == "unassessable" and set(e.labs) <= set(step.get("missing") or ())
    if s == "replaced":
        return any(isinstance(r, Mapping) and r.get("lab") == e.name for r in step.get("replaced") or ())
    return False


def _describe_step(step: Mapping) -> str:
    t = step.get("type")
    if t == "action":
        extra = f" window {_fmt_window(step['window'])}" if step.get("window") else ""
        return f"action {step.get('action')}{extra}"
    if t == "enter":
        return f"enter {step.get('state')}"
    if t == "transition":
        if step.get("stay"):
            return f"stay {step.get('from')}"
        return f"transition {step.get('from')} -> {step.get('to')}"
    if t == "deviation":
        return f"deviation {step.get('kind')} for {step.get('action')} window {_fmt_window(step.get('window') or ('?', '?'))}"
    if t == "unassessable":
        missing = ", ".join(step.get("missing") or ())
        return f"unassessable {step.get('trigger')} in {step.get('state')}" + (f" (missing {missing})" if missing else "")
    if t == "panel":
        labs = ", ".join(str(r.get("lab")) for r in step.get("results") or () if isinstance(r, Mapping))
        gone = ", ".join(str(r.get("lab")) for r in step.get("replaced") or () if isinstance(r, Mapping))
        return f"panel {labs}" + (f" (replaced {gone})" if gone else "")
    return str(t)


def _dates(steps: Sequence[Mapping], limit: int = 6) -> str:
    days = [str(s.get("date")) for s in steps]
    shown = ", ".join(days[:limit])
    return shown + (f" and {len(days) - limit} more" if len(days) > limit else "")


def _visits(trace: Mapping) -> list[tuple[str, datetime.date, datetime.date]]:
    """Each entry into a state: (state, entered on, current until), the last day inclusive."""
    enters = [s for s in trace.get("steps", ()) if s.get("type") == "enter"]
    until = _day(trace["until"]) if trace.get("until") else None
    out = []
    for i, s in enumerate(enters):
        first = _day(s["date"])
        last = _day(enters[i + 1]["date"]) if i + 1 < len(enters) else (until or first)
        out.append((s["state"], first, max(first, last)))
    return out


def _shows_count(e: Expectation, n: int, found: Sequence[Mapping]) -> str:
    if n == 0:
        return "none"
    return f"{n}: on {_dates(found)}"


def check(e: Expectation, trace: Mapping) -> Outcome:
    """Does `trace` meet `e`? When it does not, say what the trace shows instead."""
    if e.subject == "final_state":
        final = trace.get("final_state")
        return Outcome(e, final == e.name, f"final state {final}")
    if e.subject == "final_order":
        return _check_final_order(e, trace)
    if e.subject == "state":
        return _check_state(e, trace)
    steps = trace.get("steps", ())
    similar = [s for s in steps if _step_matches(e, s)]
    found = [s for s in similar if e.when is None or e.when.holds(_day(s["date"]))]
    if e.count.holds(len(found)):
        return Outcome(e, True)
    return Outcome(e, False, _explain(e, trace, similar, found))


def _explain(e: Expectation, trace: Mapping, similar: list, found: list) -> str:
    steps = trace.get("steps", ())
    what = _subject_text(e)
    if found:  # there are some, but the count is wrong
        where = f" {e.when.words}" if e.when else ""
        return f"{what}{where} {_count_text(len(found))}: on {_dates(found)}"
    parts = []
    if similar:
        parts.append(f"{what} on {_dates(similar)}")
    elif e.subject == "action" and e.window is not None:
        same = [s for s in steps if s.get("type") == "action" and s.get("action") == e.name]
        near = [s for s in same if e.when is None or e.when.holds(_day(s["date"]))]
        shown = near or same
        if not shown:
            parts.append(f"no action {e.name}")
        else:
            listed = "; ".join(f"{_describe_step(s)} on {s['date']}" for s in shown[:6])
            more = f" and {len(shown) - 6} more" if len(shown) > 6 else ""
            parts.append(listed + more)
            if near:  # what was ordered on those dates is the answer; no need for the day's list
                return "; ".join(parts)
    elif e.subject in ("deviation", "unassessable"):
        kind = e.subject
        devs = [s for s in steps if s.get("type") == kind]
        listed = "; ".join(f"{_describe_step(s)} on {s['date']}" for s in devs[:6])
        more = f" and {len(devs) - 6} more" if len(devs) > 6 else ""
        label = "deviations" if kind == "deviation" else "unassessable steps"
        parts.append(f"{label}: {listed}{more}" if devs else f"no {kind}")
    else:
        parts.append(f"no {what}")
    if e.when is not None and e.when.first == e.when.last:
        that_day = [s for s in steps if s.get("date") == e.when.first.isoformat()]
        if that_day:
            parts.append(f"on {e.when.first}: " + ", ".join(_describe_step(s) for s in that_day[:8]))
        else:
            parts.append(f"nothing on {e.when.first} (state {_state_on(trace, e.when.first)})")
    return "; ".join(parts)


def _count_text(n: int) -> str:
    return {1: "once", 2: "twice"}.get(n, f"{n} times")


def _subject_text(e: Expectation) -> str:
    if e.subject == "action":
        return f"action {e.name}" + (f" window {_fmt_window(e.window)}" if e.window else "")
    if e.subject == "transition":
        return f"transition {e.name} -> {e.target}"
    if e.subject == "deviation":
        bits = ["deviation"]
        if e.kind:
            bits.append(e.kind)
        if e.name:
            bits.append(f"for {e.name}")
        if e.window:
            bits.append(f"window {_fmt_window(e.window)}")
        return " ".join(bits)
    if e.subject == "unassessable":
        return "unassessable" + (f" missing {', '.join(e.labs)}" if e.labs else "")
    if e.subject == "replaced":
        return f"replaced {e.name}"
    return f"{e.subject} {e.name}"


def _state_on(trace: Mapping, day: datetime.date) -> str:
    current = [v[0] for v in _visits(trace) if v[1] <= day <= v[2]]
    return current[-1] if current else "none"


def _check_state(e: Expectation, trace: Mapping) -> Outcome:
    visits = _visits(trace)
    first = e.when.first if e.when else _FOREVER_AGO
    last = e.when.last if e.when else _FOREVER
    found = [v for v in visits if v[0] == e.name and v[1] <= last and v[2] >= first]
    if e.count.holds(len(found)):
        return Outcome(e, True)
    if found:
        spans = ", ".join(f"{a}..{b}" for _, a, b in found[:6])
        where = f" {e.when.words}" if e.when else ""
        return Outcome(e, False, f"state {e.name}{where} {_count_text(len(found))}: {spans}")
    during = [v for v in visits if v[1] <= last and v[2] >= first]
    shown = ", ".join(f"{s} ({a}..{b})" for s, a, b in during[:8])
    where = f" {e.when.words}" if e.when else ""
    ever = [v for v in visits if v[0] == e.name]
    tail = f"; {e.name} on {', '.join(f'{a}..{b}' for _, a, b in ever[:6])}" if ever else f"; never {e.name}"
    return Outcome(e, False, f"states{where}: {shown or 'none'}{tail}")


def _check_final_order(e: Expectation, trace: Mapping) -> Outcome:
    orders = list(trace.get("open_orders", ()))
    found = [o for o in orders if (e.name is None or o.get("action") == e.name)
             and (e.window is None or _win(o.get("window")) == e.window)]
    if e.count.holds(len(found)):
        return Outcome(e, True)
    shown = "; ".join(f"{o.get('action')} window {_fmt_window(o.get('window') or ('?', '?'))}" for o in orders)
    return Outcome(e, False, f"open orders at the end: {shown or 'none'}")


# ---------------------------------------------------------------------------- running cases

def run_case(path: str | os.PathLike, graph: Any) -> CaseResult:
    """Load, simulate and check one case file. OSError (a missing file) reaches the caller."""
    from .engine import SimulationError, simulate

    path = os.fspath(path)
    try:
        case = load_case(path, graph)
    except CaseError as exc:
        return CaseResult(path, "invalid", errors=list(exc.messages))
    result = CaseResult(path, "pass", case.timeline.patient, case.description, warnings=list(case.warnings))
    try:
        trace = simulate(graph, case.timeline)
    except SimulationError as exc:
        result.status = "error"
        result.errors = [Message(path, 0, f"the simulation stopped: {exc}", "error", "E806")]
        return result
    result.trace = trace
    result.outcomes = [check(e, trace) for e in case.expectations]
    if result.failures:
        result.status = "fail"
    return result


def case_files(paths: Iterable[str | os.PathLike]) -> list[str]:
    """Expand directories into their *.yaml / *.yml files, sorted; files stay as given; a file
    named twice runs once.

    Raises FileNotFoundError for a path that does not exist or a folder with no case file."""
    out: list[str] = []
    for p in paths:
        p = os.fspath(p)
        if p in out:
            continue
        if os.path.isdir(p):
            found = sorted(os.path.join(p, n) for n in os.listdir(p)
                           if n.endswith((".yaml", ".yml")) and os.path.isfile(os.path.join(p, n)))
            if not found:
                raise FileNotFoundError(f"{p}: no case files (*.yaml) in this folder")
            out.extend(f for f in found if f not in out)
        elif os.path.exists(p):
            out.append(p)
        else:
            raise FileNotFoundError(f"{p}: no such case file")
    return out


def run_suite(graph: Any, paths: Iterable[str | os.PathLike]) -> SuiteResult:
    """Run every case (directories expanded) against one compiled protocol."""
    return SuiteResult(graph.graph.get("name", ""), [run_case(p, graph) for p in case_files(paths)])
