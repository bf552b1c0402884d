"""The trace's JSON writer (simulator/trace.py) is byte for byte the json module's indented text
of the canonical trace, with the same errors, for any value a trace may hold."""

from __future__ import annotations

import json
import math
from collections import OrderedDict

import pytest

from rxwatch.simulator.trace import canonical, to_json, to_json_chunks


def reference(trace) -> str:
    return json.dumps(canonical(trace), indent=2, ensure_ascii=False, allow_nan=False) + "\n"


DEEP: dict = {"q": [1]}
for _ in range(20):  # deeper than the writer's table of indents
    DEEP = {"d": DEEP, "l": [[], [1]]}


TRACES = [
    {},
    {"steps": []},
    {"steps": [{}]},
    {"protocol": {"version": "1", "name": "p"}, "patient": "p-1", "start": "2025-01-06", "until": "2025-02-01",
     "steps": [{"line": 3, "state": "baseline", "type": "enter", "date": "2025-01-06"},
               {"type": "action", "date": "2025-01-06", "action": "order_lfts", "window": ["2025-01-06", "2025-01-20"],
                "citations": [{"source": "s", "locator": None}], "zeta": {"b": 1, "a": [True, False, None]}},
               {"type": "unassessable", "date": "2025-01-07", "missing": ["ALT", "AST"], "values": {"ALT": 1.5, "x": -0.0}},
               {"type": "no-such-type", "z": 1, "date": "d", "a": ()},
               {"type": "set", "var": "n", "value": 10 ** 30, "state": "s"}],
     "final_state": "baseline", "open_orders": [{"track": "t", "action": "a", "window": ["x", "y"]}],
     "warnings": [{"message": "m", "line": 0, "date": None}], "final_states": ["a", "b"], "drugs": {}},
    {"steps": [{"type": "enter", "date": "é ☃ \u2028 \" \\ \n \t \x01 \ud800", "state": OrderedDict(b=1, a=2)}]},
    {"steps": [{"type": "transition", 2: "one", 1: "two"}, {"type": "set", "values": {3: 4, None: 5, False: 1, 2.5: 0}}]},
    {"extension": DEEP, "steps": [{"type": "set", "value": DEEP}]},
    {"steps": [{"type": "set", "value": 1e300, "var": 1.0000000000000002}], "until": 0.1},
]


@pytest.mark.parametrize("trace", TRACES)
def test_the_text_is_the_json_modules(trace):
    whole = to_json(trace)
    assert whole == reference(trace)
    assert "".join(to_json_chunks(trace)) == whole
    json.loads(whole)


def test_a_long_trace_is_written_a_piece_per_step():
    steps = [{"type": "enter", "date": f"2025-01-{1 + i % 28:02d}", "state": "s", "line": i} for i in range(1000)]
    pieces = list(to_json_chunks({"patient": "p", "steps": steps}))
    assert len(pieces) >= 1000 and "".join(pieces) == reference({"patient": "p", "steps": steps})


@pytest.mark.parametrize("bad", [
    {"steps": [{"type": "set", "value": math.nan}]},
    {"steps": [{"type": "set", "value": [1, -math.inf]}]},
    {"until": math.inf},
    {"steps": [{"type": "set", "value": object()}]},
    {"steps": [{"type": "set", "value": {1, 2}}]},
    {"steps": [{"type": "set", "value": {(1, 2): 3}}]},
    {"steps": [{"type": "set", (1, 2): 3}]},
])
def test_what_json_cannot_hold_fails_as_in_the_json_module(bad):
    with pytest.raises((ValueError, TypeError)) as expected:
        reference(bad)
    with pytest.raises(type(expected.value)) as got:
        to_json(bad)
    assert str(got.value) == str(expected.value)
