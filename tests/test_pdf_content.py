"""What the printed invoice shows: every field the law and the customer need, read back from the
rendered PDF (invoicing.services.invoice_render_pdf, the worker's path), and the recipient block
where a window envelope shows it."""

import io
import re
from datetime import date
from decimal import Decimal

import pytest
from django.conf import settings
from pypdf import PdfReader

from billing.models import Contact
from invoicing import services as invoicing
from invoicing.models import Invoice, InvoiceKind, PdfStatus
from orders import services as orders
from tests.factories import CustomerFactory, PaymentTermsFactory, ProductFactory, TaxRateFactory

D = Decimal
MM = 72 / 25.4  # PDF points per millimetre
EXEMPT_NOTE = "VAT exempt, article 261-4-4° of the French General Tax Code"
pytestmark = pytest.mark.django_db


def _pdf(invoice: Invoice) -> PdfReader:
    invoice = invoicing.invoice_render_pdf(invoice_id=invoice.pk)
    assert invoice.pdf_status == PdfStatus.READY
    with invoice.pdf.open("rb") as f:
        return PdfReader(io.BytesIO(f.read()))


def _text(reader: PdfReader) -> str:
    """All pages' text, whitespace (line wraps, no-break spaces) collapsed to single spaces."""
    return re.sub(r"\s+", " ", " ".join(page.extract_text() for page in reader.pages))


def _row(text: str, *cells: str) -> bool:
    """Cells printed next to each other, in this order, on one table row."""
    return re.search(r"\s+".join(re.escape(c) for c in cells), text) is not None


def _positions(reader: PdfReader) -> dict[str, tuple[float, float]]:
    """Where each text run of page 1 starts: (mm from the left edge, mm from the top edge)."""
    page = reader.pages[0]
    height = float(page.mediabox.height)
    found = {}

    def visit(text, cm, tm, font, size):
        x = tm[4] * cm[0] + tm[5] * cm[2] + cm[4]
        y = tm[4] * cm[1] + tm[5] * cm[3] + cm[5]
        for part in text.splitlines():
            if part.strip():
                found.setdefault(part.strip(), (x / MM, (height - y) / MM))

    page.extract_text(visitor_text=visit)
    return found


@pytest.fixture
def billed(user):
    """An invoice over two orders, at 20 %, 5.5 % and an exempt rate, one line discounted."""
    terms = PaymentTermsFactory(
        name="Net 30, 2/10, penalties",
        due_days=30,
        discount_percent=D("2"),
        discount_days=10,
        accepted_methods=["bank_transfer", "sepa_direct_debit", "card"],
        grace_days=5,
        annual_interest_rate=D("10.15"),
        fixed_fee=D("40.00"),
        penalty_cap_percent=D("20"),
    )
    customer = CustomerFactory(
        name="Boulangerie Martin",
        legal_name="Boulangerie Martin SAS",
        tax_id="FR32123456789",
        email="compta@martin.example",
        phone="+33 4 72 00 00 00",
        payment_terms=terms,
        billing_line1="14 Rue des Boulangers",
        billing_line2="Bâtiment B",
        billing_postal_code="69002",
        billing_city="Lyon",
        billing_country="FR",
    )
    Contact.objects.create(
        customer=customer,
        name="Claire Dubois",
        email="claire.dubois@martin.example",
        phone="+33 6 11 22 33 44",
        role="Accounts payable",
    )
    standard = TaxRateFactory(name="Standard 20% pdf", rate=D("20.00"))
    reduced = TaxRateFactory(name="Reduced 5.5% pdf", rate=D("5.50"), category="reduced")
    exempt = TaxRateFactory(name="Exempt training", rate=D("0"), category="exempt", legal_note=EXEMPT_NOTE)
    chair = ProductFactory(sku="CHAIR-ERG", name="Ergonomic office chair", unit_price=D("149.90"), tax_rate=standard)
    book = ProductFactory(sku="BOOK-ACC", name="Accounting handbook", unit_price=D("32.50"), tax_rate=reduced)
    course = ProductFactory(
        sku="TRAIN-1D", name="Training course, one day", unit="day", unit_price=D("650.00"), tax_rate=exempt
    )
    first = orders.order_create(
        customer=customer,
        actor=user,
        customer_reference="PO-4711",
        order_date=date(2026, 3, 2),
        lines=[{"product": chair, "quantity": D("2")}, {"product": book, "quantity": D("3")}],
    )
    second = orders.order_create(
        customer=customer,
        actor=user,
        customer_reference="PO-4712",
        order_date=date(2026, 3, 5),
        lines=[
            {"product": course, "quantity": D("1.5")},
            {"product": book, "quantity": D("1"), "discount_percent": D("10")},
        ],
    )
    for order in (first, second):
        orders.order_confirm(order=order, actor=user)
        orders.order_fulfill(order=order, actor=user)
    draft = invoicing.invoice_create_from_orders(orders=[first, second], actor=user)
    invoice = invoicing.invoice_issue(invoice=draft, actor=user, issue_date=date(2026, 3, 10))
    return invoice, [first, second]


