"""The panel form's compiler (render/panelform.py): the expression IR as JavaScript, run here by
Node.js on small protocols, each answer checked against the rule the spec says fires and
against the Python simulator: exact boundaries (bilirubin exactly 2 x ULN in any unit),
unknown results (Kleene's logic, max ignoring unknowns, "unassessable: missing ..."), a
result's own ULN, unit conversions, lets, calendar months. The same script runs in Chromium
in tests/test_panelform_browser.py. Skipped, saying why, when Node.js is not installed.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import shutil
import subprocess
import tempfile

import pytest

from rxwatch.compiler import compile_source
from rxwatch.render import panelform
from rxwatch.render import plan as _plan

NODE = shutil.which("node") or shutil.which("nodejs")
needs_node = pytest.mark.skipif(NODE is None, reason="needs Node.js to run the generated JavaScript (`apt-get install nodejs`)")

HEAD = '''protocol p
  title "t"
  version "1"
  status draft
source s "s"
  kind label
'''

LIVER = HEAD + '''
lab ALT "alanine aminotransferase" unit "U/L" uln 40
lab AST "aspartate aminotransferase" unit "U/L" uln 40
lab TBIL "total bilirubin" unit "mg/dL" uln 1.2 molar_mass 584.66
let tx "transaminases" = max(xuln(ALT), xuln(AST))
let bili "bilirubin" = xuln(TBIL)
initial state watch "Watching" {
  on panel {
    when bili > 2 -> high cite s
    when bili >= 2 -> edge cite s
    when tx > 3 and known(TBIL) -> raised cite s
    when 1 < tx <= 3 -> mild cite s
    otherwise stay cite s
  }
}
terminal state high "Bilirubin above 2 x ULN"
terminal state edge "Bilirubin exactly 2 x ULN"
terminal state raised "Transaminases above 3 x ULN"
terminal state mild "Mild"
'''


def engine(graph):
    script, data = panelform.data(graph, _plan.build(graph))
    return script, data


def run(graph, questions: list[dict]) -> list[dict]:
    """The form's `evaluate` on `questions`, in Node.js, with the page's two script parts."""
    script, data = engine(graph)
    stub = ("var window = {}; var document = {getElementById: function (id) {"
            f" return id === 'rxwatch-panelform' ? {{textContent: {json.dumps(json.dumps(data))}}} : null; }}}};\n")
    tail = "\nprocess.stdout.write(JSON.stringify(window.rxwatchPanelform.evaluate(JSON.parse(require('fs').readFileSync(0, 'utf8')))));\n"
    with tempfile.NamedTemporaryFile("w", suffix=".js", encoding="utf-8", delete=False) as f:
        f.write(stub + script + tail)
    try:
        out = subprocess.run([NODE, f.name], input=json.dumps(questions), capture_output=True, text=True, timeout=60)
    finally:
        os.unlink(f.name)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def ask(state: str, day: str = "2025-03-01", **labs) -> dict:
    """A question: `ALT=("120",)`, `TBIL=("41.05", "umol/L")`, `ALT=("180", None, "33")`."""
    panel = {}
    for lab, v in labs.items():
        value, unit, uln = (tuple(v) + (None, None))[:3]
        panel[lab] = {"value": value, "unit": unit, **({"uln": uln} if uln else {})}
    return {"config": [state], "today": day, "panel": panel, "facts": {}, "vars": {}, "last": {},
            "entries": {state: "2025-01-01"}, "orders": [], "drugs": {}}


def decision(answer: dict) -> tuple:
    """(to, rule) of the transition, or ("unassessable", missing), or None."""
    if answer.get("error"):
        return ("error", answer["error"])
    for s in answer["steps"]:
        if s["type"] == "transition":
            return (s["to"], s["rule"])
        if s["type"] == "unassessable":
            return ("unassessable", tuple(s["missing"]))
    return None


def simulated(graph, state_rows: list[dict]) -> tuple:
    """The Python simulator's decision on one panel (rows of a timeline, dated 2025-03-01)."""
    from rxwatch.inputs import yamlsrc
    from rxwatch.inputs.yamljson import parse_timeline
    from rxwatch.simulator.engine import Machine

    doc = {"patient": {"id": "x"}, "start": "2025-01-01", "until": "2025-03-01", "events": state_rows}
    text = json.dumps(doc)
    tl = parse_timeline(yamlsrc.load_json(text, "<t>"), "<t>", graph.graph)
    for s in Machine(graph).run(tl)["steps"]:
        if s["type"] == "transition":
            return (s["to"], s["rule"])
        if s["type"] == "unassessable":
            return ("unassessable", tuple(s["missing"]))
    return None


