"""Names: duplicate declarations and references to names that are not declared (E2xx)."""

from __future__ import annotations

from .. import ast
from ..diagnostics import Diagnostics, did_you_mean
from ..span import Span
from ..symbols import Symbols, all_rules, module_exprs, walk_actions, walk_expr

FUNCTIONS = {"max", "min", "uln", "xuln", "known", "since", "fulfilled", "held", "dose", "stopped", "started"}
# the names a declaration cannot take: the built-ins of the first language versions (the drug
# reads came later, and a protocol may already call a var `held`: a call has parentheses, a
# declared name never does, so the two cannot be confused)
RESERVED = FUNCTIONS - {"held", "dose", "stopped", "started"}


def check(module: ast.Module, sym: Symbols, diags: Diagnostics) -> None:
    _duplicates(module, diags)
    if len(module.protocol) == 0:
        diags.error(Span(module.path, 1, 1, 1, 1), "E207", "the file has no 'protocol NAME' declaration; start it with one")
    for extra in module.protocol[1:]:
        diags.error(extra.span, "E201", f"a second 'protocol' declaration; the first is at line {module.protocol[0].span.line}")

    for lab in module.labs:
        _cites(lab.cite, sym, diags)
    for item in (*module.facts, *module.vars, *module.events, *module.lets):
        _cites(item.cite, sym, diags)
    for drug in module.drugs:
        _cites(drug.cite, sym, diags)
    for owner in (*module.actions, *module.events):
        e = owner.effect
        if e is not None and e.drug.text not in sym.drugs:
            hint = did_you_mean(e.drug.text, sym.drugs)
            diags.error(e.drug.span, "E214", f"'{owner.name.text}' acts on '{e.drug.text}', which is not a declared drug{hint}" if hint or sym.drugs
                        else f"'{owner.name.text}' acts on '{e.drug.text}', which is not a declared drug; declare it with 'drug {e.drug.text} doses ...'")
    for action in module.actions:
        _cites(action.cite, sym, diags)
        for lab in action.orders:
            if lab.text not in sym.labs:
                diags.error(lab.span, "E205", f"action '{action.name.text}' orders '{lab.text}', which is not a declared lab{did_you_mean(lab.text, sym.labs)}")
        ordered = {n.text for n in action.orders}
        for alt in action.fulfilled_by or ():
            for lab in alt:
                if lab.text not in ordered:
                    hint = did_you_mean(lab.text, ordered)
                    diags.error(lab.span, "E210", f"'{action.name.text}' is fulfilled by '{lab.text}', which it does not order{hint}" if hint
                                else f"'{action.name.text}' is fulfilled by '{lab.text}', which it does not order; it orders {', '.join(sorted(ordered)) or 'no labs'}")
    first: dict[str, ast.Setting] = {}
    for setting in module.settings:
        _cites(setting.cite, sym, diags)
        if setting.kind in first:
            diags.error(setting.span, "E201", f"a second '{_SETTING_WORDS[setting.kind]}' declaration; the first is at line {first[setting.kind].span.line}")
        else:
            first[setting.kind] = setting

    for expr, _ctx in module_exprs(module):
        for e in walk_expr(expr):
            if isinstance(e, ast.Call):
                _call_names(e, sym, diags)

    for st in module.states:
        _actions(st.entry, sym, diags)
        for h in st.handlers:
            _handler(h, sym, diags)
            for item in h.items:
                if isinstance(item, ast.Use) and item.block.text not in sym.blocks:
                    b = item.block
                    hint = did_you_mean(b.text, sym.blocks)
                    diags.error(b.span, "E213", f"use of '{b.text}', which is not a rule block{hint}" if hint or sym.blocks
                                else f"use of '{b.text}', which is not a rule block; declare it with 'rules {b.text} {{ ... }}'")
    for _owner, r in all_rules(module):
        _cites(r.cite, sym, diags)
        _actions(r.actions, sym, diags)
        _target(r.target, sym, diags)

    _let_cycles(module, sym, diags)


_SETTING_WORDS = {"results": "results valid for", "reminders": "reminders every", "tolerance": "schedule tolerance"}


def _duplicates(module: ast.Module, diags: Diagnostics) -> None:
    seen: dict[str, tuple[str, ast.Name]] = {}
    for kind, items in (
        ("lab", module.labs),
        ("fact", module.facts),
        ("var", module.vars),
        ("event", module.events),
        ("action", module.actions),
        ("let", module.lets),
        ("drug", module.drugs),
    ):
        for item in items:
            n = item.name
            if n.text in RESERVED:
                diags.error(n.span, "E201", f"'{n.text}' is a built-in function and cannot be declared as {_a(kind)}")
            if n.text in seen:
                other_kind, other = seen[n.text]
                diags.error(n.span, "E201", f"'{n.text}' is already declared as {_a(other_kind)} at line {other.span.line}")
            else:
                seen[n.text] = (kind, n)
    for what, items in (("source", [s.id for s in module.sources]), ("state", [s.name for s in module.states]),
                        ("rule block", [b.name for b in module.blocks])):
        first: dict[str, ast.Name] = {}
        for n in items:
            if n.text in first:
                diags.error(n.span, "E201", f"{what} '{n.text}' is already declared at line {first[n.text].span.line}")
            else:
                first[n.text] = n
    states = {s.name.text: s.name for s in module.states}
    tracks: dict[str, ast.Name] = {}
    for tr in module.tracks:
        n = tr.name
        other = states.get(n.text) or tracks.get(n.text)
        if other is not None:
            what = "state" if n.text in states else "track"
            diags.error(n.span, "E211", f"'{n.text}' is already the name of a {what} at line {other.span.line}; "
                                        "state and track names are one namespace")
        else:
            tracks[n.text] = n
    for fact in (*module.facts, *module.vars):
        members: dict[str, ast.Name] = {}
        for m in fact.type.members if fact.type else ():
            if m.text in members:
                diags.error(m.span, "E201", f"'{m.text}' is listed twice in the members of '{fact.name.text}'")
            members[m.text] = m


