"""The Data page's panels: CSV uploads with their validation report, OpenAI and Stripe imports
with progress, customer matching. Each panel calls the importers of the core.

Keys typed here stay in this session's state only: they are passed to the SDK client for the
import and never written, logged or shown back (the inputs are password fields).
"""

from __future__ import annotations

import tempfile
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import streamlit as st

from ..errors import WalletaError
from ..export import to_csv_bytes
from ..matching import confirm_matches, map_customer, match_stripe, unmatched_revenue, unmatched_usage
from ..sources import openai_usage, stripe_import
from ..sources.csv_import import import_csv
from ..sources.mapping import mapping_overview, remap_provider_events, set_mappings
from ..sources.report import PHASES, ImportReport
from . import tables
from .cache import load
from .frame import PageContext
from .sources import bump_data_version, get_catalog, get_store, secret, set_mode

__all__ = ["uploads", "openai_import", "stripe_import_panel", "matching", "read_only_notice", "KIND_LABELS"]

REPORTS_KEY = "data_upload_reports"
# One upload's limits (the CLI has none): .streamlit/config.toml's maxUploadSize matches the size.
UPLOAD_MAX_BYTES = 200 * 2**20
UPLOAD_MAX_ROWS = 2_000_000
KIND_LABELS = {
    "auto": "Detect from the header",
    "usage": "Usage (Walleta schema)",
    "revenue": "Revenue (Walleta schema or Stripe invoice export)",
    "customers": "Customers",
    "mapping": "Customer mapping (project / API key / user)",
    "openai-activity": "OpenAI dashboard: activity export",
    "openai-costs": "OpenAI dashboard: cost export",
}


def read_only_notice(key: str) -> None:
    """Explain that the demo is not imported into, and offer the two modes that are."""
    st.info(
        "The demo data set is read-only. To bring in your own data, switch to **Uploaded CSVs only** "
        "(nothing saved) or **Database**.",
        icon=":material/lock:",
    )
    left, right, _ = st.columns([1, 1, 2])
    if left.button("Use uploaded CSVs only", key=f"{key}_to_session", icon=":material/upload_file:"):
        set_mode("session")
        st.rerun()
    if right.button("Use the database", key=f"{key}_to_database", icon=":material/database:"):
        set_mode("database")
        st.rerun()


# -- messages that survive the rerun after an import -------------------------------------------


def _flash(key: str, message: str, kind: str = "success") -> None:
    st.session_state[f"flash_{key}"] = (kind, message)


def _show_flash(key: str) -> None:
    found = st.session_state.pop(f"flash_{key}", None)
    if found:
        kind, message = found
        (st.success if kind == "success" else st.error)(message, icon=":material/check_circle:" if kind == "success" else ":material/error:")


# -- progress --------------------------------------------------------------------------------


def _progress_bar(label: str) -> Callable[[str, int, int], None]:
    """A Streamlit progress bar fed by the importers' (phase, done, total) callback."""
    bar = st.progress(0, text=label)

    def update(phase: str, done: int, total: int) -> None:
        low, high = PHASES.get(phase, (0.0, 1.0))
        within = 1.0 if total <= 0 else min(max(done / total, 0.0), 1.0)
        share = low + (high - low) * within
        counts = f" {done:,}/{total:,}" if total > 1 else ""
        bar.progress(min(share, 1.0), text=f"{label}: {phase}{counts}")

    return update


# -- CSV uploads -----------------------------------------------------------------------------


def _error_file(report: ImportReport) -> bytes | None:
    """The rejected rows (error columns + original cells), formulas neutralised."""
    if not report.error_file or not Path(report.error_file).exists():
        return None
    frame = pd.read_csv(report.error_file, dtype=str, keep_default_na=False)
    return to_csv_bytes(frame)


