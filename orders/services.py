from collections.abc import Iterable
from contextlib import nullcontext
from datetime import date
from decimal import Decimal

from django.db import connection, transaction
from django.utils import timezone

from billing import money
from billing.errors import Conflict, InvalidTransition, PermissionDenied, ValidationFailed
from billing.models import Customer
from billing.services import actor_user, audit_record

from .models import ORDER_TRANSITIONS, Order, OrderChannel, OrderEvent, OrderLine, OrderStatus, Product
from .selectors import customer_exposure

# DecimalField(max_digits=14, decimal_places=2): larger amounts would overflow the column.
MAX_AMOUNT = Decimal("1000000000000")
PERM_OVERRIDE_PRICE = "orders.override_line_price"
PERM_OVERRIDE_CREDIT = "orders.override_credit_limit"
# OrderEvent.note holds 255 characters: the reason plus the figures must fit.
OVERRIDE_REASON_MAX = 160


def may_override_price(actor) -> bool:
    """Whether `actor` may set a line's unit price. `actor=None` is the system itself (seed data,
    scripts), which is trusted; every request passes its user, and an anonymous user may not."""
    return actor is None or actor.has_perm(PERM_OVERRIDE_PRICE)


def may_override_credit(actor) -> bool:
    return actor is not None and actor.has_perm(PERM_OVERRIDE_CREDIT)


def _check_transition(order: Order, to: str) -> None:
    if to not in ORDER_TRANSITIONS[order.status]:
        raise InvalidTransition(
            f"Order {order} is {order.get_status_display().lower()}; it cannot become {OrderStatus(to).label.lower()}.",
            details={"status": order.status, "requested": to},
        )


def _transition(order: Order, to: str, *, actor=None, note: str = "") -> None:
    """Move a locked order to `to`, refusing moves the transitions map does not allow."""
    _check_transition(order, to)
    OrderEvent.objects.create(order=order, from_status=order.status, to_status=to, actor=actor_user(actor), note=note)
    order.status = to


def _lock(order: Order) -> Order:
    return Order.objects.select_for_update().get(pk=order.pk)


def _recompute_totals(order: Order, lines: Iterable[OrderLine]) -> None:
    result = money.totals(
        (money.TaxableLine(net=line.net_amount, rate=line.tax_percent, category=line.tax_category) for line in lines),
        order.currency,
    )
    order.net_total, order.tax_total, order.gross_total = result.net, result.tax, result.gross


def line_figures(spec: dict, currency: str) -> tuple[Decimal, Decimal, Decimal]:
    """(unit price, discount, net) of one line as order_create computes them: the product's price
    unless the line names one, the net rounded by billing.money. No database, no permission check."""
    product: Product = spec["product"]
    unit_price = spec.get("unit_price")
    unit_price = product.unit_price if unit_price is None else Decimal(unit_price)
    discount = Decimal(spec.get("discount_percent") or 0)
    return unit_price, discount, money.line_net(Decimal(spec["quantity"]), unit_price, discount, currency)


def is_price_override(spec: dict) -> bool:
    """A line names a unit price other than the product's list price."""
    price = spec.get("unit_price")
    return price is not None and Decimal(price) != spec["product"].unit_price


def _build_line(order: Order, position: int, spec: dict, *, actor=None) -> OrderLine:
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
    if is_price_override(spec) and not may_override_price(actor):
        raise PermissionDenied(
            f"Line {position}: you may not change the unit price of {product.sku} "
            f"(list price {product.unit_price}); overriding a price needs the 'override line price' permission.",
            details={"lines": [f"Line {position}: overriding the unit price is not allowed for you."]},
        )
    unit_price, discount, net_amount = line_figures(spec, order.currency)
    tax_rate = product.tax_rate
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


def order_number(pk: int) -> str:
    """The order number of order `pk`: SO- and the id, zero-padded to at least 6 digits. The same
    as ORDER_NUMBER_SQL, which order_create uses to number the order in its INSERT."""
    return f"SO-{pk:06d}"


