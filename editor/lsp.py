"""`rxwatch lsp`: a Language Server for protocol files (pygls over standard input and output).

- diagnostics as the author types (debounced), the compiler's and the verifier's, with the
  codes and messages of `rxwatch check`; while the text does not parse, its syntax errors and
  the last good parse's findings on untouched lines, and the other features keep working on
  the last text that parsed, its lines mapped to the text as edited (`LineMap`);
- hover: a name's kind, description and declaration, a derived value's definition, a source's
  title, kind (an AI summary said to be one), URL, DOI and the locator it is cited at, a due
  window in words;
- go to definition, find references, rename: every declared name (labs, facts, variables,
  events, actions, derived values, states, tracks, rule blocks, sources, drugs...);
- completion: the keywords and the declared names the grammar accepts at the cursor;
- document symbols: sections (`# ---- name` comments), declarations, states with their
  nested states, tracks and handlers, rule blocks;
- quick fixes for "did you mean" diagnostics; formatting with `rxwatch fmt`'s formatter;
- semantic tokens: highlighting from the parse (keywords, strings, comments, each declared
  name by its kind), for editors that have no TextMate grammar.

The work is in rxwatch.editor.index (what a text declares and uses) and rxwatch.editor.fmt;
this module translates between them and the protocol (positions are UTF-16, as LSP wants).
"""

from __future__ import annotations

import asyncio
import logging
import re
from concurrent.futures import ThreadPoolExecutor

from lsprotocol import types as lsp
from pygls.lsp.server import LanguageServer
from pygls.uris import to_fs_path

from . import grammar
from .index import SECTION, Decl, Index, build, hover_markdown, schedule_tolerance, window_words

DEBOUNCE_SECONDS = 0.02
"""How long the server waits after the first change of a burst before compiling; changes that
arrive meanwhile, or while it compiles, are coalesced into one more compile of the newest text."""

NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
SOURCE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_]*(?:[-.][A-Za-z0-9_]+)*\Z")
DID_YOU_MEAN = re.compile(r"did you mean '([^']+)'\?")

log = logging.getLogger(__name__)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("rxwatch")
    except PackageNotFoundError:
        return "unknown"


# ------------------------------------------------------------------ positions


def _utf16(s: str) -> int:
    return len(s.encode("utf-16-le")) // 2


_UNITS = {
    "utf-8": lambda s: len(s.encode("utf-8", "surrogatepass")),
    "utf-16": _utf16,
    "utf-32": len,
}


class Lines:
    """Convert between 1-based (line, column) in characters and LSP positions, counted in the
    units the client and the server agreed on (UTF-16 unless the client asked for UTF-8 or
    UTF-32, as Neovim does)."""

    def __init__(self, text: str, encoding: str = "utf-16") -> None:
        self.lines = text.split("\n")
        self.units = _UNITS.get(str(getattr(encoding, "value", encoding)).lower(), _utf16)

    def position(self, line: int, column: int) -> lsp.Position:
        if line <= 0:
            return lsp.Position(0, 0)
        if line > len(self.lines):
            return lsp.Position(len(self.lines) - 1, self.units(self.lines[-1]))
        text = self.lines[line - 1]
        return lsp.Position(line - 1, self.units(text[: max(0, column - 1)]))

    def range(self, span) -> lsp.Range:
        if not span.line:
            return lsp.Range(lsp.Position(0, 0), lsp.Position(0, 0))
        start = self.position(span.line, span.column or 1)
        end_line = span.end_line or span.line
        end_col = span.end_column if span.end_column else len(self.lines[min(end_line, len(self.lines)) - 1])
        end = self.position(end_line, end_col + 1)
        if (end.line, end.character) < (start.line, start.character):
            end = start
        return lsp.Range(start, end)

    def from_lsp(self, pos: lsp.Position) -> tuple[int, int]:
        """1-based (line, column) of an LSP position."""
        line = pos.line + 1
        if pos.line >= len(self.lines):
            return line, 1
        text = self.lines[pos.line]
        units = 0
        for i, ch in enumerate(text):
            if units >= pos.character:
                return line, i + 1
            units += self.units(ch)
        return line, len(text) + 1

    def end(self) -> lsp.Position:
        return lsp.Position(len(self.lines) - 1, self.units(self.lines[-1]))


