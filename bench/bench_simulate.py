"""Replay throughput of the simulator, side by side with the same pathway on pytransitions.

    .venv/bin/python bench/bench_simulate.py [--patients 1000] [--scale 10] [--repeat 5] [--seed 7] [--gc on|off]
                                             [--big 100] [--processes]

What is measured: replaying synthetic anakinra patients (a seeded RNG; lab panels every 2 weeks
to 5 months graded mostly normal, some mild, moderate or severe, a missing AST now and then,
results with their own ULN, recorded choices, clinical events, fact changes) through

- rxwatch: `Machine(graph).run(timeline)`, the protocol compiled once from
  bench/anakinra_v1.rxw (the first release's anakinra pathway, which the peer encodes by hand;
  the shipped protocol is a statechart now), with exact numbers: every value is a `Fraction` or an int, as
  the timeline readers give them, and so is all the arithmetic of the guards, and
- the peer: the same pathway written by hand on the `transitions` library (pytransitions):
  the patient is the model, guards are condition methods grading the panel (tx, bili and INR
  computed once per panel), entry actions are on_enter callbacks, rule actions `before`
  callbacks, `stay` rules internal transitions, with the same day loop and order bookkeeping
  (orders opened by windows, fulfilled by panels, overdue deviations, withdrawn at the end) and
  the same steps. It runs in three ways (PEER_MODES): a model per patient on one shared
  Machine (the main comparison), a Machine per patient, and one model reset for every patient.
- for reference, the peer's own code (model, callbacks, day loop) with its transitions dispatched
  by a dict instead of pytransitions: the part of the peer's time that is not the library;
- and rxwatch's statechart path on the same flat protocol (`Machine(graph, chart=True)`: the
  configuration, every region evaluated, conflicts resolved; the same steps), which tells what
  a statechart's replay costs over the flat one;
- and the engine API (`Machine.start`, `Patient.feed` for each day, `finish`), the way the cohort
  simulator drives a patient: the same replay as `Machine.run` (one day loop), a call per day.

Before timing, the script checks that every runner gives the same steps as rxwatch (date,
type, state, action, from, to, trigger, window, options, kind), the final state and the open
orders, for every patient, so the peer is known to do the same work (rxwatch also writes a
`set` step for each variable set, and the `values` its guards read, which the peer does not:
they are left out of the comparison and counted in rxwatch's time). Throughput is timeline
events (each lab result, clinical event, fact change and choice) per CPU second of the process
(`time.process_time`, so that other work on a shared machine counts less), at N and N*scale
patients: linear scaling shows as an unchanged rate. The runners take turns (--repeat rounds);
each times its patients in chunks of --chunk (100), and a runner's time is the sum over the
chunks of each chunk's best round: on a loaded machine a short pass can fall between two other
processes' turns and a long one cannot, so best-of whole passes favour whichever runner is
quickest; chunks give every runner the same chance (the best whole passes are printed too). The
inputs are built first and frozen out of the garbage collector's way (`gc.freeze`); the
collector stays on during the runs unless --gc off. Figures only; nothing is asserted.

With --processes, rxwatch and the main peer again, each in a process of its own, as each is
run: a process builds the same patients, replays them once untimed and once timed by chunks;
the two processes take turns --repeat times and each chunk's best is kept. In the runs above,
seven runners share one process and its heap, and at 10,000 patients (120 MB of timelines)
what one runner leaves in the caches and the allocator slows the next: rxwatch's short replay
feels it most.

Then, untimed, rxwatch's memory (tracemalloc, on the N patients): the inputs, what a replay
needs beyond them, what the Machine keeps (windows and orders made once per action and
calendar day, shared by every patient) and what a kept trace weighs. With --big K, rxwatch
alone replays N*K patients (the peers would take minutes), generated and replayed in batches
of N*scale so that the inputs never all sit in memory: the rate should not move.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import gc
import random
import sys
import resource
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The first release's anakinra pathway (v1), which the peer below encodes by hand (see its header).
PROTOCOL = ROOT / "bench" / "anakinra_v1.rxw"

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe  # noqa: E402
from rxwatch.compiler import compile_file  # noqa: E402
from rxwatch.simulator.engine import Machine  # noqa: E402
from rxwatch.simulator.expr import shift  # noqa: E402
from rxwatch.compiler.ir import exact  # noqa: E402
from rxwatch.inputs.model import ClinicalEvent, Choice, FactChange, LabResult, Loc, Timeline  # noqa: E402

INDICATIONS = ["rheumatoid_arthritis", "stills_disease", "hlh_mas", "covid19", "autoinflammatory", "other"]
GRADES = ["normal", "mild", "moderate", "severe"]
LOC = Loc("<bench>", 0)


# ---------------------------------------------------------------------------- synthetic patients

def patients(n: int, seed: int) -> list[Timeline]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        start = datetime.date(2024, 1, 1) + datetime.timedelta(days=rng.randrange(365))
        facts = {
            "liver_disease": rng.random() < 0.05,
            "hepatotoxic_comedication": rng.random() < 0.1,
            "obesity": rng.random() < 0.2,
            "diabetes": rng.random() < 0.1,
            "hyperlipidemia": rng.random() < 0.1,
            "indication": rng.choice(INDICATIONS),
        }
        events: list = []
        day = start + datetime.timedelta(days=rng.randrange(0, 5))
        for _ in range(rng.randint(8, 20)):
            grade = rng.choices(GRADES, weights=[80, 12, 6, 2])[0]
            lo, hi = {"normal": (10, 40), "mild": (41, 120), "moderate": (121, 200), "severe": (201, 500)}[grade]
            alt = round(rng.uniform(lo, hi), 1)
            own = 33 if rng.random() < 0.1 else None
            events.append(LabResult(day, "ALT", exact(alt), own, LOC))
            if rng.random() > 0.05:
                events.append(LabResult(day, "AST", exact(round(alt * rng.uniform(0.6, 1.1), 1)), None, LOC))
            tbil = rng.uniform(1.5, 4.0) if grade == "severe" and rng.random() < 0.5 else rng.uniform(0.3, 1.1)
            events.append(LabResult(day, "TBIL", exact(round(tbil, 2)), None, LOC))
            if rng.random() < 0.3:
                events.append(LabResult(day, "INR", exact(round(rng.uniform(0.9, 1.8), 2)), None, LOC))
            if rng.random() < 0.5:
                events.append(LabResult(day, "ALP", round(rng.uniform(40, 150)), None, LOC))
            if grade == "moderate" and rng.random() < 0.5:
                events.append(Choice(day, rng.choice(["hold_anakinra", "reduce_dose"]), LOC))
            r = rng.random()
            if r < 0.01:
                events.append(ClinicalEvent(day + datetime.timedelta(days=1), "jaundice", LOC))
            elif r < 0.02:
                events.append(ClinicalEvent(day + datetime.timedelta(days=2), "anakinra_stopped", LOC))
            elif r < 0.05:
                events.append(FactChange(day + datetime.timedelta(days=3), "hepatotoxic_comedication", True, LOC))
            day += datetime.timedelta(days=rng.choice([14, 21, 28, 42, 60, 90, 120, 150]))
        until = events[-1].date + datetime.timedelta(days=30)
        out.append(Timeline("<bench>", f"p{i:05d}", facts, start, until, tuple(events)))
    return out


# ---------------------------------------------------------------------------- the peer: pytransitions

D1 = datetime.timedelta(days=1)
LFT_LABS = frozenset(("ALT", "AST", "TBIL", "ALP", "INR"))
FULFIL = frozenset(("ALT", "AST"))
ULN = {"ALT": 40.0, "AST": 40.0, "TBIL": 1.2, "ALP": 120.0}
SR = ["seed-review"]
GRADING = ["ctcae-v5", "fda-dili-2009", "seed-review"]
CS = ["ctcae-v5", "seed-review"]
STILLS = ("stills_disease", "hlh_mas")


class PeerOrder:
    __slots__ = ("action", "start", "end", "labs", "overdue")

    def __init__(self, action, start, end, labs):
        self.action, self.start, self.end, self.labs, self.overdue = action, start, end, labs, False


class Patient:
    """A pytransitions model: one patient of the anakinra pathway. Conditions, entry actions and
    rule actions are its methods, named in the transition table as pytransitions intends."""

    # (source, dest, trigger) -> (because, sources) of the transition step
    META: dict = {}

    def __init__(self, tl: Timeline) -> None:
        self.tl = tl
        self.facts = dict(tl.facts)
        self.baseline_was_abnormal = self.recovered_from_moderate = self.dose_modified = False
        self.results, self.tx, self.bili, self.inr = {}, None, None, None
        self.orders, self.steps, self.last, self.used = {}, [], {}, set()
        self.choices = []
        self.trigger_kind = ""
        self.today, self.iso = tl.start, tl.start.isoformat()

    # ---- the panel and the grading (each condition reads values computed once per panel)
    def read_panel(self, results):
        panel = {r.lab: r for r in results}
        self.results = panel
        xs = []
        for lab in ("ALT", "AST"):
            r = panel.get(lab)
            if r is not None:  # the peer computes in floats, as hand-written code would
                xs.append(float(r.value) / (r.uln or ULN[lab]))
        self.tx = max(xs) if xs else None
        t = panel.get("TBIL")
        self.bili = float(t.value) / (t.uln or ULN["TBIL"]) if t is not None else None
        inr = panel.get("INR")
        self.inr = float(inr.value) if inr is not None else None

    @staticmethod
    def _gt(x, k):
        return x is not None and x > k

    def is_severe(self, *_):
        tx, gt = self.tx, self._gt
        return gt(tx, 5) or (gt(tx, 3) and gt(self.bili, 2)) or (gt(tx, 3) and gt(self.inr, 1.5))

    def is_moderate(self, *_):
        return self.tx is not None and 3 < self.tx <= 5

    def is_mild(self, *_):
        tx, bili = self.tx, self.bili
        return (tx is not None and 1 < tx <= 3) or (bili is not None and 1 < bili and tx is not None and tx <= 3)

    def is_moderate_or_mild(self, *_):
        return self.is_moderate() or self.is_mild()

    def baseline_bad(self, *_):
        return self.is_severe() or self.is_moderate() or self._gt(self.bili, 2) or self._gt(self.inr, 1.5)

    def baseline_ok(self, *_):
        tx, bili = self.tx, self.bili
        return tx is not None and tx <= 3 and bili is not None and bili <= 2 and not self._gt(self.inr, 1.5)

    def recovered(self, *_):
        return self.tx is not None and self.tx <= 1 and self.bili is not None and self.bili <= 1

    def enhanced(self):
        f = self.facts
        return f["liver_disease"] or f["hepatotoxic_comedication"] or self.baseline_was_abnormal or self.recovered_from_moderate

    # ---- steps and orders
    def do(self, action, sources, window=None, options=None):
        day = self.today
        step = {"date": self.iso, "type": "action", "action": action, "state": self.current}
        if options is not None:
            step["options"] = list(options)
        if window is not None:
            start = shift(day, window[0], window[2])
            end = shift(day, window[1], window[2])
            step["window"] = [start.isoformat(), end.isoformat()]
            if action == "order_lfts":
                self.orders.pop(action, None)
                self.orders[action] = PeerOrder(action, start, end, LFT_LABS)
        step["sources"] = list(sources)
        self.steps.append(step)
        self.last[action] = day

    def one_of(self, options, sources):
        taken = options[0]
        for c in self.choices:
            if c.action in options and id(c) not in self.used:
                self.used.add(id(c))
                taken = c.action
                break
        self.do(taken, sources, options=options)

    def enter_step(self, state):
        self.current = state
        step = {"date": self.iso, "type": "enter", "state": state}
        self.steps.append(step)
        if state == "off_treatment" and self.orders:
            step["withdrawn"] = list(self.orders)
            self.orders.clear()

    def record(self, *_, source, dest, trigger):
        because, sources = self.META[(source, dest, trigger)]
        self.steps.append({"date": self.iso, "type": "transition", "from": source, "to": dest or source,
                           "trigger": self.trigger_kind, "because": because, "sources": list(sources)})
        if dest is not None:
            self.enter_step(dest)

    # ---- entry actions (on_enter)
    def entry_baseline(self, *_):
        self.do("order_lfts", SR, (0, 14, "days"))
        f = self.facts
        if f["obesity"] or f["diabetes"] or f["hyperlipidemia"]:
            self.do("flag_metabolic_risk", SR)

    def entry_baseline_abnormal(self, *_):
        self.do("defer_initiation", SR)
        self.do("evaluate_other_causes", SR)
        self.do("refer_hepatology", SR)
        self.do("order_lfts", SR, (2, 4, "weeks"))

    def entry_maintenance(self, *_):
        if self.enhanced():
            self.do("order_lfts", ["seed-review", "rxwatch-convention"], (1, 2, "months"))
        else:
            self.do("order_lfts", SR, (3, 4, "months"))

    def entry_mild_elevation(self, *_):
        self.do("order_lfts", SR, (2, 4, "weeks"))
        if self.facts["indication"] in STILLS:
            self.do("review_clinical_picture", SR)

    def entry_moderate_elevation(self, *_):
        self.one_of(("hold_anakinra", "reduce_dose"), SR)
        self.dose_modified = True
        self.do("evaluate_other_causes", SR)
        self.do("order_lfts", SR, (2, 4, "weeks"))

    def entry_persistent_elevation(self, *_):
        self.do("refer_hepatology", SR)
        self.do("order_lfts", SR, (2, 4, "weeks"))

    def entry_stopped(self, *_):
        self.do("discontinue_anakinra", ["seed-review", "livertox-anakinra", "canna-2009", "taylor-2016"])
        self.do("evaluate_other_causes", ["seed-review", "livertox-anakinra"])
        self.do("refer_hepatology", ["seed-review", "livertox-anakinra"])
        self.do("order_lfts", ["rxwatch-convention"], (1, 2, "weeks"))

    # ---- rule actions (before, after the transition and enter steps)
    def start_first_check(self, *_):
        self.do("start_anakinra", [])
        if self.facts["indication"] in STILLS:
            self.do("order_lfts", ["seed-review", "kineret-eu-smpc"], (2, 4, "weeks"))
        else:
            self.do("order_lfts", SR, (1, 2, "months"))

    def start_after_normal_baseline(self, *_):
        if self._gt(self.tx, 1) or self._gt(self.bili, 1):
            self.baseline_was_abnormal = True
        self.start_first_check()

    def start_after_abnormal_baseline(self, *_):
        self.baseline_was_abnormal = True
        self.start_first_check()

    def resume_from_moderate(self, *_):
        self.do("resume_anakinra", SR)
        self.dose_modified = False
        self.recovered_from_moderate = True

    def resume_if_modified(self, *_):
        if self.dose_modified:
            self.resume_from_moderate()

    def repeat_2_4_weeks(self, *_):
        self.do("order_lfts", SR, (2, 4, "weeks"))

    def repeat_1_2_weeks(self, *_):
        self.do("order_lfts", ["rxwatch-convention"], (1, 2, "weeks"))

    def specialist_review(self, *_):
        self.do("specialist_review_before_rechallenge", SR)


STATES = ["baseline", "baseline_abnormal", "early_check", "maintenance", "mild_elevation", "moderate_elevation",
          "persistent_elevation", "stopped", "off_treatment"]
ON_TREATMENT = ["early_check", "maintenance", "mild_elevation", "moderate_elevation", "persistent_elevation"]


def transition_table() -> list[dict]:
    """The pathway's rules, in guard order, as pytransitions transitions (`lab_panel` is the
    panel trigger; dest None is an internal transition: rxwatch's `stay`)."""
    rows = []

    def add(trigger, source, dest, cond=None, actions=(), because="", sources=()):
        Patient.META[(source, dest, trigger)] = (because, list(sources))
        record = functools.partial(Patient.record, source=source, dest=dest, trigger=trigger)
        rows.append({"trigger": trigger, "source": source, "dest": dest, "conditions": cond or [],
                     "before": [_bound(record), *actions]})

    add("lab_panel", "baseline", "baseline_abnormal", "baseline_bad", (), "severe or moderate or bili > 2 or INR > 1.5", GRADING)
    add("lab_panel", "baseline", "early_check", None, ["start_after_normal_baseline"], "", ["kineret-eu-smpc", "seed-review"])
    add("lab_panel", "baseline_abnormal", "early_check", "baseline_ok", ["start_after_abnormal_baseline"],
        "tx <= 3 and bili <= 2 and not INR > 1.5", SR)
    add("lab_panel", "baseline_abnormal", None, None, ["repeat_2_4_weeks"], "", SR)
    for s in ("early_check", "maintenance", "mild_elevation"):
        add("lab_panel", s, "stopped", "is_severe", (), "severe", GRADING)
        add("lab_panel", s, "moderate_elevation", "is_moderate", (), "moderate", CS)
        add("lab_panel", s, "persistent_elevation" if s == "mild_elevation" else "mild_elevation", "is_mild", (), "mild", CS)
        add("lab_panel", s, "maintenance", None, (), "", SR)
    add("lab_panel", "moderate_elevation", "stopped", "is_severe", (), "severe", GRADING)
    add("lab_panel", "moderate_elevation", "persistent_elevation", "is_moderate_or_mild", (), "moderate or mild", CS)
    add("lab_panel", "moderate_elevation", "maintenance", None, ["resume_from_moderate"], "", SR)
    add("lab_panel", "persistent_elevation", "stopped", "is_severe", (), "severe", GRADING)
    add("lab_panel", "persistent_elevation", None, "is_moderate_or_mild", ["repeat_2_4_weeks"], "moderate or mild", CS)
    add("lab_panel", "persistent_elevation", "maintenance", None, ["resume_if_modified"], "", SR)
    add("lab_panel", "stopped", "off_treatment", "recovered", ["specialist_review"], "tx <= 1 and bili <= 1",
        ["canna-2009", "livertox-anakinra", "seed-review", "taylor-2016"])
    add("lab_panel", "stopped", None, None, ["repeat_1_2_weeks"], "", ["rxwatch-convention"])
    for s in ON_TREATMENT:
        for ev in ("jaundice", "encephalopathy"):
            add(ev, s, "stopped", None, (), "", SR)
        add("anakinra_stopped", s, "off_treatment", None, (), "", SR)
    return rows


