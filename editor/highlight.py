"""Highlighting of protocol text: a Pygments lexer (`rxw`) and the TextMate grammar of the
VS Code extension, both made from the grammar at import.

The keywords are grammar/protocol.lark's word literals (`grammar.keywords()`), the functions
those the name check accepts (`compiler.checks.names.FUNCTIONS`), the time units and
diagnostic codes the grammar's own regular expressions (TIME_UNIT, DIAG_CODE). So a keyword
added to the grammar is highlighted without a change here; only the finer classes (which words
declare, which are operators) are named below, and a word they miss is still a keyword.

    pygmentize -l rxw protocols/anakinra_hepatotoxicity.rxw
    python -m rxwatch.editor.highlight textmate > editors/vscode/syntaxes/rxw.tmLanguage.json
"""

from __future__ import annotations

import json
import re
import sys
from functools import lru_cache

from pygments.lexer import RegexLexer, bygroups, default, words
from pygments.token import Comment, Keyword, Name, Number, Operator, Punctuation, String, Text, Whitespace

from . import grammar

# finer classes of some keywords (the rest are plain keywords)
_CONSTANTS = {"true", "false"}
_OPERATOR_WORDS = {"and", "or", "not", "in"}


@lru_cache(maxsize=None)
def _terminal_regexp(name: str) -> str | None:
    """A terminal's regular expression, its groups made non-capturing (it is used inside others)."""
    for t in grammar.lark_full().terminals:
        if t.name == name:
            return re.sub(r"(?<!\\)\((?!\?)", "(?:", t.pattern.to_regexp())
    return None


def _functions() -> tuple[str, ...]:
    from rxwatch.compiler.checks.names import FUNCTIONS

    return tuple(sorted(FUNCTIONS))


def _declaring() -> set[str]:
    """Words that begin a declaration: those the parser accepts at the start of the file, and
    `state`/`track`/`rules` (they begin a block of their own)."""
    return set(grammar.declaration_keywords()) | ({"state", "track", "rules"} & set(grammar.keywords()))


def _classes() -> dict[str, list[str]]:
    kws = set(grammar.keywords())
    declaring = _declaring() & kws
    constants = _CONSTANTS & kws
    ops = _OPERATOR_WORDS & kws
    rest = kws - declaring - constants - ops
    return {"declaration": sorted(declaring), "constant": sorted(constants), "operator": sorted(ops), "other": sorted(rest)}


_SOURCE_ID = r"[A-Za-z0-9][A-Za-z0-9_]*(?:[-.][A-Za-z0-9_]+)*"
_STRING_TRIPLE = r'"""(?:[^"\\]|\\.|"(?!""))*"""'
_STRING = r'"(?:[^"\\\n]|\\.)*"'


def _tokens() -> dict:
    c = _classes()
    time_unit = _terminal_regexp("TIME_UNIT")
    diag = _terminal_regexp("DIAG_CODE")
    root = [
        (r"\s+", Whitespace),
        (r"#[^\n]*", Comment.Single),
        (_STRING_TRIPLE, String.Doc),
        (_STRING, String),
        # a source id after `cite` or `source` (it may hold dashes and dots)
        (r"(cite)(\s+)", bygroups(Keyword, Whitespace), "cite"),
        (r"(source)(\s+)(" + _SOURCE_ID + ")", bygroups(Keyword.Declaration, Whitespace, Name.Label)),
        (r"(kind)(\s+)(" + _SOURCE_ID + ")", bygroups(Keyword, Whitespace, Name.Label)),
    ]
    if diag:
        root.append((r"\b" + diag + r"\b", Name.Exception))
    for cls, tok in (("declaration", Keyword.Declaration), ("constant", Keyword.Constant), ("operator", Operator.Word)):
        if c[cls]:
            root.append((words(tuple(c[cls]), suffix=r"\b"), tok))
    if time_unit:  # `2 weeks`, `2..4 weeks`
        root.append((r"(\d+(?:\.\d+)?)(\s+)(" + time_unit + ")", bygroups(Number, Whitespace, Keyword.Type)))
    root.append((words(_functions(), suffix=r"(?=\s*\()"), Name.Builtin))  # `fulfilled(...)` before `fulfilled by`
    if c["other"]:
        root.append((words(tuple(c["other"]), suffix=r"\b"), Keyword))
    root += [
        (r"\d+(?:\.\d+)?", Number),
        (r"->|\.\.|<=|>=|==|!=|[<>=+\-*/]", Operator),
        (r"[{}(),]", Punctuation),
        (r"[A-Za-z_][A-Za-z0-9_]*", Name),
        (r".", Text),
    ]
    # `cite a "4.4", b`: source ids (dashes and dots allowed), each with an optional locator
    cite = [
        (r"\s+", Whitespace),
        (_SOURCE_ID, Name.Label, ("#pop", "cited")),
        default("#pop"),
    ]
    cited = [
        (r"[ \t]+", Whitespace),
        (_STRING, String),
        (r",", Punctuation, ("#pop", "cite")),
        default("#pop"),
    ]
    return {"root": root, "cite": cite, "cited": cited}


