"""Pricing designs as plain dataclasses, saved and loaded as YAML or JSON (one file per scenario).

A `Scenario` is a set of `Plan`s plus an `Assignment` saying which customer gets which plan.
A `Plan` combines any of these components (all optional; their charges add up):

- `base_fee`: a flat monthly subscription (unlimited use unless another component limits it);
- `seats`: a price per seat beyond the included seats (seat counts from the customers table);
- `allocation`: tokens included per month, overage priced per 1M tokens;
- `meters`: metered prices with Stripe's exact semantics (per-unit, package via
  `transform_quantity`, graduated or volume `tiers`);
- `payg`: pay-as-you-go, as cost-plus `markup_pct` on AI cost or a list price per 1M tokens by class;
- `credits`: a credit system (included credits, burn rules, rollover/expiry, top-up packs);
- `minimum`: a minimum commitment per period with a true-up charge;
- `cap`: a hard cap (usage beyond it is not served).

Units: amounts written in major units of the scenario's currency (`"99.00"`) everywhere except in
the Stripe-shaped fields of `meters` (`unit_amount_decimal`, `flat_amount`), which are minor units
exactly as in the Stripe API. Numbers are parsed as `Decimal` from the file's text (YAML and JSON
floats never pass through binary floating point). Validation errors name the field, e.g.
`plans[1] (Pro).meters[0].tiers[2].up_to: ...`.

Limits (checked before any conversion, so hostile files fail fast with the field's name): an
amount (fee, price, Stripe unit or flat amount) is at most 10^12 in its field's unit; a whole
number (tokens, requests, seats, credits, tier bounds, months) at most 10^15; other numbers
(markup_pct, rule bounds, cap limits, burn rates) at most 10^15; at most 18 decimal places; a
number written with more than 40 characters is refused. A file must be UTF-8 text and not
nested deeper than the parser's recursion limit.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields, is_dataclass
from decimal import Decimal, InvalidOperation
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import yaml

from ..errors import InputError
from ..money import minor_unit_exponent

__all__ = [
    "PlanError",
    "MEASURES",
    "CAP_MEASURES",
    "TOKEN_CLASSES",
    "Tier",
    "TransformQuantity",
    "Meter",
    "Seats",
    "Allocation",
    "Payg",
    "BurnRule",
    "CreditPack",
    "Credits",
    "Minimum",
    "Cap",
    "Plan",
    "Rule",
    "Assignment",
    "Scenario",
    "scenario_from_dict",
    "scenario_to_dict",
    "load_scenario",
    "save_scenario",
    "loads_scenario",
    "dumps_scenario",
    "decode_plan_bytes",
    "MAX_AMOUNT",
    "MAX_QUANTITY",
]

# Usage measures a component can price or limit (per customer per month).
MEASURES = (
    "tokens",  # input_tokens + output_tokens
    "input_tokens",
    "uncached_input_tokens",  # input_tokens - cached_input_tokens
    "cached_input_tokens",
    "output_tokens",
    "reasoning_tokens",
    "requests",
    "seats",
)
CAP_MEASURES = ("tokens", "input_tokens", "output_tokens", "requests", "ai_cost_usd")
# Token classes for list prices and credit burn: uncached input, cached input, output (reasoning
# tokens are part of output).
TOKEN_CLASSES = ("input", "cached_input", "output")
ASSIGNMENT_METHODS = ("current_plan", "rule", "cheapest", "single")

# Limits on numbers in a plan file, checked before any conversion, so a hostile file (an exponent
# bomb such as 1e999999999, a 5,000-digit integer) is rejected with the field's name instead of
# hanging or overflowing. They keep every simulated amount exact and far inside what the engine
# and the store represent (int64 minor units / pico-dollars for realistic books).
MAX_AMOUNT = Decimal(10) ** 12  # any price, fee or amount, in its field's unit (major or Stripe minor units)
MAX_QUANTITY = 10**15  # tokens, requests, seats, credits, tier bounds, months, other whole numbers
MAX_NUMBER = Decimal(10) ** 15  # other decimal values (markup_pct, rule min/max, cap limits, burn rates)
MAX_DECIMAL_PLACES = 18  # digits after the decimal point in any number
MAX_NUMBER_CHARS = 40  # a number written with more characters is refused before it is parsed
_QUANTITY_DIGITS = len(str(MAX_QUANTITY))


class PlanError(InputError):
    """A plan file or plan value is invalid; `field` is the dotted path of the bad value."""

    def __init__(self, field_path: str, message: str) -> None:
        super().__init__(f"{field_path}: {message}" if field_path else message)
        self.field = field_path
        self.message = message


# ---------------------------------------------------------------------------------------------
# Components
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tier:
    """One Stripe price tier. `up_to` None means "inf". Amounts in minor units (Stripe)."""

    up_to: int | None
    unit_amount_decimal: Decimal = Decimal(0)
    flat_amount: Decimal = Decimal(0)


@dataclass(frozen=True)
class TransformQuantity:
    """Stripe package pricing: quantity / divide_by, rounded `up` or `down` before pricing."""

    divide_by: int
    round: str = "up"


@dataclass(frozen=True)
class Meter:
    """A metered price on one usage measure, computed exactly as Stripe computes the Price.

    `billing_scheme` "per_unit": quantity (after `transform_quantity`) x `unit_amount_decimal`.
    `billing_scheme` "tiered": `tiers_mode` "graduated" or "volume" over `tiers`.
    Stripe does not allow `transform_quantity` together with tiers; neither does this.
    """

    name: str
    measure: str
    billing_scheme: str = "per_unit"
    unit_amount_decimal: Decimal | None = None
    tiers_mode: str | None = None
    tiers: tuple[Tier, ...] = ()
    transform_quantity: TransformQuantity | None = None


@dataclass(frozen=True)
class Seats:
    """`price` per seat per month beyond `included` seats; customers with no seat count use
    `default_seats`."""

    price: Decimal
    included: int = 0
    default_seats: int = 1


@dataclass(frozen=True)
class Allocation:
    """`included` units of `measure` per month (per seat when `per_seat`), overage per 1M units."""

    included: int
    overage_per_1m: Decimal
    measure: str = "tokens"
    per_seat: bool = False


@dataclass(frozen=True)
class Payg:
    """Pay as you go: `markup_pct` on AI cost (cost-plus), and/or list prices per 1M tokens by
    class (`input` = uncached input, `cached_input`, `output`)."""

    markup_pct: Decimal | None = None
    per_1m: dict[str, Decimal] = field(default_factory=dict)


@dataclass(frozen=True)
class BurnRule:
    """Credits burned by usage that matches `match` (a model or feature name; `*` wildcards).

    Burn = sum over classes of tokens / 1000 x `per_1k[class]` + requests x `per_request`
    + AI cost (USD) x `cost_multiplier` / credit value.
    """

    match: str = "*"
    per_1k: dict[str, Decimal] = field(default_factory=dict)
    per_request: Decimal = Decimal(0)
    cost_multiplier: Decimal | None = None


@dataclass(frozen=True)
class CreditPack:
    """A top-up pack: `credits` credits for `price` (major units)."""

    credits: int
    price: Decimal


@dataclass(frozen=True)
class Credits:
    """A credit system. See the module docs of `walleta.simulator.credits` for the exact rules."""

    burn: tuple[BurnRule, ...]
    burn_by: str = "model"  # model | feature | total
    included: int = 0
    included_per_seat: bool = False
    included_expiry_months: int = 1  # 1 = included credits expire at the end of their month
    topup: str = "packs"  # packs | per_credit | none
    pack: CreditPack | None = None
    price_per_credit: Decimal | None = None  # for per_credit top-ups (or credits_per_dollar)
    purchased_expiry_months: int | None = None  # None = purchased credits never expire
    on_exhausted: str = "topup"  # topup | block | overage
    overage_per_credit: Decimal | None = None
    credit_value_usd: Decimal | None = None  # AI-cost dollars one credit stands for (cost_multiplier)


@dataclass(frozen=True)
class Minimum:
    """A minimum commitment of `amount` per `period_months`; a shortfall is charged as true-up."""

    amount: Decimal
    period_months: int = 1


@dataclass(frozen=True)
class Cap:
    """A hard cap: usage of `measure` beyond `limit` per month (per seat when `per_seat`) is not served."""

    measure: str
    limit: Decimal
    per_seat: bool = False


@dataclass(frozen=True)
class Plan:
    """One priced offer; its components' charges add up, then the minimum applies."""

    name: str
    description: str = ""
    base_fee: Decimal = Decimal(0)
    seats: Seats | None = None
    allocation: Allocation | None = None
    meters: tuple[Meter, ...] = ()
    payg: Payg | None = None
    credits: Credits | None = None
    minimum: Minimum | None = None
    cap: Cap | None = None


