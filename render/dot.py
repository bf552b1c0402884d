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

from rxwatch.compiler.diagnostics import sanitize

from . import layout
from .labels import UNREVIEWED_MARK, Line, wrap
from .missing import blocking_text
from .plan import Box, Cluster, Decision, Group, Plan, Row
from .tone import LEVELS
from .trace import Overlay, Visit

FONT = "Arial"  # metric-compatible Liberation Sans on Linux: the SVG's text fits its boxes
INK = "#1a1a1a"
MUTED = "#4d4d4d"
PATH = "#1f4e9e"  # one patient's path
DEVIATION = "#a01010"  # an order overdue or incomplete on that path
DEVIATION_WORDS = {"overdue": "overdue", "still_overdue": "still overdue", "incomplete": "incomplete"}
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
NODESEP = 0.25  # between boxes in a row (inches)
RANKSEP = 0.3  # between rows (inches)
NODE_MARGIN = "0.06,0.04"  # inside a box, around its table (inches)
START_WIDTH = 11.52  # the start mark (points)
PERIPHERY_GAP = 4  # between a terminal state's two borders (points; Graphviz's own)
KEY_COLUMNS = (1, 2, 3)  # the key's definitions in this many columns: `layout` picks

TITLE_WIDTH = 32  # characters per line of a state's description
TARGET_WIDTH = 22  # ... of where a rule leads (a state's short title)
STAY_WORDS = "remains here"  # a rule that stays: no change of state
AGAIN_WORDS = "starts this state again"  # a rule that re-enters its own state
BLOCK_WORDS = "in its dashed box"  # a rule block's rules, drawn once
ENTRY_WIDTH = 52  # ... of an entry action (whole action texts: wider lines, fewer of them)
GUARD_WIDTH = 38  # ... of a rule's condition (conditions read as their descriptions)
LEGEND_WIDTH = 50  # ... of a sign's meaning in the legend
GRADES_WIDTH = 120  # ... of the grades under the title (one line for the shipped protocols)
BR = '<BR ALIGN="LEFT"/>'
NBSP = "&#160;"
BOX_TABLE = '<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="0" CELLPADDING="2">'


def esc(text: str) -> str:
    """Protocol text, safe inside a Graphviz HTML-like label.

    `]` is written as a character reference too: Graphviz 2.43 rejects a label where `]`
    follows a closing tag (`<I>1</I>]`). A control character or a lone surrogate (which
    Graphviz's XML reader refuses even as a character reference) is shown as its escape
    (`\\x01`), as on a terminal. A text longer than MAX_TEXT characters (a title of 200,000,
    say) is cut there with `...`: Graphviz refuses a run of text of more than 16,384 characters
    in a label, and the chart is for reading (the viewer's panel keeps the whole text).
    """
    if len(text) > MAX_TEXT:
        text = text[:MAX_TEXT] + "..."
    return escape(sanitize(text, newlines=False), quote=True).replace("&#x27;", "&#39;").replace("]", "&#93;")


MARK_LOCATOR = 24  # characters of a citation's locator on a reference mark (the viewer shows it whole)

MAX_TEXT = 2000
"""Characters of one text in a chart label at most (escaped, at most 6 times as many)."""


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
    return f"<FONT{attrs}>{markup}</FONT>" if attrs and markup else markup  # Graphviz refuses an empty FONT


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

    def marks(self, sources, on: bool = True, citations=()) -> str:
        """[1†,4]: citation numbers; unreviewed sources (AI summaries) in italics with †; a
        citation's locator after its number: [1†; 3: 4.4; 5: Table 1]."""
        marks = self.plan.labels.cite_marks(sources, citations, MARK_LOCATOR)
        if not marks:
            return ""
        parts = [f"<I>{esc(t)}</I>" if unrev else esc(t) for t, unrev in marks]
        sep = "; " if any(":" in t for t, _ in marks) else ","
        return _font("[" + sep.join(parts) + "&#93;", 7.5, self.muted(on))

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
            if line.effect:  # what it does to a drug, in words
                body = _append(body, _font(f"<I>({esc(line.effect)})</I>", size - 1, self.muted(on)))
            out.append(_font(_append(body, self.marks(line.sources, on, line.citations)), size, self.text(on)))
            for alt in line.alternatives:  # a choice's alternatives, each with its own actions
                if alt["lines"]:
                    out.append(_font(f"<I>{_lines(alt['text'] + ':', width)}</I>", size, self.muted(on)))
                    out.append(self.actions([Line(x.text, "", x.sources, x.options, x.kind, x.fulfilled_by, x.citations, x.effect)
                                             for x in alt["lines"]], width - 3, size, on))
        return "".join(out)


def _visits(visits: list[Visit], what: str) -> str:
    """"entered start · 2025-01-06, 3 · 2025-02-03" (the first few, then how many more)."""
    shown = [f"{'start' if v.number == 0 else v.number} · {v.date}" for v in visits[:3]]
    more = len(visits) - len(shown)
    text = (what + " " if what else "") + ", ".join(shown) + (f" (+{more} more)" if more > 0 else "")
    return _font(f"<B>{esc(text)}</B>", 8.5, PATH)