def _a(kind: str) -> str:
    return ("an " if kind[0] in "aeiou" else "a ") + kind


def _cites(cite, sym: Symbols, diags: Diagnostics) -> None:
    for src in cite:
        if src.text not in sym.sources:
            diags.error(src.span, "E204", f"cites '{src.text}', which is not a declared source{did_you_mean(src.text, sym.sources)}")


def _expect(name: ast.Name, table: dict, kind: str, sym: Symbols, diags: Diagnostics, what: str) -> None:
    if name.text in table:
        return
    other = sym.kind_of(name.text)
    if other is not None:
        diags.error(name.span, "E206", f"{what} '{name.text}' must be a declared {kind}, but it is {_a(other)}")
    else:
        diags.error(name.span, "E202", f"{what} '{name.text}' is not a declared {kind}{did_you_mean(name.text, table)}")


def _actions(actions, sym: Symbols, diags: Diagnostics) -> None:
    for a in walk_actions(actions):
        if isinstance(a, ast.Do):
            _expect(a.action, sym.actions, "action", sym, diags, "action")
            _window_needs_order(a.action, a.window, sym, diags)
            _cites(a.cite, sym, diags)
        elif isinstance(a, ast.OneOf):
            for o in a.options:
                _expect(o, sym.actions, "action", sym, diags, "option")
                _window_needs_order(o, a.window, sym, diags)
            _cites(a.cite, sym, diags)
            for alt in a.alternatives:
                _target(alt.target, sym, diags)
        elif isinstance(a, ast.Set):
            _expect(a.var, sym.vars, "var", sym, diags, "set")
            _cites(a.cite, sym, diags)
        elif isinstance(a, ast.If):
            _cites(a.cite, sym, diags)


def _target(target: ast.Name | None, sym: Symbols, diags: Diagnostics) -> None:
    """A rule's (or a choice alternative's) `-> STATE`."""
    if target is not None and target.text in sym.tracks:
        diags.error(target.span, "E212", f"transition to '{target.text}', which is a track; a rule leads to a state "
                                         f"(a track of '{sym.parent.get(target.text)}' is entered with it)")
    elif target is not None and target.text not in sym.states:
        diags.error(target.span, "E203", f"transition to '{target.text}', which is not a state{did_you_mean(target.text, sym.states)}")


def _window_needs_order(name: ast.Name, window, sym: Symbols, diags: Diagnostics) -> None:
    decl = sym.actions.get(name.text)
    if window is not None and decl is not None and not decl.orders:
        diags.error(window.span, "E209", f"'{name.text}' orders no labs, so it has no result to wait for; give its declaration 'orders LAB, ...' or drop the window")


def _handler(h: ast.Handler, sym: Symbols, diags: Diagnostics) -> None:
    if h.trigger == "event":
        for n in h.names:
            _expect(n, sym.events, "event", sym, diags, "event")
    elif h.trigger == "fact":
        for n in h.names:
            _expect(n, {**sym.facts, **sym.vars}, "fact", sym, diags, "fact")
    elif h.trigger == "timer" and h.since is not None:
        _expect(h.since, sym.actions, "action", sym, diags, "since")


def _call_names(e: ast.Call, sym: Symbols, diags: Diagnostics) -> None:
    f = e.func.text
    if f not in FUNCTIONS:
        hint = did_you_mean(f, FUNCTIONS)
        listing = f"the functions are {', '.join(sorted(FUNCTIONS))}"
        diags.error(e.func.span, "E304", f"unknown function '{f}'{hint}" if hint else f"unknown function '{f}'; {listing}")


def _let_cycles(module: ast.Module, sym: Symbols, diags: Diagnostics) -> None:
    deps = {
        let.name.text: {e.name for e in walk_expr(let.expr) if isinstance(e, ast.Ref) and e.name in sym.lets}
        for let in module.lets
    }
    reported: set[str] = set()
    for start in deps:
        stack = [(start, [start])]
        while stack:
            node, path = stack.pop()
            for nxt in deps.get(node, ()):
                if nxt == start and start not in reported:
                    reported.update(path)
                    let = sym.lets[start]
                    diags.error(let.name.span, "E208", f"'{start}' is defined in terms of itself: {' -> '.join(path + [start])}")
                elif nxt not in path and len(path) < 50:
                    stack.append((nxt, path + [nxt]))
