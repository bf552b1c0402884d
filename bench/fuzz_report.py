"""The hostile-input report (issue 10): every family of the fuzz corpus (tests/fuzz/) run with a
fresh seed at its full count, through the real command line, and the family table printed:
inputs, refused cleanly, accepted correctly, failures.

    .venv/bin/python bench/fuzz_report.py                       # every family, a fresh seed
    .venv/bin/python bench/fuzz_report.py --seed 7 --only dates traces
    .venv/bin/python bench/fuzz_report.py --scale 0.1           # a tenth of each count
    .venv/bin/python bench/fuzz_report.py --save /tmp/failures  # each failing case as a JSON file

A failure is printed with its reason, and `--save` writes it as a regression case (copy it into
tests/fuzz/regressions/ once it is fixed). What "refused" and "accepted" mean is in
tests/fuzz/fuzzkit.py. The exit status is 1 when any family has a failure.
"""

from __future__ import annotations

import argparse
import importlib
import platform
import random
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

FUZZ = Path(__file__).resolve().parent.parent / "tests" / "fuzz"
sys.path.insert(0, str(FUZZ))


def families() -> list:
    """Every family of the corpus: the FAMILY of each tests/fuzz/test_*.py that has one."""
    out = []
    for path in sorted(FUZZ.glob("test_*.py")):
        module = importlib.import_module(path.stem)
        if hasattr(module, "FAMILY"):
            out.append(module.FAMILY)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=None, help="the seed (default: a fresh one, printed)")
    ap.add_argument("--scale", type=float, default=1.0, help="run this fraction of each family's count")
    ap.add_argument("--only", nargs="*", default=None, help="families whose name contains one of these words")
    ap.add_argument("--save", type=Path, default=None, help="a folder to write each failing case into")
    args = ap.parse_args()
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(10**9)
    chosen = [f for f in families() if not args.only or any(w in f.name for w in args.only)]
    print(f"rxwatch fuzz report: seed {seed}, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, "
          f"{platform.python_implementation()} {platform.python_version()} on {platform.machine()}, "
          f"{len(chosen)} families", flush=True)
    rows = []
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="rxwatch-fuzz-") as tmp:
        for fam in chosen:
            n = max(1, round(fam.count * args.scale))
            start = time.perf_counter()
            tally = fam.run(Path(tmp) / fam.name.replace(" ", "_"), seed, n)
            tally["wall"] = time.perf_counter() - start
            rows.append((fam, tally))
            print(f"  {fam.name}: {tally['inputs']} inputs, {tally['refused']} refused, {tally['accepted']} accepted, "
                  f"{tally['failures']} failures ({tally['wall']:.0f} s)", flush=True)
            for k, (case, reason) in enumerate(tally["failed"]):
                print(f"    FAILURE {case.name}: {reason}", flush=True)
                if args.save is not None:
                    args.save.mkdir(parents=True, exist_ok=True)
                    (args.save / f"{fam.name.replace(' ', '-')}-{seed}-{k}.json").write_text(case.to_json() + "\n",
                                                                                          encoding="utf-8")
    total = {k: sum(t[k] for _, t in rows) for k in ("inputs", "refused", "accepted", "failures")}
    print()
    print("| family | inputs | refused | accepted | failures | seconds |")
    print("|---|---:|---:|---:|---:|---:|")
    for fam, t in rows:
        print(f"| {fam.name} | {t['inputs']:,} | {t['refused']:,} | {t['accepted']:,} | {t['failures']:,} | {t['wall']:.0f} |")
    print(f"| **all {len(rows)} families** | **{total['inputs']:,}** | **{total['refused']:,}** | "
          f"**{total['accepted']:,}** | **{total['failures']:,}** | **{time.perf_counter() - t0:.0f}** |")
    return 1 if total["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
