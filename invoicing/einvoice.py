"""Structured e-invoices (EN 16931) for issued documents: UN/CEFACT CII as Factur-X, and UBL 2.1.

Pure functions over an issued Invoice, its lines and the snapshots frozen at issue: no database
writes, no clock. `document()` maps the invoice onto the EN 16931 semantic model once; `facturx_xml`
and `ubl_xml` only spell that model in their syntax, so both say the same thing.

Choices worth knowing:
- Amounts are the stored ones (lines, tax breakdown, totals), never recomputed, so the XML agrees
  with the PDF to the cent. A line discount is a line allowance (reason code 95) of exactly
  round(quantity x unit price) - line net, the net price staying the unit price: so
  line net = quantity x price - allowance holds to the cent with our half-up rounding whenever
  quantity x price is a whole number of cents (always for whole quantities); otherwise the two
  differ by the rounding of the line net itself, which EN 16931 leaves to the seller.
- VAT categories map to UNCL5305: standard/reduced -> S (Z when the rate is 0), zero -> Z,
  exempt -> E, reverse charge -> AE. E and AE carry the legal note as exemption reason (BT-120).
- Breakdown rows are merged per (category code, rate), as EN 16931 wants one row per pair.
- Payment means: credit transfer to the seller's IBAN, 58 (SEPA) for EUR to a SEPA-zone account,
  else 30. Credit notes carry none: the seller pays there.
- A credit note is UBL CreditNote / CII 381 with positive amounts, referring to the invoice it
  corrects (BG-3). Penalty invoices are commercial invoices (380).
"""

import functools
import io
import re
from dataclasses import dataclass, field
from datetime import UTC, date
from decimal import Decimal

from django.conf import settings
from lxml import etree

from billing.money import quantize

from .models import Invoice, InvoiceKind

EN16931 = "urn:cen.eu:en16931:2017"
FACTURX_FILENAME = "factur-x.xml"

# UNTDID 5305 VAT category codes.
TAX_CATEGORY_CODES = {"standard": "S", "reduced": "S", "zero": "Z", "exempt": "E", "reverse_charge": "AE"}
EXEMPTION_FALLBACK = {"E": "Exempt from VAT", "AE": "Reverse charge"}
EXEMPTION_CODES = {"AE": "VATEX-EU-AE"}

# Free-text units (lower case) to UN/ECE Recommendation 20/21 codes; anything else is C62 ("one").
UNIT_CODES = {
    **dict.fromkeys(["unit", "units", "u", "pc", "pcs", "piece", "pieces", "each", "ea", "item", "items"], "C62"),
    **dict.fromkeys(["hour", "hours", "h", "hr", "hrs"], "HUR"),
    **dict.fromkeys(["minute", "minutes", "min"], "MIN"),
    **dict.fromkeys(["day", "days", "d"], "DAY"),
    **dict.fromkeys(["week", "weeks", "wk"], "WEE"),
    **dict.fromkeys(["month", "months", "mo"], "MON"),
    **dict.fromkeys(["year", "years", "yr"], "ANN"),
    **dict.fromkeys(["kg", "kgs", "kilogram", "kilograms"], "KGM"),
    **dict.fromkeys(["g", "gram", "grams"], "GRM"),
    **dict.fromkeys(["t", "tonne", "tonnes", "ton"], "TNE"),
    **dict.fromkeys(["lb", "lbs", "pound", "pounds"], "LBR"),
    **dict.fromkeys(["m", "metre", "metres", "meter", "meters"], "MTR"),
    **dict.fromkeys(["km", "kilometre", "kilometres", "kilometer", "kilometers"], "KMT"),
    **dict.fromkeys(["cm", "centimetre", "centimeter"], "CMT"),
    **dict.fromkeys(["m2", "sqm", "square metre", "square meter"], "MTK"),
    **dict.fromkeys(["m3", "cubic metre", "cubic meter"], "MTQ"),
    **dict.fromkeys(["l", "litre", "litres", "liter", "liters"], "LTR"),
    **dict.fromkeys(["ml", "millilitre", "milliliter"], "MLT"),
    **dict.fromkeys(["kwh"], "KWH"),
    **dict.fromkeys(["set", "sets"], "SET"),
    **dict.fromkeys(["pair", "pairs"], "PR"),
    **dict.fromkeys(["box", "boxes"], "XBX"),
    **dict.fromkeys(["pack", "packs", "package", "packages"], "XPK"),
    **dict.fromkeys(["lump sum", "lumpsum", "flat"], "LS"),
}
KNOWN_UNIT_CODES = set(UNIT_CODES.values())

# IBAN countries of the SEPA scheme: a EUR transfer to one of them is a SEPA credit transfer.
SEPA_COUNTRIES = frozenset(
    re.findall(
        r"[A-Z]{2}",
        "AD AT BE BG CH CY CZ DE DK EE ES FI FR GB GI GR HR HU IE IS IT LI LT LU LV MC MT NL NO PL PT RO SE SI SK SM "
        "VA GF GP MQ YT RE PM BL MF",
    )
)

