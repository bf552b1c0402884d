"""Family "scenario files": case files of `rxwatch test` (a timeline plus expectations), the
project's own scenarios mutated: expectations with words, dates, counts and names changed,
dropped or garbled, keys removed, terminal text in the description. Right: a case file that
does not read refused (E80x, located; the case INVALID), a valid case PASS or FAIL (exit 1 with
FAIL lines is a correct answer), never an internal error."""

from __future__ import annotations

from pathlib import Path

import pytest

from fuzzkit import TERMINAL, Case, Family, pick, slow_seed

REPO = Path(__file__).resolve().parents[2]
PROTOCOLS = {"anakinra": REPO / "protocols" / "anakinra_hepatotoxicity.rxw",
             "leflunomide": REPO / "protocols" / "leflunomide_hepatotoxicity.rxw"}
WORDS = ["on", "never", "once", "twice", "final", "state", "stay", "enter", "action", "transition", "deviation",
         "overdue", "unassessable", "window", "->", "no", "order", "between", "and", "2025-02-30", "2025-01-06",
         "9999-12-31", "3 times", "nowhere", "order_lfts", "x" * 300, "..", "[red]"]


def mutate_line(rng, line: str) -> str:
    words = line.split(" ")
    op = rng.randrange(4)
    if op == 0 and len(words) > 3:
        words[rng.randrange(3, len(words))] = pick(rng, WORDS)
    elif op == 1 and len(words) > 3:
        del words[rng.randrange(3, len(words))]
    elif op == 2:
        words.insert(rng.randrange(min(3, len(words)), len(words) + 1), pick(rng, WORDS))
    else:
        words.append(pick(rng, TERMINAL).replace("\x00", "").replace("'", ""))
    return " ".join(words)


def _with_description(lines: list, text: str) -> list:
    """`lines` with their description (a block of indented lines too) replaced by `text`, as a
    YAML double-quoted string with escapes."""
    out, skipping = [], False
    for line in lines:
        if line.startswith("description:"):
            skipping = True
            continue
        if skipping and (line.startswith(" ") or not line):
            continue
        skipping = False
        out.append(line)
    quoted = "".join(c if c.isprintable() and c not in '"\\' else f"\\u{ord(c):04x}" for c in text)
    return [f'description: "{quoted}"'] + out


def generate(rng, i: int) -> Case:
    folder = pick(rng, sorted(PROTOCOLS))
    paths = sorted((REPO / "tests" / "scenarios" / folder).glob("*.yaml"))
    text = pick(rng, paths).read_text(encoding="utf-8")
    lines = text.split("\n")
    expect = [k for k, line in enumerate(lines) if line.startswith("  - ") and "{" not in line]
    for _ in range(rng.randint(0, 3)):
        if expect:
            k = pick(rng, expect)
            lines[k] = "  - " + mutate_line(rng, lines[k][4:]).replace('"', "")
    if rng.random() < 0.3:  # terminal text in the description, printed under a FAIL line
        lines = _with_description(lines, "".join(pick(rng, TERMINAL) for _ in range(2)))
    if rng.random() < 0.1:
        lines = [line for line in lines if not line.startswith(pick(rng, ["expect:", "patient:", "start:"]))]
    files = {"p.rxw": PROTOCOLS[folder].read_text(encoding="utf-8"), "c.yaml": "\n".join(lines)}
    fmt = pick(rng, ["text", "json"])
    return Case("scenario files", f"case {i}", files, ["test", "p.rxw", "c.yaml", "--format", fmt], fail_ok=True)


FAMILY = Family("scenario files", generate, count=260, sample=6)


def test_sample(tmp_path):
    FAMILY.assert_clean(tmp_path, seed=1, n=FAMILY.sample)


@pytest.mark.slow
def test_budget(tmp_path):
    FAMILY.assert_clean(tmp_path, seed=slow_seed(), n=FAMILY.count)
