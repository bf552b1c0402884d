"""The verifier's decision-table verdicts and regions are exact: for random small guard sets,
they agree with brute force, the simulator's own three-valued evaluator
(rxwatch.simulator.expr) run on every point of a grid of input values.

The guards compare xuln ratios a, b (labs A, B; ULN 40) and a raw lab C with whole numbers
0..3, with each other, through max/min/sums/doubling and comparison chains, and test
known(), fulfilled(), a boolean fact and an enumeration. Every region those comparisons cut
out of the inputs contains a point of the grid (quarters for a and b, halves for C, plus
"missing"), so the grid sees every verdict the reals allow: the agreement must be exact, both
ways. The regions of a gap (E601) and of the unassessable inputs (explain) must cover exactly
the grid points where every guard is false, or where nothing fires for want of a value.

`ref` below is a reference evaluator that implements the language's three-valued semantics
literally (docs/language.md, "Unknown values"); the simulator's generated code is checked
against it on a sample of the grid points, so the two can never drift apart unnoticed.
"""

from __future__ import annotations

import calendar
import datetime
import itertools
import operator
import random
from fractions import Fraction

from dateutil.relativedelta import relativedelta
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rxwatch.compiler import compile_source, ir
from rxwatch.compiler.verify import analyse, explain
from rxwatch.compiler.verify.regions import admits
from rxwatch.simulator.expr import Compiler, Ctx
from test_verify import choose, replay

# ---------------------------------------------------------------- the reference evaluator

_CMP = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge, "==": operator.eq, "!=": operator.ne}


class Inputs:
    """What an expression reads: a panel (lab -> exact value), results' own ULNs, facts,
    vars, today, the day each action was last recommended, the day the state was entered, and
    the actions whose open order today's results fulfilled."""

    def __init__(self, graph, panel=None, ulns=None, facts=None, vars=None, today=datetime.date(2025, 1, 1),
                 last=None, entered=None, fulfilled=()):
        self.g = graph.graph
        self.panel, self.ulns = dict(panel or {}), dict(ulns or {})
        self.facts, self.vars = dict(facts or {}), dict(vars or {})
        self.today, self.last = today, dict(last or {})
        self.entered = today if entered is None else entered
        self.fulfilled = set(fulfilled)

    def ctx(self) -> Ctx:
        """The same inputs as the simulator's Ctx."""
        c = Ctx(self.facts, self.vars, self.today)
        c.panel, c.ulns, c.last, c.entered, c.fulfilled = self.panel, self.ulns, self.last, self.entered, self.fulfilled
        return c


def _shift(day: datetime.date, d: dict) -> datetime.date:
    n, unit = d["amount"], d["unit"]
    return day + (datetime.timedelta(days=n) if unit == "days" else datetime.timedelta(weeks=n) if unit == "weeks"
                  else relativedelta(months=n) if unit == "months" else relativedelta(years=n))


