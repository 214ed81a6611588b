"""Refunds of customer credit: service rules, the database backstop, API and UI, and a race."""

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from billing.errors import DomainError, InvalidTransition, ValidationFailed
from billing.models import AuditEvent
from kpis.audit import run_audit
from payments import services
from payments.models import Payment, Refund

D = Decimal


def _credit(customer, amount="100.00", **kwargs):
    """A payment kept whole as customer credit."""
    return services.payment_record(
        customer=customer, method="bank_transfer", amount=D(amount), currency="EUR", auto_allocate=False, **kwargs
    )


@pytest.mark.django_db
class TestRefundService:
    def test_partial_then_full_refund_of_the_credit(self, customer, user):
        payment = _credit(customer)
        first = services.payment_refund(payment=payment, amount=D("30.00"), reason="Overpaid", actor=user)
        services.payment_refund(payment=payment, amount=D("70.00"), reason="Account closed", method="wire")
        payment.refresh_from_db()
        assert (payment.refunded_amount, payment.unallocated_amount) == (D("100.00"), D("0"))
        assert (first.method, first.currency, first.created_by, first.refunded_on) == (
            "bank_transfer",
            "EUR",
            user,
            timezone.localdate(),
        )
        assert list(payment.refunds.values_list("amount", "method")) == [
            (D("30.00"), "bank_transfer"),
            (D("70.00"), "wire"),
        ]
        event = AuditEvent.objects.filter(action="payment.refunded").order_by("pk").first()
        assert event.changes["amount"] == "30.00" and event.actor == user
        assert run_audit() == []

    def test_only_unallocated_credit_can_be_refunded(self, customer, make_issued_invoice):
        make_issued_invoice(customer)
        payment = services.payment_record(customer=customer, method="card", amount=D("500.00"), currency="EUR")
        assert payment.unallocated_amount == D("37.38")
        with pytest.raises(ValidationFailed) as exc:
            services.payment_refund(payment=payment, amount=D("37.39"), reason="Too much")
        assert "amount" in exc.value.details
        payment.refresh_from_db()
        assert (payment.refunded_amount, Refund.objects.count()) == (D("0"), 0)
        services.payment_refund(payment=payment, amount=D("37.38"), reason="Overpaid")

    @pytest.mark.parametrize(
        ("kwargs", "field"),
        [
            ({"amount": D("0")}, "amount"),
            ({"amount": D("-5")}, "amount"),
            ({"reason": "  "}, "reason"),
            ({"method": "bitcoin"}, "method"),
            ({"refunded_on": timezone.localdate() + timedelta(days=1)}, "refunded_on"),
            ({"refunded_on": timezone.localdate() - timedelta(days=400)}, "refunded_on"),
        ],
    )
    def test_bad_input_is_refused_with_the_field_and_nothing_changes(self, customer, kwargs, field):
        payment = _credit(customer)
        args = {"payment": payment, "amount": D("10.00"), "reason": "Overpaid", **kwargs}
        with pytest.raises(ValidationFailed) as exc:
            services.payment_refund(**args)
        assert field in exc.value.details
        payment.refresh_from_db()
        assert (payment.refunded_amount, Refund.objects.count()) == (D("0"), 0)

    def test_a_reversed_payment_cannot_be_refunded(self, customer):
        payment = _credit(customer)
        services.payment_reverse(payment=payment, reason="Check bounced")
        with pytest.raises(InvalidTransition):
            services.payment_refund(payment=payment, amount=D("1.00"), reason="x")

    def test_database_refuses_refunds_above_the_amount(self, customer):
        payment = _credit(customer)
        with pytest.raises(IntegrityError), transaction.atomic():
            Payment.objects.filter(pk=payment.pk).update(refunded_amount=D("100.01"))

    def test_audit_catches_a_refund_the_payment_does_not_count(self, customer):
        payment = _credit(customer)
        services.payment_refund(payment=payment, amount=D("10.00"), reason="Overpaid")
        with connection.cursor() as cursor:
            cursor.execute("UPDATE payments_payment SET refunded_amount = 0 WHERE id = %s", [payment.pk])
        found = {f.check: f.rows for f in run_audit()}
        assert found["payment_refunded_equals_refunds"][0].startswith(payment.number)


