"""Writing and reading the compiled graph: networkx node-link JSON, and GraphML.

A graph read from a file is untrusted: anyone can edit a JSON file, and the simulator
generates Python code from the graph. `from_json` therefore validates the whole document
before it builds anything from it (python-statemachine's document loaders: a trusted /
untrusted boundary): the format stamp, every name (state names, rule ids, declarations,
references), every expression tree (`ir.validate`: known ops, known functions, declared
names, bounded depth), every reference between parts (edges' endpoints, the rules each
handler lists, the actions, labs, events and sources named), the type of every field, and
no control character in any text. Every fault is reported, each located twice: by its JSON
path in the message (`edges[3].guard.args[0]: unknown expression operator ...`) and by its
line and column in the file. See docs/graph.md, "Reading a graph file".
"""

from __future__ import annotations

import json
import re
from json.decoder import scanstring
from typing import Any, Iterator, Mapping

import networkx as nx

from . import ir
from .diagnostics import ERROR, Diagnostic
from .lower import FORMAT
from .span import Span

__all__ = ["FORMATS", "GraphError", "MAX_DEPTH", "from_json", "looks_like_graph", "to_graphml", "to_json",
           "validate"]

FORMATS: tuple[str, ...] = tuple(dict.fromkeys(("rxwatch-graph/1", "rxwatch-graph/2", "rxwatch-graph/3", FORMAT)))
"""The format stamps a graph file may carry: the one `rxwatch compile` writes (lower.FORMAT)
and the earlier ones (formats 1 and 2: numbers are read the same way, the newer keys are
absent: V2_ONLY, V3_ONLY)."""

MAX_DEPTH = 250
"""How deeply expressions (and `if` actions) may nest in a graph file: above anything the
compiler makes (it stops at 200 levels of the source, E105), far below Python's stack."""

MAX_PROBLEMS = 100
"""Faults reported at most (a file that is something else entirely would give thousands)."""

NAME = ir.IDENTIFIER  # state, lab, fact, var, event, action and let names; the protocol's name
SOURCE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_]*(?:[-.][A-Za-z0-9_]+)*\Z")  # grammar/protocol.lark SOURCE_ID
# STATE/HANDLER/RULE, and `@I` for alternative I > 0 of a choice with consequences (format 3)
RULE_ID = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)/(0|[1-9][0-9]{0,5})/(0|[1-9][0-9]{0,5})(?:@([1-9][0-9]{0,5}))?\Z")
BLOCK_RULE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)#(0|[1-9][0-9]{0,5})\Z")  # BLOCK#I: rule I of a rule block
CODE = re.compile(r"[EW][0-9]{3}\Z")
MAX_NAME = 200
_RULES = {
    NAME.pattern: "letters, digits and _, not starting with a digit",
    SOURCE_ID.pattern: "letters, digits and _, parts joined by - or .",
    RULE_ID.pattern: "STATE/HANDLER/RULE: a state name, the handler's number and the rule's",
    BLOCK_RULE.pattern: "BLOCK#I: a rule block's name and the rule's number in it",
}

# text may hold tabs and newlines; no other control character, no line or paragraph separator,
# no bidirectional override or isolate (they make text read other than it is), no lone surrogate
# (a JSON "\\ud800": no output could encode it)
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_KEY_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")  # keys: not even tab or newline

# the keys every compiled graph has, by kind of object (compiler/lower.py writes them all);
# V2_ONLY: the keys format 1 did not have
FIELDS: dict[str, tuple[str, ...]] = {
    "graph": ("format", "name", "title", "version", "status", "description", "path", "initial", "results_valid",
              "reminders", "sources", "labs", "facts", "vars", "events", "actions", "lets", "accepts", "blocks", "drugs", "schedule_tolerance"),
    "blocks": ("description", "span", "rules"),
    "setting": ("amount", "unit", "sources", "citations", "span"),
    "sources": ("title", "kind", "url", "doi", "note", "span"),
    "labs": ("description", "unit", "uln", "lln", "loinc", "molar_mass", "sources", "citations", "span"),
    "facts": ("description", "type", "unit", "members", "has_default", "default", "sources", "citations", "span"),
    "events": ("description", "sources", "citations", "span"),
    "actions": ("description", "orders", "fulfilled_by", "sources", "citations", "span", "effect"),
    "drugs": ("description", "doses", "labels", "unit", "kind", "sources", "citations", "span"),
    "effect": ("kind", "drug", "dose"),
    "lets": ("description", "expr", "text", "type", "unit", "sources", "citations", "span"),
    "accepts": ("code", "reason", "state", "span"),
    "accepted": ("code", "message", "reason", "span"),
    "node": ("kind", "severity", "description", "entry", "handlers", "sources", "citations", "span", "type", "parent", "children",
             "initial_child", "track", "depth", "doc_order"),
    "handler": ("trigger", "events", "facts", "timer", "mode", "span", "rules"),
    "edge": ("id", "trigger", "events", "facts", "timer", "mode", "handler", "order", "guard", "because", "otherwise",
             "stay", "actions", "windows", "sources", "citations", "span", "rule", "block", "alternative"),
    "timer": ("amount", "unit", "since"),
    "do": ("kind", "action", "orders", "window", "sources", "citations", "span"),
    "one_of": ("kind", "options", "window", "sources", "citations", "span", "alternatives"),
    "alternative": ("action", "target", "stay", "actions"),
    "set": ("kind", "var", "value", "sources", "citations", "span"),
    "if": ("kind", "cond", "text", "then", "else", "sources", "citations", "span"),
    "windows": ("action", "window", "when"),
    "window": ("start", "end", "unit", "tolerance", "every"),
    "span": ("path", "line", "column", "end_line", "end_column"),
}
FIELDS["vars"] = FIELDS["facts"]
V2_ONLY = frozenset({"results_valid", "reminders", "lln", "fulfilled_by"})
V3_ONLY = frozenset({"type", "parent", "children", "initial_child", "track", "depth", "doc_order", "blocks", "rule", "block",
                     "alternative", "alternatives", "drugs", "effect", "citations",
                     "schedule_tolerance", "tolerance", "every"})
EFFECTS = ("start", "hold", "resume", "dose", "stop")
NODE_TYPES = ("atomic", "compound", "parallel", "track")

KINDS = ("initial", "normal", "terminal")
SEVERITIES = ("none", "mild", "moderate", "severe")
TRIGGERS = ("panel", "event", "fact", "timer")
MODES = ("first", "ordered", "exclusive")
FACT_TYPES = ("bool", "number", "enum")
DECLARATIONS = ("labs", "facts", "vars", "events", "actions", "lets")


# ---------------------------------------------------------------------------- writing

def to_json(g: nx.MultiDiGraph) -> str:
    """Node-link JSON that `networkx.node_link_graph(data, edges="edges")` reads back."""
    from . import collector_paused

    with collector_paused():  # millions of small dicts, none of them garbage
        data = nx.node_link_data(g, edges="edges")
        # compact: an indent makes the json module fall back to its pure-Python encoder, 10x slower
        return json.dumps(data, separators=(",", ":"), ensure_ascii=False) + "\n"


def to_graphml(g: nx.MultiDiGraph) -> str:
    """GraphML holds only scalar attributes: nested ones are stored as JSON strings."""
    flat = nx.MultiDiGraph()
    flat.graph.update({k: _scalar(v) for k, v in g.graph.items()})
    for n, attrs in g.nodes(data=True):
        flat.add_node(n, **{k: _scalar(v) for k, v in attrs.items()})
    for u, v, k, attrs in g.edges(keys=True, data=True):
        flat.add_edge(u, v, key=k, **{a: _scalar(x) for a, x in attrs.items()})
    return "\n".join(nx.generate_graphml(flat, prettyprint=True)) + "\n"


def _scalar(v):
    if v is None:
        return ""
    if isinstance(v, (bool, int, float, str)):
        return v
    return json.dumps(v, sort_keys=True, ensure_ascii=False)


# ---------------------------------------------------------------------------- reading

