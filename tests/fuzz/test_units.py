"""Family "units": unit strings in a timeline (YAML `unit`, FHIR `valueQuantity.code`, a CSV
column): UCUM and pint spellings, prefixes, powers, brackets, unknown and malformed units,
64 and 65 characters (the bound), terminal text. Right: a unit that does not convert exactly,
or longer than 64 characters, refused (E709) quickly; a convertible one replayed."""

from __future__ import annotations

import pytest

from fuzzkit import PROTOCOL, TERMINAL, Case, Family, pick, slow_seed

UNITS = ["U/L", "u/l", "IU/L", "[IU]/L", "kU/L", "ukat/L", "µkat/L", "mg/dL", "mg/dl", "umol/L", "µmol/L", "mmol/L",
         "g/L", "mg/L", "U/mL", "U/L/L", "U*L", "U^2/L", "(U/L)", "U / L", "1/L", "", " ", "meter", "%", "mg/dL.",
         "10*3/uL", "U" * 64, "U" * 65, "/" * 64, "((((U))))", "U/" + "L" * 62, "kkU/L", "nan", "inf U/L", "1e999 U/L",
         "U/L" + "\u00a0", "mg/(dL)", "[mg/dL]", "mol", "g", "kg/m3"]


def generate(rng, i: int) -> Case:
    unit = pick(rng, UNITS) if rng.random() < 0.85 else pick(rng, TERMINAL)
    lab = pick(rng, ["ALT", "CREA"])
    quoted = unit.replace("\\", "\\\\").replace('"', '\\"')
    if i % 2:
        text = ("patient: {id: p}\nstart: 2025-01-06\nevents:\n"
                f'  - {{date: 2025-01-06, lab: {lab}, value: 30, unit: "{quoted}"}}\n')
        return Case("units", f"unit {i}", {"p.rxw": PROTOCOL, "t.yaml": text}, ["simulate", "p.rxw", "t.yaml", "-f", "table"])
    cell = '"' + unit.replace('"', '""') + '"'
    text = f"date,lab,value,unit\n2025-01-06,{lab},30,{cell}\n"
    return Case("units", f"unit {i}", {"p.rxw": PROTOCOL, "l.csv": text}, ["simulate", "p.rxw", "l.csv", "-f", "json"])


FAMILY = Family("units", generate, count=150)


def test_sample(tmp_path):
    FAMILY.assert_clean(tmp_path, seed=1, n=FAMILY.sample)


@pytest.mark.slow
def test_budget(tmp_path):
    FAMILY.assert_clean(tmp_path, seed=slow_seed(), n=FAMILY.count)
