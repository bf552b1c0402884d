"""FHIR R4 Bundles of Observations as timelines (the end of docs/timelines.md).

The JSON is read once, by the standard library, walking the Bundle's top level by hand so that
every entry keeps its offset in the file: messages cite the line of the entry (or of the
offending field in it). The resources the timeline reads, the Patient and every Observation,
are validated against the fhir.resources R4B models (R4B reads R4 JSON); the others only need a
known resourceType. Validating the whole Bundle with the models would cost about 0.7 s more on
the 3.6 MB Wendell_Lesch bundle for resources nothing here reads (figures in docs/timelines.md).
Each Observation is read as observation.py says.
"""

from __future__ import annotations

import bisect
import functools
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

from rxwatch.compiler.diagnostics import did_you_mean

from .model import LabResult, Timeline
from .observation import observation
from .reader import Reader
from .yamlsrc import Float

__all__ = ["Scan", "sniff", "read", "read_bundle"]

_WS = re.compile(r"[ \t\n\r]*")


@dataclass
class Scan:
    """The top-level object of a JSON text, with the offsets of the items of its "entry" list;
    or the JSONDecodeError of a text that looks like FHIR but is not valid JSON."""

    top: Any = None
    spans: list[tuple[int, int]] = field(default_factory=list)
    keys: dict[str, int] = field(default_factory=dict)  # top-level key -> offset
    error: json.JSONDecodeError | None = None


def sniff(text: str) -> Scan | None:
    """The Scan of `text` when it is a FHIR resource (or broken JSON that looks like one)."""
    if not text.lstrip().startswith("{"):
        return None
    try:
        scan = _scan(text)
    except json.JSONDecodeError as exc:
        return Scan(error=exc) if re.search(r'"resourceType"\s*:', text[:65536]) else None
    except RecursionError:
        return None
    return scan if "resourceType" in scan.top else None


def _scan(text: str) -> Scan:
    """json.loads for an object, also noting where each top-level key and each entry starts.

    A JSON number with a fraction or an exponent becomes a `Float` that keeps its text, so
    that `units.exact` reads the decimal the file shows; an integer too long for int() (over
    4,300 digits) becomes an infinite `Float` keeping its text (refused where it is read)."""
    decoder = json.JSONDecoder(parse_float=Float, parse_int=_integer)
    scan = Scan(top={})

    def skip(i: int) -> int:
        return _WS.match(text, i).end()

    def expect(i: int, chars: str, what: str) -> str:
        if i >= len(text) or text[i] not in chars:
            raise json.JSONDecodeError(f"Expecting {what}", text, i)
        return text[i]

    i = skip(0)
    expect(i, "{", "'{'")
    i = skip(i + 1)
    if text.startswith("}", i):
        i += 1
    else:
        while True:
            expect(i, '"', "property name enclosed in double quotes")
            key, i = decoder.raw_decode(text, i)
            scan.keys[key] = i
            i = skip(i)
            expect(i, ":", "':' delimiter")
            i = skip(i + 1)
            if key == "entry" and text.startswith("[", i):
                scan.spans.clear()  # a repeated key: the last one counts, as for json.loads
                value, i = _scan_list(text, i, decoder, skip, expect, scan.spans)
            else:
                value, i = decoder.raw_decode(text, i)
            scan.top[key] = value
            i = skip(i)
            if expect(i, ",}", "',' delimiter") == "}":
                i += 1
                break
            i = skip(i + 1)
    i = skip(i)
    if i != len(text):
        raise json.JSONDecodeError("Extra data", text, i)
    return scan


def _integer(text: str) -> int | Float:
    try:
        return int(text)
    except ValueError:  # beyond sys.get_int_max_str_digits(): keep the text, never crash
        return Float(text, math.inf)


def _scan_list(text, i, decoder, skip, expect, spans) -> tuple[list, int]:
    items: list = []
    i = skip(i + 1)
    if text.startswith("]", i):
        return items, i + 1
    while True:
        begin = i
        value, i = decoder.raw_decode(text, i)
        items.append(value)
        spans.append((begin, i))
        i = skip(i)
        if expect(i, ",]", "',' delimiter") == "]":
            return items, i + 1
        i = skip(i + 1)


