"""Money stays exact through left/outer merges (rows without a match must not turn an int64
column into float64, which holds integers exactly only up to 2^53 = USD 9,007 in pico-dollars).

Each store test writes one customer-month of 2_000_000_000_001 m-small input tokens ($1 per 1M:
10^6 pico-dollars a token, so 2_000_000_000_001 * 10^6 pico-dollars, not a float64 value) through
the real write path, next to rows the merge cannot match (a month, a day or a line item without
that usage), on SQLite and PostgreSQL. `merge_filled` itself is checked against `pandas.merge`.
"""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from walleta.analytics.forecast import daily_cost
from walleta.analytics.period import Period
from walleta.analytics.reconciliation import estimated_line_items
from walleta.analytics.trends import monthly_summary
from walleta.catalog import Catalog
from walleta.events import prepare_events
from walleta.exact_merge import merge_filled
from walleta.revenue_rollup import ensure_fresh
from walleta.simulator.loader import load_usage
from walleta.sources.mapping import mapping_overview, set_mappings
from walleta.store import Store, open_store

from .analytics_fixture import FX, fixture_catalog
from .fakes.openai_admin import FakeOpenAIAdmin

ROOT = Path(__file__).resolve().parent.parent

TOKENS = 2_000_000_000_001
COST = TOKENS * 10**6  # pico-dollars
REVENUE_MINOR = 1_000_000_001  # $10,000,000.01: 1_000_000_001 * 10^10 pico-dollars, not a float64 value
assert float(COST) != COST and float(REVENUE_MINOR * 10**10) != REVENUE_MINOR * 10**10


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    """m-small ($1 per 1M input tokens) and m-big."""
    return fixture_catalog(tmp_path / "prices")


