from datetime import date
from decimal import Decimal

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from billing import money, terms
from billing.errors import InvalidTransition, ValidationFailed
from billing.jobs import enqueue_on_commit
from billing.services import actor_user, audit_record
from orders.models import Order, OrderLine, OrderStatus
from orders.services import order_close, order_reopen_for_billing, orders_mark_invoiced

from .models import (
    SERIES_BY_KIND,
    CreditApplication,
    Invoice,
    InvoiceKind,
    InvoiceLine,
    InvoiceStatus,
    NumberSequence,
    PdfStatus,
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

    from .einvoice import embed_facturx
    from .pdf import render_invoice_pdf

    invoice = Invoice.objects.filter(pk=invoice_id).first()
    if invoice is None or invoice.status == InvoiceStatus.DRAFT:
        return None
    if invoice.pdf_status == PdfStatus.READY and invoice.pdf:
        return invoice
    data = render_invoice_pdf(invoice)
    data = embed_facturx(data, invoice)  # a Factur-X PDF/A-3: the CII XML rides inside the stored PDF
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
        from .delivery import invoice_delivery_schedule

        invoice_delivery_schedule(invoice=invoice)  # e-mail or print batch, enqueued on commit
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

        enqueue_on_commit(task, invoice.pk)
    return invoice


def _credited_so_far(line: InvoiceLine) -> tuple[Decimal, Decimal]:
    """Quantity and net already credited on an invoice line by issued credit notes."""
    rows = InvoiceLine.objects.filter(credited_line=line).exclude(invoice__status=InvoiceStatus.VOID)
    qty = sum((r.quantity for r in rows), Decimal("0"))
    net = sum((r.net_amount for r in rows), Decimal("0"))
    return qty, net


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
    if original.kind == InvoiceKind.CREDIT_NOTE:
        raise ValidationFailed("A credit note cannot itself be credited.")
    if original.status not in (InvoiceStatus.ISSUED, InvoiceStatus.PARTIALLY_PAID, InvoiceStatus.PAID):
        raise InvalidTransition(
            f"Invoice {original} is {original.get_status_display().lower()}; only issued invoices are credited.",
            details={"status": original.status},
        )
    if not reason:
        raise ValidationFailed("Give a reason for the credit note.", details={"reason": ["This field is required."]})
    if lines and amount is not None:
        raise ValidationFailed("Credit either lines or an amount, not both.")

    note = Invoice.objects.create(
        kind=InvoiceKind.CREDIT_NOTE,
        series="CN",
        customer_id=original.customer_id,
        currency=original.currency,
        original=original,
    )
    built: list[InvoiceLine] = []

    def credit_line(source: InvoiceLine, quantity: Decimal) -> None:
        done_qty, done_net = _credited_so_far(source)
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
        built.append(
            InvoiceLine(
                invoice=note,
                position=len(built) + 1,
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
        )

    originals = {line.pk: line for line in original.lines.all()}
    if amount is not None:
        amount = Decimal(amount)
        rates = {(Decimal(b["rate"]), b["category"]) for b in original.tax_breakdown}
        if tax_percent is None and len(rates) != 1:
            raise ValidationFailed(
                f"{original} has several tax rates; say which one the credited amount carries.",
                details={"tax_percent": ["Required when the invoice has several tax rates."]},
            )
        rate = Decimal(tax_percent) if tax_percent is not None else next(iter(rates))[0]
        category = next((c for r, c in rates if r == rate), None)
        if category is None:
            raise ValidationFailed(
                f"{original} has no line at {rate}%.", details={"tax_percent": ["Not on the invoice."]}
            )
        taxable = sum((line.net_amount for line in originals.values() if line.tax_percent == rate), Decimal("0"))
        credited = (
            InvoiceLine.objects.filter(
                invoice__original=original, invoice__kind=InvoiceKind.CREDIT_NOTE, tax_percent=rate
            )
            .exclude(invoice=note)
            .exclude(invoice__status=InvoiceStatus.VOID)
        )
        left = taxable - sum((line.net_amount for line in credited), Decimal("0"))
        if amount <= 0 or amount > left:
            raise ValidationFailed(
                f"An amount of {amount} cannot be credited at {rate}%; {left} remains.",
                details={"amount": [f"Between 0.01 and {left}."]},
            )
        built.append(
            InvoiceLine(
                invoice=note,
                position=1,
                description=f"Adjustment to {original}: {reason}"[:500],
                quantity=Decimal("1"),
                unit_price=amount,
                tax_percent=rate,
                tax_category=category,
                net_amount=money.quantize(amount),
            )
        )
    elif lines:
        for spec in lines:
            source = originals.get(spec["line"].pk)
            if source is None:
                raise ValidationFailed(
                    f"Line {spec['line'].pk} is not on {original}.", details={"lines": ["Unknown line."]}
                )
            credit_line(source, Decimal(spec["quantity"]))
    else:
        for source in originals.values():
            remaining = source.quantity - _credited_so_far(source)[0]
            if remaining > 0:
                credit_line(source, remaining)
        if not built:
            raise ValidationFailed(f"{original} is fully credited already.")

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
