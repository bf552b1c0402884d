"""Family "numbers": lab values, ULNs and LLNs in a YAML timeline and a CSV: huge, tiny,
negative, zero, NaN, infinite, 400 digits, exponents, decimals that binary floats cannot hold,
with units that scale them past the bounds. Right: a value that is not a finite number in
0..10^15 of the lab's unit after conversion refused (E708, located); the rest replayed with
exact numbers (a value given as 2.4 shows as 2.4)."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzzkit import PROTOCOL, Case, Family, pick, run, slow_seed

NUMBERS = ["0", "-0", "-1", "0.1", "2.4", "1e308", "1e-308", "1e999", "-1e999", ".nan", ".inf", "-.inf", "NaN",
           "9" * 400, "1" + "0" * 15, "1" + "0" * 16, "0." + "0" * 40 + "1", "123456789.123456789", "1_000",
           "0x1F", "1/3", "'12'", "+5", "5e15", "1e15", "999999999999999.9"]
UNITS = ["U/L", "kU/L", "mU/L", "ukat/L", "mg/dL", "umol/L", "mmol/L", "g/L", "", "%", "10^300 U/L"]


def generate(rng, i: int) -> Case:
    value = pick(rng, NUMBERS)
    lab = pick(rng, ["ALT", "CREA"])
    unit = pick(rng, UNITS)
    extra = f", uln: {pick(rng, NUMBERS)}" if rng.random() < 0.3 else ""
    if i % 2:
        unit_part = f", unit: '{unit}'" if unit else ""
        text = ("patient: {id: p}\nstart: 2025-01-06\nevents:\n"
                f"  - {{date: 2025-01-06, lab: {lab}, value: {value}{unit_part}{extra}}}\n")
        files = {"p.rxw": PROTOCOL, "t.yaml": text}
        argv = ["simulate", "p.rxw", "t.yaml", "-f", pick(rng, ["json", "table"])]
    else:
        value = value.strip("'").replace(".nan", "nan").replace(".inf", "inf")
        uln = f",{pick(rng, NUMBERS).strip(chr(39))}" if extra else ""
        text = f"date,lab,value,unit{',uln' if uln else ''}\n2025-01-06,{lab},{value},{unit}{uln}\n"
        files = {"p.rxw": PROTOCOL, "l.csv": text}
        argv = ["simulate", "p.rxw", "l.csv", "-f", pick(rng, ["json", "table"])]
    return Case("numbers", f"number {i}", files, argv)


FAMILY = Family("numbers", generate, count=200)


def test_sample(tmp_path):
    FAMILY.assert_clean(tmp_path, seed=1, n=FAMILY.sample)


@pytest.mark.slow
def test_budget(tmp_path):
    FAMILY.assert_clean(tmp_path, seed=slow_seed(), n=FAMILY.count)


@settings(max_examples=int(os.environ.get("RXWATCH_HYPOTHESIS_EXAMPLES", 10)), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=st.decimals(allow_nan=True, allow_infinity=True) | st.integers(-10**40, 10**40))
def test_hypothesis_any_decimal_value(tmp_path_factory, value):
    """Any decimal or integer as a lab value: refused (E708) or replayed with its exact value."""
    text = f"patient: {{id: p}}\nstart: 2025-01-06\nevents:\n  - {{date: 2025-01-06, lab: ALT, value: {value}}}\n"
    case = Case("numbers", "hypothesis", {"p.rxw": PROTOCOL, "t.yaml": text}, ["simulate", "p.rxw", "t.yaml", "-f", "json"])
    kind, reason, o = run(case, tmp_path_factory.mktemp("n"))
    assert kind != "failure", f"{value!r}: {reason}"
