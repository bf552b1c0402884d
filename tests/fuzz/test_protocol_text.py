"""Family "protocol text": a protocol mutated at random (characters inserted, deleted, repeated,
lines swapped or cut, tokens of the language dropped in) through `rxwatch check`. Right: checked
clean, or refused with located diagnostics; never a crash."""

from __future__ import annotations

import pytest

from fuzzkit import PROTOCOL, Case, Family, pick, slow_seed

TOKENS = ["{", "}", "(", ")", "->", "..", ",", "when", "otherwise", "stay", "do", "one of", "known(", "xuln(",
          "since(", "since entry", "fulfilled(", "and", "or", "not", ">", "<=", "==", "!=", "in {", "1e999", "0",
          "-", "/", "*", '"', '"""', "#", "cite", "state", "initial", "terminal", "lab", "let", "set", "if", "else",
          "due", "within", "days", "weeks", "months", "years", "after", "every", "accept", "\t", "\n", "\r\n",
          "\ufeff", "é", "ALT", "x", "watch", "high", "9" * 45, "1.0000000001", "@", "$", "\\", "§"]


def mutate(rng, text: str) -> str:
    for _ in range(rng.randint(1, 4)):
        at = rng.randrange(len(text) + 1)
        op = rng.randrange(6)
        if op == 0:
            text = text[:at] + pick(rng, TOKENS) + text[at:]
        elif op == 1:
            text = text[:at] + text[at + rng.randint(1, 30):]
        elif op == 2:
            text = text[:at] + text[at:at + rng.randint(1, 40)] * rng.randint(2, 5) + text[at:]
        elif op == 3:
            lines = text.split("\n")
            i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
            lines[i], lines[j] = lines[j], lines[i]
            text = "\n".join(lines)
        elif op == 4:
            text = text[:at]
        else:
            text = text[:at] + chr(rng.randrange(32, 0x2FFF)) + text[at:]
    return text


def generate(rng, i: int) -> Case:
    text = mutate(rng, PROTOCOL)
    argv = ["check", "p.rxw"] + (["--no-verify"] if i % 3 == 2 else []) + (["--format", "json"] if i % 5 == 4 else [])
    return Case("protocol text", f"mutation {i}", {"p.rxw": text}, argv)


FAMILY = Family("protocol text", generate, count=300)


def test_sample(tmp_path):
    FAMILY.assert_clean(tmp_path, seed=1, n=FAMILY.sample)


@pytest.mark.slow
def test_budget(tmp_path):
    FAMILY.assert_clean(tmp_path, seed=slow_seed(), n=FAMILY.count)
