"""Payment pages: list, detail, recording a payment, allocating left-over credit, refunding it,
reversing a payment; customer statements."""

from datetime import date
from decimal import Decimal, InvalidOperation

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Case, DecimalField, F, Q, Value, When
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from billing.errors import DomainError
from billing.models import Customer, PaymentMethod
from billing.views import filter_values, form_errors_from, sorted_page
from invoicing.models import OPEN_STATUSES, Invoice, InvoiceKind

from . import services, statements
from .allocation_plan import AllocationPlan, allocation_plan, open_invoices, shown_allocations, typed_amounts
from .forms import PaymentForm, PaymentListFilter, RefundForm, ReverseForm
from .models import Payment, PaymentSource, PaymentStatus


@login_required
def payment_list(request):
    filters = PaymentListFilter(request.GET or None)
    data = filter_values(filters)
    qs = Payment.objects.select_related("customer").annotate(
        unallocated=Case(
            When(status=PaymentStatus.REVERSED, then=Value(Decimal("0"))),
            default=F("amount") - F("allocated_amount") - F("refunded_amount"),
            output_field=DecimalField(max_digits=14, decimal_places=2),
        )
    )
    if q := data.get("q"):
        qs = qs.filter(
            Q(number__icontains=q)
            | Q(reference__icontains=q)
            | Q(customer__name__icontains=q)
            | Q(customer__code__icontains=q)
        )
    if method := data.get("method"):
        qs = qs.filter(method=method)
    if credit := data.get("credit"):
        qs = qs.filter(unallocated__gt=0) if credit == "unallocated" else qs.filter(unallocated=0)
    if customer := data.get("customer"):
        qs = qs.filter(customer=customer)
    if source := data.get("source"):
        qs = qs.filter(source=source)
    if received_from := data.get("received_from"):
        qs = qs.filter(received_on__gte=received_from)
    if received_to := data.get("received_to"):
        qs = qs.filter(received_on__lte=received_to)
    context = sorted_page(
        request,
        qs,
        sorts={
            "number": ("number",),
            "received": ("received_on",),
            "customer": ("customer__name",),
            "method": ("method",),
            "amount": ("amount",),
            "unallocated": ("unallocated",),
            "source": ("source",),
        },
        default="-received",
    )
    context.update(filters=filters, filtered=bool(data))
    return render(request, "payments/payment_list.html", context)


@login_required
def payment_detail(request, pk: int):
    payment = get_object_or_404(Payment.objects.select_related("customer", "created_by"), pk=pk)
    open_invoices = Invoice.objects.filter(
        customer_id=payment.customer_id, status__in=OPEN_STATUSES, currency=payment.currency
    ).exclude(kind=InvoiceKind.CREDIT_NOTE)
    allocations = list(payment.allocations.select_related("invoice", "created_by").order_by("created_at", "pk"))
    context = {
        "payment": payment,
        "allocations": allocations,
        "discount_total": sum((a.discount for a in allocations if a.reversed_at is None), Decimal("0")),
        "refunds": payment.refunds.select_related("created_by"),
        "can_allocate": payment.unallocated_amount > 0 and open_invoices.exists(),
        "can_refund": not payment.is_reversed and payment.unallocated_amount > 0,
        "can_reverse": not payment.is_reversed and payment.refunded_amount == 0,
    }
    return render(request, "payments/payment_detail.html", context)


def _int_param(request, name: str) -> int | None:
    value = request.GET.get(name, "")
    return int(value) if value.isdigit() else None


def _initial(request) -> tuple[dict, Customer | None]:
    """Pre-fill the form from ?customer= and ?invoice= (from a customer or an invoice page)."""
    initial: dict = {"received_on": timezone.localdate()}
    customer = None
    if (invoice_id := _int_param(request, "invoice")) is not None:
        invoice = (
            Invoice.objects.select_related("customer__payment_terms")
            .filter(pk=invoice_id, status__in=OPEN_STATUSES)
            .exclude(kind=InvoiceKind.CREDIT_NOTE)
            .first()
        )
        if invoice is not None:
            customer = invoice.customer
            initial.update(invoice=invoice.pk, amount=invoice.balance, currency=invoice.currency)
    if customer is None and (customer_id := _int_param(request, "customer")) is not None:
        customer = Customer.objects.select_related("payment_terms").filter(pk=customer_id).first()
    if customer is not None:
        initial["customer"] = customer.pk
        initial.setdefault("currency", customer.currency)
        accepted = customer.payment_terms.accepted_methods or []
        if accepted:
            initial["method"] = accepted[0]
    return initial, customer


def _posted_customer(data) -> Customer | None:
    posted = data.get("customer", "")
    return Customer.objects.select_related("payment_terms").filter(pk=int(posted)).first() if posted.isdigit() else None


def _plan_from(data, customer: Customer | None, form: PaymentForm | None = None) -> AllocationPlan | None:
    """The allocation plan for the form data as it stands (the preview), or None without a customer."""
    if customer is None:
        return None
    amount = invoice = None
    if form is not None and form.is_bound and form.is_valid():
        amount, invoice = form.cleaned_data["amount"], form.cleaned_data["invoice"]
    else:
        try:
            amount = Decimal(data.get("amount", "").strip())
            amount = amount if amount.is_finite() and amount > 0 else None
        except InvalidOperation:
            amount = None
        if (raw := data.get("invoice", "")).isdigit():
            invoice = open_invoices(customer).filter(pk=int(raw)).first()
    return allocation_plan(
        customer=customer,
        amount=amount,
        invoice=invoice,
        typed=typed_amounts(data),
        reference=str(data.get("reference", "")),
    )


