"""The live usage log and the OpenAI import never count the same day twice (walleta.sources.usage_rule)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from walleta.catalog import load_catalog
from walleta.sources.csv_import import import_csv
from walleta.store import open_store

from .capture_harness import Harness

HEADER = "start_time,end_time,project_id,num_model_requests,api_key_id,model,batch,input_tokens,output_tokens\n"


def _activity_csv(path: Path, days: list[dt.date]) -> Path:
    """A dashboard activity export with one bucket of 1,000 input tokens per day."""
    lines = [HEADER]
    for day in days:
        start = int(dt.datetime.combine(day, dt.time(), tzinfo=dt.timezone.utc).timestamp())
        lines.append(f"{start},{start + 86_400},proj_acme,3,key_acme,gpt-5-mini-2025-08-07,FALSE,1000,100\n")
    path.write_text("".join(lines))
    return path


def test_first_log_write_to_a_day_the_api_filled_sets_the_api_rows_aside(db_url: str, tmp_path: Path) -> None:
    store = open_store(db_url)
    catalog = load_catalog()
    today = dt.datetime.now(dt.timezone.utc).date()
    yesterday = today - dt.timedelta(days=1)
    import_csv(store, _activity_csv(tmp_path / "activity.csv", [yesterday, today]), catalog=catalog)
    assert store.scalar("SELECT COUNT(*) FROM usage_events WHERE source = 'openai_export'") == 2

    h = Harness(store, catalog=catalog)
    h.client.embeddings.create(model="text-embedding-3-small", input="hello world")
    logged = [row for row in h.rows() if row["source"] == "log"]
    h.close()
    logged_day = store.scalar("SELECT day FROM usage_events WHERE source = 'log'")
    assert len(logged) == 1

    expected = [{"day": yesterday.isoformat(), "source": "openai_export"}]  # a day without log usage keeps the API's
    if logged_day != today.isoformat():  # the call crossed midnight: today has no log usage
        expected.append({"day": today.isoformat(), "source": "openai_export"})
    expected.append({"day": logged_day, "source": "log"})  # the logged day counts the log only
    assert store.query("SELECT day, source FROM usage_events ORDER BY day, source").to_dict("records") == expected
    rollup_input = store.scalar(
        store.sql("SELECT CAST(SUM(input_tokens) AS BIGINT) FROM rollup_customer_day WHERE day = ?"), [logged_day]
    )
    assert int(rollup_input) == int(logged[0]["input_tokens"])  # not 1,000 + the log's
    assert store.scalar("SELECT COUNT(*) FROM openai_usage_buckets") == 2  # kept for reconciliation


def test_log_days_without_api_usage_leave_everything_alone(sqlite_url: str, tmp_path: Path) -> None:
    store = open_store(sqlite_url)
    catalog = load_catalog()
    long_ago = dt.date(2025, 1, 15)
    import_csv(store, _activity_csv(tmp_path / "activity.csv", [long_ago]), catalog=catalog)
    h = Harness(store, catalog=catalog)
    for _ in range(3):
        h.client.embeddings.create(model="text-embedding-3-small", input="x")
    h.rows()
    h.close()
    sources = dict(store.query("SELECT source, COUNT(*) AS n FROM usage_events GROUP BY source").itertuples(index=False, name=None))
    assert sources == {"openai_export": 1, "log": 3}
