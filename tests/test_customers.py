"""Customer master data: tax ids checked by country, ISO codes, the shipping address, contacts edited
inline, the audit trail, the customer page (balance, overdue, aging, history, notes) and the search."""

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from billing import selectors, services
from billing.models import AuditEvent, Contact, Customer
from billing.validators import TAX_ID_RULES, normalize_tax_id
from payments import services as payments
from tests.factories import CustomerFactory, PaymentTermsFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def terms(db):
    return PaymentTermsFactory(name="Net 30", due_days=30)


def new_customer(terms, **fields):
    values = {"name": "Globex SARL", "email": "ap@globex.example", "payment_terms": terms, **fields}
    return services.customer_create(**values)


def money(amount: Decimal) -> str:
    """As the pages print it (floatformat "2g")."""
    return f"{amount:,.2f}"


# --- Tax ids ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "country", "stored"),
    [
        ("FR 40 303 265 045", "FR", "FR40303265045"),
        ("40303265045", "FR", "FR40303265045"),  # the prefix is added
        ("fr40303265045", "fr", "FR40303265045"),
        ("de 136.695.976", "DE", "DE136695976"),
        ("GB 980 7806 84", "GB", "GB980780684"),
        ("980780684", "GB", "GB980780684"),
        ("XI 980 7806 84", "GB", "XI980780684"),  # Northern Ireland
        ("04-2103594", "US", "042103594"),
        ("GR094259216", "GR", "EL094259216"),  # Greece's VAT prefix is EL
        ("U13585627", "AT", "ATU13585627"),
        ("CHE-107.787.577 IVA", "CH", "CHE107787577IVA"),
        ("NO 995 525 828 MVA", "NO", "NO995525828MVA"),
    ],
)
def test_valid_tax_ids_are_stored_compact(typed, country, stored):
    assert normalize_tax_id(typed, country) == stored


def test_the_example_each_error_message_gives_is_itself_valid():
    for country, rule in TAX_ID_RULES.items():
        example = rule.expected.split("e.g. ")[-1] if "e.g. " in rule.expected else rule.expected.split("written ")[-1]
        assert normalize_tax_id(example, country), (country, example)


@pytest.mark.parametrize(
    ("typed", "country", "fragments"),
    [
        (
            "FR40303265046",
            "FR",
            ["VAT number for France (FR)", "check digits", "FR followed by a 2-character key and the 9-digit SIREN"],
        ),
        ("DE123456789", "DE", ["VAT number for Germany (DE)", "DE followed by 9 digits, e.g. DE136695976"]),
        ("GB98078068", "GB", ["the United Kingdom (GB)", "wrong length", "GB followed by 9 or 12 digits"]),
        ("07-1144442", "US", ["EIN for the United States (US)", "9 digits, written 04-2103594"]),
        ("DE136695976", "FR", ["France (FR)", "DE is the prefix of another country"]),
        ("ciao", "IT", ["Italy (IT)", "IT followed by 11 digits"]),
    ],
)
def test_invalid_tax_ids_are_refused_naming_the_country_and_the_format(typed, country, fragments):
    with pytest.raises(ValidationError) as refused:
        normalize_tax_id(typed, country)
    message = refused.value.messages[0]
    for fragment in fragments:
        assert fragment in message


@pytest.mark.parametrize(
    ("typed", "country"), [("T1234567890123", "JP"), ("12.345.678/0001-95", "BR"), ("whatever 42", ""), ("x", "ZZ")]
)
def test_tax_ids_of_countries_without_a_rule_are_accepted_as_typed(typed, country):
    assert normalize_tax_id(f"  {typed} ", country) == typed


def test_customer_with_an_invalid_vat_number_is_refused_and_nothing_is_saved(terms):
    with pytest.raises(ValidationError) as refused:
        new_customer(
            terms, billing_country="DE", tax_id="DE123456789", contacts=[{"name": "Eva", "email": "eva@x.example"}]
        )
    assert "Germany (DE)" in refused.value.message_dict["tax_id"][0]
    assert not Customer.objects.exists()
    assert not Contact.objects.exists()
    assert not AuditEvent.objects.exists()


