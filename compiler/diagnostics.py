"""Diagnostics: the one module for every located, coded message rxwatch prints.

One position type (`Span`), one message type (`Diagnostic`), one text printer
(`format_text`: `PATH:LINE:COL: SEVERITY[CODE]: MESSAGE`, then the source line with a caret
under the span when the source is at hand) and one JSON printer (`format_json`), for the
compiler, the verifier, timeline and scenario input, compiled graph files and the
simulator's runtime errors alike.

Codes are stable and grouped (each has an entry in docs/diagnostics.md):

- E1xx: syntax (the parser)
- E2xx: names (declarations and references)
- E3xx: types and units
- E4xx / W5xx: structure of the state machine; hygiene (citations, sources)
- E6xx / W6xx: verification (gaps, overlaps, reachability, time)
- E7xx / W7xx: timeline input (YAML/JSON timelines, FHIR bundles, lab CSVs, options)
- E8xx: scenario case files
- E9xx / W9xx: compiled graph files, the simulator at run time, traces given to `render`

Modules that have their own message type convert at one place: `as_diagnostic(x)` takes a
`Diagnostic`, or anything shaped like the timeline's `Message` (`path`, `line`, `text`,
`severity`, `code`, `column`), or an object with a `diagnostic()` method; a subclass of
`Diagnostic` with a `Message`-style constructor is also one (see `Diagnostic.at`).
"""

from __future__ import annotations

import bisect
import difflib
import functools
import json
import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from .span import COMMAND_LINE, NOWHERE, Span

__all__ = [
    "CODES", "ERROR", "WARNING", "GROUPS", "Diagnostic", "Diagnostics", "COMMAND_LINE", "NOWHERE", "Span",
    "as_diagnostic", "did_you_mean", "format_json", "format_text", "group_of", "sanitize",
]

ERROR = "error"
WARNING = "warning"
SEVERITIES = (ERROR, WARNING)

