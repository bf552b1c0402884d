"""Expression trees of the compiled graph -> Python closures.

The compiler lowers every guard, `let`, `set` value and `if` condition to a JSON tree
(`{"op": ...}`, see compiler/lower.py `expr_tree`). The simulator evaluates them many times
per patient, so each tree is compiled once into a closure `f(ctx) -> value` over an
evaluation context `Ctx`.

Values: floats (numbers), bools, str (enumeration members), `None` (unknown) and, for time,
`Since` (the last date an action was recommended) and `Dur` (a duration literal). The rules
for unknown values are those of docs/language.md:

- arithmetic with an unknown operand is unknown (so is a division by zero);
- `max`/`min` ignore unknown operands, and are unknown when all are;
- a comparison with an unknown operand is false; in a chain, any unknown link makes it false;
- `not`/`and`/`or` are ordinary two-valued logic over those results (unknown counts as false);
- `known(X)` is true when X has a value.

Time: `since(A) < 6 months` compares calendar dates: `today < last(A) + 6 months`. More
generally a comparison between durations is made on dates (`since(A) op D` is
`today op last(A) + D`; `since(A) op since(B)` is `last(B) op last(A)`), so calendar months
stay calendar months. `since(A)` of an action never recommended is unknown.
"""

from __future__ import annotations

import datetime
import operator
from typing import Any, Callable, Mapping

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

