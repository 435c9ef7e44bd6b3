"""The database: open, upgrade, write in bulk, read into DataFrames.

`Store` wraps one SQLAlchemy engine (SQLite or PostgreSQL). Writes take explicit transactions on
the DBAPI connection (`BEGIN IMMEDIATE` on SQLite, so concurrent writers queue on the busy timeout
instead of failing), and bulk writes never build per-row ORM objects: rows go into a temporary
staging table with `executemany` (SQLite) or `COPY` (PostgreSQL), and are merged from there in SQL.
The merge, the rollup update and the import bookkeeping commit together, so a crash leaves either
all of a batch or none of it.

Reads return pandas DataFrames from plain SQL written with `?` placeholders (translated for
PostgreSQL); sums are CAST to BIGINT in SQL so both databases return Python ints.
"""

from __future__ import annotations

import gc
import hashlib
import itertools
import sqlite3
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Literal, Sequence

import numpy as np
import pandas as pd
from sqlalchemy import BigInteger, Integer, create_engine, event, inspect
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.pool import StaticPool

from . import generations, migrations, revenue_rollup, wide_sums
from .config import resolve_database_url
from .errors import ConfigError, SchemaError, StorageError
from .schema import (
    EVENT_COLUMNS,
    QUANTITY_COLUMNS,
    ROLLUP_MEASURES,
    ROLLUPS,
    SCHEMA_VERSION,
    TOKEN_COLUMNS,
    UsageEvent,
    metadata,
)

__all__ = ["Store", "WriteResult", "open_store", "now_us"]

SQLITE_BUSY_TIMEOUT_MS = 30_000

# numpy scalars can reach the DBAPI inside object columns; bind them as plain numbers.
for _numpy_type in (np.int64, np.int32, np.uint64, np.bool_):
    sqlite3.register_adapter(_numpy_type, int)
sqlite3.register_adapter(np.float64, float)
STAGE_TABLE = "walleta_stage_events"


def now_us() -> int:
    """The current time as integer microseconds since the epoch (UTC)."""
    return time.time_ns() // 1000


@dataclass(frozen=True)
class WriteResult:
    """What one bulk write did: rows newly inserted, rows replaced, duplicates skipped."""

    inserted: int
    replaced: int
    skipped: int


# Database failures caused by the environment, not by the code: (text in the driver's message,
# what to tell the user). Anything else propagates unchanged.
_SQLITE_FAULTS = (
    ("readonly", "the database is read-only (check the permissions of the file and its folder)"),
    ("read-only", "the database is read-only (check the permissions of the file and its folder)"),
    ("disk is full", "the disk is full (or the database reached its size limit)"),
    ("disk i/o error", "the disk could not be written (disk full, file size limit, or a failing disk)"),
    ("unable to open database file",
     "cannot open the database file: its folder is missing, read-only or not writable "
     "(SQLite creates -wal and -shm files next to it)"),
    ("database is locked", "the database stayed locked by another process"),
)


def _storage_error(exc: BaseException, where: str, writing: bool) -> StorageError | None:
    """A StorageError naming the database for an environmental failure, else None."""
    original = getattr(exc, "orig", None) or exc  # SQLAlchemy wraps the driver's exception
    text = str(original).strip().splitlines()[0] if str(original).strip() else type(original).__name__
    meaning = None
    if isinstance(original, sqlite3.OperationalError):
        meaning = next((m for needle, m in _SQLITE_FAULTS if needle in text.lower()), None)
    psycopg = sys.modules.get("psycopg")
    if psycopg is not None and isinstance(original, psycopg.Error):
        if isinstance(original, psycopg.errors.ReadOnlySqlTransaction):
            meaning = "the database is read-only (a standby, or default_transaction_read_only is on)"
        elif isinstance(original, psycopg.errors.TransactionRollback):
            meaning = "the write collided with a concurrent one (deadlock or serialization failure); run it again"
        elif isinstance(original, psycopg.errors.DiskFull):
            meaning = "the database server's disk is full"
        elif isinstance(original, psycopg.errors.ProgramLimitExceeded):
            meaning = "a value is too large for the database (PostgreSQL cannot index text over ~2,700 bytes)"
        elif isinstance(original, psycopg.OperationalError):
            meaning = "the database server cannot be reached or closed the connection"
    if meaning is None:
        return None
    rolled_back = "; nothing of this write was saved" if writing else ""
    return StorageError(f"{where}: {meaning}{rolled_back} ({text})")


@contextmanager
def _storage_errors(where: str, *, writing: bool = False) -> Iterator[None]:
    """Re-raise environmental database failures (read-only, disk full, unreachable) as StorageError."""
    try:
        yield
    except StorageError:
        raise
    except Exception as exc:
        translated = _storage_error(exc, where, writing)
        if translated is None:
            raise
        raise translated from exc


def _normalise_url(url: str) -> str:
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    return url