def test_a_stored_tax_id_is_checked_again_only_when_it_or_the_country_changes(terms):
    legacy = CustomerFactory(tax_id="FR32123456789", billing_country="FR", payment_terms=terms)  # from before the check
    services.customer_update(customer=legacy, credit_limit=Decimal("1000.00"))  # an unrelated edit goes through
    with pytest.raises(ValidationError) as refused:
        services.customer_update(customer=legacy, billing_country="DE")
    assert "Germany (DE)" in refused.value.message_dict["tax_id"][0]
    legacy.refresh_from_db()
    assert legacy.billing_country == "FR"
    assert services.customer_update(customer=legacy, tax_id="fr 40 303 265 045").tax_id == "FR40303265045"


# --- ISO codes ----------------------------------------------------------------------------------


def test_country_and_currency_codes_are_checked_and_stored_upper_case(terms):
    customer = new_customer(terms, currency="gbp", billing_country=" gb ")
    assert (customer.currency, customer.billing_country) == ("GBP", "GB")
    for fields, field in [
        ({"currency": "XYZ"}, "currency"),
        ({"currency": "XAU"}, "currency"),  # gold is an ISO 4217 code, not a currency to bill in
        ({"billing_country": "ZZ"}, "billing_country"),
        (
            {
                "shipping_same_as_billing": False,
                "shipping_line1": "1 Dock",
                "shipping_city": "Leeds",
                "shipping_country": "UK",
            },
            "shipping_country",
        ),
    ]:
        with pytest.raises(ValidationError) as refused:
            services.customer_update(customer=customer, **fields)
        assert field in refused.value.message_dict, fields
    customer.refresh_from_db()
    assert (customer.currency, customer.billing_country, customer.shipping_country) == ("GBP", "GB", "")


@pytest.mark.parametrize("change", [{"currency": "eur"}, {"currency": "EU"}, {"billing_country": "fr"}])
def test_iso_code_shapes_hold_in_the_database(customer, change):
    with pytest.raises(IntegrityError), transaction.atomic():
        Customer.objects.filter(pk=customer.pk).update(**change)


# --- Shipping address ---------------------------------------------------------------------------


def test_a_shipping_address_is_kept_only_while_goods_go_elsewhere(user, terms):
    customer = new_customer(
        terms,
        billing_line1="14 Quai des Chartrons",
        billing_city="Bordeaux",
        shipping_same_as_billing=False,
        shipping_line1="Zone industrielle, quai 4",
        shipping_city="Mérignac",
        shipping_country="fr",
    )
    assert customer.shipping_address_lines == ["Zone industrielle, quai 4", "Mérignac", "FR"]
    with pytest.raises(ValidationError) as refused:
        services.customer_update(customer=customer, shipping_line1=" ")
    assert set(refused.value.message_dict) == {"shipping_line1"}

    customer = services.customer_update(customer=customer, actor=user, shipping_same_as_billing=True)
    customer.refresh_from_db()
    assert customer.shipping_line1 == customer.shipping_city == customer.shipping_country == ""
    assert customer.shipping_address_lines == ["14 Quai des Chartrons", "Bordeaux"]
    changes = AuditEvent.objects.filter(action="customer.updated").get().changes
    assert changes["shipping_line1"] == ["Zone industrielle, quai 4", ""]
    assert changes["shipping_same_as_billing"] == ["no", "yes"]


@pytest.mark.parametrize(
    "change",
    [
        {"shipping_same_as_billing": True, "shipping_city": "Somewhere"},  # a second address behind the flag
        {"shipping_same_as_billing": False, "shipping_line1": "", "shipping_city": ""},  # elsewhere, but where?
    ],
)
def test_shipping_rules_hold_in_the_database(customer, change):
    with pytest.raises(IntegrityError), transaction.atomic():
        Customer.objects.filter(pk=customer.pk).update(**change)


# --- The customer form with its contacts table --------------------------------------------------


def form_data(terms, contacts=(), *, initial=0, **fields) -> dict:
    """A post of the customer form: its fields and the contacts table (management form included)."""
    data = {
        "name": "Atelier Dupont & Fils",
        "email": "compta@dupont.example",
        "currency": "EUR",
        "payment_terms": terms.pk,
        "billing_method": "electronic",
        "billing_cycle": "per_order",
        "billing_line1": "14 Quai des Chartrons",
        "billing_city": "Bordeaux",
        "billing_country": "FR",
        "contacts-TOTAL_FORMS": str(len(contacts)),
        "contacts-INITIAL_FORMS": str(initial),
        "contacts-MIN_NUM_FORMS": "0",
        "contacts-MAX_NUM_FORMS": "1000",
        **fields,
    }
    for i, row in enumerate(contacts):
        for name, value in row.items():
            if value is not None:
                data[f"contacts-{i}-{name}"] = value
    return data


