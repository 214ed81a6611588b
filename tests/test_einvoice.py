"""Structured e-invoices: Factur-X (CII) and UBL 2.1 for every kind of document we issue, checked
against their XSDs and the official EN 16931 business rules, and the Factur-X PDF/A-3 we store."""

import hashlib
import io
import re
from decimal import Decimal

import facturx
import pytest
from lxml import etree
from pypdf import PdfReader

from billing import money
from invoicing import einvoice
from invoicing import services as invoicing
from invoicing.models import Invoice, InvoiceKind, InvoiceLine, PdfStatus
from tests.einvoice_validation import validate_cii, validate_ubl
from tests.factories import CustomerFactory, ProductFactory, TaxRateFactory

pytestmark = pytest.mark.django_db
D = Decimal

NS = {
    "rsm": "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100",
    "ram": "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100",
    "udt": "urn:un:unece:uncefact:data:standard:UnqualifiedDataType:100",
    "qdt": "urn:un:unece:uncefact:data:standard:QualifiedDataType:100",
    "inv": "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2",
    "cn": "urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2",
    "cac": "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2",
    "cbc": "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2",
}
EXEMPT_NOTE = "VAT exempt, Art. 261-4-4 CGI (training)"
REVERSE_NOTE = "Reverse charge, Art. 196 Directive 2006/112/EC"


def values(xml: bytes, path: str) -> list[str]:
    found = etree.fromstring(xml).xpath(path, namespaces=NS)
    return [(e if isinstance(e, str) else e.text or "").strip() for e in found]


def value(xml: bytes, path: str) -> str:
    found = values(xml, path)
    assert len(found) == 1, (path, found)
    return found[0]


def assert_valid(invoice: Invoice) -> tuple[bytes, bytes]:
    """Both documents pass their XSD and every fatal EN 16931 rule; returns (CII, UBL)."""
    cii, ubl = einvoice.facturx_xml(invoice), einvoice.ubl_xml(invoice)
    cii_report, ubl_report = validate_cii(cii), validate_ubl(ubl)
    assert cii_report.ok, f"Factur-X of {invoice}:\n{cii_report}"
    assert ubl_report.ok, f"UBL of {invoice}:\n{ubl_report}"
    # The rules really looked at the documents (a stylesheet matching nothing would pass anything).
    assert cii_report.rules_fired > 20 and ubl_report.rules_fired > 20
    return cii, ubl


@pytest.fixture
def issue(user, make_fulfilled_order):
    def make(customer, lines=None, **kwargs):
        order = make_fulfilled_order(customer, lines=lines, **kwargs)
        draft = invoicing.invoice_create_from_orders(orders=[order], actor=user)
        return invoicing.invoice_issue(invoice=draft, actor=user)

    return make


@pytest.fixture
def eu_customer(db):
    return CustomerFactory(
        name="Müller GmbH",
        legal_name="Müller Handels GmbH",
        tax_id="DE136695976",
        billing_line1="Hauptstraße 5",
        billing_city="Berlin",
        billing_postal_code="10115",
        billing_country="DE",
    )


@pytest.fixture
def exempt_product(db):
    rate = TaxRateFactory(name="Exempt training", rate=D("0"), category="exempt", legal_note=EXEMPT_NOTE)
    return ProductFactory(sku="TRAIN", name="Bookkeeping course", unit="day", unit_price=D("450.00"), tax_rate=rate)


@pytest.fixture
def reverse_charge_product(db):
    rate = TaxRateFactory(name="Reverse charge", rate=D("0"), category="reverse_charge", legal_note=REVERSE_NOTE)
    return ProductFactory(sku="CONSULT", name="Consulting", unit="hour", unit_price=D("120.00"), tax_rate=rate)


# --- Every kind of document passes the XSD and the EN 16931 rules --------------------------------