def _create_engine(url: str) -> Engine:
    url = _normalise_url(url)
    try:
        parsed = make_url(url)
    except Exception as exc:  # noqa: BLE001 - SQLAlchemy raises several types here
        raise ConfigError(f"not a database URL: {url.split('@')[-1]!r}") from exc
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        in_memory = parsed.database in (None, "", ":memory:")
        engine = create_engine(
            url,
            isolation_level="AUTOCOMMIT",
            connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
            poolclass=StaticPool if in_memory else None,
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            if not in_memory:
                cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA temp_store=MEMORY")
            # 64 MiB page cache (allocated as used): bulk writes keep the hot index and rollup
            # pages of a multi-GB database in memory instead of re-reading them per batch.
            cursor.execute("PRAGMA cache_size=-65536")
            cursor.close()

        return engine
    if backend == "postgresql":
        return create_engine(url, isolation_level="AUTOCOMMIT", pool_pre_ping=True)
    raise ConfigError(f"unsupported database {backend!r}: use sqlite:/// or postgresql://")


class Store:
    """A Walleta database. Create with `open_store(url)`; safe to share between threads."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect: Literal["sqlite", "postgresql"] = engine.dialect.name  # type: ignore[assignment]

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The database URL with any password hidden (safe to show)."""
        return self.engine.url.render_as_string(hide_password=True)

    def init_schema(self) -> None:
        """Create missing tables and upgrade an older schema; refuse a newer one. Installs the
        revenue rollup's triggers and rebuilds it when it is not fresh (`walleta.revenue_rollup`)."""
        existing = set(inspect(self.engine).get_table_names())
        if "walleta_meta" in existing:
            version = int(self.scalar("SELECT value FROM walleta_meta WHERE key = ?", ["schema_version"]) or 0)
        else:
            version = 0 if "usage_events" in existing else SCHEMA_VERSION
        if version > SCHEMA_VERSION:
            raise SchemaError(
                f"database schema version {version} is newer than this Walleta ({SCHEMA_VERSION}); upgrade Walleta"
            )
        metadata.create_all(self.engine)
        with self.transaction() as cur:
            steps = migrations.steps_after(version)
            for step in steps:
                step(cur, self.dialect)
            if steps:
                generations.bump(cur, self.dialect, ["all"])
            generations.ensure_store_id(cur, self.dialect)
            self._set_meta(cur, "schema_version", str(SCHEMA_VERSION))
            revenue_rollup.install_triggers(cur, self.dialect)
            revenue_rollup.ensure_fresh(cur, self.dialect)  # new, upgraded, or written by older code

    def close(self) -> None:
        """Release every pooled connection."""
        self.engine.dispose()

    # -- low-level SQL -----------------------------------------------------------------------

    def sql(self, statement: str) -> str:
        """Translate `?` placeholders to the driver's style."""
        return statement.replace("?", "%s") if self.dialect == "postgresql" else statement

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        """A DBAPI cursor inside one write transaction; commits on success, rolls back on error."""
        with _storage_errors(self.url, writing=True):
            raw = self.engine.raw_connection()
            broken = False
            try:
                cur = raw.cursor()
                cur.execute("BEGIN IMMEDIATE" if self.dialect == "sqlite" else "BEGIN")
                try:
                    yield cur
                    cur.execute("COMMIT")
                except BaseException:
                    try:
                        cur.execute("ROLLBACK")
                    except Exception:  # noqa: BLE001 - SQLite already rolled back (full disk), or the link is gone:
                        broken = True  # discard the connection, and never mask the original error
                    raise
                finally:
                    cur.close()
            finally:
                if broken:
                    raw.invalidate()
                else:
                    raw.close()

    def execute(self, statement: str, params: Sequence[Any] = ()) -> int:
        """Run one write statement in its own transaction; returns the row count."""
        with self.transaction() as cur:
            cur.execute(self.sql(statement), list(params))
            return int(cur.rowcount or 0)

    def fetch(self, statement: str, params: Sequence[Any] = ()) -> tuple[list[str], list[tuple]]:
        """Run a SELECT (`?` placeholders) and return (column names, rows as plain tuples).
        A `CAST(SUM(...) AS BIGINT)` that passes int64 is rerun in a wide form and comes back as
        an exact Python int (`walleta.wide_sums`; statements it cannot widen raise the overflow)."""
        try:
            return self._fetch(statement, params)
        except Exception as exc:
            return self._fetch_wide(statement, params, exc)

    def _fetch_wide(self, statement: str, params: Sequence[Any], exc: Exception) -> tuple[list[str], list[tuple]]:
        """`statement` rerun in its wide form after it raised `exc`; `exc` itself when that is not
        a sum's overflow or the statement cannot be widened (`walleta.wide_sums`)."""
        if not wide_sums.is_overflow(exc):
            raise exc
        widened = wide_sums.widen(statement, params)
        if widened is None:
            raise exc
        try:
            columns, rows = self._fetch(widened.statement, widened.params)
        except Exception as wide_exc:
            raise exc from wide_exc
        return wide_sums.combine(widened, columns, rows)

    def _fetch(self, statement: str, params: Sequence[Any] = ()) -> tuple[list[str], list[tuple]]:
        with _storage_errors(self.url):
            raw = self.engine.raw_connection()
            try:
                cur = raw.cursor()
                cur.execute(self.sql(statement), list(params))
                columns = [d[0] for d in cur.description]
                rows = cur.fetchall()
                cur.close()
            finally:
                raw.close()
        return columns, rows

    def query(self, statement: str, params: Sequence[Any] = ()) -> pd.DataFrame:
        """Run a SELECT and return its rows as a DataFrame (column names from the query)."""
        columns, rows = self.fetch(statement, params)
        return _records_frame(rows, columns)

    def scalar(self, statement: str, params: Sequence[Any] = ()) -> Any:
        """The first column of the first row, or None (sums past int64: see `fetch`)."""
        try:
            return self._scalar(statement, params)
        except Exception as exc:  # not run again as it was: straight to the wide form (or `exc`)
            _, rows = self._fetch_wide(statement, params, exc)
            return rows[0][0] if rows else None

    def _scalar(self, statement: str, params: Sequence[Any] = ()) -> Any:
        with _storage_errors(self.url):
            raw = self.engine.raw_connection()
            try:
                cur = raw.cursor()
                cur.execute(self.sql(statement), list(params))
                row = cur.fetchone()
                cur.close()
            finally:
                raw.close()
        return None if row is None else row[0]

    def _set_meta(self, cur: Any, key: str, value: str) -> None:
        cur.execute(
            self.sql(
                "INSERT INTO walleta_meta (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value"
            ),
            [key, value],
        )

    def set_meta(self, key: str, value: str) -> None:
        """Store a fact about the database (e.g. 'demo_version')."""
        with self.transaction() as cur:
            self._set_meta(cur, key, value)

    def get_meta(self, key: str) -> str | None:
        """Read a fact stored with `set_meta`."""
        return self.scalar("SELECT value FROM walleta_meta WHERE key = ?", [key])

    # -- generic upsert for the small tables -------------------------------------------------

    def upsert(
        self,
        table: str,
        rows: Iterable[dict[str, Any]],
        key: Sequence[str],
        *,
        cur: Any = None,
    ) -> int:
        """Insert rows, replacing the non-key columns of rows whose key already exists."""
        rows = list(rows)
        if not rows:
            return 0
        columns = list(rows[0].keys())
        updates = [c for c in columns if c not in key]
        set_clause = (
            "DO UPDATE SET " + ", ".join(f"{c} = excluded.{c}" for c in updates)
            if updates
            else "DO NOTHING"
        )
        statement = self.sql(
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)}) "
            f"ON CONFLICT ({', '.join(key)}) {set_clause}"
        )
        values = [tuple(r.get(c) for c in columns) for r in rows]
        if cur is not None:
            cur.executemany(statement, values)
        else:
            with self.transaction() as own:
                own.executemany(statement, values)
        return len(values)

    # -- bulk usage events -------------------------------------------------------------------

    def write_events(
        self,
        frame: pd.DataFrame,
        *,
        on_conflict: Literal["ignore", "replace"] = "ignore",
        cur: Any = None,
    ) -> WriteResult:
        """Write priced usage events in one transaction and update every rollup with them.

        `frame` has the columns of `walleta.schema.EVENT_COLUMNS` (see `walleta.events` for
        building one). Rows whose `uid` is already stored are skipped (`ignore`, the default:
        re-importing a file adds nothing) or replace the stored row (`replace`: an API bucket
        re-fetched with later data). Pass `cur` to join a transaction the caller already holds.
        """
        if frame.empty:
            return WriteResult(0, 0, 0)
        batch: pd.DataFrame | dict[str, list[Any]]
        if len(frame) <= SMALL_ROLLUP_BATCH:  # usage-log batches: plain lists, no pandas per step
            batch = _small_batch(frame)
            if self.dialect == "postgresql":
                batch["uid"] = [_bounded_uid(u) for u in batch["uid"]]
        else:
            batch = _bounded_uids(frame) if self.dialect == "postgresql" else frame
            flags = [c for c, dtype in batch.dtypes.items() if dtype.kind == "b"]
            if flags:  # bool flags (batch, estimated) are INTEGER columns; PostgreSQL refuses True there
                batch = batch.astype({c: "int64" for c in flags})
        if cur is not None:
            return self._merge_events(cur, batch, on_conflict)
        with self.transaction() as own:
            return self._merge_events(own, batch, on_conflict)

    def _merge_events(self, cur: Any, batch: pd.DataFrame | dict[str, list[Any]], on_conflict: str) -> WriteResult:
        """Insert a batch (a frame, or EVENT_COLUMNS lists for a small one), then update the
        rollups with one signed delta: the new rows minus the rows they replaced."""
        small = isinstance(batch, dict)
        uids: list[str] = batch["uid"] if small else batch["uid"].tolist()
        given = len(uids)
        if len(set(uids)) < given:  # a uid repeated within the batch: its first row wins
            batch = _first_of_each_uid(batch)
            uids = batch["uid"] if small else batch["uid"].tolist()
        old: list[pd.DataFrame] = []
        if on_conflict == "replace":
            old.append(self._take_events(cur, uids))
        # Large batches: the rollup deltas of "every row is new" are computed on another thread
        # while this one inserts (numpy and SQLite both release the GIL); used when that holds.
        expected = [(batch, 1), (old[0], -1)] if old else [(batch, 1)]
        speculative = _Background(rollup_deltas, expected) if _row_count(batch) >= PARALLEL_ROLLUP_ROWS else None
        split = (
            _EventColumns(list(EVENT_COLUMNS), {}, [batch[c] for c in EVENT_COLUMNS], len(uids))
            if small else _split_event_columns(_uid_ordered(batch) if self.dialect == "sqlite" else batch)
        )
        inserted_uids = self._insert_rows(cur, split)
        for _attempt in range(5 if on_conflict == "replace" else 0):
            # PostgreSQL: a concurrent replace may have inserted one of our uids after our DELETE
            # ran (its row was invisible to it). Take that row too (a new statement sees it),
            # so the last writer wins and the rollups subtract exactly what was removed.
            if inserted_uids is None:
                break
            missing = {u for u in uids if u not in inserted_uids}
            taken = self._take_events(cur, list(missing))
            if taken.empty:
                break
            old.append(taken)
            retried = _subset(batch, set(taken["uid"].tolist()))
            again = self._insert_rows(
                cur,
                _EventColumns(list(EVENT_COLUMNS), {}, [retried[c] for c in EVENT_COLUMNS], _row_count(retried))
                if small else _split_event_columns(retried),
            )
            inserted_uids |= set(taken["uid"].tolist()) if again is None else again
        fresh = batch if inserted_uids is None else _subset(batch, inserted_uids)
        removed = pd.concat(old, ignore_index=True) if len(old) > 1 else (old[0] if old else pd.DataFrame())
        parts = [(fresh, 1), (removed, -1)]
        # Joined even when not used (a duplicate was skipped), so it never outlives a write that
        # succeeds; if the insert raised, the thread finishes on its own (it only reads `batch`).
        computed = speculative.result() if speculative is not None else None
        self._apply_rollup_deltas(cur, parts, computed if inserted_uids is None and len(old) <= 1 else None)
        replaced, kept = len(removed), _row_count(fresh)
        return WriteResult(inserted=kept - replaced, replaced=replaced, skipped=given - kept)

    def _insert_rows(self, cur: Any, split: "_EventColumns") -> set[str] | None:
        """Insert event rows, skipping uids already stored. Returns the inserted uids, or None
        when every row was inserted (the common case, which needs no second look).

        Columns holding one value in every row are written as SQL literals, so only the varying
        columns are bound per row (a usage log batch binds ~15 of the 45 columns)."""
        columns = ", ".join(EVENT_COLUMNS)
        if self.dialect == "postgresql":
            cur.execute(
                f"CREATE TEMP TABLE IF NOT EXISTS {STAGE_TABLE} ON COMMIT DELETE ROWS AS "
                f"SELECT {columns} FROM usage_events WITH NO DATA"
            )
            with cur.copy(f"COPY {STAGE_TABLE} ({', '.join(split.varying)}) FROM STDIN") as copy:
                for row in split.rows():
                    copy.write_row(row)
            selected = ", ".join(split.constants.get(c, c) for c in EVENT_COLUMNS)
            cur.execute(
                f"INSERT INTO usage_events ({columns}) SELECT {selected} FROM {STAGE_TABLE} "
                f'ORDER BY uid COLLATE "C" ON CONFLICT (uid) DO NOTHING RETURNING uid'  # Python's uid order: no deadlocks
            )
            inserted = {r[0] for r in cur.fetchall()}
            cur.execute(f"DELETE FROM {STAGE_TABLE}")
            return None if len(inserted) == split.count else inserted
        cur.execute("SELECT COALESCE(MAX(id), 0) FROM usage_events")
        highest_before = int(cur.fetchone()[0])
        values = ", ".join(split.constants.get(c, "?") for c in EVENT_COLUMNS)
        # ON CONFLICT (uid), not INSERT OR IGNORE: OR IGNORE would also silently drop rows that
        # break NOT NULL (and count them as duplicates) where PostgreSQL raises.
        _insert_many(
            cur, f"INSERT INTO usage_events ({columns}) VALUES ", f"({values})", " ON CONFLICT (uid) DO NOTHING",
            split.rows(),
        )
        # Not `cur.rowcount`: after a skipped duplicate, sqlite3 counts the previous row's change
        # again. Ids are max+1 while we hold the write lock, so the highest id counts the rows.
        cur.execute("SELECT COALESCE(MAX(id), 0) FROM usage_events")
        if int(cur.fetchone()[0]) - highest_before == split.count:
            return None
        # We hold the write lock, so every id above the old maximum is one of ours.
        cur.execute("SELECT uid FROM usage_events WHERE id > ?", [highest_before])
        return {r[0] for r in cur.fetchall()}

    def _take_events(self, cur: Any, uids: list[str]) -> pd.DataFrame:
        """Delete the stored events with these uids and return the rollup columns of the rows
        actually deleted (DELETE ... RETURNING: what a concurrent writer removed first is not
        counted twice). Uids go in sorted chunks: one lock order for concurrent writers."""
        wanted = ", ".join(dict.fromkeys(("uid", *ROLLUP_SOURCE_COLUMNS)))
        frames = []
        for chunk in _chunks(sorted(set(uids)), 500):
            cur.execute(
                self.sql(f"DELETE FROM usage_events WHERE uid IN ({', '.join('?' for _ in chunk)}) RETURNING {wanted}"),
                chunk,
            )
            frames.append(_records_frame(cur.fetchall(), [d[0] for d in cur.description]))
        found = [f for f in frames if not f.empty]
        if not found:
            return pd.DataFrame()
        return found[0] if len(found) == 1 else pd.concat(found, ignore_index=True)

    def _apply_rollup_deltas(
        self, cur: Any, parts: Sequence[tuple["EventsPart", int]], deltas: "RollupDeltas | None" = None
    ) -> None:
        """Add each (events, sign) part to every rollup: one signed delta per rollup row (new
        minus old in replace mode), upserted in key order so concurrent writers lock rollup rows
        in one order; rows whose event count falls to 0 are deleted. `deltas`, when given, is
        `rollup_deltas(parts)` computed already."""
        removing = any(sign < 0 and _row_count(part) for part, sign in parts)
        for name, (measures, rows) in (rollup_deltas(parts) if deltas is None else deltas).items():
            if not rows:
                continue
            keys = ROLLUPS[name]
            self._upsert_rollup(cur, name, keys, measures, rows)
            if not removing:
                continue
            emptied = [row[: len(keys)] for row in rows if row[len(keys)] < 0]  # measures[0] is "events"
            if emptied:
                where = " AND ".join(f"{k} = ?" for k in keys)
                cur.executemany(self.sql(f"DELETE FROM {name} WHERE {where} AND events = 0"), emptied)

    def _upsert_rollup(self, cur: Any, name: str, keys: tuple[str, ...], measures: list[str], rows: list[tuple]) -> None:
        """Add delta rows (keys + measures, in key order) to a rollup table.

        Many rows go through a staging table and one INSERT ... SELECT ... ON CONFLICT: the
        database then upserts them in one statement (on SQLite ~40% less CPU than binding an
        upsert per row; on PostgreSQL COPY instead of a round trip per row)."""
        if name == "rollup_customer_month":  # readers cache what they derive from unchanged months
            generations.bump(cur, self.dialect, {row[0] for row in rows})
        if len(rows) <= STAGED_ROLLUP_ROWS:
            cur.executemany(self.sql(_rollup_values_sql(name, keys, measures)), rows)
            return
        stage, columns = f"walleta_stage_{name}", ", ".join((*keys, *measures))
        if self.dialect == "postgresql":
            cur.execute(f"CREATE TEMP TABLE IF NOT EXISTS {stage} ON COMMIT DELETE ROWS AS SELECT * FROM {name} WITH NO DATA")
            with cur.copy(f"COPY {stage} ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            # Python's str order: concurrent writers lock rollup rows in one order (no deadlocks).
            order = " ORDER BY " + ", ".join(k if k == "batch" else f'{k} COLLATE "C"' for k in keys)
        else:
            cur.execute(f"CREATE TEMP TABLE IF NOT EXISTS {stage} AS SELECT * FROM {name} WHERE 0")
            placeholders = f"({', '.join('?' for _ in (*keys, *measures))})"
            _insert_many(cur, f"INSERT INTO {stage} ({columns}) VALUES ", placeholders, "", iter(rows))
            order = ""  # one writer at a time; rows are already in key order
        updates = ", ".join(f"{m} = {name}.{m} + excluded.{m}" for m in measures)
        # `WHERE true`: SQLite needs it to parse ON CONFLICT after a SELECT.
        cur.execute(
            f"INSERT INTO {name} ({columns}) SELECT {columns} FROM {stage} WHERE true{order} "
            f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {updates}"
        )
        cur.execute(f"DELETE FROM {stage}")

    def _apply_rollups_sql(self, cur: Any, source: str) -> None:
        """Add every event of a table or subquery to the rollups, computed in SQL."""
        for name, keys in ROLLUPS.items():
            cur.execute(_rollup_upsert_sql(name, keys, source, 1))

    def rebuild_rollups(self, *, cur: Any = None) -> None:
        """Recompute every rollup from the raw events (after re-pricing or re-mapping)."""
        if cur is None:
            with self.transaction() as own:
                self.rebuild_rollups(cur=own)
            return
        for name in ROLLUPS:
            cur.execute(f"DELETE FROM {name}")
        self._apply_rollups_sql(cur, "usage_events")
        generations.bump(cur, self.dialect, ["all"])

    def delete_events(self, uids: list[str], *, cur: Any) -> int:
        """Delete events by uid inside the caller's transaction, subtracting them from every
        rollup. Returns how many were deleted. (Issue 4: provider usage yielding to the log.)"""
        old = self._take_events(cur, list(uids))
        if old.empty:
            return 0
        self._apply_rollup_deltas(cur, [(old, -1)])
        return len(old)

    # -- bookkeeping -------------------------------------------------------------------------

    def start_import(self, source: str, kind: str = "", content_hash: str = "") -> int:
        """Record that an import began; returns its id."""
        with self.transaction() as cur:
            cur.execute(
                self.sql(
                    "INSERT INTO import_runs (source, kind, started_us, status, content_hash, "
                    "rows_read, rows_imported, rows_rejected, cursor, message) "
                    "VALUES (?, ?, ?, 'running', ?, 0, 0, 0, '', '')"
                ),
                [source, kind, now_us(), content_hash],
            )
            if self.dialect == "postgresql":
                cur.execute("SELECT lastval()")
                return int(cur.fetchone()[0])
            return int(cur.lastrowid)

    def finish_import(
        self,
        import_id: int,
        *,
        status: str,
        rows_read: int = 0,
        rows_imported: int = 0,
        rows_rejected: int = 0,
        cursor: str = "",
        message: str = "",
        cur: Any = None,
    ) -> None:
        """Record how an import ended (status 'ok', 'partial' or 'failed') and its cursor."""
        statement = self.sql(
            "UPDATE import_runs SET finished_us = ?, status = ?, rows_read = ?, rows_imported = ?, "
            "rows_rejected = ?, cursor = ?, message = ? WHERE id = ?"
        )
        params = [now_us(), status, rows_read, rows_imported, rows_rejected, cursor, message, import_id]
        if cur is not None:
            cur.execute(statement, params)
        else:
            with self.transaction() as own:
                own.execute(statement, params)

    def last_cursor(self, source: str) -> str | None:
        """The high-water mark of the newest successful import from `source`, if any."""
        return self.scalar(
            "SELECT cursor FROM import_runs WHERE source = ? AND status IN ('ok', 'partial') "
            "AND cursor <> '' ORDER BY id DESC LIMIT 1",
            [source],
        )

    def has_events(self) -> bool:
        """True when at least one usage event is stored."""
        return self.scalar("SELECT 1 FROM usage_events LIMIT 1") is not None


UID_MAX_LENGTH = 64  # usage_events.uid is VARCHAR(64); PostgreSQL enforces it, SQLite does not


def _bounded_uid(uid: str) -> str:
    """`uid` itself when it fits the column, else its stable digest (see `_bounded_uids`)."""
    if len(uid) <= UID_MAX_LENGTH:
        return uid
    return f"{uid.split(':', 1)[0][:3]}:sha256:{hashlib.sha256(uid.encode()).hexdigest()[:52]}"


def _bounded_uids(frame: pd.DataFrame) -> pd.DataFrame:
    """Replace uids longer than the column (e.g. `req:` + a very long request id) by a stable
    digest, `<prefix>:sha256:<52 hex>` (208 bits), so they still identify the event across re-imports
    instead of failing the whole batch. Returns `frame` itself when every uid fits."""
    uids = frame["uid"].tolist()
    if all(len(u) <= UID_MAX_LENGTH for u in uids):
        return frame
    bounded = [_bounded_uid(u) for u in uids]
    out = frame.copy()
    out["uid"] = pd.Series(bounded, index=frame.index, dtype=object)
    return out


def _records_frame(rows: list[tuple], columns: list[str]) -> pd.DataFrame:
    """Rows -> DataFrame, keeping integer columns that hold NULLs exact.

    `from_records` turns an integer column with a NULL into float64 with NaN, which is inexact
    above 2**53 (a pico-dollar amount of about $9,007). Such columns become object columns of
    Python ints and None instead.
    """
    frame = pd.DataFrame.from_records(rows, columns=columns)
    for position in range(len(columns)):
        column = frame.iloc[:, position]
        if column.dtype.kind == "f" and column.isna().any():
            values = [row[position] for row in rows]
            if not any(isinstance(v, float) for v in values):
                frame.isetitem(position, pd.Series(values, dtype=object, index=frame.index))
    return frame

# -- fast event and rollup rows ------------------------------------------------------------------

_LITERAL_MAX_LEN = 200


@dataclass(frozen=True)
class _EventColumns:
    """An event frame ready to insert: columns with one value in every row as SQL literals
    (`constants`), the others (`varying`, in EVENT_COLUMNS order) as lists of plain values."""

    varying: list[str]
    constants: dict[str, str]
    columns: list[list[Any]]
    count: int

    def rows(self) -> Iterator[tuple]:
        """The varying values row by row (a lazy iterator: the DBAPI binds each tuple and drops
        it, so a million-row batch never holds a million tuples)."""
        return zip(*self.columns)


def _split_event_columns(frame: pd.DataFrame) -> _EventColumns:
    """Check the frame's columns and split them into constant literals and varying values.

    Each varying column is converted once to a list of Python values (`_plain_values`) and the
    rows are built by one `zip`, so the cost is a few C-level passes per column, not per row."""
    missing = [c for c in EVENT_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"event frame lacks columns: {', '.join(missing)}")
    constants: dict[str, str] = {}
    varying: list[str] = []
    lists: list[list[Any]] = []
    for name in EVENT_COLUMNS:
        series = frame[name]
        literal = None if name == "uid" else _constant_literal(series)
        if literal is not None:
            constants[name] = literal
        else:
            varying.append(name)
            lists.append(_plain_values(series, integer=name in _INTEGER_EVENT_COLUMNS))
    return _EventColumns(varying, constants, lists, len(frame))


def _zip_rows(lists: list[list[Any]]) -> list[tuple]:
    """Columns -> row tuples, with the cyclic garbage collector paused: a million new tuples
    would otherwise trigger dozens of full collections over every live object (~40% of the time)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        return list(zip(*lists))
    finally:
        if enabled:
            gc.enable()


_INTEGER_EVENT_COLUMNS = frozenset(
    c.name for c in UsageEvent.__table__.columns  # type: ignore[attr-defined]
    if isinstance(c.type, (BigInteger, Integer)) and c.name != "id"
)


def _whole_numbers(values: list[Any]) -> list[Any]:
    """Integer columns: whole floats (e.g. 101.0 from a column that had gaps) -> int, so that
    PostgreSQL's COPY accepts them as it accepts ints (SQLite stores them as integers anyway)."""
    return [int(v) if type(v) is float and v.is_integer() else v for v in values]


def _constant_literal(series: pd.Series) -> str | None:
    """The SQL literal of a column whose rows all hold the same plain value, else None."""
    if len(series) == 0:
        return None
    if series.dtype.kind in "iu" and not isinstance(series.dtype, pd.api.extensions.ExtensionDtype):
        values = series.to_numpy()
        first = values[0]
        return str(int(first)) if values[-1] == first and (values == first).all() else None
    if series.dtype == object and series.iloc[0] is None:
        values = series.to_numpy()
        return "NULL" if values[-1] is None and bool((values == None).all()) else None  # noqa: E711
    if series.name in _INTEGER_EVENT_COLUMNS:
        return None
    if series.dtype.kind == "f" and not isinstance(series.dtype, pd.api.extensions.ExtensionDtype):
        values = series.to_numpy()
        first = float(values[0])
        if not np.isfinite(first) or values[-1] != first or not (values == first).all():
            return None
        return repr(first)
    if series.dtype != object:
        return None
    values = series.to_numpy()
    first = values[0]
    if first is None:
        return "NULL" if values[-1] is None and bool((values == None).all()) else None  # noqa: E711
    if type(first) is not str or len(first) > _LITERAL_MAX_LEN or "\x00" in first:
        return None
    if values[-1] != first or not (values == first).all():
        return None
    return "'" + first.replace("'", "''") + "'"


def _any_nonzero(values: Any) -> bool:
    return bool(np.any(values != 0)) if isinstance(values, np.ndarray) else bool(values.astype(bool).any())


PARALLEL_ROLLUP_ROWS = 20_000  # events: from this batch size, rollup deltas are computed on a second thread
STAGED_ROLLUP_ROWS = 200  # rollup delta rows: above this, upserted through a staging table
SMALL_ROLLUP_BATCH = 300  # rows: below this, rollup deltas are summed in plain Python

RollupDeltas = dict[str, tuple[list[str], list[tuple]]]
EventsPart = "pd.DataFrame | dict[str, list[Any]]"  # a frame, or column name -> plain values


class _Background:
    """A function call running on its own daemon thread; `result()` joins it and returns its
    value or raises its exception."""

    def __init__(self, function: Any, *args: Any) -> None:
        self._value: Any = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(function, args), daemon=True, name="walleta-rollups")
        self._thread.start()

    def _run(self, function: Any, args: tuple) -> None:
        try:
            self._value = function(*args)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller of result()
            self._error = exc

    def result(self) -> Any:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value


