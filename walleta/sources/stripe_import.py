"""Import customers, revenue, subscriptions and fees from Stripe (stripe 16, API 2026-10-28).

What is read (all lists auto-paginated 100 at a time; a 429 is retried here with backoff, other
transient errors by the SDK's own `max_network_retries`):

- customers (all, every run: e-mail and metadata change), subscriptions and their items (all
  non-canceled, every run: a snapshot for MRR and plan names), products/coupons they name;
- invoices created in the range (paid ones become revenue; open, draft and uncollectible ones
  are remembered in the cursor and re-checked on the next run), with ALL their line items;
- credit notes and refunds created in the range; balance transactions (Stripe fees).

Revenue rules (one `revenue_entries` row per line, spread over its service period by
`walleta.revenue.monthly_revenue`; amounts in the invoice currency's minor units):

- line revenue = `amount` - its `discount_amounts` - tax included in the amount (taxes with
  `tax_behavior` inclusive; exclusive tax is not in `amount`) - promotional credit-grant
  applications. Paid credit-grant applications are NOT subtracted: that usage is revenue, paid
  from credits bought earlier. Service period = `line.period` (UTC days, end exclusive).
- prepaid credit purchases (line metadata `walleta_kind=credit_purchase`, or a product listed in
  `credit_products`) are deferred: kind `credit_purchase`, not revenue; they are recognised as
  the credits are used (usage lines paid by the credit grant count as revenue). A line with
  metadata `walleta_credit_valid_days=N` is instead recognised straight-line over N days from
  its period start (kind `credits`), for credits burnt inside your product.
- credit notes (status issued): a negative entry per credit-note line (amount - discounts -
  inclusive tax) in the service period of the invoice line it credits; a custom line is spread
  over the invoice's lines in proportion to their revenue. Only for paid invoices (credit
  notes on open invoices wait in the cursor until the invoice is paid).
- refunds (status succeeded) not already covered by a credit note: the tax is taken out in the
  invoice's proportion (refund x revenue / total) and the rest is spread over the invoice's
  lines like a custom credit-note line. A refund not linked to any invoice is a one-day entry
  on the refund date.
- fees: each balance transaction's `fee` is a `stripe_fee` entry (settlement currency, a cost,
  not revenue), attributed to the charge's customer.

Every entry's uid is `stripe:<customer>:<document>:<part>`; a re-import replaces each document's
entries (same uids), so importing twice changes nothing. The cursor (high-water mark plus the
documents waiting for payment) is written in the same transaction as the data.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from fractions import Fraction
from typing import Any, Callable, Iterable, Iterator

import pandas as pd
import stripe

from ..errors import ConfigError, SourceError, protect_logger, redact
from ..matching import MAPPING_SOURCE, METADATA_KEY, mapping_rows, match_customers, remap_revenue
from ..revenue import CREDIT_PURCHASE_KIND, FEE_KIND, NON_REVENUE_KINDS, allocate, plan_names, round_half_even
from ..schema import UNATTRIBUTED
from .. import revenue_rollup
from ..store import Store

__all__ = [
    "ENV_API_KEY",
    "ENV_API_BASE",
    "SOURCE",
    "make_client",
    "client_key",
    "import_stripe",
    "StripeImportSummary",
    "line_revenue",
]

ENV_API_KEY = "STRIPE_API_KEY"
ENV_API_BASE = "WALLETA_STRIPE_API_BASE"
ENV_CREDIT_PRODUCTS = "WALLETA_STRIPE_CREDIT_PRODUCTS"
SOURCE = "stripe"
KIND_KEY = "walleta_kind"
VALID_DAYS_KEY = "walleta_credit_valid_days"
OVERLAP_SECONDS = 3600
PAGE_SIZE = 100
RATE_LIMIT_RETRIES = 5
UID_MAX = 128
WAITING_INVOICE_STATUSES = frozenset({"draft", "open", "uncollectible"})

Progress = Callable[[str], None]


def make_client(
    api_key: str | None = None,
    *,
    api_base: str | None = None,
    max_network_retries: int = 2,
    http_client: stripe.HTTPClient | None = None,
) -> stripe.StripeClient:
    """A StripeClient with retries on; key from `api_key` or $STRIPE_API_KEY (never logged).

    `api_base` (else $WALLETA_STRIPE_API_BASE) replaces both the `api` and the `meter_events`
    addresses, for tests and proxies.
    """
    key = api_key or os.environ.get(ENV_API_KEY, "")
    if not key:
        raise ConfigError(f"set {ENV_API_KEY} to a Stripe restricted key (read access is enough for imports)")
    base = (api_base or os.environ.get(ENV_API_BASE) or "").rstrip("/")
    addresses: Any = {"api": base, "meter_events": base} if base else None
    protect_logger("stripe", [key])  # the SDK logs the server's error text at INFO
    return stripe.StripeClient(key, base_addresses=addresses, max_network_retries=max_network_retries, http_client=http_client)


def client_key(client: Any) -> str | None:
    """The API key a `stripe.StripeClient` was built with (to redact it from error text), or None."""
    options = getattr(getattr(client, "_requestor", None), "_options", None)
    key = getattr(options, "api_key", None)
    return key if isinstance(key, str) else None


def stripe_error_text(exc: stripe.StripeError, *secrets: str | None) -> str:
    """Stripe's user message (or the error's class name) with any key masked (`errors.redact`)."""
    return redact(exc.user_message or type(exc).__name__, secrets)


@dataclass
class StripeImportSummary:
    """What one import read and wrote."""

    import_id: int = 0
    since: int | None = None
    until: int | None = None
    customers: int = 0
    subscriptions: int = 0
    invoices_paid: int = 0
    invoices_waiting: int = 0
    lines: int = 0
    credit_notes: int = 0
    refunds: int = 0
    refunds_covered_by_credit_notes: int = 0
    fees: int = 0
    entries_written: int = 0
    entries_removed: int = 0
    mappings_added: int = 0
    unmatched_customers: int = 0
    conflicts: int = 0
    rate_limit_retries: int = 0
    cursor: str = ""
    months: tuple[str, str] | None = None

    def lines_of_text(self) -> list[str]:
        """Human summary lines for the CLI."""
        span = f" for service months {self.months[0]}..{self.months[1]}" if self.months else ""
        return [
            f"customers: {self.customers:,} ({self.mappings_added} newly matched, {self.unmatched_customers} unmatched, {self.conflicts} conflicts)",
            f"subscriptions: {self.subscriptions:,}",
            f"invoices: {self.invoices_paid:,} paid ({self.lines:,} lines), {self.invoices_waiting:,} waiting for payment",
            f"credit notes: {self.credit_notes:,}; refunds: {self.refunds:,} ({self.refunds_covered_by_credit_notes} covered by credit notes)",
            f"fees: {self.fees:,} balance transactions",
            f"revenue entries written: {self.entries_written:,}{span}",
        ]


def _day(ts: int) -> date:
    return datetime.fromtimestamp(int(ts), tz=timezone.utc).date()


def _id(value: Any) -> str:
    """An expandable field's id (a string, or an expanded object's `id`)."""
    if isinstance(value, dict):
        return str(value.get("id") or "")
    return str(value or "")


def _uid(stripe_customer: str, *parts: str) -> str:
    uid = ":".join(("stripe", stripe_customer or "none", *parts))
    if len(uid) <= UID_MAX:
        return uid
    digest = hashlib.sha256(uid.encode()).hexdigest()[:40]
    return f"stripe:{stripe_customer or 'none'}:h:{digest}"[:UID_MAX]


def _period(line: dict[str, Any]) -> tuple[str, str]:
    """Service period as inclusive UTC days (Stripe's period end is exclusive)."""
    period = line.get("period") or {}
    start = int(period.get("start") or 0)
    end = int(period.get("end") or start)
    return _day(start).isoformat(), _day(max(start, end - 1)).isoformat()


def _inclusive_tax(taxes: Iterable[dict[str, Any]] | None) -> int:
    return sum(int(t.get("amount") or 0) for t in taxes or [] if t.get("tax_behavior") == "inclusive")


def line_revenue(line: dict[str, Any], grant_category: Callable[[str], str]) -> int:
    """Revenue of one invoice line in minor units: amount - discounts - inclusive tax -
    promotional credit-grant applications (see the module docstring)."""
    amount = int(line.get("amount") or 0)
    discounts = sum(int(d.get("amount") or 0) for d in line.get("discount_amounts") or [])
    promotional = sum(
        int(c.get("amount") or 0)
        for c in line.get("pretax_credit_amounts") or []
        if c.get("type") == "credit_balance_transaction"
        and grant_category(_id(c.get("credit_balance_transaction"))) == "promotional"
    )
    return amount - discounts - _inclusive_tax(line.get("taxes")) - promotional


def _price_id(line: dict[str, Any]) -> str:
    details = ((line.get("pricing") or {}).get("price_details")) or {}
    return _id(details.get("price"))


def _product_id(line: dict[str, Any]) -> str:
    details = ((line.get("pricing") or {}).get("price_details")) or {}
    return _id(details.get("product"))


@dataclass
class _Cursor:
    hwm: int | None = None
    invoices: list[str] = field(default_factory=list)
    credit_notes: list[str] = field(default_factory=list)
    refunds: list[str] = field(default_factory=list)

    @classmethod
    def parse(cls, text: str | None) -> "_Cursor":
        if not text:
            return cls()
        data = json.loads(text)
        return cls(data.get("hwm"), list(data.get("invoices", [])), list(data.get("credit_notes", [])), list(data.get("refunds", [])))

    def dump(self) -> str:
        return json.dumps(
            {"v": 1, "hwm": self.hwm, "invoices": sorted(set(self.invoices)), "credit_notes": sorted(set(self.credit_notes)),
             "refunds": sorted(set(self.refunds))},
            separators=(",", ":"),
        )


class _Api:
    """Calls the SDK with 429 back-off and turns Stripe errors into SourceError (no secrets)."""

    def __init__(self, client: stripe.StripeClient, sleep: Callable[[float], None], progress: Progress) -> None:
        self.client = client
        self.sleep = sleep
        self.progress = progress
        self.rate_limit_retries = 0

    def call(self, what: str, fn: Callable[..., Any], *args: Any) -> Any:
        for attempt in range(RATE_LIMIT_RETRIES + 1):
            try:
                return fn(*args)
            except stripe.RateLimitError:
                if attempt == RATE_LIMIT_RETRIES:
                    raise SourceError(f"Stripe {what}: still rate limited after {RATE_LIMIT_RETRIES} retries") from None
                self.rate_limit_retries += 1
                self.sleep(min(2.0**attempt, 30.0))
            except stripe.StripeError as exc:
                detail = stripe_error_text(exc, client_key(self.client))
                status = f" (HTTP {exc.http_status})" if exc.http_status else ""
                raise SourceError(f"Stripe {what} failed{status}: {detail}") from None
        raise AssertionError("unreachable")

    def pages(self, what: str, fetch: Callable[[dict[str, Any]], Any], params: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """Every object of a list endpoint, page after page (starting_after), as plain dicts."""
        after: str | None = None
        count = 0
        while True:
            query = {**params, "limit": PAGE_SIZE, **({"starting_after": after} if after else {})}
            page = self.call(f"list {what}", fetch, query)
            items = [obj.to_dict() for obj in page.data]
            for item in items:
                yield item
            count += len(items)
            self.progress(f"{what}: {count:,}")
            if not page.has_more or not items:
                return
            after = str(items[-1]["id"])

    def rest_of_list(self, what: str, embedded: dict[str, Any] | None, fetch: Callable[[dict[str, Any]], Any]) -> list[dict[str, Any]]:
        """An embedded list (invoice.lines, ...) completed with its remaining pages."""
        embedded = embedded or {}
        items = list(embedded.get("data") or [])
        if embedded.get("has_more") and items:
            params = {"starting_after": str(items[-1]["id"])}
            after_first = self.pages(what, fetch, params)
            seen = {i["id"] for i in items}
            items.extend(i for i in after_first if i["id"] not in seen)
        return items


class _Importer:
    """Fetches everything for one import, then builds the rows to write."""

    def __init__(self, api: _Api, credit_products: frozenset[str]) -> None:
        self.api = api
        self.v1 = api.client.v1
        self.credit_products = credit_products
        self.invoices: dict[str, dict[str, Any]] = {}
        self.lines: dict[str, list[dict[str, Any]]] = {}
        self.payment_invoice: dict[str, str] = {}
        self.grants: dict[str, str] = {}
        self.products: dict[str, str] = {}
        self.coupons: dict[str, dict[str, Any]] = {}
        self.metered_prices: set[str] = set()

    # -- invoices --------------------------------------------------------------------------

    def remember_invoice(self, invoice: dict[str, Any]) -> None:
        self.invoices[invoice["id"]] = invoice
        for payment in ((invoice.get("payments") or {}).get("data")) or []:
            details = payment.get("payment") or {}
            for key in ("payment_intent", "charge"):
                if details.get(key):
                    self.payment_invoice[_id(details[key])] = invoice["id"]

    def invoice(self, invoice_id: str) -> dict[str, Any]:
        if invoice_id not in self.invoices:
            found = self.api.call("retrieve invoice", self.v1.invoices.retrieve, invoice_id, {"expand": ["payments"]})
            self.remember_invoice(found.to_dict())
        return self.invoices[invoice_id]

    def invoice_lines(self, invoice_id: str) -> list[dict[str, Any]]:
        if invoice_id not in self.lines:
            invoice = self.invoice(invoice_id)
            fetch = lambda p: self.v1.invoices.line_items.list(invoice_id, p)  # noqa: E731
            self.lines[invoice_id] = self.api.rest_of_list("invoice lines", invoice.get("lines"), fetch)
        return self.lines[invoice_id]

    def grant_category(self, transaction_id: str) -> str:
        """'paid' or 'promotional' for a credit balance transaction's grant (cached)."""
        if not transaction_id:
            return "paid"
        if transaction_id not in self.grants:
            found = self.api.call(
                "retrieve credit balance transaction",
                self.v1.billing.credit_balance_transactions.retrieve,
                transaction_id,
                {"expand": ["credit_grant"]},
            ).to_dict()
            grant = found.get("credit_grant")
            category = grant.get("category") if isinstance(grant, dict) else None
            if category is None:
                grant_id = _id(grant)
                category = self.api.call("retrieve credit grant", self.v1.billing.credit_grants.retrieve, grant_id).to_dict().get("category")
            self.grants[transaction_id] = str(category or "paid")
        return self.grants[transaction_id]

    def line_kind(self, line: dict[str, Any]) -> str:
        metadata = line.get("metadata") or {}
        if str(metadata.get(VALID_DAYS_KEY) or "").strip().isdigit():
            return "credits"
        if metadata.get(KIND_KEY) == CREDIT_PURCHASE_KIND or _product_id(line) in self.credit_products:
            return CREDIT_PURCHASE_KIND
        parent = line.get("parent") or {}
        if parent.get("type") == "subscription_item_details":
            return "usage" if _price_id(line) in self.metered_prices else "subscription"
        return "one_time"

    def line_rows(self, invoice: dict[str, Any]) -> list[dict[str, Any]]:
        """One revenue row per invoice line, with `_net` kept for later allocation."""
        cus = _id(invoice.get("customer"))
        rows = []
        for line in self.invoice_lines(invoice["id"]):
            kind = self.line_kind(line)
            start, end = _period(line)
            if kind == "credits":
                days = int(str((line.get("metadata") or {}).get(VALID_DAYS_KEY)).strip())
                end = date.fromordinal(date.fromisoformat(start).toordinal() + max(days, 1) - 1).isoformat()
            rows.append(
                {
                    "uid": _uid(cus, invoice["id"], line["id"]),
                    "stripe_customer": cus,
                    "period_start": start,
                    "period_end": end,
                    "amount_minor": line_revenue(line, self.grant_category),
                    "currency": str(line.get("currency") or invoice.get("currency")).upper(),
                    "kind": kind,
                    "document_id": invoice["id"],
                    "description": str(line.get("description") or ""),
                    "_line": line["id"],
                }
            )
        return rows

    # -- subscriptions ---------------------------------------------------------------------

    def product_name(self, product_id: str) -> str:
        if product_id and product_id not in self.products:
            found = self.api.call("retrieve product", self.v1.products.retrieve, product_id).to_dict()
            self.products[product_id] = str(found.get("name") or product_id)
        return self.products.get(product_id, "")

    def coupon(self, value: Any) -> dict[str, Any]:
        if isinstance(value, dict):
            return value
        if value not in self.coupons:
            self.coupons[value] = self.api.call("retrieve coupon", self.v1.coupons.retrieve, value).to_dict()
        return self.coupons[value]

    def discounts(self, values: list[Any], scope: str) -> list[dict[str, Any]]:
        out = []
        for d in values or []:
            if not isinstance(d, dict):  # not expanded: nothing to read (the import expands them)
                continue
            coupon = self.coupon((d.get("source") or {}).get("coupon") or d.get("coupon"))
            percent = coupon.get("percent_off")
            out.append(
                {
                    "scope": scope,
                    "percent_off": None if percent is None else repr(percent) if isinstance(percent, float) else str(percent),
                    "amount_off": coupon.get("amount_off"),
                    "currency": coupon.get("currency"),
                    "duration": coupon.get("duration"),
                    "end": d.get("end"),
                }
            )
        return out

    def subscription_rows(self, sub: dict[str, Any], import_id: int) -> list[dict[str, Any]]:
        fetch = lambda p: self.v1.subscription_items.list({**p, "subscription": sub["id"]})  # noqa: E731
        items = self.api.rest_of_list("subscription items", sub.get("items"), fetch)
        sub_discounts = self.discounts(sub.get("discounts") or [], "subscription")
        rows = []
        for item in items:
            price = item.get("price") or {}
            recurring = price.get("recurring") or {}
            if recurring.get("usage_type") == "metered":
                self.metered_prices.add(str(price.get("id")))
            unit = price.get("unit_amount_decimal")
            if unit is None and price.get("unit_amount") is not None:
                unit = price.get("unit_amount")
            product = _id(price.get("product"))
            name = str(price.get("nickname") or "") or self.product_name(product) or str(price.get("lookup_key") or price.get("id"))
            rows.append(
                {
                    "item_id": item["id"],
                    "subscription_id": sub["id"],
                    "stripe_customer_id": _id(sub.get("customer")),
                    "status": str(sub.get("status") or ""),
                    "price_id": str(price.get("id") or ""),
                    "product_id": product,
                    "plan_name": name,
                    "currency": str(price.get("currency") or sub.get("currency") or "").upper(),
                    "unit_amount_decimal": "" if unit is None else str(unit),
                    "quantity": int(item.get("quantity") if item.get("quantity") is not None else 1),
                    "billing_interval": str(recurring.get("interval") or ""),
                    "interval_count": int(recurring.get("interval_count") or 1),
                    "usage_type": str(recurring.get("usage_type") or ""),
                    "billing_scheme": str(price.get("billing_scheme") or ""),
                    "discounts_json": json.dumps(self.discounts(item.get("discounts") or [], "item") + sub_discounts),
                    "current_period_start": int(item.get("current_period_start") or 0),
                    "current_period_end": int(item.get("current_period_end") or 0),
                    "import_id": import_id,
                }
            )
        return rows

    # -- credit notes and refunds ----------------------------------------------------------

    def spread_over_lines(self, amount: int, invoice: dict[str, Any], cus: str, document: str, part: str, kind: str,
                          description: str) -> list[dict[str, Any]]:
        """A negative amount spread over an invoice's lines in proportion to their revenue."""
        lines = [r for r in self.line_rows(invoice) if r["amount_minor"] > 0]
        if not lines:
            return []
        parts = allocate(amount, [r["amount_minor"] for r in lines])
        return [
            {**r, "uid": _uid(cus, document, part, r["_line"]), "amount_minor": p,
             "kind": r["kind"] if r["kind"] in NON_REVENUE_KINDS else kind, "document_id": document, "description": description}
            for r, p in zip(lines, parts)
            if p != 0
        ]

    def credit_note_rows(self, note: dict[str, Any]) -> list[dict[str, Any]]:
        invoice = self.invoice(_id(note.get("invoice")))
        cus = _id(note.get("customer")) or _id(invoice.get("customer"))
        by_line = {r["_line"]: r for r in self.line_rows(invoice)}
        fetch = lambda p: self.v1.credit_notes.line_items.list(note["id"], p)  # noqa: E731
        rows = []
        description = f"Credit note {note.get('number') or note['id']}"
        for cn_line in self.api.rest_of_list("credit note lines", note.get("lines"), fetch):
            discounts = sum(int(d.get("amount") or 0) for d in cn_line.get("discount_amounts") or [])
            amount = -(int(cn_line.get("amount") or 0) - discounts - _inclusive_tax(cn_line.get("taxes")))
            if amount == 0:
                continue
            target = by_line.get(_id(cn_line.get("invoice_line_item")))
            if target is None:
                rows += self.spread_over_lines(amount, invoice, cus, note["id"], cn_line["id"], "credit_note", description)
                continue
            kind = target["kind"] if target["kind"] in NON_REVENUE_KINDS else "credit_note"
            rows.append({**target, "uid": _uid(cus, note["id"], cn_line["id"]), "amount_minor": amount, "kind": kind,
                         "document_id": note["id"], "description": description})
        return rows

    def refund_invoice(self, refund: dict[str, Any]) -> dict[str, Any] | None:
        for key in ("payment_intent", "charge"):
            ref = _id(refund.get(key))
            if ref and ref in self.payment_invoice:
                return self.invoice(self.payment_invoice[ref])
        intent = _id(refund.get("payment_intent"))
        if intent:
            found = self.api.call(
                "list invoice payments",
                self.v1.invoice_payments.list,
                {"payment": {"type": "payment_intent", "payment_intent": intent}, "limit": 1},
            )
            for payment in found.data:
                invoice_id = _id(payment.to_dict().get("invoice"))
                if invoice_id:
                    self.payment_invoice[intent] = invoice_id
                    return self.invoice(invoice_id)
        return None

    def refund_rows(self, refund: dict[str, Any], covered: int) -> list[dict[str, Any]]:
        rest = int(refund.get("amount") or 0) - covered
        if rest <= 0:
            return []
        invoice = self.refund_invoice(refund)
        description = f"Refund {refund['id']}"
        if invoice is not None:
            cus = _id(invoice.get("customer"))
            total = int(invoice.get("total") or 0)
            revenue = sum(r["amount_minor"] for r in self.line_rows(invoice) if r["amount_minor"] > 0)
            if total > 0 and revenue > 0:
                excluding_tax = round_half_even(Fraction(rest * min(revenue, total), total))
                return self.spread_over_lines(-excluding_tax, invoice, cus, refund["id"], "r", "refund", description)
        cus = self.charge_customer(_id(refund.get("charge")))
        day = _day(int(refund.get("created") or 0)).isoformat()
        return [{"uid": _uid(cus, refund["id"]), "stripe_customer": cus, "period_start": day, "period_end": day,
                 "amount_minor": -rest, "currency": str(refund.get("currency")).upper(), "kind": "refund",
                 "document_id": refund["id"], "description": description}]

    def charge_customer(self, charge_id: str) -> str:
        if not charge_id:
            return ""
        charge = self.api.call("retrieve charge", self.v1.charges.retrieve, charge_id).to_dict()
        return _id(charge.get("customer"))


def _fee_row(txn: dict[str, Any]) -> dict[str, Any] | None:
    fee = int(txn.get("fee") or 0)
    if fee == 0:
        return None
    source = txn.get("source")
    cus = _id(source.get("customer")) if isinstance(source, dict) else ""
    day = _day(int(txn.get("created") or 0)).isoformat()
    return {"uid": _uid(cus, txn["id"], "fee"), "stripe_customer": cus, "period_start": day, "period_end": day,
            "amount_minor": fee, "currency": str(txn.get("currency")).upper(), "kind": FEE_KIND,
            "document_id": txn["id"], "description": f"Stripe fee ({txn.get('type') or 'charge'})"}


def _customer_row(c: dict[str, Any], import_id: int) -> dict[str, Any]:
    metadata = c.get("metadata") or {}
    name = c.get("name") or c.get("business_name") or c.get("individual_name") or ""
    return {
        "stripe_customer_id": c["id"],
        "name": str(name),
        "email": str(c.get("email") or ""),
        "walleta_customer_id": str(metadata.get(METADATA_KEY) or "").strip(),
        "metadata_json": json.dumps(metadata, sort_keys=True, default=str),
        "currency": str(c.get("currency") or "").upper(),
        "created": int(c.get("created") or 0),
        "import_id": import_id,
    }


def _ts(value: date | datetime | int | None) -> int | None:
    if value is None or isinstance(value, int):
        return value
    if isinstance(value, datetime):
        return int(value.timestamp())
    return int(datetime(value.year, value.month, value.day, tzinfo=timezone.utc).timestamp())


def import_stripe(
    store: Store,
    client: stripe.StripeClient,
    *,
    since: date | datetime | int | None = None,
    until: date | datetime | int | None = None,
    full: bool = False,
    include_fees: bool = True,
    credit_products: Iterable[str] | None = None,
    now: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
    progress: Progress | None = None,
) -> StripeImportSummary:
    """Import from Stripe into `store`; see the module docstring for what and how.

    Range: documents created in [since, until) (dates are UTC midnight). Without `since`, the
    previous import's high-water mark (minus an hour of overlap) is used, unless `full`.
    Customers and subscriptions are always read in full. Returns a summary; raises SourceError
    when Stripe keeps failing (the import is then recorded as failed, nothing is written).
    """
    say = progress or (lambda _message: None)
    api = _Api(client, sleep, say)
    products = set(credit_products or []) | {p.strip() for p in os.environ.get(ENV_CREDIT_PRODUCTS, "").split(",") if p.strip()}
    importer = _Importer(api, frozenset(products))
    previous = _Cursor() if full else _Cursor.parse(store.last_cursor(SOURCE))
    started = int(now())
    lower = _ts(since) if since is not None else (previous.hwm - OVERLAP_SECONDS if previous.hwm else None)
    upper = _ts(until)
    created = {k: v for k, v in (("gte", lower), ("lt", upper)) if v is not None}
    summary = StripeImportSummary(since=lower, until=upper)
    summary.import_id = import_id = store.start_import(SOURCE, "stripe")
    try:
        plan = _fetch_and_build(importer, previous, created, include_fees, import_id, summary)
        cursor = _Cursor(
            hwm=previous.hwm if upper is not None else started,
            invoices=plan["waiting_invoices"], credit_notes=plan["waiting_notes"], refunds=plan["waiting_refunds"],
        )
        summary.rate_limit_retries = api.rate_limit_retries
        summary.cursor = cursor.dump()
        _write(store, plan, summary, import_id)
    except Exception as exc:
        store.finish_import(import_id, status="failed", message=redact(exc, [client_key(client)])[:500])
        raise
    return summary


def _fetch_and_build(
    imp: _Importer, previous: _Cursor, created: dict[str, int], include_fees: bool, import_id: int, summary: StripeImportSummary
) -> dict[str, Any]:
    v1 = imp.v1
    api = imp.api
    in_range = {"created": created} if created else {}
    customers = [_customer_row(c, import_id) for c in api.pages("customers", v1.customers.list, {})]
    summary.customers = len({c["stripe_customer_id"] for c in customers})
    subscription_items: list[dict[str, Any]] = []
    subscriptions = 0
    for sub in api.pages("subscriptions", v1.subscriptions.list, {"expand": ["data.discounts", "data.items.data.discounts"]}):
        subscriptions += 1
        subscription_items += imp.subscription_rows(sub, import_id)
    summary.subscriptions = subscriptions

    rows: list[dict[str, Any]] = []
    documents: set[str] = set()
    waiting_invoices: set[str] = set()
    listed = list(api.pages("invoices", v1.invoices.list, {**in_range, "expand": ["data.payments"]}))
    for invoice in listed:
        imp.remember_invoice(invoice)
    candidates = [i["id"] for i in listed] + [i for i in previous.invoices if i not in imp.invoices]
    for invoice_id in dict.fromkeys(candidates):
        invoice = imp.invoice(invoice_id)
        status = invoice.get("status")
        if status == "paid":
            lines = imp.line_rows(invoice)
            rows += lines
            documents.add(invoice_id)
            summary.invoices_paid += 1
            summary.lines += len(lines)
        elif status in WAITING_INVOICE_STATUSES:
            waiting_invoices.add(invoice_id)
    summary.invoices_waiting = len(waiting_invoices)

    waiting_notes: set[str] = set()
    covered: dict[str, int] = {}
    notes = list(api.pages("credit notes", v1.credit_notes.list, in_range))
    seen_notes = {n["id"] for n in notes}
    for note_id in previous.credit_notes:
        if note_id not in seen_notes:
            notes.append(api.call("retrieve credit note", v1.credit_notes.retrieve, note_id).to_dict())
    for note in notes:
        if note.get("status") == "void":
            continue
        invoice = imp.invoice(_id(note.get("invoice")))
        if invoice.get("status") in WAITING_INVOICE_STATUSES:
            waiting_notes.add(note["id"])
            continue
        if invoice.get("status") != "paid":
            continue
        for link in note.get("refunds") or []:
            refund_id = _id(link.get("refund"))
            covered[refund_id] = covered.get(refund_id, 0) + int(link.get("amount_refunded") or 0)
        rows += imp.credit_note_rows(note)
        documents.add(note["id"])
        summary.credit_notes += 1

    waiting_refunds: set[str] = set()
    refunds = {r["id"]: r for r in api.pages("refunds", v1.refunds.list, in_range)}
    for refund_id in [*previous.refunds, *covered]:
        if refund_id and refund_id not in refunds:
            refunds[refund_id] = api.call("retrieve refund", v1.refunds.retrieve, refund_id).to_dict()
    for refund_id, refund in refunds.items():
        status = refund.get("status")
        if status == "pending" or status == "requires_action":
            waiting_refunds.add(refund_id)
            continue
        documents.add(refund_id)  # replaced even when it now yields nothing (covered or failed)
        if status != "succeeded":
            continue
        summary.refunds += 1
        if covered.get(refund_id, 0) >= int(refund.get("amount") or 0):
            summary.refunds_covered_by_credit_notes += 1
        rows += imp.refund_rows(refund, covered.get(refund_id, 0))

    if include_fees:
        for txn in api.pages("balance transactions", v1.balance_transactions.list, {**in_range, "expand": ["data.source"]}):
            fee = _fee_row(txn)
            if fee is not None:
                rows.append(fee)
                documents.add(txn["id"])
                summary.fees += 1
    return {
        "customers": customers,
        "subscription_items": subscription_items,
        "rows": [r for r in rows if r["amount_minor"] != 0],
        "documents": documents,
        "waiting_invoices": sorted(waiting_invoices),
        "waiting_notes": sorted(waiting_notes),
        "waiting_refunds": sorted(waiting_refunds),
    }


def _write(store: Store, plan: dict[str, Any], summary: StripeImportSummary, import_id: int) -> None:
    """Customers, matches, subscription snapshot, revenue, plans and cursor in one transaction."""
    stripe_customers = pd.DataFrame(plan["customers"], columns=["stripe_customer_id", "name", "email", "walleta_customer_id"])
    usage_customers = store.query("SELECT customer_id, name, email, stripe_customer_id FROM customers")
    mappings = store.query("SELECT source, key, customer_id, confirmed FROM customer_mappings WHERE source = ?", [MAPPING_SOURCE])
    matches = match_customers(stripe_customers, usage_customers, mappings)
    new_mappings = mapping_rows(matches)
    summary.mappings_added = len(new_mappings)
    summary.unmatched_customers = int((matches["status"].isin(["unmatched", "proposed"])).sum()) if not matches.empty else 0
    summary.conflicts = int((matches["status"] == "conflict").sum()) if not matches.empty else 0
    entries = [
        {"uid": r["uid"], "customer_id": r["stripe_customer"] or UNATTRIBUTED, "period_start": r["period_start"],
         "period_end": r["period_end"], "amount_minor": int(r["amount_minor"]), "currency": r["currency"], "kind": r["kind"],
         "document_id": r["document_id"], "description": r["description"][:500], "source": SOURCE, "import_id": import_id}
        for r in plan["rows"]
    ]
    deduped = list({e["uid"]: e for e in entries}.values())
    if deduped:
        months = sorted(e["period_start"][:7] for e in deduped) + sorted(e["period_end"][:7] for e in deduped)
        summary.months = (min(months), max(months))
    items = pd.DataFrame(plan["subscription_items"])
    with store.transaction() as cur:
        store.upsert("stripe_customers", plan["customers"], ["stripe_customer_id"], cur=cur)
        cur.execute("DELETE FROM stripe_subscription_items")
        store.upsert("stripe_subscription_items", plan["subscription_items"], ["item_id"], cur=cur)
        store.upsert("customer_mappings", new_mappings, ["source", "key"], cur=cur)
        summary.entries_removed = _delete_documents(store, cur, sorted(plan["documents"]))
        store.upsert("revenue_entries", deduped, ["uid"], cur=cur)
        remap_revenue(store, cur=cur)
        revenue_rollup.ensure_fresh(cur, store.dialect)
        _update_plans(store, cur, items)
        store.finish_import(import_id, status="ok", rows_read=len(plan["rows"]), rows_imported=len(deduped),
                            cursor=summary.cursor, cur=cur)
    summary.entries_written = len(deduped)


def _delete_documents(store: Store, cur: Any, documents: list[str]) -> int:
    removed = 0
    for start in range(0, len(documents), 500):
        chunk = documents[start : start + 500]
        cur.execute(
            store.sql(f"DELETE FROM revenue_entries WHERE source = 'stripe' AND document_id IN ({', '.join('?' for _ in chunk)})"),
            chunk,
        )
        removed += int(cur.rowcount or 0)
    return removed


def _update_plans(store: Store, cur: Any, items: pd.DataFrame) -> None:
    """customers.plan := the plan of a matched customer's one live subscription."""
    names = plan_names(items)
    if not names:
        return
    cur.execute(store.sql("SELECT key, customer_id FROM customer_mappings WHERE source = ? AND confirmed = 1"), [MAPPING_SOURCE])
    updates = [(names[k], v) for k, v in cur.fetchall() if k in names]
    if updates:
        cur.executemany(store.sql("UPDATE customers SET plan = ? WHERE customer_id = ?"), updates)
