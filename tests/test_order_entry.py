"""Order entry: the permission rules (price override, credit override), the product catalogue pages,
and the entry page with its htmx endpoints (search, totals, lines), through the test client."""

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.core import signing
from django.urls import reverse
from django.utils import timezone

from billing.errors import Conflict, PermissionDenied, ValidationFailed
from billing.models import AuditEvent
from orders import services
from orders.forms import entry_token
from orders.models import Order, OrderEvent, OrderStatus, Product
from tests.factories import CustomerFactory, ProductFactory, TaxRateFactory, UserFactory

D = Decimal
pytestmark = pytest.mark.django_db


def grant(user, *codenames):
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="orders", codename__in=codenames))
    # has_perm caches what it read; the tests hand the same object to the next call.
    for cache in ("_perm_cache", "_user_perm_cache", "_group_perm_cache"):
        user.__dict__.pop(cache, None)
    return user


@pytest.fixture
def clerk(db):
    return UserFactory(username="clerk")


@pytest.fixture
def manager(db):
    return grant(UserFactory(username="manager"), "override_line_price", "override_credit_limit")


@pytest.fixture
def as_clerk(client, clerk):
    client.force_login(clerk)
    return client


@pytest.fixture
def as_manager(client, manager):
    client.force_login(manager)
    return client


def chair_lines(products, quantity="3"):
    return [{"product": products[0], "quantity": D(quantity)}]


# --- Service rules: price override -------------------------------------------------------------


def test_a_clerk_may_not_override_a_line_price_and_nothing_is_saved(customer, products, clerk):
    line = {"product": products[0], "quantity": D("1"), "unit_price": D("99.00")}
    with pytest.raises(PermissionDenied) as exc:
        services.order_create(customer=customer, lines=[line], actor=clerk)
    assert exc.value.status == 403
    assert exc.value.code == "permission_denied"
    assert "CHAIR" in exc.value.message and "149.90" in exc.value.message
    assert not Order.objects.exists()


def test_a_user_with_the_permission_may_override_the_price(customer, products, clerk):
    grant(clerk, "override_line_price")
    line = {"product": products[0], "quantity": D("2"), "unit_price": D("99.00")}
    order = services.order_create(customer=customer, lines=[line], actor=clerk)
    assert order.lines.get().unit_price == D("99.00")
    assert order.net_total == D("198.00")


def test_the_list_price_typed_in_and_discounts_need_no_permission(customer, products, clerk):
    lines = [
        {"product": products[0], "quantity": D("1"), "unit_price": D("149.90"), "discount_percent": D("10")},
        {"product": products[1], "quantity": D("2"), "discount_percent": D("5.5")},
    ]
    order = services.order_create(customer=customer, lines=lines, actor=clerk)
    # 149.90 x 0.9 = 134.91; 2 x 32.50 x 0.945 = 61.425 -> 61.43
    assert [line.net_amount for line in order.lines.order_by("position")] == [D("134.91"), D("61.43")]


def test_an_anonymous_actor_may_not_override_a_price(customer, products):
    from django.contrib.auth.models import AnonymousUser

    line = {"product": products[0], "quantity": D("1"), "unit_price": D("1.00")}
    with pytest.raises(PermissionDenied):
        services.order_create(customer=customer, lines=[line], actor=AnonymousUser())
    assert not Order.objects.exists()


# --- Service rules: credit override ------------------------------------------------------------


@pytest.fixture
def over_limit_order(products, clerk):
    """3 chairs: 449.70 net + 89.94 tax = 539.64, against a limit of 500."""
    customer = CustomerFactory(credit_limit=D("500.00"))
    return services.order_create(customer=customer, lines=chair_lines(products), actor=clerk)


def test_a_manager_confirms_over_the_limit_with_a_reason_and_it_is_audited(over_limit_order, manager):
    order = services.order_confirm(order=over_limit_order, actor=manager, override_reason="  Prepaid by wire  ")
    assert order.status == OrderStatus.CONFIRMED
    assert order.confirmed_at is not None
    event = OrderEvent.objects.get(order=order, to_status=OrderStatus.CONFIRMED)
    assert event.actor == manager
    assert "Prepaid by wire" in event.note
    assert "limit 500.00" in event.note and "exposure 0" in event.note and "539.64" in event.note
    audit = AuditEvent.objects.get(action="order.credit_limit_overridden", object_id=order.pk)
    assert audit.actor == manager
    assert audit.changes == {
        "credit_limit": "500.00",
        "exposure": "0",
        "order_total": "539.64",
        "over_by": "39.64",
        "currency": "EUR",
        "reason": "Prepaid by wire",
    }


