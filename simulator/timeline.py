"""Timelines: one patient's history as a protocol sees it.

The format is a contract, described in full in docs/timelines.md.
`load_timeline` reads a YAML/JSON timeline, a FHIR R4 Bundle (fhir.py) or a lab CSV
(csvlabs.py) against a compiled protocol's declarations and returns a `Timeline`, or raises
`TimelineError` with every mistake of the input as a located `Message`. A missing or
unreadable file is a plain OSError.

Numbers are exact (`units.exact`: an int, or a Fraction read from the decimal the file shows),
results are converted exactly to their lab's unit, and every value and limit is checked to be
finite and in range after the conversion. Results and events may carry a time of day; within
a day, `Timeline.events` is ordered by `Event.order` (see `_Clock`). Two results of one lab
on one day are both kept: `latest_results` tells which counts.
"""

from __future__ import annotations

import codecs
import datetime
import itertools
import operator
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Union

from rxwatch.compiler.diagnostics import did_you_mean

from . import units, yamlsrc
from rxwatch.compiler import collector_paused
from rxwatch.compiler.diagnostics import Diagnostic
from rxwatch.compiler.span import Span

from .expr import exact_q
from .units import Number
from .yamlsrc import Map, Seq

__all__ = [
    "Loc", "LabResult", "ClinicalEvent", "FactChange", "Choice", "Event", "Message", "Timeline",
    "TimelineError", "COMMAND_LINE", "MAX_VALUE", "MIN_LIMIT", "load_timeline", "parse_timeline",
    "parse_date", "parse_date_time", "parse_time", "latest_results", "recency",
]

COMMAND_LINE = "<command line>"
"""The path of messages about `--fact`, `--start` and `--until`."""

MAX_VALUE = 10**15
"""The largest lab value, limit or number fact accepted, after conversion to the lab's unit."""

MIN_LIMIT = Fraction(1, 10**15)
"""The smallest ULN or LLN accepted, after conversion (so that value/limit stays below 10^30)."""


# ---------------------------------------------------------------------------- the data model

@dataclass(frozen=True, slots=True)
class Loc:
    path: str
    line: int  # 1-based; 0 when unknown


Order = tuple
"""An event's place within its day: `(clock, index)`, a `datetime.time` without zone and the
event's index in its file; `()` for an event made in code (it sorts first). See `_Clock`."""


@dataclass(frozen=True, slots=True)
class LabResult:
    """A result; `value`, `uln` and `lln` are exact (int or Fraction) and in the lab's declared
    unit, `unit` is as written.

    `uln` (`lln`) is None when the input gives none: the protocol's default applies. `time` is
    the time of day as written (`"08:30"`, `"08:30:00+01:00"`), None when none was given.
    `order` places the result within its day (not compared by ==); `recency(result)` is
    `(date, order)`, the key for "the most recent result". `q` and `uln_q` are `value` and
    `uln` as the simulator's exact rationals (expr.Q), made once when the result is read."""

    date: datetime.date
    lab: str
    value: Number
    uln: Number | None
    loc: Loc
    unit: str | None = None
    lln: Number | None = None
    time: str | None = None
    order: Order = field(default=(), compare=False)
    q: Any = field(default=None, init=False, compare=False, repr=False)
    uln_q: Any = field(default=None, init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "q", _shared_q(self.value))
        if self.uln is not None:
            object.__setattr__(self, "uln_q", _shared_q(self.uln))


_QS: dict = {}
_SHARED_MAX = 100_000  # entries kept per cache of shared values (then new values are not kept)


def _shared_q(value: Number) -> Any:
    """`exact_q(value)`, one object for equal values (lab values repeat: a big timeline holds
    few distinct ones), up to _SHARED_MAX of them."""
    q = _QS.get(value)
    if q is None:
        q = exact_q(value)
        if len(_QS) < _SHARED_MAX:
            _QS[value] = q
    return q


@dataclass(frozen=True, slots=True)
class ClinicalEvent:
    date: datetime.date
    event: str
    loc: Loc
    time: str | None = None
    order: Order = field(default=(), compare=False)


