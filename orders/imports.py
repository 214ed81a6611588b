"""Orders from a CSV file: parse and check every row (preview, nothing saved), then create the
valid orders as drafts through orders.services.order_create, in chunks that commit with their progress.

One row is one order line; rows with the same customer code and customer reference form one order.
Parsing is one pass over the file plus two queries (customers by code, products by SKU) and one for
references already used, so a 10,000-row file is checked in well under a second.
"""

import csv
import io
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation

from django.db import transaction
from django.db.models.functions import Upper
from django.utils import timezone

from billing.errors import DomainError, ValidationFailed
from billing.models import Customer

from . import services
from .models import Order, OrderChannel, OrderImport, OrderImportStatus, Product

MAX_BYTES = 5 * 1024 * 1024
MAX_ROWS = 20_000
MAX_LINES_PER_ORDER = 1000
MAX_ISSUES_SHOWN = 500
# A preview nobody imported is dropped after this long.
PREVIEW_TTL = timedelta(days=1)
# One import request creates orders for about this long, then hands back its progress.
CHUNK_SECONDS = 2.0
CHUNK_MAX_ORDERS = 250

COLUMNS = {
    "customer_code": ("customer_code", "customer", "customer_no", "code"),
    "customer_reference": ("customer_reference", "reference", "customer_ref", "po", "po_number"),
    "order_date": ("order_date", "date"),
    "sku": ("sku", "product", "product_sku"),
    "quantity": ("quantity", "qty"),
    "unit_price": ("unit_price", "price"),
    "discount_percent": ("discount_percent", "discount", "discount_%"),
}
REQUIRED = ("customer_code", "sku", "quantity")
DATE_FORMATS = ("%Y-%m-%d", "%d/%m/%Y", "%d.%m.%Y")

EXAMPLE_CSV = """customer_code,customer_reference,order_date,sku,quantity,unit_price,discount_percent
C00001,PO-4711,2026-03-02,CHAIR,2,,
C00001,PO-4711,2026-03-02,BOOK,3,,10
C00002,PO-88,2026-03-02,CHAIR,1.5,140.00,
"""


class ImportFileError(ValidationFailed):
    """The file as a whole cannot be read: not text, no header, too big."""

    code = "import_file_invalid"


@dataclass
class _Order:
    key: tuple[str, str]
    first_row: int
    customer: Customer | None
    reference: str
    order_date: date | None
    rows: list[int] = field(default_factory=list)
    lines: list[dict] = field(default_factory=list)
    errors: int = 0
    warnings: list[str] = field(default_factory=list)


def _decode(raw: bytes) -> str:
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise ImportFileError("The file is not a text file in UTF-8 or Windows-1252.")


def _column_name(header: str) -> str:
    return header.strip().lower().replace(" ", "_").replace("-", "_")


def _number(text: str, *, comma_decimal: bool, places: int, label: str) -> Decimal:
    """A decimal from a cell: plain digits with '.' (or ',' in semicolon files), at most `places` decimals."""
    value = text.strip().replace("\u00a0", "").replace(" ", "")
    if comma_decimal and "," in value and "." not in value:
        value = value.replace(",", ".")
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise ValueError(f"{label} “{text.strip()}” is not a number.") from None
    if not number.is_finite():
        raise ValueError(f"{label} “{text.strip()}” is not a number.")
    if -number.as_tuple().exponent > places:
        raise ValueError(f"{label} {text.strip()} has more than {places} decimals.")
    if abs(number) >= services.MAX_AMOUNT:
        raise ValueError(f"{label} {text.strip()} is too large.")
    return number


def _date(text: str) -> date:
    for fmt in DATE_FORMATS:
        try:
            return datetime.strptime(text.strip(), fmt).date()
        except ValueError:
            continue
    raise ValueError(f"Order date “{text.strip()}” is not a date; use YYYY-MM-DD or DD/MM/YYYY.")


def _lookup(model, field_name: str, values: set[str]) -> dict[str, object]:
    """Rows by exact value, falling back to a case-insensitive match, in one query."""
    if not values:
        return {}
    qs = model.objects.annotate(upper_key=Upper(field_name)).filter(upper_key__in={v.upper() for v in values})
    if model is Product:
        qs = qs.select_related("tax_rate")
    found = list(qs)
    exact = {getattr(obj, field_name): obj for obj in found}
    folded: dict[str, object] = {}
    for obj in found:
        folded.setdefault(getattr(obj, field_name).upper(), obj)
    return {v: exact.get(v) or folded.get(v.upper()) for v in values if exact.get(v) or folded.get(v.upper())}


