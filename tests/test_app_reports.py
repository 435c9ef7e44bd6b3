"""Small read-only reports behind the app: data coverage, stale imports, unpriced models,
prices in force, and the price override file round trip."""

from datetime import datetime, timezone

import pandas as pd
import pytest

from walleta.catalog import load_catalog
from walleta.data_status import DAY_US, coverage, import_history, stale_sources
from walleta.errors import CatalogError
from walleta.events import record_events
from walleta.price_overrides import check_overrides, clean_overrides, read_overrides, save_overrides
from walleta.prices_report import model_usage, prices_in_force, unpriced_models


def _revenue(uid: str, customer: str, start: str, end: str, amount: int) -> dict:
    return {
        "uid": uid, "customer_id": customer, "period_start": start, "period_end": end, "amount_minor": amount,
        "currency": "USD", "kind": "subscription", "document_id": "", "description": "", "source": "test",
    }


def _ts(day: str) -> int:
    return int(datetime.fromisoformat(day).replace(tzinfo=timezone.utc).timestamp()) * 1_000_000


@pytest.fixture
def filled(store):
    catalog = load_catalog()
    events = pd.DataFrame(
        {
            "ts_us": [_ts("2026-01-05"), _ts("2026-01-20"), _ts("2026-02-03"), _ts("2026-02-04"), _ts("2026-03-01")],
            "customer_id": ["acme", "acme", "beta", None, "(unmapped)"],
            "model": ["gpt-4.1-mini", "mystery-model-x", "mystery-model-x", "gpt-4.1-mini", "other-unknown"],
            "input_tokens": [1000, 500, 700, 100, 50],
            "output_tokens": [100, 50, 30, 10, 5],
            "requests": [2, 3, 4, 5, 1],
        }
    )
    record_events(store, events, catalog, source="test")
    store.upsert(
        "customers",
        [{"customer_id": "acme", "name": "Acme", "plan": "Pro", "signup_date": "2025-06-01", "email": "", "stripe_customer_id": "", "seats": None, "source": "test"}],
        ["customer_id"],
    )
    store.upsert(
        "revenue_entries",
        [
            _revenue("r1", "acme", "2026-01-01", "2026-01-31", 9900),
            _revenue("r2", "acme", "2026-02-01", "2027-01-31", 99000),
        ],
        ["uid"],
    )
    store.upsert(
        "customer_mappings",
        [
            {"source": "openai_project", "key": "p1", "customer_id": "acme", "confirmed": 1, "method": "manual"},
            {"source": "stripe_customer", "key": "cus_1", "customer_id": "beta", "confirmed": 0, "method": "email"},
        ],
        ["source", "key"],
    )
    return store


def test_coverage_of_an_empty_store(store):
    cov = coverage(store)
    assert cov.is_empty and not cov.has_usage and cov.months is None
    assert (cov.events, cov.requests, cov.customers, cov.revenue_entries) == (0, 0, 0, 0)


def test_coverage_counts_and_ranges(filled):
    cov = coverage(filled)
    assert (cov.first_day, cov.last_day) == ("2026-01-05", "2026-03-01")
    assert cov.months == ("2026-01", "2026-03")
    assert cov.events == 5 and cov.requests == 15
    assert cov.usage_customers == 2  # acme, beta; unattributed and unmapped usage are not customers
    assert cov.unattributed_requests == 5 + 1
    assert cov.unpriced_requests == 3 + 4 + 1
    assert (cov.customers, cov.revenue_entries, cov.mappings, cov.unconfirmed_mappings) == (1, 2, 2, 1)
    assert cov.revenue_last_day == "2027-01-31" and cov.revenue_last_start == "2026-02-01"


def test_revenue_only_store_reports_on_the_months_revenue_starts(store):
    store.upsert(
        "revenue_entries",
        [_revenue("a", "x", "2026-03-01", "2027-02-28", 1)],
        ["uid"],
    )
    assert coverage(store).months == ("2026-03", "2026-03")


def test_unpriced_models_largest_first_with_catalog_status(filled):
    catalog = load_catalog()
    frame = unpriced_models(filled, catalog)
    assert frame["model"].tolist() == ["mystery-model-x", "other-unknown"]
    first = frame.iloc[0]
    assert (first["unpriced_requests"], first["unpriced_tokens"], first["customers"]) == (7, 500 + 50 + 700 + 30, 2)
    assert (first["first_month"], first["last_month"]) == ("2026-01", "2026-02")
    assert frame["now_priced"].tolist() == [False, False]


