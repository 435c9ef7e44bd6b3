"""Walleta: an AI profitability explorer.

Join what AI usage costs (a usage log, the OpenAI organization APIs, CSV files) with what
customers pay (Stripe, CSV), per customer, feature, model and month, and test pricing designs on
real history. The public API is listed in `__all__`; everything else is internal.
"""

from __future__ import annotations

__version__ = "0.1.0"

from .catalog import Catalog, load_catalog
from .costing import price_events
from .errors import (
    CatalogError,
    ConfigError,
    InputError,
    SchemaError,
    SourceError,
    UsageLimitExceeded,
    WalletaError,
)
from .fx import FxTable, load_fx
from .store import Store, open_store

# Usage capture (walleta.capture) loads on first use, so `import walleta` stays light.
_CAPTURE_NAMES = ("instrument", "attribute", "tag", "Limits", "Recorder", "recorder_of")


def __getattr__(name: str) -> object:
    if name in _CAPTURE_NAMES:
        from . import capture

        value = getattr(capture, name)
        globals()[name] = value  # later lookups are plain module attributes (no import machinery)
        return value
    raise AttributeError(f"module 'walleta' has no attribute {name!r}")

__all__ = [
    "__version__",
    "Catalog",
    "CatalogError",
    "ConfigError",
    "FxTable",
    "InputError",
    "Limits",
    "Recorder",
    "SchemaError",
    "SourceError",
    "Store",
    "UsageLimitExceeded",
    "WalletaError",
    "attribute",
    "instrument",
    "load_catalog",
    "load_fx",
    "open_store",
    "price_events",
    "recorder_of",
    "tag",
]
