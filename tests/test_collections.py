"""The collections page (overdue customers, last reminder, penalties, flags), the reminders on the
customer page, and the dispute toggle on the invoice page."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from billing.models import AuditEvent
from invoicing import services as invoicing
from invoicing.models import Invoice
from payments import dunning, penalties
from payments.models import DunningLevel, DunningNotice, DunningTone
from payments.services import payment_record
from tests.factories import CustomerFactory, PaymentTermsFactory

D = Decimal
pytestmark = pytest.mark.django_db


@pytest.fixture
def today():
    return timezone.localdate()


@pytest.fixture
def levels(db):
    DunningLevel.objects.all().delete()
    return [
        DunningLevel.objects.create(
            name=name, days_overdue=days, tone=tone, subject_template=name, body_template="{{ invoice_table }}"
        )
        for name, days, tone in [
            ("Friendly", 7, DunningTone.FRIENDLY),
            ("Firm", 21, DunningTone.FIRM),
            ("Final", 45, DunningTone.FINAL),
        ]
    ]


@pytest.fixture
def book(levels, today, make_issued_invoice):
    """Three customers: late (two invoices 10 and 50 days overdue, a fee penalty, reminded), on hold
    (one invoice 35 days late, in USD), and one who owes nothing overdue."""
    terms = PaymentTermsFactory(name="Net 30, fee 40", due_days=30, fixed_fee=D("40.00"))

    def issue(customer, days_late):
        return make_issued_invoice(customer, issue_date=today - timedelta(days=30 + days_late))

    late = CustomerFactory(name="Garage Moreau", payment_terms=terms)
    docs = {"late10": issue(late, 10), "late50": issue(late, 50)}
    penalties.assess_batch(invoice_ids=[docs["late50"].pk], as_of=today)  # the 40.00 fee, due today
    dunning.dunning_run(as_of=today)
    held = CustomerFactory(name="Boulangerie Petit", currency="USD")
    docs["held_invoice"] = issue(held, 35)
    held.on_hold, held.on_hold_reason = True, "Bankrupt"
    held.save()
    fine = CustomerFactory(name="Fleurs Lemaire")
    docs["fine_invoice"] = issue(fine, -5)
    return {"late": late, "held": held, "fine": fine, **docs}


def rows(response):
    return [c.name for c in response.context["page_obj"].object_list]


def test_collections_lists_overdue_customers_with_reminder_and_penalties(client, user, book, today):
    client.force_login(user)
    response = client.get("/collections/")
    assert response.status_code == 200
    assert rows(response) == ["Garage Moreau", "Boulangerie Petit"]  # default: largest overdue first
    late = response.context["page_obj"].object_list[0]
    assert late.overdue_total == 2 * D("462.62")  # the penalty is due today, not overdue yet
    assert late.overdue_count == 2
    assert late.oldest_due == today - timedelta(days=50)
    assert (late.last_level_name, late.last_tone, late.last_dunned_on) == ("Final", "final", today)
    assert late.penalties_charged == D("40.00") and late.penalties_open == D("40.00")
    held = response.context["page_obj"].object_list[1]
    assert held.on_hold and held.last_level_name is None
    html = response.content.decode()
    assert f'href="/customers/{book["late"].pk}/"' in html
    assert "On hold" in html and "None yet" in html


def test_collections_filters_and_sorting(client, user, book, levels):
    client.force_login(user)
    assert rows(client.get("/collections/?currency=usd")) == ["Boulangerie Petit"]
    assert rows(client.get("/collections/?bucket=31_60")) == ["Garage Moreau", "Boulangerie Petit"]
    assert rows(client.get("/collections/?bucket=1_30")) == []
    assert rows(client.get(f"/collections/?level={levels[2].pk}")) == ["Garage Moreau"]
    assert rows(client.get("/collections/?level=none")) == ["Boulangerie Petit"]
    assert rows(client.get("/collections/?flag=on_hold")) == ["Boulangerie Petit"]
    assert rows(client.get("/collections/?sort=customer")) == ["Boulangerie Petit", "Garage Moreau"]
    assert rows(client.get("/collections/?sort=-customer")) == ["Garage Moreau", "Boulangerie Petit"]
    assert rows(client.get("/collections/?q=moreau")) == ["Garage Moreau"]
    invoicing.invoice_dispute_set(invoice=book["late10"], disputed=True, reason="Wrong quantity")
    response = client.get("/collections/?flag=disputed")
    assert rows(response) == ["Garage Moreau"] and "Disputed" in response.content.decode()
    # A stale or bad filter value is ignored, not an error.
    assert client.get("/collections/?level=9999&bucket=x&sort=nope").status_code == 200


def test_collections_empty_state(client, user, levels):
    client.force_login(user)
    response = client.get("/collections/")
    assert response.status_code == 200 and 'data-testid="empty-state"' in response.content.decode()
    response = client.get("/collections/?currency=JPY")
    assert "No overdue customers match these filters." in response.content.decode()


def test_collections_query_count_does_not_grow_with_customers(client, user, book, django_assert_max_num_queries):
    client.force_login(user)
    with django_assert_max_num_queries(8):
        response = client.get("/collections/")
    assert len(rows(response)) == 2


def test_customer_page_shows_reminders(client, user, book):
    client.force_login(user)
    html = client.get(f"/customers/{book['late'].pk}/").content.decode()
    assert 'data-testid="dunning-history"' in html
    assert book["late50"].number in html and "Final" in html and "E-mail" in html
    html = client.get(f"/customers/{book['fine'].pk}/").content.decode()
    assert "No reminder sent yet" in html


def test_dispute_toggle_on_the_invoice_page(client, user, book, today):
    client.force_login(user)
    invoice = book["late10"]
    assert 'data-testid="dispute-card"' in client.get(f"/invoices/{invoice.pk}/").content.decode()

    response = client.post(f"/invoices/{invoice.pk}/dispute/", {"disputed": "on", "reason": "  "}, follow=True)
    assert "Say what the customer disputes." in response.content.decode()
    assert not Invoice.objects.get(pk=invoice.pk).disputed

    response = client.post(f"/invoices/{invoice.pk}/dispute/", {"disputed": "on", "reason": "Damaged"}, follow=True)
    invoice.refresh_from_db()
    assert invoice.disputed and invoice.dispute_reason == "Damaged"
    assert "Resolve dispute" in response.content.decode()
    assert AuditEvent.objects.filter(action="invoice.disputed", object_id=invoice.pk, actor=user).exists()

    client.post(f"/invoices/{invoice.pk}/dispute/", {"disputed": ""})
    invoice.refresh_from_db()
    assert not invoice.disputed and invoice.dispute_reason == ""
    assert AuditEvent.objects.filter(action="invoice.dispute_resolved", object_id=invoice.pk).exists()


def test_a_paid_invoice_leaves_collections(client, user, book, today):
    client.force_login(user)
    payment_record(customer=book["held"], method="bank_transfer", amount=D("462.62"), currency="USD", received_on=today)
    assert rows(client.get("/collections/")) == ["Garage Moreau"]
    assert DunningNotice.objects.filter(customer=book["held"]).count() == 0


def test_dunning_history_is_read_in_a_fixed_number_of_queries(client, user, book, today, levels):
    # Several more reminders on the customer page cost no extra queries.
    client.force_login(user)
    url = f"/customers/{book['late'].pk}/"
    client.get(url)
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as before:
        client.get(url)
    for days in (1, 2, 3):
        DunningNotice.objects.create(
            customer=book["late"],
            as_of=today + timedelta(days=days),
            level=levels[0],
            tone="friendly",
            channel="email",
            currency="EUR",
            overdue_total=D("1"),
            subject="s",
            body="b",
        )
    with CaptureQueriesContext(connection) as after:
        response = client.get(url)
    assert response.content.decode().count("Friendly") >= 3
    assert len(after.captured_queries) == len(before.captured_queries)
