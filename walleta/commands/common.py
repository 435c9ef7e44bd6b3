"""Helpers shared by the command modules: opening the store, printing tables."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TextIO

import pandas as pd

from ..export import safe_frame
from ..store import Store, open_store

__all__ = ["store_from_args", "print_frame", "FORMATS"]

FORMATS = ("table", "csv", "json")


def store_from_args(args: argparse.Namespace) -> Store:
    """Open the database named by the global --db option (or the default)."""
    return open_store(args.db)


def print_frame(frame: pd.DataFrame, fmt: str = "table", out: TextIO | None = None) -> None:
    """Write a DataFrame as an aligned table, CSV (formula-looking cells neutralised) or JSON records."""
    out = out or sys.stdout
    if fmt == "csv":
        safe_frame(frame).to_csv(out, index=False)  # names come from users' data: no CSV injection
    elif fmt == "json":
        json.dump(json.loads(frame.to_json(orient="records")), out, indent=2)
        out.write("\n")
    else:
        out.write(frame.to_string(index=False) if not frame.empty else "(no rows)")
        out.write("\n")