@pytest.fixture(scope="module")
def liver():
    return compile_source(LIVER, "liver.rxw").graph


@needs_node
def test_bilirubin_exactly_twice_the_uln_is_not_above_it_in_any_unit(liver):
    # 2.4 mg/dL, 24 mg/L and 0.024 g/L are all exactly 2 x ULN 1.2 mg/dL; floats would not say so
    qs = [ask("watch", TBIL=("2.4",)), ask("watch", TBIL=("24", "mg/L")), ask("watch", TBIL=("0.024", "g/L")),
          ask("watch", TBIL=("2.4000001",)), ask("watch", TBIL=("2.3999999",))]
    got = [decision(a) for a in run(liver, qs)]
    assert got[:3] == [("edge", "watch/0/1")] * 3
    assert got[3] == ("high", "watch/0/0")
    assert got[4][0] == "unassessable"  # below 2 x ULN, no transaminases: `tx > 3` is unknown
    assert got[4][1] == ("ALT", "AST")


@needs_node
def test_a_molar_unit_converts_exactly_as_the_simulator_converts_it(liver):
    # 41.05 umol/L is 2.40003... mg/dL (molar mass 584.66): above 2 x ULN; 41.04 is below
    for value in ("41.04", "41.05", "41.0495", "41.04956"):
        rows = [{"date": "2025-03-01", "lab": "TBIL", "value": float(value), "unit": "umol/L"},
                {"date": "2025-03-01", "lab": "ALT", "value": 20}]
        js = decision(run(liver, [ask("watch", TBIL=(value, "umol/L"), ALT=("20",))])[0])
        assert js == simulated(liver, rows), value


@needs_node
def test_unknown_results_follow_kleene_and_max_ignores_them(liver):
    qs = [
        ask("watch", ALT=("200",), TBIL=("0.5",)),  # tx = 5 from ALT alone (max ignores the unknown AST)
        ask("watch", ALT=("200",)),  # no TBIL: bili > 2 unknown before any rule fired
        ask("watch", ALT=("80",), TBIL=("0.5",)),  # 2 x ULN: mild (1 < tx <= 3 with AST unknown)
        ask("watch", TBIL=("0.5",)),  # neither transaminase: `tx > 3` unknown
        ask("watch", ALT=("40",), AST=("30",), TBIL=("0.5",)),  # normal: otherwise
    ]
    got = [decision(a) for a in run(liver, qs)]
    assert got[0] == ("raised", "watch/0/2")
    assert got[1] == ("unassessable", ("TBIL",))
    assert got[2] == ("mild", "watch/0/3")
    assert got[3] == ("unassessable", ("ALT", "AST"))
    assert got[4] == ("watch", "watch/0/4")


@needs_node
def test_a_results_own_uln_and_a_units_factor(liver):
    # ALT 180 with its own ULN 33 is 5.45 x ULN; with the declared 40 it is 4.5; 3 ukat/L is 180 U/L
    qs = [ask("watch", ALT=("180", None, "33"), TBIL=("0.5",)), ask("watch", ALT=("3", "ukat/L"), TBIL=("0.5",)),
          ask("watch", ALT=("120", None, "40"), TBIL=("0.5",)), ask("watch", ALT=("1", "ukat/L", "0.6"), TBIL=("0.5",))]
    answers = run(liver, qs)
    assert [decision(a) for a in answers] == [("raised", "watch/0/2")] * 2 + [("mild", "watch/0/3")] * 2
    bad = run(liver, [ask("watch", ALT=("3", "mg/dL")), ask("watch", ALT=("abc",)), ask("watch", ALT=("3", None, "0"))])
    assert "does not convert" in bad[0]["error"] and "not a number" in bad[1]["error"] and "ULN" in bad[2]["error"]


DIV = HEAD + '''
lab ALT "alanine aminotransferase" unit "U/L" uln 40
lab AST "aspartate aminotransferase" unit "U/L" uln 40
let ratio "ALT over AST" = ALT / AST
initial state watch "Watching" {
  on panel {
    when not known(ratio) stay cite s
    when ratio > 2 -> high cite s
    otherwise stay cite s
  }
}
terminal state high "High ratio"
'''


