"""Order pages: list, the keyboard-first entry page and its htmx endpoints, detail and the lifecycle
actions, the product catalogue, and the CSV import."""

from decimal import Decimal
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.db import IntegrityError
from django.db.models import Count, Q
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRedirect

from billing.errors import DomainError
from billing.models import Customer
from billing.views import filter_values, form_errors_from, run_action, sorted_page

from . import imports, selectors, services
from .forms import (
    MAX_LINES,
    CreditOverrideForm,
    EntryRow,
    OrderCancelForm,
    OrderEntryForm,
    OrderImportForm,
    OrderLineForm,
    OrderLines,
    OrderListFilter,
    ProductForm,
    ProductListFilter,
    as_id,
    customer_label,
    entry_started_at,
    entry_token,
)
from .models import ORDER_TRANSITIONS, Order, OrderChannel, OrderImport, OrderImportStatus, OrderStatus, Product


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


# --- Order entry -------------------------------------------------------------------------------


def _customer_with_exposure(pk) -> Customer | None:
    pk = as_id(pk)
    if pk is None:
        return None
    return selectors.customer_with_exposure(Customer.objects.filter(pk=pk).select_related("payment_terms")).first()


def _totals_context(customer: Customer | None, lines: OrderLines) -> dict:
    """Live totals: each complete line's net and the order's net, tax per rate and gross, by the
    service's own arithmetic (billing.money); plus where the order leaves the customer's credit."""
    complete = lines.valid_lines()
    currency = customer.currency if customer else "EUR"
    nets, totals = services.order_quote(currency=currency, lines=[line for _, line in complete])
    for (row, _), net in zip(complete, nets, strict=True):
        row.net = net
    credit = None
    if customer is not None and customer.credit_limit is not None:
        headroom = customer.credit_limit - customer.exposure
        after = headroom - totals.gross
        credit = {"limit": customer.credit_limit, "headroom": headroom, "after": after, "over_by": -after}
    return {
        "totals": totals,
        "currency": customer.currency if customer else "",
        "line_count": len(complete),
        "credit": credit,
        "rows": lines.rows,
    }


def _initial_entry(request) -> tuple[OrderEntryForm, OrderLines, list[str]]:
    """The empty entry page, or one pre-filled from ?customer= or ?duplicate=<order id>."""
    initial = {"order_date": timezone.localdate(), "entry_token": entry_token()}
    lines, notices = None, []
    if (source := as_id(request.GET.get("duplicate"))) is not None:
        original = (
            Order.objects.select_related("customer")
            .prefetch_related("lines__product__tax_rate")
            .filter(pk=source)
            .first()
        )
        if original is None:
            raise Http404("No such order to duplicate.")
        initial.update(customer=original.customer.pk, customer_search=customer_label(original.customer))
        lines, notices = _duplicate_lines(original, may_price=services.may_override_price(request.user))
    elif (customer_id := as_id(request.GET.get("customer"))) is not None:
        customer = Customer.objects.filter(pk=customer_id).first()
        if customer is not None:
            initial.update(customer=customer.pk, customer_search=customer_label(customer))
    return OrderEntryForm(initial=initial), OrderLines(initial=lines), notices


def _duplicate_lines(original: Order, *, may_price: bool) -> tuple[list[dict], list[str]]:
    lines, notices = [], []
    for line in original.lines.all():
        product = line.product
        if not product.active:
            notices.append(f"Line {line.position} ({product.sku}) was left out: the product is inactive now.")
            continue
        spec = {"product": product, "quantity": line.quantity, "discount_percent": line.discount_percent}
        if line.unit_price != product.unit_price:
            if may_price:
                spec["unit_price"] = line.unit_price
                notices.append(
                    f"Line {line.position} ({product.sku}) keeps its agreed price {line.unit_price} "
                    f"(list price {product.unit_price})."
                )
            else:
                notices.append(
                    f"Line {line.position} ({product.sku}) had the price {line.unit_price}; "
                    f"the list price {product.unit_price} applies now."
                )
        lines.append(spec)
    if not lines:
        lines = [{}]
    return lines, notices


