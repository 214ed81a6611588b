from datetime import date
from decimal import Decimal

import pytest

from billing import terms


@pytest.mark.parametrize(
    ("issued", "days", "eom", "expected"),
    [
        (date(2026, 1, 15), 30, False, date(2026, 2, 14)),
        (date(2026, 1, 31), 30, False, date(2026, 3, 2)),
        (date(2026, 1, 15), 45, True, date(2026, 3, 31)),
        (date(2024, 1, 31), 29, True, date(2024, 2, 29)),  # leap year end of month
        (date(2026, 12, 20), 0, False, date(2026, 12, 20)),
    ],
)
def test_due_date(issued, days, eom, expected):
    assert terms.due_date(issued, days, eom) == expected


def test_terms_text_lists_discount_methods_and_penalties():
    text = terms.terms_text(
        due_days=30,
        discount_percent=Decimal("2.00"),
        discount_days=10,
        accepted_methods=["bank_transfer", "card"],
        grace_days=5,
        annual_interest_rate=Decimal("12.00"),
        fixed_fee=Decimal("40"),
        currency="EUR",
    )
    assert text == (
        "Net 30. 2% discount if paid within 10 days. Accepted: bank transfer, card. "
        "Late payments: 12% p.a. interest after 5 days' grace, plus a fixed fee of 40.00 EUR."
    )


def test_terms_text_neutral_defaults_say_only_the_due_date():
    assert terms.terms_text(due_days=0) == "Due on receipt."
    assert terms.terms_text(due_days=45, end_of_month=True) == "Net 45 end of month."


def test_terms_text_mentions_the_cap():
    text = terms.terms_text(due_days=30, annual_interest_rate=Decimal("10"), penalty_cap_percent=Decimal("15.00"))
    assert text.endswith("Late payments: 10% p.a. interest, capped at 15% of the invoice.")


def test_discount_amount():
    assert terms.discount_amount(Decimal("462.62"), Decimal("2")) == Decimal("9.25")
