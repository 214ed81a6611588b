"""CSV import of orders: preview with per-row errors (nothing saved), import of valid orders only,
grouping by customer and reference, chunked runs that never create an order twice."""

import threading
import time
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import IntegrityError, connection, transaction

from billing.errors import ValidationFailed
from orders import imports
from orders.models import Order, OrderImport, OrderImportStatus, Product
from tests.factories import CustomerFactory, ProductFactory, UserFactory

D = Decimal
pytestmark = pytest.mark.django_db

HEADER = "customer_code,customer_reference,order_date,sku,quantity,unit_price,discount_percent\n"


@pytest.fixture
def shop(products):
    return {
        "dupont": CustomerFactory(code="DUP", name="Dupont SA"),
        "martin": CustomerFactory(code="MAR", name="Martin SARL"),
        "held": CustomerFactory(code="HLD", name="Held Ltd", on_hold=True, on_hold_reason="Unpaid since May"),
        "old": ProductFactory(sku="OLD", name="Discontinued", active=False, tax_rate=products[0].tax_rate),
    }


def upload(client, text: str, name: str = "orders.csv"):
    return client.post("/orders/import/", {"file": SimpleUploadedFile(name, text.encode(), "text/csv")})


def batch_of(response) -> OrderImport:
    assert response.status_code == 302, response.content.decode()[:2000]
    return OrderImport.objects.get(pk=int(response["Location"].rstrip("/").split("/")[-1]))


GOOD = HEADER + (
    "DUP,PO-1,2026-03-02,CHAIR,2,,\n"
    "DUP,PO-1,2026-03-02,BOOK,3,,10\n"
    "MAR,PO-1,02/03/2026,CHAIR,1.5,140.00,\n"
    "dup,PO-2,,BOOK,1,,\n"
)


def test_a_good_file_previews_then_imports_draft_orders(staff, user, shop):
    batch = batch_of(upload(staff, GOOD))
    assert not Order.objects.exists()  # the preview saves nothing
    assert (batch.row_count, batch.order_count, batch.error_count, batch.importable_count) == (4, 3, 0, 3)
    page = staff.get(batch.get_absolute_url()).content.decode()
    assert "The file is fine." in page and "Import 3 orders" in page
    # DUP/PO-1: 2 x 149.90 = 299.80 at 20 % (59.96) + 3 x 32.50 x 0.9 = 87.75 at 5.5 % (4.83)
    assert "452.34" in page

    response = staff.post(f"/orders/import/{batch.pk}/run/", follow=True)
    assert "Imported 3 draft order(s)" in response.content.decode()
    orders = list(Order.objects.order_by("pk"))
    assert [(o.customer.code, o.customer_reference, o.channel, o.status) for o in orders] == [
        ("DUP", "PO-1", "import", "draft"),
        ("MAR", "PO-1", "import", "draft"),
        ("DUP", "PO-2", "import", "draft"),
    ]
    first = orders[0]
    assert [(line.product.sku, line.quantity, line.discount_percent) for line in first.lines.order_by("position")] == [
        ("CHAIR", D("2.000"), D("0.00")),
        ("BOOK", D("3.000"), D("10.00")),
    ]
    assert first.gross_total == D("452.34")
    assert str(first.order_date) == "2026-03-02"
    assert orders[1].lines.get().unit_price == D("140.00")  # the superuser may override prices
    assert all(o.created_by == user for o in orders)
    batch.refresh_from_db()
    assert (batch.status, batch.created_count, batch.failed_count) == (OrderImportStatus.DONE, 3, 0)
    # Running it again creates nothing more.
    staff.post(f"/orders/import/{batch.pk}/run/")
    assert Order.objects.count() == 3


BAD = HEADER + (
    "DUP,PO-7,2026-03-02,CHAIR,2,,\n"  # 2: fine, but its order has a bad row (3)
    "DUP,PO-7,2026-03-02,BOOK,two,,\n"  # 3: bad number
    "NOPE,PO-8,2026-03-02,CHAIR,1,,\n"  # 4: unknown customer
    "MAR,PO-9,2026-03-02,NOSKU,1,,\n"  # 5: unknown SKU
    "MAR,PO-10,2026-03-02,OLD,1,,\n"  # 6: inactive product
    "MAR,PO-11,2026-03-02,CHAIR,1,,150\n"  # 7: discount over 100
    "MAR,PO-12,2026-13-45,CHAIR,0,-1,\n"  # 8: bad date, zero quantity, negative price
    "HLD,PO-13,2026-03-02,BOOK,1,,\n"  # 9: on hold: a warning only
    "MAR,PO-14,2026-03-02,BOOK,4,,\n"  # 10: fine
)


