"""Catalog tests: loading, the dated selection rule, aliases, overrides and their validation."""

from __future__ import annotations

import csv
from decimal import Decimal as D

import pytest

from walleta.catalog import OVERRIDE_ENV, PRICE_COLUMNS, load_catalog
from walleta.errors import CatalogError
from walleta.money import usd_to_pico

M = 10**6


@pytest.fixture
def no_env_override(monkeypatch):
    monkeypatch.delenv(OVERRIDE_ENV, raising=False)


@pytest.fixture
def catalog(no_env_override):
    cat = load_catalog()
    assert cat.override_path is None
    return cat


def _per_token(usd_per_1m: str) -> int:
    """Pico-dollars per token for a price written per 1M tokens."""
    return usd_to_pico(D(usd_per_1m) / M)


def _write_override(path, rows):
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=PRICE_COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow({"provider": "openai", "source": "test", **row})
    return path


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------


def test_load_bundled_catalog(catalog):
    assert len(catalog.rows) == 328
    assert catalog.as_of == "2026-11-18"
    assert catalog.long_context_threshold == 272_000
    assert all(r.origin == "bundled" for r in catalog.rows)
    # 130 models + 5 tool pseudo-models (prices.md section 1)
    assert len(catalog.models) == 135
    frame = catalog.to_frame()
    assert len(frame) == 328
    assert set(frame["origin"]) == {"bundled"}


def test_prices_are_pico_per_token(catalog):
    row = catalog.price("gpt-4o", "token", "2025-01-15")
    assert (row.input, row.cached_input, row.output, row.batch_input, row.batch_output) == (
        _per_token("2.5"), _per_token("1.25"), _per_token("10"), _per_token("1.25"), _per_token("5"),
    )
    assert row.input == 2_500_000
    # per-unit prices: per image / minute / call in pico, per 1M characters -> pico per character
    assert catalog.price("whisper-1", "audio_minute", "2025-01-15").per_unit == usd_to_pico(D("0.006"))
    assert catalog.price("dall-e-3", "image_1024x1024_hd", "2025-01-15").per_unit == usd_to_pico(D("0.08"))
    assert catalog.price("tts-1", "1m_characters", "2025-01-15").per_unit == usd_to_pico(D("15") / M)
    assert catalog.price("gpt-5.6-sol", "1m_cache_write_tokens", "2026-08-01").per_unit == _per_token("6.25")
    # a cell left empty is None, not 0
    assert catalog.price("gpt-4-turbo", "token", "2025-01-15").cached_input is None
    assert catalog.price("text-moderation-latest", "token", "2025-01-15").input == 0


# ---------------------------------------------------------------------------------------------
# Selection rule: greatest effective_from <= day, else the earliest row
# ---------------------------------------------------------------------------------------------

SELECTION_CASES = [
    pytest.param("o3", "token", "2025-06-09", "2025-04-16", "10", id="o3-day-before-change"),
    pytest.param("o3", "token", "2025-06-10", "2025-06-10", "2", id="o3-on-change-day"),
    pytest.param("o3", "token", "2030-01-01", "2025-06-10", "2", id="o3-far-future"),
    pytest.param("o3", "token", "2024-01-01", "2025-04-16", "10", id="o3-before-all-rows-earliest"),
    pytest.param("o3", "token_flex", "2025-06-09", "2025-06-10", "1", id="o3-flex-before-only-row-earliest"),
    pytest.param("gpt-5.6-sol", "token", "2026-08-20", "2026-07-09", "5", id="sol-day-before-promo"),
    pytest.param("gpt-5.6-sol", "token", "2026-08-21", "2026-08-21", "4", id="sol-promo-day"),
    pytest.param("gpt-5.6-sol", "token", "2026-07-08", "2026-07-09", "5", id="sol-before-launch-earliest"),
    pytest.param("gpt-5.6-sol", "token_long_context", "2026-09-01", "2026-08-21", "8", id="sol-long-context-promo"),
    pytest.param("gpt-5.6-sol", "token_priority_long_context", "2026-09-01", "2026-07-09", "20", id="sol-priority-long-only-row"),
    pytest.param("gpt-5.6-terra", "token", "2026-07-29", "2026-07-09", "2.5", id="terra-before-cut"),
    pytest.param("gpt-5.6-terra", "token", "2026-07-30", "2026-07-30", "2", id="terra-on-cut"),
    pytest.param("gpt-5.6-luna", "token", "2026-07-30", "2026-07-30", "0.2", id="luna-on-cut"),
    pytest.param("gpt-4o", "token", "2020-01-01", "0000-00-00", "2.5", id="undated-row-is-always"),
    pytest.param("gpt-4o-mini", "token", "2024-01-01", "2024-07-18", "0.15", id="before-only-dated-row-earliest"),
]


