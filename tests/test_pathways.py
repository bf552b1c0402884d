"""Every state, action, source, lab, fact and event of each pathway document is in its compiled
protocol, and every name the document writes in `backticks` is one the protocol declares.

The documents (copied into tests/data/pathways/, see the README there) are what the clinical
authors hand over; their tables and lists are parsed here, not retyped, so that a change in a
document shows up as a failing test until the protocol follows.

Every document has its protocol: anakinra (liver and, as a parallel track, neutrophils),
leflunomide, and tocilizumab (three tracks and a drug with two dose levels). A document's states
are those it names: the numbered list of a "States" section, and the `states ...` a part lists
("Part B: ... states `neutrophils_routine`, ..."); tocilizumab's document names none (its
states are the protocol's reading of the label's tables, checked by its scenario suite).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import pytest

from conftest import PROTOCOLS_DIR, REPO_ROOT
from rxwatch.compiler import compile_file
from rxwatch.compiler.ir import exact

PATHWAYS = Path(__file__).parent / "data" / "pathways"
ALL_DOCS = sorted(p for p in PATHWAYS.glob("*.md") if p.name != "README.md")

DOCS = ALL_DOCS
# Words a document writes in backticks that are not names the protocol declares.
NOT_NAMES = {
    "anakinra-hepatotoxicity": {
        "otherwise": "the language's keyword, in 'neither does `otherwise`'",
        "incomplete": "a deviation kind of the trace",
    },
    "leflunomide-hepatotoxicity": {
        "recovered": "v1's name of `stopped_for_good` ('v2 renamed from `recovered`')",
        "incomplete": "a deviation kind of the trace",
    },
    "tocilizumab-monitoring": {
        "dose": "the drug's dose level, read as `dose(tocilizumab)`: `drug tocilizumab doses 8, 4 unit \"mg/kg\"`",
    },
}


@dataclass
class Pathway:
    name: str
    text: str = ""
    sources: dict[str, str] = field(default_factory=dict)  # id -> kind
    actions: list[str] = field(default_factory=list)  # as listed in an Actions section (if any)
    labs: dict[str, dict] = field(default_factory=dict)  # name -> {"unit", "uln", "molar_mass"} as written
    facts: dict[str, object] = field(default_factory=dict)  # name -> default
    members: dict[str, list[str]] = field(default_factory=dict)  # enumeration fact -> members
    events: list[str] = field(default_factory=list)
    states: list[str] = field(default_factory=list)
    initial: list[str] = field(default_factory=list)
    terminal: list[str] = field(default_factory=list)
    part_states: dict[str, list[str]] = field(default_factory=dict)  # "Part B: ..." -> the states it names
    fulfilled_by: dict[str, list[list[str]]] = field(default_factory=dict)  # action -> labs that fulfil it
    lookback_days: int | None = None
    reminder_weeks: int | None = None


def sections(text: str) -> dict[str, str]:
    """`## Heading` -> the text under it."""
    out: dict[str, str] = {}
    for part in re.split(r"^## ", text, flags=re.M)[1:]:
        heading, _, body = part.partition("\n")
        out[heading.strip()] = body
    return out


def section(sec: dict[str, str], prefix: str) -> str:
    return next((body for heading, body in sec.items() if heading.startswith(prefix)), "")


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


def _number(text: str) -> Fraction:
    return Fraction(text)


def parse_pathway(path: Path) -> Pathway:
    text = path.read_text(encoding="utf-8")
    sec = sections(text)
    pw = Pathway(path.stem, text)
    for row in table(section(sec, "Sources"), "id"):
        for sid in ticked(row[0]):
            pw.sources[sid] = row[2]
    inputs = sec["Inputs"]
    listed = section(sec, "Actions")
    if not listed:  # "Actions: `order_lfts` (ALT, AST), `order_cbc` (ANC, PLT), ...." in Inputs
        m = re.search(r"\bActions:\s+(.+?\.)(?:\s|$)", inputs, flags=re.S)
        listed = m.group(1) if m else ""
    pw.actions = [a for a in ticked(listed) if a not in NOT_NAMES.get(path.stem, {})]
    lab_rows = table(inputs, "lab")
    if lab_rows:  # | `ALT`, `AST` | meaning | U/L | ULN 40 |
        for row in lab_rows:
            unit = None if row[2] == "none" else row[2].split()[0]
            mass = re.search(r"molar mass ([\d.]+)", row[2])
            uln = re.match(r"ULN ([\d.]+)", row[3])
            for name in ticked(row[0]):
                pw.labs[name] = {"unit": unit, "uln": uln and _number(uln.group(1)),
                                 "molar_mass": mass and _number(mass.group(1))}
    else:  # Labs: `ALT`, `AST` (U/L, ULN 40), `TBIL` (mg/dL, ULN 1.2); `ANC` (/mm3; also ...).
        m = re.search(r"^Labs: (.+?\))\.(?:\s|$)", inputs, flags=re.M | re.S)
        pending: list[str] = []
        for tick, unit, uln in re.findall(r"`(\w+)`|\(([^,();]+)(?:, ULN ([\d.]+))?[;)]", m.group(1)):
            if tick:
                pending.append(tick)
                continue
            for name in pending:
                pw.labs[name] = {"unit": unit.strip(), "uln": _number(uln) if uln else None, "molar_mass": None}
            pending = []
    _parse_facts(pw, re.search(r"Facts\b(.*?)(?:Events:|Actions:|$)", inputs, flags=re.S).group(1))
    events = re.search(r"Events: (.+?\.)(?:\s|$)", inputs, flags=re.S)
    pw.events = ticked(events.group(1)) if events else []
    states = section(sec, "States")
    # "1. `baseline` (initial). ...", also two on one line: "3. `early_check`, 4. `maintenance`: ..."
    items = list(re.finditer(r"(?:^|, )\d+\. `(\w+)`", states, flags=re.M))
    for m, nxt in zip(items, [*items[1:], None]):
        item = states[m.end():nxt.start() if nxt else len(states)]
        pw.states.append(m.group(1))
        if item.startswith(" (initial"):
            pw.initial.append(m.group(1))
        if item.startswith(" (terminal"):
            pw.terminal.append(m.group(1))
    # "## Part B: neutrophils, ...": "- Actions: `order_anc` (...), `evaluate_infection_risk`; states `a`, `b`, `c`."
    for heading, body in sec.items():
        if heading.startswith("Part "):
            m = re.search(r"\bstates ((?:`\w+`(?:,\s+|,?\s+and\s+)?)+)", body)
            pw.part_states[heading] = ticked(m.group(1)) if m else []
    for action, first, second in re.findall(r"`(\w+)`[^`]*?fulfilled by an? (\w+)(?: or (\w+))? result", text):
        pw.fulfilled_by[action] = [[first]] + ([[second]] if second else [])
    m = re.search(r"fulfils the liver order:\*\* a result of (\w+) or (\w+)", text) or re.search(
        r"liver order fulfilled by a result of (\w+) or (\w+)", text)
    if m:
        pw.fulfilled_by["(liver order)"] = [[m.group(1)], [m.group(2)]]
    m = re.search(r"most recent result within the last (\d+) days", text)
    pw.lookback_days = int(m.group(1)) if m else None
    m = re.search(r"again every (\d+) weeks", text) or re.search(r"repeated every (\d+) weeks", text)
    pw.reminder_weeks = int(m.group(1)) if m else None
    return pw


def _parse_facts(pw: Pathway, body: str) -> None:
    """`name` ... [default], `a`, `b` [all false]; `e` one of `x`, `y` [x]."""
    pending: list[str] = []
    enum: str | None = None
    for tick, default, one_of in re.findall(r"`(\w+)`|\[([^\]]+)\]|(one of)", body):
        if one_of:
            enum = pending.pop()
            pw.members[enum] = []
        elif tick:
            (pw.members[enum] if enum else pending).append(tick)
        elif default == "default":
            continue  # the heading's "[default]"
        elif enum:
            pw.facts[enum] = default
            enum = None
        else:
            value = {"false": False, "true": True}[default.removeprefix("all ")]
            pw.facts.update({name: value for name in pending})
            pending = []


def protocol_for(doc: Path) -> Path:
    return PROTOCOLS_DIR / (doc.stem.replace("-", "_") + ".rxw")


@pytest.fixture(scope="module", params=DOCS, ids=lambda p: p.stem)
def case(request):
    doc = request.param
    # names only: whether the protocol verifies is `rxwatch check`'s and test_scenarios' question
    result = compile_file(str(protocol_for(doc)), verify=False)
    assert result.ok, [d.message for d in result.diagnostics if d.is_error]
    return parse_pathway(doc), result.graph


def used_actions(g) -> set[str]:
    def walk(actions):
        for a in actions:
            if a["kind"] == "do":
                yield a["action"]
            elif a["kind"] == "one_of":
                yield from a["options"]
                for alt in a.get("alternatives") or ():  # a choice with consequences: each its actions
                    yield from walk(alt.get("actions") or ())
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


def declared_names(g) -> set[str]:
    gg = g.graph
    names = set(g.nodes)  # states and tracks
    for key in ("sources", "labs", "facts", "vars", "events", "actions", "lets"):
        names.update(gg[key])
    for key in ("drugs", "blocks"):  # rxwatch-graph/3
        names.update(gg.get(key) or ())
    for fact in gg["facts"].values():
        names.update(fact.get("members") or ())
    return names


def test_the_documents_were_parsed():
    """Guards the parser above: an empty list would make every other test pass vacuously."""
    assert len(DOCS) >= 2
    for doc in DOCS:
        pw = parse_pathway(doc)
        assert len(pw.sources) >= 3 and pw.labs and pw.facts, pw
        assert protocol_for(doc).exists(), f"{doc.name} has no protocol {protocol_for(doc).name}"
        if doc.stem == "tocilizumab-monitoring":
            continue  # no States section, no events; its own checks below
        assert len(pw.states) >= 5 and pw.events and len(pw.initial) == 1 and pw.terminal, pw
        assert "(liver order)" in pw.fulfilled_by and pw.reminder_weeks, pw
    anakinra = parse_pathway(PATHWAYS / "anakinra-hepatotoxicity.md")
    assert anakinra.members["indication"][:2] == ["rheumatoid_arthritis", "stills_disease"]
    assert anakinra.facts["gilbert_syndrome"] is False and anakinra.facts["indication"] == "other"
    assert anakinra.labs["TBIL"] == {"unit": "mg/dL", "uln": Fraction(6, 5), "molar_mass": Fraction("584.66")}
    assert anakinra.labs["INR"] == {"unit": None, "uln": None, "molar_mass": None}
    assert len(anakinra.states) == 10 and anakinra.terminal == ["off_treatment"]
    assert anakinra.labs["ANC"] == {"unit": "10*9/L", "uln": None, "molar_mass": None}  # part B
    assert anakinra.part_states == {"Part B: neutrophils, a parallel track (v2)":
                                    ["neutrophils_routine", "neutropenia_watch", "neutropenia_stopped"]}
    assert anakinra.fulfilled_by["order_anc"] == [["ANC"]]
    assert anakinra.fulfilled_by["order_bilirubin_inr"] == [["TBIL"], ["INR"]] and anakinra.lookback_days == 3
    leflunomide = parse_pathway(PATHWAYS / "leflunomide-hepatotoxicity.md")
    assert leflunomide.labs["AST"] == {"unit": "U/L", "uln": 40, "molar_mass": None}
    assert leflunomide.facts == {"liver_disease": False, "mtx_or_immunosuppressant": False}
    assert "no_washout" in leflunomide.actions and "incomplete" not in leflunomide.actions
    assert len(leflunomide.states) == 11 and leflunomide.terminal == ["contraindicated", "stopped_for_good"]
    tocilizumab = parse_pathway(PATHWAYS / "tocilizumab-monitoring.md")
    assert tocilizumab.labs["ANC"] == {"unit": "/mm3", "uln": None, "molar_mass": None}
    assert tocilizumab.labs["PLT"]["unit"] == "/mm3" and tocilizumab.labs["ALT"]["uln"] == 40
    assert tocilizumab.facts == {"dmard_comedication": True} and tocilizumab.events == []
    assert len(tocilizumab.actions) == 10 and tocilizumab.actions[-1] == "discontinue_tocilizumab"


def atomic_states(g) -> list[str]:
    """The states a patient can be in (not the compound and parallel states, not the tracks),
    in the order of the file."""
    return [n for n, t in sorted(g.nodes(data="type", default="atomic"), key=lambda nt: g.nodes[nt[0]].get("doc_order", 0))
            if t == "atomic"]


def test_every_state_is_a_node(case):
    """The document's states are the protocol's atomic states, in the document's order; the
    ones a part names (part B) too; nothing else."""
    pw, g = case
    atomic = atomic_states(g)
    named = pw.states + [s for states in pw.part_states.values() for s in states]
    assert [s for s in atomic if s in pw.states] == pw.states
    if pw.states:  # tocilizumab's document names no states
        assert set(atomic) == set(named)
    top = {n for n, parent in g.nodes(data="parent", default=None) if parent is None}
    assert [n for n, k in g.nodes(data="kind") if k == "initial" and n in top] == pw.initial or not pw.states
    assert set(pw.terminal) <= {n for n, k in g.nodes(data="kind") if k == "terminal"}


def test_part_b_is_a_track_beside_the_liver():
    """Anakinra part B: the neutrophil states run in a track beside the liver's, under one
    parallel state; the stop below 1.0 leaves both (a top-level state)."""
    g = compile_file(str(protocol_for(PATHWAYS / "anakinra-hepatotoxicity.md")), verify=False).graph
    nodes = g.nodes
    assert nodes["neutrophils_routine"]["track"] == nodes["neutropenia_watch"]["track"] == "neutrophils"
    assert nodes["early_check"]["track"] == nodes["persistent_elevation"]["track"] == "liver"
    assert nodes["neutrophils"]["parent"] == nodes["liver"]["parent"] and nodes[nodes["liver"]["parent"]]["type"] == "parallel"
    assert nodes["neutropenia_stopped"]["parent"] is None and nodes["stopped"]["parent"] is None
    assert set(g.graph["drugs"]) == {"anakinra"} and g.graph["drugs"]["anakinra"]["doses"] == ["daily", "alternate_days"]


def test_every_name_in_the_document_is_declared(case):
    """Every `name` the document writes is a state, action, lab, fact (or member), event,
    source, let or var of the protocol; the few words that are not are listed in NOT_NAMES."""
    pw, g = case
    exceptions = NOT_NAMES.get(pw.name, {})
    undeclared = set(ticked(pw.text)) - declared_names(g) - set(exceptions)
    assert undeclared == set()
    assert set(exceptions) & declared_names(g) == set(), "an exception the protocol now declares"


def test_every_action_is_declared_and_used(case):
    pw, g = case
    # the Actions section's list; a document without one names its actions in its text
    named = set(pw.actions) if pw.actions else set(ticked(pw.text)) & set(g.graph["actions"])
    assert named <= set(g.graph["actions"])
    assert named - used_actions(g) == set()
    assert len(named) >= 10


def test_orders_are_fulfilled_as_the_document_says(case):
    pw, g = case
    actions = g.graph["actions"]
    liver = [a for a, attrs in actions.items() if "ALT" in (attrs.get("orders") or ())]
    assert liver
    # tocilizumab takes the anakinra pathway's rules on what fulfils an order
    rule = pw.fulfilled_by.get("(liver order)") or parse_pathway(PATHWAYS / "anakinra-hepatotoxicity.md").fulfilled_by["(liver order)"]
    for name in liver:  # "the liver order is fulfilled by a result of ALT or AST"
        assert sorted(actions[name]["fulfilled_by"]) == sorted(rule), name
    for name, labs in pw.fulfilled_by.items():
        if name != "(liver order)":
            assert sorted(actions[name]["fulfilled_by"]) == sorted(labs), name


def test_lookback_and_reminders(case):
    """Results valid for N days and reminders every N weeks; leflunomide and tocilizumab take the
    anakinra pathway's rules on missing, early, split and duplicate results."""
    pw, g = case
    anakinra = parse_pathway(PATHWAYS / "anakinra-hepatotoxicity.md")
    days = pw.lookback_days or anakinra.lookback_days
    weeks = pw.reminder_weeks or anakinra.reminder_weeks
    assert g.graph["results_valid"]["amount"] == days and g.graph["results_valid"]["unit"] in ("day", "days")
    assert g.graph["reminders"]["amount"] == weeks and g.graph["reminders"]["unit"] in ("week", "weeks")
    assert "rxwatch-convention" in g.graph["results_valid"]["sources"] + g.graph["reminders"]["sources"]


