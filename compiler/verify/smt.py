"""Expression trees of the compiled graph -> z3 formulas: the run-time meaning of guards.

This module is the verifier's whole semantics, and its back end of the expression IR
(`Encoder` is an `rxwatch.compiler.ir.Visitor`: one `visit_<op>` per op). Read it next to
simulator/expr.py and docs/language.md ("Unknown values"), which it must match exactly.
Everything else in compiler/verify asks questions in terms of the formulas built here.

Values are three-valued, exactly as at run time: every sub-expression has a `known` part and
a value. A boolean is encoded "dual rail", as two z3 Bools `t` (it is known and true) and `f`
(it is known and false), never both; unknown is `not t and not f`. Kleene's logic is then
plain Boolean algebra on the rails: `not` swaps them; `a and b` is true when both are true
and false when either is false; `or` dually. Numbers are Num(known, Real), enumeration
values Enm(known, Int code).

Inputs, and their domains (one symbol each, shared by every guard of a query):

- lab L: `known` (Bool: a result in the panel), `value` (Real >= 0); a result may carry its
  own ULN (`own`: Bool, `uln`: Real > 0), else the lab's declared default ULN applies, else
  uln(L) is unknown. `xuln(L)` is a ratio `r` (Real >= 0). Only what the protocol uses is
  created: when L is used only through xuln(L), `r` alone stands for it (value and ULN are
  free, so any ratio >= 0 is possible); when the raw value is used too, `value = 0` exactly
  when `r = 0` (value / uln with any uln > 0); when uln(L) is used, `r * uln = value`.
- fact F: always known (a timeline gives every fact a value, or its default): Bool, Real,
  or an enumeration member (an Int code, one per member name of the protocol).
- var V: `known` and a value. A var with a default, that is only ever set to values that
  are always known, is always known. A var whose every `set` is a constant can only hold
  its default or those constants (the domain is refined to that set).
- action A in `since(A)`: `known` (ever recommended) and `days` (Int >= 0, since the last
  recommendation). A duration of N months after L is `len_L(N)` days, an Int whose possible
  values (and joint values, for several N with one action) come from calendar.month_spans:
  exact. Weeks are 7 days; years are 12 months (dateutil clamps both alike).
- `since entry`: like since(A) for an anchor `ENTRY` (the day the current state was
  entered) that is always known.
- `fulfilled(A)`: an always-known Bool per action; false when no `do` recommends A (no order
  of it is ever open). In a panel handler it implies that the labs of one of A's `fulfilled
  by` alternatives have results (tables.panel_context).

Rules (as the simulator's): arithmetic with an unknown operand is unknown, and so is a
division by zero; max/min ignore unknown operands and are unknown when all are; a
comparison link with an unknown operand is unknown, and a chain is false when a known link is
false, else unknown when a link is unknown, else true; `x in {...}` with x unknown is
unknown; `not`/`and`/`or` are Kleene's; `known(X)` and `fulfilled(A)` are never unknown. A
guard holds when it is (known) true. Durations compare on dates: `since(A) op D` is
`today op last(A) + D`, `since(A) op since(B)` is `last(B) op last(A)`, `D1 op D2` is
`today + D1 op today + D2`. Numbers are exact (`ir.exact`): the decimal the graph shows.

`Encoder.example(model)` turns a model back into concrete inputs (an `Example`) that the
simulator's evaluator gives the same verdict on: tests/test_verify.py checks it.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Iterable, Mapping

import z3
from z3 import z3core
from z3.z3 import _to_ast_array

from .. import ir
from . import calendar

TODAY = "@today"  # the anchor of durations compared with durations
ENTRY = "@entry"  # the anchor of `since entry`: the day the current state was entered


class VerifyError(Exception):
    """A graph the verifier cannot read (written by hand, or a compiler bug)."""


# ---------------------------------------------------------------------------- values


@dataclass(frozen=True, slots=True)
class Num:
    k: Any  # z3 Bool: known
    v: Any  # z3 Real


@dataclass(frozen=True, slots=True)
class Boo:
    """A three-valued boolean, dual rail: `t` known and true, `f` known and false."""

    t: Any
    f: Any


@dataclass(frozen=True, slots=True)
class Enm:
    k: Any
    c: Any  # z3 Int: the member's code


@dataclass(frozen=True, slots=True)
class Lit:
    name: str  # an enumeration member, typed by what it meets


@dataclass(frozen=True, slots=True)
class Dur:
    amount: int
    unit: str


@dataclass(frozen=True, slots=True)
class Since:
    action: str  # an action, or ENTRY


_CMP = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
}

FLIP = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}


def _days(amount: int, unit: str) -> int | None:
    u = unit.rstrip("s")
    if u == "day":
        return int(amount)
    if u == "week":
        return 7 * int(amount)
    return None


def _months(amount: int, unit: str) -> int:
    u = unit.rstrip("s")
    if u == "month":
        return int(amount)
    if u == "year":
        return 12 * int(amount)
    raise VerifyError(f"unknown time unit {unit!r}")


def _exact(v) -> int | Fraction:
    try:
        return ir.exact(v)
    except ir.IRError as e:
        raise VerifyError(str(e)) from None


# ---------------------------------------------------------------------------- symbols


@dataclass
class LabSyms:
    name: str
    default: int | Fraction | None  # the declared ULN
    known: Any
    value: Any = None  # Real >= 0, when the raw value (or uln) is used
    ratio: Any = None  # Real >= 0, when xuln is used
    own: Any = None  # Bool: the result carries its own ULN
    uln: Any = None  # Real > 0: that ULN


@dataclass
class VarSyms:
    name: str
    kind: str  # 'bool', 'number', 'enum'
    known: Any
    value: Any


@dataclass
class SinceSyms:
    action: str
    known: Any
    days: Any  # Int >= 0
    months: dict = field(default_factory=dict)  # N months -> Int: days from last(A) to last(A) + N months


@dataclass
class Example:
    """Concrete inputs that witness a finding, in the simulator's terms (numbers exact)."""

    panel: dict = field(default_factory=dict)  # lab -> value in the lab's unit (int or Fraction), or None (no result)
    ulns: dict = field(default_factory=dict)  # lab -> the result's own ULN (absent: the default applies)
    facts: dict = field(default_factory=dict)
    vars: dict = field(default_factory=dict)  # var -> value, or None (unknown)
    last: dict = field(default_factory=dict)  # action -> date last recommended, or None (never)
    fulfilled: dict = field(default_factory=dict)  # action -> did today's results fulfil its open order
    drugs: dict = field(default_factory=dict)  # "held(D)" -> bool, "dose(D)" -> a level: the drugs as the replay has them
    today: datetime.date = datetime.date(2025, 1, 1)
    entered: datetime.date | None = None  # the day the current state was entered (when read)
    shown: list = field(default_factory=list)  # [(name, text)] what the message shows, in order
    probes: list = field(default_factory=list)  # truth of the formulas a caller asked about, in the model