def _usage(store: Store, catalog: Catalog, rows: list[tuple[str, str, str, int]], source: str = "test") -> None:
    """Events (customer, day, model, input tokens), project proj_<customer>, written through the
    real write path."""
    frame = pd.DataFrame([
        {"ts_us": int(pd.Timestamp(day, tz="UTC").value // 1000), "customer_id": customer, "feature": "chat", "model": model,
         "input_tokens": tokens, "output_tokens": 0, "requests": 1, "request_id": f"exact_{i}", "project_id": f"proj_{customer}"}
        for i, (customer, day, model, tokens) in enumerate(rows)
    ])
    store.write_events(prepare_events(frame, catalog, source=source))


def _revenue(store: Store, rows: list[tuple[str, str, str, int]]) -> None:
    """USD subscription entries (customer, start, end, amount_minor), revenue rollup brought up to date."""
    with store.transaction() as cur:
        store.upsert(
            "revenue_entries",
            [{"uid": f"exact_{i}", "customer_id": c, "period_start": a, "period_end": b, "amount_minor": m, "currency": "USD",
              "kind": "subscription", "document_id": "", "description": "", "source": "test"}
             for i, (c, a, b, m) in enumerate(rows)],
            ["uid"],
            cur=cur,
        )
        ensure_fresh(cur, store.dialect)


def test_monthly_summary_keeps_big_cost_and_revenue_exact(store: Store, catalog: Catalog) -> None:
    """January's cost and February's revenue above 2^53, each month missing the other measure."""
    _usage(store, catalog, [("big", "2026-01-10", "m-small", TOKENS)])
    _revenue(store, [("big", "2026-02-01", "2026-02-28", REVENUE_MINOR)])
    summary = monthly_summary(store, Period.months("2026-01", "2026-02"), FX).set_index("month")
    assert summary.loc["2026-01", "ai_cost_pico"] == COST
    assert summary.loc["2026-02", "revenue_pico"] == REVENUE_MINOR * 10**10
    assert summary.loc["2026-01", "margin_pico"] == -COST
    assert summary["ai_cost_pico"].dtype == object and type(summary.loc["2026-01", "ai_cost_pico"]) is int
    assert summary["requests"].tolist() == [1, 0] and summary["requests"].dtype == np.int64


def test_daily_cost_keeps_big_day_exact(store: Store, catalog: Catalog) -> None:
    """A day above 2^53 next to a day without usage."""
    _usage(store, catalog, [("big", "2026-01-10", "m-small", TOKENS)])
    daily = daily_cost(store, Period.days("2026-01-10", "2026-01-11"))
    assert daily["ai_cost_pico"].tolist() == [COST, 0]
    assert [type(v) for v in daily["ai_cost_pico"]] == [int, int]
    assert daily["requests"].tolist() == [1, 0] and daily["requests"].dtype == np.int64


def test_estimated_line_items_keep_big_line_exact(store: Store, catalog: Catalog) -> None:
    """A priced line above 2^53 next to a day of unpriced usage (a counts row with no line item)."""
    _usage(store, catalog, [("big", "2026-01-10", "m-small", TOKENS), ("odd", "2026-01-11", "gpt-99-unknown", 5)])
    lines = estimated_line_items(store, Period.days("2026-01-10", "2026-01-11"), catalog).set_index(["day", "line_model", "token_class"])
    assert lines.loc[("2026-01-10", "m-small", "input"), "estimated_pico"] == COST
    assert lines.loc[("2026-01-10", "m-small", "input"), "tokens"] == TOKENS
    assert lines.loc[("2026-01-11", "gpt-99-unknown", "input"), "unpriced_requests"] == 1
    assert lines["estimated_pico"].dtype == object and lines["requests"].dtype == np.int64


def test_simulator_input_keeps_big_cost_exact(store: Store, catalog: Catalog) -> None:
    """A customer-month above 2^53 next to a paying customer-month without usage."""
    _usage(store, catalog, [("big", "2026-01-10", "m-small", TOKENS)])
    _revenue(store, [("idle", "2026-01-01", "2026-01-31", 2900)])
    cells = load_usage(store, start="2026-01", end="2026-01", fx=FX, detail=False).cells.set_index("customer_id")
    assert cells.loc["big", "cost_pico"] == COST and cells.loc["big", "input_tokens"] == TOKENS
    assert cells.loc["idle", "cost_pico"] == 0 and cells.loc["idle", "baseline_revenue_pico"] == 2900 * 10**10
    assert cells["cost_pico"].dtype == np.int64
    assert pd.isna(cells.loc["big", "baseline_revenue_pico"]) is False and cells.loc["big", "baseline_revenue_pico"] == 0


def test_mapping_overview_keeps_big_cost_exact(store: Store, catalog: Catalog) -> None:
    """A project with provider usage above 2^53 next to a mapped project without usage."""
    _usage(store, catalog, [("big", "2026-01-10", "m-small", TOKENS)], source="openai_api")
    with store.transaction() as cur:
        set_mappings(store, [("openai_project", "proj_quiet", "quiet")], cur=cur)
    overview = mapping_overview(store).set_index("key")
    assert overview.loc["proj_big", "cost_usd"] == "2000000.00"
    assert overview.loc["proj_quiet", "cost_usd"] == "0.00" and overview.loc["proj_quiet", "customer_id"] == "quiet"
    assert overview["requests"].dtype == np.int64 and overview.loc["proj_big", "requests"] == 1


# merge_filled against pandas.merge


def _frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    left = pd.DataFrame({
        "k": pd.Series(["b", "a", "c"], dtype=object),
        "cost": np.array([COST, 5, 7], dtype=np.int64),
        "note": pd.Series(["x", "y", "z"], dtype=object),
    })
    right = pd.DataFrame({
        "k": pd.Series(["a", "d"], dtype=object),
        "revenue": np.array([10**30, 3], dtype=object),
        "seats": pd.array([None, 4], dtype="Int64"),
        "known": np.array([False, True]),
        "label": pd.Series(["A", "D"], dtype="str"),
    })
    return left.iloc[[0, 1, 2]], right  # (a left frame whose index is not 0..n-1 would do too)


@pytest.mark.parametrize("how", ["left", "outer", "inner", "right"])
@pytest.mark.parametrize("unique_right", [True, False])
@pytest.mark.parametrize("left_key", ["object", "str"])
def test_merge_filled_matches_pandas_rows_and_keeps_dtypes(how: str, unique_right: bool, left_key: str) -> None:
    """Unique text keys on the right take the lookup path of a left merge; repeated ones pandas'
    merge. A str key on one side and an object key on the other come out object, as in pandas."""
    left, right = _frames()
    left = left.assign(k=left["k"].astype(left_key))
    if not unique_right:
        right = pd.concat([right, right.iloc[[1]]], ignore_index=True)
    fill = {"cost": 0, "revenue": 0, "seats": 0, "known": True}
    out = merge_filled(left, right, "k", how, fill)
    expected = left.merge(right, on="k", how=how)
    assert list(out.columns) == list(expected.columns)
    assert out["k"].tolist() == expected["k"].tolist() and out["note"].fillna("-").tolist() == expected["note"].fillna("-").tolist()
    assert (out["k"].dtype, out["note"].dtype, out["label"].dtype) == (expected["k"].dtype, expected["note"].dtype, expected["label"].dtype)
    assert isinstance(out.index, pd.RangeIndex)
    assert (out["cost"].dtype, out["revenue"].dtype, out["seats"].dtype, out["known"].dtype) == (np.int64, object, pd.Int64Dtype(), bool)
    mine, theirs = left.set_index("k"), right.drop_duplicates("k").set_index("k")
    for row, pandas_row in zip(out.itertuples(index=False), expected.itertuples(index=False)):
        has_left, has_right = pd.notna(pandas_row.note), pd.notna(pandas_row.label)
        assert row.cost == (mine.loc[row.k, "cost"] if has_left else 0)
        assert row.revenue == (theirs.loc[row.k, "revenue"] if has_right else 0)
        assert row.known == (theirs.loc[row.k, "known"] if has_right else True)
        seats = theirs.loc[row.k, "seats"] if has_right else 0  # a stored NULL stays missing: only unmatched rows are filled
        assert (pd.isna(row.seats) and pd.isna(seats)) or row.seats == seats
    if how in ("left", "outer"):
        assert out.loc[out["k"] == "b", "cost"].tolist() == [COST] and out.loc[out["k"] == "b", "seats"].tolist() == [0]


def test_merge_filled_with_an_empty_side_and_shared_columns() -> None:
    left, right = _frames()
    empty = right.iloc[0:0]
    out = merge_filled(left, empty, "k", "left", {"revenue": 0, "seats": 0, "known": False})
    assert out["revenue"].tolist() == [0, 0, 0] and out["known"].tolist() == [False] * 3 and out["cost"].tolist() == [COST, 5, 7]
    with pytest.raises(ValueError, match="note"):
        merge_filled(left, left[["k", "note"]], "k", "left", {})


def test_mapping_list_with_the_openai_listing_prints_counts_as_integers(db_url: str, catalog: Catalog) -> None:
    """`walleta mapping list --openai`: keys only in the OpenAI listing get 0, not NaN, so the
    counts of the other keys stay integers (no '1.0') and the cost stays exact to the cent."""
    store = open_store(db_url)
    try:
        _usage(store, catalog, [("big", "2026-01-10", "m-small", TOKENS)], source="openai_api")
    finally:
        store.close()
    with FakeOpenAIAdmin() as fake:
        fake.state.empty()
        fake.state.projects = [{"id": "proj_new", "object": "organization.project", "name": "Globex", "created_at": 1, "archived_at": None, "status": "active"}]
        clean = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
        env = {**clean, "OPENAI_ADMIN_KEY": "sk-admin-exact", "OPENAI_BASE_URL": fake.base_url}
        done = subprocess.run([sys.executable, "-m", "walleta", "--db", db_url, "mapping", "list", "--openai", "--format", "csv"],
                              cwd=ROOT, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    rows = {row["key"]: row for row in csv.DictReader(io.StringIO(done.stdout))}
    assert (rows["proj_big"]["requests"], rows["proj_big"]["cost_usd"], rows["proj_big"]["unpriced_events"]) == ("1", "2000000.00", "0")
    assert (rows["proj_new"]["requests"], rows["proj_new"]["cost_usd"], rows["proj_new"]["name"]) == ("0", "0.00", "Globex")
