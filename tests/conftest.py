from datetime import date
from decimal import Decimal

import pytest
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings

from invoicing import services as invoicing
from orders import services as orders
from tests.factories import CustomerFactory, ProductFactory, TaxRateFactory, UserFactory

# Property tests check results, not speed: on a shared CI machine under load, Hypothesis's timing
# health check (inputs generated too slowly) and per-example deadline failed runs whose every
# example passed. Every other health check stays on.
hypothesis_settings.register_profile("otc", suppress_health_check=[HealthCheck.too_slow], deadline=None)
hypothesis_settings.load_profile("otc")


@pytest.fixture
def staff(client, user):
    """Django's test client, signed in as the finance user."""
    client.force_login(user)
    return client


@pytest.fixture
def eager():
    """Celery tasks run in-process (the real task code, no broker), their errors raised."""
    from otc.celery import app as celery_app

    saved = celery_app.conf.task_always_eager, celery_app.conf.task_eager_propagates
    celery_app.conf.task_always_eager = celery_app.conf.task_eager_propagates = True
    yield
    celery_app.conf.task_always_eager, celery_app.conf.task_eager_propagates = saved


@pytest.fixture
def user(db):
    return UserFactory(username="finance", is_superuser=True)


@pytest.fixture
def customer(db):
    return CustomerFactory()


@pytest.fixture
def products(db):
    standard = TaxRateFactory(name="Standard 20%", rate=Decimal("20.00"))
    reduced = TaxRateFactory(name="Reduced 5.5%", rate=Decimal("5.50"), category="reduced")
    return [
        ProductFactory(sku="CHAIR", name="Office chair", unit_price=Decimal("149.90"), tax_rate=standard),
        ProductFactory(sku="BOOK", name="Accounting handbook", unit_price=Decimal("32.50"), tax_rate=reduced),
    ]


@pytest.fixture
def make_fulfilled_order(user, products):
    """An order of 2 chairs and 3 books, confirmed and fulfilled: net 397.30, tax 65.32, gross 462.62."""

    def make(customer, lines=None, **kwargs):
        spec = lines or [
            {"product": products[0], "quantity": Decimal("2")},
            {"product": products[1], "quantity": Decimal("3")},
        ]
        order = orders.order_create(customer=customer, lines=spec, actor=user, **kwargs)
        orders.order_confirm(order=order, actor=user)
        return orders.order_fulfill(order=order, actor=user)

    return make


@pytest.fixture
def make_issued_invoice(user, make_fulfilled_order):
    def make(customer, issue_date: date | None = None, **kwargs):
        order = make_fulfilled_order(customer, **kwargs)
        draft = invoicing.invoice_create_from_orders(orders=[order], actor=user)
        return invoicing.invoice_issue(invoice=draft, actor=user, issue_date=issue_date)

    return make


def forget_kpi_figures():
    """Drop the dashboard's stored figure sets and refresh locks (kpis/dashboard.py): they live in
    Redis, which outlives each test's rolled-back rows."""
    from django.core.cache import cache

    from kpis.dashboard import PREFIX

    client = cache._cache.get_client(write=True)
    keys = list(client.scan_iter(match=f"*{PREFIX}*"))
    if keys:
        client.delete(*keys)


@pytest.fixture(autouse=True)
def _kpi_figures_forgotten():
    """Each test starts without figures stored by another test's rows."""
    forget_kpi_figures()


_worker_started = False


@pytest.fixture(autouse=True)
def _worker_idle_before_flush(request):
    """After a test that commits (transaction=True), once the session's worker is running: drop the
    tasks the test queued (they point at rows the flush removes) and wait until the worker is idle,
    so that no task holds rows while the tables are truncated (a deadlock otherwise)."""
    yield
    marker = request.node.get_closest_marker("django_db")
    if not _worker_started or marker is None or not marker.kwargs.get("transaction"):
        return
    import time

    from django.conf import settings

    from otc.celery import app

    with app.connection_for_write() as conn:
        conn.default_channel.client.delete(settings.CELERY_TASK_DEFAULT_QUEUE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        active = app.control.inspect(timeout=0.5).active() or {}
        if not any(active.values()):
            break
        time.sleep(0.2)


@pytest.fixture(scope="session")
def _celery_worker_session(django_db_setup, tmp_path_factory):
    """A real Celery worker in its own process, on the Redis broker and the test database."""
    import os
    import subprocess
    import sys
    import time

    from django.conf import settings
    from django.db import connection

    from otc.celery import app

    db = connection.settings_dict
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "otc.test_settings",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
        "REDIS_URL": settings.REDIS_URL,
        "CELERY_QUEUE": settings.CELERY_TASK_DEFAULT_QUEUE,
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
    }
    global _worker_started
    hostname = f"test-{os.getpid()}@%h"
    log = open(tmp_path_factory.mktemp("worker") / "worker.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "otc",
            "worker",
            "--pool=solo",
            "--purge",
            "-l",
            "INFO",
            "-n",
            hostname,
            "-Q",
            settings.CELERY_TASK_DEFAULT_QUEUE,
            "--include",
            "tests.worker_hooks",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=settings.BASE_DIR,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"Celery worker exited with {proc.returncode}; see {log.name}")
        if app.control.ping(timeout=0.5):
            break
    else:
        proc.terminate()
        raise RuntimeError(f"Celery worker did not answer within 60 s; see {log.name}")
    _worker_started = True
    yield proc
    proc.terminate()
    proc.wait(timeout=30)
    log.close()


@pytest.fixture
def no_worker():
    """Keep tasks queued for the length of the test: the session's worker, when an earlier test
    started it, stops consuming the queue, and the test starts with it empty (what earlier tests
    left there, before any worker ran, points at rows already flushed); afterwards the queue is
    emptied again (its tasks point at rows the flush removes) and the worker consumes again."""
    from django.conf import settings

    from otc.celery import app

    queue = settings.CELERY_TASK_DEFAULT_QUEUE
    workers = app.control.ping(timeout=1)
    if workers:
        replies = app.control.cancel_consumer(queue, reply=True, timeout=10)
        assert len(replies) == len(workers), f"a worker did not stop consuming {queue}: {replies}"
    with app.connection_for_write() as conn:
        conn.default_channel.client.delete(queue)
    yield
    with app.connection_for_write() as conn:
        conn.default_channel.client.delete(queue)
    if workers:
        app.control.add_consumer(queue, reply=True, timeout=10)


@pytest.fixture
def celery_worker_process(_celery_worker_session):
    """The session's worker; after the test, wait until it is idle, so that no task of this test
    still holds rows while the database is flushed for the next one."""
    import time

    from django.conf import settings

    from otc.celery import app

    yield _celery_worker_session
    deadline = time.monotonic() + 90
    with app.connection_for_write() as conn:
        client = conn.default_channel.client
        while time.monotonic() < deadline:
            active = app.control.inspect(timeout=1).active() or {}
            if client.llen(settings.CELERY_TASK_DEFAULT_QUEUE) == 0 and not any(active.values()):
                break
            time.sleep(0.5)
