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
