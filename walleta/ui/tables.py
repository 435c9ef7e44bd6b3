"""Tables: column presets (money, percent, counts) and a grid that always offers its CSV.

`table(frame, key=..., columns={...})` shows a core frame: the listed columns in that order with
their presets, pico-dollar columns displayed as dollars, and a "Download CSV" button whose file
is built from the exact core values (`walleta.export.to_csv_bytes`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd
import streamlit as st

from ..export import to_csv_bytes
from .fmt import display_copy

__all__ = [
    "Col",
    "money",
    "percent",
    "pct_points",
    "integer",
    "text",
    "number",
    "date",
    "flag",
    "progress",
    "standard",
    "MARGIN_GROUP",
    "table",
    "download_csv",
]


LAZY_EXPORT_ROWS = 5_000
MISSING = "—"  # shown in a grid cell with no value (a margin % without revenue), not "None"


@dataclass(frozen=True)
class Col:
    """How one column is shown: a Streamlit column config and whether it is exported."""

    config: Any
    export: bool = True


def money(label: str, *, precision: int = 2, help: str | None = None) -> Col:
    """Dollars: '$1,234.57' (precision 2) or '$0.0004' for per-request costs."""
    fmt = "dollar" if precision == 2 else f"$%.{precision}f"
    return Col(st.column_config.NumberColumn(label, format=fmt, help=help))


def percent(label: str, *, help: str | None = None) -> Col:
    """A fraction shown as a percentage (0.42 -> 42.00%)."""
    return Col(st.column_config.NumberColumn(label, format="percent", help=help))


def pct_points(label: str, *, help: str | None = None) -> Col:
    """A percentage already in points (67.8 -> 67.8%), as the analytics return margin %."""
    return Col(st.column_config.NumberColumn(label, format="%.1f%%", help=help))


def progress(label: str, *, help: str | None = None, max_value: float = 1.0) -> Col:
    """A share 0..1 as a bar with its percentage."""
    return Col(st.column_config.ProgressColumn(label, format="percent", min_value=0.0, max_value=max_value, help=help))


def integer(label: str, *, help: str | None = None) -> Col:
    """A count with thousands separators."""
    return Col(st.column_config.NumberColumn(label, format="localized", help=help))


def number(label: str, *, fmt: str = "%.2f", help: str | None = None) -> Col:
    """Any other number, with a printf format."""
    return Col(st.column_config.NumberColumn(label, format=fmt, help=help))


def text(label: str, *, help: str | None = None, pinned: bool = False, width: str | None = None) -> Col:
    """A text column (`width` 'small', 'medium' or 'large' for long sentences)."""
    return Col(st.column_config.TextColumn(label, help=help, pinned=pinned, width=width))


def flag(label: str, *, help: str | None = None) -> Col:
    """A yes/no column, shown as a read-only checkbox."""
    return Col(st.column_config.CheckboxColumn(label, help=help))


def date(label: str, *, help: str | None = None) -> Col:
    """A date or timestamp column."""
    return Col(st.column_config.DatetimeColumn(label, format="YYYY-MM-DD HH:mm", help=help))


# The core's usual column names, shown the same way on every page (labels and formats). A page
# names the columns it wants with `standard(...)` and adds its own for the rest.
_STANDARD: dict[str, Col] = {
    "customers": integer("Customers"),
    "paying_customers": integer("Paying"),
    "losing_customers": integer("Losing money"),
    "revenue_pico": money("Revenue"),
    "ai_cost_pico": money("AI cost"),
    "cost_pico": money("AI cost"),
    "margin_pico": money("Gross margin"),
    "margin_pct": pct_points("Margin %"),
    "cost_pct_of_revenue": pct_points("Cost % of revenue"),
    "requests": integer("Requests"),
    "total_tokens": integer("Tokens"),
    "tokens": integer("Tokens"),
    "unpriced_requests": integer("Unpriced requests"),
    "first_month": text("First month"),
    "last_month": text("Last month"),
}

# The columns every "margin per group" frame shares (plans, cohorts), in display order.
MARGIN_GROUP = ("customers", "paying_customers", "losing_customers", "revenue_pico", "ai_cost_pico", "margin_pico", "margin_pct")


def standard(*names: str) -> dict[str, Col]:
    """The shared presets for these core column names, in the order given.

    Input: names such as 'revenue_pico', 'margin_pct' (analytics' margin % in points),
    'requests', 'tokens'. Output: `{name: Col}` to spread into a `table(columns=...)` mapping.
    An unknown name raises KeyError, so a typo fails loudly instead of hiding a column.
    """
    return {name: _STANDARD[name] for name in names}


def download_csv(frame: pd.DataFrame, *, key: str, file_name: str, label: str = "Download CSV") -> None:
    """A download button for `frame` as a safe CSV (exact dollars, formulas neutralised)."""
    # Large tables are written only when the button is clicked (a callable runs on click).
    data = to_csv_bytes(frame) if len(frame) <= LAZY_EXPORT_ROWS else (lambda: to_csv_bytes(frame))
    st.download_button(
        label,
        data=data,
        file_name=file_name,
        mime="text/csv",
        key=f"dl_{key}",
        icon=":material/download:",
        on_click="ignore",
        type="tertiary",
    )


def table(
    frame: pd.DataFrame,
    *,
    key: str,
    columns: dict[str, Col] | None = None,
    file_name: str | None = None,
    height: int | str = "auto",
    on_select: str = "ignore",
    selection_mode: str = "single-row",
    empty: str | None = None,
) -> Any:
    """Show a core frame as a grid with presets, plus its CSV download. Returns the selection
    state when `on_select="rerun"`, else None.

    `columns` picks and orders the columns shown and exported (missing ones are skipped);
    without it every column is shown. Empty cells read "—". The CSV holds the exact core values.
    With `empty`, a frame without rows shows that sentence instead of an empty grid.
    """
    if empty is not None and frame.empty:
        st.caption(empty)
        return None
    shown = frame
    config: dict[str, Any] = {}
    if columns:
        present = [c for c in columns if c in frame.columns]
        shown = frame[present]
        config = {c: columns[c].config for c in present}
    grid = st.dataframe(
        display_copy(shown),
        hide_index=True,
        column_config=config,
        key=key,
        height=height,
        on_select=on_select,  # type: ignore[arg-type]
        selection_mode=selection_mode,  # type: ignore[arg-type]
        placeholder=MISSING,
    )
    exported = shown
    if columns:
        exported = shown[[c for c in shown.columns if columns[c].export]]
    download_csv(exported, key=key, file_name=file_name or f"walleta-{key}.csv")
    return grid if on_select != "ignore" else None
