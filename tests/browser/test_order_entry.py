"""Order entry in a real browser, keyboard only: a clerk types, arrows through suggestions, presses
Enter and Tab, and confirms with Ctrl+Enter, never touching the mouse. Plus the credit refusal and
its override on the entry page, and the CSV import preview."""

from decimal import Decimal

import pytest
from playwright.sync_api import expect

from billing.models import AuditEvent
from orders.models import Order, OrderStatus
from tests.factories import CustomerFactory, ProductFactory, TaxRateFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
D = Decimal


@pytest.fixture
def catalogue(products):
    standard = TaxRateFactory(name="Standard 20%")
    reduced = TaxRateFactory(name="Reduced 5.5%")
    return [
        *products,
        ProductFactory(sku="COFFEE", name="Coffee beans", unit="kg", unit_price=D("18.40"), tax_rate=reduced),
        ProductFactory(sku="LAMP", name="Desk lamp", unit_price=D("45.00"), tax_rate=standard),
        ProductFactory(sku="PAPER", name="A4 paper", unit="ream", unit_price=D("4.99"), tax_rate=standard),
    ]


def suggestion(page, q: str):
    """The highlighted suggestion answering `q` (the list is fresh)."""
    return page.locator(f'.otc-suggest.show [role=option].active[data-q="{q}"]')


def take_product(page, line: int, text: str, *, arrows: int = 0, expect_label: str, wait: bool = True) -> None:
    field = page.get_by_label(f"Product, line {line}", exact=True)
    expect(field).to_be_focused()
    page.keyboard.type(text)
    if wait:
        expect(suggestion(page, text)).to_be_visible()
    for _ in range(arrows):
        page.keyboard.press("ArrowDown")
    page.keyboard.press("Enter")
    expect(field).to_have_value(expect_label)
    expect(page.get_by_label(f"Quantity, line {line}", exact=True)).to_be_focused()


