"""The simulator: replay one patient's timeline through a compiled protocol.

    from rxwatch.simulator.engine import simulate, Machine, SimulationError
    trace = simulate(graph, timeline)            # the trace of contracts/trace.md, as a dict
    machine = Machine(graph)                     # compile once, replay many patients
    trace = machine.run(timeline, until=None)

The simulator reads the compiled graph only (compiler/lower.py defines it), never the parse
tree. `Machine(graph)` turns the graph into plain Python structures once: states with their
rules grouped by trigger, expression trees compiled to closures (expr.py), action lists to
closures. `Machine.run` then replays a `Timeline` (timeline.py) as discrete events over
calendar dates. The semantics, with worked examples, are in docs/simulation.md; in short:

- On `start` the initial state is entered. The replay ends after `until`.
- Within one day D: (1) overdue deviations of windows whose last day was D-1; (2) timers due
  on D; (3) the panel of D (all lab results of D); (4) that day's clinical events and fact
  changes, in file order.
- Entering a state: step `enter`, the entering rule's actions, the state's entry actions; then
  its timers are armed and its `on fact` rules are tried at once. A `stay` rule runs its
  actions without re-entering. In a terminal state nothing reacts; entering one withdraws the
  open orders.
- An action with a due window whose declaration orders labs opens an order; a panel with one
  of its labs fulfils it (before the panel's rules run); a window that ends with no panel
  gives one `overdue` deviation, the day after its last day, and the order stays open.
- More than `MAX_TRANSITIONS_PER_DAY` transitions on one day is a zero-time loop: the run
  ends with a SimulationError naming the states in the loop and the rules that close it.
"""

from __future__ import annotations

import datetime
import weakref
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from .expr import Compiler, Ctx, ExprError, shift
from .timeline import ClinicalEvent, Choice, FactChange, LabResult, Timeline

__all__ = ["MAX_TRANSITIONS_PER_DAY", "Machine", "SimulationError", "simulate"]

MAX_TRANSITIONS_PER_DAY = 1000
"""More transitions than this on one day can only be a loop that never lets time pass."""


