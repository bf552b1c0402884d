"""How serious each state is: the flowchart's colour ramp, from the compiled graph alone.

Levels 0-3 read as the language's severities: none, mild, moderate, severe.

- **Declared**: a state's `severity` (the language's `state x "..." severity moderate`), when
  the protocol declares one on any of its states; the states it leaves out are `none`.
- **Derived** when it declares none, from the rules, never from state names:
  severe: every way out of the state ends the pathway (each rule that leaves it leads to a
    terminal state): treatment is being ended;
  moderate / mild from rule order: in an `ordered` handler the overlaps are on purpose and the
    first rule that holds applies, so the rules are graded worst first (the grading of a
    panel). A rule's escalation is its rank from the bottom, (n-1-i)/(n-1); a state's is the
    lowest over the rules that lead into it (a single-rule handler, a timer, an event or an
    unordered handler counts 0). Above 1/2 is moderate, above 0 mild;
  none: the initial state, terminal states, and everything else.
"""

from __future__ import annotations

LEVELS = ("none", "mild", "moderate", "severe")


def declared(graph) -> bool:
    """Whether the protocol says how serious its states are (any severity but `none`)."""
    return any(d.get("severity", "none") != "none" for _, d in graph.nodes(data=True))


def tones(graph) -> dict[str, int]:
    """State name -> level 0..3 (an index into LEVELS)."""
    if declared(graph):
        return {s: LEVELS.index(d.get("severity")) if d.get("severity") in LEVELS else 0 for s, d in graph.nodes(data=True)}
    escalation: dict[str, float] = {}
    for state, data in graph.nodes(data=True):
        for h in data.get("handlers", ()):
            targets = list(_targets(graph, state, h))
            n = len(targets)
            for i, (key, target) in enumerate(targets):
                if target == state or graph.edges[state, target, key].get("stay"):
                    continue
                e = (n - 1 - i) / (n - 1) if h.get("mode") == "ordered" and n > 1 else 0.0
                escalation[target] = min(escalation.get(target, e), e)
    out: dict[str, int] = {}
    for state, data in graph.nodes(data=True):
        if data.get("kind") in ("initial", "terminal"):
            out[state] = 0
        elif _exits_only(graph, state):
            out[state] = 3
        else:
            e = escalation.get(state, 0.0)
            out[state] = 2 if e > 0.5 else 1 if e > 0 else 0
    return out


def _targets(graph, state: str, handler: dict):
    """(rule key, target state) for each rule of a handler, in order."""
    by_key = {k: v for _, v, k in graph.out_edges(state, keys=True)}
    for key in handler.get("rules", ()):
        if key in by_key:
            yield key, by_key[key]


def _exits_only(graph, state: str) -> bool:
    leaving = [v for _, v, d in graph.out_edges(state, data=True) if not d.get("stay") and v != state]
    return bool(leaving) and all(graph.nodes[v].get("kind") == "terminal" for v in leaving)
