"""No input crashes the compiler: random edits of the shipped protocols give diagnostics or success.

Each example takes a shipped protocol and applies a few edits of the kinds an author makes by
accident (a deleted, duplicated or swapped line, a stray character, a file cut short). The
compiler must answer with well-formed diagnostics (a known code, a span inside the file, a
message, a text rendering with the source line) or with a graph; it must never raise.
"""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import SHIPPED_PROTOCOLS
from rxwatch.compiler import compile_source
from rxwatch.compiler.diagnostics import CODES, format_json, format_text

TEXTS = {p.name: p.read_text(encoding="utf-8") for p in SHIPPED_PROTOCOLS}

# Characters an author's slip is made of: the language's punctuation, quotes, comment and
# line marks, digits, letters, and some that the language does not use at all.
STRAY = st.sampled_from(list('{}()[]"#<>=!-+*/.,:;\n\t \\\'$@%&|~`_0123456789azAZé→\x00\ufeff'))

DIAG_LINE = re.compile(r"^(?P<path>[^\n]+):(?P<line>\d+):(?P<col>\d+): (?P<sev>error|warning)\[(?P<code>[EW]\d{3})\]: (?P<msg>.+)$")


@st.composite
def edit(draw, text: str):
    """One accidental edit of `text`, returning the new text."""
    lines = text.split("\n")
    kind = draw(st.sampled_from(["delete", "duplicate", "swap", "insert", "truncate", "delete_span"]))
    if kind == "delete":
        i = draw(st.integers(0, len(lines) - 1))
        del lines[i]
        return "\n".join(lines)
    if kind == "duplicate":
        i = draw(st.integers(0, len(lines) - 1))
        lines.insert(i, lines[i])
        return "\n".join(lines)
    if kind == "swap":
        i = draw(st.integers(0, len(lines) - 1))
        j = draw(st.integers(0, len(lines) - 1))
        lines[i], lines[j] = lines[j], lines[i]
        return "\n".join(lines)
    if kind == "insert":
        pos = draw(st.integers(0, len(text)))
        chars = draw(st.text(STRAY, min_size=1, max_size=3))
        return text[:pos] + chars + text[pos:]
    if kind == "truncate":
        return text[: draw(st.integers(0, len(text)))]
    # delete a short run of characters (a word, a brace, half a token)
    pos = draw(st.integers(0, max(0, len(text) - 1)))
    n = draw(st.integers(1, 12))
    return text[:pos] + text[pos + n :]


@st.composite
def edited_protocol(draw):
    name = draw(st.sampled_from(sorted(TEXTS)))
    text = TEXTS[name]
    for _ in range(draw(st.integers(1, 3))):
        text = draw(edit(text))
    return name, text


def assert_well_formed(result, text: str, path: str) -> None:
    """The compiler's answer to any text: coded, located, printable diagnostics, or a graph."""
    n_lines = max(1, len(text.splitlines()))
    for d in result.diagnostics:
        assert d.code in CODES, d
        assert d.severity in ("error", "warning"), d
        assert d.message.strip(), d
        s = d.span
        assert s.path == path, d
        # a span points into the file: lines from 1, columns from 1, the end not before the start
        assert 1 <= s.line <= n_lines + 1, d
        assert s.column >= 1, d
        assert (s.end_line, s.end_column) >= (s.line, s.column), d
        rendered = format_text(d, text)
        head = rendered.split("\n", 1)[0]
        m = DIAG_LINE.match(head)
        assert m, rendered
        assert (int(m["line"]), int(m["col"]), m["code"]) == (s.line, s.column, d.code)
    json.loads(format_json(result.diagnostics))
    if result.ok:
        assert result.graph is not None
        assert result.graph.number_of_nodes() >= 1
    else:
        assert result.graph is None


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(edited_protocol())
def test_random_edits_give_diagnostics_or_success(case):
    name, text = case
    result = compile_source(text, name)
    assert_well_formed(result, text, name)


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_text_gives_diagnostics(text):
    result = compile_source(text, "fuzz.rxw")
    assert_well_formed(result, text, "fuzz.rxw")


@pytest.mark.parametrize("name", sorted(TEXTS))
def test_every_truncation_of_the_first_lines_is_handled(name):
    """Cut the file after each character of its first declarations: a dense, deterministic sweep."""
    text = TEXTS[name]
    start = text.index("protocol ")
    for end in range(start, start + 400):
        result = compile_source(text[:end], name)
        assert_well_formed(result, text[:end], name)


@pytest.mark.parametrize("name", sorted(TEXTS))
def test_each_line_deleted_is_handled(name):
    lines = TEXTS[name].split("\n")
    for i in range(len(lines)):
        text = "\n".join(lines[:i] + lines[i + 1 :])
        result = compile_source(text, name)
        assert_well_formed(result, text, name)


@pytest.mark.parametrize("name", sorted(TEXTS))
def test_windows_and_mac_line_endings_and_tabs(name):
    text = TEXTS[name]
    for variant in (text.replace("\n", "\r\n"), text.replace("    ", "\t"), "\ufeff" + text):
        result = compile_source(variant, name)
        assert_well_formed(result, variant, name)
    # CRLF and tabs are whitespace: the protocol is still valid
    assert compile_source(text.replace("\n", "\r\n"), name).ok
    assert compile_source(text.replace("    ", "\t"), name).ok


@pytest.mark.parametrize(
    "expr",
    [
        pytest.param(" + ".join(["1"] * 600) + " > 0", id="long-sum"),
        pytest.param(" and ".join(["true"] * 600), id="long-and"),
        pytest.param("not " * 600 + "true", id="deep-not"),
        pytest.param("-" * 600 + "1 > 0", id="deep-neg"),
    ],
)
def test_very_long_expressions_give_diagnostics_not_recursion_errors(expr):
    text = f"protocol p\nlet x = {expr}\ninitial state s\n"
    result = compile_source(text, "deep.rxw")
    assert_well_formed(result, text, "deep.rxw")


def test_deeply_parenthesised_expression_is_handled():
    text = "protocol p\nlet x = " + "(" * 2000 + "1" + ")" * 2000 + " > 0\ninitial state s\n"
    result = compile_source(text, "parens.rxw")
    assert_well_formed(result, text, "parens.rxw")


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(edited_protocol())
def test_random_edits_through_the_command_line(case):
    """`rxwatch check` and `rxwatch compile -o` on an edited protocol: status 0 or 1, never 3;
    a compile that fails writes nothing."""
    import contextlib
    import io
    import tempfile
    from pathlib import Path

    from rxwatch.cli.main import main

    name, text = case
    with tempfile.TemporaryDirectory() as d:
        src = Path(d) / name
        src.write_text(text, encoding="utf-8")
        out = Path(d) / "out.json"
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            checked = main(["check", str(src)])
            compiled = main(["compile", str(src), "-o", str(out)])
        assert checked in (0, 1), err.getvalue()
        assert compiled == checked, err.getvalue()
        assert "internal error" not in err.getvalue() and "Traceback" not in err.getvalue()
        assert out.exists() == (compiled == 0)
