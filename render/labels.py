"""Clinician text for the compiled graph: guards, actions, windows, triggers and sources.

Everything here reads the compiled graph (never the AST) and returns plain text; the DOT and
HTML writers escape it for their own markup. The goal is text that reads like the guideline a
clinician knows, while meaning exactly what the protocol says:

- a lab ratio `xuln(ALT)` reads "ALT", and a number compared with it gets "× ULN":
  `xuln(ALT) > 3` -> "ALT > 3× ULN";
- a derived value that is the larger of lab ratios, `max(xuln(ALT), xuln(AST))`, reads
  "ALT or AST" when compared upward and "both ALT and AST" downward: `tx > 5` ->
  "ALT or AST > 5× ULN", `tx <= 3` -> "both ALT and AST ≤ 3× ULN" (and `min` the other way);
- such numeric lets are written out where they are used; boolean lets (`severe`) read as
  their description without its parenthetical ("significant liver injury"; in quotes when it
  holds an "and", an "or" or a comma), and are defined once in the chart's key;
- facts and variables that are conditions read as their description ("pre-existing liver
  disease"); enums read "indication is stills_disease or hlh_mas";
- time reads in words: `since entry >= 14 days` -> "at least 14 days after entering this
  state", `since(start) < 6 months` -> "less than 6 months after ‘Initiate leflunomide’";
- `fulfilled(order_lfts)` -> "the order for a liver panel is fulfilled";
- numbers are the exact decimals of the graph (`ir.exact`), printed as written: `2.4`, never
  `2.4000000000000004` or `1e-05`; four digits and more before the point are grouped by
  thousands (`1,200`, `12,000.5`), as in the simulation table.

Expression trees are read by `Phrases`, a visitor of the IR (`rxwatch.compiler.ir.Visitor`):
each node becomes a `Phrase`, its text with what a parent needs to phrase around it.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass, field
from fractions import Fraction

from rxwatch.compiler import ir

OPS = {">": ">", ">=": "≥", "<": "<", "<=": "≤", "==": "=", "!=": "≠"}
FLIP = {">": "<", ">=": "<=", "<": ">", "<=": ">=", "==": "==", "!=": "!="}
UP = {">", ">="}  # comparisons that ask "is it high?"
# a time compared with a duration, in words: `since entry >= 14 days` -> "at least 14 days after ..."
TIME_WORDS = {">": "more than", ">=": "at least", "<": "less than", "<=": "at most", "==": "exactly", "!=": "not exactly"}
GROUP_FROM = 1_000  # numbers from here on are grouped by thousands: 1,200 and 12,000 (999 stays 999)
OTHERWISE = "none of the above"  # an `otherwise` the protocol does not name, in a list of rules

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
    """A number of the graph as its exact decimal: 5.0 -> "5", 2.4 -> "2.4", 1e-05 ->
    "0.00001", "0.1234567890123456789" as written, 12000.5 -> "12,000.5", 2.5e5 -> "250,000"."""
    q = ir.exact(v)
    text = ir.decimal_text(Fraction(q)) if not isinstance(q, int) else str(q)
    if text is None:  # no finite decimal (never a literal): a fraction, exactly
        return f"{q.numerator}/{q.denominator}"
    sign, digits = ("-", text[1:]) if text.startswith("-") else ("", text)
    whole, dot, frac = digits.partition(".")
    if abs(q) >= GROUP_FROM:
        whole = f"{int(whole):,}"
    return sign + whole + dot + frac


def duration(amount, unit: str) -> str:
    unit = unit if unit.endswith("s") else unit + "s"
    return f"{number(amount)} {unit[:-1] if amount == 1 else unit}"


def window(w: dict | None) -> str:
    """A due window in words: "due within 14 days", "due in 2–4 weeks", "due in 3 months ± 2
    weeks" (a point with the protocol's tolerance); a repeating order: "every 3 months ± 2
    weeks", "every 4–8 weeks", "every time within 14 days"."""
    if not w:
        return ""
    every = bool(w.get("every"))
    tol = w.get("tolerance")
    if w["start"] == w["end"] and w["start"]:
        text = f"{'every' if every else 'due in'} {duration(w['end'], w['unit'])}"
        if tol and tol.get("amount"):
            text += f" ± {duration(tol['amount'], tol['unit'])}"
        return text
    if not w["start"]:
        return f"{'every time ' if every else ''}due within {duration(w['end'], w['unit'])}"
    return f"{'every' if every else 'due in'} {number(w['start'])}–{duration(w['end'], w['unit'])}"


