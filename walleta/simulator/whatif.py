"""Cost-side what-ifs applied to history: provider price changes, model routing, cache hits, batch.

Each what-if re-prices the monthly token aggregates of the rollups with `walleta.costing` and
yields a new AI cost per customer per month; the effect is shown as margin impact against
today's revenue (or a simulated plan, by simulating the adjusted usage).

Exact rules (P(x) = the list cost of an aggregate x at the Standard tier, non-batch unless
stated, priced with the catalog rates in force on the 15th of its month):

- price_change {model, as_of | input_per_1m/cached_input_per_1m/output_per_1m}: the model's
  Standard token price is replaced, for all history, by the row in force on `as_of` (e.g. an
  introductory price ending: the price before it began), or by the given prices (unset ones keep
  the latest catalog price; Batch derives as 50%). Per customer-month-model row:
  new cost = cost x P_new(row) / P_old(row), rounded half-even, so the share of the cost from
  cached, batch, priority or long-context calls keeps its proportion. Long-context and
  priority rates themselves are not replaced.
- cache_hit_rate {rate, models}: cached input tokens rise to at least `rate` x input tokens
  (never fall) for the listed models (all when empty); new cost = cost x P(new mix) / P(old mix).
- route {feature, to_model, batch}: all of the feature's tokens are re-priced on `to_model`:
  new cost = P(to_model, tokens) (at Batch rates when `batch: true`). Calls of the feature that
  ran on priority or long-context rates are re-priced at the standard rate of the new model.
- batch {feature}: the feature's tokens are re-priced at Batch rates of the model the feature
  used most that month (by AI cost, from the feature x model rollup): new cost = P_batch(tokens).
  A feature already on Batch therefore changes little.

Each what-if is computed against actual history; several what-ifs add their effects
(they are not compounded: a price change of the model a feature is routed to is not applied to
the routed tokens). Rows the catalog cannot price keep their cost and are reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from ..catalog import ALWAYS, Catalog
from ..costing import price_events
from ..store import Store
from ._num import HALF_EVEN, exact_sum, scale_by
from .engine import UsageData
from .plans import PlanError, _DecimalLoader

__all__ = [
    "PriceChange",
    "CacheHitRate",
    "Route",
    "Batch",
    "WhatIf",
    "WhatIfResult",
    "parse_what_ifs",
    "load_what_ifs",
    "apply_what_ifs",
    "dominant_models",
]


@dataclass(frozen=True)
class PriceChange:
    """Replace a model's Standard token price for all history."""

    model: str
    as_of: str | None = None
    prices: dict[str, Decimal] = field(default_factory=dict)  # input_per_1m, cached_input_per_1m, output_per_1m

    @property
    def label(self) -> str:
        """A short description for tables."""
        if self.as_of:
            return f"{self.model} at its {self.as_of} price"
        return f"{self.model} at " + ", ".join(f"{k} ${v}" for k, v in self.prices.items())


@dataclass(frozen=True)
class CacheHitRate:
    """Raise the share of cached input tokens to at least `rate`."""

    rate: Decimal
    models: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        """A short description for tables."""
        return f"cache hit rate {self.rate * 100:.0f}%" + (f" on {', '.join(self.models)}" if self.models else "")


@dataclass(frozen=True)
class Route:
    """Send every call of a feature to another model."""

    feature: str
    to_model: str
    batch: bool = False

    @property
    def label(self) -> str:
        """A short description for tables."""
        return f"route {self.feature} to {self.to_model}" + (" (batch)" if self.batch else "")


@dataclass(frozen=True)
class Batch:
    """Run a feature on the Batch API."""

    feature: str

    @property
    def label(self) -> str:
        """A short description for tables."""
        return f"batch for {self.feature}"


WhatIf = PriceChange | CacheHitRate | Route | Batch
_PRICE_FIELDS = ("input_per_1m", "cached_input_per_1m", "output_per_1m")


def _number(value: Any, where: str) -> Decimal:
    if isinstance(value, (bool, float)) or value is None:
        raise PlanError(where, f"must be a number written exactly, got {value!r}")
    try:
        result = Decimal(str(value))
    except InvalidOperation as exc:
        raise PlanError(where, f"not a number: {value!r}") from exc
    if not result.is_finite() or result < 0:
        raise PlanError(where, f"must be a non-negative number, got {value!r}")
    return result


