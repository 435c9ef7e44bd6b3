"""Fuzzing the CSV importers (usage, OpenAI costs, revenue, mapping) through `import_csv`.

Invariant: a file is either imported with exactly the totals of its valid rows, or rejected
as a whole with a clear message (InputError) and the database untouched. Never a traceback,
never a partial write, and importing the same bytes again changes nothing.

Hypothesis builds each file row by row from pools of cells that are known to be valid (with
their exact value), known to be invalid (must be rejected and listed in the report), or
ambiguous (`12.0`, `1,000`, `+5`, ...: either rejected, or stored with the value they denote).
Every row carries a unique id, so the test checks each row's outcome in the database, and its
expected amounts are computed here independently (gpt-4o's catalog rates; ISO minor units).
A corpus of nasty files (tests/corpus/csv/ plus generated ones: a 10 MB single line, binary,
spreadsheet bytes, mixed encodings) runs through every kind.
"""

from __future__ import annotations

import csv
import io
import itertools
import queue
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from walleta.errors import InputError
from walleta.sources.csv_import import import_csv
from walleta.store import Store, open_store

from . import workers
from .support import ROOT, SOAK, assert_consistent, fork_context, integrity_ok, record_figures

CORPUS = ROOT / "tests" / "corpus" / "csv"
SCALE = 10 if SOAK else 1
IDS = itertools.count()  # unique row ids across examples (one database per test)
FIGURES: dict[str, dict[str, int]] = {}
# Seeded (derandomized) so every run tries the same files; no shrinking in the default suite
# (a failure is reported as found, quickly); the soak run shrinks.
PHASES = list(Phase) if SOAK else [Phase.explicit, Phase.reuse, Phase.generate]
FUZZ = dict(deadline=None, suppress_health_check=list(HealthCheck), derandomize=not SOAK, phases=PHASES, print_blob=True)

# gpt-4o's catalog rates in pico-dollars per token (2026): input, cached input, output.
GPT4O = (2_500_000, 1_250_000, 10_000_000)
MINOR_DIGITS = {"USD": 2, "EUR": 2, "JPY": 0, "KWD": 3}

OK, BAD, AMB = "ok", "bad", "amb"
Cell = tuple[str, str, Any]  # (text in the file, status, value it denotes when stored)


def _count(kind: str, key: str, n: int = 1) -> None:
    FIGURES.setdefault(kind, {"files": 0, "rows": 0, "rejected_files": 0, "rows_stored": 0, "rows_rejected": 0})
    FIGURES[kind][key] = FIGURES[kind].get(key, 0) + n


def _row_status(cells: list[Cell]) -> str:
    statuses = {c[1] for c in cells}
    return BAD if BAD in statuses else AMB if AMB in statuses else OK


def _csv_bytes(header: list[str], rows: list[list[str]], draw: Callable[[Any], Any]) -> bytes:
    """Rows as CSV with a drawn delimiter and encoding (BOM or not)."""
    delimiter = draw(st.sampled_from([",", ",", ";", "\t"]))
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator=draw(st.sampled_from(["\n", "\r\n"])))
    writer.writerow(header)
    writer.writerows(rows)
    text = out.getvalue()
    encoding = draw(st.sampled_from(["utf-8", "utf-8", "utf-8-sig"]))
    return text.encode(encoding)


def _snapshot(store: Store) -> dict[str, int]:
    """Row counts of every table an import may touch."""
    tables = ("usage_events", "revenue_entries", "customer_mappings", "billed_costs", "import_runs", "customers")
    return {t: int(store.scalar(f"SELECT COUNT(*) FROM {t}")) for t in tables}


