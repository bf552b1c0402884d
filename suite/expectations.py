"""The scenario expectation language: one line of a case file's `expect` list -> an Expectation.

The grammar is suite/expect.lark (docs/scenarios.md, "The expectation language"): an
expectation is a subject (`action order_lfts`, `state stopped`, `transition a -> b`,
`var dose_modified is true`, ...) with optional qualifiers before or after it, in any order: a
date (`on 2025-02-03`, `by`, `before`, `after`, `between D and D`, `from D to D`), a count
(`never`, `no`, `once`, `twice`, `N times`, `at least`/`at most N times`) and `in track T`.

    expect:
      - on 2025-02-03 action hold_anakinra
      - by 2025-03-01 state stopped
      - never action refer_hepatology
      - deviation overdue for order_lfts on 2025-04-02
      - unassessable on 2025-05-12 missing ALT, AST
      - order_lfts window 2025-04-06..2025-05-06
      - final state maintenance
      - on 2025-03-01 var dose_modified is true          # statecharts (format 3)
      - on 2025-03-01 value tx is 4.5
      - on 2025-03-01 drug tocilizumab held
      - on 2025-03-01 action order_cbc in track neutrophils
      - final states maintenance, neutrophils_routine

`parse_expectation(text, names, path=, line=, column=)` reads one line against what the
compiled protocol declares (`Names.of(graph)`) and returns an `Expectation`, or raises
`CaseError` with one located message (the line and column of the item in the YAML file): a
code E802-E811 and, for a misspelt word, the nearest one (did you mean). The lark parser (LALR,
contextual lexer) only knows the shapes; names, dates and values are checked here against the
graph, so every mistake gets the same words whatever the protocol.
"""

from __future__ import annotations

import dataclasses
import datetime
import re
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from functools import lru_cache
from importlib import resources
from typing import Any

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from rxwatch.compiler.diagnostics import did_you_mean
from rxwatch.compiler.span import Span
from rxwatch.simulator import units
from rxwatch.inputs.model import Message
from rxwatch.inputs.reader import parse_date

__all__ = [
    "Expectation", "When", "Count", "Names", "CaseError", "parse_expectation", "grammar_text",
    "DEVIATION_KINDS", "DRUG_STATUSES", "DRUG_READS", "UNKNOWN",
]

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

FOREVER_AGO = datetime.date.min
FOREVER = datetime.date.max
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
    track a held drug must be held by. `path`, `line`, `column` locate the item in the case
    file; `span` is the same place through the end of the text (one line).
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

    @property
    def span(self) -> Span:
        return Span(self.path, self.line, self.column, self.line, self.column + len(self.text))


class CaseError(Exception):
    """The case file is wrong; `messages` holds every error found in it (timeline included)."""

    def __init__(self, messages: list[Message]) -> None:
        super().__init__("\n".join(str(m) for m in messages))
        self.messages = messages


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
    read: dict = field(default_factory=dict, compare=False, repr=False)
    """The expectations already read against these names, by text (a suite repeats many lines)."""

    @classmethod
    def of(cls, graph: Any) -> "Names":
        """The names of a compiled graph (computed once per graph object: a graph is not
        changed after it is compiled)."""
        try:
            return _NAMES[graph]
        except (KeyError, TypeError):
            pass
        names = cls._of(graph)
        try:
            _NAMES[graph] = names
        except TypeError:  # not weakly referable: no cache
            pass
        return names

    @classmethod
    def _of(cls, graph: Any) -> "Names":
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


_NAMES: "weakref.WeakKeyDictionary[Any, Names]" = weakref.WeakKeyDictionary()


# ---------------------------------------------------------------------------- values

NUMBER_WORD = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_RATIO_WORD = re.compile(r"([+-]?\d{1,40})/(\d{1,40})")


def normal(x: Fraction) -> Any:
    """A fraction as an int when it is whole."""
    return x.numerator if x.denominator == 1 else x


def exact_or_none(value: Any) -> Any:
    try:
        return units.exact(value)
    except ValueError:
        return None


