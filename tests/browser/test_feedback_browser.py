"""Customer feedback in a real browser: the customer opens the link from an invoice, rates it and
sees the thanks; the link then says it was answered. Staff see the rating on the customer page and
record another from a call."""

import os
import re

import pytest
from playwright.sync_api import expect

from invoicing.feedback import feedback_token
from kpis.models import Feedback

from .conftest import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

EXPECTED_STATUS = re.compile(r"the server responded with a status of (400|409|410)")


@pytest.fixture
def tab(chromium, live_server):
    """A browser tab like the `page` fixture, except that the refusal pages' own 4xx status is not
    counted as a console error (Chromium logs every non-2xx document load)."""
    context = chromium.new_context(base_url=live_server.url, viewport={"width": 1366, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on(
        "console",
        lambda msg: (
            problems.append(f"console: {msg.text}")
            if msg.type == "error" and not EXPECTED_STATUS.search(msg.text)
            else None
        ),
    )
    yield page
    context.close()
    assert not problems, problems


def shot(page, name: str) -> None:
    directory = os.environ.get("OTC_SCREENSHOTS")
    if directory:
        os.makedirs(directory, exist_ok=True)
        page.screenshot(path=os.path.join(directory, f"{name}.png"), full_page=True)


def test_customer_rates_an_invoice_then_the_link_says_it_was_answered(tab, customer, make_issued_invoice):
    invoice = make_issued_invoice(customer)
    url = f"/feedback/{feedback_token(invoice)}/"

    response = tab.goto(url)
    assert response.status == 200
    expect(tab.get_by_role("heading", level=1)).to_have_text("How did we do?")
    expect(tab.get_by_text(invoice.number)).to_be_visible()
    expect(tab.get_by_role("navigation")).to_have_count(0)  # the public layout: no staff menu
    # Sending without a rating is refused inline; the radios are one keyboard-reachable group.
    tab.get_by_role("button", name="Send feedback").click()
    expect(tab.get_by_test_id("rating-error")).to_have_text("Choose a rating from 1 to 5.")
    tab.get_by_role("radio", name="5 — Very satisfied").focus()
    tab.keyboard.press("Space")
    expect(tab.get_by_role("radio", name="5 — Very satisfied")).to_be_checked()
    tab.get_by_label("Anything you would like to tell us? (optional)").fill("Clear invoice, quick delivery.")
    shot(tab, "feedback_form")
    tab.get_by_role("button", name="Send feedback").click()

    expect(tab.get_by_role("heading", level=1)).to_have_text("Thank you for your feedback")
    expect(tab.get_by_test_id("feedback-thanks")).to_contain_text("5 out of 5")
    shot(tab, "feedback_thanks")
    feedback = Feedback.objects.get()
    assert (feedback.invoice_id, feedback.rating, feedback.comment, feedback.source) == (
        invoice.pk,
        5,
        "Clear invoice, quick delivery.",
        "link",
    )

    again = tab.goto(url)
    assert again.status == 409
    expect(tab.get_by_role("heading", level=1)).to_have_text("This invoice has already been rated")
    expect(tab.get_by_role("button", name="Send feedback")).to_have_count(0)
    shot(tab, "feedback_already_answered")

    bad = tab.goto(url.replace(":", ":x", 1))
    assert bad.status == 400
    expect(tab.get_by_role("heading", level=1)).to_have_text("This feedback link is not valid")
    shot(tab, "feedback_invalid")
    assert Feedback.objects.count() == 1


def test_staff_see_ratings_and_record_one_from_a_call(tab, user, customer, make_issued_invoice):
    rated, called = make_issued_invoice(customer), make_issued_invoice(customer)
    Feedback.objects.create(invoice=rated, customer=customer, rating=5, comment="Great service", source="link")

    tab.goto("/accounts/login/")
    tab.get_by_label("Username").fill(user.username)
    tab.get_by_label("Password").fill(PASSWORD)
    tab.get_by_role("button", name="Sign in").click()
    tab.wait_for_url("**/kpis/")
    tab.goto(f"/customers/{customer.pk}/")
    card = tab.get_by_test_id("customer-feedback")
    expect(card.get_by_test_id("feedback-average")).to_have_text("5.0 / 5")
    expect(card).to_contain_text("Great service")

    card.get_by_label("Invoice").select_option(str(called.pk))
    card.get_by_label("Rating").select_option("2")
    card.get_by_label("Comment").fill("Called about a wrong PO number")
    card.get_by_role("button", name="Record feedback").click()
    expect(card.get_by_test_id("feedback-saved")).to_be_visible()
    expect(card.get_by_test_id("feedback-average")).to_have_text("3.5 / 5")
    expect(card.get_by_test_id("feedback-csat")).to_have_text("50%")
    expect(card).to_contain_text("Called about a wrong PO number")
    card.scroll_into_view_if_needed()
    shot(tab, "customer_feedback_card")
    recorded = Feedback.objects.get(invoice=called)
    assert (recorded.rating, recorded.source, recorded.created_by_id) == (2, "call", user.pk)
