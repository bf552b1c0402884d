"""The verifier (E6xx/W6xx, docs/verification.md): the defect corpus, the shipped protocols,
and the meaning of guards, checked against the simulator's own evaluator.

tests/verify_corpus/*.rxw are small edits of the shipped protocols; the line where each
finding must point carries `# expect: CODE`. Every example the verifier gives is replayed
through rxwatch.simulator.expr (the simulator's evaluator): the verdict must hold there too.
"""

from __future__ import annotations

import datetime
import json
import re
from pathlib import Path

import pytest
from dateutil.relativedelta import relativedelta

from conftest import ANAKINRA, LEFLUNOMIDE, REPO_ROOT
from rxwatch.compiler import compile_file, compile_source, ir
from rxwatch.compiler.diagnostics import CODES
from rxwatch.compiler.verify import analyse, explain, explain_text
from rxwatch.simulator.expr import Compiler, Ctx

CORPUS = REPO_ROOT / "tests" / "verify_corpus"
CORPUS_FILES = sorted(CORPUS.glob("*.rxw"))
VERIFY_CODES = sorted(c for c in CODES if re.fullmatch(r"[EW]6\d\d", c))
EXPECT = re.compile(r"#\s*expect:\s*([EW]6\d\d)")


def graph_of(text: str, path: str = "t.rxw"):
    r = compile_source(text, path, verify=False)
    assert r.ok, [(d.code, d.span.line, d.message) for d in r.diagnostics]
    return r.graph


def findings(text: str, path: str = "t.rxw"):
    return analyse(graph_of(text, path))


def codes(text: str) -> list[tuple[str, int]]:
    return [(f.code, f.line) for f in findings(text)]


def expected(text: str) -> set[tuple[str, int]]:
    return {(m.group(1), text.count("\n", 0, m.start()) + 1) for m in EXPECT.finditer(text)}


SHIPPED = tuple(sorted({ANAKINRA, LEFLUNOMIDE, *ANAKINRA.parent.glob("*.rxw")}))  # tocilizumab too


@pytest.fixture(scope="module")
def shipped():
    return {p.name: analyse(compile_file(str(p), verify=False).graph) for p in SHIPPED}


# ---------------------------------------------------------------- replaying examples


