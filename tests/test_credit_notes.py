from datetime import date
from decimal import Decimal

import pytest

from billing.errors import InvalidTransition, ValidationFailed
from invoicing import services
from invoicing.models import CreditApplication, Invoice, InvoiceKind, InvoiceLine, InvoiceStatus
from payments.services import payment_record

D = Decimal
pytestmark = pytest.mark.django_db


def test_full_credit_note_clears_an_unpaid_invoice(customer, make_issued_invoice, user):
    invoice = make_issued_invoice(customer, issue_date=date(2026, 6, 1))
    note = services.invoice_credit(invoice=invoice, reason="Goods returned", actor=user, issue_date=date(2026, 6, 5))
    assert note.kind == InvoiceKind.CREDIT_NOTE
    assert note.number == "CN-2026-000001"
    assert note.original_id == invoice.pk
    assert (note.net_total, note.tax_total, note.gross_total) == (D("397.30"), D("65.32"), D("462.62"))
    assert note.due_date == date(2026, 6, 5)
    invoice.refresh_from_db()
    assert (invoice.status, invoice.balance) == (InvoiceStatus.PAID, D("0"))
    assert CreditApplication.objects.get(credit_note=note).amount == D("462.62")
    assert note.status == InvoiceStatus.PAID  # fully applied, no credit left
    with pytest.raises(ValidationFailed, match="fully credited"):
        services.invoice_credit(invoice=invoice, reason="again")


def test_partial_credit_by_line_and_quantity(customer, make_issued_invoice):
    invoice = make_issued_invoice(customer)
    chairs = invoice.lines.get(position=1)  # 2 x 149.90 at 20 %
    note = services.invoice_credit(
        invoice=invoice, reason="One chair damaged", lines=[{"line": chairs, "quantity": D("1")}]
    )
    assert (note.net_total, note.tax_total, note.gross_total) == (D("149.90"), D("29.98"), D("179.88"))
    invoice.refresh_from_db()
    assert (invoice.status, invoice.balance) == (InvoiceStatus.PARTIALLY_PAID, D("282.74"))
    with pytest.raises(ValidationFailed, match="1.000 remains"):
        services.invoice_credit(invoice=invoice, reason="too many", lines=[{"line": chairs, "quantity": D("2")}])
    # Crediting the rest in full then leaves exactly nothing on that line.
    rest = services.invoice_credit(invoice=invoice, reason="rest")
    assert rest.net_total == D("247.40")  # 149.90 + 97.50
    invoice.refresh_from_db()
    assert invoice.balance == D("0") and invoice.status == InvoiceStatus.PAID


def test_credit_on_a_paid_invoice_stays_as_customer_credit(customer, make_issued_invoice):
    invoice = make_issued_invoice(customer)
    payment_record(customer=customer, method="card", amount=D("462.62"), currency="EUR")
    note = services.invoice_credit(invoice=invoice, reason="Loyalty rebate", amount=D("50.00"), tax_percent=D("20.00"))
    assert (note.net_total, note.tax_total, note.gross_total) == (D("50.00"), D("10.00"), D("60.00"))
    assert note.status == InvoiceStatus.ISSUED and note.balance == D("60.00")  # open credit for the customer
    assert not CreditApplication.objects.exists()


def test_amount_credit_needs_a_rate_on_a_mixed_rate_invoice_and_stays_within_it(customer, make_issued_invoice):
    invoice = make_issued_invoice(customer)
    with pytest.raises(ValidationFailed, match="several tax rates"):
        services.invoice_credit(invoice=invoice, reason="rebate", amount=D("10"))
    with pytest.raises(ValidationFailed, match="97.50 remains"):
        services.invoice_credit(invoice=invoice, reason="rebate", amount=D("100"), tax_percent=D("5.50"))
    with pytest.raises(ValidationFailed, match="no line at 7"):
        services.invoice_credit(invoice=invoice, reason="rebate", amount=D("1"), tax_percent=D("7"))
    assert not Invoice.objects.filter(kind=InvoiceKind.CREDIT_NOTE).exclude(status="draft").exists()


def test_drafts_and_credit_notes_are_not_credited(customer, make_fulfilled_order, make_issued_invoice):
    draft = services.invoice_create_from_orders(orders=[make_fulfilled_order(customer)])
    with pytest.raises(InvalidTransition):
        services.invoice_credit(invoice=draft, reason="x")
    note = services.invoice_credit(invoice=make_issued_invoice(customer), reason="x")
    with pytest.raises(ValidationFailed, match="cannot itself be credited"):
        services.invoice_credit(invoice=note, reason="x")
    with pytest.raises(ValidationFailed, match="reason"):
        services.invoice_credit(invoice=make_issued_invoice(customer), reason="")


def test_refused_credit_note_leaves_no_trace(customer, make_issued_invoice):
    invoice = make_issued_invoice(customer)
    line = invoice.lines.first()
    with pytest.raises(ValidationFailed):
        services.invoice_credit(invoice=invoice, reason="x", lines=[{"line": line, "quantity": D("99")}])
    assert Invoice.objects.filter(kind=InvoiceKind.CREDIT_NOTE).count() == 0


