"""Lab units and numbers, read the UCUM way and converted exactly.

Numbers are exact rationals: `exact` reads an `int`, a `Fraction`, a decimal text or a float
(through the decimal text it was read from, see `yamlsrc.Float`, else its shortest repr) into
an `int` (when integral) or a `fractions.Fraction`, never through a binary float's value:
`exact("2.4") == Fraction(12, 5)`, while `Fraction(2.4)` is 2.399999999999999911182158029987...

A unit string is read here into a canonical form: an exact factor times powers of five base
dimensions, gram `g`, mole `mol`, metre `m`, second `s` (and nothing for counts). The UCUM
spellings and their everyday variants of one unit come out equal (`U/L`, `IU/L`, `[iU]/L`,
`U/l` and `iu/L` are all enzyme activity per litre; `10*9/L`, `10*3/uL`, `K/uL`, `10*3/mm3`,
`x10E9/L` and `G/L` are one count per volume, and `/mm3`, `/uL`, `cells/uL` a thousandth of it; `{ratio}`, `1`, `ratio`, `INR` and no unit at all are all "no
unit"). Two units with the same dimensions convert by the ratio of their factors; an amount
and a mass concentration convert through a lab's molar mass. Every factor is an exact
rational, so a conversion is too:

    convert(24, "mg/L", "mg/dL")                       # Fraction(12, 5): 2.4 exactly
    convert(60, "umol/L", "mg/dL", molar_mass=584.66)  # Fraction(87699, 25000) (bilirubin)
    convert(42, "IU/L", "U/L")                         # 42
    factor("10*9/L", "/mm3")                           # 1000 (None: no constant factor)

This is the one unit table of rxwatch: the compiler's type checker asks `same_unit`,
`same_dimension` and `factor` too.
"""

from __future__ import annotations

import functools
import math
import re
from fractions import Fraction
from typing import Any, Union

__all__ = ["UnitError", "Number", "MAX_UNIT_LENGTH", "MAX_NUMBER_LENGTH", "exact", "canonical",
           "same_unit", "same_dimension", "factor", "convert", "describe"]

Number = Union[int, Fraction]
"""An exact number: an int, or a Fraction whose denominator is not 1."""

MAX_UNIT_LENGTH = 64
"""A unit string longer than this is refused before it is read (no lab unit is near it)."""

MAX_NUMBER_LENGTH = 64
"""A number written with more characters than this is refused before it is read."""

_MAX_EXPONENT = 400  # a decimal exponent beyond this is refused before 10**e is built


class UnitError(ValueError):
    """A unit that is not understood, or that does not convert to the one asked for."""


# ---------------------------------------------------------------------------- exact numbers

_DECIMAL = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


def exact(value: Any) -> Number:
    """`value` as an exact number; ValueError (with the reason) when it is not a finite number.

    An int or Fraction is kept (a Fraction with denominator 1 becomes an int). A text is read
    as a decimal (`"2.4"`, `"1e3"`, `".5"`; other texts Python's float() reads, such as
    `"1_000"`, through that float's shortest repr). A float is read from the text it was
    parsed from when it carries one (a `.text` attribute, as yamlsrc and the FHIR reader
    give), else from its shortest repr: the decimal that the file shows. bool is refused."""
    if isinstance(value, bool):
        raise ValueError("not a number")
    if isinstance(value, int):
        return value
    if isinstance(value, Fraction):
        return value.numerator if value.denominator == 1 else value
    if isinstance(value, float):
        text = getattr(value, "text", None)
        if not isinstance(text, str):
            if not math.isfinite(value):
                raise ValueError("not finite")
            text = repr(value)
        return _from_text(text, value)
    if isinstance(value, str):
        return _from_text(value, None)
    raise ValueError("not a number")


