"""Mutation testing speed: `rxwatch test PROTOCOL SUITE --mutants`, end to end, beside a
hand-written baseline.

    .venv/bin/python bench/bench_mutants.py [--protocol anakinra_hepatotoxicity] [--suite anakinra]
                                            [--jobs 0] [--baseline-sample 10]

What is measured (wall clock, `time.perf_counter`):

- rxwatch: the command as a user runs it (`rxwatch test ... --mutants --format json`, in a
  subprocess: reading the protocol and the case files included), every mutant, over --jobs
  worker processes (0: one per core), each mutant stopping at its first failing case, the
  survivors judged by the verifier.
- the baseline: what a tester would write by hand without the tool's mutation support: for
  each mutant, write the mutated protocol to a file and run `rxwatch test MUTANT SUITE`'s
  library path on it (compile with verification, read and run every case, no early stop, one
  process), on every --baseline-sample-th mutant, extrapolated to all of them.

It prints mutants, the score, mutants per second and seconds per mutant for both, and the
ratio. Figures only; nothing is asserted (docs/performance.md keeps the figures).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--protocol", default="anakinra_hepatotoxicity")
    ap.add_argument("--suite", default="anakinra")
    ap.add_argument("--jobs", type=int, default=0)
    ap.add_argument("--baseline-sample", type=int, default=10, help="time every Nth mutant for the baseline (default 10)")
    args = ap.parse_args()

    protocol = ROOT / "protocols" / f"{args.protocol}.rxw"
    suite = ROOT / "tests" / "scenarios" / args.suite
    rxwatch = Path(sys.executable).with_name("rxwatch")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
          f"{time.strftime('%Y-%m-%d')}")

    t0 = time.perf_counter()
    proc = subprocess.run([str(rxwatch), "test", str(protocol), str(suite), "--mutants", "--format", "json",
                           "--jobs", str(args.jobs)], capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - t0
    if proc.returncode not in (0, 1):
        print(proc.stderr, file=sys.stderr)
        return 1
    data = json.loads(proc.stdout)["mutation"]
    s = data["summary"]
    n = s["mutants"]
    print(f"rxwatch test {protocol.name} {suite.name}/ --mutants: {n} mutants in {wall:.1f} s wall "
          f"({s['jobs']} processes): {n / wall:.1f} mutants/s, {wall / n * 1000:.0f} ms per mutant; "
          f"score {100 * (s['score'] or 0):.1f}% ({s['killed']} killed, {s['survived']} survived, "
          f"{s['equivalent']} equivalent, {s['stillborn']} do not compile)")
    runs = [m["cases_run"] for m in data["mutants"] if m["status"] in ("killed", "survived")]
    if runs:
        print(f"  cases run per scored mutant: mean {sum(runs) / len(runs):.1f} (early stop at the first failing case)")

    # the baseline: compile each mutant with verification and run the whole suite, one process
    from rxwatch.compiler import compile_source
    from rxwatch.suite.cases import case_files, run_suite
    from rxwatch.suite.mutants import mutants

    text = protocol.read_text(encoding="utf-8")
    module = compile_source(text, str(protocol), verify=False).module
    made = mutants(module, text)[:: max(1, args.baseline_sample)]
    paths = case_files([suite])
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for m in made:
            p = Path(tmp) / protocol.name
            p.write_text(m.text, encoding="utf-8")
            r = compile_source(p.read_text(encoding="utf-8"), str(p), verify=True)
            if r.ok:
                run_suite(r.graph, paths)
    per = (time.perf_counter() - t0) / max(1, len(made))
    print(f"baseline (compile + verify + the whole suite per mutant, one process; {len(made)} mutants timed): "
          f"{per * 1000:.0f} ms per mutant, {n * per:.1f} s for all {n}")
    print(f"ratio: rxwatch is {n * per / wall:.1f}x the baseline")
    return 0


if __name__ == "__main__":
    sys.exit(main())
