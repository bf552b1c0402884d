"""The patient's lab chart: what it shows (one owner), and its matplotlib drawing.

    chart = build(graph, trace)              # the Chart: rows, bands, points, windows, markers, ribbon
    png = draw(chart, "png")                 # matplotlib (Agg), imported only here, only when drawing
    svg = labchart_svg.fragment(chart)       # the viewer's inline SVG, drawn from the same Chart

`build` reads the compiled graph and a trace (contracts/trace.md); the results are the trace's
`panel` steps (`rxwatch simulate --results` writes them; `with_results(trace, inputs, graph)`
adds them to a replay's trace from the results it read). What the chart shows:

- **rows**: each lab as a multiple of its limit, on a log scale. The limit is the lab's declared
  ULN (`uln 40`), else its declared LLN, else the protocol's own limit for that lab: the
  threshold nearest to normal among the comparisons of the lab's value in the rules (the
  highest for a lab the rules watch for low values, `ANC < 1.5`; the lowest for one they watch
  for high values, `INR > 1.5`). Labs with the same limit kind and the same thresholds share a row.
- **bands**: the protocol's thresholds, read from the guards of its rules and the conditions of
  its `if` actions through the expression IR (a `let` is read through its definition, so
  `tx > 3` with `tx = max(xuln(ALT), xuln(AST))` is a band at 3x ULN for ALT and AST). Never a
  number written here: a protocol with other thresholds draws other bands.
- **points**: every result, with the rules its panel fired (or why it decided nothing).
- **windows**: every order's due window (an `action` step with a `window`), overdue ones marked.
- **markers**: the transitions that change state, and the actions that are neither orders nor
  drug changes (those are the windows and the ribbon).
- **ribbon**: each drug's status from the trace's drug records: on, reduced (a dose other
  than the first declared), held, stopped.
"""

from __future__ import annotations

import datetime
import re
import math
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Iterable, Mapping

from rxwatch.compiler import ir

__all__ = ["FORMATS", "Band", "Chart", "Marker", "Point", "Row", "Segment", "Threshold", "Window",
           "PlotError", "build", "draw", "thresholds", "with_results"]

FORMATS = ("png", "svg", "pdf")

# the zones beyond each threshold, from the limit outwards (then the last again)
ZONE_COLOURS = ("#fdf1c7", "#fbd3a0", "#f3a89c", "#e58a8a")
LAB_COLOURS = ("#1f4e9e", "#c2185b", "#2e7d32", "#8a4b08", "#6a1b9a", "#00838f", "#5d4037", "#455a64")
STATUS_COLOURS = {"on": "#7cb87e", "reduced": "#c9dfa3", "held": "#f4b06b", "stopped": "#d9685f"}
STATUS_TEXT = {"on": "on", "reduced": "reduced", "held": "held", "stopped": "stopped"}
WINDOW_COLOUR = "#9fb3d1"
OVERDUE_COLOUR = "#c62828"


# ---------------------------------------------------------------------------- the model

@dataclass(frozen=True)
class Threshold:
    """One comparison of a lab against a number in the protocol: `lab` (value or multiple of
    its ULN, `kind`) `op` `value`, in rule `rule` (or an `if` of it), as written (`text`)."""

    lab: str
    kind: str  # "xuln": a multiple of the ULN; "value": the lab's value in its unit
    op: str  # the lab on the left: "<", "<=", ">", ">=", "==", "!="
    value: Fraction
    rule: str
    text: str
    line: int | None


@dataclass
class Band:
    value: float  # a multiple of the row's limit
    label: str  # "3x ULN", "1.0 10*9/L"
    rules: list[str]  # the conditions that use it, as written, with their rules
    level: int  # 1, 2, ...: the zone beyond it, counted from the limit; 0: no zone (the normal side)


@dataclass
class Row:
    labs: list[str]
    limit: str  # "ULN", "LLN", or the protocol's limit as text ("1.5 10*9/L")
    direction: str  # "high": the rules watch for high values; "low": for low ones
    bands: list[Band]
    lo: float = 0.5
    hi: float = 2.0

    @property
    def title(self) -> str:
        return ", ".join(self.labs)


@dataclass
class Point:
    id: str
    lab: str
    date: datetime.date
    row: int
    multiple: float  # of the row's limit (> 0 always: a value <= 0 is drawn at the bottom, `floor`)
    floor: bool
    text: str  # "ALT 160 U/L, 4x ULN (40 U/L)"
    rules: list[str]  # what its panel did, as lines


@dataclass
class Window:
    order: str
    description: str
    labs: list[str]
    ordered: datetime.date
    opens: datetime.date
    due: datetime.date  # inclusive
    track: str | None
    overdue: datetime.date | None = None  # the day it was flagged overdue
    reminders: list[datetime.date] = field(default_factory=list)  # still overdue, again


@dataclass
class Marker:
    date: datetime.date
    kind: str  # "transition" or "action"
    text: str
    detail: str
    track: str | None


@dataclass
class Segment:
    drug: str
    start: datetime.date
    end: datetime.date  # exclusive
    status: str  # on, reduced, held, stopped
    text: str


@dataclass
class Chart:
    title: str
    patient: str
    start: datetime.date
    end: datetime.date  # exclusive: the day after `until`
    rows: list[Row]
    points: list[Point]
    windows: list[Window]
    orders: list[str]  # the order lanes, in order
    order_labels: dict[str, str]  # their names for a person ("Order a liver panel")
    markers: list[Marker]
    drugs: list[str]
    segments: list[Segment]
    legend: list[str]
    lab_colours: dict[str, str]

    def lab_points(self, lab: str) -> list[Point]:
        return [p for p in self.points if p.lab == lab]


