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


def must_recommended(graph) -> dict[str, set[str]]:
    """state -> the actions that every way into it has recommended (a `do` of a rule on the
    way, or of a state's entry; not inside an `if`, not a `do one of`): in that state,
    since(A) of such an action is always known. A must-analysis to a fixed point."""
    def done(actions) -> set[str]:
        return {a["action"] for a in actions or () if a.get("kind") == "do"}

    initial = graph.graph.get("initial")
    every = set(graph.graph.get("actions") or ())
    must = {st: set(every) for st in graph.nodes}
    if initial in must:
        must[initial] = done(graph.nodes[initial].get("entry"))
    edges = [(u, v, d) for u, v, d in graph.edges(data=True) if not d.get("stay") and v != initial]
    changed = True
    while changed:
        changed = False
        for u, v, d in edges:
            came = must[u] | done(d.get("actions")) | done(graph.nodes[v].get("entry"))
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
    def __init__(self, graph, enc: smt.Encoder, prover: Prover, dead: set[str]) -> None:
        self.graph = graph
        self.enc = enc
        self.prover = prover
        self.dead = dead
        self.edges = {k: d for _, _, k, d in graph.edges(keys=True, data=True)}
        self.targets = {k: v for _, v, k in graph.edges(keys=True)}
        self.side: list = []  # domain constraints of fresh choices

    # -- which rules fire on entry, and when

    def at_once(self, st: str) -> list[dict]:
        """The `on fact` rules of `st`, in the order the simulator tries them on entry."""
        out = []
        for h in self.graph.nodes[st].get("handlers") or ():
            if h.get("trigger") == "fact":
                out.extend(self.edges[k] for k in h.get("rules") or ())
        return out

    def timers(self, st: str) -> list[dict]:
        return [h for h in self.graph.nodes[st].get("handlers") or () if h.get("trigger") == "timer" and h.get("timer")]

    def zero_time_edges(self):
        """(source, target, rule) for every rule that can fire on entering its state."""
        for st in self.graph.nodes:
            for r in self.at_once(st):
                if not r.get("stay") and r["id"] not in self.dead:
                    yield st, self.edges[r["id"]]
            for h in self.timers(st):
                t = h["timer"]
                if int(t.get("amount", 0)) == 0 or t.get("since"):
                    for k in h.get("rules") or ():
                        r = self.edges[k]
                        if not r.get("stay") and k not in self.dead:
                            yield st, r

    def fires_on_entry(self, st: str, rule: dict, env: smt.Env):
        """The condition (in `env`) under which `rule` is the one that fires on entering `st`."""
        enc = self.enc
        g = lambda r: self._cond(r, env)  # noqa: E731
        facts = self.at_once(st)
        mode = self.at_once_mode(st)
        if rule in facts:
            i = facts.index(rule)
            return self._fires(facts, i, mode, g)
        # a timer rule: no `on fact` rule moved the patient first ...
        conds = [enc.neg(self._first_is_transition(facts, mode, g))]
        handlers = self.timers(st)
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
        modes = [h.get("mode") or "first" for h in self.graph.nodes[st].get("handlers") or () if h.get("trigger") == "fact"]
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
        for st, r in self.zero_time_edges():
            zg.add_edge(st, self.targets[r["id"]], key=r["id"], rule=r)
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
            choices = [sorted((d["rule"] for d in zg.get_edge_data(u, v).values()), key=lambda r: (r["span"]["line"], r["span"]["column"])) for u, v in hops]
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
        for _round in range(2):
            for st, rule in zip(cycle, rules):
                conds.append(self.fires_on_entry(st, rule, env))
                env = self.enc.run(rule.get("actions"), env, self.side)
                target = self.graph.nodes[self.targets[rule["id"]]]
                env.since[smt.ENTRY] = entered
                env = self.enc.run(target.get("entry"), env, self.side)
        for st, rule in zip(cycle, rules):
            ins = ins | self.enc.inputs_of([rule.get("guard"), *(r.get("guard") for r in self.at_once(st))])
            acts = [*smt.walk_actions(rule.get("actions")), *smt.walk_actions(self.graph.nodes[self.targets[rule["id"]]].get("entry"))]
            ins = ins | self.enc.inputs_of(a["cond"] if a.get("kind") == "if" else a["value"] for a in acts if a.get("kind") in ("if", "set"))
            for h in self.timers(st):
                ins = ins | self.enc.inputs_of(self.edges[k].get("guard") for k in h.get("rules") or ())
                if h["timer"].get("since"):
                    ins.actions.add(h["timer"]["since"])
        return self.prover.witness([*conds, *self.side], ins)


def loops(graph, enc: smt.Encoder, prover: Prover, dead: set[str], out: list[Finding]) -> None:
    _Loops(graph, enc, prover, dead).check(out)
