from datetime import date
from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction

from billing.errors import InvalidTransition, ValidationFailed
from billing.models import AuditEvent
from invoicing import services
from invoicing.models import Invoice, InvoiceLine, InvoiceStatus, NumberSequence, PdfStatus
from orders.models import OrderStatus
from tests.factories import CustomerFactory, PaymentTermsFactory

D = Decimal
pytestmark = pytest.mark.django_db


def test_draft_from_fulfilled_order_copies_lines_and_marks_order_invoiced(customer, make_fulfilled_order, user):
    order = make_fulfilled_order(customer, customer_reference="PO-77")
    invoice = services.invoice_create_from_orders(orders=[order], actor=user)
    assert invoice.status == InvoiceStatus.DRAFT and invoice.number is None
    assert (invoice.net_total, invoice.tax_total, invoice.gross_total) == (D("397.30"), D("65.32"), D("462.62"))
    assert [(line.order_number, line.customer_reference, line.quantity) for line in invoice.lines.all()] == [
        (order.number, "PO-77", D("2.000")),
        (order.number, "PO-77", D("3.000")),
    ]
    assert invoice.tax_breakdown == [
        {"rate": "20.00", "category": "standard", "taxable": "299.80", "tax": "59.96"},
        {"rate": "5.50", "category": "reduced", "taxable": "97.50", "tax": "5.36"},
    ]
    order.refresh_from_db()
    assert order.status == OrderStatus.INVOICED


def test_only_fulfilled_orders_are_invoiced(customer, products):
    from orders.services import order_confirm, order_create

    order = order_create(customer=customer, lines=[{"product": products[0], "quantity": D("1")}])
    order_confirm(order=order)
    with pytest.raises(InvalidTransition, match="only fulfilled orders"):
        services.invoice_create_from_orders(orders=[order])
    assert not Invoice.objects.exists()


def test_an_order_line_is_never_invoiced_twice(customer, make_fulfilled_order):
    order = make_fulfilled_order(customer)
    services.invoice_create_from_orders(orders=[order])
    with pytest.raises(InvalidTransition):
        services.invoice_create_from_orders(orders=[order])
    # Even bypassing the service, the database refuses a second line for the same order line.
    first = InvoiceLine.objects.first()
    other = Invoice.objects.create(customer=customer, currency="EUR")
    with pytest.raises(IntegrityError), transaction.atomic():
        InvoiceLine.objects.bulk_create(
            [
                InvoiceLine(
                    invoice=other,
                    order_line=first.order_line,
                    description="again",
                    quantity=1,
                    unit_price=1,
                    tax_percent=0,
                    net_amount=1,
                )
            ]
        )


def test_issue_numbers_dates_and_snapshots(make_fulfilled_order, user):
    terms = PaymentTermsFactory(name="Net 45 EOM", due_days=45, end_of_month=True)
    customer = CustomerFactory(payment_terms=terms, tax_id="FR40303265045")
    order = make_fulfilled_order(customer)
    draft = services.invoice_create_from_orders(orders=[order])
    invoice = services.invoice_issue(invoice=draft, actor=user, issue_date=date(2026, 1, 15))
    assert invoice.number == "INV-2026-000001"
    assert invoice.due_date == date(2026, 3, 31)
    assert invoice.status == InvoiceStatus.ISSUED
    assert invoice.pdf_status == PdfStatus.PENDING
    assert invoice.customer_snapshot["tax_id"] == "FR40303265045"
    assert invoice.customer_snapshot["address_lines"] == ["1 Rue du Commerce", "69001 Lyon", "FR"]
    assert (
        invoice.terms_snapshot["text"]
        == "Net 45 end of month. Accepted: card, bank transfer, SEPA direct debit, ACH, wire, check, cash."
    )
    assert invoice.content_sha256 == invoice.fingerprint()
    assert AuditEvent.objects.filter(action="invoice.issued", object_id=invoice.pk, actor=user).exists()
    # The snapshot is frozen: renaming the customer later does not change the issued invoice.
    customer.name = "Renamed"
    customer.save()
    invoice.refresh_from_db()
    assert invoice.customer_snapshot["name"] != "Renamed"


def test_numbers_are_consecutive_per_series_and_year(customer, make_fulfilled_order):
    numbers = []
    for issued in [date(2026, 3, 1), date(2026, 3, 2), date(2027, 1, 2), date(2026, 12, 31)]:
        draft = services.invoice_create_from_orders(orders=[make_fulfilled_order(customer)])
        numbers.append(services.invoice_issue(invoice=draft, issue_date=issued).number)
    assert numbers == ["INV-2026-000001", "INV-2026-000002", "INV-2027-000001", "INV-2026-000003"]
    assert NumberSequence.objects.get(series="INV", year=2026).last_number == 3


