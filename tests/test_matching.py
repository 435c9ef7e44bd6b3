"""Customer matching: exact (metadata, Stripe id), e-mail, fuzzy, conflicts; confirm; unmatched lists."""

from __future__ import annotations

import pandas as pd
import pytest

from tests.revenue_checks import assert_revenue_rollup_current, rollup_rows
from walleta.catalog import load_catalog
from walleta.events import record_events
from walleta.matching import (
    MATCH_COLUMNS,
    confirm_matches,
    match_customers,
    match_stripe,
    name_similarity,
    normalise_name,
    unmatched_revenue,
    unmatched_usage,
)

USAGE = pd.DataFrame(
    [
        ("acme", "Acme", "", ""),
        ("globex", "Globex", "ops@globex.test", ""),
        ("initech", "Initech", "", "cus_C"),
        ("umbrella", "Umbrella Corporation", "", ""),
        ("twin-a", "Twin A", "shared@twins.test", ""),
        ("twin-b", "Twin B", "shared@twins.test", ""),
        ("soylent", "Soylent", "a@soylent.test", "cus_S"),
        ("dup-1", "Dup One", "", "cus_DUP"),
        ("dup-2", "Dup Two", "", "cus_DUP"),
        ("hooli", "Hooli XYZ", "", ""),
        ("stark", "Stark Industries", "", ""),
    ],
    columns=["customer_id", "name", "email", "stripe_customer_id"],
)
NO_MAPPINGS = pd.DataFrame(columns=["source", "key", "customer_id", "confirmed"])


def stripe_rows(*rows: tuple[str, str, str, str]) -> pd.DataFrame:
    return pd.DataFrame(list(rows), columns=["stripe_customer_id", "name", "email", "walleta_customer_id"])


def by_id(frame: pd.DataFrame) -> dict[str, tuple]:
    return {r.stripe_customer_id: (r.customer_id, r.method, r.status) for r in frame.itertuples()}


def test_exact_and_email_matches():
    result = by_id(match_customers(stripe_rows(
        ("cus_A", "ACME Inc", "x@acme.test", "acme"),
        ("cus_C", "Initech KK", "", ""),
        ("cus_B", "Globex GmbH", " OPS@Globex.test", ""),
    ), USAGE, NO_MAPPINGS))
    assert result == {
        "cus_A": ("acme", "metadata", "auto"),
        "cus_C": ("initech", "stripe_id", "auto"),
        "cus_B": ("globex", "email", "auto"),  # trimmed, case-insensitive
    }


def test_fuzzy_proposal_with_confidence_is_not_applied():
    frame = match_customers(stripe_rows(
        ("cus_U", "Umbrella Corp.", "finance@gmail.com", ""),
        ("cus_H", "Hooli", "", ""),
        ("cus_Z", "Completely Different", "", ""),
    ), USAGE, NO_MAPPINGS)
    rows = frame.set_index("stripe_customer_id")
    assert rows.loc["cus_U", ["customer_id", "method", "status"]].tolist() == ["umbrella", "fuzzy", "proposed"]
    assert rows.loc["cus_U", "confidence"] == 0.95  # same normalised name, still only a proposal
    assert rows.loc["cus_H", "customer_id"] == "hooli" and rows.loc["cus_H", "status"] == "proposed"
    assert rows.loc["cus_Z", "status"] == "unmatched" and rows.loc["cus_Z", "customer_id"] == ""
    assert confirm_rows(frame) == []  # proposals need --accept-above
    assert [r["key"] for r in confirm_rows(frame, accept=0.8)] == ["cus_U", "cus_H"]  # "Hooli" = customer id "hooli"


def confirm_rows(frame, accept=None):
    from walleta.matching import mapping_rows

    return mapping_rows(frame, accept_proposed_at=accept)


def test_company_domain_raises_confidence():
    plain = match_customers(stripe_rows(("cus_1", "Stark Ind", "", "")), USAGE, NO_MAPPINGS)
    usage = USAGE.copy()
    usage.loc[usage["customer_id"] == "stark", "email"] = "tony@stark.test"
    domain = match_customers(stripe_rows(("cus_1", "Stark Ind", "pepper@stark.test", "")), usage, NO_MAPPINGS)
    assert domain["customer_id"][0] == plain["customer_id"][0] == "stark"
    assert domain["confidence"][0] > plain["confidence"][0]


