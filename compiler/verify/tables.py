"""Each handler as a decision table: gaps, overlaps, shadowed rules, guards that never hold,
and the inputs on which it is unassessable.

A handler's guards are three-valued (smt.py): each is true, false or unknown. Rule choice is
strict first match (DMN's first hit): rule i fires when its guard is true and every earlier
guard is false; `otherwise` fires when every earlier guard is false; in an `exclusive`
handler a true guard fires whatever the others are (the first true one, should two be). When
a guard is unknown before any rule fires, nothing fires: the handler is *unassessable* there.
For the guards G1..Gn of one handler (in a panel handler: on a panel, i.e. with at least one
lab result; elsewhere labs are those of the most recent panel, if any):

- E606  Gi can never be true.
- E604  Gi can be true, but rule i never fires: the rules above it are true, or unknown,
        whenever it is.
- W607  `otherwise` can never fire: G1..Gn-1 are never all false together.
- E601  no otherwise, and G1..Gn can all be false together: inputs that no rule handles
        (not for `on fact` handlers, which watch for a condition: "nothing happens" is what
        they do until it holds). Every region of such inputs is listed (regions.py).
- W603  mode first (the default): Gi and Gj (i < j) can both be true where G1..Gi-1 are
        false, so the order of the rules decides; silent when the handler says `ordered`.
- E602  mode exclusive: Gi and Gj can both be true, although the author said they cannot.

Inputs where a guard is unknown and nothing fires are not errors: `unassessable` lists their
regions for `rxwatch check --explain`.

Every finding that is about inputs comes with an example (smt.Example), checked by z3.
Identical handlers (same trigger, mode and guards) are analysed once per protocol.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import z3

from .. import ir
from . import regions, smt
from .prover import Finding, Prover, Unknown, describe, quote_rule
from .chart import Chart, Effective
from .timing import must_recommended


def check(graph, enc: smt.Encoder, prover: Prover, out: list[Finding], dead: set[str], limit: int = regions.LIMIT,
          chart: Chart | None = None) -> None:
    """Append findings to `out`; add the keys of rules that can never fire to `dead`.

    Each atomic state's effective lists are analysed (chart.py); a list that several states
    share (the same handlers, the same context) is analysed once. A finding about one rule
    (E606, E604, W607) is reported once, at the rule, when the rule can fire in none of the
    states it applies to (an inherited rule, or one of a rule block, may be shadowed in one
    state and fire in another: that is what child-wins is for); an overlap once per pair of
    rules; a gap once per list, naming the states it applies to."""
    chart = chart or Chart(graph)
    cache: dict[tuple, list] = {}
    occurrences: dict[str, list] = {}  # edge id -> [(state, verdict killing it there, or None)]
    overlaps: dict[tuple, tuple] = {}  # (rule, rule) -> (list, handler, its rules, verdict, states)
    lone: dict[str, list] = {}
    for eff, states in groups(chart, enc, must_recommended(graph, chart), lone):
        if eff.trigger == "panel" and not enc.labs:
            continue  # no labs declared: no panel can arrive, there is nothing to ask
        key = (*_key(eff), eff.known)
        verdicts = cache.get(key)
        if verdicts is None:
            try:
                verdicts = cache[key] = _analyse(Table(enc, prover, eff.rules, eff.as_handler(), eff.known, eff), eff.trigger, limit)
            except Unknown as e:
                out.append(Finding("W609", eff.handler["span"], f"{where(chart, eff, states)}: the solver could not decide the questions about this handler ({e}); its gaps and overlaps were not checked"))
                for r in eff.rules:
                    occurrences.setdefault(r["id"], []).extend((s, None) for s in states)
                continue
        killed: dict[int, tuple] = {}
        for v in verdicts:
            if v.kind in ("never", "shadowed", "dead-otherwise"):
                killed[v.i] = (v, eff)
            elif v.kind == "overlap":
                pair = (canonical(eff.rules[v.i]), canonical(eff.rules[v.j]))
                if pair in overlaps:
                    overlaps[pair][4].extend(s for s in states if s not in overlaps[pair][4])
                else:
                    overlaps[pair] = (eff, eff.handlers[eff.segment[v.j]][1], eff.rules, v, list(states))
            elif v.kind == "gap":
                _report(out, where(chart, eff, states), eff.as_handler(), eff.rules, v)
        for i, r in enumerate(eff.rules):
            occurrences.setdefault(r["id"], []).extend((s, killed.get(i)) for s in states)
    for rid, states in lone.items():  # a lone `otherwise` always fires
        occurrences.setdefault(rid, []).extend((s, None) for s in states)
    # rules that can fire in none of the states they apply to
    by_rule: dict[str, list] = {}
    for rid, occ in occurrences.items():
        if all(v is not None for _, v in occ):
            dead.add(rid)
        by_rule.setdefault(canonical(chart.edges[rid][2]), []).append(rid)
    for crule, rids in by_rule.items():
        occ = [o for rid in rids for o in occurrences[rid]]
        if not all(v is not None for _, v in occ):
            _partly_dead(out, chart, occ)
            continue
        occ.sort(key=lambda o: chart.order[o[0]])
        v, eff = occ[0][1]
        states = list(dict.fromkeys(s for s, _ in occ))
        _report(out, rule_where(chart, eff.rules[v.i], states), eff.as_handler(), eff.rules, v)
    for eff, h, rules, v, states in overlaps.values():
        _report(out, rule_where(chart, rules[v.j], states), h, rules, v)


def _partly_dead(out: list, chart: Chart, occ: list) -> None:
    """W640: an inherited rule, or a rule block's, with a guard, that never fires in some of
    the states it applies to (and fires in others): there, the state's own rules (or those
    before the `use`) always decide first."""
    occ = sorted(occ, key=lambda o: chart.order[o[0]])
    deadin = [(s, v) for s, v in occ if v is not None]
    if not deadin:
        return
    v, eff = deadin[0][1]
    r = eff.rules[v.i]
    if r.get("otherwise"):
        return  # a state's own `otherwise` overrides an inherited one: that is its purpose
    never = list(dict.fromkeys(s for s, _ in deadin))
    fires = [s for s in dict.fromkeys(s for s, x in occ if x is None) if s not in never]
    if v.kind == "never":
        why = f"its guard '{r.get('because')}' can never hold there"
    else:
        if v.blocked_by:
            shown, verb = [eff.rules[x] for x in v.blocked_by], "is unknown or decides first"
        else:  # the state's own rules above it (those of a handler nearer the state), else all above
            own = [x for j, x in enumerate(eff.rules[:v.i]) if eff.segment[j] != eff.segment[v.i]]
            shown, verb = own or eff.rules[:v.i], "decides first" if len(own or eff.rules[:v.i]) == 1 else "decide first"
        why = f"whenever '{r.get('because')}' holds, {', '.join(quote_rule(x) for x in shown)} {verb}"
    them = f"state {never[0]}" if len(never) == 1 else f"states {', '.join(never)}"
    out.append(Finding("W640", r["span"], f"{rule_where(chart, r, [s for s, _ in occ])}: this rule never fires in {them} ({why}); "
                       f"it fires only in {', '.join(fires)}. If the override is meant, accept W640", None, (r["id"],)))


def groups(chart: Chart, enc: smt.Encoder, must: dict, lone: dict | None = None) -> list:
    """[(effective list, the atomic states it is theirs in)] for every list with a rule that
    has a guard, those with the same handlers and the same known since() taken together.
    `lone`, when given, gets the lists that are one `otherwise` (rule id -> states)."""
    reads: dict[tuple, set] = {}
    out: dict[tuple, tuple] = {}
    for s in chart.atomic:
        if chart.terminal(s):
            continue
        for eff in chart.effective(s):
            rules = eff.rules
            if not rules:
                continue
            if len(rules) == 1 and rules[0].get("otherwise"):
                if lone is not None:  # nothing to ask: it always fires
                    lone.setdefault(rules[0]["id"], []).append(s)
                continue
            base = _key(eff)
            eff.known = _known_since(enc, eff.as_handler(), rules, must.get(s, set()), reads, base)
            k = (eff.chain_key(), eff.known)
            if k in out:
                out[k][1].append(s)
            else:
                out[k] = (eff, [s])
    return list(out.values())


def canonical(rule: dict) -> str:
    """A rule's canonical id: the same for every state using a block (`BLOCK#i`)."""
    return rule.get("rule") or rule["id"]