@pytest.mark.parametrize("model, unit, day, effective_from, input_usd", SELECTION_CASES)
def test_price_selection_rule(catalog, model, unit, day, effective_from, input_usd):
    row = catalog.price(model, unit, day)
    assert row is not None
    assert row.effective_from == effective_from
    assert row.input == _per_token(input_usd)


def test_price_of_unpriced_unit_or_model_is_none(catalog):
    assert catalog.price("gpt-4o", "token_flex", "2025-01-15") is None
    assert catalog.price("gpt-99-turbo", "token", "2025-01-15") is None


def test_to_frame_shows_empty_effective_from_for_always_rows(catalog):
    frame = catalog.to_frame()
    gpt4o = frame[(frame["model"] == "gpt-4o") & (frame["unit"] == "token")].iloc[0]
    assert gpt4o["effective_from"] == ""
    assert gpt4o["input_per_1m"] == "2.5"
    assert gpt4o["cached_input_per_1m"] == "1.25"
    o3 = frame[(frame["model"] == "o3") & (frame["unit"] == "token")]
    assert sorted(o3["effective_from"]) == ["2025-04-16", "2025-06-10"]


# ---------------------------------------------------------------------------------------------
# Resolution of reported model names
# ---------------------------------------------------------------------------------------------

RESOLVE_CASES = [
    pytest.param("gpt-4o", "gpt-4o", id="catalog-id"),
    pytest.param("gpt-4o-2024-08-06", "gpt-4o", id="alias-gpt-4o-2024-08-06"),
    pytest.param("gpt-4o-2024-11-20", "gpt-4o", id="alias-gpt-4o-2024-11-20"),
    pytest.param("gpt-4o-2024-05-13", "gpt-4o-2024-05-13", id="snapshot-with-own-rows"),
    pytest.param("gpt-5.6", "gpt-5.6-sol", id="alias-gpt-5.6"),
    pytest.param("gpt-4o-mini-2024-07-18", "gpt-4o-mini", id="alias-gpt-4o-mini-2024-07-18"),
    pytest.param("o3-2025-04-16", "o3", id="alias-o3"),
    pytest.param("tts-1-1106", "tts-1", id="alias-tts-1-1106"),
    pytest.param("GPT-4o", "gpt-4o", id="case-insensitive"),
    pytest.param("ft:gpt-4o-mini-2024-07-18:acme::abc123", "ft:gpt-4o-mini-2024-07-18", id="fine-tune-id"),
    pytest.param("ft:gpt-4o-2024-08-06:acme:support:xyz9", "ft:gpt-4o-2024-08-06", id="fine-tune-id-with-suffix"),
    pytest.param("ft:gpt-3.5-turbo-0125:acme::q1", "ft:gpt-3.5-turbo", id="fine-tune-via-alias"),
    pytest.param("gpt-99-turbo", None, id="unknown"),
    pytest.param("", None, id="empty"),
]


@pytest.mark.parametrize("name, expected", RESOLVE_CASES)
def test_resolve(catalog, name, expected):
    assert catalog.resolve(name) == expected


# ---------------------------------------------------------------------------------------------
# Overrides
# ---------------------------------------------------------------------------------------------


def test_override_replaces_and_adds(tmp_path, no_env_override):
    path = _write_override(
        tmp_path / "prices.override.csv",
        [
            # same (model, unit, effective_from) as a bundled row -> replaces it
            {"model": "gpt-4o", "unit": "token", "input_per_1m": "3", "cached_input_per_1m": "1.5", "output_per_1m": "12", "effective_from": ""},
            {"model": "o3", "unit": "token", "input_per_1m": "1.8", "cached_input_per_1m": "0.45", "output_per_1m": "7.2", "effective_from": "2025-06-10"},
            # a new model
            {"model": "acme-llm", "unit": "token", "input_per_1m": "0.7", "cached_input_per_1m": "0.07", "output_per_1m": "2.1", "effective_from": "2026-01-01"},
        ],
    )
    cat = load_catalog(override_path=path)
    assert cat.override_path == str(path)
    assert len(cat.rows) == 328 + 1  # two replaced, one added

    row = cat.price("gpt-4o", "token", "2025-01-15")
    assert (row.input, row.cached_input, row.output) == (_per_token("3"), _per_token("1.5"), _per_token("12"))
    assert row.batch_input is None  # the override row replaces the whole bundled row
    assert row.origin == "override"
    # gpt-4o priority (not overridden) is untouched
    assert cat.price("gpt-4o", "token_priority", "2025-01-15").input == _per_token("4.25")
    # o3: only the 2025-06-10 row is replaced; the 2025-04-16 row still applies before it
    assert cat.price("o3", "token", "2025-06-10").input == _per_token("1.8")
    assert cat.price("o3", "token", "2025-06-09").input == _per_token("10")
    assert cat.price("o3", "token", "2025-06-09").origin == "bundled"
    # the new model resolves and is priced
    assert cat.resolve("acme-llm") == "acme-llm"
    assert cat.price("acme-llm", "token", "2026-02-01").output == _per_token("2.1")

    frame = cat.to_frame()
    origins = frame.set_index(["model", "unit", "effective_from"])["origin"]
    assert origins.loc[("gpt-4o", "token", "")] == "override"
    assert origins.loc[("o3", "token", "2025-06-10")] == "override"
    assert origins.loc[("acme-llm", "token", "2026-01-01")] == "override"
    assert origins.loc[("o3", "token", "2025-04-16")] == "bundled"
    assert (frame["origin"] == "override").sum() == 3
    assert not frame.duplicated(["model", "unit", "effective_from"]).any()


