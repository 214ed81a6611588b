from collections.abc import Iterable
from datetime import date
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from billing import money
from billing.errors import Conflict, InvalidTransition, ValidationFailed
from billing.models import Customer
from billing.services import audit_record

from .models import ORDER_TRANSITIONS, Order, OrderChannel, OrderEvent, OrderLine, OrderStatus, Product
from .selectors import customer_exposure

# DecimalField(max_digits=14, decimal_places=2): larger amounts would overflow the column.
MAX_AMOUNT = Decimal("1000000000000")


def _transition(order: Order, to: str, *, actor=None, note: str = "") -> None:
    """Move a locked order to `to`, refusing moves the transitions map does not allow."""
    if to not in ORDER_TRANSITIONS[order.status]:
        raise InvalidTransition(
            f"Order {order} is {order.get_status_display().lower()}; it cannot become {OrderStatus(to).label.lower()}.",
            details={"status": order.status, "requested": to},
        )
    OrderEvent.objects.create(order=order, from_status=order.status, to_status=to, actor=_user(actor), note=note)
    order.status = to


def _user(actor):
    return actor if getattr(actor, "is_authenticated", False) else None


def _lock(order: Order) -> Order:
    return Order.objects.select_for_update().get(pk=order.pk)


def _recompute_totals(order: Order, lines: Iterable[OrderLine]) -> None:
    result = money.totals(
        (money.TaxableLine(net=line.net_amount, rate=line.tax_percent, category=line.tax_category) for line in lines),
        order.currency,
    )
    order.net_total, order.tax_total, order.gross_total = result.net, result.tax, result.gross


def _build_line(order: Order, position: int, spec: dict) -> OrderLine:
    product: Product = spec["product"]
    if not product.active:
        raise ValidationFailed(
            f"Product {product.sku} is inactive and cannot be ordered.",
            details={"lines": [f"Product {product.sku} is inactive."]},
        )
    quantity = Decimal(spec["quantity"])
    if quantity <= 0:
        raise ValidationFailed(
            "Quantity must be greater than zero.", details={"lines": ["Quantity must be greater than zero."]}
        )
    unit_price = spec.get("unit_price")
    unit_price = product.unit_price if unit_price is None else Decimal(unit_price)
    discount = Decimal(spec.get("discount_percent") or 0)
    tax_rate = product.tax_rate
    net_amount = money.line_net(quantity, unit_price, discount, order.currency)
    if net_amount >= MAX_AMOUNT:
        raise ValidationFailed(
            f"Line {position} comes to {net_amount}, more than an amount can hold.",
            details={"lines": [f"Line {position}: the amount is too large."]},
        )
    return OrderLine(
        order=order,
        position=position,
        product=product,
        description=spec.get("description") or product.name,
        quantity=quantity,
        unit=product.unit,
        unit_price=unit_price,
        discount_percent=discount,
        tax_rate=tax_rate,
        tax_percent=tax_rate.rate,
        tax_category=tax_rate.category,
        net_amount=net_amount,
    )


@transaction.atomic
def order_create(
    *,
    customer: Customer,
    lines: list[dict],
    actor=None,
    customer_reference: str = "",
    order_date: date | None = None,
    channel: str = OrderChannel.UI,
    entry_started_at=None,
    notes: str = "",
) -> Order:
    """Create a draft order; each line copies the product's description, price and tax rate."""
    if not lines:
        raise ValidationFailed("An order needs at least one line.", details={"lines": ["Add at least one line."]})
    order = Order.objects.create(
        customer=customer,
        customer_reference=customer_reference,
        order_date=order_date or timezone.localdate(),
        currency=customer.currency,
        channel=channel,
        entry_started_at=entry_started_at or timezone.now(),
        notes=notes,
        created_by=_user(actor),
    )
    order.number = f"SO-{order.pk:06d}"
    built = [_build_line(order, i, spec) for i, spec in enumerate(lines, start=1)]
    OrderLine.objects.bulk_create(built)
    _recompute_totals(order, built)
    if order.gross_total >= MAX_AMOUNT:
        raise ValidationFailed(
            f"The order comes to {order.gross_total}, more than an amount can hold.",
            details={"lines": ["The order total is too large."]},
        )
    order.save(update_fields=["number", "net_total", "tax_total", "gross_total"])
    OrderEvent.objects.create(order=order, from_status="", to_status=OrderStatus.DRAFT, actor=_user(actor))
    return order


@transaction.atomic
def order_confirm(*, order: Order, actor=None) -> Order:
    """Confirm a draft order after credit control: not on hold, exposure within the credit limit."""
    order = _lock(order)
    customer = Customer.objects.select_for_update().get(pk=order.customer_id)
    if order.status == OrderStatus.DRAFT:
        if customer.on_hold:
            raise Conflict(f"Customer {customer.name} is on hold: {customer.on_hold_reason}", code="customer_on_hold")
        if customer.credit_limit is not None:
            exposure = customer_exposure(customer, exclude_order=order)
            if exposure + order.gross_total > customer.credit_limit:
                raise Conflict(
                    f"Credit limit exceeded: limit {customer.credit_limit}, current exposure {exposure}, "
                    f"this order {order.gross_total} {order.currency}.",
                    code="credit_limit_exceeded",
                    details={
                        "credit_limit": str(customer.credit_limit),
                        "exposure": str(exposure),
                        "order_total": str(order.gross_total),
                    },
                )
    _transition(order, OrderStatus.CONFIRMED, actor=actor)
    order.confirmed_at = timezone.now()
    order.save(update_fields=["status", "confirmed_at"])
    return order


@transaction.atomic
def order_fulfill(*, order: Order, actor=None) -> Order:
    """Mark a confirmed order as delivered: it becomes billable."""
    order = _lock(order)
    _transition(order, OrderStatus.FULFILLED, actor=actor)
    order.fulfilled_at = timezone.now()
    order.save(update_fields=["status", "fulfilled_at"])
    return order


@transaction.atomic
def order_cancel(*, order: Order, actor=None, reason: str = "") -> Order:
    """Cancel a draft or confirmed order."""
    order = _lock(order)
    _transition(order, OrderStatus.CANCELLED, actor=actor, note=reason)
    order.save(update_fields=["status"])
    audit_record(actor=actor, action="order.cancelled", obj=order, changes={"reason": reason})
    return order


def order_mark_invoiced(*, order: Order, actor=None) -> Order:
    """Called by invoicing inside its own transaction once every line is on an invoice."""
    order = _lock(order)
    _transition(order, OrderStatus.INVOICED, actor=actor)
    order.save(update_fields=["status"])
    return order


def order_reopen_for_billing(*, order: Order, actor=None, note: str = "") -> Order:
    """Called by invoicing when the draft invoice holding an order is voided."""
    order = _lock(order)
    _transition(order, OrderStatus.FULFILLED, actor=actor, note=note)
    order.save(update_fields=["status"])
    return order


def order_close(*, order: Order, actor=None) -> Order:
    """Called by invoicing inside its transaction when the order's invoices are paid."""
    order = _lock(order)
    if order.status == OrderStatus.CLOSED:
        return order
    _transition(order, OrderStatus.CLOSED, actor=actor)
    order.save(update_fields=["status"])
    return order