# ------------------------------------------------------------------ the server


class RxwatchServer(LanguageServer):
    def __init__(self) -> None:
        super().__init__("rxwatch", _version())
        self.good: dict[str, Index] = {}  # uri -> the index of the last text that parsed
        self.latest: dict[str, Index] = {}  # uri -> the index of the latest text
        self.tasks: dict[str, asyncio.Task] = {}
        self.dirty: dict[str, bool] = {}
        self.compiler = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rxwatch-compile")
        self.debounce = DEBOUNCE_SECONDS

    @property
    def encoding(self) -> str:
        """The position encoding agreed at initialisation (UTF-16 before it)."""
        try:
            enc = self.server_capabilities.position_encoding
        except Exception:
            enc = None
        return str(getattr(enc, "value", enc) or "utf-16")

    # -- compiling

    def path_of(self, uri: str) -> str:
        try:
            return to_fs_path(uri) or uri
        except Exception:
            return uri

    async def compile(self, uri: str, text: str) -> Index:
        loop = asyncio.get_running_loop()
        idx = await loop.run_in_executor(self.compiler, build, text, self.path_of(uri))
        self.latest[uri] = idx
        if idx.parsed:
            self.good[uri] = idx
        return idx

    def schedule(self, uri: str, delay: float) -> None:
        """Check `uri` again: after `delay`, then as long as it keeps changing. Edits that arrive
        while waiting or compiling are coalesced: one compile of the newest text follows, never
        a queue of stale ones (a compile takes longer than a keystroke)."""
        self.dirty[uri] = True
        task = self.tasks.get(uri)
        if task is None or task.done():
            self.tasks[uri] = asyncio.ensure_future(self._checker(uri, delay))

    async def _checker(self, uri: str, delay: float) -> None:
        try:
            if delay:
                await asyncio.sleep(delay)
            while self.dirty.pop(uri, False):
                doc = self.workspace.get_text_document(uri)
                text, version = doc.source, doc.version
                idx = await self.compile(uri, text)
                if self.dirty.get(uri):  # edited while compiling: compile the newest text first
                    continue
                self.publish(uri, idx, version)
        except asyncio.CancelledError:
            pass
        except Exception as e:  # a bug of rxwatch, never the author's: said in the editor's log, the server goes on
            log.exception("checking %s", uri)
            self.window_log_message(lsp.LogMessageParams(
                type=lsp.MessageType.Error, message=f"rxwatch: internal error while checking {uri}: {type(e).__name__}: {e}"))

    def publish(self, uri: str, idx: Index, version: int | None) -> None:
        lines = Lines(idx.text, self.encoding)
        out = []
        diags = list(idx.diagnostics)
        good = self.good.get(uri)
        if not idx.parsed and good is not None:  # the syntax errors, and the last good parse's findings still in place
            diags += carried(good, idx.text)
        for d in diags:
            if d.span.path not in (idx.path, "<string>"):
                continue
            out.append(lsp.Diagnostic(
                range=lines.range(d.span),
                message=d.message,
                severity=lsp.DiagnosticSeverity.Error if d.is_error else lsp.DiagnosticSeverity.Warning,
                code=d.code or None,
                source="rxwatch",
            ))
        self.text_document_publish_diagnostics(lsp.PublishDiagnosticsParams(uri=uri, diagnostics=out, version=version))

    async def view(self, uri: str) -> tuple[Index | None, LineMap | None]:
        """The index to answer a request with, and how its lines map to the editor's text (the
        identity when the text parses; else the last good parse, its lines moved as edited)."""
        idx = await self.index(uri)
        if idx is None:
            return None, None
        current = self.workspace.get_text_document(uri).source.lstrip("\ufeff")
        return idx, LineMap(idx.text, current)

    async def index(self, uri: str) -> Index | None:
        """The index to answer a request with: of the current text when it parses, else of the
        last text that did."""
        doc = self.workspace.get_text_document(uri)
        text = doc.source.lstrip("\ufeff")
        latest = self.latest.get(uri)
        if latest is None or latest.text != text:
            latest = await self.compile(uri, doc.source)
        return latest if latest.parsed else self.good.get(uri)


