"""Shared fixtures: real SQLite files and a real PostgreSQL server for every storage test.

- `sqlite_url`: a fresh SQLite file in the test's tmp_path.
- `pg_url`: a fresh, empty database on a PostgreSQL server this session starts on loopback (see
  `tests/pgserver.py`; `WALLETA_TEST_PG_URL` points at an existing server instead). Where no server
  can be started the test is skipped with the reason, except in CI (CI=true), where that is a
  failure: CI must prove PostgreSQL works.
- `db_url`: both of the above, as two test ids (`sqlite`, `postgresql`).
- `store`: `open_store(db_url)`, closed afterwards.
Every test also gets its own WALLETA_DATABASE_URL, so nothing touches data/walleta.db.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Iterator

import pytest

from walleta.store import Store, open_store

from .pgserver import PgServer, ServerUnavailable, start_server

IN_CI = os.environ.get("CI", "").strip().lower() == "true"


@pytest.fixture(autouse=True)
def _isolated_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WALLETA_DATABASE_URL", f"sqlite:///{tmp_path / 'default.db'}")
    monkeypatch.delenv("WALLETA_PRICE_OVERRIDES", raising=False)


@pytest.fixture(autouse=True)
def _main_module_restored() -> Iterator[None]:
    """Streamlit's AppTest leaves `sys.modules["__main__"]` set to the app script it ran; a
    later test in the same worker that starts processes with spawn or forkserver would then
    re-run app.py in every child (they fail before doing their work). Put it back."""
    main = sys.modules.get("__main__")
    yield
    if main is not None and sys.modules.get("__main__") is not main:
        sys.modules["__main__"] = main


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer | str]:
    """The session's server, or the reason there is none (a str) outside CI."""
    try:
        server = start_server()
    except ServerUnavailable as exc:
        reason = str(exc)
    else:
        reason = ""
    if reason:
        if IN_CI:
            pytest.fail(f"PostgreSQL is required in CI (CI=true) but no server could be started: {reason}", pytrace=False)
        yield reason
        return
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'walleta.db'}"


@pytest.fixture
def pg_url(pg_server: PgServer | str) -> str:
    if isinstance(pg_server, str):
        pytest.skip(f"PostgreSQL tests skipped: no server could be started here ({pg_server}); CI runs them")
    return pg_server.create_database()


@pytest.fixture(params=["sqlite", "postgresql"], ids=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest) -> str:
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    opened = open_store(db_url)
    try:
        yield opened
    finally:
        opened.close()
