"""Expression trees of the compiled graph -> Python functions: the simulator's back end of
the expression IR (compiler/ir.py).

Every guard, `let`, `set` value and `if` condition is an IR tree. The simulator evaluates
them many times per patient, so `Compiler` turns them, once per protocol, into Python source
(`_Code`, an `ir.Visitor`: one method per op) and compiles it: one function per handler
(`dispatcher`: it runs the branch of the rule that fires), per `if` condition and per `set`
value; the engine puts an action's `if` condition and `set` value in place in the code that
fires the rule instead (`inline`). The lets a function needs are computed at its start, once,
in dependency order, as local variables. The generated code never contains a name from the graph: names, numbers
and members are constants (`K0`, `K1`...), locals are numbered (`L0`, `_1`...); each source
is registered with `linecache` under its own `<rxwatch-generated N>` file name, so a
traceback shows it, and the engine turns any runtime failure into an error that names the
protocol line.

Values: exact numbers (`int` or `fractions.Fraction`: never floats, so the unit a result
came in can never change a decision), bools, str (enumeration members), None (unknown) and,
for time, `Since` (the day an action was last recommended, or the state entered) and `Dur`
(a duration literal). The semantics are those of docs/language.md ("Unknown values"),
three-valued as in CQL and Kleene's logic:

- arithmetic with an unknown operand is unknown (so is a division by zero);
- `max`/`min` ignore unknown operands, and are unknown when all are;
- a comparison with an unknown operand is unknown; a chain is false when a known link is
  false, else unknown when a link is unknown, else true;
- `not`/`and`/`or` are Kleene's: `false and unknown` is false, `true or unknown` is true,
  `not unknown` is unknown; `x in {...}` with x unknown is unknown;
- `known(X)` and `fulfilled(ACTION)` are never unknown; nor are `held(D)`, `stopped(D)` and
  `started(D)`, which read a drug's state in the replay (`Ctx.drugs`); `dose(D)` is its current
  level, unknown before it is started and once it is stopped.

Rule choice (`dispatcher`): strict first match. Rule i fires when its guard is true and every
earlier guard is false; `otherwise` when every earlier guard is false. A guard that is unknown
before any rule fired makes the handler *unassessable*: nothing fires, and the dispatcher calls
`on_unknown(ctx, undecided guard indices)`. In an `exclusive` handler (the verifier proves its
guards disjoint) a true guard fires whatever the others are.

Time: `since(A) < 6 months` compares calendar dates: `today < last(A) + 6 months`. More
generally a comparison involving durations is made on dates (`since(A) op D` is
`today op last(A) + D`; `since(A) op since(B)` is `last(B) op last(A)`), so calendar months
stay calendar months. `since(A)` of an action never recommended is unknown. `since entry` is
the time since the current state was entered (in a statechart, the state that declares the
rule: the engine sets the day per rule, `dispatcher(before=...)`).
"""

from __future__ import annotations

import datetime
import functools
import itertools
import linecache
import operator
import re
from fractions import Fraction
from typing import Any, Callable, Iterable, Mapping, Sequence

from rxwatch.compiler import ir
from rxwatch.compiler.verify.calendar import add_months

try:  # GMP's rationals: exact like fractions.Fraction, and about ten times faster
    from gmpy2 import mpq as Q
except ImportError:  # pragma: no cover - gmpy2 is a dependency; Fraction gives the same results, slower
    Q = Fraction


def exact_q(v) -> Any:
    """An input number (int, Fraction, or a float standing for its decimal) as the runtime's
    exact rational. Fraction's own fields are read directly: `Q(fraction)` goes through its
    properties and costs three times as much, once per result."""
    t = type(v)
    if t is int:
        return Q(v)
    if t is Fraction:
        return Q(v._numerator, v._denominator)
    if t is float:
        return Q(ir.exact(v))
    return Q(v)

__all__ = ["Ctx", "Dur", "Since", "ExprError", "Compiler", "shift", "MAX_DATE", "Q"]

Fn = Callable[["Ctx"], Any]

_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}

MAX_DATE = datetime.date(9999, 12, 31)


@functools.lru_cache(maxsize=1 << 16)
def shift(day: datetime.date, amount: int, unit: str) -> datetime.date:
    """`day` + `amount` `unit`: days and weeks exactly, months and years by the calendar
    (2025-01-31 + 1 month = 2025-02-28; 2024-02-29 + 1 year = 2025-02-28). A date past the
    calendar's end is the calendar's last day (9999-12-31).

    Memoised: a replay asks for the same few windows from the same dates again and again."""
    try:
        if unit in ("days", "day"):
            return day + datetime.timedelta(days=amount)
        if unit in ("weeks", "week"):
            return day + datetime.timedelta(days=7 * amount)
        if unit in ("months", "month"):
            return add_months(day, amount)  # the verifier's calendar: one clamping rule for both
        if unit in ("years", "year"):
            return add_months(day, 12 * amount)
    except (OverflowError, ValueError):
        return MAX_DATE if amount >= 0 else datetime.date.min
    raise ValueError(f"unknown time unit {unit!r}")


