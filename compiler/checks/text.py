"""The texts and names of a protocol: what every later reader (a terminal, Graphviz, a graph
file, a browser) can take.

Runs right after the parser, with the syntax pass (its codes are E1xx):

- E110: a string (a title, version, description, note, unit, LOINC code, reason...) holding a
  control character: U+0000-U+001F but tab and newline, DEL and U+0080-U+009F, the line and
  paragraph separators U+2028/U+2029, and the bidirectional overrides and isolates
  U+202A-U+202E, U+2066-U+2069. A string in the source can only hold one raw (its escapes are
  `\\n`, `\\t`, `\\"` and `\\\\`), and such a character hides text on a terminal, is refused by
  Graphviz and by the graph-file reader (E915): it is refused here, located at the character.
- E111: a name longer than MAX_NAME characters (the graph-file reader's limit, E912, so that
  every protocol that compiles gives a graph file that reads back).

The AST is walked with an explicit stack: an expression may be a chain of a thousand terms.
"""

from __future__ import annotations

import dataclasses
import re

from ..diagnostics import Diagnostics
from ..span import Span

MAX_NAME = 200
"""Characters of a name at most (a state, lab, fact, action, ... name; as compiler/graphio.py)."""

CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
"""A character a string of a protocol may not hold (tab and newline may be)."""

_NOT_TEXT = frozenset({"source", "path", "cond_text", "guard_text"})  # copies of the source, not strings


def check(module, source: str, diags: Diagnostics) -> None:
    """Report every string with a control character (E110) and every over-long name (E111)."""
    starts = _line_starts(source)
    seen: set[int] = set()
    stack = [module]
    while stack:
        node = stack.pop()
        if isinstance(node, (tuple, list)):
            stack.extend(reversed(node))
            continue
        if not dataclasses.is_dataclass(node) or isinstance(node, type) or id(node) in seen:
            continue
        seen.add(id(node))
        span = getattr(node, "span", None)
        kind = type(node).__name__
        if kind == "Name":
            if len(node.text) > MAX_NAME:
                diags.error(span, "E111", f"a name of {len(node.text):,} characters; a name has at most {MAX_NAME}")
            continue
        if kind == "Citation":  # a source id (checked against the declared ones) and its locator
            if node.locator is not None:
                m = CONTROL.search(node.locator)
                if m:
                    _report(diags, span, m.group(), source, starts)
            continue
        for f in dataclasses.fields(node):
            if f.name in _NOT_TEXT:
                continue
            value = getattr(node, f.name)
            texts = value if isinstance(value, tuple) and all(isinstance(v, str) for v in value) else (value,)
            for text in texts:
                if isinstance(text, str):
                    m = CONTROL.search(text)
                    if m and isinstance(span, Span):
                        _report(diags, span, m.group(), source, starts)
                elif isinstance(text, (tuple, list)) or dataclasses.is_dataclass(text):
                    stack.append(text)


def _report(diags: Diagnostics, span: Span, ch: str, source: str, starts: list[int]) -> None:
    """E110 at the character itself: its first occurrence from the start of the node's span."""
    line, column = span.line, span.column
    if 0 < span.line <= len(starts):
        at = source.find(ch, starts[span.line - 1] + max(span.column - 1, 0))
        if at >= 0:
            line = _line_of(starts, at)
            column = at - starts[line - 1] + 1
    where = Span(span.path, line, column, line, column)
    diags.error(where, "E110", f"a string holds the control character {_escape(ch)}; write it out "
                               "(\\n and \\t are the only escapes a string takes)")


def _escape(ch: str) -> str:
    n = ord(ch)
    return f"\\x{n:02x}" if n < 0x100 else f"\\u{n:04x}"


def _line_starts(source: str) -> list[int]:
    starts = [0]
    for m in re.finditer("\n", source):
        starts.append(m.end())
    return starts


def _line_of(starts: list[int], offset: int) -> int:
    import bisect

    return bisect.bisect_right(starts, offset)
