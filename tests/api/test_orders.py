"""Orders through /api/v1/orders/: entry, lifecycle actions, invoicing, listing."""

from decimal import Decimal

import pytest

from invoicing.models import Invoice
from orders.models import Order, OrderEvent
from tests.factories import CustomerFactory, ProductFactory

from .helpers import error_of
from .test_orders_bulk import order_spec

pytestmark = pytest.mark.django_db


def create_order(api, customer, products, **extra):
    payload = {
        "customer": customer.pk,
        "customer_reference": "PO-77",
        "lines": [
            {"product": products[0].pk, "quantity": "2"},
            {"product": products[1].pk, "quantity": "3"},
        ],
        **extra,
    }
    return api.post("/api/v1/orders/", payload, format="json")


def test_order_create_copies_products_and_computes_totals(api, user, eur_customer, products):
    response = create_order(api, eur_customer, products)
    assert response.status_code == 201, response.content
    body = response.json()
    order = Order.objects.get(pk=body["id"])
    assert order.channel == "api"
    assert order.created_by == user
    assert body["number"] == order.number
    assert body["status"] == "draft"
    assert body["customer"] == eur_customer.pk
    assert body["customer_reference"] == "PO-77"
    assert body["currency"] == "EUR"
    # 2 x 149.90 at 20 % and 3 x 32.50 at 5.5 %, as in the shared fixtures.
    assert (body["net_total"], body["tax_total"], body["gross_total"]) == ("397.30", "65.32", "462.62")
    first, second = body["lines"]
    assert first["product"] == products[0].pk
    assert first["description"] == "Office chair"
    assert first["quantity"] == "2.000"
    assert first["unit_price"] == "149.90"
    assert first["discount_percent"] == "0.00"
    assert first["tax_rate"] == products[0].tax_rate_id
    assert first["tax_percent"] == "20.00"
    assert first["net_amount"] == "299.80"
    assert second["net_amount"] == "97.50"


def test_order_line_may_override_price_description_and_discount(api, eur_customer, products):
    payload = {
        "customer": eur_customer.pk,
        "lines": [
            {
                "product": products[0].pk,
                "quantity": "1.5",
                "unit_price": "100.00",
                "description": "Chair, showroom model",
                "discount_percent": "10",
            }
        ],
    }
    response = api.post("/api/v1/orders/", payload, format="json")
    assert response.status_code == 201, response.content
    line = response.json()["lines"][0]
    assert line["description"] == "Chair, showroom model"
    assert line["unit_price"] == "100.00"
    assert line["discount_percent"] == "10.00"
    assert line["net_amount"] == "135.00"
    assert response.json()["gross_total"] == "162.00"


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"lines": []}, "lines"),
        ({"lines": "two chairs"}, "lines"),
        ({"lines": [{"quantity": "2"}]}, "lines"),
        ({"lines": [{"product": "CHAIR", "quantity": "2"}]}, "lines"),
        ({"lines": [{"product": 999999, "quantity": "2"}]}, "lines"),
        ({"lines": [{"product": None, "quantity": "2"}]}, "lines"),
        ({"lines": [{"product": 10**30, "quantity": "2"}]}, "lines"),
        ({"lines": [{"product": True, "quantity": "2"}]}, "lines"),
        ({"lines": ["CHAIR"]}, "lines"),
        ({"lines": [{"product": "P", "quantity": "0"}]}, "lines"),
        ({"lines": [{"product": "P", "quantity": "-1"}]}, "lines"),
        ({"lines": [{"product": "P", "quantity": "two"}]}, "lines"),
        ({"lines": [{"product": "P", "quantity": "Infinity"}]}, "lines"),
        ({"lines": [{"product": "P", "quantity": "1", "discount_percent": "120"}]}, "lines"),
        ({"lines": [{"product": "P", "quantity": "1", "unit_price": "-5"}]}, "lines"),
        ({"customer": 999999}, "customer"),
        ({"customer": "acme"}, "customer"),
        ({"customer": None}, "customer"),
        ({"customer_reference": "x" * 81}, "customer_reference"),
        ({"order_date": "2026-02-30"}, "order_date"),
        ({"order_date": 20260101}, "order_date"),
    ],
)
def test_order_create_garbage_is_400_and_saves_nothing(api, eur_customer, products, payload, field):
    base = {"customer": eur_customer.pk, "lines": [{"product": products[0].pk, "quantity": "1"}]}
    lines = payload.get("lines")
    if isinstance(lines, list):
        payload = {
            **payload,
            "lines": [
                {**line, "product": products[0].pk} if isinstance(line, dict) and line.get("product") == "P" else line
                for line in lines
            ],
        }
    response = api.post("/api/v1/orders/", {**base, **payload}, format="json")
    assert response.status_code == 400, response.content
    assert field in error_of(response)["details"]
    assert not Order.objects.exists()