def test_a_five_line_order_entered_and_confirmed_with_the_keyboard_only(page, login, screenshot, catalogue):
    customer = CustomerFactory(code="C70001", name="Brasserie du Port", credit_limit=D("5000.00"))
    CustomerFactory(code="C70002", name="Brasserie Atlantique")  # sorts first
    login()
    page.goto("/orders/new/")
    screenshot("entry_empty")
    keyboard = page.keyboard

    # The customer: type, arrow down to the second match, up and down again, Enter.
    expect(page.get_by_role("combobox", name="Customer")).to_be_focused()
    keyboard.type("brass")
    expect(suggestion(page, "brass")).to_be_visible()
    active = page.locator("#customer-options [role=option].active")
    expect(page.locator("#customer-options [role=option]")).to_have_count(2)
    expect(active).to_contain_text("Brasserie Atlantique")
    keyboard.press("ArrowDown")
    expect(active).to_contain_text("Brasserie du Port")
    keyboard.press("ArrowUp")
    expect(active).to_contain_text("Brasserie Atlantique")
    keyboard.press("ArrowDown")
    keyboard.press("Enter")
    expect(page.get_by_test_id("customer-card")).to_contain_text("C70001")
    expect(page.get_by_test_id("customer-card")).to_contain_text("headroom 5,000.00")
    expect(page.get_by_label("Customer reference")).to_be_focused()
    keyboard.type("PO-KB-1")
    keyboard.press("Tab")
    expect(page.get_by_label("Order date")).to_be_focused()
    keyboard.press("Tab")

    # Line 1: Tab through the fields, Enter in the last one opens line 2.
    take_product(page, 1, "CHAIR", expect_label="CHAIR — Office chair")
    keyboard.type("2")
    keyboard.press("Tab")
    expect(page.get_by_label("Unit price, line 1")).to_be_focused()
    keyboard.press("Tab")
    keyboard.type("10")
    keyboard.press("Enter")

    # Line 2: "c" suggests CHAIR then COFFEE; one arrow down; an agreed price.
    take_product(page, 2, "c", arrows=1, expect_label="COFFEE — Coffee beans")
    expect(page.locator("#order-lines tr").nth(1).locator("td[data-unit]")).to_have_text("kg")
    keyboard.type("2.5")
    keyboard.press("Tab")
    keyboard.type("16.90")
    keyboard.press("Tab")
    keyboard.press("Enter")

    # Line 3: Enter walks through the fields as well.
    take_product(page, 3, "book", expect_label="BOOK — Accounting handbook")
    keyboard.type("3")
    keyboard.press("Enter")
    expect(page.get_by_label("Unit price, line 3")).to_be_focused()
    keyboard.press("Enter")
    expect(page.get_by_label("Discount percent, line 3")).to_be_focused()
    keyboard.press("Enter")

    # Line 4, with its suggestions open for the screenshot.
    field = page.get_by_label("Product, line 4", exact=True)
    expect(field).to_be_focused()
    keyboard.type("lamp")
    expect(suggestion(page, "lamp")).to_be_visible()
    screenshot("entry_mid_entry_suggestions")
    keyboard.press("Enter")
    keyboard.type("1")
    keyboard.press("Tab")
    keyboard.press("Tab")
    keyboard.type("5")
    keyboard.press("Enter")

    # Line 5: Esc closes the suggestions, an arrow brings them back.
    field = page.get_by_label("Product, line 5", exact=True)
    expect(field).to_be_focused()
    keyboard.type("paper")
    expect(suggestion(page, "paper")).to_be_visible()
    keyboard.press("Escape")
    expect(page.locator(".otc-suggest.show")).to_have_count(0)
    expect(field).to_have_attribute("aria-expanded", "false")
    keyboard.press("ArrowDown")
    expect(suggestion(page, "paper")).to_be_visible()
    keyboard.press("Enter")
    keyboard.type("12")

    # Live totals from the server: 20 % on 269.82 + 42.75 + 59.88 = 372.45 -> 74.49;
    # 5.5 % on 42.25 + 97.50 = 139.75 -> 7.69 (7.68625 rounded half up).
    expect(page.get_by_test_id("entry-line-count")).to_have_text("5 lines")
    expect(page.get_by_test_id("entry-net")).to_contain_text("512.20")
    expect(page.get_by_test_id("entry-gross")).to_contain_text("594.38")
    expect(page.get_by_test_id("entry-tax-row")).to_have_count(2)
    expect(page.locator("#order-lines tr").nth(0).locator("td[data-net]")).to_have_text("269.82")
    expect(page.get_by_test_id("entry-credit")).to_contain_text("4,405.62")
    screenshot("entry_filled")

    keyboard.press("Control+Enter")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Confirmed")
    expect(page.get_by_test_id("order-total")).to_contain_text("594.38")

    order = Order.objects.get()
    assert order.customer == customer
    assert order.status == OrderStatus.CONFIRMED
    assert order.channel == "ui"
    assert order.customer_reference == "PO-KB-1"
    assert (order.net_total, order.tax_total, order.gross_total) == (D("512.20"), D("82.18"), D("594.38"))
    lines = list(order.lines.order_by("position").select_related("product"))
    assert [(line.product.sku, line.quantity, line.unit_price, line.discount_percent) for line in lines] == [
        ("CHAIR", D("2.000"), D("149.90"), D("10.00")),
        ("COFFEE", D("2.500"), D("16.90"), D("0.00")),
        ("BOOK", D("3.000"), D("32.50"), D("0.00")),
        ("LAMP", D("1.000"), D("45.00"), D("5.00")),
        ("PAPER", D("12.000"), D("4.99"), D("0.00")),
    ]
    assert order.entry_started_at < order.created_at <= order.confirmed_at
    assert order.entry_started_at < order.confirmed_at