def declared(value: Any) -> Any:
    """A declared default as the graph stores it (a JSON literal: bool, a name, or a number as an
    int, a float or a decimal text), exactly."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return units.exact(value)
    if isinstance(value, str) and NUMBER_WORD.fullmatch(value):
        return units.exact(value)
    return value


# ---------------------------------------------------------------------------- the parser

_GRAMMAR = ("action ACTION, ACTION window FROM..TO, state STATE, enter STATE, transition STATE -> STATE, "
            "stay STATE, rule RULE-ID, deviation [KIND] [for ACTION], unassessable [missing LAB, ...], "
            "replaced LAB, final state STATE, final states STATE, ..., final order ACTION, "
            "var VAR is VALUE, value NAME is VALUE, drug DRUG STATUS [dose LEVEL], preempted RULE-ID")
_SUBJECT_WORDS = ("action", "state", "enter", "transition", "stay", "rule", "preempted", "deviation",
                  "unassessable", "replaced", "final", "var", "value", "drug")
_WHEN_ONE = ("on", "by", "before", "after")
_WHEN_TWO = {"between": "and", "from": "to"}
_TRACKED = ("action", "transition", "stay", "rule", "preempted", "deviation", "unassessable", "value", "final_order")


@lru_cache(maxsize=1)
def grammar_text() -> str:
    return resources.files("rxwatch.suite").joinpath("expect.lark").read_text(encoding="utf-8")


@lru_cache(maxsize=1)
def _lark() -> Lark:
    return Lark(grammar_text(), parser="lalr", lexer="contextual", maybe_placeholders=False, cache=True)


class _Bad(Exception):
    def __init__(self, code: str, text: str) -> None:
        super().__init__(text)
        self.code = code
        self.text = text


def parse_expectation(text: str, names: Names, *, path: str = "<string>", line: int = 0,
                      column: int = 0) -> Expectation:
    """Read one expectation; raises CaseError with one located message if it does not read."""
    known = names.read.get(text)
    if known is not None:
        return dataclasses.replace(known, path=path, line=line, column=column)
    try:
        e = _read(text, names, path, line, column)
    except _Bad as bad:
        raise CaseError([Message(path, line, f"expectation '{text}': {bad.text}", "error", bad.code, column)]) from None
    if len(names.read) < 100_000:
        names.read[text] = e
    return e


def _read(text: str, names: Names, path: str, line: int, column: int) -> Expectation:
    if not text.strip():
        raise _Bad(E_SYNTAX, f"an expectation is empty; write one of {_GRAMMAR}")
    try:
        tree = _lark().parse(text)
    except UnexpectedInput as exc:
        raise _syntax(text, exc, names) from None
    quals: list[Tree] = []
    subject: Tree | None = None
    for child in tree.children:
        if child.data == "quals":
            quals.extend(child.children)
        else:
            subject = child
    assert subject is not None
    inner = [c for c in subject.children if isinstance(c, Tree) and c.data == "quals"]
    for q in inner:
        quals.extend(q.children)
    quals.sort(key=lambda q: _first_token(q).start_pos)
    when = _when(quals)
    count = _count(quals, subject)
    track_words = [q for q in quals if q.data == "track"]
    if len(track_words) > 1:
        raise _Bad(E_SYNTAX, f"unexpected '{_words_of(track_words[1])}' after '{_words_of(track_words[0])}'")
    track = str(track_words[0].children[2]) if track_words else None
    fields = _subject(subject, names)
    subject_name = fields["subject"]
    if subject_name in ("final_state", "final_states", "final_order") and when is not None:
        raise _Bad(E_SYNTAX, f"'final' is the end of the replay; it takes no '{when.words}'")
    if subject_name in ("final_state", "final_states") and count is not None:
        shown = subject_name.replace("_", " ")
        raise _Bad(E_SYNTAX, f"'{count.words}' does not apply to '{shown}' (the end of the replay is one moment)")
    if subject_name in ("var", "value", "drug"):
        what = {"var": "a variable's value", "value": "a derived value", "drug": "a drug's status"}[subject_name]
        if count is not None:
            raise _Bad(E_POINT, f"'{count.words}': {what} is checked on one day, it is not counted "
                       "(write 'on DATE', or nothing for the end of the replay)")
        if when is not None and not when.words.startswith("on "):
            raise _Bad(E_POINT, f"'{when.words}': {what} is checked on one day; write 'on DATE'"
                       + ("" if subject_name == "value" else " (or nothing: at the end of the replay)"))
        if subject_name == "value" and when is None:
            raise _Bad(E_POINT, "a derived value is the one a decision saw on a day: write 'on DATE'")
    if track is not None:
        if subject_name not in _TRACKED:
            shown = {"final_state": "final state", "final_states": "final states",
                     "final_order": "final order"}.get(subject_name, subject_name)
            raise _Bad(E_TRACK, f"'in track {track}' narrows the steps of a track (action, transition, stay, rule, "
                       f"preempted, deviation, unassessable, value) or the orders open at the end; '{shown}' has none")
        fields["track"] = _name(track, names.tracks, "track")
    return Expectation(text.strip(), path, line, column, when=when, count=count or Count(), **fields)


def _first_token(tree: Tree) -> Token:
    for t in tree.scan_values(lambda v: isinstance(v, Token)):
        return t
    raise AssertionError("an empty qualifier")


def _words_of(tree: Tree) -> str:
    return " ".join(str(t) for t in tree.scan_values(lambda v: isinstance(v, Token)))


# ---------------------------------------------------------------------------- qualifiers

def _date(word: str) -> datetime.date:
    day = parse_date(word) if re.fullmatch(r"\d{4}-\d\d-\d\d", word) else None
    if day is None:
        raise _Bad(E_DATE, f"'{word}' is not an ISO 8601 date (YYYY-MM-DD)")
    return day


def _when(quals: list[Tree]) -> When | None:
    found: When | None = None
    for q in quals:
        if q.data not in ("on", "by", "before", "after", "between", "from_to"):
            continue
        words = _words_of(q)
        if q.data in ("between", "from_to"):
            word, a, joiner, b = (str(t) for t in q.children)
            first, last = _date(a), _date(b)
            dates: tuple = (first, last)
            if last < first:
                raise _Bad(E_DATE, f"'{word} {a} {joiner} {b}' ends before it starts")
        else:
            day = _date(str(q.children[1]))
            dates = (day,)
            if q.data == "on":
                first, last = day, day
            elif q.data == "by":
                first, last = FOREVER_AGO, day
            elif q.data == "before":  # an empty range for the first day there is
                first, last = (FOREVER_AGO, day - _ONE_DAY) if day > FOREVER_AGO else (FOREVER, FOREVER_AGO)
            else:
                first, last = (day + _ONE_DAY, FOREVER) if day < FOREVER else (FOREVER, FOREVER_AGO)
        if found is not None:
            raise _Bad(E_SYNTAX, f"two dates to meet ('{found.words}' and '{words}'); write one")
        found = When(first, last, words, dates)
    return found


def _count(quals: list[Tree], subject: Tree) -> Count | None:
    counts: list[Count] = []
    for q in quals:
        words = _words_of(q)
        if q.data == "never":
            counts.append(Count(0, 0, words))
        elif q.data in ("once", "twice"):
            n = 1 if q.data == "once" else 2
            counts.append(Count(n, n, words))
        elif q.data == "times":
            n = int(str(q.children[0]))
            counts.append(Count(n, n, words))
        elif q.data == "at_least":
            counts.append(Count(int(str(q.children[2])), None, words))
        elif q.data == "at_most":
            counts.append(Count(0, int(str(q.children[2])), words))
    if subject.data == "final_order":  # final no order
        for t in subject.children:
            if isinstance(t, Token) and t.type in ("NEVER", "NO"):
                counts.insert(0, Count(0, 0, str(t)))
    if len(counts) > 1:
        raise _Bad(E_SYNTAX, f"two counts ('{counts[0].words}' and '{counts[1].words}'); write one")
    return counts[0] if counts else None


# ---------------------------------------------------------------------------- subjects

def _name(word: str, declared_names: Sequence[str], kind: str) -> str:
    if word in declared_names:
        return word
    hint = did_you_mean(word, declared_names)
    if not declared_names:
        raise _Bad(E_NAME, f"unknown {kind} '{word}' (the protocol declares no {kind}s)")
    listing = "" if hint or len(declared_names) > 12 else f" (the protocol declares {', '.join(declared_names)})"
    raise _Bad(E_NAME, f"unknown {kind} '{word}'{hint}{listing}")


def _window(tree: Tree) -> tuple[datetime.date, datetime.date]:
    _, first, _, last = (str(t) for t in tree.children)
    a, b = _date(first), _date(last)
    if b < a:
        raise _Bad(E_DATE, f"window {first}..{last} ends before it starts")
    return a, b


def _parts(tree: Tree) -> tuple[list[Token], Tree | None]:
    """A subject's tokens (qualifiers inside it left out) and its window, if any."""
    tokens = [c for c in tree.children if isinstance(c, Token)]
    window = next((c for c in tree.children if isinstance(c, Tree) and c.data == "window"), None)
    return tokens, window


