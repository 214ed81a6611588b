"""Customer pages, and the list helpers (sorting, filtering, pagination) every app's pages share."""

from decimal import Decimal

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.core.paginator import Paginator
from django.db.models import DecimalField, F, Q, Sum, Value
from django.db.models.functions import Coalesce
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from . import selectors, services
from .errors import DomainError, ValidationFailed
from .forms import CONTACTS_PREFIX, CustomerForm, CustomerListFilter, CustomerNotesForm, contact_formset
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
    qs = selectors.customer_search(qs, data.get("q", ""))
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


HISTORY_LIMIT = 25
_ACTIONS = {
    "customer.created": "Created",
    "customer.updated": "Changed",
    "customer.dunning_notice": "Payment reminder written",
}


def _field_label(name: str) -> str:
    try:
        label = str(getattr(Customer._meta.get_field(name), "verbose_name", name))  # contacts: a reverse relation
    except FieldDoesNotExist:
        label = name.replace("_", " ")
    if name.startswith("billing_") and name not in ("billing_method", "billing_cycle"):
        label = f"billing {label}"
    return label[:1].upper() + label[1:]


_FIELD_ORDER = {f.name: i for i, f in enumerate(Customer._meta.concrete_fields)}


def _history_rows(events) -> list[dict]:
    """Audit events as the customer page lists them: who, when, and each change as old → new (a value
    set at creation just as its value), in the order of the form."""
    rows = []
    for event in events:
        changes = []
        created = event.action == "customer.created"
        for name, value in sorted((event.changes or {}).items(), key=lambda kv: _FIELD_ORDER.get(kv[0], 999)):
            label = _field_label(name)
            if isinstance(value, list) and len(value) == 2 and not any(isinstance(v, list | dict) for v in value):
                if created:
                    changes.append({"label": label, "text": value[1]})
                else:
                    changes.append({"label": label, "old": value[0], "new": value[1], "pair": True})
            elif isinstance(value, dict):
                for part, items in value.items():
                    text = "; ".join(map(str, items)) if isinstance(items, list) else str(items)
                    changes.append({"label": f"{label} {part}", "text": text})
            elif isinstance(value, list):
                changes.append({"label": label, "text": ", ".join(map(str, value))})
            else:
                changes.append({"label": label, "text": str(value)})
        rows.append({"event": event, "action": _ACTIONS.get(event.action, event.action), "changes": changes})
    return rows


def _history_context(customer: Customer) -> dict:
    events = selectors.customer_history(customer)
    shown = list(events[: HISTORY_LIMIT + 1])
    return {"history": _history_rows(shown[:HISTORY_LIMIT]), "history_more": len(shown) > HISTORY_LIMIT}


@login_required
def customer_detail(request, pk: int):
    customer = get_object_or_404(Customer.objects.select_related("payment_terms"), pk=pk)
    open_invoices = (
        customer.invoices.filter(status__in=OPEN_INVOICE_STATES, kind__in=selectors.OPEN_ITEM_KINDS)
        .annotate(open_balance=F("gross_total") - F("amount_paid"))
        .order_by("due_date", "pk")
    )
    context = {
        "customer": customer,
        "account": selectors.customer_account(customer),
        "contacts": customer.contacts.all(),
        "terms_text": customer.payment_terms.text(customer.currency),
        "open_invoices": open_invoices[:10],
        "recent_invoices": customer.invoices.order_by(F("issue_date").desc(nulls_first=True), "-pk")[:10],
        "recent_orders": customer.orders.order_by("-order_date", "-pk")[:10],
        "recent_payments": customer.payments.order_by("-received_on", "-pk")[:10],
        "notes_form": CustomerNotesForm(initial={"notes": customer.notes}),
        "today": timezone.localdate(),
        **_history_context(customer),
    }
    return render(request, "billing/customer_detail.html", context)


@login_required
@require_POST
def customer_notes(request, pk: int):
    """Save the notes from the customer page (audited like any change); htmx swaps the card in place."""
    customer = get_object_or_404(Customer, pk=pk)
    form = CustomerNotesForm(request.POST)
    saved = False
    if form.is_valid():
        try:
            customer = services.customer_update(customer=customer, actor=request.user, notes=form.cleaned_data["notes"])
        except (DomainError, ValidationError) as e:
            form_errors_from(form, e)
        else:
            saved = True
    if not request.htmx:
        if saved:
            messages.success(request, "Notes saved.")
        else:
            messages.error(request, " ".join(m for errors in form.errors.values() for m in errors))
        return redirect(customer)
    context = {"customer": customer, "notes_form": form, "notes_saved": saved, **_history_context(customer)}
    return render(request, "billing/_customer_notes_saved.html", context)


def _customer_form_page(request, *, customer: Customer | None, save):
    """The create and edit pages: the customer form and its contacts table, saved in one service call."""
    instance = Customer.objects.get(pk=customer.pk) if customer else None
    # The form gets its own copy: a bound ModelForm writes the posted values onto its instance.
    form = CustomerForm(request.POST or None, instance=instance)
    # A post without the contacts table (a script, an old form) leaves the contacts as they are.
    edits_contacts = request.method == "POST" and f"{CONTACTS_PREFIX}-TOTAL_FORMS" in request.POST
    contacts = contact_formset(request.POST if edits_contacts else None, customer=customer)
    if request.method == "POST":
        form_ok, contacts_ok = form.is_valid(), not edits_contacts or contacts.is_valid()  # all errors at once
        if form_ok and contacts_ok:
            try:
                saved = save(form.cleaned_data, contacts.contact_rows() if edits_contacts else None)
            except ValidationFailed as e:
                if "contacts" in e.details:
                    contacts.add_service_errors(e.details["contacts"])
                form_errors_from(form, e)
            except (DomainError, ValidationError) as e:
                form_errors_from(form, e)
            else:
                return saved
    form.focus_first_error()
    return render(
        request,
        "billing/customer_form.html",
        {"form": form, "contacts": contacts, "customer": customer},
    )


@login_required
def customer_create(request):
    def save(fields, contacts):
        customer = services.customer_create(actor=request.user, contacts=contacts, **fields)
        messages.success(request, f"Customer {customer.name} created with code {customer.code}.")
        return redirect(customer)

    return _customer_form_page(request, customer=None, save=save)


@login_required
def customer_update(request, pk: int):
    customer = get_object_or_404(Customer, pk=pk)

    def save(fields, contacts):
        saved = services.customer_update(
            customer=Customer(pk=customer.pk), actor=request.user, contacts=contacts, **fields
        )
        messages.success(request, f"Customer {saved.name} saved.")
        return redirect(saved)

    return _customer_form_page(request, customer=customer, save=save)