class ExprError(Exception):
    """A tree the simulator cannot evaluate (a compiler bug, or a graph written by hand)."""


class Dur:
    """A duration literal: `6 months`."""

    __slots__ = ("amount", "unit")

    def __init__(self, amount: int, unit: str) -> None:
        self.amount = int(amount)
        self.unit = unit

    def __repr__(self) -> str:
        return f"Dur({self.amount} {self.unit})"


class Since:
    """`since(ACTION)` or `since entry`: the time elapsed since the day `last`."""

    __slots__ = ("last",)

    def __init__(self, last: datetime.date) -> None:
        self.last = last

    def __repr__(self) -> str:
        return f"Since({self.last})"


_NO_ORDERS: frozenset = frozenset()


class Ctx:
    """What an expression reads. The engine owns one per replay and updates it in place.

    `panel`: lab -> value (exact) of the current panel (outside a panel handler: the most
    recent one); `ulns`: lab -> the result's own ULN, for results that carry one; `facts`,
    `vars`: name -> value; `today`: the day being replayed; `last`: action -> the day it was
    last recommended; `entered`: the day the current state was entered; `fulfilled`: the
    actions whose open order today's results fulfilled; `drugs`: drug -> its state in the
    replay (an object with `read(func)`: `held`, `dose`, `stopped`, `started`)."""

    __slots__ = ("panel", "ulns", "facts", "vars", "today", "last", "entered", "fulfilled", "drugs")

    def __init__(self, facts: dict, vars: dict, today: datetime.date) -> None:
        self.panel: dict[str, Any] = {}
        self.ulns: dict[str, Any] = {}
        self.facts = facts
        self.vars = vars
        self.today = today
        self.last: dict[str, datetime.date] = {}
        self.entered = today
        self.fulfilled: frozenset | set = _NO_ORDERS
        self.drugs: Mapping[str, Any] = _NO_DRUGS


_NO_DRUGS: Mapping[str, Any] = {}

# ---------------------------------------------------------------------------- runtime helpers

def _max(*xs):
    vals = [x for x in xs if x is not None]
    return max(vals) if vals else None


def _min(*xs):
    vals = [x for x in xs if x is not None]
    return min(vals) if vals else None


def _since(last):
    return None if last is None else Since(last)


def _drug(c, func: str, name: str):
    """`held(D)`, `dose(D)`, `stopped(D)`, `started(D)`: the drug's state in the replay. A drug
    the replay has no state for (never acted on) is not started: not held, not stopped, and
    its dose is unknown."""
    d = c.drugs.get(name)
    if d is None:
        return None if func == "dose" else False
    return d.read(func)


def _kleene_and(values: Sequence[Any]) -> bool | None:
    if any(v is False for v in values):
        return False
    return None if any(v is None for v in values) else True


def _time_chain(ops: Sequence[str], values: Sequence[Any], today: datetime.date) -> bool | None:
    """A comparison chain with durations in it, decided on calendar dates (three-valued)."""
    links = []
    for op, x, y in zip(ops, values, values[1:]):
        links.append(None if x is None or y is None else _compare_time(_OPS[op], x, y, today))
    return _kleene_and(links)


def _compare_time(cmp, x, y, today: datetime.date) -> bool:
    if isinstance(x, Since) and isinstance(y, Dur):
        # today - last  op  y   <=>   today  op  last + y
        return cmp(today, shift(x.last, y.amount, y.unit))
    if isinstance(x, Dur) and isinstance(y, Since):
        return cmp(shift(y.last, x.amount, x.unit), today)
    if isinstance(x, Since) and isinstance(y, Since):
        return cmp(y.last, x.last)  # the longer ago, the larger the duration
    if isinstance(x, Dur) and isinstance(y, Dur):
        return cmp(shift(today, x.amount, x.unit), shift(today, y.amount, y.unit))
    raise ExprError(f"cannot compare {x!r} with {y!r}")


_XQ: dict = {}
"""A ULN (a runtime rational) -> {a value: value / ULN}: the multiples of the ULN made so far.
Values and ULNs repeat between patients (the readers share equal values, the ULNs are the
protocol's own), so a quotient is made once and shared: a lookup costs less than a division
of rationals, and a shared quotient's hash is computed once (the trace's `values` are cached
by it). At most _XQ_MAX quotients are kept per ULN; beyond, they are computed every time."""
_XQ_MAX = 50_000


def _xq(v, u):
    """v / u (two runtime rationals, u not zero), kept in _XQ."""
    q = v / u
    d = _XQ.get(u)
    if d is None:
        d = _XQ[u] = {}
    if len(d) < _XQ_MAX:
        d[v] = q
    return q


_RUNTIME = {"_max": _max, "_min": _min, "_since": _since, "_Since": Since, "_time_chain": _time_chain,
            "_Q": Q, "_drug": _drug, "_XQ": _XQ, "_xq": _xq}