def where(chart: Chart, eff: Effective, states: list) -> str:
    """'state S', or 'state P (for its states a, b)' when the list is P's and applies to
    states inside P."""
    if states == [eff.owner]:
        return f"state {eff.owner}"
    return f"state {eff.owner} ({_for(states)})"


def rule_where(chart: Chart, rule: dict, states: list) -> str:
    """Where a rule is: 'state S', 'state P (for its states a, b)' for an inherited rule,
    'rule block B (in states a, b)' for a block's rule."""
    u = chart.edges[rule["id"]][0]
    if rule.get("block"):
        return f"rule block {rule['block']} ({_for(states, 'used in')})"
    if states == [u]:
        return f"state {u}"
    return f"state {u} ({_for(states)})"


def _for(states: list, verb: str = "for") -> str:
    return f"{verb} state {states[0]}" if len(states) == 1 else f"{verb} states {', '.join(states)}"


def _key(eff: Effective) -> tuple:
    """What decides a list's verdicts: the trigger, the handlers' modes and timer, the guards
    and which handler each rule belongs to."""
    h = eff.handler
    return (eff.trigger, tuple(x.get("mode") for _, x in eff.handlers), json.dumps(h.get("timer"), sort_keys=True),
            tuple(json.dumps(r.get("guard"), sort_keys=True) for r in eff.rules), tuple(eff.segment))


