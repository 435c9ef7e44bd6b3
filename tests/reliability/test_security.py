"""Security: hostile names, planted secrets, CSV formula injection.

- Hostile customer, feature, model, project and request names (quotes, `'; DROP TABLE`, unicode,
  control characters, placeholders, very long) round-trip unchanged through every write path and
  the queries on top of them: all SQL is parameterised.
- Planted API keys (`sk-test-PLANTED-...`, `sk_live_PLANTED...`, a database password) never
  appear in the database file, logs, exception messages, CLI output or spill files, on every code
  path driven here: capture with a key (successful, failing and unreachable API, database away),
  the Stripe import and meter push against failing servers, a bad database URL.
- Exported CSVs neutralise formula injection (`walleta.export`, the CLI's CSV output).
"""

from __future__ import annotations

import csv
import io
import logging
import time
from pathlib import Path
from typing import Any

import httpx2
import openai
import pandas as pd
import pytest
from sqlalchemy import inspect

import walleta
from walleta import cli
from walleta.catalog import load_catalog
from walleta.errors import WalletaError, redact
from walleta.events import record_events
from walleta.export import neutralise_cell, neutralise_formulas, to_csv_bytes
from walleta.fx import load_fx
from walleta.headline import headline
from walleta.meters import Meter, push_meter
from walleta.sources.openai_usage import RetryPolicy, import_openai
from walleta.sources.openai_usage import make_client as openai_client
from walleta.sources.stripe_import import import_stripe
from walleta.sources.stripe_import import make_client as stripe_client
from walleta.store import Store, open_store

from ..fakes.openai_admin import Failure, FakeOpenAIAdmin, page
from ..fakes.stripe_server import FakeStripe
from ..openai_fake import FakeOpenAI
from .support import record_figures, sqlite_path

HOSTILE = [
    "O'Brien & Sons",
    'Robert"); DROP TABLE usage_events; --',
    "'; DROP TABLE customers; --",
    "x' OR '1'='1",
    "1; DELETE FROM rollup_customer_day",
    "100%_\\%_wild",
    "?",
    "%s %(name)s $1 :name {0}",
    "客户 ✓ Ünïcödé ß",
    "emoji 🧾💸👩🏽‍💻",
    "\u202eright-to-left override",
    "zero\u200bwidth",
    "tab\tsep",
    "line\nbreak\r\nwindows",
    "bell\x07 escape\x1b[31m del\x7f ctrl\x01\x1f",
    '=HYPERLINK("http://evil.invalid","click")',
    "@SUM(1+1)",
    "-2+3",
    "  padded  ",
    "(unattributed)-lookalike",
    "L" * 255,
]
PLANTED = {
    "openai": "sk-test-PLANTED-9f3b2c1d0e4a5b6c7d8e9f00112233445566",
    "openai_admin": "sk-admin-PLANTED-a1b2c3d4e5f60718293a4b5c6d7e8f90",
    "stripe": "sk_live_PLANTED51Habcdefghijklmnopqrstuvwxyz0123456789",
    "stripe_restricted": "rk_live_PLANTED51Hzyxwvutsrqponmlkjihgfedcba9876543210",
    "db_password": "PLANTEDdbPassw0rd",
}
MESSAGES = [{"role": "user", "content": "Hello"}]


def _hostile_frame() -> pd.DataFrame:
    n = len(HOSTILE)
    return pd.DataFrame(
        {
            "ts_us": [1_767_225_600_000_000 + i * 3_600_000_000 for i in range(n)],
            "customer_id": HOSTILE,
            "feature": list(reversed(HOSTILE)),
            "model": ["gpt-4o" if i % 3 else HOSTILE[i] for i in range(n)],  # hostile model names are unpriced
            "project_id": HOSTILE,
            "user_id": list(reversed(HOSTILE)),
            "request_id": [f"req_'\";--{i}" for i in range(n)],
            "input_tokens": [1000 + i for i in range(n)],
            "output_tokens": [10 * i for i in range(n)],
        }
    )


