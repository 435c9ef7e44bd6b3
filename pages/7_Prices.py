"""Walleta: Prices."""

import streamlit as st

from walleta import ui

with ui.page("Prices", ":material/sell:") as ctx:
    st.info("Coming soon.")
