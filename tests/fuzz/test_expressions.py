"""Family "expressions": random guards built from the language's expression grammar (labs,
lets, facts, vars, numbers, durations, and/or/not, comparisons and chains, arithmetic, max/min,
known/xuln/since/fulfilled, `in {..}`), checked and simulated; plus a hypothesis property on
the same strategy. Right: a type error refused (E3xx) at its place; a guard that checks
simulates without a crash."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzzkit import PROTOCOL, TIMELINE, Case, Family, pick, run, slow_seed

ATOMS = ["ALT", "CREA", "x", "repeats", "weight", "liver_disease", "indication", "1", "0", "2.5", "40", "-3",
         "uln(ALT)", "xuln(CREA)", "known(ALT)", "since entry", "since(check)", "fulfilled(check)", "14 days",
         "true", "false", "ra", "max(ALT, CREA)", "min(x, 2)"]
BINARY = ["and", "or", ">", "<", ">=", "<=", "==", "!=", "+", "-", "*", "/"]


def expr(rng, depth: int = 0) -> str:
    if depth > 4 or rng.random() < 0.3:
        return pick(rng, ATOMS)
    k = rng.randrange(6)
    if k == 0:
        return f"not {expr(rng, depth + 1)}"
    if k == 1:
        return f"({expr(rng, depth + 1)})"
    if k == 2:
        return f"{expr(rng, depth + 1)} in {{ra, stills}}"
    if k == 3:
        return f"{expr(rng, depth + 1)} < {expr(rng, depth + 1)} <= {expr(rng, depth + 1)}"
    return f"{expr(rng, depth + 1)} {pick(rng, BINARY)} {expr(rng, depth + 1)}"


def case_of(guard: str, i: int, name: str = "") -> Case:
    source = PROTOCOL.replace("when known(ALT) and x > 2", f"when {guard}", 1)
    files = {"p.rxw": source, "t.yaml": TIMELINE}
    argv = ["simulate", "p.rxw", "t.yaml", "-f", "json"] if i % 2 else ["check", "p.rxw"]
    return Case("expressions", name or f"guard {i}", files, argv)


def generate(rng, i: int) -> Case:
    return case_of(expr(rng), i)


FAMILY = Family("expressions", generate, count=150)


def test_sample(tmp_path):
    FAMILY.assert_clean(tmp_path, seed=1, n=FAMILY.sample)


@pytest.mark.slow
def test_budget(tmp_path):
    FAMILY.assert_clean(tmp_path, seed=slow_seed(), n=FAMILY.count)


guards = st.recursive(
    st.sampled_from(ATOMS),
    lambda inner: st.one_of(
        st.tuples(inner, st.sampled_from(BINARY), inner).map(" ".join),
        inner.map(lambda e: f"not ({e})"),
        inner.map(lambda e: f"({e})"),
    ),
    max_leaves=8,
)


@settings(max_examples=int(os.environ.get("RXWATCH_HYPOTHESIS_EXAMPLES", 8)), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(guard=guards, i=st.integers(0, 1))
def test_hypothesis_guards(tmp_path_factory, guard, i):
    kind, reason, _ = run(case_of(guard, i, "hypothesis"), tmp_path_factory.mktemp("g"))
    assert kind != "failure", f"{guard!r}: {reason}"
