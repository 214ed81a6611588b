"""Payments through /api/v1/payments/: recording, allocation (explicit and oldest first), refusals."""

from datetime import date
from decimal import Decimal

import pytest

from invoicing.models import Invoice
from payments.models import Allocation, Payment
from tests.factories import CustomerFactory, PaymentTermsFactory

from .helpers import error_of

pytestmark = pytest.mark.django_db

GROSS = Decimal("462.62")  # the shared fixture order's gross total


@pytest.fixture
def two_invoices(make_issued_invoice, eur_customer):
    """An older and a newer invoice of the same customer, both open."""
    older = make_issued_invoice(eur_customer, issue_date=date(2026, 1, 5))
    newer = make_issued_invoice(eur_customer, issue_date=date(2026, 2, 5))
    return older, newer


def pay(api, who, **fields):
    payload = {"customer": who.pk, "method": "bank_transfer", "amount": "100.00", **fields}
    return api.post("/api/v1/payments/", payload, format="json")


def test_payment_without_allocations_pays_oldest_due_first(api, user, eur_customer, two_invoices):
    older, newer = two_invoices
    response = pay(api, eur_customer, amount="500.00", received_on="2026-03-01", reference="SEPA 4711")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["number"].startswith("PAY-")
    assert body["source"] == "api"
    assert body["currency"] == "EUR"
    assert body["received_on"] == "2026-03-01"
    assert body["reference"] == "SEPA 4711"
    assert body["method_accepted"] is True
    assert body["allocated_amount"] == "500.00"
    assert body["unallocated_amount"] == "0.00"
    assert body["allocations"] == [
        {
            "invoice": older.pk,
            "invoice_number": older.number,
            "amount": "462.62",
            "discount": "0.00",
            "reversed_at": None,
        },
        {
            "invoice": newer.pk,
            "invoice_number": newer.number,
            "amount": "37.38",
            "discount": "0.00",
            "reversed_at": None,
        },
    ]
    older.refresh_from_db()
    newer.refresh_from_db()
    assert older.status == "paid"
    assert newer.status == "partially_paid"
    assert newer.balance == GROSS - Decimal("37.38")
    assert Payment.objects.get(pk=body["id"]).created_by == user


def test_explicit_allocation_pays_the_named_invoice(api, eur_customer, two_invoices):
    older, newer = two_invoices
    response = pay(api, eur_customer, amount="50.00", allocations=[{"invoice": newer.pk, "amount": "50.00"}])
    assert response.status_code == 201, response.content
    assert response.json()["allocations"] == [
        {
            "invoice": newer.pk,
            "invoice_number": newer.number,
            "amount": "50.00",
            "discount": "0.00",
            "reversed_at": None,
        }
    ]
    older.refresh_from_db()
    newer.refresh_from_db()
    assert older.amount_paid == 0
    assert newer.amount_paid == Decimal("50.00")


def test_overpayment_stays_as_customer_credit(api, eur_customer, make_issued_invoice):
    invoice = make_issued_invoice(eur_customer)
    response = pay(api, eur_customer, amount="500.00")
    assert response.status_code == 201
    body = response.json()
    assert body["allocated_amount"] == "462.62"
    assert body["unallocated_amount"] == "37.38"
    invoice.refresh_from_db()
    assert invoice.status == "paid"


def test_auto_allocate_false_keeps_the_whole_amount_as_credit(api, eur_customer, make_issued_invoice):
    invoice = make_issued_invoice(eur_customer)
    response = pay(api, eur_customer, amount="100.00", auto_allocate=False)
    assert response.status_code == 201
    assert response.json()["allocations"] == []
    assert response.json()["unallocated_amount"] == "100.00"
    invoice.refresh_from_db()
    assert invoice.amount_paid == 0


def test_allocation_above_the_invoice_balance_is_400_naming_figures_and_saves_nothing(
    api, eur_customer, make_issued_invoice
):
    invoice = make_issued_invoice(eur_customer)
    response = pay(api, eur_customer, amount="1000.00", allocations=[{"invoice": invoice.pk, "amount": "500.00"}])
    assert response.status_code == 400
    body = error_of(response)
    assert body["code"] == "over_allocation"
    assert "500.00" in body["message"]
    assert "462.62" in body["message"]
    assert body["details"]["allocations"]
    assert not Payment.objects.exists()
    assert not Allocation.objects.exists()
    invoice.refresh_from_db()
    assert invoice.amount_paid == 0
    assert invoice.status == "issued"