def _row_count(part: pd.DataFrame | dict[str, list[Any]]) -> int:
    return len(part["uid"]) if isinstance(part, dict) else len(part)


UID_SORT_MIN_ROWS = 10_000


ROWS_PER_STATEMENT = 32  # SQLite inserts: rows per multi-row INSERT statement
MAX_BOUND_VALUES = 999  # per statement: the smallest SQLITE_MAX_VARIABLE_NUMBER in use


def _insert_many(cur: Any, head: str, row: str, tail: str, rows: Iterator[tuple]) -> None:
    """Run `head + row, row, ... + tail` over `rows` (tuples of values for the `?` of `row`),
    ROWS_PER_STATEMENT rows per statement and the remainder in one last statement:
    SQLite steps one statement per 32 rows ~25% faster than one per row (measured: 1M events
    with the uid and time indexes, 4.5 -> 3.4 s CPU). Fewer rows when `row` has many `?`: a
    statement binds at most 999 values (SQLite's limit before 3.32, still found in some Linux
    distributions' Python)."""
    per = max(1, min(ROWS_PER_STATEMENT, MAX_BOUND_VALUES // max(1, row.count("?"))))
    chain = itertools.chain.from_iterable
    rest: list[tuple] = []

    def full_groups() -> Iterator[tuple]:
        while True:
            group = list(itertools.islice(rows, per))
            if len(group) < per:
                rest.extend(group)
                return
            yield tuple(chain(group))

    cur.executemany(head + ", ".join([row] * per) + tail, full_groups())
    if rest:
        cur.execute(head + ", ".join([row] * len(rest)) + tail, tuple(chain(rest)))


def _uid_ordered(frame: pd.DataFrame) -> pd.DataFrame:
    """A large frame in uid order (stable: of repeated uids the first still wins), so SQLite
    fills the uid index page after page instead of at random places (content-hash uids are
    random; measured ~30% less insert CPU at 600k rows into 600k). `frame` itself when small
    or already ordered (e.g. sequential request ids)."""
    if len(frame) < UID_SORT_MIN_ROWS:
        return frame
    uids = frame["uid"].to_numpy(dtype=object)
    if pd.Index(uids).is_monotonic_increasing:
        return frame
    try:
        keys = uids.astype(str)  # fixed-width text: a C sort, in Python's code-point order
    except (TypeError, ValueError):
        return frame
    return frame.take(np.argsort(keys, kind="stable"))


def _first_of_each_uid(batch: pd.DataFrame | dict[str, list[Any]]) -> pd.DataFrame | dict[str, list[Any]]:
    """The batch without later rows of a repeated uid (same kind of batch)."""
    if isinstance(batch, dict):
        seen: set[str] = set()
        keep = [i for i, uid in enumerate(batch["uid"]) if not (uid in seen or seen.add(uid))]
        return {c: [values[i] for i in keep] for c, values in batch.items()}
    return batch[~batch["uid"].duplicated(keep="first")]


def _subset(batch: pd.DataFrame | dict[str, list[Any]], uids: set[str]) -> pd.DataFrame | dict[str, list[Any]]:
    """The rows of a batch whose uid is in `uids` (same kind of batch)."""
    if isinstance(batch, dict):
        keep = [i for i, uid in enumerate(batch["uid"]) if uid in uids]
        return {c: [values[i] for i in keep] for c, values in batch.items()}
    return batch[batch["uid"].isin(uids)]


def _small_batch(frame: pd.DataFrame) -> dict[str, list[Any]]:
    """A small event frame as EVENT_COLUMNS -> lists of plain values (NA -> None, numpy scalars
    -> Python, bools and whole floats in integer columns -> int): one `to_numpy` for the
    whole frame instead of pandas work per column."""
    missing = [c for c in EVENT_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"event frame lacks columns: {', '.join(missing)}")
    positions = {name: i for i, name in enumerate(frame.columns)}
    matrix = frame.to_numpy(dtype=object)
    return {
        name: [_plain_value(v, name in _INTEGER_EVENT_COLUMNS) for v in matrix[:, positions[name]].tolist()]
        for name in EVENT_COLUMNS
    }


def _plain_value(value: Any, integer: bool) -> Any:
    """One value as the DBAPI should bind it (see `_small_batch`)."""
    kind = type(value)
    if kind is str or kind is int:
        return value
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, float):
        if value != value:
            return None
        if integer and value.is_integer():
            return int(value)
    return value


def rollup_deltas(parts: Sequence[tuple[pd.DataFrame | dict[str, list[Any]], int]]) -> RollupDeltas:
    """The signed change of every rollup for some events added (sign 1) and removed (sign -1).

    Input: (events frame with ROLLUP_SOURCE_COLUMNS, sign) parts. Output: rollup name ->
    (measure names, rows), each row = key values + summed measures, sorted by key (Python's
    order), one row per key, rows whose every measure nets to 0 left out. The measures are
    "events" first, then those that are non-zero in some event of the batch (the others would
    add 0). Small batches are summed in plain Python, large ones in numpy; both give the same."""
    parts = [(frame, sign) for frame, sign in parts if _row_count(frame)]
    if not parts:
        return {name: (["events"], []) for name in ROLLUPS}
    if sum(_row_count(frame) for frame, _ in parts) <= SMALL_ROLLUP_BATCH:
        return _rollup_deltas_python(parts)
    return _rollup_deltas_numpy([(pd.DataFrame(f) if isinstance(f, dict) else f, sign) for f, sign in parts])


def _is_missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and value != value)


