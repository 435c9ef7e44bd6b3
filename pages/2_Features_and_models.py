"""Walleta Features & models: where the AI cost goes, revenue allocated to features by a stated
rule, cost per request, token classes, and margin per plan."""

from decimal import Decimal, InvalidOperation

import pandas as pd
import streamlit as st

from walleta import ui
from walleta.analytics.breakdowns import Allocation, feature_breakdown, model_breakdown, plan_breakdown

RULES = {
    "cost_share": "By each customer's AI cost per feature",
    "request_share": "By each customer's requests per feature",
    "weights": "By fixed weights I choose",
}
TOKEN_CLASS_COLORS = {"Uncached input": "#0F766E", "Cached input": "#5EEAD4", "Output (visible)": "#F59E0B", "Reasoning": "#FCD34D"}
USAGE_COLUMNS = {
    **ui.tables.standard("ai_cost_pico"),
    "cost_share_pct": ui.tables.pct_points("Share of cost"),
    **ui.tables.standard("requests"),
    "cost_per_request_pico": ui.tables.money("Cost per request", precision=5),
    **ui.tables.standard("total_tokens"),
    "input_tokens": ui.tables.integer("Input tokens"),
    "cached_input_tokens": ui.tables.integer("Cached input"),
    "output_tokens": ui.tables.integer("Output tokens"),
    "reasoning_tokens": ui.tables.integer("Reasoning"),
    **ui.tables.standard("unpriced_requests"),
}


def _allocation(features: list[str]) -> Allocation:
    rule = st.radio("Allocate revenue to features", list(RULES), format_func=RULES.get, horizontal=True, key="features_rule")
    if rule != "weights":
        return Allocation(rule)
    saved = st.session_state.get("features_weights_saved") or {f: "1" for f in features}
    table = pd.DataFrame({"feature": features, "weight": [saved.get(f, "0") for f in features]})
    edited = st.data_editor(
        table, key="features_weights", hide_index=True, disabled=["feature"],
        column_config={"feature": st.column_config.TextColumn("Feature"), "weight": st.column_config.TextColumn("Weight")},
    )
    weights: dict[str, Decimal] = {}
    for feature, text in zip(edited["feature"], edited["weight"]):
        try:
            weights[feature] = Decimal(str(text or "0").strip())
        except InvalidOperation:
            st.error(f"The weight of {feature} is not a number.", icon=":material/error:")
            st.stop()
    st.session_state["features_weights_saved"] = {f: str(w) for f, w in weights.items()}
    return Allocation("weights", weights)


def _features(ctx: ui.PageContext) -> None:
    features_only = ui.load(feature_breakdown, ctx.window, ui.FX)
    names = [f for f in features_only["feature"] if not str(f).startswith("(")]
    allocation = _allocation(names)
    frame = ui.load(feature_breakdown, ctx.window, ui.FX, allocation) if allocation.rule != "cost_share" else features_only
    if frame.empty:
        ui.empty_state(ctx, "No feature usage in this period. Choose another period in the sidebar.")
        return
    st.caption(f"Revenue allocation: {frame['allocation_rule'].iloc[0]}. Every row adds up to the period's revenue.")
    ui.charts.show(ui.charts.paired_hbars(frame, key="feature", title="Feature", series={"Allocated revenue": "allocated_revenue_pico", "AI cost": "ai_cost_pico"}))
    ui.table(
        frame,
        key="features_table",
        file_name=ctx.csv_name("features"),
        columns={
            "feature": ui.tables.text("Feature", pinned=True),
            "allocated_revenue_pico": ui.tables.money("Allocated revenue"),
            **ui.tables.standard("margin_pico", "margin_pct"),
            **USAGE_COLUMNS,
        },
    )


def _models(ctx: ui.PageContext) -> None:
    frame = ui.load(model_breakdown, ctx.window)
    if frame.empty:
        ui.empty_state(ctx, "No model usage in this period. Choose another period in the sidebar.")
        return
    shown = ui.display_copy(frame)
    chart = ui.charts.hbars(
        shown, y="model", x="ai_cost_pico", x_title="AI cost",
        tooltips=[ui.charts.tip("model", "Model"), ui.charts.tip("ai_cost_pico", "AI cost", "money"),
                  ui.charts.tip("cost_per_request_pico", "Per request", "small_money"), ui.charts.tip("requests", "Requests", "int")],
    )
    ui.charts.show(chart)
    ui.table(
        frame,
        key="models_table",
        file_name=ctx.csv_name("models"),
        columns={"model": ui.tables.text("Model", pinned=True), **USAGE_COLUMNS, "price_status": ui.tables.text("Priced")},
    )
    st.markdown("**Token classes** · cached input is part of input, reasoning is part of output")
    classes = ui.charts.long_frame(
        frame,
        "model",
        {
            "Uncached input": frame["input_tokens"] - frame["cached_input_tokens"],
            "Cached input": "cached_input_tokens",
            "Output (visible)": frame["output_tokens"] - frame["reasoning_tokens"],
            "Reasoning": "reasoning_tokens",
        },
        label="class",
        value="tokens",
    )
    chart = ui.charts.stacked_hbars(
        classes, y="model", x="tokens", color="class", colors=TOKEN_CLASS_COLORS, x_title="Tokens", y_order=list(frame["model"]),
        tooltips=[ui.charts.tip("model", "Model"), ui.charts.tip("class", "Class"), ui.charts.tip("tokens", "Tokens", "int")],
    )
    ui.charts.show(chart)


def _plans(ctx: ui.PageContext) -> None:
    frame = ui.load(plan_breakdown, ctx.window, ui.FX)
    if frame.empty:
        ui.empty_state(ctx, "No plans in this period: plans come from the customers table (Data page).")
        return
    ui.table(
        frame,
        key="plans_table",
        file_name=ctx.csv_name("plans"),
        columns={
            "plan": ui.tables.text("Plan", pinned=True),
            **ui.tables.standard(*ui.tables.MARGIN_GROUP, "cost_pct_of_revenue"),
            "ai_cost_per_customer_pico": ui.tables.money("AI cost per customer"),
            **ui.tables.standard("requests"),
            "unconverted_revenue": ui.tables.text("Not converted"),
        },
    )
    shown = frame[frame["margin_pct"].notna()].assign(margin=[float(v) for v in frame.loc[frame["margin_pct"].notna(), "margin_pct"]])
    if not shown.empty:
        alt = ui.charts.alt
        chart = ui.charts.hbars(
            shown, y="plan", x="margin", x_title="Margin %", x_format=".0f", sort=None,
            color="plan", tooltips=[ui.charts.tip("plan", "Plan"), ui.charts.tip("margin", "Margin %", "points")],
        ).encode(x=alt.X("margin:Q", title="Margin %", axis=alt.Axis(labelExpr=ui.charts.POINTS_AXIS)))
        ui.charts.show(chart)


with ui.page("Features & models", ":material/category:") as ctx:
    st.caption(f"{ctx.period.label} · AI cost by what your product does (features) and what it runs on (models).")
    features_tab, models_tab, plans_tab = st.tabs(["Features", "Models and token classes", "Plans"])
    with features_tab:
        _features(ctx)
    with models_tab:
        _models(ctx)
    with plans_tab:
        _plans(ctx)