def test_standard_invoice_with_two_rates(customer, issue):
    invoice = issue(customer, customer_reference="PO-4711")
    cii, ubl = assert_valid(invoice)

    assert value(cii, "//rsm:ExchangedDocument/ram:TypeCode") == "380"
    assert value(cii, "//ram:GuidelineSpecifiedDocumentContextParameter/ram:ID") == "urn:cen.eu:en16931:2017"
    assert value(ubl, "/inv:Invoice/cbc:CustomizationID") == "urn:cen.eu:en16931:2017"
    totals = "//ram:SpecifiedTradeSettlementHeaderMonetarySummation"
    assert values(cii, f"{totals}/*") == ["397.30", "397.30", "65.32", "462.62", "462.62"]
    assert values(ubl, "//cac:LegalMonetaryTotal/*") == ["397.30", "397.30", "462.62", "462.62"]
    assert value(ubl, "/inv:Invoice/cac:TaxTotal/cbc:TaxAmount") == "65.32"
    # One breakdown row per rate, as the PDF prints it.
    rows = sorted(
        zip(
            values(cii, "//ram:ApplicableHeaderTradeSettlement/ram:ApplicableTradeTax/ram:RateApplicablePercent"),
            values(cii, "//ram:ApplicableHeaderTradeSettlement/ram:ApplicableTradeTax/ram:BasisAmount"),
            values(cii, "//ram:ApplicableHeaderTradeSettlement/ram:ApplicableTradeTax/ram:CalculatedAmount"),
            strict=True,
        )
    )
    assert rows == [("20.00", "299.80", "59.96"), ("5.50", "97.50", "5.36")]
    assert values(ubl, "//cac:TaxSubtotal/cac:TaxCategory/cbc:ID") == ["S", "S"]
    # Who pays whom, by when, how and with what reference.
    assert value(cii, "//ram:BuyerReference") == "PO-4711"
    assert value(cii, "//ram:BuyerOrderReferencedDocument/ram:IssuerAssignedID") == "PO-4711"
    assert value(ubl, "/inv:Invoice/cac:OrderReference/cbc:ID") == "PO-4711"
    assert value(cii, "//ram:SellerTradeParty/ram:SpecifiedTaxRegistration/ram:ID") == "FR40303265045"
    assert value(cii, "//ram:SpecifiedTradeSettlementPaymentMeans/ram:TypeCode") == "58"
    assert value(ubl, "//cac:PaymentMeans/cac:PayeeFinancialAccount/cbc:ID") == "FR7630006000011234567890189"
    assert value(ubl, "//cac:PaymentMeans/cbc:PaymentID") == invoice.number
    assert value(ubl, "/inv:Invoice/cbc:DueDate") == invoice.due_date.isoformat()
    assert value(cii, "//ram:DueDateDateTime/udt:DateTimeString") == f"{invoice.due_date:%Y%m%d}"
    assert value(cii, "//ram:SpecifiedTradePaymentTerms/ram:Description") == invoice.terms_snapshot["text"]
    assert value(ubl, "//cac:AccountingCustomerParty//cbc:RegistrationName") == customer.legal_name
    assert value(ubl, "//cac:AccountingCustomerParty//cac:Country/cbc:IdentificationCode") == "FR"
    seller = "//ram:SellerTradeParty/ram:PostalTradeAddress"
    assert [value(cii, f"{seller}/ram:{f}") for f in ("PostcodeCode", "LineOne", "CityName", "CountryID")] == [
        "75002",
        "12 Rue de la Paix",
        "Paris",
        "FR",
    ]


def test_exempt_line_carries_its_exemption_reason(customer, issue, products, exempt_product):
    invoice = issue(
        customer,
        lines=[
            {"product": products[0], "quantity": D("1")},
            {"product": exempt_product, "quantity": D("2")},
        ],
    )
    cii, ubl = assert_valid(invoice)
    exempt = "//ram:ApplicableHeaderTradeSettlement/ram:ApplicableTradeTax[ram:CategoryCode='E']"
    assert value(cii, f"{exempt}/ram:ExemptionReason") == EXEMPT_NOTE
    assert (value(cii, f"{exempt}/ram:BasisAmount"), value(cii, f"{exempt}/ram:CalculatedAmount")) == ("900.00", "0.00")
    assert value(ubl, "//cac:TaxSubtotal/cac:TaxCategory[cbc:ID='E']/cbc:TaxExemptionReason") == EXEMPT_NOTE
    assert value(ubl, "//cac:InvoiceLine[cbc:ID='2']/cbc:InvoicedQuantity/@unitCode") == "DAY"