DRUG_READS = ("held", "dose", "stopped", "started")
"""The functions that read a drug's state: all but `dose` are never unknown."""

# what a generated function binds at its start, when its code uses it
_PRELUDE = {
    "P": "P = c.panel",
    "U": "U = c.ulns",
    "F": "F = c.facts",
    "V": "V = c.vars",
    "T": "T = c.today",
    "A": "A = c.last",
}

_LITERALS = ("num", "bool", "enum")

_PANEL_OPS = frozenset(("num", "bool", "enum", "lab", "add", "sub", "mul", "div", "neg", "compare", "in", "not",
                        "and", "or"))
_PANEL_FUNCS = frozenset(("max", "min", "uln", "xuln", "known"))
"""What a let may read and still be `Compiler.panel_only` (a `call` other than these reads the
day, an action's last day, an order or a drug; `fact`, `var`, `since_entry`, `duration` are out)."""

GENERATED: dict[str, int] = {}
"""The file name of each generated function -> the protocol line it was made from (0: unknown),
so that a failure inside generated code can name the line (`protocol_line`)."""


def register(filename: str, source: str, line: int) -> None:
    """Make generated `source` readable by tracebacks (linecache) and map it to `line`."""
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    GENERATED[filename] = line


def protocol_line(tb) -> int:
    """The protocol line of the innermost generated function in traceback `tb` (0: none)."""
    line = 0
    while tb is not None:
        line = GENERATED.get(tb.tb_frame.f_code.co_filename, line) or line
        tb = tb.tb_next
    return line


# ---------------------------------------------------------------------------- code generation