def _from_text(text: str, parsed: float | None) -> Number:
    text = text.strip()
    if len(text) > MAX_NUMBER_LENGTH:
        raise ValueError(f"written with {len(text)} characters (at most {MAX_NUMBER_LENGTH})")
    if _DECIMAL.fullmatch(text):
        mantissa, _, exponent = text.lower().partition("e")
        if exponent and abs(int(exponent)) > _MAX_EXPONENT:
            raise ValueError(f"out of range (a decimal exponent beyond {_MAX_EXPONENT})")
        return _normal(Fraction(text))
    number = parsed
    if number is None:
        try:
            number = float(text)
        except ValueError:
            raise ValueError("not a number") from None
    if not math.isfinite(number):
        raise ValueError("not finite")
    return _normal(Fraction(repr(float(number))))


def _normal(x: Fraction) -> Number:
    return x.numerator if x.denominator == 1 else x


def describe(x: Number) -> str:
    """A short decimal text of an exact number, for messages (`2.4`, `1e+311`)."""
    if isinstance(x, int) and abs(x) < 10**16:
        return str(x)
    try:
        return f"{float(x):.6g}"
    except OverflowError:
        return f"about 10^{len(str(abs(int(x)))) - 1}"


# ---------------------------------------------------------------------------- reading units

# (factor, ((dimension, exponent), ...)) with dimensions sorted: "mg/dL" -> (10, (("g", 1), ("m", -3)))
Canonical = tuple[Fraction, tuple[tuple[str, int], ...]]
DIMENSIONLESS: Canonical = (Fraction(1), ())

_NO_UNIT_WORDS = {"", "1", "ratio", "inr"}

_F = Fraction
# Atoms by their exact spelling: (factor, {dimension: exponent}) in g, mol, m, s.
_ENZYME = (_F(1, 60_000_000), {"mol": 1, "s": -1})  # U: 1 umol/min; IU is U in the lab world
_UNITS: dict[str, tuple[Fraction, dict[str, int]]] = {
    "g": (_F(1), {"g": 1}),
    "mol": (_F(1), {"mol": 1}),
    "m": (_F(1), {"m": 1}),
    "L": (_F(1, 1000), {"m": 3}),
    "l": (_F(1, 1000), {"m": 3}),
    "s": (_F(1), {"s": 1}),
    "min": (_F(60), {"s": 1}),
    "h": (_F(3600), {"s": 1}),
    "d": (_F(86400), {"s": 1}),
    "kat": (_F(1), {"mol": 1, "s": -1}),
    "U": _ENZYME, "IU": _ENZYME, "iu": _ENZYME, "Iu": _ENZYME, "[iU]": _ENZYME, "[IU]": _ENZYME,
    "cells": (_F(1), {}), "cell": (_F(1), {}),  # counts: `cells/uL` is `/uL`
    # Counts as lab feeds write them (never as UCUM means the letters): thousands in `K/uL`,
    # `k/uL`, `thou/uL` (not the kelvin); millions in `mill/uL`; the French `G/L` (giga, 10^9/L)
    # and `T/L` (tera, 10^12/L); `cmm` and `cumm` are the cubic millimetre (`cells/cmm`).
    "K": (_F(1000), {}), "k": (_F(1000), {}), "thou": (_F(1000), {}),
    "mill": (_F(10**6), {}), "mil": (_F(10**6), {}),
    "G": (_F(10**9), {}), "T": (_F(10**12), {}),
    "cmm": (_F(1, 10**9), {"m": 3}), "cumm": (_F(1, 10**9), {"m": 3}),
}
# Atoms that take an SI prefix (`mg`, `dL`, `umol`, `mm`, `ukat`, `mU`, `kIU`, `m[iU]`).
_PREFIXABLE = {"g", "mol", "m", "L", "l", "s", "kat", "U", "IU", "iu", "Iu", "[iU]", "[IU]"}
_PREFIXES: dict[str, Fraction] = {
    "Y": _F(10) ** 24, "Z": _F(10) ** 21, "E": _F(10) ** 18, "P": _F(10) ** 15, "T": _F(10) ** 12,
    "G": _F(10) ** 9, "M": _F(10) ** 6, "k": _F(10) ** 3, "h": _F(10) ** 2, "da": _F(10),
    "d": _F(1, 10), "c": _F(1, 100), "m": _F(1, 1000), "u": _F(1, 10**6), "mc": _F(1, 10**6),
    "n": _F(1, 10**9), "p": _F(1, 10**12), "f": _F(1, 10**15), "a": _F(1, 10**18),
    "z": _F(1, 10**21), "y": _F(1, 10**24),
}
_TOKEN = re.compile(
    r"(?P<op>[./])"
    r"|10[*^](?P<ten>[+-]?\d{1,2})(?![\d])"
    r"|(?P<num>\d+)(?![\d])"
    r"|(?P<atom>\[[^\[\]]+\]|[A-Za-z%]+)(?P<exp>[+-]?\d{1,2})?(?![\d])"
)
_ANNOTATION = re.compile(r"\{[^{}]*\}")
# A power of ten as EHR exports write it: `x10E9`, `x10^9`, `X10*9`, `\u00d710\u2079`, `10E9`,
# `10**9` and `10e3` all mean UCUM's `10*9`; the leading `x` (times) says nothing more.
_SUPERSCRIPTS = str.maketrans("\u2070\u00b9\u00b2\u00b3\u2074\u2075\u2076\u2077\u2078\u2079\u207a\u207b", "0123456789+-")
_TIMES = r"(?:(?<![A-Za-z\d\]])[xX\u00d7])?(?<!\d)10"
_TEN_POWER = re.compile(_TIMES + r"(?:\*\*|[eE^*])(?P<sign>[+-]?)(?P<digits>\d{1,2})(?!\d)")
_TEN_SUPERSCRIPT = re.compile(_TIMES + r"(?P<power>[\u207a\u207b]?[\u2070\u00b9\u00b2\u00b3\u2074-\u2079]{1,2})(?![\u2070\u00b9\u00b2\u00b3\u2074-\u2079])")


