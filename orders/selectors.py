from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Case, DecimalField, F, IntegerField, OuterRef, Q, QuerySet, Subquery, Sum, Value, When
from django.db.models.functions import Coalesce

from billing.models import Customer

from .models import Order, OrderStatus, Product

_ZERO = Value(Decimal("0"), output_field=DecimalField(max_digits=14, decimal_places=2))
OPEN_INVOICE_STATES = ("issued", "partially_paid")


def customer_open_receivables(customer: Customer) -> Decimal:
    """Balances of the customer's issued invoices (read through the reverse relation by name)."""
    row = Customer.objects.filter(pk=customer.pk).aggregate(
        total=Coalesce(
            Sum(
                F("invoices__gross_total") - F("invoices__amount_paid"),
                filter=Q(invoices__status__in=OPEN_INVOICE_STATES) & ~Q(invoices__kind="credit_note"),
            ),
            _ZERO,
        )
    )
    return row["total"]


def customer_uninvoiced_orders(customer: Customer, *, exclude_order: Order | None = None) -> Decimal:
    qs = Order.objects.filter(customer=customer, status__in=[OrderStatus.CONFIRMED, OrderStatus.FULFILLED])
    if exclude_order is not None:
        qs = qs.exclude(pk=exclude_order.pk)
    return qs.aggregate(total=Coalesce(Sum("gross_total"), _ZERO))["total"]


def customer_exposure(customer: Customer, *, exclude_order: Order | None = None) -> Decimal:
    """Open receivables plus confirmed or fulfilled orders not yet invoiced."""
    return customer_open_receivables(customer) + customer_uninvoiced_orders(customer, exclude_order=exclude_order)


def order_list():
    return Order.objects.select_related("customer")


def order_detail_queryset():
    return Order.objects.select_related("customer", "customer__payment_terms").prefetch_related(
        "lines__product", "lines__tax_rate", "events__actor"
    )


SUGGESTIONS = 8


def _search_rank(q: str, code: str, name: str) -> Case:
    """Exact code first, then codes starting with the text, then names starting with it, then the rest."""
    return Case(
        When(**{f"{code}__iexact": q}, then=Value(0)),
        When(**{f"{code}__istartswith": q}, then=Value(1)),
        When(**{f"{name}__istartswith": q}, then=Value(2)),
        default=Value(3),
        output_field=IntegerField(),
    )


def customer_with_exposure(queryset: QuerySet[Customer]) -> QuerySet[Customer]:
    """Annotate `exposure` (open receivables + confirmed or fulfilled orders not yet invoiced), the
    figure credit control checks, and `headroom` (limit - exposure), in the same query."""
    receivables = (
        Customer.objects.filter(pk=OuterRef("pk"))
        .values("pk")
        .annotate(
            total=Sum(
                F("invoices__gross_total") - F("invoices__amount_paid"),
                filter=Q(invoices__status__in=OPEN_INVOICE_STATES) & ~Q(invoices__kind="credit_note"),
            )
        )
        .values("total")
    )
    uninvoiced = (
        Order.objects.filter(customer=OuterRef("pk"), status__in=[OrderStatus.CONFIRMED, OrderStatus.FULFILLED])
        .values("customer")
        .annotate(total=Sum("gross_total"))
        .values("total")
    )
    exposure = Coalesce(Subquery(receivables), _ZERO) + Coalesce(Subquery(uninvoiced), _ZERO)
    # headroom: what the customer may still owe before confirming is refused (None: no limit).
    return queryset.annotate(exposure=exposure).annotate(headroom=F("credit_limit") - F("exposure"))


def customer_search(q: str, *, limit: int = SUGGESTIONS) -> list[Customer]:
    """Customers whose code or name matches `q`, best match first, each with its `exposure`."""
    q = q.strip()
    if not q:
        return []
    qs = Customer.objects.filter(Q(code__icontains=q) | Q(name__icontains=q) | Q(legal_name__icontains=q))
    qs = qs.select_related("payment_terms")
    qs = qs.annotate(rank=_search_rank(q, "code", "name")).order_by("rank", "name", "pk")
    return list(customer_with_exposure(qs)[:limit])


def product_search(q: str, *, limit: int = SUGGESTIONS) -> list[Product]:
    """Active products whose SKU or name matches `q`, best match first: only those can be ordered."""
    q = q.strip()
    if not q:
        return []
    qs = Product.objects.filter(active=True).filter(Q(sku__icontains=q) | Q(name__icontains=q))
    qs = qs.select_related("tax_rate").annotate(rank=_search_rank(q, "sku", "name")).order_by("rank", "sku")
    return list(qs[:limit])


@dataclass(frozen=True)
class CreditCheck:
    """Where an order stands against its customer's credit limit (None limit: unlimited)."""

    credit_limit: Decimal | None
    exposure: Decimal
    order_total: Decimal

    @property
    def headroom(self) -> Decimal | None:
        return None if self.credit_limit is None else self.credit_limit - self.exposure

    @property
    def over_by(self) -> Decimal:
        if self.credit_limit is None:
            return Decimal("0")
        return max(Decimal("0"), self.exposure + self.order_total - self.credit_limit)

    @property
    def exceeded(self) -> bool:
        return self.over_by > 0


def order_credit_check(order: Order) -> CreditCheck:
    """The figures order_confirm will weigh for this order (read without locks: for display)."""
    customer = order.customer
    exposure = Decimal("0") if customer.credit_limit is None else customer_exposure(customer, exclude_order=order)
    return CreditCheck(credit_limit=customer.credit_limit, exposure=exposure, order_total=order.gross_total)


def product_list() -> QuerySet[Product]:
    return Product.objects.select_related("tax_rate")
