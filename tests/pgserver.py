"""A throwaway PostgreSQL server on loopback for the test session.

PostgreSQL refuses to run as root; CI runs as root, so the server then runs as the `postgres`
system user (via `runuser`, or `su` where runuser is missing), in a fresh temporary directory
owned by that user. Each pytest-xdist worker starts its own server (the session fixture runs once
per worker): nothing is shared between workers, so there is no lock to get wrong.

`WALLETA_TEST_PG_URL` (e.g. `postgresql://postgres@127.0.0.1:5432/postgres`) skips all this and
uses an existing server: test databases are created on it and dropped at the end of the session.
"""

from __future__ import annotations

import atexit
import concurrent.futures
import os
import pwd
import shlex
import shutil
import socket
import subprocess
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["PgServer", "ServerUnavailable", "start_server", "scoped_database_url", "TEST_PG_URL_ENV"]

TEST_PG_URL_ENV = "WALLETA_TEST_PG_URL"
SERVER_USER = "postgres"
START_ATTEMPTS = 3


class ServerUnavailable(RuntimeError):
    """No PostgreSQL server could be started; the message says why."""


@dataclass
class PgServer:
    """A running server: `url(db)` gives a connection URL, `create_database()` a fresh one."""

    host: str
    port: int
    user: str
    password: str | None = None
    directory: Path | None = None  # set when this session started the server (and owns it)
    run_as: str | None = None
    admin_db: str = "postgres"
    created: list[str] = field(default_factory=list)
    _stopped: bool = False
    _spare: concurrent.futures.Future | None = None
    _pool: concurrent.futures.ThreadPoolExecutor | None = None

    def url(self, database: str) -> str:
        credentials = self.user if self.password is None else f"{self.user}:{self.password}"
        return f"postgresql://{credentials}@{self.host}:{self.port}/{database}"

    def _admin(self):  # -> psycopg.Connection
        import psycopg

        return psycopg.connect(self.url(self.admin_db), autocommit=True, connect_timeout=10)

    def create_database(self) -> str:
        """An empty database with a unique name, as a URL.

        Creating a database takes the better part of a second, so one spare is always being
        created in the background, while the test that got the previous one runs.
        """
        spare, self._spare = self._spare, None
        url = None
        if spare is not None:
            try:
                url = spare.result(timeout=120)
            except Exception:  # noqa: BLE001 - fall back to creating one now
                url = None
        if url is None:
            url = self._create_database()
        if self._pool is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="pg-spare")
        self._spare = self._pool.submit(self._create_database)
        return url

    def _create_database(self) -> str:
        name = f"t_{uuid.uuid4().hex[:16]}"
        with self._admin() as conn:
            try:
                # FILE_COPY is about twice as fast as the default WAL_LOG for a small template.
                conn.execute(f'CREATE DATABASE "{name}" STRATEGY = FILE_COPY')
            except Exception:  # noqa: BLE001 - PostgreSQL < 15 has no STRATEGY option
                conn.execute(f'CREATE DATABASE "{name}"')
        self.created.append(name)
        return self.url(name)

    def stop(self) -> None:
        """Stop a server this session started and delete its files; on a server we were given,
        drop the databases we created. Safe to call twice."""
        if self._stopped:
            return
        self._stopped = True
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        if self.directory is None:
            self._drop_created()
            return
        data = str(self.directory / "data")
        # A fast stop writes a shutdown checkpoint, which can take a while on a busy machine; the
        # files are deleted next anyway, so after 10 s stop it the immediate way.
        stopped = _run(self.run_as, ["pg_ctl", "-D", data, "-m", "fast", "-w", "-t", "10", "stop"], check=False)
        if stopped.returncode != 0:
            _run(self.run_as, ["pg_ctl", "-D", data, "-m", "immediate", "-w", "-t", "30", "stop"], check=False)
        _remove_in_background(self.directory)

    def _drop_created(self) -> None:
        if not self.created:
            return
        try:
            with self._admin() as conn:
                for name in self.created:
                    try:
                        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                    except Exception:  # noqa: BLE001 - PostgreSQL < 13: no FORCE
                        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        except Exception:  # noqa: BLE001 - best effort at session end
            pass
        self.created.clear()