@needs_node
def test_division_by_zero_is_unknown_and_known_is_never_unknown():
    graph = compile_source(DIV, "div.rxw").graph
    got = [decision(a) for a in run(graph, [ask("watch", ALT=("50",), AST=("0",)), ask("watch", ALT=("50",), AST=("20",)),
                                            ask("watch", ALT=("50",), AST=("25",))])]
    assert got == [("watch", "watch/0/0"), ("high", "watch/0/1"), ("watch", "watch/0/2")]
    rows = [{"date": "2025-03-01", "lab": "ALT", "value": 50}, {"date": "2025-03-01", "lab": "AST", "value": 0}]
    assert got[0] == simulated(graph, rows)


CALENDAR = HEAD + '''
lab ALT "alanine aminotransferase" unit "U/L" uln 40
action start_drug "Start the drug"
let early "less than 6 months since the start" = since(start_drug) < 6 months
initial state watch "Watching" {
  on entry { do start_drug cite s }
  on panel {
    when early and xuln(ALT) > 3 -> early_rise cite s
    when since entry >= 14 days and xuln(ALT) > 3 -> late_rise cite s
    otherwise stay cite s
  }
}
terminal state early_rise "Early rise"
terminal state late_rise "Late rise"
'''


@needs_node
def test_calendar_months_and_missing_history():
    graph = compile_source(CALENDAR, "cal.rxw").graph

    def q(day, last, entered="2024-08-31"):
        x = ask("watch", day=day, ALT=("200",))
        x["last"] = {"start_drug": last} if last is not False else {}
        x["entries"] = {"watch": entered} if entered else {}
        return x

    # started 2024-08-31: 6 calendar months later is 2025-02-28 (the month's last day)
    qs = [q("2025-02-27", "2024-08-31"), q("2025-02-28", "2024-08-31"), q("2025-02-28", None), q("2025-02-28", False),
          q("2024-09-10", False, "2024-09-01")]
    answers = run(graph, qs)
    got = [decision(a) for a in answers]
    assert got[0] == ("early_rise", "watch/0/0")
    assert got[1] == ("late_rise", "watch/0/1")
    assert got[2] == ("unassessable", ())  # never started: since() unknown, so is `early`
    # not given: unknown too, and the answer says what it needed
    assert got[3] == ("unassessable", ()) and answers[3]["regions"][0]["needs"] == ["since start_drug"]
    assert got[4] == ("unassessable", ()) and "since start_drug" in answers[4]["regions"][0]["needs"]
    for day in ("2025-02-27", "2025-02-28"):
        rows = [{"date": day, "lab": "ALT", "value": 200}]
        doc_start = "2024-08-31"
        from rxwatch.inputs import yamlsrc
        from rxwatch.inputs.yamljson import parse_timeline
        from rxwatch.simulator.engine import Machine

        text = json.dumps({"patient": {"id": "x"}, "start": doc_start, "until": day, "events": rows})
        steps = Machine(graph).run(parse_timeline(yamlsrc.load_json(text, "<t>"), "<t>", graph.graph))["steps"]
        sim = next(s["rule"] for s in steps if s["type"] == "transition")
        assert sim == got[0 if day.endswith("27") else 1][1]


NAMES = HEAD + '''
lab alert "a lab named like a JavaScript function" unit "U/L" uln 40
fact constructor "a fact named like a property of every object" bool default true
let __proto__x "a let" = xuln(alert) * 2
initial state watch "Watching </script>" {
  on panel {
    when constructor and __proto__x > 3 -> high cite s
    otherwise stay cite s
  }
}
terminal state high "High"
'''


@needs_node
def test_generated_code_names_nothing_from_the_protocol():
    graph = compile_source(NAMES, "names.rxw").graph
    script, data = engine(graph)
    generated = script[script.index("var F=["):script.index("var LET=[")] + script[script.index("var LET=["):script.index("];", script.index("var LET=["))]
    for name in ("alert", "constructor", "__proto__x", "watch", "script"):
        assert name not in generated
    assert re.search(r"K\[\d+\]", generated)
    q = ask("watch", alert=("100",))
    q["facts"] = {"constructor": True}
    got = decision(run(graph, [q])[0])
    assert got == ("high", "watch/0/0")
    q["facts"] = {}  # not given: unknown, named in the answer
    answer = run(graph, [q])[0]
    assert decision(answer) == ("unassessable", ()) and answer["regions"][0]["needs"] == ["fact constructor"]


