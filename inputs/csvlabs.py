"""Lab results from a CSV file as a timeline, and the rows of a CSV extract of many patients.

    date,lab,value,unit,uln
    2025-01-06,ALT,32,U/L,
    2025-02-03T08:30,1742-6,1362,IU/L,33

A header row is required. Columns, in any order: `date` (a date or a date-time), `lab` (a
declared lab name or a LOINC code that a lab lists) and `value` are required; `unit`, `uln`,
`lln`, `time` and `patient` are optional (an empty cell means "not given"). Numbers are read
exactly from their text. Blank lines and lines starting with `#` are skipped. The patient is
the `patient` column (one patient per file) or else the file name without `.csv`; `start` and
`until` default to the first and last panel's dates, as for a FHIR bundle. Two results of one
lab on one day are both kept (the timeline's order says which counts).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from rxwatch.compiler.diagnostics import did_you_mean
from rxwatch.simulator import units

from .model import ClinicalEvent, Choice, Event, FactChange, LabResult, Loc, Timeline
from .reader import Reader, ValueProblem, parse_date, parse_date_time, parse_time

__all__ = ["REQUIRED", "OPTIONAL", "EXTRACT_CELLS", "read", "read_csv", "read_csv_file", "extract_events"]


REQUIRED = ("date", "lab", "value")
OPTIONAL = ("unit", "uln", "patient", "lln", "time")


def read(text: str, r: Reader, *, start: Any = None, until: Any = None, facts: Any = None) -> Timeline:
    """The registry's name for `read_csv`."""
    return read_csv(text, r, start=start, until=until, facts=facts)


def read_csv(text: str, r: Reader, *, start: Any = None, until: Any = None, facts: Any = None) -> Timeline:
    """The Timeline of a lab CSV; raises TimelineError with `FILE:LINE: message`s."""
    return _read(_lines(text), r, start, until, facts)


def read_csv_file(path: str, r: Reader, *, start: Any = None, until: Any = None, facts: Any = None) -> Timeline:
    """`read_csv` of the file at `path`, read row by row (the text is never held whole: a
    100 MB file costs its results, not its text and its rows as well). Raises
    UnicodeDecodeError when the file is not UTF-8 (the caller locates it), OSError."""
    with open(path, encoding="utf-8-sig", newline="") as f:
        return _read(_file_lines(f), r, start, until, facts)


# the line ends str.splitlines knows beyond \n, \r and \r\n (which a file read with newline=""
# splits at): the lines of a streamed file are cut at these too, so that line numbers are the same
_OTHER_ENDS = re.compile("[\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")


def _file_lines(f: Iterable[str]) -> Iterator[str]:
    """The lines of a file opened with newline="", cut exactly as `str.splitlines(keepends=True)`."""
    search = _OTHER_ENDS.search
    for line in f:
        if search(line) is None:
            yield line
        else:
            yield from line.splitlines(keepends=True)


def _lines(text: str) -> Iterator[str]:
    """`text.splitlines(keepends=True)`, one line at a time (no list of every line)."""
    return _file_lines(io.StringIO(text, newline=""))


def _read(lines: Iterable[str], r: Reader, start: Any, until: Any, facts: Any) -> Timeline:
    command_line = r.command_line(start, until, facts)
    rows = _rows(lines, r)
    header_line, header = next(rows, (1, None))
    columns = _columns(header, header_line, r)
    if columns is None:
        raise r.failure()

    results: list[LabResult] = []
    patients: dict[str, int] = {}
    for line, row in rows:
        if len(row) > len(header):
            r.error(line, "E702", f"{len(row)} cells in a row under a header of {len(header)} columns")
            continue
        cells = {name: (row[i].strip() if i < len(row) else "") for name, i in columns.items()}
        if cells.get("patient"):
            patients.setdefault(cells["patient"], line)
        result = _result(cells, line, r)
        if result is not None:
            results.append(result)

    if len(patients) > 1:
        (one, a), (two, b) = list(patients.items())[:2]
        r.error(b, "E711", f"a second patient '{two}' (the file starts with '{one}' at line {a}); one patient per file")
    patient = next(iter(patients), None) or Path(r.path).stem
    return r.finish_results(patient, results, command_line, "no lab results", header_line)


def _rows(lines: Iterable[str], r: Reader):
    """(line, cells) of every row that is not blank or a comment; a CSV syntax error is E701."""
    reader = csv.reader(lines, strict=True)
    while True:
        line = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            r.error(reader.line_num, "E701", f"invalid CSV: {exc}")
            return
        if row and row[0].lstrip().startswith("#") or not any(cell.strip() for cell in row):
            continue
        yield line, row


def _columns(header: list[str] | None, line: int, r: Reader) -> dict[str, int] | None:
    if header is None:
        r.error(1, "E701", f"the file is empty; a lab CSV starts with a header row: {','.join(REQUIRED + OPTIONAL[:2])}")
        return None
    names = [cell.strip().lower() for cell in header]
    if len(names) == 1 and ";" in names[0]:
        r.error(line, "E701", "the header has one column; separate columns with commas, not semicolons")
        return None
    if parse_date(names[0]) is not None:
        r.error(line, "E704", f"the file has no header row; start it with {','.join(REQUIRED + OPTIONAL[:2])}")
        return None
    columns: dict[str, int] = {}
    for index, name in enumerate(names):
        if name not in REQUIRED + OPTIONAL:
            r.error(line, "E703", f"unknown column '{header[index].strip()}'{did_you_mean(name, REQUIRED + OPTIONAL)}")
        elif name in columns:
            r.error(line, "E703", f"column '{name}' appears twice")
        else:
            columns[name] = index
    missing = [name for name in REQUIRED if name not in columns]
    if missing:
        r.error(line, "E704", f"the header row lacks the column{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
                f"(expected {','.join(REQUIRED + OPTIONAL[:2])}); a header row is required")
    return None if r.errors else columns


