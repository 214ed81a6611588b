"""Billing runs, print batches, sending an invoice again and customer statements, through Django's test client."""

import io
from datetime import datetime, timedelta

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone
from pypdf import PdfReader

from billing.errors import ValidationFailed
from invoicing import billing_runs, delivery, services
from invoicing.models import BillingRun, BillingRunStatus, DeliveryStatus, Invoice, PrintBatch, PrintBatchStatus
from orders.models import Order, OrderStatus
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def _fulfilled_on(order, day):
    moment = timezone.make_aware(datetime.combine(day, datetime.min.time()).replace(hour=12))
    Order.objects.filter(pk=order.pk).update(fulfilled_at=moment)
    return order


@pytest.fixture
def paper_invoice(make_issued_invoice, django_capture_on_commit_callbacks):
    """A paper customer's issued invoice with its PDF stored, in the day's open print batch."""
    customer = CustomerFactory(billing_method="paper")
    with django_capture_on_commit_callbacks():
        invoice = make_issued_invoice(customer)
        services.invoice_render_pdf(invoice_id=invoice.pk)
    invoice.refresh_from_db()
    delivery.print_batch_add(invoice=invoice)
    return invoice


@pytest.mark.parametrize("name,args", [("billing-run-list", []), ("billing-run-detail", [1]), ("print-batch-list", [])])
def test_pages_need_a_login(client, name, args):
    response = client.get(reverse(name, args=args))
    assert response.status_code == 302 and "/accounts/login/" in response.url


# --- Billing runs ---------------------------------------------------------------------------------


def test_run_list_offers_today_and_lists_runs(staff, user):
    BillingRun.objects.create(as_of=timezone.localdate() - timedelta(days=3), total_groups=4, processed_groups=2)
    response = staff.get(reverse("billing-run-list"))
    assert response.status_code == 200
    html = response.content.decode()
    assert f'value="{timezone.localdate():%Y-%m-%d}"' in html
    assert "Start billing run" in html and "Running" in html
    assert reverse("billing-run-list") in staff.get("/invoices/").content.decode()  # the nav link


def test_starting_a_run_bills_the_fulfilled_orders_and_shows_them(
    staff, user, make_fulfilled_order, eager, django_capture_on_commit_callbacks
):
    yesterday = timezone.localdate() - timedelta(days=1)
    for _ in range(3):
        _fulfilled_on(make_fulfilled_order(CustomerFactory()), yesterday)
    make_fulfilled_order(CustomerFactory())  # fulfilled today: after the as-of date, not billed
    with django_capture_on_commit_callbacks(execute=True):  # the batches run (eagerly) on commit
        started = staff.post(reverse("billing-run-start"), {"as_of": f"{yesterday:%Y-%m-%d}"})
    run = BillingRun.objects.get()
    assert started.url == reverse("billing-run-detail", args=[run.pk])
    response = staff.get(started.url)
    assert run.status == BillingRunStatus.DONE and run.invoices_created == 3 and run.started_by == user
    html = response.content.decode()
    assert 'aria-valuenow="100"' in html and "Done" in html
    assert 'hx-trigger="every 1s"' not in html  # a finished run stops polling
    assert Order.objects.filter(status=OrderStatus.INVOICED).count() == 3

    link = reverse("invoice-list") + f"?issued={timezone.localdate():%Y-%m-%d}"
    assert link in html
    listed = staff.get(link)
    assert len(listed.context["page_obj"].object_list) == 3
    older = staff.get(reverse("invoice-list") + f"?issued={yesterday:%Y-%m-%d}")
    assert len(older.context["page_obj"].object_list) == 0


def test_a_running_run_polls_and_htmx_gets_only_the_partial(staff):
    run = BillingRun.objects.create(as_of=timezone.localdate(), total_groups=4, processed_groups=1)
    page = staff.get(reverse("billing-run-detail", args=[run.pk])).content.decode()
    assert 'hx-trigger="every 1s"' in page and 'aria-valuenow="25"' in page and "<nav" in page
    partial = staff.get(reverse("billing-run-detail", args=[run.pk]), HTTP_HX_REQUEST="true").content.decode()
    assert 'aria-valuenow="25"' in partial and "<nav" not in partial and "<html" not in partial