@dataclass(frozen=True, slots=True)
class FactChange:
    """A fact takes `value` from `date` on (a number fact's value is exact: int or Fraction)."""

    date: datetime.date
    fact: str
    value: bool | Number | str
    loc: Loc
    time: str | None = None
    order: Order = field(default=(), compare=False)


@dataclass(frozen=True, slots=True)
class Choice:
    """On `date` the clinician chose `action` among the alternatives the protocol offered."""

    date: datetime.date
    action: str
    loc: Loc
    time: str | None = None
    order: Order = field(default=(), compare=False)


Event = Union[LabResult, ClinicalEvent, FactChange, Choice]


class Message(Diagnostic):
    """A located diagnostic about an input (E7xx/W7xx, docs/diagnostics.md): the project's one
    Diagnostic, made from the input's point of view: `Message(path, line, text, severity,
    code, column)`; `path`, `line`, `column` and `text` read as before."""

    __slots__ = ()

    def __init__(self, path: str, line: int, text: str, severity: str = "error", code: str = "",
                 column: int = 0) -> None:
        Diagnostic.__init__(self, Span.point(path, line, column), severity, code, text)


@dataclass(frozen=True, slots=True)
class Timeline:
    path: str
    patient: str
    facts: dict  # every declared fact: its value at `start`
    start: datetime.date
    until: datetime.date | None  # load_timeline always sets it
    events: tuple  # of Event, sorted by (date, order): within a day by time, see _Clock
    warnings: tuple[Message, ...] = ()
    # the events grouped by day, as the simulator replays them: ((date, (event, ...)), ...)
    days: tuple = field(default=(), init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "days", tuple((day, tuple(group)) for day, group in
                                               itertools.groupby(self.events, operator.attrgetter("date"))))


def recency(event: Event) -> tuple:
    """`(date, order)`: the later of two results is the one with the greater recency (by date,
    then by time as `_Clock` orders a day, then by file order)."""
    return (event.date, event.order)


def latest_results(results: Iterable[LabResult]) -> tuple[dict[str, LabResult], list[LabResult]]:
    """The result that counts for each lab among `results` (the most recent by `recency`;
    between equals, the later given), and the others, which it replaces, in the order given.

    For one day's results of `Timeline.events` (already in order) this is "the last of each
    lab"; it also serves a lookback over several days."""
    kept: dict[str, LabResult] = {}
    order: list[LabResult] = []
    for result in results:
        order.append(result)
        held = kept.get(result.lab)
        if held is None or recency(result) >= recency(held):
            kept[result.lab] = result
    winners = {id(r) for r in kept.values()}
    return kept, [r for r in order if id(r) not in winners]


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
    with collector_paused():  # every object read stays alive: a collection can free nothing
        if path.lower().endswith(".csv"):
            from .csvlabs import read_csv_file

            try:  # streamed, row by row: the text is never held whole
                return read_csv_file(path, Reader(path, protocol), start=start, until=until, facts=facts)
            except UnicodeDecodeError:
                pass  # located below, from the bytes
            except TimelineError:
                if _is_utf8(path):  # else the one error is that (below), as when the file is read whole
                    raise
        with open(path, "rb") as f:
            data = f.read()
        reader = Reader(path, protocol)
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            line = data.count(b"\n", 0, exc.start) + 1
            reader.error(line, "E701", f"the file is not UTF-8 text (byte {exc.start + 1})")
            raise reader.failure() from None
        del data
        if path.lower().endswith(".csv"):
            from .csvlabs import read_csv

            return read_csv(text, reader, start=start, until=until, facts=facts)
        from . import fhir

        bundle = fhir.sniff(text)
        if bundle is not None:
            return fhir.read_bundle(text, bundle, reader, start=start, until=until, facts=facts)
        doc = yamlsrc.load_json(text, path)  # the json module: fast, located in part
        if doc is not None:
            try:
                return _read_document(doc, reader, start, until, facts, frozenset())
            except TimelineError:
                reader = Reader(path, protocol)  # a mistake: read again, every position kept
        try:
            doc = yamlsrc.load(text, path)
        except yamlsrc.YamlError as exc:
            reader.error(exc.line, "E701", exc.message, exc.column)
            raise reader.failure() from None
        return _read_document(doc, reader, start, until, facts, frozenset())


