"""The expression IR: the one owner of the `{"op": ...}` trees in the compiled graph.

Every guard, `let`, `set` value and `if` condition is lowered (compiler/lower.py) to a
JSON tree of this form; the simulator (Python code), the verifier (z3 formulas) and the
renderer (chart text) read it through a `Visitor` of this module, and nothing else walks
the trees by hand. The op list, the shape of each op, `children`, `walk` and `validate`
live here once; a visitor that lacks a handler for an op fails when its class is created,
that is, at import.

| op | fields | meaning |
|---|---|---|
| `num` | `value` | an exact decimal: a JSON int, a float standing for the decimal its repr shows, or a decimal string |
| `bool` | `value` | true / false |
| `enum` | `value` | an enumeration member, by name |
| `duration` | `amount`, `unit` | `6 months` |
| `lab`, `fact`, `var`, `let`, `action`, `drug` | `name` | a declared name (`drug`: only as the argument of a drug read) |
| `since_entry` | | the time since the current state was entered |
| `call` | `func`, `args` | `max`, `min`, `uln`, `xuln`, `known`, `since`, `fulfilled`; the drug reads `held`, `dose`, `stopped`, `started` (one `drug` argument) |
| `neg` | `arg` | `-x` |
| `+`, `-`, `*`, `/` | `args` (two) | arithmetic |
| `compare` | `ops`, `args` | a chain `a < b <= c` (one more arg than ops) |
| `in` | `arg`, `members` | membership of an enumeration value |
| `not` | `arg` | Kleene negation |
| `and`, `or` | `args` (two or more) | Kleene conjunction and disjunction |

Values are three-valued (docs/language.md, "Unknown values"): a number, a boolean or a
member, or unknown. Numbers are exact rationals (`exact`).
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Any, Callable, Iterator, Mapping

__all__ = [
    "OPS", "FUNCTIONS", "COMPARISONS", "TIME_UNITS", "IRError", "Visitor", "children", "walk",
    "validate", "exact", "to_json_number", "let_refs", "refs", "labs_read", "labs_named", "track_labs", "method_name",
]

# op -> the name of its visitor method (`visit_<name>`)
OPS: dict[str, str] = {
    "num": "num",
    "bool": "bool",
    "enum": "enum",
    "duration": "duration",
    "lab": "lab",
    "fact": "fact",
    "var": "var",
    "let": "let",
    "action": "action",
    "drug": "drug",
    "since_entry": "since_entry",
    "call": "call",
    "neg": "neg",
    "+": "add",
    "-": "sub",
    "*": "mul",
    "/": "div",
    "compare": "compare",
    "in": "in",
    "not": "not",
    "and": "and",
    "or": "or",
}

FUNCTIONS = ("max", "min", "uln", "xuln", "known", "since", "fulfilled", "held", "dose", "stopped", "started")
DRUG_READS = ("held", "dose", "stopped", "started")
"""The functions that read a drug's state in the replay: `held(D)`, `stopped(D)`, `started(D)`
(booleans, never unknown) and `dose(D)` (the current dose level: a number in the drug's unit,
or an enumeration member for named levels)."""
COMPARISONS = ("<", "<=", ">", ">=", "==", "!=")
TIME_UNITS = ("days", "weeks", "months", "years")
NAME_OPS = ("lab", "fact", "var", "let", "action", "drug")
ARITH_OPS = ("+", "-", "*", "/")

IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_DECIMAL = re.compile(r"-?\d+(?:\.\d+)?\Z")
MAX_DIGITS = 40
"""A literal's digits, at most (exact arithmetic on longer ones buys nothing and costs time)."""


class IRError(ValueError):
    """A tree that is not a valid expression; `path` says where in it (e.g. `args[1].arg`)."""

    def __init__(self, message: str, path: str = "") -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.message = message
        self.path = path


# ---------------------------------------------------------------------------- numbers

def exact(v: Any) -> int | Fraction:
    """The exact value of a number in the graph: ints as they are; a float stands for the
    decimal its shortest repr shows (1.2 is 6/5, never the binary double); a string is a
    decimal. Integral values come back as int."""
    if isinstance(v, bool):
        raise IRError(f"not a number: {v!r}")
    if isinstance(v, int):
        return v
    if isinstance(v, Fraction):
        q = v
    elif isinstance(v, float):
        if v != v or v in (float("inf"), float("-inf")):
            raise IRError(f"not a finite number: {v!r}")
        q = Fraction(repr(v))
    elif isinstance(v, str) and _DECIMAL.match(v) and len(v) <= MAX_DIGITS + 2:
        q = Fraction(v)
    else:
        raise IRError(f"not a number: {v!r}")
    return q.numerator if q.denominator == 1 else q


