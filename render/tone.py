"""How serious each state is, derived from the compiled graph alone (no state names).

A state's tone is one of: "start" (the initial state), "end" (a terminal state), or a level
0-3 that the flowchart shows as a colour ramp readable in greyscale print:

- a state node that carries an integer `severity` attribute uses it (clamped to 0-3): room for a
  language addition (`state x "..." severity 2`) that would let authors say it outright;
- otherwise the level is derived from the rules:
  3 "stop": every way out of the state ends the pathway (each rule that leaves it leads to a
    terminal state): treatment is being ended;
  2/1 from rule order: in an `ordered` handler the overlaps are on purpose and the first rule
    that holds applies, so the rules are graded worst first (the grading of a panel). A rule's
    escalation is its rank from the bottom, (n-1-i)/(n-1); a state's escalation is the lowest
    over the rules that lead into it (a single-rule handler, a timer, an event or an
    unordered handler counts 0). Above 1/2 is level 2 "act", above 0 level 1 "watch";
  0 "routine": everything else.
"""

from __future__ import annotations

LEVELS = ("routine", "watch", "act", "stop")


def tones(graph) -> dict[str, object]:
    """State name -> "start" | "end" | 0..3."""
    escalation: dict[str, float] = {}
    for state, data in graph.nodes(data=True):
        for h in data.get("handlers", ()):
            rules = [graph.edges[state, tgt, key] | {"_to": tgt} for key, tgt in _targets(graph, state, h)]
            n = len(rules)
            for i, r in enumerate(rules):
                if r["stay"] or r["_to"] == state:
                    continue
                e = (n - 1 - i) / (n - 1) if h.get("mode") == "ordered" and n > 1 else 0.0
                escalation[r["_to"]] = min(escalation.get(r["_to"], e), e)
    out: dict[str, object] = {}
    for state, data in graph.nodes(data=True):
        explicit = data.get("severity")
        if isinstance(explicit, int) and not isinstance(explicit, bool):
            out[state] = max(0, min(3, explicit))
        elif data.get("kind") == "initial":
            out[state] = "start"
        elif data.get("kind") == "terminal":
            out[state] = "end"
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
