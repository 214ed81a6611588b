"""Voiding an issued invoice that never took effect: it keeps its number and its frozen content,
frees its orders to be billed again, and is refused once anything settled it or the customer got it."""

import io
import re
from datetime import date
from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction
from pypdf import PdfReader

from billing.errors import Conflict, InvalidTransition, ValidationFailed
from billing.models import AuditEvent
from invoicing import delivery, services
from invoicing.models import (
    DeliveryStatus,
    Invoice,
    InvoiceKind,
    InvoiceLine,
    InvoiceStatus,
    NumberSequence,
    PdfStatus,
    PrintBatch,
    PrintBatchItem,
)
from kpis.audit import run_audit
from orders.models import Order, OrderStatus
from payments import penalties
from payments.services import payment_record
from tests.factories import CustomerFactory, PaymentTermsFactory

D = Decimal
pytestmark = pytest.mark.django_db


def _snapshot(invoice: Invoice) -> tuple:
    invoice = Invoice.objects.get(pk=invoice.pk)
    lines = [(line.pk, line.order_line_id, line.quantity, line.net_amount) for line in invoice.lines.order_by("pk")]
    return (invoice.status, invoice.amount_paid, invoice.delivery_status, invoice.void_reason, lines)


def test_void_of_an_issued_invoice_keeps_its_number_and_content_and_frees_its_orders(
    customer, make_fulfilled_order, user
):
    order = make_fulfilled_order(customer)
    invoice = services.invoice_issue(
        invoice=services.invoice_create_from_orders(orders=[order]), issue_date=date(2026, 4, 1)
    )
    issued_sha = invoice.content_sha256
    line_ids = sorted(invoice.lines.values_list("pk", flat=True))

    voided = services.invoice_void(invoice=invoice, actor=user, reason="  Billed to the wrong entity  ")

    fresh = Invoice.objects.get(pk=invoice.pk)
    assert (fresh.status, fresh.number, fresh.sequence_number) == (InvoiceStatus.VOID, "INV-2026-000001", 1)
    assert fresh.void_reason == "Billed to the wrong entity" and fresh.voided_at is not None
    # The content is frozen: totals, lines and the fingerprint taken at issue are unchanged.
    assert (fresh.net_total, fresh.tax_total, fresh.gross_total) == (D("397.30"), D("65.32"), D("462.62"))
    assert sorted(fresh.lines.values_list("pk", flat=True)) == line_ids
    assert fresh.fingerprint() == issued_sha == fresh.content_sha256
    assert set(fresh.lines.values_list("voided", flat=True)) == {True}
    assert voided.pdf_status == PdfStatus.PENDING  # rendered again, marked VOID
    event = AuditEvent.objects.get(action="invoice.voided", object_id=invoice.pk)
    assert event.actor == user
    assert event.changes["reason"] == "Billed to the wrong entity"
    assert event.changes["status"] == ["issued", "void"] and event.changes["orders"] == [order.number]

    # Its order is billable again, and the number it had stays used: the next invoice takes 000002.
    order.refresh_from_db()
    assert order.status == OrderStatus.FULFILLED
    again = services.invoice_issue(
        invoice=services.invoice_create_from_orders(orders=[order]), issue_date=date(2026, 4, 2)
    )
    assert again.number == "INV-2026-000002"
    assert again.gross_total == D("462.62")
    assert NumberSequence.objects.get(series="INV", year=2026).last_number == 2
    assert run_audit() == []


def test_a_void_invoice_cannot_change_its_content_either(customer, make_issued_invoice):
    invoice = services.invoice_void(invoice=make_issued_invoice(customer), reason="never sent")
    invoice = Invoice.objects.get(pk=invoice.pk)
    invoice.net_total, invoice.gross_total = D("1.00"), D("1.00") + invoice.tax_total
    with pytest.raises(ValueError, match="cannot change"):
        invoice.save()
    line = invoice.lines.first()
    line.description = "changed"
    with pytest.raises(ValueError, match="cannot change"):
        line.save()


def test_a_void_invoice_that_changed_is_reported_by_the_audit(customer, make_issued_invoice):
    invoice = services.invoice_void(invoice=make_issued_invoice(customer), reason="never sent")
    assert run_audit() == []
    InvoiceLine.objects.filter(invoice=invoice, position=1).update(description="tampered")  # behind the guards
    findings = {f.check: f.rows for f in run_audit()}
    assert list(findings) == ["issued_unchanged"]
    assert findings["issued_unchanged"] == [f"{invoice.number}: content differs from what was issued"]


