"""Highlighting: the Pygments lexer `rxw` and the TextMate grammar follow grammar/protocol.lark.

The keywords are read here from the grammar file itself (its quoted word literals), not from
the lexer, so a keyword added to the grammar that the highlighters miss fails a test.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from pygments.token import Comment, Error, Keyword, Name, Number, Operator, String

from rxwatch.editor import grammar
from rxwatch.editor.highlight import RxwLexer, textmate_json

REPO = Path(__file__).resolve().parent.parent
GRAMMAR = REPO / "grammar" / "protocol.lark"
TEXTMATE = REPO / "editors" / "vscode" / "syntaxes" / "rxw.tmLanguage.json"
SHIPPED = sorted((REPO / "protocols").glob("*.rxw"))


def _grammar_words() -> set[str]:
    text = re.sub(r"//[^\n]*", "", GRAMMAR.read_text(encoding="utf-8"))
    return set(re.findall(r'"([A-Za-z_][A-Za-z0-9_]*)"', text))


def test_keywords_are_the_grammars():
    words = _grammar_words()
    assert {"protocol", "state", "when", "otherwise", "cite", "and"} <= words
    assert set(grammar.keywords()) == words


@pytest.mark.parametrize("word", sorted(_grammar_words()))
def test_every_keyword_is_highlighted(word: str):
    toks = [(t, v) for t, v in RxwLexer().get_tokens(word + " ") if v.strip()]
    assert toks[0][1] == word
    assert toks[0][0] in Keyword or toks[0][0] in Operator.Word, toks


def _offsets(text: str):
    """Pygments token type at each character offset."""
    types = [None] * len(text)
    for pos, ttype, value in RxwLexer().get_tokens_unprocessed(text):
        for k in range(pos, pos + len(value)):
            types[k] = ttype
    return types


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_protocols_highlight_as_the_parser_reads_them(path: Path):
    text = path.read_text(encoding="utf-8")
    lexed = list(RxwLexer().get_tokens(text))
    assert "".join(v for _, v in lexed).rstrip("\n") == text.rstrip("\n")
    assert not [v for t, v in lexed if t in Error]
    try:
        toks = grammar.tokens(grammar.parse_full(text))
    except Exception as e:
        pytest.skip(f"{path.name} does not parse with the current grammar: {e}")
    types = _offsets(text)
    words = _grammar_words()
    checked = 0
    for t in toks:
        tt = types[t.token.start_pos]
        if t.type == "STRING":
            assert tt in String, (t.value, tt)
        elif t.type == "NUMBER":
            assert tt in Number, (t.token.line, t.value, tt)
        elif t.type == "SOURCE_ID" and t.parent.data in ("cite", "citation", "source_decl"):
            assert tt in Name.Label, (t.token.line, t.value, tt)
        elif t.value in words and t.type != "NAME":
            # `since(start)`, `fulfilled(order)`: keywords of the grammar read as functions
            call = text[t.token.end_pos : t.token.end_pos + 1] == "("
            assert tt in Keyword or tt in Operator.Word or (call and tt in Name.Builtin), (t.token.line, t.value, tt)
        else:
            continue
        checked += 1
    assert checked > len(toks) / 3
    # every comment, whole
    prev = 0
    for t in toks:
        for off, c in grammar.gap_comments(text[prev : t.token.start_pos]):
            assert all(types[prev + off + k] in Comment for k in range(len(c)))
        prev = t.token.end_pos


def test_entry_point_rxw():
    """pyproject's `[project.entry-points."pygments.lexers"] rxw = "rxwatch.editor.highlight:RxwLexer"`."""
    eps = [e for e in entry_points(group="pygments.lexers") if e.name == "rxw"]
    if not eps:
        pytest.skip("the pygments.lexers entry point `rxw` is not installed yet (pyproject, then reinstall)")
    assert eps[0].load() is RxwLexer
    from pygments.lexers import get_lexer_by_name, get_lexer_for_filename

    assert isinstance(get_lexer_by_name("rxw"), RxwLexer)
    assert isinstance(get_lexer_for_filename("anakinra.rxw"), RxwLexer)


