"""The dashboard's figure sets, served at once (stale-while-revalidate).

Computing every figure set of the dashboard reads the whole ledger (tens of seconds at a million
invoices), so a page view never does it once a version of the set exists: it shows the last
computed set with the time it was computed, and when rows it reads have changed since (see
selectors.data_version) it asks the worker to recompute it, one refresh at a time per set (a cache
lock taken with `cache.add`). Only a set never computed before is computed inline, once.

A set is named ("dashboard": every figure of one filter; "work": the work-queue counts) and keyed
by its parameters as the user gave them: a filter without an end day follows today, so yesterday's
figures are shown (as of their time) while today's are computed.
"""

import hashlib
import json
from dataclasses import dataclass
from datetime import date, datetime

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone

from invoicing.models import OPEN_STATUSES, Invoice, InvoiceKind, InvoiceStatus
from orders.models import Order, OrderStatus

from . import selectors
from .forms import DEFAULT_PERIOD, period_for

# A set is kept until a newer computation replaces it; this only bounds the memory of filters
# nobody looks at any more.
STORE_SECONDS = 30 * 24 * 3600
# A refresh that died (worker killed mid-way) lets the next view ask again after this.
LOCK_SECONDS = 30 * 60
CUSTOMER_ROWS = 25
PREFIX = "kpis:set:"
TREND_KEYS = ("open_receivables", "dso", "share_overdue", "cei", "on_time_rate", "avg_days_to_pay")


@dataclass(frozen=True)
class FigureSet:
    value: dict
    computed_at: datetime
    fresh: bool  # computed from the rows as they are now
    refreshing: bool  # newer rows exist: a refresh is queued or running


def dashboard_params(values: dict) -> dict:
    """The parameters of a filter's set, as the user gave them (no end day: today, whatever day it is)."""
    customer = values["customer"]
    return {
        "choice": values["choice"],
        "end": values["end"].isoformat() if values.get("end_given") else None,
        "currency": values["currency"],
        "customer": customer.pk if customer else None,
    }


def compute_dashboard(choice: str = DEFAULT_PERIOD, end: str | None = None, currency=None, customer=None) -> dict:
    """Every figure set the dashboard shows for one filter."""
    period = period_for(choice, date.fromisoformat(end) if end else timezone.localdate())
    scope = {"currency": currency, "customer": customer}
    return {
        "period": (period.start, period.end),
        "now": selectors.kpis(period, **scope),
        "before": selectors.kpis(period.previous, **scope),
        "trend": selectors.trend(period.end, keys=TREND_KEYS, **scope),
        # The table's columns: receivables, sales, payment behaviour.
        "customers": None
        if customer
        else selectors.customer_table(period, currency=currency, limit=CUSTOMER_ROWS, families=("payments",)),
        "entry": None if customer else selectors.order_entry(period),
    }


def compute_work() -> dict:
    """The work queue: orders and invoices waiting for someone (two counts over the whole tables)."""
    today = timezone.localdate()
    orders = Order.objects.aggregate(
        draft=Count("pk", filter=Q(status=OrderStatus.DRAFT)),
        confirmed=Count("pk", filter=Q(status=OrderStatus.CONFIRMED)),
        fulfilled=Count("pk", filter=Q(status=OrderStatus.FULFILLED)),
    )
    invoices = Invoice.objects.aggregate(
        draft=Count("pk", filter=Q(status=InvoiceStatus.DRAFT)),
        overdue=Count("pk", filter=Q(status__in=OPEN_STATUSES, due_date__lt=today) & ~Q(kind=InvoiceKind.CREDIT_NOTE)),
    )
    return {"orders": orders, "invoices": invoices}


COMPUTE = {"dashboard": compute_dashboard, "work": compute_work}


def cache_key(name: str, params: dict) -> str:
    digest = hashlib.sha256(json.dumps([name, params], sort_keys=True).encode()).hexdigest()
    return PREFIX + digest[:40]


def _lock_key(name: str, params: dict) -> str:
    return cache_key(name, params) + ":refreshing"


def compute_and_store(name: str, params: dict, version: str | None = None) -> dict:
    """Compute a set and keep it with the data version read before computing (a change made while
    it computes makes it stale again)."""
    version = version or selectors.data_version()
    entry = {"version": version, "computed_at": timezone.now(), "value": COMPUTE[name](**params)}
    cache.set(cache_key(name, params), entry, STORE_SECONDS)
    return entry


def refresh(name: str, params: dict) -> None:
    """The worker's side: recompute the set, then let the next change ask again."""
    try:
        compute_and_store(name, params)
    finally:
        cache.delete(_lock_key(name, params))


def request_refresh(name: str, params: dict) -> bool:
    """Queue a refresh of the set unless one is queued or running. True when this call queued it."""
    if not cache.add(_lock_key(name, params), 1, LOCK_SECONDS):
        return False
    from .tasks import kpi_figures_refresh

    if settings.CELERY_TASK_ALWAYS_EAGER:  # the embedded mode: no worker, the refresh runs here and now
        kpi_figures_refresh.delay(name, params)
    else:  # never a task for rows a rolled-back transaction made
        transaction.on_commit(lambda: kpi_figures_refresh.delay(name, params))
    return True


def figures(name: str, params: dict, *, version: str) -> FigureSet:
    """The set for the page: the stored one at once (asking for a refresh when rows changed since),
    computed inline only when none was ever stored."""
    key = cache_key(name, params)
    entry = cache.get(key)
    if entry is None:
        entry = compute_and_store(name, params, version)
        return FigureSet(entry["value"], entry["computed_at"], fresh=True, refreshing=False)
    if entry["version"] == version:
        return FigureSet(entry["value"], entry["computed_at"], fresh=True, refreshing=False)
    request_refresh(name, params)
    if settings.CELERY_TASK_ALWAYS_EAGER:  # the embedded mode: the refresh has just run in this process
        entry = cache.get(key) or entry
        if entry["version"] == version:
            return FigureSet(entry["value"], entry["computed_at"], fresh=True, refreshing=False)
    return FigureSet(entry["value"], entry["computed_at"], fresh=False, refreshing=True)


def status(name: str, params: dict, *, version: str) -> dict | None:
    """Whether the stored set is current, without computing or queueing anything (the page polls it)."""
    entry = cache.get(cache_key(name, params))
    if entry is None:
        return None
    return {"fresh": entry["version"] == version, "computed_at": entry["computed_at"]}
