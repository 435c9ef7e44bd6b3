"""`walleta status` and `walleta reprice`: what the database holds; re-price after a catalog change."""

from __future__ import annotations

import argparse

from ..catalog import load_catalog
from ..pricing_job import reprice
from .common import store_from_args


def register(commands: argparse._SubParsersAction) -> None:
    status = commands.add_parser("status", help="what the database holds")
    status.set_defaults(handler=run_status)
    again = commands.add_parser("reprice", help="re-price every stored event with the current catalog and rebuild rollups")
    again.set_defaults(handler=run_reprice)


def run_status(args: argparse.Namespace) -> int:
    store = store_from_args(args)
    counts = store.query(
        "SELECT CAST(COUNT(*) AS BIGINT) AS events, CAST(COALESCE(SUM(requests), 0) AS BIGINT) AS requests, "
        "CAST(COALESCE(SUM(CASE WHEN cost_pico IS NULL THEN 1 ELSE 0 END), 0) AS BIGINT) AS unpriced, "
        "MIN(day) AS first_day, MAX(day) AS last_day FROM usage_events"
    ).iloc[0]
    customers = store.scalar("SELECT COUNT(*) FROM customers")
    revenue = store.scalar("SELECT COUNT(*) FROM revenue_entries")
    print(f"database: {store.url}")
    print(f"usage rows: {int(counts['events']):,} ({int(counts['requests']):,} requests) from {counts['first_day']} to {counts['last_day']}")
    print(f"unpriced rows: {int(counts['unpriced']):,}")
    print(f"customers: {customers:,}; revenue entries: {revenue:,}")
    return 0


def run_reprice(args: argparse.Namespace) -> int:
    store = store_from_args(args)
    changed = reprice(store, load_catalog())
    print(f"reprice: {changed:,} rows changed cost; rollups rebuilt")
    return 0
