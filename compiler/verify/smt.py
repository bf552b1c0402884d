"""Expression trees of the compiled graph -> z3 formulas: the run-time meaning of guards.

This module is the verifier's whole semantics; read it next to simulator/expr.py and
docs/language.md ("Unknown values"), which it must match exactly. Everything else in
compiler/verify asks questions in terms of the formulas built here.

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

Values (what a sub-expression means): Num(known, real), Boo(known, bool), Enm(known, code),
Lit(member name, typed by what it is compared with), Dur(amount, unit), Since(action).

Rules (as the simulator's): arithmetic with an unknown operand is unknown, and so is a
division by zero; max/min ignore unknown operands and are unknown when all are; every link
of a comparison chain needs both operands known, else the comparison is false; `x in {...}`
with x unknown is false; `not`/`and`/`or` are two-valued over their operands' truth (an
unknown boolean is not true); `known(X)` is X's `known`; a guard holds when its value is a
known `true`. Durations compare on dates: `since(A) op D` is `today op last(A) + D`,
`since(A) op since(B)` is `last(B) op last(A)`, `D1 op D2` is `today + D1 op today + D2`.
Numbers in the protocol are exact decimals (the simulator uses floats: they can differ only
exactly on a boundary such as 0.1 + 0.2 == 0.3).

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

from . import calendar

TODAY = "@today"  # the anchor of durations compared with durations


class VerifyError(Exception):
    """A graph the verifier cannot read (written by hand, or a compiler bug)."""


# ---------------------------------------------------------------------------- values


@dataclass(frozen=True, slots=True)
class Num:
    k: Any  # z3 Bool: known
    v: Any  # z3 Real


@dataclass(frozen=True, slots=True)
class Boo:
    k: Any
    b: Any  # z3 Bool


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
    action: str


_CMP = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
}


def _fraction(x) -> Fraction:
    return Fraction(repr(float(x))) if isinstance(x, float) else Fraction(x)


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


# ---------------------------------------------------------------------------- symbols


@dataclass
class LabSyms:
    name: str
    default: Fraction | None  # the declared ULN
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
    """Concrete inputs that witness a finding, in the simulator's terms."""

    panel: dict = field(default_factory=dict)  # lab -> value in the lab's unit, or None (no result)
    ulns: dict = field(default_factory=dict)  # lab -> the result's own ULN (absent: the default applies)
    facts: dict = field(default_factory=dict)
    vars: dict = field(default_factory=dict)  # var -> value, or None (unknown)
    last: dict = field(default_factory=dict)  # action -> date last recommended, or None (never)
    today: datetime.date = datetime.date(2025, 1, 1)
    shown: list = field(default_factory=list)  # [(name, text)] what the message shows, in order


# ---------------------------------------------------------------------------- the encoder