def _is_utf8(path: str) -> bool:
    """The file is UTF-8 text (read a megabyte at a time)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                decoder.decode(chunk)
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


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


_DATE_TIME = re.compile(r"(\d{4}-\d{2}-\d{2})[Tt ](.*)")
_TIME = re.compile(r"\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|z|[+-]\d{2}(?::?\d{2})?)?")


def parse_time(value: Any) -> datetime.time | None:
    """The clock time of an ISO 8601 time of day (`08:30`, `08:30:15.5`, `08:30+01:00`,
    `08:30Z`), without its zone; None if `value` is not one."""
    if not isinstance(value, str) or not _TIME.fullmatch(text := value.strip()):
        return None
    try:
        return datetime.time.fromisoformat(text.upper()).replace(tzinfo=None)
    except ValueError:
        return None


def parse_date_time(value: Any) -> tuple[datetime.date, str | None] | None:
    """`(date, time as written or None)` of an ISO 8601 date or date-time; None if neither.

    `2025-01-06T08:30:00+01:00` gives (2025-01-06, "08:30:00+01:00"): the date and the time as
    written, zone kept, nothing shifted to UTC. A date-time in a form other than
    `YYYY-MM-DDThh:mm...` that Python reads gives its time in ISO form."""
    if isinstance(value, datetime.datetime):
        return value.date(), value.timetz().isoformat()
    if isinstance(value, datetime.date):
        return value, None
    if not isinstance(value, str):
        return None
    text = value.strip()
    m = _DATE_TIME.fullmatch(text)
    if m is not None:
        day = parse_date(m[1])
        return (day, m[2]) if day is not None and parse_time(m[2]) is not None else None
    try:
        return datetime.date.fromisoformat(text), None
    except ValueError:
        pass
    try:
        stamp = datetime.datetime.fromisoformat(text)
    except ValueError:
        return None
    return stamp.date(), stamp.timetz().isoformat()


class _Clock:
    """Places events within their day, in the order they are read from the file.

    An event with a time sorts by that clock time (its zone, kept in `time`, is not used: the
    date is the one written, and so is the clock). An event without a time is taken to be as
    late as the latest time written on an event above it in the file on the same day (00:00
    when there is none), and after it: so it follows everything written above it. Ties go by
    file order. `order` is `(clock, index)`; sorting a day by it gives:

    - results that all carry a time: by time, equal times in file order;
    - results that carry none: file order;
    - mixed: a timed event after an untimed one in the file sorts by its time against the
      latest time above the untimed one (`08:00, -, 07:00` gives `07:00, 08:00, -`)."""

    def __init__(self) -> None:
        self.index = 0
        self.latest: dict[datetime.date, datetime.time] = {}

    def order(self, date: datetime.date, clock: datetime.time | None, index: int | None = None) -> Order:
        """`index`: the event's place in the file when the caller has one that grows with the
        file order (a CSV's line number); else the count of events so far."""
        self.index += 1
        if index is not None:
            self.index = index
        latest = self.latest.get(date, datetime.time.min)
        if clock is None:
            clock = latest
        elif clock > latest:
            self.latest[date] = clock
        return (clock, self.index)


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
    return isinstance(value, (int, float, Fraction)) and not isinstance(value, bool)


def _shown(value: Any) -> str:
    """A number as the file wrote it (a yamlsrc/FHIR Float keeps its text), cut to 24
    characters for a message."""
    text = getattr(value, "text", None)
    text = text if isinstance(text, str) else str(value) if not isinstance(value, int) or abs(value) < 10**24 else None
    if text is None:  # a huge int: str() of it is slow and long
        return f"a number of about {value.bit_length() * 30103 // 100000 + 1} digits"
    return text if len(text) <= 24 else f"{text[:20]}... ({len(text)} characters)"


class ValueProblem(ValueError):
    """A lab value or limit that is not usable; `key` is the field (value, uln or lln)."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key
        self.message = message


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
        self.lab_names = {name: name for name in self.labs}  # the declaration's own string, shared
        self.loinc: dict[str, str] = {}
        for name, lab in self.labs.items():
            for code in lab.get("loinc") or ():
                self.loinc.setdefault(code, name)
        self.errors: list[Message] = []
        self.warnings: list[Message] = []
        self.clock = _Clock()
        # (key, lab, unit, the number's text) -> the value read, converted and checked: a big
        # timeline repeats few values, read once each and then shared
        self.converted: dict[tuple, Number] = {}
        self.dates: dict[str, Any] = {}  # a date's text -> what it reads as (readers that repeat dates)
        self.strings: dict[str, str] = {}  # texts that repeat (units): one copy each

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
        return self.lab_names.get(name) or self.loinc.get(name)

    def unknown(self, kind: str, name: Any, declared: Iterable[str]) -> str:
        declared = _names(declared)
        if not isinstance(name, str):
            return f"{kind} must be a name, not {_describe(name)}"
        if not declared:
            return f"unknown {kind} '{name}': the protocol declares no {kind}s"
        return f"unknown {kind} '{name}'{did_you_mean(name, declared)}"

    # -- values

    def order(self, date: datetime.date, time: str | None, index: int | None = None) -> Order:
        """The `order` of the next event read (events are read in file order); `index`, when
        given, grows with the file order (see _Clock.order)."""
        return self.clock.order(date, None if time is None else parse_time(time), index)

    def number(self, key: str, raw: Any) -> Number:
        """A lab value (key "value") or limit ("uln", "lln") as written, exact; raises
        ValueProblem: not a number, not finite, too long, negative, a limit not above 0."""
        limit = key != "value"
        try:
            x = units.exact(raw)
        except ValueError as exc:
            why = str(exc)
            if why == "not a number":
                above = " above 0" if limit else ""
                raise ValueProblem(key, f"{key} must be a number{above}, not {_describe(raw)}") from None
            if why == "not finite":
                raise ValueProblem(key, f"{key} must be a finite number, not {_shown(raw)}") from None
            raise ValueProblem(key, f"{key} {_shown(raw)} is {why}") from None
        if limit and x <= 0:
            raise ValueProblem(key, f"{key} must be a number above 0, not {_shown(raw)}")
        if x < 0:
            raise ValueProblem(key, f"value {_shown(raw)} is negative; a lab result is never below 0")
        return x

    def lab_result(self, lab: str, value: Any, unit: str | None, uln: Any, date: datetime.date, loc: Loc,
                   *, lln: Any = None, time: str | None = None, order: Order = ()) -> LabResult:
        """The LabResult: `value`, `uln`, `lln` (as written: int, float, Float, text, or exact)
        read exactly by `number` and converted exactly from `unit` to the lab's unit, then
        checked to lie in range (0..MAX_VALUE; a limit MIN_LIMIT..MAX_VALUE, an LLN below the
        ULN). Raises units.UnitError (the unit) or ValueProblem (a number)."""
        decl = self.labs[lab]
        target = decl.get("unit")
        molar_mass = decl.get("molar_mass")
        given = {"value": value, "uln": uln, "lln": lln}
        out: dict[str, Number | None] = {}
        known = self.converted
        for key, raw in given.items():
            if raw is None:
                out[key] = None
                continue
            memo = _memo_key(key, lab, unit, raw)
            x = known.get(memo) if memo is not None else None
            if x is not None:
                out[key] = x
                continue
            x = self.number(key, raw)
            if unit is not None:
                x = units.convert(x, unit, target, molar_mass)
            low, high = (0, MAX_VALUE) if key == "value" else (MIN_LIMIT, MAX_VALUE)
            if not low <= x <= high:
                converted = f" is {units.describe(x)} {target or ''}".rstrip() if unit is not None and not units.same_unit(unit, target) else ""
                what = "a lab value is at most 10^15" if key == "value" else "a limit lies between 10^-15 and 10^15"
                raise ValueProblem(key, f"{key} {_shown(raw)}{' ' + unit if unit else ''}{converted}, "
                                   f"out of range ({what} in the lab's unit)")
            out[key] = x
            if memo is not None and len(known) < _SHARED_MAX:
                known[memo] = x
        if out["lln"] is not None and out["uln"] is not None and out["lln"] >= out["uln"]:
            raise ValueProblem("lln", f"lln {_shown(lln)} is not below uln {_shown(uln)}")
        return LabResult(date, lab, out["value"], out["uln"], loc, unit, out["lln"], time, order)

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
            unit = decl.get("unit")
            in_unit = f" (in {unit})" if unit else ""
            if _is_number(value):
                try:
                    x = units.exact(value)
                except ValueError as exc:
                    if str(exc) == "not finite":
                        return None, f"fact '{name}' is a finite number{in_unit}, not {_shown(value)}"
                    return None, f"fact '{name}' is a number{in_unit}: {_shown(value)} is {exc}"
                if abs(x) > MAX_VALUE:
                    return None, f"fact '{name}' is a number{in_unit} of at most 10^15, not {units.describe(x)}"
                return x, None
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
                values[name] = _exact_default(default)
            else:
                text = f"fact '{name}' has no default and no value: {hint.format(name=name)}"
                if where is None:
                    self.error(0, "E710", text, path=COMMAND_LINE)
                else:
                    self.error_at(where, "E710", text)
        return values

    def range_filter(self, events: list, start: datetime.date | None, until: datetime.date | None) -> list:
        """Leave out, with one warning, the events outside the command line's --start/--until."""
        if start is None and until is None:
            return events
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
        if not _in_order(events):
            events = sorted(events, key=recency)
        ordered = tuple(events)
        if until is None:
            until = ordered[-1].date if ordered else start
        return Timeline(self.path, patient, facts, start, until, ordered, tuple(_sorted(self.warnings)))


def _in_order(events: list) -> bool:
    """True when `events` are already sorted by `recency` (as a file in date order gives
    them): no sort, and no key tuple per event held at once."""
    prev = None
    for event in events:
        key = (event.date, event.order)
        if prev is not None and key < prev:
            return False
        prev = key
    return True


def _sorted(messages: list[Message]) -> list[Message]:
    return sorted(messages, key=lambda m: (m.path != COMMAND_LINE, m.path, m.line, m.column))


def _memo_key(key: str, lab: str, unit: str | None, raw: Any) -> tuple | None:
    """The key under which a value read from `raw` is kept (None: not kept): the text of a
    number as written, with its type, since messages about it differ by type."""
    kind = type(raw)
    if kind is str or kind is int:
        return (key, lab, unit, kind, raw)
    text = getattr(raw, "text", None)
    if isinstance(raw, float) and isinstance(text, str):
        return (key, lab, unit, kind, text)
    return None


def _split_fact(text: Any) -> tuple[str | None, Any]:
    name, sep, value = str(text).partition("=")
    return (name.strip(), value) if sep and name.strip() else (None, text)


def _typed_from_text(kind: Any, text: str) -> Any:
    if kind == "bool":
        return {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}.get(text.lower(), text)
    if kind == "number":
        try:
            return units.exact(text)
        except ValueError:
            return text
    return text


def _exact_default(default: Any) -> Any:
    """A fact's default from the compiled graph: a JSON number is the decimal it shows."""
    if _is_number(default):
        try:
            return units.exact(default)
        except ValueError:
            return default
    return default


# ---------------------------------------------------------------------------- YAML/JSON timelines

_TOP_KEYS = ("patient", "start", "until", "events")
_PATIENT_KEYS = ("id", "facts")
_KINDS = ("lab", "event", "fact", "choice")
_ENTRY_KEYS = {
    "lab": ("date", "time", "lab", "value", "unit", "uln", "lln"),
    "event": ("date", "time", "event"),
    "fact": ("date", "time", "fact", "value"),
    "choice": ("date", "time", "choice"),
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
    when = parse_date_time(raw)
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


def _read_lab(item: Map, r: Reader, date: datetime.date | None, time: str | None, loc: Loc) -> LabResult | None:
    raw = item["lab"]
    lab = r.lab_name(raw) if isinstance(raw, str) else None
    if lab is None:
        r.error_at(item.value_pos("lab"), "E707", r.unknown("lab", raw, r.labs))
    ok = lab is not None
    if "value" not in item:
        r.error_at(item.pos, "E704", f"missing 'value' for lab {raw}")
        ok = False
    for key in ("value", "uln", "lln"):
        if key in item:
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
        return result if date is not None else None
    except units.UnitError as exc:
        r.error_at(item.value_pos("unit"), "E709", r.unit_problem(lab, unit, exc))
    except ValueProblem as exc:
        r.error_at(item.value_pos(exc.key), "E708", exc.message)
    return None
