"""The fuzz corpus's harness: a case (files and a command line), run through the real command
line in-process (`rxwatch.cli.main.main`, the console script's own function), and the outcome
classified.

An outcome is one of:

- **refused**: exit 1 with at least one located diagnostic (`PATH[:LINE[:COL]]: error[CODE]: ...`),
  or exit 2 with one `rxwatch: ...` line (or typer's usage error); no traceback, no output file
  written (nor a temporary one left), the inputs untouched;
- **accepted**: exit 0, the outputs there and whole (each family checks what "correct" means for
  its input: the patient id printed as it is, a chart with no script in it, ...);
- **failure**: anything else: exit 3 or another status, a traceback, a control character or an
  escape sequence reaching the terminal, a partial or stray file, an input changed, an input a
  family must refuse accepted, or the family's own check failing.

Families (one module `test_<family>.py` each) build cases from a `random.Random` seeded per
run: the ordinary suite runs a small fixed-seed sample of each, the slow tier
(`pytest -m slow tests/fuzz`) the issue's counts with a fresh seed (`RXWATCH_FUZZ_SEED` to
repeat one), and `bench/fuzz_report.py` prints the family table. A failing case prints as the
JSON of a regression case: keep it in `tests/fuzz/regressions/` (test_regressions.py runs them all).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import os
import random
import re
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

# ---------------------------------------------------------------------------- the inputs

PROTOCOL = textwrap.dedent("""\
    protocol fuzzed
      title "A protocol to attack"
      version "1.0"
      status draft
      description "Monitoring of one lab, with the features the inputs reach."
    source s "A source" kind label
      note "a note"
    lab ALT "alanine aminotransferase" unit "U/L" uln 40 loinc "1742-6"
    lab CREA "creatinine" unit "umol/L" uln 110 loinc "2160-0" molar_mass 113.12
    fact indication "indication" one of ra, stills default ra
    fact liver_disease "liver disease" bool default false
    fact weight "weight" number unit "kg" default 70
    var repeats "repeats" number default 0
    event stop "treatment ended"
    action check "order ALT" orders ALT
    action treat "treat"
    action pause "pause"
    let x "ALT in multiples of ULN" = xuln(ALT)
    results valid for 3 days cite s
    reminders every 4 weeks cite s

    initial state watch "watching" {
      on entry { do check due 1..2 weeks cite s }
      on panel {
        when known(ALT) and x > 2 -> high cite s
        otherwise stay cite s { do check due 1..2 weeks cite s }
      }
      on event stop { otherwise -> done cite s }
    }

    state high "raised" {
      on entry {
        do one of treat, pause cite s
        do check due 1..2 weeks cite s
        set repeats = repeats + 1 cite s
      }
      on panel {
        when known(ALT) and x <= 1 -> watch cite s
        otherwise stay cite s
      }
      on event stop { otherwise -> done cite s }
    }

    terminal state done "ended"
    """)

TIMELINE = textwrap.dedent("""\
    patient: {id: p-1, facts: {indication: stills}}
    start: 2025-01-06
    until: 2025-03-31
    events:
      - {date: 2025-01-06, lab: ALT, value: 32}
      - {date: 2025-01-20, lab: ALT, value: 132, unit: U/L}
      - {date: 2025-01-20, lab: CREA, value: 1.1, unit: mg/dL}
      - {date: 2025-02-03, choice: pause}
      - {date: 2025-02-10, lab: ALT, value: 30}
      - {date: 2025-03-01, event: stop}
    """)

CSV = "date,lab,value,unit,patient\n2025-01-06,ALT,32,U/L,p-1\n2025-01-20,ALT,132,U/L,p-1\n2025-02-10,ALT,30,U/L,p-1\n"

INJECTION = [
    "<script>alert(1)</script>", '"><img src=x onerror=alert(1)>', "</script><script>alert(1)</script>",
    "javascript:alert(1)", "]]><!--", "<svg onload=alert(1)>", "&amp;&lt;", "{{7*7}}", "${7*7}",
    "' onmouseover='alert(1)", "<![CDATA[x]]>", '\\" onload=\\"x', "<iframe src=//x>", "<a href=javascript:x>y</a>",
    "%3Cscript%3E", "<style>*{display:none}</style>", "<foreignObject><body onload=x>", "\\u003cscript",
    "<!-- -->", "</TD></TR></TABLE>>", "<BR/>", "&#60;script&#62;", "<math><mi xlink:href=javascript:x>",
    "url(javascript:x)", "\"", "'", "<", ">", "&", "]", "[", "\\", "`", "${", "</title><script>x</script>",
    "<base href=//x>", "<meta http-equiv=refresh content=0;url=//x>", "data:text/html,<script>x</script>",
]
"""Script-injection payloads (38): in every text field, never executed, always shown as text."""

TERMINAL = [
    "\x1b[2J", "\x1b]8;;http://evil\x07link\x1b]8;;\x07", "\x1b[31mred", "a\rb", "a\x08b", "\x07", "\u202eevil",
    "\x9b31m", "[red]x[/red]", "[/]", "[link=http://x]y[/link]", "[bold", "a\x00b", "\x1bP+q\x1b\\", "\u2028",
    "\x7f", "\x85", "\u2066x\u2069", "[mrn]", "\x1b[8mhidden\x1b[0m", "\x1b[1A\x1b[2K", "\x0c", "\x0b",
]
"""Terminal text: escape sequences, control characters, bidirectional overrides, Rich markup."""

UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
"""What must never reach a terminal (tab and newline may)."""

LOCATED = re.compile(r"^.+?(?::\d+(?::\d+)?)?: error\[E\d{3}\]: ", re.M)


# ---------------------------------------------------------------------------- cases

@dataclass
class Case:
    """Files to write (name -> text, or bytes), a command line (file names relative to the case's
    folder), and what the family knows of the right outcome."""

    family: str
    name: str
    files: dict
    argv: list
    must: str | None = None  # "refuse", "accept" or None (either, if clean)
    outputs: tuple = ()  # files the command may write (must not exist after a refusal)
    check: Callable | None = None  # (Outcome) -> None or the reason an accepted output is wrong
    expect: dict = field(default_factory=dict)  # a regression's declared expectations (see `declared`)
    repeat: int = 1  # run this many times; the outputs must be identical (determinism)
    fail_ok: bool = False  # exit 1 without a diagnostic is right (a failing scenario prints FAIL)
    links: dict = field(default_factory=dict)  # symbolic links to make: name -> what it points to

    def to_json(self) -> str:
        files = {}
        for k, v in self.files.items():
            if isinstance(v, bytes):
                files[k] = {"base64": base64.b64encode(v).decode()}
            else:
                try:
                    v.encode("utf-8")
                    files[k] = v
                except UnicodeEncodeError:
                    files[k] = {"base64": base64.b64encode(v.encode("utf-8", "surrogatepass")).decode()}
        return json.dumps({"family": self.family, "name": self.name, "files": files, "argv": self.argv,
                           "must": self.must, "outputs": list(self.outputs), "expect": self.expect,
                           **({"fail_ok": True} if self.fail_ok else {}),
                           **({"repeat": self.repeat} if self.repeat > 1 else {})}, indent=1,
                          ensure_ascii=True)

    @classmethod
    def from_json(cls, data: dict) -> "Case":
        files = {k: base64.b64decode(v["base64"]) if isinstance(v, dict) else v for k, v in data["files"].items()}
        return cls(data["family"], data["name"], files, list(data["argv"]), data.get("must"),
                   tuple(data.get("outputs") or ()), expect=data.get("expect") or {}, fail_ok=bool(data.get("fail_ok")),
                   repeat=int(data.get("repeat") or 1))


@dataclass
class Outcome:
    status: int
    stdout: bytes
    stderr: bytes
    folder: Path
    seconds: float

    @property
    def out(self) -> str:
        return self.stdout.decode("utf-8", "replace")

    @property
    def err(self) -> str:
        return self.stderr.decode("utf-8", "replace")


def fs_name(name: str) -> str:
    """A file name as the command line gets it: bytes a file system holds but UTF-8 does not
    decode (`\\udcff`) stay surrogate escapes, as Python hands them in sys.argv."""
    return name


def _write(folder: Path, files: dict) -> None:
    for name, data in files.items():
        path = os.path.join(os.fsencode(folder), os.fsencode(name))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data if isinstance(data, bytes) else data.encode("utf-8", "surrogatepass"))


def _snapshot(folder: Path) -> dict:
    out = {}
    for root, _, names in os.walk(os.fsencode(folder)):
        for n in names:
            p = os.path.join(root, n)
            with open(p, "rb") as f:
                out[os.path.relpath(p, os.fsencode(folder))] = hashlib.sha256(f.read()).hexdigest()
    return out


def invoke(argv: list, folder: Path) -> Outcome:
    """Run `rxwatch ARGV` in `folder` in-process, standard output and error as strict UTF-8
    byte streams that are not terminals (as in a pipe)."""
    from rxwatch.cli.main import main

    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="strict", write_through=True)
    err = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="strict", write_through=True)
    here = os.getcwd()
    os.chdir(folder)
    t = time.perf_counter()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                status = main(list(argv))
            except BaseException as e:  # anything main lets through is a failure to report
                status = f"raised {type(e).__name__}: {e}"
    finally:
        os.chdir(here)
    seconds = time.perf_counter() - t
    return Outcome(status, out.buffer.getvalue(), err.buffer.getvalue(), folder, seconds)


def run(case: Case, folder: Path) -> tuple[str, str, Outcome]:
    """Write the case's files into `folder` (empty), run it, classify: (kind, reason, outcome),
    kind one of "refused", "accepted", "failure"."""
    folder.mkdir(parents=True, exist_ok=True)
    _write(folder, case.files)
    for name, target in case.links.items():
        os.symlink(target, folder / name)
    before = _snapshot(folder)
    outcomes = [invoke(case.argv, folder)]
    written = [_outputs(case, folder)]
    reason = classify(case, outcomes[0], before)
    for _ in range(case.repeat - 1):
        for o in case.outputs:
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(os.fsencode(folder), os.fsencode(o)))
        outcomes.append(invoke(case.argv, folder))
        written.append(_outputs(case, folder))
    o = outcomes[0]
    if not reason and case.repeat > 1:
        first = (o.status, o.stdout, o.stderr, written[0])
        for other, files in zip(outcomes[1:], written[1:]):
            if (other.status, other.stdout, other.stderr, files) != first:
                reason = "not deterministic: another run printed or wrote something else"
                break
    if reason:
        return "failure", reason, o
    return ("accepted" if o.status == 0 else "refused"), "", o


def _outputs(case: Case, folder: Path) -> dict:
    """The bytes of the case's outputs as they are now (None for one not there)."""
    out = {}
    for name in case.outputs:
        try:
            out[name] = (folder / name).read_bytes()
        except OSError:
            out[name] = None
    return out


