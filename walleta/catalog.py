"""The dated price catalog: which price was in force for a model, unit and day.

Files (all in `data/`):
- `prices.csv`: one row per (model, unit, effective_from), USD. Token units carry
  `input_per_1m, cached_input_per_1m, output_per_1m, batch_input_per_1m, batch_output_per_1m`;
  other units carry `per_unit_price` (per image, per audio minute, per 1M characters or
  cache-write tokens, per tool call). An empty `effective_from` means "always".
- `model_aliases.csv`: dated snapshot names that cost the same as their alias.
- `catalog_meta.json`: the catalog's own as-of date.
- A local override file (`data/prices.override.csv`, or $WALLETA_PRICE_OVERRIDES) with the same
  columns: its rows replace bundled rows with the same (model, unit, effective_from) and add new
  ones; they are marked `origin = override`.

Prices are held as integer pico-dollars: per token for token units (a price per 1M tokens
written with at most 6 decimals is an exact integer number of pico-dollars per token), per unit
otherwise. Selection rule for a usage day D: per (model, unit) the row with the greatest
`effective_from` <= D; if D precedes every row, the earliest row.
"""

from __future__ import annotations

import bisect
import csv
import json
import os
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from pathlib import Path

import pandas as pd

from .config import DATA_DIR
from .errors import CatalogError

__all__ = [
    "Catalog",
    "PriceRow",
    "load_catalog",
    "PRICE_COLUMNS",
    "TOKEN_PRICE_FIELDS",
    "OVERRIDE_ENV",
]

OVERRIDE_ENV = "WALLETA_PRICE_OVERRIDES"
PRICE_COLUMNS = (
    "model",
    "provider",
    "unit",
    "input_per_1m",
    "cached_input_per_1m",
    "output_per_1m",
    "batch_input_per_1m",
    "batch_output_per_1m",
    "per_unit_price",
    "effective_from",
    "source",
)
TOKEN_PRICE_FIELDS = (
    "input_per_1m",
    "cached_input_per_1m",
    "output_per_1m",
    "batch_input_per_1m",
    "batch_output_per_1m",
)
# Units whose per_unit_price is quoted per 1M of something (tokens, characters).
_PER_MILLION_UNITS = re.compile(r"^(1m_|training_1m_tokens$)")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATED_SUFFIX = re.compile(r"-\d{4}-\d{2}-\d{2}$")
ALWAYS = "0000-00-00"


@dataclass(frozen=True)
class PriceRow:
    """One catalog row with prices in integer pico-dollars (None = not stated)."""

    model: str
    unit: str
    effective_from: str
    input: int | None = None
    cached_input: int | None = None
    output: int | None = None
    batch_input: int | None = None
    batch_output: int | None = None
    per_unit: int | None = None
    source: str = ""
    origin: str = "bundled"


def _parse_price(text: str, *, scale: int, where: str) -> int | None:
    text = (text or "").strip()
    if text == "":
        return None
    try:
        value = Decimal(text)
    except InvalidOperation as exc:
        raise CatalogError(f"{where}: {text!r} is not a number") from exc
    if not value.is_finite() or value < 0:
        raise CatalogError(f"{where}: {text!r} must be a non-negative number")
    scaled = value * scale
    if scaled != scaled.to_integral_value():
        raise CatalogError(f"{where}: {text!r} has more precision than the catalog keeps (1e-12 USD)")
    return int(scaled)


def _read_rows(path: Path, origin: str) -> list[PriceRow]:
    if not path.exists():
        raise CatalogError(f"price file not found: {path}")
    rows: list[PriceRow] = []
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in ("model", "unit") if c not in (reader.fieldnames or [])]
        if missing:
            raise CatalogError(f"{path.name}: missing column(s) {', '.join(missing)}")
        for line_no, record in enumerate(reader, start=2):
            where = f"{path.name} row {line_no}"
            model = (record.get("model") or "").strip().lower()
            unit = (record.get("unit") or "").strip()
            if not model or not unit:
                raise CatalogError(f"{where}: model and unit are required")
            effective = (record.get("effective_from") or "").strip() or ALWAYS
            if effective != ALWAYS and not _DATE.match(effective):
                raise CatalogError(f"{where}, column effective_from: {effective!r} is not YYYY-MM-DD")
            per_unit_scale = 10**6 if _PER_MILLION_UNITS.match(unit) else 10**12
            prices = {
                name: _parse_price(record.get(f"{name}_per_1m", ""), scale=10**6, where=f"{where}, column {name}_per_1m")
                for name in ("input", "cached_input", "output", "batch_input", "batch_output")
            }
            per_unit = _parse_price(
                record.get("per_unit_price", ""), scale=per_unit_scale, where=f"{where}, column per_unit_price"
            )
            rows.append(
                PriceRow(model, unit, effective, per_unit=per_unit, source=(record.get("source") or "").strip(), origin=origin, **prices)
            )
    return rows


