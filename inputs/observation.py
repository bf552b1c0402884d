"""FHIR R4 Observations as lab results: what a FHIR Bundle (fhir_bundle.py) and a Bulk Data
export (fhir_ndjson.py) share.

Each Observation with a LOINC code that a lab of the protocol lists becomes a LabResult: the date
and time of day from `effectiveDateTime` (as written, zone kept), the value and the reference
range's high (ULN) and low (LLN) read exactly from their JSON text. One with a mapped code but
no usable value (no valueQuantity, a comparator, a unit that does not convert, no date, a value
or limit that is not finite or out of range, entered-in-error) is left out with a warning W701
naming its id. Two results of one lab on one day are both kept (the timeline's order says
which counts).
"""

from __future__ import annotations

from typing import Any

from rxwatch.simulator import units

from .model import LabResult, Loc
from .reader import Reader, ValueProblem, parse_date_time

__all__ = ["LOINC", "UCUM", "observation"]

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
_LEFT_OUT_STATUS = {"entered-in-error", "cancelled"}


def _name(resource: dict, index: int) -> str:
    ident = resource.get("id")
    return f"Observation {ident}" if isinstance(ident, str) and ident else f"the Observation of entry {index + 1}"


def observation(obs: dict, index: int, line: int, r: Reader) -> LabResult | None:
    """The LabResult of Observation `obs` (entry or line `index`, 0-based, at `line`), or None: not
    one of the protocol's labs, or left out with a warning W701 added to `r`."""
    lab = None
    for coding in (obs.get("code") or {}).get("coding") or ():
        if coding.get("system") == LOINC and coding.get("code") in r.loinc:
            lab = r.loinc[coding["code"]]
            break
    if lab is None:
        return None
    name = _name(obs, index)

    def left_out(why: str) -> None:
        r.warning(line, "W701", f"{name} ({lab}): {why}; left out")

    status = obs.get("status")
    if status in _LEFT_OUT_STATUS:
        return left_out(f"status is {status}")
    raw_date = obs.get("effectiveDateTime") or obs.get("effectiveInstant") or (obs.get("effectivePeriod") or {}).get("start")
    when = parse_date_time(raw_date)
    if when is None:
        return left_out(f"no full effective date ({raw_date})" if raw_date else "no effective date")
    date, time = when
    quantity = obs.get("valueQuantity")
    if not isinstance(quantity, dict) or quantity.get("value") is None:
        other = next((k for k in obs if k.startswith("value") or k == "dataAbsentReason"), None)
        return left_out(f"no valueQuantity value (it has {other})" if other else "no value")
    if quantity.get("comparator"):
        return left_out(f"the value is censored ({quantity['comparator']}{_text(quantity['value'])})")
    unit = _unit(quantity)
    limits = {"uln": None, "lln": None}
    ranges = obs.get("referenceRange") or ()
    first = ranges[0] if isinstance(ranges, list) and ranges and isinstance(ranges[0], dict) else {}
    for key, side in (("uln", "high"), ("lln", "low")):
        bound = first.get(side)
        if isinstance(bound, dict) and bound.get("value") is not None:
            limits[key] = (bound["value"], _unit(bound) or unit)
    if limits["lln"] is not None and _is_zero(limits["lln"][0]):
        limits["lln"] = None  # a low of 0 ("0-40 U/L") is no lower limit
    try:
        given = {}
        for key, limit in limits.items():  # a limit in its own unit is first put in the value's
            if limit is None:
                given[key] = None
                continue
            raw, limit_unit = limit
            x = r.number(key, raw)
            given[key] = x if limit_unit == unit else units.convert(x, limit_unit, unit, r.labs[lab].get("molar_mass"))
        return r.lab_result(lab, quantity["value"], unit, given["uln"], date, Loc(r.path, line), lln=given["lln"],
                            time=time, order=r.order(date, time))
    except units.UnitError as exc:
        return left_out(r.unit_problem(lab, unit, exc))
    except ValueProblem as exc:
        return left_out(exc.message)


def _text(number: Any) -> str:
    text = getattr(number, "text", None)
    return text if isinstance(text, str) else str(number)


def _is_zero(number: Any) -> bool:
    try:
        return units.exact(number) == 0
    except ValueError:
        return False


def _unit(quantity: dict) -> str | None:
    """A Quantity's unit: the UCUM `code` when coded in UCUM, else the human-readable `unit`."""
    if quantity.get("system") == UCUM and quantity.get("code"):
        return quantity["code"]
    return quantity.get("unit") or quantity.get("code")
