"""Walleta Overview: revenue, AI cost and gross margin for the chosen period, at a glance."""

import streamlit as st

from walleta import ui
from walleta.headline import headline

with ui.page("Overview", ":material/space_dashboard:") as ctx:
    period, previous = ctx.period, ctx.previous
    now = ui.load(headline, ui.FX, period.first_month, period.last_month)
    before = ui.load(headline, ui.FX, previous.first_month, previous.last_month)
    has_before = before.first_month is not None

    st.caption(f"{period.label} · {now.customers:,} customers with usage · compared with {previous.label}")
    revenue, cost, margin, margin_pct = st.columns(4)
    revenue.metric(
        "Revenue",
        ui.usd(now.revenue_pico),
        ui.usd_delta(now.revenue_pico - before.revenue_pico) if has_before else None,
        border=True,
    )
    cost.metric(
        "AI cost",
        ui.usd(now.cost_pico),
        ui.usd_delta(now.cost_pico - before.cost_pico) if has_before else None,
        delta_color="inverse",
        border=True,
    )
    margin.metric(
        "Gross margin",
        ui.usd(now.margin_pico),
        ui.usd_delta(now.margin_pico - before.margin_pico) if has_before else None,
        border=True,
    )
    margin_pct.metric(
        "Margin %",
        ui.pct(now.margin_pct),
        ui.pct_delta(now.margin_pct - before.margin_pct) if has_before and now.margin_pct is not None and before.margin_pct is not None else None,
        border=True,
    )

    if now.unpriced_requests:
        st.warning(
            f"{now.unpriced_requests:,} requests use models with no price; they are not in AI cost. See Prices.",
            icon=":material/warning:",
        )
    if now.unconverted_currencies:
        st.warning(
            f"Revenue in {', '.join(now.unconverted_currencies)} has no exchange rate and is left out.",
            icon=":material/currency_exchange:",
        )
