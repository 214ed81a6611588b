"""The limit for bench/orders.py: a bare Django view that writes the same rows as POST
/api/v1/orders/ (1 order + its lines) with one INSERT and one `executemany`, and nothing else:
no authentication, no validation, no serializer, no event row, no re-read."""

import json
from decimal import Decimal

from django.db import connection, transaction
from django.http import HttpResponseNotAllowed, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from billing import money
from orders.services import ORDER_NUMBER_SQL

_products: dict[int, tuple] | None = None
_currencies: dict[int, str] | None = None

ORDER_SQL = f"""
WITH s AS (SELECT nextval(pg_get_serial_sequence('orders_order', 'id')) AS id)
INSERT INTO orders_order (id, number, customer_id, customer_reference, order_date, currency, status,
    net_total, tax_total, gross_total, channel, entry_started_at, notes, created_by_id, created_at)
SELECT s.id, {ORDER_NUMBER_SQL.format(id="s.id")}, %s, %s, %s, %s, 'draft', %s, %s, %s, 'api', %s, '', NULL, %s
FROM s RETURNING id, number
"""
LINE_SQL = """
INSERT INTO orders_orderline (order_id, position, product_id, description, quantity, unit, unit_price,
    discount_percent, tax_rate_id, tax_percent, tax_category, net_amount)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
"""


def _master_data():
    # Loaded once per worker: the limit does not look products up per request.
    global _products, _currencies
    if _products is None:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT p.id, p.name, p.unit, p.unit_price, p.tax_rate_id, t.rate, t.category "
                "FROM orders_product p JOIN billing_taxrate t ON t.id = p.tax_rate_id"
            )
            _products = {row[0]: row[1:] for row in cursor.fetchall()}
            cursor.execute("SELECT id, currency FROM billing_customer")
            _currencies = dict(cursor.fetchall())
    return _products, _currencies


@csrf_exempt
def order_create(request):
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    payload = json.loads(request.body)
    products, currencies = _master_data()
    customer_id = int(payload["customer"])
    currency = currencies[customer_id]
    lines = []
    for position, spec in enumerate(payload["lines"], start=1):
        name, unit, price, tax_rate_id, rate, category = products[int(spec["product"])]
        quantity = Decimal(spec["quantity"])
        net = money.line_net(quantity, price, money.ZERO, currency)
        lines.append([position, spec["product"], name, quantity, unit, price, 0, tax_rate_id, rate, category, net])
    totals = money.totals((money.TaxableLine(net=line[10], rate=line[8], category=line[9]) for line in lines), currency)
    now = timezone.now()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            ORDER_SQL,
            [
                customer_id,
                payload.get("customer_reference", ""),
                timezone.localdate(),
                currency,
                totals.net,
                totals.tax,
                totals.gross,
                now,
                now,
            ],
        )
        order_id, number = cursor.fetchone()
        cursor.executemany(LINE_SQL, [[order_id, *line] for line in lines])
    return JsonResponse({"id": order_id, "number": number}, status=201)
