"""Reading timelines: `rxwatch simulate` end to end per input format, beside a hand-written reader.

    .venv/bin/python bench/bench_inputs.py [--panels 5000,34000] [--csv-mb 100] [--repeat 3] [--keep DIR]
                                           [--formats yaml,json,csv,fhir] [--no-pathway]

What is measured: one generated patient on protocols/anakinra_hepatotoxicity.rxw with N liver
panels (one a day; ALT, AST and total bilirubin: 3N results; 5,000 panels is issue 13's
figure, 34,000 panels makes the 6.7 MB YAML of issue 10), written as

- YAML, block style (`- date: ...` / `  lab: ALT` ...), one key a line,
- JSON (one event object a line), the same timeline,
- a lab CSV (`date,lab,value,unit,uln`), facts from `--fact`,
- a FHIR R4 Bundle (a Patient and one Observation per result, LOINC-coded, UCUM units).

Each is replayed by `rxwatch simulate PROTOCOL FILE -f json -o trace.json` in its own process: wall
time and the peak resident memory of that process (getrusage of a fresh waiting process, so
every figure is one run's), best of --repeat, and its CPU time (user + system, which a
shared machine disturbs less than the wall time). Beside it, in the same run, the hand-written
peer: a process that reads the same file with the standard reader of its format (the json
module; the csv module; PyYAML's C loader; the json module for FHIR), walks the results day by
day and grades each day's ALT against its ULN as a minimal replay would: the cost of reading
the file in Python with no location kept. The ratio is rxwatch's wall time over the peer's.

Second, the comparison issue 13 names: **the same pathway by hand**. bench/peer_anakinra.py is
what a team would write without rxwatch for the first release's anakinra pathway
(bench/anakinra_v1.rxw, which bench_simulate.py's peer encodes too): the format's standard
reader, the rules as if/elif, floats, orders with their windows, and the trace written with the
json module. It runs beside `rxwatch simulate bench/anakinra_v1.rxw` on the same file, for two
patients of N panels: one in monitoring throughout (every panel normal: a decision, a re-entry
and a new order each day, as the issue's reference of 0.18-0.19 s did) and the first table's
(taken off treatment within a few years; later panels only read). Before it is timed the script
checks that the peer gives the same steps as rxwatch (date, type, state, action, from, to,
trigger, window, options, kind; the final state; the open orders) and stops if not. --no-pathway
leaves this table out.

Then, with --csv-mb M, a CSV of about M MB (one patient, a panel a day) through
`rxwatch simulate` with its peak memory, and the same file through `load_timeline` alone (in a
child process, peak memory): the reader's share of the peak.

The runs share a cache of compiled protocols in the work folder (cli/graphcache.py), warmed by
one run first, as a user's second run of a protocol finds it; the floor is printed with and
without it. Every run (rxwatch's and the peer's) also finds Python's compiled modules
(PYTHONPYCACHEPREFIX in the work folder, warmed by the first run), as an installed copy does
(pip compiles them at install), even where the environment turns them off
(PYTHONDONTWRITEBYTECODE); the first floor is without either.

Prints the machine (bench/machine.py), the date, and whether PyYAML's C parser is importable
(rxwatch reads YAML through it when it is, else through ruamel.yaml alone). Figures only.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTOCOL = ROOT / "protocols" / "anakinra_hepatotoxicity.rxw"
# the pathway the hand-written peer encodes (the first release's, as bench_simulate.py's peer)
PATHWAY = ROOT / "bench" / "anakinra_v1.rxw"
PATHWAY_PEER = ROOT / "bench" / "peer_anakinra.py"
RXWATCH = str(Path(sys.executable).with_name("rxwatch"))
FACT = "indication=rheumatoid_arthritis"

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe  # noqa: E402
from bench_simulate import projection  # noqa: E402  (what a peer and rxwatch must agree on)

LABS = [("ALT", "U/L", 40, "1742-6"), ("AST", "U/L", 40, "1920-8"), ("TBIL", "umol/L", 21, "1975-2")]
FIRST_DAY = datetime.date(2000, 1, 3)


# ---------------------------------------------------------------------------- generated inputs

def panels(n: int, seed: int = 1, normal: bool = False):
    """(day, [(lab, value text, unit, uln, loinc), ...]) for n days: values 0.3-1.4 x ULN, one
    decimal, now and then higher (the patient is taken off treatment within a few years; the
    later panels are read and checked, and give no step); `normal`: 0.3-0.95 x ULN always (the
    patient stays in monitoring: a step for every panel)."""
    rng = random.Random(seed)
    for i in range(n):
        day = FIRST_DAY + datetime.timedelta(days=i)
        rows = []
        for lab, unit, uln, loinc in LABS:
            factor = rng.uniform(0.3, 0.95) if normal else rng.uniform(0.3, 1.4) if rng.random() > 0.02 else rng.uniform(1.5, 6)
            rows.append((lab, f"{factor * uln:.1f}", unit, uln, loinc))
        yield day, rows


def write_yaml(path: Path, n: int, normal: bool = False) -> None:
    with open(path, "w") as f:
        f.write("patient:\n  id: bench-1\n  facts:\n    indication: rheumatoid_arthritis\nstart: 2000-01-01\nevents:\n")
        for day, rows in panels(n, normal=normal):
            for lab, value, unit, _, _ in rows:
                f.write(f"  - date: {day}\n    lab: {lab}\n    value: {value}\n    unit: {unit}\n")


def write_json(path: Path, n: int, normal: bool = False) -> None:
    with open(path, "w") as f:
        f.write('{"patient": {"id": "bench-1", "facts": {"indication": "rheumatoid_arthritis"}}, '
                '"start": "2000-01-01", "events": [\n')
        first = True
        for day, rows in panels(n, normal=normal):
            for lab, value, unit, _, _ in rows:
                f.write(("" if first else ",\n") + f'{{"date": "{day}", "lab": "{lab}", "value": {value}, "unit": "{unit}"}}')
                first = False
        f.write("\n]}\n")


def write_csv(path: Path, n: int, normal: bool = False) -> None:
    with open(path, "w") as f:
        f.write("date,lab,value,unit,uln\n")
        for day, rows in panels(n, normal=normal):
            f.write("".join(f"{day},{lab},{value},{unit},{uln}\n" for lab, value, unit, uln, _ in rows))


def write_fhir(path: Path, n: int, normal: bool = False) -> None:
    with open(path, "w") as f:
        f.write('{"resourceType": "Bundle", "type": "collection", "entry": [\n')
        f.write('{"resource": {"resourceType": "Patient", "id": "bench-1"}}')
        k = 0
        for day, rows in panels(n, normal=normal):
            for lab, value, unit, uln, loinc in rows:
                k += 1
                f.write(',\n{"resource": {"resourceType": "Observation", "id": "o%d", "status": "final", '
                        '"code": {"coding": [{"system": "http://loinc.org", "code": "%s"}]}, '
                        '"subject": {"reference": "Patient/bench-1"}, "effectiveDateTime": "%s", '
                        '"valueQuantity": {"value": %s, "unit": "%s", "system": "http://unitsofmeasure.org", "code": "%s"}, '
                        '"referenceRange": [{"high": {"value": %s, "unit": "%s", "system": "http://unitsofmeasure.org", "code": "%s"}}]}}'
                        % (k, loinc, day, value, unit, unit, uln, unit, unit))
        f.write("\n]}\n")


WRITERS = {"yaml": (write_yaml, "t.yaml"), "json": (write_json, "t.json"), "csv": (write_csv, "t.csv"),
           "fhir": (write_fhir, "bundle.json")}


# ---------------------------------------------------------------------------- the hand-written peer

PEER = r'''
import sys, csv, json
from fractions import Fraction
kind, path = sys.argv[1], sys.argv[2]
ULN = {"ALT": 40, "AST": 40, "TBIL": 21}
def results():
    if kind == "csv":
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                yield row["date"], row["lab"], row["value"], row.get("uln") or None
    elif kind == "fhir":
        for e in json.load(open(path), parse_float=str)["entry"]:
            r = e["resource"]
            if r["resourceType"] == "Observation":
                lab = {"1742-6": "ALT", "1920-8": "AST", "1975-2": "TBIL"}[r["code"]["coding"][0]["code"]]
                high = r["referenceRange"][0]["high"]["value"]
                yield r["effectiveDateTime"], lab, r["valueQuantity"]["value"], high
    else:
        if kind == "yaml":
            import yaml
            doc = yaml.load(open(path), Loader=yaml.CSafeLoader)
        else:
            doc = json.load(open(path), parse_float=str)
        for e in doc["events"]:
            yield str(e["date"]), e["lab"], e["value"], None
state, day, panel, steps = "baseline", None, {}, 0
def grade():
    global state, steps
    alt = panel.get("ALT")
    if alt is None:
        return
    x = Fraction(str(alt[0])) / Fraction(str(alt[1] or ULN["ALT"]))
    new = "severe" if x > 5 else "moderate" if x > 3 else "mild" if x > 1 else "maintenance"
    steps += 1
    state = new
for date, lab, value, uln in results():
    if date != day:
        grade()
        day, panel = date, {}
    panel[lab] = (value, uln)
grade()
print(steps)
'''


# ---------------------------------------------------------------------------- measuring

MEASURE = r'''
import resource, subprocess, sys, time
t = time.perf_counter()
p = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
wall = time.perf_counter() - t
use = resource.getrusage(resource.RUSAGE_CHILDREN)
print(p.returncode, wall, use.ru_maxrss, use.ru_utime + use.ru_stime)
sys.stderr.write(p.stderr.decode(errors="replace")[-2000:])
'''


ENV: dict = {}  # RXWATCH_CACHE_DIR and the bytecode cache for every run (set in main); None: unset


def environment(extra: dict | None = None) -> dict:
    """The environment of every run: ours, with ENV's settings and `extra` (None: unset)."""
    return {k: v for k, v in {**os.environ, **ENV, **(extra or {})}.items() if v is not None}