class Encoder:
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
        self.codes: dict[str, int] = {}
        for decl in (*self.facts.values(), *self.vars.values()):
            for m in decl.get("members") or ():
                self.codes.setdefault(m, len(self.codes))
        self._domain: list = []  # constraints not yet given to the solver
        self._lab: dict[str, LabSyms] = {}
        self._fact: dict[str, VarSyms] = {}
        self._var: dict[str, VarSyms] = {}
        self._since: dict[str, SinceSyms] = {}
        self._let: dict[str, Any] = {}
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
        return z3.RealVal(_fraction(x), self.ctx)

    def int(self, n: int):
        return z3.IntVal(n, self.ctx)

    def bool(self, b: bool):
        return self.T if b else self.F

    # -- symbols (created on first use; their domain constraints are queued)

    def lab(self, name: str) -> LabSyms:
        s = self._lab.get(name)
        if s is not None:
            return s
        if name not in self.labs:
            raise VerifyError(f"lab '{name}' is not declared")
        decl = self.labs[name]
        default = decl.get("uln")
        s = LabSyms(name, None if default is None else Fraction(repr(float(default))), z3.Bool(f"known:{name}", self.ctx))
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

    def since(self, action: str) -> SinceSyms:
        s = self._since.get(action)
        if s is None:
            if action == TODAY:
                s = SinceSyms(action, self.T, self.int(0))
            else:
                never = self.recommended is not None and action not in self.recommended
                s = SinceSyms(action, self.F if never else z3.Bool(f"recommended:{action}", self.ctx), z3.Int(f"days-since:{action}", self.ctx))
                self._domain.append(s.days >= 0)
            self._since[action] = s
        return s

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
        """The domain constraints of the symbols created since the last call."""
        out, self._domain = self._domain, []
        return out

    def fresh_choice(self, n: int):
        self._fresh += 1
        c = z3.Int(f"choice:{self._fresh}", self.ctx)
        return c, self.conj(c >= 0, c < n)

    # -- translation

    def guard(self, tree: Mapping | None):
        """The z3 Bool that holds exactly when the guard holds (None: `otherwise`)."""
        if tree is None:
            return self.T
        return self.truth(self.value(tree))

    def truth(self, val) -> Any:
        if isinstance(val, Boo):
            return self.conj(val.k, val.b)
        raise VerifyError(f"a condition must be true or false, not {type(val).__name__}")

    def value(self, t: Mapping):
        key = id(t)
        hit = self._cache.get(key)
        if hit is not None and hit[0] is t:
            return hit[1]
        v = self._value(t)
        self._cache[key] = (t, v)
        return v

    def _value(self, t: Mapping):
        op = t.get("op")
        if op == "num":
            return Num(self.T, self.real(t["value"]))
        if op == "bool":
            return Boo(self.T, self.bool(bool(t["value"])))
        if op == "enum":
            return Lit(t["value"])
        if op == "duration":
            return Dur(int(t["amount"]), t["unit"])
        if op == "lab":
            s = self.lab(t["name"])
            if s.value is None:
                raise VerifyError(f"lab '{t['name']}' used as a value but not scanned as one")
            return Num(s.known, s.value)
        if op in ("fact", "var"):
            s = self.fact(t["name"]) if op == "fact" else self.var(t["name"])
            return {"bool": Boo, "number": Num, "enum": Enm}[s.kind](s.known, s.value)
        if op == "let":
            return self.let(t["name"])
        if op == "action":
            raise VerifyError(f"action '{t['name']}' used as a value")
        if op == "call":
            return self._call(t["func"], t.get("args") or [])
        if op == "neg":
            a = self._num(self.value(t["arg"]))
            return Num(a.k, -a.v)
        if op in ("+", "-", "*", "/"):
            a, b = (self._num(self.value(x)) for x in t["args"])
            if op == "+":
                return Num(self.conj(a.k, b.k), a.v + b.v)
            if op == "-":
                return Num(self.conj(a.k, b.k), a.v - b.v)
            if op == "*":
                return Num(self.conj(a.k, b.k), a.v * b.v)
            return Num(self.conj(a.k, b.k, b.v != 0), a.v / b.v)
        if op == "compare":
            vals = [self.value(x) for x in t["args"]]
            links = [self._link(o, a, b) for o, a, b in zip(t["ops"], vals, vals[1:])]
            return Boo(self.T, self.conj(*links))
        if op == "in":
            a = self.value(t["arg"])
            if isinstance(a, Lit):
                return Boo(self.T, self.bool(a.name in t["members"]))
            if not isinstance(a, Enm):
                raise VerifyError("'in' needs an enumeration value")
            return Boo(self.T, self.conj(a.k, self.disj(*(a.c == self.code(m) for m in t["members"]))))
        if op == "not":
            return Boo(self.T, self.neg(self.truth(self.value(t["arg"]))))
        if op == "and":
            return Boo(self.T, self.conj(*(self.truth(self.value(x)) for x in t["args"])))
        if op == "or":
            return Boo(self.T, self.disj(*(self.truth(self.value(x)) for x in t["args"])))
        raise VerifyError(f"unknown expression operator {op!r}")

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

    @staticmethod
    def _num(v) -> Num:
        if isinstance(v, Num):
            return v
        raise VerifyError(f"arithmetic needs numbers, not {type(v).__name__}")

    def _call(self, func: str, args: list):
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
            if a.get("op") == "lab":
                return Boo(self.T, self.lab(a["name"]).known)
            v = self.value(a)
            if isinstance(v, (Lit, Dur)):
                return Boo(self.T, self.T)
            if isinstance(v, Since):
                return Boo(self.T, self.since(v.action).known)
            return Boo(self.T, v.k)
        if func == "since":
            if len(args) != 1 or args[0].get("op") != "action":
                raise VerifyError("since() takes the name of an action")
            self.since(args[0]["name"])
            return Since(args[0]["name"])
        raise VerifyError(f"unknown function {func}()")

    def _link(self, op: str, a, b):
        cmp = _CMP.get(op)
        if cmp is None:
            raise VerifyError(f"unknown comparison {op!r}")
        if isinstance(a, (Dur, Since)) or isinstance(b, (Dur, Since)):
            return self._time_link(cmp, a, b)
        if isinstance(a, Lit) and isinstance(b, Lit):
            return self.bool(cmp(a.name, b.name))
        if isinstance(a, Lit):
            a = Enm(self.T, self.int(self.code(a.name)))
        if isinstance(b, Lit):
            b = Enm(self.T, self.int(self.code(b.name)))
        if type(a) is not type(b):
            raise VerifyError(f"cannot compare {type(a).__name__} with {type(b).__name__}")
        x, y = (a.v, b.v) if isinstance(a, Num) else ((a.b, b.b) if isinstance(a, Boo) else (a.c, b.c))
        return self.conj(a.k, b.k, cmp(x, y))

    def _time_link(self, cmp, a, b):
        if isinstance(a, Since) and isinstance(b, Dur):
            s = self.since(a.action)
            return self.conj(s.known, cmp(s.days, self.duration_days(a.action, b)))
        if isinstance(a, Dur) and isinstance(b, Since):
            s = self.since(b.action)
            return self.conj(s.known, cmp(self.duration_days(b.action, a), s.days))
        if isinstance(a, Since) and isinstance(b, Since):
            sa, sb = self.since(a.action), self.since(b.action)
            return self.conj(sa.known, sb.known, cmp(sa.days, sb.days))
        if isinstance(a, Dur) and isinstance(b, Dur):
            return cmp(self.duration_days(TODAY, a), self.duration_days(TODAY, b))
        raise VerifyError("a duration can only be compared with a duration")

    # -- what actions change (the zero-time loop analysis follows rules symbolically)

    def env(self) -> "Env":
        """Variables and since() as they stand before any action: the base symbols."""
        return Env(self)

    def run(self, actions, env: "Env", side: list) -> "Env":
        """`env` after `actions`, as the simulator runs them: `set` stores its expression's
        value (known or not); `do A` makes since(A) 0 days, known; `if` takes the branch its
        condition picks; `do one of` is a free choice among its options (its constraint goes
        to `side`). Windows and orders do not change what guards read."""
        for a in actions or ():
            kind = a.get("kind")
            if kind == "do":
                env.since[a["action"]] = (self.T, self.int(0))
            elif kind == "one_of":
                opts = list(a.get("options") or ())
                c, dom = self.fresh_choice(len(opts))
                side.append(dom)
                for i, o in enumerate(opts):
                    k, d = env.since.get(o) or (self.since(o).known, self.since(o).days)
                    env.since[o] = (z3.If(c == i, self.T, k), z3.If(c == i, self.int(0), d))
            elif kind == "set":
                val = self.value(a["value"])
                if isinstance(val, Lit):
                    k, v = self.T, self.int(self.code(val.name))
                elif isinstance(val, (Num, Boo, Enm)):
                    k, v = val.k, (val.v if isinstance(val, Num) else val.b if isinstance(val, Boo) else val.c)
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
        """The labs, facts, vars, lets and actions that `trees` read, lets followed."""
        ins = Inputs()
        seen: set[str] = set()
        stack = [t for t in trees if t is not None]
        while stack:
            t = stack.pop()
            op = t.get("op")
            if op == "lab":
                ins.labs.add(t["name"])
            elif op == "fact":
                ins.facts.add(t["name"])
            elif op == "var":
                ins.vars.add(t["name"])
            elif op == "action":
                ins.actions.add(t["name"])
            elif op == "let":
                name = t["name"]
                if name not in seen and name in self.lets:
                    seen.add(name)
                    ins.lets.append(name)
                    stack.append(self.lets[name]["expr"])
            for key in ("args",):
                stack.extend(t.get(key) or ())
            if "arg" in t:
                stack.append(t["arg"])
        order = list(self.lets)
        ins.lets.sort(key=order.index)
        return ins

    def example(self, model, ins: "Inputs", *, panel_context: bool = True) -> Example:
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
                    ex.ulns[name] = float(_frac(ev(s.uln)))
            elif s.ratio is not None:
                r = _frac(ev(s.ratio))
                if s.default is None and not own:
                    value = value if value is not None else Fraction(1)  # xuln(L) is unknown: no ULN
                elif value is None:
                    u = _frac(ev(s.uln)) if own else s.default
                    value = r * u
                    if own:
                        ex.ulns[name] = float(u)
                elif r != 0:
                    u = value / r  # value = r * uln for some uln > 0: the default when it fits
                    if u != s.default:
                        ex.ulns[name] = float(u)
                elif s.default is None:
                    ex.ulns[name] = 1.0
            if value is None:  # only known(L) reads it: any value will do
                value = Fraction(1)
            ex.panel[name] = float(value)
        for name in sorted(ins.facts, key=list(self.facts).index):
            ex.facts[name] = self._concrete(self.fact(name), ev)
        for name in sorted(ins.vars, key=list(self.vars).index):
            ex.vars[name] = self._concrete(self.var(name), ev)
        anchors: dict[str, tuple[int, tuple, tuple]] = {}
        for name in sorted(ins.actions):
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
            ex.last[name] = ex.today - datetime.timedelta(days=days)
        ex.shown = self._shown(ex, ins, ev)
        return ex

    def _concrete(self, s: VarSyms, ev):
        if not z3.is_true(ev(s.known)):
            return None
        v = ev(s.value)
        if s.kind == "bool":
            return z3.is_true(v)
        if s.kind == "number":
            return float(_frac(v))
        code = v.as_long()
        return next((m for m, c in self.codes.items() if c == code), f"#{code}")

    def _shown(self, ex: Example, ins: "Inputs", ev) -> list:
        shown = []
        for name in ins.lets:
            v = self.let(name)
            if isinstance(v, Num):
                shown.append((name, fmt(_frac(ev(v.v))) if z3.is_true(ev(v.k)) else "unknown"))
            elif isinstance(v, Enm):
                shown.append((name, self._member(ev, v) if z3.is_true(ev(v.k)) else "unknown"))
        for name, value in ex.panel.items():
            if value is None:
                shown.append((name, "missing"))
                continue
            unit = self.labs[name].get("unit")
            text = fmt(Fraction(repr(value))) + (f" {unit}" if unit else "")
            if name in ex.ulns:
                text += f" (ULN {fmt(Fraction(repr(ex.ulns[name])))})"
            shown.append((name, text))
        for table in (ex.facts, ex.vars):
            for name, value in table.items():
                shown.append((name, "unknown" if value is None else (str(value).lower() if isinstance(value, bool) else (fmt(Fraction(repr(value))) if isinstance(value, float) else str(value)))))
        for name in sorted(ex.last):
            last = ex.last[name]
            shown.append((f"since({name})", "never recommended" if last is None else f"{(ex.today - last).days} days"))
        return shown

    def _member(self, ev, v: Enm) -> str:
        code = ev(v.c).as_long()
        return next((m for m, c in self.codes.items() if c == code), f"#{code}")

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
        for name in sorted(ins.actions):
            if name in self._since:
                out.append(self._since[name].days)
        return out


