"""Timelines: one patient's history as a protocol sees it.

The format is a contract (shared/contracts/timeline.md, documented in docs/timelines.md).
`load_timeline` reads a YAML/JSON timeline, a FHIR R4 Bundle (fhir.py) or a lab CSV
(csvlabs.py) against a compiled protocol's declarations and returns a `Timeline`, or raises
`TimelineError` with every mistake of the input as a located `Message`. A missing or
unreadable file is a plain OSError.
"""

from __future__ import annotations

import datetime
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Union

from rxwatch.compiler.diagnostics import did_you_mean

from . import units, yamlsrc
from .yamlsrc import Map, Seq

__all__ = [
    "Loc", "LabResult", "ClinicalEvent", "FactChange", "Choice", "Event", "Message", "Timeline",
    "TimelineError", "COMMAND_LINE", "load_timeline", "parse_timeline", "parse_date",
]

COMMAND_LINE = "<command line>"
"""The path of messages about `--fact`, `--start` and `--until`."""


# ---------------------------------------------------------------------------- the data model

@dataclass(frozen=True, slots=True)
class Loc:
    path: str
    line: int  # 1-based; 0 when unknown


@dataclass(frozen=True, slots=True)
class LabResult:
    """A result; `value` and `uln` are in the lab's declared unit, `unit` is as written.

    `uln` is None when the input gives none: the protocol's default ULN for the lab applies."""

    date: datetime.date
    lab: str
    value: float
    uln: float | None
    loc: Loc
    unit: str | None = None


@dataclass(frozen=True, slots=True)
class ClinicalEvent:
    date: datetime.date
    event: str
    loc: Loc


@dataclass(frozen=True, slots=True)
class FactChange:
    """A fact takes `value` from `date` on."""

    date: datetime.date
    fact: str
    value: bool | float | str
    loc: Loc


@dataclass(frozen=True, slots=True)
class Choice:
    """On `date` the clinician chose `action` among the alternatives the protocol offered."""

    date: datetime.date
    action: str
    loc: Loc


Event = Union[LabResult, ClinicalEvent, FactChange, Choice]


@dataclass(frozen=True, slots=True)
class Message:
    """A located diagnostic about an input; `code` is stable (E7xx/W7xx, see docs/timelines.md)."""

    path: str
    line: int
    text: str
    severity: str = "error"
    code: str = ""
    column: int = 0  # 1-based; 0 when unknown

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}:"
        return f"{where} {self.text}" if self.severity == "error" else f"{where} {self.severity}: {self.text}"


@dataclass(frozen=True, slots=True)
class Timeline:
    path: str
    patient: str
    facts: dict  # every declared fact: its value at `start`
    start: datetime.date
    until: datetime.date | None  # load_timeline always sets it
    events: tuple  # of Event, sorted stably by date (input order kept within a date)
    warnings: tuple[Message, ...] = ()


class TimelineError(Exception):
    """The input is wrong: `messages` holds every error found in it; `warnings` the warnings
    found on the way (they may explain an error: a result left out, say)."""

    def __init__(self, messages: list[Message], warnings: list[Message] | tuple = ()) -> None:
        super().__init__("\n".join(str(m) for m in messages))
        self.messages = messages
        self.warnings = list(warnings)


# ---------------------------------------------------------------------------- entry point

def load_timeline(path: str | os.PathLike, protocol: Mapping, *, start: Any = None, until: Any = None,
                  facts: Mapping[str, str] | Iterable[str] | None = None) -> Timeline:
    """Read a timeline file against `protocol` (a compiled graph's `G.graph` dict).

    The kind of file is detected: a JSON object with a top-level "resourceType" is a FHIR R4
    Bundle, a name ending in .csv is a lab CSV, anything else a YAML/JSON timeline. `start`,
    `until` (dates or ISO strings) and `facts` ({NAME: VALUE} or ["NAME=VALUE", ...]) come from
    the command line and win over the file. Raises OSError or TimelineError."""
    path = os.fspath(path)
    with open(path, "rb") as f:
        data = f.read()
    reader = Reader(path, protocol)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        reader.error(line, "E701", f"the file is not UTF-8 text (byte {exc.start + 1})")
        raise reader.failure() from None
    if path.lower().endswith(".csv"):
        from .csvlabs import read_csv

        return read_csv(text, reader, start=start, until=until, facts=facts)
    from . import fhir

    bundle = fhir.sniff(text)
    if bundle is not None:
        return fhir.read_bundle(text, bundle, reader, start=start, until=until, facts=facts)
    try:
        doc = yamlsrc.load(text, path)
    except yamlsrc.YamlError as exc:
        reader.error(exc.line, "E701", exc.message, exc.column)
        raise reader.failure() from None
    return _read_document(doc, reader, start, until, facts, frozenset())


