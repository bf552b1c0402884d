"""Expression trees of the compiled graph -> Python functions.

The compiler lowers every guard, `let`, `set` value and `if` condition to a JSON tree
(`{"op": ...}`, see compiler/lower.py `expr_tree`). The simulator evaluates them many times
per patient, so `Compiler` turns them, once per protocol, into Python source and compiles that
with `compile()`: one function per handler (`dispatcher`: it runs the code the engine gives
for the first rule whose guard holds; `selector`: the index of that rule), per `if` condition
and per `set` value. The lets a function needs are computed at
its start, once, in dependency order, as local variables; unknown values are handled inline
with assignment expressions, so evaluating a guard makes no further Python calls. The source
of every generated function is kept (`.source` on the function) for reading and debugging.

Values: floats (numbers), bools, str (enumeration members), None (unknown) and, for time,
`Since` (the last day an action was recommended) and `Dur` (a duration literal). The rules
for unknown values are those of docs/language.md:

- arithmetic with an unknown operand is unknown (so is a division by zero);
- `max`/`min` ignore unknown operands, and are unknown when all are;
- a comparison with an unknown operand is false; in a chain, any unknown link makes it false;
- `not`/`and`/`or` are ordinary two-valued logic over those results (unknown counts as false);
- `known(X)` is true when X has a value.

Time: `since(A) < 6 months` compares calendar dates: `today < last(A) + 6 months`. More
generally a comparison involving durations is made on dates (`since(A) op D` is
`today op last(A) + D`; `since(A) op since(B)` is `last(B) op last(A)`), so calendar months
stay calendar months. `since(A)` of an action never recommended is unknown.
"""

from __future__ import annotations

import datetime
import functools
import operator
from typing import Any, Callable, Mapping, Sequence

from dateutil.relativedelta import relativedelta

__all__ = ["Ctx", "Dur", "Since", "ExprError", "Compiler", "shift"]

Fn = Callable[["Ctx"], Any]

_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}


@functools.lru_cache(maxsize=1 << 16)
def shift(day: datetime.date, amount: int, unit: str) -> datetime.date:
    """`day` + `amount` `unit`: days and weeks exactly, months and years by the calendar
    (2025-01-31 + 1 month = 2025-02-28; 2024-02-29 + 1 year = 2025-02-28).

    Memoised: a replay asks for the same few windows from the same dates again and again."""
    if unit in ("days", "day"):
        return day + datetime.timedelta(days=amount)
    if unit in ("weeks", "week"):
        return day + datetime.timedelta(days=7 * amount)
    if unit in ("months", "month"):
        return day + relativedelta(months=amount)
    if unit in ("years", "year"):
        return day + relativedelta(years=amount)
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
    """`since(ACTION)`: the time elapsed since `last`, the day ACTION was last recommended."""

    __slots__ = ("last",)

    def __init__(self, last: datetime.date) -> None:
        self.last = last

    def __repr__(self) -> str:
        return f"Since({self.last})"


class Ctx:
    """What an expression reads. The engine owns one per replay and updates it in place.

    `panel`: lab -> value of the current panel (outside a panel handler: the most recent one);
    `ulns`: lab -> the result's own ULN, for results that carry one; `facts`, `vars`: name ->
    value; `today`: the day being replayed; `last`: action -> the day it was last recommended."""

    __slots__ = ("panel", "ulns", "facts", "vars", "today", "last")

    def __init__(self, facts: dict, vars: dict, today: datetime.date) -> None:
        self.panel: dict[str, float] = {}
        self.ulns: dict[str, float] = {}
        self.facts = facts
        self.vars = vars
        self.today = today
        self.last: dict[str, datetime.date] = {}


# ---------------------------------------------------------------------------- runtime helpers

def _max(*xs):
    vals = [x for x in xs if x is not None]
    return max(vals) if vals else None


def _min(*xs):
    vals = [x for x in xs if x is not None]
    return min(vals) if vals else None


def _max2(a, b):
    if a is None:
        return b
    if b is None or a >= b:
        return a
    return b


def _min2(a, b):
    if a is None:
        return b
    if b is None or a <= b:
        return a
    return b


def _since(last):
    return None if last is None else Since(last)


def _time_chain(ops: Sequence[str], values: Sequence[Any], today: datetime.date) -> bool:
    """A comparison chain with durations in it, decided on calendar dates."""
    for op, x, y in zip(ops, values, values[1:]):
        if x is None or y is None or not _compare_time(_OPS[op], x, y, today):
            return False
    return True


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


_RUNTIME = {
    "_max": _max, "_min": _min, "_max2": _max2, "_min2": _min2, "_since": _since, "_time_chain": _time_chain,
}

# what a generated function binds at its start, when its code uses it
_PRELUDE = {
    "P": "P = c.panel",
    "U": "U = c.ulns",
    "F": "F = c.facts",
    "V": "V = c.vars",
    "T": "T = c.today",
    "A": "A = c.last",
}


