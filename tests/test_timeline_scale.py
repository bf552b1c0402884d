"""Big inputs and many mistakes: the work grows about linearly (issue 10, item 13).

No timed assertions: the tests count the work done (names compared, lines split) or just
run sizes that took minutes when the work was quadratic."""

from __future__ import annotations

import difflib
import json
import random
import string
from pathlib import Path

import pytest

from rxwatch.compiler import compile_source, diagnostics
from rxwatch.compiler.diagnostics import Diagnostic, did_you_mean, format_text
from rxwatch.inputs.model import TimelineError
from rxwatch.inputs.registry import load_timeline

DATA = Path(__file__).parent / "data" / "timelines"
PROTOCOL = json.loads((DATA / "protocol.json").read_text())


def reference(name: str, candidates) -> str:
    """did_you_mean as it was: difflib over every candidate, then a match ignoring case."""
    candidates = list(candidates)
    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    if not close:
        lowered = {c.lower(): c for c in candidates}
        if name.lower() in lowered:
            close = [lowered[name.lower()]]
    return f"; did you mean '{close[0]}'?" if close else ""


def test_did_you_mean_is_unchanged_for_small_candidate_sets():
    rng = random.Random(3)
    for _ in range(300):
        size = rng.randrange(0, diagnostics.SUGGEST_EXACT_LIMIT + 1)
        words = ["".join(rng.choices(string.ascii_letters[:8] + "_", k=rng.randrange(1, 8))) for _ in range(size)]
        name = rng.choice(words + ["ALT", "alt", "xyz"]) if words else "ALT"
        if rng.random() < 0.5:
            name = name[:-1] + rng.choice("abc") if name else name
        assert did_you_mean(name, words) == reference(name, words), (name, words)
    assert did_you_mean("ALR", {"ALT": 1, "INR": 2}) == "; did you mean 'ALT'?"
    assert did_you_mean("tbil", ["TBIL"]) == "; did you mean 'TBIL'?"
    assert did_you_mean("QQQ", ["ALT"]) == ""


def test_did_you_mean_compares_a_bounded_number_of_candidates(monkeypatch):
    compared = []
    real = difflib.get_close_matches

    def counting(word, possibilities, *args, **kwargs):
        possibilities = list(possibilities)
        compared.append(len(possibilities))
        return real(word, possibilities, *args, **kwargs)

    monkeypatch.setattr(difflib, "get_close_matches", counting)
    states = {f"state_{i}": i for i in range(20_000)}
    for i in range(2_000):
        hint = did_you_mean(f"state_{i}x", states)
        assert hint.startswith("; did you mean 'state_")
    assert did_you_mean("STATE_7", states) == "; did you mean 'state_7'?"  # ignoring case, found by the index
    assert len(compared) == 2_001
    assert max(compared) <= 4 * 16 + 1  # never the 20,000


def test_did_you_mean_answers_once_per_name():
    calls = diagnostics._suggestion.cache_info().misses
    labs = [f"LAB{i}" for i in range(50)]
    for _ in range(1_000):
        did_you_mean("LBA7", labs)
    assert diagnostics._suggestion.cache_info().misses - calls <= 1


def test_printing_many_messages_about_one_file_splits_it_once(monkeypatch):
    source = "".join(f"line {i}\n" for i in range(50_000))
    splits = []

    class Text(str):
        def split(self, *args):
            splits.append(args)
            return str.split(self, *args)

    text = Text(source)
    for line in range(1, 50_001, 10):
        out = format_text(Diagnostic.at("f.csv", line, "unknown lab", "error", "E707"), text)
        assert out.endswith(f"line {line - 1}")
    assert len(splits) == 1


def test_five_thousand_undeclared_targets_are_checked(tmp_path):
    """56 s in `check` when every name was compared with every state."""
    states = "\n".join(
        f"{'initial ' if i == 0 else ''}state s{i} \"s\" {{\n  on panel {{ when ALT > 1 -> gone{i}x cite c\n  otherwise -> s{(i + 1) % 5000} cite c }}\n}}"
        for i in range(5000))
    text = ('protocol p\n  title "t"\n  version "1"\n  status draft\n  description "d"\n'
            'source c "c" kind convention\nlab ALT "a" unit "U/L" uln 40\n' + states)
    result = compile_source(text, "big.rxw", verify=False, lower=False)
    e203 = [d for d in result.diagnostics if d.code == "E203"]
    assert len(e203) == 5000
    assert all("which is not a state" in d.message for d in e203)


