"""FHIR Bulk Data exports (`$export`: NDJSON, one resource a line) as many patients' timelines.

`patient_of(resource)` says whose a line is: a Patient's own id, an Observation's subject
(`Patient/ID`, or the last part of a `urn:uuid:` reference); `patient_events(lines, r)` reads one
patient's Observation lines into lab results, each as observation.py reads a Bundle's
Observation, located at its file and line. `rxwatch audit` splits an export by patient and
calls these per patient.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from .model import LabResult
from .observation import observation
from .reader import Reader

__all__ = ["patient_of", "patient_events"]


def patient_of(resource: dict) -> str | None:
    """The patient a Patient or Observation resource belongs to (None: no usable id or subject
    reference; another resource type)."""
    kind = resource.get("resourceType")
    if kind == "Patient":
        patient = resource.get("id")
    elif kind == "Observation":
        ref = (resource.get("subject") or {}).get("reference") if isinstance(resource.get("subject"), dict) else None
        patient = ref.rsplit("/", 1)[-1] if isinstance(ref, str) and ref.startswith(("Patient/", "urn:uuid:")) else (
            ref.rsplit(":", 1)[-1] if isinstance(ref, str) else None)
    else:
        return None
    return patient if isinstance(patient, str) and patient else None


def patient_events(lines: Iterable[tuple[str, int, str, str]], r: Reader) -> list[LabResult]:
    """The lab results of one patient's lines of an export: `(path, line, resourceType, text)`
    in file order; lines of other resources than Observation are passed over. An Observation
    that cannot be read is an error (E712) at its line; one left out a warning (W701)."""
    events: list[LabResult] = []
    for i, (path, line, kind, text) in enumerate(lines):
        r.path = path
        if kind != "Observation":
            continue
        obs: Any = json.loads(text)
        try:
            result = observation(obs, i, line, r)
        except (AttributeError, TypeError, KeyError) as exc:
            ident = obs.get("id")
            r.error(line, "E712", f"Observation {ident if isinstance(ident, str) else ''} is not a usable Observation: {exc}")
            continue
        if result is not None:
            events.append(result)
    return events