def _subject(tree: Tree, names: Names) -> dict:
    kind = tree.data
    toks, window = _parts(tree)
    words = [str(t) for t in toks]
    out: dict[str, Any]
    if kind == "final_state":
        name = _name(words[2], (*names.states, *names.tracks), "state")
        return {"subject": "final_state", "name": name, "within": names.within(name)}
    if kind == "final_states":
        states = tuple(_name(w, (*names.states, *names.tracks), "state") for w in words[2:])
        for state in states:
            if not names.is_atomic(state):
                raise _Bad(E_FINAL_STATES, f"'final states' lists the active atomic states; '{state}' is a "
                           f"{names.types.get(state)} state (write 'final state {state}': {state} active at the end)")
        if len(set(states)) != len(states):
            raise _Bad(E_SYNTAX, "'final states' names a state twice")
        return {"subject": "final_states", "states": states}
    if kind == "final_order":
        out = {"subject": "final_order"}
        named = [t for t in toks if t.type == "WORD"]
        if named:
            out["name"] = _name(str(named[0]), names.actions, "action")
        if window is not None:
            out["window"] = _window(window)
        return out
    if kind in ("action", "bare_action"):
        out = {"subject": "action", "name": _name(words[1] if kind == "action" else words[0], names.actions, "action")}
        if window is not None:
            out["window"] = _window(window)
        return out
    if kind == "state":
        head = words[0]
        declared_names = (*names.states, *names.tracks) if head in ("state", "enter") else names.states
        name = _name(words[1], declared_names, "state")
        out = {"subject": head, "name": name}
        if head == "state":
            out["within"] = names.within(name)
        return out
    if kind == "transition":
        src, dst = (words[1], words[3]) if words[0] == "transition" and toks[0].type == "TRANSITION" else (words[0], words[2])
        return {"subject": "transition", "name": _name(src, names.states, "state"),
                "target": _name(dst, names.states, "state")}
    if kind == "rule":
        name = _name(words[1], names.rules, "rule")
        return {"subject": words[0], "name": name, "rules": names.rule_edges.get(name, frozenset((name,)))}
    if kind == "var":
        name = words[1]
        if name not in names.vars and name in names.lets:
            raise _Bad(E_SYNTAX, f"'{name}' is a derived value (let): write 'value {name} is ...'")
        name = _name(name, tuple(names.vars), "variable")
        return {"subject": "var", "name": name, "value": _value(words[3], _var_kind(names.vars[name]), f"var {name}"),
                "has_value": True, "default": declared(names.vars[name].get("default"))}
    if kind == "value":
        name = words[1]
        return {"subject": "value", "name": name, "value": _value(words[3], _read_kind(name, names), f"value {name}"),
                "has_value": True}
    if kind == "drug":
        return _drug(tree, names)
    if kind == "deviation":
        out = {"subject": "deviation"}
        i = 1
        if i < len(toks) and toks[i].type == "WORD":
            out["kind"] = _name(words[i], DEVIATION_KINDS, "deviation kind")
            i += 1
        if i < len(toks) and toks[i].type == "FOR":
            out["name"] = _name(words[i + 1], names.actions, "action")
        if window is not None:
            out["window"] = _window(window)
        return out
    if kind == "unassessable":
        out = {"subject": "unassessable"}
        labs = [str(t) for t in toks if t.type == "WORD"]
        if labs:
            out["labs"] = tuple(_name(w, names.labs, "lab") for w in labs)
        return out
    if kind == "replaced":
        return {"subject": "replaced", "name": _name(words[1], names.labs, "lab")}
    raise AssertionError(f"a subject the grammar has and the reader does not: {kind}")


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


