"""Dunning: reminder levels by days overdue, each level once per invoice, one consolidated reminder
per customer with the statement attached, paper reminders in the print batch, on-hold customers
and disputed invoices skipped, reminder fees within the penalty cap, two runs at once.

As of 2026-06-30 with levels at 7 (friendly), 21 (firm) and 45 (final) days, Net 30 terms:
  A due 06-25,  5 days late: below the first level, listed without a level
  B due 06-20, 10 days late: first reminder
  C due 06-05, 25 days late: second reminder
  D due 05-16, 45 days late: final notice (exactly on the boundary)
  E not yet due: not listed
"""

import io
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.db import IntegrityError, connection, transaction
from pypdf import PdfReader

from billing.errors import ValidationFailed
from billing.models import AuditEvent
from invoicing import delivery
from invoicing import services as invoicing
from invoicing.models import Invoice, InvoiceKind, PrintBatch, PrintBatchItem
from kpis.audit import run_audit
from payments import dunning, penalties
from payments.models import (
    DunningChannel,
    DunningItem,
    DunningLevel,
    DunningNotice,
    DunningNoticeStatus,
    DunningTone,
    PenaltyAssessment,
)
from tests.factories import CustomerFactory, PaymentTermsFactory

D = Decimal
AS_OF = date(2026, 6, 30)
pytestmark = pytest.mark.django_db


def _issued_due(make_issued_invoice, customer, due: date):
    return make_issued_invoice(customer, issue_date=due - timedelta(days=30))


@pytest.fixture
def levels(db):
    DunningLevel.objects.all().delete()
    body = "Dear {{ customer.name }},\n{{ invoice_table }}\nTotal {{ overdue_total }} {{ currency }}"
    return [
        DunningLevel.objects.create(
            name=name,
            days_overdue=days,
            tone=tone,
            subject_template=f"{name}: {{{{ overdue_total }}}}",
            body_template=body,
        )
        for name, days, tone in [
            ("Friendly", 7, DunningTone.FRIENDLY),
            ("Firm", 21, DunningTone.FIRM),
            ("Final", 45, DunningTone.FINAL),
        ]
    ]


@pytest.fixture
def terms(db):
    return PaymentTermsFactory(name="Net 30 dunning", due_days=30)


@pytest.fixture
def account(levels, terms, make_issued_invoice):
    customer = CustomerFactory(name="Garage Moreau", payment_terms=terms)
    docs = {
        key: _issued_due(make_issued_invoice, customer, due)
        for key, due in {
            "A": date(2026, 6, 25),
            "B": date(2026, 6, 20),
            "C": date(2026, 6, 5),
            "D": date(2026, 5, 16),
            "E": date(2026, 7, 10),
        }.items()
    }
    assert (AS_OF - docs["D"].due_date).days == 45
    return customer, docs


def test_one_consolidated_reminder_lists_every_overdue_invoice_at_its_level(account, levels):
    customer, docs = account
    mail.outbox.clear()
    result = dunning.dunning_run(as_of=AS_OF)

    assert len(result.notices) == 1
    notice = DunningNotice.objects.get(customer=customer)
    assert notice.status == DunningNoticeStatus.SENT and notice.channel == DunningChannel.EMAIL
    # The tone of the highest level listed.
    assert (notice.level, notice.tone) == (levels[2], DunningTone.FINAL)
    steps = {item.invoice_id: item.level.name for item in notice.items.select_related("level")}
    assert steps == {docs["B"].pk: "Friendly", docs["C"].pk: "Firm", docs["D"].pk: "Final"}
    # Listed: every overdue invoice (A below the first level too), not E (not due yet).
    assert notice.overdue_total == 4 * D("462.62")

    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == [customer.email]
    assert message.subject == "Final: 1,850.48"
    for key in "ABCD":
        assert docs[key].number in message.body
    assert docs["E"].number not in message.body
    [(name, pdf, mimetype)] = message.attachments
    assert name == f"statement-{customer.code}-2026-06-30.pdf" and mimetype == "application/pdf"
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)
    assert "STATEMENT OF ACCOUNT" in text and docs["D"].number in text
    assert AuditEvent.objects.filter(action="customer.dunning_notice", object_id=customer.pk).count() == 1
    assert AuditEvent.objects.filter(action="dunning_notice.sent", object_id=notice.pk).count() == 1


