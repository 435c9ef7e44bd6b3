"""A deterministic demo data set: a believable AI SaaS over twelve months.

About 200 customers on four plans (Free, Starter, Pro, Business; some Business customers pay
annually, some customers pay in EUR), heavy-tailed usage (a customer's load is its plan's typical load times lognormal noise; feature popularity is Zipf-like) over nine features and eleven models
(cached, reasoning, batch and priority calls included, a model migration in March and a price
cut in August), monthly Stripe-like revenue with a few refunds, a handful of heavy customers who
cost more than they pay, free-plan customers with cost and no revenue, and paying customers with
no usage. The same seed always gives the same rows; nothing depends on the clock.

Billed costs (issue 6): `billed_costs` rows like the OpenAI Costs API's, per day, project and line
item ("gpt-5.4, input", "gpt-5.4, cached input", "gpt-5.4, output"), priced from the same
catalog rates as the usage, with the gaps a real bill has: an internal project that never went
through the usage log (billed from June on), three days in October when the logger lost ~6% of
the shared project's calls, and the last day not billed yet (the Costs API lags a day).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timezone

import numpy as np
import pandas as pd

from . import revenue_rollup
from .catalog import Catalog, load_catalog
from .events import record_events
from .store import Store

__all__ = ["build_demo", "DemoSummary", "DEMO_START", "DEMO_END", "PLANS", "FEATURES"]

DEMO_START = date(2025, 12, 1)
DEMO_END = date(2026, 11, 25)  # inclusive: the last month is in progress
DEMO_SOURCE = "demo"
DEMO_VERSION = "1"

# plan -> monthly price in minor units per currency
PLANS: dict[str, dict[str, int]] = {
    "Free": {"USD": 0, "EUR": 0},
    "Starter": {"USD": 2900, "EUR": 2700},
    "Pro": {"USD": 9900, "EUR": 8900},
    "Business": {"USD": 49900, "EUR": 44900},
}
ANNUAL_DISCOUNT_MONTHS = 10  # an annual plan costs ten months

# feature -> (median input tokens, median output tokens, cached share, reasoning share of output)
FEATURES: dict[str, tuple[int, int, float, float]] = {
    "chat_assistant": (2_500, 350, 0.45, 0.0),
    "summarize": (6_000, 450, 0.10, 0.0),
    "semantic_search": (300, 0, 0.0, 0.0),
    "document_qa": (22_000, 700, 0.60, 0.0),
    "code_review": (11_000, 2_600, 0.30, 0.65),
    "email_drafts": (1_400, 550, 0.20, 0.0),
    "agent_tasks": (36_000, 2_200, 0.70, 0.55),
    "nightly_reports": (18_000, 1_400, 0.0, 0.0),
    "moderation": (220, 0, 0.0, 0.0),
}
_FEATURE_WEIGHTS = np.array([0.26, 0.12, 0.16, 0.10, 0.07, 0.12, 0.06, 0.03, 0.08])
# feature -> [(first day, model)], the model in use from that day on.
_MODEL_TIMELINE: dict[str, list[tuple[str, str]]] = {
    "chat_assistant": [("2025-01-01", "gpt-5-mini"), ("2026-03-17", "gpt-5.4-mini")],
    "summarize": [("2025-01-01", "gpt-4.1-mini")],
    "semantic_search": [("2025-01-01", "text-embedding-3-small")],
    "document_qa": [("2025-01-01", "gpt-4.1"), ("2026-03-05", "gpt-5.4")],
    "code_review": [("2025-01-01", "o4-mini")],
    "email_drafts": [("2025-01-01", "gpt-4.1-mini"), ("2026-03-17", "gpt-5.4-nano")],
    "agent_tasks": [("2025-01-01", "o3"), ("2026-03-05", "gpt-5.4"), ("2026-07-09", "gpt-5.6-sol")],
    "nightly_reports": [("2025-01-01", "gpt-5-mini")],
    "moderation": [("2025-01-01", "omni-moderation-latest")],
}
_NAME_A = "Acme Bluefin Cobalt Delta Ember Fable Granite Harbor Indigo Juniper Kestrel Lumen Maple Nimbus Orbit Pine Quartz Rivet Summit Tidal Umber Vertex Willow Xenon Yarrow Zephyr".split()
_NAME_B = "Analytics Labs Health Legal Learning Logistics Media Robotics Security Studio Systems Works".split()
_EVENTS_TOTAL = 120_000
_CALLS_PER_ROW = 30
_US_PER_DAY = 86_400_000_000


@dataclass(frozen=True)
class DemoSummary:
    """What `build_demo` wrote."""

    customers: int
    events: int
    revenue_entries: int
    billed_costs: int = 0


def _months() -> list[date]:
    months, current = [], DEMO_START
    while current <= DEMO_END:
        months.append(current)
        current = date(current.year + current.month // 12, current.month % 12 + 1, 1)
    return months


def _month_end(month: date) -> date:
    following = date(month.year + month.month // 12, month.month % 12 + 1, 1)
    return min(date.fromordinal(following.toordinal() - 1), DEMO_END)


def _customers(rng: np.random.Generator, count: int = 200) -> pd.DataFrame:
    names = [f"{a} {b}" for a in _NAME_A for b in _NAME_B]
    chosen = rng.choice(len(names), size=count, replace=False)
    rows = []
    months = _months()
    for index, name_index in enumerate(chosen):
        name = names[name_index]
        slug = name.lower().replace(" ", "-")
        signup_month = months[int(rng.integers(0, len(months) - 1))] if rng.random() < 0.55 else date(2025, int(rng.integers(1, 12)), 1)
        signup = date(signup_month.year, signup_month.month, int(rng.integers(1, 28)))
        rows.append(
            {
                "customer_id": slug,
                "name": name,
                "signup_date": signup.isoformat(),
                "email": f"billing@{slug}.example",
                "stripe_customer_id": f"cus_DEMO{index:04d}",
                "seats": int(rng.integers(1, 40)),
                "currency": "EUR" if rng.random() < 0.12 else "USD",
                "churn_month": months[int(rng.integers(3, len(months)))].isoformat() if rng.random() < 0.08 else "",
            }
        )
    return pd.DataFrame(rows)


_PLAN_INTENSITY = {"Free": 0.3, "Starter": 1.0, "Pro": 3.4, "Business": 17.0}


def _assign_plans(rng: np.random.Generator, customers: pd.DataFrame) -> pd.DataFrame:
    plans = rng.choice(["Free", "Starter", "Pro", "Business"], size=len(customers), p=[0.14, 0.40, 0.34, 0.12])
    customers = customers.assign(plan=[str(p) for p in plans])
    customers["annual"] = (customers["plan"] == "Business") & (rng.random(len(customers)) < 0.35)
    return customers


def _usage_weights(rng: np.random.Generator, customers: pd.DataFrame) -> np.ndarray:
    """Each customer's share of all usage: its plan's typical load times heavy-tailed noise
    (lognormal, sigma 0.85, capped at 6x), so two customers on one plan can differ tenfold."""
    base = customers["plan"].map(_PLAN_INTENSITY).to_numpy(dtype=float)
    weights = base * np.minimum(rng.lognormal(0.0, 0.85, len(customers)), 6.0)
    return weights / weights.sum()


def _paying_without_usage(customers: pd.DataFrame) -> list[str]:
    paying = customers[customers["plan"].isin(["Pro", "Starter"])]["customer_id"].tolist()
    return paying[-3:]


def _active(customer: pd.Series, month: date) -> bool:
    signup = date.fromisoformat(customer["signup_date"])
    if (signup.year, signup.month) > (month.year, month.month):
        return False
    return not customer["churn_month"] or month < date.fromisoformat(customer["churn_month"])


def _events(rng: np.random.Generator, customers: pd.DataFrame, weights: np.ndarray) -> pd.DataFrame:
    months = _months()
    activity = np.array([[_active(c, m) for m in months] for _, c in customers.iterrows()], dtype=float)
    growth = np.linspace(0.7, 1.3, len(months))  # the business grows over the year
    cell = weights[:, None] * activity * growth[None, :]
    cell[:, -1] *= DEMO_END.day / 30  # the month in progress
    counts = rng.poisson(cell / cell.sum() * _EVENTS_TOTAL)
    cust_index, month_index = np.nonzero(counts)
    repeats = counts[cust_index, month_index]
    cust = np.repeat(cust_index, repeats)
    month = np.repeat(month_index, repeats)
    n = len(cust)
    month_start = np.array([m.toordinal() for m in months])[month]
    month_days = np.array([(_month_end(m) - m).days + 1 for m in months])[month]
    ordinal = month_start + (rng.random(n) * month_days).astype(int)
    epoch = date(1970, 1, 1).toordinal()
    ts_us = (ordinal - epoch).astype(np.int64) * _US_PER_DAY + rng.integers(0, _US_PER_DAY, n)
    # Each customer leans on a few features.
    mixes = rng.dirichlet(_FEATURE_WEIGHTS * 6, size=len(customers))
    feature_names = list(FEATURES)
    cumulative = mixes.cumsum(axis=1)[cust]
    feature_index = (rng.random(n)[:, None] > cumulative).sum(axis=1).clip(0, len(feature_names) - 1)
    feature = np.array(feature_names, dtype=object)[feature_index]
    medians = np.array([FEATURES[f] for f in feature_names])
    med_in, med_out, cached_share, reasoning_share = (medians[feature_index, k] for k in range(4))
    # Each row is one customer-feature burst of calls within the hour (like a usage bucket).
    calls = np.maximum(1, np.round(rng.lognormal(np.log(_CALLS_PER_ROW), 0.7, n))).astype(np.int64)
    input_tokens = np.round(med_in * rng.lognormal(0, 0.6, n) * calls).astype(np.int64)
    output_tokens = np.round(med_out * rng.lognormal(0, 0.5, n) * calls).astype(np.int64)
    cached = np.where(rng.random(n) < cached_share * 1.2, np.round(input_tokens * rng.uniform(0.5, 0.95, n)), 0).astype(np.int64)
    reasoning = np.round(output_tokens * reasoning_share * rng.uniform(0.6, 1.0, n)).astype(np.int64)
    day_text = np.datetime_as_string((ts_us // _US_PER_DAY).astype("datetime64[D]"), unit="D")
    model = np.empty(n, dtype=object)
    for name, timeline in _MODEL_TIMELINE.items():
        rows = feature == name
        for start, model_name in timeline:
            model[rows & (day_text >= start)] = model_name
    batch = (feature == "nightly_reports").astype(np.int64)
    tier = np.where((feature == "agent_tasks") & (rng.random(n) < 0.12), "priority", "default").astype(object)
    customer_ids = customers["customer_id"].to_numpy(dtype=object)[cust]
    project = np.where(weights[cust] > np.quantile(weights, 0.8), "proj_" + customer_ids.astype(str), "proj_shared")
    latency = np.round(200 + output_tokens * rng.uniform(8, 20, n)).astype(np.int64)
    frame = pd.DataFrame(
        {
            "ts_us": ts_us,
            "customer_id": customer_ids,
            "feature": feature,
            "model": model,
            "input_tokens": input_tokens,
            "cached_input_tokens": cached,
            "output_tokens": output_tokens,
            "reasoning_tokens": reasoning,
            "requests": calls,
            "service_tier": tier,
            "batch": batch,
            "project_id": project.astype(object),
            "api_key_id": np.where(batch == 1, "key_batch", "key_app").astype(object),
            "latency_ms": latency // calls,
            "status": np.where(rng.random(n) < 0.004, "error", "ok").astype(object),
        }
    )
    errors = frame["status"] == "error"
    frame.loc[errors, ["output_tokens", "reasoning_tokens"]] = 0
    frame = frame.sort_values("ts_us", kind="stable").reset_index(drop=True)
    frame["request_id"] = [f"req_demo_{i:07d}" for i in range(len(frame))]
    return frame


def _revenue(rng: np.random.Generator, customers: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for _, c in customers.iterrows():
        if c["plan"] == "Free":
            continue
        price = PLANS[c["plan"]][c["currency"]]
        for month in _months():
            if not _active(c, month):
                continue
            signup = date.fromisoformat(c["signup_date"])
            if c["annual"]:
                if month.month != signup.month and not (month == DEMO_START and signup < DEMO_START):
                    continue
                end = date(month.year + 1, month.month, 1).toordinal() - 1
                rows.append(_revenue_row(c, month, date.fromordinal(end), price * ANNUAL_DISCOUNT_MONTHS, "subscription", "annual"))
                continue
            rows.append(_revenue_row(c, month, _full_month_end(month), price, "subscription", "monthly"))
    refunded = rng.choice(len(rows), size=6, replace=False)
    for index in refunded:
        original = rows[index]
        refund_document = original["document_id"].replace("in_", "re_")
        rows.append(
            {
                **original,
                "uid": f"demo:{refund_document}:refund",
                "amount_minor": -original["amount_minor"],
                "kind": "refund",
                "document_id": refund_document,
                "description": "Refund: service issue",
            }
        )
    return pd.DataFrame(rows)


def _full_month_end(month: date) -> date:
    following = date(month.year + month.month // 12, month.month % 12 + 1, 1)
    return date.fromordinal(following.toordinal() - 1)


def _revenue_row(c: pd.Series, start: date, end: date, amount: int, kind: str, cadence: str) -> dict[str, object]:
    document = f"in_DEMO_{c['stripe_customer_id'][-4:]}_{start:%Y%m}"
    return {
        "uid": f"demo:{document}:{kind}",
        "customer_id": c["customer_id"],
        "period_start": start.isoformat(),
        "period_end": end.isoformat(),
        "amount_minor": int(amount),
        "currency": c["currency"],
        "kind": kind,
        "document_id": document,
        "description": f"{c['plan']} plan ({cadence})",
        "source": DEMO_SOURCE,
    }


def demo_frames(seed: int = 7) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The demo's customers, usage events and revenue entries, without touching a database."""
    rng = np.random.default_rng(seed)
    customers = _assign_plans(rng, _customers(rng))
    weights = _usage_weights(rng, customers)
    weights[customers["customer_id"].isin(_paying_without_usage(customers)).to_numpy()] = 0.0
    weights = weights / weights.sum()
    events = _events(rng, customers, weights)
    revenue = _revenue(rng, customers)
    return customers, events, revenue


