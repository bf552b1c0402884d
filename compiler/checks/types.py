"""Types and units of expressions (E3xx).

Every expression has a type: `bool`, `number` with a unit, `enum` (the members of a fact),
or `duration`. A bare number literal fits any unit; a number written with a unit
(`140 "years"`) has it, and takes the unit of what it is added to, subtracted from or compared
with when the unit table converts it exactly (recorded in `Symbols.numbers` for lowering).
Lab values have their lab's unit; `*` and `/` combine units (`years*kg/(mg/dL)`); `a / b` of
the same unit is a ratio (unit "1"), which is what multiples of ULN are.
"""

from __future__ import annotations

import re
from fractions import Fraction
from functools import lru_cache

from dataclasses import dataclass

from .. import ast
from ..diagnostics import Diagnostics, did_you_mean
from ..symbols import Symbols, all_rules, module_exprs

ANY = "*"  # the unit of a bare number literal: it fits any unit
RATIO = "1"


MAX_LITERAL_UNIT = 200
"""A number's unit longer than this is refused (E319) before it is read."""

# A unit as the checker writes products and quotients of units: factors joined by `.` or `*`
# (UCUM's `10*9` stays one factor), `/`, and parentheses. Each factor is read by the unit table.
_UNIT_TOKEN = re.compile(r"\s+|(?P<open>\()|(?P<close>\))|(?P<op>[./*])|(?P<leaf>(?:(?<![A-Za-z\]])[xX]?10\*[+-]?\d+|[^./*()\s])+)")
_WORD = re.compile(r"(?P<word>[A-Za-z]+)(?P<exp>[+-]?\d{1,2})?")


class UnitSyntax(ValueError):
    """A unit the checker cannot read (E319 for a number's unit)."""


@lru_cache(maxsize=4096)
def canonical(unit: str | None) -> tuple:
    """`unit` as (exact factor, ((dimension, exponent), ...)), for units of the table and for
    products and quotients of them (`years*kg/(mg/dL)`, `years.kg.min.dL/(mg.mL)`). A word the
    table does not know (`years`) is a dimension of its own, equal only to itself.
    Raises UnitSyntax when the text cannot be read."""
    from rxwatch.simulator import units

    text = "" if unit in (None, ANY) else str(unit)
    try:
        return units.canonical(text)
    except units.UnitError as e:
        first = str(e)
    text = re.sub(r"\{[^{}]*\}", "", text)  # annotations mean nothing: {cells}/uL is /uL
    tokens = []
    pos = 0
    while pos < len(text):
        m = _UNIT_TOKEN.match(text, pos)
        if m is None:
            raise UnitSyntax(f"cannot read the unit '{unit}' (at '{text[pos:]}')")
        pos = m.end()
        if m.lastgroup:
            tokens.append((m.lastgroup, m.group()))
    out, rest = _product(tokens, 0, unit, first)
    if rest != len(tokens):
        raise UnitSyntax(f"cannot read the unit '{unit}': an unmatched ')'")
    return out


def _product(tokens, i, unit, first):
    factor, dims = Fraction(1), {}
    sign, expect = 1, True
    if i < len(tokens) and tokens[i] == ("op", "/"):
        sign, i = -1, i + 1
    while i < len(tokens):
        kind, text = tokens[i]
        if kind == "close":
            break
        if kind == "op":
            if expect:
                raise UnitSyntax(f"cannot read the unit '{unit}'")
            sign, expect, i = (-1 if text == "/" else 1), True, i + 1
            continue
        if not expect:
            raise UnitSyntax(f"cannot read the unit '{unit}': write '.' or '/' between its parts")
        if kind == "open":
            (f, d), i = _product(tokens, i + 1, unit, first)
            if i >= len(tokens) or tokens[i][0] != "close":
                raise UnitSyntax(f"cannot read the unit '{unit}': an unmatched '('")
            i += 1
        else:
            f, d = _leaf(text, unit, first)
            i += 1
        factor *= f ** sign
        for k, e in d:
            dims[k] = dims.get(k, 0) + sign * e
        expect = False
    if expect:
        raise UnitSyntax(f"cannot read the unit '{unit}'")
    return (factor, tuple(sorted((k, e) for k, e in dims.items() if e))), i


