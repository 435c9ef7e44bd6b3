"""Canonical usage-event frames: fill defaults, derive calendar keys and uids, price, write.

Every source (usage log, CSV import, OpenAI API import, demo) ends here, so all of them share the
same defaults, the same pricing and the same idempotency rule:

- `uid` identifies an event across re-imports. The usage log uses the request id (or a
  client-side UUID); a file import hashes the row's content (128 bits) plus the occurrence number
  of identical rows within the file, so importing the same or an overlapping file again adds
  nothing, while two genuinely identical calls in one file both count.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .catalog import Catalog
from .costing import PRICED, UNPRICED, price_arrays
from .schema import EVENT_COLUMNS, NO_FEATURE, TOKEN_COLUMNS, UNATTRIBUTED
from .store import Store, WriteResult

__all__ = ["prepare_events", "record_events", "content_uids", "calendar_keys", "EVENT_DEFAULTS", "CONTENT_COLUMNS"]

EVENT_DEFAULTS: dict[str, object] = {
    "customer_id": UNATTRIBUTED,
    "feature": NO_FEATURE,
    "provider": "openai",
    **{c: 0 for c in TOKEN_COLUMNS},
    "images": 0,
    "image_size": "",
    "image_quality": "",
    "audio_seconds": 0.0,
    "characters": 0,
    "tool_calls": 0,
    "requests": 1,
    "service_tier": "default",
    "batch": 0,
    "project_id": "",
    "api_key_id": "",
    "user_id": "",
    "request_id": "",
    "latency_ms": None,
    "status": "ok",
    "estimated": 0,
    "provider_cost_pico": None,
    "import_id": None,
}
# The columns that make an event what it is; the uid of a file row is a hash of these.
CONTENT_COLUMNS = (
    "ts_us",
    "customer_id",
    "feature",
    "model",
    *TOKEN_COLUMNS,
    "images",
    "audio_seconds",
    "characters",
    "tool_calls",
    "requests",
    "service_tier",
    "batch",
    "project_id",
    "api_key_id",
    "user_id",
    "request_id",
)
_INT_DEFAULT_COLUMNS = (*TOKEN_COLUMNS, "images", "characters", "tool_calls", "requests", "batch", "estimated")


_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)
_C1 = np.uint64(0xBF58476D1CE4E5B9)
_C2 = np.uint64(0x94D049BB133111EB)
_BLOCK = 32_768  # rows per block when mixing hashes (fits the CPU cache)


def _is_constant(values: np.ndarray) -> bool:
    """True when every element equals the first (bit-equal for floats); cheap sample first."""
    if len(values) < 2:
        return True
    if values.dtype.kind == "f":
        values = values.astype(np.float64, copy=False).view(np.int64)
    first = values[0]
    if values.dtype == object and not isinstance(first, str):
        return False
    sample = values[:: max(len(values) // 64, 1)]
    if not bool(np.all(sample == first)):
        return False
    return bool(np.all(values == first))


def _column_hash(values: np.ndarray) -> np.ndarray | np.uint64:
    """64-bit hash of each value; depends only on the value, not on its neighbours.

    A constant column returns one scalar (the hash every element would get).
    """
    if len(values) and _is_constant(values):
        hashed = _column_hash_full(values[:1])
        return np.uint64(hashed[0])
    return _column_hash_full(values)


def _column_hash_full(values: np.ndarray) -> np.ndarray:
    if values.dtype == object:
        # Only strings means no missing values, so the cheaper sentinel mode gives the same codes.
        codes, uniques = pd.factorize(values, use_na_sentinel=not _all_strings(values))
        if (codes < 0).any():
            codes, uniques = pd.factorize(values, use_na_sentinel=False)
        hashed = pd.util.hash_array(np.asarray([str(u) for u in uniques], dtype=object), categorize=False)
        return hashed[codes]
    if values.dtype.kind == "f":
        # Quantities such as audio seconds: hash their exact text so 1.0 and 1 agree. Each
        # distinct bit pattern is formatted once.
        codes, uniques = pd.factorize(values.astype(np.float64, copy=False).view(np.int64), use_na_sentinel=False)
        texts = np.asarray([repr(float(v)) for v in uniques.view(np.float64)], dtype=object)
        return pd.util.hash_array(texts, categorize=False)[codes]
    return pd.util.hash_array(values.astype(np.int64))


def _mix(h: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser (wrapping uint64 arithmetic)."""
    with np.errstate(over="ignore"):
        h = (h ^ (h >> np.uint64(30))) * _C1
        h = (h ^ (h >> np.uint64(27))) * _C2
        return h ^ (h >> np.uint64(31))