def test_crediting_the_rest_after_an_amount_credits_only_what_is_left_at_each_rate(customer, make_issued_invoice):
    invoice = make_issued_invoice(customer)  # chairs 299.80 at 20 %, books 97.50 at 5.5 %
    services.invoice_credit(invoice=invoice, reason="Rebate", amount=D("10.00"), tax_percent=D("5.50"))
    rest = services.invoice_credit(invoice=invoice, reason="Returned")
    # The chairs are credited line by line; the books' rate has 87.50 left, credited as an amount.
    assert [(line.credited_line_id is not None, line.tax_percent, line.net_amount) for line in rest.lines.all()] == [
        (True, D("20.00"), D("299.80")),
        (False, D("5.50"), D("87.50")),
    ]
    assert rest.net_total == D("387.30")
    invoice.refresh_from_db()
    assert invoice.balance == D("0")
    notes = Invoice.objects.filter(kind=InvoiceKind.CREDIT_NOTE)
    assert sum(n.gross_total for n in notes) == invoice.gross_total  # never more than the invoice
    with pytest.raises(ValidationFailed, match="fully credited"):
        services.invoice_credit(invoice=invoice, reason="again")
    from kpis.audit import run_audit

    assert run_audit() == []


def test_a_line_credit_cannot_take_what_an_amount_credit_took(customer, make_issued_invoice):
    invoice = make_issued_invoice(customer)
    books = invoice.lines.get(position=2)  # 3 x 32.50 at 5.5 %
    services.invoice_credit(invoice=invoice, reason="Rebate", amount=D("90.00"), tax_percent=D("5.50"))
    with pytest.raises(ValidationFailed, match="Only 7.50 is left to credit at 5.50%") as exc:
        services.invoice_credit(invoice=invoice, reason="x", lines=[{"line": books, "quantity": D("1")}])
    assert exc.value.details == {"lines": ["At 5.50%: at most 7.50 can be credited."]}
    assert Invoice.objects.filter(kind=InvoiceKind.CREDIT_NOTE).count() == 1


def test_the_quote_is_what_the_credit_note_becomes(customer, make_issued_invoice):
    invoice = make_issued_invoice(customer)
    chairs = invoice.lines.get(position=1)
    quote = services.invoice_credit_quote(invoice=invoice, lines=[{"line": chairs, "quantity": D("1")}])
    assert (quote.net, quote.tax, quote.gross, quote.applied, quote.left_as_credit) == (
        D("149.90"),
        D("29.98"),
        D("179.88"),
        D("179.88"),
        D("0"),
    )
    assert not Invoice.objects.filter(kind=InvoiceKind.CREDIT_NOTE).exists()  # a quote writes nothing
    note = services.invoice_credit(invoice=invoice, reason="x", lines=[{"line": chairs, "quantity": D("1")}])
    assert (note.net_total, note.tax_total, note.gross_total) == (quote.net, quote.tax, quote.gross)
    with pytest.raises(ValidationFailed, match="1.000 remains"):
        services.invoice_credit_quote(invoice=invoice, lines=[{"line": chairs, "quantity": D("2")}])


def test_the_audit_catches_a_rate_credited_beyond_its_taxable_amount(customer, make_issued_invoice):
    from kpis.audit import run_audit

    invoice = make_issued_invoice(customer)
    note = services.invoice_credit(invoice=invoice, reason="Rebate", amount=D("10.00"), tax_percent=D("5.50"))
    assert run_audit() == []
    InvoiceLine.objects.filter(invoice=note).update(net_amount=D("97.51"))  # behind the service's back
    found = {f.check: f.rows for f in run_audit()}
    assert found["credits_within_rates"] == [f"{invoice.number}: 5.50, 97.51, 97.50"]


def test_the_reason_stays_on_the_credit_note_and_is_part_of_its_content(customer, make_issued_invoice):
    from django.db import connection

    from kpis.audit import run_audit

    invoice = make_issued_invoice(customer)
    note = services.invoice_credit(invoice=invoice, reason="Goods returned")
    note.refresh_from_db()
    assert note.credit_reason == "Goods returned"
    assert note.content_sha256 == note.fingerprint()
    assert run_audit() == []
    with connection.cursor() as cursor:  # behind the services' back
        cursor.execute("UPDATE invoicing_invoice SET credit_reason = 'Price error' WHERE id = %s", [note.pk])
    assert note.number in " ".join(" ".join(f.rows) for f in run_audit())


def test_a_document_without_a_reason_keeps_the_fingerprint_it_had_before_the_field(customer, make_issued_invoice):
    """Documents issued before credit notes kept their reason were fingerprinted without the field."""
    import hashlib
    import json

    invoice = make_issued_invoice(customer)
    header = {
        k: v
        for k, v in invoice._content().items()
        if k not in {"content_sha256", "issued_by_id", "created_at", "credit_reason"}
    }
    lines = [
        {k: str(getattr(line, k)) for k in InvoiceLine.CONTENT_FIELDS}
        for line in invoice.lines.order_by("position", "id")
    ]
    payload = json.dumps({"header": header, "lines": lines}, sort_keys=True, default=str)
    assert invoice.fingerprint() == hashlib.sha256(payload.encode()).hexdigest() == invoice.content_sha256


def test_a_reason_past_the_limit_is_refused_and_nothing_is_credited(customer, make_issued_invoice):
    invoice = make_issued_invoice(customer)
    with pytest.raises(ValidationFailed, match="under 500 characters") as refused:
        services.invoice_credit(invoice=invoice, reason="x" * 501)
    assert refused.value.details == {"reason": ["At most 500 characters."]}
    assert not Invoice.objects.filter(kind=InvoiceKind.CREDIT_NOTE).exists()
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.ISSUED
