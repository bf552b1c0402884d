"""`rxwatch render`: draw the flowchart; the format follows OUT's suffix."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from .app import app
from .output import output_path, Status, count, diagnostics_of, fail, load_graph, print_diagnostics, read_text, say, write_atomic


@app.command("render")
def render_(
    protocol: Path = typer.Argument(..., help="The protocol file (.rxw), or a compiled graph file (.json from `rxwatch compile`).", exists=True, dir_okay=False, readable=True),
    output_: str = typer.Option(..., "--output", "-o", metavar="OUT", help="The file to write, whole or not at all: .svg, .png, .pdf, .dot or .html (a self-contained viewer)."),
    trace: Optional[Path] = typer.Option(None, "--trace", help="A trace from `rxwatch simulate --format json`: draw that patient's path over the chart.", exists=True, dir_okay=False, readable=True),
    show_variables: bool = typer.Option(False, "--show-variables", help="Also show what the rules record in the protocol's variables (\"Record: ...\" lines), hidden by default."),
) -> None:
    """Draw a protocol as a flowchart for clinicians (see docs/flowcharts.md).

    Every format but .dot needs Graphviz's `dot` on PATH (exit status 2 without it).
    """
    output = output_path(output_)
    from rxwatch.render import FORMATS, DotFailed, GraphvizMissing, TraceError, render
    from rxwatch.render.trace import read as read_trace

    fmt = output.suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise fail(f"{output}: cannot tell the format from the suffix '{output.suffix}'; use one of {', '.join('.' + f for f in FORMATS)}")
    graph = load_graph(protocol, verify=False, quiet_warnings=True)
    trace_data = None
    trace_text = ""
    try:
        if trace is not None:
            trace_text = read_text(trace, "trace file")
            trace_data = read_trace(trace_text)  # untrusted: read defensively, then checked whole
        data = render(graph, fmt, trace=trace_data, show_variables=show_variables)
    except (json.JSONDecodeError, TraceError) as e:
        bad = diagnostics_of(e, path=trace, text=trace_text)
        print_diagnostics(bad, trace_text)
        raise fail(f"{trace}: {count(bad)}; nothing drawn", Status.INPUT_ERROR)
    except GraphvizMissing as e:
        raise fail(str(e))
    except DotFailed as e:  # a chart of a valid protocol that Graphviz refuses: nothing written
        raise fail(f"{protocol}: {e}; nothing written")
    write_atomic(output, data, inputs=(protocol,) + ((trace,) if trace is not None else ()))
    say(f"wrote {output}")
