"""The synthetic patient: lab results from a cited patient model (cohort/model.py), on the days
a protocol asks for them, changed by what the protocol does to the drug.

    pt = model.patient(seed=S, index=i, start=date, days=D)
    pt.drug(day, "on", 1.0)                 # the drug's status from `day` on (held, stopped, dose)
    pt.measure(day, ["ALT", "AST"])         # -> [LabResult, ...], exact at the lab's precision
    pt.attends(opens, late)                 # the day an ordered test is done, or None
    pt.episodes                             # the truth: injury episodes (Episode)
    pt.true_multiple("ALT", day)            # noise-free multiple of the ULN

The model, in multiples of the ULN: a lab's true value is the patient's set point plus the
excess of the injury episodes under way; an observation is the true value times a lognormal
within-person biological variation (one draw per lab and day) and a lognormal analytical one
(one per lab, day and repeat). An episode's excess rises exponentially (doubling time) from a
small onset excess to its peak, stays there while the drug is taken (at a lower dose, at
peak x fraction ** dose_effect), and falls with a half-life when the drug is withheld; an
adapting episode resolves by itself once its plateau has lasted; a chronic one falls only to a
level above the ULN. Background episodes (Poisson, by year) rise, plateau and fall whatever
the drug. Details and sources: docs/cohort.md, "The patient model".

Common random numbers: every draw is a hash of (seed, patient index, purpose, and a lab key,
a date, a repeat or an order window), never a position in a shared stream. A patient is the
same in every protocol, a lab's noise on a date is the same whoever asks for it and in
whatever order, and nothing depends on how a cohort is split into batches. Latent values are
drawn once per patient; values are computed only on the days measured (closed forms, no loop
over days).
"""

from __future__ import annotations

import bisect
import datetime
import math
from dataclasses import dataclass
from fractions import Fraction
from statistics import NormalDist
from typing import Any, Iterable

from rxwatch.inputs.model import LabResult, Loc

__all__ = ["SyntheticPatient", "Episode", "uniform"]

_M = (1 << 64) - 1
_G1, _G2, _G3, _G4 = 0x9E3779B97F4A7C15, 0xD1B54A32D192ED03, 0x8CB92BA72F3D8DD7, 0xF1357AEA2E62A9C5
_LN2 = math.log(2)
_z = NormalDist().inv_cdf

# purposes of draws (never renumber: they are part of every patient's identity)
_SET, _BIO, _ANALYTICAL, _BACKGROUND, _DRUG, _ATTEND = 1, 2, 3, 4, 5, 6
_YEAR = 365.25


def _mix(h: int) -> int:
    """splitmix64's finaliser: a 64-bit hash of a 64-bit integer."""
    h = ((h ^ (h >> 30)) * 0xBF58476D1CE4E5B9) & _M
    h = ((h ^ (h >> 27)) * 0x94D049BB133111EB) & _M
    return h ^ (h >> 31)


def _base(seed: int, index: int) -> int:
    return _mix((_mix((seed * _G1 + 0x5851F42D4C957F2D) & _M) + (index + 1) * _G2) & _M)


def uniform(base: int, purpose: int, a: int = 0, b: int = 0, c: int = 0) -> float:
    """The uniform draw in (0, 1) keyed by (patient, purpose, a, b, c): two rounds of
    splitmix64's finaliser over Weyl sums of the keys (splitmix64 is itself one round over
    a Weyl sequence). The first round depends on (patient, purpose, a) only: `_stage`."""
    return _draw(_stage(base, purpose, a), b, c)


def _stage(base: int, purpose: int, a: int) -> int:
    return _mix((base + purpose * _G1 + (a & _M) * _G2) & _M)


def _draw(h: int, b: int, c: int) -> float:
    h = _mix((h + (b & _M) * _G3 + (c & _M) * _G4 + 0x632BE59BD9B4E019) & _M)
    return ((h >> 11) + 0.5) / 9007199254740992.0


def _poisson(mean: float, u: float) -> int:
    """The Poisson(mean) count at uniform u (inversion)."""
    k, p = 0, math.exp(-mean)
    cdf = p
    while u > cdf and k < 1000:
        k += 1
        p *= mean / k
        cdf += p
    return k


