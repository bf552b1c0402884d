"""`rxwatch cohort`: synthetic patients through one or more protocols, closed loop (docs/cohort.md)."""

from __future__ import annotations

import contextlib
import datetime
import os
import sys
from pathlib import Path
from typing import List, Optional

import typer

from .app import app
from .output import PREFER_HELP, Sources, check_prefer, check_writable, Status, fail, load_graph, output_path, print_diagnostics, same_file, say, \
    write_atomic, written

SHOWN_FAILED = 20


@app.command("cohort")
def cohort_(
    protocols: List[Path] = typer.Argument(..., metavar="PROTOCOL...", help="Protocol files (.rxw) or compiled graphs; the first is the reference of the paired differences.", exists=True, dir_okay=False, readable=True),
    model_: str = typer.Option(..., "--model", metavar="MODEL.yaml", help="The patient model: a file, or a shipped model's name (anakinra, leflunomide, tocilizumab; docs/cohort.md#the-patient-model)."),
    patients: int = typer.Option(..., "--patients", min=1, metavar="N", help="Synthetic patients (each sees every protocol)."),
    years: float = typer.Option(..., "--years", metavar="Y", help="Follow-up of each patient, in years (e.g. 2, or 0.5)."),
    seed: int = typer.Option(..., "--seed", min=0, metavar="S", help="The cohort's seed: the same seed gives the same patients, results and report."),
    output_: Optional[str] = typer.Option(None, "--output", "-o", metavar="REPORT.html", help="Write the HTML report here (self-contained)."),
    table: Optional[str] = typer.Option(None, "--table", metavar="OUT.parquet", help="Write one row per patient and protocol here (Parquet)."),
    plot: Optional[str] = typer.Option(None, "--plot", metavar="DIR", help="Write the plots here, PNG and SVG."),
    jobs: Optional[int] = typer.Option(None, "--jobs", "-j", min=1, metavar="N", help="Worker processes (default: one per core; 1: no worker process)."),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", metavar="tcp://HOST:PORT", help="Run the chunks of patients on this Dask distributed scheduler instead of local processes."),
    start: Optional[str] = typer.Option(None, "--start", metavar="DATE", help="The first day of every patient's follow-up (YYYY-MM-DD; default 2025-01-06)."),
    resamples: int = typer.Option(1000, "--resamples", min=0, metavar="B", help="Bootstrap resamples for the 95% intervals (0: no intervals)."),
    prefer: List[str] = typer.Option([], "--prefer", metavar="[N:]ACTION", help=PREFER_HELP + " N:ACTION: for the Nth protocol only (1 the first), which then takes no other --prefer; the same protocol given twice with two policies compares them on the same patients."),
) -> None:
    """Simulate N synthetic patients through each protocol, closed loop: the protocol's orders
    decide when blood is drawn, its holds, dose reductions and stops change the patient. Prints
    the metrics per protocol with 95% intervals and the paired differences against the first.

    Exit status 0 when every patient was simulated, 1 when a protocol or the model is wrong
    (nothing simulated) or some patients could not be simulated (each reported; the outputs
    cover the others), 2 when a file is missing, an option is wrong or an output cannot be
    written (nothing is written).
    """
    from rxwatch.cohort.scale import DEFAULT_START

    model = _model_file(model_)
    report = output_path(output_)
    table_out = output_path(table)
    plot_dir = Path(plot) if plot else None
    if table_out is not None and table_out.suffix.lower() != ".parquet":
        raise fail(f"{table_out}: the table is Parquet: give a name ending in .parquet")
    if not (0 < years <= 100):
        raise fail(f"--years {years:g}: give a follow-up above 0 and at most 100 years")
    if plot_dir is not None and plot_dir.exists() and not plot_dir.is_dir():
        raise fail(f"{plot_dir}: --plot names a folder, and this is a file")
    inputs = (*protocols, model)
    for out in (report, table_out, plot_dir):
        if out is not None and any(same_file(out, p) for p in inputs):
            raise fail(f"{out}: would overwrite an input")
        if out is not None and not out.absolute().parent.is_dir():
            raise fail(f"{out}: cannot write: no folder {out.parent}")
    for out in (report, table_out):  # before minutes of simulation, not after
        if out is not None:
            check_writable(out, inputs=inputs)
    if plot_dir is not None:
        folder = plot_dir if plot_dir.is_dir() else plot_dir.absolute().parent
        if not os.access(folder, os.W_OK | os.X_OK):
            raise fail(f"{plot_dir}: cannot write: folder {folder} cannot be written")
    day0 = DEFAULT_START
    if start is not None:
        try:
            day0 = datetime.date.fromisoformat(start)
        except ValueError:
            raise fail(f"--start {start}: not an ISO 8601 date (YYYY-MM-DD)")

    shared, own = _policies(prefer, len(protocols))
    the_model = _load_model(model)
    arms = _arms(protocols, the_model, [own.get(i, shared) for i in range(len(protocols))])
    check_prefer(shared, [(a.label, a.ready().machine) for a in arms])
    for i, actions in own.items():
        check_prefer(actions, [(arms[i].label, arms[i].ready().machine)], position=i + 1)

    from rxwatch.cohort.scale import Cohort, run_cohort

    cohort = Cohort(arms, the_model, patients=patients, years=years, seed=seed, start=day0)
    from .progress import progress_bar

    with contextlib.ExitStack() as files:
        writer = None
        if table_out is not None:  # streamed as patients finish; in place only if all goes well
            writer = _TableWriter(files.enter_context(written(table_out)))
            files.callback(writer.close)
        progress, close = progress_bar("simulating", "patients")
        try:
            result = run_cohort(cohort, jobs=jobs, scheduler=scheduler, progress=progress, resamples=resamples,
                                on_rows=writer.write if writer is not None else None)
        except OSError as e:
            raise fail(f"cannot run the cohort: {e.strerror or e}")
        finally:
            close()

        from rxwatch.cohort.report import build, text_summary

        for f in result.failed[:SHOWN_FAILED]:
            print(f"{f['problem']} (patient {f['patient']}, {f['protocol']}: not counted)", file=sys.stderr)
        if len(result.failed) > SHOWN_FAILED:
            say(f"and {len(result.failed) - SHOWN_FAILED} more (all in the report and the table's `problem` column)")
        if writer is not None:
            writer.finish()
    if table_out is not None:
        say(f"wrote {table_out}")
    if plot_dir is not None:
        _write_plots(result, plot_dir)
        say(f"wrote {plot_dir}/")
    if report is not None:
        write_atomic(report, build(result, model_name=model_), inputs=inputs)
        say(f"wrote {report}")
    print(text_summary(result, model_name=model_))
    if result.failed:
        raise typer.Exit(int(Status.INPUT_ERROR))


