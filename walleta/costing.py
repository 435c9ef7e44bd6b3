"""Usage -> exact cost in integer pico-dollars, vectorised over a DataFrame.

Billing rules (from ../shared/reference/prices.md section 5):
- Parts of `input_tokens`: `cached_input_tokens` (cached rate), `cache_write_tokens` (the model's
  cache-write rate; 1.25x input for a family that has cache-write prices but not for this tier;
  the plain input rate for models without a cache-write fee), `input_audio_tokens` and
  `input_image_tokens` (audio / image token rates). The rest is uncached text input.
- Parts of `output_tokens`: `output_audio_tokens`, `output_image_tokens` (their own rates); the
  rest, reasoning tokens included, is text output.
- The tier that was billed: `service_tier` flex -> `token_flex` rows, priority/fast ->
  `token_priority` rows, anything else (default, auto, scale, empty) -> standard rows.
- Batch: the row's batch columns where stated, else 50% of standard; stacks with caching and
  long context; batch requests are not tiered.
- Long context: a request over the catalog threshold (272,000 input tokens) on a model that has
  long-context rows is billed entirely at those rates. For a row that aggregates several
  requests, the average input per request is compared with the threshold.
- Per-unit prices: images by size and quality when no image output tokens are reported, audio
  by the minute, characters per 1M, tool calls per call (tool pseudo-models).
- Derived rates (50%, 1.25x) are rounded half-even to the pico-dollar per token.

An event that cannot be priced completely gets `cost_pico = <NA>`, `price_status = "unpriced"`
and a `price_note` saying why. It is never priced at $0: a free model (moderation) is priced at
0 because the catalog says so, and that is `priced`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Callable

import numpy as np
import pandas as pd

from .catalog import Catalog

__all__ = ["price_events", "price_arrays", "event_cost", "Rates", "rates_for", "effective_tier", "PRICED", "UNPRICED"]

PRICED = "priced"
UNPRICED = "unpriced"
MISSING = -1

_TIER_UNIT = {"standard": "token", "flex": "token_flex", "priority": "token_priority"}
_TIER_ALIASES = {"flex": "flex", "priority": "priority", "fast": "priority"}


def effective_tier(service_tier: str | None) -> str:
    """The price tier a reported `service_tier` is billed at: standard, flex or priority."""
    return _TIER_ALIASES.get((service_tier or "").strip().lower(), "standard")


def _half(value: int) -> int:
    """value / 2 rounded half-even."""
    quotient, remainder = divmod(value, 2)
    return quotient + (1 if remainder and quotient % 2 else 0)


def _scale(value: int, numerator: int, denominator: int) -> int:
    """value * numerator / denominator rounded half-even (integers only)."""
    quotient, remainder = divmod(value * numerator, denominator)
    twice = 2 * remainder
    if twice > denominator or (twice == denominator and quotient % 2):
        quotient += 1
    return quotient


@dataclass(frozen=True)
class Rates:
    """Pico-dollar rates for one (model, day, tier, batch, long-context) case; -1 = no price."""

    text_in: int = MISSING
    text_cached: int = MISSING
    text_out: int = MISSING
    cache_write: int = MISSING
    audio_in: int = MISSING
    audio_out: int = MISSING
    image_in: int = MISSING
    image_out: int = MISSING
    per_minute: int = MISSING
    per_character: int = MISSING
    per_call: int = MISSING
    note: str = ""


def rates_for(catalog: Catalog, model: str, day: str, tier: str, batch: bool, long_context: bool) -> Rates:
    """The rates that apply to a resolved catalog model on `day` for one billing case."""
    suffix = "_long_context" if long_context else ""
    tier = "standard" if batch else tier
    token_unit = _TIER_UNIT[tier] + suffix
    token = catalog.price(model, token_unit, day)
    note = ""
    if token is None and catalog.units(model) & {"token", "token_long_context"}:
        note = f"no {tier}{' long-context' if long_context else ''} token price for {model}"
    text_in = token.input if token and token.input is not None else MISSING
    text_out = token.output if token and token.output is not None else MISSING
    text_cached = token.cached_input if token and token.cached_input is not None else text_in
    cache_write = _cache_write_rate(catalog, model, day, tier, suffix, text_in)
    audio = catalog.price(model, "audio_token", day)
    image = catalog.price(model, "image_token", day)
    audio_in = audio.input if audio and audio.input is not None else MISSING
    audio_out = audio.output if audio and audio.output is not None else MISSING
    image_in = image.input if image and image.input is not None else MISSING
    image_out = image.output if image and image.output is not None else MISSING
    if batch:
        text_in, text_out, text_cached = (
            token.batch_input if token and token.batch_input is not None else _half_or_missing(text_in),
            token.batch_output if token and token.batch_output is not None else _half_or_missing(text_out),
            _half_or_missing(text_cached),
        )
        cache_write, audio_in, audio_out, image_in, image_out = (
            _half_or_missing(v) for v in (cache_write, audio_in, audio_out, image_in, image_out)
        )
    return Rates(
        text_in=text_in,
        text_cached=text_cached,
        text_out=text_out,
        cache_write=cache_write,
        audio_in=audio_in,
        audio_out=audio_out,
        image_in=image_in,
        image_out=image_out,
        per_minute=_per_unit(catalog, model, "audio_minute", day),
        per_character=_per_unit(catalog, model, "1m_characters", day),
        per_call=_first_per_unit(catalog, model, ("tool_call", "container_session"), day),
        note=note,
    )


def _half_or_missing(value: int) -> int:
    return MISSING if value == MISSING else _half(value)


def _per_unit(catalog: Catalog, model: str, unit: str, day: str) -> int:
    row = catalog.price(model, unit, day)
    return row.per_unit if row and row.per_unit is not None else MISSING


def _first_per_unit(catalog: Catalog, model: str, units: tuple[str, ...], day: str) -> int:
    for unit in units:
        value = _per_unit(catalog, model, unit, day)
        if value != MISSING:
            return value
    return MISSING


def _cache_write_rate(catalog: Catalog, model: str, day: str, tier: str, suffix: str, text_in: int) -> int:
    tier_part = "" if tier == "standard" else f"_{tier}"
    explicit = _per_unit(catalog, model, f"1m_cache_write_tokens{tier_part}{suffix}", day)
    if explicit != MISSING:
        return explicit
    if text_in == MISSING:
        return MISSING
    has_family_fee = any(u.startswith("1m_cache_write_tokens") for u in catalog.units(model))
    return _scale(text_in, 5, 4) if has_family_fee else text_in


# ---------------------------------------------------------------------------------------------
# Vectorised pricing
# ---------------------------------------------------------------------------------------------

_INT_COLUMNS = (
    "input_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "output_tokens",
    "input_audio_tokens",
    "output_audio_tokens",
    "input_image_tokens",
    "output_image_tokens",
    "images",
    "characters",
    "tool_calls",
)
# int64 products are safe while quantity * rate stays below this (12 terms are summed).
_SAFE_PRODUCT = 2**63 // 16


def _column(frame: pd.DataFrame, name: str, default: object) -> pd.Series:
    if name in frame.columns:
        return frame[name]
    return pd.Series(np.full(len(frame), default, dtype=object if isinstance(default, str) else None), index=frame.index)


def _text_values(series: pd.Series) -> np.ndarray:
    values = series.to_numpy(dtype=object)
    if pd.api.types.infer_dtype(values, skipna=False) in ("string", "empty"):
        return values  # only str: nothing is missing
    missing = pd.isna(values)
    if missing.any():
        values = values.copy()
        values[missing] = ""
    return values


def _ints(frame: pd.DataFrame, name: str) -> np.ndarray:
    return _column(frame, name, 0).fillna(0).to_numpy(dtype=np.int64)


def _days(frame: pd.DataFrame) -> np.ndarray:
    if "day" in frame.columns:
        return frame["day"].to_numpy(dtype=object)
    stamps = pd.to_datetime(frame["ts_us"].to_numpy(dtype=np.int64), unit="us", utc=True)
    return stamps.strftime("%Y-%m-%d").to_numpy(dtype=object)


def price_events(frame: pd.DataFrame, catalog: Catalog) -> pd.DataFrame:
    """Price every row of a usage frame.

    Input columns: `model`, `day` (or `ts_us`), the token columns of `walleta.schema`, and
    optionally `images`, `image_size`, `image_quality`, `audio_seconds`, `characters`,
    `tool_calls`, `service_tier`, `batch` (missing ones count as 0 / default).
    Returns a frame on the same index with `cost_pico` (nullable Int64, or Python ints for
    amounts beyond int64), `price_status` ("priced"/"unpriced") and `price_note`.

    Speed: rates are looked up once per distinct billing case (model, price epoch, tier, batch,
    long context), where a price epoch is a run of days between two effective dates of the
    model's catalog rows, so a year of history costs a handful of lookups per model.
    """
    n = len(frame)
    if n == 0:
        return pd.DataFrame({"cost_pico": pd.array([], dtype="Int64"), "price_status": [], "price_note": []})
    total, unpriced, notes, overflow = price_arrays(frame, catalog)
    status = np.where(unpriced, UNPRICED, PRICED)
    if overflow:
        cost = pd.Series([None if u else int(v) for v, u in zip(total, unpriced)], index=frame.index, dtype=object)
    else:
        cost = pd.Series(pd.arrays.IntegerArray(np.where(unpriced, 0, total).astype(np.int64), unpriced.copy()), index=frame.index)
    return pd.DataFrame({"cost_pico": cost, "price_status": status, "price_note": notes}, index=frame.index)


def price_arrays(
    frame: pd.DataFrame,
    catalog: Catalog,
    *,
    days: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    """The arrays behind `price_events`: (cost, unpriced mask, notes, overflow).

    `cost` is int64 (object of Python ints when `overflow`), meaningful where not unpriced;
    `notes` is an object array ('' when priced). `days`, when given, is (codes, distinct day
    labels) for the rows, which saves factorising a column of day strings.
    """
    n = len(frame)
    q = {name: _ints(frame, name) for name in _INT_COLUMNS}
    seconds = _column(frame, "audio_seconds", 0.0).fillna(0).to_numpy(dtype=np.float64)
    q["audio_ms"] = np.rint(seconds * 1000).astype(np.int64)
    raw_models = _text_values(_column(frame, "model", ""))
    model_codes, model_names = pd.factorize(raw_models)
    resolved_names = np.array([catalog.resolve(m) or "" for m in model_names], dtype=object)
    known_model = resolved_names != ""
    known = known_model[model_codes]
    lc_capable = np.array([bool(r) and catalog.has_long_context(r) for r in resolved_names], dtype=bool)[model_codes]
    tier_codes, tier_names = pd.factorize(_text_values(_column(frame, "service_tier", "")))
    tier_names = np.array([effective_tier(t) for t in tier_names], dtype=object)
    batch = _column(frame, "batch", 0).fillna(0).astype(bool).to_numpy()
    # Long context is a property of a request: an aggregated row (requests > 1) qualifies when
    # its average request does.
    requests = np.maximum(_ints(frame, "requests") if "requests" in frame.columns else np.ones(n, dtype=np.int64), 1)
    long_context = lc_capable & (q["input_tokens"] > catalog.long_context_threshold * requests)
    if days is None:
        day_values = _days(frame)
        day_codes, day_names = pd.factorize(day_values)
    else:
        day_codes, day_names = days
        day_values = None
    epochs = _price_epochs(catalog, resolved_names, day_names)
    epoch_codes = epochs[model_codes, day_codes]
    # One integer per billing case; the rates are looked up once per distinct case.
    n_epochs = int(epochs.max(initial=0)) + 1
    case = ((((model_codes.astype(np.int64) * n_epochs + epoch_codes) * len(tier_names) + tier_codes) * 2 + batch) * 2 + long_context)
    codes, first_rows = _first_occurrences(case)
    resolved_first = resolved_names[model_codes[first_rows]]
    table = [
        rates_for(catalog, model, day_names[day_codes[i]], tier_names[tier_codes[i]], bool(batch[i]), bool(long_context[i])) if model else Rates()
        for i, model in zip(first_rows.tolist(), resolved_first)
    ]
    rate = {f.name: np.array([getattr(r, f.name) for r in table], dtype=np.int64)[codes] for f in fields(Rates) if f.name != "note"}
    case_notes = np.array([r.note for r in table], dtype=object)

    text_in = q["input_tokens"] - q["cached_input_tokens"] - q["cache_write_tokens"] - q["input_audio_tokens"] - q["input_image_tokens"]
    text_out = q["output_tokens"] - q["output_audio_tokens"] - q["output_image_tokens"]
    inconsistent = (text_in < 0) | (text_out < 0)
    for values in q.values():
        inconsistent |= values < 0
    per_image, image_missing = _per_image_costs(frame, catalog, resolved_names, model_codes, epoch_codes, q, day_codes, day_names)

    terms: list[tuple[np.ndarray, np.ndarray, str]] = [
        (text_in, rate["text_in"], "input"),
        (q["cached_input_tokens"], rate["text_cached"], "cached input"),
        (q["cache_write_tokens"], rate["cache_write"], "cache write"),
        (text_out, rate["text_out"], "output"),
        (q["input_audio_tokens"], rate["audio_in"], "audio input"),
        (q["output_audio_tokens"], rate["audio_out"], "audio output"),
        (q["input_image_tokens"], rate["image_in"], "image input"),
        (q["output_image_tokens"], rate["image_out"], "image output"),
    ]
    has_tokens = (q["input_tokens"] + q["output_tokens"]) > 0
    # Per-unit quantities are billable only where the model has that unit; otherwise they are
    # informational (a transcription also reported in tokens) unless nothing else prices the call.
    unit_terms = [
        (q["characters"], rate["per_character"], "characters"),
        (q["tool_calls"], rate["per_call"], "tool calls"),
    ]

    total, overflow = _sum_products(terms + unit_terms)
    minutes_cost = _rounded_div(q["audio_ms"] * 1, rate["per_minute"], 60_000)
    total = total + np.where(rate["per_minute"] >= 0, minutes_cost, 0) + per_image

    # The first missing price, as a code into `reasons` (0 = none).
    reasons = [""]
    reason = np.zeros(n, dtype=np.int16)
    for quantity, rates, label in terms:
        reasons.append(f"no {label} price")
        reason[(reason == 0) & (quantity > 0) & (rates == MISSING)] = len(reasons) - 1
    for quantity, rates, label in [(q["characters"], rate["per_character"], "per-character"), (q["audio_ms"], rate["per_minute"], "per-minute")]:
        reasons.append(f"no {label} price")
        reason[(reason == 0) & (quantity > 0) & (rates == MISSING) & ~has_tokens] = len(reasons) - 1
    reasons.append("no per-image price for this size and quality")
    reason[(reason == 0) & image_missing] = len(reasons) - 1

    notes, unpriced = _compose_notes(model_names, model_codes, resolved_names, known, inconsistent, reason, reasons, codes, case_notes)
    return total, unpriced, notes, overflow


def _first_occurrences(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(code of each value, first row of each code): codes number distinct values by first appearance."""
    codes, _uniques = pd.factorize(values)
    if len(codes) == 0:
        return codes.astype(np.int64), np.zeros(0, dtype=np.int64)
    # Codes are assigned in order of first appearance, so a row is a first occurrence exactly
    # when its code exceeds every code before it.
    running = np.maximum.accumulate(codes)
    first = np.flatnonzero(np.concatenate(([True], codes[1:] > running[:-1])))
    return codes.astype(np.int64), first