class RxwLexer(RegexLexer):
    """Protocol files of rxwatch (`.rxw`)."""

    name = "rxwatch protocol"
    aliases = ["rxw", "rxwatch"]
    filenames = ["*.rxw"]
    mimetypes = ["text/x-rxwatch"]
    tokens = _tokens()


def textmate() -> dict:
    """The TextMate grammar (VS Code, Sublime, and GitHub's linguist read it) from the same facts."""
    c = _classes()
    time_unit = _terminal_regexp("TIME_UNIT")
    diag = _terminal_regexp("DIAG_CODE")

    def alt(ws):
        return r"\b(?:" + "|".join(re.escape(w) for w in ws) + r")\b"

    patterns = [
        {"name": "comment.line.number-sign.rxw", "match": r"#.*$"},
        {"name": "string.quoted.triple.rxw", "begin": '"""', "end": '"""', "patterns": [{"name": "constant.character.escape.rxw", "match": r"\\."}]},
        {"name": "string.quoted.double.rxw", "begin": '"', "end": '"', "patterns": [{"name": "constant.character.escape.rxw", "match": r"\\."}]},
        {"begin": r"\b(cite)\b", "beginCaptures": {"1": {"name": "keyword.other.cite.rxw"}},
         # a wrapped list goes on over lines: it ends at a brace, a comment or the next keyword
         "end": r"(?=[{}#]|\b(?:" + "|".join(re.escape(w) for w in c["other"] + c["declaration"] + c["operator"] if w != "cite") + r")\b)",
         "patterns": [
             {"name": "string.quoted.double.locator.rxw", "match": _STRING},
             {"name": "entity.name.tag.source.rxw", "match": _SOURCE_ID},
             {"name": "punctuation.separator.comma.rxw", "match": ","},
         ]},
        {"match": r"\b(source)\s+(" + _SOURCE_ID + ")", "captures": {"1": {"name": "storage.type.rxw"}, "2": {"name": "entity.name.tag.source.rxw"}}},
        {"match": r"\b(kind)\s+(" + _SOURCE_ID + ")", "captures": {"1": {"name": "keyword.other.rxw"}, "2": {"name": "support.constant.kind.rxw"}}},
        # `state monitoring`, `lab ALT`: the declared name (not `initial state`, `results valid`: a keyword is no name)
        {"match": r"\b(" + "|".join(re.escape(w) for w in c["declaration"]) + r")\s+(?!(?:" + "|".join(re.escape(w) for w in grammar.keywords()) + r")\b)([A-Za-z_][A-Za-z0-9_]*)",
         "captures": {"1": {"name": "storage.type.rxw"}, "2": {"name": "entity.name.rxw"}}},
        {"name": "storage.type.rxw", "match": alt(c["declaration"])},
    ]
    if diag:
        patterns.append({"name": "constant.other.diagnostic-code.rxw", "match": r"\b" + diag + r"\b"})
    if c["constant"]:
        patterns.append({"name": "constant.language.rxw", "match": alt(c["constant"])})
    if c["operator"]:
        patterns.append({"name": "keyword.operator.word.rxw", "match": alt(c["operator"])})
    if time_unit:
        patterns.append({"match": r"(?<=\d)\s+(" + time_unit + ")", "captures": {"1": {"name": "storage.modifier.unit.rxw"}}})
    patterns += [
        {"name": "keyword.control.rxw", "match": alt(c["other"])},
        {"name": "support.function.rxw", "match": alt(_functions()) + r"(?=\s*\()"},
        {"name": "constant.numeric.rxw", "match": r"\b\d+(?:\.\d+)?\b"},
        {"name": "keyword.operator.rxw", "match": r"->|\.\.|<=|>=|==|!=|[<>=+\-*/]"},
        {"name": "variable.other.rxw", "match": r"\b[A-Za-z_][A-Za-z0-9_]*\b"},
    ]
    return {
        "$schema": "https://raw.githubusercontent.com/martinring/tmlanguage/master/tmlanguage.json",
        "name": "rxwatch protocol",
        "scopeName": "source.rxw",
        "fileTypes": ["rxw"],
        "comment": "Generated by `python -m rxwatch.editor.highlight textmate` from grammar/protocol.lark; do not edit by hand.",
        "patterns": patterns,
    }


def textmate_json() -> str:
    return json.dumps(textmate(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":  # pragma: no cover - the generator of editors/vscode/syntaxes/rxw.tmLanguage.json
    if sys.argv[1:] == ["textmate"]:
        sys.stdout.write(textmate_json())
    else:
        sys.exit("usage: python -m rxwatch.editor.highlight textmate")
