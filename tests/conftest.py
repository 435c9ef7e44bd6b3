"""Shared fixtures: real SQLite files and a real PostgreSQL server for every storage test.

- `sqlite_url`: a fresh SQLite file.
- `pg_url`: a fresh database on a PostgreSQL server this session starts on loopback. Where no
  server can be started the test is skipped with the reason, except in CI (CI=true), where that
  is a failure: CI must prove PostgreSQL works.
- `db_url`: both of the above, as two test ids (`sqlite`, `postgresql`).
- `store`: `open_store(db_url)`, closed afterwards.
Every test also gets its own WALLETA_DATABASE_URL, so nothing touches data/walleta.db.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import pytest

from walleta.store import Store, open_store

from .pgserver import PgServer, ServerUnavailable, start_server

IN_CI = os.environ.get("CI", "").lower() == "true"


@pytest.fixture(autouse=True)
def _isolated_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WALLETA_DATABASE_URL", f"sqlite:///{tmp_path / 'default.db'}")
    monkeypatch.delenv("WALLETA_PRICE_OVERRIDES", raising=False)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer | None]:
    try:
        server = start_server()
    except ServerUnavailable as exc:
        if IN_CI:
            pytest.fail(f"PostgreSQL is required in CI but could not start: {exc}")
        yield None
        return
    yield server
    server.stop()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'walleta.db'}"


@pytest.fixture
def pg_url(pg_server: PgServer | None) -> str:
    if pg_server is None:
        pytest.skip("no PostgreSQL server could be started here (initdb/pg_ctl missing?); CI runs these tests")
    return pg_server.create_database()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest) -> str:
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    opened = open_store(db_url)
    yield opened
    opened.close()