def test_two_hundred_thousand_unknown_labs_are_each_reported(tmp_path):
    """149 s end to end when each message split the file again."""
    path = tmp_path / "many.csv"
    path.write_text("date,lab,value\n" + "".join(f"2025-01-06,XLAB{i % 1000},1\n" for i in range(200_000)))
    with pytest.raises(TimelineError) as info:
        load_timeline(path, PROTOCOL)
    messages = info.value.messages
    assert len(messages) == 200_000 and {m.code for m in messages} == {"E707"}
    assert messages[-1].line == 200_001


def _outcome(call):
    try:
        tl = call()
    except TimelineError as exc:
        return [(m.line, m.column, m.code, m.message) for m in exc.messages]
    return [(e.loc.line, e.lab, e.value, e.unit, e.order) for e in tl.events]


@pytest.mark.parametrize("text", [
    "date,lab,value\n2025-01-06,ALT,32\n2025-01-07,XXX,1\n",
    "date,lab,value\r\n2025-01-06,ALT,32\r\n2025-01-07,ALT,x\r\n",
    "date,lab,value\r2025-01-06,ALT,32\r2025-01-07,ALT,-1\r",
    "date,lab,value\n2025-01-06,ALT,32\x0c2025-01-07,ALT,1\n2025-01-08,XXX,1\n",
    "date,lab,value\n2025-01-06,ALT,32\u20282025-01-07,XXX,1\x852025-01-08,ALT,z\n",
    'date,lab,value\n2025-01-06,"AL\nT",32\n2025-01-07,ALT,q\n',
    "date,lab,value\n2025-01-06,ALT,\"32\n",
    "\ufeffdate,lab,value\n2025-01-06,ALT,32\n",
    "# a comment\n\ndate,lab,value,unit\n2025-01-06,ALT,32,IU/L\n2025-01-06,ALT,32,IU/L\n",
])
def test_a_streamed_csv_reads_as_the_whole_text_does(tmp_path, text):
    from rxwatch.inputs.csvlabs import read_csv
    from rxwatch.inputs.reader import Reader

    path = tmp_path / "t.csv"
    path.write_bytes(text.encode("utf-8"))
    streamed = _outcome(lambda: load_timeline(path, PROTOCOL, start="2025-01-01"))
    whole = _outcome(lambda: read_csv(text.removeprefix("\ufeff"), Reader(str(path), PROTOCOL), start="2025-01-01"))
    assert streamed == whole


