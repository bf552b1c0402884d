"""The viewer's panel form: "what does the protocol say about this panel?", answered in the page.

A clinician picks the current state (for a statechart, the active state of each track), enters
lab values (with the result's ULN and unit when they differ from the declaration) and reads
which rule fires, the state it leads to and what to do, or "unassessable: missing ALT, AST".
The answer comes from the protocol's own rules, compiled here to JavaScript, and decided by
the simulator's semantics (docs/simulation.md), which the browser test checks against the
Python simulator on generated panels:

- the expression IR (compiler/ir.py) is compiled by `_Js`, an `ir.Visitor` (one method per op,
  as the simulator's simulator/expr.py): exact rationals on BigInt (never floats: bilirubin
  exactly 2 x ULN decides as the simulator does), Kleene's three-valued logic, `max`/`min`
  ignoring unknowns, `known`, `xuln` with the result's own ULN, calendar arithmetic for
  `since(...)` and `since entry`, lets computed once per evaluation;
- the generated code names no protocol name: names, numbers and members are constants
  (`K[0]`, `K[1]`, ...) read from the page's data, functions are numbered (`F[3]`, `LET[2]`);
- the machine around the expressions (strict first match, `exclusive` handlers, inherited
  rules, which track sees which panel, the wider exit winning a conflict, entry actions,
  `if`/`set`/`do one of`, timers already due and `on fact` rules tried on entry) is data for
  the small interpreter in render/assets/panelform.js.

The form reads only what the clinician enters: the day's panel and, in "The patient's
history", what a rule needs beyond it (facts, the protocol's variables, when the state was
entered, when an action was last recommended, which open order the panel answers, the drug's
status). History left blank is unknown, never assumed: a rule it leaves undecided is reported
as "needs the patient's history", like a missing result. Results of earlier days (`results
valid for`) are not merged: the panel is what is entered.

`data(graph, plan, trace)` returns the inline script (the generated functions, then the runtime
and the form of render/assets/panelform.js) and the JSON the page carries for it; render/html.py
puts both in the page. `question(graph, trace, day, results, facts)` is the question for a panel
to a patient whose replay so far is `trace` (the browser test asks the simulator's patients
this way); `prefill(graph, trace)`, where the form starts for the viewer's `--trace`.
"""

from __future__ import annotations

import json
from fractions import Fraction
from importlib import resources
from typing import Any, Mapping

from rxwatch.compiler import ir
from rxwatch.simulator import units

__all__ = ["script", "data", "FormError", "UNIT_CHOICES"]


class FormError(ValueError):
    """A graph the form cannot be compiled for (a graph not made by the compiler)."""


# Units a result may come in, offered beside the lab's declared unit when they convert to it
# exactly (simulator/units.py: the conversion the timeline readers apply).
UNIT_CHOICES = (
    "U/L", "ukat/L", "mg/dL", "mg/L", "umol/L", "g/L", "g/dL", "mmol/L", "10*9/L", "10*3/uL", "/mm3", "/uL",
    "%",
)


def _q(x: Any) -> list[str]:
    """An exact number as the page carries it: [numerator, denominator] as decimal texts."""
    q = Fraction(x)
    return [str(q.numerator), str(q.denominator)]


# ---------------------------------------------------------------------------- expressions


