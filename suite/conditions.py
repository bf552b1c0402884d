"""Condition and window coverage: did the suite show each condition deciding, both ways?

State and transition coverage count what fired. A condition (one comparison, `known(X)`, a
fact or a variable, ... inside a guard, a derived value or an `if`) can fire its rule every time
without ever having been the reason: `tx > 5 or bili > 3` is covered by a case with tx = 10
whatever `bili > 3` does. MC/DC (DO-178C) asks that each condition be shown to decide the
outcome on its own. rxwatch measures it the way hardware testing measures stuck-at faults: a
condition is **shown true** when holding it false changes some case's trace (so in some
evaluation it was true and it decided), and **shown false** when holding it true changes some
trace. Covered = shown both ways. Three-valued logic makes no exception: a condition that is
only ever unknown is shown neither way until some case decides it.

A due **window** has two ends: its opening is shown when moving it one unit either way changes
some trace (a result near the opening day), its closing likewise (a result near the last day,
or an overdue order).

The replays run on copies of the compiled graph with one condition (or one window end)
replaced, never on edited text; cases are read once, copies replayed in parallel, each copy
stopping at its first changed trace.
"""

from __future__ import annotations

import copy
import json
import multiprocessing
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

_ATOMIC = ("compare", "in", "fact", "var", "call")
_BOOL_CALLS = ("known", "fulfilled", "held", "stopped", "started")


@dataclass
class Condition:
    where: str  # "rule 'when severe' of maintenance", "let severe", "if in the entry of maintenance"
    line: int
    text: str  # the condition as the protocol writes it
    shown_true: bool = False
    shown_false: bool = False
    # proven by the verifier that no input can show it that way: holding it false (moot_true)
    # or true (moot_false) gives a protocol that decides the same as the original everywhere
    moot_true: bool = False
    moot_false: bool = False

    @property
    def covered(self) -> bool:
        return (self.shown_true or self.moot_true) and (self.shown_false or self.moot_false)

    def to_dict(self) -> dict:
        return {"where": self.where, "line": self.line, "condition": self.text,
                "shown_true": self.shown_true, "shown_false": self.shown_false,
                "moot_true": self.moot_true, "moot_false": self.moot_false}


@dataclass
class WindowEnd:
    where: str
    line: int
    window: str  # `due 2..4 weeks`
    end: str  # "opens" | "closes"
    shown: bool = False

    def to_dict(self) -> dict:
        return {"where": self.where, "line": self.line, "window": self.window, "end": self.end, "shown": self.shown}


@dataclass
class ConditionReport:
    protocol: str
    conditions: list[Condition] = field(default_factory=list)
    windows: list[WindowEnd] = field(default_factory=list)

    def summary(self) -> dict:
        c = self.conditions
        return {
            "conditions": len(c), "covered": sum(x.covered for x in c),
            "shown_true": sum(x.shown_true for x in c), "shown_false": sum(x.shown_false for x in c),
            "moot": sum(x.moot_true for x in c) + sum(x.moot_false for x in c),
            "window_ends": len(self.windows), "window_ends_shown": sum(w.shown for w in self.windows),
        }

    def percent(self) -> float:
        s = self.summary()
        total = 2 * s["conditions"] - s["moot"] + s["window_ends"]
        done = s["shown_true"] + s["shown_false"] + s["window_ends_shown"]
        return 100.0 if total == 0 else 100.0 * done / total

    def to_dict(self) -> dict:
        return {"summary": {**self.summary(), "percent": round(self.percent(), 1)},
                "conditions": [x.to_dict() for x in self.conditions],
                "windows": [w.to_dict() for w in self.windows]}

    def format_text(self, path: str = "") -> str:
        s = self.summary()
        moot = (f"; {s['moot']} way{'s' if s['moot'] != 1 else ''} no input can show, proven and left out"
                if s["moot"] else "")
        lines = [f"condition coverage of {self.protocol}: {self.percent():.1f}% (conditions shown deciding both ways "
                 f"{s['covered']}/{s['conditions']}; window ends {s['window_ends_shown']}/{s['window_ends']}{moot})"]
        for c in self.conditions:
            if not c.covered:
                missing = " and ".join(w for w, ok in (("true", c.shown_true or c.moot_true),
                                                        ("false", c.shown_false or c.moot_false)) if not ok)
                lines.append(f"  {path + ':' if path else 'line '}{c.line}: `{c.text}` ({c.where}) never shown deciding when {missing}")
        for c in self.conditions:
            moot = " and ".join(w for w, ok in (("true", c.moot_true), ("false", c.moot_false)) if ok)
            if moot:
                lines.append(f"  {path + ':' if path else 'line '}{c.line}: `{c.text}` ({c.where}) cannot decide when "
                             f"{moot}: proven, left out")
        for w in self.windows:
            if not w.shown:
                lines.append(f"  {path + ':' if path else 'line '}{w.line}: `{w.window}` ({w.where}): no case shows where it {w.end}")
        return "\n".join(lines)


