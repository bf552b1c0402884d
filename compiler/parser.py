"""Source text -> parse tree -> AST. Lark types never leave this module.

The LALR parser is built once per process and its tables are cached on disk, so a cold
`rxwatch check` does not pay for building them. Syntax errors become `Diagnostic`s (E1xx);
the parser recovers after each error so that an author sees all of them in one round.
"""

from __future__ import annotations

import re
import sys
from fractions import Fraction
from functools import lru_cache
from importlib import resources

from lark import Lark, Token, Transformer, Tree, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError

from . import ast, ir
from .diagnostics import Diagnostics
from .span import Span

MAX_SYNTAX_ERRORS = 50
# Deeper parse trees would exhaust Python's recursion in the passes that walk them; no
# clinical rule needs more than a few levels.
MAX_NESTING = 200
# A number literal's length: exact arithmetic on longer ones buys nothing (the IR's own bound).
MAX_DIGITS = ir.MAX_DIGITS
# The longest duration a protocol may name, in each unit (durations, windows, timers).
MAX_DURATION_YEARS = 100
MAX_DURATION = {"days": 36_525, "weeks": 5_218, "months": 1_200, "years": MAX_DURATION_YEARS}

# How the parser's terminals read in a message.
_PRETTY = {
    "NAME": "a name",
    "SOURCE_ID": "a source id",
    "NUMBER": "a number",
    "STRING": "a string",
    "TIME_UNIT": "a time unit (days, weeks, months, years)",
    "COMP_OP": "a comparison (<, <=, >, >=, ==, !=)",
    "$END": "the end of the file",
}

_DECL_KEYWORDS = ("protocol", "source", "lab", "fact", "event", "action", "let", "var", "state", "initial", "terminal",
                  "results", "reminders", "track", "rules", "drug", "schedule")


@lru_cache(maxsize=1)
def grammar_text() -> str:
    return resources.files("rxwatch.grammar").joinpath("protocol.lark").read_text(encoding="utf-8")


@lru_cache(maxsize=1)
def _lark() -> Lark:
    return Lark(
        grammar_text(),
        parser="lalr",
        lexer="contextual",
        propagate_positions=True,
        maybe_placeholders=False,
        cache=True,
    )


def parse_tree(text: str) -> Tree:
    """The bare lark parse (no AST, no recovery): the floor that benchmarks compare against."""
    return _lark().parse(text)


def _term_text(name: str) -> str:
    if name in _PRETTY:
        return _PRETTY[name]
    for t in _lark().terminals:
        if t.name == name:
            if t.pattern.type == "str":
                return f"'{t.pattern.value}'"
            break
    return name.lower()


def _expected(names) -> str:
    pretty = sorted({_term_text(n) for n in names})
    if len(pretty) > 8:
        return "; expected one of " + ", ".join(pretty[:8]) + ", ..."
    return "; expected " + (" or ".join(pretty) if len(pretty) <= 2 else "one of " + ", ".join(pretty))


def _describe(tok: Token) -> str:
    if tok.type == "$END":
        return "end of file"
    return f"'{tok.value}'" if len(tok.value) <= 30 else f"'{tok.value[:27]}...'"


def _end_span(path: str, text: str) -> Span:
    lines = text.splitlines() or [""]
    line = len(lines)
    col = len(lines[-1]) + 1
    return Span(path, line, col, line, col)


