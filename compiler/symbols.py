"""The symbol table: every declared name of a protocol, by kind."""

from __future__ import annotations

from dataclasses import dataclass, field

from . import ast


@dataclass
class Symbols:
    labs: dict[str, ast.Lab] = field(default_factory=dict)
    facts: dict[str, ast.Fact] = field(default_factory=dict)
    vars: dict[str, ast.Fact] = field(default_factory=dict)
    events: dict[str, ast.Event] = field(default_factory=dict)
    actions: dict[str, ast.ActionDecl] = field(default_factory=dict)
    lets: dict[str, ast.Let] = field(default_factory=dict)
    sources: dict[str, ast.Source] = field(default_factory=dict)
    states: dict[str, ast.State] = field(default_factory=dict)
    # memo: let name -> the sources it rests on, its own and those of the lets it uses
    let_sources: dict[str, frozenset[str]] = field(default_factory=dict)

    def kind_of(self, name: str) -> str | None:
        for kind in ("labs", "facts", "vars", "lets", "events", "actions"):
            if name in getattr(self, kind):
                return kind[:-1]
        return None

    def values(self) -> set[str]:
        """Names an expression can refer to."""
        return set(self.labs) | set(self.facts) | set(self.vars) | set(self.lets)


def build(module: ast.Module) -> Symbols:
    """First declaration wins; duplicates are reported by checks.names."""
    sym = Symbols()
    for kind, items in (
        ("labs", module.labs),
        ("facts", module.facts),
        ("vars", module.vars),
        ("events", module.events),
        ("actions", module.actions),
        ("lets", module.lets),
        ("sources", module.sources),
    ):
        table = getattr(sym, kind)
        for item in items:
            key = item.id.text if isinstance(item, ast.Source) else item.name.text
            table.setdefault(key, item)
    for st in module.states:
        sym.states.setdefault(st.name.text, st)
    return sym


def walk_actions(actions):
    """Every action, depth first, including those inside `if` branches."""
    for a in actions:
        yield a
        if isinstance(a, ast.If):
            yield from walk_actions(a.then)
            yield from walk_actions(a.orelse)


def walk_expr(expr):
    """Every sub-expression of `expr`, itself included."""
    stack = [expr]
    while stack:
        e = stack.pop()
        yield e
        if isinstance(e, ast.Call):
            stack.extend(e.args)
        elif isinstance(e, (ast.Neg, ast.Not)):
            stack.append(e.operand)
        elif isinstance(e, ast.Arith):
            stack.extend((e.left, e.right))
        elif isinstance(e, (ast.Compare, ast.Logic)):
            stack.extend(e.operands)
        elif isinstance(e, ast.Member):
            stack.append(e.operand)


def module_exprs(module: ast.Module):
    """(expr, context) for every expression of the module: lets, guards, conditions, sets."""
    for let in module.lets:
        yield let.expr, "let"
    for st in module.states:
        for a in walk_actions(st.entry):
            yield from _action_exprs(a)
        for h in st.handlers:
            for r in h.rules:
                if r.guard is not None:
                    yield r.guard, "guard"
                for a in walk_actions(r.actions):
                    yield from _action_exprs(a)


def _action_exprs(a):
    if isinstance(a, ast.If):
        yield a.cond, "guard"
    elif isinstance(a, ast.Set):
        yield a.value, "set"
