"""The signed gateway webhook, POST /api/v1/payments/webhooks/<provider>/: signatures, idempotency
(also racing), what each event type posts, and bad requests that must never be a 500."""

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
from django.db import connection
from rest_framework.test import APIClient

from kpis.audit import run_audit
from payments.models import Payment, PaymentSource, Refund, WebhookEvent
from payments.webhooks import SignatureError, sign, signature_header, verify_signature

D = Decimal
SECRET = "whsec_test_0123456789"
URL = "/api/v1/payments/webhooks/stripe/"


@pytest.fixture(autouse=True)
def secrets(settings):
    settings.OTC_WEBHOOK_SECRETS = {"stripe": SECRET, "adyen": "another-secret"}
    settings.OTC_WEBHOOK_TOLERANCE = 300


def event(**fields) -> dict:
    return {
        "id": "evt_1",
        "type": "payment.succeeded",
        "payment": "pi_1",
        "amount": "462.62",
        "currency": "EUR",
        "customer": "",
        "reference": "",
        **fields,
    }


def post(body, *, secret=SECRET, timestamp=None, header=None, url=URL):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    ts = int(time.time()) if timestamp is None else timestamp
    headers = {}
    if header is not False:
        headers["HTTP_OTC_SIGNATURE"] = header or signature_header(secret=secret, timestamp=ts, body=raw)
    return APIClient().post(url, data=raw, content_type="application/json", **headers)


def json_error(response) -> dict:
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    body = response.json()
    assert set(body) == {"code", "message", "details"}, body
    return body


# --- signature ----------------------------------------------------------------------------------


def test_verify_signature_accepts_any_matching_v1_and_refuses_the_rest():
    body = b'{"a": 1}'
    good = sign(secret="s", timestamp=1000, body=body)
    flipped = good[:-1] + ("1" if good[-1] == "0" else "0")
    verify_signature(secret="s", header=f"t=1000,v1=deadbeef,v1={good}", body=body, now=1300, tolerance=300)
    for header, code in [
        (None, "signature_missing"),
        ("", "signature_missing"),
        ("garbage", "signature_malformed"),
        (f"v1={good}", "signature_malformed"),
        ("t=1000", "signature_malformed"),
        (f"t=abc,v1={good}", "signature_malformed"),
        (f"t=1000,t=1000,v1={good}", "signature_malformed"),
        (f"t=1000,v1={flipped}", "signature_invalid"),
        (f"t=1000,v1={good}é", "signature_invalid"),
    ]:
        with pytest.raises(SignatureError) as exc:
            verify_signature(secret="s", header=header, body=body, now=1000, tolerance=300)
        assert exc.value.code == code, header
    with pytest.raises(SignatureError) as exc:
        verify_signature(secret="s", header=f"t=1000,v1={good}", body=body, now=1301, tolerance=300)
    assert exc.value.code == "signature_expired"
    with pytest.raises(SignatureError):
        verify_signature(secret="s", header=f"t=1000,v1={good}", body=body + b" ", now=1000, tolerance=300)


