"""KPIs through /api/v1/kpis/."""

from datetime import timedelta

import pytest
from django.utils import timezone

from payments.services import payment_record
from tests.factories import CustomerFactory

from .helpers import error_of

pytestmark = pytest.mark.django_db


def test_kpis_with_no_invoices_are_empty(api):
    body = api.get("/api/v1/kpis/").json()
    assert body["as_of"] == timezone.localdate().isoformat()
    assert body["dso_period_days"] == 90
    assert body["currencies"] == []
    assert body["open_receivables"] == {}
    assert body["dso"] == {}


def test_kpis_per_currency_with_overdue_and_dso(api, make_issued_invoice, user):
    eur, usd = CustomerFactory(currency="EUR"), CustomerFactory(currency="USD")
    today = timezone.localdate()
    make_issued_invoice(eur, issue_date=today - timedelta(days=45))  # due 30 days later: overdue
    make_issued_invoice(eur, issue_date=today)
    usd_invoice = make_issued_invoice(usd, issue_date=today)
    payment_record(customer=usd, method="wire", amount=usd_invoice.gross_total, currency="USD", actor=user)

    body = api.get("/api/v1/kpis/").json()
    assert body["currencies"] == [
        # 925.24 open over 925.24 of sales in 90 days: DSO 90.0
        {"currency": "EUR", "open_receivables": "925.24", "overdue_receivables": "462.62", "dso": "90.0"},
        {"currency": "USD", "open_receivables": "0.00", "overdue_receivables": "0.00", "dso": "0.0"},
    ]
    assert body["open_receivables"] == {"EUR": "925.24", "USD": "0.00"}
    assert body["overdue_receivables"] == {"EUR": "462.62", "USD": "0.00"}
    assert body["dso"] == {"EUR": "90.0", "USD": "0.0"}

    # Over a 30-day period only the newer EUR invoice counts as sales.
    assert api.get("/api/v1/kpis/?days=30").json()["dso"]["EUR"] == "60.0"


def test_dso_is_null_without_sales_in_the_period(api, make_issued_invoice):
    make_issued_invoice(CustomerFactory(), issue_date=timezone.localdate() - timedelta(days=200))
    body = api.get("/api/v1/kpis/").json()
    assert body["open_receivables"] == {"EUR": "462.62"}
    assert body["dso"] == {"EUR": None}


@pytest.mark.parametrize("query", ["days=0", "days=abc", "days=100000", "days=-5"])
def test_kpis_bad_period_is_400(api, query):
    response = api.get(f"/api/v1/kpis/?{query}")
    assert response.status_code == 400
    assert "days" in error_of(response)["details"]
