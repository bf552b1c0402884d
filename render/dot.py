"""The drawing plan -> a `graphviz.Digraph`: the flowchart clinicians read.

Each state is one box: its description, its entry actions, then its decisions, one row per
rule, numbered in the order they are checked; arrows leave from the rows. No arrow carries a
label, so Graphviz keeps the chart compact (a labelled edge doubles every rank in `dot`).

Every piece of protocol text goes through `esc` into Graphviz HTML-like labels. The fill
follows a state's severity (see `tone`) on a ramp that also reads in greyscale (white, light,
mid, dark), backed by the border width and the severity's name printed in the box; the
initial state has a start mark and a bold border, terminal states a double one. With an
overlay (one patient's trace) the path is drawn thick and numbered, and the rest fades.
"""

from __future__ import annotations

from functools import lru_cache
from html import escape

import graphviz

from .labels import UNREVIEWED_MARK, Line, wrap
from .plan import Box, Decision, Group, Plan, Row
from .tone import LEVELS
from .trace import Overlay, Visit

FONT = "Arial"  # metric-compatible Liberation Sans on Linux: the SVG's text fits its boxes
INK = "#1a1a1a"
MUTED = "#4d4d4d"
PATH = "#1f4e9e"  # one patient's path
FADED_INK = "#a0a0a0"
FADED_LINE = "#c4c4c4"
DECISION_BG = "#ffffff"

# severity -> (fill, border width); the fills darken with severity in greyscale too
SEVERITY = {
    0: ("#ffffff", 1.0),
    1: ("#fce59a", 1.6),
    2: ("#f4b06b", 2.2),
    3: ("#d9685f", 3.0),
}
SEVERITY_MEANING = {
    0: "nothing abnormal to act on",
    1: "a mild finding",
    2: "a moderate finding",
    3: "a severe finding",
}
DERIVED_MEANING = {  # when the protocol declares no severity, what the derived levels mean
    0: "routine monitoring",
    1: "a milder finding (checked late in a graded list)",
    2: "a serious finding (checked early in a graded list)",
    3: "every way out ends the pathway",
}
INITIAL_PEN = 2.2

# one printed page, A4 or Letter, landscape, less 0.6 inch margins (inches)
PAGE_SIZE = "10.6,7.6"

TITLE_WIDTH = 32  # characters per line of a state's description
ENTRY_WIDTH = 42  # ... of an entry action
GUARD_WIDTH = 30  # ... of a rule's condition
BR = '<BR ALIGN="LEFT"/>'
NBSP = "&#160;"
BOX_TABLE = '<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="0" CELLPADDING="2">'


def esc(text: str) -> str:
    """Protocol text, safe inside a Graphviz HTML-like label.

    `]` is written as a character reference too: Graphviz 2.43 rejects a label where `]`
    follows a closing tag (`<I>1</I>]`).
    """
    return escape(text, quote=True).replace("&#x27;", "&#39;").replace("]", "&#93;")


@lru_cache(maxsize=8192)
def _lines(text: str, width: int) -> str:
    """Wrapped, escaped, each line ending in a left-aligned break (protocols repeat their texts:
    "Order a liver panel, due in 2–4 weeks" is wrapped once)."""
    return "".join(esc(line) + BR for line in wrap(text, width))


def _label(table: str) -> str:
    """A Graphviz HTML-like label."""
    return f"<{table}>"


def _font(markup: str, size: float | None = None, color: str | None = None) -> str:
    attrs = (f' POINT-SIZE="{size:g}"' if size else "") + (f' COLOR="{color}"' if color else "")
    return f"<FONT{attrs}>{markup}</FONT>" if attrs else markup


def _append(markup: str, extra: str) -> str:
    """`extra` at the end of the last line of `markup` (before its final break)."""
    if not extra:
        return markup
    if markup.endswith(BR):
        return markup[: -len(BR)] + " " + extra + BR
    return markup + " " + extra


