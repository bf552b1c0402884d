"""String literals: escapes and block strings, as docs/language.md describes them."""

import warnings

from rxwatch.compiler import compile_source

BASE = 'protocol p\n  description {text}\ninitial state s\n'


def description(text: str) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no DeprecationWarning for odd escapes
        result = compile_source(BASE.format(text=text), "s.rxw", verify=False)
    assert result.ok, result.diagnostics
    return result.graph.graph["description"]


def test_escapes():
    assert description(r'"a \"quoted\" word"') == 'a "quoted" word'
    assert description(r'"back\\slash"') == "back\\slash"
    assert description(r'"two\nlines\tand a tab"') == "two\nlines\tand a tab"


def test_any_other_backslash_stands_for_itself():
    assert description(r'"C:\zeta\data"') == r"C:\zeta\data"


def test_block_strings_lose_their_common_indentation():
    assert description('"""\n    first line\n      indented\n    last\n  """') == "first line\n  indented\nlast"
