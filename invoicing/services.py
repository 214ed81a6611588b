from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import connection, transaction
from django.db.models import F, Sum
from django.utils import timezone

from billing import money, terms
from billing.errors import Conflict, DomainError, InvalidTransition, ValidationFailed
from billing.jobs import enqueue_on_commit
from billing.services import actor_user, audit_record
from orders.models import Order, OrderLine, OrderStatus
from orders.services import (
    order_close,
    order_reopen_for_billing,
    order_reopen_unpaid,
    orders_mark_invoiced,
)

from .models import (
    SERIES_BY_KIND,
    CreditApplication,
    DeliveryStatus,
    Invoice,
    InvoiceKind,
    InvoiceLine,
    InvoiceStatus,
    NumberSequence,
    PdfStatus,
    PrintBatch,
    PrintBatchItem,
    PrintBatchStatus,
)


def number_next(*, series: str, year: int) -> int:
    """Take the next number of a series for a year. Call inside the issuing transaction: the
    sequence row stays locked until commit, so numbers are consecutive and never skipped."""
    return number_block(series=series, year=year, count=1)


def number_block(*, series: str, year: int, count: int) -> int:
    """Take `count` consecutive numbers at once (bulk issue); returns the first. Same locking
    as number_next: the numbers are used in the transaction that takes them, or not at all."""
    NumberSequence.objects.bulk_create([NumberSequence(series=series, year=year)], ignore_conflicts=True)
    seq = NumberSequence.objects.select_for_update().get(series=series, year=year)
    first = seq.last_number + 1
    seq.last_number += count
    seq.save(update_fields=["last_number"])
    return first


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


def invoice_check_orders(orders: list[Order]) -> None:
    """Refuse orders that cannot go on one invoice together: another customer or currency, or an
    order that is not fulfilled (the caller holds them locked)."""
    if not orders:
        raise ValidationFailed("No orders to invoice.")
    if len({o.customer_id for o in orders}) != 1 or len({o.currency for o in orders}) != 1:
        raise ValidationFailed("Orders on one invoice must share the customer and the currency.")
    for order in orders:
        if order.status != OrderStatus.FULFILLED:
            raise InvalidTransition(
                f"Order {order.number} is {order.get_status_display().lower()}; only fulfilled orders are invoiced.",
                details={"status": order.status},
            )


ORDER_LINE_COPIED = (
    "id",
    "order_id",
    "position",
    "description",
    "quantity",
    "unit",
    "unit_price",
    "discount_percent",
    "tax_percent",
    "tax_category",
    "net_amount",
)


def order_lines_to_invoice(order_ids: list[int]) -> dict[int, list]:
    """What an invoice copies from the lines of the given orders, by order id: one row per line
    with the ORDER_LINE_COPIED fields and its product's SKU and tax rate's legal note
    (`product_sku`, `tax_legal_note`), read in one query as plain rows (bulk issue reads
    thousands; model instances would cost more than the rest of the work)."""
    by_order: dict[int, list] = {}
    rows = (
        OrderLine.objects.filter(order_id__in=order_ids)
        .annotate(product_sku=F("product__sku"), tax_legal_note=F("tax_rate__legal_note"))
        .values_list(*ORDER_LINE_COPIED, "product_sku", "tax_legal_note", named=True)
    )
    for row in rows:
        by_order.setdefault(row.order_id, []).append(row)
    return by_order


def invoice_lines_from_orders(*, invoice: Invoice, orders: list[Order], order_lines: dict) -> list[InvoiceLine]:
    """The invoice's lines, unsaved: every line of each order (in the orders' order, then by
    position), with what the invoice must print copied from the order line, its product and its
    tax rate. `order_lines` is what order_lines_to_invoice returns."""
    lines: list[InvoiceLine] = []
    for order in orders:
        for ol in sorted(order_lines.get(order.pk, ()), key=lambda ol: (ol.position, ol.id)):
            lines.append(
                InvoiceLine(
                    invoice=invoice,
                    position=len(lines) + 1,
                    order_line_id=ol.id,
                    order_number=order.number,
                    order_date=order.order_date,
                    customer_reference=order.customer_reference,
                    sku=ol.product_sku,
                    description=ol.description,
                    quantity=ol.quantity,
                    unit=ol.unit,
                    unit_price=ol.unit_price,
                    discount_percent=ol.discount_percent,
                    tax_percent=ol.tax_percent,
                    tax_category=ol.tax_category,
                    tax_note=ol.tax_legal_note,
                    net_amount=ol.net_amount,
                )
            )
    return lines


def invoice_drafted_changes(invoice: Invoice, orders: list[Order]) -> dict:
    """What the `invoice.drafted` audit row records."""
    return {"orders": [o.number for o in orders], "gross_total": str(invoice.gross_total)}


