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

from rxwatch.compiler import ir

import json
import re
from dataclasses import dataclass, field

from .labels import OTHERWISE, Labels, Line, duration, grades_line, short
from .missing import Analyser, Missing
from .tone import LEVELS, declared, tones

GROUP_MIN = 3  # states that must share a handler for it to be drawn once on a group box


@dataclass
class Alt:
    """One alternative of a rule's choice (`do one of { A -> s  B -> t }`): its own branch."""

    port: str
    text: str  # the action, as a clinician reads it
    effect: str  # what it does to a drug ("" none)
    target: str
    stay: bool
    reenter: bool
    default: bool  # the first: what happens when no choice is recorded
    actions: list[Line]  # its own actions
    rules: list[str]  # the edge keys of this alternative (one per state holding the rule)
    sources: list[str] = field(default_factory=list)  # the choice's (shown once, on the default)
    citations: list = field(default_factory=list)


@dataclass
class Row:
    """One rule in a decision (or, with `block`, the rules of a rule block used there)."""

    port: str  # the row's id: arrows leave from it
    number: str  # "1", "2", ... ("" when the handler has one rule)
    guard: str  # clinician text; "otherwise" for the fall-through; "" for an unguarded lone rule
    target: str
    stay: bool  # stays without re-entering (entry actions not repeated)
    reenter: bool  # leads back to its own state (entry actions repeat)
    actions: list[Line]
    sources: list[str]
    rules: list[str]  # rule keys (several when the decision is shared by a group)
    citations: list = field(default_factory=list)  # [{"source", "locator"}] of the rule
    block: str | None = None  # "uses BLOCK": the block's rules, drawn once on the block's box
    alternatives: list[Alt] = field(default_factory=list)  # a choice with consequences


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
    type: str = "atomic"  # atomic; compound or parallel: the box heads its cluster (its own rules)
    parent: str | None = None  # the compound or parallel state, or the track, it is drawn in
    citations: list = field(default_factory=list)  # of its entry actions


@dataclass
class Cluster:
    """A compound state, a parallel state or a track, drawn as a frame around what it holds."""

    id: str  # "cluster_<name>"
    state: str  # the state's or track's name
    kind: str  # compound / parallel / track
    title: str
    parent: str | None  # the enclosing state or track (None: the top level)
    header: str | None  # the box of the state's own rules and entry (compound, parallel)
    members: list[str] = field(default_factory=list)  # layout items inside, in reading order


@dataclass
class Block:
    """A named rule block, drawn once; the states that use it say so."""

    id: str  # "block_<name>"
    name: str
    title: str
    users: list[str]
    decisions: list[Decision]


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
    condition: bool = False  # a boolean let: the rules read it as its description


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
    citations: list = field(default_factory=list)


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
    clusters: list[Cluster] = field(default_factory=list)
    blocks: list[Block] = field(default_factory=list)
    tree: dict[str, list[str]] = field(default_factory=dict)  # container ("" the top, or a cluster id) -> items
    drugs: list[Line] = field(default_factory=list)  # the drugs and their dose levels, for the key
    grades: str = ""  # the grades in one line, under the title ("mild ALT or AST >1–3× ULN; ...")
    titles: dict[str, str] = field(default_factory=dict)  # state -> its title as a rule's target
    show_variables: bool = False  # `set` actions shown ("Record: ...")

    def target(self, state: str) -> str:
        """Where a rule leads, as a clinician reads it: the state's short title."""
        return self.titles.get(state) or state.replace("_", " ")


def _strip(x):
    if isinstance(x, dict):
        return {k: _strip(v) for k, v in x.items() if k != "span"}
    if isinstance(x, list):
        return [_strip(v) for v in x]
    return x


