"""`rxwatch test`: run scenario files (a timeline plus expectations) against a protocol."""

from __future__ import annotations

import json
import sys
import textwrap
from enum import Enum
from pathlib import Path
from typing import List

import typer

from .app import app
from .output import Sources, Status, fail, load_graph, print_diagnostics


class TestFormat(str, Enum):
    text = "text"
    json = "json"


@app.command("test")
def test_cases(
    protocol: Path = typer.Argument(..., metavar="PROTOCOL", help="The protocol file (.rxw), or a compiled graph file (.json from `rxwatch compile`).", exists=True, dir_okay=False, readable=True),
    cases: List[Path] = typer.Argument(..., metavar="CASE", help="Case files (.yaml), or folders: every *.yaml in them, sorted."),
    coverage: bool = typer.Option(False, "--coverage", help="Report the states and transitions (rules) that no case exercised, with a percentage; and, when every case passes, the conditions no case showed deciding both ways and the window ends no case showed."),
    format: TestFormat = typer.Option(TestFormat.text, "--format", "-f", help="text: one line per case, failures under it; json: one object on stdout for programs."),
    mutants: bool = typer.Option(False, "--mutants", help="Mutation testing: run the cases against every small edit of the protocol (a threshold nudged, a comparison flipped, a window bound moved, a target swapped, an action or rule left out, ...) and report the mutation score: the edits the suite catches (docs/scenarios.md, \"Mutants\")."),
    jobs: int = typer.Option(0, "--jobs", "-j", min=0, help="With --mutants: worker processes (0: one per core)."),
    sample: int = typer.Option(1, "--sample", min=1, help="With --mutants: keep every Nth mutant only (a quick run)."),
    fail_under: float = typer.Option(None, "--fail-under", min=0, max=100, help="With --mutants: exit 1 when the mutation score is below this percentage."),
) -> None:
    """Run scenario files: each replays its timeline and checks its expectations.

    Exit status 0 when every case passes; 1 when one fails or is not a valid case file
    (reported as PATH:LINE:COL: error[CODE]: message, nothing simulated for that file); 2 when
    a file is missing.
    See docs/scenarios.md.
    """
    from rxwatch.suite.cases import case_files, run_suite
    from rxwatch.suite.coverage import coverage as measure

    try:
        paths = case_files(cases)  # first: a missing case is status 2 whatever the protocol
    except FileNotFoundError as exc:
        raise fail(str(exc))
    graph = load_graph(protocol, quiet_warnings=True)
    try:
        suite = run_suite(graph, paths)
    except OSError as exc:
        raise fail(f"{exc.filename or ''}: cannot read: {exc.strerror or exc}")
    report = measure(graph, suite.traces) if coverage else None
    conditions = _conditions(graph, suite, jobs, quiet=format is TestFormat.json) if coverage and suite.ok else None
    mutation = None
    if mutants and suite.ok:  # a suite that fails on the protocol itself scores nothing
        mutation = _mutants(protocol, graph, paths, jobs, sample, quiet=format is TestFormat.json)
    if format is TestFormat.json:
        data = {"protocol": suite.protocol, "summary": suite.summary(), "cases": [c.to_dict() for c in suite.cases]}
        if report is not None:
            data["coverage"] = report.to_dict()
            if conditions is not None:
                data["coverage"]["conditions"] = conditions.to_dict()
        if mutation is not None:
            data["mutation"] = mutation.to_dict()
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
    else:
        sources = Sources()
        sources.allow(*paths)
        _print_text(suite, report, sources)
        if conditions is not None:
            print(conditions.format_text(str(protocol)), file=_Escaped(sys.stdout))
        if mutation is not None:
            print(mutation.format_text(), file=_Escaped(sys.stdout))
        elif mutants:
            print("no mutation run: the cases must pass on the protocol itself first", file=_Escaped(sys.stdout))
    if not suite.ok:
        raise typer.Exit(int(Status.INPUT_ERROR))
    if mutation is not None and fail_under is not None and (mutation.score or 0) * 100 < fail_under:
        raise typer.Exit(int(Status.INPUT_ERROR))