def _import(store: Store, data: bytes, kind: str, tmp_path: Path) -> Any:
    """import_csv; None when the whole file was rejected (then the database must be unchanged)."""
    before = _snapshot(store)
    try:
        report = import_csv(store, data, kind=kind, name="fuzz.csv", error_path=tmp_path / "fuzz.errors.csv")
    except InputError as exc:
        assert str(exc).strip() and "Traceback" not in str(exc)
        assert _snapshot(store) == before, "a rejected file changed the database"
        _count(kind, "rejected_files")
        return None
    return report


def _rejected_rows(report: Any) -> set[int]:
    return {int(e.row) for e in report.errors if getattr(e, "row", None) is not None}


def _assert_idempotent(store: Store, data: bytes, kind: str, tmp_path: Path) -> None:
    before = _snapshot(store)
    import_csv(store, data, kind=kind, name="fuzz.csv", error_path=tmp_path / "again.errors.csv")
    after = _snapshot(store)
    assert after == before, "importing the same bytes again changed the database"


# -- usage --------------------------------------------------------------------------------------

def _int_cells(low: int, high: int) -> st.SearchStrategy[Cell]:
    ok = st.integers(low, high).map(lambda v: (str(v), OK, v))
    bad = st.sampled_from([("-5", BAD, None), ("abc", BAD, None), ("NaN", BAD, None), ("1.5", BAD, None),
                           ("inf", BAD, None), ("99999999999999999999999", BAD, None), ("0x10", BAD, None)])
    amb = st.sampled_from([("12.0", AMB, 12), (" 12 ", AMB, 12), ("+12", AMB, 12), ("1e3", AMB, 1000),
                           ("1,000", AMB, 1000), ("1_000", AMB, 1000), ("١٢", AMB, 12), ("", AMB, 0)])
    return st.one_of(ok, ok, ok, ok, bad, amb)


TIMES = st.sampled_from([
    ("2026-01-15T10:00:00Z", OK, "2026-01-15"), ("2026-02-03 23:59:59", OK, "2026-02-03"),
    ("1768471200", OK, "2026-01-15"), ("2026-01-20T10:00:00+02:00", OK, "2026-01-20"),
    ("not a date", BAD, None), ("", BAD, None), ("2026-13-45", BAD, None), ("2026-02-30", BAD, None),
    ("15/01/2026", AMB, "2026-01-15"), ("2026-01-15", AMB, "2026-01-15"),
])
NAMES = st.sampled_from([
    ("acme", OK, "acme"), ("O'Brien; \"quoted\"", OK, "O'Brien; \"quoted\""), ("=HYPERLINK(\"x\")", OK, "=HYPERLINK(\"x\")"),
    ("客户 ✓", OK, "客户 ✓"), ("'; DROP TABLE usage_events; --", OK, "'; DROP TABLE usage_events; --"),
    ("multi\nline", OK, "multi\nline"), ("", BAD, None), ("  padded  ", AMB, "padded"), ("x" * 300, OK, "x" * 300),
])
MODELS = st.sampled_from([("gpt-4o", OK, "gpt-4o"), ("gpt-4o", OK, "gpt-4o"), ("no-such-model-zz", OK, "no-such-model-zz"),
                          ("", BAD, None), ("GPT-4O", AMB, "GPT-4O")])


def _usage_row(draw: Callable[[Any], Any], request_id: str) -> tuple[list[Cell], dict[str, Any]]:
    time, customer, model = draw(TIMES), draw(NAMES), draw(MODELS)
    inputs, outputs = draw(_int_cells(0, 2_000_000)), draw(_int_cells(0, 500_000))
    cached_value = draw(st.integers(0, 2_000_000))
    cached: Cell = (str(cached_value), OK if inputs[2] is None or cached_value <= inputs[2] else BAD, cached_value)
    cells = [time, customer, model, inputs, outputs, cached]
    return cells, {"request_id": request_id, "customer": customer[2], "model": model[2], "input": inputs[2],
                   "output": outputs[2], "cached": cached_value}


