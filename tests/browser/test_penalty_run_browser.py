"""A penalty run started from the collections page, assessed by a real Celery worker, watched on its
progress bar."""

from datetime import timedelta
from decimal import Decimal

import pytest
from playwright.sync_api import expect

from invoicing.models import Invoice, InvoiceKind
from payments.models import PenaltyRun, PenaltyRunStatus
from tests.browser.progress import watch_progress
from tests.factories import CustomerFactory, PaymentTermsFactory

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.django_db(transaction=True)]
OVERDUE = 6


def test_penalty_run_from_the_browser(page, login, screenshot, settings, celery_worker_process, make_issued_invoice):
    from django.utils import timezone

    settings.OTC_PENALTY_BATCH_SIZE = 1  # one batch per invoice: the bar moves in steps
    terms = PaymentTermsFactory(
        due_days=30, grace_days=5, annual_interest_rate=Decimal("12.00"), fixed_fee=Decimal("40.00")
    )
    for i in range(OVERDUE):
        customer = CustomerFactory(payment_terms=terms)
        make_issued_invoice(customer, issue_date=timezone.localdate() - timedelta(days=70 + i))

    login()
    page.get_by_role("link", name="Collections").click()
    page.get_by_role("link", name="Penalty runs").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Penalty runs")
    expect(page.get_by_test_id("empty-state")).to_be_visible()
    screenshot("penalty_runs_empty")
    page.get_by_role("button", name="Start penalty run").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Penalty run #")
    expect(page.get_by_test_id("message-success")).to_contain_text(f"{OVERDUE} overdue invoice(s) to assess")

    seen = watch_progress(page)
    assert seen[-1] == 100 and seen == sorted(seen), seen
    expect(page.get_by_test_id("run-status")).to_have_text("Done")
    expect(page.get_by_test_id("run-penalty-invoices")).to_have_text(str(OVERDUE))
    expect(page.get_by_test_id("run-fees")).to_have_text(f"{40 * OVERDUE}.00")
    expect(page.get_by_test_id("run-errors")).to_have_text("0")
    screenshot("penalty_run_done")

    run = PenaltyRun.objects.get()
    assert run.status == PenaltyRunStatus.DONE and run.penalty_invoices == OVERDUE
    page.get_by_test_id("run-invoices-link").first.click()
    expect(page.get_by_test_id("result-count")).to_contain_text(f"of {OVERDUE}")
    assert Invoice.objects.filter(kind=InvoiceKind.PENALTY).count() == OVERDUE

    page.goto("/penalty-runs/")
    expect(page.get_by_test_id("runs-table")).to_contain_text(f"#{run.pk}")
    screenshot("penalty_runs_list")
