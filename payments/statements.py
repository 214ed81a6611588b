"""Customer statements: what a customer owes as of a date, and the credit it holds.

- open items: issued or partially paid invoices and penalty invoices issued on or before the date,
  with their balance and days overdue;
- aging of those balances by days overdue: current (not yet due), 1-30, 31-60, 61-90, over 90;
- unapplied credit: what is left of payments (amount - allocated - refunded) and of open credit
  notes (gross - amount applied);
- net balance: open total - unapplied credit.

Balances are the current ones; the date sets the aging and leaves out documents dated after it.
Totals are SQL aggregates. The statement is printed with WeasyPrint and, monthly, e-mailed to
electronic customers with open items (once per customer and month: StatementDelivery).
"""

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from django.conf import settings
from django.core.cache import cache
from django.core.mail import EmailMessage
from django.db import transaction
from django.db.models import DecimalField, Exists, F, OuterRef, Q, Sum, Value
from django.db.models.functions import Coalesce
from django.template.loader import render_to_string
from django.utils import timezone

from billing.models import MONEY, BillingMethod, Customer
from billing.services import audit_record
from invoicing.models import OPEN_STATUSES, Invoice, InvoiceKind

from .models import Payment, PaymentStatus, StatementDelivery

ZERO = Decimal("0.00")
BUCKETS = (
    ("current", "Current"),
    ("days_1_30", "1-30 days"),
    ("days_31_60", "31-60 days"),
    ("days_61_90", "61-90 days"),
    ("days_over_90", "Over 90 days"),
)
OPEN_ITEM_KINDS = (InvoiceKind.INVOICE, InvoiceKind.PENALTY)
SEND_LOCK_SECONDS = 600


@dataclass(frozen=True)
class OpenItem:
    invoice_id: int
    number: str
    kind: str
    issue_date: date
    due_date: date
    gross_total: Decimal
    amount_paid: Decimal
    balance: Decimal
    days_overdue: int


@dataclass(frozen=True)
class CreditItem:
    kind: str  # "payment" or "credit_note"
    object_id: int
    number: str
    date: date
    amount: Decimal
    unapplied: Decimal


@dataclass(frozen=True)
class Statement:
    customer: Customer
    as_of: date
    currency: str
    items: list[OpenItem]
    aging: dict[str, Decimal]  # keys in BUCKETS order
    open_total: Decimal
    credits: list[CreditItem]
    credit_total: Decimal

    @property
    def net_balance(self) -> Decimal:
        return self.open_total - self.credit_total

    @property
    def aging_rows(self) -> list[tuple[str, Decimal]]:
        return [(label, self.aging[key]) for key, label in BUCKETS]


def _sum(expression, **kwargs):
    return Coalesce(Sum(expression, **kwargs), Value(ZERO), output_field=DecimalField(**MONEY))


def open_items_queryset(*, customer: Customer, as_of: date):
    """Invoices and penalty invoices of the customer still open, issued on or before `as_of`."""
    return (
        Invoice.objects.filter(
            customer=customer, kind__in=OPEN_ITEM_KINDS, status__in=OPEN_STATUSES, issue_date__lte=as_of
        )
        .annotate(open_balance=F("gross_total") - F("amount_paid"))
        .filter(open_balance__gt=0)
    )


def aging(*, customer: Customer, as_of: date) -> dict[str, Decimal]:
    """Open balances by days overdue as of the date, with their total, in one query. Days overdue
    is `as_of - due_date`: 0 or less is current; 1-30; 31-60; 61-90; over 90."""

    def due_before(days: int) -> date:
        return as_of - timedelta(days=days)

    balance = F("gross_total") - F("amount_paid")
    return open_items_queryset(customer=customer, as_of=as_of).aggregate(
        total=_sum(balance),
        current=_sum(balance, filter=Q(due_date__gte=as_of)),
        days_1_30=_sum(balance, filter=Q(due_date__lt=as_of, due_date__gte=due_before(30))),
        days_31_60=_sum(balance, filter=Q(due_date__lt=due_before(30), due_date__gte=due_before(60))),
        days_61_90=_sum(balance, filter=Q(due_date__lt=due_before(60), due_date__gte=due_before(90))),
        days_over_90=_sum(balance, filter=Q(due_date__lt=due_before(90))),
    )


