"""Generated scenario cases: `rxwatch cases PROTOCOL -o DIR`.

Cases a tester reviews and keeps, each marked as generated, each with the expectations the
protocol gives today (so that a later change of behaviour fails them, and a reviewer reads
what the protocol does):

- **reach** cases: for every rule, a shortest timeline found that reaches its state and fires
  it. The search goes over timelines, one move at a time (a panel, a clinical event, a fact
  change, or waiting for a timer), from the initial state: breadth first, then best first
  toward the rules still missing (`Generator.search`); the engine replays every candidate, so
  a case is only kept when the rule did fire in the replay. The values of a panel come from
  the verifier (a z3 model of "this rule fires" in the handler, compiler/verify/smt.py); its
  date from what the model needs of `since(...)`, `since entry` and `fulfilled(...)`, given
  the dates the replay so far gives. A choice's later alternative is chosen by a recorded
  `choice`; an event or fact rule that reads the panel gets the model's results that day.
- **boundary** cases: for every comparison of a guard with a number (`tx > 5`), the values just
  on each side of the threshold at the lab's precision (ALT 200 and 201 U/L for 5 x ULN 40):
  the model is asked for the least value above and the greatest value at or below the
  threshold (z3's optimiser), with the rules above still false so that the comparison decides.
- **survivor** cases (`--for-survivors`): for each mutant that survived the last `rxwatch test
  --mutants` run, a timeline on which the protocol and the mutant give different traces
  (found among the reach and boundary timelines and the mutant's own witness), with the
  protocol's expectations: it kills that mutant.

What cannot be found within the search's budget is listed, never silently left out.
"""

from __future__ import annotations

import datetime
import heapq
import itertools
import json
import re
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Iterable, Mapping

import z3

from rxwatch.compiler.verify import prover, smt
from rxwatch.compiler.verify.tables import panel_context

from .equivalence import fires


START = datetime.date(2025, 1, 6)
# timelines replayed by each pass of the search before it gives up. 2500: anakinra's positive
# rechallenge from persistent_elevation takes five panels (a moderate rise, a normal one that
# resumes, a side rise, a mild one 14 days into the episode, a moderate one) and is found after
# 3,052 replays in all; at 1500 the search gave up on it (3,000 replays, about the same time)
MAX_PREFIXES = 2500
MAX_MOVES = 14  # moves in one timeline
_FAR = 1 << 30  # no rule still to be found is reachable
MAX_TRIES = 40  # timelines extended toward a missing rule before the search stops heading for it
TRIES_PER_STEP = 4  # a missing rule tried this often in vain weighs as one more rule to fire
Z3_RLIMIT = 2_000_000
"""One z3 query's budget here, in z3's resource units (`rlimit`), not in seconds: a query cut
off by a wall-clock timeout stops wherever the machine's speed and load left it, and since all
the queries share the encoder's z3 context, where it stopped changes the terms and models of
every later query (tocilizumab's `PLT < 50000`, whose optimum z3 never finds, made about 20
boundary cases differ from run to run). Counted work stops at the same point on every run and
machine. Smaller than the verifier's (prover.Z3_RLIMIT): a query that cannot be answered costs
its whole budget, and ten of tocilizumab's never are. The largest query the shipped
protocols answer takes under 0.9 million units."""


@dataclass
class Generated:
    name: str  # file name, without .yaml
    kind: str  # reach, boundary, survivor
    about: str  # what the case shows, for its description
    rule: str  # the rule (edge key) it is about, or ""
    text: str = ""  # the case file
    prefix: "Prefix | None" = None  # its timeline, for a later search (killing survivors)


@dataclass
class Prefix:
    facts: dict = field(default_factory=dict)  # given at start (names the protocol declares)
    rows: list = field(default_factory=list)  # timeline events as dicts, dates as ISO text
    until: datetime.date = START
    trace: dict | None = None
    moves: int = 0  # the search's moves that made it (a day's inputs, or a wait for a timer)

    def extended(self, rows: list, until: datetime.date) -> "Prefix":
        return Prefix(dict(self.facts), self.rows + rows, max(until, self.until), moves=self.moves + 1)


def _days_at_most(d: Mapping) -> int:
    """The most days a duration `{amount, unit}` of the graph can span (a month as 31 days, a
    year as 366): how far to wait for a timer, or for a result to stop being valid."""
    per = {"day": 1, "week": 7, "month": 31, "year": 366}.get(str(d.get("unit", "days")).rstrip("s"), 1)
    return int(d.get("amount", 0)) * per


def _iso(d: datetime.date) -> str:
    return d.isoformat()


def _date(s: str) -> datetime.date:
    return datetime.date.fromisoformat(s[:10])


def _num(v) -> Any:
    """A JSON number for an exact value: an int, or the shortest decimal that is exact, else a float."""
    q = Fraction(v)
    if q.denominator == 1:
        return int(q)
    for places in range(1, 10):
        scaled = q * 10 ** places
        if scaled.denominator == 1:
            return float(f"{float(q):.{places}f}")
    return float(q)