def _as_record(name: str, report: ImportReport | None, failure: str | None = None) -> dict[str, Any]:
    """What the page keeps of one import across reruns (plain data)."""
    if report is None:
        return {"name": name, "failure": failure}
    errors = pd.DataFrame(
        [{"row": e.row, "column": e.column, "value": e.value, "reason": e.reason} for e in report.errors[:1000]],
        columns=["row", "column", "value", "reason"],
    )
    return {
        "name": name,
        "failure": None,
        "kind": report.kind,
        "status": report.status,
        "summary": report.summary_line(),
        "rows_read": report.rows_read,
        "imported": report.imported + report.updated,
        "skipped": report.skipped,
        "rejected": report.rejected,
        "notes": list(report.notes),
        "unpriced": report.unpriced_line(),
        "errors": errors,
        "error_csv": _error_file(report),
    }


def _import_upload(name: str, data: bytes, kind: str) -> dict[str, Any]:
    store = get_store()
    update = _progress_bar(f"Importing {name}")
    with tempfile.TemporaryDirectory() as folder:
        try:
            report = import_csv(
                store,
                data,
                kind=None if kind == "auto" else kind,
                catalog=get_catalog(),
                name=name,
                error_path=Path(folder) / f"{Path(name).stem}.errors.csv",
                progress=update,
                max_bytes=UPLOAD_MAX_BYTES,
                max_rows=UPLOAD_MAX_ROWS,
            )
        except WalletaError as exc:
            return _as_record(name, None, str(exc))
        return _as_record(name, report)


def _show_report(record: dict[str, Any], index: int) -> None:
    with st.container(border=True):
        if record["failure"]:
            st.markdown(f"**{record['name']}**")
            st.error(record["failure"], icon=":material/block:")
            return
        icon = ":material/check_circle:" if record["status"] == "ok" else ":material/warning:"
        st.markdown(f"{icon} **{record['name']}** · {KIND_LABELS.get(record['kind'], record['kind'])}")
        read, imported, skipped, rejected = st.columns(4)
        read.metric("Rows read", f"{record['rows_read']:,}")
        imported.metric("Imported", f"{record['imported']:,}")
        skipped.metric("Already there", f"{record['skipped']:,}", help="Rows identical to ones imported before (re-imports add nothing)")
        rejected.metric("Rejected", f"{record['rejected']:,}")
        for note in record["notes"]:
            st.caption(note)
        if record["unpriced"]:
            st.warning(record["unpriced"], icon=":material/money_off:")
        if record["rejected"]:
            st.warning(
                f"{record['rejected']:,} rows were rejected and not imported; the good rows were. "
                "Fix them in the error file and upload it again.",
                icon=":material/rule:",
            )
            tables.table(
                record["errors"],
                key=f"upload_errors_{index}",
                file_name=f"{Path(record['name']).stem}.errors.csv",
                columns={
                    "row": tables.integer("Row"),
                    "column": tables.text("Column"),
                    "value": tables.text("Value"),
                    "reason": tables.text("Problem"),
                },
                height=min(400, 38 + 35 * len(record["errors"])),
            )
            if record["error_csv"]:
                st.download_button(
                    "Download the rejected rows to fix",
                    record["error_csv"],
                    f"{Path(record['name']).stem}.errors.csv",
                    "text/csv",
                    key=f"upload_error_file_{index}",
                    on_click="ignore",
                    icon=":material/download:",
                )


def uploads(ctx: PageContext, *, read_only: bool) -> None:
    """Usage, revenue, customers, mapping and OpenAI export CSV uploads."""
    if read_only:
        read_only_notice("uploads")
        return
    st.markdown(
        "Upload **usage**, **revenue**, **customers** or **customer mapping** CSVs, or OpenAI dashboard exports. "
        "Walleta recognises each file from its header, maps its columns, keeps the good rows and returns the bad "
        "ones with row, column and reason. Importing the same file twice adds nothing. Samples: `data/samples/`."
    )
    files = st.file_uploader(
        "CSV files",
        type=["csv", "txt"],
        accept_multiple_files=True,
        key="data_uploads",
        help=f"Up to {UPLOAD_MAX_BYTES // 2**20} MiB and {UPLOAD_MAX_ROWS:,} rows per file; "
        "import larger files with `walleta import csv`.",
    )
    kinds: dict[str, str] = {}
    for upload in files or []:
        kinds[upload.name] = st.selectbox(
            f"What is {upload.name}?",
            list(KIND_LABELS),
            format_func=KIND_LABELS.get,
            key=f"data_kind_{upload.name}",
        )
    if st.button("Import", key="data_import", type="primary", disabled=not files, icon=":material/upload:"):
        records = [_import_upload(u.name, u.getvalue(), kinds[u.name]) for u in files or []]
        st.session_state[REPORTS_KEY] = records
        bump_data_version()
        st.rerun()  # redraw the page (and its counts) with the new data
    for index, record in enumerate(st.session_state.get(REPORTS_KEY, [])):
        _show_report(record, index)


