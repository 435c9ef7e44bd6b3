"""Walleta Overview: revenue, AI cost and gross margin at a glance."""

import streamlit as st

from walleta import ui
from walleta.headline import headline

ui.frame("Overview")
store = ui.get_store()
totals = headline(store, ui.get_fx())

if totals.first_month is None:
    st.info("No usage yet. Import a usage CSV or connect OpenAI on the Data page, or run `walleta demo`.")
    st.stop()

st.caption(f"{totals.first_month} to {totals.last_month} · {totals.customers} customers · {store.url}")
revenue, cost, margin, margin_pct = st.columns(4)
revenue.metric("Revenue", ui.usd(totals.revenue_pico))
cost.metric("AI cost", ui.usd(totals.cost_pico))
margin.metric("Gross margin", ui.usd(totals.margin_pico))
margin_pct.metric("Margin %", ui.pct(totals.margin_pct))

if totals.unpriced_requests:
    st.warning(f"{totals.unpriced_requests:,} requests use models with no price; they are not in AI cost. See Prices.")
if totals.unconverted_currencies:
    st.warning(f"Revenue in {', '.join(totals.unconverted_currencies)} has no exchange rate and is left out.")