def ctx_of(graph, ex) -> Ctx:
    """The simulator's Ctx for an example: declared defaults, then the example's inputs."""
    g = graph.graph
    exact = lambda v: ir.exact(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v  # noqa: E731
    facts = {n: exact(d.get("default")) for n, d in (g.get("facts") or {}).items()}
    facts.update(ex.facts)
    vars_ = {n: exact(d.get("default")) for n, d in (g.get("vars") or {}).items()}
    vars_.update(ex.vars)
    c = Ctx(facts, vars_, ex.today)
    c.panel = {k: v for k, v in ex.panel.items() if v is not None}
    c.ulns = dict(ex.ulns)
    c.last = {k: v for k, v in ex.last.items() if v is not None}
    c.entered = ex.entered if ex.entered is not None else ex.today
    c.fulfilled = {a for a, done in ex.fulfilled.items() if done}
    return c


def truths(graph, ex, edge_keys) -> list:
    """The simulator's three-valued verdict on each rule's guard at the example (otherwise: True)."""
    comp = Compiler(graph.graph)
    edges = {k: d for _, _, k, d in graph.edges(keys=True, data=True)}
    out = []
    for k in edge_keys:
        f = comp.truth(edges[k]["guard"])
        out.append(True if f is None else f(ctx_of(graph, ex)))
    return out


def choose(values, mode: str, otherwise: bool = False):
    """The simulator's rule choice (docs/language.md) on guard values (the last one stands for
    `otherwise` when `otherwise`): the index of the rule that fires; None when none does because
    every guard is false; 'unassessable' when a guard is unknown before any fires."""
    n = len(values) - (1 if otherwise else 0)
    guards = values[:n]
    for i, v in enumerate(guards):
        if v is True:
            return i
        if v is None and mode != "exclusive":
            return "unassessable"
    if any(v is None for v in guards):
        return "unassessable"
    return n if otherwise else None


def handler_keys(graph, key: str) -> list:
    """The rules of the handler of rule `key`, in order."""
    handler = key.rsplit("/", 1)[0]
    keys = [k for _, _, k in graph.edges(keys=True) if k.rsplit("/", 1)[0] == handler]
    return sorted(keys, key=lambda k: int(k.rsplit("/", 1)[1]))


def replay(graph, f) -> None:
    """The simulator agrees with the finding's examples."""
    if f.code == "E601":
        for r in f.regions.regions:  # in every region, every guard is false
            assert truths(graph, r.example, f.rules) == [False] * len(f.rules), (f.message, r.text)
        assert f.example is f.regions.regions[0].example
    elif f.code in ("E602", "W603"):
        a, b = f.rules
        assert truths(graph, f.example, [a, b]) == [True, True], f.message
        if f.code == "W603":  # the rules above the first one are false
            above = [k for k in handler_keys(graph, a) if int(k.rsplit("/", 1)[1]) < int(a.rsplit("/", 1)[1])]
            assert truths(graph, f.example, above) == [False] * len(above), f.message
    elif f.code == "E604" and f.example is not None:
        # the rule is true, no rule above it is true, and the ones named are unknown
        rule, *blocked = f.rules
        above = [k for k in handler_keys(graph, rule) if int(k.rsplit("/", 1)[1]) < int(rule.rsplit("/", 1)[1])]
        assert truths(graph, f.example, [rule]) == [True], f.message
        assert True not in truths(graph, f.example, above), f.message
        assert truths(graph, f.example, blocked) == [None] * len(blocked), f.message


# ---------------------------------------------------------------- the corpus

UNASSESSABLE = re.compile(r"#\s*unassessable:\s*(.+)$", flags=re.M)


def test_the_corpus_covers_every_verification_code():
    covered = {m.group(1) for p in CORPUS_FILES for m in EXPECT.finditer(p.read_text(encoding="utf-8"))}
    assert set(VERIFY_CODES) - covered == {"W609"}  # W609 (solver gave up) is tested below


@pytest.mark.parametrize("path", CORPUS_FILES, ids=lambda p: p.stem)
def test_corpus_finding_code_and_line(path: Path, shipped):
    text = path.read_text(encoding="utf-8")
    origin = "anakinra" if "anakinra_hepatotoxicity" in text.splitlines()[0] else "leflunomide"
    baseline = {f.code for name, fs in shipped.items() if name.startswith(origin) for f in fs}
    result = compile_source(text, str(path))
    got = {(d.code, d.span.line) for d in result.diagnostics}
    want = expected(text)
    assert want or path.stem.startswith("explain-"), "a corpus file says what it expects"
    assert want <= got, f"missing {want - got}; got {sorted(got)}"
    extra = {g for g in got if g not in want and g[0] not in baseline}
    assert not extra, extra
    assert result.ok == (not any(code.startswith("E") for code, _ in want))
    graph = compile_source(text, str(path), verify=False).graph
    for f in analyse(graph):
        replay(graph, f)


@pytest.mark.parametrize("path", [p for p in CORPUS_FILES if UNASSESSABLE.search(p.read_text(encoding="utf-8"))], ids=lambda p: p.stem)
def test_corpus_unassessable_handlers_are_explained(path: Path):
    """`# unassessable: REGION | REGION ...` on a handler's line: --explain lists that handler
    with exactly these regions, and each region's example leaves the handler unassessable in
    the simulator."""
    text = path.read_text(encoding="utf-8")
    graph = compile_source(text, str(path), verify=False).graph
    listed = {u.line: u for u in explain(graph)}
    for m in UNASSESSABLE.finditer(text):
        line = text.count("\n", 0, m.start()) + 1
        assert line in listed, (line, sorted(listed))
        u = listed[line]
        assert sorted(m.group(1).strip().split(" | ")) == sorted(r.text for r in u.regions.regions), [r.text for r in u.regions.regions]
        for r in u.regions.regions:
            keys = [rule["id"] for rule in u.rules]
            values = truths(graph, r.example, keys)
            assert choose(values, u.handler.get("mode") or "first", bool(u.rules[-1].get("otherwise"))) == "unassessable", r.text


# ---------------------------------------------------------------- the shipped protocols


def test_the_shipped_protocols_have_no_finding_but_accepted_warnings(shipped):
    """Every shipped protocol checks clean: the only findings are W605 (rules resting on an AI
    summary), which the protocol accepts with its reason."""
    assert len(shipped) >= 3
    for name, fs in shipped.items():
        assert {f.code for f in fs} <= {"W605"}, (name, [(f.code, f.line, f.message) for f in fs])
    assert shipped[LEFLUNOMIDE.name] == []


def test_the_shipped_protocols_check_clean_with_their_accepted_warnings(shipped):
    for path in SHIPPED:
        result = compile_file(str(path))
        assert result.ok and result.diagnostics == [], [(d.code, d.span.line) for d in result.diagnostics]
        assert sorted((d.code, d.span.line) for d, _ in result.accepted) == sorted((f.code, f.line) for f in shipped[path.name])


def test_the_shipped_protocols_are_unassessable_only_without_their_required_labs():
    """--explain on the shipped protocols: in every region where a panel handler is unassessable,
    the panel could fulfil none of the ways of fulfilling one of the protocol's orders (no
    transaminase, neither ALT nor AST; in a track of neutrophils or platelets, no ANC, no PLT)."""
    for path in sorted({ANAKINRA, LEFLUNOMIDE, *ANAKINRA.parent.glob("*.rxw")}):
        graph = compile_file(str(path), verify=False).graph
        ways = [d.get("fulfilled_by") or [d.get("orders")] for d in graph.graph["actions"].values() if d.get("orders")]
        items = explain(graph, limit=32)  # every region (anakinra's baselines have 9; check lists 8)
        assert items
        for u in items:
            assert u.handler["trigger"] == "panel", (path.name, u.state)
            assert u.regions.complete
            for r in u.regions.regions:
                lacking = lambda alts: all(set(alt) & set(r.missing) for alt in alts)  # noqa: E731
                assert any(lacking(w) for w in ways) or "start_leflunomide" in r.text, (path.name, u.state, r.text)


def test_no_verify_skips_the_analyses(tmp_path):
    from rxwatch.cli.main import main

    p = CORPUS / "E601-gap-regions.rxw"
    assert main(["check", str(p)]) == 1
    assert main(["check", "--no-verify", str(p)]) == 0


def test_check_prints_the_finding_with_its_example(capsys):
    from rxwatch.cli.main import main

    status = main(["check", str(CORPUS / "E602-exclusive-overlap.rxw")])
    err = capsys.readouterr().err
    assert status == 1
    assert "E602-exclusive-overlap.rxw:86:5: error[E602]: state first_six_months: the handler is 'exclusive', but 'when 2 <= alt <= 3' (line 85) and 'when 1 < alt <= 2' (line 86) both hold for alt = 2 (ALT 80 U/L)" in err


def test_check_explain_prints_the_unassessable_regions(capsys):
    from rxwatch.cli.main import main

    status = main(["check", "--explain", str(CORPUS / "explain-missing-alt.rxw")])
    out = capsys.readouterr().out
    assert status == 0
    assert "state interrupted, on panel (line 136): unassessable in 1 region:\n  - alt unknown (ALT missing)\n      undecided: 'when alt <= 1' (line 137)\n" in out
    # with errors from the analyses, the regions are still explained
    assert main(["check", "--explain", str(CORPUS / "E601-gap-regions.rxw")]) == 1
    assert "state washout, on panel (line 329): unassessable in 2 regions:" in capsys.readouterr().out


def test_check_explain_is_text_only(capsys):
    from rxwatch.cli.main import main

    assert main(["check", "--explain", "-f", "json", str(LEFLUNOMIDE)]) == 2
    assert "--explain" in capsys.readouterr().err


# ---------------------------------------------------------------- docs


def test_every_verification_code_is_documented():
    doc = (REPO_ROOT / "docs" / "verification.md").read_text(encoding="utf-8")
    headings = dict(re.findall(r"^## ([EW]6\d\d): (.+)$", doc, flags=re.M))
    for code in VERIFY_CODES:
        assert headings.get(code) == CODES[code], code
        entry = doc.split(f"## {code}: ", 1)[1].split("\n## ", 1)[0]
        assert f"[{code}]" in entry, f"{code}: the entry shows no example output"


def test_the_documented_examples_are_what_check_prints():
    """Every diagnostic quoted in docs/verification.md from the corpus is the output of today,
    the lines of a message that has several included."""
    from rxwatch.compiler.diagnostics import format_text

    doc = (REPO_ROOT / "docs" / "verification.md").read_text(encoding="utf-8")
    blocks = re.findall(r"^(tests/verify_corpus/[\w.-]+\.rxw:\d+:\d+: .*(?:\n(?!\s*\d+ \|)(?!tests/).*)*)", doc, flags=re.M)
    assert len(blocks) >= 19
    printed: dict[str, str] = {}
    for block in blocks:
        name = block.split(":", 1)[0]
        if name not in printed:
            text = (REPO_ROOT / name).read_text(encoding="utf-8")
            printed[name] = "\n".join(format_text(d, text) for d in compile_source(text, name).diagnostics)
        assert block.rstrip("\n`") in printed[name], block


def test_the_documented_explain_output_is_what_check_prints(capsys):
    """The `rxwatch check --explain` output quoted in docs/verification.md is today's (a line
    `...` stands for lines left out)."""
    from rxwatch.cli.main import main

    doc = (REPO_ROOT / "docs" / "verification.md").read_text(encoding="utf-8")
    quoted = re.findall(r"^\$ rxwatch check --explain (\S+)\n(.*?)^```", doc, flags=re.M | re.S)
    assert quoted
    for path, output in quoted:
        main(["check", "--explain", str(REPO_ROOT / path)])
        printed = capsys.readouterr().out.replace(str(REPO_ROOT) + "/", "")
        for part in output.strip().split("\n...\n"):
            assert part.strip("\n.") in printed, (path, part)


# ---------------------------------------------------------------- a small protocol to vary

SMALL = """\
protocol p
source s "S" kind label
lab ALT "alanine aminotransferase" unit "U/L" uln 40
lab AST "aspartate aminotransferase" unit "U/L" uln 40
lab INR "international normalised ratio"
fact sex "sex" one of female, male default female
fact liver "liver disease" bool default false
var flag "a flag" bool default false
action order "order a panel" orders ALT, AST, INR fulfilled by ALT or AST
action start "start"
let alt "ALT ratio" = xuln(ALT)
let ast "AST ratio" = xuln(AST)
let tx "transaminases" = max(alt, ast)
initial state a "a" {
  on entry { do order due 1..2 weeks cite s do start cite s }
  on panel MODE {
RULES
  }
  on event ev { otherwise -> b cite s }
}
terminal state b "b"
event ev "an event"
"""


def small(rules: str, mode: str = "", extra: str = "") -> str:
    body = "\n".join("    " + r.strip() + (" cite s" if "cite" not in r else "") for r in rules.strip().splitlines())
    return SMALL.replace("MODE", mode).replace("RULES", body) + extra


def table(rules: str, mode: str = "", extra: str = "", limit: int | None = None):
    """Findings of the panel handler only (hygiene and the rest filtered out)."""
    text = small(rules, mode, extra)
    graph = graph_of(text)
    fs = [f for f in analyse(graph, limit=limit) if f.code in ("E601", "E602", "W603", "E604", "E606", "W607")]
    for f in fs:
        replay(graph, f)
    return fs


def unassessable(rules: str, mode: str = "") -> list[str]:
    """The regions where the panel handler is unassessable, as --explain shows them; each
    region's example replays as unassessable in the simulator."""
    graph = graph_of(small(rules, mode))
    out = []
    for u in explain(graph):
        if u.state == "a" and u.handler["trigger"] == "panel":
            keys = [r["id"] for r in u.rules]
            for r in u.regions.regions:
                assert choose(truths(graph, r.example, keys), mode or "first", bool(u.rules[-1].get("otherwise"))) == "unassessable", r.text
                out.append(r.text)
    return out


def test_a_complete_handler_has_no_findings_and_is_never_unassessable():
    rules = "when not known(ALT) stay\nwhen alt > 3 -> b\nwhen alt <= 3 stay"
    assert table(rules) == []
    assert unassessable(rules) == []


def test_gap_at_a_boundary_with_its_value():
    (f,) = table("when not known(ALT) stay\nwhen alt > 3 -> b\nwhen alt < 3 stay")
    assert f.code == "E601"
    assert "no rule handles a panel with alt = 3 (every guard is false; e.g. ALT 120 U/L)" in f.message
    assert f.example.panel["ALT"] == 120


def test_a_missing_lab_makes_a_comparison_unknown_not_false():
    # no gap: without ALT both guards are unknown, and the handler is unassessable
    rules = "when alt > 3 -> b\nwhen alt <= 3 stay"
    assert table(rules) == []
    assert unassessable(rules) == ["alt unknown (ALT missing)"]
    # with known(), a missing ALT makes both guards false: a gap
    (f,) = table("when known(ALT) and alt > 3 -> b\nwhen known(ALT) and alt <= 3 stay")
    assert f.code == "E601" and "with ALT missing (every guard is false)" in f.message
    assert f.example.panel["ALT"] is None


def test_every_gap_region_is_listed():
    (f,) = table("when alt <= 1 and ast <= 1 -> b\nwhen alt > 2 or ast > 2 stay")
    assert [r.text for r in f.regions.regions] == ["alt <= 2 and ast in (1, 2]", "alt in (1, 2] and ast <= 2"]
    assert f.regions.complete
    assert "no rule handles a panel in 2 regions (every guard is false)" in f.message
    assert "\n    alt <= 2 and ast in (1, 2], e.g. ALT " in f.message
    # a bound on the regions listed
    (f,) = table("when alt <= 1 and ast <= 1 -> b\nwhen alt > 2 or ast > 2 stay", limit=1)
    assert len(f.regions.regions) == 1 and not f.regions.complete
    assert "in more than 1 regions" in f.message and "(and more: only the first 1 regions are listed)" in f.message


def test_a_panel_has_at_least_one_result():
    """When the guards read every declared lab, 'no result at all' is not a panel."""
    rules = "when known(ALT) or known(AST) or known(INR) -> b"
    assert table(rules) == []


def test_without_labs_no_panel_arrives_and_nothing_is_asked():
    text = small("when flag -> b\notherwise stay")
    text = re.sub(r"^lab .*\n", "", text, flags=re.M).replace(" orders ALT, AST, INR fulfilled by ALT or AST", "").replace("do order due 1..2 weeks cite s ", "")
    text = re.sub(r"^let .*\n", "", text, flags=re.M)
    assert [f.code for f in findings(text) if f.code.startswith("E6")] == []


def test_max_ignores_unknown_operands():
    # tx is the ALT ratio when AST is missing: 'tx > 3' is decided with ALT alone
    rules = "when not known(ALT) and not known(AST) stay\nwhen tx > 3 -> b\nwhen tx <= 3 stay"
    assert table(rules) == []
    assert unassessable(rules) == []
    assert unassessable("when tx > 3 -> b\nwhen tx <= 3 stay") == ["tx unknown (ALT, AST missing)"]


def test_a_rule_below_an_unknown_guard_can_never_fire():
    (f,) = table("when alt > 3 -> b\nwhen not known(ALT) stay\notherwise stay")
    assert f.code == "E604" and f.rules == ("a/0/1", "a/0/0")
    assert ("whenever 'not known(ALT)' holds, a rule above it fires first or is unknown (and then the handler is "
            "unassessable): with alt = unknown (ALT missing), 'when alt > 3' (line 17) is unknown") in f.message


def test_not_of_unknown_is_unknown_so_otherwise_waits_for_the_value():
    # `INR > 1.5` and `not INR > 1.5` are both unknown without INR: otherwise never fires
    assert table("when INR > 1.5 -> b\nwhen not INR > 1.5 stay") == []
    assert unassessable("when INR > 1.5 -> b\nwhen not INR > 1.5 stay") == ["INR missing"]
    (f,) = table("when INR > 1.5 -> b\nwhen not INR > 1.5 stay\notherwise stay")
    assert f.code == "W607" and "the rules above are never all false: in every case one is true or unknown" in f.message
    (f,) = table("when known(INR) and INR > 1.5 -> b\nwhen not (known(INR) and INR > 1.5) stay\notherwise stay")
    assert f.code == "W607" and "the rules above cover every case" in f.message


def test_xuln_needs_a_uln_when_the_lab_declares_none():
    # INR has no default ULN: xuln(INR) is unknown unless the result carries one
    rules = "when not known(INR) stay\nwhen xuln(INR) > 1 -> b\nwhen xuln(INR) <= 1 stay"
    assert table(rules) == []
    graph = graph_of(small(rules))
    (u,) = [u for u in explain(graph) if u.state == "a"]
    (r,) = u.regions.regions
    assert r.text == "INR known and xuln(INR) unknown"
    assert r.example.panel["INR"] is not None and "INR" not in r.example.ulns


def test_raw_value_and_ratio_of_one_lab():
    # ALT in U/L and ALT in multiples of its ULN are tied only by the ULN, which a result may
    # carry itself: 'ALT > 100' and 'alt <= 1' can both hold (ULN 201), and neither can
    fs = table("when not known(ALT) stay\nwhen ALT > 100 -> b\nwhen alt <= 1 stay")
    assert [f.code for f in fs] == ["E601", "W603"]
    gap = fs[0].example
    assert gap.panel["ALT"] <= 100 and gap.panel["ALT"] / gap.ulns.get("ALT", 40) > 1


def test_uln_of_a_lab_and_its_own_uln():
    # uln(ALT) is the result's own ULN, or 40: 'ALT > 3 * uln(ALT)' is 'alt > 3'
    assert table("when not known(ALT) stay\nwhen ALT > 3 * uln(ALT) -> b\nwhen alt <= 3 stay") == []
    fs = table("when not known(ALT) stay\nwhen ALT > 120 -> b\nwhen alt <= 3 stay")
    assert [f.code for f in fs] == ["E601", "W603"]
    assert "ALT" in fs[0].example.ulns  # 120 U/L is above 3 x ULN only with a ULN below 40


def test_division_by_zero_is_unknown():
    rules = "when not known(ALT) or not known(AST) stay\nwhen ALT / AST > 1 -> b\nwhen ALT / AST <= 1 stay"
    assert table(rules) == []
    graph = graph_of(small(rules))
    (u,) = [u for u in explain(graph) if u.state == "a"]
    (r,) = u.regions.regions
    assert r.text == "ALT known and AST known and ALT / AST unknown" and r.example.panel["AST"] == 0


def test_enumerations_and_membership():
    assert table("when sex == female -> b\nwhen sex in {male} stay") == []
    (f,) = table("when sex == female -> b\nwhen sex != female and liver stay")
    assert f.code == "E601" and "with sex = male and liver = false" in f.message


def test_a_var_never_set_keeps_its_default():
    (f,) = table("when flag -> b\notherwise stay")
    assert f.code == "E606"  # flag is never set: it is always false


def test_first_mode_overlap_is_a_warning_ordered_is_silent_exclusive_is_an_error():
    rules = "when alt > 3 -> b\nwhen alt > 2 stay\notherwise stay"
    (w,) = table(rules)
    assert w.code == "W603" and "alt = 4" in w.message and "'on panel ordered'" in w.message
    assert table(rules, "ordered") == []
    (e,) = table(rules, "exclusive")
    assert e.code == "E602" and e.severity == "error"


def test_first_mode_overlap_only_where_the_rules_above_fail():
    # rules 2 and 3 overlap only where rule 1 fires anyway: their order never decides
    rules = "when alt > 2 -> b\nwhen alt > 2.5 or ast > 1 stay\nwhen alt > 2.5 or ast < 0.5 stay\notherwise stay"
    assert [f.rules for f in table(rules)] == [("a/0/0", "a/0/1"), ("a/0/0", "a/0/2")]
    assert [f.rules for f in table(rules, "exclusive")] == [("a/0/0", "a/0/1"), ("a/0/0", "a/0/2"), ("a/0/1", "a/0/2")]


def test_exclusive_handlers_fire_a_true_guard_whatever_the_others_are():
    # disjoint guards: with AST missing, 'ast > 2' is unknown, and rule 2 or 4 still fires
    rules = "when ast > 2 stay\nwhen not known(AST) and alt > 2 -> b\nwhen ast <= 2 stay\nwhen not known(AST) and alt <= 2 stay"
    assert table(rules, "exclusive") == []
    assert unassessable(rules, "exclusive") == ["AST missing and alt unknown (ALT missing)"]
    # first hit: rule 1 is unknown without AST, so rules 2 and 4 never fire
    assert [(f.code, f.rules[0]) for f in table(rules)] == [("E604", "a/0/1"), ("E604", "a/0/3")]


def test_shadowed_rule_names_the_rules_above():
    (f,) = table("when alt > 2 -> b\nwhen alt > 3 stay\notherwise stay", "ordered")
    assert f.code == "E604" and "'when alt > 2' (line 17)" in f.message


def test_event_and_timer_handlers_have_gaps_too_fact_handlers_do_not():
    text = small("otherwise stay").replace(
        "  on event ev { otherwise -> b cite s }",
        "  on event ev { when alt > 3 -> b cite s }\n  after 2 weeks { when flag -> b cite s }\n  on fact sex { when sex == male -> b cite s }",
    )
    got = [(f.code, f.line, f.message) for f in findings(text) if f.code.startswith("E6")]
    assert [(c, ln) for c, ln, _ in got] == [("E601", 19), ("E601", 20), ("E606", 20)]
    assert "no rule handles event ev (labs of the most recent panel) with alt <= 3 (every guard is false; e.g. ALT " in got[0][2]
    assert "the timer 'after 2 weeks'" in got[1][2]


def test_fulfilled_is_known_and_needs_the_labs_that_fulfil_the_order():
    # in a panel, an order fulfilled by ALT or AST cannot be fulfilled without them
    (f,) = table("when fulfilled(order) and not known(ALT) and not known(AST) -> b\notherwise stay")
    assert f.code == "E606"
    # fulfilled() is never unknown: a panel with ALT that fulfils no order is a gap here
    (f,) = table("when fulfilled(order) -> b\nwhen not known(ALT) and not fulfilled(order) stay")
    assert f.code == "E601" and [r.text for r in f.regions.regions] == ["fulfilled(order) is false and ALT known"]
    assert f.example.fulfilled == {"order": False}
    # outside a panel handler nothing ties it to the labs
    text = small("otherwise stay").replace("  on event ev { otherwise -> b cite s }",
                                           "  on event ev { when fulfilled(order) and not known(ALT) and not known(AST) -> b cite s\n otherwise stay cite s }")
    assert "E606" not in {c for c, _ in codes(text)}


def test_fulfilled_of_an_order_never_given_never_holds():
    text = small("when fulfilled(other) -> b\notherwise stay").replace('action start "start"', 'action start "start"\naction other "other" orders INR')
    assert ("E606", 18) in codes(text)


# ---------------------------------------------------------------- time


def test_since_entry_is_a_duration_of_the_state():
    (f,) = table("when alt > 1 and since entry < 14 days stay\nwhen alt <= 1 -> b")
    assert f.code == "E601" and "with alt > 1 and since entry >= 14 days" in f.message
    ex = f.example
    assert (ex.today - ex.entered).days >= 14
    # a timer 'after N' (since the state was entered) fires N or more after entry
    text = small("otherwise stay").replace("  on event ev { otherwise -> b cite s }",
                                           "  on event ev { otherwise -> b cite s }\n  after 2 weeks { when since entry < 14 days -> b cite s\n otherwise stay cite s }")
    assert ("E606", 20) in codes(text)


def test_since_of_an_action_every_way_in_recommended_is_known():
    # state a is entered only through its entry, which recommends start: since(start) is known
    assert table("when since(start) < 6 months -> b\nwhen since(start) >= 6 months stay") == []
    # in state c, reached by a rule that does not recommend it, start may never have been
    text = small("otherwise stay").replace("terminal state b", 'state c "c" { on panel { when since(start) < 6 months -> b cite s\n when since(start) >= 6 months -> b cite s } }\nterminal state b').replace(
        "  on event ev { otherwise -> b cite s }", "  on event ev { otherwise -> b cite s }\n  on event ev2 { otherwise -> c cite s }").replace('event ev "an event"', 'event ev "an event"\nevent ev2 "another"').replace(
        "do order due 1..2 weeks cite s do start cite s", "do order due 1..2 weeks cite s")
    text = text.replace('  on event ev { otherwise -> b cite s }\n', '  on event ev { otherwise -> b cite s { do start cite s } }\n')
    graph = graph_of(text)
    (u,) = [u for u in explain(graph) if u.state == "c"]
    assert [r.text for r in u.regions.regions] == ["start never recommended"]


def test_since_compares_calendar_months_exactly():
    # 6 months are 181 to 184 days, depending on the date
    assert table("when since(start) < 6 months -> b\nwhen since(start) >= 184 days stay\notherwise stay") == []
    (f,) = table("when since(start) < 6 months -> b\nwhen since(start) >= 183 days stay\notherwise stay")
    assert f.code == "W603"
    ex = f.example
    assert (ex.today - ex.last["start"]).days == 183
    (f,) = table("when since(start) < 6 months -> b\nwhen since(start) > 184 days stay")
    assert f.code == "E601"  # 184 days when 6 months are 184 days
    (r,) = f.regions.regions
    assert r.text == "since(start) >= 6 months and since(start) <= 184 days"
    last = r.example.last["start"]
    assert (last + relativedelta(months=6) - last).days <= (r.example.today - last).days <= 184


def test_month_thresholds_and_day_thresholds_together():
    # 1 month after 1 February is 28 days (1 March), after 1 March 31 days
    assert table("when since(start) >= 1 months and since(start) < 29 days -> b\notherwise stay") == []
    (f,) = table("when since(start) >= 1 months and since(start) < 28 days -> b\notherwise stay")
    assert f.code == "E606"
    (f,) = table("when since(start) >= 1 months and since(start) < 29 days -> b\nwhen since(start) < 2 months stay\notherwise stay")
    assert f.code == "W603" and (f.example.today - f.example.last["start"]).days == 28
    last = f.example.last["start"]
    assert (last + relativedelta(months=1) - last).days == 28  # e.g. 1 February, or 31 January


def test_month_lengths_from_a_few_start_years_are_those_of_the_whole_cycle():
    from rxwatch.compiler.verify.calendar import month_spans, month_spans_full, span_days

    for ms in [(1,), (6,), (1, 2), (6, 12), (3, 6, 9), (11, 13), (24,), (48,), (1, 12, 36), (59, 61)]:
        spans = month_spans(ms)
        assert set(spans) == set(month_spans_full(ms)), ms
        for lengths, start in spans.items():  # each start date really gives its lengths
            assert tuple(span_days(start, m) for m in ms) == lengths
            assert tuple((start + relativedelta(months=m) - start).days for m in ms) == lengths


def test_since_an_action_never_recommended_is_unknown():
    text = small("when since(never) < 6 months -> b\notherwise stay").replace('action start "start"', 'action start "start"\naction never "never done"')
    got = {f.code for f in findings(text)}
    assert "E606" in got


def test_windows():
    base = small("otherwise stay")
    assert ("E621", 15) in codes(base.replace("due 1..2 weeks", "due 2..1 weeks"))
    assert ("W622", 15) in codes(base.replace("due 1..2 weeks", "due 0..0 days"))
    assert ("W622", 15) in codes(base.replace("due 1..2 weeks", "due within 0 weeks"))
    assert not {c for c, _ in codes(base)} & {"E621", "W622"}


def test_a_loop_broken_by_a_variable_is_not_a_loop():
    text = small("otherwise stay").replace(
        "  on event ev { otherwise -> b cite s }",
        "  on event ev { otherwise -> b cite s }\n  on fact { when not flag -> a cite s { set flag = true } }",
    )
    assert "E620" not in {c for c, _ in codes(text)}
    looping = text.replace("set flag = true", "set flag = false")
    (f,) = [f for f in findings(looping) if f.code == "E620"]
    assert "a -> a" in f.message


def test_a_loop_through_an_if_and_a_choice():
    text = small("otherwise stay").replace(
        "  on event ev { otherwise -> b cite s }",
        "  on event ev { otherwise -> b cite s }\n  on fact { when not flag -> a cite s { if sex == male { set flag = true } } }",
    )
    (f,) = [f for f in findings(text) if f.code == "E620"]
    assert f.example.facts["sex"] == "female"


def test_timer_zero_days_loop_and_the_rules_tried_before_it():
    text = small("otherwise stay").replace(
        "  on event ev { otherwise -> b cite s }",
        "  on event ev { otherwise -> b cite s }\n  after 0 days { otherwise -> a cite s }",
    )
    assert "E620" in {c for c, _ in codes(text)}
    # an `on fact` rule that leaves first, whatever the inputs, breaks it
    fixed = text.replace("  after 0 days", "  on fact { otherwise -> b cite s }\n  after 0 days")
    assert "E620" not in {c for c, _ in codes(fixed)}


# ---------------------------------------------------------------- reachability and hygiene


def test_unsatisfiable_timer_keeps_its_target_unreachable():
    text = small("otherwise stay").replace("terminal state b", 'state c "c" { on panel { otherwise -> b cite s } }\nterminal state b').replace(
        "  on event ev { otherwise -> b cite s }", "  on event ev { otherwise -> b cite s }\n  after 2 weeks since nothing_done { otherwise -> c cite s }"
    ).replace('action start "start"', 'action start "start"\naction nothing_done "x"')
    got = codes(text)
    assert ("E623", 21) in got and ("E610", 23) in got


def test_hygiene_findings():
    got = {(f.code, f.message.split(" ")[1]) for f in findings(small("otherwise stay"))}
    # sex is declared but never read; flag is read nowhere; INR and AST are ordered, so used
    assert ("W630", "'sex'") in got and ("W630", "'flag'") in got and ("W630", "'tx'") in got
    assert not any(name in ("'ALT'", "'AST'", "'INR'") for code, name in got if code == "W630")


def test_analysis_that_the_solver_cannot_finish_is_reported(monkeypatch):
    from rxwatch.compiler.verify import prover

    def gives_up(self, *formulas):
        raise prover.Unknown("timeout")

    monkeypatch.setattr(prover.Prover, "holds", gives_up)
    fs = findings(small("when alt > 3 -> b\nwhen alt <= 3 stay"))
    assert [f.code for f in fs if f.code == "W609"] == ["W609"]


def test_a_question_over_its_budget_of_work_is_reported_not_guessed(monkeypatch):
    """The budget is counted work (z3's rlimit), not seconds: the same findings on any machine."""
    from rxwatch.compiler.verify import prover

    monkeypatch.setattr(prover, "Z3_RLIMIT", 1)
    fs = findings(small("when alt > 3 -> b\nwhen alt <= 3 stay"))
    w609 = [f for f in fs if f.code == "W609"]
    assert w609 and all("its budget of work ran out" in f.message for f in w609)
    monkeypatch.setattr(prover, "Z3_RLIMIT", 50_000_000)
    assert not [f for f in findings(small("when alt > 3 -> b\nwhen alt <= 3 stay")) if f.code == "W609"]


def test_findings_are_deterministic():
    text = (CORPUS / "W603-order-decides.rxw").read_text(encoding="utf-8")
    a = [(f.code, f.line, f.message) for f in findings(text)]
    b = [(f.code, f.line, f.message) for f in findings(text)]
    assert a == b


def test_findings_do_not_depend_on_the_hash_seed(tmp_path):
    """networkx and Python sets iterate in hash order: the findings must not."""
    import os
    import subprocess
    import sys

    files = [str(CORPUS / n) for n in ("E620-zero-time-loop-timers.rxw", "W603-order-decides.rxw", "E613-stuck.rxw", "E601-gap-regions.rxw")]
    script = ("import sys\nfrom rxwatch.compiler import compile_file\nfrom rxwatch.compiler.verify import explain_text\n"
              "for f in sys.argv[1:]:\n    for d in compile_file(f).diagnostics: print(d.code, d.span.line, d.message)\n"
              "    print(explain_text(compile_file(f, verify=False).graph))\n")
    outs = set()
    for seed in ("1", "2", "3"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        outs.add(subprocess.run([sys.executable, "-c", script, *files], env=env, capture_output=True, text=True, check=True).stdout)
    assert len(outs) == 1


def test_json_output_of_check_carries_the_codes(capsys):
    from rxwatch.cli.main import main

    main(["check", "-f", "json", str(CORPUS / "E604-shadowed.rxw")])
    data = json.loads(capsys.readouterr().out)
    assert [(d["code"], d["line"], d["severity"]) for d in data if d["code"].startswith("E6")] == [("E604", 99, "error")]


def test_dates_of_examples_are_real_dates():
    (f,) = table("when since(start) < 6 months -> b\nwhen since(start) >= 183 days stay\notherwise stay")
    assert isinstance(f.example.today, datetime.date) and isinstance(f.example.last["start"], datetime.date)


def test_an_expression_too_deep_for_the_verifier_is_a_warning_not_a_crash():
    graph = graph_of(small("when alt > 3 -> b\nwhen alt <= 3 stay"))
    deep = {"op": "num", "value": 1}
    for _ in range(5000):
        deep = {"op": "+", "args": [deep, {"op": "num", "value": 1}]}
    edges = {k: d for _, _, k, d in graph.edges(keys=True, data=True)}
    edges["a/0/0"]["guard"] = {"op": "compare", "ops": [">"], "args": [{"op": "let", "name": "alt"}, deep]}
    fs = analyse(graph)
    assert [f.code for f in fs if f.code == "W609"] == ["W609"]
    assert "too deep" in explain_text(graph) or "nested too deeply" in explain_text(graph)


def test_a_loop_on_entry_reads_since_entry_as_zero_days():
    # rules tried at entry run on the day the state is entered: since entry is 0 days there
    text = small("otherwise stay").replace(
        "  on event ev { otherwise -> b cite s }",
        "  on event ev { otherwise -> b cite s }\n  on fact { when since entry < 1 days -> a cite s }",
    )
    (f,) = [f for f in findings(text) if f.code == "E620"]
    assert "a -> a" in f.message
    waits = text.replace("when since entry < 1 days -> a", "when since entry >= 1 days -> a")
    assert "E620" not in {c for c, _ in codes(waits)}


def test_a_loop_takes_the_else_of_an_unknown_condition():
    # flag2 has no default and is set from ALT: unknown without ALT, so `if flag2` takes the
    # else, which keeps the loop going
    text = small("otherwise stay").replace(
        "  on event ev { otherwise -> b cite s }",
        "  on event ev { otherwise -> b cite s }\n  on fact { when not flag -> a cite s { set flag2 = alt > 1 if flag2 { set flag = true } } }",
    ).replace('var flag "a flag" bool default false', 'var flag "a flag" bool default false\nvar flag2 "another" bool')
    (f,) = [f for f in findings(text) if f.code == "E620"]
    assert f.example.panel["ALT"] is None or f.example.panel["ALT"] <= 40
