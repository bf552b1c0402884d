"""Compiled graph files as input (docs/graph.md, "Reading a graph file"): `rxwatch simulate`,
`render`, `test` and `check` take a graph JSON from `rxwatch compile` in place of a protocol,
and validate it whole before anything is built from it. A hostile graph (bad names, unknown
ops, a rule id with a newline and Python code in it) is rejected with exit 1, every fault
located by its JSON path and its line, and never executed."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from rxwatch.cli.main import main
from rxwatch.compiler import compile_source, graphio
from rxwatch.compiler.lower import FORMAT

SMALL = textwrap.dedent("""\
    protocol small
      version "1.0"
    source s "A source" kind label
    lab ALT "alanine aminotransferase" unit "U/L" uln 40
    event stop "treatment ended"
    action check "order ALT" orders ALT
    action treat "treat"
    action pause "pause"
    let x "ALT in multiples of ULN" = xuln(ALT)

    initial state watch "watching" {
      on entry { do check due 1..2 weeks cite s }
      on panel {
        when known(ALT) and x > 2 -> high cite s
        otherwise stay cite s { do check due 1..2 weeks cite s }
      }
      on event stop { otherwise -> done cite s }
    }

    state high "raised" {
      on entry {
        do one of treat, pause cite s
        do check due 1..2 weeks cite s
      }
      on panel {
        when known(ALT) and x <= 1 -> watch cite s
        otherwise stay cite s
      }
      on event stop { otherwise -> done cite s }
    }

    terminal state done "ended"
""")

TIMELINE = textwrap.dedent("""\
    patient: {id: p1}
    start: 2025-01-06
    until: 2025-03-31
    events:
      - {date: 2025-01-10, lab: ALT, value: 30}
      - {date: 2025-02-03, lab: ALT, value: 100}
      - {date: 2025-02-03, choice: pause}
      - {date: 2025-02-12, lab: ALT, value: 40}
""")

CASE = TIMELINE + textwrap.dedent("""\
    expect:
      - on 2025-02-03 transition watch -> high
      - on 2025-02-03 action pause
      - final state watch