# ---------------------------------------------------------------------------- thresholds

class _Scale(ir.Visitor):
    """What an expression is, for reading thresholds: ("num", q) a constant; ("labs", {lab:
    (kind, factor)}) a value increasing in each lab's value or multiple of ULN (times `factor`);
    None anything else."""

    def __init__(self, lets: Mapping[str, Mapping]):
        self.lets = lets
        self.seen: dict[str, Any] = {}

    def visit_num(self, t):
        try:
            return ("num", Fraction(ir.exact(t["value"])))
        except ir.IRError:
            return None

    def visit_lab(self, t):
        return ("labs", {t["name"]: ("value", Fraction(1))})

    def visit_let(self, t):
        name = t["name"]
        if name not in self.seen:
            self.seen[name] = None  # a cycle reads as nothing
            decl = self.lets.get(name) or {}
            self.seen[name] = self.visit(decl["expr"]) if decl.get("expr") is not None else None
        return self.seen[name]

    def visit_call(self, t):
        func, args = t.get("func"), t.get("args") or []
        if func == "xuln" and args and args[0].get("op") == "lab":
            return ("labs", {args[0]["name"]: ("xuln", Fraction(1))})
        if func in ("max", "min"):
            out: dict = {}
            for a in args:
                s = self.visit(a)
                if s is None or s[0] != "labs":
                    return None
                out.update(s[1])
            return ("labs", out)
        return None

    def _scaled(self, s, k: Fraction):
        if s is None or k <= 0:
            return None
        if s[0] == "num":
            return ("num", s[1] * k)
        return ("labs", {lab: (kind, f * k) for lab, (kind, f) in s[1].items()})

    def visit_mul(self, t):
        a, b = (self.visit(x) for x in t["args"])
        if a and a[0] == "num":
            return self._scaled(b, a[1])
        if b and b[0] == "num":
            return self._scaled(a, b[1])
        return None

    def visit_div(self, t):
        a, b = (self.visit(x) for x in t["args"])
        if b and b[0] == "num" and b[1] > 0:
            return self._scaled(a, 1 / b[1])
        return None

    def _none(self, t):
        return None

    visit_bool = visit_enum = visit_duration = visit_fact = visit_var = visit_action = visit_drug = _none
    visit_since_entry = visit_neg = visit_add = visit_sub = visit_compare = visit_in = _none
    visit_not = visit_and = visit_or = _none


_FLIP = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}


def _conditions(graph) -> Iterable[tuple[str, Mapping, str, int | None]]:
    """(rule key, condition tree, its text, line) for every guard and `if` condition of the rules."""
    for _, _, key, d in graph.edges(keys=True, data=True):
        if d.get("guard") is not None:
            yield key, d["guard"], d.get("because") or "", (d.get("span") or {}).get("line")
        stack = list(d.get("actions") or ())
        while stack:
            a = stack.pop()
            if not isinstance(a, Mapping):
                continue
            if a.get("cond") is not None:
                yield key, a["cond"], a.get("text") or "", (a.get("span") or {}).get("line")
            for part in ("then", "else"):
                stack.extend(a.get(part) or ())


def _through_lets(tree: Mapping, lets: Mapping[str, Mapping]) -> Iterable[Mapping]:
    """Every node of `tree` and of the definitions of the lets it uses (each once)."""
    seen: set[str] = set()
    stack = [tree]
    while stack:
        for node in ir.walk(stack.pop()):
            yield node
            if node.get("op") == "let" and node["name"] not in seen:
                seen.add(node["name"])
                expr = (lets.get(node["name"]) or {}).get("expr")
                if expr is not None:
                    stack.append(expr)


def thresholds(graph) -> list[Threshold]:
    """Every comparison of a lab (its value, or its multiple of the ULN, directly or through
    lets, max and min) with a number in the protocol's rules, in rule order."""
    lets = graph.graph.get("lets") or {}
    scale = _Scale(lets)
    out: list[Threshold] = []
    for key, tree, text, line in _conditions(graph):
        for node in _through_lets(tree, lets):
            if node.get("op") != "compare":
                continue
            args = [scale.visit(a) for a in node["args"]]
            for i, op in enumerate(node["ops"]):
                left, right = args[i], args[i + 1]
                if left and right and left[0] == "labs" and right[0] == "num":
                    labs, c, o = left[1], right[1], op
                elif left and right and left[0] == "num" and right[0] == "labs":
                    labs, c, o = right[1], left[1], _FLIP[op]
                else:
                    continue
                for lab, (kind, factor) in labs.items():
                    out.append(Threshold(lab, kind, o, c / factor, key, text, line))
    return list(dict.fromkeys(out))


# ---------------------------------------------------------------------------- numbers as text

def _q(v) -> Fraction | None:
    if v is None or isinstance(v, bool):
        return None
    try:
        return Fraction(ir.exact(v)) if not isinstance(v, Fraction) else v
    except (ir.IRError, ValueError, TypeError):
        try:
            return Fraction(str(v))
        except (ValueError, TypeError, ZeroDivisionError):
            return None