def _syntax_errors(path: str, text: str, diags: Diagnostics) -> Tree | None:
    """Parse, recovering after errors; return the tree only when there were none."""
    errors = 0
    last_line = [-1]
    work = text

    def record(span: Span, code: str, message: str) -> None:
        nonlocal errors
        if span.line == last_line[0] or errors >= MAX_SYNTAX_ERRORS:
            return
        last_line[0] = span.line
        errors += 1
        diags.error(span, code, message)

    def on_error(e: UnexpectedInput) -> bool:
        if isinstance(e, UnexpectedToken):
            tok = e.token
            if tok.type == "$END":
                record(_end_span(path, text), "E103", "unexpected end of file" + _expected(e.expected))
                return False
            span = Span(path, tok.line, tok.column, tok.end_line or tok.line, max(tok.column, (tok.end_column or tok.column + 1) - 1))
            hint = ""
            if tok.value in _DECL_KEYWORDS and "RBRACE" in e.expected:
                hint = " (is a '}' missing before it?)"
            record(span, "E101", f"unexpected {_describe(tok)}" + _expected(e.expected) + hint)
            return errors < MAX_SYNTAX_ERRORS
        return False

    for _attempt in range(MAX_SYNTAX_ERRORS + 1):
        try:
            tree = _lark().parse(work, on_error=on_error)
            return tree if errors == 0 else None
        except UnexpectedCharacters as e:
            ch = work[e.pos_in_stream]
            span = Span(path, e.line, e.column, e.line, e.column)
            if ch == '"':
                record(span, "E102", "unterminated string; a string ends on the line where it starts (use \"\"\" for text over several lines)")
            else:
                record(span, "E102", f"unexpected character {ch!r}" + _expected(e.allowed or ()))
            # blank the offending character out and try again, to find the errors after it
            if ch == '"':
                # close it as an empty string, so the field it belongs to stays well-formed
                eol = work.find("\n", e.pos_in_stream)
                eol = len(work) if eol < 0 else eol
                work = work[: e.pos_in_stream] + '""' + " " * max(0, eol - e.pos_in_stream - 2) + work[eol:]
            else:
                work = work[: e.pos_in_stream] + " " + work[e.pos_in_stream + 1 :]
        except UnexpectedEOF as e:
            record(_end_span(path, text), "E103", "unexpected end of file" + _expected(e.expected))
            return None
        except UnexpectedInput as e:  # an UnexpectedToken that on_error declined to resume from
            if isinstance(e, UnexpectedToken) and e.token.type == "$END":
                record(_end_span(path, text), "E103", "unexpected end of file" + _expected(e.expected))
            elif errors == 0:
                line, col = max(getattr(e, "line", 1), 1), max(getattr(e, "column", 1), 1)
                record(Span(path, line, col, line, col), "E101", "syntax error")
            return None
    return None


# ------------------------------------------------------------------ parse tree -> AST


class _Invalid(Exception):
    """A literal the grammar accepts but the language does not (e.g. `1.5 weeks`)."""

    def __init__(self, span: Span, message: str):
        self.span = span
        self.message = message


def _unquote(tok: Token) -> str:
    s = str(tok)
    if s.startswith('"""'):
        body = s[3:-3]
        # strip the common indentation of a block string
        lines = body.strip("\n").splitlines()
        indent = min((len(l) - len(l.lstrip()) for l in lines if l.strip()), default=0)
        return "\n".join(l[indent:] for l in lines).strip()
    # `\"` is a quote, `\\` a backslash, `\n` and `\t` a new line and a tab; any other
    # backslash stands for itself (a Windows path in a note stays as written)
    return _ESCAPE.sub(lambda m: _ESCAPES.get(m.group(1), m.group(0)), s[1:-1])


_ESCAPE = re.compile(r"\\(.)", re.S)
_ESCAPES = {'"': '"', "\\": "\\", "n": "\n", "t": "\t"}


