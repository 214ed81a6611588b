import logging
from datetime import timedelta

from celery import shared_task
from django.utils import timezone

from . import dashboard, selectors, services

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
    stored = services.kpi_snapshot_backfill(start=yesterday - timedelta(days=1), end=yesterday)
    # The new day made every dashboard set stale: have the default view's ready before anyone looks.
    dashboard.request_refresh("dashboard", dashboard.dashboard_params(DEFAULT_FILTER))
    dashboard.request_refresh("work", {})
    return stored


# The dashboard's filter when nothing is chosen (last 90 days to today, all currencies and customers).
DEFAULT_FILTER = {"choice": dashboard.DEFAULT_PERIOD, "end": None, "currency": None, "customer": None}


@shared_task(time_limit=1800, soft_time_limit=1700)
def kpi_figures_refresh(name: str, params: dict) -> None:
    """Recompute one of the dashboard's figure sets (queued by a page view that found it stale, one
    at a time per set) and keep it for the next views."""
    dashboard.refresh(name, params)
