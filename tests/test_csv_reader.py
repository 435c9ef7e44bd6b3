"""The generic CSV reader: sniffing, encodings, dialects, row numbers, header matching, errors."""

from __future__ import annotations

import codecs
import csv
import io
import zipfile

import numpy as np
import pytest

from walleta.errors import InputError
from walleta.sources.csv_reader import ColumnSpec, RowError, Validator, match_header, normalise_header, read_table, write_error_file


def test_empty_file_gets_one_clear_message() -> None:
    with pytest.raises(InputError, match=r"empty.*0 bytes"):
        read_table(b"", name="empty.csv")
    with pytest.raises(InputError, match="empty"):
        read_table(b"\n \r\n", name="blank.csv")


def test_binary_file_is_refused() -> None:
    with pytest.raises(InputError, match="binary data, not CSV"):
        read_table(bytes(range(256)) * 4, name="blob.bin")


def test_spreadsheets_are_refused_with_advice() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("xl/workbook.xml", "<workbook/>")
    with pytest.raises(InputError, match=r"usage\.xlsx is a spreadsheet.*save or export it as CSV"):
        read_table(buffer.getvalue(), name="usage.xlsx")
    with pytest.raises(InputError, match=r"Excel 97-2003"):
        read_table(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100, name="old.xls")


def test_utf8_bom_is_detected_and_dropped() -> None:
    table = read_table(codecs.BOM_UTF8 + "customer_id,name\nacme,Café\n".encode(), name="bom.csv")
    assert table.header == ["customer_id", "name"]
    assert table.encoding == "UTF-8 with BOM"
    assert table.columns["name"].to_pylist() == ["Café"]


def test_latin1_file_is_decoded() -> None:
    table = read_table("customer_id,name\nacme,Müller Straße\n".encode("latin-1"), name="latin.csv")
    assert "1252" in table.encoding or "Latin-1" in table.encoding
    assert table.columns["name"].to_pylist() == ["Müller Straße"]


def test_utf16_with_bom_is_decoded() -> None:
    table = read_table("customer_id\tname\nacme\tÅsa\n".encode("utf-16"), name="u16.csv")
    assert table.encoding == "UTF-16" and table.delimiter == "\t"
    assert table.columns["name"].to_pylist() == ["Åsa"]


def test_semicolon_and_decimal_comma_are_detected() -> None:
    table = read_table(b"customer_id;audio_seconds;cost_usd\nacme;1,5;0,25\nglobex;2;3,125\n", name="eu.csv")
    assert table.delimiter == ";" and table.decimal_comma
    specs = [ColumnSpec("customer_id", True), ColumnSpec("audio_seconds"), ColumnSpec("cost_usd")]
    v = Validator(table, match_header(table.header, specs))
    assert v.number("audio_seconds").tolist() == [1.5, 2.0]
    assert v.usd_pico("cost_usd").tolist() == [250_000_000_000, 3_125_000_000_000]
    assert "decimal comma" in table.describe()


def test_row_numbers_survive_blank_lines_and_multiline_cells() -> None:
    data = b'customer_id,name\nacme,"two\nlines"\n\nglobex,G\n'
    table = read_table(data, name="t.csv")
    assert table.row_numbers.tolist() == [2, 5]  # the header is row 1; records start on lines 2 and 5
    assert table.blank_rows == 1


def test_ragged_rows_are_reported_not_fatal() -> None:
    table = read_table(b"a,b\n1,2\n3\n4,5\n", name="r.csv")
    assert table.rows == 2
    assert [(e.row, e.reason) for e in table.errors] == [(3, "has 1 fields, the header has 2")]


def test_header_matching_normalises_and_uses_synonyms() -> None:
    specs = [ColumnSpec("input_tokens", True, ("prompt_tokens",)), ColumnSpec("customer_id", True, ("customer",)), ColumnSpec("model", True)]
    mapping = match_header([" Prompt Tokens ", "Customer", "MODEL", "extra"], specs)
    assert mapping.columns == {"input_tokens": " Prompt Tokens ", "customer_id": "Customer", "model": "MODEL"}
    assert mapping.ignored == ["extra"]
    assert "'Customer' -> customer_id" in mapping.describe() and "ignored columns: 'extra'" in mapping.describe()
    assert normalise_header("Period Start (UTC)") == "period_start_utc"


