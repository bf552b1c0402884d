"""Lowering: the checked AST -> the compiled networkx state machine.

The graph is the one model that the simulator, the renderer, the verifier and any
exporter read (see docs/graph.md). Everything in it is JSON-like, so node-link JSON
round-trips it exactly.

- graph attributes: protocol metadata and every declaration (sources, labs, facts, vars,
  events, actions, lets), plus `initial`, the initial state.
- nodes: states (nested ones included) and tracks, in document order, with `kind`,
  `description`, `entry` actions, `handlers`, `sources`, `span`, and their place in the
  statechart: `type`, `parent`, `children`, `initial_child`, `track`, `depth`, `doc_order`.
- edges (a MultiDiGraph keyed by rule id `STATE/HANDLER/RULE`): one per rule, with its
  `trigger`, `guard` (an expression tree) and `because` (the guard as written), `actions`,
  `windows`, `sources` and `span`. A `stay` rule is a self-loop with `stay: true`: it does
  not re-enter its state.
"""

from __future__ import annotations

import networkx as nx

from . import ast, ir
from .checks.structure import let_sources
from .checks.types import ANY, RATIO
from .symbols import Symbols, expand, leading_choice

FORMAT = "rxwatch-graph/3"
"""Format 3: statecharts (nodes' type, parent, children, initial_child, track, depth, doc_order;
tracks are nodes). Format 2: numbers are exact decimals (ir.exact); results, reminders, lln,
fulfilled_by, since_entry."""


