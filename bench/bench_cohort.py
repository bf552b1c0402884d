"""`rxwatch cohort`: the shipped anakinra protocol against its 6-monthly what-if variant on
10,000 and 100,000 synthetic patients over 2 years: wall and CPU time, patient-years per second,
peak memory and the scaling, side by side with a hand-written closed loop.

    .venv/bin/python bench/bench_cohort.py [--patients 10000,100000] [--years 2] [--jobs 2] [--serial]

Each run is what a user runs, in its own process, timed by wall clock, its peak memory sampled
over the whole process tree (bench/bench_audit.py's `measure`):

    rxwatch cohort protocols/anakinra_hepatotoxicity.rxw protocols/variants/anakinra_6monthly.rxw
        --model cohort/models/anakinra.yaml --patients N --years Y --seed S --jobs J --table OUT.parquet

(the closed loop of every patient through both protocols, the table, the metrics with 1,000
bootstrap resamples). `--serial` adds the smallest size with `--jobs 1` (the scaling over
processes). A patient-year is one patient followed one year; both protocols follow each, so
the protocol-patient-years are twice the cohort's.

The baseline (`--baseline N Y S` below), in one process: the same patient model (the same
patients, visits and results: cohort/patient.py) driven by a hand-written loop of the liver
track's core rules (baseline, first check at 1-2 months, then every 3-4 or 6-7 months; over
5 x ULN stop, over 3 x hold and repeat in 2-4 weeks; a neutrophil count monthly for 6 months,
then every 3 months), with no protocol engine: it says what the engine, the protocol's full
rules (two tracks, lookback, deviations, every action and step of the trace) and the metrics
cost over the floor of making the patients.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROTOCOLS = [ROOT / "protocols" / "anakinra_hepatotoxicity.rxw", ROOT / "protocols" / "variants" / "anakinra_6monthly.rxw"]
MODEL = ROOT / "cohort" / "models" / "anakinra.yaml"
RXWATCH = [sys.executable, "-m", "rxwatch.cli.main"]
START = datetime.date(2025, 1, 6)


def _measure():
    spec = importlib.util.spec_from_file_location("bench_audit", ROOT / "bench" / "bench_audit.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.measure


def baseline(n: int, years: float, seed: int) -> None:
    """The hand-written closed loop (see the module's docstring), both schedules; prints the
    draws per patient-year of each (a check that it did the work)."""
    from rxwatch.cohort.model import load_model

    model = load_model(MODEL)
    days = round(years * 365.25)
    end = START + datetime.timedelta(days=days - 1)
    one = datetime.timedelta(days=1)
    liver = ["ALT", "AST", "TBIL", "ALP", "INR"]
    for maintenance in ((91, 122), (183, 213)):
        draws = 0
        for i in range(n):
            pt = model.patient(seed=seed, index=i, start=START, days=days)
            orders = {"liver": (START, START + 14 * one), "anc": (START, START + 14 * one)}
            planned: dict = {}
            state, started = "baseline", None
            while True:
                for k, w in orders.items():
                    if (k, w) not in planned:
                        planned[(k, w)] = pt.attends(w[0], w[1] + one, None)
                days_ = [planned[(k, w)] for k, w in orders.items() if planned[(k, w)] is not None]
                if not days_:
                    break
                day = min(days_)
                if day > end:
                    break
                labs = []
                for k, w in list(orders.items()):
                    if planned[(k, w)] == day or w[0] <= day:
                        labs += liver if k == "liver" else ["ANC"]
                results = {r.lab: r for r in pt.measure(day, labs)}
                draws += 1
                if "ALT" in results:
                    x = max(float(results[lab].value) / 40 for lab in ("ALT", "AST") if lab in results)
                    if state == "baseline":
                        state, started = "on", day
                        pt.drug(day, "on", 1.0)
                        orders["liver"] = (day + 30 * one, day + 61 * one)
                    elif state in ("on", "held"):
                        if x > 5:
                            state = "stopped"
                            pt.drug(day, "stopped", 1.0)
                            orders.pop("liver", None)
                            orders.pop("anc", None)
                        elif x > 3:
                            if state == "on":
                                pt.drug(day, "held", 1.0)
                            state = "held"
                            orders["liver"] = (day + 14 * one, day + 28 * one)
                        else:
                            if state == "held":
                                pt.drug(day, "on", 1.0)
                            state = "on"
                            orders["liver"] = (day + maintenance[0] * one, day + maintenance[1] * one)
                if "ANC" in results and "anc" in orders:
                    monthly = started is None or (day - started).days < 182
                    orders["anc"] = (day + (21 if monthly else 77) * one, day + (35 if monthly else 91) * one)
                if state == "stopped":
                    break
            pt.episodes  # the truth the metrics read
        print(f"baseline maintenance {maintenance}: {draws / (n * years):.2f} draws per patient-year")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--patients", default="10000,100000")
    ap.add_argument("--years", type=float, default=2.0)
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--serial", action="store_true", help="also the smallest size with --jobs 1")
    ap.add_argument("--no-baseline", action="store_true")
    ap.add_argument("--baseline", nargs=3, metavar=("N", "YEARS", "SEED"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.baseline:
        baseline(int(a.baseline[0]), float(a.baseline[1]), int(a.baseline[2]))
        return
    measure = _measure()
    sizes = [int(x) for x in a.patients.split(",")]
    folder = Path(tempfile.mkdtemp(prefix="rxwatch-bench-cohort-"))
    print(f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; load average at start: "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}; {os.cpu_count()} cores; Python {sys.version.split()[0]}")
    print("| patients | years | jobs | wall | CPU | patient-years/s (wall) | protocol-patient-years/s per CPU s | peak MB | load after |")
    print("|---|---|---|---|---|---|---|---|---|")
    runs = [(n, a.jobs) for n in sizes]
    if a.serial:
        runs.insert(0, (sizes[0], 1))
    walls = {}
    for n, jobs in runs:
        out = folder / f"cohort-{n}-{jobs}.parquet"
        wall, peak, status, cpu = measure(RXWATCH + ["cohort", *map(str, PROTOCOLS), "--model", str(MODEL),
                                                     "--patients", str(n), "--years", f"{a.years:g}", "--seed", str(a.seed),
                                                     "--jobs", str(jobs), "--table", str(out)])
        py = n * a.years
        walls[(n, jobs)] = wall
        print(f"| {n:,} | {a.years:g} | {jobs} | {wall:.1f} s (exit {status}) | {cpu:.1f} s | {py / wall:,.0f} "
              f"| {2 * py / cpu:,.0f} | {peak:,.0f} | {os.getloadavg()[0]:.2f} |", flush=True)
    if len(sizes) > 1:
        small, big = sizes[0], sizes[-1]
        ratio = walls[(big, a.jobs)] / walls[(small, a.jobs)]
        print(f"scaling {small:,} -> {big:,} patients (x{big / small:g}): wall x{ratio:.2f}")
    if a.serial:
        print(f"{sizes[0]:,} patients: jobs 1 -> {a.jobs}: wall x{walls[(sizes[0], a.jobs)] / walls[(sizes[0], 1)]:.2f}")
    if not a.no_baseline:
        n = sizes[0]
        bwall, bpeak, _, bcpu = measure([sys.executable, __file__, "--baseline", str(n), f"{a.years:g}", str(a.seed)])
        py = n * a.years
        print(f"hand-written loop, {n:,} patients x {a.years:g} years, both schedules, one process: {bwall:.1f} s wall, "
              f"{bcpu:.1f} s CPU, {2 * py / bcpu:,.0f} protocol-patient-years per CPU s, peak {bpeak:,.0f} MB")
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