NS_CII = {
    "rsm": "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100",
    "ram": "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100",
    "qdt": "urn:un:unece:uncefact:data:standard:QualifiedDataType:100",
    "udt": "urn:un:unece:uncefact:data:standard:UnqualifiedDataType:100",
}
NS_UBL = {
    "cac": "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2",
    "cbc": "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2",
}
UBL_ROOT = {
    "Invoice": "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2",
    "CreditNote": "urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2",
}


# --- The EN 16931 model of one invoice ------------------------------------------------------------


@dataclass(frozen=True)
class Address:
    lines: tuple[str, ...] = ()  # BT-35..BT-36 (and BT-162)
    city: str = ""  # BT-37
    postal_code: str = ""  # BT-38
    region: str = ""  # BT-39
    country: str = ""  # BT-40 (ISO 3166-1 alpha-2)


@dataclass(frozen=True)
class Party:
    name: str  # BT-27 / BT-44: legal name
    trading_name: str = ""  # BT-28 / BT-45
    identifier: str = ""  # BT-29 / BT-46
    vat_id: str = ""  # BT-31 / BT-48
    legal_id: str = ""  # BT-30 / BT-47
    address: Address = field(default_factory=Address)
    email: str = ""  # BT-34 / BT-49 electronic address, and contact e-mail
    phone: str = ""


@dataclass(frozen=True)
class Line:
    id: str  # BT-126
    note: str  # BT-127
    name: str  # BT-153
    seller_item_id: str  # BT-155
    quantity: Decimal  # BT-129
    unit_code: str  # BT-130
    price: Decimal  # BT-146
    net: Decimal  # BT-131
    allowance: Decimal  # BT-136 (0: none)
    allowance_base: Decimal  # BT-137
    allowance_percent: Decimal  # BT-138
    category: str  # BT-151
    rate: Decimal  # BT-152


@dataclass(frozen=True)
class TaxRow:
    category: str  # BT-118
    rate: Decimal  # BT-119
    taxable: Decimal  # BT-116
    tax: Decimal  # BT-117
    exemption_reason: str = ""  # BT-120
    exemption_code: str = ""  # BT-121


@dataclass(frozen=True)
class Document:
    number: str  # BT-1
    type_code: str  # BT-3: 380 commercial invoice, 381 credit note
    is_credit_note: bool
    issue_date: date  # BT-2
    due_date: date | None  # BT-9
    currency: str  # BT-5
    notes: tuple[str, ...]  # BT-22
    buyer_reference: str  # BT-10
    order_reference: str  # BT-13
    sales_order_reference: str  # BT-14
    preceding_invoice: str  # BT-25
    preceding_invoice_date: date | None  # BT-26
    seller: Party
    buyer: Party
    payment_means_code: str  # BT-81 ("" when no payment instructions)
    payment_reference: str  # BT-83
    iban: str  # BT-84
    bic: str  # BT-86
    payment_terms: str  # BT-20
    lines: tuple[Line, ...]
    tax_rows: tuple[TaxRow, ...]
    line_total: Decimal  # BT-106
    tax_exclusive: Decimal  # BT-109
    tax_total: Decimal  # BT-110
    tax_inclusive: Decimal  # BT-112
    payable: Decimal  # BT-115


def _text(value) -> str:
    return " ".join(str(value or "").split())


def _compact(value) -> str:
    return re.sub(r"[\s.\-]", "", str(value or "")).upper()


def unit_code(unit: str) -> str:
    """A UN/ECE Rec 20/21 unit code for the free-text unit of a line; C62 ("one") when unknown."""
    raw = _text(unit)
    if raw.upper() in KNOWN_UNIT_CODES:
        return raw.upper()
    return UNIT_CODES.get(raw.lower(), "C62")


def tax_category_code(category: str, rate) -> str:
    """UNCL5305 code of one of our tax categories. A standard or reduced rate of 0 is zero-rated:
    EN 16931 wants a positive rate under S."""
    code = TAX_CATEGORY_CODES.get(str(category), "S")
    if code == "S" and Decimal(rate or 0) == 0:
        return "Z"
    return code


def _tax_id_kind(tax_id: str) -> str:
    """'vat' for a VAT number (country prefix, EN 16931 BR-CO-09), 'legal' for any other identifier."""
    return "vat" if re.match(r"^[A-Z]{2}[0-9A-Z+*]{2,}$", tax_id) else "legal"


_POSTCODE_CITY = re.compile(r"^(?P<postcode>\S*\d\S*(?:\s+\S*\d\S*)?)\s+(?P<city>[^\d\s].*)$")


def seller_address(lines, country: str) -> Address:
    """Structure the seller's printed address lines: street lines, then "postcode city", then an
    optional country name (the country code itself comes from the settings)."""
    if isinstance(lines, str):
        lines = re.split(r"[\n,]", lines)
    lines = [_text(line) for line in lines or [] if _text(line)]
    end = len(lines)
    if end > 1 and not re.search(r"\d", lines[-1]):
        end -= 1  # the country's name
    match = _POSTCODE_CITY.match(lines[end - 1]) if end > 1 else None
    if not match:
        return Address(lines=tuple(lines[:3]), country=(country or "").upper())
    return Address(
        lines=tuple(lines[: end - 1][:3]),
        city=match["city"],
        postal_code=match["postcode"],
        country=(country or "").upper(),
    )