def _value(word: str, kind: tuple[str, tuple[str, ...]], what: str) -> Any:
    typ, members = kind
    if word == "unknown":
        return UNKNOWN
    if word in ("true", "false"):
        if typ != "bool":
            raise _Bad(E_VALUE, f"{what} is {_kind_text(kind)}, not {word}")
        return word == "true"
    ratio = _RATIO_WORD.fullmatch(word)
    if NUMBER_WORD.fullmatch(word) or ratio:
        try:  # a decimal, or a ratio p/q for a value with no finite decimal (100/33)
            number = units.exact(word) if not ratio else normal(Fraction(int(ratio[1]), int(ratio[2])))
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


def _drug(tree: Tree, names: Names) -> dict:
    """`drug DRUG [STATUS] [dose LEVEL [UNIT]] [by TRACK]` (at least a status or a dose)."""
    toks = [c for c in tree.children if isinstance(c, Token)]
    status = next((c for c in tree.children if isinstance(c, Tree) and c.data == "drug_status"), None)
    name = _name(str(toks[1]), tuple(names.drugs), "drug")
    decl = names.drugs[name]
    out: dict[str, Any] = {"subject": "drug", "name": name}  # before any action: not started, no dose
    if status is not None:
        word = str(status.children[0])
        if word not in DRUG_STATUSES:
            raise _Bad(E_DRUG, f"'{word}' is not a drug status; write {', '.join(DRUG_STATUSES)}"
                       + did_you_mean(word, DRUG_STATUSES))
        out["kind"] = word
    types = [t.type for t in toks]
    if "DOSE" in types:
        i = types.index("DOSE")
        level = str(toks[i + 1])
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
            x = exact_or_none(level) if NUMBER_WORD.fullmatch(level) else None
            if x is None or (levels and all(exact_or_none(v) != x for v in levels)):
                raise _Bad(E_DRUG, f"{name} has no dose level {level} (its levels: {shown})")
            out["value"] = x
        out["has_value"] = True
        if i + 2 < len(toks) and toks[i + 2].type == "WORD":  # `dose 4 mg/kg`: the drug's own unit may be written
            unit = decl.get("unit")
            if not (unit and units.same_unit(str(toks[i + 2]), unit)):
                after = " ".join(str(t) for t in toks[:i + 2])
                rest = " ".join(str(t) for t in toks[i + 2:])
                raise _Bad(E_SYNTAX, f"unexpected '{rest}' after '{after}'")
    if "BY" in types:
        if out.get("kind") not in (None, "held"):
            raise _Bad(E_DRUG, f"'by TRACK' says which track holds the drug: write 'drug {name} held by TRACK'")
        out["kind"] = "held"
        out["held_by"] = _name(str(toks[types.index("BY") + 1]), names.tracks, "track")
    if "kind" not in out and "value" not in out:
        raise _Bad(E_SYNTAX, f"write 'drug {name} STATUS' ({', '.join(DRUG_STATUSES)}) or 'drug {name} dose LEVEL'")
    return out