def build(graph, show_variables: bool = False) -> Plan:
    """The drawing plan of a compiled graph; `show_variables`: the variables the rules set
    ("Record: ...") are shown (the printed chart leaves them out unless asked)."""
    L = Labels(graph)
    L.show_variables = show_variables
    g = graph.graph
    edges = {k: (u, v, d) for u, v, k, d in graph.edges(keys=True, data=True)}
    severity = tones(graph)
    analyse = Analyser(graph)
    track_about = ir.track_labs(graph)  # a track sees only panels with a result of one of its labs
    # a rule whose choice has alternatives with targets has an edge per alternative (KEY@i)
    alt_keys: dict[str, list[str]] = {}
    for k, (_, _, d) in edges.items():
        if d.get("alternative"):
            alt_keys.setdefault(k.split("@", 1)[0], []).append(k)
    for ks in alt_keys.values():
        ks.sort(key=lambda k: edges[k][2]["alternative"])

    def own_rules(h: dict) -> list[str]:
        return [k for k in h.get("rules") or () if not edges[k][2].get("alternative")]

    # handlers held identically by several states: drawn once, on a group box
    def signature(state: str, h: dict) -> str | None:
        rules = []
        for key in own_rules(h):
            _, v, d = edges[key]
            if d["stay"] or v == state or d.get("block") or key in alt_keys:
                return None
            rules.append([v, d["because"], d["guard"], _strip(d["actions"]), d["sources"], d.get("citations")])
        head = {k: h.get(k) for k in ("trigger", "events", "facts", "timer", "mode")}
        return json.dumps([head, rules], sort_keys=True)

    holders: dict[str, list[tuple[str, int]]] = {}
    for state, data in graph.nodes(data=True):
        if data.get("parent") is not None or data.get("type") not in (None, "atomic"):
            continue  # statecharts write shared handlers once, on the enclosing state
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
    blocks_of = g.get("blocks") or {}

    shared_arrow: dict[tuple[str, str], Arrow] = {}

    def arrow(owner: str, port: str, head: str, keys: list[str], branch: bool = False) -> None:
        """One arrow per box and target: it leaves from the first rule that leads there; a
        later rule to the same state names it in words (fewer arrows, fewer crossings). A
        choice's alternative (`branch`) keeps its own arrow, from its own line."""
        a = None if branch else shared_arrow.get((owner, head))
        if a is None:
            a = Arrow(f"arrow_{len(arrows)}", owner, port, head, [])
            arrows.append(a)
            if not branch:
                shared_arrow[(owner, head)] = a
        a.rules.extend(keys)
        for k in keys:
            arrow_of_rule[k] = a.id

    def rule_row(owner: str, port: str, number: str, n: int, keys: list[str], here: str | None) -> Row:
        """A rule's row; `keys`: the rule's edge in each state that holds it; `here`: the state
        that stays or re-enters (None: a block's rule, which leads where it says)."""
        src, v, d = edges[keys[0]]
        alts = alt_keys.get(keys[0])
        reenter = here is not None and v == src and not d["stay"]
        choice = next((a for a in d["actions"] if a.get("kind") == "one_of" and a.get("alternatives")), None) if alts else None
        actions = [a for a in d["actions"] if a is not choice]
        row = Row(
            port=port,
            number=number,
            guard=(d.get("otherwise_name") or (OTHERWISE if n > 1 else "")) if d["otherwise"] else L.expr(d["guard"]),
            target=v,
            stay=bool(d["stay"]) and not alts,
            reenter=reenter and not alts,
            actions=L.action_lines(actions),
            sources=list(d["sources"]),
            rules=list(keys),
            citations=list(d.get("citations") or ()),
        )
        for k in keys:
            plan_rows[k] = port
        if alts and choice is not None:
            per_alt = [[k] + [x for x in alt_keys.get(k, ())] for k in keys]
            for i, alt in enumerate(choice["alternatives"]):
                akeys = [ks[i] for ks in per_alt if i < len(ks)]
                _, av, ad = edges[akeys[0]]
                stay = bool(ad.get("stay"))
                aport = f"{port}_a{i}"
                a = Alt(aport, L.action_text(alt["action"]), L.effect_text(alt["action"]), av, stay,
                        here is not None and av == src and not stay, i == 0,
                        L.action_lines(alt.get("actions") or []), akeys,
                        list(choice.get("sources") or ()) if i == 0 else [], list(choice.get("citations") or ()) if i == 0 else [])
                row.alternatives.append(a)
                for k in akeys:
                    plan_rows[k] = aport
                if not a.stay and not a.reenter:
                    arrow(owner, aport, av, akeys, branch=True)
        elif not row.stay and not row.reenter:
            arrow(owner, port, v, keys)
        return row

    def decision(owner: str, hi: int, h: dict, per_row: list[list[str]], handlers: list[tuple[str, int]]) -> Decision:
        rows = []
        runs: list[tuple[str | None, list[list[str]]]] = []  # a block's rules make one row
        for keys in per_row:
            d = edges[keys[0]][2]
            b = d.get("block")
            if b and runs and runs[-1][0] == b and not str(d.get("rule", "")).endswith("#0"):
                runs[-1][1].append(keys)
            else:
                runs.append((b, [keys]))
        n = len(runs)
        for ri, (b, rules) in enumerate(runs):
            port = f"{owner}__{hi}_{ri}"
            number = str(ri + 1) if n > 1 else ""
            if b:
                title = (blocks_of.get(b) or {}).get("description") or humanise(b)
                keys = [k for ks in rules for k in ks]
                rows.append(Row(port, number, f"the rules ‘{title}’", "", False, False, [], [], keys, block=b))
                for k in keys:
                    plan_rows[k] = port
            else:
                rows.append(rule_row(owner, port, number, n, rules[0], owner))
        guards = [edges[keys[0]][2]["guard"] for keys in per_row]
        track = graph.nodes[owner].get("track") if owner in graph.nodes else None
        about = track_about.get(track) if track is not None else None
        return Decision(L.trigger(h), h.get("mode") in ("ordered", "first") and n > 1, rows,
                        analyse(guards, h.get("mode"), about), handlers)

    boxes: list[Box] = []
    for state, data in graph.nodes(data=True):
        if data.get("type") == "track":
            continue
        decisions = []
        for hi, h in enumerate(data.get("handlers", ())):
            if not h["rules"]:
                continue
            if (state, hi) in shared:
                grp, hs = shared[(state, hi)]
                if (state, hi) == hs[0]:
                    per_row = [list(ks) for ks in zip(*(own_rules(graph.nodes[s]["handlers"][i]) for s, i in hs))]
                    grp.decisions.append(decision(grp.id, len(grp.decisions), h, per_row, list(hs)))
                continue
            decisions.append(decision(state, hi, h, [[k] for k in own_rules(h)], [(state, hi)]))
        boxes.append(
            Box(
                id=state,
                state=state,
                title=data.get("description") or state.replace("_", " "),
                kind=data.get("kind", "normal"),
                severity=severity[state],
                entry=L.action_lines(data.get("entry", [])),
                sources=list(data.get("sources", [])),
                decisions=decisions,
                group=group_of_state.get(state),
                type=data.get("type") or "atomic",
                parent=data.get("parent"),
            )
        )

    # rule blocks: each drawn once, with its rules' arrows; a rule's row holds its edge in
    # every state that uses the block
    blocks: list[Block] = []
    for name, decl in blocks_of.items():
        canon = list(decl.get("rules") or ())
        by_rule: dict[str, list[str]] = {c: [] for c in canon}
        users: list[str] = []
        for k, (u, _, d) in edges.items():
            if d.get("block") == name and not d.get("alternative") and d.get("rule") in by_rule:
                by_rule[d["rule"]].append(k)
                if u not in users:
                    users.append(u)
        bid = f"block_{name}"
        rows = []
        present = [c for c in canon if by_rule[c]]
        for ri, c in enumerate(present):
            rows.append(rule_row(bid, f"{bid}__0_{ri}", str(ri + 1) if len(present) > 1 else "", len(present), by_rule[c], None))
        guards = [edges[by_rule[c][0]][2]["guard"] for c in present]
        dec = Decision("Its rules, in order, where the block is used", False, rows, analyse(guards, "first"), [])
        blocks.append(Block(bid, name, decl.get("description") or humanise(name), users, [dec] if rows else []))

    definitions = []
    for name, let in g.get("lets", {}).items():
        lines = L.disjuncts(let["expr"]) if let.get("type") == "bool" else [L.value(let["expr"])]
        definitions.append(Definition(name, let.get("description") or "", lines, list(let.get("sources", [])),
                                      let.get("type") == "bool"))

    clusters, tree = containers(graph, boxes, groups, blocks)
    titles = target_titles({b.state: b.title for b in boxes})
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
        order=tree[""],
        arrow_of_rule=arrow_of_rule,
        row_of_rule=plan_rows,
        clusters=clusters,
        blocks=blocks,
        tree=tree,
        drugs=drug_lines(g, L),
        grades=grades_line(L, grades(graph, severity, L)),
        titles=titles,
        show_variables=show_variables,
    )


