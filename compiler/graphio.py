"""Writing and reading the compiled graph: networkx node-link JSON, and GraphML."""

from __future__ import annotations

import json

import networkx as nx


def to_json(g: nx.MultiDiGraph) -> str:
    """Node-link JSON that `networkx.node_link_graph(data, edges="edges")` reads back."""
    from . import collector_paused

    with collector_paused():  # millions of small dicts, none of them garbage
        data = nx.node_link_data(g, edges="edges")
        # compact: an indent makes the json module fall back to its pure-Python encoder, 10x slower
        return json.dumps(data, separators=(",", ":"), ensure_ascii=False) + "\n"


def from_json(text: str) -> nx.MultiDiGraph:
    data = json.loads(text)
    key = "edges" if "edges" in data else "links"
    return nx.node_link_graph(data, directed=True, multigraph=True, edges=key)


def to_graphml(g: nx.MultiDiGraph) -> str:
    """GraphML holds only scalar attributes: nested ones are stored as JSON strings."""
    flat = nx.MultiDiGraph()
    flat.graph.update({k: _scalar(v) for k, v in g.graph.items()})
    for n, attrs in g.nodes(data=True):
        flat.add_node(n, **{k: _scalar(v) for k, v in attrs.items()})
    for u, v, k, attrs in g.edges(keys=True, data=True):
        flat.add_edge(u, v, key=k, **{a: _scalar(x) for a, x in attrs.items()})
    return "\n".join(nx.generate_graphml(flat, prettyprint=True)) + "\n"


def _scalar(v):
    if v is None:
        return ""
    if isinstance(v, (bool, int, float, str)):
        return v
    return json.dumps(v, sort_keys=True, ensure_ascii=False)