def _party_ids(tax_id: str) -> tuple[str, str]:
    tax_id = _compact(tax_id)
    if not tax_id:
        return "", ""
    return (tax_id, "") if _tax_id_kind(tax_id) == "vat" else ("", tax_id)


def _seller(snapshot: dict) -> Party:
    vat_id, legal_id = _party_ids(snapshot.get("tax_id", ""))
    legal_name = _text(snapshot.get("legal_name") or snapshot.get("name"))
    trading = _text(snapshot.get("name"))
    return Party(
        name=legal_name,
        trading_name=trading if trading and trading != legal_name else "",
        vat_id=vat_id,
        legal_id=legal_id,
        address=seller_address(snapshot.get("address"), snapshot.get("country", "")),
        email=_text(snapshot.get("email")),
        phone=_text(snapshot.get("phone")),
    )


def _buyer(snapshot: dict) -> Party:
    vat_id, legal_id = _party_ids(snapshot.get("tax_id", ""))
    address = snapshot.get("address") or {}
    legal_name = _text(snapshot.get("legal_name") or snapshot.get("name"))
    trading = _text(snapshot.get("name"))
    return Party(
        name=legal_name,
        trading_name=trading if trading and trading != legal_name else "",
        identifier=_text(snapshot.get("code")),
        vat_id=vat_id,
        legal_id=legal_id,
        address=Address(
            lines=tuple(_text(address.get(k)) for k in ("line1", "line2") if _text(address.get(k))),
            city=_text(address.get("city")),
            postal_code=_text(address.get("postal_code")),
            region=_text(address.get("region")),
            country=_text(address.get("country")).upper(),
        ),
        email=_text(snapshot.get("email")),
        phone=_text(snapshot.get("phone")),
    )


def _line(line, currency: str) -> Line:
    quantity = Decimal(line.quantity)
    price = Decimal(line.unit_price)
    net = quantize(line.net_amount, currency)
    base = quantize(quantity * price, currency)
    allowance = base - net if line.discount_percent and base > net else Decimal(0)
    order = []
    if line.order_number:
        order.append(f"Order {line.order_number}" + (f" of {line.order_date:%Y-%m-%d}" if line.order_date else ""))
    if line.customer_reference:
        order.append(f"your reference {line.customer_reference}")
    note = ", ".join(order)
    if line.discount_percent:
        note = "; ".join(p for p in [note, f"discount {Decimal(line.discount_percent).normalize():f}%"] if p)
    return Line(
        id=str(line.position),
        note=note,
        name=_text(line.description) or _text(line.sku) or "Item",
        seller_item_id=_text(line.sku),
        quantity=quantity,
        unit_code=unit_code(line.unit),
        price=price,
        net=net,
        allowance=allowance,
        allowance_base=base,
        allowance_percent=Decimal(line.discount_percent or 0),
        category=tax_category_code(line.tax_category, line.tax_percent),
        rate=Decimal(line.tax_percent),
    )


def _tax_rows(invoice: Invoice, lines) -> tuple[TaxRow, ...]:
    notes: dict[str, list[str]] = {}
    for line in lines:
        code, note = tax_category_code(line.tax_category, line.tax_percent), _text(line.tax_note)
        if note and note not in notes.setdefault(code, []):
            notes[code].append(note)
    merged: dict[tuple[str, Decimal], list[Decimal]] = {}
    for row in invoice.tax_breakdown or []:
        key = (tax_category_code(row["category"], row["rate"]), Decimal(row["rate"]))
        sums = merged.setdefault(key, [Decimal(0), Decimal(0)])
        sums[0] += Decimal(row["taxable"])
        sums[1] += Decimal(row["tax"])
    rows = []
    for (code, rate), (taxable, tax) in merged.items():
        reason = ""
        if code in EXEMPTION_FALLBACK:
            reason = "; ".join(notes.get(code) or []) or EXEMPTION_FALLBACK[code]
        rows.append(
            TaxRow(
                category=code,
                rate=rate,
                taxable=quantize(taxable, invoice.currency),
                tax=quantize(tax, invoice.currency),
                exemption_reason=reason,
                exemption_code=EXEMPTION_CODES.get(code, ""),
            )
        )
    return tuple(rows)


def _only(values) -> str:
    distinct = list(dict.fromkeys(v for v in values if v))
    return distinct[0] if len(distinct) == 1 else ""


