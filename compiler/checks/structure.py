"""The shape of the state machine and the hygiene of citations (E4xx, W5xx)."""

from __future__ import annotations

from .. import ast
from ..diagnostics import Diagnostics, did_you_mean
from ..symbols import Symbols, all_rules, expand, leading_choice, rule_targets, walk_actions, walk_expr

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
    _nesting(module, sym, diags)
    for st in module.states:
        _handlers(st, sym, diags)
    _sibling_tracks(module, sym, diags)
    _blocks(module, sym, diags)
    _choices(module, diags)
    _effects(module, sym, diags)
    _point_windows(module, diags)
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
    initial = [s for s in module.top if s.kind == "initial"]
    if not initial and module.top:
        first = module.top[0]
        diags.error(first.name.span, "E401", f"no initial state; mark the state where the pathway starts with 'initial state', e.g. 'initial state {first.name.text}'")
    elif not module.states:
        from ..span import Span

        diags.error(Span(module.path, 1, 1, 1, 1), "E401", "the protocol declares no states; it needs at least an 'initial state'")
    for extra in initial[1:]:
        diags.error(extra.name.span, "E402", f"a second initial state; '{initial[0].name.text}' (line {initial[0].span.line}) is already initial")


def _nesting(module: ast.Module, sym: Symbols, diags: Diagnostics) -> None:
    """The statechart's shape: terminal states at the top level only (E409), a parallel state
    holds tracks only (E410), every track holds states (E411), one `initial` per parent (E402)."""
    for st in module.states:
        if st.kind == "terminal" and sym.parent.get(st.name.text) is not None and sym.states.get(st.name.text) is st:
            diags.error(st.name.span, "E409", f"terminal state '{st.name.text}' is nested in '{sym.parent[st.name.text]}'; "
                                              "a terminal state ends the whole pathway, so it must be declared at the top level")
        elif st.kind == "terminal" and (st.states or st.tracks):
            inner = (st.states or st.tracks)[0]
            diags.error(inner.name.span, "E409", f"terminal state '{st.name.text}' ends the pathway and cannot contain "
                                                 f"{'states' if st.states else 'tracks'}; drop 'terminal' or move '{inner.name.text}' out")
        if st.tracks and st.states:
            inner = st.states[0]
            diags.error(inner.name.span, "E410", f"state '{st.name.text}' has tracks, so it is a parallel state: '{inner.name.text}' "
                                                 f"must be inside one of its tracks ({', '.join(t.name.text for t in st.tracks)})")
        _one_initial(st.name.text, st.states, diags)
    for tr in module.tracks:
        if not tr.states:
            diags.error(tr.name.span, "E411", f"track '{tr.name.text}' has no states; a track is a region of its parallel state "
                                              "and is always in one of its own states")
        _one_initial(tr.name.text, tr.states, diags)


def _one_initial(parent: str, states, diags: Diagnostics) -> None:
    marked = [s for s in states if s.kind == "initial"]
    for extra in marked[1:]:
        diags.error(extra.name.span, "E402", f"a second initial state in '{parent}'; '{marked[0].name.text}' "
                                             f"(line {marked[0].span.line}) is already its initial state")


def _sibling_tracks(module: ast.Module, sym: Symbols, diags: Diagnostics) -> None:
    """E412: a rule written in one track of a parallel state may not lead into another track of
    the same parallel state (each track moves on its own; to move a sibling, leave the parallel
    state or use a handler of the parallel state itself)."""
    for st in module.states:
        tracks = [a for a in sym.ancestors(st.name.text) if a in sym.tracks]
        if not tracks:
            continue
        for h in st.handlers:
            for item in h.items:
                if isinstance(item, ast.Rule):
                    for t in rule_targets(item):
                        _sibling_target(st.name.text, t, tracks, sym, diags)
                elif item.block.text in sym.blocks:  # one finding per `use`, located at it
                    targets = [t for r in sym.blocks[item.block.text].rules for t in rule_targets(r)]
                    for t in targets:
                        if _sibling_target(st.name.text, t, tracks, sym, diags, use=item):
                            break


def _sibling_target(source: str, target: ast.Name | None, tracks: list[str], sym: Symbols, diags: Diagnostics,
                    use: ast.Use | None = None) -> bool:
    if target is None or target.text not in sym.states:
        return False
    up = sym.ancestors(target.text)
    for tr in tracks:
        par = sym.parent.get(tr)
        if par in up and tr not in up:
            other = next((a for a in up if sym.parent.get(a) == par), None)
            if other is None or other not in sym.tracks:
                continue  # the target stands in the parallel state itself, in no track: E410 says so
            where = target.span if use is None else use.block.span
            via = "" if use is None else f"a rule of block '{use.block.text}' (line {target.span.line}) leads from it to '{target.text}': "
            diags.error(where, "E412", f"{via}'{source}' is in track '{tr}' of '{par}', and '{target.text}' in its sibling track "
                                       f"'{other}': a track cannot move another; put the rule on '{par}' or target "
                                       "a state outside it")
            return True
    return False