def classify(case: Case, o: Outcome, before: dict) -> str:
    """'' when the outcome is clean, else why it is a failure."""
    if not isinstance(o.status, int) or o.status not in (0, 1, 2):
        return f"exit status {o.status}: {o.err.strip().splitlines()[-1:] if o.err.strip() else ''}"
    if "Traceback (most recent call last)" in o.err or "Traceback (most recent call last)" in o.out:
        return "a traceback was printed"
    for stream, text in (("standard error", o.err), ("standard output", o.out)):
        m = UNSAFE.search(text)
        if m:
            return f"the control character {m.group()!r} reached {stream}"
    after = _snapshot(o.folder)
    for name, digest in before.items():
        if os.fsdecode(name) not in case.outputs and after.get(name) != digest:
            return f"the input {name!r} was changed or removed"
    stray = [n for n in after if n not in before and os.fsdecode(n) not in case.outputs]
    if stray:
        return f"stray files left: {[os.fsdecode(n) for n in stray][:3]}"
    if o.status == 0:
        if case.must == "refuse":
            return "accepted an input that must be refused"
        for name in case.outputs:
            if not (o.folder / name).exists() and name in _written(case):
                return f"exit 0 but {name} was not written"
        if case.check is not None:
            why = case.check(o)
            if why:
                return why
    else:
        if case.must == "accept" and not (case.fail_ok and o.status == 1):
            return f"refused an input that must be accepted: {o.err.strip()[:300]}"
        for name in case.outputs:
            key = os.fsencode(name)
            if key in after and before.get(key) != after[key]:
                return f"refused (exit {o.status}) but {name} was written"
        if o.status == 1 and not LOCATED.search(o.err) and not _json_errors(o.out) and not case.fail_ok:
            return f"exit 1 without a located diagnostic: {o.err.strip()[:300]!r}"
        if o.status == 2 and not re.search(r"^(rxwatch: |Usage: |Error: )", o.err, re.M):
            return f"exit 2 without a message: {o.err.strip()[:300]!r}"
    return declared(case, o)


