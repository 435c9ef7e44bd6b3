"""Explicit currency conversion for reports.

Amounts stay in their own currency everywhere; reports convert them to USD with a rate table
the user can see and edit: `data/fx_rates.csv` (columns `currency, usd_per_unit, as_of`), or
the file named by $WALLETA_FX_RATES. A currency missing from the table is never summed in
silently: `FxTable.to_usd_pico` raises, and report code lists it as unconverted
(`walleta.revenue.revenue_usd` returns the converted totals and the unconverted currencies).
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Iterable

import pandas as pd

from .config import DATA_DIR
from .errors import CatalogError, InputError
from .money import PICO_PER_USD, minor_unit_exponent

__all__ = ["FxTable", "load_fx", "write_fx", "FX_ENV", "FX_COLUMNS"]

FX_COLUMNS = ("currency", "usd_per_unit", "as_of")

FX_ENV = "WALLETA_FX_RATES"


@dataclass(frozen=True)
class FxTable:
    """USD value of one unit of each currency, with the date of each rate."""

    rates: dict[str, Decimal]
    as_of: dict[str, str]
    path: str = ""

    def has(self, currency: str) -> bool:
        """True when the table can convert `currency`."""
        return currency.upper() in self.rates

    def to_usd_pico(self, amount_minor: int, currency: str) -> int:
        """Minor units of `currency` -> integer USD pico-dollars (rounded half-even)."""
        code = currency.upper()
        if code not in self.rates:
            raise InputError(f"no exchange rate for {code}: add it to {self.path or 'the FX table'}")
        exponent = minor_unit_exponent(code)
        value = Decimal(int(amount_minor)) * self.rates[code] * PICO_PER_USD / (Decimal(10) ** exponent)
        return int(value.to_integral_value())

    def missing(self, currencies: Iterable[str]) -> tuple[str, ...]:
        """The currencies (upper-case, sorted, unique) this table cannot convert."""
        return tuple(sorted({str(c).upper() for c in currencies if not self.has(str(c))}))

    def to_frame(self) -> pd.DataFrame:
        """The table as a DataFrame (currency, usd_per_unit as exact text, as_of) for display/editing."""
        rows = [(code, str(rate), self.as_of.get(code, "")) for code, rate in sorted(self.rates.items())]
        return pd.DataFrame.from_records(rows, columns=list(FX_COLUMNS))


def load_fx(path: str | Path | None = None) -> FxTable:
    """Read the FX table (default: $WALLETA_FX_RATES, then data/fx_rates.csv)."""
    chosen = Path(path or os.environ.get(FX_ENV) or DATA_DIR / "fx_rates.csv")
    rates: dict[str, Decimal] = {}
    dates: dict[str, str] = {}
    with chosen.open(newline="", encoding="utf-8-sig") as handle:
        for line_no, row in enumerate(csv.DictReader(handle), start=2):
            code = (row.get("currency") or "").strip().upper()
            try:
                rate = Decimal((row.get("usd_per_unit") or "").strip())
            except InvalidOperation as exc:
                raise CatalogError(f"{chosen.name} row {line_no}, column usd_per_unit: not a number") from exc
            if len(code) != 3 or not rate.is_finite() or rate <= 0:
                raise CatalogError(f"{chosen.name} row {line_no}: needs a 3-letter currency and a positive rate")
            rates[code] = rate
            dates[code] = (row.get("as_of") or "").strip()
    return FxTable(rates=rates, as_of=dates, path=str(chosen))


def write_fx(rows: FxTable | pd.DataFrame, path: str | Path) -> FxTable:
    """Validate and write an FX table CSV (e.g. after editing it in the app); returns it re-read.

    `rows` is an FxTable or a frame with columns currency, usd_per_unit (text or Decimal, never
    a float), as_of. Raises CatalogError on a bad row, before anything is written.
    """
    frame = rows.to_frame() if isinstance(rows, FxTable) else rows
    target = Path(path)
    lines: list[tuple[str, str, str]] = []
    for line_no, row in enumerate(frame.itertuples(index=False), start=2):
        code = str(row.currency).strip().upper()
        if isinstance(row.usd_per_unit, float):
            raise CatalogError(f"row {line_no}: usd_per_unit must be exact text or Decimal, not a float")
        try:
            rate = Decimal(str(row.usd_per_unit).strip())
        except InvalidOperation as exc:
            raise CatalogError(f"row {line_no}, column usd_per_unit: not a number") from exc
        if len(code) != 3 or not rate.is_finite() or rate <= 0:
            raise CatalogError(f"row {line_no}: needs a 3-letter currency and a positive rate")
        lines.append((code, str(rate), str(row.as_of or "").strip()))
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(FX_COLUMNS)
        writer.writerows(lines)
    return load_fx(target)
