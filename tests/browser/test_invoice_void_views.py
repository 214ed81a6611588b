"""Voiding and crediting in the browser UI, through Django's test client: the buttons show only when
the action is allowed, bad input comes back inline and changes nothing, refusals become a
message, and a credit note is previewed before it is posted."""

from decimal import Decimal

import pytest
from django.urls import reverse

from invoicing import services as invoicing
from invoicing.models import Invoice, InvoiceKind, InvoiceStatus
from orders.models import Order, OrderStatus
from payments.services import payment_record

D = Decimal
pytestmark = pytest.mark.django_db


@pytest.fixture
def invoice(make_issued_invoice, customer):
    return make_issued_invoice(customer)  # chairs 2 x 149.90 at 20 %, books 3 x 32.50 at 5.5 %: 462.62


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def _credit_notes():
    return Invoice.objects.filter(kind=InvoiceKind.CREDIT_NOTE)


def test_an_issued_invoice_offers_void_and_credit(staff, invoice):
    page = staff.get(invoice.get_absolute_url()).content.decode()
    assert 'data-testid="void-button"' in page and 'id="void-modal"' in page
    assert 'data-testid="credit-button"' in page
    assert "None: this invoice has not been corrected." in page


def test_void_with_a_reason(staff, invoice, user):
    response = staff.post(reverse("invoice-void", args=[invoice.pk]), {"reason": "Issued twice"}, follow=True)
    assert response.status_code == 200
    assert any("voided; its number stays used" in m for m in messages_of(response))
    fresh = Invoice.objects.get(pk=invoice.pk)
    assert (fresh.status, fresh.number, fresh.void_reason) == (InvoiceStatus.VOID, invoice.number, "Issued twice")
    page = response.content.decode()
    assert 'data-testid="void-notice"' in page and "Issued twice" in page
    # Void now: no more void, credit, payment or sending.
    for testid in ("void-button", "credit-button", "resend-button"):
        assert f'data-testid="{testid}"' not in page
    assert Order.objects.get().status == OrderStatus.FULFILLED


@pytest.mark.parametrize("reason", ["", "   ", "x" * 256])
def test_void_without_a_good_reason_is_an_inline_error(staff, invoice, reason):
    response = staff.post(reverse("invoice-void", args=[invoice.pk]), {"reason": reason})
    assert response.status_code == 200
    form = response.context["void_form"]
    assert form.errors["reason"]
    page = response.content.decode()
    assert 'id="id_reason_error"' in page and "is-invalid" in page
    assert "bootstrap.Modal.getOrCreateInstance" in page  # the dialog opens again on the error
    assert Invoice.objects.get(pk=invoice.pk).status == InvoiceStatus.ISSUED


def test_a_paid_invoice_has_no_void_button_and_a_forced_post_is_refused(staff, invoice, customer):
    payment_record(customer=customer, method="card", amount=D("100.00"), currency="EUR")
    page = staff.get(invoice.get_absolute_url()).content.decode()
    assert 'data-testid="void-button"' not in page
    assert 'data-testid="credit-button"' in page  # a credit note corrects it instead
    response = staff.post(reverse("invoice-void", args=[invoice.pk]), {"reason": "oops"}, follow=True)
    assert response.status_code == 200
    assert any("partially paid" in m and "credit note" in m for m in messages_of(response))
    fresh = Invoice.objects.get(pk=invoice.pk)
    assert (fresh.status, fresh.amount_paid) == (InvoiceStatus.PARTIALLY_PAID, D("100.00"))


def test_a_sent_invoice_has_no_void_button(staff, invoice):
    Invoice.objects.filter(pk=invoice.pk).update(delivery_status="sent")
    page = staff.get(invoice.get_absolute_url()).content.decode()
    assert 'data-testid="void-button"' not in page
    response = staff.post(reverse("invoice-void", args=[invoice.pk]), {"reason": "oops"}, follow=True)
    assert any("e-mailed to the customer" in m for m in messages_of(response))
    assert Invoice.objects.get(pk=invoice.pk).status == InvoiceStatus.ISSUED


def test_a_draft_can_be_voided_from_its_page(staff, customer, make_fulfilled_order):
    draft = invoicing.invoice_create_from_orders(orders=[make_fulfilled_order(customer)])
    assert 'data-testid="void-button"' in staff.get(draft.get_absolute_url()).content.decode()
    response = staff.post(reverse("invoice-void", args=[draft.pk]), {"reason": "Wrong customer"}, follow=True)
    assert any("Draft voided" in m for m in messages_of(response))
    assert Invoice.objects.get(pk=draft.pk).status == InvoiceStatus.VOID


def test_the_credit_page_previews_the_full_credit_and_writes_nothing(staff, invoice):
    response = staff.get(reverse("invoice-credit", args=[invoice.pk]))
    assert response.status_code == 200
    quote = response.context["quote"]
    assert (quote.gross, quote.applied, quote.balance_after) == (D("462.62"), D("462.62"), D("0"))
    assert 'data-testid="credit-preview"' in response.content.decode()
    assert not _credit_notes().exists()


def _lines_post(invoice, **extra):
    chairs, books = invoice.lines.order_by("position")
    data = {"mode": "lines", f"qty_{chairs.pk}": "1", f"qty_{books.pk}": "", "reason": "One chair damaged"}
    data.update(extra)
    return data


