"""Altair charts with money-formatted axes and tooltips, sized for the app's layout.

Every helper takes a display frame (money already in float dollars, see `fmt.display_copy`) and
returns an `alt.Chart`; `show(chart)` draws it full width. Axes: dollars as '$1.2k'-style ticks,
tooltips with exact cents; percentages as '%'.
"""

from __future__ import annotations

from typing import Sequence

import altair as alt
import pandas as pd
import streamlit as st

__all__ = [
    "money_format",
    "MONEY_AXIS",
    "MONEY_TIP",
    "SMALL_MONEY_TIP",
    "PCT_AXIS",
    "PCT_TIP",
    "COLORS",
    "money_axis",
    "tip",
    "line",
    "bars",
    "hbars",
    "histogram",
    "band",
    "lorenz",
    "show",
]

MONEY_AXIS = "$,.2~s"  # $1.2k, $35k, $1.5M
MONEY_TIP = "$,.2f"
SMALL_MONEY_TIP = "$,.6f"
PCT_AXIS = ".0%"
PCT_TIP = ".1%"
POINTS_AXIS = "datum.value + '%'"  # labelExpr for percentages already in points (67.8)
COLORS = {
    "revenue": "#0F766E",
    "cost": "#F59E0B",
    "margin": "#6366F1",
    "bad": "#DC2626",
    "muted": "#94A3B8",
}
TIERS = {
    "healthy": "#16A34A",
    "moderate": "#0EA5E9",
    "at risk": "#F59E0B",
    "losing money": "#DC2626",
    "no revenue": "#94A3B8",
}


def money_format(values: Sequence[float | None]) -> str:
    """An axis format that suits the size of the amounts: '$0.28', '$450', '$12k', '$1.5M'."""
    present = [abs(v) for v in values if v is not None and v == v]
    largest = max(present, default=0.0)
    if largest < 10:
        return "$,.2f"
    if largest < 1000:
        return "$,.0f"
    return "$,.3~s"


def _fmt(frame: pd.DataFrame, field: str, fmt: str) -> str:
    """Replace the default money format by one sized to the data in `field`."""
    if fmt != MONEY_AXIS or field not in frame.columns:
        return fmt
    return money_format(pd.to_numeric(frame[field], errors="coerce").tolist())


def money_axis(title: str | None = None, *, fmt: str = MONEY_AXIS) -> alt.Axis:
    """A y/x axis in dollars with SI-style ticks."""
    return alt.Axis(title=title, format=fmt, labelFlush=False)


def tip(field: str, title: str, kind: str = "text") -> alt.Tooltip:
    """A tooltip entry; kind is 'money', 'small_money', 'pct', 'int', 'date', 'month' or 'text'."""
    formats = {
        "money": ("quantitative", MONEY_TIP),
        "small_money": ("quantitative", SMALL_MONEY_TIP),
        "pct": ("quantitative", PCT_TIP),
        "points": ("quantitative", ".1f"),
        "int": ("quantitative", ",d"),
        "float": ("quantitative", ",.2f"),
    }
    if kind in formats:
        type_, fmt = formats[kind]
        return alt.Tooltip(field, title=title, type=type_, format=fmt)
    if kind == "date":
        return alt.Tooltip(field, title=title, type="temporal", format="%Y-%m-%d")
    if kind == "month":
        return alt.Tooltip(field, title=title, type="temporal", format="%b %Y")
    return alt.Tooltip(field, title=title, type="nominal")


def _x(field: str, kind: str, title: str | None) -> alt.X:
    if kind == "month":
        return alt.X(f"{field}:T", title=title, axis=alt.Axis(format="%b %y", tickCount="month", labelAngle=0))
    if kind == "day":
        return alt.X(f"{field}:T", title=title, axis=alt.Axis(format="%d %b", labelAngle=0))
    if kind == "temporal":
        return alt.X(f"{field}:T", title=title)
    if kind == "quantitative":
        return alt.X(f"{field}:Q", title=title)
    return alt.X(f"{field}:N", title=title, sort=None, axis=alt.Axis(labelAngle=0))


def line(
    frame: pd.DataFrame,
    *,
    x: str,
    y: str,
    color: str | None = None,
    x_kind: str = "month",
    y_title: str | None = None,
    y_format: str = MONEY_AXIS,
    tooltips: Sequence[alt.Tooltip] = (),
    colors: dict[str, str] | None = None,
    height: int = 300,
    points: bool = True,
) -> alt.Chart:
    """A line chart (one line per `color` value)."""
    encoding: dict = {
        "x": _x(x, x_kind, None),
        "y": alt.Y(f"{y}:Q", title=y_title, axis=alt.Axis(format=_fmt(frame, y, y_format))),
        "tooltip": list(tooltips),
    }
    if color:
        scale = alt.Scale(domain=list(colors), range=list(colors.values())) if colors else alt.Undefined
        encoding["color"] = alt.Color(f"{color}:N", title=None, scale=scale, legend=alt.Legend(orient="top"))
    return alt.Chart(frame).mark_line(point=points, strokeWidth=2.5).encode(**encoding).properties(height=height)