def document(invoice: Invoice, lines=None) -> Document:
    """The EN 16931 model of an issued invoice, credit note or penalty invoice. `lines`: the
    invoice's lines in order, when the caller has read them already."""
    if not invoice.number or not invoice.issue_date:
        raise ValueError(f"{invoice} is not issued; only issued documents have an e-invoice.")
    currency = invoice.currency
    stored = list(invoice.lines.all().order_by("position", "id")) if lines is None else lines
    lines = tuple(_line(line, currency) for line in stored)
    seller_snapshot = invoice.seller_snapshot or dict(settings.OTC_COMPANY)
    customer = invoice.customer_snapshot or {}
    is_credit_note = invoice.kind == InvoiceKind.CREDIT_NOTE
    original = invoice.original if invoice.original_id else None

    customer_reference = _only(line.customer_reference for line in stored)
    notes = []
    if is_credit_note and original is not None:
        notes.append(f"Credit note for invoice {original.number}.")
    if is_credit_note and invoice.credit_reason:
        notes.append(f"Reason: {invoice.credit_reason}")
    if invoice.kind == InvoiceKind.PENALTY:
        notes.append("Late-payment penalty" + (f" on invoice {original.number}." if original is not None else "."))
    # Legal notes of lines whose category has no exemption reason of its own (zero rated, say).
    notes += dict.fromkeys(
        _text(line.tax_note)
        for line in stored
        if line.tax_note and tax_category_code(line.tax_category, line.tax_percent) not in EXEMPTION_FALLBACK
    )

    iban = _compact(seller_snapshot.get("iban"))
    means = ""
    if iban and not is_credit_note:
        means = "58" if currency == "EUR" and iban[:2] in SEPA_COUNTRIES else "30"
    gross = quantize(invoice.gross_total, currency)
    return Document(
        number=invoice.number,
        type_code="381" if is_credit_note else "380",
        is_credit_note=is_credit_note,
        issue_date=invoice.issue_date,
        due_date=invoice.due_date,
        currency=currency,
        notes=tuple(notes),
        buyer_reference=customer_reference or _text(customer.get("code")) or invoice.number,
        order_reference=customer_reference,
        sales_order_reference=_only(line.order_number for line in stored),
        preceding_invoice=original.number if (is_credit_note and original is not None) else "",
        preceding_invoice_date=original.issue_date if (is_credit_note and original is not None) else None,
        seller=_seller(seller_snapshot),
        buyer=_buyer(customer),
        payment_means_code=means,
        payment_reference=invoice.number,
        iban=iban if means else "",
        bic=_compact(seller_snapshot.get("bic")) if means else "",
        payment_terms=_text((invoice.terms_snapshot or {}).get("text")),
        lines=lines,
        tax_rows=_tax_rows(invoice, stored),
        line_total=sum((line.net for line in lines), Decimal(0)),
        tax_exclusive=quantize(invoice.net_total, currency),
        tax_total=quantize(invoice.tax_total, currency),
        tax_inclusive=gross,
        payable=gross,
    )


# --- Spelling helpers -----------------------------------------------------------------------------


def _amount(value: Decimal) -> str:
    return f"{Decimal(value):f}"


def _percent(value: Decimal) -> str:
    return f"{Decimal(value).quantize(Decimal('0.01')):f}"


def _quantity(value: Decimal) -> str:
    return f"{Decimal(value):f}"


class _Builder:
    def __init__(self, namespaces: dict[str, str]):
        self.ns = namespaces

    def qname(self, tag: str) -> str:
        prefix, _, local = tag.rpartition(":")
        return f"{{{self.ns[prefix]}}}{local}" if prefix else tag

    def sub(self, parent, tag: str, text=None, **attrs):
        element = etree.SubElement(parent, self.qname(tag), {k: str(v) for k, v in attrs.items()})
        if text is not None:
            element.text = str(text)
        return element

    def opt(self, parent, tag: str, text, **attrs):
        """A leaf only when it has a value: EN 16931 refuses empty elements."""
        return self.sub(parent, tag, text, **attrs) if text not in (None, "") else None


def _serialize(root) -> bytes:
    return etree.tostring(root, encoding="UTF-8", xml_declaration=True, pretty_print=True)


# --- UN/CEFACT CII D16B, Factur-X EN 16931 profile -------------------------------------------------


def _cii_date(b: _Builder, parent, tag: str, value: date, prefix: str = "udt"):
    wrapper = b.sub(parent, tag)
    b.sub(wrapper, f"{prefix}:DateTimeString", value.strftime("%Y%m%d"), format="102")


def _cii_party(b: _Builder, parent, tag: str, party: Party):
    el = b.sub(parent, tag)
    b.opt(el, "ram:ID", party.identifier)
    b.sub(el, "ram:Name", party.name)
    if party.legal_id or party.trading_name:
        org = b.sub(el, "ram:SpecifiedLegalOrganization")
        b.opt(org, "ram:ID", party.legal_id)
        b.opt(org, "ram:TradingBusinessName", party.trading_name)
    if party.phone or party.email:
        contact = b.sub(el, "ram:DefinedTradeContact")
        if party.phone:
            b.sub(b.sub(contact, "ram:TelephoneUniversalCommunication"), "ram:CompleteNumber", party.phone)
        if party.email:
            b.sub(b.sub(contact, "ram:EmailURIUniversalCommunication"), "ram:URIID", party.email)
    address = b.sub(el, "ram:PostalTradeAddress")
    b.opt(address, "ram:PostcodeCode", party.address.postal_code)
    for tag, text in zip(("ram:LineOne", "ram:LineTwo", "ram:LineThree"), party.address.lines, strict=False):
        b.sub(address, tag, text)
    b.opt(address, "ram:CityName", party.address.city)
    b.sub(address, "ram:CountryID", party.address.country)
    b.opt(address, "ram:CountrySubDivisionName", party.address.region)
    if party.email:
        b.sub(b.sub(el, "ram:URIUniversalCommunication"), "ram:URIID", party.email, schemeID="EM")
    if party.vat_id:
        b.sub(b.sub(el, "ram:SpecifiedTaxRegistration"), "ram:ID", party.vat_id, schemeID="VA")