def test_hostile_names_round_trip_through_writes_and_queries(store: Store) -> None:
    tables_before = set(inspect(store.engine).get_table_names())
    frame = _hostile_frame()
    result = record_events(store, frame, load_catalog(), source="file")
    assert result.inserted == len(frame)
    again = record_events(store, frame, load_catalog(), source="file")
    assert again.skipped == len(frame)  # idempotent even with quotes in the request ids

    back = store.query(
        "SELECT customer_id, feature, model, project_id, user_id, request_id, uid FROM usage_events ORDER BY ts_us"
    )
    for column in ("customer_id", "feature", "model", "project_id", "user_id", "request_id"):
        assert back[column].tolist() == frame[column].tolist(), column
    assert back["uid"].tolist() == [f"req:{r}" for r in frame["request_id"]]
    for name in HOSTILE:  # parameterised lookups find exactly the one row
        assert store.scalar("SELECT COUNT(*) FROM usage_events WHERE customer_id = ?", [name]) == 1
        assert store.scalar("SELECT COUNT(*) FROM rollup_customer_month_feature WHERE customer_id = ?", [name]) == 1
    rollup_keys = store.query("SELECT customer_id FROM rollup_customer_day")["customer_id"].tolist()
    assert sorted(rollup_keys) == sorted(HOSTILE)
    unpriced = store.query("SELECT model FROM rollup_customer_month_model WHERE unpriced_events > 0")["model"].tolist()
    assert sorted(unpriced) == sorted(HOSTILE[i] for i in range(len(HOSTILE)) if i % 3 == 0)
    assert set(inspect(store.engine).get_table_names()) == tables_before
    assert headline(store, load_fx()).customers == len(HOSTILE)
    record_figures(f"security.hostile_names[{store.dialect}]", kind="security", inputs=len(HOSTILE))


