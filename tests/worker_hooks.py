"""Imported by the test suite's Celery worker (`celery_worker_process` passes `--include`).

The worker outlives single tests, and a transactional test's flush re-creates the content types
under new ids; audit rows written in the worker (billing runs, deliveries) must not point at the
ids it cached before the flush."""

from celery.signals import task_prerun


@task_prerun.connect
def forget_content_types(**_kwargs) -> None:
    from django.contrib.contenttypes.models import ContentType

    ContentType.objects.clear_cache()
