"""A throwaway PostgreSQL server on loopback for the test session.

PostgreSQL refuses to run as root; CI runs as root, so the server then runs as the `postgres`
system user (via runuser). `WALLETA_TEST_PG_URL` skips all this and uses an existing server.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PgServer", "start_server", "ServerUnavailable"]


class ServerUnavailable(RuntimeError):
    """No PostgreSQL server could be started; the message says why."""


@dataclass
class PgServer:
    """A running server: `url(db)` gives a connection URL, `create_database()` a fresh one."""

    host: str
    port: int
    user: str
    directory: Path | None = None
    run_as: str | None = None
    admin_db: str = "postgres"

    def url(self, database: str) -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{database}"

    def create_database(self) -> str:
        import psycopg

        name = f"t_{uuid.uuid4().hex[:16]}"
        with psycopg.connect(self.url(self.admin_db), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        if self.directory is None:
            return
        _run(self.run_as, ["pg_ctl", "-D", str(self.directory / "data"), "-m", "immediate", "-w", "stop"], check=False)
        shutil.rmtree(self.directory, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run(run_as: str | None, command: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    if run_as:
        command = ["runuser", "-u", run_as, "--", *command]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if check and result.returncode != 0:
        raise ServerUnavailable(f"{' '.join(command[-4:])} failed: {(result.stderr or result.stdout).strip()[-500:]}")
    return result


def start_server() -> PgServer:
    """Start a server (or use $WALLETA_TEST_PG_URL). Raises ServerUnavailable with the reason."""
    existing = os.environ.get("WALLETA_TEST_PG_URL")
    if existing:
        from sqlalchemy.engine import make_url

        parsed = make_url(existing)
        return PgServer(host=parsed.host or "127.0.0.1", port=parsed.port or 5432, user=parsed.username or "postgres", admin_db=parsed.database or "postgres")
    for tool in ("initdb", "pg_ctl"):
        if shutil.which(tool) is None:
            raise ServerUnavailable(f"{tool} is not on PATH (install PostgreSQL 15 or set WALLETA_TEST_PG_URL)")
    run_as = None
    directory = Path(tempfile.mkdtemp(prefix="walleta-pg-"))
    if os.geteuid() == 0:
        try:
            account = pwd.getpwnam("postgres")
        except KeyError as exc:
            raise ServerUnavailable("running as root and there is no 'postgres' user to run the server as") from exc
        run_as = "postgres"
        os.chown(directory, account.pw_uid, account.pw_gid)
    port = _free_port()
    data = directory / "data"
    _run(run_as, ["initdb", "-D", str(data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync", "--no-locale"])
    options = f"-p {port} -k {directory} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
    _run(run_as, ["pg_ctl", "-D", str(data), "-o", options, "-l", str(directory / "server.log"), "-w", "-t", "60", "start"])
    return PgServer(host="127.0.0.1", port=port, user="postgres", directory=directory, run_as=run_as)