def test_a_csv_that_is_not_utf8_is_that_one_error_even_after_a_bad_header(tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes(b"when,lab,value\n" + b"2025-01-06,ALT,32\n" * 1000 + b"2025-01-07,ALT,\xff\n")
    with pytest.raises(TimelineError) as info:
        load_timeline(path, PROTOCOL)
    assert [(m.line, m.code) for m in info.value.messages] == [(1002, "E701")]
    assert "not UTF-8" in info.value.messages[0].message


def test_a_big_csv_shares_what_repeats(tmp_path):
    """A result holds its own place in the file, and shares its date, lab, unit and numbers
    with the results that repeat them (a 100 MB file costs its results, not copies)."""
    path = tmp_path / "big.csv"
    rows = [f"2025-{1 + i % 12:02d}-{1 + i % 28:02d},{('ALT', 'AST')[i % 2]},{30 + i % 7}.5,IU/L,40\n"
            for i in range(30_000)]
    path.write_text("date,lab,value,unit,uln\n" + "".join(rows))
    results = load_timeline(path, PROTOCOL).events
    assert len(results) == 30_000
    for attribute in ("date", "lab", "unit", "value", "uln", "q", "uln_q"):
        assert len({id(getattr(r, attribute)) for r in results}) <= 7 * 2 * 28 * 12, attribute
    assert len({id(r.value) for r in results}) <= 14
    assert all(r.order[1] is r.loc.line for r in results)


def _shape(value):
    """A value with its types, a float's text, and where each event of a timeline stands."""
    from rxwatch.inputs import yamlsrc

    if isinstance(value, dict):
        return ("map", {k: _shape(v) for k, v in value.items()})
    if isinstance(value, list):
        return ("seq", [_shape(v) for v in value])
    return (type(value).__name__, getattr(value, "text", value))


def _random_json(rng: random.Random, depth: int = 0):
    kind = rng.randrange(8 if depth < 3 else 5)
    if kind == 0:
        return rng.choice([0, -0, 7, -12, 10**25, 2**64])
    if kind == 1:
        return rng.choice([1.5, -0.0, 2.4, 1e-7, 1e300, 12.0])
    if kind == 2:
        return rng.choice(["", "ALT", "é\u00a0\\/\"", "2025-01-06", "08:30", "\ud800", "yes", "1.5", "#x"])
    if kind == 3:
        return rng.choice([True, False, None])
    if kind == 4:
        return "x" * rng.randrange(0, 40)
    if kind == 5:
        return [_random_json(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {rng.choice(["a", "b", "lab", "value", "é", "k" * 30]) + str(i): _random_json(rng, depth + 1)
            for i in range(rng.randrange(4))}


def test_the_fast_json_reader_reads_as_the_yaml_reader_does():
    from rxwatch.inputs import yamlsrc

    rng = random.Random(11)
    for n in range(400):
        doc = {"patient": _random_json(rng), "events": [_random_json(rng) for _ in range(rng.randrange(5))],
               "start": _random_json(rng)}
        text = json.dumps(doc, ensure_ascii=rng.random() < 0.5, indent=rng.choice([None, 1, 2, "\t"]))
        if rng.random() < 0.3:
            text = text.replace("\n", "\r\n")
        fast = yamlsrc.load_json(text, "t.json")
        try:
            full = yamlsrc.load(text, "t.json")
        except yamlsrc.YamlError:
            assert fast is None, text  # what the YAML reader refuses, the fast one declines
            continue
        assert fast is not None, text
        assert _shape(fast) == _shape(full), text
        assert [fast["events"].item_pos(i) for i in range(len(full["events"]))] == \
               [full["events"].item_pos(i) for i in range(len(full["events"]))], text
        for key in full:
            assert (fast.key_pos(key), fast.value_pos(key)) == (full.key_pos(key), full.value_pos(key)), text


@pytest.mark.parametrize("text", [
    '{"a": 1, "a": 2}',                 # a duplicate key: load says where
    '{"a": {"b": 1, "b": 2}}',
    '{"a": NaN}',
    '{"a": 1} x',
    '# a comment\n{"a": 1}',
    '{"a": "\x85"}',                     # a line break the YAML reader counts
    '{"a": 1}\r{"b": 2}',
    '{"a": 1' + " " * 300 + '}',
    '{"' + "k" * 600 + '": 1}',
    '{"a": ' + "9" * 5000 + "}",
    '[1, 2]',
    'patient: {id: x}',
])
def test_the_fast_json_reader_declines_what_the_yaml_reader_reads_otherwise(text):
    from rxwatch.inputs import yamlsrc

    assert yamlsrc.load_json(text, "t.json") is None


def test_a_mistake_in_a_json_timeline_is_located_as_before(tmp_path):
    events = [{"date": "2025-01-06", "lab": "ALT", "value": 32}] * 50
    events[30] = {"date": "2025-01-06", "lab": "ALT", "value": 32, "unti": "U/L"}
    doc = {"patient": {"id": "p1", "facts": {}}, "start": "2025-01-01", "events": events}
    path = tmp_path / "t.json"
    path.write_text(json.dumps(doc, indent=2))
    with pytest.raises(TimelineError) as info:
        load_timeline(path, PROTOCOL)
    [message] = info.value.messages
    line = path.read_text().splitlines().index('      "unti": "U/L"') + 1
    assert (message.line, message.column, message.code) == (line, 7, "E703")
    assert message.message == "unknown key 'unti' in a lab entry; did you mean 'unit'?"


def _located(value):
    """`_shape` with every position a Map or Seq knows."""
    from rxwatch.inputs import yamlsrc

    if isinstance(value, yamlsrc.Map):
        return ("map", value.pos, {k: (value.key_pos(k), value.value_pos(k), _located(v)) for k, v in value.items()})
    if isinstance(value, yamlsrc.Seq):
        return ("seq", value.pos, [(value.item_pos(i), _located(v)) for i, v in enumerate(value)])
    return _shape(value)


def _both_ways(text, monkeypatch):
    """(through libyaml, through ruamel alone): each a document or the YamlError's text."""
    from rxwatch.inputs import yamlsrc

    def read():
        try:
            return _located(yamlsrc.load(text, "t.yaml"))
        except yamlsrc.YamlError as exc:
            return str(exc)

    fast = read()
    with monkeypatch.context() as m:
        m.setattr(yamlsrc, "_c_loader_class", lambda: None)
        slow = read()
    return fast, slow


YAML_TEXTS = [
    "patient: {id: p1}\nstart: 2025-01-06\nevents:\n  - {date: 2025-01-08, lab: ALT, value: 28, unit: U/L}\n",
    "a: yes\nb: 08:30\nc: 0o17\nd: 017\ne: 1_000\nf: .5\ng: 1e3\nh: -.inf\ni: .NaN\nj: ~\nk: Null\nl: 0x1F\nm: 2025-13-45\n",
    "base: &b {x: 1, y: 2.50}\nuse:\n  <<: *b\n  y: 3\nlist: [*b, *b]\n",
    "a: 1\na: 2\n",
    "a: !foo 1\n",
    "a: &x [*x]\n",
    "? [a]\n: 1\n",
    "a:\n\t- 1\n",
    "a: 'it''s'\nb: \"\\u00e9\\t\"\nc: |\n  two\n  lines\nd: >-\n  folded\n  text\n",
    "%YAML 1.1\n---\na: yes\n",
    "a: b: c\n",
    "é: \"ü\"\nlist:\n- x: 1\n  y: [1,  2 ,3]\n-   z: {q: 'w'}\n",
    "a: 1\r\nb:\r\n  - 2\r\n",
    "a: 1\rb: 2\n",
    "a: \"\x85\"\n",
    "",
    "# only a comment\n",
    "- 1\n- [2, 3]\n",
    "a: " + "9" * 5000 + "\n",
    "a: 1.0\nb: -0.0\nc: 007\nd: +5\ne: 12345678901234567890123\n",
    "a:\nb: 1\nc:\n  d:\n  e: ''\n",  # empty values: libyaml and ruamel place them differently
    "events:\n  - date: 2025-01-06\n    lab: ALT\n    value:\n    unit: U/L\n",
]


@pytest.mark.parametrize("text", YAML_TEXTS)
def test_libyaml_reads_as_ruamel_does(text, monkeypatch):
    pytest.importorskip("yaml")
    fast, slow = _both_ways(text, monkeypatch)
    assert fast == slow


def test_libyaml_reads_the_project_files_as_ruamel_does(monkeypatch):
    pytest.importorskip("yaml")
    root = Path(__file__).parent.parent
    files = sorted([*root.glob("tests/**/*.yaml"), *root.glob("docs/**/*.yaml")])
    assert len(files) > 20
    for path in files:
        text = path.read_text(encoding="utf-8-sig", errors="replace")
        fast, slow = _both_ways(text, monkeypatch)
        assert fast == slow, path


def test_yaml_is_read_by_libyaml_when_pyyaml_has_it(monkeypatch):
    yaml = pytest.importorskip("yaml")
    if not yaml.__with_libyaml__:
        pytest.skip("PyYAML without libyaml")
    from rxwatch.inputs import yamlsrc

    assert yamlsrc._load_c("a: 1\n", "t.yaml") == {"a": 1}
    assert yamlsrc._load_c("a: 1\na: 2\n", "t.yaml") is yamlsrc._DECLINED  # ruamel says where


def test_a_yaml_text_read_again_while_its_document_is_held_is_parsed_once(monkeypatch):
    from rxwatch.inputs import yamlsrc

    text = "a: 1\nb: [1, 2]\n"
    first = yamlsrc.load(text, "t.yaml")
    composed = []
    real = yamlsrc._load_c
    monkeypatch.setattr(yamlsrc, "_load_c", lambda *a: composed.append(a) or real(*a))
    assert yamlsrc.load(text, "t.yaml") is first
    assert composed == []
    assert yamlsrc.load(text + "c: 2\n", "t.yaml") is not first  # another text
    assert yamlsrc.load(text, "u.yaml") is not first  # another file
    del first
    again = yamlsrc.load(text, "t.yaml")  # nothing held: read anew
    assert again == {"a": 1, "b": [1, 2]}
    assert len(composed) == 3


@pytest.mark.parametrize("indent", [None, 2])
def test_a_json_timeline_read_fast_is_the_timeline_read_with_every_position(tmp_path, indent):
    from rxwatch.inputs import yamlsrc
    from rxwatch.inputs.yamljson import parse_timeline

    rng = random.Random(5)
    events = []
    for day in range(1, 29):
        for lab in ("ALT", "AST"):
            event = {"date": f"2025-02-{day:02d}", "lab": lab, "value": round(rng.uniform(5, 90), rng.choice([0, 1, 2]))}
            if rng.random() < 0.3:
                event["time"] = f"{rng.randrange(24):02d}:30"
            if rng.random() < 0.3:
                event["uln"] = 40.0
            events.append(event)
    doc = {"patient": {"id": "p1", "facts": {}}, "start": "2025-02-01", "events": events}
    path = tmp_path / "t.json"
    text = json.dumps(doc, indent=indent)
    path.write_text(text)
    fast = load_timeline(path, PROTOCOL)
    full = parse_timeline(yamlsrc.load(text + " ", str(path)), str(path), PROTOCOL)  # another text: no shortcut
    shape = lambda tl: [(e.loc, e.date, e.lab, e.value, type(e.value), e.uln, e.time, e.order) for e in tl.events]
    assert shape(fast) == shape(full)
    assert len({e.loc.line for e in fast.events}) == (len(events) if indent else 1)


@pytest.mark.parametrize("text", [
    "a: " + "[" * 200_000 + "]" * 200_000 + "\n",
    "a: " + "{b: " * 50_000 + "1" + "}" * 50_000 + "\n",
    "a: [" + "[1], " * 20_000 + "[" * 150 + "]" * 150 + "]\n",
])
def test_deep_flow_nesting_is_left_to_ruamel_which_reports_it(text, monkeypatch):
    """PyYAML's C composer recurses on the C stack: a deep text must never reach it."""
    pytest.importorskip("yaml")
    from rxwatch.inputs import yamlsrc

    assert yamlsrc._deep(text)
    assert yamlsrc._load_c(text, "t.yaml") is yamlsrc._DECLINED


def test_many_shallow_flow_collections_go_to_libyaml():
    from rxwatch.inputs import yamlsrc

    text = "events:\n" + "".join(f"  - {{date: 2025-01-{1 + i % 28:02d}, lab: ALT, value: [{i}]}}\n" for i in range(5_000))
    assert not yamlsrc._deep(text)


_PLAIN = ["yes", "No", "on", "08:30", "12:30:45", "0x1F", "0o17", "017", "1_000", "~", "null", "NULL", ".inf",
          "-.INF", ".nan", "2025-01-06", "2025-01-06T08:30", "-.5", "+1", "1e3", "1E+3", "3.", "=", "<<x",
          "true", "FALSE", "12", "-0", "1.50", "0.1e-2", "ALT", "U/L", "a b", "é", "2025-13-45"]


def test_libyaml_reads_random_documents_as_ruamel_does(monkeypatch):
    """Random documents in block and flow style, with the plain scalars that YAML 1.1 and 1.2
    read differently: libyaml with ruamel's resolution gives ruamel's document."""
    pytest.importorskip("yaml")
    from ruamel.yaml import YAML
    import io

    rng = random.Random(17)

    def value(depth=0):
        kind = rng.randrange(6 if depth < 3 else 3)
        if kind == 0:
            return rng.choice(_PLAIN)
        if kind == 1:
            return rng.choice([1, -7, 2.5, True, None, "it's", 'say "hi"', "x: y", "# not a comment", "- item"])
        if kind == 2:
            return rng.choice(_PLAIN) + rng.choice(["", " ", "z"])
        if kind == 3:
            return [value(depth + 1) for _ in range(rng.randrange(4))]
        return {rng.choice(["a", "b", "lab", "é", "1", "yes", "2025-01-06"]) + str(i): value(depth + 1)
                for i in range(rng.randrange(4))}

    for n in range(200):
        yaml = YAML(typ="rt")
        yaml.default_flow_style = rng.choice([False, True, None])
        buffer = io.StringIO()
        yaml.dump({"k": value(), "events": [value() for _ in range(3)]}, buffer)
        text = buffer.getvalue()
        # plain scalars written unquoted, as people write them
        for word in rng.sample(_PLAIN, 5):
            text = text.replace(f"'{word}'", word)
        fast, slow = _both_ways(text, monkeypatch)
        assert fast == slow, text