def invoice_issued_changes(invoice: Invoice) -> dict:
    """What the `invoice.issued` audit row records."""
    return {"number": invoice.number, "gross_total": str(invoice.gross_total)}


def invoice_set_issue_fields(
    invoice: Invoice,
    *,
    customer,
    issued_on: date,
    actor=None,
    issued_at=None,
    customer_snapshot: dict | None = None,
    terms_snapshot: dict | None = None,
    seller_snapshot: dict | None = None,
) -> None:
    """Set on a draft (in memory) what issuing it freezes, but its number: series and year, due
    date from the terms, the customer, terms and seller snapshots, status, who and when. Bulk
    callers pass the snapshots they computed once per customer, terms and batch."""
    payment_terms = customer.payment_terms
    invoice.series = SERIES_BY_KIND[invoice.kind]
    invoice.sequence_year = issued_on.year
    invoice.issue_date = issued_on
    if invoice.kind == InvoiceKind.CREDIT_NOTE:
        invoice.due_date = issued_on  # a credit is available at once
    else:
        invoice.due_date = terms.due_date(issued_on, payment_terms.due_days, payment_terms.end_of_month)
    invoice.customer_snapshot = customer.snapshot() if customer_snapshot is None else customer_snapshot
    invoice.terms_snapshot = payment_terms.snapshot(invoice.currency) if terms_snapshot is None else terms_snapshot
    invoice.seller_snapshot = dict(settings.OTC_COMPANY) if seller_snapshot is None else seller_snapshot
    invoice.status = InvoiceStatus.PAID if invoice.gross_total == 0 else InvoiceStatus.ISSUED
    invoice.issued_at = issued_at or timezone.now()
    invoice.issued_by = actor_user(actor)
    invoice.pdf_status = PdfStatus.PENDING


def invoice_set_number(invoice: Invoice, sequence_number: int) -> None:
    """Give the invoice its number in its series and year (taken with number_block)."""
    invoice.sequence_number = sequence_number
    invoice.number = f"{invoice.series}-{invoice.sequence_year}-{sequence_number:06d}"


@transaction.atomic
def invoice_create_from_orders(*, orders: list[Order], actor=None) -> Invoice:
    """Draft one invoice holding every line of the given fulfilled orders (one customer, one currency).
    The orders become `invoiced`; the unique order-line constraint refuses a second invoice."""
    if not orders:
        raise ValidationFailed("No orders to invoice.")
    locked = list(Order.objects.select_for_update().filter(pk__in=[o.pk for o in orders]).order_by("pk"))
    invoice_check_orders(locked)
    first = locked[0]
    invoice = Invoice.objects.create(
        kind=InvoiceKind.INVOICE, series="INV", customer_id=first.customer_id, currency=first.currency
    )
    order_lines = order_lines_to_invoice([o.pk for o in locked])
    lines = invoice_lines_from_orders(invoice=invoice, orders=locked, order_lines=order_lines)
    InvoiceLine.objects.bulk_create(lines)
    _recompute_totals(invoice, lines)
    invoice.save(update_fields=["net_total", "tax_total", "gross_total", "tax_breakdown"])
    orders_mark_invoiced(orders=locked, actor=actor)
    audit_record(actor=actor, action="invoice.drafted", obj=invoice, changes=invoice_drafted_changes(invoice, locked))
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
    issued_on = issue_date or timezone.localdate()
    invoice_set_issue_fields(invoice, customer=invoice.customer, issued_on=issued_on, actor=actor)
    invoice_set_number(invoice, number_next(series=invoice.series, year=issued_on.year))
    invoice.content_sha256 = invoice.fingerprint()
    invoice.save()
    audit_record(actor=actor, action="invoice.issued", obj=invoice, changes=invoice_issued_changes(invoice))
    from .tasks import invoice_render_pdf

    enqueue_on_commit(invoice_render_pdf, invoice.pk)
    return invoice


VOID_REASON_MAX_LENGTH = Invoice._meta.get_field("void_reason").max_length


