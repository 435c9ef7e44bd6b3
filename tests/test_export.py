"""CSV downloads: exact dollars from pico-dollars, spreadsheet formulas neutralised."""

import io

import pandas as pd
import pytest

from walleta.export import neutralise_cell, neutralise_formulas, pico_columns_to_usd, to_csv_bytes


@pytest.mark.parametrize("cell", ["=1+1", "+SUM(A1)", "-2+3", "@cmd", "\tx", "\rx", '=HYPERLINK("http://x")'])
def test_formula_cells_get_a_leading_quote(cell):
    assert neutralise_cell(cell) == "'" + cell


@pytest.mark.parametrize("cell", ["acme", "a=b", "", 12, -3, None, 1.5])
def test_other_cells_are_unchanged(cell):
    assert neutralise_cell(cell) == cell


def test_only_text_columns_are_touched_and_numbers_stay_numbers():
    frame = pd.DataFrame({"customer": ["=evil()", "ok"], "delta": [-5, 3]})
    safe = neutralise_formulas(frame)
    assert safe["customer"].tolist() == ["'=evil()", "ok"]
    assert safe["delta"].tolist() == [-5, 3]


def test_pico_columns_become_exact_dollar_text():
    frame = pd.DataFrame({"cost_pico": [1, 10**12 * 3 + 5 * 10**9, -(10**10), None]}, dtype=object)
    out = pico_columns_to_usd(frame)
    assert list(out.columns) == ["cost_usd"]
    assert out["cost_usd"].tolist() == ["0.000000000001", "3.005", "-0.01", None]


def test_big_pico_sums_beyond_int64_stay_exact():
    big = 2**70
    out = pico_columns_to_usd(pd.DataFrame({"revenue_pico": [big]}, dtype=object))
    assert out["revenue_usd"].iloc[0] == "1180591620.717411303424"


def test_csv_bytes_keep_negative_money_numeric_and_quote_formulas():
    frame = pd.DataFrame({"customer_id": ["@bad", "good"], "margin_pico": [-(10**12), 2 * 10**12]})
    text = to_csv_bytes(frame).decode("utf-8")
    parsed = pd.read_csv(io.StringIO(text), dtype=str)
    assert list(parsed.columns) == ["customer_id", "margin_usd"]
    assert parsed["customer_id"].tolist() == ["'@bad", "good"]
    assert parsed["margin_usd"].tolist() == ["-1", "2"]


def test_formula_header_is_neutralised():
    text = to_csv_bytes(pd.DataFrame({"=cmd": ["x"]})).decode()
    assert text.splitlines()[0] == "'=cmd"