def test_allocations_above_the_payment_are_400_naming_figures_and_save_nothing(api, eur_customer, two_invoices):
    older, newer = two_invoices
    allocations = [{"invoice": older.pk, "amount": "80.00"}, {"invoice": newer.pk, "amount": "80.00"}]
    response = pay(api, eur_customer, amount="100.00", allocations=allocations)
    assert response.status_code == 400
    body = error_of(response)
    assert "160.00" in body["message"]
    assert "100.00" in body["message"]
    assert not Payment.objects.exists()
    assert Invoice.objects.filter(amount_paid__gt=0).count() == 0


def test_allocation_to_another_customers_invoice_is_refused(api, eur_customer, make_issued_invoice):
    foreign = make_issued_invoice(CustomerFactory())
    response = pay(api, eur_customer, allocations=[{"invoice": foreign.pk, "amount": "10.00"}])
    assert response.status_code == 400
    assert "another customer" in error_of(response)["message"]
    assert not Payment.objects.exists()


def test_allocation_to_a_draft_is_refused(api, user, eur_customer, make_fulfilled_order):
    from invoicing.services import invoice_create_from_orders

    draft = invoice_create_from_orders(orders=[make_fulfilled_order(eur_customer)], actor=user)
    response = pay(api, eur_customer, allocations=[{"invoice": draft.pk, "amount": "10.00"}])
    assert response.status_code == 400
    assert "draft" in error_of(response)["message"]
    assert not Payment.objects.exists()


def test_unknown_invoice_is_a_400_field_error(api, eur_customer):
    response = pay(api, eur_customer, allocations=[{"invoice": 999999, "amount": "10.00"}])
    assert response.status_code == 400
    details = error_of(response)["details"]
    assert details["allocations"] == {"0": {"invoice": ['Invalid pk "999999" - object does not exist.']}}
    assert not Payment.objects.exists()


def test_payment_currency_must_be_the_customers(api, eur_customer, make_issued_invoice):
    make_issued_invoice(eur_customer)
    response = pay(api, eur_customer, currency="USD")
    assert response.status_code == 400
    body = error_of(response)
    assert "currency" in body["details"]
    assert "EUR" in body["message"]
    assert not Payment.objects.exists()
    assert pay(api, eur_customer, currency="eur").status_code == 201


def test_method_outside_the_terms_is_recorded_but_flagged(api):
    terms = PaymentTermsFactory(accepted_methods=["bank_transfer"])
    customer = CustomerFactory(payment_terms=terms)
    response = pay(api, customer, method="cash")
    assert response.status_code == 201
    assert response.json()["method_accepted"] is False


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"amount": "0"}, "amount"),
        ({"amount": "-10"}, "amount"),
        ({"amount": "ten"}, "amount"),
        ({"amount": "10.001"}, "amount"),
        ({"amount": None}, "amount"),
        ({"amount": [1]}, "amount"),
        ({"method": "bitcoin"}, "method"),
        ({"method": ""}, "method"),
        ({"customer": 999999}, "customer"),
        ({"customer": "acme"}, "customer"),
        ({"currency": "EURO"}, "currency"),
        ({"received_on": "yesterday"}, "received_on"),
        ({"reference": "x" * 141}, "reference"),
        ({"allocations": "all"}, "allocations"),
        ({"allocations": [{"invoice": "INV-1", "amount": "10"}]}, "allocations"),
        ({"allocations": [{"invoice": 1}]}, "allocations"),
        ({"allocations": [{"invoice": 1, "amount": "0"}]}, "allocations"),
        ({"auto_allocate": "perhaps"}, "auto_allocate"),
    ],
)
def test_payment_garbage_is_400_and_saves_nothing(api, eur_customer, fields, field):
    response = pay(api, eur_customer, **fields)
    assert response.status_code == 400, response.content
    assert field in error_of(response)["details"]
    assert not Payment.objects.exists()


