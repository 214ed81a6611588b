"""Invoice PDF rendering with WeasyPrint. The HTML lives in templates/invoicing/pdf/invoice.html.

Rendering is on the hot path after every billing run, so the template is kept lean and the choices
below were measured (bench/pdf.py, bench/results/pdf.md):
- one font family, DejaVu Sans, a system font: nothing is fetched and only the glyphs used are
  embedded (full_fonts costs several times more: it compresses whole font files);
- no flex or grid (WeasyPrint's flex layout took most of the time of the first template), fixed
  table layouts, few elements: time grows with the number of boxes;
- the font configuration (fontconfig + Pango font map) is built once per process;
- the stylesheet carries no per-invoice text, so it is parsed once per process and reused.
The page is PDF/A-friendly: opaque colours only, no images, every font embedded.
"""

import re
import threading
from decimal import Decimal

from django.conf import settings
from django.template.loader import render_to_string

from .models import Invoice, InvoiceKind

# Heading printed on the document and the label of its number, per kind.
KIND_TEXT = {
    InvoiceKind.INVOICE: ("INVOICE", "Invoice no."),
    InvoiceKind.CREDIT_NOTE: ("CREDIT NOTE", "Credit note no."),
    InvoiceKind.PENALTY: ("LATE-PAYMENT PENALTY", "Invoice no."),
}
MAX_CONTACTS = 2  # more would push the lines off the first page; the billing e-mail is always shown

_STYLE = re.compile(r"<style>(.*?)</style>", re.S)
_TAG = re.compile(r"<([a-zA-Z][a-zA-Z0-9]*)")
_DIR_OR_HIDDEN = re.compile(r"<[a-zA-Z][^>]*\s(?:dir|hidden)\b")
# WeasyPrint's user-agent stylesheet (html5_ua.css) holds about 190 rules for every element HTML
# has, and every element of every document is matched against them: a quarter of the style
# computation of an invoice. A document made only of the elements below, with no `dir` or
# `hidden` attribute, gets the rules of that stylesheet which apply to those elements, copied
# here unchanged, and nothing else: the same page (a test compares what each page draws).
LEAN_UA_TAGS = frozenset(
    [
        "html",
        "head",
        "meta",
        "title",
        "style",
        "body",
        "div",
        "p",
        "span",
        "b",
        "br",
        "h1",
        "table",
        "thead",
        "tbody",
        "tr",
        "th",
        "td",
        "a",
    ]
)
LEAN_UA_CSS = """
head, meta, style, title { display: none }
body, div, h1, html, p { display: block }
table { display: table; border-spacing: 2px; border-collapse: separate; text-indent: initial; box-sizing: border-box }
thead { display: table-header-group }
tbody { display: table-row-group }
tr { display: table-row }
td, th { display: table-cell; padding: 1px }
p { margin-top: 1em; margin-bottom: 1em }
body { margin: 8px }
h1 { margin-top: .67em; margin-bottom: .67em }
thead, tbody { vertical-align: middle }
tr, td, th { vertical-align: inherit }
html { color-scheme: light }
b, th { font-weight: bold }
h1 { font-size: 2em; font-weight: bold }
:link { color: blue }
table, td, th { border-color: gray }
thead, tbody, tr { border-color: inherit }
:link { text-decoration: underline }
br::before { content: "\\A"; white-space: pre-line }
h1 { bookmark-level: 1; bookmark-label: content(text) }
h1 { hyphens: manual; break-after: avoid; break-inside: avoid }
@page {
  margin: 75px;
  @footnote            { margin-top: 1em }
  @note-area           { content: element(note, all-once) }
  @top-left-corner     { text-align: right;  vertical-align: middle }
  @top-left            { text-align: left;   vertical-align: middle }
  @top-center          { text-align: center; vertical-align: middle }
  @top-right           { text-align: right;  vertical-align: middle }
  @top-right-corner    { text-align: left;   vertical-align: middle }
  @left-top            { text-align: center; vertical-align: top    }
  @left-middle         { text-align: center; vertical-align: middle }
  @left-bottom         { text-align: center; vertical-align: bottom }
  @right-top           { text-align: center; vertical-align: top    }
  @right-middle        { text-align: center; vertical-align: middle }
  @right-bottom        { text-align: center; vertical-align: bottom }
  @bottom-left-corner  { text-align: right;  vertical-align: middle }
  @bottom-left         { text-align: left;   vertical-align: middle }
  @bottom-center       { text-align: center; vertical-align: middle }
  @bottom-right        { text-align: right;  vertical-align: middle }
  @bottom-right-corner { text-align: left;   vertical-align: middle }
}
"""
# Per process and thread (Pango's font map is not shared between threads): the font configuration
# and the parsed stylesheets, keyed by their text.
_cache = threading.local()


def _num(value) -> str:
    """A quantity or percent without trailing zeros: 2.000 -> 2, 5.50 -> 5.5."""
    text = f"{Decimal(value).normalize():f}"
    return "0" if text in ("-0", "0") else text


def _iban(value: str) -> str:
    """An IBAN in its printed form: groups of four."""
    compact = (value or "").replace(" ", "").upper()
    return " ".join(compact[i : i + 4] for i in range(0, len(compact), 4))


def _nb(value: str) -> str:
    """Keep a phone number on one line."""
    return (value or "").replace(" ", "\u00a0")


def _date(value) -> str:
    return value.isoformat() if value else ""


