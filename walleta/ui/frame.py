"""The frame every page shares: page config, access gate, sidebar (menu, data source, period,
filters), title, and an error boundary that shows a clear message instead of a traceback.

    with ui.page("Customers", ":material/groups:", filters=("plan",)) as ctx:
        ...  # ctx.store, ctx.period, ctx.plans, ctx.coverage

The app uses Streamlit's `pages/` folder (see docs/ARCHITECTURE.md): every page file runs this
frame itself, so a deep link on a freshly started server gets the same sidebar and gate.
Cross-page choices (period, plan filter) live in plain `st.session_state` keys, copied into
page-local widget keys before each widget is drawn ("dummy key" pattern): widget state is
per page in a `pages/` app and would otherwise reset when the user changes page.
"""

from __future__ import annotations

import hmac
import logging
import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import streamlit as st
from streamlit.runtime.scriptrunner_utils.exceptions import RerunException, StopException

from ..data_status import Coverage, coverage
from ..data_status import plans as plan_names
from ..errors import WalletaError
from ..periods import PRESETS, Period, clamp_period, month_range, previous_period, resolve_preset
from ..store import Store
from .cache import load
from .sources import MODES, SourceInfo, current_mode, get_store, secret, set_mode, source_info

__all__ = [
    "PAGES",
    "PageContext",
    "page",
    "guard",
    "empty_state",
    "go_to_data",
    "DEBUG_ENV",
    "PASSWORD_SECRET",
    "ERROR_MESSAGE",
]

log = logging.getLogger("walleta.app")

DEBUG_ENV = "WALLETA_DEBUG"
PASSWORD_SECRET = "WALLETA_APP_PASSWORD"
ERROR_MESSAGE = "Something went wrong while drawing this page."
AUTH_KEY = "walleta_authenticated"
PERIOD_PRESET_KEY = "walleta_period_preset"
PERIOD_RANGE_KEY = "walleta_period_range"
PLANS_KEY = "walleta_plans"

# (script, label, icon) in menu order; URLs come from the file names (/Customers, ...).
PAGES: list[tuple[str, str, str]] = [
    ("app.py", "Overview", ":material/space_dashboard:"),
    ("pages/1_Customers.py", "Customers", ":material/groups:"),
    ("pages/2_Features_and_models.py", "Features & models", ":material/category:"),
    ("pages/3_Trends.py", "Trends", ":material/trending_up:"),
    ("pages/4_Pricing_simulator.py", "Pricing simulator", ":material/calculate:"),
    ("pages/5_Reconciliation.py", "Reconciliation", ":material/balance:"),
    ("pages/6_Data.py", "Data", ":material/database:"),
    ("pages/7_Prices.py", "Prices", ":material/sell:"),
]


@dataclass
class PageContext:
    """What a page needs from the frame."""

    store: Store
    source: SourceInfo
    coverage: Coverage
    period: Period | None
    previous: Period | None
    plans: tuple[str, ...] = ()
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def mode(self) -> str:
        """demo, database or session."""
        return self.source.mode

    @property
    def window(self) -> Any:
        """The chosen period as the analytics' `Period` (whole months)."""
        from ..analytics.period import Period as AnalyticsPeriod

        assert self.period is not None
        return AnalyticsPeriod.months(self.period.first_month, self.period.last_month)

    def csv_name(self, *parts: str) -> str:
        """A download file name stamped with the chosen period, so files from two periods never
        share a name: `csv_name("features")` -> 'walleta-features-2026-09-2026-11.csv' (no stamp
        when there is no period yet)."""
        stamp = (self.period.first_month, self.period.last_month) if self.period else ()
        return "-".join(["walleta", *parts, *stamp]) + ".csv"

    @property
    def previous_window(self) -> Any:
        """The period before, as the analytics' `Period`."""
        from ..analytics.period import Period as AnalyticsPeriod

        assert self.previous is not None
        return AnalyticsPeriod.months(self.previous.first_month, self.previous.last_month)


# -- error boundary --------------------------------------------------------------------------


def _report(exc: Exception) -> None:
    """Show an error as a message: a Walleta error's own text, a generic one for anything else
    (logged with its traceback on the server). WALLETA_DEBUG=1 re-raises instead."""
    if os.environ.get(DEBUG_ENV):
        raise exc
    if isinstance(exc, WalletaError):
        message = str(exc)
        st.error(message[:1].upper() + message[1:], icon=":material/error:")
        return
    log.error("page failed", exc_info=exc)
    st.error(
        f"{ERROR_MESSAGE} The details are in the server log. Try another period or page; "
        "if it keeps happening, re-import the data on the Data page.",
        icon=":material/error:",
    )


@contextmanager
def guard() -> Iterator[None]:
    """Run a block; show a clear message instead of a traceback if it fails (see `_report`)."""
    try:
        yield
    except (StopException, RerunException):
        raise
    except Exception as exc:  # noqa: BLE001 - the boundary exists to catch everything
        _report(exc)


# -- access ----------------------------------------------------------------------------------


def _auth_configured() -> bool:
    try:
        return "auth" in st.secrets
    except FileNotFoundError:
        return False


def _gate() -> None:
    """Stop the page until the visitor has logged in (st.login) or given the app password."""
    if _auth_configured():
        # `get`, not the attribute: st.user carries no is_logged_in at all before a login in some
        # sessions (AppTest, a fresh session), and an AttributeError would hide the gate.
        if not st.user.get("is_logged_in", False):
            st.title("Walleta")
            st.write("This Walleta workspace is private.")
            st.button("Log in", on_click=st.login, type="primary", icon=":material/login:")
            st.stop()
        return
    password = secret(PASSWORD_SECRET)
    if not password or st.session_state.get(AUTH_KEY):
        return
    st.title("Walleta")
    with st.form("walleta_login"):
        entered = st.text_input("App password", type="password", key="walleta_password_input")
        submitted = st.form_submit_button("Unlock", type="primary")
    if submitted:
        if hmac.compare_digest(entered.encode("utf-8"), password.encode("utf-8")):
            st.session_state[AUTH_KEY] = True
            st.session_state.pop("walleta_password_input", None)
            st.rerun()
        st.error("That password is not right.")
    st.stop()


