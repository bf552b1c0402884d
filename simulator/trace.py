"""The trace (shared/contracts/trace.md) as byte-stable JSON text.

`to_json(trace)` writes the keys of the trace and of each step in one fixed order (the
contract's keys first, in the order the contract lists them, then any extension keys sorted
by name) with a two-space indent and a final newline, so identical inputs give identical
bytes whoever built the dict. Steps keep their order: it is the order things happened.
"""

from __future__ import annotations

import json
from typing import Any, Mapping

__all__ = ["STEP_TYPES", "TOP_KEYS", "STEP_KEYS", "canonical", "to_json", "to_json_chunks"]

STEP_TYPES = ("enter", "transition", "action", "deviation", "unassessable", "set")

TOP_KEYS = ("protocol", "patient", "start", "until", "steps", "final_state", "open_orders", "warnings",
            "final_states", "drugs")

STEP_KEYS = {
    "enter": ("date", "type", "state", "line", "withdrawn", "track"),
    "transition": ("date", "type", "from", "to", "trigger", "because", "sources", "rule", "line", "stay", "event", "fact",
                   "track", "alternative", "preempted", "values", "citations", "withdrawn"),
    "action": ("date", "type", "action", "state", "options", "window", "sources", "line", "track", "drug", "repeat",
               "citations"),
    "deviation": ("date", "type", "kind", "action", "window", "ordered", "line", "missing", "track"),
    "unassessable": ("date", "type", "trigger", "missing", "state", "rule", "line", "event", "fact", "replaced",
                     "track", "values"),
    "set": ("date", "type", "var", "value", "state", "line", "track"),
}
"""The keys of each step type, in the order written: the contract's, then the extensions."""
_OTHER = ("date", "type")

ORDER_KEYS = ("action", "window", "ordered", "overdue", "line", "track")
WARNING_KEYS = ("date", "line", "message")


def _ordered(d: Mapping[str, Any], keys: tuple[str, ...]) -> dict:
    out = {k: d[k] for k in keys if k in d}
    for k in sorted(k for k in d if k not in out):
        out[k] = d[k]
    return out


def canonical(trace: Mapping[str, Any]) -> dict:
    """A copy of `trace` with every key in its canonical place."""
    out = _ordered(trace, TOP_KEYS)
    if isinstance(out.get("protocol"), Mapping):
        out["protocol"] = _ordered(out["protocol"], ("name", "version"))
    out["steps"] = [
        _ordered(s, STEP_KEYS.get(s.get("type"), _OTHER)) for s in trace.get("steps", ())
    ]
    if "open_orders" in out:
        out["open_orders"] = [_ordered(o, ORDER_KEYS) for o in out["open_orders"]]
    if "warnings" in out:
        out["warnings"] = [_ordered(w, WARNING_KEYS) for w in out["warnings"]]
    return out


def to_json(trace: Mapping[str, Any]) -> str:
    """The trace as JSON text: fixed key order, two-space indent, UTF-8 safe, final newline."""
    return "".join(to_json_chunks(trace))


class _Steps(list):
    """The steps in canonical order, made one at a time as the encoder reads them (a long
    trace is never copied whole). A list to the JSON encoder: it has the steps' length."""

    def __init__(self, steps) -> None:
        super().__init__()
        self.steps = steps

    def __len__(self) -> int:
        return len(self.steps)

    def __bool__(self) -> bool:
        return bool(self.steps)

    def __iter__(self):
        for s in self.steps:
            yield _ordered(s, STEP_KEYS.get(s.get("type"), _OTHER))


def to_json_chunks(trace: Mapping[str, Any]):
    """`to_json(trace)` in pieces, byte for byte the same text, made as they are written: a
    trace of millions of steps is never held as one string nor copied whole."""
    out = _ordered(trace, TOP_KEYS)
    if isinstance(out.get("protocol"), Mapping):
        out["protocol"] = _ordered(out["protocol"], ("name", "version"))
    out["steps"] = _Steps(trace.get("steps", ()))
    if "open_orders" in out:
        out["open_orders"] = [_ordered(o, ORDER_KEYS) for o in out["open_orders"]]
    if "warnings" in out:
        out["warnings"] = [_ordered(w, WARNING_KEYS) for w in out["warnings"]]
    # with an indent, json's encoder is the pure-Python one, which iterates a list as it writes
    encoder = json.JSONEncoder(indent=2, ensure_ascii=False, allow_nan=False)
    yield from encoder.iterencode(out)
    yield "\n"
