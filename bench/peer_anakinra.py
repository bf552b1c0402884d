"""The anakinra liver pathway written by hand: the peer of `bench/bench_inputs.py`.

    python bench/peer_anakinra.py KIND FILE TRACE [--fact indication=...]

KIND is json, csv, yaml or fhir. What a team would write without rxwatch to run the first
release's anakinra pathway (bench/anakinra_v1.rxw, the pathway bench/bench_simulate.py's
pytransitions peer encodes too) over one patient's file: the format's standard reader (the
`json` module, the `csv` module, PyYAML's C loader), results grouped by day, the rules as
if/elif in plain Python, numbers as floats, orders with their windows (fulfilled by ALT or AST
once open, overdue the day after they close, withdrawn when the pathway ends), and the trace
written as indented JSON: the same steps (date, type, state, action, from, to, trigger, window,
options, kind) as `rxwatch simulate` gives for that protocol, which bench_inputs.py checks
before timing. It reads what the bench writes (lab results; no clinical events, fact changes or
recorded choices, which the bench's files never hold), takes the protocol's own units, and
converts bilirubin in umol/L by its molar mass. Standard library and PyYAML only, so that its
time is the time of such a program.
"""

from __future__ import annotations

import calendar
import datetime
import json
import sys

ULN = {"ALT": 40.0, "AST": 40.0, "TBIL": 1.2, "ALP": 120.0}
TBIL_MOLAR_MASS = 584.66  # g/mol: umol/L x 584.66 / 10,000 = mg/dL
FULFIL = ("ALT", "AST")
STILLS = ("stills_disease", "hlh_mas")
SR = ["seed-review"]
CS = ["ctcae-v5", "seed-review"]
GRADING = ["ctcae-v5", "fda-dili-2009", "seed-review"]
D1 = datetime.timedelta(days=1)


def add_months(day: datetime.date, n: int) -> datetime.date:
    y, m = divmod(day.month - 1 + n, 12)
    year, month = day.year + y, m + 1
    return day.replace(year=year, month=month, day=min(day.day, calendar.monthrange(year, month)[1]))


def shift(day: datetime.date, amount: int, unit: str) -> datetime.date:
    if unit == "months":
        return add_months(day, amount)
    return day + datetime.timedelta(days=amount * (7 if unit == "weeks" else 1))


# ---------------------------------------------------------------------------- reading

def read(kind: str, path: str, facts: dict) -> tuple[str | None, list]:
    """(the file's start or None, [(date text, lab, value, unit, uln or None), ...])."""
    if kind == "csv":
        import csv

        with open(path, newline="") as f:
            return None, [(r["date"], r["lab"], float(r["value"]), r.get("unit") or None,
                           float(r["uln"]) if r.get("uln") else None) for r in csv.DictReader(f)]
    if kind == "fhir":
        with open(path) as f:
            bundle = json.load(f)
        codes = {"1742-6": "ALT", "1920-8": "AST", "1975-2": "TBIL", "6768-6": "ALP", "6301-6": "INR"}
        out = []
        for e in bundle["entry"]:
            r = e["resource"]
            if r["resourceType"] == "Observation":
                q = r["valueQuantity"]
                high = (r.get("referenceRange") or [{}])[0].get("high")
                out.append((r["effectiveDateTime"][:10], codes[r["code"]["coding"][0]["code"]], float(q["value"]),
                            q.get("unit"), float(high["value"]) if high else None))
        return None, out
    if kind == "yaml":
        import yaml

        with open(path) as f:
            doc = yaml.load(f, Loader=yaml.CSafeLoader)
    else:
        with open(path) as f:
            doc = json.load(f)
    facts.update((doc.get("patient") or {}).get("facts") or {})
    return str(doc["start"]), [(str(e["date"]), e["lab"], float(e["value"]), e.get("unit"), e.get("uln"))
                               for e in doc["events"]]


def multiple(lab: str, value: float, unit: str | None, uln: float | None) -> float:
    """The result in multiples of its upper limit: its own limit (same unit) when given, else the
    protocol's, in the protocol's unit."""
    if uln:
        return value / uln
    if lab == "TBIL" and unit == "umol/L":
        value = value * TBIL_MOLAR_MASS / 10000
    return value / ULN[lab]


# ---------------------------------------------------------------------------- the pathway

class Order:
    __slots__ = ("start", "end", "overdue")

    def __init__(self, start, end):
        self.start, self.end, self.overdue = start, end, False


