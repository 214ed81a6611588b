"""Tax rates, payment terms, customers and products through /api/v1/."""

from decimal import Decimal

import pytest

from billing.models import AuditEvent, Contact, Customer, PaymentMethod, PaymentTerms, TaxRate
from orders.models import Product
from tests.factories import CustomerFactory, PaymentTermsFactory, ProductFactory, TaxRateFactory

from .helpers import error_of

pytestmark = pytest.mark.django_db


# --- Tax rates ---------------------------------------------------------------------------------


def test_tax_rate_create_and_read_back_with_string_rates(api):
    response = api.post(
        "/api/v1/tax-rates/",
        {"name": "EU reverse charge", "rate": "0", "category": "reverse_charge", "legal_note": "Art. 196"},
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["rate"] == "0.00"
    assert body["category"] == "reverse_charge"
    assert body["active"] is True
    detail = api.get(f"/api/v1/tax-rates/{body['id']}/").json()
    assert detail == body


def test_tax_rate_exempt_with_a_rate_is_refused_on_the_rate_field(api):
    response = api.post("/api/v1/tax-rates/", {"name": "Odd", "rate": "20", "category": "exempt"}, format="json")
    assert response.status_code == 400
    assert "rate" in error_of(response)["details"]
    assert not TaxRate.objects.filter(name="Odd").exists()


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"name": "Too much", "rate": "100.01"}, "rate"),
        ({"name": "Negative", "rate": "-1"}, "rate"),
        ({"name": "Words", "rate": "twenty"}, "rate"),
        ({"rate": "20"}, "name"),
        ({"name": "Bad category", "rate": "20", "category": "luxury"}, "category"),
    ],
)
def test_tax_rate_invalid_input_is_400_on_the_field(api, payload, field):
    before = TaxRate.objects.count()
    response = api.post("/api/v1/tax-rates/", payload, format="json")
    assert response.status_code == 400
    assert field in error_of(response)["details"]
    assert TaxRate.objects.count() == before


def test_tax_rate_duplicate_name_is_400(api):
    TaxRateFactory(name="Standard 20%")
    response = api.post("/api/v1/tax-rates/", {"name": "Standard 20%", "rate": "20"}, format="json")
    assert response.status_code == 400
    assert "name" in error_of(response)["details"]


def test_tax_rate_patch_and_filter_by_category(api):
    standard = TaxRateFactory(name="Standard 20%")
    TaxRateFactory(name="Reduced 5.5%", rate=Decimal("5.50"), category="reduced")
    response = api.patch(f"/api/v1/tax-rates/{standard.pk}/", {"active": False}, format="json")
    assert response.status_code == 200
    standard.refresh_from_db()
    assert standard.active is False
    names = [r["name"] for r in api.get("/api/v1/tax-rates/?category=reduced").json()["results"]]
    assert names == ["Reduced 5.5%"]


def test_tax_rate_cannot_be_deleted(api):
    rate = TaxRateFactory()
    assert api.delete(f"/api/v1/tax-rates/{rate.pk}/").status_code == 405
    assert TaxRate.objects.filter(pk=rate.pk).exists()


# --- Payment terms -----------------------------------------------------------------------------