def _expected_cost(row: dict[str, Any], stored_model: str) -> int | None:
    if stored_model.lower() != "gpt-4o":
        return None
    return (row["input"] - row["cached"]) * GPT4O[0] + row["cached"] * GPT4O[1] + row["output"] * GPT4O[2]


def _check_usage(store: Store, rows: list[tuple[str, dict[str, Any]]], report: Any, before_events: int) -> None:
    ids = [r["request_id"] for _, r in rows]
    marks = ", ".join("?" for _ in ids)
    stored = store.query(
        f"SELECT request_id, customer_id, model, input_tokens, output_tokens, cached_input_tokens, cost_pico "
        f"FROM usage_events WHERE request_id IN ({marks})", ids
    ).set_index("request_id")
    cost_total = 0
    for status, row in rows:
        present = row["request_id"] in stored.index
        if status == OK:
            assert present, f"valid row {row} was not imported: {report.errors[:3]}"
        if status == BAD:
            assert not present, f"invalid row {row} was imported"
        if not present:
            continue
        got = stored.loc[row["request_id"]]
        assert (int(got["input_tokens"]), int(got["output_tokens"]), int(got["cached_input_tokens"])) == (
            row["input"], row["output"], row["cached"]), row
        assert got["customer_id"] in (row["customer"], str(row["customer"]).strip())
        expected = _expected_cost(row, str(got["model"]))
        actual = None if got["cost_pico"] is None or got["cost_pico"] != got["cost_pico"] else int(got["cost_pico"])
        if expected is not None:
            assert actual == expected, (row, actual, expected)
            cost_total += expected
        elif str(got["model"]) == "no-such-model-zz":
            assert actual is None  # unpriced is never $0
    assert report.imported == len(stored)
    assert int(store.scalar("SELECT COUNT(*) FROM usage_events")) - before_events == len(stored)
    assert len(rows) - len(stored) == len(_rejected_rows(report)), "every row not stored must be reported"
    priced = store.scalar(f"SELECT CAST(COALESCE(SUM(cost_pico), 0) AS BIGINT) FROM usage_events WHERE request_id IN ({marks}) "
                          "AND LOWER(model) = 'gpt-4o'", ids)  # as _expected_cost: 'GPT-4O' is gpt-4o too
    assert int(priced) == cost_total
    _count("usage", "rows_stored", len(stored))
    _count("usage", "rows_rejected", len(rows) - len(stored))


def _usage_test(store: Store, data: st.DataObject, tmp_path: Path) -> None:
    n = data.draw(st.integers(1, 12))
    rows, cells_rows = [], []
    for _ in range(n):
        cells, row = _usage_row(data.draw, f"req_fz_{next(IDS)}")
        rows.append((_row_status(cells), row))
        cells_rows.append([c[0] for c in cells] + [row["request_id"]])
    header = ["timestamp", "customer_id", "model", "input_tokens", "output_tokens", "cached_input_tokens", "request_id"]
    payload = _csv_bytes(header, cells_rows, data.draw)
    _count("usage", "files")
    _count("usage", "rows", n)
    before = int(store.scalar("SELECT COUNT(*) FROM usage_events"))
    report = _import(store, payload, "usage", tmp_path)
    if report is None:
        return
    _check_usage(store, rows, report, before)
    assert_consistent(store)
    _assert_idempotent(store, payload, "usage", tmp_path)


@settings(max_examples=25 * SCALE, **FUZZ)
@given(data=st.data())
def test_usage_csv_imports_exactly_its_valid_rows_sqlite(sqlite_store: Store, data: st.DataObject, tmp_path: Path) -> None:
    _usage_test(sqlite_store, data, tmp_path)


@settings(max_examples=6 * SCALE, **FUZZ)
@given(data=st.data())
def test_usage_csv_imports_exactly_its_valid_rows_postgresql(pg_store: Store, data: st.DataObject, tmp_path: Path) -> None:
    _usage_test(pg_store, data, tmp_path)