def invoice_void(*, invoice: Invoice, actor=None, reason: str) -> Invoice:
    """Void an invoice that never took effect.

    A draft: its lines go and its orders return to `fulfilled`.

    An issued sales invoice, when nothing settles it (no payment allocated, no credit note, no
    penalty assessed) and the customer never received it (not e-mailed, posted or printed): it
    keeps its number, which stays counted in its series (numbers stay gapless), and its content
    stays frozen, lines and totals included; its lines stop holding their order lines, so its
    orders return to `fulfilled` and are billed again; it leaves an open print batch, and its
    PDF is rendered again, marked VOID. Anything else is corrected by a credit note.

    Locks the print batch holding the invoice (if any), then the invoice: the order the print
    batch services use; allocations, credit notes and penalties lock the invoice too, so none of
    them can slip in between the checks and the void."""
    reason = (reason or "").strip()
    batch_id = (
        PrintBatchItem.objects.filter(invoice_id=invoice.pk, batch__status=PrintBatchStatus.OPEN)
        .values_list("batch_id", flat=True)
        .first()
    )
    with transaction.atomic():
        if batch_id is not None:
            PrintBatch.objects.select_for_update().filter(pk=batch_id).first()
        invoice = Invoice.objects.select_for_update().get(pk=invoice.pk)
        if invoice.status != InvoiceStatus.DRAFT:
            _check_voidable(invoice, locked_batch_id=batch_id)
        if not reason:
            raise ValidationFailed("Give a reason for voiding.", details={"reason": ["This field is required."]})
        if len(reason) > VOID_REASON_MAX_LENGTH:
            raise ValidationFailed(
                f"The reason is too long ({len(reason)} characters).",
                details={"reason": [f"At most {VOID_REASON_MAX_LENGTH} characters."]},
            )
        if invoice.status == InvoiceStatus.DRAFT:
            return _void_draft(invoice, actor=actor, reason=reason)
        return _void_issued(invoice, actor=actor, reason=reason)


def invoice_void_refusal(*, invoice: Invoice) -> DomainError | None:
    """Why `invoice_void` would refuse this invoice now, or None when it would void it. For pages
    that offer the action only when it is allowed; the service checks again under its locks."""
    if invoice.status == InvoiceStatus.DRAFT:
        return None
    open_batch = (
        PrintBatchItem.objects.filter(invoice_id=invoice.pk, batch__status=PrintBatchStatus.OPEN)
        .values_list("batch_id", flat=True)
        .first()
    )
    try:
        _check_voidable(invoice, locked_batch_id=open_batch)
    except DomainError as error:
        return error
    return None


def _check_voidable(invoice: Invoice, *, locked_batch_id: int | None) -> None:
    """Refuse to void an issued document that took effect (InvalidTransition, 409)."""
    name = f"{invoice.get_kind_display()} {invoice}"
    if invoice.kind == InvoiceKind.CREDIT_NOTE:
        raise InvalidTransition(
            f"{name} cannot be voided: a credit note is applied when it is issued.", details={"kind": invoice.kind}
        )
    if invoice.kind == InvoiceKind.PENALTY:
        raise InvalidTransition(f"{name} cannot be voided; waive the penalty instead.", details={"kind": invoice.kind})
    if invoice.status != InvoiceStatus.ISSUED:
        raise InvalidTransition(
            f"Invoice {invoice} is {invoice.get_status_display().lower()}; only an issued invoice with nothing "
            "paid or credited can be voided. Correct it with a credit note.",
            details={"status": invoice.status},
        )
    # Payments live in a higher app: reach them through the reverse relation, never by import.
    if invoice.amount_paid or invoice.allocations.exists():
        raise InvalidTransition(
            f"Invoice {invoice} has payments allocated to it; it cannot be voided. Correct it with a credit note.",
            code="has_allocations",
        )
    if invoice.credits_received.exists() or invoice.corrections.exclude(status=InvoiceStatus.VOID).exists():
        raise InvalidTransition(
            f"Invoice {invoice} has been credited or charged a penalty; it cannot be voided. "
            "Correct it with a credit note.",
            code="has_corrections",
        )
    if invoice.penalty_assessments.exists():
        raise InvalidTransition(
            f"Late-payment penalties were assessed on invoice {invoice}; it cannot be voided.",
            code="has_penalties",
        )
    if invoice.delivery_status in (DeliveryStatus.SENT, DeliveryStatus.POSTED):
        how = "e-mailed" if invoice.delivery_status == DeliveryStatus.SENT else "posted"
        raise InvalidTransition(
            f"Invoice {invoice} was {how} to the customer"
            + (f" on {invoice.delivered_at:%d %b %Y}" if invoice.delivered_at else "")
            + "; it cannot be voided. Correct it with a credit note.",
            code="delivered",
            details={"delivery_status": invoice.delivery_status},
        )
    if invoice.delivery_status == DeliveryStatus.PENDING:
        raise Conflict(
            f"Invoice {invoice} is being sent to the customer right now; try again once the delivery "
            "has finished or failed.",
            code="delivery_in_progress",
            details={"delivery_status": invoice.delivery_status},
        )
    item = PrintBatchItem.objects.select_related("batch").filter(invoice=invoice).first()
    if item is not None and item.batch.status != PrintBatchStatus.OPEN:
        raise InvalidTransition(
            f"Invoice {invoice} was printed in {item.batch}; it cannot be voided. Correct it with a credit note.",
            code="delivered",
            details={"print_batch": item.batch_id},
        )
    if item is not None and item.batch_id != locked_batch_id:
        # Joined a batch between our look and our lock: rare; the caller simply tries again.
        raise Conflict(f"Invoice {invoice} was just queued for print; try again.", code="print_batch_busy")


