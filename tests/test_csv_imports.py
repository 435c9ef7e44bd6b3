"""CSV imports of every kind on SQLite and PostgreSQL: values, validation, idempotency, the usage rule."""

from __future__ import annotations

import codecs
import csv
from pathlib import Path

import pytest

from tests.fakes.databases import snapshot
from tests.revenue_checks import assert_revenue_rollup_current
from walleta.catalog import load_catalog
from walleta.errors import InputError
from walleta.sources.csv_import import detect_kind, import_csv
from walleta.sources.mapping import UNMAPPED
from walleta.store import Store, open_store

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "data" / "samples"
SAMPLE_KINDS = {
    "customers.csv": "customers",
    "mapping.csv": "mapping",
    "usage.csv": "usage",
    "revenue.csv": "revenue",
    "stripe_invoices.csv": "revenue",
    "openai_activity.csv": "openai-activity",
    "openai_costs.csv": "openai-costs",
}


@pytest.fixture(scope="module")
def catalog():  # type: ignore[no-untyped-def]
    return load_catalog()


@pytest.fixture
def db(db_url: str) -> Store:
    return open_store(db_url)


@pytest.fixture
def lite(sqlite_url: str) -> Store:
    return open_store(sqlite_url)


def _import_samples(store: Store, catalog, tmp_path: Path) -> dict[str, object]:  # type: ignore[no-untyped-def]
    reports = {}
    for name in SAMPLE_KINDS:
        reports[name] = import_csv(store, SAMPLES / name, catalog=catalog, error_path=tmp_path / f"{name}.errors")
    return reports