def _json_errors(out: str) -> bool:
    """`check --format json` prints its diagnostics on standard output: a located error there."""
    try:
        data = json.loads(out)
    except ValueError:
        return False
    return isinstance(data, list) and any(isinstance(d, dict) and d.get("severity") == "error" and d.get("path")
                                          and d.get("code") for d in data)


def _written(case: Case) -> set:
    """The outputs a successful run writes: the `-o` targets of the command line."""
    return {case.argv[i + 1] for i, a in enumerate(case.argv[:-1]) if a in ("-o", "--output")}


def declared(case: Case, o: Outcome) -> str:
    """A regression case's own expectations: `status`, text the standard error or output must
    (`err_has`, `out_has`) or must not (`err_lacks`, `out_lacks`) hold."""
    e = case.expect
    if "status" in e and o.status != e["status"]:
        return f"exit {o.status}, expected {e['status']}: {o.err.strip()[:300]}"
    for key, text, want in (("err_has", o.err, True), ("out_has", o.out, True), ("err_lacks", o.err, False),
                            ("out_lacks", o.out, False)):
        for frag in e.get(key, ()):
            if (frag in text) != want:
                return f"{'missing' if want else 'unexpected'} in the output: {frag!r}"
    return ""


# ---------------------------------------------------------------------------- families