@functools.lru_cache(maxsize=512)
def canonical(unit: str | None) -> Canonical:
    """Read a UCUM (or everyday) unit string; raise UnitError when it cannot be read."""
    text = "" if unit is None else str(unit)
    if len(text) > MAX_UNIT_LENGTH:
        raise UnitError(f"a unit of {len(text)} characters is too long (at most {MAX_UNIT_LENGTH})")
    shown = text
    text = text.replace("\u00b5", "u").replace("\u03bc", "u").replace(" ", "")
    text = _ANNOTATION.sub("", text)  # UCUM annotations mean nothing: {ratio} is 1, {cells}/uL is /uL
    if "10" in text:
        text = _TEN_SUPERSCRIPT.sub(lambda m: "10*" + m["power"].translate(_SUPERSCRIPTS), text)
        text = _TEN_POWER.sub(lambda m: f"10*{m['sign']}{m['digits']}", text)
    if text.lower() in _NO_UNIT_WORDS:
        return DIMENSIONLESS
    factor = Fraction(1)
    powers: dict[str, int] = {}
    sign = 1
    expect_term = True
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise UnitError(f"cannot read the unit '{shown}' (at '{text[pos:]}')")
        pos = m.end()
        if m["op"]:
            if expect_term and not (m["op"] == "/" and m.start() == 0):
                raise UnitError(f"cannot read the unit '{shown}'")
            sign = -1 if m["op"] == "/" else 1
            expect_term = True
            continue
        if not expect_term:
            raise UnitError(f"cannot read the unit '{shown}': write '.' or '/' between its parts")
        expect_term = False
        if m["ten"]:
            factor *= Fraction(10) ** (sign * int(m["ten"]))
        elif m["num"]:
            number = int(m["num"])
            if number == 0 or number > 10**12:
                raise UnitError(f"cannot read the unit '{shown}'")
            factor *= Fraction(number) ** sign
        else:
            exponent = sign * int(m["exp"] or 1)
            if m["atom"] == "%":
                factor *= Fraction(1, 100) ** exponent
                continue
            atom_factor, dims = _atom(m["atom"], shown)
            factor *= atom_factor ** exponent
            for dim, power in dims.items():
                powers[dim] = powers.get(dim, 0) + power * exponent
    if expect_term:
        raise UnitError(f"cannot read the unit '{shown}'")
    return factor, tuple(sorted((d, e) for d, e in powers.items() if e))