def test_reverse_charge_line_names_both_vat_ids(eu_customer, issue, products, reverse_charge_product):
    invoice = issue(
        eu_customer,
        lines=[
            {"product": reverse_charge_product, "quantity": D("7.5")},
            {"product": products[1], "quantity": D("1")},
        ],
    )
    cii, ubl = assert_valid(invoice)
    reverse = "//ram:ApplicableHeaderTradeSettlement/ram:ApplicableTradeTax[ram:CategoryCode='AE']"
    assert value(cii, f"{reverse}/ram:ExemptionReason") == REVERSE_NOTE
    assert value(cii, f"{reverse}/ram:BasisAmount") == "900.00"
    assert value(cii, "//ram:BuyerTradeParty/ram:SpecifiedTaxRegistration/ram:ID") == "DE136695976"
    assert value(ubl, "//cac:AccountingCustomerParty//cac:PartyTaxScheme/cbc:CompanyID") == "DE136695976"
    assert value(ubl, "//cac:AccountingCustomerParty//cbc:RegistrationName") == "Müller Handels GmbH"
    assert value(ubl, "//cac:InvoiceLine[cbc:ID='1']/cbc:InvoicedQuantity") == "7.500"
    assert value(ubl, "//cac:InvoiceLine[cbc:ID='1']/cbc:InvoicedQuantity/@unitCode") == "HUR"


def test_line_discount_is_an_allowance_that_adds_up_exactly(customer, issue, products):
    # 3 x 33.33 = 99.99, less 12.5 % = 87.49125, rounded half-up to 87.49: the allowance is 12.50.
    odd = ProductFactory(sku="ODD", name="Odd-priced widget", unit_price=D("33.33"), tax_rate=products[0].tax_rate)
    invoice = issue(
        customer,
        lines=[
            {"product": odd, "quantity": D("3"), "discount_percent": D("12.5")},
            {"product": products[1], "quantity": D("2"), "discount_percent": D("10")},
        ],
    )
    assert invoice.lines.get(position=1).net_amount == D("87.49")
    cii, ubl = assert_valid(invoice)

    line = "//ram:IncludedSupplyChainTradeLineItem[ram:AssociatedDocumentLineDocument/ram:LineID='1']"
    assert value(cii, f"{line}//ram:SpecifiedTradeAllowanceCharge/ram:ActualAmount") == "12.50"
    assert value(cii, f"{line}//ram:SpecifiedTradeAllowanceCharge/ram:CalculationPercent") == "12.50"
    assert value(cii, f"{line}//ram:LineTotalAmount") == "87.49"
    # Line net = quantity x net price - line allowances, to the cent, in both syntaxes, every line.
    for item in etree.fromstring(cii).xpath("//ram:IncludedSupplyChainTradeLineItem", namespaces=NS):
        qty = D(item.findtext(".//ram:BilledQuantity", namespaces=NS))
        price = D(item.findtext(".//ram:NetPriceProductTradePrice/ram:ChargeAmount", namespaces=NS))
        allowances = sum((D(a) for a in item.xpath(".//ram:ActualAmount/text()", namespaces=NS)), D(0))
        assert qty * price - allowances == D(item.findtext(".//ram:LineTotalAmount", namespaces=NS))
    for item in etree.fromstring(ubl).xpath("//cac:InvoiceLine", namespaces=NS):
        qty = D(item.findtext("cbc:InvoicedQuantity", namespaces=NS))
        price = D(item.findtext("cac:Price/cbc:PriceAmount", namespaces=NS))
        allowances = sum((D(a) for a in item.xpath("cac:AllowanceCharge/cbc:Amount/text()", namespaces=NS)), D(0))
        assert qty * price - allowances == D(item.findtext("cbc:LineExtensionAmount", namespaces=NS))


def test_foreign_currency_invoice_asks_for_an_international_transfer(issue, products):
    # USD to a euro account is no SEPA transfer (30, not 58); a fractional discounted quantity too.
    customer = CustomerFactory(currency="USD", billing_country="US", billing_region="NY", billing_city="New York")
    invoice = issue(customer, lines=[{"product": products[0], "quantity": D("1.5"), "discount_percent": D("10")}])
    cii, ubl = assert_valid(invoice)
    assert value(cii, "//ram:SpecifiedTradeSettlementPaymentMeans/ram:TypeCode") == "30"
    assert value(ubl, "//cac:PaymentMeans/cbc:PaymentMeansCode") == "30"
    assert value(ubl, "/inv:Invoice/cbc:DocumentCurrencyCode") == "USD"
    assert value(ubl, "//cac:InvoiceLine/cbc:LineExtensionAmount/@currencyID") == "USD"
    assert value(cii, "//ram:BuyerTradeParty//ram:CountrySubDivisionName") == "NY"