def _sample(param, u: float) -> float:
    return param.value if param.value is not None else param.dist.sample(u, _z)


# ---------------------------------------------------------------------------- episodes

@dataclass(frozen=True)
class Episode:
    """One injury episode, the truth the metrics compare a protocol's actions with. Multiples
    are of the reference lab's ULN (ALT), noise-free, the patient's set point plus this
    episode's excess; days are dates. `onset` is the day the excess starts to rise; `day_3x`
    and `day_5x` the first day above 3 and 5 x ULN (None: not within the patient's days, or
    the set point is above it already);
    `peak` and `peak_day` the highest value within the days; `normal_day` the first day after
    the peak back at or below the ULN (None: not within the days); `self_resolving` that it
    resolves while the drug continues (a background episode, or an adapting drug episode)."""

    kind: str  # "drug" | "background"
    grade: str  # the drug grade (mild, moderate, severe, ...) or the background tier ("3-5x", ...)
    onset: datetime.date
    day_3x: datetime.date | None
    day_5x: datetime.date | None
    peak: float
    peak_day: datetime.date
    normal_day: datetime.date | None
    self_resolving: bool
    chronic: bool


class _Kernel:
    """One episode's latent values and its excess curve: a list of pieces (t0, e0, floor, rate),
    each meaning e(t) = floor + (e0 - floor) * exp(rate * (t - t0)) from t0 to the next t0."""

    __slots__ = ("kind", "grade", "start", "excess", "td", "th", "plateau", "adapt", "chronic",
                 "chronic_excess", "bili", "e0", "t0s", "pieces")

    def __init__(self, kind, grade, start, excess, td, th, plateau, adapt, chronic, chronic_excess, bili, e0):
        self.kind, self.grade, self.start, self.excess = kind, grade, start, excess
        self.td, self.th, self.plateau, self.adapt = td, th, plateau, adapt
        self.chronic, self.chronic_excess, self.bili, self.e0 = chronic, chronic_excess, bili, e0
        self.t0s: list = []
        self.pieces: list = []

    def at(self, t: float) -> float:
        i = bisect.bisect_right(self.t0s, t) - 1
        if i < 0:
            return 0.0
        t0, e0, floor, rate = self.pieces[i]
        return e0 if rate == 0 else floor + (e0 - floor) * math.exp(rate * (t - t0))

    def _put(self, t0, e0, floor, rate) -> None:
        if self.t0s and self.t0s[-1] == t0:
            self.pieces[-1] = (t0, e0, floor, rate)
        else:
            self.t0s.append(t0)
            self.pieces.append((t0, e0, floor, rate))

    def background(self) -> None:
        """Rise from the onset excess to the peak, plateau, fall: whatever the drug."""
        g, d = _LN2 / self.td, -_LN2 / self.th
        rise = max(self.td * math.log2(self.excess / self.e0), 0.0)
        self._put(self.start, min(self.e0, self.excess), 0.0, g)
        self._put(self.start + rise, self.excess, self.excess, 0.0)
        self._put(self.start + rise + self.plateau, self.excess, 0.0, d)

    def drug(self, history: list, end: float, dose_effect: float) -> None:
        """The curve under the drug `history` [(t, on, fraction), ...] (off before the first):
        latent until `start` days on the drug, then rising toward peak x fraction ** dose_effect
        while on the drug, falling (half-life) while off it, to the chronic level once peaked
        if chronic; an adapting episode falls for good `plateau` days after its first peak."""
        self.t0s, self.pieces = [], []
        if not history:
            return
        g, d = _LN2 / self.td, -_LN2 / self.th
        exposure, e, phase = 0.0, 0.0, 0  # phase 0 latent, 1 active
        resolve_at = None  # when an adapting episode starts to fall for good
        peaked = False
        n = len(history)
        for i in range(n):
            cur, on, frac = history[i]
            seg_end = history[i + 1][0] if i + 1 < n else end
            target = self.excess * frac ** dose_effect if on and frac > 0 else 0.0
            on = target > 0
            while cur < seg_end:
                if resolve_at is not None and cur >= resolve_at:
                    self._put(resolve_at, e, 0.0, d)
                    return
                nxt = seg_end if resolve_at is None else min(seg_end, resolve_at)
                if phase == 0:
                    if not on:
                        break
                    need = self.start - exposure
                    if cur + need >= seg_end:
                        exposure += seg_end - cur
                        break
                    cur += need
                    phase, e = 1, min(self.e0, target)
                    continue
                if on and e < target * (1 - 1e-12):
                    if e < self.e0:  # a new rise (a rechallenge) starts from the onset excess
                        e = min(self.e0, target)
                    tau = self.td * math.log2(target / e)
                    self._put(cur, e, 0.0, g)
                    if cur + tau < nxt:
                        cur, e = cur + tau, target
                        if not peaked:
                            peaked = True
                            if self.adapt:
                                resolve_at = cur + self.plateau
                        self._put(cur, e, e, 0.0)
                        continue
                    e *= math.exp(g * (nxt - cur))
                elif on:  # at or above the target (a lower dose): toward it
                    if not peaked:
                        peaked = True
                        if self.adapt:
                            resolve_at = cur + self.plateau
                            nxt = min(nxt, resolve_at)
                    if e > target * (1 + 1e-12):
                        self._put(cur, e, target, d)
                        e = target + (e - target) * math.exp(d * (nxt - cur))
                    else:
                        self._put(cur, e, e, 0.0)
                else:  # off the drug
                    floor = min(self.chronic_excess, e) if (self.chronic and peaked) else 0.0
                    if e > floor:
                        self._put(cur, e, floor, d)
                        e = floor + (e - floor) * math.exp(d * (nxt - cur))
                    else:
                        self._put(cur, e, e, 0.0)
                cur = nxt

    def first_above(self, level: float, lo: int, hi: int) -> int | None:
        """The first whole day in [lo, hi) with excess above `level`."""
        for j, (t0, e0, floor, rate) in enumerate(self.pieces):
            t1 = self.t0s[j + 1] if j + 1 < len(self.t0s) else math.inf
            a, b = max(lo, math.ceil(t0)), (hi if t1 == math.inf else min(hi, math.ceil(t1)))  # its whole days
            if a >= b:
                continue
            if self.at(a) > level:
                return a
            if rate == 0 or (rate > 0) != (e0 > floor):  # constant or falling: not above later
                continue
            # rising: floor + (e0 - floor) exp(rate (t - t0)) = level
            x = (level - floor) / (e0 - floor)
            if x <= 0:
                continue
            t = t0 + math.log(x) / rate
            day = max(a, math.floor(t))
            while day < b and self.at(day) <= level:
                day += 1
            if day < b:
                return day
        return None

    def highest(self, lo: int, hi: int) -> tuple[float, int]:
        """(excess, day) at the highest whole day in [lo, hi): the curve is monotone on each piece."""
        best, when = self.at(lo), lo
        for j, t0 in enumerate(self.t0s):
            t1 = self.t0s[j + 1] if j + 1 < len(self.t0s) else hi
            for day in (math.ceil(t0), math.ceil(t1) - 1):
                if lo <= day < hi:
                    v = self.at(day)
                    if v > best:
                        best, when = v, day
        return best, when