# -- revenue ------------------------------------------------------------------------------------

AMOUNTS = st.sampled_from([
    ("99.00", OK, Decimal("99.00")), ("0.01", OK, Decimal("0.01")), ("1234.5", OK, Decimal("1234.5")), ("0", OK, Decimal(0)),
    ("500", OK, Decimal(500)), ("-10.00", OK, Decimal("-10.00")), ("1.005", OK, Decimal("1.005")),
    ("abc", BAD, None), ("", BAD, None), ("NaN", BAD, None), ("Infinity", BAD, None), ("1e400", BAD, None),
    ("1,234.00", AMB, Decimal("1234.00")), (" 99.00 ", AMB, Decimal("99.00")), ("+5", AMB, Decimal(5)),
    ("1e2", AMB, Decimal(100)), ("$99", AMB, Decimal(99)), ("99999999999999999999.99", AMB, Decimal("99999999999999999999.99")),
])
CURRENCIES = st.sampled_from([("USD", OK, "USD"), ("EUR", OK, "EUR"), ("JPY", OK, "JPY"), ("KWD", OK, "KWD"),
                              ("usd", AMB, "USD"), ("XXX", BAD, None), ("", BAD, None), ("DOLLARS", BAD, None)])
REVENUE_KINDS = st.sampled_from([("", OK, "subscription"), ("subscription", OK, "subscription"), ("refund", OK, "refund"),
                                 ("credit_note", OK, "credit_note"), ("usage", OK, "usage"), ("bogus", BAD, None)])
PERIODS = st.sampled_from([(("2026-01-01", "2026-01-31"), OK), (("2026-02-01", ""), OK), (("2026-02-30", ""), BAD),
                           (("2026-03-01", "2026-02-01"), BAD), (("", ""), BAD), (("January", ""), BAD)])


def _revenue_status(amount: Cell, currency: Cell, kind: Cell) -> tuple[str, int | None]:
    """Status of a revenue row and its stored amount in minor units (signed by kind)."""
    status = _row_status([amount, currency, kind])
    if status == BAD:
        return BAD, None
    value, code = amount[2], currency[2]
    digits = MINOR_DIGITS[code]
    minor = value.scaleb(digits)
    if minor != minor.to_integral_value():
        return BAD, None  # more decimals than the currency has
    minor_int = int(minor)
    if kind[2] in ("refund", "credit_note"):
        return status, -abs(minor_int)
    if minor_int < 0:
        return BAD, None  # negative where not allowed
    return status, minor_int


def _revenue_test(store: Store, data: st.DataObject, tmp_path: Path) -> None:
    n = data.draw(st.integers(1, 12))
    expected: list[tuple[str, str, int | None, str | None]] = []
    rows = []
    for _ in range(n):
        amount, currency, kind = data.draw(AMOUNTS), data.draw(CURRENCIES), data.draw(REVENUE_KINDS)
        (start, end), period_status = data.draw(PERIODS)
        status, minor = _revenue_status(amount, currency, kind)
        if period_status == BAD:
            status, minor = BAD, None
        document = f"inv_fz_{next(IDS)}"
        expected.append((status, document, minor, currency[2]))
        rows.append(["cust_fz", start, end, amount[0], currency[0], kind[0], document])
    payload = _csv_bytes(["customer_id", "period_start", "period_end", "amount", "currency", "kind", "document_id"], rows, data.draw)
    _count("revenue", "files")
    _count("revenue", "rows", n)
    before = int(store.scalar("SELECT COUNT(*) FROM revenue_entries"))
    report = _import(store, payload, "revenue", tmp_path)
    if report is None:
        return
    documents = [d for _, d, _, _ in expected]
    stored = store.query(
        f"SELECT document_id, amount_minor, currency FROM revenue_entries WHERE document_id IN ({', '.join('?' for _ in documents)})",
        documents,
    ).set_index("document_id")
    for status, document, minor, currency in expected:
        present = document in stored.index
        if status == OK:
            assert present, f"valid revenue row {document} not imported: {report.errors[:3]}"
        if status == BAD:
            assert not present, f"invalid revenue row {document} imported"
        if present and minor is not None:
            assert (int(stored.loc[document, "amount_minor"]), stored.loc[document, "currency"]) == (minor, currency), document
    assert int(store.scalar("SELECT COUNT(*) FROM revenue_entries")) - before == len(stored)
    assert n - len(stored) == len(_rejected_rows(report))
    _count("revenue", "rows_stored", len(stored))
    _count("revenue", "rows_rejected", n - len(stored))
    _assert_idempotent(store, payload, "revenue", tmp_path)


