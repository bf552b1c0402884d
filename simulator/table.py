"""The trace as a table for a person (`rxwatch simulate --format table`).

One row per step, in order (the state is named where it is entered). A day's results show as
its `panel` step: each value with its unit and its exact multiple of the ULN, where it came
from an earlier day (a lookback) or a time of day, and the results a later one of the same
day replaced. Clinical events, fact changes and recorded choices show where the replay read
them. The date is printed when it changes. Deviations (`OVERDUE`, `STILL OVERDUE`,
`INCOMPLETE`) and `UNASSESSABLE` steps (no rule could decide because results were missing)
stand out; a summary under the table gives the final state, the orders still open, the
counts and any warnings.

Statecharts (v3): a `track` column when the protocol has tracks; the values a decision read
(`read tx = 4.5, dose(tocilizumab) = 8`), the alternative a choice took and the rules a wider
transition preempted, on the transition; `set` steps (`dose_modified = true`); a drug action's
effect (`tocilizumab held by neutrophils, dose 8 mg/kg`); citations with their locators in the
sources column (`actemra-us-pi "Table 2"`); under the table, the active states and the drugs.

Above `PLAIN_ROWS` rows (a replay of years, tens of thousands of steps) the table is printed as
plain aligned text, one line per row (Rich lays out a table at about 0.35 ms a row: 14 s for
40,000 rows; the plain text takes well under a second): the same rows and cells, no wrapping.

Numbers are shown exactly: whole numbers and finite decimals as they are, with thousands
separators (`1,234,567.25`), never in scientific notation; a value without a finite decimal
expansion (a ratio such as 100/33) as its fraction and a rounded decimal (`100/33 ≈ 3.03`).
A trace's JSON numbers are read with their exact text (`"value_exact": "12/5"`, or
`"exact"`) when the step has one.
"""

from __future__ import annotations

import io
from decimal import Decimal, localcontext
from fractions import Fraction
from typing import Any, Iterable, Mapping

from rich import box
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from rxwatch.compiler.diagnostics import sanitize

from rxwatch.inputs.model import Choice, ClinicalEvent, FactChange

__all__ = ["exact_text", "render", "to_text", "PLAIN_ROWS"]

PLAIN_ROWS = 2000
"""Above this many rows, the table is plain aligned text (see the module's docstring)."""

_STYLE = {
    "enter": "bold",
    "transition": "cyan",
    "action": "green",
    "deviation": "bold red",
    "unassessable": "bold yellow",
    "panel": "",
    "input": "dim",
    "set": "magenta",
}

_DEVIATION = {
    "overdue": "OVERDUE",
    "still_overdue": "STILL OVERDUE",
    "incomplete": "INCOMPLETE",
}


def _text(value: Any, style: str = "") -> Text:
    """A cell: text from a protocol, timeline or trace shown as it is, never read as Rich
    markup (`[red]` stays `[red]`), every control character shown as an escape (`\\x1b`), a
    tab too (`\\t`: a cell would show it as spaces, and an id must read as it is written)."""
    return Text(sanitize(str(value), newlines=False).replace("\t", "\\t"), style=style)


# ---------------------------------------------------------------------------- numbers

def _fraction(v: Any) -> Fraction | None:
    """`v` as an exact Fraction: ints, Fractions and other rationals (gmpy2's mpq) as they
    are; a float as the decimal its repr shows; a text as a decimal or `p/q`."""
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, int):
        return Fraction(v)
    if isinstance(v, Fraction):
        return v
    if isinstance(v, float):
        if v != v or v in (float("inf"), float("-inf")):
            return None
        return Fraction(repr(v))
    if isinstance(v, str):
        try:
            return Fraction(v.strip())
        except (ValueError, ZeroDivisionError):
            return None
    num, den = getattr(v, "numerator", None), getattr(v, "denominator", None)
    if num is not None and den:
        return Fraction(int(num), int(den))
    return None


def _decimal(q: Fraction) -> str | None:
    """`q` as a finite decimal (no exponent), or None when it has none."""
    d = q.denominator
    places = 0
    while d % 10 == 0:
        d //= 10
        places += 1
    while d % 2 == 0 or d % 5 == 0:
        d //= 2 if d % 2 == 0 else 5
        places += 1
    if d != 1:
        return None
    scaled = abs(q.numerator) * 10 ** places // q.denominator
    text = f"{scaled:,}" if not places else f"{scaled // 10 ** places:,}.{scaled % 10 ** places:0{places}d}"
    return ("-" if q < 0 else "") + text