class _Builder(Transformer):
    """Builds AST nodes bottom-up; every node gets the span of its tree node or token."""

    def __init__(self, path: str, text: str):
        super().__init__(visit_tokens=False)
        self.path = path
        self.text = text
        self._methods: dict[str, object] = {}

    def _call_userfunc(self, tree, new_children=None):
        # lark re-wraps a v_args method on every lookup; look each one up once per file
        children = tree.children if new_children is None else new_children
        f = self._methods.get(tree.data)
        if f is None:
            f = getattr(self, tree.data, None)
            if f is None:  # a rule with no method of its own (`start`)
                return self.__default__(tree.data, children, tree.meta)
            self._methods[tree.data] = f
        try:
            wrapper = getattr(f, "visit_wrapper", None)
            if wrapper is not None:
                return wrapper(f, tree.data, children, tree.meta)
            return f(children)
        except _Invalid as e:
            raise VisitError(tree.data, tree, e)

    # -- helpers

    def span(self, meta) -> Span:
        if getattr(meta, "empty", True) and not hasattr(meta, "line"):
            return Span(self.path, 0, 0, 0, 0)
        return Span(self.path, meta.line, meta.column, meta.end_line, max(meta.column, meta.end_column - 1) if meta.end_line == meta.line else max(1, meta.end_column - 1))

    def tspan(self, tok: Token) -> Span:
        end_col = (tok.end_column or tok.column + len(tok)) - 1
        return Span(self.path, tok.line, tok.column, tok.end_line or tok.line, max(tok.column, end_col) if (tok.end_line or tok.line) == tok.line else end_col)

    def name(self, tok: Token) -> ast.Name:
        return ast.Name(str(tok), self.tspan(tok))

    def slice(self, meta) -> str:
        return " ".join(self.text[meta.start_pos : meta.end_pos].split())

    def _float(self, tok: Token) -> int | Fraction:
        """A number literal, exactly: `40` is 40, `1.2` is Fraction(6, 5), never a binary float."""
        text = str(tok)
        if len(text) > MAX_DIGITS:
            raise _Invalid(self.tspan(tok), f"a number of more than {MAX_DIGITS} characters ({text[:12]}...)")
        q = Fraction(text)
        return q.numerator if q.denominator == 1 else q

    def whole(self, tok: Token, what: str) -> int:
        text = str(tok)
        if len(text) > MAX_DIGITS:
            raise _Invalid(self.tspan(tok), f"{what} of more than {MAX_DIGITS} characters ({text[:12]}...)")
        v = Fraction(text)
        if v.denominator != 1:
            raise _Invalid(self.tspan(tok), f"{what} must be a whole number, not {tok}")
        return v.numerator

    def bounded(self, tok: Token, amount: int, unit: str, what: str) -> int:
        """A duration's amount, at most MAX_DURATION_YEARS years in its unit (a protocol speaks of
        weeks and months; a longer one is a typo, and would run past the calendar)."""
        limit = MAX_DURATION[unit]
        if amount > limit:
            raise _Invalid(self.tspan(tok), f"{what} of {amount} {unit} is longer than {MAX_DURATION_YEARS} years "
                                            f"(at most {limit:,} {unit})")
        return amount

    @staticmethod
    def pick(children, cls):
        return [c for c in children if isinstance(c, cls)]

    @staticmethod
    def first(children, cls, default=None):
        for c in children:
            if isinstance(c, cls):
                return c
        return default

    @staticmethod
    def tagged(children, tag):
        for c in children:
            if isinstance(c, tuple) and len(c) == 2 and c[0] == tag:
                return c[1]
        return None

    @staticmethod
    def strings(children):
        return [c for c in children if isinstance(c, Token) and c.type == "STRING"]

    # -- metadata

    @v_args(inline=True)
    def title(self, s):
        return ("title", _unquote(s))

    @v_args(inline=True)
    def version(self, s):
        return ("version", _unquote(s))

    @v_args(inline=True)
    def status(self, n):
        return ("status", self.name(n))

    @v_args(inline=True)
    def description(self, s):
        return ("description", _unquote(s))

    @v_args(inline=True)
    def kind(self, n):
        return ("kind", self.name(n))

    @v_args(inline=True)
    def url(self, s):
        return ("url", _unquote(s))

    @v_args(inline=True)
    def doi(self, s):
        return ("doi", _unquote(s))

    @v_args(inline=True)
    def note(self, s):
        return ("note", _unquote(s))

    @v_args(inline=True)
    def unit(self, s):
        return ("unit", _unquote(s))

    @v_args(inline=True)
    def uln(self, n):
        return ("uln", self._positive(n, "a ULN"))

    @v_args(inline=True)
    def lln(self, n):
        return ("lln", self._float(n))

    @v_args(inline=True)
    def molar_mass(self, n):
        return ("molar_mass", self._positive(n, "a molar mass"))

    def _positive(self, tok: Token, what: str) -> int | Fraction:
        """A ULN or molar mass: above 0 (0 would make every multiple of the ULN, or every
        conversion through the molar mass, meaningless; issue 10 item 3)."""
        v = self._float(tok)
        if v <= 0:
            raise _Invalid(self.tspan(tok), f"{what} must be above 0, not {tok}")
        return v

    def loinc(self, children):
        return ("loinc", tuple(_unquote(s) for s in children))

    def cite(self, children):
        # SOURCE_ID tokens, each followed by its locator STRING when it has one
        out: list[ast.Citation] = []
        for tok in children:
            if tok.type == "STRING":
                out[-1] = ast.Citation(out[-1].text, out[-1].span, _unquote(tok))
            else:
                out.append(ast.Citation(str(tok), self.tspan(tok)))
        return ("cite", tuple(out))

    def orders(self, children):
        return ("orders", tuple(self.name(t) for t in children))

    @v_args(meta=True)
    def protocol_decl(self, meta, children):
        return ast.ProtocolMeta(
            name=self.name(children[0]),
            title=self.tagged(children, "title"),
            version=self.tagged(children, "version"),
            status=self.tagged(children, "status"),
            description=self.tagged(children, "description"),
            span=self.span(meta),
        )

    @v_args(meta=True)
    def source_decl(self, meta, children):
        title = self.strings(children[1:])
        return ast.Source(
            id=self.name(children[0]),
            title=_unquote(title[0]) if title else None,
            kind=self.tagged(children, "kind"),
            url=self.tagged(children, "url"),
            doi=self.tagged(children, "doi"),
            note=self.tagged(children, "note"),
            span=self.span(meta),
        )

    def _desc(self, children):
        s = self.strings(children[1:2])
        return _unquote(s[0]) if s else None

    @v_args(meta=True)
    def lab_decl(self, meta, children):
        return ast.Lab(
            name=self.name(children[0]),
            description=self._desc(children),
            unit=self.tagged(children, "unit"),
            uln=self.tagged(children, "uln"),
            loinc=self.tagged(children, "loinc") or (),
            molar_mass=self.tagged(children, "molar_mass"),
            cite=self.tagged(children, "cite") or (),
            span=self.span(meta),
            lln=self.tagged(children, "lln"),
        )

    # -- types and literals

    @v_args(meta=True)
    def bool_type(self, meta, children):
        return ast.TypeSpec("bool", None, (), self.span(meta))

    @v_args(meta=True)
    def number_type(self, meta, children):
        return ast.TypeSpec("number", self.tagged(children, "unit"), (), self.span(meta))

    @v_args(meta=True)
    def enum_type(self, meta, children):
        return ast.TypeSpec("enum", None, tuple(self.name(t) for t in children), self.span(meta))

    @v_args(meta=True)
    def true(self, meta, children):
        return self._expr(meta, ast.Bool(True, self.span(meta)))

    @v_args(meta=True)
    def false(self, meta, children):
        return self._expr(meta, ast.Bool(False, self.span(meta)))

    @v_args(meta=True)
    def signed_number(self, meta, children):
        tok = children[-1]
        v = self._float(tok)
        neg = len(children) > 1 or self.text[meta.start_pos : meta.start_pos + 1] == "-"
        return ast.Number(-v if neg else v, self.span(meta))

    @v_args(meta=True, inline=True)
    def enum_literal(self, meta, tok):
        return ast.Ref(str(tok), self.tspan(tok))

    @v_args(meta=True, inline=True)
    def default(self, meta, lit):
        if isinstance(lit, ast.Bool):
            return ("default", ast.Literal(lit.value, lit.span))
        if isinstance(lit, ast.Number):
            return ("default", ast.Literal(lit.value, lit.span))
        return ("default", ast.Literal(lit.name, lit.span))

    def _fact(self, meta, children, is_var):
        return ast.Fact(
            name=self.name(children[0]),
            description=self._desc(children),
            type=self.first(children, ast.TypeSpec),
            default=self.tagged(children, "default"),
            cite=self.tagged(children, "cite") or (),
            span=self.span(meta),
            is_var=is_var,
        )

    @v_args(meta=True)
    def fact_decl(self, meta, children):
        return self._fact(meta, children, False)

    @v_args(meta=True)
    def var_decl(self, meta, children):
        return self._fact(meta, children, True)

    @v_args(meta=True)
    def event_decl(self, meta, children):
        return ast.Event(self.name(children[0]), self._desc(children), self.tagged(children, "cite") or (), self.span(meta),
                         self.first(children, ast.Effect))

    @v_args(meta=True)
    def action_decl(self, meta, children):
        return ast.ActionDecl(
            name=self.name(children[0]),
            description=self._desc(children),
            orders=self.tagged(children, "orders") or (),
            cite=self.tagged(children, "cite") or (),
            span=self.span(meta),
            fulfilled_by=self.tagged(children, "fulfilled_by"),
            effect=self.first(children, ast.Effect),
        )

    @v_args(meta=True)
    def drug_decl(self, meta, children):
        return ast.Drug(
            name=self.name(children[0]),
            description=self._desc(children),
            levels=tuple(self.pick(children, ast.DoseLevel)),
            unit=self.tagged(children, "unit"),
            cite=self.tagged(children, "cite") or (),
            span=self.span(meta),
        )

    @v_args(meta=True)
    def number_level(self, meta, children):
        return ast.DoseLevel(self._float(children[0]), None, self.span(meta))

    @v_args(meta=True)
    def named_level(self, meta, children):
        label = _unquote(children[1]) if len(children) > 1 else None
        return ast.DoseLevel(str(children[0]), label, self.span(meta))

    @v_args(meta=True)
    def level_ref(self, meta, children):
        tok = children[0]
        value = self._float(tok) if tok.type == "NUMBER" else str(tok)
        return ast.DoseLevel(value, None, self.tspan(tok))

    def at_level(self, children):
        return children[0]

    def _effect(self, kind, meta, children):
        return ast.Effect(kind, self.name(children[0]), self.first(children, ast.DoseLevel), self.span(meta))

    @v_args(meta=True)
    def starts(self, meta, children):
        return self._effect("start", meta, children)

    @v_args(meta=True)
    def holds(self, meta, children):
        return self._effect("hold", meta, children)

    @v_args(meta=True)
    def resumes(self, meta, children):
        return self._effect("resume", meta, children)

    @v_args(meta=True)
    def doses_effect(self, meta, children):
        return self._effect("dose", meta, children)

    @v_args(meta=True)
    def stops(self, meta, children):
        return self._effect("stop", meta, children)

    def fulfilled_by(self, children):
        return ("fulfilled_by", children[0])

    def lab_any(self, children):
        # alternatives (or), each a conjunction (and): flattened to a disjunctive normal form
        out: list[tuple[ast.Name, ...]] = []
        for c in children:
            for alt in c:
                if alt not in out:
                    out.append(alt)
        return tuple(out)

    def lab_all(self, children):
        # each child: a lab name, or the alternatives of a parenthesised `lab_any`
        alts: list[tuple[ast.Name, ...]] = [()]
        for c in children:
            options = [(self.name(c),)] if isinstance(c, Token) else list(c)
            alts = [a + o for a in alts for o in options]
        return tuple(alts)

    def _setting(self, kind, meta, children):
        d = children[0]
        if kind == "reminders" and d.amount == 0:
            raise _Invalid(d.span, "reminders every 0 days would flag an order again on the same day; give a duration of 1 day or more")
        return ast.Setting(kind, d, self.tagged(children, "cite") or (), self.span(meta))

    @v_args(meta=True)
    def results_decl(self, meta, children):
        return self._setting("results", meta, children)

    @v_args(meta=True)
    def reminders_decl(self, meta, children):
        return self._setting("reminders", meta, children)

    @v_args(meta=True)
    def let_decl(self, meta, children):
        expr = children[-2] if isinstance(children[-1], tuple) else children[-1]
        expr_tree_meta = self.expr_text(expr)
        return ast.Let(
            name=self.name(children[0]),
            description=self._desc(children),
            expr=expr,
            text=expr_tree_meta or "",
            cite=self.tagged(children, "cite") or (),
            span=self.span(meta),
            unit=self.tagged(children, "unit"),
        )

    # -- time

    @v_args(meta=True)
    def duration(self, meta, children):
        amount, unit = children
        n = self.bounded(amount, self.whole(amount, "a duration"), _unit(unit), "a duration")
        return self._expr(meta, ast.Duration(n, _unit(unit), self.span(meta)))

    def _range(self, meta, children, every: bool = False) -> ast.Window:
        a, b, unit = children
        u = _unit(unit)
        start = self.bounded(a, self.whole(a, "a window bound"), u, "a window bound")
        end = self.bounded(b, self.whole(b, "a window bound"), u, "a window bound")
        return ast.Window(start, end, u, self.span(meta), every=every)

    @v_args(meta=True)
    def range_window(self, meta, children):  # `due 2..4 weeks`
        return self._range(meta, children)

    @v_args(meta=True)
    def every_range_window(self, meta, children):  # `every 4..8 weeks`
        return self._range(meta, children, every=True)

    @v_args(meta=True)
    def within_window(self, meta, children):  # `due within 14 days`
        d = children[0]
        return ast.Window(0, d.amount, d.unit, self.span(meta))

    @v_args(meta=True)
    def every_within_window(self, meta, children):
        d = children[0]
        return ast.Window(0, d.amount, d.unit, self.span(meta), every=True)

    @v_args(meta=True)
    def point_window(self, meta, children):  # `due 3 months`: widened by the schedule tolerance
        d = children[0]
        return ast.Window(d.amount, d.amount, d.unit, self.span(meta), point=True)

    @v_args(meta=True)
    def every_point_window(self, meta, children):
        d = children[0]
        return ast.Window(d.amount, d.amount, d.unit, self.span(meta), point=True, every=True)

    @v_args(meta=True)
    def tolerance_decl(self, meta, children):
        return self._setting("tolerance", meta, children)

    # -- actions

    @v_args(meta=True)
    def do_action(self, meta, children):
        return ast.Do(self.name(children[0]), self.first(children, ast.Window), self.tagged(children, "cite") or (), self.span(meta))

    @v_args(meta=True)
    def one_of(self, meta, children):
        alts = tuple(self.pick(children, ast.Alternative))
        opts = tuple(a.action for a in alts) or tuple(self.name(t) for t in children if isinstance(t, Token))
        return ast.OneOf(opts, self.first(children, ast.Window), self.tagged(children, "cite") or (), self.span(meta),
                         alternatives=alts)

    @v_args(meta=True)
    def alternative(self, meta, children):
        target = next((c for c in children if isinstance(c, tuple) and c[0] == "target"), None)
        return ast.Alternative(
            action=self.name(children[0]),
            target=target[1] if target else None,
            stay=target is not None and target[1] is None,
            actions=self.tagged(children, "block") or (),
            span=self.span(meta),
        )

    @v_args(meta=True)
    def set_action(self, meta, children):
        return ast.Set(self.name(children[0]), children[1], self.tagged(children, "cite") or (), self.span(meta))

    def action_block(self, children):
        return ("block", tuple(children))

    def else_clause(self, children):
        c = children[0]
        return ("else", (c,) if isinstance(c, ast.If) else c[1])

    @v_args(meta=True)
    def if_action(self, meta, children):
        cond = children[0]
        return ast.If(
            cond=cond,
            cond_text=self.expr_text(cond),
            cite=self.tagged(children, "cite") or (),
            then=self.tagged(children, "block") or (),
            orelse=self.tagged(children, "else") or (),
            span=self.span(meta),
        )

    # -- states

    @v_args(meta=True)
    def guard(self, meta, children):
        return ("guard", (children[0], self.expr_text(children[0])))

    def otherwise(self, children):
        return ("guard", (None, "", _unquote(children[0]) if children else None))

    @v_args(inline=True)
    def goto(self, tok):
        return ("target", self.name(tok))

    def stay(self, children):
        return ("target", None)

    @v_args(meta=True)
    def rule(self, meta, children):
        guard, text, *named = self.tagged(children, "guard")
        return ast.Rule(
            guard=guard,
            guard_text=text,
            otherwise_name=named[0] if named else None,
            target=self.tagged(children, "target"),
            cite=self.tagged(children, "cite") or (),
            actions=self.tagged(children, "block") or (),
            span=self.span(meta),
            has_target=any(isinstance(c, tuple) and c[0] == "target" for c in children),
        )

    @v_args(inline=True)
    def handler_mode(self, tok):
        return ("mode", str(tok))

    def _handler(self, meta, trigger, children, delay=None, since=None):
        names = tuple(self.name(t) for t in children if isinstance(t, Token))
        if since is not None:
            names = ()
        return ast.Handler(
            trigger=trigger,
            names=names,
            delay=delay,
            since=since,
            mode=self.tagged(children, "mode") or "first",
            rules=tuple(self.pick(children, ast.Rule)),
            span=self.span(meta),
            items=tuple(c for c in children if isinstance(c, (ast.Rule, ast.Use))),
        )

    @v_args(meta=True)
    def use(self, meta, children):
        return ast.Use(self.name(children[0]), self.span(meta))

    @v_args(meta=True)
    def rules_decl(self, meta, children):
        desc = [t for t in children[1:] if isinstance(t, Token) and t.type == "STRING"]
        return ast.RuleBlock(
            name=self.name(children[0]),
            description=_unquote(desc[0]) if desc else None,
            rules=tuple(self.pick(children, ast.Rule)),
            span=self.span(meta),
            uses=tuple(self.pick(children, ast.Use)),
        )

    @v_args(meta=True)
    def panel_handler(self, meta, children):
        return self._handler(meta, "panel", children)

    @v_args(meta=True)
    def event_handler(self, meta, children):
        return self._handler(meta, "event", children)

    @v_args(meta=True)
    def fact_handler(self, meta, children):
        return self._handler(meta, "fact", children)

    @v_args(meta=True)
    def timer_handler(self, meta, children):
        delay = children[0]
        since = next((self.name(t) for t in children if isinstance(t, Token) and t.type == "NAME"), None)
        return self._handler(meta, "timer", children, delay=delay, since=since)

    @v_args(meta=True)
    def accept_decl(self, meta, children):
        code, reason = children
        return ast.Accept(self.name(code), _unquote(reason), self.span(meta))

    def entry(self, children):
        return ("entry", tuple(children))

    @v_args(inline=True)
    def severity(self, tok):
        return ("severity", self.name(tok))

    @v_args(inline=True)
    def state_kind(self, tok):
        return ("kind", str(tok))

    @v_args(meta=True)
    def state_decl(self, meta, children):
        kind = self.tagged(children, "kind") or "normal"
        toks = [c for c in children if isinstance(c, Token)]
        name = toks[0]
        desc = [t for t in toks[1:] if t.type == "STRING"]
        entries = [c[1] for c in children if isinstance(c, tuple) and c[0] == "entry"]
        state = ast.State(
            name=self.name(name),
            kind=kind,
            description=_unquote(desc[0]) if desc else None,
            entry=tuple(a for e in entries for a in e),
            handlers=tuple(self.pick(children, ast.Handler)),
            span=self.span(meta),
            accepts=tuple(self.pick(children, ast.Accept)),
            severity=self.tagged(children, "severity"),
            states=tuple(self.pick(children, ast.State)),
            tracks=tuple(self.pick(children, ast.Track)),
        )
        if len(entries) > 1:
            self.entry_blocks.append((state, len(entries)))
        return state

    @v_args(meta=True)
    def track_decl(self, meta, children):
        desc = [t for t in children[1:] if isinstance(t, Token) and t.type == "STRING"]
        return ast.Track(
            name=self.name(children[0]),
            description=_unquote(desc[0]) if desc else None,
            states=tuple(self.pick(children, ast.State)),
            span=self.span(meta),
            accepts=tuple(self.pick(children, ast.Accept)),
        )

    # -- expressions

    def _expr(self, meta, node):
        # positions only: the text is cut out for the few roots that keep it (expr_text)
        self._expr_meta[id(node)] = (meta.start_pos, meta.end_pos)
        return node

    def expr_text(self, node) -> str:
        """The expression as the author wrote it, on one line."""
        pos = self._expr_meta.get(id(node))
        return " ".join(self.text[pos[0] : pos[1]].split()) if pos else ""

    @v_args(meta=True, inline=True)
    def number(self, meta, tok, unit=None):
        return self._expr(meta, ast.Number(self._float(tok), self.span(meta), None if unit is None else _unquote(unit)))

    @v_args(meta=True)
    def since_entry(self, meta, children):
        return self._expr(meta, ast.SinceEntry(self.span(meta)))

    @v_args(meta=True)
    def since_call(self, meta, children):
        name = ast.Name("since", Span(self.path, meta.line, meta.column, meta.line, meta.column + 4))
        return self._expr(meta, ast.Call(name, tuple(c for c in children if c is not None), self.span(meta)))

    @v_args(meta=True, inline=True)
    def ref(self, meta, tok):
        return self._expr(meta, ast.Ref(str(tok), self.tspan(tok)))

    @v_args(meta=True)
    def call(self, meta, children):
        return self._expr(meta, ast.Call(self.name(children[0]), tuple(c for c in children[1:] if c is not None), self.span(meta)))

    @v_args(meta=True, inline=True)
    def neg(self, meta, operand):
        return self._expr(meta, ast.Neg(operand, self.span(meta)))

    def _arith(self, op, meta, children):
        return self._expr(meta, ast.Arith(op, children[0], children[1], self.span(meta)))

    @v_args(meta=True)
    def add(self, meta, children):
        return self._arith("+", meta, children)

    @v_args(meta=True)
    def sub(self, meta, children):
        return self._arith("-", meta, children)

    @v_args(meta=True)
    def mul(self, meta, children):
        return self._arith("*", meta, children)

    @v_args(meta=True)
    def div(self, meta, children):
        return self._arith("/", meta, children)

    @v_args(meta=True)
    def compare(self, meta, children):
        operands = tuple(children[0::2])
        ops = tuple(str(t) for t in children[1::2])
        return self._expr(meta, ast.Compare(ops, operands, self.span(meta)))

    @v_args(meta=True)
    def member(self, meta, children):
        return self._expr(meta, ast.Member(children[0], tuple(self.name(t) for t in children[1:]), self.span(meta)))

    @v_args(meta=True, inline=True)
    def not_(self, meta, operand):
        return self._expr(meta, ast.Not(operand, self.span(meta)))

    def _logic(self, op, meta, children):
        ops = []
        for c in children:
            ops.extend(c.operands if isinstance(c, ast.Logic) and c.op == op and id(c) in self._flat else [c])
        node = ast.Logic(op, tuple(ops), self.span(meta))
        self._flat.add(id(node))
        return self._expr(meta, node)

    @v_args(meta=True)
    def and_(self, meta, children):
        return self._logic("and", meta, children)

    @v_args(meta=True)
    def or_(self, meta, children):
        return self._logic("or", meta, children)

    def transform(self, tree):
        self.entry_blocks: list[tuple[ast.State, int]] = []  # states with more than one `on entry`
        self._expr_meta: dict[int, tuple[int, int]] = {}
        self._flat: set[int] = set()
        return super().transform(tree)


