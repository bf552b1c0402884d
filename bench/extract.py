"""A realistic, seeded test extract for `rxwatch audit`: a clinic's patients on anakinra.

    .venv/bin/python bench/extract.py --patients 10000 --seed 1 -o extract.csv
    .venv/bin/python bench/extract.py --patients 200 --seed 1 --ndjson export/   # the same patients as FHIR Bulk NDJSON

Each patient starts anakinra on a day from July 2024 and is followed to the extract date
(2026-06-30) or for a shorter time. Tests follow the anakinra pathway's rhythm (a baseline, the
first check at 2-4 weeks, monthly then quarterly), and real care around it: a test is missed
with probability `--p-miss`, done late (1-6 weeks) with `--p-late`. Values are a person's own
set point with day-to-day noise on the log scale (ALT: within-subject CV 18 %, the literature
median; AST 12 %; bilirubin 23 %; neutrophils 15 %), and a few patients have an episode of
raised transaminases (`--p-episode`, peak 1.5-12 x ULN, rising over weeks and falling after).
Rows are written in no particular order (shuffled within blocks), as extracts come.

The CSV is the audit's contract: `patient,date,lab,value,unit,uln`; the NDJSON holds a
`Patient.ndjson` (one Patient per patient) and an `Observation.ndjson` (LOINC-coded, UCUM units,
the ULN as `referenceRange.high`). The two give the same audit table.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import random
from pathlib import Path

END = datetime.date(2026, 6, 30)
FIRST = datetime.date(2024, 7, 1)
# lab: (unit, ULN, set point median, between-person sigma (log), within-person CV, LOINC)
LABS = {
    "ALT": ("U/L", 40, 22.0, 0.30, 0.18, "1742-6"),
    "AST": ("U/L", 40, 23.0, 0.22, 0.12, "1920-8"),
    "TBIL": ("mg/dL", 1.2, 0.6, 0.35, 0.23, "1975-2"),
    "ANC": ("10*9/L", None, 3.8, 0.30, 0.15, "751-8"),
}
PANEL = ("ALT", "AST", "TBIL", "ANC")


def patient_rows(i: int, rng: random.Random, p_miss: float, p_late: float, p_episode: float):
    """(patient id, [(date, lab, value, unit, uln)]) for patient number i."""
    pid = f"p{i:07d}"
    start = FIRST + datetime.timedelta(days=rng.randrange((END - FIRST).days - 30))
    # most patients are still followed at the extract date; one in five was lost to follow-up
    stop = END if rng.random() < 0.8 else min(END, start + datetime.timedelta(days=rng.randrange(60, 900)))
    points = {lab: spec[2] * math.exp(rng.gauss(0, spec[3])) for lab, spec in LABS.items()}
    episode = None
    if rng.random() < p_episode:
        onset = start + datetime.timedelta(days=rng.randrange(14, 200))
        episode = (onset, math.exp(rng.uniform(math.log(1.5), math.log(12))), rng.uniform(10, 40))
    schedule = [0, rng.randrange(14, 29)]
    day = schedule[-1]
    gap = 30
    while True:
        day += gap
        if day > (stop - start).days:
            break
        schedule.append(day)
        if day > 180:
            gap = 91
    rows = []
    for k, offset in enumerate(schedule):
        if k > 0 and rng.random() < p_miss:
            continue
        if k > 0 and rng.random() < p_late:
            offset += rng.randrange(7, 43)
        date = start + datetime.timedelta(days=offset)
        if date > END:
            continue
        factor = 1.0
        if episode is not None:
            t = (date - episode[0]).days
            if 0 <= t:
                factor = 1 + (episode[1] - 1) * math.exp(-((t - episode[2]) / episode[2]) ** 2)
        labs = [lab for lab, p in (("ALT", 1), ("AST", 0.75), ("TBIL", 0.3), ("ANC", 0.7)) if k == 0 or rng.random() < p]
        for lab in labs:
            unit, uln, _, _, cv, _ = LABS[lab]
            value = points[lab] * math.exp(rng.gauss(0, cv))
            if lab in ("ALT", "AST"):
                value *= factor if lab == "ALT" else 1 + (factor - 1) * 0.7
            digits = 2 if lab in ("TBIL", "ANC") else 0
            text = f"{value:.{digits}f}" if digits else str(max(1, round(value)))
            rows.append((date.isoformat(), lab, text, unit, "" if uln is None or rng.random() < 0.5 else str(uln)))
    return pid, rows


def generate(patients: int, seed: int, *, p_miss=0.1, p_late=0.15, p_episode=0.03):
    """Yield (patient, rows) for every patient, in patient order."""
    rng = random.Random(seed)
    for i in range(patients):
        yield patient_rows(i, rng, p_miss, p_late, p_episode)


def write_csv(path: Path, patients: int, seed: int, *, block: int = 2000, **kw) -> int:
    """The extract as one CSV, rows shuffled within blocks of `block` patients; the number of rows."""
    rng = random.Random(seed + 1)
    n = 0
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write("patient,date,lab,value,unit,uln\n")
        buf = []
        for pid, rows in generate(patients, seed, **kw):
            buf.extend(f"{pid},{d},{lab},{v},{u},{uln}\n" for d, lab, v, u, uln in rows)
            if len(buf) > block * 20:
                rng.shuffle(buf)
                f.writelines(buf)
                n += len(buf)
                buf = []
        rng.shuffle(buf)
        f.writelines(buf)
        n += len(buf)
    return n


def write_ndjson(folder: Path, patients: int, seed: int, **kw) -> int:
    """The same extract as a FHIR Bulk Data export: Patient.ndjson and Observation.ndjson."""
    folder.mkdir(parents=True, exist_ok=True)
    n = 0
    with open(folder / "Patient.ndjson", "w", encoding="utf-8") as fp, open(folder / "Observation.ndjson", "w", encoding="utf-8") as fo:
        for pid, rows in generate(patients, seed, **kw):
            fp.write(json.dumps({"resourceType": "Patient", "id": pid}) + "\n")
            for k, (d, lab, v, u, uln) in enumerate(rows):
                unit, _, _, _, _, loinc = LABS[lab]
                obs = {"resourceType": "Observation", "id": f"{pid}-{k}", "status": "final",
                       "code": {"coding": [{"system": "http://loinc.org", "code": loinc}]},
                       "subject": {"reference": f"Patient/{pid}"}, "effectiveDateTime": d,
                       "valueQuantity": {"value": json.loads(v), "unit": u, "system": "http://unitsofmeasure.org", "code": u}}
                if uln:
                    obs["referenceRange"] = [{"high": {"value": json.loads(uln), "unit": u, "system": "http://unitsofmeasure.org", "code": u}}]
                fo.write(json.dumps(obs) + "\n")
                n += 1
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("-o", "--output", type=Path, help="the CSV to write")
    ap.add_argument("--ndjson", type=Path, help="a folder for the FHIR Bulk NDJSON export")
    ap.add_argument("--p-miss", type=float, default=0.1)
    ap.add_argument("--p-late", type=float, default=0.15)
    ap.add_argument("--p-episode", type=float, default=0.03)
    a = ap.parse_args()
    kw = dict(p_miss=a.p_miss, p_late=a.p_late, p_episode=a.p_episode)
    if a.output:
        print(f"{a.output}: {write_csv(a.output, a.patients, a.seed, **kw)} results of {a.patients} patients")
    if a.ndjson:
        print(f"{a.ndjson}: {write_ndjson(a.ndjson, a.patients, a.seed, **kw)} Observations of {a.patients} patients")


if __name__ == "__main__":
    main()
