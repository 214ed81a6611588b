"""Races around reversal and the discount: each outcome is one the rules allow, never a mix."""

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.db import connection

from billing.errors import DomainError
from invoicing.models import Invoice
from kpis.audit import run_audit
from payments import services
from payments.models import Allocation, Payment
from tests.factories import CustomerFactory, PaymentTermsFactory

D = Decimal
pytestmark = pytest.mark.django_db(transaction=True)


def _race(*calls):
    barrier = threading.Barrier(len(calls))

    def run(fn):
        try:
            barrier.wait(timeout=30)
            fn()
            return "ok"
        except DomainError:
            return "refused"
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(run, calls))


def test_reverse_and_refund_racing_on_one_payment_never_both_happen(customer):
    for _ in range(3):
        payment = services.payment_record(
            customer=customer, method="check", amount=D("100.00"), currency="EUR", auto_allocate=False
        )
        pk = payment.pk
        results = _race(
            lambda pk=pk: services.payment_reverse(payment=Payment.objects.get(pk=pk), reason="Bounced"),
            lambda pk=pk: services.payment_refund(payment=Payment.objects.get(pk=pk), amount=D("40"), reason="x"),
        )
        assert sorted(results) == ["ok", "refused"]
        payment.refresh_from_db()
        assert (payment.is_reversed, payment.refunded_amount) in {(True, D("0")), (False, D("40.00"))}
    assert run_audit() == []


def test_reverse_and_allocate_racing_leave_no_allocation_counting_on_a_reversed_payment(customer, make_issued_invoice):
    invoice = make_issued_invoice(customer)
    payment = services.payment_record(
        customer=customer, method="check", amount=D("100.00"), currency="EUR", auto_allocate=False
    )
    _race(
        lambda: services.payment_reverse(payment=Payment.objects.get(pk=payment.pk), reason="Bounced"),
        lambda: services.payment_allocate(payment=Payment.objects.get(pk=payment.pk)),
    )
    payment.refresh_from_db()
    invoice.refresh_from_db()
    assert payment.is_reversed
    assert invoice.amount_paid == D("0")
    assert run_audit() == []


def test_two_payments_racing_in_the_discount_window_take_the_discount_once(make_issued_invoice):
    terms = PaymentTermsFactory(name="2/10 race", due_days=30, discount_percent=D("2"), discount_days=10)
    customer = CustomerFactory(payment_terms=terms)
    issued = date(2026, 3, 2)
    invoice = make_issued_invoice(customer, issue_date=issued)

    def pay():
        services.payment_record(
            customer=customer,
            method="bank_transfer",
            amount=D("453.37"),
            currency="EUR",
            received_on=issued + timedelta(days=2),
        )

    assert _race(pay, pay) == ["ok", "ok"]
    invoice = Invoice.objects.get(pk=invoice.pk)
    assert (invoice.status, invoice.amount_paid) == ("paid", D("462.62"))
    allocations = list(Allocation.objects.filter(invoice=invoice))
    assert [(a.amount, a.discount) for a in allocations] == [(D("453.37"), D("9.25"))]
    credit = sum(p.unallocated_amount for p in Payment.objects.all())
    assert credit == D("453.37")  # the second payment found nothing open: all credit
    assert run_audit() == []
