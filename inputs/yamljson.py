"""The timeline format: YAML or JSON (docs/timelines.md).

    patient: {id: p-17, facts: {indication: rheumatoid_arthritis}}
    start: 2025-01-06
    events:
      - {date: 2025-01-06, lab: ALT, value: 32, unit: U/L}

`read(text, reader, ...)` reads a JSON text with the json module first (`yamlsrc.load_json`:
fast, located in part); when that declines, or when the document holds a mistake, the text is
read again by `yamlsrc.load` (libyaml, else ruamel.yaml), which knows where every value stands,
and the mistakes are reported from that. `parse_timeline` reads a document already loaded (a
scenario file: a timeline and more).
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping
from typing import Any

from rxwatch.compiler.diagnostics import did_you_mean
from rxwatch.simulator import units

from . import yamlsrc
from .model import COMMAND_LINE, ClinicalEvent, Choice, Event, FactChange, LabResult, Loc, Timeline, TimelineError
from .reader import Reader, ValueProblem, describe as _describe, is_number as _is_number, parse_date, \
    parse_date_time, parse_time
from .yamlsrc import Map, Seq

__all__ = ["read", "parse_timeline"]


def read(text: str, r: Reader, *, start: Any = None, until: Any = None, facts: Any = None) -> Timeline:
    """The Timeline of a YAML/JSON timeline's text; raises TimelineError with located messages."""
    path = r.path
    doc = yamlsrc.load_json(text, path)  # the json module: fast, located in part
    if doc is not None:
        try:
            return _read_document(doc, r, start, until, facts, frozenset())
        except TimelineError:
            r = Reader(path, r.protocol)  # a mistake: read again, every position kept
    try:
        doc = yamlsrc.load(text, path)
    except yamlsrc.YamlError as exc:
        r.error(exc.line, "E701", exc.message, exc.column)
        raise r.failure() from None
    return _read_document(doc, r, start, until, facts, frozenset())


def parse_timeline(doc: Any, path: str, protocol: Mapping, *, start: Any = None, until: Any = None,
                   facts: Mapping[str, str] | Iterable[str] | None = None,
                   extra_keys: Iterable[str] = ()) -> Timeline:
    """Build a Timeline from a document already read by `yamlsrc.load`.

    For files that hold a timeline and more (a scenario: timeline + expectations): top-level
    keys in `extra_keys` are left to the caller instead of being reported as unknown."""
    return _read_document(doc, Reader(path, protocol), start, until, facts, frozenset(extra_keys))


_TOP_KEYS = ("patient", "start", "until", "events")
_PATIENT_KEYS = ("id", "facts")
_KINDS = ("lab", "event", "fact", "choice")
_ENTRY_KEYS = {
    "lab": ("date", "time", "lab", "value", "unit", "uln", "lln"),
    "event": ("date", "time", "event"),
    "fact": ("date", "time", "fact", "value"),
    "choice": ("date", "time", "choice"),
}


_ENTRY_SETS = {kind: frozenset(keys) for kind, keys in _ENTRY_KEYS.items()}


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
    if cli_start and not cli_until and file_until and file_until < cli_start:
        r.error(0, "E706", f"--start {cli_start} is after the timeline's until {file_until}", path=COMMAND_LINE)
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
    elif any("\ud800" <= ch <= "\udfff" for ch in ident):  # a JSON "\ud800": no output could encode it
        r.error_at(patient.value_pos("id"), "E708", "patient id holds a lone surrogate (a JSON \\ud800 escape), which is not text")
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
        events.append(event)
    return events


def _read_event(item: Any, pos: yamlsrc.Pos, r: Reader) -> Event | None:
    if not isinstance(item, Map):
        r.error_at(pos, "E702", f"an event is a mapping such as {{date: 2025-01-06, lab: ALT, value: 32}}, not {_describe(item)}")
        return None
    if "lab" in item and not ("event" in item or "fact" in item or "choice" in item):
        kind = "lab"  # the common case, without the list below
    else:
        kinds = [k for k in _KINDS if k in item]
        if len(kinds) != 1:
            if kinds:
                r.error_at(pos, "E702", f"an event has exactly one of lab, event, fact or choice; this one has {' and '.join(kinds)}")
            else:
                unknown = [str(k) for k in item if k not in ("date", "time", "value", "unit", "uln", "lln")]
                hint = did_you_mean(unknown[0], _KINDS) if unknown else ""
                r.error_at(pos, "E702", f"an event needs one of lab, event, fact or choice{hint}")
            return None
        kind = kinds[0]
    ok = True
    if not _ENTRY_SETS[kind].issuperset(item):
        for key in item:
            if key not in _ENTRY_KEYS[kind]:
                r.error_at(item.key_pos(key), "E703", f"unknown key '{key}' in a {kind} entry{did_you_mean(str(key), _ENTRY_KEYS[kind])}")
                ok = False
    date, time = _when(item, pos, kind, r)
    loc = Loc(r.path, pos[0])
    name = item[kind]
    if kind == "lab":
        result = _read_lab(item, r, date, time, loc)
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
    order = r.order(date, time)
    if kind == "event":
        return ClinicalEvent(date, name, loc, time, order)
    if kind == "fact":
        return FactChange(date, name, value, loc, time, order)
    return Choice(date, name, loc, time, order)