def test_unpriced_models_without_customers_reads_the_same_counts(filled):
    """`customers=False` (the Overview's warning) reads the feature x model x day rollup: the same
    rows and counts, without the customers column."""
    catalog = load_catalog()
    full = unpriced_models(filled, catalog)
    light = unpriced_models(filled, catalog, customers=False)
    assert "customers" not in light.columns and len(light) == 2
    assert light.values.tolist() == full.drop(columns="customers").values.tolist()
    assert unpriced_models(filled, customers=False)["now_priced"].tolist() == [None, None]


def test_unpriced_models_empty_table_has_columns(store):
    frame = unpriced_models(store)
    assert frame.empty and "unpriced_requests" in frame.columns
    assert list(unpriced_models(store, customers=False).columns)[:4] == ["model", "unpriced_requests", "unpriced_tokens", "unpriced_events"]


def test_model_usage_sums_requests_and_cost(filled):
    frame = model_usage(filled).set_index("model")
    assert frame.loc["gpt-4.1-mini", "requests"] == 7
    assert frame.loc["gpt-4.1-mini", "tokens"] == 1210
    assert frame.loc["gpt-4.1-mini", "cost_pico"] > 0
    assert frame.loc["mystery-model-x", "unpriced_requests"] == 7


def test_import_history_and_stale_sources(store):
    first = store.start_import("openai_usage", "usage")
    store.finish_import(first, status="ok", rows_read=3, rows_imported=3)
    demo = store.start_import("demo", "demo")
    store.finish_import(demo, status="ok")
    history = import_history(store)
    assert history["source"].tolist() == ["demo", "openai_usage"]
    assert str(history["finished"].dtype).startswith("datetime64")
    finished = int(store.scalar("SELECT finished_us FROM import_runs WHERE id = ?", [first]))
    assert stale_sources(store, finished + DAY_US).empty
    stale = stale_sources(store, finished + 3 * DAY_US)
    assert stale["source"].tolist() == ["openai_usage"] and stale["age_days"].tolist() == [3]


def test_prices_in_force_picks_the_row_effective_on_the_day():
    catalog = load_catalog()
    full = catalog.to_frame()
    dated = full[full["effective_from"] != ""].groupby(["model", "unit"]).filter(lambda g: len(g) > 1)
    model, unit = dated.iloc[0]["model"], dated.iloc[0]["unit"]
    dates = sorted(dated[(dated["model"] == model) & (dated["unit"] == unit)]["effective_from"])
    before = prices_in_force(catalog, dates[1])
    row = before[(before["model"] == model) & (before["unit"] == unit)]
    assert row["effective_from"].tolist() == [dates[1]]
    earlier = prices_in_force(catalog, "1990-01-01")
    row = earlier[(earlier["model"] == model) & (earlier["unit"] == unit)]
    assert row["effective_from"].tolist() == [dates[0]]  # before any price: the first row applies
    assert not before.duplicated(["model", "unit"]).any()


def test_override_round_trip_and_catalog_picks_it_up(tmp_path):
    path = tmp_path / "prices.override.csv"
    assert read_overrides(path).empty
    edited = pd.DataFrame(
        [
            {"model": " Mystery-Model-X ", "unit": "token", "input_per_1m": "1.5", "output_per_1m": "6", "effective_from": ""},
            {"model": None, "unit": None},
        ]
    )
    save_overrides(edited, path)
    saved = read_overrides(path)
    assert saved["model"].tolist() == ["Mystery-Model-X"] and saved["input_per_1m"].tolist() == ["1.5"]
    catalog = load_catalog(override_path=path)
    row = catalog.price("mystery-model-x", "token", "2026-01-01")
    assert row is not None and row.input == 1_500_000 and row.origin == "override"


def test_invalid_override_is_refused_with_row_and_column_and_nothing_written(tmp_path):
    path = tmp_path / "prices.override.csv"
    bad = pd.DataFrame([{"model": "m", "unit": "token", "input_per_1m": "abc"}])
    with pytest.raises(CatalogError, match=r"row 2, column input_per_1m"):
        save_overrides(bad, path)
    assert not path.exists()


def test_duplicate_override_rows_are_refused(tmp_path):
    rows = pd.DataFrame([{"model": "m", "unit": "token", "input_per_1m": "1"}] * 2)
    with pytest.raises(CatalogError, match="rows 2, 3"):
        save_overrides(rows, tmp_path / "o.csv")


def test_clean_overrides_trims_and_drops_blank_rows():
    frame = clean_overrides(pd.DataFrame([{"model": "  a ", "unit": "token"}, {"model": "", "unit": None}]))
    assert len(frame) == 1 and frame.iloc[0]["model"] == "a" and frame.iloc[0]["effective_from"] == ""
    assert check_overrides(frame).price("a", "token", "2026-01-01") is not None
