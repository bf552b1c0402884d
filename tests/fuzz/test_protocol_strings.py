"""Family "protocol strings": every string field of a protocol (title, version, description,
note, a lab's or state's description, a unit) given terminal text: escape sequences, control
characters, bidirectional overrides, Rich markup, long and non-ASCII text. Right: a string with
a control character refused (E110, at the character); any other string accepted and drawn
(.dot, .svg), the diagnostics and the chart showing it as text."""

from __future__ import annotations

import pytest

from fuzzkit import PROTOCOL, TERMINAL, UNSAFE, Case, Family, pick, slow_seed

FIELDS = ['title "A protocol to attack"', 'version "1.0"', 'note "a note"', '"alanine aminotransferase"',
          'description "Monitoring of one lab, with the features the inputs reach."', '"treatment ended"',
          'state high "raised"', '"order ALT"', 'source s "A source"']
OTHER = ["ünïcödé", "漢字", "🙂" * 30, "x" * 5000, "a b " * 2000, "\t", "\\n", '\\"', "\\\\", "%s%n", "{0}", "\\x1b",
         "w" * 300]


def payload(rng) -> str:
    parts = [pick(rng, TERMINAL) if rng.random() < 0.6 else pick(rng, OTHER) for _ in range(rng.randint(1, 3))]
    return "".join(parts).replace('"', "'")


def generate(rng, i: int) -> Case:
    field = pick(rng, FIELDS)
    text = payload(rng)
    head, _, rest = field.rpartition('"')[0].rpartition('"')
    hostile = field.replace(f'"{rest}"', f'"{rest[: rng.randrange(len(rest) + 1)]}{text}"') if rest else field
    source = PROTOCOL.replace(field, hostile, 1)
    must = "refuse" if UNSAFE.search(text.replace("\t", "")) else "accept"
    fmt = pick(rng, ["dot", "svg"])
    if must == "refuse" or i % 2 == 0:
        return Case("protocol strings", f"string {i}", {"p.rxw": source}, ["check", "p.rxw"], must=must)
    return Case("protocol strings", f"string {i}", {"p.rxw": source}, ["render", "p.rxw", "-o", f"o.{fmt}"],
                must=must, outputs=(f"o.{fmt}",))


FAMILY = Family("protocol strings", generate, count=200)


def test_sample(tmp_path):
    FAMILY.assert_clean(tmp_path, seed=1, n=FAMILY.sample)


@pytest.mark.slow
def test_budget(tmp_path):
    FAMILY.assert_clean(tmp_path, seed=slow_seed(), n=FAMILY.count)