# ---------------------------------------------------------------------------- what a syntax error means

_WORDS = re.compile(r"->|\.\.|,|(?:[^\s.\-,]|-(?!>)|\.(?!\.))+")
_NEEDS = {  # what a subject word needs after it, said when the expectation ends there
    "action": "an action", "actions": "an action", "state": "a state", "enter": "a state", "stay": "a state",
    "rule": "a rule id such as STATE/0/1", "preempted": "a rule id such as STATE/0/1", "replaced": "a lab",
    "var": "a variable", "value": "a derived value (a let, or a drug read such as dose(DRUG))", "drug": "a drug",
    "transition": "'STATE -> STATE'",
}
_VALUE_KINDS = "(a number, true, false, a member's name, or unknown)"


def _leading_qualifiers(words: list[str]) -> int:
    """How many of `words` are the qualifiers written before the subject."""
    i = 0
    while i < len(words):
        w = words[i]
        if w in _WHEN_ONE and i + 1 < len(words):
            i += 2
        elif w in _WHEN_TWO and i + 3 < len(words):
            i += 4
        elif w in ("never", "no", "once", "twice"):
            i += 1
        elif w.isdigit() and i + 1 < len(words) and words[i + 1] == "times":
            i += 2
        elif w == "at" and i + 3 < len(words) and words[i + 1] in ("least", "most"):
            i += 4
        elif w == "in" and i + 2 < len(words) and words[i + 1] == "track":
            i += 3
        else:
            break
    return i


