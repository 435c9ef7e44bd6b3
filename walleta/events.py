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
from .costing import price_events
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


def _column_hash(values: np.ndarray) -> np.ndarray:
    """64-bit hash of each value; depends only on the value, not on its neighbours."""
    if values.dtype == object:
        codes, uniques = pd.factorize(values, use_na_sentinel=False)
        hashed = pd.util.hash_array(np.asarray([str(u) for u in uniques], dtype=object), categorize=False)
        return hashed[codes]
    if values.dtype.kind == "f":
        # Quantities such as audio seconds: hash their exact text so 1.0 and 1 agree.
        return _column_hash(np.asarray([repr(float(v)) for v in values], dtype=object))
    return pd.util.hash_array(values.astype(np.int64))


def _mix(h: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser (wrapping uint64 arithmetic)."""
    with np.errstate(over="ignore"):
        h = (h ^ (h >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        h = (h ^ (h >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return h ^ (h >> np.uint64(31))


def content_uids(frame: pd.DataFrame, prefix: str) -> pd.Series:
    """Deterministic uids from row content: `<prefix>:<128-bit hash in hex>[-<n>]`.

    The hash covers CONTENT_COLUMNS only, so the same event gets the same uid whichever file
    or format it came from. `n` (from 1) counts earlier identical rows in the same frame, so
    duplicates inside one file stay distinct.
    """
    n = len(frame)
    first = np.zeros(n, dtype=np.uint64)
    second = np.full(n, np.uint64(0x9E3779B97F4A7C15), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for position, name in enumerate(CONTENT_COLUMNS, start=1):
            h = _column_hash(frame[name].to_numpy())
            first = _mix(first ^ (h + np.uint64(position)))
            second = _mix(second + h * np.uint64(2 * position + 1))
    pairs = np.empty((n, 2), dtype=">u8")
    pairs[:, 0] = first
    pairs[:, 1] = second
    hexed = pairs.tobytes().hex()
    uids = [f"{prefix}:{hexed[i:i + 32]}" for i in range(0, 32 * n, 32)]
    if n:
        occurrence = pd.DataFrame({"a": first, "b": second}).groupby(["a", "b"], sort=False).cumcount().to_numpy()
        for row in np.flatnonzero(occurrence):
            uids[row] = f"{uids[row]}-{occurrence[row]}"
    return pd.Series(uids, index=frame.index, dtype=object)


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
        columns[name] = columns[name].astype(np.int64)
    columns["audio_seconds"] = columns["audio_seconds"].astype(np.float64)
    columns["ts_us"] = frame["ts_us"].to_numpy(dtype=np.int64)
    columns["model"] = _text(frame["model"].to_numpy(dtype=object), "")
    columns["customer_id"] = _text(columns["customer_id"], UNATTRIBUTED)
    columns["feature"] = _text(columns["feature"], NO_FEATURE)
    columns["day"], columns["month"] = calendar_keys(columns["ts_us"])
    columns["source"] = np.full(n, source, dtype=object)
    if import_id is not None:
        columns["import_id"] = np.full(n, import_id, dtype=object)
    if "uid" in frame.columns:
        columns["uid"] = frame["uid"].to_numpy(dtype=object)
    out = pd.DataFrame({name: pd.Series(values, dtype=values.dtype) for name, values in columns.items()}, copy=False)
    out["uid"] = pd.Series(_uids(out, uid_prefix or source), dtype=object)
    if out["uid"].duplicated().any():
        out = out.drop_duplicates("uid", keep="first").reset_index(drop=True)
    if "price_status" in frame.columns:
        for name in ("cost_pico", "price_status", "price_note"):
            out[name] = frame[name].to_numpy(dtype=object)
    else:
        priced = price_events(out, catalog)
        out["cost_pico"] = priced["cost_pico"].array  # Int64 (or Python ints): never float
        out["price_status"] = pd.Series(priced["price_status"].to_numpy(dtype=object), dtype=object)
        out["price_note"] = pd.Series(priced["price_note"].to_numpy(dtype=object), dtype=object)
    return out.loc[:, list(EVENT_COLUMNS)]


def _column_array(frame: pd.DataFrame, name: str, default: object, n: int) -> np.ndarray:
    if name not in frame.columns:
        if isinstance(default, str) or default is None:
            return np.full(n, default, dtype=object)
        return np.full(n, default)
    series = frame[name]
    if default is None:
        return series.to_numpy(dtype=object)
    if isinstance(default, str):
        values = series.to_numpy(dtype=object)
        missing = pd.isna(values)
        if missing.any():
            values = values.copy()
            values[missing] = default
        return values
    return series.fillna(default).to_numpy()


def _text(values: np.ndarray, empty: str) -> np.ndarray:
    """Text column with missing and empty values replaced by `empty`."""
    values = values.astype(object)
    blank = pd.isna(values) | (values == "")
    if blank.any():
        values = values.copy()
        values[blank] = empty
    return values


def calendar_keys(ts_us: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """UTC day (YYYY-MM-DD) and month (YYYY-MM) keys for epoch-microsecond timestamps.

    Formats each distinct day once, so it stays fast on millions of rows.
    """
    day_numbers = np.floor_divide(np.asarray(ts_us, dtype=np.int64), 86_400_000_000)
    distinct, inverse = np.unique(day_numbers, return_inverse=True)
    labels = np.datetime_as_string(distinct.astype("datetime64[D]"), unit="D").astype(object)
    days = labels[inverse]
    months = np.array([label[:7] for label in labels], dtype=object)[inverse]
    return days, months


def _uids(frame: pd.DataFrame, prefix: str) -> np.ndarray:
    """Given uid, else `req:<request_id>`, else a content uid."""
    n = len(frame)
    uids = np.full(n, None, dtype=object)
    if "uid" in frame.columns:
        given = frame["uid"].to_numpy(dtype=object)
        present = np.array([isinstance(u, str) and u != "" for u in given], dtype=bool)
        uids[present] = given[present]
    requests = frame["request_id"].astype(str).to_numpy(dtype=object)
    use_request = (uids == None) & (requests != "")  # noqa: E711 - elementwise on object array
    if use_request.any():
        uids[use_request] = np.array([f"req:{r}" for r in requests[use_request]], dtype=object)
    rest = uids == None  # noqa: E711
    if rest.any():
        uids[rest] = content_uids(frame.loc[rest], prefix).to_numpy(dtype=object)
    return uids


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
