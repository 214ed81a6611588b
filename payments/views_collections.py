"""Collections: the overdue customers to chase, with their reminders and penalties; invoice disputes."""

from datetime import timedelta
from decimal import Decimal

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Count, DecimalField, F, IntegerField, Min, OuterRef, Q, Subquery, Sum, Value
from django.db.models.functions import Coalesce
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from billing.errors import DomainError
from billing.models import MONEY, Customer
from billing.views import filter_values, sorted_page
from billing.views_runs import RunPages
from invoicing.models import OPEN_STATUSES, Invoice, InvoiceKind, InvoiceStatus
from invoicing.services import invoice_dispute_set

from . import penalties
from .forms import CollectionsFilter, InvoiceDisputeForm, PenaltyRunStartForm, PenaltyWaiveForm
from .models import DunningNotice, PenaltyAssessment, PenaltyRun
from .penalties import penalty_waive

ZERO = Value(Decimal("0"), output_field=DecimalField(**MONEY))
BUCKET_DAYS = {"1_30": (1, 30), "31_60": (31, 60), "61_90": (61, 90), "90": (91, None)}


def _sum(expression, condition):
    return Coalesce(Sum(expression, filter=condition), ZERO)


def collections_queryset(*, today):
    """Customers with an overdue open item, with what the collections page shows, in one query:
    overdue total and oldest due date, penalties charged and still open, disputed invoices, and
    their last reminder (level, days, date) by subqueries."""
    balance = F("invoices__gross_total") - F("invoices__amount_paid")
    open_items = Q(invoices__status__in=OPEN_STATUSES) & ~Q(invoices__kind=InvoiceKind.CREDIT_NOTE)
    overdue = open_items & Q(invoices__due_date__lt=today) & Q(invoices__gross_total__gt=F("invoices__amount_paid"))
    penalty = Q(invoices__kind=InvoiceKind.PENALTY) & ~Q(invoices__status__in=[InvoiceStatus.DRAFT, InvoiceStatus.VOID])
    last = DunningNotice.objects.filter(customer=OuterRef("pk")).order_by("-as_of", "-pk")
    return (
        Customer.objects.annotate(
            overdue_total=_sum(balance, overdue),
            overdue_count=Count("invoices", filter=overdue),
            oldest_due=Min("invoices__due_date", filter=overdue),
            penalties_charged=_sum(F("invoices__gross_total"), penalty),
            penalties_open=_sum(balance, penalty & Q(invoices__status__in=OPEN_STATUSES)),
            disputed_count=Count("invoices", filter=open_items & Q(invoices__disputed=True)),
            last_level_id=Subquery(last.values("level_id")[:1], output_field=IntegerField()),
            last_level_name=Subquery(last.values("level__name")[:1]),
            last_level_days=Subquery(last.values("level__days_overdue")[:1], output_field=IntegerField()),
            last_tone=Subquery(last.values("tone")[:1]),
            last_dunned_on=Subquery(last.values("as_of")[:1]),
            last_status=Subquery(last.values("status")[:1]),
        )
        .filter(overdue_total__gt=0)
        .only("pk", "code", "name", "currency", "on_hold", "on_hold_reason")
    )


@login_required
def collections(request):
    today = timezone.localdate()
    filters = CollectionsFilter(request.GET or None)
    data = filter_values(filters)
    qs = collections_queryset(today=today)
    if q := data.get("q"):
        qs = qs.filter(Q(name__icontains=q) | Q(code__icontains=q) | Q(legal_name__icontains=q))
    if currency := data.get("currency"):
        qs = qs.filter(currency=currency)
    if bucket := data.get("bucket"):
        low, high = BUCKET_DAYS[bucket]
        qs = qs.filter(oldest_due__lte=today - timedelta(days=low))
        if high is not None:
            qs = qs.filter(oldest_due__gte=today - timedelta(days=high))
    if level := data.get("level"):
        qs = qs.filter(last_level_id__isnull=True) if level == "none" else qs.filter(last_level_id=int(level))
    if flag := data.get("flag"):
        qs = {
            "on_hold": qs.filter(on_hold=True),
            "disputed": qs.filter(disputed_count__gt=0),
            "clear": qs.filter(on_hold=False, disputed_count=0),
        }[flag]
    context = sorted_page(
        request,
        qs,
        sorts={
            "customer": ("name",),
            "currency": ("currency", "name"),
            "overdue": ("overdue_total",),
            "oldest": ("oldest_due",),
            "level": ("last_level_days",),
            "dunned": ("last_dunned_on",),
            "penalties": ("penalties_charged",),
        },
        default="-overdue",
    )
    for customer in context["page_obj"].object_list:
        customer.days_overdue = (today - customer.oldest_due).days
    context.update(filters=filters, filtered=bool(data), today=today)
    return render(request, "payments/collections.html", context)