class _Js(ir.Visitor):
    """One expression -> JavaScript expression text; the value is the op's (null: unknown).

    The text reads the context `c` (see panelform.js, `Ctx`) and the runtime's helpers `$...`."""

    def __init__(self, owner: "_Compiler") -> None:
        self.o = owner

    def gen(self, t: Mapping) -> str:
        try:
            return self.visit(t)
        except (ir.IRError, KeyError, TypeError, AttributeError) as e:
            raise FormError(f"not an expression the form can read: {type(e).__name__}: {e}") from None

    def visit_num(self, t):
        return self.o.const({"q": _q(ir.exact(t["value"]))})

    def visit_bool(self, t):
        return "true" if t["value"] else "false"

    def visit_enum(self, t):
        return self.o.const({"s": str(t["value"])})

    def visit_duration(self, t):
        return self.o.const({"dur": [int(t["amount"]), str(t["unit"])]})

    def visit_lab(self, t):
        return f"$g(c.P,{self.o.name(t['name'])})"

    def visit_fact(self, t):
        return f"$hist(c,c.F,{self.o.name(t['name'])},'fact')"

    def visit_var(self, t):
        return f"$hist(c,c.V,{self.o.name(t['name'])},'var')"

    def visit_let(self, t):
        return f"$let(c,{self.o.let(t['name'])})"

    def visit_action(self, t):
        raise FormError("an action used as a value; write since(ACTION)")

    def visit_drug(self, t):
        raise FormError("a drug used as a value; write held(D), dose(D), stopped(D) or started(D)")

    def visit_since_entry(self, t):
        return "$sinceEntry(c)"

    def _arith(self, t, fn: str):
        a, b = (self.gen(x) for x in t["args"])
        return f"${fn}({a},{b})"

    def visit_add(self, t):
        return self._arith(t, "add")

    def visit_sub(self, t):
        return self._arith(t, "sub")

    def visit_mul(self, t):
        return self._arith(t, "mul")

    def visit_div(self, t):
        return self._arith(t, "div")

    def visit_neg(self, t):
        return f"$neg({self.gen(t['arg'])})"

    def visit_call(self, t):
        func, args = t["func"], t["args"]
        if func in ("max", "min"):
            if not args:
                raise FormError(f"{func}() needs arguments")
            return f"${func}([{','.join(self.gen(a) for a in args)}])"
        if func in ("uln", "xuln"):
            if len(args) != 1 or args[0].get("op") != "lab":
                raise FormError(f"{func}() takes the name of a lab")
            return f"${func}(c,{self.o.name(args[0]['name'])})"
        if func == "known":
            if len(args) != 1:
                raise FormError("known() takes one argument")
            if args[0].get("op") in ("num", "bool", "enum", "duration"):
                return "true"
            return f"$known(c,function(){{return {self.gen(args[0])};}})"
        if func == "since":
            return f"$since(c,{self.o.name(args[0]['name'])})"
        if func == "fulfilled":
            return f"$fulfilled(c,{self.o.name(args[0]['name'])})"
        if func in ir.DRUG_READS:
            return f"$drug(c,{self.o.name(func)},{self.o.name(args[0]['name'])})"
        raise FormError(f"unknown function {func!r}")

    def _temporal(self, t: Mapping) -> bool:
        op = t.get("op")
        if op in ("duration", "since_entry") or (op == "call" and t.get("func") == "since"):
            return True
        if op == "let":
            return (self.o.lets.get(t["name"]) or {}).get("type") == "duration"
        return False

    def visit_compare(self, t):
        ops, args = list(t["ops"]), t["args"]
        if any(o not in ir.COMPARISONS for o in ops) or len(args) != len(ops) + 1:
            raise FormError("not a comparison")
        fn = "$timeChain(c," if any(self._temporal(a) for a in args) else "$chain("
        return f"{fn}{self.o.const({'ops': ops})},[{','.join(self.gen(a) for a in args)}])"

    def visit_in(self, t):
        return f"$in({self.gen(t['arg'])},{self.o.const({'set': sorted(t['members'])})})"

    def visit_not(self, t):
        return f"$not({self.gen(t['arg'])})"

    # left to right, stopping at the first operand that decides (as the simulator's code does):
    # what the others would read is not read, nor reported as needed
    def visit_and(self, t):
        return f"$and([{','.join('function(){return ' + self.gen(a) + ';}' for a in t['args'])}])"

    def visit_or(self, t):
        return f"$or([{','.join('function(){return ' + self.gen(a) + ';}' for a in t['args'])}])"


