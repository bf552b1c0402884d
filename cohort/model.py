"""The patient model: a YAML file, not code (docs/cohort.md, "The patient model").

`load_model(path)` reads a model file, checks it against the schema below and returns a
`PatientModel`; every mistake of the file is reported at once as a located, coded diagnostic
(E930-E936, docs/diagnostics.md) in one `ModelError`. A missing or unreadable file is a plain
OSError. `PatientModel.patient(seed, index, start, days)` makes one synthetic patient
(cohort/patient.py).

Every number of a model is a *parameter*: a mapping with the number(s), a `source` (one or
more citations `"SOURCE-ID, LOCATOR"`: a source declared under `sources:` and where in it),
a `marker` (`read`: read in the source; `computed`: computed from sourced numbers;
`assumed`: no source gives it) and, for computed and assumed ones, a `note` saying how or why.
A parameter is either one number (`value: 0.85`) or a distribution:

    {dist: lognormal, median: M, sigma_log: S}    or  {dist: lognormal, median: M, cv: CV}
    {dist: uniform, low: A, high: B}
    {dist: loguniform, low: A, high: B}           (uniform on the log scale, 0 < A)
    {dist: exponential, mean: M}

and a distribution may be given as one number (`value:`) where the model expects one.

The schema (a key in brackets is optional):

    model: NAME                     [title: TEXT]
    sources: {ID: {title: TEXT, [doi: TEXT], [url: TEXT], [note: TEXT]}, ...}
    labs:
      NAME:                         # a lab name as the protocols declare it (ALT, AST, ...)
        [unit: TEXT]  [uln: NUMBER]  decimals: INT
        set_point: DIST             # between persons: multiple of the ULN (the value itself without uln)
        [raised_set_point: {fraction: VALUE, median: VALUE, sigma_log: VALUE}]
        within_cv: VALUE            # day-to-day within-person CV, analytical variation included
        [analytical_cv: VALUE]      # the analytical part of within_cv (a repeat draw on one day)
    injury:
      reference_lab: NAME           # the lab whose multiples of ULN the episode peaks are (ALT)
      [shares: {LAB: VALUE, ...}]   # another lab's excess as a fraction of the reference lab's
      [bilirubin: {lab: NAME, threshold: VALUE, probability: VALUE, peak: DIST}]
      [inr: {lab: NAME, per_bilirubin: VALUE}]
      onset_excess: VALUE           # the excess (x ULN) when an episode starts to rise
      doubling_days: DIST  decay_half_life_days: DIST  plateau_days: DIST  chronic_level: DIST
    background:
      rate_per_year: VALUE          # episodes peaking above 3 x ULN, per patient-year
      tiers: [{weight: VALUE, peak: DIST}, ...]
    [drug:
      name: TEXT
      episodes: [{grade: NAME, probability: VALUE, peak: DIST, adapt: VALUE, [latency_days: DIST]}, ...]
      latency_days: DIST  chronic: VALUE  dose_effect: VALUE]
    adherence:
      on_time: VALUE  never: VALUE  lateness: DIST

The meaning of each parameter is in docs/cohort.md.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Callable

import yaml

from rxwatch.compiler.diagnostics import ERROR, Diagnostic, did_you_mean

__all__ = [
    "ModelError", "PatientModel", "Param", "Dist", "LabModel", "Injury", "Background", "Tier",
    "DrugModel", "Grade", "Adherence", "load_model", "parse_model", "shipped_models", "model_path",
    "MARKERS",
]

MARKERS = ("read", "computed", "assumed")


MAX_NUMBER = 1e15
"""The largest number a model may hold (as a lab value in a timeline: docs/cli.md's ranges)."""
MAX_SIGMA = 5.0
"""The largest spread of a lognormal on the log scale (so that a draw stays a finite number)."""


class ModelError(Exception):
    """A patient-model file is wrong: `diagnostics` holds every error found (E930-E936), each
    located; `path`, `line`, `col`, `code` and `message` are the first one's."""

    def __init__(self, path: str, line: int, col: int, code: str, message: str,
                 more: list[Diagnostic] | tuple = ()) -> None:
        first = Diagnostic.at(str(path), line, message, ERROR, code, col)
        self.diagnostics = [first, *more]
        self.path, self.line, self.col, self.code, self.message = str(path), line, col, code, message
        super().__init__("\n".join(str(d) for d in self.diagnostics))


# ---------------------------------------------------------------------------- parameters

@dataclass(frozen=True)
class Dist:
    """A distribution, sampled by inversion of one uniform draw (so one keyed draw, one value)."""

    kind: str  # "fixed" | "lognormal" | "uniform" | "loguniform" | "exponential"
    a: float  # fixed: the value; lognormal: median; uniform/loguniform: low; exponential: mean
    b: float = 0.0  # lognormal: sigma_log; uniform/loguniform: high

    def sample(self, u: float, z: Callable[[float], float]) -> float:
        """The value at uniform `u` in (0, 1); `z` is the standard normal quantile function."""
        k = self.kind
        if k == "fixed":
            return self.a
        if k == "lognormal":
            return self.a * math.exp(self.b * z(u))
        if k == "uniform":
            return self.a + (self.b - self.a) * u
        if k == "loguniform":
            return self.a * (self.b / self.a) ** u
        if k == "exponential":
            return -self.a * math.log1p(-u)
        raise AssertionError(k)

    def bounds(self) -> tuple[float, float]:
        """The support: (lowest, highest) value the distribution can give."""
        k = self.kind
        if k == "fixed":
            return self.a, self.a
        if k in ("uniform", "loguniform"):
            return self.a, self.b
        if k == "lognormal" and self.b == 0:
            return self.a, self.a
        return 0.0, math.inf

    def median(self) -> float:
        k = self.kind
        if k in ("fixed", "lognormal"):
            return self.a
        if k == "uniform":
            return (self.a + self.b) / 2
        if k == "loguniform":
            return math.sqrt(self.a * self.b)
        return self.a * math.log(2)

    def text(self) -> str:
        k = self.kind
        if k == "fixed":
            return _num(self.a)
        if k == "lognormal":
            return f"lognormal(median {_num(self.a)}, sigma_log {_num(self.b)})"
        if k in ("uniform", "loguniform"):
            return f"{k}({_num(self.a)}, {_num(self.b)})"
        return f"exponential(mean {_num(self.a)})"


def _num(x: float) -> str:
    return f"{x:.6g}"


@dataclass(frozen=True)
class Param:
    """One parameter of a model: its number (`value`) or distribution (`dist`), its citations
    (`cites`: (source id, locator) pairs), its marker and note, and where the file states it."""

    name: str  # dotted path in the file, e.g. "labs.ALT.within_cv"
    value: float | None
    dist: Dist | None
    cites: tuple[tuple[str, str], ...]
    marker: str
    note: str
    line: int

    @property
    def number(self) -> float:
        """The parameter's number: its value, or its distribution's median."""
        return self.value if self.value is not None else self.dist.median()

    def text(self) -> str:
        return _num(self.value) if self.value is not None else self.dist.text()


# ---------------------------------------------------------------------------- the model

@dataclass(frozen=True)
class LabModel:
    name: str
    unit: str | None
    uln: Any  # exact (int or Fraction) or None: values are absolute
    decimals: int
    set_point: Param  # a distribution
    raised: tuple[Param, Param, Param] | None  # fraction, median, sigma_log
    within_cv: Param
    analytical_cv: Param | None
    key: int = 0  # the lab's key in random draws (from its name: the same in every model)

    @property
    def sigma_bio(self) -> float:
        """sigma_log of the biological day-to-day variation (within_cv less the analytical CV)."""
        w = _sigma(self.within_cv.number)
        a = _sigma(self.analytical_cv.number) if self.analytical_cv else 0.0
        return math.sqrt(max(w * w - a * a, 0.0))

    @property
    def sigma_analytical(self) -> float:
        return _sigma(self.analytical_cv.number) if self.analytical_cv else 0.0


def _sigma(cv: float) -> float:
    """sigma_log of a lognormal with coefficient of variation `cv`."""
    return math.sqrt(math.log1p(cv * cv))


@dataclass(frozen=True)
class Injury:
    reference_lab: str
    shares: dict  # lab -> Param
    bili_lab: str | None
    bili_threshold: Param | None
    bili_probability: Param | None
    bili_peak: Param | None
    inr_lab: str | None
    inr_per_bilirubin: Param | None
    onset_excess: Param
    doubling_days: Param
    decay_half_life_days: Param
    plateau_days: Param
    chronic_level: Param


@dataclass(frozen=True)
class Tier:
    weight: Param
    peak: Param


@dataclass(frozen=True)
class Background:
    rate_per_year: Param
    tiers: tuple[Tier, ...]


@dataclass(frozen=True)
class Grade:
    grade: str
    probability: Param
    peak: Param
    adapt: Param
    latency_days: Param | None = None  # this grade's own latency (else the drug's)


@dataclass(frozen=True)
class DrugModel:
    name: str
    grades: tuple[Grade, ...]
    latency_days: Param
    chronic: Param
    dose_effect: Param


@dataclass(frozen=True)
class Adherence:
    on_time: Param
    never: Param
    lateness: Param


@dataclass(frozen=True)
class PatientModel:
    """A checked patient model. `params` lists every parameter in file order."""

    path: str
    name: str
    title: str
    sources: dict  # id -> {"title": ..., "doi": ..., "url": ..., "note": ...}
    labs: dict  # name -> LabModel, file order
    injury: Injury
    background: Background
    drug: DrugModel | None
    adherence: Adherence
    params: tuple[Param, ...] = field(repr=False)

    def patient(self, seed: int, index: int, start: Any, days: int):
        """One synthetic patient (cohort/patient.py): the same (seed, index) gives the same
        patient, whatever else is simulated."""
        from .patient import SyntheticPatient

        return SyntheticPatient(self, seed, index, start, days)

    def table(self) -> str:
        """Every parameter as a Markdown table: name, value, marker, source, note."""
        rows = ["| parameter | value | marker | source | note |", "|---|---|---|---|---|"]
        for p in self.params:
            cites = "; ".join(f"{sid} ({loc})" for sid, loc in p.cites).replace("|", "\\|")
            note = p.note.replace("|", "\\|").replace("\n", " ")
            rows.append(f"| `{p.name}` | {p.text()} | {p.marker} | {cites} | {note} |")
        return "\n".join(rows)


# ---------------------------------------------------------------------------- shipped models

def shipped_models() -> list[str]:
    """The names of the models shipped with rxwatch (cohort/models/NAME.yaml)."""
    folder = resources.files("rxwatch.cohort") / "models"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def model_path(name_or_path: str | os.PathLike) -> str:
    """`name_or_path` if it names a file; else the shipped model of that name; else the name
    as given (the read then fails with FileNotFoundError)."""
    p = os.fspath(name_or_path)
    if os.path.exists(p) or os.sep in p or p.endswith((".yaml", ".yml")):
        return p
    shipped = resources.files("rxwatch.cohort") / "models" / f"{p}.yaml"
    return str(shipped) if shipped.is_file() else p


def load_model(path: str | os.PathLike) -> PatientModel:
    """Read and check a patient-model file (or a shipped model by name: `load_model("anakinra")`).
    Raises OSError (missing or unreadable file) or ModelError (every mistake, located)."""
    p = model_path(path)
    data = Path(p).read_bytes()
    return parse_model(data, p)


def parse_model(text: str | bytes, path: str = "<model>") -> PatientModel:
    """Check a model given as text; raises ModelError."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ModelError(path, 1, 1, "E930", f"the model file is not UTF-8 (byte {e.start})") from None
    try:
        root = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (0, 0)
        raise ModelError(path, line, col, "E930", f"not YAML: {e.problem or e.context}") from None
    except yaml.YAMLError as e:
        raise ModelError(path, 0, 0, "E930", f"not YAML: {e}") from None
    r = _Reader(path)
    if root is None:
        raise ModelError(path, 1, 1, "E930", "the model file is empty")
    _plain_tree(root, path)
    model = r.model(root)
    if r.errors:
        first, *more = r.errors
        raise ModelError(first.path, first.line, first.column, first.code, first.message, more)
    return model


# ---------------------------------------------------------------------------- the reader

MAX_NODES = 100_000
"""The most YAML nodes a model may have (a shipped model has about 700)."""


def _plain_tree(root: yaml.Node, path: str) -> None:
    """Refuse aliases (a node reached twice: `*anchor`) and oversized files before the reader
    walks the tree, so that no file can make it walk a node more than once."""
    seen: set = set()
    stack = [root]
    while stack:
        n = stack.pop()
        if id(n) in seen:
            m = n.start_mark
            raise ModelError(path, m.line + 1, m.column + 1, "E930", "this value is used again through a YAML alias (*name): write it out where it is used")
        seen.add(id(n))
        if len(seen) > MAX_NODES:
            raise ModelError(path, n.start_mark.line + 1, 0, "E930", f"more than {MAX_NODES:,} YAML nodes")
        if isinstance(n, yaml.MappingNode):
            for k, v in n.value:
                stack.extend((v, k))
        elif isinstance(n, yaml.SequenceNode):
            stack.extend(reversed(n.value))


_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_SCALARS = yaml.SafeLoader("")  # its constructor turns a scalar node into a Python value
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_DISTS = {
    "lognormal": ("median",),  # and one of sigma_log, cv
    "uniform": ("low", "high"),
    "loguniform": ("low", "high"),
    "exponential": ("mean",),
}
_PARAM_KEYS = ("value", "dist", "median", "sigma_log", "cv", "low", "high", "mean", "source", "marker", "note")

M = yaml.MappingNode
S = yaml.ScalarNode
Q = yaml.SequenceNode


class _Reader:
    """Walks the composed YAML nodes (their marks give lines and columns), collecting errors."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.errors: list[Diagnostic] = []
        self.params: list[Param] = []
        self.sources: dict = {}
        self.lab_names: list[str] = []
        self.cites: list[tuple[str, yaml.Node]] = []  # checked once the sources are read

    # -- messages

    def err(self, node: yaml.Node | None, code: str, message: str) -> None:
        line, col = (node.start_mark.line + 1, node.start_mark.column + 1) if node is not None else (0, 0)
        self.errors.append(Diagnostic.at(self.path, line, message, ERROR, code, col))

    # -- shapes

    def mapping(self, node: yaml.Node, where: str, keys: dict[str, bool]) -> dict[str, tuple[yaml.Node, yaml.Node]] | None:
        """The mapping's items {key: (key node, value node)}; unknown keys (E932), missing
        required ones (E933; `keys` maps each allowed key to whether it is required)."""
        items = self.items(node, where)
        if items is None:
            return None
        for k, (kn, _) in items.items():
            if k not in keys:
                self.err(kn, "E932", f"unknown key '{k}' in {where}{did_you_mean(k, keys)}")
        for k, required in keys.items():
            if required and k not in items:
                self.err(node, "E933", f"{where} needs '{k}'")
        return items

    def items(self, node: yaml.Node, where: str) -> dict[str, tuple[yaml.Node, yaml.Node]] | None:
        if not isinstance(node, M):
            self.err(node, "E931", f"{where} must be a mapping")
            return None
        out: dict = {}
        for kn, vn in node.value:
            if not isinstance(kn, S):
                self.err(kn, "E931", f"a key in {where} must be a name")
                continue
            k = kn.value
            if k in out:
                self.err(kn, "E931", f"'{k}' given twice in {where}")
                continue
            out[k] = (kn, vn)
        return out

    def text(self, node: yaml.Node, where: str) -> str | None:
        if not isinstance(node, S) or not isinstance(self.scalar(node), str) or not node.value.strip():
            self.err(node, "E931", f"{where} must be a text")
            return None
        return node.value

    def scalar(self, node: S) -> Any:
        try:
            return _SCALARS.construct_object(node)
        except yaml.YAMLError:
            return node.value

    def number(self, node: yaml.Node, where: str, lo: float = -math.inf, hi: float = math.inf,
               lo_open: bool = False, integer: bool = False) -> float | None:
        hi = min(hi, MAX_NUMBER)  # no parameter of a patient is larger; a sample of it stays finite
        v = self.scalar(node) if isinstance(node, S) else None
        if isinstance(v, bool) or not isinstance(v, (int, float)) or (integer and not isinstance(v, int)):
            self.err(node, "E931", f"{where} must be {'a whole number' if integer else 'a number'}{_e_hint(v)}")
            return None
        if isinstance(v, int) and not -1e300 < v < 1e300:  # a float cannot hold it (math.isfinite would overflow)
            self.err(node, "E935", f"{where} is {node.value}: it must be {_range(lo, hi, lo_open)}"
                     if lo > -math.inf or hi < math.inf else f"{where} is {node.value}: too large a number")
            return None
        if not math.isfinite(v):
            self.err(node, "E935", f"{where} must be finite, not {node.value}")
            return None
        if v < lo or (lo_open and v == lo) or v > hi:
            self.err(node, "E935", f"{where} is {node.value}: it must be {_range(lo, hi, lo_open)}")
            return None
        return v

    # -- parameters

    def param(self, node: yaml.Node, name: str, *, dist: bool = False, lo: float = -math.inf,
              hi: float = math.inf, lo_open: bool = False) -> Param | None:
        """A parameter at `name`: one number within [lo, hi] (or a distribution whose support
        lies within it, when `dist`), with its source, marker and note."""
        items = self.items(node, f"'{name}'")
        if items is None:
            return None
        for k, (kn, _) in items.items():
            if k not in _PARAM_KEYS:
                self.err(kn, "E932", f"unknown key '{k}' in the parameter '{name}'{did_you_mean(k, _PARAM_KEYS)}")
        cites = self.source(node, items, name)
        marker = None
        if "marker" not in items:
            self.err(node, "E933", f"the parameter '{name}' needs a 'marker' (one of {', '.join(MARKERS)})")
        else:
            mn = items["marker"][1]
            m = self.text(mn, f"the marker of '{name}'")
            if m is not None and m not in MARKERS:
                self.err(mn, "E935", f"the marker of '{name}' is '{m}': it must be one of {', '.join(MARKERS)}{did_you_mean(m, MARKERS)}")
            else:
                marker = m
        note = ""
        if "note" in items:
            note = self.text(items["note"][1], f"the note of '{name}'") or ""
        elif marker in ("computed", "assumed"):
            self.err(node, "E933", f"the parameter '{name}' is {marker}: it needs a 'note' saying {'how' if marker == 'computed' else 'why'}")
        value = d = None
        shape = [k for k in ("value", "dist") if k in items]
        numbers = [k for k in ("median", "sigma_log", "cv", "low", "high", "mean") if k in items]
        if len(shape) != 1:
            if not shape:
                self.err(node, "E933", f"the parameter '{name}' needs a 'value'{' or a dist' if dist else ''}")
            else:
                self.err(items["dist"][0], "E934", f"the parameter '{name}' has both a 'value' and a 'dist'")
            return None
        if shape == ["value"]:
            for k in numbers:
                self.err(items[k][0], "E934", f"'{k}' belongs to a distribution; the parameter '{name}' has a 'value'")
            value = self.number(items["value"][1], f"'{name}'", lo, hi, lo_open)
            if value is None:
                return None
        else:
            dn = items["dist"][1]
            if not dist:
                self.err(dn, "E934", f"the parameter '{name}' is one number: give it a 'value', not a 'dist'")
                return None
            d = self.distribution(node, items, name, lo, hi, lo_open)
            if d is None:
                return None
        if cites is None or marker is None:
            return None
        p = Param(name, value, d, cites, marker, note, node.start_mark.line + 1)
        self.params.append(p)
        return p

    def distribution(self, node, items, name, lo, hi, lo_open) -> Dist | None:
        dn = items["dist"][1]
        kind = self.text(dn, f"the dist of '{name}'")
        if kind is None:
            return None
        if kind not in _DISTS:
            self.err(dn, "E934", f"unknown distribution '{kind}' for '{name}' (one of {', '.join(_DISTS)})"
                                 f"{did_you_mean(kind, _DISTS)}")
            return None
        allowed = set(_DISTS[kind]) | ({"sigma_log", "cv"} if kind == "lognormal" else set())
        ok = True
        for k in ("median", "sigma_log", "cv", "low", "high", "mean"):
            if k in items and k not in allowed:
                self.err(items[k][0], "E934", f"a {kind} distribution has no '{k}' (it takes {', '.join(sorted(allowed))})")
                ok = False
        for k in _DISTS[kind]:
            if k not in items:
                self.err(dn, "E934", f"a {kind} distribution needs '{k}' ('{name}')")
                ok = False
        if kind == "lognormal" and ("sigma_log" in items) == ("cv" in items):
            self.err(dn, "E934", f"a lognormal distribution needs one of 'sigma_log' and 'cv' ('{name}')")
            ok = False
        if not ok:
            return None
        v = {k: self.number(items[k][1], f"the {k} of '{name}'") for k in allowed if k in items}
        if any(x is None for x in v.values()):
            return None
        if kind == "lognormal":
            if v["median"] <= 0:
                self.err(items["median"][1], "E935", f"the median of the lognormal '{name}' must be above 0")
                return None
            s = v.get("sigma_log")
            if s is None:
                s = _sigma(v["cv"]) if v["cv"] >= 0 else -1.0
            if s < 0:
                self.err(items["sigma_log" if "sigma_log" in items else "cv"][1], "E935", f"the spread of '{name}' must not be negative")
                return None
            if s > MAX_SIGMA:
                self.err(items["sigma_log" if "sigma_log" in items else "cv"][1], "E935",
                         f"the spread of '{name}' is {_num(s)} on the log scale: it must be at most {_num(MAX_SIGMA)} "
                         f"(a factor of {_num(round(math.exp(1.96 * MAX_SIGMA)))} either side of the median for 95 %)")
                return None
            d = Dist("lognormal", v["median"], s)
        elif kind == "exponential":
            if v["mean"] <= 0:
                self.err(items["mean"][1], "E935", f"the mean of '{name}' must be above 0")
                return None
            d = Dist("exponential", v["mean"])
        else:
            if v["low"] > v["high"]:
                self.err(items["low"][1], "E934", f"the low end of '{name}' ({_num(v['low'])}) is above its high end ({_num(v['high'])})")
                return None
            if kind == "loguniform" and v["low"] <= 0:
                self.err(items["low"][1], "E935", f"the low end of the loguniform '{name}' must be above 0")
                return None
            d = Dist(kind, v["low"], v["high"])
        a, b = d.bounds()
        open_low = kind == "exponential" or (kind == "lognormal" and d.b > 0)  # (0, inf): 0 never drawn
        if a < lo or (lo_open and a <= lo and not open_low) or b > hi:
            self.err(dn, "E935", f"'{name}' can take values outside {_range(lo, hi, lo_open)}: {d.text()}")
            return None
        return d

    def source(self, node, items, name) -> tuple[tuple[str, str], ...] | None:
        if "source" not in items:
            self.err(node, "E933", f"the parameter '{name}' needs a 'source' (\"SOURCE-ID, LOCATOR\")")
            return None
        sn = items["source"][1]
        nodes = sn.value if isinstance(sn, Q) else [sn]
        if not nodes:
            self.err(sn, "E933", f"the source of '{name}' is empty")
            return None
        out = []
        for n in nodes:
            t = self.text(n, f"the source of '{name}'")
            if t is None:
                return None
            sid, _, loc = t.partition(",")
            sid, loc = sid.strip(), loc.strip()
            if not loc:
                self.err(n, "E933", f"the source of '{name}' needs a locator: \"{sid}, WHERE IN IT\"")
                return None
            self.cites.append((sid, n))
            out.append((sid, loc))
        return tuple(out)

    # -- sections

    def model(self, root: yaml.Node) -> PatientModel | None:
        top = self.mapping(root, "the model", {"model": True, "title": False, "sources": True, "labs": True,
                                                "injury": True, "background": True, "drug": False, "adherence": True})
        if top is None:
            return None
        name = self.text(top["model"][1], "'model'") if "model" in top else None
        if name is not None and not _ID.fullmatch(name):
            self.err(top["model"][1], "E931", f"the model's name '{name}' must be a name (letters, digits, '-', '_', '.')")
        title = (self.text(top["title"][1], "'title'") or "") if "title" in top else ""
        if "sources" in top:
            self.read_sources(top["sources"][1])
        labs = self.read_labs(top["labs"][1]) if "labs" in top else {}
        injury = self.read_injury(top["injury"][1]) if "injury" in top else None
        background = self.read_background(top["background"][1]) if "background" in top else None
        drug = self.read_drug(top["drug"][1]) if "drug" in top else None
        adherence = self.read_adherence(top["adherence"][1]) if "adherence" in top else None
        if injury is not None:
            self.check_limits(labs, injury)
        for sid, n in self.cites:
            if sid not in self.sources:
                self.err(n, "E936", f"'{sid}' is not a source declared under 'sources'{did_you_mean(sid, self.sources)}")
        if self.errors or None in (name, injury, background, adherence):
            return None
        return PatientModel(self.path, name, title, self.sources, labs, injury, background, drug, adherence,
                            tuple(self.params))

    def read_sources(self, node) -> None:
        items = self.items(node, "'sources'")
        if items is None:
            return
        if not items:
            self.err(node, "E933", "'sources' declares no source")
        for sid, (kn, vn) in items.items():
            if not _ID.fullmatch(sid):
                self.err(kn, "E931", f"the source id '{sid}' must be a name (letters, digits, '-', '_', '.')")
                continue
            f = self.mapping(vn, f"the source '{sid}'", {"title": True, "doi": False, "url": False, "note": False})
            if f is None:
                continue
            entry = {k: self.text(v, f"the {k} of the source '{sid}'") for k, (_, v) in f.items()}
            self.sources[sid] = entry

    def read_labs(self, node) -> dict:
        items = self.items(node, "'labs'")
        out: dict = {}
        if items is None:
            return out
        if not items:
            self.err(node, "E933", "'labs' declares no lab")
        for lab, (kn, vn) in items.items():
            if not _ID.fullmatch(lab):
                self.err(kn, "E931", f"the lab name '{lab}' must be a name")
                continue
            self.lab_names.append(lab)
            w = f"labs.{lab}"
            f = self.mapping(vn, f"the lab '{lab}'", {"unit": False, "uln": False, "decimals": True, "set_point": True,
                                                      "raised_set_point": False, "within_cv": True, "analytical_cv": False})
            if f is None:
                continue
            unit = self.text(f["unit"][1], f"the unit of {lab}") if "unit" in f else None
            uln = None
            if "uln" in f:
                u = self.number(f["uln"][1], f"the uln of {lab}", 0, 1e15, lo_open=True)
                uln = _exact(f["uln"][1].value, u) if u is not None else None
            dec = self.number(f["decimals"][1], f"the decimals of {lab}", 0, 6, integer=True) if "decimals" in f else None
            sp = self.param(f["set_point"][1], f"{w}.set_point", dist=True, lo=0, lo_open=True) if "set_point" in f else None
            raised = None
            if "raised_set_point" in f:
                r = self.mapping(f["raised_set_point"][1], f"{w}.raised_set_point",
                                 {"fraction": True, "median": True, "sigma_log": True})
                if r is not None and {"fraction", "median", "sigma_log"} <= set(r):
                    raised = (self.param(r["fraction"][1], f"{w}.raised_set_point.fraction", lo=0, hi=1),
                              self.param(r["median"][1], f"{w}.raised_set_point.median", lo=0, lo_open=True),
                              self.param(r["sigma_log"][1], f"{w}.raised_set_point.sigma_log", lo=0, hi=5))
            wcv = self.param(f["within_cv"][1], f"{w}.within_cv", lo=0, hi=2) if "within_cv" in f else None
            acv = self.param(f["analytical_cv"][1], f"{w}.analytical_cv", lo=0, hi=2) if "analytical_cv" in f else None
            if acv is not None and wcv is not None and acv.value > wcv.value:
                self.err(f["analytical_cv"][1], "E935", f"the analytical CV of {lab} ({_num(acv.value)}) is above its within-person CV ({_num(wcv.value)}), which includes it")
                acv = None
            if None in (dec, sp, wcv) or (raised is not None and None in raised):
                continue
            out[lab] = LabModel(lab, unit, uln, int(dec), sp, raised, wcv, acv, key=_lab_key(lab))
        return out

    def lab_ref(self, node, where) -> str | None:
        t = self.text(node, where)
        if t is not None and t not in self.lab_names:
            self.err(node, "E936", f"{where} '{t}' is not a lab declared under 'labs'{did_you_mean(t, self.lab_names)}")
            return None
        return t

    def read_injury(self, node) -> Injury | None:
        f = self.mapping(node, "'injury'", {"reference_lab": True, "shares": False, "bilirubin": False, "inr": False,
                                            "onset_excess": True, "doubling_days": True, "decay_half_life_days": True,
                                            "plateau_days": True, "chronic_level": True})
        if f is None:
            return None
        ref = self.lab_ref(f["reference_lab"][1], "the reference lab") if "reference_lab" in f else None
        self.ref_node = f["reference_lab"][1] if ref is not None else None
        shares = {}
        if "shares" in f:
            s = self.items(f["shares"][1], "'injury.shares'") or {}
            for lab, (kn, vn) in s.items():
                if lab not in self.lab_names:
                    self.err(kn, "E936", f"'{lab}' in injury.shares is not a lab declared under 'labs'{did_you_mean(lab, self.lab_names)}")
                    continue
                if lab == ref:
                    self.err(kn, "E935", f"'{lab}' is the reference lab: its share is 1 by definition")
                    continue
                shares[lab] = self.param(vn, f"injury.shares.{lab}", lo=0, hi=10)
        bl = bt = bp = bk = il = ik = None
        if "bilirubin" in f:
            b = self.mapping(f["bilirubin"][1], "'injury.bilirubin'", {"lab": True, "threshold": True, "probability": True, "peak": True})
            if b is not None:
                bl = self.lab_ref(b["lab"][1], "the bilirubin lab") if "lab" in b else None
                bt = self.param(b["threshold"][1], "injury.bilirubin.threshold", lo=0, lo_open=True) if "threshold" in b else None
                bp = self.param(b["probability"][1], "injury.bilirubin.probability", lo=0, hi=1) if "probability" in b else None
                bk = self.param(b["peak"][1], "injury.bilirubin.peak", dist=True, lo=0) if "peak" in b else None
                if None in (bl, bt, bp, bk):
                    return None
        if "inr" in f:
            i = self.mapping(f["inr"][1], "'injury.inr'", {"lab": True, "per_bilirubin": True})
            if i is not None:
                il = self.lab_ref(i["lab"][1], "the INR lab") if "lab" in i else None
                ik = self.param(i["per_bilirubin"][1], "injury.inr.per_bilirubin", lo=0) if "per_bilirubin" in i else None
                if bl is None and il is not None:
                    self.err(i["lab"][1], "E933", "an INR that follows the bilirubin needs 'injury.bilirubin'")
                if None in (il, ik):
                    return None
        ps = {}
        for k, kw in (("onset_excess", dict(lo=0, lo_open=True)), ("doubling_days", dict(dist=True, lo=0, lo_open=True)),
                      ("decay_half_life_days", dict(dist=True, lo=0, lo_open=True)), ("plateau_days", dict(dist=True, lo=0)),
                      ("chronic_level", dict(dist=True, lo=0))):
            ps[k] = self.param(f[k][1], f"injury.{k}", **kw) if k in f else None
        if ref is None or None in ps.values() or None in shares.values():
            return None
        return Injury(ref, shares, bl, bt, bp, bk, il, ik, **ps)

    def check_limits(self, labs: dict, injury: Injury) -> None:
        """The labs an injury works in multiples of need a ULN."""
        for lab in (injury.reference_lab, *injury.shares, injury.bili_lab):
            if lab in labs and labs[lab].uln is None:
                self.err(self.ref_node, "E933", f"the lab {lab} needs a 'uln': an injury raises it in multiples of its ULN")

    def read_background(self, node) -> Background | None:
        f = self.mapping(node, "'background'", {"rate_per_year": True, "tiers": True})
        if f is None:
            return None
        rate = self.param(f["rate_per_year"][1], "background.rate_per_year", lo=0, hi=100) if "rate_per_year" in f else None
        tiers = self.tiers(f["tiers"][1]) if "tiers" in f else None
        if rate is None or tiers is None:
            return None
        return Background(rate, tiers)

    def tiers(self, node) -> tuple[Tier, ...] | None:
        if not isinstance(node, Q) or not node.value:
            self.err(node, "E931", "'background.tiers' must be a list of {weight, peak}")
            return None
        out = []
        for i, t in enumerate(node.value):
            f = self.mapping(t, f"background.tiers[{i}]", {"weight": True, "peak": True})
            if f is None or not {"weight", "peak"} <= set(f):
                return None
            w = self.param(f["weight"][1], f"background.tiers[{i}].weight", lo=0, hi=1)
            p = self.param(f["peak"][1], f"background.tiers[{i}].peak", dist=True, lo=3, lo_open=True)
            if w is None or p is None:
                return None
            out.append(Tier(w, p))
        total = sum(t.weight.value for t in out)
        if abs(total - 1) > 0.01:
            self.err(node, "E935", f"the weights of background.tiers add up to {_num(total)}, not 1")
            return None
        return tuple(out)

    def read_drug(self, node) -> DrugModel | None:
        f = self.mapping(node, "'drug'", {"name": True, "episodes": True, "latency_days": True, "chronic": True, "dose_effect": True})
        if f is None:
            return None
        name = self.text(f["name"][1], "the drug's name") if "name" in f else None
        grades = []
        if "episodes" in f:
            en = f["episodes"][1]
            if not isinstance(en, Q):
                self.err(en, "E931", "'drug.episodes' must be a list of {grade, probability, peak, adapt}")
            else:
                for i, g in enumerate(en.value):
                    gf = self.mapping(g, f"drug.episodes[{i}]", {"grade": True, "probability": True, "peak": True,
                                                                  "adapt": True, "latency_days": False})
                    if gf is None or not {"grade", "probability", "peak", "adapt"} <= set(gf):
                        continue
                    gname = self.text(gf["grade"][1], f"the grade of drug.episodes[{i}]")
                    w = f"drug.episodes[{i}]" if gname is None else f"drug.episodes.{gname}"
                    pr = self.param(gf["probability"][1], f"{w}.probability", lo=0, hi=1)
                    pk = self.param(gf["peak"][1], f"{w}.peak", dist=True, lo=0, lo_open=True)
                    ad = self.param(gf["adapt"][1], f"{w}.adapt", lo=0, hi=1)
                    la = self.param(gf["latency_days"][1], f"{w}.latency_days", dist=True, lo=0) if "latency_days" in gf else None
                    if None not in (gname, pr, pk, ad) and (la is not None or "latency_days" not in gf):
                        grades.append(Grade(gname, pr, pk, ad, la))
                total = sum(g.probability.value for g in grades)
                if total > 1 + 1e-9:
                    self.err(en, "E935", f"the probabilities of drug.episodes add up to {_num(total)}, above 1")
        lat = self.param(f["latency_days"][1], "drug.latency_days", dist=True, lo=0) if "latency_days" in f else None
        chronic = self.param(f["chronic"][1], "drug.chronic", lo=0, hi=1) if "chronic" in f else None
        dose = self.param(f["dose_effect"][1], "drug.dose_effect", lo=0, hi=10) if "dose_effect" in f else None
        if None in (name, lat, chronic, dose):
            return None
        return DrugModel(name, tuple(grades), lat, chronic, dose)

    def read_adherence(self, node) -> Adherence | None:
        f = self.mapping(node, "'adherence'", {"on_time": True, "never": True, "lateness": True})
        if f is None:
            return None
        on = self.param(f["on_time"][1], "adherence.on_time", lo=0, hi=1) if "on_time" in f else None
        never = self.param(f["never"][1], "adherence.never", lo=0, hi=1) if "never" in f else None
        late = self.param(f["lateness"][1], "adherence.lateness", dist=True, lo=0) if "lateness" in f else None
        if None in (on, never, late):
            return None
        if on.value + never.value > 1 + 1e-9:
            self.err(f["never"][1], "E935", f"adherence.on_time + adherence.never is {_num(on.value + never.value)}, above 1")
            return None
        return Adherence(on, never, late)


def _e_hint(v: Any) -> str:
    """What to write instead of a number in e-notation that YAML 1.1 reads as text (`2e-1`,
    `8.5e1`: PyYAML wants a point in the mantissa and a sign in the exponent)."""
    m = re.fullmatch(r"([-+]?)(\d+)(?:\.(\d*))?[eE]([-+]?)(\d+)", v.strip()) if isinstance(v, str) else None
    if m is None:
        return ""
    sign, whole, frac, esign, exp = m.groups()
    return f" (YAML reads '{v.strip()}' as text: write it as a decimal, or as {sign}{whole}.{frac or '0'}e{esign or '+'}{exp})"


def _range(lo: float, hi: float, lo_open: bool) -> str:
    if hi == math.inf:
        return f"{'above' if lo_open else 'at least'} {_num(lo)}"
    if lo == -math.inf:
        return f"at most {_num(hi)}"
    return f"{'above' if lo_open else 'from'} {_num(lo)} {'and at most' if lo_open else 'to'} {_num(hi)}"


def _exact(text: str, value: float | int) -> Any:
    """The exact number a YAML scalar shows: an int, or a Fraction of the decimal written
    (`value`, as YAML read it, when the text is not a plain decimal: 0x10, 1_000, 1:30)."""
    from fractions import Fraction

    if isinstance(value, int):
        return value
    try:
        f = Fraction(text.strip().replace("_", ""))
    except ValueError:
        f = Fraction(value)
    return int(f) if f.denominator == 1 else f


def _lab_key(name: str) -> int:
    """A lab's key in random draws: from its name alone, so every model draws a lab's noise alike."""
    import zlib

    return zlib.crc32(name.encode("utf-8"))
