"""Revenue CSV: Walleta's own schema, or Stripe's invoice export, -> `revenue_entries`.

Our schema: `customer_id`, `period_start`, optional `period_end` (default: period_start),
`amount` (major units as written, e.g. `99.00`), `currency` (ISO 4217), optional `kind`
(subscription / usage / one_off / refund / credit_note; default subscription) and
`document_id`. Refunds and credit notes are stored negative whatever sign they are written
with; other kinds may not be negative.

Stripe invoice export (Dashboard > Invoices > Export): recognised by its columns `id`,
`Customer` (or `Customer ID`), `Amount Paid` / `Total` / `Amount Due`, `Currency`, `Status`,
`Period Start (UTC)`, `Period End (UTC)` or `Date (UTC)`, `Subscription`, `Tax`. Only paid
invoices are imported (others are counted as skipped); revenue is `Amount Paid` (else
`Total`, else `Amount Due`) minus `Tax` when that column exists; amounts are read in major
units as the Dashboard writes them. The Stripe customer id is resolved to a Walleta customer
through the `stripe_customer` mapping or `customers.stripe_customer_id`; unresolved ones are
kept under the Stripe id (nothing is dropped) and counted in the report.

Validation (row, column and reason for each): missing required value, not a number, more
decimals than the currency has, amount too large (beyond MAX_AMOUNT_MINOR = 10^15 minor units
per row), unknown currency code, unparseable date, period_end before period_start, unknown
kind, negative amount where not allowed, duplicate (document_id, kind).
Entries are upserted by uid (`csv:<document_id>:<kind>`, or a content hash when there is no
document id), so importing the file again changes nothing.
"""

from __future__ import annotations

import hashlib
import re
from decimal import Decimal, InvalidOperation
from typing import Any

import numpy as np

from ..errors import InputError
from ..money import major_to_minor
from .. import revenue_rollup
from ..store import Store
from .csv_reader import ColumnMapping, ColumnSpec, CsvTable, Validator, match_header
from .report import ImportReport, ProgressCallback, begin_run, end_run, upsert_changed

__all__ = ["OWN_SPECS", "STRIPE_SPECS", "ISO_4217", "KINDS", "MAX_AMOUNT_MINOR", "is_stripe_export", "import_revenue"]

# The largest amount one revenue row may hold, in minor units of its currency (10 trillion USD,
# 1 trillion KWD, 10^15 JPY). Far inside int64, so per-customer sums in the database stay exact.
MAX_AMOUNT_MINOR = 10**15

_THOUSANDS_COMMA = re.compile(r"^[+-]?\d{1,3}(,\d{3})+(\.\d+)?$")
_THOUSANDS_DOT = re.compile(r"^[+-]?\d{1,3}(\.\d{3})+(,\d+)?$")
KINDS = ("subscription", "usage", "one_off", "refund", "credit_note")
_NEGATIVE_KINDS = ("refund", "credit_note")
# Active ISO 4217 currency codes.
ISO_4217 = frozenset(
    """AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BOV BRL BSD BTN BWP BYN
    BZD CAD CDF CHE CHF CHW CLF CLP CNY COP COU CRC CUC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP
    GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW
    KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD
    NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE
    SLL SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD USN UYI UYU UYW UZS VED
    VES VND VUV WST XAF XCD XCG XOF XPF YER ZAR ZMW ZWG ZWL""".split()
)
OWN_SPECS: tuple[ColumnSpec, ...] = (
    ColumnSpec("customer_id", True, ("customer", "client_id", "account_id")),
    ColumnSpec("period_start", True, ("start", "start_date", "service_start", "period", "month", "date")),
    ColumnSpec("period_end", False, ("end", "end_date", "service_end")),
    ColumnSpec("amount", True, ("amount_major", "revenue", "value", "price")),
    ColumnSpec("currency", True, ("ccy", "currency_code")),
    ColumnSpec("kind", False, ("type", "revenue_type", "category")),
    ColumnSpec("document_id", False, ("invoice_id", "document", "invoice", "id", "reference")),
)
STRIPE_SPECS: tuple[ColumnSpec, ...] = (
    ColumnSpec("document_id", True, ("id", "invoice_id", "number", "invoice_number")),
    ColumnSpec("stripe_customer", True, ("customer", "customer_id", "stripe_customer_id")),
    ColumnSpec("customer_email", False, ("email",)),
    ColumnSpec("amount_paid", False, ()),
    ColumnSpec("total", False, ("amount_total",)),
    ColumnSpec("amount_due", False, ()),
    ColumnSpec("tax", False, ("tax_amount", "total_tax")),
    ColumnSpec("currency", True, ()),
    ColumnSpec("status", False, ("invoice_status",)),
    ColumnSpec("period_start", False, ("period_start_utc", "service_period_start")),
    ColumnSpec("period_end", False, ("period_end_utc", "service_period_end")),
    ColumnSpec("date", False, ("date_utc", "created_utc", "created", "finalized_at_utc", "paid_at_utc")),
    ColumnSpec("subscription", False, ("subscription_id",)),
)