def _rollup_deltas_python(parts: Sequence[tuple[pd.DataFrame | dict[str, list[Any]], int]]) -> RollupDeltas:
    """`rollup_deltas` for a few hundred rows: dicts of Python ints (no pandas grouping)."""
    width = len(ROLLUP_MEASURES)
    index = {m: i for i, m in enumerate(ROLLUP_MEASURES)}
    plain = [m for m in ROLLUP_MEASURES if m in ("requests", *TOKEN_COLUMNS, *QUANTITY_COLUMNS)]
    sums: dict[str, dict[tuple, list[int]]] = {name: {} for name in ROLLUPS}
    used = [False] * width
    for frame, sign in parts:
        columns = frame if isinstance(frame, dict) else {c: frame[c].tolist() for c in ROLLUP_SOURCE_COLUMNS}
        for row in range(_row_count(frame)):
            values = [0] * width
            values[index["events"]] = 1
            for m in plain:
                values[index[m]] = int(columns[m][row])
            requests = values[index["requests"]]
            if columns["status"][row] != "ok":
                values[index["errors"]] = requests
            cost, provider = columns["cost_pico"][row], columns["provider_cost_pico"][row]
            if _is_missing(cost):
                values[index["unpriced_events"]] = 1
                values[index["unpriced_requests"]] = requests
                values[index["unpriced_tokens"]] = int(columns["input_tokens"][row]) + int(columns["output_tokens"][row])
            else:
                values[index["cost_pico"]] = int(cost)
            if not _is_missing(provider):
                values[index["provider_cost_pico"]] = int(provider)
            for i, v in enumerate(values):
                if v:
                    used[i] = True
            if sign < 0:
                values = [-v for v in values]
            for name, keys in ROLLUPS.items():
                key = tuple(columns[k][row] for k in keys)
                total = sums[name].get(key)
                if total is None:
                    sums[name][key] = values
                else:
                    sums[name][key] = [a + b for a, b in zip(total, values)]
    active = [i for i in range(width) if used[i] or i == index["events"]]
    measures = [ROLLUP_MEASURES[i] for i in active]
    out: RollupDeltas = {}
    for name, groups in sums.items():
        rows = []
        for key in sorted(groups):
            deltas = tuple(groups[key][i] for i in active)
            if any(deltas):
                rows.append((*key, *deltas))
        out[name] = (measures, rows)
    return out


