"""`rxwatch check` (contracts/cli.md): diagnostics on stderr or as JSON, exit status 0/1/2/3, help."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import rxwatch.compiler
from conftest import ANAKINRA, LEFLUNOMIDE, REPO_ROOT
from rxwatch.cli.main import main

DIAG_HEAD = re.compile(r"^(?P<path>.+?):(?P<line>\d+):(?P<col>\d+): (?P<sev>error|warning)\[(?P<code>[EW]\d{3})\]: (?P<msg>.+)$")
JSON_KEYS = {"path", "line", "column", "end_line", "end_column", "severity", "code", "message"}

GOOD = """\
protocol p
source s "S" kind label
lab ALT unit "U/L" uln 40
initial state a {
  on panel {
    when ALT > 120 -> b cite s
    otherwise stay cite s
  }
}
terminal state b
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def run(capsys, *argv) -> tuple[int, str, str]:
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def parse_text_diagnostics(err: str) -> list[dict]:
    """Each diagnostic is a head line, the source line (`  N | text`) and a caret line (`    | ^^`)."""
    lines = err.splitlines()
    found = []
    for i, line in enumerate(lines):
        m = DIAG_HEAD.match(line)
        if m:
            found.append({**m.groupdict(), "source": lines[i + 1], "caret": lines[i + 2]})
    return found


# ---------------------------------------------------------------- exit 0


def test_shipped_protocols_check_clean(capsys):
    status, out, err = run(capsys, "check", ANAKINRA, LEFLUNOMIDE)
    assert status == 0, err
    assert out == ""
    assert "checked 2 protocols: 0 errors" in err
    assert "Traceback" not in err


def test_warnings_only_is_status_0_and_strict_makes_it_1(tmp_path, capsys):
    p = write(tmp_path, "warn.rxw", GOOD.replace("otherwise stay cite s", "otherwise stay"))
    status, out, err = run(capsys, "check", p)
    assert status == 0
    (d,) = parse_text_diagnostics(err)
    assert (d["sev"], d["code"], d["line"], d["col"]) == ("warning", "W501", "7", "5")
    assert "0 errors, 1 warning" in err
    status, out, err = run(capsys, "check", "--strict", p)
    assert status == 1


# ---------------------------------------------------------------- exit 1, text diagnostics


def test_errors_are_located_with_source_line_and_caret(tmp_path, capsys):
    p = write(tmp_path, "bad.rxw", GOOD.replace("when ALT > 120", "when ALTT > 120"))
    status, out, err = run(capsys, "check", p)
    assert status == 1
    assert out == ""
    (d,) = parse_text_diagnostics(err)
    assert d["path"] == str(p)
    assert (d["sev"], d["code"], d["line"], d["col"]) == ("error", "E202", "6", "10")
    assert "did you mean 'ALT'?" in d["msg"]
    assert d["source"].endswith("|     when ALTT > 120 -> b cite s")
    # the caret is under the column, as wide as the name
    src_text_start = d["source"].index("|") + 2
    assert d["caret"].index("^") - src_text_start == 9
    assert d["caret"].count("^") == 4
    assert "1 error" in err


def test_every_error_of_a_file_and_of_every_file_is_reported(tmp_path, capsys):
    a = write(tmp_path, "a.rxw", GOOD.replace("when ALT > 120", "when ALTT > 120").replace("otherwise stay cite s", "otherwise stay cite ss"))
    b = write(tmp_path, "b.rxw", GOOD.replace("-> b cite", "-> c cite").replace('kind label', 'kind label\nlab ALT'))
    status, out, err = run(capsys, "check", a, ANAKINRA, b)
    assert status == 1
    got = {(Path(d["path"]).name, d["code"], d["line"]) for d in parse_text_diagnostics(err)}
    assert {("a.rxw", "E202", "6"), ("a.rxw", "E204", "7"), ("b.rxw", "E201", "4"), ("b.rxw", "E203", "7")} <= got
    assert not any(name == ANAKINRA.name for name, *_ in got)
    assert "checked 3 protocols:" in err