def lower(module: ast.Module, sym: Symbols, let_types: dict) -> nx.MultiDiGraph:
    meta = module.protocol[0]
    g = nx.MultiDiGraph()
    # nodes: every state and track, in document (pre-)order; their attributes below
    g.add_nodes_from(sorted(sym.doc_order, key=sym.doc_order.__getitem__))
    initial = next(s.name.text for s in module.top if s.kind == "initial")
    g.graph.update(
        {
            "format": FORMAT,
            "name": meta.name.text,
            "title": meta.title or meta.name.text,
            "version": meta.version or "",
            "status": meta.status.text if meta.status else "draft",
            "description": meta.description or "",
            "path": module.path,
            "initial": initial,
            # `results valid for D`: how long a result stays valid (None: the same day only)
            "results_valid": _setting(module, "results"),
            # `reminders every D`: how often an overdue order is flagged again (None: once)
            "reminders": _setting(module, "reminders"),
            # `schedule tolerance D`: how far a point window (`due 3 months`) may move either way
            "schedule_tolerance": _setting(module, "tolerance"),
            "sources": {
                s.id.text: {
                    "title": s.title or s.id.text,
                    "kind": s.kind.text if s.kind else "",
                    "url": s.url,
                    "doi": s.doi,
                    "note": s.note,
                    "span": s.span.to_dict(),
                }
                for s in module.sources
            },
            "labs": {
                lab.name.text: {
                    "description": lab.description,
                    "unit": lab.unit,
                    "uln": _num(lab.uln),
                    "lln": _num(lab.lln),
                    "loinc": list(lab.loinc),
                    "molar_mass": _num(lab.molar_mass),
                    "sources": _ids(lab.cite),
                    "citations": _citations(lab.cite),
                    "span": lab.span.to_dict(),
                }
                for lab in module.labs
            },
            "facts": {f.name.text: _fact(f) for f in module.facts},
            "vars": {f.name.text: _fact(f) for f in module.vars},
            "events": {
                e.name.text: {"description": e.description, "sources": _ids(e.cite), "citations": _citations(e.cite),
                              "span": e.span.to_dict(),
                              # `stops D`: the event means the drug has ended ({kind: stop, drug, dose: null})
                              "effect": None if e.effect is None else {
                                  "kind": e.effect.kind, "drug": e.effect.drug.text, "dose": None}}
                for e in module.events
            },
            "actions": {
                a.name.text: {
                    "description": a.description,
                    "orders": [n.text for n in a.orders],
                    # alternatives, each a list of labs that must all have results
                    "fulfilled_by": [[n.text for n in alt] for alt in a.fulfilled_by] if a.fulfilled_by
                    else ([[n.text for n in a.orders]] if a.orders else []),
                    "sources": _ids(a.cite),
                    "citations": _citations(a.cite),
                    "span": a.span.to_dict(),
                    # what it does to a drug: {kind, drug, dose (the level it names, or null)}
                    "effect": None if a.effect is None else {
                        "kind": a.effect.kind, "drug": a.effect.drug.text,
                        "dose": None if a.effect.level is None else _literal(a.effect.level.value)},
                }
                for a in module.actions
            },
            "drugs": {
                d.name.text: {
                    "description": d.description,
                    "doses": [_literal(lv.value) for lv in d.levels],  # highest first
                    "labels": [lv.label for lv in d.levels],
                    "unit": d.unit,
                    "kind": d.kind,
                    "sources": _ids(d.cite),
                    "citations": _citations(d.cite),
                    "span": d.span.to_dict(),
                }
                for d in module.drugs
            },
            "lets": {
                let.name.text: {
                    "description": let.description,
                    "expr": expr_tree(let.expr, sym),
                    "text": let.text,
                    "type": let_types.get(let.name.text).kind if let.name.text in let_types else "error",
                    "unit": _unit(let_types.get(let.name.text)),
                    "sources": sorted(set(_ids(let.cite)) | let_sources(sym, let.expr)),
                    "citations": _citations(let.cite),  # its own, as written
                    "span": let.span.to_dict(),
                }
                for let in module.lets
            },
        }
    )
    # what the author accepts, with the reasons, whether or not the verifier ran
    g.graph["accepts"] = [
        {"code": a.code.text, "reason": a.reason, "state": None, "span": a.span.to_dict()} for a in module.accepts
    ] + [
        {"code": a.code.text, "reason": a.reason, "state": st.name.text, "span": a.span.to_dict()}
        for st in module.states
        for a in st.accepts
    ] + [
        {"code": a.code.text, "reason": a.reason, "state": tr.name.text, "span": a.span.to_dict()}
        for tr in module.tracks
        for a in tr.accepts
    ]
    # named rule blocks: what each holds, by the canonical ids its rules have on every edge
    g.graph["blocks"] = {
        b.name.text: {"description": b.description, "span": b.span.to_dict(),
                      "rules": [f"{b.name.text}#{i}" for i in range(len(b.rules))]}
        for b in module.blocks
    }
    tolerance = g.graph["schedule_tolerance"]
    lw = _Lowerer(sym, None if tolerance is None else {"amount": tolerance["amount"], "unit": tolerance["unit"]})
    chart = _chart(module, sym)
    for tr in module.tracks:
        g.add_node(
            tr.name.text,
            kind="normal",
            severity="none",
            description=tr.description or "",
            entry=[],
            handlers=[],
            sources=[],
            citations=[],
            span=tr.span.to_dict(),
            **chart[tr.name.text],
        )
    for st in module.states:
        entry = [lw.action(a) for a in st.entry]
        handlers = []
        for hi, h in enumerate(st.handlers):
            hd = {
                "trigger": h.trigger,
                "events": [n.text for n in h.names] if h.trigger == "event" else [],
                "facts": [n.text for n in h.names] if h.trigger == "fact" else [],
                "timer": _timer(h),
                "mode": h.mode,
                "span": h.span.to_dict(),
                "rules": [],
            }
            handlers.append(hd)
        g.add_node(
            st.name.text,
            kind=st.kind,
            severity=st.severity.text if st.severity else "none",
            description=st.description or "",
            entry=entry,
            handlers=handlers,
            sources=sorted({s for a in entry for s in _action_sources(a)}),
            citations=_unique(c for a in entry for c in _action_citations(a)),
            span=st.span.to_dict(),
            **chart[st.name.text],
        )
    for st in module.states:
        for hi, h in enumerate(st.handlers):
            hd = g.nodes[st.name.text]["handlers"][hi]
            for ri, (r, block, bi) in enumerate(expand(h, sym)):
                key = f"{st.name.text}/{hi}/{ri}"
                hd["rules"].append(key)
                actions = [lw.action(a) for a in r.actions]
                sources = set(_ids(r.cite))
                if r.guard is not None:
                    sources |= let_sources(sym, r.guard)
                for alt_i, target, stay in _alternatives(r, st.name.text):
                    edge_key = key if not alt_i else f"{key}@{alt_i}"
                    g.add_edge(
                        st.name.text,
                        target,
                        key=edge_key,
                        id=edge_key,
                        trigger=h.trigger,
                        events=hd["events"],
                        facts=hd["facts"],
                        timer=hd["timer"],
                        mode=h.mode,
                        handler=hi,
                        order=ri,
                        guard=expr_tree(r.guard, sym) if r.guard is not None else None,
                        because=r.guard_text if r.guard is not None else "",
                        otherwise=r.guard is None,
                        # `otherwise "normal"`: what the fall-through means (only when named)
                        **({"otherwise_name": r.otherwise_name} if r.otherwise_name else {}),
                        stay=stay,
                        actions=actions,
                        windows=list(_windows(actions)),
                        sources=sorted(sources),
                        citations=_citations(r.cite),
                        span=r.span.to_dict(),
                        # the rule as written: this one (its own key), or rule i of a block, the
                        # same for every state that uses the block
                        rule=key if block is None else f"{block}#{bi}",
                        block=block,
                        alternative=alt_i,
                    )
    return g