class _Compiler:
    """The generated functions of one protocol: `F` (guards, conditions, values) and `LET`
    (the lets, each once), with their constants `K`."""

    def __init__(self, graph) -> None:
        self.lets: Mapping[str, Mapping] = graph.graph.get("lets") or {}
        self.consts: list = []
        self._const_ids: dict[str, int] = {}
        self.fns: list[str] = []
        self._fn_ids: dict[str, int] = {}
        self.let_ids: dict[str, int] = {}
        self.let_code: list[str | None] = []
        self.js = _Js(self)

    def const(self, value: Mapping) -> str:
        key = json.dumps(value, sort_keys=True)
        i = self._const_ids.get(key)
        if i is None:
            i = self._const_ids[key] = len(self.consts)
            self.consts.append(value)
        return f"K[{i}]"

    def name(self, text: str) -> str:
        return self.const({"s": str(text)})

    def let(self, name: str) -> int:
        """The index of let `name` in LET (compiled the first time; a let's own lets first)."""
        i = self.let_ids.get(name)
        if i is not None:
            return i
        decl = self.lets.get(name)
        if not isinstance(decl, Mapping) or decl.get("expr") is None:
            raise FormError(f"a let that is not declared: {name!r}")
        i = self.let_ids[name] = len(self.let_code)
        self.let_code.append(None)
        self.let_code[i] = self.js.gen(decl["expr"])
        return i

    def fn(self, tree: Mapping | None) -> int | None:
        """The index in F of a function computing `tree`'s value (None for no tree)."""
        if tree is None:
            return None
        code = self.js.gen(tree)
        i = self._fn_ids.get(code)
        if i is None:
            i = self._fn_ids[code] = len(self.fns)
            self.fns.append(code)
        return i

    def source(self) -> str:
        fns = ",\n".join(f"function(c){{return {code};}}" for code in self.fns)
        lets = ",\n".join(f"function(c){{return {code};}}" for code in self.let_code)
        return f"var F=[\n{fns}\n];\nvar LET=[\n{lets}\n];\n"


# ---------------------------------------------------------------------------- the machine as data


def _ancestors(nodes: Mapping, name: str) -> list[str]:
    out = []
    s: str | None = name
    while s is not None and s not in out:
        out.append(s)
        s = nodes[s].get("parent")
    return out


def _domain(nodes: Mapping, src: str, tgt: str) -> str | None:
    """The state below which a rule from `src` to `tgt` exits and enters (docs/simulation.md,
    "Conflicts"): their lowest common ancestor; the target's parent when the target is the
    source or one of its ancestors; the source when it contains the target."""
    sa, ta = _ancestors(nodes, src), _ancestors(nodes, tgt)
    if tgt in sa:
        return nodes[tgt].get("parent")
    if src in ta:
        return src
    return next((a for a in sa if a in ta), None)


def _initial_child(nodes: Mapping, st: str) -> str | None:
    d = nodes[st]
    if d.get("initial_child") is not None:
        return d["initial_child"]
    kids = d.get("children") or []
    return kids[0] if kids and (d.get("type") or "atomic") != "parallel" else None


def _entry_path(nodes: Mapping, domain: str | None, target: str) -> list[str]:
    """The states entered below `domain` to reach `target`, outermost first (docs/simulation.md,
    "The configuration"): the path, a parallel state's other tracks at their initial states,
    the target's initial descendants."""
    path = list(reversed(_ancestors(nodes, target)))
    if domain is not None:
        path = path[path.index(domain) + 1:]
    out: list[str] = []

    def complete(st: str) -> None:
        if (nodes[st].get("type") or "atomic") == "parallel":
            for tr in nodes[st].get("children") or ():
                out.append(tr)
                complete(tr)
        else:
            child = _initial_child(nodes, st)
            if child is not None:
                out.append(child)
                complete(child)

    def down(i: int) -> None:
        st = path[i]
        out.append(st)
        if i == len(path) - 1:
            complete(st)
            return
        nxt = path[i + 1]
        if (nodes[st].get("type") or "atomic") == "parallel":
            for tr in nodes[st].get("children") or ():
                if tr == nxt:
                    down(i + 1)
                else:
                    out.append(tr)
                    complete(tr)
        else:
            down(i + 1)

    if path:
        down(0)
    return out


