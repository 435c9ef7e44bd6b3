"""The `walleta` command line: a thin layer over the core, for people and for cron.

Every command takes the global `--db URL` (else $WALLETA_DATABASE_URL, else data/walleta.db).
Command groups live in `walleta/commands/`, one module each, registered in
`walleta.commands.COMMAND_MODULES`. Exit status: 0 success, 1 a handled failure (the message says
what and where), 2 a usage error, 3 partial success (for example rows rejected by an import).
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Sequence

from . import __version__
from .commands import COMMAND_MODULES
from .errors import WalletaError

__all__ = ["main", "build_parser"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_PARTIAL = 0, 1, 2, 3


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every registered command."""
    parser = argparse.ArgumentParser(prog="walleta", description="AI profitability explorer: cost, revenue and margin per customer.")
    parser.add_argument("--version", action="version", version=f"walleta {__version__}")
    parser.add_argument("--db", metavar="URL", help="database URL (default: $WALLETA_DATABASE_URL or data/walleta.db)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details to stderr")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    for module in COMMAND_MODULES:
        module.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.handler(args) or EXIT_OK)
    except WalletaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
