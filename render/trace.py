"""One patient's path over the flowchart: a trace (contracts/trace.md) checked against the graph.

`overlay(graph, trace)` reads the dict that `rxwatch simulate --format json` writes and returns
the states entered and the rules that fired, numbered in order with their dates; the days a
decision was not assessable (step `unassessable`, with the missing labs) and the deviations
(`overdue`, `still_overdue`, `incomplete`), each under the state the patient was in. A trace
from another protocol, or one naming states, rules or labs the protocol does not have, raises
TraceError with the place in the trace (`steps[3].to`); `locate(text, where)` turns that place
into a line of the trace file.
"""

from __future__ import annotations

import datetime
import json
import re
from dataclasses import dataclass, field

from rxwatch.compiler import ir
from rxwatch.simulator.trace import STEP_TYPES as SIMULATOR_STEP_TYPES

MAX_DEPTH = 32
"""Levels of objects and lists a trace nests at most (a trace of `rxwatch simulate` has 5)."""

MAX_DIGITS = ir.MAX_DIGITS
"""Digits of a JSON number in a trace at most (as a protocol's numbers)."""

_SURROGATE = re.compile("[\ud800-\udfff]")  # not text (`\\ud800` in JSON): refused; control characters are escaped where shown

# the simulator's step types, and `panel` (a day's results), which other producers may write
STEP_TYPES = (*SIMULATOR_STEP_TYPES, "panel")


class TraceError(Exception):
    """A trace that does not fit the protocol. `where`: a path into the trace, e.g. ("steps", 3, "to")."""

    def __init__(self, message: str, where: tuple = ()):
        super().__init__(message)
        self.message = message
        self.where = where

    def place(self) -> str:
        out = ""
        for part in self.where:
            out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
        return out


@dataclass
class Visit:
    number: int  # 0 for the start, else the number of the transition that led here
    date: str


@dataclass
class Unassessed:
    """A day a decision could not be decided for lack of results."""

    date: str
    missing: list[str]


@dataclass
class Deviation:
    date: str
    kind: str  # overdue / still_overdue / incomplete (a later trace may add kinds)
    action: str


@dataclass
class Overlay:
    patient: str
    start: str
    until: str
    final_state: str | None
    visits: dict[str, list[Visit]] = field(default_factory=dict)  # state -> entries, in order
    taken: dict[str, list[Visit]] = field(default_factory=dict)  # rule key -> firings, in order
    steps: list[dict] = field(default_factory=list)  # every step, with `number` on transitions
    # (state, handler index) -> the days that decision was not assessable
    unassessed: dict[tuple[str, int], list[Unassessed]] = field(default_factory=dict)
    deviations: dict[str, list[Deviation]] = field(default_factory=dict)  # state -> deviations while in it

    def to_dict(self) -> dict:
        return {
            "patient": self.patient,
            "start": self.start,
            "until": self.until,
            "final_state": self.final_state,
            "steps": self.steps,
        }


def read(text: str):
    """The JSON of a trace file, read defensively (the file is untrusted): NaN and Infinity,
    a number of more than MAX_DIGITS digits, nesting deeper than MAX_DEPTH, and a text holding
    a lone surrogate (`\\ud800`, which is not text) raise TraceError, located by its place in the
    trace where there is one; text that is not JSON raises json.JSONDecodeError. (A control
    character is kept: every output escapes it where it shows.)"""
    def number(token: str):
        if len(token.lstrip("-").replace(".", "").split("e")[0].split("E")[0]) > MAX_DIGITS or len(token) > 2 * MAX_DIGITS:
            raise TraceError(f"a number of {len(token):,} characters (a trace's numbers have at most {MAX_DIGITS} digits)")
        return token

    def constant(name: str):
        raise TraceError(f"{name} is not a number a trace holds")

    try:
        data = json.loads(text, parse_int=lambda t: int(number(t)), parse_float=lambda t: float(number(t)),
                          parse_constant=constant)
    except RecursionError:
        raise TraceError(f"nested more than {MAX_DEPTH} levels deep (a trace nests 5)") from None
    _texts(data)
    return data


