"""Penalty runs on the database, hand-computed. The invoice: 462.62 issued 2026-01-01, Net 30
(due 2026-01-31), 12 % p.a. after 5 days' grace, fixed fee 40.00."""

import threading
from datetime import date
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import IntegrityError, connection, transaction

from invoicing.models import Invoice, InvoiceKind, InvoiceStatus
from kpis.audit import run_audit
from payments import penalties
from payments.models import PenaltyAssessment, PenaltyRun, PenaltyRunStatus
from payments.services import payment_record
from tests.factories import CustomerFactory, PaymentTermsFactory

D = Decimal


@pytest.fixture
def late_customer(db):
    policy = PaymentTermsFactory(
        name="Net 30, 12% after 5 days",
        due_days=30,
        grace_days=5,
        annual_interest_rate=D("12.00"),
        fixed_fee=D("40.00"),
    )
    return CustomerFactory(payment_terms=policy)


@pytest.fixture
def overdue(late_customer, make_issued_invoice):
    invoice = make_issued_invoice(late_customer, issue_date=date(2026, 1, 1))
    assert invoice.due_date == date(2026, 1, 31)
    return invoice


def assess(as_of, ids=None):
    ids = ids if ids is not None else list(penalties.candidates(as_of=as_of).values_list("pk", flat=True))
    return penalties.assess_batch(invoice_ids=ids, as_of=as_of, issue_date=as_of)


def pay(customer, amount, on):
    return payment_record(customer=customer, method="bank_transfer", amount=D(amount), currency="EUR", received_on=on)


def penalty_invoices():
    return Invoice.objects.filter(kind=InvoiceKind.PENALTY).order_by("sequence_number")


@pytest.mark.django_db
def test_grace_then_first_assessment_then_rerun(overdue):
    assert assess(date(2026, 2, 5)) == (0, 0, D(0), D(0))
    assessments, invoices, interest, fees = assess(date(2026, 2, 6))
    assert (assessments, invoices, interest, fees) == (1, 1, D("0.91"), D("40.00"))  # 462.62 x 6 x 12 % / 365
    pen = penalty_invoices().get()
    assert pen.number == "PEN-2026-000001"
    assert (pen.gross_total, pen.tax_total, pen.status, pen.original_id) == (D("40.91"), D("0"), "issued", overdue.pk)
    assert [line.net_amount for line in pen.lines.order_by("position")] == [D("0.91"), D("40.00")]
    assert "2026-02-01 to 2026-02-06, 6 days at 12.00% p.a." in pen.lines.first().description
    assert pen.content_sha256 == pen.fingerprint()
    # A rerun the same day finds nothing to do.
    assert not penalties.candidates(as_of=date(2026, 2, 6)).exists()
    assert assess(date(2026, 2, 6), ids=[overdue.pk]) == (0, 0, D(0), D(0))
    assert penalty_invoices().count() == 1


@pytest.mark.django_db
def test_second_month_with_a_partial_payment_then_paid(late_customer, overdue):
    assess(date(2026, 2, 6))
    pay(late_customer, "200.00", date(2026, 2, 15))
    # 8 days on 462.62 + 14 days on 262.62 = 7,377.64 x 12 % / 365 = 2.4255
    assert assess(date(2026, 2, 28))[2:] == (D("2.43"), D("0"))
    pay(late_customer, "262.62", date(2026, 3, 10))
    overdue.refresh_from_db()
    assert overdue.status == InvoiceStatus.PAID
    # Paid on 10 March: 9 days on 262.62 = 0.7771, still charged although the principal is paid.
    assert assess(date(2026, 3, 31))[2] == D("0.78")
    assert not penalties.candidates(as_of=date(2026, 4, 30)).exists()
    periods = list(PenaltyAssessment.objects.values_list("period_start", "period_end"))
    assert periods == [
        (date(2026, 2, 1), date(2026, 2, 6)),
        (date(2026, 2, 7), date(2026, 2, 28)),
        (date(2026, 3, 1), date(2026, 3, 31)),
    ]
    assert [p.number for p in penalty_invoices()] == ["PEN-2026-000001", "PEN-2026-000002", "PEN-2026-000003"]
    assert run_audit() == []


