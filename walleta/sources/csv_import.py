"""One entry point for every CSV kind: detect the kind, read, validate, store, report.

`import_csv(store, path)` reads the file (`csv_reader`), works out its kind from the header
when not given (and says so), maps the columns (and says how), hands the table to the kind's
importer, and writes the rejected rows to an error file whose path is in the report. Kinds:

    usage            our usage schema                      csv_usage
    customers        customers                             csv_customers
    mapping          project / API key / user -> customer  csv_customers
    revenue          our revenue schema or Stripe invoices csv_revenue
    openai-activity  OpenAI dashboard activity export      csv_openai_exports
    openai-costs     OpenAI dashboard cost export          csv_openai_exports
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Sequence

from ..catalog import Catalog, load_catalog
from ..errors import InputError
from ..store import Store
from .csv_customers import CUSTOMER_SPECS, MAPPING_SPECS, import_customers, import_mapping
from .csv_openai_exports import ACTIVITY_SPECS, COST_SPECS, import_activity, import_costs
from .csv_reader import ColumnMapping, ColumnSpec, CsvTable, match_header, normalise_header, read_table, write_error_file
from .csv_revenue import OWN_SPECS, STRIPE_SPECS, import_revenue, is_stripe_export
from .csv_usage import SPECS as USAGE_SPECS
from .csv_usage import import_usage
from .report import ImportReport, ProgressCallback, no_progress

__all__ = ["KINDS", "SPECS_BY_KIND", "detect_kind", "import_csv", "default_error_path"]

KINDS = ("usage", "customers", "mapping", "revenue", "openai-activity", "openai-costs")
SPECS_BY_KIND: dict[str, tuple[ColumnSpec, ...]] = {
    "usage": USAGE_SPECS,
    "customers": CUSTOMER_SPECS,
    "mapping": MAPPING_SPECS,
    "revenue": OWN_SPECS,
    "openai-activity": ACTIVITY_SPECS,
    "openai-costs": COST_SPECS,
}


def detect_kind(header: Sequence[str]) -> tuple[str, str]:
    """(kind, why) from a header; raises InputError when no kind fits."""
    names = {normalise_header(h) for h in header}

    def complete(kind: str) -> bool:
        return not match_header(header, SPECS_BY_KIND[kind]).missing_required

    if complete("openai-costs") and ({"amount_value", "line_item"} & names) and "customer_id" not in names:
        return "openai-costs", "amount_value / line_item columns (OpenAI cost export)"
    if complete("openai-activity") and "customer_id" not in names and (
        {"num_model_requests", "input_cached_tokens", "start_time_iso"} & names or {"start_time", "input_tokens"} <= names
    ):
        return "openai-activity", "start_time and usage-count columns without customer_id (OpenAI activity export)"
    if complete("mapping") and {"source", "key"} <= names:
        return "mapping", "source / key / customer_id columns"
    if is_stripe_export(list(header)):
        return "revenue", "Stripe invoice export columns (id, Customer, Amount Paid/Total, Currency)"
    if complete("revenue") and "amount" in names and "currency" in names:
        return "revenue", "customer_id / period_start / amount / currency columns"
    if complete("usage"):
        return "usage", "timestamp / customer_id / model / token columns"
    if complete("customers") and not ({"model", "input_tokens", "amount"} & names):
        return "customers", "customer_id column with customer details"
    raise InputError(
        "cannot tell what kind of CSV this is from its header ("
        + ", ".join(list(header)[:12])
        + ("..." if len(header) > 12 else "")
        + f"); pass the kind explicitly ({', '.join(KINDS)}) and see the README for each kind's columns"
    )


def default_error_path(source: str | Path | bytes, name: str) -> Path:
    """Where rejected rows go: next to the input file (`<name>.errors.csv`), else the cwd."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        candidate = path.with_name(f"{path.stem}.errors.csv")
        try:
            candidate.touch(exist_ok=True)
            return candidate
        except OSError:
            pass
    return Path.cwd() / f"{Path(name).stem}.errors.csv"


def _mib(size: int) -> str:
    return f"{size / 2**20:,.1f} MiB"


