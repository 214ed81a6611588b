from datetime import date, datetime, timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from billing.models import BillingCycle
from invoicing import billing_runs
from invoicing.models import BillingRun, BillingRunStatus, Invoice, InvoiceLine, InvoiceStatus
from kpis.audit import run_audit
from orders import services as orders
from orders.models import Order, OrderStatus
from otc.celery import app as celery_app
from tests.factories import CustomerFactory

D = Decimal


@pytest.fixture
def eager():
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = False


def _fulfilled_on(order, day: date):
    """Pretend the order was delivered on `day` (the billing cycle looks at the delivery date)."""
    moment = timezone.make_aware(datetime.combine(day, datetime.min.time()).replace(hour=12))
    Order.objects.filter(pk=order.pk).update(fulfilled_at=moment)
    return order


def test_period_end():
    assert billing_runs.period_end(BillingCycle.WEEKLY, date(2026, 12, 2)) == date(2026, 12, 6)  # Wed -> Sun
    assert billing_runs.period_end(BillingCycle.WEEKLY, date(2026, 12, 6)) == date(2026, 12, 6)
    assert billing_runs.period_end(BillingCycle.MONTHLY, date(2026, 2, 10)) == date(2026, 2, 28)
    assert billing_runs.period_end(BillingCycle.MONTHLY, date(2024, 2, 10)) == date(2024, 2, 29)
    assert billing_runs.period_end(BillingCycle.MONTHLY, date(2026, 12, 31)) == date(2026, 12, 31)


@pytest.mark.django_db
def test_run_bills_per_order_and_consolidates_ended_periods(
    eager, django_capture_on_commit_callbacks, make_fulfilled_order, products
):
    per_order = CustomerFactory(billing_cycle=BillingCycle.PER_ORDER)
    monthly = CustomerFactory(billing_cycle=BillingCycle.MONTHLY)
    weekly = CustomerFactory(billing_cycle=BillingCycle.WEEKLY)
    a1 = _fulfilled_on(make_fulfilled_order(per_order), date(2026, 11, 3))
    a2 = _fulfilled_on(make_fulfilled_order(per_order), date(2026, 11, 20))
    m1 = _fulfilled_on(make_fulfilled_order(monthly, customer_reference="PO-1"), date(2026, 10, 5))
    m2 = _fulfilled_on(make_fulfilled_order(monthly, customer_reference="PO-2"), date(2026, 10, 28))
    m_open = _fulfilled_on(make_fulfilled_order(monthly), date(2026, 11, 25))  # November ends after the as-of date
    w_open = _fulfilled_on(make_fulfilled_order(weekly), date(2026, 11, 26))  # Thu; week ends Sun 29th
    late = _fulfilled_on(make_fulfilled_order(per_order), date(2026, 11, 27))  # after the as-of date
    confirmed_only = orders.order_create(customer=per_order, lines=[{"product": products[0], "quantity": D("1")}])
    orders.order_confirm(order=confirmed_only)

    with django_capture_on_commit_callbacks(execute=True):
        run = billing_runs.run_start(as_of=date(2026, 11, 26))
    run.refresh_from_db()
    assert (run.status, run.total_groups, run.invoices_created, run.orders_billed) == (BillingRunStatus.DONE, 3, 3, 4)

    consolidated = Invoice.objects.get(customer=monthly)
    assert consolidated.status == InvoiceStatus.ISSUED
    assert sorted(set(consolidated.lines.values_list("order_number", flat=True))) == sorted([m1.number, m2.number])
    # Tax is rounded once per rate over the whole invoice: 599.60 x 20 % = 119.92 and
    # 195.00 x 5.5 % = 10.725 -> 10.73, so 794.60 + 130.65, one cent more than two separate invoices.
    assert consolidated.gross_total == D("925.25")
    assert Invoice.objects.filter(customer=per_order).count() == 2
    for order in (a1, a2, m1, m2):
        order.refresh_from_db()
        assert order.status == OrderStatus.INVOICED
    for order in (m_open, w_open, late, confirmed_only):
        order.refresh_from_db()
        assert order.status in (OrderStatus.FULFILLED, OrderStatus.CONFIRMED)
        assert not InvoiceLine.objects.filter(order_line__order=order).exists()

    # The rerun finds nothing left to do; later, the ended periods are billed.
    with django_capture_on_commit_callbacks(execute=True):
        rerun = billing_runs.run_start(as_of=date(2026, 11, 26))
    assert rerun.total_groups == 0 and rerun.status == BillingRunStatus.DONE
    with django_capture_on_commit_callbacks(execute=True):
        later = billing_runs.run_start(as_of=date(2026, 11, 30))
    later.refresh_from_db()
    assert (later.invoices_created, later.orders_billed) == (3, 3)
    numbers = sorted(Invoice.objects.values_list("sequence_number", flat=True))
    assert numbers == list(range(1, 7))
    assert run_audit() == []


@pytest.mark.django_db
def test_a_group_already_billed_is_skipped_not_billed_again(make_fulfilled_order, customer):
    order = make_fulfilled_order(customer)
    groups = billing_runs.plan_groups(as_of=timezone.localdate())
    run = BillingRun.objects.create(as_of=timezone.localdate(), total_groups=2)
    billing_runs.run_batch(run_id=run.pk, groups=groups)
    billing_runs.run_batch(run_id=run.pk, groups=groups)  # a redelivered task
    run.refresh_from_db()
    assert (run.invoices_created, run.skipped_groups, run.status) == (1, 1, BillingRunStatus.DONE)
    assert InvoiceLine.objects.filter(order_line__order=order).count() == 2  # its two lines, once


