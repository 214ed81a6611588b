"""Dunning: payment reminders by days overdue, each level sent once per invoice.

A daily run (beat, or `python manage.py run_dunning`) finds, in one set-based query, the customers
with an overdue sales invoice that has reached a reminder level it was not reminded at yet. For
each such customer it writes ONE consolidated reminder (DunningNotice) listing every overdue,
undisputed invoice at its level, in the tone of the highest level listed, and records the new
(invoice, level) steps as DunningItems — unique per invoice and level, so a rerun or a second
worker never reminds twice. The notice is written under the customer's row lock; the reminder
goes out after commit: e-mailed with the statement of account attached (electronic customers),
or as a letter with the statement put into the day's print batch (paper customers).

Skipped: customers on hold, disputed invoices, credit notes and penalty invoices (reminding about
a late-payment charge would charge fees on fees; they are on the attached statement).

A level's optional fee is charged once per invoice and level as a `penalty` invoice (series PEN,
due at once, VAT-exempt, like the penalty run's), never beyond the invoice's penalty cap: the room
left is the cap less what the penalty run and earlier reminder fees charged (the penalty run
counts reminder fees against the cap too).
"""

import io
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

from django.conf import settings
from django.core.cache import cache
from django.core.mail import EmailMessage
from django.db import transaction
from django.db.models import F, Max, Q, Sum
from django.template import Context, Template
from django.template.loader import render_to_string
from django.utils import timezone

from billing.models import BillingMethod, Customer
from billing.money import HUNDRED, quantize
from billing.services import audit_record
from invoicing.models import OPEN_STATUSES, Invoice, InvoiceKind

from . import statements
from .models import (
    DunningChannel,
    DunningItem,
    DunningLevel,
    DunningNotice,
    DunningNoticeStatus,
    PenaltyAssessment,
)

log = logging.getLogger(__name__)
ZERO = Decimal("0.00")
SEND_LOCK_SECONDS = 600
CUSTOMER_BATCH = 200
RETRY_WINDOW_DAYS = 7
FEE_TAX_NOTE = "Late-payment recovery fees are compensation, outside the scope of VAT."


@dataclass
class RunResult:
    as_of: date
    customers: int = 0
    notices: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)  # customers whose reminder could not be written
    delivered: dict[str, int] = field(default_factory=lambda: defaultdict(int))


def active_levels() -> list[DunningLevel]:
    return list(DunningLevel.objects.filter(active=True).order_by("days_overdue"))


def overdue_invoices(*, as_of: date):
    """Open sales invoices past due on `as_of`, undisputed, of customers not on hold, with a balance."""
    return (
        Invoice.objects.filter(
            kind=InvoiceKind.INVOICE,
            status__in=OPEN_STATUSES,
            due_date__lt=as_of,
            disputed=False,
            customer__on_hold=False,
        )
        .annotate(open_balance=F("gross_total") - F("amount_paid"))
        .filter(open_balance__gt=0)
    )


def _with_last_level(qs):
    return qs.annotate(last_days=Max("dunning_items__level__days_overdue"))


def customers_due(*, as_of: date, levels: list[DunningLevel] | None = None):
    """Ids of customers with an invoice that reached a level above the last one it was reminded at."""
    levels = active_levels() if levels is None else levels
    if not levels:
        return []
    reached = Q()
    for level in levels:
        reached |= Q(due_date__lte=as_of - timedelta(days=level.days_overdue)) & (
            Q(last_days__isnull=True) | Q(last_days__lt=level.days_overdue)
        )
    qs = _with_last_level(overdue_invoices(as_of=as_of)).filter(reached)
    return sorted(set(qs.values_list("customer_id", flat=True)))


def level_for(days_overdue: int, levels: list[DunningLevel]) -> DunningLevel | None:
    """The highest level an invoice this many days late has reached (levels sorted by days)."""
    reached = None
    for level in levels:
        if level.days_overdue <= days_overdue:
            reached = level
    return reached


def _render(source: str, context: dict) -> str:
    return Template(source).render(Context(context, autoescape=False)).strip()


