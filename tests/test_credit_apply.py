"""A credit note's credit left (its original was already paid) settles another open invoice:
service rules, a race for the same credit, API and page."""

import threading
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
from django.db import connection

from billing.errors import DomainError, InvalidTransition, ValidationFailed
from billing.models import AuditEvent
from invoicing import services
from invoicing.models import Invoice, InvoiceStatus
from kpis.audit import run_audit
from payments.services import payment_record
from tests.factories import CustomerFactory

D = Decimal
GROSS = D("462.62")  # the shared fixture order's gross total


@pytest.fixture
def credit(customer, make_issued_invoice, user):
    """A paid invoice credited in full: its credit note keeps all 462.62 as credit left."""
    paid = make_issued_invoice(customer)
    payment_record(customer=customer, method="bank_transfer", amount=GROSS, currency="EUR")
    note = services.invoice_credit(invoice=paid, reason="Goods returned", actor=user)
    assert (note.gross_total, note.balance) == (GROSS, GROSS)
    return note


def _reload(*docs):
    return [Invoice.objects.get(pk=d.pk) for d in docs]


@pytest.mark.django_db
def test_credit_left_settles_another_invoice_in_parts(credit, customer, make_issued_invoice, user):
    open_invoice = make_issued_invoice(customer)
    services.credit_note_apply(credit_note=credit, invoice=open_invoice, amount=D("100.00"), actor=user)
    note, target = _reload(credit, open_invoice)
    assert (target.amount_paid, target.status) == (D("100.00"), InvoiceStatus.PARTIALLY_PAID)
    assert (note.amount_paid, note.balance) == (D("100.00"), D("362.62"))

    application = services.credit_note_apply(credit_note=note, invoice=target)  # as much as both allow
    assert application.amount == D("362.62")
    note, target = _reload(credit, open_invoice)
    assert (target.status, note.status, note.balance) == (InvoiceStatus.PAID, InvoiceStatus.PAID, D("0.00"))
    assert AuditEvent.objects.filter(action="credit_note.applied").count() == 2
    assert run_audit() == []

    with pytest.raises(InvalidTransition, match="no credit left"):
        services.credit_note_apply(credit_note=note, invoice=make_issued_invoice(customer))


@pytest.mark.django_db
def test_refusals_change_nothing(credit, customer, make_issued_invoice):
    target = make_issued_invoice(customer)
    with pytest.raises(ValidationFailed) as exc:
        services.credit_note_apply(credit_note=credit, invoice=target, amount=D("462.63"))
    assert "amount" in exc.value.details and "462.62" in exc.value.message
    other_customer = make_issued_invoice(CustomerFactory(currency="EUR"))
    with pytest.raises(ValidationFailed, match="not an invoice of this customer"):
        services.credit_note_apply(credit_note=credit, invoice=other_customer)
    with pytest.raises(ValidationFailed, match="not a credit note"):
        services.credit_note_apply(credit_note=target, invoice=credit)
    with pytest.raises(ValidationFailed, match="not to a credit note"):
        services.credit_note_apply(credit_note=credit, invoice=credit)
    note, target = _reload(credit, target)
    assert (note.amount_paid, target.amount_paid) == (D("0.00"), D("0.00"))
    assert not AuditEvent.objects.filter(action="credit_note.applied").exists()


@pytest.mark.django_db(transaction=True)
def test_applications_racing_for_the_same_credit_never_exceed_it(credit, customer, make_issued_invoice):
    targets = [make_issued_invoice(customer) for _ in range(2)]
    barrier = threading.Barrier(4)

    def apply(n):
        try:
            barrier.wait(timeout=30)
            services.credit_note_apply(
                credit_note=Invoice.objects.get(pk=credit.pk), invoice=targets[n % 2], amount=D("200.00")
            )
            return "ok"
        except DomainError:
            return "refused"
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(apply, range(4)))
    assert sorted(results) == ["ok", "ok", "refused", "refused"]
    (note,) = _reload(credit)
    assert (note.amount_paid, note.balance) == (D("400.00"), D("62.62"))
    assert sum(t.amount_paid for t in _reload(*targets)) == D("400.00")
    assert run_audit() == []


@pytest.mark.django_db
def test_apply_credit_by_api_and_from_the_credit_note_page(credit, customer, make_issued_invoice, user, client):
    from rest_framework.test import APIClient

    api = APIClient()
    api.force_authenticate(user=user)
    target = make_issued_invoice(customer)
    url = f"/api/v1/invoices/{credit.pk}/apply-credit/"
    assert api.post(url, {"invoice": target.pk, "amount": "500.00"}, format="json").status_code == 400
    assert api.post(url, {"invoice": 999999}, format="json").status_code == 400
    done = api.post(url, {"invoice": target.pk, "amount": "62.62"}, format="json", HTTP_IDEMPOTENCY_KEY="a-1")
    replay = api.post(url, {"invoice": target.pk, "amount": "62.62"}, format="json", HTTP_IDEMPOTENCY_KEY="a-1")
    assert done.status_code == replay.status_code == 200, done.content
    assert done.json()["balance"] == "400.00" and replay["Idempotent-Replayed"] == "true"

    client.force_login(user)
    page = client.get(credit.get_absolute_url()).content.decode()
    assert 'data-testid="apply-credit"' in page and target.number in page
    refused = client.post(f"/invoices/{credit.pk}/apply-credit/", {"invoice": target.pk, "amount": "999"})
    assert refused.status_code == 200 and "Apply between 0.01 and 400.00 EUR" in refused.content.decode()
    done = client.post(f"/invoices/{credit.pk}/apply-credit/", {"invoice": target.pk, "amount": ""}, follow=True)
    assert "applied to" in done.content.decode()
    note, target = _reload(credit, target)
    assert (note.balance, target.status) == (D("0.00"), InvoiceStatus.PAID)
    assert 'data-testid="apply-credit"' not in client.get(credit.get_absolute_url()).content.decode()
