"""Billing runs: fulfilled, uninvoiced orders become issued invoices, following each customer's
billing cycle. Per-order customers get one invoice per order; weekly and monthly customers get
one consolidated invoice per period, once that period has ended on the run's as-of date.

A run plans its groups (lists of order ids), then processes them in bounded batches of Celery
tasks. Each group is billed in its own transaction that locks its orders with SKIP LOCKED and
re-checks their status, so a rerun, a second worker or a parallel run never bills an order twice
(and the one-invoice-line-per-order-line constraint backs that up). Numbers are taken inside the
same transaction, so a failed group leaves no gap.
"""

import logging
from collections import defaultdict
from datetime import date, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from billing.errors import DomainError
from billing.jobs import enqueue_on_commit
from billing.models import BillingCycle
from billing.services import actor_user
from orders.models import Order, OrderStatus

from . import services
from .models import BillingRun, BillingRunStatus

log = logging.getLogger(__name__)
BATCH_SIZE = 200  # groups per task


def period_end(cycle: str, day: date) -> date:
    """Last day of the billing period that `day` falls in."""
    if cycle == BillingCycle.WEEKLY:
        return day + timedelta(days=6 - day.weekday())
    if cycle == BillingCycle.MONTHLY:
        first_next = (day.replace(day=1) + timedelta(days=32)).replace(day=1)
        return first_next - timedelta(days=1)
    return day


def plan_groups(*, as_of: date) -> list[list[int]]:
    """Order ids to bill together, oldest first. A weekly or monthly period is billed only once
    it has ended on `as_of`, so its invoice lists every order of the period."""
    rows = (
        Order.objects.filter(status=OrderStatus.FULFILLED, fulfilled_at__date__lte=as_of)
        .order_by("customer_id", "fulfilled_at", "pk")
        .values_list("pk", "customer_id", "currency", "customer__billing_cycle", "fulfilled_at")
    )
    groups: dict[tuple, list[int]] = defaultdict(list)
    for pk, customer_id, currency, cycle, fulfilled_at in rows.iterator(chunk_size=5000):
        day = timezone.localdate(fulfilled_at)
        if cycle == BillingCycle.PER_ORDER:
            groups[("order", pk)].append(pk)
            continue
        end = period_end(cycle, day)
        if end <= as_of:
            groups[(customer_id, currency, cycle, end)].append(pk)
    return list(groups.values())


def bill_group(*, order_ids: list[int], issue_date: date, actor=None) -> tuple[int, int]:
    """Bill one group: returns (invoices created, orders billed). Orders another worker holds or
    has billed already are left out; an empty group does nothing."""
    with transaction.atomic():
        orders = list(
            Order.objects.select_for_update(skip_locked=True)
            .filter(pk__in=order_ids, status=OrderStatus.FULFILLED)
            .order_by("pk")
        )
        if not orders:
            return 0, 0
        draft = services.invoice_create_from_orders(orders=orders, actor=actor)
        services.invoice_issue(invoice=draft, actor=actor, issue_date=issue_date)
        return 1, len(orders)


def run_start(*, as_of: date | None = None, actor=None, batch_size: int | None = None) -> BillingRun:
    """Plan a run and enqueue its batches (after commit). Returns the run at once; its progress
    is on the row. Batch size: the argument, else settings.OTC_BILLING_BATCH_SIZE, else BATCH_SIZE."""
    from .tasks import billing_run_batch

    batch_size = batch_size or getattr(settings, "OTC_BILLING_BATCH_SIZE", None) or BATCH_SIZE
    as_of = as_of or timezone.localdate()
    groups = plan_groups(as_of=as_of)
    with transaction.atomic():
        run = BillingRun.objects.create(
            as_of=as_of,
            total_groups=len(groups),
            started_by=actor_user(actor),
        )
        if not groups:
            run.status = BillingRunStatus.DONE
            run.finished_at = timezone.now()
            run.save(update_fields=["status", "finished_at"])
            return run
        batches = [groups[i : i + batch_size] for i in range(0, len(groups), batch_size)]
        for batch in batches:
            enqueue_on_commit(billing_run_batch, run.pk, batch)
    return run


def run_batch(*, run_id: int, groups: list[list[int]]) -> None:
    """Bill a batch of groups and record progress on the run."""
    run = BillingRun.objects.filter(pk=run_id).first()
    if run is None:
        return
    created = billed = skipped = 0
    errors = []
    for order_ids in groups:
        try:
            made, count = bill_group(order_ids=order_ids, issue_date=timezone.localdate(), actor=run.started_by)
        except DomainError as exc:
            errors.append({"orders": order_ids, "error": exc.message})
            continue
        except Exception as exc:  # a group that fails must not stop the run; it is reported on it
            log.exception("Billing run %s: group %s failed", run_id, order_ids)
            errors.append({"orders": order_ids, "error": repr(exc)})
            continue
        created += made
        billed += count
        skipped += 0 if made else 1
    with transaction.atomic():
        run = BillingRun.objects.select_for_update().get(pk=run_id)
        run.processed_groups = F("processed_groups") + len(groups)
        run.invoices_created = F("invoices_created") + created
        run.orders_billed = F("orders_billed") + billed
        run.skipped_groups = F("skipped_groups") + skipped
        run.errors = [*run.errors, *errors][:500]
        run.save(update_fields=["processed_groups", "invoices_created", "orders_billed", "skipped_groups", "errors"])
        run.refresh_from_db()
        if run.processed_groups >= run.total_groups:
            run.status = BillingRunStatus.FAILED if run.errors and not run.invoices_created else BillingRunStatus.DONE
            run.finished_at = timezone.now()
            run.save(update_fields=["status", "finished_at"])