def build_demo(store: Store, catalog: Catalog | None = None, *, seed: int = 7) -> DemoSummary:
    """Write the demo data set into `store` (idempotent: a second run adds nothing)."""
    catalog = catalog or load_catalog()
    customers, events, revenue = demo_frames(seed)
    import_id = store.start_import(DEMO_SOURCE, "demo")
    result = record_events(store, events, catalog, source=DEMO_SOURCE, import_id=import_id)
    customer_rows = customers[["customer_id", "name", "plan", "signup_date", "email", "stripe_customer_id", "seats"]].assign(source=DEMO_SOURCE)
    store.upsert("customers", customer_rows.to_dict("records"), ["customer_id"])
    mappings = [
        {"source": "openai_project", "key": f"proj_{cid}", "customer_id": cid, "confirmed": 1, "method": "demo"}
        for cid in events.loc[events["project_id"] != "proj_shared", "customer_id"].unique()
    ] + [
        {"source": "stripe_customer", "key": row.stripe_customer_id, "customer_id": row.customer_id, "confirmed": 1, "method": "demo"}
        for row in customers.itertuples()
    ]
    store.upsert("customer_mappings", mappings, ["source", "key"])
    with store.transaction() as cur:
        store.upsert("revenue_entries", revenue.to_dict("records"), ["uid"], cur=cur)
        revenue_rollup.ensure_fresh(cur, store.dialect)
    billed = demo_billed_costs(store, catalog, seed=seed)
    store.upsert("billed_costs", billed.to_dict("records"), ["uid"])
    store.finish_import(import_id, status="ok", rows_read=len(events), rows_imported=result.inserted)
    store.set_meta("demo_version", DEMO_VERSION)
    return DemoSummary(customers=len(customers), events=result.inserted, revenue_entries=len(revenue), billed_costs=len(billed))


