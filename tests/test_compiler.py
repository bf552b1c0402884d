"""The compiler as a library: compile_file / compile_source and the graph that lowering builds
(compiler/lower.py's docstring and docs/graph.md define it)."""

from __future__ import annotations

import json
import re

import networkx as nx
import pytest

from conftest import ANAKINRA, LEFLUNOMIDE, REPO_ROOT, SHIPPED_PROTOCOLS
from rxwatch.compiler import CompileResult, compile_file, compile_source

NODE_KEYS = {"kind", "description", "entry", "handlers", "sources", "span"}
EDGE_KEYS = {
    "id", "trigger", "events", "facts", "timer", "mode", "handler", "order", "guard",
    "because", "otherwise", "stay", "actions", "windows", "sources", "span",
}  # fmt: skip
SPAN_KEYS = {"path", "line", "column", "end_line", "end_column"}

SMALL = """\
protocol p
source s "S" kind label
lab ALT unit "U/L" uln 40
action order "order" orders ALT
initial state a {
  on panel {
    when ALT > 120 -> b cite s
    otherwise stay cite s
  }
}
terminal state b
"""


@pytest.fixture(scope="module", params=SHIPPED_PROTOCOLS, ids=lambda p: p.stem)
def compiled(request) -> CompileResult:
    return compile_file(str(request.param))


def test_shipped_protocols_compile_without_errors(compiled):
    assert compiled.ok, [str(d) for d in compiled.diagnostics]
    assert isinstance(compiled.graph, nx.MultiDiGraph)
    assert compiled.module is not None


def test_graph_attributes_hold_every_declaration(compiled):
    g = compiled.graph
    m = compiled.module
    assert g.graph["format"] == "rxwatch-graph/3"
    assert g.graph["name"] == m.protocol[0].name.text
    assert set(g.graph["sources"]) == {s.id.text for s in m.sources}
    assert set(g.graph["labs"]) == {x.name.text for x in m.labs}
    assert set(g.graph["facts"]) == {x.name.text for x in m.facts}
    assert set(g.graph["vars"]) == {x.name.text for x in m.vars}
    assert set(g.graph["events"]) == {x.name.text for x in m.events}
    assert set(g.graph["actions"]) == {x.name.text for x in m.actions}
    assert set(g.graph["lets"]) == {x.name.text for x in m.lets}
    assert g.graph["initial"] in g.nodes
    assert g.nodes[g.graph["initial"]]["kind"] == "initial"


def test_nodes_are_the_states(compiled):
    g = compiled.graph
    m = compiled.module
    # every state and every track, in document order (a nested one after the one around it)
    in_order = sorted((*m.states, *m.tracks), key=lambda x: (x.span.line, x.span.column))
    assert list(g.nodes) == [s.name.text for s in in_order]
    assert [g.nodes[n]["doc_order"] for n in g.nodes] == list(range(len(g)))
    for n, attrs in g.nodes(data=True):
        assert NODE_KEYS <= set(attrs), n
        assert attrs["kind"] in ("initial", "normal", "terminal")
        if attrs["kind"] == "terminal":
            assert g.out_degree(n) == 0
            assert attrs["handlers"] == []


def test_edges_are_the_rules_keyed_state_handler_rule(compiled):
    g = compiled.graph
    from rxwatch.compiler.symbols import build, expand, leading_choice

    sym = build(compiled.module)
    # one edge per rule (`use`d blocks written out), one per alternative of a choice that leads
    n_edges = sum(len(leading_choice(r).alternatives) if leading_choice(r) else 1
                  for s in compiled.module.states for h in s.handlers for r, _b, _i in expand(h, sym))
    assert g.number_of_edges() == n_edges
    for u, v, k, e in g.edges(keys=True, data=True):
        assert EDGE_KEYS <= set(e), k
        assert re.fullmatch(r"[A-Za-z_]\w*/\d+/\d+(@[1-9]\d*)?", k)
        base = f"{u}/{e['handler']}/{e['order']}"
        assert k == e["id"] == (base if not e["alternative"] else f"{base}@{e['alternative']}")
        handler = g.nodes[u]["handlers"][e["handler"]]
        assert handler["rules"][e["order"]] == base
        assert e["trigger"] == handler["trigger"]
        assert e["otherwise"] == (e["guard"] is None)
        assert e["otherwise"] == (e["because"] == "")
        if e["stay"]:
            assert u == v


