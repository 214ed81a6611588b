"""Finance staff in a real browser: the method warning on the record form, a discounted payment,
refunding credit and reversing a payment from the payment page."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from invoicing.models import InvoiceStatus
from payments import services as payments
from payments.models import PaymentStatus
from tests.factories import CustomerFactory, PaymentTermsFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_method_warning_refund_and_reversal(page, login, screenshot, make_issued_invoice):
    terms = PaymentTermsFactory(
        name="2/10 net 30",
        due_days=30,
        discount_percent=Decimal("2"),
        discount_days=10,
        accepted_methods=["bank_transfer", "card"],
    )
    customer = CustomerFactory(name="Skonto GmbH", payment_terms=terms)
    today = timezone.localdate()
    invoice = make_issued_invoice(customer, issue_date=today - timedelta(days=3))
    login()

    # The record form warns as soon as a method the terms do not accept is chosen.
    page.goto(f"/payments/new/?customer={customer.pk}")
    warning = page.locator("#method-warning")
    expect(warning).to_be_hidden()
    page.get_by_label("Method").select_option("check")
    expect(warning).to_be_visible()
    screenshot("payment_form_method_warning")
    page.get_by_label("Method").select_option("card")
    expect(warning).to_be_hidden()

    # 500.00 inside the window: 453.37 settles the invoice with 9.25 discount, 46.63 is credit.
    payment = payments.payment_record(
        customer=customer, method="card", amount=Decimal("500.00"), currency="EUR", received_on=today
    )
    page.goto(f"/payments/{payment.pk}/")
    expect(page.get_by_text("discount taken on top of the money allocated")).to_be_visible()
    screenshot("payment_detail_discount")

    page.get_by_role("link", name="Refund credit").first.click()
    expect(page.get_by_test_id("credit")).to_contain_text("46.63")
    page.get_by_label("Amount").fill("46.64")
    page.get_by_label("Reason").fill("Overpayment returned")
    page.get_by_role("button", name="Record refund").click()
    expect(page.locator(".invalid-feedback")).to_contain_text("cannot be refunded")
    screenshot("payment_refund_too_much")
    page.get_by_label("Amount").fill("46.63")
    page.get_by_role("button", name="Record refund").click()
    page.wait_for_url(f"**/payments/{payment.pk}/")
    expect(page.get_by_test_id("refunds")).to_contain_text("Overpayment returned")
    screenshot("payment_detail_refunded")
    # Refunded: the reversal is no longer offered.
    expect(page.get_by_role("link", name="Reverse…")).to_have_count(0)

    second = make_issued_invoice(customer, issue_date=today - timedelta(days=40))
    check = payments.payment_record(customer=customer, method="card", amount=Decimal("100.00"), currency="EUR")
    page.goto(f"/payments/{check.pk}/")
    page.get_by_role("link", name="Reverse…").click()
    expect(page.get_by_text(second.number)).to_be_visible()
    screenshot("payment_reverse_form")
    page.get_by_label("Reason").fill("Chargeback")
    page.get_by_role("button", name="Reverse payment").click()
    page.wait_for_url(f"**/payments/{check.pk}/")
    expect(page.get_by_test_id("reversed")).to_contain_text("Chargeback")
    screenshot("payment_detail_reversed")
    check.refresh_from_db()
    second.refresh_from_db()
    invoice.refresh_from_db()
    assert check.status == PaymentStatus.REVERSED
    assert second.status == InvoiceStatus.ISSUED and invoice.status == InvoiceStatus.PAID
