from celery import shared_task


@shared_task(acks_late=True, time_limit=1800, soft_time_limit=1700)
def penalty_assess_batch(run_id: int, invoice_ids: list[int]) -> None:
    """Assess one bounded batch of a penalty run, carried in the message (runs started before
    batches were stored; new runs send penalty_assess_stored_batch). Safe to redeliver: assessed
    periods are skipped."""
    from .penalties import run_batch

    run_batch(run_id=run_id, invoice_ids=invoice_ids)


@shared_task(acks_late=True, time_limit=1800, soft_time_limit=1700)
def penalty_assess_stored_batch(batch_id: int) -> None:
    """Assess one stored batch of a penalty run. Safe to redeliver: a done batch is left alone."""
    from .penalties import run_stored_batch

    run_stored_batch(batch_id=batch_id)


@shared_task
def penalty_run_resend_lost_batches() -> int:
    """Beat: send again the batches of running penalty runs whose message was lost."""
    from .penalties import resend_lost_batches

    return resend_lost_batches()


@shared_task
def penalty_run_daily() -> int:
    """Beat: assess late-payment penalties as of today."""
    from .penalties import run_start

    return run_start().pk


# --- Customer statements -------------------------------------------------------------------------


@shared_task
def statements_send_monthly(as_of: str | None = None, after_id: int = 0, batch: int = 500) -> int:
    """Beat, monthly: enqueue the statement of every electronic customer with open items that has
    none for this month yet, in bounded batches by customer id (each batch enqueues the next)."""
    from datetime import date

    from django.utils import timezone

    from .statements import customers_due_statement

    day = date.fromisoformat(as_of) if as_of else timezone.localdate()
    ids = list(
        customers_due_statement(as_of=day).filter(pk__gt=after_id).order_by("pk").values_list("pk", flat=True)[:batch]
    )
    for pk in ids:
        statement_send.delay(pk, day.isoformat())
    if len(ids) == batch:
        statements_send_monthly.delay(day.isoformat(), ids[-1], batch)
    return len(ids)


@shared_task(bind=True, acks_late=True, max_retries=5, time_limit=120, soft_time_limit=100)
def statement_send(self, customer_id: int, as_of: str) -> bool:
    """E-mail one customer's monthly statement; sent once per customer and month. Mail server
    errors are retried with backoff; a later run of the monthly job picks up what still failed."""
    from datetime import date

    from billing.models import Customer

    from .statements import statement_send as send

    customer = Customer.objects.filter(pk=customer_id).first()
    if customer is None:
        return False
    try:
        return send(customer=customer, as_of=date.fromisoformat(as_of)) is not None
    except OSError as exc:  # smtplib.SMTPException, refused connections, timeouts
        if self.request.retries >= self.max_retries:
            return False
        raise self.retry(exc=exc, countdown=min(60 * 2**self.request.retries, 3600)) from exc


# --- Bank statements -----------------------------------------------------------------------------


@shared_task(acks_late=True, time_limit=1800, soft_time_limit=1700)
def bank_statement_match(statement_id: int, batch: int = 1000) -> None:
    """Match an imported statement's lines in batches of `batch`, saving progress after each. Safe
    to redeliver or run on two workers: only new lines are taken, under row locks."""
    from .bank import statement_match

    statement_match(statement_id=statement_id, batch=batch)


@shared_task
def bank_statements_sweep(minutes: int = 10) -> int:
    """Periodic: re-enqueue the matching of statements still matching `minutes` after their import
    (a lost message, a worker killed mid-way). Safe to overlap a running match: lines are shared out
    under row locks."""
    from .bank import statements_stalled

    ids = list(statements_stalled(minutes=minutes).values_list("pk", flat=True)[:100])
    for pk in ids:
        bank_statement_match.delay(pk)
    return len(ids)


# --- Dunning -------------------------------------------------------------------------------------


@shared_task
def dunning_run_daily(as_of: str | None = None) -> int:
    """Beat, daily: enqueue the day's reminders in bounded batches of customers."""
    from datetime import date

    from django.utils import timezone

    from .dunning import customer_batches

    day = date.fromisoformat(as_of) if as_of else timezone.localdate()
    batches = customer_batches(as_of=day)
    for ids in batches:
        dunning_run_batch.delay(day.isoformat(), ids)
    return len(batches)


@shared_task(acks_late=True, time_limit=1800, soft_time_limit=1700)
def dunning_run_batch(as_of: str, customer_ids: list[int]) -> int:
    """Write and send the reminders of a batch of customers. Safe to redeliver: a reminder is
    written once per invoice and level, and sent once."""
    from datetime import date

    from .dunning import dunning_run

    return len(dunning_run(as_of=date.fromisoformat(as_of), customer_ids=customer_ids).notices)