def _result(cells: dict[str, str], line: int, r: Reader) -> LabResult | None:
    ok = True
    when = r.dates.get(cells["date"])
    if when is None:
        when = parse_date_time(cells["date"])
        if when is not None and len(r.dates) < 100_000:
            r.dates[cells["date"]] = when  # one date object per day, not per row
    date, time = when if when is not None else (None, None)
    if when is None:
        r.error(line, "E705", f"date: '{cells['date']}' is not an ISO 8601 date (YYYY-MM-DD) or date-time (YYYY-MM-DDThh:mm)")
        ok = False
    if cells.get("time"):
        if time is not None:
            r.error(line, "E702", f"the time is given twice: in date ({time}) and in time; write it once")
            ok = False
        elif parse_time(cells["time"]) is None:
            r.error(line, "E705", f"time: '{cells['time']}' is not an ISO 8601 time of day (hh:mm, hh:mm:ss, with a zone or not)")
            ok = False
        else:
            time = cells["time"]
    entry = (cells["lab"], cells["value"], cells.get("unit"), cells.get("uln"), cells.get("lln"))
    if entry in r.entries:  # written the same way before, and read without a mistake
        return r.again(entry, date, Loc(r.path, line), time, r.order(date, time, line)) if ok else None
    lab = r.lab_name(cells["lab"])
    if lab is None:
        r.error(line, "E707", r.unknown("lab", cells["lab"], r.labs) if cells["lab"] else "missing lab")
        ok = False
    if not cells["value"]:
        r.error(line, "E704", "missing value")
        ok = False
    given = {key: cells.get(key) or None for key in ("value", "uln", "lln")}
    unit = cells.get("unit") or None
    if unit is not None and len(r.strings) < 100_000:
        unit = r.strings.setdefault(unit, unit)  # one string per unit written, not per row
    for key, text in given.items():
        if text is not None and (key, lab, unit, str, text) not in r.converted:  # else read before, fine
            try:
                r.number(key, text)
            except ValueProblem as exc:
                r.error(line, "E708", exc.message)
                ok = False
    if not ok:
        return None
    try:  # the line is the result's place in the file: one int for its Loc and its order
        result = r.lab_result(lab, given["value"], unit, given["uln"], date, Loc(r.path, line), lln=given["lln"],
                              time=time, order=r.order(date, time, line))
        r.remember(entry, result)
        return result
    except units.UnitError as exc:
        r.error(line, "E709", r.unit_problem(lab, unit, exc))
    except ValueProblem as exc:
        r.error(line, "E708", exc.message)
    return None


# ---------------------------------------------------------------------------- extracts (rxwatch audit)

EXTRACT_CELLS = ("date", "time", "lab", "value", "unit", "uln", "lln", "event", "fact", "choice")
"""The cells of a row of a CSV extract, beside its `patient` (docs/audit.md): a row is a lab
result (read as a lab CSV's row is), or a clinical event, a fact's value or a choice."""


def extract_events(rows: Iterable[tuple[str, int, int, tuple]], r: Reader) -> tuple[list[Event], dict]:
    """The events of one patient's rows of a CSV extract, and the first value recorded for
    each fact (`{fact: (date, value)}`); every mistake is added to `r` at its row.

    `rows`: `(path, line, order, cells)` in file order, `cells` the row's stripped cells in
    the order of EXTRACT_CELLS (an empty cell is "not given"); `order` grows with the file
    order (it places the row within its day). A `date` cell starting with NUL carries the
    message of a row found wrong before (E702)."""
    events: list[Event] = []
    first_fact: dict = {}
    for path, line, index, values in rows:
        r.path = path
        cells = dict(zip(EXTRACT_CELLS, values))
        if cells["date"].startswith("\x00"):
            r.error(line, "E702", cells["date"][1:])
            continue
        if cells["lab"] and not (cells["event"] or cells["fact"] or cells["choice"]):  # the common case
            result = _result(cells, line, r)
            if result is not None:
                events.append(result)
            continue
        kinds = [k for k in ("lab", "event", "fact", "choice") if cells[k]]
        if len(kinds) != 1:
            r.error(line, "E702", "a row has exactly one of lab, event, fact or choice; this one has "
                    + (" and ".join(kinds) if kinds else "none"))
            continue
        what = kinds[0]
        if what == "lab":
            result = _result(cells, line, r)
            if result is not None:
                events.append(result)
            continue
        when = parse_date_time(cells["date"])
        if when is None:
            r.error(line, "E705", f"date: '{cells['date']}' is not an ISO 8601 date (YYYY-MM-DD) or date-time (YYYY-MM-DDThh:mm)")
            continue
        date, time = when
        if cells["time"]:
            time = cells["time"] if parse_time(cells["time"]) is not None else time
        loc = Loc(r.path, line)
        order = r.order(date, time, index)
        name = cells[what]
        if what == "event":
            if name not in r.events:
                r.error(line, "E707", r.unknown("event", name, r.events))
                continue
            events.append(ClinicalEvent(date, name, loc, time, order))
        elif what == "choice":
            if name not in r.actions:
                r.error(line, "E707", r.unknown("action", name, r.actions))
                continue
            events.append(Choice(date, name, loc, time, order))
        else:
            if name not in r.facts:
                r.error(line, "E707", r.unknown("fact", name, r.facts))
                continue
            value, why = r.fact_value(name, cells["value"], from_text=True)
            if why:
                r.error(line, "E708", why)
                continue
            first_fact.setdefault(name, (date, value))
            events.append(FactChange(date, name, value, loc, time, order))
    return events, first_fact