def _remove_in_background(directory: Path) -> None:
    """Delete a directory without waiting: thousands of small files (one database is ~300) take
    many seconds to unlink on a busy disk, and nothing needs them gone before the session ends."""
    try:
        # The shell starts `rm` in the background and exits at once, so there is no child to reap.
        subprocess.run(
            ["sh", "-c", 'rm -rf -- "$1" >/dev/null 2>&1 &', "sh", str(directory)],
            stdin=subprocess.DEVNULL, start_new_session=True, check=True, timeout=30,
        )
    except (OSError, subprocess.SubprocessError):
        shutil.rmtree(directory, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_user(run_as: str | None, command: list[str]) -> list[str]:
    if not run_as:
        return command
    if shutil.which("runuser"):
        return ["runuser", "-u", run_as, "--", *command]
    return ["su", run_as, "-s", "/bin/sh", "-c", shlex.join(command)]


def _run(run_as: str | None, command: list[str], check: bool = True, timeout: int = 120) -> subprocess.CompletedProcess[str]:
    full = _as_user(run_as, command)
    try:
        # cwd "/": the server user may not be allowed into the caller's directory (pg_ctl fails there).
        result = subprocess.run(
            full, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, cwd="/" if run_as else None
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        if check:
            raise ServerUnavailable(f"`{command[0]}` could not run: {exc}") from exc
        return subprocess.CompletedProcess(full, 1, "", str(exc))
    if check and result.returncode != 0:
        output = (result.stderr or result.stdout).strip()[-800:]
        raise ServerUnavailable(f"`{' '.join(command[:2])} ...` exited with {result.returncode}: {output}")
    return result


def _server_from_env(url: str) -> PgServer:
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    server = PgServer(
        host=parsed.host or "127.0.0.1",
        port=parsed.port or 5432,
        user=parsed.username or "postgres",
        password=parsed.password,
        admin_db=parsed.database or "postgres",
    )
    try:
        with server._admin() as conn:
            conn.execute("SELECT 1")
    except Exception as exc:  # noqa: BLE001 - any connection failure means "unavailable"
        raise ServerUnavailable(f"{TEST_PG_URL_ENV} is set but the server cannot be reached: {exc}") from exc
    return server


def _log_tail(path: Path) -> str:
    try:
        return path.read_text(errors="replace").strip()[-800:]
    except OSError:
        return ""


def start_server() -> PgServer:
    """Start a server on a free loopback port (or use $WALLETA_TEST_PG_URL).

    Raises ServerUnavailable with the reason when that is impossible here.
    """
    existing = os.environ.get(TEST_PG_URL_ENV)
    if existing:
        return _server_from_env(existing)
    for tool in ("initdb", "pg_ctl"):
        if shutil.which(tool) is None:
            raise ServerUnavailable(f"`{tool}` is not on PATH (install PostgreSQL 15, or set {TEST_PG_URL_ENV})")
    run_as = None
    parent = None
    if os.geteuid() == 0:
        try:
            account = pwd.getpwnam(SERVER_USER)
        except KeyError as exc:
            raise ServerUnavailable(
                f"running as root (PostgreSQL refuses to) and there is no '{SERVER_USER}' user to run it as"
            ) from exc
        if shutil.which("runuser") is None and shutil.which("su") is None:
            raise ServerUnavailable("running as root and neither `runuser` nor `su` is available")
        run_as = SERVER_USER
        parent = "/tmp"  # must be reachable by the postgres user, whatever $TMPDIR says
    directory = Path(tempfile.mkdtemp(prefix="walleta-pg-", dir=parent))
    try:
        if run_as:
            os.chown(directory, account.pw_uid, account.pw_gid)
        data = directory / "data"
        _run(run_as, ["initdb", "-D", str(data), "-A", "trust", "-U", SERVER_USER, "-E", "UTF8",
                      "--no-locale", "--no-sync", "--no-instructions"])
        log = directory / "server.log"
        last_error = ""
        for _attempt in range(START_ATTEMPTS):
            # Another process can take the port between choosing it and binding it: retry.
            port = _free_port()
            options = (
                f"-p {port} -k {directory} -c listen_addresses=127.0.0.1 -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
            )
            result = _run(run_as, ["pg_ctl", "-D", str(data), "-o", options, "-l", str(log), "-w", "-t", "60", "start"],
                          check=False)
            if result.returncode == 0:
                server = PgServer(host="127.0.0.1", port=port, user=SERVER_USER, directory=directory, run_as=run_as)
                atexit.register(server.stop)  # in case the session dies before fixture teardown
                return server
            last_error = _log_tail(log) or (result.stderr or result.stdout).strip()[-800:]
            _run(run_as, ["pg_ctl", "-D", str(data), "-m", "immediate", "stop"], check=False, timeout=30)
        raise ServerUnavailable(f"pg_ctl start failed {START_ATTEMPTS} times: {last_error}")
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise


def scoped_database_url(request: "pytest.FixtureRequest", kind: str, folder: Path) -> str:
    """A database URL for a module- or session-scoped fixture (the `db_url` fixture is per test):
    a SQLite file in `folder`, or a fresh database on the session's PostgreSQL server; skips the
    test when no server could be started here (CI always has one)."""
    import pytest

    if kind.startswith("sqlite"):
        return f"sqlite:///{folder / 'walleta.db'}"
    server = request.getfixturevalue("pg_server")
    if not isinstance(server, PgServer):
        pytest.skip(f"no PostgreSQL server could be started here ({server}); CI runs these tests")
    return server.create_database()
