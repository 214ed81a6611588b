"""Money arithmetic, the EN 16931 way. Pure functions on Decimal: no database here.

- a line's net is quantity x unit price x (1 - discount), rounded half-up to the minor unit;
- tax per rate is the sum of line nets at that rate x the rate, rounded once;
- gross is net + tax.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

ZERO = Decimal("0.00")
CENT = Decimal("0.01")
HUNDRED = Decimal("100")

# ISO 4217 currencies whose minor unit is not two digits.
MINOR_UNITS = {"JPY": 0, "KRW": 0, "ISK": 0, "CLP": 0, "VND": 0, "BHD": 3, "KWD": 3, "OMR": 3, "TND": 3}


def minor_unit(currency: str) -> Decimal:
    digits = MINOR_UNITS.get((currency or "").upper(), 2)
    return Decimal(1).scaleb(-digits)


def quantize(amount: Decimal, currency: str = "EUR") -> Decimal:
    """Round half-up to the currency's minor unit (the one rounding rule of the system)."""
    return Decimal(amount).quantize(minor_unit(currency), rounding=ROUND_HALF_UP)


def line_net(
    quantity: Decimal, unit_price: Decimal, discount_percent: Decimal = ZERO, currency: str = "EUR"
) -> Decimal:
    gross = Decimal(quantity) * Decimal(unit_price)
    factor = (HUNDRED - Decimal(discount_percent or 0)) / HUNDRED
    return quantize(gross * factor, currency)


@dataclass(frozen=True)
class TaxableLine:
    net: Decimal
    rate: Decimal  # percent, "20.00" is 20 %
    category: str = "standard"


@dataclass(frozen=True)
class TaxBreakdown:
    rate: Decimal
    category: str
    taxable: Decimal
    tax: Decimal


@dataclass(frozen=True)
class Totals:
    net: Decimal
    tax: Decimal
    gross: Decimal
    breakdown: tuple[TaxBreakdown, ...]


def totals(lines: Iterable[TaxableLine], currency: str = "EUR") -> Totals:
    groups: dict[tuple[Decimal, str], Decimal] = {}
    for line in lines:
        key = (Decimal(line.rate), line.category)
        groups[key] = groups.get(key, ZERO) + Decimal(line.net)
    breakdown = tuple(
        TaxBreakdown(
            rate=rate,
            category=category,
            taxable=quantize(taxable, currency),
            tax=quantize(taxable * rate / HUNDRED, currency),
        )
        for (rate, category), taxable in sorted(groups.items(), key=lambda kv: (-kv[0][0], kv[0][1]))
    )
    net = sum((b.taxable for b in breakdown), ZERO)
    tax = sum((b.tax for b in breakdown), ZERO)
    return Totals(
        net=quantize(net, currency),
        tax=quantize(tax, currency),
        gross=quantize(net + tax, currency),
        breakdown=breakdown,
    )