class GraphError(ValueError):
    """A graph file that is not a valid compiled protocol. `diagnostics`: every fault found
    (codes E910-E915), each located in the file, its JSON path at the start of its message."""

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        self.diagnostics = diagnostics
        first = diagnostics[0] if diagnostics else None
        more = f" (and {len(diagnostics) - 1} more)" if len(diagnostics) > 1 else ""
        super().__init__(f"{first}{more}" if first else "not a valid graph")


def looks_like_graph(text: str) -> bool:
    """Whether `text` is meant as a compiled graph file: a JSON object with "nodes" and
    "edges" (or "links"), or one whose "graph" carries an rxwatch format stamp. A protocol
    (.rxw) never starts with '{'; anything that is not a JSON object is not a graph."""
    body = text.lstrip("\ufeff \t\r\n")
    if not body.startswith("{"):
        return False
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return False
    if not isinstance(data, dict):
        return False
    if "nodes" in data and ("edges" in data or "links" in data):
        return True
    g = data.get("graph")
    return isinstance(g, dict) and isinstance(g.get("format"), str) and g["format"].startswith("rxwatch-graph/")


def from_json(text: str, path: str = "<graph>") -> nx.MultiDiGraph:
    """The graph of a compiled-graph file (`rxwatch compile -o X.json`), validated whole
    first; raises GraphError listing every fault, located in `path`."""
    offset = 1 if text.startswith("\ufeff") else 0
    body = text[offset:]
    duplicates: list[str] = []
    try:
        data = json.loads(body, parse_constant=_no_constant, object_pairs_hook=_pairs(duplicates))
    except json.JSONDecodeError as e:
        raise GraphError([_diag(path, e.lineno, e.colno + (offset if e.lineno == 1 else 0), "E910",
                                f"not JSON: {e.msg}")]) from None
    except RecursionError:
        raise GraphError([_diag(path, 1, 1, "E910", "not a compiled graph: JSON nested too deeply")]) from None
    except ValueError as e:  # NaN/Infinity, an integer of thousands of digits
        raise GraphError([_diag(path, 1, 1, "E910", f"not JSON this reader accepts: {e}")]) from None
    problems = validate(data)
    for key in dict.fromkeys(duplicates):
        problems.append(((), "E910", f"the key {_show(key)} appears twice in one object", False))
    if problems:
        diags = []
        for where, code, message, at_key in problems[:MAX_PROBLEMS]:
            line, column = _position(body, where, at_key)
            if line == 1 and column:
                column += offset
            diags.append(_diag(path, line, column, code, f"{_jsonpath(where)}: {message}" if where else message))
        diags.sort(key=lambda d: (d.span.line, d.span.column))
        if len(problems) > MAX_PROBLEMS:
            diags.append(_diag(path, 0, 0, "E910", f"{len(problems) - MAX_PROBLEMS} more faults not shown"))
        raise GraphError(diags)
    edges = "edges" if "edges" in data else "links"
    _upgrade(data, edges)
    return nx.node_link_graph(data, directed=True, multigraph=True, edges=edges)


def _upgrade(data: dict, edges: str) -> None:
    """A valid graph of an earlier format, given the keys of the current one with the values
    that mean what the earlier format meant (its states are the atomic states of one region,
    in the file's order), so that every reader sees one shape. The stamp stays as written."""
    for i, node in enumerate(data["nodes"]):
        for key, value in (("type", "atomic"), ("parent", None), ("children", []), ("initial_child", None),
                           ("track", None), ("depth", 0), ("doc_order", i)):
            node.setdefault(key, value)
    for edge in data[edges]:
        for key, value in (("rule", edge["key"]), ("block", None), ("alternative", None)):
            edge.setdefault(key, value)
    data["graph"].setdefault("blocks", {})
    data["graph"].setdefault("drugs", {})
    data["graph"].setdefault("schedule_tolerance", None)
    windows = [w["window"] for e in data[edges] for w in e["windows"]]
    stack_w: list = [n["entry"] for n in data["nodes"]] + [e["actions"] for e in data[edges]]
    while stack_w:
        for a in stack_w.pop():
            if a.get("window") is not None:
                windows.append(a["window"])
            if a["kind"] == "if":
                stack_w.extend((a["then"], a["else"]))
    for w in windows:
        if w is not None:
            w.setdefault("tolerance", None)
            w.setdefault("every", False)
    # every `sources` list gains its `citations`: the same ids, without locators
    stack: list = [v for k, v in data["graph"].items() if k != "sources"] + [data["nodes"], data[edges]]
    while stack:
        v = stack.pop()
        if isinstance(v, list):
            stack.extend(v)
        elif isinstance(v, dict):
            if isinstance(v.get("sources"), list) and "citations" not in v:
                v["citations"] = [{"source": s, "locator": None} for s in v["sources"]]
            stack.extend(x for x in v.values() if isinstance(x, (dict, list)))
    for action in data["graph"]["actions"].values():
        action.setdefault("effect", None)
    for event in data["graph"]["events"].values():
        event.setdefault("effect", None)
    stack = [n["entry"] for n in data["nodes"]] + [e["actions"] for e in data[edges]]
    while stack:
        for a in stack.pop():
            if a["kind"] == "one_of":
                a.setdefault("alternatives", [{"action": o, "target": None, "stay": False, "actions": []} for o in a["options"]])
            elif a["kind"] == "if":
                stack.extend((a["then"], a["else"]))


def _diag(path: str, line: int, column: int, code: str, message: str) -> Diagnostic:
    return Diagnostic(Span.point(path, line, column), ERROR, code, message)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number")


def _pairs(duplicates: list[str]):
    def hook(pairs: list[tuple[str, Any]]) -> dict:
        out = dict(pairs)
        if len(out) != len(pairs):
            seen: set[str] = set()
            duplicates.extend(k for k, _ in pairs if k in seen or seen.add(k))
        return out

    return hook


# ---------------------------------------------------------------------------- validation

Where = tuple  # a JSON path: keys and indices
Problem = tuple  # (Where, code, message, at_key): at_key when the fault is the key at Where, not its value


def validate(data: Any) -> list[Problem]:
    """Every fault of a parsed graph document, as (JSON path, code, message, at_key); [] when valid."""
    return _Checker(data).run()


