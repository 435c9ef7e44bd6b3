"""The vectorised reconciliation lines (`reconciliation._joined_fast`, issue 6) against the frame
path (`_joined_frames`) and against hand-computed values, on SQLite and PostgreSQL: several
projects and no project, a price change mid-month (two epochs), a dated snapshot and its model on
one line, priority and batch rows, an unpriced model, a row mixing priced and unpriced events,
a model without an output rate, bill rows in other currencies and in lower case, NULL amounts,
currencies, projects and line items, and whales whose sums (and, under a dearer catalog, whose
products tokens x rate) pass int64.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from walleta.analytics import reconciliation
from walleta.analytics.period import Period
from walleta.catalog import Catalog, load_catalog
from walleta.events import prepare_events
from walleta.store import Store

USD = 10**12
MARCH = Period.month("2026-03")
PRICES = """model,provider,unit,input_per_1m,cached_input_per_1m,output_per_1m,batch_input_per_1m,batch_output_per_1m,per_unit_price,effective_from,source
m-std,test,token,2,0.5,8,,,,,test
m-std,test,token,3,0.75,12,,,,2026-03-16,test
m-std,test,token_priority,4,1,16,,,,,test
m-inonly,test,token,1,,,,,,,test
m-whale,test,token,{whale},,{whale},,,,,test
"""
AUDIO = {11: 10_000}  # input audio tokens of EVENTS[11]
WHALE_TOKENS = 40_000_000_000  # x $100 per 1M tokens = 4e18 pico-dollars per row: three rows pass int64 together

EVENTS = [
    # day, project, model, tier, batch, input, cached, output, requests, customer, feature
    ("2026-03-10", "proj_a", "m-std", "default", 0, 1_000_000, 200_000, 100_000, 3, "c1", "chat"),
    ("2026-03-20", "proj_a", "m-std", "default", 0, 1_000_000, 200_000, 100_000, 3, "c1", "chat"),  # after the price change
    ("2026-03-20", "proj_a", "m-std-2026-01-01", "default", 0, 500_000, 0, 0, 1, "c2", "chat"),  # same line model
    ("2026-03-20", "proj_b", "m-std", "priority", 0, 100_000, 0, 10_000, 1, "c2", "chat"),
    ("2026-03-20", "proj_b", "m-std", "default", 1, 100_000, 0, 10_000, 1, "c2", "chat"),
    ("2026-03-21", "", "m-std", "default", 0, 50_000, 0, 0, 1, "c3", "chat"),
    ("2026-03-10", "proj_a", "gpt-99-unknown", "default", 0, 40_000, 0, 4_000, 2, "c1", "chat"),  # unpriced model
    ("2026-03-11", "proj_b", "m-inonly", "default", 0, 300_000, 0, 0, 1, "c1", "chat"),  # no output rate: all on 'other'
    ("2026-03-12", "proj_b", "m-inonly", "default", 0, 300_000, 0, 0, 1, "c1", "chat"),
    ("2026-03-12", "proj_b", "m-inonly", "default", 0, 300_000, 0, 1_000, 1, "c1", "chat"),  # unpriced event in the row
    ("2026-03-13", "proj_a", "m-std", "default", 0, 100_000, 0, 0, 1, "c1", "chat"),
    ("2026-03-13", "proj_a", "m-std", "default", 0, 10_000, 0, 500, 1, "c1", "chat"),  # audio tokens without an audio price: unpriced
    ("2026-03-15", "proj_w", "m-whale", "default", 0, WHALE_TOKENS, 0, 0, 1, "w1", "f1"),
    ("2026-03-15", "proj_w", "m-whale", "default", 1, 2 * WHALE_TOKENS, 0, 0, 1, "w2", "f2"),  # batch: half rate
    ("2026-03-15", "proj_w", "m-whale-2026-01-01", "default", 0, WHALE_TOKENS, 0, 0, 1, "w3", "f3"),
]

BILLS = [
    # day, project, line_item, amount pico, currency
    ("2026-03-10", "proj_a", "m-std, input", 2 * USD, "USD"),
    ("2026-03-10", "proj_a", "m-std-2026-01-01, cached_input_tokens", USD // 10, "usd"),
    ("2026-03-20", "proj_a", "m-std, output", USD, "USD"),
    ("2026-03-20", "proj_a", "m-std, output_tokens", USD, "USD"),  # same line: summed
    ("2026-03-11", "proj_b", "m-inonly, input", USD // 2, "USD"),
    ("2026-03-15", "proj_w", "m-whale, input", 9 * 10**18, "USD"),
    ("2026-03-15", "proj_w", "m-whale, input tokens", 9 * 10**18, "USD"),  # the bill's sum passes int64 too
    ("2026-03-22", "proj_c", "m-std, input", 7 * USD, "USD"),  # billed, never logged
    ("2026-03-12", "", "a line item without a comma", 3 * USD, "USD"),  # no project, no model
    ("2026-03-10", "proj_a", "m-std, input", 5 * USD, "EUR"),
    ("2026-03-10", "proj_a", "m-std, input", 6 * USD, "eur"),  # another group of the same currency
    ("2026-04-01", "proj_a", "m-std, input", USD, "USD"),  # after the period
]


def _catalog(folder: Path, whale_dollars: int = 100) -> Catalog:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "prices.csv").write_text(PRICES.format(whale=whale_dollars))
    return load_catalog(folder / "prices.csv", data_dir=folder)


def _write_usage(store: Store, catalog: Catalog) -> None:
    frame = pd.DataFrame([
        {"ts_us": int(pd.Timestamp(day, tz="UTC").value // 1000) + 3_600_000_000 + i, "project_id": project, "model": model,
         "service_tier": tier, "batch": batch, "input_tokens": inp, "cached_input_tokens": cached, "output_tokens": out,
         "input_audio_tokens": AUDIO.get(i, 0), "requests": requests, "customer_id": customer, "feature": feature, "request_id": f"vec_{i}"}
        for i, (day, project, model, tier, batch, inp, cached, out, requests, customer, feature) in enumerate(EVENTS)
    ])
    store.write_events(prepare_events(frame, catalog, source="test"))


def _bill_rows(bills: list[tuple[str, str | None, str | None, int | None, str | None]]) -> list[dict[str, object]]:
    return [{"uid": f"bill_{i}", "day": d, "project_id": p, "api_key_id": "", "line_item": item, "amount_pico": a, "currency": c,
             "quantity": None, "quantity_unit": "", "source": "test"} for i, (d, p, item, a, c) in enumerate(bills)]


def _same_as_frames(store: Store, period: Period, catalog: Catalog) -> pd.DataFrame:
    """The fast lines, checked equal to the frame path (values, order, dtypes, attrs) and to
    hold Python ints in the money columns."""
    fast = reconciliation._joined_fast(store, period, catalog)
    slow = reconciliation._joined_frames(store, period, catalog)
    assert fast is not None
    slow = slow.astype({c: object for c in slow.columns if isinstance(slow[c].dtype, pd.StringDtype)})
    pd.testing.assert_frame_equal(fast, slow)
    assert fast.attrs == slow.attrs
    for column in ("estimated_pico", "tokens", "billed_pico"):
        assert fast[column].dtype == object and all(type(v) is int for v in fast[column]), column
    for column in ("requests", "unpriced_requests", "unpriced_tokens"):
        assert fast[column].dtype == np.int64
    return fast


def _line(frame: pd.DataFrame, day: str, project: str, model: str, token_class: str) -> dict[str, object]:
    found = frame[(frame["day"] == day) & (frame["project_id"] == project) & (frame["line_model"] == model) & (frame["token_class"] == token_class)]
    assert len(found) == 1, (day, project, model, token_class)
    return found.iloc[0].to_dict()


def test_vectorised_lines_equal_the_frame_path_and_hand_values(store: Store, tmp_path: Path) -> None:
    catalog = _catalog(tmp_path / "catalog")
    _write_usage(store, catalog)
    store.upsert("billed_costs", _bill_rows(BILLS), ["uid"])
    lines = _same_as_frames(store, MARCH, catalog)
    keys = list(zip(lines["day"], lines["project_id"], lines["line_model"], lines["token_class"]))
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    assert lines.attrs["other_currencies"] == (2, ["EUR"])
    # Two price epochs: $2 per 1M input tokens before 16 March, $3 after (800,000 text input tokens).
    assert _line(lines, "2026-03-10", "proj_a", "m-std", "input")["estimated_pico"] == 800_000 * 2 * 10**6
    assert _line(lines, "2026-03-10", "proj_a", "m-std", "input")["billed_pico"] == 2 * USD  # the EUR rows stay out
    later = _line(lines, "2026-03-20", "proj_a", "m-std", "input")  # the snapshot's 500,000 tokens on the same line
    assert (later["estimated_pico"], later["tokens"], later["requests"]) == (1_300_000 * 3 * 10**6, 1_300_000, 4)
    assert _line(lines, "2026-03-20", "proj_a", "m-std", "output")["billed_pico"] == 2 * USD
    assert _line(lines, "2026-03-10", "proj_a", "m-std", "cached input")["billed_pico"] == USD // 10
    # Priority at $4 and batch at half of $3 on one line of project b.
    assert _line(lines, "2026-03-20", "proj_b", "m-std", "input")["estimated_pico"] == 100_000 * 4 * 10**6 + 100_000 * 3 * 10**6 // 2
    assert _line(lines, "2026-03-21", reconciliation.NO_PROJECT, "m-std", "input")["estimated_pico"] == 50_000 * 3 * 10**6
    unknown = _line(lines, "2026-03-10", "proj_a", "gpt-99-unknown", "input")
    assert (unknown["estimated_pico"], unknown["tokens"], unknown["unpriced_requests"], unknown["unpriced_tokens"]) == (0, 0, 2, 44_000)
    assert not ((lines["line_model"] == "gpt-99-unknown") & (lines["token_class"] != "input")).any()
    # No output rate: the priced cost is 'other' with its tokens unsplit; the bill's input line stands alone.
    other = _line(lines, "2026-03-11", "proj_b", "m-inonly", "other")
    assert (other["estimated_pico"], other["tokens"]) == (300_000 * 10**6, 300_000)
    assert _line(lines, "2026-03-11", "proj_b", "m-inonly", "input")["estimated_pico"] == 0
    # A row with an unpriced event: its priced cost on 'other', all its tokens unsplit, the unpriced request counted.
    mixed = _line(lines, "2026-03-12", "proj_b", "m-inonly", "other")
    assert (mixed["estimated_pico"], mixed["tokens"]) == (300_000 * 10**6, 601_000)
    assert _line(lines, "2026-03-12", "proj_b", "m-inonly", "input")["unpriced_requests"] == 1
    # The same with every rate known: the row's priced cost ($2 x 100,000 tokens) is 'other', not split.
    audio = _line(lines, "2026-03-13", "proj_a", "m-std", "other")
    assert (audio["estimated_pico"], audio["tokens"]) == (100_000 * 2 * 10**6, 110_500)
    assert not ((lines["day"] == "2026-03-13") & (lines["token_class"] == "output")).any()
    assert _line(lines, "2026-03-13", "proj_a", "m-std", "input")["unpriced_requests"] == 1
    # Whales: three rows of 4e18 on one line (a snapshot, a batch row), and two bill rows of 9e18.
    whale = _line(lines, "2026-03-15", "proj_w", "m-whale", "input")
    assert whale["estimated_pico"] == 3 * WHALE_TOKENS * 10**8 > 2**63
    assert whale["billed_pico"] == 18 * 10**18 > 2**63
    assert _line(lines, "2026-03-22", "proj_c", "m-std", "input")["estimated_pico"] == 0
    assert _line(lines, "2026-03-12", reconciliation.NO_PROJECT, "(no model)", "other")["billed_pico"] == 3 * USD
    assert not (lines["day"] > "2026-03-31").any()
    # Grouped views of the same lines are unchanged by where the lines came from.
    slow = reconciliation._joined_frames(store, MARCH, catalog)
    for by in (("day",), ("project_id", "line_item"), ("day", "project_id", "line_item")):
        pd.testing.assert_frame_equal(reconciliation.reconcile(store, MARCH, catalog, by=by, lines=lines),
                                      reconciliation.reconcile(store, MARCH, catalog, by=by, lines=slow), check_dtype=False)


def test_products_beyond_int64_under_a_dearer_catalog(store: Store, tmp_path: Path) -> None:
    """Usage priced at $100 per 1M whale tokens, reconciled with a catalog at $1,000: each row's
    tokens x rate passes int64, and 'other' carries the (negative) rest exactly."""
    _write_usage(store, _catalog(tmp_path / "priced"))
    dearer = _catalog(tmp_path / "dearer", whale_dollars=1000)
    lines = _same_as_frames(store, Period.days("2026-03-15", "2026-03-15"), dearer)
    whale_input = _line(lines, "2026-03-15", "proj_w", "m-whale", "input")["estimated_pico"]
    assert whale_input == WHALE_TOKENS * 10**9 + 2 * WHALE_TOKENS * 10**9 // 2 + WHALE_TOKENS * 10**9 == 12 * 10**19
    assert _line(lines, "2026-03-15", "proj_w", "m-whale", "other")["estimated_pico"] == 12 * 10**18 - 12 * 10**19
    assert lines.attrs["other_currencies"] == (0, [])


def _allow_nulls(store: Store) -> None:
    """Lift NOT NULL from the bill columns reconciliation reads (a database edited by hand or
    written by another tool): PostgreSQL alters them, SQLite rebuilds the (empty) table."""
    with store.transaction() as cur:
        if store.dialect == "postgresql":
            cur.execute("ALTER TABLE billed_costs ALTER COLUMN project_id DROP NOT NULL, ALTER COLUMN line_item DROP NOT NULL, "
                        "ALTER COLUMN amount_pico DROP NOT NULL, ALTER COLUMN currency DROP NOT NULL")
        else:
            cur.execute("DROP TABLE billed_costs")
            cur.execute("CREATE TABLE billed_costs (id INTEGER PRIMARY KEY, uid VARCHAR(255) NOT NULL UNIQUE, day VARCHAR(10) NOT NULL, "
                        "project_id TEXT, api_key_id TEXT NOT NULL, line_item TEXT, amount_pico BIGINT, currency VARCHAR(3), "
                        "quantity FLOAT, quantity_unit TEXT NOT NULL, source TEXT NOT NULL, import_id BIGINT)")
            cur.execute("CREATE INDEX ix_billed_costs_day ON billed_costs (day, project_id, line_item, currency, amount_pico)")


def test_null_bill_values_read_as_the_frame_path_reads_them(store: Store, tmp_path: Path) -> None:
    catalog = _catalog(tmp_path / "catalog")
    _write_usage(store, catalog)
    _allow_nulls(store)
    store.upsert("billed_costs", _bill_rows([
        ("2026-03-10", "proj_a", "m-std, input", 2 * USD, None),  # no currency: USD
        ("2026-03-10", "proj_a", "m-std, output", None, "USD"),  # no amount: 0, the line still shown
        ("2026-03-11", None, "m-std, input", USD, "USD"),  # no project
        ("2026-03-11", None, "m-std, input", 4 * USD, "JPY"),
        ("2026-03-11", "", "m-std, input", 4 * USD, "JPY"),  # NULL and '' projects: two groups
        ("2026-03-13", "proj_a", None, USD, "USD"),  # no line item
    ]), ["uid"])
    lines = _same_as_frames(store, MARCH, catalog)
    assert _line(lines, "2026-03-10", "proj_a", "m-std", "input")["billed_pico"] == 2 * USD
    assert _line(lines, "2026-03-10", "proj_a", "m-std", "output")["billed_pico"] == 0
    assert _line(lines, "2026-03-11", reconciliation.NO_PROJECT, "m-std", "input")["billed_pico"] == USD
    assert _line(lines, "2026-03-13", "proj_a", "(no model)", "other")["billed_pico"] == USD
    assert lines.attrs["other_currencies"] == (2, ["JPY"])


def test_bill_only_and_usage_only_periods(store: Store, tmp_path: Path) -> None:
    catalog = _catalog(tmp_path / "catalog")
    assert reconciliation._joined_fast(store, MARCH, catalog) is None  # nothing at all
    store.upsert("billed_costs", _bill_rows([("2026-03-10", "proj_a", "m-std, input", USD, "EUR")]), ["uid"])
    assert reconciliation._joined_fast(store, MARCH, catalog) is None  # no line: the frame path answers
    store.upsert("billed_costs", _bill_rows([("2026-03-10", "proj_a", "m-std, input", USD, "EUR"),
                                             ("2026-03-09", "proj_a", "m-std, input", USD, "USD")]), ["uid"])
    bill_only = _same_as_frames(store, MARCH, catalog)
    assert bill_only["estimated_pico"].tolist() == [0] and bill_only.attrs["other_currencies"] == (1, ["EUR"])
    _write_usage(store, catalog)
    usage_only = _same_as_frames(store, Period.days("2026-03-20", "2026-03-21"), catalog)
    assert usage_only["billed_pico"].tolist() == [0] * len(usage_only)


def test_groups_by_lexsort_equal_groups_by_one_integer_key() -> None:
    """`_groups` combines the key columns into one int64 while their sizes allow and sorts
    rows with `lexsort` beyond: both give the same groups in the same (lexicographic) order."""
    rng = np.random.default_rng(6)
    keys = [rng.integers(0, size, 500) for size in (7, 3, 11, 4)]
    small = reconciliation._groups(keys, [7, 3, 11, 4])
    huge = reconciliation._groups(keys, [2**40, 3, 2**40, 4])  # 2^82 combinations: lexsort
    assert small[2] == huge[2] == len({tuple(row) for row in np.stack(keys, axis=1).tolist()})
    np.testing.assert_array_equal(small[0], huge[0])
    firsts = [tuple(k[small[1]].tolist()) for k in keys]
    assert list(zip(*firsts)) == sorted(set(zip(*(k.tolist() for k in keys))))
    for inverse, representative, _ in (small, huge):
        assert all((k[representative[inverse]] == k).all() for k in keys)


def _tricky_lines() -> pd.DataFrame:
    """Lines whose line items sort unlike their (line_model, token_class) pairs ('m b' < 'm,'
    but 'm' < 'm b'), with equal gaps to tie-break by key, upper/lower case and non-ASCII
    projects, and money beyond int64."""
    rows = [
        ("2026-03-02", "proj_b", "m", "input", 5, 7, 1, 0, 0), ("2026-03-02", "proj_b", "m b", "input", 5, 7, 1, 0, 0),
        ("2026-03-01", "Proj_b", "m", "output", 0, 2, 0, 0, 0), ("2026-03-01", "proj_é", "m", "other", 2, 0, 3, 0, 0),
        ("2026-03-01", "proj_b", "m b", "cached input", 2**63, 2**63 + 2, 1, 2, 9), ("2026-03-02", "proj_b", "m", "input", 1, 1, 1, 0, 0),
        ("2026-03-03", "(no project)", "gpt-99", "input", 0, 0, 0, 4, 40), ("2026-03-03", "proj_a", "m", "input", 3, 3, 2**62, 0, 0),
        ("2026-03-01", "proj_é", "m", "input", 2**62, 2**62, 0, 0, 0),
    ]
    return pd.DataFrame({
        "day": pd.Series([r[0] for r in rows], dtype=object), "project_id": pd.Series([r[1] for r in rows], dtype=object),
        "line_model": pd.Series([r[2] for r in rows], dtype=object), "token_class": pd.Series([r[3] for r in rows], dtype=object),
        "estimated_pico": pd.Series([r[4] for r in rows], dtype=object), "tokens": pd.Series([r[6] for r in rows], dtype=object),
        "requests": np.ones(len(rows), dtype=np.int64), "unpriced_requests": np.array([r[7] for r in rows], dtype=np.int64),
        "unpriced_tokens": np.array([r[8] for r in rows], dtype=np.int64), "billed_pico": pd.Series([r[5] for r in rows], dtype=object),
    })


BY_CHOICES = [("day",), ("project_id",), ("line_item",), ("day", "project_id"), ("project_id", "line_item"), ("day", "line_item"),
              ("day", "project_id", "line_item")]


def test_reconcile_numpy_grouping_equals_group_sum(store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`reconcile` groups text keys with numpy (`_grouped_lines`, a stable sort by gap); the
    pandas path (`group_sum`, `sort_values`) it replaced gives the same frames."""
    catalog = _catalog(tmp_path / "catalog")
    _write_usage(store, catalog)
    store.upsert("billed_costs", _bill_rows(BILLS), ["uid"])
    frames = [_tricky_lines(), reconciliation._joined_fast(store, MARCH, catalog)]
    fast = [[reconciliation.reconcile(store, MARCH, catalog, by=by, lines=lines) for by in BY_CHOICES] for lines in frames]
    monkeypatch.setattr(reconciliation, "_grouped_lines", lambda *args: None)  # the pandas path
    for lines, results in zip(frames, fast):
        for by, result in zip(BY_CHOICES, results):
            pd.testing.assert_frame_equal(result, reconciliation.reconcile(store, MARCH, catalog, by=by, lines=lines))
    by_item = fast[0][BY_CHOICES.index(("line_item",))]  # every gap is 2 but gpt-99's: line item order ('m b' < 'm,')
    assert by_item["line_item"].tolist() == ["m b, cached input", "m b, input", "m, input", "m, other", "m, output", "gpt-99, input"]
    assert by_item["estimated_pico"].tolist()[0] == 2**63 and by_item["tokens"].tolist()[2] == 2**62 + 2
    by_project = fast[0][BY_CHOICES.index(("project_id",))]
    assert by_project["project_id"].tolist() == ["proj_b", "Proj_b", "proj_é", "(no project)", "proj_a"]
    assert by_project["difference_pico"].tolist()[0] == 6


