"""The statechart as the analyses read it: the hierarchy, each atomic state's effective rules,
and what a transition enters.

Every analysis of the verifier asks about *atomic* states: they are the ones a patient is in
(one per active region: the top level, and each track of an active parallel state). What
reacts in an atomic state S to a trigger is its **effective rule list**: S's own handler for
the trigger, then its parent's, up to the top level ("child wins"), `use`d rule blocks
already expanded in place by the compiler (docs/simulation.md). A flat protocol is the case
where every state is atomic and every list has one handler.

- `Chart(graph)`: parent, children, type, initial child, track of every node (format 2
  graphs, which have none of these, read as flat);
- `Chart.effective(S)`: S's effective lists (`Effective`), one per trigger: `on panel`; each
  event (events with the same chain of handlers share one list); the `on fact` rules (tried
  together, as the simulator tries them on entry); each timer, alone (a timer belongs to the
  state that declares it);
- `Chart.transition(edge)`: the nodes a rule enters (outermost first), from its domain
  (SCXML's transition domain: the lowest common ancestor of the rule's source and target;
  the target's parent when the target is the source or one of its ancestors; the source when
  the source is a proper ancestor of the target): the path down to the target, then the
  default completion of the target (initial children; every track of a parallel state), and
  every other track of a parallel state entered on the way.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Effective:
    """One trigger's effective rule list in one atomic state."""

    state: str  # the atomic state
    trigger: str  # panel / event / fact / timer
    events: tuple  # event: the events this list is for; fact: the facts watched
    handlers: list  # [(declaring state, handler dict)], innermost first
    rules: list  # the rules' edge dicts, in the order they are tried
    segment: list  # per rule: the index into `handlers` of the handler it belongs to
    known: tuple = ()  # the actions whose since() is known here (tables.groups fills it)

    @property
    def handler(self) -> dict:
        """The innermost handler (its span locates a gap; its header names the trigger)."""
        return self.handlers[0][1]

    @property
    def owner(self) -> str:
        """The state that declares the innermost handler."""
        return self.handlers[0][0]

    def mode(self) -> str:
        """The list's mode: a single handler's own; several: first match (each handler's mode
        still governs the overlaps of its own rules)."""
        if len(self.handlers) == 1:
            return self.handlers[0][1].get("mode") or "first"
        return "first"

    def as_handler(self) -> dict:
        """A handler dict for the whole list (what the message helpers read)."""
        h = dict(self.handler)
        if self.trigger == "event":
            h["events"] = list(self.events)
        h["mode"] = self.mode()
        return h

    def chain_key(self) -> tuple:
        """Which handlers make up this list (the same key: the same list)."""
        return (self.trigger, tuple((s, id(h)) for s, h in self.handlers))


@dataclass
class Transition:
    """What one rule does to the configuration, from an atomic state."""

    source: str  # the declaring (or using) state: the edge's tail
    target: str
    domain: str | None  # None: the top level
    entered: list = field(default_factory=list)  # nodes entered, outermost first
    atomic: list = field(default_factory=list)  # the atomic states among them