class _Ink:
    """Colours for one drawing: everything off the patient's path fades."""

    def __init__(self, plan: Plan, overlay: Overlay | None):
        self.plan = plan
        self.ov = overlay

    @property
    def tracing(self) -> bool:
        return self.ov is not None

    def state_on(self, state: str) -> bool:
        return self.ov is None or state in self.ov.visits or state == self.ov.final_state

    def rules_on(self, keys) -> bool:
        return self.ov is None or any(k in self.ov.taken for k in keys)

    def text(self, on: bool) -> str:
        return INK if on or not self.tracing else FADED_INK

    def muted(self, on: bool) -> str:
        return MUTED if on or not self.tracing else FADED_INK

    def marks(self, sources, on: bool = True) -> str:
        """[1†,4]: citation numbers; unreviewed sources (AI summaries) in italics with †."""
        marks = self.plan.labels.marks(sources)
        if not marks:
            return ""
        parts = [f"<I>{esc(t)}</I>" if unrev else esc(t) for t, unrev in marks]
        return _font("[" + ",".join(parts) + "&#93;", 7.5, self.muted(on))

    def actions(self, lines: list[Line], width: int, size: float, on: bool) -> str:
        out = []
        when = ""
        for line in lines:
            if line.when and line.when != when:  # a condition once over the actions it governs
                out.append(_font(f"<I>{_lines(line.when + ':', width)}</I>", size, self.muted(on)))
            when = line.when
            # indents are no-break spaces: SVG collapses a text run's leading spaces
            indent = NBSP * 3 if line.when else ""
            if line.kind == "one_of":
                first, *rest = line.options
                body = indent + _lines(f"• {first} (default)", width)
                for opt in rest:
                    body += f"{indent}{NBSP * 3}<B>OR</B>{NBSP}" + _lines(opt, width - 6)
                tail = line.text[len(" OR ".join(line.options)) :].lstrip(", ")
                if tail:
                    body += indent + NBSP * 3 + _lines(tail, width)
            else:
                body = indent + _lines(f"• {line.text}", width)
            out.append(_font(_append(body, self.marks(line.sources, on)), size, self.text(on)))
        return "".join(out)


def _visits(visits: list[Visit], what: str) -> str:
    """"entered start · 2025-01-06, 3 · 2025-02-03" (the first few, then how many more)."""
    shown = [f"{'start' if v.number == 0 else v.number} · {v.date}" for v in visits[:3]]
    more = len(visits) - len(shown)
    text = (what + " " if what else "") + ", ".join(shown) + (f" (+{more} more)" if more > 0 else "")
    return _font(f"<B>{esc(text)}</B>", 8.5, PATH)


def _decision_rows(ink: _Ink, owner_on: bool, dec: Decision, ports: bool) -> list[str]:
    """A decision as table rows: its trigger, then one row per rule."""
    rows = []
    head = ("◇ " + dec.trigger) + (" (first match)" if dec.ordered else "")
    rows.append(f'<TR><TD COLSPAN="3" ALIGN="LEFT" BALIGN="LEFT" BGCOLOR="{DECISION_BG}">'
                f'{_font("<B>" + _lines(head, ENTRY_WIDTH + 4) + "</B>", 8.5, ink.text(owner_on))}</TD></TR>')
    for row in dec.rows:
        rows.append(_rule_row(ink, owner_on, row, ports))
    return rows


