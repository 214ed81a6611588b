"""Late-payment penalties, hand-computed: 1,000.00 due 2026-01-31, 12 % p.a. actual/365 after
5 days' grace, a fixed fee of 40.00."""

from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing import terms

D = Decimal
DUE = date(2026, 1, 31)
BASE = {
    "gross": D("1000.00"),
    "due_date": DUE,
    "annual_rate": D("12"),
    "fixed_fee": D("40"),
    "grace_days": 5,
    "cap_percent": None,
    "last_period_end": None,
    "charged_so_far": D("0"),
    "fee_charged": False,
    "payments": [],
}


def charge(**kwargs):
    return terms.penalty_charge(**{**BASE, **kwargs})


def test_nothing_while_within_grace():
    assert charge(as_of=date(2026, 2, 5)) is None  # 5 days overdue = grace
    assert charge(as_of=DUE) is None


def test_first_assessment_charges_interest_from_the_day_after_due_plus_the_fee():
    c = charge(as_of=date(2026, 2, 6))  # 6 days: 1000 x 6 x 12 % / 365 = 1.9726
    assert (c.period_start, c.period_end, c.days) == (date(2026, 2, 1), date(2026, 2, 6), 6)
    assert (c.interest, c.fee, c.total, c.capped) == (D("1.97"), D("40.00"), D("41.97"), False)


def test_next_assessment_charges_only_the_new_days_and_no_second_fee():
    c = charge(as_of=date(2026, 2, 28), last_period_end=date(2026, 2, 6), fee_charged=True, charged_so_far=D("41.97"))
    assert (c.period_start, c.days) == (date(2026, 2, 7), 22)  # 1000 x 22 x 0.12 / 365 = 7.2329
    assert (c.interest, c.fee) == (D("7.23"), D("0"))


def test_partial_payment_reduces_the_balance_from_the_day_it_is_received():
    # 8 days (7th-14th) on 1000, then 14 days (15th-28th) on 600: 16,400 x 0.12 / 365 = 5.3918
    c = charge(
        as_of=date(2026, 2, 28),
        last_period_end=date(2026, 2, 6),
        fee_charged=True,
        payments=[(date(2026, 2, 15), D("400.00"))],
    )
    assert c.interest == D("5.39")


def test_interest_accrued_before_the_principal_was_paid_is_still_charged():
    # Paid in full on the 10th: 3 days (7th-9th) on 1000 = 0.9863; nothing after.
    c = charge(
        as_of=date(2026, 2, 28),
        last_period_end=date(2026, 2, 6),
        fee_charged=True,
        payments=[(date(2026, 2, 10), D("1000.00"))],
    )
    assert c.interest == D("0.99")


def test_payments_before_the_period_count_from_its_first_day():
    c = charge(as_of=date(2026, 2, 6), payments=[(date(2026, 1, 20), D("500")), (date(2026, 2, 1), D("250"))])
    # Whole period on 250: 250 x 6 x 0.12 / 365 = 0.4932
    assert c.interest == D("0.49")


def test_cap_limits_the_total_of_all_penalties():
    cap = {"cap_percent": D("5.00")}  # 50.00 on 1,000.00
    first = charge(as_of=date(2026, 2, 6), **cap)
    assert first.total == D("41.97") and not first.capped
    second = charge(
        as_of=date(2026, 2, 28), last_period_end=date(2026, 2, 6), fee_charged=True, charged_so_far=D("41.97"), **cap
    )
    assert second.total == D("7.23")
    third = charge(
        as_of=date(2026, 3, 31), last_period_end=date(2026, 2, 28), fee_charged=True, charged_so_far=D("49.20"), **cap
    )
    assert (third.interest, third.capped) == (D("0.80"), True)  # 10.19 would pass the cap
    done = charge(
        as_of=date(2026, 4, 30), last_period_end=date(2026, 3, 31), fee_charged=True, charged_so_far=D("50.00"), **cap
    )
    assert done.total == D("0") and done.capped


def test_fee_alone_is_capped_too():
    c = charge(as_of=date(2026, 2, 6), cap_percent=D("1.00"))  # cap 10.00 < fee 40
    assert (c.fee, c.interest, c.total) == (D("10.00"), D("0.00"), D("10.00"))


def test_rerun_on_the_same_day_charges_nothing():
    assert charge(as_of=date(2026, 2, 6), last_period_end=date(2026, 2, 6), fee_charged=True) is None


def test_leap_year_counts_actual_days_over_365():
    c = terms.penalty_charge(
        **{**BASE, "due_date": date(2024, 2, 27), "grace_days": 0, "fixed_fee": D("0"), "as_of": date(2024, 3, 1)}
    )
    assert c.days == 3  # 28th, 29th, 1st
    assert c.interest == D("0.99")  # 1000 x 3 x 0.12 / 365 = 0.9863


@given(
    gross=st.decimals(min_value=D("1"), max_value=D("100000"), places=2),
    paid=st.lists(
        st.tuples(st.integers(0, 120), st.decimals(min_value=D("0.01"), max_value=D("5000"), places=2)), max_size=5
    ),
    split=st.integers(1, 119),
)
def test_two_assessments_never_charge_more_than_one_over_the_whole_period(gross, paid, split):
    payments = [(date(2026, 1, 1).fromordinal(DUE.toordinal() + d), a) for d, a in paid]
    kw = {**BASE, "gross": gross, "payments": payments, "grace_days": 0, "fixed_fee": D("0")}
    end = date.fromordinal(DUE.toordinal() + 120)
    mid = date.fromordinal(DUE.toordinal() + split)
    whole = terms.penalty_charge(**{**kw, "as_of": end})
    a = terms.penalty_charge(**{**kw, "as_of": mid})
    b = terms.penalty_charge(**{**kw, "as_of": end, "last_period_end": mid})
    # Rounding per assessment may move a cent each way, never more.
    assert abs(a.interest + b.interest - whole.interest) <= D("0.01")
    assert a.interest >= 0 and b.interest >= 0


@pytest.mark.parametrize("cap", [D("0"), D("1"), D("10"), D("100")])
def test_cap_is_never_exceeded(cap):
    charged = D("0")
    last = None
    fee_charged = False
    for month_end in [date(2026, 2, 28), date(2026, 3, 31), date(2026, 6, 30), date(2027, 12, 31)]:
        c = charge(
            as_of=month_end, cap_percent=cap, last_period_end=last, charged_so_far=charged, fee_charged=fee_charged
        )
        charged += c.total
        last, fee_charged = month_end, True
        assert charged <= D("1000") * cap / 100
