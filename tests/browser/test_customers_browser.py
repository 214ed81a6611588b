"""Customer master data in a real browser: the form with its contacts table, then the customer page."""

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from billing.models import AuditEvent, Contact, Customer
from payments import services as payments
from tests.factories import PaymentTermsFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def heading(page):
    return page.get_by_role("heading", level=1)


def test_new_customer_with_two_contacts_and_a_vat_number_fixed_after_an_error(page, login, screenshot):
    PaymentTermsFactory(name="Net 30")
    login()
    page.goto("/customers/new/")
    page.get_by_label("Name", exact=True).fill("Atelier Dupont & Fils")
    page.get_by_label("Tax id").fill("FR 40 303 265 046")  # one digit off
    page.get_by_label("Billing email").fill("compta@dupont.example")
    page.get_by_label("Payment terms").select_option(label="Net 30")
    page.get_by_label("Address line 1").fill("14 Quai des Chartrons")
    page.get_by_label("Postal code", exact=True).fill("33000")
    page.get_by_label("City", exact=True).fill("Bordeaux")
    page.get_by_label("Country", exact=True).fill("fr")

    # Goods go to the warehouse: the shipping fields appear only once asked for.
    expect(page.get_by_label("Shipping line 1")).to_have_count(0)
    page.get_by_label("Ship to a different address").check()
    expect(page.get_by_label("Shipping line 1")).to_be_focused()
    page.get_by_label("Shipping line 1").fill("Zone industrielle, quai 4")
    page.get_by_label("Shipping city").fill("Mérignac")

    # The first contact row is there; the second comes from "+ Add contact".
    page.get_by_label("Contact 1 name").fill("Julie Dupont")
    page.get_by_label("Contact 1 role").fill("Accounts payable")
    page.get_by_label("Contact 1 e-mail").fill("julie@dupont.example")
    page.get_by_role("button", name="+ Add contact").click()
    expect(page.get_by_label("Contact 2 name")).to_be_focused()
    page.get_by_label("Contact 2 name").fill("Marc Dupont")
    page.get_by_label("Contact 2 role").fill("Buyer")
    page.get_by_label("Contact 2 phone").fill("+33 5 56 12 34 56")
    page.get_by_label("Contact 2 receives invoices").uncheck()
    screenshot("customer_form_filled")
    page.get_by_role("button", name="Create customer").click()

    # Refused inline, on the tax id, naming the country and the format; nothing saved, nothing lost.
    expect(page.get_by_test_id("form-errors")).to_be_visible()
    error = page.locator("#id_tax_id_error")
    expect(error).to_contain_text("Not a valid VAT number for France (FR)")
    expect(error).to_contain_text("FR followed by")
    expect(page.get_by_label("Tax id")).to_have_class(re.compile(r"is-invalid"))
    expect(page.get_by_label("Contact 2 name")).to_have_value("Marc Dupont")
    expect(page.get_by_label("Shipping city")).to_have_value("Mérignac")
    assert not Customer.objects.exists()
    assert not Contact.objects.exists()
    screenshot("customer_form_error")

    page.get_by_label("Tax id").fill("FR 40 303 265 045")
    page.get_by_role("button", name="Create customer").click()

    expect(heading(page)).to_contain_text("Atelier Dupont & Fils")
    expect(page.get_by_test_id("message-success")).to_contain_text("created with code")
    expect(page.get_by_test_id("tax-id")).to_have_text("FR40303265045")
    expect(page.get_by_test_id("shipping-address")).to_contain_text("Mérignac")
    contacts = page.get_by_test_id("contacts")
    expect(contacts).to_contain_text("Julie Dupont")
    expect(contacts).to_contain_text("Marc Dupont")
    expect(page.get_by_test_id("customer-history")).to_contain_text("Created by")
    customer = Customer.objects.get()
    assert customer.tax_id == "FR40303265045"
    assert customer.billing_country == "FR"
    assert not customer.shipping_same_as_billing
    assert {c.name: c.receives_invoices for c in customer.contacts.all()} == {
        "Julie Dupont": True,
        "Marc Dupont": False,
    }
    screenshot("customer_page_new")


def test_customer_page_edit_contacts_and_notes(page, login, screenshot, user, make_issued_invoice):
    terms = PaymentTermsFactory(name="Net 30 page", due_days=30)
    from billing import services

    customer = services.customer_create(
        name="Brasserie du Port",
        email="compta@port.example",
        payment_terms=terms,
        billing_line1="4 Quai des Brumes",
        billing_city="Marseille",
        billing_country="FR",
        tax_id="FR40303265045",
        credit_limit=Decimal("5000.00"),
        contacts=[
            {"name": "Claire Martin", "email": "claire@port.example", "role": "Accounts payable"},
            {"name": "Old Buyer", "email": "old@port.example", "receives_invoices": False},
        ],
    )
    today = timezone.localdate()
    for days_ago in (0, 75, 130):  # Net 30: current, 45 and 100 days past due; 462.62 each
        make_issued_invoice(customer, issue_date=today - timedelta(days=days_ago))
    payments.payment_record(  # allocated to the oldest invoice first
        customer=customer, method="bank_transfer", amount=Decimal("100.00"), currency="EUR", actor=user
    )
    login()
    page.goto(f"/customers/{customer.pk}/")
    expect(page.get_by_test_id("account-balance")).to_contain_text("1,287.86")
    expect(page.get_by_test_id("account-overdue")).to_contain_text("825.24")
    expect(page.get_by_test_id("aging-days_31_60")).to_contain_text("462.62")
    expect(page.get_by_test_id("aging-days_over_90")).to_contain_text("362.62")
    screenshot("customer_page")

    # Notes are edited in place (htmx), and the change shows in the history at once.
    page.get_by_label("Notes").fill("Deliveries before 10:00 only.")
    page.get_by_role("button", name="Save notes").click()
    expect(page.get_by_test_id("notes-saved")).to_be_visible()
    expect(page.get_by_test_id("customer-history")).to_contain_text("Deliveries before 10:00 only.")

    # Remove a contact and add one on the form.
    page.get_by_role("link", name="Edit", exact=True).first.click()
    expect(page.get_by_label("Contact 2 name")).to_have_value("Old Buyer")
    page.locator("label[for=id_contacts-1-DELETE]").click()
    page.get_by_role("button", name="+ Add contact").click()
    page.get_by_label("Contact 3 name").fill("New Buyer")
    page.get_by_label("Contact 3 e-mail").fill("new@port.example")
    screenshot("customer_form_edit")
    page.get_by_role("button", name="Save changes").click()
    expect(page.get_by_test_id("message-success")).to_contain_text("saved")
    contacts = page.get_by_test_id("contacts")
    expect(contacts).to_contain_text("New Buyer")
    expect(contacts).not_to_contain_text("Old Buyer")
    history = page.get_by_test_id("customer-history")
    expect(history).to_contain_text("Contacts added")
    expect(history).to_contain_text("Old Buyer")
    assert sorted(customer.contacts.values_list("name", flat=True)) == ["Claire Martin", "New Buyer"]
    assert AuditEvent.objects.filter(object_id=customer.pk, action="customer.updated").count() == 2
