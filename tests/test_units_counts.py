"""Count units (simulator/units.py; docs/timelines.md#units): every spelling lab feeds send for
cells per volume, exact conversions between them, the functions the type checker imports
(`same_unit`, `same_dimension`, `factor`), and timelines (YAML, CSV, FHIR) whose results come
in another count unit than the protocol's."""

from __future__ import annotations

import json
import textwrap
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rxwatch.compiler import compile_source
from rxwatch.simulator import units
from rxwatch.inputs.model import TimelineError
from rxwatch.inputs.registry import load_timeline

F = Fraction

# 10^9 per litre = 1000 per microlitre
GIGA_PER_LITRE = ["10*9/L", "10^9/L", "10*3/uL", "10^3/uL", "K/uL", "k/uL", "thou/uL", "10*3/mm3",
                  "x10E9/L", "X10E9/L", "x10^9/L", "x10*9/L", "10E9/L", "10e9/L", "10**9/L", "\u00d710\u2079/L",
                  "10\u2079/L", "x10E3/uL", "10*3/\u00b5L", "x10\u00b3/\u00b5L", "G/L", "10*9/l", "K/mm3",
                  "10*3{cells}/uL", "10*9{cells}/L", "/nL", "10*3/mcL", "K/cumm"]
# 1 per microlitre (= per cubic millimetre)
PER_MICROLITRE = ["/mm3", "/uL", "cells/uL", "{cells}/uL", "/\u00b5L", "cells/mm3", "{cells}/mm3", "/cmm",
                  "cells/cmm", "/cumm", "cells/mcL", "10*6/L", "x10E6/L", "1/uL"]
# 10^12 per litre (red cells)
TERA_PER_LITRE = ["10*12/L", "10^12/L", "x10E12/L", "10*6/uL", "x10E6/uL", "T/L", "mill/uL", "mil/uL", "10*6/mm3"]

ALL_COUNTS = GIGA_PER_LITRE + PER_MICROLITRE + TERA_PER_LITRE
SCALE = {**{u: 1000 for u in GIGA_PER_LITRE}, **{u: 1 for u in PER_MICROLITRE}, **{u: 10**6 for u in TERA_PER_LITRE}}
"""Each spelling's size in cells per microlitre."""


@pytest.mark.parametrize("spelling", GIGA_PER_LITRE)
def test_spellings_of_10e9_per_litre_are_one_unit(spelling):
    assert units.same_unit(spelling, "10*9/L") and units.same_unit("K/uL", spelling)
    assert units.factor(spelling, "10*9/L") == 1
    assert units.convert("1.5", spelling, "/mm3") == 1500


@pytest.mark.parametrize("spelling", PER_MICROLITRE)
def test_spellings_of_cells_per_microlitre_are_one_unit(spelling):
    assert units.same_unit(spelling, "/mm3") and not units.same_unit(spelling, "10*9/L")
    assert units.same_dimension(spelling, "10*9/L")
    assert units.convert(1500, spelling, "10*9/L") == F(3, 2)  # ANC 1500/mm3 = 1.5 x 10^9/L


@pytest.mark.parametrize("spelling", TERA_PER_LITRE)
def test_spellings_of_10e12_per_litre_are_one_unit(spelling):
    assert units.same_unit(spelling, "10*12/L")
    assert units.convert("4.52", spelling, "/uL") == 4_520_000


def test_the_brief_examples_exactly():
    assert units.convert("1.5", "10*9/L", "/mm3") == 1500          # ANC
    assert units.convert(100, "K/uL", "/mm3") == 100_000           # platelets
    assert units.convert(100_000, "/mm3", "K/uL") == 100
    assert units.convert("0.499", "10*9/L", "cells/uL") == 499
    assert units.convert(1, "/uL", "10*9/L") == F(1, 1000)
    assert type(units.convert(1500, "/mm3", "10*9/L")) is Fraction


def test_factor_and_same_dimension():
    assert units.factor("10*9/L", "/mm3") == 1000 and type(units.factor("10*9/L", "/mm3")) is int
    assert units.factor("/uL", "K/uL") == F(1, 1000)
    assert units.factor("mg/dL", "g/L") == F(1, 100)
    assert units.factor("IU/L", "U/L") == 1
    assert units.factor(None, "{ratio}") == 1 and units.factor("1", "INR") == 1
    for a, b in [("10*9/L", "U/L"), ("/mm3", None), ("1", "%"), ("umol/L", "mg/dL"), ("/uL", "nonsense unit"),
                 ("10*9/L", "10*9/L/d"), ("10*9/L", "10*9")]:
        assert units.factor(a, b) is None and not units.same_dimension(a, b) and not units.same_unit(a, b), (a, b)
    assert units.same_dimension("10*9/L", "/mm3") and not units.same_unit("10*9/L", "/mm3")


