"""Reading fast reads the same: an entry written as one before is taken from its first reading
(`Reader.entries`), and that gives exactly the events, positions, order and messages of
reading every entry afresh, in each format."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from rxwatch.inputs import read
from rxwatch.inputs.model import TimelineError
from rxwatch.inputs.reader import Reader

DATA = Path(__file__).parent / "data" / "timelines"
PROTOCOL = json.loads((DATA / "protocol.json").read_text())
# lab, value texts, unit, uln: a few values each, so that entries repeat
LABS = [("ALT", ["32", "32.0", "41.5", "120"], ["U/L", "IU/L", None], ["", "40", "35.0"]),
        ("1920-8", ["28", "28.50", "300"], ["U/L"], ["", "40"]),
        ("TBIL", ["12", "0.7", "25.5"], ["umol/L", "mg/dL"], ["", "21"])]
TIMES = [None, None, "08:30", "07:00", "23:59:59+01:00"]


def entries(seed: int, n: int = 300, bad: bool = False):
    rng = random.Random(seed)
    for i in range(n):
        lab, values, units, ulns = rng.choice(LABS)
        day = f"2025-{1 + i // 28 % 12:02d}-{1 + i % 28:02d}"
        if bad and rng.random() < 0.05:
            day = "2025-02-30"  # not a date: an error on an entry otherwise read before
        yield day, rng.choice(TIMES), lab, rng.choice(values), rng.choice(units), rng.choice(ulns)


def write(kind: str, path: Path, rows) -> None:
    if kind == "csv":
        lines = ["date,time,lab,value,unit,uln"]
        lines += [f"{d},{t or ''},{lab},{v},{u or ''},{uln}" for d, t, lab, v, u, uln in rows]
        path.write_text("\n".join(lines) + "\n")
        return
    events = []
    for d, t, lab, v, u, uln in rows:
        e = {"date": d, "lab": lab, "value": v}
        if t:
            e["time"] = t
        if u:
            e["unit"] = u
        if uln:
            e["uln"] = uln
        events.append(e)
    if kind == "json":  # numbers as the file writes them (32.0 stays 32.0)
        items = [", ".join(f'"{k}": {x if k in ("value", "uln") else json.dumps(x)}' for k, x in e.items()) for e in events]
        path.write_text('{"patient": {"id": "p"}, "start": "2025-01-01", "events": [\n'
                        + ",\n".join("{" + item + "}" for item in items) + "\n]}\n")
    else:
        lines = ["patient: {id: p}", "start: 2025-01-01", "events:"]
        for e in events:
            lines.append("  - {" + ", ".join(f"{k}: {_yaml(k, x)}" for k, x in e.items()) + "}")
        path.write_text("\n".join(lines) + "\n")


def _yaml(key: str, value: str) -> str:
    return f'"{value}"' if key == "time" else value


def snapshot(path: Path):
    """Everything a reading gives: events with their positions and order, or the messages."""
    try:
        tl = read(path, PROTOCOL, facts={"indication": "rheumatoid_arthritis"} if path.suffix == ".csv" else None)
    except TimelineError as e:
        return ("error", [str(m) for m in e.messages], [str(w) for w in e.warnings])
    return ("ok", [(e, e.loc, e.order, e.unit, e.time) for e in tl.events], [str(w) for w in tl.warnings])


@pytest.mark.parametrize("kind", ["yaml", "json", "csv"])
@pytest.mark.parametrize("bad", [False, True])
def test_entries_read_before_read_the_same(kind, bad, tmp_path, monkeypatch):
    path = tmp_path / f"t.{kind}"
    write(kind, path, list(entries(7, bad=bad)))
    fast = snapshot(path)
    remembered: list = []
    real = Reader.remember
    monkeypatch.setattr(Reader, "remember", lambda self, key, result: remembered.append(key) or real(self, key, result))
    snapshot(path)
    assert remembered and all(isinstance(k, tuple) for k in remembered)  # the shortcut is taken
    assert len(remembered) < 300  # and served most entries
    monkeypatch.setattr(Reader, "remember", lambda self, key, result: None)  # every entry read afresh
    slow = snapshot(path)
    assert fast == slow
    assert fast[0] == ("error" if bad else "ok")


def test_a_lab_result_is_the_frozen_dataclass_its_fields_say():
    """LabResult's own __init__ (fast: a big timeline makes one per result) sets every field,
    `q` and `uln_q` included, as the dataclass's would."""
    import dataclasses
    import datetime
    import pickle
    from fractions import Fraction

    from rxwatch.inputs.model import LabResult, Loc
    from rxwatch.simulator.expr import exact_q

    names = [f.name for f in dataclasses.fields(LabResult)]
    assert names == ["date", "lab", "value", "uln", "loc", "unit", "lln", "time", "order", "q", "uln_q"]
    day, loc = datetime.date(2025, 1, 6), Loc("t.json", 3)
    r = LabResult(day, "ALT", Fraction(61, 2), 40, loc, "U/L", lln=7, time="08:30", order=(None, 4))
    assert [getattr(r, n) for n in names[:9]] == [day, "ALT", Fraction(61, 2), 40, loc, "U/L", 7, "08:30", (None, 4)]
    assert r.q == exact_q(Fraction(61, 2)) and r.uln_q == exact_q(40)
    bare = LabResult(day, "ALT", 30, None, loc)
    assert (bare.unit, bare.lln, bare.time, bare.order, bare.uln_q) == (None, None, None, (), None)
    assert r == LabResult(day, "ALT", Fraction(61, 2), 40, loc, "U/L", 7, "08:30", (None, 9))  # order not compared
    assert r != dataclasses.replace(r, value=31) and dataclasses.replace(r, value=31).q == exact_q(31)
    assert hash(r) == hash(LabResult(day, "ALT", Fraction(61, 2), 40, loc, "U/L", 7, "08:30"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.value = 1  # type: ignore[misc]
    back = pickle.loads(pickle.dumps(r))
    assert back == r and back.q == r.q and back.order == r.order
