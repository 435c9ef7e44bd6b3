"""The Streamlit app under AppTest: every page on the demo data, on uploaded CSVs only and on an
empty database; the main widgets driven; the numbers shown compared with the core's results.

The demo data set is built once per test session into a temporary SQLite file, and
WALLETA_DATABASE_URL points at it. WALLETA_DEBUG=1 lets page errors through the app's error
boundary so they fail the test with their traceback.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from walleta.catalog import PRICE_COLUMNS, load_catalog
from walleta.demo import build_demo
from walleta.fx import load_fx
from walleta.headline import headline
from walleta.money import format_usd
from walleta.periods import Period, previous_period
from walleta.store import open_store

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")
PAGES = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "pages").glob("*.py"))
TIMEOUT = 60


@pytest.fixture(scope="session")
def demo_url(tmp_path_factory) -> str:
    """A demo database built once for the whole test session."""
    url = f"sqlite:///{tmp_path_factory.mktemp('demo') / 'demo.db'}"
    store = open_store(url)
    build_demo(store, load_catalog())
    store.close()
    return url


@pytest.fixture(autouse=True)
def app_env(monkeypatch, tmp_path, demo_url):
    """Fresh Streamlit caches, debug errors, overrides in a temp file; the demo as the demo."""
    st.cache_data.clear()
    st.cache_resource.clear()
    monkeypatch.setenv("WALLETA_DEBUG", "1")
    monkeypatch.setenv("WALLETA_DEMO_DATABASE_URL", demo_url)
    overrides = tmp_path / "prices.override.csv"
    overrides.write_text(",".join(PRICE_COLUMNS) + "\n")
    monkeypatch.setenv("WALLETA_PRICE_OVERRIDES", str(overrides))
    monkeypatch.delenv("WALLETA_APP_PASSWORD", raising=False)
    yield
    st.cache_data.clear()
    st.cache_resource.clear()


@pytest.fixture
def on_demo(monkeypatch, demo_url) -> str:
    monkeypatch.setenv("WALLETA_DATABASE_URL", demo_url)
    return demo_url


@pytest.fixture
def on_empty(monkeypatch, tmp_path) -> str:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    monkeypatch.setenv("WALLETA_DATABASE_URL", url)
    return url


def start(session: dict | None = None) -> AppTest:
    """Run the Overview once (as a visitor would land), with optional session state seeded."""
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    for key, value in (session or {}).items():
        at.session_state[key] = value
    at.run()
    assert_clean(at)
    return at


def open_page(at: AppTest, path: str) -> AppTest:
    at.switch_page(path).run()
    assert_clean(at)
    return at


def assert_clean(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not [e.value for e in at.error if "Something went wrong" in e.value]


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


# -- every page, three kinds of data ------------------------------------------------------------


@pytest.mark.parametrize("path", PAGES)
def test_every_page_renders_on_the_demo(on_demo, path):
    at = open_page(start(), path)
    assert at.title and at.title[0].value


@pytest.mark.parametrize("path", PAGES)
def test_every_page_renders_on_an_empty_database(on_empty, path):
    at = open_page(start(), path)
    assert at.title


def test_overview_on_an_empty_database_says_what_to_do(on_empty):
    at = start()
    text = " ".join(m.value for m in at.markdown)
    assert "no usage yet" in text.lower()
    assert not at.metric


# -- numbers shown against the core -------------------------------------------------------------


def test_overview_metrics_match_the_core(on_demo):
    at = start()
    store = open_store(on_demo)
    cov_last = store.scalar("SELECT MAX(month) FROM rollup_customer_month_model")
    cov_first = store.scalar("SELECT MIN(month) FROM rollup_customer_month_model")
    period = Period(max(cov_first, _shift(cov_last, -2)), cov_last)
    expected = headline(store, load_fx(), period.first_month, period.last_month)
    shown = metrics(at)
    assert shown["Revenue"] == format_usd(expected.revenue_pico)
    assert shown["AI cost"] == format_usd(expected.cost_pico)
    assert shown["Gross margin"] == format_usd(expected.margin_pico)


def test_period_selector_changes_the_numbers_and_persists_across_pages(on_demo):
    at = start()
    at.sidebar.selectbox(key="_w_period_preset").select("all").run()
    assert_clean(at)
    store = open_store(on_demo)
    months = store.query("SELECT MIN(month) AS a, MAX(month) AS b FROM rollup_customer_month_model").iloc[0]
    expected = headline(store, load_fx(), months["a"], months["b"])
    assert metrics(at)["AI cost"] == format_usd(expected.cost_pico)
    open_page(at, "pages/7_Prices.py")
    assert at.sidebar.selectbox(key="_w_period_preset").value == "all"
    open_page(at, "app.py")
    assert metrics(at)["AI cost"] == format_usd(expected.cost_pico)


def _shift(month: str, delta: int) -> str:
    from walleta.periods import shift_month

    return shift_month(month, delta)


# -- access gate ----------------------------------------------------------------------------------


def test_password_gate_blocks_until_the_right_password(on_demo, monkeypatch):
    monkeypatch.setenv("WALLETA_APP_PASSWORD", "open sesame")
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    assert not at.metric
    at.text_input(key="walleta_password_input").input("wrong")
    at.button[0].click().run()
    assert not at.metric and "not right" in at.error[0].value
    at.text_input(key="walleta_password_input").input("open sesame")
    at.button[0].click().run()
    assert_clean(at)
    assert "Revenue" in metrics(at)


def test_page_errors_show_a_message_not_a_traceback(on_empty, monkeypatch):
    monkeypatch.delenv("WALLETA_DEBUG")
    monkeypatch.setenv("WALLETA_DATABASE_URL", "postgresql://nobody:secret-password@127.0.0.1:1/none")
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    assert not at.exception
    message = " ".join(e.value for e in at.error)
    assert "could not open the database" in message.lower()
    assert "secret-password" not in message
    at.button(key="switch_to_demo").click().run()
    assert_clean(at)
    assert "Revenue" in metrics(at)
