"""What the language server knows about one protocol text: its diagnostics (the compiler's and
the verifier's, as `rxwatch check` gives them), every declared name and every place it is
used, the citation locators, the due windows, and the outline.

Built from the compiler's own results (`compile_source`: the AST with a span on every name,
the symbol table) and walked generically: every `Name` and `Ref` in the AST is an occurrence,
every table of the symbol table a kind of declaration. A new kind of declaration or of
reference that the front end adds is found without a change here.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field

from rxwatch.compiler import ast, compile_source
from rxwatch.compiler.span import Span

# fields of the AST whose names are not references to a declaration: a state's severity, the
# protocol's status, a source's kind, an accepted code, the function of a call
NOT_REFERENCES = {"severity", "status", "kind", "code", "func", "members"}
SOURCE_FIELDS = {"cite", "id", "source", "sources", "citations"}

SECTION = re.compile(r"^#\s*-{4,}\s*(\S.*?)\s*-*\s*$")


@dataclass
class Decl:
    name: str
    kind: str  # 'lab', 'fact', 'var', 'event', 'action', 'let', 'source', 'state', 'track', 'block', 'drug', ...
    node: object
    span: Span  # of the name in its declaration

    @property
    def namespace(self) -> str:
        return "source" if self.kind == "source" else "name"


@dataclass
class Occurrence:
    name: str
    namespace: str  # 'source' or 'name'
    span: Span
    is_decl: bool = False


@dataclass
class Window:
    node: object
    span: Span


@dataclass
class Index:
    path: str
    text: str
    diagnostics: list = field(default_factory=list)
    parsed: bool = False  # the text parses (else: the index's names are those of the last good parse)
    module: object | None = None
    decls: dict[tuple[str, str], Decl] = field(default_factory=dict)  # (namespace, name) -> Decl
    occurrences: list[Occurrence] = field(default_factory=list)
    windows: list[Window] = field(default_factory=list)
    parents: dict[str, str | None] = field(default_factory=dict)  # state or track -> the state or track around it
    _locators: dict[tuple[int, int], str] | None = None

    @property
    def locators(self) -> dict[tuple[int, int], str]:
        """(line, column) of a cited source id -> its locator (`cite id "4.4"`); read on first use."""
        if self._locators is None:  # a front end whose citations carry no locator: read them off the tokens
            self._locators = {}
            if self.parsed:
                _locators(self.text, self)
        return self._locators

    # -- lookups (positions: 1-based line and column, as Span)

    def occurrence_at(self, line: int, column: int) -> Occurrence | None:
        for o in self.occurrences:
            s = o.span
            if s.line == line and s.column <= column <= s.end_column + 1:
                return o
        return None

    def decl_of(self, o: Occurrence) -> Decl | None:
        return self.decls.get((o.namespace, o.name))

    def references(self, d: Decl) -> list[Occurrence]:
        return [o for o in self.occurrences if o.namespace == d.namespace and o.name == d.name]

    def window_at(self, line: int, column: int) -> Window | None:
        best = None
        for w in self.windows:
            s = w.span
            if (s.line, s.column) <= (line, column) <= (s.end_line, s.end_column):
                best = w
        return best

    def names(self, kinds: set[str] | None = None) -> list[Decl]:
        return [d for d in self.decls.values() if kinds is None or d.kind in kinds]


def _singular(table: str) -> str:
    return {"blocks": "block", "vars": "var", "labs": "lab"}.get(table, table[:-1] if table.endswith("s") else table)


def build(text: str, path: str) -> Index:
    """Compile `text` (verifier included, no graph) and index it."""
    if text.startswith("\ufeff"):
        text = text[1:]
    result = compile_source(text, path, verify=True, lower=False)
    idx = Index(path, text, result.diagnostics)
    module = result.module
    if module is None:
        return idx
    idx.parsed = True
    idx.module = module
    from rxwatch.compiler.symbols import build as build_symbols

    sym = build_symbols(module)
    idx.parents = dict(getattr(sym, "parent", {}) or {})
    decl_spans: set[tuple[int, int]] = set()
    for f in dataclasses.fields(sym):
        table = getattr(sym, f.name)
        if not isinstance(table, dict):
            continue
        kind = _singular(f.name)
        for name, node in table.items():
            label = getattr(node, "name", None) if kind != "source" else getattr(node, "id", None)
            if not isinstance(label, ast.Name):
                continue
            if f.name == "vars":
                kind_here = "var"
            else:
                kind_here = kind
            d = Decl(name, kind_here, node, label.span)
            idx.decls.setdefault((d.namespace, name), d)
            decl_spans.add((label.span.line, label.span.column))
    _walk(module, idx, decl_spans)
    idx.occurrences.sort(key=lambda o: (o.span.line, o.span.column))
    return idx


_KINDS: dict[type, tuple[str, tuple[str, ...]]] = {}  # AST class -> ('name' | 'node' | 'skip', its fields)


def _kind(cls: type) -> tuple[str, tuple[str, ...]]:
    k = _KINDS.get(cls)
    if k is None:
        fields = getattr(cls, "__dataclass_fields__", None)
        if fields is None or cls is Span:
            k = ("skip", ())
        else:
            names = tuple(fields)
            is_name = cls in (ast.Name, ast.Ref) or ("text" in names and "span" in names and len(names) <= 3 and "name" not in names)
            k = ("name" if is_name else "node", names)
        _KINDS[cls] = k
    return k


def _walk(module, idx: Index, decl_spans: set[tuple[int, int]]) -> None:
    seen: set[tuple[str, int, int]] = set()
    visited: set[int] = set()
    stack: list[tuple[object, str, str]] = [(module, "", "")]
    leaf = (str, int, float, bool, type(None))
    while stack:
        obj, fname, owner = stack.pop()
        if isinstance(obj, (tuple, list)):
            stack.extend((x, fname, owner) for x in obj if not isinstance(x, leaf))
            continue
        kind, fields = _kind(type(obj))
        if kind == "skip":
            continue
        if kind == "name":
            if fname in NOT_REFERENCES:
                continue
            name = obj.name if isinstance(obj, ast.Ref) else obj.text
            if not isinstance(name, str):
                continue
            locator = getattr(obj, "locator", None)
            if isinstance(locator, str):
                if idx._locators is None:
                    idx._locators = {}
                idx._locators[(obj.span.line, obj.span.column)] = locator
            # a citation's id (`cite a "4.4"`), a source's own id: the sources' names
            ns = "source" if fname in SOURCE_FIELDS or "Citation" in owner or (owner == "Source" and fname == "id") else "name"
            if (ns, name) not in idx.decls:
                # a source id written where the field is not a citation list, or the reverse
                other = "name" if ns == "source" else "source"
                if (other, name) in idx.decls and ns == "name" and fname not in ("name", "target", "action", "var", "block"):
                    ns = other
                else:
                    continue
            key = (name, obj.span.line, obj.span.column)
            if key in seen or obj.span.line == 0:
                continue
            seen.add(key)
            is_decl = (obj.span.line, obj.span.column) in decl_spans and idx.decls[(ns, name)].span == obj.span
            idx.occurrences.append(Occurrence(name, ns, obj.span, is_decl))
            continue
        if id(obj) in visited:
            continue
        visited.add(id(obj))
        cls = type(obj).__name__
        if cls == "Window":
            idx.windows.append(Window(obj, obj.span))
        for f in fields:
            v = getattr(obj, f)
            if not isinstance(v, leaf):
                stack.append((v, f, cls))


def _is_name(obj) -> bool:
    """A name as written (`ast.Name`), a reference in an expression (`ast.Ref`), or any small
    node that is a name with extras (a citation: the source id and its locator)."""
    if isinstance(obj, (ast.Name, ast.Ref)):
        return True
    if not dataclasses.is_dataclass(obj) or isinstance(obj, type):
        return False
    names = [f.name for f in dataclasses.fields(obj)]
    return "text" in names and "span" in names and len(names) <= 3 and "name" not in names and isinstance(getattr(obj, "text"), str)


def _locators(text: str, idx: Index) -> None:
    """`cite kineret-eu-smpc "4.4"`: the string after a cited source id, by the id's position."""
    from . import grammar

    try:
        tree = grammar.parse_full(text)
    except Exception:
        return
    for t in grammar.tokens(tree):
        if t.parent.data == "cite" or getattr(t.parent, "data", "") in ("citation", "cite_item"):
            kids = t.parent.children
            if t.type == "STRING" and t.index > 0:
                prev = kids[t.index - 1]
                if isinstance(prev, grammar.Token) and prev.type in ("SOURCE_ID", "NAME"):
                    idx._locators[(prev.line, prev.column)] = _unquote(str(t.token))