class Patient:
    def __init__(self, facts: dict, start: datetime.date) -> None:
        self.facts = facts
        self.state = "baseline"
        self.baseline_was_abnormal = self.recovered_from_moderate = self.dose_modified = False
        self.order: Order | None = None  # the one action that orders: order_lfts
        self.steps: list = []
        self.day, self.iso = start, start.isoformat()
        self.tx = self.bili = self.inr = None

    # steps
    def do(self, action, sources, window=None, options=None):
        step = {"date": self.iso, "type": "action", "action": action, "state": self.state}
        if options is not None:
            step["options"] = list(options)
        if window is not None:
            start, end = shift(self.day, window[0], window[2]), shift(self.day, window[1], window[2])
            step["window"] = [start.isoformat(), end.isoformat()]
            self.order = Order(start, end)
        step["sources"] = list(sources)
        self.steps.append(step)

    def go(self, dest, because, sources, trigger="panel", actions=None):
        """A rule fires: its transition step, the target's enter step, the rule's actions, the
        target's entry actions (dest None: `stay`, the rule's actions only)."""
        self.steps.append({"date": self.iso, "type": "transition", "from": self.state, "to": dest or self.state,
                           "trigger": trigger, "because": because, "sources": list(sources)})
        if dest is not None:
            self.state = dest
            step = {"date": self.iso, "type": "enter", "state": dest}
            self.steps.append(step)
            if dest == "off_treatment" and self.order is not None:
                step["withdrawn"] = ["order_lfts"]
                self.order = None
        if actions is not None:
            actions()
        if dest is not None:
            entry = ENTRY.get(dest)
            if entry is not None:
                entry(self)

    # grading (a missing value is unknown: a comparison with it is false)
    def severe(self):
        tx, bili, inr = self.tx, self.bili, self.inr
        return tx is not None and (tx > 5 or (tx > 3 and bili is not None and bili > 2)
                                   or (tx > 3 and inr is not None and inr > 1.5))

    def moderate(self):
        return self.tx is not None and 3 < self.tx <= 5

    def mild(self):
        tx, bili = self.tx, self.bili
        return tx is not None and (1 < tx <= 3 or (bili is not None and 1 < bili and tx <= 3))

    def enhanced(self):
        f = self.facts
        return bool(f.get("liver_disease") or f.get("hepatotoxic_comedication") or self.baseline_was_abnormal
                    or self.recovered_from_moderate)

    # entry actions
    def enter_baseline(self):
        self.do("order_lfts", SR, (0, 14, "days"))
        f = self.facts
        if f.get("obesity") or f.get("diabetes") or f.get("hyperlipidemia"):
            self.do("flag_metabolic_risk", SR)

    def enter_baseline_abnormal(self):
        self.do("defer_initiation", SR)
        self.do("evaluate_other_causes", SR)
        self.do("refer_hepatology", SR)
        self.do("order_lfts", SR, (2, 4, "weeks"))

    def enter_maintenance(self):
        if self.enhanced():
            self.do("order_lfts", ["seed-review", "rxwatch-convention"], (1, 2, "months"))
        else:
            self.do("order_lfts", SR, (3, 4, "months"))

    def enter_mild_elevation(self):
        self.do("order_lfts", SR, (2, 4, "weeks"))
        if self.facts.get("indication") in STILLS:
            self.do("review_clinical_picture", SR)

    def enter_moderate_elevation(self):
        self.do("hold_anakinra", ["seed-review", "kineret-us-pi"], options=("hold_anakinra", "reduce_dose"))
        self.dose_modified = True
        self.do("evaluate_other_causes", SR)
        self.do("order_lfts", SR, (2, 4, "weeks"))

    def enter_persistent_elevation(self):
        self.do("refer_hepatology", SR)
        self.do("order_lfts", SR, (2, 4, "weeks"))

    def enter_stopped(self):
        self.do("discontinue_anakinra", ["seed-review", "kineret-us-pi", "livertox-anakinra", "canna-2009", "taylor-2016"])
        self.do("evaluate_other_causes", ["seed-review", "livertox-anakinra"])
        self.do("refer_hepatology", ["seed-review", "livertox-anakinra"])
        self.do("order_lfts", ["rxwatch-convention"], (1, 2, "weeks"))

    # rule actions
    def start_drug(self):
        self.do("start_anakinra", [])
        if self.facts.get("indication") in STILLS:
            self.do("order_lfts", ["seed-review", "kineret-eu-smpc"], (2, 4, "weeks"))
        else:
            self.do("order_lfts", SR, (1, 2, "months"))

    def resume(self):
        self.do("resume_anakinra", SR)
        self.dose_modified = False
        self.recovered_from_moderate = True

    # a day's panel
    def panel(self, results: dict) -> None:
        xs = [results[lab] for lab in FULFIL if lab in results]
        self.tx = max(xs) if xs else None
        self.bili = results.get("TBIL")
        self.inr = results.get("INR")
        if self.order is not None and self.order.start <= self.day and xs:
            self.order = None  # fulfilled: ALT or AST, on or after the window opens
        s, tx, bili, inr = self.state, self.tx, self.bili, self.inr
        if s == "baseline":
            if self.severe() or self.moderate() or (bili is not None and bili > 2) or (inr is not None and inr > 1.5):
                self.go("baseline_abnormal", "severe or moderate or bili > 2 or (known(INR) and INR > 1.5)", SR)
            else:
                def actions():
                    if (tx is not None and tx > 1) or (bili is not None and bili > 1):
                        self.baseline_was_abnormal = True
                    self.start_drug()
                self.go("early_check", "", ["seed-review", "kineret-eu-smpc"], actions=actions)
        elif s == "baseline_abnormal":
            if tx is not None and tx <= 3 and bili is not None and bili <= 2 and not (inr is not None and inr > 1.5):
                def actions():
                    self.baseline_was_abnormal = True
                    self.start_drug()
                self.go("early_check", "tx <= 3 and bili <= 2 and not (known(INR) and INR > 1.5)", SR, actions=actions)
            else:
                self.go(None, "", SR, actions=lambda: self.do("order_lfts", SR, (2, 4, "weeks")))
        elif s in ("early_check", "maintenance", "mild_elevation"):
            if self.severe():
                self.go("stopped", "severe", GRADING)
            elif self.moderate():
                self.go("moderate_elevation", "moderate", CS)
            elif self.mild():
                self.go("persistent_elevation" if s == "mild_elevation" else "mild_elevation", "mild", CS)
            else:
                self.go("maintenance", "", SR)
        elif s == "moderate_elevation":
            if self.severe():
                self.go("stopped", "severe", GRADING)
            elif self.moderate() or self.mild():
                self.go("persistent_elevation", "moderate or mild", CS)
            else:
                self.go("maintenance", "", SR, actions=self.resume)
        elif s == "persistent_elevation":
            if self.severe():
                self.go("stopped", "severe", GRADING)
            elif self.moderate() or self.mild():
                self.go(None, "moderate or mild", CS, actions=lambda: self.do("order_lfts", SR, (2, 4, "weeks")))
            else:
                self.go("maintenance", "", SR, actions=lambda: self.dose_modified and self.resume())
        elif s == "stopped":
            if tx is not None and tx <= 1 and bili is not None and bili <= 1:
                self.go("off_treatment", "tx <= 1 and bili <= 1",
                        ["canna-2009", "livertox-anakinra", "seed-review", "taylor-2016"],
                        actions=lambda: self.do("specialist_review_before_rechallenge", SR))
            else:
                self.go(None, "", ["rxwatch-convention"],
                        actions=lambda: self.do("order_lfts", ["rxwatch-convention"], (1, 2, "weeks")))