def _invoice_table(rows: list[dict], currency: str) -> str:
    lines = [f"{'Invoice':<20} {'Due':<10} {'Days':>5} {'Balance':>14}  Reminder"]
    for r in rows:
        balance = f"{r['balance']:,.2f} {currency}"
        lines.append(
            f"{r['number']:<20} {r['due_date']:%Y-%m-%d} {r['days_overdue']:>5} {balance:>14}  {r['level_name'] or '-'}"
        )
    return "\n".join(lines)


def _fee_room(invoice: Invoice) -> Decimal | None:
    """What the penalty cap still allows on an invoice (None: no cap)."""
    cap = (invoice.terms_snapshot or {}).get("penalty_cap_percent")
    if cap in (None, ""):
        return None
    limit = quantize(invoice.gross_total * Decimal(cap) / HUNDRED, invoice.currency)
    penalties = PenaltyAssessment.objects.filter(invoice=invoice).aggregate(s=Sum(F("interest") + F("fee")))["s"]
    fees = DunningItem.objects.filter(invoice=invoice).aggregate(s=Sum("fee"))["s"]
    return max(limit - (penalties or ZERO) - (fees or ZERO), ZERO)


def _issue_fee_invoices(charges: list[tuple[Invoice, DunningLevel, Decimal]]) -> list[Invoice]:
    """One PEN invoice per reminder fee, written as the penalty run writes its penalty invoices."""
    from .penalties import issue_penalty_invoices

    return issue_penalty_invoices(
        [
            (invoice, [(f"Reminder fee ({level.name}) for late payment of {invoice.number}", fee)], FEE_TAX_NOTE)
            for invoice, level, fee in charges
        ]
    )


def dunning_notice_create(
    *, customer_id: int, as_of: date, levels: list[DunningLevel] | None = None, actor=None
) -> DunningNotice | None:
    """Write the customer's consolidated reminder as of `as_of`, if an invoice reached a new level.
    Locks the customer (every writer of reminders does, so two runs take turns and the second
    finds nothing new), then the invoices that get a fee (against a penalty run computing the cap).
    Returns None when there is nothing new, or the customer is on hold or gone."""
    levels = active_levels() if levels is None else levels
    if not levels:
        return None
    with transaction.atomic():
        customer = Customer.objects.select_for_update().filter(pk=customer_id).first()
        if customer is None or customer.on_hold:
            return None
        rows = list(
            _with_last_level(overdue_invoices(as_of=as_of).filter(customer_id=customer_id)).order_by("due_date", "pk")
        )
        listed, new_steps = [], []
        for invoice in rows:
            days = (as_of - invoice.due_date).days
            level = level_for(days, levels)
            is_new = level is not None and (invoice.last_days is None or level.days_overdue > invoice.last_days)
            listed.append((invoice, days, level, is_new))
            if is_new:
                new_steps.append((invoice, days, level))
        if not new_steps:
            return None

        fee_ids = sorted(inv.pk for inv, _days, level in new_steps if level.fee > 0)
        to_lock = Invoice.objects.select_for_update(of=("self",)).filter(pk__in=fee_ids).order_by("pk")
        locked = {i.pk: i for i in to_lock}
        fees: dict[int, Decimal] = {}
        for invoice, _days, level in new_steps:
            if invoice.pk in locked:
                room = _fee_room(locked[invoice.pk])
                fee = level.fee if room is None else min(level.fee, room)
                if fee > 0:
                    fees[invoice.pk] = fee
        charges = [(inv, level, fees[inv.pk]) for inv, _days, level in new_steps if inv.pk in fees]
        fee_docs = {}
        if charges:
            fee_docs = dict(zip([inv.pk for inv, _l, _f in charges], _issue_fee_invoices(charges), strict=True))

        top = max((level for _inv, _days, level, _new in listed if level), key=lambda lv: lv.days_overdue)
        channel = DunningChannel.PRINT if customer.billing_method == BillingMethod.PAPER else DunningChannel.EMAIL
        table_rows = [
            {
                "number": inv.number,
                "issue_date": inv.issue_date,
                "due_date": inv.due_date,
                "days_overdue": days,
                "balance": inv.open_balance,
                "level_name": level.name if level else "",
                "new": is_new,
                "fee": fees.get(inv.pk, ZERO),
            }
            for inv, days, level, is_new in listed
        ]
        overdue_total = sum((inv.open_balance for inv, *_ in listed), ZERO)
        fee_total = sum(fees.values(), ZERO)
        context = {
            "customer": customer,
            "seller": settings.OTC_COMPANY,
            "as_of": as_of,
            "invoices": table_rows,
            "invoice_count": len(table_rows),
            "invoice_table": _invoice_table(table_rows, customer.currency)
            if channel == DunningChannel.EMAIL
            else "(the invoices are listed above)",
            "overdue_total": f"{overdue_total:,.2f}",
            "fee_total": f"{fee_total:,.2f}" if fee_total else "",
            "currency": customer.currency,
            "level": top,
        }
        notice = DunningNotice.objects.create(
            customer=customer,
            as_of=as_of,
            level=top,
            tone=top.tone,
            channel=channel,
            currency=customer.currency,
            overdue_total=overdue_total,
            fee_total=fee_total,
            subject=_render(top.subject_template, context)[:255],
            body=_render(top.body_template, context),
            recipients=statements.statement_recipients(customer) if channel == DunningChannel.EMAIL else [],
        )
        # bulk_create raises on a (invoice, level) already sent: the constraint backs up the lock.
        DunningItem.objects.bulk_create(
            [
                DunningItem(
                    notice=notice,
                    invoice=inv,
                    level=level,
                    days_overdue=days,
                    balance=inv.open_balance,
                    fee=fees.get(inv.pk, ZERO),
                    fee_invoice=fee_docs.get(inv.pk),
                )
                for inv, days, level in new_steps
            ]
        )
        audit_record(
            actor=actor,
            action="customer.dunning_notice",
            obj=customer,
            changes={
                "notice": notice.pk,
                "level": top.name,
                "channel": channel,
                "invoices": {inv.number: level.name for inv, _days, level in new_steps},
                "overdue_total": str(overdue_total),
                "fees": {doc.number: str(doc.gross_total) for doc in fee_docs.values()},
            },
        )
    return notice


