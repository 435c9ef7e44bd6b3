"""Usage CSV in Walleta's own schema -> priced usage events (source 'csv').

Columns (canonical names; headers are matched ignoring case/spaces, with synonyms):
required `timestamp`, `customer_id`, `model`, `input_tokens`, `output_tokens`; optional
`feature`, `cached_input_tokens`, `cache_write_tokens`, `reasoning_tokens`,
`input_audio_tokens`, `output_audio_tokens`, `input_image_tokens`, `output_image_tokens`,
`images`, `image_size`, `image_quality`, `audio_seconds`, `characters`, `requests` (default 1),
`service_tier` (default/flex/priority), `batch` (true/false), `project_id`, `api_key_id`,
`user_id`, `request_id`, `latency_ms`, `cost_usd` (provider-reported, kept beside the computed
cost).

Rows are rejected (with file, row, column and reason) for: a missing required value, a value
that is not a number / not a whole number, negative counts, token parts larger than their
total (cached > input, ...), an unparseable time, a non-boolean `batch`, a negative cost, and
a `request_id` already used by an earlier row of the file. Good rows are imported in one
transaction with content uids (or `req:<request_id>`), so importing the file again adds
nothing.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pandas as pd

from ..catalog import Catalog
from ..events import prepare_events
from ..schema import TOKEN_COLUMNS
from ..store import Store
from .csv_reader import ColumnMapping, ColumnSpec, CsvTable, Validator
from .report import ImportReport, ProgressCallback, begin_run, end_run
from .usage_rule import apply_usage_rule

__all__ = ["KIND", "SPECS", "parse_usage", "import_usage", "WRITE_CHUNK"]

KIND = "usage"
WRITE_CHUNK = 100_000
SPECS: tuple[ColumnSpec, ...] = (
    ColumnSpec("timestamp", True, ("time", "ts", "datetime", "date", "created", "created_at", "event_time", "timestamp_utc", "time_utc")),
    ColumnSpec("customer_id", True, ("customer", "client_id", "account_id", "tenant_id", "organization_id", "org_id")),
    ColumnSpec("model", True, ("model_name", "model_id", "engine")),
    ColumnSpec("input_tokens", True, ("prompt_tokens", "tokens_in", "input_token_count", "n_input_tokens")),
    ColumnSpec("output_tokens", True, ("completion_tokens", "tokens_out", "output_token_count", "n_output_tokens")),
    ColumnSpec("feature", False, ("feature_name", "use_case", "endpoint_name", "tag")),
    ColumnSpec("cached_input_tokens", False, ("cached_tokens", "input_cached_tokens", "prompt_cached_tokens", "cache_read_tokens", "cache_read_input_tokens")),
    ColumnSpec("cache_write_tokens", False, ("input_cache_write_tokens", "cache_creation_tokens", "cache_creation_input_tokens")),
    ColumnSpec("reasoning_tokens", False, ("completion_reasoning_tokens", "output_reasoning_tokens")),
    ColumnSpec("input_audio_tokens", False, ("audio_input_tokens", "prompt_audio_tokens")),
    ColumnSpec("output_audio_tokens", False, ("audio_output_tokens", "completion_audio_tokens")),
    ColumnSpec("input_image_tokens", False, ("image_input_tokens",)),
    ColumnSpec("output_image_tokens", False, ("image_output_tokens",)),
    ColumnSpec("images", False, ("num_images", "image_count")),
    ColumnSpec("image_size", False, ("size",)),
    ColumnSpec("image_quality", False, ("quality",)),
    ColumnSpec("audio_seconds", False, ("seconds", "duration_seconds", "audio_duration_seconds")),
    ColumnSpec("characters", False, ("num_characters", "chars")),
    ColumnSpec("requests", False, ("num_requests", "request_count", "num_model_requests", "calls")),
    ColumnSpec("service_tier", False, ("tier",)),
    ColumnSpec("batch", False, ("is_batch",)),
    ColumnSpec("project_id", False, ("project",)),
    ColumnSpec("api_key_id", False, ("api_key", "key_id")),
    ColumnSpec("user_id", False, ("user",)),
    ColumnSpec("request_id", False, ("response_id", "call_id")),
    ColumnSpec("latency_ms", False, ("latency", "duration_ms")),
    ColumnSpec("cost_usd", False, ("cost", "provider_cost", "provider_cost_usd", "cost_dollars")),
)
_KNOWN_TIERS = {"default", "auto", "flex", "priority", "fast", "scale", "standard"}
_INPUT_PARTS = ("cached_input_tokens", "cache_write_tokens", "input_audio_tokens", "input_image_tokens")
_OUTPUT_PARTS = ("reasoning_tokens", "output_audio_tokens", "output_image_tokens")


def parse_usage(table: CsvTable, mapping: ColumnMapping) -> tuple[pd.DataFrame, Validator, list[str]]:
    """Validate a usage table. Returns (frame of good rows for prepare_events, validator, notes)."""
    v = Validator(table, mapping)
    notes: list[str] = []
    data: dict[str, Any] = {
        "ts_us": v.timestamp_us("timestamp"),
        "customer_id": v.text("customer_id", required=True),
        "model": v.text("model", required=True),
        "feature": v.text("feature", default=""),
    }
    for name in TOKEN_COLUMNS:
        data[name] = v.integer(name, required=name in ("input_tokens", "output_tokens"), what="token count")
    for name in ("images", "characters"):
        data[name] = v.integer(name, what=name)
    data["requests"] = v.integer("requests", default=1, what="request count")
    data["audio_seconds"] = v.number("audio_seconds", what="duration")
    data["image_size"] = v.text("image_size", lower=True)
    data["image_quality"] = v.text("image_quality", lower=True)
    data["service_tier"] = v.text("service_tier", default="default", lower=True)
    data["batch"] = v.boolean("batch")
    for name in ("project_id", "api_key_id", "user_id", "request_id"):
        data[name] = v.text(name)
    if v.has("latency_ms"):
        latency = v.integer("latency_ms", default=-1, minimum=None, what="latency")
        negative = latency < -1
        v.reject(negative & ~v.bad, "latency_ms", "negative latency")
        data["latency_ms"] = np.where(latency < 0, None, latency).astype(object)
    if v.has("cost_usd"):
        data["provider_cost_pico"] = v.usd_pico("cost_usd")
    _check_parts(v, data)
    _check_duplicate_requests(v, data["request_id"])
    tiers = Counter(t for t in pd.unique(data["service_tier"]) if t not in _KNOWN_TIERS)
    if tiers:
        notes.append("service_tier values billed at standard rates (not recognised): " + ", ".join(sorted(tiers)))
    good = v.good
    everything = bool(good.all())
    # Explicit dtypes: object text stays object (no pandas string conversion on the hot path).
    frame = pd.DataFrame(
        {k: pd.Series(val if everything else val[good], dtype=val.dtype, copy=False) for k, val in data.items()},
        copy=False,
    )
    return frame, v, notes


def _check_parts(v: Validator, data: dict[str, Any]) -> None:
    """Parts of a total may not exceed it: cached > input and the like are rejected."""
    for total, parts in (("input_tokens", _INPUT_PARTS), ("output_tokens", _OUTPUT_PARTS)):
        for part in parts:
            if not v.has(part):
                continue
            over = (data[part] > data[total]) & ~v.bad
            if over.any():
                rows = np.flatnonzero(over)
                reasons = [""] * v.n
                for i in rows:
                    reasons[i] = f"{part} ({data[part][i]:,}) exceeds {total} ({data[total][i]:,})"
                v.reject(over, part, reasons)
        present = [p for p in parts if v.has(p)]
        if len(present) > 1:
            combined = sum(data[p] for p in present)
            over = (combined > data[total]) & ~v.bad
            if over.any():
                v.reject(over, present[0], f"{' + '.join(present)} together exceed {total}")


def _check_duplicate_requests(v: Validator, request_ids: np.ndarray) -> None:
    """A request id may appear once per file: later rows with the same id are rejected."""
    ids = pd.Series(request_ids, dtype=object, copy=False)
    filled = ids != ""
    if not filled.any():
        return
    # Equal ids have equal 64-bit hashes: no repeated hash means no duplicate (the usual case).
    hashes = np.sort(pd.util.hash_array(request_ids, categorize=False))
    if not (hashes[1:] == hashes[:-1]).any():
        return
    duplicated = (ids.duplicated(keep="first") & filled).to_numpy()
    if duplicated.any():
        first_row = {}
        for i, value in enumerate(request_ids):
            if value and value not in first_row:
                first_row[value] = int(v.table.row_numbers[i])
        reasons = [""] * v.n
        for i in np.flatnonzero(duplicated):
            reasons[i] = f"duplicate id: request_id already used in row {first_row[request_ids[i]]}"
        v.reject(duplicated, "request_id", reasons)


def import_usage(
    store: Store,
    table: CsvTable,
    mapping: ColumnMapping,
    catalog: Catalog,
    report: ImportReport,
    *,
    content_hash: str,
    progress: ProgressCallback,
) -> None:
    """Validate, price and store a usage table in one transaction; fills `report`."""
    progress("validating", 0, 1)
    frame, validator, notes = parse_usage(table, mapping)
    report.errors.extend(validator.errors)
    report.notes.extend(notes)
    progress("pricing", 0, 1)
    prepared = prepare_events(frame, catalog, source="csv", uid_prefix="csv")
    _summarise_cost(prepared, report)
    total = len(prepared)
    with store.transaction() as cur:
        import_id = begin_run(store, cur, "csv", KIND, content_hash)
        prepared["import_id"] = import_id
        inserted = skipped = 0
        for offset in range(0, total, WRITE_CHUNK):
            progress("writing", offset, total)
            result = store.write_events(prepared.iloc[offset : offset + WRITE_CHUNK], on_conflict="ignore", cur=cur)
            inserted += result.inserted
            skipped += result.skipped
        progress("writing", total, total)
        report.imported, report.skipped = inserted, skipped + table.blank_rows
        changed = inserted > 0
        if total:
            days = prepared["day"]
            rule = apply_usage_rule(store, catalog, cur=cur, first_day=str(days.min()), last_day=str(days.max()), import_id=import_id)
            if rule.removed:
                report.notes.append(f"{rule.removed:,} OpenAI API usage rows for the same days were set aside (the file is the attribution source)")
            changed = changed or rule.changed
        report.import_id = end_run(store, cur, import_id, report, source="csv", content_hash=content_hash, changed=changed)


def _summarise_cost(prepared: pd.DataFrame, report: ImportReport) -> None:
    # Python-int sum: a large file's total can exceed int64 pico-dollars.
    valid = prepared["cost_pico"].dropna().to_numpy(dtype=object)
    report.cost_pico = sum(map(int, valid))
    unpriced = (prepared["price_status"] == "unpriced").to_numpy()
    report.unpriced = int(unpriced.sum())
    if report.unpriced:
        report.unpriced_reasons.update(prepared.loc[unpriced, "price_note"].value_counts().to_dict())
