"""Bank statements: reading CSV and CAMT.053, matching, posting, the queue, and what stops a line
from posting twice."""

import threading
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from django.db import connection

from billing.errors import InvalidTransition, ValidationFailed
from billing.models import AuditEvent
from invoicing.models import Invoice, InvoiceStatus
from kpis.audit import run_audit
from orders.models import Order, OrderStatus
from payments import bank
from payments.models import (
    Allocation,
    BankAccount,
    BankLine,
    BankLineStatus,
    BankStatement,
    BankStatementStatus,
    Payment,
    PaymentSource,
)
from tests.factories import CustomerFactory

DATA = Path(__file__).parent / "data"
ACCOUNT_IBAN = "FR7630006000011234567890189"
DUPONT_IBAN = "DE89370400440532013000"
MARTIN_IBAN = "FR1420041010050500013M02606"
ISSUED = date(2026, 11, 2)


def camt(entries: list[dict], iban: str = ACCOUNT_IBAN, stmt_id: str = "S-1") -> bytes:
    """A CAMT.053 file with one credit entry per dict (amount, text, ref; optional name, iban, date, ind)."""
    parts = []
    for e in entries:
        parts.append(
            f"""<Ntry><Amt Ccy="{e.get("ccy", "EUR")}">{e["amount"]}</Amt><CdtDbtInd>{e.get("ind", "CRDT")}</CdtDbtInd>
<Sts>BOOK</Sts><BookgDt><Dt>{e.get("date", "2026-11-20")}</Dt></BookgDt><AcctSvcrRef>{e["ref"]}</AcctSvcrRef>
<NtryDtls><TxDtls><Refs><EndToEndId>{e["ref"]}</EndToEndId></Refs><RltdPties><Dbtr><Nm>{e.get("name", "")}</Nm></Dbtr>
<DbtrAcct><Id><IBAN>{e.get("iban", "")}</IBAN></Id></DbtrAcct></RltdPties>
<RmtInf><Ustrd>{e.get("text", "")}</Ustrd></RmtInf></TxDtls></NtryDtls></Ntry>"""
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?><Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02">'
        f"<BkToCstmrStmt><Stmt><Id>{stmt_id}</Id><Acct><Id><IBAN>{iban}</IBAN></Id></Acct>"
        + "".join(parts)
        + "</Stmt></BkToCstmrStmt></Document>"
    ).encode()


@pytest.fixture
def account(db):
    return BankAccount.objects.create(
        name="Main account",
        iban=ACCOUNT_IBAN,
        currency="EUR",
        csv_mapping={
            "date": "Buchungstag",
            "amount": "Betrag",
            "remittance": "Verwendungszweck",
            "counterparty_name": "Name",
            "counterparty_iban": "IBAN",
            "reference": "Referenz",
            "decimal_separator": ",",
            "date_format": "%d.%m.%Y",
            "delimiter": ";",
            "header_rows": 1,
        },
    )


@pytest.fixture
def dupont(db):
    return CustomerFactory(name="Dupont SA", iban=DUPONT_IBAN)


@pytest.fixture
def martin(db):
    return CustomerFactory(name="Martin et Fils SARL", iban=MARTIN_IBAN)


@pytest.fixture
def invoices(make_issued_invoice, dupont, martin):
    """INV-2026-000001 and -000002 of Dupont, -000003 of Martin: 462.62 each."""
    return [make_issued_invoice(c, issue_date=ISSUED) for c in (dupont, dupont, martin)]


def _import(account, raw, user=None, name="statement.xml"):
    statement, created = bank.bank_statement_import(account=account, filename=name, raw=raw, actor=user)
    if created:
        bank.statement_match(statement_id=statement.pk, actor=user)
    statement.refresh_from_db()
    return statement, created


def _lines(statement):
    return list(statement.lines.order_by("line_no"))


