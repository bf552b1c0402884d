"""The trace as a table for a person (`rxwatch simulate --format table`).

One row per step, in order (the state is named where it is entered), with the day's inputs (the panel with each value in multiples of
its ULN, clinical events, fact changes, recorded choices) shown where the replay read them.
The date is printed when it changes. Deviations stand out; a summary under the table gives
the final state, the orders still open and any warnings.
"""

from __future__ import annotations

import io
from typing import Any, Iterable, Mapping

from rich import box
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from .timeline import Choice, ClinicalEvent, FactChange

__all__ = ["render", "to_text"]

_STYLE = {
    "enter": "bold",
    "transition": "cyan",
    "action": "green",
    "deviation": "bold red",
    "input": "dim",
}


def _num(v: float) -> str:
    return f"{v:.3g}" if v != int(v) or abs(v) >= 1e6 else f"{int(v)}"


def _window(w: list[str]) -> str:
    return f"{w[0]}..{w[1]}"


def _panel(results: Iterable[Any], labs: Mapping[str, Mapping]) -> str:
    parts = []
    for r in results:
        decl = labs.get(r.lab) or {}
        unit = decl.get("unit")
        uln = r.uln if r.uln is not None else decl.get("uln")
        text = f"{r.lab} {_num(r.value)}" + (f" {unit}" if unit else "")
        if uln:
            text += f" ({r.value / uln:.3g}xULN)"
        parts.append(text)
    return ", ".join(parts)


def _input_row(item: Any, labs: Mapping[str, Mapping]) -> tuple[str, str, str]:
    if isinstance(item, tuple):
        return item[0].date.isoformat(), "panel", _panel(item, labs)
    if isinstance(item, ClinicalEvent):
        return item.date.isoformat(), "event", item.event
    if isinstance(item, FactChange):
        v = item.value
        shown = ("true" if v else "false") if isinstance(v, bool) else (_num(v) if isinstance(v, float) else str(v))
        return item.date.isoformat(), "fact", f"{item.fact} = {shown}"
    if isinstance(item, Choice):
        return item.date.isoformat(), "choice", f"the clinician chose {item.action}"
    return "", "input", str(item)


def _step_row(s: Mapping[str, Any], descriptions: Mapping[str, str]) -> tuple[str, str, str, str]:
    """(state, what, details, sources) of one step."""
    t = s.get("type")
    if t == "enter":
        details = s["state"]
        if descriptions.get(s["state"]):
            details += f": {descriptions[s['state']]}"
        if s.get("withdrawn"):
            details += "; orders withdrawn: " + ", ".join(s["withdrawn"])
        return s["state"], "enter", details, ""
    if t == "transition":
        guard = s.get("because") or "otherwise"
        on = s.get("trigger", "")
        if s.get("event"):
            on += f" {s['event']}"
        elif s.get("fact"):
            on += f" {s['fact']}"
        if s.get("stay"):
            what = f"stay in {s['from']}"
        else:
            what = f"{s['from']} -> {s['to']}"
        return "", "transition", f"{what} on {on}: {guard}", ", ".join(s.get("sources", ()))
    if t == "action":
        details = s["action"]
        if s.get("options"):
            others = [o for o in s["options"] if o != s["action"]]
            details += f" (alternatives: {', '.join(others)})" if others else ""
        if s.get("window"):
            details += f" due {_window(s['window'])}"
        return "", "action", details, ", ".join(s.get("sources", ()))
    if t == "deviation":
        details = f"{s.get('action')}: no result within {_window(s['window'])}"
        if s.get("ordered"):
            details += f" (ordered {s['ordered']})"
        return "", s.get("kind", "deviation").upper(), details, ""
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
        title=f"{title}: patient {trace.get('patient', '')}, {trace.get('start')} to {trace.get('until')}",
        box=box.SIMPLE_HEAD, show_lines=False, expand=True,
    )
    table.add_column("date", no_wrap=True)
    table.add_column("step", no_wrap=True)
    table.add_column("details", overflow="fold", ratio=2)
    table.add_column("sources", overflow="fold", ratio=1, min_width=20)
    table.add_column("line", justify="right", no_wrap=True)

    by_index: dict[int, list] = {}
    for index, item in inputs or ():
        by_index.setdefault(index, []).append(item)
    shown_date = None

    def date_cell(day: str) -> str:
        nonlocal shown_date
        if day == shown_date:
            return ""
        shown_date = day
        return day

    steps = trace.get("steps", [])
    for i in range(len(steps) + 1):
        for item in by_index.get(i, ()):
            day, what, details = _input_row(item, labs)
            table.add_row(date_cell(day), Text(what, style=_STYLE["input"]),
                          Text(details, style=_STYLE["input"]), "", "")
        if i == len(steps):
            break
        s = steps[i]
        _, what, details, sources = _step_row(s, descriptions)
        style = _STYLE.get(s.get("type"), "")
        table.add_row(date_cell(s.get("date", "")), Text(what, style=style), Text(details, style=style),
                      sources, str(s.get("line", "")))

    summary = Text()
    summary.append("final state: ", style="bold")
    summary.append(str(trace.get("final_state", "")))
    orders = trace.get("open_orders") or []
    summary.append("\nopen orders: ", style="bold")
    if orders:
        summary.append("; ".join(
            f"{o['action']} due {_window(o['window'])}" + (" (overdue)" if o.get("overdue") else "") for o in orders))
    else:
        summary.append("none")
    deviations = sum(1 for s in steps if s.get("type") == "deviation")
    summary.append("\ndeviations: ", style="bold")
    summary.append(str(deviations), style="bold red" if deviations else "")
    for w in trace.get("warnings") or ():
        summary.append(f"\nwarning (timeline line {w.get('line')}): {w.get('message')}", style="yellow")
    return Group(table, summary)


def to_text(trace: Mapping[str, Any], graph=None, inputs: list | None = None, *, width: int = 120,
            color: bool = False) -> str:
    """The table as text (ANSI colours only when `color`), for a file or a pipe."""
    buf = io.StringIO()
    console = Console(file=buf, width=width, force_terminal=color, color_system="standard" if color else None,
                      no_color=not color, highlight=False, soft_wrap=False)
    console.print(render(trace, graph, inputs))
    return buf.getvalue()
