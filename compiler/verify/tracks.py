"""Tracks and drugs: what each track orders, whether a drug a track holds can be released,
actions on a drug already stopped.

Each region (the top level, or a track of a parallel state) owns its orders and its hold of a
drug (docs/simulation.md): a drug is held while any region holds it; a region's hold stays
when the region is left (only that region's `resumes`, or a `stops` from anywhere, lifts it).

- W641  a region holds a drug (an action that `holds D`), and no way on from there, through
        the region's own rules that can fire (its states' and those they inherit; once it is
        left, the states that follow), resumes it in that region or stops it: the drug stays
        held for good, unless another track stops it or the pathway ends.
- W642  a track's rules read a lab that another track orders, but no order of the track (nor
        of the states around it) asks for: the track waits for results on that other track's
        schedule, and the orders of a track are withdrawn when it is left. (A lab no order of
        the protocol asks for is read when it comes: not this.)
- W643  a rule acts on a drug (starts, holds, resumes, doses or stops it) in a state that every
        way in has stopped it: a stopped drug stays stopped, the action does nothing.

`holds_notes` lists, for `rxwatch check --explain`, the resumes of a drug in a track while
another track of the same parallel state may hold it (the drug then stays held: the
combination of holds, as the simulator applies it). Information, not a finding.
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import ir
from .chart import Chart
from .prover import Finding
from .smt import walk_actions


@dataclass
class Effect:
    kind: str  # start / hold / resume / dose / stop
    drug: str
    region: str | None  # the track acting (None: the top level)
    action: str
    span: dict


def _effects(graph, actions, region: str | None) -> list[Effect]:
    """The drug actions a list may run (every branch of an `if`, every option of a choice)."""
    decls = graph.graph.get("actions") or {}
    out = []
    for a in walk_actions(actions):
        names = [a["action"]] if a.get("kind") == "do" else list(a.get("options") or ()) if a.get("kind") == "one_of" else []
        for n in names:
            e = (decls.get(n) or {}).get("effect")
            if e and e.get("drug"):
                out.append(Effect(e.get("kind"), e["drug"], region, n, a.get("span") or {}))
    return out


def _edge_effects(graph, chart: Chart, edge: dict) -> list[Effect]:
    """What a rule's own actions do (an alternative's edge: that alternative's action and
    actions, not the others')."""
    region = chart.region(chart.edges[edge["id"]][0])
    alt = chart.choice(edge)
    if alt is None:
        return _effects(graph, edge.get("actions"), region)
    rest = [a for a in edge.get("actions") or () if not (a.get("kind") == "one_of" and a.get("alternatives"))]
    chosen = [{"kind": "do", "action": alt["action"], "span": next((a.get("span") for a in edge.get("actions") or ()
                                                                   if a.get("kind") == "one_of"), {})}]
    return _effects(graph, rest, region) + _effects(graph, chosen + list(alt.get("actions") or ()), region)


@dataclass
class _Move:
    source: str  # the atomic state it is tried in
    edge: dict
    effects: list  # [Effect] on the way: the rule's, then the entries of what it enters
    after: list  # the atomic states entered ([source] for a rule that stays)
    ends: bool  # it enters a terminal state


def _moves(graph, chart: Chart, dead: set[str]) -> dict[str, list[_Move]]:
    out: dict[str, list[_Move]] = {s: [] for s in chart.atomic}
    for s in chart.atomic:
        for r in chart.rules_in(s):
            for e, target in chart.alternatives(r):
                if e["id"] in dead:
                    continue
                eff = _edge_effects(graph, chart, e)
                if e.get("stay"):
                    out[s].append(_Move(s, e, eff, [s], False))
                    continue
                tr = chart.transition(e, target=target)
                for n in tr.entered:
                    eff = eff + _effects(graph, graph.nodes[n].get("entry"), chart.region(n))
                out[s].append(_Move(s, e, eff, tr.atomic, any(chart.terminal(a) for a in tr.atomic)))
    return out


def _beside(chart: Chart, s: str) -> list[str]:
    """The atomic states that can be active beside `s`: those of the other tracks of each
    parallel state around it."""
    out = []
    for p in chart.ancestors(s):
        if chart.type.get(p) == "parallel":
            mine = next((t for t in chart.children.get(p) or () if s in chart.states_of(t)), None)
            for t in chart.children.get(p) or ():
                if t != mine:
                    out.extend(chart.states_of(t))
    return out


