"""The KPI dashboard in a real browser: the figures, a change of period, the drill-down from an
aging bucket to its invoices."""

from datetime import timedelta

from django.utils import timezone
from playwright.sync_api import expect

from tests.factories import CustomerFactory
from tests.test_kpis import Ledger


def test_dashboard_changes_period_and_drills_down_to_a_bucket(page, login, screenshot, db):
    today = timezone.localdate()
    customer = CustomerFactory(name="Northwind SARL")
    led = Ledger()
    late = led.invoice(customer, today - timedelta(days=50), today - timedelta(days=20), 1000)  # 1-30 days
    led.invoice(customer, today - timedelta(days=10), today + timedelta(days=20), 500)  # current
    old = led.invoice(customer, today - timedelta(days=130), today - timedelta(days=100), 300)  # 90+
    paid = led.invoice(customer, today - timedelta(days=200), today - timedelta(days=170), 800)
    led.pay(paid, 800, today - timedelta(days=150))

    login()
    expect(page.get_by_test_id("kpi-open-EUR")).to_contain_text("1,800.00")
    # Last 90 days: sales are the two newer invoices, 1500: DSO = 1800 / 1500 x 90 = 108.0 days.
    expect(page.get_by_test_id("kpi-dso-EUR")).to_contain_text("108.0")
    screenshot("kpi-dashboard")

    page.get_by_label("Period").select_option("365")
    page.get_by_role("button", name="Apply").click()
    page.wait_for_url("**/kpis/?period=365*")
    # Twelve months: all four invoices were sold, 2600, and the paid one shows on time behaviour.
    expect(page.get_by_test_id("period")).to_contain_text("365 days")
    expect(page.get_by_test_id("kpi-on_time_rate-EUR")).to_contain_text("0.0")  # paid 20 days late
    screenshot("kpi-dashboard-12-months")

    page.get_by_test_id("drill-aging_1_30-EUR").click()
    page.wait_for_url("**/invoices/?bucket=1-30*")
    expect(page.get_by_role("heading", level=1)).to_have_text("Invoices")
    rows = page.locator("table.otc-table tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(late.number)
    expect(page.get_by_label("Past due")).to_have_value("1-30")
    screenshot("kpi-drill-down")

    page.go_back()
    page.get_by_test_id("drill-aging_over_90-EUR").click()
    expect(page.locator("table.otc-table tbody tr")).to_have_count(1)
    expect(page.locator("table.otc-table tbody")).to_contain_text(old.number)
