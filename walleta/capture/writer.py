"""The background recorder: the caller enqueues, one thread parses, prices and writes in batches.

Flush policy (what "durable" means for a recorded call):

- The caller's thread only appends a `CallRecord` (or, for an in-memory body, a plain tuple
  turned into one here) to a deque (no parsing, no I/O, no lock, no system call).
- The recorder thread wakes every `flush_interval` seconds (default 0.2 s) or as soon as
  `batch_size` records (default 500) are queued, turns everything queued into usage events
  (`events.prepare_events`, source "log") and writes them in one transaction
  (`Store.write_events`, `on_conflict="ignore"`: executemany on SQLite, COPY on PostgreSQL).
- `flush()` returns once everything enqueued before it is written (or buffered, see below);
  `close()`, the `with` block of a Recorder, closing the instrumented OpenAI client, and
  interpreter exit (atexit) all flush.
- On a hard kill (SIGKILL, power loss) what can be lost is what was not yet committed: at most
  the events of the last `flush_interval`, plus one batch being written, as long as the writer
  keeps up (one batch holds at most `batch_size` events unless the database is slower than
  the caller).

When the database is unavailable or locked, events are kept in memory (at most `max_buffer`
events); beyond that, and at close/exit while the database is still away, they are appended to
a JSONL spill file (default: beside the SQLite file, else `~/.cache/walleta`; override with
`spill_dir=` or $WALLETA_SPILL_DIR). Writes are retried with exponential backoff (0.5 s to
30 s); once a write succeeds, spill files (of any process) are replayed and deleted. Event uids
are idempotency keys (`req:<x-request-id>`, else a client-side `evt:<uuid4>` fixed before
buffering), so replaying twice stores nothing twice. Problems are reported with `logging`
(logger `walleta.capture`), never raised into the caller.
"""

from __future__ import annotations

import atexit
import collections
import glob
import json
import logging
import os
import threading
import time
import uuid
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

import pandas as pd

from ..catalog import Catalog, load_catalog
from ..events import prepare_events
from ..schema import EVENT_COLUMNS
from ..store import Store, open_store
from ..sources.usage_rule import apply_rule_to_logged_days
from .extract import UNPRICED_NOTE, extract_event
from .tokens import TokenCounter, default_counter
from . import transport as _transport
from .transport import CallRecord, Received

if TYPE_CHECKING:  # pragma: no cover
    from .limits import LimitTracker

__all__ = ["Recorder", "SPILL_ENV", "SPILL_PATTERN"]

log = logging.getLogger("walleta.capture")

SPILL_ENV = "WALLETA_SPILL_DIR"
SPILL_PATTERN = "walleta-capture-*.spill*"
_REPLAY_CHUNK = 5_000

try:  # POSIX advisory locks keep a replaying process from racing an appending one
    import fcntl
except ImportError:  # pragma: no cover - Windows: spill files are per process, replay is best effort
    fcntl = None  # type: ignore[assignment]


class _Marker:
    """Put in the queue by flush(): set once everything queued before it is handled."""

    __slots__ = ("event", "ok")

    def __init__(self) -> None:
        self.event = threading.Event()
        self.ok = False


_RECORDERS: "weakref.WeakSet[Recorder]" = weakref.WeakSet()


