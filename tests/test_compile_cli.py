"""`rxwatch compile` (contracts/cli.md): node-link JSON and GraphML that networkx reads back;
output files written whole or not at all, never over an input."""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import networkx as nx
import pytest

from conftest import ANAKINRA, LEFLUNOMIDE, SHIPPED_PROTOCOLS
from rxwatch.cli.main import main
from rxwatch.compiler import compile_file

GOOD = """\
protocol p
source s "S" kind label
lab ALT unit "U/L" uln 40
action order "order" orders ALT
initial state a {
  on entry { do order due 1..2 weeks cite s }
  on panel {
    when ALT > 120 -> b cite s
    otherwise stay cite s { do order due 2..4 weeks cite s }
  }
}
terminal state b
"""


def run(capsys, *argv) -> tuple[int, str, str]:
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def same_graph(a: nx.MultiDiGraph, b: nx.MultiDiGraph) -> None:
    assert a.is_directed() and a.is_multigraph() and b.is_directed() and b.is_multigraph()
    assert a.graph == b.graph
    assert dict(a.nodes(data=True)) == dict(b.nodes(data=True))
    ea = {(u, v, k): d for u, v, k, d in a.edges(keys=True, data=True)}
    eb = {(u, v, k): d for u, v, k, d in b.edges(keys=True, data=True)}
    assert ea == eb


# ---------------------------------------------------------------- JSON


@pytest.mark.parametrize("path", SHIPPED_PROTOCOLS, ids=lambda p: p.stem)
def test_json_round_trips_through_node_link_graph(path, capsys):
    status, out, err = run(capsys, "compile", path)
    assert status == 0, err
    data = json.loads(out)
    assert data["directed"] is True and data["multigraph"] is True
    back = nx.node_link_graph(data, edges="edges")
    same_graph(back, compile_file(str(path)).graph)


def test_json_round_trip_with_networkx_defaults(capsys):
    """networkx's own reader, with its default arguments apart from the edge key name."""
    status, out, err = run(capsys, "compile", ANAKINRA)
    back = nx.node_link_graph(json.loads(out), edges="edges")
    assert isinstance(back, nx.MultiDiGraph)
    g = compile_file(str(ANAKINRA)).graph
    assert set(back.nodes) == set(g.nodes)
    assert set(back.edges(keys=True)) == set(g.edges(keys=True))


def test_json_to_file_equals_stdout(tmp_path, capsys):
    out_file = tmp_path / "anakinra.json"
    status, out, err = run(capsys, "compile", ANAKINRA, "-o", out_file)
    assert status == 0, err
    assert out == ""
    status, stdout_text, err = run(capsys, "compile", ANAKINRA)
    assert out_file.read_text(encoding="utf-8") == stdout_text
    assert listing(tmp_path) == ["anakinra.json"]  # no temporary file left beside it


def test_json_output_is_deterministic(capsys):
    _, first, _ = run(capsys, "compile", LEFLUNOMIDE)
    _, second, _ = run(capsys, "compile", LEFLUNOMIDE)
    assert first == second


def test_compiled_graph_has_every_edge_key_as_state_handler_rule(capsys):
    _, out, _ = run(capsys, "compile", ANAKINRA)
    data = json.loads(out)
    for e in data["edges"]:
        state, handler, rule = e["key"].split("/")
        assert e["source"] == state
        assert (int(handler), int(rule)) == (e["handler"], e["order"])
        assert e["id"] == e["key"]


# ---------------------------------------------------------------- GraphML


def read_graphml_text(text: str) -> nx.MultiDiGraph:
    return nx.read_graphml(io.BytesIO(text.encode("utf-8")))


def as_written(value):
    """What a GraphML attribute holds for a graph value: scalars as they are, None as '', the rest as JSON."""
    if value is None:
        return ""
    if isinstance(value, (bool, int, float, str)):
        return value
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


@pytest.mark.parametrize("path", SHIPPED_PROTOCOLS, ids=lambda p: p.stem)
def test_graphml_parses_with_networkx_and_keeps_everything(path, tmp_path, capsys):
    out_file = tmp_path / "g.graphml"
    status, out, err = run(capsys, "compile", path, "--format", "graphml", "-o", out_file)
    assert status == 0, err
    h = nx.read_graphml(out_file)
    g = compile_file(str(path)).graph
    assert isinstance(h, nx.MultiDiGraph)
    assert set(h.nodes) == set(g.nodes)
    assert set(h.edges(keys=True)) == set(g.edges(keys=True))
    for n, attrs in g.nodes(data=True):
        assert h.nodes[n] == {k: as_written(v) for k, v in attrs.items()}
    for u, v, k, attrs in g.edges(keys=True, data=True):
        assert h.edges[u, v, k] == {a: as_written(x) for a, x in attrs.items()}
    for k, v in g.graph.items():
        assert h.graph[k] == as_written(v), k
    # nested attributes are JSON that reads back to the graph's values
    for u, v, k, attrs in g.edges(keys=True, data=True):
        assert json.loads(h.edges[u, v, k]["actions"]) == attrs["actions"]


