"""The trace as a table for a person (`rxwatch simulate --format table`).

One row per step, in order (the state is named where it is entered). A day's results show as
its `panel` step: each value with its unit and its exact multiple of the ULN, where it came
from an earlier day (a lookback) or a time of day, and the results a later one of the same
day replaced. Clinical events, fact changes and recorded choices show where the replay read
them. The date is printed when it changes. Deviations (`OVERDUE`, `STILL OVERDUE`,
`INCOMPLETE`) and `UNASSESSABLE` steps (no rule could decide because results were missing)
stand out; a summary under the table gives the final state, the orders still open, the
counts and any warnings.

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

from .timeline import Choice, ClinicalEvent, FactChange

__all__ = ["exact_text", "render", "to_text"]

_STYLE = {
    "enter": "bold",
    "transition": "cyan",
    "action": "green",
    "deviation": "bold red",
    "unassessable": "bold yellow",
    "panel": "",
    "input": "dim",
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

def _step_row(s: Mapping[str, Any], descriptions: Mapping[str, str], labs: Mapping[str, Mapping]) -> tuple[str, str, str, str]:
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
        if s.get("replaced"):
            details += "; replaced by a later result of the day: " + _results(s["replaced"], labs)
        return "", "transition", details, ", ".join(s.get("sources", ()))
    if t == "unassessable":
        on = s.get("trigger", "")
        if s.get("event") or s.get("fact"):
            on += f" {s.get('event') or s.get('fact')}"
        missing = s.get("missing") or []
        details = (f"no rule of {s.get('state', '')} on {on} could decide"
                   + (f": no result for {', '.join(missing)}" if missing else "")
                   + "; nothing done, orders unchanged")
        if s.get("replaced"):
            details += "; replaced by a later result of the day: " + _results(s["replaced"], labs)
        return "", "UNASSESSABLE", details, ""
    if t == "action":
        details = s["action"]
        if s.get("options"):
            others = [o for o in s["options"] if o != s["action"]]
            details += f" (alternatives: {', '.join(others)})" if others else ""
        if s.get("window"):
            details += f" due {_window(s['window'])}"
        return "", "action", details, ", ".join(s.get("sources", ()))
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


def render(trace: Mapping[str, Any], graph=None, inputs: list | None = None) -> Group:
    """The table and its summary, as a rich renderable."""
    g = graph.graph if graph is not None else {}
    labs = g.get("labs") or {}
    descriptions = {}
    if graph is not None:
        descriptions = {n: d.get("description") or "" for n, d in graph.nodes(data=True)}
    proto = trace.get("protocol") or {}
    title = f"{proto.get('name', '')} {proto.get('version', '')}".strip()
    table = Table(
        title=_text(f"{title}: patient {trace.get('patient', '')}, {trace.get('start')} to {trace.get('until')}"),
        box=box.SIMPLE_HEAD, show_lines=False, expand=True,
    )
    table.add_column("date", no_wrap=True)
    table.add_column("step", no_wrap=True)
    table.add_column("details", overflow="fold", ratio=2)
    table.add_column("sources", overflow="fold", ratio=1, min_width=20)
    table.add_column("line", justify="right", no_wrap=True)

    steps = trace.get("steps", [])
    has_panels = any(s.get("type") == "panel" for s in steps)
    by_index: dict[int, list] = {}
    for index, item in inputs or ():
        if has_panels and isinstance(item, tuple):
            continue  # the trace's own panel steps show the results
        by_index.setdefault(index, []).append(item)
    shown_date = None

    def date_cell(day: str) -> Text:
        nonlocal shown_date
        if day == shown_date:
            return Text("")
        shown_date = day
        return _text(day)

    for i in range(len(steps) + 1):
        for item in by_index.get(i, ()):
            day, what, details = _input_row(item, labs)
            table.add_row(date_cell(day), _text(what, _STYLE["input"]),
                          _text(details, _STYLE["input"]), "", "")
        if i == len(steps):
            break
        s = steps[i]
        _, what, details, sources = _step_row(s, descriptions, labs)
        style = _STYLE.get(s.get("type"), "")
        table.add_row(date_cell(s.get("date", "")), _text(what, style), _text(details, style),
                      _text(sources), _text(s.get("line") or ""))

    summary = Text()
    summary.append("final state: ", style="bold")
    summary.append(_text(trace.get("final_state", "")))
    orders = trace.get("open_orders") or []
    summary.append("\nopen orders: ", style="bold")
    if orders:
        summary.append(_text("; ".join(
            f"{o['action']} due {_window(o['window'])}" + (" (overdue)" if o.get("overdue") else "") for o in orders)))
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
    return Group(table, summary)


def to_text(trace: Mapping[str, Any], graph=None, inputs: list | None = None, *, width: int = 120,
            color: bool = False) -> str:
    """The table as text (ANSI colours only when `color`), for a file or a pipe."""
    buf = io.StringIO()
    console = Console(file=buf, width=width, force_terminal=color, color_system="standard" if color else None,
                      no_color=not color, highlight=False, soft_wrap=False)
    console.print(render(trace, graph, inputs))
    return buf.getvalue()
