"""Queueing background work from services."""

import logging
from datetime import date, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from .errors import ValidationFailed

log = logging.getLogger(__name__)


def enqueue_on_commit(task, *args) -> None:
    """Send `task` with `args` once the surrounding transaction commits. A broker outage must not
    turn an action that has committed into an error: the failure is logged, and the periodic
    sweepers find the work still pending and queue it again."""

    def send():
        try:
            task.delay(*args)
        except Exception:
            log.exception("Could not queue %s%s; a sweeper will retry it", task.name, args)

    transaction.on_commit(send)


# --- Runs (billing runs, penalty runs) -----------------------------------------------------------


def run_as_of(as_of: date | None, *, refusal: str) -> date:
    """The as-of date of a run: today when none is given. A date after today is refused with
    `refusal`, a sentence that says why, followed by today's date."""
    today = timezone.localdate()
    if as_of is None:
        return today
    if as_of > today:
        raise ValidationFailed(
            f"{refusal} Choose today ({today:%Y-%m-%d}) or an earlier date.",
            details={"as_of": [f"Choose {today:%Y-%m-%d} or an earlier date."]},
        )
    return as_of


# --- Stored batches of a run (billing.models.RunBatch) ------------------------------------------


def batches_send(model, *, run, chunks: list, task) -> list:
    """Store a run's batches and send one message per batch (its id) once the transaction commits."""
    now = timezone.now()
    batches = model.objects.bulk_create([model(run=run, items=chunk, sent_at=now) for chunk in chunks])
    for batch in batches:
        enqueue_on_commit(task, batch.pk)
    return batches


def batch_pending(model, batch_id: int):
    """A stored batch still to do, or None when it is done already (its message delivered twice, or
    sent again by batches_resend_lost while the first one waited)."""
    return model.objects.filter(pk=batch_id, done_at__isnull=True).first()


def batch_mark_done(model, batch_id: int) -> bool:
    """Mark a batch done, in the transaction that records its progress on the run: True the first
    time, False when another delivery of its message recorded it already (count nothing twice)."""
    return bool(model.objects.filter(pk=batch_id, done_at__isnull=True).update(done_at=timezone.now()))


def batches_resend_lost(model, *, task, running_runs, older_than: timedelta | None = None, limit: int = 1000) -> int:
    """Send again the batches of running runs (`running_runs`, a filter on the batch model) still
    not done `older_than` after their message was sent (settings.OTC_RUN_BATCH_RESEND_AFTER,
    30 minutes by default): the message was lost (a broker restarted without its data), or still
    waits behind a long queue, in which case the first message to arrive does the batch and the
    other finds it done. Returns how many were sent again."""
    older_than = older_than or getattr(settings, "OTC_RUN_BATCH_RESEND_AFTER", None) or timedelta(minutes=30)
    now = timezone.now()
    with transaction.atomic():
        lost = list(
            model.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(running_runs, done_at__isnull=True, sent_at__lt=now - older_than)
            .values_list("pk", "run_id")[:limit]
        )
        if not lost:
            return 0
        model.objects.filter(pk__in=[pk for pk, _ in lost]).update(sent_at=now, sends=F("sends") + 1)
        for pk, run_id in lost:
            log.warning(
                "%s #%s, run %s: not done %s after it was sent; sending it again",
                model.__name__,
                pk,
                run_id,
                older_than,
            )
            enqueue_on_commit(task, pk)
    return len(lost)