def _known_since(enc: smt.Encoder, h: dict, rules: list, must: set[str], reads: dict, key: tuple) -> tuple[str, ...]:
    """The actions whose since() the guards read and that are known in this handler: every
    way into the state recommended them, or the handler's timer counts from them. (`reads`
    caches the actions read by the guards of handler `key`.)"""
    read = reads.get(key)
    if read is None:
        read = reads[key] = enc.inputs_of(r.get("guard") for r in rules).actions
    timer = (h.get("timer") or {}).get("since") if h.get("trigger") == "timer" else None
    return tuple(sorted(a for a in read if a in must or a == timer))


def _track_labs(enc: smt.Encoder) -> dict:
    """ir.track_labs of the encoder's graph, once per encoder (never stored in the graph)."""
    cached = getattr(enc, "_track_labs", None)
    if cached is None:
        cached = ir.track_labs(enc.graph)
        enc._track_labs = cached
    return cached


def panel_context(enc: smt.Encoder, about: frozenset | None = None):
    """A panel has at least one result (in a track: of a lab the track is about, `about`, the
    labs its states' panel rules name; else of any declared lab), and an order it fulfils has
    results for the labs of one of its `fulfilled by` alternatives."""
    labs = [name for name in enc.labs if not about or name in about]
    if not labs:
        return enc.F
    return enc.conj(enc.disj(*(enc.lab(name).known for name in labs)), *enc.fulfilment_implies())


@dataclass
class Verdict:
    kind: str  # never, shadowed, dead-otherwise, overlap, gap
    i: int | None = None
    j: int | None = None
    example: smt.Example | None = None
    blocked_by: list = field(default_factory=list)  # rules above that are unknown in the example
    unknown_above: bool = False  # dead otherwise: a rule above can be unknown where none is true
    regions: regions.Regions | None = None


def above(ts: list, fs: list, rules: list, i: int, exclusive: bool) -> list:
    """What must hold of the rules above rule i for it to fire when its guard is true, given
    `ts[j]` / `fs[j]` (guard j is true / false, as literals or formulas): all false (strict first
    match, and always for `otherwise`), or none true (`exclusive`). The one statement of the
    rule: the verifier's tables, the suite's equivalence and its generator use it."""
    if exclusive and not rules[i].get("otherwise"):
        return [z3.Not(x) for x in ts[:i]]
    return list(fs[:i])


def stuck(ts: list, fs: list, rules: list, exclusive: bool, false):
    """The formula: the handler decides nothing because a guard it needs is unknown (the run's
    `unassessable` step). First match: some guard is unknown and every one above it false;
    exclusive: no guard true and one not false. `false`: the encoder's (its z3 context's) F."""
    idx = range(len(rules) - 1 if rules and rules[-1].get("otherwise") else len(rules))
    if not idx:
        return false
    if exclusive:
        return z3.And(*[z3.Not(ts[i]) for i in idx], z3.Or(*[z3.Not(fs[i]) for i in idx]))
    return z3.Or(*[z3.And(z3.And(z3.Not(ts[i]), z3.Not(fs[i])), *fs[:i]) for i in idx])


