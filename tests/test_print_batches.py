"""Print batches: paper invoices of a day, merged into one PDF to print duplex, then posted."""

import hashlib
import io
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from pypdf import PdfReader

from billing.errors import Conflict, DomainError, InvalidTransition
from billing.models import AuditEvent
from invoicing import delivery, services
from invoicing.models import DeliveryStatus, Invoice, PrintBatch, PrintBatchItem, PrintBatchStatus
from tests.factories import CustomerFactory

D = Decimal
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
def paper_customer(db):
    return CustomerFactory(name="Papeterie Leroy", legal_name="Papeterie Leroy SARL", billing_method="paper")


@pytest.fixture
def rendered(make_issued_invoice, django_capture_on_commit_callbacks):
    """An issued invoice with its PDF stored, whose delivery has not run yet."""

    def make(customer, **kwargs):
        with django_capture_on_commit_callbacks():  # the worker messages are left unsent
            invoice = make_issued_invoice(customer, **kwargs)
            services.invoice_render_pdf(invoice_id=invoice.pk)
        invoice.refresh_from_db()
        return invoice

    return make


def _pages(data: bytes) -> list[str]:
    return [page.extract_text() or "" for page in PdfReader(io.BytesIO(data)).pages]


def test_closing_merges_the_pdfs_in_number_order_each_letter_on_a_fresh_sheet(
    paper_customer, products, make_issued_invoice, eager_tasks, django_capture_on_commit_callbacks, user
):
    many_lines = [{"product": products[i % 2], "quantity": D("1")} for i in range(30)]
    with django_capture_on_commit_callbacks() as issued:
        short = make_issued_invoice(paper_customer)
        long = make_issued_invoice(paper_customer, lines=many_lines)
        last = make_issued_invoice(paper_customer)
    # The workers finish in reverse order: the batch receives the invoices out of number order.
    with django_capture_on_commit_callbacks(execute=True):
        for render in reversed(issued):
            render()
    batch = PrintBatch.objects.get()
    added = list(batch.items.order_by("id").values_list("invoice__number", flat=True))
    assert added == [last.number, long.number, short.number]

    invoices = [Invoice.objects.get(pk=i.pk) for i in (short, long, last)]
    counts = [len(_pages(i.pdf.open("rb").read())) for i in invoices]
    assert any(c % 2 for c in counts) and any(c % 2 == 0 for c in counts), counts  # both cases are covered

    batch = delivery.print_batch_close(batch=batch, actor=user)
    assert batch.status == PrintBatchStatus.CLOSED and batch.closed_at is not None
    data = batch.pdf.open("rb").read()
    assert batch.pdf_sha256 == hashlib.sha256(data).hexdigest()
    pages = _pages(data)
    assert len(pages) == batch.page_count == sum(c + c % 2 for c in counts)
    assert batch.invoice_count == 3

    position = 0
    for invoice, count in zip(invoices, counts, strict=True):
        assert position % 2 == 0  # starts on the front of a sheet
        assert "Papeterie Leroy SARL" in pages[position]  # the address for the window envelope
        for page in pages[position : position + count]:
            assert invoice.number in page
        position += count
        if count % 2:
            assert pages[position].strip() == ""  # the blank back
            position += 1
    assert position == len(pages)
    assert AuditEvent.objects.get(action="print_batch.closed").changes["invoices"] == [i.number for i in invoices]


def test_mark_posted_delivers_every_invoice_of_the_batch(paper_customer, rendered, user):
    invoices = [rendered(paper_customer) for _ in range(3)]
    for invoice in invoices:
        delivery.print_batch_add(invoice=invoice)
    batch = PrintBatch.objects.get()
    with pytest.raises(InvalidTransition, match="only a closed"):
        delivery.print_batch_mark_posted(batch=batch, actor=user)
    delivery.print_batch_close(batch=batch, actor=user)
    batch = delivery.print_batch_mark_posted(batch=batch, actor=user)
    assert batch.status == PrintBatchStatus.POSTED and batch.posted_by == user and batch.posted_at is not None
    for invoice in invoices:
        invoice.refresh_from_db()
        assert invoice.delivery_status == DeliveryStatus.POSTED
        assert invoice.delivered_at == batch.posted_at
        assert AuditEvent.objects.filter(object_id=invoice.pk, action="invoice.posted", actor=user).count() == 1
    with pytest.raises(InvalidTransition):
        delivery.print_batch_mark_posted(batch=batch, actor=user)
    with pytest.raises(InvalidTransition):
        delivery.print_batch_close(batch=batch, actor=user)


