"""The canonical layout of a protocol file (`rxwatch fmt`).

A token formatter driven by the grammar: the file is parsed with grammar/protocol.lark keeping
every token (`grammar.parse_full`), and printed again token by token. Comments are the
grammar's ignored terminals: they are found again in the white space between two tokens,
which holds nothing else, and printed where they were (on their own line, or at the end of
the line they ended). Strings are printed exactly as written. So the formatter needs no change
when the grammar gains a declaration, a clause or a keyword; its rules are about the shapes
the grammar has:

- a *block* is a `{ ... }` whose contents are whole parse subtrees (a state's items, a
  handler's rules, an action block, a choice's alternatives); a `{ a, b }` of names (a set in
  an expression) is not one;
- an *item* is a top-level declaration, or one subtree inside a block: it starts its own line,
  indented two spaces per enclosing block;
- a `cite` list is the grammar's `cite` rule.

The layout:

1. Indentation: two spaces per block. A line that continues an item (the author broke the
   line inside it) is indented four more spaces (so that it never reads as the block's next
   item), except a top-level declaration's own parts (`title ...`, `= EXPR`, `cite ...`,
   `orders ...`): two.
2. Every item starts its own line: one declaration, one rule, one action per line. A block
   that the author wrote on one line stays on one line when it holds at most one item and
   the line fits the width (`{ otherwise -> stopped }`); otherwise it is opened: `{` ends the
   line, each item on its own line, `}` on a line of its own. `} else {` stays together.
3. Blank lines: as the author left them, at most one in a row; none after `{` or before `}`;
   one always between two top-level declarations when either has a block (a state, a rule
   block), so sections stay apart.
4. Within a line: one space between tokens, none inside parentheses, before a comma or
   after a unary minus, none around `..` (`2..4 weeks`), none between a function and its `(`
   (`max(a, b)`, `since(start)`), `in {a, b}`; two spaces before a trailing comment.
5. Line breaks the author made inside an item are kept (a long guard stays split where it
   was); line breaks inside a `cite` list are not: when a line is longer than the width, the
   `cite` list moves to a continuation line, and a list still too long is wrapped after its
   commas with each source aligned under the first.

The result is idempotent (format(format(x)) == format(x)) and compiles to the same graph
(tests/test_fmt.py checks both, on the shipped protocols and on random edits of them).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

from lark.exceptions import UnexpectedInput

from . import grammar

WIDTH = 100
"""The line width that blocks are opened and `cite` lists wrapped at."""

INDENT = 2


class FormatError(Exception):
    """The text does not parse: `diagnostics` are the compiler's syntax errors (E1xx)."""

    def __init__(self, diagnostics: list) -> None:
        super().__init__("; ".join(f"{d.span}: {d.code}: {d.message}" for d in diagnostics) or "syntax error")
        self.diagnostics = diagnostics


@dataclass
class _Block:
    lb: int  # token index of `{`
    rb: int  # token index of `}`
    items: list[int]  # the first token of each item


@dataclass
class _Line:
    indent: int
    cont: int  # the indentation of a continuation of this line's item
    parts: list[tuple[str, str, int]] = field(default_factory=list)  # (space before, text, token index)
    comment: str | None = None
    blank_before: int = 0

    def width(self) -> int:
        text = " " * self.indent + "".join(s + t for s, t, _ in self.parts)
        segs = text.split("\n")
        return max(len(segs[0]), len(segs[-1]))