def _leaf(text: str, unit, first) -> tuple:
    from rxwatch.simulator import units

    try:
        return units.canonical(text)
    except units.UnitError:
        m = _WORD.fullmatch(text)
        if m is None:
            raise UnitSyntax(first if text == unit else f"cannot read '{text}' in the unit '{unit}'") from None
        return Fraction(1), (("'" + m["word"], int(m["exp"] or 1)),)  # a word of its own


def _leaf_powers(unit: str) -> dict[str, int] | None:
    """`unit` as powers of the factors written in it (`years*kg/(mg/dL)`: years 1, kg 1, mg -1,
    dL 1), None when it cannot be read that way."""
    text = re.sub(r"\{[^{}]*\}", "", unit)
    out: dict[str, int] = {}
    signs = [1]  # the sign of each open parenthesis
    sign, pos = 1, 0
    while pos < len(text):
        m = _UNIT_TOKEN.match(text, pos)
        if m is None:
            return None
        pos = m.end()
        kind = m.lastgroup
        if kind == "op":
            sign = -1 if m.group() == "/" else 1
        elif kind == "open":
            signs.append(signs[-1] * sign)
            sign = 1
        elif kind == "close":
            if len(signs) == 1:
                return None
            signs.pop()
            sign = 1
        elif kind == "leaf" and m.group() == "1":
            sign = 1
        elif kind == "leaf":
            out[m.group()] = out.get(m.group(), 0) + signs[-1] * sign
            sign = 1
    return out if len(signs) == 1 else None


def compose(a: str, b: str, op: str) -> str:
    """The unit of `x * y` or `x / y` for x in `a` and y in `b`, written with the factors of
    both, those that cancel left out: `years*kg` / `years.kg.min.dL/(mg.mL)` is `mg.mL/(min.dL)`
    (so a message shows a unit as short as the author wrote it). "1" when all cancel."""
    pa, pb = _leaf_powers(a), _leaf_powers(b)
    if pa is None or pb is None:
        return f"{a}*{b}" if op == "*" else f"{a}/({b})"
    for leaf, e in pb.items():
        pa[leaf] = pa.get(leaf, 0) + (e if op == "*" else -e)
    up = [leaf for leaf, e in pa.items() for _ in range(e)]
    down = [leaf for leaf, e in pa.items() for _ in range(-e)]
    if not up and not down:
        return RATIO
    text = ".".join(up)
    if down:
        text += "/" + (down[0] if len(down) == 1 else "(" + ".".join(down) + ")")
    return text


def _readable(u: str | None):
    try:
        return canonical(u)
    except UnitSyntax:
        return None


@lru_cache(maxsize=4096)
def same_unit(a: str | None, b: str | None) -> bool:
    """Two spellings of one unit: equal strings, or units that are one another exactly
    (`10*9/L`, `10*3/uL`, `K/uL`, `10*3/mm3`; `/mm3`, `cells/uL`, `{cells}/uL`; `1` and no unit;
    `years*kg*min*dL/(mg*mL)*mg/dL/years/kg` and `mL/min`).
    The table of units is the simulator's (simulator/units.py: the one place that knows them);
    products and quotients of its units are read here (`canonical`)."""
    if a == b:
        return True
    if ANY in (a, b) or a is None or b is None:
        return False
    ca, cb = _readable(a), _readable(b)
    return ca is not None and ca == cb


@lru_cache(maxsize=4096)
def unit_factor(a: str | None, b: str | None):
    """The exact number a value in unit `a` is multiplied by to be in unit `b`, None when they
    do not convert by a constant (as simulator.units.factor: no unit converts to no unit only)."""
    if a == b:
        return 1
    if ANY in (a, b):
        return None
    ca, cb = _readable(a), _readable(b)
    if ca is None or cb is None or ca[1] != cb[1]:
        return None
    one = (Fraction(1), ())
    if ca != cb and one in (ca, cb):
        return None  # '%' and no unit do not convert, as in the unit table
    f = ca[0] / cb[0]
    return f.numerator if f.denominator == 1 else f


