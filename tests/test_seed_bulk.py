"""seed_demo --invoices: the bulk COPY path builds a large, consistent history that passes the audit."""

from datetime import date
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.models import Count, F, Sum

from billing.models import Customer
from invoicing.models import Invoice, InvoiceLine, NumberSequence
from kpis.audit import run_audit
from orders.models import Order, OrderLine
from payments.models import Allocation, Payment
from payments.services import payment_record
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db

UNTIL = date(2026, 11, 27)


def test_bulk_seed_of_2000_invoices_is_consistent_and_audit_clean(request, user):
    out = StringIO()
    call_command("seed_demo", invoices=2000, until=UNTIL, stdout=out)
    assert "Seeded the large history" in out.getvalue()

    assert Invoice.objects.count() == Order.objects.count() == 2000
    assert Customer.objects.count() == 40  # the 20 named demo customers and one per 50 invoices beyond
    assert 2000 <= InvoiceLine.objects.count() <= 6000
    assert InvoiceLine.objects.count() == OrderLine.objects.count()
    # Spread over 24 months of working days, none after the last day.
    first, last = sorted(Invoice.objects.values_list("issue_date", flat=True))[::1999]
    assert (UNTIL - first).days > 700 and last <= UNTIL
    assert not Invoice.objects.filter(issue_date__week_day__in=[1, 7]).exists()

    # A realistic mix: mostly paid, some partly paid, some still open and overdue.
    statuses = dict(Invoice.objects.values_list("status").annotate(n=Count("id")).order_by())
    assert statuses["paid"] > 1000 and statuses["partially_paid"] > 0 and statuses["issued"] > 50
    overdue = Invoice.objects.filter(status__in=["issued", "partially_paid"], due_date__lt=UNTIL)
    assert overdue.count() > 20
    late = Allocation.objects.filter(payment__received_on__gt=F("invoice__due_date")).count()
    assert late > 100, "some customers pay late"
    assert not Payment.objects.filter(received_on__gt=UNTIL).exists()
    assert Payment.objects.count() >= 1500 and Allocation.objects.count() == Payment.objects.count()
    # Paid invoices' orders are closed; the others wait as invoiced.
    assert not Order.objects.filter(status="closed", lines__invoice_lines__invoice__status__in=["issued"]).exists()
    assert set(Order.objects.values_list("status", flat=True)) == {"closed", "invoiced"}

    # Numbers: gapless per year, the sequences stand at the last one.
    for seq in NumberSequence.objects.all():
        numbers = sorted(
            Invoice.objects.filter(series=seq.series, sequence_year=seq.year).values_list("sequence_number", flat=True)
        )
        assert numbers == list(range(1, seq.last_number + 1))
        dates = list(
            Invoice.objects.filter(series=seq.series, sequence_year=seq.year)
            .order_by("sequence_number")
            .values_list("issue_date", flat=True)
        )
        assert dates == sorted(dates), "numbers follow the issue dates"

    # Fingerprints match what the model computes: the bulk rows are what issuing would have stored.
    sample = Invoice.objects.order_by("?")[:50]
    for invoice in sample:
        assert invoice.content_sha256 == invoice.fingerprint()
    assert (
        Payment.objects.aggregate(s=Sum("allocated_amount"))["s"] == Allocation.objects.aggregate(s=Sum("amount"))["s"]
    )

    # And the whole-database audit agrees: every invariant holds.
    assert run_audit() == []
    audit = StringIO()
    call_command("otc_audit", stdout=audit)
    assert "Audit clean" in audit.getvalue()

    # Seeding runs once.
    again = StringIO()
    call_command("seed_demo", invoices=10, stdout=again)
    assert "already holds data" in again.getvalue() and Invoice.objects.count() == 2000

    # Documents made afterwards by the services continue the numbers and the id sequences.
    last = NumberSequence.objects.get(series="INV", year=UNTIL.year).last_number
    newcomer = CustomerFactory(code="NEW-1")
    make_issued_invoice = request.getfixturevalue("make_issued_invoice")  # its tax rates after the seed's
    invoice = make_issued_invoice(newcomer, issue_date=UNTIL)
    assert invoice.number == f"INV-{UNTIL.year}-{last + 1:06d}"
    payment = payment_record(
        customer=newcomer, method="bank_transfer", amount=invoice.gross_total, currency="EUR", actor=user
    )
    assert payment.number == f"PAY-{payment.pk:06d}" and payment.pk > 1500
    assert run_audit() == []


def test_bulk_seed_refuses_bad_counts_and_non_postgresql(monkeypatch):
    with pytest.raises(CommandError, match="--invoices must be between"):
        call_command("seed_demo", invoices=0, stdout=StringIO())
    monkeypatch.setattr(connection, "vendor", "sqlite")
    with pytest.raises(CommandError, match="needs a PostgreSQL database"):
        call_command("seed_demo", invoices=1000, stdout=StringIO())
    assert not Invoice.objects.exists() and not Customer.objects.exists()
