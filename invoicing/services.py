from datetime import date
from decimal import Decimal

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import transaction
from django.utils import timezone

from billing import money, terms
from billing.errors import InvalidTransition, ValidationFailed
from billing.services import audit_record
from orders.models import Order, OrderStatus
from orders.services import order_close, order_mark_invoiced, order_reopen_for_billing

from .models import SERIES_BY_KIND, Invoice, InvoiceKind, InvoiceLine, InvoiceStatus, NumberSequence, PdfStatus


def _user(actor):
    return actor if getattr(actor, "is_authenticated", False) else None


def number_next(*, series: str, year: int) -> int:
    """Take the next number of a series for a year. Call inside the issuing transaction: the
    sequence row stays locked until commit, so numbers are consecutive and never skipped."""
    NumberSequence.objects.bulk_create([NumberSequence(series=series, year=year)], ignore_conflicts=True)
    seq = NumberSequence.objects.select_for_update().get(series=series, year=year)
    seq.last_number += 1
    seq.save(update_fields=["last_number"])
    return seq.last_number


def _recompute_totals(invoice: Invoice, lines: list[InvoiceLine]) -> None:
    result = money.totals(
        (money.TaxableLine(net=line.net_amount, rate=line.tax_percent, category=line.tax_category) for line in lines),
        invoice.currency,
    )
    invoice.net_total, invoice.tax_total, invoice.gross_total = result.net, result.tax, result.gross
    invoice.tax_breakdown = [
        {"rate": str(b.rate), "category": b.category, "taxable": str(b.taxable), "tax": str(b.tax)}
        for b in result.breakdown
    ]


@transaction.atomic
def invoice_create_from_orders(*, orders: list[Order], actor=None) -> Invoice:
    """Draft one invoice holding every line of the given fulfilled orders (one customer, one currency).
    The orders become `invoiced`; the unique order-line constraint refuses a second invoice."""
    if not orders:
        raise ValidationFailed("No orders to invoice.")
    locked = list(Order.objects.select_for_update().filter(pk__in=[o.pk for o in orders]).order_by("pk"))
    customers = {o.customer_id for o in locked}
    currencies = {o.currency for o in locked}
    if len(customers) != 1 or len(currencies) != 1:
        raise ValidationFailed("Orders on one invoice must share the customer and the currency.")
    for order in locked:
        if order.status != OrderStatus.FULFILLED:
            raise InvalidTransition(
                f"Order {order.number} is {order.get_status_display().lower()}; only fulfilled orders are invoiced.",
                details={"status": order.status},
            )
    first = locked[0]
    invoice = Invoice.objects.create(
        kind=InvoiceKind.INVOICE, series="INV", customer_id=first.customer_id, currency=first.currency
    )
    lines: list[InvoiceLine] = []
    notes = {}
    for order in locked:
        for ol in order.lines.select_related("tax_rate", "product").order_by("position", "id"):
            if ol.tax_rate.legal_note:
                notes[ol.tax_category] = ol.tax_rate.legal_note
            lines.append(
                InvoiceLine(
                    invoice=invoice,
                    position=len(lines) + 1,
                    order_line=ol,
                    order_number=order.number,
                    order_date=order.order_date,
                    customer_reference=order.customer_reference,
                    sku=ol.product.sku,
                    description=ol.description,
                    quantity=ol.quantity,
                    unit=ol.unit,
                    unit_price=ol.unit_price,
                    discount_percent=ol.discount_percent,
                    tax_percent=ol.tax_percent,
                    tax_category=ol.tax_category,
                    tax_note=ol.tax_rate.legal_note,
                    net_amount=ol.net_amount,
                )
            )
    InvoiceLine.objects.bulk_create(lines)
    _recompute_totals(invoice, lines)
    invoice.save(update_fields=["net_total", "tax_total", "gross_total", "tax_breakdown"])
    for order in locked:
        order_mark_invoiced(order=order, actor=actor)
    audit_record(
        actor=actor,
        action="invoice.drafted",
        obj=invoice,
        changes={"orders": [o.number for o in locked], "gross_total": str(invoice.gross_total)},
    )
    return invoice