def _alternatives(r: ast.Rule, source: str):
    """(alternative, target, stay) for each edge of a rule: one (None, ...) for a plain rule; one
    per alternative of its choice with consequences (an alternative's target overrides the
    rule's; without one it follows the rule's, or stays when the rule has none)."""
    own = (r.target.text, False) if r.target is not None else (source, True)
    choice = leading_choice(r)
    if choice is None:
        yield None, *own
        return
    for i, alt in enumerate(choice.alternatives):
        if alt.stay:
            yield i, source, True
        elif alt.target is not None:
            yield i, alt.target.text, False
        else:
            yield i, *own


def _chart(module: ast.Module, sym: Symbols) -> dict[str, dict]:
    """The statechart attributes of every state and track (docs/graph.md, "Statecharts")."""
    from .checks.structure import default_child

    out: dict[str, dict] = {}
    for name, order in sym.doc_order.items():
        parent = sym.parent[name]
        if name in sym.tracks:
            kind = "track"
        else:
            st = sym.states[name]
            kind = "parallel" if st.tracks else ("compound" if st.states else "atomic")
        out[name] = {
            "type": kind,
            "parent": parent,
            "children": list(sym.children[name]),
            "initial_child": default_child(sym, name),
            "track": sym.track_of(name),
            "depth": len(sym.ancestors(name)),
            "doc_order": order,
        }
    return out


def _setting(module: ast.Module, kind: str) -> dict | None:
    for s in module.settings:
        if s.kind == kind:
            return {"amount": s.duration.amount, "unit": s.duration.unit, "sources": _ids(s.cite),
                    "citations": _citations(s.cite),
                    "span": s.span.to_dict()}
    return None


def _num(v):
    return None if v is None else ir.to_json_number(v)


def _citations(cite) -> list[dict]:
    """A `cite` list as written: `[{"source": id, "locator": "4.4" or None}]`."""
    return [{"source": c.text, "locator": getattr(c, "locator", None)} for c in cite]


def _unique(items) -> list:
    out: list = []
    for x in items:
        if x not in out:
            out.append(x)
    return out


def _action_citations(a: dict):
    yield from a.get("citations", ())
    for sub in (*a.get("then", ()), *a.get("else", ())):
        yield from _action_citations(sub)


def _ids(names) -> list[str]:
    return [n.text for n in names]


def _unit(t) -> str | None:
    if t is None or t.kind != "number":
        return None
    return None if t.unit == ANY else t.unit


def _fact(f: ast.Fact) -> dict:
    t = f.type
    return {
        "description": f.description,
        "type": t.kind if t else "error",
        "unit": (t.unit or RATIO) if t and t.kind == "number" else None,
        "members": [m.text for m in t.members] if t and t.kind == "enum" else None,
        "has_default": f.default is not None,
        "default": _literal(f.default.value) if f.default is not None else None,
        "sources": _ids(f.cite),
        "citations": _citations(f.cite),
        "span": f.span.to_dict(),
    }


def _literal(v):
    return v if isinstance(v, (bool, str)) else ir.to_json_number(v)


def _timer(h: ast.Handler) -> dict | None:
    if h.trigger != "timer" or h.delay is None:
        return None
    return {"amount": h.delay.amount, "unit": h.delay.unit, "since": h.since.text if h.since else None}


def _window(w: ast.Window | None, tolerance: dict | None = None) -> dict | None:
    """A due window: opens `start`, closes `end` `unit`s after the action; a point (`due 3 months`)
    gets the protocol's tolerance either way; `every`: the order repeats once fulfilled."""
    if w is None:
        return None
    return {"start": w.start, "end": w.end, "unit": w.unit, "tolerance": dict(tolerance) if w.point and tolerance else None,
            "every": w.every}


def _windows(actions: list[dict], when: str = ""):
    """The due windows of the orders among `actions`, with the condition they depend on."""
    for a in actions:
        if a["kind"] in ("do", "one_of") and a["window"]:
            yield {"action": a.get("action") or a["options"][0], "window": a["window"], "when": when}
        elif a["kind"] == "if":
            yield from _windows(a["then"], f"{when} and {a['text']}" if when else a["text"])
            yield from _windows(a["else"], f"{when} and not ({a['text']})" if when else f"not ({a['text']})")


