"""Every failure the fuzz corpus (or the issue-10 attack) ever found, kept as a case in
`regressions/` (one JSON file each: the files, the command line, what must and must not be
printed; `fuzzkit.Case.to_json` writes one, and a failing family prints one ready to keep).
Each runs through the real command line and must be clean and meet its own expectations."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fuzzkit import Case, run

CASES = sorted((Path(__file__).parent / "regressions").glob("*.json"))


def test_there_are_regression_cases():
    assert len(CASES) >= 20


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_regression(path, tmp_path):
    case = Case.from_json(json.loads(path.read_text(encoding="utf-8")))
    kind, reason, outcome = run(case, tmp_path / "case")
    assert kind != "failure", f"{path.name}: {reason}\n{outcome.err[-2000:]}"
