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
        # (what follows is read as states nested in 'a', whose '}' is then missing at the end)
        also=frozenset({"E103"}),
    ),
    Case("E102", edit('uln 40', 'uln 40 §$'), ("unexpected character '$'",)),
    # the rest of the line is skipped, so the field misses its string: the parser says so too
    Case("E102", edit('title "A small protocol"', 'title §"A small protocol'), ("unterminated string", '"""'), also=frozenset({"E101"})),
    Case("E103", BASE[: BASE.index("    otherwise stay cite s") + len("    otherwise stay cite s")] + MARK, ("unexpected end of file", "expected")),
    Case("E104", edit("due 1..2 weeks", "due §1.5..2 weeks"), ("whole number", "1.5")),
    Case("E104", edit("on event ev {", "after §2.5 days {"), ("whole number", "2.5")),
    Case("E105", edit("let alt \"ALT in multiples of ULN\" = xuln(ALT)", "let alt = §" + "-" * 205 + "xuln(ALT)"), ("nested more than 200 levels", "let")),
    Case("E104", edit('uln 40', 'uln §0'), ("a ULN must be above 0",)),
    Case("E104", edit('uln 1.2', 'uln 1.2 molar_mass §0.0'), ("a molar mass must be above 0",)),
    Case("E110", edit('title "A small protocol"', 'title "A small §\x1b[2Jprotocol"'), ("control character \\x1b",)),
    Case("E110", edit('event ev "an event"', 'event ev "an §\u202eevent"'), ("control character \\u202e",)),
    Case("E111", edit('terminal state b "the end"', 'terminal state b "the end"\nstate §' + "q" * 201), ("201 characters", "at most 200")),
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
    Case("E211", BASE + "state c { track §a { state d { on event ev { otherwise -> b cite s } } } }\n",
         ("'a' is already the name of a state at line 15", "one namespace"), also=frozenset({"E403"})),
    Case("E212", edit("on event ev { otherwise -> b cite s }", "on event ev { otherwise -> §t cite s }")
         + "state c { track t { state d { on event ev { otherwise -> b cite s } } } }\n",
         ("transition to 't', which is a track", "a track of 'c'"), also=frozenset({"E403"})),
    Case("E213", edit("    when alt > 3 -> b cite s\n", "    use §gradin\n")
         + "rules grading { when alt > 3 -> b cite s }\n", ("use of 'gradin', which is not a rule block", "did you mean 'grading'?"),
         also=frozenset({"W505"})),
    # ---------------------------------------------------------------- types and units
    Case("E214", edit('action start "start the drug"', 'drug d "the drug" doses 8, 4 unit "mg/kg"\naction start "start the drug" starts §dd'),
         ("'start' acts on 'dd', which is not a declared drug", "did you mean 'd'?")),
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
    Case("E304", edit('action start "start the drug"', 'drug d "the drug" doses 8, 4 unit "mg/kg"\naction start "start the drug"').replace(
        "when alt > 3", "when §held(ALT)"), ("held() takes the name of a drug",)),
    Case("E308", edit('let alt "ALT in multiples of ULN" = xuln(ALT)', 'let alt "ALT in multiples of ULN" unit "U/L" = §xuln(ALT)'),
         ("'alt' declares the unit 'U/L', but its expression is a ratio",)),
    Case("E308", edit('let alt "ALT in multiples of ULN" = xuln(ALT)', 'let alt "ALT in multiples of ULN" unit "1" = §xuln(ALT) > 3'),
         ("its value is a boolean, not a number",), also=frozenset({"E301"})),
    Case("E302", edit('lab TBIL "total bilirubin" unit "mg/dL" uln 1.2', 'lab TBIL "total bilirubin" unit "mg/dL" uln 1.2\nlab NEU unit "10*9/L"\nlab WBC unit "/mm3"')
         .replace("when alt > 3", "when §NEU < WBC"), ("cannot compare a number in 10*9/L with a number in /mm3", "1 /mm3 is 0.001 10*9/L")),
    Case("E302", edit("when alt > 3", "when §TBIL > 2 \"U/L\""), ("cannot compare a number in mg/dL with a number in U/L",)),
    Case("E308", edit('let alt "ALT in multiples of ULN" = xuln(ALT)',
                      'let alt "ALT in multiples of ULN" = xuln(ALT)\nlet w "weight per 1.73 m2" unit "kg" = §weight / (1.73 "m2")'), ("'w' declares the unit 'kg', but its expression is in kg/m2",)),
    Case("E319", edit("when alt > 3", "when alt > §3 \"U//L\""), ("the unit of 3: cannot read the unit 'U//L'",)),
    Case("E306", edit('action start "start the drug"', 'drug d "the drug" doses full "100 mg", §4\naction start "start the drug"'),
         ("the dose levels of 'd' mix numbers and names",)),
    Case("E307", edit('action start "start the drug"', 'drug d "the drug" doses 4, §8 unit "mg/kg"\naction start "start the drug"'),
         ("go highest first: 8 comes after 4",)),
    Case("E307", edit('action start "start the drug"', 'drug d "the drug" doses full, half, §full\naction start "start the drug"'),
         ("dose level full of 'd' is listed twice",)),
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
    Case("E402", BASE + "state c { initial state d { on event ev { otherwise -> b cite s } }\n"
                        "  initial state §e { on event ev { otherwise -> b cite s } } }\n",
         ("a second initial state in 'c'", "'d' (line 24)"), also=frozenset({"E403"})),
    Case("E409", edit('terminal state b "the end"', 'state b "the end" { on event ev { otherwise stay cite s }\n  terminal state §x }'),
         ("terminal state 'x' is nested in 'b'", "top level")),
    Case("E409", edit('terminal state b "the end"', 'terminal state b "the end" { state §x }'),
         ("terminal state 'b' ends the pathway and cannot contain states",)),
    Case("E410", BASE + "state c { track t { state d { on event ev { otherwise -> b cite s } } }\n"
                        "  state §e { on event ev { otherwise -> b cite s } } }\n",
         ("'c' has tracks", "'e' must be inside one of its tracks (t)"), also=frozenset({"E403"})),
    Case("E411", BASE + "state c { on event ev { otherwise -> b cite s } track §t { } }\n", ("track 't' has no states",),
         also=frozenset({"E403"})),
    Case("E412", BASE + "state c { track t { state d { on event ev { otherwise -> §e cite s } } }\n"
                        "  track u { state e { on event ev { otherwise -> b cite s } } } }\n",
         ("'d' is in track 't' of 'c'", "'e' in its sibling track 'u'", "put the rule on 'c'"), also=frozenset({"E403"})),
    Case("E413", edit("    when alt > 3 -> b cite s\n", "    use grading\n")
         + "rules severe { when alt > 5 -> b cite s }\nrules grading { §use severe  when alt > 3 -> b cite s }\n",
         ("'use severe' inside the rule block 'grading'", "a block holds rules only"), also=frozenset({"W505"})),
    Case("E414", edit("    when alt > 3 -> b cite s\n", "    §when alt > 3 cite s { do start }\n"), ("says nothing about where it leads", "'-> STATE' or 'stay'")),
    Case("E415", edit("on entry { do order due 1..2 weeks cite s }", "on entry { do one of { order  start -> §b } cite s }"),
         ("'start -> b'", "in the 'on entry' of 'a'", "directly in a rule's actions")),
    Case("E415", edit("    when alt > 3 -> b cite s\n", "    when alt > 3 -> b cite s { if flag { do one of { §order stay  start } } }\n"),
         ("'order stay'", "inside an 'if'",)),
    Case("E416", edit("    when alt > 3 -> b cite s\n", "    when alt > 3 cite s { do one of { order -> b  start } §do one of { start stay  order } }\n"),
         ("a second choice", "line 18", "merge them")),
    Case("E417", edit('action start "start the drug"', 'drug d "the drug" doses 8, 4 unit "mg/kg"\naction start "start the drug" starts d at §6'),
         ("6 is not a dose level of 'd' (its levels: 8, 4 mg/kg)",)),
    Case("E417", edit('action start "start the drug"', 'drug d "the drug" doses full, half\naction start "start the drug" doses d §hlf'),
         ("hlf is not a dose level of 'd'", "did you mean 'half'?")),
    Case("E418", edit("do order due 1..2 weeks", "do order §due 3 months"), ("'due 3 months' is a point in time", "schedule tolerance")),
    Case("E418", edit("do order due 1..2 weeks", "do order §every 3 months"), ("'every 3 months' is a point in time",)),
    Case("E201", BASE + "schedule tolerance 2 weeks cite s\n§schedule tolerance 1 week cite s\n",
         ("a second 'schedule tolerance' declaration", "line 24")),
    Case("E406", edit("    when alt > 3 -> b cite s\n", "    use grading\n    §when alt > 2 -> b cite s\n")
         + "rules grading { when alt > 3 -> b cite s  otherwise stay cite s }\n",
         ("a rule after 'use grading', whose last rule is 'otherwise', can never fire",)),
    Case("E407", BASE + 'accept §W599 "no"\n', ("W599 is not a diagnostic code",)),
    # ---------------------------------------------------------------- hygiene (warnings)
    Case("W501", edit("    otherwise stay cite s\n", "    §otherwise stay\n"), ("cites no source", "cite SOURCE"), severity="warning"),
    Case("W501", edit("on entry { do order due 1..2 weeks cite s }", "on entry { §do order due 1..2 weeks }"), ("entry action 'order'", "cites no source"), severity="warning"),
    Case("W502", edit('source s "A source" kind label', 'source s "A source" kind §lable'), ("'lable'", "did you mean 'label'?"), severity="warning"),
    Case("W502", edit('source s "A source" kind label', 'source §s "A source"'), ("no kind",), severity="warning"),
    Case("W503", edit("status draft", "status §reveiw"), ("'reveiw'", "did you mean 'review'?"), severity="warning"),
    Case("W504", BASE + '§accept W501 "reviewed"\n', ("'accept W501' matches no warning",), severity="warning"),
    Case("W505", BASE + "rules §grading { when alt > 3 -> b cite s }\n", ("rule block 'grading' is used by no handler",), severity="warning"),
    Case("W506", edit("do order due 1..2 weeks", "do order §due 10 days") + "schedule tolerance 2 weeks cite s\n",
         ("'due 10 days' give or take the schedule tolerance of 2 weeks (line 24) opens on or before the day", "give a range"),
         severity="warning"),
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