class _Builder:
    def __init__(self, graph, plan) -> None:
        self.graph = graph
        self.g = graph.graph
        self.L = plan.labels
        self.c = _Compiler(graph)
        self.nodes = dict(graph.nodes(data=True))
        self.edges = {k: (u, v, d) for u, v, k, d in graph.edges(keys=True, data=True)}
        self.rules: dict[str, dict] = {}

    # -- actions

    def program(self, actions) -> list:
        out = []
        for a in actions or ():
            kind = a.get("kind")
            if kind == "do":
                out.append({"k": "do", "action": a["action"], "window": self.window(a.get("window")),
                            "text": self.L.action_lines([a], full=True)[0].text})
            elif kind == "one_of":
                alts = {}
                for alt in a.get("alternatives") or ():
                    if alt.get("actions"):
                        alts[alt["action"]] = self.program(alt["actions"])
                out.append({"k": "one_of", "options": list(a.get("options") or ()), "window": self.window(a.get("window")),
                            "text": self.L.action_lines([a], full=True)[0].text, "then": alts,
                            "texts": {o: self.L.action_text(o, True) for o in a.get("options") or ()}})
            elif kind == "set":
                out.append({"k": "set", "var": a["var"], "value": self.c.fn(a["value"]),
                            "text": f"{a['var']} = {self.L.expr(a['value'])}"})
            elif kind == "if":
                out.append({"k": "if", "cond": self.c.fn(a["cond"]), "text": self.L.expr(a["cond"]),
                            "then": self.program(a.get("then")), "else": self.program(a.get("else"))})
            else:
                raise FormError(f"unknown action kind {kind!r}")
        return out

    @staticmethod
    def window(w: Mapping | None) -> list | None:
        if not w:
            return None
        tol = w.get("tolerance")
        tol = [int(tol["amount"]), str(tol["unit"])] if isinstance(tol, Mapping) and tol.get("amount") is not None else None
        return [int(w["start"]), int(w["end"]), str(w["unit"]), tol, bool(w.get("every"))]

    # -- rules and handlers

    def rule(self, key: str) -> str:
        if key in self.rules:
            return key
        u, v, d = self.edges[key]
        stay = bool(d.get("stay"))
        target = u if stay else v
        domain = u if stay else _domain(self.nodes, u, target)
        lets = self.g.get("lets") or {}
        self.rules[key] = {
            "key": key, "source": u, "target": target, "stay": stay, "trigger": d.get("trigger", ""),
            "guard": self.c.fn(d.get("guard")),
            "reads": ir.labs_read(d.get("guard"), lets) if d.get("guard") is not None else [],
            "actions": self.program(d.get("actions")),
            "domain": domain,
            "depth": (self.nodes[domain].get("depth") or 0) if domain is not None else -1,
            "entry": [] if stay else _entry_path(self.nodes, domain, target),
            "alts": None, "alternative": d.get("alternative"),
            "text": self.L.expr(d.get("guard")) if d.get("guard") is not None else "otherwise",
            "because": d.get("because") or "",
            "track": self.nodes[u].get("track"),
            # the lets its guard reads (through other lets too), shown with the answer as the trace's `values`
            "lets": [[n, self.c.let(n)] for n in _lets_read(d.get("guard"), lets)],
        }
        return key

    def handler(self, keys: list[str]) -> dict | None:
        keys = [k for k in keys if not (self.edges[k][2].get("alternative") or 0) > 0]
        if not keys:
            return None
        for k in keys:
            self.rule(k)
        modes = [self.edges[k][2].get("mode") for k in keys]
        exclusive = all(m == "exclusive" for m in modes) and len({self.edges[k][0] for k in keys}) == 1
        return {"rules": keys, "exclusive": exclusive}

    def build(self) -> dict:
        nodes, g = self.nodes, self.g
        chart = any((d.get("type") or "atomic") != "atomic" or d.get("parent") is not None for d in nodes.values()) or any(
            d.get("alternative") is not None for _, _, d in self.edges.values())
        about = {t: sorted(labs) for t, labs in ir.track_labs(self.graph).items() if labs}
        own: dict[str, dict] = {}
        for name, d in nodes.items():
            panel, facts, timers = [], [], []
            if d.get("kind") != "terminal":
                for h in d.get("handlers") or ():
                    rules = list(h.get("rules") or ())
                    if h.get("trigger") == "panel":
                        panel.extend(rules)
                    elif h.get("trigger") == "fact":
                        facts.extend(rules)
                    elif h.get("trigger") == "timer":
                        t = h.get("timer") or {}
                        timers.append({"amount": int(t.get("amount", 0)), "unit": t.get("unit", "days"),
                                       "since": t.get("since"), "handler": self.handler(rules)})
            own[name] = {"panel": panel, "facts": facts, "timers": timers}
        states = {}
        for name, d in nodes.items():
            chain = _ancestors(nodes, name) if chart else [name]
            typ = d.get("type") or "atomic"
            st = {
                "type": typ, "parent": d.get("parent"), "children": list(d.get("children") or ()),
                "track": d.get("track"), "depth": int(d.get("depth") or 0),
                "doc": int(d["doc_order"]) if d.get("doc_order") is not None else len(states),
                "terminal": d.get("kind") == "terminal", "ancestors": chain,
                "title": d.get("description") or name,
                "entry": self.program(d.get("entry")),
                "timers": own[name]["timers"],
                "panel": None, "facts": {}, "about": None,
            }
            if typ == "atomic":
                st["panel"] = self.handler([k for a in chain for k in own[a]["panel"]])
                st["about"] = about.get(d.get("track")) if d.get("track") is not None else None
                # the `on fact` rules tried on entering it, by the outermost state entered with it
                for i, top in enumerate(chain):
                    h = self.handler([k for a in chain[:i + 1] for k in own[a]["facts"]])
                    if h is not None:
                        st["facts"][top] = h
            states[name] = st
        # a choice's alternatives i > 0: chosen with their rule
        for key, (u, v, d) in self.edges.items():
            if (d.get("alternative") or 0) > 0:
                base = key.split("@")[0]
                if base in self.rules:
                    self.rule(key)
        for key, r in list(self.rules.items()):
            if r["alternative"] is not None and "@" not in key:
                r["alts"] = []
        for key, r in list(self.rules.items()):
            if r["alternative"] is not None:
                base = self.rules.get(key.split("@")[0])
                if base is not None:
                    d = self.edges[key][2]
                    base["alts"].append([_alternative_action(d, r["alternative"]), key])
        for r in self.rules.values():
            if r["alts"]:
                r["alts"].sort(key=lambda a: self.rules[a[1]]["alternative"] or 0)
        labs = {}
        for name, d in (g.get("labs") or {}).items():
            target = d.get("unit")
            choices = []
            for u in (target,) + UNIT_CHOICES:
                if any(units.same_unit(u, c[0]) for c in choices):
                    continue
                try:
                    f = units.convert(1, u, target, d.get("molar_mass"))
                except (units.UnitError, ValueError):
                    continue
                choices.append([u, _q(f)])
            labs[name] = {"unit": target, "uln": _q(ir.exact(d["uln"])) if d.get("uln") is not None else None,
                          "description": d.get("description") or "", "units": choices}
        decls = {}
        for kind in ("facts", "vars"):
            decls[kind] = {}
            for name, d in (g.get(kind) or {}).items():
                default = d.get("default") if d.get("has_default") else None
                if isinstance(default, (int, float, str)) and not isinstance(default, bool) and d.get("type") == "number":
                    default = {"q": _q(ir.exact(default))}
                decls[kind][name] = {"type": d.get("type"), "members": list(d.get("members") or ()),
                                     "unit": d.get("unit"), "has_default": bool(d.get("has_default")),
                                     "default": default, "description": d.get("description") or ""}
        actions = {}
        for name, d in (g.get("actions") or {}).items():
            orders = list(d.get("orders") or ())
            fulfil = [list(alt) for alt in (d.get("fulfilled_by") or ()) if alt] or ([orders] if orders else [])
            eff = d.get("effect")
            effect = None
            if isinstance(eff, Mapping):
                drug = (g.get("drugs") or {}).get(eff.get("drug")) or {}
                level = eff.get("dose")
                index = None
                if level is not None:
                    index = next(i for i, x in enumerate(drug.get("doses") or ())
                                 if (str(x) == str(level) if drug.get("kind") == "name" else ir.exact(x) == ir.exact(level)))
                effect = [eff["kind"], eff["drug"], index]
            actions[name] = {"orders": orders, "fulfil": fulfil, "effect": effect,
                             "text": self.L.action_text(name, True)}
        drugs = {}
        for name, d in (g.get("drugs") or {}).items():
            kind = d.get("kind") or "number"
            levels = [{"s": str(x)} if kind == "name" else {"q": _q(ir.exact(x))} for x in d.get("doses") or ()]
            drugs[name] = {"levels": levels, "labels": list(d.get("labels") or ()), "unit": d.get("unit"),
                           "description": d.get("description") or name}
        since_read = sorted({n["args"][0]["name"] for t in self._trees() for n in ir.walk(t)
                             if n.get("op") == "call" and n.get("func") == "since"}
                            | {tm["since"] for s in own.values() for tm in s["timers"] if tm.get("since")})
        return {
            "chart": chart, "initial": g.get("initial"), "states": states, "rules": self.rules, "labs": labs,
            "facts": decls["facts"], "vars": decls["vars"], "actions": actions, "drugs": drugs,
            "since": since_read, "consts": self.c.consts,
            "panel_labs": sorted(ir.labs_named([self.edges[k][2].get("guard") for s in own.values() for k in s["panel"]],
                                               g.get("lets") or {})),
        }

    def _trees(self):
        for _, _, d in self.edges.values():
            if d.get("guard") is not None:
                yield d["guard"]
            yield from _action_trees(d.get("actions"))
        for d in self.nodes.values():
            yield from _action_trees(d.get("entry"))
        for decl in (self.g.get("lets") or {}).values():
            if isinstance(decl, Mapping) and decl.get("expr") is not None:
                yield decl["expr"]


