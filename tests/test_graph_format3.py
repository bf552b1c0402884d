"""Format 3 changes nothing of a flat protocol's graph: only keys are added (docs/graph.md).

`tests/data/format2/flat12.json` is what the compiler wrote for `flat12.rxw` (a protocol of 12
states from bench/genproto.py, every construct of the v2 language) just before the
statecharts, in format 2. Today's graph of the same text must be that graph plus the format-3
keys, and the format-2 file must read as the flat statechart it stands for.
"""

from __future__ import annotations

import json
from pathlib import Path

from rxwatch.compiler import compile_source, graphio

DATA = Path(__file__).parent / "data" / "format2"
PATH = "tests/data/format2/flat12.rxw"  # as the spans of the format-2 file name it


def strip(v, keys):
    """`v` without `keys`, at any depth."""
    if isinstance(v, dict):
        return {k: strip(x, keys) for k, x in v.items() if k not in keys}
    if isinstance(v, list):
        return [strip(x, keys) for x in v]
    return v


def today() -> dict:
    r = compile_source((DATA / "flat12.rxw").read_text(encoding="utf-8"), PATH)
    assert r.ok, [str(d) for d in r.diagnostics if d.is_error]
    data = json.loads(graphio.to_json(r.graph))
    data["graph"]["path"] = "flat12.rxw"
    return data


def test_a_flat_protocol_compiles_to_its_format_2_graph_plus_the_format_3_keys():
    before = json.loads((DATA / "flat12.json").read_text(encoding="utf-8"))
    now = today()
    assert before["graph"]["format"] == "rxwatch-graph/2" and now["graph"]["format"] == "rxwatch-graph/3"
    added = set(graphio.V3_ONLY) | {"format"}
    assert strip(now, added) == strip(before, added)
    # and the added keys say "flat": one region of atomic states, no blocks, drugs or choices
    assert all((n["type"], n["parent"], n["track"], n["depth"]) == ("atomic", None, None, 0) for n in now["nodes"])
    assert all(e["rule"] == e["key"] and e["block"] is None and e["alternative"] is None for e in now["edges"])
    assert (now["graph"]["blocks"], now["graph"]["drugs"], now["graph"]["schedule_tolerance"]) == ({}, {}, None)


def test_the_format_2_file_reads_as_the_graph_of_today_but_for_locators():
    old = graphio.from_json((DATA / "flat12.json").read_text(encoding="utf-8"), "flat12.json")
    new = graphio.from_json(json.dumps(today()), "today.json")
    assert old.graph["format"] == "rxwatch-graph/2"
    # format 2 had no citations: they read as the sources without locators, which for a rule or
    # a let also holds the sources of the lets it uses (today's citations are those written)
    keys = {"citations", "format"}
    assert strip(dict(old.graph), keys) == strip(dict(new.graph), keys)
    assert [strip(old.nodes[n], keys) for n in old] == [strip(new.nodes[n], keys) for n in new]
    assert [(u, v, k, strip(e, keys)) for u, v, k, e in old.edges(keys=True, data=True)] == \
        [(u, v, k, strip(e, keys)) for u, v, k, e in new.edges(keys=True, data=True)]
    for _, _, e in old.edges(data=True):
        assert e["citations"] == [{"source": s, "locator": None} for s in e["sources"]]