def test_a_file_with_bad_rows_shows_every_error_and_saves_nothing(staff, shop):
    batch = batch_of(upload(staff, BAD))
    issues = {(i["row"], i["column"]): i["message"] for i in batch.payload["issues"] if i["level"] == "error"}
    assert issues == {
        (3, "quantity"): "Quantity “two” is not a number.",
        (4, "customer_code"): "No customer has the code “NOPE”.",
        (5, "sku"): "No product has the SKU “NOSKU”.",
        (6, "sku"): "OLD is inactive and cannot be ordered.",
        (7, "discount_percent"): "The discount must be between 0 and 100 %.",
        (8, "order_date"): "Order date “2026-13-45” is not a date; use YYYY-MM-DD or DD/MM/YYYY.",
        (8, "quantity"): "The quantity must be greater than 0.",
        (8, "unit_price"): "The unit price cannot be negative.",
    }
    warnings = [i for i in batch.payload["issues"] if i["level"] == "warning"]
    assert [(w["row"], "on hold" in w["message"]) for w in warnings] == [(9, True)]
    assert (batch.order_count, batch.importable_count) == (8, 2)  # PO-13 (on hold) and PO-14

    page = staff.get(batch.get_absolute_url()).content.decode()
    assert "The file has 8 errors." in page
    assert "Import the valid orders (2)" in page
    assert "No customer has the code “NOPE”." in page
    assert not Order.objects.exists()

    # Importing without choosing "the valid orders" is refused and saves nothing.
    response = staff.post(f"/orders/import/{batch.pk}/run/", follow=True)
    assert "The file has errors" in response.content.decode()
    with pytest.raises(ValidationFailed):
        imports.order_import_run(batch=batch, actor=None)
    assert not Order.objects.exists()
    batch.refresh_from_db()
    assert batch.status == OrderImportStatus.PREVIEW


def test_import_the_valid_orders_only(staff, shop):
    batch = batch_of(upload(staff, BAD))
    response = staff.post(f"/orders/import/{batch.pk}/run/", {"include_invalid": "1"}, HTTP_HX_REQUEST="true")
    assert response["HX-Redirect"] == batch.get_absolute_url()  # done in one chunk: the result page
    html = staff.get(batch.get_absolute_url()).content.decode()
    assert 'data-testid="import-summary"' in html
    assert "Imported 2 draft order(s) from orders.csv." in html
    assert 'data-testid="import-skipped">6<' in html
    refs = sorted(Order.objects.values_list("customer_reference", flat=True))
    assert refs == ["PO-13", "PO-14"]  # PO-7 had one bad row: the whole order is skipped
    batch.refresh_from_db()
    assert (batch.created_count, batch.failed_count, batch.status) == (2, 0, OrderImportStatus.DONE)


def test_rows_group_by_customer_and_reference(staff, shop):
    text = HEADER + (
        "DUP,PO-1,2026-03-02,CHAIR,1,,\n"
        "MAR,PO-1,2026-03-02,CHAIR,1,,\n"  # same reference, other customer: another order
        "DUP,PO-1,2026-03-02,BOOK,2,,\n"  # back to DUP/PO-1, not adjacent: still the same order
        "DUP,,2026-03-02,BOOK,5,,\n"  # no reference: one order per customer for those rows
        "DUP,,2026-03-02,CHAIR,5,,\n"
        "DUP,PO-1,2026-03-05,CHAIR,1,,\n"  # same order, other date: an error
    )
    batch = batch_of(upload(staff, text))
    groups = [(o["customer_code"], o["reference"], o["rows"]) for o in batch.payload["orders"]]
    assert groups == [("DUP", "PO-1", [2, 4, 7]), ("MAR", "PO-1", [3]), ("DUP", "", [5, 6])]
    assert [i["message"] for i in batch.payload["issues"]] == [
        "The order date differs from row 2, the first row of this order."
    ]
    imports.order_import_run(batch=batch, actor=None, include_invalid_file=True)
    assert sorted((o.customer.code, o.customer_reference, o.lines.count()) for o in Order.objects.all()) == [
        ("DUP", "", 2),
        ("MAR", "PO-1", 1),
    ]