server = RxwatchServer()


class LineMap:
    """Lines of the last text that parsed (old) and of the text in the editor (new): a line the
    author has not touched maps exactly; a position on a changed line maps to nothing; a range
    on a changed line moves with the unchanged lines before it."""

    def __init__(self, old: str, new: str) -> None:
        import bisect
        import difflib

        self.same = old == new
        self.to_new: dict[int, int] = {}  # 0-based
        self.to_old: dict[int, int] = {}
        self._starts: list[int] = []
        self._deltas: list[int] = []
        if self.same:
            return
        for a, b, size in difflib.SequenceMatcher(None, old.split("\n"), new.split("\n"), autojunk=False).get_matching_blocks():
            for k in range(size):
                self.to_new[a + k] = b + k
                self.to_old[b + k] = a + k
            if size:
                self._starts.append(a)
                self._deltas.append(b - a)
        self._bisect = bisect.bisect_right

    def position_to_old(self, pos: lsp.Position) -> lsp.Position | None:
        if self.same:
            return pos
        line = self.to_old.get(pos.line)
        return None if line is None else lsp.Position(line, pos.character)

    def _line_to_new(self, line: int) -> int:
        if line in self.to_new:
            return self.to_new[line]
        k = self._bisect(self._starts, line) - 1
        return max(0, line + (self._deltas[k] if k >= 0 else 0))

    def range_to_new(self, r: lsp.Range) -> lsp.Range:
        if self.same:
            return r
        return lsp.Range(lsp.Position(self._line_to_new(r.start.line), r.start.character),
                         lsp.Position(self._line_to_new(r.end.line), r.end.character))

    def symbol_to_new(self, s: lsp.DocumentSymbol) -> lsp.DocumentSymbol:
        if self.same:
            return s
        kids = [self.symbol_to_new(c) for c in s.children] if s.children else None
        return lsp.DocumentSymbol(name=s.name, kind=s.kind, range=self.range_to_new(s.range),
                                  selection_range=self.range_to_new(s.selection_range), detail=s.detail, children=kids)


def carried(good: Index, text: str) -> list:
    """The findings of the last text that parsed (`good`), moved to where their lines are in
    `text`: a finding whose lines are unchanged (the same text, maybe moved up or down) is
    kept, at its new line; one on a line the author changed since is dropped. Syntax errors
    are not carried (the new text has its own)."""
    import dataclasses
    import difflib

    old_lines, new_lines = good.text.split("\n"), text.split("\n")
    moved: dict[int, int] = {}  # 1-based old line -> new line
    for a, b, size in difflib.SequenceMatcher(None, old_lines, new_lines, autojunk=False).get_matching_blocks():
        for k in range(size):
            moved[a + k + 1] = b + k + 1
    out = []
    for d in good.diagnostics:
        if d.code.startswith("E1") or not d.span.line:
            continue
        first, last = moved.get(d.span.line), moved.get(d.span.end_line or d.span.line)
        if first is None or last is None or last - first != (d.span.end_line or d.span.line) - d.span.line:
            continue
        span = dataclasses.replace(d.span, line=first, end_line=last if d.span.end_line else 0)
        out.append(dataclasses.replace(d, span=span))
    return out


def _at(idx: Index, pos: lsp.Position):
    lines = Lines(idx.text, server.encoding)
    line, col = lines.from_lsp(pos)
    return lines, line, col


@server.feature(lsp.TEXT_DOCUMENT_DID_OPEN)
async def did_open(ls: RxwatchServer, params: lsp.DidOpenTextDocumentParams) -> None:
    ls.schedule(params.text_document.uri, 0)


@server.feature(lsp.TEXT_DOCUMENT_DID_CHANGE)
async def did_change(ls: RxwatchServer, params: lsp.DidChangeTextDocumentParams) -> None:
    ls.schedule(params.text_document.uri, ls.debounce)


@server.feature(lsp.TEXT_DOCUMENT_DID_SAVE)
async def did_save(ls: RxwatchServer, params: lsp.DidSaveTextDocumentParams) -> None:
    ls.schedule(params.text_document.uri, 0)