def measure(cmd: list[str], env: dict | None = None) -> tuple[float, float, float]:
    """(wall seconds, peak RSS in MB, CPU seconds: user + system) of one run of `cmd`, in a fresh
    waiting process. On a shared machine the CPU time varies less than the wall time."""
    env = environment(env)
    proc = subprocess.run([sys.executable, "-c", MEASURE, *cmd], capture_output=True, text=True, env=env, cwd=ROOT)
    status, wall, peak, cpu = proc.stdout.split()
    if status != "0":
        raise SystemExit(f"failed ({status}): {' '.join(cmd)}\n{proc.stderr}")
    return float(wall), int(peak) / 1024, float(cpu)


def best(cmd: list[str], repeat: int, env: dict | None = None) -> tuple[float, float, float]:
    runs = [measure(cmd, env) for _ in range(repeat)]
    return min(r[0] for r in runs), max(r[1] for r in runs), min(r[2] for r in runs)


def simulate_cmd(kind: str, path: Path, out: Path, protocol: Path = PROTOCOL) -> list[str]:
    cmd = [RXWATCH, "simulate", str(protocol), str(path), "-f", "json", "-o", str(out)]
    return cmd + (["--fact", FACT] if kind in ("csv", "fhir") else [])


def pathway_cmd(kind: str, path: Path, out: Path) -> list[str]:
    """The same pathway by hand (bench/peer_anakinra.py) over the same file, writing its trace."""
    cmd = [sys.executable, str(PATHWAY_PEER), kind, str(path), str(out)]
    return cmd + (["--fact", FACT] if kind in ("csv", "fhir") else [])


