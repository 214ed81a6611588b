"""Getting issued invoices to the customer, by the billing method frozen at issue.

- electronic: an e-mail to the billing address and every contact who receives invoices, with the
  PDF and, where the e-invoice module provides it, the UBL XML;
- paper: the invoice joins the day's open print batch; closing the batch merges the PDFs into one
  file to print (duplex-safe), and marking it posted completes the delivery.

Once the PDF worker has stored the PDF it marks the delivery `pending` and enqueues
`invoicing.tasks.invoice_deliver` on commit (see `invoice_delivery_schedule`). Delivery happens
once: a sent invoice is sent again only through `invoice_resend`.
"""

import hashlib
import importlib.util
import io
import logging
from datetime import date

from django.conf import settings
from django.core.cache import cache
from django.core.files.base import ContentFile
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.db.models import Exists, F, OuterRef
from django.template.loader import render_to_string
from django.utils import timezone

from billing.errors import Conflict, InvalidTransition, ValidationFailed
from billing.jobs import enqueue_on_commit
from billing.models import BillingMethod
from billing.services import actor_user, audit_record

from .models import (
    DeliveryStatus,
    Invoice,
    InvoiceKind,
    InvoiceStatus,
    PdfStatus,
    PrintBatch,
    PrintBatchItem,
    PrintBatchStatus,
)

log = logging.getLogger(__name__)

# Held while one worker e-mails an invoice, so a duplicate message or a concurrent resend waits its
# turn instead of sending a second copy. Longer than the delivery task's hard time limit, so it
# never expires under a live sender; a crashed sender's lock expires and the sweeper retries.
SEND_LOCK_SECONDS = 600
UNDELIVERABLE = (InvoiceStatus.DRAFT, InvoiceStatus.VOID)


def billing_method(invoice: Invoice) -> str:
    """The billing method frozen at issue (the customer's current one for older snapshots)."""
    return (invoice.customer_snapshot or {}).get("billing_method") or invoice.customer.billing_method


def invoice_recipients(invoice: Invoice) -> list[str]:
    """The billing e-mail and every contact who receives invoices, from the snapshot taken at issue.
    Contacts in snapshots older than the `receives_invoices` flag count as receiving (the default)."""
    snapshot = invoice.customer_snapshot or {}
    candidates = [snapshot.get("email")] + [
        contact.get("email") for contact in snapshot.get("contacts") or [] if contact.get("receives_invoices", True)
    ]
    seen: set[str] = set()
    recipients = []
    for address in candidates:
        address = (address or "").strip()
        if address and address.lower() not in seen:
            seen.add(address.lower())
            recipients.append(address)
    return recipients


def _read_pdf(invoice: Invoice) -> bytes:
    if invoice.pdf_status != PdfStatus.READY or not invoice.pdf:
        raise Conflict(f"The PDF of {invoice} is not ready yet.", code="pdf_not_ready")
    try:
        with invoice.pdf.open("rb") as handle:
            return handle.read()
    except FileNotFoundError:
        raise Conflict(f"The PDF of {invoice} is missing from storage; request it again.", code="pdf_missing") from None


def _ubl_xml(invoice: Invoice) -> bytes | None:
    """The UBL 2.1 XML from invoicing.einvoice, when that module is installed."""
    if importlib.util.find_spec("invoicing.einvoice") is None:
        return None
    from . import einvoice

    make = getattr(einvoice, "ubl_xml", None)
    return make(invoice) if make else None


def invoice_email(invoice: Invoice) -> EmailMultiAlternatives:
    """The e-mail that delivers an invoice: text and HTML body, the PDF and the UBL XML attached."""
    recipients = invoice_recipients(invoice)
    if not recipients:
        raise ValidationFailed(f"{invoice} has no e-mail address to send to.", code="no_recipient")
    pdf = _read_pdf(invoice)
    xml = _ubl_xml(invoice)
    seller = invoice.seller_snapshot or settings.OTC_COMPANY
    context = {
        "has_xml": bool(xml),
        "invoice": invoice,
        "kind": invoice.get_kind_display(),
        "is_credit_note": invoice.kind == InvoiceKind.CREDIT_NOTE,
        "amount_due": invoice.balance,
        "seller": seller,
        "customer": invoice.customer_snapshot or {},
        "terms": invoice.terms_snapshot or {},
    }
    message = EmailMultiAlternatives(
        subject=f"{invoice.get_kind_display()} {invoice.number} from {seller.get('name') or seller.get('legal_name')}",
        body=render_to_string("invoicing/email/invoice.txt", context),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=recipients,
        reply_to=[seller["email"]] if seller.get("email") else None,
    )
    message.attach_alternative(render_to_string("invoicing/email/invoice.html", context), "text/html")
    message.attach(f"{invoice.number}.pdf", pdf, "application/pdf")
    if xml:
        message.attach(f"{invoice.number}.xml", xml, "application/xml")
    return message


