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

import sqlite3
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Literal, Sequence

import numpy as np
import pandas as pd
from sqlalchemy import create_engine, event, inspect
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.pool import StaticPool

from . import migrations
from .config import resolve_database_url
from .errors import ConfigError, SchemaError
from .schema import EVENT_COLUMNS, ROLLUP_MEASURES, ROLLUPS, SCHEMA_VERSION, metadata

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
        """Create missing tables and upgrade an older schema; refuse a newer one."""
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
            for step in migrations.steps_after(version):
                step(cur, self.dialect)
            self._set_meta(cur, "schema_version", str(SCHEMA_VERSION))

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
        raw = self.engine.raw_connection()
        try:
            cur = raw.cursor()
            cur.execute("BEGIN IMMEDIATE" if self.dialect == "sqlite" else "BEGIN")
            try:
                yield cur
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            finally:
                cur.close()
        finally:
            raw.close()

    def execute(self, statement: str, params: Sequence[Any] = ()) -> int:
        """Run one write statement in its own transaction; returns the row count."""
        with self.transaction() as cur:
            cur.execute(self.sql(statement), list(params))
            return int(cur.rowcount or 0)

    def query(self, statement: str, params: Sequence[Any] = ()) -> pd.DataFrame:
        """Run a SELECT and return its rows as a DataFrame (column names from the query)."""
        raw = self.engine.raw_connection()
        try:
            cur = raw.cursor()
            cur.execute(self.sql(statement), list(params))
            columns = [d[0] for d in cur.description]
            rows = cur.fetchall()
            cur.close()
        finally:
            raw.close()
        return _records_frame(rows, columns)

    def scalar(self, statement: str, params: Sequence[Any] = ()) -> Any:
        """The first column of the first row, or None."""
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
        flags = [c for c, dtype in frame.dtypes.items() if dtype.kind == "b"]
        if flags:  # bool flags (batch, estimated) are INTEGER columns; PostgreSQL refuses True there
            frame = frame.astype({c: "int64" for c in flags})
        if cur is not None:
            return self._merge_events(cur, frame, on_conflict)
        with self.transaction() as own:
            return self._merge_events(own, frame, on_conflict)

    def _merge_events(self, cur: Any, frame: pd.DataFrame, on_conflict: str) -> WriteResult:
        uids = frame["uid"].tolist()
        old = pd.DataFrame()
        if on_conflict == "replace":
            old = self._events_by_uid(cur, uids)
            if not old.empty:
                self._delete_by_uid(cur, old["uid"].tolist())
        rows = _frame_to_rows(frame)
        inserted_uids = self._insert_rows(cur, rows)
        fresh = frame if inserted_uids is None else frame[frame["uid"].isin(inserted_uids)]
        self._apply_rollup_deltas(cur, fresh, old)
        replaced = len(old)
        return WriteResult(inserted=len(fresh) - replaced, replaced=replaced, skipped=len(frame) - len(fresh))

    def _insert_rows(self, cur: Any, rows: list[tuple]) -> set[str] | None:
        """Insert event rows, skipping uids already stored. Returns the inserted uids, or None
        when every row was inserted (the common case, which needs no second look)."""
        columns = ", ".join(EVENT_COLUMNS)
        if self.dialect == "postgresql":
            cur.execute(
                f"CREATE TEMP TABLE IF NOT EXISTS {STAGE_TABLE} ON COMMIT DELETE ROWS AS "
                f"SELECT {columns} FROM usage_events WITH NO DATA"
            )
            with cur.copy(f"COPY {STAGE_TABLE} ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            cur.execute(
                f"INSERT INTO usage_events ({columns}) SELECT {columns} FROM {STAGE_TABLE} "
                f"ON CONFLICT (uid) DO NOTHING RETURNING uid"
            )
            inserted = {r[0] for r in cur.fetchall()}
            cur.execute(f"DELETE FROM {STAGE_TABLE}")
            return None if len(inserted) == len(rows) else inserted
        cur.execute("SELECT COALESCE(MAX(id), 0) FROM usage_events")
        highest_before = int(cur.fetchone()[0])
        placeholders = ", ".join("?" for _ in EVENT_COLUMNS)
        # ON CONFLICT (uid), not INSERT OR IGNORE: OR IGNORE would also silently drop rows that
        # break NOT NULL (and count them as duplicates) where PostgreSQL raises.
        cur.executemany(
            f"INSERT INTO usage_events ({columns}) VALUES ({placeholders}) ON CONFLICT (uid) DO NOTHING", rows
        )
        if cur.rowcount == len(rows):
            return None
        # We hold the write lock, so every id above the old maximum is one of ours.
        cur.execute("SELECT uid FROM usage_events WHERE id > ?", [highest_before])
        return {r[0] for r in cur.fetchall()}

    def _events_by_uid(self, cur: Any, uids: list[str]) -> pd.DataFrame:
        wanted = ", ".join(dict.fromkeys(("uid", *ROLLUP_SOURCE_COLUMNS)))
        frames = []
        for chunk in _chunks(uids, 500):
            cur.execute(
                self.sql(f"SELECT {wanted} FROM usage_events WHERE uid IN ({', '.join('?' for _ in chunk)})"),
                chunk,
            )
            frames.append(_records_frame(cur.fetchall(), [d[0] for d in cur.description]))
        found = [f for f in frames if not f.empty]
        return pd.concat(found, ignore_index=True) if found else pd.DataFrame()

    def _delete_by_uid(self, cur: Any, uids: list[str]) -> None:
        for chunk in _chunks(sorted(uids), 500):  # one lock order for concurrent writers
            cur.execute(self.sql(f"DELETE FROM usage_events WHERE uid IN ({', '.join('?' for _ in chunk)})"), chunk)

    def _apply_rollup_deltas(self, cur: Any, added: pd.DataFrame, removed: pd.DataFrame | None = None) -> None:
        """Add the `added` events to every rollup and subtract the `removed` ones.

        One upsert pass per rollup, in sorted key order: concurrent writers on PostgreSQL then
        lock rollup rows in the same order and cannot deadlock each other.
        """
        parts = [(events, sign) for events, sign in ((added, 1), (removed, -1)) if events is not None and not events.empty]
        if not parts:
            return
        signed = [(events, rollup_measures(events) if sign > 0 else -rollup_measures(events)) for events, sign in parts]
        for name, keys in ROLLUPS.items():
            grouped = [measures.groupby([events[k] for k in keys], sort=False).sum() for events, measures in signed]
            if len(grouped) == 1:
                delta = grouped[0]
            else:
                delta = pd.concat(grouped).groupby(level=list(range(len(keys))), sort=False).sum()
                delta = delta[(delta != 0).any(axis=1)]  # keys whose rows were replaced by identical ones
            flat = delta.reset_index()
            # Column-wise tolist() turns numpy values into Python ints/str in C.
            rows = list(zip(*(flat[column].tolist() for column in flat.columns)))
            rows.sort(key=lambda row: row[: len(keys)])
            if rows:
                cur.executemany(self.sql(_rollup_values_sql(name, keys)), rows)
            if len(parts) > 1 or parts[0][1] < 0:
                cur.execute(f"DELETE FROM {name} WHERE events = 0")

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

    def delete_events(self, uids: list[str], *, cur: Any) -> int:
        """Delete events by uid inside the caller's transaction, subtracting them from every
        rollup. Returns how many were deleted. (Issue 4: provider usage yielding to the log.)"""
        old = self._events_by_uid(cur, list(uids))
        if old.empty:
            return 0
        self._delete_by_uid(cur, old["uid"].tolist())
        self._apply_rollup_deltas(cur, old, sign=-1)
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


