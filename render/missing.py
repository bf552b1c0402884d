"""What a decision does when results are missing, from the compiled graph.

Under the three-valued semantics (docs/language.md, "Unknown values") a guard that reads a
lab without a result can be unknown, and a handler whose rules cannot be decided before one
holds is *not assessable*: no rule fires, nothing changes, and the trace's `unassessable`
step names the missing labs. The chart shows, under each decision that reads results, which
missing results can leave it not assessable, and which results the rules check for
themselves (`known(TBIL) and bili > 2`).

`Analyser(graph)(guards, mode)` answers for one handler. For every set of missing labs among
those its guards read (through lets, as `ir.labs_read` reads them), it evaluates each guard
over the *possible* values: true, false, unknown, or a known number. A lab in the set is unknown, any
other lab is a known number of any value; facts are always known; a variable is known unless
a `set` gives it a value that can be unknown; `known(X)` follows the set exactly;
`fulfilled(ACTION)` may be either. The handler can be not assessable for that set when some
guard can be unknown while every earlier one can be false (first match), or, in an
`exclusive` handler, while none has to be true. The result lists the smallest such sets:
"both ALT and AST" when `tx = max(xuln(ALT), xuln(AST))` is unknown only when both are.

The analysis is sound and may over-state: it does not relate one guard's values to another's
(`tx > 5` false and `tx <= 5` false cannot both hold, but each is looked at alone). Two
things are assumed rather than analysed: `since(ACTION)` counts as known (it is unknown only
before ACTION was ever recommended), and division by a lab that is 0 is left out (unknown
too, but not a missing result). More than `MAX_LABS` labs in one handler are not enumerated.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Mapping

from rxwatch.compiler import ir

MAX_LABS = 12  # 2**12 sets of missing labs per handler at most

T, F, U, K = "T", "F", "U", "K"  # true, false, unknown, a known number (or member, or time)
BOOL = frozenset((T, F))
ANY_NUMBER = frozenset((K,))


@dataclass(frozen=True)
class Missing:
    """One handler and missing results."""

    reads: tuple[str, ...]  # the labs its guards read, through lets, in order of first use
    checked: tuple[str, ...]  # the labs its guards test with known()
    blocking: tuple[tuple[str, ...], ...] | None  # the smallest sets of missing labs that can
    # leave it not assessable (in `reads` order); () never; None: too many labs to enumerate

    @property
    def assessable_always(self) -> bool:
        return self.blocking == ()

    def to_dict(self) -> dict:
        return {"reads": list(self.reads), "checked": list(self.checked),
                "blocking": None if self.blocking is None else [list(s) for s in self.blocking]}


class Analyser:
    """`analyse` for every handler of one graph: what holds for the whole graph (the variables
    that can be unknown) is worked out once."""

    def __init__(self, graph):
        self.graph = graph
        self.g = graph.graph
        self.lets = self.g.get("lets", {})
        self.unknown_vars = _unknown_vars(graph)
        # missing labs -> the possible values of each let then (lets are shared by the handlers)
        self._lets: dict[frozenset[str], dict[str, frozenset]] = {}
        self._reads = _Reads(self.lets)

    def __call__(self, guards: list[Mapping | None], mode: str | None, about: frozenset | None = None) -> Missing | None:
        """What missing results do to the handler whose rules have `guards` (None: `otherwise`
        or an unguarded rule), in order; None when its guards read no lab. `about`: in a track,
        the labs the track is about (`ir.track_labs`): a panel missing all of them never
        reaches it."""
        reads: dict[str, None] = {}
        checked: dict[str, None] = {}
        for t in guards:
            if t is not None:
                r, c = self._reads.visit(t)
                reads.update(dict.fromkeys(r))
                checked.update(dict.fromkeys(c))
        if not reads:
            return None
        labs = tuple(reads)
        if len(labs) > MAX_LABS:
            return Missing(labs, tuple(checked), None)
        found: list[frozenset[str]] = []
        for size in range(len(labs) + 1):
            for combo in itertools.combinations(labs, size):
                missing = frozenset(combo)
                if any(f <= missing for f in found):
                    continue  # a smaller set already blocks: only the smallest are listed
                if about and about <= missing:
                    continue  # such a panel is not for this track: it never sees it
                values = _Possible(self.g, missing, self.unknown_vars, self._lets.setdefault(missing, {}))
                possible = [values.visit(t) if t is not None else None for t in guards]
                if _can_block(possible, mode):
                    found.append(missing)
        blocking = tuple(tuple(lab for lab in labs if lab in f) for f in found)
        return Missing(labs, tuple(checked), blocking)


def analyse(graph, guards: list[Mapping | None], mode: str | None) -> Missing | None:
    """What missing results do to one handler of `graph` (see `Analyser`)."""
    return Analyser(graph)(guards, mode)


class _Reads(ir.Visitor):
    """The labs an expression reads (as `ir.labs_read`: through the lets it uses, `known(X)`
    reading none) and, apart, the labs it tests with `known()`: (reads, checked), each in order
    of first use, the checked ones among the reads too. A let's answer is kept: lets are shared."""

    def __init__(self, lets: Mapping):
        self.lets = lets
        self._memo: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {}

    def _none(self, t):
        return (), ()

    visit_num = visit_bool = visit_enum = visit_duration = visit_fact = visit_var = _none
    visit_action = visit_since_entry = visit_drug = _none

    def visit_lab(self, t):
        return (t["name"],), ()

    def visit_let(self, t):
        name = t["name"]
        if name not in self._memo:
            self._memo[name] = (), ()  # a cycle (never in a checked graph) reads nothing more
            expr = (self.lets.get(name) or {}).get("expr")
            self._memo[name] = self.visit(expr) if expr is not None else ((), ())
        return self._memo[name]

    def _union(self, parts) -> tuple[tuple[str, ...], tuple[str, ...]]:
        reads: dict[str, None] = {}
        checked: dict[str, None] = {}
        for r, c in parts:
            reads.update(dict.fromkeys(r))
            checked.update(dict.fromkeys(c))
        return tuple(reads), tuple(checked)

    def visit_call(self, t):
        if t["func"] == "fulfilled":
            return (), ()
        if t["func"] == "known":  # reads no value, but tells which results the rule checks for
            labs = tuple(dict.fromkeys(lab for a in t["args"] for lab in self.visit(a)[0]))
            return labs, labs
        return self._union(self.visit(a) for a in t["args"])

    def _children(self, t):
        return self._union(self.visit(c) for c in ir.children(t))

    visit_neg = visit_add = visit_sub = visit_mul = visit_div = _children
    visit_compare = visit_in = visit_not = visit_and = visit_or = _children