def exact_text(v: Any, exact: str | None = None) -> str:
    """A number for a person: exact, thousands separated, never in scientific notation.
    `exact`, when given, is the value's exact text (from a trace) and wins over `v`."""
    q = _fraction(exact) if exact else None
    if q is None:
        q = _fraction(v)
    if q is None:
        return str(v)
    text = _decimal(q)
    if text is not None:
        return text
    with localcontext() as ctx:
        ctx.prec = 3
        approx = Decimal(q.numerator) / Decimal(q.denominator)
    return f"{q.numerator:,}/{q.denominator:,} ≈ {approx:,f}"


def _number(d: Mapping, key: str) -> str | None:
    if d.get(key) is None:
        return None
    exact = d.get(f"{key}_exact") or (d.get("exact") if key == "value" else None)
    return exact_text(d[key], exact)


def _window(w: list[str]) -> str:
    return f"{w[0]}..{w[1]}"


# ---------------------------------------------------------------------------- results

def _result(r: Mapping, labs: Mapping[str, Mapping]) -> str:
    """One result of a `panel` step: `ALT 96 U/L (2.4xULN; own ULN 40) from 2025-02-01 08:30`."""
    decl = labs.get(r.get("lab")) or {}
    unit = r.get("unit", decl.get("unit"))
    text = f"{r.get('lab')} {_number(r, 'value')}" + (f" {unit}" if unit else "")
    multiple = _number(r, "xuln")
    if multiple is None and r.get("uln"):
        q, uln = _fraction(r.get("value_exact") or r.get("exact") or r.get("value")), _fraction(r.get("uln_exact") or r["uln"])
        multiple = exact_text(q / uln) if q is not None and uln else None
    if multiple is not None:
        own = ""
        if r.get("uln") is not None and _fraction(r.get("uln_exact") or r["uln"]) != _fraction(decl.get("uln")):
            own = f"; ULN {_number(r, 'uln')}"
        text += f" ({multiple}xULN{own})"
    earlier, time = r.get("date") or r.get("from"), r.get("time")
    if earlier:  # a result of an earlier day, still valid (`results valid for`)
        text += f" from {earlier}" + (f" {time}" if time else "")
    elif time:
        text += f" at {time}"
    return text


def _results(results: Iterable[Mapping], labs: Mapping[str, Mapping]) -> str:
    return ", ".join(_result(r, labs) for r in results)


def _panel_inputs(results: Iterable[Any], labs: Mapping[str, Mapping]) -> str:
    """A panel as the replay read it (LabResults, for a trace without `panel` steps)."""
    parts = []
    for r in results:
        decl = labs.get(r.lab) or {}
        unit = decl.get("unit")
        uln = r.uln if r.uln is not None else decl.get("uln")
        text = f"{r.lab} {exact_text(r.value)}" + (f" {unit}" if unit else "")
        q, u = _fraction(r.value), _fraction(uln)
        if q is not None and u:
            own = f"; ULN {exact_text(u)}" if r.uln is not None and u != _fraction(decl.get("uln")) else ""
            text += f" ({exact_text(q / u)}xULN{own})"
        if getattr(r, "time", None):
            text += f" at {r.time}"
        parts.append(text)
    return ", ".join(parts)


def _input_row(item: Any, labs: Mapping[str, Mapping]) -> tuple[str, str, str]:
    if isinstance(item, tuple):
        return item[0].date.isoformat(), "panel", _panel_inputs(item, labs)
    if isinstance(item, ClinicalEvent):
        return item.date.isoformat(), "event", item.event
    if isinstance(item, FactChange):
        v = item.value
        shown = ("true" if v else "false") if isinstance(v, bool) else (str(v) if isinstance(v, str) else exact_text(v))
        return item.date.isoformat(), "fact", f"{item.fact} = {shown}"
    if isinstance(item, Choice):
        return item.date.isoformat(), "choice", f"the clinician chose {item.action}"
    return "", "input", str(item)


# ---------------------------------------------------------------------------- steps

def _value(values: Mapping, key: str) -> str:
    """A value a decision read: a number exactly, true/false, a name, unknown."""
    v = values.get(key)
    if v is None:
        return "unknown"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str) and _fraction(v) is None:
        return v
    return _number(values, key) or str(v)


def _read(s: Mapping) -> str:
    values = s.get("values")
    if not isinstance(values, Mapping) or not values:
        return ""
    shown = [f"{k} = {_value(values, k)}" for k in values if not str(k).endswith("_exact")]
    return "; read " + ", ".join(shown) if shown else ""