EFFECT_WORDS = {"start": "start", "hold": "hold", "resume": "resume", "dose": "dose", "stop": "stop"}


def locator_text(locator: str | None, width: int = 0) -> str:
    """A citation's locator as a chart shows it: a section or a table as written ("4.4",
    "Table 2"); a longer one (a quoted sentence) in quotes, cut at `width` characters (0:
    whole)."""
    if not locator:
        return ""
    text = " ".join(locator.split())
    if len(text) <= SHORT_LOCATOR:
        return text
    if width and len(text) > width:
        text = text[: max(1, width - 1)].rstrip() + "…"
    return f"“{text}”"


SHORT_LOCATOR = 16  # characters: "Table 2", "4.4", "section 5.1": shown as written


def humanise(name: str) -> str:
    return name.replace("_", " ")


def short(text: str) -> str:
    """A description without its trailing parenthetical, when enough is left to read."""
    m = re.match(r"^(.*\S)\s*\([^()]*\)$", text, re.S)
    return m.group(1) if m and len(m.group(1)) >= 12 else text


LONG_WORD = 200
"""A word longer than this (characters) is broken across lines: Graphviz refuses an HTML-like
label with a run of text of more than 16,384 characters, and nothing readable is that long."""


def wrap(text: str, width: int) -> list[str]:
    """Lines of at most `width` characters (longer words stay whole, up to LONG_WORD characters,
    beyond which they are broken). A single newline is a space (text reflows); an empty line
    separates paragraphs."""
    out: list[str] = []
    paras = [" ".join(p.split()) for p in re.split(r"\n\s*\n", text)]
    for para in paras or [""]:
        if len(para) > LONG_WORD and any(len(w) > LONG_WORD for w in para.split(" ")):
            para = " ".join(w[i:i + LONG_WORD] for w in para.split(" ") for i in range(0, max(len(w), 1), LONG_WORD))
        out.extend(textwrap.wrap(para, width, break_long_words=False, break_on_hyphens=False) or [""])
    return out


@dataclass(frozen=True)
class _Ratio:
    """A value in multiples of ULN over one or more labs: `quant` None (one lab), "max", "min"."""

    labs: tuple[str, ...]
    quant: str | None


# how tightly a phrase binds, for parentheses: or 1, and 2, not 3, comparison 4, + - 5, * / 6,
# unary minus 7, a name or a number 8
OR, AND, NOT, CMP, SUM, PRODUCT, UNARY, ATOM = range(1, 9)


@dataclass(frozen=True)
class Phrase:
    """An expression as clinician text, with what its parent needs to phrase around it."""

    text: str
    prec: int = ATOM
    const: bool = False  # a literal: the threshold side of a comparison
    ratio: _Ratio | None = None  # lab values in multiples of ULN
    unit: str = ""  # what a threshold compared with it is in: "× ULN", " U/L"
    since: str | None = None  # a time since something: "entering this state", "‘Initiate anakinra’"
    enum: bool = False  # an enumeration member
    atom: bool = False  # a condition by name: `not` reads "not X", without parentheses
    negated: str | None = None  # its negation in words: "TBIL not known"
    alternatives: tuple[str, ...] = ()  # an `or`: its alternatives
    truth: bool | None = None  # a `true` / `false` literal

    def at(self, prec: int) -> str:
        """The text where a phrase binding at least `prec` tightly is needed."""
        return f"({self.text})" if self.prec < prec else self.text


