"""Voiding and crediting through the API: POST /api/v1/invoices/{id}/void/ and /credit/."""

from decimal import Decimal

import pytest

from invoicing import services as invoicing
from invoicing.models import Invoice, InvoiceKind, InvoiceStatus
from orders.models import Order, OrderStatus
from payments.services import payment_record

from .helpers import error_of

D = Decimal
pytestmark = pytest.mark.django_db


@pytest.fixture
def invoice(make_issued_invoice, eur_customer):
    return make_issued_invoice(eur_customer)  # 2 chairs at 20 %, 3 books at 5.5 %: 462.62


def _credit_notes():
    return Invoice.objects.filter(kind=InvoiceKind.CREDIT_NOTE)


def test_void_an_issued_invoice(api, invoice):
    response = api.post(f"/api/v1/invoices/{invoice.pk}/void/", {"reason": "Issued twice"}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["status"], body["number"], body["void_reason"]) == ("void", invoice.number, "Issued twice")
    assert body["gross_total"] == "462.62" and body["voided_at"]
    assert all(line["order_line"] for line in body["lines"])  # the document keeps its lines
    assert Order.objects.get().status == OrderStatus.FULFILLED


@pytest.mark.parametrize("payload", [{}, {"reason": ""}, {"reason": "   "}, {"reason": "x" * 256}])
def test_void_without_a_good_reason_is_400_and_changes_nothing(api, invoice, payload):
    response = api.post(f"/api/v1/invoices/{invoice.pk}/void/", payload, format="json")
    assert response.status_code == 400, response.content
    assert "reason" in error_of(response)["details"]
    assert Invoice.objects.get(pk=invoice.pk).status == InvoiceStatus.ISSUED


def test_void_of_a_paid_invoice_is_409_with_the_reason(api, invoice, eur_customer):
    payment_record(customer=eur_customer, method="card", amount=D("462.62"), currency="EUR")
    response = api.post(f"/api/v1/invoices/{invoice.pk}/void/", {"reason": "oops"}, format="json")
    assert response.status_code == 409
    error = error_of(response)
    assert error["code"] == "invalid_state" and "credit note" in error["message"]
    assert error["details"] == {"status": "paid"}
    assert Invoice.objects.get(pk=invoice.pk).status == InvoiceStatus.PAID


def test_credit_chosen_lines(api, invoice):
    chairs = invoice.lines.get(position=1)
    response = api.post(
        f"/api/v1/invoices/{invoice.pk}/credit/",
        {"reason": "One chair damaged", "lines": [{"line": chairs.pk, "quantity": "1"}]},
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["kind"], body["original"], body["gross_total"]) == ("credit_note", invoice.pk, "179.88")
    assert body["number"].startswith("CN-")
    assert body["lines"][0]["credited_line"] == chairs.pk
    assert body["credit_reason"] == "One chair damaged"
    original = api.get(f"/api/v1/invoices/{invoice.pk}/").json()
    assert (original["status"], original["balance"]) == ("partially_paid", "282.74")


def test_credit_an_amount_at_a_rate_and_in_full(api, invoice):
    response = api.post(
        f"/api/v1/invoices/{invoice.pk}/credit/",
        {"reason": "Rebate", "amount": "10.00", "tax_percent": "5.50"},
        format="json",
    )
    assert response.status_code == 201, response.content
    assert (response.json()["net_total"], response.json()["tax_total"]) == ("10.00", "0.55")
    rest = api.post(f"/api/v1/invoices/{invoice.pk}/credit/", {"reason": "Returned"}, format="json")
    assert rest.status_code == 201, rest.content
    assert rest.json()["net_total"] == "387.30"  # 397.30 less the 10.00 already credited
    assert Invoice.objects.get(pk=invoice.pk).balance == D("0")


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"lines": [{"line": "FIRST", "quantity": "1"}]}, "reason"),
        ({"reason": "x", "lines": [{"line": 999999, "quantity": "1"}]}, "lines"),
        ({"reason": "x", "lines": [{"line": "FIRST", "quantity": "3"}]}, "lines"),  # 2 chairs only
        ({"reason": "x", "lines": [{"line": "FIRST", "quantity": "0"}]}, "lines"),
        ({"reason": "x", "lines": [{"line": "FIRST", "quantity": "1"}, {"line": "FIRST", "quantity": "1"}]}, "lines"),
        ({"reason": "x", "lines": []}, "lines"),
        ({"reason": "x", "amount": "10"}, "tax_percent"),  # two rates on the invoice
        ({"reason": "x", "amount": "10", "tax_percent": "7"}, "tax_percent"),
        ({"reason": "x", "amount": "500", "tax_percent": "20"}, "amount"),
        ({"reason": "x", "amount": "ten", "tax_percent": "20"}, "amount"),
        ({"reason": "x", "amount": "-1", "tax_percent": "20"}, "amount"),
        ({"reason": "x", "tax_percent": "20"}, "tax_percent"),
        ({"reason": "x", "amount": "1", "tax_percent": "20", "lines": [{"line": "FIRST", "quantity": "1"}]}, "amount"),
    ],
)
def test_bad_credit_requests_are_400_with_field_details_and_create_nothing(api, invoice, payload, field):
    first = invoice.lines.get(position=1).pk
    for spec in payload.get("lines", []):
        if spec["line"] == "FIRST":
            spec["line"] = first
    response = api.post(f"/api/v1/invoices/{invoice.pk}/credit/", payload, format="json")
    assert response.status_code == 400, response.content
    assert field in error_of(response)["details"], response.json()
    assert not _credit_notes().exists()
    assert Invoice.objects.get(pk=invoice.pk).amount_paid == 0


def test_crediting_a_draft_or_void_invoice_is_409(api, invoice, user, make_fulfilled_order, eur_customer):
    draft = invoicing.invoice_create_from_orders(orders=[make_fulfilled_order(eur_customer)], actor=user)
    invoicing.invoice_void(invoice=invoice, reason="never sent")
    for target in (draft, invoice):
        response = api.post(f"/api/v1/invoices/{target.pk}/credit/", {"reason": "x"}, format="json")
        assert response.status_code == 409, response.content
        assert error_of(response)["code"] == "invalid_state"
    assert not _credit_notes().exists()


def test_a_retried_credit_with_the_same_key_creates_one_credit_note(api, invoice):
    payload = {"reason": "Rebate", "amount": "10.00", "tax_percent": "20.00"}
    first = api.post(
        f"/api/v1/invoices/{invoice.pk}/credit/", payload, format="json", headers={"Idempotency-Key": "cn-1"}
    )
    again = api.post(
        f"/api/v1/invoices/{invoice.pk}/credit/", payload, format="json", headers={"Idempotency-Key": "cn-1"}
    )
    assert (first.status_code, again.status_code) == (201, 201)
    assert again["Idempotent-Replayed"] == "true"
    assert again.json()["number"] == first.json()["number"]
    assert _credit_notes().count() == 1