def _rule_row(ink: _Ink, owner_on: bool, row: Row, ports: bool) -> str:
    """A rule: its number, condition and sources, where it leads (the arrow's port); under
    them, across the box, the actions it takes."""
    on = owner_on and ink.rules_on(row.rules)
    color = PATH if ink.tracing and on else ink.text(on)
    body = ""
    if ink.tracing and on:
        visits = sorted((v for k in row.rules for v in ink.ov.taken.get(k, ())), key=lambda v: v.number)
        body += _visits(visits, "") + BR
    if row.guard:
        cond = _lines(row.guard, GUARD_WIDTH)
        body += _font(_append(f"<B>{cond}</B>" if ink.tracing and on else cond, ink.marks(row.sources, on)), 9, color)
    elif row.sources:
        body += ink.marks(row.sources, on)
    if row.stay:
        target = "<I>stay</I>"
    elif row.reenter:
        target = "<I>again</I>"
    else:
        target = "→ " + esc(row.target)
    # two ports: arrows to the left leave from the row's left end, the others from its right end
    west, east = (f' PORT="{row.port}_w"', f' PORT="{row.port}_e"') if ports else ("", "")
    number = _font(f"<B>{esc(row.number)}</B>", 9, color) if row.number else ""
    cell = f'BGCOLOR="{DECISION_BG}"'
    out = (
        f'<TR><TD ALIGN="RIGHT" VALIGN="TOP" {cell}{west}>{number}</TD>'
        f'<TD ALIGN="LEFT" VALIGN="TOP" BALIGN="LEFT" {cell}>{body or " "}</TD>'
        f'<TD ALIGN="LEFT" VALIGN="TOP" {cell}{east}>{_font(target, 8, color)}</TD></TR>'
    )
    if row.actions:
        out += (f'<TR><TD {cell}></TD><TD COLSPAN="2" ALIGN="LEFT" BALIGN="LEFT" {cell}>'
                f'{ink.actions(row.actions, ENTRY_WIDTH - 2, 8, on)}</TD></TR>')
    return out


def _wide(markup: str) -> str:
    """A table row across a box's three columns (number, rule, target)."""
    return f'<TR><TD COLSPAN="3" ALIGN="LEFT" BALIGN="LEFT">{markup}</TD></TR>'


def _box_label(ink: _Ink, b: Box) -> str:
    """A state: what it is, what it does on entry, then its decisions."""
    on = ink.state_on(b.state)
    rows = []
    if ink.tracing and b.state in ink.ov.visits:
        rows.append(_wide(_visits(ink.ov.visits[b.state], "entered")))
    if ink.tracing and ink.ov.final_state == b.state:
        rows.append(_wide(_font("<B>" + esc(f"here at the end ({ink.ov.until})") + "</B>", 8.5, PATH)))
    rows.append(_wide(_font("<B>" + _lines(b.title, TITLE_WIDTH) + "</B>", 11, ink.text(on))))
    tag = f"{b.state} · {LEVELS[b.severity]}" + (f" · + shared rules {b.group}" if b.group else "")
    rows.append(_wide(_font(esc(tag), 7.5, ink.muted(on))))
    if b.entry:
        rows.append(_wide(_font("On entry:", 7.5, ink.muted(on)) + BR + ink.actions(b.entry, ENTRY_WIDTH, 9, on)))
    for dec in b.decisions:
        rows.extend(_decision_rows(ink, on, dec, ports=True))
    return _label(BOX_TABLE + "".join(rows) + "</TABLE>")


def _group_label(ink: _Ink, grp: Group) -> str:
    """Shared rules: drawn once, for every state marked with the group's letter."""
    on = not ink.tracing or any(ink.rules_on(r.rules) for d in grp.decisions for r in d.rows)
    head = f"<B>{esc(grp.letter)} · shared rules</B>"
    who = _lines("in every state marked " + grp.letter + ": " + ", ".join(grp.states), ENTRY_WIDTH)
    rows = [_wide(_font(head, 11, ink.text(on)) + BR + _font(who, 7.5, ink.muted(on)))]
    for dec in grp.decisions:
        rows.extend(_decision_rows(ink, on, dec, ports=True))
    return _label(BOX_TABLE + "".join(rows) + "</TABLE>")


TABLE = '<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="0" CELLPADDING="1">'