class _Checker:
    def __init__(self, data: Any) -> None:
        self.data = data
        self.problems: list[Problem] = []
        self.flagged: set[Where] = set()
        self.declared: dict[str, set[str]] = {}
        self.states: set[str] = set()  # every node's id: states, and in format 3 tracks
        self.tracks: set[str] = set()  # format 3: the nodes that are tracks
        self.blocks: dict[str, int] = {}  # format 3: rule block -> how many rules it has
        self.edge_keys: dict[str, tuple[str, int]] = {}  # rule id -> (source state, index in edges)
        self.nodes: dict[str, dict] = {}  # state name -> its node
        self.trees: list[tuple[Where, Any, str | None]] = []  # well-formed trees, to type once all are read
        self.version = 3  # the format's number: a graph of format 1 lacks the keys of V2_ONLY, 2 those of V3_ONLY
        self.valid: set[Where] = set()  # where the trees that passed ir.validate are

    # -- reporting

    def fail(self, where: Where, code: str, message: str, *, key: bool = False) -> None:
        """A fault at `where` (at the key itself, not its value, when `key`): one per place."""
        if where in self.flagged:
            return
        self.flagged.add(where)
        self.problems.append((where, code, message, key))

    def type(self, where: Where, value: Any, expected: str) -> None:
        self.fail(where, "E915", f"must be {expected}, not {_describe(value)}")

    # -- typed readers: each checks one value and says whether it can be read further

    def mapping(self, where: Where, value: Any) -> bool:
        if isinstance(value, dict):
            return True
        self.type(where, value, "an object")
        return False

    def seq(self, where: Where, value: Any) -> bool:
        if isinstance(value, list):
            return True
        self.type(where, value, "a list")
        return False

    def text(self, where: Where, value: Any, *, optional: bool = False) -> bool:
        if value is None and optional:
            return False
        if isinstance(value, str):
            return True
        self.type(where, value, "a text" + (" or null" if optional else ""))
        return False

    def boolean(self, where: Where, value: Any) -> None:
        if not isinstance(value, bool):
            self.type(where, value, "true or false")

    def whole(self, where: Where, value: Any, *, minimum: int = 0, optional: bool = False) -> bool:
        if value is None and optional:
            return False
        if isinstance(value, int) and not isinstance(value, bool) and minimum <= value < 10**9:
            return True
        self.type(where, value, f"a whole number >= {minimum}" + (" or null" if optional else ""))
        return False

    def number(self, where: Where, value: Any, *, positive: bool = False, optional: bool = True) -> None:
        if value is None and optional:
            return
        try:
            q = ir.exact(value)
        except ir.IRError:
            self.type(where, value, "a finite number" + (" or null" if optional else ""))
            return
        if positive and q <= 0:
            self.fail(where, "E915", f"must be a number above 0, not {_show(value)}")

    def one_of(self, where: Where, value: Any, allowed: tuple[str, ...]) -> bool:
        if isinstance(value, str) and value in allowed:
            return True
        self.fail(where, "E915", f"must be one of {', '.join(allowed)}, not {_show(value)}")
        return False

    def name(self, where: Where, value: Any, pattern: re.Pattern = NAME, what: str = "a name", *,
             key: bool = False) -> bool:
        """`value` matches `pattern` (`key`: it is the key of an object, not a value)."""
        # a rule id is a state name (at most MAX_NAME) and two numbers of at most 6 digits each
        limit = MAX_NAME + 21 if pattern in (RULE_ID, BLOCK_RULE) else MAX_NAME
        if isinstance(value, str) and len(value) <= limit and pattern.match(value):
            return True
        if not isinstance(value, str):
            self.type(where, value, what)
        else:
            self.fail(where, "E912", f"{_show(value)} is not {what} ({_RULES[pattern.pattern]})", key=key)
        return False

    def ref(self, where: Where, value: Any, kind: str) -> None:
        """A reference to a declared lab/fact/var/event/action/source, or to a state."""
        pattern = SOURCE_ID if kind == "sources" else NAME
        if not self.name(where, value, pattern, "a source id" if kind == "sources" else "a name"):
            return
        known = self.states if kind == "states" else self.declared.get(kind, set())
        if value not in known:
            what = {"states": "state", "sources": "source"}.get(kind, kind[:-1])
            self.fail(where, "E914", f"{what} {_show(value)} is not declared in the graph")

    def refs(self, where: Where, value: Any, kind: str) -> None:
        if self.seq(where, value):
            for i, v in enumerate(value):
                self.ref(where + (i,), v, kind)

    def span(self, where: Where, value: Any) -> None:
        if not self.mapping(where, value):
            return
        self.required(where, value, "span")
        if "path" in value:
            self.text(where + ("path",), value["path"])
        for key in ("line", "column", "end_line", "end_column"):
            if key in value:
                self.whole(where + (key,), value[key])

    def required(self, where: Where, obj: Mapping, kind: str) -> None:
        """Every key that a compiled graph's object of this kind has (FIELDS) is there."""
        for key in FIELDS[kind]:
            if key not in obj and not (self.version < 2 and key in V2_ONLY) and not (self.version < 3 and key in V3_ONLY):
                self.fail(where + (key,), "E915", f"missing (a compiled graph always has '{key}')")

    def expr(self, where: Where, value: Any, *, optional: bool = False, want: str | None = None) -> None:
        """An expression tree: its form now (ir.validate), its types once every let is read
        (`want`: the kind it must have, 'bool' for a guard)."""
        if value is None and optional:
            return
        depth = _depth(value)
        if depth > MAX_DEPTH:
            self.fail(where, "E913", f"expression nested more than {MAX_DEPTH} levels deep")
            return
        try:
            ir.validate(value, self.names_for_ir)
        except ir.IRError as e:
            inner = _parse_ir_path(e.path)
            self.fail(where + inner, "E913", e.message)
            return
        self.trees.append((where, value, want))
        self.valid.add(where)

    def types(self, g: dict) -> None:
        """Every well-formed tree has the kinds of value its ops need (what the compiler's
        type checker ensures, E301, but for units): a graph that passes runs without a
        type error in the simulator."""
        lets = g.get("lets") if isinstance(g.get("lets"), dict) else {}
        bad_lets = {name for name in lets if ("graph", "lets", name, "expr") not in self.valid}
        checker = _Types(g, lets, bad_lets, self.fail)
        for where, tree, want in self.trees:
            kind = checker.infer(where, tree)
            if want is not None and kind is not None and kind != want:
                self.fail(where, "E913", f"must be {_KIND[want]}, but this is {_KIND[kind]}")

    # -- the document

    def run(self) -> list[Problem]:
        data = self.data
        if not isinstance(data, dict):
            self.fail((), "E910", f"a compiled graph is a JSON object with graph, nodes and edges, not {_describe(data)}")
            return self.problems
        edges_key = "edges" if "edges" in data else "links"
        missing = [k for k in ("graph", "nodes") if k not in data] + ([] if edges_key in data else ["edges"])
        if missing:
            self.fail((), "E910", f"not a compiled graph: no {', '.join(repr(k) for k in missing)} "
                                   "(write one with `rxwatch compile PROTOCOL -o FILE.json`)")
            return self.problems
        for key in ("directed", "multigraph"):
            if key in data and data[key] is not True:
                self.fail((key,), "E915", f"must be true (a compiled protocol is a directed multigraph), not {_show(data[key])}")
        g = data["graph"]
        if not self.mapping(("graph",), g):
            return self.problems
        stamp = g.get("format")
        if stamp not in FORMATS:
            what = "no format stamp" if stamp is None else f"format {_show(stamp)}"
            self.fail(("graph", "format"), "E911", f"{what}; this rxwatch reads {', '.join(FORMATS[:-1])} and {FORMATS[-1]}")
            return self.problems
        self.version = int(stamp.rsplit("/", 1)[1])
        nodes, edges = data["nodes"], data[edges_key]
        nodes_ok = self.seq(("nodes",), nodes)
        edges_ok = self.seq((edges_key,), edges)
        self.declarations(g)
        if nodes_ok:
            self.collect_states(nodes)
        if edges_ok:
            self.collect_edges(edges_key, edges)
        self.graph_attrs(g)
        if nodes_ok:
            for i, node in enumerate(nodes):
                if isinstance(node, dict):
                    self.node((("nodes", i)), node)
            if self.version >= 3:
                self.chart(nodes)
        if edges_ok:
            for i, edge in enumerate(edges):
                if isinstance(edge, dict):
                    self.edge((edges_key, i), edge)
        self.types(g)
        if self.version >= 3:
            self.citations(data, edges_key)
        self.control_characters((), data)
        return self.problems

    def declarations(self, g: dict) -> None:
        """The declared names (checked as names here, their bodies in `graph_attrs`)."""
        for kind in ("sources",) + self.kinds():
            where = ("graph", kind)
            decls = g.get(kind)
            if kind not in g:
                self.fail(where, "E915", f"missing (a compiled graph always has '{kind}')")
                decls = {}
            elif not self.mapping(where, decls):
                decls = {}
            names = set()
            for name in decls:
                if self.name(where + (name,), name, SOURCE_ID if kind == "sources" else NAME,
                             "a source id" if kind == "sources" else "a name", key=True):
                    names.add(name)
            self.declared[kind] = names
        self.names_for_ir = {"lab": self.declared["labs"], "fact": self.declared["facts"],
                             "var": self.declared["vars"], "let": self.declared["lets"],
                             "action": self.declared["actions"], "drug": self.declared.get("drugs", set())}

    def kinds(self) -> tuple[str, ...]:
        """The kinds of declaration a graph of this format has."""
        return DECLARATIONS + (("drugs",) if self.version >= 3 else ())

    def collect_states(self, nodes: list) -> None:
        for i, node in enumerate(nodes):
            where = ("nodes", i)
            if not self.mapping(where, node):
                continue
            if "id" not in node:
                self.fail(where + ("id",), "E915", "missing: every node has an 'id', the state's name")
                continue
            name = node["id"]
            if not self.name(where + ("id",), name, NAME, "a state name"):
                continue
            if name in self.states:
                self.fail(where + ("id",), "E914", f"state {_show(name)} appears twice")
            self.states.add(name)
            self.nodes.setdefault(name, node)

    def collect_edges(self, key: str, edges: list) -> None:
        for i, edge in enumerate(edges):
            where = (key, i)
            if not self.mapping(where, edge):
                continue
            for end in ("source", "target"):
                if end not in edge:
                    self.fail(where + (end,), "E915", f"missing: every edge has a '{end}' state")
                else:
                    self.ref(where + (end,), edge[end], "states")
            if "key" not in edge:
                self.fail(where + ("key",), "E915", "missing: every edge has a 'key', its rule id STATE/HANDLER/RULE")
                continue
            rule = edge["key"]
            if not self.name(where + ("key",), rule, RULE_ID, "a rule id"):
                continue
            if rule in self.edge_keys:
                self.fail(where + ("key",), "E914", f"rule {_show(rule)} appears twice")
                continue
            source = edge.get("source")
            if isinstance(source, str) and RULE_ID.match(rule).group(1) != source:
                self.fail(where + ("key",), "E914", f"rule {_show(rule)} is not a rule of its source state {_show(source)}")
            self.edge_keys[rule] = (source, i)

    def graph_attrs(self, g: dict) -> None:
        w = ("graph",)
        self.required(w, g, "graph")
        if "name" in g:
            self.name(w + ("name",), g["name"], NAME, "a protocol name")
        if "initial" in g:
            self.ref(w + ("initial",), g["initial"], "states")
        for key in ("title", "version", "status", "description", "path"):
            if key in g:
                self.text(w + (key,), g[key], optional=True)
        for key in ("results_valid", "reminders", "schedule_tolerance"):
            setting = g.get(key)
            if setting is not None and self.mapping(w + (key,), setting):
                self.required(w + (key,), setting, "setting")
                self.duration(w + (key,), setting)
                if key == "reminders" and setting.get("amount") == 0:  # (the compiler should refuse it too)
                    self.fail(w + (key, "amount"), "E915", "reminders every 0 days would flag an order again and again on one day")
                self.refs(w + (key, "sources"), setting.get("sources"), "sources")
                self.span(w + (key, "span"), setting.get("span"))
        for kind in ("sources",) + self.kinds():
            decls = g.get(kind)
            if not isinstance(decls, dict):
                continue
            for name, decl in decls.items():
                where = w + (kind, name)
                if self.mapping(where, decl):
                    self.required(where, decl, kind)
                    getattr(self, "decl_" + kind)(where, decl)
                    self.span(where + ("span",), decl.get("span"))
                    if kind != "sources":
                        self.refs(where + ("sources",), decl.get("sources"), "sources")
        self.let_cycles(g.get("lets"))
        self.blocks = {}
        blocks = g.get("blocks")
        if blocks is not None and self.mapping(w + ("blocks",), blocks):
            for name, b in blocks.items():
                bw = w + ("blocks", name)
                if not self.name(bw, name, NAME, "a rule block name", key=True) or not self.mapping(bw, b):
                    continue
                self.required(bw, b, "blocks")
                self.text(bw + ("description",), b.get("description"), optional=True)
                self.span(bw + ("span",), b.get("span"))
                rules = b.get("rules")
                if self.seq(bw + ("rules",), rules):
                    for i, r in enumerate(rules):
                        if r != f"{name}#{i}":
                            self.fail(bw + ("rules", i), "E914", f"must be {_show(f'{name}#{i}')}, rule {i} of the block")
                    self.blocks[name] = len(rules)
        for key in ("accepts", "accepted"):
            items = g.get(key)
            if (items is None and key == "accepted") or not self.seq(w + (key,), items):
                continue  # `accepted`: only when the verifier ran
            for i, a in enumerate(items):
                where = w + (key, i)
                if not self.mapping(where, a):
                    continue
                self.required(where, a, key)
                if self.text(where + ("code",), a.get("code")) and not CODE.match(a["code"]):
                    self.fail(where + ("code",), "E912", f"{_show(a['code'])} is not a diagnostic code such as W501")
                for field in ("reason", "message"):
                    if field in a:
                        self.text(where + (field,), a[field], optional=True)
                if a.get("state") is not None:
                    self.ref(where + ("state",), a["state"], "states")
                self.span(where + ("span",), a.get("span"))

    def duration(self, where: Where, d: Mapping) -> None:
        self.whole(where + ("amount",), d.get("amount"))
        self.one_of(where + ("unit",), d.get("unit"), ir.TIME_UNITS)

    # the declarations, one kind each

    def decl_sources(self, where: Where, d: dict) -> None:
        for key in ("title", "url", "doi", "note"):
            if key in d:
                self.text(where + (key,), d[key], optional=True)
        kind = d.get("kind")
        if self.text(where + ("kind",), kind) and kind:  # "" when the protocol gives none (W502)
            self.name(where + ("kind",), kind, SOURCE_ID, "a source kind")

    def decl_labs(self, where: Where, d: dict) -> None:
        for key in ("description", "unit"):
            if key in d:
                self.text(where + (key,), d[key], optional=True)
        for key in ("uln", "lln", "molar_mass"):
            if key in d:
                self.number(where + (key,), d[key], positive=key != "lln")
        if "loinc" in d and self.seq(where + ("loinc",), d["loinc"]):
            for i, code in enumerate(d["loinc"]):
                if self.text(where + ("loinc", i), code) and not re.fullmatch(r"[0-9]{1,8}-[0-9]", code):
                    self.fail(where + ("loinc", i), "E912", f"{_show(code)} is not a LOINC code such as 1742-6")

    def decl_facts(self, where: Where, d: dict) -> None:
        for key in ("description", "unit"):
            if key in d:
                self.text(where + (key,), d[key], optional=True)
        kind = d.get("type")
        if "type" in d and not self.one_of(where + ("type",), kind, FACT_TYPES):
            return
        members: list = []
        if kind == "enum":
            if self.seq(where + ("members",), d.get("members")):
                for i, m in enumerate(d["members"]):
                    if self.name(where + ("members", i), m, NAME, "a member name"):
                        members.append(m)
        if kind != "enum" and d.get("members") is not None:
            self.type(where + ("members",), d["members"], "null (only an enumeration has members)")
        if "has_default" in d:
            self.boolean(where + ("has_default",), d["has_default"])
        default = d.get("default")
        if default is None:
            return
        dw = where + ("default",)
        if kind == "bool":
            self.boolean(dw, default)
        elif kind == "number":
            self.number(dw, default, optional=False)
        elif kind == "enum" and self.name(dw, default, NAME, "a member name") and default not in members:
            self.fail(dw, "E914", f"{_show(default)} is not a member of this fact")

    decl_vars = decl_facts

    def decl_events(self, where: Where, d: dict) -> None:
        if "description" in d:
            self.text(where + ("description",), d["description"], optional=True)
        # `stops D` (optional: a graph written before events could stop a drug has no `effect`)
        e = d.get("effect")
        if e is not None and self.version >= 3:
            self.effect(where + ("effect",), e)
            if isinstance(e, dict) and e.get("kind") in EFFECTS and e.get("kind") != "stop":
                self.fail(where + ("effect", "kind"), "E914", f"an event can only stop a drug, not {_show(e.get('kind'))} it")

    def decl_actions(self, where: Where, d: dict) -> None:
        if "description" in d:
            self.text(where + ("description",), d["description"], optional=True)
        orders = d.get("orders")
        self.refs(where + ("orders",), orders, "labs")
        ordered = {x for x in orders if isinstance(x, str)} if isinstance(orders, list) else set()
        fulfilled = d.get("fulfilled_by")
        if fulfilled is not None and self.seq(where + ("fulfilled_by",), fulfilled):
            for i, alt in enumerate(fulfilled):
                aw = where + ("fulfilled_by", i)
                if not self.seq(aw, alt):
                    continue
                for j, lab in enumerate(alt):
                    self.ref(aw + (j,), lab, "labs")
                    if isinstance(lab, str) and lab in self.declared["labs"] and lab not in ordered:
                        self.fail(aw + (j,), "E914", f"lab {_show(lab)} fulfils the order but the action does not order it")
        if self.version >= 3:
            self.effect(where + ("effect",), d.get("effect"))

    def decl_drugs(self, where: Where, d: dict) -> None:
        for key in ("description", "unit"):
            if key in d:
                self.text(where + (key,), d[key], optional=True)
        kind = d.get("kind")
        if not self.one_of(where + ("kind",), kind, ("number", "name")):
            return
        doses, labels = d.get("doses"), d.get("labels")
        if self.seq(where + ("doses",), doses):
            for i, level in enumerate(doses):
                if kind == "name":
                    self.name(where + ("doses", i), level, NAME, "a dose level name")
                else:
                    self.number(where + ("doses", i), level, optional=False)
        if self.seq(where + ("labels",), labels):
            if isinstance(doses, list) and len(labels) != len(doses):
                self.fail(where + ("labels",), "E914", f"{len(labels)} labels for {len(doses)} dose levels")
            for i, label in enumerate(labels):
                self.text(where + ("labels", i), label, optional=True)

    def effect(self, where: Where, e: Any) -> None:
        """An action's effect on a drug; its dose level is one of the drug's."""
        if e is None or not self.mapping(where, e):
            return
        self.required(where, e, "effect")
        self.one_of(where + ("kind",), e.get("kind"), EFFECTS)
        self.ref(where + ("drug",), e.get("drug"), "drugs")
        level = e.get("dose")
        drug = (self.data["graph"].get("drugs") or {}).get(e.get("drug")) if isinstance(e.get("drug"), str) else None
        if level is None or not isinstance(drug, dict) or not isinstance(drug.get("doses"), list):
            return
        try:
            known = [ir.exact(x) for x in drug["doses"]] if drug.get("kind") == "number" else drug["doses"]
            value = ir.exact(level) if drug.get("kind") == "number" else level
        except ir.IRError:
            self.type(where + ("dose",), level, "a dose level of the drug")
            return
        if value not in known:
            self.fail(where + ("dose",), "E914", f"{_show(level)} is not a dose level of drug {_show(e['drug'])}")

    def decl_lets(self, where: Where, d: dict) -> None:
        if "expr" in d:
            self.expr(where + ("expr",), d["expr"])
        for key in ("description", "text", "unit"):
            if key in d:
                self.text(where + (key,), d[key], optional=True)
        if "type" in d:
            self.name(where + ("type",), d["type"], NAME, "a type name")

    def let_cycles(self, lets: Any) -> None:
        """A let defined in terms of itself (through others) would never finish evaluating."""
        if not isinstance(lets, dict):
            return
        uses = {}
        for name, decl in lets.items():
            if ("graph", "lets", name, "expr") in self.valid:
                uses[name] = [n for n in ir.let_refs(decl.get("expr")) if n in lets]
        state: dict[str, int] = {}  # 1: on the path, 2: done
        for start in uses:
            if state.get(start):
                continue
            stack: list[tuple[str, Iterator[str]]] = [(start, iter(uses[start]))]
            state[start] = 1
            while stack:
                name, it = stack[-1]
                nxt = next(it, None)
                if nxt is None:
                    state[name] = 2
                    stack.pop()
                elif state.get(nxt) == 1:
                    cycle = [n for n, _ in stack][[n for n, _ in stack].index(nxt):] + [nxt]
                    self.fail(("graph", "lets", nxt, "expr"), "E913",
                              f"let {_show(nxt)} is defined in terms of itself: {' -> '.join(cycle)}")
                elif not state.get(nxt) and nxt in uses:
                    state[nxt] = 1
                    stack.append((nxt, iter(uses[nxt])))

    # -- states and rules

    def node(self, where: Where, node: dict) -> None:
        self.required(where, node, "node")
        state = node.get("id")
        if not isinstance(state, str):
            return  # reported by collect_states
        self.one_of(where + ("kind",), node.get("kind"), KINDS)
        self.one_of(where + ("severity",), node.get("severity"), SEVERITIES)
        self.text(where + ("description",), node.get("description"), optional=True)
        self.refs(where + ("sources",), node.get("sources"), "sources")
        self.span(where + ("span",), node.get("span"))
        self.actions(where + ("entry",), node.get("entry"))
        handlers = node.get("handlers")
        if not self.seq(where + ("handlers",), handlers):
            return
        for hi, h in enumerate(handlers):
            hw = where + ("handlers", hi)
            if not self.mapping(hw, h):
                continue
            self.required(hw, h, "handler")
            self.trigger(hw, h)
            self.span(hw + ("span",), h.get("span"))
            rules = h.get("rules")
            if not self.seq(hw + ("rules",), rules):
                continue
            for ri, rule in enumerate(rules):
                rw = hw + ("rules", ri)
                if not self.name(rw, rule, RULE_ID, "a rule id"):
                    continue
                if rule not in self.edge_keys:
                    self.fail(rw, "E914", f"rule {_show(rule)} is not an edge of the graph")
                elif self.edge_keys[rule][0] != state:
                    self.fail(rw, "E914", f"rule {_show(rule)} leaves another state than {_show(state)}")

    def citations(self, data: dict, edges_key: str) -> None:
        """Format 3: every `citations` list, wherever it is: `[{source, locator}]`, each source
        declared and among the `sources` of the same object (which may list more: a rule's
        include those of the lets its guard uses)."""
        g = data["graph"]
        stack: list[tuple[Where, Any]] = [((key,), v) for key, v in g.items() if key != "sources"]
        stack = [(("graph",) + w, v) for w, v in stack]
        stack += [(("nodes",), data["nodes"]), ((edges_key,), data[edges_key])]
        while stack:
            where, v = stack.pop()
            if isinstance(v, list):
                stack.extend((where + (i,), x) for i, x in enumerate(v))
                continue
            if not isinstance(v, dict):
                continue
            stack.extend((where + (k,), x) for k, x in v.items() if isinstance(x, (dict, list)) and k != "citations")
            if "citations" not in v:
                continue
            cites = v["citations"]
            if not self.seq(where + ("citations",), cites):
                continue
            sources = v.get("sources") if isinstance(v.get("sources"), list) else []
            for i, c in enumerate(cites):
                cw = where + ("citations", i)
                if not self.mapping(cw, c):
                    continue
                for key in ("source", "locator"):
                    if key not in c:
                        self.fail(cw + (key,), "E915", f"missing (a citation is {{source, locator}})")
                self.ref(cw + ("source",), c.get("source"), "sources")
                self.text(cw + ("locator",), c.get("locator"), optional=True)
                if isinstance(c.get("source"), str) and c["source"] not in sources:
                    self.fail(cw + ("source",), "E914", f"{_show(c['source'])} is cited here but not among its sources")

    def chart(self, nodes: list) -> None:
        """Format 3: the statechart's tree. Each node's parent lists it among its children, and
        the reverse; depth and track follow from the parent; a parallel state's children are
        tracks and no one else's are; atomic states have none; `initial_child` is a child."""
        index = {n["id"]: i for i, n in enumerate(nodes) if isinstance(n, dict) and isinstance(n.get("id"), str)}
        orders: dict[Any, str] = {}
        for name, i in index.items():
            node, where = nodes[i], ("nodes", i)
            kind = node.get("type")
            if not (isinstance(kind, str) and kind in NODE_TYPES):
                continue
            parent, children = node.get("parent"), node.get("children")
            if parent is not None:
                if not self.name(where + ("parent",), parent, NAME, "a state or track name"):
                    continue
                if parent not in index:
                    self.fail(where + ("parent",), "E914", f"{_show(parent)} is not a node of the graph")
                    continue
                siblings = nodes[index[parent]].get("children")
                if not isinstance(siblings, list) or name not in siblings:
                    self.fail(where + ("parent",), "E914", f"{_show(parent)} does not list {_show(name)} among its children")
            ptype = nodes[index[parent]].get("type") if parent is not None else None
            if kind == "track" and parent is not None and ptype != "parallel":
                self.fail(where + ("parent",), "E914", f"a track belongs to a parallel state, not to {_show(parent)}")
            if kind == "track" and parent is None:
                self.fail(where + ("parent",), "E914", "a track belongs to a parallel state: its parent cannot be null")
            if kind != "track" and ptype == "parallel":
                self.fail(where + ("parent",), "E914", f"the children of the parallel state {_show(parent)} are tracks")
            if self.whole(where + ("depth",), node.get("depth")):
                pdepth = nodes[index[parent]].get("depth") if parent in index else -1
                if isinstance(pdepth, int) and node["depth"] != pdepth + 1:
                    self.fail(where + ("depth",), "E914", f"must be {pdepth + 1}, one more than its parent's")
            want_track = None if parent is None else (parent if ptype == "track" else nodes[index[parent]].get("track"))
            if not isinstance(want_track, (str, type(None))):
                want_track = None  # (the parent's own fault, reported there)
            if node.get("track") != want_track:
                self.fail(where + ("track",), "E914", f"must be {_show(want_track)}, the nearest track around it")
            if self.whole(where + ("doc_order",), node.get("doc_order")):
                if node["doc_order"] in orders:
                    self.fail(where + ("doc_order",), "E914", f"{node['doc_order']} is also the doc_order of {_show(orders[node['doc_order']])}")
                orders[node["doc_order"]] = name
            if self.seq(where + ("children",), children):
                for j, c in enumerate(children):
                    cw = where + ("children", j)
                    if not self.name(cw, c, NAME, "a state or track name"):
                        continue
                    if c not in index:
                        self.fail(cw, "E914", f"{_show(c)} is not a node of the graph")
                    elif not isinstance(nodes[index[c]], dict) or nodes[index[c]].get("parent") != name:
                        self.fail(cw, "E914", f"{_show(c)} has another parent than {_show(name)}")
                if kind == "atomic" and children:
                    self.fail(where + ("children",), "E914", "an atomic state has no children")
                if kind in ("compound", "parallel", "track") and not children:
                    self.fail(where + ("children",), "E914", f"a {kind} node has children")
            first = node.get("initial_child")
            if kind in ("atomic", "parallel") and first is not None:
                self.fail(where + ("initial_child",), "E914", f"must be null: {'every track of a parallel state is entered' if kind == 'parallel' else 'an atomic state has no children'}")
            elif kind in ("compound", "track") and (not isinstance(children, list) or not isinstance(first, str)
                                                     or first not in children):
                self.fail(where + ("initial_child",), "E914", f"must be one of the children, not {_show(first)}")
            if kind == "track":
                for key in ("entry", "handlers"):
                    if node.get(key):
                        self.fail(where + (key,), "E914", f"a track has no {key}; its states do")
                if node.get("kind") != "normal":
                    self.fail(where + ("kind",), "E914", "a track's kind is normal")
            if node.get("kind") == "terminal" and (parent is not None or children):
                self.fail(where + ("kind",), "E914", "a terminal state is at the top level and has no children")
        tracks = {n for n, i in index.items() if nodes[i].get("type") == "track"}
        self.tracks = tracks
        initial = self.data["graph"].get("initial")
        if not isinstance(initial, str):
            return
        if initial in tracks or (initial in index and nodes[index[initial]].get("parent") is not None):
            self.fail(("graph", "initial"), "E914", f"{_show(initial)} is not a top-level state")

    def trigger(self, where: Where, h: Mapping) -> None:
        """The fields a handler and each of its rules (edges) share."""
        self.one_of(where + ("trigger",), h.get("trigger"), TRIGGERS)
        self.one_of(where + ("mode",), h.get("mode"), MODES)
        self.refs(where + ("events",), h.get("events"), "events")
        self.refs(where + ("facts",), h.get("facts"), "facts")
        timer = h.get("timer")
        if timer is not None and self.mapping(where + ("timer",), timer):
            self.required(where + ("timer",), timer, "timer")
            self.duration(where + ("timer",), timer)
            if timer.get("since") is not None:
                self.ref(where + ("timer", "since"), timer["since"], "actions")
        if h.get("trigger") == "timer" and timer is None:
            self.fail(where + ("timer",), "E915", "a timer handler needs its 'timer' {amount, unit, since}")

    def edge(self, where: Where, e: dict) -> None:
        self.required(where, e, "edge")
        for end in ("source", "target"):
            if isinstance(e.get(end), str) and e[end] in self.tracks:
                self.fail(where + (end,), "E914", f"{_show(e[end])} is a track; a rule leads from a state to a state")
        rule = e.get("key")
        if "id" in e and e["id"] != rule and self.name(where + ("id",), e["id"], RULE_ID, "a rule id"):
            self.fail(where + ("id",), "E914", f"the id {_show(e['id'])} differs from the edge's key {_show(rule)}")
        self.trigger(where, e)
        for key in ("handler", "order"):
            self.whole(where + (key,), e.get(key))
        for key in ("otherwise", "stay"):
            self.boolean(where + (key,), e.get(key))
        if e.get("stay") is True and e.get("source") != e.get("target"):
            self.fail(where + ("target",), "E914", "a stay rule leads back to its own state")
        self.text(where + ("because",), e.get("because"))
        if "otherwise_name" in e:  # optional: `otherwise "normal"` (older graphs have none)
            self.text(where + ("otherwise_name",), e["otherwise_name"])
        if self.version >= 3:
            self.rule_origin(where, e)
        if "guard" in e:
            self.expr(where + ("guard",), e["guard"], optional=True, want="bool")
        if e.get("otherwise") is True and e.get("guard") is not None:
            self.fail(where + ("guard",), "E915", "an 'otherwise' rule has no guard")
        if e.get("otherwise") is False and "guard" in e and e["guard"] is None:
            self.fail(where + ("guard",), "E915", "a rule that is not 'otherwise' has a guard")
        self.refs(where + ("sources",), e.get("sources"), "sources")
        self.span(where + ("span",), e.get("span"))
        self.actions(where + ("actions",), e.get("actions"))
        windows = e.get("windows")
        if self.seq(where + ("windows",), windows):
            for i, w in enumerate(windows):
                ww = where + ("windows", i)
                if self.mapping(ww, w):
                    self.required(ww, w, "windows")
                    self.ref(ww + ("action",), w.get("action"), "actions")
                    self.window(ww + ("window",), w.get("window"))
                    self.text(ww + ("when",), w.get("when"))
        # the rule is where its handler lists it
        state, rule_ok = e.get("source"), isinstance(rule, str) and RULE_ID.match(rule)
        if rule_ok and isinstance(state, str) and state in self.states and isinstance(e.get("handler"), int) \
                and isinstance(e.get("order"), int):
            handlers = self.nodes.get(state, {}).get("handlers")
            try:
                listed = handlers[e["handler"]]["rules"][e["order"]]
            except (IndexError, KeyError, TypeError):
                listed = None
            if listed != rule.split("@")[0]:  # (the alternatives of a rule: one entry, the rule's)
                self.fail(where + ("handler",), "E914",
                          f"rule {_show(rule)} is not rule {e['order']} of handler {e['handler']} of state {_show(state)}")

    def rule_origin(self, where: Where, e: dict) -> None:
        """Format 3: where the rule is written (`rule`, `block`) and the alternative of a choice
        it stands for: the key's `@I` suffix is `alternative` I > 0."""
        key, rule, block, alt = e.get("key"), e.get("rule"), e.get("block"), e.get("alternative")
        if alt is not None and self.whole(where + ("alternative",), alt):
            pass
        elif alt is not None:
            alt = None
        m = RULE_ID.match(key) if isinstance(key, str) else None
        if m is not None:
            suffix = int(m.group(4)) if m.group(4) else 0
            if suffix and alt != suffix:
                self.fail(where + ("alternative",), "E914", f"must be {suffix}, as the key's @{suffix} says")
            elif not suffix and alt not in (None, 0):
                self.fail(where + ("alternative",), "E914", f"alternative {alt} has a key ending in @{alt}")
        if alt is not None:
            choice = next((a for a in e.get("actions") or () if isinstance(a, dict) and a.get("kind") == "one_of"
                           and any(isinstance(x, dict) and (x.get("target") is not None or x.get("stay") is True)
                                   for x in a.get("alternatives") or ())), None)
            if choice is None:
                self.fail(where + ("alternative",), "E914", "the rule's actions hold no choice whose alternatives lead somewhere")
            elif not alt < len(choice.get("alternatives") or ()):
                self.fail(where + ("alternative",), "E914", f"the rule's choice has no alternative {alt}")
            else:
                chosen = choice["alternatives"][alt]
                to = chosen.get("target") if isinstance(chosen, dict) else None
                if isinstance(to, str) and e.get("target") != to:
                    self.fail(where + ("target",), "E914", f"alternative {alt} leads to {_show(to)}, not {_show(e.get('target'))}")
                elif isinstance(chosen, dict) and chosen.get("stay") is True and e.get("stay") is not True:
                    self.fail(where + ("stay",), "E914", f"alternative {alt} stays: the edge is a stay")
        if block is None:
            if "rule" in e and m is not None and rule != key.split("@")[0]:
                self.fail(where + ("rule",), "E914", f"must be the edge's key without its @ part, {_show(key.split('@')[0])}, "
                                                     "for a rule of the state's own")
            return
        if not self.name(where + ("block",), block, NAME, "a rule block name"):
            return
        if block not in self.blocks:
            self.fail(where + ("block",), "E914", f"rule block {_show(block)} is not declared in the graph")
            return
        if self.name(where + ("rule",), rule, BLOCK_RULE, "a block rule id"):
            b, i = BLOCK_RULE.match(rule).groups()
            if b != block or int(i) >= self.blocks[block]:
                self.fail(where + ("rule",), "E914", f"{_show(rule)} is not a rule of block {_show(block)}")

    def window(self, where: Where, w: Any) -> None:
        if w is None or not self.mapping(where, w):
            return
        self.required(where, w, "window")
        # (a window that closes before it opens is the verifier's E621: meaning, not form)
        self.whole(where + ("start",), w.get("start"))
        self.whole(where + ("end",), w.get("end"))
        self.one_of(where + ("unit",), w.get("unit"), ir.TIME_UNITS)
        if "every" in w:
            self.boolean(where + ("every",), w["every"])
        tol = w.get("tolerance")
        if tol is not None and self.mapping(where + ("tolerance",), tol):
            for key in ("amount", "unit"):
                if key not in tol:
                    self.fail(where + ("tolerance", key), "E915", "missing (a tolerance is {amount, unit})")
            self.duration(where + ("tolerance",), tol)
            if w.get("start") != w.get("end"):
                self.fail(where + ("tolerance",), "E914", "only a point window (start = end: `due 3 months`) has a tolerance")

    def actions(self, where: Where, actions: Any) -> None:
        """A list of actions, `if` blocks nested to any depth below MAX_DEPTH (no recursion)."""
        stack: list[tuple[Where, Any, int]] = [(where, actions, 0)]
        while stack:
            w, items, depth = stack.pop()
            if depth > MAX_DEPTH:
                self.fail(w, "E913", f"actions nested more than {MAX_DEPTH} levels deep")
                continue
            if not self.seq(w, items):
                continue
            for i, a in enumerate(items):
                aw = w + (i,)
                if not self.mapping(aw, a):
                    continue
                kind = a.get("kind")
                if not self.one_of(aw + ("kind",), kind, ("do", "one_of", "set", "if")):
                    continue
                self.required(aw, a, kind)
                self.refs(aw + ("sources",), a.get("sources"), "sources")
                self.span(aw + ("span",), a.get("span"))
                if kind == "do":
                    self.ref(aw + ("action",), a.get("action"), "actions")
                    self.refs(aw + ("orders",), a.get("orders"), "labs")
                    self.window(aw + ("window",), a.get("window"))
                elif kind == "one_of":
                    options = a.get("options")
                    self.refs(aw + ("options",), options, "actions")
                    if isinstance(options, list) and not options:
                        self.fail(aw + ("options",), "E915", "one_of needs at least one option")
                    self.window(aw + ("window",), a.get("window"))
                    alts = a.get("alternatives")
                    if alts is not None and self.seq(aw + ("alternatives",), alts):
                        if isinstance(options, list) and [x.get("action") if isinstance(x, dict) else None for x in alts] != options:
                            self.fail(aw + ("alternatives",), "E914", "the alternatives' actions must be the options, in order")
                        for j, alt in enumerate(alts):
                            xw = aw + ("alternatives", j)
                            if not self.mapping(xw, alt):
                                continue
                            self.required(xw, alt, "alternative")
                            self.boolean(xw + ("stay",), alt.get("stay"))
                            if alt.get("target") is not None:
                                self.ref(xw + ("target",), alt["target"], "states")
                                if isinstance(alt["target"], str) and alt["target"] in self.tracks:
                                    self.fail(xw + ("target",), "E914", f"{_show(alt['target'])} is a track; an alternative leads to a state")
                                if alt.get("stay") is True:
                                    self.fail(xw + ("stay",), "E914", "an alternative that stays has no target")
                            stack.append((xw + ("actions",), alt.get("actions"), depth + 1))
                elif kind == "set":
                    self.ref(aw + ("var",), a.get("var"), "vars")
                    name = a.get("var")
                    var = self.data["graph"]["vars"].get(name) if isinstance(name, str) and name in self.declared["vars"] else None
                    want = var.get("type") if isinstance(var, dict) and var.get("type") in FACT_TYPES else None
                    self.expr(aw + ("value",), a.get("value"), want=want)
                else:
                    self.expr(aw + ("cond",), a.get("cond"), want="bool")
                    self.text(aw + ("text",), a.get("text"))
                    stack.append((aw + ("else",), a.get("else"), depth + 1))
                    stack.append((aw + ("then",), a.get("then"), depth + 1))

    # -- text anywhere

    def control_characters(self, where: Where, data: Any) -> None:
        """No control character in any key or text of the document (tab and newline allowed
        in text; names were checked, more strictly, above)."""
        stack: list[tuple[Where, Any]] = [(where, data)]
        while stack:
            w, v = stack.pop()
            if isinstance(v, str):
                m = _CONTROL.search(v)
                if m:
                    self.fail(w, "E915", f"text holds the control character {_escape(m.group())}")
            elif isinstance(v, dict):
                for k, x in v.items():
                    if _KEY_CONTROL.search(k):
                        self.fail(w + (k,), "E912", f"the key {_show(k)} holds a control character", key=True)
                    stack.append((w + (k,), x))
            elif isinstance(v, list):
                stack.extend((w + (i,), x) for i, x in enumerate(v))