def test_camt_sample_posts_suggests_ignores_and_queues(account, invoices, user):
    statement, created = _import(account, (DATA / "camt053_sample.xml").read_bytes(), user)
    assert created
    assert statement.status == BankStatementStatus.DONE
    assert (statement.total_lines, statement.processed_lines, statement.statement_ref) == (5, 5, "STMT-2026-11-30")
    one, two, three, four, five = _lines(statement)

    # 1: invoice number in the text, amount = balance: posted and allocated.
    assert one.status == BankLineStatus.MATCHED
    assert (one.counterparty_name, one.counterparty_iban, one.end_to_end_id) == (
        "DUPONT SA",
        DUPONT_IBAN,
        "E2E-DUPONT-1",
    )
    payment = one.payment
    assert (payment.source, payment.method, payment.amount, payment.received_on) == (
        PaymentSource.BANK_IMPORT,
        "bank_transfer",
        Decimal("462.62"),
        date(2026, 11, 20),
    )
    assert payment.number == f"PAY-{payment.pk:06d}"
    assert [(a.invoice.number, a.amount) for a in payment.allocations.all()] == [("INV-2026-000001", Decimal("462.62"))]
    inv1, inv2, inv3 = (Invoice.objects.get(pk=i.pk) for i in invoices)
    assert (inv1.status, inv1.amount_paid) == (InvoiceStatus.PAID, Decimal("462.62"))
    assert AuditEvent.objects.filter(action="payment.recorded", object_id=payment.pk).exists()
    assert AuditEvent.objects.filter(action="payment.allocated", object_id=payment.pk).exists()

    # 2: Martin recognised by IBAN, no invoice number: a suggestion naming the invoice that fits.
    assert two.status == BankLineStatus.SUGGESTED
    assert two.customer_id == inv3.customer_id
    assert two.suggested_invoice_ids == [inv3.pk]
    assert "INV-2026-000003" in two.reason and "Martin et Fils SARL" in two.reason and "IBAN" in two.reason
    assert inv3.status == InvoiceStatus.ISSUED

    # 3: a debit is listed, ignored.
    assert (three.status, three.is_credit, three.payment_id) == (BankLineStatus.IGNORED, False, None)

    # 4: RF creditor reference built on INV-2026-000002.
    assert four.status == BankLineStatus.MATCHED
    assert (inv2.status, inv2.amount_paid) == (InvoiceStatus.PAID, Decimal("462.62"))

    # 5: unknown payer, no invoice number: unmatched.
    assert five.status == BankLineStatus.UNMATCHED and five.customer_id is None
    assert bank.statement_counts(statement) == {"new": 0, "matched": 2, "suggested": 1, "unmatched": 1, "ignored": 1}
    assert Payment.objects.count() == 2
    # Posting in bulk keeps what payment_record keeps: the invariant audit finds nothing, and the
    # orders of the now paid invoices are closed.
    assert run_audit() == []
    assert set(
        Order.objects.filter(lines__invoice_lines__invoice__in=[inv1, inv2]).values_list("status", flat=True)
    ) == {OrderStatus.CLOSED}
    assert Order.objects.filter(lines__invoice_lines__invoice=inv3).distinct().get().status == OrderStatus.INVOICED


def test_same_file_twice_creates_nothing(account, invoices, user):
    raw = (DATA / "camt053_sample.xml").read_bytes()
    first, _ = _import(account, raw, user)
    counts = (
        BankStatement.objects.count(),
        BankLine.objects.count(),
        Payment.objects.count(),
        Allocation.objects.count(),
    )
    again, created = _import(account, raw, user, name="renamed.xml")
    assert not created and again.pk == first.pk
    assert counts == (
        BankStatement.objects.count(),
        BankLine.objects.count(),
        Payment.objects.count(),
        Allocation.objects.count(),
    )


def test_overlapping_file_stores_only_new_entries(account, invoices, user):
    _import(account, (DATA / "camt053_sample.xml").read_bytes(), user)
    raw = camt(
        [
            {"amount": "462.62", "ref": "BANK-0001", "text": "Invoice INV-2026-000001, thank you"},
            {"amount": "10.00", "ref": "BANK-0099", "text": "INV-2026-000003"},
        ],
        stmt_id="STMT-2",
    )
    statement, created = _import(account, raw, user)
    assert created
    assert (statement.total_lines, statement.duplicate_lines) == (1, 1)
    (line,) = _lines(statement)
    assert line.status == BankLineStatus.MATCHED and "Partial payment of INV-2026-000003" in line.reason
    assert Payment.objects.count() == 3


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ((DATA / "camt053_broken.xml").read_bytes(), "not well-formed XML"),
        ((DATA / "camt053_bad_amount.xml").read_bytes(), "bad entr"),
        (
            camt([{"amount": "1.00", "ref": "X"}], iban="DE02120300000000202051"),
            "is for account DE02120300000000202051",
        ),
        (b"<?xml version='1.0'?><Document><Other/></Document>", "not a CAMT.053"),
        (b"   ", "empty"),
        (
            b"Buchungstag;Betrag;Verwendungszweck;Name;IBAN;Referenz\n20.11.2026;12,00;x;y;;A\n2026-11-21;5,00;x;y;;B\n",
            "Row 3: date '2026-11-21' does not follow %d.%m.%Y",
        ),
        ("Buchungstag;Betrag\n20.11.2026;zwölf\n".encode(), "Column 'Verwendungszweck'"),
    ],
)
def test_bad_files_are_refused_and_store_nothing(account, raw, message):
    with pytest.raises(ValidationFailed) as e:
        bank.bank_statement_import(account=account, filename="bad", raw=raw)
    assert message in " ".join([e.value.message, *e.value.details["file"]])
    assert BankStatement.objects.count() == 0 and BankLine.objects.count() == 0


