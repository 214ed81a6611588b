"""Customer satisfaction: the signed feedback link on invoices, the public page it opens, staff
entry from a call on the customer page, and the API."""

import io
import re
from datetime import timedelta

import pytest
from django.core import signing
from django.db import IntegrityError, transaction
from django.test import Client
from django.utils import timezone
from pypdf import PdfReader

from billing.models import AuditEvent
from invoicing import services as invoicing
from invoicing.feedback import (
    SALT,
    FeedbackLinkExpired,
    FeedbackLinkInvalid,
    feedback_invoice_id,
    feedback_token,
    feedback_url,
)
from invoicing.models import PdfStatus
from kpis.models import Feedback
from tests.factories import CustomerFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def invoice(customer, make_issued_invoice):
    return make_issued_invoice(customer)


def page_url(token: str) -> str:
    return f"/feedback/{token}/"


# --- The token ---------------------------------------------------------------------------------


def test_token_round_trip_and_absolute_url(invoice, settings):
    settings.OTC_PUBLIC_URL = "https://otc.example.com/"
    token = feedback_token(invoice)
    assert feedback_invoice_id(token) == invoice.pk
    # Stamped with the issue time: the e-mail and the PDF (and a re-rendered PDF) carry the same link.
    assert feedback_token(invoice) == token
    assert feedback_url(invoice) == f"https://otc.example.com/feedback/{token}/"


def test_forged_altered_and_expired_tokens_are_refused(invoice):
    token = feedback_token(invoice)
    payload, stamp, signature = token.split(":")
    other_id = signing.TimestampSigner(salt=SALT).sign_object(invoice.pk + 1).split(":")[0]
    forged_key = signing.TimestampSigner(key="not-our-secret-key-0123456789abcdef", salt=SALT).sign_object(invoice.pk)
    wrong_salt = signing.TimestampSigner(salt="otc.something-else").sign_object(invoice.pk)
    for bad in (
        f"{other_id}:{stamp}:{signature}",  # another invoice's id under this signature
        f"{payload}:{stamp}:{signature[:-1]}{'A' if signature[-1] != 'A' else 'B'}",
        forged_key,
        wrong_salt,
        "garbage",
        "",
    ):
        with pytest.raises(FeedbackLinkInvalid):
            feedback_invoice_id(bad)
    invoice.issued_at = timezone.now() - timedelta(days=181)  # not saved: only the token is made older
    with pytest.raises(FeedbackLinkExpired):
        feedback_invoice_id(feedback_token(invoice))
    invoice.issued_at = timezone.now() - timedelta(days=179)
    assert feedback_invoice_id(feedback_token(invoice)) == invoice.pk


# --- The public page ------------------------------------------------------------------------------


def test_customer_rates_an_invoice_once_without_logging_in(invoice):
    client = Client(enforce_csrf_checks=True)
    url = page_url(feedback_token(invoice))
    page = client.get(url)
    assert page.status_code == 200
    html = page.content.decode()
    assert invoice.number in html
    assert html.count('type="radio" name="rating"') == 5
    assert "Log out" not in html and 'href="/customers/' not in html  # no staff navigation
    csrf = client.cookies["csrftoken"].value

    response = client.post(
        url, {"rating": "5", "comment": "  Clear invoice, quick delivery.  ", "csrfmiddlewaretoken": csrf}
    )
    assert response.status_code == 302 and response["Location"] == f"{url}thanks/"
    feedback = Feedback.objects.get()
    assert (feedback.invoice, feedback.customer, feedback.rating) == (invoice, invoice.customer, 5)
    assert (feedback.comment, feedback.source, feedback.created_by) == ("Clear invoice, quick delivery.", "link", None)
    event = AuditEvent.objects.get(action="feedback.recorded")
    assert event.object_id == feedback.pk and event.actor is None and event.changes["source"] == "link"

    thanks = client.get(f"{url}thanks/")
    assert thanks.status_code == 200 and "5 out of 5" in thanks.content.decode()

    again = client.get(url)
    assert again.status_code == 409
    assert "already been rated" in again.content.decode()
    resubmit = client.post(url, {"rating": "1", "comment": "changed my mind", "csrfmiddlewaretoken": csrf})
    assert resubmit.status_code == 409
    assert list(Feedback.objects.values_list("rating", "comment")) == [(5, "Clear invoice, quick delivery.")]


