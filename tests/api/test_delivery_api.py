"""Delivery through the API: POST /invoices/{id}/send/, /print-batches/, /customers/{id}/statement/."""

import hashlib
import io
from datetime import date

import pytest
from django.utils import timezone
from pypdf import PdfReader

from billing.models import AuditEvent
from invoicing import delivery
from invoicing import services as invoicing
from invoicing.models import DeliveryStatus, PrintBatch
from tests.factories import CustomerFactory

from .helpers import error_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def eager_tasks():
    """Run Celery tasks in-process (the real task code, without a broker) for the test."""
    from otc.celery import app

    saved = app.conf.task_always_eager, app.conf.task_eager_propagates
    app.conf.task_always_eager = app.conf.task_eager_propagates = True
    yield
    app.conf.task_always_eager, app.conf.task_eager_propagates = saved


@pytest.fixture
def delivered(make_issued_invoice, eager_tasks, django_capture_on_commit_callbacks):
    """Issue an invoice and let the workers' chain run in-process: PDF, then delivery."""

    def issue(customer, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            invoice = make_issued_invoice(customer, **kwargs)
        invoice.refresh_from_db()
        return invoice

    return issue


@pytest.fixture
def paper_customer(db, terms):
    return CustomerFactory(name="Papeterie Leroy", billing_method="paper", payment_terms=terms)


# --- POST /invoices/{id}/send/ -------------------------------------------------------------------


def test_send_emails_the_invoice_again(
    api, user, eur_customer, delivered, mailoutbox, django_capture_on_commit_callbacks
):
    invoice = delivered(eur_customer)
    assert len(mailoutbox) == 1
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(f"/api/v1/invoices/{invoice.pk}/send/")
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["number"] == invoice.number and body["billing_method"] == "electronic"
    assert body["delivery_status"] == "pending"
    assert len(mailoutbox) == 2 and mailoutbox[1].to == [eur_customer.email]
    invoice.refresh_from_db()
    assert invoice.delivery_status == DeliveryStatus.SENT
    assert AuditEvent.objects.filter(object_id=invoice.pk, action="invoice.resend_requested", actor=user).count() == 1
    assert api.get(f"/api/v1/invoices/{invoice.pk}/").status_code == 200


def test_send_refusals_are_json_and_change_nothing(
    api, eur_customer, paper_customer, make_fulfilled_order, make_issued_invoice, delivered
):
    draft = invoicing.invoice_create_from_orders(orders=[make_fulfilled_order(eur_customer)])
    refused = api.post(f"/api/v1/invoices/{draft.pk}/send/")
    assert refused.status_code == 409 and error_of(refused)["code"] == "invalid_state"

    rendering = make_issued_invoice(eur_customer)  # the PDF worker has not run
    refused = api.post(f"/api/v1/invoices/{rendering.pk}/send/")
    assert refused.status_code == 409 and error_of(refused)["code"] == "pdf_not_ready"

    printed = delivered(paper_customer)
    refused = api.post(f"/api/v1/invoices/{printed.pk}/send/")
    assert refused.status_code == 409
    assert error_of(refused)["details"] == {"print_batch": PrintBatch.objects.get().pk}

    for missing in ("999999", "abc", "99999999999999999999999"):
        response = api.post(f"/api/v1/invoices/{missing}/send/")
        assert response.status_code == 404 and error_of(response)["code"] == "not_found"
    assert not AuditEvent.objects.filter(action="invoice.resend_requested").exists()


def test_send_needs_a_signed_in_user(anon, eur_customer, delivered):
    invoice = delivered(eur_customer)
    response = anon.post(f"/api/v1/invoices/{invoice.pk}/send/")
    assert response.status_code in (401, 403)
    error_of(response)


# --- /print-batches/ -----------------------------------------------------------------------------


def test_print_batch_from_open_to_posted(api, user, paper_customer, delivered, django_assert_max_num_queries):
    invoices = [delivered(paper_customer) for _ in range(3)]
    with django_assert_max_num_queries(5):
        listed = api.get("/api/v1/print-batches/?status=open")
    assert listed.status_code == 200
    [row] = listed.json()["results"]
    assert (row["status"], row["invoice_count"], row["date"]) == ("open", 3, timezone.localdate().isoformat())
    assert [i["number"] for i in row["invoices"]] == sorted(i.number for i in invoices)
    batch_url = f"/api/v1/print-batches/{row['id']}/"

    refused = api.get(batch_url + "pdf/")
    assert refused.status_code == 409 and error_of(refused)["code"] == "invalid_state"
    refused = api.post(batch_url + "mark-posted/")
    assert refused.status_code == 409 and error_of(refused)["code"] == "invalid_state"

    closed = api.post(batch_url + "close/")
    assert closed.status_code == 200, closed.content
    body = closed.json()
    assert body["status"] == "closed" and body["page_count"] == 6 and body["closed_at"]
    pdf = api.get(batch_url + "pdf/", HTTP_ACCEPT="application/pdf")
    assert pdf.status_code == 200 and pdf["Content-Type"] == "application/pdf"
    data = b"".join(pdf.streaming_content)
    assert hashlib.sha256(data).hexdigest() == body["pdf_sha256"]
    assert len(PdfReader(io.BytesIO(data)).pages) == 6
    again = api.post(batch_url + "close/")
    assert again.status_code == 409 and error_of(again)["code"] == "invalid_state"

    posted = api.post(batch_url + "mark-posted/")
    assert posted.status_code == 200
    body = posted.json()
    assert body["status"] == "posted" and body["posted_by"] == user.pk
    assert {i["delivery_status"] for i in body["invoices"]} == {"posted"}
    assert api.get(f"/api/v1/invoices/{invoices[0].pk}/").status_code == 200


def test_print_batch_errors(api, user):
    empty = PrintBatch.objects.create(date=timezone.localdate())
    refused = api.post(f"/api/v1/print-batches/{empty.pk}/close/")
    assert refused.status_code == 409 and error_of(refused)["code"] == "empty_batch"
    for missing in ("999999", "abc"):
        response = api.get(f"/api/v1/print-batches/{missing}/pdf/")
        assert response.status_code == 404 and error_of(response)["code"] == "not_found"
    assert api.get("/api/v1/print-batches/?date_after=not-a-date").status_code == 400
    assert api.get("/api/v1/print-batches/?status=lost").status_code == 400
    assert api.delete(f"/api/v1/print-batches/{empty.pk}/").status_code == 405


def test_print_batch_list_query_count_does_not_grow_with_batches(
    api, paper_customer, delivered, user, django_assert_max_num_queries
):
    for _ in range(2):
        delivered(paper_customer)
        delivery.print_batch_close(batch=PrintBatch.objects.get(status="open"), actor=user)
    delivered(paper_customer)
    with django_assert_max_num_queries(5):
        response = api.get("/api/v1/print-batches/")
    assert [r["invoice_count"] for r in response.json()["results"]] == [1, 1, 1]


# --- /customers/{id}/statement/ ------------------------------------------------------------------


def test_statement_pdf_on_demand(api, eur_customer, make_issued_invoice):
    invoice = make_issued_invoice(eur_customer, issue_date=date(2026, 5, 1))
    response = api.get(f"/api/v1/customers/{eur_customer.pk}/statement/?as_of=2026-06-30")
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/pdf"
    assert f"statement-{eur_customer.code}-2026-06-30.pdf" in response["Content-Disposition"]
    text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(response.content)).pages)
    assert "Dupont SA" in text and invoice.number in text and "462.62" in text
    # As a PDF client asks for it, and with today's date by default.
    response = api.get(f"/api/v1/customers/{eur_customer.pk}/statement/", HTTP_ACCEPT="application/pdf")
    assert response.status_code == 200
    assert timezone.localdate().isoformat() in response["Content-Disposition"]


