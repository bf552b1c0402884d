"""Lab units, compared the UCUM way and converted with pint.

A unit string is first read here, cheaply, into a canonical form: the UCUM spellings and their
everyday variants of one unit come out equal (`U/L`, `IU/L`, `[iU]/L`, `U/l` and `iu/L` are all
enzyme activity per litre; `{ratio}`, `1`, `ratio`, `INR` and no unit at all are all "no unit").
Only when the canonical forms differ is pint imported (lazily: importing it and building its
registry costs about 0.3 s, see docs/timelines.md) to convert by factor (`mg/dL` -> `g/L`) or,
given the lab's molar mass, between amount and mass concentrations (`umol/L` -> `mg/dL`).

    convert(60, "umol/L", "mg/dL", molar_mass=584.66)  # 3.508 (bilirubin)
    convert(42, "IU/L", "U/L")                         # 42.0, pint not imported
"""

from __future__ import annotations

import functools
import math
import re
from typing import Any

__all__ = ["UnitError", "canonical", "same_unit", "convert"]


class UnitError(ValueError):
    """A unit that is not understood, or that does not convert to the one asked for."""


# (factor, ((atom, exponent), ...)) with atoms sorted: "mg/dL" -> (1.0, (("dL", -1), ("mg", 1)))
Canonical = tuple[float, tuple[tuple[str, int], ...]]
DIMENSIONLESS: Canonical = (1.0, ())

_NO_UNIT_WORDS = {"", "1", "ratio", "inr"}
_PREFIXES = "YZEPTGMkhdcmunpfazy"
# enzyme activity: U and the international unit, bare or with one SI prefix (mU, kIU, m[iU])
_ENZYME = re.compile(rf"^([{_PREFIXES}]?)(?:U|IU|iu|Iu|\[iU\]|\[IU\])$")
_LITRE = re.compile(rf"^([{_PREFIXES}]?)[lL]$")
_TOKEN = re.compile(
    r"(?P<op>[./])"
    r"|10[*^](?P<ten>[+-]?\d{1,2})(?![\d])"
    r"|(?P<num>\d+)(?![\d])"
    r"|(?P<atom>\[[^\[\]]+\]|[A-Za-z%]+)(?P<exp>[+-]?\d{1,2})?(?![\d])"
)
_ATOM_NAME = re.compile(r"^[A-Za-z]+$")


@functools.lru_cache(maxsize=512)
def canonical(unit: str | None) -> Canonical:
    """Read a UCUM (or everyday) unit string; raise UnitError when it cannot be read."""
    text = "" if unit is None else str(unit)
    text = text.replace("\u00b5", "u").replace("\u03bc", "u").replace(" ", "")
    text = re.sub(r"\{[^{}]*\}", "", text)  # UCUM annotations mean nothing: {ratio} is 1
    if text.lower() in _NO_UNIT_WORDS:
        return DIMENSIONLESS
    factor = 1.0
    powers: dict[str, int] = {}
    sign = 1
    expect_term = True
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise UnitError(f"cannot read the unit '{unit}' (at '{text[pos:]}')")
        pos = m.end()
        if m["op"]:
            if expect_term and not (m["op"] == "/" and m.start() == 0):
                raise UnitError(f"cannot read the unit '{unit}'")
            sign = -1 if m["op"] == "/" else 1
            expect_term = True
            continue
        if not expect_term:
            raise UnitError(f"cannot read the unit '{unit}': write '.' or '/' between its parts")
        expect_term = False
        if m["ten"]:
            factor *= 10.0 ** (sign * int(m["ten"]))
        elif m["num"]:
            number = int(m["num"])
            if number == 0 or number > 10**12:
                raise UnitError(f"cannot read the unit '{unit}'")
            factor *= float(number) ** sign
        else:
            atom, exponent = _atom(m["atom"]), sign * int(m["exp"] or 1)
            if atom == "%":
                factor *= 0.01 ** exponent
            else:
                powers[atom] = powers.get(atom, 0) + exponent
    if expect_term:
        raise UnitError(f"cannot read the unit '{unit}'")
    return factor, tuple(sorted((a, e) for a, e in powers.items() if e))


def _atom(atom: str) -> str:
    if (m := _ENZYME.match(atom)) is not None:
        return m[1] + "U"
    if (m := _LITRE.match(atom)) is not None:
        return m[1] + "L"
    return atom


def same_unit(a: str | None, b: str | None) -> bool:
    """True when both strings name the same unit (False when either cannot be read)."""
    try:
        return canonical(a) == canonical(b)
    except UnitError:
        return False


def convert(value: float, from_unit: str | None, to_unit: str | None,
            molar_mass: float | None = None) -> float:
    """`value` in `from_unit`, expressed in `to_unit`; None as a unit means "no unit".

    A quantity without unit (to_unit None or "1") accepts only spellings of "no unit" ("1",
    "{ratio}", "ratio", "INR"), never "%". With `molar_mass` (g/mol), amount and mass
    concentrations convert into each other. Raises UnitError."""
    if from_unit == to_unit:
        return float(value)
    src, dst = canonical(from_unit), canonical(to_unit)
    if src == dst:
        return float(value)
    if dst == DIMENSIONLESS or src == DIMENSIONLESS:
        have = "no unit" if src == DIMENSIONLESS else f"'{from_unit}'"
        want = "no unit" if dst == DIMENSIONLESS else f"'{to_unit}'"
        raise UnitError(f"{have} does not convert to {want}")
    if src[1] == dst[1]:
        return float(value) * src[0] / dst[0]
    return _pint_convert(float(value), src, dst, from_unit, to_unit, molar_mass)


def _pint_convert(value: float, src: Canonical, dst: Canonical, from_unit: Any, to_unit: Any,
                  molar_mass: float | None) -> float:
    import pint

    ureg = _registry()
    src_units, dst_units = _pint_units(ureg, src, from_unit), _pint_units(ureg, dst, to_unit)
    quantity = ureg.Quantity(value * src[0], src_units)
    try:
        try:
            result = quantity.to(dst_units)
        except pint.DimensionalityError:
            if not molar_mass or not math.isfinite(molar_mass) or molar_mass <= 0:
                raise
            result = quantity.to(dst_units, "chemistry", mw=molar_mass * ureg.Quantity(1, "g/mol"))
    except pint.DimensionalityError:
        dims = {str(src_units.dimensionality), str(dst_units.dimensionality)}
        amount_vs_mass = any("[substance]" in d for d in dims) and any("[mass]" in d for d in dims)
        hint = " (an amount converts to a mass only for a lab with a molar mass)" if amount_vs_mass and not molar_mass else ""
        raise UnitError(f"'{from_unit}' does not convert to '{to_unit}'{hint}") from None
    except (pint.PintError, ArithmeticError, ValueError, TypeError):
        raise UnitError(f"'{from_unit}' does not convert to '{to_unit}'") from None
    return float(result.magnitude) / dst[0]


def _pint_units(ureg: Any, canon: Canonical, written: Any) -> Any:
    import pint

    units = ureg.dimensionless
    for atom, exponent in canon[1]:
        if not _ATOM_NAME.match(atom):
            raise UnitError(f"unknown unit '{atom}' in '{written}'")
        try:
            units = units * ureg.Unit(atom) ** exponent
        except (pint.PintError, AttributeError, ValueError, TypeError):
            raise UnitError(f"unknown unit '{atom}' in '{written}'") from None
    return units


@functools.cache
def _registry() -> Any:
    import pint

    return pint.UnitRegistry(cache_folder=None)