def _mix_inplace(h: np.ndarray, scratch: np.ndarray) -> None:
    """`_mix` computed in place (same result, no temporaries)."""
    with np.errstate(over="ignore"):
        np.right_shift(h, np.uint64(30), out=scratch)
        np.bitwise_xor(h, scratch, out=h)
        np.multiply(h, _C1, out=h)
        np.right_shift(h, np.uint64(27), out=scratch)
        np.bitwise_xor(h, scratch, out=h)
        np.multiply(h, _C2, out=h)
        np.right_shift(h, np.uint64(31), out=scratch)
        np.bitwise_xor(h, scratch, out=h)


def content_uids(frame: pd.DataFrame, prefix: str) -> pd.Series:
    """Deterministic uids from row content: `<prefix>:<128-bit hash in hex>[-<n>]`.

    The hash covers CONTENT_COLUMNS only, so the same event gets the same uid whichever file
    or format it came from. `n` (from 1) counts earlier identical rows in the same frame, so
    duplicates inside one file stay distinct.
    """
    n = len(frame)
    hashes = [_column_hash(frame[name].to_numpy()) for name in CONTENT_COLUMNS]
    first = np.zeros(n, dtype=np.uint64)
    second = np.full(n, np.uint64(0x9E3779B97F4A7C15), dtype=np.uint64)
    block = min(n, _BLOCK) or 1
    scratch = np.empty(block, dtype=np.uint64)
    term = np.empty(block, dtype=np.uint64)
    with np.errstate(over="ignore"):
        # Row blocks small enough to stay in cache; the arithmetic is exactly the per-column
        # loop: first = mix(first ^ (h + p)); second = mix(second + h * (2p + 1)).
        for start in range(0, n, block):
            stop = min(start + block, n)
            size = stop - start
            f, s, tmp, t = first[start:stop], second[start:stop], scratch[:size], term[:size]
            for position, h in enumerate(hashes, start=1):
                if isinstance(h, np.ndarray):
                    np.add(h[start:stop], np.uint64(position), out=t)
                    np.bitwise_xor(f, t, out=f)
                    np.multiply(h[start:stop], np.uint64(2 * position + 1), out=t)
                else:
                    np.bitwise_xor(f, h + np.uint64(position), out=f)
                    t.fill(h * np.uint64(2 * position + 1))
                _mix_inplace(f, tmp)
                np.add(s, t, out=s)
                _mix_inplace(s, tmp)
    uids = _format_uids(prefix, first, second)
    if n:
        repeated = _repeated(first)
        if repeated.any():
            rows = np.flatnonzero(repeated)
            occurrence = pd.DataFrame({"a": first[rows], "b": second[rows]}).groupby(["a", "b"], sort=False).cumcount().to_numpy()
            for row, count in zip(rows[occurrence > 0], occurrence[occurrence > 0]):
                uids[row] = f"{uids[row]}-{count}"
    return pd.Series(uids, index=frame.index, dtype=object)


# byte -> its two lower-case hex digits as one little-endian uint16 (so a view gives "ab").
_HEX_PAIRS = np.frombuffer("".join(f"{i:02x}" for i in range(256)).encode("ascii"), dtype="<u2")