@pytest.mark.parametrize("written", ["210^9/L", "10.e9/L", "x10/L", "10E/L", "10*999/L", "max10E9/L", "M/uL"])
def test_what_is_not_a_count_unit_is_refused(written):
    with pytest.raises(units.UnitError):
        units.canonical(written)


def test_prefixed_atoms_are_unchanged_by_the_count_words():
    assert units.canonical("kg") == (1000, (("g", 1),))
    assert units.canonical("Gm") == (10**9, (("m", 1),))
    assert units.canonical("mm") == (F(1, 1000), (("m", 1),))
    assert units.canonical("umol/L") == (F(1, 1000), (("m", -3), ("mol", 1)))
    assert units.canonical("10*-3") == (F(1, 1000), ())


count = st.sampled_from(ALL_COUNTS)
exact_number = st.one_of(st.integers(-10**12, 10**12),
                         st.fractions(max_denominator=10**6).filter(lambda x: abs(x) < 10**12))


@settings(max_examples=300, deadline=None)
@given(x=exact_number, a=count, b=count)
def test_a_count_round_trips_exactly(x, a, b):
    there = units.convert(x, a, b)
    assert units.convert(there, b, a) == x
    assert there == x * F(SCALE[a], SCALE[b])
    assert there == x * units.factor(a, b)
    assert type(there) in (int, Fraction) and (type(there) is int) == (F(there).denominator == 1)


@settings(max_examples=300, deadline=None)
@given(a=count, b=count, c=count)
def test_factors_compose(a, b, c):
    assert units.factor(a, b) * units.factor(b, c) == units.factor(a, c)
    assert units.same_unit(a, b) == (SCALE[a] == SCALE[b])
    assert units.same_dimension(a, b)


@settings(max_examples=200, deadline=None)
@given(digits=st.text("0123456789", min_size=1, max_size=6), point=st.integers(0, 6), a=count, b=count)
def test_a_decimal_text_converts_exactly(digits, point, a, b):
    text = digits if point == 0 or point >= len(digits) else digits[:-point] + "." + digits[-point:]
    value = F(text)
    assert units.convert(text, a, b) == value * SCALE[a] / SCALE[b]


# ---------------------------------------------------------------------------- timelines

PROTOCOL = textwrap.dedent("""\
    protocol counts
      version "0.1"

    source s "A source" kind label

    lab ANC "absolute neutrophil count" unit "10*9/L" loinc "751-8"
    lab PLT "platelets" unit "K/uL" loinc "777-3"
    lab WBC "white cells" unit "/mm3" loinc "6690-2"
    action cbc "order a blood count" orders ANC, PLT, WBC

    initial state watch "watching" {
      on entry { do cbc due 1..2 weeks cite s }
      on panel {
        when ANC < 1.5 or PLT < 100 or WBC < 3000 -> low cite s
        otherwise stay cite s
      }
    }

    state low "low counts" {
      on panel {
        when ANC >= 1.5 and PLT >= 100 and WBC >= 3000 -> watch cite s
        otherwise stay cite s
      }
    }
""")


def _graph():
    result = compile_source(PROTOCOL, "counts.rxw")
    assert result.ok, result.diagnostics
    return result.graph


@pytest.fixture(scope="module")
def protocol():
    return _graph().graph


def _values(timeline) -> list[tuple[str, str, object]]:
    return [(str(r.date), r.lab, r.value) for r in timeline.events if hasattr(r, "lab")]


def test_yaml_results_in_other_count_units_are_read_exactly(tmp_path, protocol):
    path = tmp_path / "t.yaml"
    path.write_text(textwrap.dedent("""\
        patient: {id: p}
        start: 2025-01-06
        events:
          - {date: 2025-01-06, lab: ANC, value: 1500, unit: /mm3}
          - {date: 2025-01-06, lab: PLT, value: 100000, unit: cells/uL}
          - {date: 2025-01-06, lab: WBC, value: 4.2, unit: x10E9/L}
          - {date: 2025-01-20, lab: ANC, value: 1499, unit: "{cells}/uL"}
          - {date: 2025-01-20, lab: PLT, value: 0.1, unit: 10*6/uL}
          - {date: 2025-01-20, lab: WBC, value: 3, unit: 10^9/L}
    """))
    t = load_timeline(path, protocol)
    assert _values(t) == [("2025-01-06", "ANC", F(3, 2)), ("2025-01-06", "PLT", 100), ("2025-01-06", "WBC", 4200),
                          ("2025-01-20", "ANC", F(1499, 1000)), ("2025-01-20", "PLT", 100), ("2025-01-20", "WBC", 3000)]