def _can_block(possible: list[frozenset | None], mode: str | None) -> bool:
    if mode == "exclusive":
        # nothing fires when no guard is true; a true guard fires whatever the others are
        guarded = [p for p in possible if p is not None]
        return any(U in p and all(j == i or q - {T} for j, q in enumerate(guarded)) for i, p in enumerate(guarded))
    for p in possible:  # first match: rules are tried in order, `otherwise` is last
        if p is None:
            return False
        if U in p:
            return True  # unknown while every earlier guard was false
        if F not in p:
            return False  # this one holds whenever it is reached
    return False


def _unknown_vars(graph) -> set[str]:
    """Variables that a `set` can make unknown: those given a value that can be unknown when
    results are missing (or that reads such a variable), found by repeating until nothing
    changes."""
    g = graph.graph
    sets: list[tuple[str, dict]] = []
    todo = [a for _, d in graph.nodes(data=True) for a in d.get("entry", ())]
    todo += [a for _, _, d in graph.edges(data=True) for a in d.get("actions", ())]
    while todo:
        a = todo.pop()
        kind = a.get("kind")
        if kind == "set" and a.get("value") is not None:
            sets.append((a["var"], a["value"]))
        elif kind == "if":
            todo.extend(a.get("then", ()))
            todo.extend(a.get("else", ()))
    every_lab = frozenset(g.get("labs", {}))
    out: set[str] = set()
    while True:
        grown = {var for var, value in sets if var not in out and U in _Possible(g, every_lab, out).visit(value)}
        if not grown:
            return out
        out |= grown


def _and(sets) -> frozenset:
    """The possible values of a Kleene `and` of operands with these possible values."""
    out = set()
    if any(F in p for p in sets):
        out.add(F)
    if all(T in p for p in sets):
        out.add(T)
    if all(T in p or U in p for p in sets) and any(U in p for p in sets):
        out.add(U)
    return frozenset(out)


def _or(sets) -> frozenset:
    return _not(_and([_not(p) for p in sets]))


def _not(p: frozenset) -> frozenset:
    return frozenset({T: F, F: T}.get(x, x) for x in p)


def _value(p: frozenset) -> frozenset:
    """A number made from `p`: unknown, known, or either."""
    return frozenset(U if x == U else K for x in p)


