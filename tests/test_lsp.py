"""`rxwatch lsp` end to end: a real server process over stdio, driven by pytest-lsp's client.

Positions are found from the compiler's AST and the grammar's tokens of each shipped protocol
(never typed in), so the tests follow the protocols as they are rewritten. A shipped protocol
that the current grammar cannot parse (its syntax ahead of the front end) is skipped with the
compiler's first error as the reason.
"""

from __future__ import annotations

import asyncio
import re
import sys
import time
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types as lsp
from pytest_lsp import ClientServerConfig, LanguageClient

from rxwatch.compiler import ast, compile_source
from rxwatch.compiler.symbols import walk_expr
from rxwatch.editor import grammar
from rxwatch.editor.fmt import format_text

REPO = Path(__file__).resolve().parent.parent
SHIPPED = sorted((REPO / "protocols").glob("*.rxw"))



# one server for the module (it starts in about 2 s); each test opens its documents under
# addresses of its own, so nothing one test does is seen by another
@pytest_lsp.fixture(scope="module", config=ClientServerConfig(server_command=[sys.executable, "-m", "rxwatch.cli.main", "lsp"]))
async def client(lsp_client: LanguageClient):
    await lsp_client.initialize_session(lsp.InitializeParams(capabilities=lsp.ClientCapabilities(), root_uri=REPO.as_uri()))
    yield
    await lsp_client.shutdown_session()


def _parsed(path: Path) -> str:
    text = path.read_text(encoding="utf-8")
    result = compile_source(text, str(path), verify=False, lower=False)
    syntax = [d for d in result.diagnostics if d.code.startswith("E1")]
    if result.module is None or syntax:
        pytest.skip(f"{path.name} does not parse with the current grammar: {syntax[0].span}: {syntax[0].message}" if syntax else "no AST")
    return text


@pytest.fixture(params=SHIPPED, ids=lambda p: p.stem)
def shipped(request) -> tuple[Path, str]:
    return request.param, _parsed(request.param)


def _pos(span) -> lsp.Position:
    return lsp.Position(span.line - 1, span.column - 1)  # the shipped protocols are ASCII before every name


_OPENED = iter(range(1, 1_000_000))


async def _open(client: LanguageClient, path: Path, text: str) -> str:
    uri = path.with_name(f"{path.stem}-{next(_OPENED)}{path.suffix}").as_uri()
    client.text_document_did_open(lsp.DidOpenTextDocumentParams(text_document=lsp.TextDocumentItem(uri=uri, language_id="rxw", version=1, text=text)))
    await _diagnostics(client, uri)
    return uri


async def _diagnostics(client: LanguageClient, uri: str, timeout: float = 20) -> list[lsp.Diagnostic]:
    client.diagnostics.pop(uri, None)
    deadline = time.monotonic() + timeout
    while uri not in client.diagnostics:
        left = deadline - time.monotonic()
        assert left > 0, "no diagnostics published"
        try:
            await asyncio.wait_for(client.wait_for_notification(lsp.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS), left)
        except asyncio.TimeoutError:
            pass
    return list(client.diagnostics[uri])


def _change(client: LanguageClient, uri: str, version: int, text: str) -> None:
    client.text_document_did_change(lsp.DidChangeTextDocumentParams(
        text_document=lsp.VersionedTextDocumentIdentifier(uri=uri, version=version),
        content_changes=[lsp.TextDocumentContentChangeWholeDocument(text=text)]))


def _module(path: Path, text: str):
    return compile_source(text, str(path), verify=False, lower=False).module


def _guard_refs(module):
    """(Ref, rule) for every name read in a guard, in file order."""
    out = []
    for st in module.states:
        for h in st.handlers:
            for r in h.rules:
                if r.guard is not None:
                    out += [(e, r) for e in walk_expr(r.guard) if isinstance(e, ast.Ref)]
    for b in module.blocks:
        for r in b.rules:
            if r.guard is not None:
                out += [(e, r) for e in walk_expr(r.guard) if isinstance(e, ast.Ref)]
    return sorted(out, key=lambda x: (x[0].span.line, x[0].span.column))


