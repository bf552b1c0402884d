"""The viewer's panel form in a real headless browser (Chromium driven by Selenium), against the
Python simulator.

For each shipped protocol, 1,000 seeded panels (values around every threshold a guard states,
labs missing, results in other units and with their own ULN) are asked in the states that
suite/generate.py's shortest timelines reach: the simulator replays each timeline with the
panel added on a later day, and the form's `evaluate` (the function its button calls), given
the patient's history as the replay left it the day before (render.panelform.question), must
give the same steps that day: the rule that fires in each track or the unassessable step with
its missing labs, conflicts, the states entered, every action with its window's dates and
options, every `set` with its exact value, and what `on fact` rules and timers do after. The
1,000 panels of a protocol go to the page in one batch; a few real form interactions follow.
Skipped, saying why, only when no Chromium, chromedriver or Graphviz is installed.
"""

from __future__ import annotations

import datetime
import json
import random
import shutil
from collections import Counter
from fractions import Fraction
from pathlib import Path

import pytest

from rxwatch.compiler import compile_file, ir
from rxwatch.render import panelform, render
from rxwatch.render import plan as _plan
from rxwatch.suite.generate import Generator, Prefix

from browserkit import BROWSER, CHROMEDRIVER, chrome
ROOT = Path(__file__).resolve().parents[1]
PROTOCOLS = ("anakinra_hepatotoxicity", "leflunomide_hepatotoxicity", "tocilizumab_monitoring")
PANELS = 1000

pytestmark = pytest.mark.skipif(
    not (CHROMEDRIVER.exists() and BROWSER and shutil.which("dot")),
    reason="needs chromium, /usr/bin/chromedriver and Graphviz's dot (`apt-get install chromium chromium-driver graphviz`)",
)


@pytest.fixture(scope="module")
def driver():
    yield from chrome("1400,1000")


# ---------------------------------------------------------------------------- the two sides, compared


def project(steps: list[dict], simulator: bool) -> list[tuple]:
    """The steps of the day as both sides write them (a simulator step or a form step)."""
    out = []
    for s in steps:
        t = s["type"]
        if t == "transition":
            out.append((t, s["rule"], s["from"], s["to"], bool(s.get("stay")), s.get("track"), s["trigger"],
                        tuple(s.get("preempted") or ())))
        elif t == "unassessable":
            out.append((t, s["state"], s["rule"], tuple(s["missing"]), s.get("track")))
        elif t == "enter":
            out.append((t, s["state"]))
        elif t == "action" and not s.get("repeat"):  # a repeat is the order fulfilled, not a decision
            out.append((t, s["action"], s["state"], tuple(s.get("window") or ()), tuple(s.get("options") or ())))
        elif t == "set":
            v = s.get("value")
            if isinstance(v, dict):  # the form's exact number
                v = Fraction(int(v["q"][0]), int(v["q"][1]))
            elif simulator and v is not None and not isinstance(v, (bool, str)):
                v = Fraction(s["value_exact"]) if "value_exact" in s else Fraction(v)
            out.append((t, s["var"], str(v) if isinstance(v, Fraction) else v))
    return out


# ---------------------------------------------------------------------------- generated panels


def thresholds(graph) -> list[Fraction]:
    """Every number a guard or a let compares with."""
    trees = [d.get("guard") for _, _, d in graph.edges(data=True) if d.get("guard")]
    trees += [d["expr"] for d in (graph.graph.get("lets") or {}).values() if d.get("expr")]
    return sorted({Fraction(ir.exact(n["value"])) for t in trees for n in ir.walk(t) if n.get("op") == "num"}) or [Fraction(1)]


def text(q: Fraction, places: int | None = None) -> str | None:
    if places is not None:
        q = Fraction(round(q, places))
    return ir.decimal_text(q)