def test_order_of_an_inactive_product_is_refused(api, eur_customer):
    product = ProductFactory(sku="GONE", active=False)
    response = api.post(
        "/api/v1/orders/",
        {"customer": eur_customer.pk, "lines": [{"product": product.pk, "quantity": "1"}]},
        format="json",
    )
    assert response.status_code == 400
    body = error_of(response)
    assert "GONE" in body["message"]
    assert "lines" in body["details"]
    assert not Order.objects.exists()


def test_order_too_large_for_the_books_is_400_not_500(api, eur_customer, products):
    line = {"product": products[0].pk, "quantity": "99999999999.999", "unit_price": "999999999999.99"}
    response = api.post("/api/v1/orders/", {"customer": eur_customer.pk, "lines": [line]}, format="json")
    assert response.status_code == 400
    assert "lines" in error_of(response)["details"]
    assert not Order.objects.exists()


def test_confirm_fulfill_then_invoice(api, user, eur_customer, products):
    order_id = create_order(api, eur_customer, products).json()["id"]

    confirmed = api.post(f"/api/v1/orders/{order_id}/confirm/")
    assert confirmed.status_code == 200
    assert confirmed.json()["status"] == "confirmed"
    assert confirmed.json()["confirmed_at"]

    fulfilled = api.post(f"/api/v1/orders/{order_id}/fulfill/")
    assert fulfilled.status_code == 200
    assert fulfilled.json()["status"] == "fulfilled"

    response = api.post(f"/api/v1/orders/{order_id}/invoice/")
    assert response.status_code == 201, response.content
    invoice = response.json()
    assert invoice["status"] == "draft"
    assert invoice["kind"] == "invoice"
    assert invoice["number"] is None
    assert invoice["customer"] == eur_customer.pk
    assert invoice["gross_total"] == "462.62"
    assert invoice["balance"] == "462.62"
    assert [line["sku"] for line in invoice["lines"]] == ["CHAIR", "BOOK"]
    assert Order.objects.get(pk=order_id).status == "invoiced"
    # Every move was recorded with who made it.
    moves = list(OrderEvent.objects.filter(order_id=order_id).values_list("to_status", "actor"))
    assert moves == [("draft", user.pk), ("confirmed", user.pk), ("fulfilled", user.pk), ("invoiced", user.pk)]


def test_an_order_is_invoiced_only_once(api, make_fulfilled_order, eur_customer):
    order = make_fulfilled_order(eur_customer)
    assert api.post(f"/api/v1/orders/{order.pk}/invoice/").status_code == 201
    again = api.post(f"/api/v1/orders/{order.pk}/invoice/")
    assert again.status_code == 409
    assert error_of(again)["code"] == "invalid_state"
    assert Invoice.objects.count() == 1


@pytest.mark.parametrize(
    ("verb", "status_before"),
    [("fulfill", "draft"), ("invoice", "draft"), ("confirm", "cancelled"), ("cancel", "cancelled")],
)
def test_illegal_moves_are_409_and_change_nothing(api, eur_customer, products, verb, status_before):
    order_id = create_order(api, eur_customer, products).json()["id"]
    if status_before == "cancelled":
        assert api.post(f"/api/v1/orders/{order_id}/cancel/").status_code == 200
    response = api.post(f"/api/v1/orders/{order_id}/{verb}/")
    assert response.status_code == 409
    body = error_of(response)
    assert body["code"] == "invalid_state"
    assert Order.objects.get(pk=order_id).status == status_before
    assert not Invoice.objects.exists()


def test_cancel_records_the_reason(api, eur_customer, products):
    order_id = create_order(api, eur_customer, products).json()["id"]
    response = api.post(f"/api/v1/orders/{order_id}/cancel/", {"reason": "Customer changed its mind"}, format="json")
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    event = OrderEvent.objects.get(order_id=order_id, to_status="cancelled")
    assert event.note == "Customer changed its mind"


def test_cancel_with_garbage_body_is_400(api, eur_customer, products):
    order_id = create_order(api, eur_customer, products).json()["id"]
    for body, content_type in [("{not json", "application/json"), ('["a"]', "application/json")]:
        response = api.post(f"/api/v1/orders/{order_id}/cancel/", body, content_type=content_type)
        assert response.status_code == 400
        error_of(response)
    assert Order.objects.get(pk=order_id).status == "draft"