def test_csv_by_mapping_posts_full_and_partial_payments(account, invoices, user):
    statement, _ = _import(account, (DATA / "csv_sample_semicolon.csv").read_bytes(), user, "export.csv")
    one, two, three = _lines(statement)
    assert (one.booking_date, one.amount, one.counterparty_iban, one.entry_ref) == (
        date(2026, 11, 20),
        Decimal("462.62"),
        DUPONT_IBAN,
        "ref:R-1",
    )
    assert one.status == BankLineStatus.MATCHED
    assert (two.status, two.is_credit, two.amount) == (BankLineStatus.IGNORED, False, Decimal("1250.00"))
    assert three.status == BankLineStatus.MATCHED
    inv2 = Invoice.objects.get(pk=invoices[1].pk)
    assert (inv2.status, inv2.amount_paid) == (InvoiceStatus.PARTIALLY_PAID, Decimal("100.00"))
    assert run_audit() == []


def test_csv_with_credit_and_debit_columns_and_column_numbers(account):
    account.csv_mapping = {"date": "1", "credit": "2", "debit": "3", "remittance": "4", "header_rows": 0}
    account.save()
    raw = b'2026-11-20,"1,200.50",,INV-2026-000009\n2026-11-21,,99.00,fees\n'
    statement, _created = bank.bank_statement_import(account=account, filename="x.csv", raw=raw)
    one, two = _lines(statement)
    assert (one.amount, one.is_credit, two.amount, two.is_credit) == (
        Decimal("1200.50"),
        True,
        Decimal("99.00"),
        False,
    )


def test_ambiguous_amount_is_suggested_with_reason_and_matched_in_one_click(account, make_issued_invoice, martin, user):
    older = make_issued_invoice(martin, issue_date=date(2026, 10, 1))
    newer = make_issued_invoice(martin, issue_date=date(2026, 11, 1))
    raw = camt([{"amount": "462.62", "ref": "A1", "iban": MARTIN_IBAN, "name": "M. et F.", "text": "merci"}])
    statement, _ = _import(account, raw, user)
    (line,) = _lines(statement)
    assert line.status == BankLineStatus.SUGGESTED
    assert line.reason.startswith(
        f"Amount 462.62 matches 2 open invoices of Martin et Fils SARL (recognised by IBAN {MARTIN_IBAN}): "
    )
    assert older.number in line.reason and newer.number in line.reason
    assert Payment.objects.count() == 0

    line = bank.bank_line_match_suggestion(line=line, actor=user)
    assert line.status == BankLineStatus.MATCHED and line.matched_by == user
    assert [a.invoice_id for a in line.payment.allocations.all()] == [older.pk]
    assert Invoice.objects.get(pk=newer.pk).status == InvoiceStatus.ISSUED
    event = AuditEvent.objects.get(action="bank_line.matched", object_id=line.pk)
    assert event.actor == user and event.changes["invoices"] == [older.number]
    with pytest.raises(InvalidTransition):
        bank.bank_line_match_suggestion(line=line, actor=user)
    assert Payment.objects.count() == 1


def test_customer_recognised_by_name(account, make_issued_invoice, user):
    customer = CustomerFactory(name="Boulangerie Leroy SAS", iban="")
    invoice = make_issued_invoice(customer, issue_date=ISSUED)
    raw = camt([{"amount": "400.00", "ref": "N1", "name": "BOULANGERIE LEROY", "text": "acompte"}])
    statement, _ = _import(account, raw, user)
    (line,) = _lines(statement)
    assert line.status == BankLineStatus.SUGGESTED and line.customer_id == customer.pk
    assert "recognised by name 'BOULANGERIE LEROY'" in line.reason and "No open invoice" in line.reason
    line = bank.bank_line_match_suggestion(line=line, actor=user)
    assert Invoice.objects.get(pk=invoice.pk).amount_paid == Decimal("400.00")