def _enqueue(invoice_id: int) -> None:
    from .tasks import invoice_deliver

    enqueue_on_commit(invoice_deliver, invoice_id)


def invoice_delivery_enqueue(invoice_id: int) -> None:
    """Send an invoice whose delivery was just marked pending (see invoice_delivery_schedule and
    services.invoice_render_pdf's one-statement store) to the delivery worker, on commit."""
    _enqueue(invoice_id)


def invoice_delivery_schedule(*, invoice: Invoice) -> bool:
    """Called by the PDF worker in the transaction that stores the PDF, with the invoice locked:
    mark the delivery pending and enqueue it on commit. An invoice already delivered (or on its
    way to print) is left alone, so rendering the PDF again never sends it twice."""
    if invoice.status in UNDELIVERABLE or invoice.delivery_status not in (DeliveryStatus.NONE, DeliveryStatus.PENDING):
        return False
    if invoice.delivery_status != DeliveryStatus.PENDING:
        invoice.delivery_status = DeliveryStatus.PENDING
        invoice.save(update_fields=["delivery_status", "updated_at"])
    _enqueue(invoice.pk)
    return True


def invoice_deliver(*, invoice_id: int) -> str:
    """Deliver an invoice whose delivery is pending, by its billing method. Returns what happened:
    `sent`, `queued_for_print`, `busy` (another worker is sending it) or `skipped` (nothing to do).
    Raises the mail server's error (smtplib.SMTPException, OSError) for the task to retry, and a
    DomainError when retrying cannot help (no PDF, no address)."""
    invoice = Invoice.objects.select_related("customer").filter(pk=invoice_id).first()
    if invoice is None or invoice.status in UNDELIVERABLE or invoice.delivery_status != DeliveryStatus.PENDING:
        return "skipped"
    if invoice.pdf_status != PdfStatus.READY:
        return "skipped"  # the PDF worker schedules the delivery again once the PDF is stored
    if billing_method(invoice) == BillingMethod.PAPER:
        print_batch_add(invoice=invoice)
        return "queued_for_print"

    lock = f"otc:invoice-deliver:{invoice_id}"
    if not cache.add(lock, timezone.now().isoformat(), SEND_LOCK_SECONDS):
        return "busy"
    try:
        # Re-read under the lock: the holder before us may have sent it already.
        invoice = Invoice.objects.select_related("customer").get(pk=invoice_id)
        if invoice.delivery_status != DeliveryStatus.PENDING:
            return "skipped"
        message = invoice_email(invoice)
        try:
            message.send()
        except Exception as exc:
            Invoice.objects.filter(pk=invoice_id).update(
                delivery_attempts=F("delivery_attempts") + 1,
                delivery_error=f"{type(exc).__name__}: {exc}"[:2000],
                updated_at=timezone.now(),
            )
            raise
        with transaction.atomic():
            invoice = Invoice.objects.select_for_update().get(pk=invoice_id)
            invoice.delivery_status = DeliveryStatus.SENT
            invoice.delivered_at = timezone.now()
            invoice.delivery_error = ""
            invoice.delivery_attempts += 1
            invoice.save(
                update_fields=["delivery_status", "delivered_at", "delivery_error", "delivery_attempts", "updated_at"]
            )
            audit_record(
                actor=None,
                action="invoice.sent",
                obj=invoice,
                changes={
                    "to": list(message.to),
                    "subject": message.subject,
                    "attachments": [name for name, _content, _type in message.attachments],
                },
            )
        return "sent"
    finally:
        cache.delete(lock)


def invoice_mark_delivery_failed(*, invoice_id: int, error: str) -> None:
    """The last try failed: say so on the invoice (staff can resend) and in the audit trail."""
    with transaction.atomic():
        invoice = Invoice.objects.select_for_update().filter(pk=invoice_id).first()
        if invoice is None or invoice.delivery_status != DeliveryStatus.PENDING:
            return
        invoice.delivery_status = DeliveryStatus.FAILED
        invoice.delivery_error = error[:2000]
        invoice.save(update_fields=["delivery_status", "delivery_error", "updated_at"])
        audit_record(actor=None, action="invoice.delivery_failed", obj=invoice, changes={"error": error[:500]})