def test_confirm_refused_for_a_customer_on_hold(api, products):
    customer = CustomerFactory(on_hold=True, on_hold_reason="Unpaid since March")
    order_id = create_order(api, customer, products).json()["id"]
    response = api.post(f"/api/v1/orders/{order_id}/confirm/")
    assert response.status_code == 409
    body = error_of(response)
    assert body["code"] == "customer_on_hold"
    assert "Unpaid since March" in body["message"]
    assert Order.objects.get(pk=order_id).status == "draft"


def test_confirm_refused_above_the_credit_limit_names_the_figures(api, products):
    customer = CustomerFactory(credit_limit=Decimal("400.00"))
    order_id = create_order(api, customer, products).json()["id"]
    response = api.post(f"/api/v1/orders/{order_id}/confirm/")
    assert response.status_code == 409
    body = error_of(response)
    assert body["code"] == "credit_limit_exceeded"
    assert body["details"] == {"credit_limit": "400.00", "exposure": "0", "order_total": "462.62"}


def test_actions_on_unknown_orders_are_404(api):
    for url in ["/api/v1/orders/999999/confirm/", "/api/v1/orders/abc/fulfill/", "/api/v1/orders/999999/invoice/"]:
        response = api.post(url)
        assert response.status_code == 404
        assert error_of(response)["code"] == "not_found"
    assert api.get("/api/v1/orders/99999999999999999999999/").status_code == 404


def test_orders_are_not_editable(api, eur_customer, products):
    order_id = create_order(api, eur_customer, products).json()["id"]
    assert api.patch(f"/api/v1/orders/{order_id}/", {"customer_reference": "X"}, format="json").status_code == 405
    assert api.put(f"/api/v1/orders/{order_id}/", {}, format="json").status_code == 405
    assert api.delete(f"/api/v1/orders/{order_id}/").status_code == 405
    assert Order.objects.get(pk=order_id).customer_reference == "PO-77"


def test_order_list_filters_by_status_and_customer(api, make_fulfilled_order, products):
    first, second = CustomerFactory(), CustomerFactory()
    fulfilled = make_fulfilled_order(first)
    draft = create_order(api, second, products).json()["id"]
    ids = lambda url: [r["id"] for r in api.get(url).json()["results"]]  # noqa: E731
    assert ids("/api/v1/orders/?status=fulfilled") == [fulfilled.pk]
    assert ids("/api/v1/orders/?status=draft") == [draft]
    assert sorted(ids("/api/v1/orders/?status=draft&status=fulfilled")) == sorted([draft, fulfilled.pk])
    assert ids(f"/api/v1/orders/?customer={first.pk}") == [fulfilled.pk]
    assert ids("/api/v1/orders/?customer=999999") == []
    bad = api.get("/api/v1/orders/?status=shipped")
    assert bad.status_code == 400
    assert "status" in error_of(bad)["details"]
    assert api.get("/api/v1/orders/?customer=abc").status_code == 400


def test_order_list_query_count_does_not_grow_with_rows(api, make_fulfilled_order, django_assert_max_num_queries):
    for _ in range(6):
        make_fulfilled_order(CustomerFactory())
    # count + orders + their lines
    with django_assert_max_num_queries(3):
        response = api.get("/api/v1/orders/")
    assert response.status_code == 200
    assert response.json()["count"] == 6
    assert all(len(r["lines"]) == 2 for r in response.json()["results"])


def test_shared_fields_show_an_order_exactly_as_drf_would(api, eur_customer, products):
    """The read serializers bind their fields once per class (orders.api.FieldsOnceModelSerializer);
    what they show must be what DRF's own per-instance fields show, field by field."""
    from rest_framework import serializers

    from orders.api import OrderLineSerializer, OrderSerializer

    created = api.post("/api/v1/orders/", order_spec(eur_customer, products), format="json")
    assert created.status_code == 201, created.content
    order = Order.objects.prefetch_related("lines").get(pk=created.json()["id"])
    generic = serializers.Serializer.to_representation  # DRF's own loop over freshly built fields
    shown = OrderSerializer(order).data
    drf = generic(OrderSerializer(order), order)
    assert {k: v for k, v in shown.items() if k != "lines"} == {k: v for k, v in drf.items() if k != "lines"}
    assert shown["lines"] == [generic(OrderLineSerializer(line), line) for line in order.lines.all()]
    assert len(shown["lines"]) == len(order_spec(eur_customer, products)["lines"]) > 0
    assert shown["number"] and shown["gross_total"] == str(order.gross_total)


