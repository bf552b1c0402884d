"""The shipped suites catch every mistake the mutation operators make (issue 12, item 5).

Each shipped protocol's suite (tests/scenarios/NAME) must kill every mutant of its protocol that
the verifier does not prove equivalent: a 100% mutation score. The ordinary run checks a small
seeded random sample of each protocol's mutants (all killed, proven equivalent or not compiling)
and the suites' condition coverage; the slow tier (`-m slow`, run by CI) runs every mutant.
"""

from __future__ import annotations

import random

import pytest

from rxwatch.compiler import compile_source
from rxwatch.suite.cases import case_files, load_case
from rxwatch.suite.conditions import condition_coverage
from rxwatch.suite.mutants import mutants
from rxwatch.suite.mutation import run_mutants

SHIPPED = [("anakinra_hepatotoxicity", "anakinra"), ("leflunomide_hepatotoxicity", "leflunomide"),
           ("tocilizumab_monitoring", "tocilizumab")]
SAMPLE = 6  # mutants per protocol in the ordinary run
SEED = 12


def _protocol(repo_root, name):
    path = repo_root / "protocols" / f"{name}.rxw"
    text = path.read_text(encoding="utf-8")
    r = compile_source(text, str(path), verify=False)
    assert r.ok
    return path, text, r


def _cases(repo_root, folder):
    return case_files([repo_root / "tests" / "scenarios" / folder])


def _survivors(report) -> list[str]:
    return [f"line {x.mutant.span.line}: {x.mutant.operator}: {x.mutant.edit} ({x.witness})"
            for x in report.results if x.status == "survived"]


@pytest.mark.parametrize("name,folder", SHIPPED)
def test_a_seeded_sample_of_mutants_is_all_killed(repo_root, name, folder):
    path, text, r = _protocol(repo_root, name)
    every = mutants(r.module, text)
    rng = random.Random(f"{SEED}:{name}")
    numbers = rng.sample([m.number for m in every], SAMPLE)
    report = run_mutants(str(path), text, r.module, r.graph, _cases(repo_root, folder), jobs=1, numbers=numbers)
    assert sorted(x.mutant.number for x in report.results) == sorted(numbers)
    assert _survivors(report) == []
    assert report.count("killed") > 0


@pytest.mark.parametrize("name,folder", [SHIPPED[1]])
def test_the_shipped_suite_shows_every_condition_deciding(repo_root, name, folder):
    # one suite in the ordinary run (a few seconds); every suite in the slow tier (below)
    _, _, r = _protocol(repo_root, name)
    cases = [(p, load_case(p, r.graph)) for p in _cases(repo_root, folder)]
    report = condition_coverage(r.graph, cases, jobs=1)
    left = report.format_text().splitlines()[1:]
    assert report.percent() == 100.0, left


@pytest.mark.slow
@pytest.mark.parametrize("name,folder", SHIPPED)
def test_the_whole_mutation_score_is_100(repo_root, name, folder):
    path, text, r = _protocol(repo_root, name)
    report = run_mutants(str(path), text, r.module, r.graph, _cases(repo_root, folder))
    assert _survivors(report) == []
    assert report.score == 1.0


@pytest.mark.slow
@pytest.mark.parametrize("name,folder", SHIPPED)
def test_every_shipped_suite_shows_every_condition_deciding(repo_root, name, folder):
    _, _, r = _protocol(repo_root, name)
    cases = [(p, load_case(p, r.graph)) for p in _cases(repo_root, folder)]
    report = condition_coverage(r.graph, cases)
    assert report.percent() == 100.0, report.format_text().splitlines()[1:]