# ---------------------------------------------------------------------------- code generation

class _Code:
    """The expressions of one generated function: temporaries, constants, lets and names used."""

    def __init__(self, owner: "Compiler", consts: dict) -> None:
        self.owner = owner
        self.consts = consts
        self.temps = 0
        self.lets: list[str] = []  # in dependency order
        self.uses: set[str] = set()

    def tmp(self) -> str:
        self.temps += 1
        return f"_{self.temps}"

    def named(self, code: str) -> tuple[str, str]:
        """(ref, first): `first` evaluates `code` and leaves its value in the name `ref`,
        which later uses read. A let's local is already a name."""
        if code.isidentifier():
            return code, code
        x = self.tmp()
        return x, f"({x} := {code})"

    def const(self, value: Any) -> str:
        name = f"K{len(self.consts)}"
        self.consts[name] = value
        return name

    def let(self, name: str, visiting: tuple = ()) -> str:
        if name not in self.lets:
            if name in visiting:
                raise ExprError(f"let '{name}' is defined in terms of itself")
            decl = self.owner.let_decls.get(name)
            if decl is None:
                raise ExprError(f"let '{name}' is not declared")
            # generate its dependencies first; the let's own code is generated in `body`
            for dep in _let_refs(decl.get("expr")):
                self.let(dep, visiting + (name,))
            if name not in self.lets:
                self.lets.append(name)
        return f"L_{name}"

    # -- expressions

    def gen(self, t: Mapping) -> str:
        op = t.get("op")
        method = getattr(self, "_" + _OP_NAMES.get(op, str(op)), None)
        if method is None:
            raise ExprError(f"unknown expression operator {op!r}")
        return method(t)

    def _num(self, t):
        return repr(float(t["value"]))

    def _bool(self, t):
        return "True" if t["value"] else "False"

    def _enum(self, t):
        return repr(str(t["value"]))

    def _duration(self, t):
        return self.const(Dur(t["amount"], t["unit"]))

    def _lab(self, t):
        self.uses.add("P")
        return f"P.get({t['name']!r})"

    def _fact(self, t):
        self.uses.add("F")
        return f"F.get({t['name']!r})"

    def _var(self, t):
        self.uses.add("V")
        return f"V.get({t['name']!r})"

    def _let(self, t):
        return self.let(t["name"])

    def _action(self, t):
        raise ExprError(f"action '{t['name']}' used as a value; write since({t['name']})")

    def _arith(self, t, symbol: str):
        (x, a), (y, b) = (self.named(self.gen(arg)) for arg in t["args"])
        if symbol == "/":
            return f"(None if {a} is None or not {b} else {x} / {y})"
        return f"(None if {a} is None or {b} is None else {x} {symbol} {y})"

    def _add(self, t):
        return self._arith(t, "+")

    def _sub(self, t):
        return self._arith(t, "-")

    def _mul(self, t):
        return self._arith(t, "*")

    def _div(self, t):
        return self._arith(t, "/")

    def _neg(self, t):
        x, a = self.named(self.gen(t["arg"]))
        return f"(None if {a} is None else -{x})"

    def _call(self, t):
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
            lab = args[0]["name"]
            default = (self.owner.labs.get(lab) or {}).get("uln")
            default = None if default is None else float(default)
            self.uses.add("U")
            if func == "uln":
                return f"U.get({lab!r}, {default!r})"
            self.uses.add("P")
            v, u = self.tmp(), self.tmp()
            return f"(None if ({v} := P.get({lab!r})) is None or not ({u} := U.get({lab!r}, {default!r})) else {v} / {u})"
        if func == "known":
            if len(args) != 1:
                raise ExprError("known() takes one argument")
            if args[0].get("op") in ("num", "bool", "enum", "duration"):
                return "True"  # a literal is always known
            return f"({self.gen(args[0])} is not None)"
        if func == "since":
            if len(args) != 1 or args[0].get("op") != "action":
                raise ExprError("since() takes the name of an action")
            self.uses.add("A")
            return f"_since(A.get({args[0]['name']!r}))"
        raise ExprError(f"unknown function {func}()")

    def _temporal(self, t: Mapping) -> bool:
        op = t.get("op")
        if op == "duration" or (op == "call" and t.get("func") == "since"):
            return True
        if op == "let":
            return (self.owner.let_decls.get(t["name"]) or {}).get("type") == "duration"
        return False

    def _compare(self, t):
        ops, args = list(t["ops"]), t["args"]
        for o in ops:
            if o not in _OPS:
                raise ExprError(f"unknown comparison {o!r}")
        if len(args) != len(ops) + 1:
            raise ExprError("a comparison needs one operand more than operators")
        if any(self._temporal(a) for a in args):
            self.uses.add("T")
            return f"_time_chain({ops!r}, ({', '.join(self.gen(a) for a in args)},), T)"
        terms = []
        names = []
        for a in args:
            if a.get("op") in ("num", "bool", "enum"):
                names.append(self.gen(a))  # a literal is never unknown
            else:
                x, first = self.named(self.gen(a))
                terms.append(f"{first} is not None")
                names.append(x)
            if len(names) > 1:
                terms.append(f"{names[-2]} {ops[len(names) - 2]} {names[-1]}")
        return "(" + " and ".join(terms) + ")"

    def _in(self, t):
        members = self.const(frozenset(t["members"]))
        return f"({self.gen(t['arg'])} in {members})"

    def _not(self, t):
        return f"(not {self.gen(t['arg'])})"

    def _and(self, t):
        return "(True if " + " and ".join(f"{self.gen(a)}" for a in t["args"]) + " else False)"

    def _or(self, t):
        return "(True if " + " or ".join(f"{self.gen(a)}" for a in t["args"]) + " else False)"


