"""A worker keeps its database connection from one task to the next, as a web process does from
one request to the next (settings.CELERY_DB_REUSE_MAX, otc.celery.close_old_db_connections), and
gets a new one when the old one broke. Celery's default, a new connection for every task, cost
each invoice PDF a PostgreSQL server process (bench/results/pdf.md)."""

import time
import uuid

import pytest
from django.core.cache import cache
from django.db import connection

from otc.celery import app

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

TASK = "tests.worker_hooks.note_database_backend"


def _backend_of_next_task(timeout: float = 60) -> int:
    """Run the hook task on the session's worker; the PostgreSQL server process it queried with."""
    key = f"test-backend-{uuid.uuid4().hex}"
    app.send_task(TASK, args=[key])
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pid = cache.get(key)
        if pid is not None:
            return pid
        time.sleep(0.1)
    raise AssertionError(f"the worker did not run {TASK} within {timeout} s")


def _alive(pid: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", [pid])
        return cursor.fetchone()[0] == 1


def test_consecutive_tasks_share_one_connection(celery_worker_process):
    first = _backend_of_next_task()
    assert _alive(first), "the worker closed its connection after the task"
    assert [_backend_of_next_task() for _ in range(3)] == [first, first, first]


def test_a_broken_connection_is_replaced_before_the_next_task(celery_worker_process):
    first = _backend_of_next_task()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [first])
        assert cursor.fetchone()[0] is True
    deadline = time.monotonic() + 10
    while _alive(first) and time.monotonic() < deadline:
        time.sleep(0.05)

    second = _backend_of_next_task()

    assert second != first
    assert _alive(second)
    assert _backend_of_next_task() == second