def _amount(n: int, unit: str) -> str:
    """`3 months`, `1 week`: a duration as an author writes it."""
    return f"{n} {unit[:-1] if n == 1 else unit}"


# the fewest and the most days a duration can be (calendar months and years vary)
_DAYS = {"days": (1, 1), "weeks": (7, 7), "months": (28, 31), "years": (365, 366)}


def _point_windows(module: ast.Module, diags: Diagnostics) -> None:
    """E418: `due 3 months` (or `every 3 months`) is a point in time; it needs the protocol's
    `schedule tolerance` to become a window. W506: a tolerance at least as long as the point
    makes the window open on or before the day of the action."""
    tolerance = next((s for s in module.settings if s.kind == "tolerance"), None)
    actions = [a for st in module.states for a in walk_actions(st.entry)]
    actions += [a for _owner, r in all_rules(module) for a in walk_actions(r.actions)]
    for a in actions:
        w = getattr(a, "window", None)
        if w is None or not w.point:
            continue
        if tolerance is not None:
            d = tolerance.duration
            if d.amount * _DAYS[d.unit][0] >= w.start * _DAYS[w.unit][1]:
                word = "every" if w.every else "due"
                diags.warning(w.span, "W506", f"'{word} {_amount(w.start, w.unit)}' give or take the schedule tolerance of "
                                              f"{_amount(d.amount, d.unit)} (line {tolerance.span.line}) opens on or before the day it is ordered; "
                                              "give a range instead, or a longer delay")
            continue
        if w is not None and w.point:
            word = "every" if w.every else "due"
            diags.error(w.span, "E418", f"'{word} {_amount(w.start, w.unit)}' is a point in time, and the protocol gives no 'schedule "
                                        f"tolerance': add one (e.g. 'schedule tolerance 2 weeks': the window is then "
                                        f"{_amount(w.start, w.unit)} give or take 2 weeks) or write a range "
                                        f"('{word} {max(w.start - 1, 0)}..{w.start + 1} {w.unit}')")


def _effects(module: ast.Module, sym: Symbols, diags: Diagnostics) -> None:
    """E417: the dose level an action names (`starts D at L`, `resumes D at L`, `doses D L`) is
    one of the drug's levels."""
    from .types import level_text

    for action in module.actions:
        e = action.effect
        drug = sym.drugs.get(e.drug.text) if e is not None else None
        if drug is None or e.level is None:
            continue
        levels = [lv.value for lv in drug.levels]
        shown = ", ".join(level_text(v) for v in levels) + (f" {drug.unit}" if drug.unit else "")
        if not levels:
            diags.error(e.level.span, "E417", f"'{action.name.text}' names dose level {level_text(e.level.value)} of "
                                              f"'{drug.name.text}', which declares no dose levels; add 'doses ...' to it")
        elif e.level.value not in levels or isinstance(e.level.value, str) != isinstance(levels[0], str):
            hint = did_you_mean(e.level.value, [v for v in levels if isinstance(v, str)]) if isinstance(e.level.value, str) else ""
            diags.error(e.level.span, "E417", f"{level_text(e.level.value)} is not a dose level of '{drug.name.text}' "
                                              f"(its levels: {shown}){hint}")


def _choices(module: ast.Module, diags: Diagnostics) -> None:
    """Choices with consequences: alternatives with targets only directly in a rule's actions
    (E415), one such choice per rule (E416), and a rule without a target only with one (E414)."""
    for _owner, r in all_rules(module):
        leading = [a for a in r.actions if isinstance(a, ast.OneOf) and a.leads]
        for extra in leading[1:]:
            diags.error(extra.span, "E416", f"a second choice whose alternatives lead somewhere in this rule; the one at line "
                                            f"{leading[0].span.line} already decides where it leads: merge them into one")
        if not r.has_target and not leading:
            diags.error(r.span, "E414", "this rule says nothing about where it leads; add '-> STATE' or 'stay' after its guard "
                                        "(only a rule whose actions hold 'do one of { ACTION -> STATE ... }' may leave it out)")
        nested = [a for top in r.actions for a in walk_actions([top]) if a is not top]
        _misplaced(nested, "inside an 'if' or another choice of a rule", diags)
    for st in module.states:
        _misplaced(list(walk_actions(st.entry)), f"in the 'on entry' of '{st.name.text}'", diags)


def _misplaced(actions, where: str, diags: Diagnostics) -> None:
    for a in actions:
        if isinstance(a, ast.OneOf) and a.leads:
            alt = next(x for x in a.alternatives if x.target is not None or x.stay)
            diags.error((alt.target or alt.action).span if alt.target else alt.span, "E415",
                        f"an alternative that leads somewhere ('{alt.action.text} {'-> ' + alt.target.text if alt.target else 'stay'}') "
                        f"{where}: only a choice written directly in a rule's actions may choose where the rule leads")