def conversion_hint(a: str | None, b: str | None, advice: str = "declare both in one unit: results convert to their lab's unit as they come in") -> str:
    """When two units measure the same thing at different scales: how they relate (a number
    literal has no unit, so multiplying by it converts nothing: the labs' units must agree;
    results are converted to their lab's unit as they come in)."""
    if a in (None, ANY) or b in (None, ANY):
        return ""
    f = unit_factor(a, b)
    if f is None or f == 1:
        return ""
    from .. import ir

    text = ir.decimal_text(Fraction(f)) or str(f)
    return f" (1 {a} is {text} {b}; {advice})" if advice else f" (1 {a} is {text} {b})"


@dataclass(frozen=True, slots=True)
class T:
    kind: str  # 'bool', 'number', 'enum', 'duration', 'error'
    unit: str | None = None  # numbers
    members: tuple[str, ...] = ()  # enums
    owner: str = ""  # enums: the fact they belong to

    def __str__(self) -> str:
        if self.kind == "number":
            return "a number" if self.unit in (ANY, None) else ("a ratio" if self.unit == RATIO else f"a number in {self.unit}")
        if self.kind == "enum":
            return f"one of the members of '{self.owner}'" if self.owner else "an enumeration"
        return {"bool": "a boolean", "duration": "a duration"}.get(self.kind, "an invalid value")


BOOL = T("bool")
ERROR = T("error")
DURATION = T("duration")


def type_of_decl(t: ast.TypeSpec | None, owner: str) -> T:
    if t is None:
        return ERROR
    if t.kind == "bool":
        return BOOL
    if t.kind == "number":
        return T("number", t.unit or RATIO)
    return T("enum", members=tuple(m.text for m in t.members), owner=owner)


DRUG_READS = ("held", "dose", "stopped", "started")
"""The functions that read a drug's state in the replay (all take a drug's name)."""


def drug_dose_type(d: ast.Drug) -> T:
    """`dose(D)`: a number in the drug's unit (numeric levels), or one of its level names."""
    if d.kind == "name":
        return T("enum", members=tuple(str(lv.value) for lv in d.levels), owner=d.name.text)
    return T("number", d.unit or RATIO)


def level_text(v) -> str:
    """A dose level as the author wrote it: a name, or the number in decimals."""
    from .. import ir

    return v if isinstance(v, str) else (str(v) if isinstance(v, int) else ir.decimal_text(v) or str(float(v)))


def lab_unit(lab: ast.Lab) -> str:
    return lab.unit or RATIO


