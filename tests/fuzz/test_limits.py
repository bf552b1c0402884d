"""Family "limits": the compiler's bounds approached and passed: expression nesting (200),
chains (1000 terms), flat `or`s, chained `let`s, many states and rules, long lines. Right: within
the bounds, checked; beyond them, refused with a located E105 (never a RecursionError)."""

from __future__ import annotations

import pytest

from fuzzkit import PROTOCOL, Case, Family, pick, slow_seed


def generate(rng, i: int) -> Case:
    kind = i % 6
    n = pick(rng, [10, 150, 199, 200, 201, 260, 999, 1000, 1001, 1500])
    if kind == 0:
        guard = "(" * n + "x" + ")" * n + " > 2"
        source = PROTOCOL.replace("known(ALT) and x > 2", guard, 1)
    elif kind == 1:
        guard = " or ".join(f"x > {k}" for k in range(n))
        source = PROTOCOL.replace("known(ALT) and x > 2", guard, 1)
    elif kind == 2:
        lets = "".join(f"let l{k + 1} = l{k} + 1\n" for k in range(n))
        source = PROTOCOL.replace('event stop "', f"let l0 = 1\n{lets}event stop \"", 1)
    elif kind == 3:
        guard = "x" + " + 1" * n + " > 2"
        source = PROTOCOL.replace("known(ALT) and x > 2", guard, 1)
    elif kind == 4:
        guard = "not " * min(n, 400) + "known(ALT)"
        source = PROTOCOL.replace("known(ALT) and x > 2", guard, 1)
    else:
        states = "".join(f'state s{k} "s{k}" {{ on panel {{ when x > {k} -> s{(k + 1) % n} cite s\n otherwise stay cite s }} }}\n'
                         for k in range(min(n, 300)))
        source = PROTOCOL.replace("otherwise stay cite s { do", "when x > 100 -> s0 cite s\n    otherwise stay cite s { do", 1) + states
    argv = ["check", "p.rxw"] + (["--no-verify"] if rng.random() < 0.5 else [])
    return Case("limits", f"limit {i} ({kind}, {n})", {"p.rxw": source}, argv)


FAMILY = Family("limits", generate, count=60, sample=6)


def test_sample(tmp_path):
    FAMILY.assert_clean(tmp_path, seed=1, n=FAMILY.sample)


@pytest.mark.slow
def test_budget(tmp_path):
    FAMILY.assert_clean(tmp_path, seed=slow_seed(), n=FAMILY.count)
