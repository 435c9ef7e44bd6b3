"""Reconciliation: the cost estimated from usage (priced by the catalog) against the billed cost
from the OpenAI Costs API, by day, project and line item.

Estimate: `rollup_project_model_day` (usage from the log, CSV files or the Usage API, already
priced) is split into line items "<model>, input" / "<model>, cached input" / "<model>, output"
with the catalog rates of that day, tier and batch flag; whatever the catalog charged beyond
those three (long-context uplift, audio, images, per-call tools) is "<model>, other", so the
line items add up to the priced cost exactly. Models are named by their catalog id (dated
snapshots and aliases resolve to it) on both sides.
Bill: `billed_costs` line items ("gpt-4o-2024-08-06, input", "gpt-5.4, cached_input_tokens",
...) are parsed into the same (model, class) form. Usage without a project id is shown under
"(no project)".

Each row has the difference (billed - estimated, in $ and % of billed), a status and a plain
sentence saying what the gap most likely is. Unpriced usage is counted in its own columns and
never priced at $0. `reconciliation_summary` puts the totals side by side, including the
unattributed remainder: the part of the bill that no customer carries (usage logged without a
customer, plus everything on the bill that the log does not explain).
A row "matches" when |difference| <= max($0.01, 0.5% of billed).

Speed (issue 6): `reconciliation_lines` reads the project rollup's rows (token arithmetic done
in SQL) and the bill's rows as stored (`columns.scan`; the bill rows also stamp the remembered
lines), and joins them with numpy (`_joined_fast`): text keys as codes ranked like the text,
rates looked up once per (model, price epoch, tier, batch), exact sums (int64 where no sum can
overflow, else Python ints). `line_item_costs`, `estimated_line_items` and `billed_line_items`
remain the frame definitions it equals (`_joined_frames`). `reconcile` groups the lines the
same way (`_grouped_lines`; `group_sum` for key columns with missing or non-text values).
"""

from __future__ import annotations

import bisect
import re
from decimal import Decimal

import numpy as np
import pandas as pd

from ..catalog import Catalog, load_catalog
from ..costing import MISSING, effective_tier, rates_for
from ..errors import InputError
from ..exact_merge import merge_filled
from ..money import PICO_PER_CENT, format_usd
from ..schema import UNATTRIBUTED
from ..store import Store
from . import closed_months
from .columns import INT, TEXT, object_column, scan
from .exact import SAFE, exact_ints, exact_ints_filled, exact_sums
from .display import pct
from .period import Period
from .sources import group_sum, read, usage_sql

__all__ = [
    "TOKEN_CLASSES",
    "NO_PROJECT",
    "parse_line_item",
    "line_item_costs",
    "estimated_line_items",
    "billed_line_items",
    "reconcile",
    "reconciliation_lines",
    "reconciliation_summary",
    "unpriced_models",
    "RECONCILE_COLUMNS",
]

TOKEN_CLASSES = ("input", "cached input", "output", "other")
NO_PROJECT = "(no project)"
TOLERANCE_SHARE = Decimal("0.005")
_ZERO_PCT = Decimal("0.00")
_MATCH_TEXT = "the estimate matches the bill (within $0.01 or 0.5%)"
_BY_CHOICES = ("day", "project_id", "line_item")
_CLASS_WORDS = {
    "input": "input", "uncached input": "input", "text input": "input", "input text": "input", "input uncached": "input",
    "cached input": "cached input", "input cached": "cached input", "cached": "cached input", "cached text input": "cached input",
    "input cached text": "cached input", "cached input text": "cached input",
    "output": "output", "text output": "output", "output text": "output", "completion": "output", "reasoning": "output",
}


def _normalise_class(text: str) -> str:
    words = re.sub(r"[_\-]+", " ", (text or "").strip().lower())
    words = re.sub(r"\b(tokens?|batch|priority|flex)\b", " ", words)
    words = re.sub(r"\s+", " ", words).strip()
    return _CLASS_WORDS.get(words, "other")


def parse_line_item(text: str, catalog: Catalog) -> tuple[str, str]:
    """'gpt-4o-2024-08-06, input' -> ('gpt-4o', 'input'); unknown classes -> 'other'.

    The model part resolves through the catalog (aliases, dated snapshots); an unknown model is
    kept as written (lower-case)."""
    model_part, sep, class_part = (text or "").rpartition(",")
    if not sep:
        model_part, class_part = "", text or ""
    model = model_part.strip()
    resolved = catalog.resolve(model) if model else None
    return (resolved or model.lower() or "(no model)"), _normalise_class(class_part)


def _rates_table(frame: pd.DataFrame, catalog: Catalog) -> pd.DataFrame:
    cases = frame[["line_model", "day", "service_tier", "batch"]].drop_duplicates()
    rows = []
    for model, day, tier, batch in cases.itertuples(index=False, name=None):
        known = catalog.resolve(model)
        rates = rates_for(catalog, known, day, effective_tier(tier), bool(batch), False) if known else None
        rows.append((model, day, tier, batch,
                     rates.text_in if rates else MISSING, rates.text_cached if rates else MISSING, rates.text_out if rates else MISSING))
    return pd.DataFrame(rows, columns=["line_model", "day", "service_tier", "batch", "rate_in", "rate_cached", "rate_out"])