def _frame_to_rows(frame: pd.DataFrame) -> list[tuple]:
    """DataFrame -> list of plain tuples in EVENT_COLUMNS order, NULL for missing values."""
    missing = [c for c in EVENT_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"event frame lacks columns: {', '.join(missing)}")
    return list(zip(*(_plain_values(frame[name]) for name in EVENT_COLUMNS)))


def _plain_values(series: pd.Series) -> list[Any]:
    """A column as Python values the DBAPI can bind (numpy scalars -> int/float, NA -> None)."""
    if series.dtype.kind in "iuf" and not isinstance(series.dtype, pd.api.extensions.ExtensionDtype):
        return series.tolist()
    values = series.to_numpy(dtype=object, na_value=None)
    if series.dtype == object or isinstance(series.dtype, pd.api.extensions.ExtensionDtype):
        values = np.where(pd.isna(values), None, values)
    return [v.item() if isinstance(v, np.generic) else v for v in values] if _has_numpy_scalars(values) else values.tolist()


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
    if series.dtype == object:
        values = [0 if v is None or v is pd.NA else int(v) for v in series.tolist()]
        if all(-(2**62) < v < 2**62 for v in values):
            return np.array(values, dtype=np.int64)
        return np.array(values, dtype=object)
    return series.fillna(0).to_numpy(dtype=np.int64)


def _rollup_values_sql(name: str, keys: tuple[str, ...]) -> str:
    columns = (*keys, *ROLLUP_MEASURES)
    updates = ", ".join(f"{m} = {name}.{m} + excluded.{m}" for m in ROLLUP_MEASURES)
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
        store.init_schema()
    return store