def test_credit_note_refers_to_the_invoice_it_corrects(customer, issue, user):
    invoice = issue(customer)
    chairs = invoice.lines.get(position=1)
    note = invoicing.invoice_credit(
        invoice=invoice, reason="One chair damaged", lines=[{"line": chairs, "quantity": D("1")}], actor=user
    )
    cii, ubl = assert_valid(note)

    assert value(cii, "//rsm:ExchangedDocument/ram:TypeCode") == "381"
    assert value(cii, "//ram:InvoiceReferencedDocument/ram:IssuerAssignedID") == invoice.number
    assert etree.fromstring(ubl).tag == "{urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2}CreditNote"
    assert value(ubl, "/cn:CreditNote/cbc:CreditNoteTypeCode") == "381"
    assert value(ubl, "//cac:BillingReference/cac:InvoiceDocumentReference/cbc:ID") == invoice.number
    assert value(ubl, "//cac:BillingReference/cac:InvoiceDocumentReference/cbc:IssueDate") == (
        invoice.issue_date.isoformat()
    )
    assert value(ubl, "//cac:CreditNoteLine/cbc:CreditedQuantity") == "1.000"
    # Why it was issued (BT-22), next to the reference to the invoice.
    assert "Reason: One chair damaged" in values(ubl, "/cn:CreditNote/cbc:Note")
    assert "Reason: One chair damaged" in values(cii, "//rsm:ExchangedDocument/ram:IncludedNote/ram:Content")
    assert value(ubl, "//cac:LegalMonetaryTotal/cbc:PayableAmount") == "179.88"
    # The seller owes the buyer here: no instructions to pay the seller.
    assert values(ubl, "//cac:PaymentMeans") == [] and values(cii, "//ram:SpecifiedTradeSettlementPaymentMeans") == []


def test_full_credit_note_of_a_mixed_invoice(
    eu_customer, issue, user, products, exempt_product, reverse_charge_product
):
    invoice = issue(
        eu_customer,
        lines=[
            {"product": products[0], "quantity": D("1"), "discount_percent": D("5")},
            {"product": exempt_product, "quantity": D("1")},
            {"product": reverse_charge_product, "quantity": D("2")},
        ],
    )
    assert_valid(invoice)
    note = invoicing.invoice_credit(invoice=invoice, reason="Order cancelled", actor=user)
    cii, ubl = assert_valid(note)
    assert sorted(values(cii, "//ram:ApplicableHeaderTradeSettlement/ram:ApplicableTradeTax/ram:CategoryCode")) == [
        "AE",
        "E",
        "S",
    ]
    assert value(ubl, "//cac:LegalMonetaryTotal/cbc:PayableAmount") == f"{note.gross_total}"


def _penalty(original: Invoice, user) -> Invoice:
    """An issued late-payment penalty invoice for `original` (exempt interest of 12.34)."""
    customer = original.customer
    penalty = Invoice.objects.create(kind=InvoiceKind.PENALTY, customer=customer, currency="EUR", original=original)
    line = InvoiceLine.objects.create(
        invoice=penalty,
        position=1,
        description=f"Late-payment interest on {original.number}",
        quantity=D("1"),
        unit_price=D("12.34"),
        tax_percent=D("0"),
        tax_category="exempt",
        tax_note="Late-payment interest is compensation, outside the scope of VAT.",
        net_amount=D("12.34"),
    )
    totals = money.totals([money.TaxableLine(net=line.net_amount, rate=D("0"), category="exempt")], "EUR")
    penalty.net_total, penalty.tax_total, penalty.gross_total = totals.net, totals.tax, totals.gross
    penalty.tax_breakdown = [
        {"rate": str(b.rate), "category": b.category, "taxable": str(b.taxable), "tax": str(b.tax)}
        for b in totals.breakdown
    ]
    penalty.save()
    return invoicing.invoice_issue(invoice=penalty, actor=user)


