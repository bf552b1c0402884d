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
- More than `MAX_TRANSITIONS_PER_DAY` transitions on one day that no input fired (`on fact`
  rules tried on entry, timers) is a zero-time loop: the run ends with a SimulationError naming
  the states in the loop and the rules that close it. (A panel or an event fires at most one
  rule per input: it cannot loop.)

Statecharts (graph format 3: nested states, parallel tracks, choices whose alternatives lead
somewhere) are replayed by configurations: one active atomic state per active region; on a
trigger every active atomic state is evaluated in document order (its own rules, then its
ancestors'), the chosen rules are selected (`_Run.select`), conflicts resolved (the wider exit
wins, then document order), then the transition steps, the exits (a track's orders withdrawn),
the entries (ancestors first; a parallel state's every track), the rules' actions and the
entry actions (`_Run.execute`). Orders are keyed by region, timers belong to their declaring
state, drugs keep a hold and a dose request per region (`_Drug`). A flat protocol is the
one-region case: its generated handlers fire the chosen rule at once, which gives the same
trace as the configuration path (`Machine(graph, chart=True)`), faster.
"""

from __future__ import annotations

import datetime
import itertools
import linecache
from fractions import Fraction
import operator
import re
import weakref
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from rxwatch.compiler import ir

from .expr import _NO_ORDERS, _RUNTIME, DRUG_READS, MAX_DATE, Compiler, Ctx, Dur, ExprError, Q, Since, _drug, exact_q, \
    protocol_line, register, shift
from rxwatch.inputs.model import ClinicalEvent, Choice, FactChange, LabResult, Timeline, latest_results

__all__ = ["MAX_TRANSITIONS_PER_DAY", "Machine", "Patient", "SimulationError", "simulate"]

MAX_TRANSITIONS_PER_DAY = 1000
"""More transitions than this on one day can only be a loop that never lets time pass."""

_BY_INPUT = frozenset({"panel", "event"})
"""The triggers an input fires (a rule each, at most): not counted against a zero-time loop."""


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
    canonical: str = ""  # the graph's `rule`: a block's rule has one id for every state using it
    guard: Any = None  # its guard (an IR tree; None: otherwise)
    citations: list | None = None  # with a locator among them: written on its steps
    alternative: int | None = None  # the choice alternative this edge is for
    # statecharts (set once every state is built)
    from_state: "_State | None" = None
    domain: "_State | None" = None  # the state below which it exits (None: the top level)
    depth: int = -1  # the domain's depth (-1: the top level): the lower, the wider the exit
    entry: tuple = ()  # the states it enters, outermost first, in document order
    alts: "dict[str, _Rule] | None" = None  # a choice's alternatives: the action taken -> its edge
    taken: str | None = None  # for an alternative's edge: its action
    program: "Callable[[_Run], None] | None" = None  # its actions as code (a statechart's replay)


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
    owner: "_State | None" = None  # the state that declares it


@dataclass(slots=True, eq=False)
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
    # statecharts: the node's place (graph format 3); a flat protocol's states are atomic, top level
    type: str = "atomic"  # atomic | compound | parallel | track
    track: str | None = None  # the nearest enclosing track (None: the top-level region)
    doc: int = 0  # document order
    depth: int = 0
    parent: "_State | None" = None
    children: tuple = ()
    initial: "_State | None" = None  # the child entered by default
    ancestors: tuple = ()  # itself, its parent, ... up to the top level
    own: dict | None = None  # its own handlers' edges: panel, events, facts (before inheritance)
    program: "Callable[[_Run], None] | None" = None  # its entry actions as code (a statechart's replay)
    at_once_from: dict | None = None  # top entered state -> the `on fact` rules tried on entering it
    # in a track: the labs the track's panel rules name (ir.track_labs); its panel handler sees a
    # day's panel only when the day brings a result of one of them (None: any result will do)
    about: frozenset | None = None


# the actions of the protocol, compiled: `_Program` turns lists of them into Python code

@dataclass(slots=True)
class _Do:
    name: str
    step: dict  # its `action` step (the date left to fill); with a window: see `on`
    on: "Callable[[datetime.date], tuple[dict, _Order | None]] | None"  # the step and order of a day
    memo: dict | None  # what `on` has made so far, by day
    opens: bool  # it opens an order
    key: Any = None  # its orders' key: the action, or (track, action) in a track
    effect: tuple | None = None  # (kind, drug, level index or None): what it does to a drug
    region: str | None = None  # the track it acts in


@dataclass(slots=True)
class _OneOf:
    run: Callable[["_Run"], None]


@dataclass(slots=True)
class _Set:
    var: str
    value: Callable[[Ctx], Any]
    step: dict | None = None  # its `set` step (the date and value left to fill)
    plain: bool = False  # its value is a bool or a member (JSON as it is)
    tree: Any = None  # the value (an IR tree): generated code computes it inline


@dataclass(slots=True)
class _If:
    cond: Callable[[Ctx], bool]
    then: tuple
    orelse: tuple
    tree: Any = None  # the condition (an IR tree): generated code tests it inline


_ONE_DAY = datetime.timedelta(days=1)
_FIRST_DAY = datetime.date.min
_DATE = operator.attrgetter("date")
_NOTHING: dict = {}  # no panel, no ULNs (never written: expressions only read a panel)
_NO_DRUGS: dict = {}  # a protocol without drugs (never written: drug_act needs a declared drug)
_INPUTS = frozenset((LabResult, ClinicalEvent, FactChange, Choice))  # what a day's inputs are


def _misdated(ev: Any, day: datetime.date) -> ValueError:
    """The error for an input fed with a day it is not dated (or that is no input at all)."""
    if type(ev) not in _INPUTS:
        return ValueError(f"not an input: {ev!r} (a day's inputs are LabResult, ClinicalEvent, FactChange "
                          f"and Choice objects)")
    what = type(ev).__name__
    where = f" (line {ev.loc.line} of {ev.loc.path})" if ev.loc.line else ""
    return ValueError(f"a {what} dated {ev.date}{where} was fed with the inputs of {day}: "
                      f"each day's inputs are fed with their own day")


_DONE: dict = {}  # action -> frozenset((action,)), shared by its orders
_SINGLE: dict = {}  # one object for each set of labs that fulfil an order alone


class _Order:
    """An order opened on one day by one action of the protocol: the same for every patient
    that day, so it is made once (per action and day) and shared. Whether it is overdue is
    the replay's business (`_Run.overdue`, a set of orders: an order is opened on one day
    only and overdue on later days only, so a new order is never one already overdue)."""

    __slots__ = ("action", "text", "labs", "fulfil", "opens", "ordered", "line", "late", "deviation", "key",
                 "track", "again", "done", "single")

    def __init__(self, action: str, text: list, late: datetime.date, labs: frozenset, ordered: str,
                 line: int, opens: datetime.date | None = None, fulfil: tuple = (), track: str | None = None,
                 again: Callable | None = None) -> None:
        self.action = action
        # what `fulfilled(...)` reads the day a result fulfils it alone (one set for every order of the action)
        self.done = _DONE.get(action) or _DONE.setdefault(action, frozenset((action,)))
        self.track = track  # the region that owns it (None: the top level)
        self.key = action if track is None else (track, action)  # its key among the open orders
        self.again = again  # `every`: on(day) -> the repeat's step and order, when a result fulfils it
        self.text = text  # [from, to]: ISO dates, shared by the steps
        self.labs = labs
        # what fulfils it: alternatives, each a set of labs that must all have results
        self.fulfil: tuple[frozenset, ...] = fulfil or (labs,)
        # the labs among those it orders whose result alone fulfils it (an alternative of one lab); the
        # orders of one action share the set (the replay reads it on every panel day)
        # (none for an order in a track: `fulfil` records which region's order today's results fulfilled)
        single = frozenset(lab for alt in self.fulfil if len(alt) == 1 for lab in alt) & labs if track is None \
            else frozenset()
        self.single = _SINGLE.setdefault(single, single)
        self.opens = opens  # the window's first day: results before it do not fulfil
        self.ordered = ordered  # ISO date
        self.line = line
        self.late = late  # the day after the window's last day: the day it becomes overdue
        self.deviation = {"date": None, "type": "deviation", "kind": "overdue", "action": action,
                          "window": text, "ordered": ordered, "line": line}
        if track is not None:
            self.deviation["track"] = track

    def to_dict(self, overdue: bool) -> dict:
        d = {
            "action": self.action,
            "window": list(self.text),
            "ordered": self.ordered,
            "overdue": overdue,
            "line": self.line,
        }
        if self.track is not None:
            d["track"] = self.track
        return d


class _Armed:
    __slots__ = ("due", "handler", "owner")

    def __init__(self, due: datetime.date, handler: _Handler, owner: "_State | None" = None) -> None:
        self.due = due
        self.handler = handler
        self.owner = owner


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

    def __init__(self, graph, *, chart: bool | None = None) -> None:
        g = graph.graph
        self.name: str = g.get("name", "")
        self.version: str = g.get("version", "")
        self.path: str = g.get("path", "") or ""
        self.initial: str = g.get("initial", "")
        if self.initial not in graph.nodes:
            raise SimulationError(f"the graph has no initial state {self.initial!r}", path=self.path)
        self.fact_defaults = {name: _default(d) for name, d in (g.get("facts") or {}).items()}
        self.var_defaults = {name: _default(d) for name, d in (g.get("vars") or {}).items()}
        self.var_types = {name: d.get("type") for name, d in (g.get("vars") or {}).items() if isinstance(d, Mapping)}
        actions = g.get("actions") or {}
        self.actions: frozenset = frozenset(actions)
        self.offered: set[str] = set()  # the options of every `do one of` (filled as they are compiled)
        self.orders: dict[str, frozenset] = {
            name: frozenset(d.get("orders") or ()) for name, d in actions.items()
        }
        # action -> what fulfils its order: alternatives, each a set of labs
        self.fulfil: dict[str, tuple[frozenset, ...]] = {
            name: tuple(frozenset(alt) for alt in (d.get("fulfilled_by") or ()) if alt) or (self.orders[name],)
            for name, d in actions.items()
        }
        self.labs: dict = dict(g.get("labs") or {})
        # a track sees a day's panel only when the day brings a result of a lab it is about
        self.track_about: dict = {t: labs for t, labs in ir.track_labs(graph).items() if labs}
        self.uln_defaults = {name: ir.exact(d["uln"]) for name, d in self.labs.items()
                             if isinstance(d, Mapping) and d.get("uln") is not None}
        self.lookback = _setting_days(g.get("results_valid"))  # (amount, unit) or None: the same day
        self.reminders = _setting_days(g.get("reminders"))  # (amount, unit) or None: no reminders
        self.tolerance = _setting_days(g.get("schedule_tolerance"))  # `due N unit` is N unit +- this
        self.isos: dict[datetime.date, str] = {}  # day -> its ISO text, for every replay of this Machine
        # day -> (the Machine's own object for that day, its ISO text): a replay's days are these
        # objects, so the caches keyed by day (windows, orders, ISO texts) find them by identity
        # in memory every replay touches, not by comparing with a date in another patient's inputs
        self.days: dict[datetime.date, tuple[datetime.date, str]] = {}
        # the replay puts only runtime rationals (Q) in its panels, and every declared fact and var in its ctx
        self._compiler = Compiler(g, rational_inputs=True, declared=True)
        edges = {key: (u, v, data) for u, v, key, data in graph.edges(keys=True, data=True)}
        _validate_trees(graph, self.path)  # a graph read from a file is untrusted
        nodes = dict(graph.nodes(data=True))
        try:
            self.drugs: dict[str, _DrugDecl] = {name: _DrugDecl(name, d) for name, d in (g.get("drugs") or {}).items()}
            # action -> (kind, drug, level index or None): what it does to a drug
            self.effects = {name: _effect(name, d.get("effect"), self.drugs) for name, d in actions.items()
                            if isinstance(d, Mapping) and d.get("effect")}
            # event -> the drug it stops (`event anakinra_stopped "..." stops anakinra`)
            self.event_stops: dict[str, _DrugDecl] = {
                name: drug for name, d in (g.get("events") or {}).items() if isinstance(d, Mapping) and d.get("effect")
                for kind, drug, _ in (_effect(name, d["effect"], self.drugs),) if kind == "stop"}
        except (KeyError, TypeError, ValueError) as e:
            raise SimulationError(f"not a compiled protocol graph: {type(e).__name__}: {e}", path=self.path,
                                  code="E903") from None
        self.node_track = {name: data.get("track") for name, data in nodes.items()}
        # a statechart (nested states, tracks, choices whose alternatives move) is replayed by
        # configurations; a flat protocol is its one-region case, whose rules fire as they are chosen
        self.chart: bool = chart if chart is not None else (
            any(d.get("type", "atomic") != "atomic" or d.get("parent") is not None for d in nodes.values())
            or any(d.get("alternative") is not None for _, _, d in edges.values()))
        self._rules: dict[str, _Rule] = {}
        self._handlers: dict[tuple, _Handler] = {}
        self.states: dict[str, _State] = {}
        try:
            for name, data in nodes.items():
                self.states[name] = self._state(name, data, edges)
            for name, data in nodes.items():
                self._place(self.states[name], data)
            for st in self.states.values():
                chain, a = [], st
                while a is not None and len(chain) <= len(self.states):
                    chain.append(a)
                    a = a.parent
                st.ancestors = tuple(chain)
            if self.chart:
                _check_chart(self.states, self.path)
                for st in self.states.values():
                    if st.type == "atomic":
                        self._inherit(st)
            alternatives = [e for e in edges.values() if (e[2].get("alternative") or 0) > 0]
            for e in alternatives:  # a choice's alternative i > 0: its own edge, chosen with the rule
                self._rule(e)
            for rule in sorted(self._rules.values(), key=lambda r: r.alternative or 0):
                if rule.alternative is not None:
                    base = self._rules.get(rule.key.split("@")[0])
                    if base is None:
                        if nodes[rule.source].get("kind") == "terminal":
                            continue  # a terminal state reacts to nothing
                        raise SimulationError(f"rule {rule.key} is a choice's alternative of no rule", path=self.path,
                                              line=rule.line, code="E903")
                    rule.taken = _alternative_action(edges[rule.key][2], rule.alternative)
                    if base.alts is None:
                        base.alts = {}
                    base.alts[rule.taken] = rule  # in the alternatives' order: the first is the default
        except ExprError as e:
            raise SimulationError(f"cannot compile the protocol for simulation: {e}", path=self.path) from None
        except (KeyError, TypeError, ValueError) as e:  # a graph not made by compiler/lower.py
            raise SimulationError(f"not a compiled protocol graph: {type(e).__name__}: {e}", path=self.path) from None
        for rule in self._rules.values():
            if rule.target not in self.states:
                raise SimulationError(f"rule {rule.key} leads to {rule.target!r}, which is not a state", path=self.path,
                                      line=rule.line)
            rule.to_state = self.states[rule.target]
            rule.from_state = self.states[rule.source]
            if self.chart:
                _route(rule)
        # the code that reacts (tries the rules, fires one) and that enters each state
        gen = _Program(any(st.timers for st in self.states.values()),
                       any(st.at_once is not None or st.at_once_from for st in self.states.values()),
                       *_times_read(graph), chart=self.chart)
        self._gen = gen
        self.timed = gen.timers  # some state has timers (else no replay ever arms one)
        # some state has timers or `on fact` rules (else a replay never has anything to settle)
        self.settles = gen.timers or gen.at_once
        gen.compiler = self._compiler
        try:
            lets = g.get("lets") or {}
            for h in self._handlers.values():
                h.react = gen.react(self._compiler, h, lets)
            if self.chart:
                for st in self.states.values():
                    st.program = gen.program(st.entry) if st.entry else None
                for rule in self._rules.values():
                    rule.program = gen.program(rule.actions) if rule.actions else None
                root = self.states[self.initial]
                self.start_entry = _entry_path(None, root)
            else:
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
            # a choice's alternatives other than the first are chosen with their rule, not tried
            rules = [edges[k] for k in h.get("rules") or () if not (edges[k][2].get("alternative") or 0) > 0]
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
        line = _line(data.get("span"))
        step = {"date": None, "type": "enter", "state": name, "line": line}
        if data.get("track") is not None:
            step["track"] = data["track"]
        own = {"panel": panel, "events": events, "facts": fact_handlers}
        if self.chart:  # the handlers of an atomic state are its own and its ancestors' (see _inherit)
            return _State(name=name, terminal=terminal, line=line, entry=self._program(data.get("entry") or (), name),
                          panel=None, events={}, facts={}, at_once=None, timers=tuple(timers), step=step, own=own)
        facts = {}
        for fact in self.fact_defaults:
            rs = [r for names, rules in fact_handlers if not names or fact in names for r in rules]
            if rs:
                facts[fact] = self._handler(rs, f"{name}_fact_{fact}", "fact", fact)
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
            step=step,
            own=own,
        )

    def _place(self, st: _State, data: Mapping) -> None:
        """The state's place in the statechart (graph format 3; a format-2 graph is flat)."""
        st.type = data.get("type") or "atomic"
        st.track = data.get("track")
        st.doc = int(data["doc_order"]) if data.get("doc_order") is not None else len(self.states)
        st.depth = int(data.get("depth") or 0)
        parent = data.get("parent")
        st.parent = self.states[parent] if parent is not None else None
        st.children = tuple(self.states[c] for c in data.get("children") or ())
        first = data.get("initial_child")
        st.initial = self.states[first] if first is not None else (st.children[0] if st.children else None)
        for t in st.timers:
            t.owner = st

    def _inherit(self, st: _State) -> None:
        """An atomic state's handlers in a statechart: for each trigger, its own rules, then its
        parent's, ... up to the top level (the child's first), tried by one strict first match.
        Its `on fact` rules tried on entry: those of the states entered with it."""
        chain = st.ancestors
        name = st.name
        st.panel = self._handler([e for a in chain for e in a.own["panel"]], f"{name}_panel", "panel")
        st.about = self.track_about.get(st.track) if st.track is not None else None
        evs = dict.fromkeys(ev for a in chain for ev in a.own["events"])
        st.events = {ev: self._handler([e for a in chain for e in a.own["events"].get(ev, ())],
                                       f"{name}_event_{ev}", "event", ev) for ev in evs}
        for fact in self.fact_defaults:
            rs = [r for a in chain for names, rules in a.own["facts"] if not names or fact in names for r in rules]
            if rs:
                st.facts[fact] = self._handler(rs, f"{name}_fact_{fact}", "fact", fact)
        st.at_once_from = {}
        for i, top in enumerate(chain):
            h = self._handler([r for a in chain[:i + 1] for _, rules in a.own["facts"] for r in rules],
                              f"{name}_facts", "fact")
            if h is not None:
                st.at_once_from[top.name] = h

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
                track = self.node_track.get(rule.source)
                if track is not None:
                    step["track"] = track
                if rule.citations:
                    step["citations"] = rule.citations
                steps.append(step)
            # one source's handler: the verifier proved its guards disjoint (not a child's and its parent's)
            exclusive = all(e[2].get("mode") == "exclusive" for e in edges) and len({e[0] for e in edges}) == 1
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
            canonical=d.get("rule") or d.get("id") or "",
            guard=d.get("guard"),
            citations=_citations(d.get("citations")),
            alternative=d.get("alternative"),
        )
        return rule

    def _program(self, actions, state: str) -> tuple:
        """The actions, run in `state` (the state their steps name)."""
        return tuple(self._action(a, state) for a in actions)

    def _window(self, w: Mapping | None) -> tuple | None:
        """(start, end, unit, tolerance or None, every) of a due window."""
        if not w:
            return None
        tol = w.get("tolerance")
        tol = (int(tol["amount"]), str(tol["unit"])) if isinstance(tol, Mapping) else None
        return int(w["start"]), int(w["end"]), w["unit"], tol, bool(w.get("every"))

    def _action(self, a: Mapping, state: str):
        kind = a.get("kind")
        line = _line(a.get("span"))
        sources = list(a.get("sources") or ())  # shared by the steps: a trace is read, not changed
        track = self.node_track.get(state)
        citations = _citations(a.get("citations"))
        if kind in ("do", "one_of"):
            window = self._window(a.get("window"))
            if kind == "do":
                name = a["action"]
                labs = self.orders.get(name) or frozenset()
                step = {"date": None, "type": "action", "action": name, "state": state, "sources": sources,
                        "line": line}
                if track is not None:
                    step["track"] = track
                if citations:
                    step["citations"] = citations
                effect = self.effects.get(name)
                if effect is not None:
                    effect = (*effect, track)
                key = name if track is None else (track, name)
                if window is None:
                    return _Do(name, step, None, None, False, key, effect, track)
                memo: dict = {}
                return _Do(name, step, _on_day(step, window, labs, self.fulfil.get(name, ()), self.isos, memo, track,
                                               self.days),
                           memo, bool(labs), key, effect, track)
            options = tuple(a.get("options") or ())
            self.offered.update(options)
            labs_of = {o: (self.orders.get(o) or frozenset(), self.fulfil.get(o, ())) for o in options}
            # the alternatives' own actions (run in place after the option's step), and their effects
            then = {}
            for alt in a.get("alternatives") or ():
                if alt.get("actions") and alt.get("action") in labs_of:
                    then[alt["action"]] = self._program(alt["actions"], state)
            effects = {o: (*self.effects[o], track) for o in options if o in self.effects}
            return _OneOf(_one_of_action(options, state, window, labs_of, sources, line, self.isos, track, citations,
                                         then, effects, self))
        if kind == "set":
            step = {"date": None, "type": "set", "var": a["var"], "value": None, "state": state, "line": line}
            if track is not None:
                step["track"] = track
            plain = (self.var_types.get(a["var"]) in ("bool", "enum"))
            return _Set(a["var"], self._compiler.value(a["value"], f"set_{a['var']}"), step, plain, a["value"])
        if kind == "if":
            return _If(self._compiler.condition(a["cond"], "if"), self._program(a.get("then") or (), state),
                       self._program(a.get("else") or (), state), a["cond"])
        raise ExprError(f"unknown action kind {kind!r}")

    def result_dict(self, res: LabResult, day: datetime.date) -> dict:
        """`result_dict` with the lab's declared unit and default ULN."""
        lab = self.labs.get(res.lab)
        return result_dict(res, day, lab.get("unit") if lab else None, self.uln_defaults.get(res.lab))

    # -- replay

    def start(self, start: datetime.date, facts: Mapping[str, Any] | None = None, path: str = "", *,
              patient: str | None = None, inputs: list | None = None, prefer: tuple[str, ...] = ()) -> "Patient":
        """A patient's replay that goes forward as its inputs come (the incremental API; see
        `Patient` and docs/simulation.md, "Engine API"). `facts`: the facts' values on `start`
        (the others keep their declared defaults; numbers as int, Fraction or float, read
        exactly); `path`: what messages name the patient's input by; `patient`: the trace's
        patient id (default: `path`); `inputs` and `prefer`: as in `run`. Raises ValueError for
        a fact or an action the protocol does not declare."""
        if not isinstance(start, datetime.date) or isinstance(start, datetime.datetime):
            raise ValueError(f"start must be a datetime.date, not {start!r}")
        facts = facts or {}
        unknown = [name for name in facts if name not in self.fact_defaults]
        if unknown:
            raise ValueError(f"{path}: {', '.join(map(str, unknown))}: not a fact of {self.name or self.path} "
                             f"(its facts: {', '.join(self.fact_defaults) or 'none'})")
        return Patient(self, _Run(self, start, facts, path if patient is None else patient, path, inputs,
                                  self.preference(prefer, path)))

    def preference(self, prefer: tuple[str, ...], path: str = "") -> tuple[str, ...]:
        """`prefer` checked: actions the protocol declares (else ValueError)."""
        if not prefer:
            return ()
        if isinstance(prefer, str):
            prefer = (prefer,)
        unknown = [a for a in prefer if a not in self.actions]
        if unknown:
            raise ValueError(f"{path + ': ' if path else ''}{', '.join(map(str, unknown))}: not an action of "
                             f"{self.name or self.path} (its actions: {', '.join(sorted(self.actions)) or 'none'})")
        return tuple(prefer)

    def run(self, timeline: Timeline, until: datetime.date | None = None, *, inputs: list | None = None,
            prefer: tuple[str, ...] = ()) -> dict:
        """Replay `timeline`; return the trace (contracts/trace.md) as a JSON-ready dict.

        `until` overrides the timeline's end (events after it are not replayed). `inputs`, if
        given, receives `(step_index, item)` for every input as it is replayed (`item` is a
        tuple of the LabResults of a panel, a ClinicalEvent, a FactChange or a Choice), so a
        report can show the inputs among the steps. `prefer`: actions a `do one of` (or a
        choice) takes, the first of them it offers, on a day no recorded choice decides it (by
        default it takes its first option): a policy to replay the protocol under, e.g. a clinic
        that reduces the dose where the protocol's first option holds it. Raises
        SimulationError (ValueError for an action in `prefer` the protocol does not declare).

        The same replay as `start`, then `feed` for each day of the timeline, then `finish`
        (inputs dated before the start are not replayed).

        The steps of a trace share what does not change between them (the lists of `sources`,
        `options` and `window`): a trace is read, not changed."""
        start = timeline.start
        events = timeline.events
        until = until or timeline.until or (max(events[-1].date, start) if events else start)
        if until < start:
            raise ValueError(f"until {until} is before start {start}")
        run = _Run(self, start, timeline.facts, timeline.patient, timeline.path, inputs,
                   self.preference(prefer, timeline.path) if prefer else ())
        days = timeline.days  # by date, then time or file order within a day
        if days and days[0][0] < start:  # a Timeline built in code may hold them; load_timeline never does
            days = tuple(itertools.dropwhile(lambda d: d[0] < start, days))
        if days and days[-1][0] > until:  # the days after `until` are not replayed
            days = tuple(itertools.takewhile(lambda d: d[0] <= until, days))
        try:
            run.go(days)  # as `feed` for each day
            return run.finish(until)
        except _PROTOCOL_FAILURES as e:
            raise _protocol_error(run, e) from None


