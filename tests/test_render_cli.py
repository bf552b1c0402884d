"""`rxwatch render PROTOCOL -o OUT [--trace TRACE.json]` (contracts/cli.md): the format follows
OUT's suffix; without Graphviz only .dot works and the rest say how to install it (status 2);
a trace that does not fit is located (status 1); files are written whole or not at all."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ANAKINRA, LEFLUNOMIDE
from rxwatch.cli.main import main

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="needs Graphviz's dot (`make graphviz`)")
RXWATCH = Path(sys.executable).with_name("rxwatch")

def _anakinra_trace() -> dict:
    """A short trace of the shipped anakinra protocol: its version, and a rule of it that
    leads from the initial state to another (what a trace of `rxwatch simulate` holds)."""
    from rxwatch.compiler import compile_file

    g = compile_file(str(ANAKINRA), verify=False).graph
    initial = g.graph["initial"]
    u, v, key, data = next((u, v, k, d) for u, v, k, d in g.out_edges(initial, keys=True, data=True)
                           if v != initial and d["trigger"] == "panel")
    return {
        "protocol": {"name": g.graph["name"], "version": g.graph["version"]},
        "patient": "case-07",
        "start": "2025-01-06",
        "until": "2025-03-30",
        "steps": [
            {"date": "2025-01-06", "type": "enter", "state": initial},
            {"date": "2025-01-08", "type": "transition", "from": u, "to": v, "trigger": "panel",
             "because": data["because"], "sources": data["sources"], "rule": key, "line": data["span"]["line"]},
            {"date": "2025-01-08", "type": "enter", "state": v},
        ],
        "final_state": v,
        "open_orders": [],
    }


TRACE = _anakinra_trace()


def run(capsys, *argv) -> tuple[int, str, str]:
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def write_trace(tmp_path: Path, data, name="trace.json") -> Path:
    p = tmp_path / name
    p.write_text(data if isinstance(data, str) else json.dumps(data, indent=2), encoding="utf-8")
    return p


@needs_dot
@pytest.mark.parametrize("suffix, magic", [
    (".svg", b"<?xml"), (".png", b"\x89PNG"), (".pdf", b"%PDF-"), (".dot", b"digraph"), (".html", b"<!DOCTYPE html>"),
])
def test_each_format_follows_the_suffix(capsys, tmp_path, suffix, magic):
    out = tmp_path / f"chart{suffix.upper() if suffix == '.svg' else suffix}"
    status, stdout, err = run(capsys, "render", ANAKINRA, "-o", out)
    assert status == 0, err
    assert out.read_bytes().startswith(magic)
    assert stdout == "" and f"wrote {out}" in err
    assert [p.name for p in tmp_path.iterdir()] == [out.name]  # no temporary file left behind


def test_an_unknown_suffix_lists_the_formats_and_writes_nothing(capsys, tmp_path):
    status, _, err = run(capsys, "render", ANAKINRA, "-o", tmp_path / "chart.jpg")
    assert status == 2
    assert ".svg, .png, .pdf, .dot, .html" in err and "'.jpg'" in err
    assert list(tmp_path.iterdir()) == []


def test_output_is_required(capsys):
    status, _, _ = run(capsys, "render", ANAKINRA)
    assert status == 2


def test_a_protocol_with_errors_is_status_1_and_draws_nothing(capsys, tmp_path):
    bad = tmp_path / "bad.rxw"
    bad.write_text("protocol p\ninitial state a {\n  on panel { when nothing > 1 -> b }\n}\n", encoding="utf-8")
    out = tmp_path / "bad.dot"
    status, _, err = run(capsys, "render", bad, "-o", out)
    assert status == 1 and "error" in err
    assert not out.exists()


def test_never_writes_over_an_input(capsys, tmp_path):
    proto = tmp_path / "p.dot"
    proto.write_bytes(ANAKINRA.read_bytes())
    status, _, err = run(capsys, "render", proto, "-o", proto)
    assert status == 2 and "refusing to overwrite an input" in err
    assert proto.read_bytes() == ANAKINRA.read_bytes()


def run_without_dot(tmp_path: Path, suffix: str) -> subprocess.CompletedProcess:
    """The console script with a PATH that holds no `dot`."""
    empty = tmp_path / "bin"
    empty.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "PATH"} | {"PATH": str(empty)}
    return subprocess.run([str(RXWATCH), "render", str(ANAKINRA), "-o", str(tmp_path / f"chart{suffix}")],
                          env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(not RXWATCH.exists(), reason="the rxwatch console script is not installed beside this python")
def test_without_graphviz_dot_works_and_svg_says_how_to_install(tmp_path):
    ok = run_without_dot(tmp_path, ".dot")
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "chart.dot").read_text().startswith("digraph")
    for suffix in (".svg", ".pdf"):
        r = run_without_dot(tmp_path, suffix)
        assert r.returncode == 2
        assert "apt-get install graphviz" in r.stderr and "brew install graphviz" in r.stderr
        assert "Traceback" not in r.stderr
        assert not (tmp_path / f"chart{suffix}").exists()


@needs_dot
def test_a_trace_draws_the_patient_s_path(capsys, tmp_path):
    out = tmp_path / "path.dot"
    status, _, err = run(capsys, "render", ANAKINRA, "--trace", write_trace(tmp_path, TRACE), "-o", out)
    assert status == 0, err
    text = out.read_text()
    assert "entered start · 2025-01-06" in text and "the path of patient case-07" in text
    status, _, err = run(capsys, "render", ANAKINRA, "--trace", write_trace(tmp_path, TRACE), "-o", tmp_path / "path.html")
    assert status == 0, err
    assert '"patient": "case-07"' in (tmp_path / "path.html").read_text()


def test_malformed_json_is_located_status_1(capsys, tmp_path):
    trace = write_trace(tmp_path, '{\n  "protocol": {"name": "x"},\n  "steps": [\n    {"date": 1,,}\n  ]\n}\n')
    out = tmp_path / "chart.dot"
    status, _, err = run(capsys, "render", ANAKINRA, "--trace", trace, "-o", out)
    assert status == 1
    assert f"{trace}:4:16: error[E920]: not a JSON trace" in err
    assert '    {"date": 1,,}' in err  # the line, with a caret under the fault
    assert not out.exists()


def test_a_trace_from_another_protocol_is_located_status_1(capsys, tmp_path):
    trace = write_trace(tmp_path, TRACE)
    out = tmp_path / "chart.dot"
    status, _, err = run(capsys, "render", LEFLUNOMIDE, "--trace", trace, "-o", out)
    assert status == 1
    assert f"{trace}:3: error[E920]: protocol.name: this trace is from protocol 'anakinra_hepatotoxicity', not 'leflunomide_hepatotoxicity'" in err
    assert not out.exists()


def test_a_trace_naming_an_unknown_state_points_at_its_line(capsys, tmp_path):
    bad = json.loads(json.dumps(TRACE))
    bad["steps"][2]["state"] = "limbo"
    trace = write_trace(tmp_path, bad)
    status, _, err = run(capsys, "render", ANAKINRA, "--trace", trace, "-o", tmp_path / "chart.dot")
    line = next(i for i, l in enumerate(trace.read_text().splitlines(), 1) if '"limbo"' in l)
    assert status == 1
    assert f"{trace}:{line}: error[E920]: steps[2].state: 'limbo' is not a state of 'anakinra_hepatotoxicity'" in err


def test_a_failed_render_leaves_an_existing_output_untouched(capsys, tmp_path):
    out = tmp_path / "chart.dot"
    out.write_text("previous chart")
    bad = json.loads(json.dumps(TRACE))
    bad["steps"][1]["rule"] = "nowhere/0/0"
    status, _, _ = run(capsys, "render", ANAKINRA, "--trace", write_trace(tmp_path, bad), "-o", out)
    assert status == 1
    assert out.read_text() == "previous chart"


def test_a_missing_or_unreadable_trace_is_status_2(capsys, tmp_path):
    status, _, _ = run(capsys, "render", ANAKINRA, "--trace", tmp_path / "none.json", "-o", tmp_path / "c.dot")
    assert status == 2
    binary = tmp_path / "binary.json"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    status, _, err = run(capsys, "render", ANAKINRA, "--trace", binary, "-o", tmp_path / "c.dot")
    assert status == 2 and "not UTF-8" in err
    assert not (tmp_path / "c.dot").exists()


# ---------------------------------------------------------------- a failing dot (issue 10 items 7, 9)


@pytest.mark.parametrize("failure", ["exit", "closed"])
def test_a_failing_dot_is_a_message_with_status_2_and_writes_nothing(capsys, tmp_path, monkeypatch, failure):
    """dot refusing a label (it prints why, exits 1) or closing its input early (BrokenPipe,
    which click turned into a silent exit 1) is one `rxwatch:` line naming the protocol."""
    import graphviz

    def broken(self, *args, **kwargs):
        if failure == "exit":
            raise graphviz.CalledProcessError(1, ["dot"], stderr=b"Error: syntax error in line 5 scanning a HTML string\nmore\n")
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(graphviz.Digraph, "pipe", broken)
    out = tmp_path / "chart.svg"
    assert main(["render", str(ANAKINRA), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"rxwatch: {ANAKINRA}: Graphviz's `dot` could not draw the .svg: ")
    assert ("syntax error in line 5" in err) if failure == "exit" else ("stopped reading its input" in err)
    assert err.count("\n") == 1 and not out.exists() and list(tmp_path.iterdir()) == []


@needs_dot
def test_a_word_longer_than_dot_takes_is_drawn(capsys, tmp_path):
    """A 200,000-character word made dot refuse the label (longer than 16,384): words over 200
    characters are broken across lines."""
    text = ANAKINRA.read_text(encoding="utf-8").replace('title "Anakinra: liver monitoring"', 'title "' + "x" * 200_000 + '"')
    src = tmp_path / "long.rxw"
    src.write_text(text, encoding="utf-8")
    out = tmp_path / "long.svg"
    assert main(["render", str(src), "-o", str(out)]) == 0, capsys.readouterr().err
    assert out.read_bytes().startswith(b"<?xml")


def test_control_characters_and_surrogates_in_labels_are_escapes(tmp_path):
    """Everything handed to dot is escaped: a control character or a lone surrogate (from a graph
    file: a protocol refuses them, E110) shows as its escape, never reaches dot raw."""
    from rxwatch.render.dot import esc

    assert esc("a\x1b[2Jb\ud800<&>]") == "a\\x1b[2Jb\\ud800&lt;&amp;&gt;&#93;"


def test_the_trace_errors_docs_flowcharts_md_shows_are_what_render_prints(tmp_path, monkeypatch, capsys):
    """docs/flowcharts.md, Options: the two refused traces, run as written (a trace of another
    protocol; the demo's trace with its first state changed to `limbo`), print what it shows."""
    import re

    root = ANAKINRA.parents[1]
    doc = (root / "docs" / "flowcharts.md").read_text(encoding="utf-8")
    block = re.search(r"```\n(\$ rxwatch render protocols/leflunomide_hepatotoxicity\.rxw --trace moderate.*?)```", doc, re.S)
    assert block, "the block of refused traces in docs/flowcharts.md"
    monkeypatch.chdir(tmp_path)
    assert main(["simulate", str(ANAKINRA), str(root / "docs" / "examples" / "anakinra-moderate.yaml"),
                 "--format", "json", "-o", "moderate.trace.json"]) == 0
    text = Path("moderate.trace.json").read_text(encoding="utf-8")
    Path("broken.json").write_text(text.replace('"state": "baseline"', '"state": "limbo"', 1), encoding="utf-8")
    capsys.readouterr()
    shown = []
    for command in re.findall(r"^\$ rxwatch (.*)$", block.group(1), re.M):
        argv = [str(root / a) if a.startswith("protocols/") else a for a in command.split()]
        assert main(argv) == 1
        shown.append("$ rxwatch " + command)
        shown.extend(capsys.readouterr().err.rstrip("\n").splitlines())
        assert not any(Path(a).exists() for a in argv if a.endswith(".svg"))
    assert "\n".join(shown) == block.group(1).rstrip("\n")
