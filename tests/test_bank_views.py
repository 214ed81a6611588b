"""Bank pages through the browser's door (Django's test client): upload, statement, queue, match,
ignore, accounts; bad input is a form error and changes nothing."""

from datetime import date
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from billing.models import AuditEvent
from invoicing.models import Invoice, InvoiceStatus
from payments.models import BankAccount, BankLine, BankLineStatus, BankStatement, Payment
from tests.factories import CustomerFactory

DATA = Path(__file__).parent / "data"
ISSUED = date(2026, 11, 2)


@pytest.fixture
def signed_in(client, user):
    client.force_login(user)
    return client


@pytest.fixture
def account(db):
    return BankAccount.objects.create(name="Main account", iban="FR7630006000011234567890189", currency="EUR")


@pytest.fixture
def invoices(make_issued_invoice):
    dupont = CustomerFactory(name="Dupont SA", iban="DE89370400440532013000")
    martin = CustomerFactory(name="Martin et Fils SARL", iban="FR1420041010050500013M02606")
    return [make_issued_invoice(c, issue_date=ISSUED) for c in (dupont, dupont, martin)]


def _upload(client, account, name="camt053_sample.xml", raw=None):
    raw = raw if raw is not None else (DATA / name).read_bytes()
    return client.post(
        reverse("bank-statement-upload"),
        {"account": account.pk, "file": SimpleUploadedFile(name, raw, content_type="application/xml")},
        follow=True,
    )


def test_upload_match_queue_and_one_click(signed_in, account, invoices, django_assert_max_num_queries):
    response = _upload(signed_in, account)
    statement = BankStatement.objects.get()
    assert response.redirect_chain[-1][0] == statement.get_absolute_url()
    html = response.content.decode()
    assert "Imported 5 line(s): 2 posted, 2 waiting in the queue, 1 ignored." in html
    assert 'data-testid="count-matched">2<' in html

    with django_assert_max_num_queries(12):
        queue = signed_in.get(reverse("bank-queue"))
    page = queue.content.decode()
    suggested = BankLine.objects.get(status=BankLineStatus.SUGGESTED)
    unmatched = BankLine.objects.get(status=BankLineStatus.UNMATCHED)
    assert f'data-testid="match-{suggested.pk}"' in page and f'data-testid="match-{unmatched.pk}"' not in page
    assert "INV-2026-000003" in page and "Unknown Trading GmbH" in page

    response = signed_in.post(reverse("bank-line-match", args=[suggested.pk]), follow=True)
    assert "matched: payment PAY-" in response.content.decode()
    suggested.refresh_from_db()
    assert suggested.status == BankLineStatus.MATCHED
    assert Invoice.objects.get(pk=invoices[2].pk).status == InvoiceStatus.PAID
    # Clicking again (a second tab) posts nothing more.
    response = signed_in.post(reverse("bank-line-match", args=[suggested.pk]), follow=True)
    assert "only suggested or unmatched lines" in response.content.decode()
    assert Payment.objects.count() == 3


def test_same_file_again_says_so(signed_in, account, invoices):
    _upload(signed_in, account)
    response = _upload(signed_in, account)
    assert "This file was imported already" in response.content.decode()
    assert BankStatement.objects.count() == 1 and Payment.objects.count() == 2


@pytest.mark.parametrize("name", ["camt053_broken.xml", "camt053_bad_amount.xml"])
def test_bad_file_is_a_form_error(signed_in, account, name):
    response = _upload(signed_in, account, name)
    assert response.status_code == 200
    html = response.content.decode()
    assert "is-invalid" in html and ("nothing was imported" in html or "not well-formed" in html)
    assert BankStatement.objects.count() == 0


def test_csv_without_mapping_is_a_form_error(signed_in, account):
    response = _upload(signed_in, account, "csv_sample_semicolon.csv")
    assert "has no CSV column mapping yet" in response.content.decode()
    assert BankStatement.objects.count() == 0


