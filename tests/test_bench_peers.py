"""The benchmarks' hand-written peers do the work rxwatch does: bench/peer_anakinra.py (the
anakinra v1 pathway by hand, bench_inputs.py's comparison for issue 13) gives the same steps as
`rxwatch simulate bench/anakinra_v1.rxw` on the files the bench writes, in every format, for a
patient in monitoring throughout, one taken off treatment, and one whose tests come days apart
(orders fall overdue). Nothing here is timed."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import bench_module

ROOT = Path(__file__).resolve().parent.parent


BENCH = bench_module("bench_inputs")


@pytest.mark.parametrize("kind", ["json", "csv", "yaml", "fhir"])
@pytest.mark.parametrize("normal", [True, False], ids=["in-monitoring", "taken-off"])
def test_the_hand_written_pathway_gives_rxwatchs_steps(tmp_path, kind, normal, monkeypatch):
    monkeypatch.setitem(BENCH.ENV, "RXWATCH_CACHE_DIR", "off")
    write, name = BENCH.WRITERS[kind]
    path = tmp_path / name
    write(path, 400, normal)
    steps = BENCH.same_pathway(kind, path, tmp_path)  # exits (SystemExit) when they differ
    assert steps > (400 if normal else 10)


def test_orders_that_fall_overdue_are_the_same_too(tmp_path, monkeypatch):
    monkeypatch.setitem(BENCH.ENV, "RXWATCH_CACHE_DIR", "off")
    rng = random.Random(5)
    path = tmp_path / "gaps.csv"
    with open(path, "w") as f:
        f.write("date,lab,value,unit,uln\n")
        for day, rows in BENCH.panels(600, seed=21):
            if rng.random() < 0.8:
                continue  # tests days to weeks apart: windows close without one
            f.write("".join(f"{day},{lab},{value},{unit},{uln}\n" for lab, value, unit, uln, _ in rows))
    BENCH.same_pathway("csv", path, tmp_path)
    trace = (tmp_path / "peer-trace.json").read_text(encoding="utf-8")
    assert '"overdue"' in trace


def test_a_difference_is_refused_not_timed(tmp_path, monkeypatch):
    # the peer told to read Still's disease where rxwatch reads RA: the first window differs
    monkeypatch.setitem(BENCH.ENV, "RXWATCH_CACHE_DIR", "off")
    path = tmp_path / "t.csv"
    BENCH.write_csv(path, 50)
    real = BENCH.pathway_cmd
    monkeypatch.setattr(BENCH, "pathway_cmd", lambda kind, p, out: [
        *real(kind, p, out)[:-2], "--fact", "indication=stills_disease"])
    with pytest.raises(SystemExit, match="differ"):
        BENCH.same_pathway("csv", path, tmp_path)


def test_the_peer_needs_nothing_of_rxwatch():
    # its time is the time of a program written without rxwatch: it must not import it
    code = (f"import runpy, sys; runpy.run_path({str(ROOT / 'bench' / 'peer_anakinra.py')!r}); "
            "print(sorted(n for n in sys.modules if n.startswith('rxwatch')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
