"""Family "output paths": `-o` of compile, simulate and render: a name ending in `/`, names of
200-300 characters (the file system's limit is 255 bytes), an existing folder, a missing
folder, an input file, a symbolic link, a path through a file, non-ASCII and control
characters, a stale temporary file of a killed rxwatch. Right: written whole (and only there,
no temporary file left), or refused with exit 2 and one `rxwatch:` line, nothing written."""

from __future__ import annotations

import os

import pytest

from fuzzkit import PROTOCOL, TIMELINE, Case, Family, pick, slow_seed

COMMANDS = [["compile", "p.rxw", "-o"], ["simulate", "p.rxw", "t.yaml", "-f", "json", "-o"],
            ["render", "p.rxw", "-o"]]


def name(rng) -> str:
    k = rng.randrange(9)
    suffix = pick(rng, [".json", ".svg", ".dot", ".html", ".txt", ""])
    if k == 0:
        return "out" + suffix + "/"
    if k == 1:
        n = pick(rng, [200, 240, 241, 250, 254, 255, 256, 300])
        return "a" * (n - len(suffix)) + suffix
    if k == 2:
        return "sub" + suffix
    if k == 3:
        return "missing/out" + suffix
    if k == 4:
        return pick(rng, ["p.rxw", "t.yaml", "./p.rxw", "link" + suffix])
    if k == 5:
        return "p.rxw/x" + suffix
    if k == 6:
        return pick(rng, ["é" * 100, "名" * 80, "a\x1bb", "a\nb", "-x", " ", "\udcff"]) + suffix
    if k == 7:
        return ""
    return "ok" + suffix


def generate(rng, i: int) -> Case:
    argv = list(pick(rng, COMMANDS))
    if argv[0] == "render":
        out = name(rng)
        if not os.path.splitext(out.rstrip("/"))[1]:
            out = out + ".svg" if rng.random() < 0.7 else out
    else:
        out = name(rng)
    argv.append(out)
    files = {"p.rxw": PROTOCOL, "t.yaml": TIMELINE, "sub/.keep": ""}
    if rng.random() < 0.3:
        files[".rxwatch-999999999-abcd.tmp"] = "left by a killed rxwatch"  # no such process: removed
    if out.startswith("link"):
        files["target" + os.path.splitext(out)[1]] = "old"
    links = {out: "target" + os.path.splitext(out)[1]} if out.startswith("link") else {}
    outputs = (out.rstrip("/"), ".rxwatch-999999999-abcd.tmp") + tuple(links.values())
    return Case("output paths", f"output {i}", files, argv, outputs=outputs, links=links)


FAMILY = Family("output paths", generate, count=120)


def test_sample(tmp_path):
    FAMILY.assert_clean(tmp_path, seed=1, n=FAMILY.sample)


@pytest.mark.slow
def test_budget(tmp_path):
    FAMILY.assert_clean(tmp_path, seed=slow_seed(), n=FAMILY.count)


def test_a_stale_temporary_file_of_a_killed_writer_is_removed(tmp_path):
    """Issue 10 item 15: a SIGKILL between the write and the rename leaves `.rxwatch-PID-*.tmp`;
    the next write into that folder removes it (its process is gone); a running writer's is kept."""
    from fuzzkit import invoke

    (tmp_path / "p.rxw").write_text(PROTOCOL, encoding="utf-8")
    dead = tmp_path / ".rxwatch-999999999-x.tmp"
    dead.write_text("partial", encoding="utf-8")
    alive = tmp_path / f".rxwatch-{os.getppid()}-y.tmp"
    alive.write_text("being written", encoding="utf-8")
    o = invoke(["compile", "p.rxw", "-o", "g.json"], tmp_path)
    assert o.status == 0, o.err
    assert not dead.exists() and alive.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([alive.name, "g.json", "p.rxw"])
