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
      - on 2025-03-01 var dose_modified is true          # statecharts (format 3)
      - on 2025-03-01 value tx is 4.5
      - on 2025-03-01 drug tocilizumab held
      - on 2025-03-01 action order_cbc in track neutrophils
      - final states maintenance, neutrophils_routine

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
from fractions import Fraction
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rxwatch.compiler.diagnostics import did_you_mean

from . import units, yamlsrc
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
E_VALUE = "E807"  # a value that does not fit the variable, derived value or drug read (`var x is 4` for a bool)
E_POINT = "E808"  # a count, or a date other than `on DATE`, on a value at a point in time (var, value, drug)
E_DRUG = "E809"  # a drug status or dose level the drug does not have
E_TRACK = "E810"  # `in track T` on a subject that is not a step of a track (state, final, var, drug, replaced)
E_FINAL_STATES = "E811"  # `final states` naming a state that is not atomic (compound, parallel, track)

DRUG_STATUSES = ("not_started", "on", "held", "stopped")
DRUG_READS = ("held", "dose", "stopped", "started")
UNKNOWN = None
"""The expected value `unknown`."""

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

    `subject` is one of: action, enter, state, transition, stay, rule, preempted, deviation,
    unassessable, replaced, final_state, final_states, final_order, var, value, drug. `name` is
    the action, state, rule id, (for a deviation) the action it concerns, (for `replaced`) the
    lab, the variable, the derived value (`tx`, `dose(tocilizumab)`) or the drug; `target` the
    destination of a transition; `kind` a deviation's kind, or a drug's status; `labs` the labs
    an `unassessable` step must name as missing. `value` is the value expected of a var, a
    derived value (None: unknown) or (for a drug) its dose level, `has_value` whether one is
    expected; `track` narrows steps to one track; `within` is a state and every state inside it
    (`state`, `final state`); `states` the atomic states of `final states`; `rules` the edge ids
    a `rule` id stands for (a block's rule is one id for every state using it); `held_by` the
    track a held drug must be held by.
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
    value: Any = None
    has_value: bool = False
    track: str | None = None
    within: tuple[str, ...] = ()
    states: tuple[str, ...] = ()
    rules: frozenset = frozenset()
    held_by: str | None = None
    default: Any = None  # a var's declared default

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
_SUBJECT_WORDS = ("action", "state", "enter", "transition", "stay", "rule", "preempted", "deviation",
                  "unassessable", "replaced", "final", "var", "value", "drug")
_NUMBERS = {"once": 1, "twice": 2}

_GRAMMAR = ("action ACTION, ACTION window FROM..TO, state STATE, enter STATE, transition STATE -> STATE, "
            "stay STATE, rule RULE-ID, deviation [KIND] [for ACTION], unassessable [missing LAB, ...], "
            "replaced LAB, final state STATE, final states STATE, ..., final order ACTION, "
            "var VAR is VALUE, value NAME is VALUE, drug DRUG STATUS [dose LEVEL], preempted RULE-ID")


class _Bad(Exception):
    def __init__(self, code: str, text: str) -> None:
        super().__init__(text)
        self.code = code
        self.text = text


@dataclass(frozen=True)
class Names:
    """What an expectation may name: the compiled protocol's states, actions, rule ids and labs;
    (format 3) its variables, derived values, drugs and tracks, each state's parent and type,
    and for each rule id the edges it stands for (a block rule `BLOCK#i` is every edge whose
    canonical `rule` it is; `S/H/R` is that edge and its choice alternatives `S/H/R@i`)."""

    states: tuple[str, ...]
    actions: tuple[str, ...]
    rules: tuple[str, ...]
    labs: tuple[str, ...] = ()
    vars: Mapping[str, Mapping] = field(default_factory=dict)
    lets: Mapping[str, Mapping] = field(default_factory=dict)
    drugs: Mapping[str, Mapping] = field(default_factory=dict)
    tracks: tuple[str, ...] = ()
    parents: Mapping[str, str | None] = field(default_factory=dict)
    types: Mapping[str, str] = field(default_factory=dict)
    rule_edges: Mapping[str, frozenset] = field(default_factory=dict)

    @classmethod
    def of(cls, graph: Any) -> "Names":
        g = graph.graph
        actions = tuple((g.get("actions") or {}).keys())
        rule_edges: dict[str, set] = {}
        for _, _, key, data in graph.edges(keys=True, data=True):
            rule_edges.setdefault(key, set()).add(key)
            base = key.split("@", 1)[0]
            rule_edges.setdefault(base, set()).add(key)
            if data.get("rule"):
                rule_edges.setdefault(data["rule"], set()).add(key)
        rules = tuple(rule_edges)
        labs = tuple((g.get("labs") or {}).keys())
        types = {n: d.get("type") or "atomic" for n, d in graph.nodes(data=True)}
        tracks = tuple(n for n, t in types.items() if t == "track")
        states = tuple(n for n in graph.nodes if types[n] != "track")
        parents = {n: d.get("parent") for n, d in graph.nodes(data=True)}
        return cls(states, actions, rules, labs, dict(g.get("vars") or {}), dict(g.get("lets") or {}),
                   dict(g.get("drugs") or {}), tracks, parents, types,
                   {k: frozenset(v) for k, v in rule_edges.items()})

    def within(self, state: str) -> tuple[str, ...]:
        """`state` and every state (and track) inside it."""
        out = [state]
        for node, parent in self.parents.items():
            chain = parent
            while chain is not None and chain != state:
                chain = self.parents.get(chain)
            if chain == state and node != state:
                out.append(node)
        return tuple(out)

    def is_atomic(self, state: str) -> bool:
        return self.types.get(state, "atomic") == "atomic"


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
    track, toks = _take_track(toks, names)
    if not toks:
        raise _Bad(E_SYNTAX, f"nothing to expect; write one of {_GRAMMAR}")
    fields = _subject(toks, names)
    subject = fields["subject"]
    if subject in ("final_state", "final_states", "final_order") and when is not None:
        raise _Bad(E_SYNTAX, f"'final' is the end of the replay; it takes no '{when.words}'")
    if subject in ("final_state", "final_states") and count is not None:
        shown = subject.replace("_", " ")
        raise _Bad(E_SYNTAX, f"'{count.words}' does not apply to '{shown}' (the end of the replay is one moment)")
    if subject in ("var", "value", "drug"):
        what = {"var": "a variable's value", "value": "a derived value", "drug": "a drug's status"}[subject]
        if count is not None:
            raise _Bad(E_POINT, f"'{count.words}': {what} is checked on one day, it is not counted "
                       "(write 'on DATE', or nothing for the end of the replay)")
        if when is not None and not when.words.startswith("on "):
            raise _Bad(E_POINT, f"'{when.words}': {what} is checked on one day; write 'on DATE'"
                       + ("" if subject == "value" else " (or nothing: at the end of the replay)"))
        if subject == "value" and when is None:
            raise _Bad(E_POINT, "a derived value is the one a decision saw on a day: write 'on DATE'")
    if track is not None:
        if subject not in _TRACKED:
            shown = {"final_state": "final state", "final_states": "final states", "final_order": "final order"}.get(subject, subject)
            raise _Bad(E_TRACK, f"'in track {track}' narrows the steps of a track (action, transition, stay, rule, "
                       f"preempted, deviation, unassessable, value) or the orders open at the end; '{shown}' has none")
        fields["track"] = _name(track, names.tracks, "track")
    return Expectation(text.strip(), path, line, column, when=when, count=count or Count(), **fields)


_TRACKED = ("action", "transition", "stay", "rule", "preempted", "deviation", "unassessable", "value", "final_order")


def _take_track(toks: list[str], names: Names) -> tuple[str | None, list[str]]:
    """A trailing `in track TRACK` (after the dates and counts are taken out)."""
    for i in range(len(toks) - 1):
        if toks[i] == "in" and toks[i + 1] == "track":
            if i + 2 >= len(toks):
                raise _Bad(E_SYNTAX, "'in track' needs a track's name")
            if i + 3 < len(toks):
                raise _Bad(E_SYNTAX, f"unexpected '{' '.join(toks[i + 3:])}' after 'in track {toks[i + 2]}'")
            return toks[i + 2], toks[:i]
    return None, toks


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
        elif word in (*_WHEN_ONE, *_WHEN_TWO) and word not in names.states and word not in names.actions \
                and not _drug_word(toks, i, names):
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


def _drug_word(toks: list[str], i: int, names: Names) -> bool:
    """`on` and `by` in `drug DRUG on` and `drug DRUG held by TRACK` are not date words."""
    before = toks[i - 1] if i > 0 else None
    after = toks[i + 1] if i + 1 < len(toks) else None
    return (toks[i] == "on" and before in names.drugs) or (toks[i] == "by" and (before in DRUG_STATUSES or after in names.tracks))


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
    if not declared:
        raise _Bad(E_NAME, f"unknown {kind} '{word}' (the protocol declares no {kind}s)")
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
        if what == "state" and len(toks) > 3 and toks[2].endswith(","):
            raise _Bad(E_SYNTAX, "'final state' names one state; for all the active states write 'final states A, B'")
        if what == "state":
            name = _name(_need(toks, 2, "a state", "final state"), (*names.states, *names.tracks), "state")
            out = {"subject": "final_state", "name": name, "within": names.within(name)}
            i = 3
        elif what == "states":
            words = [w for w in re.split(r"[\s,]+", " ".join(toks[2:])) if w]
            if not words:
                raise _Bad(E_SYNTAX, "'final states' needs the active states, such as 'final states A, B'")
            states = tuple(_name(w, (*names.states, *names.tracks), "state") for w in words)
            for state in states:
                if not names.is_atomic(state):
                    raise _Bad(E_FINAL_STATES, f"'final states' lists the active atomic states; '{state}' is a "
                               f"{names.types.get(state)} state (write 'final state {state}': {state} active at the end)")
            if len(set(states)) != len(states):
                raise _Bad(E_SYNTAX, "'final states' names a state twice")
            out = {"subject": "final_states", "states": states}
            i = len(toks)
        elif what in ("order", "orders"):
            out = {"subject": "final_order"}
            i = 2
            if i < len(toks) and toks[i] != "window":
                out["name"] = _name(toks[i], names.actions, "action")
                i += 1
            if i < len(toks) and toks[i] == "window":
                out["window"], i = _window(toks, i)
        elif what in ("var", "drug"):
            raise _Bad(E_SYNTAX, f"write '{what} ...' without 'final': without a date it is the value at the end")
        else:
            raise _Bad(E_SYNTAX, f"'final' is followed by 'state STATE', 'states STATE, ...' or 'order ACTION', not '{what}'")
    elif head in ("action", "actions"):
        out = {"subject": "action", "name": _name(_need(toks, 1, "an action", head), names.actions, "action")}
        i = 2
        if i < len(toks) and toks[i] == "window":
            out["window"], i = _window(toks, i)
    elif head in ("state", "enter", "stay"):
        declared = (*names.states, *names.tracks) if head in ("state", "enter") else names.states
        name = _name(_need(toks, 1, "a state", head), declared, "state")
        out = {"subject": head, "name": name}
        if head == "state":
            out["within"] = names.within(name)
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
    elif head in ("rule", "preempted"):
        name = _name(_need(toks, 1, "a rule id such as STATE/0/1", head), names.rules, "rule")
        out = {"subject": head, "name": name, "rules": names.rule_edges.get(name, frozenset((name,)))}
        i = 2
    elif head == "var":
        name = _need(toks, 1, "a variable", "var")
        if name not in names.vars and name in names.lets:
            raise _Bad(E_SYNTAX, f"'{name}' is a derived value (let): write 'value {name} is ...'")
        name = _name(name, tuple(names.vars), "variable")
        out = {"subject": "var", "name": name, **_is_value(toks, 2, _var_kind(names.vars[name]), f"var {name}"),
               "default": _declared(names.vars[name].get("default"))}
        i = len(toks)
    elif head == "value":
        name = _need(toks, 1, "a derived value (a let, or a drug read such as dose(DRUG))", "value")
        out = {"subject": "value", "name": name, **_is_value(toks, 2, _read_kind(name, names), f"value {name}")}
        i = len(toks)
    elif head == "drug":
        out, i = _drug(toks, names)
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


def _var_kind(decl: Mapping) -> tuple[str, tuple[str, ...]]:
    return decl.get("type") or "number", tuple(decl.get("members") or ())


def _read_kind(name: str, names: Names) -> tuple[str, tuple[str, ...]]:
    """The kind of value `value NAME` expects: a let's type, or a drug read's."""
    m = re.fullmatch(r"(\w+)\((\w+)\)", name)
    if m and m[1] in DRUG_READS:
        drug = _name(m[2], tuple(names.drugs), "drug")
        if m[1] != "dose":
            return "bool", ()
        decl = names.drugs[drug]
        return ("enum", tuple(decl.get("doses") or ())) if decl.get("kind") == "name" else ("number", ())
    if name in names.vars and name not in names.lets:
        raise _Bad(E_SYNTAX, f"'{name}' is a variable: write 'var {name} is ...'")
    if m:
        raise _Bad(E_NAME, f"unknown drug read '{name}': write held(DRUG), dose(DRUG), stopped(DRUG) or started(DRUG)")
    name = _name(name, tuple(names.lets), "derived value")
    return _var_kind(names.lets[name])


def _is_value(toks: list[str], i: int, kind: tuple[str, tuple[str, ...]], after: str) -> dict:
    """`is VALUE` from toks[i]: the value expected, checked against the kind."""
    if i >= len(toks) or toks[i] not in ("is", "=", "=="):
        raise _Bad(E_SYNTAX, f"write '{after} is VALUE' (a number, true, false, a member's name, or unknown)")
    if i + 1 >= len(toks):
        raise _Bad(E_SYNTAX, f"'{after} is' needs a value (a number, true, false, a member's name, or unknown)")
    if i + 2 < len(toks):
        raise _Bad(E_SYNTAX, f"unexpected '{' '.join(toks[i + 2:])}' after '{after} is {toks[i + 1]}'")
    return {"value": _value(toks[i + 1], kind, after), "has_value": True}


_NUMBER_WORD = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_RATIO_WORD = re.compile(r"([+-]?\d{1,40})/(\d{1,40})")


def _value(word: str, kind: tuple[str, tuple[str, ...]], what: str) -> Any:
    typ, members = kind
    if word == "unknown":
        return UNKNOWN
    if word in ("true", "false"):
        if typ != "bool":
            raise _Bad(E_VALUE, f"{what} is {_kind_text(kind)}, not {word}")
        return word == "true"
    ratio = _RATIO_WORD.fullmatch(word)
    if _NUMBER_WORD.fullmatch(word) or ratio:
        try:  # a decimal, or a ratio p/q for a value with no finite decimal (100/33)
            number = units.exact(word) if not ratio else _normal(Fraction(int(ratio[1]), int(ratio[2])))
        except (ValueError, ZeroDivisionError) as exc:
            raise _Bad(E_VALUE, f"'{word}' is {'a division by zero' if ratio else exc}") from None
        if typ != "number":
            raise _Bad(E_VALUE, f"{what} is {_kind_text(kind)}, not a number ({word})")
        return number
    if typ == "enum":
        if word not in members:
            raise _Bad(E_VALUE, f"'{word}' is not one of the values of {what} ({', '.join(members)})"
                       + did_you_mean(word, members))
        return word
    raise _Bad(E_VALUE, f"{what} is {_kind_text(kind)}, not '{word}'")


def _kind_text(kind: tuple[str, tuple[str, ...]]) -> str:
    typ, members = kind
    if typ == "enum":
        return f"one of {', '.join(members)}"
    return {"bool": "true or false", "number": "a number"}.get(typ, typ)


def _drug(toks: list[str], names: Names) -> tuple[dict, int]:
    """`drug DRUG [STATUS] [dose LEVEL [UNIT]] [by TRACK]` (at least a status or a dose)."""
    name = _name(_need(toks, 1, "a drug", "drug"), tuple(names.drugs), "drug")
    decl = names.drugs[name]
    out: dict[str, Any] = {"subject": "drug", "name": name}  # before any action: not started, no dose
    i = 2
    if i < len(toks) and toks[i] not in ("dose", "by"):
        word = toks[i]
        if word not in DRUG_STATUSES:
            raise _Bad(E_DRUG, f"'{word}' is not a drug status; write {', '.join(DRUG_STATUSES)}"
                       + did_you_mean(word, DRUG_STATUSES))
        out["kind"] = word
        i += 1
    if i < len(toks) and toks[i] == "dose":
        level = _need(toks, i + 1, "a dose level", f"drug {name} dose")
        levels = tuple(decl.get("doses") or ())
        shown = ", ".join(str(v) for v in levels)
        if level == "unknown":  # no dose: not started, or stopped
            out["value"] = UNKNOWN
        elif decl.get("kind") == "name":
            if level not in levels:
                raise _Bad(E_DRUG, f"{name} has no dose level '{level}' (its levels: {shown})"
                           + did_you_mean(level, [str(x) for x in levels]))
            out["value"] = level
        else:
            x = _exact_or_none(level) if _NUMBER_WORD.fullmatch(level) else None
            if x is None or (levels and all(_exact_or_none(v) != x for v in levels)):
                raise _Bad(E_DRUG, f"{name} has no dose level {level} (its levels: {shown})")
            out["value"] = x
        out["has_value"] = True
        i += 2
        unit = decl.get("unit")
        if i < len(toks) and unit and units.same_unit(toks[i], unit):
            i += 1  # `dose 4 mg/kg`: the drug's own unit may be written
    if i < len(toks) and toks[i] == "by":
        if out.get("kind") not in (None, "held"):
            raise _Bad(E_DRUG, f"'by TRACK' says which track holds the drug: write 'drug {name} held by TRACK'")
        out["kind"] = "held"
        out["held_by"] = _name(_need(toks, i + 1, "a track", "held by"), names.tracks, "track")
        i += 2
    if "kind" not in out and "value" not in out:
        raise _Bad(E_SYNTAX, f"write 'drug {name} STATUS' ({', '.join(DRUG_STATUSES)}) or 'drug {name} dose LEVEL'")
    return out, i


def _exact_or_none(value: Any) -> Any:
    try:
        return units.exact(value)
    except ValueError:
        return None


def _declared(value: Any) -> Any:
    """A declared default as the graph stores it (a JSON literal: bool, a name, or a number as an
    int, a float or a decimal text), exactly."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return units.exact(value)
    if isinstance(value, str) and _NUMBER_WORD.fullmatch(value):
        return units.exact(value)
    return value


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
    if e.track is not None and step.get("track") != e.track:
        return False
    if s == "action":
        return t == "action" and step.get("action") == e.name and (e.window is None or _win(step.get("window")) == e.window)
    if s == "enter":
        return t == "enter" and step.get("state") == e.name
    if s == "transition":
        return t == "transition" and step.get("from") == e.name and step.get("to") == e.target
    if s == "stay":
        return t == "transition" and step.get("from") == e.name and step.get("to") == e.name and bool(step.get("stay"))
    if s == "rule":
        return t == "transition" and (step.get("rule") == e.name or step.get("rule") in e.rules)
    if s == "preempted":
        return t == "transition" and any(r == e.name or r in e.rules for r in step.get("preempted") or ())
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
    where = f" in track {step['track']}" if step.get("track") else ""
    if t == "action":
        extra = f" window {_fmt_window(step['window'])}" if step.get("window") else ""
        return f"action {step.get('action')}{extra}{where}"
    if t == "enter":
        return f"enter {step.get('state')}"
    if t == "transition":
        if step.get("stay"):
            return f"stay {step.get('from')}{where}"
        return f"transition {step.get('from')} -> {step.get('to')}{where}"
    if t == "set":
        return f"set {step.get('var')} = {_shown_value(_trace_value(step, 'value'))}"
    if t == "deviation":
        return (f"deviation {step.get('kind')} for {step.get('action')} window "
                f"{_fmt_window(step.get('window') or ('?', '?'))}{where}")
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


def _visits(trace: Mapping, names: Names | None = None) -> list[tuple[str, datetime.date, datetime.date]]:
    """Each entry into a state: (state, entered on, current until), the last day inclusive.

    The trace has `enter` steps only: entering S leaves what S replaces, which `names.parents`
    tells: every active state inside S's parent's other children (the other states of the same
    region), and S itself with what is inside it (a re-entry). Without parents (a flat
    protocol) every state is in the one top-level region: an entry leaves the state before."""
    parents = names.parents if names is not None else {}
    until = _day(trace["until"]) if trace.get("until") else None
    active: dict[str, int] = {}  # state -> index in out of its open visit
    out: list[list] = []

    def chain(state: str) -> list[str]:
        path = [state]
        while (up := parents.get(path[-1])) is not None and len(path) < 1000:
            path.append(up)
        return path

    for s in trace.get("steps", ()):
        if s.get("type") != "enter":
            continue
        state, day = s["state"], _day(s["date"])
        region = parents.get(state)
        exclusive = names is None or names.types.get(region) != "parallel"  # tracks are all active at once
        for other in list(active):
            path = chain(other)
            # `other` is left when it is `state` or inside it, or inside another child of state's parent
            if state in path or (exclusive and any(parents.get(n) == region and n != state for n in path)):
                out[active.pop(other)][2] = day
        active[state] = len(out)
        out.append([state, day, None])
    end = until
    return [(st, first, max(first, last or end or first)) for st, first, last in out]


def _shows_count(e: Expectation, n: int, found: Sequence[Mapping]) -> str:
    if n == 0:
        return "none"
    return f"{n}: on {_dates(found)}"


def check(e: Expectation, trace: Mapping, names: Names | None = None) -> Outcome:
    """Does `trace` meet `e`? When it does not, say what the trace shows instead. `names`
    (`Names.of(graph)`) tells which states are inside which: needed for `state` expectations
    on a protocol with nested states or tracks (without it every state is top level)."""
    if e.subject == "final_state":
        return _check_final_state(e, trace)
    if e.subject == "final_states":
        active = _final_states(trace)
        ok = sorted(active) == sorted(e.states)
        return Outcome(e, ok, "final states " + (", ".join(active) or "none"))
    if e.subject == "final_order":
        return _check_final_order(e, trace)
    if e.subject == "state":
        return _check_state(e, trace, names)
    if e.subject == "var":
        return _check_var(e, trace)
    if e.subject == "value":
        return _check_value(e, trace)
    if e.subject == "drug":
        return _check_drug(e, trace)
    steps = trace.get("steps", ())
    similar = [s for s in steps if _step_matches(e, s)]
    found = [s for s in similar if e.when is None or e.when.holds(_day(s["date"]))]
    if e.count.holds(len(found)):
        return Outcome(e, True)
    return Outcome(e, False, _explain(e, trace, similar, found, names))


# ---------------------------------------------------------------------------- values (format 3)

def _trace_value(d: Mapping, key: str) -> Any:
    """A value as the trace writes it, exactly: `key_exact` (a decimal or p/q text) when there
    is one, else the JSON value (a float by its shortest repr); null is unknown."""
    text = d.get(key + "_exact")
    if isinstance(text, str):
        try:
            return _normal(Fraction(text))
        except (ValueError, ZeroDivisionError):
            pass
    value = d.get(key)
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        try:
            return units.exact(value)
        except ValueError:
            return value
    if isinstance(value, str) and re.fullmatch(r"[+-]?\d+/\d+", value):
        return _normal(Fraction(value))
    if isinstance(value, str) and _NUMBER_WORD.fullmatch(value):
        return units.exact(value)
    return value


def _normal(x: Fraction) -> Any:
    return x.numerator if x.denominator == 1 else x


def _same(expected: Any, actual: Any) -> bool:
    if expected is None or isinstance(expected, bool) or isinstance(actual, bool):
        return expected is actual or (isinstance(expected, bool) and isinstance(actual, bool) and expected == actual)
    if isinstance(expected, (int, Fraction)):
        return isinstance(actual, (int, Fraction)) and expected == actual
    return expected == actual


def _shown_value(value: Any) -> str:
    if value is None:
        return "unknown"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Fraction):
        from rxwatch.compiler.ir import decimal_text

        return decimal_text(value) or f"{value.numerator}/{value.denominator}"
    return str(value)


def _end(trace: Mapping) -> datetime.date | None:
    return _day(trace["until"]) if trace.get("until") else None


def _check_var(e: Expectation, trace: Mapping) -> Outcome:
    day = e.when.first if e.when is not None else _end(trace)
    sets = [s for s in trace.get("steps", ()) if s.get("type") == "set" and s.get("var") == e.name
            and (day is None or _day(s["date"]) <= day)]
    if sets:
        last = sets[-1]
        actual = _trace_value(last, "value")
        why = f"set on {last['date']}" + (f" in {last['state']}" if last.get("state") else "")
    else:
        actual = e.default
        why = "its default: not set by then"
    if _same(e.value, actual):
        return Outcome(e, True)
    when = f"on {day}" if e.when is not None else "at the end"
    return Outcome(e, False, f"var {e.name} {when} is {_shown_value(actual)} ({why})")


def _check_value(e: Expectation, trace: Mapping) -> Outcome:
    day = e.when.first.isoformat() if e.when is not None else None
    that_day = [s for s in trace.get("steps", ()) if s.get("date") == day]
    decisions = [s for s in that_day if s.get("type") in ("transition", "unassessable")
                 and (e.track is None or s.get("track") == e.track)]
    seen = [(s, _trace_value(s["values"], e.name)) for s in decisions
            if isinstance(s.get("values"), Mapping) and e.name in s["values"]]
    if seen and all(_same(e.value, v) for _, v in seen):
        return Outcome(e, True)
    if seen:
        shown = "; ".join(f"{_shown_value(v)} ({_describe_step(s)})" for s, v in seen[:6])
        return Outcome(e, False, f"value {e.name} on {day}: {shown}")
    where = f" in track {e.track}" if e.track else ""
    if not decisions:
        return Outcome(e, False, f"no decision on {day}{where}")
    listed = ", ".join(_describe_step(s) + (" reading " + ", ".join(s["values"]) if s.get("values") else "")
                       for s in decisions[:6])
    return Outcome(e, False, f"no decision on {day}{where} read {e.name} ({listed})")


def _drug_at(e: Expectation, trace: Mapping) -> tuple[str, Any, list, str]:
    """The drug's (status, dose, held by, where from) at the end of the day asked (or of the replay)."""
    day = e.when.first if e.when is not None else None
    if day is None:
        final = (trace.get("drugs") or {}).get(e.name)
        if isinstance(final, Mapping) and e.held_by is None:
            return str(final.get("status")), _trace_value(final, "dose"), [], "at the end"
    acts = [s for s in trace.get("steps", ()) if s.get("type") == "action" and isinstance(s.get("drug"), Mapping)
            and s["drug"].get("name") == e.name and (day is None or _day(s["date"]) <= day)]
    if not acts:
        return "not_started", e.default, [], "no action on it by then"
    last = acts[-1]
    d = last["drug"]
    return (str(d.get("status")), _trace_value(d, "dose"), list(d.get("held_by") or ()),
            f"after action {last.get('action')} on {last['date']}")


def _check_drug(e: Expectation, trace: Mapping) -> Outcome:
    status, dose, held_by, why = _drug_at(e, trace)
    ok = ((e.kind is None or status == e.kind) and (not e.has_value or _same(e.value, dose))
          and (e.held_by is None or e.held_by in held_by))
    if ok:
        return Outcome(e, True)
    when = f"on {e.when.first}" if e.when is not None else "at the end"
    by = f" by {', '.join(held_by)}" if held_by and status == "held" else ""
    return Outcome(e, False, f"drug {e.name} {when}: {status}{by}, dose {_shown_value(dose)} ({why})")


def _final_states(trace: Mapping) -> list[str]:
    active = trace.get("final_states")
    if isinstance(active, list) and active:
        return [str(s) for s in active]
    return [str(trace.get("final_state"))] if trace.get("final_state") is not None else []


def _check_final_state(e: Expectation, trace: Mapping) -> Outcome:
    final = trace.get("final_state")
    active = _final_states(trace)
    within = set(e.within or (e.name,))
    ok = final in within or any(s in within for s in active)
    shown = f"final state {final}"
    if len(active) > 1 or (active and active[0] != final):
        shown += f" (active: {', '.join(active)})"
    return Outcome(e, ok, shown)


def _explain(e: Expectation, trace: Mapping, similar: list, found: list, names: Names | None = None) -> str:
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
            parts.append(f"nothing on {e.when.first} (state {_state_on(trace, e.when.first, names)})")
    return "; ".join(parts)


def _count_text(n: int) -> str:
    return {1: "once", 2: "twice"}.get(n, f"{n} times")


def _subject_text(e: Expectation) -> str:
    where = f" in track {e.track}" if e.track else ""
    if e.subject == "action":
        return f"action {e.name}" + (f" window {_fmt_window(e.window)}" if e.window else "") + where
    if e.subject == "transition":
        return f"transition {e.name} -> {e.target}{where}"
    if e.subject == "deviation":
        bits = ["deviation"]
        if e.kind:
            bits.append(e.kind)
        if e.name:
            bits.append(f"for {e.name}")
        if e.window:
            bits.append(f"window {_fmt_window(e.window)}")
        return " ".join(bits) + where
    if e.subject == "unassessable":
        return "unassessable" + (f" missing {', '.join(e.labs)}" if e.labs else "") + where
    if e.subject == "replaced":
        return f"replaced {e.name}"
    return f"{e.subject} {e.name}{where}"


def _state_on(trace: Mapping, day: datetime.date, names: Names | None = None) -> str:
    current = [v[0] for v in _visits(trace, names) if v[1] <= day <= v[2]]
    if names is not None and names.parents and current:
        atomic = [c for c in current if names.is_atomic(c)]
        return ", ".join(dict.fromkeys(atomic or current))
    return current[-1] if current else "none"


def _check_state(e: Expectation, trace: Mapping, names: Names | None = None) -> Outcome:
    visits = _visits(trace, names)
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
             and (e.window is None or _win(o.get("window")) == e.window)
             and (e.track is None or o.get("track") == e.track)]
    if e.count.holds(len(found)):
        return Outcome(e, True)
    shown = "; ".join(f"{o.get('action')} window {_fmt_window(o.get('window') or ('?', '?'))}"
                      + (f" in track {o['track']}" if o.get("track") else "") for o in orders)
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
    names = Names.of(graph)
    result.outcomes = [check(e, trace, names) for e in case.expectations]
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