@pytest.mark.django_db(transaction=True)
def test_two_runs_in_parallel_bill_nothing_twice_and_skip_no_number(make_fulfilled_order):
    import threading

    from django.db import connection

    customers = [CustomerFactory() for _ in range(4)]
    for c in customers:
        for _ in range(5):
            make_fulfilled_order(c)
    groups = billing_runs.plan_groups(as_of=timezone.localdate())
    assert len(groups) == 20
    runs = [BillingRun.objects.create(as_of=timezone.localdate(), total_groups=20) for _ in range(2)]
    barrier = threading.Barrier(2)

    def work(run):
        barrier.wait()
        try:
            billing_runs.run_batch(run_id=run.pk, groups=groups)
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(r,)) for r in runs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for r in runs:
        r.refresh_from_db()
    assert sum(r.invoices_created for r in runs) == 20
    assert sum(r.errors.__len__() for r in runs) == 0
    assert Invoice.objects.count() == 20
    assert sorted(Invoice.objects.values_list("sequence_number", flat=True)) == list(range(1, 21))
    assert not Order.objects.filter(status=OrderStatus.FULFILLED).exists()
    assert run_audit() == []


@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
def test_run_billing_command_waits_for_the_real_worker(celery_worker_process, make_fulfilled_order):
    customer = CustomerFactory()
    for _ in range(3):
        make_fulfilled_order(customer)
    yesterday = timezone.localdate() - timedelta(days=1)
    Order.objects.update(fulfilled_at=timezone.now() - timedelta(days=1))
    out = StringIO()
    call_command("run_billing", "--as-of", yesterday.isoformat(), stdout=out)
    assert "3 invoice(s) issued for 3 order(s)" in out.getvalue()
    assert Invoice.objects.filter(status=InvoiceStatus.ISSUED).count() == 3
    out = StringIO()
    call_command("run_billing", "--as-of", yesterday.isoformat(), stdout=out)
    assert "0 invoice(s) planned" in out.getvalue()


@pytest.mark.django_db
def test_a_lost_batch_message_is_sent_again_and_the_run_finishes(
    eager, make_fulfilled_order, customer, django_capture_on_commit_callbacks
):
    """The broker lost a batch's message (restarted without its data): the run would stay running.
    The sweeper sends the batch again once it is overdue; it is billed and counted once."""
    from unittest import mock

    from invoicing import tasks
    from invoicing.models import BillingRunBatch

    orders = [make_fulfilled_order(customer) for _ in range(3)]
    with (
        mock.patch.object(tasks.billing_run_bill_batch, "delay") as lost,
        django_capture_on_commit_callbacks(execute=True),
    ):
        run = billing_runs.run_start(as_of=timezone.localdate(), batch_size=2)
    batches = list(BillingRunBatch.objects.filter(run=run))
    assert [len(b.items) for b in batches] == [2, 1] and lost.call_count == 2  # sent, then lost
    run.refresh_from_db()
    assert (run.status, run.processed_groups) == (BillingRunStatus.RUNNING, 0)

    # Not yet overdue: nothing is sent again.
    with mock.patch.object(tasks.billing_run_bill_batch, "delay") as resent:
        with django_capture_on_commit_callbacks(execute=True):
            assert billing_runs.resend_lost_batches(older_than=timedelta(minutes=30)) == 0
        resent.assert_not_called()

    BillingRunBatch.objects.update(sent_at=timezone.now() - timedelta(minutes=31))
    with django_capture_on_commit_callbacks(execute=True):  # this time the messages arrive
        assert billing_runs.resend_lost_batches(older_than=timedelta(minutes=30)) == 2
    run.refresh_from_db()
    assert (run.status, run.processed_groups, run.invoices_created, run.orders_billed) == (
        BillingRunStatus.DONE,
        3,
        3,
        3,
    )
    assert all(b.done_at is not None and b.sends == 2 for b in BillingRunBatch.objects.filter(run=run))
    assert {o.status for o in Order.objects.filter(pk__in=[o.pk for o in orders])} == {OrderStatus.INVOICED}

    # The original messages turn up after all: nothing more is billed or counted.
    tasks.billing_run_bill_batch(batches[0].pk)
    run.refresh_from_db()
    assert (run.processed_groups, run.invoices_created) == (3, 3) and Invoice.objects.count() == 3
    # A finished run's batches are never sent again.
    assert billing_runs.resend_lost_batches(older_than=timedelta(seconds=0)) == 0
    assert run_audit() == []


@pytest.mark.django_db
def test_two_deliveries_of_one_stored_batch_count_its_groups_once(make_fulfilled_order, customer):
    from invoicing.models import BillingRunBatch

    make_fulfilled_order(customer)
    make_fulfilled_order(customer)
    groups = billing_runs.plan_groups(as_of=timezone.localdate())
    run = BillingRun.objects.create(as_of=timezone.localdate(), total_groups=len(groups))
    batch = BillingRunBatch.objects.create(run=run, items=groups, sent_at=timezone.now())
    billing_runs.run_stored_batch(batch_id=batch.pk)
    # A delivery that started before the first one finished bills nothing more and counts nothing twice.
    billing_runs.run_batch(run_id=run.pk, groups=groups, batch_id=batch.pk)
    run.refresh_from_db()
    assert (run.processed_groups, run.invoices_created, run.skipped_groups, run.status) == (
        2,
        2,
        0,
        BillingRunStatus.DONE,
    )