@server.feature(lsp.TEXT_DOCUMENT_DID_CLOSE)
async def did_close(ls: RxwatchServer, params: lsp.DidCloseTextDocumentParams) -> None:
    uri = params.text_document.uri
    task = ls.tasks.pop(uri, None)
    ls.dirty.pop(uri, None)
    if task is not None:
        task.cancel()
    ls.good.pop(uri, None)
    ls.latest.pop(uri, None)
    ls.text_document_publish_diagnostics(lsp.PublishDiagnosticsParams(uri=uri, diagnostics=[]))


@server.feature(lsp.TEXT_DOCUMENT_HOVER)
async def hover(ls: RxwatchServer, params: lsp.HoverParams) -> lsp.Hover | None:
    idx, lm = await ls.view(params.text_document.uri)
    pos = lm.position_to_old(params.position) if idx is not None else None
    if pos is None:
        return None
    lines, line, col = _at(idx, pos)
    o = idx.occurrence_at(line, col)
    if o is not None:
        d = idx.decl_of(o)
        if d is not None:
            locator = idx.locators.get((o.span.line, o.span.column)) if o.namespace == "source" else None
            return lsp.Hover(
                contents=lsp.MarkupContent(kind=lsp.MarkupKind.Markdown, value=hover_markdown(idx, d, locator)),
                range=lm.range_to_new(lines.range(o.span)),
            )
    w = idx.window_at(line, col)
    if w is not None:
        return lsp.Hover(
            contents=lsp.MarkupContent(kind=lsp.MarkupKind.Markdown,
                                       value=window_words(w.node, tolerance=schedule_tolerance(idx.module))),
            range=lm.range_to_new(lines.range(w.span)),
        )
    return None


def _decl_at(idx: Index, pos: lsp.Position) -> tuple[Decl | None, object]:
    lines, line, col = _at(idx, pos)
    o = idx.occurrence_at(line, col)
    return (idx.decl_of(o) if o is not None else None), o


@server.feature(lsp.TEXT_DOCUMENT_DEFINITION)
async def definition(ls: RxwatchServer, params: lsp.DefinitionParams) -> lsp.Location | None:
    idx, lm = await ls.view(params.text_document.uri)
    pos = lm.position_to_old(params.position) if idx is not None else None
    if pos is None:
        return None
    d, _o = _decl_at(idx, pos)
    if d is None:
        return None
    return lsp.Location(uri=params.text_document.uri, range=lm.range_to_new(Lines(idx.text, server.encoding).range(d.span)))


@server.feature(lsp.TEXT_DOCUMENT_REFERENCES)
async def references(ls: RxwatchServer, params: lsp.ReferenceParams) -> list[lsp.Location] | None:
    idx, lm = await ls.view(params.text_document.uri)
    pos = lm.position_to_old(params.position) if idx is not None else None
    if pos is None:
        return None
    d, _o = _decl_at(idx, pos)
    if d is None:
        return None
    lines = Lines(idx.text, server.encoding)
    include = params.context.include_declaration if params.context else True
    return [lsp.Location(uri=params.text_document.uri, range=lm.range_to_new(lines.range(o.span)))
            for o in idx.references(d) if include or not o.is_decl]


@server.feature(lsp.TEXT_DOCUMENT_PREPARE_RENAME)
async def prepare_rename(ls: RxwatchServer, params: lsp.PrepareRenameParams):
    idx, lm = await ls.view(params.text_document.uri)
    if idx is None or not lm.same:  # a rename edits the text: only a text that parses
        return None
    d, o = _decl_at(idx, params.position)
    if d is None:
        return None
    return lsp.PrepareRenamePlaceholder(range=Lines(idx.text, server.encoding).range(o.span), placeholder=d.name)