def _conditions(graph, suite, jobs: int, quiet: bool):
    """Condition and window coverage of the (passing) suite (suite/conditions.py)."""
    from rxwatch.suite.cases import load_case
    from rxwatch.suite.conditions import condition_coverage

    cases = [(c.path, load_case(c.path, graph)) for c in suite.cases]
    return condition_coverage(graph, cases, jobs=jobs or None)


def _mutants(protocol: Path, graph, paths: list[str], jobs: int, sample: int, quiet: bool):
    """Run the mutation testing of the suite at `paths`, with a progress bar on a terminal."""
    from rxwatch.compiler import compile_source
    from rxwatch.suite.mutation import run_mutants

    from .output import looks_like_graph_file, read_text

    text = read_text(protocol, "protocol file")
    if looks_like_graph_file(protocol, text):
        raise fail(f"{protocol}: --mutants edits the protocol's text: give the .rxw file, not a compiled graph")
    module = compile_source(text, str(protocol), verify=False).module
    show = sys.stderr.isatty() and not quiet
    report = _run(protocol, text, module, graph, paths, jobs, sample, show)
    if sample == 1:  # a whole run: its survivors are what `rxwatch cases --for-survivors` kills
        from rxwatch.suite.mutation import save_last_run

        save_last_run(report, text)
    return report


def _run(protocol: Path, text: str, module, graph, paths: list[str], jobs: int, sample: int, show: bool):
    from rxwatch.suite.mutation import run_mutants

    if not show:
        return run_mutants(str(protocol), text, module, graph, paths, jobs=jobs or None, sample=sample)
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("mutants"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("mutants", total=None)
        return run_mutants(str(protocol), text, module, graph, paths, jobs=jobs or None, sample=sample,
                           progress=lambda done, total: bar.update(task, completed=done, total=total))


class _Escaped:
    """Standard output with every control character shown as an escape (`\\x1b`): a case
    file's description, path or expectation text cannot reach the terminal raw."""

    def __init__(self, stream) -> None:
        self.stream = stream

    def write(self, text: str) -> None:
        from rxwatch.compiler.diagnostics import sanitize

        self.stream.write(sanitize(text))

    def flush(self) -> None:
        self.stream.flush()


def _print_text(suite, report, sources: Sources) -> None:
    out = _Escaped(sys.stdout)
    for case in suite.cases:
        print_diagnostics(case.warnings, sources)
        if case.status == "pass":
            n = len(case.outcomes)
            print(f"PASS     {case.path} ({n} expectation{'s' if n != 1 else ''})", file=out)
        elif case.status == "fail":
            print(f"FAIL     {case.path} ({len(case.failures)} of {len(case.outcomes)} expectations not met)", file=out)
            if case.description:
                print(textwrap.fill(case.description, 100, initial_indent="  ", subsequent_indent="  "), file=out)
            for outcome in case.failures:
                print(f"  {outcome}", file=out)
        else:
            n = len(case.errors)
            what = "not a valid case file; nothing simulated" if case.status == "invalid" else "the simulation stopped"
            print(f"{case.status.upper():<8} {case.path} ({what}: {n} error{'s' if n != 1 else ''})", file=out)
            out.flush()
            print_diagnostics(case.errors, sources)
    s = suite.summary()
    parts = [f"{s['pass']} passed"]
    for status, word in (("fail", "failed"), ("invalid", "invalid"), ("error", "stopped")):
        if s[status]:
            parts.append(f"{s[status]} {word}")
    print(f"{s['cases']} case{'s' if s['cases'] != 1 else ''} for {suite.protocol}: {', '.join(parts)}", file=out)
    if report is not None:
        print(report.format_text(), file=out)