def shift(day: datetime.date, amount: int, unit: str) -> datetime.date:
    """`day` + `amount` `unit`: days and weeks exactly, months and years by the calendar
    (2025-01-31 + 1 month = 2025-02-28; 2024-02-29 + 1 year = 2025-02-28)."""
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
    value; `today`: the date being replayed; `last`: action -> the date it was last
    recommended; `cache`: values of lets, valid until the engine clears it (whenever a panel,
    fact, var, date or recommendation changes)."""

    __slots__ = ("panel", "ulns", "facts", "vars", "today", "last", "cache")

    def __init__(self, facts: dict, vars: dict, today: datetime.date) -> None:
        self.panel: dict[str, float] = {}
        self.ulns: dict[str, float] = {}
        self.facts = facts
        self.vars = vars
        self.today = today
        self.last: dict[str, datetime.date] = {}
        self.cache: dict[str, Any] = {}


def _const(v: Any) -> Fn:
    return lambda c: v


class Compiler:
    """Compiles the trees of one protocol; `lets` are compiled on first use, once."""

    def __init__(self, protocol: Mapping) -> None:
        self.labs: Mapping[str, Mapping] = protocol.get("labs") or {}
        self.let_decls: Mapping[str, Mapping] = protocol.get("lets") or {}
        self.lets: dict[str, Fn] = {}
        self._compiling: set[str] = set()

    # ------------------------------------------------------------------ entry point

    def compile(self, tree: Mapping | None) -> Fn | None:
        """The closure of `tree`; None for None (an `otherwise` guard)."""
        if tree is None:
            return None
        return self._expr(tree)

    def condition(self, tree: Mapping | None) -> Fn | None:
        """A guard: a closure returning exactly True or False (unknown is False)."""
        if tree is None:
            return None
        f = self._expr(tree)
        if tree.get("op") in ("compare", "in", "not", "and", "or", "bool"):
            return f  # these already give a bool
        return lambda c: f(c) is True

    # ------------------------------------------------------------------ trees

    def _expr(self, t: Mapping) -> Fn:
        op = t.get("op")
        method = getattr(self, "_op_" + str(op), None)
        if method is None:
            raise ExprError(f"unknown expression operator {op!r}")
        return method(t)

    def _op_num(self, t):
        return _const(float(t["value"]))

    def _op_bool(self, t):
        return _const(bool(t["value"]))

    def _op_enum(self, t):
        return _const(t["value"])

    def _op_duration(self, t):
        return _const(Dur(t["amount"], t["unit"]))

    def _op_lab(self, t):
        name = t["name"]
        return lambda c: c.panel.get(name)

    def _op_fact(self, t):
        name = t["name"]
        return lambda c: c.facts.get(name)

    def _op_var(self, t):
        name = t["name"]
        return lambda c: c.vars.get(name)

    def _op_let(self, t):
        return self.let(t["name"])

    def _op_action(self, t):
        raise ExprError(f"action '{t['name']}' used as a value; write since({t['name']})")

    def let(self, name: str) -> Fn:
        f = self.lets.get(name)
        if f is not None:
            return f
        decl = self.let_decls.get(name)
        if decl is None:
            raise ExprError(f"let '{name}' is not declared")
        if name in self._compiling:
            raise ExprError(f"let '{name}' is defined in terms of itself")
        self._compiling.add(name)
        # late binding: a let may refer to one compiled after it
        holder: list[Fn] = []

        def let_value(c, name=name, holder=holder):
            cache = c.cache
            if name in cache:
                return cache[name]
            v = cache[name] = holder[0](c)
            return v

        self.lets[name] = let_value
        try:
            holder.append(self._expr(decl["expr"]))
        finally:
            self._compiling.discard(name)
        return let_value

    # -- arithmetic

    def _arith(self, t, fn):
        a, b = (self._expr(x) for x in t["args"])

        def f(c):
            x = a(c)
            if x is None:
                return None
            y = b(c)
            if y is None:
                return None
            return fn(x, y)

        return f

    def _op_add(self, t):
        return self._arith(t, operator.add)

    def _op_sub(self, t):
        return self._arith(t, operator.sub)

    def _op_mul(self, t):
        return self._arith(t, operator.mul)

    def _op_div(self, t):
        return self._arith(t, lambda x, y: None if y == 0 else x / y)

    def _op_neg(self, t):
        a = self._expr(t["arg"])

        def f(c):
            x = a(c)
            return None if x is None else -x

        return f

    # -- calls

    def _op_call(self, t):
        func = t["func"]
        args = t["args"]
        if func in ("max", "min"):
            fs = [self._expr(x) for x in args]
            pick = max if func == "max" else min

            def f(c):
                vals = [v for v in (g(c) for g in fs) if v is not None]
                return pick(vals) if vals else None

            if len(fs) == 2:
                g1, g2 = fs
                if func == "max":
                    def f(c):  # noqa: F811 - the common case, without a list
                        x = g1(c)
                        y = g2(c)
                        if x is None:
                            return y
                        if y is None:
                            return x
                        return x if x >= y else y
                else:
                    def f(c):  # noqa: F811
                        x = g1(c)
                        y = g2(c)
                        if x is None:
                            return y
                        if y is None:
                            return x
                        return x if x <= y else y
            return f
        if func in ("uln", "xuln"):
            lab = self._lab_arg(func, args)
            default = (self.labs.get(lab) or {}).get("uln")
            default = None if default is None else float(default)

            def uln(c):
                own = c.ulns.get(lab)
                return default if own is None else own

            if func == "uln":
                return uln

            def xuln(c):
                v = c.panel.get(lab)
                if v is None:
                    return None
                u = c.ulns.get(lab, default)
                if not u:
                    return None
                return v / u

            return xuln
        if func == "known":
            if len(args) != 1:
                raise ExprError("known() takes one argument")
            g = self._expr(args[0])
            return lambda c: g(c) is not None
        if func == "since":
            if len(args) != 1 or args[0].get("op") != "action":
                raise ExprError("since() takes the name of an action")
            action = args[0]["name"]

            def since(c):
                last = c.last.get(action)
                return None if last is None else Since(last)

            return since
        raise ExprError(f"unknown function {func}()")

    @staticmethod
    def _lab_arg(func: str, args) -> str:
        if len(args) != 1 or args[0].get("op") != "lab":
            raise ExprError(f"{func}() takes the name of a lab")
        return args[0]["name"]

    # -- comparisons

    def _temporal(self, t: Mapping) -> bool:
        """Can `t` be a duration (so that its comparisons are made on dates)?"""
        op = t.get("op")
        if op == "duration":
            return True
        if op == "call" and t.get("func") == "since":
            return True
        if op == "let":
            decl = self.let_decls.get(t["name"]) or {}
            return decl.get("type") == "duration"
        return False

    def _op_compare(self, t):
        ops = [_OPS[o] for o in t["ops"]]
        trees = t["args"]
        fs = [self._expr(x) for x in trees]
        if any(self._temporal(x) for x in trees):
            return _temporal_chain(ops, fs)
        if len(fs) == 2:
            (cmp,) = ops
            a, b = fs
            if trees[1].get("op") in ("num", "bool", "enum"):
                k = fs[1](None)

                def f(c):
                    x = a(c)
                    return x is not None and cmp(x, k)

                return f
            if trees[0].get("op") in ("num", "bool", "enum"):
                k = fs[0](None)

                def f(c):
                    y = b(c)
                    return y is not None and cmp(k, y)

                return f

            def f(c):
                x = a(c)
                if x is None:
                    return False
                y = b(c)
                return y is not None and cmp(x, y)

            return f
        pairs = list(zip(ops, fs[1:]))
        first = fs[0]

        def chain(c):
            x = first(c)
            if x is None:
                return False
            for cmp, g in pairs:
                y = g(c)
                if y is None or not cmp(x, y):
                    return False
                x = y
            return True

        return chain

    def _op_in(self, t):
        a = self._expr(t["arg"])
        members = frozenset(t["members"])
        return lambda c: a(c) in members

    # -- logic

    def _op_not(self, t):
        a = self._expr(t["arg"])
        return lambda c: not a(c)

    def _op_and(self, t):
        fs = [self._expr(x) for x in t["args"]]
        if len(fs) == 2:
            a, b = fs
            return lambda c: bool(a(c)) and bool(b(c))
        return lambda c: all(g(c) for g in fs)

    def _op_or(self, t):
        fs = [self._expr(x) for x in t["args"]]
        if len(fs) == 2:
            a, b = fs
            return lambda c: bool(a(c)) or bool(b(c))
        return lambda c: any(g(c) for g in fs)


# `{"op": "+", ...}`: the compiler writes arithmetic with the operator as its op.
for _sym, _name in (("+", "add"), ("-", "sub"), ("*", "mul"), ("/", "div")):
    setattr(Compiler, "_op_" + _sym, getattr(Compiler, "_op_" + _name))
del _sym, _name


def _temporal_chain(ops, fs) -> Fn:
    """A comparison chain with durations in it, decided on calendar dates."""
    pairs = list(zip(ops, fs, fs[1:]))

    def chain(c):
        for cmp, a, b in pairs:
            x = a(c)
            y = b(c)
            if x is None or y is None:
                return False
            if not _compare_time(cmp, x, y, c.today):
                return False
        return True

    return chain


def _compare_time(cmp, x, y, today: datetime.date) -> bool:
    if isinstance(x, Since) and isinstance(y, Dur):
        # today - last  op  y   <=>   today  op  last + y
        return cmp(today, shift(x.last, y.amount, y.unit))
    if isinstance(x, Dur) and isinstance(y, Since):
        return cmp(shift(y.last, x.amount, x.unit), today)
    if isinstance(x, Since) and isinstance(y, Since):
        # the longer ago, the larger the duration
        return cmp(y.last, x.last)
    if isinstance(x, Dur) and isinstance(y, Dur):
        return cmp(shift(today, x.amount, x.unit), shift(today, y.amount, y.unit))
    raise ExprError(f"cannot compare {x!r} with {y!r}")