def _name_tokens(text: str, name: str) -> list:
    """Every NAME token spelled `name` in the file, from the grammar's own parse, but a state's
    `severity moderate`, the protocol's `status` and an enumeration's members (words, not
    references to a declaration)."""
    return [t.token for t in grammar.tokens(grammar.parse_full(text))
            if t.type == "NAME" and t.value == name and t.parent.data not in ("severity", "status", "enum_type")]


def _apply(text: str, edits: list[lsp.TextEdit]) -> str:
    lines = text.split("\n")
    offsets = [0]
    for l in lines:
        offsets.append(offsets[-1] + len(l) + 1)
    def off(p):
        return offsets[p.line] + p.character
    for e in sorted(edits, key=lambda e: off(e.range.start), reverse=True):
        text = text[: off(e.range.start)] + e.new_text + text[off(e.range.end):]
    return text


def _messy(text: str) -> str:
    """`text` with the indentation stripped and every blank line doubled, strings as they were."""
    inside = set()
    for t in grammar.tokens(grammar.parse_full(text)):
        if t.type == "STRING" and t.token.end_line > t.token.line:
            inside.update(range(t.token.line + 1, t.token.end_line + 1))
    out = []
    for n, line in enumerate(text.split("\n"), 1):
        if n in inside:
            out.append(line)
        elif not line.strip():
            out += ["", ""]
        else:
            out.append(line.strip())
    return "\n".join(out)


# ------------------------------------------------------------------ diagnostics


@pytest.mark.asyncio(loop_scope="module")
async def test_typo_gives_e202_with_its_range_and_a_quick_fix(client: LanguageClient, shipped):
    path, text = shipped
    uri = await _open(client, path, text)
    module = _module(path, text)
    lets = {l.name.text for l in module.lets}
    ref, _rule = next((r, rule) for r, rule in _guard_refs(module) if r.name in lets)
    typo = ref.name + "x"
    assert typo not in lets
    lines = text.split("\n")
    line = lines[ref.span.line - 1]
    lines[ref.span.line - 1] = line[: ref.span.column - 1] + typo + line[ref.span.column - 1 + len(ref.name):]
    _change(client, uri, 2, "\n".join(lines))
    diags = await _diagnostics(client, uri)
    e202 = [d for d in diags if d.code == "E202"]
    assert len(e202) == 1, [(d.code, d.message) for d in diags]
    d = e202[0]
    assert d.severity == lsp.DiagnosticSeverity.Error
    assert d.range.start == lsp.Position(ref.span.line - 1, ref.span.column - 1)
    assert d.range.end == lsp.Position(ref.span.line - 1, ref.span.column - 1 + len(typo))
    # the same message as `rxwatch check`
    check = [x for x in compile_source("\n".join(lines), str(path)).diagnostics if x.code == "E202"]
    assert d.message == check[0].message and f"did you mean '{ref.name}'" in d.message
    actions = await client.text_document_code_action_async(lsp.CodeActionParams(
        text_document=lsp.TextDocumentIdentifier(uri=uri), range=d.range,
        context=lsp.CodeActionContext(diagnostics=[d])))
    assert actions and actions[0].kind == lsp.CodeActionKind.QuickFix
    fixed = _apply("\n".join(lines), actions[0].edit.changes[uri])
    assert fixed == text