def _unquote(s: str) -> str:
    if s.startswith('"""'):
        return s[3:-3].strip()
    return s[1:-1].replace('\\"', '"').replace("\\\\", "\\")


# ------------------------------------------------------------------ words for hover


def _shift(day, amount, unit: str, sign: int = 1):
    from rxwatch.simulator.expr import shift  # the simulator's calendar: the words say what a replay does

    return shift(day, sign * int(amount), str(unit))


def window_words(w, today=None, tolerance=None) -> str:
    """A due window in words: when it opens and closes, counted from the day of the action,
    and the dates it gives for an action taken today (calendar arithmetic, as the simulator's)."""
    import datetime

    if getattr(w, "tolerance", None) is None and getattr(w, "point", False) and tolerance is not None:
        w = _WithTolerance(w, tolerance)
    words = _window_words(w)
    start, end, unit = getattr(w, "start", None), getattr(w, "end", None), getattr(w, "unit", None)
    if start is None or end is None or not unit:
        return words
    today = today or datetime.date.today()
    tol = getattr(w, "tolerance", None)
    try:
        opens, closes = _shift(today, start, unit), _shift(today, end, unit)
        if tol is not None:
            ta, tu = (tol.get("amount"), tol.get("unit")) if isinstance(tol, dict) else (tol.amount, tol.unit)
            opens, closes = _shift(opens, ta, tu, -1), _shift(closes, ta, tu)
    except (TypeError, ValueError, AttributeError):
        return words
    fmt = "%-d %B %Y"
    return f"{words}.\n\nFor an action today ({today.strftime(fmt)}): opens {opens.strftime(fmt)}, closes {closes.strftime(fmt)}."