def _rollup_deltas_numpy(parts: Sequence[tuple[pd.DataFrame, int]]) -> RollupDeltas:
    """`rollup_deltas` for large batches: keys factorised in sorted order, the events summed once
    at the finest key (every rollup key column together), then each rollup from those sums."""
    parts = [(frame, sign) for frame, sign in parts if len(frame)]
    if not parts:
        return {name: (["events"], []) for name in ROLLUPS}
    if len(parts) == 1:
        events = parts[0][0]  # read in place: no copy of a million-row frame
    else:
        events = pd.concat([frame.loc[:, list(ROLLUP_SOURCE_COLUMNS)] for frame, _ in parts], ignore_index=True)
    measures = rollup_measures(events)
    active = [m for m in ROLLUP_MEASURES if m == "events" or _any_nonzero(measures[m])]
    matrix = _measure_matrix(measures[active], [(len(f), sign) for f, sign in parts])
    key_columns = list(dict.fromkeys(k for keys in ROLLUPS.values() for k in keys))
    factorised = {k: pd.factorize(events[k].to_numpy(), sort=True, use_na_sentinel=False) for k in key_columns}
    # Finest groups first: every rollup is a coarser grouping of them.
    finest, fine_sums = _sorted_group_sums([factorised[k][0] for k in key_columns], matrix)
    fine_codes = {k: factorised[k][0][finest] for k in key_columns}
    out: RollupDeltas = {}
    for name, keys in ROLLUPS.items():
        firsts, sums = _sorted_group_sums([fine_codes[k] for k in keys], fine_sums)
        keep = np.any(sums != 0, axis=1)
        firsts, sums = firsts[keep], sums[keep]
        key_lists = [factorised[k][1].take(fine_codes[k][firsts]).tolist() for k in keys]
        sum_lists = [[int(v) for v in column] if sums.dtype == object else column.tolist() for column in sums.T]
        out[name] = (active, list(zip(*key_lists, *sum_lists)))
    return out