""")


def run(capsys, *argv) -> tuple[int, str, str]:
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def write(folder: Path, name: str, text: str) -> Path:
    p = folder / name
    p.write_text(text, encoding="utf-8")
    return p


def graph_data(text: str = SMALL, verify: bool = True) -> dict:
    result = compile_source(text, "small.rxw", verify=verify)
    assert result.ok, [str(d) for d in result.diagnostics if d.is_error]
    return json.loads(graphio.to_json(result.graph))


def write_graph(folder: Path, data: dict, name: str = "graph.json", indent: int | None = 1) -> Path:
    text = json.dumps(data, indent=indent) if indent else json.dumps(data, separators=(",", ":"))
    return write(folder, name, text)


def rename_rule(data: dict, old: str, new: str) -> None:
    """Give rule `old` the id `new` everywhere the graph names it (edge key, id, handler list)."""
    for e in data["edges"]:
        if e["key"] == old:
            e["key"] = e["id"] = new
    for n in data["nodes"]:
        for h in n["handlers"]:
            h["rules"] = [new if k == old else k for k in h["rules"]]


# ---------------------------------------------------------------- a compiled graph runs like its protocol


def test_simulate_render_test_and_check_take_a_compiled_graph(capsys, tmp_path):
    proto = write(tmp_path, "small.rxw", SMALL)
    timeline = write(tmp_path, "t.yaml", TIMELINE)
    graph = tmp_path / "small.json"
    assert run(capsys, "compile", proto, "-o", graph)[0] == 0

    status, from_protocol, err = run(capsys, "simulate", proto, timeline, "--format", "json")
    assert status == 0, err
    status, from_graph, err = run(capsys, "simulate", graph, timeline, "--format", "json")
    assert status == 0, err
    assert from_graph == from_protocol
    assert json.loads(from_graph)["final_state"] == "watch"

    status, table, err = run(capsys, "simulate", graph, timeline, "--format", "table")
    assert status == 0 and "final state: watch" in table, err

    assert run(capsys, "render", proto, "-o", tmp_path / "a.dot")[0] == 0
    assert run(capsys, "render", graph, "-o", tmp_path / "b.dot")[0] == 0
    assert (tmp_path / "a.dot").read_text(encoding="utf-8") == (tmp_path / "b.dot").read_text(encoding="utf-8")

    case = write(tmp_path, "case.yaml", CASE)
    status, out, err = run(capsys, "test", graph, case)
    assert status == 0, out + err
    assert out.startswith("PASS")

    status, _, err = run(capsys, "check", graph)
    assert status == 0 and "0 errors" in err


def test_a_graph_is_known_by_its_content_not_its_name(capsys, tmp_path):
    data = graph_data()
    graph = write_graph(tmp_path, data, name="model.txt", indent=None)  # no .json suffix
    timeline = write(tmp_path, "t.yaml", TIMELINE)
    status, out, err = run(capsys, "simulate", graph, timeline, "--format", "json")
    assert status == 0, err
    assert json.loads(out)["final_state"] == "watch"


def test_every_format_stamp_is_read(capsys, tmp_path):
    assert FORMAT == "rxwatch-graph/3"
    assert graphio.FORMATS == ("rxwatch-graph/1", "rxwatch-graph/2", "rxwatch-graph/3")
    timeline = write(tmp_path, "t.yaml", TIMELINE)
    for stamp in ("rxwatch-graph/1", "rxwatch-graph/2"):
        data = graph_data()
        data["graph"]["format"] = stamp
        strip_v3(data)  # a flat graph of an earlier format: no statechart keys
        status, out, err = run(capsys, "simulate", write_graph(tmp_path, data), timeline, "--format", "json")
        assert status == 0, err
        assert json.loads(out)["final_state"] == "watch"


def strip_v3(data: dict) -> None:
    """`data` as format 2 wrote it: without the keys format 3 added."""
    for obj in (data["graph"], *data["nodes"], *data["edges"]):
        for key in graphio.V3_ONLY:
            obj.pop(key, None)


def test_a_format_2_graph_reads_as_a_flat_statechart(tmp_path):
    data = graph_data()
    data["graph"]["format"] = "rxwatch-graph/2"
    strip_v3(data)
    g = graphio.from_json(json.dumps(data))
    fresh = graphio.from_json(json.dumps(graph_data()))
    assert g.graph["blocks"] == fresh.graph["blocks"] == {}
    for n in fresh.nodes:
        assert g.nodes[n] == fresh.nodes[n]
    assert list(g.edges(keys=True, data=True)) == list(fresh.edges(keys=True, data=True))


def test_a_format_3_graph_missing_the_statechart_keys_is_refused():
    data = graph_data()
    del data["nodes"][0]["parent"]
    with pytest.raises(graphio.GraphError) as e:
        graphio.from_json(json.dumps(data))
    assert "nodes[0].parent: missing" in str(e.value)


def test_compile_refuses_a_graph_file(capsys, tmp_path):
    graph = write_graph(tmp_path, graph_data())
    status, out, err = run(capsys, "compile", graph)
    assert status == 1 and out == ""
    assert "a compiled graph, not a protocol" in err


# ---------------------------------------------------------------- hostile graphs: rejected, never run

PAYLOAD = "import pathlib; pathlib.Path({!r}).write_text('pwned')"


def hostile(tmp_path: Path) -> tuple[dict, Path]:
    """A graph with code in a rule id (after a newline, and in a guard), a bad state name and an
    unknown op: each would put text of the file into generated Python if nothing checked it."""
    marker = tmp_path / "PWNED"
    data = graph_data()
    rename_rule(data, "watch/0/0", "watch/0/0\n" + PAYLOAD.format(str(marker)) + "\n#")
    data["edges"][1]["guard"] = {"op": "__import__('os').system('touch " + str(marker) + "')", "args": []}
    data["graph"]["lets"]["x"]["expr"] = {"op": "call", "func": "eval", "args": [{"op": "num", "value": 1}]}
    data["graph"]["labs"]["ALT; import os"] = data["graph"]["labs"]["ALT"]
    data["nodes"][0]["description"] = "watching\x1b[2J"
    return data, marker


def test_a_hostile_graph_is_rejected_with_exit_1_and_never_executed(capsys, tmp_path):
    data, marker = hostile(tmp_path)
    graph = write_graph(tmp_path, data)
    timeline = write(tmp_path, "t.yaml", TIMELINE)
    case = write(tmp_path, "case.yaml", CASE)
    out_file = tmp_path / "trace.json"
    for argv in (("simulate", graph, timeline, "-o", out_file), ("render", graph, "-o", tmp_path / "g.dot"),
                 ("test", graph, case), ("check", graph)):
        status, out, err = run(capsys, *argv)
        assert status == 1, (argv, err)
        assert "Traceback" not in err
        assert not marker.exists(), argv
        assert not out_file.exists() and not (tmp_path / "g.dot").exists()
        codes = {line.split("[", 1)[1].split("]", 1)[0] for line in err.splitlines() if "error[" in line}
        assert {"E912", "E913", "E915"} <= codes, err
        # no control character of the file reaches the terminal: the newline is shown escaped
        assert "\x1b" not in err
        assert "pathlib.Path" not in "\n".join(line for line in err.splitlines() if not line.startswith(str(graph)) and "|" not in line)
    assert not marker.exists()


def test_every_fault_is_located_by_json_path_and_line(capsys, tmp_path):
    data, _ = hostile(tmp_path)
    graph = write_graph(tmp_path, data)
    text = graph.read_text(encoding="utf-8")
    status, _, err = run(capsys, "check", graph)
    assert status == 1
    lines = [line for line in err.splitlines() if "error[" in line]
    by_code: dict[str, list[str]] = {}
    for line in lines:
        by_code.setdefault(line.split("[", 1)[1][:4], []).append(line)
    # the rule id with the newline: at the edge's key, escaped
    key = next(line for line in by_code["E912"] if ".key:" in line)
    assert key.startswith(f"{graph}:")
    line_no = int(key.split(":")[1])
    assert '"key": "watch/0/0\\n' in text.splitlines()[line_no - 1]
    assert '"watch/0/0\\nimport pathlib' in key
    # the bad lab name: at the key itself
    lab = next(line for line in by_code["E912"] if "graph.labs[" in line)
    assert '"ALT; import os"' in text.splitlines()[int(lab.split(":")[1]) - 1]
    # the unknown op and the unknown function, at their trees
    assert any("edges[1].guard: unknown expression operator" in line for line in by_code["E913"]), by_code["E913"]
    assert any("graph.lets.x.expr: unknown function 'eval'" in line for line in by_code["E913"]), by_code["E913"]
    assert any("nodes[0].description: text holds the control character U+001B" in line for line in by_code["E915"])
    assert err.splitlines()[-1].startswith("checked 1 protocol: ")


def test_the_console_script_rejects_a_hostile_graph(tmp_path):
    data, marker = hostile(tmp_path)
    graph = write_graph(tmp_path, data, indent=None)
    timeline = write(tmp_path, "t.yaml", TIMELINE)
    proc = subprocess.run([sys.executable, "-m", "rxwatch.cli.main", "simulate", str(graph), str(timeline)],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 1 and proc.stdout == ""
    assert "Traceback" not in proc.stderr
    assert "not a compiled graph rxwatch can run" in proc.stderr.splitlines()[-1]
    assert not marker.exists()


# ---------------------------------------------------------------- one fault at a time: the codes


def mutate(fn):
    data = graph_data()
    fn(data)
    return data


FAULTS = [
    # (id, mutation, code, fragment of the message)
    ("not-an-object", lambda d: d.clear() or d.update({"nodes": 3}), "E910", "no 'graph', 'edges'"),
    ("no-stamp", lambda d: d["graph"].pop("format"), "E911", "no format stamp"),
    ("future-stamp", lambda d: d["graph"].update(format="rxwatch-graph/9"), "E911", 'format "rxwatch-graph/9"'),
    ("state-name", lambda d: d["nodes"][1].update(id="high state"), "E912", 'nodes[1].id: "high state" is not a state name'),
    ("rule-id", lambda d: rename_rule(d, "high/0/0", "high/0/0;x"), "E912", "is not a rule id"),
    ("source-id", lambda d: d["graph"]["sources"].update({"-s": {"title": "x"}}), "E912", 'graph.sources["-s"]'),
    ("member", lambda d: d["graph"]["facts"].update(f={"type": "enum", "members": ["a b"], "default": None}), "E912", "graph.facts.f.members[0]"),
    ("unknown-op", lambda d: d["edges"][0].update(guard={"op": "exec", "args": []}), "E913", "edges[0].guard: unknown expression operator 'exec'"),
    ("compare-op", lambda d: d["graph"]["lets"]["x"].update(expr={"op": "compare", "ops": ["=~"], "args": [{"op": "num", "value": 1}, {"op": "num", "value": 2}]}), "E913", "unknown comparison"),
    ("undeclared-in-expr", lambda d: d["graph"]["lets"]["x"].update(expr={"op": "lab", "name": "AST"}), "E913", "lab 'AST' is not declared"),
    ("let-cycle", lambda d: d["graph"]["lets"]["x"].update(expr={"op": "let", "name": "x"}), "E913", "x -> x"),
    ("num-unit", lambda d: d["graph"]["lets"]["x"].update(expr={"op": "num", "value": 1, "unit": 1000}), "E913",
     "graph.lets.x.expr.unit: a number's unit must be a text"),
    ("deep", lambda d: d["graph"]["lets"]["x"].update(expr=_deep(400)), "E913", "nested"),
    ("edge-target", lambda d: d["edges"][0].update(target="nowhere"), "E914", 'state "nowhere" is not declared'),
    ("handler-rule", lambda d: d["nodes"][0]["handlers"][0]["rules"].append("watch/0/9"), "E914", 'rule "watch/0/9" is not an edge'),
    ("initial", lambda d: d["graph"].update(initial="start"), "E914", "graph.initial"),
    ("action-ref", lambda d: d["nodes"][0]["entry"][0].update(action="order"), "E914", 'action "order" is not declared'),
    ("field-type", lambda d: d["edges"][0].update(stay="yes"), "E915", "edges[0].stay: must be true or false"),
    ("number", lambda d: d["graph"]["labs"]["ALT"].update(uln="forty"), "E915", "graph.labs.ALT.uln: must be a finite number"),
    ("window", lambda d: d["nodes"][0]["entry"][0].update(window={"start": 1, "end": 2, "unit": "fortnights"}), "E915", "window.unit: must be one of days, weeks"),
    ("guard-type", lambda d: d["edges"][0].update(guard={"op": "+", "args": [{"op": "num", "value": 1}, {"op": "num", "value": 2}]}), "E913", "edges[0].guard: must be true or false, but this is a number"),
    ("compare-kinds", lambda d: d["edges"][0].update(guard={"op": "compare", "ops": ["<"], "args": [{"op": "enum", "value": "a"}, {"op": "num", "value": 1}]}), "E913", "cannot compare a member of an enumeration with a number"),
    ("action-value", lambda d: d["graph"]["lets"]["x"].update(expr={"op": "action", "name": "check"}), "E913", "the action \"check\" is not a value"),
    ("kind", lambda d: d["nodes"][0].update(kind="start"), "E915", "must be one of initial, normal, terminal"),
    ("missing", lambda d: d["nodes"][0].pop("handlers"), "E915", "nodes[0].handlers: missing"),
]


def _deep(n: int) -> dict:
    t: dict = {"op": "num", "value": 1}
    for _ in range(n):
        t = {"op": "neg", "arg": t}
    return t


@pytest.mark.parametrize("name,fn,code,says", FAULTS, ids=[f[0] for f in FAULTS])
def test_each_fault_has_its_code(capsys, tmp_path, name, fn, code, says):
    graph = write_graph(tmp_path, mutate(fn))
    timeline = write(tmp_path, "t.yaml", TIMELINE)
    status, out, err = run(capsys, "simulate", graph, timeline)
    assert status == 1 and out == ""
    heads = [line for line in err.splitlines() if f"error[{code}]" in line]
    assert any(says in line for line in heads), err
    assert all(line.startswith(f"{graph}:") for line in heads)
    assert "Traceback" not in err


def test_the_compiler_s_deepest_expression_is_a_valid_graph():
    """The depth limit on graph files is above anything the compiler makes (E105 stops it at 200)."""
    expr = "-" * 190 + "xuln(ALT)"
    data = graph_data(SMALL.replace('= xuln(ALT)', f'= {expr}'), verify=False)
    graphio.from_json(json.dumps(data), "deep.json")


def test_not_json_is_located(capsys, tmp_path):
    text = json.dumps(graph_data(), indent=1)
    broken = write(tmp_path, "broken.json", text[: len(text) // 2])
    status, out, err = run(capsys, "simulate", broken, write(tmp_path, "t.yaml", TIMELINE))
    assert status == 1
    head = err.splitlines()[0]
    assert head.startswith(f"{broken}:") and "error[E910]: not JSON" in head
    nan = write(tmp_path, "nan.json", text.replace('"uln": 40', '"uln": NaN'))
    status, _, err = run(capsys, "check", nan)
    assert status == 1 and "error[E910]" in err and "NaN" in err
    dup = write(tmp_path, "dup.json", text.replace('"kind": "initial"', '"kind": "initial", "kind": "terminal"'))
    status, _, err = run(capsys, "check", dup)
    assert status == 1 and 'the key "kind" appears twice' in err
    deep = write(tmp_path, "deep.json", '{"graph": ' + "[" * 100000 + "]" * 100000 + "}")
    status, _, err = run(capsys, "check", deep)
    assert status == 1 and "error[E910]" in err and "Traceback" not in err


def test_a_byte_order_mark_is_read(capsys, tmp_path):
    data = graph_data()
    graph = tmp_path / "bom.json"
    graph.write_text("\ufeff" + json.dumps(data), encoding="utf-8")
    status, _, err = run(capsys, "check", graph)
    assert status == 0, err


def test_a_compact_graph_shows_a_cut_line_with_the_caret_under_the_fault(capsys, tmp_path):
    data = graph_data()
    data["edges"][2]["guard"] = {"op": "exec"}
    graph = write_graph(tmp_path, data, indent=None)
    status, _, err = run(capsys, "check", graph)
    assert status == 1
    head, src, caret = err.splitlines()[:3]
    assert head.startswith(f"{graph}:1:") and "edges[2].guard" in head
    assert len(src) < 200 and src.strip().startswith("1 | ...")
    assert src[caret.index("^"):].startswith('{"op":"exec"}')


def test_a_graph_that_loops_without_time_stops_with_e901(capsys, tmp_path):
    """The validator checks form, not behaviour: a zero-time loop (the verifier's E620 on a
    protocol) is caught by the simulator at run time, located on the protocol's rule."""
    loop = textwrap.dedent("""\
        protocol loop
        source s "S" kind label
        lab ALT unit "U/L" uln 40
        fact risky "a risk" bool default false
        initial state a { on panel { otherwise -> b cite s } }
        state b { on fact { otherwise -> c cite s } }
        state c { on fact { otherwise -> b cite s } }
    """)
    graph = write_graph(tmp_path, graph_data(loop, verify=False))
    timeline = write(tmp_path, "t.yaml", "patient: {id: p}\nstart: 2025-01-06\nevents:\n  - {date: 2025-01-07, lab: ALT, value: 1}\n")
    status, out, err = run(capsys, "simulate", graph, timeline)
    assert status == 1 and out == ""
    assert "error[E901]: zero-time loop on 2025-01-07" in err
    assert err.splitlines()[0].startswith(("small.rxw:6:", "small.rxw:7:"))