def invoice_resend(*, invoice: Invoice, actor=None) -> Invoice:
    """Deliver an issued invoice again on request: e-mail it once more (electronic), or put it in
    a print batch if it is in none yet (paper). Asking while a delivery is pending sends one copy."""
    with transaction.atomic():
        invoice = Invoice.objects.select_for_update().select_related("customer").get(pk=invoice.pk)
        if invoice.status in UNDELIVERABLE:
            raise InvalidTransition(
                f"{invoice} is {invoice.get_status_display().lower()}; only issued documents are sent.",
                details={"status": invoice.status},
            )
        if invoice.pdf_status != PdfStatus.READY or not invoice.pdf:
            raise Conflict(
                f"The PDF of {invoice} is not ready yet; it is sent as soon as it is.",
                code="pdf_not_ready",
                details={"pdf_status": invoice.pdf_status},
            )
        method = billing_method(invoice)
        if method == BillingMethod.PAPER:
            item = PrintBatchItem.objects.select_related("batch").filter(invoice=invoice).first()
            if item is not None:
                raise Conflict(
                    f"{invoice} is already in {item.batch} ({item.batch.get_status_display().lower()}); "
                    "reprint it from its PDF.",
                    code="already_in_print_batch",
                    details={"print_batch": item.batch_id},
                )
        previous = invoice.delivery_status
        invoice.delivery_status = DeliveryStatus.PENDING
        invoice.delivery_error = ""
        invoice.save(update_fields=["delivery_status", "delivery_error", "updated_at"])
        audit_record(
            actor=actor,
            action="invoice.resend_requested",
            obj=invoice,
            changes={"billing_method": method, "delivery_status": [previous, DeliveryStatus.PENDING]},
        )
        _enqueue(invoice.pk)
    return invoice


# --- Print batches -------------------------------------------------------------------------------


def print_batch_add(*, invoice: Invoice, actor=None, day: date | None = None) -> PrintBatch:
    """Put an issued paper invoice into the day's open print batch, opening one if there is none.
    Concurrent calls share one batch (one open batch per day is a database constraint); an invoice
    is in at most one batch. Locks the batch, then the invoice (the order every batch service uses)."""
    day = day or timezone.localdate()
    for _ in range(3):
        with transaction.atomic():
            PrintBatch.objects.bulk_create([PrintBatch(date=day)], ignore_conflicts=True)
            batch = PrintBatch.objects.select_for_update().filter(date=day, status=PrintBatchStatus.OPEN).first()
            if batch is None:
                continue  # closed between our insert and our lock: open the next one
            invoice = Invoice.objects.select_for_update().get(pk=invoice.pk)
            if invoice.status in UNDELIVERABLE:
                raise InvalidTransition(f"{invoice} is {invoice.get_status_display().lower()}; it is not printed.")
            if invoice.pdf_status != PdfStatus.READY or not invoice.pdf:
                raise Conflict(f"The PDF of {invoice} is not ready yet.", code="pdf_not_ready")
            existing = PrintBatchItem.objects.filter(invoice=invoice).values_list("batch_id", flat=True).first()
            if existing is not None:
                raise Conflict(
                    f"{invoice} is already in print batch #{existing}.",
                    code="already_in_print_batch",
                    details={"print_batch": existing},
                )
            PrintBatchItem.objects.create(batch=batch, invoice=invoice)
            batch.invoice_count += 1
            batch.save(update_fields=["invoice_count"])
            invoice.delivery_status = DeliveryStatus.QUEUED_FOR_PRINT
            invoice.delivery_error = ""
            invoice.save(update_fields=["delivery_status", "delivery_error", "updated_at"])
            audit_record(actor=actor, action="invoice.queued_for_print", obj=invoice, changes={"print_batch": batch.pk})
            return batch
    raise Conflict("No open print batch could be found; try again.", code="print_batch_busy")


def print_batch_add_document(
    *, pdf: bytes, filename: str, title: str, customer, actor=None, day: date | None = None
) -> PrintBatchItem:
    """Put another letter to post (a payment reminder, say) into the day's open print batch, as
    its own PDF file. Invoicing stores the file and prints it after the batch's invoices; the
    caller keeps the returned item to know where its letter went."""
    day = day or timezone.localdate()
    for _ in range(3):
        with transaction.atomic():
            PrintBatch.objects.bulk_create([PrintBatch(date=day)], ignore_conflicts=True)
            batch = PrintBatch.objects.select_for_update().filter(date=day, status=PrintBatchStatus.OPEN).first()
            if batch is None:
                continue
            item = PrintBatchItem(batch=batch, title=title[:200], customer=customer)
            item.document.save(filename, ContentFile(pdf), save=False)
            item.save()
            audit_record(
                actor=actor,
                action="print_batch.document_added",
                obj=batch,
                changes={"title": item.title, "customer": str(customer), "item": item.pk},
            )
            return item
    raise Conflict("No open print batch could be found; try again.", code="print_batch_busy")