def _deviations(ink: _Ink, devs) -> str:
    """"! Order a liver panel: overdue 2025-07-07; still overdue 2025-08-04, 2025-09-01": the
    deviations while the patient was in a state, by order and kind, the first few dates each."""
    by_action: dict[str, dict[str, list[str]]] = {}
    for d in devs:
        by_action.setdefault(d.action, {}).setdefault(d.kind, []).append(d.date)
    out = ""
    for action, kinds in by_action.items():
        parts = []
        for kind, dates in kinds.items():
            more = f" (+{len(dates) - 3} more)" if len(dates) > 3 else ""
            parts.append(f"{DEVIATION_WORDS.get(kind, kind.replace('_', ' '))} {', '.join(dates[:3])}{more}")
        text = f"! {ink.plan.labels.action_text(action)}: " + "; ".join(parts)
        out += _lines(text, ENTRY_WIDTH)
    return _font(f"<B>{out}</B>", 8.5, DEVIATION)


def _decision_rows(ink: _Ink, owner_on: bool, dec: Decision, ports: bool) -> list[str]:
    """A decision as table rows: its trigger, then one row per rule."""
    rows = []
    head = ("◇ " + dec.trigger) + (": the first rule that applies" if dec.ordered else "")
    rows.append(f'<TR><TD COLSPAN="3" ALIGN="LEFT" BALIGN="LEFT" BGCOLOR="{DECISION_BG}">'
                f'{_font("<B>" + _lines(head, ENTRY_WIDTH + 4) + "</B>", 8.5, ink.text(owner_on))}</TD></TR>')
    for row in dec.rows:
        rows.append(_rule_row(ink, owner_on, row, ports))
    rows.append(_missing_row(ink, owner_on, dec))
    return rows


def _missing_row(ink: _Ink, owner_on: bool, dec: Decision) -> str:
    """Under the rules: the missing results that can leave the decision not assessable
    ("? results missing: both ALT and AST -> not assessable"), or that the rules handle; with
    a trace, the days it was not assessable for the patient. "" when there is nothing to say."""
    m = dec.missing
    days = [u for h in dec.handlers for u in (ink.ov.unassessed.get(h, ()) if ink.tracing else ())]
    days.sort(key=lambda u: u.date)
    if not days and (m is None or (m.blocking == () and not m.checked)):
        return ""
    on = owner_on and (not ink.tracing or bool(days))
    color = ink.muted(on)
    cell = f'BGCOLOR="{DECISION_BG}"'
    body, target = "", ""
    if days:
        shown = [f"{u.date} (no {', '.join(u.missing)})" if u.missing else u.date for u in days[:3]]
        more = f" (+{len(days) - 3} more)" if len(days) > 3 else ""
        body += _font(f"<B>{_lines('not assessable · ' + ', '.join(shown) + more, GUARD_WIDTH + 4)}</B>", 8.5, PATH)
    if m is None:
        pass
    elif m.blocking == ():
        body += _font(_lines("results missing: decided by the rules, which check for them", GUARD_WIDTH), 8, color)
    else:
        body += _font(_lines(f"results missing: {blocking_text(m)}", GUARD_WIDTH), 8, color)
        target = "<I>not assessable</I>"
    return (f'<TR><TD ALIGN="RIGHT" VALIGN="TOP" {cell}>{_font("<B>?</B>", 9, PATH if days else color)}</TD>'
            f'<TD ALIGN="LEFT" VALIGN="TOP" BALIGN="LEFT" {cell}>{body}</TD>'
            f'<TD ALIGN="LEFT" VALIGN="TOP" {cell}>{_font(target, 8, color)}</TD></TR>')


def _block_row(ink: _Ink, owner_on: bool, row: Row) -> str:
    """`uses <block>`: the block's rules apply here, in this place; drawn once, on its box."""
    on = owner_on and ink.rules_on(row.rules)
    color = PATH if ink.tracing and on else ink.text(on)
    number = _font(f"<B>{esc(row.number)}</B>", 9, color) if row.number else ""
    cell = f'BGCOLOR="{DECISION_BG}"'
    body = _font("<I>" + _lines(row.guard, GUARD_WIDTH) + "</I>", 9, color)
    return (f'<TR><TD ALIGN="RIGHT" VALIGN="TOP" {cell}>{number}</TD>'
            f'<TD ALIGN="LEFT" VALIGN="TOP" BALIGN="LEFT" {cell}>{body}</TD>'
            f'<TD ALIGN="LEFT" VALIGN="TOP" BALIGN="LEFT" {cell}>{_font("<I>" + _lines(BLOCK_WORDS, TARGET_WIDTH) + "</I>", 8, ink.muted(on))}</TD></TR>')