def _over_upload_limit(display: str, measured: str, limit: str) -> InputError:
    """The error for a file over an upload limit, e.g. 'big.csv: the file has 8 rows, over ...'."""
    return InputError(
        f"{display}: the file {measured}, over the limit of {limit} for one upload; "
        "split it into smaller files, or import it with `walleta import csv`"
    )


def import_csv(
    store: Store,
    source: str | Path | bytes,
    *,
    kind: str | None = None,
    catalog: Catalog | None = None,
    name: str | None = None,
    error_path: str | Path | None = None,
    progress: ProgressCallback = no_progress,
    max_bytes: int | None = None,
    max_rows: int | None = None,
) -> ImportReport:
    """Import one CSV file (path or bytes) of any kind; see the module docstring.

    `max_bytes` / `max_rows` (None: no limit) refuse larger files as a whole, before anything
    is written (the app sets them for uploads; the CLI has none).
    Raises InputError for a file that cannot be used at all (not a CSV, empty, unknown kind,
    missing required columns, over a limit). Row-level problems are in `report.errors` and the
    error file.
    """
    if kind is not None and kind not in KINDS:
        raise InputError(f"unknown kind {kind!r}: use one of {', '.join(KINDS)}")
    if isinstance(source, (bytes, bytearray)):
        data, display = bytes(source), name or "upload.csv"
    else:
        try:
            data = Path(source).read_bytes()
        except OSError as exc:
            raise InputError(f"cannot read {source}: {exc.strerror or exc}") from exc
        display = name or Path(source).name
    if max_bytes is not None and len(data) > max_bytes:
        raise _over_upload_limit(display, f"is {_mib(len(data))}", _mib(max_bytes))
    progress("reading", 0, 1)
    table = read_table(data, name=display)
    progress("reading", 1, 1)
    rows = table.rows + len(table.errors) + table.blank_rows
    if max_rows is not None and rows > max_rows:
        raise _over_upload_limit(display, f"has {rows:,} rows", f"{max_rows:,}")
    detected = kind is None
    stripe = False
    if kind is None:
        kind, why = detect_kind(table.header)
    else:
        why = "given"
    if kind == "revenue":
        stripe = is_stripe_export(table.header)
    specs = STRIPE_SPECS if stripe else SPECS_BY_KIND[kind]
    mapping = match_header(table.header, specs)
    _require_columns(table, kind, mapping)
    report = ImportReport(kind=kind, source=table.name, rows_read=rows)
    label = f"{kind}{' (Stripe invoice export)' if stripe else ''}"
    report.notes.append(f"kind: {label} ({'detected from the header: ' + why if detected else 'given'})")
    report.notes.append(f"read as {table.describe()}")
    report.notes.append(mapping.describe())
    if table.blank_rows:
        report.notes.append(f"{table.blank_rows:,} blank rows skipped")
    content_hash = hashlib.sha256(data).hexdigest() + ":" + kind
    catalog = catalog or (load_catalog() if kind in ("usage", "openai-activity") else None)
    if kind == "usage":
        import_usage(store, table, mapping, catalog, report, content_hash=content_hash, progress=progress)
    elif kind == "openai-activity":
        import_activity(store, table, mapping, catalog, report, content_hash=content_hash, progress=progress)
    elif kind == "openai-costs":
        import_costs(store, table, mapping, report, content_hash=content_hash, progress=progress)
    elif kind == "customers":
        import_customers(store, table, mapping, report, content_hash=content_hash, progress=progress)
    elif kind == "mapping":
        import_mapping(store, table, mapping, report, content_hash=content_hash, progress=progress)
    else:
        import_revenue(store, table, mapping, report, content_hash=content_hash, progress=progress, stripe=stripe)
    if report.errors:
        target = Path(error_path) if error_path else default_error_path(source, table.name)
        report.error_file = write_error_file(target, report.errors, table)
    return report


def _require_columns(table: CsvTable, kind: str, mapping: ColumnMapping) -> None:
    if mapping.missing_required:
        raise InputError(
            f"{table.name}: missing required column(s) for kind {kind}: {', '.join(mapping.missing_required)} "
            f"(columns found: {', '.join(table.header[:20])})"
        )