def _payments_with_credit(*, customer: Customer, as_of: date):
    return (
        Payment.objects.filter(customer=customer, received_on__lte=as_of, status=PaymentStatus.RECEIVED)
        .annotate(unapplied=F("amount") - F("allocated_amount") - F("refunded_amount"))
        .filter(unapplied__gt=0)
    )


def _open_credit_notes(*, customer: Customer, as_of: date):
    return (
        Invoice.objects.filter(
            customer=customer, kind=InvoiceKind.CREDIT_NOTE, status__in=OPEN_STATUSES, issue_date__lte=as_of
        )
        .annotate(unapplied=F("gross_total") - F("amount_paid"))
        .filter(unapplied__gt=0)
    )


def statement_build(*, customer: Customer, as_of: date | None = None) -> Statement:
    """The statement of a customer's account as of a date (default: today)."""
    as_of = as_of or timezone.localdate()
    rows = open_items_queryset(customer=customer, as_of=as_of).order_by("due_date", "number")
    items = [
        OpenItem(
            invoice_id=row.pk,
            number=row.number,
            kind=row.get_kind_display(),
            issue_date=row.issue_date,
            due_date=row.due_date,
            gross_total=row.gross_total,
            amount_paid=row.amount_paid,
            balance=row.open_balance,
            days_overdue=max((as_of - row.due_date).days, 0),
        )
        for row in rows.only("pk", "number", "kind", "issue_date", "due_date", "gross_total", "amount_paid")
    ]
    buckets = aging(customer=customer, as_of=as_of)
    payments = _payments_with_credit(customer=customer, as_of=as_of)
    notes = _open_credit_notes(customer=customer, as_of=as_of)
    credit_total = payments.aggregate(s=_sum("unapplied"))["s"] + notes.aggregate(s=_sum("unapplied"))["s"]
    credits = [
        CreditItem("payment", p.pk, p.number, p.received_on, p.amount, p.unapplied)
        for p in payments.order_by("received_on", "pk")
    ] + [
        CreditItem("credit_note", n.pk, n.number, n.issue_date, n.gross_total, n.unapplied)
        for n in notes.order_by("issue_date", "pk")
    ]
    return Statement(
        customer=customer,
        as_of=as_of,
        currency=customer.currency,
        items=items,
        aging={key: buckets[key] for key, _label in BUCKETS},
        open_total=buckets["total"],
        credits=credits,
        credit_total=credit_total,
    )


def statement_render_pdf(statement: Statement) -> bytes:
    from weasyprint import HTML

    html = render_to_string(
        "payments/pdf/statement.html",
        {
            "statement": statement,
            "customer": statement.customer,
            "seller": settings.OTC_COMPANY,
            "generated_on": timezone.localdate(),
        },
    )
    return HTML(string=html, base_url=str(settings.BASE_DIR)).write_pdf()


def statement_pdf(customer: Customer, as_of: date | None = None) -> bytes:
    """The customer's statement as of a date, as a PDF."""
    return statement_render_pdf(statement_build(customer=customer, as_of=as_of))


# --- Monthly e-mail ------------------------------------------------------------------------------


def statement_recipients(customer: Customer) -> list[str]:
    """The billing e-mail and every contact who receives invoices."""
    seen: set[str] = set()
    recipients = []
    contacts = customer.contacts.filter(receives_invoices=True).exclude(email="").values_list("email", flat=True)
    for address in [customer.email, *contacts]:
        address = (address or "").strip()
        if address and address.lower() not in seen:
            seen.add(address.lower())
            recipients.append(address)
    return recipients