def parse_what_ifs(data: Any) -> list[WhatIf]:
    """What-ifs from plain data: a list of one-key mappings (or a mapping with `what_if:`)."""
    if isinstance(data, dict) and "what_if" in data:
        data = data["what_if"]
    if not isinstance(data, list) or not data:
        raise PlanError("what_if", "must be a non-empty list")
    found: list[WhatIf] = []
    for index, item in enumerate(data):
        where = f"what_if[{index}]"
        if not isinstance(item, dict) or len(item) != 1:
            raise PlanError(where, "each what-if is one of price_change, cache_hit_rate, route, batch")
        kind, body = next(iter(item.items()))
        if not isinstance(body, dict):
            raise PlanError(f"{where}.{kind}", "must be a mapping")
        spot = f"{where}.{kind}"
        if kind == "price_change":
            if "model" not in body:
                raise PlanError(f"{spot}.model", "is required")
            prices = {k: _number(body[k], f"{spot}.{k}") for k in _PRICE_FIELDS if k in body}
            unknown = set(body) - {"model", "as_of", *_PRICE_FIELDS}
            if unknown:
                raise PlanError(f"{spot}.{sorted(unknown)[0]}", "unknown field")
            as_of = None if body.get("as_of") is None else str(body["as_of"])
            if bool(as_of) == bool(prices):
                raise PlanError(spot, "give either as_of or prices (input_per_1m, cached_input_per_1m, output_per_1m)")
            found.append(PriceChange(model=str(body["model"]).lower(), as_of=as_of, prices=prices))
        elif kind == "cache_hit_rate":
            rate = _number(body.get("rate"), f"{spot}.rate")
            if rate > 1:
                raise PlanError(f"{spot}.rate", "must be between 0 and 1")
            models = body.get("models", [])
            found.append(CacheHitRate(rate=rate, models=tuple(str(m).lower() for m in ([models] if isinstance(models, str) else models))))
        elif kind == "route":
            if "feature" not in body or "to_model" not in body:
                raise PlanError(spot, "needs feature and to_model")
            found.append(Route(feature=str(body["feature"]), to_model=str(body["to_model"]).lower(), batch=bool(body.get("batch", False))))
        elif kind == "batch":
            if "feature" not in body:
                raise PlanError(f"{spot}.feature", "is required")
            found.append(Batch(feature=str(body["feature"])))
        else:
            raise PlanError(where, f"unknown what-if {kind!r} (price_change, cache_hit_rate, route, batch)")
    return found


def load_what_ifs(path: str | Path) -> list[WhatIf]:
    """Read what-ifs from a YAML or JSON file."""
    text = Path(path).read_text(encoding="utf-8")
    return parse_what_ifs(yaml.load(text, Loader=_DecimalLoader))  # noqa: S506 - a SafeLoader subclass


# ---------------------------------------------------------------------------------------------


def _pico_per_token(per_1m: Decimal, where: str) -> int:
    scaled = per_1m * 10**6
    if scaled != scaled.to_integral_value():
        raise PlanError(where, f"{per_1m} has more precision than the catalog keeps ($0.000001 per 1M)")
    return int(scaled)


def _catalog_with(catalog: Catalog, change: PriceChange) -> Catalog:
    model = catalog.resolve(change.model)
    if model is None:
        raise PlanError("what_if.price_change.model", f"{change.model!r} is not in the price catalog")
    base = catalog.price(model, "token", change.as_of or "9999-12-31")
    if base is None:
        raise PlanError("what_if.price_change.model", f"{model} has no Standard token price")
    if not change.as_of:
        updates = {name.replace("_per_1m", ""): _pico_per_token(v, f"what_if.price_change.{name}") for name, v in change.prices.items()}
        base = replace(base, batch_input=None, batch_output=None, **updates)
    row = replace(base, effective_from=ALWAYS, origin="what-if")
    rows = [r for r in catalog.rows if not (r.model == model and r.unit == "token")] + [row]
    return Catalog(rows=rows, aliases=catalog.aliases, as_of=catalog.as_of, long_context_threshold=catalog.long_context_threshold)