def test_errors_of_a_run_are_listed(staff):
    run = BillingRun.objects.create(
        as_of=timezone.localdate(),
        total_groups=1,
        processed_groups=1,
        status=BillingRunStatus.FAILED,
        finished_at=timezone.now(),
        errors=[{"orders": [41, 42], "error": "Customer is on hold."}],
    )
    html = staff.get(reverse("billing-run-detail", args=[run.pk])).content.decode()
    assert "Customer is on hold." in html and "41, 42" in html and "Failed" in html


def test_nothing_to_bill_says_so(staff):
    response = staff.post(reverse("billing-run-start"), {"as_of": f"{timezone.localdate():%Y-%m-%d}"}, follow=True)
    assert any("Nothing to bill" in m for m in messages_of(response))
    assert BillingRun.objects.get().status == BillingRunStatus.DONE


@pytest.mark.parametrize("value", ["", "yesterday", "2026-02-30", "03/12/2026"])
def test_a_bad_date_is_a_form_error_and_starts_nothing(staff, value):
    response = staff.post(reverse("billing-run-start"), {"as_of": value})
    assert response.status_code == 400
    assert response.context["form"].errors["as_of"]
    assert 'data-testid="form-errors"' in response.content.decode()
    assert not BillingRun.objects.exists()


def test_a_date_after_today_is_refused_by_the_page_the_service_and_the_command(staff):
    tomorrow = timezone.localdate() + timedelta(days=1)
    response = staff.post(reverse("billing-run-start"), {"as_of": f"{tomorrow:%Y-%m-%d}"})
    assert response.status_code == 400
    assert response.context["form"].errors["as_of"] == [
        "Billing runs do not bill ahead: a week or month that has not ended is billed once it has. "
        f"Choose today ({timezone.localdate():%Y-%m-%d}) or an earlier date."
    ]
    with pytest.raises(ValidationFailed) as refused:
        billing_runs.run_start(as_of=tomorrow)
    assert refused.value.details == {"as_of": [f"Choose {timezone.localdate():%Y-%m-%d} or an earlier date."]}
    with pytest.raises(CommandError, match="do not bill ahead"):
        call_command("run_billing", "--as-of", tomorrow.isoformat())
    assert not BillingRun.objects.exists()


def test_start_needs_post_and_unknown_run_is_404(staff):
    assert staff.get(reverse("billing-run-start")).status_code == 405
    assert staff.get(reverse("billing-run-detail", args=[999999])).status_code == 404


# --- Print batches --------------------------------------------------------------------------------


def test_print_batch_close_download_and_post(staff, paper_invoice):
    batch = PrintBatch.objects.get()
    listing = staff.get(reverse("print-batch-list")).content.decode()
    assert reverse("print-batch-detail", args=[batch.pk]) in listing and "Open" in listing
    detail = staff.get(reverse("print-batch-detail", args=[batch.pk])).content.decode()
    assert paper_invoice.number in detail and "Close batch" in detail and "Download PDF" not in detail

    # Still open: no PDF yet, and it cannot be posted.
    early = staff.get(reverse("print-batch-pdf", args=[batch.pk]), follow=True)
    assert any("still open" in m for m in messages_of(early))
    refused = staff.post(reverse("print-batch-post", args=[batch.pk]), follow=True)
    assert any("only a closed" in m for m in messages_of(refused))
    assert PrintBatch.objects.get().status == PrintBatchStatus.OPEN

    closed = staff.post(reverse("print-batch-close", args=[batch.pk]), follow=True)
    assert any("closed" in m for m in messages_of(closed))
    assert "Mark posted" in closed.content.decode() and "Download PDF" in closed.content.decode()
    pdf = staff.get(reverse("print-batch-pdf", args=[batch.pk]))
    assert pdf.status_code == 200 and "attachment" in pdf["Content-Disposition"]
    assert len(PdfReader(io.BytesIO(b"".join(pdf.streaming_content))).pages) >= 1

    again = staff.post(reverse("print-batch-close", args=[batch.pk]), follow=True)
    assert again.status_code == 200 and any("only an open batch" in m for m in messages_of(again))

    posted = staff.post(reverse("print-batch-post", args=[batch.pk]), follow=True)
    assert any("posted" in m for m in messages_of(posted))
    assert PrintBatch.objects.get().status == PrintBatchStatus.POSTED
    assert Invoice.objects.get(pk=paper_invoice.pk).delivery_status == DeliveryStatus.POSTED


