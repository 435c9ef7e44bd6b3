"""Stripe export: Price parameters that mirror the plan, accepted by the official SDK.

The SDK posts to a local fake Stripe API on 127.0.0.1 that records the form-encoded body.
"""

from __future__ import annotations

import json
import threading
from decimal import Decimal as D
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from urllib.parse import parse_qsl

import pytest
import stripe
from stripe.params._price_create_params import PriceCreateParams, PriceCreateParamsRecurring, PriceCreateParamsTier

from walleta.simulator.plans import Allocation, Meter, Plan, TransformQuantity, load_scenario
from walleta.simulator.stripe_export import plan_summary, scenario_prices, scenario_summary, stripe_prices

PLANS = Path(__file__).resolve().parent.parent / "data" / "plans"


def test_allocation_becomes_a_graduated_metered_price():
    prices, notes = stripe_prices(load_scenario(PLANS / "token-allocation.yaml").plan("Starter"))
    fee, usage = prices
    assert fee["unit_amount"] == 2900 and fee["recurring"] == {"interval": "month", "usage_type": "licensed"}
    assert usage["billing_scheme"] == "tiered" and usage["tiers_mode"] == "graduated"
    assert usage["tiers"] == [{"up_to": 6_000_000, "unit_amount": 0}, {"up_to": "inf", "unit_amount_decimal": "0.0003"}]
    assert usage["recurring"]["usage_type"] == "metered" and usage["recurring"]["meter"] == "METER_ID:tokens"
    assert notes == []


def test_meters_are_exported_as_written():
    scenario = load_scenario(PLANS / "graduated-tiers.yaml")
    tokens, seats = scenario_prices(scenario)["plans"][0]["prices"]
    assert tokens["tiers"][0] == {"up_to": 1_000_000, "unit_amount": 0, "flat_amount": 1900}
    assert [t["up_to"] for t in tokens["tiers"]] == [1_000_000, 20_000_000, 100_000_000, "inf"]
    assert seats["tiers_mode"] == "volume" and seats["recurring"]["usage_type"] == "licensed"
    package = Plan(name="P", meters=(Meter(name="req", measure="requests", unit_amount_decimal=D("150"), transform_quantity=TransformQuantity(1000, "up")),))
    price = stripe_prices(package)[0][0]
    assert price["transform_quantity"] == {"divide_by": 1000, "round": "up"} and price["unit_amount"] == 150


def test_amounts_finer_than_stripe_keeps_are_reported():
    plan = Plan(name="P", allocation=Allocation(included=0, overage_per_1m=D("0.000000001")))
    prices, notes = stripe_prices(plan)
    assert prices[0]["tiers"][0]["unit_amount_decimal"] is None
    assert "12 decimal places" in notes[0]


def test_every_exported_key_is_a_stripe_price_parameter():
    allowed = set(PriceCreateParams.__annotations__)
    for path in PLANS.glob("*.yaml"):
        for plan in scenario_prices(load_scenario(path))["plans"]:
            for price in plan["prices"]:
                assert set(price) <= allowed, path.name
                assert set(price.get("recurring", {})) <= set(PriceCreateParamsRecurring.__annotations__)
                for tier in price.get("tiers", []):
                    assert set(tier) <= set(PriceCreateParamsTier.__annotations__)


class _FakeStripe(BaseHTTPRequestHandler):
    bodies: list[list[tuple[str, str]]] = []

    def do_POST(self):  # noqa: N802 - http.server API
        length = int(self.headers["Content-Length"])
        _FakeStripe.bodies.append(parse_qsl(self.rfile.read(length).decode()))
        payload = json.dumps({"id": "price_123", "object": "price", "livemode": False}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):  # keep test output quiet
        return


@pytest.fixture
def fake_stripe():
    server = HTTPServer(("127.0.0.1", 0), _FakeStripe)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _FakeStripe.bodies = []
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_the_official_sdk_sends_the_tiers(fake_stripe):
    client = stripe.StripeClient("sk_test_123", base_addresses={"api": fake_stripe}, max_network_retries=0)
    prices, _ = stripe_prices(load_scenario(PLANS / "token-allocation.yaml").plan("Pro"))
    usage = dict(prices[1], recurring={**prices[1]["recurring"], "meter": "mtr_test_1"})
    created = client.v1.prices.create(params=usage)
    assert created.id == "price_123"
    sent = dict(_FakeStripe.bodies[-1])
    assert sent["billing_scheme"] == "tiered" and sent["tiers_mode"] == "graduated"
    assert sent["tiers[0][up_to]"] == "20000000" and sent["tiers[0][unit_amount]"] == "0"
    assert sent["tiers[1][up_to]"] == "inf" and sent["tiers[1][unit_amount_decimal]"] == "0.000275"  # $2.75 per 1M
    assert sent["recurring[usage_type]"] == "metered" and sent["recurring[meter]"] == "mtr_test_1"
    assert sent["currency"] == "usd"


def test_summaries_describe_every_component():
    text = scenario_summary(load_scenario(PLANS / "hybrid-minimum-cap.yaml"))
    assert "Enterprise when average monthly tokens in [150000000, inf)" in text
    assert "minimum commitment $24,000.00 per 12 months" in text
    assert "hard cap: $250.00 of AI cost per month" in text
    tiers = plan_summary(load_scenario(PLANS / "graduated-tiers.yaml").plan("Usage"))
    assert "20,000,001-100,000,000: $2.50 per 1M tokens" in tiers and "0-1,000,000: free + flat $19.00" in tiers
    credits = plan_summary(load_scenario(PLANS / "credits.yaml").plan("Free"))
    assert "usage stops when the credits run out" in credits and "AI cost x 2" in credits