def test_syntax_errors_exit_1(tmp_path, capsys):
    p = write(tmp_path, "syntax.rxw", GOOD.replace("when ALT > 120", "when ALT > > 120").replace("uln 40", "uln 40 $"))
    status, out, err = run(capsys, "check", p)
    assert status == 1
    codes = [(d["code"], d["line"]) for d in parse_text_diagnostics(err)]
    assert codes == [("E102", "3"), ("E101", "6")]


def test_empty_file_is_an_input_error(tmp_path, capsys):
    p = write(tmp_path, "empty.rxw", "")
    status, out, err = run(capsys, "check", p)
    assert status == 1
    assert "E207" in err
    assert "Traceback" not in err


# ---------------------------------------------------------------- --format json


def test_json_diagnostics_shape(tmp_path, capsys):
    a = write(tmp_path, "a.rxw", GOOD.replace("when ALT > 120", "when ALTT > 120"))
    b = write(tmp_path, "b.rxw", GOOD.replace("otherwise stay cite s", "otherwise stay"))
    status, out, err = run(capsys, "check", "--format", "json", a, b)
    assert status == 1
    data = json.loads(out)
    assert isinstance(data, list) and len(data) == 2
    for d in data:
        assert set(d) == JSON_KEYS
        assert isinstance(d["line"], int) and isinstance(d["column"], int)
        assert isinstance(d["end_line"], int) and isinstance(d["end_column"], int)
        assert d["severity"] in ("error", "warning")
    assert data[0] == {
        "path": str(a),
        "line": 6,
        "column": 10,
        "end_line": 6,
        "end_column": 13,
        "severity": "error",
        "code": "E202",
        "message": "'ALTT' is not declared; did you mean 'ALT'?",
    }
    assert (data[1]["path"], data[1]["code"], data[1]["severity"]) == (str(b), "W501", "warning")
    # nothing but the JSON on stdout; no text diagnostics on stderr
    assert "error[" not in err


def test_json_on_a_clean_protocol_is_an_empty_list(capsys):
    status, out, err = run(capsys, "check", "-f", "json", ANAKINRA)
    assert status == 0
    assert json.loads(out) == []


def test_json_with_warnings_only_is_status_0(tmp_path, capsys):
    p = write(tmp_path, "w.rxw", GOOD.replace('kind label', 'kind lable'))
    status, out, err = run(capsys, "check", "--format", "json", p)
    assert status == 0
    assert [d["code"] for d in json.loads(out)] == ["W502"]


# ---------------------------------------------------------------- exit 2: cannot run


def test_missing_file_is_status_2(tmp_path, capsys):
    status, out, err = run(capsys, "check", tmp_path / "nope.rxw")
    assert status == 2
    assert "nope.rxw" in err and "does not exist" in err


def test_directory_is_status_2(tmp_path, capsys):
    status, out, err = run(capsys, "check", tmp_path)
    assert status == 2
    assert "directory" in err


def test_not_utf8_is_status_2(tmp_path, capsys):
    p = tmp_path / "latin1.rxw"
    p.write_bytes(GOOD.replace('"S"', '"Sévère"').encode("latin-1"))
    status, out, err = run(capsys, "check", p)
    assert status == 2
    assert "not UTF-8" in err and str(p) in err
    assert "Traceback" not in err


def test_one_missing_file_among_good_ones_is_status_2(tmp_path, capsys):
    status, out, err = run(capsys, "check", ANAKINRA, tmp_path / "nope.rxw")
    assert status == 2


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["check"], id="no-protocol"),
        pytest.param(["check", "--format", "xml", str(ANAKINRA)], id="bad-format"),
        pytest.param(["check", "--nonsense", str(ANAKINRA)], id="unknown-option"),
        pytest.param(["nosuchcommand"], id="unknown-command"),
        pytest.param([], id="no-command"),
    ],
)
def test_bad_usage_is_status_2(argv, capsys):
    status, out, err = run(capsys, *argv)
    assert status == 2
    assert "Usage" in err + out


# ---------------------------------------------------------------- exit 3: internal errors