def test_textmate_grammar_is_generated_from_the_grammar():
    assert TEXTMATE.read_text(encoding="utf-8") == textmate_json(), \
        "regenerate: python -m rxwatch.editor.highlight textmate > editors/vscode/syntaxes/rxw.tmLanguage.json"
    g = json.loads(TEXTMATE.read_text(encoding="utf-8"))
    text = json.dumps(g)
    for w in _grammar_words():
        assert re.search(r"\b" + re.escape(w) + r"\b", text), w
    for p in g["patterns"]:
        for key in ("match", "begin", "end"):
            if key in p:
                re.compile(p[key])  # Oniguruma reads these; Python's syntax is a subset check


def test_vscode_extension_manifest():
    root = REPO / "editors" / "vscode"
    pkg = json.loads((root / "package.json").read_text(encoding="utf-8"))
    lang = pkg["contributes"]["languages"][0]
    assert lang["id"] == "rxw" and ".rxw" in lang["extensions"]
    assert (root / lang["configuration"]).is_file()
    gram = pkg["contributes"]["grammars"][0]
    assert gram["scopeName"] == json.loads(TEXTMATE.read_text())["scopeName"] and (root / gram["path"]).is_file()
    assert (root / pkg["main"]).is_file()
    conf = json.loads((root / "language-configuration.json").read_text(encoding="utf-8"))
    assert conf["comments"]["lineComment"] == "#"
    assert pkg["contributes"]["configuration"]["properties"]["rxwatch.server.args"]["default"] == ["lsp"]


VSCODE = REPO / "editors" / "vscode"


@pytest.mark.skipif(shutil.which("node") is None or not (VSCODE / "node_modules" / "vscode-textmate").is_dir(),
                    reason="needs node and the extension's devDependencies (`npm install` in editors/vscode)")
@pytest.mark.parametrize("path", SHIPPED + [REPO / "editors" / "examples" / "formatted.rxw"], ids=lambda p: p.stem)
def test_textmate_grammar_tokenizes_as_the_parser_reads(path: Path):
    """The TextMate grammar run by VS Code's own engine (vscode-textmate, Oniguruma) gives each
    token of the parser the scope of its class."""
    run = subprocess.run(["node", "test/tokenize.js", "syntaxes/rxw.tmLanguage.json", str(path)], cwd=VSCODE,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    scopes = {}
    for n, pieces in enumerate(json.loads(run.stdout), 1):
        col = 1
        for text, scope in pieces:
            for k in range(len(text)):
                scopes[(n, col + k)] = scope
            col += len(text)
    text = path.read_text(encoding="utf-8")
    try:
        toks = grammar.tokens(grammar.parse_full(text))
    except Exception as e:
        pytest.skip(f"{path.name} does not parse with the current grammar: {e}")
    words = _grammar_words()
    for t in toks:
        scope = scopes.get((t.token.line, t.token.column), "")
        where = (t.token.line, t.value, scope)
        if t.type == "STRING":
            assert scope.startswith("string."), where
        elif t.type == "NUMBER":
            assert scope.startswith("constant.numeric"), where
        elif t.type == "SOURCE_ID" and t.parent.data in ("cite", "citation", "source_decl"):
            assert scope.startswith("entity.name.tag.source"), where
        elif t.value in words and t.type != "NAME":
            call = text[t.token.end_pos : t.token.end_pos + 1] == "("
            assert scope.startswith(("keyword.", "storage.type", "constant.language")) or (call and scope.startswith("support.function")), where
    prev = 0
    lines_before = [0]
    for line in text.split("\n"):
        lines_before.append(lines_before[-1] + len(line) + 1)
    for t in toks:
        for off, c in grammar.gap_comments(text[prev : t.token.start_pos]):
            pos = prev + off
            line = next(i for i in range(len(lines_before)) if lines_before[i] > pos)
            assert scopes.get((line, pos - lines_before[line - 1] + 1), "").startswith("comment."), (line, c)
        prev = t.token.end_pos
