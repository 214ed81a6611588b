"""The billing run's batch path (billing_runs.bill_batch): one transaction per batch, rows written
in bulk, numbers taken as one block. It must make the same documents as the single path
(bill_group: invoice_create_from_orders + invoice_issue), keep a bad group from sinking the others,
and stay gapless and bill nothing twice under concurrency."""

import threading
from datetime import date, datetime
from decimal import Decimal

import pytest
from django.contrib.contenttypes.models import ContentType
from django.db import connection, transaction
from django.utils import timezone

from billing.models import AuditEvent, BillingCycle, Contact
from invoicing import billing_runs
from invoicing.models import BillingRun, BillingRunStatus, Invoice, InvoiceLine, InvoiceStatus, PdfStatus
from kpis.audit import run_audit
from orders.models import Order, OrderEvent, OrderStatus
from otc.celery import app as celery_app
from tests.factories import CustomerFactory, ProductFactory, TaxRateFactory

D = Decimal
ISSUE = date(2026, 12, 1)


class Rollback(Exception):
    pass


def _fulfilled_on(order, day: date):
    moment = timezone.make_aware(datetime.combine(day, datetime.min.time()).replace(hour=12))
    Order.objects.filter(pk=order.pk).update(fulfilled_at=moment)
    return order


def _documents() -> dict:
    """Everything a billing run writes, keyed by the invoice's orders, without what differs by
    nature between two runs (row ids, the issue timestamp and the fingerprint taken over them)."""
    ct = ContentType.objects.get_for_model(Invoice)
    docs = {}
    for invoice in Invoice.objects.order_by("pk"):
        lines = list(invoice.lines.order_by("position", "id"))
        orders = tuple(sorted({line.order_line.order_id for line in lines}))
        header = {
            f.attname: getattr(invoice, f.attname)
            for f in Invoice._meta.concrete_fields
            if f.attname not in {"id", "issued_at", "content_sha256", "created_at", "updated_at"}
        }
        audits = sorted(
            (a.action, a.actor_id, repr(sorted(a.changes.items())))
            for a in AuditEvent.objects.filter(content_type=ct, object_id=invoice.pk)
        )
        events = sorted(
            (e.order_id, e.from_status, e.to_status, e.actor_id, e.note)
            for e in OrderEvent.objects.filter(order_id__in=orders, to_status=OrderStatus.INVOICED)
        )
        docs[orders] = {
            "header": header,
            "lines": [{k: getattr(line, k) for k in InvoiceLine.CONTENT_FIELDS} for line in lines],
            "audit": audits,
            "events": events,
            "fingerprint_holds": invoice.fingerprint(lines=lines) == invoice.content_sha256,
        }
    return docs


@pytest.fixture
def mixed_orders(make_fulfilled_order, products):
    """Per-order, weekly and monthly customers (one with contacts, one zero-rated line, one free
    order), all fulfilled in November 2026."""
    exempt = TaxRateFactory(name="Exempt", rate=D("0.00"), category="exempt", legal_note="VAT exempt, art. 261")
    per_order = CustomerFactory(billing_cycle=BillingCycle.PER_ORDER)
    Contact.objects.create(customer=per_order, name="Zoe", email="zoe@example.com", receives_invoices=True)
    Contact.objects.create(customer=per_order, name="Adam", email="adam@example.com")
    monthly = CustomerFactory(billing_cycle=BillingCycle.MONTHLY)
    weekly = CustomerFactory(billing_cycle=BillingCycle.WEEKLY, billing_method="paper")
    _fulfilled_on(make_fulfilled_order(per_order, customer_reference="PO-A"), date(2026, 11, 3))
    _fulfilled_on(
        make_fulfilled_order(
            per_order,
            lines=[
                {"product": products[1], "quantity": D("1.5"), "discount_percent": D("10")},
                {"product": products[0], "quantity": D("1")},
            ],
        ),
        date(2026, 11, 4),
    )
    _fulfilled_on(make_fulfilled_order(monthly), date(2026, 10, 5))
    _fulfilled_on(make_fulfilled_order(monthly, customer_reference="PO-M"), date(2026, 10, 28))
    _fulfilled_on(make_fulfilled_order(weekly), date(2026, 11, 16))
    _fulfilled_on(make_fulfilled_order(weekly), date(2026, 11, 18))
    sample = ProductFactory(sku="SAMPLE", name="Free sample", unit_price=D("0"), tax_rate=exempt)
    free = make_fulfilled_order(per_order, lines=[{"product": sample, "quantity": D("1")}])
    _fulfilled_on(free, date(2026, 11, 5))
    return billing_runs.plan_groups(as_of=date(2026, 11, 30))


