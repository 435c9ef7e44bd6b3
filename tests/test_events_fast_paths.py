"""The optimised event preparation gives exactly what the straightforward version gave.

`reference_content_uids` is the original, unoptimised algorithm (per-column hashes, one
splitmix64 pass per column over all rows, f-string formatting, groupby occurrence counts),
kept here as the specification the fast path must match bit for bit: uids are idempotency keys
already stored in databases, so they may never change.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from walleta.catalog import load_catalog
from walleta.costing import price_arrays, price_events
from walleta.events import CONTENT_COLUMNS, content_uids, prepare_events


def _reference_hash(values: np.ndarray) -> np.ndarray:
    if values.dtype == object:
        codes, uniques = pd.factorize(values, use_na_sentinel=False)
        hashed = pd.util.hash_array(np.asarray([str(u) for u in uniques], dtype=object), categorize=False)
        return hashed[codes]
    if values.dtype.kind == "f":
        return _reference_hash(np.asarray([repr(float(v)) for v in values], dtype=object))
    return pd.util.hash_array(values.astype(np.int64))


def _reference_mix(h: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        h = (h ^ (h >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        h = (h ^ (h >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return h ^ (h >> np.uint64(31))


def reference_content_uids(frame: pd.DataFrame, prefix: str) -> list[str]:
    n = len(frame)
    first = np.zeros(n, dtype=np.uint64)
    second = np.full(n, np.uint64(0x9E3779B97F4A7C15), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for position, name in enumerate(CONTENT_COLUMNS, start=1):
            h = _reference_hash(frame[name].to_numpy())
            first = _reference_mix(first ^ (h + np.uint64(position)))
            second = _reference_mix(second + h * np.uint64(2 * position + 1))
    pairs = np.empty((n, 2), dtype=">u8")
    pairs[:, 0] = first
    pairs[:, 1] = second
    hexed = pairs.tobytes().hex()
    uids = [f"{prefix}:{hexed[i:i + 32]}" for i in range(0, 32 * n, 32)]
    if n:
        occurrence = pd.DataFrame({"a": first, "b": second}).groupby(["a", "b"], sort=False).cumcount().to_numpy()
        for row in np.flatnonzero(occurrence):
            uids[row] = f"{uids[row]}-{occurrence[row]}"
    return uids


def _varied_frame(n: int, seed: int = 11) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "ts_us": (1_760_000_000_000_000 + rng.integers(0, 86_400_000_000 * 40, n)).astype(np.int64),
        "customer_id": np.array(["acme", "globex", "初", None, ""], dtype=object)[rng.integers(0, 5, n)],
        "feature": np.full(n, "chat", dtype=object),  # constant column
        "model": np.array(["gpt-5-mini", "gpt-4.1", "mystery", "whisper-1", "tts-1", "gpt-image-1"], dtype=object)[rng.integers(0, 6, n)],
        "input_tokens": rng.integers(0, 300_000, n),
        "output_tokens": rng.integers(0, 3_000, n),
        "cached_input_tokens": rng.integers(0, 100, n),
        "images": rng.integers(0, 2, n),
        "image_size": np.array(["1024x1024", "1536x1024", ""], dtype=object)[rng.integers(0, 3, n)],
        "audio_seconds": np.where(rng.random(n) < 0.5, 0.0, np.round(rng.random(n) * 90, 3)),
        "characters": rng.integers(0, 2, n) * 500,
        "requests": rng.integers(1, 5, n),
        "service_tier": np.array(["default", "flex", "priority", None], dtype=object)[rng.integers(0, 4, n)],
        "batch": rng.integers(0, 2, n),
        "project_id": np.full(n, "", dtype=object),
    })
    return pd.concat([frame, frame.iloc[: n // 10]], ignore_index=True)  # identical rows repeat


@pytest.mark.parametrize("prefix", ["csv", "démo"])
def test_content_uids_match_the_reference_algorithm(prefix: str) -> None:
    catalog = load_catalog()
    prepared = prepare_events(_varied_frame(3_000), catalog, source="x")
    assert content_uids(prepared, prefix).tolist() == reference_content_uids(prepared, prefix)
    block_edge = pd.concat([prepared] * 12, ignore_index=True)  # crosses the 32,768-row mixing blocks
    assert content_uids(block_edge, prefix).tolist() == reference_content_uids(block_edge, prefix)


def test_prepare_events_uids_are_unique_and_repeat_identically() -> None:
    catalog = load_catalog()
    frame = _varied_frame(2_000)
    first = prepare_events(frame, catalog, source="csv")
    again = prepare_events(frame.sample(frac=1.0, random_state=3), catalog, source="csv")
    assert first["uid"].is_unique and len(first) == len(frame)
    assert sorted(first["uid"]) == sorted(again["uid"])  # row order does not change uids
    assert any(u.endswith("-1") for u in first["uid"])  # repeated rows stay distinct


def test_price_arrays_with_precomputed_days_equals_price_events() -> None:
    catalog = load_catalog()
    prepared = prepare_events(_varied_frame(2_000), catalog, source="x")
    reference = price_events(prepared.drop(columns=["cost_pico", "price_status", "price_note"]), catalog)
    codes, labels = pd.factorize(prepared["day"].to_numpy(dtype=object))
    total, unpriced, notes, overflow = price_arrays(prepared, catalog, days=(codes, labels))
    assert not overflow
    assert unpriced.tolist() == reference["price_status"].eq("unpriced").tolist()
    assert notes.tolist() == reference["price_note"].tolist()
    priced = ~unpriced
    assert total[priced].tolist() == reference["cost_pico"][priced].astype("int64").tolist()
    assert prepared["cost_pico"].astype(object).where(prepared["cost_pico"].notna(), None).tolist() == reference["cost_pico"].astype(object).where(reference["cost_pico"].notna(), None).tolist()