@dataclass(frozen=True)
class Rule:
    """A plan-assignment rule: the first rule whose conditions all hold gives the plan.

    `current_plan`: the customer's current plan is one of these; `measure` with `min`/`max`:
    the customer's average monthly usage of that measure over the simulated months is within
    [min, max); `seats_min`/`seats_max` likewise on seats.
    """

    plan: str
    current_plan: tuple[str, ...] = ()
    measure: str | None = None
    min: Decimal | None = None
    max: Decimal | None = None
    seats_min: int | None = None
    seats_max: int | None = None


@dataclass(frozen=True)
class Assignment:
    """Which plan each customer gets: by `current_plan` (through `map`), by `rule`s, the
    `cheapest` plan for the customer among `candidates`, or one `single` plan for everybody."""

    method: str = "current_plan"
    map: dict[str, str] = field(default_factory=dict)
    default: str | None = None
    rules: tuple[Rule, ...] = ()
    candidates: tuple[str, ...] = ()


@dataclass(frozen=True)
class Scenario:
    """A pricing design to simulate: plans, how customers are assigned, and the currency."""

    name: str
    plans: tuple[Plan, ...]
    assignment: Assignment = Assignment()
    currency: str = "USD"
    description: str = ""

    def plan(self, name: str) -> Plan:
        """The plan called `name` (PlanError if there is none)."""
        for plan in self.plans:
            if plan.name == name:
                return plan
        raise PlanError("plans", f"no plan named {name!r} (plans: {', '.join(p.name for p in self.plans)})")

    def replace_plan(self, plan: Plan) -> "Scenario":
        """A copy with the plan of the same name replaced."""
        from dataclasses import replace

        return replace(self, plans=tuple(plan if p.name == plan.name else p for p in self.plans))