def _action_sources(a: dict):
    yield from a.get("sources", ())
    for sub in (*a.get("then", ()), *a.get("else", ())):
        yield from _action_sources(sub)


class _Lowerer:
    def __init__(self, sym: Symbols, tolerance: dict | None = None):
        self.sym = sym
        self.tolerance = tolerance  # the protocol's schedule tolerance {amount, unit}

    def action(self, a) -> dict:
        sym = self.sym
        if isinstance(a, ast.Do):
            decl = sym.actions.get(a.action.text)
            return {
                "kind": "do",
                "action": a.action.text,
                "orders": [n.text for n in decl.orders] if decl else [],
                "window": _window(a.window, self.tolerance),
                "sources": _ids(a.cite),
                "citations": _citations(a.cite),
                "span": a.span.to_dict(),
            }
        if isinstance(a, ast.OneOf):
            return {
                "kind": "one_of",
                "options": _ids(a.options),
                "window": _window(a.window, self.tolerance),
                "sources": _ids(a.cite),
                "citations": _citations(a.cite),
                "span": a.span.to_dict(),
                # what each alternative brings: where it leads (null: no target of its own) and
                # its actions (the list form `do one of A, B`: none)
                "alternatives": [
                    {"action": alt.action.text, "target": alt.target.text if alt.target else None, "stay": alt.stay,
                     "actions": [self.action(x) for x in alt.actions]}
                    for alt in a.alternatives
                ] or [{"action": o.text, "target": None, "stay": False, "actions": []} for o in a.options],
            }
        if isinstance(a, ast.Set):
            return {
                "kind": "set",
                "var": a.var.text,
                "value": expr_tree(a.value, sym),
                "sources": _ids(a.cite),
                "citations": _citations(a.cite),
                "span": a.span.to_dict(),
            }
        return {
            "kind": "if",
            "cond": expr_tree(a.cond, sym),
            "text": a.cond_text,
            "then": [self.action(x) for x in a.then],
            "else": [self.action(x) for x in a.orelse],
            "sources": sorted(set(_ids(a.cite)) | let_sources(sym, a.cond)),
            "citations": _citations(a.cite),
            "span": a.span.to_dict(),
        }


def expr_tree(e, sym: Symbols) -> dict:
    """An expression as a JSON tree: `{"op": ..., ...}` (see docs/graph.md)."""
    if isinstance(e, ast.Number):
        if e.unit is None:
            return {"op": "num", "value": ir.to_json_number(e.value)}
        # the value in the unit it is computed in (converted exactly by checks.types); `unit`
        # is for readers: the engine computes with the number alone
        value, unit = sym.numbers.get(id(e), (e.value, e.unit))
        return {"op": "num", "value": ir.to_json_number(value), "unit": unit}
    if isinstance(e, ast.SinceEntry):
        return {"op": "since_entry"}
    if isinstance(e, ast.Bool):
        return {"op": "bool", "value": e.value}
    if isinstance(e, ast.Duration):
        return {"op": "duration", "amount": e.amount, "unit": e.unit}
    if isinstance(e, ast.Ref):
        kind = sym.kind_of(e.name)
        if kind in ("lab", "fact", "var", "let", "action", "drug"):
            return {"op": kind, "name": e.name}
        return {"op": "enum", "value": e.name}
    if isinstance(e, ast.Call):
        return {"op": "call", "func": e.func.text, "args": [expr_tree(a, sym) for a in e.args]}
    if isinstance(e, ast.Neg):
        return {"op": "neg", "arg": expr_tree(e.operand, sym)}
    if isinstance(e, ast.Arith):
        return {"op": e.op, "args": [expr_tree(e.left, sym), expr_tree(e.right, sym)]}
    if isinstance(e, ast.Compare):
        return {"op": "compare", "ops": list(e.ops), "args": [expr_tree(a, sym) for a in e.operands]}
    if isinstance(e, ast.Member):
        return {"op": "in", "arg": expr_tree(e.operand, sym), "members": [m.text for m in e.members]}
    if isinstance(e, ast.Not):
        return {"op": "not", "arg": expr_tree(e.operand, sym)}
    if isinstance(e, ast.Logic):
        return {"op": e.op, "args": [expr_tree(a, sym) for a in e.operands]}
    raise TypeError(f"not an expression: {e!r}")
