"""What every command shares: reporting diagnostics, writing output files whole, exit codes."""

from __future__ import annotations

import os
import sys
import tempfile
from enum import IntEnum
from pathlib import Path

import typer


class Status(IntEnum):
    OK = 0
    INPUT_ERROR = 1  # the input is wrong: a protocol with errors, an invalid timeline, a failing case
    CANNOT_RUN = 2  # bad usage, missing/unreadable file, unwritable output, Graphviz missing
    INTERNAL = 3


def fail(message: str, status: Status = Status.CANNOT_RUN) -> typer.Exit:
    """Print `rxwatch: message` to stderr and return the Exit to raise."""
    print(f"rxwatch: {message}", file=sys.stderr)
    return typer.Exit(int(status))


def read_text(path: Path, what: str = "file") -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise fail(f"{path}: no such {what}")
    except IsADirectoryError:
        raise fail(f"{path}: is a directory, not a {what}")
    except UnicodeDecodeError as e:
        raise fail(f"{path}: not UTF-8 text (byte {e.start})")
    except OSError as e:
        raise fail(f"{path}: cannot read: {e.strerror}")


def same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomic(out: Path, data: str | bytes, *, inputs: tuple[Path, ...] = ()) -> None:
    """Write `out` whole or not at all: a temporary file beside it, then a rename.

    Refuses to overwrite any of `inputs`. Raises typer.Exit(2) when it cannot write.
    """
    for i in inputs:
        if same_file(out, i):
            raise fail(f"{out}: refusing to overwrite an input file")
    if out.is_symlink():  # write where the link points, and keep the link
        out = Path(os.path.realpath(out))
    parent = out.parent if str(out.parent) else Path(".")
    if out.exists() and out.is_dir():
        raise fail(f"{out}: is a directory")
    if out.exists() and not out.is_file():
        # a pipe or a device (`-o /dev/stdout`): write into it, never replace the node
        binary = isinstance(data, bytes)
        try:
            with open(out, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8"})) as f:
                f.write(data)
        except OSError as e:
            raise fail(f"{out}: cannot write: {e.strerror or e}")
        return
    if not parent.is_dir():
        raise fail(f"{out}: cannot write: folder {parent} does not exist")
    mode = "wb" if isinstance(data, bytes) else "w"
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=parent)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it 0600; an output file follows the umask
        with os.fdopen(fd, mode, **({} if mode == "wb" else {"encoding": "utf-8"})) as f:
            f.write(data)
        os.replace(tmp, out)
        tmp = None
    except OSError as e:
        raise fail(f"{out}: cannot write: {e.strerror or e}")
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


def emit(data: str, out: Path | None, *, inputs: tuple[Path, ...] = ()) -> None:
    """Results to standard output, or whole to `out`."""
    if out is None:
        sys.stdout.write(data)
        sys.stdout.flush()
    else:
        write_atomic(out, data, inputs=inputs)


def print_diagnostics(diags, source: str | None) -> None:
    from rxwatch.compiler.diagnostics import format_text

    for d in diags:
        print(format_text(d, source), file=sys.stderr)


def load_protocol(path: Path, *, verify: bool = True, quiet_warnings: bool = False):
    """Compile a protocol for a command that needs its graph; exit 1 on errors, printing them."""
    from rxwatch.compiler import compile_source

    text = read_text(path, "protocol file")
    result = compile_source(text, str(path), verify=verify)
    shown = [d for d in result.diagnostics if d.is_error or not quiet_warnings]
    print_diagnostics(shown, text)
    if not result.ok:
        n = sum(d.is_error for d in result.diagnostics)
        raise fail(f"{path}: {n} error{'s' if n != 1 else ''}; nothing done", Status.INPUT_ERROR)
    return result
