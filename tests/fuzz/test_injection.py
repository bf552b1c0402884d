"""Family "injection": script-injection payloads (38) in the protocol's texts and in a
trace's patient id, drawn as .svg and .html (the viewer). Right: the chart holds no script but
the viewer's own two, no event-handler attribute, no javascript: link; the payload is text."""

from __future__ import annotations

import json

import pytest

from fuzzkit import INJECTION, PROTOCOL, Case, Family, no_script, pick, slow_seed, trace_of

FIELDS = ['title "A protocol to attack"', 'version "1.0"', 'note "a note"', '"alanine aminotransferase"',
          '"treatment ended"', '"raised"', '"order ALT"', '"A source"', '"watching"', '"ended"']


def _quoted(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def generate(rng, i: int) -> Case:
    payload = INJECTION[i % len(INJECTION)] if i < len(INJECTION) else pick(rng, INJECTION) + pick(rng, INJECTION)
    field = pick(rng, FIELDS)
    head, quote, _ = field.partition('"')
    source = PROTOCOL.replace(field, f'{head}"{_quoted(payload)}"', 1)
    fmt = "html" if i % 2 else "svg"
    files = {"p.rxw": source}
    argv = ["render", "p.rxw", "-o", f"o.{fmt}"]
    if i % 3 == 0:
        trace = trace_of()
        trace["patient"] = payload
        trace["protocol"].pop("version")  # the version may be the payload: the trace need not name it
        files["trace.json"] = json.dumps(trace)
        argv += ["--trace", "trace.json"]

    def check(o) -> str:
        text = (o.folder / f"o.{fmt}").read_text(encoding="utf-8")
        return no_script(text, fmt == "html")

    return Case("injection", f"payload {i}", files, argv, must="accept", outputs=(f"o.{fmt}",), check=check)


FAMILY = Family("injection", generate, count=100, sample=8)


def test_sample(tmp_path):
    FAMILY.assert_clean(tmp_path, seed=1, n=FAMILY.sample)


@pytest.mark.slow
def test_budget(tmp_path):
    FAMILY.assert_clean(tmp_path, seed=slow_seed(), n=FAMILY.count)
