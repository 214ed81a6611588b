"""Queueing background work from services."""

import logging

from django.db import transaction

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