def test_a_reference_already_ordered_is_a_warning(staff, shop):
    first = batch_of(upload(staff, HEADER + "DUP,PO-55,2026-03-02,CHAIR,1,,\n"))
    imports.order_import_run(batch=first, actor=None)
    again = batch_of(upload(staff, HEADER + "DUP,PO-55,2026-03-02,CHAIR,1,,\n"))
    (warning,) = again.payload["issues"]
    assert warning["level"] == "warning"
    assert "already has order SO-" in warning["message"] and "PO-55" in warning["message"]
    assert again.importable_count == 1


def test_semicolon_files_take_decimal_commas_and_windows_encoding(staff, shop):
    text = "Customer code;Customer reference;SKU;Qty;Unit price;Discount\nDUP;Bestellung Nr 5;CHAIR;1,5;;2,5%\n"
    response = staff.post("/orders/import/", {"file": SimpleUploadedFile("é.csv", text.encode("cp1252"), "text/csv")})
    batch = batch_of(response)
    assert batch.error_count == 0, batch.payload["issues"]
    (line,) = batch.payload["orders"][0]["lines"]
    assert (line["quantity"], line["discount_percent"]) == ("1.5", "2.5")


def test_a_price_override_needs_the_permission(client, shop):
    clerk = UserFactory(username="importer")
    client.force_login(clerk)
    text = HEADER + "DUP,PO-1,,CHAIR,1,99.00,\nDUP,PO-2,,CHAIR,1,149.90,\n"
    batch = batch_of(upload(client, text))
    (issue,) = batch.payload["issues"]
    assert (issue["row"], issue["column"]) == (2, "unit_price")
    assert "You may not override prices" in issue["message"]
    assert batch.importable_count == 1  # the list price written out is fine


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "The submitted file is empty."),
        (b"customer_code,sku\nDUP,CHAIR\n", "lacks the column(s) quantity"),
        (HEADER.encode(), "has a header but no rows"),
        (b"\x00\x9d\xff\xfe" * 10, "not a text file"),
        (b"sku,sku,quantity,customer\n", "appears twice"),
    ],
)
def test_unreadable_files_are_refused_on_the_form(staff, shop, content, message):
    response = staff.post("/orders/import/", {"file": SimpleUploadedFile("x.csv", content, "text/csv")})
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not OrderImport.objects.exists()


def test_too_many_rows_are_refused(shop, user, monkeypatch):
    monkeypatch.setattr(imports, "MAX_ROWS", 3)
    with pytest.raises(imports.ImportFileError, match="more than 3 rows"):
        imports.parse_orders_csv((HEADER + "DUP,,,CHAIR,1,,\n" * 4).encode(), actor=user)


def test_an_import_belongs_to_its_uploader(client, staff, shop):
    batch = batch_of(upload(staff, GOOD))
    client.force_login(UserFactory(username="someone-else"))
    assert client.get(batch.get_absolute_url()).status_code == 404
    assert client.post(f"/orders/import/{batch.pk}/run/").status_code == 404
    assert not Order.objects.exists()


def test_the_example_file_downloads_and_imports_cleanly(staff, products):
    CustomerFactory(code="C00001")
    CustomerFactory(code="C00002")
    response = staff.get("/orders/import/example.csv")
    assert response["Content-Disposition"] == 'attachment; filename="orders-example.csv"'
    batch = batch_of(upload(staff, response.content.decode()))
    assert (batch.error_count, batch.order_count) == (0, 2)