def parse_timeline(doc: Any, path: str, protocol: Mapping, *, start: Any = None, until: Any = None,
                   facts: Mapping[str, str] | Iterable[str] | None = None,
                   extra_keys: Iterable[str] = ()) -> Timeline:
    """Build a Timeline from a document already read by `yamlsrc.load`.

    For files that hold a timeline and more (a scenario: timeline + expectations): top-level
    keys in `extra_keys` are left to the caller instead of being reported as unknown."""
    return _read_document(doc, Reader(path, protocol), start, until, facts, frozenset(extra_keys))


# ---------------------------------------------------------------------------- shared reading

def parse_date(value: Any) -> datetime.date | None:
    """An ISO 8601 date, or the date of an ISO 8601 date-time; None if `value` is neither."""
    if isinstance(value, datetime.datetime):
        return value.date()
    if isinstance(value, datetime.date):
        return value
    if not isinstance(value, str):
        return None
    text = value.strip()
    try:
        return datetime.date.fromisoformat(text)
    except ValueError:
        pass
    try:
        return datetime.datetime.fromisoformat(text).date()
    except ValueError:
        return None


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "nothing"
    if isinstance(value, Map):
        return "a mapping"
    if isinstance(value, Seq):
        return "a list"
    if isinstance(value, str):
        return f"the text '{value}'"
    return repr(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _names(names: Iterable[Any]) -> list[str]:
    return [n for n in names if isinstance(n, str)]


class Reader:
    """What the three readers share: the protocol's declarations, the messages, checking a lab
    result or a fact value, the command-line options, and assembling the Timeline."""

    def __init__(self, path: str, protocol: Mapping) -> None:
        self.path = path
        self.labs: Mapping[str, Mapping] = protocol.get("labs") or {}
        self.facts: Mapping[str, Mapping] = protocol.get("facts") or {}
        self.events: Mapping[str, Any] = protocol.get("events") or {}
        self.actions: Mapping[str, Any] = protocol.get("actions") or {}
        self.loinc: dict[str, str] = {}
        for name, lab in self.labs.items():
            for code in lab.get("loinc") or ():
                self.loinc.setdefault(code, name)
        self.errors: list[Message] = []
        self.warnings: list[Message] = []
        self._results: dict[tuple[datetime.date, str], LabResult] = {}

    # -- messages

    def error(self, line: int, code: str, text: str, column: int = 0, *, path: str | None = None) -> None:
        self.errors.append(Message(path or self.path, line, text, "error", code, column))

    def warning(self, line: int, code: str, text: str, column: int = 0, *, path: str | None = None) -> None:
        self.warnings.append(Message(path or self.path, line, text, "warning", code, column))

    def error_at(self, pos: yamlsrc.Pos, code: str, text: str) -> None:
        self.error(pos[0], code, text, pos[1])

    def failure(self) -> TimelineError:
        """The TimelineError to raise: every error so far, and the warnings, sorted by position."""
        return TimelineError(_sorted(self.errors), _sorted(self.warnings))

    # -- names

    def lab_name(self, name: str) -> str | None:
        """A declared lab's name from its name or from a LOINC code that it lists."""
        return name if name in self.labs else self.loinc.get(name)

    def unknown(self, kind: str, name: Any, declared: Iterable[str]) -> str:
        declared = _names(declared)
        if not isinstance(name, str):
            return f"{kind} must be a name, not {_describe(name)}"
        if not declared:
            return f"unknown {kind} '{name}': the protocol declares no {kind}s"
        return f"unknown {kind} '{name}'{did_you_mean(name, declared)}"

    # -- values

    def lab_result(self, lab: str, value: float, unit: str | None, uln: float | None,
                   date: datetime.date, loc: Loc) -> LabResult:
        """Convert `value` and `uln` from `unit` to the lab's unit; raises units.UnitError."""
        decl = self.labs[lab]
        target = decl.get("unit")
        molar_mass = decl.get("molar_mass")
        if unit is not None:
            value = units.convert(value, unit, target, molar_mass)
            if uln is not None:
                uln = units.convert(uln, unit, target, molar_mass)
        return LabResult(date, lab, float(value), None if uln is None else float(uln), loc, unit)

    def earlier_result(self, result: LabResult) -> LabResult | None:
        """The result already read for the same lab and day (a panel holds one per lab), if any;
        otherwise None, and `result` is the one that counts."""
        return self._results.setdefault((result.date, result.lab), result)

    def unit_problem(self, lab: str, unit: str, exc: units.UnitError) -> str:
        without = "" if self.labs[lab].get("unit") else f"; {lab} is declared without unit"
        return f"{lab}: {exc}{without}"

    def fact_value(self, name: str, value: Any, *, from_text: bool = False) -> tuple[Any, str | None]:
        """(typed value, None) or (None, why not) for fact `name`; `from_text` for --fact strings."""
        decl = self.facts[name]
        kind = decl.get("type")
        if from_text and isinstance(value, str):
            value = _typed_from_text(kind, value.strip())
        if kind == "bool":
            if isinstance(value, bool):
                return value, None
            return None, f"fact '{name}' is true or false, not {_describe(value)}"
        if kind == "number":
            if _is_number(value) and math.isfinite(value):
                return float(value), None
            unit = decl.get("unit")
            in_unit = f" (in {unit})" if unit else ""
            return None, f"fact '{name}' is a number{in_unit}, not {_describe(value)}"
        members = _names(decl.get("members") or ())
        if isinstance(value, str) and value in members:
            return value, None
        if isinstance(value, str):
            hint = did_you_mean(value, members)
            listing = "" if hint or len(members) > 10 else f" (one of {', '.join(members)})"
            return None, f"'{value}' is not a member of fact '{name}'{hint}{listing}"
        return None, f"fact '{name}' is one of {', '.join(members)}, not {_describe(value)}"

    # -- the command line

    def command_line(self, start: Any, until: Any, facts: Any) -> tuple[datetime.date | None, datetime.date | None, dict]:
        """Parse --start/--until/--fact; errors go to COMMAND_LINE, line 0."""
        dates = []
        for option, raw in (("--start", start), ("--until", until)):
            day = None if raw is None else parse_date(raw)
            if raw is not None and day is None:
                self.error(0, "E705", f"{option} {raw}: not an ISO 8601 date (YYYY-MM-DD)", path=COMMAND_LINE)
            dates.append(day)
        if dates[0] and dates[1] and dates[1] < dates[0]:
            self.error(0, "E706", f"--until {dates[1]} is before --start {dates[0]}", path=COMMAND_LINE)
        given: dict[str, Any] = {}
        pairs = facts.items() if isinstance(facts, Mapping) else (_split_fact(f) for f in facts or ())
        for name, raw in pairs:
            if name is None:
                self.error(0, "E702", f"--fact {raw}: write NAME=VALUE", path=COMMAND_LINE)
            elif name not in self.facts:
                self.error(0, "E707", f"--fact {name}={raw}: {self.unknown('fact', name, self.facts)}", path=COMMAND_LINE)
            else:
                value, why = self.fact_value(name, raw, from_text=True)
                if why:
                    self.error(0, "E708", f"--fact {name}={raw}: {why}", path=COMMAND_LINE)
                else:
                    given[name] = value
        return dates[0], dates[1], given

    def initial_facts(self, given: Mapping[str, Any], where: yamlsrc.Pos | None, hint: str) -> dict:
        """Defaults, overridden by `given`; a fact with neither is an error at `where`
        (on the command line when `where` is None)."""
        values: dict[str, Any] = {}
        for name, decl in self.facts.items():
            if name in given:
                values[name] = given[name]
            elif decl.get("has_default"):
                default = decl.get("default")
                values[name] = float(default) if _is_number(default) else default
            else:
                text = f"fact '{name}' has no default and no value: {hint.format(name=name)}"
                if where is None:
                    self.error(0, "E710", text, path=COMMAND_LINE)
                else:
                    self.error_at(where, "E710", text)
        return values

    def range_filter(self, events: list, start: datetime.date | None, until: datetime.date | None) -> list:
        """Leave out, with one warning, the events outside the command line's --start/--until."""
        kept = [e for e in events if (start is None or e.date >= start) and (until is None or e.date <= until)]
        if len(kept) < len(events):
            left_out = len(events) - len(kept)
            span = f"{start or '...'} to {until or '...'}"
            self.warning(0, "W702", f"{left_out} entr{'y' if left_out == 1 else 'ies'} outside {span} "
                         "(--start/--until) left out", path=COMMAND_LINE)
        return kept

    def finish_results(self, patient: str, results: list, command_line: tuple, empty: str, line: int = 1) -> Timeline:
        """`finish` for the inputs that hold only lab results (FHIR, CSV): start and until default
        to the first and last panel's dates; no result and no --start is an error saying `empty`."""
        start, until, facts = command_line
        results = self.range_filter(results, start, until)
        dates = sorted({result.date for result in results})
        if start is None and not dates and not self.errors:
            self.error(line, "E704", f"{empty}; nothing to replay (give --start to replay it anyway)")
        values = self.initial_facts(facts, None, "give it with --fact {name}=VALUE")
        return self.finish(patient, values, start or (dates[0] if dates else None),
                           until or (dates[-1] if dates else None), results)

    def finish(self, patient: str, facts: dict, start: datetime.date | None, until: datetime.date | None,
               events: list) -> Timeline:
        """The Timeline, or TimelineError with every error, sorted by position (`start` is None
        only when an error says why)."""
        if self.errors:
            raise self.failure()
        ordered = tuple(sorted(events, key=lambda e: e.date))
        if until is None:
            until = ordered[-1].date if ordered else start
        return Timeline(self.path, patient, facts, start, until, ordered, tuple(_sorted(self.warnings)))


def _sorted(messages: list[Message]) -> list[Message]:
    return sorted(messages, key=lambda m: (m.path != COMMAND_LINE, m.path, m.line, m.column))


def _split_fact(text: Any) -> tuple[str | None, Any]:
    name, sep, value = str(text).partition("=")
    return (name.strip(), value) if sep and name.strip() else (None, text)


def _typed_from_text(kind: Any, text: str) -> Any:
    if kind == "bool":
        return {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}.get(text.lower(), text)
    if kind == "number":
        try:
            return float(text)
        except ValueError:
            return text
    return text


# ---------------------------------------------------------------------------- YAML/JSON timelines

_TOP_KEYS = ("patient", "start", "until", "events")
_PATIENT_KEYS = ("id", "facts")
_KINDS = ("lab", "event", "fact", "choice")
_ENTRY_KEYS = {
    "lab": ("date", "lab", "value", "unit", "uln"),
    "event": ("date", "event"),
    "fact": ("date", "fact", "value"),
    "choice": ("date", "choice"),
}


def _read_document(doc: Any, r: Reader, start: Any, until: Any, facts: Any, extra_keys: frozenset) -> Timeline:
    cli_start, cli_until, cli_facts = r.command_line(start, until, facts)
    if not isinstance(doc, Map):
        what = "is empty" if doc is None else f"holds {_describe(doc)}"
        r.error_at(yamlsrc.pos_of(doc) if isinstance(doc, Seq) else (1, 1), "E702",
                   f"a timeline is a mapping with patient, start and events; this file {what}")
        raise r.failure()
    for key in doc:
        if key not in _TOP_KEYS and key not in extra_keys:
            r.error_at(doc.key_pos(key), "E703", f"unknown key '{key}'{did_you_mean(str(key), _TOP_KEYS)}")

    patient, file_facts, facts_pos = _read_patient(doc, r)
    file_start = _required_date(doc, "start", r)
    file_until = _optional_date(doc, "until", r)
    if file_start and file_until and file_until < file_start:
        r.error_at(doc.value_pos("until"), "E706", f"until {file_until} is before start {file_start}")

    if cli_until and not cli_start and file_start and cli_until < file_start:
        r.error(0, "E706", f"--until {cli_until} is before the timeline's start {file_start}", path=COMMAND_LINE)
    events = _read_events(doc, r, file_start, file_until)
    events = r.range_filter(events, cli_start, cli_until)
    file_facts.update(cli_facts)
    values = r.initial_facts(file_facts, facts_pos,
                             "give it under patient.facts (or with --fact {name}=VALUE)")
    start_day = cli_start or file_start
    return r.finish(patient, values, start_day, cli_until or file_until, events)


def _read_patient(doc: Map, r: Reader) -> tuple[str, dict, yamlsrc.Pos]:
    facts: dict[str, Any] = {}
    if "patient" not in doc:
        r.error(1, "E704", "missing 'patient' (a mapping with 'id', and optionally 'facts')", 1)
        return "", facts, (1, 1)
    patient = doc["patient"]
    if not isinstance(patient, Map):
        r.error_at(doc.value_pos("patient"), "E702",
                   f"'patient' must be a mapping with 'id' (and optionally 'facts'), not {_describe(patient)}")
        return "", facts, doc.key_pos("patient")
    for key in patient:
        if key not in _PATIENT_KEYS:
            r.error_at(patient.key_pos(key), "E703", f"unknown key '{key}' in patient{did_you_mean(str(key), _PATIENT_KEYS)}")
    ident = patient.get("id")
    if "id" not in patient:
        r.error_at(doc.key_pos("patient"), "E704", "missing patient 'id'")
    elif not isinstance(ident, str) or not ident.strip():
        hint = f'; write it in quotes: id: "{ident}"' if _is_number(ident) else ""
        r.error_at(patient.value_pos("id"), "E708", f"patient id must be a non-empty text, not {_describe(ident)}{hint}")
    where = doc.key_pos("patient")
    if "facts" in patient:
        where = patient.key_pos("facts")
        given = patient["facts"]
        if isinstance(given, Map):
            for name, value in given.items():
                if name not in r.facts:
                    r.error_at(given.key_pos(name), "E707", r.unknown("fact", name, r.facts))
                    continue
                typed, why = r.fact_value(name, value)
                if why:
                    r.error_at(given.value_pos(name), "E708", why)
                else:
                    facts[name] = typed
        elif given is not None:
            r.error_at(patient.value_pos("facts"), "E702", f"patient 'facts' must be a mapping of fact names to values, not {_describe(given)}")
    return ident if isinstance(ident, str) else "", facts, where


def _date_at(container: Map, key: str, r: Reader, what: str) -> datetime.date | None:
    raw = container[key]
    day = parse_date(raw)
    if day is None:
        r.error_at(container.value_pos(key), "E705", f"{what}: {_describe(raw)} is not an ISO 8601 date (YYYY-MM-DD)")
    return day


def _required_date(doc: Map, key: str, r: Reader) -> datetime.date | None:
    if key not in doc:
        r.error(1, "E704", f"missing '{key}' (the date the replay starts, YYYY-MM-DD)", 1)
        return None
    return _date_at(doc, key, r, key)


def _optional_date(doc: Map, key: str, r: Reader) -> datetime.date | None:
    return _date_at(doc, key, r, key) if key in doc else None


def _read_events(doc: Map, r: Reader, start: datetime.date | None, until: datetime.date | None) -> list:
    items = doc.get("events")
    if items is None:
        return []
    if not isinstance(items, Seq):
        r.error_at(doc.value_pos("events"), "E702", f"'events' must be a list, not {_describe(items)}")
        return []
    events: list[Event] = []
    for index, item in enumerate(items):
        pos = items.item_pos(index)
        event = _read_event(item, pos, r)
        if event is None:
            continue
        if start and event.date < start:
            r.error_at(pos, "E706", f"dated {event.date}, before start ({start})")
        elif until and event.date > until:
            r.error_at(pos, "E706", f"dated {event.date}, after until ({until})")
        if isinstance(event, LabResult) and (first := r.earlier_result(event)) is not event:
            r.error_at(pos, "E711", f"a second {event.lab} result on {event.date} (the first is at line {first.loc.line}); "
                       "a panel holds one result per lab")
            continue
        events.append(event)
    return events


def _read_event(item: Any, pos: yamlsrc.Pos, r: Reader) -> Event | None:
    if not isinstance(item, Map):
        r.error_at(pos, "E702", f"an event is a mapping such as {{date: 2025-01-06, lab: ALT, value: 32}}, not {_describe(item)}")
        return None
    kinds = [k for k in _KINDS if k in item]
    if len(kinds) != 1:
        if kinds:
            r.error_at(pos, "E702", f"an event has exactly one of lab, event, fact or choice; this one has {' and '.join(kinds)}")
        else:
            unknown = [str(k) for k in item if k not in ("date", "value", "unit", "uln")]
            hint = did_you_mean(unknown[0], _KINDS) if unknown else ""
            r.error_at(pos, "E702", f"an event needs one of lab, event, fact or choice{hint}")
        return None
    kind = kinds[0]
    ok = True
    for key in item:
        if key not in _ENTRY_KEYS[kind]:
            r.error_at(item.key_pos(key), "E703", f"unknown key '{key}' in a {kind} entry{did_you_mean(str(key), _ENTRY_KEYS[kind])}")
            ok = False
    if "date" not in item:
        r.error_at(pos, "E704", f"missing 'date' in a {kind} entry")
        date = None
    else:
        date = _date_at(item, "date", r, "date")
    loc = Loc(r.path, pos[0])
    name = item[kind]
    if kind == "lab":
        result = _read_lab(item, r, date, loc)
        return result if ok and date else None
    declared = {"event": r.events, "fact": r.facts, "choice": r.actions}[kind]
    if not isinstance(name, str) or name not in declared:
        r.error_at(item.value_pos(kind), "E707", r.unknown("action" if kind == "choice" else kind, name, declared))
        return None
    if kind == "fact":
        if "value" not in item:
            r.error_at(pos, "E704", f"missing 'value' for fact '{name}'")
            return None
        value, why = r.fact_value(name, item["value"])
        if why:
            r.error_at(item.value_pos("value"), "E708", why)
            return None
    if not (ok and date):
        return None
    if kind == "event":
        return ClinicalEvent(date, name, loc)
    if kind == "fact":
        return FactChange(date, name, value, loc)
    return Choice(date, name, loc)


def _read_lab(item: Map, r: Reader, date: datetime.date | None, loc: Loc) -> LabResult | None:
    raw = item["lab"]
    lab = r.lab_name(raw) if isinstance(raw, str) else None
    if lab is None:
        r.error_at(item.value_pos("lab"), "E707", r.unknown("lab", raw, r.labs))
    ok = lab is not None
    value = item.get("value")
    if "value" not in item:
        r.error_at(item.pos, "E704", f"missing 'value' for lab {raw}")
        ok = False
    elif not _is_number(value) or not math.isfinite(value):
        r.error_at(item.value_pos("value"), "E708", f"value must be a number, not {_describe(value)}")
        ok = False
    elif value < 0:
        r.error_at(item.value_pos("value"), "E708", f"value {value} is negative; a lab result is never below 0")
        ok = False
    uln = item.get("uln")
    if "uln" in item and (not _is_number(uln) or not math.isfinite(uln) or uln <= 0):
        r.error_at(item.value_pos("uln"), "E708", f"uln must be a number above 0, not {_describe(uln)}")
        ok = False
    unit = item.get("unit")
    if "unit" in item:
        if _is_number(unit):
            unit = str(unit)
        if not isinstance(unit, str):
            r.error_at(item.value_pos("unit"), "E709", f"unit must be a text such as U/L, not {_describe(unit)}")
            ok = False
    if not ok:
        return None
    try:
        result = r.lab_result(lab, value, unit, uln, date, loc)
    except units.UnitError as exc:
        r.error_at(item.value_pos("unit"), "E709", r.unit_problem(lab, unit, exc))
        return None
    return result if date is not None else None