# -- API imports -----------------------------------------------------------------------------


def _key_input(label: str, secret_name: str, key: str, placeholder: str) -> str | None:
    """A password field; falls back to the secret of that name. Returns the key to use."""
    configured = secret(secret_name)
    help_text = "Kept in this browser session only: never saved, logged or shown."
    if configured:
        st.caption(f":material/key: Using `{secret_name}` from the app's secrets. Type another key to use it instead.")
    typed = st.text_input(label, type="password", key=key, placeholder=placeholder, help=help_text)
    return (typed or "").strip() or configured


def _range_inputs(prefix: str, last_cursor: str | None, first_days: int | None) -> tuple[date | None, date | None]:
    """From/to dates. Empty "from" means since the last import (or, on a first import, the last
    `first_days` days; everything when that is None)."""
    since_default = None if last_cursor or first_days is None else date.today() - timedelta(days=first_days)
    left, right = st.columns(2)
    since = left.date_input(
        "From (UTC)",
        value=since_default,
        key=f"{prefix}_since",
        help="Empty: since the last import" if last_cursor else ("Start of the range to import" if first_days else "Empty: everything"),
        format="YYYY-MM-DD",
    )
    until = right.date_input("To (UTC, exclusive; empty = now)", value=None, key=f"{prefix}_until", format="YYYY-MM-DD")
    return since, until


def openai_import(ctx: PageContext, *, read_only: bool) -> None:
    """Import usage and billed costs from the OpenAI organization APIs."""
    if read_only:
        read_only_notice("openai")
        return
    st.markdown(
        "Imports usage by project, API key, user and model (daily buckets) and the billed cost per day and line item "
        "with an **admin key** (platform.openai.com → Settings → Organization → Admin keys). Map projects, keys or "
        "users to customers on the *Customer matching* tab."
    )
    admin_key = _key_input("OpenAI admin key", "OPENAI_ADMIN_KEY", "openai_admin_key", "sk-admin-…")
    since, until = _range_inputs("openai", ctx.store.last_cursor(openai_usage.SOURCE), 30)
    go, listing = st.columns([1, 1])
    if go.button("Import from OpenAI", key="openai_go", type="primary", disabled=not admin_key, icon=":material/cloud_download:"):
        update = _progress_bar("OpenAI")
        try:
            client = openai_usage.make_client(admin_key=admin_key)
            report = openai_usage.import_openai(
                get_store(),
                get_catalog(),
                client=client,
                since=since.isoformat() if since else None,
                until=until.isoformat() if until else None,
                progress=update,
            )
        except WalletaError as exc:
            st.session_state["openai_report"] = _as_record("OpenAI API", None, str(exc))
        else:
            st.session_state["openai_report"] = _as_record("OpenAI API", report)
        bump_data_version()
        st.rerun()
    if listing.button("List projects and API keys", key="openai_list", disabled=not admin_key, icon=":material/list:"):
        try:
            st.session_state["openai_projects"] = openai_usage.list_projects_and_keys(openai_usage.make_client(admin_key=admin_key))
        except WalletaError as exc:
            st.error(str(exc), icon=":material/error:")
    if "openai_report" in st.session_state:
        _show_report(st.session_state["openai_report"], 900)
    projects = st.session_state.get("openai_projects")
    if projects is not None:
        st.markdown("**Projects and API keys in the organization**")
        tables.table(projects, key="openai_projects_table", file_name="walleta-openai-projects.csv")