def panel(rng: random.Random, graph, units: dict, ths: list[Fraction]) -> list[dict]:
    """One panel: each lab missing a quarter of the time; its value a threshold times the ULN,
    a threshold, or anything, nudged by 0, +-0.01, +-0.1 or +-1; in the lab's unit or another
    (exact when the value has a short decimal there); now and then with its own ULN."""
    rows = []
    for lab, d in (graph.graph.get("labs") or {}).items():
        if rng.random() < 0.25:
            continue
        uln = Fraction(ir.exact(d["uln"])) if d.get("uln") is not None else None
        own = uln is not None and rng.random() < 0.2
        base = uln * Fraction(rng.choice((80, 90, 100, 110, 125)), 100) if own else uln
        c, k = rng.choice(ths), rng.random()
        target = c * base if base is not None and k < 0.6 else c if k < 0.85 else Fraction(rng.randint(0, 4000), 100) * (base or 1)
        target = max(Fraction(0), target + rng.choice((0, 0, 0, Fraction(1, 10), -Fraction(1, 10), Fraction(1, 100),
                                                        -Fraction(1, 100), 1, -1)))
        unit, factor = rng.choice(units[lab]["units"]) if rng.random() < 0.4 else (d.get("unit"), ["1", "1"])
        factor = Fraction(int(factor[0]), int(factor[1]))
        value = text(target / factor)
        if value is None or len(value) > 12:
            value = text(target / factor, rng.randint(0, 3))
        row = {"lab": lab, "value": value, "unit": unit}
        if own:
            u = text(base / factor)
            if u is None or len(u) > 12:
                u = text(base / factor, 2)
            row["uln"] = u if Fraction(u) > 0 else "1"
        rows.append(row)
    return rows or [{"lab": next(iter(graph.graph["labs"])), "value": "1", "unit": None}]


def as_timeline(day: str, rows: list[dict]) -> list[dict]:
    def num(t):
        return float(t) if "." in t else int(t)

    out = []
    for r in rows:
        row = {"date": day, "lab": r["lab"], "value": num(r["value"])}
        if r.get("unit") is not None:
            row["unit"] = r["unit"]
        if r.get("uln") is not None:
            row["uln"] = num(r["uln"])
        out.append(row)
    return out


SEARCH_BUDGET = 400
"""Timelines the shortest-timeline search replays (suite/generate.py allows 1,500): enough to reach
every configuration the whole search reaches on the shipped protocols (12, 10 and 14), in a
third of the time."""


def generated(name: str, n: int = PANELS, seed: int = 14):
    """(graph, questions, the simulator's steps for each, the reached configurations)."""
    from rxwatch.suite import generate

    graph = compile_file(str(ROOT / "protocols" / f"{name}.rxw")).graph
    _, data = panelform.data(graph, _plan.build(graph))
    gen = Generator(graph, name)
    budget, generate.MAX_PREFIXES = generate.MAX_PREFIXES, min(generate.MAX_PREFIXES, SEARCH_BUDGET)
    try:
        found = gen.search()
    finally:
        generate.MAX_PREFIXES = budget
    starts, seen = [], set()
    for p in found.values():  # shortest timelines reaching each rule, one per configuration and recent `set`s
        trace = gen.replay(p)
        sig = (tuple(trace["final_states"]), json.dumps([s.get("value") for s in trace["steps"] if s["type"] == "set"][-3:]))
        if sig not in seen:
            seen.add(sig)
            starts.append(p)
    rng = random.Random(seed)
    ths = thresholds(graph)
    questions, expected, configs = [], [], Counter()
    i = 0
    while len(questions) < n:
        p = starts[i % len(starts)]
        i += 1
        last = max([datetime.date.fromisoformat(r["date"]) for r in p.rows] + [p.until])
        # later than any earlier result stays valid (the form reads the day's panel only)
        day = last + datetime.timedelta(days=rng.choice((4, 5, 7, 10, 14, 15, 20, 30, 45, 60, 100, 200)))
        before = gen.replay(Prefix(dict(p.facts), list(p.rows), day))
        if before is None:
            continue
        # the viewer's --trace starts the form where the patient is: the states, from the steps alone
        assert panelform.prefill(graph, {"steps": before["steps"], "final_state": before["final_state"]})["config"] == \
            before["final_states"]
        for _ in range(8):
            rows = panel(rng, graph, data["labs"], ths)
            after = gen.replay(Prefix(dict(p.facts), list(p.rows) + as_timeline(day.isoformat(), rows), day))
            if after is None:
                continue
            assert after["steps"][:len(before["steps"])] == before["steps"]
            questions.append(panelform.question(graph, before, day.isoformat(), rows, p.facts))
            expected.append(project(after["steps"][len(before["steps"]):], simulator=True))
            configs[tuple(before["final_states"])] += 1
            if len(questions) >= n:
                break
    return graph, questions, expected, configs