# ---------------------------------------------------------------------------- types

_KIND = {"bool": "true or false", "number": "a number", "enum": "a member of an enumeration",
         "duration": "a duration", "action": "an action"}


class _Types(ir.Visitor):
    """The kind of value of each well-formed tree: bool, number, enum, duration (units are
    the compiler's business: they change no kind). Reports through `fail` (E913), at the
    sub-tree at fault; None for a tree whose kind cannot be told (a fault already reported)."""

    def __init__(self, g: Mapping, lets: Mapping, bad_lets: set[str], fail) -> None:
        self.g = g
        self.lets = lets
        self.let_kinds: dict[str, str | None] = {name: None for name in bad_lets}
        self.busy: set[str] = set()
        self.fail = fail
        self.where: Where = ()

    def declared(self, kind: str, name: str) -> str | None:
        decl = (self.g.get(kind) or {}).get(name)
        t = decl.get("type") if isinstance(decl, dict) else None
        return t if t in FACT_TYPES else None

    def let(self, name: str) -> str | None:
        if name not in self.let_kinds:
            if name in self.busy:  # a cycle: reported by let_cycles
                return None
            self.busy.add(name)
            decl = self.lets.get(name)
            self.let_kinds[name] = self.infer(("graph", "lets", name, "expr"), decl.get("expr")) if isinstance(decl, dict) else None
            self.busy.discard(name)
        return self.let_kinds[name]

    def infer(self, where: Where, t: Mapping) -> str | None:
        saved, self.where = self.where, where
        try:
            return self.visit(t)
        finally:
            self.where = saved

    # one method per op of the IR (ir.Visitor checks that none is missing)

    def visit_num(self, t):
        # `unit` (format 3, optional) is for readers: the value is already in it
        if "unit" in t and not (isinstance(t["unit"], str) and 0 < len(t["unit"]) <= 200):
            self.fail(self.where + ("unit",), "E913", "a number's unit must be a text of 1 to 200 characters")
        return "number"

    def visit_bool(self, t):
        return "bool"

    def visit_enum(self, t):
        return "enum"

    def visit_duration(self, t):
        return "duration"

    visit_since_entry = visit_duration

    def visit_lab(self, t):
        return "number"

    def visit_fact(self, t):
        return self.declared("facts", t["name"])

    def visit_var(self, t):
        return self.declared("vars", t["name"])

    def visit_let(self, t):
        return self.let(t["name"])

    def visit_action(self, t):
        self.fail(self.where, "E913", f"the action {_show(t['name'])} is not a value; since() and fulfilled() take it")
        return None

    def visit_drug(self, t):
        self.fail(self.where, "E913", f"the drug {_show(t['name'])} is not a value; held(), dose(), stopped() and started() take it")
        return None

    def visit_call(self, t):
        return self.call(self.where, t)

    def visit_neg(self, t):
        return self.need(self.where + ("arg",), t["arg"], "number", "'-'")

    def _arith(self, t):
        op = t["op"]
        kinds = [self.need(self.where + ("args", i), a, "number", f"'{op}'") for i, a in enumerate(t["args"])]
        return "number" if None not in kinds else None

    visit_add = visit_sub = visit_mul = visit_div = _arith

    def visit_compare(self, t):
        where = self.where
        kinds = [self.infer(where + ("args", i), a) for i, a in enumerate(t["args"])]
        for i, o in enumerate(t["ops"]):
            a, b = kinds[i], kinds[i + 1]
            if a is None or b is None:
                continue
            if a != b:
                self.fail(where, "E913", f"cannot compare {_KIND[a]} with {_KIND[b]}")
            elif a in ("bool", "enum") and o not in ("==", "!="):
                self.fail(where, "E913", f"'{o}' needs numbers or durations; {_KIND[a]} is compared with == or !=")
        return "bool"

    def visit_in(self, t):
        self.need(self.where + ("arg",), t["arg"], "enum", "'in'")
        return "bool"

    def visit_not(self, t):
        self.need(self.where + ("arg",), t["arg"], "bool", "'not'")
        return "bool"

    def _logic(self, t):
        for i, a in enumerate(t["args"]):
            self.need(self.where + ("args", i), a, "bool", f"'{t['op']}'")
        return "bool"

    visit_and = visit_or = _logic

    def need(self, where: Where, t: Mapping, kind: str, who: str) -> str | None:
        got = self.infer(where, t)
        if got is not None and got != kind:
            self.fail(where, "E913", f"{who} needs {_KIND[kind]}, but this is {_KIND[got]}")
            return None
        return got

    def call(self, where: Where, t: Mapping) -> str | None:
        func, args = t["func"], t["args"]
        if func in ("max", "min"):
            kinds = [self.need(where + ("args", i), a, "number", f"{func}()") for i, a in enumerate(args)]
            return "number" if None not in kinds else None
        if func in ("uln", "xuln"):
            return "number"
        if func == "known":
            if args[0].get("op") not in ("lab", "fact", "var", "let"):
                self.fail(where + ("args", 0), "E913", "known() takes the name of a lab, fact, var or let")
            return "bool"
        if func == "since":
            return "duration"
        if func == "dose":
            drug = (self.g.get("drugs") or {}).get(args[0]["name"])
            return "enum" if isinstance(drug, dict) and drug.get("kind") == "name" else "number"
        return "bool"  # fulfilled, held, stopped, started