class Recorder:
    """Writes captured calls to a Walleta store from a background thread.

    Inputs: `store` (a Store, a database URL, or None for the default database),
    `catalog` (prices; default `load_catalog()`), `counter` (token estimator; default bundled
    tiktoken), `batch_size`, `flush_interval` (seconds), `max_buffer` (events kept in memory
    while the database is away), `spill_dir`, `retry_initial`/`retry_max` (backoff seconds).
    Use as a context manager, or call `close()`; `flush()` waits for pending writes.
    """

    def __init__(
        self,
        store: Store | str | None = None,
        *,
        catalog: Catalog | None = None,
        counter: TokenCounter | None = None,
        batch_size: int = 500,
        flush_interval: float = 0.2,
        max_buffer: int = 10_000,
        spill_dir: str | os.PathLike[str] | None = None,
        retry_initial: float = 0.5,
        retry_max: float = 30.0,
    ) -> None:
        self._store: Store | None = store if isinstance(store, Store) else None
        self._store_url = None if isinstance(store, Store) else store
        self.catalog = catalog or load_catalog()
        self.counter: TokenCounter = counter or default_counter()
        self.batch_size = max(1, int(batch_size))
        self.flush_interval = float(flush_interval)
        self.max_buffer = max(1, int(max_buffer))
        self.retry_initial = retry_initial
        self.retry_max = retry_max
        self.spill_dir = Path(spill_dir) if spill_dir else None
        self._queue: collections.deque[Any] = collections.deque()
        self._wake = threading.Event()
        self._closed = False
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._pid = -1  # the process whose thread is running (-1: none)
        self._owner_pid = os.getpid()  # the process whose events the queue holds
        self._start_lock = threading.Lock()
        self._pending: list[pd.DataFrame] = []
        self._pending_rows = 0
        self._failures = 0
        self._retry_at = 0.0
        self._maybe_spilled = True
        self._spill_name = f"walleta-capture-{os.getpid()}-{uuid.uuid4().hex[:12]}.spill"
        self._trackers: list["LimitTracker"] = []
        self._ruled_days: set[str] = set()
        self.counts = collections.Counter[str]()
        _RECORDERS.add(self)

    # -- caller side ---------------------------------------------------------------------------

    def enqueue(self, record: CallRecord | Received) -> None:
        """Hand one call to the recorder (a CallRecord, or the `Received` tuple the transport
        builds for an in-memory body). O(1), no I/O, no system call; never raises into the caller."""
        # (TeeTransport.handle_request has an inlined copy of this method for in-memory bodies.)
        if self._pid != _transport._process_id:  # first call, after close(), or in a forked child
            self._start()
        queue = self._queue
        queue.append(record)
        if len(queue) >= self.batch_size:
            self._wake.set()

    def flush(self, timeout: float | None = 30.0) -> bool:
        """Wait until everything enqueued so far is written.

        False when some events are only buffered in memory or in a spill file (database away).
        """
        if self._thread is None or self._pid != os.getpid() or not self._thread.is_alive():
            return not self._queue and not self._pending
        marker = _Marker()
        self._queue.append(marker)
        self._wake.set()
        marker.event.wait(timeout)
        return marker.ok

    def close(self, timeout: float | None = 30.0) -> None:
        """Flush, spill whatever the database did not take, and stop the thread. Idempotent."""
        if self._closed:
            return
        self._closed = True
        thread = self._thread
        if thread is not None and thread.is_alive() and self._pid == os.getpid():
            self._stopping = True
            self._wake.set()
            thread.join(timeout)
        if self._queue and (thread is None or not thread.is_alive()):
            self._run_once(final=True)  # never started, or a call raced the stop: handle it here
        if thread is None or not thread.is_alive():
            # A call made after close() (a client still in use) starts a fresh thread.
            self._pid = -1
            self._stopping = False
        _RECORDERS.discard(self)

    def __enter__(self) -> "Recorder":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add_tracker(self, tracker: "LimitTracker") -> None:
        """Keep a limit tracker's running totals up to date with every processed event."""
        if tracker not in self._trackers:
            self._trackers.append(tracker)

    @property
    def store(self) -> Store | None:
        """The store, once opened."""
        return self._store

    def stats(self) -> dict[str, int]:
        """Counters: events written, write failures, events spilled / replayed, queue and buffer sizes."""
        keys = ("captured", "written", "duplicates", "write_failures", "spilled", "replayed", "dropped")
        return {**{k: self.counts.get(k, 0) for k in keys}, "queued": len(self._queue), "buffered": self._pending_rows}

    # -- the thread ----------------------------------------------------------------------------

    def _start(self) -> None:
        """Start the thread in this process (first use, after close(), or in a forked child)."""
        with self._start_lock:
            if self._pid == os.getpid() and self._thread is not None and self._thread.is_alive():
                return
            if self._owner_pid != os.getpid():  # forked: the parent owns what it queued before the fork
                self._queue.clear()
                self._pending.clear()
                self._pending_rows = 0
                self._spill_name = f"walleta-capture-{os.getpid()}-{uuid.uuid4().hex[:12]}.spill"
                self._owner_pid = os.getpid()
            self._pid = os.getpid()
            self._closed = False
            _RECORDERS.add(self)
            self._thread = threading.Thread(target=self._loop, name="walleta-recorder", daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        while True:
            # While the database is away the thread still wakes every flush_interval to move new
            # events into the buffer (and spill it when full); writes wait for the backoff.
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            stopping = self._stopping
            try:
                self._run_once(final=stopping)
            except Exception:  # noqa: BLE001 - the thread must survive anything
                log.exception("walleta: recorder iteration failed")
            if stopping and not self._queue:
                return

    def _backoff(self) -> float:
        return min(self.retry_max, self.retry_initial * (2 ** max(0, self._failures - 1)))

    def _run_once(self, *, final: bool = False) -> None:
        """Drain the queue, build events, write them (buffer/spill on failure), release markers."""
        records: list[CallRecord] = []
        markers: list[_Marker] = []
        queue = self._queue
        while queue:
            item = queue.popleft()
            if isinstance(item, _Marker):
                markers.append(item)
            else:
                records.append(CallRecord.received(item) if type(item) is tuple else item)
        if records:
            prepared = self._prepare(records)
            if len(prepared):
                self._add_pending(prepared)
        ok = self._write_pending(force=final)
        if ok and self._maybe_spilled and (final or time.monotonic() >= self._retry_at):
            self._replay_spills()
        ok = ok and not self._maybe_spilled  # spilled events are not written yet either
        if not ok and (final or self._pending_rows > self.max_buffer):
            self._spill_pending()
        for marker in markers:
            marker.ok = ok
            marker.event.set()

    def _prepare(self, records: list[CallRecord]) -> pd.DataFrame:
        rows = []
        for record in records:
            try:
                rows.append(extract_event(record, self.counter, self.catalog))
            except Exception as exc:  # noqa: BLE001 - record the call even if its payload is odd
                log.warning("walleta: could not read a %s response (%s); recording it without usage", record.kind, exc)
                rows.append(_bare_event(record, f"capture could not read the response: {type(exc).__name__}"))
        try:
            prepared = self._prepare_rows(rows)
        except Exception:  # noqa: BLE001 - isolate the row that breaks the batch, keep the rest
            log.exception("walleta: could not prepare a batch of %d events; retrying one by one", len(rows))
            frames = []
            for row in rows:
                try:
                    frames.append(self._prepare_rows([row]))
                except Exception:  # noqa: BLE001
                    self.counts["dropped"] += 1
                    log.error("walleta: dropped one malformed usage event: %r", {k: row.get(k) for k in ("uid", "model", "kind")})
            if not frames:
                return pd.DataFrame(columns=list(EVENT_COLUMNS))
            prepared = pd.concat(frames, ignore_index=True)
        for tracker in self._trackers:
            try:
                tracker.add_events(prepared)
            except Exception:  # noqa: BLE001
                log.exception("walleta: could not update consumption totals")
        self.counts["captured"] += len(prepared)
        return prepared

    def _prepare_rows(self, rows: list[dict[str, Any]]) -> pd.DataFrame:
        """Event rows -> priced EVENT_COLUMNS frame; rows with an UNPRICED_NOTE stay unpriced."""
        frame = pd.DataFrame(rows)
        notes: dict[str, str] = {}
        if UNPRICED_NOTE in frame.columns:
            column = frame.pop(UNPRICED_NOTE)
            notes = {uid: note for uid, note in zip(frame["uid"], column) if isinstance(note, str)}
        prepared = prepare_events(frame, self.catalog, source="log")
        if notes:
            mask = prepared["uid"].isin(list(notes)).to_numpy()
            prepared["cost_pico"] = prepared["cost_pico"].astype(object)
            prepared.loc[mask, "cost_pico"] = None
            prepared.loc[mask, "price_status"] = "unpriced"
            prepared.loc[mask, "price_note"] = prepared.loc[mask, "uid"].map(notes)
        return prepared

    def _add_pending(self, frame: pd.DataFrame) -> None:
        self._pending.append(frame)
        self._pending_rows += len(frame)

    def _open_store(self) -> Store:
        if self._store is None:
            self._store = open_store(self._store_url)
        return self._store

    def _write_pending(self, *, force: bool = False) -> bool:
        """Write every buffered frame in one transaction; True on success (or nothing to do).

        After a failure, no new attempt is made before the backoff delay has passed (unless
        `force`, used at close), however often the thread wakes to take in new events.
        """
        if not self._pending:
            return True
        if not force and time.monotonic() < self._retry_at:
            return False
        frame = self._pending[0] if len(self._pending) == 1 else pd.concat(self._pending, ignore_index=True)
        try:
            result = self._open_store().write_events(frame, on_conflict="ignore")
        except Exception as exc:  # noqa: BLE001 - any database error: keep the events, retry later
            self._failures += 1
            self._retry_at = time.monotonic() + self._backoff()
            self._maybe_spilled = True
            self.counts["write_failures"] += 1
            level = logging.WARNING if self._failures == 1 else logging.DEBUG
            log.log(level, "walleta: usage write failed (%s: %s); %d events buffered, retrying", type(exc).__name__, exc, self._pending_rows)
            return False
        if self._failures:
            log.warning("walleta: database reachable again after %d failed writes", self._failures)
        self._failures = 0
        self.counts["written"] += result.inserted
        self.counts["duplicates"] += result.skipped
        self._pending.clear()
        self._pending_rows = 0
        self._hand_new_days_to_the_log(frame)
        self._reseed_trackers()
        return True

    def _hand_new_days_to_the_log(self, frame: pd.DataFrame) -> None:
        """Apply the usage rule (walleta.sources.usage_rule) to days this recorder writes for the
        first time, so usage the OpenAI import put on those days is not added to the log's.

        Once per day and process: later imports apply the rule themselves. A failure is logged
        and retried with the next batch; the events themselves are already stored.
        """
        days = {str(day) for day in frame["day"].unique()} - self._ruled_days
        if not days:
            return
        try:
            result = apply_rule_to_logged_days(self._open_store(), self.catalog, sorted(days))
        except Exception as exc:  # noqa: BLE001 - never into the caller; the next batch retries
            log.warning("walleta: could not apply the usage rule to %s (%s: %s)", ", ".join(sorted(days)), type(exc).__name__, exc)
            return
        self._ruled_days |= days
        if result is not None and result.removed:
            log.info("walleta: %d OpenAI API usage rows set aside for days now covered by the usage log", result.removed)

    def _reseed_trackers(self) -> None:
        for tracker in self._trackers:
            try:
                tracker.maybe_reseed(self._store)
            except Exception:  # noqa: BLE001
                log.debug("walleta: could not refresh consumption totals", exc_info=True)

    # -- spill files ---------------------------------------------------------------------------

    def _spill_directory(self) -> Path:
        if self.spill_dir is not None:
            return self.spill_dir
        if os.environ.get(SPILL_ENV):
            return Path(os.environ[SPILL_ENV])
        store = self._store
        url = str(store.engine.url) if store is not None else (self._store_url or "")
        if url.startswith("sqlite") and store is not None and store.engine.url.database not in (None, "", ":memory:"):
            return Path(store.engine.url.database).resolve().parent
        if url.startswith("sqlite:///") and not url.endswith(":memory:"):
            return Path(url[len("sqlite:///"):]).resolve().parent
        return Path.home() / ".cache" / "walleta"

    def _spill_pending(self) -> None:
        """Append every buffered event to this process's spill file and forget them."""
        if not self._pending:
            return
        frame = pd.concat(self._pending, ignore_index=True)
        directory = self._spill_directory()
        lines = "".join(json.dumps(row, separators=(",", ":")) + "\n" for row in _plain_rows(frame))
        try:
            directory.mkdir(parents=True, exist_ok=True)
            _append_locked(directory / self._spill_name, lines.encode())
        except OSError as exc:
            log.error("walleta: cannot spill %d events to %s (%s); keeping them in memory", len(frame), directory, exc)
            return
        self.counts["spilled"] += len(frame)
        log.warning("walleta: database unavailable; %d events spilled to %s", len(frame), directory / self._spill_name)
        self._pending.clear()
        self._pending_rows = 0
        self._maybe_spilled = True

    def _replay_spills(self) -> None:
        """Write the events of every spill file in the spill directory, then delete the files."""
        self._maybe_spilled = False
        try:
            directory = self._spill_directory()
            paths = sorted(glob.glob(str(directory / SPILL_PATTERN)))
        except Exception:  # noqa: BLE001
            return
        for path in paths:
            try:
                self._replay_file(path)
            except Exception as exc:  # noqa: BLE001 - leave the file for the next attempt
                self._maybe_spilled = True
                self._failures += 1
                self._retry_at = time.monotonic() + self._backoff()
                level = logging.WARNING if self._failures == 1 else logging.DEBUG
                log.log(level, "walleta: could not replay spill file %s yet (%s)", path, exc)
                return

    def _replay_file(self, path: str) -> None:
        claimed = path if ".replay-" in path else f"{path}.replay-{os.getpid()}"
        if claimed != path:
            try:
                os.rename(path, claimed)
            except FileNotFoundError:
                return  # another process claimed it
        with open(claimed, "rb") as handle:
            if fcntl is not None:
                fcntl.flock(handle, fcntl.LOCK_EX)  # wait for an appender that opened it before the rename
            lines = handle.read().splitlines()
        store = self._open_store()
        replayed = 0
        for start in range(0, len(lines), _REPLAY_CHUNK):
            rows = [json.loads(line) for line in lines[start : start + _REPLAY_CHUNK] if line.strip()]
            if rows:
                frame = _frame_from_rows(rows)
                result = store.write_events(frame, on_conflict="ignore")
                replayed += result.inserted
                self._hand_new_days_to_the_log(frame)
        os.remove(claimed)
        self.counts["replayed"] += replayed
        log.warning("walleta: replayed %d spilled events from %s", replayed, path)


def _append_locked(path: Path, data: bytes) -> None:
    """Append to `path` under an exclusive lock, re-opening if a replayer renamed it meanwhile."""
    for _ in range(10):
        with open(path, "ab") as handle:
            if fcntl is not None:
                fcntl.flock(handle, fcntl.LOCK_EX)
                try:
                    if os.stat(path).st_ino != os.fstat(handle.fileno()).st_ino:
                        continue  # claimed by a replayer before we got the lock: use a fresh file
                except FileNotFoundError:
                    continue
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
            return
    raise OSError(f"could not append to {path}")


def _plain_rows(frame: pd.DataFrame) -> Iterable[dict[str, Any]]:
    """Event rows as JSON-ready dicts (numpy scalars -> int/float, NA -> None)."""
    columns = {name: frame[name].astype(object).where(frame[name].notna(), None).tolist() for name in EVENT_COLUMNS}
    for i in range(len(frame)):
        yield {name: (values[i].item() if hasattr(values[i], "item") else values[i]) for name, values in columns.items()}


def _frame_from_rows(rows: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=list(EVENT_COLUMNS))
    for name in ("cost_pico", "provider_cost_pico", "latency_ms", "import_id"):
        frame[name] = frame[name].astype(object).where(frame[name].notna(), None)
    return frame


def _bare_event(record: CallRecord, note: str) -> dict[str, Any]:
    from ..schema import NO_FEATURE, UNATTRIBUTED

    failed = bool(record.error) or record.status_code >= 400 or record.status_code == 0
    return {
        "uid": f"req:{record.request_id}" if record.request_id else f"evt:{uuid.uuid4().hex}",
        "ts_us": record.ts_us,
        "customer_id": record.attribution.customer or UNATTRIBUTED,
        "feature": record.attribution.feature or NO_FEATURE,
        "user_id": record.attribution.user,
        "project_id": record.project,
        "model": "",
        "request_id": record.request_id,
        "latency_ms": record.latency_ms,
        "status": "error" if failed else "ok",
        UNPRICED_NOTE: note,
    }


def _after_fork_in_child() -> None:
    """Locks and events copied from the parent may be in any state: give each recorder fresh ones.
    (transport.py refreshes its `_process_id`, so the child's first enqueue() starts its own thread.)"""
    for recorder in list(_RECORDERS):
        recorder._start_lock = threading.Lock()
        recorder._wake = threading.Event()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


@atexit.register
def _flush_at_exit() -> None:
    """Interpreter exit: close every live recorder (flush, spill what the database refused)."""
    for recorder in list(_RECORDERS):
        try:
            recorder.close(timeout=10.0)
        except Exception:  # noqa: BLE001
            log.exception("walleta: could not flush usage at exit")