# ---------------------------------------------------------------------------- the encoder


class Encoder(ir.Visitor):
    """Translates one protocol's trees; symbols and their domains are shared by all queries."""

    def __init__(self, graph, recommended: set[str] | None = None) -> None:
        g = graph.graph
        # one z3 context per protocol: the same protocol gives the same models, run after run
        self.ctx = z3.Context()
        self.T = z3.BoolVal(True, self.ctx)
        self.F = z3.BoolVal(False, self.ctx)
        self.recommended = recommended  # actions some `do` recommends (None: any may be)
        self.graph = graph
        self.labs: Mapping[str, Mapping] = g.get("labs") or {}
        self.facts: Mapping[str, Mapping] = g.get("facts") or {}
        self.vars: Mapping[str, Mapping] = g.get("vars") or {}
        self.lets: Mapping[str, Mapping] = g.get("lets") or {}
        self.actions: Mapping[str, Mapping] = g.get("actions") or {}
        self.codes: dict[str, int] = {}
        for decl in (*self.facts.values(), *self.vars.values()):
            for m in decl.get("members") or ():
                self.codes.setdefault(m, len(self.codes))
        self._domain: list = []  # constraints not yet given to the solver
        self._given: list = []  # those given already (take_domain), for `domain`
        self._lab: dict[str, LabSyms] = {}
        self._fact: dict[str, VarSyms] = {}
        self._var: dict[str, VarSyms] = {}
        self._since: dict[str, SinceSyms] = {}
        self._fulfilled: dict[str, Any] = {}
        self._let: dict[str, Any] = {}
        self.drugs: Mapping[str, Mapping] = g.get("drugs") or {}
        self._drug: dict[str, Any] = {}  # "held(D)" ... -> its value
        self._let_busy: set[str] = set()
        self._cache: dict[int, Any] = {}
        self._usage = _lab_usage(graph)
        self._var_domains = _var_domains(graph)
        self._fresh = 0

    # -- logic that folds the constants true and false

    def conj(self, *xs):
        # the constants are folded by identity: every true/false the encoder makes is self.T/F
        T, F = self.T, self.F
        xs = [x for x in xs if x is not T]
        if any(x is F for x in xs):
            return F
        if not xs:
            return T
        return xs[0] if len(xs) == 1 else self._nary(z3core.Z3_mk_and, xs)

    def disj(self, *xs):
        T, F = self.T, self.F
        xs = [x for x in xs if x is not F]
        if any(x is T for x in xs):
            return T
        if not xs:
            return F
        return xs[0] if len(xs) == 1 else self._nary(z3core.Z3_mk_or, xs)

    def neg(self, x):
        if x is self.T:
            return self.F
        if x is self.F:
            return self.T
        return z3.BoolRef(z3core.Z3_mk_not(self.ctx.ref(), x.as_ast()), self.ctx)

    def _nary(self, mk, xs):
        # z3.And/z3.Or check and coerce every argument (~75 us each); the terms here are
        # already Booleans of this context, so the C API is called directly (~12 us)
        arr, n = _to_ast_array(xs)
        return z3.BoolRef(mk(self.ctx.ref(), n, arr), self.ctx)

    def real(self, x):
        return z3.RealVal(Fraction(_exact(x)), self.ctx)

    def int(self, n: int):
        return z3.IntVal(n, self.ctx)

    def bool(self, b: bool):
        return self.T if b else self.F

    def boo(self, k, b) -> Boo:
        """The three-valued boolean that is known when `k`, with value `b`."""
        if k is self.T:
            return Boo(b, self.neg(b))
        return Boo(self.conj(k, b), self.conj(k, self.neg(b)))

    def known_of(self, val) -> Any:
        """When a value is known (a z3 Bool)."""
        if isinstance(val, Boo):
            return self.disj(val.t, val.f)
        if isinstance(val, (Num, Enm)):
            return val.k
        if isinstance(val, Since):
            return self.since(val.action).known
        return self.T  # literals and durations

    # -- symbols (created on first use; their domain constraints are queued)

    def lab(self, name: str) -> LabSyms:
        s = self._lab.get(name)
        if s is not None:
            return s
        if name not in self.labs:
            raise VerifyError(f"lab '{name}' is not declared")
        decl = self.labs[name]
        default = decl.get("uln")
        s = LabSyms(name, None if default is None else _exact(default), z3.Bool(f"known:{name}", self.ctx))
        use = self._usage.get(name, set())
        if "raw" in use or "uln" in use:
            s.value = z3.Real(f"lab:{name}", self.ctx)
            self._domain.append(s.value >= 0)
        if "uln" in use or ("xuln" in use and s.default is None):
            s.own = z3.Bool(f"own-uln:{name}", self.ctx)
            s.uln = z3.Real(f"uln:{name}", self.ctx)
            self._domain.append(s.uln > 0)
        if "xuln" in use:
            s.ratio = z3.Real(f"xuln:{name}", self.ctx)
            self._domain.append(s.ratio >= 0)
            if "uln" in use:
                u = s.uln if s.default is None else z3.If(s.own, s.uln, self.real(s.default))
                self._domain.append(s.ratio * u == s.value)
            elif s.value is not None:
                self._domain.append((s.value == 0) == (s.ratio == 0))
        self._lab[name] = s
        return s

    def fact(self, name: str) -> VarSyms:
        s = self._fact.get(name)
        if s is None:
            decl = self.facts.get(name)
            if decl is None:
                raise VerifyError(f"fact '{name}' is not declared")
            s = self._fact[name] = self._value_syms("fact", name, decl)
        return s

    def var(self, name: str) -> VarSyms:
        s = self._var.get(name)
        if s is None:
            decl = self.vars.get(name)
            if decl is None:
                raise VerifyError(f"var '{name}' is not declared")
            s = self._var[name] = self._value_syms("var", name, decl)
            values, known = self._var_domains.get(name, (None, "free"))
            if known == "free":
                s.known = z3.Bool(f"known:var:{name}", self.ctx)
            elif known == "never":
                s.known = self.F
            if values is not None:
                self._domain.append(z3.Implies(s.known, self.disj(*(s.value == self._const(s.kind, v) for v in values))))
        return s

    def _value_syms(self, what: str, name: str, decl: Mapping) -> VarSyms:
        kind = decl.get("type")
        sym = f"{what}:{name}"
        if kind == "bool":
            v = z3.Bool(sym, self.ctx)
        elif kind == "number":
            v = z3.Real(sym, self.ctx)
        elif kind == "enum":
            v = z3.Int(sym, self.ctx)
            members = decl.get("members") or ()
            self._domain.append(self.disj(*(v == self.codes[m] for m in members)))
        else:
            raise VerifyError(f"{what} '{name}' has no type")
        return VarSyms(name, kind, self.T, v)

    def _const(self, kind: str, v):
        if kind == "bool":
            return self.bool(bool(v))
        if kind == "number":
            return self.real(v)
        return self.int(self.code(str(v)))

    def code(self, member: str) -> int:
        if member not in self.codes:
            self.codes[member] = len(self.codes)
        return self.codes[member]

    def member(self, code: int) -> str:
        return next((m for m, c in self.codes.items() if c == code), f"#{code}")

    def since(self, action: str) -> SinceSyms:
        s = self._since.get(action)
        if s is None:
            if action == TODAY:
                s = SinceSyms(action, self.T, self.int(0))
            elif action == ENTRY:
                s = SinceSyms(action, self.T, z3.Int("days-since-entry", self.ctx))
                self._domain.append(s.days >= 0)
            else:
                never = self.recommended is not None and action not in self.recommended
                s = SinceSyms(action, self.F if never else z3.Bool(f"recommended:{action}", self.ctx), z3.Int(f"days-since:{action}", self.ctx))
                self._domain.append(s.days >= 0)
            self._since[action] = s
        return s

    def fulfilled(self, action: str):
        """The Bool `fulfilled(action)`: false when no order of the action is ever open."""
        f = self._fulfilled.get(action)
        if f is None:
            if action not in self.actions:
                raise VerifyError(f"action '{action}' is not declared")
            never = (self.recommended is not None and action not in self.recommended) or not self.actions[action].get("orders")
            f = self._fulfilled[action] = self.F if never else z3.Bool(f"fulfilled:{action}", self.ctx)
        return f

    def fulfilment_implies(self):
        """In a panel: each fulfilled(A) used implies that the labs of one of A's `fulfilled
        by` alternatives have results."""
        out = []
        for action, f in self._fulfilled.items():
            if f is self.F:
                continue
            decl = self.actions[action]
            alts = decl.get("fulfilled_by") or ([decl.get("orders")] if decl.get("orders") else [])
            need = self.disj(*(self.conj(*(self.lab(lab).known for lab in alt if lab in self.labs)) for alt in alts)) if alts else self.T
            out.append(z3.Implies(f, need))
        return out

    def month_len(self, anchor: str, months: int):
        """Days from last(anchor) to last(anchor) + `months` months (an Int, or a number)."""
        if months == 0:
            return self.int(0)
        s = self.since(anchor)
        v = s.months.get(months)
        if v is None:
            v = s.months[months] = z3.Int(f"days-in:{months}-months-after:{anchor}", self.ctx)
            ms = tuple(sorted(s.months))
            syms = [s.months[m] for m in ms]
            self._domain.append(self.disj(*(self.conj(*(x == n for x, n in zip(syms, t))) for t in calendar.month_spans(ms))))
        return v

    def duration_days(self, anchor: str, d: Dur):
        days = _days(d.amount, d.unit)
        if days is not None:
            return self.int(days)
        return self.month_len(anchor, _months(d.amount, d.unit))

    def take_domain(self) -> list:
        """The domain constraints of the symbols created since the last call (for one solver
        that is given the encoder's formulas as they are made)."""
        out, self._domain = self._domain, []
        self._given += out
        return out

    def domain(self) -> list:
        """The domain constraints of every symbol created so far: for a new solver, when one
        encoder serves several (a symbol made for an earlier solver keeps its domain)."""
        self.take_domain()
        return list(self._given)

    def fresh_choice(self, n: int):
        self._fresh += 1
        c = z3.Int(f"choice:{self._fresh}", self.ctx)
        return c, self.conj(c >= 0, c < n)

    # -- translation

    def cond(self, tree: Mapping | None) -> Boo:
        """The three-valued truth of a guard or condition (None: `otherwise`, always true)."""
        if tree is None:
            return Boo(self.T, self.F)
        return self.boolean(self.value(tree))

    def guard(self, tree: Mapping | None):
        """The z3 Bool that holds exactly when the guard is true (None: `otherwise`)."""
        return self.cond(tree).t

    def boolean(self, val) -> Boo:
        if isinstance(val, Boo):
            return val
        raise VerifyError(f"a condition must be true or false, not {type(val).__name__}")

    def value(self, t: Mapping):
        key = id(t)
        hit = self._cache.get(key)
        if hit is not None and hit[0] is t:
            return hit[1]
        try:
            v = self.visit(t)
        except ir.IRError as e:
            raise VerifyError(str(e)) from None
        except RecursionError:
            raise VerifyError("an expression nested too deeply for the verifier") from None
        self._cache[key] = (t, v)
        return v

    # literals and names

    def visit_num(self, t):
        return Num(self.T, self.real(t["value"]))

    def visit_bool(self, t):
        b = bool(t["value"])
        return Boo(self.bool(b), self.bool(not b))

    def visit_enum(self, t):
        return Lit(t["value"])

    def visit_duration(self, t):
        return Dur(int(t["amount"]), t["unit"])

    def visit_lab(self, t):
        s = self.lab(t["name"])
        if s.value is None:
            raise VerifyError(f"lab '{t['name']}' used as a value but not scanned as one")
        return Num(s.known, s.value)

    def visit_fact(self, t):
        return self._named(self.fact(t["name"]))

    def visit_var(self, t):
        return self._named(self.var(t["name"]))

    def _named(self, s: VarSyms):
        if s.kind == "bool":
            return self.boo(s.known, s.value)
        if s.kind == "number":
            return Num(s.known, s.value)
        return Enm(s.known, s.value)

    def visit_let(self, t):
        return self.let(t["name"])

    def visit_action(self, t):
        raise VerifyError(f"action '{t['name']}' used as a value")

    def visit_since_entry(self, t):
        self.since(ENTRY)
        return Since(ENTRY)

    def visit_drug(self, t):
        raise VerifyError(f"drug '{t['name']}' used as a value")

    def drug_read(self, func: str, name: str):
        """`held(D)`, `stopped(D)`, `started(D)`: a Bool, never unknown (what the replay has
        done so far is free here); `dose(D)`: one of the drug's levels (a number in its unit,
        or a member for named levels), never unknown."""
        key = f"{func}({name})"
        v = self._drug.get(key)
        if v is not None:
            return v
        decl = self.drugs.get(name)
        if decl is None:
            raise VerifyError(f"drug '{name}' is not declared")
        if func in ("held", "stopped", "started"):
            b = z3.Bool(f"drug:{key}", self.ctx)
            v = Boo(b, self.neg(b))
        elif decl.get("kind") == "name":
            c = z3.Int(f"drug:{key}", self.ctx)
            self._domain.append(self.disj(*(c == self.code(str(m)) for m in decl.get("doses") or ())))
            v = Enm(self.T, c)
        else:
            x = z3.Real(f"drug:{key}", self.ctx)
            self._domain.append(self.disj(*(x == self.real(m) for m in decl.get("doses") or ())))
            v = Num(self.T, x)
        self._drug[key] = v
        return v

    # arithmetic

    def _operands(self, t) -> tuple[Num, Num]:
        a, b = (self._num(self.value(x)) for x in t["args"])
        return a, b

    def visit_neg(self, t):
        a = self._num(self.value(t["arg"]))
        return Num(a.k, -a.v)

    def visit_add(self, t):
        a, b = self._operands(t)
        return Num(self.conj(a.k, b.k), a.v + b.v)

    def visit_sub(self, t):
        a, b = self._operands(t)
        return Num(self.conj(a.k, b.k), a.v - b.v)

    def visit_mul(self, t):
        a, b = self._operands(t)
        return Num(self.conj(a.k, b.k), a.v * b.v)

    def visit_div(self, t):
        a, b = self._operands(t)
        return Num(self.conj(a.k, b.k, b.v != 0), a.v / b.v)

    def visit_call(self, t):
        func, args = t["func"], t.get("args") or []
        if func in ("max", "min"):
            vals = [self._num(self.value(a)) for a in args]
            acc = vals[0]
            for b in vals[1:]:
                better = (b.v > acc.v) if func == "max" else (b.v < acc.v)
                v = z3.If(self.conj(acc.k, b.k), z3.If(better, b.v, acc.v), z3.If(acc.k, acc.v, b.v))
                acc = Num(self.disj(acc.k, b.k), v)
            return acc
        if func in ("uln", "xuln"):
            if len(args) != 1 or args[0].get("op") != "lab":
                raise VerifyError(f"{func}() takes the name of a lab")
            s = self.lab(args[0]["name"])
            if func == "xuln":
                k = s.known if s.default is not None else self.conj(s.known, s.own)
                return Num(k, s.ratio)
            has_own = self.conj(s.known, s.own)
            if s.default is None:
                return Num(has_own, s.uln)
            return Num(self.T, z3.If(has_own, s.uln, self.real(s.default)))
        if func == "known":
            if len(args) != 1:
                raise VerifyError("known() takes one argument")
            a = args[0]
            k = self.lab(a["name"]).known if a.get("op") == "lab" else self.known_of(self.value(a))
            return Boo(k, self.neg(k))
        if func in ir.DRUG_READS:
            if len(args) != 1 or args[0].get("op") != "drug":
                raise VerifyError(f"{func}() takes the name of a drug")
            return self.drug_read(func, args[0]["name"])
        if func in ("since", "fulfilled"):
            if len(args) != 1 or args[0].get("op") != "action":
                raise VerifyError(f"{func}() takes the name of an action")
            name = args[0]["name"]
            if func == "since":
                self.since(name)
                return Since(name)
            f = self.fulfilled(name)
            return Boo(f, self.neg(f))
        raise VerifyError(f"unknown function {func}()")

    @staticmethod
    def _num(v) -> Num:
        if isinstance(v, Num):
            return v
        raise VerifyError(f"arithmetic needs numbers, not {type(v).__name__}")

    # comparisons and logic

    def visit_compare(self, t):
        vals = [self.value(x) for x in t["args"]]
        links = [self.link(o, a, b) for o, a, b in zip(t["ops"], vals, vals[1:])]
        # false when a known link is false, else unknown when a link is unknown, else true
        return Boo(self.conj(*(x.t for x in links)), self.disj(*(x.f for x in links)))

    def visit_in(self, t):
        a = self.value(t["arg"])
        if isinstance(a, Lit):
            b = a.name in t["members"]
            return Boo(self.bool(b), self.bool(not b))
        if not isinstance(a, Enm):
            raise VerifyError("'in' needs an enumeration value")
        return self.boo(a.k, self.disj(*(a.c == self.code(m) for m in t["members"])))

    def visit_not(self, t):
        a = self.boolean(self.value(t["arg"]))
        return Boo(a.f, a.t)

    def visit_and(self, t):
        xs = [self.boolean(self.value(x)) for x in t["args"]]
        return Boo(self.conj(*(x.t for x in xs)), self.disj(*(x.f for x in xs)))

    def visit_or(self, t):
        xs = [self.boolean(self.value(x)) for x in t["args"]]
        return Boo(self.disj(*(x.t for x in xs)), self.conj(*(x.f for x in xs)))

    def let(self, name: str):
        v = self._let.get(name)
        if v is not None:
            return v
        decl = self.lets.get(name)
        if decl is None:
            raise VerifyError(f"let '{name}' is not declared")
        if name in self._let_busy:
            raise VerifyError(f"let '{name}' is defined in terms of itself")
        self._let_busy.add(name)
        try:
            v = self._let[name] = self.value(decl["expr"])
        finally:
            self._let_busy.discard(name)
        return v

    def link(self, op: str, a, b) -> Boo:
        """One link `a op b` of a comparison chain, on values: unknown when an operand is."""
        cmp = _CMP.get(op)
        if cmp is None:
            raise VerifyError(f"unknown comparison {op!r}")
        if isinstance(a, (Dur, Since)) or isinstance(b, (Dur, Since)):
            return self._time_link(cmp, a, b)
        if isinstance(a, Lit) and isinstance(b, Lit):
            r = cmp(a.name, b.name)
            return Boo(self.bool(r), self.bool(not r))
        if isinstance(a, Lit):
            a = Enm(self.T, self.int(self.code(a.name)))
        if isinstance(b, Lit):
            b = Enm(self.T, self.int(self.code(b.name)))
        if type(a) is not type(b):
            raise VerifyError(f"cannot compare {type(a).__name__} with {type(b).__name__}")
        if isinstance(a, Boo):
            return self.boo(self.conj(self.known_of(a), self.known_of(b)), cmp(a.t, b.t))
        x, y = (a.v, b.v) if isinstance(a, Num) else (a.c, b.c)
        return self.boo(self.conj(a.k, b.k), cmp(x, y))

    def _time_link(self, cmp, a, b) -> Boo:
        if isinstance(a, Since) and isinstance(b, Dur):
            s = self.since(a.action)
            return self.boo(s.known, cmp(s.days, self.duration_days(a.action, b)))
        if isinstance(a, Dur) and isinstance(b, Since):
            s = self.since(b.action)
            return self.boo(s.known, cmp(self.duration_days(b.action, a), s.days))
        if isinstance(a, Since) and isinstance(b, Since):
            sa, sb = self.since(a.action), self.since(b.action)
            return self.boo(self.conj(sa.known, sb.known), cmp(sa.days, sb.days))
        if isinstance(a, Dur) and isinstance(b, Dur):
            r = cmp(self.duration_days(TODAY, a), self.duration_days(TODAY, b))
            return Boo(r, self.neg(r))
        raise VerifyError("a duration can only be compared with a duration")

    # -- what actions change (the zero-time loop analysis follows rules symbolically)

    def env(self) -> "Env":
        """Variables and since() as they stand before any action: the base symbols."""
        return Env(self)

    def run(self, actions, env: "Env", side: list, choose: int | None = None) -> "Env":
        """`env` after `actions`, as the simulator runs them: `set` stores its expression's
        value (known or not); `do A` makes since(A) 0 days, known; `if` takes its `then` when
        its condition is true, else (false or unknown) its `else`; `do one of` is a free
        choice among its options (its constraint goes to `side`), each alternative's own
        actions run when it is the one chosen; `choose`: the alternative taken by a choice
        of this list (an edge of one alternative). Windows and orders do not change what
        guards read."""
        for a in actions or ():
            kind = a.get("kind")
            if kind == "do":
                env.since[a["action"]] = (self.T, self.int(0))
            elif kind == "one_of":
                opts = list(a.get("options") or ())
                alts = a.get("alternatives") or [{"action": o, "actions": []} for o in opts]
                if choose is not None and a.get("alternatives"):
                    alt = alts[choose]
                    env.since[alt["action"]] = (self.T, self.int(0))
                    env = self.run(alt.get("actions"), env, side)
                    continue
                if any(alt.get("actions") for alt in alts):
                    c, dom = self.fresh_choice(len(alts))
                    side.append(dom)
                    branches = []
                    for alt in alts:
                        b = env.copy()
                        b.since[alt["action"]] = (self.T, self.int(0))
                        branches.append(self.run(alt.get("actions"), b, side))
                    merged = branches[-1]
                    for i in range(len(branches) - 2, -1, -1):
                        merged = self._merge(c == i, branches[i], merged)
                    env = merged
                    continue
                c, dom = self.fresh_choice(len(opts))
                side.append(dom)
                for i, o in enumerate(opts):
                    k, d = env.since.get(o) or (self.since(o).known, self.since(o).days)
                    env.since[o] = (z3.If(c == i, self.T, k), z3.If(c == i, self.int(0), d))
            elif kind == "set":
                val = self.value(a["value"])
                if isinstance(val, Lit):
                    k, v = self.T, self.int(self.code(val.name))
                elif isinstance(val, Boo):
                    k, v = self.disj(val.t, val.f), val.t
                elif isinstance(val, (Num, Enm)):
                    k, v = val.k, (val.v if isinstance(val, Num) else val.c)
                else:
                    raise VerifyError(f"'{a['var']}' cannot hold a duration")
                env.vars[self.var(a["var"]).name] = (env.subst(k), env.subst(v))
            elif kind == "if":
                cond = env.subst(self.guard(a["cond"]))
                then = self.run(a.get("then"), env.copy(), side)
                other = self.run(a.get("else"), env.copy(), side)
                env = self._merge(cond, then, other)
        return env

    def _merge(self, cond, a: "Env", b: "Env") -> "Env":
        out = Env(self)
        for name in sorted(set(a.vars) | set(b.vars)):
            s = self.var(name)
            ka, va = a.vars.get(name, (s.known, s.value))
            kb, vb = b.vars.get(name, (s.known, s.value))
            out.vars[name] = (z3.If(cond, ka, kb), z3.If(cond, va, vb))
        for name in sorted(set(a.since) | set(b.since)):
            s = self.since(name)
            ka, da = a.since.get(name, (s.known, s.days))
            kb, db = b.since.get(name, (s.known, s.days))
            out.since[name] = (z3.If(cond, ka, kb), z3.If(cond, da, db))
        return out

    # -- what a formula is about, and examples

    def inputs_of(self, trees: Iterable[Mapping | None]) -> "Inputs":
        """The labs, facts, vars, lets, actions (since), `since entry` and fulfilled() that
        `trees` read, lets followed."""
        ins = Inputs()
        seen: set[str] = set()
        stack = [t for t in trees if t is not None]
        while stack:
            for t in ir.walk(stack.pop()):
                op = t.get("op")
                if op == "lab":
                    ins.labs.add(t["name"])
                elif op == "fact":
                    ins.facts.add(t["name"])
                elif op == "var":
                    ins.vars.add(t["name"])
                elif op == "since_entry":
                    ins.entry = True
                elif op == "call" and t.get("func") in ("since", "fulfilled"):
                    name = t["args"][0]["name"]
                    (ins.actions if t["func"] == "since" else ins.fulfilled).add(name)
                elif op == "call" and t.get("func") in ir.DRUG_READS:
                    ins.drugs.add(f"{t['func']}({t['args'][0]['name']})")
                elif op == "let":
                    name = t["name"]
                    if name not in seen and name in self.lets:
                        seen.add(name)
                        ins.lets.append(name)
                        stack.append(self.lets[name]["expr"])
        order = list(self.lets)
        ins.lets.sort(key=order.index)
        return ins

    def example(self, model, ins: "Inputs", probes: Iterable = ()) -> Example:
        """Concrete inputs read from `model`, for the names in `ins`; `shown` for messages."""
        ex = Example()
        ev = lambda x: model.eval(x, model_completion=True)  # noqa: E731
        for name in sorted(ins.labs, key=list(self.labs).index):
            s = self.lab(name)
            if not z3.is_true(ev(s.known)):
                ex.panel[name] = None
                continue
            own = s.own is not None and z3.is_true(ev(s.own))
            value = _frac(ev(s.value)) if s.value is not None else None
            if "uln" in self._usage.get(name, ()):
                # uln(L) is used: the model has the ULN itself (and r * uln = value)
                if own:
                    ex.ulns[name] = _norm(_frac(ev(s.uln)))
            elif s.ratio is not None:
                r = _frac(ev(s.ratio))
                if s.default is None and not own:
                    value = value if value is not None else Fraction(1)  # xuln(L) is unknown: no ULN
                elif value is None:
                    u = _frac(ev(s.uln)) if own else Fraction(s.default)
                    value = r * u
                    if own:
                        ex.ulns[name] = _norm(u)
                elif r != 0:
                    u = value / r  # value = r * uln for some uln > 0: the default when it fits
                    if u != s.default:
                        ex.ulns[name] = _norm(u)
                elif s.default is None:
                    ex.ulns[name] = 1
            if value is None:  # only known(L) reads it: any value will do
                value = Fraction(1)
            ex.panel[name] = _norm(value)
        for name in sorted(ins.facts, key=list(self.facts).index):
            ex.facts[name] = self._concrete(self.fact(name), ev)
        for name in sorted(ins.vars, key=list(self.vars).index):
            ex.vars[name] = self._concrete(self.var(name), ev)
        for name in sorted(ins.fulfilled):
            ex.fulfilled[name] = z3.is_true(ev(self.fulfilled(name)))
        for key in sorted(ins.drugs):
            v = self._drug.get(key)
            if isinstance(v, Boo):
                ex.drugs[key] = z3.is_true(ev(v.t))
            elif isinstance(v, Num):
                ex.drugs[key] = _norm(_frac(ev(v.v)))
            elif isinstance(v, Enm):
                ex.drugs[key] = self.member(ev(v.c).as_long())
        anchors: dict[str, tuple[int, tuple, tuple]] = {}
        names = sorted(ins.actions) + ([ENTRY] if ins.entry else [])
        for name in names:
            if name not in self._since:
                continue
            s = self._since[name]
            if not z3.is_true(ev(s.known)):
                ex.last[name] = None
                continue
            ms = tuple(sorted(s.months))
            anchors[name] = (int(ev(s.days).as_long()), ms, tuple(int(ev(s.months[m]).as_long()) for m in ms))
        today_ms = tuple(sorted(self._since[TODAY].months)) if TODAY in self._since else ()
        today_t = tuple(int(ev(self._since[TODAY].months[m]).as_long()) for m in today_ms)
        ex.today = _pick_today(anchors, today_ms, today_t)
        for name, (days, _ms, _t) in anchors.items():
            day = ex.today - datetime.timedelta(days=days)
            if name == ENTRY:
                ex.entered = day
            else:
                ex.last[name] = day
        ex.shown = self._shown(ex, ins, ev)
        ex.probes = [z3.is_true(ev(p)) for p in probes]
        return ex

    def _concrete(self, s: VarSyms, ev):
        if not z3.is_true(ev(s.known)):
            return None
        v = ev(s.value)
        if s.kind == "bool":
            return z3.is_true(v)
        if s.kind == "number":
            return _norm(_frac(v))
        return self.member(v.as_long())

    def _shown(self, ex: Example, ins: "Inputs", ev) -> list:
        shown = []
        for name in ins.lets:
            v = self.let(name)
            if isinstance(v, Num):
                shown.append((name, fmt(_frac(ev(v.v))) if z3.is_true(ev(v.k)) else "unknown"))
            elif isinstance(v, Enm):
                shown.append((name, self.member(ev(v.c).as_long()) if z3.is_true(ev(v.k)) else "unknown"))
        for name, value in ex.panel.items():
            if value is None:
                shown.append((name, "missing"))
                continue
            unit = self.labs[name].get("unit")
            text = fmt(Fraction(value)) + (f" {unit}" if unit else "")
            if name in ex.ulns:
                text += f" (ULN {fmt(Fraction(ex.ulns[name]))})"
            shown.append((name, text))
        for table in (ex.facts, ex.vars):
            for name, value in table.items():
                shown.append((name, "unknown" if value is None else (str(value).lower() if isinstance(value, bool) else (fmt(Fraction(value)) if isinstance(value, (int, Fraction)) else str(value)))))
        for name, value in ex.fulfilled.items():
            shown.append((f"fulfilled({name})", str(value).lower()))
        for name, value in ex.drugs.items():
            shown.append((name, str(value).lower() if isinstance(value, bool) else fmt(Fraction(value)) if isinstance(value, (int, Fraction)) else str(value)))
        for name in sorted(ex.last):
            last = ex.last[name]
            shown.append((f"since({name})", "never recommended" if last is None else f"{(ex.today - last).days} days"))
        if ex.entered is not None:
            shown.append(("since entry", f"{(ex.today - ex.entered).days} days"))
        return shown

    def tweakable(self, ins: "Inputs") -> list:
        """Numeric symbols of `ins`, in display order: the ones worth rounding in examples."""
        out = []
        for name in sorted(ins.labs, key=list(self.labs).index):
            s = self.lab(name)
            out += [x for x in (s.ratio, s.value, s.uln) if x is not None]
        for name in sorted(ins.facts, key=list(self.facts).index):
            s = self.fact(name)
            if s.kind == "number":
                out.append(s.value)
        for name in sorted(ins.vars, key=list(self.vars).index):
            s = self.var(name)
            if s.kind == "number":
                out.append(s.value)
        for name in sorted(ins.actions) + ([ENTRY] if ins.entry else []):
            if name in self._since:
                out.append(self._since[name].days)
        return out