@pytest.mark.django_db
def test_cap_reached(make_issued_invoice):
    policy = PaymentTermsFactory(
        name="capped",
        due_days=30,
        grace_days=0,
        annual_interest_rate=D("12"),
        fixed_fee=D("40"),
        penalty_cap_percent=D("10.00"),
    )  # cap 46.26
    invoice = make_issued_invoice(CustomerFactory(payment_terms=policy), issue_date=date(2026, 1, 1))
    assess(date(2026, 2, 6))  # 40.91
    assert assess(date(2026, 3, 31))[2] == D("5.35")  # 53 days would be 8.06; 46.26 - 40.91 = 5.35
    assert PenaltyAssessment.objects.get(period_end=date(2026, 3, 31)).capped
    assert not penalties.candidates(as_of=date(2026, 4, 30)).filter(pk=invoice.pk).exists()
    assert sum(p.gross_total for p in penalty_invoices()) == D("46.26")


@pytest.mark.django_db
def test_penalties_never_accrue_penalties_and_neutral_terms_charge_nothing(overdue, make_issued_invoice):
    assess(date(2026, 2, 6))
    neutral = make_issued_invoice(CustomerFactory(), issue_date=date(2026, 1, 1))  # no interest, no fee
    ids = set(penalties.candidates(as_of=date(2026, 6, 30)).values_list("pk", flat=True))
    assert ids == {overdue.pk}
    assert neutral.pk not in ids


@pytest.mark.django_db
def test_waive_credits_the_penalty_invoice_and_is_audited(overdue, user):
    from billing.models import AuditEvent

    assess(date(2026, 2, 6))
    assessment = PenaltyAssessment.objects.get()
    penalties.penalty_waive(assessment=assessment, reason="Goodwill", actor=user)
    pen = assessment.penalty_invoice
    pen.refresh_from_db()
    assert pen.status == InvoiceStatus.PAID and pen.corrections.get().gross_total == D("40.91")
    assert AuditEvent.objects.filter(action="penalty.waived", actor=user).exists()


@pytest.mark.django_db
def test_one_assessment_per_invoice_and_period_is_enforced_by_the_database(overdue):
    assess(date(2026, 2, 6))
    with pytest.raises(IntegrityError), transaction.atomic():
        PenaltyAssessment.objects.create(
            invoice=overdue,
            period_start=date(2026, 2, 1),
            period_end=date(2026, 2, 6),
            days=6,
            annual_rate=D("12"),
            interest=D("1"),
            fee=D("0"),
        )


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_runs_charge_once(late_customer, make_issued_invoice):
    invoices = [make_issued_invoice(late_customer, issue_date=date(2026, 1, 1)) for _ in range(10)]
    ids = [i.pk for i in invoices]
    barrier = threading.Barrier(2)
    results = []

    def work():
        barrier.wait()
        try:
            results.append(penalties.assess_batch(invoice_ids=ids, as_of=date(2026, 2, 6), issue_date=date(2026, 2, 6)))
        finally:
            connection.close()

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(r[1] for r in results) == [0, 10]
    assert PenaltyAssessment.objects.count() == 10
    assert sorted(penalty_invoices().values_list("sequence_number", flat=True)) == list(range(1, 11))
    assert run_audit() == []


@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
def test_assess_penalties_command_waits_for_the_real_worker(celery_worker_process, late_customer, make_issued_invoice):
    for _ in range(3):
        make_issued_invoice(late_customer, issue_date=date(2026, 1, 1))
    out = StringIO()
    call_command("assess_penalties", "--as-of", "2026-02-06", stdout=out)
    assert "3 assessment(s), 3 penalty invoice(s), interest 2.73, fees 120.00" in out.getvalue()
    out = StringIO()
    call_command("assess_penalties", "--as-of", "2026-02-06", stdout=out)
    assert "0 candidate invoice(s)" in out.getvalue()
    assert PenaltyRun.objects.count() == 2


@pytest.mark.django_db
def test_a_failing_batch_is_reported_and_the_run_still_finishes(overdue, late_customer, make_issued_invoice):
    broken = make_issued_invoice(late_customer, issue_date=date(2026, 1, 1))
    Invoice.objects.filter(pk=broken.pk).update(
        terms_snapshot={**broken.terms_snapshot, "annual_interest_rate": "twelve"}
    )
    run = PenaltyRun.objects.create(as_of=date(2026, 2, 6), total_batches=2, candidates=2)
    penalties.run_batch(run_id=run.pk, invoice_ids=[broken.pk])
    penalties.run_batch(run_id=run.pk, invoice_ids=[overdue.pk])
    run.refresh_from_db()
    assert run.status == "done"
    assert run.errors == [{"invoices": [broken.pk, broken.pk], "error": run.errors[0]["error"]}]
    assert "InvalidOperation" in run.errors[0]["error"]
    assert run.penalty_invoices == 1  # the healthy batch was charged


