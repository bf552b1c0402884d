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

from .chart import Chart
from .prover import Finding
from .smt import walk_actions


def reached(chart: Chart, ok) -> set[str]:
    """Every node (state or track) a patient can be in, from the start, through the rules for
    which `ok(edge)` holds: a rule tried in an atomic state (its own or inherited) enters its
    target, the target's ancestors, and what entering them enters (chart.py)."""
    seen = set(chart.initial_entered())
    work = [n for n in seen if chart.type[n] == "atomic"]
    while work:
        s = work.pop()
        for r in chart.rules_in(s):
            for e, target in chart.alternatives(r):
                if e.get("stay") or not ok(e):
                    continue
                tr = chart.transition(e, target=target)
                for n in [*chart.ancestors(target), *tr.entered]:
                    if n not in seen:
                        seen.add(n)
                        if chart.type[n] == "atomic":
                            work.append(n)
    return seen


def live_graph(chart: Chart, dead: set[str], among: set[str] | None = None) -> nx.DiGraph:
    """Atomic states, and an edge s -> a when a rule that can fire in s enters a. In a parallel
    state, a rule of any of its states that leaves it counts for every state inside it (one
    track can end the parallel state for all)."""
    g = nx.DiGraph()
    atoms = [s for s in chart.atomic if among is None or s in among]
    g.add_nodes_from(atoms)
    leaving: dict[str, set] = {}  # parallel state -> atomic states its leaving rules enter
    for s in atoms:
        for r in chart.rules_in(s):
            for e, target in chart.alternatives(r):
                if e.get("stay") or e["id"] in dead:
                    continue
                tr = chart.transition(e, target=target)
                for a in tr.atomic:
                    g.add_edge(s, a)
                out_of = chart.exits(tr.domain)
                for p in chart.ancestors(s):
                    if chart.type[p] == "parallel" and p in out_of:
                        leaving.setdefault(p, set()).update(tr.atomic)
    for p, targets in leaving.items():
        for s in chart.states_of(p):
            if s in g:
                g.add_edges_from((s, a) for a in targets)
    return g


def check(graph, dead: set[str], out: list[Finding], names: dict | None = None, chart: Chart | None = None) -> None:
    names = names or {}
    chart = chart or Chart(graph)
    span = lambda st: names.get(("state", st)) or _name_span(graph.nodes[st])  # noqa: E731
    initial = graph.graph.get("initial")
    if initial not in graph:
        return
    reached_ = reached(chart, lambda e: e["id"] not in dead)
    structural = reached(chart, lambda e: True)
    nodes = graph.nodes
    lost = {st for st in graph.nodes if st in structural and st not in reached_}
    for st in graph.nodes:
        if st not in lost or chart.type[st] == "track" or any(a in lost for a in chart.ancestors(st)):
            continue  # reported at the outermost state that cannot be reached
        inside = set(chart.exits(st)) | {st}
        via = [d for u, v, k, d in graph.edges(keys=True, data=True) if v in inside and u not in inside]
        lines = ", ".join(str(d["span"]["line"]) for d in sorted(via, key=lambda d: d["span"]["line"]))
        what = "lead to it" if len(inside) == 1 else "lead to it or into it"
        out.append(Finding("E610", span(st), f"state '{st}' cannot be reached: the rules that {what} (line {lines}) can never fire", None, tuple(d["id"] for d in via)))
    terminal = {s for s in chart.atomic if nodes[s].get("kind") == "terminal"}
    rules_of = {s: [r for r in chart.rules_in(s) if r["id"] not in dead] for s in chart.atomic}
    dead_ends = set()
    for st in chart.atomic:
        if st in terminal or st not in reached_:
            continue
        if not rules_of[st]:
            dead_ends.add(st)
            why = "it has no rules" if not chart.rules_in(st) else "none of its rules can ever fire"
            out.append(Finding("E611", span(st), f"state '{st}' is not terminal, but nothing can ever happen in it ({why}): a patient who gets there stays forever; add rules, or mark it 'terminal'"))
    live = live_graph(chart, dead, reached_)
    can_end = set(terminal)
    for t in terminal:
        if t in live:
            can_end |= nx.ancestors(live, t)
    sub = live.subgraph(s for s in chart.atomic if s in reached_ and s not in can_end)
    cond = nx.condensation(sub)
    order = chart.order
    for c in cond.nodes:
        if cond.out_degree(c):
            continue
        members = sorted(cond.nodes[c]["members"], key=lambda s: order[s])
        if len(members) == 1 and members[0] in dead_ends:
            continue
        scheduled = any(_schedules(graph, chart, s, rules_of[s]) for s in _company(chart, members, reached_))
        listed = ", ".join(f"'{s}'" for s in members)
        first = members[0]
        them = f"state {listed}" if len(members) == 1 else f"states {listed}"
        if not scheduled:
            out.append(Finding("E613", span(first), f"once in {them}, no rule leads out and nothing is scheduled (no order with a due window, no timer): a patient who gets there is stuck; add an order, a timer or a way out"))
        elif terminal:
            out.append(Finding("W612", span(first), f"once in {them}, no rule leads to a terminal state: the pathway can never end (monitoring goes on forever); add a way out if the pathway should end"))


def _company(chart: Chart, members: list, reached_: set) -> list:
    """`members` and the states that can be active beside them (the other tracks of their
    parallel states): a panel one track orders reaches every track."""
    out = list(members)
    for s in members:
        for p in chart.ancestors(s):
            if chart.type[p] == "parallel":
                out.extend(a for a in chart.states_of(p) if a in reached_ and a not in out)
    return out


def _schedules(graph, chart: Chart, st: str, rules: list) -> bool:
    """Does atomic state `st` (its entry or its ancestors', or a rule that can fire in it)
    order labs or have a timer?"""
    actions = graph.graph.get("actions") or {}
    for n in chart.chain(st):
        if any(h.get("trigger") == "timer" and h.get("rules") for h in graph.nodes[n].get("handlers") or ()):
            if any(r.get("trigger") == "timer" for r in rules):
                return True
    acts = [a for n in chart.chain(st) for a in walk_actions(graph.nodes[n].get("entry"))]
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