# code -> one-line title; the full entry for each is in docs/diagnostics.md.
CODES: dict[str, str] = {
    "E101": "unexpected token",
    "E102": "unexpected character",
    "E103": "unexpected end of file",
    "E104": "invalid literal",
    "E105": "expression nested too deeply",
    "E110": "control character in a string",
    "E111": "name too long",
    "E201": "duplicate name",
    "E202": "undefined name",
    "E203": "transition to an unknown state",
    "E204": "citation of an undeclared source",
    "E205": "order of an undeclared lab",
    "E206": "name of the wrong kind",
    "E207": "missing protocol declaration",
    "E208": "derived value defined in terms of itself",
    "E209": "due window on an action that orders no labs",
    "E210": "order fulfilled by a lab it does not order",
    "E211": "track named like another state or track",
    "E212": "transition to a track",
    "E213": "use of an unknown rule block",
    "E214": "action on an undeclared drug",
    "E301": "type mismatch",
    "E302": "unit mismatch",
    "E303": "unknown enumeration member",
    "E304": "bad function call",
    "E305": "default value of the wrong type",
    "E306": "dose levels of mixed kinds",
    "E307": "dose levels not highest first",
    "E308": "derived value not in its declared unit",
    "E319": "unreadable unit of a number",
    "E401": "no initial state",
    "E402": "more than one initial state",
    "E403": "state not reachable from the initial state",
    "E404": "terminal state with handlers",
    "E405": "handler declared twice",
    "E406": "rule after `otherwise`",
    "E407": "only warnings can be accepted",
    "E408": "unknown state severity",
    "E409": "terminal state nested or containing states",
    "E410": "parallel state with states outside its tracks",
    "E411": "track without states",
    "E412": "transition into a sibling track",
    "E413": "`use` inside a rule block",
    "E414": "rule without a target",
    "E415": "choice that leads somewhere outside a rule's actions",
    "E416": "two choices that lead somewhere in one rule",
    "E417": "dose level that the drug does not have",
    "E418": "point window without a schedule tolerance",
    "W501": "rule cites no source",
    "W502": "unknown source kind",
    "W503": "invalid protocol status",
    "W504": "`accept` that matches no warning",
    "W505": "rule block used by no handler",
    "W506": "point window that opens by the day of the action",
    # verification (compiler/verify, docs/verification.md)
    "E601": "inputs that no rule handles",
    "E602": "overlapping guards in an exclusive handler",
    "W603": "overlapping guards: the order of the rules decides",
    "E604": "rule shadowed by the rules above it",
    "W605": "rule supported only by AI summaries",
    "E606": "guard that can never hold",
    "W607": "`otherwise` that can never fire",
    "W609": "analysis not completed",
    "E610": "state reachable only through rules that never fire",
    "E611": "non-terminal state where nothing can happen",
    "W612": "states from which the pathway never ends",
    "E613": "states with no way out and nothing scheduled",
    "E620": "zero-time loop",
    "E621": "due window that closes before it opens",
    "W622": "due window that closes on the day of the action",
    "E623": "timer that is never armed",
    "W630": "declaration never used",
    "W631": "variable set but never read, or read but never set",
    "W632": "action without a description",
    "W640": "inherited or shared rule that never fires in some states",
    "W641": "drug held with no way to resume or stop it",
    "W642": "track reads a lab that it never orders",
    "W643": "action on a drug that is stopped on every way there",
    # timeline input (inputs/: yamljson.py, csvlabs.py, fhir_bundle.py...; docs/timelines.md)
    "E701": "the file cannot be read",
    "E702": "the wrong shape",
    "E703": "an unknown key or column",
    "E704": "something required is missing",
    "E705": "not a date",
    "E706": "a date out of range",
    "E707": "an unknown name",
    "E708": "a value of the wrong kind",
    "E709": "a unit that does not convert",
    "E710": "a fact with no default and no value",
    "E711": "conflicting data",
    "E712": "not a usable FHIR bundle",
    "W701": "a FHIR result left out",
    "W702": "entries outside --start/--until left out",
    "E721": "a row of an extract that belongs to no patient",
    # scenario case files (suite/expectations.py, suite/cases.py, docs/scenarios.md)
    "E801": "case file of the wrong shape",
    "E802": "expectation that does not read",
    "E803": "name the protocol does not declare",
    "E804": "date that the expectation cannot use",
    "E805": "case written for another protocol",
    "E806": "simulation stopped",
    "E807": "value that does not fit",
    "E808": "value at a point in time counted or dated as a range",
    "E809": "unknown drug status or dose level",
    "E810": "track given for a subject without tracks",
    "E811": "final states naming a state that is not atomic",
    # the simulator at run time (simulator/engine.py)
    "E901": "zero-time loop while replaying",
    "E902": "graph the simulator cannot run",
    "E903": "statechart the simulator cannot run",
    "W903": "recorded choice that the protocol did not offer",
    "W904": "a replaced result that no step shows",
    "W905": "an action on a stopped drug",
    # compiled graph files (compiler/graphio.py)
    "E910": "not a compiled graph",
    "E911": "unknown graph format",
    "E912": "invalid name in a graph",
    "E913": "invalid expression in a graph",
    "E914": "broken reference in a graph",
    "E915": "graph field of the wrong type",
    # traces given to `rxwatch render --trace` (render/trace.py)
    "E920": "trace that does not fit the protocol",
    # cohort patient models (cohort/model.py, docs/cohort.md#the-patient-model)
    "E930": "patient model that cannot be read",
    "E931": "patient model of the wrong shape",
    "E932": "unknown key in a patient model",
    "E933": "missing key or source in a patient model",
    "E934": "bad distribution in a patient model",
    "E935": "value out of range in a patient model",
    "E936": "undeclared source or lab in a patient model",
    # cohort simulation (cohort/run.py, docs/cohort.md#the-closed-loop)
    "E950": "protocol the cohort cannot simulate",
    "E951": "patient model and protocol disagree on a lab's unit",
    "W950": "lab a protocol orders that the patient model does not make",
}