def check(graph, chart: Chart, dead: set[str], out: list[Finding], reached: set[str] | None = None) -> None:
    drugs = graph.graph.get("drugs") or {}
    if drugs:
        _holds(graph, chart, dead, out, reached)
        _after_stop(graph, chart, dead, out, reached)
    _orders(graph, chart, out)


def _after_stop(graph, chart: Chart, dead: set[str], out: list[Finding], reached: set[str] | None) -> None:
    """W643: a rule that acts on a drug which every way into its state has stopped (a
    must-analysis to a fixed point: a stopped drug stays stopped, whatever acts on it later)."""
    moves = _moves(graph, chart, dead)
    every = set(graph.graph.get("drugs") or ())
    start = chart.initial_entered()
    first = {e.drug for n in start for e in _effects(graph, graph.nodes[n].get("entry"), chart.region(n)) if e.kind == "stop"}
    must = {s: set(every) for s in chart.atomic}
    for n in start:
        if n in must:
            must[n] = set(first)
    changed = True
    while changed:
        changed = False
        for s, ms in moves.items():
            if reached is not None and s not in reached:
                continue
            for m in ms:
                came = must[s] | {e.drug for e in m.effects if e.kind == "stop"}
                for a in m.after:
                    if not must[a] <= came:
                        must[a] &= came
                        changed = True
    seen: set = set()
    for s in chart.atomic:
        if (reached is not None and s not in reached) or not must[s]:
            continue
        for r in chart.rules_in(s):
            if r["id"] in dead:
                continue
            for e in _effects(graph, r.get("actions"), chart.region(chart.edges[r["id"]][0])):
                key = (e.action, e.span.get("line"), e.span.get("column"))
                if e.drug in must[s] and key not in seen:
                    seen.add(key)
                    out.append(Finding("W643", e.span, f"state {s}: '{e.action}' acts on {e.drug}, which every way into this "
                                       f"state has stopped: a stopped drug stays stopped, so this does nothing; remove it, "
                                       f"or do not stop {e.drug} on the way here"))


def _holds(graph, chart: Chart, dead: set[str], out: list[Finding], reached: set[str] | None) -> None:
    moves = _moves(graph, chart, dead)
    # every place a hold happens: (the hold, the atomic states the patient is in after it)
    points: list[tuple[Effect, list[str]]] = []
    for n in graph.nodes:
        for e in _effects(graph, graph.nodes[n].get("entry"), chart.region(n)):
            if e.kind == "hold":
                points.append((e, [a for a in chart.completion(n) if chart.type.get(a) == "atomic"]))
    for s, ms in moves.items():
        if reached is not None and s not in reached:
            continue
        for m in ms:
            for e in _edge_effects(graph, chart, m.edge):
                if e.kind == "hold":
                    points.append((e, m.after))
    seen: set[tuple] = set()
    for e, after in points:
        key = (e.drug, e.region, e.action, e.span.get("line"), e.span.get("column"))
        if key in seen:
            continue
        seen.add(key)
        if not _released(chart, moves, e, after):
            where = f"track {e.region}" if e.region else "the top level"
            out.append(Finding("W641", e.span, f"'{e.action}' holds {e.drug} in {where}, and no way on from here, by the rules of "
                               f"{where}, resumes it there or stops it: {e.drug} stays held for good (unless another track "
                               f"stops it or the pathway ends); resume it in {where} when the hold should end, or stop it"))


def _released(chart: Chart, moves: dict, hold: Effect, after: list[str]) -> bool:
    """Can the holding region, going on from `after` by its own rules (its states', and those
    they inherit), resume the drug, or stop it (itself, or on a way the patient goes once the
    region is left)? The other tracks' rules do not count: the region's hold is its own, and
    the end of the pathway is no release."""
    mine = set(chart.states_of(hold.region)) if hold.region else None
    own = lambda xs: [a for a in xs if mine is None or a in mine]  # noqa: E731
    start = own(after) or list(after)
    seen = set(start)
    work = list(start)
    while work:
        s = work.pop()
        for m in moves.get(s, ()):
            for e in m.effects:
                if e.drug == hold.drug and (e.kind == "stop" or (e.kind == "resume" and e.region == hold.region)):
                    return True
            inside = mine is None or s in mine
            nxt = (own(m.after) or list(m.after)) if inside else list(m.after)
            for a in nxt:
                if a not in seen and not chart.terminal(a):
                    seen.add(a)
                    work.append(a)
    return False


