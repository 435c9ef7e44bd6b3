"""Walleta Reconciliation: the cost estimated from usage against the OpenAI bill, by day and line
item, with the gap explained and the unattributed remainder shown."""

import pandas as pd
import streamlit as st

from walleta import ui
from walleta.analytics.reconciliation import reconcile, reconciliation_lines, reconciliation_summary, unpriced_models

GAP_COLUMNS = {
    "estimated_pico": ui.tables.money("Estimated"),
    "billed_pico": ui.tables.money("Billed"),
    "difference_pico": ui.tables.money("Billed − estimated"),
    "difference_pct": ui.tables.pct_points("Difference % of bill"),
    "status": ui.tables.text("Status"),
    "explanation": ui.tables.text("What the gap most likely is", width="large"),
    **ui.tables.standard("unpriced_requests"),
}


def reconciliation_views(store: object, period: object, catalog: object) -> dict[str, pd.DataFrame]:
    """The summary and every breakdown of the period from ONE read of the estimated and billed
    line items (building them is most of the cost; each view from them is cheap)."""
    lines = reconciliation_lines(store, period, catalog)  # type: ignore[arg-type]
    return {
        "summary": reconciliation_summary(store, period, catalog, lines=lines),  # type: ignore[arg-type]
        "day": reconcile(store, period, catalog, by=("day",), lines=lines),  # type: ignore[arg-type]
        "line_item": reconcile(store, period, catalog, by=("line_item",), lines=lines),  # type: ignore[arg-type]
        "all": reconcile(store, period, catalog, lines=lines),  # type: ignore[arg-type]
    }


with ui.page("Reconciliation", ":material/balance:", needs_usage=False) as ctx:
    if ctx.coverage.billed_cost_rows == 0:
        ui.empty_state(
            ctx,
            "No OpenAI bill to compare with yet. Import the Costs API on the Data page (OpenAI API tab, with an admin key) "
            "or upload OpenAI's cost export CSV, then come back.",
        )
        st.stop()
    if ctx.period is None:
        ui.empty_state(ctx, "There is a bill but no usage to compare it with. Import usage on the Data page.")
        st.stop()
    st.caption(f"{ctx.period.label} · usage priced with the catalog against what OpenAI billed (Costs API). Nothing is hidden: "
               "what no customer carries is shown as the unattributed remainder.")
    views = ui.load(reconciliation_views, ctx.window, ui.CATALOG)
    summary = views["summary"]
    parts = summary.set_index("component")["amount_pico"]

    def amount(label: str) -> int | None:
        value = parts.get(label)
        return None if value is None or pd.isna(value) else int(value)

    a, b, c, d = st.columns(4)
    a.metric("Billed by OpenAI", ui.usd(amount("billed (OpenAI Costs API)")), border=True)
    b.metric("Estimated from usage", ui.usd(amount("estimated from usage")), border=True)
    c.metric("Billed − estimated", ui.usd(amount("difference (billed - estimated)")), border=True)
    d.metric("Unattributed remainder", ui.usd(amount("unattributed remainder")), help="The part of the bill no customer carries", border=True)
    ui.table(
        summary,
        key="reconciliation_summary",
        file_name=ctx.csv_name("reconciliation-summary"),
        columns={
            "component": ui.tables.text("What"),
            "amount_pico": ui.tables.money("Amount"),
            "share_of_billed_pct": ui.tables.pct_points("Share of the bill"),
            "explanation": ui.tables.text("Meaning", width="large"),
        },
    )

    view = st.segmented_control(
        "Break the gap down by",
        ["day", "line_item", "all"],
        format_func={"day": "Day", "line_item": "Line item", "all": "Day, project and line item"}.get,
        default="line_item",
        key="reconcile_view",
        required=True,
    )
    if view == "day":
        by_day = views["day"]
        if not by_day.empty:
            chart = ui.charts.money_over_time(by_day, x="day", x_kind="day", series={"Billed": "billed_pico", "Estimated": "estimated_pico"}, height=280, points=False)
            ui.charts.show(chart)
        ui.table(by_day, key="reconcile_days", file_name=ctx.csv_name("reconciliation-days"),
                 columns={"day": ui.tables.text("Day", pinned=True), **GAP_COLUMNS})
    elif view == "line_item":
        by_item = views["line_item"]
        st.caption("Largest gaps first.")
        ui.table(by_item, key="reconcile_items", file_name=ctx.csv_name("reconciliation-line-items"),
                 columns={"line_item": ui.tables.text("Line item", pinned=True), **GAP_COLUMNS})
    else:
        detail = views["all"]
        ui.table(detail, key="reconcile_detail", file_name=ctx.csv_name("reconciliation"),
                 columns={"day": ui.tables.text("Day"), "project_id": ui.tables.text("Project"), "line_item": ui.tables.text("Line item"), **GAP_COLUMNS})
    missing = ui.load(unpriced_models, ctx.window, ui.CATALOG)
    if not missing.empty:
        st.warning(f"{len(missing):,} model(s) in the usage have no price, so the estimate is low by their cost. Add prices on the Prices page.",
                   icon=":material/money_off:")
        ui.table(
            missing,
            key="reconcile_unpriced",
            file_name=ctx.csv_name("unpriced-models"),
            columns={
                "model": ui.tables.text("Model", pinned=True),
                "reason": ui.tables.text("Why no price", width="large"),
                "unpriced_requests": ui.tables.integer("Requests"),
                "unpriced_tokens": ui.tables.integer("Tokens"),
                "unpriced_events": ui.tables.integer("Usage rows"),
                "in_catalog": ui.tables.flag("In the catalog", help="Known to the catalog (with no price for this unit or date)"),
            },
        )
