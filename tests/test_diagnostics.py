"""One test per diagnostic code (E1xx-W5xx): the code, the line, the column, a helpful message.

Each case is a small protocol with a `§` marking where the diagnostic must point (the mark is
removed before compiling). The verification codes (E6xx/W6xx) are tested in their own module.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest

from rxwatch.compiler import compile_source
from rxwatch.compiler.diagnostics import CODES, format_json, format_text

MARK = "§"

# A small valid protocol that every case edits: each kind of declaration, one of each handler.
BASE = """\
protocol p
  title "A small protocol"
  status draft
source s "A source" kind label
source seed-review "Another source" kind ai-summary
lab ALT "alanine aminotransferase" unit "U/L" uln 40
lab TBIL "total bilirubin" unit "mg/dL" uln 1.2
fact sex "sex" one of female, male default female
fact weight "weight" number unit "kg" default 70
var flag "a flag" bool default false
event ev "an event"
action order "order a panel" orders ALT, TBIL
action start "start the drug"
let alt "ALT in multiples of ULN" = xuln(ALT)
initial state a "the start" {
  on entry { do order due 1..2 weeks cite s }
  on panel {
    when alt > 3 -> b cite s
    otherwise stay cite s
  }
  on event ev { otherwise -> b cite s }
}
terminal state b "the end"
"""


def test_base_protocol_is_clean():
    result = compile_source(BASE, "base.rxw")
    assert result.ok
    assert [d for d in result.diagnostics if not d.code.startswith(("E6", "W6"))] == []


@dataclass
class Case:
    code: str
    text: str  # with one MARK where the diagnostic points
    says: tuple[str, ...]  # fragments the message must contain
    also: frozenset[str] = frozenset()  # other codes this mistake legitimately causes
    severity: str = "error"


def edit(old: str, new: str, base: str = BASE) -> str:
    assert base.count(old) == 1, old
    return base.replace(old, new)


CASES = [
    # ---------------------------------------------------------------- syntax
    Case("E101", edit("when alt > 3", "when alt > §> 3"), ("unexpected '>'", "expected", "a number")),
    Case("E101", edit("one of female, male default", "one of female §male default"), ("unexpected 'male'", "','")),
    Case(
        "E101",
        edit("    otherwise stay cite s\n  }\n", "    otherwise stay cite s\n\n§event late\n"),
        ("unexpected 'event'", "is a '}' missing before it?"),
    ),
    Case("E102", edit('uln 40', 'uln 40 §$'), ("unexpected character '$'",)),
    # the rest of the line is skipped, so the field misses its string: the parser says so too
    Case("E102", edit('title "A small protocol"', 'title §"A small protocol'), ("unterminated string", '"""'), also=frozenset({"E101"})),
    Case("E103", BASE[: BASE.index("    otherwise stay cite s") + len("    otherwise stay cite s")] + MARK, ("unexpected end of file", "expected")),
    Case("E104", edit("due 1..2 weeks", "due §1.5..2 weeks"), ("whole number", "1.5")),
    Case("E104", edit("on event ev {", "after §2.5 days {"), ("whole number", "2.5")),
    Case("E105", edit("let alt \"ALT in multiples of ULN\" = xuln(ALT)", "let alt = §" + "-" * 205 + "xuln(ALT)"), ("nested more than 200 levels", "let")),
    # ---------------------------------------------------------------- names
    Case("E201", edit('event ev "an event"', 'event ev "an event"\nevent §ev "again"'), ("'ev'", "already declared", "line 11")),
    Case("E201", edit('terminal state b "the end"', 'terminal state b "the end"\nstate §b'), ("state 'b'", "already declared", "line 23")),
    Case("E201", edit("let alt", "let §max"), ("built-in function",), also=frozenset({"E202", "E206"})),
    Case("E202", edit("when alt > 3", "when §alx > 3"), ("'alx'", "did you mean 'alt'?")),
    Case("E202", edit("on event ev {", "on event §evv {"), ("'evv'", "not a declared event", "did you mean 'ev'?")),
    Case("E203", edit("-> b cite s\n    otherwise", "-> §bb cite s\n    otherwise"), ("'bb'", "not a state", "did you mean 'b'?")),
    Case("E204", edit("otherwise stay cite s", "otherwise stay cite §seed-reveiw"), ("'seed-reveiw'", "not a declared source", "did you mean 'seed-review'?")),
    Case("E205", edit("orders ALT, TBIL", "orders ALT, §TBLI"), ("'TBLI'", "not a declared lab", "did you mean 'TBIL'?")),
    Case("E206", edit("do order due", "do §ALT due"), ("'ALT'", "must be a declared action", "it is a lab")),
    Case("E207", MARK + edit('protocol p\n  title "A small protocol"\n  status draft\n', ""), ("no 'protocol NAME' declaration",)),
    Case(
        "E208",
        edit('let alt "ALT in multiples of ULN" = xuln(ALT)', 'let §alt "ALT in multiples of ULN" = xuln(ALT) + beta\nlet beta = alt'),
        ("'alt'", "alt -> beta -> alt"),
    ),
    Case("E209", edit("do order due 1..2 weeks", "do start §due 1..2 weeks"), ("'start' orders no labs", "orders LAB")),
    Case("E210", edit("orders ALT, TBIL", "orders ALT, TBIL fulfilled by ALT or §AST"), ("fulfilled by 'AST', which it does not order",)),
    # ---------------------------------------------------------------- types and units
    Case("E301", edit("when alt > 3", "when alt > 3 and §4"), ("'and' needs conditions", "a number")),
    Case("E301", edit("when alt > 3", "when §weight"), ("condition must be true or false",)),
    Case("E302", edit("when alt > 3", "when §ALT > TBIL"), ("U/L", "mg/dL")),
    Case("E302", edit("xuln(ALT)", "§ALT + weight"), ("cannot add", "kg", "U/L")),
    Case("E303", edit("when alt > 3", "when sex == §femal"), ("'femal'", "not a member of 'sex'", "did you mean 'female'?")),
    Case("E303", edit("one of female, male default female", "one of female, male default §mael"), ("'mael'", "did you mean 'male'?")),
    Case("E304", edit("xuln(ALT)", "§xuln(ALT, TBIL)"), ("xuln() takes one argument",)),
    Case("E304", edit("xuln(ALT)", "§xulm(ALT)"), ("unknown function 'xulm'", "did you mean 'xuln'?")),
    Case("E304", edit("xuln(ALT)", "xuln(§ALTT)"), ("takes the name of a lab", "did you mean 'ALT'?")),
    Case("E305", edit("bool default false", "bool default §3"), ("default of 'flag'", "boolean")),
    # ---------------------------------------------------------------- structure
    Case("E401", edit("initial state a", "state §a"), ("no initial state", "initial state a"), also=frozenset({"E403"})),
    Case("E402", edit('terminal state b "the end"', 'initial state §b "the end"'), ("second initial state", "'a' (line 15)")),
    Case("E403", BASE + "state §c\n", ("'c'", "cannot be reached", "'a'")),
    Case(
        "E404",
        edit('terminal state b "the end"', 'terminal state b "the end" { §on event ev { otherwise stay cite s } }'),
        ("terminal state 'b'", "cannot have handlers"),
    ),
    Case("E405", edit('  on event ev {', '  on panel { otherwise stay cite s }\n  on event ev {').replace("  on panel { otherwise", "  §on panel { otherwise"), ("already handles panels", "line 17")),
    Case("E405", edit("  on entry {", "  on entry { }\n  on entry {").replace('initial state a "the start"', '§initial state a "the start"'), ("2 'on entry' blocks", "merge")),
    Case("E406", edit("    otherwise stay cite s\n", "    otherwise stay cite s\n    §when alt > 5 -> b cite s\n"), ("after 'otherwise' can never fire",)),
    Case("E408", edit('terminal state b "the end"', 'terminal state b "the end" severity §sever'), ("'sever'", "did you mean 'severe'?")),
    Case("E407", BASE + 'accept §E201 "no"\n', ("E201 is an error", "cannot be accepted")),
    Case("E407", BASE + 'accept §W599 "no"\n', ("W599 is not a diagnostic code",)),
    # ---------------------------------------------------------------- hygiene (warnings)
    Case("W501", edit("    otherwise stay cite s\n", "    §otherwise stay\n"), ("cites no source", "cite SOURCE"), severity="warning"),
    Case("W501", edit("on entry { do order due 1..2 weeks cite s }", "on entry { §do order due 1..2 weeks }"), ("entry action 'order'", "cites no source"), severity="warning"),
    Case("W502", edit('source s "A source" kind label', 'source s "A source" kind §lable'), ("'lable'", "did you mean 'label'?"), severity="warning"),
    Case("W502", edit('source s "A source" kind label', 'source §s "A source"'), ("no kind",), severity="warning"),
    Case("W503", edit("status draft", "status §reveiw"), ("'reveiw'", "did you mean 'review'?"), severity="warning"),
    Case("W504", BASE + '§accept W501 "reviewed"\n', ("'accept W501' matches no warning",), severity="warning"),
]