@server.feature(lsp.TEXT_DOCUMENT_RENAME)
async def rename(ls: RxwatchServer, params: lsp.RenameParams) -> lsp.WorkspaceEdit | None:
    idx, lm = await ls.view(params.text_document.uri)
    if idx is None:
        return None
    if not lm.same:
        raise ValueError("the protocol has syntax errors: fix them first (a rename needs a text that parses)")
    d, _o = _decl_at(idx, params.position)
    if d is None:
        return None
    new = params.new_name
    pattern = SOURCE_ID if d.namespace == "source" else NAME
    if not pattern.match(new):
        raise ValueError(f"'{new}' is not a valid {'source id' if d.namespace == 'source' else 'name'}")
    if new in grammar.keywords():
        raise ValueError(f"'{new}' is a keyword of the language")
    if new != d.name and (d.namespace, new) in idx.decls:
        other = idx.decls[(d.namespace, new)]
        raise ValueError(f"'{new}' is already declared ({other.kind}, line {other.span.line})")
    lines = Lines(idx.text, server.encoding)
    edits = [lsp.TextEdit(range=lines.range(o.span), new_text=new) for o in idx.references(d)]
    return lsp.WorkspaceEdit(changes={params.text_document.uri: edits})


# -- completion

# the previous word -> the kinds of names that may follow it
_FOLLOWS = {
    "->": {"state"},
    "use": {"block"},
    "do": {"action"},
    "of": {"action"},
    "event": {"event"},
    "orders": {"lab"},
    "by": {"lab"},
    "set": {"var"},
    "since": {"action"},
    "fact": {"fact"},
}
_VALUE_KINDS = {"lab", "fact", "var", "let"}


_PLACEHOLDER = "rxwatch_completion_placeholder"


def _expected_terminals(prefix: str) -> set[str] | None:
    """The terminals the parser accepts after `prefix` (None when the prefix does not parse)."""
    try:
        ip = grammar.lark_full().parse_interactive(prefix)
        ip.exhaust_lexer()
        return set(ip.accepts())
    except Exception:
        return None


@server.feature(lsp.TEXT_DOCUMENT_COMPLETION, lsp.CompletionOptions(trigger_characters=[">", " "]))
async def completion(ls: RxwatchServer, params: lsp.CompletionParams) -> lsp.CompletionList:
    uri = params.text_document.uri
    doc = ls.workspace.get_text_document(uri)
    text = doc.source
    lines = Lines(text, ls.encoding)
    line, col = lines.from_lsp(params.position)
    line_text = lines.lines[line - 1] if line - 1 < len(lines.lines) else ""
    before = line_text[: col - 1]
    m = re.search(r"[A-Za-z0-9_.\-]*$", before)
    word = m.group(0) if m else ""
    offset = sum(len(l) + 1 for l in lines.lines[: line - 1]) + (col - 1) - len(word)
    prefix = text[:offset].lstrip("\ufeff")
    expected = await asyncio.get_running_loop().run_in_executor(ls.compiler, _expected_terminals, prefix)
    idx = await ls.index(uri)
    if idx is None:
        # nothing parsed yet: a name where the cursor is (what the author is about to type),
        # else the text without the line being typed
        loop = asyncio.get_running_loop()
        blanked = lines.lines[:]
        blanked[line - 1] = ""
        for attempt in (text[: offset + len(word)] + " " + _PLACEHOLDER + " " + text[offset + len(word):], "\n".join(blanked)):
            idx = await loop.run_in_executor(ls.compiler, build, attempt, ls.path_of(uri))
            if idx.parsed:
                break
        idx = idx if idx.parsed else None
    items: list[lsp.CompletionItem] = []
    names = {t.name: t for t in grammar.lark_full().terminals}
    # keywords the grammar accepts here (all of them when the text before the cursor does not parse)
    kws = grammar.keywords() if expected is None else sorted(
        names[t].pattern.value for t in expected if t in names and names[t].pattern.type == "str" and grammar._WORD.match(names[t].pattern.value))
    for kw in kws:
        items.append(lsp.CompletionItem(label=kw, kind=lsp.CompletionItemKind.Keyword))
    if idx is not None:
        want_name = expected is None or "NAME" in expected
        want_source = expected is None or "SOURCE_ID" in expected
        prev = re.findall(r"->|[A-Za-z_]+", prefix[-200:])
        kinds = _FOLLOWS.get(prev[-1]) if prev else None
        if kinds is None and want_name and expected is not None and not want_source:
            kinds = None  # an expression, or a place any name may stand
        for d in idx.decls.values():
            if d.name == _PLACEHOLDER:
                continue
            if d.namespace == "source":
                if not want_source or (want_name and not _cite_context(prefix)):
                    continue
            else:
                if not want_name:
                    continue
                if kinds is not None and d.kind not in kinds:
                    continue
            desc = getattr(d.node, "description", None) or getattr(d.node, "title", None)
            items.append(lsp.CompletionItem(
                label=d.name, kind=_KIND_ITEM.get(d.kind, lsp.CompletionItemKind.Variable),
                detail=d.kind, documentation=desc or None))
    return lsp.CompletionList(is_incomplete=False, items=items)


