"""Static analysis of a checked protocol (E6xx / W6xx): see docs/verification.md.

    from rxwatch.compiler.verify import analyse
    for f in analyse(graph):          # graph: the compiled networkx MultiDiGraph
        print(f.code, f.line, f.message, f.example)

The passes, each its own module:

- `hygiene`: unused declarations, actions without a description, AI-only support (no solver);
- `timing.windows`, `timing.timers`: due windows, timers that are never armed (no solver);
- `tables`: each handler as a decision table: gaps, overlaps, shadowed rules, guards that
  never hold (z3, through `smt`, the one module that gives guards their meaning, a visitor
  of the expression IR); every region of a gap (`regions`);
- `reach`: reachability through rules that can fire, dead ends, regions that never end;
- `timing.loops`: cycles of rules that fire on entry, in which no time passes (z3);
- `tracks`: drugs a region holds and nothing releases, labs a track reads and never orders.

Every analysis reads the statechart through `chart` (each atomic state's effective rules:
its own, then those it inherits; what a transition enters).

`explain(graph)` (for `rxwatch check --explain`) lists, for each handler that can be
unassessable (a guard unknown before any rule fires), every region of inputs where it is.

z3 is imported only here, when the analyses run; one Solver serves every query of a protocol.
"""

from __future__ import annotations

from ..diagnostics import Diagnostics

__all__ = ["analyse", "check", "explain", "explain_text"]


def analyse(graph, names: dict | None = None, limit: int | None = None) -> list:
    """Every finding (prover.Finding) of the analyses over the compiled graph, in line order.

    `names` maps (kind, name) to the span dict of a declaration's name, for sharper carets
    (check() builds it from the AST); without it, findings point at whole declarations.
    `limit`: the gap regions listed per handler (default regions.LIMIT)."""
    from . import hygiene, reach, regions, tables, timing, tracks
    from .chart import Chart
    from .prover import Finding, Prover, Unknown
    from .smt import Encoder, VerifyError

    names = names or {}
    out: list[Finding] = []
    dead: set[str] = set()  # rules that can never fire
    chart = Chart(graph)
    hygiene.check(graph, out, names)
    timing.windows(graph, out)
    timing.timers(graph, out, dead)
    try:
        enc = Encoder(graph, recommended=timing.recommended(graph))
        prover = Prover(enc)
        tables.check(graph, enc, prover, out, dead, regions.LIMIT if limit is None else limit, chart)
        reach.check(graph, dead, out, names, chart)
        tracks.check(graph, chart, dead, out, reach.reached(chart, lambda e: e["id"] not in dead))
        timing.loops(graph, enc, prover, dead, out, chart)
    except Unknown as e:
        out.append(Finding("W609", _protocol_span(graph), f"the solver could not decide a question about this protocol ({e}); some analyses were not completed"))
    except VerifyError as e:
        out.append(Finding("W609", _protocol_span(graph), f"the verifier cannot read this protocol's graph: {e}"))
    except RecursionError:
        out.append(Finding("W609", _protocol_span(graph), "an expression is nested too deeply for the verifier; some analyses were not completed"))
    out.sort(key=lambda f: (f.span.get("line", 0), f.span.get("column", 0), f.code))
    return out


def explain(graph, limit: int | None = None) -> list:
    """The handlers of the compiled graph that can be unassessable (a guard unknown before any
    rule fires: nothing happens, and the trace says `unassessable`), each with every region of
    inputs where it is (tables.Unassessable: `.lines()`, `.to_dict()`), in line order.

    These are not errors: missing results are a fact of life, and the protocol may mean to
    wait for them. `rxwatch check --explain` prints them (`explain_text`)."""
    from . import regions, tables, timing
    from .prover import Prover
    from .smt import Encoder

    enc = Encoder(graph, recommended=timing.recommended(graph))
    out = tables.unassessable(graph, enc, Prover(enc), regions.LIMIT if limit is None else limit)
    out.sort(key=lambda u: u.line)
    return out


def explain_text(graph, limit: int | None = None) -> str:
    """The report of `rxwatch check --explain` for one protocol (see docs/verification.md)."""
    from .prover import Unknown
    from .smt import VerifyError

    path = graph.graph.get("path") or graph.graph.get("name") or "protocol"
    try:
        items = explain(graph, limit)
    except (Unknown, VerifyError) as e:
        return f"{path}: the unassessable inputs were not worked out ({e})"
    except RecursionError:
        return f"{path}: the unassessable inputs were not worked out (an expression is nested too deeply)"
    from . import tracks

    notes = tracks.holds_notes(graph)
    tail = ([f"{path}: drugs held by several tracks ({len(notes)} resume{'s' if len(notes) != 1 else ''} while another track may hold):",
             *(f"  - {n}" for n in notes)] if notes else [])
    if not items:
        return "\n".join([f"{path}: no handler can be unassessable: every guard is decided on every input it can get", *tail])
    regions = sum(len(u.regions.regions) for u in items)
    lines = [f"{path}: {len(items)} handler{'s' if len(items) != 1 else ''} can be unassessable "
             f"(a guard unknown before any rule fires: no transition, no actions, the trace says 'unassessable'); "
             f"{regions} region{'s' if regions != 1 else ''}:"]
    for u in items:
        lines.extend(u.lines())
    return "\n".join(lines + tail)


def check(module, graph, diags: Diagnostics) -> None:
    """Run every analysis over the compiled graph; findings go to `diags`."""
    from .prover import span_of

    if graph is None:
        return
    for f in analyse(graph, _name_spans(module)):
        (diags.error if f.severity == "error" else diags.warning)(span_of(f.span), f.code, f.message)


def _name_spans(module) -> dict:
    """(kind, name) -> the span dict of the name in its declaration (from the AST)."""
    if module is None:
        return {}
    out = {}
    for kind, items in (("lab", module.labs), ("fact", module.facts), ("var", module.vars), ("event", module.events), ("action", module.actions), ("let", module.lets), ("state", module.states)):
        for item in items:
            out.setdefault((kind, item.name.text), item.name.span.to_dict())
    for item in getattr(module, "drugs", ()) or ():
        out.setdefault(("drug", item.name.text), item.name.span.to_dict())
    for s in module.sources:
        out.setdefault(("source", s.id.text), s.id.span.to_dict())
    return out


def _protocol_span(graph) -> dict:
    path = graph.graph.get("path") or ""
    return {"path": path, "line": 1, "column": 1, "end_line": 1, "end_column": 1}
