"""Time: due windows, timers that are never armed, loops in which no time passes.

- E621  a due window that closes before it opens (`due 4..2 weeks`).
- W622  a due window that closes on the day of the action (`due 0..0 days`, `due within
        0 days`): only a panel drawn that same day, after the order, can fulfil it.
- E623  a timer `since` an action that the protocol never recommends: it is never armed,
        so its rules never fire.
- E620  a zero-time loop: a cycle of rules that fire on entering their state, on the same
        day, forever. Rules that fire on entry are `on fact` rules (tried at once on entry)
        and timer rules whose timer is already due on entry (`after 0 days`, or `after N
        since A` when A was recommended N or more ago). The simulator stops such a day after
        1000 transitions; this finds the loop before any patient does.

Loops are decided symbolically: the rules of a cycle are followed twice around, each guard
evaluated on the variables as the rules' and states' actions have set them (`set`, `do A`
restarting since(A), `if`, `one of` as a free choice), and the first-match order of the
rules tried at entry respected. Going twice around proves the loop repeats forever when the
actions set variables to constants (after one round they hold the same values every round);
labs and facts cannot change within a day.
"""

from __future__ import annotations

import itertools

import networkx as nx

from . import smt
from .prover import Finding, Prover, Unknown, describe, quote_rule

MAX_CYCLES = 200  # cycles of the zero-time graph examined; more are reported as W609


def windows(graph, out: list[Finding]) -> None:
    def visit(actions, where: str) -> None:
        for a in smt.walk_actions(actions):
            w = a.get("window")
            if a.get("kind") not in ("do", "one_of") or not w:
                continue
            what = a.get("action") or "one of " + ", ".join(a.get("options") or ())
            start, end, unit = int(w["start"]), int(w["end"]), w["unit"]
            if start > end:
                out.append(Finding("E621", a["span"], f"{where}: the window of '{what}' closes before it opens ({start}..{end} {unit}); write 'due {end}..{start} {unit}'"))
            elif end == 0:
                out.append(Finding("W622", a["span"], f"{where}: the window of '{what}' opens and closes on the day of the action: only a panel drawn that same day can fulfil it; give it time, e.g. 'due within 7 days'"))

    for st, d in graph.nodes(data=True):
        visit(d.get("entry"), f"state {st}")
    for u, _v, d in graph.edges(data=True):
        visit(d.get("actions"), f"state {u}")


def recommended(graph) -> set[str]:
    """Every action that some `do` or `do one of` of the protocol recommends."""
    out: set[str] = set()
    for actions in smt.all_action_lists(graph):
        for a in smt.walk_actions(actions):
            if a.get("kind") == "do":
                out.add(a["action"])
            elif a.get("kind") == "one_of":
                out.update(a.get("options") or ())
    return out


def must_recommended(graph, chart=None) -> dict[str, set[str]]:
    """atomic state -> the actions that every way into it has recommended (a `do` of a rule on
    the way, or of the entry of a state entered with it; not inside an `if`, not a `do one
    of`): in that state, since(A) of such an action is always known. A must-analysis to a
    fixed point over the transitions between atomic states (chart.py): a rule tried in an
    atomic state enters the atomic states of its target's completion."""
    from .chart import Chart

    chart = chart or Chart(graph)

    def done(actions) -> set[str]:
        return {a["action"] for a in actions or () if a.get("kind") == "do"}

    every = set(graph.graph.get("actions") or ())
    must = {st: set(every) for st in chart.atomic}
    entry = {n: done(graph.nodes[n].get("entry")) for n in graph.nodes}
    start = chart.initial_entered()
    at_start = set().union(*(entry[n] for n in start)) if start else set()
    for n in start:
        if n in must:
            must[n] = set(at_start)
    moves = []  # (from atomic, actions done on the way, atomic states entered)
    for s in chart.atomic:
        for r in chart.rules_in(s):
            for e, target in chart.alternatives(r):
                if e.get("stay"):
                    continue
                tr = chart.transition(e, target=target)
                if s not in chart.exits(tr.domain):
                    continue  # an internal rule of an ancestor that leaves `s` where it is
                on_way = done(e.get("actions")) | chart.chosen_done(e) | set().union(*(entry[n] for n in tr.entered))
                moves.append((s, on_way, tr.atomic))
    changed = True
    while changed:
        changed = False
        for u, on_way, targets in moves:
            came = must[u] | on_way
            for v in targets:
                if not must[v] <= came:
                    must[v] &= came
                    changed = True
    return must


def timers(graph, out: list[Finding], dead: set[str]) -> None:
    done = recommended(graph)
    for st, d in graph.nodes(data=True):
        for h in d.get("handlers") or ():
            t = h.get("timer")
            if h.get("trigger") != "timer" or not t or not t.get("since"):
                continue
            if t["since"] not in done:
                dead.update(h.get("rules") or ())
                out.append(Finding("E623", h["span"], f"state {st}: this timer counts from '{t['since']}', which the protocol never recommends: it is never armed and its rules never fire", None, tuple(h.get("rules") or ())))


