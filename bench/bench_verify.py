"""Benchmark: the static analyses of `rxwatch check` (compiler/verify), against the front end.

    .venv/bin/python bench/bench_verify.py                    # everything (about a minute)
    .venv/bin/python bench/bench_verify.py --sizes 100 --runs 3   # quicker

Prints figures and ratios; asserts nothing. What it measures:

1. cold start: `rxwatch check` on the anakinra protocol, a new process each run, with the
   analyses and with `--no-verify` (the peer run), and the cost of `import z3` alone.
   Target (issue 5): under 1 s wall time with the analyses.
2. in process: analyse() on each shipped protocol after compiling it, and the number of
   solver queries; explain() (what `rxwatch check --explain` adds), and its regions.
3. size: generated protocols of N states (N = 100, 1000 by default). Two shapes:
   'distinct': every state's guards have their own thresholds, so no handler's analysis can
   be reused (the worst case); 'repeated': every state grades panels alike, as real protocols
   do (anakinra repeats one grading in five states), so identical handlers are analysed once.
   Analysis time is printed with the compile time of the same text (its peer) and the ratio.
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
ANAKINRA = ROOT / "protocols" / "anakinra_hepatotoxicity.rxw"
LEFLUNOMIDE = ROOT / "protocols" / "leflunomide_hepatotoxicity.rxw"
RXWATCH = Path(sys.executable).parent / "rxwatch"

HEADER = '''\
protocol generated_{n}
  title "Generated protocol for the verifier benchmark, {n} states"
  version "1.0.0"
  status draft

source label "A label" kind label
source grading "A grading" kind grading
source conv "A convention" kind convention

lab ALT "alanine aminotransferase" unit "U/L" uln 40
lab AST "aspartate aminotransferase" unit "U/L" uln 40
lab TBIL "total bilirubin" unit "mg/dL" uln 1.2
lab INR "international normalised ratio"

fact liver_disease "pre-existing liver disease" bool default false
fact indication "indication" one of ra, stills, other default other

event jaundice "jaundice"
event stopped "the drug was stopped"

action order "Order a liver panel" orders ALT, AST, TBIL, INR
action start "Start the drug"
action hold "Hold the drug"
action flag "Flag a finding"

let tx "transaminases, multiples of ULN" = max(xuln(ALT), xuln(AST)) cite grading
let bili "bilirubin, multiples of ULN" = xuln(TBIL) cite grading
var held "the drug is held" bool default false
'''


def _state(i: int, n: int, rng: random.Random, distinct: bool) -> str:
    last = n - 1
    # thresholds: the state's own (distinct) or one grading for all (repeated)
    k = [1, 3, 5] if not distinct else sorted(round(rng.uniform(0.5, 6), 1) for _ in range(3))
    b = 2 if not distinct else round(rng.uniform(1, 3), 1)
    nxt, jump = f"s{i + 1}", f"s{rng.randrange(0, last)}"
    mode = ["", "ordered", "exclusive"][i % 3] if distinct else "ordered"
    lines = [f'{"initial " if i == 0 else ""}state s{i} "State {i}" {{', "  on entry {", "    do order due 2..4 weeks cite label"]
    if i == 0:
        lines.append("    do start cite label")
    lines += [
        "  }",
        f"  on panel {mode} {{",
        f"    when tx > {k[2]} or (tx > {k[1]} and bili > {b}) -> {nxt} cite grading",
        f"    when {k[1]} < tx <= {k[2]} and not (bili > {b}) -> {jump} cite grading {{ do hold cite label set held = true cite conv }}",
        f"    when {k[0]} < tx <= {k[1]} and not (bili > {b}) stay cite grading {{ do order due 1..2 weeks cite label }}",
        f"    when tx <= {k[0]} and bili <= {b} and INR > 1.5 stay cite conv {{ do flag cite conv do order due 1..2 weeks cite label }}",
        "    otherwise stay cite label { do order due 3..4 months cite label }",
        "  }",
        f"  on event jaundice {{ when bili > {b} or held -> s{last} cite label\n    otherwise stay cite conv {{ do order due within 7 days cite label }} }}",
        f"  on event stopped {{ otherwise -> s{last} cite label }}",
    ]
    if i % 5 == 0:
        lines += [f"  after {1 + i % 12} months since start {{ when not held -> {nxt} cite conv\n    otherwise stay cite conv }}"]
    if i % 7 == 0:
        lines += [f"  on fact liver_disease {{ when liver_disease and indication == stills -> s{last} cite label }}"]
    lines.append("}")
    return "\n".join(lines)


def generate(n: int, distinct: bool, seed: int = 5) -> str:
    rng = random.Random(seed * 7919 + n)
    parts = [HEADER.format(n=n)] + [_state(i, n, rng, distinct) for i in range(n - 1)]
    parts.append(f'terminal state s{n - 1} "The end"')
    return "\n\n".join(parts) + "\n"


# ---------------------------------------------------------------- measuring


def wall(argv: list[str], runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        out.append(time.perf_counter() - t0)
    return out


def fmt(ts: list[float]) -> str:
    return f"best {min(ts):.3f} s, median {statistics.median(ts):.3f} s"


def counted_analyse(graph):
    """analyse(graph), its time, and the number of solver queries it made."""
    from rxwatch.compiler.verify import analyse, prover

    made = []
    init = prover.Prover.__init__

    def recording_init(self, *a, **k):
        init(self, *a, **k)
        made.append(self)

    prover.Prover.__init__ = recording_init
    try:
        gc.collect()
        t0 = time.perf_counter()
        fs = analyse(graph)
        return time.perf_counter() - t0, sum(p.queries for p in made), fs
    finally:
        prover.Prover.__init__ = init


def timed_explain(graph):
    from rxwatch.compiler.verify import explain

    gc.collect()
    t0 = time.perf_counter()
    items = explain(graph)
    return time.perf_counter() - t0, items


def machine() -> str:
    import z3

    sys.path.insert(0, str(HERE))
    from machine import describe

    return describe(z3=z3.get_version_string())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="100,1000", help="generated protocol sizes (states)")
    ap.add_argument("--runs", type=int, default=7, help="cold-start runs per command")
    args = ap.parse_args()
    print(f"machine: {machine()}")

    print("\n# 1. cold start (a new process per run)")
    py = [sys.executable, "-c"]
    bare = wall(py + ["pass"], args.runs)
    z3i = wall(py + ["import z3"], args.runs)
    print(f"python -c pass                           {fmt(bare)}")
    print(f"python -c 'import z3'                    {fmt(z3i)}  (import z3: {min(z3i) - min(bare):+.3f} s)")
    cmd = [str(RXWATCH), "check", str(ANAKINRA)]
    nov = wall(cmd[:2] + ["--no-verify"] + cmd[2:], args.runs)
    ver = wall(cmd, args.runs)
    exp = wall(cmd[:2] + ["--explain"] + cmd[2:], args.runs)
    print(f"rxwatch check --no-verify anakinra       {fmt(nov)}")
    print(f"rxwatch check anakinra                   {fmt(ver)}  (target < 1 s)")
    print(f"rxwatch check --explain anakinra         {fmt(exp)}")
    print(f"ratio with/without the analyses          {min(ver) / min(nov):.2f}x (best runs), +{min(ver) - min(nov):.3f} s")

    print("\n# 2. in process: analyse() after compile_source(verify=False)")
    from rxwatch.compiler import compile_source

    for path in (ANAKINRA, LEFLUNOMIDE):
        text = path.read_text(encoding="utf-8")
        t0 = time.perf_counter()
        r = compile_source(text, str(path), verify=False)
        tc = time.perf_counter() - t0
        times = []
        for _ in range(5):
            ta, q, fs = counted_analyse(r.graph)
            times.append(ta)
        print(f"{path.name:34} compile {tc:.3f} s; analyse best {min(times) * 1000:.1f} ms ({q} solver queries, {len(fs)} findings)")
        times = []
        for _ in range(3):
            te, items = timed_explain(r.graph)
            times.append(te)
        regions = sum(len(u.regions.regions) for u in items)
        print(f"{'':34} explain best {min(times) * 1000:.1f} ms ({len(items)} handlers can be unassessable, {regions} regions)")

    print("\n# 3. generated protocols")
    for n in (int(x) for x in args.sizes.split(",")):
        for distinct in (True, False):
            text = generate(n, distinct)
            t0 = time.perf_counter()
            r = compile_source(text, f"gen{n}.rxw", verify=False)
            tc = time.perf_counter() - t0
            assert r.ok, [(d.code, d.message) for d in r.diagnostics[:5]]
            ta, q, fs = counted_analyse(r.graph)
            from collections import Counter

            shape = "distinct" if distinct else "repeated"
            found = ", ".join(f"{c} x{k}" for c, k in sorted(Counter(f.code for f in fs).items())) or "none"
            print(f"{n:5} states, {shape:8}: compile {tc:6.2f} s; analyse {ta:6.2f} s "
                  f"({ta / tc:.2f}x compile; {ta / n * 1000:.2f} ms/state; {q} queries; findings: {found})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