def _model_file(name: str) -> Path:
    """The model's file: the path given, or the shipped model of that name; exit 2 if none."""
    from rxwatch.cohort.model import model_path, shipped_models

    path = Path(model_path(name))
    if path.is_dir():
        raise fail(f"{name}: is a folder, not a model file")
    if not path.is_file():
        raise fail(f"{name}: no such model file, nor a shipped model (shipped: {', '.join(shipped_models())})")
    return path


def _load_model(path: Path):
    from rxwatch.cohort.model import ModelError, load_model

    try:
        return load_model(path)
    except ModelError as e:
        print_diagnostics(e.diagnostics, _text(path))
        raise fail(f"{path}: not a usable patient model; nothing simulated", Status.INPUT_ERROR)
    except OSError as e:
        raise fail(f"{path}: cannot read: {e.strerror or e}")


def _text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def _policies(prefer: list[str], n: int) -> tuple[tuple[str, ...], dict[int, tuple[str, ...]]]:
    """The --prefer options: the actions for every protocol, and those of protocol i (from 0)
    given as `N:ACTION` (exit 2 for an N that is no protocol's position)."""
    shared: list[str] = []
    own: dict[int, list[str]] = {}
    for entry in prefer:
        if ":" not in entry:
            shared.append(entry)
            continue
        number, action = entry.split(":", 1)
        if not number.isdigit() or not 1 <= int(number) <= n or not action:
            raise fail(f"--prefer {entry}: N:ACTION takes the position of a protocol of the command line "
                       f"(1{' to ' + str(n) if n > 1 else ''}) and an action")
        own.setdefault(int(number) - 1, []).append(action)
    return tuple(dict.fromkeys(shared)), {i: tuple(dict.fromkeys(a)) for i, a in own.items()}


def _arms(protocols: list[Path], model, policies: list[tuple[str, ...]]) -> list:
    """Each protocol compiled (exit 1 on errors), labelled by its name (by its policy too when
    one protocol runs under two; by the file's name when two files share a name), and checked
    against the model (cohort.run.check_arm: E950 stops, W950 warns)."""
    from rxwatch.cohort.run import Arm, check_arm

    sources = Sources()
    graphs = [load_graph(path, quiet_warnings=True, sources=sources) for path in protocols]
    names = [g.graph.get("name") or path.stem for g, path in zip(graphs, protocols)]
    arms = []
    seen: set[str] = set()
    problems = []
    for i, (path, graph, name, policy) in enumerate(zip(protocols, graphs, names, policies)):
        if any(same_file(path, other) and policy == theirs for other, theirs in zip(protocols[:i], policies)):
            raise fail(f"{path}: given twice" + (" with the same --prefer" if any(policies) else ""))
        # one protocol under two policies: each arm of it says its policy
        told = len({p for other, p in zip(names, policies) if other == name}) > 1
        said = f" ({'prefer ' + ', '.join(policy) if policy else 'first option'})" if told else ""
        label = name + said
        if label in seen:
            label = str(path) + said
        if label in seen:
            raise fail(f"{path}: given twice" + (" with the same --prefer" if told else ""))
        seen.add(label)
        arm = Arm.of(label, graph, prefer=policy)
        problems += check_arm(arm, model, sources.get(str(path)) or "")
        arms.append(arm)
    print_diagnostics(problems, sources)
    if any(d.is_error for d in problems):
        raise fail("a protocol the cohort cannot simulate; nothing simulated", Status.INPUT_ERROR)
    return arms


class _TableWriter:
    """The table streamed, as the patients finish, into `tmp` (output.written's temporary file,
    renamed into place once the cohort has run: never a partial table)."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.writer = None

    def write(self, table) -> None:
        import pyarrow.parquet as pq

        if self.writer is None:
            self.writer = pq.ParquetWriter(self.tmp, table.schema)
        self.writer.write_table(table)

    def finish(self) -> None:
        if self.writer is None:
            from rxwatch.cohort.run import schema

            self.write(schema().empty_table())
        self.close()

    def close(self) -> None:
        if self.writer is not None:
            self.writer, writer = None, self.writer
            writer.close()


def _write_plots(result, folder: Path) -> None:
    """The plots written into a temporary folder beside `folder`, then put in its place."""
    from rxwatch.cohort.plots import write_all

    with written(folder, folder=True) as tmp:
        write_all(result, tmp)


