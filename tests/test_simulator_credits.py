"""Credit ledgers and burn rules on hand-computed cases; the vectorised ledger against the scalar one."""

from __future__ import annotations

from decimal import Decimal as D

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from walleta.simulator.credits import MICRO, burn_micro_array, burn_micro_scalar, rule_index, run_ledger, run_ledger_scalar
from walleta.simulator.plans import BurnRule, CreditPack, Credits

ANY = (BurnRule(match="*"),)


def _run(credits: Credits, burn_credits: list[float | int], grant_credits: list[int]) -> dict[str, list[int]]:
    """Run both ledgers for one customer; assert they agree; return the scalar result."""
    burn = [int(D(str(b)) * MICRO) for b in burn_credits]
    grant = [g * MICRO for g in grant_credits]
    scalar = run_ledger_scalar(credits, burn, grant, 2)
    vector = run_ledger(credits, np.array([burn], dtype=np.int64), np.array([grant], dtype=np.int64), 2)
    for name, values in scalar.items():
        assert getattr(vector, name)[0].tolist() == values, name
    return scalar


def micro(values: list[int]) -> list[int]:
    return [v * MICRO for v in values]


def test_included_credits_roll_over_then_expire():
    # 100 credits a month, usable in their month and the next one; soonest-expiring spent first.
    credits = Credits(burn=ANY, included=100, included_expiry_months=2, topup="none", on_exhausted="block")
    out = _run(credits, [30, 150, 0, 50], [100, 100, 100, 100])
    # m0: 70 left of m0's grant. m1: 70 (m0 grant) + 80 (m1 grant) spent, 20 left; m0 grant expires empty.
    # m2: nothing spent; m1's 20 expire. m3: 50 of m2's grant spent; its other 50 expire.
    assert out["burned"] == micro([30, 150, 0, 50])
    assert out["shortfall"] == micro([0, 0, 0, 0])
    assert out["expired_included"] == micro([0, 0, 20, 50])
    assert out["balance_end"] == micro([70, 20, 100, 100])


def test_no_rollover_and_block_when_exhausted():
    credits = Credits(burn=ANY, included=100, included_expiry_months=1, topup="none", on_exhausted="block")
    out = _run(credits, [150, 40], [100, 100])
    assert out["burned"] == micro([100, 40])  # 50 credits of usage not served in month 0
    assert out["shortfall"] == micro([50, 0])
    assert out["expired_included"] == micro([0, 60])
    assert out["revenue_minor"] == [0, 0]


def test_packs_leftovers_expire_as_breakage():
    # Packs of 300 credits for $3.00 (1 cent a credit); purchased credits usable 2 months.
    credits = Credits(burn=ANY, included=0, topup="packs", pack=CreditPack(300, D("3.00")), purchased_expiry_months=2)
    out = _run(credits, [500, 0, 50, 0], [0, 0, 0, 0])
    assert out["purchased"] == micro([600, 0, 300, 0])  # ceil(500 / 300) = 2 packs, then 1
    assert out["revenue_minor"] == [600, 0, 300, 0]
    assert out["expired_purchased"] == micro([0, 100, 0, 250])
    assert out["breakage_minor"] == [0, 100, 0, 250]


def test_included_credits_are_spent_before_purchased_ones():
    credits = Credits(burn=ANY, included=10, included_expiry_months=1, topup="packs", pack=CreditPack(100, D("1.00")))
    out = _run(credits, [15, 8], [10, 10])
    # m0: 10 included + 5 from a new pack (95 left, never expire). m1: 8 from the new included 10,
    # none from the pack.
    assert out["purchased"] == micro([100, 0])
    assert out["balance_end"] == micro([95, 95])  # the 2 included credits left expire with month 1
    assert out["expired_included"] == micro([0, 2])


def test_top_up_per_credit_rounds_the_purchase_half_up():
    credits = Credits(burn=ANY, included=0, topup="per_credit", price_per_credit=D("0.015"))
    out = _run(credits, ["2.5", "0.4"], [0, 0])
    assert out["purchased"] == micro([3, 0])  # whole credits: ceil(2.5) = 3
    assert out["revenue_minor"] == [5, 0]  # 3 x 1.5 cents = 4.5 -> 5
    assert out["balance_end"] == [500_000, 100_000]


def test_overage_bills_the_shortfall():
    credits = Credits(burn=ANY, included=10, topup="none", on_exhausted="overage", overage_per_credit=D("0.02"))
    out = _run(credits, ["15.5"], [10])
    assert out["revenue_minor"] == [11]  # 5.5 credits x 2 cents
    assert out["shortfall"] == [0]


