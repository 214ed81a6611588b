"""`Idempotency-Key` on POST: a retry gets the first response back and never does the work twice."""

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import IntegrityError, connection, transaction
from django.urls import path
from django.utils import timezone
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.test import APIClient, APIRequestFactory
from rest_framework.views import APIView

from billing.errors import Conflict
from billing.models import TaxRate
from orders.models import Order, OrderEvent, OrderLine
from otc.idempotency import idempotent, request_fingerprint
from otc.models import IdempotencyRecord
from otc.tasks import idempotency_purge
from tests.factories import ProductFactory, UserFactory

from .helpers import error_of

pytestmark = pytest.mark.django_db


def order_payload(customer, products, **extra):
    return {
        "customer": customer.pk,
        "customer_reference": "PO-77",
        "lines": [
            {"product": products[0].pk, "quantity": "2"},
            {"product": products[1].pk, "quantity": "3"},
        ],
        **extra,
    }


def post(client, payload, key=None, url="/api/v1/orders/"):
    headers = {} if key is None else {"Idempotency-Key": key}
    return client.post(url, payload, format="json", headers=headers)


def client_for(user) -> APIClient:
    client = APIClient(raise_request_exception=False)
    client.force_authenticate(user=user)
    return client


def fingerprint_of(payload, url="/api/v1/orders/") -> str:
    request = Request(APIRequestFactory().post(url, payload, format="json"), parsers=[JSONParser()])
    return request_fingerprint(request)


# --- Replays -------------------------------------------------------------------------------------


def test_retry_with_the_same_key_gets_the_first_response_and_no_second_order(api, eur_customer, products):
    first = post(api, order_payload(eur_customer, products), key="order-7f3a")
    assert first.status_code == 201, first.content
    assert "Idempotent-Replayed" not in first

    again = post(api, order_payload(eur_customer, products), key="order-7f3a")
    assert again.status_code == 201
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert Order.objects.count() == 1
    assert OrderLine.objects.count() == 2
    assert OrderEvent.objects.count() == 1


def test_key_order_and_whitespace_of_the_body_do_not_matter(api, eur_customer, products):
    payload = order_payload(eur_customer, products)
    first = post(api, payload, key="k-1")
    reordered = json.dumps(dict(reversed(list(payload.items()))), indent=4)
    again = api.post("/api/v1/orders/", reordered, content_type="application/json", headers={"Idempotency-Key": "k-1"})
    assert again.status_code == 201
    assert again.json() == first.json()
    assert Order.objects.count() == 1


def test_same_key_with_another_body_is_422_and_changes_nothing(api, eur_customer, products):
    first = post(api, order_payload(eur_customer, products), key="k-1")
    other = post(api, order_payload(eur_customer, products, customer_reference="PO-78"), key="k-1")
    assert other.status_code == 422
    body = error_of(other)
    assert body["code"] == "idempotency_key_reused"
    assert "different request" in body["message"]
    assert Order.objects.count() == 1
    assert Order.objects.get().pk == first.json()["id"]


def test_same_key_on_another_endpoint_is_422(api, eur_customer, products):
    order_id = post(api, order_payload(eur_customer, products), key="k-1").json()["id"]
    response = api.post(f"/api/v1/orders/{order_id}/confirm/", headers={"Idempotency-Key": "k-1"})
    assert response.status_code == 422
    assert error_of(response)["code"] == "idempotency_key_reused"
    assert Order.objects.get(pk=order_id).status == "draft"


def test_a_refused_request_is_replayed_too_until_a_new_key_is_used(api, eur_customer):
    # Decision: every response below 500 is kept, a 400 included; a corrected request takes a new key.
    product = ProductFactory(sku="GONE", active=False)
    payload = {"customer": eur_customer.pk, "lines": [{"product": product.pk, "quantity": "1"}]}
    refused = post(api, payload, key="k-1")
    assert refused.status_code == 400
    assert "GONE" in error_of(refused)["message"]

    product.active = True
    product.save()
    again = post(api, payload, key="k-1")
    assert again.status_code == 400
    assert again.json() == refused.json()
    assert again["Idempotent-Replayed"] == "true"
    assert not Order.objects.exists()

    assert post(api, payload, key="k-2").status_code == 201
    assert Order.objects.count() == 1


