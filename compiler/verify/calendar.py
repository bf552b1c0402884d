"""Calendar months, as the verifier needs them: how many days `N months` can be.

`since(A) < 6 months` means `today < last(A) + 6 months` (calendar months, clamped to the
end of a shorter month: 2025-01-31 + 1 month = 2025-02-28). For a given start date L that is
`days < len_L(6)`, where len_L(6) is the number of days from L to L + 6 months: 181 to 184,
depending on L. When several month thresholds are compared with one action, their lengths
come from the same L, so they are not independent (len_L(1) = 28 goes with len_L(2) = 59 or
60, never with 62).

`month_spans((m1, m2, ...))` gives every tuple (len_L(m1), len_L(m2), ...) that some real
date L produces, with one such L for each: the verifier constrains the lengths to exactly
these tuples, which is exact. The Gregorian calendar repeats every 400 years (4800 months),
so trying every start date of one cycle is exhaustive (`month_spans_full`); a start day from
1 to 28 is never clamped, so it behaves like day 1: only days 1, 29, 30 and 31 of each month
need trying; and the start years can be narrowed to those that show every leap-year pattern
the spans can meet (`_start_years`; tests/test_verify.py checks both give the same tuples).
"""

from __future__ import annotations

import datetime
from functools import lru_cache

_CYCLE_MONTHS = 4800  # 400 Gregorian years
_BASE_YEAR = 2000


def _is_leap(y: int) -> bool:
    return y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)


@lru_cache(maxsize=None)
def _tables(horizon: int) -> tuple[list[int], list[int]]:
    """Month lengths from January of _BASE_YEAR over the cycle and `horizon` months more, and
    their running sums (days from the cycle's start to the start of each month)."""
    normal = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
    lens: list[int] = []
    for k in range((_CYCLE_MONTHS + horizon) // 12 + 1):
        y = _BASE_YEAR + k
        lens.extend(normal)
        if _is_leap(y):
            lens[-11] = 29
    cum = [0]
    for n in lens:
        cum.append(cum[-1] + n)
    return lens, cum


@lru_cache(maxsize=None)
def month_spans(months: tuple[int, ...]) -> dict[tuple[int, ...], datetime.date]:
    """{(days from L to L + m months, for m in `months`): one start date L that gives it}."""
    if not months:
        return {(): datetime.date(_BASE_YEAR, 1, 1)}
    if min(months) < 0:
        raise ValueError("month counts are whole numbers >= 0")
    return _spans(months, _start_years(max(months)))


def month_spans_full(months: tuple[int, ...]) -> dict[tuple[int, ...], datetime.date]:
    """The same, from every start date of the 400-year cycle (the reference, for tests)."""
    return _spans(months, range(_BASE_YEAR, _BASE_YEAR + 400))


def _start_years(max_months: int):
    """Start years whose spans show every leap-year pattern a span of `max_months` can meet.

    A span covers at most `years` calendar years. Away from the century years that are not
    leap years (2100, 2200, 2300), leap years come every 4 years, so 2001..2004 show every
    phase; 2100 - years - 1 .. 2100 put 2100 at every place in the span. Longer spans, which
    can meet two such centuries, use the whole cycle."""
    years = max_months // 12 + 2
    if years > 90:
        return range(_BASE_YEAR, _BASE_YEAR + 400)
    return [*range(2001, 2005), *range(2100 - years - 1, 2101)]


def _spans(months: tuple[int, ...], start_years) -> dict[tuple[int, ...], datetime.date]:
    lens, cum = _tables(max(months))
    out: dict[tuple[int, ...], datetime.date] = {}
    for y in start_years:
        for i in range((y - _BASE_YEAR) * 12, (y - _BASE_YEAR + 1) * 12):
            for d in (1, 29, 30, 31):
                if d > lens[i]:
                    continue
                key = tuple(cum[i + m] - cum[i] + min(d, lens[i + m]) - d for m in months)
                if key not in out:
                    out[key] = datetime.date(_BASE_YEAR + i // 12, i % 12 + 1, d)
    return out


def add_months(day: datetime.date, months: int) -> datetime.date:
    """`day` + `months` calendar months, clamped like dateutil's relativedelta."""
    t = day.month - 1 + months
    y, m = day.year + t // 12, t % 12 + 1
    lens = 29 if (m == 2 and _is_leap(y)) else (28 if m == 2 else (30 if m in (4, 6, 9, 11) else 31))
    return datetime.date(y, m, min(day.day, lens))


def span_days(day: datetime.date, months: int) -> int:
    """Days from `day` to `day` + `months` calendar months."""
    return (add_months(day, months) - day).days