_PROTOCOL_FAILURES = (TypeError, ArithmeticError, AttributeError, KeyError, IndexError, ExprError)
"""What the protocol's own code raises when it fails (a graph written by hand)."""


def _protocol_error(run: "_Run", e: BaseException) -> SimulationError:
    """The protocol's own code failed on `run`'s day: a SimulationError naming its line."""
    line = protocol_line(e.__traceback__) or run.state.line
    return SimulationError(f"the protocol cannot be evaluated on {run.today}: {type(e).__name__}: {e}",
                           path=run.m.path, line=line, date=run.today)


class Patient:
    """One patient's replay, fed a day at a time (`Machine.start`): the engine the cohort
    simulator drives and `Machine.run` feeds a timeline through.

        p = machine.start(start=day0, facts={"indication": "rheumatoid_arthritis"}, path="cohort#17")
        p.feed(day, [LabResult(...), ...])   # a day's inputs, days in order
        p.advance(day)                       # timers and deviations due up to `day`, no inputs
        p.steps, p.states, p.drugs, p.open_orders()
        trace = p.finish(until)              # the trace, as Machine.run gives it

    The initial state is entered on the start day at the first `feed`, `advance`, `finish` or
    read of `steps`, `states`, `drugs`, `open_orders()` (a Choice dated the start day is read
    by the entry's actions only when fed before anything else). Misuse (a day before one
    already replayed, an input dated another day, a use after `finish` or after an error) is a
    ValueError; a protocol that cannot be replayed is a SimulationError, after which the
    patient cannot go on."""

    __slots__ = ("machine", "_run", "_closed")

    def __init__(self, machine: Machine, run: "_Run") -> None:
        self.machine = machine
        self._run = run
        self._closed: str | None = None  # why it cannot go on: finished, or an error

    def _live(self) -> "_Run":
        if self._closed is not None:
            raise ValueError(f"{self._run.path}: the replay {self._closed}: it cannot go on")
        return self._run

    def _do(self, fn: Callable, *args):
        run = self._live()
        try:
            return fn(*args)
        except _PROTOCOL_FAILURES as e:
            self._closed = "failed"
            raise _protocol_error(run, e) from None
        except SimulationError:
            self._closed = "failed"
            raise

    def _begun(self) -> "_Run":
        run = self._run
        if not run.begun and self._closed is None:
            self._do(run.begin)
        return run

    def feed(self, day: datetime.date, events) -> None:
        """Replay `day` with its inputs (LabResult, ClinicalEvent, FactChange and Choice
        objects, all dated `day`, in the order they happened: a later result of a lab replaces
        an earlier one). First runs every timer and order deviation due before `day`. Each day
        is fed once, days in date order (a day after `advance` to it is fine)."""
        if type(day) is not datetime.date:
            raise ValueError(f"day must be a datetime.date, not {day!r}")
        events = tuple(events)
        # checked before anything is replayed: inputs only, all dated `day`
        if events and (not _INPUTS.issuperset(map(type, events)) or set(map(_DATE, events)) != {day}):
            raise next(_misdated(ev, day) for ev in events if type(ev) not in _INPUTS or ev.date != day)
        run = self._run
        if self._closed is not None or not run.begun:
            self._do(run.go, ((day, events),))
            return
        try:  # as _do
            run.go(((day, events),))
        except _PROTOCOL_FAILURES as e:
            self._closed = "failed"
            raise _protocol_error(run, e) from None
        except SimulationError:
            self._closed = "failed"
            raise

    def advance(self, day: datetime.date) -> None:
        """Run the timers and deviations due up to and including `day`, with no inputs."""
        if not isinstance(day, datetime.date) or isinstance(day, datetime.datetime):
            raise ValueError(f"day must be a datetime.date, not {day!r}")
        self._do(self._run.advance, day)

    def finish(self, until: datetime.date | None = None) -> dict:
        """Run what is due up to and including `until` (default: the last day fed or advanced
        to, else the start) and return the trace, exactly as `Machine.run` gives it. The patient
        is then finished."""
        run = self._live()
        if until is None:
            until = run.reached
        trace = self._do(run.finish, until)
        self._closed = "is finished"
        return trace

    @property
    def today(self) -> datetime.date:
        """The last day replayed (fed, advanced to, or the start)."""
        return self._run.reached

    @property
    def steps(self) -> list[dict]:
        """The trace's steps so far (the JSON trace's dicts; the list grows: new ones are
        `steps[n:]`). Read them, do not change them."""
        return self._begun().steps

    @property
    def warnings(self) -> list[dict]:
        """The trace's warnings so far."""
        return self._begun().warnings

    @property
    def states(self) -> list[str]:
        """The active atomic states (one per active region), in document order."""
        run = self._begun()
        return [st.name for st in run.config] if self.machine.chart else [run.state.name]

    @property
    def drugs(self) -> dict[str, dict]:
        """Each declared drug's status ("not_started", "on", "held", "stopped") and dose, as the
        trace's `drugs` shows them."""
        return self._begun().drug_summary()

    def open_orders(self) -> list[dict]:
        """The open orders, oldest first: {"action", "labs" (sorted), "fulfil" (the lab sets that
        fulfil it, each sorted), "ordered", "opens" (the window's first day), "due" (its last
        day), "late" (the day its first `overdue` deviation comes), "overdue" (one came),
        "line"; "track" in a track}, with datetime.date values."""
        run = self._begun()
        out = []
        for o in run.orders.values():
            d = {"action": o.action, "labs": sorted(o.labs), "fulfil": [sorted(alt) for alt in o.fulfil],
                 "ordered": datetime.date.fromisoformat(o.ordered),
                 "opens": datetime.date.fromisoformat(o.text[0]), "due": datetime.date.fromisoformat(o.text[1]),
                 "late": o.late, "overdue": o in run.overdue, "line": o.line}
            if o.track is not None:
                d["track"] = o.track
            out.append(d)
        return out