class SimulationError(Exception):
    """The protocol cannot be replayed on this timeline (a zero-time loop), or the graph is
    not one the simulator can read. `path`/`line` locate it in the protocol; `date` is the
    day of the replay it happened on (None for a bad graph); `states` the states involved."""

    def __init__(self, message: str, *, path: str = "", line: int = 0,
                 date: datetime.date | None = None, states: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.path = path
        self.line = line
        self.date = date
        self.states = states

    def __str__(self) -> str:
        if self.path:
            return f"{self.path}:{self.line}: {self.message}" if self.line else f"{self.path}: {self.message}"
        return self.message


# ---------------------------------------------------------------------------- compiled model

Program = Callable[["_Run"], None]


@dataclass(slots=True)
class _Rule:
    key: str
    source: str
    target: str  # == source for a stay rule
    stay: bool
    trigger: str
    because: str
    sources: tuple[str, ...]
    line: int
    guard: Callable[[Ctx], bool] | None
    actions: tuple[Program, ...]


@dataclass(slots=True)
class _Timer:
    amount: int
    unit: str
    since: str | None
    rules: tuple[_Rule, ...]


@dataclass(slots=True)
class _State:
    name: str
    terminal: bool
    line: int
    entry: tuple[Program, ...]
    panel: tuple[_Rule, ...]
    events: dict[str, tuple[_Rule, ...]]
    facts: dict[str, tuple[_Rule, ...]]  # fact -> the rules that a change of it tries
    at_once: tuple[_Rule, ...]  # every `on fact` rule, tried on entry
    timers: tuple[_Timer, ...]


class _Order:
    __slots__ = ("action", "start", "end", "labs", "ordered", "line", "overdue")

    def __init__(self, action: str, start: datetime.date, end: datetime.date, labs: frozenset,
                 ordered: datetime.date, line: int) -> None:
        self.action = action
        self.start = start
        self.end = end
        self.labs = labs
        self.ordered = ordered
        self.line = line
        self.overdue = False

    def to_dict(self) -> dict:
        return {
            "action": self.action,
            "window": [self.start.isoformat(), self.end.isoformat()],
            "ordered": self.ordered.isoformat(),
            "overdue": self.overdue,
            "line": self.line,
        }


class _Armed:
    __slots__ = ("due", "rules")

    def __init__(self, due: datetime.date, rules: tuple[_Rule, ...]) -> None:
        self.due = due
        self.rules = rules


def _line(span: Any) -> int:
    return int(span.get("line", 0)) if isinstance(span, Mapping) else 0


class Machine:
    """A compiled protocol, ready to replay timelines: `Machine(graph).run(timeline)`.

    Compiling reads the graph once; `run` never touches it again, so one Machine replays any
    number of patients (the graph must not change meanwhile)."""

    def __init__(self, graph) -> None:
        g = graph.graph
        self.name: str = g.get("name", "")
        self.version: str = g.get("version", "")
        self.path: str = g.get("path", "") or ""
        self.initial: str = g.get("initial", "")
        if self.initial not in graph.nodes:
            raise SimulationError(f"the graph has no initial state {self.initial!r}", path=self.path)
        self.fact_defaults = {
            name: (float(d["default"]) if isinstance(d.get("default"), int) and not isinstance(d.get("default"), bool) else d.get("default"))
            for name, d in (g.get("facts") or {}).items()
        }
        self.var_defaults = {
            name: (float(d["default"]) if isinstance(d.get("default"), int) and not isinstance(d.get("default"), bool) else d.get("default"))
            for name, d in (g.get("vars") or {}).items()
        }
        self.orders: dict[str, frozenset] = {
            name: frozenset(d.get("orders") or ()) for name, d in (g.get("actions") or {}).items()
        }
        self._compiler = Compiler(g)
        edges = {key: (u, v, data) for u, v, key, data in graph.edges(keys=True, data=True)}
        self.states: dict[str, _State] = {}
        try:
            for name, data in graph.nodes(data=True):
                self.states[name] = self._state(name, data, edges)
        except ExprError as e:
            raise SimulationError(f"cannot compile the protocol for simulation: {e}", path=self.path) from None

    # -- compiling the graph

    def _state(self, name: str, data: Mapping, edges: Mapping) -> _State:
        panel: list[_Rule] = []
        events: dict[str, list[_Rule]] = {}
        fact_handlers: list[tuple[tuple[str, ...], list[_Rule]]] = []
        timers: list[_Timer] = []
        for h in data.get("handlers") or ():
            rules = [self._rule(edges[k]) for k in h.get("rules") or ()]
            trigger = h.get("trigger")
            if trigger == "panel":
                panel.extend(rules)
            elif trigger == "event":
                for ev in h.get("events") or ():
                    events.setdefault(ev, []).extend(rules)
            elif trigger == "fact":
                fact_handlers.append((tuple(h.get("facts") or ()), rules))
            elif trigger == "timer":
                t = h.get("timer") or {}
                timers.append(_Timer(int(t.get("amount", 0)), t.get("unit", "days"), t.get("since"), tuple(rules)))
        facts: dict[str, tuple[_Rule, ...]] = {}
        for fact in self.fact_defaults:
            rs = [r for names, rules in fact_handlers if not names or fact in names for r in rules]
            if rs:
                facts[fact] = tuple(rs)
        return _State(
            name=name,
            terminal=data.get("kind") == "terminal",
            line=_line(data.get("span")),
            entry=self._program(data.get("entry") or ()),
            panel=tuple(panel),
            events={k: tuple(v) for k, v in events.items()},
            facts=facts,
            at_once=tuple(r for _, rules in fact_handlers for r in rules),
            timers=tuple(timers),
        )

    def _rule(self, edge) -> _Rule:
        u, v, d = edge
        stay = bool(d.get("stay"))
        return _Rule(
            key=d.get("id") or "",
            source=u,
            target=u if stay else v,
            stay=stay,
            trigger=d.get("trigger", ""),
            because=d.get("because") or "",
            sources=tuple(d.get("sources") or ()),
            line=_line(d.get("span")),
            guard=self._compiler.condition(d.get("guard")),
            actions=self._program(d.get("actions") or ()),
        )

    def _program(self, actions) -> tuple[Program, ...]:
        return tuple(self._action(a) for a in actions)

    def _action(self, a: Mapping) -> Program:
        kind = a.get("kind")
        line = _line(a.get("span"))
        sources = tuple(a.get("sources") or ())
        if kind in ("do", "one_of"):
            w = a.get("window")
            window = (int(w["start"]), int(w["end"]), w["unit"]) if w else None
            if kind == "do":
                name = a["action"]
                labs = self.orders.get(name) or frozenset()
                return _do_action(name, window, labs, sources, line)
            options = tuple(a.get("options") or ())
            labs_of = {o: self.orders.get(o) or frozenset() for o in options}
            return _one_of_action(options, window, labs_of, sources, line)
        if kind == "set":
            return _set_action(a["var"], self._compiler.compile(a["value"]))
        if kind == "if":
            return _if_action(self._compiler.condition(a["cond"]), self._program(a.get("then") or ()),
                              self._program(a.get("else") or ()))
        raise ExprError(f"unknown action kind {kind!r}")

    # -- replay

    def run(self, timeline: Timeline, until: datetime.date | None = None, *, inputs: list | None = None) -> dict:
        """Replay `timeline`; return the trace (contracts/trace.md) as a JSON-ready dict.

        `until` overrides the timeline's end (events after it are not replayed). `inputs`, if
        given, receives `(step_index, item)` for every input as it is replayed (`item` is a
        tuple of the LabResults of a panel, a ClinicalEvent, a FactChange or a Choice), so a
        report can show the inputs among the steps. Raises SimulationError."""
        return _Run(self, timeline, until, inputs).go()


# ---------------------------------------------------------------------------- actions

def _do_action(name: str, window, labs: frozenset, sources: tuple, line: int) -> Program:
    def do(r: "_Run") -> None:
        ctx = r.ctx
        day = ctx.today
        step = {"date": r.iso, "type": "action", "action": name, "state": r.state.name}
        if window is not None:
            start = shift(day, window[0], window[2])
            end = shift(day, window[1], window[2])
            step["window"] = [start.isoformat(), end.isoformat()]
            if labs:
                r.open_order(_Order(name, start, end, labs, day, line))
        step["sources"] = list(sources)
        step["line"] = line
        r.steps.append(step)
        ctx.last[name] = day
        ctx.cache.clear()

    return do


def _one_of_action(options: tuple, window, labs_of: Mapping, sources: tuple, line: int) -> Program:
    def one_of(r: "_Run") -> None:
        ctx = r.ctx
        day = ctx.today
        taken = r.choose(options)
        step = {"date": r.iso, "type": "action", "action": taken, "state": r.state.name,
                "options": list(options)}
        if window is not None:
            start = shift(day, window[0], window[2])
            end = shift(day, window[1], window[2])
            step["window"] = [start.isoformat(), end.isoformat()]
            if labs_of[taken]:
                r.open_order(_Order(taken, start, end, labs_of[taken], day, line))
        step["sources"] = list(sources)
        step["line"] = line
        r.steps.append(step)
        ctx.last[taken] = day
        ctx.cache.clear()

    return one_of


def _set_action(var: str, value) -> Program:
    def set_(r: "_Run") -> None:
        ctx = r.ctx
        ctx.vars[var] = value(ctx)
        ctx.cache.clear()

    return set_


def _if_action(cond, then: tuple, orelse: tuple) -> Program:
    def if_(r: "_Run") -> None:
        for a in (then if cond(r.ctx) else orelse):
            a(r)

    return if_


# ---------------------------------------------------------------------------- one replay

class _Run:
    """The state of one replay: the current state, open orders, armed timers, the steps."""

    def __init__(self, m: Machine, tl: Timeline, until: datetime.date | None, inputs: list | None) -> None:
        self.m = m
        self.tl = tl
        self.start = tl.start
        last_event = tl.events[-1].date if tl.events else tl.start
        self.until = until or tl.until or max(last_event, tl.start)
        if self.until < self.start:
            raise ValueError(f"until {self.until} is before start {self.start}")
        facts = dict(m.fact_defaults)
        facts.update(tl.facts)
        self.ctx = Ctx(facts, dict(m.var_defaults), self.start)
        self.iso = self.start.isoformat()
        self.steps: list[dict] = []
        self.warnings: list[dict] = []
        self.orders: dict[str, _Order] = {}
        self.timers: list[_Armed] = []
        self.state: _State = m.states[m.initial]
        self.pending = False  # the state just entered still has to try its `on fact` rules
        self.fired_today: list[_Rule] = []
        self.choices: list[Choice] = []
        self.used: set[int] = set()
        self.inputs = inputs

    # -- the day loop

    def go(self) -> dict:
        days = self._days()
        ctx = self.ctx
        i = 0
        first = days[0] if days and days[0][0] == self.start else None
        self.begin_day(first)
        self.enter(self.m.states[self.m.initial], None)
        self.settle()
        if first is not None:
            self.inputs_and_events(first)
            self.end_of_day()
            i = 1
        else:
            self.end_of_day()
        until = self.until
        while True:
            day = days[i][0] if i < len(days) else None
            for t in self.timers:
                if day is None or t.due < day:
                    day = t.due
            for o in self.orders.values():
                if not o.overdue:
                    late = o.end + datetime.timedelta(days=1)
                    if day is None or late < day:
                        day = late
            if day is None or day > until:
                break
            ctx.today = day
            self.iso = day.isoformat()
            ctx.cache.clear()
            self.fired_today = []
            entry = days[i] if i < len(days) and days[i][0] == day else None
            self.begin_day(entry)
            # (1) overdue deviations of windows whose last day was yesterday
            for o in list(self.orders.values()):
                if not o.overdue and o.end < day:
                    o.overdue = True
                    self.steps.append({"date": self.iso, "type": "deviation", "kind": "overdue",
                                       "action": o.action, "window": [o.start.isoformat(), o.end.isoformat()],
                                       "ordered": o.ordered.isoformat(), "line": o.line})
            # (2) timers due today
            self.settle()
            # (3) the panel, (4) events and fact changes
            if entry is not None:
                self.inputs_and_events(entry)
                i += 1
            self.end_of_day()
        return self.trace()

    def _days(self) -> list[tuple]:
        """[(date, labs, others, choices)] in date order, up to `until`."""
        days: list[tuple] = []
        for ev in self.tl.events:
            if ev.date > self.until:
                break
            if ev.date < self.start:
                continue
            if not days or days[-1][0] != ev.date:
                days.append((ev.date, [], [], []))
            d = days[-1]
            if isinstance(ev, LabResult):
                d[1].append(ev)
            elif isinstance(ev, Choice):
                d[3].append(ev)
            else:
                d[2].append(ev)
        return days

    def begin_day(self, entry: tuple | None) -> None:
        self.choices = entry[3] if entry else []
        if self.inputs is not None:
            for c in self.choices:
                self.inputs.append((len(self.steps), c))

    def inputs_and_events(self, entry: tuple) -> None:
        _, labs, others, _ = entry
        ctx = self.ctx
        inputs = self.inputs
        if labs:
            if inputs is not None:
                inputs.append((len(self.steps), tuple(labs)))
            panel = {}
            ulns = {}
            for res in labs:
                panel[res.lab] = res.value
                if res.uln is not None:
                    ulns[res.lab] = res.uln
            ctx.panel = panel
            ctx.ulns = ulns
            ctx.cache.clear()
            if self.orders:
                for action in [a for a, o in self.orders.items() if not o.labs.isdisjoint(panel)]:
                    del self.orders[action]
            if not self.state.terminal:
                self.react(self.state.panel, "panel")
        for ev in others:
            if inputs is not None:
                inputs.append((len(self.steps), ev))
            if isinstance(ev, ClinicalEvent):
                if not self.state.terminal:
                    rules = self.state.events.get(ev.event)
                    if rules:
                        self.react(rules, "event", ev.event)
            elif isinstance(ev, FactChange):
                if ctx.facts.get(ev.fact) == ev.value and type(ctx.facts.get(ev.fact)) is type(ev.value):
                    continue  # not a change
                ctx.facts[ev.fact] = ev.value
                ctx.cache.clear()
                if not self.state.terminal:
                    rules = self.state.facts.get(ev.fact)
                    if rules:
                        self.react(rules, "fact", ev.fact)

    def end_of_day(self) -> None:
        for c in self.choices:
            if id(c) not in self.used:
                self.warnings.append({
                    "date": c.date.isoformat(), "line": c.loc.line,
                    "message": f"the choice of {c.action} on {c.date} was not used: the protocol offered "
                               f"no alternatives with {c.action} among them that day",
                })

    # -- reacting

    def react(self, rules: tuple[_Rule, ...], trigger: str, name: str | None = None) -> None:
        ctx = self.ctx
        for rule in rules:
            g = rule.guard
            if g is None or g(ctx):
                self.fire(rule, trigger, name)
                self.settle()
                return

    def fire(self, rule: _Rule, trigger: str, name: str | None = None) -> None:
        fired = self.fired_today
        fired.append(rule)
        if len(fired) > MAX_TRANSITIONS_PER_DAY:
            raise self.loop_error()
        step = {"date": self.iso, "type": "transition", "from": rule.source, "to": rule.target,
                "trigger": trigger, "because": rule.because, "sources": list(rule.sources),
                "rule": rule.key, "line": rule.line}
        if rule.stay:
            step["stay"] = True
        if name is not None:
            step[trigger] = name
        self.steps.append(step)
        if rule.stay:
            for a in rule.actions:
                a(self)
        else:
            self.enter(self.m.states[rule.target], rule)

    def enter(self, st: _State, rule: _Rule | None) -> None:
        self.state = st
        step = {"date": self.iso, "type": "enter", "state": st.name, "line": st.line}
        self.steps.append(step)
        if st.terminal and self.orders:
            step["withdrawn"] = [o.action for o in self.orders.values()]
            self.orders.clear()
        if rule is not None:
            for a in rule.actions:
                a(self)
        for a in st.entry:
            a(self)
        self.timers = []
        if st.terminal:
            self.pending = False
            return
        today = self.ctx.today
        for t in st.timers:
            base = today if t.since is None else self.ctx.last.get(t.since)
            if base is None:
                continue  # the action it counts from was never recommended: not armed
            due = shift(base, t.amount, t.unit)
            self.timers.append(_Armed(due if due > today else today, t.rules))
        self.pending = bool(st.at_once)

    def settle(self) -> None:
        """Try the `on fact` rules of a state just entered, then fire the timers due today,
        until nothing more happens today."""
        ctx = self.ctx
        today = ctx.today
        while True:
            if self.pending:
                self.pending = False
                for rule in self.state.at_once:
                    g = rule.guard
                    if g is None or g(ctx):
                        self.fire(rule, "fact")
                        break
                continue
            timers = self.timers
            if not timers:
                return
            for t in timers:
                if t.due <= today:
                    break
            else:
                return
            timers.remove(t)
            for rule in t.rules:
                g = rule.guard
                if g is None or g(ctx):
                    self.fire(rule, "timer")
                    break

    # -- orders and choices

    def open_order(self, order: _Order) -> None:
        self.orders.pop(order.action, None)  # a new order of the same action replaces the open one
        self.orders[order.action] = order

    def choose(self, options: tuple[str, ...]) -> str:
        for c in self.choices:
            if c.action in options and id(c) not in self.used:
                self.used.add(id(c))
                return c.action
        return options[0]

    # -- the result

    def loop_error(self) -> SimulationError:
        fired = self.fired_today
        last = fired[-1]
        # the shortest cycle that ends with the last rule fired
        cycle = [last]
        for rule in reversed(fired[:-1]):
            if rule is last:
                break
            cycle.append(rule)
        cycle.reverse()
        states = [cycle[0].source] + [r.target for r in cycle]
        rules = ", ".join(f"{r.key} (line {r.line})" for r in cycle)
        return SimulationError(
            f"zero-time loop on {self.ctx.today}: {' -> '.join(states)} keeps firing without time "
            f"passing (more than {MAX_TRANSITIONS_PER_DAY} transitions in one day); the rules in the "
            f"loop: {rules}",
            path=self.m.path, line=cycle[0].line, date=self.ctx.today, states=tuple(dict.fromkeys(states)),
        )

    def trace(self) -> dict:
        return {
            "protocol": {"name": self.m.name, "version": self.m.version},
            "patient": self.tl.patient,
            "start": self.start.isoformat(),
            "until": self.until.isoformat(),
            "steps": self.steps,
            "final_state": self.state.name,
            "open_orders": [o.to_dict() for o in self.orders.values()],
            "warnings": self.warnings,
        }


# ---------------------------------------------------------------------------- the public entry

_machines: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def simulate(graph, timeline: Timeline, *, until: datetime.date | None = None) -> dict:
    """Replay `timeline` through the compiled protocol `graph`; return the trace as a dict.

    The graph is compiled once per graph object (a Machine kept while the graph lives)."""
    try:
        m = _machines[graph]
    except (KeyError, TypeError):
        m = Machine(graph)
        try:
            _machines[graph] = m
        except TypeError:
            pass
    return m.run(timeline, until=until)