def same_pathway(kind: str, path: Path, work: Path) -> int:
    """Run rxwatch on the v1 protocol and the hand-written pathway once over `path`; exit unless
    they give the same steps. The number of steps compared."""
    ours, theirs = work / "v1-trace.json", work / "peer-trace.json"
    for cmd in (simulate_cmd(kind, path, ours, PATHWAY), pathway_cmd(kind, path, theirs)):
        proc = subprocess.run(cmd, capture_output=True, text=True, env=environment(), cwd=ROOT)
        if proc.returncode:
            raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr}")
    a, b = (projection(json.loads(f.read_text(encoding="utf-8"))) for f in (ours, theirs))
    if a != b:
        first = next(i for i, (x, y) in enumerate(zip(a + [None], b + [None])) if x != y)
        raise SystemExit(f"the hand-written pathway and rxwatch differ on {path.name} at step {first}: "
                         f"{a[first] if first < len(a) else None} / {b[first] if first < len(b) else None}")
    return len(a)


def libyaml() -> str:
    try:
        import yaml
    except ImportError:
        return "PyYAML not installed: YAML through ruamel.yaml alone"
    return f"PyYAML {yaml.__version__}, libyaml {'yes' if yaml.__with_libyaml__ else 'NO'}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--panels", default="5000,34000", help="comma-separated panel counts (3 results each)")
    ap.add_argument("--formats", default="yaml,json,csv,fhir")
    ap.add_argument("--csv-mb", type=float, default=100, help="then a CSV of about this size (0: skip)")
    ap.add_argument("--csv-normal", action="store_true",
                    help="the big CSV's patient stays in monitoring (a step a panel) instead of stopping treatment")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-pathway", action="store_true",
                    help="leave out the second table: the same pathway by hand (bench/peer_anakinra.py) beside "
                         "rxwatch on that pathway (bench/anakinra_v1.rxw)")
    ap.add_argument("--keep", type=Path, help="write the inputs here (default: a temporary folder)")
    args = ap.parse_args()

    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(describe())
    print(f"YAML: {libyaml()}")
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench_inputs_"))
    work.mkdir(parents=True, exist_ok=True)
    out = work / "trace.json"
    peer_file = work / "peer.py"
    peer_file.write_text(PEER)
    ENV["RXWATCH_CACHE_DIR"] = str(work / "cache")  # the compiled protocol's cache: this run's own
    # Python's own cache of compiled modules, as an installed rxwatch has it (pip compiles them
    # at install): this run's own folder, for rxwatch and the peer alike, even where the
    # environment turns it off (PYTHONDONTWRITEBYTECODE, as in the team's sessions)
    ENV["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
    ENV["PYTHONDONTWRITEBYTECODE"] = None
    try:
        floor = work / "one.csv"
        write_csv(floor, 1)
        measure(simulate_cmd("csv", floor, out), {"RXWATCH_CACHE_DIR": "off"})  # fills the bytecode cache
        wall, peak, cpu = best(simulate_cmd("csv", floor, out), args.repeat,
                               {"RXWATCH_CACHE_DIR": "off", "PYTHONPYCACHEPREFIX": None, "PYTHONDONTWRITEBYTECODE": "1"})
        print(f"floor, no cache at all (no compiled protocol, every module compiled from its source): "
              f"{wall:.2f} s ({cpu:.2f} s CPU), {peak:.0f} MB")
        wall, peak, cpu = best(simulate_cmd("csv", floor, out), args.repeat, {"RXWATCH_CACHE_DIR": "off"})
        print(f"floor, the modules' bytecode cached, the protocol not: rxwatch simulate on a one-panel CSV (start-up, compiling the protocol, writing): "
              f"{wall:.2f} s ({cpu:.2f} s CPU), {peak:.0f} MB")
        measure(simulate_cmd("csv", floor, out))  # compiles the protocol once, into the cache
        wall, peak, cpu = best(simulate_cmd("csv", floor, out), args.repeat)
        print(f"floor, both cached (cli/graphcache.py; every run below): {wall:.2f} s "
              f"({cpu:.2f} s CPU), {peak:.0f} MB")
        wall, peak, cpu = best([sys.executable, "-c", "pass"], args.repeat)
        print(f"floor of any Python program here (python -c pass, the editable install's import hook): {wall:.2f} s "
              f"({cpu:.2f} s CPU)")
        print()
        print("| format | panels (results) | file | rxwatch simulate: wall, CPU, peak RSS | hand-written peer: wall, CPU, peak RSS "
              "| ratio (wall) | ratio (CPU) |")
        print("|---|---|---|---|---|---|---|")
        by_hand: list[str] = []
        for n in (int(x) for x in args.panels.split(",")):
            for kind in args.formats.split(","):
                write, name = WRITERS[kind]
                path = work / f"{n}-{name}"
                write(path, n)
                size = path.stat().st_size / 1e6
                wall, peak, cpu = best(simulate_cmd(kind, path, out), args.repeat)
                if kind == "yaml" and libyaml().startswith("PyYAML not"):
                    peer, ratio, cpu_ratio = "n/a (no PyYAML)", "", ""
                else:
                    pwall, ppeak, pcpu = best([sys.executable, str(peer_file), kind, str(path)], args.repeat)
                    peer, ratio = f"{pwall:.2f} s, {pcpu:.2f} s, {ppeak:.0f} MB", f"{wall / pwall:.1f}x"
                    cpu_ratio = f"{cpu / pcpu:.1f}x"
                print(f"| {kind} | {n:,} ({3 * n:,}) | {size:.1f} MB | {wall:.2f} s, {cpu:.2f} s, {peak:.0f} MB | "
                      f"{peer} | {ratio} | {cpu_ratio} |", flush=True)
                path.unlink()
                if args.no_pathway:
                    continue
                for normal in (True, False):
                    write(path, n, normal)
                    steps = same_pathway(kind, path, work)
                    measure(simulate_cmd(kind, path, out, PATHWAY))  # the v1 protocol into the cache
                    wall, peak, cpu = best(simulate_cmd(kind, path, out, PATHWAY), args.repeat)
                    pwall, ppeak, pcpu = best(pathway_cmd(kind, path, work / "peer-trace.json"), args.repeat)
                    course = "in monitoring throughout" if normal else "off treatment within a few years"
                    by_hand.append(f"| {kind} | {n:,} ({3 * n:,}) | {course} | {steps:,} | {wall:.2f} s, {cpu:.2f} s, "
                                   f"{peak:.0f} MB | {pwall:.2f} s, {pcpu:.2f} s, {ppeak:.0f} MB | {wall / pwall:.1f}x | "
                                   f"{cpu / pcpu:.1f}x |")
                    path.unlink()
        if by_hand:
            print("\nThe same pathway by hand (bench/peer_anakinra.py: the standard reader, the rules in plain Python, "
                  "the trace written), beside `rxwatch simulate bench/anakinra_v1.rxw` on the same file; the same steps "
                  "checked first:\n")
            print("| format | panels (results) | the patient | steps compared | rxwatch simulate (v1 pathway): wall, CPU, "
                  "peak RSS | hand-written pathway: wall, CPU, peak RSS | ratio (wall) | ratio (CPU) |")
            print("|---|---|---|---|---|---|---|---|")
            print("\n".join(by_hand), flush=True)
        if args.csv_mb > 0:
            n = int(args.csv_mb * 1e6 / 85)  # about 85 bytes a panel (3 rows)
            path = work / "big.csv"
            write_csv(path, n, normal=args.csv_normal)
            size = path.stat().st_size / 1e6
            course = "in monitoring throughout" if args.csv_normal else "taken off treatment within a few years"
            print(f"\nA {size:.0f} MB CSV, one patient ({course}), {n:,} panels ({3 * n:,} results), once each:")
            read = ("import sys; from rxwatch.compiler import compile_file; from rxwatch.inputs.registry import load_timeline; "
                    "g = compile_file(sys.argv[1]).graph; tl = load_timeline(sys.argv[2], g.graph, facts=[sys.argv[3]]); "
                    "print(len(tl.events))")
            wall, peak, _ = measure([sys.executable, "-c", read, str(PROTOCOL), str(path), FACT])
            print(f"- reading it (load_timeline, the compiled protocol included): {wall:.1f} s, peak RSS {peak:,.0f} MB")
            wall, peak, _ = measure(simulate_cmd("csv", path, out))
            trace = json.loads(out.read_text())
            print(f"- rxwatch simulate ... -o trace.json: {wall:.1f} s, peak RSS {peak:,.0f} MB; "
                  f"trace {out.stat().st_size / 1e6:.1f} MB, {len(trace['steps']):,} steps, final state {trace['final_state']}")
            path.unlink()
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