def test_a_refused_issue_takes_no_number(customer, make_fulfilled_order):
    draft = services.invoice_create_from_orders(orders=[make_fulfilled_order(customer)])
    services.invoice_issue(invoice=draft, issue_date=date(2026, 5, 1))
    with pytest.raises(InvalidTransition):
        services.invoice_issue(invoice=draft, issue_date=date(2026, 5, 1))
    empty = Invoice.objects.create(customer=customer, currency="EUR")
    with pytest.raises(ValidationFailed, match="at least one line"):
        services.invoice_issue(invoice=empty, issue_date=date(2026, 5, 1))
    assert NumberSequence.objects.get(series="INV", year=2026).last_number == 1


def test_issued_invoice_content_cannot_change(customer, make_issued_invoice):
    invoice = make_issued_invoice(customer)
    invoice.gross_total = D("1.00")
    invoice.net_total = D("1.00")
    invoice.tax_total = D("0.00")
    with pytest.raises(ValueError, match="cannot change"):
        invoice.save()
    line = invoice.lines.first()
    line.unit_price = D("0.01")
    with pytest.raises(ValueError, match="cannot change"):
        line.save()
    with pytest.raises(ValueError, match="cannot change"):
        line.delete()
    fresh = Invoice.objects.get(pk=invoice.pk)
    assert fresh.gross_total == D("462.62")
    assert fresh.fingerprint() == fresh.content_sha256


def test_void_a_draft_releases_its_orders(customer, make_fulfilled_order, user):
    order = make_fulfilled_order(customer)
    draft = services.invoice_create_from_orders(orders=[order])
    with pytest.raises(ValidationFailed):
        services.invoice_void(invoice=draft, reason="")
    services.invoice_void(invoice=draft, actor=user, reason="wrong customer")
    order.refresh_from_db()
    assert order.status == OrderStatus.FULFILLED
    again = services.invoice_create_from_orders(orders=[order])
    assert again.gross_total == D("462.62")


def test_paid_invoices_are_not_voided(customer, make_issued_invoice):
    invoice = make_issued_invoice(customer)
    services.invoice_credit(invoice=invoice, reason="returned")
    with pytest.raises(InvalidTransition, match="credit note"):
        services.invoice_void(invoice=invoice, reason="oops")


def test_render_pdf_stores_file_and_hash(customer, make_issued_invoice, settings, tmp_path):
    import hashlib

    settings.MEDIA_ROOT = str(tmp_path)
    invoice = make_issued_invoice(customer)
    rendered = services.invoice_render_pdf(invoice_id=invoice.pk)
    assert rendered.pdf_status == PdfStatus.READY
    data = rendered.pdf.read()
    assert data.startswith(b"%PDF")
    assert hashlib.sha256(data).hexdigest() == rendered.pdf_sha256
    # Rendering again is a no-op: the stored PDF is kept.
    again = services.invoice_render_pdf(invoice_id=invoice.pk)
    assert again.pdf.name == rendered.pdf.name and again.pdf_attempts == 1


def _stored_pdfs(root) -> list[str]:
    return sorted(path.name for path in (root / "invoices").rglob("*.pdf"))


def test_render_pdf_marks_the_delivery_pending_and_sends_it_on_commit(
    customer, make_issued_invoice, settings, tmp_path, django_capture_on_commit_callbacks
):
    from unittest import mock

    from invoicing import tasks
    from invoicing.models import DeliveryStatus

    settings.MEDIA_ROOT = str(tmp_path)
    invoice = make_issued_invoice(customer)
    assert invoice.delivery_status == DeliveryStatus.NONE
    with (
        mock.patch.object(tasks.invoice_deliver, "delay") as deliver,
        django_capture_on_commit_callbacks(execute=True),
    ):
        rendered = services.invoice_render_pdf(invoice_id=invoice.pk)
    deliver.assert_called_once_with(invoice.pk)
    stored = Invoice.objects.get(pk=invoice.pk)
    assert (rendered.delivery_status, stored.delivery_status) == (DeliveryStatus.PENDING, DeliveryStatus.PENDING)
    assert (stored.pdf.name, stored.pdf_sha256, stored.pdf_attempts) == (rendered.pdf.name, rendered.pdf_sha256, 1)
    assert stored.pdf_rendered_at == rendered.pdf_rendered_at and stored.pdf_error == ""