def line_item_costs(usage: pd.DataFrame, catalog: Catalog) -> pd.DataFrame:
    """Split priced usage rows into line-item costs.

    Input columns: model, day, service_tier, batch, events, input_tokens, cached_input_tokens,
    cache_write_tokens, input_audio_tokens, input_image_tokens, output_tokens,
    output_audio_tokens, output_image_tokens, cost_pico, unpriced_events, plus any key columns.
    Output: the input's other columns + line_model, token_class, estimated_pico (Python int),
    tokens. Rows whose events are all unpriced give no line items; a row mixing priced and
    unpriced events puts its priced cost on 'other' (its token split is unknown)."""
    frame = usage.reset_index(drop=True)
    models = frame["model"].to_numpy(dtype=object)
    codes, names = pd.factorize(models)
    resolved = np.array([catalog.resolve(m) or str(m).lower() for m in names], dtype=object)
    frame = frame.assign(line_model=resolved[codes] if len(frame) else np.array([], dtype=object))
    rates = _rates_table(frame, catalog)
    frame = frame.merge(rates, on=["line_model", "day", "service_tier", "batch"], how="left")
    ints = {c: frame[c].to_numpy(dtype=np.int64) for c in _TOKEN_INPUTS}
    text_in = ints["input_tokens"] - ints["cached_input_tokens"] - ints["cache_write_tokens"] - ints["input_audio_tokens"] - ints["input_image_tokens"]
    text_out = ints["output_tokens"] - ints["output_audio_tokens"] - ints["output_image_tokens"]
    rate_matrix = frame[["rate_in", "rate_cached", "rate_out"]].to_numpy(dtype=np.int64)
    has_priced = frame["events"].to_numpy(dtype=np.int64) > frame["unpriced_events"].to_numpy(dtype=np.int64)
    usable = (frame["unpriced_events"].to_numpy(dtype=np.int64) == 0) & (rate_matrix >= 0).all(axis=1)
    quantities = [np.where(usable, q, 0) for q in (text_in, ints["cached_input_tokens"], text_out)]
    rates_used = [np.where(usable, rate_matrix[:, i], 0) for i in range(3)]
    amounts = [_product(q, r) for q, r in zip(quantities, rates_used)]
    cost = _ints_or_python(frame["cost_pico"])
    other = cost - amounts[0] - amounts[1] - amounts[2]
    unsplit = np.where(usable, 0, ints["input_tokens"] + ints["output_tokens"])
    keep = [c for c in usage.columns if c not in _USAGE_MEASURES]
    pieces = []
    for token_class, amount, tokens in zip(TOKEN_CLASSES, [*amounts, other], [*quantities, unsplit]):
        nonzero = ((amount != 0) | (tokens != 0)) & has_priced
        piece = frame.loc[nonzero, keep + ["line_model"]].copy()
        piece["token_class"] = token_class
        piece["estimated_pico"] = amount[nonzero]
        piece["tokens"] = tokens[nonzero]
        pieces.append(piece)
    return pd.concat(pieces, ignore_index=True)


_TOKEN_INPUTS = ("input_tokens", "cached_input_tokens", "cache_write_tokens", "input_audio_tokens", "input_image_tokens",
                 "output_tokens", "output_audio_tokens", "output_image_tokens")


def _product(quantity: np.ndarray, rate: np.ndarray) -> np.ndarray:
    """quantity * rate exactly: int64 when it cannot overflow, else Python ints."""
    bound = int(np.abs(quantity).max(initial=0)) * int(np.abs(rate).max(initial=0))
    if bound < 2**61:
        return quantity * rate
    return quantity.astype(object) * rate.astype(object)


def _ints_or_python(values: pd.Series) -> np.ndarray:
    raw = values.to_numpy(dtype=object)
    try:
        as_int = raw.astype(np.int64)
    except (OverflowError, TypeError, ValueError):
        return np.array([0 if v is None or pd.isna(v) else int(v) for v in raw], dtype=object)
    return as_int if int(np.abs(as_int).max(initial=0)) < 2**61 else raw.astype(object)


_USAGE_MEASURES = (
    "events", "requests", "input_tokens", "cached_input_tokens", "cache_write_tokens", "input_audio_tokens", "input_image_tokens",
    "output_tokens", "output_audio_tokens", "output_image_tokens", "cost_pico", "unpriced_events", "unpriced_requests", "unpriced_tokens",
)


def _project_usage(store: Store, period: Period) -> pd.DataFrame:
    frame = read(
        store,
        f"SELECT day, project_id, model, service_tier, batch, {usage_sql(_USAGE_MEASURES)} FROM rollup_project_model_day "
        "WHERE day >= ? AND day <= ? GROUP BY day, project_id, model, service_tier, batch",
        [period.first_day, period.last_day],
    )
    if not frame.empty:
        frame["project_id"] = frame["project_id"].replace("", NO_PROJECT)
        for m in _USAGE_MEASURES:
            if m != "cost_pico":
                frame[m] = frame[m].astype(np.int64)
    return frame


def estimated_line_items(store: Store, period: Period, catalog: Catalog | None = None) -> pd.DataFrame:
    """Estimated cost per (day, project_id, line_model, token_class) with unpriced usage.

    Columns: day, project_id, line_model, token_class, estimated_pico, tokens, requests,
    unpriced_requests, unpriced_tokens (the unpriced counts sit on the 'input' row of their
    day, project and model)."""
    catalog = catalog or load_catalog()
    usage = _project_usage(store, period)
    columns = ["day", "project_id", "line_model", "token_class", "estimated_pico", "tokens", "requests", "unpriced_requests", "unpriced_tokens"]
    if usage.empty:
        return pd.DataFrame(columns=columns)
    lines = line_item_costs(usage, catalog)
    lines = group_sum(lines, ["day", "project_id", "line_model", "token_class"], ["estimated_pico", "tokens"]) if not lines.empty else \
        pd.DataFrame(columns=["day", "project_id", "line_model", "token_class", "estimated_pico", "tokens"])
    usage["line_model"] = [catalog.resolve(m) or str(m).lower() for m in usage["model"]]
    counts = group_sum(usage, ["day", "project_id", "line_model"], ["requests", "unpriced_requests", "unpriced_tokens"]).assign(token_class="input")
    fill = {c: 0 for c in ("estimated_pico", "tokens", "requests", "unpriced_requests", "unpriced_tokens")}
    out = merge_filled(lines, counts, ["day", "project_id", "line_model", "token_class"], "outer", fill)
    for column in ("estimated_pico", "tokens"):
        out[column] = pd.Series([0 if v is None else int(v) for v in out[column].tolist()], index=out.index, dtype=object)
    for column in ("requests", "unpriced_requests", "unpriced_tokens"):
        out[column] = out[column].fillna(0).astype(np.int64)
    keep = (out["estimated_pico"].map(int) != 0) | (out["tokens"].map(int) != 0) | (out["unpriced_requests"] > 0)
    return out[keep][columns].reset_index(drop=True)


