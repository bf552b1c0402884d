"""Family "traces": traces given to `rxwatch render --trace`, valid JSON but hostile: 10,000-deep
nesting, 5,000-digit integers, NaN, lone surrogates, steps of the wrong shape (`options` not a
list, a window of three dates, a date past 9999-12-31), names the protocol does not have,
terminal text and markup in every text. Right: refused (E920, the trace's field named) before
anything is drawn, or drawn with every text escaped."""

from __future__ import annotations

import json
import random

import pytest

from fuzzkit import INJECTION, TERMINAL, Case, Family, PROTOCOL, no_script, pick, slow_seed, trace_of

_TRACE: dict | None = None

VALUES = [None, 1, -1, 1.5, True, "", "x", "watch", "nowhere", "check", [], {}, ["a", 1], ["2025-01-06"] * 3,
          "9999-12-31", "10000-01-01", "2025-02-30", {"a": [1]}, "x" * 10000]


def hostile(rng: random.Random) -> str | None:
    k = rng.randrange(6)
    if k == 0:
        n = pick(rng, [31, 32, 33, 1000, 10000])
        return '{"steps": ' + "[" * n + "]" * n + "}"
    if k == 1:
        return None  # the trace with a huge integer spliced in below
    if k == 2:
        return '{"protocol": {"name": "fuzzed"}, "steps": [], "patient": "\\ud800"}'
    if k == 3:
        return '{"protocol": {"name": "fuzzed"}, "steps": [{"date": "2025-01-06", "type": "enter", "state": "watch", "line": NaN}]}'
    return ""


def generate(rng, i: int) -> Case:
    global _TRACE
    if _TRACE is None:
        _TRACE = trace_of()
    trace = json.loads(json.dumps(_TRACE))
    text = hostile(rng) if rng.random() < 0.3 else ""
    if text is None:
        text = json.dumps(trace).replace('"line": 22', '"line": ' + "9" * pick(rng, [40, 41, 4300, 5000]), 1)
    elif not text:
        for _ in range(rng.randint(1, 3)):
            step = pick(rng, trace["steps"])
            key = pick(rng, sorted(step) + ["options", "window", "missing", "replaced"])
            step[key] = pick(rng, VALUES + [pick(rng, TERMINAL), pick(rng, INJECTION)])
        if rng.random() < 0.3:
            trace[pick(rng, ["patient", "start", "until", "final_state", "open_orders", "warnings"])] = pick(rng, VALUES)
        text = json.dumps(trace)
    fmt = pick(rng, ["svg", "html", "dot"])

    def check(o) -> str:
        return "" if fmt == "dot" else no_script((o.folder / f"o.{fmt}").read_text(encoding="utf-8"), fmt == "html")

    return Case("traces", f"trace {i}", {"p.rxw": PROTOCOL, "trace.json": text},
                ["render", "p.rxw", "--trace", "trace.json", "-o", f"o.{fmt}"], outputs=(f"o.{fmt}",), check=check)


FAMILY = Family("traces", generate, count=150)


def test_sample(tmp_path):
    FAMILY.assert_clean(tmp_path, seed=1, n=FAMILY.sample)


@pytest.mark.slow
def test_budget(tmp_path):
    FAMILY.assert_clean(tmp_path, seed=slow_seed(), n=FAMILY.count)