@pytest.mark.asyncio(loop_scope="module")
async def test_verifier_findings_arrive_and_syntax_errors_keep_the_last_good_parse(client: LanguageClient, shipped):
    path, text = shipped
    uri = await _open(client, path, text)
    # a guard that can never hold: the verifier's E606, as check reports it
    module = _module(path, text)
    ref, rule = _guard_refs(module)[0]
    lines = text.split("\n")
    line = lines[ref.span.line - 1]
    lines[ref.span.line - 1] = line[: ref.span.column - 1] + "(1 > 2) and " + line[ref.span.column - 1:]
    broken_guard = "\n".join(lines)
    _change(client, uri, 2, broken_guard)
    diags = await _diagnostics(client, uri)
    expected = [(x.code, x.message) for x in compile_source(broken_guard, str(path)).diagnostics]
    assert sorted((d.code, d.message) for d in diags) == sorted(expected)
    assert any(c.startswith(("E6", "W6")) for c, _ in expected)
    # a syntax error: its diagnostic, the last good parse's findings where they were (a line
    # added above them moves them down one), and hover still answers from the last good parse
    before = sorted((d.code, d.message, d.range.start.line + 1) for d in diags)
    _change(client, uri, 3, "# a new first line\n" + broken_guard + "\nstate {\n")
    diags = await _diagnostics(client, uri)
    assert any(d.code.startswith("E1") for d in diags)
    assert sorted((d.code, d.message, d.range.start.line) for d in diags if not d.code.startswith("E1")) == before
    # the name is where the author sees it now: one line down, after the inserted `(1 > 2) and `
    now = lsp.Position(ref.span.line, ref.span.column - 1 + len("(1 > 2) and "))
    h = await client.text_document_hover_async(lsp.HoverParams(text_document=lsp.TextDocumentIdentifier(uri=uri), position=now))
    assert h is not None and f"`{ref.name}`" in h.contents.value
    assert h.range.start == now
    refs = await client.text_document_references_async(lsp.ReferenceParams(
        text_document=lsp.TextDocumentIdentifier(uri=uri), position=now, context=lsp.ReferenceContext(include_declaration=True)))
    current = ("# a new first line\n" + broken_guard).split("\n")
    assert refs and all(current[r.range.start.line][r.range.start.character :].startswith(ref.name) for r in refs)
    with pytest.raises(Exception, match="syntax errors"):
        await client.text_document_rename_async(lsp.RenameParams(
            text_document=lsp.TextDocumentIdentifier(uri=uri), position=now, new_name="whatever"))


@pytest.mark.asyncio(loop_scope="module")
async def test_diagnostics_are_debounced_and_fast(client: LanguageClient, shipped):
    path, text = shipped
    uri = await _open(client, path, text)
    # a burst of edits: one compile, of the last text
    for v in range(2, 7):
        _change(client, uri, v, text + "\n" + "#" * v + "\n")
    start = time.monotonic()
    diags = await _diagnostics(client, uri)
    elapsed = time.monotonic() - start
    assert not any(d.severity == lsp.DiagnosticSeverity.Error for d in diags)
    assert elapsed < 3.0  # bench/bench_lsp.py measures the warm latency itself (goal: 300 ms)


# ------------------------------------------------------------------ navigation


@pytest.mark.asyncio(loop_scope="module")
async def test_hover_definition_and_references(client: LanguageClient, shipped):
    path, text = shipped
    uri = await _open(client, path, text)
    module = _module(path, text)
    lets = {l.name.text: l for l in module.lets}
    ref = next(r for r, _ in _guard_refs(module) if r.name in lets)
    doc = lsp.TextDocumentIdentifier(uri=uri)
    h = await client.text_document_hover_async(lsp.HoverParams(text_document=doc, position=_pos(ref.span)))
    let = lets[ref.name]
    assert f"**let** `{ref.name}`" in h.contents.value
    assert let.description in h.contents.value and f"defined as `{let.text}`" in h.contents.value
    loc = await client.text_document_definition_async(lsp.DefinitionParams(text_document=doc, position=_pos(ref.span)))
    assert loc.range.start == lsp.Position(let.name.span.line - 1, let.name.span.column - 1)
    refs = await client.text_document_references_async(lsp.ReferenceParams(
        text_document=doc, position=_pos(ref.span), context=lsp.ReferenceContext(include_declaration=True)))
    tokens = _name_tokens(text, ref.name)
    assert sorted((r.range.start.line, r.range.start.character) for r in refs) == sorted((t.line - 1, t.column - 1) for t in tokens)
    severities = {s.severity.text for s in module.states if s.severity is not None} & set(lets)
    for name in sorted(severities):  # `let moderate` and `severity moderate`: only the first is the let
        let_ = lets[name]
        got = await client.text_document_references_async(lsp.ReferenceParams(
            text_document=doc, position=_pos(let_.name.span), context=lsp.ReferenceContext(include_declaration=True)))
        lines_ = text.split("\n")
        assert all(not lines_[r.range.start.line][: r.range.start.character].rstrip().endswith("severity") for r in got)
        assert len(got) == len(_name_tokens(text, name))
    without = await client.text_document_references_async(lsp.ReferenceParams(
        text_document=doc, position=_pos(ref.span), context=lsp.ReferenceContext(include_declaration=False)))
    assert len(without) == len(refs) - 1
    # a rule's target: definition is the state
    rule = next(r for st in module.states for h_ in st.handlers for r in h_.rules if r.target is not None)
    loc = await client.text_document_definition_async(lsp.DefinitionParams(text_document=doc, position=_pos(rule.target.span)))
    state = next(s for s in module.states if s.name.text == rule.target.text)
    assert loc.range.start == lsp.Position(state.name.span.line - 1, state.name.span.column - 1)