def _sources(s: Mapping) -> str:
    """The sources column: each citation with its locator (`actemra-us-pi "Table 2"`) when the
    step has `citations`, else the source ids."""
    citations = s.get("citations")
    if isinstance(citations, list) and citations:
        return ", ".join(f'{c.get("source")} "{c["locator"]}"' if isinstance(c, Mapping) and c.get("locator")
                         else str(c.get("source") if isinstance(c, Mapping) else c) for c in citations)
    return ", ".join(str(x) for x in s.get("sources", ()))


def _dose(drug: Mapping, decl: Mapping) -> str:
    dose = drug.get("dose")
    if dose is None:
        return ""
    if isinstance(dose, str) and _fraction(dose) is None:  # a named level, with its label
        levels, labels = decl.get("doses") or [], decl.get("labels") or []
        label = labels[levels.index(dose)] if dose in levels and levels.index(dose) < len(labels) else None
        return f", dose {dose}" + (f" ({label})" if label else "")
    unit = decl.get("unit")
    return f", dose {_number(drug, 'dose')}" + (f" {unit}" if unit else "")


def _drug(drug: Any, drugs: Mapping[str, Mapping]) -> str:
    """A drug action's effect: `tocilizumab held by liver, neutrophils, dose 8 mg/kg`."""
    if not isinstance(drug, Mapping):
        return ""
    name = str(drug.get("name", ""))
    status = str(drug.get("status", "")).replace("_", " ")
    held_by = [str(t) for t in drug.get("held_by") or () if t is not None]
    by = f" by {', '.join(held_by)}" if held_by and drug.get("status") == "held" else ""
    return f"{name} {status}{by}{_dose(drug, drugs.get(name) or {})}"


def _step_row(s: Mapping[str, Any], descriptions: Mapping[str, str], labs: Mapping[str, Mapping],
              drugs: Mapping[str, Mapping] | None = None) -> tuple[str, str, str, str]:
    """(state, what, details, sources) of one step."""
    t = s.get("type")
    if t == "enter":
        details = s["state"]
        if descriptions.get(s["state"]):
            details += f": {descriptions[s['state']]}"
        if s.get("withdrawn"):
            details += "; orders withdrawn: " + ", ".join(s["withdrawn"])
        return s["state"], "enter", details, ""
    if t == "panel":
        details = _results(s.get("results") or (), labs) or "no results"
        if s.get("replaced"):
            details += "; replaced by a later result of the day: " + _results(s["replaced"], labs)
        return "", "panel", details, ""
    if t == "transition":
        guard = s.get("because") or "otherwise"
        on = s.get("trigger", "")
        if s.get("event"):
            on += f" {s['event']}"
        elif s.get("fact"):
            on += f" {s['fact']}"
        what = f"stay in {s['from']}" if s.get("stay") else f"{s['from']} -> {s['to']}"
        details = f"{what} on {on}: {guard}"
        if s.get("drug"):  # an event that stops the drug
            details += "; " + _drug(s["drug"], drugs or {})
        if s.get("alternative"):
            details += f"; chose {s['alternative']}"
        details += _read(s)
        if s.get("preempted"):
            details += "; preempted: " + ", ".join(str(r) for r in s["preempted"])
        if s.get("withdrawn"):
            details += "; orders withdrawn: " + ", ".join(str(w) for w in s["withdrawn"])
        if s.get("replaced"):
            details += "; replaced by a later result of the day: " + _results(s["replaced"], labs)
        return "", "transition", details, _sources(s)
    if t == "unassessable":
        on = s.get("trigger", "")
        if s.get("event") or s.get("fact"):
            on += f" {s.get('event') or s.get('fact')}"
        missing = s.get("missing") or []
        details = (f"no rule of {s.get('state', '')} on {on} could decide"
                   + (f": no result for {', '.join(missing)}" if missing else "")
                   + "; nothing done, orders unchanged") + _read(s)
        if s.get("replaced"):
            details += "; replaced by a later result of the day: " + _results(s["replaced"], labs)
        return "", "UNASSESSABLE", details, ""
    if t == "action":
        details = s["action"]
        if s.get("options"):
            others = [o for o in s["options"] if o != s["action"]]
            details += f" (alternatives: {', '.join(others)})" if others else ""
            if s.get("preferred"):
                details += ", the preferred option (no choice recorded)"
        if s.get("window"):
            details += f" due {_window(s['window'])}"
        if s.get("repeat"):
            details += " (repeats: the last one was fulfilled)"
        if s.get("drug"):
            details += "; " + _drug(s["drug"], drugs or {})
        return "", "action", details, _sources(s)
    if t == "set":
        value = s.get("value")
        shown = _value(s, "value") if value is not None or "value" in s else "unknown"
        return "", "set", f"{s.get('var')} = {shown}", ""
    if t == "deviation":
        kind = s.get("kind", "deviation")
        action, window = s.get("action"), _window(s["window"]) if s.get("window") else "?"
        if kind == "still_overdue":
            details = f"{action}: still no result; it was due {window}"
        elif kind == "incomplete":
            missing = s.get("missing") or []
            details = f"{action}: results came, but not the ones that fulfil the order"
            details += f" (missing {', '.join(missing)})" if missing else ""
            details += f"; due {window}"
        else:
            details = f"{action}: no result within {window}"
        if s.get("ordered"):
            details += f" (ordered {s['ordered']})"
        return "", _DEVIATION.get(kind, kind.upper().replace("_", " ")), details, ""
    return "", str(t), "", ""