def test_every_protocol_of_the_repository_compiles_to_a_valid_graph(repo_root):
    """What the compiler makes, the validator reads: every protocol in the repository that
    compiles (the verifier aside: its findings are about meaning, not form)."""
    paths = sorted((repo_root / "protocols").glob("*.rxw")) + sorted((repo_root / "tests").rglob("*.rxw"))
    compiled = 0
    for path in paths:
        result = compile_source(path.read_text(encoding="utf-8"), str(path), verify=False)
        if result.ok:
            graphio.from_json(graphio.to_json(result.graph), f"{path}.json")
            compiled += 1
    assert compiled >= 20


def test_validation_leaves_a_valid_graph_unchanged():
    data = graph_data()
    before = copy.deepcopy(data)
    assert graphio.validate(data) == []
    assert data == before


# ---------------------------------------------------------------- any edit of a graph: rejected, or it runs

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

RICH = textwrap.dedent("""\
    protocol rich
      version "1.0"
    results valid for 3 days
    reminders every 2 weeks
    source s "A source" kind label
    lab ALT "alanine aminotransferase" unit "U/L" uln 40
    lab TBIL "total bilirubin" unit "mg/dL" uln 1.2
    fact indication "why" one of ra, stills default ra
    fact liver "liver disease" bool default false
    var held "drug held" bool default false
    event stop "treatment ended"
    action check "order a panel" orders ALT, TBIL fulfilled by ALT
    action treat "treat"
    action pause "pause"
    let x "ALT in multiples of ULN" = xuln(ALT)

    initial state watch "watching" {
      on entry {
        if indication in {stills} { do check due 2..4 weeks cite s } else { do check due 1..2 weeks cite s }
      }
      on panel {
        when known(ALT) and x > 2 -> high cite s
        otherwise stay cite s { do check due 1..2 weeks cite s }
      }
      on fact liver { when liver -> done cite s }
      on event stop { otherwise -> done cite s }
    }

    state high "raised" {
      on entry {
        do one of treat, pause cite s
        set held = not held cite s
        do check due 1..2 weeks cite s
      }
      on panel {
        when known(ALT) and x <= 1 and since entry >= 14 days -> watch cite s
        otherwise stay cite s
      }
      after 8 weeks since check { otherwise -> watch cite s }
      on event stop { otherwise -> done cite s }
    }

    terminal state done "ended"
""")

