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
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Edge", "State", "Coverage", "coverage"]


@dataclass(frozen=True, slots=True)
class State:
    name: str
    kind: str
    path: str
    line: int

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"


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

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"

    def describe(self) -> str:
        """`maintenance -> stopped on event jaundice, encephalopathy`, `stay stopped on panel`."""
        arrow = f"stay {self.source}" if self.stay else f"{self.source} -> {self.target}"
        on = f"event {', '.join(self.events)}" if self.events else self.trigger
        guard = f" when {self.because}" if self.because else ""
        return f"{arrow} on {on}{guard}"


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
        total = len(self.states) + len(self.edges)
        return _pct(total - len(self.missing_states) - len(self.missing_edges), total)

    @property
    def complete(self) -> bool:
        return not self.missing_states and not self.missing_edges

    def to_dict(self) -> dict:
        return {
            "protocol": self.protocol,
            "traces": self.traces,
            "percent": self.percent,
            "states": {
                "total": len(self.states),
                "covered": len(self.states) - len(self.missing_states),
                "percent": self.state_percent,
                "missing": [{"state": s.name, "path": s.path, "line": s.line} for s in self.missing_states],
            },
            "transitions": {
                "total": len(self.edges),
                "covered": len(self.edges) - len(self.missing_edges),
                "percent": self.edge_percent,
                "missing": [
                    {"rule": e.key, "from": e.source, "to": e.target, "trigger": e.trigger,
                     "because": e.because, "stay": e.stay, "path": e.path, "line": e.line}
                    for e in self.missing_edges
                ],
            },
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
            f"transitions {n_edges - len(self.missing_edges)}/{n_edges}; {self.traces} "
            f"trace{'s' if self.traces != 1 else ''})"
        ]
        if self.unassessable:
            shown = ", ".join(f"{trigger} in {state} {n}"
                              for (state, trigger), n in sorted(self.unassessable.items(), key=self._state_order))
            total = sum(self.unassessable.values())
            lines.append(f"  unassessable (results missing): {total} step{'s' if total != 1 else ''}: {shown}")
        for s in self.missing_states:
            lines.append(f"  {s.where}: state {s.name} never entered")
        for e in self.missing_edges:
            lines.append(f"  {e.where}: rule {e.key} never fired: {e.describe()}")
        return "\n".join(lines)


def _span(attrs: Mapping) -> tuple[str, int]:
    span = attrs.get("span") or {}
    return str(span.get("path", "")), int(span.get("line", 0) or 0)


def coverage(graph: Any, traces: Iterable[Mapping]) -> Coverage:
    """What `traces` (simulations of `graph`) exercised of `graph`'s states and rules."""
    states = [State(name, str(attrs.get("kind", "")), *_span(attrs)) for name, attrs in graph.nodes(data=True)]
    edges = []
    for u, v, key, attrs in graph.edges(keys=True, data=True):
        edges.append(Edge(str(key), u, v, str(attrs.get("trigger", "")), str(attrs.get("because", "")),
                          bool(attrs.get("stay")), *_span(attrs), tuple(attrs.get("events") or ())))
    edges.sort(key=lambda e: (e.line, e.key))
    # when a step carries no rule id: the one edge with the same from, to, trigger and guard text
    by_shape: dict[tuple, list[str]] = {}
    for e in edges:
        by_shape.setdefault((e.source, e.target, e.trigger, e.because), []).append(e.key)
    report = Coverage(str(graph.graph.get("name", "")), states, edges)
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
                    report.covered_edges.add(rule)
            elif kind == "unassessable":
                key = (str(step.get("state")), str(step.get("trigger")))
                report.unassessable[key] = report.unassessable.get(key, 0) + 1
    return report
