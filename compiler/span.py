"""Where a piece of protocol text came from: every AST node and every diagnostic has one."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Span:
    """A range of a source file; lines and columns are 1-based, the end is inclusive."""

    path: str
    line: int
    column: int
    end_line: int
    end_column: int

    def to_dict(self) -> dict:
        return {
            "path": self.path,
            "line": self.line,
            "column": self.column,
            "end_line": self.end_line,
            "end_column": self.end_column,
        }

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.column}"


NOWHERE = Span("<unknown>", 0, 0, 0, 0)