@pytest.mark.asyncio(loop_scope="module")
async def test_hover_on_sources_and_windows(client: LanguageClient, shipped):
    path, text = shipped
    uri = await _open(client, path, text)
    module = _module(path, text)
    doc = lsp.TextDocumentIdentifier(uri=uri)
    cited = [t for t in grammar.tokens(grammar.parse_full(text)) if t.type == "SOURCE_ID" and t.parent.data in ("cite", "citation")]
    assert cited
    sources = {s.id.text: s for s in module.sources}
    ai = [t for t in cited if sources[t.value].kind is not None and sources[t.value].kind.text == "ai-summary"]
    for t in ([ai[0]] if ai else []) + [cited[0]]:
        h = await client.text_document_hover_async(lsp.HoverParams(text_document=doc, position=lsp.Position(t.token.line - 1, t.token.column - 1)))
        src = sources[t.value]
        assert f"**source** `{t.value}`" in h.contents.value and src.title in h.contents.value
        if src.kind is not None and src.kind.text == "ai-summary":
            assert "AI summary" in h.contents.value
        if src.url:
            assert src.url in h.contents.value
    located = [t for t in grammar.tokens(grammar.parse_full(text)) if t.type == "STRING" and t.parent.data == "citation"]
    if located:
        s = located[0]
        cited_id = s.parent.children[0]
        h = await client.text_document_hover_async(lsp.HoverParams(text_document=doc, position=lsp.Position(cited_id.line - 1, cited_id.column - 1)))
        assert f"cited at: **{str(s.token)[1:-1]}**" in h.contents.value
    # a due window in words
    windows = [t for t in grammar.tokens(grammar.parse_full(text)) if t.value == "due"]
    assert windows
    w = windows[0].token
    h = await client.text_document_hover_async(lsp.HoverParams(text_document=doc, position=lsp.Position(w.line - 1, w.column - 1)))
    assert h is not None and h.contents.value.startswith("due") and "the action" in h.contents.value


@pytest.mark.asyncio(loop_scope="module")
async def test_completion_offers_what_the_grammar_accepts(client: LanguageClient, shipped):
    path, text = shipped
    module = _module(path, text)
    rule = next(r for st in module.states for h in st.handlers for r in h.rules if r.target is not None)
    # cut the target name: `-> |`
    lines = text.split("\n")
    line = lines[rule.target.span.line - 1]
    col = rule.target.span.column - 1
    lines[rule.target.span.line - 1] = line[:col] + line[col + len(rule.target.text):]
    edited = "\n".join(lines)
    uri = await _open(client, path, edited)
    got = await client.text_document_completion_async(lsp.CompletionParams(
        text_document=lsp.TextDocumentIdentifier(uri=uri), position=lsp.Position(rule.target.span.line - 1, col)))
    labels = {i.label for i in got.items}
    states = {s.name.text for s in module.states}
    assert rule.target.text in labels and states <= labels
    assert not ({l.name.text for l in module.labs} & labels)  # a lab is no target
    # in a cite list: the sources, no other names
    cite = next(t for t in grammar.tokens(grammar.parse_full(text)) if t.type == "SOURCE_ID" and t.parent.data in ("cite", "citation"))
    lines = text.split("\n")
    line = lines[cite.token.line - 1]
    lines[cite.token.line - 1] = line[: cite.token.column - 1] + line[cite.token.column - 1 + len(cite.value):]
    uri3 = uri.replace(".rxw", "-3.rxw")
    client.text_document_did_open(lsp.DidOpenTextDocumentParams(text_document=lsp.TextDocumentItem(uri=uri3, language_id="rxw", version=1, text="\n".join(lines))))
    got = await client.text_document_completion_async(lsp.CompletionParams(
        text_document=lsp.TextDocumentIdentifier(uri=uri3), position=lsp.Position(cite.token.line - 1, cite.token.column - 1)))
    labels = {i.label for i in got.items if i.kind != lsp.CompletionItemKind.Keyword}
    assert labels == {s.id.text for s in module.sources}
    # the start of a line in a handler: rule keywords, no declarations keywords
    h = next(h for st in module.states for h in st.handlers if h.rules)
    first = h.rules[0]
    lines = text.split("\n")
    indent = re.match(r"\s*", lines[first.span.line - 1]).group(0)
    lines.insert(first.span.line - 1, indent)
    uri2 = uri.replace(".rxw", "-2.rxw")
    client.text_document_did_open(lsp.DidOpenTextDocumentParams(text_document=lsp.TextDocumentItem(uri=uri2, language_id="rxw", version=1, text="\n".join(lines))))
    got = await client.text_document_completion_async(lsp.CompletionParams(
        text_document=lsp.TextDocumentIdentifier(uri=uri2), position=lsp.Position(first.span.line - 1, len(indent))))
    labels = {i.label for i in got.items}
    assert {"when", "otherwise"} <= labels and "lab" not in labels and "protocol" not in labels


