"""Hygiene: declarations nobody uses, actions nobody can read, rules that rest on an AI summary.

- W630  a lab, fact, event, action, source, var, let or drug that nothing uses (a drug is used
        when an action acts on it or an expression reads it). A lab is used
        when an expression reads it or an action orders it; a fact when an expression reads
        it or a handler watches it; an event when a handler handles it; an action when it is
        recommended (`do`, `one of`) or counted from (`since`, a timer); a source when
        anything cites it (a declaration, a rule, an action; lets cite for the rules that use
        them).
- W631  a var that is set but never read (it changes nothing), or read but never set (it is
        a constant: its default, or unknown).
- W632  an action without a description: what the clinician is asked to do must be said.
- W605  a rule whose every source is of kind `ai-summary` (its own citations, those of the
        lets its guard uses, and those of its actions): reviewers should check it against a
        primary source. Rules that cite nothing at all are W501 (structure checks).
"""

from __future__ import annotations

from .. import ir
from .prover import Finding
from .smt import all_action_lists, all_trees, walk_actions


def check(graph, out: list[Finding], names: dict) -> None:
    g = graph.graph
    used = _used(graph)
    kinds = (("labs", "lab"), ("facts", "fact"), ("events", "event"), ("actions", "action"), ("sources", "source"), ("vars", "var"), ("lets", "let"),
             ("drugs", "drug"))
    for table, word in kinds:
        for name, decl in (g.get(table) or {}).items():
            if name in used[word]:
                continue
            if word == "var" and name in used["set"]:
                continue  # W631 below
            out.append(Finding("W630", names.get((word, name)) or decl["span"], f"{word} '{name}' is declared but never used{_hint(word)}"))
    for name, decl in (g.get("vars") or {}).items():
        read, written = name in used["var"], name in used["set"]
        span = names.get(("var", name)) or decl["span"]
        if written and not read:
            out.append(Finding("W631", span, f"var '{name}' is set but never read: setting it changes nothing"))
        elif read and not written:
            value = "unknown" if not decl.get("has_default") else str(decl.get("default")).lower()
            out.append(Finding("W631", span, f"var '{name}' is read but never set: it is always {value}; declare it as a fact, or set it where it changes"))
    for name, decl in (g.get("actions") or {}).items():
        if not (decl.get("description") or "").strip():
            out.append(Finding("W632", names.get(("action", name)) or decl["span"], f"action '{name}' has no description; say what the clinician is asked to do: action {name} \"...\""))
    sources = g.get("sources") or {}
    ai = {s for s, d in sources.items() if d.get("kind") == "ai-summary"}
    if not ai:
        return
    seen: dict[str, list] = {}  # a rule block's rule: once, naming the states that use it
    for u, _v, k, d in sorted(graph.edges(keys=True, data=True), key=lambda e: (e[3]["span"]["line"], e[3]["span"]["column"])):
        if d.get("alternative"):
            continue  # a choice's other alternatives: the rule is reported once
        support = set(d.get("sources") or ())
        for a in walk_actions(d.get("actions")):
            support.update(a.get("sources") or ())
        if support and support <= ai:
            if d.get("block"):
                seen.setdefault(d.get("rule") or k, []).append((u, k, d, support))
                continue
            names_ = ", ".join(sorted(support))
            out.append(Finding("W605", d["span"], f"state {u}: this rule rests only on AI-generated summaries ({names_}); check it against a primary source and cite that", None, (k,)))
    for uses in seen.values():
        u, k, d, support = uses[0]
        states = ", ".join(dict.fromkeys(x[0] for x in uses))
        names_ = ", ".join(sorted(support))
        out.append(Finding("W605", d["span"], f"rule block {d['block']} (used in {'state' if len(uses) == 1 else 'states'} {states}): this rule rests only on AI-generated summaries ({names_}); check it against a primary source and cite that", None, tuple(x[1] for x in uses)))


def _hint(word: str) -> str:
    return {
        "source": "; cite it where it supports a rule, or remove it",
        "action": "; recommend it somewhere ('do'), or remove it",
        "event": "; handle it ('on event'), or remove it",
        "drug": "; act on it (an action that starts, holds, resumes, doses or stops it), or remove it",
    }.get(word, "; remove it, or use it")


def _used(graph) -> dict[str, set]:
    g = graph.graph
    used = {w: set() for w in ("lab", "fact", "event", "action", "source", "var", "let", "set", "drug")}
    for t in all_trees(graph):
        for node in ir.walk(t):
            op = node.get("op")
            if op in ("lab", "fact", "var", "let", "action", "drug"):
                used[op].add(node["name"])
    for decl in (g.get("actions") or {}).values():
        used["lab"].update(decl.get("orders") or ())
        if (decl.get("effect") or {}).get("drug"):
            used["drug"].add(decl["effect"]["drug"])
    for decl in (g.get("drugs") or {}).values():
        used["source"].update(decl.get("sources") or ())
    for table in ("labs", "facts", "vars", "events", "actions", "lets"):
        for decl in (g.get(table) or {}).values():
            used["source"].update(decl.get("sources") or ())
    for acts in all_action_lists(graph):
        for a in walk_actions(acts):
            used["source"].update(a.get("sources") or ())
            if a.get("kind") == "do":
                used["action"].add(a["action"])
            elif a.get("kind") == "one_of":
                used["action"].update(a.get("options") or ())
            elif a.get("kind") == "set":
                used["set"].add(a["var"])
    for _, d in graph.nodes(data=True):
        used["source"].update(d.get("sources") or ())
        for h in d.get("handlers") or ():
            used["event"].update(h.get("events") or ())
            used["fact"].update(h.get("facts") or ())
            t = h.get("timer")
            if t and t.get("since"):
                used["action"].add(t["since"])
    for _, _, d in graph.edges(data=True):
        used["source"].update(d.get("sources") or ())
    # a var only set is not "used" by reading; `set` keeps it off W630 (W631 says more)
    return used