def billed_line_items(store: Store, period: Period, catalog: Catalog | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Billed cost per (day, project_id, line_model, token_class) in USD, and the rows in other
    currencies (never converted silently; the Costs API reports USD today)."""
    catalog = catalog or load_catalog()
    frame = read(store, 
        "SELECT day, project_id, line_item, currency, CAST(SUM(amount_pico) AS BIGINT) AS billed_pico FROM billed_costs "
        "WHERE day >= ? AND day <= ? GROUP BY day, project_id, line_item, currency",
        [period.first_day, period.last_day],
    )
    columns = ["day", "project_id", "line_model", "token_class", "billed_pico"]
    if frame.empty:
        return pd.DataFrame(columns=columns), frame
    frame["currency"] = frame["currency"].fillna("USD").str.upper()
    other = frame[frame["currency"] != "USD"]
    frame = frame[frame["currency"] == "USD"].copy()
    parsed = {item: parse_line_item(item, catalog) for item in set(frame["line_item"])}
    frame["line_model"] = frame["line_item"].map(lambda i: parsed[i][0])
    frame["token_class"] = frame["line_item"].map(lambda i: parsed[i][1])
    frame["project_id"] = frame["project_id"].fillna("").replace("", NO_PROJECT)
    out = group_sum(frame, ["day", "project_id", "line_model", "token_class"], ["billed_pico"])
    out["billed_pico"] = pd.Series([int(v) for v in out["billed_pico"]], index=out.index, dtype=object)
    return out[columns], other


RECONCILE_COLUMNS = [
    "day", "project_id", "line_item", "estimated_pico", "billed_pico", "difference_pico", "difference_pct", "tokens",
    "unpriced_requests", "unpriced_tokens", "status", "explanation",
]


def _tolerance(billed: int) -> int:
    numerator, denominator = TOLERANCE_SHARE.as_integer_ratio()
    return max(PICO_PER_CENT, abs(billed) * numerator // denominator)


def _status(estimated: int, billed: int, unpriced: int) -> str:
    if billed == estimated and not unpriced:
        return "matches"
    if unpriced > 0 and (billed - estimated) > _tolerance(billed):
        return "unpriced usage"
    if abs(billed - estimated) <= _tolerance(billed):
        return "matches"
    if estimated == 0 and unpriced == 0:
        return "not logged"
    if billed == 0:
        return "not billed"
    return "billed above estimate" if billed > estimated else "estimate above bill"


def _explain(status: str, estimated: int, billed: int, unpriced_requests: int, unpriced_tokens: int, what: str) -> str:
    gap = billed - estimated
    share = f" ({pct(gap, billed)}% of the bill)" if billed else ""
    if status == "matches":
        return f"estimate {format_usd(estimated)} matches the bill {format_usd(billed)} (within $0.01 or 0.5%)"
    if status == "unpriced usage":
        return (f"{unpriced_requests:,} logged requests ({unpriced_tokens:,} tokens) of {what} have no catalog price, so the estimate "
                f"misses up to {format_usd(gap)}{share}; add the price to data/prices.override.csv")
    if status == "not logged":
        return (f"billed {format_usd(billed)} for {what} with no logged usage: calls that bypass the usage log (another app, "
                "a key without the wrapper) or usage that was never imported")
    if status == "not billed":
        return (f"logged usage priced at {format_usd(estimated)} for {what} is not on the bill: the bill for this day may not be "
                "imported yet (the Costs API reports with a delay) or the usage was billed under another project")
    if status == "billed above estimate":
        return (f"the bill is {format_usd(gap)}{share} above the estimate for {what}: some calls were not logged, or OpenAI "
                "charged more than the catalog price (a price change, another tier)")
    return (f"the estimate is {format_usd(-gap)} above the bill for {what}: calls logged twice, a discount or credit on the bill, "
            "or a catalog price above what OpenAI charged")


def reconciliation_lines(store: Store, period: Period, catalog: Catalog | None = None) -> pd.DataFrame:
    """Estimated and billed cost side by side per (day, project_id, line_model, token_class):
    the input of `reconcile` and `reconciliation_summary`. Compute it once and pass it as
    `lines=` when a page shows several views of the same period. A period of closed months
    (before the last month with usage) is remembered while its usage rollup rows, its billed
    lines and the catalog do not change (`closed_months`)."""
    catalog = catalog or load_catalog()
    bill = _PeriodBill(store, period)
    return closed_months.remember_closed(store, "reconciliation.lines", (period.first_day, period.last_day, closed_months.catalog_key(catalog)),
                                         period.last_month, lambda: _joined(store, period, catalog, bill),
                                         extra=lambda _: bill.digest())


def _joined(store: Store, period: Period, catalog: Catalog, bill: _PeriodBill | None = None) -> pd.DataFrame:
    fast = _joined_fast(store, period, catalog, bill)
    return fast if fast is not None else _joined_frames(store, period, catalog)


class _PeriodBill:
    """The bill rows of a period in the columns the lines read (`_FAST_BILL_COLUMNS`), read at
    most once: their digest stamps remembered lines (read before computing them) and the
    computation that may follow uses the same rows. The digest covers the values as read (a
    NULL currency reads as USD, a NULL amount as 0, a NULL project as '': read alike, they give
    the same lines, bar the count of other-currency groups)."""

    def __init__(self, store: Store, period: Period) -> None:
        self.store, self.period = store, period
        self._rows: dict[str, np.ndarray] | None = None

    def rows(self) -> dict[str, np.ndarray]:
        if self._rows is None:
            self._rows = scan(self.store, _FAST_BILL_COLUMNS, "FROM billed_costs WHERE day >= ? AND day <= ?",
                              [self.period.first_day, self.period.last_day])
        return self._rows

    def digest(self) -> str:
        """`closed_months.columns_digest` of the rows in a canonical order: SQLite reads them in
        index order; elsewhere they are sorted first (PostgreSQL's order may follow the heap)."""
        rows = self.rows()
        if self.store.dialect != "sqlite" and len(rows["day"]):
            ranks = []
            for values in rows.values():
                uniques, codes = _value_codes(values)
                ranks.append(_ranked(uniques)[1][0][codes])
            order = np.lexsort(ranks[::-1])
            rows = {name: values[order] for name, values in rows.items()}
        return closed_months.columns_digest(rows)


_FAST_USAGE_COLUMNS = (
    ("day", "day", TEXT), ("project_id", "project_id", TEXT), ("model", "model", TEXT), ("service_tier", "service_tier", TEXT),
    ("batch", "batch", INT),
    # 1: some events priced, 2: no unpriced event (one column instead of two: a column costs ~2 ms a month)
    ("state", "CASE WHEN events > unpriced_events THEN 1 ELSE 0 END + CASE WHEN unpriced_events = 0 THEN 2 ELSE 0 END", INT),
    ("text_in", "input_tokens - cached_input_tokens - cache_write_tokens - input_audio_tokens - input_image_tokens", INT),
    ("cached", "cached_input_tokens", INT), ("text_out", "output_tokens - output_audio_tokens - output_image_tokens", INT),
    ("all_tokens", "input_tokens + output_tokens", INT), ("cost", "cost_pico", INT), ("requests", "requests", INT),
    ("unpriced_requests", "unpriced_requests", INT), ("unpriced_tokens", "unpriced_tokens", INT),
)
# NULL currency is USD (as in `billed_line_items`); NULL amounts count 0 (`scan` reads NULL as 0).
_FAST_BILL_COLUMNS = (("day", "day", TEXT), ("project_id", "project_id", TEXT), ("line_item", "line_item", TEXT),
                      ("currency", "COALESCE(currency, 'USD')", TEXT), ("amount", "amount_pico", INT))


def _joined_fast(store: Store, period: Period, catalog: Catalog, bill: _PeriodBill | None = None) -> pd.DataFrame | None:
    """`_joined_frames` computed with numpy (the same rules as `line_item_costs`,
    `estimated_line_items` and `billed_line_items`; money exact: int64 where no value or sum can
    overflow, else Python ints). The usage rows are the project rollup's own rows (its key is the
    grouping key), read with the token arithmetic done in SQL, and the bill's rows as stored, both
    with `columns.scan` (one concatenated row per column on SQLite). Rates are looked up once per
    (model, price epoch, tier, batch). Text keys become codes that rank like the text, so the
    lines come out in the order of their (day, project_id, line_model, token_class) tuples.
    None when both sides are empty or give no line (the frame path gives that shape)."""
    params = [period.first_day, period.last_day]
    usage = scan(store, _FAST_USAGE_COLUMNS, "FROM rollup_project_model_day WHERE day >= ? AND day <= ?", params)
    bills = (bill or _PeriodBill(store, period)).rows()
    if not len(usage["day"]) and not len(bills["day"]):
        return None
    used = {name: _value_codes(usage[name]) for name in ("day", "project_id", "model", "service_tier", "batch")}
    billed = {name: _value_codes(bills[name]) for name in ("day", "project_id", "line_item", "currency")}
    in_usd = np.array([str(c).upper() == "USD" for c in billed["currency"][0]], dtype=bool)[billed["currency"][1]]
    usd_rows = np.flatnonzero(in_usd)
    line_of_model = [catalog.resolve(m) or str(m).lower() for m in used["model"][0]]
    parsed = [parse_line_item(item, catalog) for item in billed["line_item"][0]]
    # Each key column: its sorted distinct text over both sides, and every row's rank in it.
    keys: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    for name, usage_values, usage_codes, bill_values, bill_codes in (
        ("day", used["day"][0], used["day"][1], billed["day"][0], billed["day"][1]),
        ("project_id", [p or NO_PROJECT for p in used["project_id"][0]], used["project_id"][1],
         [p or NO_PROJECT for p in billed["project_id"][0]], billed["project_id"][1]),
        ("line_model", line_of_model, used["model"][1], [p[0] for p in parsed], billed["line_item"][1]),
        ("token_class", list(TOKEN_CLASSES), np.arange(len(TOKEN_CLASSES)), [p[1] for p in parsed], billed["line_item"][1]),
    ):
        vocab, (usage_rank, bill_rank) = _ranked(usage_values, bill_values)
        keys[name] = (vocab, usage_rank[usage_codes], bill_rank[bill_codes][usd_rows])
    names = ("day", "project_id", "line_model", "token_class")
    sizes = [len(keys[name][0]) for name in names]
    rates = _row_rates(used, line_of_model, catalog)
    estimated = _estimated_lines(usage, rates, [keys[name][1] for name in names[:3]], sizes[:3], keys["token_class"][1])
    lines = [np.concatenate([e, keys[name][2]]) for e, name in zip(estimated["keys"], names)]
    if not len(lines[0]):
        return None
    inverse, representative, count = _groups(lines, sizes)
    at_estimate, at_bill = inverse[:len(estimated["keys"][0])], inverse[len(estimated["keys"][0]):]
    frame = pd.DataFrame({
        **{name: object_column(keys[name][0][line[representative]]) for name, line in zip(names, lines)},
        "estimated_pico": object_column(_placed(estimated["estimated_pico"], at_estimate, count).astype(object)),
        "tokens": object_column(_placed(estimated["tokens"], at_estimate, count).astype(object)),
        **{name: _placed(estimated[name], at_estimate, count).astype(np.int64) for name in ("requests", "unpriced_requests", "unpriced_tokens")},
        "billed_pico": object_column(exact_sums(at_bill, count, bills["amount"][usd_rows]).astype(object)),
    }, copy=False)
    frame.attrs["other_currencies"] = _other_currencies(store, period) if len(usd_rows) < len(in_usd) else (0, [])
    return frame


def _value_codes(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct values (object array) and each value's position among them."""
    if not len(values):
        return np.zeros(0, dtype=object), np.zeros(0, dtype=np.int64)
    codes, uniques = pd.factorize(values)
    return np.asarray(uniques, dtype=object), codes


def _ranked(*lists: list[str] | np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """The sorted distinct values of a few short lists of text, and each list's values as
    positions in them (so positions compare like the text)."""
    vocab = sorted(set().union(*(set(values) for values in lists)))
    position = {value: index for index, value in enumerate(vocab)}
    return np.array(vocab, dtype=object), [np.array([position[v] for v in values], dtype=np.int64) for values in lists]


def _groups(keys: list[np.ndarray], sizes: list[int]) -> tuple[np.ndarray, np.ndarray, int]:
    """Rows grouped by equal codes in every key column (codes of column i below sizes[i]),
    groups in lexicographic order of the codes: each row's group, one row of each group, and the
    number of groups. One int64 key per row when the codes' combinations fit, else `lexsort`."""
    rows = len(keys[0])
    if not rows:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), 0
    span = 1
    for size in sizes:
        span *= max(size, 1)
    if span < SAFE:
        combined = keys[0].astype(np.int64)
        for key, size in zip(keys[1:], sizes[1:]):
            combined = combined * size + key
        codes, uniques = pd.factorize(combined)
        rank = np.empty(len(uniques), dtype=np.int64)
        rank[np.argsort(uniques)] = np.arange(len(uniques))
        inverse, count = rank[codes], len(uniques)
    else:
        order = np.lexsort(keys[::-1])  # lexsort sorts by its last key first
        starts = np.zeros(rows, dtype=bool)
        starts[0] = True
        for key in keys:
            ordered = key[order]
            starts[1:] |= ordered[1:] != ordered[:-1]
        inverse = np.empty(rows, dtype=np.int64)
        inverse[order] = np.cumsum(starts) - 1
        count = int(starts.sum())
    representative = np.empty(count, dtype=np.int64)
    representative[inverse] = np.arange(rows)  # any row of a group: they all have its key
    return inverse, representative, count


def _row_rates(used: dict[str, tuple[np.ndarray, np.ndarray]], line_of_model: list[str], catalog: Catalog) -> np.ndarray:
    """Each usage row's (text input, cached input, text output) rates as an (n, 3) int64 array
    (MISSING where the catalog has none), from `_RateLookup` once per distinct (model, price
    epoch, tier, batch). `used`: the distinct values and codes of the rows' day, model,
    service_tier and batch; `line_of_model`: each distinct model's line model."""
    days, day_codes = used["day"]
    model_codes, tier_codes, batch_codes = used["model"][1], used["service_tier"][1], used["batch"][1]
    if not len(model_codes):
        return np.zeros((0, 3), dtype=np.int64)
    lookup = _RateLookup(catalog)
    epochs = np.stack([lookup.epochs(line, days) for line in line_of_model]) + 1
    inverse, representative, count = _groups([model_codes, epochs[model_codes, day_codes], tier_codes, batch_codes],
                                            [len(line_of_model), int(epochs.max()) + 1, len(used["service_tier"][0]), len(used["batch"][0])])
    tiers, batches = used["service_tier"][0], used["batch"][0]
    table = np.array([lookup.get(line_of_model[model_codes[i]], days[day_codes[i]], tiers[tier_codes[i]], batches[batch_codes[i]])
                      for i in representative.tolist()], dtype=np.int64).reshape(count, 3)
    return table[inverse]


def _estimated_lines(usage: dict[str, np.ndarray], rates: np.ndarray, slot_keys: list[np.ndarray], slot_sizes: list[int],
                     class_codes: np.ndarray) -> dict[str, object]:
    """The estimate's lines from the usage rows (`rates`: each row's three rates; `slot_keys`:
    each row's day, project and line model codes; `class_codes`: the codes of TOKEN_CLASSES).
    Per (day, project, line model): the four classes' amounts and tokens (a row with unpriced
    events or a missing rate puts its priced cost on 'other', tokens unsplit), requests and
    unpriced counts on the 'input' line; empty lines left out as `estimated_line_items` does.
    Returns the lines' key codes (`keys`, four columns) and their columns."""
    priced = (usage["state"] & 1) != 0
    usable = priced & ((usage["state"] & 2) != 0) & (rates >= 0).all(axis=1)
    quantities = [np.where(usable, usage[c], 0) for c in ("text_in", "cached", "text_out")]
    amounts = [_product(q, np.where(usable, rates[:, i], 0)) for i, q in enumerate(quantities)]
    amounts.append(_difference(np.where(priced, usage["cost"], 0), amounts))
    tokens = [*quantities, np.where(priced & ~usable, usage["all_tokens"], 0)]
    slot, representative, slots = _groups(slot_keys, slot_sizes)
    amount_sums = [exact_sums(slot, slots, exact_ints(a)) for a in amounts]
    token_sums = [exact_sums(slot, slots, exact_ints(t)) for t in tokens]
    counts = {c: exact_sums(slot, slots, exact_ints(usage[c])) for c in ("requests", "unpriced_requests", "unpriced_tokens")}
    picks = []
    for index, (amount, token) in enumerate(zip(amount_sums, token_sums)):
        keep = (amount != 0) | (token != 0)
        picks.append(np.flatnonzero(keep | (counts["unpriced_requests"] > 0) if index == 0 else keep))
    rows = [representative[p] for p in picks]
    zero = np.zeros(sum(len(p) for p in picks[1:]), dtype=np.int64)
    return {
        "keys": [*(np.concatenate([k[r] for r in rows]) for k in slot_keys),
                 np.concatenate([np.full(len(p), class_codes[i], dtype=np.int64) for i, p in enumerate(picks)])],
        "estimated_pico": _joined_ints([a[p] for a, p in zip(amount_sums, picks)]),
        "tokens": _joined_ints([t[p] for t, p in zip(token_sums, picks)]),
        **{c: _joined_ints([v[picks[0]], zero]) for c, v in counts.items()},
    }


def _difference(total: np.ndarray, parts: list[np.ndarray]) -> np.ndarray:
    """total - sum(parts) exactly: int64 when no step can overflow, else Python ints."""
    arrays = [total, *parts]
    if all(a.dtype == np.int64 for a in arrays) and sum(int(np.abs(a).max(initial=0)) for a in arrays) < SAFE:
        out = total.copy()
    else:
        arrays = [a.astype(object) for a in arrays]
        out = arrays[0].copy()
    for part in arrays[1:]:
        out = out - part
    return out


def _joined_ints(arrays: list[np.ndarray]) -> np.ndarray:
    """Integer arrays end to end: int64 if all are, else Python ints."""
    if all(a.dtype == np.int64 for a in arrays):
        return np.concatenate(arrays) if arrays else np.zeros(0, dtype=np.int64)
    return np.concatenate([a.astype(object) for a in arrays])


def _placed(values: np.ndarray, positions: np.ndarray, size: int) -> np.ndarray:
    """`values` at `positions` of an array of `size` zeros (int64 if `values` is, else Python
    ints)."""
    out = np.zeros(size, dtype=np.int64 if values.dtype == np.int64 else object)
    out[positions] = values
    return out


def _other_currencies(store: Store, period: Period) -> tuple[int, list[str]]:
    """(bill groups of (day, project_id, line_item, currency) not in USD, their currencies upper
    case), as `billed_line_items` counts them (NULL and '' project ids apart); read again by
    SQL only when the bill has such rows."""
    _, rows = store.fetch("SELECT DISTINCT day, project_id, line_item, currency FROM billed_costs "
                          "WHERE day >= ? AND day <= ? AND currency IS NOT NULL AND currency <> 'USD'",
                          [period.first_day, period.last_day])
    groups = [row for row in rows if str(row[3]).upper() != "USD"]
    return len(groups), sorted({str(row[3]).upper() for row in groups})


class _RateLookup:
    """(text input, cached input, text output) rates of a line model on a day for a tier and
    batch flag, as `_rates_table` gives them (MISSING without a catalog model), looked up once
    per price epoch: a run of days between two effective dates of the model's catalog rows
    (the rule `costing.price_arrays` uses)."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.dates: dict[str, list[str]] = {}
        for row in catalog.rows:
            self.dates.setdefault(row.model, []).append(row.effective_from)
        for model, dates in self.dates.items():
            self.dates[model] = sorted(set(dates))
        self.known: dict[str, str | None] = {}
        self.cache: dict[tuple, tuple[int, int, int]] = {}

    def epoch(self, line_model: str, day: str) -> int:
        """The price epoch of `day` for a line model (-1 without a catalog model)."""
        known = self._known(line_model)
        if not known:
            return -1
        dates = self.dates.get(known, [])
        return bisect.bisect_right(dates, day) if len(dates) > 1 else 0

    def epochs(self, line_model: str, days: np.ndarray) -> np.ndarray:
        """`epoch` of each of `days` (an object array of text), as int64."""
        known = self._known(line_model)
        if not known:
            return np.full(len(days), -1, dtype=np.int64)
        dates = self.dates.get(known, [])
        if len(dates) < 2:
            return np.zeros(len(days), dtype=np.int64)
        return np.searchsorted(np.array(dates, dtype=object), days, side="right").astype(np.int64)

    def get(self, line_model: str, day: str, tier: str, batch: int) -> tuple[int, int, int]:
        known = self._known(line_model)
        if not known:
            return MISSING, MISSING, MISSING
        key = (known, self.epoch(known, day), tier, batch)
        found = self.cache.get(key)
        if found is None:
            rates = rates_for(self.catalog, known, day, effective_tier(tier), bool(batch), False)
            found = self.cache[key] = (rates.text_in, rates.text_cached, rates.text_out)
        return found

    def _known(self, line_model: str) -> str | None:
        known = self.known.get(line_model, "")
        if known == "":
            known = self.known[line_model] = self.catalog.resolve(line_model)
        return known


def _joined_frames(store: Store, period: Period, catalog: Catalog) -> pd.DataFrame:
    estimated = estimated_line_items(store, period, catalog)
    billed, other = billed_line_items(store, period, catalog)
    keys = ["day", "project_id", "line_model", "token_class"]
    frame = estimated.merge(billed, on=keys, how="outer")
    for column in ("estimated_pico", "billed_pico", "tokens"):
        frame[column] = pd.Series([0 if v is None or (not isinstance(v, int) and pd.isna(v)) else int(v) for v in frame[column]],
                                  index=frame.index, dtype=object)
    for column in ("requests", "unpriced_requests", "unpriced_tokens"):
        frame[column] = frame[column].fillna(0).astype(np.int64)
    frame.attrs["other_currencies"] = (len(other), sorted(set(other["currency"])) if not other.empty else [])
    return frame


def reconcile(
    store: Store,
    period: Period,
    catalog: Catalog | None = None,
    *,
    by: tuple[str, ...] = _BY_CHOICES,
    lines: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Estimated vs billed cost over the exact days of `period`, grouped by any of day,
    project_id and line_item (default all three).

    Columns: RECONCILE_COLUMNS minus the keys not in `by` (money in pico-dollars;
    difference = billed - estimated; difference_pct of billed, None without a bill).
    Sorted by the size of the gap, largest first."""
    catalog = catalog or load_catalog()
    by = tuple(by)
    if not by or any(b not in _BY_CHOICES for b in by):
        raise InputError(f"reconcile by one or more of {', '.join(_BY_CHOICES)}")
    frame = _joined(store, period, catalog) if lines is None else lines
    keys = [b for b in _BY_CHOICES if b in by]
    if frame.empty:
        return pd.DataFrame(columns=[c for c in RECONCILE_COLUMNS if c not in _BY_CHOICES or c in keys])
    grouped = _grouped_lines(frame, keys)
    by_keys = grouped is not None  # rows in key order, as sort_values orders text
    if grouped is None:  # a key column of another dtype, or with missing or non-text values: pandas' rules
        if "line_item" in keys:  # a new frame: the caller's lines are not modified
            frame = frame.assign(line_item=frame["line_model"] + ", " + frame["token_class"])
        grouped = group_sum(frame, keys, list(_SUMMED))
    estimated = [int(v) for v in grouped["estimated_pico"].tolist()]
    billed = [int(v) for v in grouped["billed_pico"].tolist()]
    unpriced, unpriced_tokens = grouped["unpriced_requests"].tolist(), grouped["unpriced_tokens"].tolist()
    key_values = [grouped[k].to_numpy(dtype=object) for k in keys]
    statuses = [_status(e, b, u) for e, b, u in zip(estimated, billed, unpriced)]
    gaps = [abs(b - e) for b, e in zip(billed, estimated)]
    if by_keys:  # largest gap first, equal gaps in key order (a stable sort of rows in key order)
        order = sorted(range(len(gaps)), key=gaps.__getitem__, reverse=True)
    else:
        ranking = pd.DataFrame({"_gap": gaps, **{k: key_values[i] for i, k in enumerate(keys)}})
        order = ranking.sort_values(["_gap", *keys], ascending=[False, *([True] * len(keys))]).index.tolist()
    estimated, billed, statuses = [estimated[i] for i in order], [billed[i] for i in order], [statuses[i] for i in order]
    unpriced, unpriced_tokens = [unpriced[i] for i in order], [unpriced_tokens[i] for i in order]
    key_values = [values[order] for values in key_values]
    columns = {
        **{k: object_column(values) if grouped[k].dtype == object else pd.Series(values, dtype=grouped[k].dtype) for k, values in zip(keys, key_values)},
        "estimated_pico": pd.Series(estimated, dtype=object),
        "billed_pico": pd.Series(billed, dtype=object),
        "difference_pico": pd.Series([b - e for b, e in zip(billed, estimated)], dtype=object),
        "difference_pct": pd.Series([(_ZERO_PCT if b == e else pct(b - e, b)) if b else None for b, e in zip(billed, estimated)], dtype=object),
        "tokens": grouped["tokens"].to_numpy()[order],
        "unpriced_requests": grouped["unpriced_requests"].to_numpy()[order],
        "unpriced_tokens": grouped["unpriced_tokens"].to_numpy()[order],
        "status": statuses,
        "explanation": [_MATCH_TEXT if s == "matches" else _explain(s, e, b, int(ur), int(ut), _what(row, keys))
                        for s, e, b, ur, ut, row in zip(statuses, estimated, billed, unpriced, unpriced_tokens, zip(*key_values))],
    }
    return pd.DataFrame({c: columns[c] for c in RECONCILE_COLUMNS if c not in _BY_CHOICES or c in keys})


_SUMMED = ("estimated_pico", "billed_pico", "tokens", "unpriced_requests", "unpriced_tokens")


def _grouped_lines(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame | None:
    """`group_sum` of the lines' `_SUMMED` columns per `keys` (line_item: '<line_model>,
    <token_class>'), computed with numpy: the same groups in the same order (sorted by the key
    text), sums exact (int64 where they fit, else Python ints; None counts 0), key columns as
    object columns. None when a key column is not a plain object column of text (the caller then
    uses `group_sum`)."""
    codes, sizes, vocabs = [], [], []
    for key in keys:
        found = _line_item_codes(frame) if key == "line_item" else _text_codes(frame[key])
        if found is None:
            return None
        vocabs.append(found[0])
        codes.append(found[1])
        sizes.append(len(found[0]))
    inverse, representative, count = _groups(codes, sizes)
    return pd.DataFrame({**{key: object_column(vocab[code[representative]]) for key, vocab, code in zip(keys, vocabs, codes)},
                         **{column: exact_sums(inverse, count, exact_ints_filled(frame[column])) for column in _SUMMED}}, copy=False)


def _text_codes(values: pd.Series) -> tuple[np.ndarray, np.ndarray] | None:
    """The sorted distinct values of a plain object column of text and each row's position among
    them; None for another dtype (e.g. Arrow strings: `group_sum` keeps it) or a missing or
    non-text value."""
    if values.dtype != object:
        return None
    uniques, codes = _value_codes(values.to_numpy())
    if len(codes) and int(codes.min()) < 0 or not all(type(u) is str for u in uniques):
        return None
    vocab, (rank,) = _ranked(uniques)
    return vocab, rank[codes]


def _line_item_codes(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray] | None:
    """`_text_codes` of '<line_model>, <token_class>', the text built once per distinct pair."""
    models, classes = _text_codes(frame["line_model"]), _text_codes(frame["token_class"])
    if models is None or classes is None:
        return None
    width = max(len(classes[0]), 1)
    pair_codes, pairs = pd.factorize(models[1] * width + classes[1])
    texts = [models[0][p // width] + ", " + classes[0][p % width] for p in pairs.tolist()]
    vocab, (rank,) = _ranked(texts)
    return vocab, rank[pair_codes]


def _what(values: tuple, keys: list[str]) -> str:
    parts = dict(zip(keys, values))
    text = []
    if "line_item" in parts:
        text.append(f"'{parts['line_item']}'")
    if "project_id" in parts:
        text.append(f"project {parts['project_id']}")
    if "day" in parts:
        text.append(f"on {parts['day']}" if text else f"the day {parts['day']}")
    return " ".join(text) if text else "the period"


def unpriced_models(store: Store, period: Period, catalog: Catalog | None = None) -> pd.DataFrame:
    """Models with usage that could not be priced over the exact days of `period`.

    Columns: model, in_catalog, unpriced_requests, unpriced_tokens, unpriced_events, reason."""
    catalog = catalog or load_catalog()
    # Only rows with unpriced events carry unpriced requests or tokens (the rollups count them from
    # unpriced events alone), so the others are left out before grouping (no sort of every row).
    frame = read(store, 
        "SELECT model, CAST(SUM(unpriced_requests) AS BIGINT) AS unpriced_requests, CAST(SUM(unpriced_tokens) AS BIGINT) AS unpriced_tokens, "
        "CAST(SUM(unpriced_events) AS BIGINT) AS unpriced_events FROM rollup_feature_model_day WHERE day >= ? AND day <= ? "
        "AND unpriced_events > 0 GROUP BY model HAVING SUM(unpriced_events) > 0 ORDER BY model",
        [period.first_day, period.last_day],
    )
    columns = ["model", "in_catalog", "unpriced_requests", "unpriced_tokens", "unpriced_events", "reason"]
    if frame.empty:
        return pd.DataFrame(columns=columns)
    frame["in_catalog"] = [catalog.resolve(m) is not None for m in frame["model"]]
    frame["reason"] = [
        "in the catalog, but some usage needs a price it lacks (tier, long context or unit)" if known
        else "not in the catalog: add it to data/prices.override.csv"
        for known in frame["in_catalog"]
    ]
    return frame[columns].sort_values(["unpriced_requests", "model"], ascending=[False, True]).reset_index(drop=True)


SUMMARY_COLUMNS = ["component", "amount_pico", "share_of_billed_pct", "explanation"]


def reconciliation_summary(
    store: Store, period: Period, catalog: Catalog | None = None, *, lines: pd.DataFrame | None = None
) -> pd.DataFrame:
    """The bill against the estimate in plain language, one component per row.

    Components: billed, estimated, difference, attributed to customers, logged without a
    customer, unattributed remainder (billed - attributed to customers), billed with no logged
    usage, drift on days with logged usage, unpriced usage, bill rows in other currencies.
    Columns: SUMMARY_COLUMNS (amount None where the component is a count, e.g. unpriced)."""
    catalog = catalog or load_catalog()
    frame = _joined(store, period, catalog) if lines is None else lines
    billed = _money_total(frame["billed_pico"]) if not frame.empty else 0
    estimated = _money_total(frame["estimated_pico"]) if not frame.empty else 0
    attributed, unattributed = _customer_split(store, period)
    rows: list[tuple[str, int | None, str]] = []
    rows.append(("billed (OpenAI Costs API)", billed, "what OpenAI charged for the period, by its Costs API"))
    rows.append(("estimated from usage", estimated, "logged or imported usage priced with the catalog"))
    rows.append(("difference (billed - estimated)", billed - estimated, _overall_sentence(billed, estimated)))
    rows.append(("attributed to customers", attributed, "estimated cost of usage tagged with a customer"))
    rows.append(("logged without a customer", unattributed,
                 "estimated cost of usage with no customer id: map its projects, keys or users to customers"))
    rows.append(("unattributed remainder", billed - attributed,
                 "the part of the bill no customer carries: usage without a customer plus the gap between bill and estimate"))
    projects = _unlogged_projects(frame)
    rows.append(("billed with no logged usage", sum(projects.values()),
                 ("projects billed with no logged usage: " + ", ".join(f"{p} ({format_usd(a)})" for p, a in sorted(projects.items(), key=lambda kv: -kv[1])))
                 if projects else "every billed project has logged usage"))
    drift_amount, drift_text = _drift(frame, set(projects))
    rows.append(("drift on logged projects", drift_amount, drift_text))
    unpriced = unpriced_models(store, period, catalog)
    if unpriced.empty:
        rows.append(("unpriced usage", None, "every logged request was priced"))
    else:
        rows.append(("unpriced usage", None,
                     f"{int(unpriced['unpriced_requests'].sum()):,} requests ({int(unpriced['unpriced_tokens'].sum()):,} tokens) could not be priced "
                     f"and are not in the estimate; models: {', '.join(unpriced['model'])}"))
    count, currencies = frame.attrs.get("other_currencies", (0, []))
    if count:
        rows.append(("bill rows in other currencies", None,
                     f"{count} rows in {', '.join(currencies)} are not converted and not in the billed total"))
    out = pd.DataFrame({
        "component": [r[0] for r in rows],
        "amount_pico": pd.Series([None if r[1] is None else int(r[1]) for r in rows], dtype=object),
        "explanation": [r[2] for r in rows],
    })
    out["share_of_billed_pct"] = [None if a is None or not billed else pct(a, billed) for a in out["amount_pico"]]
    return out[SUMMARY_COLUMNS]


def _customer_split(store: Store, period: Period) -> tuple[int, int]:
    if period.is_whole_months:
        source, column, lo, hi = "rollup_customer_month", "month", period.first_month, period.last_month
    else:
        source, column, lo, hi = "rollup_customer_day", "day", period.first_day, period.last_day
    frame = read(store, 
        f"SELECT CAST(SUM(CASE WHEN customer_id = ? THEN cost_pico ELSE 0 END) AS BIGINT) AS unattributed, "
        f"CAST(SUM(CASE WHEN customer_id <> ? THEN cost_pico ELSE 0 END) AS BIGINT) AS attributed "
        f"FROM {source} WHERE {column} >= ? AND {column} <= ?",
        [UNATTRIBUTED, UNATTRIBUTED, lo, hi],
    )
    row = frame.iloc[0]
    return (0 if pd.isna(row["attributed"]) else int(row["attributed"])), (0 if pd.isna(row["unattributed"]) else int(row["unattributed"]))


def _overall_sentence(billed: int, estimated: int) -> str:
    if billed == 0 and estimated == 0:
        return "no usage and no bill in the period"
    if billed == 0:
        return "no billed cost is imported for the period: import the OpenAI Costs API (walleta import openai)"
    gap = billed - estimated
    if abs(gap) <= _tolerance(billed):
        return f"the estimate is within $0.01 or 0.5% of the bill ({pct(gap, billed)}%)"
    side = "above" if gap > 0 else "below"
    return f"the bill is {format_usd(abs(gap))} ({pct(abs(gap), billed)}%) {side} the estimate; the rows below say where"


def _money_sums(keys: pd.Series, columns: list[pd.Series]) -> dict[object, list[int]]:
    """Exact sums of integer columns (Python ints or int64; None counts 0) per key value:
    numpy int64 when no sum can overflow, else Python ints row by row."""
    codes, names = pd.factorize(keys.to_numpy(dtype=object))
    arrays = []
    for column in columns:
        values = column.to_numpy(dtype=object) if column.dtype == object else column.to_numpy()
        try:
            as_int = np.asarray(values, dtype=np.int64)
        except (OverflowError, TypeError, ValueError):
            arrays = None
            break
        if len(as_int) and max(abs(int(as_int.max())), abs(int(as_int.min()))) * len(as_int) >= 2**62:
            arrays = None
            break
        arrays.append(as_int)
    if arrays is None:
        out: dict[object, list[int]] = {}
        for key, *values in zip(keys.tolist(), *(c.tolist() for c in columns)):
            found = out.setdefault(key, [0] * len(columns))
            for i, v in enumerate(values):
                found[i] += 0 if v is None else int(v)
        return out
    sums = []
    for array in arrays:
        total = np.zeros(len(names), dtype=np.int64)
        np.add.at(total, codes, array)
        sums.append(total.tolist())
    return {name: [s[i] for s in sums] for i, name in enumerate(names)}


def _money_total(column: pd.Series) -> int:
    """The exact sum of an integer column (Python ints or int64; None counts 0)."""
    try:
        values = np.asarray(column.to_numpy(dtype=object), dtype=np.int64)
    except (OverflowError, TypeError, ValueError):
        return sum(0 if v is None else int(v) for v in column.tolist())
    if len(values) and max(abs(int(values.max())), abs(int(values.min()))) * len(values) >= 2**62:
        return sum(int(v) for v in values.tolist())
    return int(values.sum())


def _unlogged_projects(frame: pd.DataFrame) -> dict[str, int]:
    """Projects with a bill but neither an estimate nor logged requests: project -> billed."""
    if frame.empty:
        return {}
    per_project = _money_sums(frame["project_id"], [frame["estimated_pico"], frame["billed_pico"], frame["requests"]])
    return {p: b for p, (e, b, r) in sorted(per_project.items()) if e == 0 and r == 0 and b > 0}


def _drift(frame: pd.DataFrame, unlogged: set[str]) -> tuple[int, str]:
    """Days on logged projects where bill and estimate differ beyond tolerance, as ranges."""
    if frame.empty:
        return 0, "no data"
    logged = frame[~frame["project_id"].isin(unlogged)] if unlogged else frame
    daily = _money_sums(logged["day"], [logged["estimated_pico"], logged["billed_pico"]])
    days = []
    for day, (e, b) in sorted(daily.items()):
        if b and abs(b - e) > _tolerance(b):
            days.append((day, b - e, b))
    if not days:
        return 0, "on every day with a bill, bill and estimate agree within $0.01 or 0.5%"
    amount = sum(g for _, g, _ in days)
    ranges = _ranges(days)
    text = "; ".join(
        f"{first}..{last}: bill {'above' if gap > 0 else 'below'} estimate by {format_usd(abs(gap))} ({pct(abs(gap), bill)}%)"
        if first != last else f"{first}: bill {'above' if gap > 0 else 'below'} estimate by {format_usd(abs(gap))} ({pct(abs(gap), bill)}%)"
        for first, last, gap, bill in ranges[:8]
    )
    more = f" and {len(ranges) - 8} more ranges" if len(ranges) > 8 else ""
    return amount, (f"{len(days)} days differ beyond tolerance: {text}{more}. Days with the bill above the estimate usually "
                    "mean calls that were not logged (an outage of the logger, a deploy without the wrapper).")


def _ranges(days: list[tuple[str, int, int]]) -> list[tuple[str, str, int, int]]:
    from datetime import date, timedelta

    out: list[tuple[str, str, int, int]] = []
    for day, gap, bill in days:
        if out and date.fromisoformat(out[-1][1]) + timedelta(days=1) == date.fromisoformat(day) and (out[-1][2] > 0) == (gap > 0):
            first, _, total_gap, total_bill = out[-1]
            out[-1] = (first, day, total_gap + gap, total_bill + bill)
        else:
            out.append((day, day, gap, bill))
    return out
