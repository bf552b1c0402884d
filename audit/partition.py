"""Inputs of an audit, split into partitions of whole patients.

An input is a CSV extract with a patient column, a FHIR Bulk Data export (a directory or
NDJSON files: `Patient.ndjson`, `Observation.ndjson`), or a directory of timeline files and
FHIR bundles (one patient each). The CSV and NDJSON inputs are read once, as a stream, and
every row goes to the partition of its patient (`crc32(patient) % n`) as Arrow record batches
in a temporary folder: nothing holds all rows at once, and the input need not be sorted. A
worker later reads one partition, sorts it by patient with pyarrow and replays each patient.

A row keeps where it came from (file and line), so that a wrong row is reported there.
"""

from __future__ import annotations

import csv
import json
import operator
import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

CSV_COLUMNS = ("patient", "date", "time", "lab", "value", "unit", "uln", "lln", "event", "fact", "choice")
REQUIRED = ("patient", "date")
BATCH_ROWS = 65_536
BUFFERED_ROWS = 262_144
TARGET_BYTES = 6_000_000  # input bytes per partition: about 150,000 CSV rows

CSV_SCHEMA = pa.schema([("file", pa.int32()), ("line", pa.int64())] + [(c, pa.string()) for c in CSV_COLUMNS])
NDJSON_SCHEMA = pa.schema([("file", pa.int32()), ("line", pa.int64()), ("patient", pa.string()),
                           ("kind", pa.string()), ("text", pa.string())])


class InputError(Exception):
    """An input that cannot be read at all (not one patient's problem): `.messages` are
    (path, line, code, text)."""

    def __init__(self, messages: list[tuple[str, int, str, str]]):
        super().__init__("; ".join(f"{p}:{l}: {t}" for p, l, _, t in messages))
        self.messages = messages


@dataclass
class Partition:
    """One unit of work: `kind` 'csv' or 'ndjson' (an Arrow IPC file of rows at `path`) or
    'files' (timeline files, `files`, one patient each)."""

    kind: str
    index: int
    path: str = ""
    files: list[str] = field(default_factory=list)
    rows: int = 0


@dataclass
class Plan:
    """The partitions of every input, the files they cite (by index), and the last date met
    (the default --as-of)."""

    partitions: list[Partition]
    files: list[str]
    last_date: str = ""
    problems: list[tuple[str, int, str, str]] = field(default_factory=list)  # rows belonging to no patient


def bucket(patient: str, n: int) -> int:
    return zlib.crc32(patient.encode("utf-8", "surrogatepass")) % n


def plan(inputs: list[Path], workdir: Path, *, jobs: int = 2) -> Plan:
    """Read every input once and write its partitions under `workdir`."""
    files: list[str] = []
    partitions: list[Partition] = []
    out = Plan(partitions, files)
    timeline_files: list[str] = []
    ndjson: list[Path] = []
    csvs: list[Path] = []
    for path in inputs:
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
            nd = [p for p in found if p.suffix.lower() == ".ndjson"]
            if nd:
                ndjson.extend(nd)
            else:
                timeline_files.extend(str(p) for p in found if p.suffix.lower() in (".yaml", ".yml", ".json", ".csv"))
        elif path.suffix.lower() == ".ndjson":
            ndjson.append(path)
        elif path.suffix.lower() == ".csv" and _has_patient_column(path):
            csvs.append(path)
        else:
            timeline_files.append(str(path))
    if csvs:  # one set of partitions for every CSV: a patient split across files is one patient
        n = _count(sum(p.stat().st_size for p in csvs), jobs)
        writers = _Writers(workdir, "csv", n, CSV_SCHEMA, out, "csv")
        try:
            for path in csvs:
                _split_csv(path, writers, out)
        finally:
            writers.close(out)
    if ndjson:
        _split_ndjson(ndjson, workdir, out, jobs)
    if timeline_files:
        n = max(1, min(len(timeline_files), jobs * 4))
        for i in range(n):
            partitions.append(Partition("files", len(partitions), files=timeline_files[i::n], rows=len(timeline_files[i::n])))
        for f in timeline_files:
            out.last_date = max(out.last_date, _last_date_of_file(f))
    return out