def _lets_read(tree: Mapping | None, lets: Mapping) -> list[str]:
    """The lets `tree` reads, through other lets too, in order of first appearance."""
    out: dict[str, None] = {}
    stack = [tree] if tree is not None else []
    while stack:
        for n in ir.walk(stack.pop()):
            if n.get("op") == "let" and n["name"] not in out:
                out[n["name"]] = None
                decl = lets.get(n["name"])
                if isinstance(decl, Mapping) and decl.get("expr") is not None:
                    stack.append(decl["expr"])
    return list(out)


def _action_trees(actions):
    for a in actions or ():
        if a.get("kind") == "set":
            yield a["value"]
        elif a.get("kind") == "if":
            yield a["cond"]
            yield from _action_trees(a.get("then"))
            yield from _action_trees(a.get("else"))
        elif a.get("kind") == "one_of":
            for alt in a.get("alternatives") or ():
                yield from _action_trees(alt.get("actions"))


def _alternative_action(d: Mapping, i: int) -> str:
    for a in d.get("actions") or ():
        alts = a.get("alternatives") if isinstance(a, Mapping) else None
        if alts and i < len(alts):
            return alts[i]["action"]
    raise FormError(f"rule {d.get('id')!r} has no choice with an alternative {i}")


# ---------------------------------------------------------------------------- a patient's history