def test_the_form_offers_the_units_that_convert_exactly(liver):
    _, data = engine(liver)
    units = {u for u, _ in data["labs"]["TBIL"]["units"]}
    assert {"mg/dL", "mg/L", "umol/L", "g/L"} <= units and "U/L" not in units
    factor = dict((u, f) for u, f in data["labs"]["TBIL"]["units"])
    assert factor["mg/L"] == ["1", "10"] and factor["mg/dL"] == ["1", "1"]
    assert data["labs"]["ALT"]["units"][0][0] == "U/L" and ["ukat/L", ["60", "1"]] in data["labs"]["ALT"]["units"]


def test_a_patients_history_from_a_trace():
    from rxwatch.compiler import compile_file

    graph = compile_file("protocols/anakinra_hepatotoxicity.rxw").graph
    trace = {"final_states": ["moderate_elevation", "neutrophils_routine"], "open_orders": [
        {"action": "order_lfts", "window": ["2025-03-06", "2025-03-20"], "track": "liver"}], "steps": [
        {"date": "2025-01-08", "type": "action", "action": "start_anakinra", "state": "early_check", "track": "liver"},
        {"date": "2025-02-20", "type": "enter", "state": "moderate_elevation"},
        {"date": "2025-02-20", "type": "action", "action": "reduce_dose", "state": "moderate_elevation", "track": "liver"},
        {"date": "2025-02-20", "type": "set", "var": "dose_modified", "value": True},
    ]}
    q = panelform.question(graph, trace, "2025-03-10", [{"lab": "ALT", "value": "50", "unit": None}],
                           {"indication": "rheumatoid_arthritis"})
    assert q["config"] == ["moderate_elevation", "neutrophils_routine"]
    assert q["vars"]["dose_modified"] is True and q["vars"]["resumed"] is False
    assert q["last"]["start_anakinra"] == "2025-01-08" and q["last"]["resume_anakinra"] is None
    assert q["entries"]["moderate_elevation"] == "2025-02-20"
    assert q["drugs"]["anakinra"] == {"started": True, "stopped": False, "holds": [], "asks": {"liver": 1}}
    assert q["orders"] == [{"action": "order_lfts", "opens": "2025-03-06", "track": "liver"}]
    assert q["facts"]["indication"] == "rheumatoid_arthritis" and q["facts"]["liver_disease"] is False
    assert datetime.date.fromisoformat(q["today"])


FRAGILE = HEAD + '''
lab ALT "alanine aminotransferase" unit "U/L" uln 40
action order_alt "Order ALT" orders ALT
var confirmed "the elevation was confirmed" bool
initial state watch "Watching" {
  on entry { do order_alt due within 14 days cite s }
  on panel ordered {
    when xuln(ALT) > 3 and not known(confirmed) -> ask_again cite s
    when xuln(ALT) > 3 and confirmed -> high cite s
    when xuln(ALT) > 2 stay cite s { set confirmed = true cite s }
    otherwise stay cite s
  }
}
terminal state ask_again "Ask again"
terminal state high "High"
'''


@needs_node
def test_blank_history_is_unknown_and_an_answer_that_depends_on_it_says_so():
    graph = compile_source(FRAGILE, "fragile.rxw").graph
    blank, given = ask("watch", ALT=("200",)), ask("watch", ALT=("200",))
    given["vars"] = {"confirmed": True}
    normal = ask("watch", ALT=("20",))
    a, b, c = run(graph, [blank, given, normal])
    # blank: known(confirmed) is false, so the first rule fires, and the answer says it read a blank
    assert decision(a) == ("ask_again", "watch/0/0") and a["regions"][0]["fragile"] == ["var confirmed"]
    assert decision(b) == ("high", "watch/0/1") and b["regions"][0]["fragile"] == []
    # a normal panel decides whatever the variable is: no blank was read through known()
    assert decision(c) == ("watch", "watch/0/3") and c["regions"][0]["fragile"] == []


