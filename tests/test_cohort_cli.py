"""`rxwatch cohort` on the command line: a run writes its table, report and plots; wrong input
gets a located message and the documented exit status (docs/cli.md), and never leaves a
partial output file behind."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from rxwatch.cli.main import main

from test_cohort_run import MODEL

ROOT = Path(__file__).resolve().parents[1]
ANAKINRA = str(ROOT / "protocols" / "anakinra_hepatotoxicity.rxw")
SIXMONTHLY = str(ROOT / "protocols" / "variants" / "anakinra_6monthly.rxw")


@pytest.fixture
def here(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "model.yaml").write_text(MODEL, encoding="utf-8")
    return tmp_path


def run(*args):
    return main(["cohort", *args])


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".rxwatch-"))


def test_a_run_writes_the_table_the_report_and_the_plots(here, capsys):
    import pyarrow.parquet as pq

    status = run(ANAKINRA, SIXMONTHLY, "--model", "model.yaml", "--patients", "4", "--years", "1", "--seed", "3",
                 "--jobs", "1", "--resamples", "20", "--table", "t.parquet", "-o", "r.html", "--plot", "plots")
    out, err = capsys.readouterr()
    assert status == 0, err
    table = pq.read_table(here / "t.parquet")
    assert table.num_rows == 8
    assert set(table.column("protocol").to_pylist()) == {"anakinra_hepatotoxicity", "anakinra_6monthly"}
    assert "blood draws per patient-year" in out and "anakinra_6monthly - anakinra_hepatotoxicity" in out
    assert "--seed 3" in (here / "r.html").read_text(encoding="utf-8")
    names = sorted(p.name for p in (here / "plots").iterdir())
    assert {"delays.png", "delays.svg", "cost.png", "cost.svg"} <= set(names)
    assert any(re.fullmatch(r"patient-\d+\.svg", n) for n in names)
    assert leftovers(here) == []
    # the same command and seed: the same report, byte for byte
    first = (here / "r.html").read_bytes()
    assert run(ANAKINRA, SIXMONTHLY, "--model", "model.yaml", "--patients", "4", "--years", "1", "--seed", "3",
               "--jobs", "1", "--resamples", "20", "-o", "r.html") == 0
    assert (here / "r.html").read_bytes() == first


def test_a_wrong_model_is_located_and_nothing_is_written(here, capsys):
    (here / "bad.yaml").write_text(MODEL.replace("reference_lab: ALT", "reference_lab: ALTT"), encoding="utf-8")
    status = run(ANAKINRA, "--model", "bad.yaml", "--patients", "2", "--years", "1", "--seed", "1", "--jobs", "1",
                 "--table", "t.parquet", "-o", "r.html")
    err = capsys.readouterr().err
    assert status == 1
    assert re.search(r"bad\.yaml:\d+:\d+: error\[E9\d\d\]: .*ALTT", err), err
    assert "Traceback" not in err
    assert not (here / "t.parquet").exists() and not (here / "r.html").exists()
    (here / "broken.yaml").write_text("model: [unclosed\n", encoding="utf-8")
    assert run(ANAKINRA, "--model", "broken.yaml", "--patients", "2", "--years", "1", "--seed", "1") == 1
    assert re.search(r"broken\.yaml:\d+:\d+: error\[E9\d\d\]", capsys.readouterr().err)


def test_a_wrong_protocol_is_located_and_nothing_is_written(here, capsys):
    (here / "p.rxw").write_text(Path(ANAKINRA).read_text(encoding="utf-8").replace("-> maintenance cite seed-review", "-> maintenanse cite seed-review", 1), encoding="utf-8")
    status = run("p.rxw", "--model", "model.yaml", "--patients", "2", "--years", "1", "--seed", "1", "--table", "t.parquet")
    err = capsys.readouterr().err
    assert status == 1
    assert re.search(r"p\.rxw:\d+:\d+: error\[E2\d\d\]", err), err
    assert not (here / "t.parquet").exists()


@pytest.mark.parametrize("args, message", [
    (["--years", "0"], "--years 0"),
    (["--years", "1", "--table", "t.csv"], "Parquet"),
    (["--years", "1", "--start", "2025-02-30"], "--start 2025-02-30"),
    (["--years", "1", "-o", "model.yaml"], "would overwrite an input"),
    (["--years", "1", "--table", "nowhere/t.parquet"], "cannot write"),
    (["--years", "1", "-o", "a" * 300 + ".html"], "cannot write: File name too long"),
    (["--years", "1", "-o", "."], "is a directory"),
    (["--years", "1", "--model", "."], "is a folder, not a model file"),
])
def test_wrong_options_exit_2(here, capsys, args, message):
    status = run(ANAKINRA, "--model", "model.yaml", "--patients", "2", "--seed", "1", "--jobs", "1", "--resamples", "0", *args)
    err = capsys.readouterr().err
    assert status == 2, err
    assert message in err and "Traceback" not in err
    assert (here / "model.yaml").read_text(encoding="utf-8") == MODEL
    assert not (here / "t.csv").exists() and leftovers(here) == []


def test_missing_files_exit_2(here, capsys):
    assert run(ANAKINRA, "--model", "nope.yaml", "--patients", "2", "--years", "1", "--seed", "1") == 2
    assert run("nope.rxw", "--model", "model.yaml", "--patients", "2", "--years", "1", "--seed", "1") == 2
    assert "Traceback" not in capsys.readouterr().err


def test_an_unwritable_plot_folder_leaves_nothing(here, capsys):
    (here / "plots").write_text("a file", encoding="utf-8")
    status = run(ANAKINRA, "--model", "model.yaml", "--patients", "2", "--years", "1", "--seed", "1", "--jobs", "1",
                 "--resamples", "0", "--plot", "plots")
    assert status == 2
    assert "names a folder" in capsys.readouterr().err
    assert (here / "plots").read_text(encoding="utf-8") == "a file"
    if os.geteuid() != 0:  # root writes anywhere
        ro = here / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        assert run(ANAKINRA, "--model", "model.yaml", "--patients", "2", "--years", "1", "--seed", "1", "--jobs", "1",
                   "--resamples", "0", "--plot", "ro/plots") == 2
        assert list(ro.iterdir()) == []


def test_the_6_monthly_variant_checks_clean_and_differs_only_in_maintenance(capsys):
    assert main(["check", SIXMONTHLY]) == 0
    shipped = Path(ANAKINRA).read_text(encoding="utf-8").splitlines()
    variant = Path(SIXMONTHLY).read_text(encoding="utf-8").splitlines()
    import difflib

    changed = [line for line in difflib.unified_diff(shipped, variant, lineterm="", n=0)
               if line[:1] in "+-" and not line.startswith(("+++", "---"))]
    rules = [line for line in changed if "order_lfts" in line]
    assert sorted(rules) == sorted(["-          do order_lfts due 3..4 months cite seed-review",
                                    "-            do order_lfts due 3..4 months cite seed-review",
                                    "+          do order_lfts due 6..7 months cite bsr-2025-whatif",
                                    "+            do order_lfts due 6..7 months cite bsr-2025-whatif"])
    # the rest: comments, the header, the what-if source; no other rule
    assert all(line[1:].lstrip().startswith(("#", "protocol", "title", "version", "status", "source", "kind", "note", "hepatotoxic"))
               or not line[1:].strip() for line in changed if line not in rules), changed


@pytest.mark.parametrize("protocol,model", [("anakinra_hepatotoxicity", "anakinra"),
                                            ("leflunomide_hepatotoxicity", "leflunomide"),
                                            ("tocilizumab_monitoring", "tocilizumab")])
def test_every_shipped_protocol_runs_with_its_shipped_model(here, capsys, protocol, model):
    import pyarrow.parquet as pq

    status = run(str(ROOT / "protocols" / f"{protocol}.rxw"), "--model", model, "--patients", "3", "--years", "0.5",
                 "--seed", "2", "--jobs", "1", "--resamples", "0", "--table", "t.parquet")
    out = capsys.readouterr()
    assert status == 0, out.err
    rows = pq.read_table(here / "t.parquet").to_pylist()
    assert {r["protocol"] for r in rows} == {protocol} and len(rows) == 3
    assert all(r["status"] == "ok" for r in rows), rows
    assert sum(r["draws"] for r in rows) > 0  # the protocol's orders drew blood


def test_prefer_is_said_in_the_summary_and_the_report_and_a_misspelt_one_is_refused(here, capsys):
    status = run(ANAKINRA, "--model", "model.yaml", "--patients", "2", "--years", "1", "--seed", "3", "--jobs", "1",
                 "--resamples", "0", "--prefer", "reduce_dose", "-o", "r.html")
    out, err = capsys.readouterr()
    assert status == 0, err
    assert "choices: a `do one of` takes reduce_dose where it offers it, else its first option" in out
    page = (here / "r.html").read_text(encoding="utf-8")
    assert "--prefer reduce_dose" in page and "takes reduce_dose where it offers it" in page
    status = run(ANAKINRA, "--model", "model.yaml", "--patients", "2", "--years", "1", "--seed", "3", "--jobs", "1",
                 "--prefer", "reduce_dos", "-o", "s.html")
    out, err = capsys.readouterr()
    assert status == 2
    assert "--prefer reduce_dos: no `do one of` of anakinra_hepatotoxicity offers it " \
           "(its options: hold_anakinra, reduce_dose)" in err
    assert not (here / "s.html").exists() and leftovers(here) == []


def test_one_protocol_under_two_policies_is_compared_on_the_same_patients(here, capsys):
    """`--prefer N:ACTION` gives the Nth protocol its own policy: the shipped anakinra protocol
    twice, the second reducing the dose where the first holds it, patient 132 of seed 7 (a
    moderate elevation) among them."""
    import pyarrow.parquet as pq

    status = run(ANAKINRA, ANAKINRA, "--model", "anakinra", "--patients", "133", "--years", "2", "--seed", "7",
                 "--jobs", "1", "--resamples", "0", "--prefer", "2:reduce_dose", "-o", "r.html",
                 "--table", "t.parquet")
    out, err = capsys.readouterr()
    assert status == 0, err
    first, second = "anakinra_hepatotoxicity (first option)", "anakinra_hepatotoxicity (prefer reduce_dose)"
    assert (f"choices: {first}: each `do one of` takes its first option; {second}: a `do one of` takes "
            "reduce_dose where it offers it, else its first option") in out
    assert f"{second} - {first}" in out
    rows = {(r["protocol"], r["patient"]): r for r in pq.read_table(here / "t.parquet").to_pylist()}
    assert (rows[first, 132]["holds"], rows[first, 132]["reductions"]) == (1, 0)
    assert (rows[second, 132]["holds"], rows[second, 132]["reductions"]) == (0, 1)
    page = (here / "r.html").read_text(encoding="utf-8")
    assert "--prefer 2:reduce_dose" in page
    # the same file twice under one policy is refused, as is an N that names no protocol
    for extra, says in ((), "given twice"), (("--prefer", "reduce_dose"), "given twice with the same --prefer"), \
            (("--prefer", "3:reduce_dose"), "--prefer 3:reduce_dose: N:ACTION takes the position of a protocol "
                                            "of the command line (1 to 2)"), \
            (("--prefer", "2:reduce_dos"), "--prefer 2:reduce_dos: no `do one of` of anakinra_hepatotoxicity "
                                           "(prefer reduce_dos) offers it (its options: hold_anakinra, reduce_dose)"):
        status = run(ANAKINRA, ANAKINRA, "--model", "anakinra", "--patients", "2", "--years", "1", "--seed", "7",
                     *extra, "-o", "s.html")
        out, err = capsys.readouterr()
        assert status == 2 and says in err, err
        assert not (here / "s.html").exists() and leftovers(here) == []