def _void_draft(invoice: Invoice, *, actor, reason: str) -> Invoice:
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


def _void_issued(invoice: Invoice, *, actor, reason: str) -> Invoice:
    orders = list(
        Order.objects.filter(lines__invoice_lines__invoice=invoice, lines__invoice_lines__voided=False)
        .distinct()
        .order_by("pk")
    )
    # `voided` is not part of the frozen content (InvoiceLine.CONTENT_FIELDS, the fingerprint), so
    # it is set with an update that bypasses the issued lines' save guard.
    invoice.lines.update(voided=True)
    for order in orders:
        order_reopen_for_billing(order=order, actor=actor, note=f"Invoice {invoice} voided: {reason}"[:500])
    changes = {
        "reason": reason,
        "status": [invoice.status, InvoiceStatus.VOID],
        "number": invoice.number,
        "gross_total": str(invoice.gross_total),
        "orders": [o.number for o in orders],
    }
    item = PrintBatchItem.objects.filter(invoice=invoice).first()
    if item is not None:  # in an open batch, locked by invoice_void
        item.delete()
        PrintBatch.objects.filter(pk=item.batch_id).update(invoice_count=F("invoice_count") - 1)
        changes["withdrawn_from_print_batch"] = item.batch_id
    if invoice.delivery_status == DeliveryStatus.QUEUED_FOR_PRINT:
        invoice.delivery_status = DeliveryStatus.NONE
    invoice.status = InvoiceStatus.VOID
    invoice.voided_at = timezone.now()
    invoice.void_reason = reason
    # The stored PDF is rendered again, marked VOID (and without an e-invoice inside).
    invoice.pdf = ""
    invoice.pdf_status = PdfStatus.PENDING
    invoice.pdf_error = ""
    invoice.save(
        update_fields=[
            "status",
            "voided_at",
            "void_reason",
            "delivery_status",
            "pdf",
            "pdf_status",
            "pdf_error",
            "updated_at",
        ]
    )
    audit_record(actor=actor, action="invoice.voided", obj=invoice, changes=changes)
    from .tasks import invoice_render_pdf as task

    enqueue_on_commit(task, invoice.pk)
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
    was_paid = invoice.status == InvoiceStatus.PAID
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
    elif was_paid:
        _reopen_unpaid_orders(invoice, actor)
    return invoice


def _reopen_unpaid_orders(invoice: Invoice, actor) -> None:
    orders = Order.objects.filter(lines__invoice_lines__invoice=invoice, status=OrderStatus.CLOSED).distinct()
    for order in orders.order_by("pk"):
        order_reopen_unpaid(order=order, actor=actor, note=f"{invoice} is no longer paid.")


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
    """Render and store an issued invoice's PDF with its SHA-256. Idempotent: a ready PDF is kept.
    The page is rendered without a lock; storing it is one conditional UPDATE (no lock held, one
    round trip), which also marks the delivery pending and is refused when another render stored
    a PDF first or the invoice was voided (or un-voided) meanwhile."""
    import hashlib

    from .einvoice import facturx_pdf
    from .pdf import render_invoice_pdf

    invoice = Invoice.objects.filter(pk=invoice_id).first()
    if invoice is None or invoice.status == InvoiceStatus.DRAFT:
        return None
    if invoice.pdf_status == PdfStatus.READY and invoice.pdf:
        return invoice
    rendered_status = invoice.status
    # A Factur-X PDF/A-3, in one pass: the CII XML rides inside the stored PDF. A void invoice
    # carries none, so that no accounts-payable system books it.
    data = render_invoice_pdf(invoice) if invoice.status == InvoiceStatus.VOID else facturx_pdf(invoice)
    invoice.pdf.save(f"{invoice.number}.pdf", ContentFile(data), save=False)
    invoice.pdf_sha256 = hashlib.sha256(data).hexdigest()
    if not _update_returning():
        return _store_pdf_locked(invoice, rendered_status)
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(
            _STORE_PDF_SQL,
            {
                "id": invoice.pk,
                "pdf": invoice.pdf.name,
                "sha": invoice.pdf_sha256,
                "now": now,
                "void": rendered_status == InvoiceStatus.VOID,
                **_STORE_PDF_VALUES,
            },
        )
        row = cursor.fetchone()
    if row is None:
        # Stored by another render first, voided meanwhile (the render the void enqueued stores
        # the right PDF) or deleted: this file is nobody's.
        invoice.pdf.storage.delete(invoice.pdf.name)
        return Invoice.objects.filter(pk=invoice_id).first()
    invoice.pdf_status, invoice.pdf_error, invoice.pdf_rendered_at, invoice.updated_at = PdfStatus.READY, "", now, now
    invoice.pdf_attempts, invoice.status, invoice.delivery_status, deliver = row
    if deliver:
        from .delivery import invoice_delivery_enqueue

        invoice_delivery_enqueue(invoice.pk)  # e-mail or print batch
    return invoice