def facturx_xml(invoice: Invoice, *, doc: Document | None = None) -> bytes:
    """The invoice as UN/CEFACT CII D16B in the Factur-X EN 16931 profile (the factur-x.xml of the PDF).
    `doc`: the invoice's `document()` when the caller has it already."""
    doc = doc or document(invoice)
    b = _Builder(NS_CII)
    root = etree.Element(b.qname("rsm:CrossIndustryInvoice"), nsmap=NS_CII)
    context = b.sub(root, "rsm:ExchangedDocumentContext")
    b.sub(b.sub(context, "ram:GuidelineSpecifiedDocumentContextParameter"), "ram:ID", EN16931)

    header = b.sub(root, "rsm:ExchangedDocument")
    b.sub(header, "ram:ID", doc.number)
    b.sub(header, "ram:TypeCode", doc.type_code)
    _cii_date(b, header, "ram:IssueDateTime", doc.issue_date)
    for note in doc.notes:
        b.sub(b.sub(header, "ram:IncludedNote"), "ram:Content", note)

    transaction = b.sub(root, "rsm:SupplyChainTradeTransaction")
    for line in doc.lines:
        item = b.sub(transaction, "ram:IncludedSupplyChainTradeLineItem")
        line_doc = b.sub(item, "ram:AssociatedDocumentLineDocument")
        b.sub(line_doc, "ram:LineID", line.id)
        if line.note:
            b.sub(b.sub(line_doc, "ram:IncludedNote"), "ram:Content", line.note)
        product = b.sub(item, "ram:SpecifiedTradeProduct")
        b.opt(product, "ram:SellerAssignedID", line.seller_item_id)
        b.sub(product, "ram:Name", line.name)
        agreement = b.sub(item, "ram:SpecifiedLineTradeAgreement")
        b.sub(b.sub(agreement, "ram:NetPriceProductTradePrice"), "ram:ChargeAmount", _amount(line.price))
        delivery = b.sub(item, "ram:SpecifiedLineTradeDelivery")
        b.sub(delivery, "ram:BilledQuantity", _quantity(line.quantity), unitCode=line.unit_code)
        settlement = b.sub(item, "ram:SpecifiedLineTradeSettlement")
        tax = b.sub(settlement, "ram:ApplicableTradeTax")
        b.sub(tax, "ram:TypeCode", "VAT")
        b.sub(tax, "ram:CategoryCode", line.category)
        b.sub(tax, "ram:RateApplicablePercent", _percent(line.rate))
        if line.allowance:
            allowance = b.sub(settlement, "ram:SpecifiedTradeAllowanceCharge")
            b.sub(b.sub(allowance, "ram:ChargeIndicator"), "udt:Indicator", "false")
            b.sub(allowance, "ram:CalculationPercent", _percent(line.allowance_percent))
            b.sub(allowance, "ram:BasisAmount", _amount(line.allowance_base))
            b.sub(allowance, "ram:ActualAmount", _amount(line.allowance))
            b.sub(allowance, "ram:ReasonCode", "95")
            b.sub(allowance, "ram:Reason", "Discount")
        summation = b.sub(settlement, "ram:SpecifiedTradeSettlementLineMonetarySummation")
        b.sub(summation, "ram:LineTotalAmount", _amount(line.net))

    agreement = b.sub(transaction, "ram:ApplicableHeaderTradeAgreement")
    b.sub(agreement, "ram:BuyerReference", doc.buyer_reference)
    _cii_party(b, agreement, "ram:SellerTradeParty", doc.seller)
    _cii_party(b, agreement, "ram:BuyerTradeParty", doc.buyer)
    if doc.sales_order_reference:
        b.sub(b.sub(agreement, "ram:SellerOrderReferencedDocument"), "ram:IssuerAssignedID", doc.sales_order_reference)
    if doc.order_reference:
        b.sub(b.sub(agreement, "ram:BuyerOrderReferencedDocument"), "ram:IssuerAssignedID", doc.order_reference)
    b.sub(transaction, "ram:ApplicableHeaderTradeDelivery")

    settlement = b.sub(transaction, "ram:ApplicableHeaderTradeSettlement")
    b.sub(settlement, "ram:PaymentReference", doc.payment_reference)
    b.sub(settlement, "ram:InvoiceCurrencyCode", doc.currency)
    if doc.payment_means_code:
        means = b.sub(settlement, "ram:SpecifiedTradeSettlementPaymentMeans")
        b.sub(means, "ram:TypeCode", doc.payment_means_code)
        b.sub(b.sub(means, "ram:PayeePartyCreditorFinancialAccount"), "ram:IBANID", doc.iban)
        if doc.bic:
            b.sub(b.sub(means, "ram:PayeeSpecifiedCreditorFinancialInstitution"), "ram:BICID", doc.bic)
    for row in doc.tax_rows:
        tax = b.sub(settlement, "ram:ApplicableTradeTax")
        b.sub(tax, "ram:CalculatedAmount", _amount(row.tax))
        b.sub(tax, "ram:TypeCode", "VAT")
        b.opt(tax, "ram:ExemptionReason", row.exemption_reason)
        b.sub(tax, "ram:BasisAmount", _amount(row.taxable))
        b.sub(tax, "ram:CategoryCode", row.category)
        b.opt(tax, "ram:ExemptionReasonCode", row.exemption_code)
        b.sub(tax, "ram:RateApplicablePercent", _percent(row.rate))
    if doc.payment_terms or doc.due_date:
        terms = b.sub(settlement, "ram:SpecifiedTradePaymentTerms")
        b.opt(terms, "ram:Description", doc.payment_terms)
        if doc.due_date:
            _cii_date(b, terms, "ram:DueDateDateTime", doc.due_date)
    totals = b.sub(settlement, "ram:SpecifiedTradeSettlementHeaderMonetarySummation")
    b.sub(totals, "ram:LineTotalAmount", _amount(doc.line_total))
    b.sub(totals, "ram:TaxBasisTotalAmount", _amount(doc.tax_exclusive))
    b.sub(totals, "ram:TaxTotalAmount", _amount(doc.tax_total), currencyID=doc.currency)
    b.sub(totals, "ram:GrandTotalAmount", _amount(doc.tax_inclusive))
    b.sub(totals, "ram:DuePayableAmount", _amount(doc.payable))
    if doc.preceding_invoice:
        reference = b.sub(settlement, "ram:InvoiceReferencedDocument")
        b.sub(reference, "ram:IssuerAssignedID", doc.preceding_invoice)
        if doc.preceding_invoice_date:
            _cii_date(b, reference, "ram:FormattedIssueDateTime", doc.preceding_invoice_date, prefix="qdt")
    return _serialize(root)