def _blocks(module: ast.Module, sym: Symbols, diags: Diagnostics) -> None:
    """Rule blocks: no `use` inside a block (E413), no rule after a block's `otherwise`
    (E406), and every block used somewhere (W505)."""
    used = {u.block.text for st in module.states for h in st.handlers for u in h.items if isinstance(u, ast.Use)}
    for b in module.blocks:
        for u in b.uses:
            diags.error(u.span, "E413", f"'use {u.block.text}' inside the rule block '{b.name.text}': a block holds rules only; "
                                        f"write the rules of '{u.block.text}' out, or use both blocks in the handler")
        for i, r in enumerate(b.rules[:-1]):
            if r.guard is None:
                diags.error(b.rules[i + 1].span, "E406", "a rule after 'otherwise' can never fire; 'otherwise' must be the last rule of a block")
                break
        if b.name.text not in used and sym.blocks.get(b.name.text) is b:
            diags.warning(b.name.span, "W505", f"rule block '{b.name.text}' is used by no handler; add 'use {b.name.text}' "
                                               "where its rules apply, or remove it")


def _handlers(st: ast.State, sym: Symbols, diags: Diagnostics) -> None:
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
        _after_otherwise(h, sym, diags)


def _after_otherwise(h: ast.Handler, sym: Symbols, diags: Diagnostics) -> None:
    """E406 over the rules as first match sees them, `use`d blocks written out: nothing after
    an `otherwise`, whether the handler's own or the last rule of a block it uses."""
    items = h.items or h.rules
    for i, item in enumerate(items[:-1]):
        nxt = items[i + 1]
        if isinstance(item, ast.Rule) and item.guard is None:
            what = "a rule" if isinstance(nxt, ast.Rule) else f"'use {nxt.block.text}'"
            diags.error(nxt.span, "E406", f"{what} after 'otherwise' can never fire; 'otherwise' must be the last rule of a handler")
            return
        block = sym.blocks.get(item.block.text) if isinstance(item, ast.Use) else None
        if block is not None and block.rules and block.rules[-1].guard is None:
            what = "a rule" if isinstance(nxt, ast.Rule) else f"'use {nxt.block.text}'"
            diags.error(nxt.span, "E406", f"{what} after 'use {item.block.text}', whose last rule is 'otherwise', can never fire")
            return


def default_child(sym: Symbols, name: str) -> str | None:
    """The child a compound state or a track enters by default: the one marked `initial`, else
    the first (None: an atomic or a parallel state)."""
    if name in sym.states and sym.states[name].tracks:
        return None
    kids = [k for k in sym.children.get(name, ()) if k in sym.states]
    return next((k for k in kids if sym.states[k].kind == "initial"), kids[0] if kids else None)


def entered(sym: Symbols, target: str) -> list[str]:
    """The states and tracks that entering `target` makes active: its ancestors, the tracks of
    every parallel state on the way (each at its default state), and the default descendants of
    `target` itself."""
    out: list[str] = []
    path = [target, *sym.ancestors(target)]
    out.extend(path)
    todo: list[str] = [target]
    for a in path[1:]:
        if a in sym.states and sym.states[a].tracks:
            todo.extend(t for t in sym.children.get(a, ()) if t not in path)
    while todo:
        n = todo.pop()
        if n not in out:
            out.append(n)
        if n in sym.states and sym.states[n].tracks:
            todo.extend(sym.children.get(n, ()))
        else:
            d = default_child(sym, n)
            if d is not None:
                todo.append(d)
    return out


def _reachability(module: ast.Module, sym: Symbols, diags: Diagnostics) -> None:
    initial = [s for s in module.top if s.kind == "initial"]
    if not initial:
        return
    seen: set[str] = set()
    stack: list[ast.State] = []

    def enter(name: str) -> None:
        for n in entered(sym, name):
            if n not in seen:
                seen.add(n)
                if n in sym.states:
                    stack.append(sym.states[n])

    enter(initial[0].name.text)
    while stack:
        st = stack.pop()
        for h in st.handlers:
            for r, _block, _i in expand(h, sym):
                for t in rule_targets(r):
                    if t.text in sym.states and t.text not in seen:
                        enter(t.text)
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
    for b in module.blocks:
        for r in b.rules:
            if not _rule_cites(sym, r):
                diags.warning(r.span, "W501", f"this rule of block '{b.name.text}' cites no source; add 'cite SOURCE' after its target")


def _rule_cites(sym: Symbols, r: ast.Rule) -> bool:
    return bool(r.cite) or (r.guard is not None and bool(let_sources(sym, r.guard))) \
        or any(getattr(a, "cite", ()) for a in walk_actions(r.actions))


def _cited_by_enclosing(actions, target) -> bool:
    for a in actions:
        if isinstance(a, ast.If):
            inside = list(walk_actions(a.then)) + list(walk_actions(a.orelse))
            if any(x is target for x in inside):
                return bool(a.cite) or _cited_by_enclosing(a.then, target) or _cited_by_enclosing(a.orelse, target)
    return False