def _alt_rows(ink: _Ink, owner_on: bool, row: Row, ports: bool) -> str:
    """A choice's alternatives under its rule, each a branch of its own: the default first,
    then `OR` the others, each with where it leads (its arrow's port) and its actions."""
    out = ""
    cell = f'BGCOLOR="{DECISION_BG}"'
    for alt in row.alternatives:
        on = owner_on and ink.rules_on(alt.rules)
        color = PATH if ink.tracing and on else ink.text(on)
        lead = "• " if alt.default else f"<B>OR</B>{NBSP}"
        text = esc(alt.text) + (" (default)" if alt.default else "")
        body = lead + text
        if alt.effect:
            body += " " + _font(f"<I>({esc(alt.effect)})</I>", 7.5, ink.muted(on))
        marks = ink.marks(alt.sources, on, alt.citations)
        if marks:
            body += " " + marks
        body = _font(body, 8.5, color)
        if alt.actions:
            body += BR + ink.actions(alt.actions, ENTRY_WIDTH - 6, 8, on)
        target = _target(ink, alt.target, alt.stay, alt.reenter)
        west, east = (f' PORT="{alt.port}_w"', f' PORT="{alt.port}_e"') if ports else ("", "")
        out += (f'<TR><TD ALIGN="RIGHT" VALIGN="TOP" {cell}{west}></TD>'
                f'<TD ALIGN="LEFT" VALIGN="TOP" BALIGN="LEFT" {cell}>{NBSP * 2}{body}</TD>'
                f'<TD ALIGN="LEFT" VALIGN="TOP" BALIGN="LEFT" {cell}{east}>{_font(target, 8, color)}</TD></TR>')
    return out


def _target(ink: _Ink, state: str, stay: bool, reenter: bool) -> str:
    """Where a rule leads, in words: the state's short title, or that it remains, or starts
    its state again."""
    if stay:
        return f"<I>{esc(STAY_WORDS)}</I>"
    if reenter:
        return f"<I>{_lines(AGAIN_WORDS, TARGET_WIDTH)}</I>"
    return _lines("→ " + ink.plan.target(state), TARGET_WIDTH)


def _rule_row(ink: _Ink, owner_on: bool, row: Row, ports: bool) -> str:
    """A rule: its number, condition and sources, where it leads (the arrow's port); under
    them, across the box, the actions it takes; a choice's alternatives under those."""
    if row.block:
        return _block_row(ink, owner_on, row)
    on = owner_on and ink.rules_on(row.rules + [k for a in row.alternatives for k in a.rules])
    color = PATH if ink.tracing and on else ink.text(on)
    body = ""
    if ink.tracing and on:
        visits = sorted((v for k in row.rules for v in ink.ov.taken.get(k, ())), key=lambda v: v.number)
        body += _visits(visits, "") + BR
    if row.guard:
        cond = _lines(row.guard, GUARD_WIDTH)
        body += _font(_append(f"<B>{cond}</B>" if ink.tracing and on else cond, ink.marks(row.sources, on, row.citations)), 9, color)
    elif row.sources:
        body += ink.marks(row.sources, on, row.citations)
    if row.alternatives:
        target = "<I>one of:</I>"
    else:
        target = _target(ink, row.target, row.stay, row.reenter)
    # two ports: arrows to the left leave from the row's left end, the others from its right end
    west, east = (f' PORT="{row.port}_w"', f' PORT="{row.port}_e"') if ports else ("", "")
    number = _font(f"<B>{esc(row.number)}</B>", 9, color) if row.number else ""
    cell = f'BGCOLOR="{DECISION_BG}"'
    out = (
        f'<TR><TD ALIGN="RIGHT" VALIGN="TOP" {cell}{west}>{number}</TD>'
        f'<TD ALIGN="LEFT" VALIGN="TOP" BALIGN="LEFT" {cell}>{body or " "}</TD>'
        f'<TD ALIGN="LEFT" VALIGN="TOP" BALIGN="LEFT" {cell}{east}>{_font(target, 8, color)}</TD></TR>'
    )
    if row.actions:
        out += (f'<TR><TD {cell}></TD><TD COLSPAN="2" ALIGN="LEFT" BALIGN="LEFT" {cell}>'
                f'{ink.actions(row.actions, ENTRY_WIDTH - 2, 8, on)}</TD></TR>')
    if row.alternatives:
        out += _alt_rows(ink, owner_on, row, ports)
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
    if ink.tracing and b.state in ink.ov.deviations:
        rows.append(_wide(_deviations(ink, ink.ov.deviations[b.state])))
    if ink.tracing and ink.ov.final_state == b.state:
        rows.append(_wide(_font("<B>" + esc(f"here at the end ({ink.ov.until})") + "</B>", 8.5, PATH)))
    rows.append(_wide(_font("<B>" + _lines(b.title, TITLE_WIDTH) + "</B>", 11, ink.text(on))))
    tag = f"{b.state} · {LEVELS[b.severity]}" + (f" · + the rules of box {b.group}" if b.group else "")
    if b.type == "compound":
        tag += " · its rules apply inside"
    elif b.type == "parallel":
        tag += " · its rules apply in every track"
    rows.append(_wide(_font(esc(tag), 7.5, ink.muted(on))))
    if b.entry:
        rows.append(_wide(_font("On entry:", 7.5, ink.muted(on)) + BR + ink.actions(b.entry, ENTRY_WIDTH, 9, on)))
    for dec in b.decisions:
        rows.extend(_decision_rows(ink, on, dec, ports=True))
    return _label(BOX_TABLE + "".join(rows) + "</TABLE>")


