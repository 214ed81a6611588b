"""Payment terms arithmetic: due dates, early-payment discounts, the printed terms text.

Pure functions on dates and Decimal, no database.
"""

import calendar
from datetime import date, timedelta
from decimal import Decimal

from .money import HUNDRED, quantize

METHOD_LABELS = {
    "card": "card",
    "bank_transfer": "bank transfer",
    "sepa_direct_debit": "SEPA direct debit",
    "ach": "ACH",
    "wire": "wire",
    "check": "check",
    "cash": "cash",
}


def due_date(issue_date: date, due_days: int, end_of_month: bool = False) -> date:
    """Issue date + due days; with end of month, the last day of the month that date falls in."""
    due = issue_date + timedelta(days=due_days)
    if end_of_month:
        due = due.replace(day=calendar.monthrange(due.year, due.month)[1])
    return due


def discount_deadline(issue_date: date, discount_days: int) -> date:
    return issue_date + timedelta(days=discount_days)


def discount_amount(gross: Decimal, discount_percent: Decimal, currency: str = "EUR") -> Decimal:
    return quantize(Decimal(gross) * Decimal(discount_percent or 0) / HUNDRED, currency)


def _num(value: Decimal) -> str:
    text = f"{Decimal(value):f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def terms_text(
    *,
    due_days: int,
    end_of_month: bool = False,
    discount_percent: Decimal = Decimal(0),
    discount_days: int = 0,
    accepted_methods: list[str] | None = None,
    grace_days: int = 0,
    annual_interest_rate: Decimal = Decimal(0),
    fixed_fee: Decimal = Decimal(0),
    penalty_cap_percent: Decimal | None = None,
    currency: str = "",
) -> str:
    """The human text printed on the invoice, generated from the terms' fields."""
    parts = [
        "Due on receipt."
        if due_days == 0 and not end_of_month
        else f"Net {due_days}{' end of month' if end_of_month else ''}."
    ]
    if discount_percent and Decimal(discount_percent) > 0:
        parts.append(f"{_num(discount_percent)}% discount if paid within {discount_days} days.")
    if accepted_methods:
        parts.append("Accepted: " + ", ".join(METHOD_LABELS.get(m, m) for m in accepted_methods) + ".")
    penalties = []
    if annual_interest_rate and Decimal(annual_interest_rate) > 0:
        grace = f" after {grace_days} days' grace" if grace_days else ""
        penalties.append(f"{_num(annual_interest_rate)}% p.a. interest{grace}")
    if fixed_fee and Decimal(fixed_fee) > 0:
        penalties.append(f"a fixed fee of {Decimal(fixed_fee):.2f}{' ' + currency if currency else ''}")
    if penalties:
        text = "Late payments: " + ", plus ".join(penalties)
        if penalty_cap_percent is not None:
            text += f", capped at {_num(penalty_cap_percent)}% of the invoice"
        parts.append(text + ".")
    return " ".join(parts)
