"""Order entry by API at volume: POST /api/v1/orders/bulk/, the reported entry start, list filters
and ordering, and query counts that do not grow with lines or orders."""

from datetime import UTC, date, datetime, timedelta

import pytest
from django.utils import timezone

from orders.models import Order, OrderEvent, OrderLine
from otc.models import IdempotencyRecord
from tests.factories import CustomerFactory, ProductFactory

from .helpers import error_of

pytestmark = pytest.mark.django_db

BULK = "/api/v1/orders/bulk/"


def order_spec(customer, products, **extra):
    return {
        "customer": customer.pk,
        "lines": [
            {"product": products[0].pk, "quantity": "2"},
            {"product": products[1].pk, "quantity": "3"},
        ],
        **extra,
    }


# --- Bulk ----------------------------------------------------------------------------------------


def test_bulk_creates_every_order_and_answers_201(api, user, eur_customer, products):
    other = CustomerFactory(currency="USD")
    payload = {
        "orders": [
            order_spec(eur_customer, products, customer_reference="PO-1"),
            order_spec(other, products, customer_reference="PO-2"),
            order_spec(eur_customer, products, customer_reference="PO-3", order_date="2026-01-15"),
        ]
    }
    response = api.post(BULK, payload, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["created"], body["failed"]) == (3, 0)
    assert [r["index"] for r in body["results"]] == [0, 1, 2]
    assert all(r["status"] == 201 for r in body["results"])
    orders = [r["order"] for r in body["results"]]
    assert [o["customer_reference"] for o in orders] == ["PO-1", "PO-2", "PO-3"]
    assert [o["currency"] for o in orders] == ["EUR", "USD", "EUR"]
    assert orders[2]["order_date"] == "2026-01-15"
    assert all(o["gross_total"] == "462.62" and len(o["lines"]) == 2 for o in orders)
    # What the bulk answer shows is what was stored, and what GET shows.
    for shown in orders:
        assert api.get(f"/api/v1/orders/{shown['id']}/").json() == shown
    assert set(Order.objects.values_list("channel", "created_by", "status")) == {("api", user.pk, "draft")}
    assert OrderLine.objects.count() == 6
    assert OrderEvent.objects.filter(to_status="draft").count() == 3


def test_bulk_saves_the_valid_orders_and_reports_each_failure_207(api, eur_customer, products):
    inactive = ProductFactory(sku="GONE", active=False)
    payload = {
        "orders": [
            order_spec(eur_customer, products, customer_reference="good-1"),
            {"customer": eur_customer.pk, "lines": [{"product": 999999, "quantity": "1"}]},
            {"customer": eur_customer.pk, "lines": [{"product": inactive.pk, "quantity": "1"}]},
            "not an order",
            {"customer": 999999, "lines": []},
            order_spec(eur_customer, products, customer_reference="good-2"),
        ]
    }
    response = api.post(BULK, payload, format="json")
    assert response.status_code == 207, response.content
    body = response.json()
    assert (body["created"], body["failed"]) == (2, 4)
    assert [r["status"] for r in body["results"]] == [201, 400, 400, 400, 400, 201]
    failures = {r["index"]: r["errors"] for r in body["results"] if r["status"] != 201}
    for error in failures.values():
        assert set(error) == {"code", "message", "details"}
        assert "order" not in error
    assert "lines" in failures[1]["details"]
    assert "GONE" in failures[2]["message"]
    assert "non_field_errors" in failures[3]["details"]
    assert {"customer", "lines"} <= set(failures[4]["details"])
    assert sorted(Order.objects.values_list("customer_reference", flat=True)) == ["good-1", "good-2"]
    assert OrderLine.objects.count() == 4


def test_a_database_conflict_in_one_order_is_its_409_and_the_others_are_saved(api, eur_customer, products):
    # A hand-numbered order already holds the number the next order will be given.
    first = api.post("/api/v1/orders/", order_spec(eur_customer, products), format="json").json()
    squatter = Order.objects.create(
        customer=eur_customer, order_date=date(2026, 1, 1), currency="EUR", number=f"SO-{first['id'] + 2:06d}"
    )
    assert squatter.pk == first["id"] + 1
    payload = {"orders": [order_spec(eur_customer, products, customer_reference=f"PO-{i}") for i in range(2)]}
    response = api.post(BULK, payload, format="json")
    assert response.status_code == 207, response.content
    results = response.json()["results"]
    assert [r["status"] for r in results] == [409, 201]
    assert results[0]["errors"]["code"] == "conflict"
    assert list(Order.objects.filter(customer_reference__startswith="PO-").values_list("customer_reference")) == [
        ("PO-1",)
    ]
    assert OrderLine.objects.count() == 4


def test_bulk_where_every_order_fails_is_207_and_saves_nothing(api, eur_customer):
    payload = {"orders": [{"customer": eur_customer.pk, "lines": []}, {"lines": "x"}]}
    response = api.post(BULK, payload, format="json")
    assert response.status_code == 207
    assert (response.json()["created"], response.json()["failed"]) == (0, 2)
    assert not Order.objects.exists()