def test_every_sample_imports_with_its_kind_detected(db: Store, catalog, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    reports = _import_samples(db, catalog, tmp_path)
    for name, report in reports.items():
        assert report.kind == SAMPLE_KINDS[name], name
        assert report.errors == [], (name, [e.message() for e in report.errors])
        assert any(note.startswith("kind:") and "detected from the header" in note for note in report.notes)
    assert reports["usage.csv"].imported == 8
    assert reports["customers.csv"].imported == 3
    assert reports["mapping.csv"].imported == 5
    assert reports["revenue.csv"].imported == 5
    assert (reports["stripe_invoices.csv"].imported, reports["stripe_invoices.csv"].skipped) == (2, 1)  # the draft is skipped
    assert (reports["openai_activity.csv"].imported, reports["openai_activity.csv"].skipped) == (3, 1)  # one empty bucket
    assert (reports["openai_costs.csv"].imported, reports["openai_costs.csv"].skipped) == (5, 1)


def test_usage_values_are_exact(db: Store, catalog, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import_csv(db, SAMPLES / "usage.csv", catalog=catalog)
    row = db.query("SELECT cost_pico, day, customer_id, feature, uid FROM usage_events WHERE request_id = 'req_0001'").iloc[0]
    # gpt-5-mini: 1,200 uncached x $0.25/1M + 1,200 cached x $0.025/1M + 350 output x $2/1M
    assert int(row["cost_pico"]) == 1_200 * 250_000 + 1_200 * 25_000 + 350 * 2_000_000
    assert (row["day"], row["customer_id"], row["feature"], row["uid"]) == ("2025-10-01", "acme", "chat_assistant", "req:req_0001")
    assert int(db.scalar("SELECT provider_cost_pico FROM usage_events WHERE request_id = 'req_0007'")) == 71_200_000_000
    # 23:59:59+02:00 is 21:59:59 UTC the same day; Unix 1759363200 is 2025-10-02T00:00Z
    assert db.scalar("SELECT day FROM usage_events WHERE request_id = 'req_0004'") == "2025-10-01"
    assert db.scalar("SELECT requests FROM usage_events WHERE model = 'text-embedding-3-small'") == 25
    assert db.scalar("SELECT day FROM usage_events WHERE model = 'text-embedding-3-small'") == "2025-10-02"
    total = db.scalar("SELECT CAST(SUM(cost_pico) AS BIGINT) FROM rollup_customer_day")
    assert int(total) == int(db.scalar("SELECT CAST(SUM(cost_pico) AS BIGINT) FROM usage_events"))


def test_reimporting_every_sample_leaves_the_database_unchanged(db: Store, catalog, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _import_samples(db, catalog, tmp_path)
    before = snapshot(db)
    reports = _import_samples(db, catalog, tmp_path)
    assert snapshot(db) == before
    for name, report in reports.items():
        assert report.imported == 0 and report.updated == 0, name
        assert report.import_id is None, name  # a repeat that changed nothing is not even recorded


BAD_USAGE = """timestamp,customer_id,model,input_tokens,output_tokens,cached_input_tokens,reasoning_tokens,request_id,batch,cost_usd
2025-10-05T10:00:00Z,acme,gpt-5-mini,1000,200,100,50,r1,false,0.001
2025-10-05T10:00:00Z,,gpt-5-mini,1000,200,0,0,r2,false,
2025-10-05T10:00:00Z,acme,gpt-5-mini,lots,200,0,0,r3,false,
2025-10-05T10:00:00Z,acme,gpt-5-mini,-10,200,0,0,r4,false,
2025-10-05T10:00:00Z,acme,gpt-5-mini,100,200,101,0,r5,false,
yesterday,acme,gpt-5-mini,100,200,0,0,r6,false,
2025-10-05T10:00:00Z,acme,gpt-5-mini,100,200,0,0,r1,false,
2025-10-05T10:00:00Z,acme,gpt-5-mini,100.5,200,0,0,r8,false,
2025-10-05T10:00:00Z,acme,gpt-5-mini,100,20,0,30,r9,false,
2025-10-05T10:00:00Z,acme,gpt-5-mini,100,20,0,0,r10,perhaps,
2025-10-05T10:00:00Z,acme,gpt-5-mini,100,20,0,0,r11,false,-1
2025-10-05T10:00:00Z,acme,gpt-5-mini,100,20,0,0,r12,false,
"""
EXPECTED_USAGE_ERRORS = {
    (3, "customer_id", "missing required value"),
    (4, "input_tokens", "not a number"),
    (5, "input_tokens", "negative token count"),
    (6, "cached_input_tokens", "cached_input_tokens (101) exceeds input_tokens (100)"),
    (7, "timestamp", "unparseable time"),
    (8, "request_id", "duplicate id: request_id already used in row 2"),
    (9, "input_tokens", "not a whole number"),
    (10, "reasoning_tokens", "reasoning_tokens (30) exceeds output_tokens (20)"),
    (11, "batch", "not true/false"),
    (12, "cost_usd", "negative amount"),
}


def test_every_class_of_bad_usage_row_is_reported_with_row_and_column(lite: Store, catalog, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    source = tmp_path / "bad.csv"
    source.write_text(BAD_USAGE)
    report = import_csv(lite, source, catalog=catalog)
    found = {(e.row, e.column, e.reason.split(" (use ")[0]) for e in report.errors}
    assert found == EXPECTED_USAGE_ERRORS
    for error in report.errors:
        assert error.column and f"bad.csv row {error.row}, column {error.column}: " in error.message()
    assert (report.rows_read, report.imported, report.rejected) == (12, 2, 10)
    assert report.error_file == tmp_path / "bad.errors.csv"
    rows = list(csv.DictReader(report.error_file.open()))
    assert len(rows) == 10 and {r["error_row"] for r in rows} == {str(r) for r, _c, _m in EXPECTED_USAGE_ERRORS}
    assert rows[0]["request_id"] == "r2"  # the original row follows the error columns
    assert lite.scalar("SELECT COUNT(*) FROM usage_events") == 2


BAD_REVENUE = """customer_id,period_start,period_end,amount,currency,kind,document_id
acme,2025-10-01,2025-10-31,99.00,USD,subscription,in_1
acme,2025-10-01,2025-10-31,99.00,XYZ,subscription,in_2
acme,2025-10-01,2025-10-31,99.001,USD,subscription,in_3
acme,2025-10-01,2025-10-31,ninety,USD,subscription,in_4
acme,2025-10-01,2025-10-31,99.00,USD,subscription,in_1
acme,2025-13-45,2025-10-31,99.00,USD,subscription,in_6
acme,2025-10-31,2025-10-01,99.00,USD,subscription,in_7
,2025-10-01,2025-10-31,99.00,USD,subscription,in_8
acme,2025-10-01,2025-10-31,99.00,USD,donation,in_9
acme,2025-10-01,2025-10-31,-5.00,USD,subscription,in_10
acme,2025-10-01,2025-10-31,1000,JPY,subscription,in_11
acme,2025-10-15,,5.00,USD,refund,in_1
"""
EXPECTED_REVENUE_ERRORS = {
    (3, "currency", "unknown currency code"),
    (4, "amount", "99.001 has more than 2 decimal places for USD"),
    (5, "amount", "not a number"),
    (6, "document_id", "duplicate id: document in_1"),  # "... (subscription) already in row 2"
    (7, "period_start", "unparseable date"),
    (8, "period_end", "period_end is before period_start"),
    (9, "customer_id", "missing required value"),
    (10, "kind", "unknown kind"),
    (11, "amount", "negative amount"),
}


def test_every_class_of_bad_revenue_row_is_reported(db: Store, tmp_path: Path) -> None:
    source = tmp_path / "revenue.csv"
    source.write_text(BAD_REVENUE)
    report = import_csv(db, source)
    found = {(e.row, e.column, e.reason.split(" (")[0]) for e in report.errors}
    assert found == EXPECTED_REVENUE_ERRORS
    for error in report.errors:
        assert f"revenue.csv row {error.row}, column {error.column}: " in error.message()
    assert_revenue_rollup_current(db)  # the good rows are in the revenue rollup too
    entries = db.query("SELECT uid, amount_minor, currency, kind, period_end FROM revenue_entries")
    assert sorted(entries.to_dict("records"), key=lambda r: r["uid"]) == [
        {"uid": "csv:in_11:subscription", "amount_minor": 1000, "currency": "JPY", "kind": "subscription", "period_end": "2025-10-31"},
        {"uid": "csv:in_1:refund", "amount_minor": -500, "currency": "USD", "kind": "refund", "period_end": "2025-10-15"},
        {"uid": "csv:in_1:subscription", "amount_minor": 9900, "currency": "USD", "kind": "subscription", "period_end": "2025-10-31"},
    ]


def test_stripe_invoice_export_is_net_of_tax_and_resolves_customers(db: Store, tmp_path: Path) -> None:
    import_csv(db, SAMPLES / "customers.csv")
    report = import_csv(db, SAMPLES / "stripe_invoices.csv")
    assert report.notes[0].startswith("kind: revenue (Stripe invoice export)")
    rows = db.query("SELECT customer_id, amount_minor, currency, kind, period_start, period_end, document_id FROM revenue_entries ORDER BY customer_id").to_dict("records")
    assert rows == [
        {"customer_id": "acme", "amount_minor": 49900, "currency": "USD", "kind": "subscription", "period_start": "2025-10-01", "period_end": "2025-11-01", "document_id": "in_1QAcme001"},
        {"customer_id": "globex", "amount_minor": 8900, "currency": "EUR", "kind": "subscription", "period_start": "2025-10-01", "period_end": "2025-11-01", "document_id": "in_1QGlobex01"},
    ]


def test_special_files_zero_bytes_binary_bom_decimal_comma_latin1(lite: Store, catalog, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    with pytest.raises(InputError, match="empty"):
        import_csv(lite, empty)
    binary = tmp_path / "blob.csv"
    binary.write_bytes(bytes(range(256)) * 8)
    with pytest.raises(InputError, match="binary data"):
        import_csv(lite, binary)
    bom = tmp_path / "bom.csv"
    bom.write_bytes(codecs.BOM_UTF8 + b"timestamp,customer_id,model,input_tokens,output_tokens\n2025-10-01,acme,gpt-5-mini,10,1\n")
    report = import_csv(lite, bom, catalog=catalog)
    assert report.imported == 1 and any("UTF-8 with BOM" in n for n in report.notes)
    comma = tmp_path / "eu.csv"
    comma.write_bytes(b"timestamp;customer_id;model;input_tokens;output_tokens;audio_seconds;cost_usd\n2025-10-01;acme;whisper-1;0;0;90,5;0,0123\n")
    report = import_csv(lite, comma, catalog=catalog)
    assert report.errors == [] and any("delimiter ';', decimal comma" in n for n in report.notes)
    row = lite.query("SELECT audio_seconds, provider_cost_pico, cost_pico FROM usage_events WHERE model = 'whisper-1'").iloc[0]
    assert float(row["audio_seconds"]) == 90.5 and int(row["provider_cost_pico"]) == 12_300_000_000
    assert int(row["cost_pico"]) == 9_050_000_000  # 90.5 s at $0.006/min
    latin = tmp_path / "latin.csv"
    latin.write_bytes("customer_id,name\nmuller,Müller GmbH\n".encode("latin-1"))
    report = import_csv(lite, latin)
    assert report.kind == "customers" and lite.scalar("SELECT name FROM customers WHERE customer_id = 'muller'") == "Müller GmbH"


def test_headers_are_mapped_and_the_mapping_is_reported(lite: Store, catalog, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    source = tmp_path / "other.csv"
    source.write_text("Time,Customer,Model Name,Prompt Tokens,Completion Tokens,Notes\n2025-10-01T00:00:00Z,acme,gpt-5-mini,100,10,hi\n")
    report = import_csv(lite, source, catalog=catalog)
    assert report.kind == "usage" and report.imported == 1
    mapping_note = next(n for n in report.notes if n.startswith("columns mapped"))
    assert "'Prompt Tokens' -> input_tokens" in mapping_note and "ignored columns: 'Notes'" in mapping_note


def test_unknown_kind_and_missing_columns_get_clear_messages(lite: Store, tmp_path: Path) -> None:
    odd = tmp_path / "odd.csv"
    odd.write_text("foo,bar\n1,2\n")
    with pytest.raises(InputError, match="cannot tell what kind of CSV"):
        import_csv(lite, odd)
    with pytest.raises(InputError, match="missing required column.*timestamp"):
        import_csv(lite, odd, kind="usage")
    assert detect_kind(["source", "key", "customer_id"])[0] == "mapping"


def test_customers_update_keeps_values_the_file_leaves_empty(lite: Store, tmp_path: Path) -> None:
    import_csv(lite, SAMPLES / "customers.csv")
    update = tmp_path / "plans.csv"
    update.write_text("customer_id,plan,name\nacme,Enterprise,\nnewco,Free,New Co\nacme,Pro,\n")
    report = import_csv(lite, update)
    assert (report.imported, report.updated, report.rejected) == (1, 1, 1)
    assert report.errors[0].reason == "duplicate id: customer_id already in row 2"
    acme = lite.query("SELECT name, plan, email FROM customers WHERE customer_id = 'acme'").iloc[0].tolist()
    assert acme == ["Acme Analytics", "Enterprise", "billing@acme.example"]


def test_mapping_import_remaps_stored_provider_usage(db: Store, catalog, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import_csv(db, SAMPLES / "openai_activity.csv", catalog=catalog)
    assert set(db.query("SELECT DISTINCT customer_id FROM usage_events")["customer_id"]) == {UNMAPPED}
    report = import_csv(db, SAMPLES / "mapping.csv")
    assert any("re-mapped" in n for n in report.notes)
    by_customer = dict(db.query("SELECT customer_id, CAST(SUM(input_tokens) AS BIGINT) AS t FROM rollup_customer_day GROUP BY customer_id").itertuples(index=False, name=None))
    assert by_customer == {"acme": 59_200, "globex": 12_000, UNMAPPED: 3_000}  # proj_unknown stays unmapped, and shown


def test_log_usage_wins_over_provider_usage_for_the_same_day(db: Store, catalog, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import_csv(db, SAMPLES / "openai_activity.csv", catalog=catalog)
    assert db.scalar("SELECT COUNT(*) FROM usage_events WHERE day = '2025-10-07'") == 3
    own = tmp_path / "log.csv"
    own.write_text("timestamp,customer_id,model,input_tokens,output_tokens\n2025-10-07T12:00:00Z,acme,gpt-5-mini,500,50\n")
    report = import_csv(db, own, catalog=catalog)
    assert any("set aside" in n for n in report.notes)
    events = db.query("SELECT source, input_tokens FROM usage_events WHERE day = '2025-10-07'")
    assert events.to_dict("records") == [{"source": "csv", "input_tokens": 500}]
    assert int(db.scalar("SELECT CAST(SUM(input_tokens) AS BIGINT) FROM rollup_customer_day WHERE day = '2025-10-07'")) == 500
    assert db.scalar("SELECT COUNT(*) FROM openai_usage_buckets WHERE day = '2025-10-07'") == 3  # kept for reconciliation
    # importing the export again does not bring the provider rows back
    import_csv(db, SAMPLES / "openai_activity.csv", catalog=catalog)
    assert db.scalar("SELECT COUNT(*) FROM usage_events WHERE day = '2025-10-07'") == 1


def test_header_only_file_imports_nothing(lite: Store, catalog, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    source = tmp_path / "header.csv"
    source.write_text("timestamp,customer_id,model,input_tokens,output_tokens\n")
    report = import_csv(lite, source, catalog=catalog)
    assert (report.rows_read, report.imported, report.errors) == (0, 0, [])


def test_revenue_amounts_with_thousands_separators_and_compact_dates(lite: Store, tmp_path: Path) -> None:
    source = tmp_path / "rev.csv"
    source.write_text('customer_id,period_start,amount,currency,document_id\nacme,20251001,"1,234.56",USD,in_a\n')
    report = import_csv(lite, source)
    assert report.errors == []
    assert lite.query("SELECT amount_minor, period_start FROM revenue_entries").iloc[0].tolist() == [123456, "2025-10-01"]
    european = tmp_path / "rev_eu.csv"
    european.write_text("customer_id;period_start;amount;currency;document_id\nacme;2025-10-01;1.234,56;EUR;in_b\nacme;2025-10-01;12,5;EUR;in_c\n")
    report = import_csv(lite, european)
    assert report.errors == [] and any("decimal comma" in n for n in report.notes)
    amounts = dict(lite.query("SELECT document_id, amount_minor FROM revenue_entries WHERE currency = 'EUR'").itertuples(index=False, name=None))
    assert amounts == {"in_b": 123456, "in_c": 1250}


def test_revenue_amounts_too_large_are_row_errors_named_by_row_and_column(db: Store, tmp_path: Path) -> None:
    source = tmp_path / "big.csv"
    source.write_text(
        "customer_id,period_start,amount,currency,document_id\n"
        "acme,2026-01-01,1e400,USD,in_1\n"
        "acme,2026-01-01,99999999999999999999.99,USD,in_2\n"
        "acme,2026-01-01,10000000000000.00,USD,in_3\n"  # 10^15 cents: the largest allowed
        "acme,2026-01-01,10000000000000.01,USD,in_4\n"
        "acme,2026-01-01,1e999999999,JPY,in_5\n"
        "acme,2026-01-01,99.00,USD,in_6\n"
    )
    report = import_csv(db, source)
    reason = "amount too large (at most 1,000,000,000,000,000 minor units of the currency per row)"
    assert [(e.row, e.column, e.reason) for e in report.errors] == [(2, "amount", reason), (3, "amount", reason), (5, "amount", reason), (6, "amount", reason)]
    assert "big.csv row 2, column amount: amount too large" in report.errors[0].message()
    stored = dict(db.query("SELECT document_id, amount_minor FROM revenue_entries").itertuples(index=False, name=None))
    assert {k: int(v) for k, v in stored.items()} == {"in_3": 10**15, "in_6": 9900}


def test_cost_export_exponent_bomb_is_a_row_error(db: Store, tmp_path: Path) -> None:
    report = import_csv(db, ROOT / "tests" / "corpus" / "csv" / "bug-costs-exponent-bomb.csv", kind="openai-costs", error_path=tmp_path / "e.csv")
    assert [(e.row, e.column, e.reason) for e in report.errors] == [(2, "amount_value", "amount too large (at most $9,223,372.03 per row)")]
    assert db.query("SELECT project_id, amount_pico FROM billed_costs").values.tolist() == [["q", 10**12]]


def test_plus_signed_token_counts_are_imported(db: Store, catalog, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    report = import_csv(db, ROOT / "tests" / "corpus" / "csv" / "bug-usage-plus-sign.csv", catalog=catalog, error_path=tmp_path / "e.csv")
    assert report.errors == [] and report.imported == 3
    assert sorted(int(v) for v in db.query("SELECT input_tokens FROM usage_events")["input_tokens"]) == [10, 12, 1000]


def test_a_file_with_too_many_columns_is_refused_and_nothing_changes(lite: Store, tmp_path: Path) -> None:
    before = snapshot(lite)
    with pytest.raises(InputError, match=r"wide\.csv: the header row has 5,000 columns; at most 1,000 are supported"):
        import_csv(lite, ",".join(f"c{i}" for i in range(5_000)).encode() + b"\n" + b"1," * 4_999 + b"1\n", name="wide.csv")
    assert snapshot(lite) == before


def test_upload_limits_refuse_the_whole_file_before_writing(lite: Store, catalog, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    data = (SAMPLES / "usage.csv").read_bytes()
    with pytest.raises(InputError, match=r"usage\.csv: the file is 0\.0 MiB, over the limit of 0\.0 MiB"):
        import_csv(lite, data, name="usage.csv", catalog=catalog, max_bytes=100)
    with pytest.raises(InputError, match=r"usage\.csv: the file has 8 rows, over the limit of 7 for one upload"):
        import_csv(lite, data, name="usage.csv", catalog=catalog, max_rows=7)
    assert lite.scalar("SELECT COUNT(*) FROM usage_events") == 0 and lite.scalar("SELECT COUNT(*) FROM import_runs") == 0
    report = import_csv(lite, data, name="usage.csv", catalog=catalog, max_bytes=len(data), max_rows=8)
    assert report.imported == 8