class _Code(ir.Visitor):
    """The expressions of one generated function: temporaries, constants, lets and names used.
    Each `visit_<op>` returns Python expression text whose value is the op's (None: unknown)."""

    def __init__(self, owner: "Compiler", consts: dict, namer: Callable[[Any], str] | None = None,
                 temp: str = "_") -> None:
        self.owner = owner
        self.consts = consts
        self.namer = namer  # names a constant in the namespace of code generated around this (Compiler.inline)
        self.const_ids: dict[tuple, str] = {}
        self.temps = 0
        self.temp = temp  # how its temporaries' names begin
        self.lets: list[str] = []  # in dependency order
        self.let_lines: list[str] = []  # their assignments, in the same order
        self.uses: set[str] = set()
        self.sure: set[str] = {"True", "False"}  # code that is never unknown (no None test needed)
        self._sites: list[str] = []  # the comparisons of the fast path being written (`_plain`)
        self._reused: set[int] = set()  # those of them read again

    def tmp(self) -> str:
        self.temps += 1
        return f"{self.temp}{self.temps}"

    def named(self, code: str) -> tuple[str, str]:
        """(ref, first): `first` evaluates `code` and leaves its value in the name `ref`,
        which later uses read. A let's local or a constant is already a name."""
        if code.isidentifier():
            return code, code
        x = self.tmp()
        return x, f"({x} := {code})"

    def const(self, value: Any) -> str:
        """A constant of the generated code: the code names it `K<n>`, never spells it."""
        key = (type(value), value) if isinstance(value, (str, int, Fraction, Q, bool, frozenset)) else (id(value),)
        name = self.const_ids.get(key)
        if name is None:
            if self.namer is not None:
                name = self.const_ids[key] = self.namer(value)
            else:
                name = self.const_ids[key] = f"K{len(self.consts)}"
                self.consts[name] = value
            self.sure.add(name)
        return name

    def let(self, name: str) -> str:
        """The local that holds let `name`; its assignment (and first those of the lets it
        reads, in dependency order) is generated the first time. Iterative: a chain of lets
        may be longer than Python's recursion allows."""
        local = self.owner.let_local(name)
        if name in self.lets:
            return local
        stack = [(name, False)]
        visiting: set[str] = set()
        while stack:
            n, ready = stack.pop()
            if n in self.lets:
                continue
            decl = self.owner.let_decls[n]
            if ready:
                visiting.discard(n)
                # its dependencies are generated: no recursion into lets
                code = self.fast(decl["expr"]) if decl.get("type") == "bool" else self.gen(decl["expr"])
                self.lets.append(n)
                loc = self.owner.let_local(n)
                self.let_lines.append(f"{loc} = {code}")
                if code in self.sure:
                    self.sure.add(loc)
                continue
            if n in visiting:
                raise ExprError("a let is defined in terms of itself")
            visiting.add(n)
            stack.append((n, True))
            for dep in reversed(ir.let_refs(decl.get("expr"))):
                if dep not in self.lets:
                    if dep in visiting:
                        raise ExprError("a let is defined in terms of itself")
                    stack.append((dep, False))
        return local

    # -- the two-valued fast path

    def fast(self, t: Mapping) -> str:
        """The three-valued code of condition `t`, led by a two-valued fast path: when the
        values it reads are all known (the usual panel), plain Python `and`/`or`/`not` decide it
        with no unknown-tests; otherwise the three-valued code does. (`known(X) and ...` needs no
        X: the right-hand side is only read when X is known.)"""
        kleene = self.gen(t)
        if kleene in self.sure:
            return kleene
        outer = self._sites, self._reused  # (a bool let's own fast path is written while its reader's is)
        self._sites, self._reused = [], set()
        try:
            plain = self._plain(t, {})
            if plain is None:
                return kleene
            code, needs, _ = plain
            if self._sites:
                code = self._SITE.sub(self._bind, code)
        finally:
            self._sites, self._reused = outer
        if not needs or code == kleene:
            return code
        if all(self._GET.match(n) for n in needs) and all(
                n.get("op") in self._LOGIC for n in ir.walk(t)):
            # `and`/`or`/`not` of facts and vars read from their dicts: the three-valued code reads
            # each once and decides as soon as one decides; the fast path would read each twice
            return kleene
        cond = " and ".join(f"{n} is not None" for n in sorted(needs))
        return f"({code} if {cond} else {kleene})"

    _GET = re.compile(r"(?:[PFV]\.get\([KE]\d+\)|[FV]\[[KE]\d+\])\Z")
    _LOGIC = frozenset(("and", "or", "not", "fact", "var", "bool"))
    _SITE = re.compile("\x00(\\d+)\x00")  # a comparison's place in a fast path being written

    def _bind(self, match: re.Match) -> str:
        """A comparison's place in the fast path (`_plain`): `(x > y)`, or, when a later place
        reads its value, `(_cN := x > y)`."""
        i = int(match.group(1))
        if i in self._reused:
            return f"({self.temp}c{i} := {self._sites[i]})"
        return f"({self._sites[i]})"

    def _operand(self, t: Mapping) -> str | None:
        """A value's code to read twice (a name, a constant or a dict read), or None."""
        code = self.gen(t)
        if code in self.sure or code.isidentifier() or self._GET.match(code):
            return code
        return None

    def _plain(self, t: Mapping, done: Mapping[str, int]) -> tuple[str, set[str], dict[str, int]] | None:
        """(two-valued code of condition `t`, the value codes it needs known, the comparisons
        it always makes: text -> its place), or None. `done`: the comparisons made before `t` is
        read whenever it is (an `and`'s or an `or`'s earlier operands always make their first
        ones): a comparison among them is read from the name that kept its value, not made
        again (a comparison of two rationals costs more than the name). Its places are marked
        in the code, for `fast` to write (`_bind`)."""
        op = t.get("op")
        if op == "bool":
            return ("True" if t["value"] else "False"), set(), {}
        if op == "call" and t.get("func") in ("known", "fulfilled", "held", "stopped", "started"):
            return self.gen(t), set(), {}
        if op in ("let", "fact", "var"):
            code = self.gen(t)
            return code, (set() if code in self.sure else {code}), {}
        if op == "not":
            inner = self._plain(t["arg"], done)
            return None if inner is None else (f"(not {inner[0]})", inner[1], inner[2])
        if op == "in":
            x = self._operand(t["arg"])
            if x is None:
                return None
            return f"({x} in {self.const(frozenset(t['members']))})", (set() if x in self.sure else {x}), {}
        if op == "compare":
            if any(self._temporal(a) for a in t["args"]):
                return None
            xs = [self._operand(a) for a in t["args"]]
            if None in xs:
                return None
            links = [f"{xs[i]} {o} {xs[i + 1]}" for i, o in enumerate(t["ops"])]
            needs = {x for x in xs if x not in self.sure}
            if len(links) > 1:
                return f"({' and '.join(links)})", needs, {}
            place = done.get(links[0])
            if place is not None:  # made before whenever this is read: its value kept
                self._reused.add(place)
                return f"{self.temp}c{place}", needs, {}
            place = len(self._sites)
            self._sites.append(links[0])
            return f"\x00{place}\x00", needs, {links[0]: place}
        if op in ("and", "or"):
            codes, needs, guarded = [], set(), set()
            before, first = dict(done), None
            for a in t["args"]:
                part = self._plain(a, before)
                if part is None:
                    return None
                codes.append(part[0])
                needs |= part[1] - guarded
                if first is None:
                    first = part[2]
                before.update(part[2])  # made whenever the operands after this one are read
                if op == "and" and a.get("op") == "call" and a.get("func") == "known":
                    guarded.add(self.gen(a["args"][0]))  # what it makes known, for what follows
            return "(" + f" {op} ".join(codes) + ")", needs, first or {}
        return None

    def holds(self, t: Mapping) -> str:
        """Code whose truth is whether condition `t` is true (an `if`: unknown takes the `else`),
        reading what its three-valued code reads, in the same order: an `or` is true at its first
        true operand and reads them all otherwise, as Kleene's `or` does, with no test for
        unknown when none is true (a bool let that is an `or` is read through)."""
        op = t.get("op")
        if op == "or":
            return "(" + " or ".join(self.holds(a) for a in t["args"]) + ")"
        if op == "let":
            decl = self.owner.let_decls.get(t.get("name"))
            if isinstance(decl, Mapping) and decl.get("type") == "bool" and isinstance(decl.get("expr"), Mapping) \
                    and decl["expr"].get("op") == "or":
                return self.holds(decl["expr"])
        return f"({self.gen(t)} is True)"

    def certain(self, code: str) -> str:
        """Mark `code` as never unknown."""
        self.sure.add(code)
        return code

    def gen(self, t: Mapping) -> str:
        try:
            return self.visit(t)
        except (ir.IRError, KeyError, TypeError, AttributeError) as e:
            raise ExprError(f"not an expression the simulator can read: {type(e).__name__}: {e}") from None

    # -- literals and names

    def visit_num(self, t):
        return self.const(Q(ir.exact(t["value"])))

    def visit_bool(self, t):
        return "True" if t["value"] else "False"

    def visit_enum(self, t):
        return self.const(str(t["value"]))

    def visit_duration(self, t):
        return self.const(Dur(t["amount"], t["unit"]))

    def visit_lab(self, t):
        self.uses.add("P")
        return f"P.get({self.const(t['name'])})"

    def visit_fact(self, t):
        self.uses.add("F")
        if self.owner.declared:  # the ctx holds every declared fact (the graph's trees name declared ones only)
            return f"F[{self.const(t['name'])}]"
        return f"F.get({self.const(t['name'])})"  # None only for a fact with no value (a timeline gives every fact one)

    def visit_var(self, t):
        self.uses.add("V")
        if self.owner.declared:
            return f"V[{self.const(t['name'])}]"
        return f"V.get({self.const(t['name'])})"

    def visit_let(self, t):
        return self.let(t["name"])

    def visit_action(self, t):
        raise ExprError("an action used as a value; write since(ACTION)")

    def visit_since_entry(self, t):
        return self.certain("_Since(c.entered)")

    def visit_drug(self, t):
        raise ExprError("a drug used as a value; write held(D), dose(D), stopped(D) or started(D)")

    # -- arithmetic

    def _arith(self, t, symbol: str):
        (x, a), (y, b) = (self.named(self.gen(arg)) for arg in t["args"])
        if symbol == "/":  # exact: int / int would be a float
            return f"(None if {a} is None or {b} is None or not {y} else _Q({x}) / {y})"
        return f"(None if {a} is None or {b} is None else {x} {symbol} {y})"

    def visit_add(self, t):
        return self._arith(t, "+")

    def visit_sub(self, t):
        return self._arith(t, "-")

    def visit_mul(self, t):
        return self._arith(t, "*")

    def visit_div(self, t):
        return self._arith(t, "/")

    def visit_neg(self, t):
        x, a = self.named(self.gen(t["arg"]))
        return f"(None if {a} is None else -{x})"

    def visit_call(self, t):
        func, args = t["func"], t["args"]
        if func in ("max", "min"):
            if not args:
                raise ExprError(f"{func}() needs arguments")
            if len(args) == 2:  # inline: the larger (smaller) of the known ones, both evaluated
                (x, a), (y, b) = (self.named(self.gen(arg)) for arg in args)
                keep = ">=" if func == "max" else "<="
                return f"({y} if ({b} is None or True) and {a} is None else {x} if {y} is None or {x} {keep} {y} else {y})"
            return f"_{func}({', '.join(self.gen(a) for a in args)})"
        if func in ("uln", "xuln"):
            if len(args) != 1 or args[0].get("op") != "lab":
                raise ExprError(f"{func}() takes the name of a lab")
            lab = self.const(args[0]["name"])
            uln = (self.owner.labs.get(args[0]["name"]) or {}).get("uln")
            uln = None if uln is None else Q(ir.exact(uln))
            default = "None" if uln is None else self.const(uln)
            self.uses.add("U")
            if func == "uln":
                return f"U.get({lab}, {default})"
            self.uses.add("P")
            v, u = self.tmp(), self.tmp()
            if self.owner.rational_inputs:  # a quotient made before, else made and kept (_xq)
                d = self.tmp()
                div = f"(({d} := _XQ.get({u})) is not None and {d}.get({v}) or _xq({v}, {u}))"
                if uln:
                    # the usual result, with no ULN of its own: the multiples of the lab's default ULN,
                    # looked up in their own dict (_XQ's, found once here)
                    known = self.const(_XQ.setdefault(uln, {}))
                    return (f"(None if ({v} := P.get({lab})) is None else ({known}.get({v}) or _xq({v}, {default})) "
                            f"if not U or ({u} := U.get({lab})) is None else None if not {u} else {div})")
            else:
                div = f"_Q({v}, {u})"
            return f"(None if ({v} := P.get({lab})) is None or not ({u} := U.get({lab}, {default})) else {div})"
        if func == "known":
            if len(args) != 1:
                raise ExprError("known() takes one argument")
            if args[0].get("op") in ("num", "bool", "enum", "duration"):
                return "True"  # a literal is always known
            return self.certain(f"({self.gen(args[0])} is not None)")
        if func == "since":
            if len(args) != 1 or args[0].get("op") != "action":
                raise ExprError("since() takes the name of an action")
            self.uses.add("A")
            return f"_since(A.get({self.const(args[0]['name'])}))"
        if func == "fulfilled":
            if len(args) != 1 or args[0].get("op") != "action":
                raise ExprError("fulfilled() takes the name of an action")
            return self.certain(f"({self.const(args[0]['name'])} in c.fulfilled)")
        if func in DRUG_READS:
            if len(args) != 1 or args[0].get("op") != "drug":
                raise ExprError(f"{func}() takes the name of a drug")
            code = f"_drug(c, {self.const(func)}, {self.const(args[0]['name'])})"
            return code if func == "dose" else self.certain(code)
        raise ExprError("unknown function")

    # -- comparisons and logic (three-valued)

    def _temporal(self, t: Mapping) -> bool:
        op = t.get("op")
        if op in ("duration", "since_entry") or (op == "call" and t.get("func") == "since"):
            return True
        if op == "let":
            return (self.owner.let_decls.get(t["name"]) or {}).get("type") == "duration"
        return False

    def visit_compare(self, t):
        ops, args = list(t["ops"]), t["args"]
        for o in ops:
            if o not in _OPS:
                raise ExprError("unknown comparison")
        if len(args) != len(ops) + 1:
            raise ExprError("a comparison needs one operand more than operators")
        if any(self._temporal(a) for a in args):
            self.uses.add("T")
            return f"_time_chain({self.const(tuple(ops))}, ({', '.join(self.gen(a) for a in args)},), T)"
        names, firsts, unknown = [], [], []
        for a in args:
            code = self.gen(a)
            if code in self.sure:
                names.append(code)
                firsts.append(code)
            else:
                x, first = self.named(code)
                names.append(x)
                firsts.append(first)
                unknown.append(x)
        links = [f"{names[i]} {op} {names[i + 1]}" for i, op in enumerate(ops)]
        if not unknown:
            return self.certain(f"({' and '.join(links)})")
        if len(ops) == 1:
            tests = " or ".join(f"{f} is None" for f, x in zip(firsts, names) if x in unknown)
            return f"(None if {tests} else {links[0]})"
        # a chain: evaluate every operand, then false if a known link is false, else unknown
        # if a link is unknown, else true
        evals = ", ".join(firsts)
        link_vals = []
        for i in range(len(ops)):
            maybe = [n for n in (names[i], names[i + 1]) if n in unknown]
            cond = " or ".join(f"{n} is None" for n in maybe)
            link_vals.append(f"(None if {cond} else {links[i]})" if maybe else f"({links[i]})")
        if all(f == n for f, n in zip(firsts, names)):  # plain names: nothing to evaluate first
            return self._and_of(link_vals)
        return f"([{evals}] and {self._and_of(link_vals)})"

    def _and_of(self, codes: list[str]) -> str:
        """Kleene's and: false if one is false, else unknown if one is unknown, else true."""
        if all(c in self.sure for c in codes):
            return self.certain("(" + " and ".join(codes) + ")")
        tests, unsure = [], []
        for c in codes:
            if c in self.sure:
                tests.append(f"not {c}")
            else:
                x, first = self.named(c)
                tests.append(f"{first} is False")
                unsure.append(x)
        unknown = " or ".join(f"{x} is None" for x in unsure)
        return f"(False if {' or '.join(tests)} else None if {unknown} else True)"

    def _or_of(self, codes: list[str]) -> str:
        """Kleene's or: true if one is true, else unknown if one is unknown, else false."""
        if all(c in self.sure for c in codes):
            return self.certain("(" + " or ".join(codes) + ")")
        tests, unsure = [], []
        for c in codes:
            if c in self.sure:
                tests.append(c)
            else:
                x, first = self.named(c)
                tests.append(f"{first} is True")
                unsure.append(x)
        unknown = " or ".join(f"{x} is None" for x in unsure)
        return f"(True if {' or '.join(tests)} else None if {unknown} else False)"

    def visit_in(self, t):
        members = self.const(frozenset(t["members"]))
        x, a = self.named(self.gen(t["arg"]))
        return f"(None if {a} is None else {x} in {members})"

    def visit_not(self, t):
        code = self.gen(t["arg"])
        if code in self.sure:
            return self.certain(f"(not {code})")
        x, a = self.named(code)
        return f"(None if {a} is None else not {x})"

    def visit_and(self, t):
        return self._and_of([self.gen(a) for a in t["args"]])

    def visit_or(self, t):
        return self._or_of([self.gen(a) for a in t["args"]])