class _bound:
    """A `before` callback that pytransitions calls with the model (send_event=True)."""

    __slots__ = ("fn",)

    def __init__(self, fn):
        self.fn = fn

    def __call__(self, event):
        self.fn(event.model)


PEER_MODES = {
    "model-per-patient": "one shared Machine; each patient a model, added for its replay and removed after (add_model)",
    "machine-per-patient": "Machine(model=patient, ...) for each patient, as pytransitions' first examples do",
    "one-reused-model": "one Machine and one model, reset for each patient: the cheapest way to drive pytransitions",
}


def build_peer(mode: str = "model-per-patient"):
    """A replay function `run(timeline) -> dict` on pytransitions, used as PEER_MODES says."""
    from transitions import Machine as TMachine

    if mode not in PEER_MODES:
        raise ValueError(f"unknown peer mode {mode!r}")
    states = [{"name": s, "on_enter": [f"entry_{s}"] if hasattr(Patient, f"entry_{s}") else []} for s in STATES]
    table = transition_table()
    options = dict(states=states, transitions=table, initial="baseline", auto_transitions=False,
                   ignore_invalid_triggers=True, send_event=True)
    if mode == "machine-per-patient":
        def run(tl: Timeline) -> dict:
            p = Patient(tl)
            TMachine(model=p, **options)
            return replay(p, tl)

        return run

    machine = TMachine(model=None, **options)
    if mode == "model-per-patient":
        def run(tl: Timeline) -> dict:
            p = Patient(tl)
            machine.add_model(p)
            try:
                return replay(p, tl)
            finally:
                machine.remove_model(p)

        return run

    shared = Patient(Timeline("<none>", "", {}, datetime.date(2000, 1, 1), None, ()))
    machine.add_model(shared)

    def run(tl: Timeline) -> dict:
        shared.__init__(tl)
        machine.set_state("baseline", model=shared)
        return replay(shared, tl)

    return run


