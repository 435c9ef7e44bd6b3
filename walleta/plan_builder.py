"""Pricing designs from a few form fields: the plain scenario data the simulator reads.

The app's plan builder asks for a mechanism and one row of numbers per plan; this module turns
that into the dictionary `walleta.simulator.plans.scenario_from_dict` validates (so every rule
about plans lives in the simulator, and a bad value comes back with its field path). Amounts are
decimal text in major units (dollars), token counts in millions as the form shows them.

    >>> build_scenario("Pro at $149", "flat", [PlanRow("Pro", base_fee="149")])["plans"][0]
    {'name': 'Pro', 'base_fee': '149'}
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from .errors import InputError

__all__ = ["MECHANISMS", "PlanRow", "Tier", "Extras", "build_scenario", "per_1m_to_unit_amount"]

MECHANISMS: dict[str, str] = {
    "flat": "Flat monthly plans (unlimited use)",
    "allocation": "Token allocation with overage",
    "credits": "Credits (included each month, top-up packs)",
    "tiers": "Usage tiers (one metered price for everybody)",
    "payg": "Pay as you go (AI cost + markup)",
}
MILLION = Decimal(1_000_000)


@dataclass(frozen=True)
class PlanRow:
    """One plan as the form shows it. Empty text = not set."""

    name: str
    base_fee: str = ""
    included_m_tokens: str = ""
    overage_per_1m: str = ""
    included_credits: str = ""
    pack_credits: str = ""
    pack_price: str = ""


@dataclass(frozen=True)
class Tier:
    """One usage tier: up to `up_to_m_tokens` million tokens (empty = no limit), a price per
    1M tokens and a flat amount for reaching the tier (dollars)."""

    up_to_m_tokens: str
    price_per_1m: str
    flat_fee: str = ""


@dataclass(frozen=True)
class Extras:
    """Options every mechanism can add."""

    cap_measure: str = ""  # "", "tokens" (millions) or "ai_cost_usd"
    cap_limit: str = ""
    minimum: str = ""
    markup_pct: str = ""
    tiers_mode: str = "graduated"
    credit_value_usd: str = "0.01"
    burn_multiplier: str = "2"
    assignment: str = "current_plan"  # current_plan | single | cheapest


def _number(text: str, where: str) -> Decimal | None:
    text = (text or "").strip().replace(",", "")
    if text == "":
        return None
    try:
        value = Decimal(text)
    except InvalidOperation as exc:
        raise InputError(f"{where}: {text!r} is not a number") from exc
    if not value.is_finite() or value < 0:
        raise InputError(f"{where}: must be zero or more")
    return value


def _text(value: Decimal) -> str:
    """Decimal as plain text without exponent ('0.0003', '1500')."""
    return format(value.normalize(), "f")


def _millions(text: str, where: str) -> int | None:
    value = _number(text, where)
    if value is None:
        return None
    tokens = value * MILLION
    if tokens != tokens.to_integral_value():
        raise InputError(f"{where}: {text} million is not a whole number of tokens")
    return int(tokens)


def per_1m_to_unit_amount(per_1m: Decimal) -> str:
    """Dollars per 1M tokens -> Stripe `unit_amount_decimal` in cents per token ('3' -> '0.0003')."""
    return _text(per_1m * 100 / MILLION)


def _plan(row: PlanRow, mechanism: str, extras: Extras, index: int) -> dict[str, Any]:
    where = f"plan {index + 1} ({row.name or 'unnamed'})"
    if not row.name.strip():
        raise InputError(f"{where}: give the plan a name")
    plan: dict[str, Any] = {"name": row.name.strip()}
    fee = _number(row.base_fee, f"{where}, monthly fee")
    if fee is not None and mechanism != "payg":
        plan["base_fee"] = _text(fee)
    if mechanism == "allocation":
        included = _millions(row.included_m_tokens, f"{where}, included tokens")
        overage = _number(row.overage_per_1m, f"{where}, overage per 1M")
        if included is None or overage is None:
            raise InputError(f"{where}: set the included tokens and the overage price")
        plan["allocation"] = {"included": included, "overage_per_1m": _text(overage), "measure": "tokens"}
    elif mechanism == "credits":
        included = _number(row.included_credits, f"{where}, included credits") or Decimal(0)
        pack_credits = _number(row.pack_credits, f"{where}, pack credits")
        pack_price = _number(row.pack_price, f"{where}, pack price")
        credits: dict[str, Any] = {
            "included": int(included),
            "burn_by": "total",
            "burn": [{"match": "*", "cost_multiplier": extras.burn_multiplier}],
            "credit_value_usd": extras.credit_value_usd,
        }
        if pack_credits and pack_price is not None:
            credits.update(topup="packs", pack={"credits": int(pack_credits), "price": _text(pack_price)})
        else:
            credits.update(topup="none", on_exhausted="block")
        plan["credits"] = credits
    elif mechanism == "payg":
        markup = _number(extras.markup_pct, "markup %")
        if markup is None:
            raise InputError("set the markup % for pay as you go")
        plan["payg"] = {"markup_pct": _text(markup)}
    return plan


def _tiers_meter(tiers: list[Tier], mode: str) -> dict[str, Any]:
    if not tiers:
        raise InputError("add at least one usage tier")
    rows = []
    for i, tier in enumerate(tiers):
        where = f"tier {i + 1}"
        up_to = _millions(tier.up_to_m_tokens, f"{where}, up to")
        price = _number(tier.price_per_1m, f"{where}, price per 1M") or Decimal(0)
        flat = _number(tier.flat_fee, f"{where}, flat fee")
        row: dict[str, Any] = {"up_to": "inf" if up_to is None else up_to, "unit_amount_decimal": per_1m_to_unit_amount(price)}
        if flat:
            row["flat_amount"] = _text(flat * 100)
        rows.append(row)
    return {"name": "tokens", "measure": "tokens", "billing_scheme": "tiered", "tiers_mode": mode, "tiers": rows}


def build_scenario(
    name: str,
    mechanism: str,
    rows: list[PlanRow],
    *,
    tiers: list[Tier] | None = None,
    extras: Extras | None = None,
    currency: str = "USD",
) -> dict[str, Any]:
    """The scenario data for one design. Raises InputError naming the plan and field."""
    if mechanism not in MECHANISMS:
        raise InputError(f"unknown pricing mechanism {mechanism!r}")
    extras = extras or Extras()
    if mechanism in ("tiers", "payg"):
        # One metered plan for everybody.
        label = "Usage" if mechanism == "tiers" else "Pay as you go"
        plan = _plan(PlanRow(name=label), mechanism, extras, 0)
        if mechanism == "tiers":
            plan["meters"] = [_tiers_meter(tiers or [], extras.tiers_mode)]
        plans = [plan]
        assignment: dict[str, Any] = {"method": "single", "default": label}
    else:
        named = [r for r in rows if r.name.strip()]
        if not named:
            raise InputError("add at least one plan")
        plans = [_plan(r, mechanism, extras, i) for i, r in enumerate(named)]
        if extras.assignment == "cheapest" and len(plans) > 1:
            assignment = {"method": "cheapest"}
        elif extras.assignment == "single" or len(plans) == 1:
            assignment = {"method": "single", "default": plans[0]["name"]}
        else:
            assignment = {"method": "current_plan", "default": plans[-1]["name"]}
    for plan in plans:
        _add_extras(plan, extras)
    return {"name": name.strip() or MECHANISMS[mechanism], "currency": currency, "assignment": assignment, "plans": plans}


def _add_extras(plan: dict[str, Any], extras: Extras) -> None:
    minimum = _number(extras.minimum, "minimum per month")
    if minimum:
        plan["minimum"] = {"amount": _text(minimum), "period_months": 1}
    blocked = plan.get("credits", {}).get("on_exhausted") == "block"
    if extras.cap_measure and not blocked:  # credits that block when used up are a cap already
        limit = _number(extras.cap_limit, "cap")
        if limit is None:
            raise InputError("set the cap's limit, or choose no cap")
        if extras.cap_measure == "tokens":
            plan["cap"] = {"measure": "tokens", "limit": _text(limit * MILLION)}
        else:
            plan["cap"] = {"measure": extras.cap_measure, "limit": _text(limit)}
