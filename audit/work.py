"""One partition of an audit: each patient's rows -> a timeline -> the replay -> one table row.

`run_partition(job)` is what a worker process (or a Dask worker) runs; everything it needs is in
`job` (plain data: the compiled graph, pickled, the partition's rows or files, the options),
and everything it returns is plain data: the table rows as Arrow IPC bytes, the patients skipped
with where and why, and the traces of the partition's most urgent patients (for the viewer pages).
"""

from __future__ import annotations

import datetime
import functools
import heapq
import io
from typing import Any

import pyarrow as pa

from .summary import COLUMNS, SCHEMA, skipped_row, summarize, urgency_key


@functools.lru_cache(maxsize=4)
def graph_of(data: bytes):
    """The compiled graph (pickled by the process that compiled it) and its Machine; once per
    process."""
    import pickle

    from rxwatch.simulator.engine import Machine

    graph = pickle.loads(data)
    return graph, Machine(graph)


def read_partition(job: dict) -> Any:
    """The partition's rows as an Arrow table sorted by patient, then file order."""
    data = job.get("data")
    source = pa.BufferReader(data) if data is not None else pa.memory_map(job["path"])
    table = pa.ipc.open_file(source).read_all()
    return table.sort_by([("patient", "ascending"), ("file", "ascending"), ("line", "ascending")])


def run_partition(job: dict) -> dict:
    graph, machine = graph_of(job["graph"])
    as_of = datetime.date.fromisoformat(job["as_of"])
    keep = job.get("keep", 0)
    files: list[str] = job["files"]
    facts: dict = job.get("facts") or {}
    rows: list[dict] = []
    skipped: list[dict] = []
    urgent: list = []  # a heap of (negated urgency key, patient, trace) of the most urgent
    kind = job["kind"]
    for patient, make in _patients(job, graph, files, as_of, facts, kind):
        try:
            timeline = make()
        except _Skip as why:
            skipped.append(why.info)
            rows.append(skipped_row(patient, why.info))
            continue
        if timeline is None:
            continue
        try:
            trace = machine.run(timeline)
        except Exception as exc:  # SimulationError (a located message), or a fault in the replay
            info = {"patient": patient, "where": f"{timeline.path}", "code": getattr(exc, "code", "") or "E723",
                    "message": f"the replay stopped: {exc}"}
            skipped.append(info)
            rows.append(skipped_row(patient, info))
            continue
        row = summarize(trace, as_of, timeline, graph)
        rows.append(row)
        if keep:
            item = (_neg(urgency_key(row)), patient, trace, timeline)
            if len(urgent) < keep:
                heapq.heappush(urgent, item)
            elif item > urgent[0]:
                heapq.heapreplace(urgent, item)
    traces = {}
    if urgent:
        # the viewer pages' lab charts need each day's results: replay the kept few again,
        # recording the panels (the rest of the partition never pays for it)
        from rxwatch.render.labchart import with_results

        for _, patient, trace, timeline in urgent:
            inputs: list = []
            traces[patient] = with_results(machine.run(timeline, inputs=inputs), inputs, graph)
    table = pa.Table.from_pylist(rows, schema=SCHEMA)
    sink = io.BytesIO()
    with pa.ipc.new_file(sink, SCHEMA) as w:
        w.write_table(table)
    return {"index": job["index"], "table": sink.getvalue(), "skipped": skipped, "patients": len(rows),
            "traces": traces}


def _neg(key: tuple) -> tuple:
    # heap keeps the largest "negated" = the most urgent (smallest key); keys are numbers and text
    return tuple(-k if isinstance(k, (int, float)) else _Rev(k) for k in key)


@functools.total_ordering
class _Rev:
    __slots__ = ("s",)

    def __init__(self, s):
        self.s = s

    def __eq__(self, other):
        return self.s == other.s

    def __lt__(self, other):
        return self.s > other.s


class _Skip(Exception):
    def __init__(self, info: dict):
        self.info = info


def _first(patient: str, messages) -> dict:
    m = sorted(messages, key=lambda m: (m.path, m.line))[0]
    more = f" (and {len(messages) - 1} more)" if len(messages) > 1 else ""
    return {"patient": patient, "where": f"{m.path}:{m.line}" if m.line else m.path, "code": m.code,
            "message": m.text + more}


def _patients(job, graph, files, as_of, facts, kind):
    if kind == "files":
        for path in job["files_list"]:
            yield _file_patient(path, graph, as_of, facts)
        return
    table = read_partition(job)
    if table.num_rows == 0:
        return
    patients = table.column("patient").to_pylist()
    cols = {name: table.column(name).to_pylist() for name in table.column_names if name != "patient"}
    start = 0
    n = len(patients)
    reader = _reader(graph, files[0] if files else "<input>")
    while start < n:
        p = patients[start]
        end = start + 1
        while end < n and patients[end] == p:
            end += 1
        part = {k: v[start:end] for k, v in cols.items()}
        if kind == "csv":
            yield p, functools.partial(_csv_timeline, p, part, reader, files, as_of, facts)
        else:
            yield p, functools.partial(_ndjson_timeline, p, part, reader, files, as_of, facts)
        start = end


def _reader(graph, path):
    from rxwatch.inputs.reader import Reader

    return Reader(path, graph.graph)


def _csv_timeline(patient, part, r, files, as_of, facts):
    from rxwatch.inputs.csvlabs import EXTRACT_CELLS, extract_events

    r.reset(r.path)
    rows = ((files[f], line, f * 10**12 + line, values)
            for f, line, *values in zip(part["file"], part["line"], *(part[c] for c in EXTRACT_CELLS)))
    events, first_fact = extract_events(rows, r)
    return _finish(patient, r, events, first_fact, as_of, facts)


def _finish(patient, r, events, first_fact, as_of, facts):
    from rxwatch.inputs.model import TimelineError

    if events and all(e.date > as_of for e in events):
        return None  # the patient's history starts after the audit date: not part of this audit
    given = dict(facts)
    for name, (_, value) in first_fact.items():  # a fact with no default takes its first recorded value
        if name not in given and not r.facts[name].get("has_default"):
            given[name] = value
    try:
        return r.finish_results(patient, events, (None, as_of, given), "no usable row")
    except TimelineError as e:
        raise _Skip(_first(patient, e.messages)) from None


def _ndjson_timeline(patient, part, r, files, as_of, facts):
    from rxwatch.inputs.fhir_ndjson import patient_events

    r.reset(r.path)
    lines = ((files[f], line, kind, text) for f, line, kind, text in zip(part["file"], part["line"], part["kind"], part["text"]))
    return _finish(patient, r, patient_events(lines, r), {}, as_of, facts)


def _file_patient(path, graph, as_of, facts):
    from rxwatch.inputs.model import TimelineError
    from rxwatch.inputs.registry import load_timeline

    try:
        timeline = load_timeline(path, graph.graph, until=as_of, facts=facts)
    except TimelineError as e:
        info = _first(path, e.messages)
        return info["patient"], _raiser(info)
    except (OSError, UnicodeDecodeError) as e:
        info = {"patient": path, "where": path, "code": "E701", "message": f"cannot read: {e}"}
        return path, _raiser(info)
    return timeline.patient, lambda: timeline


def _raiser(info):
    def make():
        raise _Skip(info)
    return make