def customers_due_statement(*, as_of: date):
    """Electronic customers with open items and no statement sent yet for the month of `as_of`."""
    period = as_of.replace(day=1)
    has_open = Invoice.objects.filter(
        customer=OuterRef("pk"),
        kind__in=OPEN_ITEM_KINDS,
        status__in=OPEN_STATUSES,
        issue_date__lte=as_of,
        gross_total__gt=F("amount_paid"),
    )
    sent = StatementDelivery.objects.filter(customer=OuterRef("pk"), period=period)
    return Customer.objects.filter(billing_method=BillingMethod.ELECTRONIC).filter(Exists(has_open), ~Exists(sent))


def statement_send(*, customer: Customer, as_of: date | None = None, actor=None) -> StatementDelivery | None:
    """E-mail the customer's statement for the month of `as_of`, once per customer and month.
    Returns the delivery, or None when it was sent already, another worker is sending it, or the
    customer has nothing open. Mail server errors (OSError) propagate for the task to retry."""
    as_of = as_of or timezone.localdate()
    period = as_of.replace(day=1)
    lock = f"otc:statement-send:{customer.pk}:{period:%Y-%m}"
    if not cache.add(lock, timezone.now().isoformat(), SEND_LOCK_SECONDS):
        return None
    try:
        # Checked under the lock: the worker before us may have just sent it.
        if StatementDelivery.objects.filter(customer=customer, period=period).exists():
            return None
        statement = statement_build(customer=customer, as_of=as_of)
        recipients = statement_recipients(customer)
        if not statement.items or not recipients:
            return None
        seller = settings.OTC_COMPANY
        message = EmailMessage(
            subject=f"Statement of account {customer.code} as of {as_of:%Y-%m-%d} from {seller['name']}",
            body=_statement_email_text(statement, seller),
            from_email=settings.DEFAULT_FROM_EMAIL,
            to=recipients,
            reply_to=[seller["email"]] if seller.get("email") else None,
        )
        message.attach(
            f"statement-{customer.code}-{as_of:%Y-%m-%d}.pdf", statement_render_pdf(statement), "application/pdf"
        )
        message.send()
        with transaction.atomic():
            delivery = StatementDelivery.objects.create(
                customer=customer,
                period=period,
                as_of=as_of,
                recipients=recipients,
                open_total=statement.open_total,
                credit_total=statement.credit_total,
                currency=statement.currency,
                sent_at=timezone.now(),
            )
            audit_record(
                actor=actor,
                action="customer.statement_sent",
                obj=customer,
                changes={
                    "period": f"{period:%Y-%m}",
                    "to": recipients,
                    "open_total": str(statement.open_total),
                    "net_balance": str(statement.net_balance),
                },
            )
        return delivery
    finally:
        cache.delete(lock)


def _statement_email_text(statement: Statement, seller: dict) -> str:
    cur = statement.currency
    lines = [
        f"Dear {statement.customer.legal_name or statement.customer.name},",
        "",
        f"please find attached the statement of your account as of {statement.as_of:%Y-%m-%d}.",
        "",
        f"  Open invoices:     {statement.open_total:.2f} {cur}",
        f"  Unapplied credit:  {statement.credit_total:.2f} {cur}",
        f"  Balance due:       {statement.net_balance:.2f} {cur}",
        "",
    ]
    overdue = statement.open_total - statement.aging["current"]
    if overdue > 0:
        lines += [f"Of this, {overdue:.2f} {cur} is overdue; please settle it at your earliest convenience.", ""]
    lines += [
        f"How to pay: bank transfer to {seller.get('legal_name') or seller.get('name')}, IBAN {seller.get('iban')}, "
        f"BIC {seller.get('bic')}, quoting the invoice numbers.",
        "",
        f"Questions? Reply to this e-mail or write to {seller.get('email')}.",
        "",
        seller.get("legal_name") or seller.get("name") or "",
    ]
    return "\n".join(lines) + "\n"
