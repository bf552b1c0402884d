"""The viewer's protocol text: the rxw lexer's tokens per line, never markup."""

from __future__ import annotations

from rxwatch.render.html import _source_tokens

from conftest import SHIPPED_PROTOCOLS


def test_tokens_give_back_every_line_of_each_shipped_protocol():
    for path in SHIPPED_PROTOCOLS:
        lines = _source_tokens(str(path))
        text = path.read_text(encoding="utf-8").split("\n")
        assert ["".join(t for _, t in line) for line in lines][: len(text)] == text
        classes = {c for line in lines for c, _ in line}
        assert {"k", "s", "n", "c", "v"} <= classes  # keywords, strings, numbers, comments, names


def test_markup_in_a_protocol_stays_text(tmp_path):
    p = tmp_path / "p.rxw"
    p.write_text('protocol p title "<script>alert(1)</script>"\n# <b>not bold</b>\n', encoding="utf-8")
    lines = _source_tokens(str(p))
    assert any("<script>" in t for _, t in lines[0])  # a token's text, for a text node
    assert _source_tokens(str(tmp_path / "missing.rxw")) is None
