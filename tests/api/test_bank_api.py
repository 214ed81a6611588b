"""Bank statements through the API: upload, read, match and ignore; bad input is a 400 with the
one error shape and changes nothing."""

from datetime import date
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from invoicing.models import Invoice, InvoiceStatus
from payments.models import BankAccount, BankLine, BankLineStatus, BankStatement, Payment
from tests.factories import CustomerFactory

from .helpers import error_of

DATA = Path(__file__).parent.parent / "data"


@pytest.fixture
def account(db):
    return BankAccount.objects.create(name="Main account", iban="FR7630006000011234567890189", currency="EUR")


@pytest.fixture
def invoices(make_issued_invoice):
    dupont = CustomerFactory(name="Dupont SA", iban="DE89370400440532013000")
    martin = CustomerFactory(name="Martin et Fils SARL", iban="FR1420041010050500013M02606")
    return [make_issued_invoice(c, issue_date=date(2026, 11, 2)) for c in (dupont, dupont, martin)]


def upload(api, account, name="camt053_sample.xml"):
    raw = (DATA / name).read_bytes()
    return api.post(
        "/api/v1/bank-statements/",
        {"account": account.pk, "file": SimpleUploadedFile(name, raw)},
        format="multipart",
    )


def test_upload_matches_and_same_file_again_is_200(api, account, invoices):
    response = upload(api, account)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "done" and body["progress_percent"] == 100
    assert body["counts"] == {"new": 0, "matched": 2, "suggested": 1, "unmatched": 1, "ignored": 1}
    again = upload(api, account)
    assert again.status_code == 200 and again.json()["id"] == body["id"]
    assert BankStatement.objects.count() == 1 and Payment.objects.count() == 2

    listed = api.get("/api/v1/bank-statements/").json()
    assert [s["id"] for s in listed["results"]] == [body["id"]]
    queue = api.get("/api/v1/bank-lines/", {"status__in": "suggested,unmatched"}).json()
    assert sorted(line["status"] for line in queue["results"]) == ["suggested", "unmatched"]


def test_bad_file_is_400_and_stores_nothing(api, account):
    response = upload(api, account, "camt053_bad_amount.xml")
    assert response.status_code == 400
    body = error_of(response)
    assert body["code"] == "bad_file" and any("Entry 2" in e for e in body["details"]["file"])
    assert BankStatement.objects.count() == 0
    missing = api.post("/api/v1/bank-statements/", {"account": account.pk}, format="multipart")
    assert missing.status_code == 400 and "file" in error_of(missing)["details"]


def test_match_to_suggestion_then_refused_twice(api, account, invoices):
    upload(api, account)
    line = BankLine.objects.get(status=BankLineStatus.SUGGESTED)
    response = api.post(f"/api/v1/bank-lines/{line.pk}/match/", {}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "matched" and response.json()["payment_number"].startswith("PAY-")
    assert Invoice.objects.get(pk=invoices[2].pk).status == InvoiceStatus.PAID
    again = api.post(f"/api/v1/bank-lines/{line.pk}/match/", {}, format="json")
    assert again.status_code == 409 and error_of(again)


def test_match_to_chosen_customer_and_invoice_validation(api, account, invoices):
    upload(api, account)
    line = BankLine.objects.get(status=BankLineStatus.UNMATCHED)
    dupont = invoices[0].customer
    wrong = api.post(
        f"/api/v1/bank-lines/{line.pk}/match/",
        {"customer": dupont.pk, "invoices": [invoices[2].pk]},
        format="json",
    )
    assert wrong.status_code == 400 and "invoices" in error_of(wrong)["details"]
    unknown = api.post(f"/api/v1/bank-lines/{line.pk}/match/", {"customer": 999999}, format="json")
    assert unknown.status_code == 400 and "customer" in error_of(unknown)["details"]
    no_suggestion = api.post(f"/api/v1/bank-lines/{line.pk}/match/", {}, format="json")
    assert no_suggestion.status_code == 400
    assert Payment.objects.count() == 2
    ok = api.post(f"/api/v1/bank-lines/{line.pk}/match/", {"customer": dupont.pk}, format="json")
    assert ok.status_code == 200 and ok.json()["customer"] == dupont.pk


def test_ignore_needs_a_reason(api, account, invoices):
    upload(api, account)
    line = BankLine.objects.get(status=BankLineStatus.UNMATCHED)
    bad = api.post(f"/api/v1/bank-lines/{line.pk}/ignore/", {"reason": ""}, format="json")
    assert bad.status_code == 400 and "reason" in error_of(bad)["details"]
    ok = api.post(f"/api/v1/bank-lines/{line.pk}/ignore/", {"reason": "Internal transfer"}, format="json")
    assert ok.status_code == 200 and ok.json()["status"] == "ignored"


def test_lines_list_query_count_is_flat(api, account, invoices, django_assert_max_num_queries):
    upload(api, account)
    with django_assert_max_num_queries(6):
        response = api.get("/api/v1/bank-lines/")
    assert response.status_code == 200 and response.json()["count"] == 5
