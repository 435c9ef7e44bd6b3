"""`walleta push stripe-meter --meter NAME --value tokens|requests|cost_cents|credits [--dry-run]`."""

from __future__ import annotations

import argparse
import sys
from decimal import Decimal

from .common import FORMATS, print_frame, store_from_args


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("push", help="push usage to a billing system")
    targets = parser.add_subparsers(dest="target", metavar="TARGET")
    targets.required = True
    meter = targets.add_parser("stripe-meter", help="send each customer's usage per day or hour to a Stripe Billing meter")
    meter.add_argument("--meter", required=True, metavar="EVENT_NAME", help="the meter's event_name")
    meter.add_argument("--value", choices=["tokens", "requests", "cost_cents", "credits"], default="tokens",
                       help="what to send (default tokens = input + output tokens)")
    meter.add_argument("--credits-per-usd", type=Decimal, help="for --value credits: credits per dollar of AI cost")
    meter.add_argument("--window", choices=["day", "hour"], default="day", help="one event per customer per UTC day (default) or hour")
    meter.add_argument("--customer-key", default="stripe_customer_id", help="the meter's customer payload key")
    meter.add_argument("--value-key", default="value", help="the meter's value payload key")
    meter.add_argument("--settle-minutes", type=int, default=10, help="wait this long after a window ends before sending it")
    meter.add_argument("--dry-run", action="store_true", help="show exactly what would be sent; send nothing")
    meter.add_argument("--v2", action="store_true", help="use the v2 meter event stream (batches of 100) for high volume")
    meter.add_argument("--format", choices=FORMATS, default="table", help="format of the --dry-run listing")
    meter.set_defaults(handler=run_meter)


def run_meter(args: argparse.Namespace) -> int:
    from ..meters import Meter, push_meter  # the stripe SDK only when needed
    from ..sources.stripe_import import make_client

    store = store_from_args(args)
    meter = Meter(
        event_name=args.meter, measure=args.value, customer_key=args.customer_key, value_key=args.value_key,
        window=args.window, credits_per_usd=args.credits_per_usd,
    )
    client = None if args.dry_run else make_client()
    progress = lambda message: print(f"  {message}", file=sys.stderr, flush=True)  # noqa: E731
    result = push_meter(
        store, client, meter, api="v2" if args.v2 else "v1", dry_run=args.dry_run,  # type: ignore[arg-type]
        settle_seconds=args.settle_minutes * 60, progress=progress,
    )
    plan = result.plan
    if args.dry_run:
        print_frame(plan.frame(), args.format)
    verb = "would send" if args.dry_run else f"sent ({result.api})"
    count = len(plan.events) if args.dry_run else result.sent
    print(f"push: {verb} {count:,} events to meter {meter.event_name!r}; {plan.already_sent:,} already sent before; "
          f"{plan.zero_windows:,} windows with nothing to bill", file=sys.stderr if args.dry_run and args.format != "table" else sys.stdout)
    for reason, n in sorted(plan.skip_summary().items()):
        print(f"push: skipped {n:,} windows: {reason}", file=sys.stderr if args.dry_run and args.format != "table" else sys.stdout)
    return 0