@login_required
def order_create(request):
    refusal = None
    notices: list[str] = []
    if request.method == "POST":
        form = OrderEntryForm(request.POST)
        lines = OrderLines(request.POST)
        confirm = request.POST.get("action") == "confirm"
        lines_valid = lines.is_valid()
        if lines.too_many:
            form.add_error(None, f"An order holds at most {MAX_LINES} lines.")
        if form.is_valid() and lines_valid:
            specs = lines.lines()
            if not specs:
                form.add_error(None, "Add at least one line: choose a product and a quantity.")
            else:
                fields = {
                    "customer": form.cleaned_data["customer"],
                    "lines": specs,
                    "actor": request.user,
                    "customer_reference": form.cleaned_data["customer_reference"],
                    "order_date": form.cleaned_data["order_date"],
                    "notes": form.cleaned_data["notes"],
                    "channel": OrderChannel.UI,
                    "entry_started_at": entry_started_at(form.cleaned_data["entry_token"]),
                }
                try:
                    if confirm:
                        order = services.order_create_and_confirm(
                            override_reason=form.cleaned_data["override_reason"], **fields
                        )
                    else:
                        order = services.order_create(**fields)
                except DomainError as e:
                    refusal = e
                    form.add_error(None, e.message)
                else:
                    verb = "confirmed" if confirm else "saved as a draft"
                    messages.success(request, f"Order {order.number} {verb}: {order.gross_total} {order.currency}.")
                    return redirect(order)
    else:
        form, lines, notices = _initial_entry(request)
    customer = _customer_with_exposure(form["customer"].value())
    context = {
        "form": form,
        "lines": lines,
        "customer": customer,
        "notices": notices,
        "line_errors": lines.error_count() if lines.data is not None else 0,
        "may_override_price": services.may_override_price(request.user),
        "credit_refused": getattr(refusal, "code", "") == "credit_limit_exceeded",
        "may_override_credit": services.may_override_credit(request.user),
        "refusal": refusal,
        **_totals_context(customer, lines),
    }
    return render(request, "orders/order_entry.html", context)


@login_required
@require_GET
def order_entry_customers(request):
    """Customer suggestions for the entry page: code, name, hold and credit headroom."""
    customers = selectors.customer_search(request.GET.get("q", "")[:100])
    context = {"customers": customers, "q": request.GET.get("q", "")[:100].strip()}
    return render(request, "orders/_customer_options.html", context)


@login_required
@require_GET
def order_entry_products(request):
    """Product suggestions for one line: active products only, since only those can be ordered."""
    line = as_id(request.GET.get("line"), digits=6)
    if line is None:
        return HttpResponse("Bad line number.", status=400)
    products = selectors.product_search(request.GET.get("q", "")[:100])
    context = {"products": products, "line": line, "q": request.GET.get("q", "")[:100].strip()}
    return render(request, "orders/_product_options.html", context)


@login_required
@require_GET
def order_entry_line(request):
    """A blank line for the entry page, numbered `index` (added without reloading the page)."""
    index = as_id(request.GET.get("index"), digits=6)
    if index is None:
        return HttpResponse("Bad line number.", status=400)
    row = EntryRow(index, OrderLineForm(prefix=f"lines-{index}"))
    context = {"row": row, "position": row.index + 1, "may_override_price": services.may_override_price(request.user)}
    return render(request, "orders/_entry_line.html", context)


@login_required
@require_POST
def order_entry_totals(request):
    """The totals panel for the entry form as it stands (lines may be incomplete), plus each line's
    net out of band. Nothing is saved."""
    customer = _customer_with_exposure(request.POST.get("customer"))
    context = _totals_context(customer, OrderLines(request.POST))
    context.update(customer=customer, oob=True)
    return render(request, "orders/_entry_totals.html", context)


# --- Order detail and actions ------------------------------------------------------------------


