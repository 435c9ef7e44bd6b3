"""Revenue rules without a server: line revenue, allocation, kinds, USD report, MRR, FX file."""

from __future__ import annotations

import json
from decimal import Decimal

import pandas as pd
import pytest

from walleta.errors import CatalogError
from walleta.fx import FxTable, load_fx, write_fx
from walleta.revenue import allocate, monthly_revenue, mrr, plan_names, revenue_usd, spread_by_month
from walleta.sources.stripe_import import line_revenue

ENTRY_COLUMNS = ["customer_id", "period_start", "period_end", "amount_minor", "currency", "kind"]


def test_line_revenue_excludes_tax_discounts_and_promotional_credits():
    line = {
        "amount": 12000,  # 120.00 with 20% VAT included
        "discount_amounts": [{"amount": 1200}],
        "taxes": [{"amount": 1800, "tax_behavior": "inclusive"}, {"amount": 99, "tax_behavior": "exclusive"}],
        "pretax_credit_amounts": [
            {"type": "credit_balance_transaction", "amount": 500, "credit_balance_transaction": "cbtxn_promo"},
            {"type": "credit_balance_transaction", "amount": 700, "credit_balance_transaction": "cbtxn_paid"},
            {"type": "discount", "amount": 1200, "discount": "di_1"},  # same discount as discount_amounts
        ],
    }
    category = {"cbtxn_promo": "promotional", "cbtxn_paid": "paid"}.get
    # 120.00 - 12.00 discount = 108.00 incl. VAT -> 90.00 net; minus 5.00 promotional credits
    assert line_revenue(line, lambda t: category(t, "paid")) == 12000 - 1200 - 1800 - 500


def test_allocate_and_spread_are_exact():
    assert allocate(-2500, [7920]) == [-2500]
    assert allocate(1000, [1, 1, 1]) == [334, 333, 333]
    assert sum(allocate(-9999, [17, 5, 3])) == -9999
    with pytest.raises(ValueError):
        allocate(10, [0, 0])
    assert spread_by_month(100, pd.Timestamp("2026-01-31").date(), pd.Timestamp("2026-02-01").date()) == {"2026-01": 50, "2026-02": 50}


def test_non_revenue_kinds_are_kept_apart():
    entries = pd.DataFrame(
        [("a", "2026-10-01", "2026-10-31", 9900, "USD", "subscription"), ("a", "2026-10-02", "2026-10-02", 320, "USD", "stripe_fee"),
         ("a", "2026-10-05", "2026-10-05", 5000, "USD", "credit_purchase"), ("a", "2026-10-20", "2026-10-20", -900, "USD", "refund")],
        columns=ENTRY_COLUMNS,
    )
    revenue = monthly_revenue(entries)
    assert revenue.groupby("month")["amount_minor"].sum().to_dict() == {"2026-10": 9000}
    everything = monthly_revenue(entries, exclude_kinds=())
    assert int(everything["amount_minor"].sum()) == 9900 + 320 + 5000 - 900


def test_revenue_usd_never_sums_an_unknown_currency():
    entries = pd.DataFrame(
        [("a", "2026-10-01", "2026-10-01", 15000, "JPY", "subscription"), ("a", "2026-10-01", "2026-10-01", 1000, "USD", "subscription"),
         ("b", "2026-10-01", "2026-10-01", 500, "CHF", "subscription")],
        columns=ENTRY_COLUMNS,
    )
    fx = FxTable(rates={"USD": Decimal(1), "JPY": Decimal("0.0066")}, as_of={})
    report = revenue_usd(entries, fx, by=("customer_id",))
    # 15,000 yen (zero-decimal) x 0.0066 = $99.00, plus $10.00
    assert report.frame.values.tolist() == [["a", 109 * 10**12, ""], ["b", 0, "CHF"]]
    assert report.currencies == ("CHF",) and report.total_pico == 109 * 10**12
    assert revenue_usd(entries, fx, by=()).frame["unconverted_currencies"].tolist() == ["CHF"]


def test_fx_table_round_trip_and_validation(tmp_path):
    bundled = load_fx()
    assert bundled.has("EUR") and bundled.as_of["EUR"]
    frame = bundled.to_frame()
    frame.loc[len(frame)] = ["NOK", "0.091", "2026-11-25"]
    edited = write_fx(frame, tmp_path / "fx.csv")
    assert edited.rates["NOK"] == Decimal("0.091") and edited.rates["EUR"] == bundled.rates["EUR"]
    assert edited.missing(["nok", "XYZ", "usd"]) == ("XYZ",)
    with pytest.raises(CatalogError):
        write_fx(pd.DataFrame([["EU", "1", ""]], columns=["currency", "usd_per_unit", "as_of"]), tmp_path / "bad.csv")
    with pytest.raises(CatalogError):
        write_fx(pd.DataFrame([["EUR", 1.08, ""]], columns=["currency", "usd_per_unit", "as_of"]), tmp_path / "float.csv")


def item(sub: str, cus: str, unit: str, qty: int = 1, interval: str = "month", count: int = 1, usage: str = "licensed",
         status: str = "active", discounts: list | None = None, name: str = "Plan", currency: str = "USD") -> dict:
    return {"item_id": f"si_{sub}_{unit}_{usage}", "subscription_id": sub, "stripe_customer_id": cus, "status": status,
            "price_id": "p", "product_id": "prod", "plan_name": name, "currency": currency, "unit_amount_decimal": unit,
            "quantity": qty, "billing_interval": interval, "interval_count": count, "usage_type": usage, "billing_scheme": "per_unit",
            "discounts_json": json.dumps(discounts or []), "current_period_start": 0, "current_period_end": 0}


def test_mrr_normalises_intervals_and_discounts():
    items = pd.DataFrame([
        item("s1", "c1", "1000", qty=3, interval="week"),  # 30.00/week x 52/12 = 130.00
        item("s2", "c2", "30000", interval="month", count=3),  # quarterly 300.00 -> 100.00
        item("s3", "c3", "5000", discounts=[{"scope": "subscription", "amount_off": 1000, "duration": "forever", "end": None}]),
        item("s4", "c4", "5000", discounts=[{"scope": "subscription", "percent_off": "50", "duration": "repeating", "end": 100}]),
        item("s5", "c5", "5000", status="trialing"),
        item("s6", "c6", "", name="Tiered"),  # no unit price: listed, not guessed
        item("s7", "c7", "0.5", qty=3),  # sub-cent unit price: 1.5 cents -> 2 (half-even once)
        item("s8", "c8", "100", usage="metered"),
    ])
    result = mrr(items, as_of=1000).set_index("stripe_customer_id")
    assert result["mrr_minor"].to_dict() == {"c1": 13000, "c2": 10000, "c3": 4000, "c4": 5000, "c6": 0, "c7": 2}
    assert result.loc["c6", "excluded_items"] == "si_s6__licensed"
    assert plan_names(items)["c5"] == "Plan"  # trialing customers still have a plan name
