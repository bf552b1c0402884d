"""Family "encodings": protocols, timelines and case files as bytes: UTF-8 with and without a
BOM, UTF-16, Latin-1, invalid UTF-8 sequences, NUL bytes, CR line ends, an empty file. Right:
a file that is not UTF-8 text refused (exit 2 `rxwatch: ... not UTF-8`, or E701 located), a
UTF-8 one read (a BOM skipped)."""

from __future__ import annotations

import pytest

from fuzzkit import CSV, PROTOCOL, TIMELINE, Case, Family, pick, slow_seed


def encode(rng, text: str) -> bytes:
    k = rng.randrange(8)
    if k == 0:
        return b"\xef\xbb\xbf" + text.encode("utf-8")
    if k == 1:
        return text.encode("utf-16")
    if k == 2:
        return (text + "é").encode("latin-1", "replace")
    if k == 3:
        data = text.encode("utf-8")
        at = rng.randrange(len(data) + 1)
        return data[:at] + pick(rng, [b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x00", b"\xf4\x90\x80\x80"]) + data[at:]
    if k == 4:
        return text.replace("\n", "\r").encode("utf-8")
    if k == 5:
        return b""
    if k == 6:
        return text.replace("\n", "\r\n").encode("utf-8")
    return text.encode("utf-8")


def generate(rng, i: int) -> Case:
    which = i % 4
    if which == 0:
        return Case("encodings", f"protocol {i}", {"p.rxw": encode(rng, PROTOCOL)}, ["check", "p.rxw"])
    if which == 1:
        return Case("encodings", f"timeline {i}", {"p.rxw": PROTOCOL, "t.yaml": encode(rng, TIMELINE)},
                    ["simulate", "p.rxw", "t.yaml", "-f", "json"])
    if which == 2:
        return Case("encodings", f"csv {i}", {"p.rxw": PROTOCOL, "l.csv": encode(rng, CSV)},
                    ["simulate", "p.rxw", "l.csv", "-f", "json"])
    return Case("encodings", f"render {i}", {"p.rxw": encode(rng, PROTOCOL)}, ["render", "p.rxw", "-o", "o.dot"],
                outputs=("o.dot",))


FAMILY = Family("encodings", generate, count=80)


def test_sample(tmp_path):
    FAMILY.assert_clean(tmp_path, seed=1, n=FAMILY.sample)


@pytest.mark.slow
def test_budget(tmp_path):
    FAMILY.assert_clean(tmp_path, seed=slow_seed(), n=FAMILY.count)
