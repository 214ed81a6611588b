"""Customer satisfaction pages: the public page a signed invoice link opens (no login), and the
ratings card on the customer page, where staff also record feedback taken during a call.

The customer page (billing) cannot import kpis: it loads the card from here by route name with htmx."""

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from billing.errors import Conflict, DomainError
from billing.forms import BootstrapForm
from billing.models import Customer
from billing.views import form_errors_from
from invoicing.feedback import FEEDBACK_MAX_AGE, FeedbackLinkExpired, FeedbackLinkInvalid, feedback_invoice_id
from invoicing.models import Invoice

from .feedback import COMMENT_MAX, RATINGS, customer_feedback_summary, feedback_record, invoices_awaiting_feedback
from .models import Feedback, FeedbackSource

INVOICE_CHOICES = 100
RATING_CHOICES = [
    (5, "5 — Very satisfied"),
    (4, "4 — Satisfied"),
    (3, "3 — Neutral"),
    (2, "2 — Dissatisfied"),
    (1, "1 — Very dissatisfied"),
]


class FeedbackForm(forms.Form):
    rating = forms.TypedChoiceField(
        choices=RATING_CHOICES,
        coerce=int,
        widget=forms.RadioSelect,
        label="How satisfied are you with this invoice and our service?",
        error_messages={"required": "Choose a rating from 1 to 5."},
    )
    comment = forms.CharField(
        required=False,
        max_length=COMMENT_MAX,
        widget=forms.Textarea(attrs={"rows": 4, "class": "form-control"}),
        label="Anything you would like to tell us? (optional)",
    )


# --- The public page ------------------------------------------------------------------------------

REFUSALS = {
    "invalid": (
        400,
        "This feedback link is not valid",
        "The link could not be verified: it may have been copied incompletely or changed. Please open the "
        "link exactly as it appears in your invoice e-mail or on the PDF.",
    ),
    "expired": (
        410,
        "This feedback link has expired",
        f"Feedback links stay open for {FEEDBACK_MAX_AGE.days} days after the invoice is issued. "
        "If you would still like to tell us something, simply reply to the invoice e-mail.",
    ),
    "answered": (
        409,
        "This invoice has already been rated",
        "We have already received feedback for this invoice — thank you. Only one answer is kept per invoice.",
    ),
}


def _refuse(request, reason: str, invoice: Invoice | None = None):
    status, title, text = REFUSALS[reason]
    context = {"reason": reason, "title": title, "text": text, "invoice": invoice}
    return render(request, "kpis/feedback_refused.html", context, status=status)


def _invoice_for(token: str) -> tuple[Invoice | None, str | None]:
    try:
        invoice_id = feedback_invoice_id(token)
    except FeedbackLinkExpired:
        return None, "expired"
    except FeedbackLinkInvalid:
        return None, "invalid"
    invoice = Invoice.objects.select_related("customer").filter(pk=invoice_id, kind="invoice").first()
    if invoice is None or not invoice.number:
        return None, "invalid"
    return invoice, None


@never_cache
@require_http_methods(["GET", "POST"])
def feedback_page(request, token: str):
    """The page a customer opens from an invoice: rate 1-5 and comment, once per invoice."""
    invoice, refusal = _invoice_for(token)
    if refusal:
        return _refuse(request, refusal)
    if Feedback.objects.filter(invoice=invoice).exists():
        return _refuse(request, "answered", invoice)
    form = FeedbackForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            feedback_record(
                invoice=invoice,
                rating=form.cleaned_data["rating"],
                comment=form.cleaned_data["comment"],
                source=FeedbackSource.LINK,
            )
        except Conflict:
            return _refuse(request, "answered", invoice)
        except DomainError as e:
            form_errors_from(form, e)
        else:
            return redirect("feedback-thanks", token=token)
    status = 400 if form.errors else 200
    return render(request, "kpis/feedback_form.html", {"form": form, "invoice": invoice}, status=status)


@never_cache
def feedback_thanks(request, token: str):
    invoice, refusal = _invoice_for(token)
    if refusal == "invalid":
        return _refuse(request, refusal)
    feedback = Feedback.objects.filter(invoice_id=invoice.pk).first() if invoice else None
    if feedback is None:
        return redirect("feedback", token=token) if invoice else _refuse(request, refusal or "invalid")
    return render(request, "kpis/feedback_thanks.html", {"invoice": invoice, "feedback": feedback})


# --- Staff: the ratings card on the customer page ------------------------------------------------


class CallFeedbackForm(BootstrapForm):
    invoice = forms.ModelChoiceField(queryset=Invoice.objects.none(), empty_label="Choose an invoice…")
    rating = forms.TypedChoiceField(choices=[("", "Rating…"), *RATING_CHOICES], coerce=int, empty_value=None)
    comment = forms.CharField(required=False, max_length=COMMENT_MAX, widget=forms.Textarea(attrs={"rows": 2}))

    def __init__(self, *args, customer: Customer, **kwargs):
        super().__init__(*args, **kwargs)
        field = self.fields["invoice"]
        field.queryset = invoices_awaiting_feedback(customer.pk)
        # Any awaiting invoice is accepted; the list offers the latest ones (a big account has thousands).
        field.choices = [("", field.empty_label)] + [
            (inv.pk, f"{inv.number} · {inv.issue_date:%d %b %Y}") for inv in field.queryset[:INVOICE_CHOICES]
        ]


def _card(request, customer: Customer, form=None, saved: bool = False, status: int = 200):
    """The card alone for htmx (and the customer page's lazy load), else inside a page of its own."""
    template = "kpis/feedback_customer_card.html" if request.htmx else "kpis/feedback_customer_page.html"
    context = {
        "customer": customer,
        "summary": customer_feedback_summary(customer.pk),
        "form": form or CallFeedbackForm(customer=customer),
        "saved": saved,
        "ratings": RATINGS,
    }
    return render(request, template, context, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def customer_feedback(request, pk: int):
    """GET: the customer's ratings card. POST: record feedback from a call (source `call`, audited)."""
    customer = get_object_or_404(Customer, pk=pk)
    if request.method == "GET":
        return _card(request, customer)
    form = CallFeedbackForm(request.POST, customer=customer)
    saved = False
    if form.is_valid():
        try:
            feedback_record(
                invoice=form.cleaned_data["invoice"],
                rating=form.cleaned_data["rating"],
                comment=form.cleaned_data["comment"],
                source=FeedbackSource.CALL,
                actor=request.user,
            )
        except DomainError as e:
            form_errors_from(form, e)
        else:
            saved = True
    if not request.htmx:
        if saved:
            messages.success(request, "Feedback recorded.")
            return redirect(reverse("customer-detail", args=[customer.pk]) + "#customer-feedback")
        return _card(request, customer, form, status=400)
    # htmx swaps only 2xx responses: errors come back as 200 with the inline messages.
    return _card(request, customer, None if saved else form, saved=saved)