def locate(marked: str) -> tuple[str, int, int]:
    """The text without its mark, and the 1-based line and column of the mark."""
    assert marked.count(MARK) == 1, "each case marks exactly one position"
    before = marked[: marked.index(MARK)]
    line = before.count("\n") + 1
    column = len(before) - (before.rfind("\n") + 1) + 1
    return marked.replace(MARK, ""), line, column


def case_id(case: Case) -> str:
    return f"{case.code}-{CASES.index(case)}"


def front_end(diags):
    """The findings of the passes tested here (the verifier's E6xx/W6xx are tested elsewhere)."""
    return [d for d in diags if not d.code.startswith(("E6", "W6"))]


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_diagnostic_code_line_column_and_message(case: Case):
    text, line, column = locate(case.text)
    result = compile_source(text, "case.rxw")
    found = [d for d in result.diagnostics if d.code == case.code]
    assert found, f"expected {case.code}, got {[(d.code, d.message) for d in result.diagnostics]}"
    d = found[0]
    assert (d.span.line, d.span.column) == (line, column), f"{case.code} at {d.span.line}:{d.span.column}, expected {line}:{column}: {d.message}"
    assert d.severity == case.severity
    assert d.span.path == "case.rxw"
    for fragment in case.says:
        assert fragment in d.message, f"{fragment!r} not in {d.message!r}"
    # nothing else than the mistake and what it legitimately causes
    assert {x.code for x in front_end(result.diagnostics)} <= {case.code} | case.also, [(x.code, x.message) for x in result.diagnostics]
    assert result.ok == (case.severity == "warning" and not any(x.is_error for x in result.diagnostics))
    if result.ok:
        assert result.graph is not None
    else:
        assert result.graph is None


