"""Customer pages, and the list helpers (sorting, filtering, pagination) every app's pages share."""

from decimal import Decimal

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db.models import DecimalField, F, Q, Sum, Value
from django.db.models.functions import Coalesce
from django.shortcuts import get_object_or_404, redirect, render

from . import services
from .errors import DomainError
from .forms import CustomerForm, CustomerListFilter
from .models import Customer

PAGE_SIZE = 50
ZERO = Value(Decimal("0"), output_field=DecimalField(max_digits=14, decimal_places=2))
# Read through reverse relations by name: billing sits below invoicing and payments and imports neither.
OPEN_INVOICE_STATES = ("issued", "partially_paid")


def sorted_page(request, queryset, *, sorts: dict[str, tuple[str, ...]], default: str) -> dict:
    """Order `queryset` by the whitelisted `?sort=` key (a leading '-' reverses it), paginate it,
    and describe each sortable column for the table header."""
    requested = request.GET.get("sort") or default
    key = requested.removeprefix("-")
    if key not in sorts:
        requested, key = default, default.removeprefix("-")
    descending = requested.startswith("-")
    ordering = [F(f).desc() if descending else F(f).asc() for f in sorts[key]]
    ordering.append("-pk" if descending else "pk")
    page = Paginator(queryset.order_by(*ordering), PAGE_SIZE).get_page(request.GET.get("page"))
    columns = {
        name: {
            "next": f"-{name}" if name == key and not descending else name,
            "dir": ("desc" if descending else "asc") if name == key else "",
        }
        for name in sorts
    }
    return {"page_obj": page, "sort": requested, "columns": columns}


def filter_values(form) -> dict:
    """The filters that are set and valid; an invalid one (a stale customer id, say) is ignored, not an error."""
    if not form.is_bound:
        return {}
    form.is_valid()
    return {name: value for name, value in form.cleaned_data.items() if value not in (None, "")}


def form_errors_from(form, error: Exception) -> None:
    """Put a refused service call's messages on the form, on the field when we know it."""
    if isinstance(error, ValidationError) and hasattr(error, "error_dict"):
        for field, errors in error.message_dict.items():
            form.add_error(field if field in form.fields else None, errors)
    elif isinstance(error, ValidationError):
        form.add_error(None, error.messages)
    else:
        fields = {k: v for k, v in error.details.items() if k in form.fields and isinstance(v, list)}
        for field, errors in fields.items():
            form.add_error(field, errors)
        if not fields:
            form.add_error(None, error.message)


def run_action(request, action, success: str):
    """Call a service; a refusal becomes an error message on the next page instead of an error page."""
    try:
        result = action()
    except DomainError as e:
        messages.error(request, e.message)
        return None
    messages.success(request, success)
    return result


@login_required
def customer_list(request):
    filters = CustomerListFilter(request.GET or None)
    data = filter_values(filters)
    qs = Customer.objects.select_related("payment_terms").annotate(
        open_balance=Coalesce(
            Sum(
                F("invoices__gross_total") - F("invoices__amount_paid"),
                filter=Q(invoices__status__in=OPEN_INVOICE_STATES) & ~Q(invoices__kind="credit_note"),
            ),
            ZERO,
        )
    )
    if q := data.get("q"):
        qs = qs.filter(
            Q(name__icontains=q)
            | Q(legal_name__icontains=q)
            | Q(code__icontains=q)
            | Q(email__icontains=q)
            | Q(tax_id__icontains=q)
        )
    if status := data.get("status"):
        qs = qs.filter(on_hold=status == "on_hold")
    if currency := data.get("currency"):
        qs = qs.filter(currency=currency)
    context = sorted_page(
        request,
        qs,
        sorts={
            "code": ("code",),
            "name": ("name",),
            "currency": ("currency", "name"),
            "terms": ("payment_terms__name", "name"),
            "balance": ("open_balance",),
        },
        default="name",
    )
    context.update(filters=filters, filtered=bool(data))
    return render(request, "billing/customer_list.html", context)


@login_required
def customer_detail(request, pk: int):
    customer = get_object_or_404(Customer.objects.select_related("payment_terms"), pk=pk)
    open_invoices = (
        customer.invoices.filter(status__in=OPEN_INVOICE_STATES).exclude(kind="credit_note").order_by("due_date", "pk")
    )
    receivables = open_invoices.aggregate(total=Coalesce(Sum(F("gross_total") - F("amount_paid")), ZERO))["total"]
    credit = customer.payments.aggregate(
        total=Coalesce(Sum(F("amount") - F("allocated_amount") - F("refunded_amount")), ZERO)
    )["total"]
    uninvoiced = customer.orders.filter(status__in=["confirmed", "fulfilled"]).aggregate(
        total=Coalesce(Sum("gross_total"), ZERO)
    )["total"]
    exposure = receivables + uninvoiced
    context = {
        "customer": customer,
        "contacts": customer.contacts.all(),
        "terms_text": customer.payment_terms.text(customer.currency),
        "receivables": receivables,
        "credit": credit,
        "exposure": exposure,
        "available_credit": None if customer.credit_limit is None else customer.credit_limit - exposure,
        "open_invoices": open_invoices[:10],
        "recent_orders": customer.orders.order_by("-order_date", "-pk")[:10],
        "recent_payments": customer.payments.order_by("-received_on", "-pk")[:10],
    }
    return render(request, "billing/customer_detail.html", context)


@login_required
def customer_create(request):
    form = CustomerForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            customer = services.customer_create(actor=request.user, **form.cleaned_data)
        except (DomainError, ValidationError) as e:
            form_errors_from(form, e)
        else:
            messages.success(request, f"Customer {customer.name} created with code {customer.code}.")
            return redirect(customer)
    return render(request, "billing/customer_form.html", {"form": form, "customer": None})


@login_required
def customer_update(request, pk: int):
    customer = get_object_or_404(Customer, pk=pk)
    # The form gets its own copy: a bound ModelForm writes the posted values onto its instance.
    form = CustomerForm(request.POST or None, instance=Customer.objects.get(pk=pk))
    if request.method == "POST" and form.is_valid():
        try:
            customer = services.customer_update(
                customer=Customer(pk=customer.pk), actor=request.user, **form.cleaned_data
            )
        except (DomainError, ValidationError) as e:
            form_errors_from(form, e)
        else:
            messages.success(request, f"Customer {customer.name} saved.")
            return redirect(customer)
    return render(request, "billing/customer_form.html", {"form": form, "customer": customer})
