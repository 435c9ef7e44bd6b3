"""Walleta: Reconciliation."""

import streamlit as st

from walleta import ui

with ui.page("Reconciliation", ":material/balance:") as ctx:
    st.info("Coming soon.")
