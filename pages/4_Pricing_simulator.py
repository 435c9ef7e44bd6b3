"""Walleta Pricing simulator: re-run each customer's real monthly usage under pricing designs."""

import streamlit as st

from walleta import ui
from walleta.data_status import plans
from walleta.ui import simulator as sim

with ui.page(
    "Pricing simulator",
    ":material/calculate:",
    caption="Re-run every customer's real monthly usage under a pricing design: revenue, AI cost and margin per customer, "
    "who pays more or less than today, and the price that reaches a target margin.",
) as ctx:
    period = ctx.period
    plans_today = ui.load(plans)

    st.subheader("Designs to compare")
    build_tab, examples_tab, file_tab = st.tabs(["Build a design", "Examples", "Load a plan file"])
    with build_tab:
        sim.builder(plans_today)
    with examples_tab:
        sim.add_from_examples()
    with file_tab:
        sim.add_from_file()
    sim.design_list()

    kept = sim.designs()
    if not kept:
        st.info(
            "Add a design above (build one, pick an example or load a plan file) to see what "
            f"{period.label} would have looked like under it.",
            icon=":material/lightbulb:",
        )
        st.stop()

    st.subheader(f"Results · {period.label}")
    results = {sim.scenario_of(text).name: sim.run(text, period.first_month, period.last_month) for text in kept}
    frame = sim.comparison(results)
    ui.table(frame, key="sim_comparison", columns=sim.COMPARISON_COLUMNS, file_name=ctx.csv_name("simulation-summary"))
    sim.comparison_chart(frame)

    st.subheader("One design in detail")
    names = list(results)
    chosen = st.selectbox("Design", names, key="sim_detail_design", index=len(names) - 1)
    text = kept[names.index(chosen)]
    detail_tab, ranges_tab, solver_tab, files_tab = st.tabs(["Winners and losers", "Ranges", "Target-margin solver", "Downloads"])
    with detail_tab:
        sim.design_detail(results[chosen], key="sim_detail")
    with ranges_tab:
        sim.ranges_panel(text, period.first_month, period.last_month)
    with solver_tab:
        sim.solver_panel(text, period.first_month, period.last_month)
    with files_tab:
        sim.downloads(results[chosen], text, key="sim_files")