def _has_patient_column(path: Path) -> bool:
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            for row in csv.reader(f):
                if not row or row[0].lstrip().startswith("#") or not any(c.strip() for c in row):
                    continue
                return "patient" in [c.strip().lower() for c in row]
    except (OSError, UnicodeDecodeError, csv.Error):
        return False
    return False


def _count(size: int, jobs: int) -> int:
    return max(jobs, -(-size // TARGET_BYTES))


class _Writers:
    """One Arrow IPC stream per partition, rows buffered per partition in columns."""

    def __init__(self, workdir: Path, prefix: str, n: int, schema: pa.Schema, out: Plan, kind: str):
        self.schema = schema
        self.names = schema.names
        self.n = n
        self.parts = []
        self.sinks = []
        self.buffers: list[list[tuple]] = [[] for _ in range(n)]
        self.strip = kind == "csv"
        # rows buffered before a partition's batch is written: at most BUFFERED_ROWS in all, so
        # that many partitions (a big extract) do not buffer more than a few
        self.batch = max(256, min(BATCH_ROWS, BUFFERED_ROWS // n))
        for i in range(n):
            p = Partition(kind, len(out.partitions), path=str(workdir / f"{prefix}-{i}.arrow"))
            out.partitions.append(p)
            self.parts.append(p)
            self.sinks.append(None)

    def add(self, i: int, row: tuple) -> None:
        buf = self.buffers[i]
        buf.append(row)
        if len(buf) >= self.batch:
            self.flush(i)

    def flush(self, i: int) -> None:
        import pyarrow.compute as pc

        buf = self.buffers[i]
        if not buf:
            return
        arrays = []
        for col, t in zip(zip(*buf), self.schema.types):
            a = pa.array(col, type=t)
            if self.strip and t == pa.string():
                a = pc.utf8_trim_whitespace(a)  # cells are read stripped, as a lab CSV's
            arrays.append(a)
        batch = pa.RecordBatch.from_arrays(arrays, schema=self.schema)
        if self.sinks[i] is None:
            self.sinks[i] = pa.ipc.new_file(self.parts[i].path, self.schema)
        self.sinks[i].write_batch(batch)
        self.parts[i].rows += len(buf)
        self.buffers[i] = []

    def close(self, out: Plan) -> None:
        for i in range(self.n):
            self.flush(i)
            if self.sinks[i] is not None:
                self.sinks[i].close()
        empty = {id(p) for p in self.parts if p.rows == 0}
        out.partitions[:] = [p for p in out.partitions if id(p) not in empty]
        for k, p in enumerate(out.partitions):
            p.index = k


def _split_csv(path: Path, writers: "_Writers", out: Plan) -> None:
    file_index = len(out.files)
    out.files.append(str(path))
    n = writers.n
    last = out.last_date
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            reader = csv.reader(f, strict=True)
            header = None
            pick = None
            width = 0
            buckets: dict[str, int] = {}  # patient -> partition (a patient has many rows)
            add = writers.add
            while True:
                line = reader.line_num + 1
                try:
                    row = next(reader)
                except StopIteration:
                    break
                except csv.Error as exc:
                    raise InputError([(str(path), reader.line_num, "E701", f"invalid CSV: {exc}")]) from None
                first = row[0] if row else ""
                if not first[:1].isalnum():  # the common case, a row starting with a patient id, skips these tests
                    if not row or first.lstrip().startswith("#") or not any(c.strip() for c in row):
                        continue
                if header is None:
                    header = [c.strip().lower() for c in row]
                    columns = _csv_columns(header, path, line)
                    width = len(header)
                    # a missing column reads the empty cell appended to each row
                    pick = operator.itemgetter(*[i if i >= 0 else width for i in columns])
                    continue
                n_cells = len(row)
                if n_cells != width:
                    row = row[:width] + [""] * (width - n_cells)
                row.append("")
                cells = pick(row)
                patient = cells[0].strip()
                if not patient:
                    out.problems.append((str(path), line, "E721", "a row without a patient: it belongs to no one and is left out"))
                    continue
                date = cells[1]
                if n_cells > width:  # the worker reports it, at its line, and skips the patient
                    date = f"\x00{n_cells} cells in a row under a header of {width} columns"
                    cells = (cells[0], date) + cells[2:]
                elif date > last and date[:1].isdigit():
                    last = date
                b = buckets.get(patient)
                if b is None:
                    b = buckets[patient] = bucket(patient, n)
                    if len(buckets) > 1_000_000:
                        buckets.clear()
                add(b, (file_index, line) + cells)
    except UnicodeDecodeError as exc:
        raise InputError([(str(path), 0, "E701", f"not UTF-8 text: {exc.reason}")]) from None
    out.last_date = last


def _csv_columns(header: list[str], path: Path, line: int) -> list[int]:
    from rxwatch.compiler.diagnostics import did_you_mean

    problems = []
    for name in header:
        if name not in CSV_COLUMNS:
            problems.append((str(path), line, "E703", f"unknown column '{name}'{did_you_mean(name, CSV_COLUMNS)}"))
    for name in REQUIRED:
        if name not in header:
            problems.append((str(path), line, "E704", f"the header row lacks the column {name}"))
    if problems:
        raise InputError(problems)
    return [header.index(c) if c in header else -1 for c in CSV_COLUMNS]


def _split_ndjson(paths: list[Path], workdir: Path, out: Plan, jobs: int) -> None:
    """Observations go to their subject's partition; Patients too (a patient with no
    Observation is still audited). Other resource types are ignored."""
    from rxwatch.inputs.fhir_ndjson import patient_of

    total = sum(p.stat().st_size for p in paths)
    n = _count(total, jobs)
    writers = _Writers(workdir, "ndjson", n, NDJSON_SCHEMA, out, "ndjson")
    last = out.last_date
    try:
        for path in paths:
            file_index = len(out.files)
            out.files.append(str(path))
            with open(path, encoding="utf-8-sig") as f:
                for line, text in enumerate(f, 1):
                    if not text.strip():
                        continue
                    try:
                        resource = json.loads(text)
                    except ValueError as exc:
                        out.problems.append((str(path), line, "E701", f"invalid JSON: {exc}"))
                        continue
                    if not isinstance(resource, dict):
                        out.problems.append((str(path), line, "E712", "a line of an NDJSON file is one resource object"))
                        continue
                    kind = resource.get("resourceType")
                    if kind not in ("Patient", "Observation"):
                        continue
                    patient = patient_of(resource)
                    if kind == "Observation":
                        when = resource.get("effectiveDateTime") or resource.get("effectiveInstant") or ""
                        if isinstance(when, str) and when > last:
                            last = when[:10]
                    if patient is None:
                        ident = resource.get("id")
                        out.problems.append((str(path), line, "E721", f"{kind} {ident if isinstance(ident, str) else ''}".rstrip()
                                             + (" has no subject Patient reference" if kind == "Observation" else " has no id")
                                             + ": it belongs to no one and is left out"))
                        continue
                    writers.add(bucket(patient, n), (file_index, line, patient, kind, text))
    except UnicodeDecodeError as exc:
        raise InputError([(str(path), 0, "E701", f"not UTF-8 text: {exc.reason}")]) from None
    finally:
        writers.close(out)
    out.last_date = last


def _last_date_of_file(path: str) -> str:
    """A cheap guess at a timeline file's last date (for the default --as-of): its greatest
    ISO date text in the last 64 KB."""
    import re

    try:
        with open(path, "rb") as f:
            f.seek(max(0, os.path.getsize(path) - 65536))
            tail = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    dates = re.findall(r"\b(\d{4}-\d{2}-\d{2})", tail)
    return max(dates) if dates else ""