class Compiler:
    """Generates the functions of one protocol (its `G.graph` declarations)."""

    _files = itertools.count()

    def __init__(self, protocol: Mapping, *, rational_inputs: bool = False, declared: bool = False) -> None:
        # rational_inputs: the ctx's panel values and ULNs are always runtime rationals (Q), as
        # the engine makes them, so `v / u` is exact; otherwise (any ints or Fractions) the
        # generated code makes them rationals first
        self.rational_inputs = rational_inputs
        # declared: the ctx's facts and vars hold every declared one (the engine's replay starts from
        # their defaults), so the generated code reads them by subscript (the graph is validated first)
        self.declared = declared
        self.labs: Mapping[str, Mapping] = protocol.get("labs") or {}
        self.let_decls: Mapping[str, Mapping] = protocol.get("lets") or {}
        self._let_locals: dict[str, str] = {}
        self._since_lets: frozenset | None = None
        self._panel_only: dict[str, bool] = {}
        self._count = 0

    def let_local(self, name: str) -> str:
        """The local variable that holds let `name` in a generated function: `L<n>`."""
        local = self._let_locals.get(name)
        if local is None:
            if name not in self.let_decls:
                raise ExprError("a let that is not declared")
            local = self._let_locals[name] = f"L{len(self._let_locals)}"
        return local

    def dispatcher(self, guards: Sequence[Mapping | None], branches: Sequence[Sequence[str]], env: Mapping[str, Any],
                   name: str = "react", *, exclusive: bool = False, on_unknown: str | None = None,
                   line: int = 0, before: Sequence[Sequence[str]] | None = None) -> Callable[[Ctx], bool]:
        """f(ctx) -> True after running the branch of the rule that fires (None guard:
        `otherwise`), False when none does (see the module's rule choice).

        A branch is lines of Python indented from column 0; it reads the ctx as `r` and the
        objects `env` names (names that start with "E" and a digit, so as not to clash with
        the generated code's own). `on_unknown`, an `env` name, is called as
        `on_unknown(r, (i, ...))` with the undecided guards' indices when the handler is
        unassessable (then f returns False). `before[i]`, when given: lines run before guard i
        and its lets (the engine sets the day `since entry` counts from, per rule)."""
        code = self._code()
        tests, lets_before = [], []
        since = self._since_entry_lets() if before is not None else ()
        for i, g in enumerate(guards):  # the lets a guard needs first are computed just before it
            if since and i and before[i] != before[i - 1]:
                # another rule's state: a let that reads `since entry` is computed again from its entry
                code.lets = [n for n in code.lets if n not in since]
            n = len(code.let_lines)
            tests.append(None if g is None else code.fast(g))
            lets_before.append(code.let_lines[n:])
        if exclusive:
            lets_before = [[line for block in lets_before for line in block]] + [[] for _ in guards[1:]]
        code.let_lines = []  # placed by the rules below, not at the top
        for key in env:
            if not (key[:1] == "E" and key[1:].isdigit()):
                raise ExprError(f"a dispatcher's objects are named E0, E1, ...: not {key!r}")
        if on_unknown is not None and on_unknown not in env:
            raise ExprError("on_unknown must name an object of env")
        lines = ["r = c"]
        if exclusive:
            # every guard is evaluated; a true one fires (the guards are disjoint)
            if before is not None and before:
                lines.extend(before[0])  # the rules of one handler: one state, one day of entry
            lines.extend(lets_before[0] if lets_before else ())
            for i, test in enumerate(tests):
                if test is not None:
                    lines.append(f"g{i} = {test}")
            for i, (test, branch) in enumerate(zip(tests, branches)):
                if test is None:
                    continue
                lines.append(f"if g{i} is True:")
                lines.extend("    " + line for line in branch)
                lines.append("    return True")
            undecided = [f"g{i}" for i, t in enumerate(tests) if t is not None]
            if undecided:
                lines.append(f"u = tuple(i for i, g in enumerate(({', '.join(undecided)},)) if g is None)")
                index = code.const(tuple(i for i, t in enumerate(tests) if t is not None))
                lines.append("if u:")
                if on_unknown is not None:
                    lines.append(f"    {on_unknown}(r, tuple({index}[i] for i in u))")
                lines.append("    return False")
            for test, branch in zip(tests, branches):
                if test is None:
                    lines.extend(branch)
                    lines.append("return True")
                    break
            else:
                lines.append("return False")
        else:
            for i, (test, branch) in enumerate(zip(tests, branches)):
                if test is None:
                    lines.extend(branch)
                    lines.append("return True")
                    break
                if before is not None:
                    lines.extend(before[i])
                lines.extend(lets_before[i])
                if re.fullmatch(r"L\d+", test):  # a let's local: tested as it is
                    g = test
                else:
                    g = "g"
                    lines.append(f"g = {test}")
                lines.append(f"if {g} is True:")
                lines.extend("    " + line for line in branch)
                lines.append("    return True")
                lines.append(f"if {g} is None:")
                if on_unknown is not None:
                    lines.append(f"    {on_unknown}(r, ({i},))")
                lines.append("    return False")
            else:
                lines.append("return False")
        return self._build(code, name, lines, env, line)

    def panel_only(self, name: str) -> bool:
        """Whether let `name` reads nothing but the panel and its ULNs (through other lets too):
        no fact, var, drug, action, day or order, so its value cannot change while one reaction
        runs (its actions change facts, vars, drugs, orders and the day of entry, never the panel)."""
        memo = self._panel_only
        if name in memo:
            return memo[name]
        memo[name] = False  # until shown (a let defined in terms of itself is not)
        decl = self.let_decls.get(name)
        tree = decl.get("expr") if isinstance(decl, Mapping) else None
        ok = isinstance(tree, Mapping)
        if ok:
            for n in ir.walk(tree):
                op = n.get("op")
                if op == "let":
                    ok = self.panel_only(n.get("name"))
                elif op == "call":
                    ok = n.get("func") in _PANEL_FUNCS
                else:
                    ok = op in _PANEL_OPS
                if not ok:
                    break
        memo[name] = ok
        return ok

    def _since_entry_lets(self) -> frozenset:
        """The lets that read `since entry`, through other lets too."""
        if self._since_lets is None:
            reads = {}
            for name, decl in self.let_decls.items():
                tree = decl.get("expr") if isinstance(decl, Mapping) else None
                nodes = list(ir.walk(tree)) if tree is not None else []
                reads[name] = (any(n.get("op") == "since_entry" for n in nodes),
                               {n["name"] for n in nodes if n.get("op") == "let"})
            found = {n for n, (direct, _) in reads.items() if direct}
            while True:
                more = {n for n, (_, refs) in reads.items() if n not in found and refs & found}
                if not more:
                    break
                found |= more
            self._since_lets = frozenset(found)
        return self._since_lets

    def truth(self, tree: Mapping | None, name: str = "truth") -> Callable[[Ctx], bool | None] | None:
        """f(ctx) -> True, False or None (unknown)."""
        if tree is None:
            return None
        code = self._code()
        return self._build(code, name, [f"return {code.gen(tree)}"])

    def condition(self, tree: Mapping | None, name: str = "cond") -> Callable[[Ctx], bool] | None:
        """f(ctx) -> whether the condition is true (an `if`: unknown takes the `else`)."""
        if tree is None:
            return None
        code = self._code()
        return self._build(code, name, [f"return {code.gen(tree)} is True"])

    def inline(self, tree: Mapping, namer: Callable[[Any], str], temp: str = "_i", *,
               test: bool = False, known: Iterable[str] = ()) -> tuple[list[str], str]:
        """A condition (an `if`) as code to put inside another generated function, instead of a
        function of its own: (the lines that bind what it reads: the panel, facts... and its
        lets, computed afresh; the expression whose value is the condition's, three-valued).
        The surrounding code names its constants (`namer(value)` -> the name), binds the ctx as
        `c` and runs in `_RUNTIME`'s namespace; `temp` begins its temporaries' names. With `test`,
        the expression is one whose truth is whether the condition is true (`_Code.holds`).
        `known`: lets whose locals the surrounding code has already computed and whose value
        cannot have changed since (`panel_only` ones): read, not computed again."""
        code = _Code(self, {}, namer, temp)
        code.lets = list(known)
        test = code.holds(tree) if test else code.gen(tree)
        prelude = [_PRELUDE[k] for k in ("P", "U", "F", "V", "T", "A") if k in code.uses]
        return [*prelude, *code.let_lines], test

    def value(self, tree: Mapping | None, name: str = "value") -> Fn | None:
        """f(ctx) -> the value of the expression (None when unknown)."""
        if tree is None:
            return None
        code = self._code()
        return self._build(code, name, [f"return {code.gen(tree)}"])

    compile = value  # the value of any tree

    # -- assembling a function

    def _code(self) -> _Code:
        return _Code(self, {})

    def _build(self, code: _Code, name: str, lines: list[str], env: Mapping[str, Any] | None = None,
               line: int = 0) -> Callable:
        let_lines = code.let_lines  # each let once, in dependency order, before the code that reads it
        prelude = [_PRELUDE[k] for k in ("P", "U", "F", "V", "T", "A") if k in code.uses]
        self._count += 1
        number = next(Compiler._files)
        fname = f"_f{number}"
        body = "\n    ".join([*prelude, *let_lines, *lines])
        source = f"def {fname}(c):\n    {body}\n"
        filename = f"<rxwatch-generated {number}>"
        namespace = dict(_RUNTIME)
        namespace.update(code.consts)
        if env:
            namespace.update(env)
        try:
            exec(compile(source, filename, "exec"), namespace)
        except (SyntaxError, RecursionError, MemoryError) as e:  # an expression too deep for Python
            raise ExprError(f"cannot compile an expression: {type(e).__name__}") from None
        register(filename, source, line)
        fn = namespace[fname]
        fn.source = source
        return fn