# ---------------------------------------------------------------- every other code, from the command line
#
# The codes of inputs other than the protocol (E7xx/W7xx timelines, E8xx case files, E9xx graph
# files and the simulator at run time, E920 traces) are each triggered here through `rxwatch`,
# and each must print in the one shape: `PATH:LINE[:COL]: SEVERITY[CODE]: MESSAGE`.

import json  # noqa: E402
import textwrap  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Callable  # noqa: E402

from rxwatch.cli.main import main  # noqa: E402
from rxwatch.compiler import graphio  # noqa: E402
from rxwatch.compiler.diagnostics import Diagnostic, as_diagnostic, group_of  # noqa: E402
from rxwatch.compiler.span import COMMAND_LINE, Span  # noqa: E402

META = textwrap.dedent("""\
    protocol meta
      version "1.0"
    source s "A source" kind label
    lab ALT "alanine aminotransferase" unit "U/L" uln 40 loinc "1742-6"
    event stop "treatment ended"
    action check "order ALT" orders ALT
    action treat "treat"
    action pause "pause"
    let x "ALT in multiples of ULN" = xuln(ALT)

    initial state watch "watching" {
      on entry { do check due 1..2 weeks cite s }
      on panel {
        when known(ALT) and x > 2 -> high cite s
        otherwise stay cite s { do check due 1..2 weeks cite s }
      }
      on event stop { otherwise -> done cite s }
    }

    state high "raised" {
      on entry {
        do one of treat, pause cite s
        do check due 1..2 weeks cite s
      }
      on panel {
        when known(ALT) and x <= 1 -> watch cite s
        otherwise stay cite s
      }
      on event stop { otherwise -> done cite s }
    }

    terminal state done "ended"
""")

