from decimal import Decimal

import pytest

from billing.errors import Conflict, InvalidTransition, ValidationFailed
from orders import services
from orders.models import Order, OrderEvent, OrderStatus
from tests.factories import CustomerFactory

D = Decimal
pytestmark = pytest.mark.django_db


def test_order_lines_copy_product_price_description_and_tax(customer, products, user):
    order = services.order_create(
        customer=customer,
        actor=user,
        customer_reference="PO-77",
        lines=[{"product": products[0], "quantity": D("2")}, {"product": products[1], "quantity": D("3")}],
    )
    lines = list(order.lines.order_by("position"))
    assert [(line.description, line.unit_price, line.tax_percent, line.net_amount) for line in lines] == [
        ("Office chair", D("149.90"), D("20.00"), D("299.80")),
        ("Accounting handbook", D("32.50"), D("5.50"), D("97.50")),
    ]
    assert (order.net_total, order.tax_total, order.gross_total) == (D("397.30"), D("65.32"), D("462.62"))
    assert order.number == f"SO-{order.pk:06d}"
    assert order.status == OrderStatus.DRAFT
    # A later price change does not touch the order.
    products[0].unit_price = D("999.00")
    products[0].save()
    assert order.lines.get(position=1).unit_price == D("149.90")


def test_line_may_override_price_description_and_discount(customer, products):
    order = services.order_create(
        customer=customer,
        lines=[
            {
                "product": products[0],
                "quantity": D("1.5"),
                "unit_price": D("100"),
                "description": "Chair, demo",
                "discount_percent": D("10"),
            }
        ],
    )
    line = order.lines.get()
    assert (line.description, line.unit_price, line.net_amount) == ("Chair, demo", D("100"), D("135.00"))


def test_inactive_product_cannot_be_ordered(customer, products):
    products[0].active = False
    products[0].save()
    with pytest.raises(ValidationFailed, match="inactive"):
        services.order_create(customer=customer, lines=[{"product": products[0], "quantity": D("1")}])
    assert not Order.objects.exists()


def test_an_order_needs_lines_and_positive_quantities(customer, products):
    with pytest.raises(ValidationFailed):
        services.order_create(customer=customer, lines=[])
    with pytest.raises(ValidationFailed):
        services.order_create(customer=customer, lines=[{"product": products[0], "quantity": D("0")}])
    assert not Order.objects.exists()


def test_lifecycle_writes_an_event_per_transition(customer, products, user):
    order = services.order_create(customer=customer, lines=[{"product": products[0], "quantity": D("1")}])
    services.order_confirm(order=order, actor=user)
    order = services.order_fulfill(order=order, actor=user)
    assert order.status == OrderStatus.FULFILLED
    assert order.confirmed_at is not None and order.fulfilled_at is not None
    moves = list(OrderEvent.objects.filter(order=order).values_list("from_status", "to_status", "actor__username"))
    assert moves == [("", "draft", None), ("draft", "confirmed", "finance"), ("confirmed", "fulfilled", "finance")]


@pytest.mark.parametrize("action", ["order_fulfill", "order_mark_invoiced"])
def test_illegal_moves_from_draft_are_refused(customer, products, action):
    order = services.order_create(customer=customer, lines=[{"product": products[0], "quantity": D("1")}])
    with pytest.raises(InvalidTransition) as exc:
        getattr(services, action)(order=order)
    assert exc.value.details["status"] == "draft"
    order.refresh_from_db()
    assert order.status == OrderStatus.DRAFT


def test_cancel_only_from_draft_or_confirmed(customer, products, make_fulfilled_order):
    order = services.order_create(customer=customer, lines=[{"product": products[0], "quantity": D("1")}])
    assert services.order_cancel(order=order, reason="duplicate").status == OrderStatus.CANCELLED
    with pytest.raises(InvalidTransition):
        services.order_confirm(order=order)
    fulfilled = make_fulfilled_order(customer)
    with pytest.raises(InvalidTransition):
        services.order_cancel(order=fulfilled)