def test_handlers_list_their_rules_in_order(compiled):
    g = compiled.graph
    keys = set(g.edges(keys=True))
    for n, attrs in g.nodes(data=True):
        for hi, h in enumerate(attrs["handlers"]):
            assert h["rules"] == [f"{n}/{hi}/{ri}" for ri in range(len(h["rules"]))]
            for k in h["rules"]:
                assert any(key == k for _, _, key in keys)


def test_every_cited_source_is_declared(compiled):
    g = compiled.graph
    declared = set(g.graph["sources"])

    def action_sources(actions):
        for a in actions:
            yield from a.get("sources", ())
            yield from action_sources(a.get("then", ()))
            yield from action_sources(a.get("else", ()))

    for _, _, e in g.edges(data=True):
        assert set(e["sources"]) <= declared
        assert set(action_sources(e["actions"])) <= declared
    for _, attrs in g.nodes(data=True):
        assert set(attrs["sources"]) <= declared
        assert set(action_sources(attrs["entry"])) <= declared
    for let in g.graph["lets"].values():
        assert set(let["sources"]) <= declared


def test_spans_point_at_the_source_text(compiled):
    g = compiled.graph
    lines = compiled.source.splitlines()
    for n, attrs in g.nodes(data=True):
        span = attrs["span"]
        assert set(span) == SPAN_KEYS
        assert n in lines[span["line"] - 1]
    for _, _, e in g.edges(data=True):
        span = e["span"]
        first = lines[span["line"] - 1][span["column"] - 1 :]
        assert first.startswith("when" if e["guard"] is not None else "otherwise")
        assert span["end_line"] >= span["line"]


def test_because_is_the_guard_as_written(compiled):
    text = " ".join(compiled.source.split())
    for _, _, e in compiled.graph.edges(data=True):
        if e["guard"] is not None:
            assert f"when {e['because']}" in text


def test_the_graph_is_plain_json(compiled):
    """Everything in the graph is JSON-like: node-link data serialises with no fallback."""
    data = nx.node_link_data(compiled.graph, edges="edges")
    assert json.loads(json.dumps(data)) == data


def test_windows_of_an_edge_come_from_its_orders():
    g = compile_file(str(ANAKINRA)).graph
    (e,) = [d for _, _, d in g.out_edges("baseline", data=True) if d["otherwise"] and d["trigger"] == "panel"]
    windows = {(w["window"]["start"], w["window"]["end"], w["window"]["unit"]): w["when"] for w in e["windows"]}
    assert windows == {
        (2, 4, "weeks"): "early_first_check",
        (1, 2, "months"): "not (early_first_check)",
    }


def test_timer_handler_is_lowered():
    g = compile_file(str(LEFLUNOMIDE)).graph
    (e,) = [e for _, _, e in g.edges(data=True) if e["trigger"] == "timer"]
    assert e["timer"] == {"amount": 6, "unit": "months", "since": "start_leflunomide"}


# ---------------------------------------------------------------- the API


def test_compile_source_options():
    assert compile_source(SMALL, "s.rxw").graph is not None
    r = compile_source(SMALL, "s.rxw", lower=False)
    assert r.ok and r.graph is None and r.module is not None
    r = compile_source(SMALL, "s.rxw", verify=False)
    assert r.ok and r.graph is not None


