"""`walleta prices`: show the price catalog and its as-of date."""

from __future__ import annotations

import argparse

from ..catalog import load_catalog
from .common import FORMATS, print_frame


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("prices", help="show the price catalog (bundled plus local overrides)")
    parser.add_argument("--model", help="only rows for this model (aliases and snapshots resolve)")
    parser.add_argument("--format", choices=FORMATS, default="table")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    catalog = load_catalog()
    frame = catalog.to_frame()
    if args.model:
        resolved = catalog.resolve(args.model)
        if resolved is None:
            print(f"prices: no price for model {args.model!r} (it would be reported as unpriced)")
            return 1
        frame = frame[frame["model"] == resolved]
    if args.format == "table":
        override = f", overrides from {catalog.override_path}" if catalog.override_path else ""
        print(f"price catalog as of {catalog.as_of}: {len(catalog.rows)} rows, {len(catalog.models)} models{override}")
    print_frame(frame, args.format)
    return 0
