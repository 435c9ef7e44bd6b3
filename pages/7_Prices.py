"""Walleta Prices: the dated price catalog, local overrides, and models that have no price."""

from datetime import date

import streamlit as st

from walleta import ui
from walleta.catalog import PRICE_COLUMNS
from walleta.errors import CatalogError
from walleta.price_overrides import override_path, read_overrides, save_overrides
from walleta.pricing_job import reprice
from walleta.prices_report import model_usage, prices_in_force, unpriced_models

PRICE_FIELDS = ["input_per_1m", "cached_input_per_1m", "output_per_1m", "batch_input_per_1m", "batch_output_per_1m", "per_unit_price"]
CATALOG_COLUMNS = {
    "model": ui.tables.text("Model", pinned=True),
    "unit": ui.tables.text("Unit", help="token = text tokens; *_flex / *_priority = service tiers; image_*, audio_* = per unit"),
    "effective_from": ui.tables.text("Effective from", help="Empty: the price has no start date (always)"),
    "input_per_1m": ui.tables.text("Input / 1M"),
    "cached_input_per_1m": ui.tables.text("Cached input / 1M"),
    "output_per_1m": ui.tables.text("Output / 1M"),
    "batch_input_per_1m": ui.tables.text("Batch input / 1M"),
    "batch_output_per_1m": ui.tables.text("Batch output / 1M"),
    "per_unit_price": ui.tables.text("Per unit", help="Per image, audio minute, tool call; per 1M for 1m_* units"),
    "origin": ui.tables.text("Origin", help="bundled catalog, or your override file"),
    "source": ui.tables.text("Source"),
}


def _with_dollar_signs(frame):
    """Exact price text shown as '$1.25' (display copy only)."""
    shown = frame.copy()
    for name in PRICE_FIELDS:
        shown[name] = [f"${v}" if v else "" for v in shown[name]]
    return shown


def _reprice_button(key: str) -> None:
    if st.button("Re-price stored usage with the current catalog", key=key, icon=":material/refresh:"):
        with st.spinner("Re-pricing every stored event and rebuilding the rollups…", show_time=True):
            changed = reprice(ui.get_store(), ui.get_catalog())
        ui.bump_data_version()
        st.session_state["prices_flash"] = f"Re-priced: {changed:,} stored rows changed cost; every page now uses the new prices."
        st.rerun()


