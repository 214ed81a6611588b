"""The KPI dashboard, which is also the home page finance staff land on."""

from django.contrib.auth.decorators import login_required
from django.db.models import Count, F, Q
from django.shortcuts import redirect, render
from django.utils import timezone

from invoicing.models import OPEN_STATUSES, Invoice, InvoiceKind, InvoiceStatus
from orders.models import Order, OrderStatus

from . import selectors


@login_required
def home(request):
    return redirect("kpi-dashboard")


@login_required
def kpi_dashboard(request):
    today = timezone.localdate()
    orders = Order.objects.aggregate(
        draft=Count("pk", filter=Q(status=OrderStatus.DRAFT)),
        confirmed=Count("pk", filter=Q(status=OrderStatus.CONFIRMED)),
        fulfilled=Count("pk", filter=Q(status=OrderStatus.FULFILLED)),
    )
    invoices = Invoice.objects.aggregate(
        draft=Count("pk", filter=Q(status=InvoiceStatus.DRAFT)),
        overdue=Count("pk", filter=Q(status__in=OPEN_STATUSES, due_date__lt=today) & ~Q(kind=InvoiceKind.CREDIT_NOTE)),
    )
    overdue = (
        Invoice.objects.filter(status__in=OPEN_STATUSES, due_date__lt=today)
        .exclude(kind=InvoiceKind.CREDIT_NOTE)
        .select_related("customer")
        .annotate(balance_due=F("gross_total") - F("amount_paid"))
        .order_by("due_date", "pk")[:15]
    )
    context = {
        "summary": selectors.summary(as_of=today),
        "work": {"orders": orders, "invoices": invoices},
        "overdue": [(invoice, (today - invoice.due_date).days) for invoice in overdue],
    }
    return render(request, "kpis/dashboard.html", context)