# ---------------------------------------------------------------------------- actions

def _day(m: Machine, day: datetime.date) -> tuple[datetime.date, str]:
    """(the Machine's own object for `day`, its ISO text), made the first time a replay meets it."""
    return _own_day(m.days, m.isos, day)


def _own_day(days: dict, isos: dict, day: datetime.date) -> tuple[datetime.date, str]:
    """_day, given the Machine's dicts (`Machine.days`, `Machine.isos`)."""
    hit = days.get(day)
    if hit is None:
        own = datetime.date(day.year, day.month, day.day)
        hit = days[own] = (own, _iso(isos, day))
    return hit


def _iso(isos: dict, day: datetime.date) -> str:
    text = isos.get(day)
    if text is None:
        text = isos[day] = day.isoformat()
    return text


def result_dict(res: LabResult, day: datetime.date, unit: str | None = None, uln: Any = None) -> dict:
    """A result as a trace shows it (a `panel` step's `results`, a step's `replaced`): the value
    in the lab's declared `unit`, its ULN (the result's own, else the lab's default `uln`) and
    its multiple of the ULN, the exact value as text where the number is not whole; `from` when
    it is an earlier day's result read on `day`."""
    d: dict[str, Any] = {"lab": res.lab}
    put_number(d, "value", res.value)
    if unit:
        d["unit"] = unit
    if res.uln is not None:
        uln = res.uln
    if uln is not None:
        put_number(d, "uln", uln)
        if uln:
            put_number(d, "xuln", Fraction(res.value) / uln)
    if res.date != day:
        d["from"] = res.date.isoformat()
    time = getattr(res, "time", None)
    if time is not None:
        d["time"] = time
    if res.loc.line:
        d["line"] = res.loc.line  # where the result stands in the input
    return d