# order_number in SQL, of the column or value `{id}`: lpad alone would cut ids over 6 digits.
ORDER_NUMBER_SQL = "'SO-' || lpad({id}::text, greatest(6, length({id}::text)), '0')"

# The whole draft order in one statement: the id from the order sequence, the number from the id,
# the lines (one row per array element) and the draft event, all written together; returns the
# order's id and number and each line's id with its position.
_CREATE_SQL = f"""
WITH s AS (SELECT nextval(pg_get_serial_sequence('orders_order', 'id')) AS id),
o AS (
    INSERT INTO orders_order (id, number, customer_id, customer_reference, order_date, currency, status,
        net_total, tax_total, gross_total, channel, entry_started_at, notes, created_by_id, created_at)
    SELECT s.id, {ORDER_NUMBER_SQL.format(id="s.id")}, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s
    FROM s
    RETURNING id, number
),
l AS (
    INSERT INTO orders_orderline (order_id, position, product_id, description, quantity, unit, unit_price,
        discount_percent, tax_rate_id, tax_percent, tax_category, net_amount)
    SELECT o.id, v.position, v.product_id, v.description, v.quantity, v.unit, v.unit_price, v.discount_percent,
        v.tax_rate_id, v.tax_percent, v.tax_category, v.net_amount
    FROM o, unnest(%s::integer[], %s::bigint[], %s::text[], %s::numeric[], %s::text[], %s::numeric[],
        %s::numeric[], %s::bigint[], %s::numeric[], %s::text[], %s::numeric[])
        AS v(position, product_id, description, quantity, unit, unit_price, discount_percent, tax_rate_id,
             tax_percent, tax_category, net_amount)
    RETURNING id, position
),
e AS (
    INSERT INTO orders_orderevent (order_id, from_status, to_status, actor_id, note, created_at)
    SELECT o.id, '', %s, %s, '', %s FROM o
)
SELECT o.id, o.number, l.id, l.position FROM o, l
"""  # noqa: S608  (no value is formatted in: table and column names only)


def _cache_lines(order: Order, lines: list[OrderLine]) -> None:
    # What prefetch_related("lines") would leave: order.lines.all() answers without a query (the API
    # shows the new order from it); any other use of order.lines still goes to the database.
    cached = order.lines.all()
    cached._result_cache, cached._prefetch_done = lines, True
    order._prefetched_objects_cache = {"lines": cached}


def _saved(obj):
    obj._state.adding, obj._state.db = False, "default"
    return obj


