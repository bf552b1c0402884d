"""Every state, action, source, lab and event of each pathway document is in its compiled protocol.

The documents (copied into tests/data/pathways/, see the README there) are what the clinical
authors hand over; their tables and lists are parsed here, not retyped, so that a change in a
document shows up as a failing test until the protocol follows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from conftest import PROTOCOLS_DIR, REPO_ROOT
from rxwatch.compiler import compile_file

PATHWAYS = Path(__file__).parent / "data" / "pathways"
DOCS = sorted(p for p in PATHWAYS.glob("*.md") if p.name != "README.md")


@dataclass
class Pathway:
    name: str
    sources: dict[str, str] = field(default_factory=dict)  # id -> kind
    actions: list[str] = field(default_factory=list)
    labs: dict[str, float | None] = field(default_factory=dict)  # name -> default ULN (None: none given)
    events: list[str] = field(default_factory=list)
    states: list[str] = field(default_factory=list)
    initial: list[str] = field(default_factory=list)
    terminal: list[str] = field(default_factory=list)


def sections(text: str) -> dict[str, str]:
    """`## Heading` -> the text under it."""
    out: dict[str, str] = {}
    for part in re.split(r"^## ", text, flags=re.M)[1:]:
        heading, _, body = part.partition("\n")
        out[heading.strip()] = body
    return out


def table(body: str, first_header: str) -> list[list[str]]:
    """The rows of the markdown table whose first header cell is `first_header`."""
    rows, inside = [], False
    for line in body.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.strip().startswith("|") else None
        if cells is None:
            if inside:
                break
            continue
        if not inside:
            inside = cells[0] == first_header
            continue
        if set(cells[0]) <= {"-", ":"}:
            continue
        rows.append(cells)
    return rows


def ticked(text: str) -> list[str]:
    return re.findall(r"`([A-Za-z0-9_.\-]+)`", text)


def parse_pathway(path: Path) -> Pathway:
    text = path.read_text(encoding="utf-8")
    sec = sections(text)
    pw = Pathway(path.stem)
    for row in table(sec["Sources" if "Sources" in sec else next(k for k in sec if k.startswith("Sources"))], "id"):
        (sid,) = ticked(row[0])
        pw.sources[sid] = row[2]
    for row in table(sec["Actions" if "Actions" in sec else next(k for k in sec if k.startswith("Actions"))], "action"):
        pw.actions.extend(ticked(row[0]))
    inputs = sec["Inputs"]
    lab_rows = table(inputs, "lab")
    if lab_rows:
        for row in lab_rows:
            (name,) = ticked(row[0])
            uln = row[3].split()[0]
            pw.labs[name] = None if uln == "none" else float(uln)
    else:
        m = re.search(r"^Labs: (.+?)\.(?:\s|$)", inputs, flags=re.M)
        pw.labs = {name: None for name in ticked(m.group(1))}
    m = re.search(r"[Ee]vents: (.+?\.)(?:\s|$)", inputs)
    pw.events = ticked(m.group(1))
    states = next(body for heading, body in sec.items() if heading.startswith("States"))
    for item in re.split(r"^(?=\d+\. )", states, flags=re.M):
        m = re.match(r"\d+\. `(\w+)`", item)
        if not m:
            continue
        pw.states.append(m.group(1))
        if "(initial" in item:
            pw.initial.append(m.group(1))
        if "(terminal" in item:
            pw.terminal.append(m.group(1))
    return pw


def protocol_for(doc: Path) -> Path:
    return PROTOCOLS_DIR / (doc.stem.replace("-", "_") + ".rxw")


@pytest.fixture(scope="module", params=DOCS, ids=lambda p: p.stem)
def case(request):
    doc = request.param
    result = compile_file(str(protocol_for(doc)))
    assert result.ok, [d.message for d in result.diagnostics if d.is_error]
    return parse_pathway(doc), result.graph


def used_actions(g) -> set[str]:
    def walk(actions):
        for a in actions:
            if a["kind"] == "do":
                yield a["action"]
            elif a["kind"] == "one_of":
                yield from a["options"]
            elif a["kind"] == "if":
                yield from walk(a["then"])
                yield from walk(a["else"])

    found = set()
    for _, attrs in g.nodes(data=True):
        found.update(walk(attrs["entry"]))
    for _, _, e in g.edges(data=True):
        found.update(walk(e["actions"]))
    return found


def cited_sources(g) -> set[str]:
    found = set()
    for _, attrs in g.nodes(data=True):
        found.update(attrs["sources"])
    for _, _, e in g.edges(data=True):
        found.update(e["sources"])
    for let in g.graph["lets"].values():
        found.update(let["sources"])
    return found


def test_the_documents_were_parsed():
    """Guards the parser above: an empty list would make every other test pass vacuously."""
    assert len(DOCS) >= 2
    for doc in DOCS:
        pw = parse_pathway(doc)
        assert len(pw.sources) >= 3 and len(pw.actions) >= 5 and len(pw.states) >= 5, pw
        assert pw.labs and pw.events and len(pw.initial) == 1 and pw.terminal, pw
        assert protocol_for(doc).exists(), f"{doc.name} has no protocol {protocol_for(doc).name}"


def test_every_state_is_a_node(case):
    pw, g = case
    assert pw.states == list(g.nodes)  # the same states, in the document's order
    assert [n for n, k in g.nodes(data="kind") if k == "initial"] == pw.initial
    assert set(pw.terminal) <= {n for n, k in g.nodes(data="kind") if k == "terminal"}


def test_every_action_is_declared_and_used(case):
    pw, g = case
    assert set(pw.actions) <= set(g.graph["actions"])
    assert set(pw.actions) - used_actions(g) == set()


def test_every_source_is_declared_with_its_kind(case):
    pw, g = case
    assert {sid: g.graph["sources"].get(sid, {}).get("kind") for sid in pw.sources} == pw.sources


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.stem)
def test_every_source_is_cited(doc):
    pw = parse_pathway(doc)
    g = compile_file(str(protocol_for(doc))).graph
    assert set(pw.sources) - cited_sources(g) == set()


def test_every_lab_is_declared_with_its_default_uln(case):
    pw, g = case
    assert set(pw.labs) <= set(g.graph["labs"])
    for name, uln in pw.labs.items():
        if uln is not None:
            assert g.graph["labs"][name]["uln"] == uln, name


def test_every_event_is_declared_and_handled(case):
    pw, g = case
    assert set(pw.events) <= set(g.graph["events"])
    handled = {ev for _, _, e in g.edges(data=True) for ev in e["events"]}
    assert set(pw.events) - handled == set()


def test_copies_match_shared():
    """When ../shared is beside the project, the copies here are its current version."""
    shared = REPO_ROOT.parent / "shared" / "pathways"
    if not shared.is_dir():
        pytest.skip("../shared/pathways is not beside the project (a fresh clone): nothing to compare")
    originals = sorted(shared.glob("*.md"))
    assert [p.name for p in originals] == [p.name for p in DOCS]
    for p in originals:
        assert (PATHWAYS / p.name).read_text(encoding="utf-8") == p.read_text(encoding="utf-8"), p.name
