"""The Streamlit layer: the only module that imports Streamlit.

Pages call `frame()` first, then core functions through the cached loaders here, then render.
Nothing in this module computes business numbers; it caches, formats and lays out.
"""

from __future__ import annotations

import os
from decimal import Decimal

import streamlit as st

from .catalog import Catalog, load_catalog
from .config import ENV_DATABASE_URL, default_database_url, resolve_database_url
from .demo import build_demo
from .fx import FxTable, load_fx
from .money import format_usd
from .store import Store, open_store

__all__ = ["frame", "get_store", "get_catalog", "get_fx", "secret", "usd", "pct"]


def secret(name: str, default: str | None = None) -> str | None:
    """A value from Streamlit secrets, else the environment, else `default`. Never displayed."""
    try:
        if name in st.secrets:
            return str(st.secrets[name])
    except FileNotFoundError:  # no secrets.toml: StreamlitSecretNotFoundError subclasses it
        pass
    return os.environ.get(name, default)


@st.cache_resource(show_spinner=False)
def _store_for(url: str) -> Store:
    return open_store(url)


def get_store() -> Store:
    """The app's database (secrets/env WALLETA_DATABASE_URL, else data/walleta.db).

    On the default database an empty store is filled with the demo data set on first start,
    so the app always opens on something to explore.
    """
    url = resolve_database_url(secret(ENV_DATABASE_URL))
    store = _store_for(url)
    if url == default_database_url() and not store.has_events():
        with st.spinner("Building the demo data set (first start only)..."):
            build_demo(store, get_catalog())
    return store


@st.cache_resource(show_spinner=False)
def get_catalog() -> Catalog:
    """The price catalog with local overrides (cached for the process)."""
    return load_catalog()


@st.cache_resource(show_spinner=False)
def get_fx() -> FxTable:
    """The FX table used to convert revenue to USD."""
    return load_fx()


def frame(title: str, icon: str = ":material/monitoring:") -> None:
    """Page config, title and the shared sidebar; call first on every page."""
    st.set_page_config(page_title=f"{title} · Walleta", page_icon=icon, layout="wide")
    st.title(title)
    with st.sidebar:
        st.caption("Walleta: AI profitability explorer")


def usd(pico: int | None, places: int = 2) -> str:
    """Pico-dollars as '$1,234.56' for display (the one place money becomes text)."""
    return format_usd(pico, places)


def pct(fraction: Decimal | None, places: int = 1) -> str:
    """A fraction as '61.2%'; None -> 'n/a'."""
    return "n/a" if fraction is None else f"{fraction * 100:.{places}f}%"
