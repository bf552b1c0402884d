"""The rxwatch renderer: the compiled graph -> a flowchart clinicians can read.

    from rxwatch.render import render
    svg = render(result.graph, "svg")                 # bytes
    page = render(result.graph, "html", trace=trace)  # one patient's path over it

The pipeline, one module per step: `labels` (guards, actions, windows and sources as clinician
text), `tone` (how serious each state is, from the graph), `plan` (what the chart shows: boxes,
decisions, arrows, rows), `trace` (a simulator trace checked against the graph), `dot` (the
plan -> a graphviz.Digraph), `html` (the self-contained viewer). Graphviz's `dot` lays out
every format but `.dot`.
"""

from __future__ import annotations

import graphviz

from . import dot as _dot
from . import plan as _plan
from .trace import TraceError, overlay

__all__ = ["FORMATS", "DotFailed", "GraphvizMissing", "RenderError", "TraceError", "render"]

FORMATS = ("svg", "png", "pdf", "dot", "html")
PNG_DPI = "200"  # the one-page chart as a picture sharp enough to read

INSTALL_HINT = "install Graphviz: `apt-get install graphviz` (Debian, Ubuntu) or `brew install graphviz` (macOS)"


class RenderError(Exception):
    """The flowchart cannot be drawn as asked (not the protocol's fault)."""


class GraphvizMissing(RenderError):
    """Graphviz's `dot` is not installed or not on PATH."""

    def __init__(self, fmt: str):
        super().__init__(f"drawing .{fmt} needs Graphviz's `dot`, which was not found on PATH; {INSTALL_HINT} (.dot needs nothing)")


def render(graph, fmt: str, trace: dict | None = None, show_variables: bool = False) -> bytes:
    """The flowchart in `fmt` (one of FORMATS), whole, in memory; `show_variables`: the
    variables the rules set ("Record: ...") are shown too (hidden by default).

    Raises RenderError for an unknown format, GraphvizMissing when `dot` is needed and absent,
    TraceError when `trace` does not fit the protocol.
    """
    if fmt not in FORMATS:
        raise RenderError(f"unknown format '{fmt}': one of {', '.join('.' + f for f in FORMATS)}")
    ov = overlay(graph, trace) if trace is not None else None
    plan = _plan.build(graph, show_variables=show_variables)
    dg = _dot.digraph(plan, ov)
    if fmt == "dot":
        return dg.source.encode("utf-8")
    if fmt == "png":
        dg.attr("graph", dpi=PNG_DPI)
    out = _pipe(dg, "svg" if fmt == "html" else fmt)
    if fmt == "html":
        from . import html

        return html.page(graph, plan, ov, out)
    return out


class DotFailed(RenderError):
    """Graphviz's `dot` ran and failed (or closed its input early): its own first message."""

    def __init__(self, fmt: str, why: str):
        super().__init__(f"Graphviz's `dot` could not draw the .{fmt}: {why}")


def _pipe(dg: graphviz.Digraph, fmt: str) -> bytes:
    try:
        return dg.pipe(format=fmt, quiet=True)
    except graphviz.ExecutableNotFound:
        raise GraphvizMissing(fmt) from None
    except graphviz.CalledProcessError as e:
        lines = (e.stderr or b"").decode("utf-8", "replace").strip().splitlines()
        raise DotFailed(fmt, (lines[0][:300] if lines else f"exit status {e.returncode}")) from None
    except BrokenPipeError:  # dot stopped reading its input (it met a label it refuses)
        raise DotFailed(fmt, "it stopped reading its input") from None
