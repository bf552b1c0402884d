"""What every command shares: reporting diagnostics, writing output files whole, exit codes."""

from __future__ import annotations

from typing import Any, Iterable, Iterator

import contextlib
import os
import shutil
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


def say(message: str) -> None:
    """Print `rxwatch: message` to stderr, every control character and lone surrogate (a file
    name that is not UTF-8) shown as an escape: no input can change what the terminal shows."""
    from rxwatch.compiler.diagnostics import sanitize

    print(f"rxwatch: {sanitize(message, newlines=False)}", file=sys.stderr)


def fail(message: str, status: Status = Status.CANNOT_RUN) -> typer.Exit:
    """Print `rxwatch: message` to stderr (as `say`) and return the Exit to raise."""
    say(message)
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
    """Whether `a` and `b` name one file: the same file when both exist (links and hard links
    included), else the same path once resolved (two outputs not yet written)."""
    a, b = Path(a), Path(b)
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
        return a.resolve() == b.resolve()
    except OSError:
        return False


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


TEMP_PREFIX = ".rxwatch-"
"""Temporary files are `.rxwatch-PID-RANDOM.tmp` beside the output: a short name whatever the
output's (an output name of 255 characters still works), and the writer's process id, so that
a temporary file left by a killed rxwatch (SIGKILL between the write and the rename) is removed
by the next rxwatch that writes into that folder; it is never read."""


def output_path(raw: str | None) -> Path | None:
    """The `-o` option as a path; a name ending in a separator (`out.json/`) names a folder and
    is refused (exit 2), rather than written as `out.json`."""
    if raw is None:
        return None
    if raw == "" or raw.endswith(("/", os.sep)):
        raise fail(f"{raw or '(empty)'}: -o names a folder, not a file; give the file's name")
    return Path(raw)


def _clean_stale(parent: Path) -> None:
    """Remove the temporary files and folders of rxwatch processes that no longer run (killed
    mid-write)."""
    try:
        names = [e.name for e in os.scandir(parent) if e.name.startswith(TEMP_PREFIX) and e.name.endswith(".tmp")]
    except OSError:
        return
    for name in names:
        pid = name[len(TEMP_PREFIX):].split("-", 1)[0]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
            continue  # that writer still runs (or the pid is another process's now): left alone
        except ProcessLookupError:
            pass
        except (PermissionError, OverflowError, OSError):
            continue
        try:
            if os.path.isdir(parent / name) and not os.path.islink(parent / name):
                shutil.rmtree(parent / name)  # a folder being written (`written(folder=True)`)
            else:
                os.unlink(parent / name)
        except OSError:
            pass


def write_atomic(out: Path, data: str | bytes | Iterable[str], *, inputs: tuple[Path, ...] = ()) -> None:
    """Write `out` whole or not at all: a temporary file beside it, then a rename. `data` may
    be text made in pieces (an iterable of str), written as they come.

    Refuses to overwrite any of `inputs`. Raises typer.Exit(2) when it cannot write.
    """
    try:
        _write_atomic(out, data, inputs)
    except OSError as e:  # a name too long, a folder that vanished, a full disk...
        raise fail(f"{out}: cannot write: {e.strerror or e}")


def _write(f, data) -> None:
    if isinstance(data, (str, bytes)):
        f.write(data)
        return
    pieces: list = []  # text made in many small pieces (a JSON encoder's) is written 4,096 at a time
    for piece in data:
        pieces.append(piece)
        if len(pieces) >= 4096:
            f.write("".join(pieces))
            pieces.clear()
    if pieces:
        f.write("".join(pieces))