def parse_orders_csv(raw: bytes, *, actor=None) -> dict:
    """Check every row of an orders CSV; returns the JSON-able preview stored on an OrderImport:
    {"orders": [...], "issues": [...], "counts": {...}, "ignored_columns": [...]}. Saves nothing."""
    if len(raw) > MAX_BYTES:
        raise ImportFileError(f"The file is larger than {MAX_BYTES // (1024 * 1024)} MB; split it.")
    text = _decode(raw)
    first_line = text.split("\n", 1)[0]
    delimiter = max((";", ",", "\t"), key=first_line.count)
    if not first_line.count(delimiter):
        delimiter = ","
    comma_decimal = delimiter == ";"
    rows = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = next(rows)
    except StopIteration:
        raise ImportFileError("The file is empty.") from None
    except csv.Error as exc:
        raise ImportFileError(f"The file is not valid CSV: {exc}.") from None
    positions: dict[str, int] = {}
    ignored = []
    for index, name in enumerate(header):
        canonical = next((key for key, names in COLUMNS.items() if _column_name(name) in names), None)
        if canonical is None:
            if name.strip():
                ignored.append(name.strip())
        elif canonical in positions:
            raise ImportFileError(f"The column “{name.strip()}” appears twice.")
        else:
            positions[canonical] = index
    missing = [name for name in REQUIRED if name not in positions]
    if missing:
        raise ImportFileError(
            f"The header row lacks the column(s) {', '.join(missing)}. "
            f"Expected: {', '.join(COLUMNS)} (unit_price, discount_percent, order_date and reference optional)."
        )

    records = []
    line_no = 1
    try:
        for line_no, row in enumerate(rows, start=2):
            if not any(cell.strip() for cell in row):
                continue
            if len(records) >= MAX_ROWS:
                raise ImportFileError(f"The file has more than {MAX_ROWS:,} rows; split it.")
            records.append((line_no, {name: (row[i] if i < len(row) else "") for name, i in positions.items()}))
    except csv.Error as exc:
        raise ImportFileError(f"The file is not valid CSV near line {line_no + 1}: {exc}.") from None
    if not records:
        raise ImportFileError("The file has a header but no rows.")

    codes = {r["customer_code"].strip() for _, r in records if r["customer_code"].strip()}
    customers = _lookup(Customer, "code", codes)
    products = _lookup(Product, "sku", {r["sku"].strip() for _, r in records if r["sku"].strip()})
    may_override = services.may_override_price(actor)
    today = timezone.localdate()

    issues: list[dict] = []
    orders: dict[tuple[str, str], _Order] = {}

    for line_no, r in records:
        row_errors: list[tuple[str, str]] = []

        def error(column: str, message: str, errors=row_errors) -> None:
            errors.append((column, message))

        code = r["customer_code"].strip()
        customer = customers.get(code)
        if not code:
            error("customer_code", "The customer code is missing.")
        elif customer is None:
            error("customer_code", f"No customer has the code “{code}”.")
        reference = r.get("customer_reference", "").strip()
        if len(reference) > 80:
            error("customer_reference", "The customer reference is longer than 80 characters.")
            reference = reference[:80]
        order_date = today
        if r.get("order_date", "").strip():
            try:
                order_date = _date(r["order_date"])
            except ValueError as exc:
                error("order_date", str(exc))
                order_date = None

        sku = r["sku"].strip()
        product = products.get(sku)
        if not sku:
            error("sku", "The SKU is missing.")
        elif product is None:
            error("sku", f"No product has the SKU “{sku}”.")
        elif not product.active:
            error("sku", f"{product.sku} is inactive and cannot be ordered.")

        quantity = unit_price = None
        discount = Decimal("0")
        try:
            quantity = _number(r["quantity"], comma_decimal=comma_decimal, places=3, label="Quantity")
            if quantity <= 0:
                error("quantity", "The quantity must be greater than 0.")
        except ValueError as exc:
            error("quantity", str(exc) if r["quantity"].strip() else "The quantity is missing.")
        if r.get("unit_price", "").strip():
            try:
                unit_price = _number(r["unit_price"], comma_decimal=comma_decimal, places=2, label="Unit price")
                if unit_price < 0:
                    error("unit_price", "The unit price cannot be negative.")
                elif product is not None and unit_price != product.unit_price and not may_override:
                    error(
                        "unit_price",
                        f"You may not override prices: leave the unit price empty for the list price "
                        f"{product.unit_price}.",
                    )
            except ValueError as exc:
                error("unit_price", str(exc))
        if r.get("discount_percent", "").strip():
            try:
                discount = _number(
                    r["discount_percent"].strip().rstrip("%"), comma_decimal=comma_decimal, places=2, label="Discount"
                )
                if not 0 <= discount <= 100:
                    error("discount_percent", "The discount must be between 0 and 100 %.")
            except ValueError as exc:
                error("discount_percent", str(exc))

        key = ((customer.code if customer else code.upper()), reference)
        order = orders.get(key)
        if order is None:
            order = orders[key] = _Order(
                key=key, first_row=line_no, customer=customer, reference=reference, order_date=order_date
            )
            if customer is not None and customer.on_hold:
                order.warnings.append(
                    f"{customer.name} is on hold ({customer.on_hold_reason}): the order is imported as a draft "
                    f"and cannot be confirmed until the hold is lifted."
                )
        elif order_date is not None and order.order_date is not None and order_date != order.order_date:
            error("order_date", f"The order date differs from row {order.first_row}, the first row of this order.")
        order.rows.append(line_no)
        if len(order.rows) > MAX_LINES_PER_ORDER:
            error("sku", f"An order holds at most {MAX_LINES_PER_ORDER} lines.")

        if not row_errors and product is not None and quantity is not None:
            spec = {"product": product, "quantity": quantity, "unit_price": unit_price, "discount_percent": discount}
            currency = customer.currency if customer else "EUR"
            if services.line_figures(spec, currency)[2] >= services.MAX_AMOUNT:
                error("quantity", "The line comes to more than an amount can hold.")
            else:
                order.lines.append(spec)
        for column, message in row_errors:
            issues.append({"row": line_no, "level": "error", "column": column, "message": message})
        order.errors += len(row_errors)

    _warn_reused_references(orders)
    for order in orders.values():
        for message in order.warnings:
            issues.append({"row": order.first_row, "level": "warning", "column": "", "message": message})
    issues.sort(key=lambda issue: (issue["row"], issue["level"] != "error"))
    payload_orders = [_payload(order) for order in orders.values()]
    return {
        "orders": payload_orders,
        "issues": issues,
        "ignored_columns": ignored,
        "counts": {
            "rows": len(records),
            "orders": len(payload_orders),
            "errors": sum(1 for issue in issues if issue["level"] == "error"),
            "warnings": sum(1 for issue in issues if issue["level"] == "warning"),
            "error_rows": len({issue["row"] for issue in issues if issue["level"] == "error"}),
            "importable": sum(1 for order in payload_orders if not order["errors"]),
        },
    }