def _create_portable(order: Order, lines: list[OrderLine], user) -> None:
    """order_create's writes for a database without data-modifying CTEs (SQLite, one writer at a
    time): the order, its number from its id, its lines and its draft event, in one transaction."""
    with transaction.atomic():
        order.save(force_insert=True)
        order.number = order_number(order.pk)
        Order.objects.filter(pk=order.pk).update(number=order.number)
        OrderLine.objects.bulk_create(lines)
        OrderEvent.objects.create(order=order, from_status="", to_status=OrderStatus.DRAFT, actor=user)
    _cache_lines(order, lines)


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
    """Create a draft order; each line copies the product's description, price and tax rate.
    A line may name its own unit price only if `actor` may override prices (see may_override_price).
    The order comes back with its lines already in `order.lines.all()` (no query to show it).

    Every rule is checked and the totals computed before anything is written; then the order (its
    number taken from the order sequence in the INSERT), its lines and its draft event are written
    by one statement, atomic by itself (inside the caller's transaction if there is one)."""
    if not lines:
        raise ValidationFailed("An order needs at least one line.", details={"lines": ["Add at least one line."]})
    user = actor_user(actor)
    now = timezone.now()
    order = Order(
        customer=customer,
        customer_reference=customer_reference,
        order_date=order_date or timezone.localdate(),
        currency=customer.currency,
        status=OrderStatus.DRAFT,
        channel=channel,
        entry_started_at=entry_started_at or now,
        notes=notes,
        created_by=user,
        created_at=now,
    )
    built = [_build_line(order, i, spec, actor=actor) for i, spec in enumerate(lines, start=1)]
    _recompute_totals(order, built)
    if order.gross_total >= MAX_AMOUNT:
        raise ValidationFailed(
            f"The order comes to {order.gross_total}, more than an amount can hold.",
            details={"lines": ["The order total is too large."]},
        )
    if connection.vendor != "postgresql":
        # The embedded default (SQLite) has no data-modifying CTEs: the same rows through the ORM.
        _create_portable(order, built, user)
        return order
    params = [
        customer.pk,
        order.customer_reference,
        order.order_date,
        order.currency,
        order.status,
        order.net_total,
        order.tax_total,
        order.gross_total,
        order.channel,
        order.entry_started_at,
        order.notes,
        user.pk if user else None,
        now,
        [line.position for line in built],
        [line.product_id for line in built],
        [line.description for line in built],
        [line.quantity for line in built],
        [line.unit for line in built],
        [line.unit_price for line in built],
        [line.discount_percent for line in built],
        [line.tax_rate_id for line in built],
        [line.tax_percent for line in built],
        [line.tax_category for line in built],
        [line.net_amount for line in built],
        OrderStatus.DRAFT,
        user.pk if user else None,
        now,
    ]
    # One statement is atomic by itself; inside a transaction it gets a savepoint, so that a refused
    # order (a clash on the number, say) leaves the caller's transaction usable (the bulk API goes on).
    with transaction.atomic() if connection.in_atomic_block else nullcontext(), connection.cursor() as cursor:
        cursor.execute(_CREATE_SQL, params)
        rows = cursor.fetchall()
    order.pk, order.number = rows[0][0], rows[0][1]
    line_ids = {position: line_id for _, _, line_id, position in rows}
    _saved(order)
    for line in built:
        line.pk, line.order = line_ids[line.position], order
        _saved(line)
    _cache_lines(order, built)
    return order


@transaction.atomic
def order_confirm(*, order: Order, actor=None, override_reason: str = "") -> Order:
    """Confirm a draft order after credit control: not on hold, exposure within the credit limit.

    Over the limit, a user with the override_credit_limit permission may still confirm it by giving
    `override_reason`; the override is audited with the figures and noted on the order's history.
    Without the permission a reason is refused (403); without a reason the limit applies (409).
    A hold is never overridden here: lift it on the customer."""
    override_reason = (override_reason or "").strip()
    if len(override_reason) > OVERRIDE_REASON_MAX:
        raise ValidationFailed(
            f"Keep the override reason under {OVERRIDE_REASON_MAX} characters.",
            details={"override_reason": [f"At most {OVERRIDE_REASON_MAX} characters."]},
        )
    order = _lock(order)
    customer = Customer.objects.select_for_update().get(pk=order.customer_id)
    note, figures = "", None
    if order.status == OrderStatus.DRAFT:
        if customer.on_hold:
            raise Conflict(f"Customer {customer.name} is on hold: {customer.on_hold_reason}", code="customer_on_hold")
        if customer.credit_limit is not None:
            exposure = customer_exposure(customer, exclude_order=order)
            if exposure + order.gross_total > customer.credit_limit:
                figures = {
                    "credit_limit": str(customer.credit_limit),
                    "exposure": str(exposure),
                    "order_total": str(order.gross_total),
                }
                message = (
                    f"Credit limit exceeded: limit {customer.credit_limit}, current exposure {exposure}, "
                    f"this order {order.gross_total} {order.currency}."
                )
                if not override_reason:
                    raise Conflict(message, code="credit_limit_exceeded", details=figures)
                if not may_override_credit(actor):
                    raise PermissionDenied(
                        f"{message} Confirming over the limit needs the 'override credit limit' permission.",
                        details={**figures, "override_reason": ["You may not override the credit limit."]},
                    )
                note = (
                    f"Credit limit overridden: {override_reason} (limit {customer.credit_limit}, exposure "
                    f"{exposure}, this order {order.gross_total} {order.currency})"
                )
    _transition(order, OrderStatus.CONFIRMED, actor=actor, note=note)
    order.confirmed_at = timezone.now()
    order.save(update_fields=["status", "confirmed_at"])
    if figures is not None:
        over_by = Decimal(figures["exposure"]) + order.gross_total - customer.credit_limit
        changes = {**figures, "over_by": str(over_by), "currency": order.currency, "reason": override_reason}
        audit_record(actor=actor, action="order.credit_limit_overridden", obj=order, changes=changes)
    return order