# ---------------------------------------------------------------- where the conditions are

def text(t: Mapping | None) -> str:
    """A tree back in the protocol's words (enough to name a condition)."""
    if t is None:
        return "otherwise"
    op = t.get("op")
    if op == "num":
        return str(t["value"])
    if op == "bool":
        return "true" if t["value"] else "false"
    if op == "enum":
        return str(t["value"])
    if op == "duration":
        return f"{t['amount']} {t['unit']}"
    if op in ("lab", "fact", "var", "let", "action", "drug"):
        return t["name"]
    if op == "since_entry":
        return "since entry"
    if op == "call":
        return f"{t['func']}({', '.join(text(a) for a in t.get('args') or ())})"
    if op == "neg":
        return f"-{text(t['arg'])}"
    if op in ("+", "-", "*", "/"):
        return f" {op} ".join(text(a) for a in t["args"])
    if op == "compare":
        out = text(t["args"][0])
        for o, a in zip(t["ops"], t["args"][1:]):
            out += f" {o} {text(a)}"
        return out
    if op == "in":
        return f"{text(t['arg'])} in {{{', '.join(t['members'])}}}"
    if op == "not":
        return f"not {text(t['arg'])}"
    if op in ("and", "or"):
        return f" {op} ".join(f"({text(a)})" if a.get("op") in ("and", "or") else text(a) for a in t["args"])
    return op or "?"


def _atoms(t: Mapping | None, path=()) -> list[tuple]:
    """(path, node) of every condition under `t`: the leaves of its and/or/not structure."""
    if t is None:
        return []
    op = t.get("op")
    if op in ("and", "or"):
        return [x for i, a in enumerate(t["args"]) for x in _atoms(a, (*path, "args", i))]
    if op == "not":
        return _atoms(t["arg"], (*path, "arg"))
    if op in ("compare", "in") or op in ("fact", "var") or (op == "call" and t.get("func") in _BOOL_CALLS):
        return [(path, t)]
    return []


def _replace(tree: Mapping, path: tuple, value: bool) -> dict:
    tree = copy.deepcopy(tree)
    if not path:
        return {"op": "bool", "value": value}
    node = tree
    for p in path[:-1]:
        node = node[p]
    node[path[-1]] = {"op": "bool", "value": value}
    return tree


@dataclass
class _Site:
    """One place a condition or a window lives in the graph, and how to change it there."""

    kind: str  # edge-guard, let, action
    key: Any  # edge key, let name, (owner, index path)
    path: tuple


def _action_sites(actions, prefix=()):
    for i, a in enumerate(actions or ()):
        if a.get("kind") == "if":
            yield (*prefix, i), a
            yield from _action_sites(a.get("then"), (*prefix, i, "then"))
            yield from _action_sites(a.get("else"), (*prefix, i, "else"))
        for j, alt in enumerate(a.get("alternatives") or ()):
            yield from _action_sites(alt.get("actions"), (*prefix, i, "alternatives", j, "actions"))


def _windows(actions, prefix=()):
    for i, a in enumerate(actions or ()):
        if a.get("kind") in ("do", "one_of") and a.get("window"):
            yield (*prefix, i), a
        for key in ("then", "else"):
            yield from _windows(a.get(key), (*prefix, i, key))
        for j, alt in enumerate(a.get("alternatives") or ()):
            yield from _windows(alt.get("actions"), (*prefix, i, "alternatives", j, "actions"))