@pytest.mark.parametrize(
    "make_token, status, text",
    [
        (lambda inv: feedback_token(inv)[:-2] + "xx", 400, "not valid"),
        (lambda inv: signing.TimestampSigner(key="x" * 50, salt=SALT).sign_object(inv.pk), 400, "not valid"),
        (lambda inv: signing.TimestampSigner(salt=SALT).sign_object(inv.pk + 1000), 400, "not valid"),
        (lambda inv: signing.TimestampSigner(salt=SALT).sign_object("1"), 400, "not valid"),
        (lambda inv: "no-token-at-all", 400, "not valid"),
    ],
    ids=["altered", "forged", "no-such-invoice", "not-an-id", "garbage"],
)
def test_bad_links_show_a_clear_page_and_store_nothing(invoice, make_token, status, text):
    url = page_url(make_token(invoice))
    for response in (Client().get(url), Client().post(url, {"rating": "5"})):
        assert response.status_code == status
        assert text in response.content.decode()
    assert not Feedback.objects.exists()


def test_expired_link_is_410_and_stores_nothing(invoice):
    invoice.issued_at = timezone.now() - timedelta(days=200)
    url = page_url(feedback_token(invoice))
    for response in (Client().get(url), Client().post(url, {"rating": "4"})):
        assert response.status_code == 410
        assert "has expired" in response.content.decode()
    assert not Feedback.objects.exists()


def test_a_credit_note_has_no_feedback_link_and_its_id_is_refused(invoice, user):
    credit = invoicing.invoice_credit(invoice=invoice, actor=user, reason="Damaged in transit")
    token = signing.TimestampSigner(salt=SALT).sign_object(credit.pk)  # as if we had signed it
    assert Client().post(page_url(token), {"rating": "5"}).status_code == 400
    assert not Feedback.objects.exists()


@pytest.mark.parametrize(
    "data", [{}, {"rating": "0"}, {"rating": "6"}, {"rating": "five"}, {"rating": "5", "comment": "x" * 2001}]
)
def test_bad_answers_come_back_inline_and_store_nothing(invoice, data):
    response = Client().post(page_url(feedback_token(invoice)), data)
    assert response.status_code == 400
    html = response.content.decode()
    assert "feedback-form" in html and "Please correct" in html
    assert not Feedback.objects.exists()


def test_the_form_needs_its_csrf_token(invoice):
    client = Client(enforce_csrf_checks=True)
    url = page_url(feedback_token(invoice))
    client.get(url)
    assert client.post(url, {"rating": "5"}).status_code == 403
    assert not Feedback.objects.exists()


def test_the_database_keeps_one_answer_per_invoice_and_ratings_1_to_5(invoice):
    Feedback.objects.create(invoice=invoice, customer=invoice.customer, rating=3, source="call")
    with pytest.raises(IntegrityError), transaction.atomic():
        Feedback.objects.create(invoice=invoice, customer=invoice.customer, rating=4, source="link")
    other = Feedback.objects.get()
    other.delete()
    for rating in (0, 6):
        with pytest.raises(IntegrityError), transaction.atomic():
            Feedback.objects.create(invoice=invoice, customer=invoice.customer, rating=rating, source="link")
    with pytest.raises(IntegrityError), transaction.atomic():
        Feedback.objects.create(invoice=invoice, customer=invoice.customer, rating=3, source="fax")


# --- The link on the invoice e-mail and PDF ---------------------------------------------------------


@pytest.fixture
def eager_tasks():
    from otc.celery import app

    saved = app.conf.task_always_eager, app.conf.task_eager_propagates
    app.conf.task_always_eager = app.conf.task_eager_propagates = True
    yield
    app.conf.task_always_eager, app.conf.task_eager_propagates = saved