def test_new_customer_with_two_contacts_from_the_form(staff, user, terms):
    rows = [
        {
            "name": "Julie Dupont",
            "role": "Accounts payable",
            "email": "julie@dupont.example",
            "receives_invoices": "on",
        },
        {"name": "Marc Dupont", "role": "Buyer", "phone": "+33 5 56 12 34 56"},  # box unticked: gets no invoices
        {"name": "", "email": "", "receives_invoices": "on"},  # the empty row left at the end
    ]
    response = staff.post(reverse("customer-create"), form_data(terms, rows, tax_id="FR 40 303 265 045"))
    customer = Customer.objects.get()
    assert response.status_code == 302
    assert response["Location"] == customer.get_absolute_url()
    assert customer.tax_id == "FR40303265045"
    assert {c.name: (c.email, c.receives_invoices) for c in customer.contacts.all()} == {
        "Julie Dupont": ("julie@dupont.example", True),
        "Marc Dupont": ("", False),
    }
    event = AuditEvent.objects.get(action="customer.created", object_id=customer.pk)
    assert event.actor == user
    assert event.changes["contacts"] == {"added": ["Julie Dupont <julie@dupont.example>", "Marc Dupont"]}
    assert event.changes["tax_id"] == ["", "FR40303265045"]


def test_contact_rows_with_errors_are_shown_inline_and_nothing_is_saved(staff, terms):
    rows = [
        {"name": "Julie Dupont", "email": "not-an-email", "receives_invoices": "on"},
        {"name": "Marc Dupont", "receives_invoices": "on"},  # gets invoices, but by which e-mail?
        {"name": "", "email": "orphan@dupont.example"},  # an e-mail without a name
    ]
    response = staff.post(reverse("customer-create"), form_data(terms, rows))
    assert response.status_code == 200
    html = response.content.decode()
    assert "Please correct the highlighted contacts below." in html
    assert "Enter a valid email address." in html
    assert "A contact who receives invoices needs an e-mail address." in html
    assert "This field is required." in html
    formset = response.context["contacts"]
    assert [sorted(form.errors) for form in formset.forms] == [["email"], ["email"], ["name"]]
    assert 'value="Marc Dupont"' in html  # what was typed is still there
    assert not Customer.objects.exists()
    assert not Contact.objects.exists()


def test_an_invalid_customer_field_saves_no_contact_either(staff, terms):
    rows = [{"name": "Julie Dupont", "email": "julie@dupont.example", "receives_invoices": "on"}]
    response = staff.post(reverse("customer-create"), form_data(terms, rows, tax_id="FR40303265046"))
    assert response.status_code == 200
    assert "Not a valid VAT number for France (FR)" in response.content.decode()
    assert "autofocus" in str(response.context["form"]["tax_id"])  # the cursor goes to what needs fixing
    assert not Customer.objects.exists()
    assert not Contact.objects.exists()


def test_editing_contacts_keeps_changes_adds_and_removes_rows(staff, user, terms):
    customer = new_customer(
        terms,
        contacts=[
            {"name": "Claire Martin", "email": "claire@globex.example", "role": "Accounts payable"},
            {"name": "Old Buyer", "email": "old@globex.example", "receives_invoices": False},
        ],
    )
    claire, old = customer.contacts.order_by("name")
    page = staff.get(reverse("customer-update", args=[customer.pk]))
    assert [f.initial["name"] for f in page.context["contacts"].forms] == ["Claire Martin", "Old Buyer"]
    rows = [
        {"id": claire.pk, "name": "Claire Martin", "email": "claire@globex.example", "role": "Accounts payable",
         "phone": "+33 1 23 45 67 89", "receives_invoices": "on"},
        {"id": old.pk, "name": "Old Buyer", "email": "old@globex.example", "DELETE": "on"},
        {"name": "New Buyer", "email": "new@globex.example", "receives_invoices": "on"},
    ]  # fmt: skip
    response = staff.post(
        reverse("customer-update", args=[customer.pk]),
        form_data(terms, rows, initial=2, name="Globex SARL", email="ap@globex.example"),
    )
    assert response.status_code == 302
    kept = {c.name: c for c in customer.contacts.all()}
    assert set(kept) == {"Claire Martin", "New Buyer"}
    assert kept["Claire Martin"].pk == claire.pk
    assert kept["Claire Martin"].phone == "+33 1 23 45 67 89"
    assert not Contact.objects.filter(pk=old.pk).exists()
    event = AuditEvent.objects.get(action="customer.updated", object_id=customer.pk)
    assert event.actor == user
    assert event.changes["contacts"] == {
        "added": ["New Buyer <new@globex.example>"],
        "changed": ["Claire Martin: phone — → +33 1 23 45 67 89"],
        "removed": ["Old Buyer <old@globex.example>"],
    }
    assert "name" not in event.changes  # the form posted the customer's fields unchanged