def test_every_front_end_code_has_a_case():
    """A new code in CODES (E1xx-W5xx) needs a case above: codes are tested, one by one."""
    front = {c for c in CODES if re.fullmatch(r"[EW][1-5]\d\d", c)}
    assert front - {c.code for c in CASES} == set()
    assert {c.code for c in CASES} <= set(CODES)


def test_codes_are_stable_and_well_formed():
    for code, title in CODES.items():
        assert re.fullmatch(r"[EW][1-9]\d\d", code), code
        assert title and title == title.strip()


# ---------------------------------------------------------------- every error, one round


def test_every_syntax_error_of_a_file_is_reported():
    text = edit("when alt > 3", "when alt > > 3")
    text = text.replace('lab TBIL "total bilirubin" unit "mg/dL" uln 1.2', 'lab TBIL "total bilirubin" unit unit uln 1.2')
    text = text.replace("on entry { do order", "on entry { do do order")
    result = compile_source(text, "many.rxw")
    got = [(d.code, d.span.line) for d in result.diagnostics]
    assert ("E101", 7) in got
    assert ("E101", 16) in got
    assert ("E101", 18) in got


def test_every_name_error_of_a_file_is_reported():
    text = edit("when alt > 3", "when alx > 3")
    text = text.replace("otherwise stay cite s", "otherwise stay cite ss")
    text = text.replace("orders ALT, TBIL", "orders ALT, TBLI")
    text = text.replace('on event ev { otherwise -> b cite s }', 'on event ev { otherwise -> bb cite s }')
    result = compile_source(text, "names.rxw")
    codes = sorted(d.code for d in result.diagnostics if d.code != "E403")
    assert codes == ["E202", "E203", "E204", "E205"]
    assert not result.ok


def test_errors_of_several_passes_in_one_file():
    """Names and types are checked in one round: an author sees both kinds of mistakes together."""
    text = edit("when alt > 3", "when alt > 3 and 4").replace("cite s }\n  on panel", "cite ss }\n  on panel")
    result = compile_source(text, "both.rxw")
    assert {"E204", "E301"} <= {d.code for d in result.diagnostics}


def test_syntax_errors_stop_before_name_checks():
    """After a syntax error the later passes do not run (their findings would be noise)."""
    text = edit("when alt > 3", "when alx > > 3")
    result = compile_source(text, "stop.rxw")
    assert {d.code for d in result.diagnostics} == {"E101"}


def test_diagnostics_are_sorted_by_position():
    text = edit("otherwise stay cite s", "otherwise stay cite ss").replace("when alt > 3", "when alx > 3")
    text = text.replace('kind label', 'kind lable')
    result = compile_source(text, "sorted.rxw")
    keys = [(d.span.line, d.span.column) for d in result.diagnostics]
    assert keys == sorted(keys) and len(keys) >= 3


