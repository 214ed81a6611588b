"""Imported by the test suite's Celery worker (`celery_worker_process` passes `--include`).

The worker outlives single tests, and a transactional test's flush re-creates the content types
under new ids; audit rows written in the worker (billing runs, deliveries) must not point at the
ids it cached before the flush."""

from celery import shared_task
from celery.signals import task_prerun


@task_prerun.connect
def forget_content_types(**_kwargs) -> None:
    from django.contrib.contenttypes.models import ContentType

    ContentType.objects.clear_cache()


@shared_task
def note_database_backend(key: str) -> None:
    """Store the PostgreSQL server process serving this worker's connection under `key` in the
    cache, for the tests of connection reuse (tests/test_worker_connections.py)."""
    from django.core.cache import cache
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        cache.set(key, cursor.fetchone()[0], 300)
