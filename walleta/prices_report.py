"""Price catalog reports for the Prices page: unpriced models with the usage they hold, and the
catalog rows in force on a given day. Read-only; usage comes from the rollups.
"""

from __future__ import annotations

import pandas as pd

from .catalog import Catalog
from .store import Store

__all__ = ["unpriced_models", "prices_in_force", "model_usage"]


def unpriced_models(store: Store, catalog: Catalog | None = None, *, customers: bool = True) -> pd.DataFrame:
    """Models with usage that could not be priced, largest first.

    Columns: model, unpriced_requests, unpriced_tokens, unpriced_events, customers, first_month,
    last_month, now_priced (True when `catalog` resolves the model today: re-pricing will fix it;
    False when a price is still missing; None when no catalog was given). `customers=False`
    leaves the customers column out and reads the much smaller feature x model x day rollup
    (what a warning that names the models needs; the counts are the same).
    """
    counts = ["unpriced_requests", "unpriced_tokens", "unpriced_events"]
    sums = ", ".join(f"CAST(SUM({c}) AS BIGINT) AS {c}" for c in counts)
    if customers:
        frame = store.query(
            f"SELECT model, {sums}, COUNT(DISTINCT customer_id) AS customers, MIN(month) AS first_month, MAX(month) AS last_month "
            "FROM rollup_customer_month_model WHERE unpriced_events > 0 GROUP BY model"
        )
        counts.append("customers")
    else:
        frame = store.query(
            f"SELECT model, {sums}, SUBSTR(MIN(day), 1, 7) AS first_month, SUBSTR(MAX(day), 1, 7) AS last_month "
            "FROM rollup_feature_model_day WHERE unpriced_events > 0 GROUP BY model"
        )
    if frame.empty:
        frame = pd.DataFrame(columns=["model", *counts, "first_month", "last_month"])
    for name in counts:
        frame[name] = frame[name].astype("int64")
    frame = frame[["model", *counts, "first_month", "last_month"]]
    frame = frame.sort_values(["unpriced_requests", "model"], ascending=[False, True], kind="stable").reset_index(drop=True)
    frame["now_priced"] = [None if catalog is None else catalog.resolve(m) is not None for m in frame["model"].tolist()]
    return frame


def model_usage(store: Store) -> pd.DataFrame:
    """Requests, tokens and cost per model as stored (for showing which catalog rows matter).

    Columns: model, requests, tokens, cost_pico, unpriced_requests. Largest cost first.
    """
    frame = store.query(
        "SELECT model, CAST(SUM(requests) AS BIGINT) AS requests, CAST(SUM(input_tokens + output_tokens) AS BIGINT) AS tokens, "
        "CAST(SUM(cost_pico) AS BIGINT) AS cost_pico, CAST(SUM(unpriced_requests) AS BIGINT) AS unpriced_requests "
        "FROM rollup_feature_model_day GROUP BY model"
    )
    if frame.empty:
        return pd.DataFrame(columns=["model", "requests", "tokens", "cost_pico", "unpriced_requests"])
    frame["cost_pico"] = [int(v) for v in frame["cost_pico"]]
    return frame.sort_values(["cost_pico", "model"], ascending=[False, True], kind="stable").reset_index(drop=True)


def prices_in_force(catalog: Catalog, day: str) -> pd.DataFrame:
    """The catalog as it stood on `day` (YYYY-MM-DD): per (model, unit) the row in force then.

    Same columns as `Catalog.to_frame()`. Rows that only take effect after `day` are left out,
    except where a (model, unit) has no earlier row (history before a first price uses it).
    """
    full = catalog.to_frame()
    if full.empty:
        return full
    keys = full["effective_from"].replace("", "0000-00-00")
    full = full.assign(_key=keys)
    in_force = full[full["_key"] <= day]
    first_rows = full.sort_values("_key").groupby(["model", "unit"], as_index=False, sort=False).head(1)
    missing = first_rows.merge(in_force[["model", "unit"]].drop_duplicates(), on=["model", "unit"], how="left", indicator=True)
    fallback = missing[missing["_merge"] == "left_only"].drop(columns="_merge")
    latest = in_force.sort_values("_key").groupby(["model", "unit"], as_index=False, sort=False).tail(1)
    result = pd.concat([latest, fallback], ignore_index=True)
    return result.drop(columns="_key").sort_values(["model", "unit"], kind="stable").reset_index(drop=True)
