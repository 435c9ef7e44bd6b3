"""Altair charts with money-formatted axes and tooltips, sized for the app's layout.

The low-level helpers (`line`, `bars`, `hbars`, ...) take a display frame (money already in
float dollars, see `fmt.display_copy`) and return an `alt.Chart`; the series helpers
(`money_over_time`, `paired_hbars`, `forecast_bars`) take core values in pico-dollars and do
the display conversion themselves. `show(chart)` draws a chart full width. Axes: dollars as
'$1.2k'-style ticks, tooltips with exact cents; percentages as '%'.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import altair as alt
import pandas as pd
import streamlit as st

from .fmt import display_copy, dollars

__all__ = [
    "money_format",
    "MONEY_AXIS",
    "MONEY_TIP",
    "SMALL_MONEY_TIP",
    "PCT_AXIS",
    "PCT_TIP",
    "COLORS",
    "SERIES_COLORS",
    "money_axis",
    "tip",
    "long_frame",
    "money_over_time",
    "paired_hbars",
    "stacked_hbars",
    "forecast_bars",
    "heatmap",
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
# One colour per money series, the same on every page.
SERIES_COLORS = {
    "Revenue": COLORS["revenue"],
    "Allocated revenue": COLORS["revenue"],
    "AI cost": COLORS["cost"],
    "Estimated": COLORS["cost"],
    "Gross margin": COLORS["margin"],
    "Billed": COLORS["margin"],
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


def _color(field: str, colors: dict[str, str] | None, *, legend: bool = True) -> alt.Color:
    """The colour encoding of `field`: `colors` maps each value to its colour (in legend order),
    else Altair's default palette; the legend sits on top, or is left out (`legend=False`)."""
    scale = alt.Scale(domain=list(colors), range=list(colors.values())) if colors else alt.Undefined
    return alt.Color(f"{field}:N", title=None, scale=scale, legend=alt.Legend(orient="top") if legend else None)


def _xy(frame: pd.DataFrame, *, x: str, x_kind: str, y: str, y_title: str | None, y_format: str,
        tooltips: Sequence[alt.Tooltip], color: str | None, colors: dict[str, str] | None, **y_args: Any) -> dict:
    """The encoding shared by `line` and `bars`: x by kind, a y axis in `y_format` (money sized
    to the data), the tooltips and the optional colour."""
    encoding: dict = {
        "x": _x(x, x_kind, None),
        "y": alt.Y(f"{y}:Q", title=y_title, axis=alt.Axis(format=_fmt(frame, y, y_format)), **y_args),
        "tooltip": list(tooltips),
    }
    if color:
        encoding["color"] = _color(color, colors)
    return encoding


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
    encoding = _xy(frame, x=x, x_kind=x_kind, y=y, y_title=y_title, y_format=y_format, tooltips=tooltips, color=color, colors=colors)
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
    encoding = _xy(frame, x=x, x_kind=x_kind, y=y, y_title=y_title, y_format=y_format, tooltips=tooltips, color=color, colors=colors,
                   stack=stack if stack is not True else "zero")
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
        encoding["color"] = _color(color, colors, legend=False)
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
        encoding["color"] = _color(color, colors)
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


def long_frame(
    frame: pd.DataFrame, key: str, series: Mapping[str, str | pd.Series], *, label: str = "what", value: str = "amount_pico"
) -> pd.DataFrame:
    """Stack columns of a wide frame into a long one for a chart with one series per colour.

    `series` maps each series label to a column of `frame` (or to a Series aligned with it).
    Returns the columns `key`, `label` (the series label) and `value`, the series one after the
    other in the order given; values are copied as they are (no display conversion).
    """
    parts = [
        pd.DataFrame({key: frame[key], label: name, value: frame[source] if isinstance(source, str) else source})
        for name, source in series.items()
    ]
    return pd.concat(parts, ignore_index=True)


def money_over_time(
    frame: pd.DataFrame,
    *,
    x: str,
    series: Mapping[str, str],
    x_kind: str = "month",
    colors: Mapping[str, str] | None = None,
    height: int = 300,
    points: bool = True,
) -> alt.Chart:
    """Money series over time from a core frame: one line per series, money axis and tooltips.

    `frame` has the period column `x` (text 'YYYY-MM' when `x_kind='month'`, 'YYYY-MM-DD' when
    'day') and the pico-dollar columns named in `series` (label -> column). Colours come from
    `colors`, else `SERIES_COLORS` by label. With fewer than three months, side-by-side bars per
    month replace the lines (a line through one or two points reads badly). Returns the chart.
    """
    long = display_copy(long_frame(frame, x, series))
    long[x] = pd.to_datetime(long[x] + "-01" if x_kind == "month" else long[x])
    long = long.sort_values(x, kind="stable")
    palette = {name: (colors or SERIES_COLORS).get(name, COLORS["muted"]) for name in series}
    when = tip(x, "Month", "month") if x_kind == "month" else tip(x, "Day", "date")
    tooltips = [when, tip("what", "What"), tip("amount_pico", "Amount", "money")]
    if x_kind == "month" and long[x].nunique() < 3:
        chart = bars(long, x=x, y="amount_pico", color="what", colors=palette, tooltips=tooltips, height=height, stack=False)
        return chart.encode(
            xOffset=alt.XOffset("what:N", sort=list(palette)),
            x=alt.X(f"yearmonth({x}):O", title=None, axis=alt.Axis(format="%b %Y", labelAngle=0)),
        )
    return line(long, x=x, y="amount_pico", color="what", x_kind=x_kind, colors=palette, tooltips=tooltips, height=height, points=points)