def test_order_line_uniqueness_holds_for_live_lines_only(customer, make_fulfilled_order):
    order = make_fulfilled_order(customer)
    invoice = services.invoice_issue(invoice=services.invoice_create_from_orders(orders=[order]))
    order_line = invoice.lines.first().order_line

    def second_line():
        other = Invoice.objects.create(customer=customer, currency="EUR")
        InvoiceLine.objects.bulk_create(
            [
                InvoiceLine(
                    invoice=other,
                    order_line=order_line,
                    description="again",
                    quantity=1,
                    unit_price=1,
                    tax_percent=0,
                    net_amount=1,
                )
            ]
        )

    # While the invoice stands, the database refuses a second line for its order line.
    with pytest.raises(IntegrityError), transaction.atomic():
        second_line()
    # Voided, its lines no longer hold their order lines: billing them again is allowed.
    services.invoice_void(invoice=invoice, reason="never sent")
    with transaction.atomic():
        second_line()
    # But only one live line at a time: a third one is refused again.
    with pytest.raises(IntegrityError), transaction.atomic():
        second_line()


def test_the_audit_catches_a_line_released_behind_the_services_back(customer, make_issued_invoice):
    invoice = make_issued_invoice(customer)
    InvoiceLine.objects.filter(invoice=invoice).update(voided=True)  # frees the order lines wrongly
    findings = {f.check: f.rows for f in run_audit()}
    assert list(findings) == ["void_lines_released"]
    assert len(findings["void_lines_released"]) == 2 and invoice.number in findings["void_lines_released"][0]


@pytest.mark.parametrize("reason", ["", "   ", "x" * 256])
def test_a_reason_is_required_and_bounded(customer, make_issued_invoice, reason):
    invoice = make_issued_invoice(customer)
    before = _snapshot(invoice)
    with pytest.raises(ValidationFailed) as exc:
        services.invoice_void(invoice=invoice, reason=reason)
    assert "reason" in exc.value.details
    assert _snapshot(invoice) == before


def test_paid_or_partially_paid_invoices_are_refused(customer, make_issued_invoice):
    partly = make_issued_invoice(customer, issue_date=date(2026, 1, 1))
    paid = make_issued_invoice(customer, issue_date=date(2026, 1, 2))
    payment_record(
        customer=customer,
        method="card",
        amount=D("500.00"),
        currency="EUR",
        allocations=[{"invoice": partly, "amount": D("10.00")}, {"invoice": paid, "amount": D("462.62")}],
    )
    for invoice, status in [(partly, "partially paid"), (paid, "paid")]:
        before = _snapshot(invoice)
        with pytest.raises(InvalidTransition, match=f"is {status}; only an issued invoice") as exc:
            services.invoice_void(invoice=invoice, reason="oops")
        assert exc.value.status == 409
        assert _snapshot(invoice) == before
    assert Order.objects.filter(status=OrderStatus.FULFILLED).count() == 0


def test_credited_invoices_credit_notes_and_penalty_invoices_are_refused(customer, make_issued_invoice):
    invoice = make_issued_invoice(customer)
    note = services.invoice_credit(
        invoice=invoice, reason="one chair", lines=[{"line": invoice.lines.first(), "quantity": D("1")}]
    )
    with pytest.raises(InvalidTransition, match="Correct it with a credit note"):
        services.invoice_void(invoice=invoice, reason="oops")
    with pytest.raises(InvalidTransition, match="a credit note is applied when it is issued"):
        services.invoice_void(invoice=note, reason="oops")
    assert Invoice.objects.get(pk=invoice.pk).status == InvoiceStatus.PARTIALLY_PAID
    assert Invoice.objects.get(pk=note.pk).status == InvoiceStatus.PAID


def test_an_invoice_with_penalties_assessed_is_refused(make_issued_invoice):
    terms = PaymentTermsFactory(name="Net 30 + fee", due_days=30, grace_days=0, fixed_fee=D("40.00"))
    late = CustomerFactory(payment_terms=terms)
    invoice = make_issued_invoice(late, issue_date=date(2026, 1, 1))
    penalties.assess_batch(invoice_ids=[invoice.pk], as_of=date(2026, 2, 10), issue_date=date(2026, 2, 10))
    penalty = Invoice.objects.get(kind=InvoiceKind.PENALTY)
    assert Invoice.objects.get(pk=invoice.pk).status == InvoiceStatus.ISSUED  # still unpaid, so only the rule stops it
    with pytest.raises(InvalidTransition) as exc:
        services.invoice_void(invoice=invoice, reason="oops")
    assert exc.value.code in ("has_corrections", "has_penalties")
    with pytest.raises(InvalidTransition, match="waive the penalty"):
        services.invoice_void(invoice=penalty, reason="oops")
    assert Invoice.objects.filter(status=InvoiceStatus.VOID).count() == 0


@pytest.mark.parametrize(
    ("delivery_status", "error", "code"),
    [
        (DeliveryStatus.SENT, InvalidTransition, "delivered"),
        (DeliveryStatus.POSTED, InvalidTransition, "delivered"),
        (DeliveryStatus.PENDING, Conflict, "delivery_in_progress"),
    ],
)
def test_an_invoice_the_customer_got_or_is_getting_is_refused(
    customer, make_issued_invoice, delivery_status, error, code
):
    invoice = make_issued_invoice(customer)
    Invoice.objects.filter(pk=invoice.pk).update(delivery_status=delivery_status)
    before = _snapshot(invoice)
    with pytest.raises(error) as exc:
        services.invoice_void(invoice=invoice, reason="oops")
    assert exc.value.code == code
    assert _snapshot(invoice) == before