RICH_TIMELINE = textwrap.dedent("""\
    patient: {id: p1, facts: {indication: stills}}
    start: 2025-01-06
    until: 2025-12-31
    events:
      - {date: 2025-01-10, lab: ALT, value: 30.5, uln: 33}
      - {date: 2025-02-03T08:00, lab: ALT, value: 100}
      - {date: 2025-02-03, choice: pause}
      - {date: 2025-02-03T14:00, lab: ALT, value: 96}
      - {date: 2025-03-12, lab: ALT, value: 12}
      - {date: 2025-04-01, fact: liver, value: true}
""")

_RICH = graph_data(RICH, verify=False)


def _paths(d, p=()):
    yield p
    if isinstance(d, dict):
        for k, v in d.items():
            yield from _paths(v, p + (k,))
    elif isinstance(d, list):
        for i, v in enumerate(d):
            yield from _paths(v, p + (i,))


_PATHS = [p for p in _paths(_RICH) if p]
_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-2, 10**12), st.floats(allow_nan=False), st.text(max_size=12),
    st.sampled_from(["ALT", "watch", "high/0/0", "days", "panel", "timer", "check", "stop", "liver", "x", "s", "ra"]),
    st.just([]), st.just({}), st.just({"op": "num", "value": 1}), st.just({"op": "lab", "name": "ALT"}),
)