def test_csv_results_in_other_count_units_are_read_exactly(tmp_path, protocol):
    path = tmp_path / "labs.csv"
    path.write_text("date,lab,value,unit\n2025-01-06,ANC,1500,cells/uL\n2025-01-06,777-3,150,10*9/L\n"
                    "2025-01-06,WBC,4.51,K/uL\n2025-01-07,ANC,0.9,G/L\n")
    t = load_timeline(path, protocol)
    assert _values(t) == [("2025-01-06", "ANC", F(3, 2)), ("2025-01-06", "PLT", 150), ("2025-01-06", "WBC", 4510),
                          ("2025-01-07", "ANC", F(9, 10))]


def test_a_count_unit_that_is_not_a_count_is_a_located_error(tmp_path, protocol):
    path = tmp_path / "t.yaml"
    path.write_text("patient: {id: p}\nstart: 2025-01-06\nevents:\n"
                    "  - {date: 2025-01-06, lab: ANC, value: 1500, unit: /mm3}\n"
                    "  - {date: 2025-01-06, lab: PLT, value: 100, unit: mg/dL}\n")
    with pytest.raises(TimelineError) as info:
        load_timeline(path, protocol)
    [message] = info.value.messages
    assert message.line == 5 and "mg/dL" in message.text and "K/uL" in message.text


def _observation(ident: str, loinc: str, value: str, code: str, date: str) -> dict:
    return {"resource": {"resourceType": "Observation", "id": ident, "status": "final",
                         "code": {"coding": [{"system": "http://loinc.org", "code": loinc}]},
                         "subject": {"reference": "Patient/p"}, "effectiveDateTime": date,
                         "valueQuantity": {"value": value, "unit": "whatever the EHR shows",
                                           "system": "http://unitsofmeasure.org", "code": code}}}


def test_fhir_ucum_count_codes_are_read_exactly(tmp_path, protocol):
    entries = [{"resource": {"resourceType": "Patient", "id": "p"}},
               _observation("a", "751-8", "1.5", "10*9/L", "2025-01-06"),
               _observation("b", "777-3", "99500", "/uL", "2025-01-06"),
               _observation("c", "6690-2", "3.25", "10*3/uL", "2025-01-06")]
    text = json.dumps({"resourceType": "Bundle", "type": "collection", "entry": entries}, indent=1)
    text = text.replace('"1.5"', "1.5").replace('"99500"', "99500").replace('"3.25"', "3.25")  # JSON numbers
    path = tmp_path / "b.json"
    path.write_text(text)
    t = load_timeline(path, protocol)
    assert _values(t) == [("2025-01-06", "ANC", F(3, 2)), ("2025-01-06", "PLT", F(199, 2)), ("2025-01-06", "WBC", 3250)]


def test_a_run_decides_on_the_converted_counts(tmp_path):
    from rxwatch.simulator.engine import simulate

    g = _graph()
    path = tmp_path / "t.yaml"
    path.write_text(textwrap.dedent("""\
        patient: {id: p}
        start: 2025-01-06
        events:
          - {date: 2025-01-06, lab: ANC, value: 1500, unit: /mm3}
          - {date: 2025-01-06, lab: PLT, value: 100000, unit: /mm3}
          - {date: 2025-01-06, lab: WBC, value: 3, unit: K/uL}
          - {date: 2025-01-13, lab: ANC, value: 1499, unit: cells/uL}
          - {date: 2025-01-13, lab: PLT, value: 150, unit: 10*9/L}
          - {date: 2025-01-13, lab: WBC, value: 3000, unit: /uL}
    """))
    trace = simulate(g, load_timeline(path, g.graph))
    moves = [(s["date"], s["from"], s["to"]) for s in trace["steps"] if s["type"] == "transition"]
    assert moves == [("2025-01-06", "watch", "watch"), ("2025-01-13", "watch", "low")]
