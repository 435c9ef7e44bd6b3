"""Walleta: Customers."""

import streamlit as st

from walleta import ui

with ui.page("Customers", ":material/groups:") as ctx:
    st.info("Coming soon.")
