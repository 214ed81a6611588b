"""Customer statements on a hand-built account with known answers.

As of 2026-06-30, Net 30 terms (due = issue + 30 days), every sale invoice 462.62:
  A issued 06-15, due 07-15, not yet due          current   462.62
  B issued 05-20, due 06-19, 11 days overdue      1-30      462.62
  PEN (fee on E) issued and due 06-09, 21 days    1-30       40.00
  C issued 04-20, due 05-20, 41 days, 100 paid    31-60     362.62
  D issued 03-10, due 04-09, 82 days              61-90     462.62
  E issued 01-05, due 02-04, 146 days             over 90   462.62
                                                  open    2253.10
Left out: F (paid in full), G (issued after the date), another customer's invoice.
Credit: 50.00 of a payment never allocated + a 120.00 credit note on the paid F = 170.00
(a payment received after the date is left out). Net balance 2253.10 - 170.00 = 2083.10.
"""

import io
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from decimal import Decimal
from unittest import mock

import pytest
from django.core import mail
from django.core.mail.backends.locmem import EmailBackend
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from pypdf import PdfReader

from billing.models import Contact
from invoicing import services as invoicing
from invoicing.models import InvoiceKind
from payments import penalties, statements, tasks
from payments.models import StatementDelivery
from payments.services import payment_record
from tests.factories import CustomerFactory, PaymentTermsFactory

D = Decimal
AS_OF = date(2026, 6, 30)
pytestmark = pytest.mark.django_db


@pytest.fixture
def eager_tasks():
    """Run Celery tasks in-process (the real task code, without a broker) for the test."""
    from otc.celery import app

    saved = app.conf.task_always_eager, app.conf.task_eager_propagates
    app.conf.task_always_eager = app.conf.task_eager_propagates = True
    yield
    app.conf.task_always_eager, app.conf.task_eager_propagates = saved


@pytest.fixture
def terms(db):
    return PaymentTermsFactory(name="Net 30, fee 40", due_days=30, fixed_fee=D("40.00"))


def pay(customer, amount, on, invoice=None, auto_allocate=True):
    allocations = [{"invoice": invoice, "amount": D(amount)}] if invoice else None
    return payment_record(
        customer=customer,
        method="bank_transfer",
        amount=D(amount),
        currency="EUR",
        received_on=on,
        allocations=allocations,
        auto_allocate=auto_allocate,
    )


@pytest.fixture
def account(terms, make_issued_invoice):
    customer = CustomerFactory(name="Garage Moreau", legal_name="Garage Moreau SARL", payment_terms=terms)

    def issue(day):
        return make_issued_invoice(customer, issue_date=day)

    docs = {
        "A": issue(date(2026, 6, 15)),
        "B": issue(date(2026, 5, 20)),
        "C": issue(date(2026, 4, 20)),
        "D": issue(date(2026, 3, 10)),
        "E": issue(date(2026, 1, 5)),
        "F": issue(date(2026, 2, 1)),
        "G": issue(date(2026, 7, 2)),
    }
    penalties.assess_batch(invoice_ids=[docs["E"].pk], as_of=date(2026, 6, 9), issue_date=date(2026, 6, 9))
    docs["PEN"] = customer.invoices.get(kind=InvoiceKind.PENALTY)
    pay(customer, "100.00", date(2026, 6, 1), invoice=docs["C"])
    pay(customer, "462.62", date(2026, 3, 1), invoice=docs["F"])
    docs["CN"] = invoicing.invoice_credit(
        invoice=docs["F"], reason="Goodwill", amount=D("100.00"), tax_percent=D("20.00"), issue_date=date(2026, 6, 2)
    )
    docs["credit"] = pay(customer, "50.00", date(2026, 6, 20), auto_allocate=False)
    pay(customer, "30.00", date(2026, 7, 5), auto_allocate=False)  # after the date
    docs["other"] = make_issued_invoice(CustomerFactory(payment_terms=terms), issue_date=date(2026, 5, 1))
    return customer, docs


def test_open_items_and_aging_have_the_known_answer(account):
    customer, docs = account
    statement = statements.statement_build(customer=customer, as_of=AS_OF)
    assert [(i.number, i.balance, i.days_overdue) for i in statement.items] == [
        (docs["E"].number, D("462.62"), 146),
        (docs["D"].number, D("462.62"), 82),
        (docs["C"].number, D("362.62"), 41),
        (docs["PEN"].number, D("40.00"), 21),
        (docs["B"].number, D("462.62"), 11),
        (docs["A"].number, D("462.62"), 0),
    ]
    assert statement.aging == {
        "current": D("462.62"),
        "days_1_30": D("502.62"),
        "days_31_60": D("362.62"),
        "days_61_90": D("462.62"),
        "days_over_90": D("462.62"),
    }
    assert statement.open_total == D("2253.10") == sum(statement.aging.values())
    assert statement.open_total == sum(i.balance for i in statement.items)


def test_unapplied_credit_and_net_balance(account):
    customer, docs = account
    statement = statements.statement_build(customer=customer, as_of=AS_OF)
    assert [(c.kind, c.number, c.unapplied) for c in statement.credits] == [
        ("payment", docs["credit"].number, D("50.00")),
        ("credit_note", docs["CN"].number, D("120.00")),
    ]
    assert statement.credit_total == D("170.00")
    assert statement.net_balance == D("2083.10")