def _read_document(item: PrintBatchItem) -> bytes:
    try:
        with item.document.open("rb") as handle:
            return handle.read()
    except FileNotFoundError:
        raise Conflict(f"{item.title} is missing from storage.", code="document_missing") from None


def merge_for_duplex(documents: list[bytes]) -> tuple[bytes, int]:
    """One PDF of all documents in the given order. A document with an odd page count gets a blank
    page after it, so in duplex printing every letter starts on a fresh sheet. Returns the PDF and
    its page count."""
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    for data in documents:
        pages = PdfReader(io.BytesIO(data)).pages
        for page in pages:
            writer.add_page(page)
        if len(pages) % 2:
            last = pages[-1].mediabox
            writer.add_blank_page(width=last.width, height=last.height)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue(), len(writer.pages)


def print_batch_close(*, batch: PrintBatch, actor=None) -> PrintBatch:
    """Close an open batch: merge its invoices' PDFs, in invoice number order, into the one file
    to print. New paper invoices go to a new open batch from then on."""
    with transaction.atomic():
        batch = PrintBatch.objects.select_for_update().get(pk=batch.pk)
        if batch.status != PrintBatchStatus.OPEN:
            raise InvalidTransition(f"{batch} is {batch.get_status_display().lower()}; only an open batch is closed.")
        items = batch.items.select_related("invoice")
        invoices = [item.invoice for item in items.filter(invoice__isnull=False).order_by("invoice__number")]
        # Other letters (reminders) follow the invoices, in the order they joined.
        documents = list(items.filter(invoice__isnull=True).order_by("pk"))
        if not invoices and not documents:
            raise InvalidTransition(f"{batch} is empty; there is nothing to print.", code="empty_batch")
        data, pages = merge_for_duplex(
            [_read_pdf(invoice) for invoice in invoices] + [_read_document(item) for item in documents]
        )
        batch.pdf.save(f"print-batch-{batch.date:%Y-%m-%d}-{batch.pk}.pdf", ContentFile(data), save=False)
        batch.pdf_sha256 = hashlib.sha256(data).hexdigest()
        batch.invoice_count = len(invoices)
        batch.page_count = pages
        batch.status = PrintBatchStatus.CLOSED
        batch.closed_at = timezone.now()
        batch.save(update_fields=["pdf", "pdf_sha256", "invoice_count", "page_count", "status", "closed_at"])
        audit_record(
            actor=actor,
            action="print_batch.closed",
            obj=batch,
            changes={
                "invoices": [i.number for i in invoices],
                "documents": [d.title for d in documents],
                "pages": pages,
                "pdf_sha256": batch.pdf_sha256,
            },
        )
    return batch


def print_batch_mark_posted(*, batch: PrintBatch, actor=None) -> PrintBatch:
    """The printed batch went out in the post: its invoices are delivered."""
    with transaction.atomic():
        batch = PrintBatch.objects.select_for_update().get(pk=batch.pk)
        if batch.status != PrintBatchStatus.CLOSED:
            raise InvalidTransition(
                f"{batch} is {batch.get_status_display().lower()}; only a closed (printed) batch is posted."
            )
        ids = list(batch.items.filter(invoice__isnull=False).values_list("invoice_id", flat=True))
        invoices = list(Invoice.objects.select_for_update().filter(pk__in=ids).order_by("pk"))
        now = timezone.now()
        for invoice in invoices:
            invoice.delivery_status = DeliveryStatus.POSTED
            invoice.delivered_at = now
            invoice.save(update_fields=["delivery_status", "delivered_at", "updated_at"])
            audit_record(actor=actor, action="invoice.posted", obj=invoice, changes={"print_batch": batch.pk})
        batch.status = PrintBatchStatus.POSTED
        batch.posted_at = now
        batch.posted_by = actor_user(actor)
        batch.save(update_fields=["status", "posted_at", "posted_by"])
        audit_record(actor=actor, action="print_batch.posted", obj=batch, changes={"invoices": len(invoices)})
    return batch


def print_batches_close_due(*, before: date | None = None) -> list[int]:
    """Nightly: close every open, non-empty batch dated before `before` (default: today). A batch
    that cannot be closed (a PDF missing from storage) stays open and is logged."""
    before = before or timezone.localdate()
    closed = []
    has_items = PrintBatchItem.objects.filter(batch=OuterRef("pk"))
    due = PrintBatch.objects.filter(Exists(has_items), status=PrintBatchStatus.OPEN, date__lt=before)
    for batch in due.order_by("date", "pk"):
        try:
            print_batch_close(batch=batch)
        except (Conflict, InvalidTransition) as exc:
            log.error("Print batch %s not closed: %s", batch.pk, exc.message)
            continue
        closed.append(batch.pk)
    return closed