# ---------------------------------------------------------------------------- the patient

_PLANS: dict = {}


def _plan(model) -> dict:
    """Per lab, what `measure` needs, worked out once per model: (lab, key, sigma_bio,
    sigma_analytical or None, uln, 10 ** decimals, unit, role, factor); role 0: the reference
    lab, 1: a share of its excess (factor), 2: the bilirubin, 3: the INR (factor per
    bilirubin excess), 4: no injury; and the ULN as a float (1.0 without one)."""
    plan = _PLANS.get(id(model))
    if plan is not None and plan[0] is model:
        return plan[1]
    inj = model.injury
    out = {}
    for lab in model.labs.values():
        if lab.name == inj.reference_lab:
            role, factor = 0, 1.0
        elif lab.name in inj.shares:
            role, factor = 1, inj.shares[lab.name].value
        elif lab.name == inj.bili_lab:
            role, factor = 2, 1.0
        elif lab.name == inj.inr_lab:
            role, factor = 3, inj.inr_per_bilirubin.value
        else:
            role, factor = 4, 0.0
        out[lab.name] = (lab, lab.key, lab.sigma_bio, lab.sigma_analytical if lab.analytical_cv is not None else None,
                         lab.uln, 10 ** lab.decimals, lab.unit, role, factor,
                         float(lab.uln) if lab.uln is not None else 1.0)
    if len(_PLANS) > 64:
        _PLANS.clear()
    _PLANS[id(model)] = (model, out)
    return out


