"""Voiding races on PostgreSQL: a void and a payment (or a credit note) on the same invoice at the
same moment, each thread on its own connection. One of them wins; never a void invoice with money
on it."""

import threading
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
from django.db import connection

from billing.errors import DomainError
from invoicing import services as invoicing
from invoicing.models import CreditApplication, Invoice, InvoiceKind, InvoiceStatus
from kpis.audit import run_audit
from payments import services as payments
from payments.models import Allocation

D = Decimal
# No worker may render or deliver these invoices meanwhile: a delivery in progress refuses a void
# for another reason than the race under test.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("no_worker")]
ROUNDS = 10


def _race(fns):
    barrier = threading.Barrier(len(fns))

    def run(fn):
        try:
            barrier.wait(timeout=30)
            return ("ok", fn())
        except DomainError as exc:
            return ("refused", exc.message)
        except Exception as exc:  # anything else would be a 500
            return ("error", repr(exc))
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=len(fns)) as pool:
        return list(pool.map(run, fns))


def _void(invoice):
    return lambda: invoicing.invoice_void(invoice=invoice, reason="never sent").status


def test_void_and_allocation_racing_never_leave_a_void_invoice_with_an_allocation(customer, make_issued_invoice):
    invoices = [make_issued_invoice(customer) for _ in range(ROUNDS)]

    def pay(invoice):
        return lambda: (
            payments.payment_record(
                customer=customer,
                method="card",
                amount=D("100.00"),
                currency="EUR",
                allocations=[{"invoice": invoice, "amount": D("100.00")}],
            ).number
        )

    fns = []
    for invoice in invoices:
        fns += [_void(invoice), pay(invoice)]
    results = _race(fns)
    assert "error" not in [r[0] for r in results], [r for r in results if r[0] == "error"]
    voids, pays = results[0::2], results[1::2]
    for invoice, void, paid in zip(invoices, voids, pays, strict=True):
        # Exactly one of the two wins on each invoice, and the invoice agrees with the winner.
        assert sorted([void[0], paid[0]]) == ["ok", "refused"], (void, paid)
        invoice.refresh_from_db()
        allocations = Allocation.objects.filter(invoice=invoice)
        if void[0] == "ok":
            assert invoice.status == InvoiceStatus.VOID and not allocations.exists()
            assert "takes no payment" in paid[1]
        else:
            assert invoice.status == InvoiceStatus.PARTIALLY_PAID and allocations.count() == 1
            assert "partially paid" in void[1]
    assert not Allocation.objects.filter(invoice__status=InvoiceStatus.VOID).exists()
    assert run_audit() == []


def test_void_and_credit_note_racing_never_leave_a_credited_void_invoice(customer, make_issued_invoice):
    invoices = [make_issued_invoice(customer) for _ in range(ROUNDS)]

    def credit(invoice):
        return lambda: (
            invoicing.invoice_credit(invoice=invoice, reason="rebate", amount=D("10.00"), tax_percent=D("20")).number
        )

    fns = []
    for invoice in invoices:
        fns += [_void(invoice), credit(invoice)]
    results = _race(fns)
    assert "error" not in [r[0] for r in results], [r for r in results if r[0] == "error"]
    for void, credited in zip(results[0::2], results[1::2], strict=True):
        assert sorted([void[0], credited[0]]) == ["ok", "refused"], (void, credited)
    assert not Invoice.objects.filter(status=InvoiceStatus.VOID, corrections__isnull=False).exists()
    assert not CreditApplication.objects.filter(invoice__status=InvoiceStatus.VOID).exists()
    notes = Invoice.objects.filter(kind=InvoiceKind.CREDIT_NOTE).count()
    assert notes == sum(1 for r in results[1::2] if r[0] == "ok")
    assert run_audit() == []


def test_void_and_print_batch_racing_never_print_a_void_invoice(
    make_issued_invoice, django_capture_on_commit_callbacks
):
    from invoicing import delivery
    from invoicing.models import PrintBatch, PrintBatchItem
    from tests.factories import CustomerFactory

    paper = CustomerFactory(billing_method="paper")
    with django_capture_on_commit_callbacks():  # PDFs stored, deliveries left to the race
        invoices = [make_issued_invoice(paper) for _ in range(ROUNDS)]
        for invoice in invoices:
            invoicing.invoice_render_pdf(invoice_id=invoice.pk)
    Invoice.objects.filter(pk__in=[i.pk for i in invoices]).update(delivery_status="none")

    fns = []
    for invoice in invoices:
        fns += [_void(invoice), lambda invoice=invoice: delivery.print_batch_add(invoice=invoice).pk]
    results = _race(fns)
    assert "error" not in [r[0] for r in results], [r for r in results if r[0] == "error"]
    for invoice, void, added in zip(invoices, results[0::2], results[1::2], strict=True):
        invoice.refresh_from_db()
        in_batch = PrintBatchItem.objects.filter(invoice=invoice).exists()
        if invoice.status == InvoiceStatus.VOID:
            # Voided first (the batch refused it), or queued first and taken out again by the void.
            assert void[0] == "ok" and not in_batch, (void, added)
        else:
            # Queued between the void's look and its lock: the void asks to try again.
            assert void[0] == "refused" and added[0] == "ok" and in_batch, (void, added)
    # No batch at all when every void won; otherwise its count agrees with its items.
    assert PrintBatch.objects.count() <= 1
    for batch in PrintBatch.objects.all():
        assert batch.invoice_count == PrintBatchItem.objects.filter(batch=batch).count()
    assert not PrintBatchItem.objects.filter(invoice__status=InvoiceStatus.VOID).exists()
    assert run_audit() == []


def test_void_and_penalty_run_racing_never_charge_a_void_invoice(make_issued_invoice):
    from datetime import date

    from payments import penalties
    from payments.models import PenaltyAssessment
    from tests.factories import CustomerFactory, PaymentTermsFactory

    terms = PaymentTermsFactory(name="Net 30 + 40 fee", due_days=30, grace_days=0, fixed_fee=D("40.00"))
    late = CustomerFactory(payment_terms=terms)
    invoices = [make_issued_invoice(late, issue_date=date(2026, 1, 1)) for _ in range(ROUNDS)]
    as_of = date(2026, 2, 10)

    fns = [_void(invoice) for invoice in invoices]
    fns.append(lambda: penalties.assess_batch(invoice_ids=[i.pk for i in invoices], as_of=as_of, issue_date=as_of))
    results = _race(fns)
    assert "error" not in [r[0] for r in results], [r for r in results if r[0] == "error"]
    assert results[-1][0] == "ok"
    for invoice, void in zip(invoices, results[:-1], strict=True):
        invoice.refresh_from_db()
        charged = PenaltyAssessment.objects.filter(invoice=invoice).exists()
        # Either voided before the run locked it (no charge), or charged first and the void refused.
        assert (invoice.status == InvoiceStatus.VOID) != charged, (void, charged)
        assert (void[0] == "ok") == (invoice.status == InvoiceStatus.VOID)
    assert not PenaltyAssessment.objects.filter(invoice__status=InvoiceStatus.VOID).exists()
    assert run_audit() == []