LOOP = textwrap.dedent("""\
    protocol loop
    source s "S" kind label
    lab ALT unit "U/L" uln 40
    fact risky "a risk" bool default false
    initial state a { on panel { otherwise -> b cite s } }
    state b { on fact { otherwise -> c cite s } }
    state c { on fact { otherwise -> b cite s } }
""")

COHORT_MODEL = str(Path(__file__).resolve().parents[1] / "cohort" / "models" / "anakinra.yaml")
DOSED = textwrap.dedent("""\
    protocol dosed
      version "1.0"
    source s "A source" kind label
    lab ALT "alanine aminotransferase" unit "U/L" uln 40 loinc "1742-6"
    lab GGT "gamma-glutamyl transferase" unit "U/L" uln 60 loinc "2324-2"
    drug anakinra "anakinra SC" doses daily "100 mg daily" cite s
    action check "order ALT and GGT" orders ALT, GGT cite s
    action start_it "start anakinra" starts anakinra cite s
    action stop_it "stop anakinra" stops anakinra cite s

    initial state on "on anakinra" {
      on entry {
        do start_it cite s
        do check due 1..2 weeks cite s
      }
      on panel ordered {
        when xuln(ALT) > 5 -> stopped cite s
        otherwise stay cite s { do check due 1..2 weeks cite s }
      }
    }

    terminal state stopped "stopped" {
      on entry { do stop_it cite s }
    }
""")

HEAD = "patient: {id: p}\nstart: 2025-01-06\n"
EVENTS = HEAD + "events:\n"


def _obs(ident: str, value: dict | None) -> dict:
    obs = {"resourceType": "Observation", "id": ident, "status": "final",
           "code": {"coding": [{"system": "http://loinc.org", "code": "1742-6"}]},
           "subject": {"reference": "Patient/p"}, "effectiveDateTime": "2025-01-06"}
    if value is not None:
        obs["valueQuantity"] = value
    return obs


