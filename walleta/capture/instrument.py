"""`instrument(client, ...)`: make an OpenAI / AsyncOpenAI client record every billable call.

The client's httpx2 transport (and any mounted proxy transports) is wrapped in place by a
`TeeTransport`, so everything built on the client is covered without further wrapping:
`client.with_options(...)` copies, `with_raw_response` / `with_streaming_response`, the
`.parse()` and `.stream()` helpers, retries (each HTTP attempt is one event), sync and async.
Closing the client (`client.close()`, `with OpenAI() as client:`) flushes the recorder.
"""

from __future__ import annotations

import logging
import os
from typing import Any, TypeVar

import httpx2

from ..catalog import Catalog
from ..errors import ConfigError, protect_logger
from ..store import Store, open_store
from .limits import Limits, LimitTracker
from .tokens import TokenCounter
from .transport import AsyncTeeTransport, TeeTransport
from .writer import Recorder

__all__ = ["instrument", "recorder_of"]

log = logging.getLogger("walleta.capture")

ClientT = TypeVar("ClientT")


def instrument(
    client: ClientT,
    *,
    store: Store | str | os.PathLike[str] | None = None,
    recorder: Recorder | None = None,
    limits: Limits | None = None,
    catalog: Catalog | None = None,
    counter: TokenCounter | None = None,
    **recorder_options: Any,
) -> ClientT:
    """Instrument `client` in place and return it.

    Inputs: `client` (openai.OpenAI / AsyncOpenAI, or any client whose `_client` is an httpx2
    client); `store` (Store, database URL, or None for $WALLETA_DATABASE_URL / data/walleta.db)
    or a shared `recorder`; optional `limits`; `catalog`, `counter` and `recorder_options`
    (batch_size, flush_interval, max_buffer, spill_dir, ...) for a recorder created here.
    Raises ConfigError if the client is already instrumented or is not httpx2-based.
    """
    http = getattr(client, "_client", None)
    if not isinstance(http, (httpx2.Client, httpx2.AsyncClient)):
        raise ConfigError("instrument() needs an openai 3.x client built on httpx2 (OpenAI or AsyncOpenAI)")
    if isinstance(http._transport, (TeeTransport, AsyncTeeTransport)):
        raise ConfigError("this client is already instrumented")
    # Capture logs its own failures (a response it cannot read, the database away): never a key.
    protect_logger("walleta.capture", [getattr(client, "api_key", None)])
    owns = recorder is None
    if recorder is None:
        recorder = Recorder(_open(store), catalog=catalog, counter=counter, **recorder_options)
    elif store is not None or recorder_options:
        raise ConfigError("pass either recorder= or store=/recorder options, not both")
    tracker = None
    if limits is not None:
        tracker = LimitTracker(limits, recorder.store)
        if recorder.store is not None:
            try:
                tracker.seed(recorder.store)
            except Exception as exc:  # noqa: BLE001 - start counting from zero rather than fail
                log.warning("walleta: could not read this month's usage totals (%s); counting from zero", exc)
        recorder.add_tracker(tracker)
    wrapper = AsyncTeeTransport if isinstance(http, httpx2.AsyncClient) else TeeTransport
    http._transport = wrapper(http._transport, recorder, tracker, owns)
    for pattern, transport in list(http._mounts.items()):
        if transport is not None:
            http._mounts[pattern] = wrapper(transport, recorder, tracker, False)
    return client


def recorder_of(client: Any) -> Recorder:
    """The Recorder an instrumented client writes through (for flush(), close(), stats())."""
    transport = getattr(getattr(client, "_client", None), "_transport", None)
    if not isinstance(transport, (TeeTransport, AsyncTeeTransport)):
        raise ConfigError("this client is not instrumented")
    return transport.recorder


def _open(store: Store | str | os.PathLike[str] | None) -> Store | str | None:
    """An open Store when the database is reachable now; else the URL, opened later by the recorder."""
    if isinstance(store, Store):
        return store
    url = os.fspath(store) if store is not None else None
    if url is not None and "://" not in url:
        url = f"sqlite:///{url}"  # a plain path means a SQLite file
    try:
        return open_store(url)
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001 - database away at start-up: record anyway, write later
        log.warning("walleta: database not reachable yet (%s); usage will be buffered and written when it is", exc)
        return url
