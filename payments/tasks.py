from celery import shared_task


@shared_task(acks_late=True, time_limit=1800, soft_time_limit=1700)
def penalty_assess_batch(run_id: int, invoice_ids: list[int]) -> None:
    """Assess one bounded batch of a penalty run. Safe to redeliver: assessed periods are skipped."""
    from .penalties import run_batch

    run_batch(run_id=run_id, invoice_ids=invoice_ids)


@shared_task
def penalty_run_daily() -> int:
    """Beat: assess late-payment penalties as of today."""
    from .penalties import run_start

    return run_start().pk
