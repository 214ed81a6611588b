"""Payment terms arithmetic: due dates, early-payment discounts, the printed terms text.

Pure functions on dates and Decimal, no database.
"""

import calendar
from dataclasses import dataclass
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


# --- Late-payment penalties -------------------------------------------------------------------
# Interest is simple, actual/365, on the balance outstanding at the end of each day, from the
# day after the due date; nothing is charged while the days overdue are within the grace days.
# Each assessment charges only the days since the previous one; the fixed fee comes once, with
# the first assessment; all penalties of an invoice together never exceed the cap.

DAYS_PER_YEAR = Decimal(365)


def balance_on(day: date, *, gross: Decimal, payments: list[tuple[date, Decimal]]) -> Decimal:
    """Balance at the end of `day`: the gross less what was paid or credited on or before it."""
    return Decimal(gross) - sum((amount for when, amount in payments if when <= day), Decimal(0))


def accrued_interest(
    *, gross: Decimal, payments: list[tuple[date, Decimal]], start: date, end: date, annual_rate: Decimal
) -> Decimal:
    """Unrounded simple interest over the days start..end inclusive, day by day on the end-of-day
    balance. The balance only changes on payment days, so it sums over those segments."""
    if end < start or not annual_rate:
        return Decimal(0)
    changes = sorted({when for when, _ in payments if start < when <= end})
    total = Decimal(0)
    segment_start = start
    for boundary in [*changes, end + timedelta(days=1)]:
        days = (boundary - segment_start).days
        if days > 0:
            balance = max(balance_on(segment_start, gross=gross, payments=payments), Decimal(0))
            total += balance * days
        segment_start = boundary
    return total * Decimal(annual_rate) / HUNDRED / DAYS_PER_YEAR


@dataclass(frozen=True)
class PenaltyCharge:
    period_start: date
    period_end: date
    days: int
    interest: Decimal
    fee: Decimal
    capped: bool

    @property
    def total(self) -> Decimal:
        return self.interest + self.fee


def penalty_charge(
    *,
    gross: Decimal,
    due_date: date,
    as_of: date,
    payments: list[tuple[date, Decimal]],
    annual_rate: Decimal,
    fixed_fee: Decimal,
    grace_days: int,
    cap_percent: Decimal | None,
    last_period_end: date | None,
    charged_so_far: Decimal,
    fee_charged: bool,
    currency: str = "EUR",
) -> PenaltyCharge | None:
    """What one assessment as of `as_of` charges, or None when nothing is due yet."""
    if (as_of - due_date).days <= grace_days:
        return None
    start = (last_period_end or due_date) + timedelta(days=1)
    if start > as_of:
        return None
    interest = quantize(
        accrued_interest(gross=gross, payments=payments, start=start, end=as_of, annual_rate=annual_rate), currency
    )
    fee = Decimal(0) if fee_charged else quantize(Decimal(fixed_fee or 0), currency)
    capped = False
    if cap_percent is not None:
        room = max(quantize(Decimal(gross) * Decimal(cap_percent) / HUNDRED, currency) - charged_so_far, Decimal(0))
        if fee + interest > room:
            capped = True
            fee = min(fee, room)
            interest = room - fee
    return PenaltyCharge(
        period_start=start, period_end=as_of, days=(as_of - start).days + 1, interest=interest, fee=fee, capped=capped
    )
