"""Penalty runs in the browser UI (through Django's test client), and the refusal of an as-of date
after today by the service, the page and the command."""

from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from billing.errors import ValidationFailed
from invoicing.models import Invoice, InvoiceKind
from payments import penalties
from payments.models import PenaltyRun, PenaltyRunStatus
from tests.factories import CustomerFactory, PaymentTermsFactory

pytestmark = pytest.mark.django_db
D = Decimal


@pytest.fixture
def overdue(make_issued_invoice):
    """462.62 due 40 days ago, Net 30 with 12 % p.a. after 5 days' grace and a 40.00 fee."""
    terms = PaymentTermsFactory(due_days=30, grace_days=5, annual_interest_rate=D("12.00"), fixed_fee=D("40.00"))
    customer = CustomerFactory(name="Slow Payer SA", payment_terms=terms)
    return make_issued_invoice(customer, issue_date=timezone.localdate() - timedelta(days=70))


@pytest.mark.parametrize("name,args", [("penalty-run-list", []), ("penalty-run-detail", [1])])
def test_pages_need_a_login(client, name, args):
    response = client.get(reverse(name, args=args))
    assert response.status_code == 302 and "/accounts/login/" in response.url


def test_start_needs_a_login_and_a_post(client, user):
    response = client.post(reverse("penalty-run-start"), {"as_of": "2026-01-01"})
    assert response.status_code == 302 and "/accounts/login/" in response.url
    client.force_login(user)
    assert client.get(reverse("penalty-run-start")).status_code == 405
    assert client.get(reverse("penalty-run-detail", args=[999])).status_code == 404
    assert not PenaltyRun.objects.exists()


def test_empty_list_says_so_and_offers_today(staff):
    page = staff.get(reverse("penalty-run-list"))
    assert page.status_code == 200
    assert b"No penalty runs" in page.content
    assert f'value="{timezone.localdate():%Y-%m-%d}"'.encode() in page.content
    assert reverse("penalty-run-list").encode() in staff.get(reverse("collections")).content
    assert b'aria-current="page" href="/collections/"' in page.content  # under Collections in the top bar


@pytest.mark.parametrize("value", ["", "tomorrow", "2026-13-01"])
def test_a_bad_date_is_a_form_error_and_starts_nothing(staff, value):
    response = staff.post(reverse("penalty-run-start"), {"as_of": value})
    assert response.status_code == 400
    assert response.context["form"].errors["as_of"]
    assert not PenaltyRun.objects.exists()


def test_a_date_after_today_is_refused_everywhere(staff, overdue):
    tomorrow = timezone.localdate() + timedelta(days=1)
    response = staff.post(reverse("penalty-run-start"), {"as_of": f"{tomorrow:%Y-%m-%d}"})
    assert response.status_code == 400
    assert response.context["form"].errors["as_of"] == [
        "Penalties are not assessed for days to come: interest is owed for the days that have passed. "
        f"Choose today ({timezone.localdate():%Y-%m-%d}) or an earlier date."
    ]
    with pytest.raises(ValidationFailed) as refused:
        penalties.run_start(as_of=tomorrow)
    assert refused.value.details == {"as_of": [f"Choose {timezone.localdate():%Y-%m-%d} or an earlier date."]}
    with pytest.raises(CommandError, match="not assessed for days to come"):
        call_command("assess_penalties", "--as-of", tomorrow.isoformat())
    assert not PenaltyRun.objects.exists()
    assert not Invoice.objects.filter(kind=InvoiceKind.PENALTY).exists()


def test_starting_a_run_charges_and_shows_what_it_charged(
    staff, user, overdue, eager, django_capture_on_commit_callbacks
):
    today = timezone.localdate()
    with django_capture_on_commit_callbacks(execute=True):
        response = staff.post(reverse("penalty-run-start"), {"as_of": f"{today:%Y-%m-%d}"}, follow=True)
    run = PenaltyRun.objects.get()
    assert response.redirect_chain[-1][0] == reverse("penalty-run-detail", args=[run.pk])
    assert [str(m) for m in response.context["messages"]] == ["Penalty run started: 1 overdue invoice(s) to assess."]
    assert (run.status, run.started_by, run.penalty_invoices) == (PenaltyRunStatus.DONE, user, 1)
    # Due 40 days ago: 462.62 x 12 % x 40 days (from the day after the due date) / 365 = 6.0837 -> 6.08;
    # and the 40.00 fee, once.
    assert (run.interest_total, run.fee_total) == (D("6.08"), D("40.00"))
    page = staff.get(reverse("penalty-run-detail", args=[run.pk])).content.decode()
    assert 'data-testid="run-interest">6.08<' in page and 'data-testid="run-fees">40.00<' in page
    assert "hx-trigger" not in page  # done: the page stops polling
    listing = staff.get(f"{reverse('invoice-list')}?kind=penalty&issued={today:%Y-%m-%d}").content.decode()
    penalty = Invoice.objects.get(kind=InvoiceKind.PENALTY)
    assert f"?kind=penalty&amp;issued={today:%Y-%m-%d}" in page and penalty.number in listing
    runs = staff.get(reverse("penalty-run-list")).content.decode()
    assert f"#{run.pk}" in runs and user.get_username() in runs

    # The same date again charges nothing more and says so.
    with django_capture_on_commit_callbacks(execute=True):
        staff.post(reverse("penalty-run-start"), {"as_of": f"{today:%Y-%m-%d}"})
    again = PenaltyRun.objects.order_by("-pk").first()
    assert (again.status, again.penalty_invoices, again.interest_total) == (PenaltyRunStatus.DONE, 0, D("0"))
    assert "Nothing was charged" in staff.get(reverse("penalty-run-detail", args=[again.pk])).content.decode()
    assert Invoice.objects.filter(kind=InvoiceKind.PENALTY).count() == 1


def test_nothing_overdue_says_so(staff):
    response = staff.post(reverse("penalty-run-start"), {"as_of": "2026-01-15"}, follow=True)
    assert [str(m) for m in response.context["messages"]] == [
        "No invoice is overdue past its grace days as of 15 Jan 2026."
    ]
    assert PenaltyRun.objects.get().status == PenaltyRunStatus.DONE


def test_a_running_run_polls_and_htmx_gets_only_the_partial(staff):
    run = PenaltyRun.objects.create(as_of=date(2026, 3, 1), candidates=4, total_batches=4, processed_batches=1)
    page = staff.get(reverse("penalty-run-detail", args=[run.pk]))
    assert b'hx-trigger="every 1s"' in page.content and b'aria-valuenow="25"' in page.content
    partial = staff.get(reverse("penalty-run-detail", args=[run.pk]), HTTP_HX_REQUEST="true")
    assert partial.content.lstrip().startswith(b'<div id="run-progress"')
    assert b"<html" not in partial.content


def test_errors_of_a_run_are_listed(staff):
    run = PenaltyRun.objects.create(
        as_of=date(2026, 3, 1),
        status=PenaltyRunStatus.DONE,
        total_batches=1,
        processed_batches=1,
        errors=[{"invoices": [17, 42], "error": "terms snapshot lacks a rate"}],
    )
    page = staff.get(reverse("penalty-run-detail", args=[run.pk])).content.decode()
    assert "Invoices 17 to 42:" in page and "terms snapshot lacks a rate" in page
