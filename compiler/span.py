"""Where something came from: every AST node, every diagnostic and every runtime error has one.

One position type for the whole project (miniwdl's `SourcePosition`): protocol text, a
timeline, a scenario file, a compiled graph file or the command line. Lines and columns are
1-based; 0 means "not known" (a CSV row has a line but no column; the command line has
neither), and the printers leave unknown parts out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

COMMAND_LINE = "<command line>"
"""The path of a diagnostic about an option (`--fact`, `--start`): it has no line."""


@dataclass(frozen=True, slots=True)
class Span:
    """A range of a source file; lines and columns are 1-based (0: unknown), the end is inclusive."""

    path: str
    line: int
    column: int
    end_line: int
    end_column: int

    @classmethod
    def point(cls, path: str, line: int = 0, column: int = 0) -> "Span":
        """One position (a range of one character, or of a line when the column is unknown)."""
        line = max(0, int(line or 0))
        column = max(0, int(column or 0)) if line else 0
        return cls(str(path), line, column, line, column)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None, path: str = "") -> "Span":
        """A span from its `to_dict` form (the graph's `span` fields); missing parts unknown."""
        if not isinstance(d, Mapping):
            return cls.point(path)

        def num(key: str) -> int:
            v = d.get(key)
            return v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else 0

        p = d.get("path")
        return cls(p if isinstance(p, str) and p else path, num("line"), num("column"), num("end_line"), num("end_column"))

    def to_dict(self) -> dict:
        return {
            "path": self.path,
            "line": self.line,
            "column": self.column,
            "end_line": self.end_line,
            "end_column": self.end_column,
        }

    def __str__(self) -> str:
        """`path:line:column`, leaving out what is unknown (`path:line`, `path`)."""
        if not self.line:
            return self.path
        if not self.column:
            return f"{self.path}:{self.line}"
        return f"{self.path}:{self.line}:{self.column}"


NOWHERE = Span("<unknown>", 0, 0, 0, 0)