def _bundle(*resources: dict) -> str:
    return json.dumps({"resourceType": "Bundle", "type": "collection",
                       "entry": [{"resource": r} for r in resources]}, indent=1)


PATIENT = {"resourceType": "Patient", "id": "p"}


@dataclass
class CliCase:
    code: str
    files: dict[str, str]  # name -> text, written to a temporary folder
    argv: tuple[str, ...]  # file names stand for their paths
    where: tuple[str, int]  # (file name or COMMAND_LINE, line; 0: any)
    says: str = ""
    setup: Callable | None = None  # (tmp_path, monkeypatch) -> None, before the run


def _loop_graph(tmp_path: Path, monkeypatch) -> None:
    result = compile_source(LOOP, "loop.rxw", verify=False)  # the verifier would refuse it (E620)
    (tmp_path / "loop.json").write_text(graphio.to_json(result.graph), encoding="utf-8")


def _graph(mutate: Callable[[dict], None]) -> Callable:
    def setup(tmp_path: Path, monkeypatch) -> None:
        data = json.loads(graphio.to_json(compile_source(META, "meta.rxw", verify=False).graph))
        mutate(data)
        (tmp_path / "g.json").write_text(json.dumps(data, indent=1), encoding="utf-8")

    return setup


def _engine_defect(tmp_path: Path, monkeypatch) -> None:
    """E902 cannot come from a graph that passed validation unless the simulator has a defect:
    stand in for one (a SimulationError that is no loop)."""
    from rxwatch.simulator import engine

    def broken(self, graph):
        raise engine.SimulationError("cannot compile the protocol for simulation: a defect", path=graph.graph["path"])

    monkeypatch.setattr(engine.Machine, "__init__", broken)


def _unchecked_statechart(tmp_path: Path, monkeypatch) -> None:
    """E903 comes from a graph built in code (the Python API): a graph file with the same fault
    never reaches the simulator (E914). Stand in for one: the file's check let through."""
    from rxwatch.compiler import graphio

    _graph(lambda d: d["nodes"][1].update(type="compound", initial_child="done"))(tmp_path, monkeypatch)
    monkeypatch.setattr(graphio, "validate", lambda data: [])


STOPPED = textwrap.dedent("""\
    protocol stopped
      version "1.0"
    source s "A source" kind label
    lab ALT "alanine aminotransferase" unit "U/L" uln 40
    drug toci "tocilizumab IV" doses 8, 4 unit "mg/kg" cite s
    action stop_toci "stop tocilizumab" stops toci cite s
    action hold_toci "interrupt tocilizumab" holds toci cite s
    event stop "treatment ended"
    initial state on_drug "on the drug" {
      on event stop { otherwise stay cite s { do stop_toci cite s } }
      on panel { when ALT > 120 stay cite s { do hold_toci cite s }  otherwise stay cite s }
    }
""")

CASE_OK = EVENTS + "  - {date: 2025-01-10, lab: ALT, value: 30}\nexpect:\n"