def test_a_contact_of_another_customer_cannot_be_taken_over(staff, terms):
    customer = new_customer(terms, contacts=[{"name": "Ours", "email": "ours@globex.example"}])
    theirs = Contact.objects.create(customer=CustomerFactory(), name="Theirs", email="theirs@other.example")
    rows = [{"id": theirs.pk, "name": "Hijacked", "email": "me@globex.example", "receives_invoices": "on"}]
    response = staff.post(reverse("customer-update", args=[customer.pk]), form_data(terms, rows, initial=1))
    assert response.status_code == 200
    assert "is not one of this customer&#x27;s contacts" in response.content.decode()
    theirs.refresh_from_db()
    assert (theirs.customer_id, theirs.name) != (customer.pk, "Hijacked")
    assert list(customer.contacts.values_list("name", flat=True)) == ["Ours"]


def test_a_post_without_the_contacts_table_leaves_the_contacts_alone(staff, terms):
    customer = new_customer(terms, contacts=[{"name": "Claire Martin", "email": "claire@globex.example"}])
    data = {k: v for k, v in form_data(terms, name="Renamed SARL").items() if not k.startswith("contacts-")}
    assert staff.post(reverse("customer-update", args=[customer.pk]), data).status_code == 302
    customer.refresh_from_db()
    assert customer.name == "Renamed SARL"
    assert list(customer.contacts.values_list("name", flat=True)) == ["Claire Martin"]


def test_the_form_keeps_a_shipping_address_only_when_the_box_is_ticked(staff, terms):
    url = reverse("customer-create")
    refused = staff.post(url, form_data(terms, ship_elsewhere="on", shipping_line1="Zone industrielle"))
    assert refused.status_code == 200
    assert 'id="id_shipping_city_error"' in refused.content.decode()
    assert not Customer.objects.exists()

    staff.post(url, form_data(terms, name="Same", shipping_line1="ignored", shipping_city="ignored"))
    same = Customer.objects.get(name="Same")
    assert same.shipping_same_as_billing and same.shipping_line1 == ""

    staff.post(
        url,
        form_data(terms, name="Elsewhere", ship_elsewhere="on", shipping_line1="ZI quai 4", shipping_city="Mérignac"),
    )
    elsewhere = Customer.objects.get(name="Elsewhere")
    assert not elsewhere.shipping_same_as_billing
    page = staff.get(elsewhere.get_absolute_url()).content.decode()
    assert "ZI quai 4" in page and "Mérignac" in page
    edit = staff.get(reverse("customer-update", args=[elsewhere.pk])).content.decode()
    assert 'value="ZI quai 4"' in edit  # shown at once, not waiting in the template
    assert '<template id="shipping-template">' not in edit


def test_a_contact_receiving_invoices_has_an_email_in_the_database(customer):
    with pytest.raises(IntegrityError), transaction.atomic():
        Contact.objects.create(customer=customer, name="Nobody", email="", receives_invoices=True)


# --- Audit trail and history --------------------------------------------------------------------


