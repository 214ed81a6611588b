"""Early-payment discount at payment: hand-computed figures on the shared fixture order
(gross 462.62), terms 2 % within 10 days: discount 9.25 (462.62 x 2 % = 9.2524), so 453.37
settles the invoice inside the window."""

from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.db import connection

from billing.errors import ValidationFailed
from invoicing.models import InvoiceStatus
from kpis.audit import run_audit
from payments import discounts, services
from payments.models import Allocation
from tests.factories import CustomerFactory, PaymentTermsFactory

D = Decimal
pytestmark = pytest.mark.django_db
ISSUED = date(2026, 3, 2)
LAST_DAY = ISSUED + timedelta(days=10)


@pytest.fixture
def skonto_customer(db):
    terms = PaymentTermsFactory(name="2/10 net 30", due_days=30, discount_percent=D("2"), discount_days=10)
    return CustomerFactory(payment_terms=terms)


@pytest.fixture
def invoice(skonto_customer, make_issued_invoice):
    return make_issued_invoice(skonto_customer, issue_date=ISSUED)


def _pay(customer, amount, received_on, **kwargs):
    return services.payment_record(
        customer=customer, method="bank_transfer", amount=D(amount), currency="EUR", received_on=received_on, **kwargs
    )


def test_paid_on_the_last_day_of_the_window_settles_with_the_discount(skonto_customer, invoice):
    payment = _pay(skonto_customer, "453.37", LAST_DAY)
    invoice.refresh_from_db()
    allocation = payment.allocations.get()
    assert (allocation.amount, allocation.discount) == (D("453.37"), D("9.25"))
    assert (invoice.status, invoice.amount_paid, invoice.balance) == (InvoiceStatus.PAID, D("462.62"), D("0"))
    assert (payment.allocated_amount, payment.unallocated_amount) == (D("453.37"), D("0"))
    assert invoice.lines.first().order_line.order.status == "closed"
    assert run_audit() == []


def test_paid_a_day_after_the_window_takes_no_discount(skonto_customer, invoice):
    payment = _pay(skonto_customer, "453.37", LAST_DAY + timedelta(days=1))
    invoice.refresh_from_db()
    assert payment.allocations.get().discount == D("0")
    assert (invoice.status, invoice.balance) == (InvoiceStatus.PARTIALLY_PAID, D("9.25"))
    assert run_audit() == []


def test_part_payments_inside_the_window_take_their_share_then_the_rest(skonto_customer, invoice):
    first = _pay(skonto_customer, "200.00", ISSUED + timedelta(days=5))
    invoice.refresh_from_db()
    # 200.00 x 9.25 / 453.37 = 4.0805 -> 4.08
    assert first.allocations.get().discount == D("4.08")
    assert (invoice.amount_paid, invoice.balance, invoice.status) == (D("204.08"), D("258.54"), "partially_paid")
    # What settles now: 258.54 less the 9.25 - 4.08 = 5.17 discount left.
    second = _pay(skonto_customer, "253.37", LAST_DAY)
    invoice.refresh_from_db()
    assert second.allocations.get().discount == D("5.17")
    assert (invoice.status, invoice.amount_paid) == (InvoiceStatus.PAID, D("462.62"))
    assert first.amount + second.amount == D("453.37")
    assert run_audit() == []


def test_part_payment_in_window_then_rest_after_it_pays_the_full_rest(skonto_customer, invoice):
    _pay(skonto_customer, "200.00", ISSUED + timedelta(days=5))
    late = _pay(skonto_customer, "253.37", LAST_DAY + timedelta(days=1))
    invoice.refresh_from_db()
    assert late.allocations.get().discount == D("0")
    assert (invoice.status, invoice.balance) == (InvoiceStatus.PARTIALLY_PAID, D("5.17"))


def test_overpayment_in_window_takes_the_discount_and_keeps_the_rest_as_credit(skonto_customer, invoice):
    payment = _pay(skonto_customer, "500.00", ISSUED)
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.PAID
    assert (payment.allocated_amount, payment.unallocated_amount) == (D("453.37"), D("46.63"))


def test_explicit_allocation_paying_more_than_the_discounted_total_takes_only_what_settles(skonto_customer, invoice):
    payment = _pay(skonto_customer, "460.00", ISSUED, allocations=[{"invoice": invoice, "amount": D("460.00")}])
    invoice.refresh_from_db()
    assert payment.allocations.get().discount == D("2.62")  # 462.62 - 460.00
    assert invoice.status == InvoiceStatus.PAID


def test_explicit_allocation_above_the_balance_is_refused_and_nothing_saved(skonto_customer, invoice):
    with pytest.raises(ValidationFailed):
        _pay(skonto_customer, "470.00", ISSUED, allocations=[{"invoice": invoice, "amount": D("470.00")}])
    invoice.refresh_from_db()
    assert (invoice.amount_paid, Allocation.objects.count()) == (D("0"), 0)


def test_terms_changed_after_issue_do_not_change_the_discount(skonto_customer, invoice):
    terms = skonto_customer.payment_terms
    terms.discount_percent, terms.discount_days = D("0"), 0
    terms.save()
    payment = _pay(skonto_customer, "453.37", LAST_DAY)
    assert payment.allocations.get().discount == D("9.25")  # the terms frozen on the invoice


def test_audit_catches_an_invoice_paid_by_a_discount_no_allocation_records(skonto_customer, invoice):
    payment = _pay(skonto_customer, "453.37", LAST_DAY)
    with connection.cursor() as cursor:
        cursor.execute("UPDATE payments_allocation SET discount = 0 WHERE payment_id = %s", [payment.pk])
    found = {f.check: f.rows for f in run_audit()}
    assert invoice.number in found["amount_paid_equals_allocations"][0]
    assert "customer_balance_consistent" in found


@pytest.mark.parametrize(
    ("amount", "balance", "taken", "expected"),
    [
        (D("453.37"), D("462.62"), D("0"), D("9.25")),  # exactly the discounted total
        (D("100.00"), D("462.62"), D("0"), D("2.04")),  # 100 x 9.25 / 453.37 = 2.0403
        (D("0.01"), D("462.62"), D("0"), D("0.00")),  # share rounds to nothing
        (D("462.62"), D("462.62"), D("0"), D("0")),  # paid in full: nothing left to discount
        (D("253.37"), D("258.54"), D("4.08"), D("5.17")),  # the rest after a part payment
        (D("300.00"), D("258.54"), D("4.08"), D("0")),  # above the balance: no discount
        (D("100.00"), D("462.62"), D("9.25"), D("0")),  # discount all taken
    ],
)
def test_discount_for(amount, balance, taken, expected):
    offer = discounts.DiscountTerms(D("9.25"), LAST_DAY)
    got = discounts.discount_for(
        amount=amount, gross=D("462.62"), balance=balance, offer=offer, taken=taken, currency="EUR"
    )
    assert got == expected


def test_discount_terms_window():
    offer = discounts.discount_terms(gross=D("462.62"), issue_date=ISSUED, percent="2", days=10, currency="EUR")
    assert (offer.total, offer.deadline) == (D("9.25"), LAST_DAY)
    assert offer.applies_on(LAST_DAY) and not offer.applies_on(LAST_DAY + timedelta(days=1))
    none = discounts.discount_terms(gross=D("462.62"), issue_date=ISSUED, percent="0", days=10, currency="EUR")
    assert not none.applies_on(ISSUED)