def _measure_matrix(measures: pd.DataFrame, signs: list[tuple[int, int]]) -> np.ndarray:
    """Rows x measures, signed per part: int64 when no group sum can pass int64, else Python ints."""
    columns = [measures[m].to_numpy() for m in measures.columns]
    n = len(measures)
    exact = all(c.dtype == np.int64 for c in columns) and all(
        int(np.abs(c).max(initial=0)) * n < 2**62 for c in columns
    )
    matrix = np.column_stack(columns).astype(np.int64 if exact else object)
    if any(sign < 0 for _, sign in signs):
        factor = np.concatenate([np.full(size, sign, dtype=np.int64) for size, sign in signs])
        matrix = matrix * factor[:, None]
    return matrix


def _sorted_group_sums(code_arrays: list[np.ndarray], matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Group rows by the combination of sorted factor codes. Returns (a row index of each group,
    the group sums), groups in lexicographic key order (codes are ranks, so int order = key order)."""
    combined = np.zeros(len(matrix), dtype=np.int64)
    radix = 1
    for codes in code_arrays:
        width = int(codes.max(initial=0)) + 1
        if radix * width >= 2**62:  # too many combinations for one int64: re-rank (keeps the order)
            combined = np.unique(combined, return_inverse=True)[1].astype(np.int64).reshape(-1)
            radix = int(combined.max(initial=0)) + 1
        combined = combined * width + codes
        radix *= width
    order = np.argsort(combined, kind="stable")
    ordered = combined[order]
    starts = np.flatnonzero(np.concatenate(([True], ordered[1:] != ordered[:-1])))
    return order[starts], np.add.reduceat(matrix[order], starts, axis=0)


def _frame_to_rows(frame: pd.DataFrame) -> list[tuple]:
    """DataFrame -> list of plain tuples in EVENT_COLUMNS order, NULL for missing values."""
    missing = [c for c in EVENT_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"event frame lacks columns: {', '.join(missing)}")
    return _zip_rows([_plain_values(frame[name], integer=name in _INTEGER_EVENT_COLUMNS) for name in EVENT_COLUMNS])


def _plain_values(series: pd.Series, *, integer: bool = False) -> list[Any]:
    """A column as Python values the DBAPI can bind: numpy scalars -> int/float, NA/NaN -> None,
    and (`integer`) whole floats -> int. Columns with nothing missing take one `tolist()`."""
    dtype = series.dtype
    extension = isinstance(dtype, pd.api.extensions.ExtensionDtype)
    if dtype.kind in "iub" and not extension:
        return series.to_numpy().tolist()
    if dtype.kind == "f" and not extension:
        array = series.to_numpy()
        missing = np.isnan(array)
        if integer and bool(np.all(np.isfinite(array) | missing)) and bool(np.all(array[~missing] == np.floor(array[~missing]))):
            if not missing.any():
                return array.astype(np.int64).tolist()
            values = np.where(missing, 0, array).astype(np.int64).astype(object)
        elif not missing.any():
            return array.tolist()
        else:
            values = array.astype(object)
        values[missing] = None
        return values.tolist()
    if extension and dtype.kind in "iufb" and getattr(dtype, "na_value", None) is pd.NA:
        return series.to_numpy(dtype=object, na_value=None).tolist()  # masked arrays give Python scalars
    values = series.to_numpy(dtype=object)
    kind = pd.api.types.infer_dtype(values, skipna=False)
    if kind in ("string", "empty") or (kind == "integer" and not _has_numpy_scalars(values)):
        return values.tolist()  # only str, or only Python ints: nothing is missing or to convert
    missing = pd.isna(values)
    if missing.any():
        values = values.copy()
        values[missing] = None
    plain = [v.item() if isinstance(v, np.generic) else v for v in values] if _has_numpy_scalars(values) else values.tolist()
    return _whole_numbers(plain) if integer else plain


def _has_numpy_scalars(values: np.ndarray) -> bool:
    sample = values[: min(len(values), 64)]
    return any(isinstance(v, np.generic) for v in sample)


ROLLUP_SOURCE_COLUMNS: tuple[str, ...] = tuple(
    dict.fromkeys(
        (*(k for keys in ROLLUPS.values() for k in keys), "requests", "status", "cost_pico", "provider_cost_pico",
         *[m for m in ROLLUP_MEASURES if m in EVENT_COLUMNS])
    )
)


def _chunks(values: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def rollup_measures(events: pd.DataFrame) -> pd.DataFrame:
    """The rollup measures of each event row (before grouping), as int64 or Python-int columns."""
    cost = events["cost_pico"]
    unpriced = cost.isna().to_numpy()
    requests = events["requests"].to_numpy(dtype=np.int64)
    columns: dict[str, Any] = {}
    for measure in ROLLUP_MEASURES:
        if measure == "events":
            columns[measure] = np.ones(len(events), dtype=np.int64)
        elif measure == "errors":
            columns[measure] = np.where(events["status"].to_numpy(dtype=object) != "ok", requests, 0)
        elif measure in ("cost_pico", "provider_cost_pico"):
            columns[measure] = _money_column(events[measure])
        elif measure == "unpriced_events":
            columns[measure] = unpriced.astype(np.int64)
        elif measure == "unpriced_requests":
            columns[measure] = np.where(unpriced, requests, 0)
        elif measure == "unpriced_tokens":
            tokens = events["input_tokens"].to_numpy(dtype=np.int64) + events["output_tokens"].to_numpy(dtype=np.int64)
            columns[measure] = np.where(unpriced, tokens, 0)
        else:
            columns[measure] = events[measure].to_numpy(dtype=np.int64)
    return pd.DataFrame(columns, index=events.index)


def _money_column(series: pd.Series) -> Any:
    """A nullable pico column as int64 with NULL -> 0, or Python ints if it exceeds int64."""
    if series.dtype != object:
        return series.fillna(0).to_numpy(dtype=np.int64)
    values = series.to_numpy(dtype=object)
    missing = pd.isna(values)
    if missing.all():  # e.g. provider_cost_pico of logged calls: no per-row Python work
        return np.zeros(len(values), dtype=np.int64)
    if missing.any():
        values = values.copy()
        values[missing] = 0
    if pd.api.types.infer_dtype(values, skipna=False) == "integer":
        try:
            exact = values.astype(np.int64)
        except OverflowError:
            exact = None
        if exact is not None and (len(exact) == 0 or int(np.abs(exact).max()) < 2**62):
            return exact
    plain = [int(v) for v in values]
    if all(-(2**62) < v < 2**62 for v in plain):
        return np.array(plain, dtype=np.int64)
    return np.array(plain, dtype=object)


def _rollup_values_sql(name: str, keys: tuple[str, ...], measures: Sequence[str] = ROLLUP_MEASURES) -> str:
    columns = (*keys, *measures)
    updates = ", ".join(f"{m} = {name}.{m} + excluded.{m}" for m in measures)
    return (
        f"INSERT INTO {name} ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)}) "
        f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {updates}"
    )


def _measure_sql(measure: str) -> str:
    expressions = {
        "events": "COUNT(*)",
        "errors": "SUM(CASE WHEN status <> 'ok' THEN requests ELSE 0 END)",
        "cost_pico": "SUM(COALESCE(cost_pico, 0))",
        "provider_cost_pico": "SUM(COALESCE(provider_cost_pico, 0))",
        "unpriced_events": "SUM(CASE WHEN cost_pico IS NULL THEN 1 ELSE 0 END)",
        "unpriced_requests": "SUM(CASE WHEN cost_pico IS NULL THEN requests ELSE 0 END)",
        "unpriced_tokens": "SUM(CASE WHEN cost_pico IS NULL THEN input_tokens + output_tokens ELSE 0 END)",
    }
    return f"CAST({expressions.get(measure, f'SUM({measure})')} AS BIGINT)"


def _rollup_upsert_sql(name: str, keys: tuple[str, ...], source: str, sign: int) -> str:
    measures = ", ".join(
        f"{'-' if sign < 0 else ''}{_measure_sql(m)}" for m in ROLLUP_MEASURES
    )
    key_list = ", ".join(keys)
    updates = ", ".join(f"{m} = {name}.{m} + excluded.{m}" for m in ROLLUP_MEASURES)
    # `WHERE 1 = 1` resolves SQLite's parsing ambiguity between a join and ON CONFLICT.
    return (
        f"INSERT INTO {name} ({key_list}, {', '.join(ROLLUP_MEASURES)}) "
        f"SELECT {key_list}, {measures} FROM {source} WHERE 1 = 1 GROUP BY {key_list} "
        f"ON CONFLICT ({key_list}) DO UPDATE SET {updates}"
    )


def open_store(url: str | None = None, *, create: bool = True) -> Store:
    """Open (and by default create or upgrade) the database at `url`.

    `url` falls back to $WALLETA_DATABASE_URL, then `data/walleta.db` (see `walleta.config`).
    """
    store = Store(_create_engine(resolve_database_url(url)))
    if create:
        with _storage_errors(store.url):
            store.init_schema()
    return store
