"""Invoices through /api/v1/invoices/: list, show, issue, PDF."""

from datetime import date, timedelta

import pytest
from django.core.files.base import ContentFile
from django.utils import timezone

from invoicing import services as invoicing
from invoicing.models import Invoice
from tests.factories import CustomerFactory

from .helpers import error_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def draft(user, make_fulfilled_order, eur_customer):
    return invoicing.invoice_create_from_orders(orders=[make_fulfilled_order(eur_customer)], actor=user)


def test_issue_numbers_and_dates_the_draft(api, user, draft, eur_customer):
    response = api.post(f"/api/v1/invoices/{draft.pk}/issue/")
    assert response.status_code == 200, response.content
    body = response.json()
    today = timezone.localdate()
    assert body["status"] == "issued"
    assert body["number"] == f"INV-{today.year}-000001"
    assert body["issue_date"] == today.isoformat()
    assert body["due_date"] == (today + timedelta(days=30)).isoformat()
    assert body["pdf_status"] == "pending"
    assert body["amount_paid"] == "0.00"
    assert body["balance"] == "462.62"
    assert body["customer_snapshot"]["name"] == eur_customer.name
    assert body["tax_breakdown"] == [
        {"rate": "20.00", "category": "standard", "taxable": "299.80", "tax": "59.96"},
        {"rate": "5.50", "category": "reduced", "taxable": "97.50", "tax": "5.36"},
    ]
    draft.refresh_from_db()
    assert draft.issued_by == user


def test_issuing_twice_is_409_and_keeps_the_number(api, draft):
    number = api.post(f"/api/v1/invoices/{draft.pk}/issue/").json()["number"]
    again = api.post(f"/api/v1/invoices/{draft.pk}/issue/")
    assert again.status_code == 409
    assert error_of(again)["code"] == "invalid_state"
    draft.refresh_from_db()
    assert draft.number == number


def test_invoice_detail_shows_lines_with_order_references(api, make_issued_invoice, eur_customer):
    invoice = make_issued_invoice(eur_customer, customer_reference="PO-9")
    body = api.get(f"/api/v1/invoices/{invoice.pk}/").json()
    assert body["number"] == invoice.number
    assert len(body["lines"]) == 2
    line = body["lines"][0]
    assert line["order_number"].startswith("SO-")
    assert line["customer_reference"] == "PO-9"
    assert line["quantity"] == "2.000"
    assert line["tax_percent"] == "20.00"
    assert line["net_amount"] == "299.80"


def test_invoice_list_filters(api, make_issued_invoice, draft, eur_customer):
    other = CustomerFactory()
    issued = make_issued_invoice(other)
    ids = lambda url: [r["id"] for r in api.get(url).json()["results"]]  # noqa: E731
    assert ids("/api/v1/invoices/?status=draft") == [draft.pk]
    assert ids("/api/v1/invoices/?status=issued") == [issued.pk]
    assert ids(f"/api/v1/invoices/?customer={eur_customer.pk}") == [draft.pk]
    assert sorted(ids("/api/v1/invoices/?kind=invoice")) == sorted([draft.pk, issued.pk])
    assert ids("/api/v1/invoices/?kind=credit_note") == []
    assert api.get("/api/v1/invoices/?kind=gift").status_code == 400
    assert api.get("/api/v1/invoices/?due_date_after=not-a-date").status_code == 400


def test_invoices_are_read_only(api, draft):
    assert api.post("/api/v1/invoices/", {"customer": draft.customer_id}, format="json").status_code == 405
    assert api.patch(f"/api/v1/invoices/{draft.pk}/", {"currency": "USD"}, format="json").status_code == 405
    assert api.delete(f"/api/v1/invoices/{draft.pk}/").status_code == 405


def test_pdf_of_a_draft_is_409(api, draft):
    response = api.get(f"/api/v1/invoices/{draft.pk}/pdf/")
    assert response.status_code == 409
    assert "draft" in error_of(response)["message"]


def test_pdf_still_rendering_is_409_pdf_not_ready(api, make_issued_invoice, eur_customer):
    invoice = make_issued_invoice(eur_customer)
    response = api.get(f"/api/v1/invoices/{invoice.pk}/pdf/", HTTP_ACCEPT="application/pdf")
    assert response.status_code == 409
    body = error_of(response)
    assert body["code"] == "pdf_not_ready"
    assert "still rendering" in body["message"]


def test_pdf_failed_is_409_pdf_failed(api, make_issued_invoice, eur_customer):
    invoice = make_issued_invoice(eur_customer)
    invoicing.invoice_mark_pdf_failed(invoice_id=invoice.pk, error="boom")
    response = api.get(f"/api/v1/invoices/{invoice.pk}/pdf/")
    assert response.status_code == 409
    assert error_of(response)["code"] == "pdf_failed"


def test_pdf_ready_is_served_as_the_stored_file(api, make_issued_invoice, eur_customer, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    invoice = make_issued_invoice(eur_customer)
    stored = b"%PDF-1.7\n% the stored invoice\n"
    invoice.pdf.save(f"{invoice.number}.pdf", ContentFile(stored), save=False)
    invoice.pdf_status = "ready"
    invoice.save(update_fields=["pdf", "pdf_status"])
    for accept in ["application/pdf", "application/json", "*/*"]:
        response = api.get(f"/api/v1/invoices/{invoice.pk}/pdf/", HTTP_ACCEPT=accept)
        assert response.status_code == 200
        assert response["Content-Type"] == "application/pdf"
        assert f'filename="{invoice.number}.pdf"' in response["Content-Disposition"]
        assert b"".join(response.streaming_content) == stored


@pytest.mark.slow
def test_pdf_rendered_by_the_service_is_a_real_pdf(api, make_issued_invoice, eur_customer, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    invoice = make_issued_invoice(eur_customer, issue_date=date(2026, 3, 2))
    invoicing.invoice_render_pdf(invoice_id=invoice.pk)
    response = api.get(f"/api/v1/invoices/{invoice.pk}/pdf/")
    assert response.status_code == 200
    content = b"".join(response.streaming_content)
    assert content.startswith(b"%PDF")
    assert api.get(f"/api/v1/invoices/{invoice.pk}/").json()["pdf_status"] == "ready"


def test_pdf_missing_from_storage_is_409_not_500(api, make_issued_invoice, eur_customer, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    invoice = make_issued_invoice(eur_customer)
    Invoice.objects.filter(pk=invoice.pk).update(pdf="invoices/gone.pdf", pdf_status="ready")
    response = api.get(f"/api/v1/invoices/{invoice.pk}/pdf/")
    assert response.status_code == 409
    assert error_of(response)["code"] == "pdf_missing"


def test_invoice_list_query_count_does_not_grow_with_rows(api, make_issued_invoice, django_assert_max_num_queries):
    for _ in range(6):
        make_issued_invoice(CustomerFactory())
    # count + invoices + their lines
    with django_assert_max_num_queries(3):
        response = api.get("/api/v1/invoices/")
    assert response.status_code == 200
    assert response.json()["count"] == 6
    assert all(len(r["lines"]) == 2 for r in response.json()["results"])
