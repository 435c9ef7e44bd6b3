"""Exact money: integer pico-dollars for AI cost, integer minor units for revenue.

AI cost is an integer number of pico-dollars (1e-12 USD). The price catalog is precise to
$0.000001 per 1M tokens, which is exactly 1 pico-dollar per token, so the cost of any token count
is an exact integer product and sums of per-event costs equal the cost of the aggregate.
Revenue is an integer in the minor unit of its currency (cents for USD, yen for JPY).
Nothing on the money path is a float; floats appear only when a value is formatted for display.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

from .errors import InputError

__all__ = [
    "PICO_PER_USD",
    "PICO_PER_MICRO",
    "usd_to_pico",
    "pico_to_usd",
    "pico_to_cents",
    "minor_unit_exponent",
    "major_to_minor",
    "minor_to_major",
    "format_usd",
    "ZERO_DECIMAL_CURRENCIES",
    "THREE_DECIMAL_CURRENCIES",
]

PICO_PER_USD = 10**12
PICO_PER_MICRO = 10**6
PICO_PER_CENT = 10**10

# Stripe's list of zero- and three-decimal currencies (reference section 6.7).
ZERO_DECIMAL_CURRENCIES = frozenset(
    "BIF CLP DJF GNF JPY KMF KRW MGA PYG RWF UGX VND VUV XAF XOF XPF".split()
)
THREE_DECIMAL_CURRENCIES = frozenset("BHD JOD KWD OMR TND".split())


def _decimal(value: object) -> Decimal:
    """Parse a number written as text (or an int/Decimal) without going through float."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, bool):
        raise InputError(f"not a number: {value!r}")
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        # Floats reach us from JSON APIs (OpenAI Costs amounts); repr() is the shortest exact
        # round-trip text, which is what the API wrote.
        return Decimal(repr(value))
    try:
        result = Decimal(str(value).strip())
    except InvalidOperation as exc:
        raise InputError(f"not a number: {value!r}") from exc
    if not result.is_finite():
        raise InputError(f"not a finite number: {value!r}")
    return result


def usd_to_pico(value: object, *, rounding: str = ROUND_HALF_EVEN) -> int:
    """Dollars (text, int, Decimal or an API float) -> integer pico-dollars, rounded half-even."""
    return int((_decimal(value) * PICO_PER_USD).to_integral_value(rounding=rounding))


def pico_to_usd(pico: int) -> Decimal:
    """Integer pico-dollars -> exact Decimal dollars."""
    return Decimal(int(pico)) / PICO_PER_USD


def pico_to_cents(pico: int) -> int:
    """Integer pico-dollars -> integer cents, rounded half-even (the one rounding at the edge)."""
    quotient, remainder = divmod(int(pico), PICO_PER_CENT)
    twice = 2 * remainder
    if twice > PICO_PER_CENT or (twice == PICO_PER_CENT and quotient % 2 == 1):
        quotient += 1
    return quotient


def minor_unit_exponent(currency: str) -> int:
    """Digits after the decimal point for an ISO 4217 currency (USD 2, JPY 0, KWD 3)."""
    code = currency.upper()
    if code in ZERO_DECIMAL_CURRENCIES:
        return 0
    if code in THREE_DECIMAL_CURRENCIES:
        return 3
    return 2


def major_to_minor(amount: object, currency: str) -> int:
    """'99.00' USD -> 9900. Raises InputError when the amount has more digits than the currency."""
    exponent = minor_unit_exponent(currency)
    scaled = _decimal(amount) * (Decimal(10) ** exponent)
    if scaled != scaled.to_integral_value():
        raise InputError(
            f"{amount} has more than {exponent} decimal places for {currency.upper()}"
        )
    return int(scaled)


def minor_to_major(minor: int, currency: str) -> Decimal:
    """9900 USD -> Decimal('99.00')."""
    exponent = minor_unit_exponent(currency)
    return (Decimal(int(minor)) / (Decimal(10) ** exponent)).quantize(Decimal(1).scaleb(-exponent))


def format_usd(pico: int | None, places: int = 2) -> str:
    """Format pico-dollars for display, e.g. '$1,234.56' or '-$3.10'. None -> 'n/a'."""
    if pico is None:
        return "n/a"
    value = pico_to_usd(pico).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN)
    sign = "-" if value < 0 else ""
    return f"{sign}${abs(value):,.{places}f}"