def _list_cost(frame: pd.DataFrame, catalog: Catalog, *, model: str | np.ndarray | None = None, batch: bool = False) -> np.ndarray:
    """P(row): list cost of each aggregate row (pico-dollars; -1 where it cannot be priced)."""
    priced = pd.DataFrame(
        {
            "model": frame["model"].to_numpy(dtype=object) if model is None else model,
            "day": frame["month"].astype(str).to_numpy(dtype=object) + "-15",
            "input_tokens": frame["input_tokens"].to_numpy(dtype=np.int64),
            "cached_input_tokens": frame["cached_input_tokens"].to_numpy(dtype=np.int64),
            "output_tokens": frame["output_tokens"].to_numpy(dtype=np.int64),
            "requests": frame["requests"].to_numpy(dtype=np.int64),
            "batch": int(batch),
        }
    )
    cost = price_events(priced, catalog)["cost_pico"]
    return np.array([-1 if pd.isna(v) else int(v) for v in cost], dtype=object)


def _ratio_cost(cost: np.ndarray, new: np.ndarray, old: np.ndarray) -> np.ndarray:
    """cost x new / old per row (half-even). Where the old list cost is 0 the new list cost is
    taken as is; where either side cannot be priced (-1) the cost is kept."""
    result = np.array(cost, dtype=object)
    usable = np.array([o > 0 and n >= 0 for o, n in zip(old, new)], dtype=bool)
    if usable.any():
        result[usable] = scale_by(np.asarray(cost)[usable].astype(object), new[usable].astype(object), old[usable].astype(object), HALF_EVEN)
    zero_base = np.array([o == 0 and n >= 0 for o, n in zip(old, new)], dtype=bool)
    result[zero_base] = new[zero_base]
    return result


@dataclass
class WhatIfResult:
    """Cost before and after, per customer-month and per what-if.

    cells: customer_id, month, baseline_revenue_pico, cost_before_pico, cost_after_pico,
    delta_pico, margin_before_pico, margin_after_pico. effects: what_if, customer_id, month,
    delta_pico. summary: one row per what-if and a combined row. data: the usage with the new
    costs (and cached tokens), to simulate plans under them. notes: rows left unchanged, etc.
    """

    cells: pd.DataFrame
    effects: pd.DataFrame
    summary: pd.DataFrame
    data: UsageData
    notes: tuple[str, ...] = ()


def dominant_models(store: Store, start: str, end: str) -> pd.DataFrame:
    """The model each feature used most (by AI cost, then tokens) in each month."""
    frame = store.query(
        "SELECT feature, substr(day, 1, 7) AS month, model, CAST(SUM(cost_pico) AS BIGINT) AS cost_pico, "
        "CAST(SUM(input_tokens + output_tokens) AS BIGINT) AS tokens FROM rollup_feature_model_day "
        "WHERE day >= ? AND day <= ? GROUP BY feature, substr(day, 1, 7), model",
        [f"{start}-01", f"{end}-31"],
    )
    if frame.empty:
        return pd.DataFrame(columns=["feature", "month", "model"])
    frame = frame.sort_values(["feature", "month", "cost_pico", "tokens", "model"], ascending=[True, True, False, False, True])
    return frame.drop_duplicates(["feature", "month"])[["feature", "month", "model"]].reset_index(drop=True)


def _matches_model(names: pd.Series, wanted: tuple[str, ...] | str, catalog: Catalog) -> np.ndarray:
    targets = {wanted} if isinstance(wanted, str) else set(wanted)
    resolved = {n: (catalog.resolve(n) or n.lower()) for n in names.unique()}
    targets = {catalog.resolve(t) or t for t in targets}
    return names.map(lambda n: resolved[n] in targets).to_numpy(dtype=bool)