def paired_hbars(frame: pd.DataFrame, *, key: str, series: Mapping[str, str], title: str, colors: Mapping[str, str] | None = None) -> alt.Chart:
    """Two or more money series side by side for each row of a core frame (e.g. allocated revenue
    and AI cost per feature), rows in the frame's order.

    `key` is the label column, `series` maps series labels to pico-dollar columns, `title` names
    the key in the tooltip. Returns the chart (one band of bars per row, money axis, tooltips).
    """
    long = display_copy(long_frame(frame, key, series))
    order = list(series)
    palette = colors or SERIES_COLORS
    return (
        alt.Chart(long)
        .mark_bar(cornerRadiusTopRight=2, cornerRadiusBottomRight=2)
        .encode(
            y=alt.Y(f"{key}:N", title=None, sort=list(frame[key]), axis=alt.Axis(labelLimit=220)),
            yOffset=alt.YOffset("what:N", sort=order),
            x=alt.X("amount_pico:Q", title=None, axis=alt.Axis(format=_fmt(long, "amount_pico", MONEY_AXIS))),
            color=_color("what", {name: palette.get(name, COLORS["muted"]) for name in order}),
            tooltip=[tip(key, title), tip("what", "What"), tip("amount_pico", "Amount", "money")],
        )
        .properties(height=alt.Step(14), width="container")
    )


def stacked_hbars(
    frame: pd.DataFrame, *, y: str, x: str, color: str, colors: Mapping[str, str], x_title: str, x_format: str = "~s",
    tooltips: Sequence[alt.Tooltip] = (), y_order: Sequence[str] | None = None,
) -> alt.Chart:
    """Horizontal bars of `x` per `y`, stacked by `color` in the order of `colors` (value ->
    colour), e.g. token classes per model. `y_order` fixes the rows' order. Returns the chart."""
    order = list(colors)
    return (
        alt.Chart(frame)
        .mark_bar()
        .encode(
            y=alt.Y(f"{y}:N", title=None, sort=list(y_order) if y_order is not None else None, axis=alt.Axis(labelLimit=220)),
            x=alt.X(f"{x}:Q", title=x_title, axis=alt.Axis(format=x_format)),
            color=alt.Color(f"{color}:N", title=None, sort=order, scale=alt.Scale(domain=order, range=list(colors.values())), legend=alt.Legend(orient="top")),
            order=alt.Order("_stack_order:Q"),
            tooltip=list(tooltips),
        )
        .transform_calculate(_stack_order=f"indexof({order!r}, datum[{color!r}])")
        .properties(height=alt.Step(24), width="container")
    )


def forecast_bars(rows: Mapping[str, Mapping[str, Any]]) -> alt.Chart:
    """Month-end forecast per metric: the amount so far (solid), the forecast (pale bar) and the
    band (error bar). `rows` maps a label ('AI cost', 'Margin') to pico-dollar values under
    so_far_pico, forecast_pico, low_pico and high_pico (low/high None when there is no band).
    Returns the layered chart, money axis sized to the amounts."""
    names = list(rows)
    bars = pd.DataFrame(
        {
            "what": names,
            **{key: dollars([rows[n][f"{key}_pico"] for n in names]) for key in ("so_far", "forecast", "low", "high")},
        }
    )
    base = alt.Chart(bars).encode(y=alt.Y("what:N", title=None, sort=None))
    axis = money_axis(fmt=money_format([*bars["forecast"], *bars["high"], *bars["so_far"]]))
    forecast_bar = base.mark_bar(color=COLORS["muted"], opacity=0.35, height=26).encode(
        x=alt.X("forecast:Q", title=None, axis=axis),
        tooltip=[tip("what", "What"), tip("forecast", "Forecast", "money"), tip("low", "Low", "money"), tip("high", "High", "money")],
    )
    palette = {"AI cost": COLORS["cost"], "Margin": COLORS["margin"], "Gross margin": COLORS["margin"], "Revenue": COLORS["revenue"]}
    so_far_bar = base.mark_bar(height=26).encode(
        x="so_far:Q", color=_color("what", {n: palette.get(n, COLORS["muted"]) for n in names}, legend=False), tooltip=[tip("so_far", "So far", "money")]
    )
    band_rule = base.mark_errorbar(ticks=True, color="#1F2933").encode(x="low:Q", x2="high:Q")
    return (forecast_bar + so_far_bar + band_rule).properties(height=alt.Step(48), width="container")


def heatmap(
    frame: pd.DataFrame, *, x: str, y: str, value: str, value_title: str, y_title: str | None = None,
    domain: tuple[float, float] = (-50, 100), tooltips: Sequence[alt.Tooltip] = (),
) -> alt.Chart:
    """Cells of `value` (a number, e.g. margin % in points) per `x` and `y`, red to green over
    `domain` (values outside are clamped to its ends). Returns the chart."""
    return (
        alt.Chart(frame)
        .mark_rect()
        .encode(
            x=alt.X(f"{x}:O", title=None, axis=alt.Axis(labelAngle=0)),
            y=alt.Y(f"{y}:O", title=y_title),
            color=alt.Color(f"{value}:Q", title=value_title, scale=alt.Scale(scheme="redyellowgreen", domain=list(domain), clamp=True)),
            tooltip=list(tooltips),
        )
        .properties(height=alt.Step(18), width="container")
    )


def show(chart: alt.Chart | alt.LayerChart, *, key: str | None = None) -> None:
    """Draw a chart at full width."""
    st.altair_chart(chart, width="stretch", key=key)
