"""The drawing plan: what the flowchart shows, decided once from the compiled graph.

Both writers read it: `dot` turns it into Graphviz, `html` into the viewer's data. It holds
no markup, only clinician text (from `labels`) and the ids that tie drawn things to rules.

- a **box** per state: its description, its entry actions, its severity (see `tone`), and one
  **decision** per handler: what sets it off ("Lab results", "Event: jaundice") and its rules
  as numbered rows, checked in order ("1 severe -> stopped", ..., "4 otherwise -> maintenance");
- an **arrow** per rule that leads to another state, leaving from the rule's row; a rule that
  stays (or re-enters its own state) is its row alone;
- a handler that several states hold identically (same trigger, rules, targets, actions and
  sources: "jaundice -> stopped" in every on-treatment state) is drawn once, in a dashed
  **shared-rules** box (A, B, ...) that those states point to, with its own arrows;
- the boxes' **reading order**: a breadth-first walk from the initial state, the ends last
  (`layout` cuts it into rows to fit the page).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from .labels import Labels, Line, duration
from .missing import Analyser, Missing
from .tone import declared, tones

GROUP_MIN = 3  # states that must share a handler for it to be drawn once on a group box


@dataclass
class Row:
    """One rule in a decision."""

    port: str  # the row's id: arrows leave from it
    number: str  # "1", "2", ... ("" when the handler has one rule)
    guard: str  # clinician text; "otherwise" for the fall-through; "" for an unguarded lone rule
    target: str
    stay: bool  # stays without re-entering (entry actions not repeated)
    reenter: bool  # leads back to its own state (entry actions repeat)
    actions: list[Line]
    sources: list[str]
    rules: list[str]  # rule keys (several when the decision is shared by a group)


@dataclass
class Decision:
    trigger: str  # "Lab results", "Event: jaundice or encephalopathy", ...
    ordered: bool  # the first rule that holds applies
    rows: list[Row]
    missing: Missing | None = None  # what missing results do to it (None: its rules read no lab)
    handlers: list[tuple[str, int]] = field(default_factory=list)  # the (state, handler index) it draws


@dataclass
class Box:
    id: str
    state: str
    title: str
    kind: str  # initial / normal / terminal
    severity: int  # 0..3: none, mild, moderate, severe (see `tone`)
    entry: list[Line]
    sources: list[str]
    decisions: list[Decision]
    group: str | None = None  # the letter of the shared rules it also has


@dataclass
class Group:
    """Rules that several states hold identically, drawn once."""

    id: str  # "shared_A"
    letter: str  # "A"
    states: list[str]
    decisions: list[Decision]


@dataclass
class Arrow:
    id: str
    tail: str  # a state or a group
    port: str  # the row it leaves from
    head: str
    rules: list[str]


@dataclass
class Definition:
    name: str
    description: str
    lines: list[str]  # the definition, one alternative per line
    sources: list[str]


@dataclass
class Order:
    """An action that orders labs, and what fulfils it."""

    name: str
    description: str
    labs: list[str]
    fulfilled_by: str  # "ALT or AST"
    sources: list[str]


@dataclass
class Setting:
    """A protocol-wide setting the chart states in its header."""

    text: str  # "Results valid for 3 days: a result counts on its day and the 3 days after"
    sources: list[str]
    declared: bool  # written in the protocol (else the language's default)


@dataclass
class Plan:
    name: str
    title: str
    version: str
    status: str
    description: str
    boxes: list[Box]
    groups: list[Group]
    arrows: list[Arrow]
    definitions: list[Definition]
    references: list[str]  # source ids in citation order
    severity_declared: bool  # the protocol says how serious its states are; else derived
    labels: Labels
    settings: list[Setting] = field(default_factory=list)
    orders: list[Order] = field(default_factory=list)  # the ordering actions the chart uses
    edges: dict[str, tuple] = field(default_factory=dict)  # rule key -> (from, to, the edge's data)
    order: list[str] = field(default_factory=list)  # boxes in reading order (`layout` cuts it into rows)
    arrow_of_rule: dict[str, str] = field(default_factory=dict)  # rule key -> arrow id
    row_of_rule: dict[str, str] = field(default_factory=dict)  # rule key -> row port


def _strip(x):
    if isinstance(x, dict):
        return {k: _strip(v) for k, v in x.items() if k != "span"}
    if isinstance(x, list):
        return [_strip(v) for v in x]
    return x


def build(graph) -> Plan:
    L = Labels(graph)
    g = graph.graph
    edges = {k: (u, v, d) for u, v, k, d in graph.edges(keys=True, data=True)}
    severity = tones(graph)
    analyse = Analyser(graph)

    # handlers held identically by several states: drawn once, on a group box
    def signature(state: str, h: dict) -> str | None:
        rules = []
        for key in h["rules"]:
            _, v, d = edges[key]
            if d["stay"] or v == state:
                return None
            rules.append([v, d["because"], d["guard"], _strip(d["actions"]), d["sources"]])
        head = {k: h.get(k) for k in ("trigger", "events", "facts", "timer", "mode")}
        return json.dumps([head, rules], sort_keys=True)

    holders: dict[str, list[tuple[str, int]]] = {}
    for state, data in graph.nodes(data=True):
        for hi, h in enumerate(data.get("handlers", ())):
            sig = signature(state, h) if h["rules"] else None
            if sig is not None:
                holders.setdefault(sig, []).append((state, hi))
    groups: list[Group] = []
    group_of_state: dict[str, str] = {}
    shared: dict[tuple[str, int], tuple[Group, list[tuple[str, int]]]] = {}
    for sig, hs in sorted(holders.items(), key=lambda kv: (-len(kv[1]), kv[1])):
        states = [s for s, _ in hs]
        if len(states) < GROUP_MIN or len(set(states)) != len(states):
            continue
        if {edges[k][1] for s, hi in hs for k in graph.nodes[s]["handlers"][hi]["rules"]} & set(states):
            continue  # a rule leading inside the group cannot leave from its border
        grp = next((gr for gr in groups if set(gr.states) == set(states)), None)
        if grp is None:
            if any(s in group_of_state for s in states):
                continue  # overlaps another group: drawn in each state instead
            letter = chr(ord("A") + len(groups)) if len(groups) < 26 else str(len(groups) + 1)
            grp = Group(f"shared_{letter}", letter, states, [])
            groups.append(grp)
            group_of_state.update((s, grp.letter) for s in states)
        for s, hi in hs:
            shared[(s, hi)] = (grp, hs)

    arrows: list[Arrow] = []
    plan_rows: dict[str, str] = {}
    arrow_of_rule: dict[str, str] = {}

    def decision(owner: str, hi: int, h: dict, per_row: list[list[str]], handlers: list[tuple[str, int]]) -> Decision:
        rows = []
        n = len(per_row)
        for ri, keys in enumerate(per_row):
            src, v, d = edges[keys[0]]
            port = f"{owner}__{hi}_{ri}"
            reenter = v == src and not d["stay"]
            row = Row(
                port=port,
                number=str(ri + 1) if n > 1 else "",
                guard="otherwise" if d["otherwise"] and n > 1 else "" if d["otherwise"] else L.expr(d["guard"]),
                target=v,
                stay=bool(d["stay"]),
                reenter=reenter,
                actions=L.action_lines(d["actions"], full=False),
                sources=list(d["sources"]),
                rules=list(keys),
            )
            rows.append(row)
            for k in keys:
                plan_rows[k] = port
            if not row.stay and not reenter:
                a = Arrow(f"arrow_{len(arrows)}", owner, port, v, list(keys))
                arrows.append(a)
                for k in keys:
                    arrow_of_rule[k] = a.id
        guards = [edges[keys[0]][2]["guard"] for keys in per_row]
        return Decision(L.trigger(h), h.get("mode") in ("ordered", "first") and n > 1, rows,
                        analyse(guards, h.get("mode")), handlers)

    boxes: list[Box] = []
    for state, data in graph.nodes(data=True):
        decisions = []
        for hi, h in enumerate(data.get("handlers", ())):
            if not h["rules"]:
                continue
            if (state, hi) in shared:
                grp, hs = shared[(state, hi)]
                if (state, hi) == hs[0]:
                    per_row = [list(ks) for ks in zip(*(graph.nodes[s]["handlers"][i]["rules"] for s, i in hs))]
                    grp.decisions.append(decision(grp.id, len(grp.decisions), h, per_row, list(hs)))
                continue
            decisions.append(decision(state, hi, h, [[k] for k in h["rules"]], [(state, hi)]))
        boxes.append(
            Box(
                id=state,
                state=state,
                title=data.get("description") or state.replace("_", " "),
                kind=data.get("kind", "normal"),
                severity=severity[state],
                entry=L.action_lines(data.get("entry", []), full=False),
                sources=list(data.get("sources", [])),
                decisions=decisions,
                group=group_of_state.get(state),
            )
        )

    definitions = []
    for name, let in g.get("lets", {}).items():
        lines = L.disjuncts(let["expr"]) if let.get("type") == "bool" else [L.value(let["expr"])]
        definitions.append(Definition(name, let.get("description") or "", lines, list(let.get("sources", []))))

    return Plan(
        name=g.get("name", ""),
        title=g.get("title") or g.get("name", ""),
        version=g.get("version", ""),
        status=g.get("status", ""),
        description=g.get("description", ""),
        boxes=boxes,
        groups=groups,
        arrows=arrows,
        definitions=definitions,
        references=list(g.get("sources", {})),
        severity_declared=declared(graph),
        labels=L,
        settings=settings(g),
        orders=orders(graph, L),
        edges=edges,
        order=reading_order(graph, groups),
        arrow_of_rule=arrow_of_rule,
        row_of_rule=plan_rows,
    )


def orders(graph, L: Labels) -> list[Order]:
    """The actions that order labs and that the protocol recommends (declaration order)."""
    todo = [a for _, d in graph.nodes(data=True) for a in d.get("entry", ())]
    todo += [a for _, _, d in graph.edges(data=True) for a in d.get("actions", ())]
    used: set[str] = set()
    while todo:
        a = todo.pop()
        if a["kind"] == "do":
            used.add(a["action"])
        elif a["kind"] == "one_of":
            used.update(a["options"])
        elif a["kind"] == "if":
            todo += list(a["then"]) + list(a["else"])
    out = []
    for name, decl in graph.graph.get("actions", {}).items():
        if decl.get("orders") and name in used:
            out.append(Order(name, L.action_text(name), list(decl["orders"]), L.fulfilled_by(name),
                             list(decl.get("sources", []))))
    return out


def settings(g: dict) -> list[Setting]:
    """How long results stay valid and how often an overdue order is flagged again."""
    out = []
    valid = g.get("results_valid")
    if valid and valid.get("amount"):
        d = duration(valid["amount"], valid["unit"])
        out.append(Setting(f"Results valid for {d}: a result counts on its day and the {d} after",
                           list(valid.get("sources", [])), True))
    else:
        out.append(Setting("Results count on their own day only: a panel is one day's results",
                           list((valid or {}).get("sources", [])), bool(valid)))
    reminders = g.get("reminders")
    if reminders and reminders.get("amount"):
        out.append(Setting(f"Overdue orders flagged again every {duration(reminders['amount'], reminders['unit'])}",
                           list(reminders.get("sources", [])), True))
    else:
        out.append(Setting("Overdue orders flagged once", [], False))
    return out


def reading_order(graph, groups: list[Group] = ()) -> list[str]:
    """Box ids in the order the chart reads, from the top left (`layout` cuts it into rows):
    a breadth-first walk from the initial state (declaration order among equals; unreachable
    states next), then the shared-rules boxes, then the terminal states."""
    states = list(graph.nodes)
    initial = graph.graph.get("initial")
    order: list[str] = []
    seen = set()
    frontier = [initial] if initial in graph else []
    seen.update(frontier)
    while frontier:
        order.extend(frontier)
        nxt = []
        for s in frontier:
            for t in sorted(set(graph.successors(s)), key=states.index):
                if t not in seen:
                    seen.add(t)
                    nxt.append(t)
        frontier = nxt
    ends = [s for s in states if graph.nodes[s].get("kind") == "terminal"]
    order = [s for s in order if s not in ends] + [s for s in states if s not in seen and s not in ends]
    return order + [g.id for g in groups] + ends