class _Layout:
    def __init__(self, text: str, width: int) -> None:
        self.text = text
        self.width = width
        tree = grammar.parse_full(text)
        self.toks = grammar.tokens(tree)
        n = len(self.toks)
        self.index = {id(t.token): i for i, t in enumerate(self.toks)}
        # token ranges of every subtree
        self.range: dict[int, tuple[int, int]] = {}
        self._ranges(tree)
        self.blocks: list[_Block] = []
        self.top_items: list[int] = []
        self.cites: list[tuple[int, int, list[int]]] = []  # (first, last, commas)
        self._structure(tree)
        self.item_block: dict[int, _Block] = {}
        for b in self.blocks:
            for it in b.items:
                self.item_block[it] = b
        self.lb = {b.lb: b for b in self.blocks}
        self.rb = {b.rb: b for b in self.blocks}
        self.top_set = set(self.top_items)
        # depth: blocks strictly around each token
        diff = [0] * (n + 1)
        for b in self.blocks:
            diff[b.lb + 1] += 1
            diff[b.rb] -= 1
        self.depth = []
        d = 0
        for i in range(n):
            d += diff[i]
            self.depth.append(d)
        self.in_cite = [False] * n  # inside a cite list, after its `cite`
        self.cite_at = {}
        for first, last, commas in self.cites:
            self.cite_at[first] = (first, last, commas)
            for i in range(first + 1, last + 1):
                self.in_cite[i] = True
        # the top-level declarations that have a block
        # each block's innermost enclosing block (None: a top-level declaration's own block)
        self.blocks.sort(key=lambda b: b.lb)
        self.parent: dict[int, int | None] = {}
        self.children: dict[int, list[int]] = {b.lb: [] for b in self.blocks}
        stack: list[_Block] = []
        for b in self.blocks:
            while stack and stack[-1].rb < b.lb:
                stack.pop()
            self.parent[b.lb] = stack[-1].lb if stack else None
            if stack:
                self.children[stack[-1].lb].append(b.lb)
            stack.append(b)
        # the top-level declarations that have a block
        import bisect

        self.top_index = {it: k for k, it in enumerate(self.top_items)}
        self.top_has_block = dict.fromkeys(self.top_items, False)
        for b in self.blocks:
            if self.parent[b.lb] is None:
                k = bisect.bisect_right(self.top_items, b.lb) - 1
                if k >= 0:
                    self.top_has_block[self.top_items[k]] = True
        self.starts = [t.token.start_pos for t in self.toks]
        self.ends = [t.token.end_pos for t in self.toks]
        # comments[i]: how many comments lie before token i (a block with one inside is never one line)
        self.comments_before = [0] * (n + 1)
        prev = 0
        for i in range(n):
            self.comments_before[i + 1] = self.comments_before[i] + ("#" in text[prev : self.starts[i]])
            prev = self.ends[i]

    # -- the tree

    def _ranges(self, tree) -> None:
        # post-order without recursion
        stack = [(tree, False)]
        while stack:
            node, done = stack.pop()
            if done:
                lo = hi = None
                for c in node.children:
                    r = self.range.get(id(c)) if not isinstance(c, grammar.Token) else (self.index[id(c)],) * 2
                    if r is None:
                        continue
                    lo = r[0] if lo is None else lo
                    hi = r[1]
                if lo is not None:
                    self.range[id(node)] = (lo, hi)
                continue
            stack.append((node, True))
            for c in node.children:
                if not isinstance(c, grammar.Token):
                    stack.append((c, False))

    def _structure(self, tree) -> None:
        self.top_items = [self.range[id(c)][0] for c in tree.children if not isinstance(c, grammar.Token) and id(c) in self.range]
        # the first token of each part of a top-level declaration (its fields: `title ...`, `= expr`, `cite ...`)
        self.fields = set()
        for c in tree.children:
            if not isinstance(c, grammar.Token):
                for x in c.children:
                    self.fields.add(self.index[id(x)] if isinstance(x, grammar.Token) else self.range.get(id(x), (-1,))[0])
        stack = [tree]
        while stack:
            node = stack.pop()
            kids = node.children
            if node.data == "cite":
                r = self.range.get(id(node))
                if r is not None:
                    commas = [self.index[id(c)] for c in kids if isinstance(c, grammar.Token) and c == ","]
                    self.cites.append((r[0], r[1], commas))
            open_at = None
            for j, c in enumerate(kids):
                if isinstance(c, grammar.Token):
                    if c == "{" and open_at is None:
                        open_at = j
                    elif c == "}" and open_at is not None:
                        inner = kids[open_at + 1 : j]
                        if all(not isinstance(x, grammar.Token) for x in inner):
                            self.blocks.append(_Block(
                                self.index[id(kids[open_at])], self.index[id(c)],
                                [self.range[id(x)][0] for x in inner if id(x) in self.range]))
                        open_at = None
                else:
                    stack.append(c)

    # -- spacing

    def _call_paren(self, i: int) -> bool:
        t = self.toks[i]
        return t.index == 1 and isinstance(t.parent.children[0], grammar.Token)

    def space(self, p: int, i: int) -> str:
        a, b = self.toks[p], self.toks[i]
        av, bv = a.value, b.value
        if b.type == "STRING" or a.type == "STRING":
            return " " if bv not in (",", ")") else ""
        if bv in (",", ")") or av == "(" or bv == ".." or av == "..":
            return ""
        if bv == "(" and self._call_paren(i):
            return ""
        if av == "-" and a.index == 0 and len(a.parent.children) > 1:  # a unary minus
            return ""
        if av == "{" and p not in self.lb:
            return ""
        if bv == "}" and i not in self.rb:
            return ""
        if bv == "}" and p in self.lb:  # an empty block
            return ""
        return " "

    def cont(self, i: int) -> int:
        d = self.depth[i]
        if d == 0 and i in self.fields:
            return INDENT
        return d * INDENT + 2 * INDENT

    # -- layout

    def inline_blocks(self, expanded: set[int]) -> set[int]:
        """The blocks printed on one line: written on one line, at most one item, not expanded,
        and every block inside them inline too."""
        out: set[int] = set()
        line_of = lambda i: self.toks[i].token.line
        for b in reversed(self.blocks):  # the blocks inside a block come after it: decided first
            if b.lb in expanded:
                continue
            if b.items and (len(b.items) > 1 or line_of(b.lb) != line_of(b.rb)):
                continue
            if self.comments_before[b.rb + 1] - self.comments_before[b.lb + 1]:
                continue
            if all(c in out for c in self.children[b.lb]):
                out.add(b.lb)
        return out

    def render(self, inline: set[int]) -> list[_Line]:
        text = self.text
        toks = self.toks
        lines: list[_Line] = []
        inline_ranges = [(self.lb[lb].lb, self.lb[lb].rb) for lb in inline]
        in_inline = [False] * len(toks)
        for lo, hi in inline_ranges:
            for i in range(lo + 1, hi + 1):
                in_inline[i] = True

        def newline(indent: int, cont: int, blank: int) -> None:
            if lines:
                blank = min(blank, 1)
            else:
                blank = 0
            lines.append(_Line(indent, cont, blank_before=blank))

        prev_end = 0
        for i, t in enumerate(toks):
            gap = text[prev_end : self.starts[i]]
            prev_end = self.ends[i]
            comments = grammar.gap_comments(gap)
            # where this token goes
            if i == 0:
                mode, indent = "line", 0
            elif i in self.top_set:
                mode, indent = "line", 0
            elif i in self.item_block and not in_inline[i]:
                mode, indent = "line", self.depth[i] * INDENT
            elif i in self.rb and not in_inline[i]:
                mode, indent = "line", self.depth[i] * INDENT
            elif i in self.lb or (i - 1) in self.rb or in_inline[i] or self.in_cite[i]:
                mode, indent = "same", 0
            elif "\n" in gap:
                mode, indent = "cont", self.cont(i)
            else:
                mode, indent = "same", 0
            # the comments before it
            pos = 0
            forced_break = False
            first_own = True  # no comment on a line of its own yet in this gap
            for off, ctext in comments:
                before = gap[pos:off]
                pos = off + len(ctext)
                ctext = ctext.rstrip()
                if "\n" not in before and lines:
                    lines[-1].comment = ctext if lines[-1].comment is None else lines[-1].comment + " " + ctext
                else:
                    blank = max(0, before.count("\n") - 1)
                    if i > 0 and (i - 1) in self.lb and first_own:
                        blank = 0
                    if i in self.top_set and first_own and self._forced_blank(i):
                        blank = 1
                    first_own = False
                    cindent = indent
                    if mode == "same":
                        cindent = self.depth[i] * INDENT if (i - 1) in self.rb and not in_inline[i] else self.cont(i)
                    if i in self.rb and mode == "line":
                        cindent = indent + INDENT
                    newline(cindent, cindent, blank)
                    lines[-1].comment = ctext
                forced_break = True
            rest = gap[pos:]
            if forced_break and mode == "same":
                # after a comment: `else` under its `}`, anything else as a continuation
                if (i - 1) in self.rb and not in_inline[i]:
                    mode, indent = "line", self.depth[i] * INDENT
                else:
                    mode, indent = "cont", self.cont(i)
            if mode in ("line", "cont"):
                blank = max(0, rest.count("\n") - 1)
                if mode == "cont" or i in self.rb or (i - 1) in self.lb:
                    blank = 0
                if i in self.top_set and first_own and self._forced_blank(i):
                    blank = 1
                newline(indent, self.cont(i) if mode == "line" else indent, blank)
                lines[-1].parts.append(("", t.value, i))
            else:
                lines[-1].parts.append((self.space(i - 1, i), t.value, i))
        # comments after the last token
        gap = text[prev_end:]
        pos = 0
        for off, ctext in grammar.gap_comments(gap):
            before = gap[pos:off]
            pos = off + len(ctext)
            if "\n" not in before and lines:
                lines[-1].comment = ctext.rstrip() if lines[-1].comment is None else lines[-1].comment + " " + ctext.rstrip()
            else:
                newline(0, 0, max(0, before.count("\n") - 1))
                lines[-1].comment = ctext.rstrip()
        return lines

    def _forced_blank(self, i: int) -> bool:
        k = self.top_index[i]
        if k == 0:
            return False
        return self.top_has_block[i] or self.top_has_block[self.top_items[k - 1]]

    def layout(self) -> list[_Line]:
        expanded: set[int] = set()
        while True:
            inline = self.inline_blocks(expanded)
            lines = self.render(inline)
            # each token's outermost inline block
            owner = [-1] * len(self.toks)
            for lb in inline:
                if self.parent[lb] not in inline:
                    for i in range(lb, self.lb[lb].rb + 1):
                        owner[i] = lb
            more = set()
            for ln in lines:
                if ln.width() <= self.width:
                    continue
                more.update(owner[i] for _, _, i in ln.parts if owner[i] >= 0)
            if not more:
                break
            expanded |= more
        return self.wrap_cites(lines)

    def wrap_cites(self, lines: list[_Line]) -> list[_Line]:
        out: list[_Line] = []
        for ln in lines:
            if ln.width() <= self.width:
                out.append(ln)
                continue
            starts = [k for k, (_, _, i) in enumerate(ln.parts) if i in self.cite_at]
            if not starts:
                out.append(ln)
                continue
            k = starts[-1]
            if k > 0:
                head = _Line(ln.indent, ln.cont, ln.parts[:k], None, ln.blank_before)
                out.append(head)
                tail_parts = [("", ln.parts[k][1], ln.parts[k][2])] + ln.parts[k + 1 :]
                indent = self.cont(ln.parts[k][2])  # where the `cite` goes when written on a line of its own
                ln = _Line(indent, indent, tail_parts, ln.comment, 0)
                if ln.width() <= self.width:
                    out.append(ln)
                    continue
            out.extend(self._wrap_list(ln))
        return out

    def _wrap_list(self, ln: _Line) -> list[_Line]:
        """`cite a, b, c` wrapped after commas, each line's first source under the first one."""
        first = ln.parts[0][2]
        _f, last, commas = self.cite_at[first]
        commas = set(commas)
        column = ln.indent + len(ln.parts[0][1]) + 1
        # groups: `a "4.4",` ... and after the last source, whatever follows the list (` {`)
        groups: list[list[tuple[str, str, int]]] = [[]]
        for part in ln.parts[1:]:
            groups[-1].append(part)
            if part[2] in commas:
                groups.append([])
        out = [_Line(ln.indent, ln.cont, [ln.parts[0]], None, ln.blank_before)]
        for g in groups:
            if not g:
                continue
            cur = out[-1]
            trial = _Line(cur.indent, cur.cont, cur.parts + g)
            if len(cur.parts) > 1 and trial.width() > self.width:
                g = [("", g[0][1], g[0][2])] + g[1:]
                out.append(_Line(column, ln.cont, g))
            else:
                cur.parts.extend(g)
        out[-1].comment = ln.comment
        return out