class _WithTolerance:
    """A due point (`due 3 months`) seen with the protocol's `schedule tolerance`."""

    def __init__(self, w, tolerance) -> None:
        self.start, self.end, self.unit = w.start, w.end, w.unit
        self.every = getattr(w, "every", False)
        self.tolerance = tolerance


def schedule_tolerance(module):
    """The protocol's `schedule tolerance` duration (amount, unit), or None."""
    for s in getattr(module, "settings", ()):
        if s.kind in ("tolerance", "schedule"):
            return s.duration
    return None


def _window_words(w) -> str:
    start, end, unit = getattr(w, "start", None), getattr(w, "end", None), getattr(w, "unit", "")
    every = bool(getattr(w, "every", False))
    tol = getattr(w, "tolerance", None)

    def amount(n, u):
        u = str(u)
        base = u[:-1] if u.endswith("s") else u
        return f"{n} {base}{'' if n == 1 else 's'}"

    if start is None:
        return "a due window"
    lead = "repeats: each time a result fulfils it, the same order opens again, counted from that day; " if every else ""
    if tol is not None:
        ta, tu = (getattr(tol, "amount", None), getattr(tol, "unit", None)) if not isinstance(tol, dict) else (tol.get("amount"), tol.get("unit"))
        return (f"{lead}due {amount(start, unit)} after the action, give or take {amount(ta, tu)} (the schedule tolerance): "
                f"opens {amount(start, unit)} minus {amount(ta, tu)} after it, closes {amount(end, unit)} plus {amount(ta, tu)} after it")
    if start == 0:
        return f"{lead}due within {amount(end, unit)}: opens on the day of the action, closes {amount(end, unit)} after it"
    if start == end:
        return f"{lead}due {amount(start, unit)} after the action (opens and closes that day)"
    return f"{lead}due between {amount(start, unit)} and {amount(end, unit)} after the action: opens {amount(start, unit)} after it, closes {amount(end, unit)} after it"


def decl_text(text: str, span: Span, max_lines: int = 8) -> str:
    """The declaration as written: its first line when it has a block, else up to `max_lines`."""
    lines = text.splitlines()
    if not span.line or span.line > len(lines):
        return ""
    chunk = lines[span.line - 1 : min(span.end_line or span.line, len(lines))]
    if chunk and chunk[0].rstrip().endswith("{"):
        return chunk[0].strip()
    if len(chunk) > max_lines:
        chunk = chunk[:max_lines] + ["  ..."]
    indent = min((len(l) - len(l.lstrip()) for l in chunk if l.strip()), default=0)
    return "\n".join(l[indent:] for l in chunk)


def hover_markdown(idx: Index, d: Decl, locator: str | None = None) -> str:
    node = d.node
    parts = [f"**{d.kind}** `{d.name}`"]
    desc = getattr(node, "description", None) or getattr(node, "title", None)
    if desc:
        parts.append(str(desc))
    if d.kind == "source":
        kind = getattr(node, "kind", None)
        kind_text = getattr(kind, "text", None)
        if kind_text:
            if kind_text == "ai-summary":
                parts.append(f"kind: `{kind_text}`: **an AI summary, not a primary source** (rules resting only on it are flagged W605)")
            else:
                parts.append(f"kind: `{kind_text}`")
        if getattr(node, "url", None):
            parts.append(f"URL: <{node.url}>")
        if getattr(node, "doi", None):
            parts.append(f"DOI: [{node.doi}](https://doi.org/{node.doi})")
        if getattr(node, "note", None):
            parts.append(f"note: {node.note}")
        if locator:
            parts.append(f"cited at: **{locator}**")
    elif d.kind == "let":
        parts.append(f"defined as `{getattr(node, 'text', '')}`")
    elif d.kind in ("state", "track"):
        facts = []
        if d.kind == "state":
            if getattr(node, "tracks", ()):
                facts.append("parallel: " + ", ".join(f"`{t.name.text}`" for t in node.tracks) + " side by side")
            elif getattr(node, "states", ()):
                facts.append("compound: " + ", ".join(f"`{c.name.text}`" for c in node.states))
            kind = getattr(node, "kind", "normal")
            if kind != "normal":
                facts.append(kind)
            sev = getattr(node, "severity", None)
            if sev is not None:
                facts.append(f"severity {sev.text}")
        chain = []
        p = idx.parents.get(d.name)
        while p is not None and p not in chain:
            chain.append(p)
            p = idx.parents.get(p)
        if chain:
            facts.append("in " + " < ".join(f"`{c}`" for c in chain))
        if facts:
            parts.append("; ".join(facts))
    shown = decl_text(idx.text, getattr(node, "span", d.span))
    if shown:
        parts.append("```rxw\n" + shown + "\n```")
    return "\n\n".join(parts)