class Env:
    """Variables and since() after some actions: z3 terms over the base symbols.
    `subst(f)` rewrites a formula over the base symbols to read these values instead.
    (Labs, facts and fulfilled() cannot change within a day, so they are not part of it.)"""

    def __init__(self, enc: Encoder) -> None:
        self.enc = enc
        self.vars: dict[str, tuple] = {}  # var -> (known, value)
        self.since: dict[str, tuple] = {}  # action (or ENTRY) -> (known, days)

    def copy(self) -> "Env":
        e = Env(self.enc)
        e.vars = dict(self.vars)
        e.since = dict(self.since)
        return e

    def subst(self, f):
        enc = self.enc
        pairs = []
        for name, (k, v) in self.vars.items():
            s = enc.var(name)
            if s.known is not enc.T and s.known is not enc.F:
                pairs.append((s.known, k))
            pairs.append((s.value, v))
        for name, (k, days) in self.since.items():
            s = enc.since(name)
            if s.known is not enc.T and s.known is not enc.F:
                pairs.append((s.known, k))
            pairs.append((s.days, days))
        return z3.substitute(f, *pairs) if pairs else f


@dataclass
class Inputs:
    labs: set = field(default_factory=set)
    facts: set = field(default_factory=set)
    vars: set = field(default_factory=set)
    lets: list = field(default_factory=list)
    actions: set = field(default_factory=set)  # read by since()
    fulfilled: set = field(default_factory=set)  # read by fulfilled()
    entry: bool = False  # `since entry` is read
    drugs: set = field(default_factory=set)  # drug reads: "held(D)", "dose(D)", ...

    def __or__(self, other: "Inputs") -> "Inputs":
        lets = list(dict.fromkeys([*self.lets, *other.lets]))
        return Inputs(self.labs | other.labs, self.facts | other.facts, self.vars | other.vars, lets,
                      self.actions | other.actions, self.fulfilled | other.fulfilled, self.entry or other.entry,
                      self.drugs | other.drugs)


