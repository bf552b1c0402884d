"""Each handler as a decision table: gaps, overlaps, shadowed rules, guards that never hold.

A handler's rules are tried top to bottom on the same inputs; the first whose guard holds
fires. For the guards G1..Gn of one handler (in a panel handler: on a panel, i.e. with at
least one lab result; elsewhere labs are those of the most recent panel, if any):

- E606  Gi can never hold.
- E604  Gi can hold, but never when G1..Gi-1 all fail: the rules above take all its cases.
- W607  `otherwise` can never fire: G1..Gn-1 together cover every case.
- E601  no otherwise, and not G1 and ... and not Gn can hold: inputs that no rule handles
        (not for `on fact` handlers, which watch for a condition: "nothing happens" is what
        they do until it holds).
- W603  mode first (the default): Gi and Gj (i < j) can both hold where G1..Gi-1 fail, so
        the order of the rules decides; silent when the handler says `ordered`.
- E602  mode exclusive: Gi and Gj can both hold, although the author said they cannot.

Every finding that is about inputs comes with an example (smt.Example), checked by z3.
Identical handlers (same trigger, mode and guards) are analysed once per protocol.
"""

from __future__ import annotations

import json

import z3

from . import smt
from .prover import Finding, Prover, Unknown, describe, quote_rule


def check(graph, enc: smt.Encoder, prover: Prover, out: list[Finding], dead: set[str]) -> None:
    """Append findings to `out`; add the keys of rules that can never fire to `dead`."""
    edges = {k: d for _, _, k, d in graph.edges(keys=True, data=True)}
    panel_ctx = _panel_context(enc)
    cache: dict[tuple, list] = {}
    for state, data in graph.nodes(data=True):
        for h in data.get("handlers") or ():
            rules = [edges[k] for k in h.get("rules") or ()]
            if not rules or (len(rules) == 1 and rules[0].get("otherwise")):
                continue
            trigger = h.get("trigger")
            ctx = panel_ctx if trigger == "panel" else enc.T
            if ctx is enc.F:
                continue  # no labs declared: no panel can arrive, there is nothing to ask
            key = (trigger, h.get("mode"), tuple(json.dumps(r.get("guard"), sort_keys=True) for r in rules))
            verdicts = cache.get(key)
            if verdicts is None:
                try:
                    verdicts = cache[key] = _analyse(enc, prover, rules, ctx, trigger, h.get("mode") or "first")
                except Unknown as e:
                    out.append(Finding("W609", h["span"], f"state {state}: the solver could not decide the questions about this handler ({e}); its gaps and overlaps were not checked"))
                    continue
            for kind, i, j, ex in verdicts:
                _report(out, dead, state, h, rules, kind, i, j, ex)


def _panel_context(enc: smt.Encoder):
    """A panel has at least one result (of any declared lab)."""
    labs = list(enc.labs)
    if not labs:
        return enc.F
    return enc.disj(*(enc.lab(name).known for name in labs))


def _analyse(enc: smt.Encoder, prover: Prover, rules: list, ctx, trigger: str, mode: str) -> list:
    guards = [enc.guard(r.get("guard")) for r in rules]
    ins = enc.inputs_of(r.get("guard") for r in rules)
    with prover.scope():
        # each guard once, as a literal; every question is then a check under assumptions
        c = prover.define(ctx)
        lit = [prover.define(g) for g in guards]
        nlit = [z3.Not(x) for x in lit]
        return _questions(prover, rules, ins, c, lit, nlit, trigger, mode)


