"""`walleta demo`: build the demo data set into the database."""

from __future__ import annotations

import argparse
import time

from ..demo import build_demo
from .common import store_from_args


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("demo", help="build the deterministic demo data set")
    parser.add_argument("--if-missing", action="store_true", help="do nothing when the database already holds usage")
    parser.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    store = store_from_args(args)
    if args.if_missing and store.has_events():
        print(f"demo: {store.url} already holds usage; nothing to do")
        return 0
    started = time.perf_counter()
    summary = build_demo(store, seed=args.seed)
    print(
        f"demo: {summary.customers} customers, {summary.events:,} usage rows, "
        f"{summary.revenue_entries} revenue entries in {time.perf_counter() - started:.1f}s -> {store.url}"
    )
    return 0