def _frac(v) -> Fraction:
    if z3.is_rational_value(v):
        return Fraction(v.numerator_as_long(), v.denominator_as_long())
    if z3.is_int_value(v):
        return Fraction(v.as_long())
    if z3.is_algebraic_value(v):
        return Fraction(v.approx(12).as_fraction())
    raise VerifyError(f"not a number: {v}")


def _norm(q: Fraction) -> int | Fraction:
    """An exact value as the simulator holds it: int when whole."""
    q = Fraction(q)
    return q.numerator if q.denominator == 1 else q


def fmt(x: Fraction) -> str:
    """A readable decimal: 3, 2.5, 0.3333 (exact when the decimal is short)."""
    x = Fraction(x)
    if x.denominator == 1:
        return str(x.numerator)
    text = ir.decimal_text(x)
    if text is not None and len(text) <= 10:
        return text
    text = f"{float(x):.4g}"
    if "e" in text:
        text = f"{float(x):.6f}".rstrip("0").rstrip(".")
    return text


def _pick_today(anchors: dict, today_ms: tuple, today_t: tuple) -> datetime.date:
    """A date `today` such that each anchor's day (today - days) gives the month lengths of
    the model, and today's own month lengths too (durations compared with durations). Exact
    for one anchor with months; searched for several."""
    need = [(days, ms, t) for days, ms, t in anchors.values() if ms]
    if today_ms:
        need.append((0, today_ms, today_t))
    if not need:
        return datetime.date(2025, 1, 1)
    days0, ms0, t0 = need[0]
    start = calendar.month_spans(ms0).get(t0)
    if start is None:
        return datetime.date(2025, 1, 1)
    if len(need) == 1:
        return start + datetime.timedelta(days=days0)
    first = start + datetime.timedelta(days=days0)
    for k in range(0, 146097):
        today = first + datetime.timedelta(days=k)
        if all(tuple(calendar.span_days(today - datetime.timedelta(days=d), m) for m in ms) == t for d, ms, t in need):
            return today
    return first