def _questions(prover: Prover, rules, ins, c, lit, nlit, trigger: str, mode: str) -> list:
    verdicts = []
    live: list[int] = []
    has_otherwise = False
    for i, r in enumerate(rules):
        if r.get("otherwise"):
            has_otherwise = True
            if i > 0 and not prover.holds(c, *nlit[:i]):
                verdicts.append(("dead-otherwise", i, None, None))
            break
        if not prover.holds(c, lit[i]):
            verdicts.append(("never", i, None, None))
            continue
        if i and not prover.holds(c, lit[i], *nlit[:i]):
            verdicts.append(("shadowed", i, None, None))
            continue
        live.append(i)
    if mode != "ordered":
        for a, i in enumerate(live):
            before = nlit[:i] if mode == "first" else []
            for j in live[a + 1:]:
                if prover.holds(c, lit[i], lit[j], *before):
                    verdicts.append(("overlap", i, j, prover.witness([c, lit[i], lit[j], *before], ins)))
    if not has_otherwise and trigger != "fact":
        gap = [x for x, r in zip(nlit, rules) if not r.get("otherwise")]
        if prover.holds(c, *gap):
            verdicts.append(("gap", None, None, prover.witness([c, *gap], ins)))
    return verdicts


def _what(h: dict) -> str:
    """What the handler reacts to, as the subject of 'no rule handles ...'."""
    trigger = h.get("trigger")
    if trigger == "panel":
        return "a panel"
    if trigger == "event":
        events = h.get("events") or []
        return f"event {' or '.join(events)}"
    if trigger == "timer":
        t = h.get("timer") or {}
        since = f" since {t['since']}" if t.get("since") else ""
        return f"the timer 'after {t.get('amount')} {t.get('unit')}{since}'"
    facts = h.get("facts") or []
    return f"a change of {', '.join(facts)}" if facts else "a change of a fact"


def _report(out, dead, state, h, rules, kind, i, j, ex) -> None:
    where = f"state {state}"
    if kind == "never":
        r = rules[i]
        dead.add(r["id"])
        out.append(Finding("E606", r["span"], f"{where}: the guard '{r.get('because')}' can never hold, so this rule never fires", None, (r["id"],)))
    elif kind == "shadowed":
        r = rules[i]
        dead.add(r["id"])
        above = ", ".join(quote_rule(x) for x in rules[:i])
        out.append(Finding("E604", r["span"], f"{where}: this rule can never fire: whenever '{r.get('because')}' holds, a rule above it ({above}) fires first", None, (r["id"],)))
    elif kind == "dead-otherwise":
        r = rules[i]
        dead.add(r["id"])
        out.append(Finding("W607", r["span"], f"{where}: 'otherwise' can never fire: the rules above cover every case", None, (r["id"],)))
    elif kind == "overlap":
        a, b = rules[i], rules[j]
        mode = h.get("mode") or "first"
        if mode == "exclusive":
            msg = f"{where}: the handler is 'exclusive', but {quote_rule(a)} and {quote_rule(b)} both hold for {describe(ex)}"
            out.append(Finding("E602", b["span"], msg, ex, (a["id"], b["id"])))
        else:
            msg = (f"{where}: {quote_rule(a)} and {quote_rule(b)} both hold for {describe(ex)}; the first one fires. "
                   f"If the order is intended, say so: '{_ordered_header(h)}'")
            out.append(Finding("W603", b["span"], msg, ex, (a["id"], b["id"])))
    elif kind == "gap":
        recent = " (labs of the most recent panel)" if h.get("trigger") != "panel" and ex is not None and ex.panel else ""
        msg = f"{where}: no rule handles {_what(h)} with {describe(ex)}{recent}; add a rule for it, or 'otherwise'"
        out.append(Finding("E601", h["span"], msg, ex, tuple(r["id"] for r in rules)))


def _ordered_header(h: dict) -> str:
    """The handler's header with `ordered`: 'on panel ordered', 'after 6 months since x ordered'."""
    trigger = h.get("trigger")
    if trigger == "event":
        return "on event " + ", ".join(h.get("events") or []) + " ordered"
    if trigger == "fact":
        return " ".join(["on fact", ", ".join(h.get("facts") or []), "ordered"]).replace("  ", " ")
    if trigger == "timer":
        t = h.get("timer") or {}
        since = f" since {t['since']}" if t.get("since") else ""
        return f"after {t.get('amount')} {t.get('unit')}{since} ordered"
    return "on panel ordered"