def _cite_context(prefix: str) -> bool:
    """Whether the cursor is in a `cite` list (after `cite` or one of its commas)."""
    tail = prefix[-400:]
    m = re.search(r"\bcite\b((?:\s*[A-Za-z0-9][A-Za-z0-9_.\-]*(?:\s*\"[^\"\n]*\")?\s*,)*)\s*$", tail)
    return m is not None


_KIND_ITEM = {
    "lab": lsp.CompletionItemKind.Field,
    "fact": lsp.CompletionItemKind.Property,
    "var": lsp.CompletionItemKind.Variable,
    "let": lsp.CompletionItemKind.Function,
    "event": lsp.CompletionItemKind.Event,
    "action": lsp.CompletionItemKind.Method,
    "state": lsp.CompletionItemKind.Class,
    "track": lsp.CompletionItemKind.Module,
    "block": lsp.CompletionItemKind.Interface,
    "source": lsp.CompletionItemKind.Reference,
    "drug": lsp.CompletionItemKind.Constant,
}

_KIND_SYMBOL = {
    "protocol": lsp.SymbolKind.Module,
    "source": lsp.SymbolKind.String,
    "lab": lsp.SymbolKind.Field,
    "fact": lsp.SymbolKind.Property,
    "var": lsp.SymbolKind.Variable,
    "let": lsp.SymbolKind.Function,
    "event": lsp.SymbolKind.Event,
    "action": lsp.SymbolKind.Method,
    "state": lsp.SymbolKind.Class,
    "track": lsp.SymbolKind.Namespace,
    "block": lsp.SymbolKind.Interface,
    "drug": lsp.SymbolKind.Object,
    "setting": lsp.SymbolKind.Key,
    "handler": lsp.SymbolKind.Method,
    "section": lsp.SymbolKind.Namespace,
}


# -- outline


def _label(node) -> str | None:
    for attr in ("name", "id"):
        v = getattr(node, attr, None)
        if v is not None and hasattr(v, "text"):
            return v.text
    return None


def _header(idx: Index, span) -> str:
    lines = idx.text.split("\n")
    if not span.line or span.line > len(lines):
        return "?"
    head = lines[span.line - 1][max(0, span.column - 1):]
    return " ".join(head.split("{", 1)[0].split()) or "?"


def _symbol(idx: Index, lines: Lines, node, kind: str) -> lsp.DocumentSymbol:
    from rxwatch.compiler import ast

    name = _label(node) or _header(idx, node.span)
    name_span = getattr(getattr(node, "name", None) or getattr(node, "id", None), "span", None) or node.span
    rng = lines.range(node.span)
    sel = lines.range(name_span)
    children: list[lsp.DocumentSymbol] = []
    if isinstance(node, ast.State):
        for h in node.handlers:
            children.append(lsp.DocumentSymbol(name=_header(idx, h.span), kind=lsp.SymbolKind.Method,
                                               range=lines.range(h.span), selection_range=lines.range(h.span)))
        for sub in (*node.states, *node.tracks):
            children.append(_symbol(idx, lines, sub, "track" if isinstance(sub, ast.Track) else "state"))
    elif isinstance(node, ast.Track):
        for sub in node.states:
            children.append(_symbol(idx, lines, sub, "state"))
    children.sort(key=lambda s: (s.range.start.line, s.range.start.character))
    detail = getattr(node, "description", None) or getattr(node, "title", None)
    if isinstance(detail, str):
        detail = " ".join(detail.split())[:120]
    else:
        detail = None
    return lsp.DocumentSymbol(name=name, kind=_KIND_SYMBOL.get(kind, lsp.SymbolKind.Variable), range=rng,
                              selection_range=sel, detail=detail, children=children or None)