def _detail_context(request, order: Order, *, override_form: CreditOverrideForm | None = None) -> dict:
    allowed = ORDER_TRANSITIONS[order.status]
    can_confirm = OrderStatus.CONFIRMED in allowed
    invoices = (
        order.customer.invoices.filter(lines__order_line__order=order)
        .distinct()
        .order_by("pk")
        .only("pk", "number", "status", "kind", "gross_total", "currency")
    )
    credit = selectors.order_credit_check(order) if can_confirm and order.status == OrderStatus.DRAFT else None
    return {
        "order": order,
        "lines": order.lines.all(),
        "events": order.events.all(),
        "invoices": invoices,
        "can_confirm": can_confirm,
        # invoiced -> fulfilled exists only for invoicing to reopen an order; staff fulfil confirmed orders.
        "can_fulfil": OrderStatus.FULFILLED in allowed and order.status == OrderStatus.CONFIRMED,
        "can_invoice": OrderStatus.INVOICED in allowed,
        "can_cancel": OrderStatus.CANCELLED in allowed,
        "cancel_form": OrderCancelForm(),
        "credit": credit,
        "may_override_credit": services.may_override_credit(request.user),
        "override_form": override_form or CreditOverrideForm(),
    }


@login_required
def order_detail(request, pk: int):
    order = get_object_or_404(selectors.order_detail_queryset(), pk=pk)
    return render(request, "orders/order_detail.html", _detail_context(request, order))


@login_required
@require_POST
def order_confirm(request, pk: int):
    order = get_object_or_404(Order, pk=pk)
    run_action(request, lambda: services.order_confirm(order=order, actor=request.user), f"Order {order} confirmed.")
    return redirect(order)


@login_required
@require_POST
def order_override_confirm(request, pk: int):
    """Confirm over the credit limit with a reason (managers with override_credit_limit)."""
    order = get_object_or_404(Order, pk=pk)
    form = CreditOverrideForm(request.POST)
    if form.is_valid():
        reason = form.cleaned_data["reason"]
        run_action(
            request,
            lambda: services.order_confirm(order=order, actor=request.user, override_reason=reason),
            f"Order {order} confirmed.",
        )
        return redirect(order)
    order = get_object_or_404(selectors.order_detail_queryset(), pk=pk)
    context = _detail_context(request, order, override_form=form)
    return render(request, "orders/order_detail.html", context)


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


# --- Products ----------------------------------------------------------------------------------


@login_required
def product_list(request):
    filters = ProductListFilter(request.GET or None)
    data = filter_values(filters)
    qs = selectors.product_list()
    if q := data.get("q"):
        qs = qs.filter(Q(sku__icontains=q) | Q(name__icontains=q))
    if status := data.get("status"):
        qs = qs.filter(active=status == "active")
    if tax_rate := data.get("tax_rate"):
        qs = qs.filter(tax_rate=tax_rate)
    context = sorted_page(
        request,
        qs,
        sorts={
            "sku": ("sku",),
            "name": ("name",),
            "price": ("unit_price",),
            "tax": ("tax_rate__rate",),
            "active": ("active", "sku"),
        },
        default="sku",
    )
    context.update(filters=filters, filtered=bool(data))
    return render(request, "orders/product_list.html", context)


_PRODUCT_FIELDS = ("sku", "name", "description", "unit", "unit_price", "tax_rate", "active")


def _product_form(request, product: Product | None):
    instance = Product.objects.get(pk=product.pk) if product else None
    form = ProductForm(request.POST or None, instance=instance)
    if request.method == "POST" and form.is_valid():
        fields = {name: form.cleaned_data[name] for name in _PRODUCT_FIELDS}
        try:
            if product is None:
                saved = services.product_create(actor=request.user, **fields)
            else:
                saved = services.product_update(product=product, actor=request.user, **fields)
        except (DomainError, ValidationError) as e:
            form_errors_from(form, e)
        except IntegrityError:
            # Two people saving the same new SKU at once: the unique constraint let one through.
            form.add_error("sku", "Another product with this SKU was saved a moment ago; choose another SKU.")
        else:
            messages.success(request, f"Product {saved.sku} {'created' if product is None else 'saved'}.")
            return redirect(f"{reverse('product-list')}?{urlencode({'q': saved.sku})}")
    return render(request, "orders/product_form.html", {"form": form, "product": product})