def target_titles(titles: dict[str, str]) -> dict[str, str]:
    """Each state's title as the target of a rule: the part of its description before a colon
    ("Moderate elevation: hold or reduce anakinra" -> "Moderate elevation"), or the whole
    description when that part is short or two states would read the same."""
    head = {}
    for s, t in titles.items():
        first = short(" ".join(t.split())).split(": ", 1)[0].rstrip(".")
        head[s] = first if len(first) >= 8 else " ".join(t.split())
    seen: dict[str, int] = {}
    for t in head.values():
        seen[t] = seen.get(t, 0) + 1
    return {s: (t if seen[t] == 1 else " ".join(titles[s].split())) for s, t in head.items()}


def grades(graph, severity: dict[str, int], L: Labels) -> list[tuple[str, list[dict]]]:
    """The protocol's grades, from the mildest, each a word and the conditions that define it:
    the boolean lets that are by themselves the guard of a rule leading to another state with
    a severity (mild, moderate, severe: a state's own, or that of a state around it), each at
    the severity of the mildest state it leads to; when a level holds a let named as the
    level ("mild" leading to a mild state), that one grades the level. A protocol with no such
    let grades with its rules' own comparisons: a guard that compares one lab value (or its
    multiple of ULN) with numbers and leads to a state with a severity, under that severity's
    name ("moderate ANC ≤1,000 /mm3")."""
    lets = graph.graph.get("lets") or {}

    def worst(state: str) -> int:  # the state's severity, or that of a state around it
        levels = []
        while state is not None:
            levels.append(severity.get(state, 0))
            state = graph.nodes[state].get("parent")
        return max(levels)

    level: dict[str, int] = {}
    compared: dict[str, tuple[int, dict]] = {}  # a comparison -> (its level, the guard)
    for u, v, d in graph.edges(data=True):
        e = d.get("guard")
        if not isinstance(e, dict) or d.get("stay") or u == v or worst(v) < 1:
            continue
        if e.get("op") == "let" and (lets.get(e.get("name")) or {}).get("type") == "bool":
            level[e["name"]] = min(level.get(e["name"], 3), worst(v))
        elif e.get("op") == "compare" and _about_a_lab(L, e):
            key = json.dumps(e, sort_keys=True)
            compared[key] = (min(compared.get(key, (3, e))[0], worst(v)), e)
    out = []
    for sev in sorted(set(level.values())):
        names = [n for n in lets if level.get(n) == sev]
        named = [n for n in names if n == LEVELS[sev]]
        out += [(grade_word(L, n), [lets[n]["expr"]]) for n in (named or names)]
    if not out:
        for sev in sorted({s for s, _ in compared.values()}):
            out.append((LEVELS[sev], [e for s, e in compared.values() if s == sev]))
    return out


