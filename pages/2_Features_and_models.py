"""Walleta: Features & models."""

import streamlit as st

from walleta import ui

with ui.page("Features & models", ":material/category:") as ctx:
    st.info("Coming soon.")
