"""A small Stripe account in API 2026-10-28 shapes, loaded into a FakeStripe.

Four paying customers in three currencies, chosen so every revenue rule shows up:

- cus_A (USD, metadata walleta_customer_id=acme): monthly Pro 99.00 (+ 2 extra seats at 10.00 in
  the subscription, three items so they page) with a 20% coupon and
  exclusive tax; a one-off setup line; a metered usage line in arrears; a partial refund of the
  October invoice without a credit note; a prepaid credit purchase; a usage invoice paid partly
  by a paid credit grant and partly by a promotional one; an open invoice; a Stripe fee.
- cus_B (EUR, e-mail ops@globex.test): annual Business 1,200.00 + 19% exclusive tax, a credit
  note of 100.00 (+tax) refunded through the credit note, and a Stripe fee.
- cus_C (JPY, zero-decimal; customers.stripe_customer_id of initech): 15,000 yen with 10% tax
  included in the price.
- cus_D (USD, "Umbrella Corp."): matches nobody exactly, only a fuzzy proposal.
- cus_E: no documents; a canceled subscription (excluded from lists by default).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from .stripe_server import FakeStripe


def ts(text: str) -> int:
    """'2026-09-01' or '2026-09-01T05:00' (UTC) -> unix seconds."""
    value = datetime.fromisoformat(text)
    return int(value.replace(tzinfo=timezone.utc).timestamp())


def line(
    line_id: str,
    amount: int,
    currency: str,
    start: str,
    end: str,
    *,
    price: str,
    product: str,
    subscription: str | None = None,
    discount: int = 0,
    tax: int = 0,
    tax_behavior: str = "exclusive",
    metadata: dict[str, str] | None = None,
    credits: list[tuple[int, str]] | None = None,
) -> dict[str, Any]:
    """An InvoiceLineItem as the API returns it."""
    parent: dict[str, Any]
    if subscription:
        parent = {"type": "subscription_item_details", "invoice_item_details": None,
                  "subscription_item_details": {"subscription": subscription, "subscription_item": f"si_{line_id}",
                                                "proration": False, "proration_details": {"credited_items": None}, "invoice_item": None}}
    else:
        parent = {"type": "invoice_item_details", "subscription_item_details": None,
                  "invoice_item_details": {"invoice_item": f"ii_{line_id}", "proration": False, "proration_details": {"credited_items": None},
                                           "subscription": None}}
    return {
        "id": line_id, "object": "line_item", "amount": amount, "currency": currency, "description": f"{product} line",
        "discount_amounts": [{"amount": discount, "discount": "di_coupon20"}] if discount else [],
        "discountable": True, "discounts": [], "invoice": None, "livemode": False, "metadata": metadata or {},
        "parent": parent, "period": {"start": ts(start), "end": ts(end)},
        "pretax_credit_amounts": [
            {"amount": a, "type": "credit_balance_transaction", "credit_balance_transaction": t, "discount": None}
            for a, t in (credits or [])
        ],
        "pricing": {"type": "price_details", "price_details": {"price": price, "product": product}, "unit_amount_decimal": str(amount)},
        "quantity": 1, "quantity_decimal": "1", "subtotal": amount,
        "taxes": [{"amount": tax, "tax_behavior": tax_behavior, "taxable_amount": amount - discount - (tax if tax_behavior == "inclusive" else 0),
                   "taxability_reason": "standard_rated", "type": "tax_rate_details", "tax_rate_details": {"tax_rate": "txr_1"}}] if tax else [],
    }


def invoice(invoice_id: str, customer: str, currency: str, created: str, status: str, lines: list[dict[str, Any]], *,
            total: int, payment_intent: str | None = None, subscription: str | None = None) -> dict[str, Any]:
    """An Invoice with its lines (served embedded, truncated, and through /lines)."""
    for item in lines:
        item["invoice"] = invoice_id
    tax = sum(t["amount"] for item in lines for t in item["taxes"] if t["tax_behavior"] == "exclusive")
    return {
        "id": invoice_id, "object": "invoice", "customer": customer, "currency": currency, "status": status,
        "created": ts(created), "effective_at": ts(created), "period_start": ts(created), "period_end": ts(created),
        "amount_due": total, "amount_paid": total if status == "paid" else 0, "amount_remaining": 0 if status == "paid" else total,
        "subtotal": sum(i["amount"] for i in lines), "total": total, "total_excluding_tax": total - tax,
        "status_transitions": {"finalized_at": ts(created), "paid_at": ts(created) if status == "paid" else None,
                               "voided_at": None, "marked_uncollectible_at": None},
        "parent": {"type": "subscription_details", "quote_details": None,
                   "subscription_details": {"subscription": subscription, "metadata": {}}} if subscription else None,
        "billing_reason": "subscription_cycle" if subscription else "manual", "number": invoice_id.upper(), "livemode": False,
        "_lines": lines,
        "_payments": [{"id": f"inpay_{invoice_id}", "object": "invoice_payment", "invoice": invoice_id, "amount_paid": total,
                       "currency": currency, "status": "paid", "is_default": True,
                       "payment": {"type": "payment_intent", "payment_intent": payment_intent}}] if payment_intent else [],
    }


def customer(cid: str, name: str, email: str, currency: str, created: str, metadata: dict[str, str] | None = None) -> dict[str, Any]:
    return {"id": cid, "object": "customer", "name": name, "email": email, "currency": currency, "created": ts(created),
            "metadata": metadata or {}, "balance": 0, "delinquent": False, "livemode": False}


def price(pid: str, currency: str, amount: int | None, interval: str | None, product: str, usage_type: str = "licensed") -> dict[str, Any]:
    return {"id": pid, "object": "price", "currency": currency, "unit_amount": amount,
            "unit_amount_decimal": None if amount is None else str(amount), "product": product, "nickname": None,
            "lookup_key": None, "billing_scheme": "per_unit", "type": "recurring" if interval else "one_time",
            "recurring": {"interval": interval, "interval_count": 1, "usage_type": usage_type, "meter": "mtr_1" if usage_type == "metered" else None,
                          "trial_period_days": None} if interval else None}


def subscription(sid: str, cus: str, status: str, currency: str, items: list[tuple[str, dict[str, Any], int]],
                 discounts: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "id": sid, "object": "subscription", "customer": cus, "status": status, "currency": currency, "created": ts("2026-01-01"),
        "discounts": discounts or [], "cancel_at_period_end": False, "metadata": {},
        "_items": [{"id": iid, "object": "subscription_item", "price": p, "quantity": q, "discounts": [],
                    "current_period_start": ts("2026-11-01"), "current_period_end": ts("2026-12-01"), "subscription": sid, "metadata": {}}
                   for iid, p, q in items],
    }


def load_account(fake: FakeStripe) -> None:
    """Fill `fake` with the account described in the module docstring."""
    for c in (
        customer("cus_A", "Acme, Inc.", "billing@acme.test", "usd", "2026-01-05", {"walleta_customer_id": "acme"}),
        customer("cus_B", "Globex GmbH", "ops@globex.test", "eur", "2026-01-06"),
        customer("cus_C", "Initech KK", "", "jpy", "2026-01-07"),
        customer("cus_D", "Umbrella Corp.", "finance@umbrella.test", "usd", "2026-01-08"),
        customer("cus_E", "Nobody Ltd", "", "usd", "2026-01-09"),
    ):
        fake.add("customers", c)
    for pid, name in (("prod_pro", "Pro"), ("prod_biz", "Business (annual)"), ("prod_jp", "Team JP"), ("prod_usage", "API usage"),
                      ("prod_umb", "Starter"), ("prod_setup", "Setup"), ("prod_credits", "Credit pack"), ("prod_seat", "Extra seats")):
        fake.add("products", {"id": pid, "object": "product", "name": name, "active": True})
    fake.add("coupons", {"id": "coup_20", "object": "coupon", "percent_off": 20.0, "amount_off": None, "currency": None,
                         "duration": "forever", "valid": True})
    pro = price("price_pro_m", "usd", 9900, "month", "prod_pro")
    usage = price("price_usage", "usd", None, "month", "prod_usage", usage_type="metered")
    seats = price("price_seat", "usd", 1000, "month", "prod_seat")
    fake.add("subscriptions", subscription("sub_A", "cus_A", "active", "usd", [("si_A1", pro, 1), ("si_A2", usage, 1), ("si_A3", seats, 2)],
                                           [{"id": "di_coupon20", "object": "discount", "source": {"type": "coupon", "coupon": "coup_20"},
                                             "end": None, "start": ts("2026-01-05"), "subscription": "sub_A"}]))
    fake.add("subscriptions", subscription("sub_B", "cus_B", "active", "eur", [("si_B1", price("price_biz_y", "eur", 120000, "year", "prod_biz"), 1)]))
    fake.add("subscriptions", subscription("sub_C", "cus_C", "active", "jpy", [("si_C1", price("price_jp_m", "jpy", 15000, "month", "prod_jp"), 1)]))
    fake.add("subscriptions", subscription("sub_D", "cus_D", "active", "usd", [("si_D1", price("price_umb", "usd", 4900, "month", "prod_umb"), 1)]))
    fake.add("subscriptions", subscription("sub_E", "cus_E", "canceled", "usd", [("si_E1", pro, 1)]))

    fake.add("invoices", invoice("in_A1", "cus_A", "usd", "2026-09-01", "paid", [
        line("il_A1a", 9900, "usd", "2026-09-01", "2026-10-01", price="price_pro_m", product="prod_pro", subscription="sub_A", discount=1980, tax=1584),
        line("il_A1b", 5000, "usd", "2026-09-03", "2026-09-03", price="price_setup", product="prod_setup", discount=1000, tax=800),
        line("il_A1c", 2500, "usd", "2026-08-01", "2026-09-01", price="price_usage", product="prod_usage", subscription="sub_A", discount=500, tax=400),
    ], total=16704, payment_intent="pi_A1", subscription="sub_A"))
    fake.add("invoices", invoice("in_A2", "cus_A", "usd", "2026-10-01", "paid", [
        line("il_A2a", 9900, "usd", "2026-10-01", "2026-11-01", price="price_pro_m", product="prod_pro", subscription="sub_A", discount=1980, tax=1584),
    ], total=9504, payment_intent="pi_A2", subscription="sub_A"))
    fake.add("invoices", invoice("in_A3", "cus_A", "usd", "2026-10-05", "paid", [
        line("il_A3a", 10000, "usd", "2026-10-05", "2026-10-05", price="price_credits", product="prod_credits",
             metadata={"walleta_kind": "credit_purchase"}),
    ], total=10000, payment_intent="pi_A3"))
    fake.add("invoices", invoice("in_A4", "cus_A", "usd", "2026-11-01", "paid", [
        line("il_A4a", 3000, "usd", "2026-10-01", "2026-11-01", price="price_usage", product="prod_usage", subscription="sub_A",
             credits=[(2000, "cbtxn_paid"), (1000, "cbtxn_promo")]),
    ], total=0, subscription="sub_A"))
    fake.add("invoices", invoice("in_A5", "cus_A", "usd", "2026-11-02", "open", [
        line("il_A5a", 9900, "usd", "2026-11-01", "2026-12-01", price="price_pro_m", product="prod_pro", subscription="sub_A"),
    ], total=9900, payment_intent="pi_A5", subscription="sub_A"))
    fake.add("invoices", invoice("in_B1", "cus_B", "eur", "2026-03-10", "paid", [
        line("il_B1a", 120000, "eur", "2026-03-10", "2027-03-10", price="price_biz_y", product="prod_biz", subscription="sub_B", tax=22800),
    ], total=142800, payment_intent="pi_B1", subscription="sub_B"))
    fake.add("invoices", invoice("in_C1", "cus_C", "jpy", "2026-10-01", "paid", [
        line("il_C1a", 15000, "jpy", "2026-10-01", "2026-11-01", price="price_jp_m", product="prod_jp", subscription="sub_C",
             tax=1364, tax_behavior="inclusive"),
    ], total=15000, payment_intent="pi_C1", subscription="sub_C"))
    fake.add("invoices", invoice("in_D1", "cus_D", "usd", "2026-10-15", "paid", [
        line("il_D1a", 4900, "usd", "2026-10-15", "2026-11-15", price="price_umb", product="prod_umb", subscription="sub_D"),
    ], total=4900, payment_intent="pi_D1", subscription="sub_D"))

    fake.add("credit_notes", {
        "id": "cn_1", "object": "credit_note", "invoice": "in_B1", "customer": "cus_B", "currency": "eur", "status": "issued",
        "created": ts("2026-06-01"), "effective_at": ts("2026-06-01"), "number": "CN-0001", "amount": 11900, "subtotal": 10000,
        "total": 11900, "total_excluding_tax": 10000, "type": "post_payment", "pre_payment_amount": 0, "post_payment_amount": 11900,
        "reason": "order_change", "refunds": [{"refund": "re_2", "amount_refunded": 11900, "type": "refund", "payment_record_refund": None}],
        "_lines": [{"id": "cnli_1", "object": "credit_note_line_item", "type": "invoice_line_item", "invoice_line_item": "il_B1a",
                    "amount": 10000, "discount_amount": 0, "discount_amounts": [], "description": "Partial credit", "quantity": 1,
                    "taxes": [{"amount": 1900, "tax_behavior": "exclusive", "taxable_amount": 10000, "type": "tax_rate_details"}],
                    "pretax_credit_amounts": [], "livemode": False}],
    })
    fake.add("refunds", {"id": "re_1", "object": "refund", "amount": 3000, "currency": "usd", "status": "succeeded",
                         "created": ts("2026-10-20"), "payment_intent": "pi_A2", "charge": "ch_A2", "reason": "requested_by_customer"})
    fake.add("refunds", {"id": "re_2", "object": "refund", "amount": 11900, "currency": "eur", "status": "succeeded",
                         "created": ts("2026-06-01"), "payment_intent": "pi_B1", "charge": "ch_B1", "reason": None})
    for cbtxn, category in (("cbtxn_paid", "paid"), ("cbtxn_promo", "promotional")):
        fake.add("billing/credit_balance_transactions", {
            "id": cbtxn, "object": "billing.credit_balance_transaction", "created": ts("2026-11-01"), "type": "debit",
            "credit_grant": {"id": f"credgr_{category}", "object": "billing.credit_grant", "category": category, "customer": "cus_A"},
        })
    fake.add("balance_transactions", {"id": "txn_A1", "object": "balance_transaction", "amount": 16704, "fee": 514, "net": 16190,
                                      "currency": "usd", "created": ts("2026-09-01"), "type": "charge", "reporting_category": "charge",
                                      "exchange_rate": None, "status": "available",
                                      "fee_details": [{"amount": 514, "currency": "usd", "type": "stripe_fee", "description": "Stripe processing fees"}],
                                      "source": {"id": "ch_A1", "object": "charge", "customer": "cus_A", "amount": 16704, "currency": "usd"}})
    fake.add("balance_transactions", {"id": "txn_B1", "object": "balance_transaction", "amount": 142800, "fee": 2107, "net": 140693,
                                      "currency": "eur", "created": ts("2026-03-10"), "type": "charge", "reporting_category": "charge",
                                      "exchange_rate": None, "status": "available", "fee_details": [],
                                      "source": {"id": "ch_B1", "object": "charge", "customer": "cus_B", "amount": 142800, "currency": "eur"}})
    fake.add("balance_transactions", {"id": "txn_po", "object": "balance_transaction", "amount": -50000, "fee": 0, "net": -50000,
                                      "currency": "usd", "created": ts("2026-10-02"), "type": "payout", "reporting_category": "payout",
                                      "exchange_rate": None, "status": "available", "fee_details": [], "source": "po_1"})
