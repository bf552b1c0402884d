"""A cache of compiled protocols, so that `simulate` and `audit` do not compile and verify the
same protocol on every run (0.3-0.4 s of a run's start-up for the shipped anakinra protocol).

An entry is the compiled graph of one protocol text, at one path, compiled by one version of
rxwatch; its name is the SHA-256 of all of these: the protocol's text, the path as given, the
Python version and a fingerprint of the code that makes a graph (the name, size and
modification time of every file of rxwatch's compiler, grammar and simulator, and of the
installed lark, z3, networkx and gmpy2).
Editing the protocol or rxwatch makes a new name, so a stale entry is never found. Only a
protocol that compiled without errors is kept, and only for the commands that print no
warnings of the protocol (simulate, audit): a run with the cache shows what a run without it
shows.

Where: `$RXWATCH_CACHE_DIR`, else `$XDG_CACHE_HOME/rxwatch/graphs`, else
`~/.cache/rxwatch/graphs`; `RXWATCH_CACHE_DIR=off` (or `none`, or empty) turns it off. An
entry is read only when the folder and the file belong to the user and nobody else can write
them (a pickle is code: an entry someone else could have written is never loaded), and only
when the name stored inside it is the one looked for. Entries are written to a temporary file
and renamed, so concurrent runs never see half an entry; any failure to read or write the
cache is silent, and the protocol is compiled as if there were none. At most MAX_ENTRIES are
kept (the oldest are removed).
"""

from __future__ import annotations

import hashlib
import os
import pickle
import stat
import sys
import tempfile
from pathlib import Path
from typing import Any

MAGIC = b"rxwatch-graph-cache 1\n"
MAX_ENTRIES = 64
_PACKAGES = ("rxwatch.compiler", "rxwatch.compiler.checks", "rxwatch.compiler.verify", "rxwatch.grammar",
             "rxwatch.simulator")
_LIBRARIES = ("lark", "z3", "networkx", "gmpy2")  # a new version is a new install: its files change


def directory() -> Path | None:
    """The cache folder, or None when the cache is off."""
    given = os.environ.get("RXWATCH_CACHE_DIR")
    if given is not None:
        return None if given.strip().lower() in ("", "off", "none", "0") else Path(given)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "rxwatch" / "graphs"


def fingerprint() -> bytes:
    """Name, size and modification time of every source file of the packages that make a
    compiled graph (the compiler, the grammar, the simulator's unit table)."""
    import importlib.util

    h = hashlib.sha256()
    for name in _PACKAGES:
        spec = importlib.util.find_spec(name)
        for folder in (spec.submodule_search_locations or ()) if spec else ():
            try:
                entries = sorted(os.scandir(folder), key=lambda e: e.name)
            except OSError:
                continue
            for entry in entries:
                if entry.name.endswith((".py", ".lark")) and entry.is_file():
                    st = entry.stat()
                    h.update(f"{name}/{entry.name}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    for name in _LIBRARIES:  # the parser, the verifier's prover, the graph's own type
        spec = importlib.util.find_spec(name)
        try:
            st = os.stat(spec.origin) if spec and spec.origin else None
        except OSError:
            st = None
        h.update(f"{name}:{spec.origin if spec else None}:{st and st.st_size}:{st and st.st_mtime_ns}\n".encode())
    return h.digest()


def key(path: str, text: str, *, verify: bool) -> str:
    """The entry's name. The graph format (compiler/lower.py's FORMAT) is in the fingerprint of
    the compiler's files: reading it here would import the compiler."""
    h = hashlib.sha256(MAGIC)
    for part in (sys.version, f"verify={verify}", path):
        h.update(part.encode("utf-8", "surrogatepass") + b"\0")
    h.update(fingerprint())
    h.update(text.encode("utf-8", "surrogatepass"))
    return h.hexdigest()


def _private(st: os.stat_result) -> bool:
    """Owned by this user, writable by nobody else."""
    return st.st_uid == os.getuid() and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def load(path: str, text: str, *, verify: bool) -> Any:
    """The cached graph of this protocol text, or None."""
    folder = directory()
    if folder is None:
        return None
    name = key(path, text, verify=verify)
    entry = folder / f"{name}.pickle"
    try:
        if not (_private(folder.stat()) and _private(entry.stat())):
            return None
        data = entry.read_bytes()
        if not data.startswith(MAGIC + name.encode() + b"\n"):
            return None
        return pickle.loads(memoryview(data)[len(MAGIC) + len(name) + 1:])
    except Exception:  # noqa: BLE001 - a missing, unreadable or broken entry: compile instead
        return None


def store(path: str, text: str, graph: Any, *, verify: bool) -> None:
    """Keep the graph of this protocol text (silently nothing when the cache cannot be written)."""
    folder = directory()
    if folder is None:
        return
    tmp = None
    try:
        name = key(path, text, verify=verify)
        data = MAGIC + name.encode() + b"\n" + pickle.dumps(graph, protocol=pickle.HIGHEST_PROTOCOL)
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not _private(folder.stat()):
            return
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=folder)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, folder / f"{name}.pickle")
        tmp = None
        _prune(folder)
    except Exception:  # noqa: BLE001 - the cache is only a shortcut
        pass
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass


def _prune(folder: Path) -> None:
    entries = []
    for e in os.scandir(folder):
        if e.name.endswith(".pickle"):
            try:
                entries.append((e.stat().st_mtime_ns, e.path))
            except OSError:
                pass
    for _, p in sorted(entries)[:-MAX_ENTRIES]:
        try:
            os.unlink(p)
        except OSError:
            pass