@pytest.mark.django_db
def test_penalty_pdfs_are_queued_in_chunks_and_a_chunk_renders_each(
    late_customer, make_issued_invoice, django_capture_on_commit_callbacks, monkeypatch
):
    from invoicing import tasks

    for _ in range(3):
        make_issued_invoice(late_customer, issue_date=date(2026, 1, 1))
    monkeypatch.setattr(tasks, "PDF_CHUNK", 2)
    sent = []
    monkeypatch.setattr(tasks.invoice_render_pdfs, "delay", lambda ids: sent.append(ids))
    with django_capture_on_commit_callbacks(execute=True):
        assert assess(date(2026, 3, 1))[1] == 3
    penalty_ids = list(penalty_invoices().values_list("pk", flat=True))
    # Three penalty invoices, chunks of two: two messages, not three.
    assert sent == [penalty_ids[:2], penalty_ids[2:]]

    tasks.invoice_render_pdfs(sent[0])  # run here, by the real renderer
    rendered = Invoice.objects.filter(pk__in=sent[0])
    assert {i.pdf_status for i in rendered} == {"ready"}
    assert all(i.pdf_sha256 and i.pdf.size > 1000 for i in rendered)
    assert Invoice.objects.get(pk=sent[1][0]).pdf_status == "pending"


@pytest.mark.django_db
def test_an_invoice_failing_in_a_chunk_goes_on_to_its_own_task(late_customer, make_issued_invoice, monkeypatch):
    from invoicing import services, tasks

    first, second = (make_issued_invoice(late_customer, issue_date=date(2026, 1, 1)) for _ in range(2))
    real = services.invoice_render_pdf

    def render(*, invoice_id):
        if invoice_id == first.pk:
            raise OSError("disk full")
        return real(invoice_id=invoice_id)

    monkeypatch.setattr(services, "invoice_render_pdf", render)
    retried = []
    monkeypatch.setattr(tasks.invoice_render_pdf, "delay", lambda pk: retried.append(pk))
    tasks.invoice_render_pdfs([first.pk, second.pk])
    assert retried == [first.pk]
    assert Invoice.objects.get(pk=second.pk).pdf_status == "ready"


@pytest.mark.django_db
def test_staff_waive_a_penalty_from_the_invoice_page(overdue, user, client):
    """The overdue invoice's page lists its penalties; a waiver needs a reason, then a credit note
    cancels the penalty invoice and the page shows who waived it and why."""
    from billing.models import AuditEvent

    client.force_login(user)
    assess(date(2026, 2, 6))
    assessment = PenaltyAssessment.objects.get()
    pen = assessment.penalty_invoice
    page = client.get(overdue.get_absolute_url())
    assert page.status_code == 200
    text = page.content.decode()
    assert 'data-testid="penalties-card"' in text and pen.number in text and "40.91" in text

    refused = client.post(f"/penalties/{assessment.pk}/waive/", {"reason": "  "}, follow=True)
    assert "Say why the penalty is waived" in refused.content.decode()
    assessment.refresh_from_db()
    assert assessment.waived_at is None and not pen.corrections.exists()

    done = client.post(f"/penalties/{assessment.pk}/waive/", {"reason": "Bank delay", "back": "penalty"}, follow=True)
    assert done.redirect_chain[-1][0] == pen.get_absolute_url()
    assert f"{pen.number} is cancelled by a credit note" in done.content.decode()
    assessment.refresh_from_db()
    pen.refresh_from_db()
    assert (assessment.waive_reason, assessment.waived_by) == ("Bank delay", user)
    assert pen.status == InvoiceStatus.PAID and pen.corrections.get().gross_total == D("40.91")
    assert AuditEvent.objects.filter(action="penalty.waived").count() == 1
    shown = client.get(overdue.get_absolute_url()).content.decode()
    assert "Waived" in shown and "Bank delay" in shown and 'data-testid="waive-button"' not in shown

    again = client.post(f"/penalties/{assessment.pk}/waive/", {"reason": "Twice"}, follow=True)
    assert "was waived on" in again.content.decode()
    assert pen.corrections.count() == 1


