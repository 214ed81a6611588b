"""KPI figures, computed with SQL aggregates (never by looping over rows in Python)."""

from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.db.models import DecimalField, F, Q, Sum, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from invoicing.models import OPEN_STATUSES, Invoice, InvoiceKind, InvoiceStatus

_ZERO = Value(Decimal("0"), output_field=DecimalField(max_digits=14, decimal_places=2))
BILLED = (InvoiceStatus.ISSUED, InvoiceStatus.PARTIALLY_PAID, InvoiceStatus.PAID)


def open_receivables(*, currency: str | None = None, as_of: date | None = None) -> dict[str, Decimal]:
    """Open balances of issued invoices and penalties, per currency."""
    qs = Invoice.objects.filter(status__in=OPEN_STATUSES).exclude(kind=InvoiceKind.CREDIT_NOTE)
    if currency:
        qs = qs.filter(currency=currency)
    rows = qs.values("currency").annotate(total=Sum(F("gross_total") - F("amount_paid"))).order_by("currency")
    return {r["currency"]: r["total"] for r in rows}


def credit_sales(*, start: date, end: date, currency: str | None = None) -> dict[str, Decimal]:
    qs = Invoice.objects.filter(status__in=BILLED, issue_date__gte=start, issue_date__lte=end).exclude(
        kind=InvoiceKind.CREDIT_NOTE
    )
    if currency:
        qs = qs.filter(currency=currency)
    rows = qs.values("currency").annotate(total=Coalesce(Sum("gross_total"), _ZERO)).order_by("currency")
    return {r["currency"]: r["total"] for r in rows}


def dso(*, days: int = 90, as_of: date | None = None, currency: str | None = None) -> dict[str, Decimal | None]:
    """Standard DSO per currency: open receivables / credit sales of the last `days` days x days.
    None where there were no sales in the period (the ratio is undefined)."""
    as_of = as_of or timezone.localdate()
    receivables = open_receivables(currency=currency)
    sales = credit_sales(start=as_of - timedelta(days=days - 1), end=as_of, currency=currency)
    result = {}
    for cur in sorted(set(receivables) | set(sales)):
        s = sales.get(cur) or Decimal("0")
        r = receivables.get(cur) or Decimal("0")
        result[cur] = (r / s * days).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP) if s else None
    return result


def overdue_receivables(*, as_of: date | None = None) -> dict[str, Decimal]:
    as_of = as_of or timezone.localdate()
    rows = (
        Invoice.objects.filter(Q(status__in=OPEN_STATUSES) & Q(due_date__lt=as_of))
        .exclude(kind=InvoiceKind.CREDIT_NOTE)
        .values("currency")
        .annotate(total=Sum(F("gross_total") - F("amount_paid")))
        .order_by("currency")
    )
    return {r["currency"]: r["total"] for r in rows}


def summary(*, as_of: date | None = None, days: int = 90) -> dict:
    as_of = as_of or timezone.localdate()
    receivables = open_receivables()
    overdue = overdue_receivables(as_of=as_of)
    figures = dso(days=days, as_of=as_of)
    currencies = sorted(set(receivables) | set(figures))
    return {
        "as_of": as_of,
        "dso_period_days": days,
        "currencies": [
            {
                "currency": cur,
                "open_receivables": receivables.get(cur, Decimal("0.00")),
                "overdue_receivables": overdue.get(cur, Decimal("0.00")),
                "dso": figures.get(cur),
            }
            for cur in currencies
        ],
    }