def test_penalty_invoice(customer, issue, user):
    original = issue(customer)
    penalty = _penalty(original, user)
    assert penalty.number.startswith("PEN-")

    cii, ubl = assert_valid(penalty)
    assert value(cii, "//rsm:ExchangedDocument/ram:TypeCode") == "380"
    assert value(ubl, "//cac:TaxSubtotal/cac:TaxCategory/cbc:ID") == "E"
    assert value(ubl, "//cac:LegalMonetaryTotal/cbc:PayableAmount") == "12.34"
    assert any(original.number in note for note in values(ubl, "/inv:Invoice/cbc:Note"))


# --- The validator is live ---------------------------------------------------------------------


def _corrupt(xml: bytes, path: str, new: str) -> bytes:
    root = etree.fromstring(xml)
    (element,) = root.xpath(path, namespaces=NS)
    element.text = new
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def test_a_wrong_total_is_caught_by_the_business_rules(customer, issue):
    invoice = issue(customer)
    cii = _corrupt(einvoice.facturx_xml(invoice), "//ram:GrandTotalAmount", "462.63")
    report = validate_cii(cii)
    assert not report.schema_errors  # still well-formed and schema-valid: only the rules can tell
    assert "BR-CO-15" in report.rules(), str(report)

    ubl = _corrupt(einvoice.ubl_xml(invoice), "//cac:LegalMonetaryTotal/cbc:TaxInclusiveAmount", "462.63")
    report = validate_ubl(ubl)
    assert not report.schema_errors
    assert "BR-CO-15" in report.rules(), str(report)


def test_a_misplaced_element_is_caught_by_the_schema(customer, issue):
    invoice = issue(customer)
    root = etree.fromstring(einvoice.ubl_xml(invoice))
    due = root.find("cbc:DueDate", namespaces=NS)
    root.remove(due)
    root.append(due)  # after the lines: UBL is an ordered schema
    report = validate_ubl(etree.tostring(root))
    assert report.schema_errors and "DueDate" in report.schema_errors[0]


def test_reverse_charge_without_buyer_vat_id_is_reported(customer, issue, reverse_charge_product):
    # The documents say what the data says: a reverse-charge sale to a customer with no VAT id is
    # not a valid EN 16931 invoice, and the rules (BR-AE-02) say so rather than us hiding it.
    invoice = issue(customer, lines=[{"product": reverse_charge_product, "quantity": D("1")}])
    assert "BR-AE-02" in validate_cii(einvoice.facturx_xml(invoice)).rules()
    assert "BR-AE-02" in validate_ubl(einvoice.ubl_xml(invoice)).rules()


# --- Pure mapping ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("unit", "code"),
    [
        ("unit", "C62"),
        ("Hour", "HUR"),
        ("hours", "HUR"),
        ("kg", "KGM"),
        ("day", "DAY"),
        ("m2", "MTK"),
        ("L", "LTR"),
        ("KGM", "KGM"),
        ("bundle", "C62"),
        ("", "C62"),
    ],
)
def test_unit_codes(unit, code):
    assert einvoice.unit_code(unit) == code


@pytest.mark.parametrize(
    ("category", "rate", "code"),
    [
        ("standard", "20.00", "S"),
        ("reduced", "5.50", "S"),
        ("standard", "0.00", "Z"),
        ("zero", "0.00", "Z"),
        ("exempt", "0.00", "E"),
        ("reverse_charge", "0.00", "AE"),
    ],
)
def test_tax_category_codes(category, rate, code):
    assert einvoice.tax_category_code(category, D(rate)) == code


def test_seller_address_is_structured_from_the_printed_lines():
    address = einvoice.seller_address(["12 Rue de la Paix", "75002 Paris", "France"], "fr")
    assert address == einvoice.Address(lines=("12 Rue de la Paix",), city="Paris", postal_code="75002", country="FR")
    address = einvoice.seller_address(["Unit 4", "1 High Street", "SW1A 1AA London"], "GB")
    assert (address.lines, address.postal_code, address.city) == (("Unit 4", "1 High Street"), "SW1A 1AA", "London")
    assert einvoice.seller_address("Via Roma 1, 00100 Roma", "it").city == "Roma"
    assert einvoice.seller_address(["PO Box 12"], "DE").lines == ("PO Box 12",)


def test_the_documents_are_stable_and_refuse_drafts(customer, issue, make_fulfilled_order, user):
    invoice = issue(customer)
    again = Invoice.objects.get(pk=invoice.pk)
    assert einvoice.facturx_xml(invoice) == einvoice.facturx_xml(again)
    assert einvoice.ubl_xml(invoice) == einvoice.ubl_xml(again)
    draft = invoicing.invoice_create_from_orders(orders=[make_fulfilled_order(customer)], actor=user)
    with pytest.raises(ValueError, match="not issued"):
        einvoice.facturx_xml(draft)


