"""OpenAI dashboard exports (Usage page > Export): the activity CSV and the cost CSV.

There is no official schema; the columns mirror the Usage/Costs API fields, flattened
(reference section 5). Matched by header name, in any order, extra columns ignored:

- Activity: `start_time` (Unix seconds, or `start_time_iso`), `end_time`, `project_id`,
  `user_id`, `api_key_id`, `model`, `batch` (TRUE/FALSE), `service_tier`,
  `num_model_requests`, `input_tokens`, `output_tokens`, `input_cached_tokens`,
  `input_cache_write_tokens`, `input_audio_tokens`, `output_audio_tokens`,
  `input_image_tokens`, `output_image_tokens` (and, for other usage types, `images`, `size`,
  `characters`, `seconds`, `num_requests`, `num_sessions`, `usage_bytes`). Counts may be
  written as floats (`59200.0`). Rows of empty buckets (only the time columns filled) are
  skipped. Rows become provider usage buckets (source `openai_export`), handled by the same
  rule as API usage (`walleta.sources.usage_rule`).
- Cost: `start_time` (or `start_time_iso`), `amount_value`, `amount_currency`, `line_item`,
  `project_id` (and optionally `api_key_id`). Rows become billed costs per day, project and
  line item, sharing their uid scheme with the Costs API import so the two never add up.
"""

from __future__ import annotations

import json
from typing import Any, Callable

import numpy as np

from ..catalog import Catalog
from ..money import usd_to_pico
from ..schema import BUCKET_COLUMNS
from ..store import Store
from .csv_reader import ColumnMapping, ColumnSpec, CsvTable, Validator
from .openai_usage import bucket_row, cost_row
from .report import ImportReport, ProgressCallback, begin_run, end_run, upsert_changed
from .usage_rule import apply_usage_rule

__all__ = ["ACTIVITY_SPECS", "COST_SPECS", "EXPORT_SOURCE", "COST_EXPORT_SOURCE", "import_activity", "import_costs"]

EXPORT_SOURCE = "openai_export"
COST_EXPORT_SOURCE = "openai_cost_export"
_GROUP_COLUMNS = ("project_id", "user_id", "api_key_id", "model", "batch", "service_tier", "size", "source", "context_level", "vector_store_id", "api_source")
_COUNT_COLUMNS = (
    "num_model_requests", "input_tokens", "output_tokens", "input_cached_tokens", "input_cache_write_tokens",
    "input_audio_tokens", "output_audio_tokens", "input_image_tokens", "output_image_tokens", "images",
    "characters", "num_requests", "num_sessions", "usage_bytes",
)
ACTIVITY_SPECS: tuple[ColumnSpec, ...] = (
    ColumnSpec("start_time", True, ("start_time_iso", "bucket_start", "start")),
    ColumnSpec("end_time", False, ("end_time_iso", "bucket_end", "end")),
    *(ColumnSpec(c) for c in _GROUP_COLUMNS),
    *(ColumnSpec(c) for c in _COUNT_COLUMNS),
    ColumnSpec("seconds", False, ("audio_seconds",)),
)
COST_SPECS: tuple[ColumnSpec, ...] = (
    ColumnSpec("start_time", True, ("start_time_iso", "bucket_start", "date", "day")),
    ColumnSpec("amount_value", True, ("amount", "cost", "cost_usd", "amount_usd")),
    ColumnSpec("amount_currency", False, ("currency",)),
    ColumnSpec("line_item", False, ("line_items", "item")),
    ColumnSpec("project_id", False, ()),
    ColumnSpec("api_key_id", False, ()),
)
_ENDPOINT_BY_COLUMN = (
    ("input_tokens", "completions"),
    ("images", "images"),
    ("characters", "audio_speeches"),
    ("seconds", "audio_transcriptions"),
    ("num_sessions", "code_interpreter_sessions"),
    ("usage_bytes", "vector_stores"),
    ("context_level", "web_search_calls"),
    ("num_requests", "file_search_calls"),
)


def _endpoint(v: Validator) -> str:
    return next((endpoint for column, endpoint in _ENDPOINT_BY_COLUMN if v.has(column)), "completions")


def _empty_rows(v: Validator, columns: tuple[str, ...]) -> np.ndarray:
    """Rows where every listed column is empty (an empty bucket in an export)."""
    empty = np.ones(v.n, dtype=bool)
    for column in columns:
        values = v.strings(column)
        if values is not None:
            empty &= np.asarray(values.to_numpy(zero_copy_only=False) == "", dtype=bool)
    return empty


