"""Builders for test data: valid usage-event frames with every column of EVENT_COLUMNS.

`make_events(n, seed=...)` is deterministic (numpy Generator with the seed) and does not go
through `walleta.events.prepare_events`, so storage tests do not depend on pricing code.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from walleta.schema import EVENT_COLUMNS

__all__ = ["make_events", "BASE_TS_US", "CUSTOMERS", "FEATURES", "MODELS", "PROJECTS", "write_batches"]

BASE_TS_US = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z
SPAN_US = 70 * 86_400_000_000  # events spread over 70 days: three calendar months
CUSTOMERS = ("cus_a", "cus_b", "cus_c", "cus_d", "(unattributed)")
FEATURES = ("chat", "search", "summarize", "(none)")
MODELS = ("gpt-4o", "gpt-4o-mini", "o3", "gpt-image-1")
PROJECTS = ("proj_1", "proj_2", "")
TIERS = ("default", "flex", "priority")
# Nullable integer columns: object dtype holding Python ints and None, as prepare_events makes them.
_NULLABLE = ("latency_ms", "provider_cost_pico", "cost_pico", "import_id")


def _calendar(ts_us: np.ndarray) -> tuple[list[str], list[str]]:
    days = np.datetime_as_string((ts_us // 86_400_000_000).astype("datetime64[D]"), unit="D")
    day_list = days.tolist()
    return day_list, [d[:7] for d in day_list]


def make_events(n: int, *, seed: int = 0, uid_prefix: str | None = None, **overrides: Any) -> pd.DataFrame:
    """`n` valid usage events with every column of EVENT_COLUMNS, in EVENT_COLUMNS order.

    uids are `<prefix>-<i>` (prefix defaults to `s<seed>`), so frames with different seeds never
    collide. About one row in seven is unpriced (cost_pico None, price_status 'unpriced') and one
    in twenty is an error. Integer columns are int64; cost_pico/provider_cost_pico/latency_ms/
    import_id are object columns of Python ints and None. `overrides` replace whole columns (a
    scalar or a sequence of length n); `day`/`month` are recomputed when `ts_us` is overridden
    and they are not.
    """
    rng = np.random.default_rng(seed)
    prefix = uid_prefix if uid_prefix is not None else f"s{seed}"
    ts_us = BASE_TS_US + rng.integers(0, SPAN_US, size=n, dtype=np.int64)

    input_tokens = rng.integers(0, 20_000, size=n, dtype=np.int64)
    output_tokens = rng.integers(0, 4_000, size=n, dtype=np.int64)
    # Parts of input: cached + cache_write + audio + image never exceed input_tokens.
    cached = (input_tokens * rng.uniform(0, 0.5, size=n)).astype(np.int64)
    cache_write = ((input_tokens - cached) * rng.uniform(0, 0.2, size=n)).astype(np.int64)
    left = input_tokens - cached - cache_write
    input_audio = np.where(rng.random(n) < 0.1, (left * rng.uniform(0, 0.5, size=n)).astype(np.int64), 0)
    input_image = np.where(rng.random(n) < 0.1, ((left - input_audio) * rng.uniform(0, 0.5, size=n)).astype(np.int64), 0)
    # Parts of output: reasoning + audio + image never exceed output_tokens.
    reasoning = (output_tokens * rng.uniform(0, 0.6, size=n)).astype(np.int64)
    rest = output_tokens - reasoning
    output_audio = np.where(rng.random(n) < 0.1, (rest * rng.uniform(0, 0.5, size=n)).astype(np.int64), 0)
    output_image = np.where(rng.random(n) < 0.05, ((rest - output_audio) * rng.uniform(0, 0.5, size=n)).astype(np.int64), 0)

    unpriced = rng.random(n) < 1 / 7
    cost = rng.integers(1, 5_000_000_000, size=n, dtype=np.int64)
    error = rng.random(n) < 0.05
    day, month = _calendar(ts_us)

    columns: dict[str, Any] = {
        "uid": [f"{prefix}-{i}" for i in range(n)],
        "ts_us": ts_us,
        "day": day,
        "month": month,
        "customer_id": rng.choice(np.array(CUSTOMERS, dtype=object), size=n),
        "feature": rng.choice(np.array(FEATURES, dtype=object), size=n),
        "model": rng.choice(np.array(MODELS, dtype=object), size=n),
        "provider": "openai",
        "input_tokens": input_tokens,
        "cached_input_tokens": cached,
        "cache_write_tokens": cache_write,
        "output_tokens": output_tokens,
        "reasoning_tokens": reasoning,
        "input_audio_tokens": input_audio,
        "output_audio_tokens": output_audio,
        "input_image_tokens": input_image,
        "output_image_tokens": output_image,
        "images": np.where(rng.random(n) < 0.05, rng.integers(1, 4, size=n, dtype=np.int64), 0),
        "image_size": "",
        "image_quality": "",
        "audio_seconds": np.round(np.where(input_audio > 0, rng.uniform(0, 60, size=n), 0.0), 3),
        "characters": np.zeros(n, dtype=np.int64),
        "tool_calls": rng.integers(0, 3, size=n, dtype=np.int64),
        "requests": rng.integers(1, 4, size=n, dtype=np.int64),
        "service_tier": rng.choice(np.array(TIERS, dtype=object), size=n),
        "batch": rng.integers(0, 2, size=n, dtype=np.int64),
        "project_id": rng.choice(np.array(PROJECTS, dtype=object), size=n),
        "api_key_id": "key_test",
        "user_id": "",
        "request_id": [f"req_{prefix}_{i}" for i in range(n)],
        "latency_ms": rng.integers(20, 30_000, size=n, dtype=np.int64).tolist(),
        "status": np.where(error, "error", "ok").astype(object),
        "estimated": 0,
        "provider_cost_pico": [None] * n,
        "cost_pico": [None if u else int(c) for u, c in zip(unpriced.tolist(), cost.tolist())],
        "price_status": np.where(unpriced, "unpriced", "priced").astype(object),
        "price_note": np.where(unpriced, "model not in catalog", "").astype(object),
        "source": "test",
        "import_id": [None] * n,
    }
    if "ts_us" in overrides:
        stamps = np.broadcast_to(np.asarray(overrides["ts_us"], dtype=np.int64), (n,))
        auto_day, auto_month = _calendar(stamps)
        overrides.setdefault("day", auto_day)
        overrides.setdefault("month", auto_month)
    unknown = set(overrides) - set(EVENT_COLUMNS)
    if unknown:
        raise ValueError(f"not event columns: {sorted(unknown)}")
    columns.update(overrides)

    frame = pd.DataFrame(index=pd.RangeIndex(n))
    for name in EVENT_COLUMNS:
        value = columns[name]
        if isinstance(value, bool) or isinstance(value, (int, np.integer)) and name not in _NULLABLE:
            value = np.full(n, int(value), dtype=np.int64)
        elif isinstance(value, float):
            value = np.full(n, value, dtype=np.float64)
        elif isinstance(value, (str, int)) or value is None:
            value = [value] * n
        if isinstance(value, np.ndarray) and value.dtype.kind in "iuf":
            frame[name] = pd.Series(value, dtype=value.dtype)
        else:
            values = np.empty(n, dtype=object)
            values[:] = list(value)
            frame[name] = pd.Series(values, dtype=object)
    return frame


def write_batches(url: str, worker: int, batches: int, batch_size: int, barrier: Any = None) -> int:
    """Open `url` and write `batches` frames of `batch_size` events with uids unique to `worker`.

    Module-level so a multiprocessing 'spawn' child can import it cheaply. Waits on `barrier`
    (if given) before the first write so all workers write at the same time. Returns rows inserted.
    """
    from walleta.store import open_store

    store = open_store(url, create=False)
    events = make_events(batches * batch_size, seed=worker, uid_prefix=f"w{worker}")  # one call: cheaper
    frames = [events.iloc[b * batch_size : (b + 1) * batch_size] for b in range(batches)]
    if barrier is not None:
        barrier.wait(timeout=120)
    inserted = 0
    try:
        for frame in frames:
            inserted += store.write_events(frame).inserted
    finally:
        store.close()
    return inserted