def _atom(atom: str, written: str) -> tuple[Fraction, dict[str, int]]:
    """An atom's factor and dimensions: its exact spelling first (`min`, `mol`, `m`), else an
    SI prefix on a prefixable atom (`mm`, `umol`, `dL`, `kIU`)."""
    known = _UNITS.get(atom)
    if known is not None:
        return known
    for size in (2, 1):
        prefix, base = atom[:size], atom[size:]
        if prefix in _PREFIXES and base in _PREFIXABLE:
            factor, dims = _UNITS[base]
            return _PREFIXES[prefix] * factor, dims
    raise UnitError(f"unknown unit '{atom}' in '{written}'")


def same_unit(a: str | None, b: str | None) -> bool:
    """True when both strings name the same unit (False when either cannot be read)."""
    try:
        return canonical(a) == canonical(b)
    except UnitError:
        return False


def same_dimension(a: str | None, b: str | None) -> bool:
    """True when a value in unit `a` converts to unit `b` by an exact constant factor (no molar
    mass needed): `10*9/L` and `/mm3`, `mg/dL` and `g/L`. False when they do not, or when either
    cannot be read. "No unit" converts only to its own spellings (never to `%`)."""
    return factor(a, b) is not None


def factor(a: str | None, b: str | None) -> Number | None:
    """The exact number a value in unit `a` is multiplied by to be in unit `b` (an int or a
    Fraction: `factor("10*9/L", "/mm3") == 1000`, `factor("/uL", "K/uL") == Fraction(1, 1000)`,
    `factor("K/uL", "10*9/L") == 1`), None when the units do not convert by a constant factor
    or when either cannot be read. `convert(x, a, b) == x * factor(a, b)` whenever it is not None."""
    try:
        return convert(1, a, b)
    except UnitError:
        return None


# ---------------------------------------------------------------------------- converting

def convert(value: Any, from_unit: str | None, to_unit: str | None, molar_mass: Any = None) -> Number:
    """`value` in `from_unit`, expressed exactly in `to_unit`; None as a unit means "no unit".

    `value` is read by `exact` (ValueError when it is not a finite number); the result is an
    int or a Fraction. A quantity without unit (to_unit None or "1") accepts only spellings of
    "no unit" ("1", "{ratio}", "ratio", "INR"), never "%". With `molar_mass` (g/mol, read by
    `exact`: a float as the decimal it shows), amount and mass concentrations convert into
    each other. Raises UnitError when the units do not convert."""
    x = exact(value)
    if from_unit == to_unit and (from_unit is None or len(str(from_unit)) <= MAX_UNIT_LENGTH):
        return x
    src, dst = canonical(from_unit), canonical(to_unit)
    if src == dst:
        return x
    if dst == DIMENSIONLESS or src == DIMENSIONLESS:
        have = "no unit" if src == DIMENSIONLESS else f"'{from_unit}'"
        want = "no unit" if dst == DIMENSIONLESS else f"'{to_unit}'"
        raise UnitError(f"{have} does not convert to {want}")
    if src[1] == dst[1]:
        return _normal(x * src[0] / dst[0])
    mass = _molar_mass(molar_mass)
    power = _mass_for_amount(dict(src[1]), dict(dst[1]))
    if power is None or mass is None:
        hint = " (an amount converts to a mass only for a lab with a molar mass)" if power and mass is None else ""
        raise UnitError(f"'{from_unit}' does not convert to '{to_unit}'{hint}")
    return _normal(x * src[0] * Fraction(mass) ** power / dst[0])


def _molar_mass(molar_mass: Any) -> Number | None:
    if molar_mass is None:
        return None
    try:
        mass = exact(molar_mass)
    except ValueError:
        return None
    return mass if mass > 0 else None


def _mass_for_amount(src: dict[str, int], dst: dict[str, int]) -> int | None:
    """k when `dst` is `src` with mol^k turned into g^k (k != 0): multiply by the molar mass
    to the power k; None when the dimensions differ otherwise."""
    dims = set(src) | set(dst)
    diff = {d: dst.get(d, 0) - src.get(d, 0) for d in dims}
    k = diff.get("g", 0)
    if k == 0 or diff.get("mol", 0) != -k:
        return None
    if any(e for d, e in diff.items() if d not in ("g", "mol")):
        return None
    return k