def test_payment_terms_minimal_create_gets_neutral_defaults(api):
    response = api.post("/api/v1/payment-terms/", {"name": "Net 45", "due_days": 45}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["discount_percent"] == "0.00"
    assert body["grace_days"] == 0
    assert body["annual_interest_rate"] == "0.00"
    assert body["fixed_fee"] == "0.00"
    assert body["penalty_cap_percent"] is None
    assert body["accepted_methods"] == list(PaymentMethod.values)
    assert body["text"].startswith("Net 45.")


def test_payment_terms_full_create_prints_its_terms_text(api):
    payload = {
        "name": "2/10 net 30",
        "due_days": 30,
        "discount_percent": "2.00",
        "discount_days": 10,
        "grace_days": 5,
        "annual_interest_rate": "12.00",
        "fixed_fee": "40.00",
        "penalty_cap_percent": "10.00",
        "accepted_methods": ["bank_transfer", "card", "card"],
    }
    response = api.post("/api/v1/payment-terms/", payload, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    terms = PaymentTerms.objects.get(pk=body["id"])
    assert terms.accepted_methods == ["bank_transfer", "card"]
    assert terms.penalty_cap_percent == Decimal("10.00")
    assert body["text"] == terms.text()
    assert "2% discount if paid within 10 days" in body["text"]
    assert "bank transfer" in body["text"]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"name": "No methods", "due_days": 30, "accepted_methods": []}, "accepted_methods"),
        ({"name": "Bitcoin", "due_days": 30, "accepted_methods": ["bitcoin"]}, "accepted_methods"),
        ({"name": "Not a list", "due_days": 30, "accepted_methods": "card"}, "accepted_methods"),
        ({"name": "Negative", "due_days": -1}, "due_days"),
        ({"name": "Huge", "due_days": 10**20}, "due_days"),
        ({"name": "Words", "due_days": "thirty"}, "due_days"),
        ({"due_days": 30}, "name"),
        ({"name": "No days"}, "due_days"),
        ({"name": "Cap", "due_days": 30, "penalty_cap_percent": "150"}, "penalty_cap_percent"),
        ({"name": "Fee", "due_days": 30, "fixed_fee": "-5"}, "fixed_fee"),
        ({"name": "Discount", "due_days": 30, "discount_percent": "101"}, "discount_percent"),
    ],
)
def test_payment_terms_invalid_input_is_400_and_saves_nothing(api, payload, field):
    response = api.post("/api/v1/payment-terms/", payload, format="json")
    assert response.status_code == 400
    assert field in error_of(response)["details"]
    assert not PaymentTerms.objects.exists()


def test_payment_terms_cap_can_be_removed_with_null(api):
    terms = PaymentTermsFactory(penalty_cap_percent=Decimal("10"))
    response = api.patch(f"/api/v1/payment-terms/{terms.pk}/", {"penalty_cap_percent": None}, format="json")
    assert response.status_code == 200
    terms.refresh_from_db()
    assert terms.penalty_cap_percent is None


# --- Customers ---------------------------------------------------------------------------------


def customer_payload(terms, **overrides):
    payload = {
        "name": "Globex GmbH",
        "email": "ap@globex.example",
        "currency": "eur",
        "payment_terms": terms.pk,
        "tax_id": "DE136695976",
        "billing_address": {"line1": "Hauptstr. 1", "city": "Berlin", "postal_code": "10115", "country": "de"},
    }
    payload.update(overrides)
    return payload


