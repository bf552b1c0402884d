"""What the readers make: one patient's history as a protocol sees it.

`Timeline` holds the patient, the facts at the start, the replay's first and last day and the
events (`LabResult`, `ClinicalEvent`, `FactChange`, `Choice`), each with the `Loc` it was read
from. `Message` and `TimelineError` are how a reader reports a mistake of its input (E7xx/W7xx,
docs/diagnostics.md). This module reads nothing: the formats are the reader modules beside it
(inputs/registry.py picks one), and the engine replays a Timeline whatever file it came from.

Numbers are exact (`units.exact`: an int, or a Fraction read from the decimal the file shows)
and in their lab's unit. Results and events may carry a time of day; within a day,
`Timeline.events` is ordered by `Event.order` (see inputs/reader.py's `Clock`). Two results of
one lab on one day are both kept: `latest_results` tells which counts.
"""

from __future__ import annotations

import datetime
import itertools
import operator
from collections.abc import Iterable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import TYPE_CHECKING, Any, Union

from rxwatch.compiler.diagnostics import Diagnostic
from rxwatch.compiler.span import Span
from rxwatch.simulator.expr import exact_q

if TYPE_CHECKING:
    from rxwatch.simulator.units import Number

__all__ = [
    "Loc", "Order", "LabResult", "ClinicalEvent", "FactChange", "Choice", "Event", "Message", "Timeline",
    "TimelineError", "COMMAND_LINE", "MAX_VALUE", "MIN_LIMIT", "latest_results", "recency",
]

COMMAND_LINE = "<command line>"
"""The path of messages about `--fact`, `--start` and `--until`."""

MAX_VALUE = 10**15
"""The largest lab value, limit or number fact accepted, after conversion to the lab's unit."""

MIN_LIMIT = Fraction(1, 10**15)
"""The smallest ULN or LLN accepted, after conversion (so that value/limit stays below 10^30)."""


@dataclass(frozen=True, slots=True)
class Loc:
    path: str
    line: int  # 1-based; 0 when unknown


Order = tuple
"""An event's place within its day: `(clock, index)`, a `datetime.time` without zone and the
event's index in its file; `()` for an event made in code (it sorts first). See reader.Clock."""


class _ReadFirst:
    """The slots of LabResult that the replay reads for every result (besides the object's type):
    a base class's slots come first in memory, so these lie in the object's first 64 bytes, one
    cache line (a dataclass with `slots=True` lays its own out in the fields' order, which stays
    as it is)."""

    __slots__ = ("date", "lab", "q", "uln_q")


@dataclass(frozen=True, slots=True, init=False)
class LabResult(_ReadFirst):
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

    def __init__(self, date: datetime.date, lab: str, value: Number, uln: Number | None, loc: Loc,
                 unit: str | None = None, lln: Number | None = None, time: str | None = None,
                 order: Order = ()) -> None:
        # the dataclass's own __init__, with each field set by its slot's descriptor rather than
        # object.__setattr__ (a frozen class's way): twice as fast, and a big timeline makes
        # one LabResult per result
        s = _SET_FIELDS
        s[0](self, date)
        s[1](self, lab)
        s[2](self, value)
        s[3](self, uln)
        s[4](self, loc)
        s[5](self, unit)
        s[6](self, lln)
        s[7](self, time)
        s[8](self, order)
        s[9](self, _shared_q(value))
        s[10](self, None if uln is None else _shared_q(uln))


_SET_FIELDS = tuple(getattr(LabResult, name).__set__ for name in (
    "date", "lab", "value", "uln", "loc", "unit", "lln", "time", "order", "q", "uln_q"))

_QS: dict = {}
SHARED_MAX = 100_000
"""Entries kept per cache of shared values (then new values are not kept)."""


def _shared_q(value: Number) -> Any:
    """`exact_q(value)`, one object for equal values (lab values repeat: a big timeline holds
    few distinct ones), up to SHARED_MAX of them."""
    key = (value._numerator, value._denominator) if type(value) is Fraction else value  # a Fraction's hash is slow
    q = _QS.get(key)
    if q is None:
        q = exact_q(value)
        if len(_QS) < SHARED_MAX:
            _QS[key] = q
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
    until: datetime.date | None  # a reader always sets it
    events: tuple  # of Event, sorted by (date, order): within a day by time, see reader.Clock
    warnings: tuple[Message, ...] = ()
    # the events grouped by day, as the simulator replays them: ((date, (event, ...)), ...)
    days: tuple = field(default=(), init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "days", tuple((day, tuple(group)) for day, group in
                                               itertools.groupby(self.events, operator.attrgetter("date"))))


def recency(event: Event) -> tuple:
    """`(date, order)`: the later of two results is the one with the greater recency (by date,
    then by time as reader.Clock orders a day, then by file order)."""
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