class Chart:
    def __init__(self, graph) -> None:
        self.graph = graph
        nodes = graph.nodes
        self.order = {n: i for i, n in enumerate(graph.nodes)}
        self.parent: dict[str, str | None] = {}
        self.children: dict[str, list] = {}
        self.type: dict[str, str] = {}
        self.initial_child: dict[str, str | None] = {}
        self.track: dict[str, str | None] = {}
        for n, d in nodes(data=True):
            self.parent[n] = d.get("parent")
            self.children[n] = list(d.get("children") or ())
            self.type[n] = d.get("type") or "atomic"
            self.initial_child[n] = d.get("initial_child") or (self.children[n][0] if self.children[n] else None)
            self.track[n] = d.get("track")
        self.atomic = [n for n in graph.nodes if self.type[n] == "atomic"]
        self.flat = all(self.type[n] == "atomic" for n in graph.nodes)
        self.edges = {k: (u, v, d) for u, v, k, d in graph.edges(keys=True, data=True)}
        # a rule whose `do one of` has alternatives with targets has an edge per alternative:
        # the rule's own (alternative 0) and `KEY@i`
        self._alts: dict[str, list] = {}
        for k, (u, v, d) in self.edges.items():
            base = k.split("@", 1)[0] if d.get("alternative") else k
            self._alts.setdefault(base, []).append((d, v))
        for alts in self._alts.values():
            alts.sort(key=lambda x: x[0].get("alternative") or 0)
        self._anc: dict[str, list] = {}
        self._eff: dict[str, list] = {}
        self._exits: dict = {}

    # -- the hierarchy

    def ancestors(self, n: str) -> list:
        """The proper ancestors of `n`, innermost first."""
        a = self._anc.get(n)
        if a is None:
            a, p = [], self.parent.get(n)
            while p is not None and p not in a and p != n:  # a graph file read is checked; never loop
                a.append(p)
                p = self.parent.get(p)
            self._anc[n] = a
        return a

    def chain(self, n: str) -> list:
        """`n` and its ancestors, innermost first."""
        return [n, *self.ancestors(n)]

    def states_of(self, n: str) -> list:
        """The atomic states at or below `n`, in document order."""
        out, stack, seen = [], [n], set()
        while stack:
            x = stack.pop()
            if x in seen:
                continue
            seen.add(x)
            if self.type.get(x) == "atomic":
                out.append(x)
            else:
                stack.extend(reversed(self.children.get(x) or ()))
        return out

    def is_below(self, n: str, a: str) -> bool:
        """Is `n` a proper descendant of `a`?"""
        return a in self.ancestors(n)

    def region(self, n: str) -> str | None:
        """The track `n` runs in (None: the top level)."""
        return self.track.get(n)

    def parallel_of(self, track: str) -> str | None:
        return self.parent.get(track)

    def terminal(self, n: str) -> bool:
        return self.graph.nodes[n].get("kind") == "terminal"

    # -- effective rule lists

    def effective(self, s: str) -> list[Effective]:
        """Every effective rule list of atomic state `s` (see the module's notes)."""
        out = self._eff.get(s)
        if out is not None:
            return out
        out = []
        chain = [(n, h) for n in self.chain(s) for h in self.graph.nodes[n].get("handlers") or ()]
        def rules_of(hs):
            rules, seg = [], []
            for i, (_, h) in enumerate(hs):
                for k in h.get("rules") or ():
                    if self.edges[k][2].get("alternative"):
                        continue  # an alternative's edge: the rule is there once
                    rules.append(self.edges[k][2])
                    seg.append(i)
            return rules, seg
        panel = [(n, h) for n, h in chain if h.get("trigger") == "panel"]
        if panel:
            out.append(Effective(s, "panel", (), panel, *rules_of(panel)))
        events: dict[str, list] = {}
        for n, h in chain:
            if h.get("trigger") == "event":
                for e in h.get("events") or ():
                    events.setdefault(e, []).append((n, h))
        by_chain: dict[tuple, list] = {}
        for e, hs in events.items():
            by_chain.setdefault(tuple(id(h) for _, h in hs), []).append(e)
        for e, hs in events.items():
            names = by_chain.get(tuple(id(h) for _, h in hs))
            if names is None or names[0] != e:
                continue
            out.append(Effective(s, "event", tuple(names), hs, *rules_of(hs)))
        facts = [(n, h) for n, h in chain if h.get("trigger") == "fact"]
        if facts:
            watched = tuple(dict.fromkeys(f for _, h in facts for f in h.get("facts") or ()))
            out.append(Effective(s, "fact", watched, facts, *rules_of(facts)))
        for n, h in chain:
            if h.get("trigger") == "timer":
                out.append(Effective(s, "timer", (), [(n, h)], *rules_of([(n, h)])))
        # in the order the handlers are written (innermost first): the analyses ask in that order
        pos = {id(h): i for i, (_, h) in enumerate(chain)}
        out.sort(key=lambda e: pos[id(e.handler)])
        self._eff[s] = out
        return out

    def alternatives(self, rule: dict) -> list:
        """[(edge dict, target)]: the rule's edge, and one per other alternative of its choice."""
        return self._alts.get(rule["id"]) or [(rule, self.edges[rule["id"]][1])]

    @staticmethod
    def choice(edge: dict) -> dict | None:
        """The alternative an edge is for (`{action, target, stay, actions}`), or None."""
        i = edge.get("alternative")
        if i is None:
            return None
        for a in edge.get("actions") or ():
            if a.get("kind") == "one_of" and a.get("alternatives"):
                alts = a["alternatives"]
                return alts[i] if i < len(alts) else None
        return None

    def chosen_done(self, edge: dict) -> set:
        """The actions an edge's alternative recommends for sure: its own, and its `do`s."""
        alt = self.choice(edge)
        if alt is None:
            return set()
        return {alt["action"], *(a["action"] for a in alt.get("actions") or () if a.get("kind") == "do")}

    def rules_in(self, s: str) -> list:
        """Every rule (edge dict) that can be tried in atomic state `s`, in list order."""
        return [r for eff in self.effective(s) for r in eff.rules]

    # -- transitions

    def domain(self, source: str, target: str) -> str | None:
        if target == source or target in self.ancestors(source):
            return self.parent.get(target)
        if source in self.ancestors(target):
            return source
        up = set(self.chain(source))
        for a in self.ancestors(target):
            if a in up:
                return a
        return None

    def completion(self, n: str, _seen: frozenset = frozenset()) -> list:
        """`n` and what entering it enters by default: initial children, every track."""
        out = [n]
        if n in _seen:
            return out
        seen = _seen | {n}
        kind = self.type.get(n)
        if kind == "parallel":
            for t in self.children.get(n) or ():
                out.extend(self.completion(t, seen))
        elif kind in ("compound", "track"):
            c = self.initial_child.get(n)
            if c is not None:
                out.extend(self.completion(c, seen))
        return out

    def enter(self, target: str, domain: str | None) -> list:
        """The nodes entered by a transition to `target` with `domain`, outermost first."""
        path = [target]
        for a in self.ancestors(target):
            if a == domain:
                break
            path.append(a)
        path.reverse()
        out = []
        for i, n in enumerate(path):
            if n == target:
                out.extend(self.completion(n))
                break
            out.append(n)
            if self.type.get(n) == "parallel":  # the other tracks start at their initial state
                nxt = path[i + 1]
                for t in self.children.get(n) or ():
                    if t != nxt:
                        out.extend(self.completion(t))
        return out

    def transition(self, edge: dict, source: str | None = None, target: str | None = None) -> Transition:
        """What rule `edge` enters (`source`, `target`: its tail and head, when known)."""
        if source is None or target is None:
            u, v, _ = self.edges[edge["id"]]
            source, target = source or u, target or v
        dom = self.domain(source, target)
        entered = self.enter(target, dom)
        return Transition(source, target, dom, entered, [n for n in entered if self.type.get(n) == "atomic"])

    def initial_entered(self) -> list:
        """The nodes entered at the start: the top-level initial state and its completion."""
        init = self.graph.graph.get("initial")
        return self.completion(init) if init in self.type else []

    def exits(self, domain: str | None) -> set:
        """The nodes below `domain` (what a transition with that domain may leave)."""
        got = self._exits.get(domain)
        if got is None:
            got = self._exits[domain] = self._below(domain)
        return got

    def _below(self, domain: str | None) -> set:
        if domain is None:
            return set(self.type)
        out = set()
        stack = list(self.children.get(domain) or ())
        while stack:
            n = stack.pop()
            if n not in out:
                out.add(n)
                stack.extend(self.children.get(n) or ())
        return out

    def moves(self, atomic: str, rule: dict, target: str) -> bool:
        """Does `rule` (tried in `atomic`) move the patient out of `atomic`? (`stay`: never.)"""
        if rule.get("stay"):
            return False
        u, _, _ = self.edges[rule["id"]]
        return atomic in self.exits(self.domain(u, target))