def test_a_reason_without_the_permission_is_refused(over_limit_order, clerk):
    grant(clerk, "override_line_price")  # the other permission does not help
    with pytest.raises(PermissionDenied) as exc:
        services.order_confirm(order=over_limit_order, actor=clerk, override_reason="Trust me")
    assert exc.value.status == 403
    assert "limit 500.00" in exc.value.message and "this order 539.64" in exc.value.message
    over_limit_order.refresh_from_db()
    assert over_limit_order.status == OrderStatus.DRAFT
    assert not AuditEvent.objects.filter(action="order.credit_limit_overridden").exists()


@pytest.mark.parametrize("reason", ["", "   "])
def test_even_a_manager_needs_a_reason(over_limit_order, manager, reason):
    with pytest.raises(Conflict) as exc:
        services.order_confirm(order=over_limit_order, actor=manager, override_reason=reason)
    assert exc.value.code == "credit_limit_exceeded"
    over_limit_order.refresh_from_db()
    assert over_limit_order.status == OrderStatus.DRAFT


def test_an_overlong_reason_is_refused_before_anything_changes(over_limit_order, manager):
    with pytest.raises(ValidationFailed):
        services.order_confirm(order=over_limit_order, actor=manager, override_reason="x" * 161)
    over_limit_order.refresh_from_db()
    assert over_limit_order.status == OrderStatus.DRAFT


def test_a_hold_is_not_overridden_by_the_credit_permission(products, manager):
    customer = CustomerFactory(credit_limit=D("1.00"), on_hold=True, on_hold_reason="Disputed invoices")
    order = services.order_create(customer=customer, lines=chair_lines(products), actor=manager)
    with pytest.raises(Conflict) as exc:
        services.order_confirm(order=order, actor=manager, override_reason="Urgent")
    assert exc.value.code == "customer_on_hold"


def test_within_the_limit_a_reason_is_not_an_override(products, manager):
    customer = CustomerFactory(credit_limit=D("10000.00"))
    order = services.order_create(customer=customer, lines=chair_lines(products), actor=manager)
    services.order_confirm(order=order, actor=manager, override_reason="Just in case")
    assert OrderEvent.objects.get(order=order, to_status="confirmed").note == ""
    assert not AuditEvent.objects.filter(action="order.credit_limit_overridden").exists()


def test_create_and_confirm_saves_nothing_when_credit_control_refuses(products, clerk):
    customer = CustomerFactory(credit_limit=D("100.00"))
    with pytest.raises(Conflict):
        services.order_create_and_confirm(customer=customer, lines=chair_lines(products), actor=clerk)
    assert not Order.objects.exists()


# --- API ----------------------------------------------------------------------------------------


