"""Diagnostics: located, coded messages, collected per pass and printed ruff-style.

Codes are stable and grouped (see docs/diagnostics.md):

- E1xx: syntax (the parser)
- E2xx: names (declarations and references)
- E3xx: types and units
- E4xx / W4xx: structure of the state machine
- W5xx: hygiene (citations, sources)
- E6xx / W6xx: verification (gaps, overlaps, reachability, time)
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from typing import Iterable

from .span import Span

ERROR = "error"
WARNING = "warning"

# code -> one-line title; the full entry for each is in docs/diagnostics.md.
CODES: dict[str, str] = {
    "E101": "unexpected token",
    "E102": "unexpected character",
    "E103": "unexpected end of file",
    "E104": "invalid literal",
    "E105": "expression nested too deeply",
    "E201": "duplicate name",
    "E202": "undefined name",
    "E203": "transition to an unknown state",
    "E204": "citation of an undeclared source",
    "E205": "order of an undeclared lab",
    "E206": "name of the wrong kind",
    "E207": "missing protocol declaration",
    "E208": "derived value defined in terms of itself",
    "E301": "type mismatch",
    "E302": "unit mismatch",
    "E303": "unknown enumeration member",
    "E304": "bad function call",
    "E305": "default value of the wrong type",
    "E401": "no initial state",
    "E402": "more than one initial state",
    "E403": "state not reachable from the initial state",
    "E404": "terminal state with handlers",
    "E405": "handler declared twice",
    "E406": "rule after `otherwise`",
    "E407": "only warnings can be accepted",
    "E408": "unknown state severity",
    "E209": "due window on an action that orders no labs",
    "E210": "order fulfilled by a lab it does not order",
    "W501": "rule cites no source",
    "W502": "unknown source kind",
    "W503": "invalid protocol status",
    "W504": "`accept` that matches no warning",
    # verification (compiler/verify, docs/verification.md)
    "E601": "inputs that no rule handles",
    "E602": "overlapping guards in an exclusive handler",
    "W603": "overlapping guards: the order of the rules decides",
    "E604": "rule shadowed by the rules above it",
    "W605": "rule supported only by AI summaries",
    "E606": "guard that can never hold",
    "W607": "`otherwise` that can never fire",
    "W609": "analysis not completed",
    "E610": "state reachable only through rules that never fire",
    "E611": "non-terminal state where nothing can happen",
    "W612": "states from which the pathway never ends",
    "E613": "states with no way out and nothing scheduled",
    "E620": "zero-time loop",
    "E621": "due window that closes before it opens",
    "W622": "due window that closes on the day of the action",
    "E623": "timer that is never armed",
    "W630": "declaration never used",
    "W631": "variable set but never read, or read but never set",
    "W632": "action without a description",
}


@dataclass(frozen=True, slots=True)
class Diagnostic:
    span: Span
    severity: str
    code: str
    message: str

    @property
    def is_error(self) -> bool:
        return self.severity == ERROR

    def to_dict(self) -> dict:
        s = self.span
        return {
            "path": s.path,
            "line": s.line,
            "column": s.column,
            "end_line": s.end_line,
            "end_column": s.end_column,
            "severity": self.severity,
            "code": self.code,
            "message": self.message,
        }


class Diagnostics:
    """A pass's collector: passes add to it and never raise for the author's mistakes."""

    def __init__(self) -> None:
        self.items: list[Diagnostic] = []

    def error(self, span: Span, code: str, message: str) -> None:
        self.items.append(Diagnostic(span, ERROR, code, message))

    def warning(self, span: Span, code: str, message: str) -> None:
        self.items.append(Diagnostic(span, WARNING, code, message))

    def extend(self, items: Iterable[Diagnostic]) -> None:
        self.items.extend(items)

    @property
    def has_errors(self) -> bool:
        return any(d.is_error for d in self.items)

    def sorted(self) -> list[Diagnostic]:
        return sorted(self.items, key=lambda d: (d.span.path, d.span.line, d.span.column, d.code))


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """'; did you mean 'ALT'?' for the nearest candidate, or ''."""
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    if not close:
        lowered = {c.lower(): c for c in candidates}
        if name.lower() in lowered:
            close = [lowered[name.lower()]]
    return f"; did you mean '{close[0]}'?" if close else ""


def format_text(diag: Diagnostic, source: str | None) -> str:
    """`path:line:col: severity[code]: message`, then the source line with a caret under the span."""
    s = diag.span
    head = f"{s.path}:{s.line}:{s.column}: {diag.severity}[{diag.code}]: {diag.message}"
    if not source or s.line <= 0:
        return head
    lines = source.splitlines()
    if s.line > len(lines):
        return head
    text = lines[s.line - 1].expandtabs(1)
    width = 1
    if s.end_line == s.line and s.end_column >= s.column:
        width = s.end_column - s.column + 1
    width = max(1, min(width, len(text) - s.column + 2))
    gutter = f"{s.line:>4} | "
    pad = " " * (len(gutter) - 2) + "| "
    return f"{head}\n{gutter}{text}\n{pad}{' ' * (s.column - 1)}{'^' * width}"


def format_json(diags: Iterable[Diagnostic]) -> str:
    return json.dumps([d.to_dict() for d in diags], indent=2)
