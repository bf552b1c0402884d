"""The cache of compiled protocols that `simulate` and `audit` read (cli/graphcache.py): the
same output with it as without it, a changed protocol never served from it, and an entry that
is not the one looked for, or that someone else could have written, never loaded."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import pytest

from rxwatch.cli import graphcache
from rxwatch.cli.main import main

ROOT = Path(__file__).resolve().parent.parent
PROTOCOL = ROOT / "protocols" / "anakinra_hepatotoxicity.rxw"
TIMELINE = """\
patient: {id: p-1, facts: {indication: rheumatoid_arthritis}}
start: 2025-01-06
events:
  - {date: 2025-01-06, lab: ALT, value: 30, unit: U/L}
  - {date: 2025-01-06, lab: AST, value: 28, unit: U/L}
  - {date: 2025-02-03, lab: ALT, value: 150, unit: U/L}
  - {date: 2025-02-03, lab: AST, value: 90, unit: U/L}
"""


@pytest.fixture
def work(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("RXWATCH_CACHE_DIR", str(cache))
    protocol = tmp_path / "p.rxw"
    shutil.copy(PROTOCOL, protocol)
    timeline = tmp_path / "t.yaml"
    timeline.write_text(TIMELINE)
    return tmp_path, cache, protocol, timeline


def simulate(protocol: Path, timeline: Path, out: Path, capsys) -> tuple[int, str, str]:
    status = main(["simulate", str(protocol), str(timeline), "-f", "json", "-o", str(out)])
    captured = capsys.readouterr()
    return status, out.read_text() if out.exists() else "", captured.err


def entries(cache: Path) -> list[Path]:
    return sorted(cache.glob("*.pickle")) if cache.exists() else []


def test_a_second_run_reads_the_cache_and_writes_the_same_trace(work, capsys, monkeypatch):
    tmp, cache, protocol, timeline = work
    first = simulate(protocol, timeline, tmp / "1.json", capsys)
    assert first[0] == 0 and len(entries(cache)) == 1
    (entry,) = entries(cache)
    assert oct(cache.stat().st_mode & 0o777) == "0o700"
    second = simulate(protocol, timeline, tmp / "2.json", capsys)
    assert second == first
    monkeypatch.setenv("RXWATCH_CACHE_DIR", "off")
    assert simulate(protocol, timeline, tmp / "3.json", capsys) == first
    assert entries(cache) == [entry]


def served(cache: Path, graph) -> None:
    """Put `graph` in the one entry of `cache`, under the entry's own header."""
    (entry,) = entries(cache)
    data = entry.read_bytes()
    header = data[: data.index(b"\n", len(graphcache.MAGIC)) + 1]
    entry.write_bytes(header + pickle.dumps(graph))


def other_graph(tmp: Path):
    """A compiled graph that replays differently: the protocol with another first state's text."""
    from rxwatch.compiler import compile_source

    text = PROTOCOL.read_text()
    result = compile_source(text.replace("3.0.0", "9.9.9", 1), str(tmp / "p.rxw"))
    assert result.ok
    return result.graph


def test_the_entry_is_what_is_replayed(work, capsys):
    """Proof that the cache is read at all: an entry changed behind rxwatch's back (the same
    name) is what the next run replays."""
    tmp, cache, protocol, timeline = work
    first = simulate(protocol, timeline, tmp / "1.json", capsys)
    served(cache, other_graph(tmp))
    second = simulate(protocol, timeline, tmp / "2.json", capsys)
    assert second[0] == 0 and '"version": "9.9.9"' in second[1] and '"version": "9.9.9"' not in first[1]


def test_an_entry_with_another_name_inside_is_never_loaded(work, capsys):
    tmp, cache, protocol, timeline = work
    first = simulate(protocol, timeline, tmp / "1.json", capsys)
    (entry,) = entries(cache)
    entry.write_bytes(graphcache.MAGIC + b"0" * 64 + b"\n" + pickle.dumps(other_graph(tmp)))
    assert simulate(protocol, timeline, tmp / "2.json", capsys) == first


def test_an_entry_others_could_write_is_never_loaded(work, capsys):
    tmp, cache, protocol, timeline = work
    first = simulate(protocol, timeline, tmp / "1.json", capsys)
    served(cache, other_graph(tmp))
    (entry,) = entries(cache)
    entry.chmod(0o664)
    assert simulate(protocol, timeline, tmp / "2.json", capsys) == first
    entry.chmod(0o600)
    cache.chmod(0o777)
    assert simulate(protocol, timeline, tmp / "3.json", capsys) == first
    cache.chmod(0o700)


def test_a_changed_protocol_is_compiled_again(work, capsys):
    tmp, cache, protocol, timeline = work
    simulate(protocol, timeline, tmp / "1.json", capsys)
    protocol.write_text(PROTOCOL.read_text().replace("3.0.0", "3.0.1", 1))
    status, trace, _ = simulate(protocol, timeline, tmp / "2.json", capsys)
    assert status == 0 and '"version": "3.0.1"' in trace
    assert len(entries(cache)) == 2


def test_a_protocol_with_errors_is_never_kept_and_says_so_every_time(work, capsys):
    tmp, cache, protocol, timeline = work
    protocol.write_text(PROTOCOL.read_text() + "\nthis is not rxw\n")
    first = simulate(protocol, timeline, tmp / "1.json", capsys)
    assert first[0] == 1 and "error[" in first[2]
    assert entries(cache) == []
    assert simulate(protocol, timeline, tmp / "1.json", capsys) == first


def test_the_key_covers_text_path_and_code(monkeypatch):
    base = graphcache.key("p.rxw", "text", verify=True)
    assert graphcache.key("p.rxw", "text ", verify=True) != base
    assert graphcache.key("q.rxw", "text", verify=True) != base
    assert graphcache.key("p.rxw", "text", verify=False) != base
    monkeypatch.setattr(graphcache, "fingerprint", lambda: b"another rxwatch")
    assert graphcache.key("p.rxw", "text", verify=True) != base


def test_the_cache_folder_is_the_users(monkeypatch, tmp_path):
    monkeypatch.delenv("RXWATCH_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert graphcache.directory() == tmp_path / "rxwatch" / "graphs"
    for off in ("off", "none", ""):
        monkeypatch.setenv("RXWATCH_CACHE_DIR", off)
        assert graphcache.directory() is None


def test_at_most_max_entries_are_kept(monkeypatch, tmp_path):
    monkeypatch.setenv("RXWATCH_CACHE_DIR", str(tmp_path / "c"))
    monkeypatch.setattr(graphcache, "MAX_ENTRIES", 3)
    for i in range(5):
        graphcache.store("p.rxw", f"text {i}", {"graph": i}, verify=True)
    assert len(list((tmp_path / "c").glob("*.pickle"))) == 3
    assert graphcache.load("p.rxw", "text 4", verify=True) == {"graph": 4}