class _Event:
    """What pytransitions hands to a callback (send_event=True): the model."""

    __slots__ = ("model",)

    def __init__(self, model) -> None:
        self.model = model


def build_by_hand():
    """The same model, callbacks and day loop with the transitions dispatched by a few lines of
    plain Python instead of pytransitions: what the peer costs without the library."""
    table: dict = {}
    for row in transition_table():
        table.setdefault((row["source"], row["trigger"]), []).append(row)
    entries = {s: getattr(Patient, f"entry_{s}", None) for s in STATES}

    class ByHand(Patient):
        def _fire(self, trigger: str) -> bool:
            for row in table.get((self.state, trigger), ()):
                cond = row["conditions"]
                if cond and not getattr(self, cond)():
                    continue
                event = _Event(self)
                for cb in row["before"]:
                    if isinstance(cb, str):
                        getattr(self, cb)()
                    else:
                        cb(event)
                if row["dest"] is not None:
                    self.state = row["dest"]
                    entry = entries[self.state]
                    if entry is not None:
                        entry(self)
                return True
            return False

        def lab_panel(self) -> bool:
            return self._fire("lab_panel")

        def trigger(self, name: str) -> bool:
            return self._fire(name)

    def run(tl: Timeline) -> dict:
        p = ByHand(tl)
        p.state = "baseline"
        return replay(p, tl)

    return run