_OP_NAMES = {"+": "add", "-": "sub", "*": "mul", "/": "div", "in": "in", "not": "not", "and": "and", "or": "or"}


def _let_refs(tree: Any) -> list[str]:
    """The lets `tree` refers to directly, in order of appearance."""
    out: list[str] = []
    stack = [tree]
    while stack:
        t = stack.pop()
        if isinstance(t, Mapping):
            if t.get("op") == "let":
                out.append(t["name"])
            for k in ("args", "arg"):
                v = t.get(k)
                if isinstance(v, list):
                    stack.extend(reversed(v))
                elif isinstance(v, Mapping):
                    stack.append(v)
    return out


class Compiler:
    """Generates the functions of one protocol (its `G.graph` declarations)."""

    def __init__(self, protocol: Mapping) -> None:
        self.labs: Mapping[str, Mapping] = protocol.get("labs") or {}
        self.let_decls: Mapping[str, Mapping] = protocol.get("lets") or {}
        self._count = 0

    def selector(self, guards: Sequence[Mapping | None], name: str = "select") -> Callable[[Ctx], int]:
        """f(ctx) -> the index of the first guard that holds (None: `otherwise`, always
        holds), or -1 when none does."""
        code = self._code()
        tests = [None if g is None else code.gen(g) for g in guards]
        lines = []
        for i, test in enumerate(tests):
            if test is None:
                lines.append(f"return {i}")
                break
            lines.append(f"if {test}:\n        return {i}")
        else:
            lines.append("return -1")
        return self._build(code, name, lines)

    def dispatcher(self, guards: Sequence[Mapping | None], branches: Sequence[Sequence[str]], env: Mapping[str, Any],
                   name: str = "react") -> Callable[[Ctx], bool]:
        """f(ctx) -> True after running the branch of the first guard that holds (None:
        `otherwise`, always holds), False when none does: a selector that acts at once.

        A branch is lines of Python indented from column 0; it reads the ctx as `r` and the
        objects `env` names (names that start with "E" and a digit, so as not to clash with
        the generated code's own)."""
        code = self._code()
        tests = [None if g is None else code.gen(g) for g in guards]
        for key in env:
            if not (key[:1] == "E" and key[1:].isdigit()):
                raise ExprError(f"a dispatcher's objects are named E0, E1, ...: not {key!r}")
        lines = ["r = c"]
        for test, branch in zip(tests, branches):
            if test is None:
                lines.extend(branch)
                lines.append("return True")
                break
            lines.append(f"if {test}:")
            lines.extend("    " + line for line in branch)
            lines.append("    return True")
        else:
            lines.append("return False")
        return self._build(code, name, lines, env)

    def condition(self, tree: Mapping | None, name: str = "cond") -> Callable[[Ctx], bool] | None:
        """f(ctx) -> whether the condition holds (an unknown value counts as false)."""
        if tree is None:
            return None
        code = self._code()
        return self._build(code, name, [f"return True if {code.gen(tree)} else False"])

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

    def _build(self, code: _Code, name: str, lines: list[str], env: Mapping[str, Any] | None = None) -> Callable:
        # the lets, each computed once, in dependency order (`_Code.let` registered them so)
        let_lines = [f"L_{let} = {code.gen(self.let_decls[let]['expr'])}" for let in list(code.lets)]
        prelude = [_PRELUDE[k] for k in ("P", "U", "F", "V", "T", "A") if k in code.uses]
        self._count += 1
        fname = f"_{name}_{self._count}"
        body = "\n    ".join([*prelude, *let_lines, *lines])
        source = f"def {fname}(c):\n    {body}\n"
        namespace = dict(_RUNTIME)
        namespace.update(code.consts)
        if env:
            namespace.update(env)
        try:
            exec(compile(source, f"<rxwatch {name}>", "exec"), namespace)
        except (SyntaxError, RecursionError) as e:  # an expression too deep for Python
            raise ExprError(f"cannot compile an expression: {e}") from None
        fn = namespace[fname]
        fn.source = source
        return fn