def test_conflicts_are_never_applied():
    frame = match_customers(stripe_rows(
        ("cus_T", "Twins", "shared@twins.test", ""),  # two usage customers share the e-mail
        ("cus_DUP", "Dup", "", ""),  # two usage customers claim this Stripe id
        ("cus_S", "Soylent", "ops@globex.test", ""),  # Stripe id says soylent, e-mail says globex
        ("cus_G1", "Globex", "ops@globex.test", ""),  # two Stripe customers claim globex by e-mail
        ("cus_G2", "Globex EU", "ops@globex.test", ""),
        ("cus_M", "Metadata", "", "no-such-customer"),
    ), USAGE, NO_MAPPINGS)
    rows = frame.set_index("stripe_customer_id")
    for stripe_id in ("cus_T", "cus_DUP", "cus_S", "cus_G1", "cus_G2"):
        assert rows.loc[stripe_id, "status"] == "conflict", stripe_id
    assert "twin-a, twin-b" in rows.loc["cus_T", "note"]
    assert "dup-1, dup-2" in rows.loc["cus_DUP", "note"]
    assert "soylent" in rows.loc["cus_S", "note"] and "globex" in rows.loc["cus_S", "note"]
    assert "cus_G2" in rows.loc["cus_G1", "note"]
    assert rows.loc["cus_M", "status"] == "unmatched" and "no-such-customer" in rows.loc["cus_M", "note"]
    assert confirm_rows(frame, accept=0.0) == []


def test_explicit_metadata_may_share_a_customer_and_confirmed_wins():
    mappings = pd.DataFrame([("stripe_customer", "cus_OLD", "stark", 1)], columns=["source", "key", "customer_id", "confirmed"])
    frame = match_customers(stripe_rows(
        ("cus_EUR", "Acme EU", "", "acme"),
        ("cus_USD", "Acme US", "", "acme"),
        ("cus_OLD", "Globex", "ops@globex.test", ""),  # confirmed manual mapping beats the e-mail
        ("cus_N", "Stark Industries", "", ""),  # stark is taken by a confirmed mapping: not proposed
    ), USAGE, mappings)
    result = by_id(frame)
    assert result["cus_EUR"] == ("acme", "metadata", "auto") and result["cus_USD"] == ("acme", "metadata", "auto")
    assert result["cus_OLD"] == ("stark", "confirmed", "confirmed")
    assert result["cus_N"][0] != "stark"


def test_normalisation():
    assert normalise_name("Acme, Inc.") == "acme"
    assert normalise_name("Société Générale S.A.") == "societe generale"
    assert name_similarity("Umbrella Corp.", "umbrella corporation") == 1.0
    assert name_similarity("Globex", "Initech") < 0.5


def test_confirm_and_unmatched_lists(store):
    store.upsert("customers", [
        {"customer_id": c, "name": n, "email": e, "stripe_customer_id": s, "plan": "", "signup_date": "", "source": "test"}
        for c, n, e, s in USAGE.itertuples(index=False)
    ], ["customer_id"])
    store.upsert("stripe_customers", [
        {"stripe_customer_id": "cus_B", "name": "Globex GmbH", "email": "ops@globex.test", "walleta_customer_id": "", "metadata_json": "{}", "currency": "USD", "created": 0},
        {"stripe_customer_id": "cus_U", "name": "Umbrella Corp.", "email": "", "walleta_customer_id": "", "metadata_json": "{}", "currency": "USD", "created": 0},
    ], ["stripe_customer_id"])
    store.upsert("revenue_entries", [
        {"uid": f"stripe:{cus}:in_{n}:il_{n}", "customer_id": cus, "period_start": "2026-10-01", "period_end": "2026-10-31",
         "amount_minor": amount, "currency": "USD", "kind": "subscription", "document_id": f"in_{n}", "description": "",
         "source": "stripe"}
        for n, (cus, amount) in enumerate((("cus_B", 5000), ("cus_U", 4900), ("cus_U", 100)))
    ], ["uid"])
    record_events(store, pd.DataFrame([
        {"ts_us": 1_790_000_000_000_000, "customer_id": c, "model": "gpt-4.1-mini", "input_tokens": 1_000_000, "output_tokens": 0,
         "request_id": f"req_m_{c}"} for c in ("globex", "hooli", "umbrella")
    ]), load_catalog(), source="test")

    before = unmatched_revenue(store)
    assert before[["customer_id", "currency", "amount_minor", "stripe_name"]].values.tolist() == [
        ["cus_B", "USD", 5000, "Globex GmbH"], ["cus_U", "USD", 5000, "Umbrella Corp."]]
    assert sorted(unmatched_usage(store)["customer_id"]) == ["globex", "hooli", "umbrella"]

    matches = match_stripe(store)
    assert by_id(matches)["cus_B"] == ("globex", "email", "auto")
    assert by_id(matches)["cus_U"] == ("umbrella", "fuzzy", "proposed")
    assert confirm_matches(store, matches) == 1
    assert unmatched_revenue(store)["customer_id"].tolist() == ["cus_U"]
    assert_revenue_rollup_current(store)  # re-pointed revenue is the matched customer's in the rollup too
    assert ("2026-10", "globex", "USD") in rollup_rows(store)
    assert sorted(unmatched_usage(store)["customer_id"]) == ["hooli", "umbrella"]
    usage = unmatched_usage(store).set_index("customer_id")
    assert usage.loc["hooli", "cost_pico"] == 400_000_000_000  # 1M input tokens x $0.40/M

    assert confirm_matches(store, match_stripe(store), accept_proposed_at=0.8) == 1  # cus_B is already confirmed
    assert unmatched_revenue(store).empty
    assert unmatched_usage(store)["customer_id"].tolist() == ["hooli"]
    assert store.scalar("SELECT COUNT(*) FROM revenue_entries WHERE customer_id = 'umbrella'") == 2


