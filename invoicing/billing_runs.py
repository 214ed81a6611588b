"""Billing runs: fulfilled, uninvoiced orders become issued invoices, following each customer's
billing cycle. Per-order customers get one invoice per order; weekly and monthly customers get
one consolidated invoice per period, once that period has ended on the run's as-of date.

A run plans its groups (lists of order ids), then processes them in bounded batches of Celery
tasks. A batch is billed in one transaction (bill_batch) that locks its orders with SKIP LOCKED
and re-checks their status, so a rerun, a second worker or a parallel run never bills an order
twice (and the one-invoice-line-per-order-line constraint backs that up). Numbers are taken as one
block inside the same transaction, so a failed batch leaves no gap; its groups are then billed one
by one (bill_group, one transaction each) so that a bad group is reported and the others billed.
"""

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta

from django.conf import settings
from django.db import DatabaseError, transaction
from django.db.models import F, Q
from django.utils import timezone

from billing import bulk, jobs
from billing.errors import DomainError, ValidationFailed
from billing.models import BillingCycle, Customer
from billing.services import actor_user, audit_record_many
from orders.models import Order, OrderStatus
from orders.services import orders_mark_invoiced

from . import services
from .models import (
    BillingRun,
    BillingRunBatch,
    BillingRunStatus,
    Invoice,
    InvoiceKind,
    InvoiceLine,
    InvoiceStatus,
)