def test_an_action_retried_with_its_key_gets_its_200_not_a_409(api, eur_customer, products):
    order_id = post(api, order_payload(eur_customer, products)).json()["id"]
    first = api.post(f"/api/v1/orders/{order_id}/confirm/", headers={"Idempotency-Key": "confirm-1"})
    assert first.status_code == 200
    again = api.post(f"/api/v1/orders/{order_id}/confirm/", headers={"Idempotency-Key": "confirm-1"})
    assert again.status_code == 200
    assert again.json() == first.json()
    assert OrderEvent.objects.filter(order_id=order_id, to_status="confirmed").count() == 1
    # Without the key the second confirm is refused as usual.
    assert api.post(f"/api/v1/orders/{order_id}/confirm/").status_code == 409


def test_without_a_key_every_post_creates_an_order(api, eur_customer, products):
    ids = {post(api, order_payload(eur_customer, products)).json()["id"] for _ in range(2)}
    assert len(ids) == 2
    assert not IdempotencyRecord.objects.exists()


def test_keys_are_per_caller(eur_customer, products):
    alice, bob = client_for(UserFactory(username="alice")), client_for(UserFactory(username="bob"))
    mine = post(alice, order_payload(eur_customer, products), key="shared-key")
    theirs = post(bob, order_payload(eur_customer, products, customer_reference="PO-other"), key="shared-key")
    assert mine.status_code == theirs.status_code == 201
    assert mine.json()["id"] != theirs.json()["id"]
    assert theirs.json()["customer_reference"] == "PO-other"
    # Each caller's retry gets their own first response.
    assert post(alice, order_payload(eur_customer, products), key="shared-key").json() == mine.json()
    assert Order.objects.count() == 2


@pytest.mark.parametrize(
    "key", ["", "   ", "x" * 256, "clé-1", "tab\there", "nul\x00", "new\nline"], ids=lambda k: repr(k)[:12]
)
def test_malformed_keys_are_400_and_save_nothing(api, eur_customer, products, key):
    response = api.post(
        "/api/v1/orders/", order_payload(eur_customer, products), format="json", HTTP_IDEMPOTENCY_KEY=key
    )
    assert response.status_code == 400, response.content
    assert "Idempotency-Key" in error_of(response)["details"]
    assert not Order.objects.exists()
    assert not IdempotencyRecord.objects.exists()


def test_a_key_of_255_printable_characters_is_fine(api, eur_customer, products):
    key = "a b~!" + "z" * 250
    assert post(api, order_payload(eur_customer, products), key=key).status_code == 201
    assert IdempotencyRecord.objects.get().key == key


def test_garbage_body_with_a_key_is_400_and_keeps_no_record(api):
    response = api.post(
        "/api/v1/orders/", "{not json", content_type="application/json", headers={"Idempotency-Key": "k-1"}
    )
    assert response.status_code == 400
    error_of(response)
    assert not IdempotencyRecord.objects.exists()


# --- In progress, takeover -----------------------------------------------------------------------


def test_a_key_still_in_progress_is_409_with_retry_after(api, user, eur_customer, products):
    payload = order_payload(eur_customer, products)
    IdempotencyRecord.objects.create(
        user=user, key="k-1", fingerprint=fingerprint_of(payload), method="POST", path="/api/v1/orders/"
    )
    response = post(api, payload, key="k-1")
    assert response.status_code == 409
    assert error_of(response)["code"] == "idempotency_in_progress"
    assert response["Retry-After"] == "1"
    assert not Order.objects.exists()


def test_a_record_left_in_progress_past_the_lease_is_taken_over(api, user, eur_customer, products):
    # Its request died: nothing of it was committed (work and "done" commit together).
    payload = order_payload(eur_customer, products)
    IdempotencyRecord.objects.create(
        user=user, key="k-1", fingerprint=fingerprint_of(payload), method="POST", path="/api/v1/orders/"
    )
    IdempotencyRecord.objects.update(started_at=timezone.now() - timedelta(minutes=6))
    response = post(api, payload, key="k-1")
    assert response.status_code == 201
    assert Order.objects.count() == 1
    record = IdempotencyRecord.objects.get()
    assert (record.status, record.response_status, record.response_body) == ("done", 201, response.json())


