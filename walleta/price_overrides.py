"""The local price override file: read it as a table, check an edited table, save it atomically.

The file has the catalog's columns (`walleta.catalog.PRICE_COLUMNS`); its rows replace bundled
rows with the same (model, unit, effective_from) and add new ones. It lives at
$WALLETA_PRICE_OVERRIDES or `data/prices.override.csv`. Validation is the catalog's own: the
edited table is written to a scratch file and loaded with `load_catalog`, so the app accepts
exactly what the CLI accepts, with the same row and column in every message.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pandas as pd

from .catalog import OVERRIDE_ENV, PRICE_COLUMNS, Catalog, load_catalog
from .config import DATA_DIR
from .errors import CatalogError

__all__ = ["override_path", "read_overrides", "clean_overrides", "check_overrides", "save_overrides"]


def override_path() -> Path:
    """Where overrides are read from and saved to."""
    return Path(os.environ.get(OVERRIDE_ENV) or DATA_DIR / "prices.override.csv")


def read_overrides(path: str | Path | None = None) -> pd.DataFrame:
    """The override rows as text columns in PRICE_COLUMNS order (empty table when no file)."""
    chosen = Path(path) if path else override_path()
    if not chosen.exists() or chosen.stat().st_size == 0:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in PRICE_COLUMNS})
    frame = pd.read_csv(chosen, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    for name in PRICE_COLUMNS:
        if name not in frame.columns:
            frame[name] = ""
    return frame[list(PRICE_COLUMNS)].astype(object)


def clean_overrides(frame: pd.DataFrame) -> pd.DataFrame:
    """Trim every cell, turn missing values into '', drop rows that are entirely blank."""
    out = pd.DataFrame({c: frame[c] if c in frame.columns else "" for c in PRICE_COLUMNS}, index=frame.index)
    out = out.astype(object).where(out.notna(), "")
    out = out.map(lambda v: "" if v is None else str(v).strip())
    blank = (out == "").all(axis=1)
    return out[~blank].reset_index(drop=True)


def _write(frame: pd.DataFrame, path: Path) -> None:
    frame.to_csv(path, index=False, columns=list(PRICE_COLUMNS))


def check_overrides(frame: pd.DataFrame) -> Catalog:
    """Load the catalog with `frame` as the overrides; raises CatalogError naming row and column.

    Row numbers in messages are file rows (the header is row 1), i.e. table row + 2.
    """
    cleaned = clean_overrides(frame)
    with tempfile.TemporaryDirectory() as folder:
        scratch = Path(folder) / "prices.override.csv"
        _write(cleaned, scratch)
        return load_catalog(override_path=scratch)


def save_overrides(frame: pd.DataFrame, path: str | Path | None = None) -> Path:
    """Check, then replace the override file atomically; returns the path written.

    Raises CatalogError (nothing written) when a row is invalid, and duplicate
    (model, unit, effective_from) rows, which would make the catalog ambiguous.
    """
    cleaned = clean_overrides(frame)
    duplicated = cleaned.duplicated(["model", "unit", "effective_from"], keep=False)
    if duplicated.any():
        rows = ", ".join(str(i + 2) for i in cleaned.index[duplicated])
        raise CatalogError(f"override rows {rows} repeat the same model, unit and effective_from")
    check_overrides(cleaned)
    target = Path(path) if path else override_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, scratch = tempfile.mkstemp(prefix=".prices.override.", suffix=".csv", dir=target.parent)
    os.close(handle)
    try:
        _write(cleaned, Path(scratch))
        os.replace(scratch, target)
    finally:
        if os.path.exists(scratch):
            os.unlink(scratch)
    return target