def _group_label(ink: _Ink, grp: Group) -> str:
    """Shared rules: drawn once, for every state marked with the group's letter."""
    on = not ink.tracing or any(ink.rules_on(r.rules) for d in grp.decisions for r in d.rows)
    head = f"<B>{esc(grp.letter)} · the same rules in several states</B>"
    who = _lines("in every state marked " + grp.letter + ": " + ", ".join(grp.states), ENTRY_WIDTH)
    rows = [_wide(_font(head, 11, ink.text(on)) + BR + _font(who, 7.5, ink.muted(on)))]
    for dec in grp.decisions:
        rows.extend(_decision_rows(ink, on, dec, ports=True))
    return _label(BOX_TABLE + "".join(rows) + "</TABLE>")


def _block_label(ink: _Ink, blk) -> str:
    """A rule block: its rules, drawn once, for every state that uses it."""
    on = not ink.tracing or any(ink.rules_on(r.rules + [k for a in r.alternatives for k in a.rules]) for d in blk.decisions for r in d.rows)
    head = f"<B>Rule block: {esc(blk.title)}</B>"
    users = ", ".join(blk.users) if blk.users else "no state"
    who = _lines(f"{blk.name} · used by {users}", ENTRY_WIDTH)
    rows = [_wide(_font(head, 11, ink.text(on)) + BR + _font(who, 7.5, ink.muted(on)))]
    for dec in blk.decisions:
        rows.extend(_decision_rows(ink, on, dec, ports=True))
    return _label(BOX_TABLE + "".join(rows) + "</TABLE>")


TABLE = '<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="0" CELLPADDING="1">'


def _title(plan: Plan) -> str:
    meta = " · ".join(x for x in (f"version {plan.version}" if plan.version else "", f"status: {plan.status}" if plan.status else "") if x)
    rows = [
        f'<TR><TD ALIGN="LEFT">{_font("<B>" + esc(plan.title) + "</B>", 20)}</TD></TR>',
    ]
    if plan.grades:  # the grades, one line, so that no decision sends the eye to the key
        rows.append(f'<TR><TD ALIGN="LEFT" BALIGN="LEFT">{_font("<B>Grades:</B> " + _lines(plan.grades, GRADES_WIDTH), 11)}</TD></TR>')
    rows.append(f'<TR><TD ALIGN="LEFT">{_font(esc(meta), 10, MUTED)}</TD></TR>')
    if plan.description:
        rows.append(f'<TR><TD ALIGN="LEFT" BALIGN="LEFT">{_font(_lines(plan.description, 72), 9.5)}</TD></TR>')
    for st in plan.settings:  # protocol-wide: how long results count, how often overdue orders are flagged
        body = _append(_lines(st.text, 80), _Ink(plan, None).marks(st.sources, True, st.citations))
        rows.append(f'<TR><TD ALIGN="LEFT" BALIGN="LEFT">{_font("<B>" + body + "</B>" if st.declared else body, 9)}</TD></TR>')
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
    decisions = [d for b in plan.boxes for d in b.decisions] + [d for g in [*plan.groups, *plan.blocks] for d in g.decisions]
    rows = [r for d in decisions for r in d.rows]
    lines = [x for b in plan.boxes for x in b.entry] + [x for r in rows for x in r.actions]
    cited = {s for b in plan.boxes for s in b.sources} | {s for r in rows for s in r.sources} | {s for x in lines for s in x.sources}
    items = [  # the signs this chart uses
        ("●", "the pathway starts here (bold border)" if not plan.clusters else "the pathway starts here; a bold border: the state a frame or a track starts in", any(b.kind == "initial" for b in plan.boxes)),
        ("═", "the pathway ends here (double border)", any(b.kind == "terminal" for b in plan.boxes)),
        ("◇", "a decision: its rules are checked in order", bool(rows)),
        ("→", "where a rule leads: the state's title; the arrow leaves from the first rule that leads there", bool(plan.arrows)),
        ("A", "rules the same in several states, drawn once in box A", bool(plan.groups)),
        ("frame", "a state holding states; the box at its top holds its own rules, which apply in every state inside, after their own", any(c.kind == "compound" for c in plan.clusters)),
        ("tracks", "a parallel state: its tracks (dashed frames) run side by side, each in one of its states; one track can end them all", any(c.kind == "parallel" for c in plan.clusters)),
        ("the rules ‘…’", "a rule block's rules apply there, in that place: drawn once, in the block's dashed box, with its arrows", bool(plan.blocks)),
        ("one of:", "a choice: each alternative leads where its arrow goes; the first is the default", any(r.alternatives for r in rows)),
        ("(holds …)", "what an action does to a drug: held while any track holds it, at the lowest dose any track asks for", any(x.effect for x in lines) or any(a.effect for r in rows for a in r.alternatives)),
        (STAY_WORDS, "no change of state: its entry actions are not repeated", any(r.stay for r in rows)),
        ("?", "results missing: if a rule needs them before one holds, nothing changes: not assessable", any(d.missing is not None and d.missing.blocking != () for d in decisions)),
        (AGAIN_WORDS, "its entry actions repeat", any(r.reenter for r in rows)),
        ("OR", "alternatives: the first is the default", any(x.kind == "one_of" for x in lines)),
        ("[n]", "the sources behind a rule or an action" + ("; [n: 4.4] with the section, table or sentence cited" if _locators(plan) else ""), bool(cited)),
        (UNREVIEWED_MARK, "AI summary, pending human review", any(plan.labels.unreviewed(s) for s in cited)),
    ]
    items = [(sym, text) for sym, text, used in items if used]
    if ink.tracing:
        items.insert(0, ("━", f"the path of patient {ink.ov.patient}, numbered, with dates"))
        if ink.ov.deviations:
            items.insert(1, ("!", "an order overdue, still overdue or incomplete on that path"))
    half = (len(items) + 1) // 2
    cols = []
    for part in (items[:half], items[half:]):
        signs = [TABLE, '<TR><TD COLSPAN="2"> </TD></TR>']
        for sym, text in part:
            color = PATH if sym == "━" else DEVIATION if sym == "!" else INK
            signs.append(f'<TR><TD ALIGN="CENTER" VALIGN="TOP">{_font("<B>" + esc(sym) + "</B>", 8.5, color)}</TD>'
                         f'<TD ALIGN="LEFT" VALIGN="TOP" BALIGN="LEFT">{_font(_lines(text, LEGEND_WIDTH), 8)}</TD></TR>')
        signs.append("</TABLE>")
        cols.append("".join(signs))
    cells = "".join(f'<TD VALIGN="TOP">{c}</TD><TD WIDTH="12"> </TD>' for c in ["".join(tones)] + cols)
    return f'<TABLE BORDER="0" CELLSPACING="0" CELLPADDING="0"><TR>{cells}</TR></TABLE>'