def apply_what_ifs(data: UsageData, what_ifs: list[WhatIf], catalog: Catalog, *, dominant: pd.DataFrame | None = None) -> WhatIfResult:
    """Apply what-ifs to history (see the module docs). `data` needs by_model and by_feature."""
    if data.by_model is None or data.by_feature is None:
        raise PlanError("what_if", "what-ifs need usage by model and by feature (load_usage(detail=True))")
    by_model = data.by_model.reset_index(drop=True).copy()
    by_feature = data.by_feature.reset_index(drop=True).copy()
    notes: list[str] = []
    effects = []
    model_cost = by_model["cost_pico"].to_numpy(dtype=object).copy()
    feature_cost = by_feature["cost_pico"].to_numpy(dtype=object).copy()
    cached_extra = np.zeros(len(by_model), dtype=np.int64)
    for what_if in what_ifs:
        if isinstance(what_if, (PriceChange, CacheHitRate)):
            chosen = _matches_model(by_model["model"], what_if.model if isinstance(what_if, PriceChange) else what_if.models, catalog) if (isinstance(what_if, PriceChange) or what_if.models) else np.ones(len(by_model), dtype=bool)
            rows = by_model[chosen]
            old = _list_cost(rows, catalog)
            if isinstance(what_if, PriceChange):
                new = _list_cost(rows, _catalog_with(catalog, what_if))
            else:
                inputs = rows["input_tokens"].to_numpy(dtype=np.int64)
                wanted = scale_by(inputs, np.full(len(rows), what_if.rate.as_integer_ratio()[0]), np.full(len(rows), what_if.rate.as_integer_ratio()[1]), "down")
                raised = np.maximum(rows["cached_input_tokens"].to_numpy(dtype=np.int64), np.asarray(wanted, dtype=np.int64))
                cached_extra[chosen] += raised - rows["cached_input_tokens"].to_numpy(dtype=np.int64)
                new = _list_cost(rows.assign(cached_input_tokens=raised), catalog)
            cost = rows["cost_pico"].to_numpy(dtype=object)
            after = _ratio_cost(cost, new, old)
            _note_unpriced(notes, what_if.label, new, old)
            delta = after - cost
            effects.append(pd.DataFrame({"what_if": what_if.label, "customer_id": rows["customer_id"].to_numpy(), "month": rows["month"].to_numpy(), "delta_pico": delta}))
            model_cost[chosen] = model_cost[chosen] + delta
        else:
            chosen = (by_feature["feature"] == what_if.feature).to_numpy(dtype=bool)
            rows = by_feature[chosen]
            if isinstance(what_if, Route):
                if catalog.resolve(what_if.to_model) is None:
                    raise PlanError("what_if.route.to_model", f"{what_if.to_model!r} is not in the price catalog")
                new = _list_cost(rows, catalog, model=np.full(len(rows), what_if.to_model, dtype=object), batch=what_if.batch)
            else:
                if dominant is None:
                    raise PlanError("what_if.batch", "batch needs the model each feature used (dominant_models)")
                models = rows[["month"]].merge(dominant[dominant["feature"] == what_if.feature], on="month", how="left")["model"]
                models = models.fillna("").to_numpy(dtype=object)
                new = _list_cost(rows, catalog, model=models, batch=True)
            cost = rows["cost_pico"].to_numpy(dtype=object)
            after = np.where(np.array([v >= 0 for v in new], dtype=bool), new, cost)
            _note_unpriced(notes, what_if.label, new, np.ones(len(new), dtype=object))
            delta = after - cost
            effects.append(pd.DataFrame({"what_if": what_if.label, "customer_id": rows["customer_id"].to_numpy(), "month": rows["month"].to_numpy(), "delta_pico": delta}))
            feature_cost[chosen] = feature_cost[chosen] + delta
        if not chosen.any():
            notes.append(f"{what_if.label}: no usage matches; no effect")
    effect_frame = pd.concat(effects, ignore_index=True) if effects else pd.DataFrame(columns=["what_if", "customer_id", "month", "delta_pico"])
    return _result(data, by_model.assign(cost_pico=model_cost, cached_input_tokens=by_model["cached_input_tokens"] + cached_extra), by_feature.assign(cost_pico=feature_cost), effect_frame, [w.label for w in what_ifs], cached_extra, notes)


def _note_unpriced(notes: list[str], label: str, new: np.ndarray, old: np.ndarray) -> None:
    bad = int(sum(1 for n, o in zip(new, old) if n < 0 or o < 0))
    if bad:
        notes.append(f"{label}: {bad} usage rows could not be re-priced and keep their cost")