# ---------------------------------------------------------------------------- zero-time loops


class _Loops:
    def __init__(self, graph, enc: smt.Encoder, prover: Prover, dead: set[str], chart=None) -> None:
        from .chart import Chart

        self.graph = graph
        self.chart = chart or Chart(graph)
        self.enc = enc
        self.prover = prover
        self.dead = dead
        self.edges = {k: d for _, _, k, d in graph.edges(keys=True, data=True)}
        self.side: list = []  # domain constraints of fresh choices

    # -- which rules fire on entry, and when

    def at_once(self, st: str) -> list[dict]:
        """The `on fact` rules of atomic state `st` (its own, then those it inherits), in the
        order the simulator tries them on entry."""
        return [r for eff in self.chart.effective(st) if eff.trigger == "fact" for r in eff.rules]

    def timers(self, st: str) -> list[dict]:
        return [h for n in self.chart.chain(st) for h in self.graph.nodes[n].get("handlers") or () if h.get("trigger") == "timer" and h.get("timer")]

    def _owner(self, h: dict) -> str | None:
        """The state that declares timer handler `h`."""
        k = (h.get("rules") or [None])[0]
        return self.edges[k]["id"].split("/", 1)[0] if k in self.edges else None

    def zero_time_edges(self):
        """(atomic state, atomic state entered, the rule's edge) for every rule that can fire on
        entering its state (a choice's alternatives each with its own edge)."""
        ch = self.chart
        for st in ch.atomic:
            rules = [r for r in self.at_once(st)]
            for h in self.timers(st):
                t = h["timer"]
                if int(t.get("amount", 0)) == 0 or t.get("since"):
                    rules.extend(self.edges[k] for k in h.get("rules") or () if not self.edges[k].get("alternative"))
            for r in rules:
                for e, target in ch.alternatives(r):
                    if e.get("stay") or e["id"] in self.dead:
                        continue
                    for a in ch.transition(e, target=target).atomic:
                        yield st, a, e

    def base(self, edge: dict) -> dict:
        """The rule an alternative's edge belongs to (its guard, its place in the handler)."""
        return self.edges[edge["id"].split("@", 1)[0]] if edge.get("alternative") else edge

    def fires_on_entry(self, st: str, rule: dict, env: smt.Env, entered: set | None = None):
        """The condition (in `env`) under which `rule` is the one that fires on entering `st`."""
        enc = self.enc
        rule = self.base(rule)
        g = lambda r: self._cond(r, env)  # noqa: E731
        facts = self.at_once(st)
        mode = self.at_once_mode(st)
        if rule in facts:
            i = facts.index(rule)
            return self._fires(facts, i, mode, g)
        # a timer rule: no `on fact` rule moved the patient first ...
        conds = [enc.neg(self._first_is_transition(facts, mode, g))]
        # the timers armed on entry: those of the states entered (a timer of a state around
        # `st` that the patient did not leave is not armed again)
        handlers = [h for h in self.timers(st) if entered is None or self._owner(h) in entered]
        for h in handlers:
            rules = [self.edges[k] for k in h.get("rules") or ()]
            hmode = h.get("mode") or "first"
            if rule in rules:
                conds += [self._due(h, env), self._fires(rules, rules.index(rule), hmode, g)]
                return enc.conj(*conds)
            # ... and no timer before it in the list, due now, moved the patient
            conds.append(enc.neg(enc.conj(self._due(h, env), self._first_is_transition(rules, hmode, g))))
        return enc.F

    def at_once_mode(self, st: str) -> str:
        """The simulator tries every `on fact` rule of a state as one handler: exclusive when
        every one of its handlers is."""
        modes = [h.get("mode") or "first" for n in self.chart.chain(st) for h in self.graph.nodes[n].get("handlers") or () if h.get("trigger") == "fact"]
        return "exclusive" if modes and all(m == "exclusive" for m in modes) else "first"

    def _cond(self, rule: dict, env: smt.Env) -> smt.Boo:
        b = self.enc.cond(rule.get("guard"))
        return smt.Boo(env.subst(b.t), env.subst(b.f))

    def _fires(self, rules: list[dict], i: int, mode: str, g):
        """Rule i of `rules` fires (three-valued first hit; exclusive: a true guard fires)."""
        enc = self.enc
        if mode == "exclusive" and not rules[i].get("otherwise"):
            return enc.conj(g(rules[i]).t, *(enc.neg(g(r).t) for r in rules[:i]))
        return enc.conj(g(rules[i]).t, *(g(r).f for r in rules[:i]))

    def _first_is_transition(self, rules: list[dict], mode: str, g):
        return self.enc.disj(*(self._fires(rules, i, mode, g) for i, r in enumerate(rules) if not r.get("stay")))

    def _due(self, h: dict, env: smt.Env):
        t = h["timer"]
        amount = int(t.get("amount", 0))
        if not t.get("since"):
            return self.enc.T if amount == 0 else self.enc.F
        s = self.enc.since(t["since"])
        length = self.enc.duration_days(t["since"], smt.Dur(amount, t.get("unit", "days")))
        return env.subst(self.enc.conj(s.known, s.days >= length))

    # -- the search

    def check(self, out: list[Finding]) -> None:
        zg = nx.MultiDiGraph()
        for st, a, r in self.zero_time_edges():
            zg.add_edge(st, a, key=r["id"], rule=r)
        if not zg.number_of_edges():
            return
        seen: set[frozenset] = set()
        examined = 0
        # networkx finds the cycles in an order (and rotation) that depends on hashing: put
        # each at its first state in the file, and take them in that order, for stable output
        line = {st: (d["span"]["line"], d["span"]["column"]) for st, d in self.graph.nodes(data=True)}
        found = []
        for cycle in itertools.islice(nx.simple_cycles(nx.DiGraph(zg)), MAX_CYCLES + 1):
            k = min(range(len(cycle)), key=lambda i: line[cycle[i]])
            found.append(cycle[k:] + cycle[:k])
        found.sort(key=lambda c: [line[s] for s in c])
        for cycle in found:
            hops = list(zip(cycle, cycle[1:] + cycle[:1]))
            choices = [sorted((d["rule"] for d in zg.get_edge_data(u, v).values()), key=lambda r: (r["span"]["line"], r["span"]["column"], r["id"])) for u, v in hops]
            for rules in itertools.product(*choices):
                examined += 1
                if examined > MAX_CYCLES:
                    out.append(Finding("W609", rules[0]["span"], f"the search for zero-time loops stopped after {MAX_CYCLES} cycles; the others were not checked"))
                    return
                ids = frozenset(r["id"] for r in rules)
                if ids in seen:
                    continue
                try:
                    ex = self._loops(cycle, rules)
                except Unknown as e:
                    out.append(Finding("W609", rules[0]["span"], f"the solver could not decide whether {' -> '.join([*cycle, cycle[0]])} loops without time passing ({e})"))
                    continue
                if ex is not None:
                    seen.add(ids)
                    first = min(rules, key=lambda r: (r["span"]["line"], r["span"]["column"]))
                    path = " -> ".join([*cycle, cycle[0]])
                    via = ", ".join(quote_rule(r) for r in rules)
                    when = f"e.g. with {describe(ex)}" if ex.shown else "whatever the inputs"
                    out.append(Finding("E620", first["span"], f"zero-time loop: {path} can repeat forever on one day (rules {via} fire on entry), {when}; make one of them wait for a panel, an event or a timer", ex, tuple(r["id"] for r in rules)))

    def _loops(self, cycle: list[str], rules) -> object | None:
        self.side = []
        env = self.enc.env()
        entered = (self.enc.T, self.enc.int(0))
        env.since[smt.ENTRY] = entered  # every rule here fires on the day its state is entered
        conds = []
        ins = self.enc.inputs_of([])
        ch = self.chart
        for _round in range(2):
            for i, (st, rule) in enumerate(zip(cycle, rules)):
                came_in = set(ch.transition(rules[i - 1]).entered)  # what the rule before entered
                conds.append(self.fires_on_entry(st, rule, env, came_in))
                env = self.enc.run(rule.get("actions"), env, self.side, rule.get("alternative"))
                env.since[smt.ENTRY] = entered
                for n in ch.transition(rule).entered:  # entries of what the rule enters, outermost first
                    env = self.enc.run(self.graph.nodes[n].get("entry"), env, self.side)
        for st, rule in zip(cycle, rules):
            ins = ins | self.enc.inputs_of([self.base(rule).get("guard"), *(r.get("guard") for r in self.at_once(st))])
            acts = [*smt.walk_actions(rule.get("actions"))]
            for n in ch.transition(rule).entered:
                acts.extend(smt.walk_actions(self.graph.nodes[n].get("entry")))
            ins = ins | self.enc.inputs_of(a["cond"] if a.get("kind") == "if" else a["value"] for a in acts if a.get("kind") in ("if", "set"))
            for h in self.timers(st):
                ins = ins | self.enc.inputs_of(self.edges[k].get("guard") for k in h.get("rules") or ())
                if h["timer"].get("since"):
                    ins.actions.add(h["timer"]["since"])
        return self.prover.witness([*conds, *self.side], ins)


def loops(graph, enc: smt.Encoder, prover: Prover, dead: set[str], out: list[Finding], chart=None) -> None:
    _Loops(graph, enc, prover, dead, chart).check(out)