# --- Factur-X PDF/A-3 --------------------------------------------------------------------------------

TITLES = {InvoiceKind.INVOICE: "Invoice", InvoiceKind.CREDIT_NOTE: "Credit note", InvoiceKind.PENALTY: "Invoice"}
FACTURX_URN = "urn:factur-x:pdfa:CrossIndustryDocument:invoice:1p0#"
FACTURX_VERSION = "1.0"
FACTURX_CONFORMANCE = "EN 16931"  # the XMP spelling of the EN 16931 (Comfort) profile

# The Factur-X part of the XMP metadata: the PDF/A extension schema declaring the fx properties
# (PDF/A allows only declared schemas), and the properties themselves. The same for every invoice.
_FX_PROPERTIES = {
    "DocumentFileName": "The name of the embedded XML document",
    "DocumentType": "The type of the hybrid document in capital letters, e.g. INVOICE or ORDER",
    "Version": "The actual version of the standard applying to the embedded XML document",
    "ConformanceLevel": "The conformance level of the embedded XML document",
}
FACTURX_XMP = (
    '<rdf:Description rdf:about="" xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"'
    ' xmlns:pdfaExtension="http://www.aiim.org/pdfa/ns/extension/"'
    ' xmlns:pdfaSchema="http://www.aiim.org/pdfa/ns/schema#"'
    ' xmlns:pdfaProperty="http://www.aiim.org/pdfa/ns/property#">'
    '<pdfaExtension:schemas><rdf:Bag><rdf:li rdf:parseType="Resource">'
    "<pdfaSchema:schema>Factur-X PDFA Extension Schema</pdfaSchema:schema>"
    f"<pdfaSchema:namespaceURI>{FACTURX_URN}</pdfaSchema:namespaceURI>"
    "<pdfaSchema:prefix>fx</pdfaSchema:prefix>"
    "<pdfaSchema:property><rdf:Seq>"
    + "".join(
        f'<rdf:li rdf:parseType="Resource"><pdfaProperty:name>{name}</pdfaProperty:name>'
        "<pdfaProperty:valueType>Text</pdfaProperty:valueType>"
        "<pdfaProperty:category>external</pdfaProperty:category>"
        f"<pdfaProperty:description>{description}</pdfaProperty:description></rdf:li>"
        for name, description in _FX_PROPERTIES.items()
    )
    + "</rdf:Seq></pdfaSchema:property></rdf:li></rdf:Bag></pdfaExtension:schemas></rdf:Description>"
    f'<rdf:Description rdf:about="" xmlns:fx="{FACTURX_URN}">'
    "<fx:DocumentType>INVOICE</fx:DocumentType>"
    f"<fx:DocumentFileName>{FACTURX_FILENAME}</fx:DocumentFileName>"
    f"<fx:Version>{FACTURX_VERSION}</fx:Version>"
    f"<fx:ConformanceLevel>{FACTURX_CONFORMANCE}</fx:ConformanceLevel>"
    "</rdf:Description>"
).encode()


@functools.cache
def _facturx_metadata_class():
    """WeasyPrint's document metadata, with the Factur-X properties written into the one rdf:RDF
    of its XMP packet (where XMP readers look: they read the first rdf:RDF only, so the
    `xmp_metadata` option, which adds a packet of its own after it, would not do)."""
    from weasyprint.pdf.metadata import DocumentMetadata

    class FacturXMetadata(DocumentMetadata):
        def generate_rdf_metadata(self, variant, version, conformance):
            rdf = super().generate_rdf_metadata(variant, version, conformance)
            end = rdf.rindex(b"</rdf:RDF>")
            return rdf[:end] + FACTURX_XMP + rdf[end:]

    return FacturXMetadata