def test_preview_of_chosen_lines_then_create(staff, invoice):
    url = reverse("invoice-credit", args=[invoice.pk])
    preview = staff.post(url, {**_lines_post(invoice), "action": "preview"})
    assert preview.status_code == 200
    assert (preview.context["quote"].gross, preview.context["quote"].balance_after) == (D("179.88"), D("282.74"))
    assert not _credit_notes().exists()
    # The live preview (htmx) answers with the preview card alone, even before a reason is typed.
    live = staff.post(url, _lines_post(invoice, reason=""), headers={"HX-Request": "true"})
    assert live.status_code == 200
    assert live.content.decode().lstrip().startswith('<div class="card mb-3" id="credit-preview"')
    assert "179.88" in live.content.decode()
    assert not _credit_notes().exists()
    created = staff.post(url, {**_lines_post(invoice), "action": "create"})
    note = _credit_notes().get()
    assert created.status_code == 302 and created["Location"] == note.get_absolute_url()
    assert note.gross_total == D("179.88") and note.original_id == invoice.pk
    page = staff.get(invoice.get_absolute_url()).content.decode()
    assert note.number in page and 'data-testid="credit-notes"' in page


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"mode": "lines", "reason": "x"}, "__all__"),  # no quantity anywhere
        ({"mode": "lines", "qty_CHAIRS": "3", "reason": "x"}, "qty_CHAIRS"),  # 2 invoiced
        ({"mode": "lines", "qty_CHAIRS": "-1", "reason": "x"}, "qty_CHAIRS"),
        ({"mode": "lines", "qty_CHAIRS": "abc", "reason": "x"}, "qty_CHAIRS"),
        ({"mode": "lines", "qty_CHAIRS": "1", "reason": ""}, "reason"),
        ({"mode": "amount", "reason": "x"}, "amount"),
        ({"mode": "amount", "amount": "10", "reason": "x"}, "tax_percent"),  # two rates on the invoice
        ({"mode": "amount", "amount": "10", "tax_percent": "7.00", "reason": "x"}, "tax_percent"),
        ({"mode": "amount", "amount": "500", "tax_percent": "20.00", "reason": "x"}, "amount"),
        ({"mode": "amount", "amount": "0", "tax_percent": "20.00", "reason": "x"}, "amount"),
        ({"mode": "bogus", "reason": "x"}, "mode"),
    ],
)
def test_bad_credit_input_is_an_inline_error_and_creates_nothing(staff, invoice, data, field):
    chairs = invoice.lines.get(position=1)
    data = {key.replace("CHAIRS", str(chairs.pk)): value for key, value in data.items()}
    field = field.replace("CHAIRS", str(chairs.pk))
    response = staff.post(reverse("invoice-credit", args=[invoice.pk]), {**data, "action": "create"})
    assert response.status_code == 200
    assert field in response.context["form"].errors, response.context["form"].errors
    assert 'data-testid="form-errors"' in response.content.decode()
    assert not _credit_notes().exists()
    assert Invoice.objects.get(pk=invoice.pk).amount_paid == 0


def test_a_line_credit_beyond_what_an_amount_took_is_refused_inline(staff, invoice):
    invoicing.invoice_credit(invoice=invoice, reason="Rebate", amount=D("90.00"), tax_percent=D("5.50"))
    books = invoice.lines.get(position=2)
    response = staff.post(
        reverse("invoice-credit", args=[invoice.pk]),
        {"mode": "lines", f"qty_{books.pk}": "1", "reason": "x", "action": "create"},
    )
    assert response.status_code == 200
    assert "Only 7.50 is left to credit at 5.50%" in " ".join(response.context["form"].non_field_errors())
    assert _credit_notes().count() == 1


def test_drafts_void_invoices_and_credit_notes_have_no_credit_page(staff, invoice, customer, make_fulfilled_order):
    draft = invoicing.invoice_create_from_orders(orders=[make_fulfilled_order(customer)])
    note = invoicing.invoice_credit(invoice=invoice, reason="x", lines=[{"line": invoice.lines.first(), "quantity": 1}])
    for target in (draft, note):
        assert 'data-testid="credit-button"' not in staff.get(target.get_absolute_url()).content.decode()
        response = staff.post(
            reverse("invoice-credit", args=[target.pk]), {"mode": "full", "reason": "x", "action": "create"}
        )
        assert response.status_code == 302 and response["Location"] == target.get_absolute_url()
    assert _credit_notes().count() == 1


def test_the_invoice_list_filters_credit_notes(staff, invoice):
    note = invoicing.invoice_credit(invoice=invoice, reason="x", amount=D("10.00"), tax_percent=D("20.00"))
    page = staff.get(reverse("invoice-list"), {"kind": "credit_note"}).content.decode()
    assert note.number in page and invoice.number not in page
    page = staff.get(reverse("invoice-list"), {"kind": "invoice"}).content.decode()
    assert invoice.number in page and note.number not in page


def test_invoice_and_credit_pages_take_a_bounded_number_of_queries(
    staff, customer, make_fulfilled_order, products, django_assert_max_num_queries
):
    """The checks behind the Void and Credit buttons and the per-line credited quantities do not grow
    with the number of lines."""
    order = make_fulfilled_order(
        customer, lines=[{"product": products[i % 2], "quantity": D(i + 1)} for i in range(30)]
    )
    invoice = invoicing.invoice_issue(invoice=invoicing.invoice_create_from_orders(orders=[order]))
    for line in invoice.lines.order_by("position")[:5]:
        invoicing.invoice_credit(invoice=invoice, reason="x", lines=[{"line": line, "quantity": D("1")}])
    with django_assert_max_num_queries(30):
        assert staff.get(invoice.get_absolute_url()).status_code == 200
    with django_assert_max_num_queries(30):
        response = staff.get(reverse("invoice-credit", args=[invoice.pk]))
    assert response.status_code == 200
