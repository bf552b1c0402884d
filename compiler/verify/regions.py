"""Every region of inputs where a formula holds, as readable intervals of the values involved.

A gap of a handler (every guard false), or the inputs on which it is unassessable (a guard
unknown before any rule fires), is rarely one point: it is a union of regions such as
"tx in (3, 5] and bili unknown" or "ALT missing and AST missing". As the DMN verifiers do
(Calvanese et al., BPM 2016: hyper-rectangles over the inputs' intervals), the regions are
found one by one, each as a box of intervals, until none is left:

1. The *subjects* of a handler are the values its guards compare with constants (`tx` in
   `tx > 3`, the raw `ALT` in `ALT > 120`, `since(start)` in `since(start) < 6 months`, the
   fact `sex` in `sex == male`), and the atoms that are not such comparisons (`a < b`,
   `fulfilled(A)`, a boolean fact). Each guard is Kleene logic over the three-valued
   comparisons of subjects with their thresholds and over the atoms, so a *cell* (each
   subject unknown, or known in one interval between consecutive thresholds (or on one);
   each atom true, false or unknown) is uniform: the formula holds on all of it or on none.
2. The solver gives a model of `formula and not (the regions found so far)`. Its cell is
   widened greedily, still inside the formula (each step is one query): first each subject
   that does not matter is dropped; then each interval grows outward, threshold by threshold,
   and takes in "unknown" when it can; enumerations and atoms take in other values.
3. The box is a region; it is blocked, and the search goes on until the formula has no model
   outside the regions (so their union is exactly where the formula holds) or `limit`
   regions have been found.

Each region comes with an example (a model inside it, numbers rounded), and the labs that
are missing throughout it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import Any, Callable, Iterable, Mapping

import z3

from .. import ir
from . import smt

LIMIT = 8  # regions listed per question; more are counted, not listed


# ---------------------------------------------------------------------------- expression text


class Text(ir.Visitor):
    """An expression tree as the protocol would write it (for the values a region names)."""

    PREC = {"or": 1, "and": 2, "not": 3, "compare": 4, "in": 4, "+": 5, "-": 5, "*": 6, "/": 6, "neg": 7}

    def show(self, t: Mapping) -> str:
        return self.visit(t)

    def _sub(self, t: Mapping, prec: int) -> str:
        s = self.visit(t)
        return f"({s})" if self.PREC.get(t.get("op"), 9) < prec else s

    def visit_num(self, t):
        return smt.fmt(Fraction(ir.exact(t["value"])))

    def visit_bool(self, t):
        return "true" if t["value"] else "false"

    def visit_enum(self, t):
        return str(t["value"])

    def visit_duration(self, t):
        return f"{t['amount']} {t['unit']}"

    def _name(self, t):
        return t["name"]

    visit_lab = visit_fact = visit_var = visit_let = visit_action = visit_drug = _name

    def visit_since_entry(self, t):
        return "since entry"

    def visit_call(self, t):
        return f"{t['func']}({', '.join(self.visit(a) for a in t['args'])})"

    def visit_neg(self, t):
        return "-" + self._sub(t["arg"], 7)

    def _arith(self, t):
        p = self.PREC[t["op"]]
        a, b = t["args"]
        return f"{self._sub(a, p)} {t['op']} {self._sub(b, p + 1)}"

    visit_add = visit_sub = visit_mul = visit_div = _arith

    def visit_compare(self, t):
        parts = [self._sub(t["args"][0], 5)]
        for op, a in zip(t["ops"], t["args"][1:]):
            parts += [op, self._sub(a, 5)]
        return " ".join(parts)

    def visit_in(self, t):
        return f"{self._sub(t['arg'], 5)} in {{{', '.join(t['members'])}}}"

    def visit_not(self, t):
        return "not " + self._sub(t["arg"], 3)

    def visit_and(self, t):
        return " and ".join(self._sub(a, 3) for a in t["args"])

    def visit_or(self, t):
        return " or ".join(self._sub(a, 2) for a in t["args"])


TEXT = Text()


# ---------------------------------------------------------------------------- subjects


@dataclass
class Subject:
    """A value the guards read: 'num' (compared with numbers), 'time' (since(A) or since
    entry, compared with durations), 'enum' (a fact or var compared with members), or 'atom'
    (any other three-valued condition)."""

    key: str
    kind: str
    text: str
    tree: Mapping | None
    k: Any  # z3 Bool: known (atoms: see `boo`)
    v: Any = None  # num: Real (None when only known() reads the lab); time: Int days; enum: Int code
    boo: smt.Boo | None = None  # atoms
    lab: str | None = None  # the lab, when the subject is a lab's raw value
    alias: str | None = None  # a lab whose result the subject is known exactly with (bili: TBIL)
    anchor: str | None = None  # time: the action, or smt.ENTRY
    thresholds: list = field(default_factory=list)  # num: exact values; time: smt.Dur; enum: members
    lens: list = field(default_factory=list)  # time: the thresholds in days (z3 Int terms)
    can_be_unknown: bool = True


def subjects(enc: smt.Encoder, trees: Iterable[Mapping | None]) -> list[Subject]:
    """The subjects of these guard trees (lets followed), in order of first appearance."""
    out: dict[str, Subject] = {}
    seen: set[str] = set()
    stack = [t for t in trees if t is not None]
    nodes: list[Mapping] = []
    while stack:
        for t in ir.walk(stack.pop(0)):
            nodes.append(t)
            if t.get("op") == "let" and t["name"] not in seen and t["name"] in enc.lets:
                seen.add(t["name"])
                stack.append(enc.lets[t["name"]]["expr"])
    finder = _Finder(enc, out)
    for t in nodes:
        finder.visit(t)
    result = list(out.values())
    # a lab read only as known(L), whose knownness is that of a value compared with numbers
    # (known(TBIL) and bili = xuln(TBIL)), is that value's "unknown": one subject, not two
    for lab in [s for s in result if s.lab and not s.thresholds]:
        twin = next((s for s in result if s.kind == "num" and not s.lab and s.thresholds and s.k.eq(lab.k)), None)
        if twin is not None:
            twin.alias = lab.lab
            result.remove(lab)
    for s in result:
        if s.kind == "num":
            s.thresholds.sort()
        if s.kind == "enum" and s.tree is not None:
            decl = (enc.facts if s.tree["op"] == "fact" else enc.vars).get(s.tree["name"]) or {}
            members = list(decl.get("members") or ())
            s.thresholds = members + [m for m in s.thresholds if m not in members]
        s.can_be_unknown = not z3.is_true(z3.simplify(s.k)) if s.kind != "atom" else not z3.is_true(z3.simplify(enc.known_of(s.boo)))
    return result


class _Finder(ir.Visitor):
    """Registers the subjects a node makes (a node at a time: `subjects` walks the trees)."""

    def __init__(self, enc: smt.Encoder, out: dict) -> None:
        self.enc, self.out = enc, out

    def _nothing(self, t):
        return None

    visit_num = visit_bool = visit_enum = visit_duration = visit_lab = visit_let = visit_action = visit_drug = _nothing
    visit_since_entry = visit_neg = visit_add = visit_sub = visit_mul = visit_div = _nothing
    visit_not = visit_and = visit_or = _nothing

    def visit_compare(self, t):
        enc = self.enc
        vals = [enc.value(a) for a in t["args"]]
        for i, o in enumerate(t["ops"]):
            _link(enc, self.out, o, t["args"][i], t["args"][i + 1], vals[i], vals[i + 1])

    def visit_in(self, t):
        enc, out = self.enc, self.out
        a = enc.value(t["arg"])
        if isinstance(a, smt.Enm) and t["arg"].get("op") in ("fact", "var"):
            s = _subject(enc, out, t["arg"], "enum")
            for m in t["members"]:
                _add(s.thresholds, m)
        elif isinstance(a, smt.Enm):
            _atom(enc, out, t, enc.value(t))

    def visit_call(self, t):
        enc, out = self.enc, self.out
        if t["func"] == "fulfilled":
            _atom(enc, out, t, enc.value(t))
        if t["func"] != "known":
            return
        a = t["args"][0]
        if a.get("op") == "lab":
            _subject(enc, out, a, "num")
            return
        v = enc.value(a)
        if isinstance(v, smt.Num):
            _subject(enc, out, a, "num")
        elif isinstance(v, smt.Enm) and a.get("op") in ("fact", "var"):
            _subject(enc, out, a, "enum")
        elif isinstance(v, smt.Since):
            _time_subject(enc, out, v.action)
        elif not isinstance(v, (smt.Lit, smt.Dur)):
            _atom(enc, out, t, enc.value(t))

    def _named(self, t):
        if isinstance(self.enc.value(t), smt.Boo):
            _atom(self.enc, self.out, t, self.enc.value(t))

    visit_fact = visit_var = _named


def _add(xs: list, x) -> None:
    if x not in xs:
        xs.append(x)


def _link(enc, out, op, a, b, va, vb) -> None:
    if isinstance(va, smt.Num) and isinstance(vb, smt.Num):
        ca, cb = _constant(a, va), _constant(b, vb)
        if ca is None and cb is not None:
            _add(_subject(enc, out, a, "num").thresholds, cb)
        elif cb is None and ca is not None:
            _add(_subject(enc, out, b, "num").thresholds, ca)
        elif ca is None and cb is None:
            _atom(enc, out, {"op": "compare", "ops": [op], "args": [a, b]}, enc.link(op, va, vb))
        return
    if isinstance(va, smt.Since) and isinstance(vb, smt.Dur):
        _add_dur(enc, _time_subject(enc, out, va.action), vb)
    elif isinstance(va, smt.Dur) and isinstance(vb, smt.Since):
        _add_dur(enc, _time_subject(enc, out, vb.action), va)
    elif isinstance(va, smt.Enm) and isinstance(vb, smt.Lit) and a.get("op") in ("fact", "var"):
        _add(_subject(enc, out, a, "enum").thresholds, vb.name)
    elif isinstance(va, smt.Lit) and isinstance(vb, smt.Enm) and b.get("op") in ("fact", "var"):
        _add(_subject(enc, out, b, "enum").thresholds, va.name)
    elif isinstance(va, smt.Lit) and isinstance(vb, smt.Lit):
        return
    else:  # two inputs, or two durations (whose days depend on today's date)
        _atom(enc, out, {"op": "compare", "ops": [op], "args": [a, b]}, enc.link(op, va, vb))


def _constant(tree: Mapping, val: smt.Num) -> Fraction | None:
    """The value of a tree that reads no input (`3`, `-1`, `2 * 1.5`), else None."""
    if any(n.get("op") not in ("num", "neg", "+", "-", "*", "/") for n in ir.walk(tree)):
        return None
    k, v = z3.simplify(val.k), z3.simplify(val.v)
    if not z3.is_true(k) or not z3.is_rational_value(v):
        return None
    return Fraction(v.numerator_as_long(), v.denominator_as_long())


def _subject(enc, out, tree: Mapping, kind: str) -> Subject:
    key = json.dumps(tree, sort_keys=True)
    s = out.get(key)
    if s is None:
        if tree.get("op") == "lab":
            ls = enc.lab(tree["name"])
            s = Subject(key, "num", tree["name"], tree, ls.known, ls.value, lab=tree["name"])
        else:
            val = enc.value(tree)
            s = Subject(key, kind, TEXT.show(tree), tree, val.k, val.v if isinstance(val, smt.Num) else val.c)
        out[key] = s
    return s


def _time_subject(enc, out, anchor: str) -> Subject:
    key = f"time:{anchor}"
    s = out.get(key)
    if s is None:
        sy = enc.since(anchor)
        text = "since entry" if anchor == smt.ENTRY else f"since({anchor})"
        s = out[key] = Subject(key, "time", text, None, sy.known, sy.days, anchor=anchor)
    return s


def _add_dur(enc, s: Subject, d: smt.Dur) -> None:
    if d not in s.thresholds:
        s.thresholds.append(d)
        s.lens.append(enc.duration_days(s.anchor, d))


def _atom(enc, out, tree: Mapping, boo) -> None:
    key = "atom:" + json.dumps(tree, sort_keys=True)
    if key not in out and isinstance(boo, smt.Boo):
        out[key] = Subject(key, "atom", TEXT.show(tree), tree, None, boo=boo)


# ---------------------------------------------------------------------------- conditions


@dataclass(frozen=True)
class Cond:
    """What a region allows of one subject. `unknown`: the subject may be unknown; `known`:
    it may be known (num/time/enum: within the bounds below). num: `lo`/`hi` (value,
    inclusive) or None; time: `rels` ((threshold index, '<' '<=' '==' '>=' '>'), ...);
    enum: `members` (None: any); atom: `values` (a subset of True, False, None)."""

    unknown: bool = False
    known: bool = True
    lo: tuple | None = None
    hi: tuple | None = None
    rels: tuple = ()
    members: frozenset | None = None
    values: frozenset = frozenset()

    def is_any(self, s: Subject) -> bool:
        if s.kind == "atom":
            return self.values >= _atom_values(s)
        if not self.known:
            return False
        if s.can_be_unknown and not self.unknown:
            return False
        if s.kind == "num":
            return self.lo is None and self.hi is None
        if s.kind == "time":
            return not self.rels
        return self.members is None or set(self.members) >= set(s.thresholds)


def admits(s: Subject, c: Cond, value) -> bool:
    """Is a concrete value of the subject inside `c`? `value`: None when unknown; a number,
    a member, a truth value (atoms); for time, (days, [each threshold in days])."""
    if s.kind == "atom":
        return value in c.values
    if value is None:
        return c.unknown
    if not c.known:
        return False
    if s.kind == "num":
        if c.lo is not None and (value < c.lo[0] or (value == c.lo[0] and not c.lo[1])):
            return False
        return c.hi is None or value < c.hi[0] or (value == c.hi[0] and c.hi[1])
    if s.kind == "time":
        days, lens = value
        ok = {"<": days.__lt__, "<=": days.__le__, "==": days.__eq__, ">=": days.__ge__, ">": days.__gt__}
        return all(ok[rel](lens[i]) for i, rel in c.rels)
    return c.members is None or value in c.members


def _bounds(c: Cond) -> int:
    return (c.lo is not None) + (c.hi is not None) + len(c.rels)


def _valued(c: Cond) -> bool:
    return (c.known and not c.unknown) if not c.values else None not in c.values


def _atom_values(s: Subject) -> frozenset:
    return frozenset({True, False, None} if s.can_be_unknown else {True, False})


_Z3REL = {"<": lambda a, b: a < b, "<=": lambda a, b: a <= b, "==": lambda a, b: a == b, ">=": lambda a, b: a >= b, ">": lambda a, b: a > b}


def formula(enc: smt.Encoder, s: Subject, c: Cond):
    """The z3 Bool: the subject is as `c` allows."""
    if s.kind == "atom":
        parts = []
        if True in c.values:
            parts.append(s.boo.t)
        if False in c.values:
            parts.append(s.boo.f)
        if None in c.values:
            parts.append(enc.conj(enc.neg(s.boo.t), enc.neg(s.boo.f)))
        return enc.disj(*parts)
    known = enc.F
    if c.known:
        terms = [s.k]
        if s.kind == "num":
            if c.lo is not None:
                terms.append(s.v >= enc.real(c.lo[0]) if c.lo[1] else s.v > enc.real(c.lo[0]))
            if c.hi is not None:
                terms.append(s.v <= enc.real(c.hi[0]) if c.hi[1] else s.v < enc.real(c.hi[0]))
        elif s.kind == "time":
            terms += [_Z3REL[rel](s.v, s.lens[i]) for i, rel in c.rels]
        elif c.members is not None:
            terms.append(enc.disj(*(s.v == enc.code(m) for m in sorted(c.members))))
        known = enc.conj(*terms)
    unknown = enc.neg(s.k) if c.unknown else enc.F
    return enc.disj(known, unknown)


def cell(s: Subject, model, enc: smt.Encoder) -> Cond:
    """The cell of `s` that the model is in."""
    ev = lambda x: model.eval(x, model_completion=True)  # noqa: E731
    if s.kind == "atom":
        t, f = z3.is_true(ev(s.boo.t)), z3.is_true(ev(s.boo.f))
        return Cond(values=frozenset({True if t else False if f else None}))
    if not z3.is_true(ev(s.k)):
        return Cond(unknown=True, known=False)
    if s.kind == "num":
        if s.v is None:
            return Cond()
        v = smt._frac(ev(s.v))
        if v in s.thresholds:
            return Cond(lo=(v, True), hi=(v, True))
        below = [c for c in s.thresholds if c < v]
        above = [c for c in s.thresholds if c > v]
        return Cond(lo=(below[-1], False) if below else None, hi=(above[0], False) if above else None)
    if s.kind == "time":
        d = ev(s.v).as_long()
        rels = []
        for i, ln in enumerate(s.lens):
            n = ev(ln).as_long()
            rels.append((i, "<" if d < n else "==" if d == n else ">"))
        return Cond(rels=tuple(rels))
    return Cond(members=frozenset({enc.member(ev(s.v).as_long())}))


def directions(s: Subject, c: Cond, model, enc: smt.Encoder) -> list[Callable[[Cond], Cond | None]]:
    """The ways a condition can widen, in the order they are tried. Each maps a condition to
    a wider one (None: nothing more that way); the search applies one again and again while
    the region stays inside the formula."""
    out: list = []
    if s.kind == "atom":
        for v in (True, False, None):
            if v in _atom_values(s):
                out.append(lambda c, v=v: None if v in c.values else replace(c, values=c.values | {v}))
        return out
    if s.kind == "num" and s.thresholds:
        ths = s.thresholds

        # an unknown-only cell takes in the values below the lowest threshold (or above the
        # highest), then grows as a known one does
        def from_below(c: Cond) -> Cond | None:
            return None if c.known else replace(c, known=True, lo=None, hi=(ths[0], False))

        def from_above(c: Cond) -> Cond | None:
            return None if c.known else replace(c, known=True, lo=(ths[-1], False), hi=None)

        def up(c: Cond) -> Cond | None:
            if not c.known or c.hi is None:
                return None
            x, incl = c.hi
            if not incl:
                return replace(c, hi=(x, True))
            nxt = [t for t in ths if t > x]
            return replace(c, hi=(nxt[0], False) if nxt else None)

        def down(c: Cond) -> Cond | None:
            if not c.known or c.lo is None:
                return None
            x, incl = c.lo
            if not incl:
                return replace(c, lo=(x, True))
            nxt = [t for t in ths if t < x]
            return replace(c, lo=(nxt[-1], False) if nxt else None)

        out += [from_below, up, from_above, down]
    elif s.kind == "time" and c.known:
        ev = lambda x: model.eval(x, model_completion=True)  # noqa: E731
        d = ev(s.v).as_long()
        for i in sorted(range(len(s.lens)), key=lambda i: abs(ev(s.lens[i]).as_long() - d)):
            def relax(c: Cond, i=i) -> Cond | None:
                rels = dict(c.rels)
                rel = rels.get(i)
                if rel is None:
                    return None
                wider = {"<": "<=", ">": ">=", "==": "<="}.get(rel)
                if wider is None:
                    del rels[i]
                else:
                    rels[i] = wider
                return replace(c, rels=tuple(sorted(rels.items())))

            def other_side(c: Cond, i=i) -> Cond | None:
                rels = dict(c.rels)
                if rels.get(i) != "==":
                    return None
                rels[i] = ">="
                return replace(c, rels=tuple(sorted(rels.items())))

            out += [relax, other_side, relax]
    elif s.kind == "enum":
        def add(c: Cond, m: str) -> Cond | None:
            if not c.known:
                return replace(c, known=True, members=frozenset({m}))
            return None if c.members is None or m in c.members else replace(c, members=c.members | {m})

        for m in s.thresholds:
            out.append(lambda c, m=m: add(c, m))
    if s.can_be_unknown:
        out.append(lambda c: None if c.unknown else replace(c, unknown=True))
    return out


def describe(s: Subject, c: Cond) -> str:
    """'tx in (3, 5]', 'ALT missing', 'sex = male or unknown', 'fulfilled(order) is false'."""
    if s.kind == "atom":
        named = s.tree is not None and s.tree.get("op") in ("fact", "var")
        words = []
        for v in (True, False, None):
            if v in c.values:
                words.append("unknown" if v is None else (("= " if named else "is ") + ("true" if v else "false")))
        if words == ["unknown"]:
            return f"{s.text} unknown"
        text = f"{s.text} {' or '.join(words)}".replace(" or = ", " or ").replace(" or is ", " or ")
        return f"({text})" if len(words) > 1 else text
    missing = "missing" if s.lab else "unknown"
    if not c.known and s.alias:
        return f"{s.alias} missing"
    if s.alias:
        missing = f"{s.alias} missing"
    if not c.known:
        if s.kind == "time" and s.anchor != smt.ENTRY:
            return f"{s.anchor} never recommended"
        return f"{s.text} {missing}"
    if s.kind == "num":
        what = _interval(s.text, c.lo, c.hi)
    elif s.kind == "time":
        what = _time_text(s, c)
    elif c.members is None:
        what = f"{s.text} known"
    else:
        ms = [m for m in s.thresholds if m in c.members]
        what = f"{s.text} = {ms[0]}" if len(ms) == 1 else f"{s.text} in {{{', '.join(ms)}}}"
    if c.unknown and s.can_be_unknown:
        if s.kind == "time":
            return f"({what} or {s.anchor} never recommended)"
        return f"({what} or {s.alias} missing)" if s.alias else f"({what} or {missing})"
    return what


def _interval(name: str, lo, hi) -> str:
    f = lambda x: smt.fmt(Fraction(x))  # noqa: E731
    if lo is None and hi is None:
        return f"{name} known"
    if lo is not None and hi is not None:
        if lo[0] == hi[0]:
            return f"{name} = {f(lo[0])}"
        return f"{name} in {'[' if lo[1] else '('}{f(lo[0])}, {f(hi[0])}{']' if hi[1] else ')'}"
    if lo is not None:
        return f"{name} {'>=' if lo[1] else '>'} {f(lo[0])}"
    return f"{name} {'<=' if hi[1] else '<'} {f(hi[0])}"


def _time_text(s: Subject, c: Cond) -> str:
    if not c.rels:
        return f"{s.text} known"
    parts = []
    for i, rel in c.rels:
        d = s.thresholds[i]
        parts.append(f"{s.text} {'=' if rel == '==' else rel} {d.amount} {d.unit}")
    return " and ".join(parts)


# ---------------------------------------------------------------------------- the search


@dataclass
class Region:
    """One box of inputs: `conds` [(subject, condition)], the labs missing throughout it,
    an example inside it, and (for unassessable regions) the rules undecided there."""

    conds: list
    missing: list = field(default_factory=list)
    example: smt.Example | None = None
    undecided: list = field(default_factory=list)  # rule indices

    @property
    def text(self) -> str:
        parts = [describe(s, c) for s, c in self.conds]
        shown = {s.lab or s.alias for s, c in self.conds if (s.lab or s.alias) and not c.known}
        extra = [lab for lab in self.missing if lab not in shown]
        body = " and ".join(parts) if parts else "any values"
        if extra:
            body += f" ({', '.join(extra)} missing)"
        return body


@dataclass
class Regions:
    regions: list
    complete: bool  # False: more regions exist than were listed


def search(enc: smt.Encoder, prover, ctx_lit, phi_lit, subs: list[Subject], ins: smt.Inputs,
           limit: int = LIMIT, undecided: list | None = None) -> Regions:
    """Every region where `ctx_lit and phi_lit` hold (literals of the prover's current scope),
    up to `limit`. `undecided`: [(rule index, literal that holds where that rule is the
    undecided one)]: each region lists the rules whose literal can hold in it."""
    found: list[Region] = []
    blocks: list = []
    lab_known = [(lab, enc.lab(lab).known) for lab in sorted(ins.labs, key=list(enc.labs).index)]
    while True:
        model = prover.model(ctx_lit, phi_lit, *blocks)
        if model is None or len(found) == limit:
            found.sort(key=lambda r: (len(r.conds) + len(r.missing), r.text))
            return Regions(found, model is None)
        box = {s.key: cell(s, model, enc) for s in subs}

        def lit(b: dict):
            return prover.define(enc.conj(*(formula(enc, s, b[s.key]) for s in subs if s.key in b)))

        def inside(trial: dict) -> bool:
            return not prover.holds(ctx_lit, lit(trial), z3.Not(phi_lit))

        def grows(trial: dict, old: dict) -> bool:
            """Does `trial` take in inputs that `old` leaves out (and that can happen)?"""
            return prover.holds(ctx_lit, phi_lit, lit(trial), z3.Not(lit(old)))

        # drop the subjects that do not matter: first those with a value in the model, then the
        # unknown ones derived from labs (keeping a missing lab, the likelier cause)
        for s in sorted(subs, key=lambda s: (not _valued(box[s.key]), bool(s.lab or s.alias))):
            trial = dict(box)
            del trial[s.key]
            if inside(trial):
                box = trial
        # then widen the others, one way at a time, while the region stays inside and grows
        # (or gets simpler: a bound fewer)
        for s in subs:
            if s.key not in box:
                continue
            for step in directions(s, box[s.key], model, enc):
                while s.key in box:
                    wider = step(box[s.key])
                    if wider is None:
                        break
                    trial = dict(box)
                    if wider.is_any(s):
                        del trial[s.key]
                    else:
                        trial[s.key] = wider
                    if not inside(trial):
                        break
                    if not (s.key not in trial or _bounds(wider) < _bounds(box[s.key]) or grows(trial, box)):
                        break
                    box = trial
        conds = [(s, box[s.key]) for s in subs if s.key in box]
        box_lit = prover.define(enc.conj(*(formula(enc, s, c) for s, c in conds)))
        region = Region(conds)
        for lab, k in lab_known:
            if not prover.holds(ctx_lit, phi_lit, box_lit, k):
                region.missing.append(lab)
        for i, where in undecided or ():
            if prover.holds(ctx_lit, phi_lit, box_lit, where):
                region.undecided.append(i)
        region.example = prover.witness([ctx_lit, phi_lit, box_lit], ins)
        found.append(region)
        blocks.append(z3.Not(box_lit))