@pytest.mark.parametrize("name", ["", "   "])
def test_blank_names_never_match(name):
    frame = match_customers(stripe_rows(("cus_X", name, "", "")), USAGE, NO_MAPPINGS)
    assert frame["status"][0] == "unmatched"


def test_no_stripe_customers_gives_an_empty_table_with_columns():
    result = match_customers(stripe_rows(), USAGE, NO_MAPPINGS)
    assert result.empty and list(result.columns) == list(MATCH_COLUMNS)


def _typo(rng, word: str) -> str:
    if len(word) < 4:
        return word
    i = rng.randrange(len(word) - 1)
    return word[:i] + word[i + 1] + word[i] + word[i + 2:] if rng.random() < 0.5 else word[:i] + word[i + 1:]


def test_fuzzy_proposals_skip_hopeless_candidates_but_answer_as_scoring_every_one():
    """The fuzzy pass bounds every candidate's score from shared characters and scores them best
    bound first, stopping when no bound can win: on random near-duplicate company names (typos,
    reordered words, legal suffixes, ids, company domains, repeated names: ties go to the first
    in order) the best candidate and its score are those of scoring every candidate with
    `name_similarity`, for the default floor and without one."""
    import random

    from walleta import matching

    rng = random.Random(7)
    words = ["Acme", "Globex", "Initech", "Umbrella", "Hooli", "Stark", "Wayne", "Wonka", "Cyberdyne", "Tyrell", "Soylent",
             "Vandelay", "Pied", "Piper", "Aperture", "Black", "Mesa", "Blue", "Sun", "North", "Wind", "Data", "Labs", "AI"]
    suffixes = ["", " Inc", " LLC", " GmbH", ", Inc.", " Ltd"]
    domains = ["gmail.com", "acme.io", "globex.com", "hooli.xyz", "initech.net"]

    def company() -> str:
        return " ".join(rng.sample(words, rng.choice([1, 2, 2, 3]))) + rng.choice(suffixes)

    customers = pd.DataFrame([
        {"customer_id": f"cust_{i:04d}" if rng.random() < 0.7 else company().lower().replace(" ", "-"), "name": company(),
         "email": f"x{i}@{rng.choice(domains)}" if rng.random() < 0.6 else "", "stripe_customer_id": ""}
        for i in range(250)
    ]).drop_duplicates("customer_id")
    pool = matching._Pool(customers)

    def every_one(name: str, email: str) -> tuple[str | None, float]:
        domain, best, best_score = matching._company_domain(email), None, 0.0
        for c in customers.itertuples(index=False):
            score = max(name_similarity(name, c.name or ""), name_similarity(name, str(c.customer_id)))
            if domain and domain == matching._company_domain(matching._email(c.email)):
                score = 1 - (1 - score) / 2
            if score > best_score:
                best, best_score = str(c.customer_id), score
        return best, min(best_score, matching.FUZZY_CEILING)

    proposed = 0
    for _ in range(100):
        source = rng.choice(customers["name"].tolist())
        name = " ".join(_typo(rng, w) for w in rng.sample(source.split(), len(source.split()))) if rng.random() < 0.7 else company()
        email = f"billing@{rng.choice(domains)}" if rng.random() < 0.5 else ""
        expected = every_one(name, email)
        assert matching._best_candidate(name, email, pool) == expected, name
        best, score = matching._best_candidate(name, email, pool, matching.MIN_CONFIDENCE)
        if expected[1] >= matching.MIN_CONFIDENCE:
            assert (best, score) == expected, name
            proposed += 1
        else:
            assert score < matching.MIN_CONFIDENCE, name
    assert proposed > 30  # the names really are near-duplicates


def test_no_usage_customers_leaves_every_stripe_customer_unmatched():
    result = match_customers(stripe_rows(("cus_A", "ACME Inc", "x@acme.test", "")), pd.DataFrame(), NO_MAPPINGS)
    assert result["status"].tolist() == ["unmatched"] and result["customer_id"].tolist() == [""]
