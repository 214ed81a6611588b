"""Races on PostgreSQL: many threads at once, each on its own connection."""

import threading
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
from django.db import connection

from billing.errors import DomainError
from invoicing import services as invoicing
from invoicing.models import Invoice, InvoiceStatus
from kpis.audit import run_audit
from payments import services as payments
from payments.models import Allocation, Payment

D = Decimal
pytestmark = pytest.mark.django_db(transaction=True)


def _race(n, fn):
    barrier = threading.Barrier(n)

    def run(i):
        try:
            barrier.wait(timeout=30)
            return ("ok", fn(i))
        except DomainError as exc:
            return ("refused", exc.message)
        except Exception as exc:  # anything else would be a 500
            return ("error", repr(exc))
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(run, range(n)))


def test_fifty_concurrent_issues_give_fifty_consecutive_numbers(customer, make_fulfilled_order):
    drafts = [invoicing.invoice_create_from_orders(orders=[make_fulfilled_order(customer)]) for _ in range(50)]
    results = _race(50, lambda i: invoicing.invoice_issue(invoice=drafts[i]).number)
    assert [r[0] for r in results] == ["ok"] * 50
    numbers = sorted(r[1] for r in results)
    year = Invoice.objects.first().issue_date.year
    assert numbers == [f"INV-{year}-{n:06d}" for n in range(1, 51)]
    assert run_audit() == []


def test_issuing_the_same_draft_twice_at_once_gives_one_number(customer, make_fulfilled_order):
    draft = invoicing.invoice_create_from_orders(orders=[make_fulfilled_order(customer)])
    results = _race(8, lambda i: invoicing.invoice_issue(invoice=draft).number)
    assert sorted(r[0] for r in results) == ["ok"] + ["refused"] * 7
    assert Invoice.objects.get(pk=draft.pk).sequence_number == 1


def test_fifty_concurrent_allocations_never_over_allocate_one_invoice(customer, make_issued_invoice):
    invoice = make_issued_invoice(customer)  # 462.62

    def pay(i):
        return payments.payment_record(
            customer=customer,
            method="card",
            amount=D("20.00"),
            currency="EUR",
            allocations=[{"invoice": invoice, "amount": D("20.00")}],
        ).pk

    results = _race(50, pay)
    outcomes = [r[0] for r in results]
    assert "error" not in outcomes, [r for r in results if r[0] == "error"]
    assert outcomes.count("ok") == 23  # 23 x 20 = 460 fits into 462.62; the 24th would not
    invoice.refresh_from_db()
    assert invoice.amount_paid == D("460.00")
    assert invoice.status == InvoiceStatus.PARTIALLY_PAID
    assert sum(a.amount for a in Allocation.objects.filter(invoice=invoice)) == invoice.amount_paid
    assert Payment.objects.count() == 23
    assert run_audit() == []


def test_concurrent_oldest_first_payments_pay_each_invoice_once(customer, make_issued_invoice):
    invoices = [make_issued_invoice(customer) for _ in range(3)]  # 3 x 462.62 = 1387.86

    def pay(i):
        return payments.payment_record(customer=customer, method="card", amount=D("462.62"), currency="EUR").pk

    results = _race(6, pay)
    assert all(r[0] == "ok" for r in results)
    for invoice in invoices:
        invoice.refresh_from_db()
        assert invoice.status == InvoiceStatus.PAID
        assert sum(a.amount for a in invoice.allocations.all()) == D("462.62")
    credit = sum(p.unallocated_amount for p in Payment.objects.all())
    assert credit == D("1387.86")  # three payments became customer credit, nothing lost or doubled
    assert run_audit() == []


def test_thirty_concurrent_order_creations_number_each_order_from_its_own_id(customer, products):
    from orders import services as orders
    from orders.models import Order, OrderEvent, OrderLine

    def create(i):
        order = orders.order_create(
            customer=customer,
            customer_reference=f"PO-{i}",
            lines=[{"product": products[0], "quantity": D("1")}, {"product": products[1], "quantity": D(i + 1)}],
        )
        return order.pk, order.number

    results = _race(30, create)
    assert [r[0] for r in results] == ["ok"] * 30
    stored = list(Order.objects.order_by("pk").values_list("pk", "number"))
    # Unique, each the one its id gives, and without gaps: the ids are consecutive from the sequence.
    assert sorted(r[1] for r in results) == stored
    assert [number for _, number in stored] == [f"SO-{pk:06d}" for pk, _ in stored]
    assert [pk for pk, _ in stored] == list(range(stored[0][0], stored[0][0] + 30))
    assert OrderLine.objects.count() == 60 and OrderEvent.objects.filter(to_status="draft").count() == 30
    assert run_audit() == []