def test_each_level_is_sent_once_per_invoice_and_escalates_later(account, levels):
    customer, docs = account
    dunning.dunning_run(as_of=AS_OF)
    mail.outbox.clear()

    again = dunning.dunning_run(as_of=AS_OF)
    assert again.notices == [] and mail.outbox == []
    assert dunning.dunning_run(as_of=AS_OF + timedelta(days=1)).notices == []  # nothing reached a new level

    # 12 days later: A reaches 7 days (friendly), B 22 days (firm); C and D are still at their levels.
    later = AS_OF + timedelta(days=12)
    result = dunning.dunning_run(as_of=later)
    assert len(result.notices) == 1 and len(mail.outbox) == 1
    notice = DunningNotice.objects.get(pk=result.notices[0])
    assert {i.invoice_id: i.level.name for i in notice.items.select_related("level")} == {
        docs["A"].pk: "Friendly",
        docs["B"].pk: "Firm",
    }
    assert notice.tone == DunningTone.FINAL  # D, listed again, is at the final level
    assert DunningItem.objects.filter(invoice__customer=customer).count() == 5


def test_the_database_refuses_a_level_twice_for_an_invoice(account, levels):
    _customer, docs = account
    dunning.dunning_run(as_of=AS_OF)
    item = DunningItem.objects.get(invoice=docs["B"])
    with pytest.raises(IntegrityError), transaction.atomic():
        DunningItem.objects.create(
            notice=item.notice, invoice=docs["B"], level=item.level, days_overdue=10, balance=D("1")
        )


def test_paid_invoices_and_other_customers_are_not_reminded(account, levels):
    customer, docs = account
    from payments.services import payment_record

    payment_record(
        customer=customer,
        method="bank_transfer",
        amount=D("462.62"),
        currency="EUR",
        received_on=AS_OF,
        allocations=[{"invoice": docs["D"], "amount": D("462.62")}],
    )
    dunning.dunning_run(as_of=AS_OF)
    notice = DunningNotice.objects.get(customer=customer)
    assert not notice.items.filter(invoice=docs["D"]).exists()
    assert notice.tone == DunningTone.FIRM
    assert DunningNotice.objects.count() == 1


def test_customer_on_hold_is_skipped(account):
    customer, _docs = account
    customer.on_hold, customer.on_hold_reason = True, "Insolvency proceedings"
    customer.save()
    mail.outbox.clear()
    assert dunning.customers_due(as_of=AS_OF) == []
    assert dunning.dunning_notice_create(customer_id=customer.pk, as_of=AS_OF) is None
    assert dunning.dunning_run(as_of=AS_OF).notices == []
    assert DunningNotice.objects.count() == 0 and mail.outbox == []


def test_disputed_invoice_is_skipped_and_the_dispute_is_audited(account, user):
    customer, docs = account
    with pytest.raises(ValidationFailed):
        invoicing.invoice_dispute_set(invoice=docs["D"], disputed=True, reason="  ", actor=user)
    invoicing.invoice_dispute_set(invoice=docs["D"], disputed=True, reason="Goods damaged on arrival", actor=user)
    assert AuditEvent.objects.filter(action="invoice.disputed", object_id=docs["D"].pk).exists()

    mail.outbox.clear()
    dunning.dunning_run(as_of=AS_OF)
    notice = DunningNotice.objects.get(customer=customer)
    assert not notice.items.filter(invoice=docs["D"]).exists()
    assert docs["D"].number not in mail.outbox[0].body
    assert notice.tone == DunningTone.FIRM

    # Resolved: the invoice is reminded at its level on the next run.
    invoicing.invoice_dispute_set(invoice=docs["D"], disputed=False, actor=user)
    result = dunning.dunning_run(as_of=AS_OF + timedelta(days=1))
    assert [i.invoice_id for i in DunningNotice.objects.get(pk=result.notices[0]).items.all()] == [docs["D"].pk]


def test_only_an_issued_invoice_with_a_reason_can_be_disputed(account):
    _customer, docs = account
    with pytest.raises(IntegrityError), transaction.atomic():
        Invoice.objects.filter(pk=docs["A"].pk).update(disputed=True)  # no reason, no date


