from decimal import Decimal

from django.db.models import DecimalField, F, Q, Sum, Value
from django.db.models.functions import Coalesce

from billing.models import Customer

from .models import Order, OrderStatus

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