# ---------------------------------------------------------------------------- helpers

def _depth(t: Any) -> int:
    """How deeply `t`'s objects and lists nest (iterative; stops counting past MAX_DEPTH)."""
    deepest = 0
    stack = [(t, 1)]
    while stack:
        v, d = stack.pop()
        if d > deepest:
            deepest = d
            if deepest > MAX_DEPTH:
                return deepest
        if isinstance(v, dict):
            stack.extend((x, d + 1) for x in v.values() if isinstance(x, (dict, list)))
        elif isinstance(v, list):
            stack.extend((x, d) for x in v if isinstance(x, (dict, list)))
    return deepest


_IR_PART = re.compile(r"\.?([A-Za-z_]+)|\[(\d+)\]")


def _parse_ir_path(path: str) -> Where:
    """`args[1].arg` (an IRError's path) as ('args', 1, 'arg')."""
    out: list = []
    for m in _IR_PART.finditer(path or ""):
        out.append(m.group(1) if m.group(1) is not None else int(m.group(2)))
    return tuple(out)


def _jsonpath(where: Where) -> str:
    """('edges', 3, 'guard') as `edges[3].guard`; a key that is not a plain name in brackets,
    JSON-quoted (so no control character of the file reaches a message)."""
    out = ""
    for part in where:
        if isinstance(part, int):
            out += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", part):
            out += f".{part}" if out else part
        else:
            out += f"[{json.dumps(part)}]"
    return out