def _letter_pdf(notice: DunningNotice, statement_pdf: bytes) -> bytes:
    """The reminder letter followed by the statement of account, as one PDF to post."""
    from pypdf import PdfReader, PdfWriter
    from weasyprint import HTML

    rows = [
        {
            "number": item.invoice.number,
            "due_date": item.invoice.due_date,
            "days_overdue": item.days_overdue,
            "balance": item.balance,
            "level_name": item.level.name,
        }
        for item in notice.items.select_related("invoice", "level")
    ]
    html = render_to_string(
        "payments/pdf/reminder.html",
        {"notice": notice, "customer": notice.customer, "seller": settings.OTC_COMPANY, "invoices": rows},
    )
    letter = HTML(string=html, base_url=str(settings.BASE_DIR)).write_pdf()
    writer = PdfWriter()
    for data in (letter, statement_pdf):
        for page in PdfReader(io.BytesIO(data)).pages:
            writer.add_page(page)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def _mark(notice_id: int, *, status: str, error: str = "", **fields) -> DunningNotice:
    with transaction.atomic():
        notice = DunningNotice.objects.select_for_update().get(pk=notice_id)
        notice.status = status
        notice.error = error[:2000]
        if status in (DunningNoticeStatus.SENT, DunningNoticeStatus.QUEUED_FOR_PRINT):
            notice.sent_at = timezone.now()
        for name, value in fields.items():
            setattr(notice, name, value)
        notice.save(update_fields=["status", "error", "sent_at", *fields])
        audit_record(
            actor=None,
            action=f"dunning_notice.{status}",
            obj=notice,
            changes={"notice": notice.pk, "channel": notice.channel, **({"error": error[:500]} if error else {})},
        )
    return notice