@settings(max_examples=25 * SCALE, **FUZZ)
@given(data=st.data())
def test_revenue_csv_imports_exactly_its_valid_rows_sqlite(sqlite_store: Store, data: st.DataObject, tmp_path: Path) -> None:
    _revenue_test(sqlite_store, data, tmp_path)


@settings(max_examples=6 * SCALE, **FUZZ)
@given(data=st.data())
def test_revenue_csv_imports_exactly_its_valid_rows_postgresql(pg_store: Store, data: st.DataObject, tmp_path: Path) -> None:
    _revenue_test(pg_store, data, tmp_path)


# -- mapping ------------------------------------------------------------------------------------

SOURCES = st.sampled_from([("openai_project", OK, "openai_project"), ("openai_api_key", OK, "openai_api_key"),
                           ("openai_user", OK, "openai_user"), ("stripe_customer", OK, "stripe_customer"),
                           ("project", OK, "openai_project"), ("api_key", OK, "openai_api_key"), ("user", OK, "openai_user"),
                           ("stripe", OK, "stripe_customer"), ("bogus", BAD, None), ("", BAD, None),
                           ("OpenAI Project", AMB, "openai_project")])


def _mapping_test(store: Store, data: st.DataObject, tmp_path: Path) -> None:
    n = data.draw(st.integers(1, 12))
    rows, expected, seen = [], [], set()
    for _ in range(n):
        source = data.draw(SOURCES)
        customer = data.draw(NAMES)
        key = f"key_fz_{next(IDS)}" if not (expected and data.draw(st.booleans()) and data.draw(st.booleans())) else expected[-1][1]
        status = _row_status([source, customer])
        if status != BAD and (source[2], key) in seen:
            status = BAD  # a (source, key) repeated in the file: the later row is rejected
        if status != BAD:
            seen.add((source[2], key))
        expected.append((status, key, source[2], customer[2]))
        rows.append([source[0], key, customer[0]])
    payload = _csv_bytes(["source", "key", "customer_id"], rows, data.draw)
    _count("mapping", "files")
    _count("mapping", "rows", n)
    report = _import(store, payload, "mapping", tmp_path)
    if report is None:
        return
    keys = sorted({k for _, k, _, _ in expected})
    stored = store.query(f"SELECT source, key, customer_id FROM customer_mappings WHERE key IN ({', '.join('?' for _ in keys)})", keys)
    stored_pairs = {(s, k): c for s, k, c in stored.itertuples(index=False)}
    kept = 0
    for status, key, source, customer in expected:
        if status == OK:
            assert stored_pairs.get((source, key)) in (customer, str(customer).strip()), (source, key, report.errors[:3])
        if status in (OK, AMB) and (source, key) in stored_pairs:
            kept += 1
    assert kept == len(stored_pairs)
    assert n - kept == len(_rejected_rows(report))
    _count("mapping", "rows_stored", kept)
    _count("mapping", "rows_rejected", n - kept)
    _assert_idempotent(store, payload, "mapping", tmp_path)


@settings(max_examples=20 * SCALE, **FUZZ)
@given(data=st.data())
def test_mapping_csv_imports_exactly_its_valid_rows_sqlite(sqlite_store: Store, data: st.DataObject, tmp_path: Path) -> None:
    _mapping_test(sqlite_store, data, tmp_path)


