"""The protocol's abstract syntax tree: frozen dataclasses with a span and no behaviour.

The parser builds it; the checks read it; the lowering turns it into the graph.
Names that the author wrote keep their own span (`Name`), so a diagnostic about a
reference points at the reference, not at the whole rule.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Union

from .span import Span


@dataclass(frozen=True, slots=True)
class Name:
    text: str
    span: Span


@dataclass(frozen=True, slots=True)
class Citation:
    """One item of a `cite` list: the source id (`text`, `span`: read like a Name) and where in
    the source (`locator`: "4.4", "Table 2", a quoted sentence; None when not given)."""

    text: str
    span: Span
    locator: str | None = None


# ------------------------------------------------------------------ expressions


@dataclass(frozen=True, slots=True)
class Number:
    """A number literal, exactly as written: an int, or a Fraction for a decimal (`1.2` is 6/5),
    with the unit written after it (`140 "years"`; None: a bare number, which fits any unit)."""

    value: int | Fraction
    span: Span
    unit: str | None = None


@dataclass(frozen=True, slots=True)
class Bool:
    value: bool
    span: Span


@dataclass(frozen=True, slots=True)
class Duration:
    """`6 months`: amount and unit ('days', 'weeks', 'months', 'years')."""

    amount: int
    unit: str
    span: Span


@dataclass(frozen=True, slots=True)
class Ref:
    """A name in an expression: a lab, fact, variable, derived value or enumeration member."""

    name: str
    span: Span


@dataclass(frozen=True, slots=True)
class SinceEntry:
    """`since entry`: the time since the current state was entered (a duration)."""

    span: Span


@dataclass(frozen=True, slots=True)
class Call:
    """`max(a, b)`, `min(...)`, `uln(ALT)`, `xuln(ALT)`, `known(ALT)`, `since(action)`."""

    func: Name
    args: tuple["Expr", ...]
    span: Span


@dataclass(frozen=True, slots=True)
class Neg:
    operand: "Expr"
    span: Span


@dataclass(frozen=True, slots=True)
class Arith:
    op: str  # + - * /
    left: "Expr"
    right: "Expr"
    span: Span


@dataclass(frozen=True, slots=True)
class Compare:
    """`a < b <= c`: a chain, true when every adjacent comparison holds."""

    ops: tuple[str, ...]
    operands: tuple["Expr", ...]
    span: Span


@dataclass(frozen=True, slots=True)
class Member:
    """`indication in {stills_disease, hlh_mas}`."""

    operand: "Expr"
    members: tuple[Name, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class Not:
    operand: "Expr"
    span: Span


@dataclass(frozen=True, slots=True)
class Logic:
    """`and` / `or` over two or more operands."""

    op: str  # "and" | "or"
    operands: tuple["Expr", ...]
    span: Span


Expr = Union[Number, Bool, Duration, Ref, SinceEntry, Call, Neg, Arith, Compare, Member, Not, Logic]


# ------------------------------------------------------------------ actions


@dataclass(frozen=True, slots=True)
class Window:
    """A due window relative to the day of the action: opens after `start`, closes after `end`."""

    start: int
    end: int
    unit: str
    span: Span
    point: bool = False  # `due 3 months`: a point, widened by the protocol's schedule tolerance
    every: bool = False  # `every ...`: the order opens again when a result fulfils it


@dataclass(frozen=True, slots=True)
class Do:
    action: Name
    window: Window | None
    cite: tuple[Name, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class Alternative:
    """One alternative of `do one of { ... }`: the action, where it leads (`target` None and
    `stay` False: no target of its own) and the actions it brings."""

    action: Name
    target: Name | None
    stay: bool
    actions: tuple["Action", ...]
    span: Span


@dataclass(frozen=True, slots=True)
class OneOf:
    """Alternatives: the first option is the default. `alternatives` is empty for the list
    form `do one of A, B` (no consequences)."""

    options: tuple[Name, ...]
    window: Window | None
    cite: tuple[Name, ...]
    span: Span
    alternatives: tuple[Alternative, ...] = ()

    @property
    def leads(self) -> bool:
        """Whether an alternative has a target (`-> STATE` or `stay`)."""
        return any(a.target is not None or a.stay for a in self.alternatives)


@dataclass(frozen=True, slots=True)
class Set:
    var: Name
    value: Expr
    cite: tuple[Name, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class If:
    cond: Expr
    cond_text: str
    cite: tuple[Name, ...]
    then: tuple["Action", ...]
    orelse: tuple["Action", ...]
    span: Span


Action = Union[Do, OneOf, Set, If]


# ------------------------------------------------------------------ states


@dataclass(frozen=True, slots=True)
class Rule:
    """`when GUARD -> TARGET cite ... { actions }`; guard None is `otherwise`; target None is `stay`
    (or, with `has_target` False, no target written: the choice in its actions leads).
    `otherwise_name`: what an `otherwise "normal"` names its case (None when not named)."""

    guard: Expr | None
    guard_text: str
    target: Name | None
    cite: tuple[Name, ...]
    actions: tuple[Action, ...]
    span: Span
    has_target: bool = True
    otherwise_name: str | None = None


@dataclass(frozen=True, slots=True)
class Use:
    """`use BLOCK` among a handler's rules: the block's rules, in order, at this place."""

    block: Name
    span: Span


@dataclass(frozen=True, slots=True)
class RuleBlock:
    """`rules NAME "description" { rules }`: rules shared by the handlers that `use` them."""

    name: Name
    description: str | None
    rules: tuple[Rule, ...]
    span: Span
    uses: tuple[Use, ...] = ()  # `use` written inside the block (E413)


@dataclass(frozen=True, slots=True)
class Handler:
    """What a state does on a trigger: 'panel', 'event', 'fact' or 'timer'."""

    trigger: str
    names: tuple[Name, ...]  # events, or facts (empty: any fact)
    delay: Duration | None  # timers
    since: Name | None  # timers: the action the delay counts from (None: entering the state)
    mode: str  # 'first' (default), 'ordered' (overlaps on purpose), 'exclusive'
    rules: tuple[Rule, ...]  # its own rules
    span: Span
    items: tuple[Rule | Use, ...] = ()  # its own rules and `use`s, as written


@dataclass(frozen=True, slots=True)
class Accept:
    """`accept W605 "reason"`: a reviewed warning, for the protocol or for one state."""

    code: Name
    reason: str
    span: Span


@dataclass(frozen=True, slots=True)
class State:
    name: Name
    kind: str  # 'initial', 'normal', 'terminal'
    description: str | None
    entry: tuple[Action, ...]
    handlers: tuple[Handler, ...]
    span: Span
    accepts: tuple[Accept, ...] = ()
    severity: Name | None = None  # 'none', 'mild', 'moderate', 'severe'
    # a statechart: the states nested directly in this one (a compound state), or its tracks
    # (a parallel state); both empty: an atomic state. `kind` 'initial' of a nested state: the
    # child its parent enters by default.
    states: tuple["State", ...] = ()
    tracks: tuple["Track", ...] = ()


@dataclass(frozen=True, slots=True)
class Track:
    """`track NAME "description" { states }`: one region of a parallel state."""

    name: Name
    description: str | None
    states: tuple[State, ...]
    span: Span
    accepts: tuple[Accept, ...] = ()


# ------------------------------------------------------------------ declarations


@dataclass(frozen=True, slots=True)
class ProtocolMeta:
    name: Name
    title: str | None
    version: str | None
    status: Name | None
    description: str | None
    span: Span


@dataclass(frozen=True, slots=True)
class Source:
    id: Name
    title: str | None
    kind: Name | None
    url: str | None
    doi: str | None
    note: str | None
    span: Span


@dataclass(frozen=True, slots=True)
class Lab:
    name: Name
    description: str | None
    unit: str | None
    uln: int | Fraction | None
    loinc: tuple[str, ...]
    molar_mass: int | Fraction | None
    cite: tuple[Name, ...]
    span: Span
    lln: int | Fraction | None = None


@dataclass(frozen=True, slots=True)
class TypeSpec:
    kind: str  # 'bool', 'number', 'enum'
    unit: str | None
    members: tuple[Name, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class Literal:
    value: bool | int | Fraction | str  # str: an enumeration member
    span: Span


@dataclass(frozen=True, slots=True)
class Fact:
    """A fact about the patient (`fact`) or a variable the protocol sets (`var`)."""

    name: Name
    description: str | None
    type: TypeSpec
    default: Literal | None
    cite: tuple[Name, ...]
    span: Span
    is_var: bool = False


@dataclass(frozen=True, slots=True)
class Event:
    name: Name
    description: str | None
    cite: tuple[Name, ...]
    span: Span
    effect: "Effect | None" = None  # `stops D`: the event means the drug has ended


@dataclass(frozen=True, slots=True)
class DoseLevel:
    """A drug's dose level: a number (exact) or a name, with an optional label (named levels)."""

    value: int | Fraction | str
    label: str | None
    span: Span