def _title(plan: Plan) -> str:
    meta = " · ".join(x for x in (f"version {plan.version}" if plan.version else "", f"status: {plan.status}" if plan.status else "") if x)
    rows = [
        f'<TR><TD ALIGN="LEFT">{_font("<B>" + esc(plan.title) + "</B>", 20)}</TD></TR>',
        f'<TR><TD ALIGN="LEFT">{_font(esc(meta), 10, MUTED)}</TD></TR>',
    ]
    if plan.description:
        rows.append(f'<TR><TD ALIGN="LEFT" BALIGN="LEFT">{_font(_lines(plan.description, 72), 9.5)}</TD></TR>')
    return TABLE + "".join(rows) + "</TABLE>"


def _legend(plan: Plan, ink: _Ink) -> str:
    """How to read the chart: the colours on the left, the signs on the right."""
    how = "as the protocol declares it" if plan.severity_declared else "derived from the rules: the protocol declares none"
    tones = [TABLE, f'<TR><TD COLSPAN="2" ALIGN="LEFT">{_font("<B>How to read this chart</B>", 10)}</TD></TR>',
             f'<TR><TD COLSPAN="2" ALIGN="LEFT">{_font(esc(f"Severity, {how}:"), 8)}</TD></TR>']
    meaning = SEVERITY_MEANING if plan.severity_declared else DERIVED_MEANING
    for level in sorted({b.severity for b in plan.boxes}):
        fill, pen = SEVERITY[level]
        tones.append(
            f'<TR><TD BGCOLOR="{fill}" BORDER="{max(1, round(pen))}" COLOR="{INK}">{_font(esc(LEVELS[level]), 7.5)}</TD>'
            f'<TD ALIGN="LEFT">{_font(esc(meaning[level]), 8)}</TD></TR>'
        )
    tones.append("</TABLE>")
    rows = [r for b in plan.boxes for d in b.decisions for r in d.rows] + [r for g in plan.groups for d in g.decisions for r in d.rows]
    lines = [x for b in plan.boxes for x in b.entry] + [x for r in rows for x in r.actions]
    cited = {s for b in plan.boxes for s in b.sources} | {s for r in rows for s in r.sources} | {s for x in lines for s in x.sources}
    items = [  # the signs this chart uses
        ("●", "the pathway starts here (bold border)", any(b.kind == "initial" for b in plan.boxes)),
        ("═", "the pathway ends here (double border)", any(b.kind == "terminal" for b in plan.boxes)),
        ("◇", "a decision: its rules are checked in order", bool(rows)),
        ("→", "where a rule leads (its arrow leaves from the rule)", bool(plan.arrows)),
        ("A", "shared rules, drawn once for the states marked A", bool(plan.groups)),
        ("stay", "no change: entry actions are not repeated", any(r.stay for r in rows)),
        ("again", "re-entered: entry actions repeat", any(r.reenter for r in rows)),
        ("OR", "alternatives: the first is the default", any(x.kind == "one_of" for x in lines)),
        ("[n]", "the sources behind a rule or an action", bool(cited)),
        (UNREVIEWED_MARK, "AI summary, pending human review", any(plan.labels.unreviewed(s) for s in cited)),
    ]
    items = [(sym, text) for sym, text, used in items if used]
    if ink.tracing:
        items.insert(0, ("━", f"the path of patient {ink.ov.patient}, numbered, with dates"))
    half = (len(items) + 1) // 2
    cols = []
    for part in (items[:half], items[half:]):
        signs = [TABLE, '<TR><TD COLSPAN="2"> </TD></TR>']
        for sym, text in part:
            color = PATH if sym == "━" else INK
            signs.append(f'<TR><TD ALIGN="CENTER">{_font("<B>" + esc(sym) + "</B>", 8.5, color)}</TD>'
                         f'<TD ALIGN="LEFT">{_font(esc(text), 8)}</TD></TR>')
        signs.append("</TABLE>")
        cols.append("".join(signs))
    cells = "".join(f'<TD VALIGN="TOP">{c}</TD><TD WIDTH="12"> </TD>' for c in ["".join(tones)] + cols)
    return f'<TABLE BORDER="0" CELLSPACING="0" CELLPADDING="0"><TR>{cells}</TR></TABLE>'