def _has_tracks(trace: Mapping[str, Any], graph) -> bool:
    if graph is not None and any(d.get("type") == "track" for _, d in graph.nodes(data=True)):
        return True
    return any(s.get("track") for s in trace.get("steps", ()))


def _rows(trace: Mapping[str, Any], graph, inputs: list | None) -> Iterable[tuple[str, str, str, str, str, str, str]]:
    """Every row: (date shown, step, track, details, sources, line, style); the date is shown
    when it changes."""
    g = graph.graph if graph is not None else {}
    labs = g.get("labs") or {}
    drugs = g.get("drugs") or {}
    descriptions = {}
    if graph is not None:
        descriptions = {n: d.get("description") or "" for n, d in graph.nodes(data=True)}
    steps = trace.get("steps", [])
    has_panels = any(s.get("type") == "panel" for s in steps)
    by_index: dict[int, list] = {}
    for index, item in inputs or ():
        if has_panels and isinstance(item, tuple):
            continue  # the trace's own panel steps show the results
        by_index.setdefault(index, []).append(item)
    shown_date = None

    def date_cell(day: str) -> str:
        nonlocal shown_date
        if day == shown_date:
            return ""
        shown_date = day
        return day

    for i in range(len(steps) + 1):
        for item in by_index.get(i, ()):
            day, what, details = _input_row(item, labs)
            yield date_cell(day), what, "", details, "", "", _STYLE["input"]
        if i == len(steps):
            break
        s = steps[i]
        _, what, details, sources = _step_row(s, descriptions, labs, drugs)
        line = s.get("line")
        yield (date_cell(str(s.get("date", ""))), what, str(s.get("track") or ""), details, sources,
               "" if line in (None, "", 0) else str(line), _STYLE.get(s.get("type"), ""))


def _title(trace: Mapping[str, Any]) -> str:
    proto = trace.get("protocol") or {}
    title = f"{proto.get('name', '')} {proto.get('version', '')}".strip()
    return f"{title}: patient {trace.get('patient', '')}, {trace.get('start')} to {trace.get('until')}"


def _count_rows(trace: Mapping[str, Any], inputs: list | None) -> int:
    return len(trace.get("steps", ())) + len(inputs or ())


def render(trace: Mapping[str, Any], graph=None, inputs: list | None = None) -> Group:
    """The table and its summary, as a rich renderable (plain aligned text above PLAIN_ROWS rows)."""
    tracks = _has_tracks(trace, graph)
    if _count_rows(trace, inputs) > PLAIN_ROWS:
        return Group(_Lines(_plain(trace, graph, inputs, tracks)), _summary(trace, graph))
    table = Table(title=_text(_title(trace)), box=box.SIMPLE_HEAD, show_lines=False, expand=True)
    table.add_column("date", no_wrap=True)
    table.add_column("step", no_wrap=True)
    if tracks:
        table.add_column("track", no_wrap=True)
    table.add_column("details", overflow="fold", ratio=2)
    table.add_column("sources", overflow="fold", ratio=1, min_width=20)
    table.add_column("line", justify="right", no_wrap=True)
    for day, what, track, details, sources, line, style in _rows(trace, graph, inputs):
        cells = [_text(day), _text(what, style), *([_text(track)] if tracks else []), _text(details, style),
                 _text(sources), _text(line)]
        table.add_row(*cells)
    return Group(table, _summary(trace, graph))


