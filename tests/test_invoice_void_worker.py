"""A void invoice on a real Celery worker (not eager): the worker renders its PDF marked VOID,
without an e-invoice inside, and never sends it."""

import io
import time

import pytest
from django.db import transaction
from pypdf import PdfReader

from invoicing import services as invoicing
from invoicing.models import DeliveryStatus, Invoice, InvoiceStatus, PdfStatus

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


def test_the_worker_renders_a_void_invoice_marked_void_and_never_sends_it(
    celery_worker_process, customer, make_issued_invoice
):
    # Issued and voided in one transaction: the worker only ever sees the void invoice.
    with transaction.atomic():
        invoice = make_issued_invoice(customer)
        invoicing.invoice_void(invoice=invoice, reason="Entered for the wrong branch")
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        invoice.refresh_from_db()
        if invoice.pdf_status in (PdfStatus.READY, PdfStatus.FAILED):
            break
        time.sleep(0.25)
    assert invoice.pdf_status == PdfStatus.READY, (invoice.pdf_status, invoice.pdf_error)
    assert invoice.status == InvoiceStatus.VOID
    reader = PdfReader(io.BytesIO(invoice.pdf.read()))
    text = " ".join(" ".join(page.extract_text() for page in reader.pages).split())
    assert "VOID" in text and "Entered for the wrong branch" in text and invoice.number in text
    assert not reader.attachments
    time.sleep(2)  # a delivery, had one been scheduled, would have been picked up by now
    invoice = Invoice.objects.get(pk=invoice.pk)
    assert (invoice.delivery_status, invoice.delivered_at) == (DeliveryStatus.NONE, None)
