"""A progress bar on standard error when it is a terminal (shared by `audit` and `cohort`)."""

from __future__ import annotations

import sys


def progress_bar(verb: str, unit: str):
    """(update(done, total), close): a Rich bar `VERB [bar] done/total UNIT elapsed` on standard
    error when it is a terminal; (None, a no-op) otherwise."""
    if not sys.stderr.isatty():
        return None, lambda: None
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(TextColumn(verb), BarColumn(), MofNCompleteColumn(), TextColumn(unit),
                   TimeElapsedColumn(), console=Console(stderr=True), transient=True)
    task = bar.add_task(verb, total=None)
    bar.start()

    def update(done: int, total: int) -> None:
        bar.update(task, completed=done, total=total)

    return update, bar.stop
