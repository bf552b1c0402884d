"""Run every bench/bench_*.py in turn (what `make bench` calls) and say how each ended.

    .venv/bin/python bench/run_all.py                 # all of them
    .venv/bin/python bench/run_all.py compile         # only those whose name contains 'compile'

Each benchmark runs in its own process with this interpreter, from the repository root, its
output passing straight through. Exit status: 0 when every benchmark ran, 1 when one failed.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if any(a in ("-h", "--help") for a in args):
        print(__doc__.strip())
        return 0
    scripts = sorted(HERE.glob("bench_*.py"))
    if args:
        scripts = [s for s in scripts if any(a in s.stem for a in args)]
    if not scripts:
        print(f"run_all: no bench/bench_*.py matches {args}", file=sys.stderr)
        return 1
    results = []
    for script in scripts:
        print(f"\n===== {script.relative_to(ROOT)} =====", flush=True)
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, str(script)], cwd=ROOT)
        results.append((script.name, proc.returncode, time.perf_counter() - t0))
    print("\n===== summary =====")
    for name, status, seconds in results:
        print(f"{name:>30}: {'ok' if status == 0 else f'FAILED (exit {status})'} in {seconds:.0f} s")
    return 0 if all(status == 0 for _, status, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