def test_errors_give_no_graph():
    r = compile_source(SMALL.replace("-> b", "-> c"), "s.rxw")
    assert not r.ok
    assert r.graph is None
    assert r.path == "s.rxw" and r.source.startswith("protocol p")


def test_syntax_errors_give_no_module():
    r = compile_source(SMALL.replace("-> b", "-> -> b"), "s.rxw")
    assert not r.ok and r.module is None and r.graph is None


def test_compile_file_lets_oserror_through(tmp_path):
    with pytest.raises(FileNotFoundError):
        compile_file(str(tmp_path / "nope.rxw"))


def test_spans_follow_the_text():
    """Three blank lines on top move every span three lines down, and nothing else changes."""
    a = compile_source(SMALL, "s.rxw").graph
    b = compile_source("\n\n\n" + SMALL, "s.rxw").graph
    assert a.nodes["a"]["span"]["line"] + 3 == b.nodes["a"]["span"]["line"]
    ea, eb = a.edges["a", "b", "a/0/0"], b.edges["a", "b", "a/0/0"]
    assert ea["span"]["line"] + 3 == eb["span"]["line"]
    assert {k: v for k, v in ea.items() if k != "span"} == {k: v for k, v in eb.items() if k != "span"}


def test_the_path_is_recorded_as_given():
    g = compile_source(SMALL, "some/where/p.rxw").graph
    assert g.graph["path"] == "some/where/p.rxw"
    assert g.nodes["a"]["span"]["path"] == "some/where/p.rxw"


def test_accepted_warnings_are_kept_in_the_graph():
    text = SMALL.replace("    otherwise stay cite s\n", "    otherwise stay\n").replace(
        "initial state a {\n", 'initial state a {\n  accept W501 "reviewed: the default stays"\n'
    )
    r = compile_source(text, "s.rxw")
    assert r.ok
    assert [d.code for d in r.diagnostics if d.code.startswith("W5")] == []
    assert [(d.code, a.reason) for d, a in r.accepted] == [("W501", "reviewed: the default stays")]
    assert [x["code"] for x in r.graph.graph["accepted"]] == ["W501"]


def test_protocol_names_are_data_not_code():
    """A renamed copy of a shipped protocol compiles to the same graph, renamed: the compiler
    knows nothing about any particular drug."""
    text = ANAKINRA.read_text(encoding="utf-8")
    renamed = re.sub(r"\banakinra\b", "drugx", text)
    renamed = re.sub(r"(\w*)anakinra(\w*)", r"\1drugx\2", renamed)
    a = compile_source(text, "p.rxw").graph
    b = compile_source(renamed, "p.rxw").graph
    assert b is not None
    rename = lambda s: s.replace("anakinra", "drugx")  # noqa: E731
    assert [rename(n) for n in a.nodes] == list(b.nodes)
    assert {(rename(u), rename(v), rename(k)) for u, v, k in a.edges(keys=True)} == set(b.edges(keys=True))


def code_words(path) -> str:
    """The code of a .py or .lark file, without its comments and docstrings (examples may name a drug)."""
    import ast

    text = path.read_text(encoding="utf-8")
    if path.suffix == ".lark":
        return "\n".join(line.split("//", 1)[0] for line in text.splitlines())
    tree = ast.parse(text)
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                docstrings.add(id(first.value))
    words = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            words.append(node.value)
        elif isinstance(node, ast.Name):
            words.append(node.id)
        elif isinstance(node, ast.Attribute):
            words.append(node.attr)
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            words.append(node.name)
    return "\n".join(words)


@pytest.mark.parametrize("folder", ["compiler", "grammar"])
def test_the_compiler_does_not_know_the_shipped_drugs(folder):
    """Team rule: nothing in the compiler may know about anakinra or leflunomide."""
    offenders = []
    for path in (REPO_ROOT / folder).rglob("*"):
        if path.suffix in (".py", ".lark") and "__pycache__" not in path.parts:
            text = code_words(path).lower()
            for word in ("anakinra", "leflunomide", "kineret", "arava", "hepatotox"):
                if word in text:
                    offenders.append(f"{path.relative_to(REPO_ROOT)}: {word}")
    assert offenders == []