GROUPS: tuple[tuple[str, str, str], ...] = (
    ("E1", "syntax", "compiler/parser.py"),
    ("E2", "names", "compiler/checks/names.py"),
    ("E3", "types and units", "compiler/checks/types.py"),
    ("E4", "structure", "compiler/checks/structure.py, compiler/checks/accepts.py"),
    ("W5", "hygiene", "compiler/checks/structure.py, compiler/checks/accepts.py"),
    ("6", "verification", "compiler/verify/"),
    ("7", "timeline input", "inputs/"),
    ("8", "scenario case files", "suite/expectations.py, suite/cases.py"),
    ("E90", "the simulator at run time", "simulator/engine.py"),
    ("W90", "the simulator at run time", "simulator/engine.py"),
    ("E91", "compiled graph files", "compiler/graphio.py"),
    ("E92", "traces given to render", "render/trace.py"),
    ("E93", "cohort patient models", "cohort/model.py"),
    ("95", "cohort simulation", "cohort/run.py"),
)
"""(code prefix, group, module) for docs/diagnostics.md's table; a prefix without a letter
matches both severities."""


def group_of(code: str) -> str:
    """The group a code belongs to ('syntax', 'timeline input', ...)."""
    for prefix, name, _ in GROUPS:
        if (code[1:] if prefix[0].isdigit() else code).startswith(prefix):
            return name
    raise KeyError(code)


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """A located, coded message. `span` is where; `severity` 'error' or 'warning'; `code` a
    key of CODES ('' only for a message that has none yet); `message` what is wrong."""

    span: Span
    severity: str
    code: str
    message: str

    @classmethod
    def at(cls, path: str, line: int = 0, text: str = "", severity: str = ERROR, code: str = "",
           column: int = 0) -> "Diagnostic":
        """A diagnostic from the arguments of the timeline's `Message(path, line, text,
        severity, code, column)`, in that order: a one-point span (0: unknown)."""
        return cls(Span.point(path, line, column), severity, code, text)

    # the fields of the timeline's Message, read from the span: code written against Message
    # reads a Diagnostic unchanged

    @property
    def path(self) -> str:
        return self.span.path

    @property
    def line(self) -> int:
        return self.span.line

    @property
    def column(self) -> int:
        return self.span.column

    @property
    def text(self) -> str:
        return self.message

    @property
    def is_error(self) -> bool:
        return self.severity == ERROR

    @property
    def title(self) -> str:
        """The code's one-line title ('' for an unknown code)."""
        return CODES.get(self.code, "")

    def to_dict(self) -> dict:
        s = self.span
        return {
            "path": s.path,
            "line": s.line,
            "column": s.column,
            "end_line": s.end_line,
            "end_column": s.end_column,
            "severity": self.severity,
            "code": self.code,
            "message": self.message,
        }

    def __str__(self) -> str:
        return format_head(self)


def as_diagnostic(x: Any) -> Diagnostic:
    """The one conversion: a Diagnostic as it is; an object with a `diagnostic()` method, its
    answer; anything with the fields of the timeline's Message (`path`, `line`, `text` or
    `message`, `severity`, `code`, `column`) as a Diagnostic at that point."""
    if isinstance(x, Diagnostic):
        return x
    convert = getattr(x, "diagnostic", None)
    if callable(convert):
        d = convert()
        if isinstance(d, Diagnostic):
            return d
    text = getattr(x, "text", None)
    if text is None:
        text = getattr(x, "message", None)
    if text is None:
        raise TypeError(f"not a diagnostic: {x!r}")
    return Diagnostic.at(
        str(getattr(x, "path", "") or ""),
        _int(getattr(x, "line", 0)),
        str(text),
        getattr(x, "severity", ERROR) or ERROR,
        getattr(x, "code", "") or "",
        _int(getattr(x, "column", 0)),
    )