def test_invoice_email_and_pdf_carry_the_link(
    customer, make_issued_invoice, eager_tasks, django_capture_on_commit_callbacks, mailoutbox, settings
):
    settings.OTC_PUBLIC_URL = "https://otc.example.com"
    with django_capture_on_commit_callbacks(execute=True):
        invoice = make_issued_invoice(customer)
    invoice.refresh_from_db()
    assert invoice.pdf_status == PdfStatus.READY
    link = feedback_url(invoice)
    message = mailoutbox[0]
    html, _type = message.alternatives[0]
    assert link in message.body and f'href="{link}"' in html
    with invoice.pdf.open("rb") as f:
        reader = PdfReader(io.BytesIO(f.read()))
    text = re.sub(r"\s+", "", " ".join(p.extract_text() for p in reader.pages))
    assert link in text
    uris = [a.get_object().get("/A", {}).get("/URI") for p in reader.pages for a in p.get("/Annots") or []]
    assert link in uris
    # The link opens the page for this very invoice.
    assert Client().get(link.removeprefix("https://otc.example.com")).status_code == 200


# --- Staff: the customer page's ratings card and feedback from a call -------------------------------


def card(client, customer, **headers):
    return client.get(f"/customers/{customer.pk}/feedback/", headers=headers)


def test_customer_page_loads_the_ratings_card(staff, customer):
    page = staff.get(f"/customers/{customer.pk}/").content.decode()
    assert f'hx-get="/customers/{customer.pk}/feedback/"' in page
    response = card(staff, customer, HX_Request="true")
    assert response.status_code == 200
    assert 'data-testid="feedback-empty"' in response.content.decode()


def test_staff_record_feedback_from_a_call(staff, user, customer, make_issued_invoice):
    first, second = make_issued_invoice(customer), make_issued_invoice(customer)
    response = staff.post(
        f"/customers/{customer.pk}/feedback/", {"invoice": first.pk, "rating": "2", "comment": "Wrong PO on it"}
    )
    assert response.status_code == 302 and response["Location"].endswith(f"/customers/{customer.pk}/#customer-feedback")
    feedback = Feedback.objects.get()
    assert (feedback.invoice, feedback.rating, feedback.source, feedback.created_by) == (first, 2, "call", user)
    event = AuditEvent.objects.get(action="feedback.recorded")
    assert event.actor == user and event.changes == {"invoice": first.number, "rating": 2, "source": "call"}

    html = staff.post(
        f"/customers/{customer.pk}/feedback/", {"invoice": second.pk, "rating": "5"}, headers={"HX-Request": "true"}
    ).content.decode()
    assert 'data-testid="feedback-saved"' in html
    assert re.search(r'data-testid="feedback-average">3\.5 / 5<', html)
    assert re.search(r'data-testid="feedback-csat">50%<', html)
    assert "Wrong PO on it" in html
    # Both invoices are rated: none is offered any more.
    assert "already has feedback" in html or "Every issued invoice" in html


@pytest.mark.parametrize("htmx", [True, False])
def test_call_form_errors_are_inline_and_store_nothing(staff, customer, make_issued_invoice, htmx):
    mine = make_issued_invoice(customer)
    theirs = make_issued_invoice(CustomerFactory())
    headers = {"HX-Request": "true"} if htmx else {}
    for data in ({"invoice": mine.pk}, {"invoice": mine.pk, "rating": "9"}, {"invoice": theirs.pk, "rating": "4"}, {}):
        response = staff.post(f"/customers/{customer.pk}/feedback/", data, headers=headers)
        assert response.status_code == (200 if htmx else 400)
        html = response.content.decode()
        assert "Please correct" in html and "is-invalid" in html
    assert not Feedback.objects.exists()


def test_call_feedback_on_a_rated_invoice_is_refused_inline(staff, customer, invoice):
    Client().post(page_url(feedback_token(invoice)), {"rating": "4"})
    response = staff.post(f"/customers/{customer.pk}/feedback/", {"invoice": invoice.pk, "rating": "1"})
    assert response.status_code == 400
    assert Feedback.objects.get().rating == 4


