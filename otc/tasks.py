from datetime import timedelta

from celery import shared_task

from . import idempotency


@shared_task(time_limit=600, soft_time_limit=540)
def idempotency_purge(older_than_hours: int = 24, batch: int = 5000) -> int:
    """Beat: forget Idempotency-Key records older than a day (a retry after that runs again)."""
    return idempotency.purge(older_than=timedelta(hours=older_than_hours), batch=batch)