@pytest.mark.django_db
def test_penalties_api_lists_and_waives(overdue, user):
    from rest_framework.test import APIClient

    api = APIClient()
    api.force_authenticate(user=user)
    assess(date(2026, 2, 6))
    listed = api.get("/api/v1/penalties/", {"invoice": overdue.pk})
    assert listed.status_code == 200
    (row,) = listed.json()["results"]
    assert (row["invoice_number"], row["interest"], row["fee"], row["total"]) == (
        overdue.number,
        "0.91",
        "40.00",
        "40.91",
    )
    assert row["penalty_invoice_number"].startswith("PEN-") and row["waived_at"] is None

    url = f"/api/v1/penalties/{row['id']}/waive/"
    missing = api.post(url, {}, format="json")
    assert missing.status_code == 400 and "reason" in missing.json()["details"]
    done = api.post(url, {"reason": "Goodwill"}, format="json", HTTP_IDEMPOTENCY_KEY="w-1")
    replay = api.post(url, {"reason": "Goodwill"}, format="json", HTTP_IDEMPOTENCY_KEY="w-1")
    assert done.status_code == replay.status_code == 200, done.content
    assert done.json()["waive_reason"] == "Goodwill" and done.json()["waived_by"] == user.username
    again = api.post(url, {"reason": "Twice"}, format="json")
    assert again.status_code == 409
    assert Invoice.objects.filter(kind=InvoiceKind.CREDIT_NOTE).count() == 1
    assert api.get("/api/v1/penalties/", {"waived": "true"}).json()["count"] == 1
    assert api.get("/api/v1/penalties/", {"waived": "false"}).json()["count"] == 0


@pytest.mark.django_db
def test_a_lost_batch_message_is_sent_again_and_each_batch_counts_once(
    overdue, late_customer, make_issued_invoice, django_capture_on_commit_callbacks, settings, tmp_path
):
    """The broker lost the run's messages: the run would stay running. The sweeper sends its
    stored batches again once overdue; a late or second delivery charges and counts nothing more."""
    from datetime import timedelta
    from unittest import mock

    from django.utils import timezone

    from otc.celery import app
    from payments import tasks
    from payments.models import PenaltyRunBatch

    settings.MEDIA_ROOT = str(tmp_path)
    make_issued_invoice(late_customer, issue_date=date(2026, 1, 1))
    with (
        mock.patch.object(tasks.penalty_assess_stored_batch, "delay") as lost,
        django_capture_on_commit_callbacks(execute=True),
    ):
        run = penalties.run_start(as_of=date(2026, 2, 6), batch_size=1)
    batches = list(PenaltyRunBatch.objects.filter(run=run))
    assert lost.call_count == 2 and [len(b.items) for b in batches] == [1, 1]
    run.refresh_from_db()
    assert (run.status, run.processed_batches, run.total_batches) == (PenaltyRunStatus.RUNNING, 0, 2)
    assert penalties.resend_lost_batches(older_than=timedelta(minutes=30)) == 0  # not overdue yet

    PenaltyRunBatch.objects.update(sent_at=timezone.now() - timedelta(minutes=31))
    app.conf.task_always_eager = True
    try:
        with django_capture_on_commit_callbacks(execute=True):  # this time the messages arrive
            assert penalties.resend_lost_batches(older_than=timedelta(minutes=30)) == 2
    finally:
        app.conf.task_always_eager = False
    run.refresh_from_db()
    assert (run.status, run.processed_batches, run.assessments, run.penalty_invoices) == (
        PenaltyRunStatus.DONE,
        2,
        2,
        2,
    )

    # The lost message turns up after all, and another delivery was already under way.
    tasks.penalty_assess_stored_batch(batches[0].pk)
    penalties.run_batch(run_id=run.pk, invoice_ids=batches[0].items, batch_id=batches[0].pk)
    run.refresh_from_db()
    assert (run.processed_batches, run.assessments, run.penalty_invoices) == (2, 2, 2)
    assert PenaltyAssessment.objects.count() == 2 and penalty_invoices().count() == 2
    assert penalties.resend_lost_batches(older_than=timedelta(seconds=0)) == 0  # a finished run's batches stay