def sites(graph) -> tuple[list[tuple[Condition, tuple]], list[tuple[WindowEnd, tuple]]]:
    """Every condition and window end, each with the edits that test it."""
    conds, wins = [], []
    seen_rules: set = set()
    for u, v, k, d in graph.edges(keys=True, data=True):
        rule = d.get("rule") or k
        if rule in seen_rules or d.get("alternative"):
            continue  # a block's rule, or an inherited one, once
        seen_rules.add(rule)
        where = f"rule '{'otherwise' if d.get('otherwise') else 'when ' + d.get('because', '')}' of {u}"
        line = (d.get("span") or {}).get("line", 0)
        for path, node in _atoms(d.get("guard")):
            conds.append((Condition(where, line, text(node)), ("edge", k, "guard", path)))
        for apath, a in _action_sites(d.get("actions")):
            aline = (a.get("span") or {}).get("line", line)
            for path, node in _atoms(a.get("cond")):
                conds.append((Condition(f"if in {where}", aline, text(node)), ("edge", k, "actions", apath, path)))
        for apath, a in _windows(d.get("actions")):
            wins += _window_ends(a, where, ("edge", k, "actions", apath))
    for name, let in (graph.graph.get("lets") or {}).items():
        line = (let.get("span") or {}).get("line", 0)
        for path, node in _atoms(let.get("expr")):
            conds.append((Condition(f"let {name}", line, text(node)), ("let", name, path)))
    for state, data in graph.nodes(data=True):
        for apath, a in _action_sites(data.get("entry")):
            aline = (a.get("span") or {}).get("line", 0)
            for path, node in _atoms(a.get("cond")):
                conds.append((Condition(f"if in the entry of {state}", aline, text(node)), ("entry", state, apath, path)))
        for apath, a in _windows(data.get("entry")):
            wins += _window_ends(a, f"entry of {state}", ("entry", state, apath))
    return conds, wins


def _window_ends(a: Mapping, where: str, site: tuple) -> list:
    w = a["window"]
    label = f"due {w['start']}..{w['end']} {w['unit']}" if w.get("start") != 0 else f"due within {w['end']} {w['unit']}"
    line = (a.get("span") or {}).get("line", 0)
    out = []
    if w.get("start") != 0:
        out.append((WindowEnd(where, line, label, "opens"), (*site, "start")))
    out.append((WindowEnd(where, line, label, "closes"), (*site, "end")))
    return out


def _get(root, path):
    for p in path:
        root = root[p]
    return root


def _same_rule(graph, k) -> list[tuple]:
    """(u, v, key) of every edge of the rule whose edge `k` is: the same canonical rule (a
    block's rule in each state using it, each alternative of a choice `R@i`)."""
    rule = next((d.get("rule") or kk) for _, _, kk, d in graph.edges(keys=True, data=True) if kk == k)
    return [(u, v, kk) for u, v, kk, d in graph.edges(keys=True, data=True) if (d.get("rule") or kk) == rule]


def variants(graph, site: tuple) -> list:
    """Copies of the graph with the condition at `site` held false and held true (in that
    order: showing it true, then false), or with the window end moved one unit down and up."""
    out = []
    kind = site[0]
    if site[-1] in ("start", "end"):  # a window end
        for delta in (-1, 1):
            g = graph.copy()
            moved = []
            if kind == "edge":
                _, k, _, apath, which = site
                # a rule's edges (a block used in several states, each alternative of a choice)
                # carry their own copy of its actions: the window moves in each
                for uu, vv, kk in _same_rule(graph, k):
                    actions = copy.deepcopy(graph.edges[uu, vv, kk]["actions"])
                    moved.append(_get(actions, apath)["window"])
                    g.edges[uu, vv, kk]["actions"] = actions
            else:
                _, state, apath, which = site
                actions = copy.deepcopy(graph.nodes[state]["entry"])
                moved.append(_get(actions, apath)["window"])
                g.nodes[state]["entry"] = actions
            for w in moved:
                w[which] = w[which] + delta
            if any(w["start"] < 0 or w["end"] < w["start"] for w in moved):
                continue
            out.append(g)
        return out
    for value in (False, True):
        g = graph.copy()
        if kind == "edge" and site[2] == "guard":
            _, k, _, path = site
            u, v = next((u, v) for u, v, kk in graph.edges(keys=True) if kk == k)
            # every edge of the same canonical rule (a block used in several states) changes too
            rule = graph.edges[u, v, k].get("rule") or k
            for uu, vv, kk, dd in graph.edges(keys=True, data=True):
                if (dd.get("rule") or kk) == rule:
                    g.edges[uu, vv, kk]["guard"] = _replace(dd["guard"], path, value)
        elif kind == "edge":
            _, k, _, apath, path = site
            for uu, vv, kk in _same_rule(graph, k):
                actions = copy.deepcopy(graph.edges[uu, vv, kk]["actions"])
                a = _get(actions, apath)
                a["cond"] = _replace(a["cond"], path, value)
                g.edges[uu, vv, kk]["actions"] = actions
        elif kind == "let":
            _, name, path = site
            lets = dict(graph.graph["lets"])
            lets[name] = {**lets[name], "expr": _replace(lets[name]["expr"], path, value)}
            g.graph = {**graph.graph, "lets": lets}
        else:
            _, state, apath, path = site
            actions = copy.deepcopy(graph.nodes[state]["entry"])
            a = _get(actions, apath)
            a["cond"] = _replace(a["cond"], path, value)
            g.nodes[state]["entry"] = actions
        out.append(g)
    return out


