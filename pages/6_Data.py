"""Walleta Data: choose where the numbers come from, bring data in, map customers."""

import streamlit as st

from walleta import ui
from walleta.data_status import import_history
from walleta.periods import Period
from walleta.ui import data_panels

SOURCE_HELP = {
    "demo": "A fictional AI SaaS: 200 customers on four plans over twelve months, with usage, revenue and refunds. "
    "Explore every page before connecting anything.",
    "database": "Your usage log database (`WALLETA_DATABASE_URL` in secrets or the environment, else the local "
    "`data/walleta.db`). Imports below are saved there.",
    "session": "Nothing is saved: files uploaded and API imports run here live in this browser session's memory and "
    "are gone when you close the tab. No database needed.",
}


def _choose_source() -> str:
    mode = ui.current_mode()
    st.session_state["_w_source"] = mode
    st.radio(
        "Data source",
        list(ui.MODES),
        format_func=lambda m: ui.MODES[m],
        key="_w_source",
        horizontal=True,
        on_change=lambda: ui.set_mode(st.session_state["_w_source"]),
    )
    st.caption(SOURCE_HELP[mode])
    return mode


def _coverage_metrics(ctx: ui.PageContext) -> None:
    cov = ctx.coverage
    usage, span, customers, revenue = st.columns(4)
    usage.metric("Usage rows", ui.count(cov.events), help=f"{cov.requests:,} requests")
    span.metric(
        "Usage months",
        Period(cov.first_month, cov.last_month).label if cov.has_usage else "none",
        help=f"From {cov.first_day} to {cov.last_day} (UTC)" if cov.has_usage else None,
    )
    customers.metric("Customers", ui.count(max(cov.customers, cov.usage_customers)))
    revenue.metric("Revenue entries", ui.count(cov.revenue_entries))
    if cov.unattributed_requests:
        st.info(
            f"{cov.unattributed_requests:,} requests are not mapped to a customer yet: they count in totals as "
            "“(unattributed)”. Map projects, keys or users on the Customer matching tab.",
            icon=":material/person_search:",
        )


with ui.page("Data", ":material/database:", needs_usage=False) as ctx:
    mode = _choose_source()
    if mode == "database":
        st.caption(f"Database: `{ctx.store.url}`" + ("" if ui.database_configured() else " (local file; set `WALLETA_DATABASE_URL` for PostgreSQL)"))
    if mode == "session" and ctx.coverage.is_empty is False:
        if st.button("Clear uploaded data", icon=":material/delete:", key="clear_session"):
            ui.reset_session_store()
            st.rerun()
    _coverage_metrics(ctx)

    upload_tab, openai_tab, stripe_tab, matching_tab, history_tab = st.tabs(
        ["Upload CSVs", "OpenAI API", "Stripe API", "Customer matching", "Import history"]
    )
    read_only = mode == "demo"
    with upload_tab:
        data_panels.uploads(ctx, read_only=read_only)
    with openai_tab:
        data_panels.openai_import(ctx, read_only=read_only)
    with stripe_tab:
        data_panels.stripe_import_panel(ctx, read_only=read_only)
    with matching_tab:
        data_panels.matching(ctx, read_only=read_only)
    with history_tab:
        runs = ui.load(import_history, 100)
        if runs.empty:
            st.caption("No imports yet. Upload CSVs or import from the OpenAI or Stripe API on the tabs above; each run is listed here.")
        else:
            ui.table(
                runs,
                key="import_history",
                file_name="walleta-imports.csv",
                columns={
                    "id": ui.tables.integer("#"),
                    "source": ui.tables.text("Source"),
                    "kind": ui.tables.text("Kind"),
                    "status": ui.tables.text("Status"),
                    "started": ui.tables.date("Started (UTC)"),
                    "finished": ui.tables.date("Finished (UTC)"),
                    "rows_read": ui.tables.integer("Rows read"),
                    "rows_imported": ui.tables.integer("Imported"),
                    "rows_rejected": ui.tables.integer("Rejected"),
                    "message": ui.tables.text("Message"),
                },
            )