@transaction.atomic
def invoice_issue(*, invoice: Invoice, actor=None, issue_date: date | None = None) -> Invoice:
    """Issue a draft: gapless number under a row lock, due date from the terms, frozen snapshots.
    The PDF is rendered by a worker once the transaction commits."""
    invoice = Invoice.objects.select_for_update().select_related("customer__payment_terms").get(pk=invoice.pk)
    if invoice.status != InvoiceStatus.DRAFT:
        raise InvalidTransition(
            f"Invoice {invoice} is {invoice.get_status_display().lower()}; only drafts are issued.",
            details={"status": invoice.status},
        )
    if not invoice.lines.exists():
        raise ValidationFailed("An invoice needs at least one line before it is issued.")
    customer = invoice.customer
    payment_terms = customer.payment_terms
    issued_on = issue_date or timezone.localdate()
    invoice.series = SERIES_BY_KIND[invoice.kind]
    invoice.sequence_year = issued_on.year
    invoice.sequence_number = number_next(series=invoice.series, year=issued_on.year)
    invoice.number = f"{invoice.series}-{issued_on.year}-{invoice.sequence_number:06d}"
    invoice.issue_date = issued_on
    invoice.due_date = terms.due_date(issued_on, payment_terms.due_days, payment_terms.end_of_month)
    invoice.customer_snapshot = customer.snapshot()
    invoice.terms_snapshot = payment_terms.snapshot(invoice.currency)
    invoice.seller_snapshot = dict(settings.OTC_COMPANY)
    invoice.status = InvoiceStatus.PAID if invoice.gross_total == 0 else InvoiceStatus.ISSUED
    invoice.issued_at = timezone.now()
    invoice.issued_by = _user(actor)
    invoice.pdf_status = PdfStatus.PENDING
    invoice.content_sha256 = invoice.fingerprint()
    invoice.save()
    audit_record(
        actor=actor,
        action="invoice.issued",
        obj=invoice,
        changes={"number": invoice.number, "gross_total": str(invoice.gross_total)},
    )
    from .tasks import invoice_render_pdf

    transaction.on_commit(lambda: invoice_render_pdf.delay(invoice.pk))
    return invoice


@transaction.atomic
def invoice_void(*, invoice: Invoice, actor=None, reason: str) -> Invoice:
    """Void a draft invoice: its orders return to `fulfilled` and can be billed again.
    An issued invoice is corrected by a credit note instead."""
    invoice = Invoice.objects.select_for_update().get(pk=invoice.pk)
    if invoice.status != InvoiceStatus.DRAFT:
        raise InvalidTransition(
            f"Invoice {invoice} is {invoice.get_status_display().lower()}; issue a credit note to correct it.",
            details={"status": invoice.status},
        )
    if not reason:
        raise ValidationFailed("Give a reason for voiding.", details={"reason": ["This field is required."]})
    order_ids = set(invoice.lines.exclude(order_line=None).values_list("order_line__order_id", flat=True))
    invoice.lines.all().delete()
    for order in Order.objects.filter(pk__in=order_ids).order_by("pk"):
        order_reopen_for_billing(order=order, actor=actor, note=f"Draft {invoice} voided")
    invoice.status = InvoiceStatus.VOID
    invoice.voided_at = timezone.now()
    invoice.void_reason = reason
    invoice.net_total = invoice.tax_total = invoice.gross_total = Decimal("0")
    invoice.tax_breakdown = []
    invoice.save()
    audit_record(actor=actor, action="invoice.voided", obj=invoice, changes={"reason": reason})
    return invoice


