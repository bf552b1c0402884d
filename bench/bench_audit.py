"""`rxwatch audit` over generated extracts: patients per second and peak memory, side by side with
a hand-written baseline.

    .venv/bin/python bench/bench_audit.py --patients 10000,100000 [--million] [--jobs 2]

For each size, bench/extract.py writes a seeded extract (CSV, unsorted); then, each in its own
process, timed by wall clock, its peak memory sampled every 50 ms over the whole process tree
(the workers included):

- `rxwatch audit PROTOCOL EXTRACT --table OUT.parquet --jobs N --pages 0`: the full audit
  (partitioning, replaying every patient through the anakinra statechart, the table);
- the baseline, hand-written and pandas-free (`--baseline` below): the csv module reads the
  extract, a dict of patients holds every row (the obvious way, which is what partitioning
  avoids), each patient's results are sorted and replayed through a simple rule set (grade ALT
  against its ULN: over 5 x stop, over 3 x repeat in 1-2 weeks, otherwise due in 1-2 months;
  overdue at the audit date), and a CSV of one row per patient is written.

The baseline knows one lab and three rules; the audit runs the whole protocol (two tracks,
the drug, every order's window, deviations, unassessable panels). The comparison says what the
whole protocol costs over the floor of reading the file in Python.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import importlib.util
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROTOCOL = ROOT / "protocols" / "anakinra_hepatotoxicity.rxw"
RXWATCH = [sys.executable, "-m", "rxwatch.cli.main"]


def _extract():
    spec = importlib.util.spec_from_file_location("extract", ROOT / "bench" / "extract.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def measure(argv: list[str]) -> tuple[float, float, int, float]:
    """(wall seconds, peak MB of the process tree, exit status, CPU seconds of the tree) of
    running argv (CPU: user + system of the process and every child it waited for)."""
    import resource

    import psutil

    before = resource.getrusage(resource.RUSAGE_CHILDREN)

    peak = 0
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    root = psutil.Process(proc.pid)
    stop = threading.Event()

    def sample():
        nonlocal peak
        while not stop.is_set():
            try:
                total = root.memory_info().rss + sum(c.memory_info().rss for c in root.children(recursive=True))
                peak = max(peak, total)
            except psutil.Error:
                pass
            time.sleep(0.05)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    _, err = proc.communicate()
    wall = time.perf_counter() - t0
    stop.set()
    th.join()
    if proc.returncode not in (0, 1):
        sys.stderr.write(err.decode("utf-8", "replace")[-2000:])
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, peak / 1e6, proc.returncode, cpu


def baseline(extract: str, as_of: str, out: str) -> None:
    """The hand-written audit of a simple rule set (see the module's docstring)."""
    day = datetime.date.fromisoformat(as_of)
    patients: dict[str, list] = {}
    with open(extract, newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        col = {name: i for i, name in enumerate(header)}
        p, d, lab, v, u = col["patient"], col["date"], col["lab"], col["value"], col["uln"]
        for row in reader:
            if row[lab] == "ALT":
                patients.setdefault(row[p], []).append((row[d], float(row[v]), float(row[u]) if row[u] else 40.0))
    with open(out, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["patient", "state", "due_from", "due_by", "days_overdue", "missed"])
        for patient, results in patients.items():
            results.sort()
            state, window, missed = "on", None, 0
            for date_text, value, uln in results:
                date = datetime.date.fromisoformat(date_text)
                if window is not None and date > window[1]:
                    missed += 1
                if state == "stopped":
                    continue
                ratio = value / uln
                if ratio > 5:
                    state, window = "stopped", None
                elif ratio > 3:
                    state, window = "repeat", (date + datetime.timedelta(weeks=1), date + datetime.timedelta(weeks=2))
                else:
                    state, window = "on", (date + datetime.timedelta(days=30), date + datetime.timedelta(days=61))
            late = (day - window[1]).days if window and window[1] < day else 0
            w.writerow([patient, state, window[0] if window else "", window[1] if window else "", late, missed])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--patients", default="10000,100000")
    ap.add_argument("--million", action="store_true", help="also 1,000,000 patients")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--keep", type=Path, help="a folder to keep the extracts in (reused when present)")
    ap.add_argument("--baseline", nargs=3, metavar=("EXTRACT", "AS_OF", "OUT"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.baseline:
        baseline(*a.baseline)
        return
    sizes = [int(x) for x in a.patients.split(",")] + ([1_000_000] if a.million else [])
    extract = _extract()
    folder = a.keep or Path(tempfile.mkdtemp(prefix="rxwatch-bench-audit-"))
    folder.mkdir(parents=True, exist_ok=True)
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; {os.cpu_count()} cores; jobs {a.jobs}")
    print("| patients | results | extract | rxwatch audit: wall | CPU | patients/s (wall) | peak MB | baseline: wall | CPU | patients/s | peak MB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for n in sizes:
        path = folder / f"extract-{n}-{a.seed}.csv"
        if not path.exists():
            extract.write_csv(path, n, a.seed)
        with open(path, "rb") as f:
            results = sum(1 for _ in f) - 1
        out = folder / f"audit-{n}.parquet"
        wall, peak, status, cpu = measure(RXWATCH + ["audit", str(PROTOCOL), str(path), "--as-of", "2026-06-30",
                                                "--table", str(out), "--jobs", str(a.jobs), "--pages", "0"])
        bwall, bpeak, _, bcpu = measure([sys.executable, __file__, "--baseline", str(path), "2026-06-30", str(folder / f"base-{n}.csv")])
        print(f"| {n:,} | {results:,} | {path.stat().st_size / 1e6:.0f} MB | {wall:.1f} s (exit {status}) | {cpu:.1f} s | {n / wall:,.0f} "
              f"| {peak:,.0f} | {bwall:.1f} s | {bcpu:.1f} s | {n / bwall:,.0f} | {bpeak:,.0f} |", flush=True)
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