def _price_epochs(catalog: Catalog, resolved_names: np.ndarray, day_names: np.ndarray) -> np.ndarray:
    """epochs[model, day]: days with the same number have the same prices for that model.

    A model's epochs are separated by the effective dates of any of its catalog rows.
    """
    bounds: dict[str, list[str]] = {}
    wanted = set(resolved_names.tolist())
    for row in catalog.rows:
        if row.model in wanted:
            bounds.setdefault(row.model, []).append(row.effective_from)
    day_text = np.array([str(d) for d in day_names], dtype=object)
    epochs = np.zeros((len(resolved_names), len(day_text)), dtype=np.int64)
    for index, model in enumerate(resolved_names.tolist()):
        dates = sorted(set(bounds.get(model, ())))
        if len(dates) > 1:
            epochs[index] = np.searchsorted(np.array(dates, dtype=object), day_text, side="right")
    return epochs


def _sum_products(terms: list[tuple[np.ndarray, np.ndarray, str]]) -> tuple[np.ndarray, bool]:
    """Sum quantity * rate over terms (missing rates count 0); falls back to Python ints on overflow risk."""
    overflow = any(
        int(quantity.max(initial=0)) * int(rates.max(initial=0)) > _SAFE_PRODUCT for quantity, rates, _ in terms
    )
    if overflow:
        total = np.zeros(len(terms[0][0]), dtype=object)
        for quantity, rates, _ in terms:
            total = total + quantity.astype(object) * np.where(rates >= 0, rates, 0).astype(object)
        return total, True
    total = np.zeros(len(terms[0][0]), dtype=np.int64)
    for quantity, rates, _ in terms:
        total += quantity * np.where(rates >= 0, rates, 0)
    return total, False