def _bucket_starts(v: Validator) -> tuple[np.ndarray, np.ndarray]:
    starts = v.timestamp_us("start_time") // 1_000_000
    ends = v.timestamp_us("end_time", required=False) // 1_000_000 if v.has("end_time") else starts + 86_400
    ends = np.where(ends > starts, ends, starts + 86_400)
    return starts, ends


def import_activity(store: Store, table: CsvTable, mapping: ColumnMapping, catalog: Catalog, report: ImportReport, *, content_hash: str, progress: ProgressCallback) -> None:
    """Validate an activity export and store it as provider usage buckets; one transaction."""
    progress("validating", 0, 1)
    v = Validator(table, mapping)
    empty = _empty_rows(v, tuple(c for c in (*_GROUP_COLUMNS, *_COUNT_COLUMNS, "seconds") if c != "batch"))
    starts, ends = _bucket_starts(v)
    counts = {c: v.integer(c, what="count") for c in _COUNT_COLUMNS if v.has(c)}
    seconds = v.number("seconds", what="duration") if v.has("seconds") else None
    batch = v.boolean("batch")
    groups = {c: v.text(c) for c in _GROUP_COLUMNS if v.has(c) and c != "batch"}
    _check_parts(v, counts)
    endpoint = _endpoint(v)
    keys = tuple(c for c in _GROUP_COLUMNS if v.has(c))

    def bucket(i: int) -> dict[str, Any]:
        result: dict[str, Any] = {c: counts[c][i] for c in counts}
        result.update({c: values[i] or None for c, values in groups.items()})
        if v.has("batch"):
            result["batch"] = bool(batch[i])
        if seconds is not None:
            result["seconds"] = float(seconds[i])
        row = bucket_row(endpoint, int(starts[i]), int(ends[i]), result, source=EXPORT_SOURCE, group_by=keys)
        row["raw"] = json.dumps({"file": table.name, "row": int(table.row_numbers[i]), **{k: _plain(val) for k, val in result.items()}}, sort_keys=True)
        return row

    rows = _first_of_each_uid(v, table, empty, bucket, "start_time", "same bucket and group")
    report.errors.extend(v.errors)
    skipped_empty = int((empty & ~v.bad).sum())
    if skipped_empty:
        report.notes.append(f"{skipped_empty:,} empty buckets skipped")
    report.notes.append(f"activity export read as OpenAI '{endpoint}' usage")
    progress("writing", 0, len(rows))
    with store.transaction() as cur:
        import_id = begin_run(store, cur, "csv", "openai-activity", content_hash)
        for row in rows:
            row["import_id"] = import_id
        inserted, updated, same = upsert_changed(store, cur, "openai_usage_buckets", [{c: r[c] for c in BUCKET_COLUMNS} for r in rows])
        report.imported, report.updated, report.skipped = inserted, updated, same + skipped_empty + table.blank_rows
        changed = bool(inserted or updated)
        if rows:
            days = sorted({r["day"] for r in rows})
            rule = apply_usage_rule(store, catalog, cur=cur, first_day=days[0], last_day=days[-1], import_id=import_id)
            changed = changed or rule.changed
            report.notes.append(f"usage events: {rule.added:,} added, {rule.replaced:,} replaced, {rule.removed:,} removed")
            _price_summary(store, cur, catalog, rows, report)
        report.import_id = end_run(store, cur, import_id, report, source="csv", content_hash=content_hash, changed=changed)
    progress("writing", len(rows), len(rows))


def _first_of_each_uid(
    v: Validator, table: CsvTable, empty: np.ndarray, build: Callable[[int], dict[str, Any]], column: str, same: str
) -> list[dict[str, Any]]:
    """The rows `build(i)` makes from every valid, non-empty row i, keeping the first row of each
    uid; a later row with the same uid is rejected at `column`: "duplicate id: <same> as row N"."""
    rows: list[dict[str, Any]] = []
    first_row: dict[str, int] = {}
    duplicate = np.zeros(v.n, dtype=bool)
    reasons = [""] * v.n
    for i in range(v.n):
        if v.bad[i] or empty[i]:
            continue
        row = build(i)
        if row["uid"] in first_row:
            duplicate[i] = True
            reasons[i] = f"duplicate id: {same} as row {first_row[row['uid']]}"
            continue
        first_row[row["uid"]] = int(table.row_numbers[i])
        rows.append(row)
    v.reject(duplicate, column, reasons)
    return rows