class Table:
    """One handler's guards as literals of the prover's current scope: `t[i]` guard i is
    true, `f[i]` it is false (`otherwise`: true, never false); `c` the context."""

    def __init__(self, enc: smt.Encoder, prover: Prover, rules: list, h: dict, known: tuple[str, ...] = (),
                 eff: Effective | None = None) -> None:
        self.enc, self.prover, self.rules, self.mode = enc, prover, rules, h.get("mode") or "first"
        # the handler each rule belongs to (an effective list joins a state's and its ancestors')
        self.segment = list(eff.segment) if eff is not None else [0] * len(rules)
        self.seg_modes = [x.get("mode") or "first" for _, x in eff.handlers] if eff is not None else [self.mode]
        self.conds = [enc.cond(r.get("guard")) for r in rules]
        self.ins = enc.inputs_of(r.get("guard") for r in rules)
        about = None
        if h.get("trigger") == "panel" and eff is not None:
            track = enc.graph.nodes[eff.state].get("track") if eff.state in enc.graph.nodes else None
            if track is not None:
                about = _track_labs(enc).get(track) or None
        self.ctx = enc.conj(panel_context(enc, about) if h.get("trigger") == "panel" else enc.T,
                            *handler_context(enc, h, self.ins, known))

    def define(self) -> None:
        """Define the literals (call inside `prover.scope()`)."""
        p = self.prover
        self.c = p.define(self.ctx)
        self.t = [p.define(x.t) for x in self.conds]
        self.f = [p.define(x.f) for x in self.conds]

    def before(self, i: int) -> list:
        """The literals for 'rule i fires when its guard is true' (first hit; exclusive)."""
        return above(self.t, self.f, self.rules, i, self.mode == "exclusive")

    def unknown(self, i: int):
        return z3.And(z3.Not(self.t[i]), z3.Not(self.f[i]))

    def guards(self) -> range:
        """The indices of the rules with guards (all but a final `otherwise`)."""
        n = len(self.rules)
        return range(n - 1 if n and self.rules[-1].get("otherwise") else n)

    def unassessable(self):
        """The formula: nothing fires because a guard is unknown."""
        return stuck(self.t, self.f, self.rules, self.mode == "exclusive", self.enc.F)

    def undecided(self) -> list:
        """[(i, literal)]: where guard i is the (or, exclusive, an) unknown one that stops the handler."""
        p = self.prover
        if self.mode == "exclusive":
            return [(i, p.define(self.unknown(i))) for i in self.guards()]
        return [(i, p.define(z3.And(self.unknown(i), *self.f[:i]))) for i in self.guards()]


def handler_context(enc: smt.Encoder, h: dict, ins: smt.Inputs, known: tuple[str, ...]) -> list:
    """What is known of the inputs when this handler runs: since() of the actions in `known`
    is known; a timer `after N unit` (since the state was entered) fires N or more after entry."""
    out = [enc.since(a).known for a in known]
    t = h.get("timer") or {}
    if h.get("trigger") == "timer" and not t.get("since") and ins.entry:
        out.append(enc.link(">=", smt.Since(smt.ENTRY), smt.Dur(int(t.get("amount", 0)), t.get("unit", "days"))).t)
    return out


def _analyse(tab: "Table", trigger: str, limit: int) -> list[Verdict]:
    prover = tab.prover
    with prover.scope():
        # each guard once, as two literals; every question is then a check under assumptions
        tab.define()
        return _questions(tab, trigger, limit)