def _update_returning() -> bool:
    """Whether the database has UPDATE ... RETURNING: PostgreSQL, and SQLite from 3.35, the release
    that brought RETURNING to INSERT too (Django's flag for that)."""
    return connection.features.can_return_columns_from_insert


# invoice_render_pdf's store: the PDF, and the delivery marked pending as invoice_delivery_schedule
# does (not for a draft or void invoice, nor one already sent or on its way to print).
_STORE_PDF_SQL = """
UPDATE invoicing_invoice SET pdf = %(pdf)s, pdf_sha256 = %(sha)s, pdf_status = %(ready)s, pdf_error = '',
    pdf_attempts = pdf_attempts + 1, pdf_rendered_at = %(now)s, updated_at = %(now)s,
    delivery_status = CASE WHEN status NOT IN (%(draft)s, %(void_status)s)
        AND delivery_status IN (%(delivery_none)s, %(delivery_pending)s) THEN %(delivery_pending)s
        ELSE delivery_status END
WHERE id = %(id)s AND NOT (pdf_status = %(ready)s AND pdf <> '') AND (status = %(void_status)s) = %(void)s
RETURNING pdf_attempts, status, delivery_status,
    status NOT IN (%(draft)s, %(void_status)s) AND delivery_status = %(delivery_pending)s
"""
_STORE_PDF_VALUES = {
    "ready": PdfStatus.READY,
    "draft": InvoiceStatus.DRAFT,
    "void_status": InvoiceStatus.VOID,
    "delivery_none": DeliveryStatus.NONE,
    "delivery_pending": DeliveryStatus.PENDING,
}


def _store_pdf_locked(invoice: Invoice, rendered_status: str) -> Invoice | None:
    """invoice_render_pdf's store where UPDATE ... RETURNING is missing: the same checks and
    writes under a row lock."""
    name, sha = invoice.pdf.name, invoice.pdf_sha256
    with transaction.atomic():
        locked = Invoice.objects.select_for_update().filter(pk=invoice.pk).first()
        stale = locked is None or (locked.pdf_status == PdfStatus.READY and locked.pdf)
        if stale or (locked.status == InvoiceStatus.VOID) != (rendered_status == InvoiceStatus.VOID):
            invoice.pdf.storage.delete(name)
            return locked
        locked.pdf, locked.pdf_sha256 = name, sha
        locked.pdf_status, locked.pdf_error = PdfStatus.READY, ""
        locked.pdf_attempts += 1
        locked.pdf_rendered_at = timezone.now()
        fields = ["pdf", "pdf_sha256", "pdf_status", "pdf_error", "pdf_attempts", "pdf_rendered_at", "updated_at"]
        locked.save(update_fields=fields)
        from .delivery import invoice_delivery_schedule

        invoice_delivery_schedule(invoice=locked)  # e-mail or print batch, enqueued on commit
    return locked


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

        enqueue_on_commit(task, invoice.pk)
    return invoice


def invoice_credited_quantities(*, invoice: Invoice) -> dict[int, Decimal]:
    """Per line of `invoice`, the quantity its credit notes have credited so far (one query)."""
    rows = (
        InvoiceLine.objects.filter(credited_line__invoice=invoice)
        .exclude(invoice__status=InvoiceStatus.VOID)
        .values("credited_line_id")
        .annotate(total=Sum("quantity"))
    )
    return {row["credited_line_id"]: row["total"] for row in rows}


@dataclass
class CreditQuote:
    """What a credit note would hold, computed without writing anything (the UI's preview)."""

    lines: list[InvoiceLine]
    net: Decimal
    tax: Decimal
    gross: Decimal
    breakdown: list[dict]
    applied: Decimal  # set against the original's balance
    left_as_credit: Decimal  # stays on the credit note as customer credit
    balance_after: Decimal  # the original's balance once the credit note is applied


def _check_creditable(original: Invoice) -> None:
    if original.kind == InvoiceKind.CREDIT_NOTE:
        raise ValidationFailed("A credit note cannot itself be credited.")
    if original.status not in (InvoiceStatus.ISSUED, InvoiceStatus.PARTIALLY_PAID, InvoiceStatus.PAID):
        raise InvalidTransition(
            f"Invoice {original} is {original.get_status_display().lower()}; only issued invoices are credited.",
            details={"status": original.status},
        )