@pytest.mark.parametrize(
    "payload",
    [{}, {"orders": []}, {"orders": "many"}, {"orders": {"0": {}}}, {"orders": None}, [{"customer": 1}]],
    ids=["missing", "empty", "string", "object", "null", "bare-list"],
)
def test_bulk_envelope_that_is_not_a_list_of_orders_is_400(api, payload):
    response = api.post(BULK, payload, format="json")
    assert response.status_code == 400, response.content
    body = error_of(response)
    assert "orders" in body["details"] or "non_field_errors" in body["details"]
    assert not Order.objects.exists()


def test_bulk_takes_500_orders_and_refuses_501(api, eur_customer, products):
    one_line = {"customer": eur_customer.pk, "lines": [{"product": products[1].pk, "quantity": "1"}]}
    refused = api.post(BULK, {"orders": [one_line] * 501}, format="json")
    assert refused.status_code == 400
    assert "500" in str(error_of(refused)["details"]["orders"])
    assert not Order.objects.exists()

    accepted = api.post(BULK, {"orders": [one_line] * 500}, format="json")
    assert accepted.status_code == 201
    assert accepted.json()["created"] == 500
    assert Order.objects.count() == 500
    assert len(set(Order.objects.values_list("number", flat=True))) == 500


def test_bulk_of_more_than_10000_lines_in_all_is_400(api, eur_customer, products):
    order = {"customer": eur_customer.pk, "lines": [{"product": products[1].pk, "quantity": "1"}] * 1000}
    refused = api.post(BULK, {"orders": [order] * 10 + [order_spec(eur_customer, products)]}, format="json")
    assert refused.status_code == 400
    assert "10000" in str(error_of(refused)["details"]["orders"])
    assert not Order.objects.exists()


def test_bulk_queries_do_not_grow_with_lines_and_stay_flat_per_order(
    api, eur_customer, products, django_assert_max_num_queries
):
    # Customers and products are read once for the whole request; each order then costs its own
    # writes (order, lines, number and totals, event) inside a savepoint: 6 queries.
    many_lines = [{"product": products[i % 2].pk, "quantity": "1"} for i in range(20)]
    payload = {"orders": [{"customer": CustomerFactory().pk, "lines": many_lines} for _ in range(10)]}
    with django_assert_max_num_queries(2 + 6 * 10):
        response = api.post(BULK, payload, format="json")
    assert response.json()["created"] == 10
    assert OrderLine.objects.count() == 200


def test_bulk_retried_with_its_key_creates_nothing_more(api, eur_customer, products):
    payload = {"orders": [order_spec(eur_customer, products), {"customer": eur_customer.pk, "lines": []}]}
    first = api.post(BULK, payload, format="json", headers={"Idempotency-Key": "batch-2026-12-03"})
    assert first.status_code == 207
    again = api.post(BULK, payload, format="json", headers={"Idempotency-Key": "batch-2026-12-03"})
    assert (again.status_code, again.json()) == (207, first.json())
    assert Order.objects.count() == 1
    assert IdempotencyRecord.objects.get().response_status == 207


def test_bulk_needs_authentication(anon, eur_customer, products):
    response = anon.post(BULK, {"orders": [order_spec(eur_customer, products)]}, format="json")
    assert response.status_code == 401
    assert not Order.objects.exists()


# --- Entry start ---------------------------------------------------------------------------------


def test_entry_start_reported_by_the_integrator_is_kept(api, eur_customer, products):
    response = api.post(
        "/api/v1/orders/",
        order_spec(eur_customer, products, entry_started_at="2026-03-02T09:15:00+01:00"),
        format="json",
    )
    assert response.status_code == 201, response.content
    order = Order.objects.get()
    assert order.entry_started_at == datetime(2026, 3, 2, 8, 15, tzinfo=UTC)
    assert response.json()["entry_started_at"] == "2026-03-02T08:15:00Z"


def test_entry_start_defaults_to_now(api, eur_customer, products):
    before = timezone.now()
    api.post("/api/v1/orders/", order_spec(eur_customer, products), format="json")
    order = Order.objects.get()
    assert before <= order.entry_started_at <= order.created_at


def test_entry_start_a_little_ahead_is_clock_skew_and_counts_as_now(api, eur_customer, products):
    ahead = (timezone.now() + timedelta(minutes=2)).isoformat()
    response = api.post("/api/v1/orders/", order_spec(eur_customer, products, entry_started_at=ahead), format="json")
    assert response.status_code == 201
    order = Order.objects.get()
    assert order.entry_started_at <= order.created_at