def test_every_changed_field_is_audited_with_before_and_after(user, terms):
    customer = new_customer(terms)
    stricter = PaymentTermsFactory(name="Net 15", due_days=15)
    services.customer_update(
        customer=customer,
        actor=user,
        credit_limit=Decimal("2500"),
        on_hold=True,
        on_hold_reason="Disputed invoice",
        payment_terms=stricter,
        name="Globex SARL",  # unchanged: not recorded
    )
    event = AuditEvent.objects.get(action="customer.updated")
    assert event.actor == user
    assert event.changes == {
        "credit_limit": ["", "2500.00"],
        "on_hold": ["no", "yes"],
        "on_hold_reason": ["", "Disputed invoice"],
        "payment_terms": ["Net 30", "Net 15"],
    }
    services.customer_update(customer=customer, actor=user, name="Globex SARL")
    assert AuditEvent.objects.filter(action="customer.updated").count() == 1  # nothing changed, nothing written


def test_the_customer_page_shows_the_history_newest_first(staff, user, terms):
    customer = new_customer(terms, actor=user)
    services.customer_update(customer=customer, actor=user, credit_limit=Decimal("5000"))
    html = staff.get(customer.get_absolute_url()).content.decode()
    history = html[html.index('id="customer-history"') :]
    assert history.index("Changed</strong> by finance") < history.index("Created</strong> by finance")
    assert "Credit limit:" in history
    assert "5000.00" in history
    assert "Billing email:" in history
    assert "ap@globex.example" in history