def test_graphml_format_follows_the_suffix(tmp_path, capsys):
    out_file = tmp_path / "g.GraphML"
    status, out, err = run(capsys, "compile", LEFLUNOMIDE, "-o", out_file)
    assert status == 0, err
    assert set(nx.read_graphml(out_file).nodes) == set(compile_file(str(LEFLUNOMIDE)).graph.nodes)


def test_graphml_to_stdout(capsys):
    status, out, err = run(capsys, "compile", LEFLUNOMIDE, "-f", "graphml")
    assert status == 0
    assert set(read_graphml_text(out).nodes) == set(compile_file(str(LEFLUNOMIDE)).graph.nodes)


def test_explicit_format_wins_over_the_suffix(tmp_path, capsys):
    out_file = tmp_path / "g.graphml"
    status, out, err = run(capsys, "compile", LEFLUNOMIDE, "-f", "json", "-o", out_file)
    assert status == 0
    json.loads(out_file.read_text(encoding="utf-8"))


# ---------------------------------------------------------------- output files: whole or not at all


def test_output_into_a_missing_folder_is_status_2_and_creates_nothing(tmp_path, capsys):
    out_file = tmp_path / "missing" / "deeper" / "g.json"
    status, out, err = run(capsys, "compile", ANAKINRA, "-o", out_file)
    assert status == 2
    assert "does not exist" in err
    assert listing(tmp_path) == []
    assert out == ""


@pytest.mark.parametrize("spelling", ["same", "dotted", "symlink", "hardlink"])
def test_output_equal_to_the_input_is_refused(spelling, tmp_path, capsys):
    src = tmp_path / "p.rxw"
    src.write_text(GOOD, encoding="utf-8")
    before = src.stat()
    if spelling == "same":
        out_file = src
    elif spelling == "dotted":
        (tmp_path / "sub").mkdir()
        out_file = tmp_path / "sub" / ".." / "p.rxw"
    elif spelling == "symlink":
        out_file = tmp_path / "link.json"
        out_file.symlink_to(src)
    else:
        out_file = tmp_path / "hard.json"
        os.link(src, out_file)
    status, out, err = run(capsys, "compile", src, "-o", out_file)
    assert status == 2
    assert "refusing to overwrite an input" in err
    assert src.read_text(encoding="utf-8") == GOOD
    assert src.stat().st_mtime_ns == before.st_mtime_ns
    assert not [p for p in tmp_path.rglob("*.tmp")]


def test_output_that_is_a_directory_is_status_2(tmp_path, capsys):
    status, out, err = run(capsys, "compile", ANAKINRA, "-o", tmp_path)
    assert status == 2
    assert listing(tmp_path) == []


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="needs /proc, a folder nobody can write to, not even root")
def test_unwritable_output_folder_is_status_2(capsys):
    status, out, err = run(capsys, "compile", ANAKINRA, "-o", "/proc/rxwatch-test-output.json")
    assert status == 2
    assert "cannot write" in err
    assert "Traceback" not in err


def test_protocol_with_errors_leaves_the_previous_output_untouched(tmp_path, capsys):
    src = tmp_path / "p.rxw"
    src.write_text(GOOD.replace("-> b cite", "-> c cite"), encoding="utf-8")
    out_file = tmp_path / "p.json"
    out_file.write_text("previous output\n", encoding="utf-8")
    status, out, err = run(capsys, "compile", src, "-o", out_file)
    assert status == 1
    assert "E203" in err and "nothing done" in err
    assert out_file.read_text(encoding="utf-8") == "previous output\n"
    assert listing(tmp_path) == ["p.json", "p.rxw"]


def test_protocol_with_errors_writes_nothing_to_stdout(tmp_path, capsys):
    src = tmp_path / "p.rxw"
    src.write_text(GOOD.replace("-> b cite", "-> c cite"), encoding="utf-8")
    status, out, err = run(capsys, "compile", src)
    assert status == 1
    assert out == ""