@dataclass
class Family:
    """A family of hostile inputs: `generate(rng, i)` makes its i-th case; `count` is how many
    the fuzz report (and the slow tier) runs; `sample` how many the ordinary suite runs."""

    name: str
    generate: Callable[[random.Random, int], Case]
    count: int
    sample: int = 20

    def cases(self, seed: int, n: int) -> list[Case]:
        rng = random.Random(f"{self.name}:{seed}")
        return [self.generate(rng, i) for i in range(n)]

    def run(self, folder: Path, seed: int, n: int) -> dict:
        """Run `n` cases: counts of refused/accepted/failure and the failures themselves."""
        tally = {"inputs": 0, "refused": 0, "accepted": 0, "failures": 0, "failed": [], "seconds": 0.0}
        for i, case in enumerate(self.cases(seed, n)):
            kind, reason, o = run(case, folder / f"{i:05d}")
            tally["inputs"] += 1
            tally["seconds"] += o.seconds
            tally["failures" if kind == "failure" else kind] += 1
            if kind == "failure":
                tally["failed"].append((case, reason))
        return tally

    def assert_clean(self, folder: Path, seed: int, n: int) -> None:
        tally = self.run(folder, seed, n)
        if tally["failed"]:
            case, reason = tally["failed"][0]
            raise AssertionError(f"{self.name}: {tally['failures']} of {n} inputs failed (seed {seed}); the first: "
                                 f"{reason}\nkeep it in tests/fuzz/regressions/:\n{case.to_json()}")


def slow_seed() -> int:
    """The slow tier's seed: RXWATCH_FUZZ_SEED, else a fresh one (printed by a failure)."""
    return int(os.environ.get("RXWATCH_FUZZ_SEED") or random.SystemRandom().randrange(10**9))


# ---------------------------------------------------------------------------- helpers for families

def compiled_graph() -> str:
    """The compiled graph of PROTOCOL (JSON text), once."""
    global _GRAPH
    if _GRAPH is None:
        from rxwatch.compiler import compile_source, graphio

        _GRAPH = graphio.to_json(compile_source(PROTOCOL, "fuzzed.rxw").graph)
    return _GRAPH


_GRAPH: str | None = None


def trace_of(timeline: str = TIMELINE) -> dict:
    """The JSON trace of PROTOCOL over `timeline`, as `rxwatch simulate --format json` writes it."""
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        folder = Path(d)
        _write(folder, {"p.rxw": PROTOCOL, "t.yaml": timeline})
        o = invoke(["simulate", "p.rxw", "t.yaml", "-f", "json"], folder)
        assert o.status == 0, o.err
        return json.loads(o.stdout)


def pick(rng: random.Random, items):
    return items[rng.randrange(len(items))]


def shows(text: str, where: str) -> str:
    """'' when `text` appears in `where` as written or with its control characters escaped."""
    from rxwatch.compiler.diagnostics import sanitize

    shown = sanitize(text, newlines=False).replace("\t", "\\t")
    return "" if shown in where or text in where else f"{text!r} is not shown as written"


def no_script(markup: str, html: bool) -> str:
    """'' when a chart holds nothing active: no <script> but the viewer's own (its code and the
    panel form's, each with its JSON data), no event handler attribute, no javascript: link (an
    injected payload shows as text)."""
    scripts = len(re.findall(r"<script\b", markup, re.I))
    data = len(re.findall(r'<script type="application/json" id="rxwatch-(?:data|panelform)">', markup))
    if scripts != (4 if html else 0) or data != (2 if html else 0):
        return f"{scripts} <script> elements"
    found = _active_attributes(markup)
    if found:
        return found
    return ""


def _active_attributes(markup: str) -> str:
    """'' unless some element of `markup` has an event-handler attribute (`on...`) or a
    `javascript:` link, read as a browser reads attributes (a payload inside an attribute's
    quoted value, its quotes escaped, is text, not an attribute)."""
    from html.parser import HTMLParser

    found: list[str] = []

    class Attributes(HTMLParser):
        def handle_starttag(self, tag, attrs):
            for name, value in attrs:
                if name.lower().startswith("on"):
                    found.append("an element with an event-handler attribute")
                elif name.lower() in ("href", "src", "xlink:href", "action", "formaction") and value \
                        and re.sub(r"[\s\x00-\x1f]", "", value).lower().startswith("javascript:"):
                    found.append("a javascript: link")

        handle_startendtag = handle_starttag

    parser = Attributes(convert_charrefs=True)
    parser.feed(markup)
    parser.close()
    return found[0] if found else ""