# --- Any POST view can opt in: what is stored, what is released ----------------------------------

PROBE = {"fail_next": False}


class ProbeView(APIView):
    """A POST view that creates a tax rate, or fails in the way the body asks."""

    @idempotent
    def post(self, request):
        rate = TaxRate.objects.create(name=request.data["name"], rate=Decimal("10.00"))
        if PROBE["fail_next"]:
            PROBE["fail_next"] = False
            raise RuntimeError("the database went away")
        if request.data.get("answer") == "503":
            return Response({"detail": "upstream down"}, status=503)
        if request.data.get("answer") == "409":
            raise Conflict("Refused after writing.", code="refused_late")
        return Response({"id": rate.pk, "name": rate.name}, status=201)


urlpatterns = [path("probe/", ProbeView.as_view())]


@pytest.fixture
def probe(user, settings):
    settings.ROOT_URLCONF = __name__
    PROBE["fail_next"] = False
    return client_for(user)


def test_a_server_error_rolls_the_work_back_and_frees_the_key(probe):
    PROBE["fail_next"] = True
    crashed = probe.post("/probe/", {"name": "Rate A"}, format="json", headers={"Idempotency-Key": "p-1"})
    assert crashed.status_code == 500
    assert not TaxRate.objects.exists()
    assert not IdempotencyRecord.objects.exists()

    retried = probe.post("/probe/", {"name": "Rate A"}, format="json", headers={"Idempotency-Key": "p-1"})
    assert retried.status_code == 201
    assert TaxRate.objects.get().name == "Rate A"


def test_a_5xx_response_is_not_stored_and_its_work_is_rolled_back(probe):
    payload = {"name": "Rate B", "answer": "503"}
    for _ in range(2):
        response = probe.post("/probe/", payload, format="json", headers={"Idempotency-Key": "p-2"})
        assert response.status_code == 503
        assert "Idempotent-Replayed" not in response
    assert not TaxRate.objects.exists()
    assert not IdempotencyRecord.objects.exists()


def test_a_refusal_is_stored_with_its_work_rolled_back(probe):
    payload = {"name": "Rate C", "answer": "409"}
    first = probe.post("/probe/", payload, format="json", headers={"Idempotency-Key": "p-3"})
    assert first.status_code == 409
    assert error_of(first)["code"] == "refused_late"
    again = probe.post("/probe/", payload, format="json", headers={"Idempotency-Key": "p-3"})
    assert (again.status_code, again.json(), again["Idempotent-Replayed"]) == (409, first.json(), "true")
    assert not TaxRate.objects.exists()


# --- The database keeps the rules ----------------------------------------------------------------


def test_the_database_refuses_a_second_record_for_the_same_caller_and_key(user):
    IdempotencyRecord.objects.create(user=user, key="k", fingerprint="a" * 64, method="POST", path="/x/")
    with pytest.raises(IntegrityError), transaction.atomic():
        IdempotencyRecord.objects.create(user=user, key="k", fingerprint="b" * 64, method="POST", path="/x/")


@pytest.mark.parametrize(("status", "response_status"), [("done", None), ("done", 500), ("in_progress", 503)])
def test_the_database_refuses_done_without_response_and_stored_server_errors(user, status, response_status):
    with pytest.raises(IntegrityError), transaction.atomic():
        IdempotencyRecord.objects.create(
            user=user,
            key="k",
            fingerprint="a" * 64,
            method="POST",
            path="/x/",
            status=status,
            response_status=response_status,
        )


def test_purge_forgets_keys_older_than_a_day(api, eur_customer, products):
    old = post(api, order_payload(eur_customer, products), key="old")
    post(api, order_payload(eur_customer, products), key="new")
    IdempotencyRecord.objects.filter(key="old").update(created_at=timezone.now() - timedelta(hours=25))

    assert idempotency_purge() == 1
    assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["new"]
    # After the purge the old key is a new key: the request runs again.
    again = post(api, order_payload(eur_customer, products), key="old")
    assert again.status_code == 201
    assert again.json()["id"] != old.json()["id"]