def facturx_pdf(invoice: Invoice) -> bytes:
    """The invoice as a Factur-X (EN 16931 profile) PDF/A-3b, written by WeasyPrint in one pass:
    the page, factur-x.xml attached as the document's data (/AF, text/xml), an sRGB output
    intent, a file identifier, and the PDF/A and Factur-X XMP metadata agreeing with the
    document information. No second parse-and-rewrite of the PDF (what the factur-x library does).

    The XML is not checked against the Factur-X XSD here: it is built by facturx_xml from the
    stored invoice, and tests check it against the XSD and the EN 16931 rules for every kind of
    document; parsing the XSD for every invoice cost several milliseconds and its memory."""
    from django.utils import timezone
    from weasyprint import Attachment

    from .pdf import html_to_pdf, invoice_html

    lines = list(invoice.lines.all().order_by("position", "id"))  # read once, for the page and the XML
    doc = document(invoice, lines)
    xml = facturx_xml(invoice, doc=doc)
    title = f"{doc.seller.name}: {TITLES.get(invoice.kind, 'Invoice')} {doc.number}"
    now = timezone.now().replace(microsecond=0)
    stamp = now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    attachment = Attachment(
        file_obj=io.BytesIO(xml),
        name=FACTURX_FILENAME,
        description=f"Factur-X {FACTURX_CONFORMANCE} invoice data",
        relationship="Data",
        created=now,
        modified=now,
    )

    def prepare(rendered):
        rendered.metadata = _facturx_metadata_class()(
            title=title,
            authors=[doc.seller.name],
            description=f"{title} dated {doc.issue_date.isoformat()} to {doc.buyer.name}",
            created=stamp,
            modified=stamp,
            lang=rendered.metadata.lang,
            attachments=rendered.metadata.attachments,
        )

    def finish(rendered, pdf):
        # WeasyPrint lists the attachment in /AF twice (from the name tree and as a file
        # specification): once is what PDF/A-3 asks for.
        if "AF" in pdf.catalog:
            pdf.catalog["AF"] = type(pdf.catalog["AF"])(dict.fromkeys(pdf.catalog["AF"]))

    return html_to_pdf(
        invoice_html(invoice, lines), prepare=prepare, finisher=finish, pdf_variant="pdf/a-3b", attachments=[attachment]
    )


# --- UBL 2.1 Invoice / CreditNote --------------------------------------------------------------------


def _ubl_party(b: _Builder, parent, tag: str, party: Party):
    el = b.sub(b.sub(parent, tag), "cac:Party")
    if party.email:
        b.sub(el, "cbc:EndpointID", party.email, schemeID="EM")
    if party.identifier:
        b.sub(b.sub(el, "cac:PartyIdentification"), "cbc:ID", party.identifier)
    if party.trading_name:
        b.sub(b.sub(el, "cac:PartyName"), "cbc:Name", party.trading_name)
    address = b.sub(el, "cac:PostalAddress")
    lines = list(party.address.lines)
    b.opt(address, "cbc:StreetName", lines[0] if lines else "")
    b.opt(address, "cbc:AdditionalStreetName", lines[1] if len(lines) > 1 else "")
    b.opt(address, "cbc:CityName", party.address.city)
    b.opt(address, "cbc:PostalZone", party.address.postal_code)
    b.opt(address, "cbc:CountrySubentity", party.address.region)
    if len(lines) > 2:
        b.sub(b.sub(address, "cac:AddressLine"), "cbc:Line", lines[2])
    b.sub(b.sub(address, "cac:Country"), "cbc:IdentificationCode", party.address.country)
    if party.vat_id:
        scheme = b.sub(el, "cac:PartyTaxScheme")
        b.sub(scheme, "cbc:CompanyID", party.vat_id)
        b.sub(b.sub(scheme, "cac:TaxScheme"), "cbc:ID", "VAT")
    legal = b.sub(el, "cac:PartyLegalEntity")
    b.sub(legal, "cbc:RegistrationName", party.name)
    b.opt(legal, "cbc:CompanyID", party.legal_id)
    if party.phone or party.email:
        contact = b.sub(el, "cac:Contact")
        b.opt(contact, "cbc:Telephone", party.phone)
        b.opt(contact, "cbc:ElectronicMail", party.email)


def _ubl_tax_category(b: _Builder, parent, tag: str, category: str, rate: Decimal, reason="", code=""):
    el = b.sub(parent, tag)
    b.sub(el, "cbc:ID", category)
    b.sub(el, "cbc:Percent", _percent(rate))
    b.opt(el, "cbc:TaxExemptionReasonCode", code)
    b.opt(el, "cbc:TaxExemptionReason", reason)
    b.sub(b.sub(el, "cac:TaxScheme"), "cbc:ID", "VAT")