def replay(p: Patient, tl: Timeline) -> dict:
    """The day loop of docs/simulation.md, driving the model's triggers."""
    days: list = []
    for date, events in tl.days:  # the timeline's days, as rxwatch reads them too
        d = (date, [], [], [])
        days.append(d)
        for ev in events:
            (d[1] if isinstance(ev, LabResult) else d[3] if isinstance(ev, Choice) else d[2]).append(ev)
    p.choices = days[0][3] if days and days[0][0] == tl.start else []
    p.enter_step("baseline")
    p.entry_baseline()
    i = 0
    until = tl.until
    while True:
        day = days[i][0] if i < len(days) else None
        for o in p.orders.values():
            if not o.overdue:
                late = o.end + D1
                if day is None or late < day:
                    day = late
        if day is None or day > until:
            break
        p.today, p.iso = day, day.isoformat()
        entry = days[i] if i < len(days) and days[i][0] == day else None
        p.choices = entry[3] if entry else []
        for o in list(p.orders.values()):
            if not o.overdue and o.end < day:
                o.overdue = True
                p.steps.append({"date": p.iso, "type": "deviation", "kind": "overdue", "action": o.action,
                                "window": [o.start.isoformat(), o.end.isoformat()]})
        if entry is not None:
            _, labs, others, _ = entry
            if labs:
                p.read_panel(labs)
                names = p.results.keys()
                # v2: ALT or AST fulfils the liver order, on or after its window opens
                for a in [a for a, o in p.orders.items() if o.start <= day and not FULFIL.isdisjoint(names)]:
                    del p.orders[a]
                if p.state != "off_treatment":
                    p.trigger_kind = "panel"
                    p.lab_panel()
            for ev in others:
                if isinstance(ev, ClinicalEvent):
                    if p.state != "off_treatment":
                        p.trigger_kind = "event"
                        p.trigger(ev.event)
                else:
                    p.facts[ev.fact] = ev.value
            i += 1
    return {"steps": p.steps, "final_state": p.state,
            "open_orders": [{"action": o.action, "window": [o.start.isoformat(), o.end.isoformat()]}
                            for o in p.orders.values()]}


