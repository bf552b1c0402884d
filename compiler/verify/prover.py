"""One z3 solver per protocol, and the findings the analyses report.

One Solver per protocol; its base holds the domain constraints of the symbols (smt.Encoder
queues them as it creates symbols, `sync` hands them over). A handler's guards are defined
once as literals in a frame of their own (`scope`, `define`), and each question about them is
a check under assumptions (`holds`); other questions push their formulas and pop them. A satisfiable
query gives a model; `Prover.witness` rounds its numbers to readable values (3, 2.5, 0.1)
whenever the rounded value still satisfies the query, so an example reads "tx = 3", not
"tx = 2.999...". The rounding asks the solver again, so the example is still exact.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
import z3

from . import smt

Z3_RLIMIT = 50_000_000
"""One query's budget, in z3's own resource units (`rlimit`), not in seconds: a wall-clock
timeout stops wherever the machine's speed and load left it, so a busy machine could report a
W609 (or, in `rxwatch test --mutants`, a survivor) that an idle one does not. Counted work stops
at the same point on every run and machine. The largest query of the shipped protocols'
verification and mutation runs takes under 0.3 million units (a few milliseconds); 50 million
is about a second of z3's work on the 2-core VM. A query that runs out is reported as W609,
never guessed."""


def budget(solver, units: int | None = None):
    """`solver` (a z3 Solver or Optimize) with its query budget set: `units` of z3's work, by
    default Z3_RLIMIT (every z3 solver of the verifier, of the mutants' equivalence checks and
    of `rxwatch cases` is made through this)."""
    solver.set("rlimit", Z3_RLIMIT if units is None else units)
    return solver


def reason(solver) -> str:
    """Why z3 gave up, in the report's words."""
    why = solver.reason_unknown()
    return "its budget of work ran out" if "resource limit" in why or why == "canceled" else why or "unknown"


@dataclass
class Finding:
    code: str
    span: dict  # a span dict of the graph (path, line, column, end_line, end_column)
    message: str
    example: smt.Example | None = None
    rules: tuple = ()  # the rule keys (edge keys) concerned, for tests and tools
    regions: object = None  # E601: regions.Regions, every region of the gap

    @property
    def severity(self) -> str:
        return "error" if self.code.startswith("E") else "warning"

    @property
    def line(self) -> int:
        return int(self.span.get("line", 0))


class Unknown(Exception):
    """z3 could not decide a query (its budget ran out, or non-linear arithmetic it gave up on)."""


class Prover:
    def __init__(self, enc: smt.Encoder) -> None:
        self.enc = enc
        self.solver = budget(z3.Solver(ctx=enc.ctx))
        self.queries = 0
        self._names = 0

    def sync(self) -> None:
        """Give the solver the domains of the symbols created so far (at the base level)."""
        dom = self.enc.take_domain()
        if dom:
            self.solver.add(*dom)


    @contextmanager
    def scope(self):
        """A frame for one handler's definitions (`define`); translate its guards first."""
        self.sync()
        self.solver.push()
        try:
            yield self
        finally:
            self.solver.pop()

    def define(self, formula):
        """A fresh literal that is true exactly when `formula` holds (in the current scope)."""
        self._names += 1
        b = z3.Bool(f"def:{self._names}", self.enc.ctx)
        self.solver.add(b == formula)
        return b

    def holds(self, *literals) -> bool:
        """Can the `literals` (defined ones, or their negations) hold at once? Raises Unknown."""
        r = self.solver.check(*literals)
        self.queries += 1
        if r == z3.unknown:
            raise Unknown(reason(self.solver))
        return r == z3.sat

    def model(self, *literals):
        """A model of the `literals`, or None when they cannot hold. Raises Unknown."""
        r = self.solver.check(*literals)
        self.queries += 1
        if r == z3.unknown:
            raise Unknown(reason(self.solver))
        return self.solver.model() if r == z3.sat else None

    def witness(self, formulas: list, ins: smt.Inputs, probes: list = ()) -> smt.Example | None:
        """An example for `formulas` (None when they cannot hold), with rounded numbers;
        `probes`: formulas whose truth in the example's model goes to `Example.probes`."""
        s = self.solver
        level = s.num_scopes()
        if level == 0:
            self.sync()
        s.push()
        try:
            s.add(*formulas)
            r = s.check()
            self.queries += 1
            if r == z3.unknown:
                raise Unknown(reason(s))
            if r == z3.unsat:
                return None
            model = s.model()
            for x in self.enc.tweakable(ins):
                for candidate in _round(model.eval(x, model_completion=True), self.enc):
                    s.push()  # kept (until the final pops) when the rounded value fits
                    s.add(x == candidate)
                    if s.check() == z3.sat:
                        model = s.model()
                        break
                    s.pop()
            return self.enc.example(model, ins, probes)
        finally:
            while s.num_scopes() > level:
                s.pop()


def _round(value, enc: smt.Encoder) -> list:
    """Rounder values to try in place of a model value: whole, halves, tenths, hundredths."""
    if z3.is_int_value(value):
        return []
    try:
        x = smt._frac(value)
    except smt.VerifyError:
        return []
    out: list = []
    for step in (Fraction(1), Fraction(1, 2), Fraction(1, 10), Fraction(1, 100)):
        lo = (x // step) * step
        hi = lo if lo == x else lo + step
        for r in sorted((lo, hi), key=lambda r: (abs(r - x), r)):
            if r != x and r not in out:
                out.append(r)
        if lo == x:
            break
    return [enc.real(r) for r in out if r >= 0 or x < 0]


def span_of(d: dict):
    from ..span import Span

    return Span(d.get("path", ""), int(d.get("line", 0)), int(d.get("column", 0)), int(d.get("end_line", 0)), int(d.get("end_column", 0)))


def _is_input(ex: smt.Example, name: str) -> bool:
    return name in ex.panel or name in ex.facts or name in ex.vars or name in ex.drugs or name.startswith(("since(", "fulfilled(")) or name == "since entry"


def describe(ex: smt.Example | None, derived: bool = True) -> str:
    """'tx = 3, bili = 2.5 (ALT 120 U/L, AST missing)'; the inputs alone without `derived`."""
    if ex is None:
        return ""
    values = [f"{n} = {v}" for n, v in ex.shown if not _is_input(ex, n)] if derived else []
    inputs = []
    for n, v in ex.shown:
        if n in ex.panel:
            inputs.append(f"{n} {v}")
        elif n.startswith("since(") and v == "never recommended":
            inputs.append(f"{n[6:-1]} {v}")
        elif _is_input(ex, n):
            inputs.append(f"{n} = {v}")
    if values and inputs:
        return f"{', '.join(values)} ({', '.join(inputs)})"
    return ", ".join(values or inputs) or "any values"


def quote_rule(edge: dict) -> str:
    """`'when tx > 3' (line 12)`."""
    what = "otherwise" if edge.get("otherwise") else f"when {edge.get('because', '')}"
    return f"'{what}' (line {edge['span']['line']})"