def _plain(value: Any) -> Any:
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    return value


def _check_parts(v: Validator, counts: dict[str, np.ndarray]) -> None:
    if "input_tokens" not in counts:
        return
    for part in ("input_cached_tokens", "input_cache_write_tokens", "input_audio_tokens", "input_image_tokens"):
        if part in counts:
            over = (counts[part] > counts["input_tokens"]) & ~v.bad
            v.reject(over, part, f"{part} exceeds input_tokens")
    if "output_tokens" in counts:
        for part in ("output_audio_tokens", "output_image_tokens"):
            if part in counts:
                over = (counts[part] > counts["output_tokens"]) & ~v.bad
                v.reject(over, part, f"{part} exceeds output_tokens")


def _price_summary(store: Store, cur: Any, catalog: Catalog, rows: list[dict[str, Any]], report: ImportReport) -> None:
    import pandas as pd

    from ..events import prepare_events
    from .mapping import load_mappings
    from .usage_rule import NON_EVENT_ENDPOINTS, buckets_to_events

    usable = [r for r in rows if r["endpoint"] not in NON_EVENT_ENDPOINTS]
    if not usable:
        return
    frame = buckets_to_events(pd.DataFrame(usable), load_mappings(store, cur))
    priced = prepare_events(frame.drop(columns=["source"]), catalog, source=EXPORT_SOURCE)
    report.cost_pico = sum(int(x) for x in priced["cost_pico"].dropna())
    unpriced = (priced["price_status"] == "unpriced").to_numpy()
    report.unpriced = int(unpriced.sum())
    report.unpriced_reasons.update(priced.loc[unpriced, "price_note"].tolist())


def import_costs(store: Store, table: CsvTable, mapping: ColumnMapping, report: ImportReport, *, content_hash: str, progress: ProgressCallback) -> None:
    """Validate a cost export and upsert billed costs per day, project and line item."""
    from .csv_revenue import ISO_4217

    progress("validating", 0, 1)
    v = Validator(table, mapping)
    amounts_present = _empty_rows(v, ("amount_value",))
    empty = amounts_present  # an empty bucket has no amount
    starts, _ends = _bucket_starts(v)
    amounts = v.usd_pico("amount_value", minimum=None)
    currencies = v.text("amount_currency", default="usd")
    upper = np.array([c.upper() for c in currencies], dtype=object)
    unknown = np.array([c not in ISO_4217 for c in upper], dtype=bool) & ~v.bad & ~empty
    v.reject(unknown, "amount_currency", "unknown currency code (use ISO 4217, e.g. USD)")
    line_items = v.text("line_item")
    projects = v.text("project_id")
    api_keys = v.text("api_key_id")

    def cost(i: int) -> dict[str, Any]:
        result = {"amount": {"value": "0", "currency": upper[i]}, "line_item": line_items[i] or None, "project_id": projects[i] or None, "api_key_id": api_keys[i] or None}
        row = cost_row(int(starts[i]), result, source=COST_EXPORT_SOURCE)
        row["amount_pico"] = int(amounts[i]) if amounts[i] is not None else usd_to_pico(0)
        return row

    column = "line_item" if v.has("line_item") else "start_time"
    rows = _first_of_each_uid(v, table, empty, cost, column, "same day, project and line item")
    report.errors.extend(v.errors)
    skipped_empty = int((empty & ~v.bad).sum())
    progress("writing", 0, len(rows))
    with store.transaction() as cur:
        import_id = begin_run(store, cur, "csv", "openai-costs", content_hash)
        for row in rows:
            row["import_id"] = import_id
        inserted, updated, same = upsert_changed(store, cur, "billed_costs", rows)
        report.imported, report.updated, report.skipped = inserted, updated, same + skipped_empty + table.blank_rows
        report.cost_pico = sum(r["amount_pico"] for r in rows if r["currency"] == "USD")
        report.notes.append("cost covered = billed amount in the file (USD)")
        report.import_id = end_run(store, cur, import_id, report, source="csv", content_hash=content_hash, changed=bool(inserted or updated))
    progress("writing", len(rows), len(rows))