# ---------------------------------------------------------------- replays

_SHOWN = ("date", "type", "state", "from", "to", "stay", "action", "window", "kind", "missing", "var", "value")


def fingerprint(trace: Mapping) -> str:
    steps = [[s.get(k) for k in _SHOWN] for s in trace.get("steps", ())]
    orders = sorted(json.dumps([o.get("action"), o.get("window")]) for o in trace.get("open_orders", ()))
    return json.dumps([steps, trace.get("final_state"), orders], default=str)


_WORK: dict[str, Any] = {}


def _changes(i: int) -> tuple[int, list[bool]]:
    """For job i (a site): for each of its variants, whether some case's trace changes."""
    from rxwatch.simulator.engine import Machine, SimulationError

    from . import equivalence

    graph, site = _WORK["graph"], _WORK["sites"][i]
    window = site[-1] in ("start", "end")
    out = []
    for g in variants(graph, site):
        try:
            m = Machine(g)
        except Exception:
            out.append(True)  # a copy the engine refuses is a change
            continue
        changed = False
        for (path, case), base in zip(_WORK["cases"], _WORK["base"]):
            try:
                changed = fingerprint(m.run(case.timeline)) != base
            except SimulationError:
                changed = True
            if changed:
                break
        if not changed and not window and equivalence.equivalent(graph, g).equivalent:
            changed = None  # no input can show it: the copy decides the same everywhere (proven)
        out.append(changed)
    return i, out


def condition_coverage(graph, cases: Sequence, *, jobs: int | None = None,
                       progress: Callable[[int, int], None] | None = None) -> ConditionReport:
    """`cases`: [(path, Case)] read against `graph` (suite.cases.load_case)."""
    from rxwatch.simulator.engine import Machine

    base_machine = Machine(graph)
    base = [fingerprint(base_machine.run(c.timeline)) for _, c in cases]
    conds, wins = sites(graph)
    all_sites = [s for _, s in conds] + [s for _, s in wins]
    _WORK.update(graph=graph, sites=all_sites, cases=list(cases), base=base)
    results: list = [None] * len(all_sites)
    jobs = max(1, min(jobs or os.cpu_count() or 1, len(all_sites) or 1))
    try:
        if jobs > 1 and "fork" in multiprocessing.get_all_start_methods():
            with multiprocessing.get_context("fork").Pool(jobs) as pool:
                for n, (i, out) in enumerate(pool.imap_unordered(_changes, range(len(all_sites)), chunksize=2), 1):
                    results[i] = out
                    if progress:
                        progress(n, len(all_sites))
        else:
            for i in range(len(all_sites)):
                results[i] = _changes(i)[1]
                if progress:
                    progress(i + 1, len(all_sites))
    finally:
        _WORK.clear()
    report = ConditionReport(graph.graph.get("name", ""))
    for n, (c, _) in enumerate(conds):
        held_false, held_true = results[n]
        c.shown_true, c.shown_false = held_false is True, held_true is True
        c.moot_true, c.moot_false = held_false is None, held_true is None
        report.conditions.append(c)
    for n, (w, _) in enumerate(wins, len(conds)):
        w.shown = any(x is True for x in results[n])
        report.windows.append(w)
    report.conditions.sort(key=lambda c: c.line)
    report.windows.sort(key=lambda w: w.line)
    return report
