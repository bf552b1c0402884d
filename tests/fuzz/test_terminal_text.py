"""Family "terminal text": escape sequences, control characters, bidirectional overrides and
Rich markup (`[/]`, `[red]`, `[link=...]`) in a patient id, an event's or unit's text, a
protocol's version and texts, a source line under a diagnostic, a file name; printed as the
table of `simulate`, as diagnostics, as `rxwatch:` lines. Right: the text shown as it is in the
file (markup not interpreted, control characters as escapes such as `\\x1b`), nothing raw
reaching the terminal (the harness checks every byte of both streams)."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzzkit import PROTOCOL, TERMINAL, UNSAFE, Case, Family, pick, run, shows, slow_seed


def _yaml(text: str) -> str:
    """`text` as a YAML double-quoted scalar (escapes for the control characters)."""
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif UNSAFE.search(ch) or ch in "\t\n" or not ch.isprintable():
            n = ord(ch)
            out.append(f"\\U{n:08x}" if n > 0xffff else f"\\u{n:04x}" if n > 0xff else f"\\x{n:02x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def generate(rng, i: int) -> Case:
    text = "".join(pick(rng, TERMINAL) for _ in range(rng.randint(1, 3)))
    where = i % 4
    if where == 0:  # the patient id: the table's title
        timeline = (f"patient: {{id: {_yaml('MRN' + text)}}}\nstart: 2025-01-06\nevents:\n"
                    "  - {date: 2025-01-06, lab: ALT, value: 32}\n")
        files = {"p.rxw": PROTOCOL, "t.yaml": timeline}

        def check(o, ident="MRN" + text) -> str:
            return shows(ident, o.out)

        return Case("terminal text", f"patient id {i}", files, ["simulate", "p.rxw", "t.yaml", "-f", "table"],
                    must="accept", check=check)
    if where == 1:  # a raw line of a timeline under a diagnostic
        raw = text.replace("\n", "").replace("\r", "")
        timeline = f"patient: {{id: p}}\nstart: 2025-01-06\nevents:\n  - {{date: 2025-01-06, lab: ALTT, value: 32}} # {raw}\n"
        return Case("terminal text", f"source line {i}", {"p.rxw": PROTOCOL, "t.yaml": timeline},
                    ["simulate", "p.rxw", "t.yaml"], must="refuse")
    if where == 2:  # markup (no control characters: the protocol would refuse them) in the version
        markup = pick(rng, ["[/]", "[red]v[/red]", "[link=http://x]v[/link]", "[mrn]", "[bold", "v[/]x"])
        files = {"p.rxw": PROTOCOL.replace('version "1.0"', f'version "{markup}"'),
                 "t.yaml": "patient: {id: p}\nstart: 2025-01-06\nevents: []\n"}

        def check(o, markup=markup) -> str:
            return shows(markup, o.out)

        return Case("terminal text", f"version {i}", files, ["simulate", "p.rxw", "t.yaml", "-f", "table"],
                    must="accept", check=check)
    # a CSV cell (an unknown lab) shown in a message and its source line
    cell = text.replace("\n", "").replace("\r", "").replace(",", "").replace('"', "")
    files = {"p.rxw": PROTOCOL, "l.csv": f"date,lab,value\n2025-01-06,{cell or 'x'},32\n"}
    return Case("terminal text", f"csv cell {i}", files, ["simulate", "p.rxw", "l.csv", "-f", "table"])


FAMILY = Family("terminal text", generate, count=150)


def test_sample(tmp_path):
    FAMILY.assert_clean(tmp_path, seed=1, n=FAMILY.sample)


@pytest.mark.slow
def test_budget(tmp_path):
    FAMILY.assert_clean(tmp_path, seed=slow_seed(), n=FAMILY.count)


@settings(max_examples=int(os.environ.get("RXWATCH_HYPOTHESIS_EXAMPLES", 10)), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ident=st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12).filter(str.strip))
def test_hypothesis_any_patient_id_is_shown_as_written(tmp_path_factory, ident):
    """Any text as a patient id: the table shows it as written (escapes for control characters)."""
    timeline = f"patient: {{id: {_yaml(ident)}}}\nstart: 2025-01-06\nevents: []\n"
    case = Case("terminal text", "hypothesis", {"p.rxw": PROTOCOL, "t.yaml": timeline},
                ["simulate", "p.rxw", "t.yaml", "-f", "table"])
    kind, reason, o = run(case, tmp_path_factory.mktemp("t"))
    assert kind != "failure", f"{ident!r}: {reason}"
    if kind == "accepted":
        assert not shows(ident, o.out), f"{ident!r} not shown: {o.out[:300]}"