def _unit(tok) -> str:
    s = str(tok)
    return s if s.endswith("s") else s + "s"


_EXPR_RULES = {"or_", "and_", "not_", "compare", "member", "add", "sub", "mul", "div", "neg", "call", "since_call"}


# Operators whose chains (`a or b or c ...`) are one level of nesting, however long: the
# AST flattens them (arithmetic stays binary in the AST, so its chains count as nesting).
_CHAINS = {"or_", "and_"}
MAX_CHAIN = 1000  # terms in one chain


def _too_deep(tree: Tree, path: str, diags: Diagnostics) -> int | None:
    """Report (E105) the first subtree nested more than MAX_NESTING levels, or a chain of more
    than MAX_CHAIN terms, without recursing; else return the tree's raw depth (a chain counts
    once toward the nesting, but each of its links is a level of the parse tree)."""
    stack: list[tuple[Tree, int, int, int, Tree | None]] = [(tree, 1, 1, 1, None)]
    deepest = 1
    while stack:
        node, depth, raw, chain, expr_root = stack.pop()
        deepest = max(deepest, raw)
        if expr_root is None and node.data in _EXPR_RULES:
            expr_root = node
        where = (expr_root or node).meta
        line, col = getattr(where, "line", 1), getattr(where, "column", 1)
        if depth > MAX_NESTING:
            diags.error(
                Span(path, line, col, line, col),
                "E105",
                f"expression nested more than {MAX_NESTING} levels deep; split it into named 'let' values",
            )
            return None
        if chain > MAX_CHAIN:
            word = "'or'" if node.data == "or_" else "'and'"
            diags.error(Span(path, line, col, line, col), "E105",
                        f"an {word} chain of more than {MAX_CHAIN} terms; split it into named 'let' values")
            return None
        for c in node.children:
            if isinstance(c, Tree):
                same = c.data == node.data and c.data in _CHAINS
                stack.append((c, depth if same else depth + 1, raw + 1, chain + 1 if same else 1, expr_root))
    return deepest