def outline(idx: Index) -> list[lsp.DocumentSymbol]:
    """Sections (`# ---- name` comments at the start of a line), each with the top-level
    declarations under it; states with their handlers, nested states and tracks."""
    import dataclasses

    module = idx.module
    lines = Lines(idx.text, server.encoding)
    tops: list[lsp.DocumentSymbol] = []
    for f in dataclasses.fields(module):
        if f.name in ("states", "tracks", "accepts"):  # nested states are inside `top`
            continue
        value = getattr(module, f.name)
        if not isinstance(value, tuple):
            continue
        kind = "state" if f.name == "top" else {"settings": "setting", "protocol": "protocol", "blocks": "block",
                                                  "vars": "var"}.get(f.name, f.name[:-1] if f.name.endswith("s") else f.name)
        for node in value:
            if dataclasses.is_dataclass(node) and hasattr(node, "span"):
                tops.append(_symbol(idx, lines, node, kind))
    tops.sort(key=lambda s: (s.range.start.line, s.range.start.character))
    text_lines = idx.text.split("\n")
    sections = [(i, m.group(1)) for i, l in enumerate(text_lines) if (m := SECTION.match(l))]
    if not sections:
        return tops
    out: list[lsp.DocumentSymbol] = [s for s in tops if s.range.start.line < sections[0][0]]
    for k, (line, title) in enumerate(sections):
        end = sections[k + 1][0] if k + 1 < len(sections) else len(text_lines)
        kids = [s for s in tops if line <= s.range.start.line < end]
        last = end - 1
        while last > line and not text_lines[last].strip():
            last -= 1
        rng = lsp.Range(lsp.Position(line, 0), lsp.Position(last, lines.units(text_lines[last])))
        out.append(lsp.DocumentSymbol(name=title, kind=lsp.SymbolKind.Namespace, range=rng,
                                      selection_range=lsp.Range(lsp.Position(line, 0), lsp.Position(line, lines.units(text_lines[line]))),
                                      children=kids or None))
    return out


@server.feature(lsp.TEXT_DOCUMENT_DOCUMENT_SYMBOL)
async def document_symbol(ls: RxwatchServer, params: lsp.DocumentSymbolParams) -> list[lsp.DocumentSymbol] | None:
    idx, lm = await ls.view(params.text_document.uri)
    if idx is None or idx.module is None:
        return None
    return [lm.symbol_to_new(s) for s in outline(idx)]


@server.feature(lsp.TEXT_DOCUMENT_CODE_ACTION, lsp.CodeActionOptions(code_action_kinds=[lsp.CodeActionKind.QuickFix]))
async def code_action(ls: RxwatchServer, params: lsp.CodeActionParams) -> list[lsp.CodeAction] | None:
    out = []
    for d in params.context.diagnostics:
        m = DID_YOU_MEAN.search(d.message or "")
        if not m:
            continue
        new = m.group(1)
        out.append(lsp.CodeAction(
            title=f"Change to '{new}'",
            kind=lsp.CodeActionKind.QuickFix,
            diagnostics=[d],
            is_preferred=True,
            edit=lsp.WorkspaceEdit(changes={params.text_document.uri: [lsp.TextEdit(range=d.range, new_text=new)]}),
        ))
    return out or None


# -- semantic tokens: highlighting from the parse, for editors without the TextMate grammar (Neovim, Emacs)

TOKEN_TYPES = ["keyword", "string", "number", "comment", "operator", "type", "macro", "function",
               "variable", "parameter", "property", "event", "method", "class", "namespace", "interface",
               "enum", "decorator"]
_DECL_TOKEN = {"lab": "property", "fact": "parameter", "var": "variable", "let": "function", "event": "event",
               "action": "method", "state": "class", "track": "namespace", "block": "interface", "drug": "enum",
               "source": "decorator"}


