"""A billing run started from the browser, billed by a real Celery worker, watched on its progress bar."""

import time
from datetime import datetime, timedelta

import pytest
from playwright.sync_api import expect

from invoicing.models import BillingRun, BillingRunStatus, Invoice, PrintBatch
from orders.models import Order, OrderStatus
from tests.browser.progress import watch_progress
from tests.factories import CustomerFactory

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.django_db(transaction=True)]
ORDERS = 30


def test_billing_run_from_the_browser(page, login, screenshot, settings, celery_worker_process, make_fulfilled_order):
    from django.utils import timezone

    # Batches of 3 groups: the run advances in ten steps the page can show.
    settings.OTC_BILLING_BATCH_SIZE = 3
    yesterday = timezone.localdate() - timedelta(days=1)
    moment = timezone.make_aware(datetime.combine(yesterday, datetime.min.time()).replace(hour=12))
    for i in range(ORDERS):
        # One paper customer, so the run also fills a print batch.
        customer = CustomerFactory(billing_method="paper" if i == 0 else "electronic")
        Order.objects.filter(pk=make_fulfilled_order(customer).pk).update(fulfilled_at=moment)

    login()
    page.get_by_role("link", name="Billing runs").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Billing runs")
    page.get_by_label("Bill orders fulfilled on or before").fill(f"{yesterday:%Y-%m-%d}")
    page.get_by_role("button", name="Start billing run").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Billing run #")
    expect(page.get_by_test_id("message-success")).to_contain_text(f"{ORDERS} invoice(s) planned")

    # Watch the bar: htmx swaps it in place every second until the run is done.
    seen = watch_progress(
        page, on_step=lambda value: screenshot("billing_run_in_progress") if 0 < value < 100 else None
    )
    print("progress seen:", seen)
    assert seen[-1] == 100, seen
    # The page showed the run unfinished, then the polled bar moved forward to 100 without a reload.
    assert seen[0] < 100 and seen == sorted(seen), seen
    expect(page.get_by_test_id("run-status")).to_have_text("Done")
    expect(page.get_by_test_id("run-invoices")).to_have_text(str(ORDERS))
    expect(page.get_by_test_id("run-orders")).to_have_text(str(ORDERS))
    expect(page.get_by_test_id("run-errors")).to_have_text("0")
    screenshot("billing_run_done")

    run = BillingRun.objects.get()
    assert run.status == BillingRunStatus.DONE and run.invoices_created == ORDERS
    assert not Order.objects.filter(status=OrderStatus.FULFILLED).exists()

    # The invoices it issued, from the run page.
    page.get_by_test_id("run-invoices-link").first.click()
    expect(page.get_by_test_id("result-count")).to_contain_text(f"of {ORDERS}")

    # The paper invoice reaches the day's print batch once the worker has rendered its PDF.
    deadline = time.monotonic() + 90
    while not PrintBatch.objects.filter(invoice_count__gt=0).exists() and time.monotonic() < deadline:
        time.sleep(0.5)
    paper = Invoice.objects.get(customer__billing_method="paper")
    page.goto("/print-batches/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Print batches")
    page.locator("main tbody a").first.click()
    expect(page.locator("main")).to_contain_text(paper.number)
    page.get_by_role("button", name="Close batch").click()
    expect(page.get_by_test_id("message-success")).to_contain_text("ready to print")
    expect(page.get_by_test_id("batch-pdf-link")).to_be_visible()
    screenshot("print_batch_closed")
    page.get_by_role("button", name="Mark posted").click()
    expect(page.get_by_test_id("message-success")).to_contain_text("marked as posted")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Posted")
