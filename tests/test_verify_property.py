"""The verifier's decision-table verdicts are exact: for random small guard sets, they agree
with brute force, the simulator's own evaluator (rxwatch.simulator.expr) run on every point
of a grid of input values.

The guards compare xuln ratios a, b (labs A, B; ULN 40) and a raw lab C with whole numbers
0..3, with each other, through max/min/sums/doubling and comparison chains, and test
known(), a boolean fact and an enumeration. Every region those comparisons cut out of the
inputs contains a point of the grid (quarters for a and b, halves for C, plus "missing"), so
the grid sees every verdict the reals allow: the agreement must be exact, both ways.
"""

from __future__ import annotations

import calendar
import datetime
import itertools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rxwatch.compiler import compile_source
from rxwatch.compiler.verify import analyse
from rxwatch.simulator.expr import Compiler, Ctx
from test_verify import replay

HEAD = """\
protocol p
source s "S" kind label
lab A "a" unit "U/L" uln 40
lab B "b" unit "U/L" uln 40
lab C "c"
lab D "never read"
fact f "a flag" bool default false
fact e "a choice" one of x, y, z default x
action order "order" orders A, B, C, D
let a "A ratio" = xuln(A)
let b "B ratio" = xuln(B)
initial state s0 "s0" {
  on entry { do order due 1..2 weeks cite s }
  on panel MODE {
RULES
  }
}
"""

QUARTERS = [None] + [i / 4 for i in range(0, 19)]  # 0 .. 4.5
HALVES = [None] + [i / 2 for i in range(0, 8)]  # 0 .. 3.5

ops = st.sampled_from(["<", "<=", ">", ">=", "==", "!="])
const = st.integers(0, 3)
numeric = st.sampled_from(["a", "b", "C", "max(a, b)", "min(a, b)", "a + b", "2 * a"])


@st.composite
def atom(draw):
    kind = draw(st.integers(0, 5))
    if kind == 0:
        return f"{draw(numeric)} {draw(ops)} {draw(const)}"
    if kind == 1:
        lo, hi = sorted((draw(const), draw(const)))
        return f"{lo} < {draw(st.sampled_from(['a', 'b']))} <= {hi}"
    if kind == 2:
        return draw(st.sampled_from(["a < b", "a == b", "a >= b"]))
    if kind == 3:
        return draw(st.sampled_from(["known(A)", "known(C)", "not known(B)"]))
    if kind == 4:
        return draw(st.sampled_from(["f", "not f"]))
    return draw(st.sampled_from(["e == x", "e in {x, y}", "e != z"]))


def expr(depth: int = 2):
    if depth == 0:
        return atom()
    sub = expr(depth - 1)
    return st.one_of(
        atom(),
        st.builds(lambda x: f"not ({x})", sub),
        st.builds(lambda x, y: f"({x}) and ({y})", sub, sub),
        st.builds(lambda x, y: f"({x}) or ({y})", sub, sub),
    )


handlers = st.tuples(
    st.lists(expr(), min_size=1, max_size=4),
    st.booleans(),  # ends with otherwise
    st.sampled_from(["", "ordered", "exclusive"]),
)


def read_by(graph, trees) -> set:
    """The labs and facts that `trees` read, through lets."""
    out, stack = set(), list(trees)
    while stack:
        t = stack.pop()
        if t.get("op") in ("lab", "fact"):
            out.add(t["name"])
        elif t.get("op") == "let":
            stack.append(graph.graph["lets"][t["name"]]["expr"])
        stack.extend(t.get("args") or ())
        if "arg" in t:
            stack.append(t["arg"])
    return out


def brute_force(graph, guards: list, names: set) -> list[tuple]:
    """The guards' truth values at every grid point (inputs the guards do not read: fixed)."""
    comp = Compiler(graph.graph)
    fns = [comp.condition(t) for t in guards]
    axes = [
        QUARTERS if "A" in names else [None],
        QUARTERS if "B" in names else [None],
        HALVES if "C" in names else [None],
        [False, True] if "f" in names else [False],
        ["x", "y", "z"] if "e" in names else ["x"],
    ]
    rows = []
    for a, b, c, f, e in itertools.product(*axes):
        ctx = Ctx({"f": f, "e": e}, {}, None)
        ctx.panel = {k: v for k, v in (("A", None if a is None else a * 40), ("B", None if b is None else b * 40), ("C", c)) if v is not None}
        rows.append(tuple(bool(fn(ctx)) for fn in fns))
    return rows