@pytest.mark.parametrize("text, message", [
    ("do order_alt due 1..10000 years", "a window bound of 10000 years is longer than 100 years"),
    ("do order_alt due within 36526 days", "a duration of 36526 days is longer than 100 years"),
    ("do order_alt due 1..1201 months", "a window bound of 1201 months is longer than 100 years"),
])
def test_durations_are_bounded(text, message):
    src = f"""
protocol t
  status draft
source s "s" kind convention
lab ALT "alt" unit "U/L" uln 40
action order_alt "o" orders ALT
initial state a "a" {{ on entry {{ {text} cite s }} }}
"""
    result = compile_source(src, "t.rxw")
    assert [d.code for d in result.diagnostics if d.is_error] == ["E104"]
    assert message in result.diagnostics[0].message


def test_a_guard_on_a_century_is_fine_and_a_longer_one_is_refused():
    base = """
protocol t
  status draft
source s "s" kind convention
lab ALT "alt" unit "U/L" uln 40
action order_alt "o" orders ALT
initial state a "a" {{ on entry {{ do order_alt due within 14 days cite s }}
  on panel {{ when since(order_alt) < {d} stay cite s  otherwise stay cite s }} }}
"""
    assert compile_source(base.format(d="100 years"), "t.rxw").ok
    bad = compile_source(base.format(d="99999999 years"), "t.rxw")
    assert [d.code for d in bad.diagnostics] == ["E104"]


def test_number_literals_are_exact_and_bounded():
    from fractions import Fraction
    ok = compile_source(SMALL.replace("uln 40", "uln 1.2"), "s.rxw")
    assert ok.module.labs[0].uln == Fraction(6, 5)
    assert ok.graph.graph["labs"]["ALT"]["uln"] == 1.2
    long = compile_source(SMALL.replace("uln 40", "uln " + "9" * 41), "s.rxw")
    assert [d.code for d in long.diagnostics] == ["E104"]


def test_long_or_chains_and_let_chains_compile_without_recursion_errors():
    from rxwatch.simulator.engine import Machine

    head = 'protocol t\n  status draft\nsource s "s" kind convention\nlab ALT "alt" unit "U/L" uln 40\n'
    chain = " or ".join(f"ALT > {i}" for i in range(300))
    flat = compile_source(head + f'initial state a "a" {{ on panel {{ when {chain} stay cite s otherwise stay cite s }} }}\n',
                          "t.rxw", verify=False)
    assert flat.ok and not any(d.code == "E105" for d in flat.diagnostics)
    lets = "".join(f'let a{i} "x" = {"ALT" if i == 0 else f"a{i - 1}"} + 1\n' for i in range(1500))
    deep = compile_source(head + lets + 'initial state a "a" { on panel { when a1499 > 3 stay cite s otherwise stay cite s } }\n',
                          "t.rxw", verify=False)
    assert deep.ok
    Machine(deep.graph)  # 1,500 lets, each read by the next: no RecursionError
    too_long = " or ".join(f"ALT > {i}" for i in range(1002))
    bad = compile_source(head + f'initial state a "a" {{ on panel {{ when {too_long} stay cite s }} }}\n', "t.rxw")
    assert [d.code for d in bad.diagnostics] == ["E105"] and "chain of more than 1000 terms" in bad.diagnostics[0].message


def test_reminders_every_zero_is_refused():
    src = SMALL.replace("source s", "reminders every 0 weeks\nsource s")
    result = compile_source(src, "s.rxw")
    assert [d.code for d in result.diagnostics] == ["E104"] and "reminders every 0" in result.diagnostics[0].message
    assert compile_source(SMALL.replace("source s", "reminders every 1 day\nsource s"), "s.rxw").ok
