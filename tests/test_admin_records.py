"""The records that only services write (runs and their batches, penalty assessments, refunds,
feedback, snapshots, imports, print batches, statements, credit applications) are in the admin to
look up, and the admin cannot add, change or delete them."""

from datetime import date
from decimal import Decimal

import pytest

from invoicing import billing_runs
from invoicing.models import BillingRun
from kpis.feedback import feedback_record
from kpis.models import Feedback
from payments import penalties
from payments.models import PenaltyAssessment, PenaltyRun, Refund
from payments.services import payment_record, payment_refund
from tests.factories import CustomerFactory, PaymentTermsFactory

D = Decimal

READ_ONLY = [
    "invoicing/billingrun",
    "invoicing/printbatch",
    "invoicing/creditapplication",
    "payments/penaltyrun",
    "payments/penaltyassessment",
    "payments/refund",
    "payments/statementdelivery",
    "kpis/feedback",
    "kpis/kpisnapshot",
    "orders/orderimport",
]


@pytest.fixture
def records(eager, django_capture_on_commit_callbacks, user, make_fulfilled_order, make_issued_invoice):
    """One of each written by its service: a billing run, a penalty run with its assessment, a
    refund and a rating."""
    late = CustomerFactory(
        name="Tardy Trading",
        payment_terms=PaymentTermsFactory(due_days=30, annual_interest_rate=D("12.00"), fixed_fee=D("40.00")),
    )
    overdue = make_issued_invoice(late, issue_date=date(2026, 1, 1))
    make_fulfilled_order(CustomerFactory(name="Billed Bakery"))
    with django_capture_on_commit_callbacks(execute=True):
        billing_run = billing_runs.run_start(as_of=date.today(), actor=user)
    with django_capture_on_commit_callbacks(execute=True):
        penalty_run = penalties.run_start(as_of=date(2026, 3, 2))
    payment = payment_record(
        customer=late, method="bank_transfer", amount=D("1000.00"), currency="EUR", received_on=date(2026, 3, 3)
    )
    refund = payment_refund(payment=payment, amount=D("25.00"), reason="Overpaid by mistake", actor=user)
    feedback = feedback_record(invoice=overdue, rating=4, comment="Clear invoice", source="call", actor=user)
    return {
        "billingrun": BillingRun.objects.get(pk=billing_run.pk),
        "penaltyrun": PenaltyRun.objects.get(pk=penalty_run.pk),
        "penaltyassessment": PenaltyAssessment.objects.get(invoice=overdue),
        "refund": refund,
        "feedback": feedback,
    }


@pytest.mark.django_db
def test_each_record_list_opens_and_offers_no_add(client, user):
    client.force_login(user)
    for path in READ_ONLY:
        listing = client.get(f"/admin/{path}/")
        assert listing.status_code == 200, path
        assert f'href="/admin/{path}/add/"'.encode() not in listing.content, path
        assert client.get(f"/admin/{path}/add/").status_code == 403, path
    assert b"OTC administration" in client.get("/admin/").content


@pytest.mark.django_db
def test_records_written_by_services_show_and_cannot_be_changed_or_deleted(client, user, records):
    assert records["billingrun"].status == "done" and records["billingrun"].invoices_created == 1
    assert records["penaltyrun"].status == "done" and records["penaltyrun"].penalty_invoices == 1
    client.force_login(user)
    shown = {
        "invoicing/billingrun": (records["billingrun"], [b"Billing run #", b"Batches (the stored messages"]),
        "payments/penaltyrun": (records["penaltyrun"], [b"Penalty run #", b"Batches (the stored messages"]),
        "payments/penaltyassessment": (records["penaltyassessment"], [b"40.00", b"INV-2026-"]),
        "payments/refund": (records["refund"], [b"Overpaid by mistake", b"25.00"]),
        "kpis/feedback": (records["feedback"], [b"Clear invoice"]),
    }
    for path, (obj, texts) in shown.items():
        page = client.get(f"/admin/{path}/{obj.pk}/change/")
        assert page.status_code == 200, path
        for text in texts:
            assert text in page.content, (path, text)
        assert b'name="_save"' not in page.content, path  # shown read-only
        assert client.post(f"/admin/{path}/{obj.pk}/change/", {}).status_code == 403, path
        assert client.post(f"/admin/{path}/{obj.pk}/delete/", {"post": "yes"}).status_code == 403, path
        assert type(obj).objects.filter(pk=obj.pk).exists(), path
    assert Refund.objects.get().amount == D("25.00")
    assert Feedback.objects.get().comment == "Clear invoice"


@pytest.mark.django_db
def test_assessments_are_searchable_by_invoice_number_and_filterable_by_waiver(client, user, records):
    client.force_login(user)
    number = records["penaltyassessment"].invoice.number
    found = client.get("/admin/payments/penaltyassessment/", {"q": number})
    assert found.status_code == 200 and number.encode() in found.content
    missing = client.get("/admin/payments/penaltyassessment/", {"q": "INV-1999-000001"})
    assert missing.status_code == 200 and number.encode() not in missing.content
    not_waived = client.get("/admin/payments/penaltyassessment/", {"waived_at__isempty": "1"})
    assert not_waived.status_code == 200 and number.encode() in not_waived.content
    waived = client.get("/admin/payments/penaltyassessment/", {"waived_at__isempty": "0"})
    assert waived.status_code == 200 and number.encode() not in waived.content
