"""Walleta Overview: revenue, AI cost and margin for the chosen period, the trend, the top costs
and what needs attention."""

import time

import pandas as pd
import streamlit as st

from walleta import ui
from walleta.analytics.breakdowns import feature_costs, model_breakdown
from walleta.analytics.margins import customer_margins, tier_summary
from walleta.analytics.trends import monthly_summary
from walleta.data_status import stale_sources
from walleta.headline import headline
from walleta.matching import unmatched_revenue
from walleta.periods import Period, shift_month
from walleta.prices_report import unpriced_models


def _kpis(ctx: ui.PageContext) -> None:
    period, previous = ctx.period, ctx.previous
    now = ui.load(headline, ui.FX, period.first_month, period.last_month)
    before = ui.load(headline, ui.FX, previous.first_month, previous.last_month)
    has_before = before.first_month is not None
    margins = ui.load(customer_margins, ctx.window, ui.FX, with_history=False)
    tiers = tier_summary(margins).set_index("tier")
    losing = int(tiers.loc["losing", "customers"]) if "losing" in tiers.index else 0
    losing_margin = int(tiers.loc["losing", "margin_pico"]) if "losing" in tiers.index else 0
    st.caption(f"{period.label} · compared with {previous.label}" + ("" if has_before else " (no data then)"))
    revenue, cost, margin, margin_pct = st.columns(4)
    revenue.metric("Revenue", ui.usd(now.revenue_pico), ui.usd_delta(now.revenue_pico - before.revenue_pico) if has_before else None, border=True)
    cost.metric("AI cost", ui.usd(now.cost_pico), ui.usd_delta(now.cost_pico - before.cost_pico) if has_before else None, delta_color="inverse", border=True)
    margin.metric("Gross margin", ui.usd(now.margin_pico), ui.usd_delta(now.margin_pico - before.margin_pico) if has_before else None, border=True)
    both = has_before and now.margin_pct is not None and before.margin_pct is not None
    margin_pct.metric("Margin %", ui.pct(now.margin_pct), ui.pct_delta(now.margin_pct - before.margin_pct) if both else None, border=True)
    customers, losers, free, unpriced = st.columns(4)
    customers.metric("Customers with usage", ui.count(now.customers))
    losers.metric(
        "Losing money",
        ui.count(losing),
        f"{ui.usd(losing_margin, 0)} margin" if losing else None,
        delta_color="off",
        delta_arrow="off",
        help="Customers whose AI cost exceeds their revenue in the period (see Customers)",
    )
    free.metric(
        "Free customers' AI cost",
        ui.usd(int(tiers.loc["free", "ai_cost_pico"]) if "free" in tiers.index else 0),
        f"{ui.count(int(tiers.loc['free', 'customers']))} customers" if "free" in tiers.index else None,
        delta_color="off",
        delta_arrow="off",
        help="AI cost of customers with usage and no revenue (free plan, trials)",
    )
    unpriced.metric("Unpriced requests", ui.count(now.unpriced_requests), help="Requests on models with no price: not in AI cost, never counted as $0")


def _trend(ctx: ui.PageContext) -> None:
    first = max(ctx.coverage.months[0], shift_month(ctx.period.last_month, -11))
    window = Period(first, ctx.period.last_month)
    from walleta.analytics.period import Period as AnalyticsPeriod

    monthly = ui.load(monthly_summary, AnalyticsPeriod.months(window.first_month, window.last_month), ui.FX)
    st.markdown(f"**Revenue, AI cost and gross margin by month** · {window.label}")
    series = {"Revenue": "revenue_pico", "AI cost": "ai_cost_pico", "Gross margin": "margin_pico"}
    ui.charts.show(ui.charts.money_over_time(monthly, x="month", series=series, height=300))


def _top(frame: pd.DataFrame, label_column: str, title: str, item: str, limit: int = 5) -> None:
    """Bars of the `limit` rows of `frame` with the largest AI cost, labelled by `label_column`
    (`item` names one row in the tooltip)."""
    top = frame[[label_column, "ai_cost_pico"]].copy()
    top["_cost"] = [int(v) for v in top["ai_cost_pico"]]
    top = top[top["_cost"] > 0].sort_values("_cost", ascending=False).head(limit).drop(columns="_cost")
    st.markdown(f"**{title}**")
    if top.empty:
        st.caption("No AI cost in this period.")
        return
    shown = ui.display_copy(top)
    ui.charts.show(
        ui.charts.hbars(shown, y=label_column, x="ai_cost_pico", x_title=None, height=26,
                        tooltips=[ui.charts.tip(label_column, item), ui.charts.tip("ai_cost_pico", "AI cost", "money")])
    )


def _top_costs(ctx: ui.PageContext) -> None:
    margins = ui.load(customer_margins, ctx.window, ui.FX, with_history=False)
    margins = margins[margins["tier"] != "unattributed"].assign(customer=[n or c for n, c in zip(margins["name"], margins["customer_id"])])
    left, middle, right = st.columns(3)
    with left:
        _top(margins, "customer", "Top customers", "Customer")
    with middle:
        _top(ui.load(feature_costs, ctx.window), "feature", "Top features", "Feature")
    with right:
        _top(ui.load(model_breakdown, ctx.window), "model", "Top models", "Model")


def _warnings(ctx: ui.PageContext) -> None:
    notes: list[tuple[str, str]] = []
    unpriced = ui.load(unpriced_models, ui.CATALOG, customers=False)
    if not unpriced.empty:
        notes.append((":material/money_off:", f"{int(unpriced['unpriced_requests'].sum()):,} requests on {len(unpriced)} model(s) without a price "
                      f"({', '.join(unpriced['model'].head(3))}) are not in AI cost, never counted as $0. Add prices on the Prices page."))
    if ctx.coverage.unattributed_requests:
        notes.append((":material/person_search:", f"{ctx.coverage.unattributed_requests:,} requests are not attributed to a customer. "
                      "Map projects, keys or users on the Data page (Customer matching)."))
    orphans = ui.load(unmatched_revenue)
    if not orphans.empty:
        notes.append((":material/link_off:", f"Revenue from {len(orphans):,} customer(s) is not matched to usage. Match them on the Data page."))
    stale = ui.load(stale_sources, time.time_ns() // 1000 // 3_600_000_000 * 3_600_000_000)
    if not stale.empty:
        listed = ", ".join(f"{s} ({int(d)} days ago)" for s, d in zip(stale["source"], stale["age_days"]))
        notes.append((":material/update:", f"Imports are getting old: {listed}. Import again on the Data page."))
    if now_partial(ctx):
        month = Period(ctx.period.last_month, ctx.period.last_month).label
        notes.append((":material/hourglass_top:", f"Usage data end on {ctx.coverage.last_day}: {month} has partial AI cost "
                      "while subscription revenue counts the whole month. The month-end forecast is on Trends."))
    for icon, text in notes:
        st.warning(text, icon=icon)


def now_partial(ctx: ui.PageContext) -> bool:
    """True when the period's last month is the data's last month and its days are not all in."""
    last_day = ctx.coverage.last_day
    return bool(last_day) and last_day[:7] == ctx.period.last_month and last_day < ctx.period.end_day


with ui.page("Overview", ":material/space_dashboard:") as ctx:
    _kpis(ctx)
    _warnings(ctx)
    _trend(ctx)
    _top_costs(ctx)
