"""`rxwatch simulate`: replay a patient's timeline through a protocol and print the trace."""

from __future__ import annotations

import os
import sys
from enum import Enum
from pathlib import Path
from typing import List, Optional

import typer

from .app import app
from .output import PREFER_HELP, check_prefer, check_writable, output_path, Sources, Status, count, diagnostics_of, emit, fail, load_graph, print_diagnostics, same_file


class TraceFormat(str, Enum):
    table = "table"
    json = "json"


@app.command()
def simulate(
    protocol: Path = typer.Argument(..., metavar="PROTOCOL", help="The protocol file (.rxw), or a compiled graph file (.json from `rxwatch compile`).", exists=True, dir_okay=False, readable=True),
    timeline: Path = typer.Argument(..., metavar="TIMELINE", help="The patient's timeline: YAML/JSON (see docs/timelines.md), a FHIR R4 Bundle, or a lab CSV.", exists=True, dir_okay=False, readable=True),
    format: Optional[TraceFormat] = typer.Option(None, "--format", "-f", metavar="table|json", help="table: one row per step, for a person; json: the trace of contracts/trace.md, byte-stable. Default: table on a terminal, json otherwise (and with -o)."),
    output_: Optional[str] = typer.Option(None, "--output", "-o", metavar="OUT", help="Write here (whole or not at all) instead of standard output."),
    until: Optional[str] = typer.Option(None, "--until", metavar="DATE", help="Replay up to and including this day (YYYY-MM-DD); later events are left out, with a warning."),
    start: Optional[str] = typer.Option(None, "--start", metavar="DATE", help="Start on this day (YYYY-MM-DD) instead of the timeline's start; earlier events are left out, with a warning."),
    fact: List[str] = typer.Option([], "--fact", metavar="NAME=VALUE", help="A fact about the patient, NAME=VALUE (repeatable); wins over the timeline's."),
    plot: Optional[str] = typer.Option(None, "--plot", metavar="CHART", help="Also draw the patient's lab chart (whole or not at all): .png, .svg or .pdf (see docs/flowcharts.md)."),
    results: bool = typer.Option(False, "--results", help="json: each day's lab results as a `panel` step, for the lab chart of `rxwatch render --trace`."),
    prefer: List[str] = typer.Option([], "--prefer", metavar="ACTION", help=PREFER_HELP + " The step says so (`preferred`)."),
) -> None:
    """Replay a timeline through a protocol: what the protocol recommends day by day, which
    orders are due and when, and where the care deviated from it.

    Exit status 0 when replayed, 1 when the protocol (or graph file) or the timeline is wrong
    (each mistake printed as PATH:LINE:COL: error[CODE]: message) or the protocol loops
    without time passing, 2 when a file is missing or the output cannot be written.
    """
    output = output_path(output_)
    chart = _plot_path(plot)
    if chart is not None and output is not None and same_file(chart, output):
        raise fail(f"{chart}: --plot and -o name the same file; give the chart its own name")
    # both outputs checked before anything runs or is written: no chart left behind
    for out in (output, chart):
        if out is not None:
            check_writable(out, inputs=(protocol, timeline))
    if results and format is TraceFormat.table:
        raise fail("--results adds the lab results to the JSON trace; it does nothing with --format table")
    from rxwatch.compiler.diagnostics import WARNING, Diagnostic
    from rxwatch.simulator.engine import Machine, SimulationError
    from rxwatch.inputs.model import TimelineError
    from rxwatch.simulator.trace import to_json_chunks

    sources = Sources()
    sources.allow(timeline)
    graph = load_graph(protocol, quiet_warnings=True, sources=sources)
    try:
        machine = Machine(graph)
    except SimulationError as e:
        print_diagnostics(diagnostics_of(e), sources)
        raise fail(f"{protocol}: cannot be simulated; no trace written", Status.INPUT_ERROR)
    preferred = check_prefer(prefer, [(str(protocol), machine)])  # before the timeline is read
    try:
        tl = _read_timeline(timeline, graph, start=start, until=until, facts=fact)
    except TimelineError as e:
        print_diagnostics(sorted([*e.warnings, *e.messages], key=lambda m: (m.path != str(timeline), m.line, m.column)), sources)
        raise fail(f"{timeline}: {count(e.messages)}; nothing simulated", Status.INPUT_ERROR)
    except IsADirectoryError:
        raise fail(f"{timeline}: is a directory, not a timeline file")
    except OSError as e:
        raise fail(f"{timeline}: cannot read: {e.strerror or e}")
    print_diagnostics(tl.warnings, sources)

    inputs: list = []
    try:
        trace = machine.run(tl, inputs=inputs, prefer=preferred)
    except SimulationError as e:
        print_diagnostics(diagnostics_of(e), sources)
        raise fail(f"{timeline}: simulation stopped; no trace written", Status.INPUT_ERROR)
    print_diagnostics([Diagnostic.at(tl.path, w.get("line", 0), w["message"], WARNING, _warning_code(w))
                       for w in trace.get("warnings") or ()], sources)

    fmt = format or (TraceFormat.table if output is None and sys.stdout.isatty() else TraceFormat.json)
    if chart is not None:
        _plot(graph, trace, inputs, chart, inputs_=(protocol, timeline))
    if fmt is TraceFormat.json:
        if results:
            from rxwatch.render.labchart import with_results

            trace = with_results(trace, inputs, graph)
        emit(to_json_chunks(trace), output, inputs=(protocol, timeline))
        return
    if output is None and sys.stdout.isatty():
        from rich.console import Console

        from rxwatch.simulator.table import render

        Console(highlight=False).print(render(trace, graph, inputs))
        return
    import shutil

    from rxwatch.simulator.table import to_text

    width = 120 if output is not None else shutil.get_terminal_size((120, 24)).columns
    emit(to_text(trace, graph, inputs, width=width), output, inputs=(protocol, timeline))


