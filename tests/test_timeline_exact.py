"""Exact numbers and lab units (simulator/units.py; docs/timelines.md#units)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from fractions import Fraction
from pathlib import Path

import pytest

from rxwatch.simulator import units
from rxwatch.inputs import yamlsrc

DATA = Path(__file__).parent / "data" / "timelines"
F = Fraction


# ---------------------------------------------------------------------------- exact numbers

@pytest.mark.parametrize("written,value", [
    ("2.4", F(12, 5)), ("24", 24), ("0.1", F(1, 10)), ("1e3", 1000), ("1.0e+3", 1000), (".5", F(1, 2)),
    ("-0.25", F(-1, 4)), ("41.04", F(1026, 25)), ("0.30000000000000001", F(30000000000000001, 10**17)),
    ("1e-20", F(1, 10**20)), (" 7 ", 7), ("1_000.5", F(2001, 2)),
])
def test_exact_reads_the_decimal_written(written, value):
    x = units.exact(written)
    assert x == value and type(x) is type(value)


def test_exact_reads_a_float_through_its_text_or_its_repr():
    assert units.exact(2.4) == F(12, 5) and F(2.4) != F(12, 5)  # the shortest repr, not the binary value
    assert units.exact(yamlsrc.Float("0.30000000000000001")) == F(30000000000000001, 10**17)  # the text wins
    assert units.exact(yamlsrc.Float("1e400")) == 10**400  # a float that overflowed: its text is exact
    assert units.exact(584.66) == F(58466, 100)
    assert units.exact(3.0) == 3 and type(units.exact(3.0)) is int
    assert units.exact(F(6, 3)) == 2 and type(units.exact(F(6, 3))) is int


@pytest.mark.parametrize("value,why", [
    ("nan", "not finite"), ("-inf", "not finite"), (float("nan"), "not finite"), (float("inf"), "not finite"),
    (yamlsrc.Float(".nan", float("nan")), "not finite"), (yamlsrc.Float("-.inf", float("-inf")), "not finite"),
    ("high", "not a number"), ("", "not a number"), (True, "not a number"), (None, "not a number"), ("1,5", "not a number"),
    ("1e401", "out of range"), ("1e-999999999", "out of range"), ("1" * 65, "written with 65 characters (at most 64)"),
])
def test_exact_refuses_what_is_not_a_finite_number(value, why):
    with pytest.raises(ValueError, match=why.replace("(", r"\(").replace(")", r"\)")):
        units.exact(value)


def test_a_huge_exponent_is_refused_before_it_is_built():
    began = time.perf_counter()
    with pytest.raises(ValueError):
        units.exact("1e999999999")
    assert time.perf_counter() - began < 0.1


def test_yaml_floats_keep_their_text():
    doc = yamlsrc.load("a: 2.4\nb: 1e400\nc: 1.10\nd: 3\ne: [0.1]\n")
    assert doc["a"].text == "2.4" and doc["a"] == 2.4 and isinstance(doc["a"], float)
    assert doc["b"].text == "1e400" and doc["b"] == float("inf")
    assert doc["c"].text == "1.10" and units.exact(doc["c"]) == F(11, 10)
    assert type(doc["d"]) is int and doc["e"][0].text == "0.1"


# ---------------------------------------------------------------------------- unit spellings

@pytest.mark.parametrize("spelling", ["U/L", "IU/L", "[iU]/L", "U/l", "iu/L", "[IU]/L", "IU/l", "mU/mL", "kIU/kL", "umol/min/L"])
def test_enzyme_activity_spellings_are_the_same_unit(spelling):
    assert units.same_unit(spelling, "U/L")
    assert units.convert(42, spelling, "U/L") == 42


@pytest.mark.parametrize("spelling", [None, "", "1", "{ratio}", "{INR}", "ratio", "INR"])
def test_no_unit_spellings(spelling):
    assert units.convert(1.4, spelling, None) == F(7, 5)
    assert units.convert("1.4", spelling, "1") == F(7, 5)


COUNTS_PER_LITRE_E9 = ["10*9/L", "10^9/L", "10*3/uL", "10^3/uL", "K/uL", "10*3/mm3", "10*3{cells}/uL"]
CELLS_PER_MICROLITRE = ["/mm3", "/uL", "cells/uL", "{cells}/uL", "/µL", "cells/mm3", "{cells}/mm3"]


@pytest.mark.parametrize("spelling", COUNTS_PER_LITRE_E9)
def test_counts_in_thousands_per_microlitre_are_exactly_10e9_per_litre(spelling):
    assert units.same_unit(spelling, "10*9/L")
    assert units.convert("1.5", spelling, "10*9/L") == F(3, 2)


@pytest.mark.parametrize("spelling", CELLS_PER_MICROLITRE)
def test_cells_per_microlitre_are_exactly_a_thousandth_of_10e9_per_litre(spelling):
    assert units.convert(1500, spelling, "10*9/L") == F(3, 2)  # ANC 1500/mm3 = 1.5 x 10^9/L
    assert units.convert(F(3, 2), "10*9/L", spelling) == 1500
    assert units.convert(499, spelling, "10*9/L") == F(499, 1000)


# ---------------------------------------------------------------------------- exact conversions

def test_bilirubin_24_mg_per_litre_is_exactly_2_4_mg_per_decilitre():
    x = units.convert(24, "mg/L", "mg/dL")
    assert x == F(12, 5) and x / units.exact(1.2) == 2  # exactly 2.0x ULN: the float gave 2.4000000000000004
    assert units.convert(2.4, "mg/dL", "mg/L") == 24


def test_amount_to_mass_through_the_molar_mass_is_exact():
    x = units.convert(41.04, "umol/L", "mg/dL", molar_mass=584.66)
    assert type(x) is Fraction and x == F("41.04") * F("584.66") / 10_000
    assert units.convert(60, "umol/L", "mg/dL", molar_mass=584.66) == F("3.50796")
    assert units.convert(x, "mg/dL", "umol/L", molar_mass=584.66) == F("41.04")  # the way back is exact
    assert units.convert(1, "mg/dL", "umol/L", molar_mass=584.66) == F(10_000) / F("584.66")
    assert units.convert(5, "mmol/L", "g/L", molar_mass="180.16") == F("0.9008")  # glucose; a molar mass as text
    assert units.convert(1, "mol/L", "g/mL", molar_mass=2) == F(1, 500)


@pytest.mark.parametrize("source,target,factor", [
    ("mg/dL", "g/L", F(1, 100)), ("mg/L", "mg/dL", F(1, 10)), ("ug/L", "ng/mL", 1), ("mcg/L", "ug/L", 1),
    ("ukat/L", "U/L", 60), ("nkat/L", "U/L", F(6, 100)), ("mmol/L", "umol/L", 1000), ("g/dL", "mg/dL", 1000),
    ("%", "10*-2", 1), ("fL", "uL", F(1, 10**9)), ("mL/min", "L/h", F(6, 100)),
    ("mm/h", "m/d", F(24, 1000)), ("dL", "mL", 100), ("10*12/L", "10*9/L", 1000), ("/L", "10*9/L", F(1, 10**9)),
])
def test_factor_conversions_are_exact(source, target, factor):
    assert units.convert(1, source, target) == factor
    assert units.convert(factor, target, source) == 1


def test_conversions_agree_with_pint():
    """An independent check of the factor table: pint (with Fraction magnitudes) converts alike."""
    pint = pytest.importorskip("pint")
    ureg = pint.UnitRegistry(non_int_type=Fraction, cache_folder=None)
    pairs = [("mg/dL", "g/L", "mg/dL", "g/L"), ("umol/L", "mmol/L", "umol/L", "mmol/L"), ("ukat/L", "U/L", "ukat/L", "U/L"),
             ("/mm3", "/L", "1/mm**3", "1/L"), ("ng/mL", "ug/L", "ng/mL", "ug/L"), ("fL", "uL", "fL", "uL"),
             ("mL/min", "L/h", "mL/min", "L/h"), ("mg/d", "g/h", "mg/day", "g/h"), ("mmol/L", "umol/mL", "mmol/L", "umol/mL")]
    for ours_from, ours_to, pint_from, pint_to in pairs:
        theirs = ureg.Quantity(Fraction(7, 3), pint_from).to(pint_to).magnitude
        assert units.convert(Fraction(7, 3), ours_from, ours_to) == theirs, (ours_from, ours_to)
    mw = Fraction("584.66") * ureg.Quantity(Fraction(1), "g/mol")
    theirs = ureg.Quantity(Fraction("41.04"), "umol/L").to("mg/dL", "chemistry", mw=mw).magnitude
    assert units.convert("41.04", "umol/L", "mg/dL", molar_mass=584.66) == theirs


@pytest.mark.parametrize("source,target,molar_mass,words", [
    ("umol/L", "mg/dL", None, "an amount converts to a mass only for a lab with a molar mass"),
    ("umol/L", "mg/dL", 0, "only for a lab with a molar mass"), ("umol/L", "mg/dL", float("nan"), "only for a lab"),
    ("U/L", "mg/dL", 584.66, "'U/L' does not convert to 'mg/dL'"), ("%", None, None, "'%' does not convert to no unit"),
    ("U/L", None, None, "does not convert to no unit"), (None, "U/L", None, "no unit does not convert to 'U/L'"),
    ("mg//dL", "mg/dL", None, "cannot read the unit 'mg//dL'"), ("[foo]/L", "U/L", None, "unknown unit '[foo]'"),
    ("xyz/L", "U/L", None, "unknown unit 'xyz' in 'xyz/L'"), ("10*99/L", "U/L", None, "does not convert"),
    ("cd/L", "U/L", None, "unknown unit 'cd'"), ("10*3mg/L", "mg/L", None, "write '.' or '/' between its parts"),
    ("g2/L", "g/L", None, "does not convert"), ("umol2/L2", "mg2/dL2", 584.66, None),
])
def test_what_does_not_convert(source, target, molar_mass, words):
    if words is None:  # mol^2 to g^2 converts, through the molar mass squared
        assert units.convert(1, source, target, molar_mass) == F("584.66") ** 2 / 10**8
        return
    with pytest.raises(units.UnitError, match=words.replace("(", r"\(").replace("[", r"\[").replace("*", r"\*")):
        units.convert(1, source, target, molar_mass)


def test_a_long_unit_is_refused_before_it_is_read():
    """Issue 10 item 8: a 100 KB unit cost about 97 s; it is refused at once."""
    for unit in ("{" * 100_000, "m" * 100_000 + "1" * 100, "U/" * 50_000):
        began = time.perf_counter()
        with pytest.raises(units.UnitError, match=r"a unit of \d+ characters is too long \(at most 64\)"):
            units.convert(1, unit, "U/L")
        assert not units.same_unit(unit, "U/L")
        assert time.perf_counter() - began < 0.1
    assert units.convert(1, "U/L" + " " * 61, "U/L") == 1  # 64 characters are read


def test_conversions_never_make_a_float():
    for value in (1, 2.4, "2.4", F(1, 3), yamlsrc.Float("0.1")):
        for source, target in (("U/L", "U/L"), ("IU/L", "U/L"), ("mg/L", "mg/dL"), ("ukat/L", "U/L")):
            assert type(units.convert(value, source, target)) in (int, Fraction)


def test_pint_is_never_imported_to_read_a_timeline():
    code = textwrap.dedent(f"""
        import json, sys
        from rxwatch.inputs.registry import load_timeline
        protocol = json.load(open({str(DATA / 'protocol.json')!r}))
        load_timeline({str(DATA / 'case-07.yaml')!r}, protocol)  # TBIL in umol/L
        load_timeline({str(DATA / 'labs.csv')!r}, protocol)
        assert 'pint' not in sys.modules
    """)
    subprocess.run([sys.executable, "-c", code], check=True)