def bars(
    frame: pd.DataFrame,
    *,
    x: str,
    y: str,
    color: str | None = None,
    x_kind: str = "month",
    y_title: str | None = None,
    y_format: str = MONEY_AXIS,
    tooltips: Sequence[alt.Tooltip] = (),
    colors: dict[str, str] | None = None,
    height: int = 300,
    stack: bool | str = True,
) -> alt.Chart:
    """Vertical bars, stacked by `color` when given."""
    encoding: dict = {
        "x": _x(x, x_kind, None),
        "y": alt.Y(f"{y}:Q", title=y_title, axis=alt.Axis(format=_fmt(frame, y, y_format)), stack=stack if stack is not True else "zero"),
        "tooltip": list(tooltips),
    }
    if color:
        scale = alt.Scale(domain=list(colors), range=list(colors.values())) if colors else alt.Undefined
        encoding["color"] = alt.Color(f"{color}:N", title=None, scale=scale, legend=alt.Legend(orient="top"))
    return alt.Chart(frame).mark_bar(cornerRadiusTopLeft=2, cornerRadiusTopRight=2).encode(**encoding).properties(height=height)


def hbars(
    frame: pd.DataFrame,
    *,
    y: str,
    x: str,
    x_title: str | None = None,
    x_format: str = MONEY_AXIS,
    tooltips: Sequence[alt.Tooltip] = (),
    color: str | None = None,
    colors: dict[str, str] | None = None,
    bar_color: str = COLORS["cost"],
    height: int | None = None,
    sort: str | None = "-x",
) -> alt.Chart:
    """Horizontal bars, largest first (`sort=None` keeps the frame's order), for 'top N' lists.
    `height` is the height of one bar's band in pixels."""
    encoding: dict = {
        "y": alt.Y(f"{y}:N", title=None, sort=sort, axis=alt.Axis(labelLimit=260)),
        "x": alt.X(f"{x}:Q", title=x_title, axis=alt.Axis(format=_fmt(frame, x, x_format))),
        "tooltip": list(tooltips),
    }
    mark = alt.Chart(frame).mark_bar(cornerRadiusTopRight=2, cornerRadiusBottomRight=2)
    if color:
        # The bars are labelled on the axis already: the colour needs no legend.
        scale = alt.Scale(domain=list(colors), range=list(colors.values())) if colors else alt.Undefined
        encoding["color"] = alt.Color(f"{color}:N", title=None, scale=scale, legend=None)
    else:
        mark = alt.Chart(frame).mark_bar(color=bar_color, cornerRadiusTopRight=2, cornerRadiusBottomRight=2)
    # A height per bar (Step) keeps every label readable whatever the container does.
    return mark.encode(**encoding).properties(height=alt.Step(height or 28), width="container")


def histogram(
    frame: pd.DataFrame,
    *,
    field: str,
    title: str,
    fmt: str = PCT_AXIS,
    color: str | None = None,
    colors: dict[str, str] | None = None,
    bin_step: float | None = None,
    extent: tuple[float, float] | None = None,
    height: int = 260,
) -> alt.Chart:
    """Counts of rows per bin of `field` (e.g. customers per margin band)."""
    bin_args: dict = {"maxbins": 30}
    if bin_step:
        bin_args = {"step": bin_step}
    if extent:
        bin_args["extent"] = list(extent)
    encoding: dict = {
        "x": alt.X(f"{field}:Q", bin=alt.Bin(**bin_args), title=title, axis=alt.Axis(format=fmt)),
        "y": alt.Y("count():Q", title="Customers"),
        "tooltip": [alt.Tooltip("count():Q", title="Customers")],
    }
    if color:
        scale = alt.Scale(domain=list(colors), range=list(colors.values())) if colors else alt.Undefined
        encoding["color"] = alt.Color(f"{color}:N", title=None, scale=scale, legend=alt.Legend(orient="top"))
    return alt.Chart(frame).mark_bar().encode(**encoding).properties(height=height)


def band(
    frame: pd.DataFrame,
    *,
    x: str,
    low: str,
    high: str,
    color: str = COLORS["cost"],
    x_kind: str = "day",
) -> alt.Chart:
    """A shaded interval (forecast band) to layer under a line."""
    return (
        alt.Chart(frame)
        .mark_area(opacity=0.18, color=color)
        .encode(x=_x(x, x_kind, None), y=alt.Y(f"{low}:Q"), y2=alt.Y2(f"{high}:Q"))
    )


def lorenz(frame: pd.DataFrame, *, x: str, y: str, height: int = 300) -> alt.Chart:
    """A Lorenz curve (share of customers vs share of cost) with the equality diagonal."""
    curve = (
        alt.Chart(frame)
        .mark_area(line={"color": COLORS["cost"]}, color=COLORS["cost"], opacity=0.25)
        .encode(
            x=alt.X(f"{x}:Q", title="Share of customers (smallest first)", axis=alt.Axis(format=PCT_AXIS)),
            y=alt.Y(f"{y}:Q", title="Share of AI cost", axis=alt.Axis(format=PCT_AXIS)),
            tooltip=[tip(x, "Customers", "pct"), tip(y, "Cost", "pct")],
        )
    )
    diagonal = (
        alt.Chart(pd.DataFrame({x: [0.0, 1.0], y: [0.0, 1.0]}))
        .mark_line(strokeDash=[4, 4], color=COLORS["muted"])
        .encode(x=f"{x}:Q", y=f"{y}:Q")
    )
    return (curve + diagonal).properties(height=height)


def show(chart: alt.Chart | alt.LayerChart, *, key: str | None = None) -> None:
    """Draw a chart at full width."""
    st.altair_chart(chart, width="stretch", key=key)
