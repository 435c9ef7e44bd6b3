"""`walleta import openai [--since DATE] [--until DATE]`: the OpenAI Usage and Costs APIs."""

from __future__ import annotations

import argparse

from ..catalog import load_catalog
from ..sources.openai_usage import ADMIN_KEY_ENV, import_openai
from .common import store_from_args
from .import_csv import add_progress_flags, print_report, progress_from_args

__all__ = ["register_import", "run"]


def register_import(sources: argparse._SubParsersAction) -> None:
    """Add `import openai` to the import command group."""
    parser = sources.add_parser(
        "openai",
        help="import usage and billed costs from the OpenAI organization APIs (admin key)",
        description=f"Import usage buckets and billed costs with the admin key in ${ADMIN_KEY_ENV}. "
        "Without --since, continues from the last import (re-reading its last day, since usage data lags); "
        "the first import reads the last 30 days. Dates are UTC; --until is inclusive.",
    )
    parser.add_argument("--since", metavar="DATE", help="first day (YYYY-MM-DD) or ISO time (default: since the last import)")
    parser.add_argument("--until", metavar="DATE", help="last day, inclusive (YYYY-MM-DD) or ISO time (default: now)")
    add_progress_flags(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Handler of `walleta import openai`."""
    store = store_from_args(args)
    progress = progress_from_args(args)
    try:
        report = import_openai(store, load_catalog(), since=args.since, until=args.until, progress=progress)
    finally:
        progress.close()
    return print_report(report)
