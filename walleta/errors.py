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

`redact(text, secrets)` masks API keys in text that came from an API or an exception before it
goes into an error message or a log line (a proxy can echo the key it was sent).
"""

from __future__ import annotations

import logging
import re
from typing import Iterable

__all__ = [
    "WalletaError",
    "ConfigError",
    "SchemaError",
    "StorageError",
    "CatalogError",
    "InputError",
    "SourceError",
    "UsageLimitExceeded",
    "redact",
    "RedactingFilter",
    "protect_logger",
]

# Anything shaped like an OpenAI or Stripe secret: OpenAI `sk-...` (`sk-proj-`, `sk-admin-`,
# `sk-svcacct-`), Stripe secret `sk_live_`/`sk_test_`, restricted `rk_live_`/`rk_test_`,
# webhook `whsec_`. At least 8 key characters after the prefix, and not inside a longer word,
# so ordinary words ("sk-learn", "risk-free") are left alone.
_PREFIXES = r"(sk-admin-|sk-proj-|sk-svcacct-|sk-|sk_live_|sk_test_|rk_live_|rk_test_|rk_|whsec_)"
_KEY_SHAPE = re.compile(r"(?<![A-Za-z0-9])" + _PREFIXES + r"([A-Za-z0-9_\-]{8,})")
_KEY_PREFIX = re.compile(_PREFIXES)
_MASK = "****"
# A JSON string field that holds a credential ("authentication_token": "...", "client_secret",
# "api_key", "password"): the Stripe SDK logs response bodies at DEBUG, a v2 meter event
# session's bearer token among them. Count fields ("input_tokens") end in "s": left alone.
_SECRET_FIELD = re.compile(r'("(?:[A-Za-z_]*token|[A-Za-z_]*secret|api_key|apikey|password)"\s*:\s*")([^"\\]+)(")')


def _mask(prefix: str, body: str) -> str:
    """`sk_live_` + `****` + the last 4 characters when the key is long enough to spare them."""
    return f"{prefix}{_MASK}{body[-4:]}" if len(body) >= 24 else f"{prefix}{_MASK}"


def redact(text: object, secrets: Iterable[str | None] = ()) -> str:
    """`text` (str() of it) with every configured secret and every key-shaped token masked.

    `secrets`: the keys in use (empty or None entries ignored); each occurrence is replaced by
    its masked form, whatever its shape. Then any `sk-...`, `sk_live_...`, `sk_test_...`,
    `rk_...`, `whsec_...` or `sk-admin-...` token is masked too, so a key the caller did not
    name (a proxy echoing another header) is hidden as well, and so is the value of a JSON
    field named like a credential (`"authentication_token": "..."`, `"client_secret"`,
    `"api_key"`, `"password"`). Output never contains more than the last 4 characters of a key.
    """
    out = str(text)
    for secret in sorted({s.strip() for s in secrets if isinstance(s, str) and s.strip()}, key=len, reverse=True):
        if len(secret) < 4:
            continue  # too short to find without masking ordinary text
        prefix = _KEY_PREFIX.match(secret)
        masked = _mask(prefix.group(1), secret[prefix.end():]) if prefix else _MASK
        out = out.replace(secret, masked)
    out = _SECRET_FIELD.sub(lambda m: f"{m.group(1)}{_MASK}{m.group(3)}", out)
    return _KEY_SHAPE.sub(lambda m: _mask(m.group(1), m.group(2)), out)


class RedactingFilter(logging.Filter):
    """A logging filter that masks keys (see `redact`) in a record's message before it is emitted.

    Attach it to a third-party logger that may log API error text (the Stripe SDK logs the
    server's error message at INFO): `logging.getLogger("stripe").addFilter(RedactingFilter())`.
    """

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        super().__init__()
        self.secrets: frozenset[str] = frozenset(s for s in secrets if isinstance(s, str) and s)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record is the logging module's to report
            return True
        clean = redact(message, self.secrets)
        if clean != message:
            record.msg, record.args = clean, None
        return True


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



_FILTERS: dict[str, RedactingFilter] = {}


def protect_logger(name: str, secrets: Iterable[str | None] = ()) -> None:
    """Attach one `RedactingFilter` to logger `name` and its existing children (a logger's filters
    do not see its children's records) and add `secrets` to what it masks.

    Called where a key is configured (the Stripe and OpenAI clients) so that a library that logs
    an API's error text (the Stripe SDK at INFO) never writes the key to a log.
    """
    shared = _FILTERS.get(name)
    if shared is None:
        shared = _FILTERS[name] = RedactingFilter()
    # A new frozenset, swapped in whole: a thread logging meanwhile sees the old set or the new one.
    shared.secrets = shared.secrets | {s for s in secrets if isinstance(s, str) and s}
    names = [name] + [n for n in list(logging.Logger.manager.loggerDict) if n.startswith(name + ".")]
    for logger_name in names:
        logger = logging.getLogger(logger_name)
        if shared not in logger.filters:
            logger.addFilter(shared)
