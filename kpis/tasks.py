import logging
from datetime import timedelta

from celery import shared_task
from django.utils import timezone

from . import selectors, services

log = logging.getLogger(__name__)


@shared_task
def kpi_log_summary() -> dict:
    """Nightly: log the headline figures."""
    data = selectors.summary()
    log.info("KPI summary %s", data)
    return {c["currency"]: str(c["open_receivables"]) for c in data["currencies"]}


@shared_task(time_limit=3600, soft_time_limit=3500)
def otc_audit_nightly() -> int:
    """Beat: check every invariant; violations are logged as errors. Returns their number."""
    from .audit import run_audit

    findings = run_audit()
    violations = sum(len(f.rows) for f in findings)
    services.audit_result_store(day=timezone.localdate(), violations=violations)
    for finding in findings:
        log.error("Audit [%s] %s: %s", finding.check, finding.description, "; ".join(finding.rows[:50]))
    if not findings:
        log.info("Audit clean: every invariant holds.")
    return violations


@shared_task(time_limit=1800, soft_time_limit=1700)
def kpi_snapshot_nightly() -> int:
    """Beat: store yesterday's KPIs (the month to yesterday), and the day before's again in case
    payments dated then were recorded late. Idempotent. Returns the values stored."""
    yesterday = timezone.localdate() - timedelta(days=1)
    return services.kpi_snapshot_backfill(start=yesterday - timedelta(days=1), end=yesterday)