ENTRY = {name[len("enter_"):]: fn for name, fn in vars(Patient).items() if name.startswith("enter_")}


def run(facts: dict, start: datetime.date, days: list, until: datetime.date) -> dict:
    """The day loop: each day with results, and the days an order falls overdue."""
    p = Patient(facts, start)
    p.steps.append({"date": p.iso, "type": "enter", "state": "baseline"})
    p.enter_baseline()
    i = 0
    while True:
        day = days[i][0] if i < len(days) else None
        o = p.order
        if o is not None and not o.overdue and (day is None or o.end + D1 < day):
            day = o.end + D1
        if day is None or day > until:
            break
        p.day, p.iso = day, day.isoformat()
        if o is not None and not o.overdue and o.end < day:
            o.overdue = True
            p.steps.append({"date": p.iso, "type": "deviation", "kind": "overdue", "action": "order_lfts",
                            "window": [o.start.isoformat(), o.end.isoformat()]})
        if i < len(days) and days[i][0] == day:
            if p.state != "off_treatment":
                p.panel(days[i][1])
            i += 1
    open_orders = [] if p.order is None else [
        {"action": "order_lfts", "window": [p.order.start.isoformat(), p.order.end.isoformat()]}]
    return {"steps": p.steps, "final_state": p.state, "open_orders": open_orders}


def main(argv: list[str]) -> int:
    kind, path, out = argv[:3]
    facts: dict = {}
    for i, a in enumerate(argv):
        if a == "--fact":
            name, _, value = argv[i + 1].partition("=")
            facts[name] = value
    start, results = read(kind, path, facts)
    by_day: dict = {}
    for date, lab, value, unit, uln in results:
        if lab in ULN or lab == "INR":
            by_day.setdefault(date, {})[lab] = value if lab == "INR" else multiple(lab, value, unit, uln)
    days = sorted((datetime.date.fromisoformat(d), panel) for d, panel in by_day.items())
    first = datetime.date.fromisoformat(start) if start else days[0][0]
    until = days[-1][0] if days else first
    trace = {"protocol": {"name": "anakinra_hepatotoxicity"}, "start": first.isoformat(),
             "until": until.isoformat(), **run(facts, first, days, until)}
    with open(out, "w", encoding="utf-8") as f:
        json.dump(trace, f, indent=2, ensure_ascii=False)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
