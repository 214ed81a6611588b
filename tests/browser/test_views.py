"""The browser UI through Django's test client: access control, form errors, refusals, edge input."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.files.base import ContentFile
from django.urls import reverse
from django.utils import timezone

from billing.models import Customer
from invoicing import services as invoicing
from invoicing.models import Invoice, InvoiceStatus, PdfStatus
from orders import services as orders
from orders.forms import entry_token
from orders.models import Order, OrderStatus
from payments.models import Payment
from tests.factories import CustomerFactory, PaymentTermsFactory

pytestmark = pytest.mark.django_db


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


# --- Access -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "/",
        "/kpis/",
        "/customers/",
        "/customers/new/",
        "/customers/1/",
        "/customers/1/edit/",
        "/orders/",
        "/orders/new/",
        "/orders/1/",
        "/invoices/",
        "/invoices/1/",
        "/invoices/1/pdf/",
        "/payments/",
        "/payments/new/",
        "/payments/1/",
    ],
)
def test_anonymous_users_are_sent_to_the_login_page(client, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('login')}?next={url}"


@pytest.mark.parametrize(
    "url", ["/orders/1/confirm/", "/orders/1/fulfil/", "/orders/1/cancel/", "/orders/1/invoice/", "/invoices/1/issue/"]
)
def test_anonymous_posts_change_nothing(client, url):
    response = client.post(url)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_favicon_is_the_apps_icon_for_anyone(client):
    """Pages that name no icon (the admin, the API docs) make the browser ask for /favicon.ico."""
    response = client.get("/favicon.ico")
    assert response.status_code == 301 and response.url.endswith("/img/favicon.svg")
    icon = client.get(response.url)
    assert icon.status_code == 200 and b"<svg" in b"".join(icon.streaming_content)


def test_home_leads_to_the_kpi_dashboard(staff):
    response = staff.get("/", follow=True)
    assert response.redirect_chain[-1][0] == reverse("kpi-dashboard")
    assert b"Receivables at a glance" in response.content


def test_login_page_renders_and_rejects_a_wrong_password(client, user):
    response = client.post(reverse("login"), {"username": user.username, "password": "wrong"})
    assert response.status_code == 200
    assert b'data-testid="login-error"' in response.content


@pytest.mark.parametrize(
    "name", ["customer-detail", "customer-update", "order-detail", "invoice-detail", "invoice-pdf", "payment-detail"]
)
def test_unknown_ids_are_404(staff, name):
    assert staff.get(reverse(name, args=[987654])).status_code == 404


@pytest.mark.parametrize(
    "name", ["order-confirm", "order-fulfil", "order-cancel", "order-invoice", "invoice-issue", "payment-allocate"]
)
def test_actions_on_unknown_ids_are_404(staff, name):
    assert staff.post(reverse(name, args=[987654])).status_code == 404


def test_actions_refuse_get(staff, customer, make_fulfilled_order):
    order = make_fulfilled_order(customer)
    assert staff.get(reverse("order-invoice", args=[order.pk])).status_code == 405
    order.refresh_from_db()
    assert order.status == OrderStatus.FULFILLED


def test_posts_without_a_csrf_token_are_refused(client, user, customer, make_fulfilled_order):
    from django.test import Client

    csrf_client = Client(enforce_csrf_checks=True)
    csrf_client.force_login(user)
    order = make_fulfilled_order(customer)
    response = csrf_client.post(reverse("order-invoice", args=[order.pk]))
    assert response.status_code == 403
    assert not Invoice.objects.exists()


# --- Lists ------------------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["/customers/", "/orders/", "/invoices/", "/payments/"])
@pytest.mark.parametrize(
    "query",
    [
        "",
        "?sort=-nope",
        "?sort=__class__",
        "?page=abc",
        "?page=99999",
        "?customer=abc",
        "?customer=99999999999999999999",
        "?status=zzz",
        "?q=%00x",
    ],
)
def test_lists_survive_any_query_string(staff, url, query, make_issued_invoice, customer):
    make_issued_invoice(customer)
    response = staff.get(url + query)
    assert response.status_code == 200


@pytest.mark.parametrize("url", ["/customers/", "/orders/", "/invoices/", "/payments/"])
def test_lists_say_so_when_empty(staff, url):
    response = staff.get(url)
    assert b'data-testid="empty-state"' in response.content
    assert b"yet" in response.content


def test_invoice_list_filters_and_sorts(staff, user, make_issued_invoice):
    alice, bob = CustomerFactory(name="Alice SA"), CustomerFactory(name="Bob SARL")
    old = make_issued_invoice(alice, issue_date=timezone.localdate() - timedelta(days=90))
    new = make_issued_invoice(bob)

    response = staff.get("/invoices/?status=overdue")
    assert list(response.context["page_obj"]) == [old]

    response = staff.get(f"/invoices/?customer={bob.pk}")
    assert list(response.context["page_obj"]) == [new]

    response = staff.get("/invoices/?sort=due")
    assert list(response.context["page_obj"]) == [old, new]
    response = staff.get("/invoices/?sort=-due")
    assert list(response.context["page_obj"]) == [new, old]

    response = staff.get("/invoices/?q=alice")
    assert list(response.context["page_obj"]) == [old]


def test_lists_paginate_by_50(staff, products):
    terms = PaymentTermsFactory()
    Customer.objects.bulk_create(
        [
            Customer(code=f"P{i:04d}", name=f"Pager {i:03d}", email=f"p{i}@x.example", payment_terms=terms)
            for i in range(55)
        ]
    )
    first = staff.get("/customers/")
    assert len(first.context["page_obj"]) == 50
    second = staff.get("/customers/?page=2")
    assert [c.name for c in second.context["page_obj"]] == [f"Pager {i:03d}" for i in range(50, 55)]


@pytest.mark.parametrize("url", ["/orders/", "/invoices/", "/payments/", "/customers/"])
def test_lists_do_not_query_per_row(staff, url, user, make_issued_invoice, django_assert_max_num_queries):
    from payments.services import payment_record

    for _ in range(6):
        c = CustomerFactory()
        make_issued_invoice(c)
        payment_record(customer=c, method="card", amount=Decimal("10"), currency="EUR", actor=user)
    with django_assert_max_num_queries(8):
        assert staff.get(url).status_code == 200


# --- Customers --------------------------------------------------------------------------------


def test_customer_form_shows_errors_inline_and_saves_nothing(staff):
    terms = PaymentTermsFactory()
    response = staff.post(
        reverse("customer-create"),
        {
            "name": "",
            "email": "not-an-email",
            "currency": "euro",
            "payment_terms": terms.pk,
            "billing_method": "electronic",
            "billing_cycle": "per_order",
        },
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="id_name_error"' in html
    assert 'id="id_email_error"' in html
    assert "Use a three-letter ISO 4217 code" in html or "Ensure this value has at most 3 characters" in html
    assert html.count("is-invalid") >= 3
    assert not Customer.objects.exists()


def test_new_customer_form_starts_in_euros_with_the_name_focused(staff):
    form = staff.get(reverse("customer-create")).context["form"]
    assert form["currency"].value() == "EUR"
    assert "autofocus" in str(form["name"])
    assert "code" in form.fields  # only on create: an existing customer's code stays


def test_customer_on_hold_needs_a_reason(staff):
    terms = PaymentTermsFactory()
    data = {
        "name": "Holdco",
        "email": "ap@holdco.example",
        "currency": "eur",
        "payment_terms": terms.pk,
        "billing_method": "electronic",
        "billing_cycle": "per_order",
        "on_hold": "on",
    }
    response = staff.post(reverse("customer-create"), data)
    assert "Say why the customer is on hold." in response.content.decode()
    assert not Customer.objects.exists()

    response = staff.post(reverse("customer-create"), {**data, "on_hold_reason": "Unpaid since June"})
    customer = Customer.objects.get()
    assert response["Location"] == customer.get_absolute_url()
    assert customer.currency == "EUR"
    assert customer.code


def test_customer_edit_goes_through_the_service_and_is_audited(staff, customer):
    from billing.models import AuditEvent

    response = staff.get(reverse("customer-update", args=[customer.pk]))
    data = {k: v for k, v in response.context["form"].initial.items() if v is not None}
    data.update(name="Renamed SARL", on_hold="")
    response = staff.post(reverse("customer-update", args=[customer.pk]), data)
    assert response.status_code == 302
    customer.refresh_from_db()
    assert customer.name == "Renamed SARL"
    assert AuditEvent.objects.filter(action="customer.updated", object_id=customer.pk).exists()


# --- Orders -----------------------------------------------------------------------------------


def _order_post(customer, lines, **extra):
    data = {
        "customer": customer.pk,
        "customer_reference": "PO-1",
        "order_date": timezone.localdate().isoformat(),
        "entry_token": entry_token(timezone.now() - timedelta(seconds=90)),
        "lines-TOTAL_FORMS": str(max(len(lines), 3)),
        "lines-INITIAL_FORMS": "0",
        "lines-MIN_NUM_FORMS": "0",
        "lines-MAX_NUM_FORMS": "1000",
        **extra,
    }
    for i, line in enumerate(lines):
        for key, value in line.items():
            data[f"lines-{i}-{key}"] = value
    return data


def test_order_entry_creates_a_draft_and_keeps_the_entry_time(staff, customer, products):
    response = staff.post(
        reverse("order-create"),
        _order_post(
            customer,
            [
                {"product": products[0].pk, "quantity": "2"},
                {"product": products[1].pk, "quantity": "3", "unit_price": "30.00", "discount_percent": "10"},
            ],
        ),
    )
    order = Order.objects.get()
    assert response["Location"] == order.get_absolute_url()
    assert order.channel == "ui"
    assert order.status == OrderStatus.DRAFT
    assert [(line.unit_price, line.discount_percent) for line in order.lines.all()] == [
        (Decimal("149.90"), Decimal("0")),
        (Decimal("30.00"), Decimal("10")),
    ]
    assert timedelta(seconds=80) < order.created_at - order.entry_started_at < timedelta(seconds=120)


def test_order_entry_without_lines_is_refused_inline(staff, customer, products):
    response = staff.post(reverse("order-create"), _order_post(customer, []))
    assert response.status_code == 200
    assert "Add at least one line" in response.content.decode()
    assert not Order.objects.exists()


def test_order_entry_shows_line_errors_inline(staff, customer, products):
    response = staff.post(
        reverse("order-create"), _order_post(customer, [{"product": products[0].pk, "quantity": "0"}])
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert "is-invalid" in html
    assert "greater than or equal to 0.001" in html
    assert not Order.objects.exists()


def test_order_entry_with_a_forged_entry_token_still_works(staff, customer, products):
    data = _order_post(customer, [{"product": products[0].pk, "quantity": "1"}], entry_token="forged")
    staff.post(reverse("order-create"), data)
    order = Order.objects.get()
    assert order.entry_started_at is not None


def test_confirming_for_a_customer_on_hold_shows_the_refusal(staff, user, products):
    customer = CustomerFactory(on_hold=True, on_hold_reason="Disputed invoice")
    order = orders.order_create(customer=customer, lines=[{"product": products[0], "quantity": 1}], actor=user)
    response = staff.post(reverse("order-confirm", args=[order.pk]), follow=True)
    assert response.status_code == 200
    assert any("on hold" in m for m in messages_of(response))
    assert b"Disputed invoice" in response.content
    order.refresh_from_db()
    assert order.status == OrderStatus.DRAFT


def test_a_stale_button_shows_the_invalid_transition(staff, customer, make_fulfilled_order):
    order = make_fulfilled_order(customer)
    response = staff.post(reverse("order-confirm", args=[order.pk]), follow=True)
    assert response.status_code == 200
    assert any("cannot become confirmed" in m for m in messages_of(response))


def test_order_page_offers_only_the_allowed_actions(staff, user, customer, products):
    order = orders.order_create(customer=customer, lines=[{"product": products[0], "quantity": 1}], actor=user)
    html = staff.get(order.get_absolute_url()).content.decode()
    assert reverse("order-confirm", args=[order.pk]) in html
    assert reverse("order-cancel", args=[order.pk]) in html
    assert reverse("order-fulfil", args=[order.pk]) not in html
    assert reverse("order-invoice", args=[order.pk]) not in html

    staff.post(reverse("order-cancel", args=[order.pk]), {"reason": "Customer changed their mind"})
    order.refresh_from_db()
    assert order.status == OrderStatus.CANCELLED
    html = staff.get(order.get_absolute_url()).content.decode()
    assert "Customer changed their mind" in html
    for name in ("order-confirm", "order-cancel", "order-fulfil", "order-invoice"):
        assert reverse(name, args=[order.pk]) not in html


def test_invoicing_an_order_twice_is_a_message_not_an_error(staff, customer, make_fulfilled_order):
    order = make_fulfilled_order(customer)
    first = staff.post(reverse("order-invoice", args=[order.pk]))
    invoice = Invoice.objects.get()
    assert first["Location"] == invoice.get_absolute_url()
    second = staff.post(reverse("order-invoice", args=[order.pk]), follow=True)
    assert second.status_code == 200
    assert any("only fulfilled orders are invoiced" in m for m in messages_of(second))
    assert Invoice.objects.count() == 1


# --- Invoices ---------------------------------------------------------------------------------


def test_draft_invoice_shows_live_customer_and_issue_button(staff, user, customer, make_fulfilled_order):
    draft = invoicing.invoice_create_from_orders(orders=[make_fulfilled_order(customer)], actor=user)
    html = staff.get(draft.get_absolute_url()).content.decode()
    assert "Draft invoice" in html
    assert customer.name in html
    assert reverse("invoice-issue", args=[draft.pk]) in html
    assert f"invoice={draft.pk}" not in html  # nothing to pay on a draft

    response = staff.post(reverse("invoice-issue", args=[draft.pk]), follow=True)
    draft.refresh_from_db()
    assert draft.status == InvoiceStatus.ISSUED
    assert any(draft.number in m for m in messages_of(response))

    again = staff.post(reverse("invoice-issue", args=[draft.pk]), follow=True)
    assert any("only drafts are issued" in m for m in messages_of(again))


def test_invoice_page_shows_tax_breakdown_and_balance(staff, customer, make_issued_invoice):
    invoice = make_issued_invoice(customer)
    html = staff.get(invoice.get_absolute_url()).content.decode()
    assert invoice.number in html
    assert "Reduced" in html and "Standard" in html
    assert "462.62" in html
    assert "Rendering" in html


def test_pdf_download_waits_for_rendering(staff, customer, make_issued_invoice):
    invoice = make_issued_invoice(customer)
    response = staff.get(reverse("invoice-pdf", args=[invoice.pk]), follow=True)
    assert any("still being rendered" in m for m in messages_of(response))


def test_pdf_download_serves_the_stored_file(staff, customer, make_issued_invoice, settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path)
    invoice = make_issued_invoice(customer)
    invoice.pdf.save(f"{invoice.number}.pdf", ContentFile(b"%PDF-1.7 test"), save=False)
    invoice.pdf_status = PdfStatus.READY
    invoice.save(update_fields=["pdf", "pdf_status", "updated_at"])
    response = staff.get(reverse("invoice-pdf", args=[invoice.pk]))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"] == f'attachment; filename="{invoice.number}.pdf"'
    assert b"".join(response.streaming_content) == b"%PDF-1.7 test"


def test_pdf_of_a_draft_is_a_message(staff, user, customer, make_fulfilled_order):
    draft = invoicing.invoice_create_from_orders(orders=[make_fulfilled_order(customer)], actor=user)
    response = staff.get(reverse("invoice-pdf", args=[draft.pk]), follow=True)
    assert any("issue the invoice first" in m for m in messages_of(response))


# --- Payments ---------------------------------------------------------------------------------


def _payment_post(customer, **extra):
    return {
        "customer": customer.pk,
        "method": "bank_transfer",
        "amount": "100.00",
        "currency": customer.currency,
        "received_on": timezone.localdate().isoformat(),
        "reference": "",
        "invoice": "",
        **extra,
    }


def test_payment_form_prefills_from_the_invoice(staff, customer, make_issued_invoice):
    invoice = make_issued_invoice(customer)
    response = staff.get(f"{reverse('payment-create')}?customer={customer.pk}&invoice={invoice.pk}")
    form = response.context["form"]
    assert form.initial["customer"] == customer.pk
    assert form.initial["invoice"] == invoice.pk
    assert form.initial["amount"] == Decimal("462.62")
    assert form.initial["currency"] == "EUR"


def test_choosing_a_customer_refreshes_currency_and_invoices(staff, customer, make_issued_invoice):
    other = CustomerFactory(currency="GBP")
    mine = make_issued_invoice(customer)
    theirs = make_issued_invoice(other)
    response = staff.get(f"{reverse('payment-create')}?customer={other.pk}", HTTP_HX_REQUEST="true")
    form = response.context["form"]
    assert form.initial["currency"] == "GBP"
    assert list(form.fields["invoice"].queryset) == [theirs]
    assert mine.number not in response.content.decode()


def test_payment_form_errors_save_nothing(staff, customer, make_issued_invoice):
    other_invoice = make_issued_invoice(CustomerFactory())
    tomorrow = (timezone.localdate() + timedelta(days=1)).isoformat()
    response = staff.post(
        reverse("payment-create"),
        _payment_post(customer, amount="0", received_on=tomorrow, invoice=other_invoice.pk),
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert 'id="id_amount_error"' in html
    assert "cannot be received in the future" in html
    assert not Payment.objects.exists()

    # Another customer's invoice is not even among the choices.
    response = staff.post(reverse("payment-create"), _payment_post(customer, invoice=other_invoice.pk))
    assert 'id="id_invoice_error"' in response.content.decode()
    assert not Payment.objects.exists()


def test_payment_to_an_invoice_allocates_at_most_its_balance(staff, customer, make_issued_invoice):
    older = make_issued_invoice(customer, issue_date=timezone.localdate() - timedelta(days=60))
    chosen = make_issued_invoice(customer)
    response = staff.post(reverse("payment-create"), _payment_post(customer, amount="500.00", invoice=chosen.pk))
    payment = Payment.objects.get()
    assert response["Location"] == payment.get_absolute_url()
    chosen.refresh_from_db()
    older.refresh_from_db()
    assert chosen.status == InvoiceStatus.PAID
    assert older.status == InvoiceStatus.ISSUED  # not the oldest: the one staff chose
    assert payment.unallocated_amount == Decimal("37.38")

    page = staff.get(payment.get_absolute_url()).content.decode()
    assert chosen.number in page
    assert reverse("payment-allocate", args=[payment.pk]) in page
    staff.post(reverse("payment-allocate", args=[payment.pk]))
    older.refresh_from_db()
    assert older.amount_paid == Decimal("37.38")


def test_payment_without_invoice_goes_oldest_first(staff, customer, make_issued_invoice):
    older = make_issued_invoice(customer, issue_date=timezone.localdate() - timedelta(days=60))
    newer = make_issued_invoice(customer)
    staff.post(reverse("payment-create"), _payment_post(customer, amount="462.62"))
    older.refresh_from_db()
    newer.refresh_from_db()
    assert older.status == InvoiceStatus.PAID
    assert newer.status == InvoiceStatus.ISSUED


def test_payment_with_a_method_outside_the_terms_warns(staff):
    customer = CustomerFactory(payment_terms=PaymentTermsFactory(accepted_methods=["bank_transfer"]))
    response = staff.post(reverse("payment-create"), _payment_post(customer, method="card"), follow=True)
    payment = Payment.objects.get()
    assert payment.method_accepted is False
    assert any("not an accepted payment method" in m for m in messages_of(response))


def test_payment_form_rejects_unknown_method_and_garbage(staff, customer):
    response = staff.post(reverse("payment-create"), _payment_post(customer, method="bitcoin", amount="abc"))
    assert response.status_code == 200
    assert not Payment.objects.exists()
    response = staff.post(reverse("payment-create"), {"customer": "x"})
    assert response.status_code == 200


# --- KPIs -------------------------------------------------------------------------------------


def test_kpi_dashboard_shows_receivables_and_overdue_invoices(staff, customer, make_issued_invoice):
    late = make_issued_invoice(customer, issue_date=timezone.localdate() - timedelta(days=60))
    make_issued_invoice(customer)
    response = staff.get(reverse("kpi-dashboard"))
    html = response.content.decode()
    assert "925.24" in html  # open receivables, EUR
    assert "462.62" in html  # overdue
    assert late.number in html
    assert [inv for inv, _days in response.context["overdue"]] == [late]


def test_payment_oldest_first_never_lands_on_a_credit_note(staff, user, customer, make_issued_invoice):
    paid = make_issued_invoice(customer, issue_date=timezone.localdate() - timedelta(days=60))
    staff.post(reverse("payment-create"), _payment_post(customer, amount="462.62", invoice=paid.pk))
    credit_note = invoicing.invoice_credit(invoice=paid, reason="Returned goods", actor=user)
    assert credit_note.is_open  # the paid invoice could take none of it: it is customer credit
    due = make_issued_invoice(customer)

    staff.post(reverse("payment-create"), _payment_post(customer, amount="462.62"))
    credit_note.refresh_from_db()
    due.refresh_from_db()
    assert credit_note.amount_paid == 0
    assert due.status == InvoiceStatus.PAID
    # Nor can staff pick a credit note on the form, or reach the form from one.
    form = staff.get(f"{reverse('payment-create')}?customer={customer.pk}").context["form"]
    assert credit_note not in form.fields["invoice"].queryset
    assert f"invoice={credit_note.pk}" not in staff.get(credit_note.get_absolute_url()).content.decode()
