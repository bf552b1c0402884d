"""`rxwatch audit`: a protocol over many patients (docs/audit.md).

A generated extract (bench/extract.py) is audited as a CSV and as FHIR Bulk NDJSON (the same
table), in this process, in worker processes and on a Dask LocalCluster (the same table); wrong
rows skip their patient only, reported at their file and line; the table and report are written
whole; the worklist puts the most urgent first.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from conftest import bench_module

from rxwatch.audit import audit
from rxwatch.audit import partition as partition_mod
from rxwatch.cli.main import main
from rxwatch.compiler import compile_file

ROOT = Path(__file__).resolve().parents[1]
PROTOCOL = ROOT / "protocols" / "anakinra_hepatotoxicity.rxw"


extract = bench_module("extract")


@pytest.fixture(scope="module")
def graph():
    return compile_file(str(PROTOCOL)).graph


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("extract")
    csv_path = folder / "extract.csv"
    rows = extract.write_csv(csv_path, 120, 7)
    extract.write_ndjson(folder / "bulk", 120, 7)
    return folder, csv_path, rows


def test_the_generator_is_seeded_and_realistic(tmp_path, data):
    folder, csv_path, rows = data
    again = tmp_path / "again.csv"
    assert extract.write_csv(again, 120, 7) == rows
    assert again.read_bytes() == csv_path.read_bytes()
    with open(csv_path, newline="") as f:
        lines = list(csv.DictReader(f))
    patients = [r["patient"] for r in lines]
    assert len(set(patients)) == 120
    assert patients != sorted(patients)  # unsorted, as extracts come
    alt = [float(r["value"]) for r in lines if r["lab"] == "ALT"]
    assert 15 < sorted(alt)[len(alt) // 2] < 35  # a healthy median
    assert max(alt) > 80 or any(x > 40 for x in alt)  # some elevations


def test_csv_and_fhir_bulk_ndjson_give_the_same_table(graph, data):
    folder, csv_path, _ = data
    a = audit(graph, [csv_path], jobs=1)
    b = audit(graph, [folder / "bulk"], jobs=1)
    assert a.patients == 120 and not a.skipped
    assert a.table.equals(b.table)
    assert a.as_of.isoformat() == "2026-06-30"  # the last date in the extract


def test_worker_processes_and_many_partitions_give_the_same_table(graph, data, monkeypatch):
    _, csv_path, _ = data
    one = audit(graph, [csv_path], jobs=1, as_of="2026-06-01")
    monkeypatch.setattr(partition_mod, "TARGET_BYTES", 20_000)  # many small partitions
    many = audit(graph, [csv_path], jobs=2, as_of="2026-06-01")
    assert many.partitions > 4
    assert many.table.equals(one.table)


def test_dask_local_cluster_gives_the_same_table(graph, data):
    distributed = pytest.importorskip("distributed")
    _, csv_path, _ = data
    local = audit(graph, [csv_path], jobs=1)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        remote = audit(graph, [csv_path], scheduler=cluster.scheduler_address)
    assert remote.table.equals(local.table)


def test_the_worklist_is_most_urgent_first(graph, data):
    _, csv_path, _ = data
    t = audit(graph, [csv_path], jobs=1).table.to_pylist()
    from rxwatch.audit.summary import TIERS

    ranks = [TIERS.index(r["urgency"]) for r in t]
    assert ranks == sorted(ranks)
    overdue = [r for r in t if r["urgency"] == "overdue"]
    assert overdue and all(r["days_overdue"] > 0 for r in overdue)
    assert [r["days_overdue"] for r in overdue] == sorted((r["days_overdue"] for r in overdue), reverse=True)
    for r in overdue:  # the reason names an order whose window closed before the audit date
        assert "days overdue" in r["reason"] and r["open_orders"]


EXTRACT = """patient,date,lab,value,unit,uln,event
b,2025-01-06,ALT,30,U/L,,
a,2025-01-06,ALT,25,U/L,,
a,2025-01-06,AST,22,U/L,,
b,2025-01-06,AST,-3,U/L,,
c,2025-01-06,ALT,28,U/L,,
c,2025-01-06,AST,24,U/L,,
c,2025-02-10,,,,,jaundice
a,2025-02-03,ALT,31,U/L,,
,2025-02-03,ALT,31,U/L,,
d,2025-02-30,ALT,31,U/L,,
c,2025-01-06,ANC,3.1,10*9/L,,
"""


def test_bad_rows_skip_their_patient_only(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "x.csv").write_text(EXTRACT, encoding="utf-8")
    status = main(["audit", str(PROTOCOL), "x.csv", "--as-of", "2025-03-01", "--table", "t.csv", "-o", "r.html", "--jobs", "1", "--pages", "0"])
    err = capsys.readouterr().err
    assert status == 1, err
    assert "x.csv:5: error[E708]: value -3 is negative" in err and "(patient b skipped)" in err
    assert "x.csv:10: error[E721]" in err
    assert "x.csv:11: error[E705]" in err and "(patient d skipped)" in err
    assert "Traceback" not in err
    rows = {r["patient"]: r for r in csv.DictReader(open(tmp_path / "t.csv", newline=""))}
    assert set(rows) == {"a", "b", "c", "d"}
    assert rows["b"]["status"] == "skipped" and "x.csv:5" in rows["b"]["problem"]
    assert rows["a"]["status"] == "ok" and rows["a"]["last_panel"] == "2025-02-03"
    assert rows["a"]["first_date"] == "2025-01-06"
    # jaundice: the pathway stops the drug and asks for an urgent assessment: severe, first
    assert rows["c"]["urgency"] == "severe" and "stopped" in rows["c"]["states"]
    assert list(rows)[0] == "c"
    assert "anakinra stopped" in rows["c"]["drugs"]
    report = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert "<script" not in report
    assert report.index('id="worklist"') < report.index('id="counts"') < report.index('id="adherence"')
    assert "x.csv:5" in report


def test_lines_are_counted_across_blank_lines_comments_and_quoted_cells(tmp_path, graph):
    (tmp_path / "x.csv").write_text('# an extract\npatient,date,lab,value\n\n"a",2025-01-06,ALT,30\n # note\n'
                                    ' b ,2025-01-06,ALT,30,9\nc,2025-01-06,ALT," 12x"\n', encoding="utf-8")
    result = audit(graph, [tmp_path / "x.csv"], jobs=1)
    where = {s["patient"]: (s["where"].rsplit(":", 1)[1], s["code"]) for s in result.skipped}
    assert where == {"b": ("6", "E702"), "c": ("7", "E708")}
    assert dict(zip(result.table.column("patient").to_pylist(), result.table.column("status").to_pylist())) == {
        "a": "ok", "b": "skipped", "c": "skipped"}


def test_patients_who_start_after_the_audit_date_are_not_in_it(tmp_path, graph):
    (tmp_path / "x.csv").write_text("patient,date,lab,value\nold,2025-01-06,ALT,30\nnew,2025-03-06,ALT,30\nold,2025-04-01,ALT,31\n")
    result = audit(graph, [tmp_path / "x.csv"], jobs=1, as_of="2025-02-01")
    assert result.table.column("patient").to_pylist() == ["old"] and not result.skipped
    assert result.table.column("results").to_pylist() == [1]  # the later row is not replayed


def test_parquet_table_and_nothing_partial_on_failure(tmp_path, capsys, monkeypatch, data):
    _, csv_path, _ = data
    monkeypatch.chdir(tmp_path)
    status = main(["audit", str(PROTOCOL), str(csv_path), "--table", "t.parquet", "--jobs", "1"])
    assert status == 0, capsys.readouterr().err
    t = pq.read_table(tmp_path / "t.parquet")
    assert t.num_rows == 120 and "days_overdue" in t.column_names
    # an output in a folder that does not exist: exit 2, nothing written, no temporary left
    status = main(["audit", str(PROTOCOL), str(csv_path), "--table", "missing/t.csv", "--jobs", "1"])
    assert status == 2
    assert not list(tmp_path.glob(".rxwatch-*"))


def test_a_folder_of_timeline_files(tmp_path, capsys, graph):
    folder = tmp_path / "timelines"
    folder.mkdir()
    shutil.copy(ROOT / "docs" / "examples" / "anakinra-moderate.yaml", folder / "demo.yaml")
    (folder / "broken.yaml").write_text("patient: {id: x}\nstart: 2025-01-06\nevents:\n  - {date: 2025-01-07, lab: ALTT, value: 3}\n")
    result = audit(graph, [folder], jobs=1, as_of="2025-08-31")
    rows = {r["patient"]: r for r in result.table.to_pylist()}
    assert rows["demo-ra-01"]["states"] == "maintenance; neutrophils_routine"
    assert rows["demo-ra-01"]["drugs"] == "anakinra on daily"
    assert rows["demo-ra-01"]["orders_missed"] == 1  # the demo's one late liver check
    [skip] = result.skipped
    assert skip["where"].endswith("broken.yaml:4") and skip["code"] == "E707"


def test_ndjson_observation_without_subject_and_bad_shape(tmp_path, graph):
    bulk = tmp_path / "bulk"
    bulk.mkdir()
    obs = lambda i, subject, code: json.dumps({"resourceType": "Observation", "id": f"o{i}", "status": "final",
                                                "code": code, **({"subject": {"reference": subject}} if subject else {}),
                                                "effectiveDateTime": "2025-01-06",
                                                "valueQuantity": {"value": 30, "unit": "U/L"}})
    loinc = {"coding": [{"system": "http://loinc.org", "code": "1742-6"}]}
    (bulk / "Observation.ndjson").write_text("\n".join([obs(1, "Patient/a", loinc), obs(2, None, loinc),
                                                       obs(3, "Patient/b", [1, 2])]) + "\n")
    result = audit(graph, [bulk], jobs=1)
    assert [p["code"] for p in result.problems] == ["E721"] and result.problems[0]["where"].endswith("Observation.ndjson:2")
    [skip] = result.skipped
    assert skip["patient"] == "b" and skip["code"] == "E712" and skip["where"].endswith("Observation.ndjson:3")


def test_an_input_that_cannot_be_read_audits_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "x.csv").write_text('patient,date,lab,value\na,2025-01-06,ALT,"30\n', encoding="utf-8")
    (tmp_path / "t.csv").write_text("the previous table\n", encoding="utf-8")
    status = main(["audit", str(PROTOCOL), "x.csv", "--table", "t.csv", "--jobs", "1"])
    err = capsys.readouterr().err
    assert status == 1 and "error[E701]: invalid CSV" in err and "nothing audited" in err
    assert (tmp_path / "t.csv").read_text(encoding="utf-8") == "the previous table\n"


def test_progress_is_reported_per_partition(graph, data, monkeypatch):
    _, csv_path, _ = data
    monkeypatch.setattr(partition_mod, "TARGET_BYTES", 30_000)
    seen = []
    result = audit(graph, [csv_path], jobs=1, progress=lambda done, total: seen.append((done, total)))
    assert seen == [(i, result.partitions) for i in range(1, result.partitions + 1)] and result.partitions > 2