def _warning_code(w: dict) -> str:
    """The code of a warning of the trace: its own `code`, else W903 for an unused choice (the
    only warning the simulator gave before warnings carried codes); '' when none applies."""
    if w.get("code"):
        return str(w["code"])
    return "W903" if str(w.get("message", "")).startswith("the choice of ") else ""


def _read_timeline(path: Path, graph, **options):
    """The timeline of `path`; a scenario file of `rxwatch test` is a timeline too (its
    `expect`, `description` and `protocol` keys are left to `rxwatch test`)."""
    from rxwatch.inputs.registry import read

    if path.suffix.lower() in (".yaml", ".yml"):
        from rxwatch.inputs import yamlsrc

        try:
            doc = yamlsrc.load(path.read_text(encoding="utf-8-sig"), str(path))
        except (OSError, UnicodeDecodeError, yamlsrc.YamlError):
            doc = None  # load_timeline reports it, located
        if isinstance(doc, dict) and "expect" in doc:
            from rxwatch.inputs.yamljson import parse_timeline
            from rxwatch.suite.cases import CASE_KEYS

            return parse_timeline(doc, str(path), graph.graph, extra_keys=CASE_KEYS, **options)
    return read(path, graph.graph, **options)


def _plot_path(raw: str | None) -> Path | None:
    """The --plot file, checked before anything runs: a file name (not a folder) with a suffix
    the chart has (else exit 2); `check_writable` then checks it can be written."""
    if raw is None:
        return None
    from rxwatch.render.labchart import FORMATS

    if raw == "" or raw.endswith(("/", os.sep)):
        raise fail(f"{raw or '(empty)'}: --plot names a folder, not a file; give the chart's file name")
    path = Path(raw)
    if _is_dir(path):
        raise fail(f"{path}: --plot names a folder, not a file; give the chart's file name")
    if path.suffix.lower().lstrip(".") not in FORMATS:
        raise fail(f"{path}: --plot cannot tell the chart's format from the suffix '{path.suffix}'; "
                   f"use one of {', '.join('.' + f for f in FORMATS)}")
    return path


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except OSError:  # a name too long, a loop of links: not a folder (writing it says why)
        return False


def _plot(graph, trace: dict, inputs: list, path: Path, inputs_: tuple) -> None:
    """Draw the lab chart (render/labchart.py) of the replay and write it whole."""
    from rxwatch.render import labchart

    from .output import say, write_atomic

    data = labchart.draw(labchart.build(graph, labchart.with_results(trace, inputs, graph)), path.suffix.lower().lstrip("."))
    write_atomic(path, data, inputs=inputs_)
    say(f"wrote {path}")