def stripe_import_panel(ctx: PageContext, *, read_only: bool) -> None:
    """Import customers, invoices, credit notes, subscriptions and fees from Stripe."""
    if read_only:
        read_only_notice("stripe")
        return
    st.markdown(
        "Imports customers, paid invoices and their lines (service periods), credit notes, refunds, subscriptions and "
        "fees with a **restricted read key**. Revenue is net of refunds, credit notes and discounts, tax excluded."
    )
    api_key = _key_input("Stripe restricted key", "STRIPE_API_KEY", "stripe_api_key", "rk_live_…")
    since, until = _range_inputs("stripe", ctx.store.last_cursor(stripe_import.SOURCE), None)
    fees = st.checkbox("Import Stripe fees as a cost line", value=True, key="stripe_fees")
    if st.button("Import from Stripe", key="stripe_go", type="primary", disabled=not api_key, icon=":material/cloud_download:"):
        with st.status("Importing from Stripe…", expanded=True) as status:
            try:
                summary = stripe_import.import_stripe(
                    get_store(),
                    stripe_import.make_client(api_key),
                    since=since,
                    until=until,
                    include_fees=fees,
                    progress=lambda message: status.write(message),
                )
            except WalletaError as exc:
                status.update(label="Stripe import failed", state="error")
                st.session_state["stripe_report"] = {"failure": str(exc), "lines": []}
            else:
                status.update(label="Stripe import finished", state="complete", expanded=False)
                st.session_state["stripe_report"] = {"failure": None, "lines": summary.lines_of_text()}
        bump_data_version()
        st.rerun()
    report = st.session_state.get("stripe_report")
    if report:
        with st.container(border=True):
            if report["failure"]:
                st.error(report["failure"], icon=":material/block:")
            for line in report["lines"]:
                st.markdown(f"- {line}")


# -- matching --------------------------------------------------------------------------------


def _save_openai_mapping(edited: pd.DataFrame, original: pd.DataFrame) -> int:
    merged = edited.merge(original[["source", "key", "customer_id"]], on=["source", "key"], how="left", suffixes=("", "_before"))
    changed = merged[(merged["customer_id"].fillna("").str.strip() != merged["customer_id_before"].fillna(""))]
    rows = [
        (str(r.source), str(r.key), str(r.customer_id).strip())
        for r in changed.itertuples(index=False)
        if str(r.customer_id or "").strip() and not str(r.customer_id).startswith("(")
    ]
    if not rows:
        return 0
    store = get_store()
    with store.transaction() as cur:
        set_mappings(store, rows, method="manual", cur=cur)
        remap_provider_events(store, cur=cur)
    bump_data_version()
    return len(rows)


def _openai_mapping() -> None:
    overview = load(mapping_overview)
    if overview.empty:
        st.caption("No OpenAI API or export usage yet: nothing to map. (Usage from your own log already names its customer.)")
        return
    unmapped = int((overview["customer_id"] == "(unmapped)").sum())
    st.caption(f"{len(overview):,} projects, keys and users · {unmapped:,} not mapped. Type a customer id in the Customer column.")
    edited = st.data_editor(
        overview,
        key="mapping_editor",
        hide_index=True,
        disabled=["source", "key", "requests", "cost_usd", "unpriced_events"],
        column_config={
            "source": st.column_config.TextColumn("Type"),
            "key": st.column_config.TextColumn("Project / key / user"),
            "customer_id": st.column_config.TextColumn("Customer"),
            "requests": st.column_config.NumberColumn("Requests", format="localized"),
            "cost_usd": st.column_config.TextColumn("AI cost ($)"),
            "unpriced_events": st.column_config.NumberColumn("Unpriced rows", format="localized"),
        },
    )
    _show_flash("mapping")
    if st.button("Save mapping", key="mapping_save", type="primary", icon=":material/save:"):
        try:
            changed = _save_openai_mapping(edited, overview)
        except WalletaError as exc:
            st.error(str(exc), icon=":material/error:")
        else:
            _flash("mapping", f"Saved {changed:,} mapping(s); stored usage re-attributed.")
            st.session_state.pop("mapping_editor", None)
            st.rerun()