def test_existing_output_is_replaced_whole(tmp_path, capsys):
    out_file = tmp_path / "g.json"
    out_file.write_text("x" * 1_000_000, encoding="utf-8")  # longer than the graph: no tail may remain
    status, out, err = run(capsys, "compile", LEFLUNOMIDE, "-o", out_file)
    assert status == 0
    json.loads(out_file.read_text(encoding="utf-8"))


def test_a_failed_write_leaves_no_partial_file(tmp_path, capsys, monkeypatch):
    """The data is written to a temporary file first; if writing fails, neither it nor OUT remains."""
    import rxwatch.cli.output as output

    out_file = tmp_path / "g.json"

    real_write = output._write

    def half_then_full(f, data):  # a disk that fills up half way through the write
        real_write(f, data[: len(data) // 2])
        f.flush()
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(output, "_write", half_then_full)
    status, out, err = run(capsys, "compile", LEFLUNOMIDE, "-o", out_file)
    assert status == 2
    assert "No space left on device" in err
    assert listing(tmp_path) == []


def test_warnings_are_printed_and_output_written(tmp_path, capsys):
    src = tmp_path / "w.rxw"
    src.write_text(GOOD.replace("otherwise stay cite s {", "otherwise stay {").replace("due 2..4 weeks cite s", "due 2..4 weeks"), encoding="utf-8")
    out_file = tmp_path / "w.json"
    status, out, err = run(capsys, "compile", src, "-o", out_file)
    assert status == 0, err
    assert "warning[W501]" in err
    assert nx.node_link_graph(json.loads(out_file.read_text(encoding="utf-8")), edges="edges").number_of_nodes() == 2


def test_output_file_mode_follows_the_umask(tmp_path, capsys):
    old = os.umask(0o022)
    try:
        out_file = tmp_path / "g.json"
        status, _, _ = run(capsys, "compile", LEFLUNOMIDE, "-o", out_file)
        assert status == 0
        assert stat.S_IMODE(out_file.stat().st_mode) == 0o644
    finally:
        os.umask(old)


# ---------------------------------------------------------------- usage and help


def test_missing_protocol_is_status_2(tmp_path, capsys):
    status, out, err = run(capsys, "compile", tmp_path / "nope.rxw", "-o", tmp_path / "out.json")
    assert status == 2
    assert listing(tmp_path) == []


def test_bad_format_is_status_2(tmp_path, capsys):
    status, out, err = run(capsys, "compile", ANAKINRA, "--format", "dot")
    assert status == 2


def test_compile_help_explains_itself(capsys):
    status, out, err = run(capsys, "compile", "--help")
    assert status == 0
    for word in ("Compile a protocol", "--output", "-o", "graphml", "json", "node_link_graph"):
        assert word in out, word


def test_internal_error_in_compile_is_status_3(monkeypatch, capsys):
    import rxwatch.compiler.graphio as graphio

    def broken(g):
        raise ValueError("simulated failure in the writer")

    monkeypatch.setattr(graphio, "to_json", broken)
    status, out, err = run(capsys, "compile", ANAKINRA)
    assert status == 3
    assert len(err.strip().splitlines()) == 1 and "internal error" in err


def test_end_to_end_compile_to_file(tmp_path):
    script = Path(sys.executable).parent / "rxwatch"
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "rxwatch.cli.main"]
    out_file = tmp_path / "a.json"
    proc = subprocess.run(cmd + ["compile", str(ANAKINRA), "-o", str(out_file)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    g = nx.node_link_graph(json.loads(out_file.read_text(encoding="utf-8")), edges="edges")
    same_graph(g, compile_file(str(ANAKINRA)).graph)
    proc = subprocess.run(cmd + ["compile", str(ANAKINRA), "-o", str(tmp_path / "no" / "a.json")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_output_to_a_named_pipe_writes_into_the_pipe(tmp_path, capsys):
    """`-o /dev/stdout`, `-o /dev/null` or a pipe are written to, not replaced (tested on a FIFO)."""
    import threading

    fifo = tmp_path / "out.fifo"
    os.mkfifo(fifo)
    rfd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    keep = os.open(fifo, os.O_WRONLY)  # a writer of our own, so that reads wait instead of ending
    os.set_blocking(rfd, True)
    received = []

    def drain():
        while chunk := os.read(rfd, 65536):
            received.append(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        status, out, err = run(capsys, "compile", LEFLUNOMIDE, "-o", fifo)
    finally:
        os.close(keep)
        reader.join(timeout=10)
        os.close(rfd)
    still_a_pipe = stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert status == 0, err
    assert still_a_pipe, "the pipe was replaced by a regular file"
    json.loads(b"".join(received).decode("utf-8"))