def _credit_lines(
    original: Invoice,
    *,
    reason: str,
    lines: list[dict] | None,
    amount: Decimal | None,
    tax_percent: Decimal | None,
) -> list[InvoiceLine]:
    """The credit note's lines (unsaved, without their invoice) for a full, by-line or amount
    credit of `original`, checked against what earlier credit notes took already: never more of
    a line than it carried, never more at a tax rate than the invoice's taxable amount at it."""
    if lines and amount is not None:
        raise ValidationFailed("Credit either lines or an amount, not both.")
    originals = {line.pk: line for line in original.lines.all()}
    categories = {Decimal(b["rate"]): b["category"] for b in original.tax_breakdown}
    credited = list(
        InvoiceLine.objects.filter(invoice__original=original, invoice__kind=InvoiceKind.CREDIT_NOTE).exclude(
            invoice__status__in=[InvoiceStatus.VOID, InvoiceStatus.DRAFT]
        )
    )
    # Quantity and net credited so far per line of the original, read once.
    done: dict[int, tuple[Decimal, Decimal]] = {}
    for line in credited:
        if line.credited_line_id is not None:
            qty, net = done.get(line.credited_line_id, (Decimal("0"), Decimal("0")))
            done[line.credited_line_id] = (qty + line.quantity, net + line.net_amount)

    def left_at(rate: Decimal) -> Decimal:
        taxable = sum((line.net_amount for line in originals.values() if line.tax_percent == rate), Decimal("0"))
        return taxable - sum((line.net_amount for line in credited if line.tax_percent == rate), Decimal("0"))

    def credit_line(source: InvoiceLine, quantity: Decimal) -> InvoiceLine:
        done_qty, done_net = done.get(source.pk, (Decimal("0"), Decimal("0")))
        remaining = source.quantity - done_qty
        if quantity <= 0 or quantity > remaining:
            raise ValidationFailed(
                f"Line {source.position} of {original}: {quantity} cannot be credited; {remaining} remains.",
                details={"lines": [f"Line {source.position}: at most {remaining} can be credited."]},
            )
        # The last part of a line takes exactly what is left of its net, so credits never drift.
        net = (
            (source.net_amount - done_net)
            if quantity == remaining
            else money.line_net(quantity, source.unit_price, source.discount_percent, original.currency)
        )
        return InvoiceLine(
            credited_line=source,
            order_number=source.order_number,
            order_date=source.order_date,
            customer_reference=source.customer_reference,
            sku=source.sku,
            description=source.description,
            quantity=quantity,
            unit=source.unit,
            unit_price=source.unit_price,
            discount_percent=source.discount_percent,
            tax_percent=source.tax_percent,
            tax_category=source.tax_category,
            tax_note=source.tax_note,
            net_amount=net,
        )

    def amount_line(net: Decimal, rate: Decimal, text: str) -> InvoiceLine:
        return InvoiceLine(
            description=f"{text}: {reason}"[:500] if reason else text[:500],
            quantity=Decimal("1"),
            unit_price=net,
            tax_percent=rate,
            tax_category=categories[rate],
            net_amount=money.quantize(net, original.currency),
        )

    built: list[InvoiceLine] = []
    if amount is not None:
        amount = Decimal(amount)
        if tax_percent is None and len(categories) != 1:
            raise ValidationFailed(
                f"{original} has several tax rates; say which one the credited amount carries.",
                details={"tax_percent": ["Required when the invoice has several tax rates."]},
            )
        rate = Decimal(tax_percent) if tax_percent is not None else next(iter(categories))
        if rate not in categories:
            raise ValidationFailed(
                f"{original} has no line at {rate}%.", details={"tax_percent": ["Not on the invoice."]}
            )
        left = left_at(rate)
        if amount <= 0 or amount > left:
            raise ValidationFailed(
                f"An amount of {amount} cannot be credited at {rate}%; {left} remains.",
                details={"amount": [f"Between 0.01 and {left}."]},
            )
        built.append(amount_line(amount, rate, f"Adjustment to {original}"))
    elif lines:
        for spec in lines:
            source = originals.get(spec["line"].pk)
            if source is None:
                raise ValidationFailed(
                    f"Line {spec['line'].pk} is not on {original}.", details={"lines": ["Unknown line."]}
                )
            built.append(credit_line(source, Decimal(spec["quantity"])))
        for rate in sorted({line.tax_percent for line in built}):
            wanted = sum((line.net_amount for line in built if line.tax_percent == rate), Decimal("0"))
            left = left_at(rate)
            if wanted > left:
                raise ValidationFailed(
                    f"Only {left} is left to credit at {rate}% on {original} (amounts were credited already); "
                    "credit an amount instead.",
                    details={"lines": [f"At {rate}%: at most {left} can be credited."]},
                )
    else:
        # What is left: each line's remaining quantity, in the invoice's order; at a rate where an
        # amount was credited the lines no longer add up to what is left, so that rate's remainder
        # is credited as an amount instead.
        parts = []
        for source in sorted(originals.values(), key=lambda line: (line.position, line.pk)):
            remaining = source.quantity - done.get(source.pk, (Decimal("0"),))[0]
            if remaining > 0:
                parts.append(credit_line(source, remaining))
        by_lines, as_amount = set(), {}
        for rate in categories:
            left = left_at(rate)
            if left > 0 and sum((line.net_amount for line in parts if line.tax_percent == rate), Decimal("0")) == left:
                by_lines.add(rate)
            elif left > 0:
                as_amount[rate] = left
        built = [line for line in parts if line.tax_percent in by_lines]
        for rate, left in sorted(as_amount.items(), reverse=True):
            built.append(amount_line(left, rate, f"Balance of {original} at {rate.normalize():f}%"))
        if not built:
            raise ValidationFailed(f"{original} is fully credited already.")
    for position, line in enumerate(built, start=1):
        line.position = position
    return built