@pytest.mark.asyncio(loop_scope="module")
async def test_rename_across_the_file(client: LanguageClient, shipped):
    path, text = shipped
    uri = await _open(client, path, text)
    module = _module(path, text)
    ref = next(r for r, _ in _guard_refs(module) if r.name in {l.name.text for l in module.lets})
    doc = lsp.TextDocumentIdentifier(uri=uri)
    new = ref.name + "_renamed"
    edit = await client.text_document_rename_async(lsp.RenameParams(text_document=doc, position=_pos(ref.span), new_name=new))
    renamed = _apply(text, edit.changes[uri])
    assert len(_name_tokens(renamed, new)) == len(_name_tokens(text, ref.name)) and not _name_tokens(renamed, ref.name)
    before = sorted((d.code, d.message.replace(ref.name, new)) for d in compile_source(text, str(path)).diagnostics)
    after = sorted((d.code, d.message) for d in compile_source(renamed, str(path)).diagnostics)
    assert after == before
    # a name already declared is refused
    other = next(l.name.text for l in module.lets if l.name.text != ref.name)
    with pytest.raises(Exception, match="already declared"):
        await client.text_document_rename_async(lsp.RenameParams(text_document=doc, position=_pos(ref.span), new_name=other))
    # a source: its declaration and every citation of it (ids may hold dashes)
    cited = [t for t in grammar.tokens(grammar.parse_full(text)) if t.type == "SOURCE_ID" and t.parent.data in ("cite", "citation")]
    src = cited[0]
    edit = await client.text_document_rename_async(lsp.RenameParams(
        text_document=doc, position=lsp.Position(src.token.line - 1, src.token.column - 1), new_name="renamed-source.v2"))
    renamed = _apply(text, edit.changes[uri])
    ids = [t.value for t in grammar.tokens(grammar.parse_full(renamed)) if t.type == "SOURCE_ID"]
    assert src.value not in ids and ids.count("renamed-source.v2") == sum(1 for t in grammar.tokens(grammar.parse_full(text)) if t.type == "SOURCE_ID" and t.value == src.value)
    assert sorted(d.code for d in compile_source(renamed, str(path)).diagnostics) == sorted(d.code for d in compile_source(text, str(path)).diagnostics)
    with pytest.raises(Exception, match="not a valid source id"):
        await client.text_document_rename_async(lsp.RenameParams(
            text_document=doc, position=lsp.Position(src.token.line - 1, src.token.column - 1), new_name="two words"))
    # a state: the declaration and every target
    rule = next(r for st in module.states for h in st.handlers for r in h.rules if r.target is not None)
    edit = await client.text_document_rename_async(lsp.RenameParams(text_document=doc, position=_pos(rule.target.span), new_name="renamed_state"))
    renamed = _apply(text, edit.changes[uri])
    result = compile_source(renamed, str(path), verify=False, lower=False)
    assert not [d for d in result.diagnostics if d.is_error]
    assert "renamed_state" in {s.name.text for s in result.module.states}


