"""`walleta match stripe [--confirm] [--accept-above 0.9] [--map CUS=CUSTOMER]`: customer matching."""

from __future__ import annotations

import argparse

from ..matching import confirm_matches, map_customer, match_stripe, unmatched_revenue, unmatched_usage
from .common import FORMATS, print_frame, store_from_args


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("match", help="match external customers to usage customers")
    targets = parser.add_subparsers(dest="target", metavar="TARGET")
    targets.required = True
    stripe = targets.add_parser("stripe", help="Stripe customers vs usage customers: proposals, conflicts, unmatched")
    stripe.add_argument("--confirm", action="store_true", help="save the automatic (exact) matches as confirmed mappings")
    stripe.add_argument("--accept-above", type=float, metavar="CONFIDENCE",
                        help="with --confirm, also save fuzzy proposals at or above this confidence (0-1)")
    stripe.add_argument("--map", action="append", default=[], metavar="CUS_ID=CUSTOMER_ID", help="manual mapping; repeatable")
    stripe.add_argument("--format", choices=FORMATS, default="table")
    stripe.set_defaults(handler=run_stripe)


def run_stripe(args: argparse.Namespace) -> int:
    store = store_from_args(args)
    for pair in args.map:
        stripe_id, _, customer_id = pair.partition("=")
        if not stripe_id or not customer_id:
            print(f"match: --map wants CUS_ID=CUSTOMER_ID, got {pair!r}")
            return 2
        changed = map_customer(store, stripe_id.strip(), customer_id.strip())
        print(f"match: {stripe_id} -> {customer_id} ({changed} revenue entries re-pointed)")
    matches = match_stripe(store)
    if args.confirm:
        written = confirm_matches(store, matches, accept_proposed_at=args.accept_above)
        print(f"match: {written} mappings confirmed")
        matches = match_stripe(store)
    print_frame(matches, args.format)
    if args.format == "table":
        counts = matches["status"].value_counts().to_dict() if not matches.empty else {}
        print("match: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) if counts else "match: no Stripe customers imported")
        revenue, usage = unmatched_revenue(store), unmatched_usage(store)
        print(f"\nunmatched revenue ({len(revenue)} customer/currency rows):")
        print_frame(revenue)
        print(f"\nunmatched usage ({len(usage)} customers with AI cost and no revenue):")
        print_frame(usage)
    return 0
