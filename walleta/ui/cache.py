"""Cached calls to core functions, keyed on the store, its data version and the arguments.

Pages never cache by hand: they call `load(core_function, *args)` (the function receives the
current store first) or `compute(core_function, *args)` (no store). Results are cached with
`st.cache_data`, keyed on the function, the store's cache key, its data version (so a new import
refreshes every page) and the catalog, plus the arguments. Pass `FX` or `CATALOG` where a core
function wants the FX table or the price catalog: they are swapped in inside the cache, so the
big objects are never hashed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, TypeVar

import streamlit as st

from .sources import catalog_token, data_version, get_catalog, get_fx, get_store, source_key

__all__ = ["FX", "CATALOG", "load", "compute", "clear_caches"]

T = TypeVar("T")


@dataclass(frozen=True)
class Resource:
    """A placeholder for a process-wide resource passed to a cached core function."""

    name: str


FX = Resource("fx")
CATALOG = Resource("catalog")


def _swap(value: Any) -> Any:
    if isinstance(value, Resource):
        return get_fx() if value.name == "fx" else get_catalog()
    return value


@st.cache_data(max_entries=512, show_spinner=False)
def _cached(
    name: str,
    store_key: str | None,
    version: str,
    catalog: str,
    args: tuple,
    kwargs: dict,
    _fn: Callable[..., Any],
    _store: Any,
) -> Any:
    real_args = [_swap(a) for a in args]
    real_kwargs = {k: _swap(v) for k, v in kwargs.items()}
    if _store is not None:
        return _fn(_store, *real_args, **real_kwargs)
    return _fn(*real_args, **real_kwargs)


def _name(fn: Callable[..., Any]) -> str:
    """Module, name and defining line: two page functions with one name never share a cache."""
    code = getattr(fn, "__code__", None)
    where = f"{code.co_filename}:{code.co_firstlineno}" if code else ""
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}@{where}"


def load(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """`fn(store, *args, **kwargs)` on the current store, cached until its data changes."""
    store = get_store()
    return _cached(_name(fn), source_key(), data_version(store), catalog_token(), args, kwargs, fn, store)


def compute(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """`fn(*args, **kwargs)` cached on its arguments (and the catalog), for store-free work."""
    return _cached(_name(fn), None, "", catalog_token(), args, kwargs, fn, None)


def clear_caches() -> None:
    """Forget every cached result (used by tests and after destructive actions)."""
    _cached.clear()
