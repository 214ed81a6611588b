"""seed_demo on PostgreSQL: a believable, consistent company made through the services, once."""

from datetime import date
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db.models import Count, F, Q, Sum
from django.utils import timezone

from billing.models import AuditEvent, Customer, PaymentTerms, TaxRate
from invoicing.models import DeliveryStatus, Invoice, InvoiceKind, InvoiceLine, InvoiceStatus, PdfStatus
from kpis.audit import run_audit
from orders.models import Order, OrderEvent, OrderStatus
from payments.models import Allocation, Payment, PenaltyAssessment

pytestmark = pytest.mark.django_db

# A fixed last day makes the history the same on every run.
UNTIL = date(2025, 11, 28)


def seed(**options) -> str:
    out = StringIO()
    call_command("seed_demo", stdout=out, **options)
    return out.getvalue()


def counts() -> dict[str, int]:
    models = [TaxRate, PaymentTerms, Customer, Order, Invoice, Payment, Allocation, AuditEvent, get_user_model()]
    return {m.__name__: m.objects.count() for m in models}


def test_seed_demo_makes_a_company_with_a_year_of_history():
    output = seed(customers=6, months=4, until=UNTIL)

    assert "Demo login: demo / demo" in output
    demo = get_user_model().objects.get(username="demo")
    assert demo.is_superuser and demo.is_staff and demo.check_password("demo")

    rates = {r.category: r for r in TaxRate.objects.all()}
    assert set(rates) == {"standard", "reduced", "zero", "exempt", "reverse_charge"}
    assert all(rates[c].rate == 0 for c in ("zero", "exempt", "reverse_charge"))
    assert rates["exempt"].legal_note and rates["reverse_charge"].legal_note
    late_fees = PaymentTerms.objects.get(name="2/10 Net 30")
    assert (late_fees.grace_days, late_fees.fixed_fee, late_fees.penalty_cap_percent) == (5, 40, 15)

    customers = Customer.objects.all()
    assert customers.count() == 6
    assert {c.currency for c in customers} >= {"EUR", "GBP", "USD"}
    assert customers.filter(billing_method="paper").exists()
    assert customers.exclude(billing_cycle="per_order").exists()
    assert customers.filter(credit_limit__isnull=False).exists()
    held = customers.get(on_hold=True)
    assert held.on_hold_reason
    assert all(c.contacts.exists() for c in customers)

    statuses = set(Invoice.objects.values_list("status", flat=True))
    assert {InvoiceStatus.ISSUED, InvoiceStatus.PARTIALLY_PAID, InvoiceStatus.PAID} <= statuses
    assert Invoice.objects.filter(status__in=["issued", "partially_paid"], due_date__lt=timezone.localdate()).exists()
    assert Invoice.objects.filter(issue_date__lte=UNTIL).count() == Invoice.objects.count()
    assert set(Order.objects.values_list("status", flat=True)) >= {
        OrderStatus.CLOSED,
        OrderStatus.INVOICED,
        OrderStatus.CONFIRMED,
        OrderStatus.CANCELLED,
    }
    assert Payment.objects.annotate(n=Count("allocations")).filter(n__gt=0).exists()
    assert Payment.objects.filter(allocated_amount__lt=F("amount")).exists(), "some money is left as credit"
    assert not Payment.objects.filter(received_on__gt=UNTIL).exists()
    # What is overdue past grace on the last day carries its late-payment penalty.
    penalties = Invoice.objects.filter(kind=InvoiceKind.PENALTY)
    assert penalties.exists() and set(penalties.values_list("issue_date", flat=True)) == {UNTIL}
    assert PenaltyAssessment.objects.count() >= penalties.count()
    # The render of every PDF was requested; the worker does it once the seeding commits.
    assert set(Invoice.objects.values_list("pdf_status", flat=True)) == {PdfStatus.PENDING}
    # History went out at the time: the worker delivers nothing but the last day's invoices.
    history = Invoice.objects.filter(issue_date__lt=UNTIL)
    assert set(history.filter(customer__billing_method="paper").values_list("delivery_status", flat=True)) == {
        DeliveryStatus.POSTED
    }
    assert set(history.filter(customer__billing_method="electronic").values_list("delivery_status", flat=True)) == {
        DeliveryStatus.SENT
    }
    assert not history.filter(delivered_at__date__lt=F("issue_date")).exists()


def test_seeded_documents_keep_the_invariants():
    seed(customers=6, months=4, until=UNTIL)

    assert run_audit() == [], "otc_audit finds every invariant holding"

    paid = dict(Allocation.objects.values_list("invoice").annotate(total=Sum("amount")).order_by())
    for invoice in Invoice.objects.annotate(lines_net=Sum("lines__net_amount")):
        assert invoice.net_total == invoice.lines_net
        assert invoice.gross_total == invoice.net_total + invoice.tax_total
        assert invoice.amount_paid == paid.get(invoice.pk, 0)
        expected = "paid" if invoice.balance == 0 else "partially_paid" if invoice.amount_paid else "issued"
        assert invoice.status == expected, invoice.number
        assert invoice.content_sha256 == invoice.fingerprint()
    for payment in Payment.objects.annotate(total=Sum("allocations__amount")):
        assert payment.allocated_amount == (payment.total or 0) <= payment.amount
    # Numbers are gapless per series and year and follow the issue dates.
    for series, year in Invoice.objects.values_list("series", "sequence_year").distinct():
        rows = list(Invoice.objects.filter(series=series, sequence_year=year).order_by("sequence_number"))
        assert [i.sequence_number for i in rows] == list(range(1, len(rows) + 1))
        assert [i.issue_date for i in rows] == sorted(i.issue_date for i in rows)
    # Orders that were invoiced are on exactly one invoice line each.
    billed = Order.objects.filter(status__in=["invoiced", "closed"])
    assert not billed.filter(lines__invoice_lines__isnull=True).exists()
    assert InvoiceLine.objects.filter(order_line__order__status__in=["draft", "confirmed", "fulfilled"]).count() == 0
    # The history reads as a history: steps carry the day they happened, not the day of seeding.
    assert not Order.objects.filter(Q(confirmed_at__date__gt=UNTIL) | Q(entry_started_at__date__gt=UNTIL)).exists()
    assert not Order.objects.filter(entry_started_at__date__lt=F("order_date")).exists()
    assert not OrderEvent.objects.filter(created_at__date__gt=UNTIL).exists()


def test_seed_demo_runs_once():
    seed(customers=3, months=2, until=UNTIL)
    before = counts()

    output = seed(customers=3, months=2, until=UNTIL)

    assert "already holds data" in output
    assert counts() == before


def test_seed_demo_refuses_a_future_end():
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="future"):
        seed(until=date(2999, 1, 1))
    assert Customer.objects.count() == 0


@pytest.mark.slow
def test_default_size_seeds_a_full_company():
    """The default demo (what `make start` seeds). How long it takes is printed by seed_demo and
    is not asserted here: speed is for benchmarks, not tests."""
    output = seed()

    assert "Seeded the demo company in" in output and "late-payment penalty invoices" in output
    assert Customer.objects.count() == 20
    assert Invoice.objects.count() > 250
    assert Payment.objects.count() > 200
