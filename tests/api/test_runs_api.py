"""Billing and penalty runs through the API: start one as of a date (202, then poll), list and
filter, and the refusals (a date after today, a malformed date, no token) as JSON that change
nothing."""

from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from invoicing.models import BillingRun, Invoice, InvoiceKind
from orders.models import Order
from payments.models import PenaltyRun
from tests.factories import CustomerFactory, PaymentTermsFactory

pytestmark = pytest.mark.django_db
D = Decimal


def test_a_billing_run_started_by_api_bills_and_reports(
    api, user, make_fulfilled_order, eager, django_capture_on_commit_callbacks
):
    yesterday = timezone.localdate() - timedelta(days=1)
    moment = timezone.make_aware(datetime.combine(yesterday, datetime.min.time()).replace(hour=12))
    for _ in range(2):
        Order.objects.filter(pk=make_fulfilled_order(CustomerFactory()).pk).update(fulfilled_at=moment)
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post("/api/v1/billing-runs/", {"as_of": f"{yesterday:%Y-%m-%d}"}, format="json")
    assert response.status_code == 202, response.json()
    body = response.json()
    assert (body["as_of"], body["total_groups"], body["started_by"]) == (f"{yesterday:%Y-%m-%d}", 2, user.username)
    polled = api.get(f"/api/v1/billing-runs/{body['id']}/").json()
    assert (polled["status"], polled["progress_percent"], polled["invoices_created"], polled["orders_billed"]) == (
        "done",
        100,
        2,
        2,
    )
    assert Invoice.objects.filter(kind=InvoiceKind.INVOICE).count() == 2
    listing = api.get("/api/v1/billing-runs/", {"status": "done"}).json()
    assert listing["count"] == 1 and listing["results"][0]["id"] == body["id"]
    assert api.get("/api/v1/billing-runs/", {"status": "running"}).json()["count"] == 0


def test_a_penalty_run_started_by_api_without_a_date_assesses_up_to_today(
    api, make_issued_invoice, eager, django_capture_on_commit_callbacks
):
    terms = PaymentTermsFactory(due_days=30, grace_days=5, annual_interest_rate=D("12.00"), fixed_fee=D("40.00"))
    make_issued_invoice(CustomerFactory(payment_terms=terms), issue_date=timezone.localdate() - timedelta(days=70))
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post("/api/v1/penalty-runs/", {}, format="json")
    assert response.status_code == 202, response.json()
    run = api.get(f"/api/v1/penalty-runs/{response.json()['id']}/").json()
    # Due 40 days ago: 462.62 x 12 % x 40 / 365 = 6.08 interest, plus the 40.00 fee.
    assert (run["as_of"], run["status"], run["penalty_invoices"]) == (f"{timezone.localdate():%Y-%m-%d}", "done", 1)
    assert (run["interest_total"], run["fee_total"]) == ("6.08", "40.00")
    assert api.get("/api/v1/penalty-runs/", {"as_of_after": "2026-01-01"}).json()["count"] == 1


@pytest.mark.parametrize("path", ["/api/v1/billing-runs/", "/api/v1/penalty-runs/"])
def test_refusals_are_json_with_field_details_and_start_nothing(api, anon, path):
    tomorrow = timezone.localdate() + timedelta(days=1)
    ahead = api.post(path, {"as_of": f"{tomorrow:%Y-%m-%d}"}, format="json")
    assert ahead.status_code == 400
    assert ahead.json()["details"] == {"as_of": [f"Choose {timezone.localdate():%Y-%m-%d} or an earlier date."]}
    for bad in ["2026-02-30", "yesterday", 20260101, None]:
        response = api.post(path, {"as_of": bad}, format="json")
        assert response.status_code == 400 and "as_of" in response.json()["details"], bad
    assert api.post(path, "not json", content_type="application/json").status_code == 400
    assert anon.post(path, {}, format="json").status_code in (401, 403)
    assert anon.get(path).status_code in (401, 403)
    assert api.get(f"{path}999999/").status_code == 404
    assert api.put(f"{path}1/", {}, format="json").status_code == 405
    assert api.delete(f"{path}1/").status_code == 405
    assert not BillingRun.objects.exists() and not PenaltyRun.objects.exists()


@pytest.mark.parametrize("path,model", [("/api/v1/billing-runs/", BillingRun), ("/api/v1/penalty-runs/", PenaltyRun)])
def test_run_lists_query_count_does_not_grow_with_runs(api, user, path, model, django_assert_max_num_queries):
    for day in range(1, 4):
        model.objects.create(as_of=date(2026, 3, day), started_by=user)
    with django_assert_max_num_queries(4):
        three = api.get(path).json()
    for day in range(4, 24):
        model.objects.create(as_of=date(2026, 3, day))
    with django_assert_max_num_queries(4):
        many = api.get(path).json()
    assert (three["count"], many["count"]) == (3, 23)
    assert many["results"][0]["as_of"] == "2026-03-23"  # newest first