def test_unmatched_line_matched_to_a_chosen_customer_remembers_the_iban(account, make_issued_invoice, user):
    customer = CustomerFactory(name="Nouveau client", iban="")
    invoice = make_issued_invoice(customer, issue_date=ISSUED)
    raw = camt([{"amount": "500.00", "ref": "U1", "iban": "AT611904300234573201", "name": "N.C.", "text": "?"}])
    statement, _ = _import(account, raw, user)
    (line,) = _lines(statement)
    assert line.status == BankLineStatus.UNMATCHED
    with pytest.raises(ValidationFailed):
        bank.bank_line_match_suggestion(line=line, actor=user)
    line = bank.bank_line_match(line=line, customer=customer, invoices=[invoice], actor=user)
    payment = line.payment
    assert (payment.allocated_amount, payment.unallocated_amount) == (Decimal("462.62"), Decimal("37.38"))
    customer.refresh_from_db()
    assert customer.iban == "AT611904300234573201"
    assert AuditEvent.objects.filter(action="customer.updated", object_id=customer.pk).exists()
    # The next payment from that account is recognised.
    statement, _ = _import(account, camt([{"amount": "1.00", "ref": "U2", "iban": "AT61 1904 3002 3457 3201"}]), user)
    assert _lines(statement)[0].customer_id == customer.pk


def test_match_refuses_an_invoice_of_another_customer(account, invoices, dupont, martin, user):
    raw = camt([{"amount": "10.00", "ref": "W1", "text": "?"}])
    statement, _ = _import(account, raw, user)
    (line,) = _lines(statement)
    with pytest.raises(ValidationFailed):
        bank.bank_line_match(line=line, customer=dupont, invoices=[invoices[2]], actor=user)
    line.refresh_from_db()
    assert line.status == BankLineStatus.UNMATCHED and Payment.objects.count() == 0


def test_ignore_needs_a_reason_and_is_audited(account, user):
    statement, _ = _import(account, camt([{"amount": "10.00", "ref": "I1", "text": "refund from supplier"}]), user)
    (line,) = _lines(statement)
    with pytest.raises(ValidationFailed):
        bank.bank_line_ignore(line=line, reason="  ", actor=user)
    line = bank.bank_line_ignore(line=line, reason="Supplier refund", actor=user)
    assert line.status == BankLineStatus.IGNORED and "Supplier refund" in line.reason
    assert AuditEvent.objects.get(action="bank_line.ignored", object_id=line.pk).changes["reason"] == "Supplier refund"
    with pytest.raises(InvalidTransition):
        bank.bank_line_ignore(line=line, reason="again", actor=user)


def test_amount_above_the_named_invoices_is_a_suggestion(account, invoices, user):
    raw = camt([{"amount": "500.00", "ref": "O1", "text": "INV-2026-000001"}])
    statement, _ = _import(account, raw, user)
    (line,) = _lines(statement)
    assert line.status == BankLineStatus.SUGGESTED
    assert line.reason == "Amount 500.00 is more than the 462.62 open on INV-2026-000001."


def test_two_invoices_named_with_their_sum_post_to_both(account, invoices, user):
    raw = camt([{"amount": "925.24", "ref": "S1", "text": "INV2026000001 + INV/2026/000002"}])
    statement, _ = _import(account, raw, user)
    (line,) = _lines(statement)
    assert line.status == BankLineStatus.MATCHED
    assert sorted(a.invoice_id for a in line.payment.allocations.all()) == [invoices[0].pk, invoices[1].pk]


def test_two_lines_of_one_file_never_settle_the_same_balance_twice(account, invoices, user):
    raw = camt(
        [
            {"amount": "462.62", "ref": "D1", "text": "INV-2026-000001"},
            {"amount": "462.62", "ref": "D2", "text": "INV-2026-000001 again"},
        ]
    )
    statement, _ = _import(account, raw, user)
    first, second = _lines(statement)
    assert first.status == BankLineStatus.MATCHED
    assert second.status == BankLineStatus.SUGGESTED and "INV-2026-000001 is not open" in second.reason
    assert Invoice.objects.get(pk=invoices[0].pk).amount_paid == Decimal("462.62")


def test_find_invoice_numbers():
    assert bank.find_invoice_numbers("Pay inv 2026 000123 and INV-2026-000124, inv-2026-000123") == [
        "INV-2026-000123",
        "INV-2026-000124",
    ]
    assert bank.find_invoice_numbers("RF67INV2026000002") == ["INV-2026-000002"]
    assert bank.find_invoice_numbers("RF00INV2026000002") == []  # bad check digits
    assert bank.find_invoice_numbers("INV-2026-0001234 order 2026000001") == []
    assert bank.rf_reference("INV2026000002") == "RF67INV2026000002"


@pytest.mark.parametrize(
    ("text", "sep", "expected"),
    [
        ("1.234,56", ",", "1234.56"),
        ("-1,234.56", ".", "-1234.56"),
        ("12.00-", ".", "-12.00"),
        ("1 000,5", ",", "1000.50"),
    ],
)
def test_parse_amount(text, sep, expected):
    assert bank.parse_amount(text, sep) == Decimal(expected)