class _Lines:
    """Offset -> 1-based line, by bisection over the offsets of the newlines (built on first use)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._newlines: list[int] | None = None

    def line(self, offset: int) -> int:
        if self._newlines is None:
            self._newlines = [m.start() for m in re.finditer("\n", self.text)]
        return bisect.bisect_left(self._newlines, offset) + 1

    def field(self, name: Any, span: tuple[int, int]) -> int:
        """The line of `"name"` inside `span` (the span's first line when not found)."""
        found = self.text.find(f'"{name}"', span[0], span[1]) if isinstance(name, str) else -1
        return self.line(found if found >= 0 else span[0])


def read_bundle(text: str, scan: Scan, r: Reader, *, start: Any = None, until: Any = None,
                facts: Any = None) -> Timeline:
    """The Timeline of a FHIR R4 Bundle; raises TimelineError with located messages."""
    command_line = r.command_line(start, until, facts)
    if scan.error is not None:
        exc = scan.error
        r.error(exc.lineno, "E701", f"invalid JSON: {exc.msg}", exc.colno)
        raise r.failure()
    lines = _Lines(text)
    top = scan.top
    kind = top.get("resourceType")
    if kind != "Bundle":
        r.error(lines.line(scan.keys["resourceType"]), "E712",
                f"a FHIR timeline is a Bundle of Observations; this file holds a {kind!r} resource")
        raise r.failure()
    entries = top.get("entry") or []
    if not isinstance(entries, list):
        r.error(lines.line(scan.keys["entry"]), "E712", "the Bundle's 'entry' must be a list")
        raise r.failure()

    patients: list[tuple[str, int]] = []
    results: list[LabResult] = []
    for index, (entry, span) in enumerate(zip(entries, scan.spans)):
        line = lines.field("resource", span)  # the line of the entry's "resource": {
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(entry, dict) or (resource is not None and not isinstance(resource, dict)):
            r.error(line, "E712", f"entry {index + 1} is not a Bundle entry with a resource object")
            continue
        if resource is None:  # e.g. a DELETE in a transaction: nothing to read
            continue
        kind = resource.get("resourceType")
        if kind in ("Patient", "Observation"):
            if not _valid(kind, resource, index, span, lines, r):
                continue
            if kind == "Patient":
                patients.append((resource.get("id") or "", line))
            elif (result := observation(resource, index, line, r)) is not None:
                results.append(result)
        elif not _known_resource(kind):
            hint = did_you_mean(kind, _resource_types()) if isinstance(kind, str) else ""
            r.error(lines.field("resourceType", span), "E712",
                    f"entry {index + 1}: unknown resourceType {kind!r}{hint}")

    patient = ""
    if not patients:
        r.error(1, "E712", "the Bundle has no Patient resource: whose timeline is it?")
    elif len(patients) > 1:
        where = ", ".join(str(line) for _, line in patients)
        r.error(patients[1][1], "E712", f"the Bundle holds {len(patients)} Patient resources (lines {where}); "
                "a timeline is one patient's")
    elif not patients[0][0]:  # as a YAML timeline's missing patient id (issue 10 item 15)
        r.error(patients[0][1], "E704", "the Patient resource has no 'id': whose timeline is it?")
    else:
        patient = patients[0][0]
    left_out = sum(w.code == "W701" for w in r.warnings)
    codes = ", ".join(f"{lab} {'/'.join(decl.get('loinc') or ()) or '(no LOINC code)'}" for lab, decl in r.labs.items())
    why = f"the {left_out} with one are left out (see the warnings)" if left_out else f"none has a code the protocol maps ({codes})"
    return r.finish_results(patient, results, command_line, f"no usable lab result among the Bundle's Observations: {why}")


def read(text: str, r: Reader, *, start: Any = None, until: Any = None, facts: Any = None) -> Timeline:
    """The Timeline of a FHIR R4 Bundle's text (`read_bundle` of its `sniff`)."""
    scan = sniff(text)
    if scan is None:
        scan = Scan(error=json.JSONDecodeError("Expecting a FHIR resource object", text, 0))
    return read_bundle(text, scan, r, start=start, until=until, facts=facts)


def _valid(kind: str, resource: dict, index: int, span: tuple[int, int], lines: _Lines, r: Reader) -> bool:
    """Validate against the R4B model; report each problem at the line of its field."""
    from pydantic import ValidationError

    try:
        _model(kind).model_validate(resource)
    except ValidationError as exc:
        ident = resource.get("id")
        who = f"{kind} {ident}" if isinstance(ident, str) and ident else f"the {kind} of entry {index + 1}"
        for problem in exc.errors()[:5]:
            where = ".".join(str(part) for part in problem["loc"]) or "(resource)"
            line = lines.field(problem["loc"][0] if problem["loc"] else None, span)
            r.error(line, "E712", f"{who} is not valid FHIR R4: {where}: {problem['msg']}")
        return False
    return True


@functools.cache
def _model(kind: str) -> Any:
    from fhir.resources.R4B import get_fhir_model_class

    return get_fhir_model_class(kind)


@functools.cache
def _resource_types() -> tuple[str, ...]:
    from fhir.resources.R4B import fhirtypes

    return tuple(n[:-4] for n in dir(fhirtypes) if n.endswith("Type") and n[:1].isupper())


def _known_resource(kind: Any) -> bool:
    return isinstance(kind, str) and kind in _resource_types()