@dataclass(frozen=True, slots=True)
class Drug:
    """`drug NAME "description" doses L1, L2 unit "mg/kg" cite ...`: levels highest first."""

    name: Name
    description: str | None
    levels: tuple[DoseLevel, ...]
    unit: str | None
    cite: tuple[Name, ...]
    span: Span

    @property
    def kind(self) -> str:
        """'name' when its levels are names, else 'number'."""
        return "name" if any(isinstance(lv.value, str) for lv in self.levels) else "number"


@dataclass(frozen=True, slots=True)
class Effect:
    """What an action does to a drug: kind 'start', 'hold', 'resume', 'dose' or 'stop', with
    the dose level it names (`at LEVEL`, or the level of `doses D LEVEL`), if any."""

    kind: str
    drug: Name
    level: DoseLevel | None
    span: Span


@dataclass(frozen=True, slots=True)
class ActionDecl:
    name: Name
    description: str | None
    orders: tuple[Name, ...]
    cite: tuple[Name, ...]
    span: Span
    # `fulfilled by ALT or AST`: alternatives, each a set of labs that must all have results
    # (None: every lab it orders)
    fulfilled_by: tuple[tuple[Name, ...], ...] | None = None
    effect: Effect | None = None  # `holds tocilizumab`...


@dataclass(frozen=True, slots=True)
class Setting:
    """A protocol-wide duration: `results valid for 3 days` (kind 'results') or
    `reminders every 4 weeks` (kind 'reminders')."""

    kind: str
    duration: Duration
    cite: tuple[Name, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class Let:
    name: Name
    description: str | None
    expr: Expr
    text: str
    cite: tuple[Name, ...]
    span: Span
    unit: str | None = None  # `unit "mL/min"`: the unit it declares (checked: E308)


@dataclass(frozen=True, slots=True)
class Module:
    """One protocol file, declarations in file order by kind.

    `states` lists every state, nested ones included, in document (pre-)order; `top` the
    top-level states only, with their nested states and tracks inside them; `tracks` every track.
    """

    path: str
    source: str = field(repr=False)
    protocol: tuple[ProtocolMeta, ...]
    sources: tuple[Source, ...]
    labs: tuple[Lab, ...]
    facts: tuple[Fact, ...]
    vars: tuple[Fact, ...]
    events: tuple[Event, ...]
    actions: tuple[ActionDecl, ...]
    lets: tuple[Let, ...]
    states: tuple[State, ...]
    accepts: tuple[Accept, ...] = ()
    settings: tuple[Setting, ...] = ()
    top: tuple[State, ...] = ()
    tracks: tuple[Track, ...] = ()
    blocks: tuple[RuleBlock, ...] = ()
    drugs: tuple[Drug, ...] = ()