def _about_a_lab(L: Labels, e: dict) -> bool:
    """A comparison of one lab's value, or of lab values in multiples of ULN, with numbers."""
    ps = [L.phrase(a) for a in e["args"]]
    movers = [p for p in ps if not p.const]
    return len(movers) == 1 and movers[0].since is None and (
        movers[0].ratio is not None or any(a.get("op") == "lab" for a in e["args"]))


def grade_word(L: Labels, name: str) -> str:
    """A grade's name on the legend line: a one-word name as it is ("moderate"); else a short
    description without numbers ("Hy's law"); else the name in words ("reduce band")."""
    if "_" not in name:
        return name
    text = L.condition_text(name)
    if len(text.split()) <= 3 and not re.search(r"\d", text) and not L.reads_as_code(name):
        return text.strip("‘’")
    return name.replace("_", " ")


def humanise(name: str) -> str:
    return name.replace("_", " ")


def drug_lines(g: dict, L: Labels) -> list[Line]:
    """Each drug with its dose levels, highest first: "tocilizumab IV: 8 mg/kg, 4 mg/kg"."""
    out = []
    for name, d in (g.get("drugs") or {}).items():
        levels = ", ".join(L.dose_text(name, x) for x in d.get("doses") or ())
        head = d.get("description") or name
        text = f"{head} ({name})" if head != name else name
        out.append(Line(f"{text}: {levels}" if levels else text, "", list(d.get("sources") or ()), [], "drug", "",
                        list(d.get("citations") or ())))
    return out


