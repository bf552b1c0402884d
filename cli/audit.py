"""`rxwatch audit`: a protocol over a whole clinic's lab data (docs/audit.md)."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import List, Optional

import typer

from .app import app
from .output import Status, fail, load_graph, output_path, same_file, say, written

SHOWN_SKIPPED = 20


@app.command("audit")
def audit_(
    protocol: Path = typer.Argument(..., metavar="PROTOCOL", help="The protocol file (.rxw), or a compiled graph file.", exists=True, dir_okay=False, readable=True),
    inputs: List[Path] = typer.Argument(..., metavar="INPUT...", help="A CSV extract with a patient column, a FHIR Bulk Data export (a folder or NDJSON files), or a folder of timeline files and bundles.", exists=True),
    as_of: Optional[str] = typer.Option(None, "--as-of", metavar="DATE", help="The audit date (YYYY-MM-DD): replay up to it, count days overdue at it. Default: the last date in the inputs."),
    output_: Optional[str] = typer.Option(None, "--output", "-o", metavar="REPORT.html", help="Write the HTML report here (and the viewer pages of the most urgent patients beside it)."),
    table: Optional[str] = typer.Option(None, "--table", metavar="OUT.csv|OUT.parquet", help="Write the table, one row per patient, here (CSV or Parquet by the suffix)."),
    jobs: Optional[int] = typer.Option(None, "--jobs", "-j", min=1, metavar="N", help="Worker processes (default: one per core; 1: no worker process)."),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", metavar="tcp://HOST:PORT", help="Run the partitions on this Dask distributed scheduler instead of local processes."),
    fact: List[str] = typer.Option([], "--fact", metavar="NAME=VALUE", help="A fact for every patient (repeatable); a patient's own fact rows win."),
    pages: int = typer.Option(25, "--pages", min=0, metavar="N", help="Viewer pages for the N most urgent patients (the path on the flowchart; needs Graphviz)."),
) -> None:
    """Audit every patient of a clinic's extract against a protocol: where each patient is, what
    is overdue, what no one acted on, and how often care followed the pathway.

    Exit status 0 when every patient was audited, 1 when some patients were skipped for wrong
    input (each reported with its file and line, or resource id; the report and table still
    cover every other patient) or the protocol is wrong, 2 when a file is missing or an output
    cannot be written.
    """
    import datetime

    from rxwatch.audit import InputError, audit
    from rxwatch.inputs.reader import Reader

    report = output_path(output_)
    table_out = output_path(table)
    if table_out is not None and table_out.suffix.lower() not in (".csv", ".parquet"):
        raise fail(f"{table_out}: the table is .csv or .parquet")
    if report is None and table_out is None:
        raise fail("nothing to write: give -o REPORT.html, --table OUT.csv|OUT.parquet, or both")
    for out in (report, table_out):
        if out is not None and any(same_file(out, p) for p in (protocol, *inputs)):
            raise fail(f"{out}: would overwrite an input")
    if as_of is not None:
        try:
            datetime.date.fromisoformat(as_of)
        except ValueError:
            raise fail(f"--as-of {as_of}: not an ISO 8601 date (YYYY-MM-DD)")
    graph = load_graph(protocol, quiet_warnings=True)
    r = Reader("<command line>", graph.graph)
    _, _, facts = r.command_line(None, None, fact)
    if r.errors:
        for m in r.errors:
            say(f"error[{m.code}]: {m.text}")
        raise fail("wrong --fact; nothing audited", Status.INPUT_ERROR)

    progress, close = _progress()
    try:
        result = audit(graph, list(inputs), as_of=as_of, jobs=jobs, scheduler=scheduler, facts=facts,
                       keep=pages, progress=progress)
    except InputError as e:
        close()
        for path, line, code, text in e.messages:
            print(f"{path}:{line}: error[{code}]: {text}" if line else f"{path}: error[{code}]: {text}", file=sys.stderr)
        raise fail("an input cannot be read; nothing audited", Status.INPUT_ERROR)
    except OSError as e:
        close()
        raise fail(f"cannot run the audit: {e}")
    close()

    for s in result.skipped[:SHOWN_SKIPPED]:
        print(f"{s['where']}: error[{s['code']}]: {s['message']} (patient {s['patient']} skipped)", file=sys.stderr)
    for p in result.problems[:SHOWN_SKIPPED]:
        print(f"{p['where']}: error[{p['code']}]: {p['message']}", file=sys.stderr)
    hidden = max(0, len(result.skipped) - SHOWN_SKIPPED) + max(0, len(result.problems) - SHOWN_SKIPPED)
    if hidden:
        say(f"and {hidden} more (all in the report and the table's `problem` column)")

    if table_out is not None:
        _write_table(result.table, table_out)
        say(f"wrote {table_out}")
    if report is not None:
        _write_report(result, graph, report, pages)
        say(f"wrote {report}")
    audited = result.patients - len(result.skipped)
    say(f"{_n(audited, 'patient')} audited at {result.as_of}, {len(result.skipped)} skipped"
        + (f", {_n(len(result.problems), 'row')} of no patient left out" if result.problems else ""))
    if result.skipped or result.problems:
        raise typer.Exit(int(Status.INPUT_ERROR))


def _n(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _write_table(table, out: Path) -> None:
    with written(out) as tmp:
        if out.suffix.lower() == ".parquet":
            import pyarrow.parquet as pq

            pq.write_table(table, tmp)
        else:
            import pyarrow.csv as pcsv

            pcsv.write_csv(table, tmp)


def _write_report(result, graph, out: Path, pages: int) -> None:
    """The report and, beside it, a folder `REPORT_patients/` of viewer pages; each written
    whole or not at all (output.written)."""
    import json

    from rxwatch.audit.report import build, page_name

    folder = out.with_name(out.stem + "_patients")
    made: set[str] = set()
    with contextlib.ExitStack() as files:
        if pages and result.traces:
            from rxwatch.render import GraphvizMissing, RenderError, TraceError, render
            from rxwatch.render.trace import read as read_trace

            tmp_dir = files.enter_context(written(folder, folder=True))
            for patient, trace in result.traces.items():
                try:
                    data = render(graph, "html", trace=read_trace(json.dumps(trace)))
                except GraphvizMissing as e:  # no page can be drawn: say it once, write the report without links
                    say(f"no viewer pages: {e}")
                    break
                except (RenderError, TraceError) as e:
                    say(f"no viewer page for {patient}: {e}")
                    continue
                (tmp_dir / page_name(patient)).write_bytes(data)
                made.add(patient)
        text = build(result, graph.graph.get("name") or "protocol", folder.name if made else None, made)
        with written(out) as tmp:
            tmp.write_text(text, encoding="utf-8")


def _progress():
    from .progress import progress_bar

    return progress_bar("auditing", "partitions")
