"""The format registry: which reader reads a file, and `read(path, protocol) -> Timeline`.

    format       module                         chosen when
    csv          rxwatch.inputs.csvlabs         the name ends in .csv
    fhir-ndjson  rxwatch.inputs.fhir_ndjson     the name ends in .ndjson
    fhir-bundle  rxwatch.inputs.fhir_bundle     the text is a JSON object with a top-level "resourceType"
    timeline     rxwatch.inputs.yamljson        anything else (YAML, or JSON, which is YAML)

A reader module is imported when a file of its format is read, not before (a command that
reads a CSV never imports the YAML libraries). Each has `read(text, reader, start=, until=,
facts=)`; the CSV reader also streams a file (`read_csv_file`). Bulk Data NDJSON
(`fhir_ndjson`) holds many patients: `rxwatch audit` splits it by patient and reads each with
`fhir_ndjson.patient_events`; `detect` names it, `read` reads it as any other text (and refuses
it: a timeline is one patient's).
"""

from __future__ import annotations

import codecs
import importlib
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from rxwatch.compiler import collector_paused

from .model import Timeline, TimelineError
from .reader import Reader

__all__ = ["Format", "FORMATS", "detect", "read", "load_timeline", "reader_for"]


@dataclass(frozen=True)
class Format:
    name: str
    module: str  # rxwatch.inputs.<module>: the reader
    suffixes: tuple[str, ...]  # names that pick this format whatever the text (none: by content)
    description: str


FORMATS: tuple[Format, ...] = (
    Format("csv", "csvlabs", (".csv",), "a lab CSV: date,lab,value[,unit,uln,lln,time,patient]"),
    Format("fhir-ndjson", "fhir_ndjson", (".ndjson",), "a FHIR Bulk Data export (many patients: rxwatch audit)"),
    Format("fhir-bundle", "fhir_bundle", (), "a FHIR R4 Bundle of a Patient and Observations (JSON)"),
    Format("timeline", "yamljson", (), "a timeline: YAML, or JSON that is not a FHIR resource (docs/timelines.md)"),
)
_BY_NAME = {f.name: f for f in FORMATS}


def detect(path: str | os.PathLike, text: str | None = None) -> Format:
    """The format of the file at `path`: by its name's suffix (.csv, .ndjson), else by its text
    when given (a JSON object with a top-level "resourceType" is a FHIR Bundle), else a timeline."""
    name = os.fspath(path).lower()
    for fmt in FORMATS:
        if fmt.suffixes and name.endswith(fmt.suffixes):
            return fmt
    if text is not None and _bundle_scan(text) is not None:
        return _BY_NAME["fhir-bundle"]
    return _BY_NAME["timeline"]


def _bundle_scan(text: str) -> Any:
    """fhir_bundle.sniff(text): the Bundle's scan, or None when `text` is not a FHIR resource
    (without reading it as JSON when it cannot be one: no "resourceType" written, and no escape
    that could spell it)."""
    if not text.lstrip().startswith("{") or ("resourceType" not in text and "\\" not in text):
        return None
    from .fhir_bundle import sniff

    return sniff(text)


def reader_for(fmt: Format) -> Any:
    """The reader module of `fmt`, imported now."""
    return importlib.import_module(f"{__package__}.{fmt.module}")


def read(path: str | os.PathLike, protocol: Mapping, *, start: Any = None, until: Any = None,
         facts: Mapping[str, str] | Iterable[str] | None = None) -> Timeline:
    """Read the timeline file at `path` against `protocol` (a compiled graph's `G.graph` dict).

    The kind of file is detected (`detect`). `start`, `until` (dates or ISO strings) and
    `facts` ({NAME: VALUE} or ["NAME=VALUE", ...]) come from the command line and win over the
    file. Raises OSError (a missing or unreadable file) or TimelineError (every mistake of the
    input, each a located Message)."""
    path = os.fspath(path)
    options = {"start": start, "until": until, "facts": facts}
    fmt = detect(path)
    with collector_paused():  # every object read stays alive: a collection can free nothing
        if fmt.name == "csv":
            csvlabs = reader_for(fmt)
            try:  # streamed, row by row: the text is never held whole
                return csvlabs.read_csv_file(path, Reader(path, protocol), **options)
            except UnicodeDecodeError:
                pass  # located below, from the bytes
            except TimelineError:
                if _is_utf8(path):  # else the one error is that (below), as when the file is read whole
                    raise
        with open(path, "rb") as f:
            data = f.read()
        reader = Reader(path, protocol)
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            line = data.count(b"\n", 0, exc.start) + 1
            reader.error(line, "E701", f"the file is not UTF-8 text (byte {exc.start + 1})")
            raise reader.failure() from None
        del data
        scan = _bundle_scan(text)  # an .ndjson file too: one patient per timeline, read as any other
        if scan is not None:
            return reader_for(_BY_NAME["fhir-bundle"]).read_bundle(text, scan, reader, **options)
        return reader_for(_BY_NAME["timeline"]).read(text, reader, **options)


load_timeline = read
"""`read` under the name the rest of rxwatch has always called it by."""


def _is_utf8(path: str) -> bool:
    """The file is UTF-8 text (read a megabyte at a time)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                decoder.decode(chunk)
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True
