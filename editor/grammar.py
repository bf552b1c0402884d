"""What the editor tools know about the language, read from grammar/protocol.lark at import.

Nothing here is a copied list: the keywords are the grammar's string literals that look like
words, the punctuation its other literals, and the parse tree (every token kept, comments
found in the gaps between tokens) is the grammar's own. When the grammar gains a keyword,
the formatter, the highlighter and the language server's completion know it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from lark import Lark, Token, Tree

from rxwatch.compiler.parser import grammar_text

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


@lru_cache(maxsize=1)
def lark_full() -> Lark:
    """The protocol grammar with every token kept in the tree (keywords and punctuation too)."""
    return Lark(
        grammar_text(),
        parser="lalr",
        lexer="contextual",
        propagate_positions=True,
        keep_all_tokens=True,
        maybe_placeholders=False,
        cache=True,
    )


@lru_cache(maxsize=1)
def literals() -> tuple[str, ...]:
    """Every string literal of the grammar (`"state"`, `"->"`, `"<="`, ...), sorted."""
    # the grammar's inline literals ("when") and named ones (INITIAL: "initial") alike; the
    # regular expressions (TIME_UNIT, COMP_OP, NAME...) are not literals
    return tuple(sorted({t.pattern.value for t in lark_full().terminals if t.pattern.type == "str"}))


@lru_cache(maxsize=1)
def keywords() -> tuple[str, ...]:
    """The literals that are words: `protocol`, `state`, `when`, `cite`, `and`, ..."""
    return tuple(w for w in literals() if _WORD.match(w))


@lru_cache(maxsize=1)
def declaration_keywords() -> tuple[str, ...]:
    """The words that can start a top-level declaration (the first literal of each `_decl`
    alternative, and the `initial`/`terminal` of a state), read from the parser's table."""
    lark = lark_full()
    out = set()
    try:
        state = lark.parse_interactive("")
        accepts = state.accepts()
    except Exception:  # pragma: no cover - a grammar whose empty file does not start a parse
        accepts = set()
    names = {t.name: t for t in lark.terminals}
    for term in accepts:
        t = names.get(term)
        if t is not None and t.pattern.type == "str" and _WORD.match(t.pattern.value):
            out.add(t.pattern.value)
    return tuple(sorted(out))


@dataclass
class Tok:
    """One token of the file, with where it sits in the parse tree."""

    token: Token
    parent: Tree
    index: int  # its position among parent.children

    @property
    def value(self) -> str:
        return str(self.token)

    @property
    def type(self) -> str:
        return self.token.type


def parse_full(text: str) -> Tree:
    """The parse tree of `text` with every token; raises lark's UnexpectedInput on a syntax error."""
    return lark_full().parse(text)


def tokens(tree: Tree) -> list[Tok]:
    """Every token of the tree in file order, each with its parent (no recursion: deep
    expressions are fine)."""
    out: list[Tok] = []
    stack: list[tuple[Tree, int]] = [(tree, 0)]
    while stack:
        node, i = stack.pop()
        if i >= len(node.children):
            continue
        stack.append((node, i + 1))
        child = node.children[i]
        if isinstance(child, Tree):
            stack.append((child, 0))
        else:
            out.append(Tok(child, node, i))
    return out


COMMENT = re.compile(r"#[^\n]*")


def gap_comments(gap: str) -> list[tuple[int, str]]:
    """The comments in the text between two tokens (only white space and comments can be
    there: they are the grammar's ignored terminals), as (offset, text)."""
    return [(m.start(), m.group(0)) for m in COMMENT.finditer(gap)]