def _locators(plan: Plan) -> bool:
    """Does any citation the chart shows name a section, a table or a sentence?"""
    def any_in(cites) -> bool:
        return any(c.get("locator") for c in cites or ())
    lines = [x for b in plan.boxes for x in b.entry] + plan.drugs
    rows = [r for b in [*plan.boxes, *plan.groups, *plan.blocks] for d in b.decisions for r in d.rows]
    lines += [x for r in rows for x in r.actions] + [x for r in rows for a in r.alternatives for x in a.actions]
    return (any(any_in(x.citations) for x in lines) or any(any_in(r.citations) for r in rows)
            or any(any_in(a.citations) for r in rows for a in r.alternatives) or any(any_in(st.citations) for st in plan.settings))


def _header_label(plan: Plan, ink: _Ink) -> str:
    """Above the chart: the title block, and how to read the chart beside it."""
    return _label(f'<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="0" CELLPADDING="0"><TR>'
            f'<TD ALIGN="LEFT" VALIGN="TOP">{_title(plan)}</TD><TD WIDTH="30"> </TD>'
            f'<TD ALIGN="LEFT" VALIGN="TOP">{_legend(plan, ink)}</TD></TR></TABLE>')


def _key_label(plan: Plan, ink: _Ink, def_columns: int = 2) -> str:
    """Side by side: the definitions (in `def_columns` columns), the orders and the references.

    Each column is one cell of text lines, not a nested table: Graphviz stretches a nested
    table's rows to the height of the tallest column, which would spread a short column out."""
    L = plan.labels
    gap = _font(" " + BR, 4)  # a little space between entries
    entries = []
    for d in plan.definitions:
        if d.condition and not L.reads_as_code(d.name):  # as the rules read it, then the rest of its description, then its name
            said = L.condition_text(d.name).strip("‘’")
            rest = " ".join(d.description.split())[len(said):].strip() if d.description else ""
            head = f"<B>{esc(said)}</B>" + (f" {esc(rest)}" if rest else "") + " " + _font(esc(f"({d.name})"), 7, MUTED)
        else:
            head = f"<B>{esc(d.name)}</B>" + (f": {esc(d.description)}" if d.description else "")
        body = _append(head + BR, ink.marks(d.sources))
        for i, line in enumerate(d.lines):
            body += _font(("" if i == 0 else NBSP * 3) + _lines(("= " if i == 0 else "or ") + line, 60), 8, MUTED)
        entries.append((body.count("<BR"), _font(body, 8) + gap))
    # columns of about the same height, in order
    total = sum(n for n, _ in entries)
    columns: list[list[str]] = [[]]
    height = 0
    for n, entry in entries:
        if columns[-1] and height + n / 2 > total / def_columns * len(columns) and len(columns) < def_columns:
            columns.append([])
        columns[-1].append(entry)
        height += n
    cells = [_font("<B>Definitions</B>" if i == 0 else " ", 10) + BR + gap + "".join(col)
             for i, col in enumerate(columns) if col] if plan.definitions else []
    refs = ""
    if plan.drugs:  # each drug with its dose levels, highest first
        refs += _font("<B>Drugs</B>", 10) + BR + gap
        for line in plan.drugs:
            refs += _font(_append(_lines(line.text, 84), ink.marks(line.sources, True, line.citations)), 8) + gap
        refs += gap
    if plan.orders:  # what each order asks for, and which results fulfil it
        refs += _font("<B>Orders</B>", 10) + BR + gap
        for o in plan.orders:
            body = _append(_lines(o.description, 84), ink.marks(o.sources))
            body += _font(NBSP * 3 + _lines(f"fulfilled by {o.fulfilled_by}", 80), 8, MUTED)
            refs += _font(body, 8) + gap
        refs += gap
    refs += _font("<B>References</B>", 10) + BR + gap
    for sid in plan.references:
        src = L.sources[sid]
        mark, unrev = L.marks([sid])[0]
        where = src.get("url") or (f"doi:{src['doi']}" if src.get("doi") else "")
        text = (src.get("title") or sid) + (f" ({where})" if where else "")
        kind = esc(L.kind_text(sid))
        lines = wrap(f"[{mark}] {text}", 90)
        body = "".join((NBSP * 4 if i else "") + esc(line) + BR for i, line in enumerate(lines))
        body = _append(body, "— " + (f"<B>{kind}</B>" if unrev else kind))
        refs += _font(f"<I>{body}</I>" if unrev else body, 8)
    cells.append(refs)
    return _label('<TABLE BORDER="1" COLOR="#9a9a9a" CELLBORDER="0" CELLSPACING="8" CELLPADDING="0"><TR>'
                  + "".join(f'<TD ALIGN="LEFT" VALIGN="TOP" BALIGN="LEFT">{c}</TD>' for c in cells) + "</TR></TABLE>")


