"""Walleta: Trends."""

import streamlit as st

from walleta import ui

with ui.page("Trends", ":material/trending_up:") as ctx:
    st.info("Coming soon.")
