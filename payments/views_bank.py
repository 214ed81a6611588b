"""Bank pages: accounts and their CSV mapping, statement upload, a statement with its lines and
matching progress, and the queue of lines waiting for a person."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Count, Q
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from billing.errors import DomainError
from billing.models import Customer
from billing.views import filter_values, form_errors_from, sorted_page
from invoicing.models import Invoice

from . import bank
from .forms_bank import (
    BankAccountForm,
    BankLineFilter,
    BankLineIgnoreForm,
    BankLineMatchForm,
    QueueFilter,
    StatementListFilter,
    StatementUploadForm,
)
from .models import QUEUE_STATUSES, BankAccount, BankLine, BankLineStatus, BankStatement, BankStatementStatus


def _queue_count() -> int:
    return BankLine.objects.filter(status__in=QUEUE_STATUSES).count()


# --- Accounts ------------------------------------------------------------------------------------


@login_required
def bank_account_list(request):
    qs = BankAccount.objects.annotate(statement_count=Count("statements"))
    context = sorted_page(request, qs, sorts={"name": ("name",), "iban": ("iban",)}, default="name")
    return render(request, "payments/bank_account_list.html", context)


def _account_form(request, account: BankAccount | None):
    form = BankAccountForm(request.POST or None, instance=account)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            saved = bank.bank_account_save(
                account=account,
                name=data["name"],
                iban=data["iban"],
                currency=data["currency"],
                csv_mapping=form.mapping(),
                actor=request.user,
            )
        except DomainError as e:
            form_errors_from(form, e)
        else:
            messages.success(request, f"Bank account {saved.name} saved.")
            return redirect("bank-account-list")
    return render(request, "payments/bank_account_form.html", {"form": form, "account": account})


@login_required
def bank_account_create(request):
    return _account_form(request, None)


@login_required
def bank_account_edit(request, pk: int):
    return _account_form(request, get_object_or_404(BankAccount, pk=pk))


# --- Statements ----------------------------------------------------------------------------------


@login_required
def bank_statement_list(request):
    filters = StatementListFilter(request.GET or None)
    data = filter_values(filters)
    qs = BankStatement.objects.select_related("account").annotate(
        matched=Count("lines", filter=Q(lines__status=BankLineStatus.MATCHED)),
        queued=Count("lines", filter=Q(lines__status__in=QUEUE_STATUSES)),
    )
    if q := data.get("q"):
        qs = qs.filter(Q(filename__icontains=q) | Q(statement_ref__icontains=q))
    if account := data.get("account"):
        qs = qs.filter(account=account)
    if status := data.get("status"):
        qs = qs.filter(status=status)
    context = sorted_page(
        request,
        qs,
        sorts={
            "imported": ("created_at",),
            "file": ("filename",),
            "account": ("account__name",),
            "lines": ("total_lines",),
        },
        default="-imported",
    )
    context.update(filters=filters, filtered=bool(data), queue_count=_queue_count())
    return render(request, "payments/bank_statement_list.html", context)


@login_required
def bank_statement_upload(request):
    form = StatementUploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        if upload.size > bank.MAX_BYTES:
            form.add_error("file", f"The file is larger than {bank.MAX_BYTES // (1024 * 1024)} MB; split it.")
        else:
            try:
                statement, created = bank.bank_statement_import(
                    account=form.cleaned_data["account"], filename=upload.name, raw=upload.read(), actor=request.user
                )
            except DomainError as e:
                form.add_error("file", e.message)
                for detail in e.details.get("file", [])[1:] if isinstance(e.details.get("file"), list) else []:
                    form.add_error("file", detail)
            else:
                if not created:
                    messages.info(
                        request,
                        f"This file was imported already on {statement.created_at:%d %b %Y %H:%M}; "
                        "nothing new was created.",
                    )
                elif statement.status == BankStatementStatus.MATCHING and statement.total_lines <= bank.INLINE_LINES:
                    statement = bank.statement_match(statement_id=statement.pk, actor=request.user)
                    counts = bank.statement_counts(statement)
                    messages.success(
                        request,
                        f"Imported {statement.total_lines} line(s): {counts['matched']} posted, "
                        f"{counts['suggested'] + counts['unmatched']} waiting in the queue, "
                        f"{counts['ignored']} ignored.",
                    )
                else:
                    messages.success(
                        request, f"Imported {statement.total_lines} line(s); matching runs in the background."
                    )
                return redirect(statement)
    recent = BankStatement.objects.select_related("account")[:5]
    return render(request, "payments/bank_statement_upload.html", {"form": form, "recent": recent})


def _statement_context(statement: BankStatement) -> dict:
    counts = bank.statement_counts(statement)
    return {"statement": statement, "counts": counts, "matching": statement.status == BankStatementStatus.MATCHING}


@login_required
def bank_statement_detail(request, pk: int):
    statement = get_object_or_404(BankStatement.objects.select_related("account", "created_by"), pk=pk)
    context = _statement_context(statement)
    if request.htmx and request.GET.get("progress"):
        response = render(request, "payments/bank_statement_progress.html", context)
        if not context["matching"]:
            response["HX-Refresh"] = "true"  # matching finished: reload once to show the lines' outcome
        return response
    filters = BankLineFilter(request.GET or None)
    data = filter_values(filters)
    qs = statement.lines.select_related("customer", "payment")
    if q := data.get("q"):
        qs = qs.filter(
            Q(remittance__icontains=q)
            | Q(counterparty_name__icontains=q)
            | Q(counterparty_iban__icontains=q.replace(" ", ""))
            | Q(structured_ref__icontains=q)
        )
    if status := data.get("status"):
        qs = qs.filter(status=status)
    context.update(
        sorted_page(
            request,
            qs,
            sorts={"line": ("line_no",), "date": ("booking_date",), "amount": ("amount",), "status": ("status",)},
            default="line",
        )
    )
    context.update(filters=filters, filtered=bool(data))
    return render(request, "payments/bank_statement_detail.html", context)


# --- The queue -----------------------------------------------------------------------------------


def _with_suggested_invoices(lines) -> None:
    ids = {pk for line in lines for pk in (line.suggested_invoice_ids or [])}
    invoices = Invoice.objects.in_bulk(ids) if ids else {}
    for line in lines:
        line.suggested = [invoices[pk] for pk in line.suggested_invoice_ids or [] if pk in invoices]


@login_required
def bank_queue(request):
    filters = QueueFilter(request.GET or None)
    data = filter_values(filters)
    qs = BankLine.objects.filter(status__in=QUEUE_STATUSES).select_related("customer", "statement__account")
    if q := data.get("q"):
        qs = qs.filter(
            Q(remittance__icontains=q)
            | Q(counterparty_name__icontains=q)
            | Q(counterparty_iban__icontains=q.replace(" ", ""))
            | Q(customer__name__icontains=q)
        )
    if status := data.get("status"):
        qs = qs.filter(status=status)
    if account := data.get("account"):
        qs = qs.filter(account=account)
    context = sorted_page(
        request,
        qs,
        sorts={"date": ("booking_date",), "amount": ("amount",), "payer": ("counterparty_name",)},
        default="date",
    )
    _with_suggested_invoices(context["page_obj"].object_list)
    context.update(filters=filters, filtered=bool(data))
    return render(request, "payments/bank_queue.html", context)


def _back(request, default: str):
    target = request.POST.get("next", "")
    return redirect(target if target.startswith("/") and not target.startswith("//") else default)


@login_required
@require_POST
def bank_line_match_suggestion(request, pk: int):
    """The queue's one click: post the line to what was suggested."""
    line = get_object_or_404(BankLine, pk=pk)
    try:
        line = bank.bank_line_match_suggestion(line=line, actor=request.user)
    except DomainError as e:
        messages.error(request, e.message)
    else:
        payment = line.payment
        messages.success(
            request,
            f"Line {line.statement_id}/{line.line_no} matched: payment {payment.number} of {line.amount:,.2f} "
            f"{line.currency} from {line.customer.name}.",
        )
    return _back(request, reverse("bank-queue"))


