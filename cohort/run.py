"""The closed loop: one synthetic patient monitored by one protocol (docs/cohort.md).

    from rxwatch.cohort.run import Arm, run_patient
    arm = Arm.of("anakinra", graph)                    # a protocol in the comparison
    row, detail = run_patient(arm, model, seed=7, index=17, start=date, days=730)

The protocol decides when blood is drawn: its open orders (`Patient.open_orders()` of the
incremental engine, simulator/engine.py) each get the day this patient has them done
(`SyntheticPatient.attends(opens, late)`, None: never); on a draw day every order whose window
is open is drawn together (one visit), the labs those orders name are measured
(`SyntheticPatient.measure`) and fed to the protocol (`Patient.feed`). After each feed (and
each `advance` over days without inputs) the new trace steps are read: a drug step (a start,
hold, dose change, resume or stop) goes to the patient (`SyntheticPatient.drug`), so the
protocol's holds, reductions and stops change the later values; orders given, referrals and
deviations are counted. At the end the patient's true injury episodes
(`SyntheticPatient.episodes`) are matched against the protocol's interventions: the summary row
(`ROW_FIELDS`) says how long each episode went from crossing 3x and 5x ULN to an intervention,
what the liver had reached by then, and which interventions were false alarms.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any, Iterable

ONE_DAY = datetime.timedelta(days=1)
DAYS_PER_YEAR = 365.25
THRESHOLDS = (3, 5)  # multiples of ULN whose crossing starts the clock of a detection delay
INJURY_LAB = "ALT"  # the lab whose noise-free multiple defines an episode's course

# the kinds of drug steps (a change of status or dose fraction): the first three are interventions
INTERVENTIONS = ("hold", "reduce", "stop")


class CohortError(Exception):
    """A protocol or patient the loop cannot run (a located message: `path`, `line`)."""

    def __init__(self, message: str, *, path: str = "", line: int = 0) -> None:
        super().__init__(message)
        self.path = path
        self.line = line

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}: " if self.path and self.line else (f"{self.path}: " if self.path else "")
        return f"{where}{self.args[0]}"


@dataclass
class Arm:
    """One protocol of the comparison: its label, compiled graph, the drug whose status the
    loop passes to the patient, and its Machine (made once per process)."""

    label: str
    graph: Any
    drug: str | None
    doses: tuple = ()  # the drug's declared dose levels, first = the full dose
    dose_kind: str = "name"
    facts: dict = field(default_factory=dict)
    machine: Any = None
    ulns: dict = field(default_factory=dict)  # lab -> the protocol's default ULN
    # the clinic's policy: the actions a `do one of` takes where it offers them (else its first
    # option), e.g. ("reduce_dose",) where the protocol's first option holds the drug
    prefer: tuple = ()

    @classmethod
    def of(cls, label: str, graph, facts: dict | None = None, prefer: tuple = ()) -> "Arm":
        drugs = graph.graph.get("drugs") or {}
        name = next(iter(drugs), None)
        decl = drugs.get(name) or {}
        ulns = {lab: d.get("uln") for lab, d in (graph.graph.get("labs") or {}).items() if d.get("uln") is not None}
        return cls(label, graph, name, tuple(decl.get("doses") or ()), decl.get("kind") or "name", dict(facts or {}),
                   ulns=ulns, prefer=tuple(prefer))

    def ready(self) -> "Arm":
        if self.machine is None:
            from rxwatch.simulator.engine import Machine

            self.machine = Machine(self.graph)
        return self

    def fraction(self, dose: Any, model: Any) -> float:
        """The dose fraction (1.0 the full dose) of a declared dose level: a number level over
        the first (full) level; a named level as the model file states it
        (`model.dose_fraction(drug, level)`), else 1.0 for the first level."""
        if dose is None or not self.doses:
            return 1.0
        if self.dose_kind == "number":
            try:
                return float(dose) / float(self.doses[0])
            except (TypeError, ValueError, ZeroDivisionError):
                return 1.0
        ask = getattr(model, "dose_fraction", None)
        if ask is not None:
            value = ask(self.drug, dose)
            if value is not None:
                return float(value)
        return 1.0 if dose == self.doses[0] else 0.5


def check_arm(arm: Arm, model: Any, text: str = "") -> list:
    """What stops a protocol from being simulated with `model`, as Diagnostics: E950 when it
    declares no drug (its holds and stops could not reach the patient) or the model is of
    another drug; W950 for each lab its orders name that the model does not make (such an
    order's result of that lab never comes: the protocol reads it as unknown). `text`: the
    protocol's source, to place E950 on its `protocol` line."""
    import re

    from rxwatch.compiler.diagnostics import ERROR, WARNING, Diagnostic
    from rxwatch.compiler.span import Span

    g = arm.graph.graph
    path = g.get("path") or arm.label
    out = []

    def span_of(d: Any) -> Span:
        return Span.from_dict(d.get("span") if isinstance(d, dict) else None, path)

    if arm.drug is None:
        m = re.search(r"^[ \t]*protocol[ \t]+\S", text, flags=re.M)
        line = text.count("\n", 0, m.start()) + 1 if m else 0
        col = m.start() - text.rfind("\n", 0, m.start()) if m else 0
        out.append(Diagnostic(Span.point(path, line, col), ERROR, "E950",
                              f"{arm.label} declares no drug: its holds, dose changes and stops could not reach "
                              f"the patient; a cohort needs the protocol's `drug` (docs/cohort.md#the-closed-loop)"))
    else:
        drug = getattr(getattr(model, "drug", None), "name", None)
        if drug is not None and drug != arm.drug:
            out.append(Diagnostic(span_of((g.get("drugs") or {}).get(arm.drug)), ERROR, "E950",
                                  f"the patient model '{getattr(model, 'name', '')}' is of {drug}; {arm.label} "
                                  f"monitors {arm.drug}"))
    made = set(getattr(model, "labs", None) or ())
    ordered = sorted({lab for a in (g.get("actions") or {}).values() for lab in (a.get("orders") or ())})
    from rxwatch.simulator.units import UnitError, same_unit

    for lab in ordered:  # the model's results are read as the protocol's unit: they must agree
        decl = (g.get("labs") or {}).get(lab) or {}
        lm = (getattr(model, "labs", None) or {}).get(lab)
        want, has = decl.get("unit"), getattr(lm, "unit", None)
        if lm is None or not want or not has:
            continue
        try:
            agree = same_unit(want, has)
        except UnitError:
            agree = False
        if not agree:
            out.append(Diagnostic(span_of(decl), ERROR, "E951",
                                  f"the patient model '{getattr(model, 'name', '')}' makes {lab} in {has}; "
                                  f"{arm.label} reads {lab} in {want}: give the model the protocol's unit"))
    for lab in ordered:
        if made and lab not in made:
            out.append(Diagnostic(span_of((g.get("labs") or {}).get(lab)), WARNING, "W950",
                                  f"the patient model '{getattr(model, 'name', '')}' makes no {lab}: the orders of "
                                  f"{arm.label} that name it get no {lab} result (read as unknown)"))
    return out


ROW_FIELDS = (
    "protocol", "patient", "status", "problem", "years", "draws", "liver_draws", "results", "orders", "orders_never_done", "overdue",
    "starts", "holds", "reductions", "stops", "resumes", "referrals", "interventions", "true_alarms",
    "false_alarms", "final_state", "drug_status", "episodes", "episodes_3x", "detected_3x", "missed_3x",
    "delays_3x", "peaks_3x", "episodes_5x", "detected_5x", "missed_5x", "delays_5x", "peaks_5x",
    "lasting_3x", "lasting_missed_3x", "within_30_3x", "lasting_5x", "lasting_missed_5x", "within_30_5x",
)


def schema():
    """The table's columns (ROW_FIELDS) as an Arrow schema."""
    import pyarrow as pa

    types = {"protocol": pa.string(), "patient": pa.int64(), "status": pa.string(), "problem": pa.string(),
             "years": pa.float64(), "final_state": pa.string(), "drug_status": pa.string()}
    for x in THRESHOLDS:
        types[f"delays_{x}x"] = pa.list_(pa.int32())
        types[f"peaks_{x}x"] = pa.list_(pa.float64())
    return pa.schema([(f, types.get(f, pa.int32())) for f in ROW_FIELDS])


def failed_row(label: str, index: int, days: int, problem: str) -> dict:
    """The row of a patient whose loop stopped (a zero-time loop, a protocol that cannot be
    evaluated): counted nowhere, listed with why."""
    row = {f: 0 for f in ROW_FIELDS}
    row.update(protocol=label, patient=index, status="failed", problem=problem, years=0.0, final_state="",
               drug_status="")
    for x in THRESHOLDS:
        row[f"delays_{x}x"] = []
        row[f"peaks_{x}x"] = []
    return row


def run_patient(arm: Arm, model: Any, *, seed: int, index: int, start: datetime.date, days: int,
                detail: bool = False, prefer: tuple | None = None) -> tuple[dict, dict | None]:
    """Simulate patient `index` of the cohort `seed` through `arm` for `days` days from `start`;
    return its summary row (ROW_FIELDS) and, when `detail`, a function that gives what a picture
    of the patient needs (the results drawn, the noise-free ALT curve, the orders and the drug
    steps), else None. `prefer` (default: the arm's own policy, `Arm.prefer`): the actions a
    `do one of` takes where this protocol offers them, else its first option (the others of
    `prefer` may be another protocol's)."""
    arm.ready()
    if prefer is None:
        prefer = arm.prefer
    end = start + datetime.timedelta(days=days - 1)
    pt = model.patient(seed=seed, index=index, start=start, days=days)
    facts = dict(arm.facts)
    facts.update(getattr(pt, "facts", None) or {})
    p = arm.machine.start(start=start, facts=facts, path=f"cohort#{index}",
                          prefer=tuple(a for a in prefer if a in arm.machine.actions))
    loop = _Loop(arm, model, pt, p, end, detail)
    loop.absorb()
    loop.go()
    p.advance(end)
    loop.absorb()
    return loop.summary(index, days), ((lambda: loop.detail(start, end)) if detail else None)


class _Loop:
    """The state of one closed loop: what the protocol asked, what the patient did."""

    def __init__(self, arm: Arm, model, pt, p, end: datetime.date, keep: bool = False) -> None:
        self.keep = keep  # keep what a picture of the patient needs
        self.arm = arm
        self.model = model
        self.pt = pt
        self.p = p
        self.end = end
        self.seen = 0  # steps read so far
        self.planned: dict = {}  # order key -> the day the patient has it done (None: never)
        self.last_fed: datetime.date | None = None
        self.draws: list = []  # (day, labs) of each visit
        self.results = 0
        self.orders = 0
        self.never = 0
        self.overdue = 0
        self.referrals = 0
        self.drug_steps: list = []  # (day, kind, status, fraction)
        self.status = ("not_started", 1.0)
        self.orders_seen: list = []  # (ordered day, opens, due, action) for a picture
        self.measured: list = []  # (day, lab, multiple of ULN)
        self.dates: dict = {}

    def day_of(self, iso: str) -> datetime.date:
        d = self.dates.get(iso)
        if d is None:
            d = self.dates[iso] = datetime.date.fromisoformat(iso)
        return d

    def absorb(self) -> None:
        """Read the steps made since the last call: drug changes go to the patient."""
        steps = self.p.steps
        for i in range(self.seen, len(steps)):
            s = steps[i]
            kind = s.get("type")
            if kind == "action":
                if "window" in s:
                    self.orders += 1
                action = s.get("action") or ""
                if action.startswith("refer"):
                    self.referrals += 1
                drug = s.get("drug")
                if drug is not None and drug.get("name") == self.arm.drug:
                    self.drug_change(self.day_of(s["date"]), drug.get("status"), drug.get("dose"))
            elif kind == "deviation" and s.get("kind") == "overdue":
                self.overdue += 1
        self.seen = len(steps)

    def drug_change(self, day: datetime.date, status: str | None, dose: Any) -> None:
        if status not in ("on", "held", "stopped"):
            return
        fraction = self.arm.fraction(dose, self.model) if status == "on" else self.status[1]
        before, before_f = self.status
        if (status, fraction) == (before, before_f):
            return
        if status == "stopped":
            kind = "stop"
        elif status == "held":
            kind = "hold"
        elif before == "not_started":
            kind = "start"
        elif before == "held" or fraction > before_f:
            kind = "resume"
        else:
            kind = "reduce"
        if before == "stopped":
            return  # a stopped drug stays stopped (the engine warns, W905)
        self.status = (status, fraction)
        self.drug_steps.append((day, kind, status, fraction))
        self.pt.drug(day, status, fraction)

    def go(self) -> None:
        p, pt, end = self.p, self.pt, self.end
        planned = self.planned
        while True:
            opened = p.open_orders()
            live = {}
            soonest = None
            for o in opened:
                key = (o.get("track"), o["action"], o.get("ordered"), o.get("opens"), o.get("due"))
                live[key] = o
                if key not in planned:
                    opens = o.get("opens") or self.last_fed or o.get("ordered")
                    when = pt.attends(opens, o.get("late"), o.get("ordered"))
                    if when is None:
                        self.never += 1
                    elif self.last_fed is not None and when <= self.last_fed:
                        when = self.last_fed + ONE_DAY  # a day already fed: the next morning
                    planned[key] = when
                when = planned[key]
                if when is not None and (soonest is None or when < soonest):
                    soonest = when
            for key in [k for k in planned if k not in live]:
                del planned[key]  # fulfilled, replaced or withdrawn
            if soonest is None or soonest > end:
                return
            day = soonest
            labs: dict = {}
            for key, o in live.items():
                opens = o.get("opens")
                if planned[key] == day or (opens is not None and opens <= day and planned[key] is not None
                                           and planned[key] > day):
                    for lab in o.get("labs") or ():
                        labs[lab] = True  # one visit draws every order whose window is open
            if not labs:
                for key, o in live.items():  # an order that names no lab: nothing to draw
                    if planned[key] == day:
                        planned[key] = None
                continue
            results = pt.measure(day, list(labs))
            self.draws.append((day, tuple(labs)))
            if self.keep:
                ulns = self.arm.ulns
                for r in results:
                    uln = r.uln if r.uln is not None else ulns.get(r.lab)
                    if uln:
                        self.measured.append((day, r.lab, round(float(r.value) / float(uln), 4)))
            self.results += len(results)
            p.feed(day, results)
            self.last_fed = day
            self.absorb()

    # -- the outcome

    def summary(self, index: int, days: int) -> dict:
        pt = self.pt
        interventions = [(d, k) for d, k, _, _ in self.drug_steps if k in INTERVENTIONS]
        counts = {k: 0 for k in ("start", "hold", "reduce", "stop", "resume")}
        for _, k, _, _ in self.drug_steps:
            counts[k] += 1
        episodes = [Episode.of(e) for e in (getattr(pt, "episodes", None) or ())]
        courses = [(e, self.course(e)) for e in episodes]
        row = {
            "protocol": self.arm.label, "patient": index, "status": "ok", "problem": "",
            "years": days / DAYS_PER_YEAR,
            "draws": len(self.draws), "liver_draws": sum(INJURY_LAB in labs for _, labs in self.draws),
            "results": self.results, "orders": self.orders,
            "orders_never_done": self.never, "overdue": self.overdue,
            "starts": counts["start"], "holds": counts["hold"], "reductions": counts["reduce"],
            "stops": counts["stop"], "resumes": counts["resume"], "referrals": self.referrals,
            "final_state": "; ".join(self.p.states), "drug_status": self.status[0],
            "episodes": len(episodes),
        }
        # an intervention is a true alarm when an episode that would not resolve by itself is under
        # way that day (onset to over), a false alarm otherwise (noise, or a self-resolving episode)
        alarms = self.alarms()
        true_ = false_ = 0
        for d in alarms:
            if any(not e.self_resolving and e.onset <= d <= over for e, over in courses):
                true_ += 1
            else:
                false_ += 1
        row["interventions"] = len(alarms)
        row["true_alarms"] = true_
        row["false_alarms"] = false_
        for x in THRESHOLDS:
            crossed = detected = missed = lasting = lasting_missed = soon = 0
            delays: list[int] = []
            peaks: list[float] = []
            for e, over in courses:
                cross = e.crossing(x)
                if cross is None or cross > self.end:
                    continue
                crossed += 1
                lasting += not e.self_resolving
                acted = next((d for d, _ in interventions if e.onset <= d <= over), None)
                if acted is None:
                    missed += 1
                    lasting_missed += not e.self_resolving
                    continue
                detected += 1
                delays.append(max(0, (acted - cross).days))
                soon += delays[-1] <= 30
                peaks.append(self.worst(e, acted))
            row[f"lasting_{x}x"] = lasting
            row[f"lasting_missed_{x}x"] = lasting_missed
            row[f"within_30_{x}x"] = soon
            row[f"episodes_{x}x"] = crossed
            row[f"detected_{x}x"] = detected
            row[f"missed_{x}x"] = missed
            row[f"delays_{x}x"] = delays
            row[f"peaks_{x}x"] = peaks
        return row

    def alarms(self) -> list:
        """The days of the alarms: an intervention (hold, reduction, stop) while the drug was on
        at its full dose; a further intervention before a resume to the full dose (a stop after
        a hold) is the same alarm escalated."""
        out = []
        raised = False
        for d, k, _, fraction in self.drug_steps:
            if k in INTERVENTIONS:
                if not raised:
                    out.append(d)
                    raised = True
            elif fraction >= 1.0:  # a start or a resume to the full dose
                raised = False
        return out

    def course(self, e: "Episode") -> datetime.date:
        """The day an episode is over: the first day after its peak with the noise-free ALT at or
        below 1x ULN (the model's `normal_day`); the end of follow-up if it never is."""
        if e.normal_day is not None:
            return min(e.normal_day, self.end)
        if e.peak_day is not None and e.peak <= 1.0:
            return min(e.peak_day, self.end)
        day = max(e.peak_day or e.onset, e.onset)
        true = self.pt.true_multiple
        while day <= self.end:
            if true(INJURY_LAB, day) <= 1.0:
                return day
            day += ONE_DAY
        return self.end

    def worst(self, e: "Episode", acted: datetime.date) -> float:
        """The highest noise-free ALT multiple of the episode's course up to `acted`: its peak if
        that came first; else the value that day (the drug was on until then, so the excess was
        still rising to its peak)."""
        if e.peak_day is not None and e.peak_day <= acted:
            return round(float(e.peak), 3)
        return round(float(self.pt.true_multiple(INJURY_LAB, acted)), 3)

    def detail(self, start: datetime.date, end: datetime.date) -> dict:
        """A picture of the patient: noise-free ALT weekly, the results drawn (multiples of ULN),
        the orders given (window), the drug steps."""
        true = self.pt.true_multiple
        curve = []
        day = start
        while day <= end:
            curve.append((day.isoformat(), round(float(true(INJURY_LAB, day)), 4)))
            day += ONE_DAY * 3
        orders = []
        for s in self.p.steps:
            if s.get("type") == "action" and "window" in s:
                orders.append((s["date"], s["action"], s["window"][0], s["window"][1]))
        return {
            "curve": curve,
            "draws": [(d.isoformat(), list(labs)) for d, labs in self.draws],
            "results": self.result_points(),
            "orders": orders,
            "drug": [(d.isoformat(), k, s, f) for d, k, s, f in self.drug_steps],
            "episodes": [e.to_dict() for e in (Episode.of(x) for x in (getattr(self.pt, "episodes", None) or ()))],
        }

    def result_points(self) -> list:
        return [(d.isoformat(), lab, m) for d, lab, m in self.measured]


@dataclass(frozen=True)
class Episode:
    """An injury episode of the patient model, as the metrics read it."""

    kind: str
    onset: datetime.date
    cross3: datetime.date | None
    cross5: datetime.date | None
    peak: float
    peak_day: datetime.date | None
    self_resolving: bool
    normal_day: datetime.date | None = None  # the first day after the peak back at or below 1x ULN

    @classmethod
    def of(cls, e: Any) -> "Episode":
        if isinstance(e, Episode):
            return e
        get = (lambda k, d=None: e.get(k, d)) if isinstance(e, dict) else (lambda k, d=None: getattr(e, k, d))
        return cls(get("kind", "drug"), get("onset"), _first(get, "cross3", "crosses_3x", "day_3x", "cross_3x"),
                   _first(get, "cross5", "crosses_5x", "day_5x", "cross_5x"), float(get("peak", 0) or 0),
                   _first(get, "peak_day", "day_peak"), bool(_first(get, "self_resolving", "resolves", "transient")),
                   _first(get, "normal_day"))

    def crossing(self, x: int) -> datetime.date | None:
        return self.cross3 if x == 3 else self.cross5

    def to_dict(self) -> dict:
        iso = lambda d: d.isoformat() if d is not None else None  # noqa: E731
        return {"kind": self.kind, "onset": iso(self.onset), "cross3": iso(self.cross3), "cross5": iso(self.cross5),
                "peak": self.peak, "peak_day": iso(self.peak_day), "self_resolving": self.self_resolving,
                "normal_day": iso(self.normal_day)}


def _first(get, *names):
    for n in names:
        v = get(n)
        if v is not None:
            return v
    return None