@pytest.mark.parametrize("text", ["12.345", "abc", "NaN", ""])
def test_parse_amount_refuses(text):
    with pytest.raises(ValueError):
        bank.parse_amount(text)


# --- Races --------------------------------------------------------------------------------------


def _in_threads(target, n=2):
    errors, results = [], []
    barrier = threading.Barrier(n)

    def run(i):
        try:
            barrier.wait(timeout=10)
            results.append(target(i))
        except Exception as e:
            errors.append(e)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return results, errors


@pytest.mark.django_db(transaction=True)
def test_two_workers_matching_one_statement_post_each_line_once(make_issued_invoice, user):
    account = BankAccount.objects.create(name="Main", iban=ACCOUNT_IBAN, currency="EUR")
    customer = CustomerFactory(name="Racer", iban=DUPONT_IBAN)
    invoices = [make_issued_invoice(customer, issue_date=ISSUED) for _ in range(12)]
    entries = [{"amount": "462.62", "ref": f"R{i}", "text": inv.number} for i, inv in enumerate(invoices)]
    # Twelve more lines name the same invoices again: only one line per invoice may post.
    entries += [{"amount": "462.62", "ref": f"X{i}", "text": inv.number} for i, inv in enumerate(invoices)]
    statement, _ = bank.bank_statement_import(account=account, filename="race.xml", raw=camt(entries))

    _results, errors = _in_threads(lambda i: bank.statement_match(statement_id=statement.pk, batch=3))
    assert errors == []
    statement.refresh_from_db()
    assert (statement.status, statement.processed_lines, statement.total_lines) == ("done", 24, 24)
    lines = list(BankLine.objects.filter(statement=statement))
    matched = [line for line in lines if line.status == BankLineStatus.MATCHED]
    assert len(matched) == 12
    assert Payment.objects.count() == 12 == len({line.payment_id for line in matched})
    for invoice in Invoice.objects.filter(pk__in=[i.pk for i in invoices]):
        assert invoice.status == InvoiceStatus.PAID
        assert sum(a.amount for a in invoice.allocations.all()) == invoice.amount_paid == Decimal("462.62")
    assert run_audit() == []


@pytest.mark.django_db(transaction=True)
def test_same_file_uploaded_twice_at_once_is_stored_once():
    account = BankAccount.objects.create(name="Main", iban=ACCOUNT_IBAN, currency="EUR")
    raw = camt([{"amount": f"{i}.00", "ref": f"C{i}", "text": "x"} for i in range(1, 200)])
    results, errors = _in_threads(
        lambda i: bank.bank_statement_import(account=account, filename=f"f{i}.xml", raw=raw), n=3
    )
    assert errors == []
    assert len({s.pk for s, _ in results}) == 1 and sorted(c for _, c in results) == [False, False, True]
    assert BankStatement.objects.count() == 1 and BankLine.objects.count() == 199


@pytest.mark.django_db(transaction=True)
def test_one_click_match_twice_at_once_posts_once(make_issued_invoice, user):
    account = BankAccount.objects.create(name="Main", iban=ACCOUNT_IBAN, currency="EUR")
    customer = CustomerFactory(name="Clicker", iban=MARTIN_IBAN)
    make_issued_invoice(customer, issue_date=ISSUED)
    statement, _ = bank.bank_statement_import(
        account=account, filename="c.xml", raw=camt([{"amount": "462.62", "ref": "K1", "iban": MARTIN_IBAN}])
    )
    bank.statement_match(statement_id=statement.pk)
    line = BankLine.objects.get(statement=statement)
    assert line.status == BankLineStatus.SUGGESTED

    results, errors = _in_threads(lambda i: bank.bank_line_match_suggestion(line=line, actor=user))
    assert len(results) == 1 and len(errors) == 1 and isinstance(errors[0], InvalidTransition)
    assert Payment.objects.count() == 1


def test_stalled_statements_are_found_for_the_sweeper(account):
    from datetime import timedelta

    from django.utils import timezone

    statement, _ = bank.bank_statement_import(
        account=account, filename="s.xml", raw=camt([{"amount": "1.00", "ref": "Z"}])
    )
    assert list(bank.statements_stalled(minutes=10)) == []
    BankStatement.objects.filter(pk=statement.pk).update(created_at=timezone.now() - timedelta(minutes=11))
    assert list(bank.statements_stalled(minutes=10)) == [statement]
    bank.statement_match(statement_id=statement.pk)
    assert list(bank.statements_stalled(minutes=10)) == []