@pytest.mark.django_db
def test_the_batch_makes_the_same_documents_as_the_single_path(mixed_orders, user):
    groups = mixed_orders
    assert sorted(len(g) for g in groups) == [1, 1, 1, 2, 2]
    with pytest.raises(Rollback), transaction.atomic():
        done = billing_runs.bill_batch(groups=groups, issue_date=ISSUE, actor=user)
        assert (done.created, done.billed, done.skipped, done.errors) == (5, 7, 0, [])
        batch = _documents()
        assert run_audit() == []
        raise Rollback
    assert not Invoice.objects.exists()
    for order_ids in groups:
        billing_runs.bill_group(order_ids=order_ids, issue_date=ISSUE, actor=user)
    single = _documents()

    assert len(batch) == 5
    assert batch == single
    assert all(doc["fingerprint_holds"] for doc in batch.values())
    numbers = sorted(doc["header"]["number"] for doc in batch.values())
    assert numbers == [f"INV-2026-{n:06d}" for n in range(1, 6)]
    free = next(doc for doc in batch.values() if doc["header"]["gross_total"] == 0)
    assert free["header"]["status"] == InvoiceStatus.PAID
    assert free["lines"][0]["tax_note"] == "VAT exempt, art. 261"


@pytest.mark.django_db
def test_a_group_that_cannot_be_built_is_reported_and_the_others_are_billed(make_fulfilled_order):
    a, b = CustomerFactory(), CustomerFactory()
    oa1, oa2, ob = make_fulfilled_order(a), make_fulfilled_order(a), make_fulfilled_order(b)
    groups = [[oa1.pk], [oa2.pk, ob.pk], [ob.pk]]  # the middle one mixes two customers
    run = BillingRun.objects.create(as_of=timezone.localdate(), total_groups=3)

    billing_runs.run_batch(run_id=run.pk, groups=groups)

    run.refresh_from_db()
    assert (run.invoices_created, run.orders_billed, run.status) == (2, 2, BillingRunStatus.DONE)
    assert len(run.errors) == 1 and run.errors[0]["orders"] == [oa2.pk, ob.pk]
    assert "share the customer" in run.errors[0]["error"]
    statuses = dict(Order.objects.values_list("pk", "status"))
    assert statuses == {oa1.pk: OrderStatus.INVOICED, oa2.pk: OrderStatus.FULFILLED, ob.pk: OrderStatus.INVOICED}
    assert sorted(Invoice.objects.values_list("sequence_number", flat=True)) == [1, 2]
    assert not OrderEvent.objects.filter(order=oa2, to_status=OrderStatus.INVOICED).exists()
    assert run_audit() == []


@pytest.mark.django_db
def test_a_group_failing_in_the_database_does_not_sink_the_batch(make_fulfilled_order, customer):
    good1, bad, good2 = (make_fulfilled_order(customer) for _ in range(3))
    # A line of `bad` already sits on another document although the order is still fulfilled: the
    # one-invoice-line-per-order-line constraint refuses the batch's insert.
    stray = Invoice.objects.create(customer=customer, currency="EUR")
    taken = bad.lines.first()
    InvoiceLine.objects.create(
        invoice=stray, order_line=taken, description="x", quantity=D("1"), unit_price=D("1"), tax_percent=D("0"),
        net_amount=D("1"),
    )  # fmt: skip
    groups = [[good1.pk], [bad.pk], [good2.pk]]
    run = BillingRun.objects.create(as_of=timezone.localdate(), total_groups=3)

    billing_runs.run_batch(run_id=run.pk, groups=groups)

    run.refresh_from_db()
    assert (run.invoices_created, run.orders_billed, run.status) == (2, 2, BillingRunStatus.DONE)
    assert [e["orders"] for e in run.errors] == [[bad.pk]]
    assert "invoiceline_order_line_once" in run.errors[0]["error"]
    bad.refresh_from_db()
    assert bad.status == OrderStatus.FULFILLED
    issued = Invoice.objects.exclude(pk=stray.pk)
    assert sorted(issued.values_list("sequence_number", flat=True)) == [1, 2]  # no number lost to the failure
    assert InvoiceLine.objects.filter(order_line__order=bad).count() == 1  # only the stray line