def test_invoice_prints_every_required_field(billed):
    invoice, billed_orders = billed
    reader = _pdf(invoice)
    text = _text(reader)
    seller = settings.OTC_COMPANY
    customer = invoice.customer_snapshot

    assert len(reader.pages) == 1
    assert "INVOICE" in text and invoice.number in text
    # Seller: name, VAT id, address, how to reach them.
    assert seller["legal_name"] in text and seller["tax_id"] in text
    assert all(part in text for part in seller["address"])
    assert seller["email"] in text and seller["phone"] in text
    # Customer: legal name, postal address, VAT id, contact details.
    assert "Boulangerie Martin SAS" in text
    assert customer["address_lines"] == ["14 Rue des Boulangers", "Bâtiment B", "69002 Lyon", "FR"]
    assert all(part in text for part in customer["address_lines"])
    assert "FR32123456789" in text
    assert "compta@martin.example" in text and "+33 4 72 00 00 00" in text
    assert "Claire Dubois" in text and "claire.dubois@martin.example" in text and "+33 6 11 22 33 44" in text
    # Dates: issue and due (Net 30).
    assert invoice.issue_date == date(2026, 3, 10) and invoice.due_date == date(2026, 4, 9)
    assert "2026-03-10" in text and "2026-04-09" in text
    # Orders with their dates and the customer's references.
    assert _row(text, f"Order {billed_orders[0].number} of 2026-03-02 · your ref. PO-4711")
    assert _row(text, f"Order {billed_orders[1].number} of 2026-03-05 · your ref. PO-4712")
    # Each line: description, quantity and unit, unit price, (discount,) tax rate, net.
    assert "Ergonomic office chair" in text and _row(text, "2 unit", "149.90", "20%", "299.80")
    assert "Accounting handbook" in text and _row(text, "3 unit", "32.50", "5.5%", "97.50")
    assert "Training course, one day" in text and _row(text, "1.5 day", "650.00", "0%", "975.00")
    assert _row(text, "1 unit", "32.50", "10%", "5.5%", "29.25")
    # The exempt line carries its legal note.
    assert EXEMPT_NOTE in text
    # Tax summary per rate (rate, category, taxable, tax) and the totals.
    assert _row(text, "VAT 20% standard on 299.80", "59.96")
    assert _row(text, "VAT 5.5% reduced on 126.75", "6.97")
    assert _row(text, "VAT 0% exempt on 975.00", "0.00")
    assert (invoice.net_total, invoice.tax_total, invoice.gross_total) == (D("1401.55"), D("66.93"), D("1468.48"))
    assert _row(text, "Net total", "1401.55")
    assert _row(text, "Total due EUR", "1468.48")
    # Terms: methods and late-payment penalties; how to pay.
    terms = invoice.terms_snapshot["text"]
    assert "bank transfer, SEPA direct debit, card" in terms and "10.15% p.a." in terms and "40.00 EUR" in terms
    assert terms in text
    assert seller["iban"] in text.replace(" ", "") and seller["bic"] in text
    assert f"quoting {invoice.number}" in text


def test_recipient_block_sits_in_the_envelope_window(billed):
    """DIN 5008 form B window (C5/6, DL): 20 mm from the left, 45 mm from the top, 85 x 45 mm."""
    invoice, _ = billed
    where = _positions(_pdf(invoice))
    recipient = ["Boulangerie Martin SAS", "14 Rue des Boulangers", "Bâtiment B", "69002 Lyon", "FR"]
    for line in recipient:
        left, baseline = where[line]
        # Address zone of the window: below the 5 mm return line and the 12.7 mm note zone.
        assert 20 <= round(left) <= 26 and 45 + 17.7 < baseline < 45 + 45, (line, left, baseline)
    ret_left, ret_baseline = where[f"{settings.OTC_COMPANY['legal_name']} · 12 Rue de la Paix · 75002 Paris · France"]
    assert 20 <= round(ret_left) <= 26 and 45 < ret_baseline < 50
    # Nothing else of the invoice shows through the window.
    assert where[f"INVOICE {invoice.number}"][1] > 45 + 45