def test_line_page_match_to_chosen_customer_and_ignore(signed_in, account, invoices, user):
    _upload(signed_in, account)
    line = BankLine.objects.get(status=BankLineStatus.UNMATCHED)
    url = reverse("bank-line-detail", args=[line.pk])
    assert signed_in.get(url).status_code == 200

    response = signed_in.post(url, {"action": "ignore", "reason": ""})
    assert response.status_code == 200 and "is-invalid" in response.content.decode()
    line.refresh_from_db()
    assert line.status == BankLineStatus.UNMATCHED

    dupont = invoices[0].customer
    # An invoice of another customer: a form error, nothing posted.
    response = signed_in.post(url, {"action": "match", "customer": dupont.pk, "invoices": [invoices[2].pk]})
    assert response.status_code == 200 and "is-invalid" in response.content.decode()
    assert Payment.objects.count() == 2

    response = signed_in.post(url, {"action": "match", "customer": dupont.pk}, follow=True)
    line.refresh_from_db()
    assert line.status == BankLineStatus.MATCHED and line.payment.customer == dupont
    assert AuditEvent.objects.filter(action="bank_line.matched", object_id=line.pk, actor=user).exists()

    other = BankLine.objects.get(status=BankLineStatus.SUGGESTED)
    signed_in.post(reverse("bank-line-detail", args=[other.pk]), {"action": "ignore", "reason": "Duplicate transfer"})
    other.refresh_from_db()
    assert other.status == BankLineStatus.IGNORED and "Duplicate transfer" in other.reason


def test_statement_progress_partial_polls_while_matching(signed_in, account):
    statement = BankStatement.objects.create(account=account, source="camt053", filename="x.xml", file_sha256="0" * 64)
    statement.total_lines, statement.processed_lines = 10, 4
    statement.save()
    response = signed_in.get(
        reverse("bank-statement-detail", args=[statement.pk]) + "?progress=1", HTTP_HX_REQUEST="true"
    )
    html = response.content.decode()
    assert 'hx-trigger="every 1s"' in html and "4 of 10 lines processed" in html and "40%" in html
    assert "HX-Refresh" not in response
    BankStatement.objects.filter(pk=statement.pk).update(status="done", processed_lines=10)
    done = signed_in.get(reverse("bank-statement-detail", args=[statement.pk]) + "?progress=1", HTTP_HX_REQUEST="true")
    assert done["HX-Refresh"] == "true" and 'hx-trigger="every 1s"' not in done.content.decode()


def test_account_form_validates_and_saves_the_mapping(signed_in, user):
    url = reverse("bank-account-create")
    bad = signed_in.post(url, {"name": "X", "iban": "not an iban", "currency": "EUR", "map_amount": "Betrag"})
    assert bad.status_code == 200 and "Give an IBAN" in bad.content.decode()
    assert "Say which column holds the booking date." in bad.content.decode()
    assert BankAccount.objects.count() == 0
    response = signed_in.post(
        url,
        {
            "name": "Sparkasse",
            "iban": "DE89 3704 0044 0532 0130 00",
            "currency": "eur",
            "map_date": "Buchungstag",
            "map_amount": "Betrag",
            "map_remittance": "Verwendungszweck",
            "decimal_separator": ",",
            "date_format": "%d.%m.%Y",
            "delimiter": ";",
            "header_rows": "1",
        },
    )
    assert response.status_code == 302
    account = BankAccount.objects.get()
    assert (account.iban, account.currency) == ("DE89370400440532013000", "EUR")
    assert account.csv_mapping == {
        "date": "Buchungstag",
        "amount": "Betrag",
        "remittance": "Verwendungszweck",
        "decimal_separator": ",",
        "date_format": "%d.%m.%Y",
        "delimiter": ";",
        "header_rows": 1,
    }
    assert AuditEvent.objects.filter(action="bank_account.created", object_id=account.pk).exists()
    for name in ("bank-statement-list", "bank-account-list", "bank-queue", "bank-statement-upload"):
        assert signed_in.get(reverse(name)).status_code == 200