def _questions(tab: Table, trigger: str, limit: int) -> list[Verdict]:
    p, c, t, f, rules, mode = tab.prover, tab.c, tab.t, tab.f, tab.rules, tab.mode
    verdicts = []
    live: list[int] = []
    has_otherwise = False
    for i, r in enumerate(rules):
        if r.get("otherwise"):
            has_otherwise = True
            if i > 0 and not p.holds(c, *f[:i]):
                blocked = p.holds(c, *[z3.Not(x) for x in t[:i]])  # no rule above true, yet not all false
                verdicts.append(Verdict("dead-otherwise", i, unknown_above=blocked))
            # an effective list may go on (the rules a state inherits): never reached
            for k in range(i + 1, len(rules)):
                verdicts.append(Verdict("dead-otherwise" if rules[k].get("otherwise") else "shadowed", k))
            break
        if not p.holds(c, t[i]):
            verdicts.append(Verdict("never", i))
            continue
        if i and not p.holds(c, t[i], *tab.before(i)):
            v = Verdict("shadowed", i)
            none_above = [z3.Not(x) for x in t[:i]]
            if mode != "exclusive" and p.holds(c, t[i], *none_above):
                # no rule above is true, but one is unknown: the handler stops there
                ex = p.witness([c, t[i], *none_above], tab.ins, probes=[tab.unknown(j) for j in range(i)])
                v.example = ex
                v.blocked_by = [j for j in range(i) if ex.probes[j]]
            verdicts.append(v)
            continue
        live.append(i)
    # overlaps within one handler: a child's rule before an inherited one is meant to win
    seg = tab.segment
    for a, i in enumerate(live):
        m = tab.seg_modes[seg[i]]
        if m == "ordered":
            continue
        before = tab.before(i) if m == "first" else f[:seg.index(seg[i])]
        for j in live[a + 1:]:
            if seg[j] != seg[i]:
                continue
            if p.holds(c, t[i], t[j], *before):
                verdicts.append(Verdict("overlap", i, j, p.witness([c, t[i], t[j], *before], tab.ins)))
    if not has_otherwise and trigger != "fact":
        if p.holds(c, *f):
            phi = p.define(z3.And(*f)) if len(f) > 1 else f[0]
            subs = regions.subjects(tab.enc, [r.get("guard") for r in rules])
            found = regions.search(tab.enc, p, c, phi, subs, tab.ins, limit)
            verdicts.append(Verdict("gap", example=found.regions[0].example, regions=found))
    return verdicts


# ---------------------------------------------------------------------------- messages


def what(h: dict) -> str:
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


def example_of(r: regions.Region, lead: str) -> str:
    """`lead` + the region's example, or '' when the region's text already says it all."""
    ex = describe(r.example, derived=False)
    conds = {regions.describe(s, c) for s, c in r.conds} | {f"{lab} missing" for lab in r.missing}
    if ex == "any values" or all(part in conds for part in ex.split(", ")):
        return ""
    return lead + ex


def region_lines(found: regions.Regions, indent: str = "  ") -> list[str]:
    """'tx in (3, 5] and bili unknown, e.g. ALT 160 U/L, AST missing, TBIL missing' per region."""
    lines = [f"{indent}{r.text}{example_of(r, ', e.g. ')}" for r in found.regions]
    if not found.complete:
        lines.append(f"{indent}(and more: only the first {len(found.regions)} regions are listed)")
    return lines


def _report(out, where: str, h, rules, v: Verdict) -> None:
    kind, i, j = v.kind, v.i, v.j
    if kind == "never":
        r = rules[i]
        out.append(Finding("E606", r["span"], f"{where}: the guard '{r.get('because')}' can never hold, so this rule never fires", None, (r["id"],)))
    elif kind == "shadowed":
        r = rules[i]
        if v.blocked_by:
            above = ", ".join(quote_rule(rules[x]) for x in v.blocked_by)
            msg = (f"{where}: this rule can never fire: whenever '{r.get('because')}' holds, a rule above it fires first "
                   f"or is unknown (and then the handler is unassessable): with {describe(v.example)}, {above} is unknown; "
                   f"move this rule up, or write the rule above as 'known(...) and ...'")
            out.append(Finding("E604", r["span"], msg, v.example, (r["id"], *(rules[x]["id"] for x in v.blocked_by))))
        else:
            above = ", ".join(quote_rule(x) for x in rules[:i])
            out.append(Finding("E604", r["span"], f"{where}: this rule can never fire: whenever '{r.get('because')}' holds, a rule above it ({above}) fires first", None, (r["id"],)))
    elif kind == "dead-otherwise":
        r = rules[i]
        why = "the rules above are never all false: in every case one is true or unknown" if v.unknown_above else "the rules above cover every case"
        out.append(Finding("W607", r["span"], f"{where}: 'otherwise' can never fire: {why}", None, (r["id"],)))
    elif kind == "overlap":
        a, b = rules[i], rules[j]
        mode = h.get("mode") or "first"
        if mode == "exclusive":
            msg = f"{where}: the handler is 'exclusive', but {quote_rule(a)} and {quote_rule(b)} both hold for {describe(v.example)}"
            out.append(Finding("E602", b["span"], msg, v.example, (a["id"], b["id"])))
        else:
            msg = (f"{where}: {quote_rule(a)} and {quote_rule(b)} both hold for {describe(v.example)}; the first one fires. "
                   f"If the order is intended, say so: '{_ordered_header(h)}'")
            out.append(Finding("W603", b["span"], msg, v.example, (a["id"], b["id"])))
    elif kind == "gap":
        found = v.regions
        recent = " (labs of the most recent panel)" if h.get("trigger") != "panel" and any(r.example.panel for r in found.regions) else ""
        if len(found.regions) == 1 and found.complete:
            r = found.regions[0]
            msg = f"{where}: no rule handles {what(h)}{recent} with {r.text} (every guard is false{example_of(r, '; e.g. ')}); add a rule for it, or 'otherwise'"
        else:
            count = f"{len(found.regions)}" if found.complete else f"more than {len(found.regions)}"
            msg = "\n".join([f"{where}: no rule handles {what(h)}{recent} in {count} regions (every guard is false); add rules for them, or 'otherwise':",
                             *region_lines(found, "    ")])
        f = Finding("E601", h["span"], msg, v.example, tuple(r["id"] for r in rules))
        f.regions = found
        out.append(f)


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