class Phrases(ir.Visitor):
    """The chart-text back end of the expression IR: a tree -> a `Phrase`."""

    def __init__(self, labels: Labels):
        self.L = labels
        self._lets: dict[str, Phrase] = {}

    # ---------------------------------------------------------- leaves

    def visit_num(self, t):
        return Phrase(number(t["value"]), const=True)

    def visit_bool(self, t):
        return Phrase("yes" if t["value"] else "no", const=True, atom=True, truth=bool(t["value"]))

    def visit_enum(self, t):
        return Phrase(t["value"], const=True, enum=True)

    def visit_duration(self, t):
        return Phrase(duration(t["amount"], t["unit"]), const=True)

    def visit_lab(self, t):
        unit = (self.L.labs.get(t["name"]) or {}).get("unit")
        return Phrase(t["name"], unit=f" {unit}" if unit else "")

    def visit_fact(self, t):
        return self._condition_or_value(t["name"], self.L.facts.get(t["name"]) or {})

    def visit_var(self, t):
        return self._condition_or_value(t["name"], self.L.vars.get(t["name"]) or {})

    def _condition_or_value(self, name: str, decl: dict) -> Phrase:
        if decl.get("type") == "bool":
            return Phrase(short(self.L.fact_text(name)), atom=True)  # without its parenthetical
        unit = decl.get("unit")
        return Phrase(humanise(name), unit=f" {unit}" if unit and unit != "1" else "")

    def visit_let(self, t):
        name = t["name"]
        if name not in self._lets:
            let = self.L.lets.get(name) or {}
            ratio = None
            if let.get("type") == "number" and let.get("expr") is not None:
                ratio = self.visit(let["expr"]).ratio
            if ratio is not None:
                self._lets[name] = Phrase(_standalone(ratio), ratio=ratio, unit="× ULN")
            elif self.L.reads_as_code(name) and let.get("expr") is not None:
                self._lets[name] = self.visit(let["expr"])  # a description in code: the definition in words
            else:  # a condition reads as its description, defined once in the key
                self._lets[name] = Phrase(self.L.condition_text(name), atom=True)
        return self._lets[name]

    def visit_action(self, t):
        return Phrase(self.L.action_text(t["name"], full=False))

    def visit_since_entry(self, t):
        return Phrase("the time since entering this state", since="entering this state")

    def visit_drug(self, t):
        return Phrase((self.L.drugs.get(t["name"]) or {}).get("description") or humanise(t["name"]))

    # ---------------------------------------------------------- calls

    def visit_call(self, t):
        f, args = t["func"], t["args"]
        ps = [self.visit(a) for a in args]
        if f == "xuln":
            ratio = _Ratio((ps[0].text,), None)
            return Phrase(_standalone(ratio), ratio=ratio, unit="× ULN")
        if f in ("max", "min") and ps:
            rs = [p.ratio for p in ps]
            if all(r is not None and r.quant in (None, f) for r in rs):
                labs = tuple(dict.fromkeys(lab for r in rs for lab in r.labs))
                ratio = _Ratio(labs, f if len(labs) > 1 else None)
                return Phrase(_standalone(ratio), ratio=ratio, unit="× ULN")
            which = "higher" if f == "max" else "lower"
            return Phrase(f"the {which} of " + ", ".join(p.text for p in ps), unit=ps[0].unit)
        if f == "known":
            subject = ps[0].at(SUM)
            return Phrase(f"{subject} known", CMP, negated=f"{subject} not known")
        if f == "uln":
            return Phrase(f"ULN of {ps[0].at(SUM)}", unit=ps[0].unit)
        if f == "since":
            what = f"‘{ps[0].text}’"
            return Phrase(f"the time since {what}", since=what)
        if f == "fulfilled":
            order = self.L.order_noun(args[0]["name"])
            return Phrase(f"{order} is fulfilled", CMP, negated=f"{order} is not fulfilled")
        if f in ("held", "stopped", "started"):  # the drug's state, as the tracks combine it
            drug = args[0]["name"]
            word = {"held": "held", "stopped": "stopped", "started": "started"}[f]
            return Phrase(f"{drug} {word}", CMP, negated=f"{drug} not {word}")
        if f == "dose":
            drug = args[0]["name"]
            unit = (self.L.drugs.get(drug) or {}).get("unit")
            return Phrase(f"the dose of {drug}", unit=f" {unit}" if unit else "")
        return Phrase(f"{f}({', '.join(p.text for p in ps)})")  # a function ir.FUNCTIONS adds later

    # ---------------------------------------------------------- arithmetic

    def visit_neg(self, t):
        p = self.visit(t["arg"])
        return Phrase(f"−{p.at(UNARY)}", UNARY, const=p.const, unit=p.unit)

    def _arith(self, t, prec: int) -> Phrase:
        a, b = (self.visit(x) for x in t["args"])
        unit = "" if t["op"] in ("*", "/") else (a.unit or b.unit)
        return Phrase(f"{a.at(prec)} {t['op']} {b.at(prec + 1)}", prec, const=a.const and b.const, unit=unit)

    def visit_add(self, t):
        return self._arith(t, SUM)

    def visit_sub(self, t):
        return self._arith(t, SUM)

    def visit_mul(self, t):
        return self._arith(t, PRODUCT)

    def visit_div(self, t):
        return self._arith(t, PRODUCT)

    # ---------------------------------------------------------- conditions

    def visit_compare(self, t):
        ops = t["ops"]
        ps = [self.visit(a) for a in t["args"]]
        # the one operand that is not a constant is the subject; the others are thresholds
        movers = [i for i, p in enumerate(ps) if not p.const]
        if len(movers) != 1:
            return Phrase(" ".join([ps[0].at(SUM)] + [f"{OPS[o]} {p.at(SUM)}" for o, p in zip(ops, ps[1:])]), CMP)
        i = movers[0]
        subj = ps[i]
        # every comparison as "subject OP constant", in the order written
        pairs: list[tuple[str, Phrase]] = []
        for j, o in enumerate(ops):
            if j + 1 == i:
                pairs.append((FLIP[o], ps[j]))
            elif j == i:
                pairs.append((o, ps[j + 1]))
        pairs.sort(key=lambda pair: 0 if pair[0] in UP else 1)  # "> low" before "≤ high"
        if subj.since is not None:
            # since entry >= 14 days -> "at least 14 days after entering this state"
            words = " and ".join(f"{TIME_WORDS[o]} {k.at(SUM)}" for o, k in pairs)
            return Phrase(f"{words} after {subj.since}", CMP)
        r = subj.ratio
        out = []
        for n, (o, k) in enumerate(pairs):
            val = f"{k.at(SUM)}{subj.unit}"
            if k.enum:
                out.append(f"{subj.at(SUM)} {'is' if o == '==' else 'is not' if o == '!=' else OPS[o]} {val}")
            elif r is not None and r.quant is not None:
                # max(...) > k: any is above; max(...) <= k: all are at or below (min: the reverse)
                anyone = (o in UP) == (r.quant == "max")
                if n == 0:
                    out.append(f"{_subject(r, 'any' if anyone else 'all')} {OPS[o]} {val}")
                else:
                    word = "any" if anyone else ("both" if len(r.labs) == 2 else "all")
                    out.append(f"{word} {OPS[o]} {val}")
            elif n == 0:
                out.append(f"{subj.at(SUM)} {OPS[o]} {val}")
            else:
                out.append(f"{OPS[o]} {val}")
        return Phrase(" and ".join(out), CMP)

    def visit_in(self, t):
        subj = self.visit(t["arg"])
        return Phrase(f"{subj.at(SUM)} is {' or '.join(t['members'])}", CMP)

    def visit_not(self, t):
        p = self.visit(t["arg"])
        if p.negated is not None:
            return Phrase(p.negated, p.prec, negated=p.text)
        return Phrase(f"not {p.text}" if p.atom else f"not ({p.text})", NOT, negated=p.text)

    def visit_and(self, t):
        parts = [self.visit(a).at(NOT) for a in t["args"]]
        return Phrase(" and ".join(parts), AND)

    def visit_or(self, t):
        ps = [self.visit(a) for a in t["args"]]
        parts = [p.at(OR) for p in ps]
        # "ALT or AST > 5× ULN" already holds an "or": separate alternatives more strongly
        sep = "; or " if any(" or " in p or " and " in p for p in parts) else " or "
        return Phrase(sep.join(parts), OR, alternatives=tuple(p.at(AND) for p in ps))