def test_aging_bucket_boundaries(terms, make_issued_invoice):
    customer = CustomerFactory(payment_terms=terms)
    for days_overdue in (0, 30, 31, 60, 61, 90, 91):
        due = date.fromordinal(AS_OF.toordinal() - days_overdue)
        invoice = make_issued_invoice(customer, issue_date=date.fromordinal(due.toordinal() - 30))
        assert invoice.due_date == due
    statement = statements.statement_build(customer=customer, as_of=AS_OF)
    assert [i.days_overdue for i in statement.items] == [91, 90, 61, 60, 31, 30, 0]
    one, two = D("462.62"), D("925.24")
    assert list(statement.aging.values()) == [one, one, two, two, one]
    assert statement.open_total == D("3238.34")


def test_a_customer_with_nothing_open_has_an_empty_statement(terms):
    statement = statements.statement_build(customer=CustomerFactory(payment_terms=terms), as_of=AS_OF)
    assert statement.items == [] and statement.credits == []
    assert statement.open_total == statement.credit_total == statement.net_balance == D("0")
    assert set(statement.aging.values()) == {D("0")}


def test_statement_pdf_shows_the_customer_and_the_totals(account):
    customer, docs = account
    data = statements.statement_pdf(customer, AS_OF)
    text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)
    assert "Garage Moreau SARL" in text and customer.code in text
    assert "2026-06-30" in text
    for figure in ("2253.10", "502.62", "362.62", "170.00", "2083.10"):
        assert figure in text, figure
    for key in ("A", "B", "C", "D", "E", "PEN", "CN"):
        assert docs[key].number in text
    assert docs["F"].number not in text  # paid: not an open item
    assert docs["G"].number not in text


def test_monthly_statements_go_once_to_electronic_customers_with_open_items(
    account, terms, make_issued_invoice, eager_tasks, mailoutbox
):
    customer, docs = account
    Contact.objects.create(customer=customer, name="Lea", email="lea@moreau.example")
    Contact.objects.create(customer=customer, name="Max", email="max@moreau.example", receives_invoices=False)
    paper = CustomerFactory(billing_method="paper", payment_terms=terms)
    make_issued_invoice(paper, issue_date=date(2026, 6, 1))
    settled = CustomerFactory(payment_terms=terms)
    paid = make_issued_invoice(settled, issue_date=date(2026, 6, 1))
    pay(settled, "462.62", date(2026, 6, 5), invoice=paid)

    tasks.statements_send_monthly.apply(kwargs={"as_of": AS_OF.isoformat()})
    tasks.statements_send_monthly.apply(kwargs={"as_of": AS_OF.isoformat()})  # a rerun sends nothing

    # The account's customer and the other electronic customer with an open invoice; not the paper
    # customer, not the one who paid everything; and nobody twice.
    by_customer = {m.to[0]: m for m in mailoutbox}
    assert set(by_customer) == {customer.email, docs["other"].customer.email}
    assert len(mailoutbox) == StatementDelivery.objects.count() == 2
    assert paper.email not in by_customer and settled.email not in by_customer
    message = by_customer[customer.email]
    assert message.to == [customer.email, "lea@moreau.example"]
    assert "2083.10" in message.body
    [(name, pdf, mimetype)] = message.attachments
    assert name == f"statement-{customer.code}-2026-06-30.pdf" and mimetype == "application/pdf"
    assert "2253.10" in "".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf)).pages)
    delivery = StatementDelivery.objects.get(customer=customer)
    assert (delivery.period, delivery.open_total, delivery.credit_total) == (date(2026, 6, 1), D("2253.10"), D("170"))


def test_one_statement_delivery_per_customer_and_month_in_the_database(terms):
    customer = CustomerFactory(payment_terms=terms)
    row = {"as_of": AS_OF, "open_total": D("1"), "credit_total": D("0"), "currency": "EUR", "sent_at": timezone.now()}
    StatementDelivery.objects.create(customer=customer, period=date(2026, 6, 1), **row)
    with pytest.raises(IntegrityError), transaction.atomic():
        StatementDelivery.objects.create(customer=customer, period=date(2026, 6, 1), **row)
    with pytest.raises(IntegrityError), transaction.atomic():
        StatementDelivery.objects.create(customer=customer, period=date(2026, 7, 15), **row)


@pytest.mark.django_db(transaction=True)
def test_two_workers_sending_the_same_statement_at_once_send_it_once(eager_tasks, terms, make_issued_invoice):
    customer = CustomerFactory(payment_terms=terms)
    make_issued_invoice(customer, issue_date=date(2026, 6, 1))  # in-process: rendered and e-mailed
    mail.outbox.clear()
    original = EmailBackend.send_messages

    def slow_send(self, messages):
        time.sleep(0.5)  # the second worker arrives while the first is sending
        return original(self, messages)

    barrier = threading.Barrier(2)

    def send(_):
        try:
            barrier.wait(timeout=10)
            return statements.statement_send(customer=customer, as_of=AS_OF) is not None
        finally:
            connection.close()

    with mock.patch.object(EmailBackend, "send_messages", slow_send), ThreadPoolExecutor(2) as pool:
        outcomes = sorted(pool.map(send, range(2)))
    assert outcomes == [False, True]
    assert len(mail.outbox) == 1
    assert StatementDelivery.objects.filter(customer=customer).count() == 1
