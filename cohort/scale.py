"""A cohort over worker processes or a Dask cluster (docs/cohort.md#how-it-scales).

    from rxwatch.cohort.scale import Cohort, run_cohort
    result = run_cohort(Cohort(arms, model, patients=10_000, years=2, seed=7), jobs=2,
                        on_rows=writer.write_table)
    result.metrics        # metrics.Metrics: per protocol, with intervals, and the paired differences
    result.examples       # {patient: {protocol: picture}} of a few patients with an episode

The patients are cut into chunks of consecutive indices; a job is one chunk through every
protocol (`run_chunk`, plain data in and out: the graphs and the model pickled, the rows back
as Arrow IPC). Every draw of a patient is keyed by (seed, index, ...) in the patient model, so a
patient's rows are the same whichever chunk, process or machine makes them: the table is
identical for any `jobs`, chunk size or cluster. Chunks come back in any order; their rows go
to `on_rows` in patient order (a chunk waits until the ones before it are in, at most a few
chunks per worker), and to the metrics' `Collector` (a few numbers a patient): memory stays
bounded by the chunks in flight, not by the cohort.
"""

from __future__ import annotations

import datetime
import functools
import io
import os
import pickle
from dataclasses import dataclass, field
from typing import Any, Callable

from .metrics import Collector, Metrics
from .run import Arm, CohortError, failed_row, run_patient, schema

DEFAULT_START = datetime.date(2025, 1, 6)
EXAMPLES = 3  # patients whose course the report and the plots draw


@dataclass
class Cohort:
    arms: list  # of run.Arm, the first is the reference of the paired differences
    model: Any  # cohort.model's loaded model
    patients: int
    years: float
    seed: int
    start: datetime.date = DEFAULT_START

    @property
    def days(self) -> int:
        return max(1, round(self.years * 365.25))


@dataclass
class CohortResult:
    cohort: Cohort
    metrics: Metrics
    examples: dict = field(default_factory=dict)  # patient -> protocol -> picture (run._Loop.detail)
    failed: list = field(default_factory=list)  # rows of patients whose loop stopped
    chunks: int = 0


def chunks_of(patients: int, jobs: int, size: int | None = None) -> list[tuple[int, int]]:
    """[lo, hi) ranges of patient indices: about 8 chunks a worker, 25 to 2,000 patients each."""
    if size is None:
        size = max(25, min(2000, -(-patients // max(1, jobs * 8))))
    return [(lo, min(lo + size, patients)) for lo in range(0, patients, size)]


def run_cohort(cohort: Cohort, *, jobs: int | None = None, scheduler: str | None = None, chunk: int | None = None,
               on_rows: Callable[[Any], None] | None = None, progress: Callable[[int, int], None] | None = None,
               resamples: int = 1000, examples: int = EXAMPLES) -> CohortResult:
    """Simulate the cohort through every arm; rows to `on_rows` (a pyarrow Table per chunk, in
    patient order), `progress(patients done, patients)` as chunks finish."""
    from rxwatch.audit.workers import run_jobs

    jobs = jobs or os.cpu_count() or 1
    ranges = chunks_of(cohort.patients, 1 if scheduler is None and jobs <= 1 else jobs, chunk)
    base = {
        "arms": pickle.dumps([(a.label, a.graph, a.facts, a.prefer) for a in cohort.arms],
                             protocol=pickle.HIGHEST_PROTOCOL),
        "model": pickle.dumps(cohort.model, protocol=pickle.HIGHEST_PROTOCOL),
        "seed": cohort.seed, "start": cohort.start.isoformat(), "days": cohort.days, "examples": examples,
    }
    job_list = [dict(base, index=i, lo=lo, hi=hi) for i, (lo, hi) in enumerate(ranges)]
    collector = Collector([a.label for a in cohort.arms], cohort.patients)
    waiting: dict = {}
    nxt = 0
    done = 0
    pictures: dict = {}
    failed: list = []
    import pyarrow as pa

    for res in run_jobs(run_chunk, job_list, jobs=jobs, scheduler=scheduler):
        waiting[res["index"]] = res
        done += res["patients"]
        while nxt in waiting:
            r = waiting.pop(nxt)
            table = pa.ipc.open_file(pa.BufferReader(r["table"])).read_all()
            collector.add(table)
            failed.extend(r["failed"])
            if on_rows is not None:
                on_rows(table)
            for patient, pics in r["examples"]:
                if len(pictures) < examples:
                    pictures[patient] = pics
            nxt += 1
        if progress:
            progress(done, cohort.patients)
    metrics = collector.metrics(resamples=resamples, seed=cohort.seed)
    return CohortResult(cohort, metrics, pictures, failed, len(job_list))


@functools.lru_cache(maxsize=4)
def _arms(data: bytes) -> list:
    return [Arm.of(label, graph, facts, prefer).ready() for label, graph, facts, prefer in pickle.loads(data)]


@functools.lru_cache(maxsize=4)
def _model(data: bytes):
    return pickle.loads(data)


def run_chunk(job: dict) -> dict:
    """Patients [lo, hi) through every arm: their rows (Arrow IPC bytes, patient then protocol
    order), the pictures of the first patients with an episode crossing 3x ULN, the failures."""
    import pyarrow as pa

    from rxwatch.simulator.engine import SimulationError

    arms = _arms(job["arms"])
    model = _model(job["model"])
    start = datetime.date.fromisoformat(job["start"])
    days = job["days"]
    seed = job["seed"]
    keep = job.get("examples", 0)
    rows: list = []
    failed: list = []
    examples: list = []
    for index in range(job["lo"], job["hi"]):
        pics = {}
        interesting = False
        for arm in arms:
            try:
                row, picture = run_patient(arm, model, seed=seed, index=index, start=start, days=days,
                                           detail=len(examples) < keep)
            except (SimulationError, CohortError) as e:
                row, picture = failed_row(arm.label, index, days, str(e)), None
                failed.append({"protocol": arm.label, "patient": index, "problem": str(e)})
            rows.append(row)
            if picture is not None:
                pics[arm.label] = picture
                interesting = interesting or row["episodes_3x"] > 0
        if interesting and len(pics) == len(arms):
            examples.append((index, {label: make() for label, make in pics.items()}))
    sink = io.BytesIO()
    s = schema()
    with pa.ipc.new_file(sink, s) as w:
        w.write_table(pa.Table.from_pylist(rows, schema=s))
    return {"index": job["index"], "table": sink.getvalue(), "patients": job["hi"] - job["lo"],
            "failed": failed, "examples": examples}
