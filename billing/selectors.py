"""Read queries about customers: search, the account figures on the customer page, the audit history.

Layering: billing sits below orders, invoicing and payments and imports none of them. The account
figures read their rows through the reverse relations by name (`invoices__...`, `payments__...`,
`orders__...`), as SQL aggregates on the customer, the way orders.selectors reads receivables. The
customer page belongs to billing, so its figures are computed here rather than in a higher app whose
view billing would then have to reach up to. The price is that the status and kind names below are
spelled as strings; tests/test_customers.py checks them against the invoicing enums and the aging
against payments.statements, so a rename there fails a test here.
"""

import re
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.db.models import BooleanField, Count, DecimalField, F, Func, Min, Q, QuerySet, Sum, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from .models import AuditEvent, Contact, Customer

ZERO = Decimal("0.00")
_MONEY = DecimalField(max_digits=14, decimal_places=2)
OPEN_INVOICE_STATES = ("issued", "partially_paid")
# What a customer owes: sales and late-payment penalty invoices. Credit notes are credit it holds.
OPEN_ITEM_KINDS = ("invoice", "penalty")
CREDIT_NOTE = "credit_note"
UNINVOICED_ORDER_STATES = ("confirmed", "fulfilled")
AGING_BUCKETS = (
    ("current", "Current"),
    ("days_1_30", "1–30 days"),  # noqa: RUF001
    ("days_31_60", "31–60 days"),  # noqa: RUF001
    ("days_61_90", "61–90 days"),  # noqa: RUF001
    ("days_over_90", "90+ days"),
)


def aging_due_range(slug: str, as_of: date) -> tuple[date | None, date | None]:
    """The due dates (first, last; None when open-ended) of the open items in an aging bucket on
    `as_of`, as customer_account buckets them: days past due = as_of - due date, due that day or
    later is current."""
    past_due = {"current": (None, 0), "1-30": (1, 30), "31-60": (31, 60), "61-90": (61, 90), "90-plus": (91, None)}
    least, most = past_due[slug]
    first = None if most is None else as_of - timedelta(days=most)
    last = None if least is None else as_of - timedelta(days=least)
    return first, last


# At most this many customers are matched through their contacts' e-mail addresses.
CONTACT_MATCH_LIMIT = 500


# --- Search --------------------------------------------------------------------------------------


class WordsStartWith(Func):
    """True when every word of the query starts a word of the column (PostgreSQL full text, 'simple'
    configuration: lower-cased, no stemming). The expression is the one indexed in migration 0002."""

    output_field = BooleanField()

    def __init__(self, column: str, words: list[str]):
        super().__init__(F(column), Value(" & ".join(f"{w}:*" for w in words)))

    def as_sql(self, compiler, connection, **extra_context):
        column, query = self.get_source_expressions()
        column_sql, column_params = compiler.compile(column)
        query_sql, query_params = compiler.compile(query)
        sql = f"to_tsvector('simple'::regconfig, {column_sql}) @@ to_tsquery('simple'::regconfig, {query_sql})"
        return sql, [*column_params, *query_params]


def customer_search(queryset: QuerySet[Customer], q: str) -> QuerySet[Customer]:
    """Customers whose code, tax id, billing e-mail or a contact's e-mail starts with `q`, or whose
    name or legal name has words starting with the words of `q`. Every branch is served by an index
    on PostgreSQL (migration 0002), so the search stays fast on a large customer table."""
    q = (q or "").strip()
    if not q:
        return queryset
    compact = re.sub(r"[\s.\-/]+", "", q)
    condition = Q(code__istartswith=q) | Q(email__istartswith=q) | Q(tax_id__istartswith=compact or q)
    words = re.findall(r"[^\W_]+", q)
    if connection.vendor == "postgresql" and words:
        condition |= WordsStartWith("name", words) | WordsStartWith("legal_name", words)
    else:
        condition |= Q(name__icontains=q) | Q(legal_name__icontains=q)
    # A separate, indexed query: an IN (subquery) inside the OR would turn the search into a table scan.
    via_contacts = list(
        Contact.objects.filter(email__istartswith=q).values_list("customer_id", flat=True)[:CONTACT_MATCH_LIMIT]
    )
    if via_contacts:
        condition |= Q(pk__in=via_contacts)
    return queryset.filter(condition)


# --- Account figures -----------------------------------------------------------------------------