def _result(data: UsageData, by_model: pd.DataFrame, by_feature: pd.DataFrame, effects: pd.DataFrame, labels: list[str], cached_extra: np.ndarray, notes: list[str]) -> WhatIfResult:
    cells = data.cells.reset_index(drop=True).copy()
    keys = ["customer_id", "month"]
    total = effects.groupby(keys, as_index=False)["delta_pico"].sum() if not effects.empty else pd.DataFrame(columns=[*keys, "delta_pico"])
    extra = data.by_model.assign(extra=cached_extra).groupby(keys, as_index=False)["extra"].sum()  # type: ignore[union-attr]
    cells = cells.merge(total, on=keys, how="left").merge(extra, on=keys, how="left")
    delta = np.array([0 if pd.isna(v) else int(v) for v in cells["delta_pico"]], dtype=object)
    before = cells["cost_pico"].to_numpy(dtype=object) if "cost_pico" in cells.columns else np.zeros(len(cells), dtype=object)
    after = before + delta
    revenue = cells["baseline_revenue_pico"] if "baseline_revenue_pico" in cells.columns else pd.Series([None] * len(cells))
    known = revenue.notna().to_numpy()
    revenue_values = np.array([int(v) if k else 0 for v, k in zip(revenue, known)], dtype=object)
    table = pd.DataFrame(
        {
            "customer_id": cells["customer_id"],
            "month": cells["month"],
            "baseline_revenue_pico": revenue_values,
            "cost_before_pico": before,
            "cost_after_pico": after,
            "delta_pico": delta,
            "margin_before_pico": revenue_values - before,
            "margin_after_pico": revenue_values - after,
        }
    )
    # A left merge keeps the left order, so `cells` rows line up with data.cells rows.
    adjusted_cells = data.cells.reset_index(drop=True).copy()
    if "baseline_cost_pico" not in adjusted_cells.columns:
        adjusted_cells["baseline_cost_pico"] = pd.array([int(v) for v in before], dtype="Int64")
    adjusted_cells["cost_pico"] = pd.array([int(v) for v in after], dtype="Int64")
    if "cached_input_tokens" in adjusted_cells.columns:
        adjusted_cells["cached_input_tokens"] = adjusted_cells["cached_input_tokens"].to_numpy(dtype=np.int64) + cells["extra"].fillna(0).to_numpy(dtype=np.int64)
    summary = _summary(table, effects, labels, known)
    adjusted = UsageData(cells=adjusted_cells, by_model=by_model, by_feature=by_feature, months=data.months, notes=data.notes)
    return WhatIfResult(cells=table, effects=effects, summary=summary, data=adjusted, notes=tuple(notes))


def _summary(table: pd.DataFrame, effects: pd.DataFrame, labels: list[str], known: np.ndarray) -> pd.DataFrame:
    revenue = exact_sum(table.loc[known, "baseline_revenue_pico"].to_numpy())
    before = exact_sum(table["cost_before_pico"].to_numpy())
    rows = []
    for label in [*labels, "all what-ifs together"]:
        part = effects if label == "all what-ifs together" else effects[effects["what_if"] == label]
        delta = exact_sum(part["delta_pico"].to_numpy()) if not part.empty else 0
        known_cost_before = exact_sum(table.loc[known, "cost_before_pico"].to_numpy())
        margin_before = revenue - known_cost_before
        known_delta = exact_sum(part.merge(table.loc[known, ["customer_id", "month"]], on=["customer_id", "month"])["delta_pico"].to_numpy()) if not part.empty else 0
        margin_after = margin_before - known_delta
        rows.append(
            {
                "what_if": label,
                "cost_before_pico": before,
                "cost_delta_pico": delta,
                "cost_after_pico": before + delta,
                "revenue_pico": revenue,
                "margin_before_pct": None if revenue == 0 else (Decimal(margin_before) / revenue).quantize(Decimal("0.0001")),
                "margin_after_pct": None if revenue == 0 else (Decimal(margin_after) / revenue).quantize(Decimal("0.0001")),
                "customers_affected": int(part.loc[part["delta_pico"] != 0, "customer_id"].nunique()) if not part.empty else 0,
            }
        )
    return pd.DataFrame(rows)
