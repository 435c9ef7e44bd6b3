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

__all__ = [
    "__version__",
    "Catalog",
    "CatalogError",
    "ConfigError",
    "FxTable",
    "InputError",
    "SchemaError",
    "SourceError",
    "Store",
    "UsageLimitExceeded",
    "WalletaError",
    "load_catalog",
    "load_fx",
    "open_store",
    "price_events",
]