@pytest.mark.django_db(transaction=True)
def test_refunds_racing_for_the_same_credit_never_exceed_it(customer):
    payment = _credit(customer)
    barrier = threading.Barrier(4)

    def refund(_):
        try:
            barrier.wait(timeout=30)
            services.payment_refund(payment=Payment.objects.get(pk=payment.pk), amount=D("40.00"), reason="race")
            return "ok"
        except DomainError:
            return "refused"
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(refund, range(4)))
    assert sorted(results) == ["ok", "ok", "refused", "refused"]
    payment.refresh_from_db()
    assert (payment.refunded_amount, payment.refunds.count()) == (D("80.00"), 2)
    assert run_audit() == []


@pytest.mark.django_db
class TestRefundApi:
    @pytest.fixture
    def api(self, user):
        from rest_framework.test import APIClient

        client = APIClient()
        client.force_authenticate(user=user)
        return client

    def test_refund_action(self, api, customer):
        payment = _credit(customer)
        response = api.post(
            f"/api/v1/payments/{payment.pk}/refund/",
            {"amount": "25.50", "reason": "Overpaid", "reference": "RF-1"},
            format="json",
        )
        assert response.status_code == 200, response.content
        body = response.json()
        assert (body["refunded_amount"], body["unallocated_amount"]) == ("25.50", "74.50")
        assert body["refunds"][0]["reference"] == "RF-1" and body["refunds"][0]["source"] == "api"

    @pytest.mark.parametrize(
        ("payload", "field"),
        [
            ({"amount": "100.01", "reason": "x"}, "amount"),
            ({"amount": "abc", "reason": "x"}, "amount"),
            ({"amount": "1e400", "reason": "x"}, "amount"),
            ({"amount": "10.00"}, "reason"),
            ({"amount": "10.00", "reason": "x", "method": "gold"}, "method"),
        ],
    )
    def test_bad_refunds_are_400_with_the_field(self, api, customer, payload, field):
        payment = _credit(customer)
        response = api.post(f"/api/v1/payments/{payment.pk}/refund/", payload, format="json")
        assert response.status_code == 400, response.content
        assert field in response.json()["details"]
        payment.refresh_from_db()
        assert payment.refunded_amount == D("0")


@pytest.mark.django_db
class TestRefundPage:
    def test_refund_from_the_payment_page(self, client, user, customer):
        client.force_login(user)
        payment = _credit(customer)
        page = client.get(f"/payments/{payment.pk}/")
        assert f"/payments/{payment.pk}/refund/".encode() in page.content
        form = client.get(f"/payments/{payment.pk}/refund/")
        assert form.status_code == 200 and b"100.00" in form.content
        response = client.post(
            f"/payments/{payment.pk}/refund/",
            {
                "amount": "40.00",
                "method": "wire",
                "refunded_on": timezone.localdate().isoformat(),
                "reason": "Overpaid",
            },
        )
        assert response.status_code == 302
        payment.refresh_from_db()
        assert payment.refunded_amount == D("40.00")
        detail = client.get(f"/payments/{payment.pk}/")
        assert b'data-testid="refunds"' in detail.content and b"Overpaid" in detail.content

    def test_too_much_is_an_inline_error(self, client, user, customer):
        client.force_login(user)
        payment = _credit(customer)
        response = client.post(
            f"/payments/{payment.pk}/refund/",
            {"amount": "100.01", "method": "wire", "refunded_on": timezone.localdate().isoformat(), "reason": "x"},
        )
        assert response.status_code == 200
        assert b"is-invalid" in response.content and b"cannot be refunded" in response.content
        payment.refresh_from_db()
        assert payment.refunded_amount == D("0")


@pytest.mark.django_db
def test_a_retried_refund_with_the_same_idempotency_key_refunds_once(customer, user):
    from rest_framework.test import APIClient

    api = APIClient()
    api.force_authenticate(user=user)
    payment = _credit(customer)
    url = f"/api/v1/payments/{payment.pk}/refund/"
    first = api.post(url, {"amount": "30.00", "reason": "Overpaid"}, format="json", HTTP_IDEMPOTENCY_KEY="rf-1")
    again = api.post(url, {"amount": "30.00", "reason": "Overpaid"}, format="json", HTTP_IDEMPOTENCY_KEY="rf-1")
    assert first.status_code == again.status_code == 200
    assert again["Idempotent-Replayed"] == "true"
    payment.refresh_from_db()
    assert (payment.refunded_amount, payment.refunds.count()) == (D("30.00"), 1)