def test_schema_documents_the_header(api):
    schema = api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    for url in ["/api/v1/orders/", "/api/v1/orders/bulk/", "/api/v1/orders/{id}/confirm/"]:
        operation = schema["paths"][url]["post"]
        assert "Idempotency-Key" in [p["name"] for p in operation["parameters"] if p["in"] == "header"], url
        assert {"409", "422"} <= set(operation["responses"]), url


# --- Races, on PostgreSQL ------------------------------------------------------------------------


def _in_thread(fn):
    def run(*args):
        try:
            return fn(*args)
        finally:
            connection.close()

    return run


@pytest.mark.django_db(transaction=True)
def test_concurrent_retries_with_one_key_create_exactly_one_order(eur_customer, products):
    user = UserFactory(username="erp-bot")
    payload = order_payload(eur_customer, products)
    n = 8
    barrier = threading.Barrier(n)

    @_in_thread
    def attempt(_):
        client = client_for(user)
        barrier.wait(timeout=30)
        response = post(client, payload, key="race-1")
        return response.status_code, response.json()

    with ThreadPoolExecutor(max_workers=n) as pool:
        results = list(pool.map(attempt, range(n)))

    statuses = sorted(status for status, _ in results)
    assert set(statuses) <= {201, 409}, results
    assert 201 in statuses
    assert Order.objects.count() == 1
    order_id = Order.objects.get().pk
    assert all(body["id"] == order_id for status, body in results if status == 201)
    assert all(body["code"] == "idempotency_in_progress" for status, body in results if status == 409)
    # Once done, every retry gets the order.
    assert post(client_for(user), payload, key="race-1").json()["id"] == order_id


def _wait_for_record(**filters):
    deadline = time.monotonic() + 20
    while not IdempotencyRecord.objects.filter(**filters).exists():
        assert time.monotonic() < deadline, "the first request never took its key"
        time.sleep(0.02)


@pytest.mark.django_db(transaction=True)
def test_a_retry_while_the_first_request_runs_is_409_then_gets_the_first_response(eur_customer, products):
    user = UserFactory(username="erp-bot")
    payload = order_payload(eur_customer, products)
    pool = ThreadPoolExecutor(max_workers=2)
    # Hold the first request inside its transaction: order events can't be written until we let go.
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("LOCK TABLE orders_orderevent IN EXCLUSIVE MODE")
        running = pool.submit(_in_thread(lambda: post(client_for(user), payload, key="slow-1")))
        _wait_for_record(key="slow-1", status="in_progress")
        retry = pool.submit(_in_thread(lambda: post(client_for(user), payload, key="slow-1"))).result(timeout=30)
        assert retry.status_code == 409
        assert error_of(retry)["code"] == "idempotency_in_progress"
        assert not running.done()
    done = running.result(timeout=30)
    pool.shutdown()
    assert done.status_code == 201, done.content
    replay = post(client_for(user), payload, key="slow-1")
    assert (replay.status_code, replay.json()) == (201, done.json())
    assert Order.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_taking_over_a_live_attempt_still_commits_one_order(eur_customer, products, settings):
    # A lease of 0 s: the retry takes the key from the first request while it is still running.
    # The first one then finds the key gone and rolls its order back instead of storing it.
    settings.OTC_IDEMPOTENCY_LEASE_SECONDS = 0
    user = UserFactory(username="erp-bot")
    payload = order_payload(eur_customer, products)
    pool = ThreadPoolExecutor(max_workers=2)
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("LOCK TABLE orders_orderevent IN EXCLUSIVE MODE")
        first = pool.submit(_in_thread(lambda: post(client_for(user), payload, key="live-1")))
        _wait_for_record(key="live-1")
        attempt = IdempotencyRecord.objects.get(key="live-1").attempt
        second = pool.submit(_in_thread(lambda: post(client_for(user), payload, key="live-1")))
        deadline = time.monotonic() + 20
        while IdempotencyRecord.objects.get(key="live-1").attempt == attempt:
            assert time.monotonic() < deadline, "the retry never took the key over"
            time.sleep(0.02)
    results = sorted(f.result(timeout=30).status_code for f in (first, second))
    pool.shutdown()
    assert results == [201, 409]
    assert Order.objects.count() == 1
    assert OrderLine.objects.count() == 2
    assert IdempotencyRecord.objects.get(key="live-1").status == "done"
