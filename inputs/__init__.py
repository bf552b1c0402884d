"""Readers of patient data (timelines, lab CSVs, FHIR bundles and Bulk Data NDJSON), behind one
format registry: the one owner of how rxwatch reads a patient's inputs.

    model.py        what the readers make: Timeline, LabResult, ClinicalEvent, FactChange,
                    Choice, Loc; Message and TimelineError (E7xx/W7xx)
    reader.py       what every format shares: declarations, dates, exact values, facts, the
                    command line's --start/--until/--fact, assembling the Timeline
    yamlsrc.py      YAML/JSON documents that know where every value stands
    yamljson.py     the timeline format (YAML or JSON)
    csvlabs.py      lab CSVs, and the rows of a CSV extract (rxwatch audit)
    observation.py  a FHIR Observation as a lab result
    fhir_bundle.py  FHIR R4 Bundles
    fhir_ndjson.py  FHIR Bulk Data NDJSON (rxwatch audit)
    registry.py     which format a file is; `read(path, protocol) -> Timeline`

No format module imports another (tests/test_inputs_structure.py). The names below are this
package's API, each imported from its module when first used:

    from rxwatch.inputs import read, LabResult, TimelineError
"""

from __future__ import annotations

import importlib
from typing import Any

_API = {
    "model": ("Loc", "LabResult", "ClinicalEvent", "FactChange", "Choice", "Event", "Message", "Timeline",
              "TimelineError", "COMMAND_LINE", "latest_results", "recency"),
    "reader": ("Reader", "parse_date", "parse_date_time", "parse_time"),
    "yamljson": ("parse_timeline",),
    "registry": ("FORMATS", "detect", "read", "load_timeline"),
}
_WHERE = {name: module for module, names in _API.items() for name in names}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