def test_paper_customer_reminder_joins_the_print_batch(levels, terms, make_issued_invoice):
    customer = CustomerFactory(payment_terms=terms, billing_method="paper")
    invoice = _issued_due(make_issued_invoice, customer, date(2026, 6, 1))
    mail.outbox.clear()
    result = dunning.dunning_run(as_of=AS_OF)

    notice = DunningNotice.objects.get(pk=result.notices[0])
    assert notice.channel == DunningChannel.PRINT and notice.status == DunningNoticeStatus.QUEUED_FOR_PRINT
    assert mail.outbox == []
    item = notice.print_batch_item
    assert item.invoice is None and item.customer == customer and item.batch.status == "open"
    # The day's batch closes with the reminder letter and the statement in its merged PDF.
    batch = delivery.print_batch_close(batch=item.batch)
    text = "".join(page.extract_text() for page in PdfReader(batch.pdf.open("rb")).pages)
    assert "Firm: 462.62" in text and invoice.number in text and "STATEMENT OF ACCOUNT" in text
    assert batch.page_count >= 2 and batch.invoice_count == 0
    delivery.print_batch_mark_posted(batch=batch)  # a batch with documents only is posted like any other
    assert PrintBatch.objects.get(pk=batch.pk).status == "posted"


def test_a_print_item_is_an_invoice_or_a_document_never_neither(levels, terms, make_issued_invoice):
    batch = PrintBatch.objects.create(date=AS_OF)
    with pytest.raises(IntegrityError), transaction.atomic():
        PrintBatchItem.objects.create(batch=batch)


def test_reminder_fee_is_a_penalty_invoice_within_the_cap(levels, make_issued_invoice):
    terms = PaymentTermsFactory(
        name="Net 30 capped", due_days=30, annual_interest_rate=D("10.00"), penalty_cap_percent=D("5.00")
    )
    customer = CustomerFactory(payment_terms=terms)
    invoice = _issued_due(make_issued_invoice, customer, date(2026, 5, 1))  # 60 days late
    levels[2].fee = D("40.00")  # cap: 5% of 462.62 = 23.13
    levels[2].save()
    dunning.dunning_run(as_of=AS_OF)

    item = DunningItem.objects.get(invoice=invoice)
    assert item.fee == D("23.13")
    pen = item.fee_invoice
    assert (pen.kind, pen.original_id, pen.gross_total, pen.status) == ("penalty", invoice.pk, D("23.13"), "issued")
    assert pen.number.startswith("PEN-")
    assert DunningNotice.objects.get().fee_total == D("23.13")
    # The cap is used up: the penalty run charges nothing more on it.
    penalties.assess_batch(invoice_ids=[invoice.pk], as_of=AS_OF)
    assessment = PenaltyAssessment.objects.get(invoice=invoice)
    assert assessment.total == 0 and assessment.capped
    assert Invoice.objects.filter(kind=InvoiceKind.PENALTY, original=invoice).count() == 1
    assert "penalties_within_cap" not in {f.check for f in run_audit()}
    # The nightly audit counts reminder fees against the cap: one over it is reported.
    DunningItem.objects.filter(pk=item.pk).update(fee=D("23.14"))
    [finding] = [f for f in run_audit() if f.check == "penalties_within_cap"]
    assert invoice.number in finding.rows[0]


def test_reminder_fee_without_cap_is_charged_once(levels, terms, make_issued_invoice):
    customer = CustomerFactory(payment_terms=terms)
    invoice = _issued_due(make_issued_invoice, customer, date(2026, 6, 15))  # 15 days: friendly
    levels[0].fee = D("5.00")
    levels[0].save()
    dunning.dunning_run(as_of=AS_OF)
    dunning.dunning_run(as_of=AS_OF + timedelta(days=2))
    assert Invoice.objects.filter(kind=InvoiceKind.PENALTY, original=invoice).count() == 1
    assert DunningItem.objects.get(invoice=invoice).fee_invoice.gross_total == D("5.00")


def test_a_broken_template_is_refused(levels):
    level = DunningLevel(name="Broken", days_overdue=90, subject_template="{% if %}", body_template="ok")
    with pytest.raises(ValidationError) as exc:
        level.save()
    assert "subject_template" in exc.value.message_dict
    assert not DunningLevel.objects.filter(days_overdue=90).exists()


def test_admin_shows_a_broken_template_as_a_form_error(client, user, levels):
    client.force_login(user)
    response = client.post(
        "/admin/payments/dunninglevel/add/",
        {
            "name": "Broken",
            "days_overdue": "90",
            "tone": "final",
            "subject_template": "ok",
            "body_template": "{{ customer.name|nosuchfilter }}",
            "fee": "0",
            "active": "on",
        },
    )
    assert response.status_code == 200
    assert "The template does not render" in response.content.decode()
    assert not DunningLevel.objects.filter(days_overdue=90).exists()


