"""Population audit: a protocol over a whole clinic's lab data (docs/audit.md).

    from rxwatch.audit import audit
    result = audit(graph, [Path("extract.csv")], as_of="2026-06-30", jobs=2)
    result.table        # a pyarrow.Table, one row per patient, most urgent first (summary.COLUMNS)
    result.skipped      # [{patient, where, code, message}] of the patients whose input was wrong
    result.traces       # patient -> trace of the most urgent patients (for the viewer pages)

The inputs are split into partitions of whole patients (`partition.plan`), each partition is
replayed by a worker (`work.run_partition`: local processes, or a Dask cluster when a scheduler
address is given), and the rows are gathered and sorted by urgency.
"""

from __future__ import annotations

import datetime
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .partition import InputError, Plan, plan  # noqa: F401

__all__ = ["AuditResult", "InputError", "audit"]


@dataclass
class AuditResult:
    table: Any  # pyarrow.Table, sorted by urgency
    as_of: datetime.date
    skipped: list[dict] = field(default_factory=list)
    problems: list[dict] = field(default_factory=list)  # rows that belong to no patient
    traces: dict = field(default_factory=dict)
    partitions: int = 0

    @property
    def patients(self) -> int:
        return self.table.num_rows


def audit(graph, inputs: list[Path], *, as_of: str | datetime.date | None = None, jobs: int | None = None,
          scheduler: str | None = None, facts: dict | None = None, keep: int = 25,
          progress: Callable[[int, int], None] | None = None, workdir: Path | None = None) -> AuditResult:
    """Audit every patient of `inputs` against `graph` (a compiled graph) at `as_of` (default:
    the last date in the inputs). `jobs` local worker processes (default: the number of cores;
    1: in this process); `scheduler`: a Dask distributed scheduler address instead. `keep`: how
    many of the most urgent patients' traces to return. `progress(done, total)` is called as
    partitions finish. Raises InputError when an input cannot be read at all."""
    import pyarrow as pa

    import pickle

    from .summary import SCHEMA

    jobs = jobs or os.cpu_count() or 1
    own = workdir is None
    work = Path(tempfile.mkdtemp(prefix="rxwatch-audit-")) if own else workdir
    try:
        the_plan = plan([Path(p) for p in inputs], work, jobs=jobs)
        day = _as_of(as_of, the_plan)
        base = {"graph": pickle.dumps(graph, protocol=pickle.HIGHEST_PROTOCOL), "as_of": day.isoformat(), "files": the_plan.files, "facts": facts or {}, "keep": keep}
        job_list = []
        for part in the_plan.partitions:
            job = dict(base, index=part.index, kind=part.kind, path=part.path, files_list=part.files)
            job_list.append(job)
        results = _run(job_list, jobs, scheduler, progress, work)
        tables = []
        skipped: list[dict] = []
        traces: dict = {}
        for res in results:
            tables.append(pa.ipc.open_file(pa.BufferReader(res["table"])).read_all())
            skipped.extend(res["skipped"])
            traces.update(res["traces"])
        table = pa.concat_tables(tables) if tables else SCHEMA.empty_table()
        table = sort_table(table)
        top = [p for p in table.column("patient").slice(0, keep * 4).to_pylist() if p in traces][:keep]
        traces = {p: traces[p] for p in top}
        problems = [{"where": f"{p}:{l}" if l else p, "code": c, "message": t} for p, l, c, t in the_plan.problems]
        return AuditResult(table, day, sorted(skipped, key=lambda s: s["patient"]), problems, traces, len(job_list))
    finally:
        if own:
            shutil.rmtree(work, ignore_errors=True)


def sort_table(table):
    """Most urgent first: tier, then days overdue (most first), then patient id."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from .summary import TIERS

    rank = pc.index_in(table.column("urgency"), value_set=pa.array(TIERS))
    overdue = pc.negate(pc.fill_null(table.column("days_overdue"), 0))
    keyed = table.append_column("_rank", rank).append_column("_late", overdue)
    order = pc.sort_indices(keyed, sort_keys=[("_rank", "ascending"), ("_late", "ascending"), ("patient", "ascending")])
    return table.take(order)


def _as_of(value, the_plan: Plan) -> datetime.date:
    if isinstance(value, datetime.date):
        return value
    if value:
        return datetime.date.fromisoformat(value)
    if the_plan.last_date:
        try:
            return datetime.date.fromisoformat(the_plan.last_date[:10])
        except ValueError:
            pass
    return datetime.date.today()


def _run(job_list: list[dict], jobs: int, scheduler: str | None, progress, work: Path) -> list[dict]:
    """The partitions replayed in this process, in worker processes or on a Dask cluster
    (`workers.run_jobs`, shared with `rxwatch cohort`); on a cluster each job carries its
    partition's bytes (the workers need not see this machine's files)."""
    from .work import run_partition
    from .workers import run_jobs

    total = len(job_list)
    out = []
    for i, res in enumerate(run_jobs(run_partition, job_list, jobs=jobs, scheduler=scheduler, ship=_ship), 1):
        out.append(res)
        if progress:
            progress(i, total)
    return sorted(out, key=lambda r: r["index"])


def _ship(job: dict) -> dict:
    return job if job["kind"] == "files" else dict(job, data=Path(job["path"]).read_bytes())
