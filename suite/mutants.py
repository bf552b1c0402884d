"""Mutants of a protocol: each one small, plausible slip of a guideline author.

A mutant is the protocol's text with one edit, made at the span of one AST node, so that it
is reported where the author would look (`protocol.rxw:212:14: tx > 5 -> tx >= 5`). The
operators (docs/scenarios.md, "Mutants"):

| operator | what it changes |
|---|---|
| `threshold-up`, `threshold-down` | a number compared in a guard, a derived value or a condition, by one step: one unit of its last decimal place (`5` -> `6`/`4`, `1.5` -> `1.6`/`1.4`); a duration compared (`since entry >= 14 days`) by one unit |
| `flip` | a comparison's boundary: `>` <-> `>=`, `<` <-> `<=` |
| `window` | a due window's bound by one unit each way (`due 2..4 weeks` -> `1..4`, `3..4`, `2..3`, `2..5`; `due within 14 days` -> `13`, `15`) |
| `target` | a rule's target swapped for a sibling rule's (another rule of the same handler), `stay` included |
| `drop-action` | one action of an entry or of a rule left out (`do`, `do one of`, `set`, `if`) |
| `drop-rule` | one rule of a handler left out |
| `swap-rules` | two neighbouring rules of a handler swapped (first match makes the order matter) |
| `default` | a fact's default flipped (`true` <-> `false`; an enumeration's next member) |
| `and-or` | a boolean operator swapped (`and` <-> `or`, the whole chain of one expression) |

Every mutant's text differs from the protocol's; one that no longer compiles is dropped
(`stillborn`, counted) by the runner, never scored.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Iterator

from rxwatch.compiler import ast
from rxwatch.compiler.span import Span

OPERATORS = ("threshold-up", "threshold-down", "flip", "window", "target", "drop-action",
             "drop-rule", "swap-rules", "default", "and-or")
"""Every operator, in the order mutants are made (docs/scenarios.md lists what each does)."""

# the operators whose edits live in a condition: the verifier can prove such a mutant equivalent
GUARD_OPERATORS = frozenset({"threshold-up", "threshold-down", "flip", "and-or", "swap-rules", "drop-rule"})

_FLIP = {">": ">=", ">=": ">", "<": "<=", "<=": "<"}


@dataclass(frozen=True)
class Mutant:
    """One edit of the protocol's text."""

    number: int  # 1-based, in the order made (stable for a given protocol text)
    operator: str
    span: Span  # where the edit is
    edit: str  # what changed, for a person: `tx > 5` -> `tx >= 5`
    text: str  # the whole mutated protocol

    def to_dict(self) -> dict:
        return {"number": self.number, "operator": self.operator, "line": self.span.line,
                "column": self.span.column, "edit": self.edit}


