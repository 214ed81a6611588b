"""Two submits of one feedback link at the same moment store one answer (PostgreSQL, threads with
their own connections)."""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection
from django.test import Client

from invoicing.feedback import feedback_token
from kpis.feedback import feedback_record
from kpis.models import Feedback

pytestmark = pytest.mark.django_db(transaction=True)


def _race(n, fn):
    barrier = threading.Barrier(n)

    def run(i):
        try:
            barrier.wait(timeout=30)
            return fn(i)
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(run, range(n)))


def test_concurrent_double_submit_stores_one_answer(customer, make_issued_invoice):
    invoice = make_issued_invoice(customer)
    url = f"/feedback/{feedback_token(invoice)}/"
    statuses = _race(6, lambda i: Client().post(url, {"rating": str(1 + i % 5), "comment": f"try {i}"}).status_code)
    assert sorted(statuses) == [302, 409, 409, 409, 409, 409]
    assert Feedback.objects.filter(invoice=invoice).count() == 1


def test_link_and_call_at_once_store_one_answer(customer, make_issued_invoice, user):
    invoice = make_issued_invoice(customer)

    def submit(i):
        try:
            feedback_record(invoice=invoice.pk, rating=5 - i, source="call" if i % 2 else "link", actor=user)
        except Exception as exc:
            return type(exc).__name__
        return "stored"

    outcomes = _race(4, submit)
    assert sorted(outcomes) == ["Conflict", "Conflict", "Conflict", "stored"]
    assert Feedback.objects.count() == 1