def test_a_render_that_finds_the_pdf_stored_meanwhile_keeps_it_and_drops_its_own_file(
    customer, make_issued_invoice, settings, tmp_path
):
    """Two workers render the same invoice (a retried message, the sweeper): the first to store wins;
    the other stores nothing and leaves no file behind."""
    from unittest import mock

    from invoicing import einvoice

    settings.MEDIA_ROOT = str(tmp_path)
    invoice = make_issued_invoice(customer)
    real = einvoice.facturx_pdf
    calls = []

    def render_while_another_worker_stores(inv):
        calls.append(inv.pk)
        if len(calls) == 1:
            services.invoice_render_pdf(invoice_id=inv.pk)  # the other worker, done first
        return real(inv)

    with mock.patch.object(einvoice, "facturx_pdf", side_effect=render_while_another_worker_stores):
        result = services.invoice_render_pdf(invoice_id=invoice.pk)
    stored = Invoice.objects.get(pk=invoice.pk)
    assert len(calls) == 2
    assert result.pdf.name == stored.pdf.name and stored.pdf_attempts == 1
    assert _stored_pdfs(tmp_path) == [stored.pdf.name.rsplit("/", 1)[1]]


def test_a_render_that_finds_the_invoice_voided_meanwhile_stores_nothing(
    customer, make_issued_invoice, settings, tmp_path
):
    from unittest import mock

    from invoicing import einvoice

    settings.MEDIA_ROOT = str(tmp_path)
    invoice = make_issued_invoice(customer)
    real = einvoice.facturx_pdf

    def voided_while_rendering(inv):
        services.invoice_void(invoice=Invoice.objects.get(pk=inv.pk), reason="entered twice")
        return real(inv)

    with mock.patch.object(einvoice, "facturx_pdf", side_effect=voided_while_rendering):
        services.invoice_render_pdf(invoice_id=invoice.pk)
    stored = Invoice.objects.get(pk=invoice.pk)
    assert stored.status == InvoiceStatus.VOID
    assert stored.pdf_status == PdfStatus.PENDING and not stored.pdf  # the void's own render stores the VOID page
    assert _stored_pdfs(tmp_path) == []


def test_without_update_returning_the_pdf_is_stored_under_a_row_lock_the_same_way(
    customer, make_issued_invoice, settings, tmp_path, monkeypatch
):
    """The embedded SQLite default before 3.35 has no UPDATE ... RETURNING: the same store, locked."""
    from unittest import mock

    from invoicing import einvoice
    from invoicing.models import DeliveryStatus

    settings.MEDIA_ROOT = str(tmp_path)
    first, second = make_issued_invoice(customer), make_issued_invoice(customer)
    monkeypatch.setattr(services, "_update_returning", lambda: False)
    rendered = services.invoice_render_pdf(invoice_id=first.pk)
    stored = Invoice.objects.get(pk=first.pk)
    assert (stored.pdf_status, stored.pdf_attempts, stored.delivery_status) == (
        PdfStatus.READY,
        1,
        DeliveryStatus.PENDING,
    )
    assert stored.pdf.name == rendered.pdf.name and stored.pdf_sha256 == rendered.pdf_sha256

    real = einvoice.facturx_pdf
    calls = []

    def render_while_another_worker_stores(inv):
        calls.append(inv.pk)
        if len(calls) == 1:
            services.invoice_render_pdf(invoice_id=inv.pk)
        return real(inv)

    with mock.patch.object(einvoice, "facturx_pdf", side_effect=render_while_another_worker_stores):
        services.invoice_render_pdf(invoice_id=second.pk)
    second.refresh_from_db()
    assert len(calls) == 2 and second.pdf_attempts == 1
    assert _stored_pdfs(tmp_path) == sorted(invoice.pdf.name.rsplit("/", 1)[1] for invoice in (stored, second))


def test_a_broker_outage_does_not_fail_an_issue_that_committed(
    customer, make_fulfilled_order, django_capture_on_commit_callbacks
):
    from unittest import mock

    from kombu.exceptions import OperationalError

    from invoicing import tasks

    draft = services.invoice_create_from_orders(orders=[make_fulfilled_order(customer)])
    # The broker is outside the system: simulate it refusing connections.
    refused = OperationalError("connection refused")
    with (
        mock.patch.object(tasks.invoice_render_pdf, "delay", side_effect=refused),
        django_capture_on_commit_callbacks(execute=True) as callbacks,
    ):
        invoice = services.invoice_issue(invoice=draft)
    assert len(callbacks) == 1
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.ISSUED and invoice.pdf_status == PdfStatus.PENDING  # the sweeper retries
