"""Database fixtures for the issue-5 tests until tests/conftest.py (from main) provides them.

`db_url` is parametrized over a SQLite file and a fresh database on a throw-away PostgreSQL
server started on 127.0.0.1 for the test session (as the `postgres` user, since initdb refuses
root). Import the fixtures into a test module: `from tests.fakes.databases import db_url, pg_server`.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path
from typing import Iterator

import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_postgres(args: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str | None]:
    """Base URL of a PostgreSQL server for this session, or None when it cannot start."""
    initdb = shutil.which("initdb") or "/usr/local/bin/initdb"
    if not Path(initdb).exists():
        yield None
        return
    root = Path(tempfile.mkdtemp(prefix="walleta-pg5-"))
    os.chmod(root, 0o777)
    data = root / "data"
    port = _free_port()
    try:
        subprocess.run(_as_postgres([initdb, "-D", str(data), "-A", "trust", "-U", "postgres"]), check=True, capture_output=True)
        subprocess.run(
            _as_postgres(["pg_ctl", "-D", str(data), "-w", "-l", str(root / "log"), "-o",
                          f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off", "start"]),
            check=True, capture_output=True,
        )
    except (subprocess.CalledProcessError, FileNotFoundError):
        yield None
        return
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}"
    finally:
        subprocess.run(_as_postgres(["pg_ctl", "-D", str(data), "-m", "immediate", "stop"]), capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh empty database URL: SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'walleta.db'}"
    base = request.getfixturevalue("pg_server")
    if base is None:
        pytest.skip("PostgreSQL is not available here")
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return f"{base}/{name}"
