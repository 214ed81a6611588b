"""However malformed the request, the answer is a JSON error, never a 500; lists are paginated
and their query counts stay bounded."""

import pytest

from billing.models import Customer, PaymentTerms, TaxRate
from orders.models import Order, Product
from payments.models import Payment
from tests.factories import CustomerFactory, PaymentTermsFactory, ProductFactory, TaxRateFactory

from .helpers import error_of

pytestmark = pytest.mark.django_db

CREATE_ENDPOINTS = [
    ("/api/v1/tax-rates/", TaxRate),
    ("/api/v1/payment-terms/", PaymentTerms),
    ("/api/v1/customers/", Customer),
    ("/api/v1/products/", Product),
    ("/api/v1/orders/", Order),
    ("/api/v1/payments/", Payment),
]
LIST_ENDPOINTS = [
    "/api/v1/tax-rates/",
    "/api/v1/payment-terms/",
    "/api/v1/customers/",
    "/api/v1/products/",
    "/api/v1/orders/",
    "/api/v1/invoices/",
    "/api/v1/payments/",
]


@pytest.mark.parametrize(("url", "model"), CREATE_ENDPOINTS)
@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        ("{not json", "application/json", 400),
        ("", "application/json", 400),
        ("[]", "application/json", 400),
        ('"a string"', "application/json", 400),
        ("42", "application/json", 400),
        ("null", "application/json", 400),
        ('{"name": NaN}', "application/json", 400),
        ("\x00\xff", "application/json", 400),
        ("name=x&amount=abc&lines=1", "application/x-www-form-urlencoded", 400),
        ("<order/>", "application/xml", 415),
        ("hello", "text/plain", 415),
    ],
)
def test_garbage_bodies_are_json_errors_and_save_nothing(api, url, model, body, content_type, status):
    before = model.objects.count()
    response = api.generic("POST", url, body.encode("latin-1"), content_type=content_type)
    assert response.status_code == status, response.content
    error_of(response)
    assert model.objects.count() == before


@pytest.mark.parametrize(("url", "model"), CREATE_ENDPOINTS)
def test_empty_object_names_the_required_fields(api, url, model):
    response = api.post(url, {}, format="json")
    assert response.status_code == 400
    details = error_of(response)["details"]
    assert details
    assert all(messages == ["This field is required."] for messages in details.values()), details


@pytest.mark.parametrize("url", LIST_ENDPOINTS)
@pytest.mark.parametrize(
    "query",
    [
        "search=%00",
        "search=a%00b",
        "ordering=nonexistent",
        "ordering=%00",
        "page_size=abc",
        "page_size=-1",
        "customer=%00",
        "currency=%00",
        "status=%00",
        "active=maybe",
    ],
)
def test_odd_query_strings_never_500(api, url, query):
    response = api.get(f"{url}?{query}")
    assert response.status_code in (200, 400), response.content
    if response.status_code == 400:
        error_of(response)


@pytest.mark.parametrize("url", LIST_ENDPOINTS)
def test_unknown_or_odd_ids_are_json_404(api, url):
    for pk in ["999999", "abc", "%00", "1.5", "-1", "99999999999999999999999999"]:
        response = api.get(f"{url}{pk}/")
        assert response.status_code == 404, (pk, response.content)
        assert error_of(response)["code"] == "not_found"


@pytest.mark.parametrize("url", LIST_ENDPOINTS)
def test_pages_out_of_range_are_json_404(api, url):
    for page in ["abc", "999", "0"]:
        response = api.get(f"{url}?page={page}")
        assert response.status_code == 404
        error_of(response)


def test_pagination_shape(api):
    for i in range(5):
        TaxRateFactory(name=f"Rate {i}", rate=f"{i}.00")
    first = api.get("/api/v1/tax-rates/?page_size=2&ordering=name").json()
    assert set(first) == {"count", "next", "previous", "results"}
    assert first["count"] == 5
    assert first["previous"] is None
    assert [r["name"] for r in first["results"]] == ["Rate 0", "Rate 1"]
    assert "page=2" in first["next"]
    last = api.get("/api/v1/tax-rates/?page_size=2&ordering=name&page=3").json()
    assert last["next"] is None
    assert [r["name"] for r in last["results"]] == ["Rate 4"]


def test_page_size_is_capped(api):
    for i in range(3):
        TaxRateFactory(name=f"Rate {i}")
    response = api.get("/api/v1/tax-rates/?page_size=100000")
    assert response.status_code == 200
    assert len(response.json()["results"]) == 3


@pytest.mark.parametrize(
    ("url", "make", "queries"),
    [
        ("/api/v1/tax-rates/", lambda i: TaxRateFactory(name=f"Rate {i}"), 2),
        ("/api/v1/payment-terms/", lambda i: PaymentTermsFactory(name=f"Net {i}"), 2),
        ("/api/v1/customers/", lambda i: CustomerFactory(), 3),  # + the contacts of the page, in one query
        ("/api/v1/products/", lambda i: ProductFactory(), 2),
    ],
)
def test_master_data_lists_take_two_queries_whatever_the_rows(api, url, make, queries, django_assert_max_num_queries):
    for i in range(8):
        make(i)
    with django_assert_max_num_queries(queries):  # count + rows
        response = api.get(url)
    assert response.status_code == 200
    assert response.json()["count"] == 8


def test_token_authenticated_list_adds_one_query_only(anon, make_issued_invoice, django_assert_max_num_queries):
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("create_api_token", "erp-bot", stdout=out, stderr=StringIO())
    anon.credentials(HTTP_AUTHORIZATION=f"Token {out.getvalue().strip()}")
    for _ in range(4):
        make_issued_invoice(CustomerFactory())
    with django_assert_max_num_queries(4):  # token + user, count, invoices, lines
        response = anon.get("/api/v1/invoices/")
    assert response.status_code == 200
    assert response.json()["count"] == 4
