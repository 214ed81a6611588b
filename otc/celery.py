import os

from celery import Celery
from celery.signals import task_postrun, task_prerun

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "otc.settings")

app = Celery("otc")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@task_prerun.connect
@task_postrun.connect
def close_old_db_connections(sender=None, **kwargs) -> None:
    """Around each task in a worker, what Django does around each web request: close the database
    connection if it is broken, left in a transaction or older than CONN_MAX_AGE; else keep it
    (settings.CELERY_DB_REUSE_MAX stops Celery from closing it every time). Not for a task run
    in-process (eager), which belongs to its caller's request and transaction."""
    if sender is None or getattr(sender.request, "is_eager", False):
        return
    from django.db import close_old_connections

    close_old_connections()