def _int(v: Any) -> int:
    return v if isinstance(v, int) and not isinstance(v, bool) and v > 0 else 0


class Diagnostics:
    """A pass's collector: passes add to it and never raise for the author's mistakes."""

    def __init__(self) -> None:
        self.items: list[Diagnostic] = []

    def add(self, diag: Diagnostic) -> None:
        self.items.append(diag)

    def error(self, span: Span, code: str, message: str) -> None:
        self.items.append(Diagnostic(span, ERROR, code, message))

    def warning(self, span: Span, code: str, message: str) -> None:
        self.items.append(Diagnostic(span, WARNING, code, message))

    def extend(self, items: Iterable[Diagnostic]) -> None:
        self.items.extend(items)

    @property
    def has_errors(self) -> bool:
        return any(d.is_error for d in self.items)

    def sorted(self) -> list[Diagnostic]:
        return sorted(self.items, key=sort_key)


def sort_key(d: Diagnostic) -> tuple:
    return (d.span.path, d.span.line, d.span.column, d.code)


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """'; did you mean 'ALT'?' for the nearest candidate, or ''.

    Near-linear in the number of calls: a name is compared with at most SUGGEST_EXACT_LIMIT
    candidates. Up to that many, every candidate is compared (difflib, cutoff 0.6, then a
    match ignoring case); beyond it, only the candidates nearest the name in sorted order by
    prefix and by suffix, and one that matches ignoring case (an index of the candidates is
    built once per candidate set). Answers are kept per name and candidate set."""
    names = tuple(candidates)
    names = _SETS.setdefault(names, names)  # one copy of each candidate set held by the caches
    if len(_SETS) > 64:
        _SETS.clear()
    return _suggestion(name, names)


_SETS: dict[tuple, tuple] = {}


SUGGEST_EXACT_LIMIT = 300
"""Up to this many candidates, `did_you_mean` compares the name with every one."""

_NEIGHBOURS = 16  # beyond the limit: candidates taken on each side of the name, by prefix and by suffix


@functools.lru_cache(maxsize=4096)
def _suggestion(name: str, candidates: tuple[str, ...]) -> str:
    pool: Iterable[str] = candidates
    if len(candidates) > SUGGEST_EXACT_LIMIT:
        pool = _near(name, _index(candidates))
    close = difflib.get_close_matches(name, pool, n=1, cutoff=0.6)
    if not close:
        lowered = _index(candidates).lowered if len(candidates) > SUGGEST_EXACT_LIMIT else {c.lower(): c for c in candidates}
        if name.lower() in lowered:
            close = [lowered[name.lower()]]
    return f"; did you mean '{close[0]}'?" if close else ""


@dataclass(frozen=True)
class _Names:
    by_prefix: list[str]
    by_suffix: list[tuple[str, str]]  # (reversed name, name)
    lowered: dict[str, str]


@functools.lru_cache(maxsize=16)
def _index(candidates: tuple[str, ...]) -> _Names:
    names = sorted(set(candidates))
    return _Names(names, sorted((c[::-1], c) for c in names), {c.lower(): c for c in candidates})


def _near(name: str, index: _Names) -> list[str]:
    """The candidates next to `name` in sorted order, by prefix and by suffix (a bounded pool)."""
    k = _NEIGHBOURS
    i = bisect.bisect_left(index.by_prefix, name)
    pool = set(index.by_prefix[max(0, i - k): i + k])
    j = bisect.bisect_left(index.by_suffix, (name[::-1], ""))
    pool.update(c for _, c in index.by_suffix[max(0, j - k): j + k])
    same = index.lowered.get(name.lower())
    if same is not None:
        pool.add(same)
    return sorted(pool)


# ---------------------------------------------------------------------------- printers

