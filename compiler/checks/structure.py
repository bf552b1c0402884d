"""The shape of the state machine and the hygiene of citations (E4xx, W5xx)."""

from __future__ import annotations

from .. import ast
from ..diagnostics import Diagnostics, did_you_mean
from ..symbols import Symbols, walk_actions, walk_expr

SOURCE_KINDS = (
    "label",
    "guideline",
    "grading",
    "regulatory-guidance",
    "review",
    "case-report",
    "trial",
    "ai-summary",
    "convention",
    "expert-opinion",
)
STATUSES = ("draft", "review", "approved")
SEVERITIES = ("none", "mild", "moderate", "severe")


def check(module: ast.Module, sym: Symbols, diags: Diagnostics) -> None:
    _meta(module, diags)
    _initial(module, diags)
    for st in module.states:
        _handlers(st, diags)
    _reachability(module, sym, diags)
    _citations(module, sym, diags)


def _meta(module: ast.Module, diags: Diagnostics) -> None:
    for p in module.protocol[:1]:
        if p.status is not None and p.status.text not in STATUSES:
            diags.warning(p.status.span, "W503", f"status '{p.status.text}' is not one of {', '.join(STATUSES)}{did_you_mean(p.status.text, STATUSES)}")
    for s in module.sources:
        if s.kind is not None and s.kind.text not in SOURCE_KINDS:
            diags.warning(s.kind.span, "W502", f"source kind '{s.kind.text}' is not one of {', '.join(SOURCE_KINDS)}{did_you_mean(s.kind.text, SOURCE_KINDS)}")
        if s.kind is None:
            diags.warning(s.id.span, "W502", f"source '{s.id.text}' has no kind; say what it is (kind {' | '.join(SOURCE_KINDS[:4])} | ...)")


def _initial(module: ast.Module, diags: Diagnostics) -> None:
    initial = [s for s in module.states if s.kind == "initial"]
    if not initial and module.states:
        first = module.states[0]
        diags.error(first.name.span, "E401", f"no initial state; mark the state where the pathway starts with 'initial state', e.g. 'initial state {first.name.text}'")
    elif not module.states:
        from ..span import Span

        diags.error(Span(module.path, 1, 1, 1, 1), "E401", "the protocol declares no states; it needs at least an 'initial state'")
    for extra in initial[1:]:
        diags.error(extra.name.span, "E402", f"a second initial state; '{initial[0].name.text}' (line {initial[0].span.line}) is already initial")


def _handlers(st: ast.State, diags: Diagnostics) -> None:
    if st.severity is not None and st.severity.text not in SEVERITIES:
        sev = st.severity
        diags.error(sev.span, "E408", f"severity '{sev.text}' is not one of {', '.join(SEVERITIES)}{did_you_mean(sev.text, SEVERITIES)}")
    if st.kind == "terminal" and st.handlers:
        diags.error(st.handlers[0].span, "E404", f"terminal state '{st.name.text}' ends the pathway and cannot have handlers; remove them or drop 'terminal'")
    seen: dict[tuple, ast.Handler] = {}
    for h in st.handlers:
        if h.trigger == "event":
            keys = [("event", n.text) for n in h.names]
        elif h.trigger == "fact":
            keys = [("fact", n.text) for n in h.names] or [("fact", "*")]
        elif h.trigger == "timer":
            keys = [("timer", h.delay.amount if h.delay else 0, h.delay.unit if h.delay else "", h.since.text if h.since else "")]
        else:
            keys = [("panel",)]
        for k in keys:
            if k in seen:
                what = {"event": f"event '{k[-1]}'", "fact": "fact changes" if k[-1] == "*" else f"fact '{k[-1]}'", "panel": "panels", "timer": "this timer"}[k[0]]
                diags.error(h.span, "E405", f"state '{st.name.text}' already handles {what} at line {seen[k].span.line}")
            else:
                seen[k] = h
        for i, r in enumerate(h.rules):
            if r.guard is None and i + 1 < len(h.rules):
                diags.error(h.rules[i + 1].span, "E406", "a rule after 'otherwise' can never fire; 'otherwise' must be the last rule of a handler")
                break


def _reachability(module: ast.Module, sym: Symbols, diags: Diagnostics) -> None:
    initial = [s for s in module.states if s.kind == "initial"]
    if not initial:
        return
    seen = {initial[0].name.text}
    stack = [initial[0]]
    while stack:
        st = stack.pop()
        for h in st.handlers:
            for r in h.rules:
                if r.target is not None and r.target.text in sym.states and r.target.text not in seen:
                    seen.add(r.target.text)
                    stack.append(sym.states[r.target.text])
    for st in module.states:
        if st.name.text not in seen and sym.states.get(st.name.text) is st:
            diags.error(st.name.span, "E403", f"state '{st.name.text}' cannot be reached from the initial state '{initial[0].name.text}'")


def let_sources(sym: Symbols, expr) -> set[str]:
    """Sources cited by the lets an expression uses, transitively."""
    out: set[str] = set()
    for e in walk_expr(expr):
        if isinstance(e, ast.Ref) and e.name in sym.lets:
            out |= _sources_of_let(sym, e.name)
    return out


def _sources_of_let(sym: Symbols, name: str) -> frozenset[str]:
    """A let's own citations and those of every let it uses (memoised on the table)."""
    memo = sym.let_sources
    if name not in memo:
        memo[name] = frozenset()  # a cycle (E208) ends here
        out: set[str] = set()
        seen = {name}
        stack = [sym.lets[name].expr]
        out.update(c.text for c in sym.lets[name].cite)
        while stack:
            for e in walk_expr(stack.pop()):
                if isinstance(e, ast.Ref) and e.name in sym.lets and e.name not in seen:
                    seen.add(e.name)
                    out.update(c.text for c in sym.lets[e.name].cite)
                    stack.append(sym.lets[e.name].expr)
        memo[name] = frozenset(out)
    return memo[name]


def _citations(module: ast.Module, sym: Symbols, diags: Diagnostics) -> None:
    for st in module.states:
        for a in walk_actions(st.entry):
            if isinstance(a, (ast.Do, ast.OneOf)) and not a.cite and not _cited_by_enclosing(st.entry, a):
                what = a.action.text if isinstance(a, ast.Do) else "one of " + ", ".join(o.text for o in a.options)
                diags.warning(a.span, "W501", f"entry action '{what}' of state '{st.name.text}' cites no source; add 'cite SOURCE'")
        for h in st.handlers:
            for r in h.rules:
                if r.cite:
                    continue
                if r.guard is not None and let_sources(sym, r.guard):
                    continue
                if any(getattr(a, "cite", ()) for a in walk_actions(r.actions)):
                    continue
                diags.warning(r.span, "W501", f"this rule of state '{st.name.text}' cites no source; add 'cite SOURCE' after its target")


def _cited_by_enclosing(actions, target) -> bool:
    for a in actions:
        if isinstance(a, ast.If):
            inside = list(walk_actions(a.then)) + list(walk_actions(a.orelse))
            if any(x is target for x in inside):
                return bool(a.cite) or _cited_by_enclosing(a.then, target) or _cited_by_enclosing(a.orelse, target)
    return False