class _Possible(ir.Visitor):
    """The possible values of an expression when exactly the labs in `missing` have no result."""

    def __init__(self, g: Mapping, missing: frozenset[str], unknown_vars: set[str],
                 lets: dict[str, frozenset] | None = None):
        self.g = g
        self.missing = missing
        self.unknown_vars = unknown_vars
        self._lets: dict[str, frozenset] = {} if lets is None else lets  # let -> its possible values

    def visit_num(self, t):
        return ANY_NUMBER

    def visit_bool(self, t):
        return frozenset((T if t["value"] else F,))

    def visit_enum(self, t):
        return ANY_NUMBER

    def visit_duration(self, t):
        return ANY_NUMBER

    def visit_since_entry(self, t):
        return ANY_NUMBER

    def visit_action(self, t):
        return ANY_NUMBER

    visit_drug = visit_action

    def visit_lab(self, t):
        return frozenset((U,)) if t["name"] in self.missing else ANY_NUMBER

    def visit_fact(self, t):
        decl = self.g.get("facts", {}).get(t["name"]) or {}
        return BOOL if decl.get("type") == "bool" else ANY_NUMBER

    def visit_var(self, t):
        decl = self.g.get("vars", {}).get(t["name"]) or {}
        known = BOOL if decl.get("type") == "bool" else ANY_NUMBER
        return known | {U} if t["name"] in self.unknown_vars else known

    def visit_let(self, t):
        name = t["name"]
        if name not in self._lets:
            self._lets[name] = frozenset((T, F, U, K))  # a cycle (never in a checked graph): anything
            expr = (self.g.get("lets", {}).get(name) or {}).get("expr")
            self._lets[name] = self.visit(expr) if expr is not None else frozenset((T, F, U, K))
        return self._lets[name]

    def visit_call(self, t):
        f, args = t["func"], t["args"]
        if f == "known":
            p = self.visit(args[0])
            return frozenset(F if x == U else T for x in p)
        if f == "fulfilled":
            return BOOL
        if f in ir.DRUG_READS:  # the drug's state in the replay, whatever results are missing
            return frozenset((K, U)) if f == "dose" else BOOL
        if f == "since":
            return ANY_NUMBER  # assumed known: see the module's notes
        if f in ("uln", "xuln"):
            lab = args[0]["name"]
            declared = (self.g.get("labs", {}).get(lab) or {}).get("uln") is not None
            if f == "uln":  # the result's own ULN, or the declared one
                return ANY_NUMBER if declared else frozenset((K, U))
            if lab in self.missing:
                return frozenset((U,))
            return ANY_NUMBER if declared else frozenset((K, U))
        # max, min: unknown only when every operand is
        ps = [_value(self.visit(a)) for a in args]
        if any(U not in p for p in ps):
            return ANY_NUMBER
        if all(p == {U} for p in ps):
            return frozenset((U,))
        return frozenset((K, U))

    def visit_neg(self, t):
        return _value(self.visit(t["arg"]))

    def _arith(self, t):
        a, b = (_value(self.visit(x)) for x in t["args"])
        return frozenset(([U] if U in a or U in b else []) + ([K] if K in a and K in b else []))

    visit_add = visit_sub = visit_mul = visit_div = _arith

    def visit_compare(self, t):
        ps = [_value(self.visit(a)) for a in t["args"]]
        # each link: unknown when an operand can be; true or false when both can be known
        links = [frozenset(([U] if U in a or U in b else []) + ([T, F] if K in a and K in b else []))
                 for a, b in zip(ps, ps[1:])]
        return _and(links)

    def visit_in(self, t):
        p = _value(self.visit(t["arg"]))
        return frozenset(v for x in p for v in ((U,) if x == U else (T, F)))

    def visit_not(self, t):
        return _not(self.visit(t["arg"]))

    def visit_and(self, t):
        return _and([self.visit(a) for a in t["args"]])

    def visit_or(self, t):
        return _or([self.visit(a) for a in t["args"]])


# ---------------------------------------------------------------------------- in words


def labs_text(labs) -> str:
    """One set of missing labs: "TBIL", "both ALT and AST", "all of ALT, AST and TBIL"."""
    labs = list(labs)
    if len(labs) == 1:
        return labs[0]
    head = "both " if len(labs) == 2 else "all of "
    return head + ", ".join(labs[:-1]) + " and " + labs[-1]


def blocking_text(m: Missing) -> str:
    """What can leave the decision not assessable: "both ALT and AST", "TBIL or both ALT and
    AST", "TBIL, INR, or both ALT and AST"; "" when nothing can."""
    if m.blocking is None:
        return "any of " + ", ".join(m.reads)
    parts = [labs_text(s) if s else "a value set from a missing result" for s in m.blocking]
    if len(parts) <= 2:
        return " or ".join(parts)
    return ", ".join(parts[:-1]) + ", or " + parts[-1]
