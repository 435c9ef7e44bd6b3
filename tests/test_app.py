"""The Streamlit app under AppTest: every page on the demo data, on uploaded CSVs only and on an
empty database; the main widgets driven; the numbers shown compared with the core's results.

The demo data set is built once per test session into a temporary SQLite file, and
WALLETA_DATABASE_URL points at it. WALLETA_DEBUG=1 lets page errors through the app's error
boundary so they fail the test with their traceback.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from walleta.analytics.breakdowns import Allocation, feature_breakdown
from walleta.analytics.margins import customer_margins
from walleta.analytics.period import Period as AnalyticsPeriod
from walleta.analytics.trends import trend
from walleta.catalog import PRICE_COLUMNS, load_catalog
from walleta.customer_detail import customer_features
from walleta.demo import build_demo
from walleta.fx import load_fx
from walleta.headline import headline
from walleta.money import format_usd
from walleta.periods import shift_month
from walleta.plan_builder import PlanRow, build_scenario
from walleta.simulator import simulate
from walleta.simulator.loader import load_usage
from walleta.simulator.plans import load_scenario, scenario_from_dict
from walleta.simulator.solver import solve
from walleta.store import open_store

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")
PAGES = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "pages").glob("*.py"))
SAMPLES = ROOT / "data" / "samples"
TIMEOUT = 60


# -- fixtures ---------------------------------------------------------------------------------


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


@pytest.fixture
def no_database(monkeypatch, tmp_path) -> Path:
    """A database URL whose file must never be created (uploaded CSVs only)."""
    path = tmp_path / "never.db"
    monkeypatch.setenv("WALLETA_DATABASE_URL", f"sqlite:///{path}")
    return path


# -- helpers ----------------------------------------------------------------------------------


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


def frame_with(at: AppTest, *columns: str) -> pd.DataFrame:
    """The first dataframe shown with all these columns."""
    for element in at.dataframe:
        if set(columns) <= set(element.value.columns):
            return element.value
    raise AssertionError(f"no dataframe with columns {columns}: {[list(d.value.columns) for d in at.dataframe]}")


def dollars(pico: int) -> float:
    return float(Decimal(int(pico)) / 10**12)


def demo_window(url: str, months: int = 3) -> tuple[str, str]:
    store = open_store(url)
    first, last = store.scalar("SELECT MIN(month) FROM rollup_customer_month_model"), store.scalar("SELECT MAX(month) FROM rollup_customer_month_model")
    return max(first, shift_month(last, 1 - months)), last


def upload(at: AppTest, *names: str) -> AppTest:
    """Upload sample CSVs on the Data page and import them."""
    files = [(name, (SAMPLES / name).read_bytes(), "text/csv") for name in names]
    at.file_uploader(key="data_uploads").set_value(files).run()
    assert_clean(at)
    at.button(key="data_import").click().run()
    assert_clean(at)
    return at


# -- every page, three kinds of data ----------------------------------------------------------


def test_every_page_renders_on_the_demo(on_demo):
    at = start()
    assert "Revenue" in metrics(at)
    for path in PAGES:
        open_page(at, path)
        assert at.title and at.title[0].value, path
        no_bill = "no openai bill" in " ".join(m.value for m in at.markdown).lower()
        assert at.dataframe or at.metric or (path == "pages/5_Reconciliation.py" and no_bill), f"{path} shows no numbers"


def test_every_page_renders_on_an_empty_database_with_an_empty_state(on_empty):
    at = start()
    assert "no usage yet" in " ".join(m.value for m in at.markdown).lower()
    assert not at.metric
    for path in PAGES:
        open_page(at, path)
        assert at.title, path
        if path not in ("pages/6_Data.py", "pages/7_Prices.py"):
            text = " ".join(m.value for m in at.markdown).lower()
            assert "data page" in text, f"{path} does not say what to do next"


def test_every_page_on_uploaded_csvs_only_without_any_database_file(no_database):
    at = start({"walleta_source": "session"})
    open_page(at, "pages/6_Data.py")
    upload(at, "usage.csv", "revenue.csv", "customers.csv")
    assert metrics(at)["Usage rows"] != "0"
    for path in ["app.py", *PAGES]:
        open_page(at, path)
        assert at.title, path
    open_page(at, "app.py")
    assert "Revenue" in metrics(at)
    assert not no_database.exists()


def test_overview_and_customers_on_postgresql(pg_url, monkeypatch):
    store = open_store(pg_url)
    build_demo(store, load_catalog())
    monkeypatch.setenv("WALLETA_DATABASE_URL", pg_url)
    at = start()
    first, last = demo_window(pg_url)
    expected = headline(store, load_fx(), first, last)
    assert metrics(at)["AI cost"] == format_usd(expected.cost_pico)
    assert "PostgreSQL" in " ".join(c.value for c in at.sidebar.caption)
    open_page(at, "pages/1_Customers.py")
    margins = customer_margins(store, AnalyticsPeriod.months(first, last), load_fx())
    assert len(frame_with(at, "customer_id", "revenue_pico")) == len(margins)
    store.close()


# -- numbers shown against the core -----------------------------------------------------------


def test_overview_metrics_match_the_core(on_demo):
    at = start()
    first, last = demo_window(on_demo)
    expected = headline(open_store(on_demo), load_fx(), first, last)
    shown = metrics(at)
    assert shown["Revenue"] == format_usd(expected.revenue_pico)
    assert shown["AI cost"] == format_usd(expected.cost_pico)
    assert shown["Gross margin"] == format_usd(expected.margin_pico)
    margins = customer_margins(open_store(on_demo), AnalyticsPeriod.months(first, last), load_fx(), with_history=False)
    assert shown["Losing money"] == f"{int((margins['tier'] == 'losing').sum()):,}"


def test_period_selector_changes_the_numbers_and_persists_across_pages(on_demo):
    at = start()
    at.sidebar.selectbox(key="_w_period_preset").select("all").run()
    assert_clean(at)
    first, last = demo_window(on_demo, months=120)
    expected = headline(open_store(on_demo), load_fx(), first, last)
    assert metrics(at)["AI cost"] == format_usd(expected.cost_pico)
    open_page(at, "pages/7_Prices.py")
    assert at.sidebar.selectbox(key="_w_period_preset").value == "all"
    open_page(at, "app.py")
    assert metrics(at)["AI cost"] == format_usd(expected.cost_pico)


def test_customers_table_matches_the_core_and_filters_by_plan_and_tier(on_demo):
    at = open_page(start(), "pages/1_Customers.py")
    first, last = demo_window(on_demo)
    margins = customer_margins(open_store(on_demo), AnalyticsPeriod.months(first, last), load_fx())
    table = frame_with(at, "customer_id", "revenue_pico", "ai_cost_pico")
    assert len(table) == len(margins)
    by_id = table.set_index("customer_id")
    for row in margins.head(5).itertuples():
        assert by_id.loc[row.customer_id, "ai_cost_pico"] == pytest.approx(dollars(row.ai_cost_pico), abs=1e-9)
        assert by_id.loc[row.customer_id, "revenue_pico"] == pytest.approx(dollars(row.revenue_pico), abs=1e-9)
    at.sidebar.multiselect(key="_w_plans").select("Pro").run()
    assert_clean(at)
    table = frame_with(at, "customer_id", "plan")
    assert set(table["plan"]) == {"Pro"} and len(table) == int((margins["plan"] == "Pro").sum())
    at.pills(key="customers_tiers").set_value(["losing"]).run()
    table = frame_with(at, "customer_id", "tier_label")
    assert set(table["tier_label"]) == {"Losing money"}
    assert len(table) == int(((margins["plan"] == "Pro") & (margins["tier"] == "losing")).sum())


def test_customer_drill_down_shows_that_customers_numbers(on_demo):
    at = open_page(start(), "pages/1_Customers.py")
    first, last = demo_window(on_demo)
    store = open_store(on_demo)
    margins = customer_margins(store, AnalyticsPeriod.months(first, last), load_fx()).set_index("customer_id")
    customer = margins.index[-1]  # the best margin: not the default pick
    at.selectbox(key="customers_pick").select(customer).run()
    assert_clean(at)
    shown = metrics(at)
    assert shown["AI cost"] == format_usd(int(margins.loc[customer, "ai_cost_pico"]))
    assert shown["Revenue"] == format_usd(int(margins.loc[customer, "revenue_pico"]))
    features = customer_features(store, customer, first, last)
    table = frame_with(at, "feature", "cost_share")
    assert list(table["feature"]) == list(features["feature"])
    assert table["cost_pico"].tolist() == pytest.approx([dollars(v) for v in features["cost_pico"]], abs=1e-9)


def test_search_narrows_the_customer_table(on_demo):
    at = open_page(start(), "pages/1_Customers.py")
    table = frame_with(at, "customer_id")
    target = table["customer_id"].iloc[3]
    at.text_input(key="customers_search").input(target).run()
    assert frame_with(at, "customer_id")["customer_id"].tolist() == [target]


def test_feature_allocation_rule_changes_the_allocated_revenue(on_demo):
    at = open_page(start(), "pages/2_Features_and_models.py")
    first, last = demo_window(on_demo)
    store = open_store(on_demo)
    period = AnalyticsPeriod.months(first, last)
    table = frame_with(at, "feature", "allocated_revenue_pico")
    expected = feature_breakdown(store, period, load_fx())
    assert table["allocated_revenue_pico"].tolist() == pytest.approx([dollars(v) for v in expected["allocated_revenue_pico"]], abs=1e-9)
    at.radio(key="features_rule").set_value("request_share").run()
    assert_clean(at)
    table = frame_with(at, "feature", "allocated_revenue_pico")
    expected = feature_breakdown(store, period, load_fx(), Allocation("request_share"))
    assert table.set_index("feature")["allocated_revenue_pico"].to_dict() == pytest.approx(
        {f: dollars(v) for f, v in zip(expected["feature"], expected["allocated_revenue_pico"])}, abs=1e-9
    )


def test_trends_by_month_and_model_match_the_core(on_demo):
    at = open_page(start(), "pages/3_Trends.py")
    at.segmented_control(key="trends_grain").set_value("month").run()
    at.selectbox(key="trends_by").select("model").run()
    assert_clean(at)
    first, last = demo_window(on_demo)
    expected = trend(open_store(on_demo), AnalyticsPeriod.months(first, last), grain="month", by="model", top=8)
    table = frame_with(at, "bucket", "model", "ai_cost_pico")
    assert len(table) == len(expected)
    assert table["ai_cost_pico"].sum() == pytest.approx(dollars(sum(int(v) for v in expected["ai_cost_pico"])), rel=1e-12)


def test_trends_tabs_show_forecast_cohorts_and_concentration(on_demo):
    at = open_page(start(), "pages/3_Trends.py")
    shown = metrics(at)
    assert {"AI cost so far", "AI cost at month end", "Top 1% of customers", "Gini"} <= set(shown)
    assert shown["Top 10%"].endswith("%")


def test_reconciliation_shows_the_core_summary_and_every_breakdown(on_demo):
    from walleta.analytics.reconciliation import reconcile, reconciliation_summary

    store = open_store(on_demo)
    if not store.scalar("SELECT COUNT(*) FROM billed_costs"):
        pytest.skip("this demo data set has no billed costs")
    at = open_page(start(), "pages/5_Reconciliation.py")
    first, last = demo_window(on_demo)
    period = AnalyticsPeriod.months(first, last)
    summary = reconciliation_summary(store, period, load_catalog()).set_index("component")["amount_pico"]
    shown = metrics(at)
    assert shown["Billed by OpenAI"] == format_usd(int(summary["billed (OpenAI Costs API)"]))
    assert shown["Unattributed remainder"] == format_usd(int(summary["unattributed remainder"]))
    items = frame_with(at, "line_item", "billed_pico")
    assert len(items) == len(reconcile(store, period, load_catalog(), by=("line_item",)))
    at.segmented_control(key="reconcile_view").set_value("day").run()
    assert_clean(at)
    days = frame_with(at, "day", "estimated_pico")
    assert len(days) == len(reconcile(store, period, load_catalog(), by=("day",)))


def test_simulator_examples_compare_with_today_as_the_core_does(on_demo):
    at = open_page(start(), "pages/4_Pricing_simulator.py")
    at.multiselect(key="sim_examples").select("Pay as you go, cost plus 60%").run()
    at.button(key="sim_add_examples").click().run()
    assert_clean(at)
    first, last = demo_window(on_demo)
    fx = load_fx()
    data = load_usage(open_store(on_demo), start=first, end=last, fx=fx)
    result = simulate(load_scenario(ROOT / "data" / "plans" / "payg-markup.yaml"), data, fx)
    total = result.totals[result.totals["plan"] == "TOTAL"].iloc[0]
    table = frame_with(at, "design", "revenue_pico").set_index("design")
    assert table.loc["Pay as you go, cost plus 60%", "revenue_pico"] == pytest.approx(dollars(total["revenue_pico"]), abs=1e-9)
    assert table.loc["Today (actual revenue)", "revenue_pico"] == pytest.approx(dollars(total["baseline_revenue_pico"]), abs=1e-9)


def test_simulator_builder_form_and_solver(on_demo):
    at = open_page(start(), "pages/4_Pricing_simulator.py")
    at.selectbox(key="sim_mechanism").select("flat").run()
    at.text_input(key="sim_name_flat").input("Raise Pro")
    at.button(key="FormSubmitter:sim_builder-Add this design").click().run()
    assert_clean(at)
    first, last = demo_window(on_demo)
    fx = load_fx()
    rows = [PlanRow("Free", base_fee="0"), PlanRow("Starter", base_fee="29"), PlanRow("Pro", base_fee="99"), PlanRow("Business", base_fee="499")]
    scenario = scenario_from_dict(build_scenario("Raise Pro", "flat", rows))
    data = load_usage(open_store(on_demo), start=first, end=last, fx=fx)
    total = simulate(scenario, data, fx).totals.set_index("plan").loc["TOTAL"]
    table = frame_with(at, "design", "margin_pico").set_index("design")
    assert table.loc["Raise Pro", "margin_pico"] == pytest.approx(dollars(total["margin_pico"]), abs=1e-9)
    # Solve the Pro fee for a 90% margin.
    at.selectbox(key="sim_solver_plan").select("Pro").run()
    at.slider(key="sim_solver_target").set_value(90).run()
    at.button(key="sim_solve").click().run()
    assert_clean(at)
    solution = solve(scenario, data, "Pro", "base_fee", target=Decimal("0.9"), fx=fx).table.set_index("criterion")
    assert metrics(at)["Book"] == f"${solution.loc['book', 'value']:,.2f}"


def test_simulator_rejects_a_bad_plan_file_with_its_field(on_demo):
    at = open_page(start(), "pages/4_Pricing_simulator.py")
    at.file_uploader(key="sim_plan_file").set_value(("bad.yaml", b"name: x\nplans:\n  - name: A\n    base_fee: abc\n", "application/yaml")).run()
    at.button(key="sim_add_file").click().run()
    assert_clean(at)
    assert any("base_fee" in e.value for e in at.error)


@pytest.mark.parametrize("content, words", [
    (b"\xff\xfe\x00binary", "binary.yaml: not UTF-8 text"),
    (b"name: x\nplans:\n  - name: A\n    base_fee: '1e999999999'\n", "plans[0] (A).base_fee: too large: at most 10^12"),
])
def test_simulator_rejects_a_hostile_plan_file_with_a_message(on_demo, content, words):
    at = open_page(start(), "pages/4_Pricing_simulator.py")
    at.file_uploader(key="sim_plan_file").set_value(("binary.yaml", content, "application/yaml")).run()
    at.button(key="sim_add_file").click().run()
    assert_clean(at)
    assert any(words in e.value for e in at.error), [e.value for e in at.error]


# -- data and prices ----------------------------------------------------------------------------


def test_upload_shows_the_validation_report_and_the_rejected_rows(no_database, tmp_path):
    at = start({"walleta_source": "session"})
    open_page(at, "pages/6_Data.py")
    bad = (SAMPLES / "usage.csv").read_text().splitlines()
    header, first = bad[0], bad[1].split(",")
    first[4] = "lots"  # input_tokens
    content = "\n".join([header, ",".join(first), *bad[2:]]) + "\n"
    at.file_uploader(key="data_uploads").set_value(("usage-bad.csv", content.encode(), "text/csv")).run()
    at.button(key="data_import").click().run()
    assert_clean(at)
    shown = metrics(at)
    assert shown["Rejected"] == "1" and shown["Imported"] == str(len(bad) - 2)
    errors = frame_with(at, "row", "column", "reason")
    assert errors.iloc[0]["row"] == 2 and errors.iloc[0]["column"] == "input_tokens"
    assert any(b.label.startswith("Download the rejected rows") for b in at.get("download_button"))
    assert not no_database.exists()


def test_upload_over_the_row_limit_is_refused_with_a_clear_message(no_database, monkeypatch):
    from walleta.ui import data_panels

    monkeypatch.setattr(data_panels, "UPLOAD_MAX_ROWS", 3)
    at = start({"walleta_source": "session"})
    open_page(at, "pages/6_Data.py")
    at.file_uploader(key="data_uploads").set_value(("big.csv", (SAMPLES / "usage.csv").read_bytes(), "text/csv")).run()
    at.button(key="data_import").click().run()
    assert_clean(at)
    assert any("big.csv: the file has 8 rows, over the limit of 3" in e.value for e in at.error)
    assert metrics(at).get("Imported") is None  # refused as a whole: no report, nothing imported


def test_switching_source_on_the_data_page(on_demo):
    at = open_page(start(), "pages/6_Data.py")
    at.radio(key="_w_source").set_value("session").run()
    assert_clean(at)
    assert metrics(at)["Usage rows"] == "0"
    at.radio(key="_w_source").set_value("database").run()
    assert metrics(at)["Usage rows"] != "0"


def test_price_override_saved_from_the_editor_prices_an_unknown_model(no_database, tmp_path):
    at = start({"walleta_source": "session"})
    open_page(at, "pages/6_Data.py")
    lines = (SAMPLES / "usage.csv").read_text().splitlines()
    header = lines[0].split(",")
    row = dict(zip(header, lines[1].split(",")))
    row["model"], row["request_id"] = "acme-model-x", "req_mystery"
    content = "\n".join([lines[0], ",".join(row.get(h, "") for h in header)]) + "\n"
    at.file_uploader(key="data_uploads").set_value(("mystery.csv", content.encode(), "text/csv")).run()
    at.button(key="data_import").click().run()
    open_page(at, "pages/7_Prices.py")
    unpriced = frame_with(at, "model", "status")
    assert unpriced["model"].tolist() == ["acme-model-x"] and unpriced["status"].tolist() == ["needs a price"]
    at.session_state["overrides_editor"] = {
        "edited_rows": {},
        "added_rows": [{"model": "acme-model-x", "unit": "token", "input_per_1m": "2", "output_per_1m": "8", "provider": "openai", "source": "test"}],
        "deleted_rows": [],
    }
    at.run()
    at.button(key="save_overrides").click().run()
    assert_clean(at)
    saved = pd.read_csv(Path(__import__("os").environ["WALLETA_PRICE_OVERRIDES"]), dtype=str)
    assert saved["model"].tolist() == ["acme-model-x"] and saved["input_per_1m"].tolist() == ["2"]
    at.button(key="reprice_after_save").click().run()
    assert_clean(at)
    assert any("Every model in your usage has a price" in s.value for s in at.success)


def test_openai_import_from_the_data_page_against_a_fake_admin_api(no_database, monkeypatch):
    from tests.fakes.openai_admin import FakeOpenAIAdmin

    with FakeOpenAIAdmin() as fake:
        fake.state.use_examples()
        monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
        at = start({"walleta_source": "session"})
        open_page(at, "pages/6_Data.py")
        at.text_input(key="openai_admin_key").input("sk-admin-TEST-never-show-this")
        at.date_input(key="openai_since").set_value(date(2024, 11, 1))
        at.date_input(key="openai_until").set_value(date(2024, 11, 2)).run()
        at.button(key="openai_go").click().run()
        assert_clean(at)
        requests = fake.state.calls("completions")
    assert requests and requests[0]["authorization"].endswith("sk-admin-TEST-never-show-this")
    shown = metrics(at)
    assert int(shown["Rows read"].replace(",", "")) > 0
    assert any("range 2024-11-01" in c.value for c in at.caption)
    history = frame_with(at, "source", "status", "rows_imported")
    assert "openai_api" in set(history["source"]) or len(history) >= 1
    everything = " ".join(x.value for kind in (at.markdown, at.caption, at.error, at.success) for x in kind)
    assert "never-show-this" not in everything


def test_stripe_import_from_the_data_page_against_a_fake_stripe(no_database, monkeypatch):
    from tests.fakes.stripe_data import load_account
    from tests.fakes.stripe_server import FakeStripe

    with FakeStripe(page_size=2, embedded_lines=2) as fake:
        load_account(fake)
        monkeypatch.setenv("WALLETA_STRIPE_API_BASE", fake.url)
        at = start({"walleta_source": "session"})
        open_page(at, "pages/6_Data.py")
        at.text_input(key="stripe_api_key").input("rk_test_never_show").run()
        at.button(key="stripe_go").click().run()
        assert_clean(at)
    lines = " ".join(m.value for m in at.markdown)
    assert "invoices:" in lines and "revenue entries written:" in lines
    assert metrics(at)["Revenue entries"] != "0"
    matches = frame_with(at, "stripe_customer_id", "status")
    assert len(matches) >= 1
    assert "rk_test_never_show" not in lines


# -- access gate and errors ---------------------------------------------------------------------


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
    open_page(at, "pages/1_Customers.py")  # the gate holds for the whole session
    assert at.title[0].value == "Customers"


AUTH_SECRETS = {"redirect_uri": "http://localhost:8501/oauth2callback", "cookie_secret": "x" * 32, "client_id": "walleta",
                "client_secret": "not-a-real-secret", "server_metadata_url": "https://id.example.invalid/.well-known/openid-configuration"}


def test_login_gate_with_auth_secrets_blocks_until_logged_in(on_demo):
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.secrets["auth"] = AUTH_SECRETS
    at.run()
    assert not at.exception
    assert not at.metric and any(b.label == "Log in" for b in at.button)  # st.login: nothing shown before it
    page = AppTest.from_file(str(ROOT / "pages" / "1_Customers.py"), default_timeout=TIMEOUT)
    page.secrets["auth"] = AUTH_SECRETS
    page.run()
    assert not page.dataframe and any(b.label == "Log in" for b in page.button)  # a deep link too


def test_login_gate_lets_a_logged_in_user_through(on_demo):
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.secrets["auth"] = AUTH_SECRETS
    at.user = {"is_logged_in": True, "email": "founder@example.com"}
    at.run()
    assert_clean(at)
    assert "Revenue" in metrics(at) and not any(b.label == "Log in" for b in at.button)


def test_a_deep_link_is_gated_too(on_demo, monkeypatch):
    monkeypatch.setenv("WALLETA_APP_PASSWORD", "open sesame")
    at = AppTest.from_file(str(ROOT / "pages" / "1_Customers.py"), default_timeout=TIMEOUT)
    at.run()
    assert not at.dataframe and [t.value for t in at.title] == ["Walleta"]


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


def test_keys_typed_on_the_data_page_are_never_shown(no_database, monkeypatch):
    at = start({"walleta_source": "session"})
    open_page(at, "pages/6_Data.py")
    at.text_input(key="openai_admin_key").input("sk-admin-SECRET-123").run()
    at.text_input(key="stripe_api_key").input("rk_test_SECRET_456").run()
    assert_clean(at)
    shown = " ".join(x.value for kind in (at.markdown, at.caption, at.info, at.warning, at.error, at.success) for x in kind)
    assert "SECRET" not in shown
    assert at.text_input(key="openai_admin_key").proto.type == at.text_input(key="openai_admin_key").proto.PASSWORD


# -- what pages read ----------------------------------------------------------------------------


def test_no_page_scans_the_raw_events(on_demo):
    """Issue 6: pages read rollups, never every raw event. Every statement that names
    `usage_events` while each page renders on the demo is traced and explained on the same
    database: a read by time range or through the provider-usage index is a SEARCH; a SCAN
    (of the table or of a whole index) would read every event and take seconds at 10M."""
    import sqlite3

    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    seen: set[str] = set()

    def trace(dbapi_connection, _record) -> None:
        if isinstance(dbapi_connection, sqlite3.Connection):
            dbapi_connection.set_trace_callback(lambda sql: seen.add(sql) if "usage_events" in sql else None)

    event.listen(Engine, "connect", trace)
    try:
        at = start()
        for page in PAGES:
            open_page(at, page)
    finally:
        event.remove(Engine, "connect", trace)
    reads = sorted(s for s in seen if s.lstrip().upper().startswith(("SELECT", "WITH")))
    assert reads, "no page read the raw events at all: the trace saw nothing"
    connection = sqlite3.connect(on_demo.removeprefix("sqlite:///"))
    try:
        for statement in reads:
            plan = " | ".join(row[-1] for row in connection.execute(f"EXPLAIN QUERY PLAN {statement}"))
            assert "SCAN usage_events" not in plan, (statement, plan)
    finally:
        connection.close()
