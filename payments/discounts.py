"""Early-payment discount at payment time: pure arithmetic on Decimal and dates, no database.

The terms frozen on the invoice give a percent and a number of days from the issue date. Money
received on or before that deadline settles the invoice with the discount taken, pro rata for a
part payment: paying the discounted total in full takes the whole discount; paying part of it
takes the same share of the discount. The discount is booked on the allocation
(`Allocation.discount`), so an invoice's amount paid is its allocations' money plus their
discounts (plus credit notes applied)."""

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from billing.money import quantize
from billing.terms import discount_amount, discount_deadline

ZERO = Decimal("0")


@dataclass(frozen=True)
class DiscountTerms:
    """The discount an invoice offers: its full amount and the last day to take it."""

    total: Decimal
    deadline: date | None

    def applies_on(self, received_on: date) -> bool:
        return self.total > 0 and self.deadline is not None and received_on <= self.deadline


NO_DISCOUNT = DiscountTerms(ZERO, None)


def discount_terms(
    *, gross: Decimal, issue_date: date | None, percent: Decimal | str | None, days: int | None, currency: str
) -> DiscountTerms:
    """The discount offered on an invoice of `gross`, from the percent and days of its frozen terms."""
    percent = Decimal(percent or 0)
    if percent <= 0 or issue_date is None or days is None or gross <= 0:
        return NO_DISCOUNT
    return DiscountTerms(discount_amount(gross, percent, currency), discount_deadline(issue_date, int(days)))


def cash_due(*, balance: Decimal, discount_left: Decimal) -> Decimal:
    """What settles the balance in full when the rest of the discount is taken."""
    return max(balance - max(discount_left, ZERO), ZERO)


def discount_for(
    *, amount: Decimal, gross: Decimal, balance: Decimal, offer: DiscountTerms, taken: Decimal, currency: str
) -> Decimal:
    """The discount that goes with `amount` of money paid within the window on an invoice whose
    open balance is `balance` and whose allocations took `taken` of the discount so far.

    - Paying at least what is due with the discount settles the invoice: the discount is what
      the money leaves open (never more than the rest of the offer).
    - Paying less takes the offer's share: amount x discount / (gross - discount), rounded
      half-up, never more than the rest of the offer.
    """
    left = offer.total - taken
    if amount <= 0 or left <= 0 or balance <= 0:
        return ZERO
    if amount >= cash_due(balance=balance, discount_left=left):
        return max(min(left, balance - amount), ZERO)
    share = quantize(amount * offer.total / (gross - offer.total), currency)
    return max(min(left, share, balance - amount), ZERO)