def test_the_card_needs_a_login(client, customer):
    assert card(client, customer).status_code == 302
    assert client.post(f"/customers/{customer.pk}/feedback/", {"rating": "5"}).status_code == 302
    assert not Feedback.objects.exists()


def test_card_shows_the_last_five_answers(staff, user, customer, make_issued_invoice):
    invoices = [make_issued_invoice(customer) for _ in range(6)]
    for n, inv in enumerate(invoices):
        Feedback.objects.create(invoice=inv, customer=customer, rating=1 + n % 5, comment=f"comment {n}", source="link")
    html = card(staff, customer, HX_Request="true").content.decode()
    assert "comment 0" not in html and all(f"comment {n}" in html for n in range(1, 6))
    assert 'data-testid="feedback-count">6<' in html


# --- API --------------------------------------------------------------------------------------------


@pytest.fixture
def api(user):
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(user=user)
    return client


def test_api_lists_and_filters_feedback(api, customer, make_issued_invoice):
    other = CustomerFactory()
    rows = [(customer, 5), (customer, 2), (other, 4)]
    for cust, rating in rows:
        inv = make_issued_invoice(cust)
        Feedback.objects.create(invoice=inv, customer=cust, rating=rating, source="link")
    assert api.get("/api/v1/feedback/").json()["count"] == 3
    mine = api.get(f"/api/v1/feedback/?customer={customer.pk}").json()["results"]
    assert sorted(r["rating"] for r in mine) == [2, 5] and {r["customer"] for r in mine} == {customer.pk}
    assert [r["rating"] for r in api.get("/api/v1/feedback/?rating=4").json()["results"]] == [4]
    assert sorted(r["rating"] for r in api.get("/api/v1/feedback/?rating_min=4").json()["results"]) == [4, 5]


def test_api_records_call_feedback_once(api, user, invoice):
    response = api.post("/api/v1/feedback/", {"invoice": invoice.pk, "rating": 4, "comment": "ok"}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["invoice_number"], body["rating"], body["source"], body["created_by"]) == (
        invoice.number,
        4,
        "call",
        user.username,
    )
    again = api.post("/api/v1/feedback/", {"invoice": invoice.pk, "rating": 1}, format="json")
    assert again.status_code == 409 and again.json()["code"] == "conflict"
    assert Feedback.objects.get().rating == 4


@pytest.mark.parametrize(
    "data, field",
    [
        ({"rating": 4}, "invoice"),
        ({"invoice": 0, "rating": 4}, "invoice"),
        ({"invoice": "THE", "rating": 0}, "rating"),
        ({"invoice": "THE", "rating": 6}, "rating"),
        ({"invoice": "THE", "rating": "x"}, "rating"),
        ({"invoice": "THE", "rating": 4, "comment": "x" * 2001}, "comment"),
    ],
)
def test_api_bad_input_is_400_with_field_details(api, invoice, data, field):
    data = {k: invoice.pk if v == "THE" else v for k, v in data.items()}
    response = api.post("/api/v1/feedback/", data, format="json")
    assert response.status_code == 400
    body = response.json()
    assert body["code"] and field in body["details"], body
    assert not Feedback.objects.exists()


def test_api_needs_authentication(invoice):
    from rest_framework.test import APIClient

    anon = APIClient()
    assert anon.get("/api/v1/feedback/").status_code in (401, 403)
    assert anon.post("/api/v1/feedback/", {"invoice": invoice.pk, "rating": 5}).status_code in (401, 403)
    assert not Feedback.objects.exists()


def test_api_token_auth(invoice):
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    bot = UserFactory(username="erp-bot")
    token = Token.objects.create(user=bot)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    assert client.post("/api/v1/feedback/", {"invoice": invoice.pk, "rating": 3}, format="json").status_code == 201
    assert client.get("/api/v1/feedback/").json()["count"] == 1