# --- The stored PDF is a Factur-X PDF/A-3 -----------------------------------------------------------


XMP_NS = {
    "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
    "pdfaid": "http://www.aiim.org/pdfa/ns/id/",
    "pdfaExtension": "http://www.aiim.org/pdfa/ns/extension/",
    "pdfaSchema": "http://www.aiim.org/pdfa/ns/schema#",
    "pdfaProperty": "http://www.aiim.org/pdfa/ns/property#",
    "fx": "urn:factur-x:pdfa:CrossIndustryDocument:invoice:1p0#",
    "dc": "http://purl.org/dc/elements/1.1/",
    "pdf": "http://ns.adobe.com/pdf/1.3/",
    "xmp": "http://ns.adobe.com/xap/1.0/",
}


def _xmp(reader: PdfReader) -> etree._Element:
    return etree.fromstring(reader.trailer["/Root"]["/Metadata"].get_object().get_data())


def xmp_value(xmp: etree._Element, name: str) -> str | None:
    """A simple or language-alternative XMP property, written either way XMP allows: as an element
    of an rdf:Description (its text, or its rdf:li items) or as an attribute of one."""
    prefix, local = name.split(":")
    found = xmp.xpath(f"//rdf:Description/@{name}", namespaces=XMP_NS)
    for element in xmp.iter(f"{{{XMP_NS[prefix]}}}{local}"):
        items = element.xpath(".//rdf:li", namespaces=XMP_NS)
        found.append(", ".join(i.text or "" for i in items) if items else (element.text or "").strip())
    assert len(found) <= 1, (name, found)
    return found[0] if found else None


def assert_facturx_pdfa3(data: bytes, invoice: Invoice):
    # The embedded XML is exactly the invoice's Factur-X, and it is valid: the factur-x library finds
    # it where Factur-X readers look and checks it against its XSD, then the EN 16931 rules.
    filename, xml = facturx.get_facturx_xml_from_pdf(data, check_xsd=True)
    assert filename == "factur-x.xml"
    assert xml == einvoice.facturx_xml(invoice)
    facturx.xml_check_xsd(xml, flavor="factur-x", level="en16931")  # raises when invalid
    assert facturx.get_flavor(etree.fromstring(xml)) == "factur-x"
    assert facturx.get_level(etree.fromstring(xml)) == "en16931"
    assert validate_cii(xml).ok

    reader = PdfReader(io.BytesIO(data))
    root = reader.trailer["/Root"]
    # One XMP packet with one rdf:RDF (readers look at the first only): PDF/A-3b identification,
    # the Factur-X extension schema declaring the fx properties, and the properties.
    xmp = _xmp(reader)
    assert len(xmp.xpath("//rdf:RDF", namespaces=XMP_NS)) == 1
    assert xmp_value(xmp, "pdfaid:part") == "3"
    assert xmp_value(xmp, "pdfaid:conformance") == "B"
    (schema,) = xmp.xpath("//pdfaExtension:schemas/rdf:Bag/rdf:li", namespaces=XMP_NS)
    assert schema.findtext("pdfaSchema:namespaceURI", namespaces=XMP_NS) == XMP_NS["fx"]
    assert schema.findtext("pdfaSchema:prefix", namespaces=XMP_NS) == "fx"
    declared = schema.xpath("pdfaSchema:property/rdf:Seq/rdf:li/pdfaProperty:name/text()", namespaces=XMP_NS)
    assert sorted(declared) == ["ConformanceLevel", "DocumentFileName", "DocumentType", "Version"]
    assert xmp_value(xmp, "fx:DocumentType") == "INVOICE"
    assert xmp_value(xmp, "fx:DocumentFileName") == "factur-x.xml"
    assert xmp_value(xmp, "fx:Version") == "1.0"
    assert xmp_value(xmp, "fx:ConformanceLevel") == "EN 16931"
    # The attachment is associated with the document (PDF/A-3 /AF) as its data, as text/xml.
    (spec,) = [f.get_object() for f in root["/AF"]]
    assert (spec["/F"], spec["/UF"], spec["/AFRelationship"]) == ("factur-x.xml", "factur-x.xml", "/Data")
    assert spec["/EF"]["/F"].get_object()["/Subtype"] == "/text/xml"
    assert reader.attachments == {"factur-x.xml": [xml]}
    # An sRGB output intent for PDF/A, and every font embedded.
    (intent,) = [i.get_object() for i in root["/OutputIntents"]]
    assert intent["/S"] == "/GTS_PDFA1" and intent["/DestOutputProfile"].get_object()["/N"] == 3
    fonts = []
    for page in reader.pages:
        for font in page["/Resources"]["/Font"].values():
            font = font.get_object()
            for descendant in font.get("/DescendantFonts", [font]):
                fonts.append(descendant.get_object()["/FontDescriptor"].get_object())
    assert fonts and all({"/FontFile", "/FontFile2", "/FontFile3"} & set(f) for f in fonts)
    assert reader.trailer.get("/ID") and not reader.is_encrypted
    for page in reader.pages:
        for annotation in page.get("/Annots") or []:
            assert int(annotation.get_object()["/F"]) & 4, "PDF/A: annotations are printable"
    return reader


