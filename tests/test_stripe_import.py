"""Stripe import with the real stripe 16 client against a local fake Stripe on 127.0.0.1.

Every expected amount below is computed by hand in the comments (minor units of the currency).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest
import stripe

from tests.fakes.stripe_data import invoice, line, load_account, ts
from tests.fakes.stripe_server import FakeStripe
from tests.revenue_checks import assert_revenue_rollup_current
from walleta.fx import FxTable
from walleta.matching import map_customer, unmatched_revenue
from walleta.revenue import monthly_fees, monthly_revenue, mrr, revenue_usd
from walleta.sources.stripe_import import import_stripe, make_client
from walleta.store import open_store

ROOT = Path(__file__).resolve().parent.parent
NOW = ts("2026-11-20")

# Globex's annual plan: 120000 EUR over 2026-03-10..2027-03-09 (365 days), by days with the
# largest remainder: 31-day months 10191.78 -> 10191 or 10192, 30-day 9863.01, 22 days 7232.88,
# 28 days 9205.48, 9 days 2958.90; 7 cents of remainder go to Mar-27, Mar-26 and the first five
# 31-day months. The credit note -10000 spreads the same way: 30-day months -821.92, 22 days
# -602.74, 9 days -246.58, 31-day -849.32; 7 units to the four 30-day months, Mar-26, Mar-27 and
# May. Net per month = plan + credit note.
GLOBEX = {
    "2026-03": 7233 - 603, "2026-04": 9863 - 822, "2026-05": 10192 - 850, "2026-06": 9863 - 822,
    "2026-07": 10192 - 849, "2026-08": 10192 - 849, "2026-09": 9863 - 822, "2026-10": 10192 - 849,
    "2026-11": 9863 - 822, "2026-12": 10192 - 849, "2027-01": 10191 - 849, "2027-02": 9205 - 767,
    "2027-03": 2959 - 247,
}
ACME = {
    "2026-08": 2500 - 500,  # in arrears usage line Aug, minus its share of the 20% coupon
    "2026-09": (9900 - 1980) + (5000 - 1000),  # Pro Sep + setup fee (exclusive tax not revenue)
    # Pro Oct 7920; refund 30.00 of a 95.04 invoice whose revenue is 79.20 -> 30.00*79.20/95.04 = 25.00;
    # usage 30.00 of which 10.00 paid by a promotional grant (a discount) and 20.00 by paid credits (revenue)
    "2026-10": 7920 - 2500 + (3000 - 1000),
}
INITECH = {"2026-10": 15000 - 1364}  # JPY, tax included in the price
UMBRELLA = {"2026-10": 2687, "2026-11": 2213}  # 49.00 over Oct 15..Nov 14: 17/31 and 14/31 days


def usage_customers(store) -> None:
    store.upsert("customers", [
        {"customer_id": "acme", "name": "Acme", "email": "", "stripe_customer_id": "", "plan": "", "signup_date": "", "source": "test"},
        {"customer_id": "globex", "name": "Globex", "email": "OPS@globex.test ", "stripe_customer_id": "", "plan": "", "signup_date": "", "source": "test"},
        {"customer_id": "initech", "name": "Initech", "email": "", "stripe_customer_id": "cus_C", "plan": "", "signup_date": "", "source": "test"},
        {"customer_id": "umbrella-corporation", "name": "Umbrella Corporation", "email": "", "stripe_customer_id": "", "plan": "", "signup_date": "", "source": "test"},
    ], ["customer_id"])


@pytest.fixture
def fake():
    with FakeStripe(page_size=2, embedded_lines=2) as server:
        load_account(server)
        yield server


def client_for(fake: FakeStripe) -> stripe.StripeClient:
    return make_client("sk_test_fake", api_base=fake.url)


def per_customer_month(store) -> dict[str, dict[str, int]]:
    entries = store.query("SELECT customer_id, period_start, period_end, amount_minor, currency, kind FROM revenue_entries")
    monthly = monthly_revenue(entries)
    out: dict[str, dict[str, int]] = {}
    for row in monthly.groupby(["customer_id", "month"], as_index=False)["amount_minor"].sum().itertuples():
        out.setdefault(row.customer_id, {})[row.month] = int(row.amount_minor)
    return out


def run_import(store, fake, **kwargs):
    return import_stripe(store, client_for(fake), now=lambda: NOW, sleep=lambda _s: None, **kwargs)


def test_revenue_per_customer_per_month_to_the_cent(store, fake):
    # a 429 on the first invoice page (retried by the importer), a 500 in the middle of the
    # customer and invoice paginations (retried by the SDK): nothing may be counted twice
    fake.fail("GET", "/v1/invoices", 429, when=lambda r: "starting_after" not in r.query,
              body={"error": {"type": "invalid_request_error", "code": "rate_limit", "message": "Too many requests"}})
    fake.fail("GET", "/v1/customers", 500, when=lambda r: "starting_after" in r.query)
    fake.fail("GET", "/v1/invoices", 500, when=lambda r: r.query.get("starting_after") == "in_A4")
    usage_customers(store)
    summary = run_import(store, fake)

    assert summary.rate_limit_retries == 1
    assert summary.customers == 5 and summary.invoices_paid == 7 and summary.invoices_waiting == 1
    assert summary.credit_notes == 1 and summary.refunds == 2 and summary.refunds_covered_by_credit_notes == 1
    # the failed pages were asked again, and each object was counted once
    customer_pages = [r.query.get("starting_after") for r in fake.calls("GET", "/v1/customers")]
    assert customer_pages == [None, "cus_D", "cus_D", "cus_B"]
    assert [r.query.get("starting_after") for r in fake.calls("GET", "/v1/invoices")] == [None, None, "in_A4", "in_A4", "in_A3", "in_C1"]
    # line items beyond the two embedded in the invoice were paged
    assert [r.query.get("starting_after") for r in fake.calls("GET", "/v1/invoices/in_A1/lines")] == ["il_A1b"]
    assert store.scalar("SELECT COUNT(*) FROM stripe_customers") == 5

    revenue = per_customer_month(store)
    assert revenue["acme"] == ACME
    assert revenue["globex"] == GLOBEX
    assert sum(GLOBEX.values()) == 110000
    assert revenue["initech"] == INITECH
    assert revenue["cus_D"] == UMBRELLA  # unmatched: kept under the Stripe id, never dropped
    assert set(revenue) == {"acme", "globex", "initech", "cus_D"}

    entries = store.query("SELECT customer_id, period_start, period_end, amount_minor, currency, kind FROM revenue_entries")
    assert set(zip(entries["customer_id"], entries["currency"])) >= {("acme", "USD"), ("globex", "EUR"), ("initech", "JPY")}
    credits = monthly_revenue(entries, only_kinds={"credit_purchase"})
    assert credits[["customer_id", "month", "amount_minor"]].values.tolist() == [["acme", "2026-10", 10000]]
    fees = monthly_fees(entries)
    assert sorted(fees[["customer_id", "month", "currency", "amount_minor"]].values.tolist()) == [
        ["acme", "2026-09", "USD", 514], ["globex", "2026-03", "EUR", 2107]]
    refund = entries[entries["kind"] == "refund"]
    assert refund[["customer_id", "period_start", "amount_minor"]].values.tolist() == [["acme", "2026-10-01", -2500]]

    # the import ran once and recorded its cursor with the data
    runs = store.query("SELECT status, cursor FROM import_runs WHERE source = 'stripe'")
    assert runs["status"].tolist() == ["ok"]
    cursor = json.loads(runs["cursor"][0])
    assert cursor["hwm"] == NOW and cursor["invoices"] == ["in_A5"]


def test_matching_plans_and_mrr(store, fake):
    usage_customers(store)
    summary = run_import(store, fake)
    mappings = store.query("SELECT key, customer_id, method FROM customer_mappings WHERE source = 'stripe_customer' ORDER BY key")
    assert mappings.values.tolist() == [["cus_A", "acme", "metadata"], ["cus_B", "globex", "email"], ["cus_C", "initech", "stripe_id"]]
    assert summary.mappings_added == 3 and summary.unmatched_customers == 2  # cus_D proposed, cus_E nothing
    plans = dict(store.query("SELECT customer_id, plan FROM customers").values.tolist())
    assert plans == {"acme": "Pro + Extra seats", "globex": "Business (annual)", "initech": "Team JP", "umbrella-corporation": ""}

    items = store.query("SELECT * FROM stripe_subscription_items")
    assert sorted(items["subscription_id"].unique()) == ["sub_A", "sub_B", "sub_C", "sub_D"]  # canceled sub_E not listed
    monthly = mrr(items, as_of=NOW)
    # (Pro 99.00 + 2 seats x 10.00) - 20% coupon = 95.20; annual 1,200.00 EUR / 12; 15,000 JPY; 49.00;
    # the metered item is left out
    assert [r.query.get("starting_after") for r in fake.calls("GET", "/v1/subscription_items")] == ["si_A2"]
    assert monthly[["stripe_customer_id", "currency", "mrr_minor"]].values.tolist() == [
        ["cus_A", "USD", 9520], ["cus_B", "EUR", 10000], ["cus_C", "JPY", 15000], ["cus_D", "USD", 4900]]

    # a manual mapping re-points the unmatched revenue
    assert not unmatched_revenue(store).empty
    moved = map_customer(store, "cus_D", "umbrella-corporation")
    assert moved == 1  # one line (spread over two months at report time)
    assert per_customer_month(store)["umbrella-corporation"] == UMBRELLA
    assert unmatched_revenue(store).empty


def test_usd_report_lists_unconverted_currencies(store, fake):
    usage_customers(store)
    run_import(store, fake)
    entries = store.query("SELECT customer_id, period_start, period_end, amount_minor, currency, kind FROM revenue_entries")
    fx = FxTable(rates={"USD": Decimal(1), "EUR": Decimal("1.08")}, as_of={"USD": "2026-11-20", "EUR": "2026-11-20"})
    report = revenue_usd(entries, fx, by=("customer_id", "month"), first_month="2026-10", last_month="2026-10")
    rows = {r.customer_id: (r.revenue_pico, r.unconverted_currencies) for r in report.frame.itertuples()}
    assert rows["acme"] == (74_20 * 10**10, "")  # $74.20
    assert rows["globex"] == (9343 * 108 * 10**8, "")  # EUR 93.43 x 1.08 = $100.9044
    assert rows["initech"] == (0, "JPY")  # never summed in silently
    assert report.currencies == ("JPY",)
    assert report.unconverted.values.tolist() == [["initech", "2026-10", "JPY", 13636]]
    assert report.total_pico == 74_20 * 10**10 + 9343 * 108 * 10**8 + 2687 * 10**10


def test_incremental_import_adds_only_what_is_new(store, fake):
    usage_customers(store)
    run_import(store, fake)
    before = store.query("SELECT uid, customer_id, amount_minor FROM revenue_entries ORDER BY uid")

    fake.requests.clear()
    again = run_import(store, fake)
    after = store.query("SELECT uid, customer_id, amount_minor FROM revenue_entries ORDER BY uid")
    pd.testing.assert_frame_equal(before, after)
    assert again.invoices_paid == 0 and again.entries_written == 0
    invoice_lists = fake.calls("GET", "/v1/invoices")
    assert invoice_lists[0].query["created[gte]"] == str(NOW - 3600)  # high-water mark minus an hour
    assert fake.calls("GET", "/v1/invoices/in_A5")  # the open invoice is re-checked

    # the open invoice gets paid and a new one arrives
    fake.objects["invoices"]["in_A5"]["status"] = "paid"
    fake.add("invoices", invoice("in_C2", "cus_C", "jpy", "2026-11-20T06:00", "paid", [
        line("il_C2a", 15000, "jpy", "2026-11-01", "2026-12-01", price="price_jp_m", product="prod_jp", subscription="sub_C",
             tax=1364, tax_behavior="inclusive"),
    ], total=15000, payment_intent="pi_C2", subscription="sub_C"))
    third = import_stripe(store, client_for(fake), now=lambda: NOW + 86400, sleep=lambda _s: None)
    assert third.invoices_paid == 2
    revenue = per_customer_month(store)
    assert revenue["acme"]["2026-11"] == 9900  # no coupon amount on this line
    assert revenue["initech"] == {**INITECH, "2026-11": 13636}
    assert len(store.query("SELECT uid FROM revenue_entries")) == len(before) + 2
    assert_revenue_rollup_current(store)
    assert json.loads(store.last_cursor("stripe"))["invoices"] == []


def test_failed_import_writes_nothing(store, fake):
    fake.fail("GET", "/v1/refunds", 500, times=10)
    from walleta.errors import SourceError

    with pytest.raises(SourceError, match="HTTP 500"):
        run_import(store, fake)
    assert store.scalar("SELECT COUNT(*) FROM revenue_entries") == 0
    assert store.query("SELECT status FROM import_runs")["status"].tolist() == ["failed"]
    assert len(fake.calls("GET", "/v1/refunds")) == 3  # max_network_retries=2


def test_cli_import_stripe(tmp_path, fake):
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    env = {**os.environ, "STRIPE_API_KEY": "sk_test_cli_secret", "WALLETA_STRIPE_API_BASE": fake.url}
    result = subprocess.run([sys.executable, "-m", "walleta", "--db", db, "import", "stripe", "--since", "2026-01-01"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "invoices: 7 paid" in result.stdout
    assert "sk_test_cli_secret" not in result.stdout + result.stderr
    assert fake.calls("GET", "/v1/invoices")[0].query["created[gte]"] == str(ts("2026-01-01"))
    assert fake.requests[0].headers["authorization"] == "Bearer sk_test_cli_secret"
    store = open_store(db)
    assert store.scalar("SELECT COUNT(*) FROM revenue_entries WHERE customer_id = 'cus_A'") > 0  # nobody to match to


def test_missing_key_is_a_config_error(monkeypatch):
    from walleta.errors import ConfigError

    monkeypatch.delenv("STRIPE_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="STRIPE_API_KEY"):
        make_client()


def test_credit_validity_custom_credit_note_and_orphan_refund(store):
    with FakeStripe() as fake:
        fake.add("customers", {"id": "cus_Z", "object": "customer", "name": "Zeta", "email": "", "created": ts("2026-01-01"), "metadata": {}})
        fake.add("invoices", invoice("in_Z1", "cus_Z", "usd", "2026-10-01", "paid", [
            # 60.00 of credits valid 60 days, recognised straight-line: Oct 1..Nov 29 -> 31 and 29 days
            line("il_Z1a", 6000, "usd", "2026-10-01", "2026-10-01", price="price_cr", product="prod_cr",
                 metadata={"walleta_credit_valid_days": "60"}),
            line("il_Z1b", 3000, "usd", "2026-10-01", "2026-10-01", price="price_setup", product="prod_setup"),
            # product listed as prepaid credits, no validity: deferred until used
            line("il_Z1c", 2000, "usd", "2026-10-01", "2026-10-01", price="price_cr2", product="prod_pack"),
        ], total=11000, payment_intent="pi_Z1"))
        fake.add("credit_notes", {
            "id": "cn_Z", "object": "credit_note", "invoice": "in_Z1", "customer": "cus_Z", "currency": "usd", "status": "issued",
            "created": ts("2026-10-10"), "number": "CN-Z", "refunds": [],
            # a custom line of 9.00: spread over the invoice lines by revenue 6000:3000:2000
            "_lines": [{"id": "cnli_Z", "object": "credit_note_line_item", "type": "custom_line_item", "invoice_line_item": None,
                        "amount": 1100, "discount_amounts": [], "taxes": []},
                       {"id": "cnli_Z0", "object": "credit_note_line_item", "type": "custom_line_item", "invoice_line_item": None,
                        "amount": 0, "discount_amounts": [], "taxes": []},
                       # the third line is beyond the embedded two: read from /v1/credit_notes/cn_Z/lines
                       {"id": "cnli_Z2", "object": "credit_note_line_item", "type": "invoice_line_item", "invoice_line_item": "il_Z1b",
                        "amount": 110, "discount_amounts": [{"amount": 10, "discount": "di_x"}], "taxes": []}],
        })
        fake.add("refunds", {"id": "re_Z", "object": "refund", "amount": 700, "currency": "usd", "status": "succeeded",
                             "created": ts("2026-10-12"), "payment_intent": "pi_other", "charge": "ch_other"})
        fake.add("refunds", {"id": "re_P", "object": "refund", "amount": 100, "currency": "usd", "status": "pending",
                             "created": ts("2026-10-12"), "payment_intent": "pi_other", "charge": "ch_other"})
        fake.add("charges", {"id": "ch_other", "object": "charge", "customer": "cus_Z", "amount": 700, "currency": "usd"})
        summary = import_stripe(store, client_for(fake), now=lambda: NOW, sleep=lambda _s: None, credit_products=["prod_pack"])
        assert fake.calls("GET", "/v1/invoice_payments")[0].query["payment[payment_intent]"] == "pi_other"
        assert [r.query.get("starting_after") for r in fake.calls("GET", "/v1/credit_notes/cn_Z/lines")] == ["cnli_Z0"]
    entries = store.query("SELECT uid, period_start, period_end, amount_minor, kind FROM revenue_entries ORDER BY uid")
    rows = {r.uid: (r.period_start, r.period_end, r.amount_minor, r.kind) for r in entries.itertuples()}
    assert rows["stripe:cus_Z:in_Z1:il_Z1a"] == ("2026-10-01", "2026-11-29", 6000, "credits")
    assert rows["stripe:cus_Z:in_Z1:il_Z1c"] == ("2026-10-01", "2026-10-01", 2000, "credit_purchase")
    assert rows["stripe:cus_Z:cn_Z:cnli_Z:il_Z1a"] == ("2026-10-01", "2026-11-29", -600, "credit_note")
    assert rows["stripe:cus_Z:cn_Z:cnli_Z:il_Z1b"] == ("2026-10-01", "2026-10-01", -300, "credit_note")
    assert rows["stripe:cus_Z:cn_Z:cnli_Z:il_Z1c"] == ("2026-10-01", "2026-10-01", -200, "credit_purchase")
    assert rows["stripe:cus_Z:cn_Z:cnli_Z2"] == ("2026-10-01", "2026-10-01", -100, "credit_note")  # 1.10 - 0.10 discount
    assert not any(uid.startswith("stripe:cus_Z:cn_Z:cnli_Z0") for uid in rows)
    assert rows["stripe:cus_Z:re_Z"] == ("2026-10-12", "2026-10-12", -700, "refund")  # no invoice: on the refund day
    assert per_customer_month(store)["cus_Z"] == {
        "2026-10": 3100 + 3000 - 310 - 300 - 100 - 700,  # credits 6000 x 31/60, setup, credit note parts, refund
        "2026-11": 2900 - 290,
    }
    assert json.loads(summary.cursor)["refunds"] == ["re_P"]  # pending: looked at again next time
