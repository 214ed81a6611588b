"""Recording a payment with the allocation preview (the plan shown is the plan posted), and the
payments list filters."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from payments.models import Payment, PaymentSource
from payments.services import payment_record
from tests.factories import CustomerFactory

D = Decimal
pytestmark = pytest.mark.django_db
PREVIEW = "/payments/new/allocation/"


@pytest.fixture
def two_open(customer, make_issued_invoice):
    """Two open invoices of 462.62: the older due 30 days ago, the newer due in 30 days."""
    today = timezone.localdate()
    older = make_issued_invoice(customer, issue_date=today - timedelta(days=60))
    newer = make_issued_invoice(customer, issue_date=today)
    return older, newer


def preview(staff, customer, **params):
    response = staff.get(PREVIEW, {"customer": customer.pk, **params})
    assert response.status_code == 200
    plan = response.context["plan"]
    return plan, {row.invoice.pk: row.amount for row in plan.rows}, response


def post(staff, customer, **extra):
    data = {
        "customer": customer.pk,
        "method": "bank_transfer",
        "amount": "600.00",
        "currency": customer.currency,
        "received_on": timezone.localdate().isoformat(),
        "reference": "",
        "invoice": "",
        **extra,
    }
    return staff.post(reverse("payment-create"), data)


def test_preview_oldest_first_partial(staff, customer, two_open):
    older, newer = two_open
    plan, amounts, response = preview(staff, customer, amount="600.00")
    assert plan.mode == "oldest"
    assert amounts == {older.pk: D("462.62"), newer.pk: D("137.38")}
    assert plan.credit_left == 0
    html = response.content.decode()
    assert older.number in html and newer.number in html and "137.38" in html


def test_preview_leaves_the_rest_as_credit(staff, customer, two_open):
    plan, _amounts, response = preview(staff, customer, amount="1000")
    assert plan.allocated == D("925.24") and plan.credit_left == D("74.76")
    assert "74.76" in response.content.decode()


def test_preview_with_typed_amounts_and_a_chosen_invoice(staff, customer, two_open):
    older, newer = two_open
    plan, amounts, _ = preview(staff, customer, amount="600", **{f"alloc_{newer.pk}": "100.00"})
    assert plan.mode == "manual" and amounts == {older.pk: 0, newer.pk: D("100.00")}
    assert plan.credit_left == D("500.00")
    plan, amounts, _ = preview(staff, customer, amount="600", invoice=newer.pk)
    assert plan.mode == "invoice" and amounts == {older.pk: 0, newer.pk: D("462.62")}


def test_preview_flags_wrong_amounts(staff, customer, two_open):
    older, newer = two_open
    plan, _, response = preview(staff, customer, amount="600", **{f"alloc_{older.pk}": "500"})
    assert not plan.valid and "More than the balance of 462.62." in response.content.decode()
    plan, _, response = preview(
        staff, customer, amount="300", **{f"alloc_{older.pk}": "200", f"alloc_{newer.pk}": "200"}
    )
    assert not plan.valid and "are more than the payment" in response.content.decode()
    plan, _, _ = preview(staff, customer, amount="300", **{f"alloc_{older.pk}": "abc"})
    assert not plan.valid
    plan, _, _ = preview(staff, customer, amount="300", **{f"alloc_{older.pk}": "1.005"})
    assert not plan.valid


def test_preview_without_customer_or_amount_does_not_fail(staff, customer, two_open):
    response = staff.get(PREVIEW)
    assert response.status_code == 200 and "Choose a customer" in response.content.decode()
    plan, amounts, _ = preview(staff, customer, amount="x")
    assert plan.amount is None and set(amounts.values()) == {0}


def test_the_form_page_shows_the_preview_for_the_customer(staff, customer, two_open):
    older, _newer = two_open
    html = staff.get(f"/payments/new/?invoice={older.pk}").content.decode()
    assert 'data-testid="allocation-preview"' in html and older.number in html


def test_posting_uses_the_typed_plan(staff, customer, two_open):
    older, newer = two_open
    response = post(staff, customer, amount="600.00", **{f"alloc_{newer.pk}": "250.00"})
    payment = Payment.objects.get()
    assert response["Location"] == payment.get_absolute_url()
    assert [(a.invoice_id, a.amount) for a in payment.allocations.all()] == [(newer.pk, D("250.00"))]
    assert payment.unallocated_amount == D("350.00")
    older.refresh_from_db()
    assert older.amount_paid == 0


def test_posting_without_typed_amounts_allocates_as_previewed(staff, customer, two_open):
    older, newer = two_open
    _plan, amounts, _ = preview(staff, customer, amount="600.00")
    assert amounts == {older.pk: D("462.62"), newer.pk: D("137.38")}
    post(staff, customer, amount="600.00")
    payment = Payment.objects.get()
    assert {a.invoice_id: a.amount for a in payment.allocations.all()} == {k: v for k, v in amounts.items() if v}


def test_a_wrong_plan_saves_nothing(staff, customer, two_open):
    older, _newer = two_open
    response = post(staff, customer, amount="100.00", **{f"alloc_{older.pk}": "150.00"})
    assert response.status_code == 200
    assert "Check the allocation" in response.content.decode()
    assert not Payment.objects.exists()


def test_a_balance_paid_since_the_preview_is_refused_not_over_allocated(staff, customer, two_open):
    older, _newer = two_open
    preview(staff, customer, amount="462.62", **{f"alloc_{older.pk}": "462.62"})
    # Meanwhile a bank payment settles the older invoice.
    payment_record(
        customer=customer,
        method="bank_transfer",
        amount=D("462.62"),
        currency="EUR",
        allocations=[{"invoice": older, "amount": D("462.62")}],
    )
    response = post(staff, customer, amount="462.62", **{f"alloc_{older.pk}": "462.62"})
    assert response.status_code == 200
    assert Payment.objects.count() == 1
    older.refresh_from_db()
    assert older.amount_paid == D("462.62")


def test_payment_list_filters(staff, customer):
    today = timezone.localdate()
    other = CustomerFactory(name="Other Ltd")

    def pay(who, amount, days_ago, source=PaymentSource.UI):
        return payment_record(
            customer=who,
            method="bank_transfer",
            amount=D(amount),
            currency="EUR",
            received_on=today - timedelta(days=days_ago),
            source=source,
        )

    old_api = pay(customer, "10", 40, PaymentSource.API)
    recent_ui = pay(customer, "20", 2)
    theirs = pay(other, "30", 5, PaymentSource.BANK_IMPORT)

    def listed(**params):
        response = staff.get("/payments/", params)
        assert response.status_code == 200
        return [p.pk for p in response.context["page_obj"].object_list]

    assert listed(source="api") == [old_api.pk]
    assert listed(received_from=(today - timedelta(days=7)).isoformat()) == [recent_ui.pk, theirs.pk]
    assert listed(received_to=(today - timedelta(days=30)).isoformat()) == [old_api.pk]
    assert listed(customer=other.pk) == [theirs.pk]
    assert listed(credit="unallocated", sort="amount") == [old_api.pk, recent_ui.pk, theirs.pk]
    assert listed(sort="source") == [old_api.pk, theirs.pk, recent_ui.pk]  # api, bank_import, ui
    assert listed(received_from="not-a-date") == [recent_ui.pk, theirs.pk, old_api.pk]  # ignored


def test_a_plan_that_changed_since_the_preview_is_not_recorded(staff, customer, two_open):
    older, newer = two_open
    _plan, _amounts, response = preview(staff, customer, amount="600.00")
    html = response.content.decode()
    assert f'name="shown_{older.pk}" value="462.62"' in html and f'name="shown_{newer.pk}" value="137.38"' in html
    shown = {"shown_plan": "1", f"shown_{older.pk}": "462.62", f"shown_{newer.pk}": "137.38"}
    # Meanwhile 100.00 arrives on the older invoice: oldest first would now give the newer one 237.38.
    payment_record(
        customer=customer,
        method="bank_transfer",
        amount=D("100.00"),
        currency="EUR",
        allocations=[{"invoice": older, "amount": D("100.00")}],
    )
    response = post(staff, customer, amount="600.00", **shown)
    assert response.status_code == 200
    assert "The allocation changed since it was shown" in response.content.decode()
    assert Payment.objects.count() == 1
    # The page now shows the new plan; posting it records it.
    shown = {"shown_plan": "1", f"shown_{older.pk}": "362.62", f"shown_{newer.pk}": "237.38"}
    assert f'name="shown_{newer.pk}" value="237.38"' in response.content.decode()
    response = post(staff, customer, amount="600.00", **shown)
    payment = Payment.objects.latest("pk")
    assert response["Location"] == payment.get_absolute_url()
    assert {a.invoice_id: a.amount for a in payment.allocations.all()} == {older.pk: D("362.62"), newer.pk: D("237.38")}