# -- sidebar ---------------------------------------------------------------------------------


def _sync(plain_key: str, widget_key: str) -> Callable[[], None]:
    def copy() -> None:
        st.session_state[plain_key] = st.session_state[widget_key]

    return copy


def _nav() -> None:
    for script, label, icon in PAGES:
        st.page_link(script, label=label, icon=icon)


def _period_selector(cov: Coverage) -> tuple[Period | None, Period | None]:
    span = cov.months
    if span is None:
        return None, None
    data_first, data_last = span
    preset = st.session_state.get(PERIOD_PRESET_KEY, "last_3")
    if preset not in PRESETS:
        preset = "last_3"
    st.session_state["_w_period_preset"] = preset
    st.selectbox(
        "Period",
        list(PRESETS),
        format_func=lambda k: PRESETS[k][0],
        key="_w_period_preset",
        on_change=_sync(PERIOD_PRESET_KEY, "_w_period_preset"),
    )
    if preset == "custom":
        months = month_range(data_first, data_last)
        saved = st.session_state.get(PERIOD_RANGE_KEY) or (months[max(0, len(months) - 3)], months[-1])
        chosen = clamp_period(saved[0], saved[1], data_first, data_last)
        st.session_state["_w_period_range"] = (chosen.first_month, chosen.last_month)
        if len(months) > 1:
            st.select_slider(
                "Months",
                options=months,
                key="_w_period_range",
                on_change=_sync(PERIOD_RANGE_KEY, "_w_period_range"),
            )
        period = chosen
    else:
        period = resolve_preset(preset, data_first, data_last)
    st.caption(f"{period.label} · data from {Period(data_first, data_last).label}")
    return period, previous_period(period)


def _plan_filter() -> tuple[str, ...]:
    options = load(plan_names)
    if not options:
        return ()
    saved = [p for p in st.session_state.get(PLANS_KEY, []) if p in options]
    st.session_state["_w_plans"] = saved
    st.multiselect(
        "Plans",
        options,
        key="_w_plans",
        placeholder="All plans",
        on_change=_sync(PLANS_KEY, "_w_plans"),
    )
    return tuple(saved)


def _sidebar(filters: tuple[str, ...]) -> PageContext:
    store = get_store()
    info = source_info(store)
    cov = load(coverage)
    with st.sidebar:
        st.markdown("### :material/account_balance_wallet: Walleta")
        _nav()
        st.divider()
        icon = {"demo": ":material/science:", "session": ":material/upload_file:"}.get(info.mode, ":material/database:")
        st.markdown(f"**{icon} {info.label}**")
        st.caption(info.detail)
        period, previous = _period_selector(cov)
        plans = _plan_filter() if "plan" in filters else ()
    return PageContext(store=store, source=info, coverage=cov, period=period, previous=previous, plans=plans)


# -- page ------------------------------------------------------------------------------------


@contextmanager
def page(
    title: str,
    icon: str,
    *,
    caption: str | None = None,
    filters: tuple[str, ...] = (),
    needs_usage: bool = True,
) -> Iterator[PageContext]:
    """Draw the frame, then run the page body inside the error boundary.

    With `needs_usage`, a store without usage shows the standard empty state and stops.
    """
    st.set_page_config(page_title=f"{title} · Walleta", page_icon=icon, layout="wide", initial_sidebar_state="expanded")
    _gate()
    try:
        ctx = _sidebar(filters)
    except (StopException, RerunException):
        raise
    except Exception as exc:  # noqa: BLE001 - e.g. the database cannot be opened
        st.title(title)
        _report(exc)
        _switch_buttons(exclude=current_mode())
        st.stop()
    st.title(title)
    if caption:
        st.caption(caption)
    if needs_usage and not ctx.coverage.has_usage:
        empty_state(ctx)
        st.stop()
    with guard():
        yield ctx


def _switch_buttons(exclude: str) -> None:
    """Buttons to switch to the other data sources (when the current one cannot be read)."""
    columns = st.columns(3)
    for column, mode in zip(columns, [m for m in MODES if m != exclude]):
        if column.button(f"Use {MODES[mode].lower()}", key=f"switch_to_{mode}"):
            set_mode(mode)
            st.rerun()


def go_to_data(label: str = "Open the Data page", *, key: str | None = None) -> None:
    """A link to the Data page."""
    st.page_link("pages/6_Data.py", label=label, icon=":material/database:")


def empty_state(ctx: PageContext | None = None, message: str | None = None) -> None:
    """Tell the user what to do next when there is nothing to show."""
    mode = ctx.mode if ctx else current_mode()
    if message is None:
        if mode == "session":
            message = "Nothing uploaded yet. Upload a usage CSV (and a revenue CSV for margins) on the Data page."
        elif mode == "database":
            message = (
                "This database holds no usage yet. Import a usage CSV, connect the OpenAI API on the Data page, "
                "or switch to the demo data to look around."
            )
        else:
            message = "The demo data set is empty. Rebuild it on the Data page."
    with st.container(border=True):
        st.markdown(f":material/info: {message}")
        go_to_data()
    st.caption(f"Data source: {MODES.get(mode, mode)}")