def invoice_credit_quote(
    *,
    invoice: Invoice,
    reason: str = "",
    lines: list[dict] | None = None,
    amount: Decimal | None = None,
    tax_percent: Decimal | None = None,
) -> CreditQuote:
    """The credit note `invoice_credit` would issue with the same arguments, and how much of it
    the original's balance would take, without writing anything. Raises the same errors."""
    original = Invoice.objects.get(pk=invoice.pk)
    _check_creditable(original)
    built = _credit_lines(original, reason=reason, lines=lines, amount=amount, tax_percent=tax_percent)
    result = money.totals(
        (money.TaxableLine(net=line.net_amount, rate=line.tax_percent, category=line.tax_category) for line in built),
        original.currency,
    )
    applied = min(result.gross, original.balance)
    return CreditQuote(
        lines=built,
        net=result.net,
        tax=result.tax,
        gross=result.gross,
        breakdown=[
            {"rate": b.rate, "category": b.category, "taxable": b.taxable, "tax": b.tax} for b in result.breakdown
        ],
        applied=applied,
        left_as_credit=result.gross - applied,
        balance_after=original.balance - applied,
    )


CREDIT_REASON_MAX = Invoice._meta.get_field("credit_reason").max_length


@transaction.atomic
def invoice_credit(
    *,
    invoice: Invoice,
    reason: str,
    lines: list[dict] | None = None,
    amount: Decimal | None = None,
    tax_percent: Decimal | None = None,
    actor=None,
    issue_date: date | None = None,
) -> Invoice:
    """Correct an issued invoice with a credit note (series CN), issued at once.

    In full when neither `lines` nor `amount` is given; for chosen lines and quantities
    (`[{"line": InvoiceLine, "quantity": Decimal}]`); or for a net `amount` at one tax rate.
    The credit is applied to the invoice's balance; what the balance cannot take (the invoice
    was paid) stays on the credit note as customer credit."""
    original = Invoice.objects.select_for_update().get(pk=invoice.pk)
    _check_creditable(original)
    reason = (reason or "").strip()
    if not reason:
        raise ValidationFailed("Give a reason for the credit note.", details={"reason": ["This field is required."]})
    if len(reason) > CREDIT_REASON_MAX:
        raise ValidationFailed(
            f"Keep the reason under {CREDIT_REASON_MAX} characters.",
            details={"reason": [f"At most {CREDIT_REASON_MAX} characters."]},
        )
    built = _credit_lines(original, reason=reason, lines=lines, amount=amount, tax_percent=tax_percent)
    note = Invoice.objects.create(
        kind=InvoiceKind.CREDIT_NOTE,
        series="CN",
        customer_id=original.customer_id,
        currency=original.currency,
        original=original,
        credit_reason=reason,
    )
    for line in built:
        line.invoice = note
    InvoiceLine.objects.bulk_create(built)
    _recompute_totals(note, built)
    note.save(update_fields=["net_total", "tax_total", "gross_total", "tax_breakdown"])
    note = invoice_issue(invoice=note, actor=actor, issue_date=issue_date)
    audit_record(
        actor=actor,
        action="invoice.credited",
        obj=original,
        changes={"credit_note": note.number, "gross_total": str(note.gross_total), "reason": reason},
    )
    applied = min(note.gross_total, original.balance)
    if applied > 0:
        CreditApplication.objects.create(
            credit_note=note, invoice=original, amount=applied, created_by=actor_user(actor)
        )
        invoice_set_amount_paid(invoice=original, amount_paid=original.amount_paid + applied, actor=actor)
        note = Invoice.objects.select_for_update().get(pk=note.pk)
        invoice_set_amount_paid(invoice=note, amount_paid=applied, actor=actor)
    return note