def test_a_failed_delivery_can_be_voided_and_is_never_sent_again(customer, make_issued_invoice):
    invoice = make_issued_invoice(customer)
    Invoice.objects.filter(pk=invoice.pk).update(delivery_status=DeliveryStatus.FAILED)
    services.invoice_void(invoice=invoice, reason="address was wrong, never received")
    with pytest.raises(InvalidTransition, match="only issued documents are sent"):
        delivery.invoice_resend(invoice=invoice)
    # A delivery message still in the queue finds nothing to send.
    Invoice.objects.filter(pk=invoice.pk).update(delivery_status=DeliveryStatus.PENDING)
    assert delivery.invoice_deliver(invoice_id=invoice.pk) == "skipped"


def test_the_pdf_of_a_void_invoice_says_void_and_it_is_not_delivered(
    customer, make_issued_invoice, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks():
        invoice = make_issued_invoice(customer)
        services.invoice_render_pdf(invoice_id=invoice.pk)
        Invoice.objects.filter(pk=invoice.pk).update(delivery_status=DeliveryStatus.NONE)  # e-mail not sent yet
    with django_capture_on_commit_callbacks() as callbacks:
        services.invoice_void(invoice=invoice, reason="Duplicate of INV-2026-000009")
    assert len(callbacks) == 1  # the PDF rendered again
    with django_capture_on_commit_callbacks() as callbacks:
        rendered = services.invoice_render_pdf(invoice_id=invoice.pk)
    assert callbacks == []  # no delivery scheduled
    assert (rendered.pdf_status, rendered.delivery_status) == (PdfStatus.READY, DeliveryStatus.NONE)
    with rendered.pdf.open("rb") as f:
        reader = PdfReader(io.BytesIO(f.read()))
    text = re.sub(r"\s+", " ", " ".join(page.extract_text() for page in reader.pages))
    assert "VOID" in text and "Duplicate of INV-2026-000009" in text
    assert not reader.attachments  # no Factur-X XML inside a void invoice


def test_a_paper_invoice_in_an_open_print_batch_leaves_it(make_issued_invoice, django_capture_on_commit_callbacks):
    paper = CustomerFactory(billing_method="paper")
    with django_capture_on_commit_callbacks():
        kept, voided = make_issued_invoice(paper), make_issued_invoice(paper)
        for invoice in (kept, voided):
            services.invoice_render_pdf(invoice_id=invoice.pk)
            delivery.print_batch_add(invoice=invoice)
    batch = PrintBatch.objects.get()
    assert batch.invoice_count == 2
    services.invoice_void(invoice=voided, reason="never posted")
    batch.refresh_from_db()
    assert batch.invoice_count == 1
    assert list(PrintBatchItem.objects.values_list("invoice_id", flat=True)) == [kept.pk]
    assert Invoice.objects.get(pk=voided.pk).delivery_status == DeliveryStatus.NONE
    delivery.print_batch_close(batch=batch)
    assert PrintBatch.objects.get().invoice_count == 1
    assert run_audit() == []


def test_a_printed_paper_invoice_is_refused(make_issued_invoice, django_capture_on_commit_callbacks):
    paper = CustomerFactory(billing_method="paper")
    with django_capture_on_commit_callbacks():
        invoice = make_issued_invoice(paper)
        services.invoice_render_pdf(invoice_id=invoice.pk)
        batch = delivery.print_batch_add(invoice=invoice)
    delivery.print_batch_close(batch=batch)
    with pytest.raises(InvalidTransition, match="was printed in") as exc:
        services.invoice_void(invoice=invoice, reason="oops")
    assert exc.value.code == "delivered"
    assert PrintBatchItem.objects.filter(invoice=invoice).exists()
    assert Invoice.objects.get(pk=invoice.pk).status == InvoiceStatus.ISSUED


def test_a_void_invoice_takes_no_payment_and_no_credit(customer, make_issued_invoice):
    invoice = services.invoice_void(invoice=make_issued_invoice(customer), reason="never sent")
    with pytest.raises(ValidationFailed, match="takes no payment"):
        payment_record(
            customer=customer,
            method="card",
            amount=D("10.00"),
            currency="EUR",
            allocations=[{"invoice": invoice, "amount": D("10.00")}],
        )
    with pytest.raises(InvalidTransition, match="only issued invoices are credited"):
        services.invoice_credit(invoice=invoice, reason="x")
    with pytest.raises(InvalidTransition):
        services.invoice_void(invoice=invoice, reason="again")
