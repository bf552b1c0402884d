"""Family "graph files": a compiled graph file (`rxwatch compile -o g.json`) edited at random:
a value replaced by another type, a huge number, a control character, a lone surrogate, a key
removed or repeated, the nesting deepened; given to `simulate`, `render` and `check`. Right:
refused (E91x, located) or, when the edit is harmless, run correctly."""

from __future__ import annotations

import json

import pytest

from fuzzkit import TIMELINE, Case, Family, compiled_graph, pick, slow_seed

VALUES = [None, True, 0, -1, 1.5, 10**50, "", "x", "\x1b[2J", "\ud800", [], {}, [1, 2], {"op": "exec"}, "1e999",
          "a" * 300, "watch", "ALT", float("1e308")]


def _paths(data, where=()):
    yield where
    if isinstance(data, dict):
        for k, v in data.items():
            yield from _paths(v, where + (k,))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            yield from _paths(v, where + (i,))


def _set(data, where, value):
    for part in where[:-1]:
        data = data[part]
    if isinstance(data, dict) and value is _DROP:
        del data[where[-1]]
    elif value is not _DROP:
        data[where[-1]] = value


_DROP = object()


def generate(rng, i: int) -> Case:
    data = json.loads(compiled_graph())
    paths = [p for p in _paths(data) if p]
    for _ in range(rng.randint(1, 3)):
        where = pick(rng, paths)
        try:
            _set(data, where, pick(rng, VALUES + [_DROP]))
        except (KeyError, IndexError, TypeError):
            pass  # an earlier edit removed the path
    text = json.dumps(data, indent=1)
    if i % 7 == 0:
        text = text.replace("{", "[" * 300 + "{", 1)
    files = {"g.json": text.encode("utf-8", "surrogatepass") if "\ud800" in text else text, "t.yaml": TIMELINE}
    command = i % 3
    if command == 0:
        argv, outputs = ["simulate", "g.json", "t.yaml", "-f", pick(rng, ["table", "json"])], ()
    elif command == 1:
        argv, outputs = ["render", "g.json", "-o", "o.svg"], ("o.svg",)
    else:
        argv, outputs = ["check", "g.json"], ()
    return Case("graph files", f"graph edit {i}", files, argv, outputs=outputs)


FAMILY = Family("graph files", generate, count=200)


def test_sample(tmp_path):
    FAMILY.assert_clean(tmp_path, seed=1, n=FAMILY.sample)


@pytest.mark.slow
def test_budget(tmp_path):
    FAMILY.assert_clean(tmp_path, seed=slow_seed(), n=FAMILY.count)
