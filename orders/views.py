"""Order pages: list, entry, detail and the lifecycle actions."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Count, Q
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from billing.errors import DomainError
from billing.views import filter_values, form_errors_from, run_action, sorted_page

from . import selectors, services
from .forms import OrderCancelForm, OrderForm, OrderLineFormSet, OrderListFilter, entry_started_at, entry_token
from .models import ORDER_TRANSITIONS, Order, OrderChannel, OrderStatus


@login_required
def order_list(request):
    filters = OrderListFilter(request.GET or None)
    data = filter_values(filters)
    qs = selectors.order_list().annotate(line_count=Count("lines"))
    if q := data.get("q"):
        qs = qs.filter(
            Q(number__icontains=q)
            | Q(customer_reference__icontains=q)
            | Q(customer__name__icontains=q)
            | Q(customer__code__icontains=q)
        )
    if status := data.get("status"):
        qs = qs.filter(status=status)
    if customer := data.get("customer"):
        qs = qs.filter(customer=customer)
    context = sorted_page(
        request,
        qs,
        sorts={
            "number": ("number",),
            "date": ("order_date",),
            "customer": ("customer__name",),
            "status": ("status",),
            "total": ("gross_total",),
        },
        default="-date",
    )
    context.update(filters=filters, filtered=bool(data))
    return render(request, "orders/order_list.html", context)


@login_required
def order_create(request):
    if request.method == "POST":
        form = OrderForm(request.POST)
        formset = OrderLineFormSet(request.POST, prefix="lines")
        if form.is_valid() and formset.is_valid():
            lines = formset.lines()
            if not lines:
                form.add_error(None, "Add at least one line: choose a product and a quantity.")
            else:
                try:
                    order = services.order_create(
                        customer=form.cleaned_data["customer"],
                        lines=lines,
                        actor=request.user,
                        customer_reference=form.cleaned_data["customer_reference"],
                        order_date=form.cleaned_data["order_date"],
                        notes=form.cleaned_data["notes"],
                        channel=OrderChannel.UI,
                        entry_started_at=entry_started_at(form.cleaned_data["entry_token"]),
                    )
                except DomainError as e:
                    form_errors_from(form, e)
                else:
                    messages.success(request, f"Order {order.number} created as a draft.")
                    return redirect(order)
    else:
        initial = {"order_date": timezone.localdate(), "entry_token": entry_token()}
        if (customer := request.GET.get("customer", "")).isdigit():
            initial["customer"] = int(customer)
        form = OrderForm(initial=initial)
        formset = OrderLineFormSet(prefix="lines")
    return render(request, "orders/order_form.html", {"form": form, "formset": formset})


@login_required
def order_detail(request, pk: int):
    order = get_object_or_404(selectors.order_detail_queryset(), pk=pk)
    allowed = ORDER_TRANSITIONS[order.status]
    invoices = (
        order.customer.invoices.filter(lines__order_line__order=order)
        .distinct()
        .order_by("pk")
        .only("pk", "number", "status", "kind", "gross_total", "currency")
    )
    context = {
        "order": order,
        "lines": order.lines.all(),
        "events": order.events.all(),
        "invoices": invoices,
        "can_confirm": OrderStatus.CONFIRMED in allowed,
        # invoiced -> fulfilled exists only for invoicing to reopen an order; staff fulfil confirmed orders.
        "can_fulfil": OrderStatus.FULFILLED in allowed and order.status == OrderStatus.CONFIRMED,
        "can_invoice": OrderStatus.INVOICED in allowed,
        "can_cancel": OrderStatus.CANCELLED in allowed,
        "cancel_form": OrderCancelForm(),
    }
    return render(request, "orders/order_detail.html", context)


@login_required
@require_POST
def order_confirm(request, pk: int):
    order = get_object_or_404(Order, pk=pk)
    run_action(request, lambda: services.order_confirm(order=order, actor=request.user), f"Order {order} confirmed.")
    return redirect(order)


@login_required
@require_POST
def order_fulfil(request, pk: int):
    order = get_object_or_404(Order, pk=pk)
    run_action(
        request,
        lambda: services.order_fulfill(order=order, actor=request.user),
        f"Order {order} fulfilled: it is ready to invoice.",
    )
    return redirect(order)


@login_required
@require_POST
def order_cancel(request, pk: int):
    order = get_object_or_404(Order, pk=pk)
    form = OrderCancelForm(request.POST)
    reason = form.cleaned_data["reason"] if form.is_valid() else ""
    run_action(
        request,
        lambda: services.order_cancel(order=order, actor=request.user, reason=reason),
        f"Order {order} cancelled.",
    )
    return redirect(order)