class Generator:
    def __init__(self, graph, path: str = "<protocol>") -> None:
        from rxwatch.simulator.engine import Machine

        self.graph = graph
        self.path = path
        self.machine = Machine(graph)
        self.enc = smt.Encoder(graph)
        self.edges = {k: d for _, _, k, d in graph.edges(keys=True, data=True)}
        self.targets = {k: v for _, v, k in graph.edges(keys=True)}
        self.labs = graph.graph.get("labs") or {}
        self.facts_decl = graph.graph.get("facts") or {}
        self._examples: dict = {}
        self.replays = 0
        self._away: tuple = (None, {})  # (the rules it was made for, `away`'s distances)
        alts: dict[str, list[tuple[int, str]]] = {}  # a rule -> its choice's later alternatives
        for k, d in self.edges.items():
            if (d.get("alternative") or 0) > 0:
                alts.setdefault(k.split("@")[0], []).append((d["alternative"], k))
        self._variants = {k: [x for _, x in sorted(v)] for k, v in alts.items()}

    # ---------------------------------------------------------------- replay

    def replay(self, p: Prefix) -> dict | None:
        from rxwatch.inputs import yamlsrc
        from rxwatch.simulator.engine import SimulationError
        from rxwatch.inputs.model import TimelineError
        from rxwatch.inputs.yamljson import parse_timeline

        if p.trace is not None:
            return p.trace
        doc = self.document(p)
        text = json.dumps(doc)
        self.replays += 1
        try:
            tl = parse_timeline(yamlsrc.load_json(text, "<generated>") or yamlsrc.load(text, "<generated>"),
                                "<generated>", self.graph.graph)
            p.trace = self.machine.run(tl)
        except (TimelineError, SimulationError):
            return None
        return p.trace

    def document(self, p: Prefix) -> dict:
        doc: dict = {"patient": {"id": "generated"}, "start": _iso(START), "until": _iso(p.until)}
        if p.facts:
            doc["patient"]["facts"] = {k: _num(v) if isinstance(v, (int, Fraction)) and not isinstance(v, bool) else v
                                       for k, v in p.facts.items()}
        doc["events"] = p.rows
        return doc

    # ---------------------------------------------------------------- the search

    def active(self, trace: Mapping) -> list[str]:
        states = trace.get("final_states") or [trace.get("final_state")]
        out = []
        for s in states:
            while s is not None and s not in out:
                out.append(s)
                s = self.graph.nodes[s].get("parent") if s in self.graph.nodes else None
        return out

    def fired(self, trace: Mapping, key: str, day: datetime.date) -> bool:
        canonical = self.edges[key].get("rule") or key
        for s in trace.get("steps", ()):
            if s.get("type") == "transition" and s.get("date") == _iso(day):
                if s.get("rule") in (key, canonical):
                    return True
        return False

    def context(self, trace: Mapping, facts: Mapping, watched: frozenset = frozenset()) -> tuple[tuple, list]:
        """What the replay so far fixes of a guard's inputs: the facts, which actions were ever
        recommended, which orders are open (fulfilled() is false for the others), the variables
        (from the trace's `set` steps, else their defaults while no `set` has run)."""
        enc = self.enc
        steps = trace.get("steps", ())
        done = {s.get("action") for s in steps if s.get("type") == "action"}
        open_ = {o.get("action") for o in trace.get("open_orders", ())}
        values: dict[str, Any] = {}
        for name, decl in self.facts_decl.items():
            v = facts.get(name, _default(decl))
            if v is not None:
                values[("fact", name)] = v
        sets = [s for s in steps if s.get("type") == "set"]
        for name, decl in (self.graph.graph.get("vars") or {}).items():
            mine = [s for s in sets if s.get("var") == name]
            if mine:
                values[("var", name)] = mine[-1].get("value")
            elif decl.get("has_default") and not self.sets_anywhere(name):
                values[("var", name)] = _default(decl)
        out = []
        for (what, name), v in values.items():
            if what == "fact" and name in watched:
                continue  # the handler reacts to its change: the move sets it
            syms = enc.fact(name) if what == "fact" else enc.var(name)
            want = _z3_value(enc, syms.kind, v)
            if want is None:
                out.append(z3.Not(syms.known))
            else:
                out.append(z3.And(syms.known, syms.value == want))
        for name in self.graph.graph.get("actions") or {}:
            out.append(enc.since(name).known if name in done else z3.Not(enc.since(name).known))
            if name not in open_:
                out.append(z3.Not(enc.fulfilled(name)) if not z3.is_false(enc.fulfilled(name)) else enc.T)
        key = (json.dumps(sorted(((a, b), str(c)) for (a, b), c in values.items())), tuple(sorted(done)),
               tuple(sorted(open_)), tuple(sorted(watched)))
        return key, out

    def sets_anywhere(self, var: str) -> bool:
        """Some `set` of the protocol assigns `var` (its value then depends on the path)."""
        if not hasattr(self, "_set_vars"):
            self._set_vars = {a.get("var") for actions in smt.all_action_lists(self.graph)
                              for a in smt.walk_actions(actions) if a.get("kind") == "set"}
        return var in self._set_vars

    def entry_conditions(self, key: str) -> list[Mapping]:
        """The conditions of the `if`s, in the entry actions of the state rule `key` leads to
        (and of the states around it), whose actions `set` a variable: what such an entry
        remembers can decide later rules (anakinra's `stopped`, entered with neutrophils below
        1.0, follows them: `follow_anc`), and only a move whose panel also makes the condition
        true gets there."""
        target = self.targets.get(key)
        if target is None or self.edges[key].get("stay"):
            return []
        out: list[Mapping] = []
        node = target
        while node is not None:
            data = self.graph.nodes[node]
            out += [a["cond"] for a in smt.walk_actions(data.get("entry")) if a.get("kind") == "if"
                    and a.get("cond") is not None and any(x.get("kind") == "set" for x in smt.walk_actions(a.get("then")))]
            node = data.get("parent")
        return out

    def example(self, state: str, hi: int, i: int, trace: Mapping | None = None, facts: Mapping | None = None,
                also: Mapping | None = None) -> smt.Example | None:
        """A model of rule i of handler hi of `state` firing, in the context the replay so far
        fixes (`trace`, `facts`); with `also`, a condition the model must make true too."""
        h = self.graph.nodes[state]["handlers"][hi]
        watched = frozenset(h.get("facts") or ()) if h.get("trigger") == "fact" else frozenset()
        ckey, constraints = self.context(trace, facts or {}, watched) if trace is not None else ((), [])
        key = (state, hi, i, ckey, None if also is None else json.dumps(also, sort_keys=True))
        if key in self._examples:
            return self._examples[key]
        rules = [self.edges[k] for k in h.get("rules") or ()][: i + 1]
        enc = self.enc
        s = prover.budget(z3.Solver(ctx=enc.ctx), Z3_RLIMIT)
        s.add(fires(enc, h, rules, i))
        if also is not None:
            s.add(enc.cond(also).t)
        s.add(*constraints)
        if h.get("trigger") == "panel":
            s.add(panel_context(enc))
        s.add(*enc.domain())  # every symbol's, those made for earlier solvers too
        ex = None
        if s.check() == z3.sat:
            ex = enc.example(s.model(), enc.inputs_of([*(r.get("guard") for r in rules), also]))
        self._examples[key] = ex
        return ex

    def moves(self, p: Prefix, trace: Mapping, state: str, hi: int, i: int, key: str | None = None) -> Iterable[Prefix]:
        """Candidate timelines that extend `p` so that rule i of handler hi of `state` fires
        (its alternative `key`, when given: a choice's later alternative, chosen that day)."""
        h = self.graph.nodes[state]["handlers"][hi]
        last = max([_date(r["date"]) for r in p.rows] + [START, p.until])
        ex = self.example(state, hi, i, trace, p.facts)
        if ex is None and p.rows:
            return
        if ex is None:  # at the start the facts are free: what the rule needs decides them
            ex = self.example(state, hi, i)
            if ex is None:
                return
        key = key or h["rules"][i]
        yield from self.placed(p, trace, state, h, ex, last, key)
        # the same rule with a panel that also makes true an `if` of the entry it leads to
        for cond in self.entry_conditions(key) if p.rows else ():
            also = self.example(state, hi, i, trace, p.facts, also=cond)
            if also is not None and also.panel != ex.panel:
                yield from self.placed(p, trace, state, h, also, last, key)

    def placed(self, p: Prefix, trace: Mapping, state: str, h: Mapping, ex: smt.Example, last: datetime.date,
               key: str) -> Iterable[Prefix]:
        """The candidates of `moves` for one model `ex` of the rule `key` firing."""
        watched = set(h.get("facts") or ()) if h.get("trigger") == "fact" else set()
        if any(p.facts.get(k, _default(self.facts_decl.get(k))) != v for k, v in ex.facts.items() if k not in watched):
            if not p.rows:  # facts are given at the start: a new root
                yield Prefix({**p.facts, **{k: v for k, v in ex.facts.items()}}, [], START)
            return
        days = self.dates(trace, state, ex, last)
        trigger = h.get("trigger")
        chosen = self.chosen(key)
        for day in days:
            # a choice's later alternative is taken when the day records the choice of its action
            choice = [{"date": _iso(day), "choice": chosen}] if chosen is not None else []
            rows = []  # the results the model gives, on that day
            for lab, value in ex.panel.items():
                if value is None:
                    continue
                row = {"date": _iso(day), "lab": lab, "value": _num(value)}
                if lab in ex.ulns:
                    row["uln"] = _num(ex.ulns[lab])
                rows.append(row)
            rows += self.fulfilling(p, ex, rows, day)
            if trigger == "panel":
                if not rows:  # a panel needs a result: one of a lab the guards do not read
                    lab = next(iter(self.labs))
                    rows.append({"date": _iso(day), "lab": lab, "value": 1})
                yield p.extended(choice + rows, day)
                partial = self.unfulfilling(p, ex, rows, last, day)
                if partial is not None:
                    yield p.extended(choice + partial, day)
            elif trigger == "event":
                events = h.get("events") or []
                if events:
                    event = [{"date": _iso(day), "event": events[0]}]
                    yield p.extended(choice + event, day)
                    if rows:  # a guard that reads the panel: the day's results come before its events
                        yield p.extended(choice + rows + event, day)
                        yield from self.read_before(p, rows, choice + event, last, day)
            elif trigger == "fact":
                changes = [{"date": _iso(day), "fact": name, "value": ex.facts[name]}
                           for name in (h.get("facts") or list(ex.facts)) if name in ex.facts]
                if changes:
                    yield p.extended(choice + changes, day)
                    if rows:
                        yield p.extended(choice + rows + changes, day)
                        yield from self.read_before(p, rows, choice + changes, last, day)
            elif trigger == "timer":
                t = h.get("timer") or {}
                n = _days_at_most(t)
                yield Prefix(dict(p.facts), list(p.rows), max(p.until, last) + datetime.timedelta(days=n + 1),
                             moves=p.moves + 1)
                return

    def fulfilling(self, p: Prefix, ex: smt.Example, rows: list, day: datetime.date) -> list:
        """Results to add to `rows` so that they fulfil each order the rule needs fulfilled
        (`fulfilled(A)` true): the labs of its first alternative that `rows` lack (tocilizumab's
        `order_cbc` wants ANC and PLT, where the platelet rule's model gives PLT alone), each at
        its latest value in `p` (nothing changes for the rules that read it), else its ULN, else 1."""
        have = {r["lab"] for r in rows}
        out: list = []
        for a, wanted in ex.fulfilled.items():
            alts = self.machine.fulfil.get(a) if wanted else None
            if not alts or any(alt <= have for alt in alts):
                continue
            for lab in self.labs:  # (in the labs' declared order)
                if lab not in alts[0] or lab in have:
                    continue
                earlier = [r for r in p.rows if r.get("lab") == lab]
                if earlier:
                    value = earlier[-1]["value"]
                else:
                    uln = (self.labs.get(lab) or {}).get("uln")
                    value = _num(uln) if uln is not None else 1
                out.append({"date": _iso(day), "lab": lab, "value": value})
                have.add(lab)
        return out

    def reads_back(self, last: datetime.date, day: datetime.date) -> bool:
        """`day` is the day after `last`, and the protocol still reads `last`'s results then
        (`results valid for` a day or more)."""
        lookback = self.machine.lookback
        return lookback is not None and lookback[0] >= 1 and day == last + datetime.timedelta(days=1)

    def read_before(self, p: Prefix, rows: list, inputs: list, last: datetime.date,
                    day: datetime.date) -> Iterable[Prefix]:
        """An event's (or fact change's) guard that reads results the state itself would act on:
        any panel in the state may leave it first (leflunomide's `other_cause` leaves on a
        normal ALT, and its `leflunomide_stopped` rule wants one). So the results come on
        `last`, before the event or fact change that entered the state that day, and `inputs`
        the day after, reading them while they are still valid (`results valid for`)."""
        if not self.reads_back(last, day):
            return
        on_last = _iso(last)
        n = 0
        while n < len(p.rows) and p.rows[-1 - n]["date"] == on_last:
            n += 1
        tail = p.rows[len(p.rows) - n:]
        if not tail or any(r.get("lab") for r in tail):  # the last day: events or fact changes only
            return
        moved = [dict(r, date=on_last) for r in rows]
        yield Prefix(dict(p.facts), p.rows[:len(p.rows) - n] + moved + tail + inputs, max(day, p.until),
                     moves=p.moves + 1)

    def unfulfilling(self, p: Prefix, ex: smt.Example, rows: list, last: datetime.date,
                     day: datetime.date) -> list | None:
        """On `day`, the day after `last`, a panel that leaves open an order the rule needs
        unfulfilled (`fulfilled(A)` false) while the labs that would fulfil it are still read
        from the results of `last` (`results valid for`): `rows` without those labs, else a
        result of a lab the order names but that fulfils nothing alone (leflunomide's TBIL for
        an order fulfilled by ALT or AST). None when the protocol reads results on their day
        only, or no result came on `last`."""
        if not self.reads_back(last, day) or not any(r.get("lab") and r["date"] == _iso(last) for r in p.rows):
            return None
        unwanted = [a for a, v in ex.fulfilled.items() if v is False and a in self.machine.fulfil]
        if not unwanted:
            return None
        fulfilling = {lab for a in unwanted for alt in self.machine.fulfil[a] for lab in alt}
        kept = [r for r in rows if r["lab"] not in fulfilling]
        if kept:
            return kept
        named = {lab for a in unwanted for lab in self.machine.orders[a]}
        for lab in self.labs:  # (in the labs' declared order)
            if lab in named and lab not in fulfilling:
                value = ex.panel.get(lab)
                return [{"date": _iso(day), "lab": lab, "value": _num(value) if value is not None else 1}]
        return None

    def variants(self, key: str) -> list[str]:
        """Rule `key` and its choice's later alternatives (their own edges, `key@1`, ...)."""
        return [key, *self._variants.get(key, ())]

    def chosen(self, key: str) -> str | None:
        """The action of the alternative rule `key` stands for, when it is a choice's later
        alternative (the first is taken when no choice is recorded); else None."""
        data = self.edges[key]
        n = data.get("alternative") or 0
        if n <= 0:
            return None
        for a in data.get("actions") or ():
            alts = a.get("alternatives") if isinstance(a, Mapping) else None
            if alts and n < len(alts):
                return alts[n].get("action")
        return None

    def dates(self, trace: Mapping, state: str, ex: smt.Example, last: datetime.date) -> list[datetime.date]:
        """Days on which the model's `since`, `since entry` and `fulfilled` can hold."""
        steps = trace.get("steps", ())
        out: list[datetime.date] = []
        for action, when in ex.last.items():
            if when is None:
                continue
            seen = [_date(s["date"]) for s in steps if s.get("type") == "action" and s.get("action") == action]
            if seen:
                out.append(seen[-1] + (ex.today - when))
        if ex.entered is not None:
            entered = [_date(s["date"]) for s in steps if s.get("type") == "enter" and s.get("state") == state]
            if entered:
                out.append(entered[-1] + (ex.today - ex.entered))
        opens = [_date(o["window"][0]) for o in trace.get("open_orders", ()) if o.get("window")]
        wants = [a for a, v in ex.fulfilled.items() if v]
        if wants:
            out += [_date(o["window"][0]) for o in trace.get("open_orders", ())
                    if o.get("action") in wants and o.get("window")]
        out += [last + datetime.timedelta(days=1)] + opens
        # a lab the model leaves without a result: after the earlier results stop being valid
        if any(v is None for v in ex.panel.values()):
            valid = self.graph.graph.get("results_valid") or {}
            n = _days_at_most(valid)
            out.append(last + datetime.timedelta(days=n + 1))
        # an open order the model leaves unfulfilled: a result the day before its window opens
        # (acted on, but it fulfils nothing)
        unwanted = [a for a, v in ex.fulfilled.items() if v is False]
        early = [_date(o["window"][0]) - datetime.timedelta(days=1) for o in trace.get("open_orders", ())
                if o.get("action") in unwanted and o.get("window")]
        seen_days: list[datetime.date] = []
        for d in out:
            if d > last and d not in seen_days:
                seen_days.append(d)
        seen_days = seen_days[:5]
        for d in early:
            if d > last and d not in seen_days:
                seen_days.append(d)
                break
        return seen_days

    def signature(self, p: Prefix, trace: Mapping) -> tuple:
        # an open order by its action and whether it is overdue (a result then fulfils it at once;
        # before its window opens, it does not)
        orders = tuple(sorted((o.get("action", ""), bool(o.get("overdue"))) for o in trace.get("open_orders", ())))
        sets = tuple((s.get("var"), json.dumps(s.get("value"))) for s in trace.get("steps", ()) if s.get("type") == "set")
        return (json.dumps(p.facts, sort_keys=True, default=str), tuple(self.active(trace)), orders, sets[-6:])

    def search(self) -> dict[str, Prefix]:
        """For each rule (edge key), the first timeline found that fires it: breadth first
        (every rule of every state reached, the shortest timelines first), then, for the rules
        still missing, best first from every timeline the first pass replayed: the timelines
        whose states are fewest rules away from a missing rule are extended first, a rule's
        own moves later the more often they were tried in vain. Each pass has MAX_PREFIXES
        replays."""
        found: dict[str, Prefix] = {}
        queue = [Prefix()]
        seen: set = set()
        kept: list = []  # (prefix, trace) of every timeline extended, for the second pass
        while queue and self.replays < MAX_PREFIXES and len(found) < len(self.edges):
            p = queue.pop(0)
            trace = self.replay(p)
            if trace is None:
                continue
            self.credit(trace, p, found)
            sig = self.signature(p, trace)
            if sig in seen or p.moves >= MAX_MOVES:
                continue
            seen.add(sig)
            kept.append((p, trace))
            for state, hi, i, key in self.rules_of(trace):
                queue.extend(self.moves(p, trace, state, hi, i, key))
        if len(found) < len(self.edges) and kept:
            self.directed(found, kept)
        return found

    def directed(self, found: dict, kept: list) -> None:
        """The second pass of `search` (best first), from the timelines `kept`."""
        budget = self.replays + MAX_PREFIXES
        order = itertools.count()
        tries: dict = {}  # rule, and (rule, what a replay fixes) -> the timelines extended toward it so far
        away = self.away(found, tries)
        queue: list = []
        for p, trace in kept:
            p.trace = trace
            far = min((away.get(st, _FAR) for st in self.active(trace)), default=_FAR)
            if far < _FAR:
                queue.append((far, len(p.rows), next(order), p))
        heapq.heapify(queue)
        expanded: set = set()
        while queue and self.replays < budget and len(found) < len(self.edges):
            *_, p = heapq.heappop(queue)
            trace = self.replay(p)
            if trace is None:
                continue
            self.credit(trace, p, found)
            sig = self.signature(p, trace)
            if sig in expanded or p.moves >= MAX_MOVES:
                continue
            expanded.add(sig)
            away = self.away(found, tries)
            fixed = self.context(trace, p.facts)[0]  # what the replay so far fixes (vars, orders, ...)
            for state, hi, i, key in self.rules_of(trace):
                if key not in found:
                    # a missing rule: its moves first, and later the more often they were tried in
                    # vain, in all (`away`) and with what this replay fixes
                    tries[key] = tries.get(key, 0) + 1
                    here = tries[(key, fixed)] = tries.get((key, fixed), 0) + 1
                    cost = here / TRIES_PER_STEP
                else:
                    far = min(away.get(self.targets.get(key), _FAR), away.get(state, _FAR) + 1)
                    if far >= _FAR:
                        continue  # a found rule that leads nowhere a missing rule is
                    cost = far + 1
                for q in self.moves(p, trace, state, hi, i, key):
                    heapq.heappush(queue, (cost, len(q.rows), next(order), q))

    def rules_of(self, trace: Mapping) -> Iterable[tuple[str, int, int, str]]:
        """(state, handler index, rule index, rule key) of every rule of the states `trace` ends
        in, each rule followed by its choice's later alternatives (same indices, own keys)."""
        for state in self.active(trace):
            for hi, h in enumerate(self.graph.nodes[state].get("handlers") or ()):
                for i, rule in enumerate(h.get("rules") or ()):
                    for key in self.variants(rule):
                        yield state, hi, i, key

    def away(self, found: Mapping, tries: Mapping) -> dict[str, int]:
        """Each state's distance, in rules fired, to a rule not yet found (0: a rule of its own,
        or of an ancestor's, is still to be found); states that reach none are left out. A
        rule tried in vain from MAX_TRIES timelines no longer draws the search."""
        missing = frozenset(k for k in self.edges if k not in found and tries.get(k, 0) < MAX_TRIES)
        if self._away[0] == missing:
            return self._away[1]
        nodes = self.graph.nodes
        into: dict[str, set[str]] = {}
        for u, v, k in self.graph.edges(keys=True):
            into.setdefault(v, set()).add(u)
        children: dict[str, list[str]] = {}
        for n, d in nodes(data=True):
            if d.get("parent") is not None:
                children.setdefault(d["parent"], []).append(n)

        def below(n: str) -> list[str]:  # n and its descendants: a rule of n fires from each
            out, todo = [], [n]
            while todo:
                x = todo.pop()
                out.append(x)
                todo.extend(children.get(x, ()))
            return out

        def entered_with(n: str) -> str | None:  # the parent whose entry enters n, if any
            parent = nodes[n].get("parent") if n in nodes else None
            if parent is None:
                return None
            if nodes[n].get("kind") == "initial" or nodes[parent].get("type") == "parallel":
                return parent
            return None

        dist: dict[str, int] = {}
        frontier = [x for u, _, k in self.graph.edges(keys=True) if k in missing for x in below(u)]
        level = 0
        while frontier:
            nxt: list[str] = []
            while frontier:
                n = frontier.pop()
                if n in dist:
                    continue
                dist[n] = level
                up = entered_with(n)
                if up is not None and up not in dist:
                    frontier.append(up)  # a rule into the parent enters n too
                nxt.extend(x for u in into.get(n, ()) for x in below(u) if x not in dist)
            frontier = nxt
            level += 1
        self._away = (missing, dist)
        return dist

    def credit(self, trace: Mapping, p: Prefix, found: dict) -> None:
        """Every rule that fired in `trace` and has no timeline yet gets `p`."""
        by_rule: dict[str, list[str]] = {}
        for k, d in self.edges.items():
            by_rule.setdefault(d.get("rule") or k, []).append(k)
        for s in trace.get("steps", ()):
            if s.get("type") != "transition":
                continue
            rule = s.get("rule")
            keys = [rule] if rule in self.edges else by_rule.get(rule, [])
            source = s.get("from")
            chain = []
            while source is not None and source in self.graph.nodes:
                chain.append(source)
                source = self.graph.nodes[source].get("parent")
            for k in keys:
                if k not in found and (len(keys) == 1 or self.edges[k].get("source", "") in chain or
                                       next((u for u, _, kk in self.graph.edges(keys=True) if kk == k), None) in chain):
                    found[k] = p

    # ---------------------------------------------------------------- case files

    def case_text(self, p: Prefix, kind: str, about: str, extra: list[str] | None = None) -> str:
        trace = self.replay(p)
        doc = self.document(p)
        lines = [f"# Generated by `rxwatch cases` ({kind}): review it, then keep it or delete it.",
                 f"description: {json.dumps('GENERATED (' + kind + '): ' + about)}",
                 f"protocol: {self.graph.graph.get('name', '')}",
                 f"patient: {json.dumps(doc['patient'])}",
                 f"start: {doc['start']}",
                 f"until: {doc['until']}"]
        lines.append("events:" if doc["events"] else "events: []")
        lines += ["  - {" + ", ".join(f"{k}: {_flow(v)}" for k, v in r.items()) + "}" for r in doc["events"]]
        lines.append("expect:")
        lines += [f"  - {e}" for e in expectations(trace)]
        if extra:
            lines.append("  # what the mutant does and the protocol does not")
            lines += [f"  - {e}" for e in extra]
        return "\n".join(lines) + "\n"


