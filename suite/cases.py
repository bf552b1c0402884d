"""Scenario files: a timeline plus expectations that the protocol's trace must meet.

A case file is a timeline (docs/timelines.md, the same YAML) with one more key, `expect`: a list
of expectations, each one line of the expectation language (suite/expect.lark, read by
suite/expectations.py; docs/scenarios.md). `load_case(path, graph)` reads and checks a case
file against a compiled protocol and returns a `Case`, or raises `CaseError` with every mistake
of the file as a located `Message` (the timeline's, and the expectations': unknown names with
the nearest declared one, bad dates, dates the replay never reaches). `run_case` and
`run_suite` put it together with the simulator and `check` (suite/check.py).

Nothing here knows about any particular protocol: names come from the compiled graph.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from rxwatch.inputs import yamlsrc
from rxwatch.inputs.model import Message, Timeline, TimelineError
from rxwatch.inputs.yamljson import parse_timeline
from rxwatch.inputs.yamlsrc import Map, Seq

from .check import Outcome, check
from .expectations import E_DATE, E_PROTOCOL, E_STRUCTURE, CaseError, Expectation, Names, parse_expectation

__all__ = ["CASE_KEYS", "Case", "CaseResult", "SuiteResult", "load_case", "parse_case", "run_case", "run_suite",
           "case_files"]

CASE_KEYS = ("expect", "description", "protocol")
"""Top-level keys a case file has beyond a timeline's."""


@dataclass(frozen=True, slots=True)
class Case:
    path: str
    timeline: Timeline
    expectations: tuple[Expectation, ...]
    description: str = ""
    warnings: tuple[Message, ...] = ()



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


# ---------------------------------------------------------------------------- running cases

def run_case(path: str | os.PathLike, graph: Any) -> CaseResult:
    """Load, simulate and check one case file. OSError (a missing file) reaches the caller."""
    from rxwatch.simulator.engine import SimulationError, simulate

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