def _warn_reused_references(orders: dict[tuple[str, str], _Order]) -> None:
    """A reference the customer already has an order for: importing the same file twice shows here."""
    wanted = {(o.customer.pk, o.reference): o for o in orders.values() if o.customer is not None and o.reference}
    if not wanted:
        return
    existing = Order.objects.filter(
        customer_id__in={pk for pk, _ in wanted}, customer_reference__in={ref for _, ref in wanted}
    ).values_list("customer_id", "customer_reference", "number")
    for customer_id, reference, number in existing:
        order = wanted.get((customer_id, reference))
        if order is not None:
            order.warnings.append(
                f"{order.customer.code} already has order {number} with reference {reference}: "
                f"importing creates another one."
            )


def _payload(order: _Order) -> dict:
    currency = order.customer.currency if order.customer else ""
    net = tax = gross = None
    if not order.errors and order.lines:
        _, totals = services.order_quote(currency=currency, lines=order.lines)
        net, tax, gross = str(totals.net), str(totals.tax), str(totals.gross)
    return {
        "customer": order.customer.pk if order.customer else None,
        "customer_code": order.key[0],
        "customer_name": order.customer.name if order.customer else "",
        "currency": currency,
        "reference": order.reference,
        "order_date": order.order_date.isoformat() if order.order_date else None,
        "rows": order.rows,
        "lines": [
            {
                "product": line["product"].pk,
                "sku": line["product"].sku,
                "quantity": str(line["quantity"]),
                "unit_price": None if line["unit_price"] is None else str(line["unit_price"]),
                "discount_percent": str(line["discount_percent"]),
            }
            for line in order.lines
        ],
        "errors": order.errors,
        "warnings": order.warnings,
        "net": net,
        "tax": tax,
        "gross": gross,
    }


