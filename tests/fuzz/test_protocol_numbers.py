"""Family "protocol numbers": the protocol's number literals (a ULN, a molar mass, a
threshold, a default, a `set`) replaced by huge, tiny, long, zero or many-digit numbers.
Right: a number of more than 40 characters or a ULN/molar mass of 0 refused (E104) at the
literal; anything accepted simulates and draws."""

from __future__ import annotations

import pytest

from fuzzkit import PROTOCOL, TIMELINE, Case, Family, pick, slow_seed

SPOTS = ["uln 40", "uln 110", "molar_mass 113.12", "x > 2", "x <= 1", "default 70", "default 0", "repeats + 1"]


def number(rng) -> str:
    kind = rng.randrange(8)
    if kind == 0:
        return "9" * rng.choice([39, 40, 41, 400])
    if kind == 1:
        return "0." + "0" * rng.randint(0, 45) + "1"
    if kind == 2:
        return "0" * rng.randint(1, 3) + ("." + "0" * rng.randint(1, 3) if rng.random() < 0.5 else "")
    if kind == 3:
        return str(rng.randint(0, 10**rng.randint(1, 20)))
    if kind == 4:
        return f"{rng.randint(1, 999)}.{rng.randint(0, 10**rng.randint(1, 30))}"
    if kind == 5:
        return pick(rng, ["1e3", "1E-3", "-1", "+1", ".5", "5.", "1_000", "0x10", "1/3", "∞", "NaN"])
    if kind == 6:
        return "1" + "0" * rng.randint(30, 39)
    return str(rng.random())


def generate(rng, i: int) -> Case:
    spot = pick(rng, SPOTS)
    word = spot.rsplit(" ", 1)[0]
    text = number(rng)
    source = PROTOCOL.replace(spot, f"{word} {text}", 1)
    files = {"p.rxw": source, "t.yaml": TIMELINE}
    if i % 3 == 0:
        return Case("protocol numbers", f"number {i}", files, ["check", "p.rxw"])
    if i % 3 == 1:
        return Case("protocol numbers", f"number {i}", files, ["simulate", "p.rxw", "t.yaml", "-f", "table"])
    return Case("protocol numbers", f"number {i}", files, ["render", "p.rxw", "-o", "o.svg"], outputs=("o.svg",))


FAMILY = Family("protocol numbers", generate, count=200)


def test_sample(tmp_path):
    FAMILY.assert_clean(tmp_path, seed=1, n=FAMILY.sample)


@pytest.mark.slow
def test_budget(tmp_path):
    FAMILY.assert_clean(tmp_path, seed=slow_seed(), n=FAMILY.count)