def invoice_context(invoice: Invoice, lines=None) -> dict:
    """Everything the template prints, prepared as display values. `lines`: the invoice's lines in
    order, when the caller has read them already."""
    lines = list(invoice.lines.all().order_by("position", "id")) if lines is None else lines
    orders: dict[str, dict] = {}
    rows = []
    for line in lines:
        if line.order_number and line.order_number not in orders:
            orders[line.order_number] = {
                "number": line.order_number,
                "date": _date(line.order_date),
                "reference": line.customer_reference,
            }
            rows.append({"order": orders[line.order_number]})
        rows.append(
            {
                "position": line.position,
                "description": line.description,
                "sku": line.sku,
                "quantity": _num(line.quantity),
                "unit": line.unit,
                "unit_price": line.unit_price,
                "discount": _num(line.discount_percent) if line.discount_percent else "",
                "tax": _num(line.tax_percent),
                "note": line.tax_note,
                "net": line.net_amount,
            }
        )
    has_discount = any(line.discount_percent for line in lines)
    breakdown = [
        {**b, "rate": _num(b["rate"]), "category": str(b["category"]).replace("_", " ")}
        for b in invoice.tax_breakdown or []
    ]
    seller = invoice.seller_snapshot or settings.OTC_COMPANY
    customer = invoice.customer_snapshot or {}
    contacts = [{**c, "phone": _nb(c.get("phone"))} for c in (customer.get("contacts") or [])[:MAX_CONTACTS]]
    original = invoice.original if invoice.original_id else None
    heading, number_label = KIND_TEXT.get(invoice.kind, KIND_TEXT[InvoiceKind.INVOICE])
    return {
        "invoice": invoice,
        "kind": invoice.kind,
        "title": invoice.get_kind_display(),
        "heading": heading,
        "number_label": number_label,
        "number": invoice.number or "DRAFT",
        "issue_date": _date(invoice.issue_date),
        "due_date": _date(invoice.due_date),
        "currency": invoice.currency,
        "rows": rows,
        "references": ", ".join(dict.fromkeys(o["reference"] for o in orders.values() if o["reference"])),
        "has_discount": has_discount,
        "columns": 7 if has_discount else 6,
        "breakdown": breakdown,
        "seller": seller,
        "seller_iban": _iban(seller.get("iban", "")),
        "customer": customer,
        "customer_phone": _nb(customer.get("phone")),
        "contacts": contacts,
        "attention": contacts[0] if contacts else None,
        "terms": invoice.terms_snapshot or {},
        "original": original,
        "original_date": _date(original.issue_date) if original else "",
        "original_due_date": _date(original.due_date) if original else "",
    }


def invoice_html(invoice: Invoice, lines=None) -> str:
    """The invoice as one self-contained HTML document (its stylesheet inline)."""
    return render_to_string("invoicing/pdf/invoice.html", invoice_context(invoice, lines))


def html_to_document(html: str, **options):
    """Lay out self-contained HTML with WeasyPrint: the rendered `weasyprint.document.Document`
    (its pages and metadata), to be written with its write_pdf. `options` are WeasyPrint's (e.g.
    pdf_variant). The output is the same as rendering the HTML as it is: a document's one inline
    stylesheet is lifted out so that its parsed form serves the next document too (when nothing
    else in the document could rank differently once it is passed as a stylesheet)."""
    from weasyprint import CSS, HTML
    from weasyprint.text.fonts import FontConfiguration

    if getattr(_cache, "font_config", None) is None:
        _cache.font_config, _cache.stylesheets = FontConfiguration(), {}
    stylesheets = list(options.pop("stylesheets", None) or [])
    match = _STYLE.search(html) if html.count("<style") == 1 else None
    if match and not any(word in match.group(1) for word in ("@font-face", "@import", "!important")):
        css = match.group(1)
        sheet = _cache.stylesheets.get(css)
        if sheet is None:
            if len(_cache.stylesheets) >= 8:  # the template has one stylesheet; keep the cache small
                _cache.stylesheets.clear()
            sheet = _cache.stylesheets[css] = CSS(string=css, font_config=_cache.font_config)
        html = html[: match.start()] + html[match.end() :]
        stylesheets.insert(0, sheet)
    html_class = _lean_html_class() if lean_ua_applies(html) else HTML
    document = html_class(string=html, base_url=str(settings.BASE_DIR))
    return document.render(font_config=_cache.font_config, stylesheets=stylesheets, **options)


def lean_ua_applies(html: str) -> bool:
    """Whether the document uses only the elements LEAN_UA_CSS covers (see there)."""
    if _DIR_OR_HIDDEN.search(html):
        return False
    return {tag.lower() for tag in _TAG.findall(html)} <= LEAN_UA_TAGS


def _lean_html_class():
    """weasyprint.HTML with LEAN_UA_CSS as its user-agent stylesheet; built once per process."""
    if getattr(_cache, "lean_html", None) is None:
        from weasyprint import CSS, HTML
        from weasyprint.html import UA_COUNTER_STYLE

        sheet = CSS(string=LEAN_UA_CSS, counter_style=UA_COUNTER_STYLE)

        class LeanHTML(HTML):
            def _ua_stylesheets(self, forms=False):
                return [sheet]

        _cache.lean_html = LeanHTML
    return _cache.lean_html


def html_to_pdf(html: str, *, prepare=None, finisher=None, **options) -> bytes:
    """Render self-contained HTML to PDF bytes in one pass; `options` go to WeasyPrint (e.g.
    pdf_variant, attachments), `prepare(document)` may adjust the rendered document (its metadata)
    before it is written, `finisher(document, pdf)` the PDF objects before they are serialized."""
    document = html_to_document(html, **options)
    if prepare is not None:
        prepare(document)
    options.pop("stylesheets", None)
    return document.write_pdf(finisher=finisher, **options)


def render_invoice_pdf(invoice: Invoice, **options) -> bytes:
    return html_to_pdf(invoice_html(invoice), **options)