def test_reconcile_with_missing_keys_takes_the_pandas_path(store: Store) -> None:
    lines = _tricky_lines()
    lines.loc[0, "project_id"] = None  # group_sum leaves the row out, as before
    projects = reconciliation.reconcile(store, MARCH, load_catalog(), by=("project_id",), lines=lines)
    assert None not in projects["project_id"].tolist() and int(projects["unpriced_tokens"].sum()) == 49


def test_the_remembered_lines_are_stamped_with_the_bill_rows_they_read(store: Store, tmp_path: Path) -> None:
    """The lines of a closed month are remembered under a digest of the bill rows that the
    computation itself reads: re-importing the same bill (on PostgreSQL a new row version,
    possibly elsewhere in the table) keeps them; a changed amount, currency or line item does not."""
    from walleta.analytics import closed_months

    catalog = _catalog(tmp_path / "catalog")
    _write_usage(store, catalog)
    store.write_events(prepare_events(pd.DataFrame([{"ts_us": int(pd.Timestamp("2026-04-02", tz="UTC").value // 1000), "model": "m-std",
                                                      "input_tokens": 10, "request_id": "april"}]), catalog, source="test"))
    store.upsert("billed_costs", _bill_rows(BILLS), ["uid"])
    closed_months.cache_clear()

    def lines(hit: bool) -> pd.DataFrame:
        before = closed_months.cache_info("reconciliation.lines")
        got = reconciliation.reconciliation_lines(store, MARCH, catalog)
        after = closed_months.cache_info("reconciliation.lines")
        assert (after["hits"] - before["hits"], after["misses"] - before["misses"]) == ((1, 0) if hit else (0, 1))
        pd.testing.assert_frame_equal(got, reconciliation._joined_frames(store, MARCH, catalog).astype(
            {c: object for c in ("day", "project_id", "line_model", "token_class")}))
        return got

    first = lines(hit=False)
    lines(hit=True)
    store.upsert("billed_costs", _bill_rows(BILLS)[::-1], ["uid"])  # the same rows again, written in another order
    store.upsert("billed_costs", _bill_rows(BILLS)[:3], ["uid"])
    lines(hit=True)
    changed = [list(b) for b in BILLS]
    changed[2][3] = 3 * USD  # 20 March output: $1 -> $3
    store.upsert("billed_costs", _bill_rows([tuple(b) for b in changed]), ["uid"])
    assert _line(lines(hit=False), "2026-03-20", "proj_a", "m-std", "output")["billed_pico"] == 4 * USD
    assert _line(first, "2026-03-20", "proj_a", "m-std", "output")["billed_pico"] == 2 * USD
    changed[9][4] = "GBP"
    store.upsert("billed_costs", _bill_rows([tuple(b) for b in changed]), ["uid"])
    assert lines(hit=False).attrs["other_currencies"] == (2, ["EUR", "GBP"])
    changed[4][2] = "m-inonly, output"
    store.upsert("billed_costs", _bill_rows([tuple(b) for b in changed]), ["uid"])
    assert _line(lines(hit=False), "2026-03-11", "proj_b", "m-inonly", "output")["billed_pico"] == USD // 2
    lines(hit=True)
    # Outside SQLite (whose read follows the bill's index) the rows are put in one order first.
    bill = reconciliation._PeriodBill(store, MARCH)
    reordered = reconciliation._PeriodBill(store, MARCH)
    reordered._rows = {name: values[::-1] for name, values in bill.rows().items()}
    assert (reordered.digest() == bill.digest()) == (store.dialect != "sqlite")


def test_reconcile_keeps_the_dtype_of_arrow_string_keys(store: Store) -> None:
    lines = _tricky_lines()
    arrow = lines.astype({"day": "str", "project_id": "str"})
    for by in (("day",), ("project_id", "line_item")):
        plain = reconciliation.reconcile(store, MARCH, load_catalog(), by=by, lines=lines)
        other = reconciliation.reconcile(store, MARCH, load_catalog(), by=by, lines=arrow)
        assert isinstance(other[by[0]].dtype, pd.StringDtype) and plain[by[0]].dtype == object
        pd.testing.assert_frame_equal(plain, other, check_dtype=False)