def check_writable(out: Path, *, inputs: tuple[Path, ...] = ()) -> tuple[Path, bool]:
    """What `write_atomic` checks before it writes, for a command to check before it runs (so
    that a second output is never written when the first cannot be): exit 2 when `out` is an
    input, a folder, in no folder, in a folder that cannot be written, or a name the file system
    refuses. Return where to write (a link's target) and whether it is a pipe or a device."""
    for i in inputs:
        if same_file(out, i):
            raise fail(f"{out}: refusing to overwrite an input file")
    try:
        if out.is_symlink():  # write where the link points, and keep the link
            out = Path(os.path.realpath(out))
        parent = out.parent if str(out.parent) else Path(".")
        if out.exists() and out.is_dir():
            raise fail(f"{out}: is a directory")
        if out.exists() and not out.is_file():
            return out, True
        if not parent.is_dir():
            raise fail(f"{out}: cannot write: folder {parent} does not exist")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise fail(f"{out}: cannot write: folder {parent} cannot be written")
        os.lstat(out)
    except FileNotFoundError:
        pass
    except OSError as e:  # a name too long, a loop of links
        raise fail(f"{out}: cannot write: {e.strerror or e}")
    return out, False


def _write_atomic(out: Path, data: str | bytes | Iterable[str], inputs: tuple[Path, ...]) -> None:
    out, device = check_writable(out, inputs=inputs)
    binary = isinstance(data, bytes)
    if device:
        # a pipe or a device (`-o /dev/stdout`): write into it, never replace the node
        with open(out, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8"})) as f:
            _write(f, data)
        return
    with _written(out) as tmp, open(tmp, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8"})) as f:
        _write(f, data)


@contextlib.contextmanager
def written(out: Path, *, folder: bool = False, mode: int | None = None) -> Iterator[Path]:
    """The one way rxwatch writes an output whole or not at all: a temporary path beside `out`
    (`.rxwatch-PID-RANDOM.tmp`: a file, or with `folder` an empty folder) for the block to write
    into, put in `out`'s place when the block ends (a folder: the old one moved aside, then
    removed), removed when it raises. Permissions follow the umask, or are `mode` (a file
    rewritten in place keeps its own). An OSError, in the block or in the rename, exits 2 with
    `OUT: cannot write: ...`; nothing is left behind."""
    try:
        with _written(out, folder=folder, mode=mode) as tmp:
            yield tmp
    except OSError as e:  # a name too long, a folder that vanished, a full disk...
        raise fail(f"{out}: cannot write: {e.strerror or e}")


@contextlib.contextmanager
def _written(out: Path, *, folder: bool = False, mode: int | None = None) -> Iterator[Path]:
    parent = out.parent if str(out.parent) else Path(".")
    _clean_stale(parent)
    prefix = f"{TEMP_PREFIX}{os.getpid()}-"
    if folder:
        tmp = Path(tempfile.mkdtemp(prefix=prefix, suffix=".tmp", dir=parent))
    else:
        fd, name = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=parent)
        os.close(fd)
        tmp = Path(name)
    try:
        # mkstemp and mkdtemp make it private
        os.chmod(tmp, mode if mode is not None else (0o777 if folder else 0o666) & ~_umask())
        yield tmp
        if folder:
            aside = None
            if os.path.lexists(out):
                aside = Path(tempfile.mkdtemp(prefix=prefix, suffix=".tmp", dir=parent))
                os.replace(out, aside / "old")
            try:
                os.replace(tmp, out)
            except OSError:
                if aside is not None:  # the old folder back in its place
                    os.replace(aside / "old", out)
                    aside.rmdir()
                raise
            if aside is not None:
                shutil.rmtree(aside, ignore_errors=True)
        else:
            os.replace(tmp, out)
    finally:
        if folder:
            shutil.rmtree(tmp, ignore_errors=True)
        elif os.path.lexists(tmp):
            os.unlink(tmp)


def emit(data: str | Iterable[str], out: Path | None, *, inputs: tuple[Path, ...] = ()) -> None:
    """Results to standard output, or whole to `out`; text made in pieces is written as it comes."""
    if out is None:
        _write(sys.stdout, data)
        sys.stdout.flush()
    else:
        write_atomic(out, data, inputs=inputs)


class Sources:
    """The text of the files a command read, by path, for the source line under a diagnostic.

    Only files the command was given are ever read (`allow`): a path inside an untrusted
    input (a graph file names its protocol) is never opened to show a line of it."""

    MAX_BYTES = 50_000_000

    def __init__(self) -> None:
        self.texts: dict[str, str | None] = {}
        self.allowed: set[str] = set()

    def add(self, path: Path | str, text: str) -> None:
        self.texts[str(path)] = text

    def allow(self, *paths: Path | str) -> None:
        self.allowed.update(str(p) for p in paths)

    def get(self, path: str) -> str | None:
        if path not in self.texts:
            text = None
            if path in self.allowed:
                try:
                    p = Path(path)
                    if p.is_file() and p.stat().st_size <= self.MAX_BYTES:
                        text = p.read_text(encoding="utf-8-sig", errors="replace")
                except OSError:
                    text = None
            self.texts[path] = text
        return self.texts[path]


def print_diagnostics(diags, sources: "Sources | str | None" = None) -> None:
    """Every diagnostic, one shape (`PATH:LINE:COL: SEVERITY[CODE]: MESSAGE`, the source line,
    a caret), on standard error. `diags`: Diagnostics or anything `as_diagnostic` converts
    (the timeline's Message). `sources`: the text of every diagnostic's file, or a Sources."""
    from rxwatch.compiler.diagnostics import as_diagnostic, format_text

    for d in map(as_diagnostic, diags):
        source = sources.get(d.span.path) if isinstance(sources, Sources) else sources
        print(format_text(d, source), file=sys.stderr)
    sys.stderr.flush()


def diagnostics_of(exc: BaseException, *, path: Path | str = "", text: str = "") -> list:
    """The one place where the library's error types become Diagnostics: a timeline's or a
    case file's messages, a graph file's faults, a simulation that stopped, a trace that does
    not fit (render's TraceError, or a JSONDecodeError, of the trace file `path` whose `text`
    locates it). Anything with a `diagnostic()` or `diagnostics` of its own is taken as it is."""
    import json

    from rxwatch.compiler.diagnostics import ERROR, Diagnostic, as_diagnostic

    own = getattr(exc, "diagnostics", None)
    if isinstance(own, list):
        return [as_diagnostic(d) for d in own]
    if callable(getattr(exc, "diagnostic", None)):
        return [as_diagnostic(exc)]
    messages = getattr(exc, "messages", None)
    if isinstance(messages, list):  # TimelineError, CaseError
        return [as_diagnostic(m) for m in messages]
    from rxwatch.simulator.engine import SimulationError

    if isinstance(exc, SimulationError):
        # a zero-time loop names the states that loop; anything else is a graph the simulator
        # cannot run (on reading it, or a failure while evaluating it on a day)
        code = getattr(exc, "code", "") or ("E901" if exc.states else "E902")
        return [Diagnostic.at(exc.path or "<protocol>", exc.line, exc.message, ERROR, code)]
    if isinstance(exc, json.JSONDecodeError):  # a trace file that is not JSON
        return [Diagnostic.at(str(path), exc.lineno, f"not a JSON trace: {exc.msg}", ERROR, "E920", exc.colno)]
    from rxwatch.render import TraceError
    from rxwatch.render.trace import locate

    if isinstance(exc, TraceError):
        place = exc.place()
        return [Diagnostic.at(str(path), locate(text, exc.where) or 0, f"{place + ': ' if place else ''}{exc.message}",
                              ERROR, "E920")]
    raise TypeError(f"no diagnostics for {type(exc).__name__}") from exc


PREFER_HELP = ("Where a protocol's `do one of` offers ACTION and no recorded choice decides the day, take "
               "ACTION instead of the first option (repeatable: the first offered wins), e.g. --prefer "
               "reduce_dose: a clinic that reduces the dose where the protocol would hold it.")


def check_prefer(prefer: list[str] | tuple[str, ...], protocols: list[tuple[str, Any]], *,
                 position: int | None = None) -> tuple[str, ...]:
    """The --prefer actions, each checked to be an option of some `do one of` of the
    `(label, Machine)` pairs (exit 2 if not: a misspelt action would otherwise change nothing,
    silently); duplicates dropped, the order kept. `position`: they were given as
    `--prefer N:ACTION` for the Nth protocol, and the message says so."""
    offered: set[str] = set()
    for _, machine in protocols:
        offered |= machine.offered
    for action in prefer:
        if action not in offered:
            given = action if position is None else f"{position}:{action}"
            raise fail(f"--prefer {given}: no `do one of` of "
                       f"{' or '.join(label for label, _ in protocols)} offers it "
                       f"({'its' if len(protocols) == 1 else 'their'} options: {', '.join(sorted(offered)) or 'none'})")
    return tuple(dict.fromkeys(prefer))


def count(diags, what: str = "error") -> str:
    n = sum(getattr(d, "severity", "error") == what for d in diags)
    return f"{n} {what}{'s' if n != 1 else ''}"


def looks_like_graph_file(path: Path, text: str) -> bool:
    """A PROTOCOL argument that is a compiled graph: by content (a JSON object with nodes and
    edges, or an rxwatch format stamp), or by a `.json` name (then reported as a graph file,
    whatever it holds)."""
    if path.suffix.lower() == ".json":
        return True
    if not text.lstrip("\ufeff \t\r\n").startswith("{"):
        return False  # graphio.looks_like_graph's first test, without importing graphio (and networkx)
    from rxwatch.compiler import graphio

    return graphio.looks_like_graph(text)


def load_graph(path: Path, *, verify: bool = True, quiet_warnings: bool = False, sources: Sources | None = None):
    """The compiled graph of a PROTOCOL argument for a command that runs it: a protocol (.rxw)
    compiled, or a compiled graph file (`rxwatch compile -o X.json`) read and validated
    whole. Exit 1 on errors, printing them. With `quiet_warnings`, a protocol compiled before
    comes from the cache of compiled protocols (cli/graphcache.py)."""
    text = read_text(path, "protocol file")
    if sources is not None:
        sources.add(path, text)
    if looks_like_graph_file(path, text):
        from rxwatch.compiler import graphio

        try:
            return graphio.from_json(text, str(path))
        except graphio.GraphError as e:
            print_diagnostics(e.diagnostics, text)
            raise fail(f"{path}: {count(e.diagnostics)}; not a compiled graph rxwatch can run", Status.INPUT_ERROR)
    if not quiet_warnings:
        return _compiled(path, text, verify=verify, quiet_warnings=quiet_warnings).graph
    from . import graphcache  # a command that shows no warnings shows nothing for a protocol without errors

    graph = graphcache.load(str(path), text, verify=verify)
    if graph is None:
        graph = _compiled(path, text, verify=verify, quiet_warnings=quiet_warnings).graph
        graphcache.store(str(path), text, graph, verify=verify)
    return graph


def load_protocol(path: Path, *, verify: bool = True, quiet_warnings: bool = False):
    """Compile a protocol for a command that needs its graph; exit 1 on errors, printing them."""
    text = read_text(path, "protocol file")
    if looks_like_graph_file(path, text):
        raise fail(f"{path}: a compiled graph, not a protocol (.rxw): there is nothing to compile", Status.INPUT_ERROR)
    return _compiled(path, text, verify=verify, quiet_warnings=quiet_warnings)


def _compiled(path: Path, text: str, *, verify: bool, quiet_warnings: bool):
    from rxwatch.compiler import compile_source

    result = compile_source(text, str(path), verify=verify)
    shown = [d for d in result.diagnostics if d.is_error or not quiet_warnings]
    print_diagnostics(shown, text)
    if not result.ok:
        n = sum(d.is_error for d in result.diagnostics)
        raise fail(f"{path}: {n} error{'s' if n != 1 else ''}; nothing done", Status.INPUT_ERROR)
    return result
