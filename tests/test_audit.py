"""The invariant audit is clean on data made through the services, and catches each kind of
corruption planted with raw SQL."""

from datetime import date
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection

from invoicing import services as invoicing
from invoicing.models import Invoice
from kpis.audit import run_audit
from payments import penalties
from payments.services import payment_record
from tests.factories import CustomerFactory, PaymentTermsFactory

D = Decimal
pytestmark = pytest.mark.django_db


@pytest.fixture
def books(customer, make_issued_invoice):
    """A small ledger: paid, partly paid, credited, penalised invoices and customer credit."""
    policy = PaymentTermsFactory(
        name="late", due_days=30, annual_interest_rate=D("12"), fixed_fee=D("40"), penalty_cap_percent=D("20")
    )
    late = CustomerFactory(payment_terms=policy)
    paid = make_issued_invoice(customer, issue_date=date(2026, 1, 5))
    partly = make_issued_invoice(customer, issue_date=date(2026, 2, 5))
    credited = make_issued_invoice(customer, issue_date=date(2026, 3, 5))
    overdue = make_issued_invoice(late, issue_date=date(2026, 1, 1))
    payment_record(customer=customer, method="card", amount=D("462.62"), currency="EUR")
    payment_record(customer=customer, method="card", amount=D("100.00"), currency="EUR")
    payment_record(customer=customer, method="card", amount=D("10.00"), currency="EUR", auto_allocate=False)
    invoicing.invoice_credit(
        invoice=credited, reason="partial return", lines=[{"line": credited.lines.get(position=2), "quantity": D("1")}]
    )
    penalties.assess_batch(invoice_ids=[overdue.pk], as_of=date(2026, 3, 1), issue_date=date(2026, 3, 1))
    return {"paid": paid, "partly": partly, "credited": credited, "overdue": overdue}


def _sql(statement, params=()):
    with connection.cursor() as cursor:
        if statement.startswith("ALTER"):
            # Planting a violation the database would refuse needs its constraint gone first.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute(statement, params)


def _checks():
    return {f.check: f.rows for f in run_audit()}


def test_clean_books_pass_and_the_command_says_so(books):
    assert run_audit() == []
    out = StringIO()
    call_command("otc_audit", stdout=out)
    assert "Audit clean" in out.getvalue()


@pytest.mark.parametrize(
    ("check", "corrupt"),
    [
        (
            "invoice_net_equals_lines",
            "UPDATE invoicing_invoiceline SET net_amount = net_amount + 1 "
            "WHERE id = (SELECT MIN(id) FROM invoicing_invoiceline WHERE invoice_id = %s)",
        ),
        (
            "invoice_tax_per_rate",
            "UPDATE invoicing_invoice SET tax_total = tax_total + 0.01, gross_total = gross_total + 0.01 WHERE id = %s",
        ),
        (
            "line_rounding",
            "UPDATE invoicing_invoiceline SET unit_price = unit_price + 0.01 "
            "WHERE id = (SELECT MIN(id) FROM invoicing_invoiceline WHERE invoice_id = %s)",
        ),
        ("amount_paid_equals_allocations", "UPDATE invoicing_invoice SET amount_paid = amount_paid - 1 WHERE id = %s"),
        ("status_agrees_with_balance", "UPDATE invoicing_invoice SET status = 'issued' WHERE id = %s"),
        (
            "numbers_unique",
            "UPDATE invoicing_invoice SET number = (SELECT number FROM invoicing_invoice "
            "WHERE number LIKE 'INV-%%' AND id <> %s ORDER BY id LIMIT 1), sequence_number = NULL "
            "WHERE id = %s",
        ),
        ("numbers_gapless", "UPDATE invoicing_invoice SET sequence_number = 99 WHERE id = %s"),
        (
            "issued_unchanged",
            "UPDATE invoicing_invoiceline SET description = 'tampered' "
            "WHERE id = (SELECT MIN(id) FROM invoicing_invoiceline WHERE invoice_id = %s)",
        ),
    ],
)
def test_each_corruption_of_an_invoice_is_caught_and_named(books, check, corrupt):
    target = books["paid"]
    if check == "numbers_unique":
        _sql("ALTER TABLE invoicing_invoice DROP CONSTRAINT invoicing_invoice_number_key")
    params = (target.pk, target.pk) if corrupt.count("%s") == 2 else (target.pk,)
    _sql(corrupt, params)
    found = _checks()
    assert check in found, found
    assert any(target.number in row or f"#{target.pk}" in row or "INV-" in row for row in found[check])


def test_payment_allocation_corruption_is_caught(books):
    _sql(
        "UPDATE payments_payment SET allocated_amount = 0 WHERE allocated_amount > 0 AND id = "
        "(SELECT MIN(id) FROM payments_payment)"
    )
    found = _checks()
    assert "payment_allocations_within_amount" in found
    assert found["payment_allocations_within_amount"][0].startswith("PAY-")
    assert "customer_balance_consistent" in found


def test_order_line_invoiced_twice_is_caught(books, customer):
    other = Invoice.objects.create(customer=customer, currency="EUR")
    _sql("DROP INDEX invoiceline_order_line_once")  # a partial unique constraint is an index in PostgreSQL
    _sql(
        "INSERT INTO invoicing_invoiceline (invoice_id, position, order_line_id, order_number, customer_reference,"
        " sku, description, quantity, unit, unit_price, discount_percent, tax_percent, tax_category, tax_note,"
        " net_amount) SELECT %s, 1, order_line_id, '', '', '', 'x', 1, 'unit', 1, 0, 0, 'standard', '', 1"
        " FROM invoicing_invoiceline WHERE order_line_id IS NOT NULL LIMIT 1",
        (other.pk,),
    )
    assert "order_line_invoiced_once" in _checks()


def test_penalty_corruptions_are_caught(books):
    overdue = books["overdue"]
    _sql("ALTER TABLE payments_penaltyassessment DROP CONSTRAINT penalty_once_per_invoice_and_period")
    _sql(
        "INSERT INTO payments_penaltyassessment (invoice_id, period_start, period_end, days, annual_rate, interest,"
        " fee, capped, waive_reason, created_at) SELECT invoice_id, period_start, period_end, days, annual_rate,"
        " 90, fee, capped, '', created_at FROM payments_penaltyassessment WHERE invoice_id = %s",
        (overdue.pk,),
    )
    found = _checks()
    assert {"penalty_period_once", "penalty_periods_do_not_overlap", "penalties_within_cap"} <= set(found)
    assert overdue.number in found["penalties_within_cap"][0]


def test_command_exits_1_and_lists_violations(books):
    _sql("UPDATE invoicing_invoice SET amount_paid = 0, status = 'issued' WHERE id = %s", (books["paid"].pk,))
    out = StringIO()
    with pytest.raises(SystemExit) as exc:
        call_command("otc_audit", stdout=out)
    assert exc.value.code == 1
    assert books["paid"].number in out.getvalue()
    assert "[amount_paid_equals_allocations]" in out.getvalue()


def test_nightly_task_counts_violations(books):
    from kpis.tasks import otc_audit_nightly

    assert otc_audit_nightly() == 0
    _sql("UPDATE invoicing_invoice SET amount_paid = 0, status = 'issued' WHERE id = %s", (books["paid"].pk,))
    assert otc_audit_nightly() >= 1