@dataclass
class Catalog:
    """A dated price catalog. Build with `load_catalog()`; look prices up with `price()`."""

    rows: list[PriceRow]
    aliases: dict[str, str] = field(default_factory=dict)
    as_of: str = ""
    long_context_threshold: int = 272_000
    override_path: str | None = None

    def __post_init__(self) -> None:
        index: dict[tuple[str, str], list[PriceRow]] = {}
        for row in self.rows:
            index.setdefault((row.model, row.unit), []).append(row)
        for versions in index.values():
            versions.sort(key=lambda r: r.effective_from)
        self._index = index
        self._dates = {key: [r.effective_from for r in versions] for key, versions in index.items()}
        self._units: dict[str, set[str]] = {}
        for model, unit in index:
            self._units.setdefault(model, set()).add(unit)
        self._ft_models = sorted(m for m in self._units if m.startswith("ft:"))
        self.resolve = lru_cache(maxsize=4096)(self._resolve)  # type: ignore[method-assign]

    # -- lookups ---------------------------------------------------------------------------

    @property
    def models(self) -> set[str]:
        """Every model id that has at least one price row."""
        return set(self._units)

    def units(self, model: str) -> set[str]:
        """The units priced for a (resolved) model."""
        return self._units.get(model, set())

    def price(self, model: str, unit: str, day: str) -> PriceRow | None:
        """The row in force for (model, unit) on `day` (YYYY-MM-DD); None if never priced."""
        versions = self._index.get((model, unit))
        if not versions:
            return None
        position = bisect.bisect_right(self._dates[(model, unit)], day) - 1
        return versions[max(position, 0)]

    def _resolve(self, name: str) -> str | None:
        """Map a model name as reported (alias, dated snapshot, fine-tune id) to a catalog id."""
        model = (name or "").strip().lower()
        if not model:
            return None
        direct = self._resolve_plain(model)
        if direct:
            return direct
        if model.startswith("ft:"):
            return self._resolve_fine_tune(model)
        return None

    def _resolve_plain(self, model: str) -> str | None:
        if model in self._units:
            return model
        if model in self.aliases:
            return self.aliases[model]
        undated = _DATED_SUFFIX.sub("", model)
        if undated != model:
            if undated in self._units:
                return undated
            if undated in self.aliases:
                return self.aliases[undated]
        return None

    def _resolve_fine_tune(self, model: str) -> str | None:
        # ft:<base>:<org>:<suffix>:<id> is priced by the ft:<base> rows.
        base = model.split(":")[1] if model.count(":") >= 1 else ""
        if not base:
            return None
        for candidate in (f"ft:{base}", f"ft:{_DATED_SUFFIX.sub('', base)}"):
            resolved = self._resolve_plain(candidate)
            if resolved:
                return resolved
        # ft:gpt-4.1-mini -> the dated ft:gpt-4.1-mini-2025-04-14 rows.
        prefix = f"ft:{base}-"
        matches = [m for m in self._ft_models if m.startswith(prefix) and _DATED_SUFFIX.search(m)]
        return matches[-1] if matches else None

    def has_long_context(self, model: str) -> bool:
        """True when the model bills requests over the threshold at long-context rates."""
        return any(u.startswith("token") and u.endswith("long_context") for u in self.units(model))

    # -- views -----------------------------------------------------------------------------

    def to_frame(self) -> pd.DataFrame:
        """The catalog as a display table: USD as exact Decimal strings, origin marked."""
        records = []
        for r in self.rows:
            per_unit_scale = 10**6 if _PER_MILLION_UNITS.match(r.unit) else 10**12
            records.append(
                {
                    "model": r.model,
                    "unit": r.unit,
                    "effective_from": "" if r.effective_from == ALWAYS else r.effective_from,
                    "input_per_1m": _usd(r.input, 10**6),
                    "cached_input_per_1m": _usd(r.cached_input, 10**6),
                    "output_per_1m": _usd(r.output, 10**6),
                    "batch_input_per_1m": _usd(r.batch_input, 10**6),
                    "batch_output_per_1m": _usd(r.batch_output, 10**6),
                    "per_unit_price": _usd(r.per_unit, per_unit_scale),
                    "source": r.source,
                    "origin": r.origin,
                }
            )
        return pd.DataFrame.from_records(records)


def _usd(pico: int | None, scale: int) -> str:
    if pico is None:
        return ""
    return format((Decimal(pico) / scale).normalize(), "f")


def _read_aliases(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    with path.open(newline="", encoding="utf-8-sig") as handle:
        return {
            row["alias"].strip().lower(): row["model"].strip().lower()
            for row in csv.DictReader(handle)
            if row.get("alias") and row.get("model")
        }


def _merge_overrides(bundled: list[PriceRow], overrides: list[PriceRow]) -> list[PriceRow]:
    replaced = {(r.model, r.unit, r.effective_from) for r in overrides}
    kept = [r for r in bundled if (r.model, r.unit, r.effective_from) not in replaced]
    return kept + overrides


def load_catalog(
    prices_path: str | Path | None = None,
    *,
    override_path: str | Path | None = None,
    data_dir: str | Path | None = None,
) -> Catalog:
    """Load the bundled catalog, apply the local override file if there is one.

    `override_path` defaults to $WALLETA_PRICE_OVERRIDES, then `data/prices.override.csv` when
    that file exists. Raises CatalogError naming the file, row and column of a bad value.
    """
    folder = Path(data_dir) if data_dir else DATA_DIR
    rows = _read_rows(Path(prices_path) if prices_path else folder / "prices.csv", "bundled")
    chosen = override_path or os.environ.get(OVERRIDE_ENV)
    if not chosen and (folder / "prices.override.csv").exists():
        chosen = folder / "prices.override.csv"
    if chosen:
        rows = _merge_overrides(rows, _read_rows(Path(chosen), "override"))
    meta_path = folder / "catalog_meta.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    return Catalog(
        rows=rows,
        aliases=_read_aliases(folder / "model_aliases.csv"),
        as_of=meta.get("as_of", ""),
        long_context_threshold=int(meta.get("long_context_threshold_tokens", 272_000)),
        override_path=str(chosen) if chosen else None,
    )