def _flow(v) -> str:
    """A value in a YAML flow mapping: numbers and plain words as they are, text quoted."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return json.dumps(v)
    text = str(v)
    return text if re.fullmatch(r"[A-Za-z0-9_.:/*+-]+", text) and text not in ("true", "false", "null") else json.dumps(text)


def _z3_value(enc: smt.Encoder, kind: str, v):
    if v is None:
        return None
    if kind == "bool":
        return z3.BoolVal(bool(v), enc.ctx)
    if kind == "number":
        return z3.RealVal(str(Fraction(str(v)) if isinstance(v, float) else Fraction(v)), enc.ctx)
    return z3.IntVal(enc.code(str(v)), enc.ctx)


def _default(decl: Mapping | None):
    if not decl or not decl.get("has_default"):
        return None
    return decl.get("default")


def expectations(trace: Mapping) -> list[str]:
    """What the protocol does on this timeline, as expectation lines (docs/scenarios.md)."""
    out = []
    for s in trace.get("steps", ()):
        d, t = s.get("date"), s.get("type")
        if t == "transition":
            if s.get("stay"):
                out.append(f"on {d} stay {s['from']}")
            else:
                out.append(f"on {d} transition {s['from']} -> {s['to']}")
        elif t == "action":
            w = s.get("window")
            out.append(f"on {d} action {s['action']}" + (f" window {w[0]}..{w[1]}" if w else ""))
        elif t == "deviation":
            w = s.get("window")
            out.append(f"on {d} deviation {s['kind']} for {s['action']}" + (f" window {w[0]}..{w[1]}" if w else ""))
        elif t == "unassessable":
            missing = s.get("missing") or []
            out.append(f"on {d} unassessable" + (f" missing {', '.join(missing)}" if missing else ""))
    final = trace.get("final_state")
    if final:
        out.append(f"final state {final}")
    orders = trace.get("open_orders") or []
    if not orders:
        out.append("final no order")
    for o in orders:
        w = o.get("window")
        out.append(f"final order {o['action']}" + (f" window {w[0]}..{w[1]}" if w else ""))
    return out


def _slug(s: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", s.lower()).strip("-")[:60]


def reach_cases(gen: Generator, found: dict[str, Prefix] | None = None) -> tuple[list[Generated], list[str]]:
    """A case per rule (and per later alternative of a rule's choice) that the search could
    fire; the keys of those it could not."""
    found = gen.search() if found is None else found
    cases, missing = [], []
    for n, (u, v, key, d) in enumerate(gen.graph.edges(keys=True, data=True), 1):
        p = found.get(key)
        if p is None:
            missing.append(key)
            continue
        what = "otherwise" if d.get("otherwise") else f"when {d.get('because', '')}"
        chosen = gen.chosen(key)
        taking = f", choosing {chosen}" if chosen is not None else ""
        about = (f"reaches {u} and fires the rule '{what}' (line {d['span']['line']}){taking}: "
                 f"-> {v if not d.get('stay') else 'stay'}")
        cases.append(Generated(f"reach-{n:03d}-{_slug(u)}", "reach", about, key, gen.case_text(p, "reach", about), p))
    return cases, missing


# ---------------------------------------------------------------- boundary cases

def precision(graph, lab: str) -> Fraction:
    """The step of a lab's results: its declared `precision` when the protocol gives one, else
    one unit of the last decimal place of its limits (ULN 40 -> 1, ULN 1.2 -> 0.1), else of the
    numbers its guards compare it with (INR 1.5 -> 0.1), else 1."""
    decl = (graph.graph.get("labs") or {}).get(lab) or {}
    if decl.get("precision") is not None:
        return Fraction(str(decl["precision"]))
    places = [_places(decl.get(k)) for k in ("uln", "lln") if decl.get(k) is not None]
    if not places:
        for _, _, d in graph.edges(data=True):
            for t in _walk(d.get("guard")):
                if t.get("op") == "compare" and any(a.get("op") == "lab" and a.get("name") == lab for a in t["args"]):
                    places += [_places(a["value"]) for a in t["args"] if a.get("op") == "num"]
    return Fraction(1, 10 ** max(places)) if places else Fraction(1)


def _places(v) -> int:
    text = str(v)
    return len(text.split(".")[1]) if "." in text and "e" not in text.lower() else 0


def _walk(tree):
    from rxwatch.compiler import ir

    return ir.walk(tree) if tree else ()


def _comparisons(graph, tree, seen_lets: set) -> Iterable[tuple[dict, int, str]]:
    """(compare node, link index, where) for every link `x op NUMBER` under `tree`, through lets."""
    lets = graph.graph.get("lets") or {}
    for t in _walk(tree):
        if t.get("op") == "compare":
            for i, op in enumerate(t["ops"]):
                a, b = t["args"][i], t["args"][i + 1]
                if (a.get("op") == "num") != (b.get("op") == "num"):
                    yield t, i, ""
        elif t.get("op") == "let" and t["name"] not in seen_lets and t["name"] in lets:
            seen_lets.add(t["name"])
            for c, i, _ in _comparisons(graph, lets[t["name"]]["expr"], seen_lets):
                yield c, i, t["name"]


_FLIPPED = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}


def boundary_examples(gen: Generator, state: str, hi: int, i: int) -> list[tuple[str, smt.Example]]:
    """For each comparison with a number under rule i's guard: the inputs just on each side of
    the threshold at the labs' precision, with the rules above it false (so it decides)."""
    enc = gen.enc
    h = gen.graph.nodes[state]["handlers"][hi]
    rules = [gen.edges[k] for k in h.get("rules") or ()][: i + 1]
    guard = rules[i].get("guard")
    if guard is None:
        return []
    conds = [enc.cond(r.get("guard")) for r in rules]
    reached = [x.f for x in conds[:i]] if h.get("mode") != "exclusive" else [z3.Not(x.t) for x in conds[:i]]
    ins = enc.inputs_of(r.get("guard") for r in rules)
    out = []
    for cmp, link, where in _comparisons(gen.graph, guard, set()):
        a, b = cmp["args"][link], cmp["args"][link + 1]
        op = cmp["ops"][link]
        if a.get("op") == "num":  # 5 < x  ->  x > 5
            a, b, op = b, a, _FLIPPED[op]
        try:
            x = enc.value(a)
        except Exception:
            continue
        if not isinstance(x, smt.Num):
            continue
        c = z3.RealVal(str(Fraction(str(b["value"]))), enc.ctx)
        text = f"{_show(a)} {op} {b['value']}"
        g = conds[i]
        sides = _sides(op, x.v, c)
        # the comparison should decide the guard: true on one side, false on the other (MC/DC);
        # failing that, the guard at least known on each side
        for wanted in ((g.t, g.f), (g.f, g.t), (z3.Or(g.t, g.f), z3.Or(g.t, g.f))):
            found = []
            for (side, cond, goal), want in zip(sides, wanted):
                ex = _optimum(gen, enc, h, ins, x, cond, goal, [*reached, want])
                if ex is None:
                    break
                found.append((f"{text} ({side})" + (f", in {where}" if where else ""), ex))
            if len(found) == len(sides):
                out += found
                break
    return out


def _optimum(gen: Generator, enc: smt.Encoder, h: Mapping, ins, x: smt.Num, cond, goal: str, extra: list):
    """The model closest to the threshold on one side, with every lab on its precision grid."""
    opt = prover.budget(z3.Optimize(ctx=enc.ctx), Z3_RLIMIT)
    if h.get("trigger") == "panel":
        opt.add(panel_context(enc))
    opt.add(x.k, cond, *extra)
    for lab in sorted(ins.labs):
        s = enc.lab(lab)
        step = z3.RealVal(str(precision(gen.graph, lab)), enc.ctx)
        k = z3.Int(f"steps:{lab}", enc.ctx)
        if s.value is not None:
            opt.add(s.value == k * step)
        elif s.ratio is not None and s.default is not None:
            if s.own is not None:
                opt.add(z3.Not(s.own))
            opt.add(s.ratio * z3.RealVal(str(s.default), enc.ctx) == k * step)
    (opt.minimize if goal == "min" else opt.maximize)(x.v)
    opt.add(*enc.domain())  # every symbol's, those made for earlier solvers too
    return enc.example(opt.model(), ins) if opt.check() == z3.sat else None


def _sides(op: str, x, c):
    """(label, condition, what to optimise) for the two sides of `x op c`."""
    if op in (">", "<="):  # the boundary value c itself is on the `<=` side
        return [("just above", x > c, "min"), ("at the threshold", x <= c, "max")]
    if op in ("<", ">="):
        return [("just below", x < c, "max"), ("at the threshold", x >= c, "min")]
    return [("at the threshold", x == c, "min")]


def _show(t: Mapping) -> str:
    op = t.get("op")
    if op in ("lab", "let", "fact", "var"):
        return t["name"]
    if op == "call":
        return f"{t['func']}(" + ", ".join(_show(a) for a in t.get("args") or ()) + ")"
    return op


def boundary_cases(gen: Generator, reached: dict[str, Prefix]) -> list[Generated]:
    """A case per side of every threshold that a rule's guard compares, from a timeline that
    reaches the rule's state (one found by the reach search: the shortest that replays the
    side on one of the days the side allows, and that no other side gave already)."""
    at_state: dict[str, list[Prefix]] = {}
    for p in sorted({id(p): p for p in reached.values()}.values(), key=lambda p: len(p.rows)):
        trace = gen.replay(p)
        for s in gen.active(trace) if trace else ():
            if len(at_state.setdefault(s, [])) < BOUNDARY_PREFIXES:
                at_state[s].append(p)
    cases: list[Generated] = []
    done: set[str] = set()
    for state, data in gen.graph.nodes(data=True):
        for hi, h in enumerate(data.get("handlers") or ()):
            if h.get("trigger") != "panel" or state not in at_state:
                continue
            for i, key in enumerate(h.get("rules") or ()):
                for label, ex in boundary_examples(gen, state, hi, i):
                    q = _boundary_timeline(gen, at_state[state], state, ex, done)
                    if q is None:
                        continue
                    rows = [r for r in q.rows if _date(r["date"]) == q.until]
                    line = gen.edges[key]["span"]["line"]
                    about = f"in {state}, the rule at line {line}: {label}: " + ", ".join(f"{r['lab']} {r['value']}" for r in rows)
                    cases.append(Generated(f"boundary-{len(cases) + 1:03d}-{_slug(state)}", "boundary", about, key,
                                           gen.case_text(q, "boundary", about), q))
    return cases


BOUNDARY_PREFIXES = 3  # timelines reaching a state that a boundary case may start from
BOUNDARY_DAYS = 2  # days tried for a boundary panel after each


def _boundary_timeline(gen: Generator, starts: list, state: str, ex, done: set) -> "Prefix | None":
    """The first of `starts` extended by the example's panel, on one of the first days the
    example allows, that replays and is not a timeline already given (`done` keeps them)."""
    for p in starts:
        trace = gen.replay(p)
        if trace is None:
            continue
        last = max([_date(r["date"]) for r in p.rows] + [START, p.until])
        for day in gen.dates(trace, state, ex, last)[:BOUNDARY_DAYS]:
            rows = [{"date": _iso(day), "lab": lab, "value": _num(v), **({"uln": _num(ex.ulns[lab])} if lab in ex.ulns else {})}
                    for lab, v in ex.panel.items() if v is not None]
            if not rows:
                return None
            q = p.extended(rows, day)
            sig = json.dumps([q.rows, q.facts], default=str)
            if sig in done or gen.replay(q) is None:
                continue
            done.add(sig)
            return q
    return None


# ---------------------------------------------------------------- cases that kill survivors

def window_candidates(gen: Generator, p: Prefix) -> list[Prefix]:
    """`p` followed by its last panel again on the days around each open order's window
    (the day before it opens, the day it opens, its last day, the day after), and by nothing
    until the day after the window (an overdue order)."""
    trace = gen.replay(p)
    if trace is None:
        return []
    last_day = max([r["date"] for r in p.rows if "lab" in r] or [None], key=lambda d: d or "")
    panel = [r for r in p.rows if "lab" in r and r["date"] == last_day] if last_day else []
    out = []
    end = max([_date(r["date"]) for r in p.rows] + [START, p.until])
    for o in trace.get("open_orders", ()):
        w = o.get("window")
        if not w:
            continue
        a, b = _date(w[0]), _date(w[1])
        for d in (a - datetime.timedelta(days=1), a, b, b + datetime.timedelta(days=1)):
            if d > end and panel:
                out.append(p.extended([{**r, "date": _iso(d)} for r in panel], d))
        out.append(Prefix(dict(p.facts), list(p.rows), max(end, b + datetime.timedelta(days=1))))
    return out


def killing_cases(gen: Generator, candidates: list[Prefix], survivors: list, path: str) -> tuple[list[Generated], list]:
    """For each surviving mutant, the shortest candidate timeline whose expectations (from the
    protocol) fail on the mutant; the mutants no candidate kills."""
    from rxwatch.compiler import compile_source
    from rxwatch.simulator.engine import Machine, SimulationError

    from . import equivalence

    pool = sorted(candidates, key=lambda p: (len(p.rows), p.until))
    pool += [q for p in pool for q in window_candidates(gen, p)]
    at_state: dict[str, Prefix] = {}
    for p in pool:
        trace = gen.replay(p)
        for s in gen.active(trace) if trace else ():
            at_state.setdefault(s, p)
    cases, left = [], []
    for m in survivors:
        result = compile_source(m.text, path, verify=False)
        if not result.ok or result.graph is None:
            left.append(m)
            continue
        machine = Machine(result.graph)
        killed = None
        own = []  # the verifier's witness of this mutant, placed after a timeline that reaches its state
        if m.operator in ("threshold-up", "threshold-down", "flip", "and-or", "swap-rules", "drop-rule"):
            v = equivalence.equivalent(gen.graph, result.graph, moved_rules=m.operator in ("swap-rules", "drop-rule"))
        else:
            v = equivalence.witness(gen.graph, m.span.line)
        if v.example is not None and v.state in at_state:
            own = list(_placed(gen, at_state[v.state], v.state, v.example))
        for p in own + pool:
            trace = gen.replay(p)
            if trace is None:
                continue
            q = Prefix(dict(p.facts), list(p.rows), p.until)
            try:
                from rxwatch.inputs import yamlsrc
                from rxwatch.inputs.yamljson import parse_timeline

                text = json.dumps(gen.document(q))
                tl = parse_timeline(yamlsrc.load_json(text, "<generated>") or yamlsrc.load(text, "<generated>"),
                                    "<generated>", result.graph.graph)
                other = machine.run(tl)
            except SimulationError:
                killed = p
                break
            except Exception:
                continue
            if _steps(trace) != _steps(other) or trace.get("final_state") != other.get("final_state") \
                    or _orders(trace) != _orders(other):
                # the traces differ; the case kills the mutant only if an expectation fails on it
                extra = _killing_lines(gen.graph, result.graph, trace, other)
                if extra is not None:
                    killed = p
                    break
        if killed is None:
            left.append(m)
            continue
        about = f"kills the mutant {m.operator} at line {m.span.line}: {m.edit}"
        cases.append(Generated(f"survivor-{len(cases) + 1:03d}-line-{m.span.line}", "survivor", about, "",
                               gen.case_text(killed, "survivor", about, extra), killed))
    return cases, left


def _never(s: Mapping) -> str | None:
    """An expectation that a step like `s` (of the mutant's trace) does not happen that day."""
    d, t = s.get("date"), s.get("type")
    if t == "action":
        w = s.get("window")
        return f"never action {s['action']}" + (f" window {w[0]}..{w[1]}" if w else "") + f" on {d}"
    if t == "transition":
        return f"never stay {s['from']} on {d}" if s.get("stay") else f"never transition {s['from']} -> {s['to']} on {d}"
    if t == "deviation":
        return f"never deviation {s['kind']} for {s['action']} on {d}"
    if t == "unassessable":
        return f"never unassessable on {d}"
    return None


def _killing_lines(graph, mutant_graph, trace: Mapping, other: Mapping) -> list[str] | None:
    """What to add to the protocol's expectations of `trace` so that the case fails on the
    mutant's trace `other`: nothing when one of them already fails there; else a `never` line
    for each step only the mutant has (kept when it holds on the protocol); None when no line
    tells them apart (the traces differ only where no expectation looks)."""
    from .check import check
    from .expectations import CaseError, Names, parse_expectation

    names, mutant_names = Names.of(graph), Names.of(mutant_graph)

    def holds(line: str, t: Mapping, n) -> bool | None:
        try:
            return check(parse_expectation(line, n), t, n).ok
        except CaseError:
            return None

    if any(holds(e, other, mutant_names) is False for e in expectations(trace)):
        return []
    mine = {json.dumps(x) for x in _steps(trace)}
    extra = []
    for s in other.get("steps", ()):
        if json.dumps(tuple((k, json.dumps(s.get(k))) for k in _SHOWN)) in mine:
            continue
        line = _never(s)
        if line and line not in extra and holds(line, trace, names) and holds(line, other, mutant_names) is False:
            extra.append(line)
    return extra or None


def _placed(gen: Generator, p: Prefix, state: str, ex) -> Iterable[Prefix]:
    """`p` and then a panel of the example's values on the days the example allows."""
    trace = gen.replay(p)
    if trace is None:
        return
    last = max([_date(r["date"]) for r in p.rows] + [START, p.until])
    for day in gen.dates(trace, state, ex, last):
        rows = [{"date": _iso(day), "lab": lab, "value": _num(v), **({"uln": _num(ex.ulns[lab])} if lab in ex.ulns else {})}
                for lab, v in ex.panel.items() if v is not None]
        if rows:
            yield p.extended(rows, day)


_SHOWN = ("date", "type", "state", "from", "to", "stay", "action", "window", "kind", "missing")


def _steps(trace: Mapping) -> list:
    return [tuple((k, json.dumps(s.get(k))) for k in _SHOWN) for s in trace.get("steps", ())]


def _orders(trace: Mapping) -> list:
    return sorted(json.dumps([o.get("action"), o.get("window")]) for o in trace.get("open_orders", ()))


def write_cases(cases: list[Generated], folder) -> list[str]:
    """Write each case as FOLDER/NAME.yaml (never over an existing file: a name gets a suffix)."""
    import os

    os.makedirs(folder, exist_ok=True)
    written = []
    for c in cases:
        name = os.path.join(folder, c.name + ".yaml")
        n = 2
        while os.path.exists(name):
            name = os.path.join(folder, f"{c.name}-{n}.yaml")
            n += 1
        tmp = name + ".part"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(c.text)
        os.replace(tmp, name)
        written.append(name)
    return written
