"""`rxwatch fmt`: write protocols in the canonical layout (rxwatch.editor.fmt, docs/editors.md)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import List

import typer

from .app import app
from .output import Status, fail, print_diagnostics, read_text, written


def _replace(path: Path, text: str) -> None:
    """Write `path` whole or not at all (output.written), keeping its permissions and flushed to
    the disk before the rename; a symbolic link keeps pointing where it did."""
    target = Path(os.path.realpath(path)) if path.is_symlink() else path
    try:
        mode = target.stat().st_mode & 0o7777
    except OSError as e:
        raise fail(f"{path}: cannot write: {e.strerror or e}")
    with written(target, mode=mode) as tmp, \
            open(tmp, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


@app.command()
def fmt(
    protocols: List[Path] = typer.Argument(..., metavar="PROTOCOL...", help="Protocol files (.rxw) to format in place; `-` reads standard input and writes the result to standard output."),
    check: bool = typer.Option(False, "--check", help="Change nothing; list the files that would change and exit 1 when there are any."),
    diff: bool = typer.Option(False, "--diff", help="Change nothing; print what would change as a unified diff (standard output)."),
    width: int = typer.Option(100, "--width", min=40, max=400, help="The line width that one-line blocks and `cite` lists are wrapped at."),
) -> None:
    """Write protocols in the one canonical layout (docs/editors.md): indentation, blank lines,
    one rule per line, `cite` lists wrapped and aligned; comments kept, strings untouched.

    A file with a syntax error is reported as `rxwatch check` reports it and left as it is.
    Exit status 0 when every file is formatted (or, with --check, already was), 1 when a file
    has a syntax error or (--check) would change.
    """
    from rxwatch.editor.fmt import FormatError, diff as unified_diff, format_text

    errors = 0
    changed: list[str] = []
    unchanged = 0
    for path in protocols:
        stdin = str(path) == "-"
        if stdin:
            text = sys.stdin.read()
            name = "<stdin>"
        else:
            if path.is_dir():
                raise fail(f"{path}: is a directory, not a protocol file")
            text = read_text(path, "protocol file")
            name = str(path)
        try:
            new = format_text(text, name, width=width)
        except FormatError as e:
            print_diagnostics(e.diagnostics, text.lstrip("\ufeff"))
            errors += 1
            continue
        if new == text:
            unchanged += 1
            if stdin and not (check or diff):
                sys.stdout.write(new)
            continue
        changed.append(name)
        if diff:
            sys.stdout.write(unified_diff(text, new, name))
        if check:
            print(f"would reformat {name}", file=sys.stderr)
        elif stdin and not diff:
            sys.stdout.write(new)
        elif not diff:
            _replace(path, new)
    sys.stdout.flush()
    n = len(changed)
    if check or diff:
        summary = f"{n} file{'s' if n != 1 else ''} would be reformatted, {unchanged} already formatted"
    else:
        summary = f"{n} file{'s' if n != 1 else ''} reformatted, {unchanged} unchanged"
    if errors:
        summary += f", {errors} with syntax errors (left as they are)"
    print(summary, file=sys.stderr)
    if errors or (check and changed):
        raise typer.Exit(int(Status.INPUT_ERROR))