def ref(t: dict, x: Inputs):
    """The value of `t`: a number (int or Fraction), bool, member name, ("since", day),
    ("duration", tree), or None (unknown)."""
    op = t["op"]
    if op == "num":
        return ir.exact(t["value"])
    if op in ("bool", "enum"):
        return t["value"]
    if op == "duration":
        return ("duration", t)
    if op == "lab":
        return x.panel.get(t["name"])
    if op in ("fact", "var"):
        return (x.facts if op == "fact" else x.vars).get(t["name"])
    if op == "let":
        return ref(x.g["lets"][t["name"]]["expr"], x)
    if op == "since_entry":
        return ("since", x.entered)
    if op == "call":
        f, args = t["func"], t["args"]
        if f in ("max", "min"):
            vals = [v for v in (ref(a, x) for a in args) if v is not None]  # unknowns ignored
            return (max if f == "max" else min)(vals) if vals else None
        if f in ("uln", "xuln"):
            lab = args[0]["name"]
            default = x.g["labs"][lab].get("uln")
            u = x.ulns.get(lab, None if default is None else ir.exact(default))
            if f == "uln":
                return u
            v = x.panel.get(lab)
            return None if v is None or u is None or u == 0 else Fraction(v) / u
        if f == "known":
            return ref(args[0], x) is not None  # never unknown
        if f == "since":
            last = x.last.get(args[0]["name"])
            return None if last is None else ("since", last)
        if f == "fulfilled":
            return args[0]["name"] in x.fulfilled  # never unknown
    if op == "neg":
        v = ref(t["arg"], x)
        return None if v is None else -v
    if op in ("+", "-", "*", "/"):
        a, b = (ref(y, x) for y in t["args"])
        if a is None or b is None or (op == "/" and b == 0):
            return None  # unknown operand, or a division by zero
        return {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": lambda p, q: Fraction(p) / q}[op](a, b)
    if op == "compare":
        vals = [ref(y, x) for y in t["args"]]
        links = [None if a is None or b is None else _link(o, a, b, x) for o, a, b in zip(t["ops"], vals, vals[1:])]
        return False if False in links else None if None in links else True
    if op == "in":
        v = ref(t["arg"], x)
        return None if v is None else v in t["members"]
    if op == "not":
        v = ref(t["arg"], x)
        return None if v is None else not v
    if op in ("and", "or"):
        vals = [ref(y, x) for y in t["args"]]
        win = op == "or"  # the value that decides: false for `and`, true for `or`
        return win if win in vals else None if None in vals else not win
    raise ValueError(op)


def _link(o: str, a, b, x: Inputs) -> bool:
    cmp = _CMP[o]
    if isinstance(a, tuple) or isinstance(b, tuple):  # time: compared on calendar dates
        if a[0] == "since" and b[0] == "duration":
            return cmp(x.today, _shift(a[1], b[1]))
        if a[0] == "duration" and b[0] == "since":
            return cmp(_shift(b[1], a[1]), x.today)
        if a[0] == "since" and b[0] == "since":
            return cmp(b[1], a[1])
        return cmp(_shift(x.today, a[1]), _shift(x.today, b[1]))
    return cmp(a, b)


# ---------------------------------------------------------------- random handlers

HEAD = """\
protocol p
source s "S" kind label
lab A "a" unit "U/L" uln 40
lab B "b" unit "U/L" uln 40
lab C "c"
lab D "never read"
fact f "a flag" bool default false
fact e "a choice" one of x, y, z default x
action order "order" orders A, B, C, D fulfilled by A or C
let a "A ratio" = xuln(A)
let b "B ratio" = xuln(B)
initial state s0 "s0" {
  on entry { do order due 1..2 weeks cite s }
  on panel MODE {
RULES
  }
}
"""

QUARTERS = [None] + [Fraction(i, 4) for i in range(0, 19)]  # 0 .. 4.5
HALVES = [None] + [Fraction(i, 2) for i in range(0, 8)]  # 0 .. 3.5

ops = st.sampled_from(["<", "<=", ">", ">=", "==", "!="])
const = st.integers(0, 3)
numeric = st.sampled_from(["a", "b", "C", "max(a, b)", "min(a, b)", "a + b", "2 * a"])


@st.composite
def atom(draw):
    kind = draw(st.integers(0, 6))
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
    if kind == 5:
        return draw(st.sampled_from(["fulfilled(order)", "not fulfilled(order)"]))
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

LIMIT = 60  # regions: enough to list them all in these small handlers


def read_by(graph, trees) -> set:
    """The labs, facts and actions (fulfilled) that `trees` read, through lets."""
    out = set()
    for t in trees:
        for lab in ir.labs_read(t, graph.graph["lets"]):
            out.add(lab)
        for n in ir.walk(t):
            if n["op"] in ("fact", "lab"):
                out.add(n["name"])
            elif n["op"] == "call" and n["func"] in ("known", "fulfilled"):
                out.add(n["args"][0]["name"])
            elif n["op"] == "let":
                out |= read_by(graph, [graph.graph["lets"][n["name"]]["expr"]])
    return out


def grid(graph, names: set) -> list[Inputs]:
    """Every grid point of the inputs the guards read (the others fixed), that is a panel:
    at least one result (D, never read, is there when nothing else is), and an order fulfilled
    only by results of A or C."""
    axes = [
        QUARTERS if "A" in names else ([None, 1] if "order" in names else [None]),  # A or C fulfil the order
        QUARTERS if "B" in names else [None],
        HALVES if "C" in names else ([None, 1] if "order" in names else [None]),
        [False, True] if "f" in names else [False],
        ["x", "y", "z"] if "e" in names else ["x"],
        [False, True] if "order" in names else [False],
    ]
    out = []
    for a, b, c, f, e, done in itertools.product(*axes):
        if done and a is None and c is None:
            continue  # fulfilled by A or C: one of them has a result
        panel = {k: v for k, v in (("A", None if a is None else a * 40), ("B", None if b is None else b * 40), ("C", c)) if v is not None}
        panel["D"] = 1
        out.append(Inputs(graph, panel, facts={"f": f, "e": e}, fulfilled={"order"} if done else ()))
    return out


def rows_of(graph, trees: list, points: list[Inputs], check: int = 200) -> list[tuple]:
    """The guards' three-valued truth at every point, by the simulator; the reference
    evaluator must agree on a sample of `check` points."""
    comp = Compiler(graph.graph)
    fns = [comp.truth(t) for t in trees]
    rows = [tuple(fn(p.ctx()) for fn in fns) for p in points]
    rnd = random.Random(len(points))
    for i in rnd.sample(range(len(points)), min(check, len(points))):
        assert tuple(ref(t, points[i]) for t in trees) == rows[i], (trees, points[i].panel, points[i].facts)
    return rows


def before(r: tuple, i: int, mode: str) -> bool:
    """Rule i fires where its guard is true (first hit: every guard above false; exclusive:
    none above true)."""
    return not any(v is True for v in r[:i]) if mode == "exclusive" else all(v is False for v in r[:i])


def expected_verdicts(rows: list[tuple], n: int, otherwise: bool, mode: str) -> set:
    out = set()
    live = []
    for i in range(n):
        if not any(r[i] is True for r in rows):
            out.add(("E606", i))
        elif i and not any(r[i] is True and before(r, i, mode) for r in rows):
            out.add(("E604", i))
        else:
            live.append(i)
    if otherwise and n and not any(all(v is False for v in r) for r in rows):
        out.add(("W607", n))
    if mode != "ordered":
        for x, i in enumerate(live):
            for j in live[x + 1:]:
                if any(r[i] is True and r[j] is True and (mode == "exclusive" or before(r, i, mode)) for r in rows):
                    out.add(("E602" if mode == "exclusive" else "W603", i, j))
    if not otherwise and any(all(v is False for v in r) for r in rows):
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
    fs = [f for f in analyse(graph, limit=LIMIT) if f.code in ("E601", "E602", "W603", "E604", "E606", "W607")]
    return graph, trees, fs


def subject_values(graph, subjects, points: list[Inputs]) -> list[dict]:
    """Each subject's value at each point, by the simulator (atoms: three-valued truth)."""
    comp = Compiler(graph.graph)
    fns = {s.key: (comp.truth(s.tree) if s.kind == "atom" else comp.value(s.tree)) for s in subjects}
    return [{k: fn(p.ctx()) for k, fn in fns.items()} for p in points]


def check_regions(graph, found, subjects, points, inside: list[bool], what: str) -> None:
    """The regions cover exactly the points where the formula holds."""
    assert found.complete, what
    values = subject_values(graph, subjects, points)
    by_key = {s.key: s for s in subjects}
    for p, v, want in zip(points, values, inside):
        got = any(all(admits(by_key[s.key], c, v[s.key]) for s, c in r.conds) for r in found.regions)
        assert got == want, (what, p.panel, p.facts, p.fulfilled, [r.text for r in found.regions])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(handlers)
def test_table_verdicts_and_regions_agree_with_brute_force(h):
    guards, otherwise, mode = h
    graph, trees, fs = handler_of(HEAD, guards, otherwise, mode)
    points = grid(graph, read_by(graph, trees))
    rows = rows_of(graph, trees, points)
    n = len(guards)
    assert reported(fs, n) == expected_verdicts(rows, n, otherwise, mode), (guards, otherwise, mode)
    for f in fs:
        replay(graph, f)
    (gap,) = [f for f in fs if f.code == "E601"] or [None]
    if gap is not None:
        subjects = {s.key: s for r in gap.regions.regions for s, _ in r.conds}.values()
        check_regions(graph, gap.regions, list(subjects), points, [all(v is False for v in r) for r in rows], f"gap of {guards}")
    # the unassessable inputs: nothing fires, and not because every guard is false
    stuck = [choose(r + ((True,) if otherwise else ()), mode, otherwise) == "unassessable" for r in rows]
    (u,) = explain(graph, limit=LIMIT) or [None]
    assert (u is not None) == any(stuck), (guards, otherwise, mode)
    if u is not None:
        subjects = {s.key: s for r in u.regions.regions for s, _ in r.conds}.values()
        check_regions(graph, u.regions, list(subjects), points, stuck, f"unassessable {guards}")


# ---------------------------------------------------------------- calendar time

TIME_HEAD = HEAD.replace('action order "order" orders A, B, C, D fulfilled by A or C', 'action order "order" orders A, B, C, D fulfilled by A or C\naction start "start"').replace(
    "  on entry { do order due 1..2 weeks cite s }", "  on entry { do order due 1..2 weeks cite s if f { do start cite s } }"
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


def time_atom(clock: str):
    return st.builds(lambda op, d, flip: f"{d} {op} {clock}" if flip else f"{clock} {op} {d}", ops, duration, st.booleans())


def time_expr(clock: str):
    a = time_atom(clock)
    return st.one_of(
        a,
        st.builds(lambda x: f"not ({x})", a),
        st.builds(lambda x, y: f"({x}) and ({y})", a, a),
        st.builds(lambda x, y: f"({x}) or ({y})", a, a),
    )


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(["since(start)", "since entry"]).flatmap(
    lambda clock: st.tuples(st.lists(time_expr(clock), min_size=1, max_size=3), st.booleans(), st.sampled_from(["", "exclusive"]))))
def test_calendar_verdicts_agree_with_brute_force(h):
    """since(start) (possibly never recommended: unknown) and since entry (always known)
    against day, week and month thresholds, over every start date and elapsed day that matter."""
    guards, otherwise, mode = h
    graph, trees, fs = handler_of(TIME_HEAD, guards, otherwise, mode)
    entry = "since entry" in guards[0]
    points = [] if entry else [Inputs(graph, {"A": 1})]  # start never recommended
    for day in ANCHORS:
        for days in ELAPSED:
            today = day + datetime.timedelta(days=days)
            points.append(Inputs(graph, {"A": 1}, today=today, entered=day if entry else None, last={} if entry else {"start": day}))
    rows = sorted(set(rows_of(graph, trees, points, check=100)), key=repr)
    assert reported(fs, len(guards)) == expected_verdicts(rows, len(guards), otherwise, mode), (guards, otherwise, mode)
    for f in fs:
        replay(graph, f)