# ---------------------------------------------------------------------------- unassessable inputs


@dataclass
class Unassessable:
    """A handler that can be unassessable, and every region of inputs where it is."""

    state: str  # the state declaring the (innermost) handler
    handler: dict
    rules: list  # the effective list: the state's rules, then those it inherits
    regions: regions.Regions
    where: str = ""  # 'state S', or 'state P (for its states a, b)'
    states: list = field(default_factory=list)  # the atomic states the list is theirs in

    @property
    def line(self) -> int:
        return int(self.handler["span"].get("line", 0))

    def lines(self) -> list[str]:
        h = self.handler
        head = f"{self.where or 'state ' + self.state}, {_handler_name(h)} (line {self.line}): unassessable"
        out = [head + (f" in {len(self.regions.regions)} region{'s' if len(self.regions.regions) != 1 else ''}:" if self.regions.complete else f" in more than {len(self.regions.regions)} regions:")]
        for r in self.regions.regions:
            out.append(f"  - {r.text}")
            undecided = ", ".join(quote_rule(self.rules[i]) for i in r.undecided)
            if undecided:
                out.append(f"      undecided: {undecided}")
            eg = example_of(r, "e.g. ")
            if eg:
                out.append(f"      {eg}")
        if not self.regions.complete:
            out.append(f"  (and more: only the first {len(self.regions.regions)} regions are listed)")
        return out

    def to_dict(self) -> dict:
        return {
            "state": self.state,
            "states": list(self.states or [self.state]),
            "line": self.line,
            "handler": _handler_name(self.handler),
            "complete": self.regions.complete,
            "regions": [
                {"where": r.text, "missing": list(r.missing), "undecided": [self.rules[i]["id"] for i in r.undecided],
                 "example": describe(r.example, derived=False)}
                for r in self.regions.regions
            ],
        }


def _handler_name(h: dict) -> str:
    trigger = h.get("trigger")
    if trigger == "panel":
        return "on panel"
    if trigger == "event":
        return "on event " + ", ".join(h.get("events") or [])
    if trigger == "fact":
        return ("on fact " + ", ".join(h.get("facts") or [])).rstrip()
    t = h.get("timer") or {}
    since = f" since {t['since']}" if t.get("since") else ""
    return f"after {t.get('amount')} {t.get('unit')}{since}"


def unassessable(graph, enc: smt.Encoder, prover: Prover, limit: int = regions.LIMIT, chart: Chart | None = None) -> list[Unassessable]:
    """Every effective list that can be unassessable (a guard unknown before any rule fires),
    with the regions of inputs where it is; a list several states share, once."""
    chart = chart or Chart(graph)
    out = []
    cache: dict[tuple, regions.Regions | None] = {}
    for eff, states in groups(chart, enc, must_recommended(graph, chart)):
        if eff.trigger == "panel" and not enc.labs:
            continue
        key = (*_key(eff), eff.known)
        if key not in cache:
            tab = Table(enc, prover, eff.rules, eff.as_handler(), eff.known, eff)
            with prover.scope():
                tab.define()
                phi = prover.define(tab.unassessable())
                found = None
                if prover.holds(tab.c, phi):
                    subs = regions.subjects(enc, [r.get("guard") for r in eff.rules])
                    found = regions.search(enc, prover, tab.c, phi, subs, tab.ins, limit, tab.undecided())
            cache[key] = found
        if cache[key] is not None:
            out.append(Unassessable(eff.owner, eff.as_handler(), eff.rules, cache[key], where(chart, eff, states), states))
    return out