def to_json_number(q: int | Fraction) -> int | float | str:
    """An exact value as the graph stores it: an int; a float when its repr is exactly the
    value (every decimal of up to 15 significant digits); else the decimal text, when the
    value has a finite decimal expansion; else raise (a literal is always a finite decimal)."""
    if isinstance(q, int) and not isinstance(q, bool):
        return q
    q = Fraction(q)
    if q.denominator == 1:
        return q.numerator
    f = float(q)
    if Fraction(repr(f)) == q:
        return f
    text = decimal_text(q)
    if text is None:
        raise IRError(f"{q} has no finite decimal expansion")
    return text


def decimal_text(q: Fraction) -> str | None:
    """`q` as a finite decimal string, or None when it has none (1/3)."""
    d = q.denominator
    twos = fives = 0
    while d % 2 == 0:
        d //= 2
        twos += 1
    while d % 5 == 0:
        d //= 5
        fives += 1
    if d != 1:
        return None
    places = max(twos, fives)
    scaled = abs(q.numerator) * (10 ** places // q.denominator)
    digits = str(scaled).rjust(places + 1, "0")
    text = f"{digits[:-places]}.{digits[-places:]}" if places else digits
    return ("-" if q < 0 else "") + text


# ---------------------------------------------------------------------------- structure

def children(t: Mapping) -> list[Mapping]:
    """The sub-trees of `t`, in order."""
    op = t.get("op")
    if op in ("neg", "not", "in"):
        return [t["arg"]]
    if op in ("call", "compare", "and", "or") or op in ARITH_OPS:
        return list(t["args"])
    return []


def walk(t: Mapping | None) -> Iterator[Mapping]:
    """Every node of `t`, parents before children, left to right (no recursion: trees may be
    deeper than Python's stack)."""
    if t is None:
        return
    stack = [t]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(reversed(children(node)))


def refs(t: Mapping | None, op: str) -> list[str]:
    """The names `t` refers to directly with `op` ('lab', 'let', 'action'...), in order, once each."""
    return list(dict.fromkeys(n["name"] for n in walk(t) if n.get("op") == op))


def let_refs(t: Mapping | None) -> list[str]:
    return refs(t, "let")


def labs_named(trees, lets: Mapping[str, Mapping]) -> frozenset[str]:
    """The labs that the trees name anywhere, `known(L)` included, through the lets they use:
    the labs a handler is about. A panel handler reacts to a day's panel only when the day
    brings a result of one of them (docs/simulation.md, "Which panels a handler sees")."""
    out: set[str] = set()
    seen: set[str] = set()
    stack = [t for t in trees if t is not None]
    while stack:
        node = stack.pop()
        op = node.get("op")
        if op == "lab":
            out.add(node["name"])
        elif op == "let" and node["name"] not in seen:
            seen.add(node["name"])
            decl = lets.get(node["name"])
            if decl is not None and decl.get("expr") is not None:
                stack.append(decl["expr"])
        stack.extend(children(node))
    return frozenset(out)


def track_labs(graph) -> dict[str, frozenset[str]]:
    """For each track of a compiled statechart, the labs its states' panel rules name
    (`labs_named`): a track sees a day's panel only when the day brings a result of one of them
    (a blood count alone is not a liver panel). States outside tracks see every panel."""
    lets = graph.graph.get("lets") or {}
    guards: dict[str, list] = {}
    edges = {k: d for _, _, k, d in graph.edges(keys=True, data=True)}
    for _, data in graph.nodes(data=True):
        track = data.get("track")
        if track is None:
            continue
        for h in data.get("handlers") or ():
            if h.get("trigger") == "panel":
                guards.setdefault(track, []).extend(edges[k].get("guard") for k in h.get("rules") or () if k in edges)
    return {t: labs_named(g, lets) for t, g in guards.items()}


def labs_read(t: Mapping | None, lets: Mapping[str, Mapping]) -> list[str]:
    """The labs whose values `t` reads, through the lets it uses too (`known(L)` reads none:
    it is never unknown), in order of first appearance."""
    out: dict[str, None] = {}
    seen: set[str] = set()
    stack = [t] if t is not None else []
    while stack:
        node = stack.pop()
        op = node.get("op")
        if op == "call" and node.get("func") in ("known", "fulfilled"):
            continue
        if op == "lab":
            out.setdefault(node["name"], None)
        elif op == "let" and node["name"] not in seen:
            seen.add(node["name"])
            decl = lets.get(node["name"])
            if decl is not None and decl.get("expr") is not None:
                stack.append(decl["expr"])
        stack.extend(reversed(children(node)))
    return list(out)


# ---------------------------------------------------------------------------- validation

def validate(t: Any, names: Mapping[str, Any] | None = None, path: str = "") -> None:
    """Raise IRError unless `t` is a well-formed tree: known ops with the fields they need,
    identifiers that are identifiers, finite exact numbers, whole durations in known units.
    `names`, when given, maps 'lab', 'fact', 'var', 'let', 'action', 'drug' to the declared names, and
    every reference must be among them. Iterative: any depth."""
    stack: list[tuple[Any, str]] = [(t, path)]
    while stack:
        node, where = stack.pop()
        if not isinstance(node, Mapping):
            raise IRError("an expression must be an object with an 'op'", where)
        op = node.get("op")
        if not isinstance(op, str) or op not in OPS:
            raise IRError(f"unknown expression operator {_show(op)}", where)
        if op == "num":
            exact(_field(node, "value", where))
        elif op == "bool":
            if not isinstance(_field(node, "value", where), bool):
                raise IRError("a bool's value must be true or false", where)
        elif op == "enum":
            _identifier(_field(node, "value", where), where + ".value")
        elif op == "duration":
            amount, unit = _field(node, "amount", where), _field(node, "unit", where)
            if isinstance(amount, bool) or not isinstance(amount, int) or amount < 0:
                raise IRError(f"a duration's amount must be a whole number >= 0, not {_show(amount)}", where)
            if unit not in TIME_UNITS:
                raise IRError(f"unknown time unit {_show(unit)}", where)
        elif op in NAME_OPS:
            name = _field(node, "name", where)
            _identifier(name, where + ".name")
            if names is not None and name not in names.get(op, ()):
                raise IRError(f"{op} {name!r} is not declared", where)
        elif op == "call":
            func = _field(node, "func", where)
            if func not in FUNCTIONS:
                raise IRError(f"unknown function {_show(func)}", where)
            args = _list(node, "args", where)
            if func in ("uln", "xuln") and (len(args) != 1 or _op(args[0]) != "lab"):
                raise IRError(f"{func}() takes the name of a lab", where)
            if func in ("since", "fulfilled") and (len(args) != 1 or _op(args[0]) != "action"):
                raise IRError(f"{func}() takes the name of an action", where)
            if func in DRUG_READS and (len(args) != 1 or _op(args[0]) != "drug"):
                raise IRError(f"{func}() takes the name of a drug", where)
            if func == "known" and len(args) != 1:
                raise IRError("known() takes one argument", where)
            if func in ("max", "min") and not args:
                raise IRError(f"{func}() needs arguments", where)
        elif op in ARITH_OPS:
            if len(_list(node, "args", where)) != 2:
                raise IRError(f"'{op}' takes two operands", where)
        elif op == "compare":
            ops = _list(node, "ops", where)
            if not ops or any(o not in COMPARISONS for o in ops):
                raise IRError(f"unknown comparison in {_show(ops)}", where)
            if len(_list(node, "args", where)) != len(ops) + 1:
                raise IRError("a comparison needs one operand more than operators", where)
        elif op == "in":
            for i, m in enumerate(_list(node, "members", where)):
                _identifier(m, f"{where}.members[{i}]")
            _field(node, "arg", where)
        elif op in ("neg", "not"):
            _field(node, "arg", where)
        elif op in ("and", "or"):
            if len(_list(node, "args", where)) < 2:
                raise IRError(f"'{op}' takes two or more operands", where)
        if op in ("neg", "not", "in"):
            stack.append((node["arg"], f"{where}.arg" if where else "arg"))
        elif op in ("call", "compare", "and", "or") or op in ARITH_OPS:
            stack.extend((a, f"{where}.args[{i}]" if where else f"args[{i}]") for i, a in enumerate(node["args"]))


def _op(t: Any) -> Any:
    return t.get("op") if isinstance(t, Mapping) else None


def _field(node: Mapping, key: str, where: str) -> Any:
    if key not in node:
        raise IRError(f"'{node.get('op')}' needs '{key}'", where)
    return node[key]


def _list(node: Mapping, key: str, where: str) -> list:
    v = _field(node, key, where)
    if not isinstance(v, list):
        raise IRError(f"'{key}' must be a list", where)
    return v


def _identifier(v: Any, where: str) -> None:
    if not isinstance(v, str) or not IDENTIFIER.match(v) or len(v) > 200:
        raise IRError(f"not a name: {_show(v)}", where)


def _show(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


# ---------------------------------------------------------------------------- visitors

def method_name(op: str) -> str:
    return "visit_" + OPS[op]


class Visitor:
    """A back end over the IR: define `visit_<name>(self, t)` for every op of `OPS`
    (`visit_add` for `+`, `visit_in` for `in`...). The dispatch table is built once, when
    the class is created, and creating a class that lacks a handler raises TypeError: a new
    op cannot be forgotten by a back end. `visit(t)` dispatches on `t["op"]`.

    A class that only shares code between visitors passes `abstract=True`."""

    _dispatch: dict[str, Callable[[Any, Mapping], Any]] = {}

    def __init_subclass__(cls, abstract: bool = False, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if abstract:
            return
        missing = [method_name(op) for op in OPS if not callable(getattr(cls, method_name(op), None))]
        if missing:
            raise TypeError(f"{cls.__qualname__} handles no {', '.join(missing)}")
        cls._dispatch = {op: getattr(cls, method_name(op)) for op in OPS}

    def visit(self, t: Mapping) -> Any:
        try:
            method = self._dispatch[t["op"]]
        except (KeyError, TypeError):
            raise IRError(f"unknown expression operator {_show(_op(t))}") from None
        return method(self, t)
