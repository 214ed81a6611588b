"""Delivering issued invoices by the customer's billing method: e-mail (electronic) or print batch (paper)."""

import importlib.util
import smtplib
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from decimal import Decimal
from unittest import mock

import pytest
from django.conf import settings
from django.core import mail
from django.core.mail.backends.locmem import EmailBackend
from django.db import connection
from django.utils import timezone

from billing.errors import Conflict, InvalidTransition
from billing.models import AuditEvent, Contact
from invoicing import delivery, services, tasks
from invoicing.models import DeliveryStatus, Invoice, PdfStatus, PrintBatch, PrintBatchStatus
from tests.factories import CustomerFactory

D = Decimal
# The e-invoice module comes with its own change; the XML is attached whenever it provides ubl_xml.
HAS_UBL = importlib.util.find_spec("invoicing.einvoice") is not None and hasattr(
    importlib.import_module("invoicing.einvoice"), "ubl_xml"
)


@pytest.fixture
def eager_tasks():
    """Run Celery tasks in-process (the real task code, without a broker) for the test."""
    from otc.celery import app

    saved = app.conf.task_always_eager, app.conf.task_eager_propagates
    app.conf.task_always_eager = app.conf.task_eager_propagates = True
    yield
    app.conf.task_always_eager, app.conf.task_eager_propagates = saved


@pytest.fixture
def electronic_customer(db):
    customer = CustomerFactory(name="Dupont SA", legal_name="Dupont SA", email="ap@dupont.example")
    Contact.objects.create(customer=customer, name="Jeanne Roux", email="jeanne@dupont.example", role="Controller")
    Contact.objects.create(customer=customer, name="Paul Petit", email="paul@dupont.example", receives_invoices=False)
    Contact.objects.create(customer=customer, name="Duplicate", email="AP@dupont.example", receives_invoices=True)
    return customer


