"""Walleta Trends: cost over time by any dimension, the month-end forecast, anomalies, cohorts and
how concentrated the cost is."""

import pandas as pd
import streamlit as st

from walleta import ui
from walleta.analytics.anomalies import customer_anomalies, daily_anomalies
from walleta.analytics.cohorts import cohort_margins, cohort_table
from walleta.analytics.concentration import concentration_summary, lorenz_curve
from walleta.analytics.forecast import month_end_forecast
from walleta.analytics.trends import trend
from walleta.periods import Period

GRAINS = {"day": "Day", "week": "Week", "month": "Month"}
DIMENSIONS = {"": "Total", "model": "Model", "feature": "Feature", "customer": "Customer (top 8)", "plan": "Plan"}
MEASURES = {"ai_cost_pico": "AI cost", "requests": "Requests", "total_tokens": "Tokens"}
ANOMALY_DAY_COLUMNS = {
    "day": ui.tables.text("Day", pinned=True),
    "feature": ui.tables.text("Feature"),
    "model": ui.tables.text("Model"),
    **ui.tables.standard("ai_cost_pico"),
    "baseline_median_pico": ui.tables.money("Usual day (median of 28)"),
    "excess_pico": ui.tables.money("Above usual"),
    "ratio": ui.tables.number("× usual", fmt="%.2f×"),
    "robust_score": ui.tables.number("Robust score", help="How far from the usual day, in robust standard deviations; 3.5 or more stands out"),
    "explanation": ui.tables.text("Why it stands out", width="large"),
}
ANOMALY_CUSTOMER_COLUMNS = {
    "name": ui.tables.text("Customer", pinned=True),
    "customer_id": ui.tables.text("Customer id"),
    "plan": ui.tables.text("Plan"),
    "window": ui.tables.text("Last 7 days"),
    "recent_cost_pico": ui.tables.money("AI cost, last 7 days"),
    "recent_daily_pico": ui.tables.money("Per day now"),
    "baseline_daily_pico": ui.tables.money("Per day before"),
    "ratio": ui.tables.number("× before", fmt="%.2f×"),
    "excess_pico": ui.tables.money("Above baseline, 7 days"),
    "largest_day": ui.tables.text("Largest day"),
    "largest_day_cost_pico": ui.tables.money("Largest day's AI cost"),
    "explanation": ui.tables.text("Why it stands out", width="large"),
}


def _over_time(ctx: ui.PageContext) -> None:
    a, b, c = st.columns(3)
    grain = a.segmented_control("By", list(GRAINS), format_func=GRAINS.get, default="week", key="trends_grain", required=True)
    by = b.selectbox("Split by", list(DIMENSIONS), format_func=DIMENSIONS.get, key="trends_by")
    measure = c.selectbox("Show", list(MEASURES), format_func=MEASURES.get, key="trends_measure")
    frame = ui.load(trend, ctx.window, grain=grain, by=by or None, top=8)
    if frame.empty:
        ui.empty_state(ctx, "No usage in this period. Choose another period in the sidebar.")
        return
    shown = ui.display_copy(frame)
    shown["bucket"] = pd.to_datetime(shown["bucket"] + ("-01" if grain == "month" else ""))
    full_length = {"day": 1, "week": 7}.get(grain)
    cut = frame["days_in_bucket"] < full_length if full_length else pd.Series(
        [d < pd.Period(b, "M").days_in_month for b, d in zip(frame["bucket"], frame["days_in_bucket"])], index=frame.index
    )
    data_end = ctx.coverage.last_day or ""
    money = measure == "ai_cost_pico"
    alt = ui.charts.alt
    x_kind = "month" if grain == "month" else "day"
    tooltips = [
        ui.charts.tip("bucket", GRAINS[grain], "date"),
        *([ui.charts.tip(by, DIMENSIONS[by])] if by else []),
        ui.charts.tip(measure, MEASURES[measure], "money" if money else "int"),
        ui.charts.tip("days_in_bucket", "Days in the period", "int"),
    ]
    y_format = ui.charts.MONEY_AXIS if money else "~s"
    if by:
        chart = ui.charts.bars(shown, x="bucket", y=measure, color=by, x_kind=x_kind, y_format=y_format, tooltips=tooltips, height=340)
        chart = chart.encode(x=alt.X("bucket:T", title=None, timeUnit="yearmonthdate" if grain != "month" else "yearmonth",
                                     axis=alt.Axis(format="%d %b" if grain != "month" else "%b %y", labelAngle=0)))
    else:
        chart = ui.charts.line(shown, x="bucket", y=measure, x_kind=x_kind, y_format=y_format, tooltips=tooltips, height=340)
    ui.charts.show(chart)
    notes = []
    if cut.any():
        notes.append("a bucket cut by the period's edges has fewer days (see “Days in the period”)")
    if data_end and data_end < ctx.period.end_day:
        notes.append(f"usage data end on {data_end}, so the last bucket is incomplete")
    if notes:
        st.caption("Note: " + "; ".join(notes) + ". A short bucket is not a drop.")
    ui.table(
        frame,
        key="trends_table",
        file_name=ctx.csv_name("trend", grain, by or "total"),
        columns={
            "bucket": ui.tables.text(GRAINS[grain]),
            **({by: ui.tables.text(DIMENSIONS[by])} if by else {}),
            **ui.tables.standard("ai_cost_pico", "requests", "total_tokens"),
            "days_in_bucket": ui.tables.integer("Days in the period"),
            **ui.tables.standard("unpriced_requests"),
        },
        height=300,
    )