@login_required
def product_create(request):
    return _product_form(request, None)


@login_required
def product_update(request, pk: int):
    return _product_form(request, get_object_or_404(Product, pk=pk))


# --- CSV import --------------------------------------------------------------------------------


def _import_of(request, pk: int) -> OrderImport:
    # An import belongs to whoever uploaded it: nobody else sees its rows or runs it.
    return get_object_or_404(OrderImport, pk=pk, created_by=request.user)


@login_required
def order_import(request):
    form = OrderImportForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        if upload.size > imports.MAX_BYTES:
            form.add_error("file", f"The file is larger than {imports.MAX_BYTES // (1024 * 1024)} MB; split it.")
        else:
            try:
                batch = imports.order_import_create(actor=request.user, filename=upload.name, raw=upload.read())
            except DomainError as e:
                form.add_error("file", e.message)
            else:
                return redirect(batch)
    recent = OrderImport.objects.filter(created_by=request.user).defer("payload", "results")[:5]
    context = {
        "form": form,
        "recent": recent,
        "max_rows": imports.MAX_ROWS,
        "max_mb": imports.MAX_BYTES // (1024 * 1024),
        "example": imports.EXAMPLE_CSV,
    }
    return render(request, "orders/import_upload.html", context)


@login_required
@require_GET
def order_import_example(request):
    response = HttpResponse(imports.EXAMPLE_CSV, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="orders-example.csv"'
    return response


def _import_context(batch: OrderImport) -> dict:
    payload = batch.payload or {}
    issues = payload.get("issues", [])
    orders = payload.get("orders", [])
    failed = [result for result in batch.results if "error" in result]
    created = [result for result in batch.results if "number" in result]
    totals: dict[str, Decimal] = {}
    for result in created:
        totals[result["currency"]] = totals.get(result["currency"], Decimal("0")) + Decimal(result["gross"])
    return {
        "batch": batch,
        "issues": issues[: imports.MAX_ISSUES_SHOWN],
        "issues_hidden": max(0, len(issues) - imports.MAX_ISSUES_SHOWN),
        "orders": orders[:100],
        "orders_hidden": max(0, len(orders) - 100),
        "ignored_columns": payload.get("ignored_columns", []),
        "skipped": batch.order_count - batch.importable_count,
        "percent": 100 if not batch.importable_count else round(100 * batch.processed_count / batch.importable_count),
        "created": created[:100],
        "created_hidden": max(0, len(created) - 100),
        "failed": failed[:100],
        "created_totals": sorted(totals.items()),
    }


@login_required
def order_import_detail(request, pk: int):
    batch = _import_of(request, pk)
    return render(request, "orders/import_detail.html", _import_context(batch))


@login_required
@require_POST
def order_import_run(request, pk: int):
    """Import the next chunk; htmx gets the progress panel back (which asks for the next chunk
    until done), a plain form post the page."""
    batch = _import_of(request, pk)
    error = None
    try:
        batch = imports.order_import_run(
            batch=batch, actor=request.user, include_invalid_file=request.POST.get("include_invalid") == "1"
        )
    except DomainError as e:
        error = e.message
    if request.htmx and (error or batch.status != OrderImportStatus.DONE):
        # Still running: the progress panel, which asks for the next chunk as it loads.
        context = {**_import_context(batch), "error": error, "auto": error is None}
        return render(request, "orders/_import_progress.html", context)
    if error:
        messages.error(request, error)
    elif batch.status == OrderImportStatus.DONE:
        messages.success(request, f"Imported {batch.created_count} draft order(s) from {batch.filename}.")
    if request.htmx:
        return HttpResponseClientRedirect(batch.get_absolute_url())
    return redirect(batch)