@pytest.fixture
def deliver_issued(make_issued_invoice, eager_tasks, django_capture_on_commit_callbacks):
    """Issue an invoice and let the workers' chain run in-process: PDF, then delivery."""

    def issue(customer, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            invoice = make_issued_invoice(customer, **kwargs)
        invoice.refresh_from_db()
        return invoice

    return issue


def _actions(invoice, action):
    return list(AuditEvent.objects.filter(object_id=invoice.pk, action=action).order_by("id"))


pytestmark = pytest.mark.django_db


def test_electronic_invoice_is_emailed_once_with_its_pdf_to_billing_address_and_contacts(
    electronic_customer, deliver_issued, mailoutbox
):
    invoice = deliver_issued(electronic_customer)
    assert invoice.pdf_status == PdfStatus.READY
    assert invoice.delivery_status == DeliveryStatus.SENT
    assert invoice.delivered_at is not None and invoice.delivery_attempts == 1 and invoice.delivery_error == ""

    assert len(mailoutbox) == 1
    message = mailoutbox[0]
    # The billing address and the contact who receives invoices; not Paul (opted out), and the
    # billing address only once.
    assert message.to == ["ap@dupont.example", "jeanne@dupont.example"]
    assert message.from_email == settings.DEFAULT_FROM_EMAIL
    assert invoice.number in message.subject and settings.OTC_COMPANY["name"] in message.subject

    names = [name for name, _content, _mimetype in message.attachments]
    expected = [f"{invoice.number}.pdf"] + ([f"{invoice.number}.xml"] if HAS_UBL else [])
    assert names == expected
    _name, pdf_bytes, pdf_type = message.attachments[0]
    assert pdf_type == "application/pdf"
    assert pdf_bytes == invoice.pdf.open("rb").read()
    if HAS_UBL:
        _name, xml, xml_type = message.attachments[1]
        assert xml_type == "application/xml"
        assert b"urn:oasis:names:specification:ubl:schema:xsd:Invoice-2" in xml
        assert f"<cbc:ID>{invoice.number}</cbc:ID>".encode() in xml

    # Both bodies say what is due, by when and how to pay.
    html, html_type = message.alternatives[0]
    assert html_type == "text/html"
    for body in (message.body, html):
        assert "462.62" in body
        assert invoice.due_date.isoformat() in body
        assert settings.OTC_COMPANY["iban"] in body
        assert invoice.terms_snapshot["text"] in body
    assert "<" not in message.body  # the plain-text body is not HTML

    sent = _actions(invoice, "invoice.sent")
    assert len(sent) == 1 and sent[0].changes["to"] == message.to


def test_snapshot_keeps_which_contacts_receive_invoices(electronic_customer):
    contacts = {c["name"]: c["receives_invoices"] for c in electronic_customer.snapshot()["contacts"]}
    assert contacts["Jeanne Roux"] is True and contacts["Paul Petit"] is False


def test_a_second_delivery_or_a_new_pdf_sends_no_second_email(
    electronic_customer, deliver_issued, mailoutbox, user, django_capture_on_commit_callbacks
):
    invoice = deliver_issued(electronic_customer)
    assert len(mailoutbox) == 1

    # The same message delivered again (a redelivered or duplicated task): nothing is sent.
    assert tasks.invoice_deliver.apply(args=[invoice.pk]).get() == "skipped"
    # Staff re-render the PDF: the invoice was delivered already, so it is not sent again.
    with django_capture_on_commit_callbacks(execute=True):
        services.invoice_request_pdf(invoice=invoice, actor=user)
    invoice.refresh_from_db()
    assert invoice.pdf_status == PdfStatus.READY and invoice.pdf_attempts == 2
    assert len(mailoutbox) == 1
    assert invoice.delivery_status == DeliveryStatus.SENT and invoice.delivery_attempts == 1


def test_resend_sends_again_and_is_audited(
    electronic_customer, deliver_issued, mailoutbox, user, django_capture_on_commit_callbacks
):
    invoice = deliver_issued(electronic_customer)
    with django_capture_on_commit_callbacks(execute=True):
        delivery.invoice_resend(invoice=invoice, actor=user)
    invoice.refresh_from_db()
    assert len(mailoutbox) == 2
    assert mailoutbox[1].to == mailoutbox[0].to and mailoutbox[1].subject == mailoutbox[0].subject
    assert invoice.delivery_status == DeliveryStatus.SENT and invoice.delivery_attempts == 2
    requested = _actions(invoice, "invoice.resend_requested")
    assert len(requested) == 1 and requested[0].actor == user
    assert requested[0].changes["delivery_status"] == ["sent", "pending"]
    assert len(_actions(invoice, "invoice.sent")) == 2


def test_smtp_failure_is_retried_with_backoff_then_marked_failed(
    electronic_customer, deliver_issued, mailoutbox, user, django_capture_on_commit_callbacks
):
    from otc.celery import app

    # In-process, Celery's apply() runs a retry at once, unless it propagates it as an error.
    app.conf.task_eager_propagates = False
    with mock.patch.object(
        EmailBackend, "send_messages", side_effect=smtplib.SMTPException("421 Service not available")
    ) as send:
        invoice = deliver_issued(electronic_customer)
    app.conf.task_eager_propagates = True  # the eager_tasks fixture restores the suite's setting
    assert send.call_count == 1 + tasks.invoice_deliver.max_retries
    assert mailoutbox == []
    assert invoice.delivery_status == DeliveryStatus.FAILED
    assert invoice.delivery_attempts == 6
    assert "421 Service not available" in invoice.delivery_error
    assert invoice.delivered_at is None
    assert len(_actions(invoice, "invoice.delivery_failed")) == 1
    assert [tasks._delivery_backoff(n) for n in range(5)] == [60, 120, 240, 480, 960]

    # Once the mail server is back, staff resend it.
    with django_capture_on_commit_callbacks(execute=True):
        delivery.invoice_resend(invoice=invoice, actor=user)
    invoice.refresh_from_db()
    assert invoice.delivery_status == DeliveryStatus.SENT and invoice.delivery_error == ""
    assert len(mailoutbox) == 1


def test_a_missing_pdf_fails_the_delivery_without_retrying(
    electronic_customer, make_issued_invoice, django_capture_on_commit_callbacks, mailoutbox
):
    with django_capture_on_commit_callbacks():  # render, but leave the delivery message unsent
        invoice = make_issued_invoice(electronic_customer)
        services.invoice_render_pdf(invoice_id=invoice.pk)
    invoice.refresh_from_db()
    assert invoice.delivery_status == DeliveryStatus.PENDING
    invoice.pdf.storage.delete(invoice.pdf.name)
    with mock.patch.object(EmailBackend, "send_messages") as send:
        assert tasks.invoice_deliver.apply(args=[invoice.pk]).get() == "failed"
    send.assert_not_called()
    invoice.refresh_from_db()
    assert invoice.delivery_status == DeliveryStatus.FAILED
    assert "missing from storage" in invoice.delivery_error


def test_the_sweeper_re_enqueues_a_delivery_whose_message_was_lost(
    electronic_customer, make_issued_invoice, django_capture_on_commit_callbacks, eager_tasks, mailoutbox
):
    with django_capture_on_commit_callbacks():  # the delivery message is lost
        invoice = make_issued_invoice(electronic_customer)
        services.invoice_render_pdf(invoice_id=invoice.pk)
    assert tasks.invoice_sweep_pending_deliveries.apply().get() == 0  # too recent to be lost
    Invoice.objects.filter(pk=invoice.pk).update(updated_at=timezone.now() - timedelta(hours=1))
    assert tasks.invoice_sweep_pending_deliveries.apply().get() == 1
    invoice.refresh_from_db()
    assert invoice.delivery_status == DeliveryStatus.SENT and len(mailoutbox) == 1
    assert tasks.invoice_sweep_pending_deliveries.apply().get() == 0


def test_paper_invoice_joins_todays_open_print_batch(customer, deliver_issued, mailoutbox):
    paper = CustomerFactory(billing_method="paper")
    first = deliver_issued(paper)
    second = deliver_issued(paper)
    deliver_issued(customer)  # an electronic one is e-mailed, not printed
    assert len(mailoutbox) == 1
    batch = PrintBatch.objects.get()
    assert (batch.date, batch.status, batch.invoice_count) == (timezone.localdate(), PrintBatchStatus.OPEN, 2)
    assert sorted(batch.items.values_list("invoice_id", flat=True)) == [first.pk, second.pk]
    for invoice in (first, second):
        assert invoice.delivery_status == DeliveryStatus.QUEUED_FOR_PRINT
        assert len(_actions(invoice, "invoice.queued_for_print")) == 1


def test_resending_a_paper_invoice_already_in_a_batch_is_refused(customer, deliver_issued, user):
    invoice = deliver_issued(CustomerFactory(billing_method="paper"))
    with pytest.raises(Conflict) as refused:
        delivery.invoice_resend(invoice=invoice, actor=user)
    assert refused.value.code == "already_in_print_batch"
    assert refused.value.details == {"print_batch": PrintBatch.objects.get().pk}
    invoice.refresh_from_db()
    assert invoice.delivery_status == DeliveryStatus.QUEUED_FOR_PRINT


def test_drafts_and_invoices_without_a_pdf_are_not_resent(customer, make_fulfilled_order, make_issued_invoice, user):
    draft = services.invoice_create_from_orders(orders=[make_fulfilled_order(customer)])
    with pytest.raises(InvalidTransition):
        delivery.invoice_resend(invoice=draft, actor=user)
    pending = make_issued_invoice(customer)  # its PDF is still rendering
    with pytest.raises(Conflict) as refused:
        delivery.invoice_resend(invoice=pending, actor=user)
    assert refused.value.code == "pdf_not_ready"
    assert not AuditEvent.objects.filter(action="invoice.resend_requested").exists()


@pytest.mark.django_db(transaction=True)
def test_two_workers_delivering_the_same_invoice_at_once_send_one_email(eager_tasks, make_issued_invoice):
    customer = CustomerFactory(email="ap@race.example")
    invoice = make_issued_invoice(customer)  # in-process: PDF rendered, invoice e-mailed
    assert Invoice.objects.get(pk=invoice.pk).delivery_status == DeliveryStatus.SENT
    # A delivery is pending and its message arrives twice, at the same moment.
    Invoice.objects.filter(pk=invoice.pk).update(delivery_status=DeliveryStatus.PENDING)
    mail.outbox.clear()

    original = EmailBackend.send_messages

    def slow_send(self, messages):
        time.sleep(0.5)  # a slow mail server: the second worker arrives while the first sends
        return original(self, messages)

    barrier = threading.Barrier(2)

    def deliver(_):
        try:
            barrier.wait(timeout=10)
            return delivery.invoice_deliver(invoice_id=invoice.pk)
        finally:
            connection.close()

    with mock.patch.object(EmailBackend, "send_messages", slow_send), ThreadPoolExecutor(2) as pool:
        outcomes = sorted(pool.map(deliver, range(2)))
    assert outcomes[0] in ("busy", "skipped") and outcomes[1] == "sent", outcomes
    assert len(mail.outbox) == 1
    invoice.refresh_from_db()
    assert invoice.delivery_status == DeliveryStatus.SENT


def _wait_for(invoice: Invoice, statuses, timeout: float = 90) -> Invoice:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        invoice.refresh_from_db()
        if invoice.delivery_status in statuses or invoice.pdf_status == PdfStatus.FAILED:
            return invoice
        time.sleep(0.25)
    raise AssertionError(f"{invoice} still {invoice.delivery_status} (PDF {invoice.pdf_status}) after {timeout} s")


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_emails_an_electronic_invoice_and_queues_a_paper_one(celery_worker_process, make_issued_invoice):
    electronic = CustomerFactory(email="ap@worker.example")
    Contact.objects.create(customer=electronic, name="Ines", email="ines@worker.example")
    paper = CustomerFactory(billing_method="paper")
    emailed = make_issued_invoice(electronic)
    printed = make_issued_invoice(paper)

    emailed = _wait_for(emailed, {DeliveryStatus.SENT, DeliveryStatus.FAILED})
    assert emailed.delivery_status == DeliveryStatus.SENT, (emailed.delivery_error, emailed.pdf_error)
    assert emailed.delivered_at is not None
    sent = AuditEvent.objects.get(object_id=emailed.pk, action="invoice.sent")
    assert sent.changes["to"] == ["ap@worker.example", "ines@worker.example"]
    assert f"{emailed.number}.pdf" in sent.changes["attachments"]

    printed = _wait_for(printed, {DeliveryStatus.QUEUED_FOR_PRINT, DeliveryStatus.FAILED})
    assert printed.delivery_status == DeliveryStatus.QUEUED_FOR_PRINT
    batch = PrintBatch.objects.get(status=PrintBatchStatus.OPEN)
    assert list(batch.items.values_list("invoice_id", flat=True)) == [printed.pk]
