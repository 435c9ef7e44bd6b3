"""Reporting periods: presets against the data's months, the period before, clamping."""

import pytest

from walleta.errors import InputError
from walleta.periods import Period, clamp_period, month_range, previous_period, resolve_preset, shift_month


def test_shift_month_crosses_years_both_ways():
    assert shift_month("2026-01", -1) == "2025-12"
    assert shift_month("2025-12", 1) == "2026-01"
    assert shift_month("2026-03", -15) == "2024-12"


def test_month_range_is_inclusive_and_empty_when_reversed():
    assert month_range("2025-11", "2026-02") == ["2025-11", "2025-12", "2026-01", "2026-02"]
    assert month_range("2026-02", "2026-01") == []


@pytest.mark.parametrize(
    ("preset", "expected"),
    [
        ("latest", Period("2026-11", "2026-11")),
        ("last_3", Period("2026-09", "2026-11")),
        ("last_6", Period("2026-06", "2026-11")),
        ("last_12", Period("2025-12", "2026-11")),
        ("all", Period("2025-12", "2026-11")),
    ],
)
def test_presets_resolve_against_the_data_range(preset, expected):
    assert resolve_preset(preset, "2025-12", "2026-11") == expected


def test_a_preset_longer_than_the_data_starts_at_the_first_month():
    assert resolve_preset("last_12", "2026-09", "2026-11") == Period("2026-09", "2026-11")


def test_custom_is_not_a_preset():
    with pytest.raises(InputError):
        resolve_preset("custom", "2025-12", "2026-11")


def test_previous_period_has_the_same_length_and_ends_just_before():
    assert previous_period(Period("2026-09", "2026-11")) == Period("2026-06", "2026-08")
    assert previous_period(Period("2026-01", "2026-01")) == Period("2025-12", "2025-12")


def test_period_days_and_label():
    period = Period("2024-02", "2024-02")
    assert (period.start_day, period.end_day) == ("2024-02-01", "2024-02-29")
    assert period.label == "Feb 2024"
    assert Period("2025-12", "2026-02").label == "Dec 2025 – Feb 2026"
    assert Period("2025-12", "2026-02").months == ["2025-12", "2026-01", "2026-02"]


def test_invalid_periods_are_refused():
    with pytest.raises(InputError):
        Period("2026-13", "2026-12")
    with pytest.raises(InputError):
        Period("2026-05", "2026-04")


def test_clamp_period_limits_to_the_data_and_falls_back_when_disjoint():
    assert clamp_period("2025-01", "2026-02", "2025-12", "2026-11") == Period("2025-12", "2026-02")
    assert clamp_period("2020-01", "2020-03", "2025-12", "2026-11") == Period("2025-12", "2026-11")
