"""Walleta: Pricing simulator."""

import streamlit as st

from walleta import ui

with ui.page("Pricing simulator", ":material/calculate:") as ctx:
    st.info("Coming soon.")