# ---------------------------------------------------------------------------------------------
# Parsing with field paths
# ---------------------------------------------------------------------------------------------


def _parse_number(value: Any, where: str, what: str) -> Decimal:
    """A number (int, Decimal or text) as a Decimal, refusing text too long to be a sane number."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, int):
        if value.bit_length() > 3 * MAX_NUMBER_CHARS:
            raise PlanError(where, f"number too large (more than {MAX_NUMBER_CHARS} digits)")
        return Decimal(value)
    text = str(value).strip()
    if len(text) > MAX_NUMBER_CHARS:
        shown = text if len(text) <= 30 else text[:27] + "..."
        raise PlanError(where, f"{what}, got {shown!r} (more than {MAX_NUMBER_CHARS} characters)")
    try:
        return Decimal(text)
    except InvalidOperation as exc:
        raise PlanError(where, f"{what}, got {value!r}") from exc


def _check_size(number: Decimal, where: str, maximum: Decimal) -> Decimal:
    """Refuse numbers beyond `maximum` or with more than MAX_DECIMAL_PLACES decimals (no arithmetic
    on the value before the check: an exponent bomb is caught from its exponent)."""
    if number.is_zero():
        return number
    if number.adjusted() >= maximum.adjusted() + 1 or abs(number) > maximum:
        raise PlanError(where, f"too large: at most {_plain_limit(maximum)}, got {_short(number)}")
    _sign, digits, exponent = number.as_tuple()
    trailing_zeros = len(digits) - len("".join(map(str, digits)).rstrip("0"))
    if int(exponent) + trailing_zeros < -MAX_DECIMAL_PLACES:
        raise PlanError(where, f"too many decimal places (at most {MAX_DECIMAL_PLACES}), got {_short(number)}")
    return number


def _plain_limit(maximum: Decimal) -> str:
    return f"10^{maximum.adjusted()}" if maximum == Decimal(10) ** maximum.adjusted() else str(maximum)


def _short(number: Decimal) -> str:
    text = str(number)
    return text if len(text) <= 30 else text[:27] + "..."


def _decimal(value: Any, where: str, *, minimum: Decimal | None = Decimal(0), maximum: Decimal = MAX_NUMBER) -> Decimal:
    if isinstance(value, bool) or value is None:
        raise PlanError(where, f"must be a number, got {value!r}")
    if isinstance(value, float):
        raise PlanError(where, f"write the number as text or an exact decimal, not a binary float ({value!r})")
    result = _parse_number(value, where, "not a number")
    if not result.is_finite():
        raise PlanError(where, f"must be a finite number, got {value!r}")
    if minimum is not None and result < minimum:
        raise PlanError(where, f"must be >= {minimum}, got {_short(result)}")
    return _check_size(result, where, maximum)


def _amount(value: Any, where: str, *, minimum: Decimal | None = Decimal(0)) -> Decimal:
    """A price, fee or amount: a number of at most MAX_AMOUNT."""
    return _decimal(value, where, minimum=minimum, maximum=MAX_AMOUNT)


def _int(value: Any, where: str, *, minimum: int = 0) -> int:
    if isinstance(value, bool) or value is None:
        raise PlanError(where, f"must be a whole number, got {value!r}")
    text = value.replace("_", "") if isinstance(value, str) else repr(value) if isinstance(value, float) else value
    parsed = _parse_number(text, where, "must be a whole number")
    if not parsed.is_finite():
        raise PlanError(where, f"must be a whole number, got {value!r}")
    if not parsed.is_zero() and (parsed.adjusted() >= _QUANTITY_DIGITS or abs(parsed) > MAX_QUANTITY):
        if parsed < minimum:
            raise PlanError(where, f"must be >= {minimum}, got {_short(parsed)}")
        raise PlanError(where, f"too large: at most 10^{_QUANTITY_DIGITS - 1}, got {_short(parsed)}")
    if parsed != parsed.to_integral_value():
        raise PlanError(where, f"must be a whole number, got {value!r}")
    number = int(parsed)
    if number < minimum:
        raise PlanError(where, f"must be >= {minimum}, got {number}")
    return number


def _bool(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    raise PlanError(where, f"must be true or false, got {value!r}")


def _text(value: Any, where: str, *, allowed: tuple[str, ...] | None = None) -> str:
    if not isinstance(value, str) or not value.strip():
        raise PlanError(where, f"must be non-empty text, got {value!r}")
    text = value.strip()
    if allowed is not None and text not in allowed:
        raise PlanError(where, f"must be one of {', '.join(allowed)}; got {text!r}")
    return text


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise PlanError(where, f"must be a mapping, got {type(value).__name__}")
    return value


def _list(value: Any, where: str) -> list[Any]:
    """A YAML/JSON list (a missing or empty value: [])."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise PlanError(where, f"must be a list, got {type(value).__name__}")
    return value