def invoice_set_amount_paid(*, invoice: Invoice, amount_paid: Decimal, actor=None) -> Invoice:
    """Record what has been paid on an invoice the caller holds locked; the status follows the
    balance, and orders whose invoices are all paid are closed."""
    if invoice.status not in (InvoiceStatus.ISSUED, InvoiceStatus.PARTIALLY_PAID, InvoiceStatus.PAID):
        raise InvalidTransition(
            f"Invoice {invoice} is {invoice.get_status_display().lower()}; it cannot take payments."
        )
    if amount_paid < 0 or amount_paid > invoice.gross_total:
        raise ValidationFailed(f"Invoice {invoice} totals {invoice.gross_total}; {amount_paid} cannot be paid on it.")
    invoice.amount_paid = amount_paid
    if amount_paid == invoice.gross_total:
        invoice.status = InvoiceStatus.PAID
    elif amount_paid > 0:
        invoice.status = InvoiceStatus.PARTIALLY_PAID
    else:
        invoice.status = InvoiceStatus.ISSUED
    invoice.save(update_fields=["amount_paid", "status", "updated_at"])
    if invoice.status == InvoiceStatus.PAID:
        _close_paid_orders(invoice, actor)
    return invoice


def _close_paid_orders(invoice: Invoice, actor) -> None:
    orders = Order.objects.filter(lines__invoice_lines__invoice=invoice, status=OrderStatus.INVOICED).distinct()
    for order in orders.order_by("pk"):
        unpaid = (
            Invoice.objects.filter(lines__order_line__order=order)
            .exclude(status__in=[InvoiceStatus.PAID, InvoiceStatus.VOID])
            .exclude(pk=invoice.pk)
        )
        if not unpaid.exists():
            order_close(order=order, actor=actor)


def invoice_render_pdf(*, invoice_id: int) -> Invoice | None:
    """Render and store an issued invoice's PDF with its SHA-256. Idempotent: a ready PDF is kept."""
    import hashlib

    from .pdf import render_invoice_pdf

    invoice = Invoice.objects.filter(pk=invoice_id).first()
    if invoice is None or invoice.status == InvoiceStatus.DRAFT:
        return None
    if invoice.pdf_status == PdfStatus.READY and invoice.pdf:
        return invoice
    data = render_invoice_pdf(invoice)
    with transaction.atomic():
        invoice = Invoice.objects.select_for_update().filter(pk=invoice_id).first()
        if invoice is None:
            return None
        if invoice.pdf_status == PdfStatus.READY and invoice.pdf:
            return invoice
        invoice.pdf.save(f"{invoice.number}.pdf", ContentFile(data), save=False)
        invoice.pdf_sha256 = hashlib.sha256(data).hexdigest()
        invoice.pdf_status = PdfStatus.READY
        invoice.pdf_error = ""
        invoice.pdf_attempts += 1
        invoice.pdf_rendered_at = timezone.now()
        invoice.save(
            update_fields=[
                "pdf",
                "pdf_sha256",
                "pdf_status",
                "pdf_error",
                "pdf_attempts",
                "pdf_rendered_at",
                "updated_at",
            ]
        )
    return invoice


def invoice_mark_pdf_failed(*, invoice_id: int, error: str) -> None:
    Invoice.objects.filter(pk=invoice_id).update(pdf_status=PdfStatus.FAILED, pdf_error=error[:2000])


def invoice_request_pdf(*, invoice: Invoice, actor=None) -> Invoice:
    """Throw away the stored PDF and render it again (admin repair)."""
    with transaction.atomic():
        invoice = Invoice.objects.select_for_update().get(pk=invoice.pk)
        if invoice.status == InvoiceStatus.DRAFT:
            raise InvalidTransition("A draft has no PDF; issue it first.")
        invoice.pdf_status = PdfStatus.PENDING
        invoice.pdf_error = ""
        invoice.pdf = ""
        invoice.save(update_fields=["pdf_status", "pdf_error", "pdf", "updated_at"])
        audit_record(actor=actor, action="invoice.pdf_requested", obj=invoice)
        from .tasks import invoice_render_pdf as task

        transaction.on_commit(lambda: task.delay(invoice.pk))
    return invoice
