"""One patient's trace at the audit date -> one row of the audit table (docs/audit.md#the-table).

The row says where the patient is (the active states, the drug's status and dose), what the
pathway waits for (open orders, their windows, days overdue), how care followed it so far
(deviations, orders whose window closed and how many went overdue), the last panel and the
rule it fired, and what needs a clinician now: the `urgency` tier and its reason.
"""

from __future__ import annotations

import datetime
from typing import Any

import pyarrow as pa

# urgency tiers, most urgent first (the worklist's order)
TIERS = ("severe", "unassessable", "overdue", "due", "watch", "routine", "skipped")

COLUMNS = (
    ("patient", pa.string()), ("status", pa.string()), ("urgency", pa.string()), ("reason", pa.string()),
    ("states", pa.string()), ("severity", pa.string()), ("drugs", pa.string()), ("open_orders", pa.string()),
    ("next_due", pa.string()), ("days_overdue", pa.int32()), ("deviations", pa.int32()),
    ("orders_closed", pa.int32()), ("orders_missed", pa.int32()), ("last_panel", pa.string()),
    ("last_grade", pa.string()), ("unassessable", pa.int32()), ("unassessable_missing", pa.string()),
    ("first_date", pa.string()), ("results", pa.int32()), ("problem", pa.string()),
)
SCHEMA = pa.schema(list(COLUMNS))
NAMES = tuple(name for name, _ in COLUMNS)
SEVERITY_RANK = {"severe": 3, "moderate": 2, "mild": 1, "none": 0}
DUE_SOON_DAYS = 7


def urgency_key(row: dict) -> tuple:
    """Sort key of the worklist: tier, then most days overdue, then patient."""
    return (TIERS.index(row["urgency"]), -(row["days_overdue"] or 0), row["patient"])


def skipped_row(patient: str, info: dict) -> dict:
    row = dict.fromkeys(NAMES)
    row.update(patient=patient, status="skipped", urgency="skipped",
               reason=f"{info['where']}: {info['code']}", problem=f"{info['where']}: error[{info['code']}]: {info['message']}")
    return row


_SIBLINGS: dict[int, tuple[Any, dict]] = {}


def siblings(graph) -> dict[str, frozenset]:
    """lab -> the labs ordered together with it by some order action (an unassessable panel
    counts as a result not acted on when it brought one of the labs ordered with a missing one)."""
    cached = _SIBLINGS.get(id(graph))
    if cached is not None and cached[0] is graph:
        return cached[1]
    out: dict[str, set] = {}
    for action in (graph.graph.get("actions") or {}).values():
        labs = set(action.get("orders") or ())
        for lab in labs:
            out.setdefault(lab, set()).update(labs)
    frozen = {k: frozenset(v) for k, v in out.items()}
    _SIBLINGS[id(graph)] = (graph, frozen)
    return frozen


def summarize(trace: dict, as_of: datetime.date, timeline, graph) -> dict:
    today = as_of.isoformat()
    soon = (as_of + datetime.timedelta(days=DUE_SOON_DAYS)).isoformat()
    deviations = 0
    orders_closed = 0
    orders_missed = 0
    last_panel = ""
    decisions: dict = {}  # track -> the last decision step (transition or unassessable)
    panel_steps: list = []
    for step in trace["steps"]:
        kind = step["type"]
        if kind == "action":
            window = step.get("window")
            if window and window[1] < today:
                orders_closed += 1
        elif kind == "deviation":
            deviations += 1
            if step.get("kind") == "overdue":
                orders_missed += 1
        elif kind == "transition" or kind == "unassessable":
            decisions[step.get("track")] = step
            if step.get("trigger") == "panel":
                if step["date"] != last_panel:
                    last_panel = step["date"]
                    panel_steps = []
                panel_steps.append(step)

    nodes = graph.nodes
    states = trace.get("final_states") or [trace["final_state"]]
    severity = max((nodes[s].get("severity") or "none" for s in states if s in nodes), key=SEVERITY_RANK.get, default="none")
    drugs = "; ".join(f"{name} {d['status']}" + (f" {d['dose']}" if d.get("dose") is not None and d["status"] != "not_started" else "")
                      for name, d in (trace.get("drugs") or {}).items())

    opened = []
    days_overdue = 0
    next_due = ""
    for o in trace.get("open_orders") or ():
        start, end = o["window"]
        track = o.get("track")
        opened.append(f"{o['action']}{'@' + track if track else ''} {start}..{end}")
        if end < today:
            days_overdue = max(days_overdue, (as_of - datetime.date.fromisoformat(end)).days)
        if not next_due or start < next_due:
            next_due = start

    pending = []
    sib = siblings(graph)
    for step in decisions.values():
        if step["type"] != "unassessable" or step.get("trigger") != "panel":
            continue
        missing = step.get("missing") or ()
        related = set().union(*(sib.get(lab, {lab}) for lab in missing)) if missing else set()
        day = datetime.date.fromisoformat(step["date"])
        brought = {e.lab for d, events in timeline.days if d == day for e in events if hasattr(e, "lab")}
        if brought & related:
            pending.append(step)

    grade = "; ".join(_grade(s) for s in panel_steps)
    if severity == "severe":
        tier, reason = "severe", f"in {', '.join(s for s in states if nodes[s].get('severity') == 'severe')} ({nodes[_worst(states, nodes)].get('description') or ''})"
    elif pending:
        tier, reason = "unassessable", "; ".join(f"{s['date']} {s['state']}: no {', '.join(s.get('missing') or ())}" for s in pending)
    elif days_overdue:
        late = [o for o in trace.get("open_orders") or () if o["window"][1] < today]
        tier, reason = "overdue", "; ".join(f"{o['action']} {(as_of - datetime.date.fromisoformat(o['window'][1])).days} days overdue" for o in late)
    elif next_due and next_due <= soon:
        tier, reason = "due", f"due from {next_due}"
    elif severity in ("moderate", "mild"):
        tier, reason = "watch", f"{severity}: {', '.join(states)}"
    else:
        tier, reason = "routine", ""
    results = sum(1 for e in timeline.events if hasattr(e, "lab"))
    return {
        "patient": trace["patient"], "status": "ok", "urgency": tier, "reason": reason,
        "states": "; ".join(states), "severity": severity, "drugs": drugs, "open_orders": "; ".join(opened),
        "next_due": next_due, "days_overdue": days_overdue, "deviations": deviations,
        "orders_closed": orders_closed, "orders_missed": orders_missed, "last_panel": last_panel,
        "last_grade": grade, "unassessable": len(pending),
        "unassessable_missing": "; ".join(",".join(s.get("missing") or ()) for s in pending),
        "first_date": trace["start"], "results": results, "problem": "",
    }


def _worst(states, nodes) -> str:
    return max(states, key=lambda s: SEVERITY_RANK.get(nodes[s].get("severity") or "none", 0))


def _grade(step: dict) -> str:
    track = f"{step['track']}: " if step.get("track") else ""
    if step["type"] == "unassessable":
        return f"{track}unassessable (no {', '.join(step.get('missing') or ())})"
    because = step.get("because") or "otherwise"
    move = f"stay in {step['from']}" if step.get("stay") else f"{step['from']} -> {step['to']}"
    return f"{track}{move} ({because}) [{step.get('rule', '')}]"