def test_validator_collects_row_and_column_for_every_problem(tmp_path) -> None:  # type: ignore[no-untyped-def]
    table = read_table(b"n,t,b\n1,2025-01-01,true\nx,nope,maybe\n-3,1700000000,0\n10.0,2025-01-01T10:00:00+02:00,\n", name="v.csv")
    specs = [ColumnSpec("n"), ColumnSpec("t"), ColumnSpec("b")]
    v = Validator(table, match_header(table.header, specs))
    numbers = v.integer("n", what="token count")
    times = v.timestamp_us("t")
    flags = v.boolean("b")
    assert numbers.tolist()[0] == 1 and numbers.tolist()[3] == 10
    assert times[2] == 1_700_000_000_000_000 and times[3] == 1_735_689_600_000_000 + 8 * 3_600_000_000
    assert flags.tolist() == [1, 0, 0, 0]
    problems = sorted((e.row, e.column, e.reason.split(" (")[0]) for e in v.errors)
    assert problems == [(3, "b", "not true/false"), (3, "n", "not a number"), (3, "t", "unparseable time"), (4, "n", "negative token count")]
    assert v.good.tolist() == [True, False, False, True]
    for error in v.errors:
        assert f"row {error.row}, column {error.column}" in error.message()
    path = write_error_file(tmp_path / "e.csv", v.errors, table)
    rows = list(csv.reader(path.open()))
    assert rows[0] == ["error_row", "error_column", "error_value", "error_reason", "n", "t", "b"]
    assert rows[1][:4] == ["3", "b", "maybe", "not true/false"] and rows[1][4:] == ["x", "nope", "maybe"]


def test_money_parsing_is_exact() -> None:
    table = read_table(b"c\n0.1\n1234567.123456789012\n1e-3\n-0.5\n\nabc\n", name="m.csv")
    v = Validator(table, match_header(table.header, [ColumnSpec("c")]))
    values = v.usd_pico("c")
    assert values[0] == 100_000_000_000 and values[1] == 1_234_567_123_456_789_012 and values[2] == 1_000_000_000
    assert values[3] is None  # negative: rejected
    assert {(e.row, e.reason) for e in v.errors} == {(5, "negative amount"), (7, "not a number")}  # row 6 is a blank line
    assert isinstance(v.errors[0], RowError)
    assert np.asarray(v.bad).sum() == 2


def test_integers_too_large_for_storage_are_rejected_not_wrapped() -> None:
    table = read_table(b"n\n5\n99999999999999999999\n\"1,234\"\n7.0\n", name="big.csv")
    v = Validator(table, match_header(table.header, [ColumnSpec("n")]))
    values = v.integer("n")
    assert values.tolist() == [5, 0, 1234, 7]
    assert [(e.row, e.reason) for e in v.errors] == [(3, "number too large")]


def test_plus_signed_integers_in_a_slow_column_are_read() -> None:
    # '1,000' sends the column to the slow path, where arrow used to fail on '+12'.
    table = read_table(b'n\n+12\n"1,000"\n10\n-3\n', name="plus.csv")
    v = Validator(table, match_header(table.header, [ColumnSpec("n")]))
    assert v.integer("n").tolist() == [12, 1000, 10, 0]
    assert [(e.row, e.column, e.reason) for e in v.errors] == [(5, "n", "negative value")]


def test_dollar_amounts_beyond_int64_pico_or_with_huge_exponents_are_row_errors() -> None:
    table = read_table(b"c\n1e999999\n1.00\n1e-999999\n9223372.036854775807\n9223372.036854775808\n-1E+30\n", name="m.csv")
    v = Validator(table, match_header(table.header, [ColumnSpec("c")]))
    values = v.usd_pico("c", minimum=None)
    assert values.tolist() == [None, 10**12, 0, 2**63 - 1, None, None]
    reason = "amount too large (at most $9,223,372.03 per row)"
    assert [(e.row, e.column, e.reason, e.value) for e in v.errors] == [
        (2, "c", reason, "1e999999"), (6, "c", reason, "9223372.036854775808"), (7, "c", reason, "-1E+30")]


def test_files_with_more_than_1000_columns_are_refused_up_front() -> None:
    from walleta.sources.csv_reader import MAX_COLUMNS

    assert MAX_COLUMNS == 1_000
    wide = ",".join(f"c{i}" for i in range(1_000)).encode() + b"\n" + b",".join(b"1" for _ in range(1_000)) + b"\n"
    assert len(read_table(wide, name="wide.csv").header) == 1_000
    with pytest.raises(InputError) as caught:
        read_table(b"a," * 1_000 + b"\n", name="wider.csv")
    assert str(caught.value) == ("wider.csv: the header row has 1,001 columns; at most 1,000 are supported "
                                 "(check that this is the right file and that it has one record per line)")
    with pytest.raises(InputError, match=r"huge\.csv: the header row has 5,000,001 columns"):
        read_table(b"a," * 5_000_000, name="huge.csv")  # a 10 MB header line: refused before matching
    with pytest.raises(InputError, match=r"ragged\.csv: the header row has 1,001 columns"):
        read_table(b"a," * 1_000 + b"\n\n1\n1,2\n", name="ragged.csv")  # the exact (slow) reader too