def _texts(data) -> None:
    """TraceError at the first key or text with a lone surrogate, or
    at a list or object nested deeper than MAX_DEPTH."""
    stack: list[tuple[tuple, object]] = [((), data)]
    while stack:
        where, value = stack.pop()
        if len(where) > MAX_DEPTH:
            raise TraceError(f"nested more than {MAX_DEPTH} levels deep (a trace nests 5)", where[:MAX_DEPTH])
        if isinstance(value, str):
            m = _SURROGATE.search(value)
            if m:
                raise TraceError(f"a text holds the character \\u{ord(m.group()):04x}, which no trace has", where)
        elif isinstance(value, dict):
            for k, v in value.items():
                if _SURROGATE.search(k):
                    raise TraceError(f"a key holds the character \\u{ord(_SURROGATE.search(k).group()):04x}, which no trace has", where)
                stack.append(((*where, k), v))
        elif isinstance(value, list):
            stack.extend(((*where, i), v) for i, v in enumerate(value))


def _iso(value, where, what: str) -> str:
    """An ISO date of the trace contract (a date the calendar has: 0001-01-01..9999-12-31)."""
    if not isinstance(value, str):
        raise TraceError(f"{what} must be an ISO date (YYYY-MM-DD), not {type(value).__name__}", where)
    try:
        if len(value) != 10:
            raise ValueError
        datetime.date.fromisoformat(value)
    except ValueError:
        raise TraceError(f"{what} must be an ISO date (YYYY-MM-DD), not {_show(value)}", where) from None
    return value


def _need(obj, key, types, where, what):
    if not isinstance(obj, dict) or key not in obj:
        raise TraceError(f"missing '{key}' ({what})", where)
    v = obj[key]
    if not isinstance(v, types):
        raise TraceError(f"'{key}' must be {what}, not {type(v).__name__}", (*where, key))
    return v


# the types of a step's fields that the simulator writes (contracts/trace.md), where present and
# not null: a field of another type is refused here, so that nothing drawing a trace meets it
_FIELD_TYPES: dict[str, tuple[type, str]] = {
    **dict.fromkeys(("action", "because", "kind", "event", "fact", "alternative", "var", "trigger", "track",
                     "state", "from", "to"), (str, "text")),
    **dict.fromkeys(("drug", "values"), (dict, "an object")),
    **dict.fromkeys(("citations", "preempted"), (list, "a list")),
    **dict.fromkeys(("replaced", "results"), (list, "a list of results")),
    **dict.fromkeys(("window", "sources"), (list, "a list of texts")),
    **dict.fromkeys(("options", "withdrawn"), (list, "a list of action names")),
    "missing": (list, "a list of lab names"),
    **dict.fromkeys(("stay", "repeat", "preferred"), (bool, "true or false")),
}
_NAME_LISTS = ("window", "sources", "options", "withdrawn", "missing")  # lists of texts


def _fields(step: dict, where: tuple) -> None:
    """Each field of `step` that the contract types is of its type (None: as if absent)."""
    for key, (types, what) in _FIELD_TYPES.items():
        v = step.get(key)
        if v is None:
            continue
        if not isinstance(v, types):
            raise TraceError(f"'{key}' must be {what}, not {_show(v) if isinstance(v, str) else type(v).__name__}",
                             (*where, key))
        if key in _NAME_LISTS and not all(isinstance(x, str) for x in v):
            raise TraceError(f"'{key}' must be {what}", (*where, key))
    line = step.get("line")
    if line is not None and (isinstance(line, bool) or not isinstance(line, int) or line < 0):
        raise TraceError("'line' must be a line number", (*where, "line"))
    if step.get("ordered") is not None:
        _iso(step["ordered"], (*where, "ordered"), "'ordered'")