def test_burn_rules_by_class_request_and_cost():
    rule = BurnRule(per_1k={"input": D("0.2"), "cached_input": D("0.05"), "output": D("1")}, per_request=D("0.01"))
    # 1.234 x 0.2 + 1 x 0.05 + 0.567 x 1 + 3 x 0.01 = 0.8938 credits
    assert burn_micro_scalar((1234, 1000, 567, 3, 0), rule, None) == 893_800
    tiny = BurnRule(per_1k={"input": D("0.0000001")})
    assert burn_micro_scalar((1, 0, 0, 0, 0), tiny, None) == 1  # 0.0001 micro-credit rounds up
    by_cost = BurnRule(cost_multiplier=D(2))
    assert burn_micro_scalar((0, 0, 0, 0, 1_000_000), by_cost, D("0.01")) == 200  # $0.000001 x 2 / $0.01
    rows = [np.array([1234, 1]), np.array([1000, 0]), np.array([567, 0]), np.array([3, 0]), np.array([0, 0])]
    assert burn_micro_array(rows, rule, None).tolist() == [893_800, 200]


def test_rule_matching_first_pattern_wins():
    rules = (BurnRule(match="gpt-5.4-mini*"), BurnRule(match="gpt-5.4*"))
    assert rule_index(["gpt-5.4-mini-2026-03-17", "gpt-5.4", "o3"], rules).tolist() == [0, 1, -1]


@st.composite
def ledgers(draw):
    topup = draw(st.sampled_from(["packs", "per_credit", "none"]))
    on_exhausted = draw(st.sampled_from(["topup", "block", "overage"] if topup != "none" else ["block", "overage"]))
    return Credits(
        burn=ANY,
        included=draw(st.integers(0, 50)),
        included_expiry_months=draw(st.integers(1, 4)),
        topup=topup,
        pack=CreditPack(draw(st.integers(1, 40)), D(draw(st.integers(0, 900))) / 100),
        price_per_credit=D(draw(st.integers(0, 999))) / 1000,
        purchased_expiry_months=draw(st.one_of(st.none(), st.integers(1, 4))),
        on_exhausted=on_exhausted,
        overage_per_credit=D(draw(st.integers(0, 999))) / 1000,
    )


@settings(max_examples=120, deadline=None)
@given(
    credits=ledgers(),
    burns=st.lists(st.lists(st.integers(0, 120 * MICRO), min_size=6, max_size=6), min_size=1, max_size=4),
    active=st.lists(st.booleans(), min_size=6, max_size=6),
)
def test_vectorised_ledger_equals_scalar(credits, burns, active):
    grant = [credits.included * MICRO if a else 0 for a in active]
    burn = np.array([[b if a else 0 for b, a in zip(row, active)] for row in burns], dtype=np.int64)
    vector = run_ledger(credits, burn, np.array([grant] * len(burns), dtype=np.int64), 2)
    for i, row in enumerate(burn.tolist()):
        scalar = run_ledger_scalar(credits, row, grant, 2)
        for name, values in scalar.items():
            assert getattr(vector, name)[i].tolist() == values, name
        # Conservation (top-up and block): what was granted or bought was burned, expired or is held.
        if credits.on_exhausted != "overage":
            outflow = sum(scalar["burned"]) + sum(scalar["expired_included"]) + sum(scalar["expired_purchased"]) + scalar["balance_end"][-1]
            assert sum(scalar["granted"]) + sum(scalar["purchased"]) == outflow
        assert min(scalar["revenue_minor"]) >= 0


@pytest.mark.parametrize("expiry", [1, 3])
def test_inactive_months_get_no_grant_but_credits_still_expire(expiry):
    credits = Credits(burn=ANY, included=10, included_expiry_months=expiry, topup="none", on_exhausted="block")
    out = _run(credits, [0, 0, 0], [10, 0, 0])
    expired = [0] * 3
    expired[expiry - 1] = 10 * MICRO
    assert out["expired_included"] == expired


def test_expiry_far_beyond_the_simulated_months_is_exact_and_small():
    # 10^15 months of rollover: the same as never expiring within the window (no 10^15-wide arrays).
    for expiry in (4, 5, 10**15):
        credits = Credits(burn=ANY, included=100, included_expiry_months=expiry, topup="packs", pack=CreditPack(10, D("1.00")),
                          purchased_expiry_months=expiry)
        out = _run(credits, [30, 150, 0, 500], [100, 100, 100, 100])
        assert out["expired_included"] == micro([0, 0, 0, 0])
        assert out["purchased"] == micro([0, 0, 0, 280])  # 220 available at m3: 280 short, 28 packs
        assert out["balance_end"] == micro([70, 20, 120, 0])
