"""The dashboard serves its stored figures at once and a real worker refreshes them (kpis/dashboard.py):
rows committed, tasks on the Redis queue, as in production."""

import threading
import time
from datetime import date

import pytest
from django.conf import settings
from django.db import connections
from django.test import Client
from django.urls import reverse

from otc.celery import app
from tests.test_kpis import Ledger, build_ledger

pytestmark = pytest.mark.django_db(transaction=True)
USD = {"currency": "USD"}


def _open_usd(client) -> tuple[str, str]:
    html = client.get(reverse("kpi-dashboard"), USD).content.decode()
    return html, html[html.index('data-testid="kpi-open-USD"') :][:600]


def _queued_refreshes() -> list[str]:
    """The names of the figure sets whose refresh waits on the queue."""
    import base64
    import json

    with app.connection_for_write() as conn:
        raw = conn.default_channel.client.lrange(settings.CELERY_TASK_DEFAULT_QUEUE, 0, -1)
    messages = [json.loads(m) for m in raw]
    tasks = [m["headers"]["task"] for m in messages]
    assert set(tasks) <= {"kpis.tasks.kpi_figures_refresh"}, tasks
    bodies = [json.loads(base64.b64decode(m["body"])) for m in messages]  # [args, kwargs, embed]
    return sorted(args[0] for args, _kwargs, _embed in bodies)


def test_two_views_of_stale_figures_queue_one_refresh(user, no_worker):
    ledger = build_ledger()
    first, second = Client(), Client()
    first.force_login(user)
    second.force_login(user)
    _html, tile = _open_usd(first)
    assert "700.00" in tile
    Ledger().pay(ledger["K1"], 300, date.today())

    barrier, pages, errors = threading.Barrier(2), [], []

    def view(client):
        try:
            barrier.wait(timeout=10)
            pages.append(_open_usd(client))
        except Exception as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=view, args=(c,)) for c in (first, second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    for html, tile in pages:
        assert "700.00" in tile and "Newer data exists: refreshing" in html
    # One refresh of the filter's figures and one of the work-queue counts, whoever came first.
    assert _queued_refreshes() == ["dashboard", "work"]


@pytest.mark.worker
def test_the_worker_refreshes_stale_figures_and_the_page_shows_them(user, celery_worker_process):
    ledger = build_ledger()
    client = Client()
    client.force_login(user)
    _html, tile = _open_usd(client)
    assert "700.00" in tile
    Ledger().pay(ledger["K1"], 300, date.today())
    html, tile = _open_usd(client)
    assert "700.00" in tile and "Newer data exists: refreshing" in html
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        html, tile = _open_usd(client)
        if "refreshing" not in html:
            break
        time.sleep(0.3)
    assert "400.00" in tile and "refreshing" not in html