@settings(max_examples=5 * SCALE, **FUZZ)
@given(data=st.data())
def test_mapping_csv_imports_exactly_its_valid_rows_postgresql(pg_store: Store, data: st.DataObject, tmp_path: Path) -> None:
    _mapping_test(pg_store, data, tmp_path)


# -- OpenAI cost export -------------------------------------------------------------------------

COST_AMOUNTS = st.sampled_from([
    ("0.123456", OK, Decimal("0.123456")), ("12", OK, Decimal(12)), ("0", OK, Decimal(0)), ("59200.0", OK, Decimal(59200)),
    ("0.000000000001", OK, Decimal("1e-12")), ("abc", BAD, None), ("", AMB, Decimal(0)), ("NaN", BAD, None), ("inf", BAD, None),
    ("-1.50", AMB, Decimal("-1.50")), ("1e3", AMB, Decimal(1000)), ("1,000.5", AMB, Decimal("1000.5")),
])
COST_TIMES = st.sampled_from([("1768435200", OK), ("2026-01-15T00:00:00Z", OK), ("2026-01-15", AMB), ("yesterday", BAD), ("", BAD)])


def _costs_test(store: Store, data: st.DataObject, tmp_path: Path) -> None:
    n = data.draw(st.integers(1, 10))
    rows, expected = [], []
    for _ in range(n):
        amount, (time, time_status) = data.draw(COST_AMOUNTS), data.draw(COST_TIMES)
        project = f"proj_fz_{next(IDS)}"
        status = _row_status([amount, ("", time_status, None)])
        expected.append((status, project, amount[2]))
        rows.append([time, amount[0], "usd", "gpt-4o, input", project])
    payload = _csv_bytes(["start_time", "amount_value", "amount_currency", "line_item", "project_id"], rows, data.draw)
    _count("openai-costs", "files")
    _count("openai-costs", "rows", n)
    report = _import(store, payload, "openai-costs", tmp_path)
    if report is None:
        return
    projects = [p for _, p, _ in expected]
    stored = store.query(f"SELECT project_id, amount_pico FROM billed_costs WHERE project_id IN ({', '.join('?' for _ in projects)})",
                         projects).set_index("project_id")
    for status, project, amount in expected:
        present = project in stored.index
        if status == OK and amount != 0:  # a zero-cost row may be skipped (counted in report.skipped)
            assert present, f"valid cost row {project} not imported: {report.errors[:3]}"
        if status == BAD:
            assert not present, f"invalid cost row {project} imported"
        if present:
            assert int(stored.loc[project, "amount_pico"]) == int(amount.scaleb(12)), project
    assert n - len(stored) == len(_rejected_rows(report)) + report.skipped
    assert report.skipped <= sum(1 for status, _, amount in expected if status != BAD and amount == 0), (rows, report.errors, report.notes)
    _count("openai-costs", "rows_stored", len(stored))
    _count("openai-costs", "rows_rejected", n - len(stored))
    _assert_idempotent(store, payload, "openai-costs", tmp_path)


@settings(max_examples=20 * SCALE, **FUZZ)
@given(data=st.data())
def test_openai_cost_csv_imports_exactly_its_valid_rows_sqlite(sqlite_store: Store, data: st.DataObject, tmp_path: Path) -> None:
    _costs_test(sqlite_store, data, tmp_path)


@settings(max_examples=5 * SCALE, **FUZZ)
@given(data=st.data())
def test_openai_cost_csv_imports_exactly_its_valid_rows_postgresql(pg_store: Store, data: st.DataObject, tmp_path: Path) -> None:
    _costs_test(pg_store, data, tmp_path)


# -- corpus of nasty files ----------------------------------------------------------------------