CLI_CASES = [
    # ---------------------------------------------------------------- timelines (E7xx/W7xx)
    CliCase("E701", {"t.yaml": "patient: {id: p\n"}, ("simulate", "meta.rxw", "t.yaml"), ("t.yaml", 0), "YAML"),
    CliCase("E702", {"t.yaml": "- 1\n"}, ("simulate", "meta.rxw", "t.yaml"), ("t.yaml", 1)),
    CliCase("E703", {"t.yaml": HEAD + "evnts: []\n"}, ("simulate", "meta.rxw", "t.yaml"), ("t.yaml", 3), "did you mean 'events'?"),
    CliCase("E704", {"t.yaml": "start: 2025-01-06\n"}, ("simulate", "meta.rxw", "t.yaml"), ("t.yaml", 1), "patient"),
    CliCase("E705", {"t.yaml": "patient: {id: p}\nstart: 2025-02-30\n"}, ("simulate", "meta.rxw", "t.yaml"), ("t.yaml", 2), "ISO 8601"),
    CliCase("E706", {"t.yaml": HEAD + "until: 2025-01-01\n"}, ("simulate", "meta.rxw", "t.yaml"), ("t.yaml", 3), "before start"),
    CliCase("E707", {"t.yaml": EVENTS + "  - {date: 2025-01-06, lab: ALTT, value: 32}\n"}, ("simulate", "meta.rxw", "t.yaml"), ("t.yaml", 4), "did you mean 'ALT'?"),
    CliCase("E708", {"t.yaml": EVENTS + "  - {date: 2025-01-06, lab: ALT, value: '32'}\n"}, ("simulate", "meta.rxw", "t.yaml"), ("t.yaml", 4), "number"),
    CliCase("E709", {"t.yaml": EVENTS + "  - {date: 2025-01-06, lab: ALT, value: 3, unit: mg/dL}\n"}, ("simulate", "meta.rxw", "t.yaml"), ("t.yaml", 4), "mg/dL"),
    CliCase("E710", {"t.yaml": HEAD, "fact.rxw": LOOP.replace("bool default false", "number unit \"kg\"")},
            ("simulate", "--no-check", "fact.rxw", "t.yaml"), ("", 0), "no default and no value"),
    CliCase("E711", {"labs.csv": "date,lab,value,patient\n2025-01-06,ALT,30,p\n2025-01-07,ALT,31,q\n"},
            ("simulate", "meta.rxw", "labs.csv"), ("labs.csv", 3), "a second patient"),
    CliCase("E712", {"b.json": json.dumps(PATIENT, indent=1)}, ("simulate", "meta.rxw", "b.json"), ("b.json", 0), "Bundle"),
    CliCase("W701", {"b.json": _bundle(PATIENT, _obs("o1", {"value": 30, "unit": "U/L"}), _obs("o2", None))},
            ("simulate", "meta.rxw", "b.json"), ("b.json", 0), "o2"),
    CliCase("W702", {"t.yaml": EVENTS + "  - {date: 2025-01-10, lab: ALT, value: 30}\n"},
            ("simulate", "meta.rxw", "t.yaml", "--until", "2025-01-07"), (COMMAND_LINE, 0), "left out"),
    CliCase("E721", {"x.csv": "patient,date,lab,value\np,2025-01-06,ALT,30\n,2025-01-07,ALT,31\n"},
            ("audit", "meta.rxw", "x.csv", "--table", "t.csv", "--jobs", "1"), ("x.csv", 3), "belongs to no one"),
    # ---------------------------------------------------------------- case files (E8xx)
    CliCase("E801", {"c.yaml": CASE_OK.replace("expect:\n", "")}, ("test", "meta.rxw", "c.yaml"), ("c.yaml", 0), "expect"),
    CliCase("E802", {"c.yaml": CASE_OK + "  - on 2025-01-10 stya watch\n"}, ("test", "meta.rxw", "c.yaml"), ("c.yaml", 6), "stya"),
    CliCase("E803", {"c.yaml": CASE_OK + "  - final state nowhere\n"}, ("test", "meta.rxw", "c.yaml"), ("c.yaml", 6), "nowhere"),
    CliCase("E804", {"c.yaml": CASE_OK + "  - on 2025-13-01 stay watch\n"}, ("test", "meta.rxw", "c.yaml"), ("c.yaml", 6), "2025-13-01"),
    CliCase("E805", {"c.yaml": "protocol: other\n" + CASE_OK + "  - final state watch\n"}, ("test", "meta.rxw", "c.yaml"), ("c.yaml", 1), "other"),
    CliCase("E806", {"c.yaml": CASE_OK.replace("lab: ALT, value: 30", "lab: ALT, value: 1") + "  - final state a\n"},
            ("test", "loop.json", "c.yaml"), ("c.yaml", 0), "zero-time loop", setup=_loop_graph),
    # (v3) values, drugs, tracks and active states in expectations (docs/scenarios.md#statecharts-v3)
    CliCase("E807", {"c.yaml": CASE_OK + "  - on 2025-01-10 value x is true\n"}, ("test", "meta.rxw", "c.yaml"), ("c.yaml", 6), "not true"),
    CliCase("E808", {"c.yaml": CASE_OK + "  - by 2025-01-10 value x is 1\n"}, ("test", "meta.rxw", "c.yaml"), ("c.yaml", 6), "write 'on DATE'"),
    CliCase("E809", {"c.yaml": CASE_OK + "  - on 2025-01-10 drug toci dose 6\n", "drug.rxw": (
        'protocol drugs\n  version "1.0"\nsource s "A source" kind label\nlab ALT "alanine aminotransferase" unit "U/L" uln 40\n'
        'event stop "treatment ended"\ndrug toci "tocilizumab IV" doses 8, 4 unit "mg/kg" cite s\n'
        'action start "Start tocilizumab" starts toci cite s\ninitial state watch "watching" {\n  on entry { do start cite s }\n'
        '  on panel { otherwise stay cite s }\n  on event stop { otherwise -> done cite s }\n}\nterminal state done "ended"\n')},
            ("test", "drug.rxw", "c.yaml"), ("c.yaml", 6), "no dose level 6"),
    CliCase("E810", {"c.yaml": CASE_OK + "  - final state watch in track liver\n"}, ("test", "meta.rxw", "c.yaml"), ("c.yaml", 6), "has none"),
    CliCase("E811", {"c.yaml": CASE_OK + "  - final states on_drug\n", "tracks.rxw": (
        'protocol tracks\n  version "1.0"\nsource s "A source" kind label\nlab ALT "alanine aminotransferase" unit "U/L" uln 40\n'
        'event stop "treatment ended"\ninitial state on_drug "on the drug" {\n  on event stop { otherwise -> done cite s }\n'
        '  track liver "Liver" { initial state watch "watching" { on panel { otherwise stay cite s } } }\n'
        '  track counts "Counts" { initial state routine "routine" { on panel { otherwise stay cite s } } }\n}\n'
        'terminal state done "ended"\n')},
            ("test", "tracks.rxw", "c.yaml"), ("c.yaml", 6), "is a parallel state"),
    # ---------------------------------------------------------------- the simulator at run time (E90x)
    CliCase("E901", {"t.yaml": EVENTS + "  - {date: 2025-01-07, lab: ALT, value: 1}\n"}, ("simulate", "loop.json", "t.yaml"),
            ("loop.rxw", 0), "zero-time loop on 2025-01-07", setup=_loop_graph),
    CliCase("E902", {"t.yaml": HEAD}, ("simulate", "meta.rxw", "t.yaml"), ("meta.rxw", 0), "a defect", setup=_engine_defect),
    CliCase("E903", {"t.yaml": HEAD}, ("simulate", "g.json", "t.yaml"), ("meta.rxw", 20),
            "the compound state 'high' has no states in it", setup=_unchecked_statechart),
    CliCase("W903", {"t.yaml": EVENTS + "  - {date: 2025-01-06, lab: ALT, value: 20}\n  - {date: 2025-01-07, choice: pause}\n"},
            ("simulate", "meta.rxw", "t.yaml"), ("t.yaml", 5), "the choice of pause on 2025-01-07 was not used"),
    CliCase("W904", {"t.yaml": EVENTS + "  - {date: 2025-01-06, event: stop}\n  - {date: 2025-01-08, lab: ALT, value: 20}\n"
                                         "  - {date: 2025-01-08, lab: ALT, value: 21}\n"},
            ("simulate", "meta.rxw", "t.yaml"), ("t.yaml", 5), "a result of ALT was replaced by a later one of the same day"),
    CliCase("W905", {"t.yaml": EVENTS + "  - {date: 2025-01-07, event: stop}\n  - {date: 2025-01-09, lab: ALT, value: 200}\n",
                     "stopped.rxw": STOPPED},
            ("simulate", "--no-check", "stopped.rxw", "t.yaml"), ("t.yaml", 5), "but toci was stopped"),
    # ---------------------------------------------------------------- graph files (E91x)
    CliCase("E910", {"g.json": "[1, 2]\n", "t.yaml": HEAD}, ("simulate", "g.json", "t.yaml"), ("g.json", 1), "JSON object"),
    CliCase("E911", {"t.yaml": HEAD}, ("simulate", "g.json", "t.yaml"), ("g.json", 0), "rxwatch-graph/0",
            setup=_graph(lambda d: d["graph"].update(format="rxwatch-graph/0"))),
    CliCase("E912", {"t.yaml": HEAD}, ("simulate", "g.json", "t.yaml"), ("g.json", 0), "is not a state name",
            setup=_graph(lambda d: d["nodes"][2].update(id="done\nimport os"))),
    CliCase("E913", {"t.yaml": HEAD}, ("simulate", "g.json", "t.yaml"), ("g.json", 0), "unknown expression operator",
            setup=_graph(lambda d: d["edges"][0].update(guard={"op": "exec"}))),
    CliCase("E914", {"t.yaml": HEAD}, ("simulate", "g.json", "t.yaml"), ("g.json", 0), "is not declared in the graph",
            setup=_graph(lambda d: d["edges"][0].update(target="elsewhere"))),
    CliCase("E915", {"t.yaml": HEAD}, ("simulate", "g.json", "t.yaml"), ("g.json", 0), "must be true or false",
            setup=_graph(lambda d: d["edges"][0].update(stay=1))),
    # ---------------------------------------------------------------- cohort simulation (E950, W950)
    CliCase("E950", {}, ("cohort", "meta.rxw", "--model", COHORT_MODEL, "--patients", "1", "--years", "1", "--seed", "1",
                         "--jobs", "1"), ("meta.rxw", 1), "meta declares no drug"),
    CliCase("W950", {"dosed.rxw": DOSED}, ("cohort", "dosed.rxw", "--model", COHORT_MODEL, "--patients", "1", "--years", "1",
                                           "--seed", "1", "--jobs", "1", "--resamples", "0"), ("dosed.rxw", 5), "makes no GGT"),
    CliCase("E951", {"dosed.rxw": DOSED.replace('lab ALT "alanine aminotransferase" unit "U/L" uln 40',
                                                'lab ALT "alanine aminotransferase" unit "ukat/L" uln 0.67')},
            ("cohort", "dosed.rxw", "--model", COHORT_MODEL, "--patients", "1", "--years", "1", "--seed", "1", "--jobs", "1"),
            ("dosed.rxw", 4), "makes ALT in U/L; dosed reads ALT in ukat/L"),
    # ---------------------------------------------------------------- traces given to render (E920)
    CliCase("E920", {"trace.json": '{"protocol": {"name": "meta"},\n "steps": [,]}\n'},
            ("render", "meta.rxw", "--trace", "trace.json", "-o", "chart.dot"), ("trace.json", 2), "not a JSON trace"),
]

