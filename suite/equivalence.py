"""Is a mutant equivalent to its protocol? The verifier's semantics decide (compiler/verify/smt.py).

Two protocols *decide the same* when, in every state, every handler picks the same behaviour
for every input: the same rule (by what it does: its target and actions, so that two swapped
rules that do the same count as the same), or both nothing, or both unassessable, given strict
first match (DMN first hit) or the handler's `exclusive` mode, three-valued as at run time;
and every `if` of the actions takes the same branch. That is asked of z3 for every handler
whose guards, or the derived values they read, the mutant changed: unsatisfiable everywhere
means equivalent; a model is a concrete input on which the two differ, which the report shows.

Only edits inside conditions are decided this way (`mutants.GUARD_OPERATORS`); a flipped fact
default is decided by `same_default` (the protocol with the fact fixed at each value, compared
the same way); for the other operators `witness` finds an input on which the mutated rule fires
(the mutant's difference shows there), or proves that it never fires (then the mutant is
equivalent).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Mapping

import z3

from rxwatch.compiler.verify import smt
from rxwatch.compiler.verify.prover import budget, describe
from rxwatch.compiler.verify.tables import above, panel_context, stuck

# One question's budget is the verifier's (prover.Z3_RLIMIT, counted work, not seconds): a mutant
# z3 cannot decide within it counts as not equivalent (survived), on every machine alike.


@dataclass
class Verdict:
    equivalent: bool
    witness: str = ""  # an input on which the two differ (or on which the mutated rule fires)
    state: str | None = None  # where (the state whose handler the input is for)
    example: Any = None  # that input (smt.Example), when there is one


def _strip(x: Any) -> Any:
    """A tree without its spans and source ids: what a rule does, not where it is written."""
    if isinstance(x, Mapping):
        return {k: _strip(v) for k, v in x.items() if k not in ("span", "sources", "citations")}
    if isinstance(x, list):
        return [_strip(v) for v in x]
    return x


def _does(edge: Mapping) -> str:
    return json.dumps([edge.get("stay"), edge.get("_target"), _strip(edge.get("actions"))], sort_keys=True)


def _masked(x: Any) -> Any:
    """Actions with the conditions of their `if`s left out (compared apart, position by position)."""
    if isinstance(x, Mapping):
        return {k: (None if k in ("cond", "text") and x.get("kind") == "if" else _masked(v)) for k, v in x.items()}
    if isinstance(x, list):
        return [_masked(v) for v in x]
    return x


def _does_but_ifs(edge: Mapping) -> str:
    return json.dumps([edge.get("stay"), edge.get("_target"), _strip(_masked(edge.get("actions")))], sort_keys=True)


def _handlers(graph) -> dict:
    """(state, handler index) -> (handler, its rule edges in order, each with `_target`)."""
    edges = {}
    for u, v, k, d in graph.edges(keys=True, data=True):
        e = dict(d)
        e["_target"] = v
        edges[k] = e
    out = {}
    for state, data in graph.nodes(data=True):
        for i, h in enumerate(data.get("handlers") or ()):
            out[(state, i)] = (h, [edges[k] for k in h.get("rules") or () if k in edges])
    return out


def _ifs(actions, prefix=()) -> list:
    out = []
    for i, a in enumerate(actions or ()):
        if a.get("kind") == "if":
            out.append(((*prefix, i), a))
            out += _ifs(a.get("then"), (*prefix, i, "then"))
            out += _ifs(a.get("else"), (*prefix, i, "else"))
    return out


def fires(enc: smt.Encoder, h: Mapping, rules: list, i: int):
    """The z3 formula: rule i of the handler (whose rules up to i are `rules`) fires."""
    conds = [enc.cond(r.get("guard")) for r in rules[: i + 1]]
    first = above([c.t for c in conds], [c.f for c in conds], rules, i, h.get("mode") == "exclusive")
    return z3.And(conds[i].t, *first) if first else conds[i].t


def _decisions(enc: smt.Encoder, h: Mapping, rules: list, keys: list | None = None) -> tuple[dict, Any]:
    """{what a rule does: the formula 'it fires'}, and the formula 'unassessable'. `keys`: what
    each rule does, when given (instead of `_does`)."""
    conds = [enc.cond(r.get("guard")) for r in rules]
    ts, fs = [c.t for c in conds], [c.f for c in conds]
    exclusive = h.get("mode") == "exclusive"
    by_does: dict[str, list] = {}
    for i, (r, c) in enumerate(zip(rules, conds)):
        first = above(ts, fs, rules, i, exclusive)
        by_does.setdefault(keys[i] if keys else _does(r), []).append(z3.And(c.t, *first) if first else c.t)
    return {k: z3.Or(*v) for k, v in by_does.items()}, stuck(ts, fs, rules, exclusive, enc.F)


class _Pair:
    """The protocol and a mutant encoded over one set of z3 symbols."""

    def __init__(self, original, mutant) -> None:
        self.a = smt.Encoder(original)
        self.b = smt.Encoder(mutant)
        # one context: a lab, fact or var is the same symbol in both (symbols are named)
        self.b.ctx, self.b.T, self.b.F = self.a.ctx, self.a.T, self.a.F
        self.b.codes = self.a.codes
        # and one set of input symbols: `since(A) < 5 months` and `< 6 months` then share the
        # calendar's joint month lengths (derived values stay each protocol's own)
        self.b._lab, self.b._fact, self.b._var = self.a._lab, self.a._fact, self.a._var
        self.b._since, self.b._fulfilled = self.a._since, self.a._fulfilled

    def _expanded(self, enc: smt.Encoder, trees) -> str:
        ins = enc.inputs_of(trees)
        return json.dumps([[_strip(t) for t in trees], [(n, _strip(enc.lets[n]["expr"])) for n in ins.lets]], sort_keys=True)

    def solver(self) -> z3.Solver:
        return budget(z3.Solver(ctx=self.a.ctx))

    def differ(self, original, mutant, ifs: bool = True) -> Verdict:
        ha, hb = _handlers(original), _handlers(mutant)
        for key, (h, rules_a) in ha.items():
            if key not in hb:
                return Verdict(False, f"state {key[0]}: a handler is missing")
            _, rules_b = hb[key]
            trees_a = [r.get("guard") for r in rules_a]
            trees_b = [r.get("guard") for r in rules_b]
            if ([_does(r) for r in rules_a] == [_does(r) for r in rules_b]
                    and self._expanded(self.a, trees_a) == self._expanded(self.b, trees_b)):
                continue  # the same handler, word for word
            keys_b = None
            if ifs and len(rules_a) == len(rules_b) and all(
                    _does_but_ifs(x) == _does_but_ifs(y) for x, y in zip(rules_a, rules_b)):
                # the rules do the same but for the conditions of their `if`s (compared below,
                # position by position): the mutant's rule i does what the protocol's rule i does
                keys_b = [_does(r) for r in rules_a]
            fa, ua = _decisions(self.a, h, rules_a)
            fb, ub = _decisions(self.b, h, rules_b, keys_b)
            diffs = [ua != ub]
            for does in set(fa) | set(fb):
                diffs.append(fa.get(does, self.a.F) != fb.get(does, self.a.F))
            found = self._ask(z3.Or(*diffs), h, trees_a + trees_b)
            if found is not None:
                return Verdict(False, f"state {key[0]}, {_trigger(h)}: {found[0]}", key[0], found[1])
        # the conditions of `if`, in entries and in rules (rules moved or left out: compared above)
        for (state, where, acts_a, acts_b) in (_action_lists(original, mutant) if ifs else ()):
            ifs_a, ifs_b = _ifs(acts_a), _ifs(acts_b)
            if [p for p, _ in ifs_a] != [p for p, _ in ifs_b]:
                return Verdict(False, f"state {state}: {where} changed")
            for (_, x), (_, y) in zip(ifs_a, ifs_b):
                if self._expanded(self.a, [x["cond"]]) == self._expanded(self.b, [y["cond"]]):
                    continue
                found = self._ask(self.a.cond(x["cond"]).t != self.b.cond(y["cond"]).t, {}, [x["cond"], y["cond"]])
                if found is not None:
                    return Verdict(False, f"state {state}, {where}: `if {x.get('text', '')}`: {found[0]}", state, found[1])
        return Verdict(True)

    def _ask(self, question, h: Mapping, trees) -> tuple[str, Any] | None:
        s = self.solver()
        if h.get("trigger") == "panel":
            s.add(panel_context(self.a))
        s.add(question)
        s.add(*self.a.domain(), *self.b.domain())  # every symbol's, those made for earlier questions too
        verdict = s.check()
        if verdict == z3.unsat:
            return None
        if verdict == z3.unknown:
            return "the solver could not decide (counted as different)", None
        ins = self.a.inputs_of(trees)
        ex = self.a.example(s.model(), ins)
        return describe(ex) or "any input", ex


def _trigger(h: Mapping) -> str:
    t = h.get("trigger")
    if t == "event":
        return "on event " + ", ".join(h.get("events") or ())
    if t == "fact":
        return "on fact " + ", ".join(h.get("facts") or ()) if h.get("facts") else "on fact"
    if t == "timer":
        timer = h.get("timer") or {}
        return f"after {timer.get('amount')} {timer.get('unit')}"
    return "on panel"


def _action_lists(a, b):
    for state, data in a.nodes(data=True):
        if state in b.nodes:
            yield state, "on entry", data.get("entry") or [], b.nodes[state].get("entry") or []
    ea = {(u, d.get("handler"), d.get("order")): d for u, _, d in a.edges(data=True)}
    eb = {(u, d.get("handler"), d.get("order")): d for u, _, d in b.edges(data=True)}
    for key, d in ea.items():
        if key in eb:
            yield key[0], f"the rule at line {d['span']['line']}", d.get("actions") or [], eb[key].get("actions") or []


def equivalent(original, mutant, *, moved_rules: bool = False) -> Verdict:
    """Do the two compiled protocols decide the same on every input (guards and conditions)?
    `moved_rules`: the mutant moved or left out a rule (its `if`s are then compared as part of
    what each rule does, not position by position)."""
    return _Pair(original, mutant).differ(original, mutant, ifs=not moved_rules)


def _literal(decl: Mapping, value) -> dict:
    kind = decl.get("type")
    if kind == "bool":
        return {"op": "bool", "value": bool(value)}
    if kind == "enum":
        return {"op": "enum", "value": value}
    return {"op": "num", "value": value}


def _fixed(x: Any, name: str, lit: dict) -> Any:
    """`x` (any part of a compiled graph) with every read of the fact `name` replaced by `lit`."""
    if isinstance(x, Mapping):
        if x.get("op") == "fact" and x.get("name") == name:
            return dict(lit)
        return {k: _fixed(v, name, lit) for k, v in x.items()}
    if isinstance(x, list):
        return [_fixed(v, name, lit) for v in x]
    return x


def with_fact(graph, name: str, value):
    """A copy of the compiled protocol in which the fact `name` always has `value`: every
    expression that reads it (guards, derived values, conditions of `if`) reads the constant."""
    decl = (graph.graph.get("facts") or {})[name]
    lit = _literal(decl, value)
    g = graph.copy()
    g.graph = {**graph.graph, "lets": {k: _fixed(v, name, lit) for k, v in (graph.graph.get("lets") or {}).items()}}
    for n, data in graph.nodes(data=True):
        g.nodes[n].update(_fixed(dict(data), name, lit))
    for u, v, k, data in graph.edges(keys=True, data=True):
        g.edges[u, v, k].update(_fixed(dict(data), name, lit))
    return g


def same_default(graph, mutant) -> Verdict:
    """A flipped fact default (`indication default other` -> `... default rheumatoid_arthritis`):
    the default is what a patient whose timeline never gives the fact has, for the whole replay.
    Equivalent when the protocol decides the same with the fact fixed at the old value as with it
    fixed at the new one, for every other input (every handler, every `if`): no expression tells
    the two values apart (an enumeration's members that every `in` test puts on the same side).
    Otherwise the witness is such a patient and the input on which the two decide differently."""
    old_facts, new_facts = graph.graph.get("facts") or {}, mutant.graph.get("facts") or {}
    changed = [n for n, d in old_facts.items()
               if n in new_facts and (d.get("has_default"), d.get("default")) !=
               (new_facts[n].get("has_default"), new_facts[n].get("default"))]
    if len(changed) != 1 or not old_facts[changed[0]].get("has_default") or not new_facts[changed[0]].get("has_default"):
        return Verdict(False, "a patient whose timeline does not give this fact")
    name = changed[0]
    a = with_fact(graph, name, old_facts[name]["default"])
    b = with_fact(graph, name, new_facts[name]["default"])
    v = _Pair(a, b).differ(a, b)
    if v.equivalent:
        return Verdict(True, f"no condition tells {name} = {old_facts[name]['default']} from "
                             f"{name} = {new_facts[name]['default']}")
    return Verdict(False, f"a patient whose timeline does not give {name}: {v.witness}", v.state, v.example)


def witness(graph, line: int) -> Verdict:
    """For an edit at `line` outside a condition: an input on which the rule written there
    fires (the mutant acts differently there), or, when it never fires, equivalence."""
    enc = smt.Encoder(graph)
    for state, (h, rules) in _handlers(graph).items():
        for i, r in enumerate(rules):
            span = r.get("span") or {}
            if not (span.get("line", 0) <= line <= span.get("end_line", 0)):
                continue
            fa, _ = _decisions(enc, h, rules[: i + 1])
            fire = fa.get(_does(r))
            s = budget(z3.Solver(ctx=enc.ctx))
            if h.get("trigger") == "panel":
                s.add(panel_context(enc))
            s.add(fire)
            s.add(*enc.domain())
            verdict = s.check()
            if verdict == z3.unsat:
                return Verdict(True, f"the rule at line {line} never fires")
            where = f"state {state[0]}, {_trigger(h)}"
            if verdict == z3.unknown:
                return Verdict(False, f"{where}: whenever the rule at line {line} fires")
            ex = enc.example(s.model(), enc.inputs_of(x.get("guard") for x in rules[: i + 1]))
            return Verdict(False, f"{where}: {describe(ex) or 'any input'} (the rule at line {line} fires)", state[0], ex)
    for state, data in graph.nodes(data=True):
        for a in data.get("entry") or ():
            span = a.get("span") or {}
            if span.get("line", 0) <= line <= span.get("end_line", 0):
                return Verdict(False, f"entering state {state}")
    return Verdict(False, "")
