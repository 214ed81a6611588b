"""Invoice pages: list, detail, issue, PDF download, and invoicing an order."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import F, Q
from django.http import FileResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from billing.errors import DomainError
from billing.models import TaxCategory
from billing.views import filter_values, sorted_page
from orders.models import Order

from . import services
from .forms import InvoiceListFilter
from .models import OPEN_STATUSES, Invoice, InvoiceKind, InvoiceStatus, PdfStatus


@login_required
def invoice_list(request):
    filters = InvoiceListFilter(request.GET or None)
    data = filter_values(filters)
    today = timezone.localdate()
    qs = Invoice.objects.select_related("customer").annotate(balance_due=F("gross_total") - F("amount_paid"))
    if q := data.get("q"):
        qs = qs.filter(Q(number__icontains=q) | Q(customer__name__icontains=q) | Q(customer__code__icontains=q))
    if status := data.get("status"):
        if status == "overdue":
            qs = qs.filter(status__in=OPEN_STATUSES, due_date__lt=today).exclude(kind=InvoiceKind.CREDIT_NOTE)
        else:
            qs = qs.filter(status=status)
    if kind := data.get("kind"):
        qs = qs.filter(kind=kind)
    if customer := data.get("customer"):
        qs = qs.filter(customer=customer)
    context = sorted_page(
        request,
        qs,
        sorts={
            "number": ("number",),
            "customer": ("customer__name",),
            "issued": ("issue_date",),
            "due": ("due_date",),
            "status": ("status",),
            "total": ("gross_total",),
            "balance": ("balance_due",),
        },
        default="-issued",
    )
    context.update(
        filters=filters,
        filtered=bool(data),
        today=today,
        open_statuses=OPEN_STATUSES,
    )
    return render(request, "invoicing/invoice_list.html", context)


@login_required
def invoice_detail(request, pk: int):
    invoice = get_object_or_404(
        Invoice.objects.select_related("customer__payment_terms", "original", "issued_by"), pk=pk
    )
    is_draft = invoice.status == InvoiceStatus.DRAFT
    today = timezone.localdate()
    categories = dict(TaxCategory.choices)
    lines = list(invoice.lines.select_related("order_line"))
    context = {
        "invoice": invoice,
        "is_draft": is_draft,
        # A draft shows today's customer and terms; an issued invoice shows what was frozen at issue.
        "bill_to": invoice.customer.snapshot() if is_draft else invoice.customer_snapshot,
        "terms_text": invoice.customer.payment_terms.text(invoice.currency)
        if is_draft
        else invoice.terms_snapshot.get("text", ""),
        "lines": lines,
        "tax_breakdown": [
            {**row, "category_label": categories.get(row["category"], row["category"])} for row in invoice.tax_breakdown
        ],
        "tax_notes": sorted({line.tax_note for line in lines if line.tax_note}),
        "allocations": invoice.allocations.select_related("payment").order_by("created_at", "pk"),
        "credits_received": invoice.credits_received.select_related("credit_note").order_by("pk"),
        "credits_applied": invoice.credit_applications.select_related("invoice").order_by("pk"),
        "corrections": invoice.corrections.all().order_by("pk"),
        "orders": Order.objects.filter(lines__invoice_lines__invoice=invoice).distinct().order_by("pk"),
        "days_overdue": (today - invoice.due_date).days
        if invoice.is_open and invoice.kind != InvoiceKind.CREDIT_NOTE and invoice.due_date < today
        else 0,
        "can_issue": is_draft,
        # A credit note's open balance is credit owed to the customer, not money to collect.
        "can_pay": invoice.is_open and invoice.kind != InvoiceKind.CREDIT_NOTE,
    }
    return render(request, "invoicing/invoice_detail.html", context)


@login_required
@require_POST
def invoice_issue(request, pk: int):
    invoice = get_object_or_404(Invoice, pk=pk)
    try:
        invoice = services.invoice_issue(invoice=invoice, actor=request.user)
    except DomainError as e:
        messages.error(request, e.message)
    else:
        messages.success(
            request,
            f"Invoice {invoice.number} issued, due {invoice.due_date:%d %b %Y}. The PDF is being rendered.",
        )
    return redirect(invoice)


@login_required
def invoice_pdf(request, pk: int):
    invoice = get_object_or_404(Invoice, pk=pk)
    if invoice.status == InvoiceStatus.DRAFT:
        messages.info(request, "A draft has no PDF yet: issue the invoice first.")
        return redirect(invoice)
    if invoice.pdf_status == PdfStatus.FAILED:
        messages.error(request, "Rendering the PDF failed. An administrator can request it again from the admin.")
        return redirect(invoice)
    if invoice.pdf_status != PdfStatus.READY or not invoice.pdf:
        messages.info(request, "The PDF is still being rendered — refresh in a moment.")
        return redirect(invoice)
    try:
        handle = invoice.pdf.open("rb")
    except FileNotFoundError:
        messages.error(request, "The PDF file is missing from storage. An administrator can render it again.")
        return redirect(invoice)
    return FileResponse(handle, as_attachment=True, filename=f"{invoice.number}.pdf", content_type="application/pdf")


@login_required
@require_POST
def order_invoice(request, pk: int):
    """Draft an invoice from one fulfilled order (the order page's "Create invoice" button)."""
    order = get_object_or_404(Order, pk=pk)
    try:
        invoice = services.invoice_create_from_orders(orders=[order], actor=request.user)
    except DomainError as e:
        messages.error(request, e.message)
        return redirect(order)
    messages.success(request, f"Draft invoice created from order {order}. Check it, then issue it.")
    return redirect(invoice)