_NAMES = ["ALT", "TBIL", "watch", "high", "done", "check", "treat", "stop", "liver", "indication", "held", "x", "s",
          "ra", "stills", "high/0/0", "watch/1/0", "days", "weeks", "panel", "timer", "fact", "event", "first", ""]


def _similar(draw, old):
    """A value of the same type as `old`: the edits a person makes by hand, most likely to pass."""
    if isinstance(old, bool):
        return not old
    if isinstance(old, int):
        return draw(st.integers(-1, 400))
    if isinstance(old, float):
        return draw(st.floats(0, 1000))
    if isinstance(old, str):
        return draw(st.sampled_from(_NAMES))
    if isinstance(old, list):
        return old[1:] + old[:1] if old else []
    if isinstance(old, dict) and "op" in old:
        return draw(st.sampled_from([{"op": "num", "value": 3}, {"op": "lab", "name": "ALT"}, {"op": "bool", "value": True},
                                     {"op": "let", "name": "x"}, {"op": "duration", "amount": 2, "unit": "weeks"}]))
    return old


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_edit_of_a_graph_is_rejected_or_runs(tmp_path_factory, data):
    """An edited graph is either refused (GraphError: exit 1) or simulated and drawn without
    an internal error: the validator lets nothing through that the simulator or the renderer
    cannot take."""
    from rxwatch.render import render
    from rxwatch.simulator.engine import Machine, SimulationError
    from rxwatch.inputs.model import TimelineError
    from rxwatch.inputs.registry import load_timeline

    graph = copy.deepcopy(_RICH)
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(_PATHS))
        how = data.draw(st.sampled_from(["similar", "similar", "set", "delete"]))
        parent = graph
        try:
            for k in path[:-1]:
                parent = parent[k]
            if how == "delete":
                del parent[path[-1]]
            elif how == "set":
                parent[path[-1]] = copy.deepcopy(data.draw(_VALUES))
            else:
                parent[path[-1]] = _similar(data.draw, copy.deepcopy(parent[path[-1]]))
        except (KeyError, IndexError, TypeError):
            continue
    try:
        g = graphio.from_json(json.dumps(graph), "edited.json")
    except graphio.GraphError as e:
        assert e.diagnostics and all(d.code in ("E910", "E911", "E912", "E913", "E914", "E915") for d in e.diagnostics)
        return
    folder = tmp_path_factory.mktemp("tl")
    timeline = folder / "t.yaml"
    timeline.write_text(RICH_TIMELINE, encoding="utf-8")
    try:
        tl = load_timeline(timeline, g.graph)
    except TimelineError:
        tl = None
    if tl is not None:
        try:
            Machine(g).run(tl)
        except SimulationError as e:
            assert e.states, f"only a zero-time loop may stop a validated graph: {e}"
    render(g, "dot")