def _check_keys(data: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        prefix = f"{where}." if where else ""
        raise PlanError(f"{prefix}{unknown[0]}", f"unknown field (allowed: {', '.join(sorted(allowed))})")


def _minor_exact(amount: Decimal, currency: str, where: str) -> Decimal:
    exponent = minor_unit_exponent(currency)
    if amount != amount.quantize(Decimal(1).scaleb(-exponent)):
        raise PlanError(where, f"{amount} has more than {exponent} decimal places for {currency}")
    return amount


def _stripe_decimal(value: Any, where: str) -> Decimal:
    amount = _amount(value, where)
    if amount != amount.quantize(Decimal("1e-12")):
        raise PlanError(where, f"Stripe accepts at most 12 decimal places, got {amount}")
    return amount


def _tier(data: Any, where: str, previous: int | None) -> Tier:
    data = _mapping(data, where)
    _check_keys(data, {"up_to", "unit_amount_decimal", "unit_amount", "flat_amount", "flat_amount_decimal"}, where)
    if "up_to" not in data:
        raise PlanError(f"{where}.up_to", "is required (a whole number, or inf for the last tier)")
    raw = data["up_to"]
    up_to = None if raw in (None, "inf") else _int(raw, f"{where}.up_to", minimum=1)
    if up_to is not None and previous is not None and up_to <= previous:
        raise PlanError(f"{where}.up_to", f"must be greater than the previous tier's up_to ({previous})")
    if "unit_amount" in data and "unit_amount_decimal" in data:
        raise PlanError(f"{where}.unit_amount", "set unit_amount or unit_amount_decimal, not both")
    if "flat_amount" in data and "flat_amount_decimal" in data:
        raise PlanError(f"{where}.flat_amount", "set flat_amount or flat_amount_decimal, not both")
    unit = (
        _amount(_int(data["unit_amount"], f"{where}.unit_amount"), f"{where}.unit_amount")
        if "unit_amount" in data
        else _stripe_decimal(data.get("unit_amount_decimal", 0), f"{where}.unit_amount_decimal")
    )
    flat = (
        _amount(_int(data["flat_amount"], f"{where}.flat_amount"), f"{where}.flat_amount")
        if "flat_amount" in data
        else _stripe_decimal(data.get("flat_amount_decimal", 0), f"{where}.flat_amount_decimal")
    )
    return Tier(up_to=up_to, unit_amount_decimal=unit, flat_amount=flat)


def _meter(data: Any, where: str) -> Meter:
    data = _mapping(data, where)
    allowed = {"name", "measure", "billing_scheme", "unit_amount_decimal", "unit_amount", "tiers_mode", "tiers", "transform_quantity"}
    _check_keys(data, allowed, where)
    measure = _text(data.get("measure"), f"{where}.measure", allowed=MEASURES)
    scheme = _text(data.get("billing_scheme", "tiered" if "tiers" in data else "per_unit"), f"{where}.billing_scheme", allowed=("per_unit", "tiered"))
    name = _text(data.get("name", measure), f"{where}.name")
    transform = None
    if data.get("transform_quantity") is not None:
        spot = f"{where}.transform_quantity"
        raw = _mapping(data["transform_quantity"], spot)
        _check_keys(raw, {"divide_by", "round"}, spot)
        transform = TransformQuantity(
            divide_by=_int(raw.get("divide_by"), f"{spot}.divide_by", minimum=1),
            round=_text(raw.get("round", "up"), f"{spot}.round", allowed=("up", "down")),
        )
    if scheme == "per_unit":
        if "tiers" in data or "tiers_mode" in data:
            raise PlanError(f"{where}.tiers", "tiers need billing_scheme: tiered")
        if "unit_amount" in data:
            unit = _amount(_int(data["unit_amount"], f"{where}.unit_amount"), f"{where}.unit_amount")
        elif "unit_amount_decimal" in data:
            unit = _stripe_decimal(data["unit_amount_decimal"], f"{where}.unit_amount_decimal")
        else:
            raise PlanError(f"{where}.unit_amount_decimal", "is required for billing_scheme per_unit")
        return Meter(name=name, measure=measure, billing_scheme=scheme, unit_amount_decimal=unit, transform_quantity=transform)
    if transform is not None:
        raise PlanError(f"{where}.transform_quantity", "Stripe does not allow transform_quantity with tiers")
    if "unit_amount_decimal" in data or "unit_amount" in data:
        raise PlanError(f"{where}.unit_amount_decimal", "a tiered price sets its amounts in tiers")
    mode = _text(data.get("tiers_mode"), f"{where}.tiers_mode", allowed=("graduated", "volume"))
    raw_tiers = data.get("tiers")
    if not isinstance(raw_tiers, list) or not raw_tiers:
        raise PlanError(f"{where}.tiers", "must be a non-empty list")
    tiers: list[Tier] = []
    previous: int | None = None
    for index, raw in enumerate(raw_tiers):
        spot = f"{where}.tiers[{index}]"
        if previous is None and tiers:
            raise PlanError(f"{spot}.up_to", "no tier may follow the inf tier")
        tier = _tier(raw, spot, previous)
        tiers.append(tier)
        previous = tier.up_to
    if tiers[-1].up_to is not None:
        raise PlanError(f"{where}.tiers[{len(tiers) - 1}].up_to", "the last tier must be up_to: inf (as Stripe requires)")
    return Meter(name=name, measure=measure, billing_scheme=scheme, tiers_mode=mode, tiers=tuple(tiers))


def _per_class(data: Any, where: str, *, maximum: Decimal = MAX_NUMBER) -> dict[str, Decimal]:
    data = _mapping(data, where)
    _check_keys(data, set(TOKEN_CLASSES), where)
    return {k: _decimal(v, f"{where}.{k}", maximum=maximum) for k, v in data.items()}


def _credits(data: Any, where: str, currency: str) -> Credits:
    data = _mapping(data, where)
    allowed = {
        "burn", "burn_by", "included", "included_per_seat", "included_expiry_months", "topup", "pack",
        "price_per_credit", "credits_per_dollar", "purchased_expiry_months", "on_exhausted",
        "overage_per_credit", "credit_value_usd",
    }
    _check_keys(data, allowed, where)
    burn_by = _text(data.get("burn_by", "model"), f"{where}.burn_by", allowed=("model", "feature", "total"))
    raw_rules = data.get("burn")
    if not isinstance(raw_rules, list) or not raw_rules:
        raise PlanError(f"{where}.burn", "must be a non-empty list of burn rules")
    rules = []
    for index, raw in enumerate(raw_rules):
        spot = f"{where}.burn[{index}]"
        raw = _mapping(raw, spot)
        _check_keys(raw, {"match", "per_1k", "per_request", "cost_multiplier"}, spot)
        rule = BurnRule(
            match=_text(raw.get("match", "*"), f"{spot}.match"),
            per_1k=_per_class(raw.get("per_1k", {}), f"{spot}.per_1k"),
            per_request=_decimal(raw.get("per_request", 0), f"{spot}.per_request"),
            cost_multiplier=None if raw.get("cost_multiplier") is None else _decimal(raw["cost_multiplier"], f"{spot}.cost_multiplier"),
        )
        if burn_by == "total" and rule.match != "*":
            raise PlanError(f"{spot}.match", "burn_by: total allows only the rule '*'")
        rules.append(rule)
    if burn_by == "total" and len(rules) != 1:
        raise PlanError(f"{where}.burn", "burn_by: total takes exactly one rule")
    topup = _text(data.get("topup", "packs" if "pack" in data else ("per_credit" if ("price_per_credit" in data or "credits_per_dollar" in data) else "none")), f"{where}.topup", allowed=("packs", "per_credit", "none"))
    pack = None
    if data.get("pack") is not None:
        spot = f"{where}.pack"
        raw = _mapping(data["pack"], spot)
        _check_keys(raw, {"credits", "price"}, spot)
        pack = CreditPack(
            credits=_int(raw.get("credits"), f"{spot}.credits", minimum=1),
            price=_minor_exact(_amount(raw.get("price"), f"{spot}.price"), currency, f"{spot}.price"),
        )
    if "price_per_credit" in data and "credits_per_dollar" in data:
        raise PlanError(f"{where}.price_per_credit", "set price_per_credit or credits_per_dollar, not both")
    price_per_credit = None
    if "price_per_credit" in data:
        price_per_credit = _amount(data["price_per_credit"], f"{where}.price_per_credit")
    elif "credits_per_dollar" in data:
        per_dollar = _decimal(data["credits_per_dollar"], f"{where}.credits_per_dollar")
        if per_dollar <= 0:
            raise PlanError(f"{where}.credits_per_dollar", "must be > 0")
        price_per_credit = Decimal(1) / per_dollar
        if price_per_credit * per_dollar != 1:
            raise PlanError(f"{where}.credits_per_dollar", f"1/{per_dollar} is not an exact decimal; use price_per_credit")
    if topup == "packs" and pack is None:
        raise PlanError(f"{where}.pack", "is required when topup is packs")
    if topup == "per_credit" and price_per_credit is None:
        raise PlanError(f"{where}.price_per_credit", "is required when topup is per_credit")
    on_exhausted = _text(data.get("on_exhausted", "topup" if topup != "none" else "block"), f"{where}.on_exhausted", allowed=("topup", "block", "overage"))
    if on_exhausted == "topup" and topup == "none":
        raise PlanError(f"{where}.on_exhausted", "topup needs a pack or a price_per_credit")
    overage = None
    if data.get("overage_per_credit") is not None:
        overage = _amount(data["overage_per_credit"], f"{where}.overage_per_credit")
    if on_exhausted == "overage" and overage is None:
        raise PlanError(f"{where}.overage_per_credit", "is required when on_exhausted is overage")
    value_usd = None
    if data.get("credit_value_usd") is not None:
        value_usd = _amount(data["credit_value_usd"], f"{where}.credit_value_usd")
        if value_usd <= 0:
            raise PlanError(f"{where}.credit_value_usd", "must be > 0")
    if any(r.cost_multiplier is not None for r in rules) and value_usd is None:
        if currency == "USD" and price_per_credit is not None:
            value_usd = price_per_credit
        elif currency == "USD" and pack is not None:
            value_usd = pack.price / pack.credits
        else:
            raise PlanError(f"{where}.credit_value_usd", "is required for cost_multiplier burn (the AI-cost dollars one credit stands for)")
    purchased_expiry = data.get("purchased_expiry_months")
    return Credits(
        burn=tuple(rules),
        burn_by=burn_by,
        included=_int(data.get("included", 0), f"{where}.included"),
        included_per_seat=_bool(data.get("included_per_seat", False), f"{where}.included_per_seat"),
        included_expiry_months=_int(data.get("included_expiry_months", 1), f"{where}.included_expiry_months", minimum=1),
        topup=topup,
        pack=pack,
        price_per_credit=price_per_credit,
        purchased_expiry_months=None if purchased_expiry is None else _int(purchased_expiry, f"{where}.purchased_expiry_months", minimum=1),
        on_exhausted=on_exhausted,
        overage_per_credit=overage,
        credit_value_usd=value_usd,
    )


def _plan(data: Any, where: str, currency: str) -> Plan:
    data = _mapping(data, where)
    allowed = {"name", "description", "base_fee", "seats", "allocation", "meters", "payg", "credits", "minimum", "cap"}
    name = _text(data.get("name"), f"{where}.name")
    where = f"{where} ({name})"
    _check_keys(data, allowed, where)
    seats = None
    if data.get("seats") is not None:
        spot = f"{where}.seats"
        raw = _mapping(data["seats"], spot)
        _check_keys(raw, {"price", "included", "default_seats"}, spot)
        seats = Seats(
            price=_minor_exact(_amount(raw.get("price"), f"{spot}.price"), currency, f"{spot}.price"),
            included=_int(raw.get("included", 0), f"{spot}.included"),
            default_seats=_int(raw.get("default_seats", 1), f"{spot}.default_seats"),
        )
    allocation = None
    if data.get("allocation") is not None:
        spot = f"{where}.allocation"
        raw = _mapping(data["allocation"], spot)
        _check_keys(raw, {"included", "included_tokens", "overage_per_1m", "measure", "per_seat"}, spot)
        included = raw.get("included", raw.get("included_tokens"))
        allocation = Allocation(
            included=_int(included, f"{spot}.included"),
            overage_per_1m=_amount(raw.get("overage_per_1m"), f"{spot}.overage_per_1m"),
            measure=_text(raw.get("measure", "tokens"), f"{spot}.measure", allowed=MEASURES),
            per_seat=_bool(raw.get("per_seat", False), f"{spot}.per_seat"),
        )
    meters_raw = data.get("meters", [])
    if not isinstance(meters_raw, list):
        raise PlanError(f"{where}.meters", "must be a list")
    meters = tuple(_meter(m, f"{where}.meters[{i}]") for i, m in enumerate(meters_raw))
    payg = None
    if data.get("payg") is not None:
        spot = f"{where}.payg"
        raw = _mapping(data["payg"], spot)
        _check_keys(raw, {"markup_pct", "per_1m"}, spot)
        markup = None if raw.get("markup_pct") is None else _decimal(raw["markup_pct"], f"{spot}.markup_pct", minimum=Decimal(-100))
        payg = Payg(markup_pct=markup, per_1m=_per_class(raw.get("per_1m", {}), f"{spot}.per_1m", maximum=MAX_AMOUNT))
        if payg.markup_pct is None and not payg.per_1m:
            raise PlanError(spot, "set markup_pct and/or per_1m")
    credits = None if data.get("credits") is None else _credits(data["credits"], f"{where}.credits", currency)
    minimum = None
    if data.get("minimum") is not None:
        spot = f"{where}.minimum"
        raw = data["minimum"]
        if not isinstance(raw, dict):
            raw = {"amount": raw}
        _check_keys(raw, {"amount", "period_months"}, spot)
        minimum = Minimum(
            amount=_minor_exact(_amount(raw.get("amount"), f"{spot}.amount"), currency, f"{spot}.amount"),
            period_months=_int(raw.get("period_months", 1), f"{spot}.period_months", minimum=1),
        )
    cap = None
    if data.get("cap") is not None:
        spot = f"{where}.cap"
        raw = _mapping(data["cap"], spot)
        _check_keys(raw, {"measure", "limit", "per_seat"}, spot)
        measure = _text(raw.get("measure"), f"{spot}.measure", allowed=CAP_MEASURES)
        limit = _decimal(raw.get("limit"), f"{spot}.limit")
        if measure != "ai_cost_usd" and limit != limit.to_integral_value():
            raise PlanError(f"{spot}.limit", f"a {measure} limit must be a whole number")
        cap = Cap(measure=measure, limit=limit, per_seat=_bool(raw.get("per_seat", False), f"{spot}.per_seat"))
        if credits is not None and credits.on_exhausted == "block":
            raise PlanError(spot, "a plan whose credits block when exhausted already has a cap; use one or the other")
    return Plan(
        name=name,
        description=str(data.get("description", "") or ""),
        base_fee=_minor_exact(_amount(data.get("base_fee", 0), f"{where}.base_fee"), currency, f"{where}.base_fee"),
        seats=seats,
        allocation=allocation,
        meters=meters,
        payg=payg,
        credits=credits,
        minimum=minimum,
        cap=cap,
    )


def _assignment(data: Any, plans: tuple[Plan, ...]) -> Assignment:
    where = "assignment"
    names = [p.name for p in plans]
    if data is None:
        return Assignment(method="single" if len(plans) == 1 else "current_plan", default=names[0] if len(plans) == 1 else None)
    data = _mapping(data, where)
    _check_keys(data, {"method", "map", "default", "rules", "candidates"}, where)
    method = _text(data.get("method", "current_plan"), f"{where}.method", allowed=ASSIGNMENT_METHODS)

    def plan_name(value: Any, spot: str) -> str:
        text = _text(value, spot)
        if text not in names:
            raise PlanError(spot, f"no plan named {text!r} (plans: {', '.join(names)})")
        return text

    mapping = {}
    for key, value in _mapping(data.get("map", {}), f"{where}.map").items():
        mapping[str(key)] = plan_name(value, f"{where}.map.{key}")
    default = None if data.get("default") is None else plan_name(data["default"], f"{where}.default")
    rules = []
    for index, raw in enumerate(_list(data.get("rules"), f"{where}.rules")):
        spot = f"{where}.rules[{index}]"
        raw = _mapping(raw, spot)
        _check_keys(raw, {"plan", "current_plan", "measure", "min", "max", "seats_min", "seats_max"}, spot)
        current = raw.get("current_plan", [])
        current = (current,) if isinstance(current, str) else tuple(str(c) for c in current)
        rules.append(
            Rule(
                plan=plan_name(raw.get("plan"), f"{spot}.plan"),
                current_plan=current,
                measure=None if raw.get("measure") is None else _text(raw["measure"], f"{spot}.measure", allowed=MEASURES),
                min=None if raw.get("min") is None else _decimal(raw["min"], f"{spot}.min"),
                max=None if raw.get("max") is None else _decimal(raw["max"], f"{spot}.max"),
                seats_min=None if raw.get("seats_min") is None else _int(raw["seats_min"], f"{spot}.seats_min"),
                seats_max=None if raw.get("seats_max") is None else _int(raw["seats_max"], f"{spot}.seats_max"),
            )
        )
        if (rules[-1].min is not None or rules[-1].max is not None) and rules[-1].measure is None:
            raise PlanError(f"{spot}.measure", "is required with min/max")
    candidates = tuple(plan_name(c, f"{where}.candidates[{i}]") for i, c in enumerate(_list(data.get("candidates"), f"{where}.candidates")))
    if method == "rule" and not rules:
        raise PlanError(f"{where}.rules", "method rule needs at least one rule")
    if method == "single" and default is None:
        if len(plans) != 1:
            raise PlanError(f"{where}.default", "method single needs the plan to use as default")
        default = names[0]
    return Assignment(method=method, map=mapping, default=default, rules=tuple(rules), candidates=candidates)


def scenario_from_dict(data: Any) -> Scenario:
    """Build and validate a Scenario from plain data (as read from YAML or JSON).

    A mapping with `plans` is a scenario; a mapping with `name` and plan fields but no `plans`
    is read as a scenario of that one plan (assigned to every customer).
    """
    data = _mapping(data, "")
    if "plans" not in data:
        currency = str(data.get("currency", "USD")).upper()
        plan_data = {k: v for k, v in data.items() if k != "currency"}
        plan = _plan(plan_data, "plans[0]", currency)
        return Scenario(name=plan.name, plans=(plan,), assignment=Assignment(method="single", default=plan.name), currency=currency)
    _check_keys(data, {"name", "description", "currency", "plans", "assignment"}, "")
    currency = _text(data.get("currency", "USD"), "currency").upper()
    if len(currency) != 3:
        raise PlanError("currency", f"must be a 3-letter ISO code, got {currency!r}")
    raw_plans = data.get("plans")
    if not isinstance(raw_plans, list) or not raw_plans:
        raise PlanError("plans", "must be a non-empty list")
    plans = tuple(_plan(p, f"plans[{i}]", currency) for i, p in enumerate(raw_plans))
    seen: set[str] = set()
    for index, plan in enumerate(plans):
        if plan.name in seen:
            raise PlanError(f"plans[{index}].name", f"duplicate plan name {plan.name!r}")
        seen.add(plan.name)
    return Scenario(
        name=_text(data.get("name", plans[0].name), "name"),
        description=str(data.get("description", "") or ""),
        currency=currency,
        plans=plans,
        assignment=_assignment(data.get("assignment"), plans),
    )


# ---------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """Dataclass -> plain dict: Decimals as text, None and empty values left out."""
    if isinstance(value, Decimal):
        return format(value.normalize(), "f") if value == value.to_integral_value() else format(value, "f")
    if is_dataclass(value):
        out = {}
        for f in fields(value):
            item = getattr(value, f.name)
            if item is None or item == () or item == {} or (f.name == "description" and item == ""):
                continue
            out[f.name] = _plain(item)
        return out
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def scenario_to_dict(scenario: Scenario) -> dict[str, Any]:
    """A Scenario as plain data that `scenario_from_dict` reads back to an equal Scenario."""
    data = _plain(scenario)
    for plan in data["plans"]:
        for meter in plan.get("meters", []):
            for tier in meter.get("tiers", []):
                tier["up_to"] = tier.get("up_to", "inf")
    return data


class _DecimalLoader(yaml.SafeLoader):
    """YAML loader that reads floats as exact Decimals (from their text)."""


def _construct_decimal(loader: yaml.SafeLoader, node: yaml.Node) -> Decimal:
    text = str(loader.construct_scalar(node)).replace("_", "")  # type: ignore[arg-type]
    try:
        return Decimal(text)
    except InvalidOperation as exc:  # .inf / .nan
        raise PlanError("", f"not a finite number: {text}") from exc


def _construct_int(loader: yaml.SafeLoader, node: yaml.Node) -> int | Decimal:
    """YAML integers as ints; a very long one becomes a Decimal (which the field check then
    refuses with the field's name) instead of a conversion that fails or takes forever."""
    text = str(loader.construct_scalar(node)).replace("_", "")  # type: ignore[arg-type]
    if len(text) > MAX_NUMBER_CHARS:
        try:
            return Decimal(text)
        except InvalidOperation:
            raise PlanError("", f"line {node.start_mark.line + 1}: number too long ({len(text)} characters)") from None
    return yaml.SafeLoader.construct_yaml_int(loader, node)


def _json_int(text: str) -> int | Decimal:
    """JSON integers as ints; a very long one as a Decimal (refused later, with its field)."""
    return int(text) if len(text) <= MAX_NUMBER_CHARS else Decimal(text)


_DecimalLoader.add_constructor("tag:yaml.org,2002:float", _construct_decimal)
_DecimalLoader.add_constructor("tag:yaml.org,2002:int", _construct_int)


def loads_scenario(text: str, *, fmt: str = "yaml") -> Scenario:
    """Parse a scenario from YAML or JSON text (floats are read as exact Decimals).

    Raises PlanError (an InputError) for anything wrong with the text: not YAML/JSON, nested too
    deeply, a number out of range (see MAX_AMOUNT, MAX_QUANTITY), an invalid field.
    """
    try:
        if fmt == "json":
            data = json.loads(text, parse_float=Decimal, parse_int=_json_int)
        else:
            data = yaml.load(text, Loader=_DecimalLoader)  # noqa: S506 - a SafeLoader subclass
        return scenario_from_dict(data)
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        raise PlanError("", f"not valid {fmt.upper()}: {exc}") from exc
    except RecursionError:
        raise PlanError("", f"not a plan file: its {fmt.upper()} is nested too deeply") from None


def dumps_scenario(scenario: Scenario, *, fmt: str = "yaml") -> str:
    """A scenario as YAML or JSON text."""
    data = scenario_to_dict(scenario)
    if fmt == "json":
        return json.dumps(data, indent=2) + "\n"
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def _format_of(path: Path) -> str:
    return "json" if path.suffix.lower() == ".json" else "yaml"


def decode_plan_bytes(data: bytes, name: str = "") -> str:
    """The text of a plan file's bytes (UTF-8; a byte-order mark is dropped). PlanError naming
    the file when the bytes are not UTF-8 (a binary or wrongly encoded file)."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise PlanError(name, f"not UTF-8 text (invalid byte at position {exc.start}): save the plan file as UTF-8 YAML or JSON") from None


def load_scenario(path: str | Path) -> Scenario:
    """Read a scenario file (.yaml/.yml or .json). PlanError names the file and the field."""
    chosen = Path(path)
    if not chosen.exists():
        raise InputError(f"plan file not found: {chosen}")
    try:
        data = chosen.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read plan file {chosen}: {exc.strerror or exc}") from exc
    text = decode_plan_bytes(data, chosen.name)
    try:
        return loads_scenario(text, fmt=_format_of(chosen))
    except PlanError as exc:
        raise PlanError(f"{chosen.name}: {exc.field}" if exc.field else chosen.name, exc.message) from exc


def save_scenario(scenario: Scenario, path: str | Path) -> Path:
    """Write a scenario to a .yaml/.yml or .json file; returns the path."""
    chosen = Path(path)
    chosen.write_text(dumps_scenario(scenario, fmt=_format_of(chosen)), encoding="utf-8")
    return chosen


def matches(pattern: str, name: str) -> bool:
    """True when a burn-rule pattern (`*` wildcards, case-sensitive) matches a model/feature."""
    return fnmatchcase(name, pattern)