def _header_label(plan: Plan, ink: _Ink) -> str:
    """Above the chart: the title block, and how to read the chart beside it."""
    return _label(f'<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="0" CELLPADDING="0"><TR>'
            f'<TD ALIGN="LEFT" VALIGN="TOP">{_title(plan)}</TD><TD WIDTH="30"> </TD>'
            f'<TD ALIGN="LEFT" VALIGN="TOP">{_legend(plan, ink)}</TD></TR></TABLE>')


def _key_label(plan: Plan, ink: _Ink) -> str:
    """Under the chart, side by side: the definitions and the references."""
    L = plan.labels
    entries = []
    for d in plan.definitions:
        head = f"<B>{esc(d.name)}</B>" + (f": {esc(d.description)}" if d.description else "")
        body = _append(head, ink.marks(d.sources)) + BR
        for i, line in enumerate(d.lines):
            body += _font(("" if i == 0 else NBSP * 3) + _lines(("= " if i == 0 else "or ") + line, 60), 8, MUTED)
        entries.append((body.count("<BR") + 1, f'<TR><TD ALIGN="LEFT" BALIGN="LEFT">{_font(body, 8)}</TD></TR>'))
    # two columns of about the same height, in order
    total = sum(n for n, _ in entries)
    columns: list[list[str]] = [[]]
    height = 0
    for n, entry in entries:
        if columns[-1] and height + n / 2 > total / 2 * len(columns) and len(columns) < 2:
            columns.append([])
        columns[-1].append(entry)
        height += n
    defs = [
        [TABLE, f'<TR><TD ALIGN="LEFT">{_font("<B>Definitions</B>" if i == 0 else " ", 10)}</TD></TR>', *col, "</TABLE>"]
        for i, col in enumerate(columns)
        if col
    ]
    refs = [TABLE, f'<TR><TD COLSPAN="2" ALIGN="LEFT">{_font("<B>References</B>", 10)}</TD></TR>']
    for sid in plan.references:
        src = L.sources[sid]
        mark, unrev = L.marks([sid])[0]
        where = src.get("url") or (f"doi:{src['doi']}" if src.get("doi") else "")
        text = (src.get("title") or sid) + (f" ({where})" if where else "")
        kind = esc(L.kind_text(sid))
        body = _append(_lines(text, 84), "— " + (f"<B>{kind}</B>" if unrev else kind))
        if unrev:
            body = f"<I>{body}</I>"
        refs.append(f'<TR><TD ALIGN="RIGHT" VALIGN="TOP">{_font(esc(f"[{mark}]"), 8)}</TD>'
                    f'<TD ALIGN="LEFT" BALIGN="LEFT">{_font(body, 8)}</TD></TR>')
    refs.append("</TABLE>")
    cols = (defs if plan.definitions else []) + [refs]
    return _label('<TABLE BORDER="1" COLOR="#9a9a9a" CELLBORDER="0" CELLSPACING="8" CELLPADDING="0"><TR>'
                  + "".join('<TD ALIGN="LEFT" VALIGN="TOP">' + "".join(c) + "</TD>" for c in cols) + "</TR></TABLE>")


