"""Invoice pages: list, detail, issue, void, credit notes, PDF download, sending again, invoicing an
order; billing runs and print batches."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import F, Q
from django.http import FileResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from billing.errors import DomainError
from billing.models import TaxCategory
from billing.selectors import aging_due_range
from billing.views import filter_values, sorted_page
from billing.views_runs import RunPages
from orders.models import Order

from . import billing_runs, delivery, services
from .forms import BillingRunStartForm, CreditApplyForm, CreditMode, CreditNoteForm, InvoiceListFilter, InvoiceVoidForm
from .models import (
    OPEN_STATUSES,
    BillingRun,
    Invoice,
    InvoiceKind,
    InvoiceStatus,
    PdfStatus,
    PrintBatch,
    PrintBatchStatus,
)


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
    if issued := data.get("issued"):
        qs = qs.filter(issue_date=issued)
    if currency := data.get("currency"):
        qs = qs.filter(currency=currency)
    if bucket := data.get("bucket"):
        first, last = aging_due_range(bucket, today)
        qs = qs.filter(status__in=OPEN_STATUSES, kind__in=(InvoiceKind.INVOICE, InvoiceKind.PENALTY))
        if first:
            qs = qs.filter(due_date__gte=first)
        if last:
            qs = qs.filter(due_date__lte=last)
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


def _detail_context(
    invoice: Invoice, *, void_form: InvoiceVoidForm | None = None, apply_form: CreditApplyForm | None = None
) -> dict:
    is_draft = invoice.status == InvoiceStatus.DRAFT
    today = timezone.localdate()
    categories = dict(TaxCategory.choices)
    lines = list(invoice.lines.select_related("order_line"))
    corrections = list(invoice.corrections.all().order_by("pk"))
    void_refusal = services.invoice_void_refusal(invoice=invoice) if invoice.status != InvoiceStatus.VOID else None
    return {
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
        "corrections": corrections,
        "credit_notes": [c for c in corrections if c.kind == InvoiceKind.CREDIT_NOTE],
        "penalty_invoices": [c for c in corrections if c.kind == InvoiceKind.PENALTY],
        # A credit note with credit left can settle another open invoice of the customer.
        "apply_form": apply_form
        or (
            CreditApplyForm(note=invoice)
            if invoice.kind == InvoiceKind.CREDIT_NOTE and invoice.is_open and invoice.balance > 0
            else None
        ),
        "orders": Order.objects.filter(lines__invoice_lines__invoice=invoice).distinct().order_by("pk"),
        "days_overdue": (today - invoice.due_date).days
        if invoice.is_open and invoice.kind != InvoiceKind.CREDIT_NOTE and invoice.due_date < today
        else 0,
        "can_issue": is_draft,
        "can_resend": invoice.status not in (InvoiceStatus.DRAFT, InvoiceStatus.VOID),
        # A credit note's open balance is credit owed to the customer, not money to collect.
        "can_pay": invoice.is_open and invoice.kind != InvoiceKind.CREDIT_NOTE,
        "can_void": invoice.status != InvoiceStatus.VOID and void_refusal is None,
        "void_form": void_form or InvoiceVoidForm(),
        # Penalty invoices are corrected by waiving the penalty, which keeps its assessment right.
        "can_credit": invoice.kind == InvoiceKind.INVOICE
        and invoice.status in (InvoiceStatus.ISSUED, InvoiceStatus.PARTIALLY_PAID, InvoiceStatus.PAID),
    }


def _invoice_for_page(pk: int) -> Invoice:
    return get_object_or_404(Invoice.objects.select_related("customer__payment_terms", "original", "issued_by"), pk=pk)


@login_required
def invoice_detail(request, pk: int):
    return render(request, "invoicing/invoice_detail.html", _detail_context(_invoice_for_page(pk)))


@login_required
@require_POST
def invoice_void(request, pk: int):
    """Void a draft, or an issued invoice nothing settled and the customer never received."""
    invoice = _invoice_for_page(pk)
    form = InvoiceVoidForm(request.POST)
    if not form.is_valid():
        # Shown again with the error inline (status 200, as every page form here).
        return render(request, "invoicing/invoice_detail.html", _detail_context(invoice, void_form=form))
    was_draft = invoice.status == InvoiceStatus.DRAFT
    try:
        invoice = services.invoice_void(invoice=invoice, actor=request.user, reason=form.cleaned_data["reason"])
    except DomainError as e:
        if "reason" in e.details:
            form.add_error("reason", e.details["reason"])
            return render(request, "invoicing/invoice_detail.html", _detail_context(invoice, void_form=form))
        messages.error(request, e.message)
        return redirect(invoice)
    if was_draft:
        messages.success(request, "Draft voided. Its orders are back to fulfilled and can be invoiced again.")
    else:
        messages.success(
            request,
            f"Invoice {invoice.number} voided; its number stays used. Its orders are back to fulfilled and will be "
            "invoiced again by the next billing run (or from the order page).",
        )
    return redirect(invoice)


@login_required
@require_POST
def credit_note_apply(request, pk: int):
    """Apply what is left on a credit note to another open invoice of the customer."""
    note = _invoice_for_page(pk)
    form = CreditApplyForm(request.POST, note=note)
    if not form.is_valid():
        return render(request, "invoicing/invoice_detail.html", _detail_context(note, apply_form=form))
    target = form.cleaned_data["invoice"]
    try:
        application = services.credit_note_apply(
            credit_note=note, invoice=target, amount=form.cleaned_data["amount"], actor=request.user
        )
    except DomainError as e:
        if "amount" in e.details:
            form.add_error("amount", e.message)
            return render(request, "invoicing/invoice_detail.html", _detail_context(note, apply_form=form))
        messages.error(request, e.message)
        return redirect(note)
    messages.success(request, f"{application.amount} {note.currency} of {note} applied to {target}.")
    return redirect(note)


def _credit_form(invoice: Invoice, data=None) -> CreditNoteForm:
    credited = services.invoice_credited_quantities(invoice=invoice)
    lines = [(line, line.quantity - credited.get(line.pk, 0)) for line in invoice.lines.order_by("position", "pk")]
    return CreditNoteForm(data, invoice=invoice, lines=lines, initial={"mode": CreditMode.FULL})


@login_required
def invoice_credit(request, pk: int):
    """Create a credit note for an issued invoice: a form with a preview of its totals before posting.
    An htmx request (the form changing) answers with the preview alone; nothing is written until the
    "Create credit note" button is pressed."""
    invoice = _invoice_for_page(pk)
    if invoice.kind != InvoiceKind.INVOICE or invoice.status not in (
        InvoiceStatus.ISSUED,
        InvoiceStatus.PARTIALLY_PAID,
        InvoiceStatus.PAID,
    ):
        messages.error(
            request,
            f"{invoice.get_kind_display()} {invoice} is {invoice.get_status_display().lower()}; "
            "only issued invoices are credited here.",
        )
        return redirect(invoice)
    bound = request.method == "POST"
    form = _credit_form(invoice, request.POST if bound else None)
    quote, quote_error = None, ""
    valid = form.is_valid() if bound else False
    # The live preview needs only the figures: a reason still to be typed does not stop it.
    figures_ok = not bound or valid or (request.htmx and set(form.errors) <= {"reason"})
    if figures_ok:
        try:
            args = form.service_arguments() if bound else {}
            quote = services.invoice_credit_quote(invoice=invoice, reason=request.POST.get("reason", ""), **args)
        except DomainError as e:
            quote_error = e.message
            if bound:
                form.add_service_error(e)
    if bound and valid and quote is not None and request.POST.get("action") == "create" and not request.htmx:
        try:
            note = services.invoice_credit(
                invoice=invoice, reason=form.cleaned_data["reason"], actor=request.user, **form.service_arguments()
            )
        except DomainError as e:
            form.add_service_error(e)
        else:
            rest = f" {note.balance} {note.currency} stays as customer credit." if note.balance else ""
            messages.success(
                request,
                f"Credit note {note.number} issued: {note.gross_total} {note.currency} against {invoice}.{rest}",
            )
            return redirect(note)
    context = {"invoice": invoice, "form": form, "quote": quote, "quote_error": quote_error, "modes": CreditMode}
    if request.htmx:
        return render(request, "invoicing/partials/credit_preview.html", context)
    return render(request, "invoicing/credit_note_form.html", context)


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


@login_required
@require_POST
def invoice_resend(request, pk: int):
    """Deliver an issued invoice again: e-mail it once more, or queue it for print."""
    invoice = get_object_or_404(Invoice, pk=pk)
    try:
        invoice = delivery.invoice_resend(invoice=invoice, actor=request.user)
    except DomainError as e:
        messages.error(request, e.message)
    else:
        how = "queued for print" if delivery.billing_method(invoice) == "paper" else "e-mailed again"
        messages.success(request, f"{invoice.get_kind_display()} {invoice.number} will be {how} in a moment.")
    return redirect(invoice)


# --- Billing runs ---------------------------------------------------------------------------------


def _billing_run_announce(run):
    if run.total_groups:
        return messages.SUCCESS, f"Billing run started: {run.total_groups} invoice(s) planned."
    return messages.INFO, f"Nothing to bill as of {run.as_of:%d %b %Y}."


BILLING_RUN_PAGES = RunPages(
    model=BillingRun,
    form_class=BillingRunStartForm,
    start=billing_runs.run_start,
    announce=_billing_run_announce,
    list_template="invoicing/billing_run_list.html",
    detail_template="invoicing/billing_run_detail.html",
    progress_template="invoicing/partials/billing_run_progress.html",
    list_url="billing-run-list",
    start_url="billing-run-start",
    detail_url="billing-run-detail",
    start_label="Start billing run",
)


@login_required
def billing_run_list(request):
    return BILLING_RUN_PAGES.list(request)


@login_required
@require_POST
def billing_run_start(request):
    return BILLING_RUN_PAGES.start_run(request)


@login_required
def billing_run_detail(request, pk: int):
    return BILLING_RUN_PAGES.detail(request, pk)


# --- Print batches --------------------------------------------------------------------------------


@login_required
def print_batch_list(request):
    context = sorted_page(
        request,
        PrintBatch.objects.all(),
        sorts={"date": ("date",), "status": ("status",), "invoices": ("invoice_count",)},
        default="-date",
    )
    return render(request, "invoicing/print_batch_list.html", context)


@login_required
def print_batch_detail(request, pk: int):
    batch = get_object_or_404(PrintBatch.objects.select_related("posted_by"), pk=pk)
    items = batch.items.filter(invoice__isnull=False).select_related("invoice__customer").order_by("invoice__number")
    context = {
        "batch": batch,
        "items": items,
        "documents": batch.items.filter(invoice__isnull=True).select_related("customer").order_by("pk"),
        "can_close": batch.status == PrintBatchStatus.OPEN,
        "can_post": batch.status == PrintBatchStatus.CLOSED,
        "has_pdf": batch.status != PrintBatchStatus.OPEN and bool(batch.pdf),
    }
    return render(request, "invoicing/print_batch_detail.html", context)


@login_required
@require_POST
def print_batch_close(request, pk: int):
    batch = get_object_or_404(PrintBatch, pk=pk)
    try:
        batch = delivery.print_batch_close(batch=batch, actor=request.user)
    except DomainError as e:
        messages.error(request, e.message)
    else:
        messages.success(
            request, f"{batch} closed: {batch.invoice_count} invoice(s), {batch.page_count} pages ready to print."
        )
    return redirect("print-batch-detail", pk=batch.pk)


@login_required
@require_POST
def print_batch_post(request, pk: int):
    batch = get_object_or_404(PrintBatch, pk=pk)
    try:
        batch = delivery.print_batch_mark_posted(batch=batch, actor=request.user)
    except DomainError as e:
        messages.error(request, e.message)
    else:
        messages.success(request, f"{batch} marked as posted: its {batch.invoice_count} invoice(s) are delivered.")
    return redirect("print-batch-detail", pk=batch.pk)


@login_required
def print_batch_pdf(request, pk: int):
    batch = get_object_or_404(PrintBatch, pk=pk)
    if batch.status == PrintBatchStatus.OPEN or not batch.pdf:
        messages.info(request, "The batch is still open: close it to build the PDF to print.")
        return redirect("print-batch-detail", pk=batch.pk)
    try:
        handle = batch.pdf.open("rb")
    except FileNotFoundError:
        messages.error(request, "The batch PDF is missing from storage.")
        return redirect("print-batch-detail", pk=batch.pk)
    return FileResponse(
        handle,
        as_attachment=True,
        filename=f"print-batch-{batch.date:%Y-%m-%d}-{batch.pk}.pdf",
        content_type="application/pdf",
    )