ENTRY = """lab ALT "alanine aminotransferase" unit "U/L" uln 40
lab ANC "neutrophils" unit "10*9/L"
action lfts "Order ALT" orders ALT
action anc "Order ANC" orders ANC
action fresh "entered less than 7 days ago"
action stale "entered 7 days ago or more"
initial state par "Both" {
  track A "A" {
    initial state a1 "a1" {
      on entry { do lfts due within 400 days cite s }
      on panel { when xuln(ALT) > 3 -> a2 cite s
                 otherwise stay cite s }
    }
    state a2 "a2" {
      on entry {
        if since entry < 7 days { do fresh cite s } else { do stale cite s }
        do lfts due within 14 days cite s
      }
      on panel { otherwise -> a1 cite s }
    }
  }
  track B "B" {
    initial state b1 "b1" {
      on entry { do anc due within 400 days cite s }
      on panel { when ANC < 1 stay cite s
                 otherwise stay cite s }
    }
  }
}
"""


@needs_node
@pytest.mark.parametrize("labs", [("ALT",), ("ALT", "ANC")])
def test_since_entry_in_entry_actions_reads_what_the_simulator_reads(labs):
    """`since entry` in the entry actions of a state entered in a track: the form reads the day
    the simulator reads (the day that state was entered, whatever track's rule was tried last)."""
    from rxwatch.inputs import yamlsrc
    from rxwatch.inputs.yamljson import parse_timeline
    from rxwatch.simulator.engine import Machine

    graph = compile_source(HEAD + ENTRY, "entry.rxw").graph
    values = {"ALT": "200", "ANC": "3"}
    rows = [{"date": "2025-04-10", "lab": lab, "value": int(values[lab])} for lab in labs]
    text = json.dumps({"patient": {"id": "x"}, "start": "2025-01-01", "until": "2025-04-09", "events": []})
    before = Machine(graph).run(parse_timeline(yamlsrc.load_json(text, "<t>"), "<t>", graph.graph))
    text = json.dumps({"patient": {"id": "x"}, "start": "2025-01-01", "until": "2025-04-10", "events": rows})
    after = Machine(graph).run(parse_timeline(yamlsrc.load_json(text, "<t>"), "<t>", graph.graph))
    q = panelform.question(graph, before, "2025-04-10", [{"lab": lab, "value": values[lab]} for lab in labs])
    answer = run(graph, [q])[0]
    sim = [s["action"] for s in after["steps"] if s["type"] == "action" and s["date"] == "2025-04-10"]
    assert [s["action"] for s in answer["steps"] if s["type"] == "action"] == sim and sim


WEIGHT = HEAD + '''
lab ALT "alanine aminotransferase" unit "U/L" uln 40
fact weight "body weight" number unit "kg"
initial state watch "Watching" {
  on panel {
    when weight < 50 and xuln(ALT) > 3 -> light cite s
    when xuln(ALT) > 3 -> high cite s
    otherwise stay cite s
  }
}
terminal state light "Light patient, high ALT"
terminal state high "High ALT"
'''


@needs_node
def test_what_the_form_cannot_read_is_said_never_left_blank():
    """A number fact typed as text is read exactly (a negative too); text that is no number is an
    error naming it (a blank would be unknown, and the answer would ask for what was typed); a
    lab or state the protocol does not have, and a value with a thousands separator or a
    decimal comma, are errors in words."""
    graph = compile_source(WEIGHT, "weight.rxw").graph
    q = ask("watch", ALT=("200",))
    typed = [dict(q, facts={"weight": w}) for w in ("45", " 45.5 ", "-1", "70")]
    assert [decision(a) for a in run(graph, typed)] == [("light", "watch/0/0")] * 3 + [("high", "watch/0/1")]
    bad = run(graph, [dict(q, facts={"weight": "70 kg"}), dict(q, facts={"weight": "70,5"}),
                      dict(q, config=["nowhere"]), ask("watch", XYZ=("7",)), ask("watch", ALT=("1,200",)),
                      ask("watch", ALT=("-5",))])
    errors = [a.get("error", "") for a in bad]
    assert errors[0].startswith("weight: 70 kg is not a number") and "weight: 70,5 is not a number" in errors[1]
    assert errors[2] == "'nowhere' is not a state of this protocol"
    assert errors[3] == "XYZ is not a lab of this protocol"
    assert "ALT: 1,200 is not a number of 0 or more" in errors[4] and "no thousands separator" in errors[4]
    assert "ALT: -5 is not a number of 0 or more" in errors[5]
