"""`rxwatch check`: parse and verify protocols, print diagnostics, change nothing."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import List

import typer

from .app import app
from .output import Status, looks_like_graph_file, print_diagnostics, read_text


class DiagFormat(str, Enum):
    text = "text"
    json = "json"


@app.command()
def check(
    protocols: List[Path] = typer.Argument(..., metavar="PROTOCOL...", help="Protocol files (.rxw) to check; a compiled graph file (.json) is validated as `simulate` would read it.", exists=True, dir_okay=False, readable=True),
    format: DiagFormat = typer.Option(DiagFormat.text, "--format", "-f", help="text: one line per finding on stderr, with the source line and a caret; json: a list on stdout."),
    strict: bool = typer.Option(False, "--strict", help="Treat warnings as errors (exit 1 when there are any)."),
    verify: bool = typer.Option(True, "--verify/--no-verify", help="Run the static analyses (gaps, overlaps, reachability, time); see docs/verification.md."),
    explain: bool = typer.Option(False, "--explain", help="Also print (on stdout) every region of inputs on which a handler is unassessable: a guard unknown before any rule fires; which labs are missing, which value ranges. Text only; see docs/verification.md."),
) -> None:
    """Parse and verify protocols: every error and warning of every file, located.

    Exit status 0 when no file has errors (warnings may be printed), 1 when one has.
    """
    from rxwatch.compiler import compile_source, graphio
    from rxwatch.compiler.diagnostics import format_json

    if explain and format is DiagFormat.json:
        raise typer.BadParameter("--explain prints text: use it without --format json", param_hint="--explain")
    all_diags = []
    errors = warnings = accepted = 0
    for path in protocols:
        text = read_text(path, "protocol file")
        graph = None
        if looks_like_graph_file(path, text):
            try:
                graph = graphio.from_json(text, str(path))
                diags = []
            except graphio.GraphError as e:
                diags = e.diagnostics
        else:
            result = compile_source(text, str(path), verify=verify, lower=False)
            diags = result.diagnostics
            accepted += len(result.accepted)
        all_diags.extend(diags)
        errors += sum(d.is_error for d in diags)
        warnings += sum(not d.is_error for d in diags)
        if format is DiagFormat.text:
            print_diagnostics(diags, text)
        if explain:
            from rxwatch.compiler.verify import explain_text

            if not looks_like_graph_file(path, text):  # the graph, even when the analyses found errors
                graph = compile_source(text, str(path), verify=False).graph
            print(explain_text(graph) if graph is not None else f"{path}: not explained: the protocol has errors")
    if format is DiagFormat.json:
        sys.stdout.write(format_json(all_diags) + "\n")
    else:
        files = f"{len(protocols)} protocol{'s' if len(protocols) != 1 else ''}"
        extra = f" ({accepted} accepted in the protocol)" if accepted else ""
        print(f"checked {files}: {errors} error{'s' if errors != 1 else ''}, {warnings} warning{'s' if warnings != 1 else ''}{extra}", file=sys.stderr)
    if errors or (strict and warnings):
        raise typer.Exit(int(Status.INPUT_ERROR))