def overlay(graph, trace) -> Overlay:
    """Check `trace` against `graph` and number the path it took. Raises TraceError."""
    if not isinstance(trace, dict):
        raise TraceError("a trace is a JSON object with 'protocol' and 'steps' (see `rxwatch simulate --format json`)")
    proto = _need(trace, "protocol", dict, (), "an object with the protocol's name and version")
    name = _need(proto, "name", str, ("protocol",), "a string")
    g = graph.graph
    if name != g.get("name"):
        raise TraceError(f"this trace is from protocol '{name}', not '{g.get('name')}'", ("protocol", "name"))
    version = proto.get("version")
    if version is not None and g.get("version") and version != g.get("version"):
        raise TraceError(f"this trace is from version {version} of '{name}', the protocol is version {g.get('version')}",
                         ("protocol", "version"))
    steps = _need(trace, "steps", list, (), "a list of steps")
    # the contract's other top-level keys, where present, are of their types
    for key in ("start", "until"):
        if key in trace:
            _iso(trace[key], (key,), f"'{key}'")
    if "patient" in trace and not isinstance(trace["patient"], str):
        raise TraceError(f"'patient' must be text, not {type(trace['patient']).__name__}", ("patient",))
    for key in ("open_orders", "warnings"):
        if key in trace and not isinstance(trace[key], list):
            raise TraceError(f"'{key}' must be a list, not {type(trace[key]).__name__}", (key,))
    if trace.get("final_state") is not None and not isinstance(trace["final_state"], str):
        raise TraceError("'final_state' must be a state name", ("final_state",))
    edges = {k: (u, v, d) for u, v, k, d in graph.edges(keys=True, data=True)}
    ov = Overlay(
        patient=str(trace.get("patient", "")),
        start=str(trace.get("start", "")),
        until=str(trace.get("until", "")),
        final_state=trace.get("final_state") if isinstance(trace.get("final_state"), str) else None,
    )
    number = 0
    last_date = ""
    chart = any(d.get("type") not in (None, "atomic") for _, d in graph.nodes(data=True))  # a statechart
    current: str | None = None  # the state the patient is in
    labs = g.get("labs", {})
    for i, step in enumerate(steps):
        where = ("steps", i)
        if not isinstance(step, dict):
            raise TraceError("a step is an object", where)
        kind = _need(step, "type", str, where, "a string")
        date = _iso(_need(step, "date", str, where, "an ISO date"), (*where, "date"), "'date'")
        _fields(step, where)
        if isinstance(step.get("window"), list):
            if len(step["window"]) != 2:
                raise TraceError("'window' must be [from, to]", (*where, "window"))
            for j, day in enumerate(step["window"]):
                _iso(day, (*where, "window", j), "a window's date")
        if kind not in STEP_TYPES:
            raise TraceError(f"unknown step type '{kind}' (one of {', '.join(STEP_TYPES)})", (*where, "type"))
        if date < last_date:
            raise TraceError(f"dates never decrease in a trace, but {date} follows {last_date}", (*where, "date"))
        last_date = date
        out = dict(step)
        if kind == "enter":
            state = _state(graph, step, "state", where)
            current = state
            if number == 0 and (not ov.visits or chart):
                # the start (in a statechart: every state the start enters, the tracks' too)
                if not ov.visits.get(state):
                    ov.visits.setdefault(state, []).append(Visit(0, date))
            elif chart:
                # a state entered with a transition's target (an initial child, a track's state)
                seen = ov.visits.setdefault(state, [])
                if not seen or seen[-1].number != number:
                    seen.append(Visit(number, date))
        elif kind == "transition":
            src = _state(graph, step, "from", where)
            dst = _state(graph, step, "to", where)
            key = _rule(graph, edges, step, src, dst, where)
            number += 1
            out["number"] = number
            out["rule"] = key
            ov.taken.setdefault(key, []).append(Visit(number, date))
            if not edges[key][2].get("stay"):
                ov.visits.setdefault(dst, []).append(Visit(number, date))
            current = dst
        elif kind == "action":
            if "state" in step:
                _state(graph, step, "state", where)
            action = _need(step, "action", str, where, "an action name")
            if action not in g.get("actions", {}):
                raise TraceError(f"'{action}' is not an action of '{name}'", (*where, "action"))
        elif kind == "unassessable":
            state = _state(graph, step, "state", where)
            missing = _need(step, "missing", list, where, "a list of lab names")
            for j, lab in enumerate(missing):
                if not isinstance(lab, str) or lab not in labs:
                    raise TraceError(f"{_show(lab)} is not a lab of '{name}'", (*where, "missing", j))
            owner, hi = _handler(graph, edges, step, state, where)
            ov.unassessed.setdefault((owner, hi), []).append(Unassessed(date, list(missing)))
        elif kind == "deviation":
            dev = _need(step, "kind", str, where, "a string (overdue, still_overdue, incomplete)")
            action = _need(step, "action", str, where, "an action name")
            if action not in g.get("actions", {}):
                raise TraceError(f"'{action}' is not an action of '{name}'", (*where, "action"))
            if current is not None:
                ov.deviations.setdefault(current, []).append(Deviation(date, dev, action))
        elif kind == "panel":
            for key in ("results", "replaced"):
                results = step.get(key, [])
                if not isinstance(results, list):
                    raise TraceError(f"'{key}' must be a list of results", (*where, key))
                for j, res in enumerate(results):
                    if not isinstance(res, dict) or not isinstance(res.get("lab"), str):
                        raise TraceError("a result is an object with a 'lab'", (*where, key, j))
        ov.steps.append(out)
    if ov.final_state is not None and ov.final_state not in graph:
        raise TraceError(f"'{ov.final_state}' is not a state of '{name}'", ("final_state",))
    return ov