def _stored_pdf(invoice: Invoice) -> bytes:
    invoicing.invoice_render_pdf(invoice_id=invoice.pk)
    invoice.refresh_from_db()
    assert invoice.pdf_status == PdfStatus.READY
    with invoice.pdf.open("rb") as handle:
        data = handle.read()
    assert hashlib.sha256(data).hexdigest() == invoice.pdf_sha256
    return data


def test_stored_pdf_is_pdfa3_with_the_facturx_xml(customer, issue, products, exempt_product, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    invoice = issue(
        customer, lines=[{"product": products[0], "quantity": D("2")}, {"product": exempt_product, "quantity": D("1")}]
    )
    reader = assert_facturx_pdfa3(_stored_pdf(invoice), invoice)
    assert invoice.number in reader.pages[0].extract_text()


def test_credit_note_and_penalty_pdfs_are_facturx_too(customer, issue, user, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    invoice = issue(customer)
    credit = invoicing.invoice_credit(invoice=invoice, reason="Returned", actor=user)
    for document in (credit, _penalty(invoice, user)):
        reader = assert_facturx_pdfa3(_stored_pdf(document), document)
        assert document.number in reader.pages[0].extract_text()


def test_a_broken_xmp_template_is_caught(customer, issue, monkeypatch):
    # The checks above can fail: a PDF whose XMP lacks the Factur-X properties is refused.
    invoice = issue(customer)
    monkeypatch.setattr(einvoice, "FACTURX_XMP", einvoice.FACTURX_XMP.replace(b"EN 16931", b"BASIC"))
    einvoice._facturx_metadata_class.cache_clear()
    try:
        with pytest.raises(AssertionError):
            assert_facturx_pdfa3(einvoice.facturx_pdf(invoice), invoice)
    finally:
        einvoice._facturx_metadata_class.cache_clear()


def test_pdf_info_agrees_with_its_xmp_metadata(customer, issue, settings, tmp_path):
    # PDF/A: every document-information entry with an XMP equivalent must say the same thing.
    settings.MEDIA_ROOT = tmp_path
    invoice = issue(customer)
    reader = PdfReader(io.BytesIO(_stored_pdf(invoice)))
    info = {k: str(v) for k, v in (reader.trailer.get("/Info") or {}).items()}
    xmp = _xmp(reader)
    pairs = {
        "/Title": "dc:title",
        "/Author": "dc:creator",
        "/Subject": "dc:description",
        "/Producer": "pdf:Producer",
        "/Creator": "xmp:CreatorTool",
        "/Keywords": "pdf:Keywords",
    }
    for key, name in pairs.items():
        assert xmp_value(xmp, name) == info.get(key), (key, info.get(key), xmp_value(xmp, name))
    assert invoice.number in info["/Title"] and info["/Producer"]
    for key, name in (("/CreationDate", "xmp:CreateDate"), ("/ModDate", "xmp:ModifyDate")):
        assert info.get(key) and xmp_value(xmp, name)
        pdf_date = re.sub(r"\D", "", info[key])[:14]
        assert re.sub(r"\D", "", xmp_value(xmp, name))[:14] == pdf_date, (key, info[key], xmp_value(xmp, name))