def test_override_with_new_date_adds_a_version(tmp_path, no_env_override):
    path = _write_override(
        tmp_path / "o.csv",
        [{"model": "gpt-4o", "unit": "token", "input_per_1m": "2", "cached_input_per_1m": "1", "output_per_1m": "8", "effective_from": "2026-01-01"}],
    )
    cat = load_catalog(override_path=path)
    assert len(cat.rows) == 329
    assert cat.price("gpt-4o", "token", "2025-12-31").input == _per_token("2.5")
    assert cat.price("gpt-4o", "token", "2026-01-01").input == _per_token("2")


def test_env_var_override_is_honoured(tmp_path, monkeypatch):
    path = _write_override(
        tmp_path / "env-override.csv",
        [{"model": "acme-llm", "unit": "token", "input_per_1m": "1", "output_per_1m": "2", "effective_from": ""}],
    )
    monkeypatch.setenv(OVERRIDE_ENV, str(path))
    cat = load_catalog()
    assert cat.override_path == str(path)
    assert cat.price("acme-llm", "token", "2025-01-01").input == _per_token("1")
    assert len(cat.rows) == 329
    assert cat.to_frame().query("model == 'acme-llm'")["origin"].tolist() == ["override"]


def test_explicit_override_path_beats_env_var(tmp_path, monkeypatch):
    env_path = _write_override(tmp_path / "env.csv", [{"model": "env-llm", "unit": "token", "input_per_1m": "1", "effective_from": ""}])
    arg_path = _write_override(tmp_path / "arg.csv", [{"model": "arg-llm", "unit": "token", "input_per_1m": "1", "effective_from": ""}])
    monkeypatch.setenv(OVERRIDE_ENV, str(env_path))
    cat = load_catalog(override_path=arg_path)
    assert "arg-llm" in cat.models
    assert "env-llm" not in cat.models


MALFORMED_CASES = [
    pytest.param("input_per_1m", "abc", id="non-number-price"),
    pytest.param("output_per_1m", "0.1234567", id="seven-decimals-per-1m"),
    pytest.param("cached_input_per_1m", "0.0000001", id="below-1e-6-per-1m"),
    pytest.param("effective_from", "2025/06/10", id="bad-date-slashes"),
    pytest.param("effective_from", "June 10 2025", id="bad-date-words"),
    pytest.param("per_unit_price", "1,5", id="non-number-per-unit"),
]


@pytest.mark.parametrize("column, value", MALFORMED_CASES)
def test_malformed_override_raises_catalog_error(tmp_path, no_env_override, column, value):
    good = {"model": "acme-llm", "unit": "token", "input_per_1m": "1", "cached_input_per_1m": "0.1", "output_per_1m": "2", "effective_from": ""}
    bad = {**good, "model": "acme-llm-2", column: value}
    path = _write_override(tmp_path / "broken-prices.csv", [good, bad])  # header = row 1, bad record = row 3
    with pytest.raises(CatalogError) as excinfo:
        load_catalog(override_path=path)
    message = str(excinfo.value)
    assert "broken-prices.csv" in message
    assert "row 3" in message
    assert column in message


def test_six_decimals_per_1m_is_accepted(tmp_path, no_env_override):
    path = _write_override(
        tmp_path / "ok.csv",
        [{"model": "acme-llm", "unit": "token", "input_per_1m": "0.000001", "output_per_1m": "1.234567", "effective_from": ""}],
    )
    row = load_catalog(override_path=path).price("acme-llm", "token", "2025-01-01")
    assert row.input == 1  # 0.000001 USD per 1M tokens = 1 pico per token
    assert row.output == 1_234_567


def test_missing_override_file_raises(tmp_path, no_env_override):
    with pytest.raises(CatalogError):
        load_catalog(override_path=tmp_path / "does-not-exist.csv")
