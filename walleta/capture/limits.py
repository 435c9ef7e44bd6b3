"""Consumption limits: per-customer monthly budgets in dollars or tokens, checked before a call.

    limits = walleta.Limits(usd={"acme": "250.00"}, tokens={"trial-co": 2_000_000}, default_usd="50")
    client = walleta.instrument(OpenAI(), store=store, limits=limits)

Before each billable request the instrumented transport calls `LimitTracker.check(customer)`:
when the customer's spend (or tokens) this UTC month has reached its budget it raises
`UsageLimitExceeded` (nothing is sent), or calls `on_exceeded(error)` if given; the hook may
raise to block the call or return to let it through (alert-only).

Running totals are held in memory, never queried per call: seeded from the
`rollup_customer_month_model` rollup for the current month when the tracker starts (and again
every `refresh_seconds`, right after the recorder's own writes, to pick up other processes),
and incremented by the recorder as it prices each captured call. So a check sees every call
this process has finished up to the recorder's last batch (<= `flush_interval` ago) plus what
other processes wrote up to the last refresh; calls in flight are not yet counted. Dollars are
the computed cost (`cost_pico`) of priced events; tokens are input + output tokens. Calls
without a customer are never limited.
"""

from __future__ import annotations

import calendar
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd

from ..errors import UsageLimitExceeded
from ..money import format_usd, usd_to_pico
from ..schema import UNATTRIBUTED

__all__ = ["Limits", "LimitTracker"]

log = logging.getLogger("walleta.capture")


@dataclass(frozen=True)
class Limits:
    """Monthly budgets. USD amounts are text/Decimal/int dollars (converted exactly to pico-dollars).

    usd / tokens: per-customer budgets; default_usd / default_tokens: for every other
    attributed customer (None = unlimited). on_exceeded: hook called with the error instead of
    raising. clock: seconds since the epoch (injectable for tests). refresh_seconds: how often
    totals are re-read from the rollups.
    """

    usd: Mapping[str, str | Decimal | int] = field(default_factory=dict)
    tokens: Mapping[str, int] = field(default_factory=dict)
    default_usd: str | Decimal | int | None = None
    default_tokens: int | None = None
    on_exceeded: Callable[[UsageLimitExceeded], None] | None = None
    clock: Callable[[], float] = time.time
    refresh_seconds: float = 60.0


def _month_bounds(now: float) -> tuple[str, float]:
    """('YYYY-MM', epoch seconds of the next month's start) for a UTC instant."""
    moment = datetime.fromtimestamp(now, tz=timezone.utc)
    year, month = moment.year, moment.month
    days = calendar.monthrange(year, month)[1]
    end = datetime(year, month, 1, tzinfo=timezone.utc).timestamp() + days * 86_400
    return f"{year:04d}-{month:02d}", end


class LimitTracker:
    """Cached running totals for the current UTC month, and the check made before each call."""

    def __init__(self, limits: Limits, store: Any = None) -> None:
        self.limits = limits
        self.store = store
        self._usd = {str(k): usd_to_pico(v) for k, v in limits.usd.items()}
        self._tokens = {str(k): int(v) for k, v in limits.tokens.items()}
        self._default_usd = None if limits.default_usd is None else usd_to_pico(limits.default_usd)
        self._default_tokens = None if limits.default_tokens is None else int(limits.default_tokens)
        self.month, self._month_end = _month_bounds(limits.clock())
        self.cost_pico: dict[str, int] = {}
        self.token_totals: dict[str, int] = {}
        self._seeded_at = float("-inf")

    # -- caller side ---------------------------------------------------------------------------

    def check(self, customer: str) -> None:
        """Raise UsageLimitExceeded (or call the hook) if `customer` is at or over a budget."""
        if not customer or customer == UNATTRIBUTED:
            return
        if self.limits.clock() >= self._month_end:
            self._roll()
        budget = self._usd.get(customer, self._default_usd)
        if budget is not None:
            spent = self.cost_pico.get(customer, 0)
            if spent >= budget:
                self._exceeded(customer, f"{format_usd(budget)} per month", format_usd(spent))
                return
        budget = self._tokens.get(customer, self._default_tokens)
        if budget is not None:
            spent = self.token_totals.get(customer, 0)
            if spent >= budget:
                self._exceeded(customer, f"{budget:,} tokens per month", f"{spent:,} tokens")

    def _exceeded(self, customer: str, limit: str, spent: str) -> None:
        error = UsageLimitExceeded(customer, limit, spent)
        if self.limits.on_exceeded is None:
            raise error
        self.limits.on_exceeded(error)

    def spent(self, customer: str) -> tuple[int, int]:
        """(pico-dollars, tokens) counted for `customer` this month."""
        return self.cost_pico.get(customer, 0), self.token_totals.get(customer, 0)

    # -- recorder side -------------------------------------------------------------------------

    def _roll(self) -> None:
        """A new month began: start from zero (or from the rollups, if readable)."""
        self.month, self._month_end = _month_bounds(self.limits.clock())
        self.cost_pico, self.token_totals = {}, {}
        self._seeded_at = float("-inf")
        if self.store is not None:
            try:
                self.seed(self.store)
            except Exception as exc:  # noqa: BLE001 - limits must not break the call
                log.warning("walleta: could not read this month's totals (%s); counting from zero", exc)

    def seed(self, store: Any) -> None:
        """Replace the totals with this month's rollup sums (one query)."""
        self.store = store
        frame = store.query(
            "SELECT customer_id, CAST(SUM(cost_pico) AS BIGINT) AS cost_pico, "
            "CAST(SUM(input_tokens + output_tokens) AS BIGINT) AS tokens "
            "FROM rollup_customer_month_model WHERE month = ? GROUP BY customer_id",
            [self.month],
        )
        self.cost_pico = {str(c): int(v) for c, v in zip(frame.get("customer_id", []), frame.get("cost_pico", []))}
        self.token_totals = {str(c): int(v) for c, v in zip(frame.get("customer_id", []), frame.get("tokens", []))}
        self._seeded_at = self.limits.clock()

    def maybe_reseed(self, store: Any) -> None:
        """Re-read the totals if `refresh_seconds` passed (called by the recorder after a write)."""
        if store is not None and self.limits.clock() - self._seeded_at >= self.limits.refresh_seconds:
            self.seed(store)

    def add_events(self, events: pd.DataFrame) -> None:
        """Add priced events (EVENT_COLUMNS frame) of the current month to the totals."""
        if events.empty:
            return
        if self.limits.clock() >= self._month_end:
            self._roll()
        current = (events["month"].to_numpy(dtype=object) == self.month)
        if not current.any():
            return
        customers = events["customer_id"].to_numpy(dtype=object)[current]
        costs = events["cost_pico"].to_numpy(dtype=object)[current]
        tokens = (events["input_tokens"].to_numpy(dtype=np.int64) + events["output_tokens"].to_numpy(dtype=np.int64))[current]
        cost_totals = dict(self.cost_pico)
        token_totals = dict(self.token_totals)
        for customer, cost, count in zip(customers, costs, tokens):
            if not pd.isna(cost):
                cost_totals[customer] = cost_totals.get(customer, 0) + int(cost)
            token_totals[customer] = token_totals.get(customer, 0) + int(count)
        self.cost_pico, self.token_totals = cost_totals, token_totals
