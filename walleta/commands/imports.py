"""`walleta import SOURCE ...`: the import command group.

Each source is a module with `register_import(sources)` that adds its own sub-command
(`openai`, `csv`, `stripe`, ...) and handler; list it in IMPORT_SOURCES.
"""

from __future__ import annotations

import argparse
from types import ModuleType

from . import import_csv, import_openai, import_stripe

IMPORT_SOURCES: list[ModuleType] = [import_stripe, import_csv, import_openai]


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("import", help="import usage, costs, customers or revenue")
    sources = parser.add_subparsers(dest="source", metavar="SOURCE")
    sources.required = True
    for module in IMPORT_SOURCES:
        module.register_import(sources)
