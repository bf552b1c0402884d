"""Family "FHIR": a FHIR R4 Bundle (a Patient and Observations) edited at random: resource
types, ids, codes, values and units (valueQuantity.code), dates, comparators, statuses, entries
removed or duplicated, a Patient without an id. Right: a bundle that is not usable refused
(E712/E704, located by line); an Observation that cannot be used left out with W701; the rest
replayed."""

from __future__ import annotations

import copy
import json

import pytest

from fuzzkit import PROTOCOL, TERMINAL, Case, Family, pick, slow_seed


def observation(n: int, value, code="1742-6", unit="U/L", date="2025-01-06") -> dict:
    return {"resourceType": "Observation", "id": f"o{n}", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
            "subject": {"reference": "Patient/p-1"}, "effectiveDateTime": date,
            "valueQuantity": {"value": value, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit}}


BUNDLE = {"resourceType": "Bundle", "type": "collection", "entry": [
    {"fullUrl": "urn:uuid:p", "resource": {"resourceType": "Patient", "id": "p-1"}},
    {"resource": observation(1, 32)}, {"resource": observation(2, 132, date="2025-01-20")},
    {"resource": observation(3, 1.1, code="2160-0", unit="mg/dL", date="2025-01-20")}]}

EDITS = [
    ("entry.0.resource.id", [None, "", "x" * 300, "[red]p[/red]", "\u202ep", 12]),
    ("entry.1.resource.valueQuantity.value", [0, -1, 1e308, 10**50, "12", None, True, 2.4, 1e-300]),
    ("entry.1.resource.valueQuantity.code", ["kU/L", "mg/dL", "", "U" * 65, "U/L/L", None, "[IU]/L"]),
    ("entry.1.resource.valueQuantity.comparator", ["<", ">=", "~", "x"]),
    ("entry.1.resource.effectiveDateTime", ["9999-12-31", "2025-13-01", "2025-01-06T08:30:00Z", "", None, "0001-01-01"]),
    ("entry.1.resource.status", ["entered-in-error", "preliminary", "cancelled", "x", None]),
    ("entry.1.resource.resourceType", ["Observation", "Patient", "Bundle", "Nope", "", None]),
    ("entry.1.resource.code.coding.0.code", ["1742-6", "2160-0", "0000-0", "", None]),
    ("entry.2.resource", [None, {}, [], "x"]),
    ("resourceType", ["Bundle", "Patient", "", None]),
    ("type", ["collection", "searchset", "transaction", "x"]),
    ("entry", [[], {}, None, "x"]),
]


def _set(data, path: str, value) -> None:
    parts = [int(p) if p.isdigit() else p for p in path.split(".")]
    for p in parts[:-1]:
        data = data[p]
    if value is None and isinstance(data, dict):
        data.pop(parts[-1], None)
    else:
        data[parts[-1]] = value


def generate(rng, i: int) -> Case:
    data = copy.deepcopy(BUNDLE)
    for _ in range(rng.randint(1, 3)):
        path, values = pick(rng, EDITS)
        try:
            _set(data, path, pick(rng, values + [pick(rng, TERMINAL)]))
        except (KeyError, IndexError, TypeError):
            pass
    if rng.random() < 0.15:
        data["entry"] = data.get("entry", []) + [copy.deepcopy(BUNDLE["entry"][0])] if isinstance(data.get("entry"), list) else []
    text = json.dumps(data, indent=1)
    if rng.random() < 0.1:
        text = text.replace("32", "1" + "0" * 5000, 1)
    argv = ["simulate", "p.rxw", "b.json", "-f", pick(rng, ["json", "table"])]
    return Case("FHIR", f"bundle {i}", {"p.rxw": PROTOCOL, "b.json": text}, argv)


FAMILY = Family("FHIR", generate, count=200)


def test_sample(tmp_path):
    FAMILY.assert_clean(tmp_path, seed=1, n=FAMILY.sample)


@pytest.mark.slow
def test_budget(tmp_path):
    FAMILY.assert_clean(tmp_path, seed=slow_seed(), n=FAMILY.count)
