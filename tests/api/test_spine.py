"""The whole order-to-cash spine, driven only through the API, as an integrator would."""

from decimal import Decimal

import pytest

from billing.models import Customer
from invoicing.models import Invoice
from orders.models import Order
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db


def test_customer_to_cash_through_the_api(api, make_issued_invoice):
    def ok(response, code=200):
        assert response.status_code == code, response.content
        return response.json()

    rate = ok(api.post("/api/v1/tax-rates/", {"name": "VAT 20", "rate": "20.00"}, format="json"), 201)
    terms = ok(api.post("/api/v1/payment-terms/", {"name": "Net 14", "due_days": 14}, format="json"), 201)
    product = ok(
        api.post(
            "/api/v1/products/",
            {"sku": "SVC-1", "name": "Consulting hour", "unit": "hour", "unit_price": "120.00", "tax_rate": rate["id"]},
            format="json",
        ),
        201,
    )
    customer = ok(
        api.post(
            "/api/v1/customers/",
            {"name": "Initech", "email": "ap@initech.example", "currency": "USD", "payment_terms": terms["id"]},
            format="json",
        ),
        201,
    )
    # Another customer, in euros, with an invoice left open: it must not blur the dollar figures.
    make_issued_invoice(CustomerFactory(currency="EUR"))

    order = ok(
        api.post(
            "/api/v1/orders/",
            {
                "customer": customer["id"],
                "customer_reference": "PO-77",
                "lines": [{"product": product["id"], "quantity": "2.5"}],
            },
            format="json",
        ),
        201,
    )
    assert order["gross_total"] == "360.00"
    assert ok(api.post(f"/api/v1/orders/{order['id']}/confirm/"))["status"] == "confirmed"
    assert ok(api.post(f"/api/v1/orders/{order['id']}/fulfill/"))["status"] == "fulfilled"
    invoice = ok(api.post(f"/api/v1/orders/{order['id']}/invoice/"), 201)
    invoice = ok(api.post(f"/api/v1/invoices/{invoice['id']}/issue/"))
    assert invoice["status"] == "issued"
    assert invoice["balance"] == "360.00"

    kpis = ok(api.get("/api/v1/kpis/"))
    assert kpis["open_receivables"]["USD"] == "360.00"

    payment = ok(
        api.post(
            "/api/v1/payments/",
            {"customer": customer["id"], "method": "wire", "amount": "360.00", "currency": "USD", "reference": "W-1"},
            format="json",
        ),
        201,
    )
    assert payment["allocations"] == [
        {
            "invoice": invoice["id"],
            "invoice_number": invoice["number"],
            "amount": "360.00",
            "discount": "0.00",
            "reversed_at": None,
        }
    ]
    assert payment["unallocated_amount"] == "0.00"

    invoice = ok(api.get(f"/api/v1/invoices/{invoice['id']}/"))
    assert invoice["status"] == "paid"
    assert invoice["amount_paid"] == "360.00"
    assert invoice["balance"] == "0.00"
    assert ok(api.get(f"/api/v1/orders/{order['id']}/"))["status"] == "closed"

    kpis = ok(api.get("/api/v1/kpis/"))
    assert kpis["open_receivables"]["USD"] == "0.00"
    usd = next(row for row in kpis["currencies"] if row["currency"] == "USD")
    assert usd["open_receivables"] == "0.00"
    assert usd["dso"] == "0.0"
    assert kpis["open_receivables"]["EUR"] == "462.62"

    # What the API reported is what the database holds.
    assert Customer.objects.get(pk=customer["id"]).currency == "USD"
    assert Order.objects.get(pk=order["id"]).channel == "api"
    assert Invoice.objects.get(pk=invoice["id"]).amount_paid == Decimal("360.00")