def test_after_closing_a_new_open_batch_takes_the_days_next_invoices(paper_customer, rendered, user):
    first = rendered(paper_customer)
    batch = delivery.print_batch_add(invoice=first)
    delivery.print_batch_close(batch=batch, actor=user)
    second = rendered(paper_customer)
    newer = delivery.print_batch_add(invoice=second)
    assert newer.pk != batch.pk and newer.date == batch.date and newer.status == PrintBatchStatus.OPEN
    assert list(newer.items.values_list("invoice_id", flat=True)) == [second.pk]
    batch.refresh_from_db()
    assert batch.invoice_count == 1


def test_an_invoice_is_printed_in_one_batch_only(paper_customer, rendered):
    invoice = rendered(paper_customer)
    batch = delivery.print_batch_add(invoice=invoice)
    with pytest.raises(Conflict) as refused:
        delivery.print_batch_add(invoice=invoice, day=timezone.localdate() + timedelta(days=1))
    assert refused.value.details == {"print_batch": batch.pk}
    assert PrintBatch.objects.count() == 1  # the refused call left no new batch behind
    # The database refuses it too, and refuses a second open batch for one day.
    other = PrintBatch.objects.create(date=batch.date - timedelta(days=5))
    with pytest.raises(IntegrityError), transaction.atomic():
        PrintBatchItem.objects.create(batch=other, invoice=invoice)
    with pytest.raises(IntegrityError), transaction.atomic():
        PrintBatch.objects.create(date=batch.date)


def test_drafts_and_invoices_without_a_pdf_are_not_printed(paper_customer, make_fulfilled_order, make_issued_invoice):
    draft = services.invoice_create_from_orders(orders=[make_fulfilled_order(paper_customer)])
    with pytest.raises(InvalidTransition):
        delivery.print_batch_add(invoice=draft)
    with pytest.raises(Conflict, match="not ready"):
        delivery.print_batch_add(invoice=make_issued_invoice(paper_customer))
    assert not PrintBatch.objects.exists()


def test_an_empty_batch_is_not_closed(user):
    batch = PrintBatch.objects.create(date=timezone.localdate())
    with pytest.raises(InvalidTransition) as refused:
        delivery.print_batch_close(batch=batch, actor=user)
    assert refused.value.code == "empty_batch"
    batch.refresh_from_db()
    assert batch.status == PrintBatchStatus.OPEN


def test_nightly_close_closes_past_days_and_leaves_today_open(paper_customer, rendered):
    today = timezone.localdate()
    old = delivery.print_batch_add(invoice=rendered(paper_customer), day=today - timedelta(days=1))
    current = delivery.print_batch_add(invoice=rendered(paper_customer))
    empty = PrintBatch.objects.create(date=today - timedelta(days=2))
    assert delivery.print_batches_close_due() == [old.pk]
    old.refresh_from_db(), current.refresh_from_db(), empty.refresh_from_db()
    assert (old.status, current.status, empty.status) == ("closed", "open", "open")
    assert old.page_count == 2 and old.pdf


def _race(n, fn):
    barrier = threading.Barrier(n)

    def run(i):
        try:
            barrier.wait(timeout=30)
            return ("ok", fn(i))
        except DomainError as exc:
            return ("refused", exc.code)
        except Exception as exc:  # anything else would be a 500
            return ("error", repr(exc))
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(run, range(n)))


@pytest.mark.django_db(transaction=True)
def test_concurrent_additions_share_one_open_batch(eager_tasks, customer, make_issued_invoice):
    # Issued and rendered in-process; they are e-mailed, so none is in a batch yet.
    invoices = [make_issued_invoice(customer) for _ in range(8)]
    results = _race(8, lambda i: delivery.print_batch_add(invoice=invoices[i]).pk)
    assert [r[0] for r in results] == ["ok"] * 8, results
    batch = PrintBatch.objects.get()
    assert {r[1] for r in results} == {batch.pk}
    assert batch.invoice_count == 8 == batch.items.count()


@pytest.mark.django_db(transaction=True)
def test_the_same_invoice_added_at_once_lands_in_one_batch_once(eager_tasks, customer, make_issued_invoice):
    invoice = make_issued_invoice(customer)
    results = _race(6, lambda i: delivery.print_batch_add(invoice=invoice).pk)
    assert sorted(r[0] for r in results) == ["ok"] + ["refused"] * 5, results
    assert {r[1] for r in results if r[0] == "refused"} == {"already_in_print_batch"}
    assert PrintBatchItem.objects.filter(invoice=invoice).count() == 1
    assert PrintBatch.objects.get().invoice_count == 1