def test_credit_note_says_so_and_names_the_corrected_invoice(billed):
    invoice, _ = billed
    chair_line = invoice.lines.get(sku="CHAIR-ERG")
    note = invoicing.invoice_credit(
        invoice=invoice,
        reason="Damaged chair",
        lines=[{"line": chair_line, "quantity": D("1")}],
        issue_date=date(2026, 3, 12),
    )
    text = _text(_pdf(note))

    assert note.number.startswith("CN-")
    assert "CREDIT NOTE" in text and note.number in text
    assert f"Corrects invoice {invoice.number} of 2026-03-10" in text
    assert "Reason: Damaged chair." in text
    assert "INVOICE " + invoice.number not in text  # the heading is the credit note's, not the invoice's
    assert "Boulangerie Martin SAS" in text and "FR32123456789" in text
    assert "Ergonomic office chair" in text and _row(text, "1 unit", "149.90", "20%", "149.90")
    assert _row(text, "VAT 20% standard on 149.90", "29.98")
    assert _row(text, "Total credited EUR", "179.88")
    assert "2026-03-12" in text
    assert "Total due" not in text and "Please transfer" not in text  # nothing to pay on a credit note


def test_penalty_invoice_says_so(billed):
    from payments import penalties

    invoice, _ = billed
    _assessments, created, _interest, fees = penalties.assess_batch(
        invoice_ids=[invoice.pk], as_of=date(2026, 5, 9), issue_date=date(2026, 5, 9)
    )
    assert created == 1 and fees == D("40.00")
    penalty = Invoice.objects.get(kind=InvoiceKind.PENALTY, original=invoice)
    text = _text(_pdf(penalty))

    assert "LATE-PAYMENT PENALTY" in text and penalty.number in text
    assert f"Late-payment interest and fees on invoice {invoice.number}" in text
    assert _row(text, "Total due EUR", str(penalty.gross_total))
    assert "Please transfer" in text
    for line in penalty.lines.all():
        assert line.description[:40] in text


def _drawn(data: bytes) -> list:
    """What each page draws (its content stream) and where it links to: equal for two PDFs that
    look the same, whatever their metadata (creation date, file id)."""
    pages = []
    for page in PdfReader(io.BytesIO(data)).pages:
        links = [(list(a.get_object()["/Rect"]), a.get_object()["/A"].get("/URI")) for a in page.get("/Annots") or []]
        pages.append((page.get_contents().get_data(), links))
    return pages


@pytest.mark.parametrize("kind", ["invoice", "credit_note", "void"])
def test_lean_user_agent_stylesheet_draws_the_same_page(billed, kind):
    """The invoice documents are rendered with a user-agent stylesheet cut down to the elements
    they use (it saves style computation); each page must come out exactly as WeasyPrint's own
    stylesheet draws it, links included."""
    from weasyprint import HTML

    from invoicing.pdf import html_to_pdf, invoice_html, lean_ua_applies

    invoice, _ = billed
    if kind == "credit_note":
        invoice = invoicing.invoice_credit(
            invoice=invoice, reason="Damaged chair", amount=D("10.00"), tax_percent=D("20.00")
        )
    elif kind == "void":
        invoice = invoicing.invoice_void(invoice=invoice, reason="Issued twice")
    html = invoice_html(invoice)
    assert lean_ua_applies(html)
    ours = _drawn(html_to_pdf(html))
    weasyprint_default = _drawn(HTML(string=html, base_url=str(settings.BASE_DIR)).write_pdf())
    assert ours == weasyprint_default
    assert any(links for _content, links in ours) == ("/feedback/" in html)


def test_documents_with_other_elements_keep_weasyprint_stylesheet():
    from invoicing.pdf import lean_ua_applies

    page = "<html><head><style>p { color: red }</style></head><body><p>Total <b>10.00</b><br>due</p></body></html>"
    assert lean_ua_applies(page)
    assert not lean_ua_applies(page.replace("<b>10.00</b>", "<ul><li>10.00</li></ul>"))
    assert not lean_ua_applies(page.replace("<p>", '<p dir="rtl">'))
    assert not lean_ua_applies(page.replace("<b>", "<b hidden>"))