def test_seeded_default_levels_write_a_reminder(terms, make_issued_invoice):
    """The levels the migration seeds: 7 friendly, 21 firm, 45 final, and their templates render."""
    assert list(DunningLevel.objects.values_list("days_overdue", "tone")) == [
        (7, "friendly"),
        (21, "firm"),
        (45, "final"),
    ]
    customer = CustomerFactory(payment_terms=terms, legal_name="Garage Moreau SARL")
    invoice = _issued_due(make_issued_invoice, customer, date(2026, 5, 1))
    mail.outbox.clear()
    dunning.dunning_run(as_of=AS_OF)
    [message] = mail.outbox
    assert message.subject == "FINAL NOTICE: 462.62 EUR overdue"
    assert "Dear Garage Moreau SARL" in message.body and invoice.number in message.body


def test_run_dunning_command(account, capsys):
    call_command("run_dunning", "--as-of", "2026-06-30")
    out = capsys.readouterr().out
    assert "1 customer(s) due, 1 reminder(s) written; delivery: 1 sent" in out
    assert DunningNotice.objects.count() == 1


def test_a_failed_email_is_retried_by_the_next_run(account, monkeypatch):
    customer, _docs = account
    from django.core.mail.backends.locmem import EmailBackend

    def refuse(self, messages):
        raise ConnectionRefusedError("mail server down")

    with monkeypatch.context() as m:
        m.setattr(EmailBackend, "send_messages", refuse)
        dunning.dunning_run(as_of=AS_OF)
    notice = DunningNotice.objects.get(customer=customer)
    assert notice.status == DunningNoticeStatus.FAILED and "mail server down" in notice.error
    mail.outbox.clear()
    dunning.dunning_run(as_of=AS_OF + timedelta(days=1))
    notice.refresh_from_db()
    assert notice.status == DunningNoticeStatus.SENT and len(mail.outbox) == 1
    assert DunningNotice.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_two_runs_at_once_send_one_reminder(no_worker, levels, terms, make_issued_invoice):
    customer = CustomerFactory(payment_terms=terms)
    for due in (date(2026, 6, 20), date(2026, 5, 1)):
        _issued_due(make_issued_invoice, customer, due)
    mail.outbox.clear()
    barrier = threading.Barrier(2)

    def run(_):
        try:
            barrier.wait(timeout=10)
            return len(dunning.dunning_run(as_of=AS_OF).notices)
        finally:
            connection.close()

    with ThreadPoolExecutor(2) as pool:
        written = sorted(pool.map(run, range(2)))
    assert written == [0, 1]
    assert DunningNotice.objects.count() == 1
    assert DunningItem.objects.count() == 2
    assert len(mail.outbox) == 1


def test_daily_task_fans_out_to_batches_of_customers(account, levels):
    """The beat task and its batch task, run in-process (the real task code, no broker)."""
    from otc.celery import app
    from payments import tasks

    customer, _docs = account
    saved = app.conf.task_always_eager, app.conf.task_eager_propagates
    app.conf.task_always_eager = app.conf.task_eager_propagates = True
    try:
        mail.outbox.clear()
        assert tasks.dunning_run_daily(AS_OF.isoformat()) == 1
        assert tasks.dunning_run_batch(AS_OF.isoformat(), [customer.pk]) == 0  # redelivered: nothing more
    finally:
        app.conf.task_always_eager, app.conf.task_eager_propagates = saved
    assert DunningNotice.objects.filter(customer=customer).count() == 1 and len(mail.outbox) == 1


def test_a_reminder_that_cannot_be_written_skips_that_customer_only(levels, terms, make_issued_invoice, monkeypatch):
    bad = CustomerFactory(payment_terms=terms)
    good = CustomerFactory(payment_terms=terms)
    _issued_due(make_issued_invoice, bad, date(2026, 6, 20))  # friendly level
    _issued_due(make_issued_invoice, good, date(2026, 6, 1))  # firm level
    original = dunning._render

    def render(source, context):
        if context["customer"].pk == bad.pk:
            raise ValueError("a filter failed on this customer's data")
        return original(source, context)

    monkeypatch.setattr(dunning, "_render", render)
    result = dunning.dunning_run(as_of=AS_OF)
    assert result.failed == [bad.pk]
    assert [n.customer_id for n in DunningNotice.objects.all()] == [good.pk]
    assert not DunningItem.objects.filter(invoice__customer=bad).exists()  # nothing half-written