def _lean_and_drf(payload):
    from orders.api import OrderCreateSerializer, lean_order_input, prefetch_order_relations

    prefetched = prefetch_order_relations([payload])
    serializer = OrderCreateSerializer(data=payload, context={"prefetched": prefetched})
    drf = None
    if serializer.is_valid():
        drf = {**serializer.validated_data, "lines": [dict(line) for line in serializer.validated_data["lines"]]}
    return lean_order_input(payload, prefetched), drf


@pytest.mark.parametrize(
    "extra, line",
    [
        ({}, {"quantity": "2"}),
        ({}, {"quantity": 3}),
        ({}, {"quantity": 1.25}),
        ({}, {"quantity": " 2.004 ", "unit_price": "10.5", "discount_percent": "12.34"}),
        ({}, {"quantity": "1", "unit_price": None, "description": "  Special chair  "}),
        ({}, {"quantity": "1", "description": "", "discount_percent": 0}),
        ({"customer_reference": " PO-1 ", "notes": "", "order_date": "2026-02-28"}, {"quantity": "1"}),
        ({"entry_started_at": "2026-01-05T10:00:00+02:00"}, {"quantity": "1"}),
        ({"entry_started_at": "2026-01-05T10:00:00"}, {"quantity": "1"}),
        ({"unknown": "ignored"}, {"quantity": "1", "colour": "ignored"}),
    ],
)
def test_the_lean_validator_reads_a_valid_order_exactly_as_the_serializer(eur_customer, products, extra, line):
    payload = {"customer": str(eur_customer.pk), "lines": [{"product": products[0].pk, **line}], **extra}
    lean, drf = _lean_and_drf(payload)
    assert drf is not None
    assert lean == drf


@pytest.mark.parametrize(
    "change",
    [
        {"lines": [{"product": "P", "quantity": "0"}]},
        {"lines": [{"product": "P", "quantity": "1.0001"}]},
        {"lines": [{"product": "P", "quantity": "NaN"}]},
        {"lines": [{"product": "P"}]},
        {"lines": [{"product": "P", "quantity": "1", "description": None}]},
        {"lines": [{"product": "P", "quantity": "1", "unit_price": "1.001"}]},
        {"lines": [{"product": 999999, "quantity": "1"}]},
        {"lines": [{"product": "P", "quantity": "1"}] * 1001},
        {"lines": []},
        {"lines": {"0": {"product": "P", "quantity": "1"}}},
        {"customer": 999999},
        {"customer": True},
        {"customer_reference": "x" * 81},
        {"notes": None},
        {"order_date": "yesterday"},
        {"entry_started_at": "2999-01-01T00:00:00Z"},
    ],
)
def test_the_lean_validator_leaves_every_refusal_to_the_serializer(eur_customer, products, change):
    payload = {"customer": eur_customer.pk, "lines": [{"product": products[0].pk, "quantity": "1"}], **change}
    if isinstance(payload["lines"], list):
        payload["lines"] = [
            {**x, "product": products[0].pk} if x.get("product") == "P" else x for x in payload["lines"]
        ]
    lean, drf = _lean_and_drf(payload)
    assert drf is None
    assert lean is None


def test_the_entry_lookup_loads_customer_products_and_tax_rates_as_the_orm(
    eur_customer, products, django_assert_num_queries
):
    from billing.models import Customer
    from orders.api import CUSTOMER_ENTRY_FIELDS, prefetch_order_relations
    from orders.models import Product

    payload = {"customer": eur_customer.pk, "lines": [{"product": p.pk} for p in products] + [{"product": 999999}]}
    with django_assert_num_queries(2):
        found = prefetch_order_relations([payload, {"customer": 999998, "lines": []}])
    assert found[Customer][999998] is None and found[Product][999999] is None
    customer = found[Customer][eur_customer.pk]
    assert {f: getattr(customer, f) for f in CUSTOMER_ENTRY_FIELDS} == {
        f: getattr(eur_customer, f) for f in CUSTOMER_ENTRY_FIELDS
    }
    for product in products:
        loaded = found[Product][product.pk]
        with django_assert_num_queries(0):
            mine = {f: getattr(loaded, f) for f in ("id", "sku", "name", "unit", "unit_price", "active")}
            rate = {f: getattr(loaded.tax_rate, f) for f in ("id", "name", "rate", "category", "legal_note")}
        db = Product.objects.select_related("tax_rate").get(pk=product.pk)
        assert mine == {f: getattr(db, f) for f in mine}
        assert rate == {f: getattr(db.tax_rate, f) for f in rate}
        assert loaded.tax_rate_id == db.tax_rate_id and not loaded._state.adding
    # A field order entry does not read is still there, loaded on access.
    assert found[Customer][eur_customer.pk].payment_terms_id == eur_customer.payment_terms_id
