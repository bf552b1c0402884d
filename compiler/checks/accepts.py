"""Accepted warnings: `accept W605 "reason"` hides a warning the author has reviewed.

Runs after every other pass. A top-level `accept` covers the whole protocol; one inside
a state covers the findings located in that state. Errors cannot be accepted (E407), and
an `accept` that matches no warning is itself a warning (W504), so none goes stale.
"""

from __future__ import annotations

from .. import ast
from ..diagnostics import CODES, Diagnostic, Diagnostics, did_you_mean
from ..span import Span


def _inside(span: Span, outer: Span) -> bool:
    return (outer.line, outer.column) <= (span.line, span.column) and (span.line, span.column) <= (outer.end_line, outer.end_column)


def apply(module: ast.Module, diags: Diagnostics, *, report_unused: bool = True) -> list[tuple[Diagnostic, ast.Accept]]:
    """Remove accepted warnings from `diags`; return them with the `accept` that covers each."""
    scoped: list[tuple[ast.Accept, Span | None]] = [(a, None) for a in module.accepts]
    scoped += [(a, st.span) for st in module.states for a in st.accepts]
    scoped += [(a, tr.span) for tr in module.tracks for a in tr.accepts]
    valid: list[tuple[ast.Accept, Span | None]] = []
    for a, scope in scoped:
        code = a.code.text
        if code.startswith("E"):
            diags.error(a.code.span, "E407", f"{code} is an error; errors cannot be accepted, only warnings")
        elif code not in CODES:
            diags.error(a.code.span, "E407", f"{code} is not a diagnostic code{did_you_mean(code, [c for c in CODES if c.startswith('W')])}")
        else:
            valid.append((a, scope))
    if not valid:
        return []
    used: set[int] = set()
    kept: list[Diagnostic] = []
    accepted: list[tuple[Diagnostic, ast.Accept]] = []
    for d in diags.items:
        cover = None
        if not d.is_error:
            # the narrowest scope wins: a state's accept before the protocol's
            # (a nested state's or a track's before its enclosing state's)
            for a, scope in sorted(valid, key=lambda x: (x[1] is None, x[1].end_line - x[1].line if x[1] else 0)):
                if a.code.text == d.code and (scope is None or _inside(d.span, scope)):
                    cover = a
                    break
        if cover is None:
            kept.append(d)
        else:
            used.add(id(cover))
            accepted.append((d, cover))
    diags.items = kept
    for a, _scope in valid if report_unused else ():
        if id(a) not in used:
            diags.warning(a.span, "W504", f"'accept {a.code.text}' matches no warning here; remove it")
    return accepted
