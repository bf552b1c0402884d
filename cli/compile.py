"""`rxwatch compile`: write the compiled state machine (node-link JSON or GraphML)."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from .app import app
from .output import output_path, emit, load_protocol


class GraphFormat(str, Enum):
    json = "json"
    graphml = "graphml"


@app.command("compile")
def compile_(
    protocol: Path = typer.Argument(..., help="The protocol file (.rxw).", exists=True, dir_okay=False, readable=True),
    output_: Optional[str] = typer.Option(None, "--output", "-o", help="Write here (whole or not at all) instead of standard output."),
    format: Optional[GraphFormat] = typer.Option(None, "--format", "-f", help="json: networkx node-link data (the default); graphml: GraphML, nested attributes as JSON strings. Default: from OUT's suffix, else json."),
) -> None:
    """Compile a protocol into its state machine: the model the simulator and renderer read.

    networkx reads the JSON back with `networkx.node_link_graph(data, edges="edges")`.
    """
    output = output_path(output_)
    from rxwatch.compiler import graphio

    fmt = format or (GraphFormat.graphml if output is not None and output.suffix.lower() == ".graphml" else GraphFormat.json)
    result = load_protocol(protocol)
    data = graphio.to_json(result.graph) if fmt is GraphFormat.json else graphio.to_graphml(result.graph)
    emit(data, output, inputs=(protocol,))