def test_allocate_action_spends_the_credit_later(api, eur_customer, make_issued_invoice):
    payment_id = pay(api, eur_customer, amount="100.00").json()["id"]  # nothing open yet: all credit
    invoice = make_issued_invoice(eur_customer)
    response = api.post(f"/api/v1/payments/{payment_id}/allocate/", {}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["unallocated_amount"] == "0.00"
    invoice.refresh_from_db()
    assert invoice.amount_paid == Decimal("100.00")
    assert invoice.status == "partially_paid"


def test_allocate_action_refuses_more_than_is_left(api, eur_customer, make_issued_invoice):
    payment_id = pay(api, eur_customer, amount="100.00").json()["id"]
    invoice = make_issued_invoice(eur_customer)
    response = api.post(
        f"/api/v1/payments/{payment_id}/allocate/",
        {"allocations": [{"invoice": invoice.pk, "amount": "150.00"}]},
        format="json",
    )
    assert response.status_code == 400
    assert "150.00" in error_of(response)["message"]
    assert not Allocation.objects.exists()


def test_payments_are_not_editable(api, eur_customer):
    payment_id = pay(api, eur_customer).json()["id"]
    assert api.patch(f"/api/v1/payments/{payment_id}/", {"amount": "1"}, format="json").status_code == 405
    assert api.delete(f"/api/v1/payments/{payment_id}/").status_code == 405
    assert Payment.objects.get(pk=payment_id).amount == Decimal("100.00")


def test_payment_list_filters(api, eur_customer):
    other = CustomerFactory()
    mine = pay(api, eur_customer, method="card", received_on="2026-01-10").json()["id"]
    theirs = pay(api, other, method="wire", received_on="2026-02-10").json()["id"]
    ids = lambda url: [r["id"] for r in api.get(url).json()["results"]]  # noqa: E731
    assert ids(f"/api/v1/payments/?customer={eur_customer.pk}") == [mine]
    assert ids("/api/v1/payments/?method=wire") == [theirs]
    assert ids("/api/v1/payments/?received_on_after=2026-02-01") == [theirs]
    assert ids("/api/v1/payments/?ordering=received_on") == [mine, theirs]


def test_payment_list_query_count_does_not_grow_with_rows(
    api, make_issued_invoice, eur_customer, django_assert_max_num_queries
):
    for _ in range(3):
        make_issued_invoice(eur_customer)
    for _ in range(6):
        assert pay(api, eur_customer, amount="250.00").status_code == 201
    # count + payments + allocations (with their invoice numbers) + refunds
    with django_assert_max_num_queries(4):
        response = api.get("/api/v1/payments/")
    assert response.status_code == 200
    results = response.json()["results"]
    assert len(results) == 6
    assert sum(len(r["allocations"]) for r in results) >= 6
    assert all(a["invoice_number"].startswith("INV-") for r in results for a in r["allocations"])


def test_a_retried_payment_with_the_same_idempotency_key_is_recorded_once(api, eur_customer, two_invoices):
    """A client that lost the response and posts again must not record the money twice."""
    older, _newer = two_invoices
    payload = {"customer": eur_customer.pk, "method": "bank_transfer", "amount": "100.00", "reference": "SEPA 1"}
    first = api.post("/api/v1/payments/", payload, format="json", HTTP_IDEMPOTENCY_KEY="pay-1")
    again = api.post("/api/v1/payments/", payload, format="json", HTTP_IDEMPOTENCY_KEY="pay-1")
    assert first.status_code == again.status_code == 201, first.content
    assert again.json() == first.json() and again["Idempotent-Replayed"] == "true"
    assert Payment.objects.filter(customer=eur_customer).count() == 1
    older.refresh_from_db()
    assert older.amount_paid == Decimal("100.00")

    other = api.post("/api/v1/payments/", {**payload, "amount": "90.00"}, format="json", HTTP_IDEMPOTENCY_KEY="pay-1")
    assert other.status_code == 422, other.content
    assert Payment.objects.filter(customer=eur_customer).count() == 1
    # Without a key, two posts are two payments: the key is what makes a retry safe.
    assert pay(api, eur_customer).status_code == pay(api, eur_customer).status_code == 201
    assert Payment.objects.filter(customer=eur_customer).count() == 3


def test_a_retried_allocation_with_the_same_idempotency_key_allocates_once(api, eur_customer, make_issued_invoice):
    payment_id = pay(api, eur_customer, amount="100.00").json()["id"]  # nothing open yet: all credit
    invoice = make_issued_invoice(eur_customer)
    url = f"/api/v1/payments/{payment_id}/allocate/"
    body = {"allocations": [{"invoice": invoice.pk, "amount": "40.00"}]}
    first = api.post(url, body, format="json", HTTP_IDEMPOTENCY_KEY="alloc-1")
    again = api.post(url, body, format="json", HTTP_IDEMPOTENCY_KEY="alloc-1")
    assert first.status_code == again.status_code == 200, first.content
    assert again["Idempotent-Replayed"] == "true"
    invoice.refresh_from_db()
    assert invoice.amount_paid == Decimal("40.00")
    assert Allocation.objects.filter(payment_id=payment_id).count() == 1