class TypeChecker:
    def __init__(self, sym: Symbols, diags: Diagnostics):
        self.sym = sym
        self.diags = diags
        self.let_types: dict[str, T] = {}
        self._in_progress: set[str] = set()
        self._units: set[str] | None = None

    # -- entry points

    def check_module(self, module: ast.Module) -> None:
        for let in module.lets:
            self.let_type(let.name.text)
        for expr, ctx in module_exprs(module):
            if ctx in ("let", "set"):
                continue  # lets are typed above; sets below, against their variable
            t = self.infer(expr)
            if ctx == "guard" and t.kind not in ("bool", "error"):
                self.diags.error(expr.span, "E301", f"a condition must be true or false, but this is {t}")
        for st in module.states:
            self._sets(st.entry)
        for _owner, r in all_rules(module):
            self._sets(r.actions)
        for f in (*module.facts, *module.vars):
            self._default(f)
        for d in module.drugs:
            self._drug(d)

    def _drug(self, d: ast.Drug) -> None:
        """A drug's dose levels: all numbers or all names (E306), highest first (E307)."""
        numbers = [lv for lv in d.levels if not isinstance(lv.value, str)]
        names = [lv for lv in d.levels if isinstance(lv.value, str)]
        if numbers and names:
            self.diags.error(names[0].span if d.levels[0] in numbers else numbers[0].span, "E306",
                             f"the dose levels of '{d.name.text}' mix numbers and names; give numbers (with 'unit') or names")
            return
        if names and d.unit is not None:
            self.diags.error(d.span, "E306", f"the dose levels of '{d.name.text}' are names, which have no unit; "
                                             "say the dose in each level's label ('daily \"100 mg daily\"')")
        seen: dict = {}
        for lv in d.levels:
            if lv.value in seen:
                self.diags.error(lv.span, "E307", f"dose level {level_text(lv.value)} of '{d.name.text}' is listed twice")
                return
            seen[lv.value] = lv
        for a, b in zip(numbers, numbers[1:]):
            if not b.value < a.value:
                self.diags.error(b.span, "E307", f"the dose levels of '{d.name.text}' go highest first: "
                                                 f"{level_text(b.value)} comes after {level_text(a.value)}")
                return

    def _sets(self, actions) -> None:
        from ..symbols import walk_actions

        for a in walk_actions(actions):
            if isinstance(a, ast.Set) and a.var.text in self.sym.vars:
                var = self.sym.vars[a.var.text]
                want = type_of_decl(var.type, var.name.text)
                got = self.infer(a.value, expect=want)
                if not self.compatible(want, got) and not (want.kind == got.kind == "number" and self._convert(a.value, want.unit)):
                    self.diags.error(a.value.span, "E301", f"'{a.var.text}' holds {want}, but this is {got}")

    def _default(self, f: ast.Fact) -> None:
        if f.default is None or f.type is None:
            return
        v, kind = f.default.value, f.type.kind
        ok = (
            (kind == "bool" and isinstance(v, bool))
            or (kind == "number" and isinstance(v, (int, Fraction)) and not isinstance(v, bool))
            or (kind == "enum" and isinstance(v, str) and v in {m.text for m in f.type.members})
        )
        if not ok:
            if kind == "enum" and isinstance(v, str):
                members = [m.text for m in f.type.members]
                self.diags.error(f.default.span, "E303", f"'{v}' is not a member of '{f.name.text}'{did_you_mean(v, members)}")
            else:
                self.diags.error(f.default.span, "E305", f"the default of '{f.name.text}' must be {type_of_decl(f.type, f.name.text)}")

    def let_type(self, name: str) -> T:
        if name in self.let_types:
            return self.let_types[name]
        if name in self._in_progress:
            return ERROR  # a cycle, reported by checks.names
        self._in_progress.add(name)
        let = self.sym.lets[name]
        t = self.infer(let.expr)
        if let.unit is not None:
            t = self._declared_unit(let, t)
        self._in_progress.discard(name)
        self.let_types[name] = t
        return t

    def _declared_unit(self, let: ast.Let, t: T) -> T:
        """A let's `unit "..."`: the expression must be a number in that unit (a bare number
        takes it); the let then has the unit as declared."""
        if t.kind == "error":
            return t
        if t.kind != "number":
            self.diags.error(let.expr.span, "E308", f"'{let.name.text}' declares the unit '{let.unit}', but its value is {t}, "
                                                    "not a number")
            return ERROR
        if t.unit != ANY and not same_unit(t.unit, let.unit):
            got = "a ratio (no unit)" if t.unit == RATIO else f"in {t.unit}"
            self.diags.error(let.expr.span, "E308", f"'{let.name.text}' declares the unit '{let.unit}', but its expression is "
                                                    f"{got}{conversion_hint(t.unit, let.unit)}")
            return ERROR
        return T("number", let.unit)

    # -- inference

    @staticmethod
    def compatible(a: T, b: T) -> bool:
        if "error" in (a.kind, b.kind):
            return True
        if a.kind != b.kind:
            return False
        if a.kind == "number":
            return ANY in (a.unit, b.unit) or same_unit(a.unit, b.unit)
        if a.kind == "enum":
            return a.owner == b.owner or not a.owner or not b.owner
        return True

    def infer(self, e, expect: T | None = None) -> T:
        method = getattr(self, "_" + type(e).__name__.lower())
        return method(e, expect)

    def _number(self, e: ast.Number, expect) -> T:
        if e.unit is None:
            return T("number", ANY)
        if not e.unit.strip():
            self.diags.error(e.span, "E319", f"the unit of {level_text(e.value)}: an empty unit; write the number alone for a number without a unit")
            return ERROR
        if len(e.unit) > MAX_LITERAL_UNIT:
            self.diags.error(e.span, "E319", f"the unit of {level_text(e.value)}: a unit of {len(e.unit)} characters is too long "
                                             f"(at most {MAX_LITERAL_UNIT})")
            return ERROR
        try:
            c = canonical(e.unit)
        except UnitSyntax as err:
            if e.unit in self._declared_units():  # the table cannot read it, but a lab is in it
                self.sym.numbers[id(e)] = (e.value, e.unit)  # (`mL/min/1.73m2`): equal as written
                return T("number", e.unit)
            self.diags.error(e.span, "E319", f"the unit of {level_text(e.value)}: {err}")
            return ERROR
        unit = RATIO if c == (1, ()) else e.unit
        self.sym.numbers[id(e)] = (e.value, unit)
        return T("number", unit)

    def _declared_units(self) -> set[str]:
        """The units written in the declarations: labs', facts', vars', drugs', lets'."""
        if self._units is None:
            sym = self.sym
            self._units = {u for u in (
                *(lab.unit for lab in sym.labs.values()),
                *(f.type.unit for f in (*sym.facts.values(), *sym.vars.values()) if f.type is not None),
                *(d.unit for d in sym.drugs.values()),
                *(let.unit for let in sym.lets.values()),
            ) if u}
        return self._units

    @staticmethod
    def _literal(e):
        """The number literal with a unit that `e` is (also under a '-'), else None."""
        while isinstance(e, ast.Neg):
            e = e.operand
        return e if isinstance(e, ast.Number) and e.unit is not None else None

    def _convert(self, e, unit: str) -> bool:
        """Convert the literal `e` (with a unit) exactly to `unit`, when the table knows how."""
        lit = self._literal(e)
        if lit is None:
            return False
        f = unit_factor(lit.unit, unit)  # from the number as written: converting twice is converting once
        if f is None:
            return False
        v = Fraction(lit.value) * f
        self.sym.numbers[id(lit)] = (v.numerator if v.denominator == 1 else v, unit)
        return True

    def _bool(self, e: ast.Bool, expect) -> T:
        return BOOL

    def _duration(self, e: ast.Duration, expect) -> T:
        return DURATION

    def _sinceentry(self, e: ast.SinceEntry, expect) -> T:
        return DURATION

    def _ref(self, e: ast.Ref, expect) -> T:
        sym = self.sym
        if e.name in sym.labs:
            return T("number", lab_unit(sym.labs[e.name]))
        if e.name in sym.facts:
            f = sym.facts[e.name]
            return type_of_decl(f.type, f.name.text)
        if e.name in sym.vars:
            f = sym.vars[e.name]
            return type_of_decl(f.type, f.name.text)
        if e.name in sym.lets:
            return self.let_type(e.name)
        if expect is not None and expect.kind == "enum":
            if e.name in expect.members:
                return expect
            self.diags.error(e.span, "E303", f"'{e.name}' is not a member of '{expect.owner}'{did_you_mean(e.name, expect.members)}")
            return ERROR
        other = sym.kind_of(e.name)
        if other is not None:
            self.diags.error(e.span, "E206", f"'{e.name}' is {'an' if other[0] in 'aeiou' else 'a'} {other}; an expression can use labs, facts, vars and lets")
        else:
            names = sym.values() | {m for f in (*sym.facts.values(), *sym.vars.values()) if f.type for m in (x.text for x in f.type.members)}
            self.diags.error(e.span, "E202", f"'{e.name}' is not declared{did_you_mean(e.name, names)}")
        return ERROR

    def _neg(self, e: ast.Neg, expect) -> T:
        t = self.infer(e.operand)
        if t.kind not in ("number", "error"):
            self.diags.error(e.span, "E301", f"'-' needs a number, but this is {t}")
            return ERROR
        return t

    def _arith(self, e: ast.Arith, expect) -> T:
        lt, rt = self.infer(e.left), self.infer(e.right)
        if "error" in (lt.kind, rt.kind):
            return ERROR
        for side, t in ((e.left, lt), (e.right, rt)):
            if t.kind != "number":
                self.diags.error(side.span, "E301", f"'{e.op}' needs numbers, but this is {t}")
                return ERROR
        lu, ru = lt.unit, rt.unit
        if e.op in "+-":
            if not same_unit(lu, ru) and ANY not in (lu, ru):
                # a number with a unit takes the other side's unit when it converts exactly
                if self._literal(e.right) is not None and self._convert(e.right, lu):
                    return T("number", lu)
                if self._literal(e.left) is not None and self._convert(e.left, ru):
                    return T("number", ru)
                self.diags.error(e.span, "E302", f"cannot {'add' if e.op == '+' else 'subtract'} {rt} {'to' if e.op == '+' else 'from'} {lt}"
                                                 f"{conversion_hint(ru, lu)}")
                return ERROR
            return T("number", lu if lu != ANY else ru)
        if e.op == "*":
            if lu in (ANY, RATIO):
                return T("number", ru if lu == RATIO or ru != ANY else ANY)
            if ru in (ANY, RATIO):
                return T("number", lu)
            return T("number", compose(lu, ru, "*"))
        # division
        if same_unit(lu, ru):
            return T("number", RATIO if lu != ANY else ANY)
        if ru in (ANY, RATIO):
            return T("number", lu)
        if lu == ANY:
            return T("number", compose(RATIO, ru, "/"))
        return T("number", compose(lu, ru, "/"))

    def _compare(self, e: ast.Compare, expect) -> T:
        types = []
        for i, operand in enumerate(e.operands):
            hint = None
            if isinstance(operand, ast.Ref) and types and types[-1].kind == "enum":
                hint = types[-1]
            elif isinstance(operand, ast.Ref) and i + 1 < len(e.operands) and operand.name not in self.sym.values():
                nxt = self.infer_quiet(e.operands[i + 1])
                hint = nxt if nxt.kind == "enum" else None
            types.append(self.infer(operand, expect=hint))
        for i, op in enumerate(e.ops):
            a, b, x, y = types[i], types[i + 1], e.operands[i], e.operands[i + 1]
            if "error" in (a.kind, b.kind):
                continue
            if a.kind != b.kind:
                self.diags.error(e.span, "E301", f"cannot compare {a} with {b}")
                continue
            if a.kind in ("bool", "enum") and op not in ("==", "!="):
                self.diags.error(e.span, "E301", f"'{op}' needs numbers; {a} can only be compared with == or !=")
            elif a.kind == "number" and not self.compatible(a, b):
                # a number with a unit takes the unit of what it is compared with, when it
                # converts exactly (the one on the left only when it opens the chain)
                if a.unit != ANY and self._convert(y, a.unit):
                    types[i + 1] = a
                    continue
                if i == 0 and b.unit != ANY and self._convert(x, b.unit):
                    continue
                self.diags.error(e.span, "E302", f"unit mismatch: cannot compare {a} with {b}{conversion_hint(b.unit, a.unit)}")
        return BOOL

    def infer_quiet(self, e) -> T:
        saved = self.diags.items
        self.diags.items = []
        try:
            return self.infer(e)
        finally:
            self.diags.items = saved

    def _member(self, e: ast.Member, expect) -> T:
        t = self.infer(e.operand)
        if t.kind == "error":
            return BOOL
        if t.kind != "enum":
            self.diags.error(e.operand.span, "E301", f"'in {{...}}' needs an enumeration, but this is {t}")
            return BOOL
        for m in e.members:
            if m.text not in t.members:
                self.diags.error(m.span, "E303", f"'{m.text}' is not a member of '{t.owner}'{did_you_mean(m.text, t.members)}")
        return BOOL

    def _not(self, e: ast.Not, expect) -> T:
        t = self.infer(e.operand)
        if t.kind not in ("bool", "error"):
            self.diags.error(e.operand.span, "E301", f"'not' needs a condition, but this is {t}")
        return BOOL

    def _logic(self, e: ast.Logic, expect) -> T:
        for operand in e.operands:
            t = self.infer(operand)
            if t.kind not in ("bool", "error"):
                self.diags.error(operand.span, "E301", f"'{e.op}' needs conditions, but this is {t}")
        return BOOL

    def _call(self, e: ast.Call, expect) -> T:
        f = e.func.text
        args = e.args
        if f in ("max", "min"):
            if len(args) < 2:
                self.diags.error(e.span, "E304", f"{f}() takes two or more arguments")
                return ERROR
            types = [self.infer(a) for a in args]
            if any(t.kind == "error" for t in types):
                return ERROR
            unit = None
            for a, t in zip(args, types):
                if t.kind != "number":
                    self.diags.error(a.span, "E301", f"{f}() needs numbers, but this is {t}")
                    return ERROR
            # the unit of the first argument that is not a number literal, else of the first one
            plain = [t.unit for a, t in zip(args, types) if t.unit != ANY and self._literal(a) is None]
            written = [t.unit for t in types if t.unit != ANY]
            unit = (plain or written or [ANY])[0]
            for a, t in zip(args, types):
                if t.unit != ANY and not same_unit(t.unit, unit) and not self._convert(a, unit):
                    self.diags.error(a.span, "E302", f"unit mismatch in {f}(): {t} among numbers in {unit}")
                    return ERROR
            return T("number", unit)
        if f in ("uln", "xuln", "known"):
            if len(args) != 1:
                self.diags.error(e.span, "E304", f"{f}() takes one argument")
                return ERROR
            a = args[0]
            if f == "known":
                if not (isinstance(a, ast.Ref) and a.name in self.sym.values()):
                    self.diags.error(a.span, "E304", "known() takes the name of a lab, fact, var or let")
                    return BOOL
                return BOOL
            if not (isinstance(a, ast.Ref) and a.name in self.sym.labs):
                self.diags.error(a.span, "E304", f"{f}() takes the name of a lab{self._lab_hint(a)}")
                return ERROR
            lab = self.sym.labs[a.name]
            if lab.uln is None and f == "xuln":
                pass  # a per-result ULN may still be given; unknown otherwise
            return T("number", lab_unit(lab) if f == "uln" else RATIO)
        if f in ("since", "fulfilled"):
            if len(args) != 1 or not (isinstance(args[0], ast.Ref) and args[0].name in self.sym.actions):
                hint = ""
                if len(args) == 1 and isinstance(args[0], ast.Ref):
                    hint = did_you_mean(args[0].name, self.sym.actions)
                self.diags.error(e.span, "E304", f"{f}() takes the name of an action{hint}")
                return ERROR
            if f == "fulfilled" and not self.sym.actions[args[0].name].orders:
                self.diags.error(args[0].span, "E304", f"fulfilled() takes an order, and '{args[0].name}' orders no labs")
                return ERROR
            return DURATION if f == "since" else BOOL
        if f in DRUG_READS:
            if len(args) != 1 or not (isinstance(args[0], ast.Ref) and args[0].name in self.sym.drugs):
                hint = did_you_mean(args[0].name, self.sym.drugs) if len(args) == 1 and isinstance(args[0], ast.Ref) else ""
                self.diags.error(e.span, "E304", f"{f}() takes the name of a drug{hint}")
                return ERROR
            if f != "dose":
                return BOOL
            drug = self.sym.drugs[args[0].name]
            if not drug.levels:
                self.diags.error(e.span, "E304", f"dose() of '{drug.name.text}', which declares no dose levels; "
                                                 "give it 'doses ...' to read its dose")
                return ERROR
            return drug_dose_type(drug)
        return ERROR  # unknown function: reported by checks.names

    def _lab_hint(self, a) -> str:
        if isinstance(a, ast.Ref):
            return did_you_mean(a.name, self.sym.labs)
        return ""


def check(module: ast.Module, sym: Symbols, diags: Diagnostics) -> dict[str, T]:
    tc = TypeChecker(sym, diags)
    tc.check_module(module)
    return tc.let_types
