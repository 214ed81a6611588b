"""Writes of the kpis app: the daily KPI snapshots that keep the trend charts fast."""

from datetime import date, timedelta
from decimal import Decimal

from django.db import connection, transaction
from django.utils import timezone

from billing.errors import ValidationFailed

from . import selectors
from .models import KpiSnapshot

# Snapshots are derived figures, recomputed at will: no audit event, but one writer at a time.
_LOCK_KEY = 0x6B70_6973  # "kpis"
MAX_BACKFILL_DAYS = 3 * 366
AUDIT_KEY = "audit_violations"


def _lock() -> None:
    """Serialise snapshot writers (the nightly task and a backfill may run at once): each replaces
    the day's rows, and two interleaved replacements would trip the unique constraints."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_LOCK_KEY])


def _values(day: date) -> list[KpiSnapshot]:
    period = selectors.Period.month_to_date(day)
    figures_by_currency = selectors.kpis(period)
    rows = [KpiSnapshot(date=day, currency="", key=selectors.SNAPSHOT_MARKER, value=len(figures_by_currency))]
    for currency, figures in figures_by_currency.items():
        for kpi in selectors.KPIS:
            rows.append(KpiSnapshot(date=day, currency=currency, key=kpi.key, value=figures.get(kpi.key)))
    entry = selectors.order_entry(period)["overall"]
    if entry is not None:
        for key, name in (
            ("entry_median_seconds", "median_seconds"),
            ("entry_orders_per_clerk_hour", "orders_per_clerk_hour"),
            ("entry_orders", "orders"),
        ):
            rows.append(KpiSnapshot(date=day, currency="", key=key, value=entry[name]))
    return rows


def kpi_snapshot_store(*, day: date) -> int:
    """Store every KPI of the month to `day` (per currency, all customers), replacing what was
    stored for that day. Idempotent: a second run leaves the same rows. Returns the rows written."""
    rows = _values(day)
    with transaction.atomic():
        _lock()
        KpiSnapshot.objects.filter(date=day, customer__isnull=True).exclude(key=AUDIT_KEY).delete()
        KpiSnapshot.objects.bulk_create(rows)
    return len(rows)


def kpi_snapshot_backfill(*, start: date, end: date) -> int:
    """Recompute the snapshots of every day from `start` to `end` (both included)."""
    if end < start:
        raise ValidationFailed("The range ends before it starts.", details={"to": ["Must be on or after --from."]})
    if (end - start).days >= MAX_BACKFILL_DAYS:
        raise ValidationFailed(
            f"At most {MAX_BACKFILL_DAYS} days at a time.", details={"to": ["Split the range into shorter ones."]}
        )
    if end > timezone.localdate():
        raise ValidationFailed("Days to come have no figures yet.", details={"to": ["Must be today or earlier."]})
    written, day = 0, start
    while day <= end:
        written += kpi_snapshot_store(day=day)
        day += timedelta(days=1)
    return written


def audit_result_store(*, day: date, violations: int) -> None:
    """Keep the nightly audit's count of violations, for the dashboard tile."""
    with transaction.atomic():
        _lock()
        KpiSnapshot.objects.filter(date=day, currency="", key=AUDIT_KEY, customer__isnull=True).delete()
        KpiSnapshot.objects.create(date=day, currency="", key=AUDIT_KEY, value=Decimal(violations))