def test_chunks_resume_where_they_stopped(staff, shop):
    text = HEADER + "".join(f"DUP,PO-{i},2026-03-02,BOOK,1,,\n" for i in range(7))
    batch = batch_of(upload(staff, text))
    batch = imports.order_import_run(batch=batch, actor=None, max_orders=3)
    assert (batch.status, batch.processed_count, Order.objects.count()) == (OrderImportStatus.RUNNING, 3, 3)
    page = staff.get(batch.get_absolute_url()).content.decode()
    assert "Continue the import" in page and "3 of 7" in page
    batch = imports.order_import_run(batch=batch, actor=None, max_orders=3)
    batch = imports.order_import_run(batch=batch, actor=None, max_orders=3)
    assert (batch.status, batch.processed_count) == (OrderImportStatus.DONE, 7)
    assert sorted(Order.objects.values_list("customer_reference", flat=True)) == [f"PO-{i}" for i in range(7)]


def test_a_product_deactivated_after_the_preview_fails_that_order_only(staff, shop, products):
    batch = batch_of(upload(staff, GOOD))
    Product.objects.filter(sku="CHAIR").update(active=False)
    batch = imports.order_import_run(batch=batch, actor=None)
    assert (batch.created_count, batch.failed_count) == (1, 2)
    failures = [r["error"] for r in batch.results if "error" in r]
    assert failures == ["Product CHAIR is inactive and cannot be ordered."] * 2
    assert list(Order.objects.values_list("customer_reference", flat=True)) == ["PO-2"]


@pytest.mark.django_db(transaction=True)
def test_two_tabs_running_the_same_import_create_each_order_once(shop, user):
    text = HEADER + "".join(f"MAR,PO-{i},2026-03-02,BOOK,1,,\n" for i in range(40))
    batch = imports.order_import_create(actor=user, filename="race.csv", raw=text.encode())
    errors = []

    def run():
        try:
            current = batch
            while current.status != OrderImportStatus.DONE:
                current = imports.order_import_run(batch=current, actor=user, max_orders=5)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert Order.objects.count() == 40
    assert sorted(Order.objects.values_list("customer_reference", flat=True)) == sorted(f"PO-{i}" for i in range(40))
    batch.refresh_from_db()
    assert (batch.processed_count, batch.created_count) == (40, 40)


@pytest.mark.slow
def test_ten_thousand_rows_parse_fast_and_import_in_short_requests(staff, shop, products):
    rate = products[0].tax_rate
    Product.objects.bulk_create(
        [Product(sku=f"SKU-{i:03d}", name=f"Item {i}", unit_price=D("3.10"), tax_rate=rate) for i in range(200)]
    )
    customers = [CustomerFactory(code=f"K{i:03d}") for i in range(50)]
    rows = [
        f"{customers[(i // 5) % 50].code},PO-{i // 5},2026-03-02,SKU-{i % 200:03d},{1 + i % 7},,{i % 3}\n"
        for i in range(10_000)
    ]
    started = time.monotonic()
    batch = batch_of(upload(staff, HEADER + "".join(rows)))
    parse_seconds = time.monotonic() - started
    assert (batch.row_count, batch.order_count, batch.error_count) == (10_000, 2000, 0)
    assert parse_seconds < 10, parse_seconds

    slowest = 0.0
    requests = 0
    while batch.status != OrderImportStatus.DONE:
        started = time.monotonic()
        response = staff.post(f"/orders/import/{batch.pk}/run/", HTTP_HX_REQUEST="true")
        slowest = max(slowest, time.monotonic() - started)
        requests += 1
        assert response.status_code == 200
        batch.refresh_from_db()
    assert Order.objects.count() == 2000
    assert slowest < imports.CHUNK_SECONDS + 3, slowest
    print(f"\n10,000 rows: check {parse_seconds:.2f}s; import in {requests} requests, slowest {slowest:.2f}s")


def test_progress_counts_cannot_disagree_in_the_database(shop, user):
    batch = imports.order_import_create(actor=user, filename="x.csv", raw=GOOD.encode())
    with pytest.raises(IntegrityError), transaction.atomic():
        too_many = batch.importable_count + 1
        OrderImport.objects.filter(pk=batch.pk).update(processed_count=too_many, created_count=too_many)
    with pytest.raises(IntegrityError), transaction.atomic():
        OrderImport.objects.filter(pk=batch.pk).update(processed_count=1, created_count=0, failed_count=0)
