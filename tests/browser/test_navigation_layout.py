"""The top navigation at the widths finance staff use: on one line from 1200 px (every link and the
user menu inside the window), behind the menu button below that, and still reachable from it."""

import re

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize("width", [1200, 1280, 1366, 1440, 1920])
def test_the_navigation_fits_on_one_line(page, login, screenshot, width):
    page.set_viewport_size({"width": width, "height": 700})
    login()
    page.goto("/invoices/")
    nav = page.locator("nav.otc-navbar")
    assert nav.bounding_box()["height"] < 60, "the bar wrapped onto a second line"
    menu = page.get_by_test_id("user-menu").bounding_box()
    assert menu["x"] + menu["width"] <= width, "the user menu runs off the window"
    expect(page.get_by_role("button", name="Toggle navigation")).to_be_hidden()
    screenshot(f"navigation_{width}")


def test_below_1200_px_the_links_sit_behind_the_menu_button(page, login, screenshot):
    page.set_viewport_size({"width": 1024, "height": 700})
    login()
    page.goto("/invoices/")
    payments = page.locator("nav.otc-navbar").get_by_role("link", name="Payments")
    expect(payments).to_be_hidden()
    page.get_by_role("button", name="Toggle navigation").click()
    expect(page.locator("#mainnav")).to_have_class(re.compile(r"\bshow\b"))  # opened, not still opening
    expect(payments).to_be_visible()
    screenshot("navigation_1024_open")
    payments.click()
    expect(page).to_have_url("/payments/")
