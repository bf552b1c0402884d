"""Where the boxes go: rows that make the chart as large as the printed page allows.

`dot` lays out each row of boxes side by side (one rank) and the rows one under the other,
under the title block; the key (definitions, orders, references) goes under the last row or
at its end. Graphviz then scales the whole drawing down to the page (`size`), so the text is
as large as the page allows when the drawing's shape is close to the page's. `arrange` tries
the ways to cut the boxes, in reading order, into rows, with the key under the rows or at the
end of the last one and its definitions in one to three columns, and keeps the one that is
scaled least.

It needs the size of each box before Graphviz draws it: `size` estimates the width and height
of a Graphviz HTML-like label from its text, font sizes, line breaks and table cells (within
about 10% of what `dot` draws for the shipped protocols; the same error for every box, so the
comparison between arrangements holds). No Graphviz is run: the DOT text stays the same with
or without it.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass

CHAR = 0.5  # the average width of a character of Arial, in ems
LEAD = 1.1  # line height, in ems
DEFAULT_SIZE = 14.0  # Graphviz's default font size (points)
MAX_ROWS = 4
TOKEN = re.compile(r"<[^>]*>|[^<]+")
_ENTITY = re.compile(r"&(?:#\d+|#x[0-9a-fA-F]+|\w+);")
_NUM = {key: re.compile(rf'(?<![A-Z-]){key}="([\d.]+)"')
        for key in ("BORDER", "CELLPADDING", "CELLSPACING", "COLSPAN", "WIDTH", "POINT-SIZE")}
EXHAUSTIVE = 5000  # at most this many ways to cut the boxes into rows are tried one by one


def _attr(tag: str, key: str, default: float) -> float:
    m = _NUM[key].search(tag)
    return float(m.group(1)) if m else default


def size(label: str) -> tuple[float, float]:
    """The estimated (width, height), in points, of a Graphviz HTML-like label `<<TABLE ...>>`."""
    toks = TOKEN.findall(label.strip()[1:-1])
    start = next((i for i, t in enumerate(toks) if t.startswith("<TABLE")), None)
    if start is None:
        return 0.0, 0.0
    _, w, h = _table(toks, start, DEFAULT_SIZE)
    return w, h


def _table(toks: list[str], i: int, font: float) -> tuple[int, float, float]:
    """A TABLE starting at toks[i]: (index after it, width, height)."""
    pad = _attr(toks[i], "CELLPADDING", 2)
    gap = _attr(toks[i], "CELLSPACING", 2)
    border = _attr(toks[i], "BORDER", 1)
    i += 1
    rows: list[list[tuple[int, float, float]]] = []
    while i < len(toks) and not toks[i].startswith("</TABLE"):
        t = toks[i]
        if t.startswith("<TR"):
            rows.append([])
            i += 1
        elif t.startswith("<TD") and rows:
            span = int(_attr(t, "COLSPAN", 1))
            fixed = _attr(t, "WIDTH", 0)
            i, w, h = _cell(toks, i + 1, font)
            rows[-1].append((span, max(w, fixed) + 2 * pad, h + 2 * pad))
        else:
            i += 1
    ncol = max((sum(s for s, _, _ in r) for r in rows), default=0)
    colw = [0.0] * ncol
    for r in rows:
        c = 0
        for span, w, _ in r:
            if span == 1:
                colw[c] = max(colw[c], w)
            c += span
    width = sum(colw) + gap * (ncol + 1)
    for r in rows:  # a cell across columns can be wider than they are
        c, rw = 0, gap
        for span, w, _ in r:
            rw += (w if span > 1 else colw[c]) + gap
            c += span
        width = max(width, rw)
    height = sum(max((h for _, _, h in r), default=0.0) for r in rows) + gap * (len(rows) + 1)
    return i + 1, width + 2 * border, height + 2 * border


def _cell(toks: list[str], i: int, font: float) -> tuple[int, float, float]:
    """The content of a TD starting at toks[i]: (index after the TD, width, height)."""
    fonts = [font]
    widths: list[float] = []
    line_w = line_h = total_h = 0.0
    while i < len(toks) and not toks[i].startswith("</TD"):
        t = toks[i]
        if t.startswith("<TABLE"):
            i, w, h = _table(toks, i, fonts[-1])
            line_w += w
            line_h = max(line_h, h)
            continue
        if t.startswith("<FONT"):
            fonts.append(_attr(t, "POINT-SIZE", fonts[-1]))
        elif t.startswith("</FONT"):
            if len(fonts) > 1:
                fonts.pop()
        elif t.startswith("<BR"):
            widths.append(line_w)
            total_h += line_h or fonts[-1] * LEAD
            line_w = line_h = 0.0
        elif not t.startswith("<"):
            stripped, entities = _ENTITY.subn("", t)  # &amp; &#160; ... are one character each
            line_w += (len(stripped) + entities) * fonts[-1] * CHAR
            line_h = max(line_h, fonts[-1] * LEAD)
        i += 1
    if line_w or line_h:
        widths.append(line_w)
        total_h += line_h
    return i + 1, max(widths, default=0.0), total_h


@dataclass(frozen=True)
class Arrangement:
    rows: list[list[str]]  # node ids, row by row from the top
    key_in_row: bool  # the key ends the last row (else it is under the rows)
    key: int  # the index of the key's label among those offered
    scale: float  # the page's size over the estimated drawing's (Graphviz shrinks it when below 1)
    key_first: bool = False  # the key ends the first row instead (offered to statecharts only)


def arrange(order: list[str], sizes: dict[str, tuple[float, float]], header: tuple[float, float],
            keys: list[tuple[float, float]], page: tuple[float, float], gaps: tuple[float, float],
            alone: frozenset = frozenset(), key_first: bool = False) -> Arrangement:
    """The rows of `order` (box ids in reading order) and the place and shape of the key that
    leave the drawing largest on `page` (width, height in points). `sizes`: each box's size;
    `header`: the title block's; `keys`: the key's size for each label on offer; `gaps`: the
    space between boxes in a row and between rows."""
    across, down = gaps
    n = len(order)
    best: Arrangement | None = None
    metrics: dict[tuple[int, int], tuple[float, float]] = {}  # a row's (width, height), by its bounds

    def row_of(a: int, b: int) -> tuple[float, float]:
        m = metrics.get((a, b))
        if m is None:
            row = order[a:b]
            m = metrics[(a, b)] = (sum(sizes[x][0] for x in row) + across * (len(row) - 1),
                                   max((sizes[x][1] for x in row), default=0.0))
        return m

    for bounds in (_cuts(n) if not alone else _cuts_alone(order, alone)):
        rows = [order[a:b] for a, b in zip(bounds, bounds[1:])]
        both = [row_of(a, b) for a, b in zip(bounds, bounds[1:])]
        widths = [w for w, _ in both]
        heights = [h for _, h in both]
        for k, (kw, kh) in enumerate(keys):
            for in_row, first in ((False, False), (True, False), *(((True, True),) if key_first and len(rows) > 1 else ())):
                ws, hs = list(widths), list(heights)
                at = 0 if first else -1
                if in_row:
                    if first and alone and rows[0][0] in alone:
                        continue  # not beside a frame
                    ws[at] += across + kw
                    hs[at] = max(hs[at], kh)
                else:
                    ws.append(kw)
                    hs.append(kh)
                w = max([header[0], *ws])
                h = header[1] + sum(hs) + down * len(hs)
                scale = min(page[0] / w, page[1] / h)
                if best is None or scale > best.scale + 1e-9:
                    best = Arrangement([list(row) for row in rows], in_row and not first, k, scale, first)
    if best is None:
        return Arrangement([], False, 0, 1.0)
    return best


def _cuts(n: int):
    """Ways to cut n boxes in order into rows, as the bounds of the rows: every way into at
    most MAX_ROWS rows when they are few; else rows of equal count, any number of rows."""
    if n == 0:
        return
    ways = sum(_choose(n - 1, r - 1) for r in range(1, min(MAX_ROWS, n) + 1))
    if ways <= EXHAUSTIVE:
        for r in range(1, min(MAX_ROWS, n) + 1):
            for cuts in itertools.combinations(range(1, n), r - 1):
                yield (0, *cuts, n)
        return
    seen = set()
    for r in range(1, n + 1):
        columns = -(-n // r)
        bounds = tuple(range(0, n, columns)) + (n,)
        if bounds not in seen:
            seen.add(bounds)
            yield bounds


def _cuts_alone(order: list[str], alone: frozenset):
    """`_cuts`, with every item of `alone` (a cluster) in a row of its own: the runs of other
    items between them are cut each way `_cuts` cuts them (at most EXHAUSTIVE ways in all)."""
    parts: list[tuple[int, int, bool]] = []  # (start, end, alone)
    i = 0
    while i < len(order):
        if order[i] in alone:
            parts.append((i, i + 1, True))
            i += 1
            continue
        j = i
        while j < len(order) and order[j] not in alone:
            j += 1
        parts.append((i, j, False))
        i = j
    options = [[(0, 1)] if a else list(_cuts(e - b)) for b, e, a in parts]
    seen = set()
    for combo in itertools.islice(itertools.product(*options), EXHAUSTIVE):
        bounds = [0]
        for (b, _e, _a), cut in zip(parts, combo):
            bounds.extend(b + x for x in cut[1:])
        for out in _with_followers(tuple(bounds), parts):
            if out not in seen:
                seen.add(out)
                yield out


def _with_followers(bounds: tuple, parts: list):
    """`bounds`, and the same with the row after a cluster joined to it: a cluster may have
    the items that follow it in reading order at its right, in its first rank."""
    yield bounds
    alone_at = {b for b, _e, a in parts if a}
    cuts = list(bounds)
    for i in range(1, len(cuts) - 1):
        if cuts[i - 1] in alone_at and cuts[i] == cuts[i - 1] + 1 and cuts[i] not in alone_at:
            yield tuple(cuts[:i] + cuts[i + 1:])


def _choose(n: int, k: int) -> int:
    return math.comb(n, k)


# ---------------------------------------------------------------------------- statecharts


@dataclass(frozen=True)
class Nested:
    """Rows inside every container: `rows[""]` the top level (as `Arrangement.rows`), and
    `rows[cluster id]` the rows of what a cluster holds (its own box first)."""

    rows: dict
    key_in_row: bool
    key: int
    scale: float
    sizes: dict  # item id -> estimated (width, height), clusters included
    key_first: bool = False  # the key ends the first row


CLUSTER_PAD = (8.0, 8.0)  # inside a cluster's frame, around what it holds (points)
CLUSTER_LABEL = 16.0  # the height of a cluster's label (points)
ROUNDS = 2  # rounds of trying each container's column count, the others fixed


def arrange_nested(tree: dict, kinds: dict, sizes: dict, header: tuple, keys: list, page: tuple, gaps: tuple,
                   labels: dict | None = None) -> Nested:
    """Rows for a chart with clusters. `tree`: container -> its items in reading order (""
    the top level); `kinds`: cluster id -> compound / parallel / track; `sizes`: each box's
    size. A compound or parallel state's own box heads its cluster, alone in the first row; a
    parallel state's tracks are side by side under it, in one row; a compound state or a
    track cuts the states it holds into rows of k items, k chosen (each in turn,
    the others fixed, `ROUNDS` times) to draw the whole chart largest on the page, the top
    level arranged as `arrange` does for the sizes that gives."""
    labels = labels or {}
    across, down = gaps
    inner = [c for c in _postorder(tree, "") if c]  # the clusters, innermost first
    choice = {c: max(1, len(tree[c]) - (kinds.get(c) != "track")) for c in inner}

    def rows_of(c: str, k: int) -> list[list[str]]:
        items = list(tree[c])
        head: list[list[str]] = []
        if kinds.get(c) in ("compound", "parallel") and items:
            head, items = [[items[0]]], items[1:]  # the state's own box, alone above what it holds
        if kinds.get(c) == "parallel":
            return head + ([items] if items else [])
        k = max(1, k)
        # in a row, a frame before the boxes beside it: Graphviz draws it there whatever the order
        return head + [sorted(items[i:i + k], key=lambda x: x not in tree) for i in range(0, len(items), k)]

    def evaluate(ch: dict) -> tuple[Arrangement, dict, dict]:
        sz = dict(sizes)
        rows = {}
        for c in inner:
            rs = rows[c] = rows_of(c, ch[c])
            w = max((sum(sz[x][0] for x in r) + across * (len(r) - 1) for r in rs), default=0.0)
            h = sum(max((sz[x][1] for x in r), default=0.0) for r in rs) + down * max(0, len(rs) - 1)
            lw = labels.get(c, 0.0)
            sz[c] = (max(w, lw) + 2 * CLUSTER_PAD[0], h + CLUSTER_LABEL + 2 * CLUSTER_PAD[1])
        arr = arrange(tree[""], sz, header, keys, page, gaps, frozenset(inner), key_first=True)
        return arr, rows, sz

    best = evaluate(choice)
    for _ in range(ROUNDS):
        improved = False
        for c in inner:
            if kinds.get(c) == "parallel":
                continue
            for k in range(1, len(tree[c]) + 1 - (kinds.get(c) != "track")):
                if k == choice[c]:
                    continue
                trial = dict(choice, **{c: k})
                got = evaluate(trial)
                if got[0].scale > best[0].scale + 1e-9:
                    best, choice, improved = got, trial, True
        if not improved:
            break
    arr, rows, sz = best
    rows = dict(rows)
    rows[""] = arr.rows
    return Nested(rows, arr.key_in_row, arr.key, arr.scale, sz, arr.key_first)


def _postorder(tree: dict, c: str) -> list[str]:
    out = []
    for x in tree.get(c, ()):
        if x in tree:
            out.extend(_postorder(tree, x))
    out.append(c)
    return out
