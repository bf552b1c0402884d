"""What exact numbers cost the replay: the same patients replayed with rxwatch's exact rationals
and, for comparison only, with binary floats (never how rxwatch runs).

    .venv/bin/python bench/bench_exactness.py [--patients 1000] [--repeat 7] [--seed 7]

The patients and the protocol are those of bench_simulate.py (bench/anakinra_v1.rxw). First the
replay as rxwatch runs it: values, limits and thresholds are GMP rationals (gmpy2.mpq). Then,
in the same process, the simulator's number type is swapped for float (the generated code's
constants, the results' values and the divisions), a new Machine is built and the same
patients are made again and replayed. CPU time of the replays only, best of --repeat.
Figures only; nothing is asserted. The patients are timed in chunks of 100, each chunk's best
of --repeat passes, summed (as bench_simulate.py does). The two runs cannot take turns (the
swap is for the whole process), so on a busy machine the difference is noisy: counting
instructions (callgrind, see docs/performance.md) tells it better.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_simulate as bs  # noqa: E402
from machine import describe  # noqa: E402
from rxwatch.compiler import compile_file  # noqa: E402
import rxwatch.simulator.engine as engine  # noqa: E402
import rxwatch.simulator.expr as expr  # noqa: E402
import rxwatch.inputs.model as timeline  # noqa: E402


def best_of(machine, patients, repeat: int, chunk: int = 100) -> float:
    """CPU seconds of one pass: the patients timed in chunks, each chunk's best of `repeat`
    passes, summed (as bench_simulate.py times them: on a shared machine a whole pass is
    more often interrupted than a chunk)."""
    chunks = [patients[i:i + chunk] for i in range(0, len(patients), chunk)]
    best = [float("inf")] * len(chunks)
    for _ in range(repeat):
        for i, part in enumerate(chunks):
            t0 = time.process_time()
            for tl in part:
                machine.run(tl)
            best[i] = min(best[i], time.process_time() - t0)
    return sum(best)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--patients", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    print("What exactness costs the replay (bench/bench_exactness.py)")
    print(f"  command: python bench/bench_exactness.py {' '.join(sys.argv[1:])}".rstrip())
    print("  " + describe())
    graph = compile_file(str(bs.PROTOCOL), verify=False).graph
    rows = []
    for mode in ("exact (GMP rationals)", "binary floats (comparison only)"):
        if mode.startswith("binary"):
            expr.Q = float
            expr._RUNTIME["_Q"] = lambda a, b=1: a / b
            timeline.exact_q = engine.exact_q = float
            # the caches of shared values hold rationals made in the exact run: start them empty
            for cache in (timeline._QS, expr._XQ, engine._SHOWN, engine._SHOWN_Q):
                cache.clear()
            # the trace writes a float as it is (an exact value's text has no float counterpart)
            engine._QTYPE = float
            engine._shown = lambda v: (v, None)
            engine._put_number_value = engine._put_shared_value = (
                lambda d, key, exact_key, v: engine._put_value(d, key, v, exact_key))
        m = engine.Machine(graph)
        patients = bs.patients(args.patients, args.seed)
        events = sum(len(tl.events) for tl in patients)
        gc.collect()
        gc.freeze()
        rows.append((mode, best_of(m, patients, args.repeat), events))
        gc.unfreeze()
    exact = rows[0][1]
    print(f"\n  {'numbers':34} {'CPU time':>9} {'events/s':>11}  time / exact")
    for mode, t, events in rows:
        print(f"  {mode:34} {t:8.3f}s {events / t:11,.0f}  {t / exact:11.2f}x")
    print(f"\n  exactness costs {100 * (exact / rows[1][1] - 1):.0f}% of the float replay's time")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