@pytest.mark.asyncio(loop_scope="module")
async def test_outline_and_formatting(client: LanguageClient, shipped):
    path, text = shipped
    uri = await _open(client, path, text)
    module = _module(path, text)
    doc = lsp.TextDocumentIdentifier(uri=uri)
    symbols = await client.text_document_document_symbol_async(lsp.DocumentSymbolParams(text_document=doc))

    def flat(syms, depth=0):
        for s in syms or ():
            yield s, depth
            yield from flat(s.children, depth + 1)

    names = {s.name for s, _ in flat(symbols)}
    assert {s.name.text for s in module.states} <= names
    assert {l.name.text for l in module.labs} <= names
    nested = [s for s in module.states if s.states or s.tracks]
    for parent in nested:
        sym = next(s for s, _ in flat(symbols) if s.name == parent.name.text)
        kids = {c.name for c, _ in flat(sym.children)}
        assert {c.name.text for c in (*parent.states, *parent.tracks)} <= kids
        assert any(k.startswith(("on ", "after ")) for k in kids) or not parent.handlers
    # formatting: a messy copy (indentation stripped, blank lines doubled) comes back formatted
    messy = _messy(text)
    _change(client, uri, 2, messy)
    edits = await client.text_document_formatting_async(lsp.DocumentFormattingParams(
        text_document=doc, options=lsp.FormattingOptions(tab_size=2, insert_spaces=True)))
    assert _apply(messy, edits) == format_text(messy) == format_text(text)


def test_window_words_give_the_dates():
    import datetime

    from rxwatch.compiler.span import NOWHERE
    from rxwatch.editor.index import window_words

    day = datetime.date(2026, 1, 31)
    w = window_words(ast.Window(1, 2, "months", NOWHERE), day)
    assert w.startswith("due between 1 month and 2 months after the action")
    assert "opens 28 February 2026, closes 31 March 2026" in w  # calendar months, clamped to the month's end
    w = window_words(ast.Window(0, 14, "days", NOWHERE), day)
    assert "opens on the day of the action" in w and "opens 31 January 2026, closes 14 February 2026" in w
    point = ast.Window(3, 3, "months", NOWHERE, point=True) if "point" in ast.Window.__dataclass_fields__ else None
    if point is not None:
        w = window_words(point, day, ast.Duration(2, "weeks", NOWHERE))
        assert "give or take 2 weeks" in w and "opens 16 April 2026, closes 14 May 2026" in w


def test_positions_in_each_encoding():
    from rxwatch.editor.lsp import Lines

    text = 'let x "é😀" = ALT'
    col = text.index("ALT") + 1
    for enc, units in (("utf-8", 17), ("utf-16", 14), ("utf-32", 13)):
        lines = Lines(text, enc)
        p = lines.position(1, col)
        assert p == lsp.Position(0, units)
        assert lines.from_lsp(p) == (1, col)


@pytest.mark.asyncio(loop_scope="module")
async def test_ranges_count_utf16_units_after_non_ascii_text(client: LanguageClient, shipped):
    """A typo after an emoji on its line: the E202 range is in UTF-16 units, as VS Code counts."""
    path, text = shipped
    module = _module(path, text)
    name = module.lets[0].name.text
    line = f'let probe_emoji "😀é" = {name}x'
    col = line.index(f"{name}x")  # characters before the reference
    lines = text.rstrip("\n").split("\n") + [line]
    ref_line = len(lines)
    uri = await _open(client, path, "\n".join(lines))
    diags = client.diagnostics[uri]
    e202 = [d for d in diags if d.code == "E202"]
    assert len(e202) == 1, [(d.code, d.message) for d in diags]
    units = len(line[:col].encode("utf-16-le")) // 2
    assert units == col + 1  # the emoji is two UTF-16 units
    assert e202[0].range.start == lsp.Position(ref_line - 1, units)
    assert e202[0].range.end == lsp.Position(ref_line - 1, units + len(name) + 1)