def credit_note_apply(
    *, credit_note: Invoice, invoice: Invoice, amount: Decimal | None = None, actor=None
) -> CreditApplication:
    """Apply credit left on a credit note (what its original invoice's balance could not take) to
    another open invoice or penalty invoice of the same customer and currency: by default as much
    as both allow. Both documents are locked in primary-key order (as payment allocation locks
    invoices), then the amounts are checked under the lock; audited."""
    with transaction.atomic():
        locked = {
            i.pk: i
            for i in Invoice.objects.select_for_update().filter(pk__in=[credit_note.pk, invoice.pk]).order_by("pk")
        }
        note, target = locked.get(credit_note.pk), locked.get(invoice.pk)
        if note is None or target is None:
            raise ValidationFailed("That document no longer exists.")
        if note.kind != InvoiceKind.CREDIT_NOTE:
            raise ValidationFailed(f"{note} is not a credit note.", details={"credit_note": ["Not a credit note."]})
        if note.pk == target.pk or target.kind == InvoiceKind.CREDIT_NOTE:
            raise ValidationFailed(
                "Credit is applied to an invoice, not to a credit note.",
                details={"invoice": ["Choose an invoice or a penalty invoice."]},
            )
        if note.status not in (InvoiceStatus.ISSUED, InvoiceStatus.PARTIALLY_PAID) or note.balance <= 0:
            raise InvalidTransition(f"{note} has no credit left to apply.")
        if target.customer_id != note.customer_id or target.currency != note.currency:
            raise ValidationFailed(
                f"{target} is not an invoice of this customer in {note.currency}.",
                details={"invoice": [f"Choose an invoice of the same customer in {note.currency}."]},
            )
        if target.status not in (InvoiceStatus.ISSUED, InvoiceStatus.PARTIALLY_PAID):
            raise InvalidTransition(f"{target} is {target.get_status_display().lower()}; it has no balance to settle.")
        most = min(note.balance, target.balance)
        amount = most if amount is None else Decimal(amount)
        if amount <= 0 or amount > most:
            raise ValidationFailed(
                f"Apply between 0.01 and {most} {note.currency}: {note} has {note.balance} of credit left and "
                f"{target} a balance of {target.balance}.",
                details={"amount": [f"At most {most}."]},
            )
        application = CreditApplication.objects.create(
            credit_note=note, invoice=target, amount=amount, created_by=actor_user(actor)
        )
        invoice_set_amount_paid(invoice=target, amount_paid=target.amount_paid + amount, actor=actor)
        invoice_set_amount_paid(invoice=note, amount_paid=note.amount_paid + amount, actor=actor)
        audit_record(
            actor=actor,
            action="credit_note.applied",
            obj=target,
            changes={"credit_note": note.number, "amount": str(amount), "credit_left": str(note.balance)},
        )
        return application


def invoice_dispute_set(*, invoice: Invoice, disputed: bool, reason: str = "", actor=None) -> Invoice:
    """Flag an issued invoice as disputed by the customer (with the reason), or clear the flag.
    A disputed invoice gets no payment reminders; the flag changes nothing in the document."""
    reason = (reason or "").strip()
    with transaction.atomic():
        invoice = Invoice.objects.select_for_update().get(pk=invoice.pk)
        if invoice.status in (InvoiceStatus.DRAFT, InvoiceStatus.VOID):
            raise InvalidTransition(
                f"{invoice} is {invoice.get_status_display().lower()}; only issued documents can be disputed."
            )
        if disputed and not reason:
            raise ValidationFailed("Say what the customer disputes.", details={"reason": ["Say why it is disputed."]})
        if disputed == invoice.disputed and (not disputed or reason == invoice.dispute_reason):
            return invoice
        before = [invoice.disputed, invoice.dispute_reason]
        invoice.disputed = disputed
        invoice.dispute_reason = reason[:255] if disputed else ""
        invoice.disputed_at = timezone.now() if disputed else None
        invoice.save(update_fields=["disputed", "dispute_reason", "disputed_at", "updated_at"])
        audit_record(
            actor=actor,
            action="invoice.disputed" if disputed else "invoice.dispute_resolved",
            obj=invoice,
            changes={"disputed": [before[0], disputed], "reason": [before[1], invoice.dispute_reason]},
        )
    return invoice
