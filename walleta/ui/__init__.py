"""The Streamlit layer: the only package that imports Streamlit.

Pages call `page()` first, then core functions through `load()`/`compute()`, then draw with the
chart and table helpers here. Nothing in this package computes business numbers; it caches,
formats and lays out.

- `frame`: page config, access gate, sidebar (menu, data source, period, filters), error boundary
- `sources`: demo / database / in-memory session store, secrets, data version
- `cache`: `load(fn, ...)` and `compute(fn, ...)`, cached on the store's data version
- `tables`, `charts`, `fmt`: column presets with CSV download, Altair helpers, money as text
"""

from __future__ import annotations

from . import charts, tables
from .cache import CATALOG, FX, clear_caches, compute, load
from .fmt import count, display_copy, dollars, pct, pct_delta, pct_points, usd, usd_delta
from .frame import ERROR_MESSAGE, PAGES, PageContext, empty_state, go_to_data, guard, page
from .sources import (
    MODES,
    bump_data_version,
    current_mode,
    database_configured,
    database_url,
    get_catalog,
    get_fx,
    get_store,
    reload_catalog,
    reset_session_store,
    secret,
    set_mode,
    source_key,
)
from .tables import download_csv, table

__all__ = [
    "CATALOG",
    "ERROR_MESSAGE",
    "FX",
    "MODES",
    "PAGES",
    "PageContext",
    "bump_data_version",
    "charts",
    "clear_caches",
    "compute",
    "count",
    "current_mode",
    "database_configured",
    "database_url",
    "display_copy",
    "dollars",
    "download_csv",
    "empty_state",
    "get_catalog",
    "get_fx",
    "get_store",
    "go_to_data",
    "guard",
    "load",
    "page",
    "pct",
    "pct_delta",
    "pct_points",
    "reload_catalog",
    "reset_session_store",
    "secret",
    "set_mode",
    "source_key",
    "table",
    "tables",
    "usd",
    "usd_delta",
]