with ui.page("Prices", ":material/sell:", needs_usage=False) as ctx:
    catalog = ui.get_catalog()
    overrides_at = override_path()
    st.caption(
        f"Catalog as of **{catalog.as_of}** · {len(catalog.rows):,} price rows for {len(catalog.models):,} models · "
        f"overrides: `{overrides_at.name}` ({'in use' if catalog.override_path else 'none yet'})"
    )

    flash = st.session_state.pop("prices_flash", None)
    if flash:
        st.success(flash, icon=":material/check_circle:")
    unpriced = ui.load(unpriced_models, ui.CATALOG) if ctx.coverage.has_usage else None
    if unpriced is not None and not unpriced.empty:
        fixable = int(unpriced["now_priced"].sum())
        st.warning(
            f"{len(unpriced):,} model(s) in your usage have no price: {int(unpriced['unpriced_requests'].sum()):,} requests are "
            "left out of AI cost (never counted as $0). Add a price on the Overrides tab, then re-price.",
            icon=":material/money_off:",
        )
        shown = unpriced.assign(status=["price added: re-price to apply" if p else "needs a price" for p in unpriced["now_priced"]])
        ui.table(
            shown,
            key="unpriced_models",
            file_name="walleta-unpriced-models.csv",
            columns={
                "model": ui.tables.text("Model"),
                "status": ui.tables.text("Status"),
                "unpriced_requests": ui.tables.integer("Requests"),
                "unpriced_tokens": ui.tables.integer("Tokens"),
                **ui.tables.standard("customers", "first_month", "last_month"),
            },
        )
        if fixable:
            _reprice_button("reprice_unpriced")
    elif ctx.coverage.has_usage:
        st.success("Every model in your usage has a price.", icon=":material/verified:")

    catalog_tab, overrides_tab, usage_tab = st.tabs(["Catalog", "Overrides", "Models in use"])

    with catalog_tab:
        left, middle, right = st.columns([1, 2, 1])
        as_of = left.date_input("Prices in force on", value=date.today(), key="prices_as_of", format="YYYY-MM-DD")
        search = middle.text_input("Search models", key="prices_search", placeholder="e.g. gpt-5.4 or embedding")
        history = right.toggle("Show every dated row", key="prices_history", help="All effective dates, not only the rows in force")
        frame = catalog.to_frame() if history else ui.compute(prices_in_force, ui.CATALOG, as_of.isoformat())
        if search:
            frame = frame[frame["model"].str.contains(search.strip().lower(), regex=False)]
        st.caption(f"{len(frame):,} rows · prices in USD; token prices per 1M tokens")
        ui.table(_with_dollar_signs(frame), key="catalog", file_name=f"walleta-prices-{as_of.isoformat()}.csv", columns=CATALOG_COLUMNS)

    with overrides_tab:
        st.markdown(
            "Rows here replace bundled rows with the same **model, unit and effective date**, and add new ones "
            "(a model the catalog does not know, a negotiated price, a new price from a date). Prices are USD, "
            "token prices per 1M tokens; leave `effective_from` empty for \"always\"."
        )
        current = read_overrides(overrides_at)
        units = sorted({r.unit for r in catalog.rows})
        edited = st.data_editor(
            current,
            key="overrides_editor",
            num_rows="dynamic",
            hide_index=True,
            column_order=list(PRICE_COLUMNS),
            column_config={
                "model": st.column_config.TextColumn("model", required=True),
                "provider": st.column_config.TextColumn("provider", default="openai"),
                "unit": st.column_config.SelectboxColumn("unit", options=units, required=True, default="token"),
                "effective_from": st.column_config.TextColumn("effective_from", help="YYYY-MM-DD, or empty"),
                **{name: st.column_config.TextColumn(name, help="USD, e.g. 1.25") for name in PRICE_FIELDS},
                "source": st.column_config.TextColumn("source", default="override"),
            },
        )
        save, download = st.columns([1, 3])
        if save.button("Save overrides", type="primary", key="save_overrides", icon=":material/save:"):
            try:
                written = save_overrides(edited, overrides_at)
            except CatalogError as exc:
                st.error(f"Not saved: {exc}", icon=":material/error:")
            else:
                ui.reload_catalog()
                st.success(
                    f"Saved {len(read_overrides(written)):,} override row(s) to `{written.name}`. "
                    "Re-price stored usage to apply them to history.",
                    icon=":material/check_circle:",
                )
        with download:
            ui.download_csv(current, key="overrides_file", file_name="prices.override.csv", label="Download the override file")
        if ctx.coverage.has_usage:
            _reprice_button("reprice_after_save")
        st.caption(
            f"Saved to `{overrides_at}`. On Streamlit Community Cloud the disk is not kept across restarts: "
            "download the file and commit it as `data/prices.override.csv`."
        )

    with usage_tab:
        if not ctx.coverage.has_usage:
            ui.empty_state(ctx, "No usage yet, so no model is in use. Import usage on the Data page.")
        else:
            used = ui.load(model_usage)
            used = used.assign(catalog_model=[catalog.resolve(m) or "(no price)" for m in used["model"]])
            ui.table(
                used,
                key="models_in_use",
                file_name="walleta-models-in-use.csv",
                columns={
                    "model": ui.tables.text("Model as reported"),
                    "catalog_model": ui.tables.text("Priced as"),
                    **ui.tables.standard("requests", "tokens", "cost_pico", "unpriced_requests"),
                },
            )