def test_customer_create_through_the_service_with_nested_address(api, user, terms):
    response = api.post("/api/v1/customers/", customer_payload(terms), format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    customer = Customer.objects.get(pk=body["id"])
    # The service assigned a code and audited the creation by the caller.
    assert body["code"] == customer.code == f"C{customer.pk:05d}"
    assert AuditEvent.objects.filter(action="customer.created", object_id=customer.pk, actor=user).exists()
    assert customer.billing_city == "Berlin"
    assert customer.billing_country == "DE"
    assert body["currency"] == "EUR"
    assert body["billing_address"] == {
        "line1": "Hauptstr. 1",
        "line2": "",
        "city": "Berlin",
        "postal_code": "10115",
        "region": "",
        "country": "DE",
    }
    # Neutral defaults.
    assert body["billing_method"] == "electronic"
    assert body["billing_cycle"] == "per_order"
    assert body["credit_limit"] is None
    assert body["on_hold"] is False


def test_customer_on_hold_without_reason_is_400_on_the_reason(api, terms):
    response = api.post("/api/v1/customers/", customer_payload(terms, on_hold=True), format="json")
    assert response.status_code == 400
    assert "on_hold_reason" in error_of(response)["details"]
    assert not Customer.objects.exists()


def test_customer_put_on_hold_by_patch_needs_a_reason(api, eur_customer):
    url = f"/api/v1/customers/{eur_customer.pk}/"
    refused = api.patch(url, {"on_hold": True}, format="json")
    assert refused.status_code == 400
    assert "on_hold_reason" in error_of(refused)["details"]
    eur_customer.refresh_from_db()
    assert eur_customer.on_hold is False

    accepted = api.patch(url, {"on_hold": True, "on_hold_reason": "Unpaid since March"}, format="json")
    assert accepted.status_code == 200
    eur_customer.refresh_from_db()
    assert eur_customer.on_hold is True
    assert eur_customer.on_hold_reason == "Unpaid since March"


def test_customer_update_goes_through_the_service_and_is_audited(api, user, eur_customer):
    response = api.patch(
        f"/api/v1/customers/{eur_customer.pk}/",
        {"credit_limit": "5000.00", "billing_address": {"city": "Paris"}},
        format="json",
    )
    assert response.status_code == 200, response.content
    eur_customer.refresh_from_db()
    assert eur_customer.credit_limit == Decimal("5000.00")
    assert eur_customer.billing_city == "Paris"
    # The rest of the address is untouched by a partial update.
    assert eur_customer.billing_line1 == "1 Rue du Commerce"
    event = AuditEvent.objects.get(action="customer.updated", object_id=eur_customer.pk)
    assert event.actor == user
    assert set(event.changes) == {"credit_limit", "billing_city"}


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"email": "not-an-email"}, "email"),
        ({"currency": "EURO"}, "currency"),
        ({"currency": 978}, "currency"),
        ({"payment_terms": 999999}, "payment_terms"),
        ({"payment_terms": "net30"}, "payment_terms"),
        ({"billing_method": "pigeon"}, "billing_method"),
        ({"billing_cycle": "daily"}, "billing_cycle"),
        ({"credit_limit": "-1"}, "credit_limit"),
        ({"credit_limit": "lots"}, "credit_limit"),
        ({"billing_address": "Berlin"}, "billing_address"),
        ({"billing_address": {"country": "Germany"}}, "billing_address"),
        ({"name": ""}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"tax_id": "DE123456789"}, "tax_id"),
        ({"tax_id": "FR40303265045"}, "tax_id"),  # a French number for a German customer
        ({"currency": "XYZ"}, "currency"),
        ({"billing_address": {"country": "ZZ"}}, "billing_address"),
        ({"shipping_same_as_billing": False}, "shipping_address"),
        ({"shipping_address": {"country": "DE"}}, "shipping_address"),
        ({"shipping_address": "Hamburg"}, "shipping_address"),
        ({"contacts": "Eva"}, "contacts"),
        ({"contacts": [{"name": ""}]}, "contacts"),
        ({"contacts": [{"name": "Eva", "email": "eva"}]}, "contacts"),
        ({"contacts": [{"name": "Eva"}]}, "contacts"),  # receives invoices, but has no e-mail
        ({"contacts": [{"id": 1, "name": "Eva", "email": "eva@globex.example"}]}, "contacts"),  # not ours
    ],
)
def test_customer_invalid_input_is_400_and_saves_nothing(api, terms, overrides, field):
    response = api.post("/api/v1/customers/", customer_payload(terms, **overrides), format="json")
    assert response.status_code == 400
    assert field in error_of(response)["details"]
    assert not Customer.objects.exists()
    assert not Contact.objects.exists()


@pytest.mark.parametrize("missing", ["name", "email", "currency", "payment_terms"])
def test_customer_required_fields(api, terms, missing):
    payload = customer_payload(terms)
    del payload[missing]
    response = api.post("/api/v1/customers/", payload, format="json")
    assert response.status_code == 400
    assert missing in error_of(response)["details"]


def test_customer_duplicate_code_is_400(api, terms, eur_customer):
    response = api.post("/api/v1/customers/", customer_payload(terms, code=eur_customer.code), format="json")
    assert response.status_code == 400
    assert "code" in error_of(response)["details"]


