"""Where a patient can go: reachability through rules that can fire, dead ends, regions
that never end.

The "live" graph keeps the rules that can fire: not those whose guard never holds (E606),
that are shadowed (E604), an `otherwise` that never fires (W607), or the rules of a timer
that is never armed (E623). `stay` rules do not move the patient.

- E610  a state that the compiler's reachability (E403, by targets) finds, but that only
        rules which can never fire lead to.
- E611  a state that is not terminal, where no rule can ever fire: the patient stays there
        forever and nothing reacts.
- E613  a set of states that no live rule leaves, with no terminal state among them, where
        the protocol schedules nothing (no order with a due window, no timer): a patient
        who gets there is stuck, waiting for an input nobody asked for.
- W612  the same, but with orders or timers: the patient is monitored forever and the
        pathway can never end (only when the protocol has terminal states at all; a protocol
        without any is chronic by design).
"""

from __future__ import annotations

import networkx as nx

from .prover import Finding
from .smt import walk_actions


def live_graph(graph, dead: set[str]) -> nx.DiGraph:
    g = nx.DiGraph()
    g.add_nodes_from(graph.nodes)
    for u, v, k, d in graph.edges(keys=True, data=True):
        if k in dead or d.get("stay"):
            continue
        g.add_edge(u, v)
    return g


def check(graph, dead: set[str], out: list[Finding], names: dict | None = None) -> None:
    names = names or {}
    span = lambda st: names.get(("state", st)) or _name_span(graph.nodes[st])  # noqa: E731
    initial = graph.graph.get("initial")
    if initial not in graph:
        return
    live = live_graph(graph, dead)
    reached = nx.descendants(live, initial) | {initial}
    structural = nx.descendants(nx.DiGraph(graph), initial) | {initial}
    nodes = graph.nodes
    for st in graph.nodes:
        if st in structural and st not in reached:
            via = [d for u, v, k, d in graph.in_edges(st, keys=True, data=True) if u != v]
            lines = ", ".join(str(d["span"]["line"]) for d in sorted(via, key=lambda d: d["span"]["line"]))
            out.append(Finding("E610", span(st), f"state '{st}' cannot be reached: the rules that lead to it (line {lines}) can never fire", None, tuple(d["id"] for d in via)))
    terminal = {s for s, d in nodes(data=True) if d.get("kind") == "terminal"}
    rules_of = {s: [] for s in graph.nodes}
    for u, _v, k, d in graph.edges(keys=True, data=True):
        if k not in dead:
            rules_of[u].append(d)
    dead_ends = set()
    for st, d in nodes(data=True):
        if st in terminal or st not in reached:
            continue
        if not rules_of[st]:
            dead_ends.add(st)
            why = "it has no rules" if not any(h.get("rules") for h in d.get("handlers") or ()) else "none of its rules can ever fire"
            out.append(Finding("E611", span(st), f"state '{st}' is not terminal, but nothing can ever happen in it ({why}): a patient who gets there stays forever; add rules, or mark it 'terminal'"))
    can_end = set(terminal)
    for t in terminal:
        can_end |= nx.ancestors(live, t)
    sub = live.subgraph(s for s in reached if s not in can_end)
    cond = nx.condensation(sub)
    for c in cond.nodes:
        if cond.out_degree(c):
            continue
        members = sorted(cond.nodes[c]["members"], key=lambda s: nodes[s]["span"]["line"])
        if len(members) == 1 and members[0] in dead_ends:
            continue
        scheduled = any(_schedules(graph, s, rules_of[s]) for s in members)
        listed = ", ".join(f"'{s}'" for s in members)
        first = members[0]
        them = f"state {listed}" if len(members) == 1 else f"states {listed}"
        if not scheduled:
            out.append(Finding("E613", span(first), f"once in {them}, no rule leads out and nothing is scheduled (no order with a due window, no timer): a patient who gets there is stuck; add an order, a timer or a way out"))
        elif terminal:
            out.append(Finding("W612", span(first), f"once in {them}, no rule leads to a terminal state: the pathway can never end (monitoring goes on forever); add a way out if the pathway should end"))


def _schedules(graph, st: str, rules: list) -> bool:
    """Does state `st` (its entry, or a rule that can fire in it) order labs or have a timer?"""
    data = graph.nodes[st]
    actions = graph.graph.get("actions") or {}
    if any(h.get("trigger") == "timer" and h.get("rules") for h in data.get("handlers") or ()):
        if any(r.get("trigger") == "timer" for r in rules):
            return True
    acts = list(walk_actions(data.get("entry")))
    for r in rules:
        acts.extend(walk_actions(r.get("actions")))
    for a in acts:
        if a.get("kind") == "do" and a.get("window") and (actions.get(a.get("action")) or {}).get("orders"):
            return True
        if a.get("kind") == "one_of" and a.get("window") and any((actions.get(o) or {}).get("orders") for o in a.get("options") or ()):
            return True
    return False


def _name_span(node: dict) -> dict:
    """The span of a state (its declaration's first line)."""
    s = dict(node["span"])
    s["end_line"] = s["line"]
    s["end_column"] = s["column"] + 5
    return s