def dunning_notice_deliver(*, notice_id: int) -> str:
    """Send a written reminder: e-mail with the statement (electronic) or letter + statement into
    the print batch (paper). Returns `sent`, `queued_for_print`, `failed`, `busy` (another worker
    has it) or `skipped` (already out). A mail error marks the notice failed; the next run retries."""
    notice = DunningNotice.objects.select_related("customer").filter(pk=notice_id).first()
    if notice is None or notice.status not in (DunningNoticeStatus.PENDING, DunningNoticeStatus.FAILED):
        return "skipped"
    lock = f"otc:dunning-deliver:{notice_id}"
    if not cache.add(lock, timezone.now().isoformat(), SEND_LOCK_SECONDS):
        return "busy"
    try:
        notice = DunningNotice.objects.select_related("customer").get(pk=notice_id)  # re-read under the lock
        if notice.status not in (DunningNoticeStatus.PENDING, DunningNoticeStatus.FAILED):
            return "skipped"
        customer = notice.customer
        statement_pdf = statements.statement_pdf(customer, as_of=notice.as_of)
        if notice.channel == DunningChannel.PRINT:
            from invoicing.delivery import print_batch_add_document

            with transaction.atomic():
                item = print_batch_add_document(
                    pdf=_letter_pdf(notice, statement_pdf),
                    filename=f"reminder-{customer.code}-{notice.as_of:%Y-%m-%d}-{notice.pk}.pdf",
                    title=f"Payment reminder #{notice.pk} ({notice.get_tone_display().lower()})",
                    customer=customer,
                )
                _mark(notice.pk, status=DunningNoticeStatus.QUEUED_FOR_PRINT, print_batch_item=item)
            return "queued_for_print"
        if not notice.recipients:
            _mark(notice.pk, status=DunningNoticeStatus.FAILED, error="The customer has no e-mail address.")
            return "failed"
        seller = settings.OTC_COMPANY
        message = EmailMessage(
            subject=notice.subject,
            body=notice.body + "\n",
            from_email=settings.DEFAULT_FROM_EMAIL,
            to=list(notice.recipients),
            reply_to=[seller["email"]] if seller.get("email") else None,
        )
        message.attach(f"statement-{customer.code}-{notice.as_of:%Y-%m-%d}.pdf", statement_pdf, "application/pdf")
        try:
            message.send()
        except OSError as exc:  # smtplib.SMTPException, refused connections, timeouts
            log.warning("Reminder %s to %s not sent: %s", notice.pk, customer.code, exc)
            _mark(notice.pk, status=DunningNoticeStatus.FAILED, error=f"{type(exc).__name__}: {exc}")
            return "failed"
        _mark(notice.pk, status=DunningNoticeStatus.SENT)
        return "sent"
    finally:
        cache.delete(lock)


def dunning_run(*, as_of: date | None = None, customer_ids: list[int] | None = None, actor=None) -> RunResult:
    """Write and send the reminders due as of `as_of` (default today), for the given customers or
    every customer due; then retry reminders of the last week still pending or failed. Safe to run
    twice or on two workers at once: a reminder is written once, sent once."""
    as_of = as_of or timezone.localdate()
    levels = active_levels()
    ids = customers_due(as_of=as_of, levels=levels) if customer_ids is None else sorted(customer_ids)
    result = RunResult(as_of=as_of, customers=len(ids))
    for customer_id in ids:
        try:
            notice = dunning_notice_create(customer_id=customer_id, as_of=as_of, levels=levels, actor=actor)
        except Exception:  # a template that fails on real data must not stop the other customers
            log.exception("Reminder for customer %s could not be written", customer_id)
            result.failed.append(customer_id)
            continue
        if notice is not None:
            result.notices.append(notice.pk)
    retry = DunningNotice.objects.filter(
        status__in=[DunningNoticeStatus.PENDING, DunningNoticeStatus.FAILED],
        as_of__gte=as_of - timedelta(days=RETRY_WINDOW_DAYS),
    )
    if customer_ids is not None:
        retry = retry.filter(customer_id__in=ids)
    for notice_id in sorted({*result.notices, *retry.values_list("pk", flat=True)}):
        try:
            outcome = dunning_notice_deliver(notice_id=notice_id)
        except Exception:  # one customer's broken letter must not stop the others; it stays pending
            log.exception("Reminder %s could not be delivered", notice_id)
            outcome = "error"
        result.delivered[outcome] += 1
    return result


def customer_batches(*, as_of: date, size: int = CUSTOMER_BATCH) -> list[list[int]]:
    """Customers with reminders to write, or to retry, in bounded batches for the workers."""
    retry = DunningNotice.objects.filter(
        status__in=[DunningNoticeStatus.PENDING, DunningNoticeStatus.FAILED],
        as_of__gte=as_of - timedelta(days=RETRY_WINDOW_DAYS),
    ).values_list("customer_id", flat=True)
    ids = sorted({*customers_due(as_of=as_of), *retry})
    return [ids[i : i + size] for i in range(0, len(ids), size)]