@login_required
@require_POST
def invoice_dispute(request, pk: int):
    """Flag an invoice as disputed (with a reason) or clear the flag, from the invoice page."""
    invoice = get_object_or_404(Invoice, pk=pk)
    form = InvoiceDisputeForm(request.POST)
    if form.is_valid():
        disputed = form.cleaned_data["disputed"]
        try:
            invoice_dispute_set(
                invoice=invoice, disputed=disputed, reason=form.cleaned_data["reason"], actor=request.user
            )
        except DomainError as e:
            messages.error(request, e.message)
        else:
            messages.success(
                request,
                f"{invoice} is marked as disputed: no reminders are sent for it."
                if disputed
                else f"The dispute on {invoice} is resolved: it is reminded again when overdue.",
            )
    else:
        messages.error(request, " ".join(m for errors in form.errors.values() for m in errors))
    return redirect(invoice)


@login_required
@require_POST
def penalty_waive_view(request, pk: int):
    """Waive a late-payment penalty (interest and fee of one assessment) with a reason: its
    penalty invoice is cancelled by a credit note; audited. From the overdue invoice's page or the
    penalty invoice's page; back to the page it came from."""
    assessment = get_object_or_404(PenaltyAssessment.objects.select_related("invoice", "penalty_invoice"), pk=pk)
    back = assessment.penalty_invoice if request.POST.get("back") == "penalty" and assessment.penalty_invoice else None
    back = back or assessment.invoice
    form = PenaltyWaiveForm(request.POST)
    if not form.is_valid():
        messages.error(request, " ".join(m for errors in form.errors.values() for m in errors))
        return redirect(back)
    try:
        penalty_waive(assessment=assessment, reason=form.cleaned_data["reason"], actor=request.user)
    except DomainError as e:
        messages.error(request, e.message)
    else:
        total = assessment.interest + assessment.fee
        messages.success(
            request,
            f"Penalty of {total} {assessment.invoice.currency} on {assessment.invoice} waived"
            + (f": {assessment.penalty_invoice} is cancelled by a credit note." if assessment.penalty_invoice else "."),
        )
    return redirect(back)


# --- Penalty runs ---------------------------------------------------------------------------------


def _penalty_run_announce(run):
    if run.candidates:
        return messages.SUCCESS, f"Penalty run started: {run.candidates} overdue invoice(s) to assess."
    return messages.INFO, f"No invoice is overdue past its grace days as of {run.as_of:%d %b %Y}."


PENALTY_RUN_PAGES = RunPages(
    model=PenaltyRun,
    form_class=PenaltyRunStartForm,
    start=penalties.run_start,
    announce=_penalty_run_announce,
    list_template="payments/penalty_run_list.html",
    detail_template="payments/penalty_run_detail.html",
    progress_template="payments/partials/penalty_run_progress.html",
    list_url="penalty-run-list",
    start_url="penalty-run-start",
    detail_url="penalty-run-detail",
    start_label="Start penalty run",
)


@login_required
def penalty_run_list(request):
    return PENALTY_RUN_PAGES.list(request)


@login_required
@require_POST
def penalty_run_start(request):
    return PENALTY_RUN_PAGES.start_run(request)


@login_required
def penalty_run_detail(request, pk: int):
    return PENALTY_RUN_PAGES.detail(request, pk)