def put_number(d: dict, key: str, q) -> None:
    """d[key] = q as JSON: an int as it is; otherwise the nearest float, and the exact value as
    text under `<key>_exact` (a decimal, or p/q when it has no finite decimal expansion)."""
    if isinstance(q, int) or q.denominator == 1:
        d[key] = int(q)
        return
    d[key] = float(q)
    d[key + "_exact"] = ir.decimal_text(q) or f"{q.numerator}/{q.denominator}"


def _times_read(graph) -> tuple[bool, frozenset]:
    """What the graph's expressions and timers read of time: whether any reads `since entry`,
    and the actions whose last recommendation some `since(ACTION)` or timer counts from (a
    replay keeps the day of those only)."""
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
    nodes = [n for t in trees if t is not None for n in ir.walk(t)]
    actions = {n["args"][0].get("name") for n in nodes if n.get("op") == "call" and n.get("func") == "since"}
    for _, data in graph.nodes(data=True):
        for h in data.get("handlers") or ():
            if isinstance(h, Mapping) and h.get("trigger") == "timer":
                actions.add((h.get("timer") or {}).get("since"))
    actions.discard(None)
    return any(n.get("op") == "since_entry" for n in nodes), frozenset(actions)


def _validate_trees(graph, path: str) -> None:
    """Every expression tree of the graph is a valid IR tree over declared names (ir.validate),
    before any code is generated from it."""
    g = graph.graph
    names = {kind: set(g.get(key) or ()) for kind, key in
             (("lab", "labs"), ("fact", "facts"), ("var", "vars"), ("let", "lets"), ("action", "actions"),
              ("drug", "drugs"))}

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


def _on_day(step: dict, window: tuple, labs: frozenset, fulfil: tuple, isos: dict, memo: dict,
            track: str | None = None, days: dict | None = None):
    """on(day): what an action with a due window does on `day`, made the first time and kept
    in `memo` (per action and day): its `action` step (`step` with that day's date and window)
    and the order it opens (None if it opens none).

    `window`: (start, end, unit, tolerance, every). With a tolerance (`due 3 months`), the window
    is [day + 3 months - tolerance, day + 3 months + tolerance]. `every`: a result that fulfils
    the order opens the same order again, counted from the fulfilling day (its step says
    `repeat: true`)."""
    start, end, unit, tol, every = window
    action = step["action"]
    line = step["line"]
    again: Any = None
    if every:
        if step.get("repeat"):
            again = "itself"  # a repeat repeats in turn
        else:
            repeat = dict(step)
            repeat["repeat"] = True
            again = _on_day(repeat, window, labs, fulfil, isos, {}, track, days)

    def on(day: datetime.date) -> tuple[dict, _Order | None]:
        hit = memo.get(day)
        if hit is None:
            if tol is None:
                last = shift(day, end, unit)
                opens = shift(day, start, unit)
            else:
                opens = shift(shift(day, start, unit), -tol[0], tol[1])
                last = shift(shift(day, end, unit), tol[0], tol[1])
            text = [opens.isoformat(), last.isoformat()]
            iso = _iso(isos, day)
            s = {k: v for k, v in step.items() if k not in ("sources", "line")}
            s["date"] = iso
            s["window"] = text  # before the sources, as the contract lists them
            s["sources"] = step["sources"]
            s["line"] = line
            late = last + _ONE_DAY if last < MAX_DATE else last
            if days is not None:  # the Machine's own object for that day: the replay's day when it comes
                late = _own_day(days, isos, late)[0]
            hit = memo[day] = (s, _Order(action, text, late, labs, iso, line, opens, fulfil, track,
                                         on if again == "itself" else again) if labs else None)
        return hit

    return on


def _one_of_action(options: tuple, state: str, window, labs_of: Mapping, sources: list, line: int,
                   isos: dict, track: str | None = None, citations: list | None = None, then: Mapping | None = None,
                   effects: Mapping | None = None, m: "Machine | None" = None) -> Callable[["_Run"], None]:
    shown = list(options)
    steps = {}
    for o in options:
        steps[o] = {"date": None, "type": "action", "action": o, "state": state, "options": shown,
                    "sources": sources, "line": line}
        if track is not None:
            steps[o]["track"] = track
        if citations:
            steps[o]["citations"] = citations
    days = m.days if m is not None else None
    ons = {o: _on_day(steps[o], window, *labs_of[o], isos, {}, track, days) for o in options} if window else None
    programs: dict = {}  # the alternatives' own actions, compiled on first use

    def one_of(r: "_Run") -> None:
        taken, preferred = r.choose(options)
        if ons is None:
            s = steps[taken].copy()
            s["date"] = r.iso
            order = None
        else:
            s, order = ons[taken](r.today)
            s = s.copy()
        if preferred:
            s["preferred"] = True  # taken by the replay's preference, not by a recorded choice
        if effects and taken in effects:
            r.drug_act(effects[taken], s)
        r.emit(s)
        if order is not None:
            r.open(order)
        r.last[taken] = r.today
        if then and taken in then:
            run = programs.get(taken)
            if run is None:
                run = programs[taken] = m._gen.program(then[taken])
            run(r)

    return one_of


# ---------------------------------------------------------------------------- statecharts

def _citations(cites: Any) -> list | None:
    """A place's citations, when any has a locator (else None: `sources` says it all)."""
    if not cites or not any(isinstance(c, Mapping) and c.get("locator") for c in cites):
        return None
    return [{"source": c.get("source"), "locator": c.get("locator")} for c in cites if isinstance(c, Mapping)]


def _alternative_action(data: Mapping, i: int) -> str:
    """The action of alternative `i` of the choice in a rule's actions (graph format 3)."""
    for a in data.get("actions") or ():
        alts = a.get("alternatives") if isinstance(a, Mapping) else None
        if alts and i < len(alts):
            return alts[i]["action"]
    raise ValueError(f"rule {data.get('id')!r} has no choice with an alternative {i}")


def _check_chart(states: Mapping[str, "_State"], path: str) -> None:
    """The statechart is one the replay can run: a state with children has a default child,
    every child names its parent, no state is its own ancestor (E903)."""
    for st in states.values():
        if len(st.ancestors) > len(states):
            raise SimulationError(f"state {st.name!r} is its own ancestor", path=path, line=st.line, code="E903")
        if st.type in ("compound", "parallel", "track") and not st.children:
            raise SimulationError(f"the {st.type} state {st.name!r} has no states in it", path=path, line=st.line,
                                  code="E903")
        if st.type == "atomic" and st.children:
            raise SimulationError(f"the atomic state {st.name!r} has states in it", path=path, line=st.line,
                                  code="E903")
        for c in st.children:
            if c.parent is not st:
                raise SimulationError(f"state {c.name!r} is a child of {st.name!r} but names another parent",
                                      path=path, line=c.line, code="E903")
            if (st.type == "parallel") != (c.type == "track"):
                raise SimulationError(f"{c.name!r} in {st.name!r}: a parallel state holds tracks, and only it does",
                                      path=path, line=c.line, code="E903")
        if st.initial is not None and st.initial.parent is not st:
            raise SimulationError(f"the initial child of {st.name!r} is not one of its children", path=path,
                                  line=st.line, code="E903")


def _domain(src: "_State", tgt: "_State") -> "_State | None":
    """The state below which a rule from `src` to `tgt` exits and enters (None: the top level):
    their lowest common ancestor; the target's parent when the target is the source or one of
    its ancestors (the target is re-entered); the source when it contains the target."""
    if tgt in src.ancestors:
        return tgt.parent
    if src in tgt.ancestors:
        return src
    for a in src.ancestors:
        if a in tgt.ancestors:
            return a
    return None


def _entry_path(domain: "_State | None", target: "_State") -> tuple:
    """The states entered below `domain` to reach `target`, outermost first, in document order:
    the path to the target, a parallel state's other tracks at their initial states, and the
    target's initial descendants."""
    path = list(reversed(target.ancestors))
    if domain is not None:
        path = path[path.index(domain) + 1:]
    out: list = []

    def complete(st):
        if st.type == "parallel":
            for tr in st.children:
                out.append(tr)
                complete(tr)
        elif st.initial is not None:
            out.append(st.initial)
            complete(st.initial)

    def down(i):
        st = path[i]
        out.append(st)
        if i == len(path) - 1:
            complete(st)
            return
        nxt = path[i + 1]
        if st.type == "parallel":
            for tr in st.children:
                if tr is nxt:
                    down(i + 1)
                else:
                    out.append(tr)
                    complete(tr)
        else:
            down(i + 1)

    if path:
        down(0)
    return tuple(out)


def _route(rule: _Rule) -> None:
    """A rule's domain and the states it enters (the ones it exits depend on the day's
    configuration)."""
    if rule.stay:
        rule.domain = rule.from_state
        rule.depth = rule.from_state.depth
        return
    rule.domain = _domain(rule.from_state, rule.to_state)
    rule.depth = -1 if rule.domain is None else rule.domain.depth
    rule.entry = _entry_path(rule.domain, rule.to_state)


class _DrugDecl:
    """A declared drug: its dose levels, highest first (exact numbers, or names)."""

    __slots__ = ("name", "levels", "shown", "kind")

    def __init__(self, name: str, d: Mapping) -> None:
        self.name = name
        self.kind = d.get("kind") or "number"
        doses = list(d.get("doses") or ())
        self.levels = [str(x) if self.kind == "name" else Q(ir.exact(x)) for x in doses]
        self.shown = doses  # as the graph writes them

    def index(self, level: Any) -> int:
        for i, x in enumerate(self.levels):
            if (str(level) == x) if self.kind == "name" else (Q(ir.exact(level)) == x):
                return i
        raise ValueError(f"{level!r} is not a dose level of drug {self.name!r}")


def _effect(action: str, eff: Mapping, drugs: Mapping[str, _DrugDecl]) -> tuple:
    kind = eff["kind"]
    if kind not in ("start", "hold", "resume", "dose", "stop"):
        raise ValueError(f"action {action!r}: unknown drug effect {kind!r}")
    drug = drugs[eff["drug"]]
    level = eff.get("dose")
    return kind, drug, None if level is None else drug.index(level)


class _Drug:
    """A drug in one replay: started, stopped, and each region's hold and dose request."""

    __slots__ = ("decl", "started", "stopped", "holds", "asks")

    def __init__(self, decl: _DrugDecl) -> None:
        self.decl = decl
        self.started = False
        self.stopped = False
        self.holds: dict = {}  # region (track or None) -> True
        self.asks: dict = {}  # region -> level index

    def status(self) -> str:
        if self.stopped:
            return "stopped"
        if not self.started:
            return "not_started"
        return "held" if self.holds else "on"

    def level(self) -> int:
        return max(self.asks.values()) if self.asks else 0  # the lowest level any region asks for

    def read(self, func: str):
        if func == "held":
            return bool(self.holds) and self.started and not self.stopped
        if func == "stopped":
            return self.stopped
        if func == "started":
            return self.started
        return self.decl.levels[self.level()] if self.started and not self.stopped else None

    def to_dict(self) -> dict:
        d: dict = {"name": self.decl.name, "status": self.status()}
        _put_value(d, "dose", self.read("dose"))
        d["held_by"] = [t for t in self.holds if t is not None] if not self.stopped else []
        return d