@pytest.mark.parametrize("length", [1_000, 20_000])
def test_very_long_names_round_trip(store: Store, length: int) -> None:
    """Names far beyond any UI limit are stored whole (rollup keys are TEXT since schema 3)."""
    name = ("ü" + "x" * 9) * (length // 10)
    frame = pd.DataFrame({"ts_us": [1_767_225_600_000_000], "customer_id": [name], "feature": [name],
                          "model": ["gpt-4o"], "input_tokens": [5]})
    record_events(store, frame, load_catalog(), source="file")
    assert store.query("SELECT customer_id, feature FROM usage_events").iloc[0].tolist() == [name, name]
    assert store.query("SELECT customer_id FROM rollup_customer_day")["customer_id"].tolist() == [name]


def test_long_request_ids_keep_their_idempotency(store: Store) -> None:
    """A request id longer than the uid column (proxies, custom ids) must still import exactly once."""
    ids = ["req_" + "a" * 80, "req_" + "a" * 79 + "b"]
    frame = pd.DataFrame({"ts_us": [1_767_225_600_000_000] * 2, "model": ["gpt-4o"] * 2, "input_tokens": [5, 6],
                          "request_id": ids})
    record_events(store, frame, load_catalog(), source="log")
    record_events(store, frame, load_catalog(), source="log")
    assert sorted(store.query("SELECT request_id FROM usage_events")["request_id"].tolist()) == ids


def test_capture_keeps_hostile_attribution_unchanged(sqlite_url: str) -> None:
    fake = FakeOpenAI(record_requests=False)
    client = openai.OpenAI(api_key=PLANTED["openai"], max_retries=0,
                           http_client=httpx2.Client(transport=httpx2.MockTransport(fake.handler)))
    walleta.instrument(client, store=sqlite_url, flush_interval=0.05)
    for name in HOSTILE:
        with walleta.attribute(customer=name, feature=name, user=name):
            client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    client.close()
    store = open_store(sqlite_url)
    back = store.query("SELECT customer_id, feature, user_id FROM usage_events ORDER BY id")
    assert back["customer_id"].tolist() == HOSTILE and back["feature"].tolist() == HOSTILE
    assert back["user_id"].tolist() == HOSTILE
    store.close()


def test_capture_one_overlong_customer_does_not_block_the_others(pg_url: str, tmp_path: Path) -> None:
    fake = FakeOpenAI(record_requests=False)
    client = openai.OpenAI(api_key="sk-test", max_retries=0,
                           http_client=httpx2.Client(transport=httpx2.MockTransport(fake.handler)))
    walleta.instrument(client, store=pg_url, flush_interval=0.05, spill_dir=str(tmp_path))
    for customer in ("acme", "c" * 300, "globex"):
        with walleta.attribute(customer=customer):
            client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    client.close()
    store = open_store(pg_url)
    stored = set(store.query("SELECT customer_id FROM usage_events")["customer_id"])
    store.close()
    assert {"acme", "globex"} <= stored
    assert "c" * 300 in stored  # and the long one is stored whole (identifier columns are TEXT)


# -- planted secrets ----------------------------------------------------------------------------


def _assert_no_secret(where: str, text: str | bytes) -> None:
    data = text.encode("utf-8", "replace") if isinstance(text, str) else text
    for name, secret in PLANTED.items():
        assert secret.encode() not in data, f"the {name} key leaked into {where}"
    assert b"PLANTED" not in data, f"part of a planted secret leaked into {where}"


def _database_bytes(url: str) -> bytes:
    """Every byte of a SQLite database (main file, WAL); '' for other databases."""
    path = sqlite_path(url)
    if path is None:
        return b""
    return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*") if p.is_file())


def _database_text(store: Store) -> str:
    """Every text value in every table (works on PostgreSQL too)."""
    parts = []
    for table in inspect(store.engine).get_table_names():
        parts.append(store.query(f"SELECT * FROM {table}").to_csv(index=False))
    return "\n".join(parts)


def _echo_key(request: httpx2.Request) -> httpx2.Response:
    """A hostile proxy: answers 401 with the full Authorization header in its error message."""
    key = request.headers.get("authorization", "")
    body = {"error": {"message": f"Incorrect API key provided: {key}", "type": "invalid_request_error", "code": "invalid_api_key"}}
    return httpx2.Response(401, json=body, headers={"x-request-id": "req_echo"})


def test_capture_never_stores_or_logs_the_api_key(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    url = f"sqlite:///{tmp_path / 'capture.db'}"
    fake = FakeOpenAI(record_requests=False)
    ok = openai.OpenAI(api_key=PLANTED["openai"], max_retries=0,
                       http_client=httpx2.Client(transport=httpx2.MockTransport(fake.handler)))
    walleta.instrument(ok, store=url, flush_interval=0.05)
    echo = openai.OpenAI(api_key=PLANTED["openai"], max_retries=0, project="proj_x",
                         http_client=httpx2.Client(transport=httpx2.MockTransport(_echo_key)))
    walleta.instrument(echo, store=url, flush_interval=0.05)
    with walleta.attribute(customer="acme", feature="chat"):
        ok.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        ok.embeddings.create(model="text-embedding-3-small", input="hi")
        with pytest.raises(openai.InternalServerError):
            ok.chat.completions.create(model="error-500", messages=MESSAGES)
        with pytest.raises(openai.AuthenticationError) as info:
            echo.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    ok.close()
    echo.close()
    assert PLANTED["openai"] in str(info.value)  # the API echoed it: the test is sharp
    store = open_store(url)
    assert store.scalar("SELECT COUNT(*) FROM usage_events") == 4
    _assert_no_secret("the database", _database_text(store))
    store.close()
    _assert_no_secret("the SQLite file", _database_bytes(url))
    _assert_no_secret("the logs", caplog.text)


def test_capture_spill_files_never_hold_the_api_key(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    spill = tmp_path / "spill"
    spill.mkdir()
    away = f"sqlite:///{tmp_path / 'missing-folder' / 'walleta.db'}"  # the database cannot be opened
    fake = FakeOpenAI(record_requests=False)
    client = openai.OpenAI(api_key=PLANTED["openai"], max_retries=0,
                           http_client=httpx2.Client(transport=httpx2.MockTransport(fake.handler)))
    walleta.instrument(client, store=away, flush_interval=0.05, spill_dir=str(spill))
    with walleta.attribute(customer="acme"):
        for _ in range(3):
            client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    client.close()
    files = [p for p in spill.rglob("*") if p.is_file()]
    assert files, "the recorder should have spilled the events it could not write"
    for path in files:
        _assert_no_secret(f"spill file {path.name}", path.read_bytes())
    _assert_no_secret("the logs", caplog.text)


def _seed_customers_for_push(store: Store) -> None:
    store.upsert("customers", [{"customer_id": "acme", "name": "Acme", "email": "", "stripe_customer_id": "cus_A",
                                "plan": "", "signup_date": "", "source": "test"}], ["customer_id"])
    two_days_ago = (int(time.time()) // 86_400 - 2) * 86_400_000_000 + 3_600_000_000
    frame = pd.DataFrame({"ts_us": [two_days_ago], "customer_id": ["acme"], "model": ["gpt-4o"],
                          "input_tokens": [1000], "request_id": ["req_push_1"]})
    record_events(store, frame, load_catalog(), source="log")


def _run_stripe_cli(url: str, base: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> str:
    """`walleta import stripe` and `walleta push stripe-meter` against `base`; both must fail
    with one 'error:' line. Returns everything they printed (and any escaped exception)."""
    monkeypatch.setenv("STRIPE_API_KEY", PLANTED["stripe"])
    monkeypatch.setenv("WALLETA_STRIPE_API_BASE", base)
    outputs = []
    for argv in (["-v", "--db", url, "import", "stripe", "--full"],
                 ["-v", "--db", url, "push", "stripe-meter", "--meter", "llm_tokens", "--settle-minutes", "0"]):
        try:
            status_code = cli.main(argv)
        except Exception as exc:  # noqa: BLE001 - an escaped exception must not carry the key either
            outputs.append(f"{type(exc).__name__}: {exc}")
            status_code = -1
        captured = capsys.readouterr()
        outputs += [captured.out, captured.err]
        assert status_code == 1, (argv, captured.err[-2000:])
        assert captured.err.startswith("error: ") or "\nerror: " in captured.err
    return "\n".join(outputs)


def _failing_stripe(fake: FakeStripe, status: int, message: str) -> None:
    body = {"error": {"type": "invalid_request_error" if status == 401 else "api_error", "message": message}}
    fake.fail("GET", "/", status, times=1000, body=body)
    fake.fail("POST", "/", status, times=1000, body=body)


@pytest.mark.parametrize("server", ["refused", "http-500", "http-401"])
def test_stripe_cli_never_prints_logs_or_stores_the_key(
    server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    url = f"sqlite:///{tmp_path / 'stripe.db'}"
    store = open_store(url)
    _seed_customers_for_push(store)
    store.close()
    with FakeStripe() as fake:
        base = "http://127.0.0.1:9" if server == "refused" else fake.url  # port 9: nothing listens
        if server != "refused":
            masked = "sk_live_" + "*" * 20 + PLANTED["stripe"][-4:]  # what Stripe itself answers
            _failing_stripe(fake, int(server[-3:]), f"Invalid API Key provided: {masked}")
        output = _run_stripe_cli(url, base, monkeypatch, capsys)
    _assert_no_secret("CLI output", output)
    _assert_no_secret("the logs", caplog.text)
    _assert_no_secret("the SQLite file", _database_bytes(url))
    record_figures(f"security.stripe_cli_key[{server}]", kind="security", code_paths=2)


def test_stripe_cli_redacts_a_key_the_server_echoes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    url = f"sqlite:///{tmp_path / 'stripe.db'}"
    store = open_store(url)
    _seed_customers_for_push(store)
    store.close()
    with FakeStripe() as fake:
        _failing_stripe(fake, 401, f"Invalid API Key provided: {PLANTED['stripe']}")
        output = _run_stripe_cli(url, fake.url, monkeypatch, capsys)
    _assert_no_secret("CLI output", output)


def test_redact_masks_configured_and_key_shaped_secrets() -> None:
    text = (f"Incorrect API key provided: Bearer {PLANTED['openai']}; stripe {PLANTED['stripe']} "
            f"{PLANTED['stripe_restricted']} whsec_PLANTEDabcdef0123 sk-admin-PLANTED-x1y2z3w4 sk_test_PLANTED0123")
    clean = redact(text, [PLANTED["openai_admin"], None, ""])
    _assert_no_secret("redact()", clean)
    assert "Bearer sk-****" in clean and "sk_live_****6789" in clean and "rk_live_****" in clean
    assert redact("uses sk-learn, risk-free, task_test_plan") == "uses sk-learn, risk-free, task_test_plan"
    assert redact(f"db says {PLANTED['db_password']}!", [PLANTED["db_password"]]) == "db says ****!"  # any shape
    body = '{"authentication_token": "mes_PLANTED_1", "input_tokens": "12", "client_secret": "pi_PLANTED"}'
    assert redact(body) == '{"authentication_token": "****", "input_tokens": "12", "client_secret": "****"}'


def _echo(key: str) -> dict[str, Any]:
    """An error body from a hostile proxy that echoes the key it received (twice)."""
    return {"error": {"type": "invalid_request_error", "message": f"Incorrect API key provided: {key}; Authorization: Bearer {key}"}}


def _source_error(source: str, store: Store, fake_url: str) -> str:
    """Run one source's library call against a fake that echoes the key; its error message."""
    with pytest.raises(WalletaError) as info:
        if source == "openai-import":
            client = openai_client(admin_key=PLANTED["openai_admin"], base_url=fake_url)
            import_openai(store, load_catalog(), client=client, since="2025-10-01", until="2025-10-02",
                          retry=RetryPolicy(sleep=lambda _s: None))
        elif source == "stripe-import":
            import_stripe(store, stripe_client(PLANTED["stripe"], api_base=fake_url), full=True, sleep=lambda _s: None)
        else:
            push_meter(store, stripe_client(PLANTED["stripe"], api_base=fake_url), Meter("llm_tokens"),
                       api="v2" if source == "meter-push-v2" else "v1", settle_seconds=0, sleep=lambda _s: None)
    return f"{info.value}\n{info.value!r}"


@pytest.mark.parametrize("source", ["openai-import", "stripe-import", "meter-push-v1", "meter-push-v2"])
def test_every_source_masks_a_key_the_server_echoes(
    source: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The OpenAI admin import, the Stripe import and the meter push (v1 and v2) against servers
    that echo the key in their error text: the error says what failed, with the key masked, in
    the exception, the CLI output, the logs (-v, DEBUG) and the database."""
    caplog.set_level(logging.DEBUG)
    url = f"sqlite:///{tmp_path / 'echo.db'}"
    store = open_store(url)
    _seed_customers_for_push(store)
    if source == "openai-import":
        with FakeOpenAIAdmin() as fake:
            fake.state.set_pages("completions", [page([])])
            fake.state.failures.append(Failure("completions", page=1, status=400, times=10, body=_echo(PLANTED["openai_admin"])))
            message = _source_error(source, store, fake.base_url)
            monkeypatch.setenv("OPENAI_ADMIN_KEY", PLANTED["openai_admin"])
            monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
            code = cli.main(["-v", "--db", url, "import", "openai", "--since", "2025-10-01", "--until", "2025-10-02"])
            captured = capsys.readouterr()
            assert code == 1 and "error: OpenAI completions (page 1): HTTP 400" in captured.err, captured.err
            output = captured.out + captured.err
    else:
        with FakeStripe() as fake:
            if source == "meter-push-v2":  # the session token is a bearer secret too: a proxy echoes it
                fake.fail("POST", "/v2/billing/meter_event_stream", 400, times=1000, body=_echo("mes_token_1"))
            else:
                _failing_stripe(fake, 400, _echo(PLANTED["stripe"])["error"]["message"])
            message = _source_error(source, store, fake.url)
            if source == "meter-push-v2":
                assert "mes_token_1" not in message and "****" in message, message
                assert "mes_token_1" not in caplog.text  # the Stripe SDK logs the v2 error text at INFO
            output = _run_stripe_cli(url, fake.url, monkeypatch, capsys) if source != "meter-push-v2" else ""
    assert "****" in message  # the server's text is still shown, masked
    _assert_no_secret("the exception", message)
    _assert_no_secret("CLI output", output)
    _assert_no_secret("the logs", caplog.text)
    _assert_no_secret("the database", _database_text(store))
    store.close()
    record_figures(f"security.echoed_key[{source}]", kind="security", code_paths=2)


def test_database_password_never_shown(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"postgresql://walleta:{PLANTED['db_password']}@127.0.0.1:9/walleta"
    with pytest.raises(WalletaError) as info:
        open_store(url)
    _assert_no_secret("the exception", str(info.value) + repr(info.value))
    assert cli.main(["--db", url, "status"]) == 1
    _assert_no_secret("CLI output", capsys.readouterr().err)
    assert cli.main(["--db", f"nosuchdb://u:{PLANTED['db_password']}@h/x", "status"]) == 1
    _assert_no_secret("CLI output", capsys.readouterr().err)


# -- CSV formula injection ----------------------------------------------------------------------

DANGEROUS = ["=1+2", "+1+2", "-1+2", "@SUM(A1:A2)", "=HYPERLINK(\"http://evil.invalid\")", "\t=1",
             "=cmd|' /C calc'!A0", "-", " =1 (leading space: some spreadsheets trim it)"]
HARMLESS = ["acme", "1+2", "O'Brien", "a=b", "", "客户", "-12.5", "+3"]


def test_csv_export_quotes_every_formula_and_keeps_numbers() -> None:
    names = DANGEROUS + HARMLESS
    frame = pd.DataFrame({
        "customer_id": names,
        "ai_cost_pico": [-1_500_000_000_000] * len(names),  # -$1.50: exact dollars, still a number
        "requests": list(range(-5, len(names) - 5)),
        "=evil header": ["x"] * len(names),
    })
    data = to_csv_bytes(frame)
    text = data.decode("utf-8")
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    assert len(rows) == len(frame)
    for row, original in zip(rows, names):
        assert row["customer_id"] == ("'" + original if original in DANGEROUS else original)
    assert [r["ai_cost_usd"] for r in rows] == ["-1.5"] * len(rows)  # numbers stay numbers
    assert [int(r["requests"]) for r in rows] == frame["requests"].tolist()
    assert "'=evil header" in rows[0]
    assert neutralise_cell(-3) == -3 and neutralise_cell(None) is None
    assert neutralise_formulas(pd.DataFrame({"c": ["=1"]}))["c"].tolist() == ["'=1"]
    record_figures("security.csv_injection.export", kind="security", inputs=len(names))


def test_csv_export_keeps_a_cell_with_a_carriage_return_in_its_row() -> None:
    frame = pd.DataFrame({"customer_id": ["before\rafter", "acme"], "requests": [1, 2]})
    rows = list(csv.reader(io.StringIO(to_csv_bytes(frame).decode("utf-8"), newline="")))
    assert rows == [["customer_id", "requests"], ["before\rafter", "1"], ["acme", "2"]]


def _formula_cells(text: str) -> list[str]:
    return [cell for row in csv.reader(io.StringIO(text)) for cell in row
            if cell.lstrip(" ").startswith(("=", "+", "@", "\t", "\r")) or (cell.startswith("-") and not _number(cell))]


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def test_cli_csv_output_neutralises_formulas(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'csv.db'}"
    store = open_store(url)
    evil = '=HYPERLINK("http://evil.invalid","x")'
    store.upsert("customers", [{"customer_id": evil, "name": evil, "email": "", "stripe_customer_id": "cus_E",
                                "plan": "", "signup_date": "", "source": "test"}], ["customer_id"])
    two_days_ago = (int(time.time()) // 86_400 - 2) * 86_400_000_000 + 3_600_000_000
    frame = pd.DataFrame({"ts_us": [two_days_ago], "customer_id": [evil], "model": ["gpt-4o"],
                          "input_tokens": [1000], "request_id": ["req_csv_1"]})
    record_events(store, frame, load_catalog(), source="log")
    store.close()
    assert cli.main(["--db", url, "push", "stripe-meter", "--meter", "m", "--dry-run", "--format", "csv",
                     "--settle-minutes", "0"]) == 0
    out = capsys.readouterr().out
    assert "evil.invalid" in out  # the customer is in the listing
    assert _formula_cells(out) == []


# -- the app ------------------------------------------------------------------------------------


def test_app_password_is_compared_in_constant_time() -> None:
    """The gate compares with hmac.compare_digest and never with == / != / startswith."""
    import ast
    import inspect as pyinspect

    from walleta.ui import frame

    tree = ast.parse(pyinspect.getsource(frame._gate))
    calls = [ast.unparse(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)]
    assert "hmac.compare_digest" in calls
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare) and any(isinstance(op, (ast.Eq, ast.NotEq)) for op in node.ops):
            names = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
            assert not names & {"password", "entered"}, f"plain comparison: {ast.unparse(node)}"
    assert not any(c.endswith(("startswith", "endswith")) for c in calls)


APP = str(Path(__file__).resolve().parents[2] / "app.py")


def _app(monkeypatch: pytest.MonkeyPatch, url: str) -> Any:
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    st.cache_data.clear()
    st.cache_resource.clear()
    monkeypatch.setenv("WALLETA_DATABASE_URL", url)
    return AppTest.from_file(APP, default_timeout=90)


def _shown(at: Any) -> str:
    """Every text the page renders (not the password fields' own values)."""
    parts = []
    for kind in ("markdown", "caption", "info", "warning", "error", "success", "exception", "text", "code", "title",
                 "header", "subheader", "metric", "json", "expander", "status", "toast"):
        for element in getattr(at, kind, []):
            for attribute in ("value", "label", "body", "message", "stack_trace"):
                value = getattr(element, attribute, None)
                if value is not None:
                    parts.append(str(value))
    for frame in getattr(at, "dataframe", []):
        parts.append(frame.value.to_csv())
    return "\n".join(parts)


@pytest.mark.parametrize("password,unlocks", [("open sesame ✓", True), ("open sesame", False), ("", False),
                                               ("open sesame ✓ ", False), ("OPEN SESAME ✓", False)])
def test_app_password_gate(password: str, unlocks: bool, sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WALLETA_APP_PASSWORD", "open sesame ✓")
    at = _app(monkeypatch, sqlite_url).run()
    assert not at.metric and not at.dataframe
    at.text_input(key="walleta_password_input").input(password)
    at.button[0].click().run()
    assert bool(at.session_state["walleta_authenticated"] if "walleta_authenticated" in at.session_state else False) is unlocks
    assert "open sesame ✓" not in _shown(at)


def test_app_imports_with_planted_keys_never_show_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    from ..fakes.openai_admin import Failure, FakeOpenAIAdmin

    caplog.set_level(logging.DEBUG)
    url = f"sqlite:///{tmp_path / 'app.db'}"
    open_store(url).close()
    with FakeOpenAIAdmin() as openai_fake, FakeStripe() as stripe_fake:
        openai_fake.state.empty()
        for endpoint in ("completions", "costs"):
            openai_fake.state.failures.append(Failure(endpoint, page=1, status=400, times=100, body={
                "error": {"message": "Invalid request: unknown parameter", "type": "invalid_request_error"}}))
        masked = "sk_live_" + "*" * 20 + PLANTED["stripe"][-4:]
        stripe_fake.fail("GET", "/", 401, times=1000, body={"error": {"type": "invalid_request_error",
                                                                      "message": f"Invalid API Key provided: {masked}"}})
        monkeypatch.setenv("OPENAI_BASE_URL", openai_fake.base_url)
        monkeypatch.setenv("WALLETA_STRIPE_API_BASE", stripe_fake.url)
        at = _app(monkeypatch, url).run()
        at.switch_page("pages/6_Data.py").run()
        at.text_input(key="openai_admin_key").input(PLANTED["openai_admin"]).run()
        at.text_input(key="stripe_api_key").input(PLANTED["stripe"]).run()
        at.button(key="openai_go").click().run()
        at.button(key="stripe_go").click().run()
        assert openai_fake.state.requests and stripe_fake.requests  # both imports really ran
    shown = _shown(at)
    assert "400" in shown or "failed" in shown.lower()
    _assert_no_secret("the Data page", shown)
    _assert_no_secret("the logs", caplog.text)
    _assert_no_secret("the SQLite file", _database_bytes(url))