def test_a_credit_refusal_shows_inline_and_a_manager_overrides_it(page, login, screenshot, catalogue):
    CustomerFactory(code="C80001", name="Tight Budget SARL", credit_limit=D("100.00"))
    login()
    page.goto("/orders/new/")
    keyboard = page.keyboard
    keyboard.type("tight")
    expect(suggestion(page, "tight")).to_be_visible()
    keyboard.press("Enter")
    keyboard.press("Tab")
    keyboard.press("Tab")
    # Typed and Enter pressed before any suggestion arrived: the best match is taken when it does.
    take_product(page, 1, "chair", expect_label="CHAIR — Office chair", wait=False)
    keyboard.type("1")
    keyboard.press("Tab")
    keyboard.press("Tab")
    keyboard.press("Enter")
    # A line added by mistake goes again with the keyboard: Tab to its remove button, Enter.
    take_product(page, 2, "book", expect_label="BOOK — Accounting handbook")
    keyboard.type("1")
    keyboard.press("Tab")
    keyboard.press("Tab")
    keyboard.press("Tab")
    expect(page.get_by_role("button", name="Remove line 2")).to_be_focused()
    keyboard.press("Enter")
    expect(page.locator("#order-lines tr")).to_have_count(2)  # line 1 and the blank spare line
    expect(page.get_by_test_id("entry-gross")).to_contain_text("179.88")
    expect(page.get_by_test_id("entry-credit")).to_contain_text("Over the credit limit by 79.88")

    keyboard.press("Control+Enter")
    expect(page.get_by_test_id("form-errors")).to_contain_text(
        "Credit limit exceeded: limit 100.00, current exposure 0, this order 179.88 EUR."
    )
    override = page.get_by_label("Reason for confirming over the credit limit")
    expect(override).to_be_focused()
    expect(page.get_by_label("Product, line 1", exact=True)).to_have_value("CHAIR — Office chair")
    assert not Order.objects.exists()
    screenshot("entry_error_credit")

    keyboard.type("Paid in advance by wire")
    keyboard.press("Control+Enter")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Confirmed")
    expect(page.locator("main")).to_contain_text("Credit limit overridden: Paid in advance by wire")
    order = Order.objects.get()
    assert order.lines.count() == 1
    assert AuditEvent.objects.filter(action="order.credit_limit_overridden", object_id=order.pk).exists()


def test_import_preview_then_import_the_valid_orders(page, login, screenshot, catalogue, tmp_path):
    CustomerFactory(code="DUP", name="Dupont SA")
    CustomerFactory(code="HLD", name="Held Ltd", on_hold=True, on_hold_reason="Unpaid since May")
    csv = tmp_path / "orders.csv"
    csv.write_text(
        "customer_code,customer_reference,order_date,sku,quantity,unit_price,discount_percent\n"
        "DUP,PO-1,2026-03-02,CHAIR,2,,\n"
        "DUP,PO-1,2026-03-02,BOOK,3,,10\n"
        "DUP,PO-2,2026-03-02,LAMP,two,,\n"
        "NOPE,PO-3,2026-03-02,CHAIR,1,,\n"
        "HLD,PO-4,2026-03-02,PAPER,10,,\n"
    )
    login()
    page.goto("/orders/import/")
    screenshot("import_upload")
    page.get_by_label("CSV file").set_input_files(str(csv))
    page.get_by_role("button", name="Check the file").click()
    expect(page.get_by_test_id("stat-errors")).to_have_text("2")
    expect(page.get_by_test_id("import-issues")).to_contain_text("Quantity “two” is not a number.")
    expect(page.get_by_test_id("import-issues")).to_contain_text("No customer has the code “NOPE”.")
    expect(page.get_by_test_id("import-issues")).to_contain_text("on hold")
    screenshot("import_preview")
    assert not Order.objects.exists()

    page.get_by_role("button", name="Import the valid orders (2)").click()
    expect(page.get_by_test_id("import-created")).to_have_text("2")
    expect(page.get_by_test_id("import-skipped")).to_have_text("2")
    screenshot("import_done")
    assert sorted(Order.objects.values_list("customer_reference", "channel")) == [
        ("PO-1", "import"),
        ("PO-4", "import"),
    ]