@transaction.atomic
def order_create_and_confirm(*, override_reason: str = "", **fields) -> Order:
    """Enter an order and confirm it in one go (the entry page's save-and-confirm): if credit control
    refuses, nothing is saved and the clerk keeps the entry on screen. Takes order_create's arguments."""
    order = order_create(**fields)
    return order_confirm(order=order, actor=fields.get("actor"), override_reason=override_reason)


def order_quote(*, currency: str, lines: list[dict]) -> tuple[list[Decimal], money.Totals]:
    """What order_create would compute for these lines, without saving: each line's net and the
    totals with tax per rate. For the entry page's live totals; checks no rule and no permission."""
    nets, taxable = [], []
    for spec in lines:
        net = line_figures(spec, currency)[2]
        tax_rate = spec["product"].tax_rate
        nets.append(net)
        taxable.append(money.TaxableLine(net=net, rate=tax_rate.rate, category=tax_rate.category))
    return nets, money.totals(taxable, currency)


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


def orders_mark_invoiced(*, orders: list[Order], actor=None) -> None:
    """The bulk form of order_mark_invoiced, for invoicing when it bills orders together: the
    caller holds every order locked (with its current status) in its transaction. Same rule and
    the same event rows, written with one INSERT and one UPDATE; refuses all of them if any may
    not become invoiced."""
    for order in orders:
        _check_transition(order, OrderStatus.INVOICED)
    user = actor_user(actor)
    actor_id = user.pk if user else None
    OrderEvent.objects.bulk_create(
        [
            OrderEvent(order_id=o.pk, from_status=o.status, to_status=OrderStatus.INVOICED, actor_id=actor_id)
            for o in orders
        ]
    )
    Order.objects.filter(pk__in=[o.pk for o in orders]).update(status=OrderStatus.INVOICED)
    for order in orders:
        order.status = OrderStatus.INVOICED


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


def order_reopen_unpaid(*, order: Order, actor=None, note: str = "") -> Order:
    """Called by invoicing when a closed order's invoice is no longer paid (its payment was reversed)."""
    order = _lock(order)
    if order.status != OrderStatus.CLOSED:
        return order
    _transition(order, OrderStatus.INVOICED, actor=actor, note=note)
    order.save(update_fields=["status"])
    return order


@transaction.atomic
def product_create(*, actor=None, **fields) -> Product:
    """Add a product to the catalogue (model validation, including the unique SKU, applies)."""
    product = Product(**fields)
    product.full_clean()
    product.save()
    audit_record(actor=actor, action="product.created", obj=product, changes={"sku": product.sku})
    return product


@transaction.atomic
def product_update(*, product: Product, actor=None, **fields) -> Product:
    """Change a product; orders already entered keep the price and tax rate they copied."""
    product = Product.objects.select_for_update().get(pk=product.pk)
    changes = {}
    for name, value in fields.items():
        old = getattr(product, name)
        if old != value:
            changes[name] = [str(old), str(value)]
            setattr(product, name, value)
    product.full_clean()
    product.save()
    if changes:
        audit_record(actor=actor, action="product.updated", obj=product, changes=changes)
    return product
