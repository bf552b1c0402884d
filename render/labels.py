"""Clinician text for the compiled graph: guards, actions, windows, triggers and sources.

Everything here reads the compiled graph (never the AST) and returns plain text; the DOT and
HTML writers escape it for their own markup. The goal is text that reads like the guideline a
clinician knows, while meaning exactly what the protocol says:

- a lab ratio `xuln(ALT)` reads "ALT", and a number compared with it gets "× ULN":
  `xuln(ALT) > 3` -> "ALT > 3× ULN";
- a derived value that is the larger of lab ratios, `max(xuln(ALT), xuln(AST))`, reads
  "ALT or AST" when compared upward and "both ALT and AST" downward: `tx > 5` ->
  "ALT or AST > 5× ULN", `tx <= 3` -> "both ALT and AST ≤ 3× ULN" (and `min` the other way);
- such numeric lets are written out where they are used; boolean lets (`severe`) keep their
  name and are defined once in the chart's key;
- facts and variables that are conditions read as their description ("pre-existing liver
  disease"); enums read "indication is stills_disease or hlh_mas".
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass, field

OPS = {">": ">", ">=": "≥", "<": "<", "<=": "≤", "==": "=", "!=": "≠"}
FLIP = {">": "<", ">=": "<=", "<": ">", "<=": ">=", "==": "==", "!=": "!="}
UP = {">", ">="}  # comparisons that ask "is it high?"

# How each source kind reads in the reference list. Kinds not listed read as written.
SOURCE_KINDS = {
    "ai-summary": "AI summary, pending human review",
    "label": "Drug label",
    "grading": "Grading scale",
    "regulatory-guidance": "Regulatory guidance",
    "guideline": "Guideline",
    "review": "Review",
    "case-report": "Case report",
    "convention": "Pathway convention (the sources give no number)",
}
UNREVIEWED_KINDS = {"ai-summary"}  # sources that must read as not yet reviewed by a person
UNREVIEWED_MARK = "†"


def number(v) -> str:
    """5.0 -> "5", 1.5 -> "1.5"."""
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def duration(amount, unit: str) -> str:
    unit = unit if unit.endswith("s") else unit + "s"
    return f"{number(amount)} {unit[:-1] if amount == 1 else unit}"


def window(w: dict | None) -> str:
    """A due window: "due within 14 days", "due in 2–4 weeks"."""
    if not w:
        return ""
    if not w["start"]:
        return f"due within {duration(w['end'], w['unit'])}"
    return f"due in {number(w['start'])}–{duration(w['end'], w['unit'])}"


def humanise(name: str) -> str:
    return name.replace("_", " ")


def short(text: str) -> str:
    """A description without its trailing parenthetical, when enough is left to read."""
    m = re.match(r"^(.*\S)\s*\([^()]*\)$", text, re.S)
    return m.group(1) if m and len(m.group(1)) >= 12 else text


def wrap(text: str, width: int) -> list[str]:
    """Lines of at most `width` characters (longer words stay whole). A single newline is a
    space (text reflows); an empty line separates paragraphs."""
    out: list[str] = []
    paras = [" ".join(p.split()) for p in re.split(r"\n\s*\n", text)]
    for para in paras or [""]:
        out.extend(textwrap.wrap(para, width, break_long_words=False, break_on_hyphens=False) or [""])
    return out


@dataclass(frozen=True)
class _Ratio:
    """A value in multiples of ULN over one or more labs: `quant` None (one lab), "max", "min"."""

    labs: tuple[str, ...]
    quant: str | None


@dataclass
class Line:
    """One action as a clinician reads it."""

    text: str  # "Order a liver panel ..., due in 2–4 weeks"
    when: str = ""  # "" or "if indication is stills_disease or hlh_mas" / "otherwise"
    sources: list[str] = field(default_factory=list)
    options: list[str] = field(default_factory=list)  # alternatives; the first is the default
    kind: str = "do"  # do / one_of / set

    def to_dict(self) -> dict:
        return {"text": self.text, "when": self.when, "sources": self.sources, "options": self.options, "kind": self.kind}


class Labels:
    """Text for one compiled protocol graph."""

    def __init__(self, graph):
        g = graph.graph
        self.lets = g.get("lets", {})
        self.labs = g.get("labs", {})
        self.facts = g.get("facts", {})
        self.vars = g.get("vars", {})
        self.actions = g.get("actions", {})
        self.events = g.get("events", {})
        self.sources = g.get("sources", {})
        # citation numbers: declaration order, 1-based
        self.cite_no = {sid: i for i, sid in enumerate(self.sources, 1)}

    # ------------------------------------------------------------ sources

    def kind_text(self, sid: str) -> str:
        kind = self.sources.get(sid, {}).get("kind") or ""
        return SOURCE_KINDS.get(kind, humanise(kind.replace("-", " ")).capitalize() if kind else "Source")

    def unreviewed(self, sid: str) -> bool:
        return self.sources.get(sid, {}).get("kind") in UNREVIEWED_KINDS

    def marks(self, sids) -> list[tuple[str, bool]]:
        """Citation marks in number order: [("1†", True), ("4", False)] (True: unreviewed)."""
        known = sorted({s for s in sids if s in self.cite_no}, key=self.cite_no.get)
        return [(f"{self.cite_no[s]}{UNREVIEWED_MARK if self.unreviewed(s) else ''}", self.unreviewed(s)) for s in known]

    def marks_text(self, sids) -> str:
        m = self.marks(sids)
        return f"[{','.join(t for t, _ in m)}]" if m else ""

    # ------------------------------------------------------------ names

    def action_text(self, name: str, full: bool = True) -> str:
        desc = (self.actions.get(name) or {}).get("description") or humanise(name)
        return desc if full else short(desc)

    def event_text(self, name: str) -> str:
        return (self.events.get(name) or {}).get("description") or humanise(name)

    def fact_text(self, name: str) -> str:
        decl = self.facts.get(name) or self.vars.get(name) or {}
        return decl.get("description") or humanise(name)

    # ------------------------------------------------------------ triggers

    def trigger(self, edge_or_handler: dict) -> str:
        """What sets a handler off: "Lab results", "Event: jaundice or encephalopathy", ..."""
        h = edge_or_handler
        t = h["trigger"]
        if t == "panel":
            return "Lab results"
        if t == "event":
            return "Event: " + " or ".join(self.event_text(e) for e in h["events"])
        if t == "fact":
            if not h["facts"]:
                return "A patient fact changes"
            return "Change in: " + ", ".join(self.fact_text(f) for f in h["facts"])
        if t == "timer":
            tm = h.get("timer") or {}
            if not tm:
                return "After a time"
            d = duration(tm["amount"], tm["unit"])
            if tm.get("since"):
                return f"{d} after ‘{self.action_text(tm['since'], full=False)}’"
            return f"After {d} in this state"
        return t

    # ------------------------------------------------------------ expressions

    def expr(self, e: dict | None) -> str:
        """An expression tree as one line of clinician text."""
        if e is None:
            return "otherwise"
        return self._e(e, 0)

    def disjuncts(self, e: dict) -> list[str]:
        """A top-level `or` as its alternatives (one per line in the key), else one line."""
        if e.get("op") == "or":
            return [self._e(a, 2) for a in e["args"]]
        return [self._e(e, 0)]

    def value(self, e: dict) -> str:
        """A numeric expression on its own (a numeric let's definition in the key)."""
        r = self._ratio(e)
        if r is not None:
            return f"{self._standalone(r)}, in multiples of {'its' if r.quant is None else 'their'} ULN"
        return self._e(e, 0)

    # precedence: or 1, and 2, not 3, comparison 4, + - 5, * / 6, unary 7
    def _e(self, e: dict, prec: int) -> str:
        op = e["op"]
        if op in ("or", "and"):
            mine = 1 if op == "or" else 2
            parts = [self._e(a, mine + 1 if op == "and" else mine) for a in e["args"]]
            # "ALT or AST > 5× ULN" already holds an "or": separate alternatives more strongly
            sep = "; or " if op == "or" and any(" or " in p or " and " in p for p in parts) else f" {op} "
            s = sep.join(parts)
            return f"({s})" if prec > mine else s
        if op == "not":
            inner = self._e(e["arg"], 3)
            s = f"not {inner}" if e["arg"]["op"] in ("fact", "var", "let", "bool") else f"not ({self._e(e['arg'], 0)})"
            return f"({s})" if prec > 3 else s
        if op == "compare":
            s = self._compare(e)
            return f"({s})" if prec > 4 else s
        if op == "in":
            subj = self._e(e["arg"], 5)
            return f"{subj} is {' or '.join(e['members'])}"
        if op in ("+", "-", "*", "/"):
            mine = 5 if op in "+-" else 6
            a, b = e["args"]
            s = f"{self._e(a, mine)} {op} {self._e(b, mine + 1)}"
            return f"({s})" if prec > mine else s
        if op == "neg":
            return f"−{self._e(e['arg'], 7)}"
        if op == "num":
            return number(e["value"])
        if op == "bool":
            return "yes" if e["value"] else "no"
        if op == "duration":
            return duration(e["amount"], e["unit"])
        if op == "enum":
            return e["value"]
        if op == "lab":
            return e["name"]
        if op == "let":
            r = self._ratio(e)
            return self._standalone(r) if r is not None else e["name"]
        if op in ("fact", "var"):
            decl = (self.facts if op == "fact" else self.vars).get(e["name"]) or {}
            return self.fact_text(e["name"]) if decl.get("type") == "bool" else humanise(e["name"])
        if op == "action":
            return self.action_text(e["name"], full=False)
        if op == "call":
            return self._call(e)
        return op  # unknown node: its operator, never a crash

    def _call(self, e: dict) -> str:
        f, args = e["func"], e["args"]
        r = self._ratio(e)
        if r is not None:
            return self._standalone(r)
        if f == "known" and args:
            return f"{self._e(args[0], 5)} known"
        if f == "uln" and args:
            return f"ULN of {self._e(args[0], 5)}"
        if f == "since" and args:
            name = args[0].get("name", "")
            return f"time since ‘{self.action_text(name, full=False)}’"
        if f in ("max", "min"):
            which = "higher" if f == "max" else "lower"
            return f"the {which} of " + ", ".join(self._e(a, 0) for a in args)
        return f"{f}({', '.join(self._e(a, 0) for a in args)})"

    def _ratio(self, e: dict) -> _Ratio | None:
        """`e` as lab values in multiples of ULN (xuln, max/min of them, a let of them), or None."""
        op = e.get("op")
        if op == "let":
            let = self.lets.get(e["name"])
            return self._ratio(let["expr"]) if let and let.get("type") == "number" else None
        if op != "call":
            return None
        f, args = e["func"], e["args"]
        if f == "xuln" and len(args) == 1 and args[0].get("op") == "lab":
            return _Ratio((args[0]["name"],), None)
        if f in ("max", "min") and args:
            rs = [self._ratio(a) for a in args]
            if all(r is not None and r.quant in (None, f) for r in rs):
                labs = tuple(dict.fromkeys(lab for r in rs for lab in r.labs))
                return _Ratio(labs, f if len(labs) > 1 else None)
        return None

    @staticmethod
    def _standalone(r: _Ratio) -> str:
        """Lab ratios outside a comparison: "ALT", "the higher of ALT and AST"."""
        if r.quant is None:
            return r.labs[0]
        which = "higher" if r.quant == "max" else "lower"
        return f"the {which} of {', '.join(r.labs[:-1])} and {r.labs[-1]}"

    @staticmethod
    def _subject(r: _Ratio, mode: str) -> str:
        """Lab names: "ALT", "ALT or AST" (any one of them), "both ALT and AST" (all of them)."""
        if len(r.labs) == 1:
            return r.labs[0]
        if mode == "any":
            return " or ".join(r.labs)
        head = "both " if len(r.labs) == 2 else "all of "
        return head + ", ".join(r.labs[:-1]) + " and " + r.labs[-1]

    def _compare(self, e: dict) -> str:
        args, ops = e["args"], e["ops"]
        # the one operand that is not a constant is the subject; the others are thresholds
        movers = [i for i, a in enumerate(args) if a["op"] not in ("num", "duration", "enum", "bool")]
        if len(movers) != 1:
            return " ".join([self._e(args[0], 5)] + [f"{OPS[o]} {self._e(a, 5)}" for o, a in zip(ops, args[1:])])
        i = movers[0]
        subj = args[i]
        # every comparison as "subject OP constant", in the order written
        pairs: list[tuple[str, dict]] = []
        for j, o in enumerate(ops):
            left, right = args[j], args[j + 1]
            if j + 1 == i:
                pairs.append((FLIP[o], left))
            elif j == i:
                pairs.append((o, right))
        pairs.sort(key=lambda p: 0 if p[0] in UP else 1)  # "> low" before "≤ high"
        r = self._ratio(subj)
        out = []
        for n, (o, k) in enumerate(pairs):
            unit = self._unit(subj, r)
            val = f"{self._e(k, 5)}{unit}"
            if subj["op"] == "call" and subj["func"] == "since" and subj["args"]:
                # since(a) < 6 months -> "< 6 months since ‘Initiate leflunomide’"
                act = self.action_text(subj["args"][0].get("name", ""), full=False)
                out.append(f"{OPS[o]} {val} since ‘{act}’")
                continue
            if k["op"] == "enum":
                out.append(f"{self._e(subj, 5)} {'is' if o == '==' else 'is not' if o == '!=' else OPS[o]} {val}")
                continue
            if r is not None and r.quant is not None:
                # max(...) > k: any is above; max(...) <= k: all are at or below (min: the reverse)
                anyone = (o in UP) == (r.quant == "max")
                if n == 0:
                    out.append(f"{self._subject(r, 'any' if anyone else 'all')} {OPS[o]} {val}")
                else:
                    word = ("any" if anyone else ("both" if len(r.labs) == 2 else "all"))
                    out.append(f"{word} {OPS[o]} {val}")
            elif n == 0:
                out.append(f"{self._e(subj, 5)} {OPS[o]} {val}")
            else:
                out.append(f"{OPS[o]} {val}")
        return " and ".join(out)

    def _unit(self, subj: dict, r: _Ratio | None) -> str:
        if r is not None:
            return "× ULN"
        if subj["op"] == "lab":
            unit = (self.labs.get(subj["name"]) or {}).get("unit")
            return f" {unit}" if unit else ""
        if subj["op"] in ("fact", "var"):
            decl = (self.facts if subj["op"] == "fact" else self.vars).get(subj["name"]) or {}
            unit = decl.get("unit")
            return f" {unit}" if unit and unit != "1" else ""
        return ""

    # ------------------------------------------------------------ actions

    def action_lines(self, actions: list[dict], full: bool = True) -> list[Line]:
        """Actions as lines, conditional ones with their condition ("if ...", "otherwise")."""
        out: list[Line] = []
        self._lines(actions, [], out, full)
        return out

    def _lines(self, actions, conds: list[str], out: list[Line], full: bool) -> None:
        when = ", ".join(conds)
        for a in actions:
            k = a["kind"]
            if k == "do":
                text = self.action_text(a["action"], full)
                w = window(a.get("window"))
                out.append(Line(f"{text}, {w}" if w else text, when, list(a.get("sources", ())), [], "do"))
            elif k == "one_of":
                opts = [self.action_text(o, full) for o in a["options"]]
                w = window(a.get("window"))
                text = " OR ".join(opts) + (f", {w}" if w else "")
                out.append(Line(text, when, list(a.get("sources", ())), opts, "one_of"))
            elif k == "set":
                out.append(Line(self._set_text(a), when, list(a.get("sources", ())), [], "set"))
            elif k == "if":
                cond = self.expr(a["cond"])
                self._lines(a["then"], conds + [f"if {cond}"], out, full)
                if a["else"]:
                    other = "otherwise" if a["then"] else f"unless {cond}"
                    self._lines(a["else"], conds + [other], out, full)

    def _set_text(self, a: dict) -> str:
        name = a["var"]
        decl = self.vars.get(name) or {}
        what = decl.get("description") or humanise(name)
        v = a["value"]
        if v.get("op") == "bool":
            return f"Record: {what}" if v["value"] else f"Record no longer: {what}"
        return f"Set {humanise(name)} to {self.expr(v)}"
