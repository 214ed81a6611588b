"""Invoice numbers found in payment references, and payments allocated by them."""

from datetime import date
from decimal import Decimal

import pytest

from invoicing.models import InvoiceStatus
from payments import services
from payments.matching import find_invoice_numbers
from tests.factories import CustomerFactory

D = Decimal


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("INV-2026-000042", ["INV-2026-000042"]),
        ("Payment for inv 2026 000042 and PEN-2026-000003", ["INV-2026-000042", "PEN-2026-000003"]),
        ("inv-2026-000007, INV-2026-000001, Inv 2026 000007", ["INV-2026-000007", "INV-2026-000001"]),
        ("INV2026000042", ["INV-2026-000042"]),
        ("inv/2026/42", ["INV-2026-000042"]),
        ("INV_2026.000042", ["INV-2026-000042"]),
        ("XINV-2026-000001", []),  # part of another word
        ("INV-2026-0000421", []),  # seven digits: not our number
        ("CN-2026-000001 credit note", []),
        ("", []),
        (None, []),
        ("SEPA 4711 thanks", []),
    ],
)
def test_find_invoice_numbers(text, expected):
    assert find_invoice_numbers(text) == expected


@pytest.mark.django_db
class TestAllocationByReference:
    def _pay(self, customer, amount, reference, **kwargs):
        return services.payment_record(
            customer=customer,
            method="bank_transfer",
            amount=D(amount),
            currency="EUR",
            reference=reference,
            match_reference=True,
            **kwargs,
        )

    def test_pays_the_named_invoices_in_the_order_named_and_keeps_the_rest_as_credit(
        self, customer, make_issued_invoice
    ):
        oldest = make_issued_invoice(customer, issue_date=date(2026, 1, 1))
        second = make_issued_invoice(customer, issue_date=date(2026, 2, 1))
        third = make_issued_invoice(customer, issue_date=date(2026, 3, 1))
        ref = f"remittance {third.number.lower()} + {second.number.replace('-', ' ')}"
        payment = self._pay(customer, "600.00", ref)
        for i in (oldest, second, third):
            i.refresh_from_db()
        assert [(a.invoice_id, a.amount) for a in payment.allocations.all()] == [
            (third.pk, D("462.62")),
            (second.pk, D("137.38")),
        ]
        assert (oldest.status, second.status, third.status) == ("issued", "partially_paid", "paid")
        assert payment.unallocated_amount == D("0")

    def test_surplus_beyond_the_named_invoices_stays_credit_not_oldest_first(self, customer, make_issued_invoice):
        oldest = make_issued_invoice(customer, issue_date=date(2026, 1, 1))
        named = make_issued_invoice(customer, issue_date=date(2026, 2, 1))
        payment = self._pay(customer, "500.00", f"Invoice {named.number}")
        oldest.refresh_from_db()
        assert oldest.status == InvoiceStatus.ISSUED
        assert (payment.allocated_amount, payment.unallocated_amount) == (D("462.62"), D("37.38"))

    def test_other_customers_and_paid_invoices_in_the_reference_are_ignored(self, customer, make_issued_invoice):
        other = make_issued_invoice(CustomerFactory(), issue_date=date(2026, 1, 1))
        mine = make_issued_invoice(customer, issue_date=date(2026, 2, 1))
        payment = self._pay(customer, "100.00", f"{other.number} {mine.number}")
        other.refresh_from_db()
        assert other.amount_paid == D("0")
        assert [a.invoice_id for a in payment.allocations.all()] == [mine.pk]

    def test_no_named_open_invoice_falls_back_to_oldest_first_or_credit(self, customer, make_issued_invoice):
        oldest = make_issued_invoice(customer, issue_date=date(2026, 1, 1))
        payment = self._pay(customer, "100.00", "INV-2026-999999 unknown")
        assert [a.invoice_id for a in payment.allocations.all()] == [oldest.pk]
        kept = self._pay(customer, "50.00", "no number", auto_allocate=False)
        assert (kept.allocated_amount, kept.unallocated_amount) == (D("0"), D("50.00"))


@pytest.mark.django_db
def test_api_allocates_by_reference_and_warns_about_a_method_the_terms_do_not_accept(
    user, customer, make_issued_invoice
):
    from rest_framework.test import APIClient

    terms = customer.payment_terms
    terms.accepted_methods = ["bank_transfer"]
    terms.save()
    make_issued_invoice(customer, issue_date=date(2026, 1, 1))
    named = make_issued_invoice(customer, issue_date=date(2026, 2, 1))
    api = APIClient()
    api.force_authenticate(user=user)
    payload = {"customer": customer.pk, "method": "cash", "amount": "100.00", "reference": named.number.lower()}
    response = api.post("/api/v1/payments/", payload, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert [a["invoice"] for a in body["allocations"]] == [named.pk]
    assert body["method_accepted"] is False
    assert len(body["warnings"]) == 1 and "Cash is not an accepted payment method" in body["warnings"][0]
    off = api.post("/api/v1/payments/", {**payload, "method": "bank_transfer", "match_reference": False}, format="json")
    assert off.json()["warnings"] == []
    assert off.json()["allocations"][0]["invoice"] != named.pk  # oldest due first


@pytest.mark.django_db
def test_record_form_warns_when_the_method_is_not_accepted(client, user, customer):
    terms = customer.payment_terms
    terms.accepted_methods = ["bank_transfer"]
    terms.save()
    client.force_login(user)
    page = client.get(f"/payments/new/?customer={customer.pk}").content.decode()
    assert 'data-accepted="[&quot;bank_transfer&quot;]"' in page
    assert 'class="alert alert-warning py-2 small d-none" id="method-warning"' in page
    posted = client.post(
        "/payments/new/",
        {"customer": customer.pk, "method": "cash", "amount": "", "currency": "EUR", "received_on": "2026-01-01"},
    ).content.decode()
    assert 'class="alert alert-warning py-2 small" id="method-warning"' in posted  # shown on a re-rendered form