def _forecast(ctx: ui.PageContext) -> None:
    confidence = st.segmented_control("Band", ["0.80", "0.90", "0.95"], format_func=lambda c: f"{int(float(c) * 100)}%", default="0.80", key="forecast_band", required=True)
    frame = ui.load(month_end_forecast, ui.FX, confidence=confidence)
    if frame.empty:
        ui.empty_state(ctx, "No usage yet, so nothing to forecast.")
        return
    rows = frame.set_index("metric")
    cost, revenue, margin = rows.loc["ai_cost"], rows.loc["revenue"], rows.loc["margin"]
    month = cost["month"]
    st.caption(f"{Period(month, month).label}: {cost['days_elapsed']} of {cost['days_in_month']} days with data (to {cost['as_of']}).")

    def band(row: pd.Series) -> str:
        if row["low_pico"] is None or pd.isna(row["low_pico"]):
            return "no band yet"
        return f"{ui.usd(int(row['low_pico']), 0)} to {ui.usd(int(row['high_pico']), 0)}"

    a, b, c, d = st.columns(4)
    a.metric("AI cost so far", ui.usd(int(cost["so_far_pico"])), border=True)
    b.metric("AI cost at month end", ui.usd(int(cost["forecast_pico"])), band(cost), delta_color="off", delta_arrow="off", border=True)
    c.metric("Revenue for the month", ui.usd(int(revenue["forecast_pico"])), border=True)
    d.metric("Margin at month end", ui.usd(int(margin["forecast_pico"])), band(margin), delta_color="off", delta_arrow="off", border=True)
    ui.charts.show(ui.charts.forecast_bars({"AI cost": cost, "Margin": margin}))
    st.caption("How: " + str(cost["method"]).replace("*", "\\*"))  # the formula's '*' is not Markdown emphasis


def _anomalies(ctx: ui.PageContext) -> None:
    by = st.selectbox("Look for unusual days in", ["", "feature", "model"], format_func={"": "Total cost", "feature": "Each feature", "model": "Each model"}.get, key="anomalies_by")
    days = ui.load(daily_anomalies, ctx.window, by=by or None)
    st.markdown(f"**Unusual days** · {len(days):,} in {ctx.period.label}")
    if days.empty:
        st.caption("No day stands out against the 28 days before it (robust score ≥ 3.5, at least 1.5× the median and $1 above it).")
    else:
        ui.table(days, key="anomaly_days", file_name=ctx.csv_name("anomalous-days"), columns=ANOMALY_DAY_COLUMNS)
    customers = ui.load(customer_anomalies)
    st.markdown(f"**Customers spending far above their own baseline** · last 7 days against the 28 before · {len(customers):,}")
    if customers.empty:
        st.caption("No customer's recent daily cost is 3× its baseline (and $5 above it).")
    else:
        ui.table(customers, key="anomaly_customers", file_name="walleta-anomalous-customers.csv", columns=ANOMALY_CUSTOMER_COLUMNS)