def _syntax(text: str, exc: UnexpectedInput, names: Names) -> _Bad:
    """The old reader's words for a line the grammar does not accept: what the word before the
    mistake needed, or what follows that should not."""
    if isinstance(exc, UnexpectedToken) and exc.token.type != "$END":
        pos = exc.token.start_pos or 0
    elif isinstance(exc, UnexpectedCharacters):
        pos = exc.pos_in_stream
    else:  # the end
        pos = len(text)
    before = _WORDS.findall(text[:pos])
    rest = _WORDS.findall(text[pos:])
    if not rest:  # the end, after the start of a count that is not one (`is 4 5`, `action x at least`)
        for size in (3, 2, 1):
            tail = before[-size:]
            if len(before) > size and (tail[0].isdigit() if size == 1 else tail[0] == "at") and \
                    (size == 1 or tail[1] in ("least", "most")) and (size < 3 or tail[2].isdigit()):
                before, rest = before[:-size], tail
                break
    tok = rest[0] if rest else None
    prev = before[-1] if before else None
    body = before[_leading_qualifiers(before):]
    head = body[0] if body else None
    name_taking = len(body) >= 2 and body[-2] in (*_NEEDS, "for", "by", "track", "missing")
    # dates
    if len(before) >= 2 and before[-2] in _WHEN_TWO:
        word, nxt = before[-2], before[-1]
        return _Bad(E_SYNTAX, f"write '{word} {nxt} {_WHEN_TWO[word]} YYYY-MM-DD'")
    if len(before) >= 3 and before[-3] in _WHEN_TWO and before[-1] == _WHEN_TWO[before[-3]]:
        return _Bad(E_SYNTAX, f"write '{before[-3]} {before[-2]} {before[-1]} YYYY-MM-DD'")
    if prev in (*_WHEN_ONE, *_WHEN_TWO) and not name_taking and not (head == "drug" and prev in ("on", "by")):
        after = f", not '{tok}'" if tok is not None else ""
        return _Bad(E_DATE, f"'{prev}' takes a date (YYYY-MM-DD){after}")
    # counts
    if tok is not None and len(rest) > 1 and rest[1] == "times" and not tok.isdigit():
        return _Bad(E_SYNTAX, f"'{tok} times': the count is a whole number")
    if tok == "times" and prev is not None and not prev.isdigit():
        return _Bad(E_SYNTAX, f"'{prev} times': the count is a whole number")
    if "window" in before[-3:]:
        return _Bad(E_SYNTAX, "write 'window YYYY-MM-DD..YYYY-MM-DD'")
    if len(before) >= 2 and before[-2:] == ["in", "track"]:
        return _Bad(E_SYNTAX, "'in track' needs a track's name")
    if head is None:
        if tok is None:
            return _Bad(E_SYNTAX, f"nothing to expect; write one of {_GRAMMAR}")
        return _cannot_read(tok, names)
    if head == "final":
        what = body[1] if len(body) > 1 else tok
        if what is not None and what in ("never", "no"):
            what = body[2] if len(body) > 2 else tok
        if what is None:
            return _Bad(E_SYNTAX, "'final' needs 'state STATE' or 'order ACTION'")
        if what == "state" and len(body) >= 3 and tok == ",":
            return _Bad(E_SYNTAX, "'final state' names one state; for all the active states write 'final states A, B'")
        if what == "state" and len(body) == 2 and tok is None:
            return _Bad(E_SYNTAX, "'final state' needs a state")
        if what == "states" and len(body) == 2:
            return _Bad(E_SYNTAX, "'final states' needs the active states, such as 'final states A, B'")
        if what in ("var", "drug"):
            return _Bad(E_SYNTAX, f"write '{what} ...' without 'final': without a date it is the value at the end")
        if what not in ("state", "states", "order", "orders"):
            return _Bad(E_SYNTAX, "'final' is followed by 'state STATE', 'states STATE, ...' or 'order ACTION', "
                        f"not '{what}'")
    if head not in _SUBJECT_WORDS and head not in ("actions", "deviations") and len(body) == 1 and tok != "->":
        return _cannot_read(head, names)
    if head == "transition" or (len(body) >= 2 and body[1] == "->"):
        src = body[1] if head == "transition" and len(body) > 1 else body[0]
        if head == "transition" and len(body) == 2 and tok != "->":
            if tok is None:
                return _Bad(E_SYNTAX, f"'transition {src}' needs '-> STATE'")
            return _Bad(E_SYNTAX, f"write 'transition {src} -> STATE'")
        if prev == "->" and tok is None:
            return _Bad(E_SYNTAX, f"'transition {src} ->' needs a state after '->'")
    if head in ("var", "value") and len(body) == 2:
        return _Bad(E_SYNTAX, f"write '{head} {body[1]} is VALUE' {_VALUE_KINDS}")
    if head in ("var", "value") and len(body) == 3 and tok is None:
        return _Bad(E_SYNTAX, f"'{' '.join(body)}' needs a value {_VALUE_KINDS}")
    if tok is None:
        if len(body) == 1 and head in _NEEDS:
            return _Bad(E_SYNTAX, f"'{head}' needs {_NEEDS[head]}")
        if prev == "missing":
            return _Bad(E_SYNTAX, "'missing' needs lab names, such as 'missing ALT, AST'")
        if prev == "for":
            return _Bad(E_SYNTAX, "'deviation for' needs an action")
        if prev == "dose" and head == "drug":
            return _Bad(E_SYNTAX, f"'drug {body[1]} dose' needs a dose level")
        if prev == "by" and head == "drug":
            return _Bad(E_SYNTAX, "'held by' needs a track")
        if prev == ",":
            return _Bad(E_SYNTAX, f"'{' '.join(body)}' needs a name after the comma")
    shown = " ".join(rest) if rest else "the end"
    return _Bad(E_SYNTAX, f"unexpected '{shown}' after '{' '.join(body) or ' '.join(before)}'")


def _cannot_read(head: str, names: Names) -> _Bad:
    if head in names.actions:
        hint = f"; to expect the action write 'action {head}'"
    elif head in names.states:
        hint = f"; to expect the state write 'state {head}'"
    else:
        hint = did_you_mean(head, [*_SUBJECT_WORDS, "never", "once", "twice", *_WHEN_ONE, "between", "from"])
    if hint:
        return _Bad(E_SYNTAX, f"cannot read '{head}'{hint}")
    return _Bad(E_SYNTAX, f"cannot read '{head}'; write one of {_GRAMMAR}, with an optional date "
                "(on/by/before/after DATE, between DATE and DATE) and count (never, once, twice, N times)")