@dataclass(frozen=True)
class CustomerAccount:
    """What a customer owes and holds as of a date; amounts in the customer's currency."""

    as_of: date
    aging: dict[str, Decimal]  # keys in AGING_BUCKETS order
    open_items: Decimal  # open invoice and penalty balances
    overdue: Decimal
    overdue_count: int
    oldest_due: date | None
    unapplied_payments: Decimal
    open_credit_notes: Decimal
    uninvoiced_orders: Decimal
    credit_limit: Decimal | None

    @property
    def credit(self) -> Decimal:
        return self.unapplied_payments + self.open_credit_notes

    @property
    def balance(self) -> Decimal:
        """Open items less unapplied credit: what the customer owes on balance."""
        return self.open_items - self.credit

    @property
    def exposure(self) -> Decimal:
        """What the credit limit is checked against: open items plus confirmed orders not yet invoiced."""
        return self.open_items + self.uninvoiced_orders

    @property
    def available_credit(self) -> Decimal | None:
        return None if self.credit_limit is None else self.credit_limit - self.exposure

    @property
    def days_overdue(self) -> int:
        return (self.as_of - self.oldest_due).days if self.oldest_due else 0

    @property
    def aging_rows(self) -> list[dict]:
        total = sum(self.aging.values(), ZERO)
        return [
            {
                "key": key,
                "label": label,
                "amount": self.aging[key],
                "share": float(self.aging[key] / total * 100) if total else 0.0,
            }
            for key, label in AGING_BUCKETS
        ]


def _sum(expression, condition: Q):
    return Coalesce(Sum(expression, filter=condition), Value(ZERO), output_field=_MONEY)


def customer_account(customer: Customer, *, as_of: date | None = None) -> CustomerAccount:
    """Open balance, overdue amount and aging (current, 1-30, 31-60, 61-90, 90+ days past due) of a
    customer, in three aggregate queries. Days past due is `as_of - due_date`; an invoice due today is
    current. Open items are issued or partially paid invoices and penalties issued on or before
    `as_of`; credit is what is left of payments received by then and of open credit notes."""
    as_of = as_of or timezone.localdate()

    def due_before(days: int) -> date:
        return as_of - timedelta(days=days)

    balance = F("invoices__gross_total") - F("invoices__amount_paid")
    issued = Q(invoices__status__in=OPEN_INVOICE_STATES, invoices__issue_date__lte=as_of)
    item = issued & Q(invoices__kind__in=OPEN_ITEM_KINDS)
    overdue = item & Q(invoices__due_date__lt=as_of)
    this = Customer.objects.filter(pk=customer.pk)
    row = this.aggregate(
        open_items=_sum(balance, item),
        current=_sum(balance, item & Q(invoices__due_date__gte=as_of)),
        days_1_30=_sum(balance, item & Q(invoices__due_date__lt=as_of, invoices__due_date__gte=due_before(30))),
        days_31_60=_sum(
            balance, item & Q(invoices__due_date__lt=due_before(30), invoices__due_date__gte=due_before(60))
        ),
        days_61_90=_sum(
            balance, item & Q(invoices__due_date__lt=due_before(60), invoices__due_date__gte=due_before(90))
        ),
        days_over_90=_sum(balance, item & Q(invoices__due_date__lt=due_before(90))),
        overdue=_sum(balance, overdue),
        overdue_count=Count("invoices", filter=overdue & Q(invoices__gross_total__gt=F("invoices__amount_paid"))),
        oldest_due=Min("invoices__due_date", filter=overdue & Q(invoices__gross_total__gt=F("invoices__amount_paid"))),
        open_credit_notes=_sum(balance, issued & Q(invoices__kind=CREDIT_NOTE)),
    )
    payments = this.aggregate(
        unapplied=_sum(
            F("payments__amount") - F("payments__allocated_amount") - F("payments__refunded_amount"),
            Q(payments__received_on__lte=as_of, payments__status="received"),
        )
    )
    orders = this.aggregate(uninvoiced=_sum(F("orders__gross_total"), Q(orders__status__in=UNINVOICED_ORDER_STATES)))
    return CustomerAccount(
        as_of=as_of,
        aging={key: row[key] for key, _label in AGING_BUCKETS},
        open_items=row["open_items"],
        overdue=row["overdue"],
        overdue_count=row["overdue_count"],
        oldest_due=row["oldest_due"],
        unapplied_payments=payments["unapplied"],
        open_credit_notes=row["open_credit_notes"],
        uninvoiced_orders=orders["uninvoiced"],
        credit_limit=customer.credit_limit,
    )


# --- History -------------------------------------------------------------------------------------


def customer_history(customer: Customer) -> QuerySet[AuditEvent]:
    """The customer's audit trail, newest first, with who did it."""
    return (
        AuditEvent.objects.filter(content_type=ContentType.objects.get_for_model(Customer), object_id=customer.pk)
        .select_related("actor")
        .order_by("-created_at", "-id")
    )
