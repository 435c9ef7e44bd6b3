"""`walleta import csv FILE [--kind KIND]`: import a CSV file of any supported kind."""

from __future__ import annotations

import argparse
import sys

from ..sources.csv_import import KINDS, import_csv
from ..sources.report import ImportReport, Progress
from .common import store_from_args

__all__ = ["register_import", "run", "print_report", "progress_from_args"]

EXIT_OK, EXIT_PARTIAL = 0, 3
SHOWN_ERRORS = 10


def register_import(sources: argparse._SubParsersAction) -> None:
    """Add `import csv` to the import command group."""
    parser = sources.add_parser(
        "csv",
        help="import a CSV file (usage, customers, mapping, revenue, OpenAI activity or cost export)",
        description="Import a CSV file. The kind is detected from the header unless --kind is given; "
        "rejected rows are written to an error file and the exit status is 3.",
    )
    parser.add_argument("file", metavar="FILE", help="the CSV file")
    parser.add_argument("--kind", choices=KINDS, help="what the file holds (default: detected from the header)")
    parser.add_argument("--errors", metavar="PATH", help="where to write rejected rows (default: FILE's name + .errors.csv)")
    add_progress_flags(parser)
    parser.set_defaults(handler=run)


def add_progress_flags(parser: argparse.ArgumentParser) -> None:
    """--progress / --no-progress (default: a bar when stderr is a terminal)."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--progress", dest="progress", action="store_true", default=None, help="always show a progress bar on stderr")
    group.add_argument("--no-progress", dest="progress", action="store_false", help="never show a progress bar")


def progress_from_args(args: argparse.Namespace) -> Progress:
    """A progress bar on stderr, on when asked or when stderr is a terminal."""
    enabled = args.progress if args.progress is not None else sys.stderr.isatty()
    return Progress(sys.stderr, enabled=enabled)


def print_report(report: ImportReport) -> int:
    """Print notes, the one-line summary and the first errors; returns the exit status."""
    for note in report.notes:
        print(f"  {note}")
    unpriced = report.unpriced_line()
    if unpriced:
        print(f"  {unpriced}")
    print(report.summary_line())
    if not report.errors:
        return EXIT_OK
    errors = sorted(report.errors, key=lambda e: (e.row, e.column))
    print(f"{report.rejected:,} rows rejected; first problems:", file=sys.stderr)
    for error in errors[:SHOWN_ERRORS]:
        print(f"  {error.message()}", file=sys.stderr)
    if len(errors) > SHOWN_ERRORS:
        print(f"  ... and {len(errors) - SHOWN_ERRORS:,} more", file=sys.stderr)
    if report.error_file is not None:
        print(f"rejected rows written to {report.error_file}")
    return EXIT_PARTIAL


def run(args: argparse.Namespace) -> int:
    """Handler of `walleta import csv`."""
    store = store_from_args(args)
    progress = progress_from_args(args)
    try:
        report = import_csv(store, args.file, kind=args.kind, error_path=args.errors, progress=progress)
    finally:
        progress.close()
    return print_report(report)
