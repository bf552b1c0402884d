"""Checking an expectation against a trace: does the replay meet it, and if not, what it shows.

`check(expectation, trace, names)` takes an `Expectation` (suite/expectations.py) and a trace
as the simulator returns it (shared/contracts/trace.md: `steps`, `final_state`, `final_states`,
`open_orders`, `drugs`, `until`) and returns an `Outcome`: ok, or not with the words that say
what the trace shows instead (the steps of the same kind on other dates, what happened on the
day asked, the state the patient was in). Nothing here reads a file or knows a protocol.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from rxwatch.simulator import units

from .expectations import FOREVER, FOREVER_AGO, NUMBER_WORD, Expectation, Names, normal

__all__ = ["Outcome", "check", "shown_value", "trace_value"]


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
        return f"set {step.get('var')} = {shown_value(trace_value(step, 'value'))}"
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


_STEP_TYPE = {"action": "action", "enter": "enter", "transition": "transition", "stay": "transition",
              "rule": "transition", "preempted": "transition", "deviation": "deviation", "unassessable": "unassessable"}


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
    kind = _STEP_TYPE.get(e.subject)  # the one step type a subject can match (None: any: `replaced`)
    similar = [s for s in steps if (kind is None or s.get("type") == kind) and _step_matches(e, s)]
    found = [s for s in similar if e.when is None or e.when.holds(_day(s["date"]))]
    if e.count.holds(len(found)):
        return Outcome(e, True)
    return Outcome(e, False, _explain(e, trace, similar, found, names))


# ---------------------------------------------------------------------------- values (format 3)

def trace_value(d: Mapping, key: str) -> Any:
    """A value as the trace writes it, exactly: `key_exact` (a decimal or p/q text) when there
    is one, else the JSON value (a float by its shortest repr); null is unknown."""
    text = d.get(key + "_exact")
    if isinstance(text, str):
        try:
            return normal(Fraction(text))
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
        return normal(Fraction(value))
    if isinstance(value, str) and NUMBER_WORD.fullmatch(value):
        return units.exact(value)
    return value



def _same(expected: Any, actual: Any) -> bool:
    if expected is None or isinstance(expected, bool) or isinstance(actual, bool):
        return expected is actual or (isinstance(expected, bool) and isinstance(actual, bool) and expected == actual)
    if isinstance(expected, (int, Fraction)):
        return isinstance(actual, (int, Fraction)) and expected == actual
    return expected == actual


def shown_value(value: Any) -> str:
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
        actual = trace_value(last, "value")
        why = f"set on {last['date']}" + (f" in {last['state']}" if last.get("state") else "")
    else:
        actual = e.default
        why = "its default: not set by then"
    if _same(e.value, actual):
        return Outcome(e, True)
    when = f"on {day}" if e.when is not None else "at the end"
    return Outcome(e, False, f"var {e.name} {when} is {shown_value(actual)} ({why})")


def _check_value(e: Expectation, trace: Mapping) -> Outcome:
    day = e.when.first.isoformat() if e.when is not None else None
    that_day = [s for s in trace.get("steps", ()) if s.get("date") == day]
    decisions = [s for s in that_day if s.get("type") in ("transition", "unassessable")
                 and (e.track is None or s.get("track") == e.track)]
    seen = [(s, trace_value(s["values"], e.name)) for s in decisions
            if isinstance(s.get("values"), Mapping) and e.name in s["values"]]
    if seen and all(_same(e.value, v) for _, v in seen):
        return Outcome(e, True)
    if seen:
        shown = "; ".join(f"{shown_value(v)} ({_describe_step(s)})" for s, v in seen[:6])
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
            return str(final.get("status")), trace_value(final, "dose"), [], "at the end"
    # an action's step, or an event's transition (an event that stops the drug), shows its state after
    acts = [s for s in trace.get("steps", ()) if s.get("type") in ("action", "transition")
            and isinstance(s.get("drug"), Mapping) and s["drug"].get("name") == e.name
            and (day is None or _day(s["date"]) <= day)]
    if not acts:
        return "not_started", e.default, [], "no action on it by then"
    last = acts[-1]
    d = last["drug"]
    after = f"action {last.get('action')}" if last.get("type") == "action" else f"event {last.get('event')}"
    return (str(d.get("status")), trace_value(d, "dose"), list(d.get("held_by") or ()),
            f"after {after} on {last['date']}")


def _check_drug(e: Expectation, trace: Mapping) -> Outcome:
    status, dose, held_by, why = _drug_at(e, trace)
    ok = ((e.kind is None or status == e.kind) and (not e.has_value or _same(e.value, dose))
          and (e.held_by is None or e.held_by in held_by))
    if ok:
        return Outcome(e, True)
    when = f"on {e.when.first}" if e.when is not None else "at the end"
    by = f" by {', '.join(held_by)}" if held_by and status == "held" else ""
    return Outcome(e, False, f"drug {e.name} {when}: {status}{by}, dose {shown_value(dose)} ({why})")


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
    first = e.when.first if e.when else FOREVER_AGO
    last = e.when.last if e.when else FOREVER
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