def order_import_create(*, actor, filename: str, raw: bytes) -> OrderImport:
    """Check an uploaded file and keep the result for its preview. Nothing else is saved.
    Raises ImportFileError when the file cannot be read at all."""
    preview = parse_orders_csv(raw, actor=actor)
    OrderImport.objects.filter(status=OrderImportStatus.PREVIEW, created_at__lt=timezone.now() - PREVIEW_TTL).delete()
    counts = preview["counts"]
    return OrderImport.objects.create(
        created_by=actor,
        filename=filename[:255],
        payload=preview,
        row_count=counts["rows"],
        order_count=counts["orders"],
        error_count=counts["errors"],
        warning_count=counts["warnings"],
        importable_count=counts["importable"],
    )


def order_import_run(
    *,
    batch: OrderImport,
    actor,
    include_invalid_file: bool = False,
    seconds: float = CHUNK_SECONDS,
    max_orders: int = CHUNK_MAX_ORDERS,
) -> OrderImport:
    """Create the next chunk of the file's valid orders as drafts (channel "import").

    A file with errors imports nothing unless `include_invalid_file` (the user chose "Import the valid
    orders"): orders with an error in any of their rows are then skipped, the others created.
    The batch is locked while a chunk runs and its progress commits together with the orders the
    chunk created, so a second tab or a retried request never creates an order twice."""
    with transaction.atomic():
        batch = OrderImport.objects.select_for_update().get(pk=batch.pk)
        if batch.status == OrderImportStatus.DONE:
            return batch
        if batch.status == OrderImportStatus.PREVIEW:
            if batch.error_count and not include_invalid_file:
                raise ValidationFailed(
                    "The file has errors: correct them and upload it again, or choose to import the valid orders.",
                    code="import_has_errors",
                )
            batch.status = OrderImportStatus.RUNNING
            batch.started_at = timezone.now()
        importable = [order for order in batch.payload["orders"] if not order["errors"]]
        todo = importable[batch.processed_count : batch.processed_count + max_orders]
        customers = Customer.objects.in_bulk({order["customer"] for order in todo})
        products = Product.objects.select_related("tax_rate").in_bulk(
            {line["product"] for order in todo for line in order["lines"]}
        )
        deadline = time.monotonic() + seconds
        results = list(batch.results)
        for spec in todo:
            outcome = _import_one(spec, customers, products, actor=actor, started=batch.created_at)
            results.append(outcome)
            batch.processed_count += 1
            if "number" in outcome:
                batch.created_count += 1
            else:
                batch.failed_count += 1
            if time.monotonic() > deadline:
                break
        batch.results = results
        if batch.processed_count >= batch.importable_count:
            batch.status = OrderImportStatus.DONE
            batch.finished_at = timezone.now()
        # The parsed file (payload) is not written again: it never changes after the preview.
        batch.save(
            update_fields=[
                "status",
                "started_at",
                "finished_at",
                "processed_count",
                "created_count",
                "failed_count",
                "results",
            ]
        )
    return batch


def _import_one(spec: dict, customers: dict, products: dict, *, actor, started) -> dict:
    outcome = {"rows": spec["rows"][:1], "customer": spec["customer_code"], "reference": spec["reference"]}
    customer = customers.get(spec["customer"])
    missing = [line["sku"] for line in spec["lines"] if line["product"] not in products]
    if customer is None or missing:
        outcome["error"] = "The customer was deleted." if customer is None else f"Deleted product(s): {missing}."
        return outcome
    lines = [
        {
            "product": products[line["product"]],
            "quantity": Decimal(line["quantity"]),
            "unit_price": None if line["unit_price"] is None else Decimal(line["unit_price"]),
            "discount_percent": Decimal(line["discount_percent"]),
        }
        for line in spec["lines"]
    ]
    try:
        order = services.order_create(
            customer=customer,
            lines=lines,
            actor=actor,
            customer_reference=spec["reference"],
            order_date=date.fromisoformat(spec["order_date"]),
            channel=OrderChannel.IMPORT,
            entry_started_at=started,
        )
    except DomainError as exc:
        outcome["error"] = exc.message
    else:
        outcome.update(number=order.number, id=order.pk, gross=str(order.gross_total), currency=order.currency)
    return outcome
