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
    states: dict[str, ast.State] = field(default_factory=dict)  # every state, nested ones included
    blocks: dict[str, ast.RuleBlock] = field(default_factory=dict)  # `rules NAME { ... }`
    drugs: dict[str, ast.Drug] = field(default_factory=dict)
    tracks: dict[str, ast.Track] = field(default_factory=dict)
    # the statechart: state or track -> the state or track it is written in (None: top level),
    # and -> what is written in it (states, or a parallel state's tracks), in document order
    parent: dict[str, str | None] = field(default_factory=dict)
    children: dict[str, list[str]] = field(default_factory=dict)
    # state or track -> its position in the file (pre-order over states and tracks)
    doc_order: dict[str, int] = field(default_factory=dict)
    # memo: let name -> the sources it rests on, its own and those of the lets it uses
    let_sources: dict[str, frozenset[str]] = field(default_factory=dict)
    # filled by checks.types: id(number literal with a unit) -> (value, unit) as it is lowered
    # (converted exactly to the unit of what it is added to or compared with)
    numbers: dict[int, tuple] = field(default_factory=dict)

    def kind_of(self, name: str) -> str | None:
        for kind in ("labs", "facts", "vars", "lets", "events", "actions", "drugs"):
            if name in getattr(self, kind):
                return kind[:-1]
        return None

    def ancestors(self, name: str) -> list[str]:
        """The states and tracks enclosing `name`, innermost first."""
        out = []
        p = self.parent.get(name)
        while p is not None and p not in out:
            out.append(p)
            p = self.parent.get(p)
        return out

    def track_of(self, name: str) -> str | None:
        """The nearest track enclosing `name` (None: the top-level region)."""
        return next((a for a in self.ancestors(name) if a in self.tracks), None)

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
        ("drugs", module.drugs),
    ):
        table = getattr(sym, kind)
        for item in items:
            key = item.id.text if isinstance(item, ast.Source) else item.name.text
            table.setdefault(key, item)
    for st in module.states:
        sym.states.setdefault(st.name.text, st)
    for tr in module.tracks:
        sym.tracks.setdefault(tr.name.text, tr)
    for b in module.blocks:
        sym.blocks.setdefault(b.name.text, b)
    # the tree, first declaration of a name wins (duplicates: checks.names)
    stack: list[tuple[ast.State | ast.Track, str | None]] = [(st, None) for st in reversed(module.top)]
    while stack:
        node, parent = stack.pop()
        name = node.name.text
        if name in sym.doc_order:
            continue
        sym.doc_order[name] = len(sym.doc_order)
        sym.parent[name] = parent
        kids = list(node.states) if isinstance(node, ast.Track) else sorted(
            (*node.states, *node.tracks), key=lambda n: (n.span.line, n.span.column))
        sym.children[name] = []
        if parent is not None:
            sym.children[parent].append(name)
        stack.extend((k, name) for k in reversed(kids))
    return sym


def walk_actions(actions):
    """Every action, depth first, including those inside `if` branches and choice alternatives."""
    for a in actions:
        yield a
        if isinstance(a, ast.If):
            yield from walk_actions(a.then)
            yield from walk_actions(a.orelse)
        elif isinstance(a, ast.OneOf):
            for alt in a.alternatives:
                yield from walk_actions(alt.actions)


def leading_choice(r: ast.Rule) -> ast.OneOf | None:
    """The choice with consequences directly in a rule's actions (the first, if several: E416)."""
    return next((a for a in r.actions if isinstance(a, ast.OneOf) and a.leads), None)


def rule_targets(r: ast.Rule):
    """Every state a rule may lead to, as written: its target and its choice's alternatives'."""
    if r.target is not None:
        yield r.target
    choice = leading_choice(r)
    for alt in choice.alternatives if choice is not None else ():
        if alt.target is not None:
            yield alt.target


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


def all_rules(module: ast.Module):
    """(owner, rule) for every rule as written: a state's own rules (owner: the state), then
    the rules of each block (owner: the block), each once however often it is used."""
    for st in module.states:
        for h in st.handlers:
            for r in h.rules:
                yield st, r
    for b in module.blocks:
        for r in b.rules:
            yield b, r


def expand(h: ast.Handler, sym: Symbols):
    """A handler's rules with its `use`s written out in place: (rule, block name or None,
    index of the rule in its block or None), in first-match order. An unknown block (E213)
    gives nothing; a `use` inside a block is not followed (E413)."""
    for item in h.items or h.rules:
        if isinstance(item, ast.Use):
            block = sym.blocks.get(item.block.text)
            for i, r in enumerate(block.rules if block is not None else ()):
                yield r, item.block.text, i
        else:
            yield item, None, None


def module_exprs(module: ast.Module):
    """(expr, context) for every expression of the module: lets, guards, conditions, sets."""
    for let in module.lets:
        yield let.expr, "let"
    for st in module.states:
        for a in walk_actions(st.entry):
            yield from _action_exprs(a)
    for _owner, r in all_rules(module):
        if r.guard is not None:
            yield r.guard, "guard"
        for a in walk_actions(r.actions):
            yield from _action_exprs(a)


def _action_exprs(a):
    if isinstance(a, ast.If):
        yield a.cond, "guard"
    elif isinstance(a, ast.Set):
        yield a.value, "set"