def _print(lines: list[_Line]) -> str:
    out = []
    for ln in lines:
        if ln.blank_before and out:
            out.append("")
        text = " " * ln.indent + "".join(s + t for s, t, _ in ln.parts)
        if ln.comment is not None:
            text = text + "  " + ln.comment if ln.parts else " " * ln.indent + ln.comment
        out.append(text.rstrip())
    return "\n".join(out) + "\n" if out else ""


def format_text(text: str, path: str = "<string>", width: int = WIDTH) -> str:
    """The canonical layout of a protocol's text. Raises FormatError (with the compiler's
    syntax diagnostics) when it does not parse."""
    bom = text.startswith("\ufeff")
    body = text[1:] if bom else text
    body = body.replace("\r\n", "\n").replace("\r", "\n")
    from rxwatch.compiler import collector_paused

    with collector_paused():  # parse trees are acyclic: the collector would rescan them for nothing
        try:
            layout = _Layout(body, width)
        except UnexpectedInput:
            layout = None
        if layout is not None and layout.toks:
            return ("\ufeff" if bom else "") + _print(layout.layout())
    if layout is None:
        raise FormatError(syntax_diagnostics(body, path))
    # comments only, or nothing: each comment on its own line, at most one blank line between
    kept: list[str] = []
    for ln in body.split("\n"):
        s = ln.strip()
        if s or (kept and kept[-1] != ""):
            kept.append(s)
    while kept and kept[-1] == "":
        kept.pop()
    return ("\ufeff" if bom else "") + ("\n".join(kept) + "\n" if kept else "")


def syntax_diagnostics(text: str, path: str) -> list:
    """The compiler's own syntax errors for `text` (as `rxwatch check` reports them)."""
    from rxwatch.compiler import parser
    from rxwatch.compiler.diagnostics import Diagnostics

    diags = Diagnostics()
    parser.parse(text, path, diags)
    out = [d for d in diags.sorted() if d.is_error]
    if not out:  # the compiler parsed what the full grammar did not: cannot happen with one grammar
        from rxwatch.compiler.diagnostics import Diagnostic
        from rxwatch.compiler.span import Span

        out = [Diagnostic(Span.point(path, 1, 1), "error", "E101", "syntax error")]
    return out


def diff(old: str, new: str, path: str) -> str:
    """A unified diff from `old` to `new` (empty when they are the same)."""
    return "".join(difflib.unified_diff(old.splitlines(True), new.splitlines(True), f"{path}", f"{path} (formatted)"))
