"""Walleta Customers: margin per customer with health tiers, the spread of margins, one customer up close."""

import pandas as pd
import streamlit as st

from walleta import ui
from walleta.analytics.cohorts import margin_distribution_of
from walleta.analytics.margins import customer_margins, tier_summary
from walleta.customer_detail import customer_features, customer_largest_days, customer_models, customer_months

TIERS = {
    "healthy": "Healthy",
    "moderate": "Moderate",
    "at_risk": "At risk",
    "losing": "Losing money",
    "free": "Free (no revenue)",
    "no_usage": "Paying, no usage",
    "unpriced": "Unpriced usage",
    "unattributed": "Unattributed usage",
}
TIER_COLORS = {
    "Healthy": "#16A34A",
    "Moderate": "#0EA5E9",
    "At risk": "#F59E0B",
    "Losing money": "#DC2626",
    "Free (no revenue)": "#94A3B8",
    "Paying, no usage": "#A855F7",
    "Unpriced usage": "#64748B",
    "Unattributed usage": "#CBD5E1",
}
TABLE = {
    "customer": ui.tables.text("Customer", pinned=True),
    "plan": ui.tables.text("Plan"),
    "tier_label": ui.tables.text("Health", help="Healthy ≥ 50% margin, moderate 20–50%, at risk 0–20%, losing < 0%"),
    "tier_since": ui.tables.text("In this tier since"),
    **ui.tables.standard("revenue_pico", "ai_cost_pico", "margin_pico", "margin_pct", "cost_pct_of_revenue"),
    "mom_margin_change_pico": ui.tables.money("Margin vs month before", help="Margin of the period's last month minus the month before"),
    **ui.tables.standard("requests", "total_tokens", "unpriced_requests"),
    "customer_id": ui.tables.text("Customer id"),
}


def _labelled(margins: pd.DataFrame) -> pd.DataFrame:
    return margins.assign(
        customer=[n or c for n, c in zip(margins["name"].tolist(), margins["customer_id"].tolist())],
        tier_label=[TIERS.get(t, t) for t in margins["tier"].tolist()],
        tier_since=[s if isinstance(s, str) and s else "—" for s in margins["tier_since"].tolist()],
    )


def _kpis(margins: pd.DataFrame, ctx: ui.PageContext) -> None:
    tiers = tier_summary(margins).set_index("tier")
    customers = int((margins["tier"] != "unattributed").sum())

    def tier(name: str, column: str) -> int:
        return int(tiers.loc[name, column]) if name in tiers.index else 0

    distribution = margin_distribution_of(margins, ctx.period.label)  # of the customers shown (plan filter included)
    median = distribution.loc[distribution["percentile"] == 50, "margin_pct"]
    a, b, c, d = st.columns(4)
    a.metric("Customers", ui.count(customers), help="With revenue or usage in the period", border=True)
    b.metric(
        "Losing money",
        ui.count(tier("losing", "customers")),
        ui.usd(tier("losing", "margin_pico"), 0) + " margin",
        delta_color="off",
        delta_arrow="off",
        border=True,
    )
    c.metric(
        "Free customers' AI cost",
        ui.usd(tier("free", "ai_cost_pico")),
        f"{ui.count(tier('free', 'customers'))} customers",
        delta_color="off",
        delta_arrow="off",
        help="AI cost of customers with usage and no revenue (free plan, trials)",
        border=True,
    )
    d.metric("Median margin (paying)", ui.pct_points(median.iloc[0] if len(median) else None), help="Half the paying customers have a higher margin %", border=True)


def _charts(shown: pd.DataFrame) -> None:
    left, right = st.columns([3, 2])
    paying = shown[shown["margin_pct"].notna()].assign(
        margin=[max(-200.0, min(100.0, float(v))) for v in shown.loc[shown["margin_pct"].notna(), "margin_pct"].tolist()]
    )
    with left:
        st.markdown("**How margin is spread** · paying customers, margin % (below −200% shown at −200%)")
        if paying.empty:
            st.caption("No paying customers in this selection.")
        else:
            labels = set(paying["tier_label"].unique())
            chart = ui.charts.histogram(
                paying[["margin", "tier_label"]], field="margin", title="Margin %", fmt=".0f", color="tier_label",
                colors={k: v for k, v in TIER_COLORS.items() if k in labels}, bin_step=10, extent=(-200, 100),
            )
            ui.charts.show(chart)
    with right:
        st.markdown("**Customers per health tier**")
        counts = shown.groupby("tier_label", as_index=False).size().rename(columns={"size": "customers"})
        found = set(counts["tier_label"].unique())
        order = [t for t in TIER_COLORS if t in found]
        counts = counts.set_index("tier_label").loc[order].reset_index()
        chart = ui.charts.hbars(
            counts, y="tier_label", x="customers", x_title="Customers", x_format="d", color="tier_label",
            colors={k: TIER_COLORS[k] for k in order}, sort=None,
            tooltips=[ui.charts.tip("tier_label", "Tier"), ui.charts.tip("customers", "Customers", "int")],
        )
        ui.charts.show(chart)