# C0 and C1 controls but tab and newline, DEL, line/paragraph separators, the bidirectional
# overrides and isolates (which can make a terminal show text other than what is there), and
# lone surrogates (from an undecodable file name or a JSON `\ud800`: no encoding can print them)
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def sanitize(text: str, *, newlines: bool = True) -> str:
    """`text` safe to print on a terminal: every control character (but tab, and newline when
    `newlines`) shown as an escape such as `\\x1b`, a lone surrogate as `\\udc80`."""
    out = _UNSAFE.sub(lambda m: _escape(m.group()), text)
    return out if newlines else out.replace("\n", "\\n")


def _escape(ch: str) -> str:
    n = ord(ch)
    return f"\\x{n:02x}" if n < 0x100 else f"\\u{n:04x}"


def format_head(diag: Diagnostic) -> str:
    """`path:line:col: severity[code]: message` (unknown line or column left out)."""
    code = f"[{diag.code}]" if diag.code else ""
    return f"{sanitize(str(diag.span), newlines=False)}: {diag.severity}{code}: {sanitize(diag.message)}"


def format_text(diag: Diagnostic, source: str | None) -> str:
    """`path:line:col: severity[code]: message`, then the source line with a caret under the
    span (only the line when the column is unknown; nothing when the source is not at hand)."""
    s = diag.span
    head = format_head(diag)
    if not source or s.line <= 0:
        return head
    lines = _lines(source)
    if s.line > len(lines):
        return head
    raw = lines[s.line - 1].removesuffix("\r")
    gutter = f"{s.line:>4} | "
    if s.column <= 0:
        return f"{head}\n{gutter}{_cut(sanitize(raw.expandtabs(1), newlines=False), 0)[0]}"
    # the caret stands under the column even when escapes widened the text before it
    before = sanitize(raw[: s.column - 1].expandtabs(1), newlines=False)
    after = sanitize(raw[s.column - 1:].expandtabs(1), newlines=False)
    text, shift = _cut(before + after, len(before))
    width = 1
    if s.end_line == s.line and s.end_column >= s.column:
        width = s.end_column - s.column + 1
    width = max(1, min(width, len(text) - (len(before) - shift) + 1, MAX_SHOWN // 2))
    pad = " " * (len(gutter) - 2) + "| "
    return f"{head}\n{gutter}{text}\n{pad}{' ' * (len(before) - shift)}{'^' * width}"


_split: list = [None, []]  # the last source split into lines, and its lines


def _lines(source: str) -> list[str]:
    """`source` split into lines as the readers count them (not splitlines: \\x0c, \\x85...);
    the last source's lines are kept, so that printing N messages about one file splits it
    once rather than N times."""
    if _split[0] is not source:
        _split[0], _split[1] = source, source.split("\n")
    return _split[1]


MAX_SHOWN = 160
"""Characters of a source line shown at most (a compact JSON file is one long line)."""


def _cut(text: str, at: int) -> tuple[str, int]:
    """`text` cut to about MAX_SHOWN characters around offset `at`, with '...' where cut; and
    how many characters the cut removed before `at` (net of the '...')."""
    if len(text) <= MAX_SHOWN:
        return text, 0
    start = max(0, min(at - MAX_SHOWN // 2, len(text) - MAX_SHOWN))
    end = start + MAX_SHOWN
    head = "..." if start > 0 else ""
    tail = "..." if end < len(text) else ""
    return head + text[start:end] + tail, start - len(head)


def format_json(diags: Iterable[Diagnostic]) -> str:
    """A JSON list of `{path, line, column, end_line, end_column, severity, code, message}`."""
    return json.dumps([as_diagnostic(d).to_dict() for d in diags], indent=2)


def format_all(diags: Iterable[Any], sources: Mapping[str, str] | None = None) -> str:
    """Every diagnostic as `format_text`, each with its file's source from `sources` (by path)."""
    sources = sources or {}
    return "\n".join(format_text(d, sources.get(d.span.path)) for d in map(as_diagnostic, diags))