@pytest.mark.django_db
class TestRejected:
    @pytest.mark.parametrize(
        "how",
        ["missing", "wrong_secret", "other_provider_secret", "tampered_body", "too_old", "too_new", "malformed"],
    )
    def test_bad_signatures_are_401_and_nothing_is_stored(self, customer, how):
        body = json.dumps(event(customer=customer.code)).encode()
        now = int(time.time())
        if how == "missing":
            response = post(body, header=False)
        elif how == "wrong_secret":
            response = post(body, secret="nope")
        elif how == "other_provider_secret":
            response = post(body, secret="another-secret")
        elif how == "tampered_body":
            header = signature_header(secret=SECRET, timestamp=now, body=body)
            response = post(body.replace(b"462.62", b"1462.62"), header=header)
        elif how == "too_old":
            response = post(body, timestamp=now - 330)  # the exact edge is tested on verify_signature
        elif how == "too_new":
            response = post(body, timestamp=now + 330)
        else:
            response = post(body, header="t=now;v1=xyz")
        assert response.status_code == 401, response.content
        assert json_error(response)["code"].startswith("signature_")
        assert (WebhookEvent.objects.count(), Payment.objects.count()) == (0, 0)

    def test_within_tolerance_is_accepted(self, customer):
        response = post(event(customer=customer.code), timestamp=int(time.time()) - 290)
        assert response.status_code == 200, response.content

    def test_unknown_provider_is_404(self, customer):
        body = event(customer=customer.code)
        for url in ("/api/v1/payments/webhooks/paypal/", "/api/v1/payments/webhooks/STRIPE/"):
            response = post(body, url=url)
            assert response.status_code == 404
            json_error(response)
        assert WebhookEvent.objects.count() == 0

    @pytest.mark.parametrize(
        ("raw", "field"),
        [
            (b"{not json", None),
            (b"", None),
            (b"\xff\xfe", None),
            (b"[1, 2]", None),
            (b'"a string"', None),
            (b"null", None),
            (b"{}", "id"),
            (json.dumps(event(type="payment.refunded")).encode(), "type"),
            (json.dumps(event(amount="-1")).encode(), "amount"),
            (json.dumps(event(amount=0)).encode(), "amount"),
            (json.dumps(event(amount="abc")).encode(), "amount"),
            (json.dumps(event(amount=None)).encode(), "amount"),
            (json.dumps(event(amount=[1])).encode(), "amount"),
            (json.dumps(event(amount={"v": 1})).encode(), "amount"),
            (json.dumps(event(amount="12.345")).encode(), "amount"),
            (b'{"id": "e", "type": "payment.failed", "payment": "p", "currency": "EUR", "amount": 1e999999}', "amount"),
            (b'{"id": "e", "type": "payment.failed", "payment": "p", "currency": "EUR", "amount": NaN}', None),
            (b'{"id": "e", "type": "payment.failed", "payment": "p", "currency": "EUR", "amount": Infinity}', None),
            (json.dumps(event(amount=10**40)).encode(), "amount"),
            (b'{"amount": ' + b"9" * 5000 + b"}", None),  # beyond Python's int parsing limit
            (b"[" * 100_000 + b"]" * 100_000, None),  # nesting deeper than the parser's recursion
            (json.dumps(event(currency="EURO")).encode(), "currency"),
            (json.dumps(event(currency=978)).encode(), "currency"),
            (json.dumps(event(id="x" * 101)).encode(), "id"),
            (json.dumps(event(id={"nested": True})).encode(), "id"),
            (json.dumps(event(payment=None)).encode(), "payment"),
            (json.dumps(event(customer="")).encode(), "customer"),
            (json.dumps(event(method="gold")).encode(), "method"),
            (json.dumps(event(note="a\x00b")).encode(), None),  # jsonb cannot store NUL
            (json.dumps(event(**{"k\x00": 1})).encode(), None),
            (json.dumps(event(id="evt\x00")).encode(), None),
        ],
    )
    def test_bad_bodies_are_400_never_500_and_nothing_is_stored(self, raw, field):
        response = post(raw)
        assert response.status_code == 400, (response.status_code, response.content[:300])
        body = json_error(response)
        if field:
            assert field in body["details"], body
        assert WebhookEvent.objects.count() == 0


# --- what events post ---------------------------------------------------------------------------


