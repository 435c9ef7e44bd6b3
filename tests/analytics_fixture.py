"""A small, hand-computable book for the analytics tests (January and February 2026).

Catalog (USD per 1M tokens): m-small input 1, cached 0.10, output 2; m-big input 10, cached 1,
output 30, cut to 5 / 0.50 / 15 from 2026-01-16 (a price change mid-period).

Usage (cost in USD):
  1 acme    chat   m-small 01-05  in 1,000,000 out 500,000  10 req   2.00
  2 acme    search m-big   01-10  in 100,000 (50,000 cached) out 10,000  5 req   0.85
  3 acme    search m-big   01-20  same tokens after the price cut    5 req   0.425
  4 acme    chat   m-small 02-03  in 2,000,000                20 req   2.00
  5 euro    chat   m-small 01-07  in 3,000,000 out 1,000,000  30 req   5.00
  6 freebie chat   m-big   01-25  in 1,000,000 out 100,000     8 req   6.50
  7 mystery chat   gpt-99-unknown 01-12 in 400,000 out 40,000  4 req   unpriced
  8 mystery search m-small 01-12  in 100,000                   1 req   0.10
  9 yen     chat   m-small 01-15  in 500,000                   2 req   0.50
 10 (none)  chat   m-small 01-30  in 1,000,000 (no project)    1 req   1.00
 11 annual  search m-big   01-02  in 200,000 out 20,000        2 req   2.60
Projects: acme's calls in proj_acme, event 10 without a project, the rest in proj_shared.

Revenue: acme $100 in January with a $30 refund and $100 in February; euro EUR 50 (x1.08 =
$54); yen JPY 10,000 (no rate in the test FX table: unconverted); idle $29 (no usage); annual
$1,200 for 2026 spread by days ($101.92 in January, $92.05 in February); mystery $20.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pandas as pd

from walleta.catalog import Catalog, load_catalog
from walleta.events import prepare_events
from walleta.fx import FxTable
from walleta.revenue_rollup import ensure_fresh
from walleta.store import Store

USD = 10**12
DAY_US = 86_400_000_000

PRICES = """model,provider,unit,input_per_1m,cached_input_per_1m,output_per_1m,batch_input_per_1m,batch_output_per_1m,per_unit_price,effective_from,source
m-small,test,token,1,0.1,2,,,,,test
m-big,test,token,10,1,30,,,,,test
m-big,test,token,5,0.5,15,,,,2026-01-16,test
"""

EVENTS = [
    # customer, feature, model, day, input, cached, output, requests, project
    ("acme", "chat", "m-small", "2026-01-05", 1_000_000, 0, 500_000, 10, "proj_acme"),
    ("acme", "search", "m-big", "2026-01-10", 100_000, 50_000, 10_000, 5, "proj_acme"),
    ("acme", "search", "m-big", "2026-01-20", 100_000, 50_000, 10_000, 5, "proj_acme"),
    ("acme", "chat", "m-small", "2026-02-03", 2_000_000, 0, 0, 20, "proj_acme"),
    ("euro", "chat", "m-small", "2026-01-07", 3_000_000, 0, 1_000_000, 30, "proj_shared"),
    ("freebie", "chat", "m-big", "2026-01-25", 1_000_000, 0, 100_000, 8, "proj_shared"),
    ("mystery", "chat", "gpt-99-unknown", "2026-01-12", 400_000, 0, 40_000, 4, "proj_shared"),
    ("mystery", "search", "m-small", "2026-01-12", 100_000, 0, 0, 1, "proj_shared"),
    ("yen", "chat", "m-small", "2026-01-15", 500_000, 0, 0, 2, "proj_shared"),
    (None, "chat", "m-small", "2026-01-30", 1_000_000, 0, 0, 1, ""),
    ("annual", "search", "m-big", "2026-01-02", 200_000, 0, 20_000, 2, "proj_shared"),
]

REVENUE = [
    # uid, customer, start, end, amount_minor, currency, kind
    ("r1", "acme", "2026-01-01", "2026-01-31", 10000, "USD", "subscription"),
    ("r2", "acme", "2026-01-01", "2026-01-31", -3000, "USD", "refund"),
    ("r3", "acme", "2026-02-01", "2026-02-28", 10000, "USD", "subscription"),
    ("r4", "euro", "2026-01-01", "2026-01-31", 5000, "EUR", "subscription"),
    ("r5", "yen", "2026-01-01", "2026-01-31", 10000, "JPY", "subscription"),
    ("r6", "idle", "2026-01-01", "2026-01-31", 2900, "USD", "subscription"),
    ("r7", "annual", "2026-01-01", "2026-12-31", 120000, "USD", "subscription"),
    ("r8", "mystery", "2026-01-01", "2026-01-31", 2000, "USD", "subscription"),
]

CUSTOMERS = [
    ("acme", "Acme", "Pro", "2025-11-15"),
    ("euro", "Euro GmbH", "Starter", "2026-01-03"),
    ("yen", "Yen KK", "Starter", "2026-01-20"),
    ("idle", "Idle Inc", "Starter", "2025-11-01"),
    ("annual", "Annual Co", "Business", "2025-12-20"),
    ("mystery", "Mystery Ltd", "Pro", "2026-01-05"),
    ("freebie", "Freebie", "Free", ""),
]

BILLED = [
    # day, project, line_item, USD pico, currency
    ("2026-01-05", "proj_acme", "m-small, input", 1 * USD, "USD"),
    ("2026-01-05", "proj_acme", "m-small, output", 1 * USD, "USD"),
    ("2026-01-10", "proj_acme", "m-big-2026-01-01, input", USD // 2, "USD"),
    ("2026-01-10", "proj_acme", "m-big, cached_input_tokens", USD // 20, "USD"),
    ("2026-01-10", "proj_acme", "m-big, output", 4 * USD // 10, "USD"),
    ("2026-01-07", "proj_shared", "m-small, input", 3 * USD, "USD"),
    ("2026-01-07", "proj_shared", "m-small, output", 2 * USD, "USD"),
    ("2026-01-12", "proj_shared", "gpt-99-unknown, input", 4 * USD // 10, "USD"),
    ("2026-01-15", "proj_ghost", "m-small, input", 7 * USD, "USD"),
    ("2026-01-05", "proj_acme", "m-small, input (eur)", 9 * USD, "EUR"),
]

FX = FxTable(rates={"USD": Decimal(1), "EUR": Decimal("1.08")}, as_of={})


def fixture_catalog(folder: Path) -> Catalog:
    """The two-model catalog above, written to `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "prices.csv").write_text(PRICES)
    return load_catalog(folder / "prices.csv", data_dir=folder)


def _ts(day: str) -> int:
    return int(pd.Timestamp(day, tz="UTC").value // 1000) + DAY_US // 2


def events_frame() -> pd.DataFrame:
    """The usage rows as an input frame for `prepare_events`."""
    rows = []
    for index, (customer, feature, model, day, inp, cached, out, requests, project) in enumerate(EVENTS):
        rows.append({
            "ts_us": _ts(day), "customer_id": customer, "feature": feature, "model": model, "input_tokens": inp,
            "cached_input_tokens": cached, "output_tokens": out, "requests": requests, "project_id": project,
            "request_id": f"req_fixture_{index}",
        })
    return pd.DataFrame(rows)


def build_fixture(store: Store, catalog: Catalog, *, revenue_rollup: bool = True) -> None:
    """Write usage, customers, revenue and billed costs of the fixture into `store`. With
    `revenue_rollup=False` the revenue rollup is left stale (the raw upsert marks it so), and
    the analytics read the revenue entries themselves."""
    store.write_events(prepare_events(events_frame(), catalog, source="test"))
    store.upsert(
        "customers",
        [{"customer_id": c, "name": n, "plan": p, "signup_date": s, "email": "", "stripe_customer_id": "", "seats": None, "source": "test"}
         for c, n, p, s in CUSTOMERS],
        ["customer_id"],
    )
    store.upsert(
        "revenue_entries",
        [{"uid": u, "customer_id": c, "period_start": a, "period_end": b, "amount_minor": m, "currency": cur, "kind": k,
          "document_id": "", "description": "", "source": "test"} for u, c, a, b, m, cur, k in REVENUE],
        ["uid"],
    )
    if revenue_rollup:
        with store.transaction() as cur:
            ensure_fresh(cur, store.dialect)
    store.upsert(
        "billed_costs",
        [{"uid": f"cost:{d}:{p}::{i}", "day": d, "project_id": p, "api_key_id": "", "line_item": i.replace(" (eur)", ""),
          "amount_pico": a, "currency": cur, "quantity": None, "quantity_unit": "", "source": "test"} for d, p, i, a, cur in BILLED],
        ["uid"],
    )