@pytest.mark.django_db
def test_a_batch_runs_in_a_fixed_number_of_queries(make_fulfilled_order, django_assert_max_num_queries):
    customers = [CustomerFactory() for _ in range(6)]
    for c in customers:
        Contact.objects.create(customer=c, name=f"AP {c.pk}", email=f"ap{c.pk}@example.com")
        for _ in range(4):
            make_fulfilled_order(c)
    groups = billing_runs.plan_groups(as_of=timezone.localdate())
    assert len(groups) == 24
    # Savepoint, orders locked, lines, customers + contacts, invoices, lines, events, order update,
    # audit, number block (2), numbers + fingerprints, audit, release: not one per invoice.
    with django_assert_max_num_queries(16):
        done = billing_runs.bill_batch(groups=groups, issue_date=timezone.localdate())
    assert (done.created, done.billed) == (24, 24)
    assert run_audit() == []


@pytest.mark.django_db
def test_one_pdf_task_per_batch_is_sent_on_commit_and_renders_every_invoice(
    make_fulfilled_order, customer, django_capture_on_commit_callbacks
):
    for _ in range(3):
        make_fulfilled_order(customer)
    groups = billing_runs.plan_groups(as_of=timezone.localdate())
    celery_app.conf.task_always_eager = True
    try:
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            billing_runs.bill_batch(groups=groups, issue_date=timezone.localdate())
        assert len(callbacks) == 1
        assert set(Invoice.objects.values_list("pdf_status", flat=True)) == {PdfStatus.PENDING}
        with django_capture_on_commit_callbacks(execute=True):
            callbacks[0]()
    finally:
        celery_app.conf.task_always_eager = False
    assert set(Invoice.objects.values_list("pdf_status", flat=True)) == {PdfStatus.READY}


@pytest.mark.django_db(transaction=True)
def test_overlapping_batches_in_parallel_bill_each_order_once_with_gapless_numbers(make_fulfilled_order):
    customers = [CustomerFactory() for _ in range(5)]
    weekly = CustomerFactory(billing_cycle=BillingCycle.WEEKLY)
    for c in customers:
        for _ in range(6):
            make_fulfilled_order(c)
    for _ in range(3):
        _fulfilled_on(make_fulfilled_order(weekly), date(2026, 11, 18))
    groups = billing_runs.plan_groups(as_of=timezone.localdate())
    assert len(groups) == 31
    # Three workers on overlapping slices, in different orders: each order is locked by one of them.
    slices = [groups[:20], groups[10:][::-1], groups[5:25]]
    barrier = threading.Barrier(len(slices))
    results, failures = [], []

    def work(part):
        try:
            barrier.wait()
            results.append(billing_runs.bill_batch(groups=part, issue_date=timezone.localdate()))
        except Exception as exc:  # pragma: no cover - reported below
            failures.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(part,)) for part in slices]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert failures == []
    assert sum(r.created for r in results) == 31
    assert sum(r.billed for r in results) == 33
    assert all(r.errors == [] for r in results)
    assert sorted(Invoice.objects.values_list("sequence_number", flat=True)) == list(range(1, 32))
    assert not Order.objects.filter(status=OrderStatus.FULFILLED).exists()
    assert OrderEvent.objects.filter(to_status=OrderStatus.INVOICED).count() == 33
    assert run_audit() == []