class Env:
    """Variables and since() after some actions: z3 terms over the base symbols.
    `subst(f)` rewrites a formula over the base symbols to read these values instead.
    (Labs and facts cannot change within a day, so they are not part of it.)"""

    def __init__(self, enc: Encoder) -> None:
        self.enc = enc
        self.vars: dict[str, tuple] = {}  # var -> (known, value)
        self.since: dict[str, tuple] = {}  # action -> (known, days)

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
    actions: set = field(default_factory=set)

    def __or__(self, other: "Inputs") -> "Inputs":
        lets = list(dict.fromkeys([*self.lets, *other.lets]))
        return Inputs(self.labs | other.labs, self.facts | other.facts, self.vars | other.vars, lets, self.actions | other.actions)


def _frac(v) -> Fraction:
    if z3.is_rational_value(v):
        return Fraction(v.numerator_as_long(), v.denominator_as_long())
    if z3.is_int_value(v):
        return Fraction(v.as_long())
    if z3.is_algebraic_value(v):
        return Fraction(v.approx(12).as_fraction())
    raise VerifyError(f"not a number: {v}")


def fmt(x: Fraction) -> str:
    """A readable decimal: 3, 2.5, 0.3333."""
    if x.denominator == 1:
        return str(x.numerator)
    text = f"{float(x):.4g}"
    if "e" in text:
        text = f"{float(x):.6f}".rstrip("0").rstrip(".")
    return text