def is_stripe_export(header: list[str]) -> bool:
    """True when the header looks like Stripe's invoice export rather than our revenue schema."""
    found = match_header(header, STRIPE_SPECS).columns
    has_amount = any(k in found for k in ("amount_paid", "total", "amount_due"))
    return has_amount and "currency" in found and "stripe_customer" in found and "document_id" in found and "amount" not in {c.lower() for c in header}


def _uid(document_id: str, kind: str, content: tuple, occurrence: int) -> str:
    if document_id:
        uid = f"csv:{document_id}:{kind}"
        if len(uid) <= 128:
            return uid
    digest = hashlib.blake2b(repr((document_id, kind, content)).encode(), digest_size=16).hexdigest()
    return f"csvrev:{digest}" + (f"-{occurrence}" if occurrence else "")


def _amounts(v: Validator, column: str, currencies: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Major-unit text -> (minor units as object array, mask of cells that are present)."""
    values = v.strings(column)
    out = np.full(v.n, None, dtype=object)
    present = np.zeros(v.n, dtype=bool)
    if values is None:
        return out, present
    texts = values.to_pylist()
    reasons = [""] * v.n
    bad = np.zeros(v.n, dtype=bool)
    for i, text in enumerate(texts):
        if text == "" or currencies[i] is None:  # a missing or unknown currency is already an error
            continue
        if v.table.decimal_comma:
            text = text.replace(".", "") if _THOUSANDS_DOT.match(text) else text
            text = text.replace(",", ".")
        elif _THOUSANDS_COMMA.match(text):
            text = text.replace(",", "")  # 1,234.56
        text = text.replace(" ", "").replace("\u00a0", "")
        if _beyond_limit(text):  # 1e999999 and friends: refused before any arithmetic
            bad[i], reasons[i] = True, _TOO_LARGE
            continue
        try:
            minor = major_to_minor(text, currencies[i])
        except InputError as exc:
            bad[i] = True
            reasons[i] = "not a number" if "not a" in str(exc) else str(exc)
            continue
        if abs(minor) > MAX_AMOUNT_MINOR:
            bad[i], reasons[i] = True, _TOO_LARGE
            continue
        out[i] = minor
        present[i] = True
    v.reject(bad, column, reasons)
    return out, present


_TOO_LARGE = f"amount too large (at most {MAX_AMOUNT_MINOR:,} minor units of the currency per row)"


def _beyond_limit(text: str) -> bool:
    """True for a number far beyond MAX_AMOUNT_MINOR, judged from its exponent alone."""
    try:
        value = Decimal(text)
    except InvalidOperation:
        return False  # not a number: major_to_minor says so
    return value.is_finite() and not value.is_zero() and value.adjusted() > len(str(MAX_AMOUNT_MINOR))


def _currencies(v: Validator) -> np.ndarray:
    codes = v.text("currency", required=True)
    upper = np.array([c.upper() if c else None for c in codes], dtype=object)
    unknown = np.array([c is not None and c not in ISO_4217 for c in upper], dtype=bool)
    v.reject(unknown & ~v.bad, "currency", "unknown currency code (use ISO 4217, e.g. USD, EUR)")
    upper[unknown] = None
    return upper


def _periods(v: Validator, start_column: str, end_column: str | None, fallback: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    starts = v.date(start_column, required=fallback is None)
    if fallback is not None:
        backup = v.date(fallback)
        starts = np.where(starts == "", backup, starts)
        missing = (starts == "") & ~v.bad
        v.reject(missing, start_column if v.has(start_column) else fallback, "missing required value (a period start or invoice date)")
    ends = v.date(end_column) if end_column else np.full(v.n, "", dtype=object)
    ends = np.where(ends == "", starts, ends)
    backwards = np.array([bool(s) and bool(e) and e < s for s, e in zip(starts, ends)], dtype=bool) & ~v.bad
    v.reject(backwards, end_column or start_column, "period_end is before period_start")
    return starts, ends


def _parse_own(v: Validator) -> list[dict[str, Any]]:
    customers = v.text("customer_id", required=True)
    currencies = _currencies(v)
    starts, ends = _periods(v, "period_start", "period_end")
    kinds = v.text("kind", default="subscription", lower=True)
    unknown = np.array([k not in KINDS for k in kinds], dtype=bool) & ~v.bad
    v.reject(unknown, "kind", f"unknown kind (use {', '.join(KINDS)})")
    amounts, present = _amounts(v, "amount", currencies)
    missing = ~present & ~v.bad
    v.reject(missing, "amount", "missing required value")
    documents = v.text("document_id")
    return _entries(v, customers, starts, ends, amounts, currencies, kinds, documents, ["" for _ in range(v.n)], "csv")


def _entries(v: Validator, customers, starts, ends, amounts, currencies, kinds, documents, descriptions, source) -> list[dict[str, Any]]:
    negative = np.array([a is not None and a < 0 and k not in _NEGATIVE_KINDS for a, k in zip(amounts, kinds)], dtype=bool) & ~v.bad
    v.reject(negative, "amount", "negative amount (write refunds and credit notes with kind refund / credit_note)")
    seen: dict[tuple[str, str], int] = {}
    duplicate = np.zeros(v.n, dtype=bool)
    reasons = [""] * v.n
    for i, (document, kind) in enumerate(zip(documents, kinds)):
        if not document or v.bad[i]:
            continue
        if (document, kind) in seen:
            duplicate[i] = True
            reasons[i] = f"duplicate id: document {document} ({kind}) already in row {seen[(document, kind)]}"
        else:
            seen[(document, kind)] = int(v.table.row_numbers[i])
    v.reject(duplicate, "document_id", reasons)
    entries: list[dict[str, Any]] = []
    occurrences: dict[str, int] = {}
    for i in np.flatnonzero(v.good):
        amount = int(amounts[i])
        if kinds[i] in _NEGATIVE_KINDS:
            amount = -abs(amount)
        content = (customers[i], starts[i], ends[i], amount, currencies[i])
        key = repr((documents[i], kinds[i], content))
        occurrence = occurrences.get(key, 0)
        occurrences[key] = occurrence + 1
        entries.append({
            "uid": _uid(str(documents[i]), str(kinds[i]), content, occurrence),
            "customer_id": str(customers[i]),
            "period_start": str(starts[i]),
            "period_end": str(ends[i]),
            "amount_minor": amount,
            "currency": str(currencies[i]),
            "kind": str(kinds[i]),
            "document_id": str(documents[i]),
            "description": str(descriptions[i]),
            "source": source,
        })
    return entries


def _parse_stripe(v: Validator, store: Store, report: ImportReport) -> list[dict[str, Any]]:
    stripe_ids = v.text("stripe_customer", required=True)
    currencies = _currencies(v)
    status = v.text("status", lower=True)
    unpaid = np.array([bool(s) and s != "paid" for s in status], dtype=bool)
    amount_column = next((c for c in ("amount_paid", "total", "amount_due") if v.has(c)), "amount_paid")
    amounts, present = _amounts(v, amount_column, currencies)
    v.reject(~present & ~v.bad & ~unpaid, amount_column, "missing required value")
    if v.has("tax"):
        taxes, _ = _amounts(v, "tax", currencies)
        amounts = np.array([a - (t or 0) if a is not None else None for a, t in zip(amounts, taxes)], dtype=object)
        beyond = np.array([a is not None and abs(a) > MAX_AMOUNT_MINOR for a in amounts], dtype=bool) & ~v.bad
        v.reject(beyond, amount_column, _TOO_LARGE)
    starts, ends = _periods(v, "period_start", "period_end" if v.has("period_end") else None, fallback="date")
    subscriptions = v.text("subscription")
    kinds = np.array(["subscription" if s else "one_off" for s in subscriptions], dtype=object)
    documents = v.text("document_id", required=True)
    customers, unresolved = _resolve_stripe_customers(store, stripe_ids)
    skip = unpaid & ~v.bad
    v.bad[skip] = True  # not errors: left out of the import and counted as skipped
    entries = _entries(v, customers, starts, ends, amounts, currencies, kinds, documents, stripe_ids, "csv_stripe")
    v.bad[skip] = False
    report.skipped += int(skip.sum())
    if skip.any():
        report.notes.append(f"{int(skip.sum()):,} invoices not paid (draft/open/void/uncollectible) were skipped")
    if unresolved:
        report.notes.append(f"{unresolved:,} rows have Stripe customers not matched to a Walleta customer; kept under the Stripe id")
    report.notes.append(f"revenue = {amount_column}{' - tax' if v.has('tax') else ''}, amounts in major units")
    return entries


def _resolve_stripe_customers(store: Store, stripe_ids: np.ndarray) -> tuple[np.ndarray, int]:
    table = dict(store.query("SELECT stripe_customer_id, customer_id FROM customers WHERE stripe_customer_id <> ''").itertuples(index=False, name=None))
    table.update(dict(store.query("SELECT key, customer_id FROM customer_mappings WHERE source = 'stripe_customer'").itertuples(index=False, name=None)))
    out = np.array([table.get(s, s) for s in stripe_ids], dtype=object)
    unresolved = sum(1 for s in stripe_ids if s and s not in table)
    return out, unresolved


def import_revenue(store: Store, table: CsvTable, mapping: ColumnMapping, report: ImportReport, *, content_hash: str, progress: ProgressCallback, stripe: bool) -> None:
    """Validate and upsert revenue entries (our schema or a Stripe invoice export); one transaction."""
    progress("validating", 0, 1)
    v = Validator(table, mapping)
    entries = _parse_stripe(v, store, report) if stripe else _parse_own(v)
    report.errors.extend(v.errors)
    progress("writing", 0, len(entries))
    with store.transaction() as cur:
        import_id = begin_run(store, cur, "csv", "revenue", content_hash)
        for entry in entries:
            entry["import_id"] = import_id
        inserted, updated, same = upsert_changed(store, cur, "revenue_entries", entries)
        revenue_rollup.ensure_fresh(cur, store.dialect)
        report.imported, report.updated = inserted, updated
        report.skipped += same + table.blank_rows
        report.import_id = end_run(store, cur, import_id, report, source="csv", content_hash=content_hash, changed=bool(inserted or updated))
    progress("writing", len(entries), len(entries))
