"""Coverage: which states and transitions of a protocol a set of traces exercised.

A state is covered when some trace enters it (the initial state included); a transition, i.e.
an edge of the compiled graph, one per rule, keyed "STATE/HANDLER/RULE", when some trace has a
`transition` step with that `rule` (stay rules included). `coverage(graph, traces)` works on
the compiled graph and on traces as the simulator returns them (shared/contracts/trace.md with
the `rule` extension key); it knows nothing about any particular protocol.

Steps that fire no rule count for nothing: an `unassessable` step (a panel or event that
decided nothing because results were missing) leaves its state and rules as they were, and
`panel` and `deviation` steps are not rules. Unassessable steps are tallied apart, per state
and trigger (`report.unassessable`), so that a suite shows it exercises the missing-result
paths; they do not change the percentage.

    report = coverage(graph, [trace1, trace2])
    report.percent                # 94.1 (states and transitions together)
    report.missing_edges          # [Edge(key="maintenance/2/0", ...), ...]
    report.unassessable           # {("baseline", "panel"): 2, ...}

Statecharts (graph format 3): every node is a state to cover, compound and parallel states and
tracks included (each is entered: the trace has an `enter` step for it). A transition is a
*rule*, counted by the edges' canonical `rule` attribute: a rule of a named block (`BLOCK#i`)
is one rule whichever state used it, and a rule inherited from a compound state is one edge
already (from the state that declares it); the edges of a choice's alternatives (`R@i`) are
the one rule R. The alternatives of every choice with consequences (`do one of { A -> s  B {
... } }`: an alternative with a target, `stay` or actions) are counted apart, each covered when
some trace takes it (an `action` step of that alternative at the choice's line). For a flat
protocol (no blocks, no choices with consequences) every rule is one edge and the report is
what it always was.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Edge", "State", "Alternative", "Coverage", "coverage"]


@dataclass(frozen=True, slots=True)
class State:
    name: str
    kind: str
    path: str
    line: int
    type: str = "atomic"  # atomic, compound, parallel, track

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"

    @property
    def noun(self) -> str:
        return {"track": "track", "compound": "compound state", "parallel": "parallel state"}.get(self.type, "state")


@dataclass(frozen=True, slots=True)
class Edge:
    key: str
    source: str
    target: str
    trigger: str
    because: str
    stay: bool
    path: str
    line: int
    events: tuple[str, ...] = ()
    block: str | None = None
    users: tuple[str, ...] = ()  # a block rule: every state using it (the edges' sources)
    keys: tuple[str, ...] = ()  # the edges that are this rule (a block rule's, a choice's alternatives')

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"

    def describe(self) -> str:
        """`maintenance -> stopped on event jaundice, encephalopathy`, `stay stopped on panel`;
        a block rule: `block grading, used in watch, high: -> done on panel when x > 5`."""
        on = f"event {', '.join(self.events)}" if self.events else self.trigger
        guard = f" when {self.because}" if self.because else ""
        if self.block is not None:
            arrow = "stay" if self.stay else f"-> {self.target}"
            return f"block {self.block}, used in {', '.join(self.users)}: {arrow} on {on}{guard}"
        arrow = f"stay {self.source}" if self.stay else f"{self.source} -> {self.target}"
        return f"{arrow} on {on}{guard}"


@dataclass(frozen=True, slots=True)
class Alternative:
    """One alternative of a choice with consequences: `action` among `options`, the choice
    written at `line` (in `state`'s entry or in rule `rule`)."""

    action: str
    index: int
    options: tuple[str, ...]
    state: str
    rule: str | None
    target: str | None
    path: str
    line: int

    @property
    def key(self) -> tuple[int, str]:
        return (self.line, self.action)

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"

    def describe(self) -> str:
        where = f"rule {self.rule}" if self.rule else f"entry of {self.state}"
        then = f" -> {self.target}" if self.target else ""
        return f"{self.action}{then} (of {', '.join(self.options)}) in {where}"


def _pct(done: int, total: int) -> float:
    return 100.0 if total == 0 else round(100.0 * done / total, 1)


@dataclass
class Coverage:
    protocol: str
    states: list[State]
    edges: list[Edge]
    covered_states: set[str] = field(default_factory=set)
    covered_edges: set[str] = field(default_factory=set)
    traces: int = 0
    unassessable: dict[tuple[str, str], int] = field(default_factory=dict)  # (state, trigger) -> steps
    alternatives: list[Alternative] = field(default_factory=list)
    covered_alternatives: set[tuple[int, str]] = field(default_factory=set)

    @property
    def missing_alternatives(self) -> list[Alternative]:
        return [a for a in self.alternatives if a.key not in self.covered_alternatives]

    @property
    def alternative_percent(self) -> float:
        return _pct(len(self.alternatives) - len(self.missing_alternatives), len(self.alternatives))

    @property
    def missing_states(self) -> list[State]:
        return [s for s in self.states if s.name not in self.covered_states]

    @property
    def missing_edges(self) -> list[Edge]:
        return [e for e in self.edges if e.key not in self.covered_edges]

    @property
    def state_percent(self) -> float:
        return _pct(len(self.states) - len(self.missing_states), len(self.states))

    @property
    def edge_percent(self) -> float:
        return _pct(len(self.edges) - len(self.missing_edges), len(self.edges))

    @property
    def percent(self) -> float:
        total = len(self.states) + len(self.edges) + len(self.alternatives)
        missing = len(self.missing_states) + len(self.missing_edges) + len(self.missing_alternatives)
        return _pct(total - missing, total)

    @property
    def complete(self) -> bool:
        return not self.missing_states and not self.missing_edges and not self.missing_alternatives

    def to_dict(self) -> dict:
        return {
            "protocol": self.protocol,
            "traces": self.traces,
            "percent": self.percent,
            "states": {
                "total": len(self.states),
                "covered": len(self.states) - len(self.missing_states),
                "percent": self.state_percent,
                "missing": [{"state": s.name, "path": s.path, "line": s.line,
                             **({"type": s.type} if s.type != "atomic" else {})} for s in self.missing_states],
            },
            "transitions": {
                "total": len(self.edges),
                "covered": len(self.edges) - len(self.missing_edges),
                "percent": self.edge_percent,
                "missing": [
                    {"rule": e.key, "from": e.source, "to": e.target, "trigger": e.trigger,
                     "because": e.because, "stay": e.stay, "path": e.path, "line": e.line,
                     **({"block": e.block, "states": list(e.users)} if e.block is not None else {})}
                    for e in self.missing_edges
                ],
            },
            **({"alternatives": {
                "total": len(self.alternatives),
                "covered": len(self.alternatives) - len(self.missing_alternatives),
                "percent": self.alternative_percent,
                "missing": [
                    {"action": a.action, "alternative": a.index, "options": list(a.options), "state": a.state,
                     "rule": a.rule, "to": a.target, "path": a.path, "line": a.line}
                    for a in self.missing_alternatives
                ],
            }} if self.alternatives else {}),
            "unassessable": [
                {"state": state, "trigger": trigger, "steps": n}
                for (state, trigger), n in sorted(self.unassessable.items(), key=self._state_order)
            ],
        }

    def _state_order(self, item: tuple[tuple[str, str], int]) -> tuple:
        names = [s.name for s in self.states]
        (state, trigger), _ = item
        return (names.index(state) if state in names else len(names), state, trigger)

    def format_text(self) -> str:
        n_states, n_edges = len(self.states), len(self.edges)
        lines = [
            f"coverage of {self.protocol}: {self.percent:g}% "
            f"(states {n_states - len(self.missing_states)}/{n_states}, "
            f"transitions {n_edges - len(self.missing_edges)}/{n_edges}"
            + (f", choices {len(self.alternatives) - len(self.missing_alternatives)}/{len(self.alternatives)}"
               if self.alternatives else "")
            + f"; {self.traces} trace{'s' if self.traces != 1 else ''})"
        ]
        if self.unassessable:
            shown = ", ".join(f"{trigger} in {state} {n}"
                              for (state, trigger), n in sorted(self.unassessable.items(), key=self._state_order))
            total = sum(self.unassessable.values())
            lines.append(f"  unassessable (results missing): {total} step{'s' if total != 1 else ''}: {shown}")
        for s in self.missing_states:
            lines.append(f"  {s.where}: {s.noun} {s.name} never entered")
        for e in self.missing_edges:
            lines.append(f"  {e.where}: rule {e.key} never fired: {e.describe()}")
        for a in self.missing_alternatives:
            lines.append(f"  {a.where}: choice {a.describe()} never taken")
        return "\n".join(lines)


def _span(attrs: Mapping) -> tuple[str, int]:
    span = attrs.get("span") or {}
    return str(span.get("path", "")), int(span.get("line", 0) or 0)


def _rules(graph: Any) -> tuple[list[Edge], dict[str, str]]:
    """The rules to cover, one per canonical rule id, and each edge key's rule id."""
    groups: dict[str, list[tuple]] = {}
    for u, v, key, attrs in graph.edges(keys=True, data=True):
        rule = str(attrs.get("rule") or str(key).split("@", 1)[0])
        groups.setdefault(rule, []).append((u, v, str(key), attrs))
    order = {n: attrs.get("doc_order", i) for i, (n, attrs) in enumerate(graph.nodes(data=True))}
    rules, rule_of = [], {}
    for rule, members in groups.items():
        # the rule as written: the default alternative (alternative null or 0) of the first state using it
        members.sort(key=lambda m: (m[3].get("alternative") or 0, order.get(m[0], 0), m[2]))
        u, v, key, attrs = members[0]
        block = attrs.get("block")
        users = tuple(dict.fromkeys(m[0] for m in members))
        for m in members:
            rule_of[m[2]] = rule
        rules.append(Edge(rule, u, v, str(attrs.get("trigger", "")), str(attrs.get("because", "")),
                          bool(attrs.get("stay")), *_span(attrs), tuple(attrs.get("events") or ()),
                          block=str(block) if block else None, users=users if block else (),
                          keys=tuple(m[2] for m in members)))
    rules.sort(key=lambda e: (e.line, e.key))
    return rules, rule_of


def _choices(graph: Any) -> list[Alternative]:
    """Every alternative of every choice with consequences, in the states' entries and in the
    rules' actions (inside `if` branches and alternatives too), each choice once."""
    out: dict[tuple[int, str], Alternative] = {}

    def walk(actions: Any, state: str, rule: str | None) -> None:
        for a in actions or ():
            if not isinstance(a, Mapping):
                continue
            kind = a.get("kind")
            if kind == "one_of":
                alternatives = a.get("alternatives") or ()
                if any(isinstance(x, Mapping) and (x.get("target") or x.get("stay") or x.get("actions"))
                       for x in alternatives):
                    path, line = _span(a)
                    options = tuple(str(x.get("action")) for x in alternatives)
                    for i, x in enumerate(alternatives):
                        alt = Alternative(str(x.get("action")), i, options, state, rule,
                                          x.get("target"), path, line)
                        out.setdefault(alt.key, alt)
                for x in alternatives:
                    if isinstance(x, Mapping):
                        walk(x.get("actions"), state, rule)
            elif kind == "if":
                walk(a.get("then"), state, rule)
                walk(a.get("else"), state, rule)

    for name, attrs in graph.nodes(data=True):
        walk(attrs.get("entry"), name, None)
    for u, _, key, attrs in graph.edges(keys=True, data=True):
        if attrs.get("alternative") in (None, 0):  # the alternatives' edges share the rule's actions
            walk(attrs.get("actions"), u, str(attrs.get("rule") or key))
    return sorted(out.values(), key=lambda a: (a.line, a.index))


def coverage(graph: Any, traces: Iterable[Mapping]) -> Coverage:
    """What `traces` (simulations of `graph`) exercised of `graph`'s states, rules and choices."""
    states = [State(name, str(attrs.get("kind", "")), *_span(attrs), str(attrs.get("type") or "atomic"))
              for name, attrs in graph.nodes(data=True)]
    edges, rule_of = _rules(graph)
    # when a step carries no rule id: the one edge with the same from, to, trigger and guard text
    by_shape: dict[tuple, list[str]] = {}
    for u, v, key, attrs in graph.edges(keys=True, data=True):
        by_shape.setdefault((u, v, str(attrs.get("trigger", "")), str(attrs.get("because", ""))), []).append(str(key))
    report = Coverage(str(graph.graph.get("name", "")), states, edges)
    report.alternatives = _choices(graph)
    choice_lines = {a.line for a in report.alternatives}
    by_rule: dict[str, list[Alternative]] = {}
    for a in report.alternatives:
        if a.rule is not None:
            by_rule.setdefault(a.rule, []).append(a)
    for trace in traces:
        report.traces += 1
        for step in trace.get("steps", ()):
            kind = step.get("type")
            if kind == "enter":
                report.covered_states.add(step.get("state"))
            elif kind == "transition":
                rule = step.get("rule")
                if rule is None:
                    keys = by_shape.get((step.get("from"), step.get("to"), step.get("trigger"), step.get("because")), [])
                    rule = keys[0] if len(keys) == 1 else None
                if rule is not None:
                    report.covered_edges.add(rule_of.get(rule, rule))
                taken = step.get("alternative")
                if taken is not None and rule is not None:
                    for a in by_rule.get(rule_of.get(rule, rule), ()):
                        if a.action == taken:
                            report.covered_alternatives.add(a.key)
            elif kind == "action":
                if step.get("line") in choice_lines and "options" in step:
                    report.covered_alternatives.add((step.get("line"), step.get("action")))
            elif kind == "unassessable":
                key = (str(step.get("state")), str(step.get("trigger")))
                report.unassessable[key] = report.unassessable.get(key, 0) + 1
    return report