def _all_of(labs: list[str]) -> str:
    """Labs that must all have results: "ALT", "TBIL and INR", "all of ALT, AST, TBIL and INR"."""
    if len(labs) <= 2:
        return " and ".join(labs)
    return "all of " + ", ".join(labs[:-1]) + " and " + labs[-1]


def _standalone(r: _Ratio) -> str:
    """Lab ratios outside a comparison: "ALT", "the higher of ALT and AST"."""
    if r.quant is None:
        return r.labs[0]
    which = "higher" if r.quant == "max" else "lower"
    return f"the {which} of {', '.join(r.labs[:-1])} and {r.labs[-1]}"


def _subject(r: _Ratio, mode: str) -> str:
    """Lab names: "ALT", "ALT or AST" (any one of them), "both ALT and AST" (all of them)."""
    if len(r.labs) == 1:
        return r.labs[0]
    if mode == "any":
        return " or ".join(r.labs)
    head = "both " if len(r.labs) == 2 else "all of "
    return head + ", ".join(r.labs[:-1]) + " and " + r.labs[-1]


@dataclass
class Line:
    """One action as a clinician reads it."""

    text: str  # "Order a liver panel ..., due in 2–4 weeks"
    when: str = ""  # "" or "if indication is stills_disease or hlh_mas" / "otherwise"
    sources: list[str] = field(default_factory=list)
    options: list[str] = field(default_factory=list)  # alternatives; the first is the default
    kind: str = "do"  # do / one_of / set
    fulfilled_by: str = ""  # an order: the results that fulfil it ("ALT or AST")
    citations: list = field(default_factory=list)  # [{"source", "locator"}] as written
    effect: str = ""  # what the action does to a drug: "holds tocilizumab", "resumes it at 4 mg/kg"
    alternatives: list = field(default_factory=list)  # one_of: [{"text", "effect", "target", "stay", "lines"}]

    def to_dict(self) -> dict:
        return {"text": self.text, "when": self.when, "sources": self.sources, "options": self.options, "kind": self.kind,
                "fulfilled_by": self.fulfilled_by, "citations": self.citations, "effect": self.effect,
                "alternatives": [{**a, "lines": [x.to_dict() for x in a["lines"]]} for a in self.alternatives]}


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
        self.drugs = g.get("drugs") or {}
        # citation numbers: declaration order, 1-based
        self.cite_no = {sid: i for i, sid in enumerate(self.sources, 1)}
        self._phrases = Phrases(self)

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

    def cite_marks(self, sids, citations=(), width: int = 0) -> list[tuple[str, bool]]:
        """Marks with their locators: [("1†", True), ("3: 4.4", False), ("5: Table 1, Table 2",
        False)] for the sources `sids`, each once, in number order; a source's locators (from
        `citations`, `[{"source", "locator"}]`) after its number, cut at `width`."""
        loc: dict[str, list[str]] = {}
        for c in citations or ():
            if c.get("locator"):
                text = locator_text(c["locator"], width)
                if text not in loc.setdefault(c["source"], []):
                    loc[c["source"]].append(text)
        ids = set(sids) | {c["source"] for c in citations or ()}
        out = []
        for text, unrev in self.marks(ids):
            sid = next(s for s in ids if s in self.cite_no and str(self.cite_no[s]) == text.rstrip(UNREVIEWED_MARK))
            out.append((f"{text}: {', '.join(loc[sid])}" if loc.get(sid) else text, unrev))
        return out

    def marks_text(self, sids) -> str:
        m = self.marks(sids)
        return f"[{','.join(t for t, _ in m)}]" if m else ""

    # ------------------------------------------------------------ names

    def action_text(self, name: str, full: bool = True) -> str:
        desc = (self.actions.get(name) or {}).get("description") or humanise(name)
        return desc if full else short(desc)

    def dose_text(self, drug: str, level) -> str:
        """A dose level of a drug as a clinician reads it: "4 mg/kg", "100 mg every other day"."""
        d = self.drugs.get(drug) or {}
        if level is None:
            return ""
        if d.get("kind") == "name":
            labels = d.get("labels") or []
            doses = d.get("doses") or []
            if level in doses and doses.index(level) < len(labels) and labels[doses.index(level)]:
                return labels[doses.index(level)]
            return humanise(str(level))
        unit = d.get("unit")
        try:
            text = number(level)
        except Exception:  # noqa: BLE001 - a level the graph writes otherwise: as written
            text = str(level)
        return f"{text} {unit}" if unit else text

    def effect_text(self, name: str) -> str:
        """What an action does to a drug, in words: "holds tocilizumab", "resumes tocilizumab
        at 4 mg/kg", "asks for tocilizumab 4 mg/kg", "stops tocilizumab", "starts anakinra at
        100 mg daily"; "" for an action on no drug."""
        e = (self.actions.get(name) or {}).get("effect")
        if not e:
            return ""
        drug = e.get("drug") or ""
        dose = self.dose_text(drug, e.get("dose"))
        kind = e.get("kind")
        if kind == "hold":
            return f"holds {drug}"
        if kind == "stop":
            return f"stops {drug}"
        if kind == "dose":
            return f"asks for {drug} at {dose}" if dose else f"asks for a dose of {drug}"
        verb = {"start": "starts", "resume": "resumes"}.get(kind, str(kind))
        return f"{verb} {drug}" + (f" at {dose}" if dose else "")

    def event_text(self, name: str) -> str:
        return (self.events.get(name) or {}).get("description") or humanise(name)

    def fulfilled_by(self, name: str) -> str:
        """What fulfils an order of `name`: "ALT or AST", "TBIL and INR", "ALT and AST, or
        TBIL"; "" for an action that orders nothing."""
        decl = self.actions.get(name) or {}
        alts = [list(alt) for alt in decl.get("fulfilled_by") or () if alt]
        if not decl.get("orders") or not alts:
            return ""
        if len(alts) == 1:
            return _all_of(alts[0])
        texts = [" and ".join(alt) for alt in alts]
        sep = ", or " if any(len(alt) > 1 for alt in alts) else " or "
        return sep.join(texts[:-1]) + sep + texts[-1] if len(texts) == 2 else ", ".join(texts[:-1]) + sep + texts[-1]

    def order_noun(self, name: str) -> str:
        """An order as a noun: "Order a liver panel (...)" -> "the order for a liver panel";
        other descriptions -> "the order ‘Total bilirubin and INR now’"."""
        text = self.action_text(name, full=False)
        m = re.match(r"(?i)order\s+(.+)", text)
        return f"the order for {m.group(1)}" if m else f"the order ‘{text}’"

    def condition_text(self, name: str) -> str:
        """A boolean let as a rule reads it: its description up to a parenthesis or a colon
        ("significant liver injury (CTCAE grade 3+, ...)" -> "significant liver injury"; the
        key has the whole), in quotes when it holds an "and", an "or" or a comma (‘a bilirubin,
        ALP or INR rise’), so that it reads as one condition; its name in words when it has no
        description."""
        desc = " ".join(((self.lets.get(name) or {}).get("description") or "").split())
        head = re.split(r" \(|: ", desc, maxsplit=1)[0]
        text = (head if len(head) >= 8 else desc) if desc else humanise(name)
        if re.search(r",|;|\b(and|or)\b", text):
            return f"‘{text}’"
        return text

    def reads_as_code(self, name: str) -> bool:
        """Is a let's description written in the protocol's code rather than in words (`tx
        >= 3 x ULN with ...`: an operator, a numeric let's name, a name with an underscore)?
        Then a rule reads its definition, in words, instead."""
        desc = self.condition_text(name)  # the part a rule would show
        if re.search(r"[<>=!]=", desc):
            return True
        numeric = {n for n, d in self.lets.items() if d.get("type") == "number"}
        names = numeric | {n for n in [*self.lets, *self.facts, *self.vars] if "_" in n}
        return any(w in names for w in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", desc))

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

    def phrase(self, e: dict) -> Phrase:
        return self._phrases.visit(e)

    def expr(self, e: dict | None) -> str:
        """An expression tree as one line of clinician text."""
        if e is None:
            return "otherwise"
        return self.phrase(e).text

    def disjuncts(self, e: dict) -> list[str]:
        """A top-level `or` as its alternatives (one per line in the key), else one line."""
        p = self.phrase(e)
        return list(p.alternatives) if p.alternatives else [p.text]

    def value(self, e: dict) -> str:
        """A numeric expression on its own (a numeric let's definition in the key)."""
        p = self.phrase(e)
        if p.ratio is not None:
            return f"{p.text}, in multiples of {'its' if p.ratio.quant is None else 'their'} ULN"
        return p.text

    # ------------------------------------------------------------ actions

    show_variables = True
    """Whether `set` actions become lines ("Record: ..."); the printed chart hides them unless
    asked (`rxwatch render --show-variables`)."""

    def action_lines(self, actions: list[dict], full: bool = True) -> list[Line]:
        """Actions as lines, conditional ones with their condition ("if ...", "otherwise")."""
        out: list[Line] = []
        self._lines(actions, [], out, full)
        return out

    def _if(self, a: dict, conds: list[str], out: list[Line], full: bool, lead: str = "if") -> None:
        """An `if`: its branch under "if X"; an `else if` chain reads "otherwise, if Y", and its
        last `else` "otherwise" (never "otherwise, otherwise")."""
        cond = self.expr(a["cond"])
        self._lines(a["then"], conds + [f"{lead} {cond}"], out, full)
        other = a["else"]
        if not other:
            return
        if a["then"] and len(other) == 1 and other[0]["kind"] == "if":
            self._if(other[0], conds, out, full, "otherwise, if")
        else:
            self._lines(other, conds + ["otherwise" if a["then"] else f"unless {cond}"], out, full)

    def _lines(self, actions, conds: list[str], out: list[Line], full: bool) -> None:
        when = ", ".join(conds)
        for a in actions:
            k = a["kind"]
            cites = list(a.get("citations") or ())
            if k == "do":
                text = self.action_text(a["action"], full)
                w = window(a.get("window"))
                out.append(Line(f"{text}, {w}" if w else text, when, list(a.get("sources", ())), [], "do",
                                self.fulfilled_by(a["action"]), cites, self.effect_text(a["action"])))
            elif k == "one_of":
                opts = [self.action_text(o, full) for o in a["options"]]
                w = window(a.get("window"))
                text = " OR ".join(opts) + (f", {w}" if w else "")
                alts = []
                for alt in a.get("alternatives") or ():
                    sub: list[Line] = []
                    self._lines(alt.get("actions") or (), [], sub, full)
                    alts.append({"text": self.action_text(alt["action"], full), "action": alt["action"],
                                 "effect": self.effect_text(alt["action"]), "target": alt.get("target"),
                                 "stay": bool(alt.get("stay")), "lines": sub})
                out.append(Line(text, when, list(a.get("sources", ())), opts, "one_of", "", cites, "", alts))
            elif k == "set":
                if self.show_variables:
                    out.append(Line(self._set_text(a), when, list(a.get("sources", ())), [], "set", "", cites))
            elif k == "if":
                self._if(a, conds, out, full)

    def _set_text(self, a: dict) -> str:
        name = a["var"]
        decl = self.vars.get(name) or {}
        what = decl.get("description") or humanise(name)
        v = self.phrase(a["value"])
        if v.truth is not None:
            return f"Record: {what}" if v.truth else f"Record no longer: {what}"
        return f"Set {humanise(name)} to {v.text}"


class _Brief:
    """A grade's definition in a few words, for the one-line legend under the chart's title:
    `1 < tx <= 3` -> "ALT or AST >1–3× ULN"; the subject and "ULN" are said once for the
    whole line ("moderate >3–5×"); `known(X)` beside a comparison of X, and the exemptions
    (`not gilbert_exempt`, `not anticoagulated`), are left to the key, which has the exact
    definitions; a condition inside reads as its own brief definition."""

    def __init__(self, labels: Labels):
        self.L = labels
        self.main: str | None = None  # the subject said first: later comparisons on it omit it
        self.uln_said = False

    def text(self, e: dict, top: bool = True) -> str | None:
        op = e.get("op")
        if op == "compare":
            return self._compare(e)
        if op == "call" and e.get("func") == "known":
            return None
        if op == "not":
            arg = e["arg"]
            if arg.get("op") in ("let", "fact", "var") or (arg.get("op") == "call" and arg.get("func") == "known"):
                return None  # an exemption or a presence check: in the key
            return self.L.expr(e)
        if op == "let":
            let = self.L.lets.get(e["name"]) or {}
            if let.get("type") == "bool" and let.get("expr") is not None:
                return self.text(let["expr"], top=False) or self.L.condition_text(e["name"])
            return self.L.expr(e)
        if op == "and":
            parts = [p for p in (self.text(a, top=False) for a in e["args"]) if p]
            if not parts:
                return None
            return parts[0] + (" with " + " and ".join(parts[1:]) if len(parts) > 1 else "")
        if op == "or":
            parts = [p for p in (self.text(a, top=False) for a in e["args"]) if p]
            merged: list[str] = []
            for p in parts:  # "≥3× with TBIL >2×", "≥3× with INR >1.5" -> "≥3× with TBIL >2× or INR >1.5"
                head, sep, rest = p.partition(" with ")
                if sep and merged and merged[-1].startswith(head + " with "):
                    merged[-1] += " or " + rest
                else:
                    merged.append(p)
            return (", or " if top else " or ").join(merged) if merged else None
        return self.L.expr(e)

    def _compare(self, e: dict) -> str:
        L = self.L
        ps = [L.phrase(a) for a in e["args"]]
        movers = [i for i, p in enumerate(ps) if not p.const]
        if len(movers) != 1 or ps[movers[0]].since is not None:
            return L.expr(e)
        i = movers[0]
        subj = ps[i]
        pairs: list[tuple[str, Phrase]] = []
        for j, o in enumerate(e["ops"]):
            if j + 1 == i:
                pairs.append((FLIP[o], ps[j]))
            elif j == i:
                pairs.append((o, ps[j + 1]))
        pairs.sort(key=lambda pair: 0 if pair[0] in UP else 1)
        if any(k.enum for _, k in pairs):
            return L.expr(e)
        ratio = subj.ratio is not None
        name = _subject(subj.ratio, "any" if pairs[0][0] in UP else "all") if ratio else subj.at(SUM)
        unit = "×" if ratio else ""
        if len(pairs) == 2 and pairs[0][0] in UP and pairs[1][0] == "<=":
            bound = f"{OPS[pairs[0][0]]}{pairs[0][1].text}–{pairs[1][1].text}{unit}"
        else:
            bound = " and ".join(f"{OPS[o]}{k.text}{unit}" for o, k in pairs)
        if ratio and not self.uln_said:
            bound += " ULN"
            self.uln_said = True
        elif not ratio and subj.unit and subj.unit.strip() not in ("", "1"):
            bound += subj.unit
        if self.main is None:
            self.main = name
        elif name == self.main:
            return bound
        return f"{name} {bound}"


def grades_line(labels: Labels, grades: list[tuple[str, list[dict]]]) -> str:
    """The grades as one line: "mild ALT or AST >1–3× ULN; moderate >3–5×; severe >5×, ...";
    `grades`: (word, the conditions that define it) from the mildest to the most severe."""
    brief = _Brief(labels)
    parts = []
    for word, conds in grades:
        texts = [t for t in (brief.text(c) for c in conds) if t]
        parts.append(f"{word} {', '.join(texts)}" if texts else word)
    return "; ".join(parts)