def plain_labels(plan: Plan) -> dict[str, str]:
    """Every box's and shared-rules box's label, without a patient's path."""
    plain = _Ink(plan, None)
    out = {b.id: _box_label(plain, b) for b in plan.boxes}
    out.update((grp.id, _group_label(plain, grp)) for grp in plan.groups)
    out.update((blk.id, _block_label(plain, blk)) for blk in plan.blocks)
    return out


def box_sizes(plan: Plan, labels: dict[str, str] | None = None) -> dict[str, tuple[float, float]]:
    """Each box's estimated size as `dot` draws it (points): its label (`layout.size`; `labels`
    from `plain_labels`), the node's margins, a terminal state's second border, the start mark
    beside the initial one."""
    labels = plain_labels(plan) if labels is None else labels
    mx, my = (float(v) * 72 for v in NODE_MARGIN.split(","))
    sizes = {}
    for b in plan.boxes:
        w, h = layout.size(labels[b.id])
        extra = 2 * PERIPHERY_GAP if b.kind == "terminal" else 0
        start = START_WIDTH + NODESEP * 72 if b.kind == "initial" else 0
        sizes[b.id] = (w + 2 * mx + extra + start, h + 2 * my + extra)
    for grp in [*plan.groups, *plan.blocks]:
        w, h = layout.size(labels[grp.id])
        sizes[grp.id] = (w + 2 * mx, h + 2 * my)
    return sizes


def arrangement(plan: Plan, labels: dict[str, str] | None = None) -> layout.Arrangement:
    """The rows and the key's place and shape that draw `plan` largest on the page (see
    `layout`), from the chart without a patient's path (`labels`: `plain_labels`): a trace
    never moves a box."""
    plain = _Ink(plan, None)
    header = layout.size(_header_label(plan, plain))
    keys = [layout.size(_key_label(plan, plain, n)) for n in KEY_COLUMNS]
    page = tuple(float(v) * 72 for v in PAGE_SIZE.split(","))
    return layout.arrange(plan.order, box_sizes(plan, labels), header, keys, page, (NODESEP * 72, RANKSEP * 72))


