"""`rxwatch cases`: generate scenario files for a tester to review and keep (docs/scenarios.md)."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from .app import app
from .output import Status, fail, load_protocol, say


@app.command("cases")
def generate_cases(
    protocol: Path = typer.Argument(..., metavar="PROTOCOL", help="The protocol file (.rxw).", exists=True, dir_okay=False, readable=True),
    out: Path = typer.Option(..., "--output", "-o", metavar="DIR", help="The folder to write the case files to (created if missing; existing files are never overwritten)."),
    reach: bool = typer.Option(True, "--reach/--no-reach", help="A shortest timeline found that fires each rule."),
    boundary: bool = typer.Option(True, "--boundary/--no-boundary", help="The values just on each side of every threshold a guard compares, at the labs' precision."),
    for_survivors: bool = typer.Option(False, "--for-survivors", help="Only cases that kill the mutants that survived the last `rxwatch test ... --mutants` run of this protocol (kept in .rxwatch/ in the current folder)."),
) -> None:
    """Generate scenario files (a timeline and the expectations the protocol gives today), each
    marked as generated, for a tester to review, keep or delete.

    Exit status 0 when the files are written (rules or mutants that no generated case reaches
    are listed); 1 when the protocol has errors or there is no usable last mutation run; 2 when
    the folder cannot be written.
    """
    from rxwatch.suite.generate import Generator, boundary_cases, killing_cases, reach_cases, write_cases

    if out.exists() and not out.is_dir():
        raise fail(f"{out}: not a folder")
    result = load_protocol(protocol, quiet_warnings=True)
    graph, text = result.graph, result.source
    gen = Generator(graph, str(protocol))
    reached = gen.search()
    cases = []
    if for_survivors:
        from rxwatch.suite.mutation import last_survivors

        try:
            survivors = last_survivors(graph.graph.get("name", ""), result.module, text)
        except LookupError as exc:
            raise fail(str(exc), Status.INPUT_ERROR)
        pool = list(reached.values())
        pool += [c.prefix for c in boundary_cases(gen, reached)]
        cases, left = killing_cases(gen, pool, survivors, str(protocol))
        missing_text = [f"line {m.span.line}: {m.operator}: {m.edit}" for m in left]
        what = "surviving mutant" if len(missing_text) == 1 else "surviving mutants"
    else:
        missing_keys = []
        if reach:
            found, missing_keys = reach_cases(gen, reached)
            cases += found
        if boundary:
            cases += boundary_cases(gen, reached)
        missing_text = [f"{k} (line {gen.edges[k]['span']['line']})" for k in missing_keys]
        what = "rule no generated timeline fires" if len(missing_text) == 1 else "rules no generated timeline fires"
    try:
        written = write_cases(cases, out)
    except OSError as exc:
        raise fail(f"{out}: cannot write: {exc.strerror or exc}")
    kinds = {}
    for c in cases:
        kinds[c.kind] = kinds.get(c.kind, 0) + 1
    detail = ", ".join(f"{n} {k}" for k, n in kinds.items()) or "none"
    print(f"wrote {len(written)} case file{'s' if len(written) != 1 else ''} to {out} ({detail}); "
          f"review each before keeping it")
    if missing_text:
        say(f"{len(missing_text)} {what}:")
        for line in missing_text:
            say(f"  {line}")