def _rounded_div(quantity: np.ndarray, rates: np.ndarray, denominator: int) -> np.ndarray:
    """quantity * rate / denominator, rounded half-even per row (rates < 0 give 0)."""
    numerator = quantity * np.where(rates >= 0, rates, 0)
    quotient, remainder = np.divmod(numerator, denominator)
    round_up = (2 * remainder > denominator) | ((2 * remainder == denominator) & (quotient % 2 == 1))
    return quotient + round_up


def _per_image_costs(
    frame: pd.DataFrame,
    catalog: Catalog,
    resolved_names: np.ndarray,
    model_codes: np.ndarray,
    epoch_codes: np.ndarray,
    q: dict[str, np.ndarray],
    day_codes: np.ndarray,
    day_names: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-image cost for rows with images but no image output tokens; and rows lacking a price.

    The unit price is looked up once per distinct (model, price epoch, size, quality).
    """
    n = len(frame)
    cost = np.zeros(n, dtype=np.int64)
    missing = np.zeros(n, dtype=bool)
    rows = np.flatnonzero((q["images"] > 0) & (q["output_image_tokens"] == 0) & (resolved_names != "")[model_codes])
    if rows.size == 0:
        return cost, missing
    sizes = _column(frame, "image_size", "").iloc[rows].fillna("").astype(str).str.lower().to_numpy(dtype=object)
    qualities = _column(frame, "image_quality", "").iloc[rows].fillna("").astype(str).str.lower().to_numpy(dtype=object)
    size_codes, size_names = pd.factorize(sizes)
    quality_codes, quality_names = pd.factorize(qualities)
    key = ((model_codes[rows].astype(np.int64) * (int(epoch_codes.max(initial=0)) + 1) + epoch_codes[rows]) * len(size_names) + size_codes) * len(quality_names) + quality_codes
    codes, first = _first_occurrences(key)
    lookup: Callable[[str, str, str, str], int] = _image_rate_lookup(catalog)
    prices = np.array(
        [
            lookup(resolved_names[model_codes[rows[i]]], day_names[day_codes[rows[i]]], size_names[size_codes[i]], quality_names[quality_codes[i]])
            for i in first.tolist()
        ],
        dtype=np.int64,
    )[codes]
    lacking = prices == MISSING
    missing[rows] = lacking
    cost[rows] = np.where(lacking, 0, prices * q["images"][rows])
    return cost, missing


def _image_rate_lookup(catalog: Catalog) -> Callable[[str, str, str, str], int]:
    cache: dict[tuple[str, str, str, str], int] = {}

    def lookup(model: str, day: str, size: str, quality: str) -> int:
        key = (model, day, size, quality)
        if key not in cache:
            quality = quality or ("standard" if model.startswith("dall-e") else "medium")
            cache[key] = _per_unit(catalog, model, f"image_{size}_{quality}", day)
        return cache[key]

    return lookup


def _compose_notes(
    model_names: np.ndarray,
    model_codes: np.ndarray,
    resolved_names: np.ndarray,
    known: np.ndarray,
    inconsistent: np.ndarray,
    reason: np.ndarray,
    reasons: list[str],
    case_codes: np.ndarray,
    case_notes: np.ndarray,
) -> np.ndarray:
    """(note of each row, '' when priced; unpriced mask); each text built once per combination."""
    notes = np.empty(len(model_codes), dtype=object)
    notes.fill("")  # one shared "" (np.full would build a new str per element)
    unknown = ~known
    if unknown.any():
        per_model = np.array([f"unknown model '{m}'" for m in model_names], dtype=object)
        notes[unknown] = per_model[model_codes[unknown]]
    bad = known & inconsistent
    notes[bad] = "token classes exceed their totals (e.g. cached > input) or are negative"
    gap = known & ~inconsistent & (reason != 0)
    if gap.any():
        rows = np.flatnonzero(gap)
        combo = (case_codes[rows] * len(reasons) + reason[rows]) * len(resolved_names) + model_codes[rows]
        codes, first = _first_occurrences(combo)
        texts = []
        for i in first.tolist():
            row = rows[i]
            detail = case_notes[case_codes[row]] or reasons[reason[row]]
            model = resolved_names[model_codes[row]]
            texts.append(f"{detail} ({model})" if "(" not in detail and model not in detail else detail)
        notes[rows] = np.array(texts, dtype=object)[codes]
    return notes, unknown | bad | gap


def event_cost(catalog: Catalog, **event: object) -> int | None:
    """Price one event given as keyword columns; returns pico-dollars or None if unpriced."""
    frame = pd.DataFrame([event])
    result = price_events(frame, catalog)
    value = result["cost_pico"].iloc[0]
    return None if pd.isna(value) else int(value)
