import logging

from celery import shared_task

from . import selectors

log = logging.getLogger(__name__)


@shared_task
def kpi_log_summary() -> dict:
    """Nightly: log the headline figures (snapshots come with the KPI work)."""
    data = selectors.summary()
    log.info("KPI summary %s", data)
    return {c["currency"]: str(c["open_receivables"]) for c in data["currencies"]}


@shared_task(time_limit=3600, soft_time_limit=3500)
def otc_audit_nightly() -> int:
    """Beat: check every invariant; violations are logged as errors. Returns their number."""
    from .audit import run_audit

    findings = run_audit()
    for finding in findings:
        log.error("Audit [%s] %s: %s", finding.check, finding.description, "; ".join(finding.rows[:50]))
    if not findings:
        log.info("Audit clean: every invariant holds.")
    return sum(len(f.rows) for f in findings)