def _stripe_matching() -> None:
    matches = load(match_stripe)
    if matches.empty:
        st.caption("No Stripe customers imported yet.")
        return
    counts = matches["status"].value_counts()
    st.caption(" · ".join(f"{counts.get(s, 0):,} {s}" for s in ("confirmed", "auto", "proposed", "conflict", "unmatched")))
    tables.table(
        matches,
        key="stripe_matches",
        file_name="walleta-stripe-matches.csv",
        columns={
            "stripe_customer_id": tables.text("Stripe customer"),
            "stripe_name": tables.text("Name in Stripe"),
            "stripe_email": tables.text("Email in Stripe"),
            "customer_id": tables.text("Usage customer"),
            "method": tables.text("Matched by"),
            "confidence": tables.progress("Confidence"),
            "status": tables.text("Status"),
        },
    )
    left, right = st.columns([2, 1], vertical_alignment="bottom")
    threshold = left.slider("Also accept proposals with confidence at least", 0.6, 1.0, 0.9, 0.05, key="match_threshold")
    _show_flash("matching")
    if right.button("Confirm matches", key="match_confirm", type="primary", icon=":material/done_all:"):
        written = confirm_matches(get_store(), matches, accept_proposed_at=threshold)
        bump_data_version()
        _flash("matching", f"{written:,} match(es) confirmed; revenue re-pointed to the usage customers.")
        st.rerun()
    with st.form("manual_match", border=True):
        st.markdown("**Match by hand**")
        a, b = st.columns(2)
        stripe_id = a.selectbox("Stripe customer", matches["stripe_customer_id"].tolist(), key="manual_stripe")
        customer = b.text_input("Usage customer id", key="manual_customer")
        if st.form_submit_button("Map") and customer.strip():
            moved = map_customer(get_store(), stripe_id, customer.strip())
            bump_data_version()
            _flash("matching", f"Mapped {stripe_id} to {customer.strip()}; {moved:,} revenue entries re-pointed.")
            st.rerun()


def matching(ctx: PageContext, *, read_only: bool) -> None:
    """Confirm proposed customer matches and edit the mapping; show what is still unmatched."""
    if read_only:
        read_only_notice("matching")
        return
    st.markdown("##### OpenAI projects, API keys and users → customers")
    _openai_mapping()
    st.markdown("##### Stripe customers → usage customers")
    _stripe_matching()
    st.markdown("##### Still unmatched")
    revenue = load(unmatched_revenue)
    usage = load(unmatched_usage)
    left, right = st.columns(2)
    with left:
        st.caption(f"Revenue with no usage customer: {len(revenue):,}")
        if not revenue.empty:
            tables.table(
                revenue,
                key="unmatched_revenue",
                file_name="walleta-unmatched-revenue.csv",
                columns={
                    "customer_id": tables.text("Customer"),
                    "stripe_name": tables.text("Name in Stripe"),
                    "stripe_email": tables.text("Email in Stripe"),
                    "currency": tables.text("Currency"),
                    "amount_minor": tables.integer("Amount (minor units)", help="In the currency's smallest unit, e.g. cents"),
                    "entries": tables.integer("Entries"),
                    "first_period": tables.text("First period"),
                    "last_period": tables.text("Last period"),
                },
            )
    with right:
        st.caption(f"Usage customers with no revenue: {len(usage):,}")
        if not usage.empty:
            tables.table(
                usage,
                key="unmatched_usage",
                file_name="walleta-unmatched-usage.csv",
                columns={
                    "customer_id": tables.text("Customer"),
                    **tables.standard("requests", "cost_pico", "first_month", "last_month"),
                },
            )