def _show(v: Any) -> str:
    """A value quoted for a message: JSON text (escapes for control characters), cut short."""
    try:
        text = json.dumps(v, ensure_ascii=True)
    except (TypeError, ValueError):
        text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


def _escape(ch: str) -> str:
    n = ord(ch)
    return f"U+{n:04X}"


def _describe(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return f"the number {_show(v)}"
    if isinstance(v, str):
        return f"the text {_show(v)}"
    if isinstance(v, list):
        return "a list"
    if isinstance(v, dict):
        return "an object"
    return type(v).__name__


# ---------------------------------------------------------------------------- positions in the file

_WS = re.compile(r"[ \t\r\n]*")
_SCALAR = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][-+]?\d+)?|true|false|null")


def _position(text: str, where: Where, at_key: bool = False) -> tuple[int, int]:
    """The 1-based line and column of the value at `where` in the JSON `text` (of its key
    when `at_key`); as deep as the path can be followed (the last duplicate key wins, as in
    json.loads); (1, 1) for the document."""
    try:
        i = _offset(text, where, at_key)
    except (IndexError, ValueError):
        i = 0
    line = text.count("\n", 0, i) + 1
    return line, i - (text.rfind("\n", 0, i) + 1) + 1


def _offset(text: str, where: Where, at_key: bool) -> int:
    i = _WS.match(text, 0).end()
    for n, part in enumerate(where):
        last = n == len(where) - 1
        ch = text[i]
        if ch == "{" and isinstance(part, str):
            found = None
            j = _WS.match(text, i + 1).end()
            while text[j] != "}":
                key, k = scanstring(text, j + 1)
                colon = _WS.match(text, k).end()
                value = _WS.match(text, colon + 1).end()
                if key == part:
                    found = (j, value)
                j = _WS.match(text, _skip(text, value)).end()
                if text[j] == ",":
                    j = _WS.match(text, j + 1).end()
            if found is None:
                return i
            i = found[0] if last and at_key else found[1]
        elif ch == "[" and isinstance(part, int):
            j = _WS.match(text, i + 1).end()
            index = 0
            while text[j] != "]" and index < part:
                j = _WS.match(text, _skip(text, j)).end()
                if text[j] == ",":
                    j = _WS.match(text, j + 1).end()
                index += 1
            if text[j] == "]":
                return i
            i = j
        else:
            return i
    return i


def _skip(text: str, i: int) -> int:
    """The offset just after the JSON value starting at `i` (iterative: any depth)."""
    ch = text[i]
    if ch == '"':
        return scanstring(text, i + 1)[1]
    if ch not in "[{":
        m = _SCALAR.match(text, i)
        if not m:
            raise ValueError(f"no JSON value at {i}")
        return m.end()
    depth = 0
    while True:
        ch = text[i]
        if ch == '"':
            i = scanstring(text, i + 1)[1]
            continue
        if ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
