"""Finance staff correcting invoices in a real browser: a partial credit note with its preview, and
voiding an invoice that was never sent."""

import re

import pytest
from playwright.sync_api import expect

from invoicing.models import Invoice, InvoiceKind, InvoiceStatus
from orders.models import Order, OrderStatus

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def heading(page):
    return page.get_by_role("heading", level=1)


def test_a_partial_credit_note_from_the_invoice_page(page, login, screenshot, customer, make_issued_invoice, no_worker):
    invoice = make_issued_invoice(customer)  # chairs 2 x 149.90 at 20 %, books 3 x 32.50 at 5.5 %: 462.62
    login()
    page.goto(invoice.get_absolute_url())
    expect(page.get_by_test_id("invoice-balance")).to_contain_text("462.62")
    page.get_by_test_id("credit-button").click()
    expect(heading(page)).to_have_text(f"Credit note for {invoice.number}")
    # The page opens on a full credit, previewed.
    expect(page.get_by_test_id("preview-gross")).to_contain_text("462.62")
    screenshot("credit_note_form_full")

    page.get_by_label("Chosen lines and quantities").check()
    expect(page.get_by_label("Net amount")).to_be_hidden()
    page.get_by_label("Office chair").fill("1")
    # The preview follows the form as it changes, before anything is posted.
    expect(page.get_by_test_id("preview-gross")).to_contain_text("179.88")
    expect(page.get_by_test_id("preview-balance-after")).to_contain_text("282.74")
    assert not Invoice.objects.filter(kind=InvoiceKind.CREDIT_NOTE).exists()

    # Too many books: the error comes back inline and nothing is issued.
    page.get_by_label("Accounting handbook").fill("4")
    page.get_by_label("Reason").fill("One chair damaged in transport")
    page.get_by_test_id("create-credit-note").click()
    expect(page.get_by_test_id("form-errors")).to_be_visible()
    expect(page.get_by_label("Accounting handbook")).to_have_attribute("aria-invalid", "true")
    screenshot("credit_note_form_error")
    assert not Invoice.objects.filter(kind=InvoiceKind.CREDIT_NOTE).exists()

    page.get_by_label("Accounting handbook").fill("")
    expect(page.get_by_label("Accounting handbook")).not_to_have_class(re.compile("is-invalid"))
    expect(page.get_by_test_id("preview-gross")).to_contain_text("179.88")
    screenshot("credit_note_form_lines")
    page.get_by_test_id("create-credit-note").click()

    note = Invoice.objects.get(kind=InvoiceKind.CREDIT_NOTE)
    expect(heading(page)).to_contain_text(f"Credit note {note.number}")
    expect(page.locator(".alert-success")).to_contain_text(f"Credit note {note.number} issued")
    expect(page.get_by_test_id("invoice-balance")).to_contain_text("0.00")  # all applied to the invoice
    expect(page.get_by_test_id("credit-reason")).to_have_text("One chair damaged in transport")
    screenshot("credit_note_detail")

    page.get_by_role("link", name=invoice.number).last.click()
    expect(heading(page)).to_contain_text(f"Invoice {invoice.number}")
    expect(page.get_by_test_id("invoice-balance")).to_contain_text("282.74")
    expect(page.get_by_test_id("credit-notes")).to_contain_text(note.number)
    screenshot("invoice_with_credit_note")
    invoice.refresh_from_db()
    assert (invoice.status, invoice.balance) == (InvoiceStatus.PARTIALLY_PAID, note.original.balance)
    assert str(invoice.balance) == "282.74"

    # The invoice list finds credit notes by kind.
    page.goto("/invoices/")
    page.get_by_label("Kind").select_option("credit_note")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("tbody tr")).to_have_count(1)
    expect(page.locator("tbody")).to_contain_text(note.number)
    screenshot("invoice_list_credit_notes")


def test_voiding_an_unsent_invoice_asks_for_a_reason(page, login, screenshot, customer, make_issued_invoice, no_worker):
    invoice = make_issued_invoice(customer)
    login()
    page.goto(invoice.get_absolute_url())
    page.get_by_test_id("void-button").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_label("Reason")).to_be_focused()
    screenshot("void_dialog")
    dialog.get_by_role("button", name="Void invoice").click()
    # No reason: the page comes back with the dialog open and the error next to the field.
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_text("This field is required.")).to_be_visible()
    assert Invoice.objects.get(pk=invoice.pk).status == InvoiceStatus.ISSUED
    dialog.get_by_label("Reason").fill("Issued twice, never sent")
    dialog.get_by_role("button", name="Void invoice").click()
    expect(page.get_by_test_id("void-notice")).to_contain_text("Issued twice, never sent")
    expect(heading(page)).to_contain_text("Void")
    expect(page.get_by_test_id("invoice-balance")).to_have_text("None — void")
    expect(page.get_by_test_id("void-button")).to_have_count(0)
    expect(page.get_by_test_id("credit-button")).to_have_count(0)
    screenshot("void_invoice")
    assert Invoice.objects.get(pk=invoice.pk).status == InvoiceStatus.VOID
    assert Order.objects.get().status == OrderStatus.FULFILLED