class _Lines:
    """Text printed as it is, line by line: no measuring, wrapping or markup (a Rich `Text` of
    40,000 lines takes seconds to lay out)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __rich_console__(self, console, options):
        from rich.segment import Segment

        for line in self.text.splitlines():
            yield Segment(line)
            yield Segment.line()


def _clean(value: str) -> str:
    return sanitize(value, newlines=False).replace("\t", "\\t")


def _plain(trace: Mapping[str, Any], graph, inputs: list | None, tracks: bool) -> str:
    """The rows as plain aligned text: date, step, [track,] line, then details and sources (the
    two long cells last, unwrapped)."""
    rows = [(_clean(d), _clean(w), _clean(t), _clean(x), _clean(src), ln)
            for d, w, t, x, src, ln, _ in _rows(trace, graph, inputs)]
    wd = max([4, *(len(r[0]) for r in rows)])
    ws = max([4, *(len(r[1]) for r in rows)])
    wt = max([5, *(len(r[2]) for r in rows)]) if tracks else 0
    wl = max([4, *(len(r[5]) for r in rows)])
    head = f"{'date':<{wd}}  {'step':<{ws}}  " + (f"{'track':<{wt}}  " if tracks else "") + f"{'line':>{wl}}  details [sources]"
    out = [_clean(_title(trace)), head, "-" * len(head)]
    append = out.append
    for d, w, t, x, src, ln in rows:
        append((f"{d:<{wd}}  {w:<{ws}}  " + (f"{t:<{wt}}  " if tracks else "") + f"{ln:>{wl}}  {x}"
                + (f"  [{src}]" if src else "")).rstrip())
    return "\n".join(out) + "\n"


def _summary(trace: Mapping[str, Any], graph=None) -> Text:
    g = graph.graph if graph is not None else {}
    steps = trace.get("steps", [])
    summary = Text()
    summary.append("final state: ", style="bold")
    summary.append(_text(trace.get("final_state", "")))
    active = trace.get("final_states") or []
    if len(active) > 1 or (active and active[0] != trace.get("final_state")):
        summary.append(_text(f" (active: {', '.join(str(a) for a in active)})"))
    drugs = trace.get("drugs") or {}
    if drugs:
        summary.append("\ndrugs: ", style="bold")
        summary.append(_text("; ".join(_drug({"name": name, **d}, g.get("drugs") or {})
                                       for name, d in drugs.items() if isinstance(d, Mapping))))
    orders = trace.get("open_orders") or []
    summary.append("\nopen orders: ", style="bold")
    if orders:
        summary.append(_text("; ".join(
            f"{o['action']} due {_window(o['window'])}" + (f" in track {o['track']}" if o.get("track") else "")
            + (" (overdue)" if o.get("overdue") else "") for o in orders)))
    else:
        summary.append("none")
    kinds: dict[str, int] = {}
    for s in steps:
        if s.get("type") == "deviation":
            kinds[s.get("kind", "deviation")] = kinds.get(s.get("kind", "deviation"), 0) + 1
    deviations = sum(kinds.values())
    summary.append("\ndeviations: ", style="bold")
    summary.append(str(deviations), style="bold red" if deviations else "")
    if len(kinds) > 1 or (kinds and "overdue" not in kinds):
        summary.append(_text(" (" + ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in kinds.items()) + ")"))
    unassessable = sum(1 for s in steps if s.get("type") == "unassessable")
    if unassessable:
        summary.append("\nunassessable: ", style="bold")
        summary.append(f"{unassessable} (results missing: no rule could decide)", style="bold yellow")
    for w in trace.get("warnings") or ():
        where = f"timeline line {w.get('line')}" if w.get("line") else f"{w.get('date', '')}"
        summary.append("\n")
        summary.append(_text(f"warning ({where}): {w.get('message')}", "yellow"))
    return summary


def to_text(trace: Mapping[str, Any], graph=None, inputs: list | None = None, *, width: int = 120,
            color: bool = False) -> str:
    """The table as text (ANSI colours only when `color`), for a file or a pipe."""
    if _count_rows(trace, inputs) > PLAIN_ROWS and not color:
        buf = io.StringIO()
        Console(file=buf, width=width, no_color=True, color_system=None, highlight=False,
                soft_wrap=False).print(_summary(trace, graph))
        return _plain(trace, graph, inputs, _has_tracks(trace, graph)) + "\n" + buf.getvalue()
    buf = io.StringIO()
    console = Console(file=buf, width=width, force_terminal=color, color_system="standard" if color else None,
                      no_color=not color, highlight=False, soft_wrap=False)
    console.print(render(trace, graph, inputs))
    return buf.getvalue()