def digraph(plan: Plan, overlay: Overlay | None = None) -> graphviz.Digraph:
    """The flowchart as a graphviz.Digraph (its `.source` is the DOT text)."""
    ink = _Ink(plan, overlay)
    plain = plain_labels(plan)  # the labels without a path: they size the boxes
    dot = graphviz.Digraph(name=plan.name or "protocol")
    dot.attr(
        "graph",
        label=_header_label(plan, ink),  # the title block and the legend: above the chart
        labelloc="t",
        labeljust="l",
        fontname=FONT,
        rankdir="TB",
        newrank="true",
        splines="polyline",  # straight runs around the boxes: fewer crossings than curves (bench_render.py)
        nodesep=f"{NODESEP:g}",
        ranksep=f"{RANKSEP:g}",
        size=PAGE_SIZE,
        pad="0.15",
        margin="0",
        bgcolor="white",
    )
    dot.attr("node", fontname=FONT, fontcolor=INK, color=INK, margin=NODE_MARGIN)
    dot.attr("edge", fontname=FONT, color=INK, arrowsize="0.8")

    def box(b: Box, into=None) -> None:
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
            label=_box_label(ink, b) if ink.tracing else plain[b.id],
        )
        if b.kind == "terminal":
            attrs["peripheries"] = "2"
        if ink.tracing and on:
            attrs.update(color=PATH, penwidth=f"{max(pen, 3):g}")
        elif ink.tracing:
            attrs.update(color=FADED_LINE)
        if b.type in ("compound", "parallel"):  # the state's own rules, heading its frame
            attrs.update(style="filled,rounded", fillcolor="#ffffff" if not ink.tracing or on else _fade("#ffffff"))
        (into if into is not None else dot).node(b.id, **attrs)

    if plan.clusters:
        _statechart(dot, plan, ink, plain, box)
        return dot
    for b in plan.boxes:
        box(b)
    for grp in plan.groups:
        on = ink.rules_on(k for d in grp.decisions for r in d.rows for k in r.rules)
        dot.node(grp.id, id=grp.id, shape="box", style="dashed,rounded,filled", fillcolor="#ffffff",
                 color=PATH if ink.tracing and on else FADED_LINE if ink.tracing else "#555555",
                 penwidth="1.4", label=_group_label(ink, grp) if ink.tracing else plain[grp.id])
    for blk in plan.blocks:
        _block_node(dot, ink, plain, blk)
    initial = next((b for b in plan.boxes if b.kind == "initial"), None)
    if initial is not None:
        color = PATH if ink.tracing else INK
        dot.node("__start__", id="start", label="", shape="circle", style="filled", fillcolor=color, color=color,
                 width=f"{START_WIDTH / 72:g}", fixedsize="true")
        dot.edge("__start__", initial.id, id="start_arrow", color=color, penwidth="2.5" if ink.tracing else "1.2")

    # rows: each a rank, in order; the rules' arrows do not move boxes between rows
    arr = arrangement(plan, plain)
    rows = [list(row) for row in arr.rows]
    if arr.key_in_row and rows:
        rows[-1].append("__key__")
    for i, row in enumerate(rows):
        if initial is not None and initial.id in row:  # the start mark beside the initial state
            row = row[: row.index(initial.id)] + ["__start__"] + row[row.index(initial.id) :]
        with dot.subgraph(name=f"row_{i}") as rg:
            rg.attr(rank="same")
            for node in row:
                rg.node(node)
            for left, right in zip(row, row[1:]):  # in reading order, left to right
                rg.edge(left, right, style="invis")
    for upper, lower in zip(rows, rows[1:]):
        dot.edge(upper[0], lower[0], style="invis", weight="10")
    # definitions, orders and references: under the chart, or at the end of its last row
    dot.node("__key__", id="key", shape="plaintext", margin="0", label=_key_label(plan, ink, KEY_COLUMNS[arr.key]))
    if rows and not arr.key_in_row:
        dot.edge(rows[-1][len(rows[-1]) // 2], "__key__", style="invis", weight="10")

    column = {node: i for row in rows for i, node in enumerate(row)}
    shared = {grp.id for grp in plan.groups} | {blk.id for blk in plan.blocks}
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


CHAIN_WEIGHT = "0"  # ranks in order; no pull between their first boxes (frames place them)

CLUSTER_STYLE = {  # frame style per kind: a compound state, a parallel state, a track
    "compound": dict(style="rounded", color="#555555", penwidth="1.4"),
    "parallel": dict(style="rounded,bold", color="#333333", penwidth="2"),
    "track": dict(style="dashed,rounded", color="#777777", penwidth="1.2"),
}


def _cluster_label(c: Cluster, plan: Plan) -> str:
    """A frame's title: "Track: Neutrophils" over a track; a compound or parallel state is
    named by its own box at the top of its frame, the frame says what kind it is."""
    if c.kind == "track":
        return _label(f'<TABLE BORDER="0" CELLPADDING="0" CELLSPACING="0"><TR><TD ALIGN="LEFT">'
                      f'{_font("<B>Track: " + esc(c.title) + "</B>", 10, INK)} {_font(esc(c.state), 7.5, MUTED)}</TD></TR></TABLE>')
    what = "parallel state: its tracks run side by side" if c.kind == "parallel" else "compound state"
    return _label(f'<TABLE BORDER="0" CELLPADDING="0" CELLSPACING="0"><TR><TD ALIGN="LEFT">'
                  f'{_font("<I>" + esc(c.state + " · " + what) + "</I>", 8, MUTED)}</TD></TR></TABLE>')


def nested_arrangement(plan: Plan, labels: dict[str, str] | None = None) -> layout.Nested:
    """`arrangement` for a chart with clusters: the rows inside every cluster too."""
    plain = _Ink(plan, None)
    header = layout.size(_header_label(plan, plain))
    keys = [layout.size(_key_label(plan, plain, n)) for n in KEY_COLUMNS]
    page = tuple(float(v) * 72 for v in PAGE_SIZE.split(","))
    kinds = {c.id: c.kind for c in plan.clusters}
    widths = {c.id: layout.size(_cluster_label(c, plan))[0] for c in plan.clusters}
    return layout.arrange_nested(plan.tree, kinds, box_sizes(plan, labels), header, keys, page,
                                 (NODESEP * 72, RANKSEP * 72), widths)


def _statechart(dot: graphviz.Digraph, plan: Plan, ink: _Ink, plain: dict, box) -> None:
    """The boxes of a statechart inside their frames (compound states, parallel states with
    their tracks side by side), each frame's rows of boxes, the rows aligned across frames
    (one rank each), then the arrows."""
    nd = nested_arrangement(plan, plain)
    clusters = {c.id: c for c in plan.clusters}
    boxes = {b.id: b for b in plan.boxes}
    across = NODESEP * 72
    rank: dict[str, int] = {}
    xs: dict[str, float] = {}

    def place(item: str, r: int, x: float) -> int:
        """Ranks from `r` for `item` at `x` (points from the left); returns the ranks it takes."""
        if item in clusters:
            rr = r
            for row in nd.rows.get(item, ()):
                xx = x + layout.CLUSTER_PAD[0]
                depth = 1
                for it in row:
                    depth = max(depth, place(it, rr, xx))
                    xx += nd.sizes[it][0] + across
                rr += depth
            return max(1, rr - r)
        rank[item] = r
        xs[item] = x + nd.sizes[item][0] / 2
        return 1

    top = [list(row) for row in nd.rows[""]]
    r = 0
    for row in top:
        x, depth = 0.0, 1
        host = r  # the rank of the boxes beside a cluster: its tallest row, which they then do not stretch
        for i, it in enumerate(row):
            if i and row[0] in clusters:
                d = place(it, host, x)
            else:
                d = place(it, r, x)
                if it in clusters:
                    heights: dict[int, float] = {}
                    for n, rk in rank.items():
                        if r <= rk < r + d:
                            heights[rk] = max(heights.get(rk, 0.0), nd.sizes[n][1])
                    host = max(heights, key=lambda k: (heights[k], k)) if heights else r
            depth = max(depth, d)
            x += nd.sizes[it][0] + across
        if (row is top[-1] and nd.key_in_row) or (row is top[0] and nd.key_first):
            rank["__key__"], xs["__key__"] = r, x + 1
        r += depth
    if "__key__" not in rank:
        rank["__key__"], xs["__key__"] = r, 0.0

    def fill(g, cid: str) -> None:
        c = clusters[cid]
        with g.subgraph(name=cid) as sg:
            sg.attr(label=_cluster_label(c, plan), labeljust="l", labelloc="t", fontname=FONT, margin="8",
                    id=cid, **CLUSTER_STYLE[c.kind])
            for it in plan.tree.get(cid, ()):
                if it in clusters:
                    fill(sg, it)
                elif it in boxes:
                    box(boxes[it], sg)

    for it in plan.tree[""]:
        if it in clusters:
            fill(dot, it)
        elif it in boxes:
            box(boxes[it])
    for grp in plan.groups:
        on = ink.rules_on(k for d in grp.decisions for r_ in d.rows for k in r_.rules)
        dot.node(grp.id, id=grp.id, shape="box", style="dashed,rounded,filled", fillcolor="#ffffff",
                 color=PATH if ink.tracing and on else FADED_LINE if ink.tracing else "#555555",
                 penwidth="1.4", label=_group_label(ink, grp) if ink.tracing else plain[grp.id])
    for blk in plan.blocks:
        _block_node(dot, ink, plain, blk)
    initial = next((b for b in plan.boxes if b.kind == "initial" and b.parent is None), None)
    if initial is not None and initial.id in rank:
        color = PATH if ink.tracing else INK
        dot.node("__start__", id="start", label="", shape="circle", style="filled", fillcolor=color, color=color,
                 width=f"{START_WIDTH / 72:g}", fixedsize="true")
        dot.edge("__start__", initial.id, id="start_arrow", color=color, penwidth="2.5" if ink.tracing else "1.2")
        rank["__start__"], xs["__start__"] = rank[initial.id], xs[initial.id] - nd.sizes[initial.id][0] / 2 - 1
    dot.node("__key__", id="key", shape="plaintext", margin="0", label=_key_label(plan, ink, KEY_COLUMNS[nd.key]))

    # one rank per row, the rows of every frame aligned; left to right as placed
    by_rank: dict[int, list[str]] = {}
    for n, rk in rank.items():
        by_rank.setdefault(rk, []).append(n)
    for rk in sorted(by_rank):
        row = sorted(by_rank[rk], key=lambda n: xs[n])
        with dot.subgraph(name=f"rank_{rk}") as rg:
            rg.attr(rank="same")
            for n in row:
                rg.node(n)
        for left, right in zip(row, row[1:]):
            dot.edge(left, right, style="invis")
    ranks = sorted(r_ for r_ in by_rank if by_rank[r_] != ["__key__"])
    for upper, lower in zip(ranks, ranks[1:]):
        a = min(by_rank[upper], key=lambda n: xs[n])
        b = min(by_rank[lower], key=lambda n: xs[n])
        dot.edge(a, b, style="invis", weight=CHAIN_WEIGHT)
    if by_rank.get(rank["__key__"]) == ["__key__"] and ranks:  # the key under the middle of the last row
        last = sorted(by_rank[ranks[-1]], key=lambda n: xs[n])
        dot.edge(last[len(last) // 2], "__key__", style="invis", weight="10")

    dashed = {grp.id for grp in plan.groups} | {blk.id for blk in plan.blocks}
    for a in plan.arrows:
        attrs = {"id": a.id, "constraint": "false"}
        side = "w" if xs.get(a.head, 0) < xs.get(a.tail, 0) else "e"
        if a.tail in dashed:
            attrs["style"] = "dashed"
        if ink.tracing and ink.rules_on(a.rules):
            attrs.update(color=PATH, penwidth="3")
        elif ink.tracing:
            attrs.update(color=FADED_LINE)
        dot.edge(f"{a.tail}:{a.port}_{side}:{side}", a.head, **attrs)


def _block_node(dot: graphviz.Digraph, ink: _Ink, plain: dict, blk) -> None:
    """A rule block's box: dashed, square corners (a shared-rules box has round ones)."""
    on = ink.rules_on(k for d in blk.decisions for r_ in d.rows for k in r_.rules + [x for a in r_.alternatives for x in a.rules])
    dot.node(blk.id, id=blk.id, shape="box", style="dashed,filled", fillcolor="#ffffff",
             color=PATH if ink.tracing and on else FADED_LINE if ink.tracing else "#555555",
             penwidth="1.4", label=_block_label(ink, blk) if ink.tracing else plain[blk.id])
