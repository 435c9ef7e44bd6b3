"""What an import did, and the bookkeeping every import shares.

`ImportReport` is returned by every importer (CSV kinds and the OpenAI API) and printed by the
CLI as one summary line. `begin_run` / `end_run` record the run in `import_runs` inside the
import's own transaction, so the data, the run and its cursor commit together or not at all;
a run that changed nothing and repeats an earlier one (same file content or same range) is
not recorded, so importing the same thing twice leaves the database exactly as it was.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, TextIO

import numpy as np

from ..money import format_usd
from ..store import Store, now_us
from .csv_reader import RowError

__all__ = ["ImportReport", "Progress", "ProgressCallback", "begin_run", "end_run", "no_progress", "upsert_changed"]

ProgressCallback = Callable[[str, int, int], None]


def _usd(pico: int) -> str:
    """Dollars with cents, or with up to six decimals below one dollar (so small files show)."""
    if abs(pico) >= 10**12 or pico == 0:
        return format_usd(pico)
    return format_usd(pico, places=6).rstrip("0")


def no_progress(_phase: str, _done: int, _total: int) -> None:
    """A progress callback that shows nothing."""


@dataclass
class ImportReport:
    """The outcome of one import, for the summary line, the error file and the tests."""

    kind: str
    source: str
    rows_read: int = 0
    imported: int = 0
    updated: int = 0
    skipped: int = 0
    errors: list[RowError] = field(default_factory=list)
    cost_pico: int = 0
    unpriced: int = 0
    unpriced_reasons: Counter = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)
    error_file: Path | None = None
    import_id: int | None = None
    cursor: str = ""

    @property
    def rejected(self) -> int:
        """Rows rejected (a row with several bad cells counts once)."""
        return len({(e.row, e.index) for e in self.errors})

    @property
    def status(self) -> str:
        """'ok', or 'partial' when rows were rejected."""
        return "partial" if self.errors else "ok"

    def summary_line(self) -> str:
        """'usage.csv: read 1,000 rows, imported 990, updated 0, skipped 5, errors 5, cost $1.23, unpriced 2'."""
        parts = [
            f"read {self.rows_read:,}",
            f"imported {self.imported:,}",
        ]
        if self.updated:
            parts.append(f"updated {self.updated:,}")
        parts += [f"skipped {self.skipped:,}", f"errors {self.rejected:,}"]
        if self.kind in ("usage", "openai-activity", "openai", "openai-costs"):
            parts.append(f"cost covered {_usd(self.cost_pico)}")
            parts.append(f"unpriced {self.unpriced:,}")
        return f"{self.source} ({self.kind}): " + ", ".join(parts)

    def unpriced_line(self) -> str | None:
        """The most common reasons rows could not be priced, if any."""
        if not self.unpriced_reasons:
            return None
        top = ", ".join(f"{reason} ({count:,})" for reason, count in self.unpriced_reasons.most_common(5))
        return f"unpriced rows (shown, never counted as $0): {top}"


# phase -> (start, end) share of the whole bar; unknown phases use the whole bar.
PHASES: dict[str, tuple[float, float]] = {
    "reading": (0.0, 0.15),
    "validating": (0.15, 0.3),
    "pricing": (0.3, 0.45),
    "writing": (0.45, 1.0),
    "fetching from OpenAI": (0.0, 0.85),
    "storing": (0.85, 1.0),
}


class Progress:
    """A plain-text progress bar for a whole import on a stream (stderr).

    `progress(phase, done, total)` maps each phase onto its share of one bar
    ('[#########.....]  60% writing 300,000/500,000'). On a terminal the bar redraws in place;
    elsewhere one line is written per phase and at the end.
    """

    def __init__(self, stream: TextIO | None = None, width: int = 30, enabled: bool = True) -> None:
        self.stream = stream or sys.stderr
        self.width = width
        self.enabled = enabled
        self._last = 0.0
        self._phase = ""
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def __call__(self, phase: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        low, high = PHASES.get(phase, (0.0, 1.0))
        within = 1.0 if total <= 0 else min(max(done / total, 0.0), 1.0)
        share = low + (high - low) * within
        now = time.monotonic()
        new_phase = phase != self._phase
        finished = share >= 1.0
        if self._tty:
            if not (new_phase or finished or now - self._last >= 0.2):
                return
        elif not (new_phase or finished):
            return
        self._phase, self._last = phase, now
        filled = int(round(share * self.width))
        bar = "#" * filled + "." * (self.width - filled)
        counts = f" {done:,}/{total:,}" if total > 1 else ""
        line = f"[{bar}] {share:4.0%} {phase}{counts}"
        self.stream.write(f"\r{line}\x1b[K" if self._tty else f"{line}\n")
        self.stream.flush()

    def close(self) -> None:
        """End the bar's line."""
        if self.enabled and self._tty and self._phase:
            self.stream.write("\n")
            self.stream.flush()