def _show(v) -> str:
    text = repr(v) if not isinstance(v, str) else f"'{v}'"
    return text if len(text) <= 60 else text[:57] + "..."


def _handler(graph, edges: dict, step: dict, state: str, where) -> tuple[str, int]:
    """The handler an `unassessable` step is about, as (the state declaring it, its index): the
    one holding its `rule`, else the state's first handler for its trigger (and event or
    fact), else the nearest enclosing state's."""
    key = step.get("rule")
    if key is not None:
        if not isinstance(key, str) or key not in edges or not _within(graph, state, edges[key][0]):
            raise TraceError(f"{_show(key)} is not a rule of state '{state}'", (*where, "rule"))
        return edges[key][0], edges[key][2]["handler"]
    trigger = _need(step, "trigger", str, where, "a string (panel, event, timer or fact)")
    owner: str | None = state
    while owner is not None:  # the state's own handler, else the nearest enclosing state's
        for hi, h in enumerate(graph.nodes[owner].get("handlers", ())):
            if h["trigger"] != trigger:
                continue
            if trigger == "event" and step.get("event") not in (None, *h.get("events", ())):
                continue
            if trigger == "fact" and step.get("fact") not in (None, *h.get("facts", ())):
                continue
            return owner, hi
        owner = graph.nodes[owner].get("parent")
    raise TraceError(f"state '{state}' has no {trigger} rules to be unassessable", (*where, "trigger"))


def _state(graph, step: dict, key: str, where) -> str:
    s = _need(step, key, str, where, "a state name")
    if s not in graph:
        raise TraceError(f"'{s}' is not a state of '{graph.graph.get('name')}'", (*where, key))
    return s


def _within(graph, state: str, owner: str) -> bool:
    """Is `state` the state `owner` or inside it (a rule of a compound state applies to every
    state inside it: a transition step may name the state the patient was in)?"""
    seen = 0
    while state is not None and seen <= MAX_DEPTH * 8:
        if state == owner:
            return True
        state = (graph.nodes[state] if state in graph else {}).get("parent")
        seen += 1
    return False


def _rule(graph, edges: dict, step: dict, src: str, dst: str, where) -> str:
    """The rule behind a transition: its `rule` key, else the one rule from `src` (or a state
    `src` is in) to `dst` that matches the trigger and the guard text."""
    key = step.get("rule")
    if key is not None:
        if not isinstance(key, str) or key not in edges:
            raise TraceError(f"'{key}' is not a rule of this protocol", (*where, "rule"))
        u, v, _ = edges[key]
        if v != dst or not _within(graph, src, u):
            raise TraceError(f"rule '{key}' leads from '{u}' to '{v}', not from '{src}' to '{dst}'", (*where, "rule"))
        return key
    cands = [k for k, (u, v, d) in edges.items() if v == dst and _within(graph, src, u)]
    cands.sort(key=lambda k: edges[k][0] != src)  # the state's own rule before an inherited one
    for field_, value in (("trigger", step.get("trigger")), ("because", step.get("because"))):
        narrower = [k for k in cands if value is None or edges[k][2].get(field_) == value]
        cands = narrower
    if not cands:
        raise TraceError(f"no rule of this protocol leads from '{src}' to '{dst}' that way", where)
    return cands[0]


def locate(text: str, where: tuple) -> int | None:
    """The 1-based line of the trace file at `where` (a TraceError's path), or None."""
    from rxwatch.inputs.yamlsrc import Map, Seq, YamlError, load

    try:
        node = load(text)  # JSON is YAML: the project's reader that keeps positions
    except YamlError:
        return None
    line = None
    for part in where:
        if isinstance(node, Seq) and isinstance(part, int) and 0 <= part < len(node):
            line = node.item_pos(part)[0]
        elif isinstance(node, Map) and part in node:
            line = node.key_pos(part)[0]
        else:
            break
        node = node[part]
    return line or None
