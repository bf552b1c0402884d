"""The trace (shared/contracts/trace.md) as byte-stable JSON text.

`to_json(trace)` writes the keys of the trace and of each step in one fixed order (the
contract's keys first, in the order the contract lists them, then any extension keys sorted
by name) with a two-space indent and a final newline, so identical inputs give identical
bytes whoever built the dict. Steps keep their order: it is the order things happened.
"""

from __future__ import annotations

from json.encoder import encode_basestring as _encode_str  # the C function when there is one
from typing import Any, Mapping

__all__ = ["STEP_TYPES", "TOP_KEYS", "STEP_KEYS", "canonical", "to_json", "to_json_chunks"]

STEP_TYPES = ("enter", "transition", "action", "deviation", "unassessable", "set")

TOP_KEYS = ("protocol", "patient", "start", "until", "steps", "final_state", "open_orders", "warnings",
            "final_states", "drugs")

STEP_KEYS = {
    "enter": ("date", "type", "state", "line", "withdrawn", "track"),
    "transition": ("date", "type", "from", "to", "trigger", "because", "sources", "rule", "line", "stay", "event", "fact",
                   "track", "alternative", "preempted", "values", "citations", "withdrawn", "drug"),
    "action": ("date", "type", "action", "state", "options", "window", "sources", "line", "track", "drug", "repeat",
               "citations", "preferred"),
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


def to_json_chunks(trace: Mapping[str, Any]):
    """`to_json(trace)` in pieces (a top-level key, a step), byte for byte the same text, made
    as they are written: a trace of millions of steps is never held as one string nor copied
    whole.

    The text is `json.dumps(canonical(trace), indent=2, ensure_ascii=False, allow_nan=False)`
    and a newline, byte for byte, and the same errors for what JSON cannot hold (a NaN, an
    object that is not a JSON value); it is made here rather than by the json module because
    with an indent the json module's encoder is its pure-Python one, a generator per container
    and a piece per token (300,000 pieces for a 5,000-panel trace; five times slower)."""
    out = _ordered(trace, TOP_KEYS)
    if isinstance(out.get("protocol"), Mapping):
        out["protocol"] = _ordered(out["protocol"], ("name", "version"))
    out["steps"] = trace.get("steps", ())
    if "open_orders" in out:
        out["open_orders"] = [_ordered(o, ORDER_KEYS) for o in out["open_orders"]]
    if "warnings" in out:
        out["warnings"] = [_ordered(w, WARNING_KEYS) for w in out["warnings"]]
    sep = "{\n  "
    for key, value in out.items():
        head = sep + _key(key) + ": "
        sep = ",\n  "
        if key == "steps" and value:
            yield head + "["
            item = "\n    "
            for s in value:
                yield item + _step(s)
                item = ",\n    "
            yield "\n  ]"
        else:
            yield head + _value(value, 1)
    yield "\n}\n"


# ---------------------------------------------------------------------------- the JSON text
# json.JSONEncoder(indent=2, ensure_ascii=False, allow_nan=False)'s rules: the same checks in
# the same order (a str first, then None, True, False, int, float, list or tuple, dict), the
# same text for each, the same exceptions and messages.

_STEP_ITEM = "\n      "  # a step's keys: the steps list is at level 1, a step at level 2
_STEP_HEADS = {t: {k: _STEP_ITEM + _encode_str(k) + ": " for k in keys} for t, keys in STEP_KEYS.items()}
_INDENTS = ["\n" + "  " * n for n in range(16)]


def _step(s: Any) -> str:
    """One step, in canonical key order, as the text of a dict at level 2."""
    if not s or type(s) is not dict and not isinstance(s, Mapping):
        return _value(s, 2)
    t = s.get("type")
    keys = STEP_KEYS.get(t, _OTHER)
    heads = _STEP_HEADS.get(t)
    parts = []
    seen = 0
    for k in keys:
        if k in s:
            v = s[k]
            seen += 1
            head = heads[k] if heads is not None else _STEP_ITEM + _encode_str(k) + ": "
            if type(v) is str:
                parts.append(head + _encode_str(v))
            else:
                parts.append(head + _value(v, 3))
    if seen != len(s):
        for k in sorted(k for k in s if k not in keys):
            parts.append(_STEP_ITEM + _key(k) + ": " + _value(s[k], 3))
    return "{" + ",".join(parts) + "\n    }"


def _value(o: Any, level: int) -> str:
    """The text of `o` as an item at `level` (its own items at level + 1)."""
    t = type(o)
    if t is str:
        return _encode_str(o)
    if t is int:
        return int.__repr__(o)
    if t is list or t is dict:  # the checks below, in their order, for the other types
        if not o:
            return "[]" if t is list else "{}"
        inner = _INDENTS[level + 1] if level + 1 < len(_INDENTS) else "\n" + "  " * (level + 1)
        if t is list:
            return "[" + inner + ("," + inner).join([_value(v, level + 1) for v in o]) + inner[:-2] + "]"
        return ("{" + inner + ("," + inner).join([_key(k) + ": " + _value(v, level + 1) for k, v in o.items()])
                + inner[:-2] + "}")
    if isinstance(o, str):
        return _encode_str(o)
    if o is None:
        return "null"
    if o is True:
        return "true"
    if o is False:
        return "false"
    if isinstance(o, int):
        return int.__repr__(o)
    if isinstance(o, float):
        return _float(o)
    if isinstance(o, (list, tuple)):  # a tuple or a list's subclass: written as the list it holds
        return _value(list(o), level)
    if isinstance(o, dict):  # a dict's subclass: its items, as the json module takes them
        return _value(dict(o.items()), level)
    raise TypeError(f"Object of type {o.__class__.__name__} is not JSON serializable")


def _key(k: Any) -> str:
    if isinstance(k, str):
        return _encode_str(k)
    if isinstance(k, float):
        return _encode_str(_float(k))
    if k is True:
        return '"true"'
    if k is False:
        return '"false"'
    if k is None:
        return '"null"'
    if isinstance(k, int):
        return _encode_str(int.__repr__(k))
    raise TypeError(f"keys must be str, int, float, bool or None, not {k.__class__.__name__}")


def _float(o: float) -> str:
    if o - o != 0:  # inf - inf and nan - nan are nan
        raise ValueError("Out of range float values are not JSON compliant: " + repr(o))
    return float.__repr__(o)