def _pick_today(anchors: dict, today_ms: tuple, today_t: tuple) -> datetime.date:
    """A date `today` such that each action's last recommendation (today - days) gives the
    month lengths of the model, and today's own month lengths too (durations compared with
    durations). Exact for one anchor with months; searched for several."""
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


# ---------------------------------------------------------------------------- scans


def walk_actions(actions):
    for a in actions or ():
        yield a
        if a.get("kind") == "if":
            yield from walk_actions(a.get("then"))
            yield from walk_actions(a.get("else"))


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
            yield from _action_trees(a)


def _action_trees(a):
    if a.get("kind") == "if":
        yield a["cond"]
    elif a.get("kind") == "set":
        yield a["value"]


def _lab_usage(graph) -> dict[str, set]:
    """lab -> how expressions use it: 'raw' (its value), 'uln' (uln(L)), 'xuln', 'known'."""
    use: dict[str, set] = {}
    stack = list(all_trees(graph))
    while stack:
        t = stack.pop()
        op = t.get("op")
        if op == "lab":
            use.setdefault(t["name"], set()).add("raw")
        elif op == "call" and t.get("func") in ("uln", "xuln", "known") and len(t.get("args") or ()) == 1 and t["args"][0].get("op") == "lab":
            use.setdefault(t["args"][0]["name"], set()).add(t["func"])
            continue
        stack.extend(t.get("args") or ())
        if "arg" in t:
            stack.append(t["arg"])
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
                values.append(-tree["arg"]["value"])
            else:
                const = False
        if not const:
            out[name] = (None, "free")
        elif not values:
            out[name] = (None, "never")  # no default and never set: always unknown
        else:
            out[name] = (list(dict.fromkeys(values)), "always" if decl.get("has_default") else "free")
    return out