@pytest.mark.django_db
class TestEvents:
    def test_payment_succeeded_records_a_gateway_payment_on_the_referenced_invoice(self, customer, make_issued_invoice):
        older = make_issued_invoice(customer)
        invoice = make_issued_invoice(customer)
        body = event(customer=customer.code, amount="500.00", reference=f"Order paid, {invoice.number.lower()}")
        response = post(body)
        assert response.status_code == 200, response.content
        result = response.json()
        assert (result["outcome"], result["duplicate"]) == ("payment_recorded", False)
        payment = Payment.objects.get()
        assert result["payment"] == payment.number
        assert (payment.source, payment.method, payment.amount) == (PaymentSource.GATEWAY, "card", D("500.00"))
        assert [a.invoice_id for a in payment.allocations.all()] == [invoice.pk]
        assert payment.unallocated_amount == D("37.38")
        older.refresh_from_db()
        assert older.amount_paid == D("0")
        stored = WebhookEvent.objects.get()
        assert (stored.provider, stored.event_id, stored.type, stored.payment) == (
            "stripe",
            "evt_1",
            "payment.succeeded",
            payment,
        )
        assert stored.payload["amount"] == "500.00" and stored.payload["customer"] == customer.code
        assert run_audit() == []

    def test_a_repeat_returns_200_and_does_nothing(self, customer, make_issued_invoice):
        make_issued_invoice(customer)
        body = event(customer=customer.code)
        first, second = post(body), post(body)
        assert first.status_code == second.status_code == 200
        assert second.json()["duplicate"] is True
        assert second.json()["payment"] == first.json()["payment"]
        assert (Payment.objects.count(), WebhookEvent.objects.count()) == (1, 1)

    def test_same_event_id_from_another_provider_is_another_event(self, customer):
        body = event(customer=customer.code)
        assert post(body).status_code == 200
        response = post(body, secret="another-secret", url="/api/v1/payments/webhooks/adyen/")
        assert response.json()["duplicate"] is False
        assert WebhookEvent.objects.count() == 2

    def test_a_resent_payment_under_a_new_event_id_is_not_posted_twice(self, customer):
        post(event(customer=customer.code))
        response = post(event(id="evt_2", customer=customer.code))
        assert response.json()["outcome"] == "noted"
        assert Payment.objects.count() == 1

    def test_payment_failed_is_stored_and_posts_nothing(self, customer, make_issued_invoice):
        invoice = make_issued_invoice(customer)
        response = post(event(type="payment.failed", customer=customer.code, reference=invoice.number))
        assert response.json()["outcome"] == "noted"
        assert Payment.objects.count() == 0
        assert WebhookEvent.objects.get().type == "payment.failed"
        invoice.refresh_from_db()
        assert invoice.amount_paid == D("0")

    def test_refund_succeeded_refunds_the_payment_it_names(self, customer):
        post(event(customer=customer.code, amount="100.00"))  # no open invoice: all credit
        response = post(event(id="evt_r1", type="refund.succeeded", amount="30.00"))
        assert response.json()["outcome"] == "refund_recorded", response.content
        payment = Payment.objects.get()
        assert payment.refunded_amount == D("30.00")
        refund = Refund.objects.get()
        assert (refund.source, refund.reference, refund.webhook_event.event_id) == ("gateway", "evt_r1", "evt_r1")
        assert run_audit() == []

    @pytest.mark.parametrize(
        ("fields", "detail"),
        [
            ({"type": "payment.succeeded", "payment": "pi_2", "customer": "NOBODY"}, "No customer"),
            ({"type": "payment.succeeded", "payment": "pi_2", "currency": "USD"}, "billed in EUR"),
            ({"type": "refund.succeeded", "payment": "pi_unknown"}, "No recorded payment"),
            ({"type": "refund.succeeded", "amount": "100.01"}, "cannot be refunded"),
        ],
    )
    def test_what_cannot_be_posted_is_stored_for_review(self, customer, fields, detail):
        post(event(id="evt_0", customer=customer.code, amount="100.00", payment="pi_1"))
        fields.setdefault("customer", customer.code)
        response = post(event(id="evt_x", **fields))
        assert response.status_code == 200
        result = response.json()
        assert result["outcome"] == "needs_review" and detail in result["detail"], result
        assert (Payment.objects.count(), Refund.objects.count()) == (1, 0)
        assert WebhookEvent.objects.get(event_id="evt_x").outcome == "needs_review"


@pytest.mark.django_db(transaction=True)
def test_the_same_event_sent_at_once_from_many_threads_posts_once(customer, make_issued_invoice):
    make_issued_invoice(customer)
    raw = json.dumps(event(customer=customer.code)).encode()
    barrier = threading.Barrier(8)

    def send(_):
        try:
            barrier.wait(timeout=30)
            response = post(raw)
            return response.status_code, response.json().get("duplicate")
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(send, range(8)))
    assert sorted(results) == [(200, False)] + [(200, True)] * 7
    assert (WebhookEvent.objects.count(), Payment.objects.count()) == (1, 1)
    assert run_audit() == []


@pytest.mark.django_db
def test_admin_lists_events_and_shows_a_payment_with_its_refunds(client, user, customer):
    post(event(customer=customer.code, amount="100.00"))
    post(event(id="evt_r", type="refund.succeeded", amount="10.00"))
    client.force_login(user)
    listing = client.get("/admin/payments/webhookevent/?outcome__exact=refund_recorded")
    assert listing.status_code == 200 and b"evt_r" in listing.content and b"evt_1" not in listing.content
    payment = Payment.objects.get()
    page = client.get(f"/admin/payments/payment/{payment.pk}/change/")
    assert page.status_code == 200 and b"Refunded through stripe" in page.content