def number(q: Fraction | int | float, places: int = 3) -> str:
    """A number for a person: a finite decimal exactly (thousands separated), else rounded to
    `places` significant decimals with '≈'; never scientific notation."""
    q = Fraction(q)
    text = ir.decimal_text(q)
    if text is None or ("." in text and len(text.split(".")[-1]) > 4):
        approx = round(float(q), places)
        body = f"{approx:,.{places}f}".rstrip("0").rstrip(".")
        return "≈" + body
    whole, _, frac = text.partition(".")
    sign = "-" if whole.startswith("-") else ""
    whole = f"{int(whole.lstrip('-')):,}"
    return sign + whole + ("." + frac if frac else "")


_SUPERSCRIPT = str.maketrans("0123456789-", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻")


def unit_text(unit: str) -> str:
    """A UCUM unit as a clinician writes it: `10*9/L` as `×10⁹/L`, `10*3/uL` as `×10³/µL`,
    `umol/L` as `µmol/L`, `/mm3` as `/mm³` (the lab chart's words; the trace keeps UCUM)."""
    u = re.sub(r"^10\*(-?\d+)", lambda m: "×10" + m.group(1).translate(_SUPERSCRIPT), unit or "")
    u = re.sub(r"(?<![A-Za-z])u(?=(?:L|l|mol|kat|g)\b)", "µ", u)
    return re.sub(r"(?<=[a-z])([23])\b", lambda m: m.group(1).translate(_SUPERSCRIPT), u)


def quantity(num: str, unit: str) -> str:
    """A number with its unit for a person: `1.5×10⁹/L`, `40 U/L`, `0.7` (no unit)."""
    u = unit_text(unit)
    return num + u if u.startswith("×") else f"{num} {u}".strip()


def _date(text) -> datetime.date | None:
    try:
        return datetime.date.fromisoformat(str(text))
    except ValueError:
        return None


# ---------------------------------------------------------------------------- rows

def _rows(graph, ths: list[Threshold], labs_with_results: list[str]) -> tuple[list[Row], dict[str, int], dict[str, Fraction], dict[str, str]]:
    """The rows, each lab's row, each lab's limit (in its unit; 1 for a multiple of ULN), and
    the legend's word for each lab's limit."""
    decls = graph.graph.get("labs") or {}
    per_lab: dict[str, list[Threshold]] = {}
    for t in ths:
        per_lab.setdefault(t.lab, []).append(t)
    limit_of: dict[str, Fraction] = {}
    limit_name: dict[str, str] = {}
    direction: dict[str, str] = {}
    explain: dict[str, str] = {}
    bands_of: dict[str, dict[Fraction, list[str]]] = {}
    for lab in labs_with_results:
        decl = decls.get(lab) or {}
        unit = decl.get("unit") or ""
        mine = per_lab.get(lab, [])
        uln, lln = _q(decl.get("uln")), _q(decl.get("lln"))
        if uln:
            limit_of[lab], limit_name[lab], direction[lab] = uln, "ULN", "high"
            explain[lab] = f"{lab} ÷ ULN {quantity(number(uln), unit)}"
        elif lln:
            limit_of[lab], limit_name[lab], direction[lab] = lln, "LLN", "low"
            explain[lab] = f"{lab} ÷ LLN {quantity(number(lln), unit)}"
        else:
            values = [t for t in mine if t.kind == "value" and t.op in ("<", "<=", ">", ">=") and t.value > 0]
            low = sum(t.op in ("<", "<=") for t in values)
            high = len(values) - low
            if values:
                direction[lab] = "low" if low > high else "high"
                pick = max if direction[lab] == "low" else min
                limit = pick(t.value for t in values)
                limit_of[lab] = limit
                limit_name[lab] = quantity(number(limit), unit)
                side = "low values" if direction[lab] == "low" else "high values"
                explain[lab] = (f"{lab} ÷ {quantity(number(limit), unit)}" +
                                f" (no ULN or LLN declared: the protocol's threshold nearest to normal; its rules watch {side})")
            else:
                limit_of[lab], limit_name[lab], direction[lab] = Fraction(1), "", "high"
                explain[lab] = f"{lab} as its value{(' in ' + unit_text(unit)) if unit else ''} (no limit declared or compared)"
        bands: dict[Fraction, list[str]] = {}
        for t in mine:
            if t.kind == "xuln":
                if limit_name[lab] != "ULN":
                    continue  # xuln() of a lab without a ULN is never known
                m = t.value
            else:
                m = t.value / limit_of[lab]
            if m <= 0:
                continue
            where = f"{t.text} (rule {t.rule}" + (f", line {t.line})" if t.line else ")")
            if where not in bands.setdefault(m, []):
                bands[m].append(where)
        bands_of[lab] = bands
    rows: list[Row] = []
    row_of: dict[str, int] = {}
    by_key: dict[tuple, int] = {}
    for lab in labs_with_results:
        key = (limit_name[lab] if limit_name[lab] in ("ULN", "LLN", "") else ("own", lab), direction[lab],
               tuple(sorted(bands_of[lab])))
        if key in by_key:
            row = rows[by_key[key]]
            row.labs.append(lab)
            for b, m in zip(row.bands, sorted(bands_of[lab])):  # the same thresholds: the key says so
                b.rules.extend(r for r in bands_of[lab][m] if r not in b.rules)
            row_of[lab] = by_key[key]
            continue
        by_key[key] = len(rows)
        row_of[lab] = len(rows)
        marks = sorted(bands_of[lab])
        levels = _levels(marks, direction[lab])
        shown = []
        for m in marks:
            if limit_name[lab] in ("ULN", "LLN"):
                label = f"{number(m)}× {limit_name[lab]}"
            else:
                label = quantity(number(m * limit_of[lab]), (decls.get(lab) or {}).get("unit") or "")
            shown.append(Band(float(m), label, list(bands_of[lab][m]), levels[m]))
        rows.append(Row([lab], limit_name[lab], direction[lab], shown))
    return rows, row_of, limit_of, explain


def _levels(marks: list[Fraction], direction: str) -> dict[Fraction, int]:
    """The zone each threshold opens, counted from the limit (1) outwards: 1, 2, ...; 0 for a
    threshold on the normal side of the limit."""
    out = {m: 0 for m in marks}
    worse = sorted((m for m in marks if m >= 1), reverse=False) if direction == "high" else \
        sorted((m for m in marks if m <= 1), reverse=True)
    for i, m in enumerate(worse):
        out[m] = i + 1
    return out


# ---------------------------------------------------------------------------- the chart

def build(graph, trace: Mapping) -> Chart:
    """The lab chart of one patient's trace (a dict of contracts/trace.md, checked against the
    graph by render.trace.overlay where it comes from a file)."""
    g = graph.graph
    decls = g.get("labs") or {}
    steps = [s for s in trace.get("steps") or () if isinstance(s, Mapping)]
    days = [d for d in (_date(s.get("date")) for s in steps) if d is not None]
    start = min([d for d in (_date(trace.get("start")),) if d] + days, default=datetime.date(2000, 1, 1))
    until = max([d for d in (_date(trace.get("until")),) if d] + days, default=start)
    end = until + datetime.timedelta(days=1)  # every step inside the chart, whatever the trace's own bounds
    lets = g.get("lets") or {}
    edges = {k: d for _, _, k, d in graph.edges(keys=True, data=True)}
    track_labs = ir.track_labs(graph)

    # the results, and the steps each panel brought (until the next panel of that day)
    results: list[tuple[datetime.date, Mapping, list[Mapping]]] = []
    for i, s in enumerate(steps):
        if s.get("type") != "panel":
            continue
        day = _date(s.get("date"))
        if day is None:
            continue
        brought = []
        for t in steps[i + 1:]:
            if t.get("type") == "panel" or t.get("date") != s.get("date"):
                break
            if t.get("trigger") == "panel" and t.get("type") in ("transition", "unassessable"):
                brought.append(t)
        for r in s.get("results") or ():
            if isinstance(r, Mapping) and isinstance(r.get("lab"), str) and _q(r.get("value_exact") or r.get("value")) is not None:
                results.append((day, r, brought))
    order = list(decls)
    labs = sorted({r["lab"] for _, r, _ in results}, key=lambda x: (order.index(x) if x in order else len(order), x))
    ths = thresholds(graph)
    rows, row_of, limit_of, explain = _rows(graph, ths, labs)
    colours = {lab: LAB_COLOURS[i % len(LAB_COLOURS)] for i, lab in enumerate(labs)}

    def relevant(step: Mapping, lab: str) -> bool:
        if step.get("type") == "unassessable":
            track = step.get("track")
            return track is None or lab in track_labs.get(track, frozenset([lab]))
        d = edges.get(step.get("rule")) or {}
        named = ir.labs_named([d["guard"]], lets) if d.get("guard") is not None else frozenset()
        if named:
            return lab in named
        track = step.get("track")
        return track is None or lab in track_labs.get(track, frozenset([lab]))

    def step_line(step: Mapping) -> str:
        if step.get("type") == "unassessable":
            missing = ", ".join(step.get("missing") or ())
            return f"not assessable in {_title(graph, step.get('state'))}" + (f": no {missing}" if missing else "")
        cond = step.get("because") or "otherwise"
        where = f" (rule {step.get('rule')}" + (f", line {step.get('line')})" if step.get("line") else ")")
        if step.get("stay"):
            return f"{cond}: stays in {_title(graph, step.get('from'))}{where}"
        if step.get("from") == step.get("to"):
            return f"{cond}: again {_title(graph, step.get('to'))}{where}"
        return f"{cond} → {_title(graph, step.get('to'))}{where}"

    points: list[Point] = []
    for n, (day, r, brought) in enumerate(results):
        lab = r["lab"]
        q = _q(r.get("value_exact") or r.get("value"))
        decl = decls.get(lab) or {}
        unit = r.get("unit") or decl.get("unit") or ""
        row = rows[row_of[lab]]
        if row.limit == "ULN":
            own = _q(r.get("uln_exact") or r.get("uln"))
            uln = own if own else limit_of[lab]
            m = q / uln
            limit_text = f"{number(m)}× ULN ({quantity(number(uln), unit)})"
        elif row.limit == "LLN":
            m = q / limit_of[lab]
            limit_text = f"{number(m)}× LLN ({quantity(number(limit_of[lab]), unit)})"
        elif row.limit:
            m = q / limit_of[lab]
            limit_text = f"{number(m)}× the protocol's limit {row.limit}"
        else:
            m, limit_text = q, ""
        text = f"{lab} {quantity(number(q), unit)}" + (f" = {limit_text}" if limit_text else "") + f" on {day.isoformat()}"
        if r.get("from"):
            text += f" (result of {r['from']})"
        lines = [step_line(t) for t in brought if relevant(t, lab)]
        if not lines:
            lines = [f"no rule about {lab} fired" if brought else "no rule fired"]
        points.append(Point(f"lc-p{n}", lab, day, row_of[lab], float(m) if m > 0 else 0.0, m <= 0, text, lines))

    for i, row in enumerate(rows):
        values = [p.multiple for p in points if p.row == i and not p.floor] + [b.value for b in row.bands] + [1.0]
        lo, hi = min(values), max(values)
        row.lo, row.hi = lo / 1.6, hi * 1.6

    # orders and their windows; deviations mark them
    actions = g.get("actions") or {}
    windows: list[Window] = []
    open_by: dict[tuple, Window] = {}
    markers: list[Marker] = []
    drugs_decl = g.get("drugs") or {}
    drug_records: list[tuple[datetime.date, Mapping]] = []
    for s in steps:
        day = _date(s.get("date"))
        if day is None:
            continue
        kind = s.get("type")
        if kind == "action":
            a = actions.get(s.get("action")) or {}
            w = s.get("window")
            drug = s.get("drug")
            if isinstance(drug, Mapping):  # a drug change: the ribbon shows it
                drug_records.append((day, drug))
            if isinstance(w, list) and len(w) == 2 and _date(w[0]) and _date(w[1]):  # an order: its window
                win = Window(s["action"], a.get("description") or s["action"].replace("_", " "), list(a.get("orders") or ()),
                             day, _date(w[0]), _date(w[1]), s.get("track"))
                windows.append(win)
                open_by[(s["action"], w[0], w[1])] = win
            elif not isinstance(drug, Mapping):
                markers.append(Marker(day, "action", a.get("description") or str(s.get("action")).replace("_", " "),
                                      f"{s.get('action')} in {s.get('state')}", s.get("track")))
        elif kind == "deviation":
            w = s.get("window")
            win = open_by.get((s.get("action"), *(w if isinstance(w, list) and len(w) == 2 else (None, None))))
            if win is not None:
                if s.get("kind") == "overdue" and win.overdue is None:
                    win.overdue = day
                elif s.get("kind") == "still_overdue":
                    win.reminders.append(day)
        elif kind == "transition" and not s.get("stay") and s.get("from") != s.get("to"):
            markers.append(Marker(day, "transition", _title(graph, s.get("to")),
                                  f"{s.get('from')} → {s.get('to')}: {s.get('because') or 'otherwise'}", s.get("track")))
    orders = list(dict.fromkeys(w.order for w in windows))

    # the drug ribbon
    segments: list[Segment] = []
    drug_names = list(dict.fromkeys(str(rec.get("name")) for _, rec in drug_records if rec.get("name")))
    for name in drug_names:
        decl = drugs_decl.get(name) or {}
        doses = list(decl.get("doses") or ())
        labels = dict(zip(doses, decl.get("labels") or ()))
        recs = [(d, r) for d, r in drug_records if r.get("name") == name]
        for i, (day, rec) in enumerate(recs):
            nxt = recs[i + 1][0] if i + 1 < len(recs) else end
            if nxt <= day:
                continue
            status = str(rec.get("status") or "on")
            dose = rec.get("dose") if isinstance(rec.get("dose"), (str, int, float)) else None
            if status == "on" and doses and dose is not None and dose != doses[0]:
                status = "reduced"
            if status not in STATUS_COLOURS:
                status = "held" if status.startswith("held") else "stopped" if "stop" in status else "on"
            dose_text = labels.get(dose) or (f"{number(_q(dose))} {decl.get('unit') or ''}".strip() if _q(dose) is not None else
                                             str(dose or ""))
            text = STATUS_TEXT[status] + (f": {dose_text}" if dose_text and status in ("on", "reduced") else "")
            if segments and segments[-1].drug == name and segments[-1].status == status and segments[-1].text == text:
                segments[-1].end = nxt
            else:
                segments.append(Segment(name, day, nxt, status, text))

    legend = _legend(rows, explain, windows, drug_names, floors=any(p.floor for p in points))
    patient = str(trace.get("patient") or "")
    title = f"{g.get('title') or g.get('name')}: patient {patient}".strip() if patient else str(g.get("title") or g.get("name"))
    order_labels = {o: _short(_plain((actions.get(o) or {}).get("description") or o.replace("_", " ")), 24) for o in orders}
    return Chart(title, patient, start, end, rows, points, windows, orders, order_labels, markers, drug_names, segments, legend,
                 colours)


def _plain(text: str) -> str:
    """A description without its trailing parenthetical (`Order a liver panel (ALT, ...)`)."""
    head = text.split(" (", 1)[0].strip()
    return head if len(head) >= 8 else text


def _title(graph, state) -> str:
    if state is None or state not in graph:
        return str(state)
    return graph.nodes[state].get("description") or str(state).replace("_", " ")


HOVER = "; hover a point for the rule it triggered"
"""The legend's words for the viewer's chart only: a PNG, SVG or PDF file has nothing to hover."""


def _legend(rows: list[Row], explain: dict[str, str], windows, drugs, floors: bool = False) -> list[str]:
    out = ["Each lab as a multiple of its limit, log scale: " + "; ".join(explain[lab] for row in rows for lab in row.labs) + "."] \
        if rows else ["No lab results in this trace."]
    low = [lab for r in rows if r.direction == "low" for lab in r.labs]
    out.append("Bands: the protocol's own thresholds (from its rules), shaded darker the further from the limit"
               + (f" (for {', '.join(low)}, downwards: below 1 is below the limit)" if low else "")
               + "; points: every result" + ("; a hollow point on a row's floor: a result of 0 or less, off the log scale"
                                              if floors else "") + HOVER + ".")
    extra = []
    if windows:
        extra.append("bars: order windows (red hatched: overdue)")
    extra.append("dashed lines: changes of state")
    if drugs:
        extra.append("ribbon: " + ", ".join(drugs) + " on, reduced, held or stopped")
    out.append("; ".join(extra).capitalize() + ".")
    return out


# ---------------------------------------------------------------------------- results into a trace

def _result_dict(graph, res, day: datetime.date) -> dict:
    """A LabResult as a trace's `panel` step shows it: the simulator's `result_dict`, with the
    lab's unit and default ULN from the graph."""
    from rxwatch.simulator.engine import result_dict

    decl = (graph.graph.get("labs") or {}).get(res.lab) or {}
    return result_dict(res, day, decl.get("unit"), ir.exact(decl["uln"]) if decl.get("uln") is not None else None)


def with_results(trace: Mapping, inputs: list, graph) -> dict:
    """A copy of `trace` with each day's results as a `panel` step (contracts/trace.md, v2),
    placed before the steps that panel brought: `inputs` is the list `Machine.run(..., inputs=)`
    fills, (the number of steps before the panel, its results) for each panel read."""
    steps = list(trace.get("steps") or ())
    panels: dict[int, list] = {}
    for at, item in inputs:
        if isinstance(item, tuple) and item and all(hasattr(r, "lab") and hasattr(r, "value") for r in item):
            panels.setdefault(at, []).append(item)
    out: list = []
    for i in range(len(steps) + 1):
        for item in panels.get(i, ()):
            day = max(r.date for r in item)
            out.append({"date": day.isoformat(), "type": "panel", "results": [_result_dict(graph, r, day) for r in item]})
        if i < len(steps):
            out.append(steps[i])
    copy = dict(trace)
    copy["steps"] = out
    return copy


# ---------------------------------------------------------------------------- matplotlib

class PlotError(Exception):
    """The chart cannot be written as asked (an unknown format)."""


def _days(chart: Chart, day: datetime.date) -> float:
    return float((day - chart.start).days)


def _lanes(items: list[tuple[float, float]]) -> list[int]:
    """Greedy rows for labels [x0, x1): the first row whose last label ends before x0."""
    ends: list[float] = []
    out = []
    for x0, x1 in items:
        for i, e in enumerate(ends):
            if e <= x0:
                ends[i] = x1
                out.append(i)
                break
        else:
            ends.append(x1)
            out.append(len(ends) - 1)
    return out


def _short(text: str, n: int = 48) -> str:
    return text if len(text) <= n else text[: n - 1].rstrip() + "…"


# the layout, in inches, shared by the drawers (the SVG one scales it to pixels)
ROW_H = 1.2
LANE_H = 0.3
LABEL_H = 0.2
LEFT_IN = 1.65
RIGHT_IN = 0.95
WIDTH_IN = 12.0


def y_ticks(lo: float, hi: float) -> list[float]:
    """The tick values of a row's log axis within [lo, hi]: 1-2-5 steps over up to 2.2 decades;
    over more, decades only, and over more than 6 every k-th decade (1 kept), so that the
    labels never run into each other however far a result lies from the limit (a row is 76 px
    in the viewer, 1.2 in in a plot: at least 10 px between two ticks)."""
    import math

    if not (0 < lo <= hi < math.inf):
        return []
    e_lo, e_hi = max(math.floor(math.log10(lo)), -300), min(math.ceil(math.log10(hi)), 307)
    decades = math.log10(hi) - math.log10(lo)
    steps = (1, 2, 5) if decades <= 2.2 else (1,)
    every = 1 if decades <= 6 else math.ceil(decades / 6)
    out = []
    for e in range(e_lo, e_hi + 1):
        if e % every:
            continue
        for m in steps:
            v = m * 10.0 ** e
            if lo <= v <= hi:
                out.append(v)
    return out


def tick_text(v: float) -> str:
    return number(Fraction(v).limit_denominator(10**6))


def marker_lanes(chart: Chart, chars_per_day: float) -> list[tuple[int, bool]]:
    """(label row, label on the left) of each marker, so that no two labels overlap (a label's
    width is its text's length in days at `chars_per_day`); a label that would run past the
    end of the chart goes to the left of its marker."""
    span = (chart.end - chart.start).days
    extents, left = [], []
    for m in chart.markers:
        x, w = _days(chart, m.date), (len(_short(m.text)) + 3) / chars_per_day
        flip = x + w > span and x - w >= 0
        extents.append((x - w, x + 0.5 / chars_per_day) if flip else (x, x + w))
        left.append(flip)
    return list(zip(_lanes(extents), left))


def band_labels(row: Row, height: float, gap: float) -> set[int]:
    """The bands of a row (by index) whose labels are drawn on a row `height` high (any unit)
    so that no two are closer than `gap`: from the limit outwards, a label too close to the
    one before it is left out (its line and its hover text stay)."""
    lo, hi = math.log(row.lo), math.log(row.hi)
    order = sorted(range(len(row.bands)), key=lambda i: (row.bands[i].level == 0, row.bands[i].value))
    if row.direction == "low":
        order = sorted(range(len(row.bands)), key=lambda i: -row.bands[i].value)
    shown: list[float] = []
    out: set[int] = set()
    for i in order:
        y = (math.log(row.bands[i].value) - lo) / (hi - lo) * height
        if all(abs(y - other) >= gap for other in shown):
            shown.append(y)
            out.add(i)
    return out


def overdue_labelled(chart: Chart, order: str, chars_per_day: float) -> set[int]:
    """The overdue windows of an order lane (by id()) whose "overdue" label fits before the
    next window or label."""
    out: set[int] = set()
    taken = -1e9
    wins = sorted((w for w in chart.windows if w.order == order), key=lambda w: w.opens)
    for i, w in enumerate(wins):
        if not w.overdue:
            continue
        x = _days(chart, w.overdue)
        nxt = min((_days(chart, v.opens) for v in wins[i + 1:] if v.opens > w.overdue), default=1e9)
        width = 10 / chars_per_day
        if x >= taken and x + width <= nxt:
            out.add(id(w))
            taken = x + width
    return out


def draw(chart: Chart, fmt: str) -> bytes:
    """The chart as PNG, SVG or PDF bytes (matplotlib, Agg, imported here)."""
    if fmt not in FORMATS:
        raise PlotError(f"unknown format '{fmt}': one of {', '.join('.' + f for f in FORMATS)}")
    import io

    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib import dates as mdates
    from matplotlib import ticker
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    span = max((chart.end - chart.start).days, 1)
    plot_w = WIDTH_IN - LEFT_IN - RIGHT_IN
    chars_per_day = 16.5 * plot_w / span  # ~16.5 characters of 7-point text per inch
    label_rows = marker_lanes(chart, chars_per_day)
    n_labels = max((r for r, _ in label_rows), default=-1) + 1
    legend = [line for text in chart.legend for line in _wrap(text.replace(HOVER, ""), 165).split("\n")]
    head = 0.42 + 0.15 * len(legend) + 0.12
    blocks = [("protocol", LABEL_H * max(n_labels, 1) + 0.08)]
    blocks += [("drug", LANE_H) for _ in chart.drugs]  # the drug's course first, under the protocol's
    blocks += [("row", ROW_H) for _ in chart.rows] or [("empty", 0.5)]
    blocks += [("order", LANE_H) for _ in chart.orders]
    gap = 0.07
    total = head + sum(h for _, h in blocks) + gap * len(blocks) + 0.45
    fig = Figure(figsize=(WIDTH_IN, total), dpi=150)
    x0, x1 = mdates.date2num(chart.start), mdates.date2num(chart.end)

    def X(day: datetime.date) -> float:
        return float(mdates.date2num(day))

    fig.text(LEFT_IN / WIDTH_IN, 1 - 0.3 / total, chart.title, fontsize=12, fontweight="bold", va="baseline")
    fig.text(LEFT_IN / WIDTH_IN, 1 - 0.45 / total, "\n".join(legend), fontsize=7.2, va="top", color="#333", linespacing=1.35)
    axes = []
    top = total - head
    for kind, h in blocks:
        ax = fig.add_axes((LEFT_IN / WIDTH_IN, (top - h) / total, plot_w / WIDTH_IN, h / total))
        ax.set_xlim(x0, x1)
        axes.append((kind, ax))
        top -= h + gap

    def name(ax, text: str) -> None:
        ax.set_ylabel(text, rotation=0, ha="right", va="center", fontsize=8, labelpad=6)

    rows = iter(chart.rows)
    orders = iter(chart.orders)
    drugs = iter(chart.drugs)
    for kind, ax in axes:
        ax.tick_params(axis="x", labelbottom=False, length=0)
        if kind == "protocol":
            ax.set_ylim(max(n_labels, 1), 0)
            ax.set_yticks([])
            name(ax, "protocol")
            for m, (r, flip) in zip(chart.markers, label_rows):
                colour = "#1f4e9e" if m.kind == "transition" else "#555"
                ax.plot([X(m.date)], [r + 0.5], marker="v" if m.kind == "transition" else "o", color=colour, markersize=4.5,
                        clip_on=False)
                ax.text(X(m.date) + (-2.2 if flip else 2.2) / chars_per_day, r + 0.5, _short(m.text), fontsize=7, va="center",
                        color=colour, clip_on=False, ha="right" if flip else "left")
            for spine in ("top", "right", "left", "bottom"):
                ax.spines[spine].set_visible(False)
        elif kind == "empty":
            ax.text(0.5, 0.5, "no lab results in this trace", transform=ax.transAxes, ha="center", va="center", color="#777")
            ax.set_yticks([])
        elif kind == "row":
            row = next(rows)
            ax.set_yscale("log")
            ax.set_ylim(row.lo, row.hi)
            for lo_, hi_, level in zones(row):
                ax.axhspan(lo_, hi_, color=ZONE_COLOURS[min(level, len(ZONE_COLOURS)) - 1], zorder=0, lw=0)
            labelled = band_labels(row, ROW_H * 72, 8.5)
            for i, b in enumerate(row.bands):
                ax.axhline(b.value, color="#b06a00" if b.level else "#999", lw=0.7, zorder=1)
                if i in labelled:
                    ax.text(1.006, b.value, b.label, transform=ax.get_yaxis_transform(), fontsize=7, va="center",
                            color="#7a4a00")
            if not any(abs(b.value - 1) < 1e-12 for b in row.bands):
                ax.axhline(1.0, color="#555", lw=0.6, ls=":", zorder=1)
            for m in chart.markers:
                if m.kind == "transition":
                    ax.axvline(X(m.date), color="#1f4e9e", lw=0.7, ls="--", alpha=0.55, zorder=1)
            for lab in row.labs:
                pts = chart.lab_points(lab)
                xs = [X(p.date) for p in pts]
                ys = [p.multiple if not p.floor else row.lo * 1.05 for p in pts]
                c = chart.lab_colours[lab]
                ax.plot(xs, ys, color=c, lw=1.1, alpha=0.75, zorder=2)
                ax.scatter(xs, ys, color=c, s=20, zorder=3, label=lab, edgecolors="white", linewidths=0.5)
                floor = [(x, y) for x, y, p in zip(xs, ys, pts) if p.floor]
                if floor:  # a result of 0 or less: hollow, as in the viewer, never read as a value near the floor
                    ax.scatter([x for x, _ in floor], [y for _, y in floor], facecolors="white", edgecolors=c, s=26,
                               linewidths=1.2, zorder=4)
            name(ax, f"{row.title}\n× {row.limit}" if row.limit else row.title)
            ax.yaxis.set_major_locator(ticker.FixedLocator(y_ticks(row.lo, row.hi)))
            ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: tick_text(v)))
            ax.yaxis.set_minor_locator(ticker.NullLocator())
            ax.tick_params(axis="y", labelsize=7)
            if len(row.labs) > 1:
                ax.legend(loc="upper left", fontsize=7, frameon=True, framealpha=0.8, ncol=len(row.labs), handletextpad=0.2,
                          borderpad=0.3)
            ax.grid(axis="x", color="#ddd", lw=0.5)
        elif kind == "order":
            order = next(orders)
            labelled = overdue_labelled(chart, order, chars_per_day)
            ax.set_ylim(0, 1)
            ax.set_yticks([])
            name(ax, chart.order_labels.get(order, order))
            for w in chart.windows:
                if w.order != order:
                    continue
                left, right = X(w.opens), X(w.due + datetime.timedelta(days=1))
                if w.overdue:
                    ax.add_patch(Rectangle((left, 0.15), right - left, 0.7, facecolor="#fbe3e3", edgecolor=OVERDUE_COLOUR,
                                           hatch="////", lw=0.8))
                    if w.reminders:  # still overdue: a line to the last reminder
                        ax.plot([X(w.overdue), X(w.reminders[-1])], [0.5, 0.5], color=OVERDUE_COLOUR, lw=1.2)
                    ax.plot([X(w.overdue)], [0.5], marker="X", color=OVERDUE_COLOUR, markersize=5.5, clip_on=False)
                    if id(w) in labelled:
                        ax.text(X(w.overdue) + 1.5 / chars_per_day, 0.5, "overdue", fontsize=7, color=OVERDUE_COLOUR,
                                va="center", bbox={"facecolor": "white", "edgecolor": "none", "pad": 0.5})
                else:
                    ax.add_patch(Rectangle((left, 0.15), right - left, 0.7, facecolor=WINDOW_COLOUR, edgecolor="#6f86ad",
                                           lw=0.5, alpha=0.75))
            for spine in ("top", "right"):
                ax.spines[spine].set_visible(False)
        elif kind == "drug":
            drug = next(drugs)
            ax.set_ylim(0, 1)
            ax.set_yticks([])
            name(ax, drug)
            for seg in chart.segments:
                if seg.drug != drug:
                    continue
                left, right = X(seg.start), X(seg.end)
                ax.add_patch(Rectangle((left, 0.08), right - left, 0.84, facecolor=STATUS_COLOURS[seg.status],
                                       edgecolor="white", lw=0.8, hatch="..." if seg.status == "reduced" else None))
                days = (seg.end - seg.start).days
                shown = seg.text if days * chars_per_day > len(seg.text) + 2 else \
                    STATUS_TEXT[seg.status] if days * chars_per_day > len(STATUS_TEXT[seg.status]) + 1 else ""
                if shown:
                    ax.text(left + 1 / chars_per_day, 0.5, shown, fontsize=7, va="center")
    last = axes[-1][1]
    last.tick_params(axis="x", labelbottom=True, length=3)
    locator = mdates.AutoDateLocator(minticks=4, maxticks=12)
    last.xaxis.set_major_locator(locator)
    last.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, offset_formats=["", "%Y", "%Y", "%Y", "%Y", "%Y"]))
    last.tick_params(axis="x", labelsize=8)
    buf = io.BytesIO()
    meta = {"png": {"Software": None}, "svg": {"Date": None}, "pdf": {"CreationDate": None}}[fmt]
    with matplotlib.rc_context({"svg.hashsalt": "rxwatch", "svg.fonttype": "none"}):  # the same bytes every run; text as text
        fig.savefig(buf, format=fmt, metadata=meta)
    return buf.getvalue()


def zones(row: Row) -> list[tuple[float, float, int]]:
    """The shaded zones of a row, (low, high, level): from each threshold on the far side of
    the limit to the next one (or the row's edge)."""
    marks = sorted((b for b in row.bands if b.level), key=lambda b: b.value)
    out = []
    for i, b in enumerate(marks):
        if row.direction == "high":
            out.append((b.value, marks[i + 1].value if i + 1 < len(marks) else row.hi, b.level))
        else:
            out.append((marks[i - 1].value if i > 0 else row.lo, b.value, b.level))
    return out


def _wrap(text: str, width: int) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width)) or text