def semantic_tokens(idx: Index, encoding: str = "utf-16") -> list[int]:
    """The LSP semantic tokens of an indexed text: keywords, strings, numbers, comments,
    operators, time units, diagnostic codes, and every declared name by its kind."""
    from rxwatch.compiler.checks.names import FUNCTIONS

    text = idx.text
    lines = Lines(text, encoding)
    occ = {(o.span.line, o.span.column): o for o in idx.occurrences}
    spans: list[tuple[int, int, int, str]] = []  # (line, start char, end char, type), 0-based, one line each

    def add(line: int, col: int, value: str, kind: str) -> None:
        for k, part in enumerate(value.split("\n")):
            start = col - 1 if k == 0 else 0
            if part:
                spans.append((line - 1 + k, start, start + len(part), kind))

    try:
        toks = grammar.tokens(grammar.parse_full(text))
    except Exception:
        return []
    prev = 0
    for t in toks:
        tok = t.token
        for off, c in grammar.gap_comments(text[prev : tok.start_pos]):
            pos = prev + off
            line = text.count("\n", 0, pos) + 1
            add(line, pos - (text.rfind("\n", 0, pos) + 1) + 1, c, "comment")
        prev = tok.end_pos
        v, ty = str(tok), tok.type
        if ty == "STRING":
            kind = "string"
        elif ty == "NUMBER":
            kind = "number"
        elif ty == "TIME_UNIT":
            kind = "type"
        elif ty == "DIAG_CODE":
            kind = "macro"
        elif ty in ("NAME", "SOURCE_ID"):
            o = occ.get((tok.line, tok.column))
            d = idx.decl_of(o) if o is not None else None
            if d is not None:
                kind = _DECL_TOKEN.get(d.kind, "variable")
            elif v in FUNCTIONS and text[tok.end_pos : tok.end_pos + 1] == "(":
                kind = "function"
            else:
                continue
        elif grammar._WORD.match(v):
            kind = "function" if v in FUNCTIONS and text[tok.end_pos : tok.end_pos + 1] == "(" else "keyword"
        elif v in ("->", "..", "=", "+", "-", "*", "/") or ty == "COMP_OP":
            kind = "operator"
        else:
            continue
        add(tok.line, tok.column, v, kind)
    for off, c in grammar.gap_comments(text[prev:]):
        pos = prev + off
        add(text.count("\n", 0, pos) + 1, pos - (text.rfind("\n", 0, pos) + 1) + 1, c, "comment")
    out: list[int] = []
    last_line = last_start = 0
    for line, start, end, kind in sorted(spans):
        src = lines.lines[line] if line < len(lines.lines) else ""
        ustart, uend = lines.units(src[:start]), lines.units(src[:end])
        out += [line - last_line, ustart - (last_start if line == last_line else 0), uend - ustart, TOKEN_TYPES.index(kind), 0]
        last_line, last_start = line, ustart
    return out


@server.feature(lsp.TEXT_DOCUMENT_SEMANTIC_TOKENS_FULL,
                lsp.SemanticTokensLegend(token_types=TOKEN_TYPES, token_modifiers=[]))
async def semantic_tokens_full(ls: RxwatchServer, params: lsp.SemanticTokensParams) -> lsp.SemanticTokens | None:
    idx = await ls.index(params.text_document.uri)
    doc = ls.workspace.get_text_document(params.text_document.uri)
    if idx is None or idx.text != doc.source.lstrip("\ufeff"):  # the text does not parse: keep what the editor shows
        return None
    return lsp.SemanticTokens(data=semantic_tokens(idx, ls.encoding))


@server.feature(lsp.TEXT_DOCUMENT_FORMATTING)
async def formatting(ls: RxwatchServer, params: lsp.DocumentFormattingParams) -> list[lsp.TextEdit] | None:
    from .fmt import FormatError, format_text

    doc = ls.workspace.get_text_document(params.text_document.uri)
    text = doc.source
    try:
        new = await asyncio.get_running_loop().run_in_executor(ls.compiler, format_text, text, ls.path_of(doc.uri))
    except FormatError:
        return None  # the diagnostics already show the syntax errors
    if new == text:
        return []
    return [lsp.TextEdit(range=lsp.Range(lsp.Position(0, 0), Lines(text, ls.encoding).end()), new_text=new)]


def main() -> None:
    server.start_io()