def test_internal_error_is_one_line_and_status_3(monkeypatch, capsys):
    def broken(*args, **kwargs):
        raise RuntimeError("simulated failure in the compiler")

    monkeypatch.setattr(rxwatch.compiler, "compile_source", broken)
    status, out, err = run(capsys, "check", ANAKINRA)
    assert status == 3
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "internal error" in lines[0] and "simulated failure in the compiler" in lines[0]
    assert "--debug" in lines[0]
    assert "Traceback" not in err


def test_debug_shows_the_traceback(monkeypatch, capsys):
    def broken(*args, **kwargs):
        raise RuntimeError("simulated failure in the compiler")

    monkeypatch.setattr(rxwatch.compiler, "compile_source", broken)
    with pytest.raises(RuntimeError, match="simulated failure"):
        main(["check", "--debug", str(ANAKINRA)])


def test_a_pass_that_raises_is_an_internal_error(monkeypatch, capsys):
    """A bug deep in a pass (here the type checker) still gives one line and status 3."""
    from rxwatch.compiler.checks import types

    def broken(*args, **kwargs):
        raise KeyError("oops")

    monkeypatch.setattr(types, "check", broken)
    status, out, err = run(capsys, "check", ANAKINRA)
    assert status == 3
    assert len(err.strip().splitlines()) == 1


# ---------------------------------------------------------------- help


def test_top_level_help_explains_commands_and_exit_status(capsys):
    status, out, err = run(capsys, "--help")
    assert status == 0
    for word in ("check", "compile", "Exit status", "0", "1", "2", "3", "--debug"):
        assert word in out
    assert "Commands" in out


def test_check_help_explains_itself(capsys):
    status, out, err = run(capsys, "check", "--help")
    assert status == 0
    for word in ("Parse and verify", "--format", "json", "--strict", "--no-verify", "Exit status"):
        assert word in out, word


def test_check_help_has_no_python_type_names(capsys):
    status, out, err = run(capsys, "check", "--help")
    assert "list[Path]" not in out


# ---------------------------------------------------------------- end to end, as a user runs it


def rxwatch_command() -> list[str]:
    script = Path(sys.executable).parent / "rxwatch"
    return [str(script)] if script.exists() else [sys.executable, "-m", "rxwatch.cli.main"]


def test_end_to_end_check_exit_codes(tmp_path):
    bad = write(tmp_path, "bad.rxw", GOOD.replace("-> b cite", "-> bee cite"))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    cases = [
        ([str(ANAKINRA), str(LEFLUNOMIDE)], 0),
        ([str(bad)], 1),
        ([str(tmp_path / "missing.rxw")], 2),
    ]
    for args, expected in cases:
        proc = subprocess.run(rxwatch_command() + ["check", *args], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60)
        assert proc.returncode == expected, (args, proc.stderr)
        assert "Traceback" not in proc.stderr
    proc = subprocess.run(rxwatch_command() + ["check", "--format", "json", str(bad)], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60)
    assert proc.returncode == 1
    data = json.loads(proc.stdout)
    assert [(d["code"], d["line"], d["column"]) for d in data if d["code"] == "E203"] == [("E203", 6, 23)]


def test_end_to_end_relative_path_is_reported_as_given():
    proc = subprocess.run(
        rxwatch_command() + ["check", "--format", "json", "protocols/anakinra_hepatotoxicity.rxw"],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == []


def registered_commands() -> list[str]:
    from rxwatch.cli.app import app

    return sorted(c.name or c.callback.__name__ for c in app.registered_commands)


def test_every_command_is_listed_in_the_top_level_help(capsys):
    status, out, err = run(capsys, "--help")
    assert {"check", "compile"} <= set(registered_commands())
    for name in registered_commands():
        assert re.search(rf"^\s+{re.escape(name)}\s+\S", out, flags=re.M), f"'{name}' has no line in rxwatch --help"


@pytest.mark.parametrize("name", registered_commands())
def test_every_command_help_explains_itself(name, capsys):
    """Each command's --help has a description (its docstring), a usage line and its options."""
    status, out, err = run(capsys, name, "--help")
    assert status == 0
    assert f"Usage: rxwatch {name}" in out
    description = out.split("\n\n")[1].strip() if "\n\n" in out else ""
    assert len(description) > 20, out
    assert "--help" in out