log = logging.getLogger(__name__)
BATCH_SIZE = 200  # groups per task
AS_OF_REFUSAL = "Billing runs do not bill ahead: a week or month that has not ended is billed once it has."
# What billing reads of an order (an invoice copies its number, date and reference).
BILLED_ORDER_FIELDS = ("id", "number", "customer_id", "customer_reference", "order_date", "currency", "status")


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
    is on the row. Batch size: the argument, else settings.OTC_BILLING_BATCH_SIZE, else BATCH_SIZE.
    Refuses an as-of date after today: a week or month that has not ended is not billed yet."""
    from .tasks import billing_run_bill_batch

    batch_size = batch_size or getattr(settings, "OTC_BILLING_BATCH_SIZE", None) or BATCH_SIZE
    as_of = jobs.run_as_of(as_of, refusal=AS_OF_REFUSAL)
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
        chunks = [groups[i : i + batch_size] for i in range(0, len(groups), batch_size)]
        jobs.batches_send(BillingRunBatch, run=run, chunks=chunks, task=billing_run_bill_batch)
    return run


def resend_lost_batches(*, older_than: timedelta | None = None) -> int:
    """Send again the batches of running billing runs whose message was lost (see
    billing.jobs.batches_resend_lost). Returns how many were sent again."""
    from .tasks import billing_run_bill_batch

    running = Q(run__status=BillingRunStatus.RUNNING)
    return jobs.batches_resend_lost(
        BillingRunBatch, task=billing_run_bill_batch, running_runs=running, older_than=older_than
    )


def run_stored_batch(*, batch_id: int) -> None:
    """Bill a stored batch of a run and record its progress, unless it is done already."""
    if batch := jobs.batch_pending(BillingRunBatch, batch_id):
        run_batch(run_id=batch.run_id, groups=batch.items, batch_id=batch.pk)


@dataclass
class BatchResult:
    """What billing a batch of groups did: invoices created, orders billed, groups found with
    nothing left to bill, and the groups that failed with their error."""

    created: int = 0
    billed: int = 0
    skipped: int = 0
    errors: list[dict] = field(default_factory=list)


def bill_batch(*, groups: list[list[int]], issue_date: date, actor=None) -> BatchResult:
    """Bill a batch of groups in one transaction: one invoice per group, issued, the same documents
    bill_group makes one by one. The batch's orders are locked once (SKIP LOCKED: what another
    worker holds or has billed is left out, as in bill_group); lines, totals, snapshots and
    fingerprints are built in memory with the services' own building blocks; rows are written in
    bulk; the batch's numbers are taken as one block as late as possible, so the sequence row is
    locked only for the last two statements before commit. A group that cannot be built is left
    out and reported; if writing fails, nothing of the batch is kept and its groups are billed one
    by one (bill_group), so a bad group does not sink the others. One PDF task per batch, on commit."""
    result = BatchResult()
    try:
        with transaction.atomic():
            result = _bill_batch(groups=groups, issue_date=issue_date, actor=actor)
    except Exception:  # the transaction is rolled back: nothing of the batch was written
        log.warning("Billing a batch of %s groups failed; billing its groups one by one", len(groups), exc_info=True)
        return _bill_one_by_one(groups=groups, issue_date=issue_date, actor=actor)
    return result


def _bill_one_by_one(*, groups: list[list[int]], issue_date: date, actor=None) -> BatchResult:
    result = BatchResult()
    for order_ids in groups:
        try:
            made, count = bill_group(order_ids=order_ids, issue_date=issue_date, actor=actor)
        except DomainError as exc:
            result.errors.append({"orders": order_ids, "error": exc.message})
            continue
        except Exception as exc:  # a group that fails must not stop the run; it is reported on it
            log.exception("Billing group %s failed", order_ids)
            result.errors.append({"orders": order_ids, "error": repr(exc)})
            continue
        result.created += made
        result.billed += count
        result.skipped += 0 if made else 1
    return result


def _bill_batch(*, groups: list[list[int]], issue_date: date, actor) -> BatchResult:
    result = BatchResult()
    wanted = [pk for order_ids in groups for pk in order_ids]
    locked = {
        o.pk: o
        for o in Order.objects.select_for_update(skip_locked=True, of=("self",))
        .filter(pk__in=wanted, status=OrderStatus.FULFILLED)
        .only(*BILLED_ORDER_FIELDS)
        .order_by("pk")
    }
    if not locked:
        result.skipped = len(groups)
        return result
    order_lines = services.order_lines_to_invoice(list(locked))
    customers = Customer.objects.select_related("payment_terms").prefetch_related("contacts")
    customers = customers.in_bulk({o.customer_id for o in locked.values()})

    issued_at = timezone.now()
    seller = dict(settings.OTC_COMPANY)
    customer_snapshots: dict[int, dict] = {}
    terms_snapshots: dict[tuple, dict] = {}
    built: list[tuple[Invoice, list[Order], list[InvoiceLine]]] = []
    for order_ids in groups:
        orders = [locked[pk] for pk in sorted(order_ids) if pk in locked]
        if not orders:
            result.skipped += 1
            continue
        try:
            services.invoice_check_orders(orders)
            first = orders[0]
            customer = customers[first.customer_id]
            invoice = Invoice(kind=InvoiceKind.INVOICE, customer_id=customer.pk, currency=first.currency)
            lines = services.invoice_lines_from_orders(invoice=invoice, orders=orders, order_lines=order_lines)
            if not lines:
                raise ValidationFailed("An invoice needs at least one line before it is issued.")
            services._recompute_totals(invoice, lines)
            if customer.pk not in customer_snapshots:
                customer_snapshots[customer.pk] = customer.snapshot()
            terms_key = (customer.payment_terms_id, invoice.currency)
            if terms_key not in terms_snapshots:
                terms_snapshots[terms_key] = customer.payment_terms.snapshot(invoice.currency)
            services.invoice_set_issue_fields(
                invoice,
                customer=customer,
                issued_on=issue_date,
                actor=actor,
                issued_at=issued_at,
                customer_snapshot=customer_snapshots[customer.pk],
                terms_snapshot=terms_snapshots[terms_key],
                seller_snapshot=seller,
            )
        except DatabaseError:
            raise
        except Exception as exc:  # built in memory only: the group is left out, the others go on
            message = exc.message if isinstance(exc, DomainError) else repr(exc)
            if not isinstance(exc, DomainError):
                log.exception("Billing group %s failed", order_ids)
            result.errors.append({"orders": order_ids, "error": message})
            continue
        built.append((invoice, orders, lines))
    if not built:
        return result

    # Written as drafts first (no number yet), so that the sequence row is locked only at the end.
    statuses = {}
    for invoice, _orders, _lines in built:
        statuses[id(invoice)] = invoice.status
        invoice.status = InvoiceStatus.DRAFT
    Invoice.objects.bulk_create([invoice for invoice, _o, _l in built])
    InvoiceLine.objects.bulk_create([line for _i, _o, lines in built for line in lines])
    billed = [order for _i, orders, _l in built for order in orders]
    orders_mark_invoiced(orders=billed, actor=actor)
    audit_record_many(
        actor=actor,
        action="invoice.drafted",
        entries=[(invoice, services.invoice_drafted_changes(invoice, orders)) for invoice, orders, _l in built],
    )

    first_number = services.number_block(series="INV", year=issue_date.year, count=len(built))
    for n, (invoice, _orders, lines) in enumerate(built):
        invoice.status = statuses[id(invoice)]
        services.invoice_set_number(invoice, first_number + n)
        invoice.content_sha256 = invoice.fingerprint(lines=lines)
    # One set-based UPDATE (a bulk_update builds a CASE per row and field: most of a batch's CPU).
    bulk.update_rows(
        Invoice,
        ["status", "sequence_number", "number", "content_sha256"],
        [(i.pk, i.status, i.sequence_number, i.number, i.content_sha256) for i, _o, _l in built],
    )
    audit_record_many(
        actor=actor,
        action="invoice.issued",
        entries=[(invoice, services.invoice_issued_changes(invoice)) for invoice, _o, _l in built],
    )
    from .tasks import render_pdfs_on_commit

    render_pdfs_on_commit([invoice.pk for invoice, _o, _l in built])
    result.created = len(built)
    result.billed = len(billed)
    return result


def run_batch(*, run_id: int, groups: list[list[int]], batch_id: int | None = None) -> None:
    """Bill a batch of groups and record progress on the run (and the stored batch done, in the
    same transaction). When another delivery of the same batch recorded it first, only what this
    one billed is added (the groups are not counted twice)."""
    run = BillingRun.objects.filter(pk=run_id).first()
    if run is None:
        return
    done = bill_batch(groups=groups, issue_date=timezone.localdate(), actor=run.started_by)
    created, billed, skipped, errors = done.created, done.billed, done.skipped, done.errors
    with transaction.atomic():
        run = BillingRun.objects.select_for_update().get(pk=run_id)
        if batch_id is not None and not jobs.batch_mark_done(BillingRunBatch, batch_id):
            if created or billed:
                BillingRun.objects.filter(pk=run_id).update(
                    invoices_created=F("invoices_created") + created, orders_billed=F("orders_billed") + billed
                )
            return
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