GENERATED: dict[str, Callable[[], bytes]] = {
    "ten-mb-single-line.csv": lambda: ("timestamp,customer_id,model,input_tokens,output_tokens\n2026-01-15T00:00:00Z,"
                                       + "x" * 10_000_000 + ",gpt-4o,1,1").encode(),
    "binary-random.csv": lambda: bytes((i * 7919 + 13) % 256 for i in range(65_536)),
    "xlsx-bytes.csv": lambda: b"PK\x03\x04\x14\x00\x06\x00\x08\x00\x00\x00!\x00" + b"[Content_Types].xml" + bytes(2048),
    "xls-bytes.csv": lambda: b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(4096),
    "utf16-usage.csv": lambda: "timestamp,customer_id,model,input_tokens,output_tokens\n2026-01-15T00:00:00Z,café,gpt-4o,10,5\n".encode("utf-16"),
    "mixed-encodings.csv": lambda: ("timestamp,customer_id,model,input_tokens,output_tokens\n2026-01-15T00:00:00Z,café,gpt-4o,10,5\n".encode()
                                    + "2026-01-16T00:00:00Z,café,gpt-4o,10,5\n".encode("latin-1")),
    "many-columns.csv": lambda: (",".join(f"c{i}" for i in range(5_000)) + "\n" + ",".join("1" for _ in range(5_000))).encode(),
    "nul-bytes.csv": lambda: b"timestamp,customer_id,model,input_tokens,output_tokens\n2026-01-15T00:00:00Z,ac\x00me,gpt-4o,10,5\n",
    "bug-ten-mb-header-line.csv": lambda: b"a," * 5_000_000,
}
GUARD_SECONDS = 180  # a hang guard, not a speed assertion
CORPUS_FIGURES = {"inputs": 0, "imported": 0, "rejected": 0}


def _corpus_names() -> list[str]:
    return sorted(p.name for p in CORPUS.iterdir()) + sorted(GENERATED)


@pytest.mark.parametrize("name", _corpus_names())
def test_nasty_csv_is_imported_or_rejected_clearly(name: str, sqlite_url: str, tmp_path: Path) -> None:
    """Every kind (and auto-detection) on each nasty file, in a child process with a hang guard."""
    path = CORPUS / name
    if name in GENERATED:
        path = tmp_path / name
        path.write_bytes(GENERATED[name]())
    open_store(sqlite_url).close()
    context = fork_context()
    results = context.Queue()
    child = context.Process(target=workers.import_csv_every_kind, args=(sqlite_url, str(path), str(tmp_path), results))
    child.start()
    outcomes = []
    try:
        while (item := results.get(timeout=GUARD_SECONDS)) is not None:
            outcomes.append(item)
    except queue.Empty:
        pytest.fail(f"{name}: no answer within {GUARD_SECONDS} s (hang)")
    finally:
        child.kill()
        child.join(30)
    for kind, outcome, error_type, message, changed in outcomes:
        CORPUS_FIGURES["inputs"] += 1
        CORPUS_FIGURES[outcome if outcome != "other-error" else "rejected"] += 1
        assert outcome != "other-error", f"{name} ({kind}): {error_type}\n{message}"
        if outcome == "rejected":
            assert message.strip() and not changed, f"{name} ({kind}): rejected but the database changed"
    store = open_store(sqlite_url)
    assert_consistent(store)
    assert integrity_ok(sqlite_url)
    store.close()


def test_record_csv_fuzz_figures() -> None:
    """Runs last in this file (pytest keeps file order): writes the counts of the run."""
    for kind, counts in FIGURES.items():
        record_figures(f"fuzz.csv.{kind}", kind="fuzz", inputs=counts["files"], **{k: v for k, v in counts.items() if k != "files"})
    if CORPUS_FIGURES["inputs"]:
        record_figures("fuzz.csv.corpus", kind="fuzz", **CORPUS_FIGURES, tracebacks=0)