def parse(text: str, path: str, diags: Diagnostics) -> ast.Module | None:
    """Parse one protocol file; syntax errors go to `diags` and give None."""
    tree = _syntax_errors(path, text, diags)
    if tree is None:
        return None
    depth = _too_deep(tree, path, diags)
    if depth is None:
        return None
    builder = _Builder(path, text)
    # lark's Transformer recurses, a few frames a level: room for the deepest tree allowed
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 6 * depth + 500))
    try:
        items = builder.transform(tree).children
    except VisitError as e:
        if isinstance(e.orig_exc, _Invalid):
            diags.error(e.orig_exc.span, "E104", e.orig_exc.message)
            return None
        raise
    finally:
        sys.setrecursionlimit(limit)
    for state, n_entries in builder.entry_blocks:
        diags.error(state.span, "E405", f"state '{state.name.text}' has {n_entries} 'on entry' blocks; merge them into one")
    top = tuple(i for i in items if isinstance(i, ast.State))
    states, tracks = flatten(top)

    def of(cls, pred=lambda x: True):
        return tuple(i for i in items if isinstance(i, cls) and pred(i))

    return ast.Module(
        path=path,
        source=text,
        protocol=of(ast.ProtocolMeta),
        sources=of(ast.Source),
        labs=of(ast.Lab),
        facts=of(ast.Fact, lambda f: not f.is_var),
        vars=of(ast.Fact, lambda f: f.is_var),
        events=of(ast.Event),
        actions=of(ast.ActionDecl),
        lets=of(ast.Let),
        states=states,
        accepts=of(ast.Accept),
        settings=of(ast.Setting),
        top=top,
        tracks=tracks,
        blocks=of(ast.RuleBlock),
        drugs=of(ast.Drug),
    )


def flatten(top) -> tuple[tuple[ast.State, ...], tuple[ast.Track, ...]]:
    """Every state and every track below `top`, each in document (pre-)order."""
    states: list[ast.State] = []
    tracks: list[ast.Track] = []
    stack: list = list(reversed(top))
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Track):
            tracks.append(node)
            stack.extend(reversed(node.states))
            continue
        states.append(node)
        stack.extend(reversed(_children_in_order(node)))
    return tuple(states), tuple(tracks)


def _children_in_order(st: ast.State) -> list:
    """A state's nested states and tracks in the order written (a state has one kind or the
    other; both is E410, but the order stays the file's)."""
    return sorted((*st.states, *st.tracks), key=lambda n: (n.span.line, n.span.column))