def _offset(start: datetime.date, day: Any) -> int:
    if isinstance(day, datetime.date):
        return (day - start).days
    return int(day)


class SyntheticPatient:
    """One synthetic patient of a model (see the module's docstring)."""

    def __init__(self, model, seed: int, index: int, start: Any, days: int) -> None:
        if isinstance(start, str):
            start = datetime.date.fromisoformat(start)
        if isinstance(start, datetime.datetime):
            start = start.date()
        self.model, self.seed, self.index, self.start, self.days = model, int(seed), int(index), start, int(days)
        self._ord0 = start.toordinal()
        self._h = h = _base(self.seed, self.index)
        self._loc = Loc(f"<cohort {model.name} seed {self.seed} patient {self.index}>", 0)
        inj = model.injury
        self._plan = _plan(model)
        self._stages: dict = {}
        self._attended: dict = {}  # (opens, late, ordered) -> the answer of attends
        # set points, multiples of the ULN (the value itself for a lab without ULN)
        self.set_points: dict[str, float] = {}
        raised = uniform(h, _SET, 0, 1)
        for lab in model.labs.values():
            u = uniform(h, _SET, lab.key, 0)
            sp = _sample(lab.set_point, u)
            if lab.raised is not None:
                frac, med, sig = lab.raised
                if raised < frac.value:  # one draw for every lab: the subgroups are nested
                    sp = med.value * math.exp(sig.value * _z(u))
            self.set_points[lab.name] = sp
        ref = self.set_points[inj.reference_lab]
        e0 = inj.onset_excess.value
        self._kernels: list[_Kernel] = []
        # background episodes, drawn by year (a longer patient has the same first years)
        bg = model.background
        rate = bg.rate_per_year.value
        years = math.ceil(self.days / _YEAR) if self.days > 0 else 0
        for y in range(years):
            count = _poisson(rate, uniform(h, _BACKGROUND, y, 0))
            for j in range(count):
                start_t = (y + uniform(h, _BACKGROUND, y, 1, j)) * _YEAR
                if start_t >= self.days:
                    continue
                u = uniform(h, _BACKGROUND, y, 2, j)
                acc, tier = 0.0, bg.tiers[-1]
                for t in bg.tiers:
                    acc += t.weight.value
                    if u < acc:
                        tier = t
                        break
                peak = _sample(tier.peak, uniform(h, _BACKGROUND, y, 3, j))
                lo, hi = tier.peak.dist.bounds() if tier.peak.dist else (tier.peak.value, tier.peak.value)
                kern = _Kernel("background", f"{math.floor(lo):g}-{hi:g}x" if hi < math.inf else f">{math.floor(lo):g}x", start_t,
                               max(peak - ref, e0), _sample(inj.doubling_days, uniform(h, _BACKGROUND, y, 4, j)),
                               _sample(inj.decay_half_life_days, uniform(h, _BACKGROUND, y, 5, j)),
                               _sample(inj.plateau_days, uniform(h, _BACKGROUND, y, 6, j)), True, False, 0.0,
                               self._bili(peak, h, _BACKGROUND, y * 64 + j), e0)
                kern.background()
                self._kernels.append(kern)
        # the drug episode: at most one per patient and course
        self._drug_kernel: _Kernel | None = None
        drug = model.drug
        if drug is not None and drug.grades:
            u = uniform(h, _DRUG, 0)
            acc = 0.0
            for g in drug.grades:
                acc += g.probability.value
                if u < acc:
                    peak = _sample(g.peak, uniform(h, _DRUG, 2))
                    adapt = uniform(h, _DRUG, 5) < g.adapt.value
                    chronic = not adapt and uniform(h, _DRUG, 7) < drug.chronic.value
                    level = _sample(inj.chronic_level, uniform(h, _DRUG, 8))
                    self._drug_kernel = _Kernel(
                        "drug", g.grade, _sample(g.latency_days or drug.latency_days, uniform(h, _DRUG, 1)), max(peak - ref, e0),
                        _sample(inj.doubling_days, uniform(h, _DRUG, 3)), _sample(inj.decay_half_life_days, uniform(h, _DRUG, 4)),
                        _sample(inj.plateau_days, uniform(h, _DRUG, 6)), adapt, chronic, max(level - ref, 0.0),
                        self._bili(peak, h, _DRUG, 0), e0)
                    self._kernels.append(self._drug_kernel)
                    break
        self._history: list[tuple[float, bool, float]] = []
        self._dose_effect = drug.dose_effect.value if drug is not None else 1.0
        self._stale = False

    def _bili(self, peak: float, h: int, purpose: int, k: int) -> float:
        """The bilirubin excess (x ULN) at the episode's peak: only above the threshold peak."""
        inj = self.model.injury
        if inj.bili_lab is None or peak <= inj.bili_threshold.value:
            return 0.0
        if uniform(h, purpose, -9, k) >= inj.bili_probability.value:  # keys apart from the episode's own
            return 0.0
        return _sample(inj.bili_peak, uniform(h, purpose, -10, k))

    # -- the protocol's side

    def drug(self, day: Any, status: str, fraction: float = 1.0) -> None:
        """The drug's status from `day` on: "on" (taken at `fraction` of the full dose), or
        anything else ("held", "stopped", ...): not taken. An injury falls after withdrawal."""
        t = _offset(self.start, day)
        on = status == "on"
        frac = float(fraction) if on else 0.0
        hist = self._history
        i = bisect.bisect_right([x[0] for x in hist], t)
        if i and hist[i - 1][0] == t:
            hist[i - 1] = (t, on, frac)
        else:
            hist.insert(i, (t, on, frac))
        self._stale = True

    def _curves(self) -> None:
        if self._stale:
            k = self._drug_kernel
            if k is not None:
                k.drug(self._history, math.inf, self._dose_effect)
            self._stale = False

    def _excess(self, t: float) -> tuple[float, float]:
        """(reference-lab excess, bilirubin excess) at day offset t, in multiples of the ULN."""
        if self._stale:
            self._curves()
        e = b = 0.0
        for k in self._kernels:
            v = k.at(t)
            if v:
                e += v
                if k.bili:
                    b += k.bili * v / k.excess
        return e, b

    def _true(self, name: str, e: float, b: float) -> float:
        role, factor = self._plan[name][7:9]
        sp = self.set_points[name]
        if role == 4:
            return sp
        if role <= 1:
            return sp + factor * e
        return sp + factor * b

    def true_multiple(self, lab: str, day: Any) -> float:
        """The noise-free value of `lab` on `day` in multiples of its ULN (the value itself for
        a lab without ULN, INR say)."""
        if lab not in self._plan:
            raise KeyError(f"the model {self.model.name} has no lab {lab}")
        e, b = self._excess(_offset(self.start, day))
        return self._true(lab, e, b)

    def measure(self, day: Any, labs: Iterable[str], draw: int = 0) -> list[LabResult]:
        """Results of `labs` on `day` (those the model has; others are left out), each exact at
        its lab's precision (`decimals`), with the model's unit and ULN. `draw` numbers a repeat
        on the same day: it has the same biological variation and a new analytical one."""
        t = _offset(self.start, day)
        date = day if isinstance(day, datetime.date) else self.start + datetime.timedelta(days=t)
        e, b = self._excess(t)
        h, ordinal = self._h, self._ord0 + t
        out = []
        plan, sets, loc, stages = self._plan, self.set_points, self._loc, self._stages
        for name in labs:
            p = plan.get(name)
            if p is None:
                continue
            _, key, sb, sa, uln, scale, unit, role, factor, ulnf = p
            x = sets[name] if role == 4 else sets[name] + factor * (e if role <= 1 else b)
            st = stages.get(name)
            if st is None:  # the first round of this lab's draws, once per patient
                st = stages[name] = (_stage(h, _BIO, key), _stage(h, _ANALYTICAL, key))
            eps = sb * _z(_draw(st[0], ordinal, 0))
            if sa is not None:
                eps += sa * _z(_draw(st[1], ordinal, draw))
            x *= math.exp(eps) * ulnf
            n = max(1, round(x * scale))
            if scale == 1:
                value = n
            else:
                value = Fraction(n, scale)
                if value.denominator == 1:
                    value = value.numerator
            out.append(LabResult(date, name, value, uln, loc, unit))
        return out

    def attends(self, opens: Any, late: Any, ordered: Any = None) -> datetime.date | None:
        """When this patient has a test done that was ordered for the window [opens, late]
        (dates): on time with probability `adherence.on_time` (a day of the window, uniformly),
        never with probability `adherence.never`, else late, by `adherence.lateness` x the
        interval (from `ordered`, the day of the order, to `late`; without it, the window's
        length) after `late`, at least one day. The same window gives the same answer."""
        memo = (opens, late, ordered)
        known = self._attended.get(memo, self)
        if known is not self:
            return known
        when = self._attends(opens, late, ordered)
        self._attended[memo] = when
        return when

    def _attends(self, opens: Any, late: Any, ordered: Any) -> datetime.date | None:
        o, l = _offset(self.start, opens), _offset(self.start, late)
        l = max(l, o)
        adh = self.model.adherence
        h = self._h
        key_o, key_l = self._ord0 + o, self._ord0 + l
        u = uniform(h, _ATTEND, key_o, key_l, 0)
        if u < adh.on_time.value:
            day = o + min(int(uniform(h, _ATTEND, key_o, key_l, 1) * (l - o + 1)), max(l - o, 0))
        elif u < adh.on_time.value + adh.never.value:
            return None
        else:
            interval = (l - _offset(self.start, ordered)) if ordered is not None else (l - o + 1)
            delay = _sample(adh.lateness, uniform(h, _ATTEND, key_o, key_l, 2)) * max(interval, 1)
            if not delay < (datetime.date.max - self.start).days - l:  # later than any date: never
                return None
            day = l + max(1, math.ceil(delay))
        return self.start + datetime.timedelta(days=day)

    # -- the truth

    @property
    def episodes(self) -> list[Episode]:
        """The injury episodes that have started within the patient's days, by onset, under the
        drug history given so far (a later change of the drug changes a drug episode)."""
        self._curves()
        ref = self.set_points[self.model.injury.reference_lab]
        out = []
        days = self.days
        for k in self._kernels:
            if not k.t0s or k.t0s[0] >= days:
                continue
            lo = max(0, math.floor(k.t0s[0]))
            # a crossing is from at or below the level: a set point above it crosses nothing
            d3 = k.first_above(3 - ref, lo, days) if ref <= 3 else None
            d5 = k.first_above(5 - ref, lo, days) if ref <= 5 else None
            top, top_day = k.highest(lo, days)
            normal = None
            if ref + top > 1:
                # first day after the peak at or below the ULN: the curve falls after its peak
                # (pieces are monotone), so look for the first piece end at or below it
                normal = self._first_normal(k, top_day, days, 1 - ref)
            self_resolving = k.kind == "background" or k.adapt
            out.append(Episode(k.kind, k.grade, self._date(lo), self._date(d3), self._date(d5), ref + top,
                               self._date(top_day), self._date(normal), self_resolving, k.chronic))
        out.sort(key=lambda ep: ep.onset)
        return out

    @staticmethod
    def _first_normal(k: _Kernel, lo: int, hi: int, level: float) -> int | None:
        for j, (t0, e0, floor, rate) in enumerate(k.pieces):
            t1 = k.t0s[j + 1] if j + 1 < len(k.t0s) else math.inf
            a, b = max(lo, math.ceil(t0)), (hi if t1 == math.inf else min(hi, math.ceil(t1)))
            if a >= b:
                continue
            if k.at(a) <= level:
                return a
            if rate < 0 and e0 > floor and floor < level:  # falling below the level within the piece
                t = t0 + math.log((level - floor) / (e0 - floor)) / rate
                day = max(a, math.floor(t))
                while day < b and k.at(day) > level:
                    day += 1
                if day < b:
                    return day
        return None

    def _date(self, t: int | None) -> datetime.date | None:
        return None if t is None else self.start + datetime.timedelta(days=t)