def _cohorts(ctx: ui.PageContext) -> None:
    grouping = st.segmented_control("Group by", ["cohort", "plan", "cohort_plan"], format_func={"cohort": "Signup month", "plan": "Plan", "cohort_plan": "Both"}.get,
                                    default="cohort", key="cohorts_by", required=True)
    frame = ui.load(cohort_margins, ctx.window, ui.FX, by=grouping)
    keys = {"cohort": ["cohort"], "plan": ["plan"], "cohort_plan": ["cohort", "plan"]}[grouping]
    ui.table(
        frame,
        key="cohorts_table",
        file_name=ctx.csv_name("cohorts", grouping),
        empty="No customer with revenue or usage in this period. Choose another period in the sidebar.",
        columns={
            **{k: ui.tables.text("Signup month" if k == "cohort" else "Plan") for k in keys},
            **ui.tables.standard(*ui.tables.MARGIN_GROUP),
            "margin_per_customer_pico": ui.tables.money("Gross margin per customer"),
        },
    )
    grid = ui.load(cohort_table, ctx.window, ui.FX)
    if grid.empty:
        return
    st.markdown("**Margin % by signup month and calendar month**")
    shown = grid.assign(margin=[None if v is None or pd.isna(v) else float(v) for v in grid["margin_pct"]])
    heat = ui.charts.heatmap(
        shown, x="month", y="cohort", value="margin", value_title="Margin %", y_title="Signup month",
        tooltips=[ui.charts.tip("cohort", "Signup month"), ui.charts.tip("month", "Month"), ui.charts.tip("active_customers", "Active customers", "int"),
                  ui.charts.tip("margin", "Margin %", "points")],
    )
    ui.charts.show(heat)


def _concentration(ctx: ui.PageContext) -> None:
    summary = ui.load(concentration_summary, ctx.window)
    if summary.empty or int(summary["customers"].iloc[0]) == 0:
        ui.empty_state(ctx, "No customer has AI cost in this period.")
        return
    row = summary.iloc[0]
    *tops, d = st.columns(4)
    for column, label, share in zip(tops, ["Top 1% of customers", "Top 5%", "Top 10%"], ["top_1_pct_share", "top_5_pct_share", "top_10_pct_share"]):
        column.metric(label, ui.pct_points(row[share]), "of AI cost", delta_color="off", delta_arrow="off", border=True)
    d.metric("Gini", "n/a" if row["gini"] is None else f"{float(row['gini']):.2f}", help="0 = every customer costs the same; near 1 = one customer is all the cost", border=True)
    curve = ui.load(lorenz_curve, ctx.window)
    shown = pd.DataFrame(
        {
            "customers": [float(v) / 100 for v in curve["customer_share_pct"]],
            "cost": [None if v is None or pd.isna(v) else float(v) / 100 for v in curve["cost_share_pct"]],
        }
    )
    st.markdown(f"**Lorenz curve** · {int(row['customers']):,} customers with AI cost; the further below the diagonal, the more a few customers drive the bill")
    ui.charts.show(ui.charts.lorenz(shown, x="customers", y="cost"))
    ui.download_csv(curve, key="lorenz", file_name=ctx.csv_name("lorenz"))


with ui.page("Trends", ":material/trending_up:") as ctx:
    st.caption(f"{ctx.period.label} · how cost moves, where the month will end, what is unusual, and who drives the bill.")
    over_time, forecast, anomalies, cohorts, concentration = st.tabs(["Over time", "Month-end forecast", "Anomalies", "Cohorts", "Concentration"])
    with over_time:
        _over_time(ctx)
    with forecast:
        _forecast(ctx)
    with anomalies:
        _anomalies(ctx)
    with cohorts:
        _cohorts(ctx)
    with concentration:
        _concentration(ctx)