def test_every_source_is_declared_with_its_kind(case):
    pw, g = case
    assert {sid: g.graph["sources"].get(sid, {}).get("kind") for sid in pw.sources} == pw.sources


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.stem)
def test_every_source_is_cited(doc):
    pw = parse_pathway(doc)
    g = compile_file(str(protocol_for(doc)), verify=False).graph
    assert set(pw.sources) - cited_sources(g) == set()


def test_every_lab_is_declared_with_its_unit_and_limit(case):
    pw, g = case
    assert set(pw.labs) <= set(g.graph["labs"])
    for name, want in pw.labs.items():
        lab = g.graph["labs"][name]
        assert lab.get("unit") == want["unit"], name
        if want["uln"] is not None:
            assert exact(lab["uln"]) == want["uln"], name
        if want["molar_mass"] is not None:
            assert exact(lab["molar_mass"]) == want["molar_mass"], name


def test_every_fact_is_declared_with_its_default(case):
    pw, g = case
    facts = g.graph["facts"]
    assert set(pw.facts) <= set(facts)
    for name, default in pw.facts.items():
        assert facts[name]["default"] == default, name
    for name, members in pw.members.items():
        assert facts[name]["members"] == members, name


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
    assert [p.name for p in originals] == [p.name for p in ALL_DOCS]
    for p in originals:
        assert (PATHWAYS / p.name).read_text(encoding="utf-8") == p.read_text(encoding="utf-8"), p.name
