"""Reversing a payment (bounced check, chargeback): invoices and orders reopen, history is kept."""

from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.db import IntegrityError, connection, transaction
from rest_framework.test import APIClient

from billing.errors import InvalidTransition, ValidationFailed
from billing.models import AuditEvent
from invoicing.models import InvoiceStatus
from kpis.audit import run_audit
from orders.models import OrderStatus
from payments import services
from payments.models import Payment, PaymentStatus
from tests.factories import CustomerFactory, PaymentTermsFactory

D = Decimal
pytestmark = pytest.mark.django_db


def _pay(customer, amount, **kwargs):
    return services.payment_record(customer=customer, method="check", amount=D(amount), currency="EUR", **kwargs)


def test_reversing_a_full_payment_reopens_invoice_and_order_and_keeps_the_history(customer, make_issued_invoice, user):
    invoice = make_issued_invoice(customer)
    order = invoice.lines.first().order_line.order
    payment = _pay(customer, "500.00")
    order.refresh_from_db()
    assert order.status == OrderStatus.CLOSED

    services.payment_reverse(payment=payment, reason="Check returned unpaid", actor=user)

    payment.refresh_from_db()
    invoice.refresh_from_db()
    order.refresh_from_db()
    assert (invoice.status, invoice.amount_paid) == (InvoiceStatus.ISSUED, D("0"))
    assert order.status == OrderStatus.INVOICED
    assert order.events.order_by("pk").last().note == f"{invoice} is no longer paid."
    assert payment.status == PaymentStatus.REVERSED
    assert (payment.reversal_reason, payment.reversed_by) == ("Check returned unpaid", user)
    assert payment.reversed_at is not None
    assert (payment.allocated_amount, payment.unallocated_amount) == (D("0"), D("0"))
    allocation = payment.allocations.get()
    assert allocation.amount == D("462.62") and allocation.reversed_at == payment.reversed_at
    event = AuditEvent.objects.get(action="payment.reversed")
    assert event.changes["reopened"] == {invoice.number: "462.62"}
    assert run_audit() == []


def test_reversing_one_of_two_payments_leaves_the_invoice_partly_paid(customer, make_issued_invoice):
    invoice = make_issued_invoice(customer)
    first = _pay(customer, "400.00")
    _pay(customer, "62.62")
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.PAID
    services.payment_reverse(payment=first, reason="Chargeback")
    invoice.refresh_from_db()
    assert (invoice.status, invoice.balance) == (InvoiceStatus.PARTIALLY_PAID, D("400.00"))
    assert run_audit() == []


def test_reversal_gives_back_the_discount_taken_with_the_payment(make_issued_invoice):
    terms = PaymentTermsFactory(name="2/10", due_days=30, discount_percent=D("2"), discount_days=10)
    customer = CustomerFactory(payment_terms=terms)
    invoice = make_issued_invoice(customer, issue_date=date(2026, 3, 2))
    payment = _pay(customer, "453.37", received_on=date(2026, 3, 2) + timedelta(days=3))
    services.payment_reverse(payment=payment, reason="Chargeback")
    invoice.refresh_from_db()
    assert (invoice.status, invoice.amount_paid, invoice.balance) == ("issued", D("0"), D("462.62"))
    assert run_audit() == []


def test_credit_from_a_reversed_payment_disappears(customer):
    payment = _pay(customer, "80.00", auto_allocate=False)
    services.payment_reverse(payment=payment, reason="Bounced")
    payment.refresh_from_db()
    assert payment.unallocated_amount == D("0")
    with pytest.raises(InvalidTransition):
        services.payment_allocate(payment=payment)
    assert run_audit() == []


def test_refused_twice_and_when_refunded(customer):
    payment = _pay(customer, "80.00", auto_allocate=False)
    services.payment_refund(payment=payment, amount=D("10.00"), reason="Overpaid")
    with pytest.raises(InvalidTransition, match="refunded"):
        services.payment_reverse(payment=payment, reason="Bounced")
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.RECEIVED
    other = _pay(customer, "20.00", auto_allocate=False)
    services.payment_reverse(payment=other, reason="Bounced")
    with pytest.raises(InvalidTransition, match="already reversed"):
        services.payment_reverse(payment=other, reason="Again")
    with pytest.raises(ValidationFailed):
        services.payment_reverse(payment=payment, reason=" ")


def test_database_refuses_a_reversed_payment_that_still_holds_money(customer, make_issued_invoice):
    make_issued_invoice(customer)
    payment = _pay(customer, "100.00")
    with pytest.raises(IntegrityError), transaction.atomic():
        Payment.objects.filter(pk=payment.pk).update(status="reversed")


def test_audit_catches_an_allocation_left_counting_on_a_reversed_payment(customer, make_issued_invoice):
    make_issued_invoice(customer)
    payment = _pay(customer, "100.00")
    services.payment_reverse(payment=payment, reason="Bounced")
    with connection.cursor() as cursor:
        cursor.execute("UPDATE payments_allocation SET reversed_at = NULL WHERE payment_id = %s", [payment.pk])
    found = {f.check for f in run_audit()}
    assert {"reversed_payment_allocations_reversed", "amount_paid_equals_allocations"} <= found


def test_reverse_api_and_page(customer, make_issued_invoice, user, client):
    make_issued_invoice(customer)
    payment = _pay(customer, "100.00")
    api = APIClient()
    api.force_authenticate(user=user)
    response = api.post(f"/api/v1/payments/{payment.pk}/reverse/", {}, format="json")
    assert response.status_code == 400 and "reason" in response.json()["details"]
    response = api.post(f"/api/v1/payments/{payment.pk}/reverse/", {"reason": "Chargeback"}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["status"], body["reversal_reason"], body["allocated_amount"]) == ("reversed", "Chargeback", "0.00")
    assert body["allocations"][0]["reversed_at"] is not None
    again = api.post(f"/api/v1/payments/{payment.pk}/reverse/", {"reason": "Chargeback"}, format="json")
    assert again.status_code == 409 and again.json()["code"] == "invalid_state"

    client.force_login(user)
    second = _pay(customer, "50.00")
    assert client.get(f"/payments/{second.pk}/reverse/").status_code == 200
    blank = client.post(f"/payments/{second.pk}/reverse/", {"reason": ""})
    assert blank.status_code == 200 and b"is-invalid" in blank.content
    done = client.post(f"/payments/{second.pk}/reverse/", {"reason": "Check returned"})
    assert done.status_code == 302
    page = client.get(f"/payments/{second.pk}/")
    assert b'data-testid="reversed"' in page.content and b"Check returned" in page.content
    assert f"/payments/{second.pk}/reverse/".encode() not in page.content


def test_invoice_page_shows_the_discount_and_the_reversed_payment(client, user, make_issued_invoice):
    terms = PaymentTermsFactory(name="2/10 page", due_days=30, discount_percent=D("2"), discount_days=10)
    customer = CustomerFactory(payment_terms=terms)
    invoice = make_issued_invoice(customer, issue_date=date(2026, 3, 2))
    payment = _pay(customer, "453.37", received_on=date(2026, 3, 4))
    client.force_login(user)
    page = client.get(invoice.get_absolute_url()).content.decode()
    assert "9.25 early-payment discount" in page and "reversed</span>" not in page
    services.payment_reverse(payment=payment, reason="Chargeback")
    page = client.get(invoice.get_absolute_url()).content.decode()
    assert "reversed</span>" in page