def _when(item: Map, pos: yamlsrc.Pos, kind: str, r: Reader) -> tuple[datetime.date | None, str | None]:
    """An entry's date and time of day (as written): `date` is a date or a date-time, `time`
    an optional time of day (not both times)."""
    if "date" not in item:
        r.error_at(pos, "E704", f"missing 'date' in a {kind} entry")
        return None, None
    raw = item["date"]
    when = r.dates.get(raw) if type(raw) is str else None
    if when is None:
        when = parse_date_time(raw)
        if when is not None and type(raw) is str and len(r.dates) < 100_000:
            r.dates[raw] = when  # one date object per day, not per entry
    if when is None:
        r.error_at(item.value_pos("date"), "E705", f"date: {_describe(raw)} is not an ISO 8601 date (YYYY-MM-DD) "
                   "or date-time (YYYY-MM-DDThh:mm)")
        return None, None
    date, time = when
    if "time" in item:
        given = item["time"]
        if time is not None:
            r.error_at(item.key_pos("time"), "E702", f"the time is given twice: in date ({time}) and in time; write it once")
            return None, None
        if parse_time(given) is None:
            hint = ' (write it in quotes: time: "08:30")' if not isinstance(given, str) else ""
            r.error_at(item.value_pos("time"), "E705", f"time: {_describe(given)} is not an ISO 8601 time of day "
                       f"(hh:mm, hh:mm:ss, with a zone or not){hint}")
            return None, None
        time = given.strip()
    return date, time


_NOT_GIVEN = object()


def _entry_key(item: Map) -> tuple | None:
    """A lab entry's lab, numbers and unit as written (a number by its type and text), for
    `Reader.entries`; None when one of them is not a plain text or number."""
    get = item.get
    lab, value, unit, uln, lln = get("lab"), get("value", _NOT_GIVEN), get("unit", _NOT_GIVEN), \
        get("uln", _NOT_GIVEN), get("lln", _NOT_GIVEN)
    if type(lab) is not str:
        return None
    if not _PLAIN.issuperset((type(value), type(unit), type(uln), type(lln))):
        return None
    return (lab, _part(value), _part(unit), _part(uln), _part(lln))


_PLAIN = frozenset((str, int, yamlsrc.Float, object))  # object: _NOT_GIVEN's type


def _part(v: Any) -> tuple:
    """A number or text of an entry as written: by type and text."""
    t = type(v)
    return (t, v.text) if t is yamlsrc.Float else (t, v)


def _read_lab(item: Map, r: Reader, date: datetime.date | None, time: str | None, loc: Loc) -> LabResult | None:
    entry = _entry_key(item)
    if entry in r.entries:  # written the same way before, and read without a mistake
        return r.again(entry, date, loc, time, r.order(date, time)) if date is not None else None
    raw = item["lab"]
    lab = r.lab_name(raw) if isinstance(raw, str) else None
    if lab is None:
        r.error_at(item.value_pos("lab"), "E707", r.unknown("lab", raw, r.labs))
    ok = lab is not None
    if "value" not in item:
        r.error_at(item.pos, "E704", f"missing 'value' for lab {raw}")
        ok = False
    written_unit = item.get("unit")
    if _is_number(written_unit):
        written_unit = str(written_unit)
    for key in ("value", "uln", "lln"):
        if key in item:
            if r.known(key, lab, written_unit, item[key]):
                continue  # read before (a big timeline repeats few values)
            try:
                if not _is_number(item[key]):  # a text is not read as a number in YAML
                    raise ValueProblem(key, f"{key} must be a number{' above 0' if key != 'value' else ''}, "
                                       f"not {_describe(item[key])}")
                r.number(key, item[key])
            except ValueProblem as exc:
                r.error_at(item.value_pos(key), "E708", exc.message)
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
    try:  # without a date (already reported) the unit is still checked: every mistake at once
        result = r.lab_result(lab, item["value"], unit, item.get("uln"), date or datetime.date.min, loc,
                              lln=item.get("lln"), time=time, order=r.order(date, time) if date else ())
        r.remember(entry, result)
        return result if date is not None else None
    except units.UnitError as exc:
        r.error_at(item.value_pos("unit"), "E709", r.unit_problem(lab, unit, exc))
    except ValueProblem as exc:
        r.error_at(item.value_pos(exc.key), "E708", exc.message)
    return None