def test_statement_errors_are_json(api, anon, eur_customer):
    url = f"/api/v1/customers/{eur_customer.pk}/statement/"
    for bad in ("2026-13-01", "yesterday", "0001-01-01"):
        response = api.get(url, {"as_of": bad}, HTTP_ACCEPT="application/pdf")
        assert response.status_code == 400, bad
        assert "as_of" in error_of(response)["details"]
    for missing in ("999999", "abc", "99999999999999999999999"):
        response = api.get(f"/api/v1/customers/{missing}/statement/")
        assert response.status_code == 404 and error_of(response)["code"] == "not_found"
    assert anon.get(url).status_code in (401, 403)


def test_schema_lists_the_delivery_routes(api):
    paths = api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()["paths"]
    for path in [
        "/api/v1/invoices/{id}/send/",
        "/api/v1/print-batches/",
        "/api/v1/print-batches/{id}/",
        "/api/v1/print-batches/{id}/pdf/",
        "/api/v1/print-batches/{id}/close/",
        "/api/v1/print-batches/{id}/mark-posted/",
        "/api/v1/customers/{customer_id}/statement/",
    ]:
        assert path in paths, path
    assert (
        "application/pdf" in paths["/api/v1/customers/{customer_id}/statement/"]["get"]["responses"]["200"]["content"]
    )