@pytest.mark.asyncio(loop_scope="module")
async def test_semantic_tokens_follow_the_parse(client: LanguageClient, shipped):
    """Highlighting from the server (Neovim shows it without a TextMate grammar): each token
    of the parser gets the class of what it is; every declared name the class of its kind."""
    from rxwatch.editor.lsp import TOKEN_TYPES

    path, text = shipped
    uri = await _open(client, path, text)
    got = await client.text_document_semantic_tokens_full_async(lsp.SemanticTokensParams(text_document=lsp.TextDocumentIdentifier(uri=uri)))
    data = got.data
    assert len(data) % 5 == 0 and data
    lines = text.split("\n")
    at = {}
    line = col = 0
    for k in range(0, len(data), 5):
        dl, ds, length, ty, _mods = data[k : k + 5]
        line, col = (line + dl, ds) if dl else (line, col + ds)
        at[(line, col)] = (lines[line][col : col + length], TOKEN_TYPES[ty])
    module = _module(path, text)
    for let in module.lets:
        word, kind = at[(let.name.span.line - 1, let.name.span.column - 1)]
        assert (word, kind) == (let.name.text, "function")
    for st in module.states:
        word, kind = at[(st.name.span.line - 1, st.name.span.column - 1)]
        assert (word, kind) == (st.name.text, "class")
    words = set(grammar.keywords())
    toks = grammar.tokens(grammar.parse_full(text))
    for t in toks:
        if t.value in words and t.type not in ("NAME", "SOURCE_ID"):
            assert at[(t.token.line - 1, t.token.column - 1)][1] in ("keyword", "function"), t.value
        if t.type == "STRING" and "\n" not in t.value:
            assert at[(t.token.line - 1, t.token.column - 1)] == (t.value, "string")
    comments = [(n, l.index("#")) for n, l in enumerate(lines) if l.lstrip().startswith("#")]
    assert comments and all(at[c][1] == "comment" for c in comments)


# ------------------------------------------------------------------ real editors' capabilities

EDITORS = {"neovim@v0.11.0": "utf-8", "emacs": "utf-32", "visual-studio-code": "utf-16"}


@pytest_lsp.fixture(params=sorted(EDITORS), config=ClientServerConfig(server_command=[sys.executable, "-m", "rxwatch.cli.main", "lsp"]))
async def editor(lsp_client: LanguageClient, request):
    from pytest_lsp.client import client_capabilities

    caps = client_capabilities(request.param)
    result = await lsp_client.initialize_session(lsp.InitializeParams(capabilities=caps, root_uri=REPO.as_uri()))
    lsp_client.agreed = (request.param, str(getattr(result.capabilities.position_encoding, "value", result.capabilities.position_encoding)))
    yield
    await lsp_client.shutdown_session()


@pytest.mark.asyncio
async def test_each_editor_gets_positions_in_the_encoding_it_asked_for(editor: LanguageClient):
    """With the capabilities that Neovim 0.11, Emacs 29 (eglot) and VS Code send, the server
    agrees on their preferred encoding and counts every range in it."""
    name, agreed = editor.agreed
    assert agreed == EDITORS[name]
    path = SHIPPED[0]
    text = path.read_text(encoding="utf-8")
    module = _module(path, text)
    let = module.lets[0].name.text
    line = f'let probe_emoji "😀é" = {let}x'
    col = line.index(f"{let}x")
    units = {"utf-8": len(line[:col].encode("utf-8")), "utf-16": len(line[:col].encode("utf-16-le")) // 2, "utf-32": col}[agreed]
    lines = text.rstrip("\n").split("\n") + [line]
    uri = await _open(editor, path, "\n".join(lines))
    e202 = [d for d in editor.diagnostics[uri] if d.code == "E202"]
    assert len(e202) == 1 and e202[0].range.start == lsp.Position(len(lines) - 1, units)
    # hover and definition at that position, in the same units
    h = await editor.text_document_hover_async(lsp.HoverParams(text_document=lsp.TextDocumentIdentifier(uri=uri),
                                                              position=lsp.Position(len(lines) - 1, units + 1)))
    assert h is None  # the misspelt name declares nothing
    fixed = "\n".join(lines[:-1] + [line.replace(f"{let}x", let)])
    _change(editor, uri, 2, fixed)
    diags = await _diagnostics(editor, uri)
    assert not [d for d in diags if d.code == "E202"]
    h = await editor.text_document_hover_async(lsp.HoverParams(text_document=lsp.TextDocumentIdentifier(uri=uri),
                                                              position=lsp.Position(len(lines) - 1, units + 1)))
    assert h is not None and f"`{let}`" in h.contents.value
    assert h.range.start == lsp.Position(len(lines) - 1, units)
