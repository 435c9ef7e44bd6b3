"""Reporting periods in whole months: presets ("last 3 months"), ranges and the period before.

A period is a pair of month keys (YYYY-MM, inclusive). Presets are resolved against the months a
data set actually covers, so "latest month" means the newest month with data, not the calendar.

    >>> resolve_preset("last_3", "2025-12", "2026-11")
    Period(first_month='2026-09', last_month='2026-11')
    >>> previous_period(Period("2026-09", "2026-11"))
    Period(first_month='2026-06', last_month='2026-08')
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass

from .errors import InputError

__all__ = [
    "Period",
    "PRESETS",
    "month_range",
    "shift_month",
    "resolve_preset",
    "previous_period",
    "clamp_period",
]

_MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")

# preset key -> (label, number of months; 0 = everything, -1 = custom range)
PRESETS: dict[str, tuple[str, int]] = {
    "latest": ("Latest month", 1),
    "last_3": ("Last 3 months", 3),
    "last_6": ("Last 6 months", 6),
    "last_12": ("Last 12 months", 12),
    "all": ("All time", 0),
    "custom": ("Custom range", -1),
}


def _check(month: str) -> str:
    if not isinstance(month, str) or not _MONTH.match(month):
        raise InputError(f"not a month (YYYY-MM): {month!r}")
    return month


def shift_month(month: str, delta: int) -> str:
    """'2026-01' shifted by -2 -> '2025-11'."""
    year, mon = map(int, _check(month).split("-"))
    index = year * 12 + (mon - 1) + delta
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def month_range(first_month: str, last_month: str) -> list[str]:
    """Every month key from first to last, inclusive (empty when first > last)."""
    months, current = [], _check(first_month)
    _check(last_month)
    while current <= last_month:
        months.append(current)
        current = shift_month(current, 1)
    return months


@dataclass(frozen=True)
class Period:
    """Months [first_month, last_month], inclusive."""

    first_month: str
    last_month: str

    def __post_init__(self) -> None:
        _check(self.first_month)
        _check(self.last_month)
        if self.first_month > self.last_month:
            raise InputError(f"period starts after it ends: {self.first_month} > {self.last_month}")

    @property
    def months(self) -> list[str]:
        """Every month key in the period."""
        return month_range(self.first_month, self.last_month)

    @property
    def start_day(self) -> str:
        """First day, YYYY-MM-DD."""
        return f"{self.first_month}-01"

    @property
    def end_day(self) -> str:
        """Last day, YYYY-MM-DD."""
        year, mon = map(int, self.last_month.split("-"))
        return f"{self.last_month}-{calendar.monthrange(year, mon)[1]:02d}"

    @property
    def label(self) -> str:
        """'Sep 2026' or 'Sep 2026 – Nov 2026'."""
        first, last = _month_label(self.first_month), _month_label(self.last_month)
        return first if first == last else f"{first} – {last}"


def _month_label(month: str) -> str:
    year, mon = map(int, month.split("-"))
    return f"{calendar.month_abbr[mon]} {year}"


def resolve_preset(preset: str, data_first: str, data_last: str) -> Period:
    """The period a preset means for data covering [data_first, data_last]."""
    if preset not in PRESETS or PRESETS[preset][1] < 0:
        raise InputError(f"unknown period preset: {preset!r}")
    span = PRESETS[preset][1]
    if span == 0:
        return Period(data_first, data_last)
    return Period(max(data_first, shift_month(data_last, 1 - span)), data_last)


def previous_period(period: Period) -> Period:
    """The period of the same length that ends the month before `period` starts."""
    length = len(period.months)
    return Period(shift_month(period.first_month, -length), shift_month(period.first_month, -1))


def clamp_period(first_month: str, last_month: str, data_first: str, data_last: str) -> Period:
    """A requested range limited to the months the data covers (whole data range if disjoint)."""
    first, last = max(first_month, data_first), min(last_month, data_last)
    if first > last:
        return Period(data_first, data_last)
    return Period(first, last)
