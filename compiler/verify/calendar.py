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
so trying every start date of one cycle is exhaustive; and a start day from 1 to 28 is never
clamped, so it behaves like day 1: only days 1, 29, 30 and 31 of each month need trying.
"""

from __future__ import annotations

import datetime
from functools import lru_cache

_CYCLE_MONTHS = 4800  # 400 Gregorian years
_BASE_YEAR = 2000


def _is_leap(y: int) -> bool:
    return y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)


def _month_len(i: int) -> int:
    """Days in the month `i` months after January of _BASE_YEAR."""
    y, m = _BASE_YEAR + i // 12, i % 12 + 1
    if m == 2:
        return 29 if _is_leap(y) else 28
    return 30 if m in (4, 6, 9, 11) else 31


@lru_cache(maxsize=None)
def _tables(horizon: int) -> tuple[list[int], list[int]]:
    lens = [_month_len(i) for i in range(_CYCLE_MONTHS + horizon + 1)]
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
    lens, cum = _tables(max(months))
    out: dict[tuple[int, ...], datetime.date] = {}
    for i in range(_CYCLE_MONTHS):
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