@pytest.mark.parametrize(
    "value", ["tomorrow", "2026-02-30T10:00:00Z", "", None, 1767225600, "9999-12-31T23:59:59Z", "+10 minutes"]
)
def test_entry_start_that_is_not_a_past_time_is_400(api, eur_customer, products, value):
    if value == "+10 minutes":
        value = (timezone.now() + timedelta(minutes=10)).isoformat()
    response = api.post("/api/v1/orders/", order_spec(eur_customer, products, entry_started_at=value), format="json")
    assert response.status_code == 400, response.content
    assert "entry_started_at" in error_of(response)["details"]
    assert not Order.objects.exists()


# --- List filters and ordering -------------------------------------------------------------------


@pytest.fixture
def dated_orders(api, products):
    """Four orders: (date, customer, gross) chosen so each ordering gives a different sequence."""
    first, second = CustomerFactory(), CustomerFactory()
    specs = [
        (date(2026, 1, 10), first, "5"),
        (date(2026, 2, 20), second, "1"),
        (date(2026, 3, 5), first, "9"),
        (date(2026, 3, 31), second, "3"),
    ]
    ids = []
    for order_date, customer, quantity in specs:
        payload = {
            "customer": customer.pk,
            "order_date": order_date.isoformat(),
            "lines": [{"product": products[1].pk, "quantity": quantity}],
        }
        ids.append(api.post("/api/v1/orders/", payload, format="json").json()["id"])
    return {"ids": ids, "first": first, "second": second}


def listed(api, query: str) -> list[int]:
    response = api.get(f"/api/v1/orders/?{query}")
    assert response.status_code == 200, response.content
    return [row["id"] for row in response.json()["results"]]


def test_order_list_filters_by_order_date_range(api, dated_orders):
    a, b, c, d = dated_orders["ids"]
    assert listed(api, "order_date_after=2026-02-01&ordering=order_date") == [b, c, d]
    assert listed(api, "order_date_before=2026-03-05&ordering=order_date") == [a, b, c]
    assert listed(api, "order_date_after=2026-02-20&order_date_before=2026-03-05&ordering=order_date") == [b, c]
    assert listed(api, "order_date_after=2026-04-01") == []


def test_order_list_combines_date_status_and_customer(api, dated_orders):
    a, _, c, _ = dated_orders["ids"]
    api.post(f"/api/v1/orders/{c}/confirm/")
    first = dated_orders["first"].pk
    assert listed(api, f"customer={first}&ordering=order_date") == [a, c]
    assert listed(api, f"customer={first}&status=draft") == [a]
    assert listed(api, f"customer={first}&status=confirmed&order_date_after=2026-03-01") == [c]


@pytest.mark.parametrize(
    ("ordering", "expected"),
    [
        ("order_date", [0, 1, 2, 3]),
        ("-order_date", [3, 2, 1, 0]),
        ("number", [0, 1, 2, 3]),
        ("-number", [3, 2, 1, 0]),
        ("gross_total", [1, 3, 0, 2]),
        ("-gross_total", [2, 0, 3, 1]),
    ],
)
def test_order_list_ordering(api, dated_orders, ordering, expected):
    ids = dated_orders["ids"]
    assert listed(api, f"ordering={ordering}") == [ids[i] for i in expected]


def test_order_list_default_is_newest_order_date_first(api, dated_orders):
    assert listed(api, "") == list(reversed(dated_orders["ids"]))


@pytest.mark.parametrize(
    "query", ["order_date_after=2026-13-01", "order_date_before=yesterday", "order_date_after=%00", "status=shipped"]
)
def test_order_list_bad_filters_are_400(api, query):
    response = api.get(f"/api/v1/orders/?{query}")
    assert response.status_code == 400
    error_of(response)


# --- Query counts --------------------------------------------------------------------------------


def test_order_create_queries_do_not_grow_with_lines(api, eur_customer, products, django_assert_max_num_queries):
    # Customer and products in one query each, then the order, its lines in one INSERT, number and
    # totals, the draft event: 6, plus the savepoint pair of the test's transaction.
    for n_lines in (1, 25):
        lines = [{"product": products[i % 2].pk, "quantity": "1"} for i in range(n_lines)]
        with django_assert_max_num_queries(8):
            response = api.post("/api/v1/orders/", {"customer": eur_customer.pk, "lines": lines}, format="json")
        assert response.status_code == 201
        assert len(response.json()["lines"]) == n_lines


def test_filtered_order_list_query_count_does_not_grow_with_rows(
    api, make_fulfilled_order, django_assert_max_num_queries
):
    customer = CustomerFactory()
    query = f"/api/v1/orders/?status=fulfilled&customer={customer.pk}&order_date_after=2000-01-01&ordering=-gross_total"
    for rows in (3, 9):
        while Order.objects.count() < rows:
            make_fulfilled_order(customer)
        # count + orders + their lines
        with django_assert_max_num_queries(3):
            response = api.get(query)
        assert response.json()["count"] == rows
        assert all(len(r["lines"]) == 2 for r in response.json()["results"])
