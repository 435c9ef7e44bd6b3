"""The Pricing simulator page's parts: the designs kept in this session, the plan builder form,
cached runs of the simulator core, and the result views.

Designs are kept as scenario JSON text in `st.session_state["sim_designs"]` (the text is also the
cache key of every run). Every number comes from `walleta.simulator`: `simulate`, `solve`,
`margin_curve`, `bootstrap`; this module only asks for inputs and lays results out.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from ..config import DATA_DIR
from ..errors import InputError
from ..fx import FxTable
from ..plan_builder import MECHANISMS, Extras, PlanRow, Tier, build_scenario
from ..simulator import Scenario, SimulationResult, simulate
from ..simulator.loader import load_usage
from ..simulator.plans import decode_plan_bytes, dumps_scenario, loads_scenario, scenario_from_dict
from ..simulator.ranges import METHOD as RANGES_METHOD
from ..simulator.ranges import bootstrap
from ..simulator.report import customers_frame
from ..simulator.solver import QUANTILES, default_knob, knob_for, margin_curve, solve
from ..simulator.stripe_export import scenario_prices, scenario_summary
from ..store import Store
from . import charts, tables
from .cache import FX, load
from .fmt import pct, usd

__all__ = [
    "MAX_DESIGNS",
    "DESIGNS_KEY",
    "designs",
    "add_design",
    "examples",
    "builder",
    "run",
    "comparison",
    "design_detail",
    "solver_panel",
]

MAX_DESIGNS = 4
DESIGNS_KEY = "sim_designs"
PLANS_DIR = DATA_DIR / "plans"


# -- designs in the session ------------------------------------------------------------------


def designs() -> list[str]:
    """Scenario JSON texts, in the order they were added."""
    return list(st.session_state.get(DESIGNS_KEY, []))


def scenario_of(text: str) -> Scenario:
    """The Scenario stored as JSON text."""
    return loads_scenario(text, fmt="json")


def add_design(scenario: Scenario) -> str | None:
    """Keep a design (replacing one of the same name); returns a message when refused."""
    text = dumps_scenario(scenario, fmt="json")
    kept = [t for t in designs() if scenario_of(t).name != scenario.name]
    if len(kept) >= MAX_DESIGNS:
        return f"Compare up to {MAX_DESIGNS} designs at a time: remove one first."
    st.session_state[DESIGNS_KEY] = [*kept, text]
    return None


def remove_design(index: int) -> None:
    """Forget the design at `index`."""
    kept = designs()
    if 0 <= index < len(kept):
        kept.pop(index)
    st.session_state[DESIGNS_KEY] = kept


def examples() -> dict[str, Path]:
    """Bundled example designs (data/plans/*.yaml) by their scenario name."""
    found: dict[str, Path] = {}
    for path in sorted(PLANS_DIR.glob("*.yaml")):
        try:
            found[loads_scenario(path.read_text(encoding="utf-8")).name] = path
        except InputError:
            continue
    return found


# -- cached runs of the core -----------------------------------------------------------------


def _run(store: Store, text: str, start: str, end: str, fx: FxTable) -> SimulationResult:
    return simulate(scenario_of(text), load_usage(store, start=start, end=end, fx=fx), fx)


def _solve(store: Store, text: str, start: str, end: str, plan: str, path: str, target: str, fx: FxTable) -> pd.DataFrame:
    scenario = scenario_of(text)
    data = load_usage(store, start=start, end=end, fx=fx)
    solution = solve(scenario, data, plan, path, target=Decimal(target), fx=fx)
    # Draw the curve far enough to the right to show where every criterion is reached.
    reached = [v for v in solution.table["value"] if v is not None]
    top = max([solution.current * 2, *(v * Decimal("1.25") for v in reached)], default=Decimal(0))
    step = knob_for(scenario.plan(plan), path).step
    values = sorted({(top * i / 24).quantize(step) for i in range(25)}) if top > 0 else None
    curve = margin_curve(scenario, data, plan, path, fx=fx, target=Decimal(target), values=values)
    return solution.table.assign(current=solution.current, knob=solution.path), curve


def _ranges(store: Store, text: str, start: str, end: str, fx: FxTable) -> pd.DataFrame:
    return bootstrap(_run(store, text, start, end, fx).cells)


def run(text: str, start: str, end: str) -> SimulationResult:
    """The simulation of one design over months start..end (cached until the data change)."""
    return load(_run, text, start, end, FX)


# -- builder ---------------------------------------------------------------------------------

_ROW_FIELDS = {
    "flat": ["base_fee"],
    "allocation": ["base_fee", "included_m_tokens", "overage_per_1m"],
    "credits": ["base_fee", "included_credits", "pack_credits", "pack_price"],
}
_ROW_LABELS = {
    "name": "Plan",
    "base_fee": "Monthly fee ($)",
    "included_m_tokens": "Included tokens (millions)",
    "overage_per_1m": "Overage per 1M tokens ($)",
    "included_credits": "Included credits",
    "pack_credits": "Top-up pack (credits)",
    "pack_price": "Pack price ($)",
}
_DEFAULTS = {
    "Free": {"base_fee": "0", "included_m_tokens": "1", "overage_per_1m": "0", "included_credits": "300"},
    "Starter": {"base_fee": "29", "included_m_tokens": "6", "overage_per_1m": "3", "included_credits": "2500", "pack_credits": "2000", "pack_price": "20"},
    "Pro": {"base_fee": "99", "included_m_tokens": "20", "overage_per_1m": "2.75", "included_credits": "9000", "pack_credits": "2000", "pack_price": "20"},
    "Business": {"base_fee": "499", "included_m_tokens": "100", "overage_per_1m": "2.5", "included_credits": "45000", "pack_credits": "10000", "pack_price": "95"},
}


def _starting_rows(plans: list[str]) -> pd.DataFrame:
    order = list(_DEFAULTS)
    names = sorted(plans, key=lambda p: (order.index(p) if p in order else len(order), p)) or ["Everyone"]
    fields = ["name", *{f for fs in _ROW_FIELDS.values() for f in fs}]
    rows = [{f: (name if f == "name" else _DEFAULTS.get(name, {}).get(f, "")) for f in fields} for name in names]
    return pd.DataFrame(rows, columns=fields).astype(str)


def builder(current_plans: list[str]) -> None:
    """The plan builder: a mechanism, one row per plan, options; adds the design on submit."""
    mechanism = st.selectbox("How customers pay", list(MECHANISMS), format_func=MECHANISMS.get, key="sim_mechanism")
    with st.form("sim_builder", border=False):
        name = st.text_input("Design name", value=MECHANISMS[mechanism].split(" (")[0], key=f"sim_name_{mechanism}")
        rows = tiers = None
        if mechanism in _ROW_FIELDS:
            st.caption("One row per plan. Customers keep their current plan (rows named like it); others get the last row.")
            shown = ["name", *_ROW_FIELDS[mechanism]]
            rows = st.data_editor(
                _starting_rows(current_plans)[shown],
                key=f"sim_rows_{mechanism}",
                num_rows="dynamic",
                hide_index=True,
                column_config={c: st.column_config.TextColumn(_ROW_LABELS[c]) for c in shown},
            )
        elif mechanism == "tiers":
            st.caption("One metered price on tokens for everybody, with Stripe's tier semantics. Leave the last tier's limit empty.")
            tiers = st.data_editor(
                pd.DataFrame(
                    [
                        {"up_to_m_tokens": "1", "price_per_1m": "0", "flat_fee": "19"},
                        {"up_to_m_tokens": "20", "price_per_1m": "3", "flat_fee": ""},
                        {"up_to_m_tokens": "", "price_per_1m": "2.5", "flat_fee": ""},
                    ]
                ),
                key="sim_tiers",
                num_rows="dynamic",
                hide_index=True,
                column_config={
                    "up_to_m_tokens": st.column_config.TextColumn("Up to (millions of tokens)"),
                    "price_per_1m": st.column_config.TextColumn("Price per 1M tokens ($)"),
                    "flat_fee": st.column_config.TextColumn("Flat fee for the tier ($)"),
                },
            )
        extras = _extras_fields(mechanism)
        submitted = st.form_submit_button("Add this design", type="primary", icon=":material/add:")
    if submitted:
        _submit(name, mechanism, rows, tiers, extras)


def _extras_fields(mechanism: str) -> Extras:
    left, middle, right = st.columns(3)
    values: dict[str, str] = {}
    if mechanism == "payg":
        values["markup_pct"] = left.text_input("Markup on AI cost (%)", value="60", key="sim_markup")
    if mechanism == "tiers":
        values["tiers_mode"] = left.radio("Tiers", ["graduated", "volume"], horizontal=True, key="sim_tiers_mode")
    if mechanism == "credits":
        values["credit_value_usd"] = left.text_input("One credit is worth ($ of AI cost)", value="0.01", key="sim_credit_value")
        values["burn_multiplier"] = left.text_input("Credits burn at AI cost ×", value="2", key="sim_burn")
    if mechanism in ("flat", "allocation", "credits"):
        values["assignment"] = left.selectbox(
            "Who gets which plan",
            ["current_plan", "cheapest", "single"],
            format_func={"current_plan": "Their current plan", "cheapest": "The cheapest plan for them", "single": "The first plan, everybody"}.get,
            key="sim_assignment",
        )
    cap = middle.selectbox(
        "Hard cap per month",
        ["", "tokens", "ai_cost_usd"],
        format_func={"": "No cap", "tokens": "Tokens (millions)", "ai_cost_usd": "AI cost ($)"}.get,
        key="sim_cap_measure",
    )
    values["cap_measure"] = cap
    values["cap_limit"] = middle.text_input("Cap limit", value="", key="sim_cap_limit", disabled=False)
    values["minimum"] = right.text_input("Minimum charge per month ($)", value="", key="sim_minimum")
    return Extras(**values)


def _frame_rows(frame: pd.DataFrame | None, kind: type) -> list[Any]:
    if frame is None:
        return []
    records = frame.astype(object).where(frame.notna(), "").to_dict("records")
    names = set(kind.__dataclass_fields__)
    return [kind(**{k: str(v) for k, v in record.items() if k in names}) for record in records if any(str(v).strip() for v in record.values())]


def _submit(name: str, mechanism: str, rows: pd.DataFrame | None, tiers: pd.DataFrame | None, extras: Extras) -> None:
    try:
        data = build_scenario(name, mechanism, _frame_rows(rows, PlanRow), tiers=_frame_rows(tiers, Tier), extras=extras)
        scenario = scenario_from_dict(data)
    except InputError as exc:
        st.error(f"Not added: {exc}", icon=":material/error:")
        return
    refused = add_design(scenario)
    if refused:
        st.warning(refused)
    else:
        st.toast(f"Added “{scenario.name}”", icon=":material/check_circle:")


def add_from_examples() -> None:
    """Pick bundled example designs."""
    found = examples()
    chosen = st.multiselect("Example designs", list(found), key="sim_examples", placeholder="Choose examples")
    if st.button("Add examples", key="sim_add_examples", disabled=not chosen, icon=":material/library_add:"):
        for name in chosen:
            refused = add_design(loads_scenario(found[name].read_text(encoding="utf-8")))
            if refused:
                st.warning(refused)
                break


def add_from_file() -> None:
    """Load a design from a YAML or JSON plan file."""
    upload = st.file_uploader("Plan file (YAML or JSON)", type=["yaml", "yml", "json"], key="sim_plan_file")
    if upload is not None and st.button("Add this file", key="sim_add_file", icon=":material/upload:"):
        fmt = "json" if upload.name.lower().endswith(".json") else "yaml"
        try:
            scenario = loads_scenario(decode_plan_bytes(upload.getvalue()), fmt=fmt)
        except InputError as exc:
            st.error(f"{upload.name}: {exc}", icon=":material/error:")
            return
        refused = add_design(scenario)
        if refused:
            st.warning(refused)


def design_list() -> None:
    """The designs being compared, each removable."""
    kept = designs()
    if not kept:
        return
    for index, text in enumerate(kept):
        scenario = scenario_of(text)
        left, right = st.columns([6, 1], vertical_alignment="center")
        left.markdown(f"**{scenario.name}** · {len(scenario.plans)} plan(s) · assigned by {scenario.assignment.method.replace('_', ' ')}")
        if right.button("Remove", key=f"sim_remove_{index}", icon=":material/close:", type="tertiary"):
            remove_design(index)
            st.rerun()


# -- results ---------------------------------------------------------------------------------


def _total_row(result: SimulationResult) -> pd.Series:
    totals = result.totals
    return totals[totals["plan"] == "TOTAL"].iloc[0]


def comparison(results: dict[str, SimulationResult]) -> pd.DataFrame:
    """One row for today and one per design: revenue, AI cost, margin, margin %, change, movers."""
    first = _total_row(next(iter(results.values())))
    rows = [
        {
            "design": "Today (actual revenue)",
            "revenue_pico": int(first["baseline_revenue_pico"]),
            "ai_cost_pico": int(first["baseline_cost_pico"]),
            "margin_pico": int(first["baseline_margin_pico"]),
            "margin_pct": first["baseline_margin_pct"],
            "revenue_change_pico": None,
            "pays_more": None,
            "pays_less": None,
            "capped_customers": None,
        }
    ]
    for name, result in results.items():
        total = _total_row(result)
        rows.append(
            {
                "design": name,
                "revenue_pico": int(total["revenue_pico"]),
                "ai_cost_pico": int(total["ai_cost_pico"]),
                "margin_pico": int(total["margin_pico"]),
                "margin_pct": total["margin_pct"],
                "revenue_change_pico": int(total["revenue_change_pico"]),
                "pays_more": int(total["pays_more"]),
                "pays_less": int(total["pays_less"]),
                "capped_customers": int(total["capped_customers"]),
            }
        )
    frame = pd.DataFrame(rows)
    for name in ("pays_more", "pays_less", "capped_customers"):
        frame[name] = frame[name].astype("Int64")
    return frame


COMPARISON_COLUMNS = {
    "design": tables.text("Design", pinned=True),
    "revenue_pico": tables.money("Revenue"),
    "ai_cost_pico": tables.money("AI cost"),
    "margin_pico": tables.money("Gross margin"),
    "margin_pct": tables.percent("Margin %"),
    "revenue_change_pico": tables.money("Revenue vs today"),
    "pays_more": tables.integer("Customers paying more"),
    "pays_less": tables.integer("Customers paying less"),
    "capped_customers": tables.integer("Customers capped"),
}


def comparison_chart(frame: pd.DataFrame) -> None:
    """Margin % per design, today first."""
    shown = frame.assign(margin=[None if v is None else float(v) for v in frame["margin_pct"]])
    shown = shown.assign(kind=["today" if i == 0 else "design" for i in range(len(shown))])
    chart = charts.hbars(
        shown,
        y="design",
        x="margin",
        x_title="Gross margin %",
        x_format=charts.PCT_AXIS,
        color="kind",
        colors={"today": charts.COLORS["muted"], "design": charts.COLORS["margin"]},
        tooltips=[charts.tip("design", "Design"), charts.tip("margin", "Margin %", "pct")],
        sort=None,
    )
    charts.show(chart)


def design_detail(result: SimulationResult, key: str) -> None:
    """Per-plan totals, winners and losers, caps, ranges, notes and downloads for one design."""
    for note in result.notes:
        st.caption(f":material/info: {note}")
    st.markdown("**By plan**")
    tables.table(
        result.totals,
        key=f"{key}_plans",
        file_name="walleta-simulation-plans.csv",
        columns={
            "plan": tables.text("Plan"),
            "customers": tables.integer("Customers"),
            "revenue_pico": tables.money("Revenue"),
            "ai_cost_pico": tables.money("AI cost"),
            "margin_pico": tables.money("Margin"),
            "margin_pct": tables.percent("Margin %"),
            "baseline_revenue_pico": tables.money("Revenue today"),
            "baseline_margin_pct": tables.percent("Margin % today"),
            "revenue_change_pico": tables.money("Revenue change"),
            "pays_more": tables.integer("Pay more"),
            "pays_less": tables.integer("Pay less"),
            "capped_customers": tables.integer("Capped"),
        },
    )
    customers = result.customers[result.customers["baseline_known"]]
    movers = customers.sort_values("revenue_change_pico", ascending=False, kind="stable")
    mover_columns = {
        "customer_id": tables.text("Customer"),
        "current_plan": tables.text("Plan today"),
        "plan": tables.text("New plan"),
        "baseline_revenue_pico": tables.money("Pays today"),
        "revenue_pico": tables.money("Would pay"),
        "revenue_change_pico": tables.money("Change"),
        "margin_pct": tables.percent("New margin %"),
    }
    more, less = st.columns(2)
    with more:
        st.markdown("**Pay the most more**")
        tables.table(movers[movers["revenue_change_pico"] > 0].head(10), key=f"{key}_winners", columns=mover_columns, file_name="walleta-pay-more.csv",
                     empty="Nobody pays more under this design.")
    with less:
        st.markdown("**Pay the most less**")
        tables.table(movers[movers["revenue_change_pico"] < 0].iloc[::-1].head(10), key=f"{key}_losers", columns=mover_columns, file_name="walleta-pay-less.csv",
                     empty="Nobody pays less under this design.")
    capped = result.customers[result.customers["capped_months"] > 0]
    if not capped.empty:
        st.markdown(f"**Hit the hard cap** · {len(capped):,} customers: usage beyond the cap is not served (cost saved, revenue lost)")
        tables.table(
            capped.sort_values("unserved_cost_pico", ascending=False).head(20),
            key=f"{key}_caps",
            file_name="walleta-capped.csv",
            columns={
                "customer_id": tables.text("Customer"),
                "plan": tables.text("Plan"),
                "capped_months": tables.integer("Months capped"),
                "first_cap": tables.text("First hit"),
                "unserved_cost_pico": tables.money("AI cost saved"),
                "revenue_lost_pico": tables.money("Revenue lost"),
            },
        )


def ranges_panel(text: str, start: str, end: str) -> None:
    """Bootstrap intervals for the design's totals."""
    frame = load(_ranges, text, start, end, FX)
    names = {"revenue_pico": "Revenue", "ai_cost_pico": "AI cost", "margin_pico": "Gross margin", "margin_pct": "Margin %"}
    cols = st.columns(len(frame))
    for column, row in zip(cols, frame.itertuples()):
        if row.measure == "margin_pct":
            value, low, high = pct(row.estimate), pct(row.low), pct(row.high)
        else:
            value, low, high = usd(int(row.estimate)), usd(int(row.low)), usd(int(row.high))
        column.metric(names.get(row.measure, row.measure), value, border=True)
        column.caption(f"{int(row.level * 100)}% range: {low} to {high}")
    st.caption(f"How: {RANGES_METHOD}. It shows how much the result rests on which months happened; it does not model customers reacting to new prices.")


def downloads(result: SimulationResult, text: str, key: str) -> None:
    """Per-customer results, the plan file and the Stripe prices JSON."""
    scenario = scenario_of(text)
    slug = "".join(ch if ch.isalnum() else "-" for ch in scenario.name.lower()).strip("-") or "design"
    a, b, c, d = st.columns(4)
    with a:
        tables.download_csv(customers_frame(result), key=f"{key}_customers", file_name=f"walleta-{slug}-customers.csv", label="Results per customer (CSV)")
    with b:
        st.download_button("Plan (JSON)", dumps_scenario(scenario, fmt="json"), f"{slug}.json", "application/json", key=f"{key}_json", on_click="ignore", icon=":material/data_object:", type="tertiary")
    with c:
        st.download_button("Plan (YAML)", dumps_scenario(scenario, fmt="yaml"), f"{slug}.yaml", "application/yaml", key=f"{key}_yaml", on_click="ignore", icon=":material/description:", type="tertiary")
    with d:
        st.download_button(
            "Stripe prices (JSON)",
            json.dumps(scenario_prices(scenario), indent=2, default=str),
            f"{slug}-stripe-prices.json",
            "application/json",
            key=f"{key}_stripe",
            on_click="ignore",
            icon=":material/receipt_long:",
            type="tertiary",
        )
    with st.expander("Plan summary"):
        st.text(scenario_summary(scenario))


def solver_panel(text: str, start: str, end: str) -> None:
    """Target-margin solver for one plan's main price, with the margin-vs-price curve."""
    scenario = scenario_of(text)
    left, middle, right = st.columns([2, 2, 3])
    plan_name = left.selectbox("Plan", [p.name for p in scenario.plans], key="sim_solver_plan")
    plan = scenario.plan(plan_name)
    knob = middle.text_input("Price to solve for", value=default_knob(plan), key=f"sim_solver_knob_{plan_name}", help="e.g. base_fee, allocation.overage_per_1m, payg.markup_pct, credits.pack.price")
    target = right.slider("Target gross margin", 0, 95, 60, step=5, format="%d%%", key="sim_solver_target")
    if not st.button("Solve", key="sim_solve", type="primary", icon=":material/target:"):
        st.caption("Finds the smallest price that reaches the target for the whole book, and for the median, p90 and p95 customer, plus break-even.")
        return
    table, curve = load(_solve, text, start, end, plan_name, knob.strip(), str(Decimal(target) / 100), FX)
    current = table["current"].iloc[0]
    st.session_state["sim_solution"] = {"plan": plan_name, "knob": knob, "target": target}
    path = table["knob"].iloc[0]
    shown = table.assign(value_text=[knob_text(path, v) if v is not None else "not reachable" for v in table["value"]])
    cols = st.columns(len(shown))
    for column, row in zip(cols, shown.itertuples()):
        column.metric(row.criterion.capitalize(), row.value_text, help=row.note, border=True)
    st.caption(f"Today: `{path}` = {knob_text(path, current)} on plan {plan_name}. Target {target}% gross margin.")
    _curve_chart(curve, target)
    tables.download_csv(table.drop(columns=["current"]), key="sim_solution", file_name="walleta-solver.csv")


def knob_text(path: str, value: Decimal) -> str:
    """A solver value with its unit: '$149.00', '150%', '2,500 credits', '0.0003¢'."""
    generic = "".join(ch for ch in path if not ch.isdigit()).replace("[]", "")
    if generic == "payg.markup_pct":
        return f"{value:,.2f}%"
    if generic in ("allocation.included",):
        return f"{int(value):,} tokens"
    if generic == "credits.included":
        return f"{int(value):,} credits"
    if generic.startswith("meters."):
        return f"{value}¢" if generic.endswith("unit_amount_decimal") else f"{value:,}¢"
    if generic.startswith("credits.burn"):
        return f"{value} credits"
    suffix = " per 1M" if generic.endswith("per_1m") or generic.startswith("payg.per_1m") else ""
    return f"${value:,.2f}{suffix}"


def _curve_chart(curve: pd.DataFrame, target: int) -> None:
    rows = []
    for _, row in curve.iterrows():
        for label, column in (("Book", "margin_pct"), *[(f"{q} customer", f"{q}_customer_margin_pct") for q in QUANTILES]):
            value = row.get(column)
            if value is not None and not pd.isna(value):
                rows.append({"price": float(row["value"]), "margin": float(value), "who": label})
    if not rows:
        return
    frame = pd.DataFrame(rows)
    chart = charts.line(frame, x="price", y="margin", color="who", x_kind="quantitative", y_format=charts.PCT_AXIS, y_title="Gross margin", points=False,
                        tooltips=[charts.tip("who", "Who"), charts.tip("price", "Price", "float"), charts.tip("margin", "Margin", "pct")])
    rule = charts.alt.Chart(pd.DataFrame({"target": [target / 100]})).mark_rule(strokeDash=[4, 4], color=charts.COLORS["bad"]).encode(y="target:Q")
    charts.show(chart + rule)