def _format_uids(prefix: str, first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """'<prefix>:' + 32 lower-case hex digits of (first, second) big-endian, for every row."""
    n = len(first)
    head = f"{prefix}:".encode("utf-8")
    if not head.isascii() or b"\n" in head:
        pairs = np.empty((n, 2), dtype=">u8")
        pairs[:, 0], pairs[:, 1] = first, second
        hexed = pairs.tobytes().hex()
        return np.array([f"{prefix}:{hexed[i:i + 32]}" for i in range(0, 32 * n, 32)], dtype=object)
    if n == 0:
        return np.empty(0, dtype=object)
    # One ASCII buffer "<prefix>:<hex>\n" per row, decoded once and split in C.
    width = len(head) + 33
    buffer = np.empty((n, width), dtype=np.uint8)
    buffer[:, : len(head)] = np.frombuffer(head, dtype=np.uint8)
    raw = np.empty((n, 2), dtype=">u8")
    raw[:, 0], raw[:, 1] = first, second
    buffer[:, len(head) : width - 1] = _HEX_PAIRS[raw.view(np.uint8).reshape(n, 16)].view(np.uint8).reshape(n, 32)
    buffer[:, width - 1] = ord("\n")
    texts = buffer.tobytes().decode("ascii").split("\n")
    texts.pop()  # after the last newline
    out = np.empty(n, dtype=object)
    out[:] = texts
    return out


def _repeated(values: np.ndarray) -> np.ndarray:
    """Mask of elements whose value occurs more than once (sort-based; fast on uint64)."""
    ordered = np.sort(values)
    twins = ordered[1:][ordered[1:] == ordered[:-1]]
    if twins.size == 0:
        return np.zeros(len(values), dtype=bool)
    return np.isin(values, twins)


def _full_object(n: int, value: object) -> np.ndarray:
    """An object array of n copies of `value` (faster than np.full for objects)."""
    out = np.empty(n, dtype=object)
    out.fill(value)
    return out


def _all_strings(values: np.ndarray) -> bool:
    """True when an object array holds only str (so no missing values)."""
    return pd.api.types.infer_dtype(values, skipna=False) in ("string", "empty")


def prepare_events(
    frame: pd.DataFrame,
    catalog: Catalog,
    *,
    source: str,
    import_id: int | None = None,
    uid_prefix: str | None = None,
) -> pd.DataFrame:
    """Complete a usage frame into EVENT_COLUMNS, priced by `catalog`.

    Required input columns: `ts_us` (int, UTC microseconds) and `model`. Everything else takes
    the defaults above. A `uid` column is kept as given; rows without one get a request-id uid
    (`req:<request_id>`) or a content uid. `cost_pico`/`price_status`/`price_note` are computed
    unless the frame already carries `price_status` (re-using a cost computed upstream).
    Text columns come back with object dtype (no pandas string conversion on the hot path).
    """
    n = len(frame)
    columns: dict[str, np.ndarray] = {}
    for name, default in EVENT_DEFAULTS.items():
        columns[name] = _column_array(frame, name, default, n)
    for name in _INT_DEFAULT_COLUMNS:
        columns[name] = columns[name].astype(np.int64, copy=False)
    columns["audio_seconds"] = columns["audio_seconds"].astype(np.float64, copy=False)
    columns["ts_us"] = frame["ts_us"].to_numpy(dtype=np.int64)
    columns["model"] = _text(frame["model"].to_numpy(dtype=object), "")
    columns["customer_id"] = _text(columns["customer_id"], UNATTRIBUTED)
    columns["feature"] = _text(columns["feature"], NO_FEATURE)
    columns["day"], columns["month"], day_codes, day_labels = _calendar(columns["ts_us"])
    columns["source"] = _full_object(n, source)
    if import_id is not None:
        columns["import_id"] = _full_object(n, import_id)
    if "uid" in frame.columns:
        columns["uid"] = frame["uid"].to_numpy(dtype=object)
    out = pd.DataFrame({name: pd.Series(values, dtype=values.dtype, copy=False) for name, values in columns.items()}, copy=False)
    uids, all_content = _uids(out, uid_prefix or source)
    out["uid"] = pd.Series(uids, dtype=object, copy=False)
    # Content uids are distinct by construction (identical rows get -1, -2, ...); given and
    # request-id uids may repeat, and only the first of a repeated uid is kept.
    if not all_content and _repeated(pd.util.hash_array(uids, categorize=False)).any() and out["uid"].duplicated().any():
        out = out.drop_duplicates("uid", keep="first").reset_index(drop=True)
        day_codes = None
    if "price_status" in frame.columns:
        for name in ("cost_pico", "price_status", "price_note"):
            out[name] = frame[name].to_numpy(dtype=object)
    else:
        total, unpriced, notes, overflow = price_arrays(out, catalog, days=None if day_codes is None else (day_codes, day_labels))
        if overflow:
            out["cost_pico"] = pd.Series([None if u else int(v) for v, u in zip(total, unpriced)], dtype=object).array
        else:
            out["cost_pico"] = pd.arrays.IntegerArray(np.where(unpriced, 0, total).astype(np.int64), unpriced.copy())  # never float
        status = _full_object(len(out), PRICED)
        status[unpriced] = UNPRICED
        out["price_status"] = pd.Series(status, dtype=object, copy=False)
        out["price_note"] = pd.Series(notes, dtype=object, copy=False)
    return out.loc[:, list(EVENT_COLUMNS)]


def _column_array(frame: pd.DataFrame, name: str, default: object, n: int) -> np.ndarray:
    if name not in frame.columns:
        if isinstance(default, str) or default is None:
            return _full_object(n, default)
        if default == 0:
            return np.zeros(n, dtype=np.asarray(default).dtype)  # lazily zeroed pages: fast
        return np.full(n, default)
    series = frame[name]
    if default is None:
        return series.to_numpy(dtype=object)
    if isinstance(default, str):
        values = series.to_numpy(dtype=object)
        if _all_strings(values):
            return values  # only str: nothing is missing
        missing = series.isna().to_numpy()
        if missing.any():
            values = values.copy()
            values[missing] = default
        return values
    return series.fillna(default).to_numpy()


def _text(values: np.ndarray, empty: str) -> np.ndarray:
    """Text column with missing and empty values replaced by `empty`."""
    values = values.astype(object, copy=False)
    blank = (values == "") if _all_strings(values) else (pd.isna(values) | (values == ""))
    if blank.any():
        values = values.copy()
        values[blank] = empty
    return values


def calendar_keys(ts_us: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """UTC day (YYYY-MM-DD) and month (YYYY-MM) keys for epoch-microsecond timestamps.

    Formats each distinct day once, so it stays fast on millions of rows.
    """
    days, months, _codes, _labels = _calendar(ts_us)
    return days, months


def _calendar(ts_us: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(days, months, day code of each row, distinct day labels)."""
    day_numbers = np.floor_divide(np.asarray(ts_us, dtype=np.int64), 86_400_000_000)
    codes, distinct = pd.factorize(day_numbers, sort=True)
    labels = np.datetime_as_string(np.asarray(distinct, dtype=np.int64).astype("datetime64[D]"), unit="D").astype(object)
    days = labels[codes]
    months = np.array([label[:7] for label in labels], dtype=object)[codes]
    return days, months, codes, labels


def _uids(frame: pd.DataFrame, prefix: str) -> tuple[np.ndarray, bool]:
    """(uids, whether all are content uids): given uid, else `req:<request_id>`, else content."""
    n = len(frame)
    uids = _full_object(n, None)
    if "uid" in frame.columns:
        given = frame["uid"].to_numpy(dtype=object)
        present = np.array([isinstance(u, str) and u != "" for u in given], dtype=bool)
        uids[present] = given[present]
    raw = frame["request_id"].to_numpy(dtype=object)
    if pd.api.types.infer_dtype(raw, skipna=False) in ("string", "empty"):
        requests = raw
    else:
        requests = frame["request_id"].astype(str).to_numpy(dtype=object)
    use_request = (uids == None) & (requests != "")  # noqa: E711 - elementwise on object array
    if use_request.any():
        uids[use_request] = np.array([f"req:{r}" for r in requests[use_request]], dtype=object)
    rest = uids == None  # noqa: E711
    if rest.all():
        return content_uids(frame, prefix).to_numpy(dtype=object), True
    if rest.any():
        uids[rest] = content_uids(frame.loc[rest, list(CONTENT_COLUMNS)], prefix).to_numpy(dtype=object)
    return uids, False


def record_events(
    store: Store,
    frame: pd.DataFrame,
    catalog: Catalog,
    *,
    source: str,
    import_id: int | None = None,
    on_conflict: str = "ignore",
) -> WriteResult:
    """Prepare and write a usage frame in one transaction; see `prepare_events`."""
    prepared = prepare_events(frame, catalog, source=source, import_id=import_id)
    return store.write_events(prepared, on_conflict=on_conflict)  # type: ignore[arg-type]