def expected_verdicts(rows: list[tuple], n: int, otherwise: bool, mode: str) -> set:
    out = set()
    live = []
    for i in range(n):
        if not any(r[i] for r in rows):
            out.add(("E606", i))
        elif i and not any(r[i] and not any(r[:i]) for r in rows):
            out.add(("E604", i))
        else:
            live.append(i)
    if otherwise and n and not any(not any(r) for r in rows):
        out.add(("W607", n))
    if mode != "ordered":
        for x, i in enumerate(live):
            for j in live[x + 1:]:
                if any(r[i] and r[j] and (mode == "exclusive" or not any(r[:i])) for r in rows):
                    out.add(("E602" if mode == "exclusive" else "W603", i, j))
    if not otherwise and any(not any(r) for r in rows):
        out.add(("E601",))
    return out


def reported(fs, n: int) -> set:
    out = set()
    index = lambda key: int(key.rsplit("/", 1)[1])  # noqa: E731
    for f in fs:
        if f.code in ("E606", "E604", "W607"):
            out.add((f.code, index(f.rules[0])))
        elif f.code in ("E602", "W603"):
            out.add((f.code, index(f.rules[0]), index(f.rules[1])))
        elif f.code == "E601":
            out.add(("E601",))
    return out


def handler_of(head: str, guards: list, otherwise: bool, mode: str):
    """Compile `head` with these rules in its panel handler: (graph, guard trees, findings)."""
    rules = [f"    when {g} stay cite s" for g in guards] + (["    otherwise stay cite s"] if otherwise else [])
    text = head.replace("MODE", mode).replace("RULES", "\n".join(rules))
    result = compile_source(text, "prop.rxw", verify=False)
    assert result.ok, [(d.code, d.message) for d in result.diagnostics]
    graph = result.graph
    edges = {k: d for _, _, k, d in graph.edges(keys=True, data=True)}
    trees = [edges[f"s0/0/{i}"]["guard"] for i in range(len(guards))]
    fs = [f for f in analyse(graph) if f.code in ("E601", "E602", "W603", "E604", "E606", "W607")]
    return graph, trees, fs


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(handlers)
def test_table_verdicts_agree_with_brute_force(h):
    guards, otherwise, mode = h
    graph, trees, fs = handler_of(HEAD, guards, otherwise, mode)
    names = read_by(graph, trees)
    rows = brute_force(graph, trees, names)
    assert reported(fs, len(guards)) == expected_verdicts(rows, len(guards), otherwise, mode), (guards, otherwise, mode)
    for f in fs:
        replay(graph, f)


# ---------------------------------------------------------------- calendar time

TIME_HEAD = HEAD.replace('action order "order" orders A, B, C, D', 'action order "order" orders A, B, C, D\naction start "start"').replace(
    "  on entry { do order due 1..2 weeks cite s }", "  on entry { do order due 1..2 weeks cite s do start cite s }"
)
# every start date that matters for thresholds up to 3 months: days 1 (like 2..28), 29, 30, 31
# of every month of a leap year and the year after; and every elapsed day up to 4 months
ANCHORS = [datetime.date(y, m, d) for y in (2024, 2025) for m in range(1, 13) for d in (1, 29, 30, 31) if d <= calendar.monthrange(y, m)[1]]
ELAPSED = range(0, 125)

duration = st.one_of(
    st.builds(lambda n: f"{n} months", st.integers(0, 3)),
    st.builds(lambda n: f"{n} weeks", st.integers(0, 13)),
    st.builds(lambda n: f"{n} days", st.sampled_from([0, 27, 28, 29, 30, 31, 58, 59, 60, 61, 62, 89, 90, 91, 92])),
)


@st.composite
def time_atom(draw):
    op = draw(ops)
    d = draw(duration)
    return draw(st.sampled_from([f"since(start) {op} {d}", f"{d} {op} since(start)"]))


time_expr = st.one_of(
    time_atom(),
    st.builds(lambda x: f"not ({x})", time_atom()),
    st.builds(lambda x, y: f"({x}) and ({y})", time_atom(), time_atom()),
    st.builds(lambda x, y: f"({x}) or ({y})", time_atom(), time_atom()),
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.tuples(st.lists(time_expr, min_size=1, max_size=3), st.booleans(), st.sampled_from(["", "exclusive"])))
def test_calendar_verdicts_agree_with_brute_force(h):
    guards, otherwise, mode = h
    graph, trees, fs = handler_of(TIME_HEAD, guards, otherwise, mode)
    comp = Compiler(graph.graph)
    fns = [comp.condition(t) for t in trees]
    rows = set()
    never = Ctx({"f": False, "e": "x"}, {}, datetime.date(2025, 1, 1))
    rows.add(tuple(bool(fn(never)) for fn in fns))  # start never recommended
    for last in ANCHORS:
        for days in ELAPSED:
            ctx = Ctx({"f": False, "e": "x"}, {}, last + datetime.timedelta(days=days))
            ctx.last = {"start": last}
            rows.add(tuple(bool(fn(ctx)) for fn in fns))
    assert reported(fs, len(guards)) == expected_verdicts(sorted(rows), len(guards), otherwise, mode), (guards, otherwise, mode)
    for f in fs:
        replay(graph, f)