_SHOWN: dict = {}
"""A rational's (numerator, denominator) -> (its JSON number, its exact text or None): values
repeat between patients. (A new rational's own hash costs more than its two integers'.)"""
_QTYPE = type(Q(1))


def _shown(v) -> tuple:
    """(its JSON number, its exact text or None) for a runtime rational `v`."""
    key = (v.numerator, v.denominator)
    hit = _SHOWN.get(key)
    if hit is None:
        hit = (int(v), None) if key[1] == 1 else (float(v), ir.decimal_text(v) or f"{key[0]}/{key[1]}")
        if len(_SHOWN) < 100_000:
            _SHOWN[key] = hit
    return hit


def _put_value(d: dict, key: str, v: Any, exact_key: str | None = None) -> None:
    """d[key] = v as the trace writes values: numbers as `put_number` does, bools and members
    as they are, unknown as null, a time since a day as that day."""
    if type(v) is _QTYPE:
        shown = _shown(v)
        d[key] = shown[0]
        if shown[1] is not None:
            d[exact_key or key + "_exact"] = shown[1]
    elif v is None or v is True or v is False or type(v) is str:
        d[key] = v
    elif isinstance(v, Since):
        d[key] = v.last.isoformat()
    elif isinstance(v, Dur):
        d[key] = f"{v.amount} {v.unit}"
    elif isinstance(v, int) or v.denominator == 1:
        d[key] = int(v)
    else:
        shown = _SHOWN.get(v)
        if shown is None:
            shown = (float(v), ir.decimal_text(v) or f"{v.numerator}/{v.denominator}")
            if len(_SHOWN) < 100_000:
                _SHOWN[v] = shown
        d[key] = shown[0]
        d[key + "_exact"] = shown[1]


_SHOWN_Q: dict = {}
"""A shared runtime rational (a multiple of the ULN, kept by expr._xq) -> (its JSON number, its
exact text or None). Keyed by the rational itself: a shared one's hash is computed once."""


def _shared_let(name: str, lets: Mapping, seen: frozenset = frozenset()) -> bool:
    """Whether the let's value is always a quotient expr._xq shares (or unknown): `xuln(LAB)`,
    or the max/min of such lets and calls (which returns one of them)."""
    decl = lets.get(name)
    if not isinstance(decl, Mapping) or name in seen:
        return False

    def shared(t) -> bool:
        if not isinstance(t, Mapping):
            return False
        if t.get("op") == "call" and t.get("func") == "xuln":
            return True
        if t.get("op") == "call" and t.get("func") in ("max", "min") and t.get("args"):
            return all(shared(a) for a in t["args"])
        if t.get("op") == "let":
            return _shared_let(t.get("name"), lets, seen | {name})
        return False

    return shared(decl.get("expr"))


def _put_shared_value(d: dict, key: str, exact_key: str, v: Any) -> None:
    """d[key] = v, a let whose value is a shared quotient (or unknown), as the trace writes values."""
    if type(v) is _QTYPE:
        shown = _shown(v)
        if len(_SHOWN_Q) < 100_000:
            _SHOWN_Q[v] = shown
        d[key] = shown[0]
        if shown[1] is not None:
            d[exact_key] = shown[1]
    else:
        _put_value(d, key, v, exact_key)


def _put_number_value(d: dict, key: str, exact_key: str, v: Any) -> None:
    """d[key] = v, a let's value (usually a number), as the trace writes values."""
    if type(v) is _QTYPE:
        shown = _SHOWN.get((v.numerator, v.denominator))
        if shown is None:
            shown = _shown(v)
        d[key] = shown[0]
        if shown[1] is not None:
            d[exact_key] = shown[1]
    else:
        _put_value(d, key, v, exact_key)


def _emit_set(r: "_Run", step: dict, value: Any) -> None:
    s = step.copy()
    s["date"] = r.iso
    _put_value(s, "value", value)
    r.emit(s)


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
    values: list = [None] * len(handler.guards)  # the values each guard reads (made when first needed)
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
        probe.drugs = r.drugs
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
        if r.state.track is not None:
            s["track"] = r.state.track
        read = values[undecided[0]]
        if read is None:
            read = values[undecided[0]] = _reads(handler.guards[undecided[0]], lets, compiler)
        if read[0] or read[1]:
            s["values"] = r.values_of(tuple((n, n + "_exact") for n in read[0]), tuple(f(r) for f in read[2]), read[1])
        r.emit(s)

    return unassessable


def _reads(guard: Mapping | None, lets: Mapping, compiler: Compiler | None = None) -> tuple:
    """(the lets `guard` reads, through other lets too, in order; the drug reads among them as
    (key, func, drug)); with `compiler`, a third item: a function per let giving its value."""
    names: dict[str, None] = {}
    drugs: dict[tuple, None] = {}
    stack = [guard] if guard is not None else []
    while stack:
        t = stack.pop()
        for n in ir.walk(t):
            if n.get("op") == "let" and n["name"] not in names:
                names[n["name"]] = None
                decl = lets.get(n["name"])
                if isinstance(decl, Mapping) and decl.get("expr") is not None:
                    stack.append(decl["expr"])
            elif n.get("op") == "call" and n.get("func") in DRUG_READS and n.get("args"):
                arg = n["args"][0]
                if isinstance(arg, Mapping) and arg.get("op") == "drug":
                    drugs[(f"{n['func']}({arg['name']})", n["func"], arg["name"])] = None
    out = (tuple(names), tuple(drugs))
    if compiler is None:
        return out
    return (*out, tuple(compiler.value({"op": "let", "name": n}, f"value_{n}") for n in names))


