"""Family "file names": input files named with bytes UTF-8 does not decode (Python hands them in
as lone surrogates, `\\udcff`), with escape sequences, newlines, Rich markup, spaces, leading
dashes, very long names; a diagnostic or `rxwatch:` line names them. Right: the name printed
with its undecodable bytes and control characters as escapes, never an encoding error."""

from __future__ import annotations

import os

import pytest

from fuzzkit import PROTOCOL, TIMELINE, Case, Family, pick, slow_seed

STEMS = [os.fsdecode(b"\xff\xfe"), os.fsdecode(b"caf\xe9"), "a\x1b[2Jb", "a\nb", "[red]x[/red]", "[/]", " sp ace ",
         "-dash", "é", "x" * 200, "\u202eevil", "a\rb"]


def generate(rng, i: int) -> Case:
    stem = pick(rng, STEMS)
    which = i % 3
    broken = rng.random() < 0.5
    if which == 0:
        name = stem + ".rxw"
        text = PROTOCOL.replace("x > 2", "x > > 2") if broken else PROTOCOL
        return Case("file names", f"protocol name {i}", {name: text}, ["check", "--", name] if stem.startswith("-") else ["check", name])
    if which == 1:
        name = stem + ".yaml"
        text = TIMELINE.replace("lab: ALT", "lab: ALTT", 1) if broken else TIMELINE
        argv = ["simulate", "p.rxw", name, "-f", "json"]
        return Case("file names", f"timeline name {i}", {"p.rxw": PROTOCOL, name: text}, argv)
    name = stem + ".rxw"
    return Case("file names", f"missing {i}", {"p.rxw": PROTOCOL}, ["simulate", "p.rxw", name])


FAMILY = Family("file names", generate, count=60)


def test_sample(tmp_path):
    FAMILY.assert_clean(tmp_path, seed=1, n=FAMILY.sample)


@pytest.mark.slow
def test_budget(tmp_path):
    FAMILY.assert_clean(tmp_path, seed=slow_seed(), n=FAMILY.count)