@login_required
def bank_line_detail(request, pk: int):
    """One line: what the bank said, why it was not posted, and forms to match it to a customer
    (and invoices) of one's choice or to ignore it."""
    line = get_object_or_404(BankLine.objects.select_related("statement__account", "customer", "payment"), pk=pk)
    _with_suggested_invoices([line])
    posted_customer = request.POST.get("customer", "") if request.method == "POST" else request.GET.get("customer", "")
    customer = Customer.objects.filter(pk=int(posted_customer)).first() if posted_customer.isdigit() else line.customer
    initial = {"customer": customer.pk if customer else None, "invoices": [i.pk for i in line.suggested]}
    match_form = BankLineMatchForm(
        request.POST if request.POST.get("action") == "match" else None, initial=initial, customer=customer
    )
    match_form.fields["customer"].widget.attrs.update(
        {
            "hx-get": reverse("bank-line-detail", args=[line.pk]),
            "hx-trigger": "change",
            "hx-target": "#match-form",
            "hx-select": "#match-form",
            "hx-swap": "outerHTML",
        }
    )
    ignore_form = BankLineIgnoreForm(request.POST if request.POST.get("action") == "ignore" else None)
    if request.method == "POST" and line.status in QUEUE_STATUSES:
        try:
            if request.POST.get("action") == "match" and match_form.is_valid():
                data = match_form.cleaned_data
                line = bank.bank_line_match(
                    line=line, customer=data["customer"], invoices=list(data["invoices"]) or None, actor=request.user
                )
                messages.success(
                    request, f"Line matched: payment {line.payment.number} recorded for {line.customer.name}."
                )
                return redirect("bank-queue")
            if request.POST.get("action") == "ignore" and ignore_form.is_valid():
                bank.bank_line_ignore(line=line, reason=ignore_form.cleaned_data["reason"], actor=request.user)
                messages.success(request, f"Line {line.statement_id}/{line.line_no} ignored.")
                return redirect("bank-queue")
        except DomainError as e:
            form_errors_from(match_form if request.POST.get("action") == "match" else ignore_form, e)
    context = {
        "line": line,
        "match_form": match_form,
        "ignore_form": ignore_form,
        "queued": line.status in QUEUE_STATUSES,
    }
    return render(request, "payments/bank_line_detail.html", context)