def containers(graph, boxes: list[Box], groups: list[Group], blocks: list[Block]) -> tuple[list[Cluster], dict[str, list[str]]]:
    """The clusters (compound states, parallel states, tracks) and what each holds, in reading
    order: `tree[""]` the top level, `tree[cluster id]` inside a cluster (its own box first).
    A flat protocol has no clusters and its top level is `reading_order`."""
    nodes = graph.nodes
    kinds = {n: (d.get("type") or "atomic") for n, d in nodes(data=True)}
    order = {n: i for i, n in enumerate(reading_order(graph, groups))}
    clusters: list[Cluster] = []
    tree: dict[str, list[str]] = {}
    item = {n: (f"cluster_{n}" if kinds[n] in ("compound", "parallel", "track") else n) for n in nodes}
    for n, d in nodes(data=True):
        if kinds[n] in ("compound", "parallel", "track"):
            cid = item[n]
            title = d.get("description") or humanise(n)
            clusters.append(Cluster(cid, n, kinds[n], title, d.get("parent"), None if kinds[n] == "track" else n))
            kids = list(d.get("children") or ())
            if kinds[n] != "parallel":  # tracks stay in the order written; states in reading order
                kids.sort(key=lambda c: order.get(c, len(order)))
            tree[cid] = ([n] if kinds[n] != "track" else []) + [item[c] for c in kids]
    top = [n for n in nodes if nodes[n].get("parent") is None]
    if not clusters:
        tree[""] = [x for x in order if x in nodes or x in {gr.id for gr in groups}] + [b.id for b in blocks]
        ends = [s for s in tree[""] if s in nodes and nodes[s].get("kind") == "terminal"]
        tree[""] = [x for x in tree[""] if x not in ends] + ends
        return clusters, tree
    def first(n: str) -> int:  # a cluster reads where the first state inside it does
        return min([order.get(n, len(order)), *(first(c) for c in nodes[n].get("children") or ())])

    ends = [n for n in top if nodes[n].get("kind") == "terminal"]
    rest = sorted((n for n in top if n not in ends), key=first)
    tree[""] = [item[n] for n in rest] + [gr.id for gr in groups] + [b.id for b in blocks] + [item[n] for n in ends]
    return clusters, tree


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
    tol = g.get("schedule_tolerance")
    if tol and tol.get("amount"):
        out.append(Setting(f"Due dates at a point ('due 3 months') allow ± {duration(tol['amount'], tol['unit'])}: the order is due from that long before to that long after",
                           list(tol.get("sources", [])), True, list(tol.get("citations") or ())))
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
            # a compound state's children (in the order written), then where its rules lead
            kids = list(graph.nodes[s].get("children") or ())
            for t in kids + sorted(set(graph.successors(s)) - set(kids), key=states.index):
                if t not in seen:
                    seen.add(t)
                    nxt.append(t)
        frontier = nxt
    ends = [s for s in states if graph.nodes[s].get("kind") == "terminal"]
    order = [s for s in order if s not in ends] + [s for s in states if s not in seen and s not in ends]
    return order + [g.id for g in groups] + ends
