from datetime import date
from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction

from billing.errors import ValidationFailed
from invoicing.models import Invoice, InvoiceStatus
from orders.models import OrderStatus
from payments import services
from payments.models import Allocation, Payment
from tests.factories import CustomerFactory, PaymentTermsFactory

D = Decimal
pytestmark = pytest.mark.django_db


def _pay(customer, amount, **kwargs):
    kwargs.setdefault("method", "bank_transfer")
    kwargs.setdefault("currency", "EUR")
    return services.payment_record(customer=customer, amount=D(amount), **kwargs)


def test_full_payment_marks_invoice_paid_and_closes_order(customer, make_issued_invoice, user):
    invoice = make_issued_invoice(customer)
    payment = _pay(customer, "462.62", actor=user, reference="INV ref")
    invoice.refresh_from_db()
    assert (invoice.amount_paid, invoice.status, invoice.balance) == (D("462.62"), InvoiceStatus.PAID, D("0"))
    assert payment.number == f"PAY-{payment.pk:06d}"
    assert (payment.allocated_amount, payment.unallocated_amount) == (D("462.62"), D("0"))
    order = invoice.lines.first().order_line.order
    assert order.status == OrderStatus.CLOSED


def test_partial_payment_leaves_invoice_partially_paid(customer, make_issued_invoice):
    invoice = make_issued_invoice(customer)
    _pay(customer, "100.00")
    invoice.refresh_from_db()
    assert (invoice.status, invoice.balance) == (InvoiceStatus.PARTIALLY_PAID, D("362.62"))
    assert invoice.lines.first().order_line.order.status == OrderStatus.INVOICED


def test_without_allocations_oldest_due_first_and_the_rest_is_credit(customer, make_issued_invoice):
    newer = make_issued_invoice(customer, issue_date=date(2026, 3, 1))
    older = make_issued_invoice(customer, issue_date=date(2026, 1, 1))
    payment = _pay(customer, "1000.00")
    older.refresh_from_db()
    newer.refresh_from_db()
    assert older.status == newer.status == InvoiceStatus.PAID
    assert payment.unallocated_amount == D("74.76")  # 1000 - 2 x 462.62: customer credit

    third = make_issued_invoice(customer, issue_date=date(2026, 4, 1))
    partial = _pay(customer, "500.00")
    third.refresh_from_db()
    assert third.status == InvoiceStatus.PAID and partial.unallocated_amount == D("37.38")


def test_oldest_due_first_goes_by_due_date(make_issued_invoice):
    slow = PaymentTermsFactory(name="Net 90", due_days=90)
    customer = CustomerFactory(payment_terms=slow)
    later_due = make_issued_invoice(customer, issue_date=date(2026, 1, 1))  # due 2026-04-01
    customer.payment_terms = PaymentTermsFactory(name="Net 0", due_days=0)
    customer.save()
    earlier_due = make_issued_invoice(customer, issue_date=date(2026, 2, 1))  # due 2026-02-01
    _pay(customer, "100.00")
    assert Invoice.objects.get(pk=earlier_due.pk).amount_paid == D("100.00")
    assert Invoice.objects.get(pk=later_due.pk).amount_paid == D("0.00")


def test_explicit_allocation_across_invoices(customer, make_issued_invoice):
    a = make_issued_invoice(customer)
    b = make_issued_invoice(customer)
    payment = _pay(
        customer, "500.00", allocations=[{"invoice": b, "amount": D("400")}, {"invoice": a, "amount": D("50")}]
    )
    assert Invoice.objects.get(pk=a.pk).amount_paid == D("50.00")
    assert Invoice.objects.get(pk=b.pk).amount_paid == D("400.00")
    assert payment.unallocated_amount == D("50.00")
    assert sorted(Allocation.objects.filter(payment=payment).values_list("amount", flat=True)) == [D("50"), D("400")]


def test_over_allocation_is_refused_with_figures_and_saves_nothing(customer, make_issued_invoice):
    invoice = make_issued_invoice(customer)
    with pytest.raises(ValidationFailed) as exc:
        _pay(customer, "1000.00", allocations=[{"invoice": invoice, "amount": D("500.00")}])
    assert "Allocation of 500.00 to INV-" in exc.value.message and "balance of 462.62" in exc.value.message
    with pytest.raises(ValidationFailed, match=r"Allocations total 300\.00 but only 200\.00"):
        _pay(customer, "200.00", allocations=[{"invoice": invoice, "amount": D("300.00")}])
    assert not Payment.objects.exists() and not Allocation.objects.exists()
    invoice.refresh_from_db()
    assert invoice.amount_paid == D("0")


def test_allocation_to_another_customers_invoice_is_refused(customer, make_issued_invoice):
    other = make_issued_invoice(CustomerFactory())
    with pytest.raises(ValidationFailed, match="another customer"):
        _pay(customer, "10.00", allocations=[{"invoice": other, "amount": D("10")}])
    assert not Payment.objects.exists()


def test_method_outside_the_terms_is_recorded_but_flagged(make_issued_invoice):
    terms = PaymentTermsFactory(name="Transfer only", due_days=30, accepted_methods=["bank_transfer"])
    customer = CustomerFactory(payment_terms=terms)
    make_issued_invoice(customer)
    assert _pay(customer, "10.00", method="cash").method_accepted is False
    assert _pay(customer, "10.00", method="bank_transfer").method_accepted is True


@pytest.mark.parametrize("amount", ["0", "-5.00"])
def test_amount_must_be_positive(customer, amount):
    with pytest.raises(ValidationFailed):
        _pay(customer, amount)
    assert not Payment.objects.exists()


def test_database_refuses_over_allocation_even_without_the_service(customer, make_issued_invoice):
    invoice = make_issued_invoice(customer)
    payment = _pay(customer, "10.00")
    with pytest.raises(IntegrityError), transaction.atomic():
        Invoice.objects.filter(pk=invoice.pk).update(amount_paid=D("462.63"))
    with pytest.raises(IntegrityError), transaction.atomic():
        Payment.objects.filter(pk=payment.pk).update(allocated_amount=D("10.01"))
    with pytest.raises(IntegrityError), transaction.atomic():
        Payment.objects.filter(pk=payment.pk).update(refunded_amount=D("0.01"))
