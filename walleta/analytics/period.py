"""Periods for reports: a month, a quarter, a custom range of months or days.

A `Period` is an inclusive range of UTC calendar days. Views that combine revenue with cost
(margins, feature margins, plans, cohorts) work on whole months, because revenue is recognised
per month (`walleta.revenue`): they use `period.months`, the months the period touches. Cost-only
views (models, trends, reconciliation, anomalies) honour the exact days.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta

from ..errors import InputError
from ..store import Store

__all__ = ["Period", "month_end", "next_month", "previous_month", "month_range", "latest_complete_month", "data_bounds"]

_MONTH = re.compile(r"^\d{4}-\d{2}$")
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_QUARTER = re.compile(r"^(\d{4})-?[Qq]([1-4])$")


def _first_of(month: str) -> date:
    return date(int(month[:4]), int(month[5:7]), 1)


def month_end(month: str) -> date:
    """The last day of a YYYY-MM month."""
    return date.fromordinal(_first_of(next_month(month)).toordinal() - 1)


def next_month(month: str) -> str:
    """'2026-12' -> '2027-01'."""
    year, number = int(month[:4]), int(month[5:7])
    return f"{year + number // 12:04d}-{number % 12 + 1:02d}"


def previous_month(month: str) -> str:
    """'2026-01' -> '2025-12'."""
    year, number = int(month[:4]), int(month[5:7])
    return f"{year - 1:04d}-12" if number == 1 else f"{year:04d}-{number - 1:02d}"


def month_range(first: str, last: str) -> list[str]:
    """Every month from `first` to `last` inclusive (YYYY-MM)."""
    months, current = [], first
    while current <= last:
        months.append(current)
        current = next_month(current)
    return months


@dataclass(frozen=True)
class Period:
    """An inclusive range of UTC days. Build with `month`, `quarter`, `months`, `days` or `parse`."""

    start: date
    end: date

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise InputError(f"period ends ({self.end}) before it starts ({self.start})")

    # -- constructors ---------------------------------------------------------------------------

    @classmethod
    def month(cls, month: str) -> "Period":
        """One calendar month, 'YYYY-MM'."""
        _check_month(month)
        return cls(_first_of(month), month_end(month))

    @classmethod
    def quarter(cls, text: str) -> "Period":
        """A calendar quarter, '2026-Q1' or '2026Q1'."""
        match = _QUARTER.match(text.strip())
        if not match:
            raise InputError(f"not a quarter: {text!r} (use YYYY-Qn)")
        year, number = int(match.group(1)), int(match.group(2))
        first = f"{year:04d}-{3 * number - 2:02d}"
        return cls(_first_of(first), month_end(f"{year:04d}-{3 * number:02d}"))

    @classmethod
    def months(cls, first: str, last: str) -> "Period":
        """Whole months from `first` to `last` inclusive."""
        _check_month(first)
        _check_month(last)
        return cls(_first_of(first), month_end(last))

    @classmethod
    def days(cls, first: str, last: str) -> "Period":
        """Days from `first` to `last` inclusive (YYYY-MM-DD)."""
        return cls(_parse_day(first), _parse_day(last))

    @classmethod
    def parse(cls, start: str | None, end: str | None, *, default: "Period") -> "Period":
        """A period from CLI-style bounds: each YYYY-MM, YYYY-MM-DD or YYYY-Qn (or None = the
        matching bound of `default`). A month or quarter as `end` means its last day; a start
        alone runs to the later of the default's end and the end of the month it names."""
        first = default.start if not start else _bound(start, last=False)
        last = default.end if not end else _bound(end, last=True)
        if start and not end:  # from a month on: at least that whole month, else up to the default end
            last = max(last, _bound(start, last=True))
        if end and not start:
            first = min(first, _bound(end, last=False))
        return cls(first, last)

    # -- views ----------------------------------------------------------------------------------

    @property
    def first_day(self) -> str:
        """The first day, YYYY-MM-DD."""
        return self.start.isoformat()

    @property
    def last_day(self) -> str:
        """The last day, YYYY-MM-DD."""
        return self.end.isoformat()

    @property
    def first_month(self) -> str:
        """The month of the first day, YYYY-MM."""
        return self.first_day[:7]

    @property
    def last_month(self) -> str:
        """The month of the last day, YYYY-MM."""
        return self.last_day[:7]

    @property
    def months_list(self) -> list[str]:
        """Every month the period touches."""
        return month_range(self.first_month, self.last_month)

    @property
    def is_whole_months(self) -> bool:
        """True when the period starts on a 1st and ends on a month's last day."""
        return self.start.day == 1 and self.end == month_end(self.last_month)

    def whole_months(self) -> "Period":
        """The whole months this period touches (a period that is already whole is returned)."""
        return Period.months(self.first_month, self.last_month)

    @property
    def day_count(self) -> int:
        """Number of days in the period."""
        return (self.end - self.start).days + 1

    def label(self) -> str:
        """'2026-03', '2026-01..2026-03' or '2026-03-05..2026-03-20'."""
        if self.is_whole_months:
            return self.first_month if self.first_month == self.last_month else f"{self.first_month}..{self.last_month}"
        return f"{self.first_day}..{self.last_day}"

    def shifted_days(self, days: int) -> "Period":
        """The same length of period moved by `days`."""
        return Period(self.start + timedelta(days=days), self.end + timedelta(days=days))


def _check_month(month: str) -> None:
    if not _MONTH.match(month or "") or not 1 <= int(month[5:7]) <= 12:
        raise InputError(f"not a month: {month!r} (use YYYY-MM)")


def _parse_day(text: str) -> date:
    if not _DAY.match(text or ""):
        raise InputError(f"not a day: {text!r} (use YYYY-MM-DD)")
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise InputError(f"not a day: {text!r}") from exc


def _bound(text: str, *, last: bool) -> date:
    text = text.strip()
    if _DAY.match(text):
        return _parse_day(text)
    if _MONTH.match(text):
        period = Period.month(text)
    elif _QUARTER.match(text):
        period = Period.quarter(text)
    else:
        raise InputError(f"not a date: {text!r} (use YYYY-MM-DD, YYYY-MM or YYYY-Qn)")
    return period.end if last else period.start


def data_bounds(store: Store) -> tuple[str | None, str | None]:
    """The first and last day with usage (from the customer-day rollup's day index)."""
    first = store.scalar("SELECT MIN(day) FROM rollup_customer_day")
    last = store.scalar("SELECT MAX(day) FROM rollup_customer_day")
    return first, last


def latest_complete_month(store: Store) -> str | None:
    """The latest month whose last day has usage, else the month before the latest usage day;
    falls back to the latest revenue month; None for an empty database."""
    _, last = data_bounds(store)
    if last is None:
        last = store.scalar("SELECT MAX(period_start) FROM revenue_entries")
        return None if last is None else str(last)[:7]
    month = last[:7]
    return month if date.fromisoformat(last) == month_end(month) else previous_month(month)