def begin_run(store: Store, cur: Any, source: str, kind: str, content_hash: str = "") -> int:
    """Insert a 'running' import_runs row inside the caller's transaction; returns its id."""
    cur.execute(
        store.sql(
            "INSERT INTO import_runs (source, kind, started_us, status, content_hash, rows_read, rows_imported, "
            "rows_rejected, cursor, message) VALUES (?, ?, ?, 'running', ?, 0, 0, 0, '', '') RETURNING id"
        ),
        [source, kind, now_us(), content_hash],
    )
    return int(cur.fetchone()[0])


def end_run(store: Store, cur: Any, import_id: int, report: ImportReport, *, source: str, content_hash: str = "", changed: bool) -> int | None:
    """Finish the run row; drop it when the import changed nothing and repeats an earlier run.

    An earlier run is "the same" when it is from the same source with the same content hash
    (a file) or the same cursor (an API range). Returns the run id kept, or None.
    """
    if not changed:
        cur.execute(
            store.sql(
                "SELECT id FROM import_runs WHERE source = ? AND id <> ? AND status IN ('ok', 'partial') "
                "AND ((? <> '' AND content_hash = ?) OR (? <> '' AND cursor = ?)) LIMIT 1"
            ),
            [source, import_id, content_hash, content_hash, report.cursor, report.cursor],
        )
        if cur.fetchone() is not None:
            cur.execute(store.sql("DELETE FROM import_runs WHERE id = ?"), [import_id])
            return None
    message = "; ".join(report.notes)[:2000]
    store.finish_import(
        import_id,
        status=report.status,
        rows_read=report.rows_read,
        rows_imported=report.imported + report.updated,
        rows_rejected=report.rejected,
        cursor=report.cursor,
        message=message,
        cur=cur,
    )
    return import_id


def _canon(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)):
        return int(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    return str(value)


def upsert_changed(store: Store, cur: Any, table: str, rows: list[dict[str, Any]], *, key: str = "uid", ignore: tuple[str, ...] = ("import_id",)) -> tuple[int, int, int]:
    """Insert new rows, update rows that differ, leave identical rows untouched.

    Returns (inserted, updated, unchanged). Untouched rows keep their id and import_id, so a
    repeated import changes nothing.
    """
    if not rows:
        return 0, 0, 0
    columns = list(rows[0])
    compared = [c for c in columns if c != key and c not in ignore]
    existing: dict[str, tuple] = {}
    keys = [r[key] for r in rows]
    for offset in range(0, len(keys), 500):
        chunk = keys[offset : offset + 500]
        cur.execute(store.sql(f"SELECT {key}, {', '.join(compared)} FROM {table} WHERE {key} IN ({', '.join('?' for _ in chunk)})"), chunk)
        for found in cur.fetchall():
            existing[found[0]] = tuple(_canon(v) for v in found[1:])
    inserts, updates = [], []
    for row in rows:
        values = tuple(_canon(row[c]) for c in compared)
        before = existing.get(row[key])
        if before is None:
            inserts.append(tuple(row[c] for c in columns))
        elif before != values:
            updates.append((*(row[c] for c in compared), *(row[c] for c in ignore if c in row), row[key]))
    if inserts:
        cur.executemany(store.sql(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})"), inserts)
    if updates:
        assignments = ", ".join(f"{c} = ?" for c in [*compared, *(c for c in ignore if c in columns)])
        cur.executemany(store.sql(f"UPDATE {table} SET {assignments} WHERE {key} = ?"), updates)
    return len(inserts), len(updates), len(rows) - len(inserts) - len(updates)
