"""Mutation testing of a scenario suite: `rxwatch test PROTOCOL CASE... --mutants`.

Every mutant of the protocol (suite/mutants.py) is compiled and replayed against the cases,
which are read once (a mutant of a fact's default reads them again: the default is part of the
timeline). A mutant is

- *killed* when some case fails on it (its first failing case and expectation are kept; the
  other cases are not run: a mutant stops at its first failure),
- *stillborn* when its text does not compile (not scored),
- *equivalent* when the verifier proves it decides the same as the protocol on every input
  (suite/equivalence.py; not scored), and
- *survived* otherwise, with an input on which it behaves differently.

Score = killed / (killed + survived). Mutants run in parallel over the machine's cores (worker
processes forked after the cases are read); the order of the report never depends on them.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from rxwatch.compiler import compile_source

from . import equivalence
from .mutants import GUARD_OPERATORS, Mutant, mutants

__all__ = ["MutationReport", "MutantResult", "run_mutants"]


@dataclass
class MutantResult:
    mutant: Mutant
    status: str  # killed, survived, equivalent, stillborn
    killed_by: str = ""  # CASE:LINE: the expectation that failed (killed)
    witness: str = ""  # an input on which it differs (survived), or why it is equivalent
    cases_run: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict:
        d = self.mutant.to_dict()
        d.update(status=self.status, cases_run=self.cases_run)
        if self.killed_by:
            d["killed_by"] = self.killed_by
        if self.witness:
            d["witness"] = self.witness
        return d


@dataclass
class MutationReport:
    protocol: str
    path: str
    results: list[MutantResult] = field(default_factory=list)
    seconds: float = 0.0
    jobs: int = 1

    def count(self, status: str) -> int:
        return sum(1 for r in self.results if r.status == status)

    @property
    def score(self) -> float | None:
        scored = self.count("killed") + self.count("survived")
        return None if scored == 0 else self.count("killed") / scored

    def summary(self) -> dict:
        return {
            "mutants": len(self.results),
            "killed": self.count("killed"),
            "survived": self.count("survived"),
            "equivalent": self.count("equivalent"),
            "stillborn": self.count("stillborn"),
            "score": None if self.score is None else round(self.score, 4),
            "seconds": round(self.seconds, 2),
            "jobs": self.jobs,
            "operators": {op: sum(1 for r in self.results if r.mutant.operator == op) for op in
                          sorted({r.mutant.operator for r in self.results})},
        }

    def to_dict(self) -> dict:
        return {"protocol": self.protocol, "summary": self.summary(), "mutants": [r.to_dict() for r in self.results]}

    def format_text(self) -> str:
        s = self.summary()
        lines = []
        for r in self.results:
            if r.status == "survived":
                lines.append(f"SURVIVED {self.path}:{r.mutant.span.line}:{r.mutant.span.column}: "
                             f"{r.mutant.operator}: {r.mutant.edit}")
                if r.witness:
                    lines.append(f"  behaves differently on: {r.witness}")
        for r in self.results:
            if r.status == "equivalent":
                lines.append(f"EQUIVALENT {self.path}:{r.mutant.span.line}:{r.mutant.span.column}: "
                             f"{r.mutant.operator}: {r.mutant.edit}" + (f" ({r.witness})" if r.witness else ""))
        by_op: dict[str, list[int]] = {}
        for r in self.results:
            k = by_op.setdefault(r.mutant.operator, [0, 0])
            k[0] += r.status == "killed"
            k[1] += r.status in ("killed", "survived")
        lines.append("killed by operator: " + ", ".join(f"{op} {k}/{n}" for op, (k, n) in by_op.items() if n))
        score = "n/a" if s["score"] is None else f"{100 * s['score']:.1f}%"
        lines.append(
            f"mutation score of {self.protocol}: {score} ({s['killed']} killed of "
            f"{s['killed'] + s['survived']}; {s['equivalent']} equivalent and {s['stillborn']} that do not "
            f"compile left out; {s['mutants']} mutants in {s['seconds']:.1f} s on {s['jobs']} "
            f"process{'es' if s['jobs'] != 1 else ''})"
        )
        return "\n".join(lines)


# ---------------------------------------------------------------- the work of one mutant

_WORK: dict[str, Any] = {}  # set before the workers fork: they inherit it


def _run_one(i: int) -> tuple[int, str, str, int, float]:
    from rxwatch.suite.cases import load_case
    from rxwatch.suite.check import check
    from rxwatch.suite.expectations import CaseError, Names
    from rxwatch.simulator.engine import Machine, SimulationError

    t0 = time.perf_counter()
    m: Mutant = _WORK["mutants"][i] if i >= 0 else Mutant(0, "none", _WORK["mutants"][0].span, "", _WORK["text"])
    result = compile_source(m.text, _WORK["path"], verify=False)
    if not result.ok or result.graph is None:
        first = next((d for d in result.diagnostics if d.is_error), None)
        return i, "stillborn", str(first.message if first else ""), 0, time.perf_counter() - t0
    graph = result.graph
    try:
        machine = Machine(graph)
    except Exception as exc:  # a graph the engine refuses counts as not compiling
        return i, "stillborn", f"{type(exc).__name__}: {exc}", 0, time.perf_counter() - t0
    cases = _WORK["cases"]
    names = Names.of(graph)
    run = 0
    for path, case in cases:
        if m.operator == "default":  # the fact's default is read into the timeline
            try:
                case = load_case(path, graph)
            except CaseError:
                return i, "killed", f"{path}: no longer a valid case", run, time.perf_counter() - t0
        run += 1
        try:
            trace = machine.run(case.timeline)
        except SimulationError as exc:
            return i, "killed", f"{path}: the simulation stopped: {exc}", run, time.perf_counter() - t0
        for e in case.expectations:
            if not check(e, trace, names).ok:
                return i, "killed", f"{e.where}: {e.text}", run, time.perf_counter() - t0
    if i < 0:  # the protocol itself, through the same path: the suite must pass on it
        return i, "survived", "", run, time.perf_counter() - t0
    # survived every case: equivalent, or an input on which it differs (judged here, in parallel)
    r = MutantResult(m, "survived")
    _judge(r, _WORK["path"], _WORK["graph"], graph)
    return i, r.status, r.witness, run, time.perf_counter() - t0


def run_mutants(path: str, text: str, module, graph, case_paths: Sequence[str], *, jobs: int | None = None,
                progress: Callable[[int, int], None] | None = None, sample: int | None = None,
                numbers: Sequence[int] | None = None) -> MutationReport:
    """Make every mutant of the protocol at `path` (its `text`, checked `module` and compiled
    `graph`), run the cases on each, and prove the survivors' equivalence where it holds.

    The suite must pass on the protocol itself (the caller checks). `sample` keeps every
    `sample`-th mutant (a quick run; the score is then of those); `numbers` keeps the mutants
    with those numbers (a seeded random sample, say)."""
    from rxwatch.suite.cases import load_case

    t0 = time.perf_counter()
    made = mutants(module, text)
    if numbers is not None:
        wanted = set(numbers)
        made = [m for m in made if m.number in wanted]
    if sample and sample > 1:
        made = made[::sample]
    cases = [(p, load_case(p, graph)) for p in case_paths]
    jobs = max(1, min(jobs or os.cpu_count() or 1, len(made) or 1))
    _WORK.update(mutants=made, path=path, cases=cases, graph=graph, text=text)
    if made:
        # the protocol itself through the very path every mutant takes: a case that fails here
        # would "kill" every mutant, a score that means nothing
        _, status, detail, _, _ = _run_one(-1)
        if status != "survived":
            _WORK.clear()
            raise RuntimeError(f"the cases do not pass on the protocol itself in the mutation runner ({detail}); "
                               "no score")
    raw: list = [None] * len(made)
    done = 0
    try:
        if jobs > 1 and "fork" in multiprocessing.get_all_start_methods():
            with multiprocessing.get_context("fork").Pool(jobs) as pool:
                for out in pool.imap_unordered(_run_one, range(len(made)), chunksize=4):
                    raw[out[0]] = out
                    done += 1
                    if progress:
                        progress(done, len(made))
        else:
            jobs = 1
            for i in range(len(made)):
                raw[i] = _run_one(i)
                done += 1
                if progress:
                    progress(done, len(made))
    finally:
        _WORK.clear()
    report = MutationReport(graph.graph.get("name", ""), path, jobs=jobs)
    for i, status, detail, run, seconds in raw:
        m = made[i]
        r = MutantResult(m, status, cases_run=run, seconds=seconds)
        if status == "killed":
            r.killed_by = detail
        else:
            r.witness = detail
        report.results.append(r)
    report.seconds = time.perf_counter() - t0
    return report


def _judge(r: MutantResult, path: str, graph, mutant_graph) -> None:
    """Equivalent, or survived with an input on which the mutant differs."""
    m = r.mutant
    if m.operator in GUARD_OPERATORS:
        verdict = equivalence.equivalent(graph, mutant_graph, moved_rules=m.operator in ("swap-rules", "drop-rule"))
    elif m.operator in ("target", "drop-action", "drop-rule", "swap-rules"):
        verdict = equivalence.witness(graph, m.span.line)
    elif m.operator == "default":
        verdict = equivalence.same_default(graph, mutant_graph)
    else:
        verdict = equivalence.Verdict(False, _window_witness(m))
    if verdict.equivalent:
        r.status = "equivalent"
    r.witness = verdict.witness


def _window_witness(m: Mutant) -> str:
    """What a moved window bound changes, in words: `due 3..4 weeks` -> `due 2..4 weeks`."""
    import re

    nums = [re.findall(r"(\d+)(?:\s*\.\.\s*(\d+))?\s*(\w+)`", side) for side in m.edit.split(" -> ")]
    try:
        (a1, b1, unit), (a2, b2, _) = nums[0][0], nums[1][0]
    except (IndexError, ValueError):
        return "an order made here: its window moves"
    if not b1:  # due within N
        a1, b1, a2, b2 = "0", a1, "0", a2
    a1, b1, a2, b2 = int(a1), int(b1), int(a2), int(b2)
    unit = unit.rstrip("s")
    if a1 != a2:
        lo = min(a1, a2)
        who = "the mutant" if a2 < a1 else "the protocol"
        return f"an order made here and a result {lo} {unit}{'s' if lo != 1 else ''} later: it fulfils the order in {who} only"
    hi = min(b1, b2)
    who = "the mutant" if b2 < b1 else "the protocol"
    return f"an order made here and no result within {hi} {unit}{'s' if hi != 1 else ''}: overdue the next day in {who} only"


# ---------------------------------------------------------------- the last run, for `rxwatch cases --for-survivors`

CACHE = ".rxwatch"
"""The folder (in the current directory) where the last mutation run of each protocol is kept,
as mutmut and pytest keep theirs: `.rxwatch/mutants-NAME.json`."""


def cache_path(name: str) -> str:
    return os.path.join(CACHE, f"mutants-{name}.json")


def save_last_run(report: MutationReport, text: str) -> str | None:
    """Keep the survivors of this run (and a digest of the protocol's text) for `rxwatch cases
    --for-survivors`; None when the folder cannot be written (the run itself is not affected)."""
    import hashlib
    import json

    data = {"protocol": report.protocol, "path": report.path,
            "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
            "survivors": [r.to_dict() for r in report.results if r.status == "survived"]}
    path = cache_path(report.protocol)
    try:
        os.makedirs(CACHE, exist_ok=True)
        tmp = path + ".part"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1)
        os.replace(tmp, path)
    except OSError:
        return None
    return path


def last_survivors(name: str, module, text: str) -> list[Mutant]:
    """The mutants that survived the last run on this protocol's text. Raises LookupError (with
    the reason) when there is no such run, or the protocol changed since."""
    import hashlib
    import json

    path = cache_path(name)
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        raise LookupError(f"no mutation run of {name} here ({path}): run `rxwatch test PROTOCOL CASE... --mutants` first") from None
    except (OSError, ValueError) as exc:
        raise LookupError(f"{path}: cannot read the last mutation run: {exc}") from None
    if data.get("sha256") != hashlib.sha256(text.encode("utf-8")).hexdigest():
        raise LookupError(f"the protocol changed since the last mutation run ({path}): run `rxwatch test ... --mutants` again")
    wanted = {(d.get("operator"), d.get("line"), d.get("column"), d.get("edit")) for d in data.get("survivors") or ()}
    return [m for m in mutants(module, text)
            if (m.operator, m.span.line, m.span.column, m.edit) in wanted]