# ---------------------------------------------------------------------------- measuring

KEYS = ("date", "type", "state", "action", "from", "to", "trigger", "window", "options", "kind")
CHART = "rxwatch, statechart path"
FED = "rxwatch, fed day by day"


def fed_day_by_day(machine: Machine):
    """The engine API (`Machine.start`, then `Patient.feed` for each day, then `finish`), as the
    cohort simulator drives it: the same replay as `Machine.run`, a call per day."""

    def run(tl: Timeline) -> dict:
        p = machine.start(tl.start, tl.facts, tl.path, patient=tl.patient)
        feed = p.feed
        for day, events in tl.days:
            feed(day, events)
        return p.finish(tl.until)

    return run


def projection(trace: dict) -> list[tuple]:
    # rxwatch's `set` steps (a variable set, with its value) have no counterpart in the peer, which
    # writes none: they are left out of the comparison, and rxwatch's time includes writing them
    return [tuple(str(s.get(k)) for k in KEYS) for s in trace["steps"] if s["type"] != "set"] + [
        ("final", trace["final_state"])] + [("open", o["action"], tuple(o["window"])) for o in trace["open_orders"]]


def timed(fn, items) -> float:
    """CPU seconds of this process (other work on a shared machine does not count)."""
    t0 = time.process_time()
    for x in items:
        fn(x)  # the trace is dropped at once, as a replay service would hand it on
    return time.process_time() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--patients", type=int, default=1000, help="patients at 1x (default 1000)")
    ap.add_argument("--scale", type=int, default=10, help="the second run has this many times more patients (default 10)")
    ap.add_argument("--repeat", type=int, default=5, help="best of this many interleaved runs (default 5)")
    ap.add_argument("--chunk", type=int, default=100,
                    help="time the patients in chunks of this many, each chunk's best of --repeat, summed "
                         "(default 100; 0: whole passes only)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--gc", choices=("on", "off"), default="on",
                    help="Python's cyclic garbage collector during the timed runs (default on, as in real use)")
    ap.add_argument("--big", type=int, default=0, metavar="K",
                    help="also replay PATIENTS*K patients through rxwatch alone, in batches (default: no)")
    ap.add_argument("--processes", action="store_true",
                    help="then rxwatch and the main peer again, each in a process of its own (the way each is "
                         "run), the processes taking turns --repeat times")
    ap.add_argument("--child", help=argparse.SUPPRESS)  # one runner's timed pass, in its own process
    args = ap.parse_args()
    if args.child:
        return child(args)

    import transitions

    graph = compile_file(str(PROTOCOL), verify=False).graph
    t0 = time.perf_counter()
    machine = Machine(graph)
    compile_ms = (time.perf_counter() - t0) * 1000
    runners = {"rxwatch": machine.run, **{f"pytransitions {m}": build_peer(m) for m in PEER_MODES},
               "python by hand, no library": build_by_hand(),
               CHART: Machine(graph, chart=True).run, FED: fed_day_by_day(machine)}

    print("rxwatch simulator vs the same pathway on pytransitions (bench/bench_simulate.py)")
    print(f"  command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(f"  {describe(transitions=transitions.__version__)}")
    print(f"  seed {args.seed}, best of {args.repeat}"
          + (f" for each chunk of {args.chunk} patients, summed" if args.chunk else " whole passes")
          + f", gc {args.gc}")
    print(f"  compiling the protocol into a Machine: {compile_ms:.1f} ms (once)")
    for m, what in PEER_MODES.items():
        print(f"  pytransitions {m}: {what}")
    print("  python by hand, no library: the peer's model, callbacks and day loop, transitions dispatched by "
          "a dict (what the peer's own code costs without pytransitions)")
    print(f"  {CHART}: the same protocol replayed the way statecharts are (configurations, every region "
          "evaluated, conflicts resolved), which a flat protocol does not need")
    print(f"  {FED}: Machine.start, Patient.feed for each day, finish (the engine API the cohort simulator "
          "drives)")

    table = []
    wholes = []  # the best whole pass of each runner, at each size
    for n in (args.patients, args.patients * args.scale):
        tls = patients(n, args.seed)
        events = sum(len(t.events) for t in tls)
        # the same work: every runner gives the same steps for every patient
        reference = [projection(machine.run(t)) for t in tls]
        steps = sum(sum(1 for p in r if len(p) == len(KEYS)) for r in reference)
        for name, run in runners.items():
            for t, ref in zip(tls, reference):
                got = projection(run(t))
                if got != ref:
                    first = next(k for k, (x, y) in enumerate(zip(ref + [None], got + [None])) if x != y)
                    print(f"{name} disagrees with rxwatch on patient {t.patient} at step {first}:\n"
                          f"  rxwatch: {ref[first:first + 3]}\n  {name}: {got[first:first + 3]}", file=sys.stderr)
                    return 1
        # the check's traces are not kept through the timed passes (a replay service holds its
        # inputs, not every trace it gave); the inputs stay in memory for the whole run: keep the
        # collector from walking them
        del reference, got
        gc.collect()
        gc.freeze()
        chunks = [tls[i:i + args.chunk] for i in range(0, len(tls), args.chunk)] if args.chunk else [tls]
        minima = {name: [float("inf")] * len(chunks) for name in runners}  # each chunk's best
        whole = {name: float("inf") for name in runners}  # the best whole pass
        for _ in range(args.repeat):
            for name, run in runners.items():  # interleaved, so that a busy moment hits every runner
                gc.collect()
                if args.gc == "off":
                    gc.disable()
                try:
                    mins = minima[name]
                    total = 0.0
                    for i, chunk in enumerate(chunks):
                        t = timed(run, chunk)
                        total += t
                        if t < mins[i]:
                            mins[i] = t
                    whole[name] = min(whole[name], total)
                finally:
                    gc.enable()
        gc.unfreeze()
        best = {name: sum(mins) for name, mins in minima.items()}
        table.append((n, events, steps, best))
        wholes.append(whole)
        del tls

    print("  every runner gave the same steps as rxwatch for every patient\n")
    names = list(runners)
    width = max(len(x) for x in names)
    print(f"  {'patients':>8} {'events':>8} {'steps':>8}  {'runner':<{width}} {'CPU time':>9} {'events/s':>10} {'time / rxwatch':>15}")
    for n, events, steps, best in table:
        for k, name in enumerate(names):
            lead = f"{n:>8} {events:>8} {steps:>8}" if k == 0 else " " * 26
            print(f"  {lead}  {name:<{width}} {best[name]:>7.3f} s {events / best[name]:>10,.0f} "
                  f"{best[name] / best['rxwatch']:>14.1f}x")
    (n1, e1, _, b1), (n2, e2, _, b2) = table
    print(f"\n  scaling {n1} -> {n2} patients ({e2 / e1:.1f}x the events): time grows "
          + ", ".join(f"{name} x{b2[name] / b1[name]:.1f}" for name in names))
    print("  (ratio: how many times longer the pytransitions peer takes than rxwatch for the same replays)")
    w1, w2 = wholes
    print(f"\n  rxwatch throughput / peer throughput, at {n1} and {n2} patients (the issue's target: at least 5x "
          f"pytransitions); then the same from the best whole passes:")
    for name in names[1:]:
        if name not in (CHART, FED):
            print(f"    {name:<{width}} {b1[name] / b1['rxwatch']:>5.1f}x {b2[name] / b2['rxwatch']:>5.1f}x"
                  f"   whole passes {w1[name] / w1['rxwatch']:>5.1f}x {w2[name] / w2['rxwatch']:>5.1f}x")
    print(f"\n  {CHART}: {b1[CHART] / b1['rxwatch']:.2f}x and {b2[CHART] / b2['rxwatch']:.2f}x the flat path's time")
    print(f"  {FED}: {b1[FED] / b1['rxwatch']:.2f}x and {b2[FED] / b2['rxwatch']:.2f}x Machine.run's time")

    if args.processes:
        processes(args)
    memory(graph, args.patients, args.seed)
    if args.big:
        big(graph, args, e2 / b2["rxwatch"])
    return 0


ALONE = ("rxwatch", "pytransitions model-per-patient")


def child(args) -> int:
    """One runner (`--child NAME`) in this process alone: the inputs built and frozen out of the
    collector's way, one untimed pass, then one timed pass by chunks, printed as JSON."""
    import json

    graph = compile_file(str(PROTOCOL), verify=False).graph
    run = Machine(graph).run if args.child == "rxwatch" else build_peer(args.child.split(" ", 1)[1])
    tls = patients(args.patients, args.seed)
    gc.collect()
    gc.freeze()
    for t in tls:
        run(t)
    chunks = [tls[i:i + args.chunk] for i in range(0, len(tls), args.chunk or len(tls))]
    print(json.dumps([timed(run, chunk) for chunk in chunks]))
    return 0


def processes(args) -> None:
    """rxwatch and the main peer each in a process of its own, as each is run: no other runner's
    objects in the heap or the caches between its passes. The processes take turns (--repeat
    rounds, so that a busy moment of a shared machine hits both); each chunk's best, summed."""
    import json
    import subprocess

    print(f"\n  each in a process of its own, taking turns ({args.repeat} rounds; each process builds the same "
          "patients, replays them once untimed, then once timed by chunks):")
    for n in (args.patients, args.patients * args.scale):
        minima: dict[str, list[float]] = {}
        for _ in range(args.repeat):
            for name in ALONE:
                out = subprocess.run([sys.executable, __file__, "--child", name, "--patients", str(n), "--seed",
                                      str(args.seed), "--chunk", str(args.chunk)], capture_output=True, text=True,
                                     check=True).stdout
                times = json.loads(out)
                minima[name] = [min(a, b) for a, b in zip(minima.get(name, times), times)]
        best = {name: sum(m) for name, m in minima.items()}
        print(f"    {n:>6} patients: rxwatch {best['rxwatch']:.3f} s, {ALONE[1]} {best[ALONE[1]]:.3f} s: "
              f"{best[ALONE[1]] / best['rxwatch']:.1f}x")


def memory(graph, n: int, seed: int) -> None:
    """rxwatch's memory on n patients, measured with tracemalloc (untimed)."""
    gc.collect()
    tracemalloc.start()
    try:
        m = Machine(graph)
        base = tracemalloc.get_traced_memory()[0]
        tls = patients(n, seed)
        inputs = tracemalloc.get_traced_memory()[0] - base
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        for t in tls:
            m.run(t)  # traces dropped
        after, peak = tracemalloc.get_traced_memory()
        kept = after - before  # what the Machine made once and keeps (per action and calendar day)
        tracemalloc.reset_peak()
        for t in tls:
            m.run(t)  # again: everything is made already
        again, peak_again = tracemalloc.get_traced_memory()
        traces = [m.run(t) for t in tls]
        held = tracemalloc.get_traced_memory()[0] - again
        del traces
    finally:
        tracemalloc.stop()
    print(f"\n  memory (tracemalloc, rxwatch, {n} patients; untimed):")
    print(f"    inputs (the timelines): {inputs / n / 1e3:.1f} KB a patient")
    days = len(getattr(m, "isos", ()))  # the days it has met (an rxwatch Machine keeps their ISO text)
    print(f"    kept by the Machine (windows, orders, ISO dates{f' of {days} calendar days' if days else ''}, shared by "
          f"every patient): {kept / 1e6:.2f} MB after the first pass, +{(again - after) / 1e3:.0f} KB after the second")
    print(f"    one replay beyond that (peak of the second pass, traces dropped): {(peak_again - again) / 1e3:.0f} KB")
    print(f"    a trace kept: {held / n / 1e3:.1f} KB a patient")


def big(graph, args, rate_at_scale: float) -> None:
    """rxwatch alone on patients*big patients, generated and replayed in batches (untimed
    generation; best of --repeat per batch, summed)."""
    batch = args.patients * args.scale
    total = args.patients * args.big
    m = Machine(graph)
    seconds = 0.0
    events = 0
    done = 0
    k = 0
    while done < total:
        n = min(batch, total - done)
        tls = patients(n, args.seed + 1000 + k)  # other patients than the table's, drawn the same way
        events += sum(len(t.events) for t in tls)
        gc.collect()
        gc.freeze()
        best = float("inf")
        for _ in range(args.repeat):
            gc.collect()
            if args.gc == "off":
                gc.disable()
            try:
                best = min(best, timed(m.run, tls))
            finally:
                gc.enable()
        gc.unfreeze()
        seconds += best
        done += n
        k += 1
        del tls
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3
    print(f"\n  rxwatch alone, {total} patients in batches of {batch}: {events} events in {seconds:.2f} s CPU, "
          f"{events / seconds:,.0f} events/s ({events / seconds / rate_at_scale:.2f} of the rate at "
          f"{batch} patients); peak RSS of the whole run {rss:.0f} MB")


if __name__ == "__main__":
    sys.exit(main())
