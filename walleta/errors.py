"""One exception hierarchy for Walleta.

    WalletaError                 base class: catch this to catch everything Walleta raises
    ├── ConfigError              a setting is missing or malformed (database URL, secrets, flags)
    ├── SchemaError              the database schema is newer than this code, or cannot be upgraded
    ├── StorageError             the database cannot be opened or written (read-only, disk full, down)
    ├── CatalogError             the price catalog or an override file is malformed
    ├── InputError               an input file or value cannot be used at all (not a CSV, empty, ...)
    ├── SourceError              an external API (OpenAI, Stripe) failed after retries
    └── UsageLimitExceeded       a customer's consumption limit is reached (raised before the call)

Row-level problems in an import are not exceptions: they are collected as `RowError`s in the
import report, so good rows are kept and bad rows are returned.
"""

from __future__ import annotations

__all__ = [
    "WalletaError",
    "ConfigError",
    "SchemaError",
    "StorageError",
    "CatalogError",
    "InputError",
    "SourceError",
    "UsageLimitExceeded",
]


class WalletaError(Exception):
    """Base class of every error Walleta raises on purpose."""


class ConfigError(WalletaError):
    """A setting is missing or malformed."""


class SchemaError(WalletaError):
    """The database schema cannot be used by this version of Walleta."""


class StorageError(WalletaError):
    """The database cannot be opened or written: read-only, disk full, locked or unreachable.

    The failed write was rolled back: nothing of it is stored.
    """


class CatalogError(WalletaError):
    """The price catalog or a local override is malformed."""


class InputError(WalletaError):
    """An input cannot be used at all (not a CSV, empty, wrong kind)."""


class SourceError(WalletaError):
    """An external API call failed after retries."""


class UsageLimitExceeded(WalletaError):
    """A customer reached its consumption limit; raised before the call is sent."""

    def __init__(self, customer: str, limit: str, spent: str) -> None:
        super().__init__(f"customer {customer!r} reached its limit of {limit} (spent {spent})")
        self.customer = customer
        self.limit = limit
        self.spent = spent