def test_syntax_errors_are_capped():
    text = BASE + "".join(f"lab X{i} unit unit\n" for i in range(200))
    result = compile_source(text, "cap.rxw")
    assert 10 <= len(result.diagnostics) <= 60
    assert all(d.code == "E101" for d in result.diagnostics)


# ---------------------------------------------------------------- rendering


def test_text_format_has_location_source_line_and_caret():
    text = edit("when alt > 3", "when alx > 3")
    result = compile_source(text, "t.rxw")
    (d,) = result.diagnostics
    head, src, caret = format_text(d, text).split("\n")
    assert head == "t.rxw:18:10: error[E202]: 'alx' is not declared; did you mean 'alt'?"
    assert src.endswith("    when alx > 3 -> b cite s")
    # the caret sits under the column of the source line, as wide as the name
    assert caret.index("^") == src.index("alx")
    assert caret.strip(" |") == "^^^"


def test_caret_of_a_multi_line_span_is_one_wide_and_inside_the_line():
    text = edit('terminal state b "the end"', 'terminal state b "the end" {\n  on event ev { otherwise stay cite s }\n}')
    result = compile_source(text, "t.rxw")
    d = next(d for d in result.diagnostics if d.code == "E404")
    head, src, caret = format_text(d, text).split("\n")
    assert caret.index("^") == src.index("on event")
    assert len(caret) <= len(src) + 1


def test_caret_at_end_of_file():
    text = BASE + "state z {"
    result = compile_source(text, "t.rxw")
    (d,) = result.diagnostics
    assert d.code == "E103"
    head, src, caret = format_text(d, text).split("\n")
    assert src.endswith("state z {")
    assert caret.index("^") == len(src)  # just after the last character


def test_tabs_keep_the_caret_under_the_column():
    text = edit("    when alt > 3", "\twhen alx > 3")
    result = compile_source(text, "t.rxw")
    (d,) = result.diagnostics
    assert (d.span.line, d.span.column) == (18, 7)
    head, src, caret = format_text(d, text).split("\n")
    assert caret.index("^") == src.index("alx")


def test_json_format_shape():
    import json

    text = edit("when alt > 3", "when alx > 3")
    result = compile_source(text, "t.rxw")
    data = json.loads(format_json(result.diagnostics))
    assert data == [
        {
            "path": "t.rxw",
            "line": 18,
            "column": 10,
            "end_line": 18,
            "end_column": 12,
            "severity": "error",
            "code": "E202",
            "message": "'alx' is not declared; did you mean 'alt'?",
        }
    ]


# ---------------------------------------------------------------- message quality


def test_expected_tokens_are_words_of_the_language():
    """'expected ...' lists what may be written there, never the parser's internal names."""
    text = edit("uln 40", "uln 40 $")
    result = compile_source(text, "t.rxw")
    (d,) = result.diagnostics
    assert d.code == "E102"
    assert "__" not in d.message and "ANON" not in d.message
    assert re.search(r"expected one of .*'lab'", d.message)


def test_duplicate_event_message_grammar():
    text = edit('event ev "an event"', 'event ev "an event"\nevent ev "again"')
    (d,) = compile_source(text, "t.rxw").diagnostics
    assert "as an event" in d.message


def test_unknown_function_message_punctuation():
    text = edit("xuln(ALT)", "xulm(ALT)")
    (d,) = compile_source(text, "t.rxw").diagnostics
    assert "?;" not in d.message


def test_reversed_window_is_an_error():
    """`due 5..2 weeks` closes before it opens: an error located on the window (the verifier's E621)."""
    text = edit("due 1..2 weeks", "due 5..2 weeks")
    result = compile_source(text, "t.rxw")
    assert not result.ok
    assert any(d.is_error and d.span.line == 16 for d in result.diagnostics), [(d.code, d.span.line) for d in result.diagnostics]


def test_byte_order_mark_is_accepted():
    result = compile_source("\ufeff" + BASE, "bom.rxw")
    assert result.ok


def test_unterminated_string_is_one_error():
    text = edit('title "A small protocol"', 'title "A small protocol')
    assert [d.code for d in compile_source(text, "t.rxw").diagnostics] == ["E102"]


def test_every_front_end_code_is_documented(repo_root):
    """docs/diagnostics.md has a `## CODE: title` entry for each code, with the title of CODES."""
    doc = (repo_root / "docs" / "diagnostics.md").read_text(encoding="utf-8")
    headings = dict(re.findall(r"^## ([EW]\d{3}): (.+)$", doc, flags=re.M))
    for code, title in CODES.items():
        if re.fullmatch(r"[EW][1-5]\d\d", code):
            assert headings.get(code) == title, code
