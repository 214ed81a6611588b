"""The spine end to end with a real Celery worker process on Redis (not eager)."""

import io
import time
from decimal import Decimal

import pytest
from pypdf import PdfReader

from invoicing import services as invoicing
from invoicing.models import Invoice, InvoiceStatus, PdfStatus
from kpis import selectors as kpis
from orders import services as orders
from orders.models import OrderStatus
from payments import services as payments
from tests.factories import CustomerFactory, ProductFactory, TaxRateFactory, UserFactory

D = Decimal
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


def _wait_for_pdf(invoice: Invoice, timeout: float = 90) -> Invoice:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        invoice.refresh_from_db()
        if invoice.pdf_status in (PdfStatus.READY, PdfStatus.FAILED):
            return invoice
        time.sleep(0.25)
    raise AssertionError(f"PDF of {invoice} still {invoice.pdf_status} after {timeout} s")


def test_order_to_cash_with_a_real_worker(celery_worker_process):
    user = UserFactory(username="e2e")
    customer = CustomerFactory(name="Boulangerie Martin", legal_name="Boulangerie Martin SAS", currency="EUR")
    rate = TaxRateFactory(name="Standard 20% e2e", rate=D("20.00"))
    product = ProductFactory(sku="OVEN", name="Deck oven service", unit_price=D("1234.56"), tax_rate=rate)

    order = orders.order_create(
        customer=customer, actor=user, customer_reference="PO-4711", lines=[{"product": product, "quantity": D("2")}]
    )
    orders.order_confirm(order=order, actor=user)
    orders.order_fulfill(order=order, actor=user)
    draft = invoicing.invoice_create_from_orders(orders=[order], actor=user)
    invoice = invoicing.invoice_issue(invoice=draft, actor=user)
    assert invoice.pdf_status == PdfStatus.PENDING

    invoice = _wait_for_pdf(invoice)
    assert invoice.pdf_status == PdfStatus.READY, invoice.pdf_error
    text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(invoice.pdf.read())).pages)
    assert invoice.number in text
    assert "Boulangerie Martin SAS" in text
    assert "PO-4711" in text and order.number in text
    for figure in ("2469.12", "493.82", "2962.94"):  # net, tax, gross
        assert figure in text
    assert (invoice.net_total, invoice.tax_total, invoice.gross_total) == (D("2469.12"), D("493.82"), D("2962.94"))

    assert kpis.open_receivables()["EUR"] == D("2962.94")
    payments.payment_record(
        customer=customer,
        method="bank_transfer",
        amount=D("2962.94"),
        currency="EUR",
        reference=invoice.number,
        actor=user,
    )
    invoice.refresh_from_db()
    order.refresh_from_db()
    assert invoice.status == InvoiceStatus.PAID
    assert order.status == OrderStatus.CLOSED
    assert kpis.open_receivables().get("EUR", D("0")) == D("0")