def test_closing_an_empty_batch_is_a_message(staff):
    batch = PrintBatch.objects.create(date=timezone.localdate())
    response = staff.post(reverse("print-batch-close", args=[batch.pk]), follow=True)
    assert response.status_code == 200 and any("empty" in m for m in messages_of(response))


@pytest.mark.parametrize("name", ["print-batch-detail", "print-batch-close", "print-batch-post", "print-batch-pdf"])
def test_unknown_print_batch_is_404(staff, name):
    method = staff.get if name in ("print-batch-detail", "print-batch-pdf") else staff.post
    assert method(reverse(name, args=[999999])).status_code == 404


# --- Send again -----------------------------------------------------------------------------------


def test_send_again_queues_a_delivery(staff, customer, make_issued_invoice, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks():
        invoice = make_issued_invoice(customer)
        services.invoice_render_pdf(invoice_id=invoice.pk)
    html = staff.get(invoice.get_absolute_url()).content.decode()
    assert "Send again" in html
    with django_capture_on_commit_callbacks() as callbacks:
        response = staff.post(reverse("invoice-resend", args=[invoice.pk]), follow=True)
    assert any("e-mailed again" in m for m in messages_of(response))
    assert Invoice.objects.get(pk=invoice.pk).delivery_status == DeliveryStatus.PENDING
    assert len(callbacks) == 1  # the delivery task is enqueued


def test_send_again_is_refused_with_a_message(staff, customer, make_fulfilled_order, paper_invoice):
    draft = services.invoice_create_from_orders(orders=[make_fulfilled_order(customer)])
    assert "Send again" not in staff.get(draft.get_absolute_url()).content.decode()
    response = staff.post(reverse("invoice-resend", args=[draft.pk]), follow=True)
    assert any("only issued documents" in m for m in messages_of(response))

    in_batch = staff.post(reverse("invoice-resend", args=[paper_invoice.pk]), follow=True)
    assert any("already in" in m for m in messages_of(in_batch))
    assert staff.post(reverse("invoice-resend", args=[999999])).status_code == 404
    assert staff.get(reverse("invoice-resend", args=[draft.pk])).status_code == 405


def test_send_again_before_the_pdf_is_ready_is_a_message(staff, customer, make_issued_invoice):
    invoice = make_issued_invoice(customer)
    response = staff.post(reverse("invoice-resend", args=[invoice.pk]), follow=True)
    assert response.status_code == 200 and any("not ready" in m for m in messages_of(response))


# --- Customer statement ---------------------------------------------------------------------------


def test_customer_statement_pdf(staff, customer, make_issued_invoice):
    invoice = make_issued_invoice(customer)
    page = staff.get(customer.get_absolute_url()).content.decode()
    assert reverse("customer-statement", args=[customer.pk]) in page
    response = staff.get(reverse("customer-statement", args=[customer.pk]))
    assert response.status_code == 200 and response["Content-Type"] == "application/pdf"
    assert f"statement-{customer.code}-{timezone.localdate():%Y-%m-%d}.pdf" in response["Content-Disposition"]
    text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(response.content)).pages)
    assert invoice.number in text

    before = timezone.localdate() - timedelta(days=30)
    earlier = staff.get(reverse("customer-statement", args=[customer.pk]) + f"?as_of={before:%Y-%m-%d}")
    assert earlier.status_code == 200 and f"{before:%Y-%m-%d}.pdf" in earlier["Content-Disposition"]
    earlier_text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(earlier.content)).pages)
    assert invoice.number not in earlier_text  # issued after that date


def test_customer_statement_bad_input(staff, customer):
    bad = staff.get(reverse("customer-statement", args=[customer.pk]) + "?as_of=not-a-date", follow=True)
    assert bad.status_code == 200 and any("not a date" in m for m in messages_of(bad))
    assert staff.get(reverse("customer-statement", args=[999999])).status_code == 404