# cohort patient models (E93x): the first case of each code in tests/test_cohort_model.py, through `rxwatch cohort`
from test_cohort_model import BAD as _MODEL_BAD  # noqa: E402

_FIRST_OF_CODE: dict = {}
for _code, _text, _line, _, _says in _MODEL_BAD:
    _FIRST_OF_CODE.setdefault(_code, CliCase(_code, {"m.yaml": _text}, ("cohort", "meta.rxw", "--model", "m.yaml", "--patients", "1",
                                                                   "--years", "1", "--seed", "1", "-j", "1"), ("m.yaml", _line), _says))
CLI_CASES += list(_FIRST_OF_CODE.values())

HEAD_LINE = re.compile(r"^(?P<path>.+?)(?::(?P<line>\d+))?(?::(?P<col>\d+))?: (?P<sev>error|warning)\[(?P<code>[EW]\d{3})\]: (?P<msg>.*)$")


def run_cli_case(case: CliCase, tmp_path: Path, monkeypatch) -> int:
    """Run `case` in `tmp_path` (the working folder: paths print as written, relative)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "meta.rxw").write_text(META, encoding="utf-8")
    for name, text in case.files.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    if case.setup is not None:
        case.setup(tmp_path, monkeypatch)
    argv = [a for a in case.argv if a != "--no-check"]
    if "--no-check" in case.argv:  # a protocol that the verifier would stop before the timeline is read
        import rxwatch.cli.simulate as command
        from rxwatch.cli import output

        monkeypatch.setattr(command, "load_graph", lambda path, **kw: output.load_graph(path, **{**kw, "verify": False}))
    status = main(argv)
    return status


@pytest.mark.parametrize("case", CLI_CASES, ids=lambda c: c.code)
def test_each_input_code_is_printed_in_the_one_shape(case: CliCase, tmp_path, capsys, monkeypatch):
    status = run_cli_case(case, tmp_path, monkeypatch)
    err = capsys.readouterr().err
    expected_status = 0 if case.code.startswith("W") else 1
    assert status == expected_status, err
    heads = [m for m in map(HEAD_LINE.match, err.splitlines()) if m and m["code"] == case.code]
    assert heads, f"{case.code} not printed:\n{err}"
    m = heads[0]
    file, line = case.where
    if file == COMMAND_LINE:
        assert m["path"] == COMMAND_LINE and m["line"] is None
    elif file:
        assert m["path"] == file, err
    if line:
        assert m["line"] == str(line), err
    assert m["sev"] == ("warning" if case.code.startswith("W") else "error")
    assert case.says in m["msg"], err
    assert "Traceback" not in err


@pytest.mark.parametrize("case", CLI_CASES, ids=lambda c: c.code)
def test_the_documented_output_is_what_rxwatch_prints(case: CliCase, tmp_path, capsys, monkeypatch, repo_root):
    """Each E7xx-E9xx entry of docs/diagnostics.md quotes the first line rxwatch prints for it."""
    run_cli_case(case, tmp_path, monkeypatch)
    err = capsys.readouterr().err
    head = next(line for line in err.splitlines() if f"[{case.code}]: " in line)
    doc = (repo_root / "docs" / "diagnostics.md").read_text(encoding="utf-8")
    entry = doc.split(f"## {case.code}: ", 1)[1].split("\n## ", 1)[0]
    assert head in entry.splitlines(), f"docs/diagnostics.md, {case.code}: quote\n{head}"


def test_every_input_code_has_a_command_line_case():
    """A new timeline, case-file, graph or simulator code needs a case above."""
    others = {c for c in CODES if not re.fullmatch(r"[EW][1-6]\d\d", c)}
    assert others == {c.code for c in CLI_CASES}


def test_every_code_the_source_uses_is_in_the_table(repo_root):
    """A code written anywhere in the package is in CODES (so it is documented and tested)."""
    used = set()
    for folder in ("compiler", "simulator", "inputs", "render", "cli"):
        for path in (repo_root / folder).rglob("*.py"):
            used |= set(re.findall(r"""["']([EW]\d{3})["']""", path.read_text(encoding="utf-8")))
    assert used - set(CODES) == set(), sorted(used - set(CODES))


def test_every_code_is_documented(repo_root):
    """docs/diagnostics.md has a `## CODE: title` entry for every code, with real output, but
    for the verifier's (E6xx/W6xx), which it lists with their titles and which
    docs/verification.md explains (tests/test_verify.py checks those entries)."""
    doc = (repo_root / "docs" / "diagnostics.md").read_text(encoding="utf-8")
    headings = dict(re.findall(r"^## ([EW]\d{3}): (.+)$", doc, flags=re.M))
    for code, title in CODES.items():
        if code[1] == "6":
            assert re.search(rf"^\| \[{code}\]\(verification\.md#[^)]+\) \| {re.escape(title)} \|$", doc, flags=re.M), code
            continue
        assert headings.get(code) == title, code
        entry = doc.split(f"## {code}: ", 1)[1].split("\n## ", 1)[0]
        assert f"[{code}]" in entry, f"{code}: the entry shows no real output"
    assert set(headings) <= set(CODES)


def test_every_code_has_a_group():
    for code in CODES:
        assert group_of(code)


# ---------------------------------------------------------------- the one type


def test_a_message_shaped_object_converts_at_one_place():
    class Message:  # the timeline's Message, field for field
        def __init__(self, path, line, text, severity="error", code="", column=0):
            self.path, self.line, self.text, self.severity, self.code, self.column = path, line, text, severity, code, column

    d = as_diagnostic(Message("t.yaml", 4, "unknown lab 'ALTT'", "error", "E707", 19))
    assert d == Diagnostic(Span("t.yaml", 4, 19, 4, 19), "error", "E707", "unknown lab 'ALTT'")
    assert (d.path, d.line, d.column, d.text) == ("t.yaml", 4, 19, "unknown lab 'ALTT'")
    assert str(d) == "t.yaml:4:19: error[E707]: unknown lab 'ALTT'"
    assert as_diagnostic(d) is d
    assert Diagnostic.at("t.yaml", 4, "x", "error", "E707", 19) == d.__class__(d.span, "error", "E707", "x")


def test_message_can_be_a_subclass_of_diagnostic():
    """How inputs/model.py's Message can become a Diagnostic: its constructor kept."""

    class Message(Diagnostic):
        __slots__ = ()

        def __init__(self, path, line, text, severity="error", code="", column=0):
            Diagnostic.__init__(self, Span.point(path, line, column), severity, code, text)

    m = Message("t.yaml", 4, "unknown lab", "error", "E707")
    assert isinstance(m, Diagnostic) and as_diagnostic(m) is m
    assert (m.path, m.line, m.column, m.text, m.code) == ("t.yaml", 4, 0, "unknown lab", "E707")
    assert format_text(m, "a\nb\nc\nlab: ALTT\n").splitlines() == ["t.yaml:4: error[E707]: unknown lab", "   4 | lab: ALTT"]


def test_unknown_parts_of_a_position_are_left_out():
    assert str(Diagnostic.at(COMMAND_LINE, 0, "--fact x: unknown fact", "error", "E707")) == "<command line>: error[E707]: --fact x: unknown fact"
    assert str(Diagnostic.at("labs.csv", 3, "a second patient", "error", "E711")) == "labs.csv:3: error[E711]: a second patient"
    assert format_text(Diagnostic.at("labs.csv", 3, "x", "error", "E711"), None) == "labs.csv:3: error[E711]: x"


def test_control_characters_never_reach_the_terminal():
    d = Diagnostic.at("t.yaml", 1, "unknown key 'a\x1b[2Jb'", "error", "E703", 3)
    head, src, caret = format_text(d, "x:\x1b[2J y\n").splitlines()
    assert "\x1b" not in head + src and "\\x1b" in head and "\\x1b" in src
    assert src.endswith("x:\\x1b[2J y")
    assert caret.index("^") == src.index("\\x1b")  # under the character it stands for


def test_a_long_line_is_cut_around_the_caret():
    line = "a" * 500 + "XYZ" + "b" * 500
    d = Diagnostic(Span("g.json", 1, 501, 1, 503), "error", "E913", "here")
    head, src, caret = format_text(d, line).splitlines()
    assert len(src) < 200 and "..." in src
    assert src[caret.index("^"):].startswith("XYZ") and caret.strip(" |") == "^^^"