def test_notes_are_saved_in_place_and_audited(staff, user, customer):
    url = reverse("customer-notes", args=[customer.pk])
    response = staff.post(url, {"notes": "Deliveries before 10:00 only."}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-testid="notes-saved"' in html
    assert 'id="customer-history" data-testid="customer-history" hx-swap-oob="true"' in html
    assert "Deliveries before 10:00 only." in html[html.index("customer-history") :]
    customer.refresh_from_db()
    assert customer.notes == "Deliveries before 10:00 only."
    assert AuditEvent.objects.get(action="customer.updated").changes == {"notes": ["", "Deliveries before 10:00 only."]}

    plain = staff.post(url, {"notes": "x" * 10_001})  # without htmx: back to the page, with the reason
    assert plain.status_code == 302
    customer.refresh_from_db()
    assert customer.notes == "Deliveries before 10:00 only."
    assert staff.get(url).status_code == 405


def test_the_statement_button_follows_the_statement_url(staff, customer):
    html = staff.get(customer.get_absolute_url()).content.decode()
    try:
        url = reverse("customer-statement", args=[customer.pk])
    except NoReverseMatch:
        assert "Statement (PDF)" not in html
    else:
        assert f'href="{url}" data-testid="statement-link">Statement (PDF)' in html


# --- Balance, overdue and aging -----------------------------------------------------------------


def test_customer_page_balance_overdue_and_aging_on_a_hand_built_ledger(
    staff, user, make_issued_invoice, django_assert_max_num_queries
):
    """Net 30 terms, every invoice 462.62 (2 chairs + 3 books). Days past due = days since issue - 30."""
    today = timezone.localdate()
    customer = CustomerFactory(payment_terms=PaymentTermsFactory(name="Net 30 aging", due_days=30))
    each = Decimal("462.62")

    def issued(days_ago: int):
        return make_issued_invoice(customer, issue_date=today - timedelta(days=days_ago))

    issued(10)  # due in 20 days: current
    issued(30)  # due today: still current
    issued(31)  # 1 day past due: 1-30
    issued(60)  # 30 days past due: 1-30
    part_paid = issued(61)  # 31 days past due: 31-60, less 100.00 paid
    issued(100)  # 70 days past due: 61-90
    issued(121)  # 91 days past due: 90+
    paid = issued(150)  # paid in full: owes nothing
    pay = {"customer": customer, "method": "bank_transfer", "currency": "EUR", "actor": user}
    payments.payment_record(amount=Decimal("100.00"), allocations=[{"invoice": part_paid, "amount": "100.00"}], **pay)
    payments.payment_record(amount=each, allocations=[{"invoice": paid, "amount": each}], **pay)
    unapplied = payments.payment_record(amount=Decimal("50.00"), auto_allocate=False, **pay)

    expected = {
        "current": 2 * each,
        "days_1_30": 2 * each,
        "days_31_60": each - 100,
        "days_61_90": each,
        "days_over_90": each,
    }
    open_items = 7 * each - 100  # 3,138.34
    overdue = 5 * each - 100  # 2,213.10
    balance = open_items - 50  # 3,088.34

    account = selectors.customer_account(customer)
    assert account.aging == expected
    assert (account.open_items, account.overdue, account.credit, account.balance) == (open_items, overdue, 50, balance)
    assert (account.overdue_count, account.days_overdue) == (5, 91)

    with django_assert_max_num_queries(14):  # 12 today; an N+1 over the ten recent rows breaks it
        response = staff.get(customer.get_absolute_url())
    html = response.content.decode()

    def tile(testid: str) -> str:
        start = html.index(f'data-testid="{testid}"')
        return html[start : html.index("</div></div>", start)]

    assert money(balance) in tile("account-balance")
    assert money(overdue) in tile("account-overdue")
    assert "5 invoices · oldest 91 days past due" in tile("account-overdue")
    assert money(Decimal("50.00")) in tile("account-credit")
    for key, amount in expected.items():
        assert money(amount) in tile(f"aging-{key}"), key
    # The last ten of each, linked.
    recent = html[html.index('data-testid="recent-invoices"') :]
    assert f'href="{paid.get_absolute_url()}"' in recent
    assert f'href="{unapplied.get_absolute_url()}"' in html[html.index('data-testid="recent-payments"') :]
    assert html[html.index('data-testid="recent-orders"') :].count('href="/orders/') >= 8


def test_the_aging_agrees_with_the_statement_and_the_invoicing_states(customer, user, make_issued_invoice):
    """billing reads invoices through the reverse relation by name; this pins those names."""
    from invoicing.models import OPEN_STATUSES, InvoiceKind
    from payments import statements

    assert set(selectors.OPEN_INVOICE_STATES) == {str(s) for s in OPEN_STATUSES}
    assert set(selectors.OPEN_ITEM_KINDS) == {str(k) for k in statements.OPEN_ITEM_KINDS}
    assert selectors.CREDIT_NOTE == InvoiceKind.CREDIT_NOTE
    today = timezone.localdate()
    for days_ago in (5, 45, 80, 100, 200):
        make_issued_invoice(customer, issue_date=today - timedelta(days=days_ago))
    statement = statements.aging(customer=customer, as_of=today)
    ours = selectors.customer_account(customer, as_of=today)
    assert ours.aging == {key: statement[key] for key, _label in selectors.AGING_BUCKETS}
    assert ours.open_items == statement["total"]


# --- Search -------------------------------------------------------------------------------------


@pytest.fixture
def directory(terms):
    atelier = CustomerFactory(
        name="Atelier Dupont & Fils", code="ADF-001", tax_id="FR40303265045", email="compta@dupont.example"
    )
    port = CustomerFactory(name="Brasserie du Port", code="BRP-002", email="accounts@port.example")
    Contact.objects.create(customer=port, name="Claire Martin", email="claire.martin@port.example")
    dupontel = CustomerFactory(name="Dupontel SA", code="DTL-003", email="ap@dupontel.example", legal_name="Dupontel")
    return {"atelier": atelier, "port": port, "dupontel": dupontel}


@pytest.mark.parametrize(
    ("q", "found"),
    [
        ("dup", {"atelier", "dupontel"}),  # the start of any word of the name
        ("Dupont fils", {"atelier"}),
        ("PORT", {"port"}),
        ("adf", {"atelier"}),  # code
        ("fr 40 303", {"atelier"}),  # tax id, typed with spaces
        ("compta@", {"atelier"}),  # billing e-mail
        ("claire.martin@", {"port"}),  # a contact's e-mail
        ("ap@dupontel.example", {"dupontel"}),
        ("upont", set()),  # not the middle of a word
        ("commerce", set()),  # the address is not searched
        ("%", set()),
    ],
)
def test_customer_search(staff, directory, q, found):
    response = staff.get(reverse("customer-list"), {"q": q})
    assert response.status_code == 200
    names = {c.name for c in response.context["page_obj"].object_list}
    assert names == {directory[key].name for key in found}


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the search indexes are PostgreSQL's")
def test_every_branch_of_the_search_is_served_by_an_index(directory):
    """With sequential scans priced out, a branch no index serves (an icontains, say) still forces one."""
    queries = [
        selectors.customer_search(Customer.objects.all(), "Dupont fils"),
        selectors.customer_search(Customer.objects.all(), "claire.martin@"),  # with the contacts' matches
        Contact.objects.filter(email__istartswith="claire"),
    ]
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        for queryset in queries:
            sql, params = queryset.query.sql_with_params()
            cursor.execute(f"EXPLAIN {sql}", params)
            plan = "\n".join(row[0] for row in cursor.fetchall())
            assert "Seq Scan" not in plan, plan
            assert "Index" in plan, plan


# --- Admin --------------------------------------------------------------------------------------


def test_the_admin_saves_through_the_services_with_contacts_and_audit(client, user, terms):
    client.force_login(user)
    base = {
        "name": "Admin Made SA",
        "code": "",
        "email": "ap@admin-made.example",
        "currency": "eur",
        "payment_terms": terms.pk,
        "billing_method": "electronic",
        "billing_cycle": "per_order",
        "billing_country": "FR",
        "tax_id": "FR 40 303 265 045",
        "shipping_same_as_billing": "on",
        "contacts-TOTAL_FORMS": "1",
        "contacts-INITIAL_FORMS": "0",
        "contacts-MIN_NUM_FORMS": "0",
        "contacts-MAX_NUM_FORMS": "1000",
        "contacts-0-name": "Ines Admin",
        "contacts-0-email": "ines@admin-made.example",
        "contacts-0-receives_invoices": "on",
    }
    refused = client.post("/admin/billing/customer/add/", {**base, "tax_id": "FR40303265046"})
    assert refused.status_code == 200
    assert "Not a valid VAT number for France (FR)" in refused.content.decode()
    assert not Customer.objects.exists()

    response = client.post("/admin/billing/customer/add/", base)
    assert response.status_code == 302, response.content.decode()[:2000]
    customer = Customer.objects.get()
    assert (customer.code, customer.tax_id, customer.currency) == (f"C{customer.pk:05d}", "FR40303265045", "EUR")
    assert list(customer.contacts.values_list("name", flat=True)) == ["Ines Admin"]
    events = AuditEvent.objects.filter(object_id=customer.pk).order_by("id")
    assert [e.action for e in events] == ["customer.created", "customer.updated"]
    assert events[0].actor == user
    assert events[1].changes == {"contacts": {"added": ["Ines Admin <ines@admin-made.example>"]}}

    contact = customer.contacts.get()
    change = {
        **base,
        "code": customer.code,
        "credit_limit": "750.00",
        "contacts-INITIAL_FORMS": "1",
        "contacts-0-id": str(contact.pk),
        "contacts-0-customer": str(customer.pk),
    }
    assert client.post(f"/admin/billing/customer/{customer.pk}/change/", change).status_code == 302
    last = AuditEvent.objects.filter(object_id=customer.pk).latest("id")
    assert last.changes == {"credit_limit": ["", "750.00"]}
    history = client.get(f"/admin/billing/auditevent/?object_id={customer.pk}")
    assert history.status_code == 200


@pytest.mark.django_db(transaction=True)
def test_concurrent_contact_edits_never_mix_their_lists(terms):
    """Each edit replaces the list; under the customer's lock the last one wins whole, never a union."""
    customer = new_customer(terms, contacts=[{"name": "Shared", "email": "shared@globex.example"}])
    editors = 6
    barrier = threading.Barrier(editors)

    def edit(i):
        try:
            barrier.wait(timeout=30)
            contacts = [{"name": f"Editor {i}", "email": f"editor{i}@globex.example"}]
            return services.customer_update(customer=customer, contacts=contacts).pk
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=editors) as pool:
        assert list(pool.map(edit, range(editors))) == [customer.pk] * editors
    names = list(customer.contacts.values_list("name", flat=True))
    assert len(names) == 1, names
    assert names[0].startswith("Editor ")
    assert AuditEvent.objects.filter(action="customer.updated", object_id=customer.pk).count() == editors


@pytest.mark.django_db
def test_iban_is_stored_compact_and_a_wrong_one_is_refused():
    from django.core.exceptions import ValidationError

    from tests.factories import CustomerFactory

    customer = CustomerFactory()
    customer.iban = "fr76 3000 6000 0112 3456 7890 189"
    customer.full_clean()
    assert customer.iban == "FR7630006000011234567890189"
    customer.iban = "FR7630006000011234567890180"  # one check digit off
    with pytest.raises(ValidationError) as refused:
        customer.full_clean()
    assert "not a valid IBAN" in str(refused.value.message_dict["iban"])
