"""Database fixtures for the import tests: a SQLite file and a real PostgreSQL server.

Stand-in until the shared `tests/conftest.py` provides `sqlite_url`, `pg_url` and `db_url`: the
names and meanings are the same, so test modules only drop their import when it lands.
PostgreSQL 15 is started once per test session on 127.0.0.1 as the `postgres` system user
(it refuses to run as root); each test gets a fresh database. Skipped with a reason only when
no server binaries exist and CI is not set.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path
from typing import Iterator

import pytest


def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if found:
        return Path(found[-1]).parent
    exe = shutil.which("pg_ctl")
    return Path(exe).parent if exe else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_postgres(args: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *args]
    return args


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """A PostgreSQL server for the session; yields its base URL (no database name)."""
    bindir = _pg_bin()
    if bindir is None:
        if os.environ.get("CI") == "true":
            raise RuntimeError("PostgreSQL binaries not found (initdb/pg_ctl)")
        pytest.skip("PostgreSQL binaries not found; PostgreSQL tests skipped outside CI")
    root = Path(tempfile.mkdtemp(prefix="walleta-pg-"))
    os.chmod(root, 0o777)
    data = root / "data"
    port = _free_port()
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    subprocess.run(_as_postgres([str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync"]), check=True, capture_output=True)
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {root} -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    subprocess.run(_as_postgres([str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-w", "-l", str(root / "log"), "start"]), check=True, capture_output=True)
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}"
    finally:
        subprocess.run(_as_postgres([str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]), capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def pg_url(pg_server: str) -> str:
    """A fresh, empty PostgreSQL database."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(f"{pg_server}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{pg_server}/{name}"


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A fresh SQLite database file."""
    return f"sqlite:///{tmp_path / 'walleta.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest) -> str:
    """Both databases, one after the other."""
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")


def snapshot(store) -> dict[str, list[tuple]]:  # type: ignore[no-untyped-def]
    """Every row of every table, sorted: two equal snapshots mean an unchanged database."""
    from sqlalchemy import inspect

    tables = sorted(inspect(store.engine).get_table_names())
    out: dict[str, list[tuple]] = {}
    for table in tables:
        frame = store.query(f"SELECT * FROM {table}")
        out[table] = sorted((tuple("" if v is None else str(v) for v in row) for row in frame.itertuples(index=False, name=None)))
    return out
