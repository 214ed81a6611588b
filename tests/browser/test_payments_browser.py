"""Finance staff in the browser: recording a payment with the allocation preview, and the
collections page with an overdue customer's reminder level."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from payments import dunning
from payments.models import DunningLevel, DunningTone, Payment
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db(transaction=True)


def _row(page, invoice):
    return page.locator(f'[data-testid="allocation-row"][data-invoice="{invoice.number}"]')


def test_record_a_payment_with_the_allocation_preview(page, login, screenshot, no_worker, make_issued_invoice):
    customer = CustomerFactory(name="Garage Moreau")
    today = timezone.localdate()
    older = make_issued_invoice(customer, issue_date=today - timedelta(days=60))
    newer = make_issued_invoice(customer, issue_date=today)
    login()
    page.goto(f"/payments/new/?customer={customer.pk}")
    preview = page.get_by_test_id("allocation-preview")
    expect(preview).to_contain_text(older.number)

    # 600.00 oldest due first: the older invoice in full, the newer one partly.
    page.get_by_label("Amount", exact=True).fill("600.00")
    expect(_row(page, older).get_by_test_id("allocation-amount")).to_have_text("462.62 EUR")
    expect(_row(page, newer).get_by_test_id("allocation-amount")).to_have_text("137.38 EUR")
    expect(page.get_by_test_id("allocation-credit")).to_have_text("0.00 EUR")
    screenshot("payment-preview-oldest-first")

    # Typed amounts win: 400 to the newer invoice, 150 to the older, 50 left as credit.
    page.get_by_label(f"Amount to allocate to {newer.number}").fill("400")
    expect(page.get_by_test_id("allocation-mode")).to_have_text("Amounts as typed")
    page.get_by_label(f"Amount to allocate to {older.number}").fill("150")
    expect(_row(page, older).get_by_test_id("allocation-amount")).to_have_text("150.00 EUR")
    expect(_row(page, newer).get_by_test_id("allocation-amount")).to_have_text("400.00 EUR")
    expect(page.get_by_test_id("allocation-credit")).to_have_text("50.00 EUR")
    expect(page.get_by_label(f"Amount to allocate to {older.number}")).to_be_focused()  # typing is not interrupted
    screenshot("payment-preview-typed")

    page.get_by_role("button", name="Record payment").click()
    expect(page.locator(".alert-success")).to_contain_text("550.00 allocated, 50.00 left as credit")
    screenshot("payment-recorded")

    # The payments list filters by source and received dates, among others.
    page.goto("/payments/")
    page.get_by_label("Source").select_option(label="API")
    page.get_by_role("button", name="Filter").click()
    expect(page.get_by_test_id("empty-state")).to_contain_text("No payments match these filters.")
    page.get_by_label("Source").select_option(label="Browser")
    page.get_by_label("Received from").fill(timezone.localdate().isoformat())
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("tbody tr")).to_have_count(1)
    screenshot("payment-list-filtered")
    payment = Payment.objects.get()
    assert {a.invoice_id: a.amount for a in payment.allocations.all()} == {
        older.pk: Decimal("150.00"),
        newer.pk: Decimal("400.00"),
    }


def test_collections_page_shows_an_overdue_customer_and_its_reminder(
    page, login, screenshot, no_worker, make_issued_invoice
):
    DunningLevel.objects.all().delete()
    for name, days, tone in [("First reminder", 7, DunningTone.FRIENDLY), ("Final notice", 45, DunningTone.FINAL)]:
        DunningLevel.objects.create(
            name=name, days_overdue=days, tone=tone, subject_template=name, body_template="{{ invoice_table }}"
        )
    today = timezone.localdate()
    late = CustomerFactory(name="Garage Moreau")
    invoice = make_issued_invoice(late, issue_date=today - timedelta(days=30 + 50))
    quiet = CustomerFactory(name="Fleurs Lemaire")
    make_issued_invoice(quiet, issue_date=today - timedelta(days=30 + 3))  # late, not yet reminded
    dunning.dunning_run(as_of=today)
    login()
    page.get_by_role("link", name="Collections").click()
    expect(page).to_have_url(f"{page.url.split('/collections')[0]}/collections/")
    table = page.get_by_test_id("collections-table")
    rows = table.get_by_test_id("collections-row")
    expect(rows).to_have_count(2)
    reminded = rows.filter(has_text="Garage Moreau")
    expect(reminded).to_contain_text("Final notice")
    expect(reminded).to_contain_text("462.62")
    expect(reminded).to_contain_text("50 days late")
    expect(rows.filter(has_text="Fleurs Lemaire")).to_contain_text("None yet")
    screenshot("collections")

    page.get_by_label("Last reminder").select_option(label="Final notice")
    page.get_by_role("button", name="Filter").click()
    expect(table.get_by_test_id("collections-row")).to_have_count(1)

    page.get_by_role("link", name="Garage Moreau").click()
    history = page.get_by_test_id("dunning-history")
    expect(history).to_contain_text("Final notice")
    expect(history).to_contain_text(invoice.number)
    screenshot("customer-reminders")

    # The customer disputes the invoice: flagged from its page, it leaves the reminders.
    history.get_by_role("link", name=invoice.number).click()
    card = page.get_by_test_id("dispute-card")
    card.get_by_label("What does the customer dispute?").fill("Goods damaged on arrival")
    card.get_by_role("button", name="Mark as disputed").click()
    expect(page.locator(".alert-success")).to_contain_text("marked as disputed")
    expect(page.get_by_test_id("dispute-card")).to_contain_text("Goods damaged on arrival")
    screenshot("invoice-disputed")
    page.goto("/collections/?flag=disputed")
    expect(page.get_by_test_id("collections-row")).to_have_count(1)
    expect(page.get_by_test_id("collections-row")).to_contain_text("Disputed")


def test_a_paper_customers_reminder_is_in_the_print_batch(page, login, screenshot, no_worker, make_issued_invoice):
    DunningLevel.objects.all().delete()
    DunningLevel.objects.create(
        name="First reminder", days_overdue=7, tone=DunningTone.FRIENDLY, subject_template="Reminder", body_template="x"
    )
    customer = CustomerFactory(name="Garage Moreau", billing_method="paper")
    make_issued_invoice(customer, issue_date=timezone.localdate() - timedelta(days=40))
    notice = dunning.dunning_notice_create(customer_id=customer.pk, as_of=timezone.localdate())
    assert dunning.dunning_notice_deliver(notice_id=notice.pk) == "queued_for_print"
    notice.refresh_from_db()
    login()
    page.goto(f"/print-batches/{notice.print_batch_item.batch_id}/")
    letters = page.get_by_test_id("batch-documents")
    expect(letters).to_contain_text(f"Payment reminder #{notice.pk}")
    expect(letters).to_contain_text("Garage Moreau")
    screenshot("print-batch-with-reminder")