@login_required
def payment_create(request):
    if request.method != "POST":
        initial, customer = _initial(request)
        form = PaymentForm(initial=initial, customer=customer)
        plan = _plan_from({k: str(v) for k, v in initial.items()}, customer) if customer else None
        return render(request, "payments/payment_form.html", {"form": form, "plan": plan})

    customer = _posted_customer(request.POST)
    form = PaymentForm(request.POST, customer=customer)
    plan = _plan_from(request.POST, customer, form)
    shown = shown_allocations(request.POST)
    if form.is_valid() and plan is not None and not plan.valid:
        form.add_error(None, "Check the allocation: " + " ".join(plan.errors or ["an amount is not right."]))
    elif form.is_valid() and plan is not None and shown is not None and shown != plan.as_shown():
        # Balances moved between the preview and the click: show the new plan, save nothing.
        form.add_error(
            None, "The allocation changed since it was shown (a balance moved): check it below and record again."
        )
    elif form.is_valid():
        data = form.cleaned_data
        allocations = plan.allocations() if plan is not None else None
        try:
            # Exactly the plan that was previewed; nothing allocated is left as credit, not re-planned.
            payment = services.payment_record(
                customer=data["customer"],
                method=data["method"],
                amount=data["amount"],
                currency=data["currency"],
                received_on=data["received_on"],
                reference=data["reference"],
                source=PaymentSource.UI,
                allocations=allocations or None,
                auto_allocate=plan is None,
                match_reference=plan is None,
                actor=request.user,
            )
        except DomainError as e:
            form_errors_from(form, e)
        else:
            messages.success(
                request,
                f"Payment {payment.number} of {payment.amount:,.2f} {payment.currency} recorded: "
                f"{payment.allocated_amount:,.2f} allocated, {payment.unallocated_amount:,.2f} left as credit.",
            )
            if not payment.method_accepted:
                terms = payment.customer.payment_terms
                messages.warning(
                    request,
                    f"{PaymentMethod(payment.method).label} is not an accepted payment method under "
                    f"{terms.name} for {payment.customer.name}. The payment is recorded; check it with the customer.",
                )
            return redirect(payment)
    return render(request, "payments/payment_form.html", {"form": form, "plan": plan})


@login_required
def payment_allocation_preview(request):
    """htmx: the allocation table of the record-payment form for the amounts as typed so far."""
    customer = _posted_customer(request.GET)
    plan = _plan_from(request.GET, customer)
    return render(request, "payments/_allocation_preview.html", {"plan": plan, "customer": customer})


@login_required
@require_POST
def payment_allocate(request, pk: int):
    """Spend a payment's unallocated credit on the customer's open invoices, oldest due first."""
    payment = get_object_or_404(Payment, pk=pk)
    try:
        created = services.payment_allocate(payment=payment, actor=request.user)
    except DomainError as e:
        messages.error(request, e.message)
    else:
        if created:
            total = sum(a.amount for a in created)
            messages.success(request, f"{total:,.2f} {payment.currency} allocated to {len(created)} invoice(s).")
        else:
            messages.info(request, "Nothing to allocate: no open invoice in this currency, or no credit left.")
    return redirect(payment)


@login_required
def payment_refund(request, pk: int):
    """Pay back part or all of a payment's unallocated credit."""
    payment = get_object_or_404(Payment.objects.select_related("customer"), pk=pk)
    if request.method == "POST":
        form = RefundForm(request.POST)
        if form.is_valid():
            data = form.cleaned_data
            try:
                refund = services.payment_refund(
                    payment=payment,
                    amount=data["amount"],
                    reason=data["reason"],
                    method=data["method"],
                    reference=data["reference"],
                    refunded_on=data["refunded_on"],
                    source=PaymentSource.UI,
                    actor=request.user,
                )
            except DomainError as e:
                form_errors_from(form, e)
            else:
                messages.success(request, f"Refunded {refund.amount:,.2f} {refund.currency} of {payment}.")
                return redirect(payment)
    else:
        form = RefundForm(
            initial={
                "amount": payment.unallocated_amount,
                "method": payment.method,
                "refunded_on": timezone.localdate(),
            }
        )
    return render(request, "payments/payment_refund.html", {"payment": payment, "form": form})


@login_required
def payment_reverse(request, pk: int):
    """Reverse a payment that did not hold (bounced check, chargeback); its invoices reopen."""
    payment = get_object_or_404(Payment.objects.select_related("customer"), pk=pk)
    if request.method == "POST":
        form = ReverseForm(request.POST)
        if form.is_valid():
            try:
                services.payment_reverse(payment=payment, reason=form.cleaned_data["reason"], actor=request.user)
            except DomainError as e:
                form_errors_from(form, e)
            else:
                messages.success(request, f"Payment {payment} reversed; the invoices it paid are open again.")
                return redirect(payment)
    else:
        form = ReverseForm()
    allocations = payment.allocations.filter(reversed_at__isnull=True).select_related("invoice")
    return render(
        request, "payments/payment_reverse.html", {"payment": payment, "form": form, "allocations": allocations}
    )


@login_required
def customer_statement(request, pk: int):
    """The customer's statement as a PDF, as of ?as_of=YYYY-MM-DD (default today)."""
    customer = get_object_or_404(Customer, pk=pk)
    as_of = timezone.localdate()
    if raw := request.GET.get("as_of", "").strip():
        try:
            as_of = date.fromisoformat(raw)
        except ValueError:
            messages.error(request, f"“{raw[:20]}” is not a date: use YYYY-MM-DD.")
            return redirect(customer)
    data = statements.statement_pdf(customer, as_of=as_of)
    response = HttpResponse(data, content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="statement-{customer.code}-{as_of:%Y-%m-%d}.pdf"'
    return response