def _regions(day: datetime.date, done: list) -> tuple:
    """What `fulfilled(ACTION)` reads in each region of a statechart, the day the orders `done`
    were fulfilled: (day, track -> the actions whose order in that track or at the top level
    was fulfilled (None: a state outside the tracks, which reads every region's), the actions of
    the top level's, the tracks whose own order was). A track answers for its own orders: a blood
    count that fulfils the platelet track's order is not the neutrophil track's scheduled one."""
    top = {o.action for o in done if o.track is None}
    views: dict = {None: {o.action for o in done}}
    for o in done:
        if o.track is not None:
            views.setdefault(o.track, set(top)).add(o.action)
    return day, views, top, frozenset(t for t in views if t is not None)


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

    def __init__(self, timers: bool, at_once: bool, since_entry: bool = True, since: frozenset | None = None,
                 chart: bool = False) -> None:
        self.count = 0
        self.timers = timers  # some state has timers (else no replay ever arms one)
        self.at_once = at_once  # some state has `on fact` rules (else nothing is ever pending)
        self.since_entry = since_entry  # some expression reads `since entry` (else the day of entry is never read)
        self.since = since  # the actions whose last day is read (`since(ACTION)`, timers); None: every action's
        self.chart = chart  # a statechart: a rule chosen is selected, fired with the other regions' (_Run.execute)
        self.rational = True  # the replay's panels hold runtime rationals (quotients shared by expr._xq)
        self.compiler: Compiler | None = None  # the protocol's expressions (an `if`'s condition is inlined)
        self.known: tuple = ()  # the panel-only lets the react function being written has computed (`react`)

    def react(self, compiler: Compiler, handler: _Handler, lets: Mapping) -> Callable[["_Run"], bool]:
        out = _Source(self, "react", handler.label, prefix="E")
        branches = []
        # the lets the dispatcher has computed when a rule's branch runs (those of the guards up to
        # its own; all of them when the guards are exclusive): an action's condition reads the
        # ones that read only the panel as they are (`Compiler.panel_only`), the others afresh
        computed: dict[str, None] = {}
        if handler.exclusive:
            for g in handler.guards:
                computed.update(dict.fromkeys(_reads(g, lets)[0]))
        for rule, step, guard in zip(handler.rules, handler.steps, handler.guards):
            out.lines = []
            computed.update(dict.fromkeys(_reads(guard, lets)[0]))
            self.known = tuple(n for n in computed if compiler.panel_only(n))
            values = self.values(out, compiler, rule, lets)
            if self.chart:
                out.add(0, f"r.select({out.const(rule)}, {out.const(step)}, {values})")
            else:
                self.firing(out, rule, step, values, counted=handler.trigger not in _BY_INPUT)
            branches.append(out.lines)
        self.known = ()
        unknown = out.const(_unassessable(handler, lets, compiler))
        before = None
        if self.chart and self.since_entry:  # `since entry` counts from entering the rule's own state
            before = [[f"c.entered = c.entries.get({out.const(rule.source)}, c.today)"] for rule in handler.rules]
        return compiler.dispatcher(handler.guards, branches, out.consts, handler.label,
                                   exclusive=handler.exclusive, on_unknown=unknown,
                                   line=handler.rules[0].line if handler.rules else 0, before=before)

    def values(self, out: "_Source", compiler: Compiler, rule: _Rule, lets: Mapping) -> str:
        """The code of the `values` a transition step shows: the lets and drug reads its guard
        depends on, as the guard saw them (the lets are the dispatcher's locals by then), in
        lines put in `out` that leave them in `v`. A bool's value is written as it is; a number
        as the trace writes numbers (`_put_number_value`)."""
        names, drugs = _reads(rule.guard, lets)
        if not names and not drugs:
            return "None"
        out.add(0, "v = {}")
        for n in names:
            local = compiler.let_local(n)
            if (lets.get(n) or {}).get("type") == "bool":
                out.add(0, f"v[{out.const(n)}] = {local}")
            elif self.rational and _shared_let(n, lets):  # a multiple of a ULN: a quotient shared (expr._xq)
                key, exact = out.const(n), out.const(n + "_exact")
                out.add(0, f"x = {out.const(_SHOWN_Q)}.get({local})")
                out.add(0, "if x is None:")
                out.add(1, f"{out.const(_put_shared_value)}(v, {key}, {exact}, {local})")
                out.add(0, "else:")
                out.add(1, f"v[{key}] = x[0]")
                out.add(1, "if x[1] is not None:")
                out.add(2, f"v[{exact}] = x[1]")
            else:  # the usual case inline: a rational shown before
                key, exact = out.const(n), out.const(n + "_exact")
                out.add(0, f"x = {out.const(_SHOWN)}.get(({local}.numerator, {local}.denominator)) "
                           f"if type({local}) is {out.const(_QTYPE)} else None")
                out.add(0, "if x is None:")
                out.add(1, f"{out.const(_put_number_value)}(v, {key}, {exact}, {local})")
                out.add(0, "else:")
                out.add(1, f"v[{key}] = x[0]")
                out.add(1, "if x[1] is not None:")
                out.add(2, f"v[{exact}] = x[1]")
        if drugs:
            out.add(0, f"r.drug_values(v, {out.const(drugs)})")
        return "v"

    def firing(self, out: "_Source", rule: _Rule, step: dict, values: str = "None", counted: bool = True) -> None:
        """Fire `rule`: its transition step (`step`), then enter its target (or, for a stay
        rule, its actions only). `counted`: a rule no input fires, counted against a zero-time
        loop (`fired_today`)."""
        if counted:
            out.add(0, "fired = r.fired_today")
            out.add(0, f"fired.append({out.const(rule)})")
            out.add(0, f"if len(fired) > {MAX_TRANSITIONS_PER_DAY}:")
            out.add(1, "raise r.loop_error()")
        out.add(0, "iso = r.iso")
        out.add(0, "emit = r.emit")
        out.add(0, f"s = {out.const(step)}.copy()")
        out.add(0, "s['date'] = iso")
        if values != "None":
            out.add(0, f"s['values'] = {values}")
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

    def inline(self, out: "_Source", tree: Mapping, depth: int, test: bool = False) -> str:
        """An expression's code in the function `out` is writing: the lines that bind what it
        reads and its lets (computed afresh: an action before may have changed a var; in a
        react function, a let that reads only the panel is its dispatcher's local) go in first;
        returns the code of its value."""
        lines, code = self.compiler.inline(tree, out.const, test=test, known=self.known if out.kind == "react" else ())
        if out.kind != "react":
            out.add(depth, "c = r")  # the ctx, as expressions name it (a dispatcher's parameter)
        for line in lines:
            out.add(depth, line)
        return code

    def block(self, out: "_Source", actions: tuple, depth: int) -> None:
        if not actions:
            out.add(depth, "pass")
        for a in actions:
            if type(a) is _Do:
                if a.on is None:
                    out.add(depth, f"s = {out.const(a.step)}.copy()")
                    out.add(depth, "s['date'] = iso")
                    if a.effect is not None:
                        out.add(depth, f"r.drug_act({out.const(a.effect)}, s)")
                    out.add(depth, "emit(s)")
                else:
                    out.add(depth, f"h = {out.const(a.memo)}.get(today)")
                    out.add(depth, "if h is None:")
                    out.add(depth + 1, f"h = {out.const(a.on)}(today)")
                    if a.effect is not None:
                        out.add(depth, "s = h[0].copy()")
                        out.add(depth, f"r.drug_act({out.const(a.effect)}, s)")
                        out.add(depth, "emit(s)")
                    else:
                        out.add(depth, "emit(h[0].copy())")
                    if a.opens and a.region is not None:  # in a track: `open` (it replaces the top level's too)
                        out.add(depth, "r.open(h[1])")
                    elif a.opens:  # a new order of the same action replaces the open one (and goes last): `open`, inline
                        name = out.const(a.key)
                        out.add(depth, f"o = h[1]")
                        out.add(depth, f"if {name} in orders:")
                        out.add(depth + 1, f"del orders[{name}]")
                        out.add(depth, f"orders[{name}] = o")
                        out.add(depth, f"r.alarms[{name}] = o.late")
                if self.since is None or a.name in self.since:
                    out.add(depth, f"last[{out.const(a.name)}] = today")
            elif type(a) is _OneOf:
                out.add(depth, f"{out.const(a.run)}(r)")
            elif type(a) is _Set:
                if self.compiler is not None and a.tree is not None:
                    value = self.inline(out, a.tree, depth)  # no call: the value's code in place
                else:
                    value = f"{out.const(a.value)}(r)"
                out.add(depth, f"v = r.vars[{out.const(a.var)}] = {value}")
                if a.plain:  # a bool or a member: written as it is
                    out.add(depth, f"s = {out.const(a.step)}.copy()")
                    out.add(depth, "s['date'] = iso")
                    out.add(depth, "s['value'] = v")
                    out.add(depth, "emit(s)")
                else:
                    out.add(depth, f"{out.const(_emit_set)}(r, {out.const(a.step)}, v)")
            elif type(a) is _If:
                if depth >= self.MAX_DEPTH - 2:
                    out.add(depth, f"{out.const(self.program((a,)))}(r)")
                    continue
                if self.compiler is not None and a.tree is not None:
                    # the condition inline (no call): what it reads and its lets, computed afresh
                    out.add(depth, f"if {self.inline(out, a.tree, depth, test=True)}:")
                else:
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
        self.kind = kind
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
        namespace = dict(_RUNTIME)  # the helpers an inlined condition calls
        namespace.update(self.consts)
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
    as a Ctx, what the protocol's expressions read (the panel, facts, vars, the day...).

    A replay goes forward one calendar day at a time: `feed(day, events)` runs what is due
    before `day` (`run_due`), then the day itself (`due_today`: its deviations and timers; then
    its panel and events). `Machine.run` feeds a timeline's days; `Patient` (the incremental
    API) feeds them as they come."""

    __slots__ = ("m", "path", "patient", "start", "until", "iso", "steps", "emit", "warnings", "orders", "overdue",
                 "alarms", "recent", "replaced", "timers", "state", "pending", "fired_today", "choices", "used",
                 "inputs", "today_inputs", "config", "entries", "sel", "begun", "fed", "reached", "day_events",
                 "prefer", "regions")

    def __init__(self, m: Machine, start: datetime.date, facts: Mapping, patient: str, path: str,
                 inputs: list | None, prefer: tuple = ()) -> None:
        self.m = m
        self.prefer = prefer  # the actions a choice takes when no recorded choice decides it
        self.path = path
        self.patient = patient
        hit = m.days.get(start)
        if hit is None:
            hit = _day(m, start)
        start, iso = hit
        self.start = start
        self.until = start
        values = self.facts = dict(m.fact_defaults)
        for k, v in facts.items():
            values[k] = v if type(v) is bool or type(v) is str else _value(v)
        self.vars = dict(m.var_defaults)
        self.today = start
        self.panel = self.ulns = _NOTHING  # no panel yet
        self.last = {}
        self.iso = iso
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
        self.drugs = {name: _Drug(d) for name, d in m.drugs.items()} if m.drugs else _NO_DRUGS
        self.begun = False  # the initial state is entered (on `start`, at the first day fed or run)
        self.fed: datetime.date | None = None  # the last day fed (None: none yet)
        self.reached = start  # the last day fed or advanced to (or the start)
        self.day_events: tuple | list = ()  # the inputs fed today (W905 is located at the first)
        if m.chart:
            self.config: list[_State] = []  # the active atomic states, in document order: one per active region
            self.entries: dict[str, datetime.date] = {}  # active state -> the day it was entered
            self.pending = []  # (atomic state, its `on fact` rules) still to try on entry
            # the orders today's results fulfilled, by region (`fulfil`): (day, track -> the actions whose
            # order in that track or at the top level was fulfilled, the tracks whose own order was)
            self.regions: tuple | None = None

    # -- the day loop

    def begin(self) -> None:
        """Enter the initial state on the start day (the start day's choices, if any, already
        read)."""
        self.begun = True
        if self.m.chart:
            self.enter_initial()
        else:
            self.m.states[self.m.initial].enter(self)
        if self.pending or self.timers:  # (else settling does nothing)
            self.settle()

    def run_due(self, limit: datetime.date, inclusive: bool, day: datetime.date | None = None,
                soonest: datetime.date | None = None) -> datetime.date | None:
        """Run every day before `limit` (and `limit` too when `inclusive`) on which a timer or
        an order's deviation is due, with no inputs. Return the next day one is due (None:
        none is). `day` and `soonest`: the next day a timer or a deviation is due and the next
        day a deviation is (None: none is), when the caller has just found them (`go`). (The
        day's work as `new_day` and `due_today`, inline: most replays have such days between
        their inputs.)"""
        timers = self.timers
        alarms = self.alarms
        days_of = self.m.days
        while True:
            if day is None:  # the next day a timer or a deviation is due
                if not timers and not alarms:
                    return None
                soonest = None
                if timers:
                    for t in timers:
                        if day is None or t.due < day:
                            day = t.due
                if alarms:
                    if len(alarms) == 1:  # the usual case: one open order
                        for soonest in alarms.values():
                            pass
                    else:
                        soonest = min(alarms.values())
                    if day is None or soonest < day:
                        day = soonest
            if day >= limit and (day > limit or not inclusive):
                return day
            if day <= self.today:
                return day  # a timer or deviation due past the calendar's last day (MAX_DATE) never comes
            # a new day (as new_day)
            hit = days_of.get(day)
            if hit is None:
                hit = _day(self.m, day)
            day, iso = hit
            self.iso = iso
            self.today = day
            if self.fired_today:
                self.fired_today = []
            if self.fulfilled:
                self.fulfilled = _NO_ORDERS
            if self.day_events:
                self.day_events = ()
            # (as due_today) (1) deviations of orders overdue today, (2) timers due today
            if soonest is not None and soonest <= day:
                if len(alarms) == 1:
                    # the usual case, one open order, overdue today: its deviation as `deviations` writes it
                    key, = alarms
                    o = self.orders.get(key)
                    if o is None:
                        del alarms[key]
                    else:
                        s = o.deviation.copy()
                        s["date"] = iso
                        overdue = self.overdue
                        if o in overdue:
                            s["kind"] = "still_overdue"
                        else:
                            overdue.add(o)
                        self.emit(s)
                        reminders = self.m.reminders
                        if reminders is None:
                            del alarms[key]
                        else:
                            alarms[key] = shift(day, reminders[0], reminders[1])
                else:
                    self.deviations(day)
            if timers:
                self.settle()
            timers = self.timers
            day = None

    def new_day(self, day: datetime.date) -> None:
        self.today, self.iso = _day(self.m, day)
        if self.fired_today:
            self.fired_today = []
        if self.fulfilled:
            self.fulfilled = _NO_ORDERS
        if self.day_events:
            self.day_events = ()

    def due_today(self, day: datetime.date) -> None:
        """(1) the deviations of orders overdue today (the day after the window, then the
        reminders); (2) the timers due today."""
        alarms = self.alarms
        if alarms and min(alarms.values()) <= day:
            self.deviations(day)
        if self.timers:
            self.settle()

    def order_error(self, day: datetime.date) -> ValueError:
        if day < self.start:
            return ValueError(f"{self.path}: inputs dated {day}, before the start {self.start}")
        return ValueError(f"{self.path}: timeline events are not in date order ({day} after "
                          f"{self.reached}); feed each day once, in date order (load_timeline sorts them)")

    def go(self, days) -> None:
        """Replay `days`, each `(day, its inputs)` (LabResults, ClinicalEvents, FactChanges and
        Choices, all dated `day`, by time then file order), days in date order, each after the
        last one replayed (`Machine.run` leaves out the days after its `until`). For each day:
        first what is due before it (`run_due`); then (1) the deviations and (2) the timers due
        that day, (3) its panel (its results, read as they come: a later result of a lab
        replaces an earlier one), (4) its clinical events and fact changes in order. Choices
        hold until the end of the day.

        `Patient.feed` gives one day, `Machine.run` a timeline's days: one loop, whose day's
        state lives in locals (the replay's per-day work is small: an attribute read saved
        counts)."""
        m = self.m
        days_of = m.days
        lookback = m.lookback
        chart = m.chart
        orders = self.orders
        alarms = self.alarms
        inputs = self.inputs
        # a flat protocol, results read on their day only, no report of the inputs: the usual replay
        plain = not chart and lookback is None and inputs is None
        # a day to replay comes after the last day fed (`low`), and not before one advanced to
        fed = self.fed
        if fed is not None and self.reached <= fed:
            low = fed
        elif self.reached > _FIRST_DAY:
            low = self.reached - _ONE_DAY
        else:
            low = None  # nothing fed, at the calendar's first day: any day may come
        first = low
        begun = self.begun
        timed = m.timed
        settles = m.settles
        result = LabResult  # (a local: read for every input)
        dated = None  # each lab's result date, with a lookback (None: every result is today's)
        for day, todays in days:
            if low is not None and day <= low:
                if low is not first:
                    self.fed = self.reached = low
                raise self.order_error(day)
            due = None  # the next day a timer or a deviation is due
            if begun:
                if timed:
                    for t in self.timers:
                        if due is None or t.due < due:
                            due = t.due
                if alarms:
                    if len(alarms) == 1:  # the usual case: one open order
                        soonest, = alarms.values()
                    else:
                        soonest = min(alarms.values())
                    if due is None or soonest < due:
                        due = soonest
                    if due < day:
                        due = self.run_due(day, False, due, soonest)
                elif due is not None and due < day:
                    due = self.run_due(day, False, due)
                if low is not first or day != self.today:
                    # a new day (as new_day): after this call's first day, any day is (it comes
                    # after the last one replayed); only the first may be the day advanced to
                    hit = days_of.get(day)
                    if hit is None:
                        hit = _day(m, day)
                    day, self.iso = hit
                    self.today = day
                    if self.fired_today:
                        self.fired_today = []
                    if self.fulfilled:
                        self.fulfilled = _NO_ORDERS
                else:
                    day = self.today
            elif day != self.start:
                self.begin()  # the start day had no inputs
                begun = True
                if self.timers or alarms:
                    due = self.run_due(day, False)
                self.new_day(day)
                day = self.today
            else:
                day = self.start
            low = day
            self.day_events = todays
            # the day's inputs: its results (the panel, read as they come: a later result of a
            # lab replaces an earlier one); its recorded choices, clinical events and fact changes
            panel = {}
            ulns = None
            extra = None
            for ev in todays:
                if type(ev) is result:
                    # the value as an exact rational (made when the result was read), its own ULN
                    # (a later result of the lab without one: see `dup` below)
                    panel[ev.lab] = ev.q
                    if ev.uln is not None:
                        if ulns is None:
                            ulns = {}
                        ulns[ev.lab] = ev.uln_q
                elif extra is None:
                    extra = [ev]
                else:
                    extra.append(ev)
            # the usual day of a flat protocol, one result of each lab: nothing more to say of the panel
            if extra is None:
                quick = plain and len(panel) == len(todays)
            else:
                quick = plain and len(panel) == len(todays) - len(extra)
                choices = [ev for ev in extra if type(ev) is Choice]
                if choices:
                    self.choices = choices  # until the end of the day
            if inputs is not None:
                self.record_inputs(todays, self.choices)
            if not begun:
                self.begin()
                begun = True
            elif due is not None and due <= day:
                self.due_today(day)  # (1) deviations of orders overdue today, (2) timers due today
            # (3) the panel: today's results, with the still valid earlier ones
            if panel:
                # (`dated` is set on every panel day with a lookback, and stays None without one)
                if not quick:
                    dup = len(panel) < len(todays) - (0 if extra is None else len(extra))  # two results of a lab
                    brought = panel if lookback is None else set(panel)  # the labs of today's results
                    if dup:
                        kept, replaced = latest_results([e for e in todays if type(e) is LabResult])
                        self.replaced = [m.result_dict(r, day) for r in replaced]
                        if ulns is not None:  # the ULNs of the results kept (a later one may carry none)
                            ulns = {lab: r.uln_q for lab, r in kept.items() if r.uln is not None} or None
                    if lookback is not None:
                        dated, ulns = self.lookback(panel, ulns, [e for e in todays if type(e) is LabResult], day,
                                                    lookback)
                    if inputs is not None:
                        inputs.append((len(self.steps), tuple(e for e in self.today_inputs if type(e) is LabResult)))
                self.panel = panel
                self.ulns = _NOTHING if ulns is None else ulns
                if orders:
                    if dated is None and len(orders) == 1:
                        # the usual day: one open order, every result today's
                        key, = orders
                        o = orders[key]
                        if o.opens is None or day >= o.opens:
                            if not o.single.isdisjoint(panel):  # a result that fulfils it alone (ALT or AST)
                                orders.clear()
                                alarms.pop(key, None)
                                self.fulfilled = o.done
                                if o.again is not None:
                                    self.repeat(o)
                            elif not o.labs.isdisjoint(panel):
                                self.fulfil(panel, dated, day)  # every lab of an alternative, else incomplete
                    else:
                        self.fulfil(panel, dated, day)
                if quick:
                    handler = self.state.panel  # (a flat protocol's state reads every panel: its `about` is None)
                    if handler is not None and handler.react(self) and settles and (self.pending or self.timers):
                        self.settle()
                else:
                    if dup:
                        n = len(self.steps)
                    if chart:
                        # a track reads the panel when today brings a result of a lab it is about, or
                        # when today's results fulfilled its own order (a count split over two days)
                        regions = self.regions
                        answered = regions[3] if regions is not None and regions[0] == day else _NO_ORDERS
                        self.react_all([(st, st.panel) for st in self.config if st.panel is not None
                                        and (st.about is None or not st.about.isdisjoint(brought)
                                             or st.track in answered)])
                    else:
                        state = self.state
                        handler = state.panel
                        about = state.about
                        if handler is not None and (about is None or not about.isdisjoint(brought)) \
                                and handler.react(self) and (self.pending or self.timers):
                            self.settle()
                    if dup:
                        self.note_replaced(n)
            # (4) clinical events and fact changes, in time (else file) order
            if extra is not None:
                self.events_and_facts(extra)
                if self.choices:
                    self.end_of_day()
                    self.choices = ()
        if low is not first:
            self.fed = self.reached = low

    def advance(self, day: datetime.date) -> None:
        """Run the timers and deviations due up to and including `day`, with no inputs."""
        if day < self.reached:
            raise ValueError(f"{self.path}: cannot advance to {day}: the replay is at {self.reached}")
        if not self.begun:
            self.begin()
        self.run_due(day, True)
        self.reached = day

    def finish(self, until: datetime.date) -> dict:
        """Run what is due up to and including `until`; the trace."""
        if until < self.reached:  # (the start is never after the last day reached)
            if until < self.start:
                raise ValueError(f"until {until} is before start {self.start}")
            raise ValueError(f"{self.path}: until {until} is before {self.reached}, a day already replayed")
        if not self.begun:
            self.begin()
        if self.timers or self.alarms:  # (else nothing is ever due)
            self.run_due(until, True)
        self.until = self.reached = until
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
        repeats = None
        for key, o in tuple(orders.items()):
            opens = o.opens
            if opens is not None and day < opens:
                continue  # too early: evaluated and acted on, the order stays open
            if o.labs.isdisjoint(today_labs):
                continue  # nothing today for this order
            fresh = panel if dated is None else {lab for lab, d in dated.items() if opens is None or d >= opens}
            for alt in o.fulfil:
                if all(lab in fresh for lab in alt) and not alt.isdisjoint(today_labs):
                    del orders[key]
                    self.alarms.pop(key, None)
                    if fulfilled is None:
                        fulfilled = set()
                        done = []
                    fulfilled.add(o.action)
                    done.append(o)
                    if o.again is not None:
                        if repeats is None:
                            repeats = []
                        repeats.append(o)
                    break
            else:
                # missing: the fulfilling labs that no result of today's gave
                s = {"date": self.iso, "type": "deviation", "kind": "incomplete", "action": o.action,
                     "window": o.text, "ordered": o.ordered, "line": o.line,
                     "missing": sorted(set().union(*o.fulfil).difference(today_labs))}
                if o.track is not None:
                    s["track"] = o.track
                self.emit(s)
        if fulfilled is not None:
            self.fulfilled = fulfilled
            if self.m.chart:
                self.regions = _regions(day, done)
        for o in repeats or ():
            self.repeat(o)

    def repeat(self, o: _Order) -> None:
        """`every`: the order `o`, fulfilled today, opens again in its region, counted from today."""
        s, order = o.again(self.today)
        self.emit(s.copy())
        self.open(order)
        self.last[o.action] = self.today

    def deviations(self, day: datetime.date) -> None:
        """The `overdue` deviation of each order whose window ended yesterday, and the
        `still_overdue` reminders due today (every `reminders` interval while it stays open)."""
        reminders = self.m.reminders
        for key, due in tuple(self.alarms.items()):
            if due > day:
                continue
            o = self.orders.get(key)
            if o is None:
                del self.alarms[key]
                continue
            s = o.deviation.copy()
            s["date"] = self.iso
            if o in self.overdue:
                s["kind"] = "still_overdue"
            else:
                self.overdue.add(o)
            self.emit(s)
            if reminders is None:
                del self.alarms[key]
            else:
                self.alarms[key] = shift(day, reminders[0], reminders[1])

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
                stops = self.m.event_stops.get(ev.event)
                drug = None if stops is None else self.stop_by_event(stops)  # (None: nothing stopped)
                n = len(self.steps)
                if self.m.chart:
                    self.react_all([(st, st.events[ev.event]) for st in self.config if ev.event in st.events])
                else:
                    handler = self.state.events.get(ev.event)
                    if handler is not None:
                        self.react(handler)
                if drug is not None:
                    # the event's transition shows the drug's state after it (as an action's step does)
                    for s in self.steps[n:]:
                        if s["type"] == "transition" and s.get("event") == ev.event:
                            s["drug"] = drug
                            break
            elif type(ev) is FactChange:
                old = ctx.facts.get(ev.fact)
                new = _value(ev.value)
                if old == new and type(old) is type(new):
                    continue  # not a change
                ctx.facts[ev.fact] = new
                if self.m.chart:
                    self.react_all([(st, st.facts[ev.fact]) for st in self.config if ev.fact in st.facts])
                    continue
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
        if self.m.chart:
            while True:
                if self.pending:
                    cands, self.pending = self.pending, []
                    self.react_all(cands, settle=False)
                    continue
                for t in self.timers:
                    if t.due <= today:
                        break
                else:
                    return
                self.timers.remove(t)
                self.react_all([(t.owner, t.handler)], settle=False)
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

    # -- statecharts: one trigger, every region

    def react_all(self, cands: list, settle: bool = True) -> None:
        """One trigger in a statechart: each active atomic state in `cands` (document order, with
        its rules for the trigger) is evaluated on the same inputs; the rules they select are
        then fired together (`execute`)."""
        sel = self.sel = []
        for st, handler in cands:
            self.focus(st)  # the state evaluated (its unassessable step names it)
            handler.react(self)
        if sel:
            self.execute(sel)
        if settle and (self.pending or self.timers):
            self.settle()

    def focus(self, st: _State) -> None:
        """Evaluate, or act, in `st`: the state the steps name, and what `fulfilled(...)` reads
        there (the orders of its region that today's results fulfilled, `_regions`)."""
        self.state = st
        regions = self.regions
        if regions is not None and regions[0] == self.today:
            self.fulfilled = regions[1][None] if st.track is None else regions[1].get(st.track, regions[2])

    def select(self, rule: _Rule, step: dict, values: dict | None) -> None:
        """A region chose `rule` (its transition step `step`). A choice with alternatives that
        move: the day's recorded choice (else the first) picks the alternative's edge. The same
        inherited rule chosen by two regions is one selection."""
        alternative = None
        if rule.alts is not None:
            alternative = self.peek(tuple(rule.alts))
            base_step = step
            chosen = rule.alts[alternative]
            if chosen is not rule:
                step = dict(step)
                step.update({"to": chosen.target, "rule": chosen.key, "line": chosen.line})
                step.pop("stay", None)
                if chosen.stay:
                    step["stay"] = True
                rule = chosen
            elif base_step is step:
                step = dict(step)
            step["alternative"] = alternative
        for other in self.sel:
            if other[0] is rule:
                return
        self.sel.append((rule, step, values, self.state))

    def peek(self, options: tuple) -> str:
        """The option today's recorded choices take (without using the choice: the rule's
        `do one of` takes it when it runs), else the first preferred, else the first."""
        used = self.used
        for c in self.choices:
            if c.action in options and (used is None or id(c) not in used):
                return c.action
        for a in self.prefer:
            if a in options:
                return a
        return options[0]

    def exits(self, rule: _Rule) -> list:
        """The active states `rule` leaves: those below its domain (none for a stay rule)."""
        if rule.stay:
            return []
        domain = rule.domain
        out = []
        for atomic in self.config:
            chain = []
            for st in atomic.ancestors:
                if st is domain:
                    break
                chain.append(st)
            else:
                if domain is not None:
                    continue  # not below the domain: it stays
            out.extend(chain)
        return out

    def execute(self, sel: list) -> None:
        """Fire the selected rules: conflicts resolved (two selections conflict when one leaves a
        state the other leaves or acts in: the wider exit wins, then document order; the loser is
        listed as `preempted` on the winner's step), then in document order: the transition steps,
        every exit (innermost first; leaving a track withdraws the orders its region owns), the
        `enter` steps, the rules' actions, the entry actions with the timers armed."""
        kept: list  # [index, rule, step, exits (a set), preempted, values]
        if len(sel) == 1:  # one region chose: nothing to resolve
            rule, step, values, _ = sel[0]
            kept = [[0, rule, step, set(self.exits(rule)) if not rule.stay else _NO_STATES, None, values]]
        else:
            kept = []
            for i in sorted(range(len(sel)), key=lambda i: (sel[i][0].depth, i)):
                rule = sel[i][0]
                ex = set(self.exits(rule)) if not rule.stay else _NO_STATES
                for k in kept:
                    if (ex & k[3]) or (rule.stay and rule.from_state in k[3]) or (k[1].stay and k[1].from_state in ex):
                        if k[4] is None:
                            k[4] = []
                        k[4].append(rule.key)
                        break
                else:
                    kept.append([i, rule, sel[i][1], ex, None, sel[i][2]])
            kept.sort(key=lambda k: k[0])
        fired = self.fired_today
        iso = self.iso
        emit = self.emit
        entries = self.entries
        for k in kept:
            if k[1].trigger not in _BY_INPUT:
                fired.append(k[1])
                if len(fired) > MAX_TRANSITIONS_PER_DAY:
                    raise self.loop_error()
            s = k[2].copy()
            s["date"] = iso
            if k[5] is not None:
                s["values"] = k[5]
            if k[4]:
                s["preempted"] = k[4]
            emit(s)
            k[2] = s
        # exits, innermost first
        leaving = sorted({st for k in kept for st in k[3]}, key=_INNERMOST) if len(kept) > 1 or kept[0][3] else ()
        if leaving:
            gone = set(leaving)
            if self.timers:
                self.timers = [t for t in self.timers if t.owner not in gone]
            tracks = {st.name for st in leaving if st.type == "track"}
            if tracks and self.orders:
                for key, o in tuple(self.orders.items()):
                    if o.track in tracks:
                        del self.orders[key]
                        self.alarms.pop(key, None)
                        for k in kept:
                            if any(st.name == o.track for st in k[3]):
                                k[2].setdefault("withdrawn", []).append(o.action)
                                break
            for st in leaving:
                entries.pop(st.name, None)
            self.config = [st for st in self.config if st not in gone]
        # entries: the configuration first, then the steps
        entered = [st for k in kept for st in k[1].entry] if len(kept) > 1 else kept[0][1].entry
        if entered:
            self.enter_states(entered)
        # the rules' actions, in document order, each in its own target state (a stay rule's: the
        # state it stays in): `since entry` in them counts from entering that state, whatever
        # state's guard was tried last (another track's, on a day two tracks decide)
        for k in kept:
            rule = k[1]
            if rule.program is not None:
                self.focus(rule.to_state)
                self.entered = entries.get(rule.to_state.name, self.today)
                rule.program(self)
        if entered:
            self.entry_actions(entered)

    def enter_states(self, entered: list) -> None:
        iso = self.iso
        today = self.today
        for st in entered:
            self.entries[st.name] = today
            if st.type == "atomic":
                self.config.append(st)
            s = st.step.copy()
            s["date"] = iso
            if st.terminal and self.orders:  # the pathway has ended: its open orders are withdrawn
                s["withdrawn"] = [o.action for o in self.orders.values()]
                self.orders.clear()
                self.alarms.clear()
            self.emit(s)
        self.config.sort(key=lambda st: st.doc)

    def entry_actions(self, entered: list) -> None:
        """The entry actions of the states entered (outermost first), their timers armed, and
        the `on fact` rules of the atomic ones (with their entered ancestors') made pending."""
        today = self.today
        for st in entered:
            if st.program is not None:
                self.focus(st)
                self.entered = today  # entered just now
                st.program(self)
            if st.timers:
                for t in st.timers:
                    base = today if t.since is None else self.last.get(t.since)
                    if base is None:
                        continue  # the action it counts from was never recommended: not armed
                    due = shift(base, t.amount, t.unit)
                    if self.timers == ():
                        self.timers = []
                    self.timers.append(_Armed(due if due > today else today, t.handler, st))
        names = {st.name for st in entered}
        for st in entered:
            if st.type == "atomic" and st.at_once_from:
                top = st
                for a in st.ancestors:
                    if a.name not in names:
                        break
                    top = a
                handler = st.at_once_from.get(top.name)
                if handler is not None:
                    self.pending.append((st, handler))

    def enter_initial(self) -> None:
        entered = list(self.m.start_entry)
        self.enter_states(entered)
        self.entry_actions(entered)

    def values_of(self, names: tuple, values: tuple, drugs: tuple) -> dict:
        """The `values` of a decision: each let its guard read (exact numbers as the trace
        writes them), then each drug read."""
        d: dict = {}
        for (name, exact), v in zip(names, values):
            _put_value(d, name, v, exact)
        self.drug_values(d, drugs)
        return d

    def drug_values(self, d: dict, drugs: tuple) -> None:
        for key, func, drug in drugs:
            _put_value(d, key, _drug(self, func, drug))

    def stop_by_event(self, decl: "_DrugDecl") -> dict | None:
        """An event that means the drug has ended (`stops D` on the event): a started drug is
        stopped before the protocol reacts to the event, so its rules read `stopped(D)` true
        and the trace's `drugs` shows it; its state after, as an action's step shows it (None:
        the drug was never started, and an end of what never began changes nothing)."""
        d = self.drugs.get(decl.name)
        if d is None or not d.started:
            return None
        d.stopped = True
        return d.to_dict()

    def drug_act(self, effect: tuple, s: dict) -> None:
        """An action on a drug (`effect`: kind, drug, level index or None, region) in the
        acting region; its step `s` gains the drug's state after it."""
        kind, decl, level, region = effect
        d = self.drugs.get(decl.name)
        if d is None:
            d = self.drugs[decl.name] = _Drug(decl)
        if d.stopped:
            # located at the day's first input in the timeline (the protocol's line is in the message)
            line = next((e.loc.line for e in self.day_events if e.loc.line), 0)
            self.warnings.append({"date": self.iso, "line": line, "code": "W905",
                                  "message": f"{s.get('action')} (line {s.get('line', 0)} of the protocol) acts on "
                                             f"{decl.name} on {self.iso}, but {decl.name} was stopped: a stopped drug "
                                             f"stays stopped"})
        elif kind == "start":
            d.started = True
            if level is not None:
                d.asks[region] = level
        elif kind == "hold":
            d.started = True  # held, resumed or dosed: the patient is on it
            d.holds[region] = True
        elif kind == "resume":
            d.holds.pop(region, None)
            d.started = True
            if level is not None:
                d.asks[region] = level
        elif kind == "dose":
            d.started = True
            d.asks[region] = level if level is not None else 0
        elif kind == "stop":
            d.stopped = True
        s["drug"] = d.to_dict()

    # -- orders and choices

    def open(self, order: _Order) -> None:
        """Open `order`; it replaces the open order of the same action in the same region (which
        then goes last). An order in a track also replaces the top level's open order of its
        action: the track takes over the test ordered before it began (the baseline's repeat,
        once treatment starts), which would otherwise stay open, and overdue, beside it."""
        key = order.key
        self.orders.pop(key, None)
        self.orders[key] = order
        self.alarms[key] = order.late
        if order.track is not None and order.action in self.orders:
            del self.orders[order.action]
            self.alarms.pop(order.action, None)

    def choose(self, options: tuple[str, ...]) -> tuple[str, bool]:
        """The option a `do one of` takes, and whether the replay's preference (`prefer`) took
        it: today's first unused recorded choice among `options` (then used), else the first
        preferred action offered, else the first option."""
        for c in self.choices:
            if c.action in options and (self.used is None or id(c) not in self.used):
                if self.used is None:
                    self.used = set()
                self.used.add(id(c))
                return c.action, False
        for a in self.prefer:
            if a in options:
                return a, True
        return options[0], False

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
        # shown from the rule of the loop that fired first that day (whatever the count stopped at)
        k = min(range(len(cycle)), key=lambda i: fired.index(cycle[i]))
        cycle = cycle[k:] + cycle[:k]
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
        if self.m.chart:
            active = self.config
            final = _innermost(active).name if active else ""
            finals = [st.name for st in active]
        else:
            final = self.state.name
            finals = [final]
        out = {
            "protocol": {"name": self.m.name, "version": self.m.version},
            "patient": self.patient,
            "start": self.m.days[self.start][1],  # (the start is the Machine's own day: _day)
            "until": _iso(self.m.isos, self.until),
            "steps": self.steps,
            "final_state": final,
            "final_states": finals,
            "open_orders": [o.to_dict(o in overdue) for o in orders.values()] if orders else [],
            "warnings": self.warnings,
        }
        if self.m.drugs:
            out["drugs"] = self.drug_summary()
        return out

    def drug_summary(self) -> dict:
        """Each declared drug: {"status", "dose"(, "dose_exact")}, as the trace's `drugs`."""
        drugs = {}
        for name in self.m.drugs:
            d = self.drugs.get(name)
            shown = {"status": "not_started", "dose": None} if d is None else d.to_dict()
            drugs[name] = {"status": shown["status"], "dose": shown["dose"]}
            if "dose_exact" in shown:
                drugs[name]["dose_exact"] = shown["dose_exact"]
        return drugs


_NO_STATES: frozenset = frozenset()


def _INNERMOST(st: _State) -> tuple:
    """Exits come innermost first (then in reverse document order)."""
    return (-st.depth, -st.doc)


def _innermost(active: list) -> _State:
    """The innermost state containing every state of `active` (one of them when it is alone)."""
    if len(active) == 1:
        return active[0]
    common = None
    for st in active:
        chain = st.ancestors
        common = list(chain) if common is None else [a for a in common if a in chain]
    return common[0] if common else active[0]


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