def page(graph, tmp_path: Path, name: str) -> Path:
    out = tmp_path / f"{name}.html"
    out.write_bytes(render(graph, "html"))
    return out


@pytest.mark.parametrize("name", PROTOCOLS)
def test_the_form_agrees_with_the_simulator_on_generated_panels(driver, tmp_path, name):
    graph, questions, expected, configs = generated(name)
    driver.get_log("browser")
    driver.get(page(graph, tmp_path, name).as_uri())
    answers = driver.execute_script("return window.rxwatchPanelform.evaluate(arguments[0])", questions)
    assert not [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
    # no external script: the viewer's and the form's, inline (the page's policy allows them by hash)
    assert driver.execute_script("return Array.from(document.scripts).filter(s => s.src).length") == 0
    assert len(answers) == len(questions) == PANELS
    wrong = []
    for q, want, got in zip(questions, expected, answers):
        mine = project(got["steps"], simulator=False)
        if got.get("error") or mine != want:
            wrong.append((q, want, mine, got.get("error")))
    assert not wrong, f"{len(wrong)} of {PANELS} disagree; the first: " + json.dumps(wrong[0], default=str)[:3000]
    # the panels exercise the protocol: many states, rules fired, unassessable panels, actions
    kinds = Counter(s[0] for steps in expected for s in steps)
    rules = {s[1] for steps in expected for s in steps if s[0] == "transition"}
    assert len(configs) >= 8, configs
    assert len(rules) >= 25 and kinds["unassessable"] >= 20 and kinds["action"] >= 500 and kinds["enter"] >= 200, (kinds, rules)
    print(f"{name}: {PANELS} panels in {len(configs)} configurations, {len(rules)} rules fired; {dict(kinds)}")


def test_the_form_answers_a_clinicians_questions(driver, tmp_path):
    """Real form interactions: the states picked, values typed in other units, a result's own
    ULN, the variables filled in, the button pressed; the answer shown is what the protocol's
    grades say (the batch above checks the same function against the simulator)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    graph = compile_file(str(ROOT / "protocols" / "anakinra_hepatotoxicity.rxw")).graph
    driver.get(page(graph, tmp_path, "anakinra").as_uri())
    driver.execute_script("document.getElementById('panelform').open = true;"
                          "document.querySelector('#panelform details.pf-history').open = true")

    picked: list = []

    def fill(state_path: list[str], results: dict, vars_: dict | None = None):
        if state_path != picked:  # the states stay picked between questions
            picked[:] = state_path
            Select(driver.find_element(By.CSS_SELECTOR, "#panelform select.pf-state")).select_by_value(state_path[0])
            for value in state_path[1:]:
                sel = next(s for s in driver.find_elements(By.CSS_SELECTOR, "#panelform select.pf-state")
                           if value in [o.get_attribute("value") for o in s.find_elements(By.TAG_NAME, "option")])
                Select(sel).select_by_value(value)
        driver.execute_script("document.querySelectorAll('#panelform input.pf-value, #panelform input.pf-uln')"
                              ".forEach(function (i) { i.value = ''; })")
        for lab, (value, unit, uln) in results.items():
            driver.find_element(By.NAME, f"value-{lab}").send_keys(value)
            Select(driver.find_element(By.NAME, f"unit-{lab}")).select_by_visible_text(unit)
            if uln:
                driver.find_element(By.NAME, f"uln-{lab}").send_keys(uln)
        if vars_ is not None:
            driver.find_element(By.CSS_SELECTOR, "#panelform .pf-starts").click()
        driver.find_element(By.CSS_SELECTOR, "#panelform .pf-ask").click()
        return driver.find_element(By.CSS_SELECTOR, "#panelform .pf-answer").text

    titles = {n: d.get("description") for n, d in graph.nodes(data=True)}
    # ALT 4 x ULN in maintenance (typed as 2.67 ukat/L, 160.2 U/L): moderate, once the history says
    # anakinra was never resumed; without it, the answer says what it needs
    text = fill(["on_anakinra", "maintenance"], {"ALT": ("2.67", "ukat/L", ""), "AST": ("100", "U/L", ""),
                                                 "TBIL": ("10", "umol/L", ""), "INR": ("1", "(no unit)", "")})
    assert "Needs the patient's history" in text and "(resumed)" in text, text
    text = fill(["on_anakinra", "maintenance"], {"ALT": ("2.67", "ukat/L", ""), "AST": ("100", "U/L", ""),
                                                 "TBIL": ("10", "umol/L", ""), "INR": ("1", "(no unit)", "")}, vars_={})
    assert titles["moderate_elevation"] in text and "Fires:" in text, text
    assert "Hold anakinra" in text or "Reduce the dose" in text, text
    # ALT exactly 3 x ULN with bilirubin exactly 2 x ULN (24 mg/L): not Hy's law (bili > 2 is false), not
    # moderate (3 < tx is false): mild
    text = fill(["on_anakinra", "maintenance"], {"ALT": ("120", "U/L", ""), "TBIL": ("24", "mg/L", ""),
                                                 "INR": ("1", "(no unit)", "")}, vars_={})
    assert titles["mild_elevation"] in text, text
    # its own ULN: ALT 180 with ULN 33 is 5.45 x ULN: severe, stopped
    text = fill(["on_anakinra", "maintenance"], {"ALT": ("180", "U/L", "33"), "TBIL": ("0.5", "mg/dL", ""),
                                                 "INR": ("1", "(no unit)", "")}, vars_={})
    assert titles["stopped"] in text, text
    # a normal panel: whether it answers the open liver-panel order decides; blank, the form asks for it
    normal = {"ALT": ("30", "U/L", ""), "AST": ("25", "U/L", ""), "TBIL": ("0.5", "mg/dL", ""), "INR": ("1", "(no unit)", "")}
    text = fill(["on_anakinra", "maintenance"], normal, vars_={})
    assert "whether this panel answers an open order" in text and "(order_lfts)" in text, text
    Select(driver.find_element(By.NAME, "order-order_lfts")).select_by_value("yes")
    text = fill(["on_anakinra", "maintenance"], normal, vars_={})
    assert f"stays in {titles['maintenance']}" in text and "Order a liver panel" in text and "3–4 months" in text, text
    Select(driver.find_element(By.NAME, "order-order_lfts")).select_by_value("")
    # no transaminases and a normal bilirubin: the liver track cannot grade it
    text = fill(["on_anakinra", "maintenance"], {"TBIL": ("0.5", "mg/dL", "")}, vars_={})
    assert "unassessable: missing ALT, AST" in text, text
    # each answer is the engine's: the question the form built, evaluated in the batch function too
    q = driver.execute_script("return window.rxwatchPanelform.question()")
    assert q["config"] == ["maintenance", "neutrophils_routine"] and q["panel"] == {"TBIL": {"value": "0.5", "unit": "mg/dL", "uln": None}}
    answer = driver.execute_script("return window.rxwatchPanelform.evaluate([arguments[0]])[0]", q)
    assert [s["missing"] for s in answer["steps"] if s["type"] == "unassessable"] == [["ALT", "AST"]]
    assert not [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]


def test_with_a_trace_the_form_starts_where_the_patient_is(driver, tmp_path):
    from selenium.webdriver.common.by import By

    from rxwatch.simulator.engine import simulate
    from rxwatch.inputs import load_timeline

    graph = compile_file(str(ROOT / "protocols" / "anakinra_hepatotoxicity.rxw")).graph
    trace = simulate(graph, load_timeline(str(ROOT / "docs" / "examples" / "anakinra-moderate.yaml"), graph.graph))
    out = tmp_path / "patient.html"
    out.write_bytes(render(graph, "html", trace=trace))
    driver.get(out.as_uri())
    q = driver.execute_script("return window.rxwatchPanelform.question()")
    assert q["config"] == trace["final_states"]
    sets = {s["var"]: s["value"] for s in trace["steps"] if s["type"] == "set"}
    assert sets and all(q["vars"][k] == v for k, v in sets.items())
    assert q["last"]["start_anakinra"] == next(s["date"] for s in trace["steps"] if s.get("action") == "start_anakinra")
    entered = [s["date"] for s in trace["steps"] if s["type"] == "enter" and s["state"] == "maintenance"][-1]
    assert q["entries"]["maintenance"] == entered
    assert q["drugs"]["anakinra"]["started"] and q["orders_unknown"]  # which orders are open: not in the steps
    assert "Filled in from the patient's steps" in driver.find_element(By.ID, "panelform").get_attribute("textContent")
    assert not [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