def digraph(plan: Plan, overlay: Overlay | None = None) -> graphviz.Digraph:
    """The flowchart as a graphviz.Digraph (its `.source` is the DOT text)."""
    ink = _Ink(plan, overlay)
    dot = graphviz.Digraph(name=plan.name or "protocol")
    dot.attr(
        "graph",
        label=_header_label(plan, ink),  # the title block and the legend: above the chart
        labelloc="t",
        labeljust="l",
        fontname=FONT,
        rankdir="TB",
        newrank="true",
        nodesep="0.25",
        ranksep="0.3",
        size=PAGE_SIZE,
        pad="0.15",
        margin="0",
        bgcolor="white",
    )
    dot.attr("node", fontname=FONT, fontcolor=INK, color=INK, margin="0.06,0.04")
    dot.attr("edge", fontname=FONT, color=INK, arrowsize="0.8")

    def box(b: Box) -> None:
        fill, pen = SEVERITY[b.severity]
        if b.kind == "initial":
            pen = max(pen, INITIAL_PEN)
        on = ink.state_on(b.state)
        attrs = dict(
            id=f"state_{b.state}",
            shape="box",
            style="rounded,filled" if b.kind == "terminal" else "filled",
            fillcolor=fill if on or not ink.tracing else _fade(fill),
            penwidth=f"{pen:g}",
            label=_box_label(ink, b),
        )
        if b.kind == "terminal":
            attrs["peripheries"] = "2"
        if ink.tracing and on:
            attrs.update(color=PATH, penwidth=f"{max(pen, 3):g}")
        elif ink.tracing:
            attrs.update(color=FADED_LINE)
        dot.node(b.id, **attrs)

    for b in plan.boxes:
        box(b)
    for grp in plan.groups:
        on = ink.rules_on(k for d in grp.decisions for r in d.rows for k in r.rules)
        dot.node(grp.id, id=grp.id, shape="box", style="dashed,rounded,filled", fillcolor="#ffffff",
                 color=PATH if ink.tracing and on else FADED_LINE if ink.tracing else "#555555",
                 penwidth="1.4", label=_group_label(ink, grp))
    initial = next((b for b in plan.boxes if b.kind == "initial"), None)
    if initial is not None:
        color = PATH if ink.tracing else INK
        dot.node("__start__", id="start", label="", shape="circle", style="filled", fillcolor=color, color=color,
                 width="0.16", fixedsize="true")
        dot.edge("__start__", initial.id, id="start_arrow", color=color, penwidth="2.5" if ink.tracing else "1.2")

    # rows: each a rank, in order; the rules' arrows do not move boxes between rows
    for i, row in enumerate(plan.rows):
        if initial is not None and initial.id in row:  # the start mark beside the initial state
            row = row[: row.index(initial.id)] + ["__start__"] + row[row.index(initial.id) :]
        with dot.subgraph(name=f"row_{i}") as rg:
            rg.attr(rank="same")
            for node in row:
                rg.node(node)
            for left, right in zip(row, row[1:]):  # in reading order, left to right
                rg.edge(left, right, style="invis")
    for upper, lower in zip(plan.rows, plan.rows[1:]):
        dot.edge(upper[0], lower[0], style="invis", weight="10")
    # definitions and references: under the chart
    dot.node("__key__", id="key", shape="plaintext", margin="0", label=_key_label(plan, ink))
    if plan.rows:
        dot.edge(plan.rows[-1][len(plan.rows[-1]) // 2], "__key__", style="invis", weight="10")

    column = {node: i for row in plan.rows for i, node in enumerate(row)}
    shared = {grp.id for grp in plan.groups}
    for a in plan.arrows:
        attrs = {"id": a.id, "constraint": "false"}
        side = "w" if column.get(a.head, 0) < column.get(a.tail, 0) else "e"
        if a.tail in shared:
            attrs["style"] = "dashed"
        if ink.tracing and ink.rules_on(a.rules):
            attrs.update(color=PATH, penwidth="3")
        elif ink.tracing:
            attrs.update(color=FADED_LINE)
        dot.edge(f"{a.tail}:{a.port}_{side}:{side}", a.head, **attrs)
    return dot


def _fade(color: str) -> str:
    """A fill mixed 70% with white."""
    r, g, b = (int(color[i : i + 2], 16) for i in (1, 3, 5))
    return "#" + "".join(f"{round(c + (255 - c) * 0.7):02x}" for c in (r, g, b))
