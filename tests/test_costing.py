"""Cost engine tests: every expected amount is worked out by hand from data/prices.csv.

Expected values are written as Decimal arithmetic on the CSV prices (USD per 1M tokens, or per
unit) and converted to pico-dollars with `usd_to_pico`; none is produced by the code under test.
The billing rules are those of shared/reference/prices.md section 5.
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal as D

import numpy as np
import pandas as pd
import pytest

from walleta.catalog import OVERRIDE_ENV, PRICE_COLUMNS, load_catalog
from walleta.costing import event_cost, price_events
from walleta.money import usd_to_pico

M = 10**6  # prices are per 1M tokens / characters


@pytest.fixture(scope="module")
def catalog():
    """The bundled catalog, with no local override file in play."""
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv(OVERRIDE_ENV, raising=False)
        cat = load_catalog()
    assert cat.override_path is None, "a local override file would change the bundled prices"
    return cat


def _price_one(catalog, event):
    """Price one event both ways (single-event helper and the vectorised frame path)."""
    single = event_cost(catalog, **event)
    result = price_events(pd.DataFrame([event]), catalog)
    return single, result.iloc[0]


# ---------------------------------------------------------------------------------------------
# Priced cases: (event columns, expected pico-dollars)
# ---------------------------------------------------------------------------------------------

PRICED_CASES = [
    # --- plain text ------------------------------------------------------------------------
    pytest.param(
        dict(model="gpt-4o", day="2025-01-15", input_tokens=1000, output_tokens=500),
        # gpt-4o token: input 2.5, output 10
        usd_to_pico(D(1000) * D("2.5") / M + D(500) * D("10") / M),
        id="plain-gpt-4o",
    ),
    pytest.param(
        dict(model="gpt-4.1-nano", day="2025-05-01", input_tokens=123_457, output_tokens=9_999),
        # gpt-4.1-nano token: input 0.1, output 0.4
        usd_to_pico(D(123_457) * D("0.1") / M + D(9_999) * D("0.4") / M),
        id="plain-gpt-4.1-nano-odd-counts",
    ),
    # --- cached input is a subset of input --------------------------------------------------
    pytest.param(
        dict(model="gpt-4o", day="2025-01-15", input_tokens=10_000, cached_input_tokens=4_000, output_tokens=200),
        # (10000-4000) x 2.5 + 4000 x 1.25 + 200 x 10
        usd_to_pico((D(6_000) * D("2.5") + D(4_000) * D("1.25") + D(200) * D("10")) / M),
        id="cached-gpt-4o",
    ),
    pytest.param(
        dict(model="gpt-5", day="2025-09-01", input_tokens=50_000, cached_input_tokens=50_000, output_tokens=0),
        # all input cached: 50000 x 0.125
        usd_to_pico(D(50_000) * D("0.125") / M),
        id="all-cached-gpt-5",
    ),
    # --- reasoning tokens are part of output, not billed again ------------------------------
    pytest.param(
        dict(model="o3", day="2025-07-01", input_tokens=2_000, output_tokens=3_000, reasoning_tokens=2_500),
        # o3 (2025-06-10 row): 2000 x 2 + 3000 x 8 ; the 2500 reasoning tokens are inside the 3000
        usd_to_pico((D(2_000) * D("2") + D(3_000) * D("8")) / M),
        id="reasoning-o3-not-double-counted",
    ),
    # --- batch -------------------------------------------------------------------------------
    pytest.param(
        dict(model="gpt-4o", day="2025-01-15", input_tokens=10_000, cached_input_tokens=2_000, output_tokens=1_000, batch=True),
        # CSV batch columns 1.25 / 5; cached batch = 50% of 1.25 = 0.625 (batch stacks with caching)
        usd_to_pico((D(8_000) * D("1.25") + D(2_000) * D("0.625") + D(1_000) * D("5")) / M),
        id="batch-gpt-4o-csv-columns",
    ),
    pytest.param(
        dict(model="text-embedding-3-small", day="2025-01-15", input_tokens=1_000_000, batch=True),
        # batch_input_per_1m 0.01
        usd_to_pico(D(1_000_000) * D("0.01") / M),
        id="batch-embedding-3-small",
    ),
    pytest.param(
        dict(model="gpt-4-turbo", day="2025-01-15", input_tokens=1_000, output_tokens=1_000, batch=True),
        # gpt-4-turbo has no batch columns: 50% of 10 / 30 = 5 / 15
        usd_to_pico((D(1_000) * D("5") + D(1_000) * D("15")) / M),
        id="batch-gpt-4-turbo-50pct-rule",
    ),
    pytest.param(
        dict(model="o3", day="2025-06-01", input_tokens=1_000, cached_input_tokens=400, output_tokens=1_000, batch=True),
        # the pre-2025-06-10 o3 row (10 / 2.5 / 40) has no batch columns: 5 / 1.25 / 20
        usd_to_pico((D(600) * D("5") + D(400) * D("1.25") + D(1_000) * D("20")) / M),
        id="batch-o3-old-row-50pct-rule",
    ),
    pytest.param(
        dict(model="gpt-5.4", day="2026-04-01", input_tokens=300_000, output_tokens=10_000, batch=True),
        # batch stacks with long context: 50% of token_long_context 5 / 22.5 = 2.5 / 11.25
        usd_to_pico((D(300_000) * D("2.5") + D(10_000) * D("11.25")) / M),
        id="batch-long-context-gpt-5.4",
    ),
    # --- flex --------------------------------------------------------------------------------
    pytest.param(
        dict(model="gpt-5", day="2025-09-01", input_tokens=10_000, cached_input_tokens=5_000, output_tokens=1_000, service_tier="flex"),
        # gpt-5 token_flex: 0.625 / 0.0625 / 5
        usd_to_pico((D(5_000) * D("0.625") + D(5_000) * D("0.0625") + D(1_000) * D("5")) / M),
        id="flex-gpt-5",
    ),
    pytest.param(
        dict(model="gpt-5.4", day="2026-04-01", input_tokens=10_000, cached_input_tokens=10_000, output_tokens=100, service_tier="flex"),
        # gpt-5.4 token_flex cached is 0.13 (not 50% of 0.25): 10000 x 0.13 + 100 x 7.5
        usd_to_pico((D(10_000) * D("0.13") + D(100) * D("7.5")) / M),
        id="flex-gpt-5.4-cached-0.13",
    ),
    # --- priority / fast ---------------------------------------------------------------------
    pytest.param(
        dict(model="gpt-4o", day="2025-01-15", input_tokens=1_000, output_tokens=1_000, service_tier="priority"),
        # gpt-4o token_priority: 4.25 / 17
        usd_to_pico((D(1_000) * D("4.25") + D(1_000) * D("17")) / M),
        id="priority-gpt-4o",
    ),
    pytest.param(
        dict(model="gpt-4o-mini", day="2025-01-15", input_tokens=1_000, cached_input_tokens=400, output_tokens=100, service_tier="priority"),
        # gpt-4o-mini token_priority: 0.25 / 0.125 / 1
        usd_to_pico((D(600) * D("0.25") + D(400) * D("0.125") + D(100) * D("1")) / M),
        id="priority-gpt-4o-mini-cached",
    ),
    pytest.param(
        dict(model="gpt-5.4", day="2026-04-01", input_tokens=1_000, output_tokens=100, service_tier="fast"),
        # "fast" is the priority tier: gpt-5.4 token_priority 5 / 30
        usd_to_pico((D(1_000) * D("5") + D(100) * D("30")) / M),
        id="fast-gpt-5.4",
    ),
    pytest.param(
        dict(model="gpt-5.5", day="2026-05-01", input_tokens=2_000, output_tokens=1_000, service_tier="Priority"),
        # gpt-5.5 token_priority (CSV majority 2.5x): 12.5 / 75
        usd_to_pico((D(2_000) * D("12.5") + D(1_000) * D("75")) / M),
        id="priority-gpt-5.5-mixed-case",
    ),
    # --- auto / default / scale / empty -> standard -------------------------------------------
    *[
        pytest.param(
            dict(model="gpt-4o", day="2025-01-15", input_tokens=1_000, output_tokens=500, service_tier=tier),
            usd_to_pico((D(1_000) * D("2.5") + D(500) * D("10")) / M),
            id=f"tier-{tier or 'empty'}-is-standard",
        )
        for tier in ("auto", "default", "scale", "")
    ],
    # --- long context (> 272,000 input tokens) -----------------------------------------------
    pytest.param(
        dict(model="gpt-5.4", day="2026-04-01", input_tokens=300_000, cached_input_tokens=100_000, output_tokens=10_000),
        # whole request at token_long_context 5 / 0.5 / 22.5
        usd_to_pico((D(200_000) * D("5") + D(100_000) * D("0.5") + D(10_000) * D("22.5")) / M),
        id="long-context-gpt-5.4",
    ),
    pytest.param(
        dict(model="gpt-5.4", day="2026-04-01", input_tokens=272_000, output_tokens=1_000),
        # exactly 272,000 is NOT long context: standard 2.5 / 15
        usd_to_pico((D(272_000) * D("2.5") + D(1_000) * D("15")) / M),
        id="exactly-272000-is-standard-gpt-5.4",
    ),
    pytest.param(
        dict(model="gpt-5.4", day="2026-04-01", input_tokens=272_001, output_tokens=1_000),
        # 272,001 is long context: 5 / 22.5
        usd_to_pico((D(272_001) * D("5") + D(1_000) * D("22.5")) / M),
        id="272001-is-long-context-gpt-5.4",
    ),
    pytest.param(
        dict(model="gpt-5.4", day="2026-04-01", input_tokens=280_000, cached_input_tokens=279_000, output_tokens=0),
        # the threshold counts cached tokens too: 1000 x 5 + 279000 x 0.5
        usd_to_pico((D(1_000) * D("5") + D(279_000) * D("0.5")) / M),
        id="long-context-threshold-counts-cached",
    ),
    pytest.param(
        dict(model="gpt-5.6-sol", day="2026-09-01", input_tokens=400_000, cached_input_tokens=100_000,
             cache_write_tokens=50_000, output_tokens=20_000),
        # promo token_long_context 8 / 0.8 / 30, 1m_cache_write_tokens_long_context 10 (2026-08-21 rows)
        usd_to_pico((D(250_000) * D("8") + D(100_000) * D("0.8") + D(50_000) * D("10") + D(20_000) * D("30")) / M),
        id="long-context-gpt-5.6-sol-with-cache-write",
    ),
    pytest.param(
        dict(model="gpt-5.6-sol", day="2026-09-01", input_tokens=300_000, output_tokens=1_000, service_tier="priority"),
        # token_priority_long_context has only the 2026-07-09 row (20 / 2 / 90), see prices.md section 6
        usd_to_pico((D(300_000) * D("20") + D(1_000) * D("90")) / M),
        id="priority-long-context-gpt-5.6-sol",
    ),
    pytest.param(
        dict(model="gpt-5.4-mini", day="2026-04-01", input_tokens=300_000, output_tokens=1_000),
        # gpt-5.4-mini has no long-context tier: standard 0.75 / 4.5
        usd_to_pico((D(300_000) * D("0.75") + D(1_000) * D("4.5")) / M),
        id="no-long-context-tier-gpt-5.4-mini",
    ),
    # --- cache writes ------------------------------------------------------------------------
    pytest.param(
        dict(model="gpt-5.6-sol", day="2026-08-01", input_tokens=10_000, cached_input_tokens=2_000,
             cache_write_tokens=3_000, output_tokens=1_000),
        # (10000-2000-3000) x 5 + 2000 x 0.5 + 3000 x 6.25 (1m_cache_write_tokens 2026-07-09) + 1000 x 30
        usd_to_pico((D(5_000) * D("5") + D(2_000) * D("0.5") + D(3_000) * D("6.25") + D(1_000) * D("30")) / M),
        id="cache-write-gpt-5.6-sol",
    ),
    pytest.param(
        dict(model="gpt-5.6-sol", day="2026-08-01", input_tokens=10_000, cache_write_tokens=4_000,
             output_tokens=1_000, service_tier="flex"),
        # token_flex 2.5 / 15, 1m_cache_write_tokens_flex 3.125
        usd_to_pico((D(6_000) * D("2.5") + D(4_000) * D("3.125") + D(1_000) * D("15")) / M),
        id="cache-write-flex-gpt-5.6-sol",
    ),
    pytest.param(
        dict(model="gpt-6-astra", day="2026-10-01", input_tokens=10_000, cache_write_tokens=4_000, service_tier="flex"),
        # no flex cache-write row for gpt-6-astra: 1.25 x the flex input rate 5 = 6.25
        usd_to_pico((D(6_000) * D("5") + D(4_000) * (D("1.25") * D("5"))) / M),
        id="cache-write-derived-1.25x-gpt-6-astra-flex",
    ),
    pytest.param(
        dict(model="gpt-4o", day="2025-01-15", input_tokens=10_000, cache_write_tokens=3_000),
        # gpt-4o has no cache-write fee: the 3000 cache-write tokens are plain input at 2.5
        usd_to_pico((D(7_000) * D("2.5") + D(3_000) * D("2.5")) / M),
        id="cache-write-no-fee-gpt-4o",
    ),
    # --- audio tokens ------------------------------------------------------------------------
    pytest.param(
        dict(model="gpt-4o-audio-preview", day="2025-03-01", input_tokens=1_000, input_audio_tokens=600,
             output_tokens=800, output_audio_tokens=500),
        # text 2.5 / 10, audio_token 40 / 80: 400 x 2.5 + 600 x 40 + 300 x 10 + 500 x 80
        usd_to_pico((D(400) * D("2.5") + D(600) * D("40") + D(300) * D("10") + D(500) * D("80")) / M),
        id="audio-tokens-gpt-4o-audio-preview",
    ),
    # --- image tokens and per-image prices ---------------------------------------------------
    pytest.param(
        dict(model="gpt-image-1", day="2025-05-01", input_tokens=500, input_image_tokens=300,
             output_tokens=4_000, output_image_tokens=4_000, images=1, image_size="1024x1024", image_quality="high"),
        # token 5 (text input), image_token 10 in / 40 out; output tokens reported -> no per-image charge
        usd_to_pico((D(200) * D("5") + D(300) * D("10") + D(4_000) * D("40")) / M),
        id="image-tokens-gpt-image-1",
    ),
    pytest.param(
        dict(model="gpt-image-1", day="2025-05-01", images=2, image_size="1024x1536", image_quality="high"),
        # image_1024x1536_high 0.25 per image
        usd_to_pico(2 * D("0.25")),
        id="per-image-gpt-image-1-1024x1536-high",
    ),
    pytest.param(
        dict(model="dall-e-3", day="2025-01-15", images=2, image_size="1024x1024", image_quality="standard"),
        usd_to_pico(2 * D("0.04")),
        id="dall-e-3-1024x1024-standard",
    ),
    pytest.param(
        dict(model="dall-e-3", day="2025-01-15", images=1, image_size="1792x1024", image_quality="hd"),
        usd_to_pico(1 * D("0.12")),
        id="dall-e-3-1792x1024-hd",
    ),
    pytest.param(
        dict(model="dall-e-3", day="2025-01-15", images=3, image_size="1024x1792", image_quality="standard"),
        usd_to_pico(3 * D("0.08")),
        id="dall-e-3-1024x1792-standard",
    ),
    pytest.param(
        dict(model="dall-e-3", day="2025-01-15", images=1, image_size="1024x1024", image_quality="hd"),
        usd_to_pico(1 * D("0.08")),
        id="dall-e-3-1024x1024-hd",
    ),
    # --- embeddings, moderation ----------------------------------------------------------------
    pytest.param(
        dict(model="text-embedding-3-small", day="2025-01-15", input_tokens=1_000_000),
        usd_to_pico(D(1_000_000) * D("0.02") / M),
        id="embedding-3-small",
    ),
    pytest.param(
        dict(model="text-embedding-3-small", day="2025-01-15", input_tokens=12_345),
        # 12345 x 0.02 / 1M = 0.0002469 USD
        usd_to_pico(D(12_345) * D("0.02") / M),
        id="embedding-3-small-odd-count",
    ),
    # --- fine-tuned ids ------------------------------------------------------------------------
    pytest.param(
        dict(model="ft:gpt-4o-mini-2024-07-18:acme::abc123", day="2025-01-15", input_tokens=10_000,
             cached_input_tokens=2_000, output_tokens=1_000),
        # ft:gpt-4o-mini-2024-07-18 token: 0.3 / 0.15 / 1.2
        usd_to_pico((D(8_000) * D("0.3") + D(2_000) * D("0.15") + D(1_000) * D("1.2")) / M),
        id="fine-tuned-gpt-4o-mini",
    ),
    # --- per-unit: whisper minutes, tts characters, tool calls --------------------------------
    pytest.param(
        dict(model="whisper-1", day="2025-01-15", audio_seconds=90),
        # 90 s = 1.5 min x 0.006
        usd_to_pico(D(90) / 60 * D("0.006")),
        id="whisper-1-90-seconds",
    ),
    pytest.param(
        dict(model="tts-1", day="2025-01-15", characters=1_000),
        # 15 per 1M characters
        usd_to_pico(D(1_000) * D("15") / M),
        id="tts-1-1000-characters",
    ),
    pytest.param(
        dict(model="tts-1-hd", day="2025-01-15", characters=2_500),
        usd_to_pico(D(2_500) * D("30") / M),
        id="tts-1-hd-2500-characters",
    ),
    pytest.param(
        dict(model="web_search", day="2025-09-01", tool_calls=7),
        # 0.01 per call
        usd_to_pico(7 * D("0.01")),
        id="web-search-7-calls",
    ),
    pytest.param(
        dict(model="file_search", day="2025-09-01", tool_calls=4),
        usd_to_pico(4 * D("0.0025")),
        id="file-search-4-calls",
    ),
    # --- effective dates ----------------------------------------------------------------------
    pytest.param(
        dict(model="o3", day="2025-06-09", input_tokens=1_000, output_tokens=1_000),
        # day before the cut: 2025-04-16 row 10 / 40
        usd_to_pico((D(1_000) * D("10") + D(1_000) * D("40")) / M),
        id="o3-day-before-price-change",
    ),
    pytest.param(
        dict(model="o3", day="2025-06-10", input_tokens=1_000, output_tokens=1_000),
        # on the day: 2025-06-10 row 2 / 8
        usd_to_pico((D(1_000) * D("2") + D(1_000) * D("8")) / M),
        id="o3-on-price-change-day",
    ),
    pytest.param(
        dict(model="o3", day="2025-01-01", input_tokens=1_000, output_tokens=1_000),
        # before every row: earliest row (2025-04-16) 10 / 40
        usd_to_pico((D(1_000) * D("10") + D(1_000) * D("40")) / M),
        id="o3-before-every-row-uses-earliest",
    ),
    pytest.param(
        dict(model="gpt-5.6-sol", day="2026-08-20", input_tokens=1_000, output_tokens=1_000),
        # 2026-07-09 row 5 / 30
        usd_to_pico((D(1_000) * D("5") + D(1_000) * D("30")) / M),
        id="sol-day-before-promo",
    ),
    pytest.param(
        dict(model="gpt-5.6-sol", day="2026-08-21", input_tokens=1_000, output_tokens=1_000),
        # 2026-08-21 row 4 / 20
        usd_to_pico((D(1_000) * D("4") + D(1_000) * D("20")) / M),
        id="sol-on-promo-day",
    ),
    pytest.param(
        dict(model="gpt-5.6-sol", day="2026-01-01", input_tokens=1_000, output_tokens=1_000),
        # before every row: earliest (2026-07-09) 5 / 30
        usd_to_pico((D(1_000) * D("5") + D(1_000) * D("30")) / M),
        id="sol-before-every-row-uses-earliest",
    ),
    pytest.param(
        dict(model="gpt-5.6-sol", day="2026-08-21", input_tokens=10_000, cache_write_tokens=2_000),
        # promo cache write 5 (2026-08-21 row), input 4: 8000 x 4 + 2000 x 5
        usd_to_pico((D(8_000) * D("4") + D(2_000) * D("5")) / M),
        id="sol-cache-write-promo-row",
    ),
    # --- aliases -------------------------------------------------------------------------------
    pytest.param(
        dict(model="gpt-4o-2024-08-06", day="2025-01-15", input_tokens=1_000, output_tokens=500),
        usd_to_pico((D(1_000) * D("2.5") + D(500) * D("10")) / M),
        id="alias-gpt-4o-2024-08-06",
    ),
    pytest.param(
        dict(model="gpt-5.6", day="2026-08-21", input_tokens=1_000, output_tokens=1_000),
        usd_to_pico((D(1_000) * D("4") + D(1_000) * D("20")) / M),
        id="alias-gpt-5.6-is-sol",
    ),
    pytest.param(
        dict(model="gpt-4o-mini-2024-07-18", day="2025-01-15", input_tokens=1_000, output_tokens=1_000),
        # gpt-4o-mini 0.15 / 0.6
        usd_to_pico((D(1_000) * D("0.15") + D(1_000) * D("0.6")) / M),
        id="alias-gpt-4o-mini-2024-07-18",
    ),
    pytest.param(
        dict(model="gpt-4o-2024-05-13", day="2025-01-15", input_tokens=1_000, output_tokens=1_000),
        # its own row (5 / 15), not gpt-4o's
        usd_to_pico((D(1_000) * D("5") + D(1_000) * D("15")) / M),
        id="dated-snapshot-with-own-row-gpt-4o-2024-05-13",
    ),
]


@pytest.mark.parametrize("event, expected", PRICED_CASES)
def test_priced_cases(catalog, event, expected):
    single, row = _price_one(catalog, event)
    assert row["price_status"] == "priced", row["price_note"]
    assert row["price_note"] == ""
    assert int(row["cost_pico"]) == expected
    assert single == expected


@pytest.mark.parametrize(
    "model",
    [
        pytest.param(m, id=m)
        for m in ("omni-moderation-latest", "omni-moderation-2024-09-26", "text-moderation-latest", "text-moderation-007")
    ],
)
def test_moderation_is_free_and_priced(catalog, model):
    # Moderation rows in the CSV: input 0, output 0 -> cost 0, status priced (not unpriced).
    single, row = _price_one(catalog, dict(model=model, day="2025-01-15", input_tokens=5_000, output_tokens=10))
    assert row["price_status"] == "priced"
    assert not pd.isna(row["cost_pico"])
    assert int(row["cost_pico"]) == 0
    assert single == 0


def test_batch_half_even_rounding_per_token(tmp_path):
    """Batch on a model without batch columns: 50% per token, rounded half-even to the pico.

    The bundled rates are all even pico amounts, so an override model with odd rates is used:
    input 0.000007 / 1M = 7 pico/token -> 3.5 -> 4; cached 0.000003 = 3 -> 1.5 -> 2;
    output 0.000005 = 5 -> 2.5 -> 2.
    """
    override = tmp_path / "odd.csv"
    override.write_text(
        ",".join(PRICE_COLUMNS) + "\n"
        + "test-odd,openai,token,0.000007,0.000003,0.000005,,,,,test\n"
    )
    cat = load_catalog(override_path=override)
    event = dict(model="test-odd", day="2025-01-15", input_tokens=100, cached_input_tokens=10, output_tokens=100, batch=True)
    # 90 x 4 + 10 x 2 + 100 x 2 = 580 pico (per-token rounding, not 0.5 x 1030 = 515)
    assert event_cost(cat, **event) == 90 * 4 + 10 * 2 + 100 * 2
    # Standard (not batch) for reference: 90 x 7 + 10 x 3 + 100 x 5
    assert event_cost(cat, **{**event, "batch": False}) == 90 * 7 + 10 * 3 + 100 * 5


def test_price_change_mid_month_in_one_frame(catalog):
    """One June 2025 frame for o3: each side of the 2025-06-10 change is priced with its own row."""
    days = ["2025-06-01", "2025-06-09", "2025-06-10", "2025-06-30"]
    frame = pd.DataFrame({"model": "o3", "day": days, "input_tokens": 1_000, "output_tokens": 1_000})
    result = price_events(frame, catalog)
    old = usd_to_pico((D(1_000) * D("10") + D(1_000) * D("40")) / M)  # 2025-04-16 row
    new = usd_to_pico((D(1_000) * D("2") + D(1_000) * D("8")) / M)  # 2025-06-10 row
    assert list(result["price_status"]) == ["priced"] * 4
    assert [int(v) for v in result["cost_pico"]] == [old, old, new, new]
    assert sum(int(v) for v in result["cost_pico"]) == usd_to_pico(D("0.12"))


def test_sol_promo_mid_month_in_one_frame(catalog):
    frame = pd.DataFrame(
        {"model": ["gpt-5.6-sol", "gpt-5.6", "gpt-5.6-sol", "gpt-5.6"], "day": ["2026-08-01", "2026-08-20", "2026-08-21", "2026-08-31"],
         "input_tokens": 1_000, "output_tokens": 1_000}
    )
    result = price_events(frame, catalog)
    before = usd_to_pico((D(1_000) * D("5") + D(1_000) * D("30")) / M)
    after = usd_to_pico((D(1_000) * D("4") + D(1_000) * D("20")) / M)
    assert [int(v) for v in result["cost_pico"]] == [before, before, after, after]


# ---------------------------------------------------------------------------------------------
# Unpriced cases: never $0, always a note
# ---------------------------------------------------------------------------------------------

UNPRICED_CASES = [
    pytest.param(
        dict(model="gpt-99-turbo", day="2025-01-15", input_tokens=1_000, output_tokens=100),
        ["gpt-99-turbo"],
        id="unknown-model",
    ),
    pytest.param(
        dict(model="gpt-4o", day="2025-01-15", input_tokens=100, cached_input_tokens=200, output_tokens=10),
        ["cached"],
        id="cached-exceeds-input",
    ),
    pytest.param(
        dict(model="gpt-4o", day="2025-01-15", input_tokens=1_000, output_tokens=100, service_tier="flex"),
        ["flex", "gpt-4o"],
        id="flex-without-flex-row-gpt-4o",
    ),
    pytest.param(
        dict(model="gpt-4.1", day="2025-05-01", input_tokens=1_000, output_tokens=100, service_tier="flex"),
        ["flex", "gpt-4.1"],
        id="flex-without-flex-row-gpt-4.1",
    ),
    pytest.param(
        dict(model="gpt-5.4", day="2026-04-01", input_tokens=300_000, output_tokens=100, service_tier="flex"),
        ["flex", "gpt-5.4"],
        id="flex-long-context-without-row-gpt-5.4",
    ),
    pytest.param(
        dict(model="dall-e-3", day="2025-01-15", images=1, image_size="512x512", image_quality="standard"),
        ["image"],
        id="dall-e-3-unknown-size",
    ),
]


@pytest.mark.parametrize("event, note_words", UNPRICED_CASES)
def test_unpriced_cases(catalog, event, note_words):
    single, row = _price_one(catalog, event)
    assert single is None  # not 0
    assert pd.isna(row["cost_pico"])
    assert row["price_status"] == "unpriced"
    for word in note_words:
        assert word in row["price_note"], row["price_note"]


def test_unknown_model_is_not_zero_and_does_not_disturb_neighbours(catalog):
    frame = pd.DataFrame(
        {"model": ["gpt-99-turbo", "gpt-4o"], "day": "2025-01-15", "input_tokens": [1_000, 1_000], "output_tokens": [500, 500]}
    )
    result = price_events(frame, catalog)
    assert pd.isna(result["cost_pico"].iloc[0])
    assert result["price_status"].iloc[0] == "unpriced"
    assert "gpt-99-turbo" in result["price_note"].iloc[0]
    assert int(result["cost_pico"].iloc[1]) == usd_to_pico((D(1_000) * D("2.5") + D(500) * D("10")) / M)
    assert result["price_status"].iloc[1] == "priced"


# ---------------------------------------------------------------------------------------------
# Huge amounts
# ---------------------------------------------------------------------------------------------


def test_huge_token_count_does_not_overflow(catalog):
    # o1-pro: input 150, output 600 per 1M = 150e6 / 600e6 pico per token.
    out_tokens = 10**13
    in_tokens = 10**12
    expected = out_tokens * 600 * 10**6 + in_tokens * 150 * 10**6  # Python ints: 6.15e21 > int64 max
    assert expected > 2**63
    assert expected == usd_to_pico(D(out_tokens) * D("600") / M + D(in_tokens) * D("150") / M)
    assert event_cost(catalog, model="o1-pro", day="2025-06-01", input_tokens=in_tokens, output_tokens=out_tokens) == expected
    # In a frame next to an ordinary row, both are exact.
    frame = pd.DataFrame(
        {"model": ["o1-pro", "gpt-4o"], "day": "2025-06-01", "input_tokens": [in_tokens, 1_000], "output_tokens": [out_tokens, 500]}
    )
    result = price_events(frame, catalog)
    assert list(result["price_status"]) == ["priced", "priced"]
    assert int(result["cost_pico"].iloc[0]) == expected
    assert int(result["cost_pico"].iloc[1]) == usd_to_pico((D(1_000) * D("2.5") + D(500) * D("10")) / M)


# ---------------------------------------------------------------------------------------------
# Random frame: sum of event costs == aggregate tokens x hand-looked-up rates
# ---------------------------------------------------------------------------------------------

# USD per 1M tokens: (input, cached input, output, cache write), copied from data/prices.csv.
# "batch" = CSV batch columns where present, else 50%; cached batch = 50% of standard cached.
HAND_RATES = {
    # gpt-4o (always-rows): token 2.5/1.25/10 batch 1.25/5; token_priority 4.25/2.125/17
    ("gpt-4o", "any", "standard"): ("2.5", "1.25", "10", "2.5"),
    ("gpt-4o", "any", "batch"): ("1.25", "0.625", "5", "1.25"),
    ("gpt-4o", "any", "priority"): ("4.25", "2.125", "17", "4.25"),
    # gpt-4o-mini: token 0.15/0.075/0.6 batch 0.075/0.3; token_priority 0.25/0.125/1
    ("gpt-4o-mini", "any", "standard"): ("0.15", "0.075", "0.6", "0.15"),
    ("gpt-4o-mini", "any", "batch"): ("0.075", "0.0375", "0.3", "0.075"),
    ("gpt-4o-mini", "any", "priority"): ("0.25", "0.125", "1", "0.25"),
    # o3 before 2025-06-10: token 10/2.5/40 (no batch columns -> 50%); flex/priority rows start
    # 2025-06-10, which is the earliest row, so they apply the day before as well.
    ("o3", "old", "standard"): ("10", "2.5", "40", "10"),
    ("o3", "old", "batch"): ("5", "1.25", "20", "5"),
    ("o3", "old", "flex"): ("1", "0.25", "4", "1"),
    ("o3", "old", "priority"): ("3.5", "0.875", "14", "3.5"),
    # o3 from 2025-06-10: token 2/0.5/8 batch 1/4
    ("o3", "new", "standard"): ("2", "0.5", "8", "2"),
    ("o3", "new", "batch"): ("1", "0.25", "4", "1"),
    ("o3", "new", "flex"): ("1", "0.25", "4", "1"),
    ("o3", "new", "priority"): ("3.5", "0.875", "14", "3.5"),
    # gpt-5.4: token 2.5/0.25/15 batch 1.25/7.5; flex 1.25/0.13/7.5; priority 5/0.5/30;
    # long context 5/0.5/22.5 (batch long context = 50%: 2.5/0.25/11.25)
    ("gpt-5.4", "any", "standard"): ("2.5", "0.25", "15", "2.5"),
    ("gpt-5.4", "any", "batch"): ("1.25", "0.125", "7.5", "1.25"),
    ("gpt-5.4", "any", "flex"): ("1.25", "0.13", "7.5", "1.25"),
    ("gpt-5.4", "any", "priority"): ("5", "0.5", "30", "5"),
    ("gpt-5.4", "any", "standard-long"): ("5", "0.5", "22.5", "5"),
    ("gpt-5.4", "any", "batch-long"): ("2.5", "0.25", "11.25", "2.5"),
    # gpt-5.6-sol before the 2026-08-21 promo (2026-07-09 rows)
    ("gpt-5.6-sol", "old", "standard"): ("5", "0.5", "30", "6.25"),
    ("gpt-5.6-sol", "old", "batch"): ("2.5", "0.25", "15", None),
    ("gpt-5.6-sol", "old", "flex"): ("2.5", "0.25", "15", None),
    ("gpt-5.6-sol", "old", "priority"): ("10", "1", "60", None),
    ("gpt-5.6-sol", "old", "standard-long"): ("10", "1", "45", "12.5"),
    ("gpt-5.6-sol", "old", "batch-long"): ("5", "0.5", "22.5", None),
    # gpt-5.6-sol from 2026-08-21 (promo rows)
    ("gpt-5.6-sol", "new", "standard"): ("4", "0.4", "20", "5"),
    ("gpt-5.6-sol", "new", "batch"): ("2", "0.2", "10", None),
    ("gpt-5.6-sol", "new", "flex"): ("2", "0.2", "10", None),
    ("gpt-5.6-sol", "new", "priority"): ("8", "0.8", "40", None),
    ("gpt-5.6-sol", "new", "standard-long"): ("8", "0.8", "30", "10"),
    ("gpt-5.6-sol", "new", "batch-long"): ("4", "0.4", "15", None),
}
MODEL_DAYS = {
    "gpt-4o": ["2025-03-01", "2025-06-10"],
    "gpt-4o-mini": ["2025-03-01", "2025-06-10"],
    "o3": ["2025-06-09", "2025-06-10"],
    "gpt-5.4": ["2026-04-01", "2026-04-02"],
    "gpt-5.6-sol": ["2026-08-20", "2026-08-21"],
}
MODEL_TIERS = {  # reported service_tier values that are valid for each model
    "gpt-4o": ["default", "auto", "scale", "", "priority", "fast"],
    "gpt-4o-mini": ["default", "auto", "priority"],
    "o3": ["default", "flex", "priority", "fast"],
    "gpt-5.4": ["default", "auto", "flex", "priority", "fast"],
    "gpt-5.6-sol": ["default", "flex", "priority"],
}
EFFECTIVE = {"default": "standard", "auto": "standard", "scale": "standard", "": "standard",
             "flex": "flex", "priority": "priority", "fast": "priority"}
PERIOD = {
    ("o3", "2025-06-09"): "old", ("o3", "2025-06-10"): "new",
    ("gpt-5.6-sol", "2026-08-20"): "old", ("gpt-5.6-sol", "2026-08-21"): "new",
}
LONG_CONTEXT_MODELS = {"gpt-5.4", "gpt-5.6-sol"}


def _random_frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    models = list(MODEL_DAYS)
    rows = []
    for _ in range(n):
        model = models[rng.integers(len(models))]
        day = MODEL_DAYS[model][rng.integers(2)]
        batch = bool(rng.random() < 0.2)
        tier = "default" if batch else MODEL_TIERS[model][rng.integers(len(MODEL_TIERS[model]))]
        # long-context requests only where a long-context rate exists for the tier (standard, batch)
        long = model in LONG_CONTEXT_MODELS and EFFECTIVE[tier] == "standard" and rng.random() < 0.1
        input_tokens = int(rng.integers(272_001, 700_000)) if long else int(rng.integers(0, 272_001))
        cached = int(rng.integers(0, input_tokens + 1)) if rng.random() < 0.6 else 0
        # cache writes only on sol standard (non-batch) requests, where the CSV has an explicit row
        cache_write = (
            int(rng.integers(0, input_tokens - cached + 1))
            if model == "gpt-5.6-sol" and not batch and EFFECTIVE[tier] == "standard" and rng.random() < 0.5
            else 0
        )
        output_tokens = int(rng.integers(0, 40_000))
        rows.append(
            dict(model=model, day=day, service_tier=tier, batch=batch, input_tokens=input_tokens,
                 cached_input_tokens=cached, cache_write_tokens=cache_write, output_tokens=output_tokens,
                 reasoning_tokens=output_tokens // 2)
        )
    return pd.DataFrame(rows)


def _hand_group_key(row) -> tuple[str, str, str, str]:
    long = row.model in LONG_CONTEXT_MODELS and row.input_tokens > 272_000
    kind = "batch" if row.batch else EFFECTIVE[row.service_tier]
    if long:
        kind += "-long"
    return row.model, row.day, PERIOD.get((row.model, row.day), "any"), kind


def test_random_frame_sum_equals_aggregate_times_hand_rates(catalog):
    frame = _random_frame(10_000, seed=20260821)
    result = price_events(frame, catalog)
    assert (result["price_status"] == "priced").all(), result.loc[result["price_status"] != "priced", "price_note"].unique()
    event_total = sum(int(v) for v in result["cost_pico"])

    sums: dict[tuple, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for row in frame.itertuples(index=False):
        acc = sums[_hand_group_key(row)]
        acc[0] += row.input_tokens - row.cached_input_tokens - row.cache_write_tokens
        acc[1] += row.cached_input_tokens
        acc[2] += row.output_tokens
        acc[3] += row.cache_write_tokens
    assert len(sums) > 40  # many distinct billing cases were exercised

    expected_usd = D(0)
    for (model, _day, period, kind), (text_in, cached, out, cache_write) in sums.items():
        r_in, r_cached, r_out, r_cw = HAND_RATES[(model, period, kind)]
        expected_usd += (D(text_in) * D(r_in) + D(cached) * D(r_cached) + D(out) * D(r_out)) / M
        if cache_write:
            expected_usd += D(cache_write) * D(r_cw) / M
    assert event_total == usd_to_pico(expected_usd)
    # The total is a whole number of pico-dollars with no rounding anywhere.
    assert expected_usd * 10**12 == int(expected_usd * 10**12)


def test_random_frame_sum_equals_pricing_aggregated_rows(catalog):
    """For models without a long-context tier, pricing the aggregated rows gives the same pico total."""
    frame = _random_frame(10_000, seed=7)
    frame = frame[~frame["model"].isin(LONG_CONTEXT_MODELS)].reset_index(drop=True)
    frame["eff_tier"] = frame["service_tier"].map(EFFECTIVE)
    per_event = price_events(frame, catalog)
    assert (per_event["price_status"] == "priced").all()
    per_event_total = sum(int(v) for v in per_event["cost_pico"])

    keys = ["model", "day", "eff_tier", "batch"]
    agg = frame.groupby(keys, as_index=False)[["input_tokens", "cached_input_tokens", "cache_write_tokens", "output_tokens"]].sum()
    agg["service_tier"] = agg["eff_tier"]
    aggregated = price_events(agg, catalog)
    assert (aggregated["price_status"] == "priced").all()
    assert sum(int(v) for v in aggregated["cost_pico"]) == per_event_total

    # Per group as well, not only in total.
    frame["cost"] = [int(v) for v in per_event["cost_pico"]]
    by_group = frame.groupby(keys)["cost"].sum()
    for row, cost in zip(agg.itertuples(index=False), aggregated["cost_pico"]):
        assert int(by_group.loc[(row.model, row.day, row.eff_tier, row.batch)]) == int(cost)