def _json_value(v: Any, exact_text: Any = None) -> Any:
    """A value as the form reads it: {q: [n, d]} for a number (exact, from the trace's exact
    text when it has one), else as it is."""
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return v
    return {"q": _q(Fraction(exact_text) if exact_text is not None else ir.exact(v))}


def question(graph, trace: Mapping, day: str, results: list[Mapping], facts: Mapping | None = None) -> dict:
    """The form's question for a panel on `day` (ISO) to a patient whose replay so far is
    `trace` (a simulator trace up to the day before, or to `day` itself with no result that
    day): the active states, the variables and drugs as the replay left them, when each
    state was entered and each action last recommended, the open orders, and the patient's
    `facts` (the declared defaults for the others). `results`: [{lab, value, unit, uln}],
    values as typed (decimal texts), units as written (None: the lab's unit)."""
    g = graph.graph
    facts_out: dict[str, Any] = {}
    for name, d in (g.get("facts") or {}).items():
        if facts and name in facts:
            v = facts[name]
            facts_out[name] = v if isinstance(v, (bool, str)) else _json_value(v)
        elif d.get("has_default"):
            facts_out[name] = _json_value(d.get("default"))
    return {
        "config": list(trace.get("final_states") or [trace.get("final_state")]),
        "today": day,
        "panel": {r["lab"]: {"value": str(r["value"]), "unit": r.get("unit"),
                             **({"uln": str(r["uln"])} if r.get("uln") is not None else {})} for r in results},
        "facts": facts_out,
        **_history(graph, trace.get("steps") or ()),
        "orders": [{"action": o["action"], "opens": (o.get("window") or [None])[0], "track": o.get("track")}
                   for o in trace.get("open_orders") or ()],
    }


