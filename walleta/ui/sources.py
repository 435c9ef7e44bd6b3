"""Which store the app reads: the demo, the configured database, or this session's memory.

Three modes, chosen on the Data page and kept in `st.session_state["walleta_source"]`:

- ``demo``: a demo data set in its own SQLite file (`data/demo.db`, or
  $WALLETA_DEMO_DATABASE_URL), built on first use; in memory if the folder is read-only.
- ``database``: the usage-log database (secrets/env ``WALLETA_DATABASE_URL``, else
  `data/walleta.db`). Imports from the Data page write here.
- ``session``: "uploaded CSVs only": an in-memory SQLite store held in this browser session,
  filled by the same importers; nothing touches the disk and it is gone when the tab closes.

The default is ``database`` when a database is configured or the local one holds data, else
``demo``, so a fresh clone opens on something to explore.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from dataclasses import dataclass

import streamlit as st

from ..catalog import Catalog, load_catalog
from ..config import DATA_DIR, ENV_DATABASE_URL, default_database_url, resolve_database_url
from ..demo import build_demo
from ..errors import ConfigError
from ..fx import FxTable, load_fx
from ..generations import data_stamp
from ..store import Store, open_store

__all__ = [
    "MODES",
    "DEMO_ENV",
    "secret",
    "database_url",
    "database_configured",
    "demo_url",
    "default_mode",
    "current_mode",
    "set_mode",
    "get_store",
    "source_key",
    "data_version",
    "bump_data_version",
    "reset_session_store",
    "get_catalog",
    "get_fx",
    "reload_catalog",
    "catalog_token",
    "SourceInfo",
    "source_info",
]

MODES: dict[str, str] = {
    "demo": "Demo data",
    "database": "Database",
    "session": "Uploaded CSVs only",
}
MODE_KEY = "walleta_source"
SESSION_STORE_KEY = "walleta_session_store"
SESSION_ID_KEY = "walleta_session_store_id"
BUMP_KEY = "walleta_data_bump"
DEMO_ENV = "WALLETA_DEMO_DATABASE_URL"


def secret(name: str, default: str | None = None) -> str | None:
    """A root-level value from Streamlit secrets, else the environment, else `default`.

    Never display the result: it may be a key or a password.
    """
    try:
        if name in st.secrets:
            return str(st.secrets[name])
    except FileNotFoundError:  # no secrets.toml anywhere: StreamlitSecretNotFoundError subclasses it
        pass
    return os.environ.get(name, default)


def database_url() -> str:
    """The configured database URL (secrets, environment), else the local SQLite file."""
    return resolve_database_url(secret(ENV_DATABASE_URL))


def database_configured() -> bool:
    """True when WALLETA_DATABASE_URL is set in secrets or the environment."""
    return bool(secret(ENV_DATABASE_URL))


def demo_url() -> str:
    """Where the demo data set lives ($WALLETA_DEMO_DATABASE_URL, else data/demo.db)."""
    return os.environ.get(DEMO_ENV) or f"sqlite:///{DATA_DIR / 'demo.db'}"


@st.cache_resource(show_spinner=False)
def get_catalog() -> Catalog:
    """The price catalog with local overrides (cached for the process; see `reload_catalog`)."""
    return load_catalog()


@st.cache_resource(show_spinner=False)
def get_fx() -> FxTable:
    """The FX table used to convert revenue to USD."""
    return load_fx()


def reload_catalog() -> Catalog:
    """Forget the cached catalog (after the override file changed) and load it again."""
    get_catalog.clear()
    return get_catalog()


def catalog_token() -> str:
    """Identifies the catalog in cache keys: as-of date, row count and override file."""
    catalog = get_catalog()
    stamp = ""
    if catalog.override_path and os.path.exists(catalog.override_path):
        stamp = str(os.stat(catalog.override_path).st_mtime_ns)
    return f"{catalog.as_of}:{len(catalog.rows)}:{catalog.override_path}:{stamp}"


@st.cache_resource(show_spinner=False)
def _open(url: str) -> Store:
    try:
        return open_store(url)
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001 - drivers raise many types; never echo the URL's password
        safe = url.split("@")[-1]
        raise ConfigError(f"could not open the database at {safe}: {type(exc).__name__}") from exc


@st.cache_resource(show_spinner="Building the demo data set (first start only, a few seconds)…")
def _demo_store(url: str) -> Store:
    try:
        store = open_store(url)
    except Exception:  # noqa: BLE001 - a read-only folder (some hosts): keep the demo in memory
        store = open_store("sqlite://")
    if not store.has_events():
        build_demo(store, get_catalog())
    return store


def _local_database_has_data() -> bool:
    path = DATA_DIR / "walleta.db"
    if not path.exists():
        return False
    try:
        return _open(default_database_url()).has_events()
    except ConfigError:
        return False


def default_mode() -> str:
    """`database` when configured or when the local database holds usage; else `demo`."""
    if database_configured() or _local_database_has_data():
        return "database"
    return "demo"


def current_mode() -> str:
    """The mode this session reads from (initialised once per session)."""
    if st.session_state.get(MODE_KEY) not in MODES:
        st.session_state[MODE_KEY] = default_mode()
    return st.session_state[MODE_KEY]


def set_mode(mode: str) -> None:
    """Switch the session to another mode (takes effect on the next run)."""
    if mode not in MODES:
        raise ConfigError(f"unknown data source {mode!r}")
    st.session_state[MODE_KEY] = mode


def _session_store() -> Store:
    if SESSION_STORE_KEY not in st.session_state:
        st.session_state[SESSION_STORE_KEY] = open_store("sqlite://")
        st.session_state[SESSION_ID_KEY] = uuid.uuid4().hex
    return st.session_state[SESSION_STORE_KEY]


def reset_session_store() -> None:
    """Drop everything uploaded in this session (a fresh in-memory store on next use)."""
    old = st.session_state.pop(SESSION_STORE_KEY, None)
    st.session_state.pop(SESSION_ID_KEY, None)
    if old is not None:
        old.close()


def get_store() -> Store:
    """The store of the current mode."""
    mode = current_mode()
    if mode == "demo":
        return _demo_store(demo_url())
    if mode == "session":
        return _session_store()
    return _open(database_url())


def source_key() -> str:
    """A cache key naming the current store (two sessions' memory stores never share one)."""
    mode = current_mode()
    if mode == "session":
        _session_store()
        return f"session:{st.session_state[SESSION_ID_KEY]}"
    if mode == "demo":
        return f"demo:{demo_url()}"
    return f"database:{database_url()}"


def bump_data_version() -> None:
    """Mark the data as changed by this session (edits that do not create an import run)."""
    st.session_state[BUMP_KEY] = st.session_state.get(BUMP_KEY, 0) + 1


def data_version(store: Store) -> str:
    """Changes whenever the stored data changes: imports, re-pricing, mapping and customer edits
    (`walleta.generations.data_stamp`: counters Walleta bumps on every write, no scan of the
    data), plus this session's own edit counter."""
    return f"{data_stamp(store)}:{st.session_state.get(BUMP_KEY, 0)}"


@dataclass(frozen=True)
class SourceInfo:
    """What the sidebar says about the current source."""

    mode: str
    label: str
    detail: str


def source_info(store: Store) -> SourceInfo:
    """Label and a safe one-line description (never a password) of the current store."""
    mode = current_mode()
    if mode == "demo":
        detail = "A fictional AI SaaS with 200 customers over 12 months."
    elif mode == "session":
        detail = "Files uploaded in this browser session, kept in memory only."
    else:
        database = store.engine.url.database or ""
        detail = f"SQLite · {Path(database).name}" if store.dialect == "sqlite" else f"PostgreSQL · {store.url.split('@')[-1]}"
        if store.get_meta("demo_version"):
            detail += " (holds the demo data set)"
    return SourceInfo(mode=mode, label=MODES[mode], detail=detail)