def test_customer_tax_id_is_checked_for_the_country_and_stored_compact(api, terms):
    refused = api.post("/api/v1/customers/", customer_payload(terms, tax_id="DE 123 456 789"), format="json")
    assert refused.status_code == 400
    (message,) = error_of(refused)["details"]["tax_id"]
    assert message.startswith("Not a valid VAT number for Germany (DE)")
    assert "DE followed by 9 digits, e.g. DE136695976" in message

    created = api.post("/api/v1/customers/", customer_payload(terms, tax_id="de 136.695.976"), format="json")
    assert created.status_code == 201, created.content
    assert created.json()["tax_id"] == "DE136695976"
    customer = Customer.objects.get()
    assert customer.tax_id == "DE136695976"

    moved = api.patch(f"/api/v1/customers/{customer.pk}/", {"billing_address": {"country": "US"}}, format="json")
    assert moved.status_code == 400
    assert "EIN for the United States (US)" in error_of(moved)["details"]["tax_id"][0]


def test_customer_shipping_address_is_nested_like_the_billing_one(api, user, terms):
    shipping = {"line1": "Lagerstr. 9", "city": "Hamburg", "postal_code": "20095", "country": "de"}
    response = api.post("/api/v1/customers/", customer_payload(terms, shipping_address=shipping), format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["shipping_same_as_billing"] is False  # implied by sending an address
    assert body["shipping_address"] == {**shipping, "line2": "", "region": "", "country": "DE"}
    customer = Customer.objects.get(pk=body["id"])
    assert (customer.shipping_line1, customer.shipping_city, customer.shipping_country) == (
        "Lagerstr. 9",
        "Hamburg",
        "DE",
    )

    back = api.patch(f"/api/v1/customers/{customer.pk}/", {"shipping_same_as_billing": True}, format="json")
    assert back.status_code == 200, back.content
    # Shipping to the billing address: the API shows where goods go, and keeps no second address.
    assert back.json()["shipping_address"] == back.json()["billing_address"]
    customer.refresh_from_db()
    assert customer.shipping_line1 == customer.shipping_city == ""
    changes = AuditEvent.objects.get(action="customer.updated", object_id=customer.pk).changes
    assert changes["shipping_city"] == ["Hamburg", ""]


def test_customer_contacts_are_a_nested_list_replaced_as_a_whole(api, user, terms):
    contacts = [
        {"name": "Eva Braun-Schmidt", "email": "eva@globex.example", "role": "Accounts payable"},
        {"name": "Tom Buyer", "email": "tom@globex.example", "receives_invoices": False},
    ]
    created = api.post("/api/v1/customers/", customer_payload(terms, contacts=contacts), format="json")
    assert created.status_code == 201, created.content
    body = created.json()
    eva, tom = sorted(body["contacts"], key=lambda c: c["name"])
    assert eva["receives_invoices"] is True
    assert tom["receives_invoices"] is False

    url = f"/api/v1/customers/{body['id']}/"
    replaced = api.patch(
        url,
        {"contacts": [{"id": eva["id"], "name": eva["name"], "email": eva["email"], "phone": "+49 30 1234"},
                      {"name": "Nina New", "email": "nina@globex.example"}]},
        format="json",
    )  # fmt: skip
    assert replaced.status_code == 200, replaced.content
    after = {c["name"]: c for c in replaced.json()["contacts"]}
    assert set(after) == {"Eva Braun-Schmidt", "Nina New"}
    assert after["Eva Braun-Schmidt"]["id"] == eva["id"]
    assert after["Eva Braun-Schmidt"]["phone"] == "+49 30 1234"
    assert not Contact.objects.filter(pk=tom["id"]).exists()
    changes = AuditEvent.objects.get(action="customer.updated", object_id=body["id"]).changes
    assert changes["contacts"]["removed"] == ["Tom Buyer <tom@globex.example>"]
    assert changes["contacts"]["added"] == ["Nina New <nina@globex.example>"]

    # Without `contacts`, a change leaves them alone; a GET body sent back with PUT changes nothing.
    assert api.patch(url, {"phone": "+49 30 0000"}, format="json").status_code == 200
    assert Contact.objects.filter(customer_id=body["id"]).count() == 2
    events = AuditEvent.objects.count()
    again = api.put(url, api.get(url).json(), format="json")
    assert again.status_code == 200, again.content
    assert AuditEvent.objects.count() == events


def test_a_contact_of_another_customer_is_not_reachable_through_the_api(api, terms, eur_customer):
    theirs = Contact.objects.create(customer=eur_customer, name="Theirs", email="theirs@dupont.example")
    ours = api.post("/api/v1/customers/", customer_payload(terms), format="json").json()
    response = api.patch(
        f"/api/v1/customers/{ours['id']}/",
        {"contacts": [{"id": theirs.pk, "name": "Mine now", "email": "mine@globex.example"}]},
        format="json",
    )
    assert response.status_code == 400
    assert "id" in error_of(response)["details"]["contacts"][0]
    theirs.refresh_from_db()
    assert (theirs.customer_id, theirs.name) == (eur_customer.pk, "Theirs")


def test_customer_list_filters_and_search(api, terms):
    CustomerFactory(name="Alpha", currency="EUR", payment_terms=terms)
    CustomerFactory(name="Beta", currency="USD", payment_terms=terms)
    CustomerFactory(name="Gamma", currency="USD", payment_terms=terms, on_hold=True, on_hold_reason="Dispute")
    names = lambda url: [r["name"] for r in api.get(url).json()["results"]]  # noqa: E731
    assert names("/api/v1/customers/?currency=USD") == ["Beta", "Gamma"]
    assert names("/api/v1/customers/?on_hold=true") == ["Gamma"]
    assert names("/api/v1/customers/?search=alp") == ["Alpha"]
    assert names("/api/v1/customers/?ordering=-name") == ["Gamma", "Beta", "Alpha"]


def test_customer_cannot_be_deleted(api, eur_customer):
    assert api.delete(f"/api/v1/customers/{eur_customer.pk}/").status_code == 405
    assert Customer.objects.filter(pk=eur_customer.pk).exists()


# --- Products ----------------------------------------------------------------------------------


def test_product_create_and_update(api):
    rate = TaxRateFactory()
    response = api.post(
        "/api/v1/products/",
        {"sku": "DESK", "name": "Standing desk", "unit_price": "499.00", "tax_rate": rate.pk},
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["unit_price"] == "499.00"
    assert body["unit"] == "unit"
    assert body["active"] is True
    response = api.patch(f"/api/v1/products/{body['id']}/", {"unit_price": "459.50"}, format="json")
    assert response.status_code == 200
    assert Product.objects.get(pk=body["id"]).unit_price == Decimal("459.50")


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"unit_price": "-1"}, "unit_price"),
        ({"unit_price": "1.999"}, "unit_price"),
        ({"unit_price": "NaN"}, "unit_price"),
        ({"unit_price": "1e20"}, "unit_price"),
        ({"tax_rate": 999999}, "tax_rate"),
        ({"tax_rate": None}, "tax_rate"),
        ({"sku": ""}, "sku"),
    ],
)
def test_product_invalid_input_is_400(api, overrides, field):
    rate = TaxRateFactory()
    payload = {"sku": "DESK", "name": "Standing desk", "unit_price": "499.00", "tax_rate": rate.pk, **overrides}
    response = api.post("/api/v1/products/", payload, format="json")
    assert response.status_code == 400
    assert field in error_of(response)["details"]
    assert not Product.objects.exists()


def test_product_duplicate_sku_is_400(api):
    ProductFactory(sku="DESK")
    rate = TaxRateFactory()
    response = api.post(
        "/api/v1/products/", {"sku": "DESK", "name": "Desk", "unit_price": "1", "tax_rate": rate.pk}, format="json"
    )
    assert response.status_code == 400
    assert "sku" in error_of(response)["details"]


def test_product_filter_by_active(api):
    ProductFactory(sku="OLD", active=False)
    ProductFactory(sku="NEW")
    skus = [r["sku"] for r in api.get("/api/v1/products/?active=false").json()["results"]]
    assert skus == ["OLD"]