def test_api_confirm_takes_an_override_reason(over_limit_order, manager, clerk):
    from rest_framework.test import APIClient

    api = APIClient()
    api.force_authenticate(clerk)
    url = f"/api/v1/orders/{over_limit_order.pk}/confirm/"
    refused = api.post(url, {"override_reason": "Please"}, format="json")
    assert refused.status_code == 403
    assert refused.json()["code"] == "permission_denied"
    assert api.post(url, {}, format="json").json()["code"] == "credit_limit_exceeded"

    api.force_authenticate(manager)
    assert api.post(url, {"override_reason": "x" * 500}, format="json").status_code == 400
    response = api.post(url, {"override_reason": "Bank guarantee on file"}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "confirmed"
    assert AuditEvent.objects.filter(action="order.credit_limit_overridden", actor=manager).count() == 1


def test_api_refuses_a_price_override_from_a_clerk(customer, products, clerk):
    from rest_framework.test import APIClient

    api = APIClient()
    api.force_authenticate(clerk)
    payload = {"customer": customer.pk, "lines": [{"product": products[0].pk, "quantity": "1", "unit_price": "1.00"}]}
    response = api.post("/api/v1/orders/", payload, format="json")
    assert response.status_code == 403
    assert set(response.json()) == {"code", "message", "details"}
    assert not Order.objects.exists()
    payload["lines"][0]["unit_price"] = "149.90"  # the list price is no override
    assert api.post("/api/v1/orders/", payload, format="json").status_code == 201


# --- Product catalogue -------------------------------------------------------------------------


def test_product_list_searches_filters_sorts_and_pages(as_clerk, products, django_assert_max_num_queries):
    rate = products[0].tax_rate
    Product.objects.bulk_create(
        [Product(sku=f"P-{i:03d}", name=f"Pallet {i:03d}", unit_price=D(i), tax_rate=rate) for i in range(1, 56)]
    )
    Product.objects.filter(sku="P-007").update(active=False)
    with django_assert_max_num_queries(6):
        first = as_clerk.get("/products/")
    assert len(first.context["page_obj"]) == 50
    assert [p.sku for p in as_clerk.get("/products/?page=2").context["page_obj"]][-2:] == ["P-054", "P-055"]
    assert [p.sku for p in as_clerk.get("/products/?q=chair").context["page_obj"]] == ["CHAIR"]
    assert [p.sku for p in as_clerk.get("/products/?q=handbook").context["page_obj"]] == ["BOOK"]
    assert [p.sku for p in as_clerk.get("/products/?status=inactive").context["page_obj"]] == ["P-007"]
    assert "P-007" not in [p.sku for p in as_clerk.get("/products/?status=active&page=1").context["page_obj"]]
    by_price = [p.sku for p in as_clerk.get("/products/?sort=-price").context["page_obj"]]
    assert by_price[:2] == ["CHAIR", "P-055"]
    assert as_clerk.get("/products/?sort=__class__&page=zz&tax_rate=abc").status_code == 200


def test_product_form_creates_and_refuses_a_duplicate_sku_inline(as_clerk, products):
    rate = products[0].tax_rate
    data = {"sku": "CHAIR", "name": "Another chair", "unit": "unit", "unit_price": "10", "tax_rate": rate.pk}
    response = as_clerk.post("/products/new/", {**data, "active": "on"})
    assert response.status_code == 200
    assert "already exists" in response.content.decode()
    assert Product.objects.filter(sku="CHAIR").count() == 1

    response = as_clerk.post("/products/new/", {**data, "sku": " DESK-1 ", "active": "on"})
    assert response.status_code == 302
    desk = Product.objects.get(sku="DESK-1")
    assert (desk.unit_price, desk.active) == (D("10"), True)
    assert AuditEvent.objects.filter(action="product.created", object_id=desk.pk).exists()

    bad = as_clerk.post("/products/new/", {**data, "sku": "X 1", "unit_price": "-1"})
    assert bad.status_code == 200
    assert "no spaces" in bad.content.decode()
    assert not Product.objects.filter(name="Another chair").exclude(pk=desk.pk).exists()


def test_product_edit_deactivates_and_the_entry_page_stops_offering_it(as_clerk, customer, products):
    chair = products[0]
    data = {"sku": "CHAIR", "name": "Office chair", "unit": "unit", "unit_price": "155.00"}
    data["tax_rate"] = chair.tax_rate_id
    assert as_clerk.post(f"/products/{chair.pk}/edit/", data).status_code == 302  # "active" unticked
    chair.refresh_from_db()
    assert (chair.active, chair.unit_price) == (False, D("155.00"))
    audit = AuditEvent.objects.get(action="product.updated", object_id=chair.pk)
    assert audit.changes["active"] == ["True", "False"]

    options = as_clerk.get("/orders/new/products/", {"q": "CHAIR", "line": "0"}).content.decode()
    assert 'role="option"' not in options
    assert "No active product" in options

    response = as_clerk.post("/orders/new/", entry_post(customer, [{"product": chair.pk, "quantity": "1"}]))
    assert response.status_code == 200
    assert "CHAIR is inactive and cannot be ordered" in response.content.decode()
    assert not Order.objects.exists()


def test_product_pages_need_a_login_and_unknown_ids_are_404(as_clerk):
    from django.test import Client

    for url in ("/products/", "/products/new/", "/products/1/edit/"):
        response = Client().get(url)
        assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
    assert as_clerk.get("/products/987654/edit/").status_code == 404


# --- Entry page: search endpoints --------------------------------------------------------------


def test_customer_search_by_code_or_name_shows_hold_and_headroom(as_clerk, make_issued_invoice):
    solid = CustomerFactory(code="C10001", name="Brasserie du Port", credit_limit=D("1000.00"))
    make_issued_invoice(solid)  # 462.62 open
    CustomerFactory(code="C10002", name="Port Authority", on_hold=True, on_hold_reason="Disputed invoice")
    CustomerFactory(code="C10003", name="Unrelated SA")

    html = as_clerk.get("/orders/new/customers/", {"q": "port"}).content.decode()
    assert html.count('role="option"') == 2
    # A name starting with the text ranks before one containing it.
    assert html.index("Port Authority") < html.index("Brasserie du Port")
    assert "On hold" in html and "Disputed invoice" in html
    assert "537.38" in html  # headroom: 1000.00 - 462.62

    by_code = as_clerk.get("/orders/new/customers/", {"q": "c10003"}).content.decode()
    assert by_code.count('role="option"') == 1 and "Unrelated SA" in by_code
    assert 'role="option"' not in as_clerk.get("/orders/new/customers/", {"q": " "}).content.decode()
    assert "No customer matches" in as_clerk.get("/orders/new/customers/", {"q": "zzz"}).content.decode()


def test_customer_search_queries_do_not_grow_with_results(as_clerk, django_assert_max_num_queries):
    for i in range(8):
        CustomerFactory(name=f"Bulk {i}", credit_limit=D("100"))
    with django_assert_max_num_queries(3):
        html = as_clerk.get("/orders/new/customers/", {"q": "bulk"}).content.decode()
    assert html.count('role="option"') == 8


def test_product_search_ranks_sku_matches_first(as_clerk, products):
    rate = products[0].tax_rate
    ProductFactory(sku="LAMP", name="Desk lamp with chair clip", tax_rate=rate)
    ProductFactory(sku="CHAIR-XL", name="Big chair", tax_rate=rate)
    html = as_clerk.get("/orders/new/products/", {"q": "chair", "line": "3"}).content.decode()
    skus = re.findall(r'data-label="([A-Z-]+) —', html)
    assert skus == ["CHAIR", "CHAIR-XL", "LAMP"]
    assert 'id="line-3-option-' in html
    assert as_clerk.get("/orders/new/products/", {"q": "chair", "line": "x"}).status_code == 400


# --- Entry page: lines and totals --------------------------------------------------------------


def value_of(html: str, name: str) -> str | None:
    """The value attribute of the input named `name`."""
    tag = re.search(rf'<input[^>]*name="{re.escape(name)}"[^>]*>', html)
    value = re.search(r'value="([^"]*)"', tag.group(0)) if tag else None
    return value.group(1) if value else None


def entry_post(customer, lines, **extra):
    data = {
        "customer": customer.pk,
        "customer_search": customer.name,
        "customer_reference": "PO-9",
        "order_date": timezone.localdate().isoformat(),
        "entry_token": entry_token(timezone.now() - timedelta(seconds=40)),
        **extra,
    }
    for i, line in lines.items() if isinstance(lines, dict) else enumerate(lines):
        for key, value in line.items():
            data[f"lines-{i}-{key}"] = value
    return data


def test_add_line_endpoint_returns_a_blank_row_with_its_index(as_clerk):
    html = as_clerk.get("/orders/new/line/", {"index": "7"}).content.decode()
    assert 'name="lines-7-product"' in html and 'name="lines-7-quantity"' in html
    assert 'name="lines-7-discount_percent"' in html
    assert 'name="lines-7-unit_price"' not in html  # a clerk does not get the price override
    for bad in ("-1", "²", "1234567", "x"):
        assert as_clerk.get("/orders/new/line/", {"index": bad}).status_code == 400
    assert as_clerk.get("/orders/new/line/").status_code == 400
    assert as_clerk.get("/orders/new/", {"duplicate": "²", "customer": "³"}).status_code == 200


def test_the_manager_gets_the_unit_price_column(client, manager):
    client.force_login(manager)
    assert 'name="lines-2-unit_price"' in client.get("/orders/new/line/", {"index": "2"}).content.decode()
    assert "Unit price" in client.get("/orders/new/").content.decode()


def test_totals_follow_the_one_rounding_rule_and_ignore_incomplete_lines(as_manager, products):
    customer = CustomerFactory(credit_limit=D("500.00"))
    lines = {
        0: {"product": products[0].pk, "quantity": "1.333", "discount_percent": "2.5"},
        # 2 was removed in the browser: indexes have gaps.
        3: {"product": products[1].pk, "quantity": "3", "unit_price": "30.01"},
        4: {"product": products[1].pk, "quantity": "abc"},  # still being typed
        5: {"product_search": "", "quantity": ""},  # the blank spare line
    }
    response = as_manager.post("/orders/new/totals/", entry_post(customer, lines))
    assert response.status_code == 200
    html = response.content.decode()
    # 1.333 x 149.90 x 0.975 = 194.8212... -> 194.82 at 20 %: 38.96
    # 3 x 30.01 = 90.03 at 5.5 %: 4.95165 -> 4.95
    assert re.search(r'data-testid="entry-net">\s*<span class="money">284.85', html)
    assert "38.96" in html and "4.95" in html
    assert re.search(r'data-testid="entry-gross">\s*<span class="money">328.76', html)
    assert '<span data-net-for="0">194.82</span>' in html
    assert '<span data-net-for="3">90.03</span>' in html
    assert '<span data-net-for="4"></span>' in html
    assert "2 lines" in html
    assert "171.24" in html  # headroom after the order: 500 - 328.76

    # Removing line 0 in the browser: the next request lacks it.
    del lines[0]
    html = as_manager.post("/orders/new/totals/", entry_post(customer, lines)).content.decode()
    assert re.search(r'data-testid="entry-gross">\s*<span class="money">94.98', html)


def test_totals_endpoint_copes_with_garbage(as_clerk):
    data = {"customer": "99999999999999999999999", "lines-0-product": "abc", "lines-0-quantity": "1e9999"}
    response = as_clerk.post("/orders/new/totals/", data)
    assert response.status_code == 200
    assert "0.00" in response.content.decode()
    assert as_clerk.get("/orders/new/totals/").status_code == 405


# --- Entry page: saving ------------------------------------------------------------------------


def test_save_and_confirm_keeps_the_signed_entry_start(as_clerk, customer, products):
    started = timezone.now() - timedelta(seconds=75)
    data = entry_post(
        customer,
        {0: {"product": products[0].pk, "quantity": "2"}, 4: {"product": products[1].pk, "quantity": "1"}},
        entry_token=entry_token(started),
        action="confirm",
    )
    response = as_clerk.post("/orders/new/", data)
    order = Order.objects.get()
    assert response["Location"] == order.get_absolute_url()
    assert order.status == OrderStatus.CONFIRMED
    assert order.channel == "ui"
    assert abs(order.entry_started_at - started) < timedelta(milliseconds=1)
    assert order.entry_started_at < order.confirmed_at
    assert [line.product.sku for line in order.lines.order_by("position")] == ["CHAIR", "BOOK"]


def test_a_forged_entry_start_is_not_believed(as_clerk, customer, products):
    forged = signing.dumps((timezone.now() - timedelta(hours=1)).isoformat(), salt="some-other-salt")
    data = entry_post(customer, [{"product": products[0].pk, "quantity": "1"}], entry_token=forged)
    before = timezone.now()
    as_clerk.post("/orders/new/", data)
    assert Order.objects.get().entry_started_at >= before


def test_a_forged_price_override_is_refused_inline(as_clerk, customer, products):
    data = entry_post(customer, [{"product": products[0].pk, "quantity": "1", "unit_price": "1.00"}])
    response = as_clerk.post("/orders/new/", data)
    assert response.status_code == 200
    html = response.content.decode()
    assert "you may not change the unit price of CHAIR" in html
    assert 'data-testid="form-errors"' in html
    assert not Order.objects.exists()


def test_credit_refusal_on_save_and_confirm_saves_nothing_and_offers_the_override(client, clerk, manager, products):
    customer = CustomerFactory(credit_limit=D("100.00"))
    data = entry_post(customer, [{"product": products[0].pk, "quantity": "1"}], action="confirm")

    client.force_login(clerk)
    html = client.post("/orders/new/", data).content.decode()
    assert "Credit limit exceeded: limit 100.00, current exposure 0, this order 179.88 EUR." in html
    assert 'data-testid="entry-override"' not in html
    assert "a manager with the credit override permission" in html
    assert not Order.objects.exists()

    client.force_login(manager)
    html = client.post("/orders/new/", data).content.decode()
    assert 'data-testid="entry-override"' in html
    assert 'value="PO-9"' in html  # the entry is still on screen
    response = client.post("/orders/new/", {**data, "override_reason": "Director approved"})
    assert response.status_code == 302
    order = Order.objects.get()
    assert order.status == OrderStatus.CONFIRMED
    assert AuditEvent.objects.filter(action="order.credit_limit_overridden", object_id=order.pk).exists()


def test_line_errors_stay_on_their_line(as_clerk, customer, products):
    data = entry_post(
        customer,
        {
            0: {"product": products[0].pk, "quantity": "2"},
            2: {"product_search": "chai", "quantity": "1"},  # typed but never picked
            3: {"product": products[1].pk, "quantity": "1.0001"},
        },
    )
    html = as_clerk.post("/orders/new/", data).content.decode()
    assert "Choose a product: type a SKU or a name" in html
    assert "Ensure that there are no more than 3 decimal places." in html
    assert 'value="chai"' in html
    assert "Please correct the highlighted lines below." in html
    assert not Order.objects.exists()


def test_the_customer_is_required(as_clerk, products):
    data = {**entry_post(CustomerFactory(), [{"product": products[0].pk, "quantity": "1"}]), "customer": ""}
    html = as_clerk.post("/orders/new/", data).content.decode()
    assert "Choose a customer" in html
    assert not Order.objects.exists()


def test_duplicate_prefills_customer_and_lines(client, clerk, manager, customer, products):
    rate = TaxRateFactory(name="Standard 20%")
    old = ProductFactory(sku="OLD", name="Discontinued", tax_rate=rate)
    original = services.order_create(
        customer=customer,
        actor=manager,
        customer_reference="PO-1",
        lines=[
            {"product": products[0], "quantity": D("2.5"), "unit_price": D("120.00"), "discount_percent": D("5")},
            {"product": old, "quantity": D("1")},
            {"product": products[1], "quantity": D("3")},
        ],
    )
    old.active = False
    old.save()

    client.force_login(manager)
    response = client.get(reverse("order-create"), {"duplicate": original.pk})
    html = response.content.decode()
    assert value_of(html, "customer") == str(customer.pk)
    assert value_of(html, "lines-0-quantity") == "2.5"
    assert value_of(html, "lines-0-unit_price") == "120.00"
    assert value_of(html, "lines-0-discount_percent") == "5"
    assert value_of(html, "lines-1-product") == str(products[1].pk)
    assert value_of(html, "lines-1-product_search") == "BOOK — Accounting handbook"
    assert "OLD" in html and "inactive now" in html
    assert 'value="PO-1"' not in html  # a new order has its own purchase order
    # Without the inactive line: 2.5 x 120 x 0.95 = 285.00 at 20 % (57.00) + 3 x 32.50 = 97.50 at 5.5 % (5.36)
    totals = response.context["totals"]
    assert (totals.net, totals.tax, totals.gross) == (D("382.50"), D("62.36"), D("444.86"))

    client.force_login(clerk)
    html = client.get(reverse("order-create"), {"duplicate": original.pk}).content.decode()
    assert "the list price 149.90 applies now" in html
    assert "lines-0-unit_price" not in html
    assert client.get(reverse("order-create"), {"duplicate": 987654}).status_code == 404


def test_order_detail_offers_duplicate_and_the_override_only_to_managers(client, clerk, manager, over_limit_order):
    client.force_login(clerk)
    html = client.get(over_limit_order.get_absolute_url()).content.decode()
    assert f"?duplicate={over_limit_order.pk}" in html
    assert 'data-testid="credit-refusal"' in html and "539.64" in html
    assert 'data-testid="override-form"' not in html
    url = reverse("order-override-confirm", args=[over_limit_order.pk])
    response = client.post(url, {"reason": "I insist"}, follow=True)
    assert "permission" in response.content.decode()
    over_limit_order.refresh_from_db()
    assert over_limit_order.status == OrderStatus.DRAFT

    client.force_login(manager)
    html = client.get(over_limit_order.get_absolute_url()).content.decode()
    assert 'data-testid="override-form"' in html
    html = client.post(url, {"reason": "  "}).content.decode()
    assert "Give the reason" in html
    over_limit_order.refresh_from_db()
    assert over_limit_order.status == OrderStatus.DRAFT
    response = client.post(url, {"reason": "Paid in advance"}, follow=True)
    html = response.content.decode()
    assert f"Order {over_limit_order.number} confirmed." in html
    assert "Credit limit overridden: Paid in advance" in html  # the history shows the note
    over_limit_order.refresh_from_db()
    assert over_limit_order.status == OrderStatus.CONFIRMED


def test_entry_endpoints_need_a_login(client):
    for url in ("/orders/new/customers/?q=a", "/orders/new/products/?q=a&line=0", "/orders/new/line/?index=1"):
        assert client.get(url).status_code == 302
    assert client.post("/orders/new/totals/").status_code == 302
