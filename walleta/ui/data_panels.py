"""The Data page's panels: CSV uploads with their validation report, OpenAI and Stripe imports
with progress, customer matching. Each panel calls the importers of the core; keys typed here
stay in this session's state only and are never written, logged or shown back.
"""

from __future__ import annotations

import streamlit as st

from .frame import PageContext
from .sources import set_mode

__all__ = ["uploads", "openai_import", "stripe_import", "matching", "read_only_notice"]


def read_only_notice(key: str) -> None:
    """Explain that the demo is not imported into, and offer the two modes that are."""
    st.info(
        "The demo data set is read-only. To bring in your own data, switch to **Uploaded CSVs only** "
        "(nothing saved) or **Database**.",
        icon=":material/lock:",
    )
    left, right, _ = st.columns([1, 1, 2])
    if left.button("Use uploaded CSVs only", key=f"{key}_to_session", icon=":material/upload_file:"):
        set_mode("session")
        st.rerun()
    if right.button("Use the database", key=f"{key}_to_database", icon=":material/database:"):
        set_mode("database")
        st.rerun()


def uploads(ctx: PageContext, *, read_only: bool) -> None:
    """Usage, revenue and customer-mapping CSV uploads."""
    if read_only:
        read_only_notice("uploads")
        return
    st.info("CSV import is not available in this build yet.", icon=":material/hourglass_empty:")


def openai_import(ctx: PageContext, *, read_only: bool) -> None:
    """Import usage and billed costs from the OpenAI organization APIs."""
    if read_only:
        read_only_notice("openai")
        return
    st.info("OpenAI import is not available in this build yet.", icon=":material/hourglass_empty:")


def stripe_import(ctx: PageContext, *, read_only: bool) -> None:
    """Import customers, invoices, credit notes and subscriptions from Stripe."""
    if read_only:
        read_only_notice("stripe")
        return
    st.info("Stripe import is not available in this build yet.", icon=":material/hourglass_empty:")


def matching(ctx: PageContext, *, read_only: bool) -> None:
    """Confirm proposed customer matches and edit the mapping."""
    if read_only:
        read_only_notice("matching")
        return
    st.info("Customer matching is not available in this build yet.", icon=":material/hourglass_empty:")