def _history(graph, steps) -> dict:
    """What a trace's steps say of a patient's history: the variables (their defaults, then
    every `set`), the day each action was last recommended (null: never), the day each state
    was last entered, the drugs (every action's effect replayed in its track)."""
    g = graph.graph
    vars_decl = g.get("vars") or {}
    vars_out = {name: _json_value(d.get("default")) for name, d in vars_decl.items() if d.get("has_default")}
    actions = g.get("actions") or {}
    last = {name: None for name in actions}
    entries: dict[str, str] = {}
    drugs = {name: {"started": False, "stopped": False, "holds": [], "asks": {}} for name in g.get("drugs") or {}}
    for s in steps:
        t = s.get("type")
        if t == "set" and s.get("var") in vars_decl:
            try:
                vars_out[s["var"]] = _json_value(s.get("value"), s.get("value_exact"))
            except (TypeError, ValueError, ZeroDivisionError, ir.IRError):
                vars_out.pop(s["var"], None)  # a value the form cannot read: not given
        elif t == "enter" and s.get("state") in graph.nodes:
            entries[s["state"]] = s["date"]
        elif t == "action" and s.get("action") in actions:
            last[s["action"]] = s["date"]
            eff = (actions.get(s["action"]) or {}).get("effect")
            if isinstance(eff, Mapping) and eff.get("drug") in drugs:
                _drug_effect(drugs[eff["drug"]], eff, (g.get("drugs") or {}).get(eff["drug"]) or {}, s.get("track") or "")
    return {"vars": vars_out, "last": last, "entries": entries, "drugs": drugs}


def _active(graph, steps, final_state: str | None) -> list[str]:
    """The active atomic states at the end of a trace: below its final state, each compound
    state's or track's child entered last, every track of a parallel state."""
    if final_state is None or final_state not in graph.nodes:
        return []
    order = {}
    for i, s in enumerate(steps):
        if s.get("type") == "enter" and s.get("state") in graph.nodes:
            order[s["state"]] = i
    out: list[str] = []
    stack = [final_state]
    while stack and len(out) <= len(graph.nodes):
        st = stack.pop()
        d = graph.nodes[st]
        kids = list(d.get("children") or ())
        if not kids:
            out.append(st)
        elif (d.get("type") or "atomic") == "parallel":
            stack.extend(reversed(kids))
        else:
            entered = [k for k in kids if k in order]
            if entered:
                stack.append(max(entered, key=lambda k: order[k]))
    return out


def prefill(graph, trace: Mapping) -> dict:
    """The form's starting point for the patient of a trace (the viewer's `--trace`): the states
    the trace ends in and the history its steps give; whether an order is open is not given (a
    trace's steps do not say which results fulfilled which order), nor are the facts."""
    steps = [s for s in trace.get("steps") or () if isinstance(s, Mapping)]
    return {"config": _active(graph, steps, trace.get("final_state")), **_history(graph, steps)}


def _drug_effect(d: dict, eff: Mapping, decl: Mapping, region: str) -> None:
    """An action's effect on a drug, as the replay applies it (docs/simulation.md, "Drugs")."""
    if d["stopped"]:
        return
    level = eff.get("dose")
    index = None
    if level is not None:
        doses = list(decl.get("doses") or ())
        named = decl.get("kind") == "name"
        index = next(i for i, x in enumerate(doses) if (str(x) == str(level) if named else ir.exact(x) == ir.exact(level)))
    kind = eff.get("kind")
    if kind == "start":
        d["started"] = True
        if index is not None:
            d["asks"][region] = index
    elif kind == "hold":
        d["started"] = True
        if region not in d["holds"]:
            d["holds"].append(region)
    elif kind == "resume":
        d["holds"] = [r for r in d["holds"] if r != region]
        d["started"] = True
        if index is not None:
            d["asks"][region] = index
    elif kind == "dose":
        d["started"] = True
        d["asks"][region] = index if index is not None else 0
    elif kind == "stop":
        d["stopped"] = True


# ---------------------------------------------------------------------------- the page's parts


def build(graph, plan) -> tuple[str, dict]:
    """(the generated functions' JavaScript, the form's data) for one protocol."""
    b = _Builder(graph, plan)
    data = b.build()
    return b.c.source(), data


def script(generated: str) -> str:
    """The inline script: the generated functions, then the runtime and the form
    (render/assets/panelform.js), in one function scope."""
    runtime = resources.files(__package__).joinpath("assets", "panelform.js").read_text(encoding="utf-8")
    return runtime.replace("/*@GENERATED@*/", generated, 1)


def data(graph, plan, trace: Mapping | None = None) -> tuple[str, dict]:
    """(the inline script, the JSON data the page carries for the form); with a trace (the
    viewer's `--trace`, as render.trace.Overlay.to_dict gives it), the form starts where that
    patient is."""
    generated, d = build(graph, plan)
    d["prefill"] = prefill(graph, trace) if trace is not None else None
    return script(generated), d