def test_confirm_refused_when_customer_on_hold(products):
    customer = CustomerFactory(on_hold=True, on_hold_reason="Disputed invoices")
    order = services.order_create(customer=customer, lines=[{"product": products[0], "quantity": D("1")}])
    with pytest.raises(Conflict, match="on hold: Disputed invoices"):
        services.order_confirm(order=order)
    order.refresh_from_db()
    assert order.status == OrderStatus.DRAFT


def test_credit_limit_counts_open_invoices_and_uninvoiced_orders(products, make_issued_invoice, make_fulfilled_order):
    customer = CustomerFactory(credit_limit=D("1000.00"))
    make_issued_invoice(customer)  # 462.62 open receivable
    order = services.order_create(customer=customer, lines=[{"product": products[0], "quantity": D("3")}])  # 539.64
    assert order.gross_total + D("462.62") == D("1002.26")
    with pytest.raises(Conflict) as exc:
        services.order_confirm(order=order)
    assert exc.value.code == "credit_limit_exceeded"
    assert "limit 1000.00" in exc.value.message and "exposure 462.62" in exc.value.message
    assert "this order 539.64" in exc.value.message


def test_credit_limit_reached_exactly_is_allowed(products):
    customer = CustomerFactory(credit_limit=D("539.64"))
    order = services.order_create(customer=customer, lines=[{"product": products[0], "quantity": D("3")}])
    assert services.order_confirm(order=order).status == OrderStatus.CONFIRMED
    second = services.order_create(customer=customer, lines=[{"product": products[1], "quantity": D("1")}])
    with pytest.raises(Conflict, match=r"exposure 539\.64"):
        services.order_confirm(order=second)


def test_empty_credit_limit_means_unlimited(products):
    customer = CustomerFactory(credit_limit=None)
    order = services.order_create(customer=customer, lines=[{"product": products[0], "quantity": D("10000")}])
    assert services.order_confirm(order=order).status == OrderStatus.CONFIRMED


@pytest.mark.parametrize("pk", [1, 42, 999_999, 1_000_000, 123_456_789])
def test_the_number_written_at_insert_is_order_number_of_the_id(pk):
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {services.ORDER_NUMBER_SQL.format(id='%(id)s')}", {"id": pk})
        assert cursor.fetchone()[0] == services.order_number(pk)
    assert services.order_number(1_000_000) == "SO-1000000"


def test_order_create_writes_the_order_its_lines_and_event_in_one_statement(customer, products, user):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    lines = [{"product": products[i % 2], "quantity": D(i + 1)} for i in range(7)]
    with CaptureQueriesContext(connection) as queries:
        order = services.order_create(customer=customer, actor=user, lines=lines)
    writes = [q["sql"] for q in queries.captured_queries if "SAVEPOINT" not in q["sql"]]
    assert len(writes) == 1, writes
    stored = Order.objects.get(pk=order.pk)
    assert stored.number == order.number == f"SO-{order.pk:06d}"
    assert (stored.net_total, stored.tax_total, stored.gross_total) == (
        order.net_total,
        order.tax_total,
        order.gross_total,
    )
    assert stored.created_by == user and stored.created_at == order.created_at
    assert [(line.pk, line.position, line.quantity) for line in order.lines.all()] == list(
        stored.lines.order_by("position").values_list("pk", "position", "quantity")
    )
    assert list(OrderEvent.objects.filter(order=stored).values_list("from_status", "to_status", "actor")) == [
        ("", "draft", user.pk)
    ]


def test_a_refused_order_writes_nothing_and_uses_no_number(customer, products):
    first = services.order_create(customer=customer, lines=[{"product": products[0], "quantity": D("1")}])
    with pytest.raises(ValidationFailed):
        services.order_create(
            customer=customer,
            lines=[{"product": products[0], "quantity": D("1")}, {"product": products[1], "quantity": D("0")}],
        )
    second = services.order_create(customer=customer, lines=[{"product": products[0], "quantity": D("1")}])
    assert second.pk == first.pk + 1 and Order.objects.count() == 2