def _filtered(margins: pd.DataFrame, ctx: ui.PageContext) -> pd.DataFrame:
    search_col, tier_col = st.columns([1, 3])
    search = search_col.text_input("Search customers", key="customers_search", placeholder="Name or id", label_visibility="collapsed")
    found = set(margins["tier"].unique())
    present = [t for t in TIERS if t in found]
    chosen = tier_col.pills("Tiers", present, format_func=TIERS.get, selection_mode="multi", key="customers_tiers", label_visibility="collapsed")
    shown = margins
    if ctx.plans:
        shown = shown[shown["plan"].isin(ctx.plans)]
    if chosen:
        shown = shown[shown["tier"].isin(chosen)]
    if search:
        needle = search.strip().lower()
        shown = shown[shown["customer_id"].str.lower().str.contains(needle, regex=False) | shown["name"].str.lower().str.contains(needle, regex=False)]
    return shown


def _drill_down(shown: pd.DataFrame, ctx: ui.PageContext, selection: object) -> None:
    ids = [c for c in shown["customer_id"].tolist() if c]
    if not ids:
        return
    rows = getattr(getattr(selection, "selection", None), "rows", []) if selection is not None else []
    if rows and rows[0] < len(shown):
        picked = shown.iloc[rows[0]]["customer_id"]
        if st.session_state.get("customers_last_row") != picked:
            st.session_state["customers_last_row"] = picked
            st.session_state["customers_pick"] = picked
    if st.session_state.get("customers_pick") not in ids:
        st.session_state["customers_pick"] = ids[0]
    names = dict(zip(shown["customer_id"].tolist(), shown["customer"].tolist()))
    st.subheader("One customer up close")
    customer = st.selectbox("Customer", ids, format_func=lambda c: f"{names.get(c, c)} ({c})", key="customers_pick")
    row = shown[shown["customer_id"] == customer].iloc[0]
    st.caption(f"Plan {row['plan'] or '—'} · {TIERS.get(row['tier'], row['tier'])}" + (f" since {row['tier_since']}" if row["tier_since"] != "—" else "") + (f" · signed up {row['signup_date']}" if row["signup_date"] else ""))
    a, b, c, d = st.columns(4)
    a.metric("Revenue", ui.usd(int(row["revenue_pico"])), border=True)
    b.metric("AI cost", ui.usd(int(row["ai_cost_pico"])), border=True)
    c.metric("Gross margin", ui.usd(int(row["margin_pico"])), border=True)
    d.metric("Margin %", ui.pct_points(row["margin_pct"]), border=True)

    period = ctx.period
    mine = ui.load(customer_months, ui.FX, customer, None, period.last_month)
    if not mine.empty:
        st.markdown("**Revenue and AI cost by month**")
        ui.charts.show(ui.charts.money_over_time(mine, x="month", series={"Revenue": "revenue_pico", "AI cost": "ai_cost_pico"}, height=260))
    share = {
        **ui.tables.standard("cost_pico"),
        "cost_share": ui.tables.progress("Share of its cost"),
        **ui.tables.standard("requests"),
        "input_tokens": ui.tables.integer("Input tokens"),
        "output_tokens": ui.tables.integer("Output tokens"),
    }
    left, right = st.columns(2)
    with left:
        st.markdown(f"**Features** · {period.label}")
        features = ui.load(customer_features, customer, period.first_month, period.last_month)
        ui.table(features, key="customer_features", columns={"feature": ui.tables.text("Feature"), **share}, file_name=ctx.csv_name(customer, "features"),
                 empty="No usage in this period.")
    with right:
        st.markdown(f"**Models** · {period.label}")
        models = ui.load(customer_models, customer, period.first_month, period.last_month)
        ui.table(models, key="customer_models", columns={"model": ui.tables.text("Model"), **share}, file_name=ctx.csv_name(customer, "models"),
                 empty="No usage in this period.")
    st.markdown("**Largest days**")
    days = ui.load(customer_largest_days, customer, period.first_month, period.last_month, 10)
    ui.table(
        days,
        key="customer_days",
        file_name=ctx.csv_name(customer, "largest-days"),
        columns={"day": ui.tables.text("Day"), **ui.tables.standard("cost_pico", "requests", "tokens", "unpriced_requests")},
        empty="No usage in this period.",
    )


with ui.page("Customers", ":material/groups:", filters=("plan",)) as ctx:
    margins = _labelled(ui.load(customer_margins, ctx.window, ui.FX))
    st.caption(f"{ctx.period.label} · margin = recognised revenue − AI cost; lowest margin first. Click a row to look closer.")
    _kpis(margins if not ctx.plans else margins[margins["plan"].isin(ctx.plans)], ctx)
    shown = _filtered(margins, ctx)
    if shown.empty:
        st.info("No customer matches these filters. Clear the search or the tier and plan filters.", icon=":material/filter_alt_off:")
        st.stop()
    _charts(shown)
    selection = ui.table(
        shown.reset_index(drop=True),
        key="customers_table",
        columns=TABLE,
        file_name=ctx.csv_name("customers"),
        on_select="rerun",
        selection_mode="single-row",
        height=420,
    )
    _drill_down(shown.reset_index(drop=True), ctx, selection)
