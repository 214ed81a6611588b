"""E-invoices through the API: GET /api/v1/invoices/{id}/ubl/ and /facturx/."""

from decimal import Decimal

import pytest
from lxml import etree

from invoicing import einvoice
from invoicing import services as invoicing
from tests.einvoice_validation import validate_cii, validate_ubl

from .helpers import error_of

pytestmark = pytest.mark.django_db

UBL_INVOICE = "{urn:oasis:names:specification:ubl:schema:xsd:Invoice-2}Invoice"
UBL_CREDIT_NOTE = "{urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2}CreditNote"
CII = "{urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100}CrossIndustryInvoice"


@pytest.fixture
def invoice(make_issued_invoice, eur_customer):
    return make_issued_invoice(eur_customer, customer_reference="PO-2026-17")


@pytest.mark.parametrize("accept", ["application/xml", "application/json", "*/*"])
def test_ubl_download_is_the_valid_ubl_invoice(api, invoice, accept):
    response = api.get(f"/api/v1/invoices/{invoice.pk}/ubl/", HTTP_ACCEPT=accept)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/xml")
    assert response["Content-Disposition"] == f'attachment; filename="{invoice.number}.xml"'
    assert response.content == einvoice.ubl_xml(invoice)
    assert etree.fromstring(response.content).tag == UBL_INVOICE
    assert validate_ubl(response.content).ok


def test_facturx_download_is_the_cii_embedded_in_the_pdf(api, invoice):
    response = api.get(f"/api/v1/invoices/{invoice.pk}/facturx/", HTTP_ACCEPT="application/xml")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/xml")
    assert response["Content-Disposition"] == f'attachment; filename="{invoice.number}-factur-x.xml"'
    assert response.content == einvoice.facturx_xml(invoice)
    assert etree.fromstring(response.content).tag == CII
    assert validate_cii(response.content).ok


def test_credit_note_comes_as_a_ubl_credit_note(api, invoice, user):
    note = invoicing.invoice_credit(invoice=invoice, reason="Price error", amount=Decimal("10.00"), tax_percent=20)
    response = api.get(f"/api/v1/invoices/{note.pk}/ubl/")
    assert response.status_code == 200
    root = etree.fromstring(response.content)
    assert root.tag == UBL_CREDIT_NOTE
    assert invoice.number.encode() in response.content
    assert validate_ubl(response.content).ok
    cii = api.get(f"/api/v1/invoices/{note.pk}/facturx/").content
    assert b"<ram:TypeCode>381</ram:TypeCode>" in cii and validate_cii(cii).ok


@pytest.mark.parametrize("endpoint", ["ubl", "facturx"])
def test_drafts_and_void_invoices_have_no_einvoice(api, user, make_fulfilled_order, eur_customer, endpoint):
    draft = invoicing.invoice_create_from_orders(orders=[make_fulfilled_order(eur_customer)], actor=user)
    response = api.get(f"/api/v1/invoices/{draft.pk}/{endpoint}/", HTTP_ACCEPT="application/xml")
    assert response.status_code == 409
    body = error_of(response)
    assert body["code"] == "invalid_state" and "draft" in body["message"]

    invoicing.invoice_void(invoice=draft, actor=user, reason="Entered twice")
    response = api.get(f"/api/v1/invoices/{draft.pk}/{endpoint}/")
    assert response.status_code == 409
    assert error_of(response)["details"] == {"status": "void"}


@pytest.mark.parametrize("endpoint", ["ubl", "facturx"])
def test_unknown_invoice_is_404_and_anonymous_is_401(api, anon, invoice, endpoint):
    response = api.get(f"/api/v1/invoices/999999/{endpoint}/", HTTP_ACCEPT="application/xml")
    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found"
    response = anon.get(f"/api/v1/invoices/{invoice.pk}/{endpoint}/")
    assert response.status_code == 401
    assert b"<?xml" not in response.content


def test_einvoice_downloads_take_a_bounded_number_of_queries(api, invoice, django_assert_max_num_queries):
    with django_assert_max_num_queries(6):
        assert api.get(f"/api/v1/invoices/{invoice.pk}/ubl/").status_code == 200


def test_schema_documents_the_xml_downloads(api):
    paths = api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()["paths"]
    for endpoint in ("ubl", "facturx"):
        operation = paths[f"/api/v1/invoices/{{id}}/{endpoint}/"]["get"]
        assert "application/xml" in operation["responses"]["200"]["content"]
        assert {"404", "409"} <= set(operation["responses"])
