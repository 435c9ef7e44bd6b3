"""Walleta: Data."""

import streamlit as st

from walleta import ui

with ui.page("Data", ":material/database:") as ctx:
    st.info("Coming soon.")
