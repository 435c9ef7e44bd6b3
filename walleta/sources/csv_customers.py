"""Customers CSV and customer-mapping CSV.

Customers: `customer_id` (required), optional `name`, `plan`, `signup_date` (YYYY-MM-DD or
any ISO date/time), `email`, `stripe_customer_id`. Rows are upserted by `customer_id`; a
column absent from the file or an empty cell leaves the stored value as it is (so a file with
only ids and plans does not erase names). A `customer_id` repeated in the file is rejected.

Mapping: `source` (openai_project / openai_api_key / openai_user / stripe_customer; also
accepted: project, api_key, user, stripe), `key`, `customer_id`. Rows are upserted by
(source, key); a (source, key) repeated in the file is rejected. After a mapping import,
stored OpenAI usage is re-mapped and the rollups rebuilt (see `walleta.sources.mapping`).
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from ..store import Store
from .csv_reader import ColumnMapping, ColumnSpec, CsvTable, Validator
from .mapping import MAPPING_SOURCES, normalise_source, remap_provider_events
from .report import ImportReport, ProgressCallback, begin_run, end_run

__all__ = ["CUSTOMER_SPECS", "MAPPING_SPECS", "import_customers", "import_mapping"]

CUSTOMER_SPECS: tuple[ColumnSpec, ...] = (
    ColumnSpec("customer_id", True, ("customer", "id", "client_id", "account_id", "tenant_id")),
    ColumnSpec("name", False, ("customer_name", "company", "company_name", "display_name")),
    ColumnSpec("plan", False, ("plan_name", "tier", "pricing_plan", "subscription_plan")),
    ColumnSpec("signup_date", False, ("signup", "signed_up", "created", "created_at", "start_date", "joined")),
    ColumnSpec("email", False, ("customer_email", "billing_email", "e_mail")),
    ColumnSpec("stripe_customer_id", False, ("stripe_id", "stripe_customer", "stripe")),
)
MAPPING_SPECS: tuple[ColumnSpec, ...] = (
    ColumnSpec("source", True, ("type", "key_type", "mapping_source")),
    ColumnSpec("key", True, ("id", "external_id", "key_id", "value")),
    ColumnSpec("customer_id", True, ("customer",)),
)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_CUSTOMER_FIELDS = ("name", "plan", "signup_date", "email", "stripe_customer_id")


def _duplicates(v: Validator, keys: list[Any], column: str, label: str) -> None:
    """Reject later rows whose key already appeared (naming the first row)."""
    first: dict[Any, int] = {}
    mask = np.zeros(v.n, dtype=bool)
    reasons = [""] * v.n
    for i, key in enumerate(keys):
        if key is None or v.bad[i]:
            continue
        if key in first:
            mask[i] = True
            reasons[i] = f"duplicate id: {label} already in row {first[key]}"
        else:
            first[key] = int(v.table.row_numbers[i])
    v.reject(mask, column, reasons)


def import_customers(store: Store, table: CsvTable, mapping: ColumnMapping, report: ImportReport, *, content_hash: str, progress: ProgressCallback) -> None:
    """Validate and upsert customers in one transaction; fills `report`."""
    progress("validating", 0, 1)
    v = Validator(table, mapping)
    ids = v.text("customer_id", required=True)
    values = {
        "name": v.text("name"),
        "plan": v.text("plan"),
        "signup_date": v.date("signup_date"),
        "email": v.text("email"),
        "stripe_customer_id": v.text("stripe_customer_id"),
    }
    emails = values["email"]
    bad_email = np.array([bool(e) and not _EMAIL.match(e) for e in emails], dtype=bool)
    v.reject(bad_email & ~v.bad, "email", "not an email address")
    _duplicates(v, [i if i else None for i in ids], "customer_id", "customer_id")
    report.errors.extend(v.errors)
    rows = [
        (ids[i], *(values[f][i] for f in _CUSTOMER_FIELDS))
        for i in np.flatnonzero(v.good)
    ]
    progress("writing", 0, len(rows))
    with store.transaction() as cur:
        import_id = begin_run(store, cur, "csv", "customers", content_hash)
        inserted, updated, same = _upsert_customers(store, cur, rows)
        report.imported, report.updated, report.skipped = inserted, updated, same + table.blank_rows
        report.import_id = end_run(store, cur, import_id, report, source="csv", content_hash=content_hash, changed=bool(inserted or updated))
    progress("writing", len(rows), len(rows))


def _upsert_customers(store: Store, cur: Any, rows: list[tuple]) -> tuple[int, int, int]:
    """Insert new customers; fill in non-empty fields of known ones. (inserted, updated, unchanged)."""
    existing: dict[str, tuple] = {}
    ids = [r[0] for r in rows]
    for offset in range(0, len(ids), 500):
        chunk = ids[offset : offset + 500]
        cur.execute(store.sql(f"SELECT customer_id, {', '.join(_CUSTOMER_FIELDS)} FROM customers WHERE customer_id IN ({', '.join('?' for _ in chunk)})"), chunk)
        existing.update({r[0]: tuple(r[1:]) for r in cur.fetchall()})
    inserts, updates = [], []
    for customer, *fields in rows:
        before = existing.get(customer)
        if before is None:
            inserts.append((customer, *fields, "csv"))
            continue
        merged = tuple(new if new else (old or "") for new, old in zip(fields, before))
        if merged != tuple(old or "" for old in before):
            updates.append((*merged, customer))
    if inserts:
        cur.executemany(
            store.sql(f"INSERT INTO customers (customer_id, {', '.join(_CUSTOMER_FIELDS)}, source) VALUES ({', '.join('?' for _ in range(len(_CUSTOMER_FIELDS) + 2))})"),
            inserts,
        )
    if updates:
        cur.executemany(store.sql(f"UPDATE customers SET {', '.join(f'{c} = ?' for c in _CUSTOMER_FIELDS)} WHERE customer_id = ?"), updates)
    return len(inserts), len(updates), len(rows) - len(inserts) - len(updates)


def import_mapping(store: Store, table: CsvTable, mapping: ColumnMapping, report: ImportReport, *, content_hash: str, progress: ProgressCallback) -> None:
    """Validate and upsert mappings, then re-map stored OpenAI usage; one transaction."""
    progress("validating", 0, 1)
    v = Validator(table, mapping)
    raw_sources = v.text("source", required=True)
    keys = v.text("key", required=True)
    customers = v.text("customer_id", required=True)
    sources = np.array([normalise_source(s) if s else None for s in raw_sources], dtype=object)
    unknown = np.array([bool(raw) and src is None for raw, src in zip(raw_sources, sources)], dtype=bool)
    v.reject(unknown & ~v.bad, "source", f"unknown mapping source (use {', '.join(MAPPING_SOURCES)})")
    _duplicates(v, [(s, k) if s and k else None for s, k in zip(sources, keys)], "key", "this source and key")
    report.errors.extend(v.errors)
    rows = [(str(sources[i]), str(keys[i]), str(customers[i])) for i in np.flatnonzero(v.good)]
    progress("writing", 0, len(rows))
    with store.transaction() as cur:
        import_id = begin_run(store, cur, "csv", "mapping", content_hash)
        existing: dict[tuple[str, str], str] = {}
        cur.execute("SELECT source, key, customer_id FROM customer_mappings")
        existing = {(s, k): c for s, k, c in cur.fetchall()}
        new = [r for r in rows if (r[0], r[1]) not in existing]
        changed = [r for r in rows if (r[0], r[1]) in existing and existing[(r[0], r[1])] != r[2]]
        statement = store.sql(
            "INSERT INTO customer_mappings (source, key, customer_id, confirmed, method) VALUES (?, ?, ?, 1, 'csv') "
            "ON CONFLICT (source, key) DO UPDATE SET customer_id = excluded.customer_id, confirmed = 1, method = 'csv'"
        )
        if new or changed:
            cur.executemany(statement, [*new, *changed])
        remapped = remap_provider_events(store, cur=cur) if (new or changed) else 0
        if remapped:
            report.notes.append(f"{remapped:,} stored OpenAI usage rows re-mapped to customers; rollups rebuilt")
        report.imported, report.updated, report.skipped = len(new), len(changed), len(rows) - len(new) - len(changed) + table.blank_rows
        report.import_id = end_run(store, cur, import_id, report, source="csv", content_hash=content_hash, changed=bool(new or changed))
    progress("writing", len(rows), len(rows))