class _Text:
    """The protocol's text, with spans turned into offsets (a span's end is inclusive)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.starts = [0]
        for m in re.finditer("\n", text):
            self.starts.append(m.end())

    def start(self, s: Span) -> int:
        return self.starts[s.line - 1] + s.column - 1

    def end(self, s: Span) -> int:
        return self.starts[s.end_line - 1] + s.end_column

    def of(self, s: Span) -> str:
        return self.text[self.start(s):self.end(s)]

    def line_start(self, offset: int) -> int:
        return self.text.rfind("\n", 0, offset) + 1


def _nodes(obj) -> Iterator:
    """Every AST node under `obj`, depth first in document order (any dataclass the AST has,
    so that new node types are walked without changes here)."""
    if isinstance(obj, (list, tuple)):
        for x in obj:
            yield from _nodes(x)
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        yield obj
        for f in dataclasses.fields(obj):
            if f.name != "span":
                yield from _nodes(getattr(obj, f.name))


def _step(text: str) -> Fraction:
    """One unit of the last decimal place of a number as written: 5 -> 1, 1.5 -> 0.1."""
    return Fraction(1, 10 ** len(text.split(".")[1])) if "." in text else Fraction(1)


def _fmt(value: Fraction, like: str) -> str:
    places = len(like.split(".")[1]) if "." in like else 0
    if places == 0:
        return str(int(value))
    scaled = value * 10 ** places
    sign = "-" if scaled < 0 else ""
    digits = str(abs(int(scaled))).rjust(places + 1, "0")
    return f"{sign}{digits[:-places]}.{digits[-places:]}"


def mutants(module: ast.Module, text: str) -> list[Mutant]:
    """Every mutant of the protocol `text` (whose checked AST is `module`), in document order
    within each operator."""
    src = _Text(text)
    path = module.path
    out: list[Mutant] = []
    seen: set[str] = set()

    def add(operator: str, span: Span, start: int, end: int, new: str, before: str | None = None,
            after: str | None = None) -> None:
        old = text[start:end]
        if old == new:
            return
        mutated = text[:start] + new + text[end:]
        if mutated in seen or mutated == text:
            return
        seen.add(mutated)
        edit = f"`{before if before is not None else old.strip()}` -> `{after if after is not None else new.strip()}`"
        out.append(Mutant(len(out) + 1, operator, span, edit, mutated))

    nodes = list(_nodes(module))
    compares = [n for n in nodes if isinstance(n, ast.Compare)]

    # thresholds: numbers and durations that are operands of a comparison
    for cmp in compares:
        for operand in cmp.operands:
            num = operand.operand if isinstance(operand, ast.Neg) else operand
            if isinstance(num, ast.Number):
                word = src.of(num.span)
                sign = -1 if isinstance(operand, ast.Neg) else 1
                value = Fraction(word)
                for op_name, delta in (("threshold-up", 1), ("threshold-down", -1)):
                    new = value + sign * delta * _step(word)
                    if new < 0:
                        continue
                    context = src.of(cmp.span)
                    a, b = src.start(num.span), src.end(num.span)
                    c0 = src.start(cmp.span)
                    mutated_context = context[:a - c0] + _fmt(new, word) + context[b - c0:]
                    add(op_name, num.span, a, b, _fmt(new, word), context, mutated_context)
            elif isinstance(num, ast.Duration):
                whole = src.of(num.span)
                amount = re.match(r"\d+", whole)
                if not amount:
                    continue
                for op_name, delta in (("threshold-up", 1), ("threshold-down", -1)):
                    new = num.amount + delta
                    if new < 0:
                        continue
                    a = src.start(num.span)
                    context = src.of(cmp.span)
                    c0 = src.start(cmp.span)
                    mutated_context = context[:a - c0] + str(new) + context[a - c0 + amount.end():]
                    add(op_name, num.span, a, a + amount.end(), str(new), context, mutated_context)

    # comparison boundaries: the operator between two operands, link by link
    for cmp in compares:
        for i, op in enumerate(cmp.ops):
            if op not in _FLIP:
                continue
            lo, hi = src.end(cmp.operands[i].span), src.start(cmp.operands[i + 1].span)
            gap = text[lo:hi]
            at = gap.find(op)
            if at < 0:
                continue
            context = src.of(cmp.span)
            c0 = src.start(cmp.span)
            a = lo + at
            mutated_context = context[:a - c0] + _FLIP[op] + context[a - c0 + len(op):]
            add("flip", cmp.operands[i].span, a, a + len(op), _FLIP[op], context, mutated_context)

    # due windows
    for w in (n for n in nodes if isinstance(n, ast.Window)):
        whole = src.of(w.span)
        a0 = src.start(w.span)
        m = re.search(r"(\d+)\s*\.\.\s*(\d+)", whole)
        if m:
            for group, delta in ((1, -1), (1, 1), (2, -1), (2, 1)):
                start, end = int(m.group(1)), int(m.group(2))
                start, end = (start + delta, end) if group == 1 else (start, end + delta)
                if start < 0 or end < start or (start, end) == (int(m.group(1)), int(m.group(2))):
                    continue
                new_whole = whole[:m.start(1)] + f"{start}..{end}" + whole[m.end(2):]
                add("window", w.span, a0, a0 + len(whole), new_whole)
            continue
        m = re.search(r"within\s+(\d+)", whole)
        if m:
            for delta in (-1, 1):
                n = int(m.group(1)) + delta
                if n < 1:
                    continue
                add("window", w.span, a0 + m.start(1), a0 + m.end(1), str(n), whole,
                    whole[:m.start(1)] + str(n) + whole[m.end(1):])

    handlers = [n for n in nodes if isinstance(n, ast.Handler)]

    # a rule's target for a sibling's
    def target_text(r: ast.Rule) -> tuple[int, int, str] | None:
        """The offsets and text of the rule's target (`-> name` or `stay`)."""
        rs, re_ = src.start(r.span), src.end(r.span)
        after = src.end(r.guard.span) if r.guard is not None else rs
        if r.target is not None:
            b = src.end(r.target.span)
            a = text.rfind("->", after, src.start(r.target.span))
            return (a, b, text[a:b]) if a >= 0 else None
        m = re.compile(r"\bstay\b").search(text, after, re_)
        return (m.start(), m.end(), "stay") if m else None

    for h in handlers:
        rules = [r for r in h.rules if isinstance(r, ast.Rule)]
        targets = [target_text(r) for r in rules]
        words = []
        for t in targets:
            if t is not None and t[2] not in words:
                words.append(t[2])
        for r, t in zip(rules, targets):
            if t is None:
                continue
            for other in words:
                if other != t[2]:
                    add("target", r.span, t[0], t[1], other, f"{(r.guard_text or 'otherwise')} {t[2]}",
                        f"{(r.guard_text or 'otherwise')} {other}")

    # actions left out
    def drop(span: Span, what: str, operator: str) -> None:
        a, b = src.start(span), src.end(span)
        ls = src.line_start(a)
        nl = text.find("\n", b)
        if text[ls:a].strip() == "" and (nl < 0 or text[b:nl].strip() == ""):
            a, b = ls, (nl + 1 if nl >= 0 else b)  # the whole line(s)
        add(operator, span, a, b, "", what, "(left out)")

    def action_items(actions) -> Iterator:
        for act in actions:
            yield act
            if isinstance(act, ast.If):
                yield from action_items(act.then)
                yield from action_items(act.orelse)

    action_types = (ast.Do, ast.OneOf, ast.Set, ast.If)
    for n in nodes:
        if isinstance(n, ast.State):
            for act in action_items(n.entry):
                drop(act.span, _first_line(src.of(act.span)), "drop-action")
        elif isinstance(n, ast.Rule):
            for act in action_items(n.actions):
                if isinstance(act, action_types):
                    drop(act.span, _first_line(src.of(act.span)), "drop-action")

    # rules left out, neighbours swapped
    for h in handlers:
        rules = [r for r in h.rules if isinstance(r, ast.Rule)]
        if len(rules) > 1:
            for r in rules:
                drop(r.span, _first_line(src.of(r.span)), "drop-rule")
        for r1, r2 in zip(rules, rules[1:]):
            a1, b1, a2, b2 = src.start(r1.span), src.end(r1.span), src.start(r2.span), src.end(r2.span)
            if b1 > a2:
                continue
            t1, t2 = text[a1:b1], text[a2:b2]
            add("swap-rules", r1.span, a1, b2, t2 + text[b1:a2] + t1,
                f"{_first_line(t1)} / {_first_line(t2)}", f"{_first_line(t2)} / {_first_line(t1)}")

    # fact defaults
    for f in module.facts:
        if f.default is None or f.type is None:
            continue
        word = src.of(f.default.span)
        a, b = src.start(f.default.span), src.end(f.default.span)
        if f.type.kind == "bool":
            new = "false" if f.default.value is True else "true"
        elif f.type.kind == "enum" and len(f.type.members) > 1:
            names = [m.text for m in f.type.members]
            new = names[(names.index(f.default.value) + 1) % len(names)] if f.default.value in names else None
        else:
            new = None
        if new is not None:
            add("default", f.default.span, a, b, new, f"{f.name.text} default {word}", f"{f.name.text} default {new}")

    # and <-> or, the whole chain of one expression
    for lg in (n for n in nodes if isinstance(n, ast.Logic)):
        other = "or" if lg.op == "and" else "and"
        pieces, last = [], src.start(lg.span)
        ok = True
        for x, y in zip(lg.operands, lg.operands[1:]):
            lo, hi = src.end(x.span), src.start(y.span)
            m = re.search(rf"\b{lg.op}\b", text[lo:hi])
            if not m:
                ok = False
                break
            pieces.append(text[last:lo + m.start()] + other)
            last = lo + m.end()
        if not ok:
            continue
        end = src.end(lg.span)
        new = "".join(pieces) + text[last:end]
        add("and-or", lg.span, src.start(lg.span), end, new, _first_line(src.of(lg.span)), _first_line(new))
    return out


def _first_line(s: str, width: int = 70) -> str:
    line = " ".join(s.split())
    return line if len(line) <= width else line[: width - 3] + "..."
