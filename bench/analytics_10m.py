"""Analytics at 10 million events: page data from rollups vs a naive pandas baseline.

For each size (default 1M then 10M events; `--quick`: 100k then 1M) the script
1. generates usage through Walleta's own bulk path: `events.prepare_events` + `Store.write_events`
   in chunks (every rollup maintained on the way), into a fresh SQLite file, plus customers,
   monthly revenue (some EUR, annual plans, refunds) and OpenAI-style billed costs;
2. in a fresh subprocess, times the data each page needs (one warm-up, then the median of
   `--runs` runs) and records the process's peak RSS:
     overview        monthly summary (12 months), forecast, concentration, daily trend (30 days),
                     daily anomalies (30 days)
     customers       margin per customer with tiers, since-when, month-over-month; customer anomalies
     features        feature breakdown (cost-share allocation), model breakdown, plan breakdown
     trends          day x model (90 days), week x feature (90 days), month x plan (12 months),
                     day x top-10 customers (30 days)
     reconciliation  estimate vs bill: summary, by day, by project and line item
3. in another fresh subprocess, the naive baseline: load every event with pandas (`read_sql`), then
   group in memory for each page (time per page = load + group), with its peak RSS.
What a page reads from closed months is remembered while it does not change (`walleta.analytics.
closed_months`), as in the app: the median is over repeated views; each page is also timed with
nothing remembered ("recomp"), and the first call in the process is printed ("cold").
Targets (issue 6): every page <= 300 ms median at 10M; >= 50x faster than the naive baseline;
growth from 1M to 10M <= 2x; query-process peak RSS <= 500 MB; ingest with rollups >= 200k
events/s. Next to the ingest figure, the floor under it: one chunk's rows bound and inserted the way
`write_events` does into an in-memory table with no index, no uid check and no rollup; and the
ceiling over it: the same rows inserted by SQLite itself in C (no Python binding, no rollup) into the
full-size events table with its indexes, then rolled back. Everything printed is measured in this run.

Run: python bench/analytics_10m.py [--quick] [--sizes 1000000,10000000] [--runs 5] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


START_DAY = np.datetime64("2025-12-01")
END_DAY = np.datetime64("2026-11-21")  # exclusive: the last month is in progress, as in real life
CUSTOMERS = 10_000
MODELS = [
    "gpt-5.4", "gpt-5.4-mini", "gpt-5-mini", "gpt-4.1-mini", "o4-mini", "gpt-5.4-nano", "text-embedding-3-small",
    "gpt-4.1", "gpt-5", "gpt-4o-mini", "gpt-5-nano", "o3", "gpt-4o", "gpt-4.1-nano", "gpt-5.6-sol",
]
REASONING = {"o4-mini", "o3", "gpt-5", "gpt-5-mini", "gpt-5-nano", "gpt-5.4", "gpt-5.6-sol"}
UNPRICED_MODEL = "acme-finetune-internal"  # not in the catalog: 0.2% of calls, reported as unpriced
PAGES = ("overview", "customers", "features", "trends", "reconciliation")
TARGET_MS, TARGET_SPEEDUP, TARGET_GROWTH, TARGET_RSS_MB, TARGET_INGEST = 300, 50, 2.0, 500, 200_000


# -- data generation --------------------------------------------------------------------------------


def _zipf_cdf(count: int, exponent: float) -> np.ndarray:
    weights = 1.0 / np.arange(1, count + 1) ** exponent
    return np.cumsum(weights / weights.sum())


def generate_chunk(rng: np.random.Generator, first: int, size: int, total: int) -> pd.DataFrame:
    """Rows [first, first + size) of a time-sorted year of usage (Zipf customers, s = 1.1)."""
    span_us = int((END_DAY - START_DAY).astype("timedelta64[us]").astype(np.int64))
    start_us = int(START_DAY.astype("datetime64[us]").astype(np.int64))
    lo, hi = start_us + span_us * first // total, start_us + span_us * (first + size) // total
    ts = np.sort(rng.integers(lo, hi, size))
    customer = np.searchsorted(_CUSTOMER_CDF, rng.random(size))
    feature = np.searchsorted(_FEATURE_CDF, rng.random(size))
    model_index = np.searchsorted(_MODEL_CDF, rng.random(size))
    models = np.array(MODELS, dtype=object)[model_index]
    models[rng.random(size) < 0.002] = UNPRICED_MODEL
    input_tokens = np.maximum(1, np.round(rng.lognormal(np.log(800), 0.8, size))).astype(np.int64)
    cached = np.where(rng.random(size) < 0.4, (input_tokens * rng.random(size)).astype(np.int64), 0)
    output_tokens = np.round(rng.lognormal(np.log(300), 0.7, size)).astype(np.int64)
    embedding = models == "text-embedding-3-small"
    output_tokens[embedding] = 0
    cached[embedding] = 0
    reasoning = np.where(np.isin(models, list(REASONING)), (output_tokens * 0.3).astype(np.int64), 0)
    customer_ids = _CUSTOMER_IDS[customer]
    project = np.where(customer < 10, _PROJECTS[np.minimum(customer, 9)], "proj_shared").astype(object)  # 10 own projects + shared
    batch = ((feature == 19) & (rng.random(size) < 0.5)).astype(np.int64)
    return pd.DataFrame(
        {
            "ts_us": ts,
            "customer_id": customer_ids,
            "feature": _FEATURES[feature],
            "model": models,
            "input_tokens": input_tokens,
            "cached_input_tokens": cached,
            "output_tokens": output_tokens,
            "reasoning_tokens": reasoning,
            "service_tier": np.where(rng.random(size) < 0.03, "priority", "default").astype(object),
            "batch": batch,
            "project_id": project,
            "request_id": np.char.add("req_", np.arange(first, first + size).astype("U12")).astype(object),
            "latency_ms": rng.integers(150, 6000, size),
            "status": np.where(rng.random(size) < 0.003, "error", "ok").astype(object),
        }
    )


_CUSTOMER_CDF = _zipf_cdf(CUSTOMERS, 1.1)


def configure_customers(count: int) -> None:
    """Use `count` customers instead of 10,000 (for the quick smoke run in the test suite)."""
    global CUSTOMERS, _CUSTOMER_CDF, _CUSTOMER_IDS
    CUSTOMERS = count
    _CUSTOMER_CDF = _zipf_cdf(count, 1.1)
    _CUSTOMER_IDS = np.array([f"cust_{i:05d}" for i in range(count)], dtype=object)


_FEATURE_CDF = _zipf_cdf(20, 0.6)
_MODEL_CDF = _zipf_cdf(len(MODELS), 0.6)
_CUSTOMER_IDS = np.array([f"cust_{i:05d}" for i in range(CUSTOMERS)], dtype=object)
_FEATURES = np.array([f"feature_{i:02d}" for i in range(20)], dtype=object)
_PROJECTS = np.array([f"proj_cust_{i:05d}" for i in range(10)], dtype=object)


def customers_and_revenue(rng: np.random.Generator) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """10k customers (heavier users on bigger plans) and their monthly revenue entries."""
    rank = np.arange(CUSTOMERS)
    business = rng.random(CUSTOMERS) < np.where(rank < 200, 0.6, 0.08)
    plan = np.where(business, "Business", rng.choice(["Free", "Starter", "Pro"], CUSTOMERS, p=[0.18, 0.45, 0.37]))
    price = {"Free": 0, "Starter": 2900, "Pro": 9900, "Business": 49900}
    months = pd.period_range("2025-12", "2026-11", freq="M")
    signup_month = rng.integers(-24, len(months) - 1, CUSTOMERS)
    customers, revenue = [], []
    for i in range(CUSTOMERS):
        signup = pd.Period("2025-12", freq="M") + int(signup_month[i])
        cid = _CUSTOMER_IDS[i]
        customers.append({"customer_id": cid, "name": f"Customer {i}", "plan": str(plan[i]), "signup_date": f"{signup}-{1 + i % 27:02d}",
                          "email": "", "stripe_customer_id": f"cus_{i:05d}", "seats": None, "source": "bench"})
        if plan[i] == "Free":
            continue
        currency = "EUR" if i % 9 == 4 else "USD"
        if plan[i] == "Business" and i % 3 == 0:
            revenue.append(_entry(f"{cid}:annual", cid, "2025-12-01", "2026-11-30", price["Business"] * 10, currency, "subscription"))
            continue
        for month in months:
            if month < signup:
                continue
            start, end = month.start_time.date().isoformat(), month.end_time.date().isoformat()
            revenue.append(_entry(f"{cid}:{month}", cid, start, end, price[str(plan[i])], currency, "subscription"))
            if rng.random() < 0.004:
                revenue.append(_entry(f"{cid}:{month}:refund", cid, start, end, -price[str(plan[i])], currency, "refund"))
    return customers, revenue


def _entry(uid: str, customer: str, start: str, end: str, amount: int, currency: str, kind: str) -> dict[str, Any]:
    return {"uid": f"bench:{uid}", "customer_id": customer, "period_start": start, "period_end": end, "amount_minor": int(amount),
            "currency": currency, "kind": kind, "document_id": "", "description": "", "source": "bench"}


def billed_costs(store: Any, catalog: Any) -> int:
    """OpenAI-style billed line items per day, project and (model, class), from the project rollup."""
    from walleta.analytics.reconciliation import line_item_costs

    usage = store.query(
        "SELECT day, project_id, model, service_tier, batch, events, input_tokens, cached_input_tokens, cache_write_tokens, "
        "input_audio_tokens, input_image_tokens, output_tokens, output_audio_tokens, output_image_tokens, cost_pico, unpriced_events "
        "FROM rollup_project_model_day"
    )
    lines = line_item_costs(usage, catalog)
    lines = lines[lines["token_class"] != "other"]
    lines = lines.groupby(["day", "project_id", "line_model", "token_class"], as_index=False)["estimated_pico"].sum()
    rows = [
        (f"cost:{d}:{p}::{m}, {c}", d, p, "", f"{m}, {c}", int(a), "USD", None, "", "bench")
        for d, p, m, c, a in zip(lines["day"], lines["project_id"], lines["line_model"], lines["token_class"], lines["estimated_pico"])
    ]
    with store.transaction() as cur:
        cur.executemany(
            "INSERT INTO billed_costs (uid, day, project_id, api_key_id, line_item, amount_pico, currency, quantity, quantity_unit, source) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
    return len(rows)


def build(path: Path, total: int, chunk: int) -> dict[str, float]:
    """Generate `total` events into a new SQLite file through prepare_events + write_events."""
    from walleta import revenue_rollup
    from walleta.catalog import load_catalog
    from walleta.events import prepare_events
    from walleta.store import open_store

    store = open_store(f"sqlite:///{path}")
    catalog = load_catalog()
    rng = np.random.default_rng(6)
    generate_s = prepare_s = write_s = 0.0
    for first in range(0, total, chunk):
        size = min(chunk, total - first)
        started = time.perf_counter()
        frame = generate_chunk(rng, first, size, total)
        generated = time.perf_counter()
        prepared = prepare_events(frame, catalog, source="bench")
        ready = time.perf_counter()
        result = store.write_events(prepared)
        written = time.perf_counter()
        assert result.inserted == size, result
        generate_s += generated - started
        prepare_s += ready - generated
        write_s += written - ready
        print(f"  {first + size:>12,} events  write {size / (written - ready):>9,.0f}/s  prepare {size / (ready - generated):>9,.0f}/s", flush=True)
    started = time.perf_counter()
    customers, revenue = customers_and_revenue(np.random.default_rng(7))
    store.upsert("customers", customers, ["customer_id"])
    with store.transaction() as cur:  # as every revenue import does: the revenue rollup is rebuilt with the entries
        store.upsert("revenue_entries", revenue, ["uid"], cur=cur)
        revenue_rollup.ensure_fresh(cur, store.dialect)
    bills = billed_costs(store, catalog)
    side_s = time.perf_counter() - started
    store.close()
    first = prepare_events(generate_chunk(np.random.default_rng(6), 0, min(chunk, total), total), catalog, source="bench")
    return {"generate_s": generate_s, "prepare_s": prepare_s, "write_s": write_s, "side_tables_s": side_s,
            "revenue_entries": len(revenue), "billed_rows": bills, "bare_insert_per_s": bare_insert_rate(first),
            "table_insert_per_s": table_insert_rate(path, first)}


def _insert_like_write_events(cursor: Any, table: str, prepared: pd.DataFrame) -> None:
    """Insert a chunk's prepared rows into `table` the way `Store.write_events` builds its
    statements (uid order, constant columns as literals, multi-row INSERTs of the varying values),
    in one transaction."""
    from walleta.schema import EVENT_COLUMNS
    from walleta.store import _insert_many, _split_event_columns, _uid_ordered

    split = _split_event_columns(_uid_ordered(prepared))
    values = ", ".join(split.constants.get(c, "?") for c in EVENT_COLUMNS)
    cursor.execute("BEGIN")
    _insert_many(cursor, f"INSERT INTO {table} ({', '.join(EVENT_COLUMNS)}) VALUES ", f"({values})", "", split.rows())
    cursor.execute("COMMIT")


def bare_insert_rate(prepared: pd.DataFrame) -> float:
    """Rows per second of the floor under any ingest through Python's sqlite3: the prepared rows
    of one chunk inserted as `write_events` inserts them into an in-memory SQLite table with the
    event columns and nothing else: no index, no uid check, no rollup, no disk. Ingest with
    rollups is reported as a share of it."""
    import sqlite3

    from walleta.schema import EVENT_COLUMNS

    connection = sqlite3.connect(":memory:", isolation_level=None)
    connection.execute(f"CREATE TABLE bare ({', '.join(EVENT_COLUMNS)})")
    started = time.perf_counter()
    _insert_like_write_events(connection.cursor(), "bare", prepared)
    elapsed = time.perf_counter() - started
    assert connection.execute("SELECT COUNT(*) FROM bare").fetchone()[0] == len(prepared)
    connection.close()
    return len(prepared) / elapsed


def table_insert_rate(path: Path, prepared: pd.DataFrame) -> float:
    """Rows per second of the ceiling over any ingest into this events table: one chunk's rows,
    given new uids and moved past the last stored time (as the next chunk would be), inserted by
    SQLite itself in C (`INSERT ... SELECT` from an in-memory staging table: no Python binding,
    no rollup) into the full-size `usage_events` with its uid and time indexes, on a connection
    of `open_store` (its settings). Timed to the end of the statement (the commit is not
    counted, so this is an upper bound), then rolled back: the database is left unchanged."""
    from walleta.schema import EVENT_COLUMNS
    from walleta.store import open_store

    columns = ", ".join(EVENT_COLUMNS)
    store = open_store(f"sqlite:///{path}", create=False)
    connection = store.engine.raw_connection()
    try:
        cursor = connection.cursor()
        cursor.execute("ATTACH ':memory:' AS stage")
        cursor.execute(f"CREATE TABLE stage.rows AS SELECT {columns} FROM main.usage_events WHERE 0")
        _insert_like_write_events(cursor, "stage.rows", prepared)
        shift = cursor.execute("SELECT MAX(ts_us) FROM main.usage_events").fetchone()[0] - int(prepared["ts_us"].min()) + 1
        cursor.execute("UPDATE stage.rows SET uid = uid || ':next', ts_us = ts_us + ?", [shift])
        cursor.execute("BEGIN IMMEDIATE")
        started = time.perf_counter()
        cursor.execute(f"INSERT INTO main.usage_events ({columns}) SELECT {columns} FROM stage.rows "
                       "WHERE true ORDER BY uid ON CONFLICT (uid) DO NOTHING")
        elapsed = time.perf_counter() - started
        inserted = cursor.execute("SELECT changes()").fetchone()[0]
        cursor.execute("ROLLBACK")
        cursor.execute("DETACH stage")
    finally:
        connection.close()
        store.close()
    assert inserted == len(prepared), (inserted, len(prepared))
    return len(prepared) / elapsed


# -- page data ---------------------------------------------------------------------------------------


def page_functions(store: Any) -> dict[str, Callable[[], object]]:
    """The data each page needs, from rollups (the way the app and the CLI get it)."""
    from walleta.analytics import anomalies, breakdowns, concentration, forecast, margins, reconciliation, trends
    from walleta.analytics.period import Period
    from walleta.catalog import load_catalog
    from walleta.fx import load_fx

    fx, catalog = load_fx(), load_catalog()
    month = Period.month("2026-10")
    last30, last90 = Period.days("2026-10-22", "2026-11-20"), Period.days("2026-08-23", "2026-11-20")
    year = Period.months("2025-12", "2026-11")

    def overview() -> object:
        return (trends.monthly_summary(store, year, fx), forecast.month_end_forecast(store, fx),
                concentration.concentration_summary(store, month), trends.trend(store, last30, grain="day"),
                anomalies.daily_anomalies(store, last30))

    def customers() -> object:
        return margins.customer_margins(store, month, fx), anomalies.customer_anomalies(store)

    def features() -> object:
        return (breakdowns.feature_breakdown(store, month, fx), breakdowns.model_breakdown(store, month),
                breakdowns.plan_breakdown(store, month, fx))

    def trend_page() -> object:
        return (trends.trend(store, last90, grain="day", by="model"), trends.trend(store, last90, grain="week", by="feature"),
                trends.trend(store, year, grain="month", by="plan"), trends.trend(store, last30, grain="day", by="customer", top=10))

    def reconciliation_page() -> object:
        lines = reconciliation.reconciliation_lines(store, month, catalog)
        return (reconciliation.reconciliation_summary(store, month, catalog, lines=lines),
                reconciliation.reconcile(store, month, catalog, by=("day",), lines=lines),
                reconciliation.reconcile(store, month, catalog, by=("project_id", "line_item"), lines=lines))

    return {"overview": overview, "customers": customers, "features": features, "trends": trend_page, "reconciliation": reconciliation_page}


def query_process(path: str, runs: int) -> dict[str, Any]:
    """Time every page (warm-up + `runs`) in this process; peak RSS at the end."""
    from walleta.store import open_store

    store = open_store(f"sqlite:///{path}", create=False)
    result: dict[str, Any] = {}
    for name, function in page_functions(store).items():
        started = time.perf_counter()
        function()
        cold = time.perf_counter() - started
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            function()
            times.append(time.perf_counter() - started)
        result[name] = {"median_ms": statistics.median(times) * 1000, "cold_ms": cold * 1000, "runs_ms": [t * 1000 for t in times],
                        "recomputed_ms": _recomputed_ms(function, runs)}
    result["peak_rss_mb"] = peak_rss_mb()
    return result


def _recomputed_ms(page: Callable[[], object], runs: int) -> float:
    """Median of a page with nothing remembered from closed months (`analytics.closed_months`
    cleared before each call): what the first view costs after a write to a closed month, an
    import of revenue or bills, or a change of thresholds, FX rates or prices."""
    from walleta.analytics.closed_months import cache_clear

    times = []
    for _ in range(runs):
        cache_clear()
        started = time.perf_counter()
        page()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM). Unlike getrusage's ru_maxrss, it is not inherited
    from the parent that spawned us, so it measures the query process alone."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


NAIVE_COLUMNS = ("customer_id, feature, model, day, month, project_id, service_tier, batch, requests, input_tokens, "
                 "cached_input_tokens, output_tokens, reasoning_tokens, cost_pico")


def naive_process(path: str) -> dict[str, Any]:
    """Load every event with pandas, then group in memory per page."""
    import sqlite3

    from walleta.analytics.sources import revenue_by_customer, revenue_by_customer_month
    from walleta.fx import load_fx
    from walleta.store import open_store

    started = time.perf_counter()
    with sqlite3.connect(path) as connection:
        events = pd.read_sql_query(f"SELECT {NAIVE_COLUMNS} FROM usage_events", connection)
    load_s = time.perf_counter() - started
    store = open_store(f"sqlite:///{path}", create=False)
    fx = load_fx()
    events["cost"] = events["cost_pico"].fillna(0).astype("int64")
    customers = store.query("SELECT customer_id, plan, signup_date FROM customers")

    def revenue(first: str, last: str) -> pd.DataFrame:
        return revenue_by_customer(revenue_by_customer_month(store, fx, first, last))

    october = events[events["month"] == "2026-10"]
    recent = events[events["day"] >= "2026-08-23"]
    pages: dict[str, Callable[[], object]] = {
        "overview": lambda: (events.groupby("month")["cost"].sum(), events[events["day"] >= "2026-10-22"].groupby("day")["cost"].sum(),
                             october.groupby("customer_id")["cost"].sum().sort_values()),
        "customers": lambda: (events.groupby(["customer_id", "month"])[["cost", "requests", "input_tokens", "output_tokens"]].sum(),
                              revenue("2025-12", "2026-10")),
        "features": lambda: (october.groupby("feature")[["cost", "requests", "input_tokens", "output_tokens"]].sum(),
                             october.groupby(["customer_id", "feature"])["cost"].sum(), october.groupby("model")["cost"].sum(),
                             october.merge(customers, on="customer_id").groupby("plan")["cost"].sum()),
        "trends": lambda: (recent.groupby(["day", "model"])["cost"].sum(), recent.groupby(["day", "feature"])["cost"].sum(),
                           events.merge(customers, on="customer_id").groupby(["month", "plan"])["cost"].sum(),
                           recent.groupby(["day", "customer_id"])["cost"].sum()),
        "reconciliation": lambda: october.groupby(["day", "project_id", "model", "service_tier", "batch"])[
            ["input_tokens", "cached_input_tokens", "output_tokens", "cost"]].sum(),
    }
    result: dict[str, Any] = {"load_s": load_s}
    for name, function in pages.items():
        started = time.perf_counter()
        function()
        result[name] = {"group_ms": (time.perf_counter() - started) * 1000}
    result["peak_rss_mb"] = peak_rss_mb()
    return result


def _subprocess(mode: str, path: Path, runs: int) -> dict[str, Any]:
    completed = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), f"--{mode}", str(path), "--runs", str(runs)],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"{mode} subprocess failed:\n{completed.stderr[-3000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


# -- report --------------------------------------------------------------------------------------------


def _check(ok: bool) -> str:
    return "met" if ok else "NOT met"


def report(results: dict[int, dict[str, Any]], naive_sizes: set[int]) -> bool:
    sizes = sorted(results)
    small, big = sizes[0], sizes[-1]
    all_ok = True
    print()
    for n in sizes:
        build_info, query = results[n]["build"], results[n]["query"]
        ingest = n / build_info["write_s"]
        end_to_end = n / (build_info["write_s"] + build_info["prepare_s"])
        ok = ingest >= TARGET_INGEST
        all_ok &= ok if n == big else True
        print(f"== {n:,} events ({build_info['revenue_entries']:,} revenue entries, {build_info['billed_rows']:,} billed rows, "
              f"database {results[n]['db_mb']:,.0f} MB)")
        print(f"ingest (Store.write_events, rollups maintained): {ingest:>10,.0f} events/s   target >= {TARGET_INGEST:,}: {_check(ok)}")
        print(f"ingest end to end (prepare_events + write_events): {end_to_end:>8,.0f} events/s   (prepare_events alone "
              f"{n / build_info['prepare_s']:,.0f}/s; generation not counted)")
        bare = build_info["bare_insert_per_s"]
        print(f"ingest floor (the same rows into an in-memory table, no index, no rollup): {bare:>9,.0f} rows/s; "
              f"ingest with rollups is {ingest / bare:.0%} of it")
        ceiling = build_info["table_insert_per_s"]
        print(f"ingest ceiling (the same rows inserted by SQLite itself, no Python, into the events table at this size "
              f"with its indexes, no rollup): {ceiling:>9,.0f} rows/s; the ingest target is "
              f"{'above' if ceiling < TARGET_INGEST else 'within'} it on this machine")
        rss_ok = query["peak_rss_mb"] <= TARGET_RSS_MB
        all_ok &= rss_ok if n == big else True
        print(f"query process peak RSS: {query['peak_rss_mb']:,.0f} MB   target <= {TARGET_RSS_MB}: {_check(rss_ok)}")
        naive = results[n].get("naive")
        if naive:
            print(f"naive baseline: read_sql of every event {naive['load_s']:.1f} s, peak RSS {naive['peak_rss_mb']:,.0f} MB")
        print(f"{'page':<16}{'median ms':>10}{'cold ms':>9}{'recomp ms':>10}{'<=300ms':>9}" + (f"{'naive ms':>11}{'speed-up':>10}{'>=50x':>8}" if naive else ""))
        for page in PAGES:
            median = query[page]["median_ms"]
            line = f"{page:<16}{median:>10.1f}{query[page]['cold_ms']:>9.1f}{query[page]['recomputed_ms']:>10.1f}{_check(median <= TARGET_MS):>9}"
            if n == big:
                all_ok &= median <= TARGET_MS
            if naive:
                naive_ms = naive["load_s"] * 1000 + naive[page]["group_ms"]
                speedup = naive_ms / median
                line += f"{naive_ms:>11,.0f}{speedup:>9,.0f}x{_check(speedup >= TARGET_SPEEDUP):>8}"
                if n == big:
                    all_ok &= speedup >= TARGET_SPEEDUP
            print(line)
        print("median: repeated views (what was read from closed months is remembered while it does not change, as in the app);\n"
              "cold: the first call in the process; recomp: median with nothing remembered (the first view after a write to a\n"
              "closed month, an import of revenue or bills, or a change of thresholds, FX rates or prices)")
        print()
    if small != big:
        print(f"== growth from {small:,} to {big:,} events (median page time; target <= {TARGET_GROWTH}x)")
        for page in PAGES:
            growth = results[big]["query"][page]["median_ms"] / results[small]["query"][page]["median_ms"]
            all_ok &= growth <= TARGET_GROWTH
            print(f"{page:<16}{results[small]['query'][page]['median_ms']:>9.1f} ms -> {results[big]['query'][page]['median_ms']:>7.1f} ms"
                  f"  {growth:>5.2f}x  {_check(growth <= TARGET_GROWTH)}")
        if {small, big} <= naive_sizes:
            growth = results[big]["naive"]["load_s"] / results[small]["naive"]["load_s"]
            print(f"{'naive load':<16}{results[small]['naive']['load_s'] * 1000:>9.0f} ms -> {results[big]['naive']['load_s'] * 1000:>7.0f} ms  {growth:>5.2f}x")
    print(f"\nall targets: {_check(all_ok)}")
    return all_ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="100k and 1M events")
    parser.add_argument("--sizes", help="comma-separated event counts (default 1000000,10000000)")
    parser.add_argument("--runs", type=int, default=5, help="timed runs per page (median reported)")
    parser.add_argument("--chunk", type=int, default=500_000, help="events per write_events call")
    parser.add_argument("--keep", metavar="DIR", help="keep the databases in DIR (default: a temporary folder)")
    parser.add_argument("--no-naive", action="store_true", help="skip the naive baseline")
    parser.add_argument("--customers", type=int, default=CUSTOMERS, help="number of customers (default 10,000)")
    parser.add_argument("--query", metavar="DB", help=argparse.SUPPRESS)
    parser.add_argument("--naive", metavar="DB", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.query:
        print(json.dumps(query_process(args.query, args.runs)))
        return
    if args.naive:
        print(json.dumps(naive_process(args.naive)))
        return
    configure_customers(args.customers)
    sizes = [int(s) for s in (args.sizes or ("100000,1000000" if args.quick else "1000000,10000000")).split(",")]
    folder = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="walleta-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    results: dict[int, dict[str, Any]] = {}
    try:
        for n in sizes:
            path = folder / f"analytics_{n}.db"
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
            print(f"building {n:,} events in {path} (chunks of {args.chunk:,})", flush=True)
            info = build(path, n, args.chunk)
            results[n] = {"build": info, "db_mb": path.stat().st_size / 2**20}
            print(f"timing pages ({args.runs} runs each) in a fresh process", flush=True)
            results[n]["query"] = _subprocess("query", path, args.runs)
            if not args.no_naive:
                print("timing the naive baseline in a fresh process", flush=True)
                results[n]["naive"] = _subprocess("naive", path, args.runs)
        report(results, set() if args.no_naive else set(sizes))
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
