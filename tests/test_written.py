"""cli/output.written: the one way every command writes an output whole or not at all (a file,
or a folder of files such as `cohort --plots` and the audit's viewer pages)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest
import typer

from rxwatch.cli.output import TEMP_PREFIX, written


def listing(folder):
    return sorted(p.name for p in folder.iterdir())


def test_a_file_is_in_place_only_when_the_block_ends(tmp_path):
    out = tmp_path / "out.txt"
    out.write_text("old", encoding="utf-8")
    with written(out) as tmp:
        tmp.write_text("new", encoding="utf-8")
        assert out.read_text(encoding="utf-8") == "old" and tmp.parent == tmp_path
        assert tmp.name.startswith(f"{TEMP_PREFIX}{os.getpid()}-") and tmp.name.endswith(".tmp")
    assert out.read_text(encoding="utf-8") == "new"
    assert listing(tmp_path) == ["out.txt"]


def test_a_failed_block_leaves_the_old_file_and_nothing_else(tmp_path):
    out = tmp_path / "out.txt"
    out.write_text("old", encoding="utf-8")
    with pytest.raises(typer.Exit) as exc:
        with written(out) as tmp:
            tmp.write_text("half", encoding="utf-8")
            raise OSError(28, "No space left on device")
    assert exc.value.exit_code == 2
    assert out.read_text(encoding="utf-8") == "old"
    assert listing(tmp_path) == ["out.txt"]
    with pytest.raises(ZeroDivisionError):  # anything else goes through, cleaned up all the same
        with written(out) as tmp:
            tmp.write_text("half", encoding="utf-8")
            1 / 0
    assert listing(tmp_path) == ["out.txt"]


def test_permissions_follow_the_umask_or_the_mode_given(tmp_path):
    old = os.umask(0o027)
    try:
        with written(tmp_path / "a") as tmp:
            tmp.write_text("a", encoding="utf-8")
        with written(tmp_path / "d", folder=True) as tmp:
            (tmp / "x").write_text("x", encoding="utf-8")
        with written(tmp_path / "b", mode=0o600) as tmp:
            tmp.write_text("b", encoding="utf-8")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a").stat().st_mode) == 0o640
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o750
    assert stat.S_IMODE((tmp_path / "b").stat().st_mode) == 0o600


def test_a_folder_replaces_the_old_one_whole(tmp_path):
    out = tmp_path / "plots"
    out.mkdir()
    (out / "stale.png").write_bytes(b"old")
    with written(out, folder=True) as tmp:
        (tmp / "new.png").write_bytes(b"new")
        assert listing(out) == ["stale.png"]
    assert listing(out) == ["new.png"]
    assert listing(tmp_path) == ["plots"]


def test_a_folder_that_cannot_be_put_in_place_leaves_the_old_one(tmp_path, monkeypatch):
    import rxwatch.cli.output as output

    out = tmp_path / "plots"
    out.mkdir()
    (out / "old.png").write_bytes(b"old")
    real = os.replace
    made = []

    def replace(src, dst):
        if made and str(src) == str(made[0]):  # the new folder's rename fails
            raise OSError(13, "Permission denied")
        return real(src, dst)

    monkeypatch.setattr(output.os, "replace", replace)
    with pytest.raises(typer.Exit):
        with written(out, folder=True) as tmp:
            made.append(tmp)
            (tmp / "new.png").write_bytes(b"new")
    assert listing(out) == ["old.png"]
    assert listing(tmp_path) == ["plots"]


def test_what_a_killed_writer_left_is_removed_by_the_next(tmp_path):
    # a process that no longer runs: its temporary file and folder go; a running one's stay
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    (tmp_path / f"{TEMP_PREFIX}{dead}-ab12.tmp").write_text("partial", encoding="utf-8")
    (tmp_path / f"{TEMP_PREFIX}{dead}-cd34.tmp").mkdir()
    (tmp_path / f"{TEMP_PREFIX}{dead}-cd34.tmp" / "page.html").write_text("partial", encoding="utf-8")
    alive = tmp_path / f"{TEMP_PREFIX}{os.getppid()}-ef56.tmp"
    alive.write_text("being written", encoding="utf-8")
    with written(tmp_path / "out.txt") as tmp:
        tmp.write_text("x", encoding="utf-8")
    assert listing(tmp_path) == sorted(["out.txt", alive.name])