def _orders(graph, chart: Chart, out: list[Finding]) -> None:
    """W642: per track, the labs its panel rules read that no order around it asks for."""
    g = graph.graph
    actions = g.get("actions") or {}
    lets = g.get("lets") or {}
    anywhere: set[str] = set()  # labs some order of the protocol asks for (others are read when they come)
    for acts in [graph.nodes[n].get("entry") for n in graph.nodes] + [d.get("actions") for _, _, d in graph.edges(data=True)]:
        for a in walk_actions(acts):
            names = [a["action"]] if a.get("kind") == "do" else list(a.get("options") or ()) if a.get("kind") == "one_of" else []
            for name in names:
                anywhere.update((actions.get(name) or {}).get("orders") or ())
    for t in graph.nodes:
        if chart.type.get(t) != "track":
            continue
        inside = [n for n in graph.nodes if chart.region(n) == t or n == t]
        read: dict[str, dict] = {}  # lab -> the first rule reading it
        for n in inside:
            for h in graph.nodes[n].get("handlers") or ():
                if h.get("trigger") != "panel":
                    continue
                for k in h.get("rules") or ():
                    d = chart.edges[k][2]
                    for lab in ir.labs_read(d.get("guard"), lets):
                        read.setdefault(lab, d)
        if not read:
            continue
        ordered: set[str] = set()
        around = inside + chart.ancestors(t)
        lists = [graph.nodes[n].get("entry") for n in around]
        lists += [chart.edges[k][2].get("actions") for n in around for h in graph.nodes[n].get("handlers") or () for k in h.get("rules") or ()]
        for acts in lists:
            for a in walk_actions(acts):
                names = [a["action"]] if a.get("kind") == "do" else list(a.get("options") or ()) if a.get("kind") == "one_of" else []
                for name in names:
                    ordered.update((actions.get(name) or {}).get("orders") or ())
        missing = [lab for lab in read if lab not in ordered and lab in anywhere]
        if missing:
            first = read[missing[0]]
            labs = ", ".join(missing)
            out.append(Finding("W642", first["span"], f"track {t}: its rules read {labs}, but no order of the track (or of the states "
                               f"around it) asks for {'it' if len(missing) == 1 else 'them'}: the track waits for results another "
                               f"track orders, on that track's schedule (and a track's orders are withdrawn when it is left); "
                               f"order {'it' if len(missing) == 1 else 'them'} in the track"))


def holds_notes(graph, chart: Chart | None = None) -> list[str]:
    """For --explain: each resume of a drug in a track while another track of the same
    parallel state may hold it (then the drug stays held, at the lowest dose any asks for)."""
    chart = chart or Chart(graph)
    if not graph.graph.get("drugs"):
        return []
    lists = [(graph.nodes[n].get("entry"), chart.region(n)) for n in graph.nodes]
    lists += [(d.get("actions"), chart.region(u)) for u, _v, d in graph.edges(data=True)]
    effects = [e for acts, region in lists for e in _effects(graph, acts, region)]
    holds: dict[tuple, list] = {}
    for e in effects:
        if e.kind == "hold" and e.region is not None:
            holds.setdefault((e.drug, e.region), []).append(e)
    out = []
    seen = set()
    for e in effects:
        if e.kind != "resume" or e.region is None:
            continue
        p = chart.parallel_of(e.region)
        others = [t for t in chart.children.get(p) or () if t != e.region and (e.drug, t) in holds]
        key = (e.action, e.span.get("line"), e.region)
        if not others or key in seen:
            continue
        seen.add(key)
        by = ", ".join(f"track {t} (line {', '.join(str(x) for x in sorted({h.span.get('line') or 0 for h in holds[(e.drug, t)]}))})"
                       for t in others)
        out.append(f"line {e.span.get('line')}: '{e.action}' resumes {e.drug} in track {e.region}; while {by} "
                   f"may hold it, it stays held (a drug is held while any track holds it)")
    return out
