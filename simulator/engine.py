"""The simulator: replay one patient's timeline through a compiled protocol.

    from rxwatch.simulator.engine import simulate, Machine, SimulationError
    trace = simulate(graph, timeline)            # the trace of contracts/trace.md, as a dict
    machine = Machine(graph)                     # compile once, replay many patients
    trace = machine.run(timeline, until=None)

The simulator reads the compiled graph only (compiler/lower.py defines it), never the parse
tree. `Machine(graph)` turns the graph into Python once: states with their rules grouped by
trigger, and for each group one generated function that tries the guards (expr.py) and fires
the rule they choose: its steps, its actions and the target's entry actions (`_Program`).
`Machine.run` then replays a `Timeline` (timeline.py) as discrete events over calendar dates.
The semantics, with worked examples, are in docs/simulation.md; in short:

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
import linecache
from fractions import Fraction
import operator
import re
import weakref
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from rxwatch.compiler import ir

from .expr import _NO_ORDERS, MAX_DATE, Compiler, Ctx, ExprError, Q, exact_q, protocol_line, register, shift
from .timeline import ClinicalEvent, Choice, FactChange, LabResult, Timeline, latest_results

__all__ = ["MAX_TRANSITIONS_PER_DAY", "Machine", "SimulationError", "simulate"]

MAX_TRANSITIONS_PER_DAY = 1000
"""More transitions than this on one day can only be a loop that never lets time pass."""


class SimulationError(Exception):
    """The protocol cannot be replayed on this timeline (a zero-time loop), or the graph is
    not one the simulator can read. `path`/`line` locate it in the protocol; `date` is the
    day of the replay it happened on (None for a bad graph); `states` the states involved."""

    def __init__(self, message: str, *, path: str = "", line: int = 0,
                 date: datetime.date | None = None, states: tuple[str, ...] = (), code: str = "") -> None:
        super().__init__(message)
        self.message = message
        # E901: a zero-time loop; E902: a graph the simulator cannot run (docs/diagnostics.md)
        self.code = code or ("E901" if states else "E902")
        self.path = path
        self.line = line
        self.date = date
        self.states = states

    def __str__(self) -> str:
        if self.path:
            return f"{self.path}:{self.line}: {self.message}" if self.line else f"{self.path}: {self.message}"
        return self.message


# ---------------------------------------------------------------------------- compiled model

@dataclass(slots=True)
class _Rule:
    key: str
    source: str
    target: str  # == source for a stay rule
    stay: bool
    trigger: str
    because: str
    sources: list[str]  # shared by the steps: a trace is read, not changed
    line: int
    actions: tuple  # of _Do, _OneOf, _Set, _If
    to_state: "_State | None" = None  # set once every state is built


@dataclass(slots=True)
class _Handler:
    """Rules tried in order: `react(run)` fires the first whose guard holds and says whether
    one did (generated once every state is built). `steps[i]`: the `transition` step of rule
    i fired by this handler (its date left to fill)."""

    rules: tuple[_Rule, ...]
    guards: list
    steps: tuple[dict, ...]
    label: str
    trigger: str = ""
    name: str | None = None  # the event or fact
    exclusive: bool = False  # the verifier proves the guards disjoint: a true one fires whatever the others are
    react: Callable[["_Run"], bool] | None = None


@dataclass(slots=True)
class _Timer:
    amount: int
    unit: str
    since: str | None
    handler: _Handler


@dataclass(slots=True)
class _State:
    name: str
    terminal: bool
    line: int
    entry: tuple  # of _Do, _OneOf, _Set, _If
    panel: _Handler | None
    events: dict[str, _Handler]
    facts: dict[str, _Handler]  # fact -> the rules that a change of it tries
    at_once: _Handler | None  # every `on fact` rule, tried on entry
    timers: tuple[_Timer, ...]
    step: dict  # its `enter` step (the date left to fill)
    enter: Callable[["_Run"], None] | None = None  # entering it other than by a rule (made for the initial state)


# the actions of the protocol, compiled: `_Program` turns lists of them into Python code

@dataclass(slots=True)
class _Do:
    name: str
    step: dict  # its `action` step (the date left to fill); with a window: see `on`
    on: "Callable[[datetime.date], tuple[dict, _Order | None]] | None"  # the step and order of a day
    memo: dict | None  # what `on` has made so far, by day
    opens: bool  # it opens an order


@dataclass(slots=True)
class _OneOf:
    run: Callable[["_Run"], None]


@dataclass(slots=True)
class _Set:
    var: str
    value: Callable[[Ctx], Any]


@dataclass(slots=True)
class _If:
    cond: Callable[[Ctx], bool]
    then: tuple
    orelse: tuple


_ONE_DAY = datetime.timedelta(days=1)
_DATE = operator.attrgetter("date")
_NOTHING: dict = {}  # no panel, no ULNs (never written: expressions only read a panel)


class _Order:
    """An order opened on one day by one action of the protocol: the same for every patient
    that day, so it is made once (per action and day) and shared. Whether it is overdue is
    the replay's business (`_Run.overdue`, a set of orders: an order is opened on one day
    only and overdue on later days only, so a new order is never one already overdue)."""

    __slots__ = ("action", "text", "labs", "fulfil", "opens", "ordered", "line", "late", "deviation")

    def __init__(self, action: str, text: list, late: datetime.date, labs: frozenset, ordered: str,
                 line: int, opens: datetime.date | None = None, fulfil: tuple = ()) -> None:
        self.action = action
        self.text = text  # [from, to]: ISO dates, shared by the steps
        self.labs = labs
        # what fulfils it: alternatives, each a set of labs that must all have results
        self.fulfil: tuple[frozenset, ...] = fulfil or (labs,)
        self.opens = opens  # the window's first day: results before it do not fulfil
        self.ordered = ordered  # ISO date
        self.line = line
        self.late = late  # the day after the window's last day: the day it becomes overdue
        self.deviation = {"date": None, "type": "deviation", "kind": "overdue", "action": action,
                          "window": text, "ordered": ordered, "line": line}

    def to_dict(self, overdue: bool) -> dict:
        return {
            "action": self.action,
            "window": list(self.text),
            "ordered": self.ordered,
            "overdue": overdue,
            "line": self.line,
        }


class _Armed:
    __slots__ = ("due", "handler")

    def __init__(self, due: datetime.date, handler: _Handler) -> None:
        self.due = due
        self.handler = handler


def _value(v: Any) -> Any:
    """A fact's value as expressions read it: numbers as the runtime's exact rationals."""
    return v if isinstance(v, (bool, str)) or v is None else exact_q(v)


def _default(decl: Mapping) -> Any:
    """A fact's or var's declared default (numbers exact, as the runtime's rationals); None when
    it has none."""
    v = decl.get("default")
    if isinstance(v, bool) or not isinstance(v, (int, float, str)) or (isinstance(v, str) and decl.get("type") != "number"):
        return v
    return exact_q(ir.exact(v))


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
        self.fact_defaults = {name: _default(d) for name, d in (g.get("facts") or {}).items()}
        self.var_defaults = {name: _default(d) for name, d in (g.get("vars") or {}).items()}
        self.orders: dict[str, frozenset] = {
            name: frozenset(d.get("orders") or ()) for name, d in (g.get("actions") or {}).items()
        }
        # action -> what fulfils its order: alternatives, each a set of labs
        self.fulfil: dict[str, tuple[frozenset, ...]] = {
            name: tuple(frozenset(alt) for alt in (d.get("fulfilled_by") or ()) if alt) or (self.orders[name],)
            for name, d in (g.get("actions") or {}).items()
        }
        self.labs: dict = dict(g.get("labs") or {})
        self.uln_defaults = {name: ir.exact(d["uln"]) for name, d in self.labs.items()
                             if isinstance(d, Mapping) and d.get("uln") is not None}
        self.lookback = _setting_days(g.get("results_valid"))  # (amount, unit) or None: the same day
        self.reminders = _setting_days(g.get("reminders"))  # (amount, unit) or None: no reminders
        self.isos: dict[datetime.date, str] = {}  # day -> its ISO text, for every replay of this Machine
        self._compiler = Compiler(g, rational_inputs=True)  # the replay puts only runtime rationals (Q) in its panels
        edges = {key: (u, v, data) for u, v, key, data in graph.edges(keys=True, data=True)}
        _validate_trees(graph, self.path)  # a graph read from a file is untrusted
        self._rules: dict[str, _Rule] = {}
        self._handlers: dict[tuple, _Handler] = {}
        self.states: dict[str, _State] = {}
        try:
            for name, data in graph.nodes(data=True):
                self.states[name] = self._state(name, data, edges)
        except ExprError as e:
            raise SimulationError(f"cannot compile the protocol for simulation: {e}", path=self.path) from None
        except (KeyError, TypeError, ValueError) as e:  # a graph not made by compiler/lower.py
            raise SimulationError(f"not a compiled protocol graph: {type(e).__name__}: {e}", path=self.path) from None
        for rule in self._rules.values():
            if rule.target not in self.states:
                raise SimulationError(f"rule {rule.key} leads to {rule.target!r}, which is not a state", path=self.path,
                                      line=rule.line)
            rule.to_state = self.states[rule.target]
        # the code that reacts (tries the rules, fires one) and that enters each state
        gen = _Program(any(st.timers for st in self.states.values()),
                       any(st.at_once is not None for st in self.states.values()),
                       _reads_since_entry(graph))
        try:
            lets = g.get("lets") or {}
            for h in self._handlers.values():
                h.react = gen.react(self._compiler, h, lets)
            initial = self.states[self.initial]  # the one state entered other than by a rule
            initial.enter = gen.enter(initial)
        except ExprError as e:
            raise SimulationError(f"cannot compile the protocol for simulation: {e}", path=self.path) from None

    # -- compiling the graph

    def _state(self, name: str, data: Mapping, edges: Mapping) -> _State:
        panel: list = []
        events: dict[str, list] = {}
        fact_handlers: list[tuple[tuple[str, ...], list]] = []
        timers: list[_Timer] = []
        terminal = data.get("kind") == "terminal"
        for h in () if terminal else data.get("handlers") or ():  # a terminal state reacts to nothing
            rules = [edges[k] for k in h.get("rules") or ()]
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
                timers.append(_Timer(int(t.get("amount", 0)), t.get("unit", "days"), t.get("since"),
                                     self._handler(rules, f"{name}_timer", "timer")))
        facts = {}
        for fact in self.fact_defaults:
            rs = [r for names, rules in fact_handlers if not names or fact in names for r in rules]
            if rs:
                facts[fact] = self._handler(rs, f"{name}_fact_{fact}", "fact", fact)
        line = _line(data.get("span"))
        return _State(
            name=name,
            terminal=terminal,
            line=line,
            entry=self._program(data.get("entry") or (), name),
            panel=self._handler(panel, f"{name}_panel", "panel"),
            events={k: self._handler(v, f"{name}_event_{k}", "event", k) for k, v in events.items()},
            facts=facts,
            at_once=self._handler([r for _, rules in fact_handlers for r in rules], f"{name}_facts", "fact"),
            timers=tuple(timers),
            step={"date": None, "type": "enter", "state": name, "line": line},
        )

    def _handler(self, edges: list, label: str, trigger: str, name: str | None = None) -> _Handler | None:
        """The rules of `edges` (graph edges, in order), their guards and the transition steps
        they give when `trigger` (`name`: the event or fact) fires them."""
        if not edges:
            return None
        key = tuple(e[2].get("id") for e in edges)
        cached = self._handlers.get((key, trigger, name))
        if cached is None:
            rules = tuple(self._rules[k] if k in self._rules else self._rule(e) for k, e in zip(key, edges))
            steps = []
            for rule in rules:
                step = {"date": None, "type": "transition", "from": rule.source, "to": rule.target,
                        "trigger": trigger, "because": rule.because, "sources": rule.sources,
                        "rule": rule.key, "line": rule.line}
                if rule.stay:
                    step["stay"] = True
                if name is not None:
                    step[trigger] = name
                steps.append(step)
            exclusive = all(e[2].get("mode") == "exclusive" for e in edges)
            cached = self._handlers[(key, trigger, name)] = _Handler(rules, [e[2].get("guard") for e in edges],
                                                                     tuple(steps), label, trigger, name, exclusive)
        return cached

    def _rule(self, edge) -> _Rule:
        u, v, d = edge
        stay = bool(d.get("stay"))
        target = u if stay else v
        rule = self._rules[d.get("id") or ""] = _Rule(
            key=d.get("id") or "",
            source=u,
            target=target,
            stay=stay,
            trigger=d.get("trigger", ""),
            because=d.get("because") or "",
            sources=list(d.get("sources") or ()),
            line=_line(d.get("span")),
            # a rule's actions run in its target state (entered first; a stay rule stays)
            actions=self._program(d.get("actions") or (), target),
        )
        return rule

    def _program(self, actions, state: str) -> tuple:
        """The actions, run in `state` (the state their steps name)."""
        return tuple(self._action(a, state) for a in actions)

    def _action(self, a: Mapping, state: str):
        kind = a.get("kind")
        line = _line(a.get("span"))
        sources = list(a.get("sources") or ())  # shared by the steps: a trace is read, not changed
        if kind in ("do", "one_of"):
            w = a.get("window")
            window = (int(w["start"]), int(w["end"]), w["unit"]) if w else None
            if kind == "do":
                name = a["action"]
                labs = self.orders.get(name) or frozenset()
                step = {"date": None, "type": "action", "action": name, "state": state, "sources": sources,
                        "line": line}
                if window is None:
                    return _Do(name, step, None, None, False)
                memo: dict = {}
                return _Do(name, step, _on_day(step, window, labs, self.fulfil.get(name, ()), self.isos, memo), memo,
                           bool(labs))
            options = tuple(a.get("options") or ())
            labs_of = {o: (self.orders.get(o) or frozenset(), self.fulfil.get(o, ())) for o in options}
            return _OneOf(_one_of_action(options, state, window, labs_of, sources, line, self.isos))
        if kind == "set":
            return _Set(a["var"], self._compiler.value(a["value"], f"set_{a['var']}"))
        if kind == "if":
            return _If(self._compiler.condition(a["cond"], "if"), self._program(a.get("then") or (), state),
                       self._program(a.get("else") or (), state))
        raise ExprError(f"unknown action kind {kind!r}")

    def result_dict(self, res: LabResult, day: datetime.date) -> dict:
        """A result as a trace's `panel` step shows it: the value in the lab's unit, its ULN and
        its multiple of the ULN; the exact value as text where the number is not whole."""
        d: dict[str, Any] = {"lab": res.lab}
        put_number(d, "value", res.value)
        lab = self.labs.get(res.lab)
        unit = lab.get("unit") if lab else None
        if unit:
            d["unit"] = unit
        uln = res.uln if res.uln is not None else self.uln_defaults.get(res.lab)
        if uln is not None:
            put_number(d, "uln", uln)
            if uln:
                put_number(d, "xuln", Fraction(res.value) / uln)
        if res.date != day:
            d["from"] = _iso(self.isos, res.date)
        time = getattr(res, "time", None)
        if time is not None:
            d["time"] = time
        if res.loc.line:
            d["line"] = res.loc.line  # where the result stands in the input
        return d

    # -- replay

    def run(self, timeline: Timeline, until: datetime.date | None = None, *, inputs: list | None = None) -> dict:
        """Replay `timeline`; return the trace (contracts/trace.md) as a JSON-ready dict.

        `until` overrides the timeline's end (events after it are not replayed). `inputs`, if
        given, receives `(step_index, item)` for every input as it is replayed (`item` is a
        tuple of the LabResults of a panel, a ClinicalEvent, a FactChange or a Choice), so a
        report can show the inputs among the steps. Raises SimulationError.

        The steps of a trace share what does not change between them (the lists of `sources`,
        `options` and `window`): a trace is read, not changed."""
        run = _Run(self, timeline, until, inputs)
        try:
            return run.go()
        except (TypeError, ArithmeticError, AttributeError, KeyError, IndexError, ExprError) as e:
            # the protocol's own code failed (a graph written by hand): name its line
            line = protocol_line(e.__traceback__) or run.state.line
            raise SimulationError(f"the protocol cannot be evaluated on {run.today}: {type(e).__name__}: {e}",
                                  path=self.path, line=line, date=run.today) from None


# ---------------------------------------------------------------------------- actions

def _iso(isos: dict, day: datetime.date) -> str:
    text = isos.get(day)
    if text is None:
        text = isos[day] = day.isoformat()
    return text


def put_number(d: dict, key: str, q) -> None:
    """d[key] = q as JSON: an int as it is; otherwise the nearest float, and the exact value as
    text under `<key>_exact` (a decimal, or p/q when it has no finite decimal expansion)."""
    if isinstance(q, int) or q.denominator == 1:
        d[key] = int(q)
        return
    d[key] = float(q)
    d[key + "_exact"] = ir.decimal_text(q) or f"{q.numerator}/{q.denominator}"


def _reads_since_entry(graph) -> bool:
    """Whether any expression of the graph reads `since entry`."""
    g = graph.graph
    trees = [d.get("expr") for d in (g.get("lets") or {}).values() if isinstance(d, Mapping)]
    trees += [d.get("guard") for _, _, d in graph.edges(data=True)]

    def action_trees(actions):
        for a in actions or ():
            yield a.get("value")
            yield a.get("cond")
            yield from action_trees(a.get("then"))
            yield from action_trees(a.get("else"))

    for _, data in graph.nodes(data=True):
        trees += action_trees(data.get("entry"))
    for _, _, data in graph.edges(data=True):
        trees += action_trees(data.get("actions"))
    return any(n.get("op") == "since_entry" for t in trees if t is not None for n in ir.walk(t))


def _validate_trees(graph, path: str) -> None:
    """Every expression tree of the graph is a valid IR tree over declared names (ir.validate),
    before any code is generated from it."""
    g = graph.graph
    names = {kind: set(g.get(key) or ()) for kind, key in
             (("lab", "labs"), ("fact", "facts"), ("var", "vars"), ("let", "lets"), ("action", "actions"))}

    def actions(items, where):
        for i, a in enumerate(items or ()):
            if not isinstance(a, Mapping):
                raise SimulationError(f"not a compiled protocol graph: {where}[{i}] is not an action", path=path)
            for key in ("value", "cond"):
                if a.get(key) is not None:
                    check(a[key], f"{where}[{i}].{key}", _line(a.get("span")))
            actions(a.get("then"), f"{where}[{i}].then")
            actions(a.get("else"), f"{where}[{i}].else")

    def check(tree, where, line):
        try:
            ir.validate(tree, names)
        except ir.IRError as e:
            raise SimulationError(f"not a compiled protocol graph: {where}: {e}", path=path, line=line) from None

    for name, d in (g.get("lets") or {}).items():
        if isinstance(d, Mapping):
            check(d.get("expr"), f"let {name!r}", _line(d.get("span")))
    for name, data in graph.nodes(data=True):
        actions(data.get("entry"), f"state {name!r} entry")
    for u, v, key, data in graph.edges(keys=True, data=True):
        if data.get("guard") is not None:
            check(data["guard"], f"rule {key!r}", _line(data.get("span")))
        actions(data.get("actions"), f"rule {key!r} actions")


def _setting_days(d: Any) -> tuple[int, str] | None:
    if not isinstance(d, Mapping):
        return None
    return int(d["amount"]), str(d["unit"])


def _on_day(step: dict, window: tuple, labs: frozenset, fulfil: tuple, isos: dict, memo: dict):
    """on(day): what an action with a due window does on `day`, made the first time and kept
    in `memo` (per action and day): its `action` step (`step` with that day's date and window)
    and the order it opens (None if it opens none)."""
    start, end, unit = window
    action = step["action"]
    line = step["line"]

    def on(day: datetime.date) -> tuple[dict, _Order | None]:
        hit = memo.get(day)
        if hit is None:
            last = shift(day, end, unit)
            opens = shift(day, start, unit)
            text = [opens.isoformat(), last.isoformat()]
            iso = _iso(isos, day)
            s = {k: v for k, v in step.items() if k not in ("sources", "line")}
            s["date"] = iso
            s["window"] = text  # before the sources, as the contract lists them
            s["sources"] = step["sources"]
            s["line"] = line
            late = last + _ONE_DAY if last < MAX_DATE else last
            hit = memo[day] = (s, _Order(action, text, late, labs, iso, line, opens, fulfil) if labs else None)
        return hit

    return on


def _one_of_action(options: tuple, state: str, window, labs_of: Mapping, sources: list, line: int,
                   isos: dict) -> Callable[["_Run"], None]:
    shown = list(options)
    steps = {o: {"date": None, "type": "action", "action": o, "state": state, "options": shown,
                 "sources": sources, "line": line} for o in options}
    ons = {o: _on_day(steps[o], window, *labs_of[o], isos, {}) for o in options} if window else None

    def one_of(r: "_Run") -> None:
        taken = r.choose(options)
        if ons is None:
            s = steps[taken].copy()
            s["date"] = r.iso
            r.emit(s)
        else:
            s, order = ons[taken](r.today)
            r.emit(s.copy())
            if order is not None:
                r.open(order)
        r.last[taken] = r.today

    return one_of


_PROBES = (Q(0), Q(10) ** 9)
"""Values tried in place of a missing result, to tell whether its absence is what leaves a
guard undecided: one far below and one far above any threshold a protocol states."""


def _unassessable(handler: _Handler, lets: Mapping, compiler: Compiler) -> Callable[["_Run", tuple], None]:
    """What a handler does when a guard it needs is unknown: nothing, but a step
    `unassessable` that names the missing labs that leave the undecided guards undecided.

    A lab counts when the guard reads it (through its lets too), it has no result, and some
    value of it would decide the guard, the other missing labs staying missing; when no one
    lab decides it alone, every missing lab it reads is named. `known(TBIL) and bili > 2` is
    false without a TBIL: its absence is no reason."""
    reads = [tuple(ir.labs_read(g, lets)) if g is not None else () for g in handler.guards]
    truths: dict[int, Callable] = {}  # made on the first unassessable day, not for every protocol
    template = {"date": None, "type": "unassessable", "trigger": handler.trigger}
    if handler.name is not None:
        template[handler.trigger] = handler.name

    def deciders(r: "_Run", i: int) -> list[str]:
        absent = [lab for lab in reads[i] if r.panel.get(lab) is None]
        truth = truths.get(i)
        if truth is None:
            truth = truths[i] = compiler.truth(handler.guards[i])
        probe = Ctx(r.facts, r.vars, r.today)
        probe.ulns, probe.last, probe.entered, probe.fulfilled = r.ulns, r.last, r.entered, r.fulfilled
        found = []
        for lab in absent:
            for v in _PROBES:
                probe.panel = {**r.panel, lab: v}
                if truth(probe) is not None:
                    found.append(lab)
                    break
        return found or absent

    def unassessable(r: "_Run", undecided: tuple) -> None:
        missing: dict[str, None] = {}
        for i in undecided:
            for lab in deciders(r, i):
                missing[lab] = None
        s = template.copy()
        s["date"] = r.iso
        s["missing"] = list(missing)
        s["state"] = r.state.name
        rule = handler.rules[undecided[0]]
        s["rule"] = rule.key
        s["line"] = rule.line
        r.emit(s)

    return unassessable


class _Program:
    """Writes, for every handler, the Python code that fires its rules (expr.py's dispatcher
    puts each after the guard that chooses it), and for every state the function that enters
    it: the transition and enter steps, the actions in order (the rule's, then the target's
    entry actions) with their conditions, the timers armed. Compiled with `compile()`, like the
    expressions; the source is kept as `.source` on the function.

    The generated code names its objects (step templates, memos, compiled conditions) as
    constants (K0, K1, ... or E0, E1, ...); in it `r` is the replay (the Ctx its expressions
    read), `today`, `iso` the day."""

    MAX_DEPTH = 12  # `if`s nested deeper go into a function of their own (Python limits nesting)

    def __init__(self, timers: bool, at_once: bool, since_entry: bool = True) -> None:
        self.count = 0
        self.timers = timers  # some state has timers (else no replay ever arms one)
        self.at_once = at_once  # some state has `on fact` rules (else nothing is ever pending)
        self.since_entry = since_entry  # some expression reads `since entry` (else the day of entry is never read)

    def react(self, compiler: Compiler, handler: _Handler, lets: Mapping) -> Callable[["_Run"], bool]:
        out = _Source(self, "react", handler.label, prefix="E")
        branches = []
        for rule, step in zip(handler.rules, handler.steps):
            out.lines = []
            self.firing(out, rule, step)
            branches.append(out.lines)
        unknown = out.const(_unassessable(handler, lets, compiler))
        return compiler.dispatcher(handler.guards, branches, out.consts, handler.label,
                                   exclusive=handler.exclusive, on_unknown=unknown,
                                   line=handler.rules[0].line if handler.rules else 0)

    def firing(self, out: "_Source", rule: _Rule, step: dict) -> None:
        """Fire `rule`: its transition step (`step`), then enter its target (or, for a stay
        rule, its actions only)."""
        out.add(0, "fired = r.fired_today")
        out.add(0, f"fired.append({out.const(rule)})")
        out.add(0, f"if len(fired) > {MAX_TRANSITIONS_PER_DAY}:")
        out.add(1, "raise r.loop_error()")
        out.add(0, "iso = r.iso")
        out.add(0, "emit = r.emit")
        out.add(0, f"s = {out.const(step)}.copy()")
        out.add(0, "s['date'] = iso")
        out.add(0, "emit(s)")
        if rule.stay:  # no re-entry: the actions only
            self.actions(out, rule.actions, 0)
        else:
            self.entering(out, rule.to_state, rule.actions, 0)

    def enter(self, st: _State) -> Callable[["_Run"], None]:
        out = _Source(self, "enter", st.name)
        out.line = st.line
        out.add(1, "iso = r.iso")
        out.add(1, "emit = r.emit")
        self.entering(out, st, (), 1)
        return out.build("r")

    def program(self, actions: tuple) -> Callable[["_Run"], None]:
        out = _Source(self, "program", "actions")
        out.add(1, "iso = r.iso")
        out.add(1, "emit = r.emit")
        self.actions(out, actions, 1)
        return out.build("r")

    def entering(self, out: "_Source", st: _State, first: tuple, d: int) -> None:
        """Enter `st`: its step, the actions `first` (a rule's), its entry actions, its timers."""
        out.add(d, f"r.state = {out.const(st)}")
        if self.since_entry:
            out.add(d, "r.entered = r.today")
        out.add(d, f"s = {out.const(st.step)}.copy()")
        out.add(d, "s['date'] = iso")
        out.add(d, "emit(s)")
        if st.terminal:  # the pathway has ended: its open orders are withdrawn
            out.add(d, "if r.orders:")
            out.add(d + 1, "s['withdrawn'] = list(r.orders)")
            out.add(d + 1, "r.orders.clear()")
            out.add(d + 1, "r.alarms.clear()")
        self.actions(out, first + st.entry, d)
        if st.timers:
            out.add(d, f"r.arm({out.const(st)})")
        elif self.timers:
            out.add(d, "r.timers = ()")  # the timers of the state left
        if self.at_once:
            out.add(d, f"r.pending = {st.at_once is not None}")

    def actions(self, out: "_Source", actions: tuple, depth: int) -> None:
        """The code of `actions`, after the names it reads (once per function)."""
        if not actions:
            return
        lines, out.lines = out.lines, []
        self.block(out, actions, depth)
        body, out.lines = out.lines, lines
        text = "\n".join(body)
        for name in ("today", "last", "orders"):
            if re.search(rf"\b{name}\b", text):
                out.add(depth, f"{name} = r.{name}")
        out.lines.extend(body)

    def block(self, out: "_Source", actions: tuple, depth: int) -> None:
        if not actions:
            out.add(depth, "pass")
        for a in actions:
            if type(a) is _Do:
                if a.on is None:
                    out.add(depth, f"s = {out.const(a.step)}.copy()")
                    out.add(depth, "s['date'] = iso")
                    out.add(depth, "emit(s)")
                else:
                    out.add(depth, f"h = {out.const(a.memo)}.get(today)")
                    out.add(depth, "if h is None:")
                    out.add(depth + 1, f"h = {out.const(a.on)}(today)")
                    out.add(depth, "emit(h[0].copy())")
                    if a.opens:  # a new order of the same action replaces the open one (and goes last)
                        name = out.const(a.name)
                        out.add(depth, f"o = h[1]")
                        out.add(depth, f"orders.pop({name}, None)")
                        out.add(depth, f"orders[{name}] = o")
                        out.add(depth, f"r.alarms[{name}] = o.late")
                out.add(depth, f"last[{out.const(a.name)}] = today")
            elif type(a) is _OneOf:
                out.add(depth, f"{out.const(a.run)}(r)")
            elif type(a) is _Set:
                out.add(depth, f"r.vars[{out.const(a.var)}] = {out.const(a.value)}(r)")
            elif type(a) is _If:
                if depth >= self.MAX_DEPTH - 2:
                    out.add(depth, f"{out.const(self.program((a,)))}(r)")
                    continue
                out.add(depth, f"if {out.const(a.cond)}(r):")
                self.block(out, a.then, depth + 1)
                if a.orelse:
                    out.add(depth, "else:")
                    self.block(out, a.orelse, depth + 1)
            else:
                raise ExprError(f"unknown action {a!r}")


class _Source:
    """The source of one generated function and the objects it names."""

    def __init__(self, owner: _Program, kind: str, label: str, prefix: str = "K") -> None:
        owner.count += 1
        number = next(Compiler._files)
        self.name = f"_{kind}_{owner.count}"  # kind: one of the engine's own words, never a name from the graph
        self.label = f"<rxwatch-generated {number}>"
        self.prefix = prefix
        self.line = 0  # the protocol line it is made from
        self.lines: list[str] = []
        self.consts: dict[str, Any] = {}
        self.ids: dict[int, str] = {}

    def add(self, depth: int, text: str) -> None:
        self.lines.append("    " * depth + text)

    def const(self, value: Any) -> str:
        name = self.ids.get(id(value))
        if name is None:
            name = self.ids[id(value)] = f"{self.prefix}{len(self.consts)}"
            self.consts[name] = value
        return name

    def build(self, params: str) -> Callable:
        source = f"def {self.name}({params}):\n" + "\n".join(self.lines) + "\n"
        namespace = dict(self.consts)
        try:
            exec(compile(source, self.label, "exec"), namespace)
        except (SyntaxError, RecursionError, MemoryError) as e:  # a protocol too large for one function
            raise ExprError(f"cannot compile the protocol's actions: {type(e).__name__}") from None
        register(self.label, source, self.line)
        fn = namespace[self.name]
        fn.source = source
        return fn


# ---------------------------------------------------------------------------- one replay

class _Run(Ctx):
    """The state of one replay: the current state, open orders, armed timers, the steps; and,
    as a Ctx, what the protocol's expressions read (the panel, facts, vars, the day...)."""

    __slots__ = ("m", "tl", "start", "until", "iso", "steps", "emit", "warnings", "orders", "overdue", "alarms",
                 "recent", "replaced", "timers", "state", "pending", "fired_today", "choices", "used", "inputs", "today_inputs")

    def __init__(self, m: Machine, tl: Timeline, until: datetime.date | None, inputs: list | None) -> None:
        self.m = m
        self.tl = tl
        start = self.start = tl.start
        events = tl.events
        self.until = until or tl.until or (max(events[-1].date, start) if events else start)
        if self.until < start:
            raise ValueError(f"until {self.until} is before start {start}")
        facts = self.facts = dict(m.fact_defaults)
        for k, v in tl.facts.items():
            facts[k] = v if type(v) is bool or type(v) is str else _value(v)
        self.vars = dict(m.var_defaults)
        self.today = start
        self.panel = self.ulns = _NOTHING  # no panel yet
        self.last = {}
        self.iso = _iso(m.isos, start)
        self.steps: list[dict] = []
        self.emit = self.steps.append
        self.warnings: list[dict] = []
        self.orders: dict[str, _Order] = {}  # action -> its open order, oldest first
        self.overdue: set[_Order] = set()  # the open orders that are overdue (and maybe some no longer open)
        self.alarms: dict[str, datetime.date] = {}  # action -> the day its open order's next deviation is due
        self.recent: dict[str, LabResult] = {}  # lab -> its latest result (with a lookback, or once read)
        self.entered = start
        self.fulfilled = _NO_ORDERS
        self.replaced: list | None = None  # the results today's later ones replaced
        self.timers: list[_Armed] | tuple = ()
        self.state: _State = m.states[m.initial]
        self.pending = False  # the state just entered still has to try its `on fact` rules
        self.fired_today: list[_Rule] = []
        self.choices: list[Choice] | tuple = ()
        self.used: set[int] | None = None  # the choices taken (their ids), once there is one
        self.inputs = inputs
        self.today_inputs: tuple = ()

    # -- the day loop

    def go(self) -> dict:
        start, until = self.start, self.until
        days = iter(self.tl.days)  # (date, its events): by date, then time or file order within a day
        nxt = next(days, None)  # the next day with inputs: (date, its events)
        while nxt is not None and nxt[0] < start:
            nxt = next(days, None)  # a Timeline built in code may hold them; load_timeline never does
        ctx = self  # what expressions read
        steps = self.steps
        emit = self.emit
        orders = self.orders
        alarms = self.alarms
        inputs = self.inputs
        isos = self.m.isos
        lookback = self.m.lookback
        day = start
        soonest = None
        first = True
        while True:
            if not first:
                # the next day something happens: an input, a timer, an order's deviation
                day = nxt[0] if nxt is not None else None
                if self.timers:
                    for t in self.timers:
                        if day is None or t.due < day:
                            day = t.due
                soonest = None
                if alarms:
                    if len(alarms) == 1:  # the usual case: one open order
                        for soonest in alarms.values():
                            pass
                    else:
                        soonest = min(alarms.values())
                    if day is None or soonest < day:
                        day = soonest
                if day is None or day > until:
                    break
                if day <= ctx.today and ctx.today == MAX_DATE:
                    break  # a timer or deviation due past the calendar's last day never comes
                if day <= ctx.today:
                    raise ValueError(f"{self.tl.path}: timeline events are not in date order "
                                     f"({day} after {ctx.today}); load_timeline sorts them")
                ctx.today = day
                iso = isos.get(day)
                if iso is None:
                    iso = isos[day] = day.isoformat()
                self.iso = iso
                if self.fired_today:
                    self.fired_today = []
                if ctx.fulfilled:
                    ctx.fulfilled = _NO_ORDERS
            # the day's inputs: its results (the panel, read as they come: a later result of a
            # lab replaces an earlier one); its recorded choices, clinical events and fact changes
            panel = None
            ulns = None
            dup = False
            extra = None
            if nxt is not None and nxt[0] == day:
                todays = nxt[1]
                for ev in todays:
                    if type(ev) is LabResult:
                        q = ev.q  # the value as an exact rational, made when the result was read
                        lab = ev.lab
                        if panel is None:
                            panel = {lab: q}
                        else:
                            if lab in panel:
                                dup = True
                            panel[lab] = q
                        if ev.uln is not None:
                            if ulns is None:
                                ulns = {}
                            ulns[lab] = ev.uln_q
                        elif ulns is not None:
                            ulns.pop(lab, None)
                    elif extra is None:
                        extra = [ev]
                    else:
                        extra.append(ev)
                nxt = next(days, None)
                if extra is not None:
                    choices = [ev for ev in extra if type(ev) is Choice]
                    if choices:
                        self.choices = choices  # until the end of the day
                if inputs is not None:
                    self.record_inputs(todays, self.choices)
            if first:
                first = False
                self.m.states[self.m.initial].enter(self)
                self.settle()
            else:
                # (1) deviations of orders overdue today (the day after the window, then reminders)
                if soonest is not None and soonest <= day:
                    self.deviations(day)
                # (2) timers due today
                if self.timers:
                    self.settle()
            # (3) the panel: today's results, with the still valid earlier ones
            if panel is not None:
                dated = None  # every result is today's
                if dup:
                    self.replaced = [self.m.result_dict(r, day) for r in
                                     latest_results([e for e in todays if type(e) is LabResult])[1]]
                if lookback is not None:
                    dated, ulns = self.lookback(panel, ulns, [e for e in todays if type(e) is LabResult], day, lookback)
                if inputs is not None:
                    inputs.append((len(steps), tuple(e for e in self.today_inputs if type(e) is LabResult)))
                ctx.panel = panel
                ctx.ulns = _NOTHING if ulns is None else ulns
                if orders:
                    if dated is None and len(orders) == 1:
                        # the usual day: one open order, every result today's
                        (action, o), = orders.items()
                        if (o.opens is None or day >= o.opens) and not o.labs.isdisjoint(panel):
                            for alt in o.fulfil:  # (frozenset.issubset would copy the panel into a set)
                                for lab in alt:
                                    if lab not in panel:
                                        break
                                else:
                                    orders.clear()
                                    alarms.pop(action, None)
                                    ctx.fulfilled = {action}
                                    break
                            else:
                                self.fulfil(panel, dated, day)  # not fulfilled: say what was missing
                    else:
                        self.fulfil(panel, dated, day)
                handler = self.state.panel
                if dup:
                    n = len(steps)
                if handler is not None and handler.react(self) and (self.pending or self.timers):
                    self.settle()
                if dup:
                    self.note_replaced(n)
            # (4) clinical events and fact changes, in time (else file) order
            if extra is not None:
                self.events_and_facts(extra)
                if self.choices:
                    self.end_of_day()
                    self.choices = ()
        return self.trace()

    def lookback(self, panel: dict, ulns: dict | None, results: list, day: datetime.date,
                 lookback) -> tuple[dict, dict | None]:
        """Add to today's `panel` (and `ulns`) the earlier results still valid today: each lab's
        most recent result within the protocol's `results valid for`. Return each lab's result
        date, and the ULNs."""
        recent = self.recent
        for res in results:  # in the day's order: the later replaces the earlier
            recent[res.lab] = res
        oldest = shift(day, -lookback[0], lookback[1])
        dated = {}
        for lab, res in list(recent.items()):
            if res.date < oldest:
                del recent[lab]  # no longer valid
                continue
            dated[lab] = res.date
            if lab not in panel:
                panel[lab] = res.q
                if res.uln is not None:
                    if ulns is None:
                        ulns = {}
                    ulns[lab] = res.uln_q
        return dated, ulns

    def note_replaced(self, n: int) -> None:
        """List the day's replaced results on the step its panel gave (a transition or an
        `unassessable` step), or, when it gave none, as a warning."""
        replaced, self.replaced = self.replaced, None
        for s in self.steps[n:]:
            if s.get("trigger") == "panel" and s["type"] in ("transition", "unassessable"):
                s["replaced"] = replaced
                return
        for r in replaced:
            self.warnings.append({"date": self.iso, "line": r.get("line", 0), "code": "W904",
                                  "message": f"a result of {r['lab']} was replaced by a later one of the same day"})

    def fulfil(self, panel: dict, dated: dict | None, day: datetime.date) -> None:
        """Today's results fulfil the open orders they answer (before the panel's rules run):
        the labs of one of the order's alternatives have valid results dated on or after the
        window opened, one of them dated today. A result before the window is acted on, but
        the order stays open; one in or after the window that fulfils nothing is `incomplete`.
        `dated`: each lab's result date (None: all are today's)."""
        orders = self.orders
        fulfilled = None
        today_labs = panel if dated is None else {lab for lab, d in dated.items() if d == day}
        for action, o in tuple(orders.items()):
            opens = o.opens
            if opens is not None and day < opens:
                continue  # too early: evaluated and acted on, the order stays open
            if o.labs.isdisjoint(today_labs):
                continue  # nothing today for this order
            fresh = panel if dated is None else {lab for lab, d in dated.items() if opens is None or d >= opens}
            for alt in o.fulfil:
                if all(lab in fresh for lab in alt) and not alt.isdisjoint(today_labs):
                    del orders[action]
                    self.alarms.pop(action, None)
                    if fulfilled is None:
                        fulfilled = set()
                    fulfilled.add(action)
                    break
            else:
                # missing: the fulfilling labs that no result of today's gave
                self.emit({"date": self.iso, "type": "deviation", "kind": "incomplete", "action": action,
                           "window": o.text, "ordered": o.ordered, "line": o.line,
                           "missing": sorted(set().union(*o.fulfil).difference(today_labs))})
        if fulfilled is not None:
            self.fulfilled = fulfilled

    def deviations(self, day: datetime.date) -> None:
        """The `overdue` deviation of each order whose window ended yesterday, and the
        `still_overdue` reminders due today (every `reminders` interval while it stays open)."""
        reminders = self.m.reminders
        for action, due in tuple(self.alarms.items()):
            if due > day:
                continue
            o = self.orders.get(action)
            if o is None:
                del self.alarms[action]
                continue
            s = o.deviation.copy()
            s["date"] = self.iso
            if o in self.overdue:
                s["kind"] = "still_overdue"
            else:
                self.overdue.add(o)
            self.emit(s)
            if reminders is None:
                del self.alarms[action]
            else:
                self.alarms[action] = shift(day, reminders[0], reminders[1])

    def record_inputs(self, todays, choices) -> None:
        """For a report: the choices now, the panel and events when they are read."""
        self.today_inputs = todays
        for c in choices:
            self.inputs.append((len(self.steps), c))

    def events_and_facts(self, extra: list) -> None:
        ctx = self
        inputs = self.inputs
        for ev in extra:
            if type(ev) is Choice:
                continue  # read before the day's steps
            if inputs is not None:
                inputs.append((len(self.steps), ev))
            if type(ev) is ClinicalEvent:
                handler = self.state.events.get(ev.event)
                if handler is not None:
                    self.react(handler)
            elif type(ev) is FactChange:
                old = ctx.facts.get(ev.fact)
                new = _value(ev.value)
                if old == new and type(old) is type(new):
                    continue  # not a change
                ctx.facts[ev.fact] = new
                handler = self.state.facts.get(ev.fact)
                if handler is not None:
                    self.react(handler)

    def end_of_day(self) -> None:
        used = self.used or ()
        for c in self.choices:
            if id(c) not in used:
                self.warnings.append({
                    "date": c.date.isoformat(), "line": c.loc.line, "code": "W903",
                    "message": f"the choice of {c.action} on {c.date} was not used: the protocol offered "
                               f"no alternatives with {c.action} among them that day",
                })

    # -- reacting

    def react(self, handler: _Handler) -> None:
        if handler.react(self) and (self.pending or self.timers):
            self.settle()

    def arm(self, st: _State) -> None:
        """Arm the timers of `st`, just entered."""
        timers = self.timers = []
        today = self.today
        for t in st.timers:
            base = today if t.since is None else self.last.get(t.since)
            if base is None:
                continue  # the action it counts from was never recommended: not armed
            due = shift(base, t.amount, t.unit)
            timers.append(_Armed(due if due > today else today, t.handler))

    def settle(self) -> None:
        """Try the `on fact` rules of a state just entered, then fire the timers due today,
        until nothing more happens today."""
        today = self.today
        while True:
            if self.pending:
                self.pending = False
                self.state.at_once.react(self)
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
            t.handler.react(self)

    # -- orders and choices

    def open(self, order: _Order) -> None:
        """Open `order`; it replaces the open order of the same action (which then goes last)."""
        self.orders.pop(order.action, None)
        self.orders[order.action] = order
        self.alarms[order.action] = order.late

    def choose(self, options: tuple[str, ...]) -> str:
        for c in self.choices:
            if c.action in options and (self.used is None or id(c) not in self.used):
                if self.used is None:
                    self.used = set()
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
            f"zero-time loop on {self.today}: {' -> '.join(states)} keeps firing without time "
            f"passing (more than {MAX_TRANSITIONS_PER_DAY} transitions in one day); the rules in the "
            f"loop: {rules}",
            path=self.m.path, line=cycle[0].line, date=self.today, states=tuple(dict.fromkeys(states)),
        )

    def trace(self) -> dict:
        overdue = self.overdue
        orders = self.orders
        return {
            "protocol": {"name": self.m.name, "version": self.m.version},
            "patient": self.tl.patient,
            "start": _iso(self.m.isos, self.start),
            "until": _iso(self.m.isos, self.until),
            "steps": self.steps,
            "final_state": self.state.name,
            "open_orders": [o.to_dict(o in overdue) for o in orders.values()] if orders else [],
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
