"""Who may call the API: tokens from the management command, sessions, nobody else."""

from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from tests.factories import UserFactory

from .helpers import error_of

pytestmark = pytest.mark.django_db


def create_token(*args) -> str:
    out, err = StringIO(), StringIO()
    call_command("create_api_token", *args, stdout=out, stderr=err)
    return out.getvalue().strip()


def test_command_creates_a_staff_user_and_a_token_that_works(anon):
    key = create_token("erp-bot")
    user = get_user_model().objects.get(username="erp-bot")
    assert user.is_staff
    assert not user.has_usable_password()
    assert len(key) == 40

    anon.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    response = anon.get("/api/v1/customers/")
    assert response.status_code == 200
    assert response.json()["count"] == 0


def test_command_is_idempotent_and_reset_rotates_the_key(anon):
    first = create_token("erp-bot")
    assert create_token("erp-bot") == first
    rotated = create_token("erp-bot", "--reset")
    assert rotated != first
    anon.credentials(HTTP_AUTHORIZATION=f"Token {first}")
    assert anon.get("/api/v1/customers/").status_code == 401
    anon.credentials(HTTP_AUTHORIZATION=f"Token {rotated}")
    assert anon.get("/api/v1/customers/").status_code == 200


def test_command_gives_an_existing_user_a_token_without_changing_it():
    existing = UserFactory(username="alice", is_staff=False)
    key = create_token("alice")
    existing.refresh_from_db()
    assert existing.auth_token.key == key
    assert existing.is_staff is False
    assert existing.check_password("pw-Secret-123")


def test_command_refuses_an_inactive_user():
    UserFactory(username="gone", is_active=False)
    with pytest.raises(CommandError, match="inactive"):
        create_token("gone")


@pytest.mark.parametrize(
    "url",
    ["/api/v1/", "/api/v1/customers/", "/api/v1/orders/", "/api/v1/invoices/1/pdf/", "/api/v1/kpis/"],
)
def test_anonymous_requests_are_refused_with_json(anon, url):
    response = anon.get(url)
    assert response.status_code == 401
    assert error_of(response)["code"] == "not_authenticated"
    assert response["WWW-Authenticate"] == "Token"


def test_anonymous_writes_change_nothing(anon, customer):
    response = anon.post("/api/v1/customers/", {"name": "Intruder"}, format="json")
    assert response.status_code == 401
    response = anon.post(f"/api/v1/orders/{customer.pk}/confirm/")
    assert response.status_code == 401
    assert get_user_model().objects.count() == 0


def test_wrong_token_is_401(anon):
    anon.credentials(HTTP_AUTHORIZATION="Token not-a-real-key")
    response = anon.get("/api/v1/customers/")
    assert response.status_code == 401
    assert error_of(response)["code"] == "authentication_failed"


def test_browser_session_works_too(client, user):
    client.force_login(user)
    response = client.get("/api/v1/customers/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    assert response.json()["results"] == []


def test_browsable_api_pages_render_for_a_signed_in_user(client, user, make_issued_invoice, customer):
    from payments.services import payment_record

    invoice = make_issued_invoice(customer)
    payment = payment_record(customer=customer, method="card", amount="10.00", currency="EUR", actor=user)
    client.force_login(user)
    order_id = invoice.lines.first().order_line.order_id
    for url in [
        "/api/v1/",
        "/api/v1/tax-rates/",
        "/api/v1/payment-terms/",
        f"/api/v1/payment-terms/{customer.payment_terms_id}/",
        "/api/v1/customers/",
        f"/api/v1/customers/{customer.pk}/",
        "/api/v1/products/",
        "/api/v1/orders/",
        f"/api/v1/orders/{order_id}/",
        "/api/v1/invoices/",
        f"/api/v1/invoices/{invoice.pk}/",
        "/api/v1/payments/",
        f"/api/v1/payments/{payment.pk}/",
        "/api/v1/kpis/",
    ]:
        response = client.get(url, HTTP_ACCEPT="text/html")
        assert response.status_code == 200, url
        assert response["Content-Type"].startswith("text/html"), url
