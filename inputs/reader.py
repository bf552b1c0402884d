"""What every reader shares: the protocol's declarations, located messages, dates and times,
exact lab values and facts, the command line's --start/--until/--fact, and the Timeline made
at the end (`Reader.finish`). The formats (yamljson.py, csvlabs.py, fhir_bundle.py,
fhir_ndjson.py) each read their own syntax and call this; none of them imports another.

Numbers are exact (`units.exact`: an int, or a Fraction read from the decimal the file shows),
results are converted exactly to their lab's unit, and every value and limit is checked to be
finite and in range after the conversion.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterable, Mapping
from fractions import Fraction
from typing import Any

from rxwatch.compiler.diagnostics import did_you_mean
from rxwatch.simulator import units
from rxwatch.simulator.units import Number

from .model import COMMAND_LINE, MAX_VALUE, MIN_LIMIT, SHARED_MAX, LabResult, Loc, Message, Order, Timeline, \
    TimelineError, recency
from .yamlsrc import Map, Pos, Seq

__all__ = [
    "Reader", "Clock", "ValueProblem", "parse_date", "parse_date_time", "parse_time", "describe", "is_number",
]


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


class Clock:
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


def describe(value: Any) -> str:
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


def is_number(value: Any) -> bool:
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
    """What every reader shares: the protocol's declarations, the messages, checking a lab
    result or a fact value, the command-line options, and assembling the Timeline."""

    def __init__(self, path: str, protocol: Mapping) -> None:
        self.path = path
        self.protocol = protocol
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
        self.clock = Clock()
        # (key, lab, unit, the number's text) -> the value read, converted and checked: a big
        # timeline repeats few values, read once each and then shared
        self.converted: dict[tuple, Number] = {}
        self.dates: dict[str, Any] = {}  # a date's text -> what it reads as (readers that repeat dates)
        self.strings: dict[str, str] = {}  # texts that repeat (units): one copy each
        # a lab entry's lab, numbers and unit as written -> (lab, value, uln, lln, unit) read from
        # them without a mistake: an entry written the same way again is read the same way (each
        # format makes its own keys; only the date, time and place differ)
        self.entries: dict[tuple, tuple] = {}

    def remember(self, key: tuple | None, result: LabResult) -> None:
        """Keep what the lab entry `key` (see `entries`) read as."""
        if key is not None and len(self.entries) < SHARED_MAX:
            self.entries[key] = (result.lab, result.value, result.uln, result.lln, result.unit)

    def again(self, key: tuple | None, date: datetime.date, loc: Loc, time: str | None, order: Order) -> LabResult | None:
        """The LabResult of a lab entry read before (`remember`), on `date`; None when not."""
        known = self.entries.get(key) if key is not None else None
        if known is None:
            return None
        lab, value, uln, lln, unit = known
        return LabResult(date, lab, value, uln, loc, unit, lln, time, order)

    def reset(self, path: str) -> None:
        """Ready for the next patient of an extract (`rxwatch audit`): no messages, a fresh
        clock; the declarations and the values already read and checked are kept."""
        self.path = path
        self.errors = []
        self.warnings = []
        self.clock = Clock()

    # -- messages

    def error(self, line: int, code: str, text: str, column: int = 0, *, path: str | None = None) -> None:
        self.errors.append(Message(path or self.path, line, text, "error", code, column))

    def warning(self, line: int, code: str, text: str, column: int = 0, *, path: str | None = None) -> None:
        self.warnings.append(Message(path or self.path, line, text, "warning", code, column))

    def error_at(self, pos: Pos, code: str, text: str) -> None:
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
            return f"{kind} must be a name, not {describe(name)}"
        if not declared:
            return f"unknown {kind} '{name}': the protocol declares no {kind}s"
        return f"unknown {kind} '{name}'{did_you_mean(name, declared)}"

    # -- values

    def order(self, date: datetime.date, time: str | None, index: int | None = None) -> Order:
        """The `order` of the next event read (events are read in file order); `index`, when
        given, grows with the file order (see Clock.order)."""
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
                raise ValueProblem(key, f"{key} must be a number{above}, not {describe(raw)}") from None
            if why == "not finite":
                raise ValueProblem(key, f"{key} must be a finite number, not {_shown(raw)}") from None
            raise ValueProblem(key, f"{key} {_shown(raw)} is {why}") from None
        if limit and x <= 0:
            raise ValueProblem(key, f"{key} must be a number above 0, not {_shown(raw)}")
        if x < 0:
            raise ValueProblem(key, f"value {_shown(raw)} is negative; a lab result is never below 0")
        return x

    def known(self, key: str, lab: str | None, unit: Any, raw: Any) -> bool:
        """`raw` (a number as written, not a text) was read as `key` of `lab` in `unit` before, and
        passed every check: `number(key, raw)` would pass again."""
        if lab is None or not (unit is None or type(unit) is str):
            return False
        memo = _memo_key(key, lab, unit, raw)
        return memo is not None and memo[3] is not str and memo in self.converted

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
            if memo is not None and len(known) < SHARED_MAX:
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
            return None, f"fact '{name}' is true or false, not {describe(value)}"
        if kind == "number":
            unit = decl.get("unit")
            in_unit = f" (in {unit})" if unit else ""
            if is_number(value):
                try:
                    x = units.exact(value)
                except ValueError as exc:
                    if str(exc) == "not finite":
                        return None, f"fact '{name}' is a finite number{in_unit}, not {_shown(value)}"
                    return None, f"fact '{name}' is a number{in_unit}: {_shown(value)} is {exc}"
                if abs(x) > MAX_VALUE:
                    return None, f"fact '{name}' is a number{in_unit} of at most 10^15, not {units.describe(x)}"
                return x, None
            return None, f"fact '{name}' is a number{in_unit}, not {describe(value)}"
        members = _names(decl.get("members") or ())
        if isinstance(value, str) and value in members:
            return value, None
        if isinstance(value, str):
            hint = did_you_mean(value, members)
            listing = "" if hint or len(members) > 10 else f" (one of {', '.join(members)})"
            return None, f"'{value}' is not a member of fact '{name}'{hint}{listing}"
        return None, f"fact '{name}' is one of {', '.join(members)}, not {describe(value)}"

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

    def initial_facts(self, given: Mapping[str, Any], where: Pos | None, hint: str) -> dict:
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
    if is_number(default):
        try:
            return units.exact(default)
        except ValueError:
            return default
    return default