def demo_now() -> datetime:
    """The demo's 'now' (end of its last day), for pages that need a clock on demo data."""
    return datetime(DEMO_END.year, DEMO_END.month, DEMO_END.day, 23, 59, tzinfo=timezone.utc)


# -- billed costs (issue 6) -------------------------------------------------------------------

UNLOGGED_PROJECT = "proj_internal_evals"
UNLOGGED_FROM = "2026-06-01"
DRIFT_DAYS = ("2026-10-14", "2026-10-15", "2026-10-16")
DRIFT_PROJECT = "proj_shared"
DRIFT_SHARE = (106, 100)  # the bill is 6% above the logged usage on the drift days
# Line items name some models by their dated snapshot, as the Costs API does.
_SNAPSHOT_NAMES = {"gpt-4.1": "gpt-4.1-2025-04-14", "gpt-4.1-mini": "gpt-4.1-mini-2025-04-14"}


def demo_billed_costs(store: Store, catalog: Catalog, *, seed: int = 7) -> pd.DataFrame:
    """Billed-cost rows (billed_costs columns) for the demo usage already in `store`."""
    from .analytics.reconciliation import NO_PROJECT, line_item_costs

    usage = store.query(
        "SELECT day, project_id, model, service_tier, batch, events, input_tokens, cached_input_tokens, cache_write_tokens, "
        "input_audio_tokens, input_image_tokens, output_tokens, output_audio_tokens, output_image_tokens, cost_pico, "
        "unpriced_events FROM rollup_project_model_day WHERE day < ?",
        [DEMO_END.isoformat()],
    )
    lines = line_item_costs(usage, catalog)
    lines = lines[lines["token_class"] != "other"]
    lines = lines.groupby(["day", "project_id", "line_model", "token_class"], as_index=False, sort=True)[["estimated_pico", "tokens"]].sum()
    drift = lines["day"].isin(DRIFT_DAYS) & (lines["project_id"] == DRIFT_PROJECT)
    lines["amount_pico"] = [int(a) * DRIFT_SHARE[0] // DRIFT_SHARE[1] if d else int(a) for a, d in zip(lines["estimated_pico"], drift)]
    lines["tokens"] = [int(t) * DRIFT_SHARE[0] // DRIFT_SHARE[1] if d else int(t) for t, d in zip(lines["tokens"], drift)]
    frame = pd.concat([lines[["day", "project_id", "line_model", "token_class", "amount_pico", "tokens"]], _unlogged_project(catalog, seed)], ignore_index=True)
    frame = frame[frame["project_id"] != NO_PROJECT]
    item = [f"{_SNAPSHOT_NAMES.get(m, m)}, {c}" for m, c in zip(frame["line_model"], frame["token_class"])]
    return pd.DataFrame(
        {
            "uid": [f"cost:{d}:{p}::{i}" for d, p, i in zip(frame["day"], frame["project_id"], item)],
            "day": frame["day"].to_numpy(dtype=object),
            "project_id": frame["project_id"].to_numpy(dtype=object),
            "api_key_id": "",
            "line_item": item,
            "amount_pico": [int(a) for a in frame["amount_pico"]],
            "currency": "USD",
            "quantity": [float(t) for t in frame["tokens"]],
            "quantity_unit": "tokens",
            "source": DEMO_SOURCE,
        }
    )


def _unlogged_project(catalog: Catalog, seed: int) -> pd.DataFrame:
    """An internal evaluation job on gpt-5.4 that calls OpenAI without the usage log."""
    from .costing import rates_for

    rng = np.random.default_rng(seed + 1)
    days = pd.date_range(UNLOGGED_FROM, DEMO_END.isoformat(), freq="D", inclusive="left")
    rows = []
    for day in days:
        if day.weekday() >= 5:
            continue
        key = day.strftime("%Y-%m-%d")
        rates = rates_for(catalog, "gpt-5.4", key, "standard", False, False)
        tokens_in = int(rng.integers(1_500_000, 3_500_000))
        tokens_out = int(rng.integers(120_000, 300_000))
        rows.append((key, UNLOGGED_PROJECT, "gpt-5.4", "input", tokens_in * rates.text_in, tokens_in))
        rows.append((key, UNLOGGED_PROJECT, "gpt-5.4", "output", tokens_out * rates.text_out, tokens_out))
    return pd.DataFrame(rows, columns=["day", "project_id", "line_model", "token_class", "amount_pico", "tokens"])
