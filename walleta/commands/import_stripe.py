"""`walleta import stripe [--since DATE] [--until DATE] [--full] [--no-fees]`."""

from __future__ import annotations

import argparse
import sys
from datetime import date

from .common import store_from_args


def register_import(sources: argparse._SubParsersAction) -> None:
    parser = sources.add_parser(
        "stripe",
        help="customers, paid invoices, credit notes, refunds, subscriptions and fees from Stripe ($STRIPE_API_KEY)",
    )
    parser.add_argument("--since", type=date.fromisoformat, metavar="YYYY-MM-DD",
                        help="documents created on or after this UTC day (default: since the last import)")
    parser.add_argument("--until", type=date.fromisoformat, metavar="YYYY-MM-DD",
                        help="documents created before this UTC day (a range import keeps the incremental mark)")
    parser.add_argument("--full", action="store_true", help="ignore the last import's mark and read the whole history")
    parser.add_argument("--no-fees", action="store_true", help="do not read balance transactions (Stripe fees)")
    parser.add_argument("--credit-product", action="append", default=[], metavar="PROD_ID",
                        help="a Stripe product sold as prepaid credits (deferred until used); repeatable")
    parser.set_defaults(handler=run)


def _progress(message: str) -> None:
    print(f"  {message}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    from ..sources.stripe_import import import_stripe, make_client  # the stripe SDK only when needed

    store = store_from_args(args)
    client = make_client()
    print("stripe: importing ...", file=sys.stderr, flush=True)
    summary = import_stripe(
        store, client, since=args.since, until=args.until, full=args.full, include_fees=not args.no_fees,
        credit_products=args.credit_product, progress=_progress,
    )
    for line in summary.lines_of_text():
        print(f"stripe: {line}")
    if summary.unmatched_customers or summary.conflicts:
        print("stripe: review matches with `walleta match stripe`; unmatched revenue is kept under the Stripe customer id")
    return 0
