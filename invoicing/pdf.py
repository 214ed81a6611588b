"""Invoice PDF rendering with WeasyPrint. The HTML lives in templates/invoicing/pdf/."""

from django.conf import settings
from django.template.loader import render_to_string

from .models import Invoice


def invoice_html(invoice: Invoice) -> str:
    lines = list(invoice.lines.all().order_by("position", "id"))
    orders = {}
    for line in lines:
        if line.order_number and line.order_number not in orders:
            orders[line.order_number] = {
                "number": line.order_number,
                "date": line.order_date,
                "reference": line.customer_reference,
            }
    notes = sorted({line.tax_note for line in lines if line.tax_note})
    return render_to_string(
        "invoicing/pdf/invoice.html",
        {
            "invoice": invoice,
            "lines": lines,
            "orders": list(orders.values()),
            "seller": invoice.seller_snapshot or settings.OTC_COMPANY,
            "customer": invoice.customer_snapshot,
            "terms": invoice.terms_snapshot,
            "tax_notes": notes,
        },
    )


def render_invoice_pdf(invoice: Invoice) -> bytes:
    from weasyprint import HTML

    return HTML(string=invoice_html(invoice), base_url=str(settings.BASE_DIR)).write_pdf()