def ubl_xml(invoice: Invoice) -> bytes:
    """The invoice as OASIS UBL 2.1: an Invoice, or a CreditNote referring to the invoice it corrects."""
    doc = document(invoice)
    kind = "CreditNote" if doc.is_credit_note else "Invoice"
    b = _Builder(NS_UBL)
    cur = {"currencyID": doc.currency}
    root = etree.Element(f"{{{UBL_ROOT[kind]}}}{kind}", nsmap={None: UBL_ROOT[kind], **NS_UBL})
    b.sub(root, "cbc:CustomizationID", EN16931)
    b.sub(root, "cbc:ID", doc.number)
    b.sub(root, "cbc:IssueDate", doc.issue_date.isoformat())
    if not doc.is_credit_note and doc.due_date:
        b.sub(root, "cbc:DueDate", doc.due_date.isoformat())
    b.sub(root, "cbc:CreditNoteTypeCode" if doc.is_credit_note else "cbc:InvoiceTypeCode", doc.type_code)
    for note in doc.notes:
        b.sub(root, "cbc:Note", note)
    b.sub(root, "cbc:DocumentCurrencyCode", doc.currency)
    b.sub(root, "cbc:BuyerReference", doc.buyer_reference)
    if doc.order_reference or doc.sales_order_reference:
        order = b.sub(root, "cac:OrderReference")
        b.sub(order, "cbc:ID", doc.order_reference or "NA")
        b.opt(order, "cbc:SalesOrderID", doc.sales_order_reference)
    if doc.preceding_invoice:
        reference = b.sub(b.sub(root, "cac:BillingReference"), "cac:InvoiceDocumentReference")
        b.sub(reference, "cbc:ID", doc.preceding_invoice)
        if doc.preceding_invoice_date:
            b.sub(reference, "cbc:IssueDate", doc.preceding_invoice_date.isoformat())
    _ubl_party(b, root, "cac:AccountingSupplierParty", doc.seller)
    _ubl_party(b, root, "cac:AccountingCustomerParty", doc.buyer)
    if doc.payment_means_code:
        means = b.sub(root, "cac:PaymentMeans")
        b.sub(means, "cbc:PaymentMeansCode", doc.payment_means_code)
        b.sub(means, "cbc:PaymentID", doc.payment_reference)
        account = b.sub(means, "cac:PayeeFinancialAccount")
        b.sub(account, "cbc:ID", doc.iban)
        if doc.bic:
            b.sub(b.sub(account, "cac:FinancialInstitutionBranch"), "cbc:ID", doc.bic)
    if doc.payment_terms:
        b.sub(b.sub(root, "cac:PaymentTerms"), "cbc:Note", doc.payment_terms)
    tax_total = b.sub(root, "cac:TaxTotal")
    b.sub(tax_total, "cbc:TaxAmount", _amount(doc.tax_total), **cur)
    for row in doc.tax_rows:
        subtotal = b.sub(tax_total, "cac:TaxSubtotal")
        b.sub(subtotal, "cbc:TaxableAmount", _amount(row.taxable), **cur)
        b.sub(subtotal, "cbc:TaxAmount", _amount(row.tax), **cur)
        _ubl_tax_category(
            b, subtotal, "cac:TaxCategory", row.category, row.rate, row.exemption_reason, row.exemption_code
        )
    totals = b.sub(root, "cac:LegalMonetaryTotal")
    b.sub(totals, "cbc:LineExtensionAmount", _amount(doc.line_total), **cur)
    b.sub(totals, "cbc:TaxExclusiveAmount", _amount(doc.tax_exclusive), **cur)
    b.sub(totals, "cbc:TaxInclusiveAmount", _amount(doc.tax_inclusive), **cur)
    b.sub(totals, "cbc:PayableAmount", _amount(doc.payable), **cur)
    for line in doc.lines:
        el = b.sub(root, "cac:CreditNoteLine" if doc.is_credit_note else "cac:InvoiceLine")
        b.sub(el, "cbc:ID", line.id)
        b.opt(el, "cbc:Note", line.note)
        b.sub(
            el,
            "cbc:CreditedQuantity" if doc.is_credit_note else "cbc:InvoicedQuantity",
            _quantity(line.quantity),
            unitCode=line.unit_code,
        )
        b.sub(el, "cbc:LineExtensionAmount", _amount(line.net), **cur)
        if line.allowance:
            allowance = b.sub(el, "cac:AllowanceCharge")
            b.sub(allowance, "cbc:ChargeIndicator", "false")
            b.sub(allowance, "cbc:AllowanceChargeReasonCode", "95")
            b.sub(allowance, "cbc:AllowanceChargeReason", "Discount")
            b.sub(allowance, "cbc:MultiplierFactorNumeric", _percent(line.allowance_percent))
            b.sub(allowance, "cbc:Amount", _amount(line.allowance), **cur)
            b.sub(allowance, "cbc:BaseAmount", _amount(line.allowance_base), **cur)
        item = b.sub(el, "cac:Item")
        b.sub(item, "cbc:Name", line.name)
        if line.seller_item_id:
            b.sub(b.sub(item, "cac:SellersItemIdentification"), "cbc:ID", line.seller_item_id)
        _ubl_tax_category(b, item, "cac:ClassifiedTaxCategory", line.category, line.rate)
        b.sub(b.sub(el, "cac:Price"), "cbc:PriceAmount", _amount(line.price), **cur)
    return _serialize(root)