# ---------------------------------------------------------------------------- scans of the graph


def walk_actions(actions):
    """Every action of a list, the branches of `if`s and the actions of a choice's
    alternatives included (actions, not expressions)."""
    for a in actions or ():
        yield a
        kind = a.get("kind")
        if kind == "if":
            yield from walk_actions(a.get("then"))
            yield from walk_actions(a.get("else"))
        elif kind == "one_of":
            for alt in a.get("alternatives") or ():
                yield from walk_actions(alt.get("actions"))


def all_action_lists(graph):
    """Every list of actions of the graph: the states' entries and the rules' actions."""
    for _, data in graph.nodes(data=True):
        yield data.get("entry") or []
    for _, _, data in graph.edges(data=True):
        yield data.get("actions") or []


def all_trees(graph):
    """Every expression tree of the graph: lets, guards, `if` conditions, `set` values."""
    for decl in (graph.graph.get("lets") or {}).values():
        yield decl["expr"]
    for _, _, data in graph.edges(data=True):
        if data.get("guard") is not None:
            yield data["guard"]
    for actions in all_action_lists(graph):
        for a in walk_actions(actions):
            if a.get("kind") == "if":
                yield a["cond"]
            elif a.get("kind") == "set":
                yield a["value"]


def _lab_usage(graph) -> dict[str, set]:
    """lab -> how expressions use it: 'raw' (its value), 'uln' (uln(L)), 'xuln', 'known'."""
    use: dict[str, set] = {}
    for tree in all_trees(graph):
        named: set[int] = set()  # lab nodes that name the lab of a call (not its value)
        for t in ir.walk(tree):
            op = t.get("op")
            if op == "call" and t.get("func") in ("uln", "xuln", "known"):
                args = t.get("args") or ()
                if len(args) == 1 and args[0].get("op") == "lab":
                    use.setdefault(args[0]["name"], set()).add(t["func"])
                    named.add(id(args[0]))
            elif op == "lab" and id(t) not in named:
                use.setdefault(t["name"], set()).add("raw")
    return use


def _var_domains(graph) -> dict[str, tuple]:
    """var -> (its possible values, or None for any value of its type; 'always' known, 'never'
    known (no default and never set), or 'free')."""
    decls = graph.graph.get("vars") or {}
    sets: dict[str, list] = {name: [] for name in decls}
    for acts in all_action_lists(graph):
        for a in walk_actions(acts):
            if a.get("kind") == "set" and a.get("var") in sets:
                sets[a["var"]].append(a["value"])
    out = {}
    for name, decl in decls.items():
        values = [decl.get("default")] if decl.get("has_default") else []
        const = True
        for tree in sets[name]:
            op = tree.get("op")
            if op in ("num", "bool", "enum"):
                values.append(tree["value"])
            elif op == "neg" and tree["arg"].get("op") == "num":
                values.append(-_exact(tree["arg"]["value"]))
            else:
                const = False
        if not const:
            out[name] = (None, "free")
        elif not values:
            out[name] = (None, "never")  # no default and never set: always unknown
        else:
            uniq: list = []
            for v in values:
                if v not in uniq:
                    uniq.append(v)
            out[name] = (uniq, "always" if decl.get("has_default") else "free")
    return out
